func.func @gate_grad_k(%dgw: tensor<8x3xf32>, %x: tensor<8x4xf32>, %w: tensor<4x2xf32>, %ids: tensor<8x3xi32>) -> (tensor<8x4xf32>, tensor<4x2xf32>) {
  %dx, %dw = lina.gate_grad %dgw, %x, %w, %ids : (tensor<8x3xf32>, tensor<8x4xf32>, tensor<4x2xf32>, tensor<8x3xi32>) -> (tensor<8x4xf32>, tensor<4x2xf32>)
  return %dx, %dw : tensor<8x4xf32>, tensor<4x2xf32>
}
