lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

// Forward and backward in one function: the backward chunks read the
// forward chunks directly, and the reassembly of the received tokens,
// which nothing else reads, is dropped.
func.func @forward_and_backward(%buf: tensor<8x8x16xf32>, %dy: tensor<8x8x16xf32>, %w1: tensor<2x16x64xf32>, %w2: tensor<2x64x16xf32>) -> (tensor<8x8x16xf32>, tensor<8x8x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) {
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x8x16xf32> -> tensor<2x32x16xf32>
  %e = lina.expert_ffn %r, %w1, %w2 activation = silu : (tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) -> tensor<2x32x16xf32>
  %b = lina.all_to_all %e group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x32x16xf32> -> tensor<8x8x16xf32>
  %de = lina.all_to_all %dy group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x8x16xf32> -> tensor<2x32x16xf32>
  %dr, %dw1, %dw2 = lina.expert_ffn_grad %de, %r, %w1, %w2 activation = silu : (tensor<2x32x16xf32>, tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) -> (tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>)
  %db = lina.all_to_all %dr group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x32x16xf32> -> tensor<8x8x16xf32>
  return %b, %db, %dw1, %dw2 : tensor<8x8x16xf32>, tensor<8x8x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>
}
