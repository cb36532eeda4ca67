lina.grid @world shape = [4] groups = {dp = array<i64: 0>}

// A 1-D bf16 tensor: 2 bytes per element, 512 elements per partition; no
// reshape is needed.
func.func @bf16_1d(%a: tensor<1100xbf16>) -> tensor<1100xbf16> {
  %0 = lina.all_reduce %a group = #lina.group<@world, "dp"> reduction = sum : tensor<1100xbf16>
  return %0 : tensor<1100xbf16>
}
