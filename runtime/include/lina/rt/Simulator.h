//===- Simulator.h - Discrete-event cluster simulator backend ---*- C++ -*-===//
//
// Part of the Lina project.
//
// Executes a plan on a model of a cluster (lina::ClusterSpec): every rank
// of the plan is simulated in one process and one thread, each driven by
// its own instance of the same Scheduler that drives the real backends,
// against one discrete-event clock. Compute ops take their roofline time
// (with per-kind efficiency and a launch cost per kernel) on the rank's
// single compute stream. A collective starts when every rank of its group
// instance has issued it and then runs as phases of flows over the links
// each phase really uses (GPU <-> NVSwitch ports inside a node, node network
// interface up and down across nodes); the links are shared max-min fairly
// among all flows by progressive filling. Collectives are not preemptible.
// There are no numerics. docs/SIMULATOR.md documents the model.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_SIMULATOR_H
#define LINA_RT_SIMULATOR_H

#include "lina/Support/CostModel.h"
#include "lina/rt/Plan.h"
#include "lina/rt/Scheduler.h"

#include <string>
#include <vector>

namespace lina::rt {

struct SimOptions {
  SchedulerOptions scheduler;
  /// Strict priority on every link: the flows of high-priority collectives
  /// (all_to_all) are max-min shared first, low-priority flows (all_reduce
  /// partitions) get what is left. An upper-bound experiment on what
  /// network-level priority could give; real fabrics do not do this.
  bool linkPriority = false;
};

struct SimResult {
  /// Per rank, the statistics of the simulated step.
  std::vector<StepStats> ranks;
  double stepTime = 0; ///< the slowest rank's step time
  double meanAllToAllBlocked = 0, meanAllToAllTime = 0, meanAllReduceTime = 0;
  int64_t events = 0; ///< discrete events processed
};

/// Simulates one step of `plan` on `cluster`. Throws PlanError if the plan
/// needs more GPUs than the cluster has, if ranks deadlock (a plan whose
/// ranks issue collectives in different orders), or if an op's simulated
/// time is not finite (naming the op).
SimResult simulate(const Plan &plan, const ClusterSpec &cluster,
                   const SimOptions &options);

/// A lower bound on the step time of `plan` on `cluster` that no schedule
/// the simulator can produce beats, whatever the policy:
///   - every link carries at most its bandwidth: the bytes all collectives
///     put on one link over its bandwidth (the link cut);
///   - every GPU has one compute stream: the sum of its compute times;
///   - the critical path of the dependency graph, each compute op at its
///     time and each collective alone on the network (its latencies plus,
///     per phase, its own most loaded link at full bandwidth);
///   - the stream path: the same path where each op also starts no earlier
///     than its ancestors on its rank can end when its compute ancestors
///     share one stream and its high-queue ancestors another (the optimal
///     one-machine makespan of each set, earliest release first), plus its
///     least tail; plans of at most 6000 ops;
///   - the compute schedule: a GPU's compute ops, each released at its
///     earliest start on that path and followed by its least tail to the
///     end of the step, on one stream: the optimal preemptive one-machine
///     schedule (Jackson's rule) of max(end + tail). It counts the time a
///     stream must idle while a collective it depends on runs;
///   - the high-queue schedule: the same for a GPU's high-priority
///     collectives, a stream that runs one at a time, each at least as
///     long as alone on the network;
///   - the link schedule: the same for every link, each collective a job of
///     its bytes on the link over the link's bandwidth (a shared link is a
///     preemptive machine).
///   The schedule terms release each op at its stream-path start.
struct SimBound {
  double step = 0; ///< max of the seven below
  double linkCut = 0;
  std::string link; ///< the link of the largest cut ("node 3 nic up")
  double compute = 0;
  double criticalPath = 0;
  double streamPath = 0;
  double computeSchedule = 0;
  double highQueueSchedule = 0;
  double linkSchedule = 0;
};
SimBound lowerBound(const Plan &plan, const ClusterSpec &cluster);

/// `weight` identical sub-flows over link `a` and link `b` (-1: only `a`).
struct SharedFlow {
  int a = -1, b = -1;
  double weight = 1;
};
/// The max-min fair rate of each sub-flow of `flows` on links of
/// `capacity` (progressive filling), as the simulator shares its links.
std::vector<double> maxMinRates(const std::vector<double> &capacity,
                                const std::vector<SharedFlow> &flows);

/// The simulated time of compute op `op`: its roofline time with the
/// efficiency of its kernel class plus one launch per kernel it runs.
double computeTime(const Plan &plan, const Op &op, const CostModel &model);

} // namespace lina::rt

#endif // LINA_RT_SIMULATOR_H
