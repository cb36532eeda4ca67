// RUN: lina-opt %s -split-input-file -verify-diagnostics --lina-overlap-microbatches
// RUN: not lina-opt %s -split-input-file --lina-overlap-microbatches="microbatches=0" 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not lina-opt %s -split-input-file --lina-overlap-microbatches="microbatches=-3" 2>&1 | FileCheck %s --check-prefix=NEG
// RUN: not lina-opt %s -split-input-file --lina-overlap-microbatches="microbatches=two" 2>&1 | FileCheck %s --check-prefix=TEXT

// ZERO: error: invalid value 0 for option 'microbatches': must be positive
// NEG: error: invalid value -3 for option 'microbatches': must be positive
// TEXT: for the --microbatches option: 'two' value invalid

// expected-error @+1 {{microbatches=2 does not divide the 7 tokens of argument #0}}
func.func @odd_tokens(%x: tensor<7x8xf32>, %w: tensor<8x8xf32>) -> tensor<7x8xf32> {
  %y = lina.dense %x, %w activation = none : (tensor<7x8xf32>, tensor<8x8xf32>) -> tensor<7x8xf32>
  return %y : tensor<7x8xf32>
}

// -----

func.func @foreign_op(%x: tensor<8x8xf32>, %w: tensor<8x8xf32>) -> tensor<8x8xf32> {
  %y = lina.dense %x, %w activation = none : (tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
  // expected-error @+1 {{'arith.mulf' op reads a token value but cannot be split into micro-batches}}
  %z = arith.mulf %y, %y : tensor<8x8xf32>
  return %z : tensor<8x8xf32>
}

// -----

func.func @dispatch_without_gate(%x: tensor<8x4xf32>, %ids: tensor<8x1xi32>) -> tensor<2x5x4xf32> {
  // expected-error @+1 {{'lina.dispatch' op reads a token value but cannot be split into micro-batches: its expert ids do not come from a lina.gate of the function}}
  %rows = lina.dispatch %x, %ids : (tensor<8x4xf32>, tensor<8x1xi32>) -> tensor<2x5x4xf32>
  return %rows : tensor<2x5x4xf32>
}

// -----

// A weight gradient, summed over the micro-batches, cannot feed the tokens.
func.func @gradient_feeds_tokens(%x: tensor<8x8xf32>, %w: tensor<8x8xf32>, %dy: tensor<8x8xf32>) -> tensor<8x8xf32> {
  %dx, %dw = lina.dense_grad %dy, %x, %w activation = none : (tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>) -> (tensor<8x8xf32>, tensor<8x8xf32>)
  // expected-error @+1 {{'lina.dense' op reads both token values and a weight gradient summed over micro-batches}}
  %y = lina.dense %dx, %dw activation = none : (tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
  return %y : tensor<8x8xf32>
}

// -----

lina.grid @world shape = [2] groups = {dp = array<i64: 0>}

func.func @reduced_gradient_feeds_tokens(%x: tensor<8x8xf32>, %w: tensor<8x8xf32>, %dy: tensor<8x8xf32>) -> tensor<8x8xf32> {
  %dx, %dw = lina.dense_grad %dy, %x, %w activation = none : (tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>) -> (tensor<8x8xf32>, tensor<8x8xf32>)
  %g = lina.all_reduce %dw group = #lina.group<@world, "dp"> reduction = sum : tensor<8x8xf32>
  // expected-error @+1 {{'lina.dense' op reads a value computed from weight gradients summed over micro-batches; it cannot be split}}
  %y = lina.dense %dx, %g activation = none : (tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
  return %y : tensor<8x8xf32>
}

// -----

lina.grid @world shape = [2] groups = {ep = array<i64: 0>}

// expected-error @+1 {{result #0 carries tokens in a dispatch layout and cannot be reassembled from micro-batches}}
func.func @dispatch_layout_result(%x: tensor<8x4xf32>, %wg: tensor<4x2xf32>) -> tensor<2x5x4xf32> {
  %ids, %gw = lina.gate %x, %wg experts = 2 top_k = 1 capacity_factor = 1.25 : (tensor<8x4xf32>, tensor<4x2xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>)
  %rows = lina.dispatch %x, %ids : (tensor<8x4xf32>, tensor<8x1xi32>) -> tensor<2x5x4xf32>
  return %rows : tensor<2x5x4xf32>
}

// -----

func.func @slice_of_some_tokens(%x: tensor<8x8xf32>, %w: tensor<8x8xf32>) -> tensor<4x8xf32> {
  %y = lina.dense %x, %w activation = none : (tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
  // expected-error @+1 {{'tensor.extract_slice' op reads a token value but cannot be split into micro-batches: only static slices that keep every token (all of dimension 0) can be split}}
  %s = tensor.extract_slice %y[0, 0] [4, 8] [1, 1] : tensor<8x8xf32> to tensor<4x8xf32>
  return %s : tensor<4x8xf32>
}

// -----

func.func @concat_along_tokens(%x: tensor<8x8xf32>, %w: tensor<8x8xf32>) -> tensor<16x8xf32> {
  %y = lina.dense %x, %w activation = none : (tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
  // expected-error @+1 {{'tensor.concat' op reads a token value but cannot be split into micro-batches: a concatenation along the tokens cannot be split}}
  %c = tensor.concat dim(0) %y, %y : (tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<16x8xf32>
  return %c : tensor<16x8xf32>
}

// -----

func.func @concat_with_a_non_splat(%x: tensor<8x8xf32>, %w: tensor<8x8xf32>, %z: tensor<8x4xf32>) -> tensor<8x12xf32> {
  %y = lina.dense %x, %w activation = none : (tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
  // expected-error @+1 {{'tensor.concat' op reads a token value but cannot be split into micro-batches: only splat constants can be joined to token values}}
  %c = tensor.concat dim(1) %y, %z : (tensor<8x8xf32>, tensor<8x4xf32>) -> tensor<8x12xf32>
  return %c : tensor<8x12xf32>
}

// -----

lina.grid @world shape = [2] groups = {ep = array<i64: 0>}

// A slice of a dispatch buffer (capacity along dimension 1) is not a slice
// of tokens: --lina-pipeline-experts must run after this pass.
func.func @slice_of_a_dispatch_buffer(%x: tensor<8x4xf32>, %wg: tensor<4x2xf32>) -> tensor<2x2x4xf32> {
  %ids, %gw = lina.gate %x, %wg experts = 2 top_k = 1 capacity_factor = 1.0 : (tensor<8x4xf32>, tensor<4x2xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>)
  %rows = lina.dispatch %x, %ids : (tensor<8x4xf32>, tensor<8x1xi32>) -> tensor<2x4x4xf32>
  // expected-error @+1 {{'tensor.extract_slice' op reads a token value but cannot be split into micro-batches: only slices of values with tokens along dimension 0 can be split}}
  %c0 = tensor.extract_slice %rows[0, 0, 0] [2, 2, 4] [1, 1, 1] : tensor<2x4x4xf32> to tensor<2x2x4xf32>
  return %c0 : tensor<2x2x4xf32>
}

// -----

lina.grid @world shape = [2] groups = {ep = array<i64: 0>}

func.func @variable_all_to_all(%x: tensor<8x4xf32>, %w: tensor<4x4xf32>, %s: tensor<2xi64>, %r: tensor<2xi64>) -> tensor<12x4xf32> {
  %y = lina.dense %x, %w activation = none : (tensor<8x4xf32>, tensor<4x4xf32>) -> tensor<8x4xf32>
  // expected-error @+1 {{'lina.all_to_all' op reads a token value but cannot be split into micro-batches: the counts of a variable all_to_all are not split}}
  %v = lina.all_to_all %y counts(%s, %r : tensor<2xi64>, tensor<2xi64>) group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 0 : tensor<8x4xf32> -> tensor<12x4xf32>
  return %v : tensor<12x4xf32>
}
