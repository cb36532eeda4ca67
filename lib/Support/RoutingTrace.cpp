//===- RoutingTrace.cpp - Expert routing traces (JSONL) -------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/Support/RoutingTrace.h"

#include "RandomUtil.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

using namespace lina;
using nlohmann::json;

namespace {

/// Reads the non-negative integer field `key` of `record`.
bool readIndex(const json &record, const char *key, int64_t &out,
               std::string &what) {
  auto it = record.find(key);
  if (it == record.end()) {
    what = std::string("missing field '") + key + "'";
    return false;
  }
  if (!it->is_number_integer() || it->get<int64_t>() < 0) {
    what = std::string("field '") + key +
           "' must be a non-negative integer, got " + it->dump();
    return false;
  }
  out = it->get<int64_t>();
  return true;
}

struct ParsedRecord {
  int64_t request = 0, token = 0, layer = 0;
  std::vector<int> experts;
  std::vector<double> weights;
};

/// Parses one line into `rec`; on failure `what` says what is wrong.
bool parseRecord(const std::string &line, ParsedRecord &rec,
                 std::string &what) {
  json record = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (record.is_discarded()) {
    what = "not valid JSON";
    return false;
  }
  if (!record.is_object()) {
    what = "expected a JSON object {\"request\", \"token\", \"layer\", "
           "\"experts\"}, got " +
           std::string(record.type_name());
    return false;
  }
  if (!readIndex(record, "request", rec.request, what) ||
      !readIndex(record, "token", rec.token, what) ||
      !readIndex(record, "layer", rec.layer, what))
    return false;
  if (rec.layer > (1 << 20)) {
    what = "layer " + std::to_string(rec.layer) + " is implausibly large";
    return false;
  }
  auto experts = record.find("experts");
  if (experts == record.end()) {
    what = "missing field 'experts'";
    return false;
  }
  if (!experts->is_array() || experts->empty()) {
    what = "field 'experts' must be a non-empty array of expert ids";
    return false;
  }
  for (const json &e : *experts) {
    if (!e.is_number_integer() || e.get<int64_t>() < 0 ||
        e.get<int64_t>() > (1 << 24)) {
      what = "expert id " + e.dump() + " is not a non-negative integer";
      return false;
    }
    int id = static_cast<int>(e.get<int64_t>());
    if (std::find(rec.experts.begin(), rec.experts.end(), id) !=
        rec.experts.end()) {
      what = "expert " + std::to_string(id) + " is listed twice";
      return false;
    }
    rec.experts.push_back(id);
  }
  auto weights = record.find("weights");
  if (weights != record.end()) {
    if (!weights->is_array() || weights->size() != experts->size()) {
      what = "field 'weights' must be an array with one number per expert (" +
             std::to_string(experts->size()) + ")";
      return false;
    }
    for (const json &w : *weights) {
      if (!w.is_number() || !std::isfinite(w.get<double>())) {
        what = "weight " + w.dump() + " is not a finite number";
        return false;
      }
      if (w.get<double>() < 0 || w.get<double>() > 1) {
        what = "weight " + w.dump() + " is not a router probability in [0, 1]";
        return false;
      }
      rec.weights.push_back(w.get<double>());
    }
  }
  return true;
}

} // namespace

std::optional<RoutingTrace>
lina::parseRoutingTrace(std::istream &in, const std::string &origin,
                        const TraceParseOptions &options, std::string &error) {
  if (options.numExperts < 0 || options.numLayers < 0) {
    error = origin + ": negative expert or layer count requested";
    return std::nullopt;
  }
  struct Slot {
    ParsedRecord rec;
    int64_t line = 0;
  };
  // (request, token) -> layer -> record.
  std::map<std::pair<int64_t, int64_t>, std::map<int64_t, Slot>> byToken;
  int topK = 0;
  int64_t firstLine = 0, lineNo = 0;
  int maxExpert = -1;
  int64_t maxLayer = -1;
  std::string line;
  auto fail = [&](const std::string &what) {
    error = origin + ":" + std::to_string(lineNo) + ": " + what;
    return std::nullopt;
  };
  while (std::getline(in, line)) {
    ++lineNo;
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    ParsedRecord rec;
    std::string what;
    if (!parseRecord(line, rec, what))
      return fail(what);
    int k = static_cast<int>(rec.experts.size());
    if (topK == 0) {
      topK = k;
      firstLine = lineNo;
    } else if (k != topK) {
      return fail("record has " + std::to_string(k) + " experts but line " +
                  std::to_string(firstLine) + " has " + std::to_string(topK) +
                  " (all records need the same top-k)");
    }
    for (int e : rec.experts) {
      if (options.numExperts > 0 && e >= options.numExperts)
        return fail("expert id " + std::to_string(e) + " is out of range [0, " +
                    std::to_string(options.numExperts) + ")");
      maxExpert = std::max(maxExpert, e);
    }
    if (options.numLayers > 0 && rec.layer >= options.numLayers)
      return fail("layer " + std::to_string(rec.layer) +
                  " is out of range [0, " + std::to_string(options.numLayers) +
                  ")");
    maxLayer = std::max(maxLayer, rec.layer);
    auto &layers = byToken[{rec.request, rec.token}];
    auto [it, inserted] = layers.emplace(rec.layer, Slot{rec, lineNo});
    if (!inserted)
      return fail("duplicate record for request " +
                  std::to_string(rec.request) + " token " +
                  std::to_string(rec.token) + " layer " +
                  std::to_string(rec.layer) + " (first on line " +
                  std::to_string(it->second.line) + ")");
  }
  if (in.bad()) {
    error = origin + ": read error";
    return std::nullopt;
  }
  if (byToken.empty()) {
    error = origin + ": the trace has no records";
    return std::nullopt;
  }
  RoutingTrace trace;
  trace.topK = topK;
  trace.numLayers = options.numLayers > 0 ? options.numLayers
                                          : static_cast<int>(maxLayer + 1);
  trace.numExperts =
      options.numExperts > 0 ? options.numExperts : maxExpert + 1;
  if (topK > trace.numExperts) {
    error = origin + ": top-k " + std::to_string(topK) + " exceeds the " +
            std::to_string(trace.numExperts) + " experts";
    return std::nullopt;
  }
  trace.tokens.reserve(byToken.size());
  for (auto &[key, layers] : byToken) {
    TokenRoute route;
    route.request = key.first;
    route.token = key.second;
    route.experts.resize(trace.numLayers);
    route.weights.resize(trace.numLayers);
    bool complete = true;
    for (int l = 0; l < trace.numLayers; ++l) {
      auto it = layers.find(l);
      if (it == layers.end() && options.skipIncomplete) {
        complete = false;
        break;
      }
      if (it == layers.end()) {
        error = origin + ":" + std::to_string(layers.begin()->second.line) +
                ": request " + std::to_string(key.first) + " token " +
                std::to_string(key.second) + " has no record for layer " +
                std::to_string(l) +
                " (every token needs one record per "
                "layer 0.." +
                std::to_string(trace.numLayers - 1) + ")";
        return std::nullopt;
      }
      route.experts[l] = std::move(it->second.rec.experts);
      route.weights[l] = std::move(it->second.rec.weights);
    }
    if (!complete) {
      ++trace.droppedTokens;
      continue;
    }
    trace.tokens.push_back(std::move(route));
  }
  if (trace.tokens.empty()) {
    error = origin + ": no token has a record for every layer 0.." +
            std::to_string(trace.numLayers - 1);
    return std::nullopt;
  }
  return trace;
}

std::optional<RoutingTrace>
lina::readRoutingTrace(const std::string &path,
                       const TraceParseOptions &options, std::string &error) {
  std::ifstream in(path);
  if (!in) {
    error = "cannot open routing trace '" + path + "'";
    return std::nullopt;
  }
  try {
    return parseRoutingTrace(in, path, options, error);
  } catch (const std::exception &e) {
    error = path + ": " + e.what();
    return std::nullopt;
  }
}

std::string lina::validate(const SynthesisOptions &o) {
  auto positive = [](const char *name, int64_t v) -> std::string {
    if (v < 1)
      return std::string("--") + name + " must be a positive integer, got " +
             std::to_string(v);
    return "";
  };
  for (std::string msg :
       {positive("layers", o.layers), positive("experts", o.experts),
        positive("top-k", o.topK), positive("requests", o.requests),
        positive("tokens-per-request", o.tokensPerRequest)})
    if (!msg.empty())
      return msg;
  if (o.topK > o.experts)
    return "--top-k (" + std::to_string(o.topK) + ") exceeds --experts (" +
           std::to_string(o.experts) + ")";
  if (!std::isfinite(o.zipf) || o.zipf < 0)
    return "--zipf must be a non-negative number";
  if (!std::isfinite(o.stickiness) || o.stickiness < 0 || o.stickiness > 1)
    return "--stickiness must be a probability in [0, 1]";
  if (static_cast<int64_t>(o.requests) * o.tokensPerRequest * o.layers >
      (int64_t(1) << 31))
    return "the requested trace is too large (requests x tokens x layers "
           "above 2^31 records)";
  return "";
}

std::optional<RoutingTrace> lina::synthesizeTrace(const SynthesisOptions &o,
                                                  std::string &error) {
  error = validate(o);
  if (!error.empty())
    return std::nullopt;
  detail::SplitMix64 rng(o.seed);
  const int E = o.experts;
  // Zipf weight of popularity rank i, and per layer the expert of each rank.
  std::vector<double> rankWeight(E);
  for (int i = 0; i < E; ++i)
    rankWeight[i] = std::pow(static_cast<double>(i + 1), -o.zipf);
  detail::SplitMix64 modelRng(o.modelSeed);
  std::vector<std::vector<int>> expertOfRank(o.layers);
  for (auto &perm : expertOfRank) {
    perm.resize(E);
    for (int i = 0; i < E; ++i)
      perm[i] = i;
    for (int i = E - 1; i > 0; --i)
      std::swap(perm[i], perm[modelRng.below(i + 1)]);
  }
  // Draws a rank by Zipf weight among the ranks not yet `taken`.
  std::vector<char> taken(E);
  auto draw = [&]() {
    double total = 0;
    for (int i = 0; i < E; ++i)
      if (!taken[i])
        total += rankWeight[i];
    double u = rng.uniform() * total;
    int last = -1;
    for (int i = 0; i < E; ++i) {
      if (taken[i])
        continue;
      last = i;
      if (u < rankWeight[i])
        return i;
      u -= rankWeight[i];
    }
    return last; // rounding: the last free rank
  };

  RoutingTrace trace;
  trace.numLayers = o.layers;
  trace.numExperts = E;
  trace.topK = o.topK;
  trace.tokens.reserve(static_cast<size_t>(o.requests) * o.tokensPerRequest);
  for (int r = 0; r < o.requests; ++r) {
    for (int t = 0; t < o.tokensPerRequest; ++t) {
      TokenRoute route;
      route.request = r;
      route.token = t;
      route.experts.resize(o.layers);
      route.weights.resize(o.layers);
      for (int l = 0; l < o.layers; ++l) {
        const std::vector<int> &perm = expertOfRank[l];
        std::vector<int> rankOf(E);
        std::fill(taken.begin(), taken.end(), 0);
        std::vector<int> &chosen = route.experts[l];
        bool stick = l > 0 && rng.uniform() < o.stickiness;
        if (stick) {
          int prev = route.experts[l - 1][0];
          int rank = static_cast<int>(
              std::find(perm.begin(), perm.end(), prev) - perm.begin());
          taken[rank] = 1;
          chosen.push_back(prev);
        }
        while (static_cast<int>(chosen.size()) < o.topK) {
          int rank = draw();
          taken[rank] = 1;
          chosen.push_back(perm[rank]);
        }
        // Decreasing router weights that sum to 1.
        std::vector<double> w(o.topK);
        double sum = 0;
        for (int j = 0; j < o.topK; ++j)
          sum += w[j] = std::exp(-1.0 * j) * (0.5 + 0.5 * rng.uniform());
        std::sort(w.begin(), w.end(), std::greater<double>());
        for (double &x : w)
          x = std::round(x / sum * 1e4) / 1e4;
        route.weights[l] = std::move(w);
      }
      trace.tokens.push_back(std::move(route));
    }
  }
  return trace;
}

bool lina::writeRoutingTrace(const RoutingTrace &trace, std::ostream &out,
                             std::string &error) {
  for (const TokenRoute &route : trace.tokens) {
    for (int l = 0; l < trace.numLayers; ++l) {
      nlohmann::ordered_json record = {{"request", route.request},
                                       {"token", route.token},
                                       {"layer", l},
                                       {"experts", route.experts[l]}};
      if (!route.weights[l].empty())
        record["weights"] = route.weights[l];
      out << record.dump() << '\n';
    }
  }
  out.flush();
  if (!out) {
    error = "write error";
    return false;
  }
  return true;
}

bool lina::writeRoutingTrace(const RoutingTrace &trace, const std::string &path,
                             std::string &error) {
  std::ofstream out(path);
  if (!out) {
    error = "cannot write '" + path + "'";
    return false;
  }
  if (!writeRoutingTrace(trace, out, error)) {
    error = path + ": " + error;
    return false;
  }
  return true;
}
