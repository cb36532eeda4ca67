func.func @dispatch_hidden(%x: tensor<8x4xf32>, %ids: tensor<8x1xi32>) -> tensor<2x4x5xf32> {
  %0 = lina.dispatch %x, %ids : (tensor<8x4xf32>, tensor<8x1xi32>) -> tensor<2x4x5xf32>
  return %0 : tensor<2x4x5xf32>
}
