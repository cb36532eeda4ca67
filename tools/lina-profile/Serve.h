//===- Serve.h - Placement policies on a routing trace ----------*- C++ -*-===//
//
// Part of the Lina project.
//
// `lina-profile --serve`: replays batches of a routing trace through one
// LayerPlanner per MoE layer for each placement policy (static, EPLB-like,
// lina, oracle) and prints latency percentiles from the cost model, the
// real rows per device, the weight bytes moved and the phase-2 rate.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_TOOLS_LINAPROFILE_SERVE_H
#define LINA_TOOLS_LINAPROFILE_SERVE_H

#include "lina/Support/Placement.h"
#include "lina/Support/Profile.h"
#include "lina/Support/RoutingTrace.h"

#include <cstdint>
#include <string>
#include <vector>

namespace lina::serve {

/// Shapes of a model's MoE layer, for the latency model.
struct ModelShape {
  std::string name;
  int64_t hidden = 0, ffn = 0;
  int64_t attentionParams = 0; ///< per layer
  int64_t kvBytesPerToken = 0; ///< per layer
  int64_t dtypeBytes = 2;
};

/// The built-in shapes: mixtral-8x7b and olmoe-1b-7b (bf16); nullopt for
/// another name.
std::optional<ModelShape> modelShape(const std::string &name);

struct ServeOptions {
  int devices = 0;
  int slots = 0; ///< expert slots per device; 0: ceil(E/N) + 1
  int replicaBudget = -1;
  int batch = 0; ///< tokens per batch
  int batches = 200;
  int window = 16;
  int64_t context = 1024; ///< tokens of KV cache each token attends to
  bool prefill = false;   ///< the batch is prompt tokens (KV read once)
  uint64_t seed = 1;
  std::vector<PlacementPolicy> policies;
};

/// Runs every policy over the same batches of `trace` and prints one
/// summary line per policy. Returns false with `error` on bad input.
bool runServe(const RoutingTrace &trace, const Profile &profile,
              const ModelShape &model, const ClusterSpec &cluster,
              const ServeOptions &options, std::string &error);

} // namespace lina::serve

#endif // LINA_TOOLS_LINAPROFILE_SERVE_H
