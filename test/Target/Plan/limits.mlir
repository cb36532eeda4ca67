// RUN: lina-translate --lina-to-plan -split-input-file -verify-diagnostics %s
// RUN: not lina-translate --lina-to-plan -split-input-file %s 2>&1 | FileCheck %s

// Sizes are checked before anything is allocated or looped over: a grid of
// 2^41 ranks is an error at once (no "world_size": 0, no rank loop), and
// buffers, views and slices beyond the limits or outside their source are
// errors naming what is wrong. No plan is written.

// CHECK: error: 'lina.grid' op grid of shape [2199023255552] has 2199023255552 ranks; the limit is 1048576
// expected-error @+1 {{grid of shape [2199023255552] has 2199023255552 ranks; the limit is 1048576}}
lina.grid @world shape = [2199023255552] groups = {dp = array<i64: 0>}

func.func @step(%a: tensor<4xf32>) -> tensor<4xf32> {
  %0 = lina.all_reduce %a group = #lina.group<@world, "dp"> reduction = sum : tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

lina.grid @world shape = [2] groups = {dp = array<i64: 0>}

// The tensor dialect accepts a static slice that runs past its source; the
// plan would read out of bounds, so the translation refuses it.
func.func @slice_out_of_bounds(%a: tensor<4x4xf32>) -> tensor<4x4xf32> {
  // CHECK: error: lina-to-plan: slice [2, 2 + 4) of dimension 0 is outside the source's size 4
  // expected-error @+1 {{lina-to-plan: slice [2, 2 + 4) of dimension 0 is outside the source's size 4}}
  %s = tensor.extract_slice %a[2, 0] [4, 4] [1, 1] : tensor<4x4xf32> to tensor<4x4xf32>
  return %s : tensor<4x4xf32>
}

// -----

lina.grid @world shape = [2] groups = {dp = array<i64: 0>}

func.func @slice_non_contiguous_out_of_bounds(%a: tensor<4x4xf32>) -> tensor<2x2xf32> {
  // CHECK: error: lina-to-plan: slice [3, 3 + 2) of dimension 1 is outside the source's size 4
  // expected-error @+1 {{lina-to-plan: slice [3, 3 + 2) of dimension 1 is outside the source's size 4}}
  %s = tensor.extract_slice %a[0, 3] [2, 2] [1, 1] : tensor<4x4xf32> to tensor<2x2xf32>
  return %s : tensor<2x2xf32>
}

// -----

lina.grid @world shape = [2] groups = {dp = array<i64: 0>}

// An argument no lina op reads is still a plan buffer, bounded like one.
// CHECK: error: lina-to-plan: a buffer of type 'tensor<4611686018427387968x4xf32>' is too large: element count overflows a 64-bit integer; the limit is 281474976710656
// expected-error @+1 {{lina-to-plan: a buffer of type 'tensor<4611686018427387968x4xf32>' is too large: element count overflows a 64-bit integer}}
func.func @huge_argument(%a: tensor<4611686018427387968x4xf32>) -> tensor<4611686018427387968x4xf32> {
  return %a : tensor<4611686018427387968x4xf32>
}

// -----

lina.grid @world shape = [2] groups = {dp = array<i64: 0>}

// CHECK: error: lina-to-plan: a buffer of type 'tensor<281474976710657xf32>' is too large: element count is 281474976710657; the limit is 281474976710656
// expected-error @+1 {{element count is 281474976710657; the limit is 281474976710656}}
func.func @reshaped(%a: tensor<281474976710657xf32>) -> tensor<281474976710657x1xf32> {
  %0 = tensor.expand_shape %a [[0, 1]] output_shape [281474976710657, 1] : tensor<281474976710657xf32> into tensor<281474976710657x1xf32>
  return %0 : tensor<281474976710657x1xf32>
}

// -----

lina.grid @world shape = [2] groups = {ep = array<i64: 0>}

// +inf is no JSON number: the IR verifier rejects it before translation.
func.func @inf_capacity(%x: tensor<4x4xf32>, %w: tensor<4x8xf32>) -> tensor<4x2xi32> {
  // CHECK: error: 'lina.gate' op attribute 'capacity_factor' failed to satisfy constraint: 64-bit float attribute whose value is finite and positive
  // expected-error @+1 {{64-bit float attribute whose value is finite and positive}}
  %ids, %gw = lina.gate %x, %w experts = 8 top_k = 2 capacity_factor = 0x7FF0000000000000 : (tensor<4x4xf32>, tensor<4x8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  return %ids : tensor<4x2xi32>
}
