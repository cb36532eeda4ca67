// The #lina.placement attribute: round trip and verifier.
// RUN: lina-opt %s -split-input-file -verify-diagnostics | FileCheck %s

// CHECK-LABEL: func.func @table
// CHECK: lina.placement = #lina.placement<num_devices = 2, slots_per_device = 2, offsets = [0, 2, 3], devices = [0, 1, 1], shares = [0.25, 0.75, 1.0]>
func.func @table(%x: tensor<4x8xf32>, %wg: tensor<8x2xf32>) -> tensor<4x1xi32> {
  %ids, %w = lina.gate %x, %wg experts = 2 top_k = 1 capacity_factor = 1.0 {lina.placement = #lina.placement<num_devices = 2, slots_per_device = 2, offsets = [0, 2, 3], devices = [0, 1, 1], shares = [0.25, 0.75, 1.0]>} : (tensor<4x8xf32>, tensor<8x2xf32>) -> (tensor<4x1xi32>, tensor<4x1xf32>)
  return %ids : tensor<4x1xi32>
}

// -----

// expected-error @+1 {{placement expert 0 has two replicas on device 1}}
#bad = #lina.placement<num_devices = 2, slots_per_device = 2, offsets = [0, 2], devices = [1, 1], shares = [0.5, 0.5]>

// -----

// expected-error @+1 {{placement expert 1's replica shares sum to 0.9, not 1}}
#bad = #lina.placement<num_devices = 2, slots_per_device = 2, offsets = [0, 1, 3], devices = [0, 0, 1], shares = [1.0, 0.5, 0.4]>

// -----

// expected-error @+1 {{placement expert 1 has no replica (offsets must increase strictly)}}
#bad = #lina.placement<num_devices = 2, slots_per_device = 2, offsets = [0, 1, 1], devices = [0], shares = [1.0]>

// -----

// expected-error @+1 {{placement expert 0 has a replica on device 2, outside [0, 2)}}
#bad = #lina.placement<num_devices = 2, slots_per_device = 1, offsets = [0, 1], devices = [2], shares = [1.0]>

// -----

// expected-error @+1 {{placement device 0 hosts 2 experts but has 1 slots}}
#bad = #lina.placement<num_devices = 2, slots_per_device = 1, offsets = [0, 1, 2], devices = [0, 0], shares = [1.0, 1.0]>

// -----

// expected-error @+1 {{placement devices (2) and shares (1) must both have offsets' last entry (2) elements}}
#bad = #lina.placement<num_devices = 2, slots_per_device = 1, offsets = [0, 2], devices = [0, 1], shares = [1.0]>

// -----

// expected-error @+1 {{placement num_devices must be positive, got 0}}
#bad = #lina.placement<num_devices = 0, slots_per_device = 1, offsets = [0, 1], devices = [0], shares = [1.0]>

// -----

// expected-error @+1 {{placement expert 0 has a replica with share -0.5 (shares must be positive)}}
#bad = #lina.placement<num_devices = 2, slots_per_device = 1, offsets = [0, 2], devices = [0, 1], shares = [-0.5, 1.5]>
