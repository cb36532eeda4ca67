func.func @combine_hidden(%b: tensor<2x4x4xf32>, %ids: tensor<8x1xi32>, %gw: tensor<8x1xf32>) -> tensor<8x3xf32> {
  %0 = lina.combine %b, %ids, %gw : (tensor<2x4x4xf32>, tensor<8x1xi32>, tensor<8x1xf32>) -> tensor<8x3xf32>
  return %0 : tensor<8x3xf32>
}
