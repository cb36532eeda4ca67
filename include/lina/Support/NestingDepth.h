//===- NestingDepth.h - Bound the bracket nesting of MLIR text --*- C++ -*-===//
//
// Part of the Lina project.
//
// MLIR 19's parser recurses once per nested bracket of an attribute or type
// (`[[[[...`, `tensor<tensor<...`): a few thousand levels overflow the
// stack and the process dies with SIGSEGV, in `mlir-opt` as in `lina-opt`.
// The tools therefore measure the nesting of their input before parsing it
// and reject text deeper than `kMaxMlirNesting` with a message naming the
// line. Real Lina IR nests a handful of levels.
//
// The scan follows MLIR's lexical rules only as far as the depth needs:
// string literals ("..." with backslash escapes) and `//` comments are
// skipped, `->` is not a closing bracket, and a stray closer never makes the
// depth negative. It over-counts rather than under-counts, and it is linear
// in the input.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_SUPPORT_NESTINGDEPTH_H
#define LINA_SUPPORT_NESTINGDEPTH_H

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lina {

/// The deepest bracket nesting ((), [], {}, <>) the MLIR tools accept.
inline constexpr int64_t kMaxMlirNesting = 256;

/// Where the text first nests deeper than the limit.
struct NestingViolation {
  int64_t line = 0;   ///< 1-based line of the bracket that went too deep.
  int64_t column = 0; ///< 1-based column of that bracket.
};

/// The first place where `text` nests deeper than `limit`, or nullopt.
inline std::optional<NestingViolation>
findExcessiveNesting(std::string_view text, int64_t limit = kMaxMlirNesting) {
  int64_t depth = 0, line = 1;
  size_t lineStart = 0;
  for (size_t i = 0, e = text.size(); i < e; ++i) {
    char c = text[i];
    switch (c) {
    case '\n':
      ++line;
      lineStart = i + 1;
      break;
    case '"':
      // A string literal: up to the closing quote or the end of the line.
      for (++i; i < e && text[i] != '"' && text[i] != '\n'; ++i)
        if (text[i] == '\\')
          ++i;
      if (i < e && text[i] == '\n')
        --i; // Let the loop count the line.
      break;
    case '/':
      if (i + 1 < e && text[i + 1] == '/')
        while (i + 1 < e && text[i + 1] != '\n')
          ++i;
      break;
    case '(':
    case '[':
    case '{':
    case '<':
      if (++depth > limit)
        return NestingViolation{line, static_cast<int64_t>(i - lineStart) + 1};
      break;
    case '>':
      if (i > 0 && text[i - 1] == '-')
        break; // `->`
      [[fallthrough]];
    case ')':
    case ']':
    case '}':
      if (depth > 0)
        --depth;
      break;
    default:
      break;
    }
  }
  return std::nullopt;
}

/// The message for a violation, e.g. "input.mlir:3:17: error: ...".
inline std::string describeExcessiveNesting(std::string_view bufferName,
                                            const NestingViolation &v,
                                            int64_t limit = kMaxMlirNesting) {
  return std::string(bufferName) + ":" + std::to_string(v.line) + ":" +
         std::to_string(v.column) + ": error: brackets nest more than " +
         std::to_string(limit) +
         " levels deep; the MLIR parser would exhaust its stack (the limit "
         "is lina::kMaxMlirNesting, docs/LIMITS.md)";
}

} // namespace lina

#endif // LINA_SUPPORT_NESTINGDEPTH_H
