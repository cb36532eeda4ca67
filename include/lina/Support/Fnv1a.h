//===- Fnv1a.h - FNV-1a hash of bytes ---------------------------*- C++ -*-===//
//
// Part of the Lina project.
//
// The 64-bit FNV-1a hash that the start-up agreement of lina-run compares
// across ranks (plans, traces, profiles, flags). Not cryptographic: it
// detects ranks that were given different files, not tampering.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_SUPPORT_FNV1A_H
#define LINA_SUPPORT_FNV1A_H

#include <cstdint>
#include <string_view>

namespace lina {

inline constexpr uint64_t kFnv1aOffset = 1469598103934665603ull;

/// FNV-1a of `bytes`, continuing from `h` (chain several inputs by passing
/// the previous hash, perturbed so that their boundaries count).
inline uint64_t fnv1a(std::string_view bytes, uint64_t h = kFnv1aOffset) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

} // namespace lina

#endif // LINA_SUPPORT_FNV1A_H
