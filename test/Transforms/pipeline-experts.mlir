// RUN: lina-opt %s -split-input-file --lina-pipeline-experts="chunks=3" | FileCheck %s
// RUN: lina-opt %s -split-input-file --lina-pipeline-experts="chunks=1" | FileCheck %s --check-prefix=ONE
// RUN: lina-opt %s -split-input-file --lina-pipeline-experts="chunks=auto" | FileCheck %s --check-prefix=AUTO

lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

// A capacity of 8 in 3 chunks: 3, 3 and 2 rows. Every chunk is sent where
// the original all_to_all was, before chunk 0's FFN (ops between the
// all_to_all and the FFN, such as another micro-batch's, keep their place);
// the returned chunks are concatenated along the capacity
// dimension; the received tokens, also read by the backward pass, are
// reassembled in their original order.
// CHECK-LABEL: func @chain
// CHECK-SAME: (%[[BUF:[^:]*]]: tensor<8x8x16xf32>
// CHECK: %[[S0:.*]] = tensor.extract_slice %[[BUF]][0, 0, 0] [8, 3, 16] [1, 1, 1]
// CHECK: %[[A0:.*]] = lina.all_to_all %[[S0]] {{.*}} {chunk = #lina.chunk<index = 0, count = 3>} : tensor<8x3x16xf32> -> tensor<2x12x16xf32>
// CHECK: %[[S1:.*]] = tensor.extract_slice %[[BUF]][0, 3, 0] [8, 3, 16] [1, 1, 1]
// CHECK: %[[A1:.*]] = lina.all_to_all %[[S1]] {{.*}}index = 1, count = 3
// CHECK: %[[S2:.*]] = tensor.extract_slice %[[BUF]][0, 6, 0] [8, 2, 16] [1, 1, 1]
// CHECK: %[[A2:.*]] = lina.all_to_all %[[S2]] {{.*}} : tensor<8x2x16xf32> -> tensor<2x8x16xf32>
// CHECK: %[[F0:.*]] = lina.expert_ffn %[[A0]], {{.*}} activation = silu {chunk = #lina.chunk<index = 0, count = 3>}
// CHECK: %[[B0:.*]] = lina.all_to_all %[[F0]] {{.*}} split_axis = 1 concat_axis = 0 {chunk = #lina.chunk<index = 0, count = 3>} : tensor<2x12x16xf32> -> tensor<8x3x16xf32>
// CHECK: %[[F1:.*]] = lina.expert_ffn %[[A1]]
// CHECK: %[[B1:.*]] = lina.all_to_all %[[F1]]
// CHECK: %[[F2:.*]] = lina.expert_ffn %[[A2]]
// CHECK: %[[B2:.*]] = lina.all_to_all %[[F2]]
// CHECK: %[[OUT:.*]] = tensor.concat dim(1) %[[B0]], %[[B1]], %[[B2]] : {{.*}} -> tensor<8x8x16xf32>
// CHECK: %[[E0:.*]] = tensor.expand_shape %[[A0]] {{\[\[}}0], [1, 2], [3]] output_shape [2, 4, 3, 16]
// CHECK: %[[E1:.*]] = tensor.expand_shape %[[A1]]
// CHECK: %[[E2:.*]] = tensor.expand_shape %[[A2]] {{.*}} output_shape [2, 4, 2, 16]
// CHECK: %[[R:.*]] = tensor.concat dim(2) %[[E0]], %[[E1]], %[[E2]] : {{.*}} -> tensor<2x4x8x16xf32>
// CHECK: %[[RECV:.*]] = tensor.collapse_shape %[[R]] {{.*}} into tensor<2x32x16xf32>
// CHECK: return %[[OUT]], %[[RECV]]
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

// -----

lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

// Not a chain (the FFN result is used twice): left alone.
// CHECK-LABEL: func @not_a_chain
// CHECK-NOT: chunk
func.func @not_a_chain(%buf: tensor<8x8x16xf32>, %w1: tensor<2x16x64xf32>, %w2: tensor<2x64x16xf32>) -> (tensor<8x8x16xf32>, tensor<2x32x16xf32>) {
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x8x16xf32> -> tensor<2x32x16xf32>
  %e = lina.expert_ffn %r, %w1, %w2 activation = silu : (tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) -> tensor<2x32x16xf32>
  %b = lina.all_to_all %e group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x32x16xf32> -> tensor<8x8x16xf32>
  return %b, %e : tensor<8x8x16xf32>, tensor<2x32x16xf32>
}

// -----

lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

// A backward chain alone: each chunk's expert_ffn_grad reads its slots of
// the saved tokens (viewed once as [E, n, C, H]); the weight gradients are
// the sums of the chunks'.
// CHECK-LABEL: func @backward
// CHECK-SAME: (%[[DBUF:[^:]*]]: tensor<8x8x16xf32>, %[[R:[^:]*]]: tensor<2x32x16xf32>, %[[W1:[^:]*]]: tensor<2x16x64xf32>, %[[W2:[^:]*]]: tensor<2x64x16xf32>
// CHECK: %[[A0:.*]] = lina.all_to_all {{.*}}index = 0, count = 3{{.*}} : tensor<8x3x16xf32> -> tensor<2x12x16xf32>
// CHECK: %[[A1:.*]] = lina.all_to_all {{.*}}index = 1, count = 3{{.*}} : tensor<8x3x16xf32> -> tensor<2x12x16xf32>
// CHECK: %[[A2:.*]] = lina.all_to_all {{.*}}index = 2, count = 3{{.*}} : tensor<8x2x16xf32> -> tensor<2x8x16xf32>
// CHECK: %[[GRID:.*]] = tensor.expand_shape %[[R]] {{\[\[}}0], [1, 2], [3]] output_shape [2, 4, 8, 16]
// CHECK: %[[T0S:.*]] = tensor.extract_slice %[[GRID]][0, 0, 0, 0] [2, 4, 3, 16] [1, 1, 1, 1]
// CHECK: %[[T0:.*]] = tensor.collapse_shape %[[T0S]] {{.*}} into tensor<2x12x16xf32>
// CHECK: %[[D0:.*]], %[[G1_0:.*]], %[[G2_0:.*]] = lina.expert_ffn_grad %[[A0]], %[[T0]], %[[W1]], %[[W2]] activation = silu {chunk = #lina.chunk<index = 0, count = 3>}
// CHECK: %[[B0:.*]] = lina.all_to_all %[[D0]] {{.*}} split_axis = 1 concat_axis = 0 {chunk = #lina.chunk<index = 0, count = 3>} : tensor<2x12x16xf32> -> tensor<8x3x16xf32>
// CHECK-NOT: tensor.expand_shape
// CHECK: %[[T1S:.*]] = tensor.extract_slice %[[GRID]][0, 0, 3, 0] [2, 4, 3, 16]
// CHECK: %[[T1:.*]] = tensor.collapse_shape %[[T1S]]
// CHECK: %[[D1:.*]], %[[G1_1:.*]], %[[G2_1:.*]] = lina.expert_ffn_grad %[[A1]], %[[T1]], %[[W1]], %[[W2]] {{.*}}index = 1, count = 3
// CHECK: %[[B1:.*]] = lina.all_to_all %[[D1]]
// CHECK: %[[S1_01:.*]] = arith.addf %[[G1_0]], %[[G1_1]] : tensor<2x16x64xf32>
// CHECK: %[[S2_01:.*]] = arith.addf %[[G2_0]], %[[G2_1]] : tensor<2x64x16xf32>
// CHECK: %[[T2S:.*]] = tensor.extract_slice %[[GRID]][0, 0, 6, 0] [2, 4, 2, 16]
// CHECK: %[[T2:.*]] = tensor.collapse_shape %[[T2S]] {{.*}} into tensor<2x8x16xf32>
// CHECK: %[[D2:.*]], %[[G1_2:.*]], %[[G2_2:.*]] = lina.expert_ffn_grad %[[A2]], %[[T2]], %[[W1]], %[[W2]] {{.*}}index = 2, count = 3
// CHECK: %[[B2:.*]] = lina.all_to_all %[[D2]]
// CHECK: %[[S1:.*]] = arith.addf %[[S1_01]], %[[G1_2]]
// CHECK: %[[S2:.*]] = arith.addf %[[S2_01]], %[[G2_2]]
// CHECK: %[[OUT:.*]] = tensor.concat dim(1) %[[B0]], %[[B1]], %[[B2]] : {{.*}} -> tensor<8x8x16xf32>
// CHECK: return %[[OUT]], %[[S1]], %[[S2]]
func.func @backward(%dbuf: tensor<8x8x16xf32>, %r: tensor<2x32x16xf32>, %w1: tensor<2x16x64xf32>, %w2: tensor<2x64x16xf32>) -> (tensor<8x8x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) {
  %de = lina.all_to_all %dbuf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x8x16xf32> -> tensor<2x32x16xf32>
  %dr, %dw1, %dw2 = lina.expert_ffn_grad %de, %r, %w1, %w2 activation = silu : (tensor<2x32x16xf32>, tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) -> (tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>)
  %db = lina.all_to_all %dr group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x32x16xf32> -> tensor<8x8x16xf32>
  return %db, %dw1, %dw2 : tensor<8x8x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>
}

// -----

lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

// Forward and backward in one function: the backward chunks read the
// forward chunks directly, and the reassembly of the received tokens,
// which nothing else reads, is dropped.
// CHECK-LABEL: func @forward_and_backward
// CHECK: %[[F0:.*]] = lina.all_to_all {{.*}}split_axis = 0 concat_axis = 1 {chunk = #lina.chunk<index = 0, count = 3>} : tensor<8x3x16xf32>
// CHECK: %[[F1:.*]] = lina.all_to_all {{.*}}split_axis = 0 concat_axis = 1 {chunk = #lina.chunk<index = 1, count = 3>} : tensor<8x3x16xf32>
// CHECK: %[[F2:.*]] = lina.all_to_all {{.*}}split_axis = 0 concat_axis = 1 {chunk = #lina.chunk<index = 2, count = 3>} : tensor<8x2x16xf32>
// CHECK-NOT: tensor.expand_shape
// CHECK-NOT: concat dim(2)
// CHECK: lina.expert_ffn_grad %{{.*}}, %[[F0]], {{.*}}index = 0, count = 3
// CHECK: lina.expert_ffn_grad %{{.*}}, %[[F1]], {{.*}}index = 1, count = 3
// CHECK: lina.expert_ffn_grad %{{.*}}, %[[F2]], {{.*}}index = 2, count = 3
// CHECK-NOT: tensor.expand_shape
// CHECK: return
func.func @forward_and_backward(%buf: tensor<8x8x16xf32>, %dy: tensor<8x8x16xf32>, %w1: tensor<2x16x64xf32>, %w2: tensor<2x64x16xf32>) -> (tensor<8x8x16xf32>, tensor<8x8x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) {
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x8x16xf32> -> tensor<2x32x16xf32>
  %e = lina.expert_ffn %r, %w1, %w2 activation = silu : (tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) -> tensor<2x32x16xf32>
  %b = lina.all_to_all %e group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x32x16xf32> -> tensor<8x8x16xf32>
  %de = lina.all_to_all %dy group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x8x16xf32> -> tensor<2x32x16xf32>
  %dr, %dw1, %dw2 = lina.expert_ffn_grad %de, %r, %w1, %w2 activation = silu : (tensor<2x32x16xf32>, tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) -> (tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>)
  %db = lina.all_to_all %dr group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x32x16xf32> -> tensor<8x8x16xf32>
  return %b, %db, %dw1, %dw2 : tensor<8x8x16xf32>, tensor<8x8x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>
}

// -----

lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

// The received tokens are read inside the chain (before its last
// all_to_all): the chunks could not dominate that reader, so the chain is
// left alone.
// CHECK-LABEL: func @read_inside_chain
// CHECK-NOT: chunk
// CHECK: return
func.func @read_inside_chain(%buf: tensor<8x8x16xf32>, %w1: tensor<2x16x64xf32>, %w2: tensor<2x64x16xf32>) -> (tensor<8x8x16xf32>, tensor<2x32x16xf32>) {
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x8x16xf32> -> tensor<2x32x16xf32>
  %e = lina.expert_ffn %r, %w1, %w2 activation = silu : (tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) -> tensor<2x32x16xf32>
  %twice = arith.addf %r, %r : tensor<2x32x16xf32>
  %b = lina.all_to_all %e group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x32x16xf32> -> tensor<8x8x16xf32>
  return %b, %twice : tensor<8x8x16xf32>, tensor<2x32x16xf32>
}
