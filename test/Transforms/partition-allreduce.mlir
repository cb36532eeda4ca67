// RUN: lina-opt %s -split-input-file --lina-partition-allreduce="partition-bytes=1024" | FileCheck %s
// RUN: lina-opt %s -split-input-file --lina-partition-allreduce | FileCheck %s --check-prefix=DEFAULT

lina.grid @world shape = [4] groups = {dp = array<i64: 0>}

// A 16x40xf32 gradient is 2560 bytes: three partitions of at most 1024
// bytes (256, 256 and 128 elements) over the flattened tensor.
// CHECK-LABEL: func @split_2d
// CHECK-SAME: (%[[G:.*]]: tensor<16x40xf32>)
// CHECK: %[[FLAT:.*]] = tensor.collapse_shape %[[G]] {{\[\[}}0, 1]] : tensor<16x40xf32> into tensor<640xf32>
// CHECK: %[[S0:.*]] = tensor.extract_slice %[[FLAT]][0] [256] [1] : tensor<640xf32> to tensor<256xf32>
// CHECK: %[[P0:.*]] = lina.all_reduce %[[S0]] group = <@world, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 3, offset = 0, original = 640>, priority = #lina.priority<low>} : tensor<256xf32>
// CHECK: %[[S1:.*]] = tensor.extract_slice %[[FLAT]][256] [256] [1]
// CHECK: %[[P1:.*]] = lina.all_reduce %[[S1]] {{.*}}partition = #lina.partition<index = 1, count = 3, offset = 256, original = 640>
// CHECK: %[[S2:.*]] = tensor.extract_slice %[[FLAT]][512] [128] [1] : tensor<640xf32> to tensor<128xf32>
// CHECK: %[[P2:.*]] = lina.all_reduce %[[S2]] {{.*}}partition = #lina.partition<index = 2, count = 3, offset = 512, original = 640>{{.*}} : tensor<128xf32>
// CHECK: %[[CAT:.*]] = tensor.concat dim(0) %[[P0]], %[[P1]], %[[P2]] : (tensor<256xf32>, tensor<256xf32>, tensor<128xf32>) -> tensor<640xf32>
// CHECK: %[[OUT:.*]] = tensor.expand_shape %[[CAT]] {{\[\[}}0, 1]] output_shape [16, 40] : tensor<640xf32> into tensor<16x40xf32>
// CHECK: return %[[OUT]]
// DEFAULT-LABEL: func @split_2d
// DEFAULT-NOT: tensor.extract_slice
// DEFAULT: lina.all_reduce %{{.*}} : tensor<16x40xf32>
func.func @split_2d(%g: tensor<16x40xf32>) -> tensor<16x40xf32> {
  %0 = lina.all_reduce %g group = #lina.group<@world, "dp"> reduction = sum {priority = #lina.priority<low>} : tensor<16x40xf32>
  return %0 : tensor<16x40xf32>
}

// -----

lina.grid @world shape = [4] groups = {dp = array<i64: 0>}

// Exactly 1024 bytes and smaller tensors are left alone.
// CHECK-LABEL: func @small
// CHECK-NOT: tensor.
// CHECK: lina.all_reduce %{{.*}} reduction = max : tensor<256xf32>
// CHECK: lina.all_reduce %{{.*}} reduction = sum : tensor<4x4xf32>
// CHECK-NOT: tensor.
func.func @small(%a: tensor<256xf32>, %b: tensor<4x4xf32>) -> (tensor<256xf32>, tensor<4x4xf32>) {
  %0 = lina.all_reduce %a group = #lina.group<@world, "dp"> reduction = max : tensor<256xf32>
  %1 = lina.all_reduce %b group = #lina.group<@world, "dp"> reduction = sum : tensor<4x4xf32>
  return %0, %1 : tensor<256xf32>, tensor<4x4xf32>
}

// -----

lina.grid @world shape = [4] groups = {dp = array<i64: 0>}

// A 1-D bf16 tensor: 2 bytes per element, 512 elements per partition; no
// reshape is needed.
// CHECK-LABEL: func @bf16_1d
// CHECK-NOT: tensor.collapse_shape
// CHECK: tensor.extract_slice %{{.*}}[0] [512] [1] : tensor<1100xbf16> to tensor<512xbf16>
// CHECK: tensor.extract_slice %{{.*}}[512] [512] [1]
// CHECK: tensor.extract_slice %{{.*}}[1024] [76] [1]
// CHECK: %[[CAT:.*]] = tensor.concat dim(0)
// CHECK-NOT: tensor.expand_shape
// CHECK: return %[[CAT]]
func.func @bf16_1d(%a: tensor<1100xbf16>) -> tensor<1100xbf16> {
  %0 = lina.all_reduce %a group = #lina.group<@world, "dp"> reduction = sum : tensor<1100xbf16>
  return %0 : tensor<1100xbf16>
}
