// RUN: lina-translate --lina-to-plan %s | FileCheck %s

// Contiguous slices are views at the slice's element offset; a view of a
// view names the base with the summed offset; a non-contiguous slice is a
// box copy. A view returned twice is one output buffer.

lina.grid @world shape = [1] groups = {dp = array<i64: 0>}

// CHECK:      "function": "slices",
// CHECK:      "buffers": [
// CHECK-NEXT:   {"id":0,"name":"arg0","dtype":"f32","shape":[4,8],"role":"input","init":"random"},
// Row 2: offset 16.
// CHECK-NEXT:   {"id":1,"name":"t1","dtype":"f32","shape":[1,8],"role":"temp","init":"none","view":{"base":0,"offset":16}},
// Row 1, columns 3..6: offset 11.
// CHECK-NEXT:   {"id":2,"name":"t2","dtype":"f32","shape":[1,4],"role":"temp","init":"none","view":{"base":0,"offset":11}},
// Rows 0..1, columns 2..5: not contiguous.
// CHECK-NEXT:   {"id":3,"name":"t3","dtype":"f32","shape":[2,4],"role":"temp","init":"none"},
// CHECK-NEXT:   {"id":4,"name":"t4","dtype":"f32","shape":[8],"role":"temp","init":"none","view":{"base":0,"offset":16}},
// CHECK-NEXT:   {"id":5,"name":"t5","dtype":"f32","shape":[4],"role":"output","init":"none","view":{"base":0,"offset":20}},
// CHECK-NEXT:   {"id":6,"name":"t6","dtype":"f32","shape":[1,4],"role":"output","init":"none"},
// CHECK-NEXT:   {"id":7,"name":"t7","dtype":"f32","shape":[2,4],"role":"output","init":"none"}
// CHECK-NEXT: ],
// CHECK-NEXT: "ops": [
// CHECK-NEXT:   {"id":0,"kind":"copy","inputs":[0],"outputs":[3],"deps":[],"attrs":{"dst_offsets":[0,0],"sizes":[2,4],"src_offsets":[0,2]},"loc":"views.mlir:[[@LINE+8]]:10"},
// CHECK-NEXT:   {"id":1,"kind":"add","inputs":[2,2],"outputs":[6],"deps":[],
// CHECK-NEXT:   {"id":2,"kind":"add","inputs":[3,3],"outputs":[7],"deps":[0],
// CHECK-NEXT: ],
// CHECK-NEXT: "outputs": [5,5,6,7]
func.func @slices(%a: tensor<4x8xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<1x4xf32>, tensor<2x4xf32>) {
  %row = tensor.extract_slice %a[2, 0] [1, 8] [1, 1] : tensor<4x8xf32> to tensor<1x8xf32>
  %part = tensor.extract_slice %a[1, 3] [1, 4] [1, 1] : tensor<4x8xf32> to tensor<1x4xf32>
  %box = tensor.extract_slice %a[0, 2] [2, 4] [1, 1] : tensor<4x8xf32> to tensor<2x4xf32>
  %flat = tensor.collapse_shape %row [[0, 1]] : tensor<1x8xf32> into tensor<8xf32>
  %tail = tensor.extract_slice %flat[4] [4] [1] : tensor<8xf32> to tensor<4xf32>
  %p = arith.addf %part, %part : tensor<1x4xf32>
  %b = arith.addf %box, %box : tensor<2x4xf32>
  return %tail, %tail, %p, %b : tensor<4xf32>, tensor<4xf32>, tensor<1x4xf32>, tensor<2x4xf32>
}
