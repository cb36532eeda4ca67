// RUN: lina-opt %s -split-input-file -verify-diagnostics --lina-pipeline-experts="chunks=2" | FileCheck %s
// RUN: lina-opt %s -split-input-file --lina-pipeline-experts="chunks=2" 2>/dev/null | lina-opt -split-input-file > /dev/null

// A chain whose compute reads the received tokens through another operand
// than the chunked one cannot be split: a chunk's compute would need the
// whole tensor, which exists only after the last chunk. The chain is left
// whole, with a remark, and the output is valid IR (it used to fail with
// "operand #0 does not dominate this use").

lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

// CHECK-LABEL: func @tokens_as_weights
// CHECK-NOT: chunk
// CHECK: %[[R:.*]] = lina.all_to_all %{{.*}} split_axis = 0 concat_axis = 1 : tensor<4x4x16xf32> -> tensor<1x16x16xf32>
// CHECK: %[[E:.*]] = lina.expert_ffn %[[R]], %[[R]], %[[R]] activation = gelu
// CHECK: lina.all_to_all %[[E]] {{.*}} split_axis = 1 concat_axis = 0
// CHECK-NOT: chunk
func.func @tokens_as_weights(%buf: tensor<4x4x16xf32>) -> tensor<4x4x16xf32> {
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x4x16xf32> -> tensor<1x16x16xf32>
  // expected-remark @+1 {{lina-pipeline-experts: not splitting this chain: operand #1 also reads the received tokens, which a chunk cannot provide}}
  %e = lina.expert_ffn %r, %r, %r activation = gelu : (tensor<1x16x16xf32>, tensor<1x16x16xf32>, tensor<1x16x16xf32>) -> tensor<1x16x16xf32>
  %b = lina.all_to_all %e group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<1x16x16xf32> -> tensor<4x4x16xf32>
  return %b : tensor<4x4x16xf32>
}

// -----

lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

// Only the second weight reads the tokens.
// CHECK-LABEL: func @tokens_as_w2
// CHECK-NOT: chunk
// CHECK: return
func.func @tokens_as_w2(%buf: tensor<4x4x16xf32>, %w1: tensor<1x16x16xf32>) -> tensor<4x4x16xf32> {
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x4x16xf32> -> tensor<1x16x16xf32>
  // expected-remark @+1 {{operand #2 also reads the received tokens}}
  %e = lina.expert_ffn %r, %w1, %r activation = relu : (tensor<1x16x16xf32>, tensor<1x16x16xf32>, tensor<1x16x16xf32>) -> tensor<1x16x16xf32>
  %b = lina.all_to_all %e group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<1x16x16xf32> -> tensor<4x4x16xf32>
  return %b : tensor<4x4x16xf32>
}

// -----

lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

// Backward: the received gradient is also the saved input.
// CHECK-LABEL: func @grad_as_input
// CHECK-NOT: chunk
// CHECK: lina.expert_ffn_grad %[[G:[^,]*]], %[[G]],
// CHECK-NOT: chunk
func.func @grad_as_input(%dbuf: tensor<4x4x16xf32>, %w1: tensor<1x16x32xf32>, %w2: tensor<1x32x16xf32>) -> (tensor<4x4x16xf32>, tensor<1x16x32xf32>, tensor<1x32x16xf32>) {
  %g = lina.all_to_all %dbuf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x4x16xf32> -> tensor<1x16x16xf32>
  // expected-remark @+1 {{operand #1 also reads the received tokens}}
  %din, %dw1, %dw2 = lina.expert_ffn_grad %g, %g, %w1, %w2 activation = gelu : (tensor<1x16x16xf32>, tensor<1x16x16xf32>, tensor<1x16x32xf32>, tensor<1x32x16xf32>) -> (tensor<1x16x16xf32>, tensor<1x16x32xf32>, tensor<1x32x16xf32>)
  %b = lina.all_to_all %din group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<1x16x16xf32> -> tensor<4x4x16xf32>
  return %b, %dw1, %dw2 : tensor<4x4x16xf32>, tensor<1x16x32xf32>, tensor<1x32x16xf32>
}

// -----

lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

// The same shapes with distinct weights are split as usual.
// CHECK-LABEL: func @distinct_weights
// CHECK: lina.expert_ffn {{.*}}chunk = #lina.chunk<index = 0, count = 2>
// CHECK: lina.expert_ffn {{.*}}chunk = #lina.chunk<index = 1, count = 2>
func.func @distinct_weights(%buf: tensor<4x4x16xf32>, %w1: tensor<1x16x16xf32>, %w2: tensor<1x16x16xf32>) -> tensor<4x4x16xf32> {
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x4x16xf32> -> tensor<1x16x16xf32>
  %e = lina.expert_ffn %r, %w1, %w2 activation = gelu : (tensor<1x16x16xf32>, tensor<1x16x16xf32>, tensor<1x16x16xf32>) -> tensor<1x16x16xf32>
  %b = lina.all_to_all %e group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<1x16x16xf32> -> tensor<4x4x16xf32>
  return %b : tensor<4x4x16xf32>
}
