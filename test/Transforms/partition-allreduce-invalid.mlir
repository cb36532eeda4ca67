// RUN: not lina-opt %s -split-input-file --lina-partition-allreduce="partition-bytes=0" 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not lina-opt %s -split-input-file --lina-partition-allreduce="partition-bytes=-64" 2>&1 | FileCheck %s --check-prefix=NEG
// RUN: not lina-opt %s -split-input-file --lina-partition-allreduce="partition-bytes=30MB" 2>&1 | FileCheck %s --check-prefix=TEXT
// RUN: not lina-opt %s -split-input-file --lina-partition-allreduce="partition-bytes=99999999999999999999" 2>&1 | FileCheck %s --check-prefix=HUGE
// RUN: not lina-opt %s -split-input-file --lina-partition-allreduce="partition-bytes=" 2>&1 | FileCheck %s --check-prefix=EMPTY
// RUN: not lina-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(lina-partition-allreduce{partition-bytes=-5}))" 2>&1 | FileCheck %s --check-prefix=PIPELINE
// RUN: not lina-opt %s -split-input-file --lina-partition-allreduce="partition-bytes=auto cluster=%t.none.json" 2>&1 | FileCheck %s --check-prefix=CLUSTER
// RUN: lina-opt %s -split-input-file -verify-diagnostics --lina-partition-allreduce="partition-bytes=2"

// Bad values are rejected when the option is parsed, with the option's
// name; the cluster file is read once, by the pass's initialize, and a
// missing one is reported without a location.
// ZERO: for the --partition-bytes option: invalid value '0': expected a positive integer or 'auto'
// NEG: for the --partition-bytes option: invalid value '-64': expected a positive integer or 'auto'
// TEXT: for the --partition-bytes option: invalid value '30MB': expected a positive integer or 'auto'
// HUGE: for the --partition-bytes option: invalid value '99999999999999999999': expected a positive integer or 'auto'
// EMPTY: for the --partition-bytes option: invalid value '': expected a positive integer or 'auto'
// PIPELINE: for the --partition-bytes option: invalid value '-5': expected a positive integer or 'auto'
// PIPELINE: failed to add `lina-partition-allreduce` with options `partition-bytes=-5`
// CLUSTER: <unknown>:0: error: lina-partition-allreduce: cannot open cluster file '{{.*}}none.json'

lina.grid @world shape = [4] groups = {dp = array<i64: 0>}

func.func @smaller_than_an_element(%g: tensor<16xf32>) -> tensor<16xf32> {
  // expected-error @+1 {{cannot be partitioned: partition-bytes=2 is smaller than one element (4 bytes)}}
  %0 = lina.all_reduce %g group = #lina.group<@world, "dp"> reduction = sum : tensor<16xf32>
  return %0 : tensor<16xf32>
}

// -----

lina.grid @world shape = [4] groups = {dp = array<i64: 0>}

func.func @already_partitioned(%g: tensor<16xf32>, %h: tensor<16xf32>) -> (tensor<16xf32>, tensor<16xf32>) {
  // expected-error @+1 {{is already a partition (64 bytes) larger than partition-bytes=2}}
  %0 = lina.all_reduce %g group = #lina.group<@world, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 2, offset = 0, original = 32>} : tensor<16xf32>
  %1 = lina.all_reduce %h group = #lina.group<@world, "dp"> reduction = sum {partition = #lina.partition<index = 1, count = 2, offset = 16, original = 32>} : tensor<16xf32>
  return %0, %1 : tensor<16xf32>, tensor<16xf32>
}
