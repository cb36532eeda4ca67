// RUN: lina-opt %s -verify-diagnostics --lina-pipeline-experts="chunks=9"
// RUN: not lina-opt %s --lina-pipeline-experts="chunks=0" 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not lina-opt %s --lina-pipeline-experts="chunks=many" 2>&1 | FileCheck %s --check-prefix=TEXT
// RUN: not lina-opt %s --lina-pipeline-experts="chunks=auto cluster=%s" 2>&1 | FileCheck %s --check-prefix=CLUSTER
// RUN: not lina-opt %s --lina-pipeline-experts="chunks=-2" 2>&1 | FileCheck %s --check-prefix=NEG
// RUN: not lina-opt %s --lina-pipeline-experts="chunks=auto cluster=%S/does-not-exist.json" 2>&1 | FileCheck %s --check-prefix=MISSING
// RUN: not lina-opt %s --lina-training-pipeline="chunks=auto cluster=%lina_src/examples/clusters/h100-node.json" 2>&1 | FileCheck %s --check-prefix=TOOBIG

// ZERO: for the --chunks option: invalid value '0': expected a positive integer or 'auto'
// TEXT: for the --chunks option: invalid value 'many': expected a positive integer or 'auto'
// CLUSTER: <unknown>:0: error: lina-pipeline-experts: {{.*}}pipeline-experts-invalid.mlir: cluster file: not valid JSON
// NEG: for the --chunks option: invalid value '-2': expected a positive integer or 'auto'
// MISSING: <unknown>:0: error: lina-pipeline-experts: cannot open cluster file '{{.*}}does-not-exist.json'
// TOOBIG: error: 'lina.all_to_all' op has a group of 16 ranks, more than the 8 GPUs of cluster 'h100-node'

lina.grid @world shape = [4] groups = {ep = array<i64: 0>}
lina.grid @big shape = [16] groups = {ep = array<i64: 0>}

func.func @too_many_chunks(%buf: tensor<8x8x16xf32>, %w1: tensor<2x16x64xf32>, %w2: tensor<2x64x16xf32>) -> tensor<8x8x16xf32> {
  // expected-error @+1 {{cannot be split into chunks=9: its capacity dimension has only 8 rows; use chunks <= 8}}
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x8x16xf32> -> tensor<2x32x16xf32>
  %e = lina.expert_ffn %r, %w1, %w2 activation = silu : (tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) -> tensor<2x32x16xf32>
  %b = lina.all_to_all %e group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x32x16xf32> -> tensor<8x8x16xf32>
  return %b : tensor<8x8x16xf32>
}

// With chunks=auto on one 8-GPU node, a 16-rank group cannot be costed.
func.func @group_too_big_for_the_cluster(%buf: tensor<16x16x16xf32>, %w1: tensor<1x16x64xf32>, %w2: tensor<1x64x16xf32>) -> tensor<16x16x16xf32> {
  %r = lina.all_to_all %buf group = #lina.group<@big, "ep"> split_axis = 0 concat_axis = 1 : tensor<16x16x16xf32> -> tensor<1x256x16xf32>
  %e = lina.expert_ffn %r, %w1, %w2 activation = silu : (tensor<1x256x16xf32>, tensor<1x16x64xf32>, tensor<1x64x16xf32>) -> tensor<1x256x16xf32>
  %b = lina.all_to_all %e group = #lina.group<@big, "ep"> split_axis = 1 concat_axis = 0 : tensor<1x256x16xf32> -> tensor<16x16x16xf32>
  return %b : tensor<16x16x16xf32>
}
