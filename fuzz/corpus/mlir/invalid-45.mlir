func.func @dispatch_tokens(%x: tensor<8x4xf32>, %ids: tensor<6x1xi32>) -> tensor<2x4x4xf32> {
  %0 = lina.dispatch %x, %ids : (tensor<8x4xf32>, tensor<6x1xi32>) -> tensor<2x4x4xf32>
  return %0 : tensor<2x4x4xf32>
}
