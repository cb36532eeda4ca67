lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @all_reduce_types(%x: tensor<8x4xf32>) -> tensor<8x4xf16> {
  %0 = "lina.all_reduce"(%x) <{group = #lina.group<@g, "dp">, reduction = #lina<reduction sum>}> : (tensor<8x4xf32>) -> tensor<8x4xf16>
  return %0 : tensor<8x4xf16>
}
