// RUN: lina-opt %s -split-input-file --lina-prioritize-alltoall | FileCheck %s
// Idempotent: a second run changes nothing.
// RUN: lina-opt %s -split-input-file --lina-prioritize-alltoall > %t.once.mlir
// RUN: lina-opt %t.once.mlir -split-input-file --lina-prioritize-alltoall | diff %t.once.mlir -
// RUN: lina-opt %s -split-input-file --lina-prioritize-alltoall="report=true" -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT

// REPORT: remark: lina-prioritize-alltoall: 2 high, 2 low, 2 hold_low marks, 1 moved
// REPORT: remark: lina-prioritize-alltoall: 1 high, 2 low, 1 hold_low marks, 2 moved
// REPORT: remark: lina-prioritize-alltoall: 2 high, 1 low, 0 hold_low marks, 0 moved
// REPORT: remark: lina-prioritize-alltoall: 2 high, 1 low, 1 hold_low marks, 1 moved
// REPORT: remark: lina-prioritize-alltoall: 1 high, 1 low, 1 hold_low marks, 0 moved
// REPORT: remark: lina-prioritize-alltoall: 1 high, 1 low, 1 hold_low marks, 1 moved

lina.grid @world shape = [4] groups = {dp = array<i64: 0>, ep = array<i64: 0>}

// CHECK-LABEL: func @step
func.func @step(%dy: tensor<16x8xf32>, %x: tensor<16x8xf32>, %w: tensor<8x8xf32>,
                %buf: tensor<4x4x8xf32>, %ids: tensor<16x1xi32>, %gw: tensor<16x1xf32>,
                %r: tensor<1x16x8xf32>, %w1: tensor<1x8x32xf32>, %w2: tensor<1x32x8xf32>)
    -> (tensor<8x8xf32>, tensor<8x8xf32>, tensor<4x4x8xf32>) {
  // CHECK: %[[DX:.*]], %[[DW:.*]] = lina.dense_grad
  %dx, %dw = lina.dense_grad %dy, %x, %w activation = relu : (tensor<16x8xf32>, tensor<16x8xf32>, tensor<8x8xf32>) -> (tensor<16x8xf32>, tensor<8x8xf32>)
  // The combine_grad feeds an all_to_all: it is marked, and the all_reduce
  // that sat between it and the all_to_all moves after the all_to_all.
  // CHECK: %[[DB:.*]], %{{.*}} = lina.combine_grad {{.*}} {lina.hold_low}
  %db, %dgw = lina.combine_grad %dx, %buf, %ids, %gw : (tensor<16x8xf32>, tensor<4x4x8xf32>, tensor<16x1xi32>, tensor<16x1xf32>) -> (tensor<4x4x8xf32>, tensor<16x1xf32>)
  %g = lina.all_reduce %dw group = #lina.group<@world, "dp"> reduction = sum : tensor<8x8xf32>
  // CHECK-NEXT: %[[A:.*]] = lina.all_to_all %[[DB]] {{.*}} {priority = #lina.priority<high>}
  // CHECK-NEXT: %[[G:.*]] = lina.all_reduce %[[DW]] {{.*}} {priority = #lina.priority<low>}
  // CHECK-NEXT: %[[H:.*]] = arith.addf %[[G]], %[[G]]
  %h = arith.addf %g, %g : tensor<8x8xf32>
  %a = lina.all_to_all %db group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x4x8xf32> -> tensor<1x16x8xf32>
  // CHECK: %{{.*}}, %{{.*}}, %{{.*}} = lina.expert_ffn_grad {{.*}} {lina.hold_low}
  %d, %d1, %d2 = lina.expert_ffn_grad %a, %r, %w1, %w2 activation = gelu : (tensor<1x16x8xf32>, tensor<1x16x8xf32>, tensor<1x8x32xf32>, tensor<1x32x8xf32>) -> (tensor<1x16x8xf32>, tensor<1x8x32xf32>, tensor<1x32x8xf32>)
  // CHECK: lina.all_to_all {{.*}} {priority = #lina.priority<high>}
  %b = lina.all_to_all %d group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<1x16x8xf32> -> tensor<4x4x8xf32>
  // An all_reduce that is not in such a window stays where it is.
  // CHECK: lina.all_reduce {{.*}} {priority = #lina.priority<low>}
  // CHECK-NEXT: return
  %g2 = lina.all_reduce %dw group = #lina.group<@world, "dp"> reduction = sum : tensor<8x8xf32>
  return %h, %g2, %b : tensor<8x8xf32>, tensor<8x8xf32>, tensor<4x4x8xf32>
}

// Partitions between the producer of an all_to_all's input and the
// all_to_all move after it with the concat that reads them; their slices
// and the reshape that the all_to_all reads stay. The producer is found
// through the reshape.
// CHECK-LABEL: func @partitions_in_the_window
// CHECK-SAME: (%[[X:[^:]*]]: tensor<4x4x8xf32>, %[[G:[^:]*]]: tensor<64xf32>
// CHECK: %[[Y:.*]] = arith.addf %[[X]], %[[X]] {lina.hold_low}
// CHECK-NEXT: %[[S0:.*]] = tensor.extract_slice %[[G]][0] [32] [1]
// CHECK-NEXT: %[[S1:.*]] = tensor.extract_slice %[[G]][32] [32] [1]
// CHECK-NEXT: %[[V:.*]] = tensor.collapse_shape %[[Y]]
// CHECK-NEXT: %[[A:.*]] = lina.all_to_all %[[V]] {{.*}}priority = #lina.priority<high>
// CHECK-NEXT: %[[P0:.*]] = lina.all_reduce %[[S0]] {{.*}}priority = #lina.priority<low>
// CHECK-NEXT: %[[P1:.*]] = lina.all_reduce %[[S1]] {{.*}}priority = #lina.priority<low>
// CHECK-NEXT: %[[CAT:.*]] = tensor.concat dim(0) %[[P0]], %[[P1]]
// CHECK-NEXT: %[[R:.*]] = tensor.extract_slice %[[A]]
// CHECK-NEXT: return %[[R]], %[[CAT]]
func.func @partitions_in_the_window(%x: tensor<4x4x8xf32>, %g: tensor<64xf32>) -> (tensor<1x64xf32>, tensor<64xf32>) {
  %y = arith.addf %x, %x : tensor<4x4x8xf32>
  %s0 = tensor.extract_slice %g[0] [32] [1] : tensor<64xf32> to tensor<32xf32>
  %p0 = lina.all_reduce %s0 group = #lina.group<@world, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 2, offset = 0, original = 64>} : tensor<32xf32>
  %s1 = tensor.extract_slice %g[32] [32] [1] : tensor<64xf32> to tensor<32xf32>
  %p1 = lina.all_reduce %s1 group = #lina.group<@world, "dp"> reduction = sum {partition = #lina.partition<index = 1, count = 2, offset = 32, original = 64>} : tensor<32xf32>
  %cat = tensor.concat dim(0) %p0, %p1 : (tensor<32xf32>, tensor<32xf32>) -> tensor<64xf32>
  %v = tensor.collapse_shape %y [[0], [1, 2]] : tensor<4x4x8xf32> into tensor<4x32xf32>
  %a = lina.all_to_all %v group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x32xf32> -> tensor<1x128xf32>
  %r = tensor.extract_slice %a[0, 0] [1, 64] [1, 1] : tensor<1x128xf32> to tensor<1x64xf32>
  return %r, %cat : tensor<1x64xf32>, tensor<64xf32>
}

// -----

lina.grid @world shape = [4] groups = {dp = array<i64: 0>, ep = array<i64: 0>}

// An all_to_all of a function argument has no producer to mark, and an
// all_reduce whose result it reads stays before it.
// CHECK-LABEL: func @no_producer
// CHECK-NOT: lina.hold_low
// CHECK: %[[R:.*]] = lina.all_reduce {{.*}}priority = #lina.priority<low>
// CHECK-NEXT: lina.all_to_all %[[R]] {{.*}}priority = #lina.priority<high>
// CHECK-NEXT: lina.all_to_all %{{.*}}priority = #lina.priority<high>
func.func @no_producer(%x: tensor<4x8xf32>) -> (tensor<1x32xf32>, tensor<1x32xf32>) {
  %r = lina.all_reduce %x group = #lina.group<@world, "dp"> reduction = sum : tensor<4x8xf32>
  %a = lina.all_to_all %r group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x8xf32> -> tensor<1x32xf32>
  %b = lina.all_to_all %x group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 {priority = #lina.priority<low>} : tensor<4x8xf32> -> tensor<1x32xf32>
  return %a, %b : tensor<1x32xf32>, tensor<1x32xf32>
}

// -----

lina.grid @world shape = [4] groups = {dp = array<i64: 0>, ep = array<i64: 0>}

// A variable all_to_all also waits for its counts: their producer is
// marked, and an all_reduce issued between it and the all_to_all moves.
// CHECK-LABEL: func @variable_counts
// CHECK: %[[S:.*]] = arith.addi %{{.*}} {lina.hold_low}
// CHECK-NEXT: %[[RC:.*]] = lina.all_to_all %[[S]] {{.*}}priority = #lina.priority<high>
// CHECK-NEXT: lina.all_to_all %{{.*}} counts(%[[S]], %[[RC]] {{.*}}priority = #lina.priority<high>
// CHECK-NEXT: lina.all_reduce {{.*}}priority = #lina.priority<low>
func.func @variable_counts(%rows: tensor<8x4xf32>, %c: tensor<4xi64>, %g: tensor<16xf32>) -> (tensor<8x4xf32>, tensor<16xf32>) {
  %s = arith.addi %c, %c : tensor<4xi64>
  %ar = lina.all_reduce %g group = #lina.group<@world, "dp"> reduction = sum : tensor<16xf32>
  %rc = lina.all_to_all %s group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 0 : tensor<4xi64> -> tensor<4xi64>
  %v = lina.all_to_all %rows counts(%s, %rc : tensor<4xi64>, tensor<4xi64>) group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 0 : tensor<8x4xf32> -> tensor<8x4xf32>
  return %v, %ar : tensor<8x4xf32>, tensor<16xf32>
}

// -----

lina.grid @world shape = [4] groups = {dp = array<i64: 0>, ep = array<i64: 0>}
func.func private @log(tensor<16xf32>)
func.func private @flush()

// Ops with side effects never move: a call that reads an all_reduce in the
// window keeps it in place, and stays before the next call.
// CHECK-LABEL: func @calls_keep_their_order
// CHECK: %[[Y:.*]] = arith.addf {{.*}} {lina.hold_low}
// CHECK-NEXT: %[[R:.*]] = lina.all_reduce {{.*}}priority = #lina.priority<low>
// CHECK-NEXT: call @log(%[[R]])
// CHECK-NEXT: call @flush()
// CHECK-NEXT: lina.all_to_all %[[Y]]
func.func @calls_keep_their_order(%x: tensor<4x8xf32>, %g: tensor<16xf32>) -> tensor<1x32xf32> {
  %y = arith.addf %x, %x : tensor<4x8xf32>
  %r = lina.all_reduce %g group = #lina.group<@world, "dp"> reduction = sum : tensor<16xf32>
  func.call @log(%r) : (tensor<16xf32>) -> ()
  func.call @flush() : () -> ()
  %a = lina.all_to_all %y group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x8xf32> -> tensor<1x32xf32>
  return %a : tensor<1x32xf32>
}

// A memory-effect-free all_reduce may move past a call; the call stays.
// CHECK-LABEL: func @pure_ops_move_past_calls
// CHECK: %[[Y:.*]] = arith.addf {{.*}} {lina.hold_low}
// CHECK-NEXT: call @flush()
// CHECK-NEXT: lina.all_to_all %[[Y]]
// CHECK-NEXT: %[[R:.*]] = lina.all_reduce
// CHECK-NEXT: call @log(%[[R]])
func.func @pure_ops_move_past_calls(%x: tensor<4x8xf32>, %g: tensor<16xf32>) -> tensor<1x32xf32> {
  %y = arith.addf %x, %x : tensor<4x8xf32>
  %r = lina.all_reduce %g group = #lina.group<@world, "dp"> reduction = sum : tensor<16xf32>
  func.call @flush() : () -> ()
  %a = lina.all_to_all %y group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x8xf32> -> tensor<1x32xf32>
  func.call @log(%r) : (tensor<16xf32>) -> ()
  return %a : tensor<1x32xf32>
}
