func.func @dispatch_grad_tokens(%db: tensor<2x4x4xf32>, %ids: tensor<8x1xi32>) -> tensor<7x4xf32> {
  %0 = lina.dispatch_grad %db, %ids : (tensor<2x4x4xf32>, tensor<8x1xi32>) -> tensor<7x4xf32>
  return %0 : tensor<7x4xf32>
}
