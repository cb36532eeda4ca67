// RUN: lina-opt %s --lina-build-placement="profile=%S/Inputs/build-placement-skewed.json devices=4 experts-per-device=3" | FileCheck %s

// 8 experts, top-2, popularity [.05, .4, .05, .05, .3, .05, .05, .05] on
// 4 devices x 3 slots (static: experts 2d, 2d+1 on device d; max load
// 0.45 on device 0). The ideal is 1/4 per device. Expert 1 (0.4) is
// replicated on devices 0, 1, 3 and expert 4 (0.3) on devices 0, 2 (their
// home devices first); the six cold experts stay unreplicated on their
// home devices, and every device ends at exactly 0.25:
//   device 0: e0 .05 + e1 .4 * .25 + e4 .3 / 3     = .25
//   device 1: e1 .4 * .375 + e2 .05 + e3 .05       = .25
//   device 2: e4 .3 * 2/3 + e5 .05                 = .25
//   device 3: e1 .4 * .375 + e6 .05 + e7 .05       = .25
// CHECK-LABEL: func.func @one_layer
// CHECK: lina.placement = #lina.placement<num_devices = 4, slots_per_device = 3,
// CHECK-SAME: offsets = [0, 1, 4, 5, 6, 8, 9, 10, 11],
// CHECK-SAME: devices = [0, 0, 1, 3, 1, 1, 0, 2, 2, 3, 3],
// CHECK-SAME: shares = [1.0, 0.25, 0.375, 0.375, 1.0, 1.0, 0.333333, 0.666667, 1.0, 1.0, 1.0]>
func.func @one_layer(%x: tensor<8x16xf32>, %wg: tensor<16x8xf32>) -> tensor<8x2xi32> {
  %ids, %w = lina.gate %x, %wg experts = 8 top_k = 2 capacity_factor = 1.0 : (tensor<8x16xf32>, tensor<16x8xf32>) -> (tensor<8x2xi32>, tensor<8x2xf32>)
  return %ids : tensor<8x2xi32>
}
