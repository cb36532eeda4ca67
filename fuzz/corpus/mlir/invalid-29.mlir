lina.grid @g shape = [4] groups = {dp = array<i64: 0>}
func.func @partition_offset(%x: tensor<64xf32>) -> tensor<64xf32> {
  %0 = lina.all_reduce %x group = #lina.group<@g, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 4, offset = -8, original = 256>} : tensor<64xf32>
  return %0 : tensor<64xf32>
}
