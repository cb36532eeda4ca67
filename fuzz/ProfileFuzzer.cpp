//===- ProfileFuzzer.cpp - Fuzz the popularity/path profile reader --------===//
//
// Part of the Lina project.
//
// The input is a profile (JSON). Profile::fromJson must accept it or return
// an error message. An accepted profile must answer the placement queries
// (lookup, predictTop1, addExpectedLoad) with in-range experts and finite
// loads, and must survive a JSON round trip unchanged.
//
//===----------------------------------------------------------------------===//

#include "FuzzerUtil.h"

#include "lina/Support/Profile.h"

#include <cmath>
#include <optional>
#include <string>
#include <vector>

using namespace lina;

namespace {

constexpr const char *kTarget = "lina-fuzz-profile";

void checkQueries(const Profile &profile) {
  if (profile.numLayers < 1 || profile.numExperts < 1 || profile.topK < 1 ||
      static_cast<int>(profile.popularity.size()) != profile.numLayers)
    fuzz::fail(kTarget, "accepted a profile with " +
                            std::to_string(profile.numLayers) + " layers, " +
                            std::to_string(profile.numExperts) +
                            " experts, k = " + std::to_string(profile.topK));
  // A token that always went to expert 0, then to the predicted experts.
  std::vector<int> history(profile.numLayers, 0);
  std::vector<double> loads(profile.numExperts, 0.0);
  for (int layer = 0; layer < profile.numLayers; ++layer) {
    if (static_cast<int>(profile.popularity[layer].size()) !=
        profile.numExperts)
      fuzz::fail(kTarget, "accepted a popularity row of the wrong length");
    int used = -1;
    const PathStats *stats = profile.lookup(layer, history.data(), &used);
    if (stats && (used < 1 || used > profile.pathLength ||
                  static_cast<int>(stats->shares.size()) != profile.numExperts))
      fuzz::fail(kTarget, "lookup returned an inconsistent path");
    int top1 = profile.predictTop1(layer, history.data());
    if (top1 < 0 || top1 >= profile.numExperts)
      fuzz::fail(kTarget,
                 "predicted expert " + std::to_string(top1) + " out of range");
    profile.addExpectedLoad(layer, history.data(), loads.data());
    history[layer] = top1;
  }
  for (double load : loads)
    if (!std::isfinite(load) || load < 0)
      fuzz::fail(kTarget, "expected load " + std::to_string(load));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string error;
  std::optional<Profile> profile =
      Profile::fromJson(fuzz::asText(data, size), "fuzz.json", error);
  if (!profile) {
    fuzz::checkMessage(kTarget, error);
    return 0;
  }
  checkQueries(*profile);
  std::string json = profile->toJson();
  std::optional<Profile> back = Profile::fromJson(json, "round trip", error);
  if (!back)
    fuzz::fail(kTarget, "an accepted profile does not read back after "
                        "toJson: " +
                            error);
  if (back->toJson() != json)
    fuzz::fail(kTarget, "the profile changes in a JSON round trip");
  return 0;
}
