lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @a2a_v_count_types(%x: tensor<8x4xf32>, %s: tensor<4xi64>, %r: tensor<2xi64>) -> tensor<8x4xf32> {
  %0 = lina.all_to_all %x counts(%s, %r : tensor<4xi64>, tensor<2xi64>) group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 0 : tensor<8x4xf32> -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}
