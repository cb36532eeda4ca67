// RUN: lina-opt %s -split-input-file -verify-diagnostics

// Every operand and result of every compute op, in turn, given a rank-0
// tensor: each verifier checks ranks before it reads a dimension, so each
// case is an error naming the operand, never a crash.

func.func @dense_0(%a0: tensor<f32>, %a1: tensor<4x4xf32>) {
  // expected-error @+1 {{input must have rank 2, got 'tensor<f32>'}}
  %r0 = lina.dense %a0, %a1 activation = none : (tensor<f32>, tensor<4x4xf32>) -> (tensor<8x4xf32>)
  return
}
// -----
func.func @dense_1(%a0: tensor<8x4xf32>, %a1: tensor<f32>) {
  // expected-error @+1 {{weight must have rank 2, got 'tensor<f32>'}}
  %r0 = lina.dense %a0, %a1 activation = none : (tensor<8x4xf32>, tensor<f32>) -> (tensor<8x4xf32>)
  return
}
// -----
func.func @dense_2(%a0: tensor<8x4xf32>, %a1: tensor<4x4xf32>) {
  // expected-error @+1 {{result must have rank 2, got 'tensor<f32>'}}
  %r0 = lina.dense %a0, %a1 activation = none : (tensor<8x4xf32>, tensor<4x4xf32>) -> (tensor<f32>)
  return
}
// -----
func.func @gate_0(%a0: tensor<f32>, %a1: tensor<4x4xf32>) {
  // expected-error @+1 {{input must have rank 2, got 'tensor<f32>'}}
  %r0, %r1 = lina.gate %a0, %a1 experts = 4 top_k = 1 capacity_factor = 1.0 : (tensor<f32>, tensor<4x4xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>)
  return
}
// -----
func.func @gate_1(%a0: tensor<8x4xf32>, %a1: tensor<f32>) {
  // expected-error @+1 {{weight must have rank 2, got 'tensor<f32>'}}
  %r0, %r1 = lina.gate %a0, %a1 experts = 4 top_k = 1 capacity_factor = 1.0 : (tensor<8x4xf32>, tensor<f32>) -> (tensor<8x1xi32>, tensor<8x1xf32>)
  return
}
// -----
func.func @gate_2(%a0: tensor<8x4xf32>, %a1: tensor<4x4xf32>) {
  // expected-error @+1 {{expert_ids must have rank 2, got 'tensor<i32>'}}
  %r0, %r1 = lina.gate %a0, %a1 experts = 4 top_k = 1 capacity_factor = 1.0 : (tensor<8x4xf32>, tensor<4x4xf32>) -> (tensor<i32>, tensor<8x1xf32>)
  return
}
// -----
func.func @gate_3(%a0: tensor<8x4xf32>, %a1: tensor<4x4xf32>) {
  // expected-error @+1 {{gate_weights type 'tensor<f32>' must equal expected type 'tensor<8x1xf32>'}}
  %r0, %r1 = lina.gate %a0, %a1 experts = 4 top_k = 1 capacity_factor = 1.0 : (tensor<8x4xf32>, tensor<4x4xf32>) -> (tensor<8x1xi32>, tensor<f32>)
  return
}
// -----
func.func @dispatch_0(%a0: tensor<f32>, %a1: tensor<8x1xi32>) {
  // expected-error @+1 {{input must have rank 2, got 'tensor<f32>'}}
  %r0 = lina.dispatch %a0, %a1 : (tensor<f32>, tensor<8x1xi32>) -> (tensor<4x2x4xf32>)
  return
}
// -----
func.func @dispatch_1(%a0: tensor<8x4xf32>, %a1: tensor<i32>) {
  // expected-error @+1 {{expert_ids must have rank 2, got 'tensor<i32>'}}
  %r0 = lina.dispatch %a0, %a1 : (tensor<8x4xf32>, tensor<i32>) -> (tensor<4x2x4xf32>)
  return
}
// -----
func.func @dispatch_2(%a0: tensor<8x4xf32>, %a1: tensor<8x1xi32>) {
  // expected-error @+1 {{result must have rank 3, got 'tensor<f32>'}}
  %r0 = lina.dispatch %a0, %a1 : (tensor<8x4xf32>, tensor<8x1xi32>) -> (tensor<f32>)
  return
}
// -----
func.func @combine_0(%a0: tensor<f32>, %a1: tensor<8x1xi32>, %a2: tensor<8x1xf32>) {
  // expected-error @+1 {{input must have rank 3, got 'tensor<f32>'}}
  %r0 = lina.combine %a0, %a1, %a2 : (tensor<f32>, tensor<8x1xi32>, tensor<8x1xf32>) -> (tensor<8x4xf32>)
  return
}
// -----
func.func @combine_1(%a0: tensor<4x2x4xf32>, %a1: tensor<i32>, %a2: tensor<8x1xf32>) {
  // expected-error @+1 {{expert_ids must have rank 2, got 'tensor<i32>'}}
  %r0 = lina.combine %a0, %a1, %a2 : (tensor<4x2x4xf32>, tensor<i32>, tensor<8x1xf32>) -> (tensor<8x4xf32>)
  return
}
// -----
func.func @combine_2(%a0: tensor<4x2x4xf32>, %a1: tensor<8x1xi32>, %a2: tensor<f32>) {
  // expected-error @+1 {{gate_weights must have rank 2, got 'tensor<f32>'}}
  %r0 = lina.combine %a0, %a1, %a2 : (tensor<4x2x4xf32>, tensor<8x1xi32>, tensor<f32>) -> (tensor<8x4xf32>)
  return
}
// -----
func.func @combine_3(%a0: tensor<4x2x4xf32>, %a1: tensor<8x1xi32>, %a2: tensor<8x1xf32>) {
  // expected-error @+1 {{result must have rank 2, got 'tensor<f32>'}}
  %r0 = lina.combine %a0, %a1, %a2 : (tensor<4x2x4xf32>, tensor<8x1xi32>, tensor<8x1xf32>) -> (tensor<f32>)
  return
}
// -----
func.func @expert_ffn_0(%a0: tensor<f32>, %a1: tensor<2x4x16xf32>, %a2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{input must have rank 3, got 'tensor<f32>'}}
  %r0 = lina.expert_ffn %a0, %a1, %a2 activation = gelu : (tensor<f32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>)
  return
}
// -----
func.func @expert_ffn_1(%a0: tensor<2x8x4xf32>, %a1: tensor<f32>, %a2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{w1 must have rank 3, got 'tensor<f32>'}}
  %r0 = lina.expert_ffn %a0, %a1, %a2 activation = gelu : (tensor<2x8x4xf32>, tensor<f32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>)
  return
}
// -----
func.func @expert_ffn_2(%a0: tensor<2x8x4xf32>, %a1: tensor<2x4x16xf32>, %a2: tensor<f32>) {
  // expected-error @+1 {{w2 must have rank 3, got 'tensor<f32>'}}
  %r0 = lina.expert_ffn %a0, %a1, %a2 activation = gelu : (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<f32>) -> (tensor<2x8x4xf32>)
  return
}
// -----
func.func @expert_ffn_3(%a0: tensor<2x8x4xf32>, %a1: tensor<2x4x16xf32>, %a2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{result type 'tensor<f32>' must equal input type 'tensor<2x8x4xf32>'}}
  %r0 = lina.expert_ffn %a0, %a1, %a2 activation = gelu : (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<f32>)
  return
}
// -----
func.func @dense_grad_0(%a0: tensor<f32>, %a1: tensor<8x4xf32>, %a2: tensor<4x4xf32>) {
  // expected-error @+1 {{grad must have rank 2, got 'tensor<f32>'}}
  %r0, %r1 = lina.dense_grad %a0, %a1, %a2 activation = none : (tensor<f32>, tensor<8x4xf32>, tensor<4x4xf32>) -> (tensor<8x4xf32>, tensor<4x4xf32>)
  return
}
// -----
func.func @dense_grad_1(%a0: tensor<8x4xf32>, %a1: tensor<f32>, %a2: tensor<4x4xf32>) {
  // expected-error @+1 {{input must have rank 2, got 'tensor<f32>'}}
  %r0, %r1 = lina.dense_grad %a0, %a1, %a2 activation = none : (tensor<8x4xf32>, tensor<f32>, tensor<4x4xf32>) -> (tensor<8x4xf32>, tensor<4x4xf32>)
  return
}
// -----
func.func @dense_grad_2(%a0: tensor<8x4xf32>, %a1: tensor<8x4xf32>, %a2: tensor<f32>) {
  // expected-error @+1 {{weight must have rank 2, got 'tensor<f32>'}}
  %r0, %r1 = lina.dense_grad %a0, %a1, %a2 activation = none : (tensor<8x4xf32>, tensor<8x4xf32>, tensor<f32>) -> (tensor<8x4xf32>, tensor<4x4xf32>)
  return
}
// -----
func.func @dense_grad_3(%a0: tensor<8x4xf32>, %a1: tensor<8x4xf32>, %a2: tensor<4x4xf32>) {
  // expected-error @+1 {{input_grad type 'tensor<f32>' must equal input type 'tensor<8x4xf32>'}}
  %r0, %r1 = lina.dense_grad %a0, %a1, %a2 activation = none : (tensor<8x4xf32>, tensor<8x4xf32>, tensor<4x4xf32>) -> (tensor<f32>, tensor<4x4xf32>)
  return
}
// -----
func.func @dense_grad_4(%a0: tensor<8x4xf32>, %a1: tensor<8x4xf32>, %a2: tensor<4x4xf32>) {
  // expected-error @+1 {{weight_grad type 'tensor<f32>' must equal weight type 'tensor<4x4xf32>'}}
  %r0, %r1 = lina.dense_grad %a0, %a1, %a2 activation = none : (tensor<8x4xf32>, tensor<8x4xf32>, tensor<4x4xf32>) -> (tensor<8x4xf32>, tensor<f32>)
  return
}
// -----
func.func @gate_grad_0(%a0: tensor<f32>, %a1: tensor<8x4xf32>, %a2: tensor<4x4xf32>, %a3: tensor<8x1xi32>) {
  // expected-error @+1 {{grad type 'tensor<f32>' must equal expected type 'tensor<8x1xf32>'}}
  %r0, %r1 = lina.gate_grad %a0, %a1, %a2, %a3 : (tensor<f32>, tensor<8x4xf32>, tensor<4x4xf32>, tensor<8x1xi32>) -> (tensor<8x4xf32>, tensor<4x4xf32>)
  return
}
// -----
func.func @gate_grad_1(%a0: tensor<8x1xf32>, %a1: tensor<f32>, %a2: tensor<4x4xf32>, %a3: tensor<8x1xi32>) {
  // expected-error @+1 {{input must have rank 2, got 'tensor<f32>'}}
  %r0, %r1 = lina.gate_grad %a0, %a1, %a2, %a3 : (tensor<8x1xf32>, tensor<f32>, tensor<4x4xf32>, tensor<8x1xi32>) -> (tensor<8x4xf32>, tensor<4x4xf32>)
  return
}
// -----
func.func @gate_grad_2(%a0: tensor<8x1xf32>, %a1: tensor<8x4xf32>, %a2: tensor<f32>, %a3: tensor<8x1xi32>) {
  // expected-error @+1 {{weight must have rank 2, got 'tensor<f32>'}}
  %r0, %r1 = lina.gate_grad %a0, %a1, %a2, %a3 : (tensor<8x1xf32>, tensor<8x4xf32>, tensor<f32>, tensor<8x1xi32>) -> (tensor<8x4xf32>, tensor<4x4xf32>)
  return
}
// -----
func.func @gate_grad_3(%a0: tensor<8x1xf32>, %a1: tensor<8x4xf32>, %a2: tensor<4x4xf32>, %a3: tensor<i32>) {
  // expected-error @+1 {{expert_ids must have rank 2, got 'tensor<i32>'}}
  %r0, %r1 = lina.gate_grad %a0, %a1, %a2, %a3 : (tensor<8x1xf32>, tensor<8x4xf32>, tensor<4x4xf32>, tensor<i32>) -> (tensor<8x4xf32>, tensor<4x4xf32>)
  return
}
// -----
func.func @gate_grad_4(%a0: tensor<8x1xf32>, %a1: tensor<8x4xf32>, %a2: tensor<4x4xf32>, %a3: tensor<8x1xi32>) {
  // expected-error @+1 {{input_grad type 'tensor<f32>' must equal input type 'tensor<8x4xf32>'}}
  %r0, %r1 = lina.gate_grad %a0, %a1, %a2, %a3 : (tensor<8x1xf32>, tensor<8x4xf32>, tensor<4x4xf32>, tensor<8x1xi32>) -> (tensor<f32>, tensor<4x4xf32>)
  return
}
// -----
func.func @gate_grad_5(%a0: tensor<8x1xf32>, %a1: tensor<8x4xf32>, %a2: tensor<4x4xf32>, %a3: tensor<8x1xi32>) {
  // expected-error @+1 {{weight_grad type 'tensor<f32>' must equal weight type 'tensor<4x4xf32>'}}
  %r0, %r1 = lina.gate_grad %a0, %a1, %a2, %a3 : (tensor<8x1xf32>, tensor<8x4xf32>, tensor<4x4xf32>, tensor<8x1xi32>) -> (tensor<8x4xf32>, tensor<f32>)
  return
}
// -----
func.func @dispatch_grad_0(%a0: tensor<f32>, %a1: tensor<8x1xi32>) {
  // expected-error @+1 {{grad must have rank 3, got 'tensor<f32>'}}
  %r0 = lina.dispatch_grad %a0, %a1 : (tensor<f32>, tensor<8x1xi32>) -> (tensor<8x4xf32>)
  return
}
// -----
func.func @dispatch_grad_1(%a0: tensor<4x2x4xf32>, %a1: tensor<i32>) {
  // expected-error @+1 {{expert_ids must have rank 2, got 'tensor<i32>'}}
  %r0 = lina.dispatch_grad %a0, %a1 : (tensor<4x2x4xf32>, tensor<i32>) -> (tensor<8x4xf32>)
  return
}
// -----
func.func @dispatch_grad_2(%a0: tensor<4x2x4xf32>, %a1: tensor<8x1xi32>) {
  // expected-error @+1 {{result must have rank 2, got 'tensor<f32>'}}
  %r0 = lina.dispatch_grad %a0, %a1 : (tensor<4x2x4xf32>, tensor<8x1xi32>) -> (tensor<f32>)
  return
}
// -----
func.func @expert_ffn_grad_0(%a0: tensor<f32>, %a1: tensor<2x8x4xf32>, %a2: tensor<2x4x16xf32>, %a3: tensor<2x16x4xf32>) {
  // expected-error @+1 {{grad type 'tensor<f32>' must equal input type 'tensor<2x8x4xf32>'}}
  %r0, %r1, %r2 = lina.expert_ffn_grad %a0, %a1, %a2, %a3 activation = gelu : (tensor<f32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>)
  return
}
// -----
func.func @expert_ffn_grad_1(%a0: tensor<2x8x4xf32>, %a1: tensor<f32>, %a2: tensor<2x4x16xf32>, %a3: tensor<2x16x4xf32>) {
  // expected-error @+1 {{input must have rank 3, got 'tensor<f32>'}}
  %r0, %r1, %r2 = lina.expert_ffn_grad %a0, %a1, %a2, %a3 activation = gelu : (tensor<2x8x4xf32>, tensor<f32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>)
  return
}
// -----
func.func @expert_ffn_grad_2(%a0: tensor<2x8x4xf32>, %a1: tensor<2x8x4xf32>, %a2: tensor<f32>, %a3: tensor<2x16x4xf32>) {
  // expected-error @+1 {{w1 must have rank 3, got 'tensor<f32>'}}
  %r0, %r1, %r2 = lina.expert_ffn_grad %a0, %a1, %a2, %a3 activation = gelu : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<f32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>)
  return
}
// -----
func.func @expert_ffn_grad_3(%a0: tensor<2x8x4xf32>, %a1: tensor<2x8x4xf32>, %a2: tensor<2x4x16xf32>, %a3: tensor<f32>) {
  // expected-error @+1 {{w2 must have rank 3, got 'tensor<f32>'}}
  %r0, %r1, %r2 = lina.expert_ffn_grad %a0, %a1, %a2, %a3 activation = gelu : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<f32>) -> (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>)
  return
}
// -----
func.func @expert_ffn_grad_4(%a0: tensor<2x8x4xf32>, %a1: tensor<2x8x4xf32>, %a2: tensor<2x4x16xf32>, %a3: tensor<2x16x4xf32>) {
  // expected-error @+1 {{input_grad type 'tensor<f32>' must equal input type 'tensor<2x8x4xf32>'}}
  %r0, %r1, %r2 = lina.expert_ffn_grad %a0, %a1, %a2, %a3 activation = gelu : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<f32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>)
  return
}
// -----
func.func @expert_ffn_grad_5(%a0: tensor<2x8x4xf32>, %a1: tensor<2x8x4xf32>, %a2: tensor<2x4x16xf32>, %a3: tensor<2x16x4xf32>) {
  // expected-error @+1 {{w1_grad type 'tensor<f32>' must equal w1 type 'tensor<2x4x16xf32>'}}
  %r0, %r1, %r2 = lina.expert_ffn_grad %a0, %a1, %a2, %a3 activation = gelu : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<f32>, tensor<2x16x4xf32>)
  return
}
// -----
func.func @expert_ffn_grad_6(%a0: tensor<2x8x4xf32>, %a1: tensor<2x8x4xf32>, %a2: tensor<2x4x16xf32>, %a3: tensor<2x16x4xf32>) {
  // expected-error @+1 {{w2_grad type 'tensor<f32>' must equal w2 type 'tensor<2x16x4xf32>'}}
  %r0, %r1, %r2 = lina.expert_ffn_grad %a0, %a1, %a2, %a3 activation = gelu : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<f32>)
  return
}
// -----
func.func @expert_ffn_grad_input_0(%a0: tensor<f32>, %a1: tensor<2x8x4xf32>, %a2: tensor<2x4x16xf32>, %a3: tensor<2x16x4xf32>) {
  // expected-error @+1 {{grad type 'tensor<f32>' must equal input type 'tensor<2x8x4xf32>'}}
  %r0, %r1, %r2 = lina.expert_ffn_grad_input %a0, %a1, %a2, %a3 activation = gelu : (tensor<f32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>)
  return
}
// -----
func.func @expert_ffn_grad_input_1(%a0: tensor<2x8x4xf32>, %a1: tensor<f32>, %a2: tensor<2x4x16xf32>, %a3: tensor<2x16x4xf32>) {
  // expected-error @+1 {{input must have rank 3, got 'tensor<f32>'}}
  %r0, %r1, %r2 = lina.expert_ffn_grad_input %a0, %a1, %a2, %a3 activation = gelu : (tensor<2x8x4xf32>, tensor<f32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>)
  return
}
// -----
func.func @expert_ffn_grad_input_2(%a0: tensor<2x8x4xf32>, %a1: tensor<2x8x4xf32>, %a2: tensor<f32>, %a3: tensor<2x16x4xf32>) {
  // expected-error @+1 {{w1 must have rank 3, got 'tensor<f32>'}}
  %r0, %r1, %r2 = lina.expert_ffn_grad_input %a0, %a1, %a2, %a3 activation = gelu : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<f32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>)
  return
}
// -----
func.func @expert_ffn_grad_input_3(%a0: tensor<2x8x4xf32>, %a1: tensor<2x8x4xf32>, %a2: tensor<2x4x16xf32>, %a3: tensor<f32>) {
  // expected-error @+1 {{w2 must have rank 3, got 'tensor<f32>'}}
  %r0, %r1, %r2 = lina.expert_ffn_grad_input %a0, %a1, %a2, %a3 activation = gelu : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<f32>) -> (tensor<2x8x4xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>)
  return
}
// -----
func.func @expert_ffn_grad_input_4(%a0: tensor<2x8x4xf32>, %a1: tensor<2x8x4xf32>, %a2: tensor<2x4x16xf32>, %a3: tensor<2x16x4xf32>) {
  // expected-error @+1 {{input_grad type 'tensor<f32>' must equal input type 'tensor<2x8x4xf32>'}}
  %r0, %r1, %r2 = lina.expert_ffn_grad_input %a0, %a1, %a2, %a3 activation = gelu : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<f32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>)
  return
}
// -----
func.func @expert_ffn_grad_input_5(%a0: tensor<2x8x4xf32>, %a1: tensor<2x8x4xf32>, %a2: tensor<2x4x16xf32>, %a3: tensor<2x16x4xf32>) {
  // expected-error @+1 {{act must have rank 3, got 'tensor<f32>'}}
  %r0, %r1, %r2 = lina.expert_ffn_grad_input %a0, %a1, %a2, %a3 activation = gelu : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<f32>, tensor<2x8x16xf32>)
  return
}
// -----
func.func @expert_ffn_grad_input_6(%a0: tensor<2x8x4xf32>, %a1: tensor<2x8x4xf32>, %a2: tensor<2x4x16xf32>, %a3: tensor<2x16x4xf32>) {
  // expected-error @+1 {{pre_grad must have rank 3, got 'tensor<f32>'}}
  %r0, %r1, %r2 = lina.expert_ffn_grad_input %a0, %a1, %a2, %a3 activation = gelu : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x16xf32>, tensor<f32>)
  return
}
// -----
func.func @expert_ffn_grad_weight_0(%a0: tensor<f32>, %a1: tensor<2x8x4xf32>, %a2: tensor<2x8x16xf32>, %a3: tensor<2x8x16xf32>) {
  // expected-error @+1 {{grad type 'tensor<f32>' must equal input type 'tensor<2x8x4xf32>'}}
  %r0, %r1 = lina.expert_ffn_grad_weight %a0, %a1, %a2, %a3 : (tensor<f32>, tensor<2x8x4xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> (tensor<2x4x16xf32>, tensor<2x16x4xf32>)
  return
}
// -----
func.func @expert_ffn_grad_weight_1(%a0: tensor<2x8x4xf32>, %a1: tensor<f32>, %a2: tensor<2x8x16xf32>, %a3: tensor<2x8x16xf32>) {
  // expected-error @+1 {{input must have rank 3, got 'tensor<f32>'}}
  %r0, %r1 = lina.expert_ffn_grad_weight %a0, %a1, %a2, %a3 : (tensor<2x8x4xf32>, tensor<f32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> (tensor<2x4x16xf32>, tensor<2x16x4xf32>)
  return
}
// -----
func.func @expert_ffn_grad_weight_2(%a0: tensor<2x8x4xf32>, %a1: tensor<2x8x4xf32>, %a2: tensor<f32>, %a3: tensor<2x8x16xf32>) {
  // expected-error @+1 {{act must have rank 3, got 'tensor<f32>'}}
  %r0, %r1 = lina.expert_ffn_grad_weight %a0, %a1, %a2, %a3 : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<f32>, tensor<2x8x16xf32>) -> (tensor<2x4x16xf32>, tensor<2x16x4xf32>)
  return
}
// -----
func.func @expert_ffn_grad_weight_3(%a0: tensor<2x8x4xf32>, %a1: tensor<2x8x4xf32>, %a2: tensor<2x8x16xf32>, %a3: tensor<f32>) {
  // expected-error @+1 {{pre_grad type 'tensor<f32>' must equal act type 'tensor<2x8x16xf32>'}}
  %r0, %r1 = lina.expert_ffn_grad_weight %a0, %a1, %a2, %a3 : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x16xf32>, tensor<f32>) -> (tensor<2x4x16xf32>, tensor<2x16x4xf32>)
  return
}
// -----
func.func @expert_ffn_grad_weight_4(%a0: tensor<2x8x4xf32>, %a1: tensor<2x8x4xf32>, %a2: tensor<2x8x16xf32>, %a3: tensor<2x8x16xf32>) {
  // expected-error @+1 {{w1_grad type 'tensor<f32>' must equal [experts, input dimension 2, act dimension 2] type 'tensor<2x4x16xf32>'}}
  %r0, %r1 = lina.expert_ffn_grad_weight %a0, %a1, %a2, %a3 : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> (tensor<f32>, tensor<2x16x4xf32>)
  return
}
// -----
func.func @expert_ffn_grad_weight_5(%a0: tensor<2x8x4xf32>, %a1: tensor<2x8x4xf32>, %a2: tensor<2x8x16xf32>, %a3: tensor<2x8x16xf32>) {
  // expected-error @+1 {{w2_grad type 'tensor<f32>' must equal [experts, act dimension 2, input dimension 2] type 'tensor<2x16x4xf32>'}}
  %r0, %r1 = lina.expert_ffn_grad_weight %a0, %a1, %a2, %a3 : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> (tensor<2x4x16xf32>, tensor<f32>)
  return
}
// -----
func.func @combine_grad_0(%a0: tensor<f32>, %a1: tensor<4x2x4xf32>, %a2: tensor<8x1xi32>, %a3: tensor<8x1xf32>) {
  // expected-error @+1 {{grad must have rank 2, got 'tensor<f32>'}}
  %r0, %r1 = lina.combine_grad %a0, %a1, %a2, %a3 : (tensor<f32>, tensor<4x2x4xf32>, tensor<8x1xi32>, tensor<8x1xf32>) -> (tensor<4x2x4xf32>, tensor<8x1xf32>)
  return
}
// -----
func.func @combine_grad_1(%a0: tensor<8x4xf32>, %a1: tensor<f32>, %a2: tensor<8x1xi32>, %a3: tensor<8x1xf32>) {
  // expected-error @+1 {{input must have rank 3, got 'tensor<f32>'}}
  %r0, %r1 = lina.combine_grad %a0, %a1, %a2, %a3 : (tensor<8x4xf32>, tensor<f32>, tensor<8x1xi32>, tensor<8x1xf32>) -> (tensor<4x2x4xf32>, tensor<8x1xf32>)
  return
}
// -----
func.func @combine_grad_2(%a0: tensor<8x4xf32>, %a1: tensor<4x2x4xf32>, %a2: tensor<i32>, %a3: tensor<8x1xf32>) {
  // expected-error @+1 {{expert_ids must have rank 2, got 'tensor<i32>'}}
  %r0, %r1 = lina.combine_grad %a0, %a1, %a2, %a3 : (tensor<8x4xf32>, tensor<4x2x4xf32>, tensor<i32>, tensor<8x1xf32>) -> (tensor<4x2x4xf32>, tensor<8x1xf32>)
  return
}
// -----
func.func @combine_grad_3(%a0: tensor<8x4xf32>, %a1: tensor<4x2x4xf32>, %a2: tensor<8x1xi32>, %a3: tensor<f32>) {
  // expected-error @+1 {{gate_weights must have rank 2, got 'tensor<f32>'}}
  %r0, %r1 = lina.combine_grad %a0, %a1, %a2, %a3 : (tensor<8x4xf32>, tensor<4x2x4xf32>, tensor<8x1xi32>, tensor<f32>) -> (tensor<4x2x4xf32>, tensor<8x1xf32>)
  return
}
// -----
func.func @combine_grad_4(%a0: tensor<8x4xf32>, %a1: tensor<4x2x4xf32>, %a2: tensor<8x1xi32>, %a3: tensor<8x1xf32>) {
  // expected-error @+1 {{input_grad type 'tensor<f32>' must equal input type 'tensor<4x2x4xf32>'}}
  %r0, %r1 = lina.combine_grad %a0, %a1, %a2, %a3 : (tensor<8x4xf32>, tensor<4x2x4xf32>, tensor<8x1xi32>, tensor<8x1xf32>) -> (tensor<f32>, tensor<8x1xf32>)
  return
}
// -----
func.func @combine_grad_5(%a0: tensor<8x4xf32>, %a1: tensor<4x2x4xf32>, %a2: tensor<8x1xi32>, %a3: tensor<8x1xf32>) {
  // expected-error @+1 {{gate_weights_grad type 'tensor<f32>' must equal gate_weights type 'tensor<8x1xf32>'}}
  %r0, %r1 = lina.combine_grad %a0, %a1, %a2, %a3 : (tensor<8x4xf32>, tensor<4x2x4xf32>, tensor<8x1xi32>, tensor<8x1xf32>) -> (tensor<4x2x4xf32>, tensor<f32>)
  return
}
// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @all_to_all_rank0(%x: tensor<f32>) -> tensor<f32> {
  // expected-error @+1 {{input must have rank >= 1}}
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 0 : tensor<f32> -> tensor<f32>
  return %0 : tensor<f32>
}

// -----

lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @all_to_all_result_rank0(%x: tensor<8xf32>) -> tensor<f32> {
  // expected-error @+1 {{result must have rank 1, got 'tensor<f32>'}}
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 0 : tensor<8xf32> -> tensor<f32>
  return %0 : tensor<f32>
}

// -----

// A scalar all_reduce is valid: it has no dimension to check.
lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @all_reduce_rank0(%x: tensor<f32>) -> tensor<f32> {
  %0 = lina.all_reduce %x group = #lina.group<@g, "dp"> reduction = sum : tensor<f32>
  return %0 : tensor<f32>
}
// -----
func.func @expert_weight_grad_0(%a0: tensor<f32>, %a1: tensor<2x8x16xf32>) {
  // expected-error @+1 {{input must have rank 3, got 'tensor<f32>'}}
  %r0 = lina.expert_weight_grad %a0, %a1 : (tensor<f32>, tensor<2x8x16xf32>) -> tensor<2x4x16xf32>
  return
}
// -----
func.func @expert_weight_grad_1(%a0: tensor<2x8x4xf32>, %a1: tensor<f32>) {
  // expected-error @+1 {{grad must have rank 3, got 'tensor<f32>'}}
  %r0 = lina.expert_weight_grad %a0, %a1 : (tensor<2x8x4xf32>, tensor<f32>) -> tensor<2x4x16xf32>
  return
}
// -----
func.func @expert_weight_grad_2(%a0: tensor<2x8x4xf32>, %a1: tensor<2x8x16xf32>) {
  // expected-error @+1 {{result type 'tensor<f32>' must equal [experts, input dimension 2, grad dimension 2] type 'tensor<2x4x16xf32>'}}
  %r0 = lina.expert_weight_grad %a0, %a1 : (tensor<2x8x4xf32>, tensor<2x8x16xf32>) -> tensor<f32>
  return
}
