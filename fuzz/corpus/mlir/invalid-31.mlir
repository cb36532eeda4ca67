lina.grid @g shape = [4] groups = {ep = array<i64: 0>}
func.func @bad_priority(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  %0 = lina.all_to_all %x group = #lina.group<@g, "ep"> split_axis = 0 concat_axis = 0 {priority = #lina.priority<urgent>} : tensor<8x4xf32> -> tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}
