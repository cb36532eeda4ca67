func.func @ffn_grad_w2(%dy: tensor<2x8x4xf32>, %r: tensor<2x8x4xf32>, %w1: tensor<2x4x16xf32>, %w2: tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x4x16xf32>) {
  %a, %b, %c = lina.expert_ffn_grad %dy, %r, %w1, %w2 activation = gelu : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x4x16xf32>)
  return %a, %b, %c : tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x4x16xf32>
}
