// partition-bytes=auto asks the cost model for the partition size of each
// all_reduce's group: the smallest power of two from 1 MiB whose latency
// terms cost at most 5% of its transfer time, capped at 64 MiB.
// RUN: lina-opt %s -split-input-file --lina-partition-allreduce="partition-bytes=auto cluster=%lina_src/examples/clusters/a100-ib100.json" | FileCheck %s
// Without a cluster file the built-in a100-ib100 numbers give the same.
// RUN: lina-opt %s -split-input-file --lina-partition-allreduce="partition-bytes=auto" | FileCheck %s
// On one 8x H100 node the first case does not fit (an error, see
// partition-allreduce-auto-invalid.mlir); the second is checked:
// RUN: not lina-opt %s -split-input-file --lina-partition-allreduce="partition-bytes=auto cluster=%lina_src/examples/clusters/h100-node.json" 2>/dev/null | FileCheck %s --check-prefix=H100

// On a100-ib100 (4 nodes of 8, 100 Gb/s per node) a group of 32 ranks
// spans the 4 nodes: latency terms 2*7*3 + 2*3*5 + 5 = 77 us; transfer
// 2*7/8 / 300e9 + 2*3/4 / 12.5e9 = 1.258e-10 s per byte; 77e-6 <= 0.05 *
// 1.258e-10 * S needs S >= 12.2e6: 16 MiB, so a 64 MiB gradient becomes 4
// partitions of 4194304 f32 elements.
// CHECK-LABEL: func @across_nodes
// CHECK-COUNT-4: lina.all_reduce {{.*}}partition = #lina.partition<index = {{[0-3]}}, count = 4, offset = {{[0-9]+}}, original = 16777216>{{.*}} : tensor<4194304xf32>
lina.grid @world shape = [32] groups = {dp = array<i64: 0>}

func.func @across_nodes(%g: tensor<4096x4096xf32>) -> tensor<4096x4096xf32> {
  %0 = lina.all_reduce %g group = #lina.group<@world, "dp"> reduction = sum : tensor<4096x4096xf32>
  return %0 : tensor<4096x4096xf32>
}

// -----

// Inside one node NVLink's latency is small against its bandwidth:
// 2*7*3 + 5 = 47 us against 5.83e-12 s per byte needs S >= 161 MB, so the
// 64 MiB cap applies and the 64 MiB gradient stays whole; a 128 MiB one
// becomes two partitions.
// CHECK-LABEL: func @inside_a_node
// CHECK-NOT: partition
// CHECK: lina.all_reduce {{.*}} : tensor<4096x4096xf32>
// CHECK: partition = #lina.partition<index = 0, count = 2, offset = 0, original = 33554432>{{.*}} : tensor<16777216xf32>
// CHECK: partition = #lina.partition<index = 1, count = 2, offset = 16777216, original = 33554432>{{.*}} : tensor<16777216xf32>
// On one 8x H100 node the same rule gives the cap too.
// H100-LABEL: func @inside_a_node
// H100: lina.all_reduce {{.*}} : tensor<4096x4096xf32>
// H100-COUNT-2: partition = #lina.partition
lina.grid @world shape = [8] groups = {dp = array<i64: 0>}

func.func @inside_a_node(%g: tensor<4096x4096xf32>, %h: tensor<8192x4096xf32>) -> (tensor<4096x4096xf32>, tensor<8192x4096xf32>) {
  %0 = lina.all_reduce %g group = #lina.group<@world, "dp"> reduction = sum : tensor<4096x4096xf32>
  %1 = lina.all_reduce %h group = #lina.group<@world, "dp"> reduction = sum : tensor<8192x4096xf32>
  return %0, %1 : tensor<4096x4096xf32>, tensor<8192x4096xf32>
}
