// The router weights start at zero: every logit ties, so every token goes to
// expert 0 (beyond its capacity tokens are dropped) and experts 1-3 receive
// no tokens at all.
lina.grid @world shape = [2] groups = {dp = array<i64: 0>, ep = array<i64: 0>}

func.func @train_step(%x: tensor<32x16xf32>, %wd0: tensor<16x16xf32>, %wg0: tensor<16x4xf32> {lina.init = "zero"}, %w1_0: tensor<2x16x32xf32>, %w2_0: tensor<2x32x16xf32>, %dy: tensor<32x16xf32>)
    -> (tensor<32x16xf32>, tensor<32x16xf32>, tensor<16x16xf32>, tensor<16x4xf32>, tensor<2x16x32xf32>, tensor<2x32x16xf32>) {
  // Layer 0: dense block, then a top-1 MoE block with a residual connection.
  %a0 = lina.dense %x, %wd0 activation = gelu : (tensor<32x16xf32>, tensor<16x16xf32>) -> tensor<32x16xf32>
  %ids0, %gw0 = lina.gate %a0, %wg0 experts = 4 top_k = 1 capacity_factor = 1.0 : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xf32>)
  %buf0 = lina.dispatch %a0, %ids0 : (tensor<32x16xf32>, tensor<32x1xi32>) -> tensor<4x8x16xf32>
  %r0 = lina.all_to_all %buf0 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x8x16xf32> -> tensor<2x16x16xf32>
  %e0 = lina.expert_ffn %r0, %w1_0, %w2_0 activation = gelu : (tensor<2x16x16xf32>, tensor<2x16x32xf32>, tensor<2x32x16xf32>) -> tensor<2x16x16xf32>
  %b0 = lina.all_to_all %e0 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x16x16xf32> -> tensor<4x8x16xf32>
  %c0 = lina.combine %b0, %ids0, %gw0 : (tensor<4x8x16xf32>, tensor<32x1xi32>, tensor<32x1xf32>) -> tensor<32x16xf32>
  %x1 = arith.addf %a0, %c0 : tensor<32x16xf32>

  // Backward, last layer first.
  %db0, %dgw0 = lina.combine_grad %dy, %b0, %ids0, %gw0 : (tensor<32x16xf32>, tensor<4x8x16xf32>, tensor<32x1xi32>, tensor<32x1xf32>) -> (tensor<4x8x16xf32>, tensor<32x1xf32>)
  %de0 = lina.all_to_all %db0 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x8x16xf32> -> tensor<2x16x16xf32>
  %dr0, %dw1_0, %dw2_0 = lina.expert_ffn_grad %de0, %r0, %w1_0, %w2_0 activation = gelu : (tensor<2x16x16xf32>, tensor<2x16x16xf32>, tensor<2x16x32xf32>, tensor<2x32x16xf32>) -> (tensor<2x16x16xf32>, tensor<2x16x32xf32>, tensor<2x32x16xf32>)
  %dbuf0 = lina.all_to_all %dr0 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x16x16xf32> -> tensor<4x8x16xf32>
  %da0_d = lina.dispatch_grad %dbuf0, %ids0 : (tensor<4x8x16xf32>, tensor<32x1xi32>) -> tensor<32x16xf32>
  %da0_g, %dwg0 = lina.gate_grad %dgw0, %a0, %wg0, %ids0 : (tensor<32x1xf32>, tensor<32x16xf32>, tensor<16x4xf32>, tensor<32x1xi32>) -> (tensor<32x16xf32>, tensor<16x4xf32>)
  %da0_s = arith.addf %dy, %da0_d : tensor<32x16xf32>
  %da0 = arith.addf %da0_s, %da0_g : tensor<32x16xf32>
  %dx0, %dwd0 = lina.dense_grad %da0, %x, %wd0 activation = gelu : (tensor<32x16xf32>, tensor<32x16xf32>, tensor<16x16xf32>) -> (tensor<32x16xf32>, tensor<16x16xf32>)
  %gwd0 = lina.all_reduce %dwd0 group = #lina.group<@world, "dp"> reduction = sum : tensor<16x16xf32>
  %gwg0 = lina.all_reduce %dwg0 group = #lina.group<@world, "dp"> reduction = sum : tensor<16x4xf32>
  return %x1, %dx0, %gwd0, %gwg0, %dw1_0, %dw2_0 : tensor<32x16xf32>, tensor<32x16xf32>, tensor<16x16xf32>, tensor<16x4xf32>, tensor<2x16x32xf32>, tensor<2x32x16xf32>
}
