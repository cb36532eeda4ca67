// RUN: lina-opt %s -split-input-file --lina-build-placement="profile=%S/Inputs/build-placement-2layers.json devices=4 experts-per-device=2" | FileCheck %s
// RUN: lina-opt %s -split-input-file --lina-build-placement="profile=%S/Inputs/build-placement-2layers.json devices=4 experts-per-device=2" | lina-opt -split-input-file | FileCheck %s
// RUN: lina-opt %s -split-input-file --lina-build-placement="profile=%S/Inputs/build-placement-2layers.json devices=4" | FileCheck %s --check-prefix=NOSPARE
// RUN: lina-opt %s -split-input-file --lina-build-placement="profile=%S/Inputs/build-placement-2layers.json devices=4 experts-per-device=2 report=true" -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT

// Profile: layer 0 popularity [0.7, 0.1, 0.1, 0.1], layer 1 uniform.
// 4 devices x 2 slots. Layer 0: expert 0 is replicated on every device; the
// water-filled shares give each device a load of exactly 0.25:
//   device 0: 0.7 * 5/14 = 0.25; devices 1-3: 0.7 * 3/14 + 0.1 = 0.25
// (shares on a 1e-6 grid).
// Layer 1 (uniform): expert parallelism is already optimal and is kept.

// CHECK-LABEL: func.func @two_layers
// CHECK: lina.gate %{{.*}}, %{{.*}} experts = 4 top_k = 1 capacity_factor = 1.000000e+00 {lina.placement = #lina.placement<num_devices = 4, slots_per_device = 2, offsets = [0, 4, 5, 6, 7], devices = [0, 1, 2, 3, 1, 2, 3], shares = [0.357142, 0.214286, 0.214286, 0.214286, 1.0, 1.0, 1.0]>}
// CHECK: lina.gate %{{.*}}, %{{.*}} experts = 4 top_k = 1 capacity_factor = 1.000000e+00 {lina.placement = #lina.placement<num_devices = 4, slots_per_device = 2, offsets = [0, 1, 2, 3, 4], devices = [0, 1, 2, 3], shares = [1.0, 1.0, 1.0, 1.0]>}

// Without spare slots (experts-per-device = ceil(4 / 4) = 1) nothing can be
// replicated or moved usefully: both layers keep expert parallelism.
// NOSPARE-LABEL: func.func @two_layers
// NOSPARE: lina.placement = #lina.placement<num_devices = 4, slots_per_device = 1, offsets = [0, 1, 2, 3, 4], devices = [0, 1, 2, 3], shares = [1.0, 1.0, 1.0, 1.0]>
// NOSPARE: lina.placement = #lina.placement<num_devices = 4, slots_per_device = 1, offsets = [0, 1, 2, 3, 4], devices = [0, 1, 2, 3], shares = [1.0, 1.0, 1.0, 1.0]>

// REPORT: remark: lina-build-placement: MoE layer 0: 7 replicas of 4 experts, max device load 0.2500 (static 0.7000)
// REPORT: remark: lina-build-placement: MoE layer 1: 4 replicas of 4 experts, max device load 0.2500 (static 0.2500), static placement
func.func @two_layers(%x: tensor<8x16xf32>, %wg0: tensor<16x4xf32>, %wg1: tensor<16x4xf32>) -> (tensor<8x1xi32>, tensor<8x1xi32>) {
  %ids0, %w0 = lina.gate %x, %wg0 experts = 4 top_k = 1 capacity_factor = 1.0 : (tensor<8x16xf32>, tensor<16x4xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>)
  %ids1, %w1 = lina.gate %x, %wg1 experts = 4 top_k = 1 capacity_factor = 1.0 : (tensor<8x16xf32>, tensor<16x4xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>)
  return %ids0, %ids1 : tensor<8x1xi32>, tensor<8x1xi32>
}

// -----

// A function without gates is left alone.
// CHECK-LABEL: func.func @no_moe
// CHECK-NOT: lina.placement
// NOSPARE-LABEL: func.func @no_moe
func.func @no_moe(%x: tensor<8x16xf32>, %w: tensor<16x16xf32>) -> tensor<8x16xf32> {
  %y = lina.dense %x, %w activation = relu : (tensor<8x16xf32>, tensor<16x16xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}
