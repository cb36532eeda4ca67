//===- CudaCheck.cpp - Error checks for CUDA, cuBLAS and NCCL -------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/cuda/CudaCheck.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

using namespace lina::rt::cuda;

namespace {
int rankFromEnvironment() {
  for (const char *var : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"})
    if (const char *v = std::getenv(var))
      return std::atoi(v);
  return 0;
}

std::atomic<int> &rankSlot() {
  static std::atomic<int> rank{rankFromEnvironment()};
  return rank;
}

const char *baseName(const char *path) {
  const char *slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}
} // namespace

void lina::rt::cuda::setErrorRank(int rank) { rankSlot() = rank; }
int lina::rt::cuda::errorRank() { return rankSlot(); }

void lina::rt::cuda::throwCallError(const char *library, const char *call,
                                    const std::string &detail, const char *file,
                                    int line) {
  throw CudaError("rank " + std::to_string(errorRank()) + ": " + library +
                  " error at " + baseName(file) + ":" + std::to_string(line) +
                  ": " + call + " failed: " + detail);
}

std::string lina::rt::cuda::describe(cudaError_t err) {
  return std::string(cudaGetErrorString(err)) + " (" + cudaGetErrorName(err) +
         " = " + std::to_string(static_cast<int>(err)) + ")";
}

std::string lina::rt::cuda::describe(cublasStatus_t status) {
  return std::string(cublasGetStatusString(status)) + " (" +
         cublasGetStatusName(status) + " = " +
         std::to_string(static_cast<int>(status)) + ")";
}

std::string lina::rt::cuda::describe(ncclResult_t result) {
  std::string s = std::string(ncclGetErrorString(result)) + " (" +
                  std::to_string(static_cast<int>(result)) + ")";
  const char *last = ncclGetLastError(nullptr);
  if (last && *last)
    s += ": " + std::string(last);
  return s;
}

bool lina::rt::cuda::cudaAvailable(std::string *reason) {
  auto fail = [&](const std::string &why) {
    if (reason)
      *reason = why;
    return false;
  };
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    std::string why = "cudaGetDeviceCount failed: " + describe(err);
    if (err == cudaErrorInsufficientDriver) {
      int driver = 0, runtime = 0;
      cudaDriverGetVersion(&driver);
      cudaRuntimeGetVersion(&runtime);
      why += driver == 0
                 ? "; no NVIDIA driver is installed"
                 : "; the driver supports CUDA " +
                       std::to_string(driver / 1000) + "." +
                       std::to_string(driver % 1000 / 10) +
                       ", this build needs " + std::to_string(runtime / 1000) +
                       "." + std::to_string(runtime % 1000 / 10);
    }
    return fail(why);
  }
  if (count == 0)
    return fail("no CUDA device is visible (check CUDA_VISIBLE_DEVICES)");
  int major = 0, minor = 0;
  err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0);
  if (err != cudaSuccess)
    return fail("cudaDeviceGetAttribute failed: " + describe(err));
  if (major < 8)
    return fail("device 0 has compute capability " + std::to_string(major) +
                "." + std::to_string(minor) +
                "; the cuda backend is built for 8.0 and newer");
  if (reason)
    reason->clear();
  return true;
}
