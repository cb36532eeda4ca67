func.func @combine_weights(%b: tensor<2x4x4xf32>, %ids: tensor<8x2xi32>, %gw: tensor<8x1xf32>) -> tensor<8x4xf32> {
  %0 = lina.combine %b, %ids, %gw : (tensor<2x4x4xf32>, tensor<8x2xi32>, tensor<8x1xf32>) -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}
