//===- Placement.h - Expert placement on devices ----------------*- C++ -*-===//
//
// Part of the Lina project.
//
// Where each expert of one MoE layer lives: a list of replicas (device,
// share of the expert's tokens) per expert, N devices with C expert slots
// each. Two placements:
//  - static: expert parallelism, expert e on device e / ceil(E/N), share 1;
//  - lina: from the experts' expected loads, popular experts get replicas in
//    proportion to their load, unpopular ones are packed together, replicas
//    are assigned to devices longest-processing-time first and the shares of
//    each replicated expert are then water-filled over its devices. Its
//    maximum device load is never above the static placement's: if the
//    heuristic does not do strictly better on a layer (e.g. a uniform
//    profile), that layer gets the static placement, which moves no
//    weights (`usedStatic` says so).
// Loads are in any unit (tokens, shares); device load = sum over the
// device's replicas of share * expert load.
//
// Plain C++17 without LLVM; the public API never throws.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_SUPPORT_PLACEMENT_H
#define LINA_SUPPORT_PLACEMENT_H

#include "lina/Support/CostModel.h"

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace lina {

struct Replica {
  int device = 0;
  double share = 1.0; ///< share of the expert's tokens this replica serves
};

struct LayerPlacement {
  int numDevices = 0;
  int slotsPerDevice = 0;
  /// replicas[e]: expert e's replicas, ordered by device.
  std::vector<std::vector<Replica>> replicas;
  /// True when the lina heuristic fell back to the static placement.
  bool usedStatic = false;

  int numExperts() const { return static_cast<int>(replicas.size()); }
  /// Per-device load for the given per-expert loads.
  std::vector<double> deviceLoads(const std::vector<double> &loads) const;
  double maxDeviceLoad(const std::vector<double> &loads) const;
  /// The experts hosted by `device`, ascending.
  std::vector<int> expertsOn(int device) const;
  /// Checks the invariants (every expert has >= 1 replica, shares are
  /// positive and sum to 1, no expert twice on a device, devices in range,
  /// at most slotsPerDevice replicas per device). Returns "" or the problem.
  std::string verify() const;
};

/// Checks N >= 1, C >= 1, E >= 1 and N * C >= E; returns "" or a message.
std::string checkPlacementShape(int numExperts, int numDevices,
                                int slotsPerDevice);

/// Expert parallelism: expert e on device e / ceil(E/N), share 1.
std::optional<LayerPlacement> staticPlacement(int numExperts, int numDevices,
                                              int slotsPerDevice,
                                              std::string &error);

/// Lina's placement for per-expert expected loads (non-negative, finite).
/// Replica counts: every expert gets 1; each of the N*C - E spare slots
/// goes, one at a time, to the expert with the largest load per replica
/// (ties: lower id), as long as that load exceeds the mean load per slot
/// (total / (N*C)) and the expert has fewer than N replicas. Two
/// assignments are then built and the better balanced one is kept (ties:
/// the first, which moves fewer weights): (1) every expert's first replica
/// on its static device, the extra replicas heaviest first on the least
/// loaded device with a free slot; (2) all replicas longest processing
/// time first, devices then renamed to keep as many experts as possible on
/// their static device. In both, the shares of each replicated expert are
/// water-filled over its devices (heaviest expert first, repeated while
/// the maximum device load improves); replicas left without tokens are
/// dropped, and the shares are rounded to multiples of 1e-6 (summing to 1).
std::optional<LayerPlacement> linaPlacement(const std::vector<double> &loads,
                                            int numDevices, int slotsPerDevice,
                                            std::string &error);

//===----------------------------------------------------------------------===//
// Serving: replicas from long-run popularity, whole-row token balancing and
// cost-aware weight moves (docs/INFERENCE.md, "Cost-aware placement").
//===----------------------------------------------------------------------===//

/// Redundant-expert placement (the shape of DeepSeek-V3's EPLB): every
/// expert keeps its static home replica; up to `replicaBudget` extra
/// replicas (negative: every spare slot) go to the experts with the largest
/// load per replica while that exceeds the mean load per slot, each on the
/// least loaded device with a free slot that does not host the expert; the
/// shares of replicated experts are water-filled. Unlike linaPlacement no
/// replica is ever dropped, so routing every token to its expert's home is
/// always possible: the static assignment stays feasible.
std::optional<LayerPlacement>
redundantPlacement(const std::vector<double> &loads, int numDevices,
                   int slotsPerDevice, int replicaBudget, std::string &error);

/// Whole rows of one batch and layer on the replicas of a placement.
struct RowAssignment {
  /// rows[e][i]: rows of expert e served by replicas[e][i].
  std::vector<std::vector<int64_t>> rows;
  std::vector<int64_t> deviceRows; ///< per device
  int64_t maxRows() const;
  double meanRows() const;
};

/// Splits each expert's rows over its replicas in proportion to the shares
/// (largest remainder, ties to the lower replica index): a fixed split that
/// ignores the batch, as a periodic redundant-expert scheme does.
RowAssignment splitByShares(const LayerPlacement &p,
                            const std::vector<int64_t> &rows);

/// All of each expert's rows on its home device (static expert
/// parallelism, device e / ceil(E/N)); nullopt when an expert has no
/// replica there.
std::optional<RowAssignment> homeRows(const LayerPlacement &p,
                                      const std::vector<int64_t> &rows);

/// The whole-row assignment over the existing replicas that minimises the
/// largest device's rows (exact: binary search on the bound with an
/// integral max-flow per step). Moves no weights.
RowAssignment balanceRows(const LayerPlacement &p,
                          const std::vector<int64_t> &rows);

/// What one expert costs, per row and per replica, for the latency model.
struct ExpertCost {
  double weightBytes = 0;   ///< one expert's weights (read once per batch)
  double flopsPerRow = 0;   ///< FFN FLOPs of one row
  double bytesPerRow = 0;   ///< FFN activation traffic of one row
  double rowBytes = 0;      ///< bytes of one row on the network
  double denseSeconds = 0;  ///< the layer's dense block (moves overlap it)
  double moveBandwidth = 0; ///< bytes/s of a device-to-device weight move
  double moveLatency = 0;   ///< s per move
  /// The fixed cost of a batch's copy operation (grouped point-to-point
  /// calls: their launch and a link latency per peer), exposed whatever its
  /// bytes: it takes the ranks' collective stream before the all-to-alls.
  double copyOpSeconds = 0;
};

/// The fixed cost of one weight copy among `devices` ranks of `model`'s
/// cluster: the launch and one link latency (inside a node, or across
/// nodes when the group spans them).
double copyOpSeconds(const CostModel &model, int devices);

/// Latency of one MoE layer for one batch: the dense block, the dispatch
/// and combine all-to-alls (each device sends and receives the rows it
/// serves), the slowest device's experts (roofline per hosted expert with
/// rows: weights read once, FLOPs per row) and the exposed weight moves.
struct LayerTime {
  double dense = 0, allToAll = 0, experts = 0, moves = 0;
  double total() const { return dense + allToAll + experts + moves; }
};

/// The all-to-all and expert parts of LayerTime for `rows` on `p`.
LayerTime layerTime(const CostModel &model, const ExpertCost &cost,
                    const LayerPlacement &p, const RowAssignment &rows);

enum class PlacementPolicy {
  Static,   ///< expert parallelism, never moves
  EplbLike, ///< redundant experts re-planned every window, fixed shares
  Lina,     ///< redundant experts + per-batch row balancing + paid moves
  Oracle,   ///< the best placement of each batch's true rows, moves free
};

const char *toString(PlacementPolicy policy);
std::optional<PlacementPolicy> parsePlacementPolicy(const std::string &name);

struct PlannerOptions {
  PlacementPolicy policy = PlacementPolicy::Lina;
  int numExperts = 0;
  int numDevices = 0;
  int slotsPerDevice = 0;
  int replicaBudget = -1; ///< extra replicas; negative: every spare slot
  int window = 16;        ///< batches between re-plans (EPLB-like, lina)
  bool phase2 = true;     ///< lina: paid moves after the gate
  /// Expected rows per batch (lina: the initial table is chosen for it;
  /// 0: unknown, the full replica budget).
  double batchRows = 0;
  /// Lina: the seconds of a batch (rows per expert) on a placement, by
  /// which re-plans are judged; empty: the latency model (layerTime of
  /// the planner's routing). A runtime that routes by a finer estimate
  /// (lina-run's, with the node interfaces) passes it, so that the table
  /// it deploys is the one its routing makes fastest.
  std::function<double(const LayerPlacement &, const std::vector<int64_t> &)>
      estimate;
};

/// What serving one batch through one layer cost.
struct BatchOutcome {
  LayerTime time;
  int64_t maxRows = 0;
  double meanRows = 0;
  double bytesMoved = 0;       ///< weights moved for this batch (any phase)
  bool phase2 = false;         ///< lina moved weights after the gate
  bool predictiveMove = false; ///< lina moved weights before the gate
  /// The background and phase-1 copies that progressed during this batch:
  /// (expert, destination device, bytes copied in this batch).
  struct Copy {
    int expert = 0, device = 0;
    double bytes = 0;
  };
  std::vector<Copy> copies;
};

/// One MoE layer's placement over a stream of batches under a policy.
///  - Re-plans (EPLB-like, lina) every `window` batches from the long-run
///    popularity (the prior, then every row served) with
///    redundantPlacement (lina: with the replica budget, or a half, a
///    quarter or none of it, or no change, whichever the latency model
///    finds fastest for the last window's batches, or before any for
///    batches drawn from the prior; a re-plan whose copies would not land
///    within a window, or whose gain over a window would not cover the
///    copy operations it exposes, is not made); the new replicas' weights are
///    copied in the background while the dense block runs (never during the
///    all-to-alls, whose links they would share) and serve once
///    complete; a replica no longer planned serves until a finished copy
///    needs its slot. Home replicas never move.
///  - Per batch, EPLB-like splits rows by the shares; lina takes the
///    fastest (by the latency model) of the whole-row balance over the
///    replicas, the shares' split and the static home assignment, so a
///    batch is never slower than under static expert parallelism.
///  - Phase 1 (lina, with predicted loads): when no copy is under way, one
///    replica of the expert predicted hottest per replica is started on the
///    device predicted least loaded, only if its copy fits behind this
///    batch's dense block and the predicted gain exceeds the copy
///    operation's fixed cost.
///  - Phase 2 (lina, after the gate): single replica moves, evaluated on
///    the true rows, are made (on the critical path) only while the
///    expert time they save exceeds their transfer time (the first also
///    pays the copy operation).
///  - Oracle: the fastest of static, linaPlacement and redundantPlacement
///    (full, half and a quarter of the replica budget) for the true rows of
///    each batch, moves free: a reference, not a policy and not a bound.
class LayerPlanner {
public:
  static std::optional<LayerPlanner> create(const PlannerOptions &options,
                                            const CostModel &model,
                                            const ExpertCost &cost,
                                            const std::vector<double> &prior,
                                            std::string &error);

  /// Serves one batch: rows[e] = rows routed to expert e. `predicted`
  /// (optional, lina phase 1) = the expected rows per expert.
  BatchOutcome serve(const std::vector<int64_t> &rows,
                     const std::vector<double> *predicted = nullptr);

  const LayerPlacement &placement() const { return current; }

private:
  LayerPlanner(const PlannerOptions &o, const CostModel &m, const ExpertCost &c)
      : options(o), model(&m), cost(c) {}
  void replan();
  /// Of `plan` (the re-plan with the full replica budget) and the re-plans
  /// with half, a quarter of and none of it, the fastest for a mean batch,
  /// if faster than the current placement.
  /// `deployed`: the table is in place before serving (no copy cost);
  /// else a re-plan's copies must land within a window at the background
  /// budget, and it pays, for every batch they take, the copy operation's
  /// fixed cost, which a window of batches must win back.
  std::optional<LayerPlacement> cheapest(const LayerPlacement &plan,
                                         bool deployed) const;
  double backgroundCopy(double budgetBytes,
                        std::vector<BatchOutcome::Copy> &copies);
  RowAssignment route(const LayerPlacement &p,
                      const std::vector<int64_t> &rows) const;
  double moveSeconds(double bytes, int moves) const;

  PlannerOptions options;
  const CostModel *model;
  ExpertCost cost;
  LayerPlacement current, home;
  std::vector<double> popularity; ///< long-run rows per expert
  struct Pending {
    int expert = 0, device = 0;
    double bytesLeft = 0;
  };
  std::vector<Pending> pending; ///< background copies, in order
  LayerPlacement target;        ///< the last re-plan (shares for EPLB-like)
  int64_t served = 0;
  double meanBatchRows = 0; ///< rows per batch, running mean
  /// The rows of the last `window` batches, at most 16 (lina's re-plans
  /// are judged on them).
  std::deque<std::vector<int64_t>> recent;
};

} // namespace lina

#endif // LINA_SUPPORT_PLACEMENT_H
