lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @a2a_v_axes(%x: tensor<8x4xf32>, %c: tensor<4xi64>) -> tensor<8x4xf32> {
  %0 = lina.all_to_all %x counts(%c, %c : tensor<4xi64>, tensor<4xi64>) group = #lina.group<@g, "ep"> split_axis = 1 concat_axis = 1 : tensor<8x4xf32> -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}
