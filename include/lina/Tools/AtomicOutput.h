//===- AtomicOutput.h - Replace a tool's -o file only on success -*- C++
//-*-===//
//
// Part of the Lina project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The MLIR tool mains open their `-o FILE` at start-up, truncating it, and
// delete it when the run fails, so a failed run destroys a good output of an
// earlier one. `runWithAtomicOutput` gives the tool a fresh temporary file
// next to FILE instead and renames it over FILE only when the tool succeeds:
// a failed or interrupted run leaves an existing FILE untouched, and a
// reader never sees a half-written one.
//
// Outputs that are not regular files (`-`, /dev/null, a FIFO) are passed
// through unchanged, as are command lines with response files (`@args`) or
// more than one `-o`, which the tool itself then handles or rejects.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_TOOLS_ATOMICOUTPUT_H
#define LINA_TOOLS_ATOMICOUTPUT_H

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>
#include <string>
#include <vector>

namespace lina {

/// The index in `argv` of the output file name of the `-o FILE`, `-o=FILE`,
/// `--o FILE` or `--o=FILE` option, and the prefix before the name in that
/// argument ("" or "-o=" / "--o="). std::nullopt when there is no single
/// such option before a `--`, or when a response file is used.
struct OutputArg {
  int index;
  std::string prefix;
};

inline std::optional<OutputArg> findOutputArg(int argc, char **argv) {
  std::optional<OutputArg> found;
  for (int i = 1; i < argc; ++i) {
    llvm::StringRef arg(argv[i]);
    if (arg == "--")
      break;
    if (arg.starts_with("@"))
      return std::nullopt;
    std::optional<OutputArg> here;
    if (arg == "-o" || arg == "--o") {
      if (i + 1 >= argc)
        return std::nullopt;
      here = OutputArg{i + 1, ""};
    } else if (arg.starts_with("-o=") || arg.starts_with("--o=")) {
      here = OutputArg{i, arg.substr(0, arg.find('=') + 1).str()};
    }
    if (!here)
      continue;
    if (found)
      return std::nullopt;
    found = here;
    if (here->prefix.empty())
      ++i; // Skip the value.
  }
  return found;
}

/// Runs `toolMain(argc, argv)` with its output redirected to a temporary
/// file that replaces the real output only when `toolMain` returns 0.
inline int runWithAtomicOutput(int argc, char **argv,
                               llvm::function_ref<int(int, char **)> toolMain) {
  std::optional<OutputArg> out = findOutputArg(argc, argv);
  if (!out)
    return toolMain(argc, argv);
  std::string target =
      llvm::StringRef(argv[out->index]).drop_front(out->prefix.size()).str();
  llvm::sys::fs::file_status status;
  if (target.empty() || target == "-" ||
      (!llvm::sys::fs::status(target, status) &&
       status.type() != llvm::sys::fs::file_type::regular_file))
    return toolMain(argc, argv);

  // The temporary file lives in the target's directory, so that the final
  // rename is atomic (same file system).
  int fd = -1;
  llvm::SmallString<256> temp;
  if (std::error_code ec =
          llvm::sys::fs::createUniqueFile(target + ".tmp-%%%%%%%%", fd, temp)) {
    llvm::errs() << "error: cannot write the output file '" << target
                 << "': " << ec.message() << "\n";
    return 1;
  }
  llvm::sys::fs::closeFile(fd);

  std::string replaced = out->prefix + std::string(temp.str());
  std::vector<char *> args(argv, argv + argc);
  args[out->index] = replaced.data();
  args.push_back(nullptr);
  int rc = toolMain(argc, args.data());
  if (rc != 0) {
    llvm::sys::fs::remove(temp);
    return rc;
  }
  if (std::error_code ec = llvm::sys::fs::rename(temp, target)) {
    llvm::errs() << "error: cannot replace the output file '" << target
                 << "': " << ec.message() << "\n";
    llvm::sys::fs::remove(temp);
    return 1;
  }
  return 0;
}

} // namespace lina

#endif // LINA_TOOLS_ATOMICOUTPUT_H
