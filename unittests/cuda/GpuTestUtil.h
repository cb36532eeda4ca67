//===- GpuTestUtil.h - Helpers of the cuda unit tests -----------*- C++ -*-===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_UNITTESTS_CUDA_GPUTESTUTIL_H
#define LINA_UNITTESTS_CUDA_GPUTESTUTIL_H

#include "lina/rt/cuda/CudaCheck.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace lina::rt::cuda::test {

/// Skips the calling test, visibly, where no usable GPU is present.
#define LINA_REQUIRE_GPU()                                                     \
  do {                                                                         \
    std::string linaNoGpuReason_;                                              \
    if (!::lina::rt::cuda::cudaAvailable(&linaNoGpuReason_))                   \
      GTEST_SKIP() << "no CUDA GPU: " << linaNoGpuReason_;                     \
  } while (0)

/// bf16 <-> f32 on the host (round to nearest even).
inline uint16_t toBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}
inline float fromBf16(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline std::vector<float> uniform(size_t n, float lo, float hi, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

/// Device memory owned by a test; freed at the end of the test.
class DeviceArena {
public:
  ~DeviceArena() {
    for (void *p : blocks)
      cudaFree(p);
  }
  template <typename T> T *alloc(size_t n, int fillByte = 0x7f) {
    void *p = nullptr;
    LINA_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)));
    LINA_CUDA_CHECK(
        cudaMemset(p, fillByte, std::max<size_t>(n, 1) * sizeof(T)));
    blocks.push_back(p);
    return static_cast<T *>(p);
  }
  template <typename T> T *upload(const std::vector<T> &host) {
    T *p = alloc<T>(host.size());
    LINA_CUDA_CHECK(cudaMemcpy(p, host.data(), host.size() * sizeof(T),
                               cudaMemcpyHostToDevice));
    return p;
  }
  template <typename T> std::vector<T> download(const T *p, size_t n) {
    std::vector<T> host(n);
    LINA_CUDA_CHECK(cudaDeviceSynchronize());
    LINA_CUDA_CHECK(
        cudaMemcpy(host.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

private:
  std::vector<void *> blocks;
};

/// Max over i of |a-b| / (abs + rel*|b|); <= 1 means within tolerance.
inline double worstError(const std::vector<float> &got,
                         const std::vector<float> &want, double abs,
                         double rel) {
  EXPECT_EQ(got.size(), want.size());
  double worst = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    double err = std::abs(double(got[i]) - double(want[i]));
    if (!std::isfinite(got[i]))
      err = INFINITY;
    worst = std::max(worst, err / (abs + rel * std::abs(double(want[i]))));
  }
  return worst;
}

} // namespace lina::rt::cuda::test

#endif // LINA_UNITTESTS_CUDA_GPUTESTUTIL_H
