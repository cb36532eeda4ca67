func.func @f(%a: tensor<f32>, %wg: tensor<32x8xf32>) -> (tensor<64x2xi32>, tensor<64x2xf32>) {
  %ids, %gw = lina.gate %a, %wg experts = 8 top_k = 2 capacity_factor = 1.25 : (tensor<f32>, tensor<32x8xf32>) -> (tensor<64x2xi32>, tensor<64x2xf32>)
  return %ids, %gw : tensor<64x2xi32>, tensor<64x2xf32>
}
