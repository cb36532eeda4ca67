func.func @dispatch_ids_type(%x: tensor<8x4xf32>, %ids: tensor<8x1xf32>) -> tensor<2x4x4xf32> {
  %0 = lina.dispatch %x, %ids : (tensor<8x4xf32>, tensor<8x1xf32>) -> tensor<2x4x4xf32>
  return %0 : tensor<2x4x4xf32>
}
