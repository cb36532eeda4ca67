//===- MpiWait.cpp - Wait for MPI requests with a timeout -----------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/MpiWait.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <thread>

using namespace lina::rt;

namespace {
constexpr int kQueryTag = 0x4c49;
constexpr int kAnswerTag = 0x4c4a;
constexpr size_t kActivityChars = 240;

struct Query {
  int64_t key;
  int64_t count;
};

struct Answer {
  int64_t key;
  int64_t reached;
  char activity[kActivityChars];
};

/// Process-wide arrival state. The counters and texts are shared between
/// the driver and the communication thread; MPI calls are made only by
/// whichever thread is inside a wait loop (MPI_THREAD_SERIALIZED).
struct ArrivalState {
  std::mutex mutex;
  std::map<int64_t, int64_t> arrivals;
  std::string activity = "starting", collectives;
  /// Answers still being sent (their buffers must live until then).
  std::list<std::pair<MPI_Request, Answer>> sends;
};

ArrivalState &state() {
  static ArrivalState s;
  return s;
}

bool mpiUsable() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

int worldSize() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}
} // namespace

Arrival lina::rt::arrive(int64_t key, std::vector<int> peers) {
  ArrivalState &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return {key, ++s.arrivals[key], std::move(peers)};
}

void lina::rt::setActivity(const std::string &activity) {
  ArrivalState &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.activity = activity;
}

void lina::rt::setCollectivesInFlight(const std::string &collectives) {
  ArrivalState &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.collectives = collectives;
}

void lina::rt::answerArrivalQueries() {
  if (!mpiUsable())
    return;
  ArrivalState &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  // Release the answers that have been sent.
  for (auto it = s.sends.begin(); it != s.sends.end();) {
    int done = 0;
    MPI_Test(&it->first, &done, MPI_STATUS_IGNORE);
    it = done ? s.sends.erase(it) : std::next(it);
  }
  while (true) {
    int pending = 0;
    MPI_Status status;
    MPI_Iprobe(MPI_ANY_SOURCE, kQueryTag, MPI_COMM_WORLD, &pending, &status);
    if (!pending)
      return;
    Query q;
    MPI_Recv(&q, sizeof q, MPI_BYTE, status.MPI_SOURCE, kQueryTag,
             MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    s.sends.emplace_back();
    Answer &a = s.sends.back().second;
    a.key = q.key;
    auto it = s.arrivals.find(q.key);
    a.reached = it == s.arrivals.end() ? 0 : it->second;
    std::string text = s.activity;
    if (!s.collectives.empty())
      text += "; " + s.collectives;
    std::memset(a.activity, 0, sizeof a.activity);
    std::strncpy(a.activity, text.c_str(), sizeof a.activity - 1);
    MPI_Isend(&a, sizeof a, MPI_BYTE, status.MPI_SOURCE, kAnswerTag,
              MPI_COMM_WORLD, &s.sends.back().first);
  }
}

std::string lina::rt::describeMissing(const Arrival &arrival, int rank,
                                      double answerSeconds) {
  if (!mpiUsable())
    return {};
  std::vector<int> peers = arrival.peers;
  if (peers.empty())
    for (int r = 0, n = worldSize(); r < n; ++r)
      peers.push_back(r);
  peers.erase(std::remove(peers.begin(), peers.end(), rank), peers.end());
  if (peers.empty())
    return {};

  // The queries' buffers and requests live until this process ends (it is
  // about to abort): a peer that never answers never receives them either.
  static std::list<std::pair<MPI_Request, Query>> queries;
  for (int peer : peers) {
    queries.push_back({MPI_REQUEST_NULL, {arrival.key, arrival.count}});
    MPI_Isend(&queries.back().second, sizeof(Query), MPI_BYTE, peer, kQueryTag,
              MPI_COMM_WORLD, &queries.back().first);
  }
  std::map<int, Answer> answers;
  auto start = std::chrono::steady_clock::now();
  while (answers.size() < peers.size() &&
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
                 .count() < answerSeconds) {
    // Peers that timed out too ask this rank at the same time.
    answerArrivalQueries();
    int pending = 0;
    MPI_Status status;
    MPI_Iprobe(MPI_ANY_SOURCE, kAnswerTag, MPI_COMM_WORLD, &pending, &status);
    if (!pending) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    Answer a;
    MPI_Recv(&a, sizeof a, MPI_BYTE, status.MPI_SOURCE, kAnswerTag,
             MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    a.activity[kActivityChars - 1] = '\0';
    if (a.key == arrival.key)
      answers[status.MPI_SOURCE] = a;
  }

  std::string out;
  for (int peer : peers) {
    auto it = answers.find(peer);
    std::string line;
    if (it == answers.end())
      line = "rank " + std::to_string(peer) +
             " does not answer (stopped, crashed, or busy outside MPI)";
    else if (it->second.reached < arrival.count)
      line = "rank " + std::to_string(peer) + " has not arrived (it is " +
             it->second.activity + ")";
    else
      continue;
    out += (out.empty() ? "" : "; ") + line;
  }
  return out;
}

bool lina::rt::waitAllFor(MPI_Request *requests, int count,
                          double timeoutSeconds) {
  auto start = std::chrono::steady_clock::now();
  while (true) {
    int done = 0;
    MPI_Testall(count, requests, &done, MPI_STATUSES_IGNORE);
    if (done)
      return true;
    answerArrivalQueries();
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count() > timeoutSeconds)
      return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

void lina::rt::waitAllOrAbort(MPI_Request *requests, int count,
                              double timeoutSeconds, int rank, const char *what,
                              const Arrival *arrival) {
  if (waitAllFor(requests, count, timeoutSeconds))
    return;
  std::string missing;
  if (arrival)
    missing = describeMissing(*arrival, rank, std::min(5.0, timeoutSeconds));
  if (missing.empty())
    missing = "another rank stopped, failed, or runs a different plan or flags";
  std::fprintf(stderr,
               "lina-run: error: rank %d: timed out after %.0f s %s: %s; "
               "aborting\n",
               rank, timeoutSeconds, what, missing.c_str());
  abortJob(3);
}

void lina::rt::abortJob(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  // mpirun forwards a rank's output asynchronously; an immediate abort can
  // overtake the last lines. Half a second lets them reach the log.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort(); // MPI_Abort does not return.
}
