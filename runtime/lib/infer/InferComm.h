//===- InferComm.h - Exchanges of the inference driver ----------*- C++ -*-===//
//
// Part of the Lina project.
//
// The exchanges of the inference driver between its step plans (a barrier
// before each batch, the slowest rank's time, the check), on a duplicate of
// MPI_COMM_WORLD (or trivially on one rank without MPI). Every request is
// waited for with the watchdog: a peer that never answers ends the job with an
// error naming the rank and the exchange, never a hang.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_INFER_INFERCOMM_H
#define LINA_RT_INFER_INFERCOMM_H

#include <cstdint>
#include <string>
#include <vector>

#ifdef LINA_HAVE_MPI
#include <mpi.h>
#endif

namespace lina::rt::infer {

class InferComm {
public:
  InferComm(int rank, int size, double timeoutSeconds);
  ~InferComm();
  InferComm(const InferComm &) = delete;
  InferComm &operator=(const InferComm &) = delete;

  int rank() const { return me; }
  int size() const { return n; }

  void barrier(const char *what);
  double max(double value, const char *what);

private:
  int me, n;
  double timeout;
#ifdef LINA_HAVE_MPI
  MPI_Comm comm = MPI_COMM_NULL;
  void wait(MPI_Request *requests, int count, const char *what);
#endif
};

} // namespace lina::rt::infer

#endif // LINA_RT_INFER_INFERCOMM_H
