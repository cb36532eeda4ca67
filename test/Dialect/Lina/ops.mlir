// RUN: lina-opt %s | FileCheck %s
// RUN: lina-opt %s | lina-opt | FileCheck %s
// RUN: lina-opt -mlir-print-op-generic %s | lina-opt | FileCheck %s

// CHECK: lina.grid @world shape = [2, 4] groups = {dp = array<i64: 0>, ep = array<i64: 1>}
lina.grid @world shape = [2, 4] groups = {dp = array<i64: 0>, ep = array<i64: 1>}
// CHECK: lina.grid @flat shape = [8] groups = {dp = array<i64: 0>, ep = array<i64: 0>}
lina.grid @flat shape = [8] groups = {dp = array<i64: 0>, ep = array<i64: 0>}

// CHECK-LABEL: func @forward
func.func @forward(%x: tensor<64x32xf32>, %wd: tensor<32x32xf32>, %wg: tensor<32x8xf32>,
                   %w1: tensor<2x32x128xf32>, %w2: tensor<2x128x32xf32>) -> tensor<64x32xf32> {
  // CHECK: %[[A:.*]] = lina.dense %{{.*}}, %{{.*}} activation = gelu : (tensor<64x32xf32>, tensor<32x32xf32>) -> tensor<64x32xf32>
  %a = lina.dense %x, %wd activation = gelu : (tensor<64x32xf32>, tensor<32x32xf32>) -> tensor<64x32xf32>
  // CHECK: %[[IDS:.*]], %[[GW:.*]] = lina.gate %[[A]], %{{.*}} experts = 8 top_k = 2 capacity_factor = 1.250000e+00 : (tensor<64x32xf32>, tensor<32x8xf32>) -> (tensor<64x2xi32>, tensor<64x2xf32>)
  %ids, %gw = lina.gate %a, %wg experts = 8 top_k = 2 capacity_factor = 1.25 : (tensor<64x32xf32>, tensor<32x8xf32>) -> (tensor<64x2xi32>, tensor<64x2xf32>)
  // CHECK: %[[BUF:.*]] = lina.dispatch %[[A]], %[[IDS]] : (tensor<64x32xf32>, tensor<64x2xi32>) -> tensor<8x20x32xf32>
  %buf = lina.dispatch %a, %ids : (tensor<64x32xf32>, tensor<64x2xi32>) -> tensor<8x20x32xf32>
  // CHECK: %[[R:.*]] = lina.all_to_all %[[BUF]] group = <@world, "ep"> split_axis = 0 concat_axis = 1 {chunk = #lina.chunk<index = 0, count = 1>, priority = #lina.priority<high>} : tensor<8x20x32xf32> -> tensor<2x80x32xf32>
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 {priority = #lina.priority<high>, chunk = #lina.chunk<index = 0, count = 1>} : tensor<8x20x32xf32> -> tensor<2x80x32xf32>
  // CHECK: %[[E:.*]] = lina.expert_ffn %[[R]], %{{.*}}, %{{.*}} activation = silu : (tensor<2x80x32xf32>, tensor<2x32x128xf32>, tensor<2x128x32xf32>) -> tensor<2x80x32xf32>
  %e = lina.expert_ffn %r, %w1, %w2 activation = silu : (tensor<2x80x32xf32>, tensor<2x32x128xf32>, tensor<2x128x32xf32>) -> tensor<2x80x32xf32>
  // CHECK: %[[B:.*]] = lina.all_to_all %[[E]] group = <@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x80x32xf32> -> tensor<8x20x32xf32>
  %b = lina.all_to_all %e group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x80x32xf32> -> tensor<8x20x32xf32>
  // CHECK: lina.combine %[[B]], %[[IDS]], %[[GW]] : (tensor<8x20x32xf32>, tensor<64x2xi32>, tensor<64x2xf32>) -> tensor<64x32xf32>
  %y = lina.combine %b, %ids, %gw : (tensor<8x20x32xf32>, tensor<64x2xi32>, tensor<64x2xf32>) -> tensor<64x32xf32>
  return %y : tensor<64x32xf32>
}

// CHECK-LABEL: func @backward
func.func @backward(%dy: tensor<64x32xf32>, %x: tensor<64x32xf32>, %wd: tensor<32x32xf32>,
                    %wg: tensor<32x8xf32>, %ids: tensor<64x2xi32>, %gw: tensor<64x2xf32>,
                    %buf: tensor<8x20x32xf32>, %r: tensor<2x80x32xf32>,
                    %w1: tensor<2x32x128xf32>, %w2: tensor<2x128x32xf32>)
    -> (tensor<64x32xf32>, tensor<32x32xf32>, tensor<32x8xf32>, tensor<2x32x128xf32>, tensor<2x128x32xf32>) {
  // CHECK: %[[DB:.*]], %[[DGW:.*]] = lina.combine_grad %{{.*}} : (tensor<64x32xf32>, tensor<8x20x32xf32>, tensor<64x2xi32>, tensor<64x2xf32>) -> (tensor<8x20x32xf32>, tensor<64x2xf32>)
  %db, %dgw = lina.combine_grad %dy, %buf, %ids, %gw : (tensor<64x32xf32>, tensor<8x20x32xf32>, tensor<64x2xi32>, tensor<64x2xf32>) -> (tensor<8x20x32xf32>, tensor<64x2xf32>)
  // CHECK: %[[DIN:.*]], %[[DW1:.*]], %[[DW2:.*]] = lina.expert_ffn_grad %{{.*}} activation = relu : (tensor<2x80x32xf32>, tensor<2x80x32xf32>, tensor<2x32x128xf32>, tensor<2x128x32xf32>) -> (tensor<2x80x32xf32>, tensor<2x32x128xf32>, tensor<2x128x32xf32>)
  %din, %dw1, %dw2 = lina.expert_ffn_grad %r, %r, %w1, %w2 activation = relu : (tensor<2x80x32xf32>, tensor<2x80x32xf32>, tensor<2x32x128xf32>, tensor<2x128x32xf32>) -> (tensor<2x80x32xf32>, tensor<2x32x128xf32>, tensor<2x128x32xf32>)
  // CHECK: %[[SIN:.*]], %[[ACT:.*]], %[[DZ:.*]] = lina.expert_ffn_grad_input %{{.*}} activation = relu {chunk = #lina.chunk<index = 0, count = 2>} : (tensor<2x80x32xf32>, tensor<2x80x32xf32>, tensor<2x32x128xf32>, tensor<2x128x32xf32>) -> (tensor<2x80x32xf32>, tensor<2x80x128xf32>, tensor<2x80x128xf32>)
  %sin, %act, %dz = lina.expert_ffn_grad_input %r, %r, %w1, %w2 activation = relu {chunk = #lina.chunk<index = 0, count = 2>} : (tensor<2x80x32xf32>, tensor<2x80x32xf32>, tensor<2x32x128xf32>, tensor<2x128x32xf32>) -> (tensor<2x80x32xf32>, tensor<2x80x128xf32>, tensor<2x80x128xf32>)
  // CHECK: lina.expert_ffn_grad_weight %{{.*}}, %{{.*}}, %[[ACT]], %[[DZ]] : (tensor<2x80x32xf32>, tensor<2x80x32xf32>, tensor<2x80x128xf32>, tensor<2x80x128xf32>) -> (tensor<2x32x128xf32>, tensor<2x128x32xf32>)
  %sw1, %sw2 = lina.expert_ffn_grad_weight %r, %r, %act, %dz : (tensor<2x80x32xf32>, tensor<2x80x32xf32>, tensor<2x80x128xf32>, tensor<2x80x128xf32>) -> (tensor<2x32x128xf32>, tensor<2x128x32xf32>)
  // CHECK: lina.expert_weight_grad %{{.*}}, %[[DZ]] {chunk = #lina.chunk<index = 0, count = 2>} : (tensor<2x80x32xf32>, tensor<2x80x128xf32>) -> tensor<2x32x128xf32>
  %ew1 = lina.expert_weight_grad %r, %dz {chunk = #lina.chunk<index = 0, count = 2>} : (tensor<2x80x32xf32>, tensor<2x80x128xf32>) -> tensor<2x32x128xf32>
  // CHECK: lina.expert_weight_grad %[[ACT]], %{{.*}} : (tensor<2x80x128xf32>, tensor<2x80x32xf32>) -> tensor<2x128x32xf32>
  %ew2 = lina.expert_weight_grad %act, %r : (tensor<2x80x128xf32>, tensor<2x80x32xf32>) -> tensor<2x128x32xf32>
  // CHECK: lina.dispatch_grad %[[DB]], %{{.*}} : (tensor<8x20x32xf32>, tensor<64x2xi32>) -> tensor<64x32xf32>
  %dx1 = lina.dispatch_grad %db, %ids : (tensor<8x20x32xf32>, tensor<64x2xi32>) -> tensor<64x32xf32>
  // CHECK: lina.gate_grad %[[DGW]], %{{.*}} : (tensor<64x2xf32>, tensor<64x32xf32>, tensor<32x8xf32>, tensor<64x2xi32>) -> (tensor<64x32xf32>, tensor<32x8xf32>)
  %dx2, %dwg = lina.gate_grad %dgw, %x, %wg, %ids : (tensor<64x2xf32>, tensor<64x32xf32>, tensor<32x8xf32>, tensor<64x2xi32>) -> (tensor<64x32xf32>, tensor<32x8xf32>)
  // CHECK: lina.dense_grad %{{.*}} activation = none : (tensor<64x32xf32>, tensor<64x32xf32>, tensor<32x32xf32>) -> (tensor<64x32xf32>, tensor<32x32xf32>)
  %dx3, %dwd = lina.dense_grad %dx1, %x, %wd activation = none : (tensor<64x32xf32>, tensor<64x32xf32>, tensor<32x32xf32>) -> (tensor<64x32xf32>, tensor<32x32xf32>)
  // CHECK: lina.all_reduce %{{.*}} group = <@world, "dp"> reduction = sum {priority = #lina.priority<low>} : tensor<32x32xf32>
  %g = lina.all_reduce %dwd group = #lina.group<@world, "dp"> reduction = sum {priority = #lina.priority<low>} : tensor<32x32xf32>
  // CHECK: lina.all_reduce %{{.*}} group = <@flat, "dp"> reduction = max {partition = #lina.partition<index = 1, count = 4, offset = 64, original = 256>} : tensor<64xf32>
  %flat = tensor.collapse_shape %dwg [[0, 1]] : tensor<32x8xf32> into tensor<256xf32>
  %piece = tensor.extract_slice %flat[64] [64] [1] : tensor<256xf32> to tensor<64xf32>
  %p = lina.all_reduce %piece group = #lina.group<@flat, "dp"> reduction = max {partition = #lina.partition<index = 1, count = 4, offset = 64, original = 256>} : tensor<64xf32>
  // The other partitions: together they cover the 256 elements once.
  %piece0 = tensor.extract_slice %flat[0] [64] [1] : tensor<256xf32> to tensor<64xf32>
  %p0 = lina.all_reduce %piece0 group = #lina.group<@flat, "dp"> reduction = max {partition = #lina.partition<index = 0, count = 4, offset = 0, original = 256>} : tensor<64xf32>
  %piece2 = tensor.extract_slice %flat[128] [100] [1] : tensor<256xf32> to tensor<100xf32>
  %p2 = lina.all_reduce %piece2 group = #lina.group<@flat, "dp"> reduction = max {partition = #lina.partition<index = 2, count = 4, offset = 128, original = 256>} : tensor<100xf32>
  %piece3 = tensor.extract_slice %flat[228] [28] [1] : tensor<256xf32> to tensor<28xf32>
  %p3 = lina.all_reduce %piece3 group = #lina.group<@flat, "dp"> reduction = max {partition = #lina.partition<index = 3, count = 4, offset = 228, original = 256>} : tensor<28xf32>
  // CHECK: lina.all_reduce %{{.*}} reduction = prod
  %q = lina.all_reduce %dw1 group = #lina.group<@world, "dp"> reduction = prod : tensor<2x32x128xf32>
  // CHECK: lina.all_reduce %{{.*}} reduction = min
  %m = lina.all_reduce %dw2 group = #lina.group<@world, "dp"> reduction = min : tensor<2x128x32xf32>
  return %dx3, %g, %dwg, %q, %m : tensor<64x32xf32>, tensor<32x32xf32>, tensor<32x8xf32>, tensor<2x32x128xf32>, tensor<2x128x32xf32>
}

// CHECK-LABEL: func @variable
func.func @variable(%rows: tensor<64x32xbf16>, %send: tensor<4xi64>) -> tensor<96x32xbf16> {
  // Counts are exchanged by a uniform all_to_all of the count tensor.
  // CHECK: %[[RECV:.*]] = lina.all_to_all %{{.*}} group = <@world, "ep"> split_axis = 0 concat_axis = 0 : tensor<4xi64> -> tensor<4xi64>
  %recv = lina.all_to_all %send group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 0 : tensor<4xi64> -> tensor<4xi64>
  // CHECK: lina.all_to_all %{{.*}} counts(%{{.*}}, %[[RECV]] : tensor<4xi64>, tensor<4xi64>) group = <@world, "ep"> split_axis = 0 concat_axis = 0 : tensor<64x32xbf16> -> tensor<96x32xbf16>
  %out = lina.all_to_all %rows counts(%send, %recv : tensor<4xi64>, tensor<4xi64>) group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 0 : tensor<64x32xbf16> -> tensor<96x32xbf16>
  return %out : tensor<96x32xbf16>
}
