// RUN: lina-opt %s --lina-prioritize-alltoall | FileCheck %s
// Idempotent: a second run changes nothing.
// RUN: lina-opt %s --lina-prioritize-alltoall > %t.once.mlir
// RUN: lina-opt %t.once.mlir --lina-prioritize-alltoall | diff %t.once.mlir -
// RUN: lina-opt %s --lina-prioritize-alltoall="report=true" -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT

// REPORT: remark: lina-prioritize-alltoall: 2 high, 2 low, 2 hold_low marks, 1 moved

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
