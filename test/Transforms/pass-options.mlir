// Numeric pass options: partition-bytes and chunks are a positive integer or
// 'auto', printed as spelled by --dump-pass-pipeline, so that a dumped
// pipeline parses again; devices and experts-per-device are integers.
// RUN: lina-opt %s --lina-training-pipeline --dump-pass-pipeline -o /dev/null 2>&1 | FileCheck %s --check-prefix=DEFAULT
// RUN: lina-opt %s --lina-training-pipeline="partition-bytes=auto chunks=auto" --dump-pass-pipeline -o /dev/null 2>&1 | FileCheck %s --check-prefix=AUTO
// RUN: lina-opt %s --lina-partition-allreduce="partition-bytes=31457280" --lina-pipeline-experts="chunks=4" --dump-pass-pipeline -o /dev/null 2>&1 | FileCheck %s --check-prefix=NUMBERS
// RUN: lina-opt %s --lina-build-placement="devices=4 experts-per-device=6" --dump-pass-pipeline -o /dev/null 2>&1 | FileCheck %s --check-prefix=PLACEMENT

// DEFAULT: lina-partition-allreduce{cluster= partition-bytes=31457280 report=false},lina-pipeline-experts{chunks=2 cluster= report=false}
// AUTO: lina-partition-allreduce{cluster= partition-bytes=auto report=false},lina-pipeline-experts{chunks=auto cluster= report=false}
// NUMBERS: lina-partition-allreduce{cluster= partition-bytes=31457280 report=false}),func.func(lina-pipeline-experts{chunks=4 cluster= report=false})
// PLACEMENT: lina-build-placement{devices=4 experts-per-device=6 profile= report=false}

// The printed pipeline parses back to the same pipeline and runs.
// RUN: lina-opt %s --pass-pipeline="builtin.module(func.func(lina-partition-allreduce{cluster= partition-bytes=auto report=false},lina-pipeline-experts{chunks=auto cluster= report=false},lina-prioritize-alltoall{mode=lina report=false}))" --dump-pass-pipeline 2>&1 | FileCheck %s --check-prefix=AUTO
// RUN: lina-opt %s --pass-pipeline="builtin.module(func.func(lina-partition-allreduce{partition-bytes=16},lina-pipeline-experts{chunks=4}))" | FileCheck %s --check-prefix=FIXED
// RUN: lina-opt %s --lina-training-pipeline="partition-bytes=16 chunks=4" | FileCheck %s --check-prefix=FIXED
// RUN: lina-opt %s --lina-training-pipeline="partition-bytes=auto chunks=auto" | FileCheck %s --check-prefix=AUTORUN

// FIXED-LABEL: func.func @two_chains
// FIXED: lina.all_to_all {{.*}}chunk = #lina.chunk<index = 3, count = 4>
// FIXED-LABEL: func.func @gradient
// FIXED: lina.all_reduce {{.*}}partition = #lina.partition<index = 3, count = 4, offset = 12, original = 16>

// AUTORUN-LABEL: func.func @two_chains
// AUTORUN-SAME: lina.suggested_experts_per_device
// AUTORUN-LABEL: func.func @gradient
// AUTORUN-NOT: partition =

// Files named by options are read once, by the pass's initialize, not once
// per function: one error for this module's two functions, without a
// location, and no function is transformed.
// RUN: not lina-opt %s --lina-partition-allreduce="partition-bytes=auto cluster=%t.none.json" 2>&1 | FileCheck %s --check-prefix=ONCE
// RUN: not lina-opt %s --lina-pipeline-experts="chunks=auto cluster=%t.none.json" 2>&1 | FileCheck %s --check-prefix=ONCE
// ONCE: <unknown>:0: error: lina-{{partition-allreduce|pipeline-experts}}: cannot open cluster file '{{.*}}none.json'
// ONCE-NOT: error
// ONCE-NOT: func.func

lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

func.func @two_chains(%buf: tensor<8x8x16xf32>, %w1: tensor<2x16x64xf32>, %w2: tensor<2x64x16xf32>) -> tensor<8x8x16xf32> {
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x8x16xf32> -> tensor<2x32x16xf32>
  %e = lina.expert_ffn %r, %w1, %w2 activation = silu : (tensor<2x32x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) -> tensor<2x32x16xf32>
  %b = lina.all_to_all %e group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x32x16xf32> -> tensor<8x8x16xf32>
  return %b : tensor<8x8x16xf32>
}

func.func @gradient(%g: tensor<16xf32>) -> tensor<16xf32> {
  %0 = lina.all_reduce %g group = #lina.group<@world, "ep"> reduction = sum : tensor<16xf32>
  return %0 : tensor<16xf32>
}
