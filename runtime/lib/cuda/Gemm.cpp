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

#include <climits>

using namespace lina::rt;
using namespace lina::rt::cuda;

namespace {
cudaDataType_t cudaType(DType type) {
  switch (type) {
  case DType::F32: return CUDA_R_32F;
  case DType::BF16: return CUDA_R_16BF;
  case DType::F16: return CUDA_R_16F;
  default: break;
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
    throw CudaError(std::string("gemm: ") + toString(abType) + " inputs with a " +
                    toString(cType) + " result are not supported");
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
          LINA_CUDA_CHECK(cudaMemsetAsync(static_cast<char *>(c) + i * strideC * bytes,
                                          0, m * n * bytes, stream));
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
