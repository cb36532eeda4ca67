// Capacity too small and a top-k that does not match the profile, with
// -verify-diagnostics on the offending gate.
// RUN: lina-opt %s -split-input-file -verify-diagnostics --lina-build-placement="profile=%S/Inputs/build-placement-skewed.json devices=2 experts-per-device=3"

func.func @too_small(%x: tensor<8x16xf32>, %wg: tensor<16x8xf32>) -> tensor<8x2xi32> {
  // expected-error @+1 {{lina-build-placement: MoE layer 0: 2 devices with 3 expert slots each cannot hold 8 experts (need devices x slots >= experts); raise experts-per-device or devices}}
  %ids, %w = lina.gate %x, %wg experts = 8 top_k = 2 capacity_factor = 1.0 : (tensor<8x16xf32>, tensor<16x8xf32>) -> (tensor<8x2xi32>, tensor<8x2xf32>)
  return %ids : tensor<8x2xi32>
}

// -----

func.func @wrong_top_k(%x: tensor<8x16xf32>, %wg: tensor<16x8xf32>) -> tensor<8x1xi32> {
  // expected-error @+1 {{lina-build-placement: MoE layer 0: the profile was recorded with top-k 2 but this gate has top_k = 1}}
  %ids, %w = lina.gate %x, %wg experts = 8 top_k = 1 capacity_factor = 1.0 : (tensor<8x16xf32>, tensor<16x8xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>)
  return %ids : tensor<8x1xi32>
}
