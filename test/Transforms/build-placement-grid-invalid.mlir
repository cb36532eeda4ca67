// --lina-build-placement checks `devices` and `experts-per-device` against
// the IR: the group of the all_to_all that carries a gate's experts, and
// the experts per device of the expert_ffn behind it. A mismatch is an
// error on the gate, with a note on the op that fixes the IR's value.
// RUN: lina-opt %s -split-input-file -verify-diagnostics --lina-build-placement="profile=%S/Inputs/build-placement-skewed.json devices=8"
// RUN: lina-opt %s --lina-build-placement="profile=%S/Inputs/build-placement-skewed.json devices=4 experts-per-device=3" | FileCheck %s --check-prefix=OK
// RUN: not lina-opt %s --lina-build-placement="profile=%S/Inputs/build-placement-skewed.json devices=4 experts-per-device=1" 2>&1 | FileCheck %s --check-prefix=SLOTS

// OK: lina.placement = #lina.placement<num_devices = 4, slots_per_device = 3,
// SLOTS: error: lina-build-placement: experts-per-device=1 disagrees with the IR: MoE layer 0 holds 2 experts on each device (the lina.expert_ffn weights); experts-per-device counts expert slots, at least 2
// SLOTS: note: the experts of one device: 2

lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

func.func @grid_of_four(%x: tensor<8x16xf32>, %wg: tensor<16x8xf32>, %w1: tensor<2x16x32xf32>, %w2: tensor<2x32x16xf32>) -> tensor<2x16x16xf32> {
  // expected-error @+1 {{lina-build-placement: devices=8 disagrees with the IR: MoE layer 0 exchanges its experts over 4 devices (the group of its lina.all_to_all); pass devices=4}}
  %ids, %w = lina.gate %x, %wg experts = 8 top_k = 2 capacity_factor = 2.0 : (tensor<8x16xf32>, tensor<16x8xf32>) -> (tensor<8x2xi32>, tensor<8x2xf32>)
  %buf = lina.dispatch %x, %ids : (tensor<8x16xf32>, tensor<8x2xi32>) -> tensor<8x4x16xf32>
  // expected-note @+1 {{the expert exchange, over a group of 4 devices}}
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x4x16xf32> -> tensor<2x16x16xf32>
  %e = lina.expert_ffn %r, %w1, %w2 activation = silu : (tensor<2x16x16xf32>, tensor<2x16x32xf32>, tensor<2x32x16xf32>) -> tensor<2x16x16xf32>
  return %e : tensor<2x16x16xf32>
}
