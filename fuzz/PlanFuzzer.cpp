//===- PlanFuzzer.cpp - Fuzz the plan loader and the simulator ------------===//
//
// Part of the Lina project.
//
// The input is a plan (JSON). parsePlan must accept it or throw PlanError.
// An accepted plan must keep the loader's guarantees (docs/PLAN.md,
// docs/LIMITS.md): every size within the limits and computable without
// overflow, every view and copy box inside its buffer, no empty copy; and
// writePlan must write it as a plan that parsePlan reads back as the same
// plan. The accepted plan is then simulated on the built-in cluster, which
// must finish (a hang is a libFuzzer timeout) with a finite step time.
//
//===----------------------------------------------------------------------===//

#include "FuzzerUtil.h"

#include "lina/Support/CheckedMath.h"
#include "lina/rt/Plan.h"
#include "lina/rt/Simulator.h"

#include <cmath>
#include <optional>
#include <string>

using namespace lina;
using namespace lina::rt;

namespace {

constexpr const char *kTarget = "lina-fuzz-plan";

/// Element count of `buffer`, failing the run if the loader accepted a shape
/// whose count overflows or exceeds the documented limit.
int64_t checkedElements(const Buffer &buffer) {
  std::optional<int64_t> n = checkedProduct(buffer.shape);
  if (!n || *n < 0 || *n > Limits::kMaxElements)
    fuzz::fail(kTarget, "accepted buffer " + std::to_string(buffer.id) + " ('" +
                            buffer.name +
                            "') whose element count overflows or exceeds "
                            "the limit");
  for (int64_t d : buffer.shape)
    if (d < 0)
      fuzz::fail(kTarget, "accepted a negative extent in buffer " +
                              std::to_string(buffer.id));
  return *n;
}

void checkInvariants(const Plan &plan) {
  if (plan.worldSize < 1 || plan.worldSize > Limits::kMaxRanks)
    fuzz::fail(kTarget,
               "accepted world_size " + std::to_string(plan.worldSize));
  for (const Buffer &buffer : plan.buffers) {
    int64_t n = checkedElements(buffer);
    if (!checkedMul(n, dtypeBytes(buffer.dtype)))
      fuzz::fail(kTarget, "byte size of buffer " + std::to_string(buffer.id) +
                              " overflows");
    if (buffer.isView()) {
      if (buffer.viewBase >= static_cast<int>(plan.buffers.size()))
        fuzz::fail(kTarget, "accepted a view of a missing buffer");
      const Buffer &base = plan.buffers[buffer.viewBase];
      if (!rangeWithin(buffer.viewOffset, n, checkedElements(base)))
        fuzz::fail(kTarget, "accepted view " + std::to_string(buffer.id) +
                                " that reaches outside its base");
    }
  }
  const int numBuffers = static_cast<int>(plan.buffers.size());
  for (const Op &op : plan.ops) {
    for (int id : op.inputs)
      if (id < 0 || id >= numBuffers)
        fuzz::fail(kTarget,
                   "accepted " + op.describe() + " reading a missing buffer");
    for (int id : op.outputs)
      if (id < 0 || id >= numBuffers)
        fuzz::fail(kTarget,
                   "accepted " + op.describe() + " writing a missing buffer");
    if (op.kind == OpKind::Copy) {
      const Buffer &src = plan.buffers[op.inputs.at(0)];
      const Buffer &dst = plan.buffers[op.outputs.at(0)];
      if (op.sizes.size() != src.shape.size() ||
          op.sizes.size() != dst.shape.size() ||
          op.srcOffsets.size() != op.sizes.size() ||
          op.dstOffsets.size() != op.sizes.size())
        fuzz::fail(kTarget, "accepted " + op.describe() +
                                " whose box rank differs from its buffers'");
      for (size_t i = 0; i < op.sizes.size(); ++i) {
        if (!rangeWithin(op.srcOffsets[i], op.sizes[i], src.shape[i]) ||
            !rangeWithin(op.dstOffsets[i], op.sizes[i], dst.shape[i]))
          fuzz::fail(kTarget, "accepted " + op.describe() +
                                  " whose box leaves its buffers in "
                                  "dimension " +
                                  std::to_string(i));
        if (op.sizes[i] == 0)
          fuzz::fail(kTarget,
                     "accepted " + op.describe() + " with an empty box");
      }
    }
    if (op.isCollective() && plan.collectiveBytes(op) < 0)
      fuzz::fail(kTarget, "negative collective size in " + op.describe());
  }
  for (const auto &[name, group] : plan.groups)
    for (int rank = 0; rank < plan.worldSize && rank < 64; ++rank) {
      int index = -1;
      try {
        const std::vector<int> &members = group.instanceOf(rank, &index);
        if (index < 0 || index >= static_cast<int>(members.size()))
          fuzz::fail(kTarget, "group '" + name + "' gives rank " +
                                  std::to_string(rank) + " a bad index");
      } catch (const PlanError &) {
        fuzz::fail(kTarget, "accepted group '" + name + "' without rank " +
                                std::to_string(rank));
      }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Plan plan;
  try {
    plan = parsePlan(fuzz::asText(data, size), "fuzz.json");
  } catch (const PlanError &e) {
    fuzz::checkMessage(kTarget, e.what());
    return 0;
  }
  checkInvariants(plan);
  (void)dumpPlan(plan);

  // The writer and the loader agree on every accepted plan.
  try {
    if (!(parsePlan(writePlan(plan), "written.json") == plan))
      fuzz::fail(kTarget, "writePlan changed the plan it wrote");
  } catch (const PlanError &e) {
    fuzz::fail(kTarget,
               std::string("the written plan does not load: ") + e.what());
  }

  // Simulate one step; a plan too large for the cluster is a PlanError.
  static const ClusterSpec cluster = ClusterSpec::a100Ib100();
  try {
    SimResult result = simulate(plan, cluster, SimOptions());
    if (!std::isfinite(result.stepTime) || result.stepTime < 0)
      fuzz::fail(kTarget,
                 "simulated step time is " + std::to_string(result.stepTime));
  } catch (const PlanError &e) {
    fuzz::checkMessage(kTarget, e.what());
  }
  return 0;
}
