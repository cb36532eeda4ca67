// RUN: lina-opt %s -split-input-file -verify-diagnostics

// Sizes are computed with overflow-checked arithmetic and bounded by the
// documented limits (docs/LIMITS.md); a value beyond a limit is an error
// naming the quantity and the limit, never a wrapped or truncated size.

// expected-error @+1 {{grid of shape [3037000500, 3037000500] has more ranks than a 64-bit integer holds; the limit is 1048576 ranks}}
lina.grid @g shape = [3037000500, 3037000500] groups = {ep = array<i64: 0>}

// -----

// The product wraps to 0 in 64 bits: no division by a zero group size.
// expected-error @+1 {{grid of shape [4294967296, 4294967296] has more ranks than a 64-bit integer holds}}
lina.grid @g shape = [4294967296, 4294967296] groups = {ep = array<i64: 0, 1>}
func.func @a2a(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 0 : tensor<8x4xf32> -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

// expected-error @+1 {{grid of shape [2048, 1024] has 2097152 ranks; the limit is 1048576}}
lina.grid @g shape = [2048, 1024] groups = {ep = array<i64: 0>}

// -----

// Exactly at the limit is fine.
lina.grid @g shape = [1024, 1024] groups = {dp = array<i64: 0>, ep = array<i64: 1>}

// -----

func.func @elements_overflow(%x: tensor<4611686018427387968x4xf32>, %w: tensor<4x4xf32>) -> tensor<4611686018427387968x4xf32> {
  // expected-error @+1 {{operand #0 of type 'tensor<4611686018427387968x4xf32>': element count overflows a 64-bit integer; the limit is 281474976710656}}
  %0 = lina.dense %x, %w activation = none : (tensor<4611686018427387968x4xf32>, tensor<4x4xf32>) -> tensor<4611686018427387968x4xf32>
  return %0 : tensor<4611686018427387968x4xf32>
}

// -----

lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @too_many_elements(%x: tensor<281474976710657xf32>) -> tensor<281474976710657xf32> {
  // expected-error @+1 {{operand #0 of type 'tensor<281474976710657xf32>': element count is 281474976710657; the limit is 281474976710656}}
  %0 = lina.all_reduce %x group = #lina.group<@g, "dp"> reduction = sum : tensor<281474976710657xf32>
  return %0 : tensor<281474976710657xf32>
}

// -----

lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @rank_17(%x: tensor<1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1xf32>) -> tensor<1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1xf32> {
  // expected-error @+1 {{tensor rank is 17; the limit is 16}}
  %0 = lina.all_reduce %x group = #lina.group<@g, "dp"> reduction = sum : tensor<1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1xf32>
  return %0 : tensor<1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1xf32>
}

// -----

func.func @experts_limit(%x: tensor<4x4xf32>, %w: tensor<4x2097152xf32>) {
  // expected-error @+1 {{num_experts is 2097152; the limit is 1048576}}
  %ids, %gw = lina.gate %x, %w experts = 2097152 top_k = 1 capacity_factor = 1.0 : (tensor<4x4xf32>, tensor<4x2097152xf32>) -> (tensor<4x1xi32>, tensor<4x1xf32>)
  return
}

// -----

func.func @capacity_limit(%x: tensor<4x4xf32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{capacity_factor 1e+30 implies a capacity of 1e+30 rows per expert for 4 tokens; the limit is 1099511627776}}
  %ids, %gw = lina.gate %x, %w experts = 8 top_k = 2 capacity_factor = 1.0e30 : (tensor<4x4xf32>, tensor<4x8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  return
}

// -----

func.func @capacity_inf(%x: tensor<4x4xf32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{attribute 'capacity_factor' failed to satisfy constraint: 64-bit float attribute whose value is finite and positive}}
  %ids, %gw = lina.gate %x, %w experts = 8 top_k = 2 capacity_factor = 0x7FF0000000000000 : (tensor<4x4xf32>, tensor<4x8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  return
}

// -----

func.func @capacity_nan(%x: tensor<4x4xf32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{attribute 'capacity_factor' failed to satisfy constraint: 64-bit float attribute whose value is finite and positive}}
  %ids, %gw = lina.gate %x, %w experts = 8 top_k = 2 capacity_factor = 0x7FF8000000000000 : (tensor<4x4xf32>, tensor<4x8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  return
}

// -----

func.func @capacity_zero_factor(%x: tensor<4x4xf32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{attribute 'capacity_factor' failed to satisfy constraint: 64-bit float attribute whose value is finite and positive}}
  %ids, %gw = lina.gate %x, %w experts = 8 top_k = 2 capacity_factor = 0.0 : (tensor<4x4xf32>, tensor<4x8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  return
}

// -----

// A placement table is validated before anything is sized from it.
func.func @placement_devices(%x: tensor<4x4xf32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{placement num_devices is 1099511627776; the limit is 1048576}}
  %ids, %gw = lina.gate %x, %w experts = 2 top_k = 1 capacity_factor = 1.0 {lina.placement = #lina.placement<num_devices = 1099511627776, slots_per_device = 1, offsets = [0, 1, 2], devices = [0, 1], shares = [1.0, 1.0]>} : (tensor<4x4xf32>, tensor<4x2xf32>) -> (tensor<4x1xi32>, tensor<4x1xf32>)
  return
}

// -----

func.func @placement_slots(%x: tensor<4x4xf32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{placement slots_per_device is 1099511627776; the limit is 1048576}}
  %ids, %gw = lina.gate %x, %w experts = 2 top_k = 1 capacity_factor = 1.0 {lina.placement = #lina.placement<num_devices = 2, slots_per_device = 1099511627776, offsets = [0, 1, 2], devices = [0, 1], shares = [1.0, 1.0]>} : (tensor<4x4xf32>, tensor<4x2xf32>) -> (tensor<4x1xi32>, tensor<4x1xf32>)
  return
}

// -----

// Offsets that jump past the replica arrays and come back: rejected before
// any replica is read.
func.func @placement_offsets(%x: tensor<4x4xf32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{placement expert 1 has no replica (offsets must increase strictly)}}
  %ids, %gw = lina.gate %x, %w experts = 2 top_k = 1 capacity_factor = 1.0 {lina.placement = #lina.placement<num_devices = 2, slots_per_device = 2, offsets = [0, 1000000, 2], devices = [0, 1], shares = [1.0, 1.0]>} : (tensor<4x4xf32>, tensor<4x2xf32>) -> (tensor<4x1xi32>, tensor<4x1xf32>)
  return
}

// -----

lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @partition_offset_overflow(%x: tensor<16xf32>) -> tensor<16xf32> {
  // expected-error @+1 {{partition of 16 elements at offset 9223372036854775800 does not fit in the original 9223372036854775807 elements}}
  %0 = lina.all_reduce %x group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 1, offset = 9223372036854775800, original = 9223372036854775807>} : tensor<16xf32>
  return %0 : tensor<16xf32>
}
