// RUN: lina-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{grid shape must have at least one axis}}
lina.grid @g shape = [] groups = {ep = array<i64: 0>}

// -----

// expected-error @+1 {{grid axis 1 has size 0; sizes must be positive}}
lina.grid @g shape = [2, 0] groups = {ep = array<i64: 0>}

// -----

// expected-error @+1 {{grid axis 0 has size -4; sizes must be positive}}
lina.grid @g shape = [-4] groups = {ep = array<i64: 0>}

// -----

// expected-error @+1 {{grid must declare at least one group}}
lina.grid @g shape = [4] groups = {}

// -----

// expected-error @+1 {{group 'ep' must be an array<i64: ...> of grid axes}}
lina.grid @g shape = [4] groups = {ep = 0 : i64}

// -----

// expected-error @+1 {{group 'ep' spans no grid axis}}
lina.grid @g shape = [4] groups = {ep = array<i64>}

// -----

// expected-error @+1 {{group 'dp' names axis 2, but the grid has 2 axes}}
lina.grid @g shape = [2, 2] groups = {dp = array<i64: 2>}

// -----

// expected-error @+1 {{group 'dp' names axis -1, but the grid has 1 axes}}
lina.grid @g shape = [4] groups = {dp = array<i64: -1>}

// -----

// expected-error @+1 {{group 'dp' names axis 0 twice}}
lina.grid @g shape = [4] groups = {dp = array<i64: 0, 0>}

// -----

func.func @unknown_grid(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{refers to unknown grid @nowhere}}
  %0 = lina.all_reduce %x group = #lina.group<@nowhere, "dp"> reduction = sum : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @unknown_group(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{grid @g has no group named 'ep'}}
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 0 : tensor<8x4xf32> -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @split_axis_range(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{split_axis 2 is out of range for rank 2}}
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = 2 concat_axis = 0 : tensor<8x4xf32> -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @concat_axis_range(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{concat_axis 5 is out of range for rank 2}}
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 5 : tensor<8x4xf32> -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @negative_axis(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{attribute 'split_axis' failed to satisfy constraint: 64-bit signless integer attribute whose value is non-negative}}
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = -1 concat_axis = 0 : tensor<8x4xf32> -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @a2a_rank(%x: tensor<8x4xf32>) -> tensor<2x4x4xf32> {
  // expected-error @+1 {{result must have rank 2, got 'tensor<2x4x4xf32>'}}
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x4xf32> -> tensor<2x4x4xf32>
  return %0 : tensor<2x4x4xf32>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @a2a_element_type(%x: tensor<8x4xf32>) -> tensor<8x4xf16> {
  // expected-error @+1 {{result element type 'f16' must equal input element type 'f32'}}
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 0 : tensor<8x4xf32> -> tensor<8x4xf16>
  return %0 : tensor<8x4xf16>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @a2a_not_divisible(%x: tensor<6x4xf32>) -> tensor<6x4xf32> {
  // expected-error @+1 {{split_axis 0 has size 6, which does not divide by the group size 4}}
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 0 : tensor<6x4xf32> -> tensor<6x4xf32>
  return %0 : tensor<6x4xf32>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @a2a_result_shape(%x: tensor<8x4xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{result shape must be 'tensor<2x16xf32>' for a group of 4 ranks, got 'tensor<4x8xf32>'}}
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x4xf32> -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @a2a_other_dim(%x: tensor<8x4x3xf32>) -> tensor<2x16x5xf32> {
  // expected-error @+1 {{result dimension 2 (5) must equal the input's (3)}}
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 1 : tensor<8x4x3xf32> -> tensor<2x16x5xf32>
  return %0 : tensor<2x16x5xf32>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @a2a_dynamic(%x: tensor<?x4xf32>) -> tensor<?x4xf32> {
  // expected-error @+1 {{operand #0 must be statically shaped tensor}}
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 0 : tensor<?x4xf32> -> tensor<?x4xf32>
  return %0 : tensor<?x4xf32>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @a2a_v_axes(%x: tensor<8x4xf32>, %c: tensor<4xi64>) -> tensor<8x4xf32> {
  // expected-error @+1 {{with counts requires split_axis = 0 and concat_axis = 0, got 1 and 1}}
  %0 = lina.all_to_all %x counts(%c, %c : tensor<4xi64>, tensor<4xi64>) group = #lina.group<@g, "ep"> split_axis = 1 concat_axis = 1 : tensor<8x4xf32> -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @a2a_v_count_types(%x: tensor<8x4xf32>, %s: tensor<4xi64>, %r: tensor<2xi64>) -> tensor<8x4xf32> {
  // expected-error @+1 {{receive counts type 'tensor<2xi64>' must equal send counts type 'tensor<4xi64>'}}
  %0 = lina.all_to_all %x counts(%s, %r : tensor<4xi64>, tensor<2xi64>) group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 0 : tensor<8x4xf32> -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @a2a_v_group_size(%x: tensor<8x4xf32>, %c: tensor<2xi64>) -> tensor<8x4xf32> {
  // expected-error @+1 {{has 2 counts per direction, but group 'ep' has 4 ranks}}
  %0 = lina.all_to_all %x counts(%c, %c : tensor<2xi64>, tensor<2xi64>) group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 0 : tensor<8x4xf32> -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @a2a_v_row_width(%x: tensor<8x4xf32>, %c: tensor<4xi64>) -> tensor<16x2xf32> {
  // expected-error @+1 {{result dimension 1 (2) must equal the input's (4)}}
  %0 = lina.all_to_all %x counts(%c, %c : tensor<4xi64>, tensor<4xi64>) group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 0 : tensor<8x4xf32> -> tensor<16x2xf32>
  return %0 : tensor<16x2xf32>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @a2a_v_half_counts(%x: tensor<8x4xf32>, %c: tensor<4xi64>) -> tensor<8x4xf32> {
  // expected-error @+1 {{needs both send and receive counts, or neither}}
  %0 = "lina.all_to_all"(%x, %c) <{group = #lina.group<@g, "ep">, split_axis = 0 : i64, concat_axis = 0 : i64, operandSegmentSizes = array<i32: 1, 1, 0>}> : (tensor<8x4xf32>, tensor<4xi64>) -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @all_reduce_types(%x: tensor<8x4xf32>) -> tensor<8x4xf16> {
  // expected-error @+1 {{all of {input, result} have same type}}
  %0 = "lina.all_reduce"(%x) <{group = #lina.group<@g, "dp">, reduction = #lina<reduction sum>}> : (tensor<8x4xf32>) -> tensor<8x4xf16>
  return %0 : tensor<8x4xf16>
}

// -----

lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @partition_fit(%x: tensor<64xf32>) -> tensor<64xf32> {
  // expected-error @+1 {{partition of 64 elements at offset 200 does not fit in the original 256 elements}}
  %0 = lina.all_reduce %x group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 3, count = 4, offset = 200, original = 256>} : tensor<64xf32>
  return %0 : tensor<64xf32>
}

// -----

lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @partition_index(%x: tensor<64xf32>) -> tensor<64xf32> {
  // expected-error @+1 {{partition index 4 is out of range [0, 4)}}
  %0 = lina.all_reduce %x group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 4, count = 4, offset = 0, original = 256>} : tensor<64xf32>
  return %0 : tensor<64xf32>
}

// -----

lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @partition_count(%x: tensor<64xf32>) -> tensor<64xf32> {
  // expected-error @+1 {{partition count must be positive, got 0}}
  %0 = lina.all_reduce %x group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 0, offset = 0, original = 256>} : tensor<64xf32>
  return %0 : tensor<64xf32>
}

// -----

lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @partition_offset(%x: tensor<64xf32>) -> tensor<64xf32> {
  // expected-error @+1 {{partition offset -8 is out of range [0, 256)}}
  %0 = lina.all_reduce %x group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 4, offset = -8, original = 256>} : tensor<64xf32>
  return %0 : tensor<64xf32>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @chunk_index(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{chunk index 2 is out of range [0, 2)}}
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 0 {chunk = #lina.chunk<index = 2, count = 2>} : tensor<8x4xf32> -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @bad_priority(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+2 {{expected ::mlir::lina::Priority to be one of: normal, high, low}}
  // expected-error @+1 {{failed to parse Lina_PriorityAttr parameter 'value'}}
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 0 {priority = #lina.priority<urgent>} : tensor<8x4xf32> -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @dense_inner(%x: tensor<8x4xf32>, %w: tensor<5x6xf32>) -> tensor<8x6xf32> {
  // expected-error @+1 {{weight dimension 0 (5) must equal input dimension 1 (4)}}
  %0 = lina.dense %x, %w activation = relu : (tensor<8x4xf32>, tensor<5x6xf32>) -> tensor<8x6xf32>
  return %0 : tensor<8x6xf32>
}

// -----

func.func @dense_rank(%x: tensor<8x4x2xf32>, %w: tensor<4x6xf32>) -> tensor<8x6xf32> {
  // expected-error @+1 {{input must have rank 2, got 'tensor<8x4x2xf32>'}}
  %0 = lina.dense %x, %w activation = relu : (tensor<8x4x2xf32>, tensor<4x6xf32>) -> tensor<8x6xf32>
  return %0 : tensor<8x6xf32>
}

// -----

func.func @dense_result(%x: tensor<8x4xf32>, %w: tensor<4x6xf32>) -> tensor<8x7xf32> {
  // expected-error @+1 {{result dimension 1 (7) must equal weight dimension 1 (6)}}
  %0 = lina.dense %x, %w activation = none : (tensor<8x4xf32>, tensor<4x6xf32>) -> tensor<8x7xf32>
  return %0 : tensor<8x7xf32>
}

// -----

func.func @dense_dtype(%x: tensor<8x4xf32>, %w: tensor<4x6xbf16>) -> tensor<8x6xf32> {
  // expected-error @+1 {{weight element type 'bf16' must equal input element type 'f32'}}
  %0 = lina.dense %x, %w activation = none : (tensor<8x4xf32>, tensor<4x6xbf16>) -> tensor<8x6xf32>
  return %0 : tensor<8x6xf32>
}

// -----

func.func @dense_activation(%x: tensor<8x4xf32>, %w: tensor<4x6xf32>) -> tensor<8x6xf32> {
  // expected-error @+2 {{expected ::mlir::lina::Activation to be one of: none, relu, gelu, silu}}
  // expected-error @+1 {{failed to parse Lina_ActivationAttr parameter 'value'}}
  %0 = lina.dense %x, %w activation = tanh : (tensor<8x4xf32>, tensor<4x6xf32>) -> tensor<8x6xf32>
  return %0 : tensor<8x6xf32>
}

// -----

func.func @gate_topk(%x: tensor<8x4xf32>, %w: tensor<4x2xf32>) -> (tensor<8x3xi32>, tensor<8x3xf32>) {
  // expected-error @+1 {{top_k (3) must not exceed num_experts (2)}}
  %ids, %gw = lina.gate %x, %w experts = 2 top_k = 3 capacity_factor = 1.0 : (tensor<8x4xf32>, tensor<4x2xf32>) -> (tensor<8x3xi32>, tensor<8x3xf32>)
  return %ids, %gw : tensor<8x3xi32>, tensor<8x3xf32>
}

// -----

func.func @gate_zero_experts(%x: tensor<8x4xf32>, %w: tensor<4x2xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>) {
  // expected-error @+1 {{attribute 'num_experts' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %ids, %gw = lina.gate %x, %w experts = 0 top_k = 1 capacity_factor = 1.0 : (tensor<8x4xf32>, tensor<4x2xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>)
  return %ids, %gw : tensor<8x1xi32>, tensor<8x1xf32>
}

// -----

func.func @gate_negative_topk(%x: tensor<8x4xf32>, %w: tensor<4x2xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>) {
  // expected-error @+1 {{attribute 'top_k' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %ids, %gw = lina.gate %x, %w experts = 2 top_k = -1 capacity_factor = 1.0 : (tensor<8x4xf32>, tensor<4x2xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>)
  return %ids, %gw : tensor<8x1xi32>, tensor<8x1xf32>
}

// -----

func.func @gate_capacity_factor(%x: tensor<8x4xf32>, %w: tensor<4x2xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>) {
  // expected-error @+1 {{attribute 'capacity_factor' failed to satisfy constraint: 64-bit float attribute whose value is finite and positive}}
  %ids, %gw = lina.gate %x, %w experts = 2 top_k = 1 capacity_factor = 0.0 : (tensor<8x4xf32>, tensor<4x2xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>)
  return %ids, %gw : tensor<8x1xi32>, tensor<8x1xf32>
}

// -----

func.func @gate_experts_width(%x: tensor<8x4xf32>, %w: tensor<4x3xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>) {
  // expected-error @+1 {{weight dimension 1 (3) must equal num_experts (2)}}
  %ids, %gw = lina.gate %x, %w experts = 2 top_k = 1 capacity_factor = 1.0 : (tensor<8x4xf32>, tensor<4x3xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>)
  return %ids, %gw : tensor<8x1xi32>, tensor<8x1xf32>
}

// -----

func.func @gate_ids(%x: tensor<8x4xf32>, %w: tensor<4x2xf32>) -> (tensor<8x2xi32>, tensor<8x1xf32>) {
  // expected-error @+1 {{expert_ids dimension 1 (2) must equal top_k (1)}}
  %ids, %gw = lina.gate %x, %w experts = 2 top_k = 1 capacity_factor = 1.0 : (tensor<8x4xf32>, tensor<4x2xf32>) -> (tensor<8x2xi32>, tensor<8x1xf32>)
  return %ids, %gw : tensor<8x2xi32>, tensor<8x1xf32>
}

// -----

func.func @gate_weights(%x: tensor<8x4xf32>, %w: tensor<4x2xf32>) -> (tensor<8x1xi32>, tensor<7x1xf32>) {
  // expected-error @+1 {{gate_weights type 'tensor<7x1xf32>' must equal expected type 'tensor<8x1xf32>'}}
  %ids, %gw = lina.gate %x, %w experts = 2 top_k = 1 capacity_factor = 1.0 : (tensor<8x4xf32>, tensor<4x2xf32>) -> (tensor<8x1xi32>, tensor<7x1xf32>)
  return %ids, %gw : tensor<8x1xi32>, tensor<7x1xf32>
}

// -----

func.func @dispatch_hidden(%x: tensor<8x4xf32>, %ids: tensor<8x1xi32>) -> tensor<2x4x5xf32> {
  // expected-error @+1 {{input dimension 1 (4) must equal result dimension 2 (5)}}
  %0 = lina.dispatch %x, %ids : (tensor<8x4xf32>, tensor<8x1xi32>) -> tensor<2x4x5xf32>
  return %0 : tensor<2x4x5xf32>
}

// -----

func.func @dispatch_tokens(%x: tensor<8x4xf32>, %ids: tensor<6x1xi32>) -> tensor<2x4x4xf32> {
  // expected-error @+1 {{expert_ids dimension 0 (6) must equal input dimension 0 (8)}}
  %0 = lina.dispatch %x, %ids : (tensor<8x4xf32>, tensor<6x1xi32>) -> tensor<2x4x4xf32>
  return %0 : tensor<2x4x4xf32>
}

// -----

func.func @dispatch_rank(%x: tensor<8x4xf32>, %ids: tensor<8x1xi32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{result must have rank 3, got 'tensor<8x4xf32>'}}
  %0 = lina.dispatch %x, %ids : (tensor<8x4xf32>, tensor<8x1xi32>) -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @dispatch_ids_type(%x: tensor<8x4xf32>, %ids: tensor<8x1xf32>) -> tensor<2x4x4xf32> {
  // expected-error @+1 {{operand #1 must be statically shaped tensor of 32-bit signless integer or 64-bit signless integer values}}
  %0 = lina.dispatch %x, %ids : (tensor<8x4xf32>, tensor<8x1xf32>) -> tensor<2x4x4xf32>
  return %0 : tensor<2x4x4xf32>
}

// -----

func.func @combine_weights(%b: tensor<2x4x4xf32>, %ids: tensor<8x2xi32>, %gw: tensor<8x1xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{gate_weights dimension 1 (1) must equal expert_ids dimension 1 (2)}}
  %0 = lina.combine %b, %ids, %gw : (tensor<2x4x4xf32>, tensor<8x2xi32>, tensor<8x1xf32>) -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}

// -----

func.func @combine_hidden(%b: tensor<2x4x4xf32>, %ids: tensor<8x1xi32>, %gw: tensor<8x1xf32>) -> tensor<8x3xf32> {
  // expected-error @+1 {{result dimension 1 (3) must equal input dimension 2 (4)}}
  %0 = lina.combine %b, %ids, %gw : (tensor<2x4x4xf32>, tensor<8x1xi32>, tensor<8x1xf32>) -> tensor<8x3xf32>
  return %0 : tensor<8x3xf32>
}

// -----

func.func @ffn_experts(%r: tensor<2x8x4xf32>, %w1: tensor<3x4x16xf32>, %w2: tensor<2x16x4xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{w1 dimension 0 (3) must equal the number of local experts (2)}}
  %0 = lina.expert_ffn %r, %w1, %w2 activation = gelu : (tensor<2x8x4xf32>, tensor<3x4x16xf32>, tensor<2x16x4xf32>) -> tensor<2x8x4xf32>
  return %0 : tensor<2x8x4xf32>
}

// -----

func.func @ffn_inner(%r: tensor<2x8x4xf32>, %w1: tensor<2x4x16xf32>, %w2: tensor<2x12x4xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{w2 dimension 1 (12) must equal w1 dimension 2 (16)}}
  %0 = lina.expert_ffn %r, %w1, %w2 activation = gelu : (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x12x4xf32>) -> tensor<2x8x4xf32>
  return %0 : tensor<2x8x4xf32>
}

// -----

func.func @ffn_result(%r: tensor<2x8x4xf32>, %w1: tensor<2x4x16xf32>, %w2: tensor<2x16x4xf32>) -> tensor<2x4x4xf32> {
  // expected-error @+1 {{result type 'tensor<2x4x4xf32>' must equal input type 'tensor<2x8x4xf32>'}}
  %0 = lina.expert_ffn %r, %w1, %w2 activation = gelu : (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> tensor<2x4x4xf32>
  return %0 : tensor<2x4x4xf32>
}

// -----

func.func @dense_grad_shapes(%dy: tensor<8x5xf32>, %x: tensor<8x4xf32>, %w: tensor<4x6xf32>) -> (tensor<8x4xf32>, tensor<4x6xf32>) {
  // expected-error @+1 {{grad dimension 1 (5) must equal weight dimension 1 (6)}}
  %dx, %dw = lina.dense_grad %dy, %x, %w activation = relu : (tensor<8x5xf32>, tensor<8x4xf32>, tensor<4x6xf32>) -> (tensor<8x4xf32>, tensor<4x6xf32>)
  return %dx, %dw : tensor<8x4xf32>, tensor<4x6xf32>
}

// -----

func.func @dense_grad_result(%dy: tensor<8x6xf32>, %x: tensor<8x4xf32>, %w: tensor<4x6xf32>) -> (tensor<8x4xf32>, tensor<6x4xf32>) {
  // expected-error @+1 {{weight_grad type 'tensor<6x4xf32>' must equal weight type 'tensor<4x6xf32>'}}
  %dx, %dw = lina.dense_grad %dy, %x, %w activation = relu : (tensor<8x6xf32>, tensor<8x4xf32>, tensor<4x6xf32>) -> (tensor<8x4xf32>, tensor<6x4xf32>)
  return %dx, %dw : tensor<8x4xf32>, tensor<6x4xf32>
}

// -----

func.func @gate_grad_k(%dgw: tensor<8x3xf32>, %x: tensor<8x4xf32>, %w: tensor<4x2xf32>, %ids: tensor<8x3xi32>) -> (tensor<8x4xf32>, tensor<4x2xf32>) {
  // expected-error @+1 {{expert_ids dimension 1 (3) must not exceed the number of experts (2)}}
  %dx, %dw = lina.gate_grad %dgw, %x, %w, %ids : (tensor<8x3xf32>, tensor<8x4xf32>, tensor<4x2xf32>, tensor<8x3xi32>) -> (tensor<8x4xf32>, tensor<4x2xf32>)
  return %dx, %dw : tensor<8x4xf32>, tensor<4x2xf32>
}

// -----

func.func @gate_grad_grad(%dgw: tensor<8x2xf32>, %x: tensor<8x4xf32>, %w: tensor<4x2xf32>, %ids: tensor<8x1xi32>) -> (tensor<8x4xf32>, tensor<4x2xf32>) {
  // expected-error @+1 {{grad type 'tensor<8x2xf32>' must equal expected type 'tensor<8x1xf32>'}}
  %dx, %dw = lina.gate_grad %dgw, %x, %w, %ids : (tensor<8x2xf32>, tensor<8x4xf32>, tensor<4x2xf32>, tensor<8x1xi32>) -> (tensor<8x4xf32>, tensor<4x2xf32>)
  return %dx, %dw : tensor<8x4xf32>, tensor<4x2xf32>
}

// -----

func.func @dispatch_grad_tokens(%db: tensor<2x4x4xf32>, %ids: tensor<8x1xi32>) -> tensor<7x4xf32> {
  // expected-error @+1 {{expert_ids dimension 0 (8) must equal result dimension 0 (7)}}
  %0 = lina.dispatch_grad %db, %ids : (tensor<2x4x4xf32>, tensor<8x1xi32>) -> tensor<7x4xf32>
  return %0 : tensor<7x4xf32>
}

// -----

func.func @ffn_grad_grad(%dy: tensor<2x4x4xf32>, %r: tensor<2x8x4xf32>, %w1: tensor<2x4x16xf32>, %w2: tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) {
  // expected-error @+1 {{grad type 'tensor<2x4x4xf32>' must equal input type 'tensor<2x8x4xf32>'}}
  %a, %b, %c = lina.expert_ffn_grad %dy, %r, %w1, %w2 activation = gelu : (tensor<2x4x4xf32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>)
  return %a, %b, %c : tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>
}

// -----

func.func @ffn_grad_w2(%dy: tensor<2x8x4xf32>, %r: tensor<2x8x4xf32>, %w1: tensor<2x4x16xf32>, %w2: tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x4x16xf32>) {
  // expected-error @+1 {{w2_grad type 'tensor<2x4x16xf32>' must equal w2 type 'tensor<2x16x4xf32>'}}
  %a, %b, %c = lina.expert_ffn_grad %dy, %r, %w1, %w2 activation = gelu : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x4x16xf32>)
  return %a, %b, %c : tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x4x16xf32>
}

// -----

func.func @ffn_grad_input_act(%dy: tensor<2x8x4xf32>, %r: tensor<2x8x4xf32>, %w1: tensor<2x4x16xf32>, %w2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{act dimension 2 (8) must equal w1 dimension 2 (16)}}
  %a, %b, %c = lina.expert_ffn_grad_input %dy, %r, %w1, %w2 activation = gelu : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x8xf32>, tensor<2x8x16xf32>)
  return
}

// -----

func.func @ffn_grad_input_rows(%dy: tensor<2x8x4xf32>, %r: tensor<2x8x4xf32>, %w1: tensor<2x4x16xf32>, %w2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{pre_grad dimension 1 (4) must equal input dimension 1 (8)}}
  %a, %b, %c = lina.expert_ffn_grad_input %dy, %r, %w1, %w2 activation = gelu : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x16xf32>, tensor<2x4x16xf32>)
  return
}

// -----

func.func @ffn_grad_input_dtype(%dy: tensor<2x8x4xf32>, %r: tensor<2x8x4xf32>, %w1: tensor<2x4x16xf32>, %w2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{act element type 'bf16' must equal input element type 'f32'}}
  %a, %b, %c = lina.expert_ffn_grad_input %dy, %r, %w1, %w2 activation = gelu : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x16xbf16>, tensor<2x8x16xf32>)
  return
}

// -----

func.func @ffn_grad_weight_experts(%dy: tensor<2x8x4xf32>, %r: tensor<2x8x4xf32>, %act: tensor<3x8x16xf32>, %dz: tensor<3x8x16xf32>) {
  // expected-error @+1 {{act dimension 0 (3) must equal the number of local experts (2)}}
  %a, %b = lina.expert_ffn_grad_weight %dy, %r, %act, %dz : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<3x8x16xf32>, tensor<3x8x16xf32>) -> (tensor<2x4x16xf32>, tensor<2x16x4xf32>)
  return
}

// -----

func.func @ffn_grad_weight_w1(%dy: tensor<2x8x4xf32>, %r: tensor<2x8x4xf32>, %act: tensor<2x8x16xf32>, %dz: tensor<2x8x16xf32>) {
  // expected-error @+1 {{w1_grad type 'tensor<2x16x4xf32>' must equal [experts, input dimension 2, act dimension 2] type 'tensor<2x4x16xf32>'}}
  %a, %b = lina.expert_ffn_grad_weight %dy, %r, %act, %dz : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> (tensor<2x16x4xf32>, tensor<2x16x4xf32>)
  return
}

// -----

func.func @weight_grad_experts(%x: tensor<2x8x4xf32>, %dy: tensor<3x8x16xf32>) {
  // expected-error @+1 {{grad dimension 0 (3) must equal the number of local experts (2)}}
  %g = lina.expert_weight_grad %x, %dy : (tensor<2x8x4xf32>, tensor<3x8x16xf32>) -> tensor<2x4x16xf32>
  return
}

// -----

func.func @weight_grad_rows(%x: tensor<2x8x4xf32>, %dy: tensor<2x6x16xf32>) {
  // expected-error @+1 {{grad dimension 1 (6) must equal input dimension 1 (8)}}
  %g = lina.expert_weight_grad %x, %dy : (tensor<2x8x4xf32>, tensor<2x6x16xf32>) -> tensor<2x4x16xf32>
  return
}

// -----

func.func @weight_grad_dtype(%x: tensor<2x8x4xf32>, %dy: tensor<2x8x16xbf16>) {
  // expected-error @+1 {{grad}}
  %g = lina.expert_weight_grad %x, %dy : (tensor<2x8x4xf32>, tensor<2x8x16xbf16>) -> tensor<2x4x16xf32>
  return
}

// -----

func.func @weight_grad_result(%x: tensor<2x8x4xf32>, %dy: tensor<2x8x16xf32>) {
  // expected-error @+1 {{result type 'tensor<2x16x4xf32>' must equal [experts, input dimension 2, grad dimension 2] type 'tensor<2x4x16xf32>'}}
  %g = lina.expert_weight_grad %x, %dy : (tensor<2x8x4xf32>, tensor<2x8x16xf32>) -> tensor<2x16x4xf32>
  return
}

// -----

func.func @weight_grad_priority(%x: tensor<2x8x4xf32>, %dy: tensor<2x8x16xf32>) {
  // expected-error @+1 {{a #lina.priority is only valid on lina.all_to_all and lina.all_reduce}}
  %g = lina.expert_weight_grad %x, %dy {priority = #lina.priority<low>} : (tensor<2x8x4xf32>, tensor<2x8x16xf32>) -> tensor<2x4x16xf32>
  return
}

// -----

func.func @combine_grad_buf(%dy: tensor<8x4xf32>, %b: tensor<2x4x4xf32>, %ids: tensor<8x1xi32>, %gw: tensor<8x1xf32>) -> (tensor<2x2x4xf32>, tensor<8x1xf32>) {
  // expected-error @+1 {{input_grad type 'tensor<2x2x4xf32>' must equal input type 'tensor<2x4x4xf32>'}}
  %db, %dgw = lina.combine_grad %dy, %b, %ids, %gw : (tensor<8x4xf32>, tensor<2x4x4xf32>, tensor<8x1xi32>, tensor<8x1xf32>) -> (tensor<2x2x4xf32>, tensor<8x1xf32>)
  return %db, %dgw : tensor<2x2x4xf32>, tensor<8x1xf32>
}

// -----

func.func @combine_grad_tokens(%dy: tensor<6x4xf32>, %b: tensor<2x4x4xf32>, %ids: tensor<8x1xi32>, %gw: tensor<8x1xf32>) -> (tensor<2x4x4xf32>, tensor<8x1xf32>) {
  // expected-error @+1 {{expert_ids dimension 0 (8) must equal grad dimension 0 (6)}}
  %db, %dgw = lina.combine_grad %dy, %b, %ids, %gw : (tensor<6x4xf32>, tensor<2x4x4xf32>, tensor<8x1xi32>, tensor<8x1xf32>) -> (tensor<2x4x4xf32>, tensor<8x1xf32>)
  return %db, %dgw : tensor<2x4x4xf32>, tensor<8x1xf32>
}
