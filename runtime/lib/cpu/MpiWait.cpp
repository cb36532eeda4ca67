//===- MpiWait.cpp - Wait for MPI requests with a timeout -----------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/MpiWait.h"

#include <chrono>
#include <cstdio>
#include <thread>

bool lina::rt::waitAllFor(MPI_Request *requests, int count,
                          double timeoutSeconds) {
  auto start = std::chrono::steady_clock::now();
  while (true) {
    int done = 0;
    MPI_Testall(count, requests, &done, MPI_STATUSES_IGNORE);
    if (done)
      return true;
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count() > timeoutSeconds)
      return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

void lina::rt::waitAllOrAbort(MPI_Request *requests, int count,
                              double timeoutSeconds, int rank,
                              const char *what) {
  if (waitAllFor(requests, count, timeoutSeconds))
    return;
  std::fprintf(stderr,
               "lina-run: error: rank %d: timed out after %.0f s %s (another "
               "rank stopped, failed, or runs a different plan or flags); "
               "aborting\n",
               rank, timeoutSeconds, what);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 3);
}
