//===- CommandLine.h - lina-run's options -----------------------*- C++ -*-===//
//
// Part of the Lina project.
//
// One option set for both modes of lina-run (training and --mode infer),
// parsed with CLI11: `--key value` and `--key=value` both work, options of
// the other mode are errors naming them, and every error names the flag
// and the value.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RUN_COMMANDLINE_H
#define LINA_RUN_COMMANDLINE_H

#include "lina/rt/Infer.h"
#include "lina/rt/Plan.h"

#include <cstdint>
#include <string>
#include <vector>

namespace lina::rt::run {

/// The version lina-run reports (--version, --json).
const char *toolVersion();

/// The backends this build of lina-run can run, in the order of the help.
std::vector<std::string> availableBackends();
bool backendAvailable(const std::string &name);

/// Options of --mode train (the default).
struct TrainOptions {
  std::string plan, backend = "cpu", policy = "lina", trace, baseline;
  std::string baselineBackend;
  std::string cluster;       ///< sim: cluster description
  bool bound = false;        ///< sim: print the lower bound instead
  bool linkPriority = false; ///< sim: strict priority on every link
  int steps = 10, warmup = 2;
  int64_t creditBytes = 0;
  bool check = false, dump = false, quiet = false;
  bool pinRouting = true; ///< --check: impose the baseline's routing
  uint64_t seed = 1;
  double timeout = 120, tolerance = 1e-4;
};

enum class Mode { Train, Infer };

struct CommandLine {
  Mode mode = Mode::Train;
  TrainOptions train;        ///< --mode train
  infer::InferOptions infer; ///< --mode infer
  std::string json;          ///< --json FILE; empty: none
  /// The command line as given, the program first.
  std::vector<std::string> args;
  /// Non-empty when --help or --version was given: the text to print, and
  /// nothing to run.
  std::string info;
};

/// A bad command line. The message ends with a usage line; lina-run exits
/// with 2.
class UsageError : public PlanError {
public:
  using PlanError::PlanError;
};

/// Parses lina-run's command line; throws UsageError.
CommandLine parseCommandLine(int argc, const char *const *argv);

} // namespace lina::rt::run

#endif // LINA_RUN_COMMANDLINE_H
