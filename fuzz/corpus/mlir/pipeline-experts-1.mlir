lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

// Not a chain (the FFN result is used twice): left alone.
func.func @not_a_chain(%buf: tensor<8x8x16xf32>, %w1: tensor<2x16x64xf32>, %w2: tensor<2x64x16xf32>) -> (tensor<8x8x16xf32>, tensor<2x32x16xf32>) {
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x8x16xf32> -> tensor<2x32x16xf32>
  %e = lina.expert_ffn %r, %w1, %w2 activation = silu : (tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) -> tensor<2x32x16xf32>
  %b = lina.all_to_all %e group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x32x16xf32> -> tensor<8x8x16xf32>
  return %b, %e : tensor<8x8x16xf32>, tensor<2x32x16xf32>
}
