//===- FuzzerUtil.h - Shared helpers of the Lina fuzz targets ---*- C++ -*-===//
//
// Part of the Lina project.
//
// Every fuzz target defines LLVMFuzzerTestOneInput. A loader is expected to
// accept the input or reject it with its documented error; anything else (a
// sanitizer report, an unexpected exception, a timeout, running out of
// memory, a result that breaks the loader's own guarantees) is a finding.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_FUZZ_FUZZERUTIL_H
#define LINA_FUZZ_FUZZERUTIL_H

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace lina::fuzz {

/// The input as text (loaders read files into strings).
inline std::string asText(const uint8_t *data, size_t size) {
  return std::string(reinterpret_cast<const char *>(data), size);
}

/// Reports a broken invariant and aborts, so that libFuzzer (or the replay
/// driver under ctest) records the input as a crash.
[[noreturn]] inline void fail(const char *target, const std::string &what) {
  std::fprintf(stderr, "%s: %s\n", target, what.c_str());
  std::fflush(stderr);
  std::abort();
}

/// Checks that a rejection comes with a message a user can act on.
inline void checkMessage(const char *target, const std::string &message) {
  if (message.empty())
    fail(target, "input rejected with an empty error message");
}

} // namespace lina::fuzz

#endif // LINA_FUZZ_FUZZERUTIL_H
