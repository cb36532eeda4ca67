// The whole training schedule on the training-step example.
// RUN: lina-opt %lina_src/examples/switch_train_ep8.mlir --lina-training-pipeline="partition-bytes=262144 chunks=4 report=true" 2> %t.remarks | FileCheck %s
// RUN: FileCheck %s --check-prefix=REPORT < %t.remarks
// RUN: lina-opt %lina_src/examples/switch_train_ep8.mlir --lina-training-pipeline | FileCheck %s --check-prefix=DEFAULT
// RUN: not lina-opt %lina_src/examples/switch_train_ep8.mlir --lina-training-pipeline="chunks=0" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not lina-opt %lina_src/examples/switch_train_ep8.mlir --lina-training-pipeline="partition-bytes=big" 2>&1 | FileCheck %s --check-prefix=BADBYTES
// RUN: not lina-opt %lina_src/examples/switch_train_ep8.mlir --lina-training-pipeline="partition-bytes=auto cluster=%t.none.json" 2>&1 | FileCheck %s --check-prefix=NOCLUSTER

// REPORT: remark: lina-partition-allreduce: split 2 all_reduce ops into 8 partitions
// REPORT: remark: lina-pipeline-experts: split 4 chains into 16 chunks
// REPORT: remark: lina-split-expert-grad: split 8 expert_ffn_grad ops, 8 weight halves placed where the compute stream would wait for an all_to_all, 8 second weight gradients placed before their first use
// REPORT: remark: lina-prioritize-alltoall: 32 high, 10 low, 20 hold_low marks, 0 moved

// CHECK-LABEL: func.func @train_step
// CHECK: lina.dispatch {{.*}}lina.hold_low
// CHECK: lina.all_to_all {{.*}}chunk = #lina.chunk<index = 0, count = 4>, priority = #lina.priority<high>
// CHECK: lina.expert_ffn {{.*}}chunk = #lina.chunk<index = 0, count = 4>, lina.hold_low
// CHECK: lina.combine_grad {{.*}}lina.hold_low
// The backward chain reads the forward chain's received chunks directly,
// sends each chunk's input gradient before the weight GEMMs run
// (--lina-split-expert-grad) and sums the chunks' weight gradients.
// CHECK: %[[D0:.*]], %[[A0:.*]], %[[Z0:.*]] = lina.expert_ffn_grad_input {{.*}}chunk = #lina.chunk<index = 0, count = 4>, lina.hold_low
// CHECK-NEXT: lina.all_to_all %[[D0]] {{.*}}chunk = #lina.chunk<index = 0, count = 4>, priority = #lina.priority<high>
// CHECK-NEXT: %[[D1:.*]], %[[A1:.*]], %[[Z1:.*]] = lina.expert_ffn_grad_input {{.*}}chunk = #lina.chunk<index = 1, count = 4>, lina.hold_low
// CHECK-NEXT: lina.all_to_all %[[D1]]
// The first weight gradient of both chunks comes before their sum, the
// second ones after it (one lina.expert_weight_grad per weight matrix).
// CHECK-NEXT: %[[G1_0:.*]] = lina.expert_weight_grad {{.*}}, %[[Z0]] {chunk = #lina.chunk<index = 0, count = 4>}
// CHECK-NEXT: %[[G1_1:.*]] = lina.expert_weight_grad {{.*}}, %[[Z1]] {chunk = #lina.chunk<index = 1, count = 4>}
// CHECK-NEXT: arith.addf %[[G1_0]], %[[G1_1]] : tensor<1x512x1024xf32>
// CHECK-NEXT: lina.expert_weight_grad %[[A0]], {{.*}} {chunk = #lina.chunk<index = 0, count = 4>}
// CHECK-NEXT: lina.expert_weight_grad %[[A1]], {{.*}} {chunk = #lina.chunk<index = 1, count = 4>}
// CHECK: lina.all_reduce {{.*}}partition = #lina.partition<index = 3, count = 4, offset = 196608, original = 262144>, priority = #lina.priority<low>

// The default 30 MiB partition leaves these small gradients whole.
// DEFAULT-NOT: partition =
// DEFAULT: lina.all_reduce {{.*}}priority = #lina.priority<low>

// BAD: for the --chunks option: invalid value '0': expected a positive integer or 'auto'
// BADBYTES: for the --partition-bytes option: invalid value 'big': expected a positive integer or 'auto'
// The pipeline forwards cluster= to both passes; only the pass with an
// 'auto' option reads it.
// NOCLUSTER: <unknown>:0: error: lina-partition-allreduce: cannot open cluster file '{{.*}}none.json'
// NOCLUSTER-NOT: lina-pipeline-experts
