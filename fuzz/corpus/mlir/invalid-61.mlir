func.func @combine_grad_tokens(%dy: tensor<6x4xf32>, %b: tensor<2x4x4xf32>, %ids: tensor<8x1xi32>, %gw: tensor<8x1xf32>) -> (tensor<2x4x4xf32>, tensor<8x1xf32>) {
  %db, %dgw = lina.combine_grad %dy, %b, %ids, %gw : (tensor<6x4xf32>, tensor<2x4x4xf32>, tensor<8x1xi32>, tensor<8x1xf32>) -> (tensor<2x4x4xf32>, tensor<8x1xf32>)
  return %db, %dgw : tensor<2x4x4xf32>, tensor<8x1xf32>
}
