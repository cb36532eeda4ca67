//===- RandomUtil.h - Portable deterministic random numbers -----*- C++ -*-===//
//
// Part of the Lina project.
//
// SplitMix64: the same stream on every platform and standard library, so
// that a synthetic trace is reproducible from its seed anywhere (the
// distributions of <random> are implementation-defined).
//
//===----------------------------------------------------------------------===//

#ifndef LINA_LIB_SUPPORT_RANDOMUTIL_H
#define LINA_LIB_SUPPORT_RANDOMUTIL_H

#include <cstdint>

namespace lina::detail {

class SplitMix64 {
public:
  explicit SplitMix64(uint64_t seed) : state(seed) {}

  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform integer in [0, n), n > 0.
  int below(int n) {
    return static_cast<int>(next() % static_cast<uint64_t>(n));
  }

private:
  uint64_t state;
};

} // namespace lina::detail

#endif // LINA_LIB_SUPPORT_RANDOMUTIL_H
