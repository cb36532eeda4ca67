//===- CudaKernels.h - CUDA kernels and cuBLAS GEMMs of the plan's ops -*- C++
//-*-===//
//
// Part of the Lina project.
//
// Launchers of the device kernels behind the cuda backend. Every pointer is
// a device pointer; every launcher enqueues on `stream` and returns without
// synchronising. Floating-point tensors are f32, bf16 or f16 (DType), with
// f32 arithmetic inside the kernels and f32 accumulation in the GEMMs
// (CUBLAS_COMPUTE_32F). The semantics are exactly those of docs/PLAN.md and
// of the CPU kernels (lina/rt/Kernels.h); in particular dispatch, combine and
// their gradients use the CPU's slot order (for j in 0..k-1, for t in
// 0..T-1: pos = fill[e]++), computed deterministically by assignSlots() with
// a per-chunk count, a scan over chunks and a warp-ordered rank, never with
// order-dependent atomics.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_CUDA_CUDAKERNELS_H
#define LINA_RT_CUDA_CUDAKERNELS_H

#include "lina/rt/Plan.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

namespace lina::rt::cuda {

/// f32, bf16 or f16.
bool isFloatType(DType type);

/// Row-major batched GEMM on cuBLAS (cublasGemmStridedBatchedEx, fp32
/// accumulation): for b in [0, batch): C_b[m,n] = op(A_b) * op(B_b)
/// (+ C_b if accumulate), where A_b is stored [m,k] ([k,m] if transA) and
/// B_b is stored [k,n] ([n,k] if transB); strides in elements. A and B are
/// of type `abType`, C of `cType` (the same, or f32 for bf16/f16 inputs).
/// Enqueued on the handle's stream.
void gemm(cublasHandle_t handle, bool transA, bool transB, int64_t m, int64_t n,
          int64_t k, const void *a, const void *b, DType abType, void *c,
          DType cType, int64_t batch = 1, int64_t strideA = 0,
          int64_t strideB = 0, int64_t strideC = 0, bool accumulate = false);

/// Grouped GEMM over experts with their real row counts (cuBLAS
/// cublasGemmGroupedBatchedEx, fp32 accumulation): for every g with
/// rows[g] > 0, row-major C_g[rows[g], n] = A_g[rows[g], k] * B_g[k, n],
/// where A_g = a + g*strideA, B_g = b + g*strideB, C_g = c + g*strideC
/// (elements of `type`; A, B and C share it). `rows` are host values;
/// `scratch` is device memory of groupedGemmScratchBytes(rows.size())
/// bytes for the operand pointers. Enqueued on the handle's stream.
/// The backend's expert_ffn does not use it: the real counts live on the
/// device and reading them would cost a host round trip per op (see
/// docs/CUDA.md); bench/gpu_kernels measures it against the dense GEMM.
size_t groupedGemmScratchBytes(int64_t groups);
void groupedGemm(cublasHandle_t handle, const std::vector<int64_t> &rows,
                 int64_t n, int64_t k, const void *a, int64_t strideA,
                 const void *b, int64_t strideB, DType type, void *c,
                 int64_t strideC, void *scratch);

/// a = act(z) elementwise (`a` may be `z`).
void activationForward(Activation act, const void *z, void *a, DType type,
                       int64_t n, cudaStream_t stream);
/// dz = da * act'(z) elementwise (`dz` may be `da`).
void activationBackward(Activation act, const void *z, const void *da, void *dz,
                        DType type, int64_t n, cudaStream_t stream);
/// y = a + b elementwise.
void add(const void *a, const void *b, void *y, DType type, int64_t n,
         cudaStream_t stream);
/// dst = src converted between floating-point types.
void convert(const void *src, DType srcType, void *dst, DType dstType,
             int64_t n, cudaStream_t stream);
/// N-d box copy (at most 8 dimensions), as cpu::copyBox.
void copyBox(const void *src, const std::vector<int64_t> &srcShape,
             const std::vector<int64_t> &srcOffsets, void *dst,
             const std::vector<int64_t> &dstShape,
             const std::vector<int64_t> &dstOffsets,
             const std::vector<int64_t> &sizes, int64_t elemBytes,
             cudaStream_t stream);

/// Router: p = softmax(logits[T,E]) per row, ids[T,k] = top-k experts by p
/// descending (ties to the lower expert id), weights[T,k] = their p.
void gateTopK(const float *logits, int32_t *ids, float *weights, int64_t tokens,
              int64_t experts, int64_t k, cudaStream_t stream);
/// dlogits[T,E] = p * (dp - sum_e dp*p) with p = softmax(logits) and
/// dp[t,e] = sum of dweights[t,j] over the j with ids[t,j] == e.
void gateGradLogits(const float *logits, const float *dweights,
                    const int32_t *ids, float *dlogits, int64_t tokens,
                    int64_t experts, int64_t k, cudaStream_t stream);

/// Bytes of device scratch assignSlots() needs (includes the temporary
/// storage of the CUB scan; queries the current device).
size_t slotWorkspaceBytes(int64_t tokens, int64_t k, int64_t experts);
/// slots[j*T + t] = position of assignment (t, j) in its expert's buffer,
/// or -1 if it was dropped (position >= capacity) or its expert id is out
/// of range. kept[e] (if not null; `experts` entries) = the number of
/// positions of expert e in use, min(capacity, its assignments). error[0]
/// = the smallest assignment index j*T+t whose expert id is outside
/// [0, experts) (0xffffffff if none), error[1] = that id. The start of each
/// chunk of assignments within its expert comes from one cub::DeviceScan.
/// Throws CudaError for more than 12288 experts or 2^31 assignments.
void assignSlots(const int32_t *ids, int64_t tokens, int64_t k, int64_t experts,
                 int64_t capacity, void *workspace, int32_t *slots,
                 int32_t *kept, uint32_t *error, cudaStream_t stream);

/// buf[E,C,H]: buf[e,pos,:] = x[t,:] for every kept assignment and zero in
/// the unused rows [kept[e], C) of each expert (each byte written once;
/// `kept` from assignSlots).
void dispatch(const void *x, const int32_t *ids, const int32_t *slots,
              const int32_t *kept, void *buf, DType type, int64_t tokens,
              int64_t k, int64_t hidden, int64_t experts, int64_t capacity,
              cudaStream_t stream);
/// dx[t,:] = sum over the kept assignments of token t of dbuf[e,pos,:].
void dispatchGrad(const void *dbuf, const int32_t *ids, const int32_t *slots,
                  void *dx, DType type, int64_t tokens, int64_t k,
                  int64_t hidden, int64_t experts, int64_t capacity,
                  cudaStream_t stream);
/// y[t,:] = sum over kept assignments of weights[t,j] * buf[e,pos,:].
void combine(const void *buf, const int32_t *ids, const int32_t *slots,
             const float *weights, void *y, DType type, int64_t tokens,
             int64_t k, int64_t hidden, int64_t experts, int64_t capacity,
             cudaStream_t stream);
/// dbuf[e,pos,:] = weights[t,j] * dy[t,:] (zero in the unused rows
/// [kept[e], C)) and dweights[t,j] = dot(dy[t,:], buf[e,pos,:]) (0 if
/// dropped).
void combineGrad(const void *dy, const void *buf, const int32_t *ids,
                 const int32_t *slots, const int32_t *kept,
                 const float *weights, void *dbuf, float *dweights, DType type,
                 int64_t tokens, int64_t k, int64_t hidden, int64_t experts,
                 int64_t capacity, cudaStream_t stream);

} // namespace lina::rt::cuda

#endif // LINA_RT_CUDA_CUDAKERNELS_H
