//===- CudaBackend.h - Plan execution on GPUs with NCCL ---------*- C++ -*-===//
//
// Part of the Lina project.
//
// The cuda backend of the shared Scheduler. Each rank owns one GPU (picked
// by its local rank). Compute ops are enqueued on one compute stream, in
// the order the scheduler starts them, and reported complete at once: what
// follows them on the device waits on their completion events
// (cudaStreamWaitEvent), so the host never waits for a compute op, except
// the last one of the plan, whose completion ends the step. Collectives go
// on two communication streams created with cudaStreamCreateWithPriority:
// the high queue (all_to_all) on the greatest priority, the low queue
// (all_reduce partitions) on the least, each with its own NCCL communicator
// per group (NcclComm.h). waitAny() polls the events of the collectives in
// flight and returns those that completed: the host gates only the
// collectives. Every wait is bounded (CommWatch.h): an error or a timeout
// aborts the communicators and throws an error naming the rank and op, and
// the destructor then touches nothing but the communicators, so the caller
// can report it and end the job (MPI_Abort) at once.
//
// Floating-point buffers may be f32, bf16 or f16: GEMMs run on cuBLAS with
// fp32 accumulation, the other kernels compute in f32. The floating-point
// tensors of one op (other than gate weights) must share one dtype; expert
// ids are i32.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_CUDA_CUDABACKEND_H
#define LINA_RT_CUDA_CUDABACKEND_H

#include "lina/rt/Plan.h"
#include "lina/rt/Scheduler.h"

#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lina::rt::cuda {

class NcclComms;
struct DeviceState;

class CudaBackend : public Backend {
public:
  /// Selects this rank's GPU and creates its streams, cuBLAS handle and
  /// NCCL communicators (collective over the plan's ranks when a group has
  /// several). Throws NoGpuError (with the reason) without a usable GPU and
  /// PlanError if the plan needs what this backend cannot do.
  CudaBackend(const Plan &plan, int rank, double timeoutSeconds);
  ~CudaBackend() override;

  /// Allocates the device buffers and fills inputs and parameters with the
  /// values every backend uses (lina::rt::fillRandom of lina/rt/Init.h:
  /// the seed, the buffer's name and the rank), rounded to the buffer's
  /// dtype.
  void initialize(uint64_t seed);

  void start(const Op &op) override;
  std::vector<int> waitAny() override;
  double now() override;

  /// The contents of buffer `id` converted to float (waits for the device).
  std::vector<float> read(int id) const;
  /// Overwrites buffer `id` from floats converted to its dtype.
  void write(int id, const std::vector<float> &values);
  /// Device address of buffer `id` (views point into their base).
  void *devicePointer(int id) const;

  /// True once an error was seen: the communicators are aborted and the
  /// destructor leaves the device alone.
  bool failed() const { return hasFailed; }

private:
  void checkPlan() const;
  void startOp(const Op &op);
  std::vector<int> waitOps();
  void runCompute(const Op &op);
  struct ComputeArgs;
  // The kernel of each compute op kind (OpKinds.def).
#define LINA_COMPUTE_OP_KIND(Kind, name, inputs, outputs, attrs)               \
  void run##Kind(ComputeArgs &args);
#include "lina/rt/OpKinds.def"
  void runSlots(ComputeArgs &args); ///< dispatch, combine and their grads
  void runCollective(const Op &op);
  void checkCompleted(const Op &op);
  /// Marks the backend failed and aborts the communicators (no waiting).
  void markFailed();
  /// Makes `stream` wait for the events of the op's dependencies that run
  /// on other streams (every one of them when `stream` is the side stream).
  void waitForDependencies(const Op &op, cudaStream_t stream);
  /// Polls the compute ops reported early; checks those the device
  /// finished, in stream order.
  void drainCompute(bool all);

  const Plan &plan;
  int rank;
  double timeout;
  std::chrono::steady_clock::time_point epoch;
  std::unique_ptr<DeviceState> dev;
  std::unique_ptr<NcclComms> comms;
  std::vector<std::vector<int>> deps; ///< the Scheduler's, per op
  int lastCompute = -1;               ///< the last compute op in program order
  bool hasFailed = false;
};

} // namespace lina::rt::cuda

#endif // LINA_RT_CUDA_CUDABACKEND_H
