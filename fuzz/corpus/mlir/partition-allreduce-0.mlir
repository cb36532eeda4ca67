lina.grid @world shape = [4] groups = {dp = array<i64: 0>}

// A 16x40xf32 gradient is 2560 bytes: three partitions of at most 1024
// bytes (256, 256 and 128 elements) over the flattened tensor.
// DEFAULT-LABEL: func @split_2d
// DEFAULT-NOT: tensor.extract_slice
// DEFAULT: lina.all_reduce %{{.*}} : tensor<16x40xf32>
func.func @split_2d(%g: tensor<16x40xf32>) -> tensor<16x40xf32> {
  %0 = lina.all_reduce %g group = #lina.group<@world, "dp"> reduction = sum {priority = #lina.priority<low>} : tensor<16x40xf32>
  return %0 : tensor<16x40xf32>
}
