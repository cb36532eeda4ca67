//===- Kernels.cu - CUDA kernels of the plan's ops ------------------------===//
//
// Part of the Lina project.
//
// Gate (softmax + top-k), slot assignment, dispatch, combine, their
// gradients, activations, add, conversions and box copies. Arithmetic is in
// f32 whatever the storage type; the formulas are those of the CPU kernels
// (runtime/lib/cpu/Kernels.cpp).
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Activation.h"
#include "lina/rt/cuda/CudaCheck.h"
#include "lina/rt/cuda/CudaKernels.h"

#include "lina/rt/cuda/Scan.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <climits>

using namespace lina::rt;
using namespace lina::rt::cuda;

namespace {

//===----------------------------------------------------------------------===//
// Element types
//===----------------------------------------------------------------------===//

__device__ __forceinline__ float toFloat(float v) { return v; }
__device__ __forceinline__ float toFloat(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
__device__ __forceinline__ float toFloat(__half v) { return __half2float(v); }

template <typename T> __device__ __forceinline__ T fromFloat(float v);
template <> __device__ __forceinline__ float fromFloat<float>(float v) {
  return v;
}
template <> __device__ __forceinline__ __nv_bfloat16 fromFloat(float v) {
  return __float2bfloat16(v);
}
template <> __device__ __forceinline__ __half fromFloat(float v) {
  return __float2half(v);
}

/// Runs BODY with `T` bound to the storage type of `dtype`.
#define LINA_FLOAT_SWITCH(dtype, T, ...)                                       \
  switch (dtype) {                                                             \
  case DType::F32: {                                                           \
    using T = float;                                                           \
    __VA_ARGS__;                                                               \
    break;                                                                     \
  }                                                                            \
  case DType::BF16: {                                                          \
    using T = __nv_bfloat16;                                                   \
    __VA_ARGS__;                                                               \
    break;                                                                     \
  }                                                                            \
  case DType::F16: {                                                           \
    using T = __half;                                                          \
    __VA_ARGS__;                                                               \
    break;                                                                     \
  }                                                                            \
  default:                                                                     \
    throw CudaError(std::string("cuda kernels: ") + toString(dtype) +          \
                    " is not a floating-point type");                          \
  }

#define LINA_LAUNCH_CHECK() LINA_CUDA_CHECK(cudaGetLastError())

constexpr int kThreads = 256;

unsigned blocksFor(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(
      std::min<int64_t>(std::max<int64_t>(b, 1), 65535LL * 16));
}

//===----------------------------------------------------------------------===//
// Activations (the CPU formulas; gelu is the tanh approximation)
//===----------------------------------------------------------------------===//

using activation::apply;
using activation::derivative;

template <typename T>
__global__ void activationForwardKernel(Activation act, const T *z, T *a,
                                        int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    a[i] = fromFloat<T>(apply(act, toFloat(z[i])));
}

template <typename T>
__global__ void activationBackwardKernel(Activation act, const T *z,
                                         const T *da, T *dz, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    dz[i] = fromFloat<T>(toFloat(da[i]) * derivative(act, toFloat(z[i])));
}

template <typename T>
__global__ void addKernel(const T *a, const T *b, T *y, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    y[i] = fromFloat<T>(toFloat(a[i]) + toFloat(b[i]));
}

template <typename S, typename D>
__global__ void convertKernel(const S *src, D *dst, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = fromFloat<D>(toFloat(src[i]));
}

//===----------------------------------------------------------------------===//
// Box copy
//===----------------------------------------------------------------------===//

constexpr int kMaxBoxRank = 8;

struct BoxArgs {
  int rank;
  int64_t sizes[kMaxBoxRank], srcStride[kMaxBoxRank], dstStride[kMaxBoxRank];
  int64_t srcBase, dstBase, total;
};

template <typename E>
__global__ void copyBoxKernel(const E *src, E *dst, BoxArgs args) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
       i < args.total; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t rest = i, so = args.srcBase, dof = args.dstBase;
    for (int d = args.rank - 1; d >= 0; --d) {
      int64_t idx = rest % args.sizes[d];
      rest /= args.sizes[d];
      so += idx * args.srcStride[d];
      dof += idx * args.dstStride[d];
    }
    dst[dof] = src[so];
  }
}

//===----------------------------------------------------------------------===//
// Gate
//===----------------------------------------------------------------------===//

/// One thread per token: softmax statistics, then k selections, each the
/// best expert strictly after the previous pick in the order (p
/// descending, id ascending), so ties go to the lower id as on the CPU.
__global__ void gateTopKKernel(const float *logits, int32_t *ids,
                               float *weights, int64_t tokens, int experts,
                               int k) {
  int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (t >= tokens)
    return;
  const float *row = logits + t * experts;
  float mx = row[0];
  for (int e = 1; e < experts; ++e)
    mx = row[e] > mx ? row[e] : mx;
  float sum = 0;
  for (int e = 0; e < experts; ++e)
    sum += expf(row[e] - mx);
  float prevP = INFINITY;
  int prevE = -1;
  for (int j = 0; j < k; ++j) {
    int best = -1;
    float bestP = 0;
    for (int e = 0; e < experts; ++e) {
      float p = expf(row[e] - mx) / sum;
      bool after = p < prevP || (p == prevP && e > prevE);
      if (after && (best < 0 || p > bestP)) {
        best = e;
        bestP = p;
      }
    }
    ids[t * k + j] = best;
    weights[t * k + j] = bestP;
    prevP = bestP;
    prevE = best;
  }
}

__global__ void gateGradLogitsKernel(const float *logits, const float *dweights,
                                     const int32_t *ids, float *dlogits,
                                     int64_t tokens, int experts, int k) {
  int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (t >= tokens)
    return;
  const float *row = logits + t * experts;
  float mx = row[0];
  for (int e = 1; e < experts; ++e)
    mx = row[e] > mx ? row[e] : mx;
  float sum = 0;
  for (int e = 0; e < experts; ++e)
    sum += expf(row[e] - mx);
  auto dpOf = [&](int e) {
    float dp = 0;
    for (int j = 0; j < k; ++j)
      if (ids[t * k + j] == e)
        dp += dweights[t * k + j];
    return dp;
  };
  float dot = 0;
  for (int e = 0; e < experts; ++e)
    dot += dpOf(e) * (expf(row[e] - mx) / sum);
  for (int e = 0; e < experts; ++e) {
    float p = expf(row[e] - mx) / sum;
    dlogits[t * experts + e] = p * (dpOf(e) - dot);
  }
}

//===----------------------------------------------------------------------===//
// Slot assignment: deterministic, in the CPU's order.
//===----------------------------------------------------------------------===//

/// Assignments a = j*T + t handled by one warp, in order.
constexpr int kSlotChunk = 256;
/// Shared memory per block for per-warp expert counters (ints).
constexpr int kSlotSharedInts = 12288;

__device__ __forceinline__ int expertOf(const int32_t *ids, int64_t a,
                                        int64_t tokens, int k) {
  int64_t j = a / tokens, t = a % tokens;
  return ids[t * k + j];
}

/// Per expert and chunk: the number of assignments of the chunk to the
/// expert (order-independent, so shared atomics are fine here), stored
/// expert-major (chunkCounts[e * numChunks + chunk]) so that one flat
/// exclusive scan gives every chunk's start within its expert. Records the
/// first out-of-range expert id.
__global__ void slotCountKernel(const int32_t *ids, int64_t tokens, int k,
                                int experts, int64_t numChunks,
                                int32_t *chunkCounts, uint32_t *error) {
  extern __shared__ int32_t shared[];
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int64_t chunk = blockIdx.x * (int64_t)(blockDim.x / 32) + warp;
  if (chunk >= numChunks)
    return; // the whole warp
  int32_t *count = shared + warp * experts;
  for (int e = lane; e < experts; e += 32)
    count[e] = 0;
  __syncwarp();
  int64_t total = tokens * k;
  int64_t begin = chunk * kSlotChunk,
          end = begin + kSlotChunk < total ? begin + kSlotChunk : total;
  for (int64_t a = begin + lane; a < end; a += 32) {
    int e = expertOf(ids, a, tokens, k);
    if (e >= 0 && e < experts)
      atomicAdd(&count[e], 1);
    else
      atomicMin(&error[0], static_cast<uint32_t>(a));
  }
  __syncwarp();
  for (int e = lane; e < experts; e += 32)
    chunkCounts[e * numChunks + chunk] = count[e];
}

/// kept[e] = min(capacity, assignments to expert e), from the counts and
/// their exclusive scan (offsets of expert e start at offsets[e*numChunks]).
__global__ void slotKeptKernel(const int32_t *chunkCounts,
                               const int32_t *offsets, int64_t numChunks,
                               int experts, int64_t capacity, int32_t *kept) {
  int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= experts)
    return;
  int64_t first = e * numChunks, last = first + numChunks - 1;
  int64_t total =
      static_cast<int64_t>(offsets[last]) + chunkCounts[last] - offsets[first];
  kept[e] = static_cast<int32_t>(total < capacity ? total : capacity);
}

/// Each warp walks its chunk 32 assignments at a time in order; lanes with
/// the same expert are ranked by lane (__match_any_sync), so the position
/// of an assignment is the number of earlier assignments to its expert.
__global__ void slotAssignKernel(const int32_t *ids, int64_t tokens, int k,
                                 int experts, int64_t capacity,
                                 int64_t numChunks, const int32_t *offsets,
                                 int32_t *slots) {
  extern __shared__ int32_t shared[];
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int64_t chunk = blockIdx.x * (int64_t)(blockDim.x / 32) + warp;
  if (chunk >= numChunks)
    return; // the whole warp
  int32_t *running = shared + warp * experts;
  for (int e = lane; e < experts; e += 32)
    running[e] = offsets[e * numChunks + chunk] - offsets[e * numChunks];
  __syncwarp();
  int64_t total = tokens * k;
  int64_t begin = chunk * kSlotChunk,
          end = begin + kSlotChunk < total ? begin + kSlotChunk : total;
  unsigned lowerLanes = (1u << lane) - 1u;
  for (int64_t base = begin; base < end; base += 32) {
    int64_t a = base + lane;
    bool active = a < end;
    int e = active ? expertOf(ids, a, tokens, k) : -1;
    bool valid = active && e >= 0 && e < experts;
    int key = valid ? e : -1;
    unsigned peers = __match_any_sync(0xffffffffu, key);
    int rank = __popc(peers & lowerLanes);
    int32_t pos = valid ? running[e] + rank : -1;
    __syncwarp();
    if (valid && rank == 0)
      running[e] += __popc(peers);
    if (active)
      slots[a] = pos >= 0 && pos < capacity ? pos : -1;
    __syncwarp();
  }
}

__global__ void slotErrorKernel(const int32_t *ids, int64_t tokens, int k,
                                uint32_t *error) {
  if (error[0] != 0xffffffffu)
    error[1] = static_cast<uint32_t>(expertOf(ids, error[0], tokens, k));
}

//===----------------------------------------------------------------------===//
// Dispatch / combine
//===----------------------------------------------------------------------===//

__device__ __forceinline__ void copyRow(char *dst, const char *src,
                                        int64_t bytes) {
  uintptr_t bits = reinterpret_cast<uintptr_t>(dst) |
                   reinterpret_cast<uintptr_t>(src) |
                   static_cast<uintptr_t>(bytes);
  if ((bits & 15) == 0) {
    for (int64_t i = threadIdx.x; i < bytes / 16; i += blockDim.x)
      reinterpret_cast<uint4 *>(dst)[i] =
          reinterpret_cast<const uint4 *>(src)[i];
  } else if ((bits & 3) == 0) {
    for (int64_t i = threadIdx.x; i < bytes / 4; i += blockDim.x)
      reinterpret_cast<uint32_t *>(dst)[i] =
          reinterpret_cast<const uint32_t *>(src)[i];
  } else {
    for (int64_t i = threadIdx.x; i < bytes / 2; i += blockDim.x)
      reinterpret_cast<uint16_t *>(dst)[i] =
          reinterpret_cast<const uint16_t *>(src)[i];
  }
}

/// One block per assignment.
__global__ void dispatchKernel(const char *x, const int32_t *ids,
                               const int32_t *slots, char *buf, int64_t tokens,
                               int k, int64_t rowBytes, int64_t capacity) {
  int64_t a = blockIdx.x;
  int32_t pos = slots[a];
  if (pos < 0)
    return;
  int64_t t = a % tokens;
  int e = expertOf(ids, a, tokens, k);
  copyRow(buf + (e * capacity + pos) * rowBytes, x + t * rowBytes, rowBytes);
}

/// Zeroes the rows [kept[e], capacity) of every expert of buf[E, C, row]:
/// the rows below kept[e] are written by the op itself, so every byte of
/// the buffer is written once.
__global__ void zeroTailKernel(char *buf, const int32_t *kept, int64_t experts,
                               int64_t capacity, int64_t rowBytes) {
  for (int64_t r = blockIdx.x; r < experts * capacity; r += gridDim.x) {
    int64_t e = r / capacity, c = r % capacity;
    if (c < kept[e])
      continue;
    char *dst = buf + r * rowBytes;
    uintptr_t bits =
        reinterpret_cast<uintptr_t>(dst) | static_cast<uintptr_t>(rowBytes);
    if ((bits & 15) == 0) {
      for (int64_t i = threadIdx.x; i < rowBytes / 16; i += blockDim.x)
        reinterpret_cast<uint4 *>(dst)[i] = make_uint4(0, 0, 0, 0);
    } else if ((bits & 3) == 0) {
      for (int64_t i = threadIdx.x; i < rowBytes / 4; i += blockDim.x)
        reinterpret_cast<uint32_t *>(dst)[i] = 0;
    } else {
      for (int64_t i = threadIdx.x; i < rowBytes / 2; i += blockDim.x)
        reinterpret_cast<uint16_t *>(dst)[i] = 0;
    }
  }
}

/// One block per token; y[t,h] = sum_j w_j * buf[e_j,pos_j,h] in j order
/// (weight 1 for dispatch_grad).
template <typename T, bool Weighted>
__global__ void combineKernel(const T *buf, const int32_t *ids,
                              const int32_t *slots, const float *weights, T *y,
                              int64_t tokens, int k, int64_t hidden,
                              int64_t capacity) {
  extern __shared__ int64_t rowOf[]; // k row offsets, then k weights
  float *w = reinterpret_cast<float *>(rowOf + k);
  int64_t t = blockIdx.x;
  for (int j = threadIdx.x; j < k; j += blockDim.x) {
    int32_t pos = slots[j * tokens + t];
    int e = ids[t * k + j];
    rowOf[j] = pos >= 0 ? (e * capacity + pos) * hidden : -1;
    w[j] = Weighted ? weights[t * k + j] : 1.0f;
  }
  __syncthreads();
  for (int64_t h = threadIdx.x; h < hidden; h += blockDim.x) {
    float acc = 0.0f;
    for (int j = 0; j < k; ++j) {
      if (rowOf[j] < 0)
        continue;
      float v = toFloat(buf[rowOf[j] + h]);
      if (Weighted)
        acc += w[j] * v;
      else
        acc += v;
    }
    y[t * hidden + h] = fromFloat<T>(acc);
  }
}

/// One block per assignment.
template <typename T>
__global__ void combineGradKernel(const T *dy, const T *buf, const int32_t *ids,
                                  const int32_t *slots, const float *weights,
                                  T *dbuf, float *dweights, int64_t tokens,
                                  int k, int64_t hidden, int64_t capacity) {
  __shared__ float partial[32];
  int64_t a = blockIdx.x;
  int64_t j = a / tokens, t = a % tokens;
  int32_t pos = slots[a];
  if (pos < 0) {
    if (threadIdx.x == 0)
      dweights[t * k + j] = 0.0f;
    return;
  }
  int e = ids[t * k + j];
  int64_t row = (e * capacity + pos) * hidden;
  float w = weights[t * k + j], dot = 0.0f;
  for (int64_t h = threadIdx.x; h < hidden; h += blockDim.x) {
    float g = toFloat(dy[t * hidden + h]);
    dbuf[row + h] = fromFloat<T>(w * g);
    dot += g * toFloat(buf[row + h]);
  }
  for (int off = 16; off > 0; off /= 2)
    dot += __shfl_down_sync(0xffffffffu, dot, off);
  if (threadIdx.x % 32 == 0)
    partial[threadIdx.x / 32] = dot;
  __syncthreads();
  if (threadIdx.x == 0) {
    float sum = 0.0f;
    for (int i = 0; i < static_cast<int>(blockDim.x / 32); ++i)
      sum += partial[i];
    dweights[t * k + j] = sum;
  }
}

void checkSizes(int64_t tokens, int64_t k, const char *what) {
  if (tokens * k > INT_MAX)
    throw CudaError(std::string(what) + ": " + std::to_string(tokens * k) +
                    " token assignments exceed 2^31");
}
} // namespace

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

bool lina::rt::cuda::isFloatType(DType type) {
  return type == DType::F32 || type == DType::BF16 || type == DType::F16;
}

void lina::rt::cuda::activationForward(Activation act, const void *z, void *a,
                                       DType type, int64_t n,
                                       cudaStream_t stream) {
  if (n == 0 || (act == Activation::None && z == a))
    return;
  LINA_FLOAT_SWITCH(
      type, T,
      activationForwardKernel<T><<<blocksFor(n), kThreads, 0, stream>>>(
          act, static_cast<const T *>(z), static_cast<T *>(a), n));
  LINA_LAUNCH_CHECK();
}

void lina::rt::cuda::activationBackward(Activation act, const void *z,
                                        const void *da, void *dz, DType type,
                                        int64_t n, cudaStream_t stream) {
  if (n == 0)
    return;
  LINA_FLOAT_SWITCH(type, T,
                    activationBackwardKernel<T>
                    <<<blocksFor(n), kThreads, 0, stream>>>(
                        act, static_cast<const T *>(z),
                        static_cast<const T *>(da), static_cast<T *>(dz), n));
  LINA_LAUNCH_CHECK();
}

void lina::rt::cuda::add(const void *a, const void *b, void *y, DType type,
                         int64_t n, cudaStream_t stream) {
  if (n == 0)
    return;
  LINA_FLOAT_SWITCH(type, T,
                    addKernel<T><<<blocksFor(n), kThreads, 0, stream>>>(
                        static_cast<const T *>(a), static_cast<const T *>(b),
                        static_cast<T *>(y), n));
  LINA_LAUNCH_CHECK();
}

void lina::rt::cuda::convert(const void *src, DType srcType, void *dst,
                             DType dstType, int64_t n, cudaStream_t stream) {
  if (n == 0)
    return;
  if (srcType == dstType) {
    if (src != dst)
      LINA_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * dtypeBytes(srcType),
                                      cudaMemcpyDeviceToDevice, stream));
    return;
  }
  LINA_FLOAT_SWITCH(srcType, S,
                    LINA_FLOAT_SWITCH(dstType, D,
                                      convertKernel<S, D>
                                      <<<blocksFor(n), kThreads, 0, stream>>>(
                                          static_cast<const S *>(src),
                                          static_cast<D *>(dst), n)));
  LINA_LAUNCH_CHECK();
}

void lina::rt::cuda::copyBox(const void *src,
                             const std::vector<int64_t> &srcShape,
                             const std::vector<int64_t> &srcOffsets, void *dst,
                             const std::vector<int64_t> &dstShape,
                             const std::vector<int64_t> &dstOffsets,
                             const std::vector<int64_t> &sizes,
                             int64_t elemBytes, cudaStream_t stream) {
  size_t rank = sizes.size();
  if (rank > static_cast<size_t>(kMaxBoxRank))
    throw CudaError("copyBox: " + std::to_string(rank) +
                    " dimensions; the cuda backend copies at most " +
                    std::to_string(kMaxBoxRank));
  BoxArgs args{};
  args.rank = static_cast<int>(rank);
  args.total = 1;
  int64_t ss = 1, ds = 1;
  for (size_t i = rank; i-- > 0;) {
    args.sizes[i] = sizes[i];
    args.srcStride[i] = ss;
    args.dstStride[i] = ds;
    args.srcBase += srcOffsets[i] * ss;
    args.dstBase += dstOffsets[i] * ds;
    args.total *= sizes[i];
    ss *= srcShape[i];
    ds *= dstShape[i];
  }
  if (args.total == 0)
    return;
  unsigned blocks = blocksFor(args.total);
  switch (elemBytes) {
  case 1:
    copyBoxKernel<uint8_t><<<blocks, kThreads, 0, stream>>>(
        static_cast<const uint8_t *>(src), static_cast<uint8_t *>(dst), args);
    break;
  case 2:
    copyBoxKernel<uint16_t><<<blocks, kThreads, 0, stream>>>(
        static_cast<const uint16_t *>(src), static_cast<uint16_t *>(dst), args);
    break;
  case 4:
    copyBoxKernel<uint32_t><<<blocks, kThreads, 0, stream>>>(
        static_cast<const uint32_t *>(src), static_cast<uint32_t *>(dst), args);
    break;
  case 8:
    copyBoxKernel<uint64_t><<<blocks, kThreads, 0, stream>>>(
        static_cast<const uint64_t *>(src), static_cast<uint64_t *>(dst), args);
    break;
  default:
    throw CudaError("copyBox: unsupported element size " +
                    std::to_string(elemBytes));
  }
  LINA_LAUNCH_CHECK();
}

void lina::rt::cuda::gateTopK(const float *logits, int32_t *ids, float *weights,
                              int64_t tokens, int64_t experts, int64_t k,
                              cudaStream_t stream) {
  if (tokens == 0)
    return;
  if (experts < 1 || k < 1 || k > experts || experts > INT_MAX)
    throw CudaError("gateTopK: needs 1 <= k <= experts");
  gateTopKKernel<<<static_cast<unsigned>((tokens + 127) / 128), 128, 0,
                   stream>>>(logits, ids, weights, tokens,
                             static_cast<int>(experts), static_cast<int>(k));
  LINA_LAUNCH_CHECK();
}

void lina::rt::cuda::gateGradLogits(const float *logits, const float *dweights,
                                    const int32_t *ids, float *dlogits,
                                    int64_t tokens, int64_t experts, int64_t k,
                                    cudaStream_t stream) {
  if (tokens == 0)
    return;
  gateGradLogitsKernel<<<static_cast<unsigned>((tokens + 127) / 128), 128, 0,
                         stream>>>(logits, dweights, ids, dlogits, tokens,
                                   static_cast<int>(experts),
                                   static_cast<int>(k));
  LINA_LAUNCH_CHECK();
}

namespace {
/// Workspace of assignSlots: counts and offsets (expert-major, one per
/// expert and chunk), then the scan's temporary storage.
struct SlotWorkspace {
  int64_t chunks = 0, cells = 0;
  size_t countBytes = 0, scanBytes = 0;
  size_t total() const { return 2 * countBytes + scanBytes; }
};

size_t roundUp(size_t bytes) { return (bytes + 255) / 256 * 256; }

SlotWorkspace slotLayout(int64_t tokens, int64_t k, int64_t experts) {
  SlotWorkspace w;
  w.chunks = std::max<int64_t>((tokens * k + kSlotChunk - 1) / kSlotChunk, 1);
  w.cells = w.chunks * experts;
  w.countBytes = roundUp(static_cast<size_t>(w.cells) * sizeof(int32_t));
  // Size query only: no kernel runs.
  LINA_CUDA_CHECK(
      exclusiveSumInt32(nullptr, w.scanBytes, nullptr, nullptr, w.cells, 0));
  w.scanBytes = roundUp(std::max<size_t>(w.scanBytes, 1));
  return w;
}
} // namespace

size_t lina::rt::cuda::slotWorkspaceBytes(int64_t tokens, int64_t k,
                                          int64_t experts) {
  checkSizes(tokens, k, "slotWorkspaceBytes");
  if (experts < 1 || experts > kSlotSharedInts)
    throw CudaError("slotWorkspaceBytes: " + std::to_string(experts) +
                    " experts; the cuda backend supports 1 to " +
                    std::to_string(kSlotSharedInts));
  return slotLayout(tokens, k, experts).total();
}

void lina::rt::cuda::assignSlots(const int32_t *ids, int64_t tokens, int64_t k,
                                 int64_t experts, int64_t capacity,
                                 void *workspace, int32_t *slots, int32_t *kept,
                                 uint32_t *error, cudaStream_t stream) {
  checkSizes(tokens, k, "assignSlots");
  if (experts < 1 || experts > kSlotSharedInts)
    throw CudaError("assignSlots: " + std::to_string(experts) +
                    " experts; the cuda backend supports 1 to " +
                    std::to_string(kSlotSharedInts));
  LINA_CUDA_CHECK(cudaMemsetAsync(error, 0xff, 2 * sizeof(uint32_t), stream));
  int64_t total = tokens * k;
  if (total == 0) {
    if (kept)
      LINA_CUDA_CHECK(
          cudaMemsetAsync(kept, 0, experts * sizeof(int32_t), stream));
    return;
  }
  SlotWorkspace layout = slotLayout(tokens, k, experts);
  int64_t chunks = layout.chunks;
  int warps = static_cast<int>(std::min<int64_t>(4, kSlotSharedInts / experts));
  size_t shared = static_cast<size_t>(warps * experts) * sizeof(int32_t);
  unsigned blocks = static_cast<unsigned>((chunks + warps - 1) / warps);
  char *base = static_cast<char *>(workspace);
  auto *counts = reinterpret_cast<int32_t *>(base);
  auto *offsets = reinterpret_cast<int32_t *>(base + layout.countBytes);
  void *scanTemp = base + 2 * layout.countBytes;
  size_t scanBytes = layout.scanBytes;
  int e = static_cast<int>(experts), kk = static_cast<int>(k);
  slotCountKernel<<<blocks, warps * 32, shared, stream>>>(
      ids, tokens, kk, e, chunks, counts, error);
  LINA_LAUNCH_CHECK();
  // One flat exclusive scan over the expert-major counts (the sum of all
  // counts is at most 2^31 - 1 assignments, so int32 does not overflow).
  LINA_CUDA_CHECK(exclusiveSumInt32(scanTemp, scanBytes, counts, offsets,
                                    layout.cells, stream));
  slotAssignKernel<<<blocks, warps * 32, shared, stream>>>(
      ids, tokens, kk, e, capacity, chunks, offsets, slots);
  LINA_LAUNCH_CHECK();
  if (kept) {
    slotKeptKernel<<<blocksFor(experts, 128), 128, 0, stream>>>(
        counts, offsets, chunks, e, capacity, kept);
    LINA_LAUNCH_CHECK();
  }
  slotErrorKernel<<<1, 1, 0, stream>>>(ids, tokens, kk, error);
  LINA_LAUNCH_CHECK();
}

namespace {
void zeroTail(void *buf, const int32_t *kept, int64_t experts, int64_t capacity,
              int64_t rowBytes, cudaStream_t stream) {
  int64_t rows = experts * capacity;
  if (rows == 0 || rowBytes == 0)
    return;
  unsigned grid = static_cast<unsigned>(std::min<int64_t>(rows, 65535LL * 16));
  zeroTailKernel<<<grid, 128, 0, stream>>>(static_cast<char *>(buf), kept,
                                           experts, capacity, rowBytes);
  LINA_LAUNCH_CHECK();
}
} // namespace

void lina::rt::cuda::dispatch(const void *x, const int32_t *ids,
                              const int32_t *slots, const int32_t *kept,
                              void *buf, DType type, int64_t tokens, int64_t k,
                              int64_t hidden, int64_t experts, int64_t capacity,
                              cudaStream_t stream) {
  checkSizes(tokens, k, "dispatch");
  int64_t rowBytes = hidden * dtypeBytes(type);
  zeroTail(buf, kept, experts, capacity, rowBytes, stream);
  if (tokens * k == 0 || hidden == 0)
    return;
  dispatchKernel<<<static_cast<unsigned>(tokens * k), kThreads, 0, stream>>>(
      static_cast<const char *>(x), ids, slots, static_cast<char *>(buf),
      tokens, static_cast<int>(k), rowBytes, capacity);
  LINA_LAUNCH_CHECK();
}

void lina::rt::cuda::dispatchGrad(const void *dbuf, const int32_t *ids,
                                  const int32_t *slots, void *dx, DType type,
                                  int64_t tokens, int64_t k, int64_t hidden,
                                  int64_t experts, int64_t capacity,
                                  cudaStream_t stream) {
  (void)experts;
  checkSizes(tokens, k, "dispatchGrad");
  if (tokens == 0 || hidden == 0)
    return;
  size_t shared = static_cast<size_t>(k) * (sizeof(int64_t) + sizeof(float));
  LINA_FLOAT_SWITCH(
      type, T,
      combineKernel<T, false>
      <<<static_cast<unsigned>(tokens), kThreads, shared, stream>>>(
          static_cast<const T *>(dbuf), ids, slots, nullptr,
          static_cast<T *>(dx), tokens, static_cast<int>(k), hidden, capacity));
  LINA_LAUNCH_CHECK();
}

void lina::rt::cuda::combine(const void *buf, const int32_t *ids,
                             const int32_t *slots, const float *weights,
                             void *y, DType type, int64_t tokens, int64_t k,
                             int64_t hidden, int64_t experts, int64_t capacity,
                             cudaStream_t stream) {
  (void)experts;
  checkSizes(tokens, k, "combine");
  if (tokens == 0 || hidden == 0)
    return;
  size_t shared = static_cast<size_t>(k) * (sizeof(int64_t) + sizeof(float));
  LINA_FLOAT_SWITCH(
      type, T,
      combineKernel<T, true>
      <<<static_cast<unsigned>(tokens), kThreads, shared, stream>>>(
          static_cast<const T *>(buf), ids, slots, weights, static_cast<T *>(y),
          tokens, static_cast<int>(k), hidden, capacity));
  LINA_LAUNCH_CHECK();
}

void lina::rt::cuda::combineGrad(const void *dy, const void *buf,
                                 const int32_t *ids, const int32_t *slots,
                                 const int32_t *kept, const float *weights,
                                 void *dbuf, float *dweights, DType type,
                                 int64_t tokens, int64_t k, int64_t hidden,
                                 int64_t experts, int64_t capacity,
                                 cudaStream_t stream) {
  checkSizes(tokens, k, "combineGrad");
  zeroTail(dbuf, kept, experts, capacity, hidden * dtypeBytes(type), stream);
  if (tokens * k == 0)
    return;
  LINA_FLOAT_SWITCH(
      type, T,
      combineGradKernel<T>
      <<<static_cast<unsigned>(tokens * k), kThreads, 0, stream>>>(
          static_cast<const T *>(dy), static_cast<const T *>(buf), ids, slots,
          weights, static_cast<T *>(dbuf), dweights, tokens,
          static_cast<int>(k), hidden, capacity));
  LINA_LAUNCH_CHECK();
}
