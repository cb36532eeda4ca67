// The step of partitioned.mlir before --lina-partition-allreduce.
lina.grid @world shape = [2, 2] groups = {dp = array<i64: 0>, ep = array<i64: 1>, all = array<i64: 1, 0>}

func.func @step(%x: tensor<8x16xf32> {lina.name = "x"},
                %w: tensor<16x40xf32> {lina.name = "w"},
                %dy: tensor<8x40xf32> {lina.name = "dy"})
    -> (tensor<8x16xf32>, tensor<16x40xf32>, tensor<16x40xf32>, tensor<16x40xf32>) {
  %dx, %dw = lina.dense_grad %dy, %x, %w activation = relu : (tensor<8x40xf32>, tensor<8x16xf32>, tensor<16x40xf32>) -> (tensor<8x16xf32>, tensor<16x40xf32>)
  %g = lina.all_reduce %dw group = #lina.group<@world, "dp"> reduction = sum : tensor<16x40xf32>
  %u = arith.addf %g, %w : tensor<16x40xf32>
  return %dx, %g, %g, %u : tensor<8x16xf32>, tensor<16x40xf32>, tensor<16x40xf32>, tensor<16x40xf32>
}
