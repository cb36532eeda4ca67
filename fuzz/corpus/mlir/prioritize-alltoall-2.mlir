lina.grid @world shape = [4] groups = {dp = array<i64: 0>, ep = array<i64: 0>}

// A variable all_to_all also waits for its counts: their producer is
// marked, and an all_reduce issued between it and the all_to_all moves.
func.func @variable_counts(%rows: tensor<8x4xf32>, %c: tensor<4xi64>, %g: tensor<16xf32>) -> (tensor<8x4xf32>, tensor<16xf32>) {
  %s = arith.addi %c, %c : tensor<4xi64>
  %ar = lina.all_reduce %g group = #lina.group<@world, "dp"> reduction = sum : tensor<16xf32>
  %rc = lina.all_to_all %s group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 0 : tensor<4xi64> -> tensor<4xi64>
  %v = lina.all_to_all %rows counts(%s, %rc : tensor<4xi64>, tensor<4xi64>) group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 0 : tensor<8x4xf32> -> tensor<8x4xf32>
  return %v, %ar : tensor<8x4xf32>, tensor<16xf32>
}
