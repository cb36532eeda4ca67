//===- InferComm.h - Communication of the inference executor ----*- C++ -*-===//
//
// Part of the Lina project.
//
// The few exchanges inference needs, on a duplicate of MPI_COMM_WORLD (or
// trivially on one rank without MPI). Every request is waited for with the
// watchdog: a peer that never answers ends the job with an error naming the
// rank and the exchange, never a hang.
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
  void sum(double *values, int count, const char *what);
  double max(double value, const char *what);
  /// all[r * count + i] = rank r's mine[i].
  void allgather(const int64_t *mine, int count, int64_t *all,
                 const char *what);
  /// recv[s * count + i] = rank s's send[me * count + i].
  void alltoall(const int64_t *send, int count, int64_t *recv,
                const char *what);
  /// Variable-split exchange of float rows of `rowLen` floats; counts in
  /// rows, per peer; displacements are the prefix sums.
  void alltoallv(const float *send, const std::vector<int64_t> &sendRows,
                 float *recv, const std::vector<int64_t> &recvRows,
                 int64_t rowLen, const char *what);

  /// Point-to-point transfers of float blocks (expert weights), started
  /// now and completed by waitTransfers(); progressed by poll().
  void postSend(const float *data, int64_t count, int peer, int tag);
  void postRecv(float *data, int64_t count, int peer, int tag);
  void poll();
  void waitTransfers(const char *what);

private:
  int me, n;
  double timeout;
#ifdef LINA_HAVE_MPI
  MPI_Comm comm = MPI_COMM_NULL;
  std::vector<MPI_Request> transfers;
  void wait(MPI_Request *requests, int count, const char *what);
#endif
};

} // namespace lina::rt::infer

#endif // LINA_RT_INFER_INFERCOMM_H
