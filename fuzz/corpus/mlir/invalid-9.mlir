func.func @unknown_grid(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  %0 = lina.all_reduce %x group = #lina.group<@nowhere, "dp"> reduction = sum : tensor<8x4xf32>
  return %0 : tensor<8x4xf32>
}
