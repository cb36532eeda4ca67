//===- Gemm.cpp - Row-major batched GEMMs on cuBLAS -----------------------===//
//
// Part of the Lina project.
//
// cuBLAS is column-major: a row-major C[m,n] = A[m,k] * B[k,n] is the
// column-major C^T[n,m] = B^T[n,k] * A^T[k,m], so the operands are passed
// swapped, with the row-major leading dimensions.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/cuda/CudaCheck.h"
#include "lina/rt/cuda/CudaKernels.h"

#include <algorithm>
#include <climits>

using namespace lina::rt;
using namespace lina::rt::cuda;

namespace {
cudaDataType_t cudaType(DType type) {
  switch (type) {
  case DType::F32:
    return CUDA_R_32F;
  case DType::BF16:
    return CUDA_R_16BF;
  case DType::F16:
    return CUDA_R_16F;
  default:
    break;
  }
  throw CudaError(std::string("gemm: ") + toString(type) +
                  " is not a floating-point type");
}

int toInt(int64_t v, const char *what) {
  if (v < 0 || v > INT_MAX)
    throw CudaError(std::string("gemm: ") + what + " = " + std::to_string(v) +
                    " is outside cuBLAS's int range");
  return static_cast<int>(v);
}
} // namespace

void lina::rt::cuda::gemm(cublasHandle_t handle, bool transA, bool transB,
                          int64_t m, int64_t n, int64_t k, const void *a,
                          const void *b, DType abType, void *c, DType cType,
                          int64_t batch, int64_t strideA, int64_t strideB,
                          int64_t strideC, bool accumulate) {
  if (m == 0 || n == 0 || batch == 0)
    return;
  if (cType != abType && cType != DType::F32)
    throw CudaError(std::string("gemm: ") + toString(abType) +
                    " inputs with a " + toString(cType) +
                    " result are not supported");
  if (k == 0) {
    // cuBLAS leaves C alone for k == 0; the plan's semantics want zeros.
    if (!accumulate) {
      cudaStream_t stream = nullptr;
      LINA_CUBLAS_CHECK(cublasGetStream(handle, &stream));
      int64_t bytes = dtypeBytes(cType);
      if (batch == 1 || strideC == m * n)
        LINA_CUDA_CHECK(cudaMemsetAsync(c, 0, batch * m * n * bytes, stream));
      else
        for (int64_t i = 0; i < batch; ++i)
          LINA_CUDA_CHECK(
              cudaMemsetAsync(static_cast<char *>(c) + i * strideC * bytes, 0,
                              m * n * bytes, stream));
    }
    return;
  }
  float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  int im = toInt(m, "m"), in = toInt(n, "n"), ik = toInt(k, "k");
  int lda = transA ? im : ik, ldb = transB ? ik : in;
  cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (batch == 1) {
    LINA_CUBLAS_CHECK(cublasGemmEx(handle, opB, opA, in, im, ik, &alpha, b,
                                   cudaType(abType), ldb, a, cudaType(abType),
                                   lda, &beta, c, cudaType(cType), in,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return;
  }
  LINA_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      handle, opB, opA, in, im, ik, &alpha, b, cudaType(abType), ldb, strideB,
      a, cudaType(abType), lda, strideA, &beta, c, cudaType(cType), in, strideC,
      toInt(batch, "batch"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

size_t lina::rt::cuda::groupedGemmScratchBytes(int64_t groups) {
  return static_cast<size_t>(std::max<int64_t>(groups, 1)) * 3 * sizeof(void *);
}

void lina::rt::cuda::groupedGemm(cublasHandle_t handle,
                                 const std::vector<int64_t> &rows, int64_t n,
                                 int64_t k, const void *a, int64_t strideA,
                                 const void *b, int64_t strideB, DType type,
                                 void *c, int64_t strideC, void *scratch) {
  // Row-major C_g = A_g B_g is column-major C_g^T = B_g^T A_g^T: each
  // expert is a group of one problem (m = n, n = rows[g], k) with B_g as
  // the first operand. Experts without rows are left out.
  cudaDataType_t t = cudaType(type);
  size_t es = static_cast<size_t>(dtypeBytes(type));
  int in = toInt(n, "n"), ik = toInt(k, "k");
  std::vector<cublasOperation_t> ops;
  std::vector<int> ms, ns, ks, lda, ldb, ldc, sizes;
  std::vector<float> alpha, beta;
  std::vector<const void *> first, second;
  std::vector<void *> out;
  for (size_t g = 0; g < rows.size(); ++g) {
    if (rows[g] == 0)
      continue;
    ms.push_back(in);
    ns.push_back(toInt(rows[g], "rows"));
    ks.push_back(ik);
    ldb.push_back(ik); // A_g^T: k x rows, leading dimension k
    lda.push_back(in); // B_g^T: n x k, leading dimension n
    ldc.push_back(in);
    sizes.push_back(1);
    alpha.push_back(1.0f);
    beta.push_back(0.0f);
    ops.push_back(CUBLAS_OP_N);
    first.push_back(static_cast<const char *>(b) + g * strideB * es);
    second.push_back(static_cast<const char *>(a) + g * strideA * es);
    out.push_back(static_cast<char *>(c) + g * strideC * es);
  }
  if (ms.empty() || n == 0)
    return;
  if (k == 0) {
    // As in gemm(): the plan's semantics want zeros.
    cudaStream_t stream = nullptr;
    LINA_CUBLAS_CHECK(cublasGetStream(handle, &stream));
    for (size_t i = 0; i < out.size(); ++i)
      LINA_CUDA_CHECK(cudaMemsetAsync(
          out[i], 0, static_cast<size_t>(ns[i]) * n * es, stream));
    return;
  }
  // The operand pointers must be in device memory (the shapes, scalars and
  // group sizes are read on the host).
  int groups = static_cast<int>(ms.size());
  std::vector<void *> host;
  for (const void *p : first)
    host.push_back(const_cast<void *>(p));
  for (const void *p : second)
    host.push_back(const_cast<void *>(p));
  host.insert(host.end(), out.begin(), out.end());
  cudaStream_t stream = nullptr;
  LINA_CUBLAS_CHECK(cublasGetStream(handle, &stream));
  auto **dev = static_cast<void **>(scratch);
  // Pageable source: the copy is staged before cudaMemcpyAsync returns, so
  // `host` may go out of scope afterwards.
  LINA_CUDA_CHECK(cudaMemcpyAsync(dev, host.data(),
                                  host.size() * sizeof(void *),
                                  cudaMemcpyHostToDevice, stream));
  LINA_CUBLAS_CHECK(cublasGemmGroupedBatchedEx(
      handle, ops.data(), ops.data(), ms.data(), ns.data(), ks.data(),
      alpha.data(), dev, t, lda.data(), dev + groups, t, ldb.data(),
      beta.data(), dev + 2 * groups, t, ldc.data(), groups, sizes.data(),
      CUBLAS_COMPUTE_32F));
}
