//===- ClusterFuzzer.cpp - Fuzz cluster files, the cost model, simulator --===//
//
// Part of the Lina project.
//
// The input is a cluster file (JSON, docs/COST_MODEL.md).
// ClusterSpec::fromJson must accept it or return an error naming the field.
// An accepted cluster must give finite, non-negative cost-model estimates
// and must simulate a small two-rank MoE plan to the end (a hang is a
// libFuzzer timeout) with a finite step time.
//
//===----------------------------------------------------------------------===//

#include "FuzzerUtil.h"

#include "lina/Support/CheckedMath.h"
#include "lina/Support/CostModel.h"
#include "lina/rt/Plan.h"
#include "lina/rt/Simulator.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

using namespace lina;
using namespace lina::rt;

namespace {

constexpr const char *kTarget = "lina-fuzz-cluster";

// kPlanJson: test/runtime/plans/moe2_np2.base.json, embedded at build time.
#include "ClusterFuzzerPlan.inc"

void checkTime(const char *what, double t) {
  if (!std::isfinite(t) || t < 0)
    fuzz::fail(kTarget, std::string(what) + " is " + std::to_string(t));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string error;
  std::optional<ClusterSpec> cluster =
      ClusterSpec::fromJson(fuzz::asText(data, size), error);
  if (!cluster) {
    fuzz::checkMessage(kTarget, error);
    return 0;
  }
  if (cluster->nodes < 1 || cluster->gpusPerNode < 1)
    fuzz::fail(kTarget, "accepted a cluster without GPUs");
  std::optional<int64_t> gpus =
      checkedMul(cluster->nodes, cluster->gpusPerNode);
  if (!gpus || *gpus > Limits::kMaxRanks)
    fuzz::fail(kTarget, "accepted " + std::to_string(cluster->nodes) +
                            " nodes of " +
                            std::to_string(cluster->gpusPerNode) + " GPUs");

  // The estimates the compiler's `auto` options use.
  CostModel model(*cluster);
  const int groups[] = {2, cluster->gpusPerNode,
                        static_cast<int>(std::min<int64_t>(*gpus, 1 << 16))};
  ExpertWork work;
  work.a2aBytes = 1 << 20;
  work.flops = 1e9;
  work.tokenBytes = 1 << 20;
  work.weightBytes = 1 << 22;
  for (int n : groups) {
    if (n < 2)
      continue;
    checkTime("all_reduce time", model.allReduceTime(1 << 20, n));
    checkTime("all_to_all time", model.allToAllTime(1 << 20, n));
    if (model.choosePartitionBytes(n) <= 0)
      fuzz::fail(kTarget, "chose a partition size <= 0");
    PipelineChoice choice = model.choosePipeline(work, n, 1, 8, 4);
    if (choice.chunks < 1 || choice.expertsPerDevice < 1)
      fuzz::fail(kTarget, "chose an invalid pipeline");
    checkTime("pipeline time", choice.estimatedTime);
  }
  checkTime("compute time", model.computeTime(1e9, 1 << 20));

  // The simulator on a small plan: it must end, with a finite time.
  static const Plan plan = parsePlan(kPlanJson, "moe2_np2.base.json");
  try {
    SimResult result = simulate(plan, *cluster, SimOptions());
    checkTime("simulated step time", result.stepTime);
  } catch (const PlanError &e) {
    fuzz::checkMessage(kTarget, e.what());
  }
  return 0;
}
