//===- InferComm.cpp - Communication of the inference executor ------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "InferComm.h"

#include "lina/rt/Plan.h"
#ifdef LINA_HAVE_MPI
#include "lina/rt/MpiWait.h"
#endif

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <thread>

using namespace lina::rt;
using namespace lina::rt::infer;

InferComm::InferComm(int rank, int size, double timeoutSeconds)
    : me(rank), n(size), timeout(timeoutSeconds) {
#ifdef LINA_HAVE_MPI
  if (n > 1)
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
#else
  if (n != 1)
    throw PlanError("this build has no MPI: inference runs on one rank only");
#endif
}

InferComm::~InferComm() {
#ifdef LINA_HAVE_MPI
  if (comm != MPI_COMM_NULL)
    MPI_Comm_free(&comm);
#endif
}

#ifdef LINA_HAVE_MPI
void InferComm::wait(MPI_Request *requests, int count, const char *what) {
  waitAllOrAbort(requests, count, timeout, me, what);
}

namespace {
/// MPI counts are int: refuse what does not fit instead of truncating.
int toInt(int64_t v, const char *what) {
  if (v < 0 || v > INT_MAX)
    throw PlanError(std::string("message too large for MPI while ") + what);
  return static_cast<int>(v);
}
} // namespace
#endif

void InferComm::barrier(const char *what) {
#ifdef LINA_HAVE_MPI
  if (n == 1)
    return;
  MPI_Request r;
  MPI_Ibarrier(comm, &r);
  wait(&r, 1, what);
#else
  (void)what;
#endif
}

void InferComm::sum(double *values, int count, const char *what) {
#ifdef LINA_HAVE_MPI
  if (n == 1)
    return;
  std::vector<double> in(values, values + count);
  MPI_Request r;
  MPI_Iallreduce(in.data(), values, count, MPI_DOUBLE, MPI_SUM, comm, &r);
  wait(&r, 1, what);
#else
  (void)values, (void)count, (void)what;
#endif
}

double InferComm::max(double value, const char *what) {
#ifdef LINA_HAVE_MPI
  if (n == 1)
    return value;
  double out = value;
  MPI_Request r;
  MPI_Iallreduce(&value, &out, 1, MPI_DOUBLE, MPI_MAX, comm, &r);
  wait(&r, 1, what);
  return out;
#else
  (void)what;
  return value;
#endif
}

void InferComm::allgather(const int64_t *mine, int count, int64_t *all,
                          const char *what) {
#ifdef LINA_HAVE_MPI
  if (n > 1) {
    MPI_Request r;
    MPI_Iallgather(mine, count, MPI_INT64_T, all, count, MPI_INT64_T, comm, &r);
    wait(&r, 1, what);
    return;
  }
#endif
  (void)what;
  std::memcpy(all, mine, sizeof(int64_t) * count);
}

void InferComm::alltoall(const int64_t *send, int count, int64_t *recv,
                         const char *what) {
#ifdef LINA_HAVE_MPI
  if (n > 1) {
    MPI_Request r;
    MPI_Ialltoall(send, count, MPI_INT64_T, recv, count, MPI_INT64_T, comm, &r);
    wait(&r, 1, what);
    return;
  }
#endif
  (void)what;
  std::memcpy(recv, send, sizeof(int64_t) * count);
}

void InferComm::alltoallv(const float *send,
                          const std::vector<int64_t> &sendRows, float *recv,
                          const std::vector<int64_t> &recvRows, int64_t rowLen,
                          const char *what) {
#ifdef LINA_HAVE_MPI
  if (n > 1) {
    std::vector<int> sc(n), sd(n), rc(n), rd(n);
    int64_t so = 0, ro = 0;
    for (int p = 0; p < n; ++p) {
      sc[p] = toInt(sendRows[p] * rowLen, what);
      sd[p] = toInt(so, what);
      rc[p] = toInt(recvRows[p] * rowLen, what);
      rd[p] = toInt(ro, what);
      so += sendRows[p] * rowLen;
      ro += recvRows[p] * rowLen;
    }
    MPI_Request r;
    MPI_Ialltoallv(send, sc.data(), sd.data(), MPI_FLOAT, recv, rc.data(),
                   rd.data(), MPI_FLOAT, comm, &r);
    wait(&r, 1, what);
    return;
  }
#endif
  (void)what;
  if (sendRows[0] * rowLen > 0)
    std::memcpy(recv, send, sizeof(float) * sendRows[0] * rowLen);
}

void InferComm::postSend(const float *data, int64_t count, int peer, int tag) {
#ifdef LINA_HAVE_MPI
  transfers.emplace_back();
  MPI_Isend(data, toInt(count, "sending expert weights"), MPI_FLOAT, peer, tag,
            comm, &transfers.back());
#else
  (void)data, (void)count, (void)peer, (void)tag;
  throw PlanError("expert weights cannot move without MPI");
#endif
}

void InferComm::postRecv(float *data, int64_t count, int peer, int tag) {
#ifdef LINA_HAVE_MPI
  transfers.emplace_back();
  MPI_Irecv(data, toInt(count, "receiving expert weights"), MPI_FLOAT, peer,
            tag, comm, &transfers.back());
#else
  (void)data, (void)count, (void)peer, (void)tag;
  throw PlanError("expert weights cannot move without MPI");
#endif
}

void InferComm::poll() {
#ifdef LINA_HAVE_MPI
  if (transfers.empty())
    return;
  int done = 0;
  MPI_Testall(static_cast<int>(transfers.size()), transfers.data(), &done,
              MPI_STATUSES_IGNORE);
  if (done)
    transfers.clear();
#endif
}

void InferComm::waitTransfers(const char *what) {
#ifdef LINA_HAVE_MPI
  if (transfers.empty())
    return;
  wait(transfers.data(), static_cast<int>(transfers.size()), what);
  transfers.clear();
#else
  (void)what;
#endif
}
