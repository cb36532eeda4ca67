//===- Simulator.h - Discrete-event cluster simulator backend ---*- C++ -*-===//
//
// Part of the Lina project.
//
// Executes a plan on a model of a cluster (lina::ClusterSpec): every rank
// of the plan is simulated in one process, each driven by its own instance
// of the same Scheduler that drives the real backends, against one shared
// simulated clock. Compute ops take their roofline time on the rank's GPU;
// a collective starts when every rank of its group instance has issued it,
// and then progresses as a flow over the links it uses (each member GPU's
// intra-node link; the network interface of every node it spans), sharing
// each link equally with the other collectives on it, re-computed at every
// flow start and finish. Collectives are not preemptible. There are no
// numerics. docs/SIMULATOR.md documents the model.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_SIMULATOR_H
#define LINA_RT_SIMULATOR_H

#include "lina/Analysis/CostModel.h"
#include "lina/rt/Plan.h"
#include "lina/rt/Scheduler.h"

#include <vector>

namespace lina::rt {

struct SimOptions {
  SchedulerOptions scheduler;
  /// Give every collective the whole network, as if alone: the
  /// contention-free lower bound of a schedule.
  bool contentionFree = false;
};

struct SimResult {
  /// Per rank, the statistics of the simulated step.
  std::vector<StepStats> ranks;
  double stepTime = 0; ///< the slowest rank's step time
  double meanAllToAllBlocked = 0, meanAllToAllTime = 0, meanAllReduceTime = 0;
};

/// Simulates one step of `plan` on `cluster`. Throws PlanError if the plan
/// needs more GPUs than the cluster has, or if ranks deadlock (a plan whose
/// ranks issue collectives in different orders).
SimResult simulate(const Plan &plan, const ClusterSpec &cluster,
                   const SimOptions &options);

/// Roofline inputs of a compute op: FLOPs and bytes moved.
void computeCost(const Plan &plan, const Op &op, double &flops, double &bytes);

} // namespace lina::rt

#endif // LINA_RT_SIMULATOR_H
