func.func @dense_inner(%x: tensor<8x4xf32>, %w: tensor<5x6xf32>) -> tensor<8x6xf32> {
  %0 = lina.dense %x, %w activation = relu : (tensor<8x4xf32>, tensor<5x6xf32>) -> tensor<8x6xf32>
  return %0 : tensor<8x6xf32>
}
