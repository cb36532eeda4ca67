lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @negative_axis(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = -1 concat_axis = 0 : tensor<8x4xf32> -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}
