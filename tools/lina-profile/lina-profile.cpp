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
// lina-profile --serve TRACE.jsonl --profile PROFILE.json --model M
//              --cluster FILE --devices N --batch B [--slots C] ...
//   Replays batches of the trace through the placement policies (static,
//   EPLB-like, lina, oracle) and prints latency percentiles from the cost
//   model (docs/INFERENCE.md).
//
//===----------------------------------------------------------------------===//

#include "Serve.h"

#include "lina/Support/CostModel.h"
#include "lina/Support/Profile.h"
#include "lina/Support/RoutingTrace.h"

#include <CLI/CLI.hpp>

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
    "  --smoothing A            interpolated backoff: a path seen c times "
    "weighs\n"
    "                           c / (c + A) against its shorter suffix "
    "(default 4; 0: plain backoff)\n"
    "  --holdout F              profile the first 1-F of the requests, report "
    "held-out\n"
    "                           top-1 accuracy and load-estimate error on the "
    "rest\n"
    "  --holdout-batch B        tokens per batch for the load-estimate error "
    "(default 8)\n"
    "  --skip-incomplete        drop tokens that miss a layer (else an "
    "error)\n"
    "  --serve                  replay the trace through the placement "
    "policies:\n"
    "     --profile P --model mixtral-8x7b|olmoe-1b-7b --cluster FILE "
    "--devices N\n"
    "     --batch B [--slots C] [--replica-budget R] [--batches K] "
    "[--window W]\n"
    "     [--context T] [--prefill] [--policies static,eplb,lina,oracle] "
    "[--seed X]\n"
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
    error = "invalid value '" + v + "' for " + flag +
            " (an integer >= " + std::to_string(lo) + ")";
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

/// Splits the trace by request: the first (1 - fraction) of the distinct
/// requests (in request order) to `train`, the rest to `held`.
bool splitHoldout(const RoutingTrace &trace, double fraction,
                  RoutingTrace &train, RoutingTrace &held, std::string &error) {
  std::vector<int64_t> requests;
  for (const TokenRoute &t : trace.tokens)
    if (requests.empty() || requests.back() != t.request)
      requests.push_back(t.request);
  size_t keep = static_cast<size_t>(
      std::floor(static_cast<double>(requests.size()) * (1 - fraction)));
  if (keep < 1 || keep >= requests.size()) {
    error = "--holdout " + std::to_string(fraction) +
            " leaves no request on "
            "one side of the split (the trace has " +
            std::to_string(requests.size()) + " requests)";
    return false;
  }
  int64_t firstHeld = requests[keep];
  train = held = trace;
  train.tokens.clear();
  held.tokens.clear();
  for (const TokenRoute &t : trace.tokens)
    (t.request < firstHeld ? train : held).tokens.push_back(t);
  return true;
}

/// Held-out quality of the profile against the popularity alone: top-1
/// accuracy (layers >= 1) and the load-estimate error sum_e |est - true| /
/// total per batch of `batch` consecutive held-out tokens and layer.
void reportHoldout(const Profile &p, const RoutingTrace &held, int batch) {
  const int L = p.numLayers, E = p.numExperts;
  Profile popularityOnly = p;
  popularityOnly.pathLength = 0;
  double hits = 0, baseHits = 0, predictions = 0;
  double error = 0, baseError = 0, samples = 0;
  std::vector<int> history(L);
  for (size_t start = 0; start < held.tokens.size(); start += batch) {
    size_t end = std::min(held.tokens.size(), start + batch);
    for (int l = 0; l < L; ++l) {
      std::vector<double> est(E, 0.0), base(E, 0.0), truth(E, 0.0);
      for (size_t t = start; t < end; ++t) {
        const TokenRoute &route = held.tokens[t];
        for (int j = 0; j < l; ++j)
          history[j] = route.top1(j);
        p.addExpectedLoad(l, history.data(), est.data());
        popularityOnly.addExpectedLoad(l, history.data(), base.data());
        for (int e : route.experts[l])
          truth[e] += 1;
        if (l >= 1) {
          predictions += 1;
          hits += p.predictTop1(l, history.data()) == route.top1(l);
          baseHits +=
              popularityOnly.predictTop1(l, history.data()) == route.top1(l);
        }
      }
      double total = 0, e1 = 0, e0 = 0;
      for (int e = 0; e < E; ++e) {
        total += truth[e];
        e1 += std::fabs(est[e] - truth[e]);
        e0 += std::fabs(base[e] - truth[e]);
      }
      if (total > 0) {
        error += e1 / total;
        baseError += e0 / total;
        samples += 1;
      }
    }
  }
  std::printf("holdout: %zu tokens, top1_accuracy %.4f (popularity only "
              "%.4f), load_error %.4f (popularity only %.4f) in batches of "
              "%d\n",
              held.tokens.size(), predictions > 0 ? hits / predictions : 0.0,
              predictions > 0 ? baseHits / predictions : 0.0,
              samples > 0 ? error / samples : 0.0,
              samples > 0 ? baseError / samples : 0.0, batch);
}

int runServeMode(const std::string &input, const std::string &profilePath,
                 const std::string &modelName, const std::string &clusterPath,
                 const std::string &policyList, long long layers,
                 long long experts, bool skipIncomplete, serve::ServeOptions so,
                 const std::string &synthFlag) {
  if (!synthFlag.empty())
    return fail(synthFlag + " is not meaningful with --serve");
  if (input.empty() || profilePath.empty() || modelName.empty() ||
      clusterPath.empty() || so.devices == 0 || so.batch == 0)
    return fail("--serve needs a trace, --profile, --model, --cluster, "
                "--devices and --batch");
  std::string error;
  std::optional<serve::ModelShape> model = serve::modelShape(modelName);
  if (!model)
    return fail("unknown --model '" + modelName +
                "' (known: mixtral-8x7b, olmoe-1b-7b)");
  std::optional<ClusterSpec> cluster =
      ClusterSpec::fromFile(clusterPath, error);
  if (!cluster)
    return fail(error);
  size_t pos = 0;
  while (pos <= policyList.size()) {
    size_t comma = policyList.find(',', pos);
    if (comma == std::string::npos)
      comma = policyList.size();
    std::string name = policyList.substr(pos, comma - pos);
    std::optional<PlacementPolicy> policy = parsePlacementPolicy(name);
    if (!policy)
      return fail("unknown policy '" + name +
                  "' in --policies (known: "
                  "static, eplb, lina, oracle)");
    so.policies.push_back(*policy);
    pos = comma + 1;
  }
  TraceParseOptions parse;
  parse.numExperts = static_cast<int>(experts);
  parse.numLayers = static_cast<int>(layers);
  parse.skipIncomplete = skipIncomplete;
  std::optional<RoutingTrace> trace = readRoutingTrace(input, parse, error);
  if (!trace)
    return fail(error);
  std::optional<Profile> profile = Profile::fromFile(profilePath, error);
  if (!profile)
    return fail(error);
  if (!serve::runServe(*trace, *profile, *model, *cluster, so, error))
    return fail(error);
  return 0;
}
} // namespace

int main(int argc, char **argv) {
  std::string input, output, error;
  bool synthesize = false, quiet = false, serveMode = false,
       skipIncomplete = false;
  double smoothing = 4, holdout = 0;
  long long holdoutBatch = 8;
  std::string profilePath, modelName, clusterPath,
      policyList = "static,eplb,lina,oracle";
  serve::ServeOptions so;
  std::vector<std::string> serveOnly;
  bool haveLayers = false, haveExperts = false, haveTopK = false,
       haveRequests = false, haveTokens = false;
  long long pathLength = 3, layers = 0, experts = 0;
  SynthesisOptions syn;
  std::vector<std::string> synthOnly;

  // CLI11 takes `--key value` and `--key=value`; values are parsed here so
  // that every message names the flag and the value.
  CLI::App app;
  app.allow_extras(); // reported below as "unknown option"
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.set_help_flag("-h,--help");
  app.add_option("TRACE", input);
  app.add_option("-o", output);
  app.add_flag("--synthesize", synthesize);
  app.add_flag("--serve", serveMode);
  app.add_flag("--skip-incomplete", skipIncomplete);
  app.add_flag("--quiet", quiet);
  // Flags and options in the order given, with their values.
  std::vector<std::pair<std::string, std::string>> given;
  auto valueOption = [&](const std::string &flag) {
    app.add_option_function<std::string>(
        flag,
        [&given, flag](const std::string &v) { given.emplace_back(flag, v); });
  };
  for (const char *flag : {"--smoothing",     "--holdout",
                           "--holdout-batch", "--profile",
                           "--model",         "--cluster",
                           "--policies",      "--devices",
                           "--slots",         "--replica-budget",
                           "--batch",         "--batches",
                           "--window",        "--context",
                           "--path-length",   "--layers",
                           "--experts",       "--top-k",
                           "--requests",      "--tokens-per-request",
                           "--zipf",          "--stickiness",
                           "--seed",          "--model-seed"})
    valueOption(flag);
  app.add_flag_callback("--prefill",
                        [&] { given.emplace_back("--prefill", ""); });
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &) {
    std::printf("%s", kUsage);
    return 0;
  } catch (const CLI::ArgumentMismatch &e) {
    std::string msg = e.what();
    size_t colon = msg.find(": ");
    return fail(colon != std::string::npos
                    ? "missing value for " + msg.substr(0, colon)
                    : msg);
  } catch (const CLI::ParseError &e) {
    return fail(e.what());
  }
  for (const std::string &a : app.remaining()) {
    if (a.size() > 1 && a[0] == '-')
      return fail("unknown option '" + a.substr(0, a.find('=')) + "'\n" +
                  kUsage);
    return fail("more than one trace given ('" + input + "' and '" + a + "')");
  }

  for (const auto &[a, v] : given) {
    long long n = 0;
    auto serveInt = [&](long long lo, long long &out) {
      serveOnly.push_back(a);
      return parseInt(a, v, lo, out, error);
    };
    if (a == "--prefill") {
      serveOnly.push_back(a);
      so.prefill = true;
    } else if (a == "--smoothing") {
      if (!parseReal(a, v, smoothing, error))
        return fail(error);
      if (smoothing < 0 || smoothing > 1e9)
        return fail("--smoothing must be in [0, 1e9], got " + v);
    } else if (a == "--holdout") {
      if (!parseReal(a, v, holdout, error))
        return fail(error);
      if (!(holdout > 0 && holdout < 1))
        return fail("--holdout must be a fraction in (0, 1), got " + v);
    } else if (a == "--holdout-batch") {
      if (!parseInt(a, v, 1, holdoutBatch, error))
        return fail(error);
    } else if (a == "--profile") {
      serveOnly.push_back(a);
      profilePath = v;
    } else if (a == "--model") {
      serveOnly.push_back(a);
      modelName = v;
    } else if (a == "--cluster") {
      serveOnly.push_back(a);
      clusterPath = v;
    } else if (a == "--policies") {
      serveOnly.push_back(a);
      policyList = v;
    } else if (a == "--devices") {
      if (!serveInt(1, n))
        return fail(error);
      so.devices = static_cast<int>(n);
    } else if (a == "--slots") {
      if (!serveInt(1, n))
        return fail(error);
      so.slots = static_cast<int>(n);
    } else if (a == "--replica-budget") {
      if (!serveInt(0, n))
        return fail(error);
      so.replicaBudget = static_cast<int>(n);
    } else if (a == "--batch") {
      if (!serveInt(1, n))
        return fail(error);
      so.batch = static_cast<int>(n);
    } else if (a == "--batches") {
      if (!serveInt(1, n))
        return fail(error);
      so.batches = static_cast<int>(n);
    } else if (a == "--window") {
      if (!serveInt(1, n))
        return fail(error);
      so.window = static_cast<int>(n);
    } else if (a == "--context") {
      if (!serveInt(0, n))
        return fail(error);
      so.context = n;
    } else if (a == "--path-length") {
      if (!parseInt(a, v, 0, pathLength, error))
        return fail(error);
    } else if (a == "--layers") {
      if (!parseInt(a, v, 1, layers, error))
        return fail(error);
      haveLayers = true;
    } else if (a == "--experts") {
      if (!parseInt(a, v, 1, experts, error))
        return fail(error);
      haveExperts = true;
    } else if (a == "--top-k") {
      if (!parseInt(a, v, 1, n, error))
        return fail(error);
      syn.topK = static_cast<int>(n);
      haveTopK = true;
      synthOnly.push_back(a);
    } else if (a == "--requests") {
      if (!parseInt(a, v, 1, n, error))
        return fail(error);
      syn.requests = static_cast<int>(n);
      haveRequests = true;
      synthOnly.push_back(a);
    } else if (a == "--tokens-per-request") {
      if (!parseInt(a, v, 1, n, error))
        return fail(error);
      syn.tokensPerRequest = static_cast<int>(n);
      haveTokens = true;
      synthOnly.push_back(a);
    } else if (a == "--zipf") {
      if (!parseReal(a, v, syn.zipf, error))
        return fail(error);
      synthOnly.push_back(a);
    } else if (a == "--stickiness") {
      if (!parseReal(a, v, syn.stickiness, error))
        return fail(error);
      synthOnly.push_back(a);
    } else if (a == "--seed") {
      if (!parseInt(a, v, 0, n, error))
        return fail(error);
      syn.seed = static_cast<uint64_t>(n);
      synthOnly.push_back(a);
    } else if (a == "--model-seed") {
      if (!parseInt(a, v, 0, n, error))
        return fail(error);
      syn.modelSeed = static_cast<uint64_t>(n);
      synthOnly.push_back(a);
    }
  }
  if (serveMode) {
    // --seed also draws the batches of --serve.
    auto other =
        std::find_if(synthOnly.begin(), synthOnly.end(),
                     [](const std::string &f) { return f != "--seed"; });
    so.seed = syn.seed;
    return runServeMode(input, profilePath, modelName, clusterPath, policyList,
                        layers, experts, skipIncomplete, so,
                        other == synthOnly.end() ? "" : *other);
  }
  if (!serveOnly.empty())
    return fail(serveOnly.front() + " is only meaningful with --serve");
  if (output.empty() && holdout == 0)
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
  parse.skipIncomplete = skipIncomplete;
  std::optional<RoutingTrace> trace = readRoutingTrace(input, parse, error);
  if (!trace)
    return fail(error);
  if (trace->droppedTokens > 0 && !quiet)
    std::printf("trace: dropped %lld tokens that miss a layer, kept %zu\n",
                static_cast<long long>(trace->droppedTokens),
                trace->tokens.size());
  RoutingTrace train = *trace, held;
  if (holdout > 0) {
    if (!splitHoldout(*trace, holdout, train, held, error))
      return fail(error);
  }
  std::optional<Profile> profile =
      Profile::build(train, static_cast<int>(pathLength), error);
  if (!profile)
    return fail(error);
  profile->smoothing = smoothing;
  if (!output.empty() && !profile->writeFile(output, error))
    return fail(error);
  if (!quiet)
    printSummary(*profile);
  if (holdout > 0)
    reportHoldout(*profile, held, static_cast<int>(holdoutBatch));
  return 0;
}
