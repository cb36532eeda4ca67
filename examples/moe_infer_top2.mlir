// Inference pass of a 4-layer, top-2 MoE model with 16 experts over a
// 4-rank grid (4 experts per rank). Per rank: a batch of 128 tokens,
// hidden 256, expert FFN 512.
lina.grid @world shape = [4] groups = {dp = array<i64: 0>, ep = array<i64: 0>}

func.func @forward(%x: tensor<128x256xf32>, %wd0: tensor<256x256xf32>, %wg0: tensor<256x16xf32>, %w1_0: tensor<4x256x512xf32>, %w2_0: tensor<4x512x256xf32>, %wd1: tensor<256x256xf32>, %wg1: tensor<256x16xf32>, %w1_1: tensor<4x256x512xf32>, %w2_1: tensor<4x512x256xf32>, %wd2: tensor<256x256xf32>, %wg2: tensor<256x16xf32>, %w1_2: tensor<4x256x512xf32>, %w2_2: tensor<4x512x256xf32>, %wd3: tensor<256x256xf32>, %wg3: tensor<256x16xf32>, %w1_3: tensor<4x256x512xf32>, %w2_3: tensor<4x512x256xf32>)
    -> (tensor<128x256xf32>) {
  // Layer 0: dense block, then a top-2 MoE block with a residual connection.
  %a0 = lina.dense %x, %wd0 activation = silu : (tensor<128x256xf32>, tensor<256x256xf32>) -> tensor<128x256xf32>
  %ids0, %gw0 = lina.gate %a0, %wg0 experts = 16 top_k = 2 capacity_factor = 1.25 : (tensor<128x256xf32>, tensor<256x16xf32>) -> (tensor<128x2xi32>, tensor<128x2xf32>)
  %buf0 = lina.dispatch %a0, %ids0 : (tensor<128x256xf32>, tensor<128x2xi32>) -> tensor<16x20x256xf32>
  %r0 = lina.all_to_all %buf0 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<16x20x256xf32> -> tensor<4x80x256xf32>
  %e0 = lina.expert_ffn %r0, %w1_0, %w2_0 activation = silu : (tensor<4x80x256xf32>, tensor<4x256x512xf32>, tensor<4x512x256xf32>) -> tensor<4x80x256xf32>
  %b0 = lina.all_to_all %e0 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<4x80x256xf32> -> tensor<16x20x256xf32>
  %c0 = lina.combine %b0, %ids0, %gw0 : (tensor<16x20x256xf32>, tensor<128x2xi32>, tensor<128x2xf32>) -> tensor<128x256xf32>
  %x1 = arith.addf %a0, %c0 : tensor<128x256xf32>
  // Layer 1: dense block, then a top-2 MoE block with a residual connection.
  %a1 = lina.dense %x1, %wd1 activation = silu : (tensor<128x256xf32>, tensor<256x256xf32>) -> tensor<128x256xf32>
  %ids1, %gw1 = lina.gate %a1, %wg1 experts = 16 top_k = 2 capacity_factor = 1.25 : (tensor<128x256xf32>, tensor<256x16xf32>) -> (tensor<128x2xi32>, tensor<128x2xf32>)
  %buf1 = lina.dispatch %a1, %ids1 : (tensor<128x256xf32>, tensor<128x2xi32>) -> tensor<16x20x256xf32>
  %r1 = lina.all_to_all %buf1 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<16x20x256xf32> -> tensor<4x80x256xf32>
  %e1 = lina.expert_ffn %r1, %w1_1, %w2_1 activation = silu : (tensor<4x80x256xf32>, tensor<4x256x512xf32>, tensor<4x512x256xf32>) -> tensor<4x80x256xf32>
  %b1 = lina.all_to_all %e1 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<4x80x256xf32> -> tensor<16x20x256xf32>
  %c1 = lina.combine %b1, %ids1, %gw1 : (tensor<16x20x256xf32>, tensor<128x2xi32>, tensor<128x2xf32>) -> tensor<128x256xf32>
  %x2 = arith.addf %a1, %c1 : tensor<128x256xf32>
  // Layer 2: dense block, then a top-2 MoE block with a residual connection.
  %a2 = lina.dense %x2, %wd2 activation = silu : (tensor<128x256xf32>, tensor<256x256xf32>) -> tensor<128x256xf32>
  %ids2, %gw2 = lina.gate %a2, %wg2 experts = 16 top_k = 2 capacity_factor = 1.25 : (tensor<128x256xf32>, tensor<256x16xf32>) -> (tensor<128x2xi32>, tensor<128x2xf32>)
  %buf2 = lina.dispatch %a2, %ids2 : (tensor<128x256xf32>, tensor<128x2xi32>) -> tensor<16x20x256xf32>
  %r2 = lina.all_to_all %buf2 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<16x20x256xf32> -> tensor<4x80x256xf32>
  %e2 = lina.expert_ffn %r2, %w1_2, %w2_2 activation = silu : (tensor<4x80x256xf32>, tensor<4x256x512xf32>, tensor<4x512x256xf32>) -> tensor<4x80x256xf32>
  %b2 = lina.all_to_all %e2 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<4x80x256xf32> -> tensor<16x20x256xf32>
  %c2 = lina.combine %b2, %ids2, %gw2 : (tensor<16x20x256xf32>, tensor<128x2xi32>, tensor<128x2xf32>) -> tensor<128x256xf32>
  %x3 = arith.addf %a2, %c2 : tensor<128x256xf32>
  // Layer 3: dense block, then a top-2 MoE block with a residual connection.
  %a3 = lina.dense %x3, %wd3 activation = silu : (tensor<128x256xf32>, tensor<256x256xf32>) -> tensor<128x256xf32>
  %ids3, %gw3 = lina.gate %a3, %wg3 experts = 16 top_k = 2 capacity_factor = 1.25 : (tensor<128x256xf32>, tensor<256x16xf32>) -> (tensor<128x2xi32>, tensor<128x2xf32>)
  %buf3 = lina.dispatch %a3, %ids3 : (tensor<128x256xf32>, tensor<128x2xi32>) -> tensor<16x20x256xf32>
  %r3 = lina.all_to_all %buf3 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<16x20x256xf32> -> tensor<4x80x256xf32>
  %e3 = lina.expert_ffn %r3, %w1_3, %w2_3 activation = silu : (tensor<4x80x256xf32>, tensor<4x256x512xf32>, tensor<4x512x256xf32>) -> tensor<4x80x256xf32>
  %b3 = lina.all_to_all %e3 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<4x80x256xf32> -> tensor<16x20x256xf32>
  %c3 = lina.combine %b3, %ids3, %gw3 : (tensor<16x20x256xf32>, tensor<128x2xi32>, tensor<128x2xf32>) -> tensor<128x256xf32>
  %x4 = arith.addf %a3, %c3 : tensor<128x256xf32>
  return %x4 : tensor<128x256xf32>
}
