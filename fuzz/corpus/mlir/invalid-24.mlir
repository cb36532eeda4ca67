lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @a2a_v_half_counts(%x: tensor<8x4xf32>, %c: tensor<4xi64>) -> tensor<8x4xf32> {
  %0 = "lina.all_to_all"(%x, %c) <{group = #lina.group<@g, "ep">, split_axis = 0 : i64, concat_axis = 0 : i64, operandSegmentSizes = array<i32: 1, 1, 0>}> : (tensor<8x4xf32>, tensor<4xi64>) -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}
