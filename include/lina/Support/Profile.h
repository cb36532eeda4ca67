//===- Profile.h - Expert popularity and path profiles ----------*- C++ -*-===//
//
// Part of the Lina project.
//
// A profile summarises a routing trace (RoutingTrace.h) for Lina's inference
// scheduling:
//  - per layer, each expert's popularity: its share of all (token, choice)
//    assignments of that layer;
//  - for a path length l, per layer i >= 1 and per path (the token's top-1
//    experts at layers i-m .. i-1, m = min(l, i)), the distribution of the
//    layer-i assignments over the experts, how many tokens followed the path,
//    and the most frequent layer-i top-1 expert after it. Paths of every
//    length 1..m are kept so that prediction can back off.
// Prediction for a token at layer i with top-1 history h: use the longest
// suffix of h (at most l long) that was seen in the profile; if none was,
// use layer i's popularity. The file format is documented in
// docs/INFERENCE.md.
//
// Plain C++17 without LLVM; the public API never throws.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_SUPPORT_PROFILE_H
#define LINA_SUPPORT_PROFILE_H

#include "lina/Support/RoutingTrace.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lina {

/// What follows one path: the next layer's assignments.
struct PathStats {
  int64_t count = 0; ///< tokens that followed the path
  int top1 = 0;      ///< most frequent next top-1 expert (ties: lower id)
  std::vector<double> shares; ///< per expert, share of the assignments (sum 1)
};

class Profile {
public:
  int numLayers = 0;
  int numExperts = 0;
  int topK = 0;
  int pathLength = 0;
  int64_t numTokens = 0;
  /// Interpolated backoff (0: plain backoff to the longest seen path). A
  /// path seen c times contributes c / (c + smoothing) of the prediction,
  /// the next shorter path (in the end the popularity) the rest, so that
  /// rare long paths do not overfit.
  double smoothing = 0;
  /// popularity[layer][expert]: share of the layer's assignments.
  std::vector<std::vector<double>> popularity;
  /// transitions[layer]: path (top-1 experts of the m previous layers,
  /// oldest first, 1 <= m <= min(pathLength, layer)) -> statistics. Empty
  /// for layer 0.
  std::vector<std::map<std::vector<int>, PathStats>> transitions;

  /// Builds the profile of `trace` for paths of up to `pathLength` layers
  /// (>= 0; 0 keeps only the popularity).
  static std::optional<Profile> build(const RoutingTrace &trace, int pathLength,
                                      std::string &error);

  /// Reads a profile written by toJson(); every field is validated and a
  /// problem is reported with the field's name.
  static std::optional<Profile> fromJson(const std::string &text,
                                         const std::string &origin,
                                         std::string &error);
  static std::optional<Profile> fromFile(const std::string &path,
                                         std::string &error);
  std::string toJson() const;
  bool writeFile(const std::string &path, std::string &error) const;

  /// The path statistics used to predict layer `layer` for a token whose
  /// top-1 experts at layers 0 .. layer-1 are history[0 .. layer-1]; nullptr
  /// when no suffix of the history was seen (or layer == 0): then the
  /// layer's popularity applies. `usedLength` receives the path length used
  /// (0 for the popularity).
  const PathStats *lookup(int layer, const int *history,
                          int *usedLength = nullptr) const;

  /// The predicted distribution of the token's assignments at `layer`
  /// (sums to 1): the popularity, refined by every seen suffix of the
  /// history from the shortest to the longest, each weighted by
  /// count / (count + smoothing).
  void predict(int layer, const int *history, double *dist) const;

  /// Adds the token's expected assignments at `layer` (topK times the
  /// predicted distribution) to loads[0 .. numExperts-1].
  void addExpectedLoad(int layer, const int *history, double *loads) const;

  /// The predicted top-1 expert at `layer`: the top-1 of the longest seen
  /// suffix followed by at least `smoothing` tokens (without one, the most
  /// popular expert of the layer).
  int predictTop1(int layer, const int *history) const;
};

} // namespace lina

#endif // LINA_SUPPORT_PROFILE_H
