func.func @dense_result(%x: tensor<8x4xf32>, %w: tensor<4x6xf32>) -> tensor<8x7xf32> {
  %0 = lina.dense %x, %w activation = none : (tensor<8x4xf32>, tensor<4x6xf32>) -> tensor<8x7xf32>
  return %0 : tensor<8x7xf32>
}
