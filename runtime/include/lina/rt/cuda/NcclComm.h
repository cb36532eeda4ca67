//===- NcclComm.h - NCCL communicators and collectives ----------*- C++ -*-===//
//
// Part of the Lina project.
//
// One NCCL communicator per (group instance, queue): the high- and
// low-priority queues never share a communicator, so each issues its
// collectives in program order independently of the other. The
// ncclUniqueId of a communicator is made by the first rank of the group
// instance and broadcast over that instance's MPI communicator
// (MPI_Comm_split of MPI_COMM_WORLD); the device must be selected
// (selectDevice) before the communicators are created.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_CUDA_NCCLCOMM_H
#define LINA_RT_CUDA_NCCLCOMM_H

#include "lina/rt/Plan.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <map>
#include <string>
#include <vector>

namespace lina::rt::cuda {

/// This process's rank on its node: OMPI_COMM_WORLD_LOCAL_RANK,
/// MPI_LOCALRANKID or SLURM_LOCALID if set, else (MPI initialised) its rank
/// in MPI_Comm_split_type(MPI_COMM_TYPE_SHARED), else 0.
int localRank();

/// cudaSetDevice(localRank % device count); returns the device. Throws
/// NoGpuError (with the reason) if no usable GPU is present.
int selectDevice(int localRank);

class NcclComms {
public:
  /// Creates the communicators of every group of `plan` with more than one
  /// rank per instance. Collective over MPI_COMM_WORLD (every rank of the
  /// plan constructs it with the same plan). Throws if the plan needs
  /// communication and MPI is not built in or not initialised.
  NcclComms(const Plan &plan, int rank);
  ~NcclComms();
  NcclComms(const NcclComms &) = delete;
  NcclComms &operator=(const NcclComms &) = delete;

  /// The communicator of `group` for the low (else high) queue.
  ncclComm_t get(const std::string &group, bool low) const;
  bool empty() const { return comms.empty(); }
  /// Description of the first asynchronous NCCL error, "" if none.
  std::string asyncError() const;
  /// Aborts every communicator (after a watchdog timeout).
  void abortAll();

private:
  std::map<std::string, std::pair<ncclComm_t, ncclComm_t>> comms;
};

ncclDataType_t ncclType(DType type);
ncclRedOp_t ncclOp(Reduction reduction);

/// Uniform all-to-all over `n` ranks as grouped ncclSend/ncclRecv: piece i
/// of `send` (pieceBytes each) goes to rank i, piece i of `recv` comes from
/// rank i.
void allToAll(ncclComm_t comm, int n, const void *send, void *recv,
              size_t pieceBytes, cudaStream_t stream);
/// Variable all-to-all: sendBytes[i] bytes at send + sendOffsets[i] go to
/// rank i; recvBytes[i] bytes from rank i land at recv + recvOffsets[i].
/// Zero-byte pieces are not posted (both sides agree on them).
void allToAllV(ncclComm_t comm, const void *send,
               const std::vector<size_t> &sendBytes,
               const std::vector<size_t> &sendOffsets, void *recv,
               const std::vector<size_t> &recvBytes,
               const std::vector<size_t> &recvOffsets, cudaStream_t stream);

} // namespace lina::rt::cuda

#endif // LINA_RT_CUDA_NCCLCOMM_H
