//===- Scan.cu - Library scans for the cuda backend's kernels -------------===//
//
// Part of the Lina project.
//
// CUB instantiations live in their own translation unit: CUB's kernel
// stubs name ::cuda::std, which a `using namespace lina::rt` (bringing
// lina::rt::cuda into scope) would make ambiguous.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/cuda/Scan.h"

#include <cub/device/device_scan.cuh>

cudaError_t lina::rt::cuda::exclusiveSumInt32(void *temp, size_t &tempBytes,
                                              const int32_t *in, int32_t *out,
                                              int64_t n, cudaStream_t stream) {
  return cub::DeviceScan::ExclusiveSum(temp, tempBytes, in, out, n, stream);
}
