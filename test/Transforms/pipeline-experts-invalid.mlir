// RUN: lina-opt %s -verify-diagnostics --lina-pipeline-experts="chunks=9"
// RUN: not lina-opt %s --lina-pipeline-experts="chunks=0" 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not lina-opt %s --lina-pipeline-experts="chunks=many" 2>&1 | FileCheck %s --check-prefix=TEXT
// RUN: not lina-opt %s --lina-pipeline-experts="chunks=auto cluster=%s" 2>&1 | FileCheck %s --check-prefix=CLUSTER

// ZERO: error: invalid value '0' for option 'chunks': must be positive
// TEXT: error: invalid value 'many' for option 'chunks': expected a positive integer or 'auto'
// CLUSTER: error: {{.*}}pipeline-experts-invalid.mlir: cluster file: not valid JSON

lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

func.func @too_many_chunks(%buf: tensor<8x8x16xf32>, %w1: tensor<2x16x64xf32>, %w2: tensor<2x64x16xf32>) -> tensor<8x8x16xf32> {
  // expected-error @+1 {{cannot be split into chunks=9: its capacity dimension has only 8 rows; use chunks <= 8}}
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x8x16xf32> -> tensor<2x32x16xf32>
  %e = lina.expert_ffn %r, %w1, %w2 activation = silu : (tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) -> tensor<2x32x16xf32>
  %b = lina.all_to_all %e group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x32x16xf32> -> tensor<8x8x16xf32>
  return %b : tensor<8x8x16xf32>
}
