//===- CpuBackend.h - Plan execution on CPUs with MPI ranks -----*- C++ -*-===//
//
// Part of the Lina project.
//
// Compute ops run on the calling thread with the f32 kernels of Kernels.h;
// collectives are MPI non-blocking collectives (MPI_Ialltoall,
// MPI_Ialltoallv, MPI_Iallreduce) issued and progressed by one
// communication thread per rank, on a communicator per (group, queue) so
// that the high- and low-priority queues never reorder each other's
// collectives. A watchdog ends a collective that does not complete within
// the timeout with an error naming the rank, the op and the group.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_CPUBACKEND_H
#define LINA_RT_CPUBACKEND_H

#include "lina/rt/Plan.h"
#include "lina/rt/Scheduler.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

namespace lina::rt {

/// The MPI side of the CPU backend (defined only when built with MPI).
class MpiComm;

/// Routing shared between two runs of one model (lina-run --check): the
/// first run records the expert ids of each gate, the second computes its
/// gates but imposes the recorded ids, so that the comparison tests the
/// schedule rather than which near-tied expert rounding picks. Gates are
/// matched by their order in the plan (the k-th gate op of each plan).
struct RoutingPin {
  enum class Mode { Record, Impose } mode = Mode::Record;
  /// Per gate, in plan order: the expert ids (tokens x top_k).
  std::vector<std::vector<int32_t>> gates;
  /// Impose: tokens whose own top-k differed from the recorded one, and
  /// tokens routed in all.
  int64_t flipped = 0, decisions = 0;
};

class CpuBackend : public Backend {
public:
  /// `rank` is this process's rank in the plan's world; collectives need
  /// MPI unless every group has one rank.
  CpuBackend(const Plan &plan, int rank, double timeoutSeconds);
  ~CpuBackend() override;

  /// Allocates the buffers and fills inputs and parameters from `seed`,
  /// each buffer's name and this rank (so two plans of one model get the
  /// same values). Throws PlanError if the plan needs what the CPU backend
  /// cannot do (a dtype other than f32/i32/i64).
  void initialize(uint64_t seed);

  void start(const Op &op) override;
  std::vector<int> waitAny() override;
  double now() override;

  /// The contents of buffer `id` converted to float.
  std::vector<float> read(int id) const;
  /// Overwrites buffer `id` (after initialize) with `bytes`, which must be
  /// its size; throws PlanError otherwise.
  void write(int id, const std::vector<char> &bytes);

  /// Records or imposes the gates' routing (nullptr: neither). Throws
  /// PlanError when an imposed gate's shape differs from the recorded one.
  void setRoutingPin(RoutingPin *pin) { routingPin = pin; }
  /// Computes the expert FFNs row by row (see cpu::RowwiseGemmScope), so
  /// that chunking their rows does not change the rounding.
  void setRowwiseExpertGemms(bool enable) { rowwiseExperts = enable; }

private:
  char *data(int id);
  const char *data(int id) const;
  void runCompute(const Op &op);
  struct OpArgs;
  // The kernel of each compute op kind (OpKinds.def).
#define LINA_COMPUTE_OP_KIND(Kind, name, inputs, outputs, attrs)               \
  void run##Kind(const Op &op);
#include "lina/rt/OpKinds.def"
  void runLocalCollective(const Op &op);
  void finishCollective(int id);

  const Plan &plan;
  int rank;
  double timeout;
  std::vector<std::vector<char>> storage; ///< per base buffer
  std::vector<int> completedLocally;
  std::chrono::steady_clock::time_point epoch;
  std::unique_ptr<MpiComm> comm;
  RoutingPin *routingPin = nullptr;
  bool rowwiseExperts = false;
  /// Position of each gate op among the plan's gates (-1 for other ops).
  std::vector<int> gateOrdinal;
};

} // namespace lina::rt

#endif // LINA_RT_CPUBACKEND_H
