//===- InferComm.cpp - Exchanges of the inference driver ------------------===//
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
