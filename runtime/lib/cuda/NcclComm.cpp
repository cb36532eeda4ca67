//===- NcclComm.cpp - NCCL communicators and collectives ------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/cuda/NcclComm.h"
#include "lina/rt/cuda/CudaCheck.h"

#ifdef LINA_HAVE_MPI
#include <mpi.h>
#endif

#include <cstdlib>

using namespace lina::rt;
using namespace lina::rt::cuda;

int lina::rt::cuda::localRank() {
  for (const char *var :
       {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"})
    if (const char *v = std::getenv(var))
      return std::atoi(v);
#ifdef LINA_HAVE_MPI
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) {
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0,
                        MPI_INFO_NULL, &node);
    int r = 0;
    MPI_Comm_rank(node, &r);
    MPI_Comm_free(&node);
    return r;
  }
#endif
  return 0;
}

int lina::rt::cuda::selectDevice(int local) {
  std::string why;
  if (!cudaAvailable(&why))
    throw NoGpuError("no CUDA GPU: " + why);
  int count = 0;
  LINA_CUDA_CHECK(cudaGetDeviceCount(&count));
  int device = local % count;
  LINA_CUDA_CHECK(cudaSetDevice(device));
  return device;
}

NcclComms::NcclComms(const Plan &plan, int rank) {
  bool needed = false;
  for (const auto &[name, group] : plan.groups)
    if (group.size() > 1)
      needed = true;
  if (!needed)
    return;
#ifdef LINA_HAVE_MPI
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized)
    throw CudaError("rank " + std::to_string(rank) +
                    ": the plan has groups of several ranks; NCCL needs MPI "
                    "to share its ids (launch with mpirun and initialise MPI)");
  // std::map: every rank walks the groups in the same (name) order.
  for (const auto &[name, group] : plan.groups) {
    if (group.size() <= 1)
      continue;
    int index = 0;
    const std::vector<int> &instance = group.instanceOf(rank, &index);
    int color = static_cast<int>(&instance - group.members.data());
    MPI_Comm mpiComm;
    MPI_Comm_split(MPI_COMM_WORLD, color, index, &mpiComm);
    ncclComm_t queues[2] = {nullptr, nullptr};
    for (ncclComm_t &comm : queues) {
      ncclUniqueId id;
      if (index == 0)
        LINA_NCCL_CHECK(ncclGetUniqueId(&id));
      MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, mpiComm);
      LINA_NCCL_CHECK(ncclCommInitRank(&comm, group.size(), id, index));
    }
    MPI_Comm_free(&mpiComm);
    comms[name] = {queues[0], queues[1]};
  }
#else
  throw CudaError("rank " + std::to_string(rank) +
                  ": the plan has groups of several ranks, but this build has "
                  "no MPI to share NCCL ids (configure with MPI)");
#endif
}

NcclComms::~NcclComms() {
  for (auto &[name, pair] : comms) {
    if (pair.first)
      ncclCommDestroy(pair.first);
    if (pair.second)
      ncclCommDestroy(pair.second);
  }
}

ncclComm_t NcclComms::get(const std::string &group, bool low) const {
  auto it = comms.find(group);
  if (it == comms.end())
    throw CudaError("no NCCL communicator for group '" + group + "'");
  return low ? it->second.second : it->second.first;
}

std::string NcclComms::asyncError() const {
  for (const auto &[name, pair] : comms)
    for (ncclComm_t comm : {pair.first, pair.second}) {
      if (!comm)
        continue;
      ncclResult_t state = ncclSuccess;
      if (ncclCommGetAsyncError(comm, &state) != ncclSuccess)
        continue;
      if (state != ncclSuccess && state != ncclInProgress)
        return "NCCL communicator of group '" + name +
               "' failed: " + describe(state);
    }
  return "";
}

void NcclComms::abortAll() {
  for (auto &[name, pair] : comms) {
    if (pair.first)
      ncclCommAbort(pair.first);
    if (pair.second)
      ncclCommAbort(pair.second);
    pair = {nullptr, nullptr};
  }
}

ncclDataType_t lina::rt::cuda::ncclType(DType type) {
  switch (type) {
  case DType::F32: return ncclFloat32;
  case DType::BF16: return ncclBfloat16;
  case DType::F16: return ncclFloat16;
  case DType::I32: return ncclInt32;
  case DType::I64: return ncclInt64;
  }
  return ncclFloat32;
}

ncclRedOp_t lina::rt::cuda::ncclOp(Reduction reduction) {
  switch (reduction) {
  case Reduction::Sum: return ncclSum;
  case Reduction::Max: return ncclMax;
  case Reduction::Min: return ncclMin;
  case Reduction::Prod: return ncclProd;
  }
  return ncclSum;
}

void lina::rt::cuda::allToAll(ncclComm_t comm, int n, const void *send,
                              void *recv, size_t pieceBytes,
                              cudaStream_t stream) {
  const char *s = static_cast<const char *>(send);
  char *r = static_cast<char *>(recv);
  LINA_NCCL_CHECK(ncclGroupStart());
  for (int i = 0; i < n; ++i) {
    LINA_NCCL_CHECK(ncclSend(s + i * pieceBytes, pieceBytes, ncclUint8, i, comm,
                             stream));
    LINA_NCCL_CHECK(ncclRecv(r + i * pieceBytes, pieceBytes, ncclUint8, i, comm,
                             stream));
  }
  LINA_NCCL_CHECK(ncclGroupEnd());
}

void lina::rt::cuda::allToAllV(ncclComm_t comm, const void *send,
                               const std::vector<size_t> &sendBytes,
                               const std::vector<size_t> &sendOffsets,
                               void *recv, const std::vector<size_t> &recvBytes,
                               const std::vector<size_t> &recvOffsets,
                               cudaStream_t stream) {
  const char *s = static_cast<const char *>(send);
  char *r = static_cast<char *>(recv);
  LINA_NCCL_CHECK(ncclGroupStart());
  for (size_t i = 0; i < sendBytes.size(); ++i) {
    int peer = static_cast<int>(i);
    if (sendBytes[i])
      LINA_NCCL_CHECK(ncclSend(s + sendOffsets[i], sendBytes[i], ncclUint8, peer,
                               comm, stream));
    if (recvBytes[i])
      LINA_NCCL_CHECK(ncclRecv(r + recvOffsets[i], recvBytes[i], ncclUint8, peer,
                               comm, stream));
  }
  LINA_NCCL_CHECK(ncclGroupEnd());
}
