// partition-bytes=auto asks the cost model. On the A100 cluster a group of
// 64 ranks spans 8 nodes; the smallest power-of-two size whose latency
// terms cost at most 5% of its transfer time is 16 MiB, so a 64 MiB
// gradient becomes 4 partitions. Inside one node (8 ranks) NVLink latency
// is so small relative to bandwidth that the cap (64 MiB) applies and the
// same gradient is left alone.
// RUN: lina-opt %s -split-input-file --lina-partition-allreduce="partition-bytes=auto cluster=%lina_src/examples/clusters/a100-ib100.json" | FileCheck %s

lina.grid @world shape = [64] groups = {dp = array<i64: 0>}

// CHECK-LABEL: func @across_nodes
// CHECK-COUNT-4: lina.all_reduce {{.*}}partition = #lina.partition<index = {{[0-3]}}, count = 4, offset = {{[0-9]+}}, original = 16777216>{{.*}} : tensor<4194304xf32>
func.func @across_nodes(%g: tensor<4096x4096xf32>) -> tensor<4096x4096xf32> {
  %0 = lina.all_reduce %g group = #lina.group<@world, "dp"> reduction = sum : tensor<4096x4096xf32>
  return %0 : tensor<4096x4096xf32>
}

// -----

lina.grid @world shape = [8] groups = {dp = array<i64: 0>}

// CHECK-LABEL: func @inside_a_node
// CHECK-NOT: partition
func.func @inside_a_node(%g: tensor<4096x4096xf32>) -> tensor<4096x4096xf32> {
  %0 = lina.all_reduce %g group = #lina.group<@world, "dp"> reduction = sum : tensor<4096x4096xf32>
  return %0 : tensor<4096x4096xf32>
}
