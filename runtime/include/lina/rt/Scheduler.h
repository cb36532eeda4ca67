//===- Scheduler.h - Lina's issue policy, shared by every backend -*- C++ -*-===//
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
// Policy `lina`: a low-priority collective starts only while no
// high-priority collective is ready-but-not-started or running, and while
// the compute op about to run is not marked hold_low (it produces the input
// of an all_to_all); optionally the low-priority bytes in flight stay under
// a credit (ByteScheduler), which lets several partitions be in flight.
// Policy `fifo`: the naive baseline, every collective starts as soon as its
// dependencies are done and its queue is free.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_SCHEDULER_H
#define LINA_RT_SCHEDULER_H

#include "lina/rt/Plan.h"

#include <cstdint>
#include <string>
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

struct SchedulerOptions {
  Policy policy = Policy::Lina;
  int64_t creditBytes = 0; ///< 0: no credit window
};

struct OpInterval {
  int op = 0;
  Queue queue = Queue::Compute;
  double start = 0, end = 0;
};

struct StepStats {
  double stepTime = 0;      ///< first start to last completion
  double allToAllBlocked = 0; ///< compute idle, waiting on a high collective
  double allToAllTime = 0;  ///< wall time with an all_to_all in flight
  double allReduceTime = 0; ///< wall time with an all_reduce in flight
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

  const Plan &plan;
  SchedulerOptions options;
  std::vector<std::vector<int>> deps;
  std::vector<int> computeOrder, highOrder, lowOrder;
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
