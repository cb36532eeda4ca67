//===- CommWatch.h - Bounded waits and teardown of communicators -*- C++
//-*-===//
//
// Part of the Lina project.
//
// The decisions that keep a multi-rank GPU job from hanging, as host code
// with no CUDA or NCCL dependency, so that they are unit-tested on machines
// without a GPU:
//
//  * communicatorOrder: the communicators a rank creates, warms up and
//    tears down, in one order that is a function of the plan alone (every
//    rank walks the same list);
//  * CommWatch: every wait of the backend (communicator creation, a
//    non-blocking NCCL call that returned "in progress", a collective's
//    completion, the counts of all_to_all_v) polls a condition, checks the
//    asynchronous state of every communicator and a deadline; on an error
//    or a timeout it aborts every communicator (never destroys them: a
//    destroy waits for the peers) and throws CommFailure naming the rank,
//    what was awaited and why;
//  * backoff: waits spin, then yield; they never sleep, so a completion is
//    seen within a poll;
//  * teardownFor: what a backend may still do when it is destroyed (after a
//    failure: abort the communicators and leave the device alone, since a
//    device synchronisation or a free would wait for kernels that spin on a
//    peer).
//
// The backend plugs NCCL and the steady clock in through CommDriver and
// WaitClock; the tests plug in fakes.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_CUDA_COMMWATCH_H
#define LINA_RT_CUDA_COMMWATCH_H

#include "lina/rt/Plan.h"

#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace lina::rt::cuda {

/// One communicator of the plan: a group instance this rank belongs to, on
/// the high- or the low-priority queue.
struct CommSpec {
  std::string group;
  bool low = false;
  int instance = 0; ///< index of the instance in the group's members
  int index = 0;    ///< this rank's position in the instance
  int size = 0;     ///< ranks in the instance
  int leader = 0;   ///< world rank of position 0 (makes the id)
  std::vector<int> members;
  std::string name() const; ///< "group 'G' (high)"
};

/// The communicators `rank` needs, in the order every rank creates, warms
/// up and tears them down: groups by name, then high before low. Groups of
/// one rank per instance need none.
std::vector<CommSpec> communicatorOrder(const Plan &plan, int rank);

/// The ops whose completion events a stream must wait on before `op` runs
/// on it: of the scheduler's dependencies `deps[op.id]`, those on other
/// streams (all of them when `sideStream`, a stream of its own such as the
/// one that reads all_to_all_v counts); of the compute ones only the last,
/// since the compute stream runs them in order. Compute is reported to the
/// scheduler when enqueued, so these waits are what order a collective
/// after the compute it reads.
std::vector<int> eventsToWait(const Plan &plan,
                              const std::vector<std::vector<int>> &deps,
                              const Op &op, bool sideStream);

/// The compute op the scheduler runs last (the last in program order), -1
/// if none: the only compute op whose real completion the backend waits
/// for, since it ends the step.
int lastComputeOp(const Plan &plan);

/// State of one communicator as its library reports it.
enum class CommState { Ready, InProgress, Failed };

/// The communicator operations a CommWatch drives (NCCL in the backend).
class CommDriver {
public:
  virtual ~CommDriver();
  /// Current asynchronous state; on Failed, `reason` says why.
  virtual CommState poll(size_t comm, std::string &reason) = 0;
  /// Starts flushing the communicator before a destroy (may stay
  /// InProgress; poll() tells when it is done).
  virtual CommState finalize(size_t comm, std::string &reason) = 0;
  virtual void destroy(size_t comm) = 0;
  virtual void abort(size_t comm) = 0;
};

/// What a wait does between polls.
enum class Pause { Spin, Yield };
/// Spin for the first polls after progress, then yield the core. Never a
/// sleep: a sleeping poll costs tens of microseconds per op.
Pause backoff(unsigned idlePolls);

/// Time and the pause between polls (the steady clock in the backend).
class WaitClock {
public:
  virtual ~WaitClock();
  virtual double now() = 0;
  virtual void pause(Pause pause) = 0;
};

/// std::chrono::steady_clock; Spin is a CPU pause hint, Yield
/// std::this_thread::yield.
class SteadyWaitClock final : public WaitClock {
public:
  double now() override;
  void pause(Pause pause) override;
};

/// A wait failed or timed out; every communicator has been aborted.
class CommFailure : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

class CommWatch {
public:
  /// `timeoutSeconds` bounds every wait that names no deadline.
  CommWatch(int rank, CommDriver &driver, WaitClock &clock,
            double timeoutSeconds);

  /// Registers the next communicator (index = registration order).
  size_t add(std::string name);
  size_t size() const { return names.size(); }
  const std::string &name(size_t comm) const { return names.at(comm); }
  double timeout() const { return timeoutSeconds; }
  double now() { return clock.now(); }

  /// Polls `done` until it returns true. Every `checkEvery` polls (and
  /// before giving up) checks each live communicator's asynchronous state;
  /// past `deadline` (a clock time) or on a failed communicator, aborts all
  /// and throws CommFailure "rank R: <what()>: <reason>". `what` is called
  /// only on failure. An exception from `done` aborts all and propagates.
  void waitUntil(const std::function<bool()> &done, double deadline,
                 const std::function<std::string()> &what,
                 unsigned checkEvery = 256);
  /// Waits, bounded by the timeout, until communicator `comm` leaves the
  /// InProgress state (after a call that returned "in progress").
  void settle(size_t comm, const std::string &what);
  /// Same for every live communicator (after creating them all).
  void settleAll(const std::string &what);
  /// One check of every live communicator; aborts all and throws on error.
  void check(const std::string &what);

  /// Aborts every live communicator once; never destroys. Idempotent.
  void abortAll();
  /// End of the job: after a failure (or with `failed`), abortAll();
  /// otherwise finalizes every communicator in registration order, waits
  /// (bounded) for the flushes, then destroys them. A finalize that fails
  /// or times out aborts the rest instead.
  void shutdown(bool failed);
  bool aborted() const { return abortedAll; }
  bool live(size_t comm) const { return alive.at(comm) != 0; }

  /// Aborts all and throws CommFailure("rank R: what: reason").
  [[noreturn]] void fail(const std::string &what, const std::string &reason);

private:
  /// Index and reason of the first failed live communicator, or -1.
  long firstFailure(std::string &reason);

  int rank;
  CommDriver &driver;
  WaitClock &clock;
  double timeoutSeconds;
  std::vector<std::string> names;
  std::vector<char> alive;
  bool abortedAll = false;
};

/// What a backend's destructor may do.
struct Teardown {
  bool synchronizeDevice = false; ///< wait for the device to drain
  bool destroyComms = false;      ///< finalize + destroy (waits for peers)
  bool abortComms = false;        ///< ncclCommAbort (never waits for peers)
  bool freeMemory = false;        ///< cudaFree & co. (synchronise the device)
};
/// After a failure (an error seen by this rank, or an exception unwinding
/// through the destructor): abort the communicators and touch nothing else
/// — the process is about to report the error and MPI_Abort. Otherwise a
/// normal, orderly release.
Teardown teardownFor(bool failed);

} // namespace lina::rt::cuda

#endif // LINA_RT_CUDA_COMMWATCH_H
