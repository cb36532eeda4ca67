// Idempotent: a second run changes nothing.

// REPORT: remark: lina-prioritize-alltoall: 2 high, 2 low, 2 hold_low marks, 1 moved
// REPORT: remark: lina-prioritize-alltoall: 1 high, 2 low, 1 hold_low marks, 2 moved
// REPORT: remark: lina-prioritize-alltoall: 2 high, 1 low, 0 hold_low marks, 0 moved
// REPORT: remark: lina-prioritize-alltoall: 2 high, 1 low, 1 hold_low marks, 1 moved

lina.grid @world shape = [4] groups = {dp = array<i64: 0>, ep = array<i64: 0>}

func.func @step(%dy: tensor<16x8xf32>, %x: tensor<16x8xf32>, %w: tensor<8x8xf32>,
                %buf: tensor<4x4x8xf32>, %ids: tensor<16x1xi32>, %gw: tensor<16x1xf32>,
                %r: tensor<1x16x8xf32>, %w1: tensor<1x8x32xf32>, %w2: tensor<1x32x8xf32>)
    -> (tensor<8x8xf32>, tensor<8x8xf32>, tensor<4x4x8xf32>) {
  %dx, %dw = lina.dense_grad %dy, %x, %w activation = relu : (tensor<16x8xf32>, tensor<16x8xf32>, tensor<8x8xf32>) -> (tensor<16x8xf32>, tensor<8x8xf32>)
  // The combine_grad feeds an all_to_all: it is marked, and the all_reduce
  // that sat between it and the all_to_all moves after the all_to_all.
  %db, %dgw = lina.combine_grad %dx, %buf, %ids, %gw : (tensor<16x8xf32>, tensor<4x4x8xf32>, tensor<16x1xi32>, tensor<16x1xf32>) -> (tensor<4x4x8xf32>, tensor<16x1xf32>)
  %g = lina.all_reduce %dw group = #lina.group<@world, "dp"> reduction = sum : tensor<8x8xf32>
  %h = arith.addf %g, %g : tensor<8x8xf32>
  %a = lina.all_to_all %db group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x4x8xf32> -> tensor<1x16x8xf32>
  %d, %d1, %d2 = lina.expert_ffn_grad %a, %r, %w1, %w2 activation = gelu : (tensor<1x16x8xf32>, tensor<1x16x8xf32>, tensor<1x8x32xf32>, tensor<1x32x8xf32>) -> (tensor<1x16x8xf32>, tensor<1x8x32xf32>, tensor<1x32x8xf32>)
  %b = lina.all_to_all %d group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<1x16x8xf32> -> tensor<4x4x8xf32>
  // An all_reduce that is not in such a window stays where it is.
  %g2 = lina.all_reduce %dw group = #lina.group<@world, "dp"> reduction = sum : tensor<8x8xf32>
  return %h, %g2, %b : tensor<8x8xf32>, tensor<8x8xf32>, tensor<4x4x8xf32>
}

// Partitions between the producer of an all_to_all's input and the
// all_to_all move after it with the concat that reads them; their slices
// and the reshape that the all_to_all reads stay. The producer is found
// through the reshape.
func.func @partitions_in_the_window(%x: tensor<4x4x8xf32>, %g: tensor<64xf32>) -> (tensor<1x64xf32>, tensor<64xf32>) {
  %y = arith.addf %x, %x : tensor<4x4x8xf32>
  %s0 = tensor.extract_slice %g[0] [32] [1] : tensor<64xf32> to tensor<32xf32>
  %p0 = lina.all_reduce %s0 group = #lina.group<@world, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 2, offset = 0, original = 64>} : tensor<32xf32>
  %s1 = tensor.extract_slice %g[32] [32] [1] : tensor<64xf32> to tensor<32xf32>
  %p1 = lina.all_reduce %s1 group = #lina.group<@world, "dp"> reduction = sum {partition = #lina.partition<index = 1, count = 2, offset = 32, original = 64>} : tensor<32xf32>
  %cat = tensor.concat dim(0) %p0, %p1 : (tensor<32xf32>, tensor<32xf32>) -> tensor<64xf32>
  %v = tensor.collapse_shape %y [[0], [1, 2]] : tensor<4x4x8xf32> into tensor<4x32xf32>
  %a = lina.all_to_all %v group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<4x32xf32> -> tensor<1x128xf32>
  %r = tensor.extract_slice %a[0, 0] [1, 64] [1, 1] : tensor<1x128xf32> to tensor<1x64xf32>
  return %r, %cat : tensor<1x64xf32>, tensor<64xf32>
}
