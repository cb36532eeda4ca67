// RUN: lina-opt %s -split-input-file -verify-diagnostics

// Facts that relate several ops, and the discardable lina.* attributes.

// The gate routes 48 tokens top-2 over 8 experts with capacity_factor 1:
// capacity = ceil(48 * 2 / 8 * 1) = 12. A buffer of capacity 3 would drop
// most tokens silently.
func.func @dispatch_capacity(%x: tensor<48x16xf32>, %wg: tensor<16x8xf32>) -> tensor<8x3x16xf32> {
  %ids, %gw = lina.gate %x, %wg experts = 8 top_k = 2 capacity_factor = 1.0 : (tensor<48x16xf32>, tensor<16x8xf32>) -> (tensor<48x2xi32>, tensor<48x2xf32>)
  // expected-error @+1 {{result dimension 1 (3) must equal the capacity its gate implies (12 = ceil(48 tokens * top_k 2 / 8 experts * capacity_factor 1))}}
  %buf = lina.dispatch %x, %ids : (tensor<48x16xf32>, tensor<48x2xi32>) -> tensor<8x3x16xf32>
  return %buf : tensor<8x3x16xf32>
}

// -----

func.func @dispatch_experts(%x: tensor<48x16xf32>, %wg: tensor<16x8xf32>) -> tensor<4x12x16xf32> {
  %ids, %gw = lina.gate %x, %wg experts = 8 top_k = 2 capacity_factor = 1.0 : (tensor<48x16xf32>, tensor<16x8xf32>) -> (tensor<48x2xi32>, tensor<48x2xf32>)
  // expected-error @+1 {{result dimension 0 (4) must equal the num_experts of its gate (8)}}
  %buf = lina.dispatch %x, %ids : (tensor<48x16xf32>, tensor<48x2xi32>) -> tensor<4x12x16xf32>
  return %buf : tensor<4x12x16xf32>
}

// -----

func.func @combine_capacity(%x: tensor<48x16xf32>, %wg: tensor<16x8xf32>, %buf: tensor<8x13x16xf32>) -> tensor<48x16xf32> {
  %ids, %gw = lina.gate %x, %wg experts = 8 top_k = 2 capacity_factor = 1.0 : (tensor<48x16xf32>, tensor<16x8xf32>) -> (tensor<48x2xi32>, tensor<48x2xf32>)
  // expected-error @+1 {{input dimension 1 (13) must equal the capacity its gate implies (12}}
  %y = lina.combine %buf, %ids, %gw : (tensor<8x13x16xf32>, tensor<48x2xi32>, tensor<48x2xf32>) -> tensor<48x16xf32>
  return %y : tensor<48x16xf32>
}

// -----

func.func @combine_grad_experts(%x: tensor<48x16xf32>, %wg: tensor<16x8xf32>, %buf: tensor<2x12x16xf32>, %dy: tensor<48x16xf32>) {
  %ids, %gw = lina.gate %x, %wg experts = 8 top_k = 2 capacity_factor = 1.0 : (tensor<48x16xf32>, tensor<16x8xf32>) -> (tensor<48x2xi32>, tensor<48x2xf32>)
  // expected-error @+1 {{input dimension 0 (2) must equal the num_experts of its gate (8)}}
  %db, %dgw = lina.combine_grad %dy, %buf, %ids, %gw : (tensor<48x16xf32>, tensor<2x12x16xf32>, tensor<48x2xi32>, tensor<48x2xf32>) -> (tensor<2x12x16xf32>, tensor<48x2xf32>)
  return
}

// -----

func.func @dispatch_grad_capacity(%x: tensor<48x16xf32>, %wg: tensor<16x8xf32>, %db: tensor<8x6x16xf32>) {
  %ids, %gw = lina.gate %x, %wg experts = 8 top_k = 2 capacity_factor = 1.0 : (tensor<48x16xf32>, tensor<16x8xf32>) -> (tensor<48x2xi32>, tensor<48x2xf32>)
  // expected-error @+1 {{grad dimension 1 (6) must equal the capacity its gate implies (12}}
  %dx = lina.dispatch_grad %db, %ids : (tensor<8x6x16xf32>, tensor<48x2xi32>) -> tensor<48x16xf32>
  return
}

// -----

func.func @two_gates(%x: tensor<48x16xf32>, %wg: tensor<16x8xf32>, %buf: tensor<8x12x16xf32>) -> tensor<48x16xf32> {
  %ids, %gw = lina.gate %x, %wg experts = 8 top_k = 2 capacity_factor = 1.0 : (tensor<48x16xf32>, tensor<16x8xf32>) -> (tensor<48x2xi32>, tensor<48x2xf32>)
  %ids2, %gw2 = lina.gate %x, %wg experts = 8 top_k = 2 capacity_factor = 1.0 : (tensor<48x16xf32>, tensor<16x8xf32>) -> (tensor<48x2xi32>, tensor<48x2xf32>)
  // expected-error @+1 {{expert_ids and gate_weights come from different gates}}
  %y = lina.combine %buf, %ids, %gw2 : (tensor<8x12x16xf32>, tensor<48x2xi32>, tensor<48x2xf32>) -> tensor<48x16xf32>
  return %y : tensor<48x16xf32>
}

// -----

// Without a visible gate (ids from an argument) only the shapes are checked,
// and a buffer still needs a positive capacity.
func.func @capacity_zero(%x: tensor<48x16xf32>, %ids: tensor<48x2xi32>) -> tensor<8x0x16xf32> {
  // expected-error @+1 {{result has 8 experts of capacity 0; both must be positive}}
  %buf = lina.dispatch %x, %ids : (tensor<48x16xf32>, tensor<48x2xi32>) -> tensor<8x0x16xf32>
  return %buf : tensor<8x0x16xf32>
}

// -----

// The capacity rounds up and is at least 1: 3 tokens top-1 over 8 experts
// with factor 1.25 gives ceil(0.46875) = 1.
func.func @capacity_min_one(%x: tensor<3x16xf32>, %wg: tensor<16x8xf32>) -> tensor<8x1x16xf32> {
  %ids, %gw = lina.gate %x, %wg experts = 8 top_k = 1 capacity_factor = 1.25 : (tensor<3x16xf32>, tensor<16x8xf32>) -> (tensor<3x1xi32>, tensor<3x1xf32>)
  %buf = lina.dispatch %x, %ids : (tensor<3x16xf32>, tensor<3x1xi32>) -> tensor<8x1x16xf32>
  return %buf : tensor<8x1x16xf32>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @partition_on_all_to_all(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{has 'partition = #lina.partition<index = 0, count = 2, offset = 0, original = 64>', but a #lina.partition is only valid on lina.all_reduce}}
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 0 {partition = #lina.partition<index = 0, count = 2, offset = 0, original = 64>} : tensor<8x4xf32> -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @chunk_on_dense(%x: tensor<8x4xf32>, %w: tensor<4x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{a #lina.chunk is only valid on lina.all_to_all, lina.expert_ffn and lina.expert_ffn_grad}}
  %0 = lina.dense %x, %w activation = none {chunk = #lina.chunk<index = 0, count = 2>} : (tensor<8x4xf32>, tensor<4x4xf32>) -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @priority_on_dense(%x: tensor<8x4xf32>, %w: tensor<4x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{a #lina.priority is only valid on lina.all_to_all and lina.all_reduce}}
  %0 = lina.dense %x, %w activation = none {priority = #lina.priority<high>} : (tensor<8x4xf32>, tensor<4x4xf32>) -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

// Partitions of one all_reduce (slices of one flattened tensor) must cover
// it exactly once.
lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @partition_gap(%flat: tensor<640xf32>) {
  %s0 = tensor.extract_slice %flat[0] [256] [1] : tensor<640xf32> to tensor<256xf32>
  %p0 = lina.all_reduce %s0 group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 2, offset = 0, original = 640>} : tensor<256xf32>
  %s1 = tensor.extract_slice %flat[300] [340] [1] : tensor<640xf32> to tensor<340xf32>
  // expected-error @+1 {{partition 1 starts at element 300, leaving a gap [256, 300) of the original tensor unreduced}}
  %p1 = lina.all_reduce %s1 group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 1, count = 2, offset = 300, original = 640>} : tensor<340xf32>
  return
}

// -----

lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @partition_overlap(%flat: tensor<640xf32>) {
  %s0 = tensor.extract_slice %flat[0] [256] [1] : tensor<640xf32> to tensor<256xf32>
  %p0 = lina.all_reduce %s0 group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 2, offset = 0, original = 640>} : tensor<256xf32>
  %s1 = tensor.extract_slice %flat[200] [440] [1] : tensor<640xf32> to tensor<440xf32>
  // expected-error @+1 {{partition 1 starts at element 200, overlapping the previous partition, which ends at 256}}
  %p1 = lina.all_reduce %s1 group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 1, count = 2, offset = 200, original = 640>} : tensor<440xf32>
  return
}

// -----

lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @partition_tail_gap(%flat: tensor<640xf32>) {
  %s0 = tensor.extract_slice %flat[0] [256] [1] : tensor<640xf32> to tensor<256xf32>
  %p0 = lina.all_reduce %s0 group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 2, offset = 0, original = 640>} : tensor<256xf32>
  %s1 = tensor.extract_slice %flat[256] [256] [1] : tensor<640xf32> to tensor<256xf32>
  // expected-error @+1 {{partitions cover [0, 512) of the original 640 elements, leaving a gap [512, 640)}}
  %p1 = lina.all_reduce %s1 group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 1, count = 2, offset = 256, original = 640>} : tensor<256xf32>
  return
}

// -----

lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @partition_missing(%flat: tensor<640xf32>) {
  %s0 = tensor.extract_slice %flat[0] [256] [1] : tensor<640xf32> to tensor<256xf32>
  // expected-error @+1 {{partition 1 of 3 is missing: elements from 256 of the original 640 are not reduced}}
  %p0 = lina.all_reduce %s0 group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 3, offset = 0, original = 640>} : tensor<256xf32>
  %s2 = tensor.extract_slice %flat[512] [128] [1] : tensor<640xf32> to tensor<128xf32>
  %p2 = lina.all_reduce %s2 group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 2, count = 3, offset = 512, original = 640>} : tensor<128xf32>
  return
}

// -----

// A huge count sizes nothing: the partitions present are counted.
lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @partition_huge_count(%x: tensor<16xf32>) {
  // expected-error @+1 {{partition 1 of 1099511627776 is missing: elements from 16 of the original 32 are not reduced}}
  %p0 = lina.all_reduce %x group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 1099511627776, offset = 0, original = 32>} : tensor<16xf32>
  return
}

// -----

lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @partition_twice(%flat: tensor<512xf32>) {
  %s0 = tensor.extract_slice %flat[0] [256] [1] : tensor<512xf32> to tensor<256xf32>
  // expected-note @+1 {{first here}}
  %p0 = lina.all_reduce %s0 group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 2, offset = 0, original = 512>} : tensor<256xf32>
  %s1 = tensor.extract_slice %flat[0] [256] [1] : tensor<512xf32> to tensor<256xf32>
  // expected-error @+1 {{partition index 0 of 2 appears twice}}
  %p1 = lina.all_reduce %s1 group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 2, offset = 0, original = 512>} : tensor<256xf32>
  return
}

// -----

lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @partition_slice_offset(%flat: tensor<512xf32>) {
  %s0 = tensor.extract_slice %flat[8] [256] [1] : tensor<512xf32> to tensor<256xf32>
  // expected-error @+1 {{partition offset 0 differs from the offset of its input slice 8}}
  %p0 = lina.all_reduce %s0 group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 2, offset = 0, original = 512>} : tensor<256xf32>
  return
}

// -----

lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @partition_disagree(%flat: tensor<512xf32>) {
  %s0 = tensor.extract_slice %flat[0] [256] [1] : tensor<512xf32> to tensor<256xf32>
  %p0 = lina.all_reduce %s0 group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 2, offset = 0, original = 512>} : tensor<256xf32>
  %s1 = tensor.extract_slice %flat[256] [256] [1] : tensor<512xf32> to tensor<256xf32>
  // expected-error @+1 {{disagrees with #lina.partition<index = 0, count = 2, offset = 0, original = 512> on the count or the original size}}
  %p1 = lina.all_reduce %s1 group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 1, count = 3, offset = 256, original = 512>} : tensor<256xf32>
  return
}

// -----

// Hand-written partitions of arguments (no slices) that cover the tensor
// are valid; so are two partitioned all_reduces over different groups.
lina.grid @g shape = [2, 2] groups = {dp = array<i64: 0>, ep = array<i64: 1>}
func.func @partition_args(%a: tensor<16xf32>, %b: tensor<16xf32>) {
  %0 = lina.all_reduce %a group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 2, offset = 0, original = 32>} : tensor<16xf32>
  %1 = lina.all_reduce %b group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 1, count = 2, offset = 16, original = 32>} : tensor<16xf32>
  %2 = lina.all_reduce %a group = #lina.group<@g, "ep"> reduction = max {partition = #lina.partition<index = 0, count = 2, offset = 0, original = 32>} : tensor<16xf32>
  %3 = lina.all_reduce %b group = #lina.group<@g, "ep"> reduction = max {partition = #lina.partition<index = 1, count = 2, offset = 16, original = 32>} : tensor<16xf32>
  return
}

// -----

func.func @placement_kind(%x: tensor<4x4xf32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{'lina.placement' must be a #lina.placement<...> table, got 7 : i64}}
  %ids, %gw = lina.gate %x, %w experts = 2 top_k = 1 capacity_factor = 1.0 {lina.placement = 7 : i64} : (tensor<4x4xf32>, tensor<4x2xf32>) -> (tensor<4x1xi32>, tensor<4x1xf32>)
  return
}

// -----

func.func @placement_experts(%x: tensor<4x4xf32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{'lina.placement' places 3 experts, but the gate has 2}}
  %ids, %gw = lina.gate %x, %w experts = 2 top_k = 1 capacity_factor = 1.0 {lina.placement = #lina.placement<num_devices = 3, slots_per_device = 1, offsets = [0, 1, 2, 3], devices = [0, 1, 2], shares = [1.0, 1.0, 1.0]>} : (tensor<4x4xf32>, tensor<4x2xf32>) -> (tensor<4x1xi32>, tensor<4x1xf32>)
  return
}

// -----

func.func @placement_on_dense(%x: tensor<8x4xf32>, %w: tensor<4x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{'lina.placement' is only valid on lina.gate, not on 'lina.dense'}}
  %0 = lina.dense %x, %w activation = none {lina.placement = #lina.placement<num_devices = 1, slots_per_device = 1, offsets = [0, 1], devices = [0], shares = [1.0]>} : (tensor<8x4xf32>, tensor<4x4xf32>) -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @hold_low_value(%x: tensor<8x4xf32>, %w: tensor<4x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{'lina.hold_low' must be a unit attribute (no value), got 3 : i64}}
  %0 = lina.dense %x, %w activation = none {lina.hold_low = 3} : (tensor<8x4xf32>, tensor<4x4xf32>) -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @bucket_on_wrong_op(%x: tensor<8x4xf32>, %w: tensor<4x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{'lina.bucket' is only valid on lina.all_reduce, not on 'lina.dense'}}
  %0 = lina.dense %x, %w activation = none {lina.bucket = 2 : i64} : (tensor<8x4xf32>, tensor<4x4xf32>) -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

lina.grid @bw shape = [2, 4] groups = {dp = array<i64: 0>, ep = array<i64: 1>}
func.func @bucket_count(%g: tensor<32xf32>) -> tensor<32xf32> {
  // expected-error @+1 {{'lina.bucket' must be a positive i64 (the number of gradients merged), got 0 : i64}}
  %0 = lina.all_reduce %g group = #lina.group<@bw, "dp"> reduction = sum {lina.bucket = 0 : i64} : tensor<32xf32>
  return %0 : tensor<32xf32>
}

// -----

func.func @unknown_attr(%x: tensor<8x4xf32>, %w: tensor<4x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{unknown attribute 'lina.hold_lo'; the lina dialect defines lina.placement (on lina.gate), lina.bucket (on lina.all_reduce), lina.hold_low and lina.suggested_experts_per_device on operations}}
  %0 = lina.dense %x, %w activation = none {lina.hold_lo} : (tensor<8x4xf32>, tensor<4x4xf32>) -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

// expected-error @+1 {{'lina.suggested_experts_per_device' must be an i64 in [1, 1048576], got 0 : i64}}
func.func @suggested(%x: tensor<8x4xf32>) attributes {lina.suggested_experts_per_device = 0 : i64} {
  return
}

// -----

// expected-error @+1 {{argument 0 has 'lina.name = ""'; expected a non-empty string}}
func.func @empty_name(%x: tensor<8x4xf32> {lina.name = ""}) {
  return
}

// -----

// expected-error @+1 {{argument 1 has unknown attribute 'lina.int'; the lina dialect defines lina.init and lina.name on function arguments}}
func.func @unknown_arg_attr(%x: tensor<8x4xf32>, %y: tensor<8x4xf32> {lina.int = "zero"}) {
  return
}

// -----

// expected-error @+1 {{'lina.init' is a function argument attribute, not an operation attribute}}
func.func @init_on_op(%x: tensor<8x4xf32>) attributes {lina.init = "zero"} {
  return
}

// -----

// Valid uses of every discardable attribute.
func.func @valid(%x: tensor<8x4xf32> {lina.init = "zero", lina.name = "x"}, %w: tensor<4x2xf32>, %wd: tensor<4x4xf32>) attributes {lina.suggested_experts_per_device = 2 : i64} {
  %ids, %gw = lina.gate %x, %w experts = 2 top_k = 1 capacity_factor = 1.0 {lina.placement = #lina.placement<num_devices = 2, slots_per_device = 1, offsets = [0, 1, 2], devices = [0, 1], shares = [1.0, 1.0]>} : (tensor<8x4xf32>, tensor<4x2xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>)
  %0 = lina.dense %x, %wd activation = none {lina.hold_low} : (tensor<8x4xf32>, tensor<4x4xf32>) -> tensor<8x4xf32>
  return
}
