// RUN: lina-translate --lina-to-plan %s | FileCheck %s

// The form --lina-partition-allreduce produces: the gradient is flattened,
// sliced into contiguous partitions, each partition all-reduced, and the
// results concatenated and reshaped back. In the plan every partition reads
// a view of the ONE gradient buffer and writes a view of the ONE result
// buffer; no copy op is emitted.

lina.grid @world shape = [2, 2] groups = {dp = array<i64: 0>, ep = array<i64: 1>, all = array<i64: 1, 0>}

// CHECK:      "format": "lina-plan",
// CHECK-NEXT: "version": 1,
// CHECK-NEXT: "source": "partitioned.mlir",
// CHECK-NEXT: "function": "step",
// CHECK-NEXT: "mode": "train",
// CHECK-NEXT: "world_size": 4,
// CHECK-NEXT: "grid": {"shape":[2,2]},
// CHECK-NEXT: "groups": {
// Group ranks are row-major over the spanned axes in the order listed:
// `all` lists axis 1 first, so rank 2 = (1, 0) is its group rank 1.
// CHECK-NEXT:   "all": {"members":{{\[\[}}0,2,1,3]]},
// CHECK-NEXT:   "dp": {"members":{{\[\[}}0,2],[1,3]]},
// CHECK-NEXT:   "ep": {"members":{{\[\[}}0,1],[2,3]]}
// CHECK-NEXT: },
// CHECK-NEXT: "buffers": [
// CHECK-NEXT:   {"id":0,"name":"x","dtype":"f32","shape":[8,16],"role":"input","init":"random"},
// CHECK-NEXT:   {"id":1,"name":"w","dtype":"f32","shape":[16,40],"role":"param","init":"random"},
// CHECK-NEXT:   {"id":2,"name":"dy","dtype":"f32","shape":[8,40],"role":"input","init":"random"},
// CHECK-NEXT:   {"id":3,"name":"t3","dtype":"f32","shape":[8,16],"role":"output","init":"none"},
// CHECK-NEXT:   {"id":4,"name":"t4","dtype":"f32","shape":[16,40],"role":"temp","init":"none"},
// CHECK-NEXT:   {"id":5,"name":"t5","dtype":"f32","shape":[640],"role":"temp","init":"none","view":{"base":4,"offset":0}},
// CHECK-NEXT:   {"id":6,"name":"t6","dtype":"f32","shape":[256],"role":"temp","init":"none","view":{"base":4,"offset":0}},
// CHECK-NEXT:   {"id":7,"name":"t7","dtype":"f32","shape":[640],"role":"temp","init":"none"},
// CHECK-NEXT:   {"id":8,"name":"t8","dtype":"f32","shape":[256],"role":"temp","init":"none","view":{"base":7,"offset":0}},
// CHECK-NEXT:   {"id":9,"name":"t9","dtype":"f32","shape":[256],"role":"temp","init":"none","view":{"base":4,"offset":256}},
// CHECK-NEXT:   {"id":10,"name":"t10","dtype":"f32","shape":[256],"role":"temp","init":"none","view":{"base":7,"offset":256}},
// CHECK-NEXT:   {"id":11,"name":"t11","dtype":"f32","shape":[128],"role":"temp","init":"none","view":{"base":4,"offset":512}},
// CHECK-NEXT:   {"id":12,"name":"t12","dtype":"f32","shape":[128],"role":"temp","init":"none","view":{"base":7,"offset":512}},
// CHECK-NEXT:   {"id":13,"name":"t13","dtype":"f32","shape":[16,40],"role":"output","init":"none","view":{"base":7,"offset":0}},
// CHECK-NEXT:   {"id":14,"name":"t14","dtype":"f32","shape":[16,40],"role":"output","init":"none"}
// CHECK-NEXT: ],
// CHECK-NEXT: "ops": [
// CHECK-NEXT:   {"id":0,"kind":"dense_grad","inputs":[2,0,1],"outputs":[3,4],"deps":[],"attrs":{"activation":"relu"},"hold_low":true,"loc":"partitioned.mlir:[[@LINE+15]]:14"},
// CHECK-NEXT:   {"id":1,"kind":"all_reduce","inputs":[6],"outputs":[8],"deps":[0],"attrs":{"reduction":"sum"},"group":"dp","priority":"low","partition":{"index":0,"count":3},"loc":"partitioned.mlir:[[@LINE+17]]:9"},
// CHECK-NEXT:   {"id":2,"kind":"all_reduce","inputs":[9],"outputs":[10],"deps":[0],"attrs":{"reduction":"sum"},"group":"dp","priority":"low","partition":{"index":1,"count":3},"loc":"partitioned.mlir:
// CHECK-NEXT:   {"id":3,"kind":"all_reduce","inputs":[11],"outputs":[12],"deps":[0],"attrs":{"reduction":"sum"},"group":"dp","priority":"low","partition":{"index":2,"count":3},"loc":"partitioned.mlir:
// A reader of the reassembled gradient depends on every partition.
// CHECK-NEXT:   {"id":4,"kind":"add","inputs":[13,1],"outputs":[14],"deps":[1,2,3],"loc":"partitioned.mlir:
// CHECK-NEXT: ],
// The gradient is returned twice: one buffer, listed twice.
// CHECK-NEXT: "outputs": [3,13,13,14]
// CHECK-NEXT: }

func.func @step(%x: tensor<8x16xf32> {lina.name = "x"},
                %w: tensor<16x40xf32> {lina.name = "w"},
                %dy: tensor<8x40xf32> {lina.name = "dy"})
    -> (tensor<8x16xf32>, tensor<16x40xf32>, tensor<16x40xf32>, tensor<16x40xf32>) {
  %dx, %dw = lina.dense_grad %dy, %x, %w activation = relu {lina.hold_low} : (tensor<8x40xf32>, tensor<8x16xf32>, tensor<16x40xf32>) -> (tensor<8x16xf32>, tensor<16x40xf32>)
  %flat = tensor.collapse_shape %dw [[0, 1]] : tensor<16x40xf32> into tensor<640xf32>
  %s0 = tensor.extract_slice %flat[0] [256] [1] : tensor<640xf32> to tensor<256xf32>
  %p0 = lina.all_reduce %s0 group = #lina.group<@world, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 3, offset = 0, original = 640>, priority = #lina.priority<low>} : tensor<256xf32>
  %s1 = tensor.extract_slice %flat[256] [256] [1] : tensor<640xf32> to tensor<256xf32>
  %p1 = lina.all_reduce %s1 group = #lina.group<@world, "dp"> reduction = sum {partition = #lina.partition<index = 1, count = 3, offset = 256, original = 640>, priority = #lina.priority<low>} : tensor<256xf32>
  %s2 = tensor.extract_slice %flat[512] [128] [1] : tensor<640xf32> to tensor<128xf32>
  %p2 = lina.all_reduce %s2 group = #lina.group<@world, "dp"> reduction = sum {partition = #lina.partition<index = 2, count = 3, offset = 512, original = 640>, priority = #lina.priority<low>} : tensor<128xf32>
  %cat = tensor.concat dim(0) %p0, %p1, %p2 : (tensor<256xf32>, tensor<256xf32>, tensor<128xf32>) -> tensor<640xf32>
  %g = tensor.expand_shape %cat [[0, 1]] output_shape [16, 40] : tensor<640xf32> into tensor<16x40xf32>
  %u = arith.addf %g, %w : tensor<16x40xf32>
  return %dx, %g, %g, %u : tensor<8x16xf32>, tensor<16x40xf32>, tensor<16x40xf32>, tensor<16x40xf32>
}
