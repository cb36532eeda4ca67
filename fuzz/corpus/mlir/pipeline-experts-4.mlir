lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

// The received tokens are read inside the chain (before its last
// all_to_all): the chunks could not dominate that reader, so the chain is
// left alone.
func.func @read_inside_chain(%buf: tensor<8x8x16xf32>, %w1: tensor<2x16x64xf32>, %w2: tensor<2x64x16xf32>) -> (tensor<8x8x16xf32>, tensor<2x32x16xf32>) {
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x8x16xf32> -> tensor<2x32x16xf32>
  %e = lina.expert_ffn %r, %w1, %w2 activation = silu : (tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) -> tensor<2x32x16xf32>
  %twice = arith.addf %r, %r : tensor<2x32x16xf32>
  %b = lina.all_to_all %e group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x32x16xf32> -> tensor<8x8x16xf32>
  return %b, %twice : tensor<8x8x16xf32>, tensor<2x32x16xf32>
}
