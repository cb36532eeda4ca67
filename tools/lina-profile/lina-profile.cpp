//===- lina-profile.cpp - Routing profiles and synthetic traces -----------===//
//
// Part of the Lina project.
//
// lina-profile TRACE.jsonl [--path-length L] [--experts E] [--layers N]
//              -o PROFILE.json
//   Reads a routing trace (one JSON record per token and layer) and writes
//   its profile: per layer expert popularity and, for paths of up to L
//   layers, the next layer's expert distribution (docs/INFERENCE.md).
//
// lina-profile --synthesize --layers L --experts E --top-k K --requests R
//              --tokens-per-request T --zipf S --stickiness P --seed X
//              -o TRACE.jsonl
//   Writes a synthetic trace with Zipf-skewed popularity and inter-layer
//   stickiness, for tests and benchmarks.
//
//===----------------------------------------------------------------------===//

#include "lina/Analysis/Profile.h"
#include "lina/Analysis/RoutingTrace.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

using namespace lina;

namespace {
const char *kUsage =
    "usage: lina-profile TRACE.jsonl [--path-length L] [--experts E] "
    "[--layers N] -o PROFILE.json\n"
    "       lina-profile --synthesize --layers L --experts E --top-k K "
    "--requests R\n"
    "                    --tokens-per-request T [--zipf S] [--stickiness P] "
    "[--seed X] [--model-seed M] -o TRACE.jsonl\n"
    "  --path-length L          profile paths of up to L layers (default 3)\n"
    "  --experts E              experts per layer (profile: check ids against "
    "it; default: largest id + 1)\n"
    "  --layers N               MoE layers (profile: check against it; "
    "default: largest layer + 1)\n"
    "  --synthesize             write a synthetic trace instead\n"
    "  --top-k K                experts per token and layer (synthesize)\n"
    "  --requests R             requests (synthesize)\n"
    "  --tokens-per-request T   tokens per request (synthesize)\n"
    "  --zipf S                 Zipf exponent of expert popularity "
    "(synthesize, default 1.0)\n"
    "  --stickiness P           probability of keeping the previous layer's "
    "top-1 expert (synthesize, default 0)\n"
    "  --seed X                 seed of the tokens' draws (synthesize, "
    "default 1)\n"
    "  --model-seed M           seed of the experts' popularity order per "
    "layer\n"
    "                           (synthesize, default 1): same M, different X "
    "gives\n"
    "                           training and evaluation splits of one model\n"
    "  -o FILE                  output file\n"
    "  --quiet                  no summary on stdout\n";

int fail(const std::string &msg) {
  std::fprintf(stderr, "lina-profile: error: %s\n", msg.c_str());
  return 1;
}

bool parseInt(const std::string &flag, const std::string &v, long long lo,
              long long &out, std::string &error) {
  errno = 0;
  char *end = nullptr;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || errno || x < lo || x > (1ll << 31) - 1) {
    error = "invalid value '" + v + "' for " + flag + " (an integer >= " +
            std::to_string(lo) + ")";
    return false;
  }
  out = x;
  return true;
}

bool parseReal(const std::string &flag, const std::string &v, double &out,
               std::string &error) {
  char *end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || !std::isfinite(x)) {
    error = "invalid value '" + v + "' for " + flag + " (a number)";
    return false;
  }
  out = x;
  return true;
}

/// Prints the skew of each layer: the hottest expert's share and its ratio
/// to the mean share.
void printSummary(const Profile &p) {
  std::printf("profile: %lld tokens, %d layers, %d experts, top-%d, path "
              "length %d\n",
              static_cast<long long>(p.numTokens), p.numLayers, p.numExperts,
              p.topK, p.pathLength);
  for (int l = 0; l < p.numLayers; ++l) {
    const auto &pop = p.popularity[l];
    int hot = static_cast<int>(std::max_element(pop.begin(), pop.end()) -
                               pop.begin());
    size_t paths = p.transitions[l].size();
    std::printf("layer %d: hottest expert %d share %.4f (%.2fx mean), %zu "
                "paths\n",
                l, hot, pop[hot], pop[hot] * p.numExperts, paths);
  }
}
} // namespace

int main(int argc, char **argv) {
  std::string input, output, error;
  bool synthesize = false, quiet = false;
  bool haveLayers = false, haveExperts = false, haveTopK = false,
       haveRequests = false, haveTokens = false;
  long long pathLength = 3, layers = 0, experts = 0;
  SynthesisOptions syn;
  std::vector<std::string> synthOnly;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string &out) {
      if (i + 1 >= argc) {
        error = "missing value for " + a;
        return false;
      }
      out = argv[++i];
      return true;
    };
    std::string v;
    long long n = 0;
    if (a == "--help" || a == "-h") {
      std::printf("%s", kUsage);
      return 0;
    }
    if (a == "--synthesize") {
      synthesize = true;
    } else if (a == "--quiet") {
      quiet = true;
    } else if (a == "-o") {
      if (!value(output))
        return fail(error);
    } else if (a == "--path-length") {
      if (!value(v) || !parseInt(a, v, 0, pathLength, error))
        return fail(error);
    } else if (a == "--layers") {
      if (!value(v) || !parseInt(a, v, 1, layers, error))
        return fail(error);
      haveLayers = true;
    } else if (a == "--experts") {
      if (!value(v) || !parseInt(a, v, 1, experts, error))
        return fail(error);
      haveExperts = true;
    } else if (a == "--top-k") {
      if (!value(v) || !parseInt(a, v, 1, n, error))
        return fail(error);
      syn.topK = static_cast<int>(n);
      haveTopK = true;
      synthOnly.push_back(a);
    } else if (a == "--requests") {
      if (!value(v) || !parseInt(a, v, 1, n, error))
        return fail(error);
      syn.requests = static_cast<int>(n);
      haveRequests = true;
      synthOnly.push_back(a);
    } else if (a == "--tokens-per-request") {
      if (!value(v) || !parseInt(a, v, 1, n, error))
        return fail(error);
      syn.tokensPerRequest = static_cast<int>(n);
      haveTokens = true;
      synthOnly.push_back(a);
    } else if (a == "--zipf") {
      if (!value(v) || !parseReal(a, v, syn.zipf, error))
        return fail(error);
      synthOnly.push_back(a);
    } else if (a == "--stickiness") {
      if (!value(v) || !parseReal(a, v, syn.stickiness, error))
        return fail(error);
      synthOnly.push_back(a);
    } else if (a == "--seed") {
      if (!value(v) || !parseInt(a, v, 0, n, error))
        return fail(error);
      syn.seed = static_cast<uint64_t>(n);
      synthOnly.push_back(a);
    } else if (a == "--model-seed") {
      if (!value(v) || !parseInt(a, v, 0, n, error))
        return fail(error);
      syn.modelSeed = static_cast<uint64_t>(n);
      synthOnly.push_back(a);
    } else if (!a.empty() && a[0] == '-') {
      return fail("unknown option '" + a + "'\n" + kUsage);
    } else if (input.empty()) {
      input = a;
    } else {
      return fail("more than one trace given ('" + input + "' and '" + a +
                  "')");
    }
  }
  if (output.empty())
    return fail("no output file given (-o FILE)\n" + std::string(kUsage));

  if (synthesize) {
    if (!input.empty())
      return fail("--synthesize takes no input trace (got '" + input + "')");
    if (!haveLayers || !haveExperts || !haveTopK || !haveRequests ||
        !haveTokens)
      return fail("--synthesize needs --layers, --experts, --top-k, "
                  "--requests and --tokens-per-request");
    syn.layers = static_cast<int>(layers);
    syn.experts = static_cast<int>(experts);
    std::optional<RoutingTrace> trace = synthesizeTrace(syn, error);
    if (!trace)
      return fail(error);
    if (!writeRoutingTrace(*trace, output, error))
      return fail(error);
    if (!quiet)
      std::printf("trace: %s: %zu tokens x %d layers, %d experts, top-%d, "
                  "zipf %.3g, stickiness %.3g, seed %llu\n",
                  output.c_str(), trace->tokens.size(), trace->numLayers,
                  trace->numExperts, trace->topK, syn.zipf, syn.stickiness,
                  static_cast<unsigned long long>(syn.seed));
    return 0;
  }

  if (input.empty())
    return fail("no routing trace given\n" + std::string(kUsage));
  if (!synthOnly.empty())
    return fail(synthOnly.front() + " is only meaningful with --synthesize");
  TraceParseOptions parse;
  parse.numExperts = static_cast<int>(experts);
  parse.numLayers = static_cast<int>(layers);
  std::optional<RoutingTrace> trace = readRoutingTrace(input, parse, error);
  if (!trace)
    return fail(error);
  std::optional<Profile> profile =
      Profile::build(*trace, static_cast<int>(pathLength), error);
  if (!profile)
    return fail(error);
  if (!profile->writeFile(output, error))
    return fail(error);
  if (!quiet)
    printSummary(*profile);
  return 0;
}
