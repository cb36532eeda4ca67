//===- CheckedMath.h - Overflow-checked size arithmetic ---------*- C++ -*-===//
//
// Part of the Lina project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The one helper every size, offset and count in Lina is computed with: the
// compiler's verifiers and plan emitter, the plan loader, the runtime and the
// simulator. Plain C++17, header-only, no LLVM dependency.
//
// Every operation returns std::nullopt on overflow instead of wrapping, and
// the documented limits (docs/LIMITS.md) are enforced through `checkLimit`.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_SUPPORT_CHECKEDMATH_H
#define LINA_SUPPORT_CHECKEDMATH_H

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>

namespace lina {

/// Documented upper limits (docs/LIMITS.md). Inputs beyond them are rejected
/// with a message that names the quantity and the limit.
struct Limits {
  /// Ranks (devices) in a grid or a plan.
  static constexpr int64_t kMaxRanks = int64_t(1) << 20;
  /// Experts in one MoE layer.
  static constexpr int64_t kMaxExperts = int64_t(1) << 20;
  /// Elements of one tensor or buffer (2^48, far beyond any device memory).
  static constexpr int64_t kMaxElements = int64_t(1) << 48;
  /// Rows of expert capacity per expert.
  static constexpr int64_t kMaxCapacity = int64_t(1) << 40;
  /// Bytes of one buffer or one collective.
  static constexpr int64_t kMaxBytes = int64_t(1) << 52;
  /// Rank of a tensor.
  static constexpr int64_t kMaxTensorRank = 16;
};

/// a + b, or nullopt on signed overflow.
inline std::optional<int64_t> checkedAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    return std::nullopt;
  return r;
}

/// a - b, or nullopt on signed overflow.
inline std::optional<int64_t> checkedSub(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r))
    return std::nullopt;
  return r;
}

/// a * b, or nullopt on signed overflow.
inline std::optional<int64_t> checkedMul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r))
    return std::nullopt;
  return r;
}

/// The product of a range of non-negative extents, or nullopt if any extent
/// is negative or the product overflows int64_t. The empty product is 1.
template <typename Range>
inline std::optional<int64_t> checkedProduct(const Range &extents) {
  int64_t r = 1;
  for (auto e : extents) {
    int64_t v = static_cast<int64_t>(e);
    if (v < 0 || __builtin_mul_overflow(r, v, &r))
      return std::nullopt;
  }
  return r;
}

inline std::optional<int64_t>
checkedProduct(std::initializer_list<int64_t> extents) {
  return checkedProduct<std::initializer_list<int64_t>>(extents);
}

/// True when [offset, offset + size) lies inside [0, extent), computed
/// without overflow. Negative offsets or sizes are out of range.
inline bool rangeWithin(int64_t offset, int64_t size, int64_t extent) {
  if (offset < 0 || size < 0 || extent < 0)
    return false;
  auto end = checkedAdd(offset, size);
  return end && *end <= extent;
}

/// Ceil(a / b) for a >= 0, b > 0 without overflow.
inline int64_t ceilDiv(int64_t a, int64_t b) { return a / b + (a % b != 0); }

/// A double that is finite and exactly representable as an int64_t in
/// [lo, hi]; nullopt otherwise (NaN, infinities, fractions, out of range).
inline std::optional<int64_t> exactInteger(double v, int64_t lo, int64_t hi) {
  if (!std::isfinite(v) || v != std::floor(v))
    return std::nullopt;
  // 2^63 is exactly representable as a double; anything >= it is too big.
  if (v >= 9223372036854775808.0 || v < -9223372036854775808.0)
    return std::nullopt;
  int64_t i = static_cast<int64_t>(v);
  if (i < lo || i > hi)
    return std::nullopt;
  return i;
}

/// An empty string when 0 <= value <= limit, else a message
/// "<what> is <value>; the limit is <limit>" (or "must not be negative").
inline std::string checkLimit(const char *what, int64_t value, int64_t limit) {
  if (value < 0)
    return std::string(what) + " is " + std::to_string(value) +
           "; it must not be negative";
  if (value > limit)
    return std::string(what) + " is " + std::to_string(value) +
           "; the limit is " + std::to_string(limit);
  return {};
}

} // namespace lina

#endif // LINA_SUPPORT_CHECKEDMATH_H
