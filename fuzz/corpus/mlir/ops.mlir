lina.grid @world shape = [2, 4] groups = {dp = array<i64: 0>, ep = array<i64: 1>}
lina.grid @flat shape = [8] groups = {dp = array<i64: 0>, ep = array<i64: 0>}

func.func @forward(%x: tensor<64x32xf32>, %wd: tensor<32x32xf32>, %wg: tensor<32x8xf32>,
                   %w1: tensor<2x32x128xf32>, %w2: tensor<2x128x32xf32>) -> tensor<64x32xf32> {
  %a = lina.dense %x, %wd activation = gelu : (tensor<64x32xf32>, tensor<32x32xf32>) -> tensor<64x32xf32>
  %ids, %gw = lina.gate %a, %wg experts = 8 top_k = 2 capacity_factor = 1.25 : (tensor<64x32xf32>, tensor<32x8xf32>) -> (tensor<64x2xi32>, tensor<64x2xf32>)
  %buf = lina.dispatch %a, %ids : (tensor<64x32xf32>, tensor<64x2xi32>) -> tensor<8x20x32xf32>
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 {priority = #lina.priority<high>, chunk = #lina.chunk<index = 0, count = 1>} : tensor<8x20x32xf32> -> tensor<2x80x32xf32>
  %e = lina.expert_ffn %r, %w1, %w2 activation = silu : (tensor<2x80x32xf32>, tensor<2x32x128xf32>, tensor<2x128x32xf32>) -> tensor<2x80x32xf32>
  %b = lina.all_to_all %e group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<2x80x32xf32> -> tensor<8x20x32xf32>
  %y = lina.combine %b, %ids, %gw : (tensor<8x20x32xf32>, tensor<64x2xi32>, tensor<64x2xf32>) -> tensor<64x32xf32>
  return %y : tensor<64x32xf32>
}

func.func @backward(%dy: tensor<64x32xf32>, %x: tensor<64x32xf32>, %wd: tensor<32x32xf32>,
                    %wg: tensor<32x8xf32>, %ids: tensor<64x2xi32>, %gw: tensor<64x2xf32>,
                    %buf: tensor<8x20x32xf32>, %r: tensor<2x80x32xf32>,
                    %w1: tensor<2x32x128xf32>, %w2: tensor<2x128x32xf32>)
    -> (tensor<64x32xf32>, tensor<32x32xf32>, tensor<32x8xf32>, tensor<2x32x128xf32>, tensor<2x128x32xf32>) {
  %db, %dgw = lina.combine_grad %dy, %buf, %ids, %gw : (tensor<64x32xf32>, tensor<8x20x32xf32>, tensor<64x2xi32>, tensor<64x2xf32>) -> (tensor<8x20x32xf32>, tensor<64x2xf32>)
  %din, %dw1, %dw2 = lina.expert_ffn_grad %r, %r, %w1, %w2 activation = relu : (tensor<2x80x32xf32>, tensor<2x80x32xf32>, tensor<2x32x128xf32>, tensor<2x128x32xf32>) -> (tensor<2x80x32xf32>, tensor<2x32x128xf32>, tensor<2x128x32xf32>)
  %dx1 = lina.dispatch_grad %db, %ids : (tensor<8x20x32xf32>, tensor<64x2xi32>) -> tensor<64x32xf32>
  %dx2, %dwg = lina.gate_grad %dgw, %x, %wg, %ids : (tensor<64x2xf32>, tensor<64x32xf32>, tensor<32x8xf32>, tensor<64x2xi32>) -> (tensor<64x32xf32>, tensor<32x8xf32>)
  %dx3, %dwd = lina.dense_grad %dx1, %x, %wd activation = none : (tensor<64x32xf32>, tensor<64x32xf32>, tensor<32x32xf32>) -> (tensor<64x32xf32>, tensor<32x32xf32>)
  %g = lina.all_reduce %dwd group = #lina.group<@world, "dp"> reduction = sum {priority = #lina.priority<low>} : tensor<32x32xf32>
  %flat = tensor.collapse_shape %dwg [[0, 1]] : tensor<32x8xf32> into tensor<256xf32>
  %piece = tensor.extract_slice %flat[64] [64] [1] : tensor<256xf32> to tensor<64xf32>
  %p = lina.all_reduce %piece group = #lina.group<@flat, "dp"> reduction = max {partition = #lina.partition<index = 1, count = 4, offset = 64, original = 256>} : tensor<64xf32>
  %q = lina.all_reduce %dw1 group = #lina.group<@world, "dp"> reduction = prod : tensor<2x32x128xf32>
  %m = lina.all_reduce %dw2 group = #lina.group<@world, "dp"> reduction = min : tensor<2x128x32xf32>
  return %dx3, %g, %dwg, %q, %m : tensor<64x32xf32>, tensor<32x32xf32>, tensor<32x8xf32>, tensor<2x32x128xf32>, tensor<2x128x32xf32>
}

func.func @variable(%rows: tensor<64x32xbf16>, %send: tensor<4xi64>) -> tensor<96x32xbf16> {
  // Counts are exchanged by a uniform all_to_all of the count tensor.
  %recv = lina.all_to_all %send group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 0 : tensor<4xi64> -> tensor<4xi64>
  %out = lina.all_to_all %rows counts(%send, %recv : tensor<4xi64>, tensor<4xi64>) group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 0 : tensor<64x32xbf16> -> tensor<96x32xbf16>
  return %out : tensor<96x32xbf16>
}
