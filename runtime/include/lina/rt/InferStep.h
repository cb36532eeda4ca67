//===- InferStep.h - One inference batch as a scheduler step ----*- C++ -*-===//
//
// Part of the Lina project.
//
// `lina-run --mode infer` routes tokens by a trace, so for a batch every
// placement decision is known before the batch runs: which device serves
// which expert's rows, how many rows each rank sends to each other rank,
// and which expert weights move before (phase 1) or after (phase 2) the
// gate. BatchPlacer makes those decisions for all ranks at once (static,
// lina phase 1 + phase 2, oracle), and a step Plan per batch carries them
// through the shared Scheduler like a training step:
//  - buildStepPlan, for the simulator:
//      [phase-1 weight moves: all_to_all_v, priority low, over the dense ops]
//      gate -> [phase-2 weight moves: all_to_all_v on the critical path]
//      -> dispatch -> all_to_all_v -> expert_ffn -> all_to_all_v -> combine
//    every all_to_all_v states the rows each rank sends to each (send_rows),
//    so the simulator moves the real, imbalanced traffic; the buffers and
//    the expert_ffn have the shapes of the busiest rank (a plan is one SPMD
//    program): the experts and rows of the device with the most expert
//    rows;
//  - buildRankStep, for the cpu backend: the same chain with real numerics
//    (per-rank routing tables as input buffers), docs/INFERENCE.md, "On the
//    scheduler".
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_INFERSTEP_H
#define LINA_RT_INFERSTEP_H

#include "lina/Support/Placement.h"
#include "lina/rt/Infer.h"
#include "lina/rt/Plan.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace lina {
class Profile;
struct RoutingTrace;
} // namespace lina

namespace lina::rt::infer {

/// One MoE layer of an inference plan: the op chain gate -> dispatch ->
/// all_to_all -> expert_ffn -> all_to_all -> combine and its shapes.
struct MoeLayer {
  int gate = -1, dispatch = -1, a2aIn = -1, ffn = -1, a2aOut = -1, combine = -1;
  int x = -1, wg = -1, w1 = -1, w2 = -1, out = -1; ///< buffer ids
  int64_t tokens = 0, hidden = 0, ffnDim = 0, experts = 0, topK = 0,
          localExperts = 0;
  int64_t expertBytes = 0; ///< w1 + w2 of one expert, in the plan's dtype
  Activation act = Activation::None;
  std::optional<LayerPlacement> table; ///< from the plan, if any
};

/// The placement tables of the plan's gates, by gate op id; throws
/// PlanError when a table breaks a placement invariant.
std::map<int, LayerPlacement> placementTables(const Plan &plan);

/// The MoE layers of `plan` in program order, each over one
/// expert-parallel group of all `worldSize` ranks; throws PlanError naming
/// the gate when a chain is incomplete, and any op other than dense, add
/// and copy outside the chains.
std::vector<MoeLayer>
findMoeLayers(const Plan &plan, int worldSize,
              const std::map<int, LayerPlacement> &tables);

/// What the placement decided for one MoE layer in one batch, on every
/// rank (N ranks, E experts).
struct LayerTraffic {
  int ranks = 0, experts = 0;
  /// rows[s * N + d]: token rows rank s sends to rank d (the results come
  /// back the same way); s == d stays on the device.
  std::vector<int64_t> rows;
  /// expertRows[d * E + e]: the rows expert e serves on device d.
  std::vector<int64_t> expertRows;
  /// phase1[s * N + d]: the experts whose weights rank s (their home)
  /// copies to device d in phase 1 (before the layer, overlapping the dense
  /// ops); phase2 the same after the gate, on the critical path.
  std::vector<int64_t> phase1, phase2;
  /// background[s * N + d]: the weight bytes rank s sends to device d in
  /// this batch for copies that span batches (lina, EPLB-like: the planner
  /// copies an expert in the time the dense block leaves, and the replica
  /// serves once complete). When set, the simulator's step moves these
  /// bytes in the background, at low priority, and no op waits for them,
  /// instead of phase1's whole experts. Empty otherwise.
  std::vector<double> background;
  /// dest[i * k + j]: the device serving choice j of the batch's token i.
  std::vector<int> dest;
  /// The (expert, device) replicas off the expert's home that the phase-1
  /// placement uses, and those that phase 2 adds, by expert then device;
  /// an executable step (cpu) copies all of them, held or not.
  std::vector<std::pair<int, int>> used1, used2;
};

/// What one expert of layer `m` costs the placement on `ranks` ranks of
/// `cluster` (its two matrices, H x F and F x H; weight copies over NVLink
/// inside a node, else over the node interface's share of a GPU).
lina::ExpertCost expertCost(const MoeLayer &m, int ranks,
                            const lina::ClusterSpec &cluster,
                            double denseSeconds);

/// The estimated time of one MoE layer's traffic: the dispatch and
/// combine all-to-alls of `rows` (N x N, as LayerTraffic::rows) on the
/// cluster's links, the busiest GPU link or node interface as the
/// simulator shares them, with the launch and a link latency per peer of
/// the busiest rank (those it has rows for or from), plus the slowest
/// device's experts (`expertRows`,
/// N x E: roofline and kernel launches per expert with rows). Lina routes
/// each batch by it. Throws PlanError when the sizes disagree.
double trafficSeconds(const std::vector<int64_t> &rows,
                      const std::vector<int64_t> &expertRows, int N, int E,
                      const lina::ExpertCost &cost,
                      const lina::CostModel &model,
                      const lina::ClusterSpec &cluster);

/// The trafficSeconds of lina's routing of a batch with `rows[e]` rows per
/// expert on `place`, each rank sending an even share of every expert's
/// rows: how lina's planners judge a placement table (the same estimate
/// as the routing of each batch). Throws PlanError on a size mismatch.
double estimateBatch(const LayerPlacement &place,
                     const std::vector<int64_t> &rows,
                     const lina::ExpertCost &cost, const lina::CostModel &model,
                     const lina::ClusterSpec &cluster);

/// Statistics of the placement over the batches routed so far.
struct PlacerStats {
  double phase2 = 0, layerBatches = 0;
  double predicted = 0, predictedRight = 0;
  double loadError = 0, loadErrorSamples = 0;
  double imbalance = 0;  ///< sum of the busiest device's rows over the mean
  double bytesMoved = 0; ///< expert weight bytes copied
};

/// The per-batch placement of every MoE layer for all ranks at once (every
/// rank of a cpu run computes the same): lina keeps one lina::LayerPlanner
/// per layer (cost-aware: replicas from the long-run popularity, re-planned
/// over a window, phase 1 from the profile's path prediction, phase 2 only
/// when the gain covers the move; the prior is the profile's popularity,
/// else uniform), on the cost model of `cluster`; oracle from the true
/// loads; EPLB-like from the same kind of planner with fixed shares.
/// Rows are whole. Static, EPLB-like and oracle split each expert's rows by
/// the replica shares; lina routes each batch by the fastest, by
/// trafficSeconds, of three splits that move no weights: balanceRows over
/// the replicas, each rank's rows to the replicas on its own device or
/// node, and every expert's home (so never slower, by that estimate, than
/// static expert parallelism). Every split sends a rank's rows to the
/// replicas nearest it first (same device, same node, then across nodes).
/// A device keeps the copies of non-home experts its placement still uses
/// from batch to batch: only the experts it newly holds are copied.
/// `batchTokens`: the mean tokens of a batch; `denseSeconds`: the dense
/// block of one layer, which background and phase-1 copies overlap.
class BatchPlacer {
public:
  BatchPlacer(const std::vector<MoeLayer> &layers, const RoutingTrace &trace,
              const Profile *profile, PlacementMode mode, int ranks, int slots,
              const lina::ClusterSpec &cluster, double batchTokens,
              double denseSeconds);

  /// Places and routes one batch (trace token indices, dealt to the ranks
  /// in contiguous blocks of ceil(tokens / N)); returns each layer's
  /// traffic. Throws PlanError when a placement cannot be built.
  std::vector<LayerTraffic> route(const std::vector<int> &tokens,
                                  PlacerStats &stats);

private:
  LayerPlacement place(int l, const std::vector<int> &tokens);
  void move(int l, const LayerPlacement &p, std::vector<int64_t> &bytes,
            PlacerStats &stats);

  const std::vector<MoeLayer> &layers;
  const RoutingTrace &trace;
  const Profile *profile;
  PlacementMode mode;
  int ranks, slots;
  /// Lina: the cluster, the cost model the planners share and one planner
  /// per layer.
  lina::ClusterSpec cluster;
  std::unique_ptr<lina::CostModel> model;
  std::vector<lina::LayerPlanner> planners;
  std::vector<lina::ExpertCost> costs;
  /// Per layer: the placement in use and the non-home experts each device
  /// holds.
  std::vector<LayerPlacement> current;
  std::vector<std::vector<std::vector<char>>> held;
  std::vector<std::vector<double>> estimate;
};

/// An executable step of one batch for the cpu backend: the plan (the
/// same on every rank) and what this rank writes into its input buffers
/// before it runs.
struct RankStep {
  Plan plan;
  /// (buffer id, bytes) this rank writes after initialising the buffers.
  std::vector<std::pair<int, std::vector<char>>> inputs;
  /// Per gate in plan order: this rank's tokens' trace experts (tokens x
  /// k, the plan's tokens per rank), imposed on the gate (RoutingPin) so
  /// that it computes the router probabilities of the trace's choices.
  std::vector<std::vector<int32_t>> gateExperts;
};

/// The executable step of `rank` for one batch (trace token indices):
/// each MoE chain becomes
///   [copies of w1 and w2 into expert slots: the home experts, and
///    dispatch -> all_to_all_v -> copy of the phase-1 replicas' weights,
///    priority low] gate [the same for phase 2]
///   -> dispatch (rows by destination) -> all_to_all_v -> dispatch (rows
///   by expert slot) -> expert_ffn -> combine (back to arrival order)
///   -> all_to_all_v -> combine (the gate's weights).
/// Every replica off its home receives its weights in every batch (the
/// backend's buffers live for one step). Throws PlanError on overflow.
RankStep buildRankStep(const Plan &plan, const std::vector<MoeLayer> &layers,
                       const std::vector<LayerTraffic> &traffic,
                       const RoutingTrace &trace,
                       const std::vector<int> &tokens, int rank);

/// The step plan of one batch: `plan` with each MoE chain replaced as in
/// the file comment, shaped by `traffic` (one entry per layer). The result
/// passes the plan validator (parsePlan(writePlan(step)) succeeds).
Plan buildStepPlan(const Plan &plan, const std::vector<MoeLayer> &layers,
                   const std::vector<LayerTraffic> &traffic);

} // namespace lina::rt::infer

#endif // LINA_RT_INFERSTEP_H
