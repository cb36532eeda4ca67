//===- MpiWait.h - Wait for MPI requests with a timeout ---------*- C++ -*-===//
//
// Part of the Lina project.
//
// Every blocking point of the runtime waits through these, so that a rank
// that stopped or runs another plan ends the job with a message naming the
// rank and what it waited for, never a hang. Needs an MPI build.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_MPIWAIT_H
#define LINA_RT_MPIWAIT_H

#include <mpi.h>

namespace lina::rt {

/// Polls `requests` until all complete (true) or `timeoutSeconds` pass
/// (false).
bool waitAllFor(MPI_Request *requests, int count, double timeoutSeconds);

/// Like waitAllFor, but on a timeout prints "lina-run: error: rank R: timed
/// out after T s <what> ..." and aborts the job (exit code 3).
void waitAllOrAbort(MPI_Request *requests, int count, double timeoutSeconds,
                    int rank, const char *what);

} // namespace lina::rt

#endif // LINA_RT_MPIWAIT_H
