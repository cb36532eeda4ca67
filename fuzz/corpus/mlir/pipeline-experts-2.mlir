lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

// A backward chain alone: each chunk's expert_ffn_grad reads its slots of
// the saved tokens (viewed once as [E, n, C, H]); the weight gradients are
// the sums of the chunks'.
func.func @backward(%dbuf: tensor<8x8x16xf32>, %r: tensor<2x32x16xf32>, %w1: tensor<2x16x64xf32>, %w2: tensor<2x64x16xf32>) -> (tensor<8x8x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) {
  %de = lina.all_to_all %dbuf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x8x16xf32> -> tensor<2x32x16xf32>
  %dr, %dw1, %dw2 = lina.expert_ffn_grad %de, %r, %w1, %w2 activation = silu : (tensor<2x32x16xf32>, tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) -> (tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>)
  %db = lina.all_to_all %dr group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x32x16xf32> -> tensor<8x8x16xf32>
  return %db, %dw1, %dw2 : tensor<8x8x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>
}
