// RUN: lina-opt %s -split-input-file --lina-split-expert-grad -verify-diagnostics

// Bad input reaches the pass only through the ops' verifiers: each case is
// an error naming the operand, never a crash or a wrong split.

func.func @bad_grad(%dy: tensor<2x4x4xf32>, %r: tensor<2x8x4xf32>, %w1: tensor<2x4x16xf32>, %w2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{grad type 'tensor<2x4x4xf32>' must equal input type 'tensor<2x8x4xf32>'}}
  %a, %b, %c = lina.expert_ffn_grad %dy, %r, %w1, %w2 activation = gelu : (tensor<2x4x4xf32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>)
  return
}

// -----

func.func @bad_half(%dy: tensor<2x8x4xf32>, %r: tensor<2x8x4xf32>, %act: tensor<2x8x16xf32>, %dz: tensor<2x8x8xf32>) {
  // expected-error @+1 {{pre_grad type 'tensor<2x8x8xf32>' must equal act type 'tensor<2x8x16xf32>'}}
  %a, %b = lina.expert_ffn_grad_weight %dy, %r, %act, %dz : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x16xf32>, tensor<2x8x8xf32>) -> (tensor<2x4x16xf32>, tensor<2x16x4xf32>)
  return
}

// -----

func.func @bad_chunk(%dy: tensor<2x8x4xf32>, %r: tensor<2x8x4xf32>, %w1: tensor<2x4x16xf32>, %w2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{chunk}}
  %a, %b, %c = lina.expert_ffn_grad_input %dy, %r, %w1, %w2 activation = gelu {chunk = #lina.chunk<index = 2, count = 2>} : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x4x16xf32>, tensor<2x16x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>)
  return
}
