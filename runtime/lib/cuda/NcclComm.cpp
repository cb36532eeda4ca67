//===- NcclComm.cpp - NCCL communicators and collectives ------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/cuda/NcclComm.h"
#include "lina/rt/cuda/CudaCheck.h"

#ifdef LINA_HAVE_MPI
#include "lina/rt/MpiWait.h"
#include <mpi.h>
#endif

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

using namespace lina::rt;
using namespace lina::rt::cuda;

bool lina::rt::cuda::configureEagerLoading() {
  // overwrite = 0: a user's explicit choice wins (and is documented as
  // unsafe for multi-rank jobs).
  setenv("NCCL_RUNTIME_CONNECT", "0", 0);
  setenv("CUDA_MODULE_LOADING", "EAGER", 0);
  const char *loading = std::getenv("CUDA_MODULE_LOADING");
  return loading && std::strcmp(loading, "EAGER") == 0;
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

std::string lina::rt::cuda::describeDevice(int local) {
  configureEagerLoading();
  std::string why;
  if (!cudaAvailable(&why))
    return "no CUDA GPU: " + why;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count <= 0)
    return "no CUDA GPU: cudaGetDeviceCount failed";
  int device = local % count;
  std::string out = "GPU " + std::to_string(device);
  cudaDeviceProp prop;
  cudaError_t err = cudaGetDeviceProperties(&prop, device);
  if (err != cudaSuccess) {
    cudaGetLastError(); // not sticky: leave no error for later checks
    return out + " (" + describe(err) + ")";
  }
  char bus[32];
  std::snprintf(bus, sizeof bus, "%04x:%02x:%02x.0",
                static_cast<unsigned>(prop.pciDomainID),
                static_cast<unsigned>(prop.pciBusID),
                static_cast<unsigned>(prop.pciDeviceID));
  return out + " [" + bus + "] " + prop.name;
}

//===----------------------------------------------------------------------===//
// NcclDriver
//===----------------------------------------------------------------------===//

namespace {
CommState stateOf(ncclResult_t r, ncclComm_t comm, std::string &reason) {
  if (r == ncclSuccess)
    return CommState::Ready;
  if (r == ncclInProgress)
    return CommState::InProgress;
  reason = describe(r);
  if (comm)
    if (const char *last = ncclGetLastError(comm); last && *last)
      reason += " (" + std::string(last) + ")";
  return CommState::Failed;
}
} // namespace

CommState NcclDriver::poll(size_t comm, std::string &reason) {
  ncclComm_t c = comms.at(comm);
  ncclResult_t state = ncclSuccess;
  ncclResult_t r = ncclCommGetAsyncError(c, &state);
  if (r != ncclSuccess) {
    reason = "ncclCommGetAsyncError failed: " + describe(r);
    return CommState::Failed;
  }
  return stateOf(state, c, reason);
}

CommState NcclDriver::finalize(size_t comm, std::string &reason) {
  ncclComm_t c = comms.at(comm);
  CommState s = stateOf(ncclCommFinalize(c), c, reason);
  // Non-blocking: the flush completes when the asynchronous state is
  // ncclSuccess again.
  return s == CommState::Ready ? poll(comm, reason) : s;
}

void NcclDriver::destroy(size_t comm) {
  if (comms.at(comm))
    ncclCommDestroy(comms[comm]);
  comms[comm] = nullptr;
}

void NcclDriver::abort(size_t comm) {
  if (comms.at(comm))
    ncclCommAbort(comms[comm]);
  comms[comm] = nullptr;
}

//===----------------------------------------------------------------------===//
// NcclComms
//===----------------------------------------------------------------------===//

namespace {
int lowMaxCtas() {
  if (const char *v = std::getenv("LINA_NCCL_LOW_MAX_CTAS")) {
    char *end = nullptr;
    long n = std::strtol(v, &end, 10);
    if (*v && !*end && n >= 1 && n <= 64)
      return static_cast<int>(n);
    throw CudaError("LINA_NCCL_LOW_MAX_CTAS='" + std::string(v) +
                    "' is not an integer in [1, 64]");
  }
  return 8;
}
} // namespace

NcclComms::NcclComms(const Plan &plan, int rank, double timeoutSeconds)
    : rank(rank), specs(communicatorOrder(plan, rank)) {
  supervisor = std::make_unique<CommWatch>(rank, driver, clock, timeoutSeconds);
  if (specs.empty())
    return;
#ifdef LINA_HAVE_MPI
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized)
    throw CudaError("rank " + std::to_string(rank) +
                    ": the plan has groups of several ranks; NCCL needs MPI "
                    "to share its ids (launch with mpirun and initialise MPI)");
  int ctas = lowMaxCtas();
  std::vector<ncclUniqueId> ids(specs.size());
  exchangeIds(ids);
  // Non-blocking creation of every communicator, in the fixed order, then
  // one bounded wait for all of them: a rank that never arrives is a
  // timeout, not a hang.
  driver.comms.assign(specs.size(), nullptr);
  for (size_t i = 0; i < specs.size(); ++i) {
    const CommSpec &spec = specs[i];
    index[{spec.group, spec.low}] = supervisor->add(spec.name());
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    if (spec.low)
      config.maxCTAs = ctas;
    ncclResult_t r = ncclCommInitRankConfig(&driver.comms[i], spec.size, ids[i],
                                            spec.index, &config);
    if (r != ncclSuccess && r != ncclInProgress)
      supervisor->fail("creating the NCCL communicator of " + spec.name(),
                       "ncclCommInitRankConfig failed: " + describe(r));
  }
  supervisor->settleAll("creating the NCCL communicators");
#else
  (void)timeoutSeconds;
  throw CudaError("rank " + std::to_string(rank) +
                  ": the plan has groups of several ranks, but this build has "
                  "no MPI to share NCCL ids (configure with MPI)");
#endif
}

void NcclComms::exchangeIds(std::vector<ncclUniqueId> &ids) {
#ifdef LINA_HAVE_MPI
  double timeout = supervisor->timeout();
  auto timedOut = [&](const std::string &what) {
    return CommFailure("rank " + std::to_string(rank) + ": " + what +
                       ": no answer within the timeout of " +
                       std::to_string(static_cast<int>(timeout)) +
                       " s (a rank is missing, stuck, failed, or runs another "
                       "plan)");
  };
  // A private communicator: the ids never match another message of the
  // job. MPI_Comm_idup is collective but non-blocking, so it is bounded too.
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Request dup = MPI_REQUEST_NULL;
  MPI_Comm_idup(MPI_COMM_WORLD, &comm, &dup);
  if (!waitAllFor(&dup, 1, timeout))
    throw timedOut("duplicating MPI_COMM_WORLD for the NCCL ids");
  std::vector<MPI_Request> requests;
  for (size_t i = 0; i < specs.size(); ++i) {
    const CommSpec &spec = specs[i];
    int tag = static_cast<int>(i);
    if (spec.index == 0) {
      LINA_NCCL_CHECK(ncclGetUniqueId(&ids[i]));
      for (int member : spec.members)
        if (member != rank) {
          requests.emplace_back();
          MPI_Isend(&ids[i], sizeof(ncclUniqueId), MPI_BYTE, member, tag, comm,
                    &requests.back());
        }
    } else {
      requests.emplace_back();
      MPI_Irecv(&ids[i], sizeof(ncclUniqueId), MPI_BYTE, spec.leader, tag, comm,
                &requests.back());
    }
  }
  bool ok =
      requests.empty() ||
      waitAllFor(requests.data(), static_cast<int>(requests.size()), timeout);
  if (!ok) {
    // Leave the requests and the communicator to MPI_Abort.
    throw timedOut("exchanging the NCCL ids");
  }
  MPI_Comm_free(&comm);
#else
  (void)ids;
#endif
}

NcclComms::~NcclComms() {
  if (!closed)
    shutdown(supervisor && supervisor->aborted());
}

void NcclComms::shutdown(bool failed) {
  closed = true;
  if (supervisor)
    supervisor->shutdown(failed);
}

void NcclComms::abortAll() {
  if (supervisor)
    supervisor->abortAll();
}

size_t NcclComms::get(const std::string &group, bool low) const {
  auto it = index.find({group, low});
  if (it == index.end())
    throw CudaError("no NCCL communicator for group '" + group + "' (" +
                    (low ? "low" : "high") + " queue)");
  return it->second;
}

void NcclComms::settle(size_t comm, ncclResult_t result, const char *call,
                       const std::string &what) {
  if (result == ncclSuccess)
    return;
  if (result == ncclInProgress) {
    supervisor->settle(comm, what);
    return;
  }
  std::string reason = std::string(call) + " failed: " + describe(result);
  if (const char *last = ncclGetLastError(driver.comms.at(comm)); last && *last)
    reason += " (" + std::string(last) + ")";
  supervisor->fail(what, reason);
}

void NcclComms::warmUp(cudaStream_t high, cudaStream_t low) {
  if (specs.empty())
    return;
  int maxSize = 0;
  for (const CommSpec &spec : specs)
    maxSize = std::max(maxSize, spec.size);
  // One float to reduce, one per peer to send and to receive.
  float *scratch = nullptr;
  size_t floats = 1 + 2 * static_cast<size_t>(maxSize);
  cudaEvent_t done = nullptr;
  try {
    LINA_CUDA_CHECK(cudaMalloc(&scratch, floats * sizeof(float)));
    LINA_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    for (size_t i = 0; i < specs.size(); ++i) {
      const CommSpec &spec = specs[i];
      cudaStream_t s = spec.low ? low : high;
      std::string what = "warming up the NCCL communicator of " + spec.name();
      LINA_CUDA_CHECK(cudaMemsetAsync(scratch, 0, floats * sizeof(float), s));
      allReduce(i, scratch, scratch, 1, ncclFloat32, ncclSum, s, what);
      allToAll(i, scratch + 1, scratch + 1 + spec.size, sizeof(float), s, what);
      LINA_CUDA_CHECK(cudaEventRecord(done, s));
      supervisor->waitUntil(
          [&] {
            cudaError_t e = cudaEventQuery(done);
            if (e == cudaErrorNotReady)
              return false;
            LINA_CUDA_CHECK(e);
            return true;
          },
          supervisor->now() + supervisor->timeout(), [&] { return what; });
    }
  } catch (...) {
    // The communicators are aborted (a device error leaves them unusable);
    // the buffers are left to process exit: a free would synchronise with
    // kernels that may spin on a peer.
    supervisor->abortAll();
    throw;
  }
  cudaEventDestroy(done);
  cudaFree(scratch);
}

void NcclComms::allReduce(size_t comm, const void *send, void *recv,
                          size_t count, ncclDataType_t type, ncclRedOp_t op,
                          cudaStream_t stream, const std::string &what) {
  settle(
      comm,
      ncclAllReduce(send, recv, count, type, op, driver.comms.at(comm), stream),
      "ncclAllReduce", what);
}

void NcclComms::allToAll(size_t comm, const void *send, void *recv,
                         size_t pieceBytes, cudaStream_t stream,
                         const std::string &what) {
  int n = specs.at(comm).size;
  std::vector<size_t> bytes(n, pieceBytes), offsets(n);
  for (int i = 0; i < n; ++i)
    offsets[i] = static_cast<size_t>(i) * pieceBytes;
  allToAllV(comm, send, bytes, offsets, recv, bytes, offsets, stream, what);
}

void NcclComms::allToAllV(size_t comm, const void *send,
                          const std::vector<size_t> &sendBytes,
                          const std::vector<size_t> &sendOffsets, void *recv,
                          const std::vector<size_t> &recvBytes,
                          const std::vector<size_t> &recvOffsets,
                          cudaStream_t stream, const std::string &what) {
  ncclComm_t c = driver.comms.at(comm);
  size_t n = static_cast<size_t>(specs.at(comm).size);
  if (sendBytes.size() != n || sendOffsets.size() != n ||
      recvBytes.size() != n || recvOffsets.size() != n)
    supervisor->fail(what, "all-to-all over " + std::to_string(n) +
                               " ranks with " +
                               std::to_string(sendBytes.size()) + " pieces");
  const char *s = static_cast<const char *>(send);
  char *r = static_cast<char *>(recv);
  settle(comm, ncclGroupStart(), "ncclGroupStart", what);
  ncclResult_t posted = ncclSuccess;
  const char *failedCall = nullptr;
  auto ok = [](ncclResult_t r) {
    return r == ncclSuccess || r == ncclInProgress;
  };
  for (size_t i = 0; i < n && ok(posted); ++i) {
    int peer = static_cast<int>(i);
    if (sendBytes[i]) {
      posted = ncclSend(s + sendOffsets[i], sendBytes[i], ncclUint8, peer, c,
                        stream);
      failedCall = "ncclSend";
    }
    if (ok(posted) && recvBytes[i]) {
      posted = ncclRecv(r + recvOffsets[i], recvBytes[i], ncclUint8, peer, c,
                        stream);
      failedCall = "ncclRecv";
    }
  }
  // Always close the group (an open group would swallow later calls).
  ncclResult_t ended = ncclGroupEnd();
  if (!ok(posted))
    settle(comm, posted, failedCall, what);
  settle(comm, ended, "ncclGroupEnd", what);
}

ncclDataType_t lina::rt::cuda::ncclType(DType type) {
  switch (type) {
  case DType::F32:
    return ncclFloat32;
  case DType::BF16:
    return ncclBfloat16;
  case DType::F16:
    return ncclFloat16;
  case DType::I32:
    return ncclInt32;
  case DType::I64:
    return ncclInt64;
  }
  return ncclFloat32;
}

ncclRedOp_t lina::rt::cuda::ncclOp(Reduction reduction) {
  switch (reduction) {
  case Reduction::Sum:
    return ncclSum;
  case Reduction::Max:
    return ncclMax;
  case Reduction::Min:
    return ncclMin;
  case Reduction::Prod:
    return ncclProd;
  }
  return ncclSum;
}
