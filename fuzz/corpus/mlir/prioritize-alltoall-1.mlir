lina.grid @world shape = [4] groups = {dp = array<i64: 0>, ep = array<i64: 0>}

// An all_to_all of a function argument has no producer to mark, and an
// all_reduce whose result it reads stays before it.
func.func @no_producer(%x: tensor<4x8xf32>) -> (tensor<1x32xf32>, tensor<1x32xf32>) {
  %r = lina.all_reduce %x group = #lina.group<@world, "dp"> reduction = sum : tensor<4x8xf32>
  %a = lina.all_to_all %r group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x8xf32> -> tensor<1x32xf32>
  %b = lina.all_to_all %x group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 {priority = #lina.priority<low>} : tensor<4x8xf32> -> tensor<1x32xf32>
  return %a, %b : tensor<1x32xf32>, tensor<1x32xf32>
}
