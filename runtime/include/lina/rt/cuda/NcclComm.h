//===- NcclComm.h - NCCL communicators and collectives ----------*- C++ -*-===//
//
// Part of the Lina project.
//
// One NCCL communicator per (group instance, queue) that the plan's
// collectives use: the high- and low-priority queues never share a
// communicator, so each issues its collectives in program order. Every
// rank creates, warms up and tears down its communicators in one order
// that is a function of the plan alone (communicatorOrder), and nothing
// blocks without a deadline:
//
//  * the ncclUniqueIds travel from each instance's first rank over a
//    private duplicate of MPI_COMM_WORLD with non-blocking sends and
//    receives and a timed wait;
//  * the communicators are non-blocking (ncclConfig_t::blocking = 0): init,
//    ncclGroupEnd and the collectives return at once, and any call that
//    answers ncclInProgress is settled by polling ncclCommGetAsyncError
//    against the deadline;
//  * connections are made eagerly (NCCL_RUNTIME_CONNECT=0 unless set) and
//    every communicator is warmed up in that fixed order with a one-element
//    all_reduce and all-to-all before the first step, so no connection is
//    set up inside a step, where ranks could reach two communicators in
//    different orders;
//  * the low-priority communicator runs on at most LINA_NCCL_LOW_MAX_CTAS
//    (default 8) CTAs, leaving the SMs to compute and the all_to_all;
//  * an error or a timeout aborts every communicator (ncclCommAbort) and
//    throws CommFailure naming the rank, what was awaited and why.
//
// The device must be selected (selectDevice) before the communicators are
// created.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_CUDA_NCCLCOMM_H
#define LINA_RT_CUDA_NCCLCOMM_H

#include "lina/rt/Plan.h"
#include "lina/rt/cuda/CommWatch.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace lina::rt::cuda {

/// Sets CUDA_MODULE_LOADING=EAGER and NCCL_RUNTIME_CONNECT=0 unless the
/// user set them. Must run before the first CUDA call of the process (lazy
/// loading of a kernel module can wait for the whole device while an NCCL
/// kernel spins on a peer). Returns false if CUDA_MODULE_LOADING was
/// already set to something else than EAGER.
bool configureEagerLoading();

/// cudaSetDevice(localRank % device count) (localRank: lina/rt/Launch.h);
/// returns the device. Throws NoGpuError (with the reason) if no usable GPU
/// is present.
int selectDevice(int localRank);

/// The GPU that selectDevice(localRank) picks, for lina-run's start-up
/// report: "GPU 1 [0000:3b:00.0] NVIDIA H100 80GB HBM3" (index among the
/// visible GPUs, PCI address, name), or "no CUDA GPU: <reason>". Calls
/// configureEagerLoading() first; selects nothing and never throws.
std::string describeDevice(int localRank);

/// NCCL behind the CommDriver interface of CommWatch.
class NcclDriver final : public CommDriver {
public:
  std::vector<ncclComm_t> comms;
  CommState poll(size_t comm, std::string &reason) override;
  CommState finalize(size_t comm, std::string &reason) override;
  void destroy(size_t comm) override;
  void abort(size_t comm) override;
};

class NcclComms {
public:
  /// Creates the communicators of the plan's collectives (see above).
  /// Collective over MPI_COMM_WORLD: every rank of the plan constructs it
  /// with the same plan. Throws CudaError if the plan needs communication
  /// and MPI is not built in or not initialised, CommFailure on a timeout.
  NcclComms(const Plan &plan, int rank, double timeoutSeconds);
  /// shutdown(false) unless already shut down or aborted.
  ~NcclComms();
  NcclComms(const NcclComms &) = delete;
  NcclComms &operator=(const NcclComms &) = delete;

  /// One all_reduce and one all-to-all of one element per peer on every
  /// communicator, in communicatorOrder, each awaited before the next (on
  /// `high` or `low`, the queue's stream).
  void warmUp(cudaStream_t high, cudaStream_t low);

  bool empty() const { return specs.empty(); }
  /// The communicator of `group` for the low (else high) queue.
  size_t get(const std::string &group, bool low) const;
  CommWatch &watch() { return *supervisor; }

  /// ncclAllReduce; `what` names the op in errors.
  void allReduce(size_t comm, const void *send, void *recv, size_t count,
                 ncclDataType_t type, ncclRedOp_t op, cudaStream_t stream,
                 const std::string &what);
  /// Uniform all-to-all over the communicator's `n` ranks as grouped
  /// ncclSend/ncclRecv: piece i of `send` (pieceBytes each) goes to rank i,
  /// piece i of `recv` comes from rank i.
  void allToAll(size_t comm, const void *send, void *recv, size_t pieceBytes,
                cudaStream_t stream, const std::string &what);
  /// Variable all-to-all: sendBytes[i] bytes at send + sendOffsets[i] go
  /// to rank i; recvBytes[i] bytes from rank i land at recv +
  /// recvOffsets[i]. Zero-byte pieces are not posted (both sides agree).
  void allToAllV(size_t comm, const void *send,
                 const std::vector<size_t> &sendBytes,
                 const std::vector<size_t> &sendOffsets, void *recv,
                 const std::vector<size_t> &recvBytes,
                 const std::vector<size_t> &recvOffsets, cudaStream_t stream,
                 const std::string &what);

  /// Aborts every communicator (never waits for a peer). Idempotent.
  void abortAll();
  /// End of use: after a failure aborts, otherwise finalizes (bounded) and
  /// destroys, in communicatorOrder.
  void shutdown(bool failed);

private:
  /// Settles the result of an NCCL call on `comm`: ncclInProgress is
  /// awaited, an error aborts every communicator and throws.
  void settle(size_t comm, ncclResult_t result, const char *call,
              const std::string &what);
  void exchangeIds(std::vector<ncclUniqueId> &ids);

  int rank;
  std::vector<CommSpec> specs;
  std::map<std::pair<std::string, bool>, size_t> index;
  NcclDriver driver;
  SteadyWaitClock clock;
  std::unique_ptr<CommWatch> supervisor;
  bool closed = false;
};

ncclDataType_t ncclType(DType type);
ncclRedOp_t ncclOp(Reduction reduction);

} // namespace lina::rt::cuda

#endif // LINA_RT_CUDA_NCCLCOMM_H
