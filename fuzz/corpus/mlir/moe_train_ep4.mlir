// Training step of a 4-layer, top-2 MoE model with 8 experts over a 4-rank
// grid (2 experts per rank, EP=4) with the dense and router weights
// data-parallel over the same 4 ranks (DP=4). Per rank: 256 tokens, hidden
// 256, expert FFN 512. This is the model the README's main command runs on
// 4 MPI ranks of one machine.
lina.grid @world shape = [4] groups = {dp = array<i64: 0>, ep = array<i64: 0>}

func.func @train_step(%x: tensor<256x256xf32>, %wd0: tensor<256x256xf32>, %wg0: tensor<256x8xf32>, %w1_0: tensor<2x256x512xf32>, %w2_0: tensor<2x512x256xf32>, %wd1: tensor<256x256xf32>, %wg1: tensor<256x8xf32>, %w1_1: tensor<2x256x512xf32>, %w2_1: tensor<2x512x256xf32>, %wd2: tensor<256x256xf32>, %wg2: tensor<256x8xf32>, %w1_2: tensor<2x256x512xf32>, %w2_2: tensor<2x512x256xf32>, %wd3: tensor<256x256xf32>, %wg3: tensor<256x8xf32>, %w1_3: tensor<2x256x512xf32>, %w2_3: tensor<2x512x256xf32>, %dy: tensor<256x256xf32>)
    -> (tensor<256x256xf32>, tensor<256x256xf32>, tensor<256x256xf32>, tensor<256x8xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>, tensor<256x256xf32>, tensor<256x8xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>, tensor<256x256xf32>, tensor<256x8xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>, tensor<256x256xf32>, tensor<256x8xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>) {
  // Layer 0: dense block, then a top-2 MoE block with a residual connection.
  %a0 = lina.dense %x, %wd0 activation = gelu : (tensor<256x256xf32>, tensor<256x256xf32>) -> tensor<256x256xf32>
  %ids0, %gw0 = lina.gate %a0, %wg0 experts = 8 top_k = 2 capacity_factor = 1.25 : (tensor<256x256xf32>, tensor<256x8xf32>) -> (tensor<256x2xi32>, tensor<256x2xf32>)
  %buf0 = lina.dispatch %a0, %ids0 : (tensor<256x256xf32>, tensor<256x2xi32>) -> tensor<8x80x256xf32>
  %r0 = lina.all_to_all %buf0 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x80x256xf32> -> tensor<2x320x256xf32>
  %e0 = lina.expert_ffn %r0, %w1_0, %w2_0 activation = gelu : (tensor<2x320x256xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>) -> tensor<2x320x256xf32>
  %b0 = lina.all_to_all %e0 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x320x256xf32> -> tensor<8x80x256xf32>
  %c0 = lina.combine %b0, %ids0, %gw0 : (tensor<8x80x256xf32>, tensor<256x2xi32>, tensor<256x2xf32>) -> tensor<256x256xf32>
  %x1 = arith.addf %a0, %c0 : tensor<256x256xf32>
  // Layer 1: dense block, then a top-2 MoE block with a residual connection.
  %a1 = lina.dense %x1, %wd1 activation = gelu : (tensor<256x256xf32>, tensor<256x256xf32>) -> tensor<256x256xf32>
  %ids1, %gw1 = lina.gate %a1, %wg1 experts = 8 top_k = 2 capacity_factor = 1.25 : (tensor<256x256xf32>, tensor<256x8xf32>) -> (tensor<256x2xi32>, tensor<256x2xf32>)
  %buf1 = lina.dispatch %a1, %ids1 : (tensor<256x256xf32>, tensor<256x2xi32>) -> tensor<8x80x256xf32>
  %r1 = lina.all_to_all %buf1 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x80x256xf32> -> tensor<2x320x256xf32>
  %e1 = lina.expert_ffn %r1, %w1_1, %w2_1 activation = gelu : (tensor<2x320x256xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>) -> tensor<2x320x256xf32>
  %b1 = lina.all_to_all %e1 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x320x256xf32> -> tensor<8x80x256xf32>
  %c1 = lina.combine %b1, %ids1, %gw1 : (tensor<8x80x256xf32>, tensor<256x2xi32>, tensor<256x2xf32>) -> tensor<256x256xf32>
  %x2 = arith.addf %a1, %c1 : tensor<256x256xf32>
  // Layer 2: dense block, then a top-2 MoE block with a residual connection.
  %a2 = lina.dense %x2, %wd2 activation = gelu : (tensor<256x256xf32>, tensor<256x256xf32>) -> tensor<256x256xf32>
  %ids2, %gw2 = lina.gate %a2, %wg2 experts = 8 top_k = 2 capacity_factor = 1.25 : (tensor<256x256xf32>, tensor<256x8xf32>) -> (tensor<256x2xi32>, tensor<256x2xf32>)
  %buf2 = lina.dispatch %a2, %ids2 : (tensor<256x256xf32>, tensor<256x2xi32>) -> tensor<8x80x256xf32>
  %r2 = lina.all_to_all %buf2 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x80x256xf32> -> tensor<2x320x256xf32>
  %e2 = lina.expert_ffn %r2, %w1_2, %w2_2 activation = gelu : (tensor<2x320x256xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>) -> tensor<2x320x256xf32>
  %b2 = lina.all_to_all %e2 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x320x256xf32> -> tensor<8x80x256xf32>
  %c2 = lina.combine %b2, %ids2, %gw2 : (tensor<8x80x256xf32>, tensor<256x2xi32>, tensor<256x2xf32>) -> tensor<256x256xf32>
  %x3 = arith.addf %a2, %c2 : tensor<256x256xf32>
  // Layer 3: dense block, then a top-2 MoE block with a residual connection.
  %a3 = lina.dense %x3, %wd3 activation = gelu : (tensor<256x256xf32>, tensor<256x256xf32>) -> tensor<256x256xf32>
  %ids3, %gw3 = lina.gate %a3, %wg3 experts = 8 top_k = 2 capacity_factor = 1.25 : (tensor<256x256xf32>, tensor<256x8xf32>) -> (tensor<256x2xi32>, tensor<256x2xf32>)
  %buf3 = lina.dispatch %a3, %ids3 : (tensor<256x256xf32>, tensor<256x2xi32>) -> tensor<8x80x256xf32>
  %r3 = lina.all_to_all %buf3 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x80x256xf32> -> tensor<2x320x256xf32>
  %e3 = lina.expert_ffn %r3, %w1_3, %w2_3 activation = gelu : (tensor<2x320x256xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>) -> tensor<2x320x256xf32>
  %b3 = lina.all_to_all %e3 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x320x256xf32> -> tensor<8x80x256xf32>
  %c3 = lina.combine %b3, %ids3, %gw3 : (tensor<8x80x256xf32>, tensor<256x2xi32>, tensor<256x2xf32>) -> tensor<256x256xf32>
  %x4 = arith.addf %a3, %c3 : tensor<256x256xf32>

  // Backward, last layer first.
  %db3, %dgw3 = lina.combine_grad %dy, %b3, %ids3, %gw3 : (tensor<256x256xf32>, tensor<8x80x256xf32>, tensor<256x2xi32>, tensor<256x2xf32>) -> (tensor<8x80x256xf32>, tensor<256x2xf32>)
  %de3 = lina.all_to_all %db3 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x80x256xf32> -> tensor<2x320x256xf32>
  %dr3, %dw1_3, %dw2_3 = lina.expert_ffn_grad %de3, %r3, %w1_3, %w2_3 activation = gelu : (tensor<2x320x256xf32>, tensor<2x320x256xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>) -> (tensor<2x320x256xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>)
  %dbuf3 = lina.all_to_all %dr3 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x320x256xf32> -> tensor<8x80x256xf32>
  %da3_d = lina.dispatch_grad %dbuf3, %ids3 : (tensor<8x80x256xf32>, tensor<256x2xi32>) -> tensor<256x256xf32>
  %da3_g, %dwg3 = lina.gate_grad %dgw3, %a3, %wg3, %ids3 : (tensor<256x2xf32>, tensor<256x256xf32>, tensor<256x8xf32>, tensor<256x2xi32>) -> (tensor<256x256xf32>, tensor<256x8xf32>)
  %da3_s = arith.addf %dy, %da3_d : tensor<256x256xf32>
  %da3 = arith.addf %da3_s, %da3_g : tensor<256x256xf32>
  %dx3, %dwd3 = lina.dense_grad %da3, %x3, %wd3 activation = gelu : (tensor<256x256xf32>, tensor<256x256xf32>, tensor<256x256xf32>) -> (tensor<256x256xf32>, tensor<256x256xf32>)
  %gwd3 = lina.all_reduce %dwd3 group = #lina.group<@world, "dp"> reduction = sum : tensor<256x256xf32>
  %gwg3 = lina.all_reduce %dwg3 group = #lina.group<@world, "dp"> reduction = sum : tensor<256x8xf32>
  %db2, %dgw2 = lina.combine_grad %dx3, %b2, %ids2, %gw2 : (tensor<256x256xf32>, tensor<8x80x256xf32>, tensor<256x2xi32>, tensor<256x2xf32>) -> (tensor<8x80x256xf32>, tensor<256x2xf32>)
  %de2 = lina.all_to_all %db2 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x80x256xf32> -> tensor<2x320x256xf32>
  %dr2, %dw1_2, %dw2_2 = lina.expert_ffn_grad %de2, %r2, %w1_2, %w2_2 activation = gelu : (tensor<2x320x256xf32>, tensor<2x320x256xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>) -> (tensor<2x320x256xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>)
  %dbuf2 = lina.all_to_all %dr2 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x320x256xf32> -> tensor<8x80x256xf32>
  %da2_d = lina.dispatch_grad %dbuf2, %ids2 : (tensor<8x80x256xf32>, tensor<256x2xi32>) -> tensor<256x256xf32>
  %da2_g, %dwg2 = lina.gate_grad %dgw2, %a2, %wg2, %ids2 : (tensor<256x2xf32>, tensor<256x256xf32>, tensor<256x8xf32>, tensor<256x2xi32>) -> (tensor<256x256xf32>, tensor<256x8xf32>)
  %da2_s = arith.addf %dx3, %da2_d : tensor<256x256xf32>
  %da2 = arith.addf %da2_s, %da2_g : tensor<256x256xf32>
  %dx2, %dwd2 = lina.dense_grad %da2, %x2, %wd2 activation = gelu : (tensor<256x256xf32>, tensor<256x256xf32>, tensor<256x256xf32>) -> (tensor<256x256xf32>, tensor<256x256xf32>)
  %gwd2 = lina.all_reduce %dwd2 group = #lina.group<@world, "dp"> reduction = sum : tensor<256x256xf32>
  %gwg2 = lina.all_reduce %dwg2 group = #lina.group<@world, "dp"> reduction = sum : tensor<256x8xf32>
  %db1, %dgw1 = lina.combine_grad %dx2, %b1, %ids1, %gw1 : (tensor<256x256xf32>, tensor<8x80x256xf32>, tensor<256x2xi32>, tensor<256x2xf32>) -> (tensor<8x80x256xf32>, tensor<256x2xf32>)
  %de1 = lina.all_to_all %db1 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x80x256xf32> -> tensor<2x320x256xf32>
  %dr1, %dw1_1, %dw2_1 = lina.expert_ffn_grad %de1, %r1, %w1_1, %w2_1 activation = gelu : (tensor<2x320x256xf32>, tensor<2x320x256xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>) -> (tensor<2x320x256xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>)
  %dbuf1 = lina.all_to_all %dr1 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x320x256xf32> -> tensor<8x80x256xf32>
  %da1_d = lina.dispatch_grad %dbuf1, %ids1 : (tensor<8x80x256xf32>, tensor<256x2xi32>) -> tensor<256x256xf32>
  %da1_g, %dwg1 = lina.gate_grad %dgw1, %a1, %wg1, %ids1 : (tensor<256x2xf32>, tensor<256x256xf32>, tensor<256x8xf32>, tensor<256x2xi32>) -> (tensor<256x256xf32>, tensor<256x8xf32>)
  %da1_s = arith.addf %dx2, %da1_d : tensor<256x256xf32>
  %da1 = arith.addf %da1_s, %da1_g : tensor<256x256xf32>
  %dx1, %dwd1 = lina.dense_grad %da1, %x1, %wd1 activation = gelu : (tensor<256x256xf32>, tensor<256x256xf32>, tensor<256x256xf32>) -> (tensor<256x256xf32>, tensor<256x256xf32>)
  %gwd1 = lina.all_reduce %dwd1 group = #lina.group<@world, "dp"> reduction = sum : tensor<256x256xf32>
  %gwg1 = lina.all_reduce %dwg1 group = #lina.group<@world, "dp"> reduction = sum : tensor<256x8xf32>
  %db0, %dgw0 = lina.combine_grad %dx1, %b0, %ids0, %gw0 : (tensor<256x256xf32>, tensor<8x80x256xf32>, tensor<256x2xi32>, tensor<256x2xf32>) -> (tensor<8x80x256xf32>, tensor<256x2xf32>)
  %de0 = lina.all_to_all %db0 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x80x256xf32> -> tensor<2x320x256xf32>
  %dr0, %dw1_0, %dw2_0 = lina.expert_ffn_grad %de0, %r0, %w1_0, %w2_0 activation = gelu : (tensor<2x320x256xf32>, tensor<2x320x256xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>) -> (tensor<2x320x256xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>)
  %dbuf0 = lina.all_to_all %dr0 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x320x256xf32> -> tensor<8x80x256xf32>
  %da0_d = lina.dispatch_grad %dbuf0, %ids0 : (tensor<8x80x256xf32>, tensor<256x2xi32>) -> tensor<256x256xf32>
  %da0_g, %dwg0 = lina.gate_grad %dgw0, %a0, %wg0, %ids0 : (tensor<256x2xf32>, tensor<256x256xf32>, tensor<256x8xf32>, tensor<256x2xi32>) -> (tensor<256x256xf32>, tensor<256x8xf32>)
  %da0_s = arith.addf %dx1, %da0_d : tensor<256x256xf32>
  %da0 = arith.addf %da0_s, %da0_g : tensor<256x256xf32>
  %dx0, %dwd0 = lina.dense_grad %da0, %x, %wd0 activation = gelu : (tensor<256x256xf32>, tensor<256x256xf32>, tensor<256x256xf32>) -> (tensor<256x256xf32>, tensor<256x256xf32>)
  %gwd0 = lina.all_reduce %dwd0 group = #lina.group<@world, "dp"> reduction = sum : tensor<256x256xf32>
  %gwg0 = lina.all_reduce %dwg0 group = #lina.group<@world, "dp"> reduction = sum : tensor<256x8xf32>
  return %x4, %dx0, %gwd3, %gwg3, %dw1_3, %dw2_3, %gwd2, %gwg2, %dw1_2, %dw2_2, %gwd1, %gwg1, %dw1_1, %dw2_1, %gwd0, %gwg0, %dw1_0, %dw2_0 : tensor<256x256xf32>, tensor<256x256xf32>, tensor<256x256xf32>, tensor<256x8xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>, tensor<256x256xf32>, tensor<256x8xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>, tensor<256x256xf32>, tensor<256x8xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>, tensor<256x256xf32>, tensor<256x8xf32>, tensor<2x256x512xf32>, tensor<2x512x256xf32>
}
