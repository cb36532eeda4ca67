//===- lina-translate.cpp - Lina translation driver -----------------------===//
//
// Part of the Lina project.
//
// `lina-translate --lina-to-plan in.mlir -o plan.json` emits the executable
// plan of scheduled lina IR (docs/PLAN.md). `lina-run PLAN --dump` prints a
// plan as a readable table. The `-o` file is replaced only when the
// translation succeeds, and input that nests brackets deeper than the
// parser's stack allows is an error, not a crash (lina/Support/NestingDepth.h).
//
//===----------------------------------------------------------------------===//

#include "lina/Support/NestingDepth.h"
#include "lina/Target/Plan/PlanEmitter.h"
#include "lina/Tools/AtomicOutput.h"

#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdio>
#include <unistd.h>

namespace {

/// The input file named on the command line: the one argument that is
/// neither an option nor the value of `-o`; "-" (standard input) when there
/// is none. nullopt when it cannot be told (response files, several
/// positional arguments): the translator then reports the command line.
std::optional<std::string> findInputArg(int argc, char **argv) {
  std::optional<std::string> input;
  bool positionalOnly = false;
  for (int i = 1; i < argc; ++i) {
    llvm::StringRef arg(argv[i]);
    if (!positionalOnly && arg == "--") {
      positionalOnly = true;
      continue;
    }
    if (!positionalOnly && arg.starts_with("@"))
      return std::nullopt;
    if (!positionalOnly && arg.size() > 1 && arg.starts_with("-")) {
      if (arg == "-o" || arg == "--o")
        ++i;
      continue;
    }
    if (input)
      return std::nullopt;
    input = arg.str();
  }
  return input ? input : std::optional<std::string>("-");
}

/// Checks the nesting of the input before the translator parses it. A file
/// is read here and again by the translator; standard input is read here
/// into an anonymous temporary file that then becomes standard input.
/// Returns false after printing the error.
bool checkInputNesting(int argc, char **argv) {
  // Only a translation reads its input (`--help` and friends do not: a
  // terminal must not be read here).
  bool translates = false;
  for (int i = 1; i < argc; ++i) {
    llvm::StringRef arg = llvm::StringRef(argv[i]).ltrim('-');
    if (arg.starts_with("help") || arg.starts_with("version") ||
        arg.starts_with("print-"))
      return true;
    translates |= arg == "lina-to-plan";
  }
  std::optional<std::string> input = findInputArg(argc, argv);
  if (!translates || !input)
    return true;
  bool fromStdin = *input == "-";
  auto buffer = fromStdin ? llvm::MemoryBuffer::getSTDIN()
                          : llvm::MemoryBuffer::getFile(*input);
  if (!buffer)
    return true; // The translator reports the unreadable file.
  llvm::StringRef text = (*buffer)->getBuffer();
  if (auto deep = lina::findExcessiveNesting(
          std::string_view(text.data(), text.size()))) {
    llvm::errs() << lina::describeExcessiveNesting(
                        fromStdin ? "<stdin>" : *input, *deep)
                 << "\n";
    return false;
  }
  if (!fromStdin)
    return true;
  std::FILE *copy = std::tmpfile();
  if (!copy || std::fwrite(text.data(), 1, text.size(), copy) != text.size() ||
      std::fflush(copy) != 0 || std::fseek(copy, 0, SEEK_SET) != 0 ||
      dup2(fileno(copy), STDIN_FILENO) < 0) {
    llvm::errs() << "lina-translate: error: cannot keep standard input in a "
                    "temporary file\n";
    return false;
  }
  return true; // `copy` stays open as standard input until exit.
}

} // namespace

int main(int argc, char **argv) {
  mlir::lina::registerToPlanTranslation();
  return lina::runWithAtomicOutput(argc, argv, [](int n, char **args) {
    if (!checkInputNesting(n, args))
      return 1;
    return mlir::failed(
               mlir::mlirTranslateMain(n, args, "Lina translation driver"))
               ? 1
               : 0;
  });
}
