//===- Scheduler.h - Lina's issue policy, shared by every backend -*- C++
//-*-===//
//
// Part of the Lina project.
//
// The scheduler decides *when* each op of a plan starts; a Backend decides
// *how* (a BLAS call and an MPI request, a CUDA stream, a simulated clock).
// Compute ops run one at a time in program order. Collectives go on two
// queues; each queue is a stream that runs its collectives one at a time, in
// program order (so that every rank issues the collectives of one
// communicator in the same order, as on one NCCL stream):
//   high: all_to_all (and any collective not marked low);
//   low:  all_reduce partitions (priority low).
// Every rank issues the plan's collectives in program order across both
// queues: a policy may delay a collective, never reorder two (with NCCL the
// queues are two communicators; one order on every rank keeps them
// deadlock-free, docs/RUNTIME.md).
// Policy `lina`: a low-priority collective starts only while no
// high-priority collective runs, and then
//   - with an estimator (a cost model: the simulator): when it is predicted
//     to be off the network before the next high-priority collective needs
//     it, or when none is coming (the admission rule);
//   - without one: while the compute op running and the next one are not
//     marked hold_low (they produce the input of an all_to_all);
// optionally the low-priority bytes in flight stay under a credit
// (ByteScheduler), which lets several partitions be in flight.
// Policy `fifo`: the naive baseline, every collective starts as soon as its
// dependencies are done and its queue is free.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_SCHEDULER_H
#define LINA_RT_SCHEDULER_H

#include "lina/rt/Plan.h"

namespace lina {
struct ClusterSpec;
} // namespace lina

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace lina::rt {

enum class Queue { Compute = 0, High = 1, Low = 2 };
Queue queueOf(const Op &op);
const char *toString(Queue queue);

/// What executes ops. start() begins an op (a backend may finish compute
/// synchronously); waitAny() blocks until at least one started op has
/// completed and returns the ids of those that completed since the last
/// call; now() is the backend's clock in seconds.
class Backend {
public:
  virtual ~Backend();
  virtual void start(const Op &op) = 0;
  virtual std::vector<int> waitAny() = 0;
  virtual double now() = 0;
};

enum class Policy { Lina, Fifo };
Policy parsePolicy(const std::string &name); // throws PlanError

/// Predicted seconds of an op alone: a compute op on an idle GPU, a
/// collective on an idle network. The lina policy's admission rule reads
/// it; backends without a cost model leave it empty.
using Estimator = std::function<double(const Op &)>;

struct SchedulerOptions {
  SchedulerOptions() = default;
  SchedulerOptions(Policy policy, int64_t creditBytes = 0,
                   Estimator estimate = {})
      : policy(policy), creditBytes(creditBytes),
        estimate(std::move(estimate)) {}

  Policy policy = Policy::Lina;
  int64_t creditBytes = 0; ///< 0: no credit window
  /// With an estimator, policy lina admits a low-priority collective only
  /// when it is predicted to be off the network before the next
  /// high-priority collective needs it (or none is coming), instead of
  /// the `hold_low` marks.
  Estimator estimate;
};

/// The estimator of the cost model of `cluster` (roofline compute, ring
/// all-reduce, pairwise all-to-all; docs/COST_MODEL.md).
Estimator costModelEstimator(const Plan &plan,
                             const ::lina::ClusterSpec &cluster);

struct OpInterval {
  int op = 0;
  Queue queue = Queue::Compute;
  double start = 0, end = 0;
};

struct StepStats {
  double stepTime = 0;        ///< first start to last completion
  double allToAllBlocked = 0; ///< compute idle, waiting on a high collective
  double allToAllTime = 0;    ///< wall time with an all_to_all in flight
  double allReduceTime = 0;   ///< wall time with an all_reduce in flight
  std::vector<OpInterval> timeline;
};

class Scheduler {
public:
  Scheduler(const Plan &plan, SchedulerOptions options);

  /// Runs every op of the plan once on `backend`.
  StepStats run(Backend &backend);

  /// Dependencies of each op: explicit deps plus the writers of every
  /// buffer region it reads (views of one base overlap by element range).
  const std::vector<std::vector<int>> &dependencies() const { return deps; }

private:
  bool lowAllowed(size_t nextCompute) const;
  /// The admission rule (policy lina with an estimator): may `low` start
  /// now, with the next compute op `nextCompute` and the next
  /// high-priority collective `nextHigh`?
  bool admits(const Op &low, size_t nextLow, size_t nextCompute,
              size_t nextHigh, double now) const;

  const Plan &plan;
  SchedulerOptions options;
  std::vector<std::vector<int>> deps;
  std::vector<int> computeOrder, highOrder, lowOrder;
  /// For each low-priority collective (in lowOrder), the number of
  /// high-priority collectives before it in program order: it is issued
  /// after those and before the next one.
  std::vector<size_t> lowAnchor;
  /// With an estimator: the predicted time of each op, prefix sums of the
  /// compute ops' in compute order, and for each high-priority collective
  /// the position in compute order of the last compute op it reads.
  std::vector<double> estimates, computePrefix;
  /// With an estimator: the predicted time of the low-priority collectives
  /// from each position of lowOrder to its end.
  std::vector<double> lowSuffix;
  std::vector<long> highComputeDep;
  double computeStart = 0, lowBusyUntil = 0;
  // Run state.
  int highRunning = 0;
  int64_t lowBytesInFlight = 0;
  int lowRunning = 0;
  int runningCompute = -1;
};

/// Length of the union of the intervals of `queue` in `timeline` whose op
/// has kind `kind`.
double busyTime(const Plan &plan, const std::vector<OpInterval> &timeline,
                OpKind kind);

} // namespace lina::rt

#endif // LINA_RT_SCHEDULER_H
