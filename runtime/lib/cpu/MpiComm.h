//===- MpiComm.h - MPI collectives of the CPU backend -----------*- C++ -*-===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_CPU_MPICOMM_H
#define LINA_RT_CPU_MPICOMM_H

#include "lina/rt/Plan.h"

#include <mpi.h>

#include "lina/rt/MpiWait.h"
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>

#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace lina::rt {

/// Issues and progresses the plan's collectives. All MPI calls after
/// construction happen on one communication thread, so MPI needs only
/// MPI_THREAD_SERIALIZED.
class MpiComm {
public:
  MpiComm(const Plan &plan, int rank, double timeoutSeconds);
  ~MpiComm();

  /// Gives access to the backend's buffer storage.
  void attach(std::function<char *(int)> data) { this->data = std::move(data); }
  /// Packs the op's input and hands it to the communication thread.
  void start(const Op &op);
  /// Blocks until at least one collective completes; unpacks the results.
  std::vector<int> waitAny();

private:
  struct Pending {
    const Op *op = nullptr;
    MPI_Comm comm = MPI_COMM_NULL;
    std::vector<char> send, recv; ///< staging for uniform all_to_all
    std::vector<int> sendCounts, sendDispls, recvCounts, recvDispls;
    MPI_Request request = MPI_REQUEST_NULL;
    std::chrono::steady_clock::time_point started;
    Arrival arrival; ///< for the watchdog: who else must arrive
  };

  void issue(Pending &p);
  void unpack(Pending &p);
  void loop();
  /// Publishes the collectives in flight, for peers that wait for this rank.
  void describeInFlight(const std::vector<std::unique_ptr<Pending>> &active);

  const Plan &plan;
  int rank;
  double timeout;
  std::function<char *(int)> data;
  /// Per group name: the communicators of the high and low queues.
  std::map<std::string, std::pair<MPI_Comm, MPI_Comm>> comms;

  std::mutex mutex;
  std::condition_variable inboxReady, outboxReady;
  std::deque<std::unique_ptr<Pending>> inbox, outbox;
  std::atomic<bool> stopping{false};
  std::thread worker;
};

} // namespace lina::rt

#endif // LINA_RT_CPU_MPICOMM_H
