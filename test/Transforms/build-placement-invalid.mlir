// Profiles that do not match the model, missing or garbled profile files,
// and bad options.
// RUN: not lina-opt %s --lina-build-placement="profile=%S/Inputs/build-placement-skewed.json devices=4" 2>&1 | FileCheck %s --check-prefix=LAYERS
// LAYERS: error: lina-build-placement: the profile '{{.*}}build-placement-skewed.json' describes 1 MoE layers but @two_gates has 2 lina.gate ops; profile a trace of this model

// RUN: not lina-opt %s --lina-build-placement="profile=%S/Inputs/build-placement-2layers.json devices=4" 2>&1 | FileCheck %s --check-prefix=EXPERTS
// EXPERTS: error: lina-build-placement: MoE layer 0: the profile has 4 experts per layer but this gate has num_experts = 8

// RUN: not lina-opt %s --lina-build-placement="profile=%S/Inputs/does-not-exist.json devices=4" 2>&1 | FileCheck %s --check-prefix=MISSING
// The profile is read once, by the pass's initialize: its errors have no
// location.
// MISSING: <unknown>:0: error: lina-build-placement: cannot open profile '{{.*}}does-not-exist.json'

// RUN: not lina-opt %s --lina-build-placement="profile=%S/Inputs/build-placement-garbled.json devices=4" 2>&1 | FileCheck %s --check-prefix=GARBLED
// GARBLED: <unknown>:0: error: lina-build-placement: {{.*}}build-placement-garbled.json: not valid JSON (expected a profile written by lina-profile)

// devices and experts-per-device are integers; 0 means not given.
// RUN: not lina-opt %s --lina-build-placement="profile=%S/Inputs/build-placement-2layers.json devices=0" 2>&1 | FileCheck %s --check-prefix=NODEV

// RUN: not lina-opt %s --lina-build-placement="profile=%S/Inputs/build-placement-2layers.json devices=-3" 2>&1 | FileCheck %s --check-prefix=NEG
// NEG: <unknown>:0: error: lina-build-placement: devices must be a positive integer, got '-3'

// RUN: not lina-opt %s --lina-build-placement="profile=%S/Inputs/build-placement-2layers.json devices=2000000" 2>&1 | FileCheck %s --check-prefix=HUGE
// HUGE: <unknown>:0: error: lina-build-placement: devices must be at most 1048576, got '2000000'

// RUN: not lina-opt %s --lina-build-placement="profile=%S/Inputs/build-placement-2layers.json devices=four" 2>&1 | FileCheck %s --check-prefix=NAN
// NAN: for the --devices option: 'four' value invalid for long argument

// RUN: not lina-opt %s --lina-build-placement="profile=%S/Inputs/build-placement-2layers.json devices=4 experts-per-device=six" 2>&1 | FileCheck %s --check-prefix=SLOTSNAN
// SLOTSNAN: for the --experts-per-device option: 'six' value invalid for long argument

// RUN: not lina-opt %s --lina-build-placement="profile=%S/Inputs/build-placement-2layers.json" 2>&1 | FileCheck %s --check-prefix=NODEV
// NODEV: error: lina-build-placement: devices=N is required (the number of devices of the expert-parallel group, a positive integer)

// RUN: not lina-opt %s --lina-build-placement="devices=4" 2>&1 | FileCheck %s --check-prefix=NOPROF
// NOPROF: error: lina-build-placement: the profile=FILE option is required (a routing profile written by lina-profile)

// RUN: not lina-opt %s --lina-build-placement="profile=%S/Inputs/build-placement-2layers.json devices=4 experts-per-device=-1" 2>&1 | FileCheck %s --check-prefix=SLOTS
// SLOTS: <unknown>:0: error: lina-build-placement: experts-per-device must be a positive integer, got '-1'

func.func @two_gates(%x: tensor<8x16xf32>, %wg0: tensor<16x8xf32>, %wg1: tensor<16x8xf32>) -> (tensor<8x2xi32>, tensor<8x2xi32>) {
  %ids0, %w0 = lina.gate %x, %wg0 experts = 8 top_k = 2 capacity_factor = 1.0 : (tensor<8x16xf32>, tensor<16x8xf32>) -> (tensor<8x2xi32>, tensor<8x2xf32>)
  %ids1, %w1 = lina.gate %x, %wg1 experts = 8 top_k = 2 capacity_factor = 1.0 : (tensor<8x16xf32>, tensor<16x8xf32>) -> (tensor<8x2xi32>, tensor<8x2xf32>)
  return %ids0, %ids1 : tensor<8x2xi32>, tensor<8x2xi32>
}
