// RUN: lina-opt %s -split-input-file -verify-diagnostics --lina-partition-allreduce="partition-bytes=auto cluster=%lina_src/examples/clusters/h100-node.json"
// RUN: not lina-opt %s --lina-partition-allreduce="partition-bytes=auto cluster=%S" 2>&1 | FileCheck %s --check-prefix=DIR
// RUN: not lina-opt %s --lina-partition-allreduce="partition-bytes=auto cluster=%lina_src/examples/switch_train_ep8.mlir" 2>&1 | FileCheck %s --check-prefix=NOTJSON

// DIR: <unknown>:0: error: lina-partition-allreduce: cluster file '{{.*}}Transforms' is a directory
// NOTJSON: <unknown>:0: error: lina-partition-allreduce: {{.*}}switch_train_ep8.mlir: cluster file: not valid JSON

// A group larger than the cluster cannot be costed.
lina.grid @world shape = [32] groups = {dp = array<i64: 0>}

func.func @group_too_big(%g: tensor<4096x4096xf32>) -> tensor<4096x4096xf32> {
  // expected-error @+1 {{has a group of 32 ranks, more than the 8 GPUs of cluster 'h100-node'; pass a cluster file that fits with cluster=FILE}}
  %0 = lina.all_reduce %g group = #lina.group<@world, "dp"> reduction = sum : tensor<4096x4096xf32>
  return %0 : tensor<4096x4096xf32>
}
