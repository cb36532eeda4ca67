//===- Infer.h - Inference with per-batch expert placement ------*- C++ -*-===//
//
// Part of the Lina project.
//
// `lina-run PLAN --mode infer` serves batches of requests through an
// inference plan (docs/INFERENCE.md). Tokens are routed by a routing trace,
// so that the expert popularity skew is real; each MoE layer (the chain
// gate -> dispatch -> all_to_all -> expert_ffn -> all_to_all -> combine of
// the plan) is executed with a per-batch expert placement:
//  - static: expert parallelism, the plan's own layout;
//  - lina:   phase 1 estimates each expert's load from the tokens' paths
//            with a profile and places replicas before the gate, moving
//            expert weights while the layer's dense block runs; phase 2,
//            after the real routing, re-balances when the measured maximum
//            device load deviates from the estimate by more than a
//            threshold;
//  - oracle: the placement for the true loads of the batch.
// Each batch runs as one step plan (InferStep.h) through the shared
// Scheduler: on the cpu backend over MPI, with real numerics (tokens to the
// replicas and back with variable all-to-alls, expert weights copied with
// the same collective), or on the simulator for every rank in one process.
// Placement never changes the numerics: every token meets the same expert
// weights.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_INFER_H
#define LINA_RT_INFER_H

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace lina::rt::infer {

/// static: expert parallelism; eplb: EPLB-like redundant experts
/// re-planned every window, rows split by fixed shares; lina: cost-aware
/// replicas, per-batch routing and paid moves; oracle: each batch's best
/// placement, every copy paid (docs/INFERENCE.md).
enum class PlacementMode { Static, Eplb, Lina, Oracle };

const char *toString(PlacementMode mode);

/// The options of `lina-run --mode infer` (lina-run parses them).
struct InferOptions {
  std::string plan;
  std::string routing; ///< routing trace (JSONL), required
  std::string profile; ///< routing profile (JSON), optional
  std::string cluster; ///< --backend sim: the cluster to simulate (JSON)
  int requests = 0;    ///< requests to serve, required
  int batch = 0;       ///< requests per batch, required
  PlacementMode placement = PlacementMode::Lina;
  double phase2Threshold = 0.2;
  int slotsPerDevice = 0; ///< 0: the plan's table, else 2 x local experts
  int warmup = 1;
  uint64_t seed = 1;
  double timeout = 120;
  bool check = false; ///< compare the outputs with the static placement
  double tolerance = 1e-4;
  bool quiet = false;
};

/// What this rank found while reading its inputs, before any collective.
struct InferStartup {
  std::string error;       ///< empty when this rank is ready to serve
  int planWorldSize = -1;  ///< the plan's ranks, -1 if it was not read
  int64_t bytesNeeded = 0; ///< host memory the run will allocate on this rank
  /// FNV-1a of the plan, routing trace and profile bytes as read (each file
  /// is read once), for the agreement to compare across ranks.
  uint64_t inputsHash = 0;
};

/// The start-up agreement: called on every rank once it has read the plan,
/// trace and profile (or failed to), before any other collective. It must
/// return on every rank or throw PlanError on every rank, naming the rank
/// that failed or the ranks that disagree.
using AgreeFn = std::function<void(const InferStartup &)>;

/// What a run measured, on rank 0: the values of the summary line and the
/// time of every batch (lina-run --json).
struct InferReport {
  std::vector<double> batchSeconds; ///< per batch, the slowest rank's
  int worldSize = 0;                ///< ranks served (simulated or launched)
  int moeLayers = 0, slotsPerDevice = 0;
  double p50 = 0, p95 = 0, p99 = 0, mean = 0; ///< seconds
  double phase2Rate = 0;
  /// lina with a profile: how often the estimate's top expert was right,
  /// and the relative error of the estimated loads.
  std::optional<double> top1Accuracy, loadError;
  double maxOverMeanLoad = 0;
  double weightBytesMoved = 0;
  bool checked = false, checkPassed = false;
  double checkMaxAbsError = 0;
};

/// Runs the inference benchmark on this rank of `worldSize` ranks (MPI
/// already initialised) and prints the summary on rank 0, where it also
/// fills `report` if given. Returns the exit code (non-zero when --check
/// fails); throws PlanError for bad input.
int runInference(const InferOptions &options, int rank, int worldSize,
                 const AgreeFn &agree, InferReport *report = nullptr);

/// `--backend sim`: serves the batches in this one process, each as one
/// step plan (InferStep.h) that the Scheduler runs on the simulator of
/// `options.cluster` for all the plan's ranks; a batch's latency is the
/// simulated step time. Prints the summary and fills `report` if given.
/// Throws PlanError for bad input.
int simulateInference(const InferOptions &options,
                      InferReport *report = nullptr);

} // namespace lina::rt::infer

#endif // LINA_RT_INFER_H
