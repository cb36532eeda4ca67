//===- RoutingTraceFuzzer.cpp - Fuzz the routing trace reader -------------===//
//
// Part of the Lina project.
//
// The input is a JSONL routing trace. parseRoutingTrace must accept it or
// return an error message. An accepted trace must keep the reader's
// guarantees (every token routed through every layer to k in-range
// experts, finite weights), and the profile built from it must survive a
// JSON round trip.
//
//===----------------------------------------------------------------------===//

#include "FuzzerUtil.h"

#include "lina/Support/Profile.h"
#include "lina/Support/RoutingTrace.h"

#include <cmath>
#include <optional>
#include <sstream>
#include <string>

using namespace lina;

namespace {

constexpr const char *kTarget = "lina-fuzz-trace";

void checkTrace(const RoutingTrace &trace) {
  if (trace.numLayers < 1 || trace.numExperts < 1 || trace.topK < 1 ||
      trace.topK > trace.numExperts)
    fuzz::fail(kTarget, "accepted a trace with " +
                            std::to_string(trace.numLayers) + " layers, " +
                            std::to_string(trace.numExperts) +
                            " experts and k = " + std::to_string(trace.topK));
  for (const TokenRoute &token : trace.tokens) {
    if (static_cast<int>(token.experts.size()) != trace.numLayers)
      fuzz::fail(kTarget, "accepted a token without a route at every layer");
    if (token.weights.size() != token.experts.size())
      fuzz::fail(kTarget, "a token's weights do not have one entry per layer");
    for (size_t layer = 0; layer < token.experts.size(); ++layer) {
      const std::vector<int> &experts = token.experts[layer];
      if (static_cast<int>(experts.size()) != trace.topK)
        fuzz::fail(kTarget, "accepted a record with k != the trace's k");
      for (int e : experts)
        if (e < 0 || e >= trace.numExperts)
          fuzz::fail(kTarget, "accepted expert id " + std::to_string(e) +
                                  " outside [0, " +
                                  std::to_string(trace.numExperts) + ")");
      // Weights are optional per record: none, or one finite weight per
      // expert.
      const std::vector<double> &weights = token.weights[layer];
      if (!weights.empty() && weights.size() != experts.size())
        fuzz::fail(kTarget, "accepted a record whose weights do not match "
                            "its experts");
      for (double w : weights)
        if (!std::isfinite(w))
          fuzz::fail(kTarget, "accepted a weight that is not finite");
    }
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::istringstream in(fuzz::asText(data, size));
  std::string error;
  std::optional<RoutingTrace> trace =
      parseRoutingTrace(in, "fuzz.jsonl", TraceParseOptions(), error);
  if (!trace) {
    fuzz::checkMessage(kTarget, error);
    return 0;
  }
  checkTrace(*trace);

  // lina-profile's path: a profile with paths of up to 2 layers, written
  // and read back.
  std::optional<Profile> profile = Profile::build(*trace, 2, error);
  if (!profile) {
    fuzz::checkMessage(kTarget, error);
    return 0;
  }
  std::string json = profile->toJson();
  std::optional<Profile> back = Profile::fromJson(json, "profile", error);
  if (!back)
    fuzz::fail(kTarget, "the profile of an accepted trace does not read "
                        "back: " +
                            error);
  if (back->toJson() != json)
    fuzz::fail(kTarget, "the profile changes in a JSON round trip");
  return 0;
}
