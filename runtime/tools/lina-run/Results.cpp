//===- Results.cpp - lina-run's machine-readable results ------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "Results.h"

#include "lina/rt/OutputFile.h"

#include <CLI/Version.hpp>
#include <cblas.h>
#ifdef LINA_HAVE_MPI
#include <mpi.h>
#endif

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>
#include <unistd.h>

using namespace lina::rt;
using namespace lina::rt::run;
using json = nlohmann::ordered_json;

namespace {

/// `arg` as a POSIX shell reads it back.
std::string shellQuoted(const std::string &arg) {
  bool plain = !arg.empty();
  for (char c : arg)
    plain = plain && (std::isalnum(static_cast<unsigned char>(c)) ||
                      std::string("_-./=:,+@%").find(c) != std::string::npos);
  if (plain)
    return arg;
  std::string out = "'";
  for (char c : arg)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

json versions() {
  json v;
  v["lina"] = toolVersion();
#if defined(__clang__)
  v["compiler"] = "clang " __clang_version__;
#elif defined(__GNUC__)
  v["compiler"] = "gcc " __VERSION__;
#endif
  v["cli11"] = CLI11_VERSION;
  v["nlohmann_json"] = std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "." +
                       std::to_string(NLOHMANN_JSON_VERSION_MINOR) + "." +
                       std::to_string(NLOHMANN_JSON_VERSION_PATCH);
  v["openblas"] = openblas_get_config();
#ifdef LINA_HAVE_MPI
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  MPI_Get_library_version(mpi, &length);
  std::string text(mpi, static_cast<size_t>(std::max(0, length)));
  v["mpi"] = text.substr(0, text.find_first_of("\n,"));
#endif
  v["backends"] = availableBackends();
  return v;
}

std::string utcNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string hostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0)
    return "";
  return buf;
}

} // namespace

json run::resultsHeader(const CommandLine &cl) {
  json r;
  r["format"] = "lina-run-results";
  r["format_version"] = 1;
  r["versions"] = versions();
  r["command"] = cl.args;
  std::string line;
  for (const std::string &a : cl.args)
    line += (line.empty() ? "" : " ") + shellQuoted(a);
  r["command_line"] = line;
  r["host"] = hostName();
  r["date"] = utcNow();
  r["mode"] = cl.mode == Mode::Infer ? "infer" : "train";
  return r;
}

double run::percentile(std::vector<double> values, double p) {
  if (values.empty())
    return 0;
  std::sort(values.begin(), values.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * values.size()));
  return values[std::max<size_t>(rank, 1) - 1];
}

json run::statistics(const std::vector<double> &values) {
  json s;
  s["count"] = values.size();
  if (values.empty())
    return s;
  double sum = 0;
  for (double v : values)
    sum += v;
  double mean = sum / values.size(), squares = 0;
  for (double v : values)
    squares += (v - mean) * (v - mean);
  s["mean"] = mean;
  s["min"] = *std::min_element(values.begin(), values.end());
  s["max"] = *std::max_element(values.begin(), values.end());
  s["stddev"] = std::sqrt(squares / values.size());
  s["p50"] = percentile(values, 50);
  s["p95"] = percentile(values, 95);
  s["p99"] = percentile(values, 99);
  return s;
}

void run::writeResults(const std::string &path, const json &results) {
  writeOutputFile(path, results.dump(2) + "\n", "results");
}
