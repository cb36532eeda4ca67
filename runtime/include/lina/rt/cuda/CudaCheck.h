//===- CudaCheck.h - Error checks for CUDA, cuBLAS and NCCL -----*- C++ -*-===//
//
// Part of the Lina project.
//
// LINA_CUDA_CHECK, LINA_CUBLAS_CHECK and LINA_NCCL_CHECK evaluate their
// argument exactly once and, unless it reports success, throw a CudaError
// whose message names the rank, file:line, the failed call and the
// library's own error string:
//   rank 3: CUDA error at CudaBackend.cpp:120: cudaMalloc(&p, bytes)
//   failed: out of memory (cudaErrorMemoryAllocation)
// cudaAvailable() tells whether this process can use a GPU at all and, if
// not, why (no device, no or too old a driver, too old a device).
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_CUDA_CUDACHECK_H
#define LINA_RT_CUDA_CUDACHECK_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <stdexcept>
#include <string>

namespace lina::rt::cuda {

/// A failed CUDA, cuBLAS or NCCL call.
class CudaError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// No usable GPU in this process (the message says why).
class NoGpuError : public CudaError {
public:
  using CudaError::CudaError;
};

/// Sets the rank named in error messages (default: from the launcher's
/// environment, OMPI_COMM_WORLD_RANK, PMI_RANK or SLURM_PROCID, else 0).
void setErrorRank(int rank);
int errorRank();

/// Throws CudaError for a failed call; used by the macros below.
[[noreturn]] void throwCallError(const char *library, const char *call,
                                 const std::string &detail, const char *file,
                                 int line);
std::string describe(cudaError_t err);
std::string describe(cublasStatus_t status);
std::string describe(ncclResult_t result);

/// True if a GPU of compute capability >= 8.0 can be used; otherwise false
/// and `*reason` (if given) says why, e.g. "cudaGetDeviceCount failed:
/// CUDA driver version is insufficient for CUDA runtime version
/// (cudaErrorInsufficientDriver = 35)".
bool cudaAvailable(std::string *reason = nullptr);

} // namespace lina::rt::cuda

#define LINA_CUDA_CHECK(call)                                                  \
  do {                                                                         \
    cudaError_t linaCudaErr_ = (call);                                         \
    if (linaCudaErr_ != cudaSuccess)                                           \
      ::lina::rt::cuda::throwCallError(                                        \
          "CUDA", #call, ::lina::rt::cuda::describe(linaCudaErr_), __FILE__,   \
          __LINE__);                                                           \
  } while (0)

#define LINA_CUBLAS_CHECK(call)                                                \
  do {                                                                         \
    cublasStatus_t linaBlasErr_ = (call);                                      \
    if (linaBlasErr_ != CUBLAS_STATUS_SUCCESS)                                 \
      ::lina::rt::cuda::throwCallError(                                        \
          "cuBLAS", #call, ::lina::rt::cuda::describe(linaBlasErr_), __FILE__, \
          __LINE__);                                                           \
  } while (0)

#define LINA_NCCL_CHECK(call)                                                  \
  do {                                                                         \
    ncclResult_t linaNcclErr_ = (call);                                        \
    if (linaNcclErr_ != ncclSuccess)                                           \
      ::lina::rt::cuda::throwCallError(                                        \
          "NCCL", #call, ::lina::rt::cuda::describe(linaNcclErr_), __FILE__,   \
          __LINE__);                                                           \
  } while (0)

#endif // LINA_RT_CUDA_CUDACHECK_H
