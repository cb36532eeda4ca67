lina.grid @world shape = [4] groups = {dp = array<i64: 0>}

// Exactly 1024 bytes and smaller tensors are left alone.
func.func @small(%a: tensor<256xf32>, %b: tensor<4x4xf32>) -> (tensor<256xf32>, tensor<4x4xf32>) {
  %0 = lina.all_reduce %a group = #lina.group<@world, "dp"> reduction = max : tensor<256xf32>
  %1 = lina.all_reduce %b group = #lina.group<@world, "dp"> reduction = sum : tensor<4x4xf32>
  return %0, %1 : tensor<256xf32>, tensor<4x4xf32>
}
