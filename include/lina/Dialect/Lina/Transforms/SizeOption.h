//===- SizeOption.h - Pass option: a positive integer or 'auto' -*- C++ -*-===//
//
// Part of the Lina project.
//
/// The value of a pass option that is either a positive integer or `auto`
/// (let the cost model choose), e.g. `partition-bytes=31457280`,
/// `partition-bytes=auto`, `chunks=4`, `chunks=auto`; and the
/// llvm::cl::parser that parses and prints it, so that it can be the type of
/// an MLIR pass option (Passes.td) or pass pipeline option.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_DIALECT_LINA_TRANSFORMS_SIZEOPTION_H
#define LINA_DIALECT_LINA_TRANSFORMS_SIZEOPTION_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/raw_ostream.h"

#include <cassert>
#include <cstdint>
#include <optional>

namespace mlir::lina {

/// A positive integer, or `auto`. Default-constructed it is `auto`.
class SizeOption {
public:
  /// `auto`.
  SizeOption() = default;
  /// The positive integer `number`.
  explicit SizeOption(int64_t number) : number(number) {
    assert(number > 0 && "a SizeOption is positive or auto");
  }
  static SizeOption getAuto() { return SizeOption(); }

  /// Parses `auto` or a positive decimal integer that fits int64_t; nullopt
  /// for anything else (zero, negative, other text, overflow).
  static std::optional<SizeOption> parse(llvm::StringRef text);

  bool isAuto() const { return !number; }
  /// The integer of a non-`auto` value.
  int64_t getNumber() const {
    assert(number && "getNumber() on 'auto'");
    return *number;
  }

  bool operator==(const SizeOption &other) const {
    return number == other.number;
  }
  bool operator!=(const SizeOption &other) const { return !(*this == other); }

private:
  std::optional<int64_t> number;
};

/// Prints `auto` or the number, as the option is spelled (this is what
/// --dump-pass-pipeline shows).
llvm::raw_ostream &operator<<(llvm::raw_ostream &os, const SizeOption &value);

} // namespace mlir::lina

namespace llvm::cl {

/// Parses a SizeOption pass option; a bad value is reported with the option
/// name and "expected a positive integer or 'auto'".
template <>
class parser<mlir::lina::SizeOption>
    : public basic_parser<mlir::lina::SizeOption> {
public:
  parser(Option &option) : basic_parser(option) {}

  /// Returns true on error, after reporting it through `option.error`.
  bool parse(Option &option, StringRef argName, StringRef arg,
             mlir::lina::SizeOption &value);

  static void print(raw_ostream &os, const mlir::lina::SizeOption &value) {
    os << value;
  }

  StringRef getValueName() const override { return "positive integer|auto"; }

  void printOptionDiff(const Option &option,
                       const mlir::lina::SizeOption &value,
                       const OptVal &defaultValue, size_t globalWidth) const;

  void anchor() override;
};

} // namespace llvm::cl

#endif // LINA_DIALECT_LINA_TRANSFORMS_SIZEOPTION_H
