func.func @dense_grad_shapes(%dy: tensor<8x5xf32>, %x: tensor<8x4xf32>, %w: tensor<4x6xf32>) -> (tensor<8x4xf32>, tensor<4x6xf32>) {
  %dx, %dw = lina.dense_grad %dy, %x, %w activation = relu : (tensor<8x5xf32>, tensor<8x4xf32>, tensor<4x6xf32>) -> (tensor<8x4xf32>, tensor<4x6xf32>)
  return %dx, %dw : tensor<8x4xf32>, tensor<4x6xf32>
}
