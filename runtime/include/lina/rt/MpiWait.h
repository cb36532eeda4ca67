//===- MpiWait.h - Wait for MPI requests with a timeout ---------*- C++ -*-===//
//
// Part of the Lina project.
//
// Every blocking point of the runtime waits through these, so that a rank
// that stopped or runs another plan ends the job with a message naming the
// rank and what it waited for, never a hang. Needs an MPI build.
//
// Arrival tracking names the rank that is late, not just the one that
// waited: each rank counts its arrivals at every collective point (a plan
// op, or one of the driver's own collectives). When a wait times out, the
// waiting rank asks its peers (point-to-point messages on MPI_COMM_WORLD
// with tags of their own) how often they have arrived at that point and
// what they are doing; every rank answers from inside its wait loops. A
// peer that has not arrived is named with its answer; a peer that does not
// answer within a few seconds is named as stopped, crashed, or busy.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_MPIWAIT_H
#define LINA_RT_MPIWAIT_H

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace lina::rt {

/// Arrival keys below 0 belong to the drivers; plan ops use their op id.
constexpr int64_t kDriverCollective = -1;
constexpr int64_t kCommunicatorSetup = -2;

/// A collective point this rank has reached: the `count`-th arrival at
/// `key`. `peers` are the world ranks that must arrive too (empty: all).
struct Arrival {
  int64_t key = kDriverCollective;
  int64_t count = 0;
  std::vector<int> peers;
};

/// Records one more arrival of this rank at `key` and returns it.
Arrival arrive(int64_t key, std::vector<int> peers = {});

/// What this rank is doing, as its answer to a peer that waits for it
/// ("in step 3 of 10"). `collectives` describes the collectives in flight
/// (set by the communication thread; empty when none).
void setActivity(const std::string &activity);
void setCollectivesInFlight(const std::string &collectives);

/// Answers the queries of peers whose waits timed out. Called from every
/// wait loop, on the thread that makes this rank's MPI calls at the time.
void answerArrivalQueries();

/// Asks the peers of `arrival` whether they have reached it; returns a
/// sentence naming each that has not ("rank 1 has not arrived (it is in
/// step 2 of 10)"; "rank 3 does not answer (stopped, crashed, or busy
/// computing)"), or an empty string when every peer has arrived. Waits at
/// most `answerSeconds` for the answers. Needs the caller's rank.
std::string describeMissing(const Arrival &arrival, int rank,
                            double answerSeconds);

/// Polls `requests` until all complete (true) or `timeoutSeconds` pass
/// (false), answering arrival queries meanwhile.
bool waitAllFor(MPI_Request *requests, int count, double timeoutSeconds);

/// Like waitAllFor, but on a timeout prints "lina-run: error: rank R: timed
/// out after T s <what> ...", naming the ranks that have not arrived (when
/// `arrival` is given), and aborts the job (exit code 3).
void waitAllOrAbort(MPI_Request *requests, int count, double timeoutSeconds,
                    int rank, const char *what,
                    const Arrival *arrival = nullptr);

/// Flushes stdout and stderr, gives the launcher a moment to forward them,
/// and aborts the job with `code`: the message printed before an abort must
/// reach the log.
[[noreturn]] void abortJob(int code);

} // namespace lina::rt

#endif // LINA_RT_MPIWAIT_H
