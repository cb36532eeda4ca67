//===- RoutingTrace.h - Expert routing traces (JSONL) -----------*- C++ -*-===//
//
// Part of the Lina project.
//
// A routing trace records which experts the router chose for every token at
// every MoE layer: one JSON object per line,
//   {"request": r, "token": t, "layer": l, "experts": [e0, e1, ...],
//    "weights": [w0, w1, ...]}
// with the top-k experts best first ("weights" optional). Traces feed the
// offline profile (Profile.h) and the runtime's inference mode, which routes
// tokens by the trace so that the skew it measures is real. The schema is
// documented in docs/INFERENCE.md.
//
// Plain C++17 without LLVM; the public API never throws.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_SUPPORT_ROUTINGTRACE_H
#define LINA_SUPPORT_ROUTINGTRACE_H

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace lina {

/// The route of one token through every MoE layer.
struct TokenRoute {
  int64_t request = 0;
  int64_t token = 0;
  /// experts[l] = the token's top-k experts at layer l, best first.
  std::vector<std::vector<int>> experts;
  /// weights[l] = their router weights (empty when the trace has none).
  std::vector<std::vector<double>> weights;

  int top1(int layer) const { return experts[layer][0]; }
};

/// A parsed trace: tokens ordered by (request, token).
struct RoutingTrace {
  int numLayers = 0;
  int numExperts = 0; ///< given by the caller, or the largest id + 1
  int topK = 0;
  std::vector<TokenRoute> tokens;
  /// Tokens dropped because they lacked a layer (skipIncomplete only).
  int64_t droppedTokens = 0;
};

struct TraceParseOptions {
  /// Number of experts per layer; ids must lie in [0, numExperts). 0: take
  /// the largest id seen + 1.
  int numExperts = 0;
  /// Number of MoE layers; 0: the largest layer seen + 1.
  int numLayers = 0;
  /// Drop tokens that miss a layer (counted in droppedTokens) instead of
  /// rejecting the trace. A trace left with no token is still an error.
  bool skipIncomplete = false;
};

/// Parses a JSONL trace. On error returns nullopt and sets `error` to a
/// message "ORIGIN:LINE: what is wrong". Every line is a record (blank lines
/// are skipped); all records have the same k; every token has exactly one
/// record for each layer 0..L-1.
std::optional<RoutingTrace> parseRoutingTrace(std::istream &in,
                                              const std::string &origin,
                                              const TraceParseOptions &options,
                                              std::string &error);
std::optional<RoutingTrace> readRoutingTrace(const std::string &path,
                                             const TraceParseOptions &options,
                                             std::string &error);

/// Parameters of a synthetic trace.
struct SynthesisOptions {
  int layers = 4;
  int experts = 16;
  int topK = 2;
  int requests = 8;
  int tokensPerRequest = 64;
  /// Zipf exponent over a per-layer random permutation of the experts
  /// (0: uniform popularity).
  double zipf = 1.0;
  /// Probability that a token keeps its previous layer's top-1 expert.
  double stickiness = 0.0;
  /// Seed of the tokens' draws.
  uint64_t seed = 1;
  /// Seed of the "model": the per-layer popularity order of the experts.
  /// Traces with one model seed and different seeds are a training and an
  /// evaluation split of the same model's routing.
  uint64_t modelSeed = 1;
};

/// Checks the options; returns an error message or "" if they are valid.
std::string validate(const SynthesisOptions &options);

/// Generates a trace: for every token and layer the top-1 expert is, with
/// probability `stickiness` (layers > 0), the previous layer's top-1, else a
/// Zipf draw; the other k-1 experts are Zipf draws without repetition.
/// Router weights are decreasing and sum to 1. Deterministic for a seed.
/// Returns nullopt and sets `error` for invalid options.
std::optional<RoutingTrace> synthesizeTrace(const SynthesisOptions &options,
                                            std::string &error);

/// Writes `trace` as JSONL (one record per token and layer, ordered by
/// request, token, layer). Returns false and sets `error` on I/O failure.
bool writeRoutingTrace(const RoutingTrace &trace, std::ostream &out,
                       std::string &error);
bool writeRoutingTrace(const RoutingTrace &trace, const std::string &path,
                       std::string &error);

} // namespace lina

#endif // LINA_SUPPORT_ROUTINGTRACE_H
