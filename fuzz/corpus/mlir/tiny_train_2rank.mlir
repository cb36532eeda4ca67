// A tiny 2-layer, top-2 MoE training step with 4 experts over 2 ranks.
lina.grid @world shape = [2] groups = {dp = array<i64: 0>, ep = array<i64: 0>}

func.func @train_step(%x: tensor<32x16xf32>, %wd0: tensor<16x16xf32>, %wg0: tensor<16x4xf32>, %w1_0: tensor<2x16x32xf32>, %w2_0: tensor<2x32x16xf32>, %wd1: tensor<16x16xf32>, %wg1: tensor<16x4xf32>, %w1_1: tensor<2x16x32xf32>, %w2_1: tensor<2x32x16xf32>, %dy: tensor<32x16xf32>)
    -> (tensor<32x16xf32>, tensor<32x16xf32>, tensor<16x16xf32>, tensor<16x4xf32>, tensor<2x16x32xf32>, tensor<2x32x16xf32>, tensor<16x16xf32>, tensor<16x4xf32>, tensor<2x16x32xf32>, tensor<2x32x16xf32>) {
  // Layer 0: dense block, then a top-2 MoE block with a residual connection.
  %a0 = lina.dense %x, %wd0 activation = gelu : (tensor<32x16xf32>, tensor<16x16xf32>) -> tensor<32x16xf32>
  %ids0, %gw0 = lina.gate %a0, %wg0 experts = 4 top_k = 2 capacity_factor = 1.25 : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x2xi32>, tensor<32x2xf32>)
  %buf0 = lina.dispatch %a0, %ids0 : (tensor<32x16xf32>, tensor<32x2xi32>) -> tensor<4x20x16xf32>
  %r0 = lina.all_to_all %buf0 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x20x16xf32> -> tensor<2x40x16xf32>
  %e0 = lina.expert_ffn %r0, %w1_0, %w2_0 activation = gelu : (tensor<2x40x16xf32>, tensor<2x16x32xf32>, tensor<2x32x16xf32>) -> tensor<2x40x16xf32>
  %b0 = lina.all_to_all %e0 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x40x16xf32> -> tensor<4x20x16xf32>
  %c0 = lina.combine %b0, %ids0, %gw0 : (tensor<4x20x16xf32>, tensor<32x2xi32>, tensor<32x2xf32>) -> tensor<32x16xf32>
  %x1 = arith.addf %a0, %c0 : tensor<32x16xf32>
  // Layer 1: dense block, then a top-2 MoE block with a residual connection.
  %a1 = lina.dense %x1, %wd1 activation = gelu : (tensor<32x16xf32>, tensor<16x16xf32>) -> tensor<32x16xf32>
  %ids1, %gw1 = lina.gate %a1, %wg1 experts = 4 top_k = 2 capacity_factor = 1.25 : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x2xi32>, tensor<32x2xf32>)
  %buf1 = lina.dispatch %a1, %ids1 : (tensor<32x16xf32>, tensor<32x2xi32>) -> tensor<4x20x16xf32>
  %r1 = lina.all_to_all %buf1 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x20x16xf32> -> tensor<2x40x16xf32>
  %e1 = lina.expert_ffn %r1, %w1_1, %w2_1 activation = gelu : (tensor<2x40x16xf32>, tensor<2x16x32xf32>, tensor<2x32x16xf32>) -> tensor<2x40x16xf32>
  %b1 = lina.all_to_all %e1 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x40x16xf32> -> tensor<4x20x16xf32>
  %c1 = lina.combine %b1, %ids1, %gw1 : (tensor<4x20x16xf32>, tensor<32x2xi32>, tensor<32x2xf32>) -> tensor<32x16xf32>
  %x2 = arith.addf %a1, %c1 : tensor<32x16xf32>

  // Backward, last layer first.
  %db1, %dgw1 = lina.combine_grad %dy, %b1, %ids1, %gw1 : (tensor<32x16xf32>, tensor<4x20x16xf32>, tensor<32x2xi32>, tensor<32x2xf32>) -> (tensor<4x20x16xf32>, tensor<32x2xf32>)
  %de1 = lina.all_to_all %db1 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x20x16xf32> -> tensor<2x40x16xf32>
  %dr1, %dw1_1, %dw2_1 = lina.expert_ffn_grad %de1, %r1, %w1_1, %w2_1 activation = gelu : (tensor<2x40x16xf32>, tensor<2x40x16xf32>, tensor<2x16x32xf32>, tensor<2x32x16xf32>) -> (tensor<2x40x16xf32>, tensor<2x16x32xf32>, tensor<2x32x16xf32>)
  %dbuf1 = lina.all_to_all %dr1 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x40x16xf32> -> tensor<4x20x16xf32>
  %da1_d = lina.dispatch_grad %dbuf1, %ids1 : (tensor<4x20x16xf32>, tensor<32x2xi32>) -> tensor<32x16xf32>
  %da1_g, %dwg1 = lina.gate_grad %dgw1, %a1, %wg1, %ids1 : (tensor<32x2xf32>, tensor<32x16xf32>, tensor<16x4xf32>, tensor<32x2xi32>) -> (tensor<32x16xf32>, tensor<16x4xf32>)
  %da1_s = arith.addf %dy, %da1_d : tensor<32x16xf32>
  %da1 = arith.addf %da1_s, %da1_g : tensor<32x16xf32>
  %dx1, %dwd1 = lina.dense_grad %da1, %x1, %wd1 activation = gelu : (tensor<32x16xf32>, tensor<32x16xf32>, tensor<16x16xf32>) -> (tensor<32x16xf32>, tensor<16x16xf32>)
  %gwd1 = lina.all_reduce %dwd1 group = #lina.group<@world, "dp"> reduction = sum : tensor<16x16xf32>
  %gwg1 = lina.all_reduce %dwg1 group = #lina.group<@world, "dp"> reduction = sum : tensor<16x4xf32>
  %db0, %dgw0 = lina.combine_grad %dx1, %b0, %ids0, %gw0 : (tensor<32x16xf32>, tensor<4x20x16xf32>, tensor<32x2xi32>, tensor<32x2xf32>) -> (tensor<4x20x16xf32>, tensor<32x2xf32>)
  %de0 = lina.all_to_all %db0 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x20x16xf32> -> tensor<2x40x16xf32>
  %dr0, %dw1_0, %dw2_0 = lina.expert_ffn_grad %de0, %r0, %w1_0, %w2_0 activation = gelu : (tensor<2x40x16xf32>, tensor<2x40x16xf32>, tensor<2x16x32xf32>, tensor<2x32x16xf32>) -> (tensor<2x40x16xf32>, tensor<2x16x32xf32>, tensor<2x32x16xf32>)
  %dbuf0 = lina.all_to_all %dr0 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x40x16xf32> -> tensor<4x20x16xf32>
  %da0_d = lina.dispatch_grad %dbuf0, %ids0 : (tensor<4x20x16xf32>, tensor<32x2xi32>) -> tensor<32x16xf32>
  %da0_g, %dwg0 = lina.gate_grad %dgw0, %a0, %wg0, %ids0 : (tensor<32x2xf32>, tensor<32x16xf32>, tensor<16x4xf32>, tensor<32x2xi32>) -> (tensor<32x16xf32>, tensor<16x4xf32>)
  %da0_s = arith.addf %dx1, %da0_d : tensor<32x16xf32>
  %da0 = arith.addf %da0_s, %da0_g : tensor<32x16xf32>
  %dx0, %dwd0 = lina.dense_grad %da0, %x, %wd0 activation = gelu : (tensor<32x16xf32>, tensor<32x16xf32>, tensor<16x16xf32>) -> (tensor<32x16xf32>, tensor<16x16xf32>)
  %gwd0 = lina.all_reduce %dwd0 group = #lina.group<@world, "dp"> reduction = sum : tensor<16x16xf32>
  %gwg0 = lina.all_reduce %dwg0 group = #lina.group<@world, "dp"> reduction = sum : tensor<16x4xf32>
  return %x2, %dx0, %gwd1, %gwg1, %dw1_1, %dw2_1, %gwd0, %gwg0, %dw1_0, %dw2_0 : tensor<32x16xf32>, tensor<32x16xf32>, tensor<16x16xf32>, tensor<16x4xf32>, tensor<2x16x32xf32>, tensor<2x32x16xf32>, tensor<16x16xf32>, tensor<16x4xf32>, tensor<2x16x32xf32>, tensor<2x32x16xf32>
}
