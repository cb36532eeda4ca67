//===- Scan.h - Library scans for the cuda backend's kernels ----*- C++ -*-===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_CUDA_SCAN_H
#define LINA_RT_CUDA_SCAN_H

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace lina::rt::cuda {

/// out[i] = in[0] + ... + in[i-1] (out[0] = 0) with cub::DeviceScan on
/// `stream`. With temp == nullptr only sets tempBytes (no kernel runs).
cudaError_t exclusiveSumInt32(void *temp, size_t &tempBytes, const int32_t *in,
                              int32_t *out, int64_t n, cudaStream_t stream);

} // namespace lina::rt::cuda

#endif // LINA_RT_CUDA_SCAN_H
