//===- CudaBackend.cpp - Plan execution on GPUs with NCCL -----------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/cuda/CudaBackend.h"
#include "lina/rt/Init.h"
#include "lina/rt/Launch.h"
#include "lina/rt/cuda/CommWatch.h"
#include "lina/rt/cuda/CudaCheck.h"
#include "lina/rt/cuda/CudaKernels.h"
#include "lina/rt/cuda/NcclComm.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>

using namespace lina::rt;
using namespace lina::rt::cuda;

namespace lina::rt::cuda {
/// Device resources of one CudaBackend.
struct DeviceState {
  int device = 0;
  cudaStream_t compute = nullptr, high = nullptr, low = nullptr, aux = nullptr;
  cublasHandle_t blas = nullptr;
  std::vector<char *> storage;     ///< per base buffer id
  std::vector<cudaEvent_t> events; ///< per op: completion
  std::vector<double> startedAt;   ///< per op
  std::vector<int> inFlight;       ///< collectives and the last compute op
  std::vector<int> unchecked;      ///< compute ops reported early, in order
  size_t uncheckedHead = 0;
  cudaEvent_t countsReady = nullptr; ///< all_to_all_v counts on the host
  char *workspace = nullptr;         ///< compute-stream scratch
  size_t workspaceBytes = 0;
  char *staging[2][2] = {{nullptr, nullptr},
                         {nullptr, nullptr}}; ///< [low][send/recv]
  size_t stagingBytes[2][2] = {{0, 0}, {0, 0}};
  uint32_t *deviceErrors = nullptr; ///< 2 per op (assignSlots)
  uint32_t *hostErrors = nullptr;   ///< pinned copy
  int64_t *hostCounts = nullptr;    ///< pinned, all_to_all_v counts
  size_t hostCountsLen = 0;
};
} // namespace lina::rt::cuda

namespace {
constexpr size_t kAlign = 256;
size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

/// Carves the compute workspace; sizing and use share this code.
class Bump {
public:
  Bump(char *base, size_t capacity) : base(base), capacity(capacity) {}
  template <typename T = void> T *take(size_t bytes) {
    size_t offset = used;
    used += aligned(std::max<size_t>(bytes, 1));
    if (base && used > capacity)
      throw CudaError("cuda backend: compute workspace too small");
    return reinterpret_cast<T *>(base ? base + offset : nullptr);
  }
  size_t size() const { return used; }

private:
  char *base;
  size_t capacity, used = 0;
};

int groupSize(const Plan &plan, const Op &op) {
  return plan.groups.at(op.group).size();
}

bool usesSlots(OpKind kind) {
  return kind == OpKind::Dispatch || kind == OpKind::DispatchGrad ||
         kind == OpKind::Combine || kind == OpKind::CombineGrad;
}
} // namespace

//===----------------------------------------------------------------------===//
// Set-up
//===----------------------------------------------------------------------===//

CudaBackend::CudaBackend(const Plan &plan, int rank, double timeoutSeconds)
    : plan(plan), rank(rank), timeout(timeoutSeconds),
      epoch(std::chrono::steady_clock::now()),
      dev(std::make_unique<DeviceState>()) {
  setErrorRank(rank);
  checkPlan();
  // Before the first CUDA call: no lazy module load (which may wait for the
  // device) once NCCL kernels run, and NCCL connects at creation.
  configureEagerLoading();
  dev->device = selectDevice(localRank());
  int least = 0, greatest = 0;
  LINA_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  LINA_CUDA_CHECK(cudaStreamCreateWithPriority(&dev->compute,
                                               cudaStreamNonBlocking, least));
  LINA_CUDA_CHECK(cudaStreamCreateWithPriority(
      &dev->high, cudaStreamNonBlocking, greatest));
  LINA_CUDA_CHECK(
      cudaStreamCreateWithPriority(&dev->low, cudaStreamNonBlocking, least));
  LINA_CUDA_CHECK(cudaStreamCreateWithFlags(&dev->aux, cudaStreamNonBlocking));
  LINA_CUBLAS_CHECK(cublasCreate(&dev->blas));
  LINA_CUBLAS_CHECK(cublasSetStream(dev->blas, dev->compute));
  dev->events.assign(plan.ops.size(), nullptr);
  for (cudaEvent_t &e : dev->events)
    LINA_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  LINA_CUDA_CHECK(
      cudaEventCreateWithFlags(&dev->countsReady, cudaEventDisableTiming));
  dev->startedAt.assign(plan.ops.size(), 0.0);
  lastCompute = lastComputeOp(plan);
  deps = Scheduler(plan, {}).dependencies();
  // Every rank creates and warms up its communicators in one order that
  // depends on the plan only; each wait is bounded.
  comms = std::make_unique<NcclComms>(plan, rank, timeout);
  comms->warmUp(dev->high, dev->low);
}

CudaBackend::~CudaBackend() {
  // Best effort: no exceptions from a destructor. While an error unwinds
  // (this rank's or the caller's), a device synchronisation, a free or a
  // communicator destroy could wait forever for an NCCL kernel spinning on
  // a peer: abort the communicators and leave the rest to process exit.
  Teardown t = teardownFor(hasFailed || std::uncaught_exceptions() > 0);
  if (t.abortComms) {
    if (comms)
      comms->abortAll();
    return;
  }
  if (t.synchronizeDevice)
    cudaDeviceSynchronize();
  if (t.destroyComms && comms)
    comms->shutdown(false);
  if (!t.freeMemory)
    return;
  for (char *p : dev->storage)
    if (p)
      cudaFree(p);
  cudaFree(dev->workspace);
  for (auto &queue : dev->staging)
    for (char *p : queue)
      cudaFree(p);
  cudaFree(dev->deviceErrors);
  cudaFreeHost(dev->hostErrors);
  cudaFreeHost(dev->hostCounts);
  for (cudaEvent_t e : dev->events)
    if (e)
      cudaEventDestroy(e);
  if (dev->countsReady)
    cudaEventDestroy(dev->countsReady);
  if (dev->blas)
    cublasDestroy(dev->blas);
  for (cudaStream_t s : {dev->compute, dev->high, dev->low, dev->aux})
    if (s)
      cudaStreamDestroy(s);
}

void CudaBackend::checkPlan() const {
  for (const Op &op : plan.ops) {
    auto fail = [&](const std::string &why) {
      throw PlanError(op.describe() + ": " + why);
    };
    std::vector<int> main = op.buffersWithRole('f');
    for (int id : main) {
      const Buffer &b = plan.buffers[id];
      const Buffer &first = plan.buffers[main[0]];
      if (!isFloatType(b.dtype))
        fail("buffer " + std::to_string(id) + " ('" + b.name + "') is " +
             toString(b.dtype) +
             "; the cuda backend computes on f32, bf16 or f16");
      if (b.dtype != first.dtype)
        fail("the cuda backend needs one floating-point dtype per op: buffer " +
             std::to_string(first.id) + " is " + toString(first.dtype) +
             " but buffer " + std::to_string(id) + " is " + toString(b.dtype));
    }
    for (int id : op.buffersWithRole('w'))
      if (!isFloatType(plan.buffers[id].dtype))
        fail("gate weights (buffer " + std::to_string(id) +
             ") must be f32, bf16 or f16");
    for (int id : op.buffersWithRole('i'))
      if (plan.buffers[id].dtype != DType::I32)
        fail("expert ids (buffer " + std::to_string(id) +
             ") must be i32 on the cuda backend");
    if (op.kind == OpKind::Copy) {
      if (plan.buffers[op.inputs[0]].dtype != plan.buffers[op.outputs[0]].dtype)
        fail("copy between different dtypes");
      if (op.sizes.size() > 8)
        fail("the cuda backend copies boxes of at most 8 dimensions");
    }
    if (op.kind == OpKind::AllToAll &&
        plan.buffers[op.inputs[0]].shape.size() > 8)
      fail("the cuda backend exchanges tensors of at most 8 dimensions");
    if (usesSlots(op.kind)) {
      int b = op.kind == OpKind::Dispatch      ? -1
              : op.kind == OpKind::CombineGrad ? 1
                                               : 0;
      const Buffer &buf =
          b < 0 ? plan.buffers[op.outputs[0]] : plan.buffers[op.inputs[b]];
      if (buf.shape[0] > 12288)
        fail("the cuda backend supports at most 12288 experts");
    }
  }
}

namespace {
/// Typed access to an op's buffers for the workspace functions below.
struct WorkspaceArgs {
  explicit WorkspaceArgs(const Plan &plan) : plan(plan) {}
  const std::vector<int64_t> &shape(int id) const {
    return plan.buffers[id].shape;
  }
  size_t es(int id) const {
    return static_cast<size_t>(dtypeBytes(plan.buffers[id].dtype));
  }
  const Plan &plan;
};

// The compute scratch of each compute kind of OpKinds.def: the same carving
// as CudaBackend::run<Kind>, in the same order.
void workspaceDenseGrad(const Plan &plan, const Op &op, Bump &bump) {
  WorkspaceArgs a(plan);
  auto &dy = a.shape(op.inputs[0]);
  size_t bytes = dy[0] * dy[1] * a.es(op.inputs[0]);
  bump.take(bytes);
  bump.take(bytes);
}

void workspaceGateOrGateGrad(const Plan &plan, const Op &op, Bump &bump) {
  WorkspaceArgs a(plan);
  int x = op.kind == OpKind::Gate ? op.inputs[0] : op.inputs[1];
  int wg = op.kind == OpKind::Gate ? op.inputs[1] : op.inputs[2];
  int ids = op.kind == OpKind::Gate ? op.outputs[0] : op.inputs[3];
  size_t t = a.shape(x)[0], e = a.shape(wg)[1], k = a.shape(ids)[1];
  bump.take(t * e * 4); // logits
  bump.take(t * k * 4); // f32 gate weights
  if (op.kind == OpKind::GateGrad) {
    bump.take(t * e * 4);       // dlogits
    bump.take(t * e * a.es(x)); // dlogits in the data type
  }
}
void workspaceGate(const Plan &plan, const Op &op, Bump &bump) {
  workspaceGateOrGateGrad(plan, op, bump);
}
void workspaceGateGrad(const Plan &plan, const Op &op, Bump &bump) {
  workspaceGateOrGateGrad(plan, op, bump);
}

void workspaceSlots(const Plan &plan, const Op &op, Bump &bump) {
  WorkspaceArgs a(plan);
  int idsId = op.buffersWithRole('i')[0];
  int bufId = op.kind == OpKind::Dispatch      ? op.outputs[0]
              : op.kind == OpKind::CombineGrad ? op.inputs[1]
                                               : op.inputs[0];
  size_t t = a.shape(idsId)[0], k = a.shape(idsId)[1], e = a.shape(bufId)[0];
  bump.take(slotWorkspaceBytes(t, k, e));
  bump.take(t * k * 4); // slots
  bump.take(e * 4);     // kept per expert
  bump.take(t * k * 4); // f32 weights
  bump.take(t * k * 4); // f32 dweights
}
void workspaceDispatch(const Plan &plan, const Op &op, Bump &bump) {
  workspaceSlots(plan, op, bump);
}
void workspaceDispatchGrad(const Plan &plan, const Op &op, Bump &bump) {
  workspaceSlots(plan, op, bump);
}
void workspaceCombine(const Plan &plan, const Op &op, Bump &bump) {
  workspaceSlots(plan, op, bump);
}
void workspaceCombineGrad(const Plan &plan, const Op &op, Bump &bump) {
  workspaceSlots(plan, op, bump);
}

/// `count` buffers of [El,N,F] (z; for expert_ffn_grad also act and dz).
void workspaceExpertFfnScratch(const Plan &plan, const Op &op, int count,
                               Bump &bump) {
  WorkspaceArgs a(plan);
  size_t b = op.kind == OpKind::ExpertFfn ? 0 : 1;
  auto &in = a.shape(op.inputs[b]);
  auto &w1 = a.shape(op.inputs[b + 1]);
  size_t bytes = in[0] * in[1] * w1[2] * a.es(op.inputs[b]);
  for (int i = 0; i < count; ++i)
    bump.take(bytes);
}
void workspaceExpertFfn(const Plan &plan, const Op &op, Bump &bump) {
  workspaceExpertFfnScratch(plan, op, 1, bump);
}
void workspaceExpertFfnGrad(const Plan &plan, const Op &op, Bump &bump) {
  workspaceExpertFfnScratch(plan, op, 3, bump);
}
void workspaceExpertFfnGradInput(const Plan &plan, const Op &op, Bump &bump) {
  workspaceExpertFfnScratch(plan, op, 1, bump);
}
void workspaceExpertFfnGradWeight(const Plan &, const Op &, Bump &) {}
void workspaceExpertWeightGrad(const Plan &, const Op &, Bump &) {}
void workspaceDense(const Plan &, const Op &, Bump &) {}
void workspaceAdd(const Plan &, const Op &, Bump &) {}
void workspaceCopy(const Plan &, const Op &, Bump &) {}

/// Compute scratch `op` needs.
size_t computeWorkspace(const Plan &plan, const Op &op) {
  using WorkspaceFn = void (*)(const Plan &, const Op &, Bump &);
  static constexpr WorkspaceFn kWorkspaces[] = {
#define LINA_COMPUTE_OP_KIND(Kind, name, inputs, outputs, attrs)               \
  &workspace##Kind,
#define LINA_COLLECTIVE_OP_KIND(Kind, name, inputs, outputs, attrs) nullptr,
#include "lina/rt/OpKinds.def"
  };
  Bump bump(nullptr, 0);
  if (WorkspaceFn fn = kWorkspaces[static_cast<int>(op.kind)])
    fn(plan, op, bump);
  return bump.size();
}
} // namespace

void CudaBackend::initialize(uint64_t seed) {
  DeviceState &d = *dev;
  LINA_CUDA_CHECK(cudaDeviceSynchronize());
  for (char *p : d.storage)
    LINA_CUDA_CHECK(cudaFree(p));
  d.storage.assign(plan.buffers.size(), nullptr);
  for (const Buffer &b : plan.buffers) {
    if (b.isView())
      continue;
    size_t bytes = std::max<size_t>(b.numBytes(), 1);
    LINA_CUDA_CHECK(cudaMalloc(&d.storage[b.id], bytes));
    // On the backend's own (non-blocking) stream: the legacy default
    // stream would not order this before the writes below.
    LINA_CUDA_CHECK(cudaMemsetAsync(d.storage[b.id], 0, bytes, d.aux));
  }
  LINA_CUDA_CHECK(cudaStreamSynchronize(d.aux));
  size_t work = 0;
  for (const Op &op : plan.ops)
    work = std::max(work, computeWorkspace(plan, op));
  if (work > d.workspaceBytes) {
    LINA_CUDA_CHECK(cudaFree(d.workspace));
    d.workspace = nullptr;
    LINA_CUDA_CHECK(cudaMalloc(&d.workspace, work));
    d.workspaceBytes = work;
  }
  // Staging of all_to_all pieces that are not contiguous (per queue: the
  // stream orders the ops of one queue, so they can share it).
  size_t countsLen = 0;
  for (const Op &op : plan.ops) {
    if (op.kind == OpKind::AllToAllV)
      countsLen = std::max<size_t>(countsLen, 2 * groupSize(plan, op));
    if (op.kind != OpKind::AllToAll || groupSize(plan, op) == 1)
      continue;
    int q = queueOf(op) == Queue::Low ? 1 : 0;
    if (op.splitAxis != 0)
      d.stagingBytes[q][0] = std::max<size_t>(
          d.stagingBytes[q][0], plan.buffers[op.inputs[0]].numBytes());
    if (op.concatAxis != 0)
      d.stagingBytes[q][1] = std::max<size_t>(
          d.stagingBytes[q][1], plan.buffers[op.outputs[0]].numBytes());
  }
  for (int q = 0; q < 2; ++q)
    for (int s = 0; s < 2; ++s) {
      LINA_CUDA_CHECK(cudaFree(d.staging[q][s]));
      d.staging[q][s] = nullptr;
      if (d.stagingBytes[q][s])
        LINA_CUDA_CHECK(cudaMalloc(&d.staging[q][s], d.stagingBytes[q][s]));
    }
  size_t errBytes = std::max<size_t>(plan.ops.size(), 1) * 2 * sizeof(uint32_t);
  if (!d.deviceErrors) {
    LINA_CUDA_CHECK(cudaMalloc(&d.deviceErrors, errBytes));
    LINA_CUDA_CHECK(cudaMallocHost(&d.hostErrors, errBytes));
  }
  std::memset(d.hostErrors, 0xff, errBytes);
  if (countsLen > d.hostCountsLen) {
    LINA_CUDA_CHECK(cudaFreeHost(d.hostCounts));
    d.hostCounts = nullptr;
    LINA_CUDA_CHECK(cudaMallocHost(&d.hostCounts, countsLen * sizeof(int64_t)));
    d.hostCountsLen = countsLen;
  }
  // The values every backend uses (Init.h), so that the cpu and cuda
  // backends compute the same step.
  for (const Buffer &b : plan.buffers) {
    if (b.isView() || b.init != Init::Random || !isFloatType(b.dtype))
      continue;
    std::vector<float> values(b.numElements());
    fillRandom(b, rank, seed, values.data());
    write(b.id, values);
  }
  LINA_CUDA_CHECK(cudaDeviceSynchronize());
}

void *CudaBackend::devicePointer(int id) const {
  const Buffer &b = plan.buffers.at(id);
  if (dev->storage.empty())
    throw PlanError("cuda backend: buffers used before initialize()");
  if (b.isView())
    return dev->storage[b.viewBase] + b.viewOffset * dtypeBytes(b.dtype);
  return dev->storage[b.id];
}

void CudaBackend::write(int id, const std::vector<float> &values) {
  const Buffer &b = plan.buffers.at(id);
  if (static_cast<int64_t>(values.size()) != b.numElements())
    throw PlanError("cuda backend: writing " + std::to_string(values.size()) +
                    " values into buffer " + std::to_string(id) + " of " +
                    std::to_string(b.numElements()) + " elements");
  void *dst = devicePointer(id);
  size_t n = values.size();
  if (isFloatType(b.dtype)) {
    float *tmp = nullptr;
    LINA_CUDA_CHECK(cudaMalloc(&tmp, std::max<size_t>(n, 1) * sizeof(float)));
    LINA_CUDA_CHECK(cudaMemcpyAsync(tmp, values.data(), n * sizeof(float),
                                    cudaMemcpyHostToDevice, dev->aux));
    convert(tmp, DType::F32, dst, b.dtype, n, dev->aux);
    LINA_CUDA_CHECK(cudaStreamSynchronize(dev->aux));
    LINA_CUDA_CHECK(cudaFree(tmp));
    return;
  }
  std::vector<char> host(b.numBytes());
  for (size_t i = 0; i < n; ++i) {
    if (b.dtype == DType::I32)
      reinterpret_cast<int32_t *>(host.data())[i] =
          static_cast<int32_t>(values[i]);
    else
      reinterpret_cast<int64_t *>(host.data())[i] =
          static_cast<int64_t>(values[i]);
  }
  LINA_CUDA_CHECK(cudaMemcpyAsync(dst, host.data(), host.size(),
                                  cudaMemcpyHostToDevice, dev->aux));
  LINA_CUDA_CHECK(cudaStreamSynchronize(dev->aux));
}

std::vector<float> CudaBackend::read(int id) const {
  const Buffer &b = plan.buffers.at(id);
  size_t n = b.numElements();
  std::vector<float> out(n);
  const void *src = devicePointer(id);
  LINA_CUDA_CHECK(cudaDeviceSynchronize());
  if (isFloatType(b.dtype)) {
    float *tmp = nullptr;
    LINA_CUDA_CHECK(cudaMalloc(&tmp, std::max<size_t>(n, 1) * sizeof(float)));
    convert(src, b.dtype, tmp, DType::F32, n, dev->aux);
    LINA_CUDA_CHECK(cudaMemcpyAsync(out.data(), tmp, n * sizeof(float),
                                    cudaMemcpyDeviceToHost, dev->aux));
    LINA_CUDA_CHECK(cudaStreamSynchronize(dev->aux));
    LINA_CUDA_CHECK(cudaFree(tmp));
    return out;
  }
  std::vector<char> host(b.numBytes());
  LINA_CUDA_CHECK(cudaMemcpyAsync(host.data(), src, host.size(),
                                  cudaMemcpyDeviceToHost, dev->aux));
  LINA_CUDA_CHECK(cudaStreamSynchronize(dev->aux));
  for (size_t i = 0; i < n; ++i)
    out[i] =
        b.dtype == DType::I32
            ? static_cast<float>(reinterpret_cast<int32_t *>(host.data())[i])
            : static_cast<float>(reinterpret_cast<int64_t *>(host.data())[i]);
  return out;
}

double CudaBackend::now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch)
      .count();
}

//===----------------------------------------------------------------------===//
// Execution
//===----------------------------------------------------------------------===//

void CudaBackend::waitForDependencies(const Op &op, cudaStream_t stream) {
  for (int d : eventsToWait(plan, deps, op, stream == dev->aux))
    LINA_CUDA_CHECK(cudaStreamWaitEvent(stream, dev->events[d], 0));
}

void CudaBackend::markFailed() {
  hasFailed = true;
  if (comms)
    comms->abortAll();
}

void CudaBackend::start(const Op &op) {
  if (hasFailed)
    throw CudaError("rank " + std::to_string(rank) +
                    ": cuda backend used after an error");
  try {
    startOp(op);
  } catch (...) {
    markFailed();
    throw;
  }
}

std::vector<int> CudaBackend::waitAny() {
  if (hasFailed)
    throw CudaError("rank " + std::to_string(rank) +
                    ": cuda backend used after an error");
  try {
    return waitOps();
  } catch (...) {
    markFailed();
    throw;
  }
}

void CudaBackend::startOp(const Op &op) {
  if (dev->storage.empty())
    throw PlanError("cuda backend: start() before initialize()");
  cudaStream_t stream = !op.isCollective()          ? dev->compute
                        : queueOf(op) == Queue::Low ? dev->low
                                                    : dev->high;
  // The scheduler starts an op only after its dependencies were reported
  // complete. Collectives are reported when the device finished them, but
  // compute ops as soon as they are enqueued: these waits are what orders a
  // collective after the compute that produces its input.
  waitForDependencies(op, stream);
  try {
    if (op.isCollective())
      runCollective(op);
    else
      runCompute(op);
  } catch (const PlanError &e) {
    throw PlanError("rank " + std::to_string(rank) + ": " + op.describe() +
                    ": " + e.what());
  } catch (const CudaError &e) {
    throw CudaError(std::string(e.what()) + " (in " + op.describe() + ")");
  }
  LINA_CUDA_CHECK(cudaEventRecord(dev->events[op.id], stream));
  dev->startedAt[op.id] = now();
  dev->inFlight.push_back(op.id);
}

/// What every compute kernel of the CUDA backend works with: the op, the
/// compute stream, the workspace and typed views of the op's buffers.
struct CudaBackend::ComputeArgs {
  ComputeArgs(CudaBackend &backend, const Op &op)
      : backend(backend), op(op), d(*backend.dev), s(d.compute),
        bump(d.workspace, d.workspaceBytes) {}
  void *ptr(int id) { return backend.devicePointer(id); }
  void *in(size_t i) { return ptr(op.inputs[i]); }
  void *out(size_t i) { return ptr(op.outputs[i]); }
  const std::vector<int64_t> &shape(int id) const {
    return backend.plan.buffers[id].shape;
  }
  DType dtype(int id) const { return backend.plan.buffers[id].dtype; }
  const int32_t *ids(int id) { return static_cast<const int32_t *>(ptr(id)); }
  /// f32 view of gate weights: the buffer itself or a converted copy.
  const float *weightsIn(int id, int64_t n) {
    if (dtype(id) == DType::F32) {
      bump.take(n * 4);
      return static_cast<const float *>(ptr(id));
    }
    float *tmp = bump.take<float>(n * 4);
    convert(ptr(id), dtype(id), tmp, DType::F32, n, s);
    return tmp;
  }
  float *weightsOut(int id, int64_t n) {
    float *tmp = bump.take<float>(n * 4);
    return dtype(id) == DType::F32 ? static_cast<float *>(ptr(id)) : tmp;
  }
  void weightsDone(int id, float *f, int64_t n) {
    if (dtype(id) != DType::F32)
      convert(f, DType::F32, ptr(id), dtype(id), n, s);
  }

  CudaBackend &backend;
  const Op &op;
  DeviceState &d;
  cudaStream_t s;
  Bump bump;
};

void CudaBackend::runCompute(const Op &op) {
  // One kernel per compute kind of OpKinds.def; collectives have none here.
  using Kernel = void (CudaBackend::*)(ComputeArgs &);
  static constexpr Kernel kKernels[] = {
#define LINA_COMPUTE_OP_KIND(Kind, name, inputs, outputs, attrs)               \
  &CudaBackend::run##Kind,
#define LINA_COLLECTIVE_OP_KIND(Kind, name, inputs, outputs, attrs) nullptr,
#include "lina/rt/OpKinds.def"
  };
  Kernel kernel = kKernels[static_cast<int>(op.kind)];
  if (!kernel)
    throw PlanError(op.describe() + ": not a compute op");
  ComputeArgs args(*this, op);
  (this->*kernel)(args);
}

void CudaBackend::runDense(ComputeArgs &a) {
  const Op &op = a.op;
  auto &x = a.shape(op.inputs[0]), &w = a.shape(op.inputs[1]);
  DType t = a.dtype(op.inputs[0]);
  gemm(a.d.blas, false, false, x[0], w[1], x[1], a.in(0), a.in(1), t, a.out(0),
       t);
  activationForward(op.activation, a.out(0), a.out(0), t, x[0] * w[1], a.s);
}

void CudaBackend::runDenseGrad(ComputeArgs &a) {
  const Op &op = a.op;
  auto &x = a.shape(op.inputs[1]), &w = a.shape(op.inputs[2]);
  DType t = a.dtype(op.inputs[0]);
  int64_t n = x[0] * w[1], es = dtypeBytes(t);
  void *z = a.bump.take(n * es), *dz = a.bump.take(n * es);
  const void *g = a.in(0);
  if (op.activation != Activation::None) {
    gemm(a.d.blas, false, false, x[0], w[1], x[1], a.in(1), a.in(2), t, z, t);
    activationBackward(op.activation, z, a.in(0), dz, t, n, a.s);
    g = dz;
  }
  gemm(a.d.blas, false, true, x[0], x[1], w[1], g, a.in(2), t, a.out(0), t);
  gemm(a.d.blas, true, false, x[1], w[1], x[0], a.in(1), g, t, a.out(1), t);
}

void CudaBackend::runGate(ComputeArgs &a) {
  const Op &op = a.op;
  auto &x = a.shape(op.inputs[0]);
  int64_t tokens = x[0], e = op.numExperts, k = op.topK;
  float *logits = a.bump.take<float>(tokens * e * 4);
  gemm(a.d.blas, false, false, tokens, e, x[1], a.in(0), a.in(1),
       a.dtype(op.inputs[0]), logits, DType::F32);
  float *weights = a.weightsOut(op.outputs[1], tokens * k);
  gateTopK(logits, static_cast<int32_t *>(a.out(0)), weights, tokens, e, k,
           a.s);
  a.weightsDone(op.outputs[1], weights, tokens * k);
}

void CudaBackend::runGateGrad(ComputeArgs &a) {
  const Op &op = a.op;
  auto &x = a.shape(op.inputs[1]), &w = a.shape(op.inputs[2]),
       &id = a.shape(op.inputs[3]);
  int64_t tokens = x[0], hidden = x[1], e = w[1], k = id[1];
  DType t = a.dtype(op.inputs[1]);
  float *logits = a.bump.take<float>(tokens * e * 4);
  gemm(a.d.blas, false, false, tokens, e, hidden, a.in(1), a.in(2), t, logits,
       DType::F32);
  const float *dweights = a.weightsIn(op.inputs[0], tokens * k);
  float *dlogits = a.bump.take<float>(tokens * e * 4);
  gateGradLogits(logits, dweights, a.ids(op.inputs[3]), dlogits, tokens, e, k,
                 a.s);
  void *dl = a.bump.take(tokens * e * dtypeBytes(t));
  if (t == DType::F32)
    dl = dlogits;
  else
    convert(dlogits, DType::F32, dl, t, tokens * e, a.s);
  gemm(a.d.blas, false, true, tokens, hidden, e, dl, a.in(2), t, a.out(0), t);
  gemm(a.d.blas, true, false, hidden, e, tokens, a.in(1), dl, t, a.out(1), t);
}

void CudaBackend::runSlots(ComputeArgs &a) {
  const Op &op = a.op;
  int idsId = op.buffersWithRole('i')[0];
  int bufId = op.kind == OpKind::Dispatch      ? op.outputs[0]
              : op.kind == OpKind::CombineGrad ? op.inputs[1]
                                               : op.inputs[0];
  auto &id = a.shape(idsId), &b = a.shape(bufId);
  int64_t tokens = id[0], k = id[1], e = b[0], cap = b[1], hidden = b[2];
  DType t = a.dtype(bufId);
  void *work = a.bump.take(slotWorkspaceBytes(tokens, k, e));
  int32_t *slots = a.bump.take<int32_t>(tokens * k * 4);
  int32_t *kept = a.bump.take<int32_t>(e * 4);
  uint32_t *err = a.d.deviceErrors + 2 * op.id;
  assignSlots(a.ids(idsId), tokens, k, e, cap, work, slots, kept, err, a.s);
  LINA_CUDA_CHECK(cudaMemcpyAsync(a.d.hostErrors + 2 * op.id, err,
                                  2 * sizeof(uint32_t), cudaMemcpyDeviceToHost,
                                  a.s));
  if (op.kind == OpKind::Dispatch) {
    dispatch(a.in(0), a.ids(idsId), slots, kept, a.out(0), t, tokens, k, hidden,
             e, cap, a.s);
  } else if (op.kind == OpKind::DispatchGrad) {
    dispatchGrad(a.in(0), a.ids(idsId), slots, a.out(0), t, tokens, k, hidden,
                 e, cap, a.s);
  } else if (op.kind == OpKind::Combine) {
    const float *w = a.weightsIn(op.inputs[2], tokens * k);
    combine(a.in(0), a.ids(idsId), slots, w, a.out(0), t, tokens, k, hidden, e,
            cap, a.s);
  } else {
    const float *w = a.weightsIn(op.inputs[3], tokens * k);
    float *dw = a.weightsOut(op.outputs[1], tokens * k);
    combineGrad(a.in(0), a.in(1), a.ids(idsId), slots, kept, w, a.out(0), dw, t,
                tokens, k, hidden, e, cap, a.s);
    a.weightsDone(op.outputs[1], dw, tokens * k);
  }
}
void CudaBackend::runDispatch(ComputeArgs &a) { runSlots(a); }
void CudaBackend::runDispatchGrad(ComputeArgs &a) { runSlots(a); }
void CudaBackend::runCombine(ComputeArgs &a) { runSlots(a); }
void CudaBackend::runCombineGrad(ComputeArgs &a) { runSlots(a); }

void CudaBackend::runExpertFfn(ComputeArgs &a) {
  const Op &op = a.op;
  auto &x = a.shape(op.inputs[0]), &w1 = a.shape(op.inputs[1]);
  int64_t el = x[0], n = x[1], h = x[2], f = w1[2];
  DType t = a.dtype(op.inputs[0]);
  void *z = a.bump.take(el * n * f * dtypeBytes(t));
  gemm(a.d.blas, false, false, n, f, h, a.in(0), a.in(1), t, z, t, el, n * h,
       h * f, n * f);
  activationForward(op.activation, z, z, t, el * n * f, a.s);
  gemm(a.d.blas, false, false, n, h, f, z, a.in(2), t, a.out(0), t, el, n * f,
       f * h, n * h);
}

namespace {
/// The sizes of an expert FFN gradient: El, N and H of in (input 1), F the
/// last dimension of input 2 (w1[El,H,F] or act[El,N,F]), and the data
/// type.
struct ExpertGrad {
  int64_t el, n, h, f;
  DType t;
};

/// The input half (expert_ffn_grad_input) on every local expert at once:
/// z = x w1 (scratch); act = act(z); dz = (dy w2^T) * act'(z);
/// dx = dz w1^T.
void expertGradInput(cublasHandle_t blas, cudaStream_t s, Activation fn,
                     const ExpertGrad &g, const void *dy, const void *x,
                     const void *W1, const void *W2, void *z, void *act,
                     void *dz, void *dx) {
  int64_t el = g.el, n = g.n, h = g.h, f = g.f;
  gemm(blas, false, false, n, f, h, x, W1, g.t, z, g.t, el, n * h, h * f,
       n * f);
  activationForward(fn, z, act, g.t, el * n * f, s);
  gemm(blas, false, true, n, f, h, dy, W2, g.t, dz, g.t, el, n * h, f * h,
       n * f);
  activationBackward(fn, z, dz, dz, g.t, el * n * f, s);
  gemm(blas, false, true, n, h, f, dz, W1, g.t, dx, g.t, el, n * f, h * f,
       n * h);
}

/// expert_weight_grad on every local expert at once: out[e] = a[e]^T b[e]
/// with a [el,n,x], b [el,n,y], out [el,x,y]; one strided-batched GEMM.
void weightGrad(cublasHandle_t blas, DType t, int64_t el, int64_t n, int64_t x,
                int64_t y, const void *a, const void *b, void *out) {
  gemm(blas, true, false, x, y, n, a, b, t, out, t, el, n * x, n * y, x * y);
}

/// The weight half (expert_ffn_grad_weight): dw1 = x^T dz; dw2 = act^T dy,
/// the GEMMs of two expert_weight_grad ops.
void expertGradWeight(cublasHandle_t blas, const ExpertGrad &g, const void *dy,
                      const void *x, const void *act, const void *dz, void *dw1,
                      void *dw2) {
  weightGrad(blas, g.t, g.el, g.n, g.h, g.f, x, dz, dw1);
  weightGrad(blas, g.t, g.el, g.n, g.f, g.h, act, dy, dw2);
}
} // namespace

// expert_ffn_grad is its input half, then its weight half, on scratch act
// and dz; the split kinds run one half each with act and dz as buffers.
void CudaBackend::runExpertFfnGrad(ComputeArgs &a) {
  const Op &op = a.op;
  auto &x = a.shape(op.inputs[1]), &w1 = a.shape(op.inputs[2]);
  ExpertGrad g{x[0], x[1], x[2], w1[2], a.dtype(op.inputs[1])};
  int64_t bytes = g.el * g.n * g.f * dtypeBytes(g.t);
  void *z = a.bump.take(bytes), *act = a.bump.take(bytes),
       *dz = a.bump.take(bytes);
  expertGradInput(a.d.blas, a.s, op.activation, g, a.in(0), a.in(1), a.in(2),
                  a.in(3), z, act, dz, a.out(0));
  expertGradWeight(a.d.blas, g, a.in(0), a.in(1), act, dz, a.out(1), a.out(2));
}

void CudaBackend::runExpertFfnGradInput(ComputeArgs &a) {
  const Op &op = a.op;
  auto &x = a.shape(op.inputs[1]), &w1 = a.shape(op.inputs[2]);
  ExpertGrad g{x[0], x[1], x[2], w1[2], a.dtype(op.inputs[1])};
  void *z = a.bump.take(g.el * g.n * g.f * dtypeBytes(g.t));
  expertGradInput(a.d.blas, a.s, op.activation, g, a.in(0), a.in(1), a.in(2),
                  a.in(3), z, a.out(1), a.out(2), a.out(0));
}

void CudaBackend::runExpertFfnGradWeight(ComputeArgs &a) {
  const Op &op = a.op;
  auto &x = a.shape(op.inputs[1]), &act = a.shape(op.inputs[2]);
  ExpertGrad g{x[0], x[1], x[2], act[2], a.dtype(op.inputs[1])};
  expertGradWeight(a.d.blas, g, a.in(0), a.in(1), a.in(2), a.in(3), a.out(0),
                   a.out(1));
}

void CudaBackend::runExpertWeightGrad(ComputeArgs &a) {
  const Op &op = a.op;
  auto &x = a.shape(op.inputs[0]), &y = a.shape(op.inputs[1]);
  weightGrad(a.d.blas, a.dtype(op.inputs[0]), x[0], x[1], x[2], y[2], a.in(0),
             a.in(1), a.out(0));
}

void CudaBackend::runAdd(ComputeArgs &a) {
  const Op &op = a.op;
  add(a.in(0), a.in(1), a.out(0), a.dtype(op.outputs[0]),
      plan.buffers[op.outputs[0]].numElements(), a.s);
}

void CudaBackend::runCopy(ComputeArgs &a) {
  const Op &op = a.op;
  const Buffer &src = plan.buffers[op.inputs[0]];
  const Buffer &dst = plan.buffers[op.outputs[0]];
  copyBox(a.in(0), src.shape, op.srcOffsets, a.out(0), dst.shape, op.dstOffsets,
          op.sizes, dtypeBytes(src.dtype), a.s);
}

void CudaBackend::runCollective(const Op &op) {
  DeviceState &d = *dev;
  bool low = queueOf(op) == Queue::Low;
  cudaStream_t s = low ? d.low : d.high;
  const Buffer &in = plan.buffers[op.inputs[0]];
  const Buffer &out = plan.buffers[op.outputs[0]];
  void *src = devicePointer(in.id), *dst = devicePointer(out.id);
  int n = groupSize(plan, op);
  std::string what = op.describe() + " in group '" + op.group + "'";

  if (op.kind == OpKind::AllToAllV) {
    // The counts live on the device and their producers may still be
    // queued (compute is enqueued ahead): copy them after the op's
    // dependencies on the side stream and wait, bounded, for the copy.
    waitForDependencies(op, d.aux);
    LINA_CUDA_CHECK(cudaMemcpyAsync(d.hostCounts, devicePointer(op.inputs[1]),
                                    n * sizeof(int64_t), cudaMemcpyDeviceToHost,
                                    d.aux));
    LINA_CUDA_CHECK(
        cudaMemcpyAsync(d.hostCounts + n, devicePointer(op.inputs[2]),
                        n * sizeof(int64_t), cudaMemcpyDeviceToHost, d.aux));
    LINA_CUDA_CHECK(cudaEventRecord(d.countsReady, d.aux));
    comms->watch().waitUntil(
        [&] {
          cudaError_t e = cudaEventQuery(d.countsReady);
          if (e == cudaErrorNotReady)
            return false;
          LINA_CUDA_CHECK(e);
          return true;
        },
        comms->watch().now() + timeout,
        [&] { return "reading the counts of " + what; });
    const int64_t *sc = d.hostCounts, *rc = d.hostCounts + n;
    size_t rowBytes = in.shape[0] ? in.numBytes() / in.shape[0] : 0;
    std::vector<size_t> sb, so, rb, ro;
    int64_t sendRows = 0, recvRows = 0;
    for (int i = 0; i < n; ++i) {
      if (sc[i] < 0 || rc[i] < 0)
        throw PlanError("negative count");
      so.push_back(sendRows * rowBytes);
      ro.push_back(recvRows * rowBytes);
      sb.push_back(sc[i] * rowBytes);
      rb.push_back(rc[i] * rowBytes);
      sendRows += sc[i];
      recvRows += rc[i];
    }
    if (sendRows > in.shape[0] || recvRows > out.shape[0])
      throw PlanError(
          "counts need " + std::to_string(sendRows) + " rows to send and " +
          std::to_string(recvRows) + " to receive; buffers hold " +
          std::to_string(in.shape[0]) + " and " + std::to_string(out.shape[0]));
    if (n == 1 && sendRows != recvRows)
      throw PlanError("inconsistent counts for one rank");
    // Only the rows past the received total need zeros.
    size_t tail = static_cast<size_t>(out.shape[0] - recvRows) * rowBytes;
    if (tail)
      LINA_CUDA_CHECK(cudaMemsetAsync(
          static_cast<char *>(dst) + recvRows * rowBytes, 0, tail, s));
    if (n == 1)
      LINA_CUDA_CHECK(cudaMemcpyAsync(dst, src, sendRows * rowBytes,
                                      cudaMemcpyDeviceToDevice, s));
    else
      comms->allToAllV(comms->get(op.group, low), src, sb, so, dst, rb, ro, s,
                       what);
    return;
  }

  if (n == 1) {
    if (dst != src)
      LINA_CUDA_CHECK(cudaMemcpyAsync(dst, src, in.numBytes(),
                                      cudaMemcpyDeviceToDevice, s));
    return;
  }
  size_t comm = comms->get(op.group, low);
  if (op.kind == OpKind::AllReduce) {
    comms->allReduce(comm, src, dst, in.numElements(), ncclType(in.dtype),
                     ncclOp(op.reduction), s, what);
    return;
  }
  // Uniform all_to_all: pieces along split_axis go to the group ranks in
  // order; received pieces are concatenated along concat_axis. Pieces are
  // contiguous when the axis is 0; otherwise they are staged.
  int q = low ? 1 : 0;
  int64_t es = dtypeBytes(in.dtype);
  size_t pieceBytes = in.numBytes() / n;
  const void *send = src;
  if (op.splitAxis != 0) {
    std::vector<int64_t> piece = in.shape, zero(in.shape.size(), 0);
    piece[op.splitAxis] /= n;
    for (int i = 0; i < n; ++i) {
      std::vector<int64_t> offs(piece.size(), 0);
      offs[op.splitAxis] = i * piece[op.splitAxis];
      copyBox(src, in.shape, offs, d.staging[q][0] + i * pieceBytes, piece,
              zero, piece, es, s);
    }
    send = d.staging[q][0];
  }
  void *recv = op.concatAxis != 0 ? d.staging[q][1] : dst;
  comms->allToAll(comm, send, recv, pieceBytes, s, what);
  if (op.concatAxis != 0) {
    std::vector<int64_t> piece = out.shape, zero(out.shape.size(), 0);
    piece[op.concatAxis] /= n;
    for (int j = 0; j < n; ++j) {
      std::vector<int64_t> offs(piece.size(), 0);
      offs[op.concatAxis] = j * piece[op.concatAxis];
      copyBox(d.staging[q][1] + j * pieceBytes, piece, zero, dst, out.shape,
              offs, piece, es, s);
    }
  }
}

void CudaBackend::checkCompleted(const Op &op) {
  if (!usesSlots(op.kind))
    return;
  const uint32_t *err = dev->hostErrors + 2 * op.id;
  if (err[0] == 0xffffffffu)
    return;
  int64_t tokens = plan.buffers[op.buffersWithRole('i')[0]].shape[0];
  int bufId = op.kind == OpKind::Dispatch      ? op.outputs[0]
              : op.kind == OpKind::CombineGrad ? op.inputs[1]
                                               : op.inputs[0];
  throw PlanError(
      "rank " + std::to_string(rank) + ": " + op.describe() + ": token " +
      std::to_string(err[0] % tokens) + " is routed to expert " +
      std::to_string(static_cast<int32_t>(err[1])) + ", outside [0, " +
      std::to_string(plan.buffers[bufId].shape[0]) + ")");
}

void CudaBackend::drainCompute(bool all) {
  DeviceState &d = *dev;
  // One stream: compute ops finish in the order they were enqueued.
  while (d.uncheckedHead < d.unchecked.size()) {
    int id = d.unchecked[d.uncheckedHead];
    if (!all) {
      cudaError_t state = cudaEventQuery(d.events[id]);
      if (state == cudaErrorNotReady)
        return;
      if (state != cudaSuccess)
        throw CudaError("rank " + std::to_string(rank) + ": " +
                        plan.ops[id].describe() +
                        " failed on the device: " + describe(state));
    }
    ++d.uncheckedHead;
    checkCompleted(plan.ops[id]);
  }
  d.unchecked.clear();
  d.uncheckedHead = 0;
}

std::vector<int> CudaBackend::waitOps() {
  DeviceState &d = *dev;
  if (d.inFlight.empty())
    throw PlanError("cuda backend: waiting with nothing in flight");
  // Compute ops other than the last: reported at once, checked later.
  std::vector<int> done;
  for (size_t i = 0; i < d.inFlight.size();) {
    int id = d.inFlight[i];
    if (!plan.ops[id].isCollective() && id != lastCompute) {
      done.push_back(id);
      d.unchecked.push_back(id);
      d.inFlight.erase(d.inFlight.begin() + i);
    } else {
      ++i;
    }
  }
  if (!done.empty())
    return done;
  // Wait for the device: the collectives (and the last compute op) in
  // flight, bounded by the oldest one's start plus the timeout; the
  // communicators' asynchronous errors are checked while waiting.
  double oldest = d.startedAt[d.inFlight.front()];
  for (int id : d.inFlight)
    oldest = std::min(oldest, d.startedAt[id]);
  double deadline = comms->watch().now() + (oldest + timeout - now());
  comms->watch().waitUntil(
      [&] {
        drainCompute(false);
        for (size_t i = 0; i < d.inFlight.size();) {
          int id = d.inFlight[i];
          cudaError_t state = cudaEventQuery(d.events[id]);
          if (state == cudaErrorNotReady) {
            ++i;
            continue;
          }
          if (state != cudaSuccess)
            throw CudaError("rank " + std::to_string(rank) + ": " +
                            plan.ops[id].describe() +
                            " failed on the device: " + describe(state));
          done.push_back(id);
          d.inFlight.erase(d.inFlight.begin() + i);
          // The last compute op ends the compute stream of the step: every
          // compute op before it is complete too.
          if (!plan.ops[id].isCollective()) {
            drainCompute(true);
            checkCompleted(plan.ops[id]);
          }
        }
        return !done.empty();
      },
      deadline,
      [&] {
        // Name the oldest op still in flight.
        int worst = d.inFlight.front();
        for (int id : d.inFlight)
          if (d.startedAt[id] < d.startedAt[worst])
            worst = id;
        const Op &op = plan.ops[worst];
        return op.describe() +
               (op.isCollective() ? " in group '" + op.group + "'" : "");
      });
  return done;
}
