func.func @ffn_result(%r: tensor<2x8x4xf32>, %w1: tensor<2x4x16xf32>, %w2: tensor<2x16x4xf32>) -> tensor<2x4x4xf32> {
  %0 = lina.expert_ffn %r, %w1, %w2 activation = gelu : (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> tensor<2x4x4xf32>
  return %0 : tensor<2x4x4xf32>
}
