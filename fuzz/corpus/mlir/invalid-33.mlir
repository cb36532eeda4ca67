func.func @dense_rank(%x: tensor<8x4x2xf32>, %w: tensor<4x6xf32>) -> tensor<8x6xf32> {
  %0 = lina.dense %x, %w activation = relu : (tensor<8x4x2xf32>, tensor<4x6xf32>) -> tensor<8x6xf32>
  return %0 : tensor<8x6xf32>
}
