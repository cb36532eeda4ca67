//===- Results.h - lina-run's machine-readable results ----------*- C++ -*-===//
//
// Part of the Lina project.
//
// `lina-run --json FILE` writes what the run measured as one JSON object
// (docs/RUNTIME.md lists the keys): the tool's and libraries' versions, the
// command line, the mode, plan, world size and backend, the per-step or
// per-batch times with their statistics, and the summary line's values
// under "summary", with the summary line's names.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RUN_RESULTS_H
#define LINA_RUN_RESULTS_H

#include "CommandLine.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace lina::rt::run {

/// The fields every results file starts with: format, versions, command
/// line, host, date and mode.
nlohmann::ordered_json resultsHeader(const CommandLine &cl);

/// The `p`-th percentile of `values` by the nearest-rank method; 0 when
/// there are none.
double percentile(std::vector<double> values, double p);

/// count, mean, min, max, stddev, p50, p95 and p99 of `values`.
nlohmann::ordered_json statistics(const std::vector<double> &values);

/// Writes `results` to `path` atomically (writeOutputFile); throws
/// OutputError naming the file.
void writeResults(const std::string &path,
                  const nlohmann::ordered_json &results);

} // namespace lina::rt::run

#endif // LINA_RUN_RESULTS_H
