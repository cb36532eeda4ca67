// A 2-rank plan with no collectives: run beside a plan that has some, it
// leaves the other rank's collectives without a partner.
lina.grid @world shape = [2] groups = {dp = array<i64: 0>, ep = array<i64: 0>}

func.func @idle(%x: tensor<4x4xf32>, %w: tensor<4x4xf32>) -> tensor<4x4xf32> {
  %y = lina.dense %x, %w activation = none : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return %y : tensor<4x4xf32>
}
