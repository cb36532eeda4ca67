// RUN: lina-opt %s --lina-overlap-microbatches | FileCheck %s --check-prefix=SLICE

// Column slices and zero-padded concatenations of token values (the Q/K/V
// split of lina-import) are split per micro-batch; splat constants are
// remade at the micro-batch's size and the full-size one is dropped.
// SLICE-LABEL: func.func @columns
// SLICE: %[[XA:.*]] = tensor.extract_slice %arg0[0, 0] [4, 8] [1, 1]
// SLICE: %[[XB:.*]] = tensor.extract_slice %arg0[4, 0] [4, 8] [1, 1]
// SLICE: %[[QA:.*]] = lina.dense %[[XA]]
// SLICE: tensor.extract_slice %[[QA]][0, 0] [4, 8] [1, 1] : tensor<4x12xf32> to tensor<4x8xf32>
// SLICE: arith.constant dense<0.000000e+00> : tensor<4x4xf32>
// SLICE: tensor.concat dim(1) {{.*}} : (tensor<4x8xf32>, tensor<4x4xf32>) -> tensor<4x12xf32>
// SLICE: %[[QB:.*]] = lina.dense %[[XB]]
// SLICE: tensor.extract_slice %[[QB]][0, 0] [4, 8] [1, 1]
// SLICE-NOT: tensor<8x4xf32>
// SLICE: tensor.concat dim(0) {{.*}} -> tensor<8x12xf32>
func.func @columns(%x: tensor<8x8xf32>, %w: tensor<8x12xf32>) -> tensor<8x12xf32> {
  %zero = arith.constant dense<0.0> : tensor<8x4xf32>
  %q = lina.dense %x, %w activation = none : (tensor<8x8xf32>, tensor<8x12xf32>) -> tensor<8x12xf32>
  %s = tensor.extract_slice %q[0, 0] [8, 8] [1, 1] : tensor<8x12xf32> to tensor<8x8xf32>
  %c = tensor.concat dim(1) %s, %zero : (tensor<8x8xf32>, tensor<8x4xf32>) -> tensor<8x12xf32>
  return %c : tensor<8x12xf32>
}
