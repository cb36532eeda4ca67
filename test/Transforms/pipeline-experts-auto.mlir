// chunks=auto asks the cost model for K and the experts per device
// (docs/COST_MODEL.md).
// RUN: lina-opt %s -split-input-file --lina-pipeline-experts="chunks=auto cluster=%lina_src/examples/clusters/a100-ib100.json" | FileCheck %s
// RUN: lina-opt %s -split-input-file --lina-pipeline-experts="chunks=auto" | FileCheck %s

// One expert per rank over all 32 ranks of a100-ib100 (4 nodes), bf16,
// hidden 1024, FFN 32768, capacity 64: each rank sends 4 MiB per
// all-to-all, bounded by the node's 100 Gb/s interface shared by 8 GPUs.
// The pipelined time T(K) = 2 net + comp + (K-1) max(2 net, comp) is about
// 5233, 5112, 5532, 6702 and 9218 us for K = 1, 2, 4, 8, 16: K = 2. A
// chunk's FFN (446 us) covers its two all-to-all pieces (2 x 1167 us) with
// 8 experts per device.
// CHECK-LABEL: func @wide_ffn
// CHECK-SAME: attributes {lina.suggested_experts_per_device = 8 : i64}
// CHECK-COUNT-2: lina.expert_ffn {{.*}}count = 2
// CHECK-NOT: lina.expert_ffn
lina.grid @world shape = [32] groups = {ep = array<i64: 0>}

func.func @wide_ffn(%buf: tensor<32x64x1024xbf16>, %w1: tensor<1x1024x32768xbf16>, %w2: tensor<1x32768x1024xbf16>) -> tensor<32x64x1024xbf16> {
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<32x64x1024xbf16> -> tensor<1x2048x1024xbf16>
  %e = lina.expert_ffn %r, %w1, %w2 activation = gelu : (tensor<1x2048x1024xbf16>, tensor<1x1024x32768xbf16>, tensor<1x32768x1024xbf16>) -> tensor<1x2048x1024xbf16>
  %b = lina.all_to_all %e group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<1x2048x1024xbf16> -> tensor<32x64x1024xbf16>
  return %b : tensor<32x64x1024xbf16>
}

// -----

// FFN 4096: the all-to-all dominates (T(1) = 4462 us, T(2) = 4727 us), so
// no chunking; only 32 experts per device (all of them, the limit) would
// make the FFN as long as the all-to-all.
// CHECK-LABEL: func @narrow_ffn
// CHECK-SAME: attributes {lina.suggested_experts_per_device = 32 : i64}
// CHECK-NOT: chunk
// CHECK: return
lina.grid @world shape = [32] groups = {ep = array<i64: 0>}

func.func @narrow_ffn(%buf: tensor<32x64x1024xbf16>, %w1: tensor<1x1024x4096xbf16>, %w2: tensor<1x4096x1024xbf16>) -> tensor<32x64x1024xbf16> {
  %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1 : tensor<32x64x1024xbf16> -> tensor<1x2048x1024xbf16>
  %e = lina.expert_ffn %r, %w1, %w2 activation = gelu : (tensor<1x2048x1024xbf16>, tensor<1x1024x4096xbf16>, tensor<1x4096x1024xbf16>) -> tensor<1x2048x1024xbf16>
  %b = lina.all_to_all %e group = #lina.group<@world, "ep"> split_axis = 1 concat_axis = 0 : tensor<1x2048x1024xbf16> -> tensor<32x64x1024xbf16>
  return %b : tensor<32x64x1024xbf16>
}
