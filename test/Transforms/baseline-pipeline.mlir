// The named baselines on the training-step example.
// RUN: lina-opt %lina_src/examples/switch_train_ep8.mlir --lina-baseline-pipeline="mode=ds report=true" 2> %t.ds.remarks | FileCheck %s --check-prefix=DS
// RUN: FileCheck %s --check-prefix=DS-REPORT < %t.ds.remarks
// RUN: lina-opt %lina_src/examples/switch_train_ep8.mlir --lina-baseline-pipeline="mode=ds bucket-bytes=1048576" | FileCheck %s --check-prefix=SMALL
// RUN: lina-opt %lina_src/examples/switch_train_ep8.mlir --lina-training-pipeline --lina-baseline-pipeline="mode=serial report=true" 2> %t.serial.remarks | FileCheck %s --check-prefix=SERIAL
// RUN: FileCheck %s --check-prefix=SERIAL-REPORT < %t.serial.remarks
// The ds pipeline translates to a plan that the runtime accepts.
// RUN: lina-opt %lina_src/examples/switch_train_ep8.mlir --lina-baseline-pipeline | lina-translate --lina-to-plan -o %t.ds.json
// RUN: lina-run %t.ds.json --dump | FileCheck %s --check-prefix=PLAN

// Two layers of two gradients (1 MiB + 16 KiB each), returned only: the
// default 25 MiB bucket takes all four, issued after the last one.
// DS-REPORT: remark: lina-bucket-allreduce: merged 4 all_reduce ops into 1 buckets
// DS-REPORT: remark: lina-prioritize-alltoall: 8 high, 1 low, 0 hold_low marks, 0 moved
// DS-LABEL: func.func @train_step
// DS-NOT: lina.hold_low
// DS: lina.all_to_all {{.*}}priority = #lina.priority<high>
// DS: %[[CAT:.*]] = tensor.concat
// DS-NEXT: lina.all_reduce %[[CAT]] {{.*}}{lina.bucket = 4 : i64, priority = #lina.priority<low>}
// DS-NOT: lina.all_reduce

// With 1 MiB buckets, a bucket closes once it holds 1 MiB: the first
// 1 MiB gradient alone, the next two together, the last alone.
// SMALL: lina.all_reduce %{{.*}} : tensor<512x512xf32>
// SMALL: lina.all_reduce %{{.*}}lina.bucket = 2 : i64{{.*}} : tensor<266240xf32>
// SMALL: lina.all_reduce %{{.*}} : tensor<512x8xf32>
// SMALL-NOT: lina.all_reduce

// SERIAL-REPORT: remark: lina-prioritize-alltoall: mode=serial, 12 hold_low marks removed
// SERIAL-NOT: priority =
// SERIAL-NOT: lina.hold_low

// PLAN: all_reduce
