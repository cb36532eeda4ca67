func.func @gate_weights(%x: tensor<8x4xf32>, %w: tensor<4x2xf32>) -> (tensor<8x1xi32>, tensor<7x1xf32>) {
  %ids, %gw = lina.gate %x, %w experts = 2 top_k = 1 capacity_factor = 1.0 : (tensor<8x4xf32>, tensor<4x2xf32>) -> (tensor<8x1xi32>, tensor<7x1xf32>)
  return %ids, %gw : tensor<8x1xi32>, tensor<7x1xf32>
}
