// RUN: lina-opt %s -split-input-file --lina-bucket-allreduce="bucket-bytes=1024" | FileCheck %s
// RUN: lina-opt %s -split-input-file --lina-bucket-allreduce="bucket-bytes=1024 report=true" -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT
// The default 25 MiB bucket takes all three gradients of @buckets.
// RUN: lina-opt %s -split-input-file --lina-bucket-allreduce | FileCheck %s --check-prefix=DEFAULT

// REPORT: remark: lina-bucket-allreduce: merged 3 all_reduce ops into 1 buckets
// REPORT: remark: lina-bucket-allreduce: merged 4 all_reduce ops into 2 buckets
// REPORT: remark: lina-bucket-allreduce: merged 0 all_reduce ops into 0 buckets

lina.grid @world shape = [4] groups = {dp = array<i64: 0>, ep = array<i64: 0>}

// Three gradients of 256 + 512 + 256 bytes: one bucket of 1024 bytes,
// issued where the last is ready, split back exactly.
// CHECK-LABEL: func @buckets
// CHECK-SAME: (%[[A:[^:]*]]: tensor<8x8xf32>, %[[B:[^:]*]]: tensor<128xf32>, %[[C:[^:]*]]: tensor<4x16xf32>
// CHECK: %[[FA:.*]] = tensor.collapse_shape %[[A]] {{\[\[}}0, 1]] : tensor<8x8xf32> into tensor<64xf32>
// CHECK-NEXT: %[[FC:.*]] = tensor.collapse_shape %[[C]] {{\[\[}}0, 1]] : tensor<4x16xf32> into tensor<64xf32>
// CHECK-NEXT: %[[CAT:.*]] = tensor.concat dim(0) %[[FA]], %[[B]], %[[FC]] : (tensor<64xf32>, tensor<128xf32>, tensor<64xf32>) -> tensor<256xf32>
// CHECK-NEXT: %[[R:.*]] = lina.all_reduce %[[CAT]] group = <@world, "dp"> reduction = sum {lina.bucket = 3 : i64} : tensor<256xf32>
// CHECK-NEXT: %[[RA:.*]] = tensor.extract_slice %[[R]][0] [64] [1]
// CHECK-NEXT: %[[GA:.*]] = tensor.expand_shape %[[RA]] {{\[\[}}0, 1]] output_shape [8, 8]
// CHECK-NEXT: %[[GB:.*]] = tensor.extract_slice %[[R]][64] [128] [1]
// CHECK-NEXT: %[[RC:.*]] = tensor.extract_slice %[[R]][192] [64] [1]
// CHECK-NEXT: %[[GC:.*]] = tensor.expand_shape %[[RC]] {{\[\[}}0, 1]] output_shape [4, 16]
// CHECK-NEXT: return %[[GA]], %[[GB]], %[[GC]]
// DEFAULT-LABEL: func @buckets
// DEFAULT: lina.all_reduce {{.*}}{lina.bucket = 3 : i64} : tensor<256xf32>
// DEFAULT-NOT: lina.all_reduce
// DEFAULT: func @bucket_boundaries
func.func @buckets(%a: tensor<8x8xf32>, %b: tensor<128xf32>, %c: tensor<4x16xf32>) -> (tensor<8x8xf32>, tensor<128xf32>, tensor<4x16xf32>) {
  %ga = lina.all_reduce %a group = #lina.group<@world, "dp"> reduction = sum : tensor<8x8xf32>
  %gb = lina.all_reduce %b group = #lina.group<@world, "dp"> reduction = sum : tensor<128xf32>
  %gc = lina.all_reduce %c group = #lina.group<@world, "dp"> reduction = sum : tensor<4x16xf32>
  return %ga, %gb, %gc : tensor<8x8xf32>, tensor<128xf32>, tensor<4x16xf32>
}

// -----

lina.grid @world shape = [4] groups = {dp = array<i64: 0>, ep = array<i64: 0>}

// A bucket closes at 1024 bytes, at another group, and before a use of
// one of its results; a lone gradient stays as it is.
// CHECK-LABEL: func @bucket_boundaries
// CHECK: lina.all_reduce {{.*}} {lina.bucket = 2 : i64} : tensor<256xf32>
// CHECK: lina.all_reduce %{{.*}} group = <@world, "ep"> reduction = sum : tensor<64xf32>
// CHECK: %[[D:.*]] = lina.all_reduce %{{.*}} group = <@world, "dp"> reduction = sum : tensor<64xf32>
// CHECK-NEXT: arith.addf %[[D]], %[[D]]
// CHECK: lina.all_reduce {{.*}} {lina.bucket = 2 : i64} : tensor<128xf32>
func.func @bucket_boundaries(%a: tensor<128xf32>, %b: tensor<128xf32>, %c: tensor<64xf32>,
                             %d: tensor<64xf32>, %e: tensor<64xf32>, %f: tensor<64xf32>)
    -> (tensor<128xf32>, tensor<128xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>) {
  %ga = lina.all_reduce %a group = #lina.group<@world, "dp"> reduction = sum : tensor<128xf32>
  %gb = lina.all_reduce %b group = #lina.group<@world, "dp"> reduction = sum : tensor<128xf32>
  %gc = lina.all_reduce %c group = #lina.group<@world, "ep"> reduction = sum : tensor<64xf32>
  %gd = lina.all_reduce %d group = #lina.group<@world, "dp"> reduction = sum : tensor<64xf32>
  %h = arith.addf %gd, %gd : tensor<64xf32>
  %ge = lina.all_reduce %e group = #lina.group<@world, "dp"> reduction = sum : tensor<64xf32>
  %gf = lina.all_reduce %f group = #lina.group<@world, "dp"> reduction = sum : tensor<64xf32>
  return %ga, %gb, %h, %gc, %ge, %gf : tensor<128xf32>, tensor<128xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>
}

// -----

lina.grid @world shape = [4] groups = {dp = array<i64: 0>, ep = array<i64: 0>}

// Partitions and mixed element types are not merged.
// CHECK-LABEL: func @not_merged
// CHECK-NOT: lina.bucket
func.func @not_merged(%a: tensor<32xf32>, %b: tensor<32xbf16>, %c: tensor<32xf32>, %d: tensor<32xf32>) -> (tensor<32xf32>, tensor<32xbf16>, tensor<32xf32>, tensor<32xf32>) {
  %ga = lina.all_reduce %a group = #lina.group<@world, "dp"> reduction = sum : tensor<32xf32>
  %gb = lina.all_reduce %b group = #lina.group<@world, "dp"> reduction = sum : tensor<32xbf16>
  %gc = lina.all_reduce %c group = #lina.group<@world, "dp"> reduction = sum {partition = #lina.partition<index = 0, count = 2, offset = 0, original = 64>} : tensor<32xf32>
  %gd = lina.all_reduce %d group = #lina.group<@world, "dp"> reduction = sum {partition = #lina.partition<index = 1, count = 2, offset = 32, original = 64>} : tensor<32xf32>
  return %ga, %gb, %gc, %gd : tensor<32xf32>, tensor<32xbf16>, tensor<32xf32>, tensor<32xf32>
}
