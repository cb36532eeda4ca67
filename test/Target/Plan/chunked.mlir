// RUN: lina-translate --lina-to-plan %s | FileCheck %s

// The form --lina-pipeline-experts produces: the dispatched [E, C, H] buffer
// is sliced along the capacity dimension (not contiguous: copy ops), each
// chunk goes through all_to_all / expert_ffn / all_to_all, and the chunks are
// concatenated along dimension 1 (copy ops into the result buffer). The
// received tokens are reassembled through expand_shape (views), a concat
// along a non-leading dimension (copies) and collapse_shape (a view).

lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

// CHECK:      "mode": "infer",
// CHECK:      "world_size": 4,
// CHECK:      "groups": {
// CHECK-NEXT:   "ep": {"members":{{\[\[}}0,1,2,3]]}
// CHECK-NEXT: },
// CHECK-NEXT: "buffers": [
// CHECK-NEXT:   {"id":0,"name":"arg0","dtype":"f32","shape":[8,8,16],"role":"input","init":"random"},
// CHECK-NEXT:   {"id":1,"name":"arg1","dtype":"f32","shape":[2,16,64],"role":"param","init":"random"},
// CHECK-NEXT:   {"id":2,"name":"arg2","dtype":"f32","shape":[2,64,16],"role":"param","init":"random"},
// CHECK-NEXT:   {"id":3,"name":"t3","dtype":"f32","shape":[8,4,16],"role":"temp","init":"none"},
// CHECK-NEXT:   {"id":4,"name":"t4","dtype":"f32","shape":[2,16,16],"role":"temp","init":"none"},
// CHECK-NEXT:   {"id":5,"name":"t5","dtype":"f32","shape":[8,4,16],"role":"temp","init":"none"},
// CHECK-NEXT:   {"id":6,"name":"t6","dtype":"f32","shape":[2,16,16],"role":"temp","init":"none"},
// CHECK-NEXT:   {"id":7,"name":"t7","dtype":"f32","shape":[2,16,16],"role":"temp","init":"none"},
// CHECK-NEXT:   {"id":8,"name":"t8","dtype":"f32","shape":[8,4,16],"role":"temp","init":"none"},
// CHECK-NEXT:   {"id":9,"name":"t9","dtype":"f32","shape":[2,16,16],"role":"temp","init":"none"},
// CHECK-NEXT:   {"id":10,"name":"t10","dtype":"f32","shape":[8,4,16],"role":"temp","init":"none"},
// CHECK-NEXT:   {"id":11,"name":"t11","dtype":"f32","shape":[8,8,16],"role":"output","init":"none"},
// CHECK-NEXT:   {"id":12,"name":"t12","dtype":"f32","shape":[2,4,4,16],"role":"temp","init":"none","view":{"base":4,"offset":0}},
// CHECK-NEXT:   {"id":13,"name":"t13","dtype":"f32","shape":[2,4,4,16],"role":"temp","init":"none","view":{"base":6,"offset":0}},
// CHECK-NEXT:   {"id":14,"name":"t14","dtype":"f32","shape":[2,4,8,16],"role":"temp","init":"none"},
// CHECK-NEXT:   {"id":15,"name":"t15","dtype":"f32","shape":[2,32,16],"role":"output","init":"none","view":{"base":14,"offset":0}}
// CHECK-NEXT: ],
// CHECK-NEXT: "ops": [
// CHECK-NEXT:   {"id":0,"kind":"copy","inputs":[0],"outputs":[3],"deps":[],"attrs":{"dst_offsets":[0,0,0],"sizes":[8,4,16],"src_offsets":[0,0,0]},"chunk":{"index":0,"count":2},"loc":
// CHECK-NEXT:   {"id":1,"kind":"all_to_all","inputs":[3],"outputs":[4],"deps":[0],"attrs":{"concat_axis":1,"split_axis":0},"group":"ep","priority":"high","chunk":{"index":0,"count":2},"loc":
// CHECK-NEXT:   {"id":2,"kind":"copy","inputs":[0],"outputs":[5],"deps":[],"attrs":{"dst_offsets":[0,0,0],"sizes":[8,4,16],"src_offsets":[0,4,0]},"chunk":{"index":1,"count":2},"loc":
// CHECK-NEXT:   {"id":3,"kind":"all_to_all","inputs":[5],"outputs":[6],"deps":[2],"attrs":{"concat_axis":1,"split_axis":0},"group":"ep","priority":"high","chunk":{"index":1,"count":2},"loc":
// CHECK-NEXT:   {"id":4,"kind":"expert_ffn","inputs":[4,1,2],"outputs":[7],"deps":[1],"attrs":{"activation":"silu"},"chunk":{"index":0,"count":2},"hold_low":true,"loc":
// CHECK-NEXT:   {"id":5,"kind":"all_to_all","inputs":[7],"outputs":[8],"deps":[4],"attrs":{"concat_axis":0,"split_axis":1},"group":"ep","priority":"high","chunk":{"index":0,"count":2},"loc":
// CHECK-NEXT:   {"id":6,"kind":"expert_ffn","inputs":[6,1,2],"outputs":[9],"deps":[3],"attrs":{"activation":"silu"},"chunk":{"index":1,"count":2},"hold_low":true,"loc":
// CHECK-NEXT:   {"id":7,"kind":"all_to_all","inputs":[9],"outputs":[10],"deps":[6],"attrs":{"concat_axis":0,"split_axis":1},"group":"ep","priority":"high","chunk":{"index":1,"count":2},"loc":
// CHECK-NEXT:   {"id":8,"kind":"copy","inputs":[8],"outputs":[11],"deps":[5],"attrs":{"accumulate_into":true,"dst_offsets":[0,0,0],"sizes":[8,4,16],"src_offsets":[0,0,0]},"chunk":{"index":0,"count":2},"loc":
// CHECK-NEXT:   {"id":9,"kind":"copy","inputs":[10],"outputs":[11],"deps":[7],"attrs":{"accumulate_into":true,"dst_offsets":[0,4,0],"sizes":[8,4,16],"src_offsets":[0,0,0]},"chunk":{"index":1,"count":2},"loc":
// CHECK-NEXT:   {"id":10,"kind":"copy","inputs":[12],"outputs":[14],"deps":[1],"attrs":{"accumulate_into":true,"dst_offsets":[0,0,0,0],"sizes":[2,4,4,16],"src_offsets":[0,0,0,0]},"loc":
// CHECK-NEXT:   {"id":11,"kind":"copy","inputs":[13],"outputs":[14],"deps":[3],"attrs":{"accumulate_into":true,"dst_offsets":[0,0,4,0],"sizes":[2,4,4,16],"src_offsets":[0,0,0,0]},"loc":
// CHECK-NEXT: ],
// CHECK-NEXT: "outputs": [11,15]

func.func @chain(%buf: tensor<8x8x16xf32>, %w1: tensor<2x16x64xf32>, %w2: tensor<2x64x16xf32>) -> (tensor<8x8x16xf32>, tensor<2x32x16xf32>) {
  %s0 = tensor.extract_slice %buf[0, 0, 0] [8, 4, 16] [1, 1, 1] : tensor<8x8x16xf32> to tensor<8x4x16xf32>
  %a0 = lina.all_to_all %s0 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 {chunk = #lina.chunk<index = 0, count = 2>, priority = #lina.priority<high>} : tensor<8x4x16xf32> -> tensor<2x16x16xf32>
  %s1 = tensor.extract_slice %buf[0, 4, 0] [8, 4, 16] [1, 1, 1] : tensor<8x8x16xf32> to tensor<8x4x16xf32>
  %a1 = lina.all_to_all %s1 group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 {chunk = #lina.chunk<index = 1, count = 2>, priority = #lina.priority<high>} : tensor<8x4x16xf32> -> tensor<2x16x16xf32>
  %f0 = lina.expert_ffn %a0, %w1, %w2 activation = silu {chunk = #lina.chunk<index = 0, count = 2>, lina.hold_low} : (tensor<2x16x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) -> tensor<2x16x16xf32>
  %b0 = lina.all_to_all %f0 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 {chunk = #lina.chunk<index = 0, count = 2>, priority = #lina.priority<high>} : tensor<2x16x16xf32> -> tensor<8x4x16xf32>
  %f1 = lina.expert_ffn %a1, %w1, %w2 activation = silu {chunk = #lina.chunk<index = 1, count = 2>, lina.hold_low} : (tensor<2x16x16xf32>, tensor<2x16x64xf32>, tensor<2x64x16xf32>) -> tensor<2x16x16xf32>
  %b1 = lina.all_to_all %f1 group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 {chunk = #lina.chunk<index = 1, count = 2>, priority = #lina.priority<high>} : tensor<2x16x16xf32> -> tensor<8x4x16xf32>
  %out = tensor.concat dim(1) %b0, %b1 : (tensor<8x4x16xf32>, tensor<8x4x16xf32>) -> tensor<8x8x16xf32>
  %e0 = tensor.expand_shape %a0 [[0], [1, 2], [3]] output_shape [2, 4, 4, 16] : tensor<2x16x16xf32> into tensor<2x4x4x16xf32>
  %e1 = tensor.expand_shape %a1 [[0], [1, 2], [3]] output_shape [2, 4, 4, 16] : tensor<2x16x16xf32> into tensor<2x4x4x16xf32>
  %r = tensor.concat dim(2) %e0, %e1 : (tensor<2x4x4x16xf32>, tensor<2x4x4x16xf32>) -> tensor<2x4x8x16xf32>
  %recv = tensor.collapse_shape %r [[0], [1, 2], [3]] : tensor<2x4x8x16xf32> into tensor<2x32x16xf32>
  return %out, %recv : tensor<8x8x16xf32>, tensor<2x32x16xf32>
}
