// RUN: lina-translate --lina-to-plan -split-input-file -verify-diagnostics %s
// RUN: not lina-translate --lina-to-plan -split-input-file %s 2>&1 | FileCheck %s

// Every unsupported construct is an error at its location naming what is
// unsupported; no plan is written.

lina.grid @world shape = [2] groups = {dp = array<i64: 0>}

func.func @unknown_op(%a: tensor<4x4xf32>) -> tensor<4x4xf32> {
  // CHECK: error: lina-to-plan: unsupported operation 'arith.mulf'; a plan holds lina ops, arith.addf, tensor.collapse_shape/expand_shape/extract_slice/concat and func.return
  // expected-error @+1 {{lina-to-plan: unsupported operation 'arith.mulf'}}
  %0 = arith.mulf %a, %a : tensor<4x4xf32>
  return %0 : tensor<4x4xf32>
}

// -----

// expected-note @+1 {{first grid here}}
lina.grid @world shape = [2] groups = {dp = array<i64: 0>}
// CHECK: error: lina-to-plan: expected exactly one lina.grid, found 2
// expected-error @+1 {{lina-to-plan: expected exactly one lina.grid, found 2}}
lina.grid @other shape = [4] groups = {ep = array<i64: 0>}

func.func @two_grids(%a: tensor<4xf32>) -> tensor<4xf32> {
  return %a : tensor<4xf32>
}

// -----

lina.grid @world shape = [2] groups = {dp = array<i64: 0>}

// CHECK: error: lina-to-plan: argument 0 has unsupported type 'tensor<?x16xf32>'; plan buffers need a statically shaped tensor
// expected-error @+1 {{argument 0 has unsupported type 'tensor<?x16xf32>'}}
func.func @dynamic(%a: tensor<?x16xf32>) -> tensor<?x16xf32> {
  return %a : tensor<?x16xf32>
}

// -----

lina.grid @world shape = [2] groups = {dp = array<i64: 0>}

// CHECK: error: lina-to-plan: argument 1 has unsupported type 'index'
// expected-error @+1 {{argument 1 has unsupported type 'index'}}
func.func @not_a_tensor(%a: tensor<4xf32>, %i: index) -> tensor<4xf32> {
  return %a : tensor<4xf32>
}

// -----

lina.grid @world shape = [2] groups = {dp = array<i64: 0>}

// CHECK: error: lina-to-plan: unsupported element type 'f64'; plan buffers are f32, bf16, f16, i32 or i64
// expected-error @+1 {{unsupported element type 'f64'}}
func.func @f64(%a: tensor<4xf64>) -> tensor<4xf64> {
  %0 = lina.all_reduce %a group = #lina.group<@world, "dp"> reduction = sum : tensor<4xf64>
  return %0 : tensor<4xf64>
}

// -----

lina.grid @world shape = [2] groups = {dp = array<i64: 0>}

func.func @strided(%a: tensor<8xf32>) -> tensor<4xf32> {
  // CHECK: error: lina-to-plan: unsupported slice with dynamic or non-unit offsets, sizes or strides
  // expected-error @+1 {{unsupported slice with dynamic or non-unit offsets, sizes or strides}}
  %0 = tensor.extract_slice %a[0] [4] [2] : tensor<8xf32> to tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

lina.grid @world shape = [2] groups = {dp = array<i64: 0>}

func.func @rank_reducing(%a: tensor<4x8xf32>) -> tensor<8xf32> {
  // CHECK: error: lina-to-plan: unsupported rank-reducing slice
  // expected-error @+1 {{unsupported rank-reducing slice}}
  %0 = tensor.extract_slice %a[1, 0] [1, 8] [1, 1] : tensor<4x8xf32> to tensor<8xf32>
  return %0 : tensor<8xf32>
}

// -----

lina.grid @world shape = [2] groups = {dp = array<i64: 0>}

func.func @region(%a: tensor<4xf32>) -> tensor<4xf32> {
  // CHECK: error: lina-to-plan: unsupported operation 'tensor.generate' with regions
  // expected-error @+1 {{unsupported operation 'tensor.generate' with regions}}
  %0 = tensor.generate {
  ^bb0(%i: index):
    %c = arith.constant 1.0 : f32
    tensor.yield %c : f32
  } : tensor<4xf32>
  %1 = arith.addf %a, %0 : tensor<4xf32>
  return %1 : tensor<4xf32>
}

// -----

lina.grid @world shape = [2] groups = {dp = array<i64: 0>}

// The dialect verifies the argument attribute before the translation runs.
// CHECK: error: argument 0 has 'lina.init = "ones"'; expected "random" or "zero"
// expected-error @+1 {{argument 0 has 'lina.init = "ones"'; expected "random" or "zero"}}
func.func @bad_init(%a: tensor<4xf32> {lina.init = "ones"}) -> tensor<4xf32> {
  return %a : tensor<4xf32>
}

// -----

lina.grid @world shape = [2] groups = {dp = array<i64: 0>}

// CHECK: error: lina-to-plan: arguments 0 and 2 are both named 'x'; give them distinct lina.name attributes
// expected-error @+1 {{arguments 0 and 2 are both named 'x'}}
func.func @same_name(%a: tensor<4xf32> {lina.name = "x"}, %b: tensor<4xf32>, %c: tensor<4xf32> {lina.name = "x"}) -> tensor<4xf32> {
  return %a : tensor<4xf32>
}

// -----

lina.grid @world shape = [2] groups = {dp = array<i64: 0>}

func.func @first(%a: tensor<4xf32>) -> tensor<4xf32> {
  return %a : tensor<4xf32>
}

// CHECK: error: lina-to-plan: several public functions (@first, @second); choose one with --lina-plan-function=NAME
// expected-error @+1 {{several public functions (@first, @second); choose one with --lina-plan-function=NAME}}
func.func @second(%a: tensor<4xf32>) -> tensor<4xf32> {
  return %a : tensor<4xf32>
}
