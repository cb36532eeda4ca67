// RUN: lina-opt %s -split-input-file --lina-split-expert-grad | FileCheck %s
// RUN: lina-opt %s -split-input-file --lina-split-expert-grad="separate-weight-grads=false" | FileCheck %s --check-prefix=FUSED
// RUN: lina-opt %s -split-input-file --lina-split-expert-grad="report=true" -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT
// RUN: lina-opt %s -split-input-file --lina-split-expert-grad="report=true separate-weight-grads=false" -o /dev/null 2>&1 | FileCheck %s --check-prefix=FUSED-REPORT
// Idempotent: the second run finds nothing to split.
// RUN: lina-opt %s -split-input-file --lina-split-expert-grad > %t.once.mlir
// RUN: lina-opt %t.once.mlir -split-input-file --lina-split-expert-grad | diff %t.once.mlir -
// The training pipeline splits by default; split-expert-grad=false keeps the
// op, separate-weight-grads=false keeps the weight half one op.
// RUN: lina-opt %s -split-input-file --lina-training-pipeline="partition-bytes=256 chunks=1" | FileCheck %s --check-prefix=PIPE
// RUN: lina-opt %s -split-input-file --lina-training-pipeline="partition-bytes=256 chunks=1 split-expert-grad=false" | FileCheck %s --check-prefix=NOSPLIT
// RUN: lina-opt %s -split-input-file --lina-training-pipeline="partition-bytes=256 chunks=1 separate-weight-grads=false" | FileCheck %s --check-prefix=PIPE-FUSED

// REPORT: remark: lina-split-expert-grad: split 2 expert_ffn_grad ops, 2 weight halves placed where the compute stream would wait for an all_to_all, 0 second weight gradients placed before their first use
// REPORT: remark: lina-split-expert-grad: split 1 expert_ffn_grad ops, 1 weight halves placed where the compute stream would wait for an all_to_all, 1 second weight gradients
// REPORT: remark: lina-split-expert-grad: split 2 expert_ffn_grad ops, 2 weight halves placed where the compute stream would wait for an all_to_all, 2 second weight gradients
// REPORT: remark: lina-split-expert-grad: split 1 expert_ffn_grad ops, 0 weight halves placed where the compute stream would wait for an all_to_all, 0 second weight gradients
// REPORT: remark: lina-split-expert-grad: split 0 expert_ffn_grad ops, 0 weight halves placed where the compute stream would wait for an all_to_all, 0 second weight gradients
// FUSED-REPORT: remark: lina-split-expert-grad: split 2 expert_ffn_grad ops, 2 weight halves placed where the compute stream would wait for an all_to_all{{$}}

// PIPE-COUNT-2: lina.expert_ffn_grad_input
// PIPE-NOT: lina.expert_ffn_grad %
// PIPE-NOT: lina.expert_ffn_grad_weight
// PIPE-FUSED-COUNT-2: lina.expert_ffn_grad_weight
// PIPE-FUSED-NOT: lina.expert_weight_grad
// NOSPLIT-NOT: lina.expert_ffn_grad_input
// NOSPLIT: lina.expert_ffn_grad %

lina.grid @world shape = [2] groups = {ep = array<i64: 0>}

// Two interleaved micro-batches A and B of one backward MoE layer, as
// --lina-overlap-microbatches leaves them: the input halves stay in place,
// so each input gradient's all_to_all starts after three GEMMs; each weight
// half goes where the compute stream would wait for the network: before
// the first op that reads an all_to_all issued after its input half.
// CHECK-LABEL: func @interleaved
// FUSED-LABEL: func @interleaved
func.func @interleaved(%ra: tensor<1x8x4xf32>, %rb: tensor<1x8x4xf32>,
                       %dya: tensor<1x8x4xf32>, %dyb: tensor<1x8x4xf32>,
                       %w1: tensor<1x4x16xf32>, %w2: tensor<1x16x4xf32>)
    -> (tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<1x4x16xf32>, tensor<1x16x4xf32>) {
  // FUSED: %[[DA:.*]], %[[ACTA:.*]], %[[DZA:.*]] = lina.expert_ffn_grad_input %arg2, %arg0, %arg4, %arg5 activation = gelu : (tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x4x16xf32>, tensor<1x16x4xf32>) -> (tensor<1x8x4xf32>, tensor<1x8x16xf32>, tensor<1x8x16xf32>)
  // FUSED-NEXT: %[[SA:.*]] = lina.all_to_all %[[DA]]
  // FUSED-NEXT: %[[DB:.*]], %[[ACTB:.*]], %[[DZB:.*]] = lina.expert_ffn_grad_input %arg3, %arg1
  // FUSED-NEXT: %[[SB:.*]] = lina.all_to_all %[[DB]]
  // FUSED-NEXT: %[[W1A:.*]], %[[W2A:.*]] = lina.expert_ffn_grad_weight %arg2, %arg0, %[[ACTA]], %[[DZA]] : (tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x8x16xf32>, tensor<1x8x16xf32>) -> (tensor<1x4x16xf32>, tensor<1x16x4xf32>)
  // FUSED-NEXT: %[[XA:.*]] = arith.addf %[[SA]], %[[SA]]
  // FUSED-NEXT: %[[W1B:.*]], %[[W2B:.*]] = lina.expert_ffn_grad_weight %arg3, %arg1, %[[ACTB]], %[[DZB]]
  // FUSED-NEXT: %[[XB:.*]] = arith.addf %[[SB]], %[[SB]]
  // FUSED-NEXT: arith.addf %[[W1A]], %[[W1B]]
  // FUSED-NEXT: arith.addf %[[W2A]], %[[W2B]]
  // Separate weight gradients: each micro-batch's two GEMMs stay at its
  // weight half's place, because the next op waits on the network.
  // CHECK: %[[DA:.*]], %[[ACTA:.*]], %[[DZA:.*]] = lina.expert_ffn_grad_input %arg2, %arg0, %arg4, %arg5
  // CHECK-NEXT: %[[SA:.*]] = lina.all_to_all %[[DA]]
  // CHECK-NEXT: %[[DB:.*]], %[[ACTB:.*]], %[[DZB:.*]] = lina.expert_ffn_grad_input %arg3, %arg1
  // CHECK-NEXT: %[[SB:.*]] = lina.all_to_all %[[DB]]
  // CHECK-NEXT: %[[W1A:.*]] = lina.expert_weight_grad %arg0, %[[DZA]] : (tensor<1x8x4xf32>, tensor<1x8x16xf32>) -> tensor<1x4x16xf32>
  // CHECK-NEXT: %[[W2A:.*]] = lina.expert_weight_grad %[[ACTA]], %arg2 : (tensor<1x8x16xf32>, tensor<1x8x4xf32>) -> tensor<1x16x4xf32>
  // CHECK-NEXT: arith.addf %[[SA]], %[[SA]]
  // CHECK-NEXT: %[[W1B:.*]] = lina.expert_weight_grad %arg1, %[[DZB]]
  // CHECK-NEXT: %[[W2B:.*]] = lina.expert_weight_grad %[[ACTB]], %arg3
  // CHECK-NEXT: arith.addf %[[SB]], %[[SB]]
  // CHECK-NEXT: arith.addf %[[W1A]], %[[W1B]]
  // CHECK-NEXT: arith.addf %[[W2A]], %[[W2B]]
  %da, %dw1a, %dw2a = lina.expert_ffn_grad %dya, %ra, %w1, %w2 activation = gelu : (tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x4x16xf32>, tensor<1x16x4xf32>) -> (tensor<1x8x4xf32>, tensor<1x4x16xf32>, tensor<1x16x4xf32>)
  %sa = lina.all_to_all %da group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<1x8x4xf32> -> tensor<2x4x4xf32>
  %db, %dw1b, %dw2b = lina.expert_ffn_grad %dyb, %rb, %w1, %w2 activation = gelu : (tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x4x16xf32>, tensor<1x16x4xf32>) -> (tensor<1x8x4xf32>, tensor<1x4x16xf32>, tensor<1x16x4xf32>)
  %sb = lina.all_to_all %db group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<1x8x4xf32> -> tensor<2x4x4xf32>
  %xa = arith.addf %sa, %sa : tensor<2x4x4xf32>
  %xb = arith.addf %sb, %sb : tensor<2x4x4xf32>
  %g1 = arith.addf %dw1a, %dw1b : tensor<1x4x16xf32>
  %g2 = arith.addf %dw2a, %dw2b : tensor<1x16x4xf32>
  return %xa, %xb, %g1, %g2 : tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<1x4x16xf32>, tensor<1x16x4xf32>
}

// -----

lina.grid @world shape = [2] groups = {ep = array<i64: 0>}

// A weight gradient used before the input gradient's all_to_all returns:
// the weight half goes right before that use. The chunk attribute stays on
// both halves.
// CHECK-LABEL: func @early_use
// FUSED-LABEL: func @early_use
func.func @early_use(%r: tensor<1x8x4xf32>, %dy: tensor<1x8x4xf32>,
                     %w1: tensor<1x4x16xf32>, %w2: tensor<1x16x4xf32>)
    -> (tensor<2x4x4xf32>, tensor<1x4x16xf32>, tensor<1x16x4xf32>) {
  // FUSED: lina.expert_ffn_grad_input {{.*}}chunk = #lina.chunk<index = 1, count = 2>
  // FUSED-NEXT: lina.all_to_all
  // FUSED-NEXT: %[[W1:.*]], %[[W2:.*]] = lina.expert_ffn_grad_weight {{.*}}chunk = #lina.chunk<index = 1, count = 2>
  // FUSED-NEXT: arith.addf %[[W1]], %[[W1]]
  // FUSED-NEXT: arith.addf
  // The first weight gradient's use is not a wait on the network, so the
  // second GEMM moves past it, to the op that waits on the all_to_all.
  // CHECK: lina.expert_ffn_grad_input {{.*}}chunk = #lina.chunk<index = 1, count = 2>
  // CHECK-NEXT: lina.all_to_all
  // CHECK-NEXT: %[[W1:.*]] = lina.expert_weight_grad {{.*}}chunk = #lina.chunk<index = 1, count = 2>
  // CHECK-NEXT: arith.addf %[[W1]], %[[W1]]
  // CHECK-NEXT: %[[W2:.*]] = lina.expert_weight_grad {{.*}}chunk = #lina.chunk<index = 1, count = 2>
  // CHECK-NEXT: arith.addf
  // CHECK-NEXT: return {{.*}}, %[[W2]]
  %d, %dw1, %dw2 = lina.expert_ffn_grad %dy, %r, %w1, %w2 activation = relu {chunk = #lina.chunk<index = 1, count = 2>} : (tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x4x16xf32>, tensor<1x16x4xf32>) -> (tensor<1x8x4xf32>, tensor<1x4x16xf32>, tensor<1x16x4xf32>)
  %s = lina.all_to_all %d group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<1x8x4xf32> -> tensor<2x4x4xf32>
  %u = arith.addf %dw1, %dw1 : tensor<1x4x16xf32>
  %x = arith.addf %s, %s : tensor<2x4x4xf32>
  return %x, %u, %dw2 : tensor<2x4x4xf32>, tensor<1x4x16xf32>, tensor<1x16x4xf32>
}

// -----

lina.grid @world shape = [2] groups = {ep = array<i64: 0>}

// Two micro-batches whose weight halves share a place (the sums of their
// gradients come before any wait on the network): the first gradients of
// both go there, the second ones right before their sum, so the first
// sum (and its all_reduce) is ready two GEMMs earlier. The second
// gradient is dw2 here because its sum comes first.
// CHECK-LABEL: func @shared_place
// FUSED-LABEL: func @shared_place
func.func @shared_place(%ra: tensor<1x8x4xf32>, %rb: tensor<1x8x4xf32>,
                        %dya: tensor<1x8x4xf32>, %dyb: tensor<1x8x4xf32>,
                        %w1: tensor<1x4x16xf32>, %w2: tensor<1x16x4xf32>)
    -> (tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<1x4x16xf32>, tensor<1x16x4xf32>) {
  // CHECK: %[[DA:.*]], %[[ACTA:.*]], %[[DZA:.*]] = lina.expert_ffn_grad_input %arg2, %arg0
  // CHECK-NEXT: lina.all_to_all %[[DA]]
  // CHECK-NEXT: %[[DB:.*]], %[[ACTB:.*]], %[[DZB:.*]] = lina.expert_ffn_grad_input %arg3, %arg1
  // CHECK-NEXT: %[[W2A:.*]] = lina.expert_weight_grad %[[ACTA]], %arg2
  // CHECK-NEXT: %[[W2B:.*]] = lina.expert_weight_grad %[[ACTB]], %arg3
  // CHECK-NEXT: %[[G2:.*]] = arith.addf %[[W2A]], %[[W2B]]
  // CHECK-NEXT: %[[W1A:.*]] = lina.expert_weight_grad %arg0, %[[DZA]]
  // CHECK-NEXT: %[[W1B:.*]] = lina.expert_weight_grad %arg1, %[[DZB]]
  // CHECK-NEXT: %[[G1:.*]] = arith.addf %[[W1A]], %[[W1B]]
  // CHECK-NEXT: arith.addf
  // CHECK-NEXT: lina.all_to_all %[[DB]]
  // FUSED: lina.expert_ffn_grad_weight %arg2, %arg0
  // FUSED-NEXT: lina.expert_ffn_grad_weight %arg3, %arg1
  %da, %dw1a, %dw2a = lina.expert_ffn_grad %dya, %ra, %w1, %w2 activation = gelu : (tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x4x16xf32>, tensor<1x16x4xf32>) -> (tensor<1x8x4xf32>, tensor<1x4x16xf32>, tensor<1x16x4xf32>)
  %sa = lina.all_to_all %da group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<1x8x4xf32> -> tensor<2x4x4xf32>
  %db, %dw1b, %dw2b = lina.expert_ffn_grad %dyb, %rb, %w1, %w2 activation = gelu : (tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x4x16xf32>, tensor<1x16x4xf32>) -> (tensor<1x8x4xf32>, tensor<1x4x16xf32>, tensor<1x16x4xf32>)
  %g2 = arith.addf %dw2a, %dw2b : tensor<1x16x4xf32>
  %g1 = arith.addf %dw1a, %dw1b : tensor<1x4x16xf32>
  %xa = arith.addf %sa, %sa : tensor<2x4x4xf32>
  %sb = lina.all_to_all %db group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<1x8x4xf32> -> tensor<2x4x4xf32>
  %xb = arith.addf %sb, %sb : tensor<2x4x4xf32>
  return %xa, %xb, %g1, %g2 : tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<1x4x16xf32>, tensor<1x16x4xf32>
}

// -----

// No all_to_all and no use inside the function but the return: the weight
// half follows the input half (the results equal the unsplit op's).
// CHECK-LABEL: func @alone
// FUSED-LABEL: func @alone
func.func @alone(%r: tensor<2x8x4xf32>, %dy: tensor<2x8x4xf32>,
                 %w1: tensor<2x4x16xf32>, %w2: tensor<2x16x4xf32>)
    -> (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) {
  // FUSED: %[[D:.*]], %[[A:.*]], %[[Z:.*]] = lina.expert_ffn_grad_input %arg1, %arg0, %arg2, %arg3 activation = relu
  // FUSED-NEXT: %[[W1:.*]], %[[W2:.*]] = lina.expert_ffn_grad_weight %arg1, %arg0, %[[A]], %[[Z]]
  // FUSED-NEXT: return %[[D]], %[[W1]], %[[W2]]
  // CHECK: %[[D:.*]], %[[A:.*]], %[[Z:.*]] = lina.expert_ffn_grad_input %arg1, %arg0, %arg2, %arg3 activation = relu
  // CHECK-NEXT: %[[W1:.*]] = lina.expert_weight_grad %arg0, %[[Z]]
  // CHECK-NEXT: %[[W2:.*]] = lina.expert_weight_grad %[[A]], %arg1
  // CHECK-NEXT: return %[[D]], %[[W1]], %[[W2]]
  %d, %dw1, %dw2 = lina.expert_ffn_grad %dy, %r, %w1, %w2 activation = relu : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>)
  return %d, %dw1, %dw2 : tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>
}

// -----

// Nothing to split.
// CHECK-LABEL: func @forward
// FUSED-LABEL: func @forward
func.func @forward(%r: tensor<2x8x4xf32>, %w1: tensor<2x4x16xf32>, %w2: tensor<2x16x4xf32>) -> tensor<2x8x4xf32> {
  // CHECK-NEXT: lina.expert_ffn
  %o = lina.expert_ffn %r, %w1, %w2 activation = gelu : (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}
