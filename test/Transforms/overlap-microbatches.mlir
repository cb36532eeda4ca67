// RUN: lina-opt %s --lina-overlap-microbatches | FileCheck %s
// RUN: lina-opt %s --lina-overlap-microbatches="microbatches=1" | FileCheck %s --check-prefix=ONE
// RUN: lina-opt %s --lina-training-pipeline="microbatches=2 partition-bytes=256 chunks=1" | FileCheck %s --check-prefix=PIPE
// RUN: lina-opt %s --lina-overlap-microbatches="microbatches=4" | FileCheck %s --check-prefix=FOUR
// RUN: lina-opt %s --lina-training-pipeline="microbatches=2 partition-bytes=256 chunks=2" | FileCheck %s --check-prefix=CHUNKS

// One layer (forward and backward) of bench/gen_moe_step.py: 8 tokens,
// hidden 8, 4 experts top-2 over ep=2, dp=2. Two micro-batches of 4 tokens,
// interleaved at every all_to_all.

// The token arguments (x and dy) are sliced; weights are not.
// CHECK-LABEL: func.func @train_step
// CHECK-DAG: %[[XA:.*]] = tensor.extract_slice %arg0[0, 0] [4, 8] [1, 1] : tensor<8x8xf32> to tensor<4x8xf32>
// CHECK-DAG: %[[XB:.*]] = tensor.extract_slice %arg0[4, 0] [4, 8] [1, 1]
// CHECK-DAG: %[[DYA:.*]] = tensor.extract_slice %arg6[0, 0] [4, 8] [1, 1]
// CHECK-DAG: %[[DYB:.*]] = tensor.extract_slice %arg6[4, 0] [4, 8] [1, 1]
// Micro-batch A up to its all_to_all; the gate's capacity is per micro-batch
// (ceil(4 * 2 / 4 * 1.25) = 3 rows per expert).
// CHECK: lina.dense %[[XA]], %arg1 {{.*}} -> tensor<4x24xf32>
// CHECK: %[[IDSA:.*]], %[[GWA:.*]] = lina.gate {{.*}} -> (tensor<4x2xi32>, tensor<4x2xf32>)
// CHECK: lina.dispatch {{.*}} -> tensor<4x3x8xf32>
// CHECK: %[[RA:.*]] = lina.all_to_all {{.*}} : tensor<4x3x8xf32> -> tensor<2x6x8xf32>
// Then micro-batch B, while A's all_to_all is in flight.
// CHECK: lina.dense %[[XB]], %arg1
// CHECK: lina.gate
// CHECK: %[[RB:.*]] = lina.all_to_all {{.*}} -> tensor<2x6x8xf32>
// CHECK: lina.expert_ffn %[[RA]]
// CHECK: lina.all_to_all {{.*}} split_axis = 1 concat_axis = 0 : tensor<2x6x8xf32> -> tensor<4x3x8xf32>
// CHECK: lina.expert_ffn %[[RB]]
// Backward: the weight gradients of the two micro-batches are added where
// they are first used, by their all_reduce.
// CHECK: %{{[^,]*}}, %[[W1A:[^,]*]], %{{[^ ]*}} = lina.expert_ffn_grad
// CHECK: %{{[^,]*}}, %[[W1B:[^,]*]], %{{[^ ]*}} = lina.expert_ffn_grad
// CHECK: %[[SUM:.*]] = arith.addf %[[W1A]], %[[W1B]] : tensor<2x8x16xf32>
// CHECK: lina.all_reduce %[[SUM]] group = <@world, "edp">
// Each of the other four gradients is reduced once.
// CHECK-COUNT-4: lina.all_reduce
// CHECK-NOT: lina.all_reduce
// Token results are reassembled in micro-batch order.
// CHECK: %[[Y:.*]] = tensor.concat dim(0) {{.*}} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<8x8xf32>
// CHECK: %[[DX:.*]] = tensor.concat dim(0)
// CHECK: return %[[Y]], %[[DX]],

// ONE-NOT: tensor.extract_slice
// ONE: lina.dense %arg0

// PIPE: tensor.extract_slice %arg0[0, 0] [4, 8]
// PIPE: lina.all_to_all {{.*}}priority = #lina.priority<high>

// Chunking after the split keeps the interleaving: micro-batch A's chunks
// are all sent before micro-batch B's dense block, B's before A's FFN.
// CHUNKS: lina.dense %extracted_slice,
// CHUNKS: lina.all_to_all {{.*}}chunk<index = 0, count = 2>
// CHUNKS: lina.all_to_all {{.*}}chunk<index = 1, count = 2>
// CHUNKS: lina.dense %extracted_slice_0,
// CHUNKS: lina.all_to_all {{.*}}chunk<index = 0, count = 2>
// CHUNKS: lina.all_to_all {{.*}}chunk<index = 1, count = 2>
// CHUNKS: lina.expert_ffn

// Four micro-batches of 2 tokens: capacity ceil(2 * 2 / 4 * 1.25) = 2.
// FOUR-COUNT-4: tensor.extract_slice %arg0
// FOUR: lina.dispatch {{.*}} -> tensor<4x2x8xf32>
// FOUR-COUNT-4: lina.gate
// FOUR: tensor.concat dim(0) {{.*}} -> tensor<8x8xf32>

lina.grid @world shape = [2, 2] groups = {dp = array<i64: 0, 1>, edp = array<i64: 0>, ep = array<i64: 1>}
func.func @train_step(%x: tensor<8x8xf32>, %wq0: tensor<8x24xf32>, %wo0: tensor<24x8xf32>, %wg0: tensor<8x4xf32>, %w1_0: tensor<2x8x16xf32>, %w2_0: tensor<2x16x8xf32>, %dy: tensor<8x8xf32>)
    -> (tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x24xf32>, tensor<24x8xf32>, tensor<8x4xf32>, tensor<2x8x16xf32>, tensor<2x16x8xf32>) {
  %q0 = lina.dense %x, %wq0 activation = none : (tensor<8x8xf32>, tensor<8x24xf32>) -> tensor<8x24xf32>
  %o0 = lina.dense %q0, %wo0 activation = none : (tensor<8x24xf32>, tensor<24x8xf32>) -> tensor<8x8xf32>
  %a0 = arith.addf %x, %o0 : tensor<8x8xf32>
  %ids0, %gw0 = lina.gate %a0, %wg0 experts = 4 top_k = 2 capacity_factor = 1.25 : (tensor<8x8xf32>, tensor<8x4xf32>) -> (tensor<8x2xi32>, tensor<8x2xf32>)
  %buf0 = lina.dispatch %a0, %ids0 : (tensor<8x8xf32>, tensor<8x2xi32>) -> tensor<4x5x8xf32>
  %r0 = lina.all_to_all %buf0 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x5x8xf32> -> tensor<2x10x8xf32>
  %e0 = lina.expert_ffn %r0, %w1_0, %w2_0 activation = gelu : (tensor<2x10x8xf32>, tensor<2x8x16xf32>, tensor<2x16x8xf32>) -> tensor<2x10x8xf32>
  %b0 = lina.all_to_all %e0 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x10x8xf32> -> tensor<4x5x8xf32>
  %c0 = lina.combine %b0, %ids0, %gw0 : (tensor<4x5x8xf32>, tensor<8x2xi32>, tensor<8x2xf32>) -> tensor<8x8xf32>
  %x1 = arith.addf %a0, %c0 : tensor<8x8xf32>
  %db0, %dgw0 = lina.combine_grad %dy, %b0, %ids0, %gw0 : (tensor<8x8xf32>, tensor<4x5x8xf32>, tensor<8x2xi32>, tensor<8x2xf32>) -> (tensor<4x5x8xf32>, tensor<8x2xf32>)
  %de0 = lina.all_to_all %db0 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x5x8xf32> -> tensor<2x10x8xf32>
  %dr0, %dw1_0, %dw2_0 = lina.expert_ffn_grad %de0, %r0, %w1_0, %w2_0 activation = gelu : (tensor<2x10x8xf32>, tensor<2x10x8xf32>, tensor<2x8x16xf32>, tensor<2x16x8xf32>) -> (tensor<2x10x8xf32>, tensor<2x8x16xf32>, tensor<2x16x8xf32>)
  %dbuf0 = lina.all_to_all %dr0 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x10x8xf32> -> tensor<4x5x8xf32>
  %dad0 = lina.dispatch_grad %dbuf0, %ids0 : (tensor<4x5x8xf32>, tensor<8x2xi32>) -> tensor<8x8xf32>
  %dag0, %dwg0 = lina.gate_grad %dgw0, %a0, %wg0, %ids0 : (tensor<8x2xf32>, tensor<8x8xf32>, tensor<8x4xf32>, tensor<8x2xi32>) -> (tensor<8x8xf32>, tensor<8x4xf32>)
  %das0 = arith.addf %dy, %dad0 : tensor<8x8xf32>
  %da0 = arith.addf %das0, %dag0 : tensor<8x8xf32>
  %dq0, %dwo0 = lina.dense_grad %da0, %q0, %wo0 activation = none : (tensor<8x8xf32>, tensor<8x24xf32>, tensor<24x8xf32>) -> (tensor<8x24xf32>, tensor<24x8xf32>)
  %dxq0, %dwq0 = lina.dense_grad %dq0, %x, %wq0 activation = none : (tensor<8x24xf32>, tensor<8x8xf32>, tensor<8x24xf32>) -> (tensor<8x8xf32>, tensor<8x24xf32>)
  %dx0 = arith.addf %da0, %dxq0 : tensor<8x8xf32>
  %gwq0 = lina.all_reduce %dwq0 group = #lina.group<@world, "dp"> reduction = sum : tensor<8x24xf32>
  %gwo0 = lina.all_reduce %dwo0 group = #lina.group<@world, "dp"> reduction = sum : tensor<24x8xf32>
  %gwg0 = lina.all_reduce %dwg0 group = #lina.group<@world, "dp"> reduction = sum : tensor<8x4xf32>
  %gw1_0 = lina.all_reduce %dw1_0 group = #lina.group<@world, "edp"> reduction = sum : tensor<2x8x16xf32>
  %gw2_0 = lina.all_reduce %dw2_0 group = #lina.group<@world, "edp"> reduction = sum : tensor<2x16x8xf32>
  return %x1, %dx0, %gwq0, %gwo0, %gwg0, %gw1_0, %gw2_0 : tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x24xf32>, tensor<24x8xf32>, tensor<8x4xf32>, tensor<2x8x16xf32>, tensor<2x16x8xf32>
}
