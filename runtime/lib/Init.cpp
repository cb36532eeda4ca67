//===- Init.cpp - Initial values of a plan's buffers ----------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Init.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

using namespace lina::rt;

namespace {
uint64_t fnv1a(const std::string &s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}
} // namespace

void lina::rt::fillRandom(const Buffer &b, int rank, uint64_t seed,
                          float *out) {
  uint64_t h = fnv1a(
      b.name, fnv1a(std::to_string(seed) + ":" + std::to_string(rank) + ":"));
  std::mt19937_64 rng(h);
  double a = 1.0;
  if (b.role == Role::Param && !b.shape.empty()) {
    int64_t fanIn =
        b.shape.size() >= 2 ? b.shape[b.shape.size() - 2] : b.shape[0];
    a = 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(1, fanIn)));
  }
  std::uniform_real_distribution<double> dist(-a, a);
  for (int64_t i = 0, n = b.numElements(); i < n; ++i)
    out[i] = static_cast<float>(dist(rng));
}
