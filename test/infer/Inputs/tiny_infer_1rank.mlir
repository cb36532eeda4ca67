// Tiny 2-layer top-2 MoE inference model: 4 experts on one rank
// (all local), 16 tokens x hidden 8, expert FFN 16.
lina.grid @world shape = [1] groups = {ep = array<i64: 0>}

func.func @forward(%x: tensor<16x8xf32>, %wd0: tensor<8x8xf32>, %wg0: tensor<8x4xf32>, %w1_0: tensor<4x8x16xf32>, %w2_0: tensor<4x16x8xf32>, %wd1: tensor<8x8xf32>, %wg1: tensor<8x4xf32>, %w1_1: tensor<4x8x16xf32>, %w2_1: tensor<4x16x8xf32>) -> tensor<16x8xf32> {
  %a0 = lina.dense %x, %wd0 activation = silu : (tensor<16x8xf32>, tensor<8x8xf32>) -> tensor<16x8xf32>
  %ids0, %gw0 = lina.gate %a0, %wg0 experts = 4 top_k = 2 capacity_factor = 1.0 : (tensor<16x8xf32>, tensor<8x4xf32>) -> (tensor<16x2xi32>, tensor<16x2xf32>)
  %buf0 = lina.dispatch %a0, %ids0 : (tensor<16x8xf32>, tensor<16x2xi32>) -> tensor<4x8x8xf32>
  %r0 = lina.all_to_all %buf0 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x8x8xf32> -> tensor<4x8x8xf32>
  %e0 = lina.expert_ffn %r0, %w1_0, %w2_0 activation = gelu : (tensor<4x8x8xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32>) -> tensor<4x8x8xf32>
  %b0 = lina.all_to_all %e0 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<4x8x8xf32> -> tensor<4x8x8xf32>
  %c0 = lina.combine %b0, %ids0, %gw0 : (tensor<4x8x8xf32>, tensor<16x2xi32>, tensor<16x2xf32>) -> tensor<16x8xf32>
  %x1 = arith.addf %a0, %c0 : tensor<16x8xf32>
  %a1 = lina.dense %x1, %wd1 activation = silu : (tensor<16x8xf32>, tensor<8x8xf32>) -> tensor<16x8xf32>
  %ids1, %gw1 = lina.gate %a1, %wg1 experts = 4 top_k = 2 capacity_factor = 1.0 : (tensor<16x8xf32>, tensor<8x4xf32>) -> (tensor<16x2xi32>, tensor<16x2xf32>)
  %buf1 = lina.dispatch %a1, %ids1 : (tensor<16x8xf32>, tensor<16x2xi32>) -> tensor<4x8x8xf32>
  %r1 = lina.all_to_all %buf1 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x8x8xf32> -> tensor<4x8x8xf32>
  %e1 = lina.expert_ffn %r1, %w1_1, %w2_1 activation = gelu : (tensor<4x8x8xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32>) -> tensor<4x8x8xf32>
  %b1 = lina.all_to_all %e1 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<4x8x8xf32> -> tensor<4x8x8xf32>
  %c1 = lina.combine %b1, %ids1, %gw1 : (tensor<4x8x8xf32>, tensor<16x2xi32>, tensor<16x2xf32>) -> tensor<16x8xf32>
  %x2 = arith.addf %a1, %c1 : tensor<16x8xf32>
  return %x2 : tensor<16x8xf32>
}
