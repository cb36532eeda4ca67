// RUN: lina-translate --lina-to-plan %s | FileCheck %s

// A concatenation along the outermost dimension is built in place from the
// pieces ops produce; a piece that is an argument is copied in. A reader of
// the concatenation depends on every writer of it.

lina.grid @world shape = [2] groups = {dp = array<i64: 0>}

// CHECK:      "function": "concat",
// CHECK:      "buffers": [
// CHECK-NEXT:   {"id":0,"name":"arg0","dtype":"f32","shape":[2,8],"role":"input","init":"random"},
// CHECK-NEXT:   {"id":1,"name":"arg1","dtype":"f32","shape":[3,8],"role":"input","init":"random"},
// CHECK-NEXT:   {"id":2,"name":"t2","dtype":"f32","shape":[7,8],"role":"temp","init":"none"},
// CHECK-NEXT:   {"id":3,"name":"t3","dtype":"f32","shape":[2,8],"role":"temp","init":"none","view":{"base":2,"offset":0}},
// CHECK-NEXT:   {"id":4,"name":"t4","dtype":"f32","shape":[2,8],"role":"temp","init":"none","view":{"base":2,"offset":40}},
// CHECK-NEXT:   {"id":5,"name":"t5","dtype":"f32","shape":[3,8],"role":"temp","init":"none","view":{"base":2,"offset":16}},
// CHECK-NEXT:   {"id":6,"name":"t6","dtype":"f32","shape":[7,8],"role":"output","init":"none"},
// CHECK-NEXT:   {"id":7,"name":"t7","dtype":"f32","shape":[1,8],"role":"temp","init":"none","view":{"base":0,"offset":8}},
// CHECK-NEXT:   {"id":8,"name":"t8","dtype":"f32","shape":[1,4],"role":"temp","init":"none","view":{"base":0,"offset":8}},
// CHECK-NEXT:   {"id":9,"name":"t9","dtype":"f32","shape":[1,4],"role":"temp","init":"none","view":{"base":0,"offset":12}},
// CHECK-NEXT:   {"id":10,"name":"t10","dtype":"f32","shape":[1,8],"role":"temp","init":"none"},
// CHECK-NEXT:   {"id":11,"name":"t11","dtype":"f32","shape":[1,4],"role":"temp","init":"none","view":{"base":10,"offset":0}},
// CHECK-NEXT:   {"id":12,"name":"t12","dtype":"f32","shape":[1,4],"role":"temp","init":"none","view":{"base":10,"offset":4}},
// CHECK-NEXT:   {"id":13,"name":"t13","dtype":"f32","shape":[1,8],"role":"output","init":"none"}
// CHECK-NEXT: ],
// CHECK-NEXT: "ops": [
// CHECK-NEXT:   {"id":0,"kind":"all_reduce","inputs":[0],"outputs":[3],"deps":[],"attrs":{"reduction":"max"},"group":"dp","priority":"normal","loc":"concat.mlir:[[@LINE+14]]:8"},
// CHECK-NEXT:   {"id":1,"kind":"all_reduce","inputs":[0],"outputs":[4],"deps":[],"attrs":{"reduction":"min"},"group":"dp","priority":"high",
// The argument piece is copied into a view of its own rows, disjoint from
// the views the all_reduce ops write.
// CHECK-NEXT:   {"id":2,"kind":"copy","inputs":[1],"outputs":[5],"deps":[],"attrs":{"dst_offsets":[0,0],"sizes":[3,8],"src_offsets":[0,0]},
// CHECK-NEXT:   {"id":3,"kind":"add","inputs":[2,2],"outputs":[6],"deps":[0,1,2],
// Along dimension 1 of a [1, 8] result: the leading dimension is a unit one,
// so each piece is still one contiguous run of the result.
// CHECK-NEXT:   {"id":4,"kind":"all_reduce","inputs":[8],"outputs":[11],"deps":[],
// CHECK-NEXT:   {"id":5,"kind":"all_reduce","inputs":[9],"outputs":[12],"deps":[],
// CHECK-NEXT:   {"id":6,"kind":"add","inputs":[10,10],"outputs":[13],"deps":[4,5],
// CHECK-NEXT: ],
// CHECK-NEXT: "outputs": [6,13]
func.func @concat(%a: tensor<2x8xf32>, %b: tensor<3x8xf32>) -> (tensor<7x8xf32>, tensor<1x8xf32>) {
  %p = lina.all_reduce %a group = #lina.group<@world, "dp"> reduction = max : tensor<2x8xf32>
  %q = lina.all_reduce %a group = #lina.group<@world, "dp"> reduction = min {priority = #lina.priority<high>} : tensor<2x8xf32>
  %cat = tensor.concat dim(0) %p, %b, %q : (tensor<2x8xf32>, tensor<3x8xf32>, tensor<2x8xf32>) -> tensor<7x8xf32>
  %sum = arith.addf %cat, %cat : tensor<7x8xf32>
  %row = tensor.extract_slice %a[1, 0] [1, 8] [1, 1] : tensor<2x8xf32> to tensor<1x8xf32>
  %l = tensor.extract_slice %row[0, 0] [1, 4] [1, 1] : tensor<1x8xf32> to tensor<1x4xf32>
  %r = tensor.extract_slice %row[0, 4] [1, 4] [1, 1] : tensor<1x8xf32> to tensor<1x4xf32>
  %lr = lina.all_reduce %l group = #lina.group<@world, "dp"> reduction = sum : tensor<1x4xf32>
  %rr = lina.all_reduce %r group = #lina.group<@world, "dp"> reduction = sum : tensor<1x4xf32>
  %cat2 = tensor.concat dim(1) %lr, %rr : (tensor<1x4xf32>, tensor<1x4xf32>) -> tensor<1x8xf32>
  %sum2 = arith.addf %cat2, %cat2 : tensor<1x8xf32>
  return %sum, %sum2 : tensor<7x8xf32>, tensor<1x8xf32>
}
