lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

// A capacity of 8 in 3 chunks: 3, 3 and 2 rows. Chunk i+1 is sent before
// chunk i's FFN; the returned chunks are concatenated along the capacity
// dimension; the received tokens, also read by the backward pass, are
// reassembled in their original order.
// ONE-LABEL: func @chain
// ONE-NOT: tensor.
// ONE-NOT: chunk
// AUTO-LABEL: func @chain
// AUTO-SAME: lina.suggested_experts_per_device =
func.func @chain(%buf: tensor<8x8x16xf32>, %w1: tensor<2x16x64xf32>, %w2: tensor<2x64x16xf32>) -> (tensor<8x8x16xf32>, tensor<2x32x16xf32>) {
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x8x16xf32> -> tensor<2x32x16xf32>
  %e = lina.expert_ffn %r, %w1, %w2 activation = silu : (tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) -> tensor<2x32x16xf32>
  %b = lina.all_to_all %e group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x32x16xf32> -> tensor<8x8x16xf32>
  return %b, %r : tensor<8x8x16xf32>, tensor<2x32x16xf32>
}
