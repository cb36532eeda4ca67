//===- SizeOption.cpp - Pass option: a positive integer or 'auto' ---------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/Transforms/SizeOption.h"

using namespace mlir::lina;

std::optional<SizeOption> SizeOption::parse(llvm::StringRef text) {
  if (text == "auto")
    return SizeOption::getAuto();
  int64_t number = 0;
  // getAsInteger fails on empty text, trailing characters and overflow, and
  // accepts a leading minus sign, which the check below rejects.
  if (text.getAsInteger(10, number) || number <= 0)
    return std::nullopt;
  return SizeOption(number);
}

llvm::raw_ostream &mlir::lina::operator<<(llvm::raw_ostream &os,
                                          const SizeOption &value) {
  if (value.isAuto())
    return os << "auto";
  return os << value.getNumber();
}

bool llvm::cl::parser<SizeOption>::parse(Option &option, StringRef argName,
                                         StringRef arg, SizeOption &value) {
  if (std::optional<SizeOption> parsed = SizeOption::parse(arg)) {
    value = *parsed;
    return false;
  }
  return option.error("invalid value '" + arg +
                          "': expected a positive integer or 'auto'",
                      argName);
}

void llvm::cl::parser<SizeOption>::printOptionDiff(const Option &option,
                                                   const SizeOption &value,
                                                   const OptVal &defaultValue,
                                                   size_t globalWidth) const {
  printOptionName(option, globalWidth);
  outs() << "= " << value;
  if (defaultValue.hasValue())
    outs().indent(2) << " (default: " << defaultValue.getValue() << ")";
  outs() << "\n";
}

void llvm::cl::parser<SizeOption>::anchor() {}
