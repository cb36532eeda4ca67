// RUN: not lina-opt %s -split-input-file --lina-partition-allreduce="partition-bytes=0" 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not lina-opt %s -split-input-file --lina-partition-allreduce="partition-bytes=-64" 2>&1 | FileCheck %s --check-prefix=NEG
// RUN: not lina-opt %s -split-input-file --lina-partition-allreduce="partition-bytes=30MB" 2>&1 | FileCheck %s --check-prefix=TEXT
// RUN: not lina-opt %s -split-input-file --lina-partition-allreduce="partition-bytes=auto cluster=%t.none.json" 2>&1 | FileCheck %s --check-prefix=CLUSTER
// RUN: lina-opt %s -split-input-file -verify-diagnostics --lina-partition-allreduce="partition-bytes=2"

// ZERO: error: invalid value '0' for option 'partition-bytes': must be positive
// NEG: error: invalid value '-64' for option 'partition-bytes': must be positive
// TEXT: error: invalid value '30MB' for option 'partition-bytes': expected a positive integer or 'auto'
// CLUSTER: error: cannot open cluster file '{{.*}}none.json'

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
