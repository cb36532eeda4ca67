//===- SimulatorBoundTest.cpp - No simulated schedule beats the bound -----===//
//
// Part of the Lina project.
//
// Random multi-rank plans (dense and add ops, all_to_all and all_reduce on
// the world, on pairs and on halves, high and low priority, data and
// explicit dependencies, hold_low marks) on random clusters (GPUs per node,
// bandwidths, latencies, FLOP/s, efficiencies, ring or tree): the simulated
// step under every policy, with and without a credit window and link
// priority, is never shorter than lowerBound(), and the bound is positive.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Simulator.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <random>

using namespace lina;
using namespace lina::rt;
using nlohmann::json;

namespace {
json buffer(int id, int64_t rows, int64_t cols, const char *role) {
  return {{"id", id},       {"name", "b" + std::to_string(id)},
          {"dtype", "f32"}, {"shape", {rows, cols}},
          {"role", role},   {"init", "random"}};
}

/// Groups of `world` ranks: all of them, consecutive pairs, two halves.
json groupsOf(int world) {
  std::vector<int> all;
  json pairs = json::array(),
       halves = json::array({json::array(), json::array()});
  for (int r = 0; r < world; ++r) {
    all.push_back(r);
    if (r % 2 == 0)
      pairs.push_back({r, r + 1});
    halves[r < world / 2 ? 0 : 1].push_back(r);
  }
  return {{"world", {{"members", {all}}}},
          {"pairs", {{"members", pairs}}},
          {"halves", {{"members", halves}}}};
}

/// A random plan of `n` ops on `world` ranks over [s, s] f32 buffers.
Plan randomPlan(std::mt19937 &rng, int world, int n) {
  auto pick = [&](int k) {
    return std::uniform_int_distribution<int>(0, k - 1)(rng);
  };
  int64_t s = 24 * (1 + pick(24)); // divisible by every group size (<= 8)
  json buffers =
      json::array({buffer(0, s, s, "input"), buffer(1, s, s, "param")});
  json ops = json::array();
  std::vector<int> values = {0};
  const char *groups[] = {"world", "pairs", "halves"};
  for (int i = 0; i < n; ++i) {
    int out = static_cast<int>(buffers.size());
    buffers.push_back(buffer(out, s, s, "temp"));
    int in = values[pick(static_cast<int>(values.size()))];
    json op = {{"id", i}, {"outputs", {out}}};
    switch (pick(5)) {
    case 0:
    case 1:
      op["kind"] = "dense";
      op["inputs"] = {in, 1};
      op["hold_low"] = pick(3) == 0;
      break;
    case 2:
      op["kind"] = "add";
      op["inputs"] = {in, values[pick(static_cast<int>(values.size()))]};
      break;
    case 3:
      op["kind"] = "all_to_all";
      op["inputs"] = {in};
      op["group"] = groups[pick(3)];
      op["priority"] = "high";
      op["attrs"] = {{"split_axis", 0}, {"concat_axis", 0}};
      break;
    default:
      op["kind"] = "all_reduce";
      op["inputs"] = {in};
      op["group"] = groups[pick(3)];
      op["priority"] = pick(4) == 0 ? "high" : "low";
      break;
    }
    if (i > 0 && pick(4) == 0)
      op["deps"] = {pick(i)};
    ops.push_back(op);
    values.push_back(out);
  }
  return parsePlan(json{
      {"format", "lina-plan"},
      {"version", 1},
      {"world_size", world},
      {"groups", groupsOf(world)},
      {"buffers", buffers},
      {"ops", ops}}.dump());
}

ClusterSpec randomCluster(std::mt19937 &rng, int world) {
  auto uniform = [&](double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  };
  ClusterSpec c;
  c.name = "random";
  c.gpusPerNode = 1 << std::uniform_int_distribution<int>(0, 3)(rng);
  c.nodes = (world + c.gpusPerNode - 1) / c.gpusPerNode;
  c.intraNode = {uniform(1e9, 1e11), uniform(0, 1e-5)};
  c.interNode = {uniform(1e8, 1e10), uniform(0, 2e-5)};
  c.flops = uniform(1e10, 1e13);
  c.memoryBandwidth = uniform(1e10, 1e12);
  c.launchLatency = uniform(0, 1e-5);
  c.kernelLaunch = uniform(0, 1e-5);
  c.gemmEfficiency = uniform(0.3, 1);
  c.memoryEfficiency = uniform(0.3, 1);
  c.allReduceAlgorithm =
      rng() % 2 ? AllReduceAlgorithm::Ring : AllReduceAlgorithm::Tree;
  return c;
}

TEST(SimulatorBound, NoSimulatedScheduleBeatsTheBound) {
  std::mt19937 rng(20261201);
  int checked = 0, scheduleBinds = 0, highBinds = 0, streamBinds = 0,
      linkBinds = 0;
  for (int iter = 0; iter < 200; ++iter) {
    int world = 2 * std::uniform_int_distribution<int>(1, 4)(rng);
    Plan plan =
        randomPlan(rng, world, std::uniform_int_distribution<int>(1, 24)(rng));
    ClusterSpec cluster = randomCluster(rng, world);
    SimBound bound = lowerBound(plan, cluster);
    ASSERT_GT(bound.step, 0) << "iteration " << iter;
    EXPECT_EQ(bound.step,
              std::max({bound.linkCut, bound.compute, bound.criticalPath,
                        bound.streamPath, bound.computeSchedule,
                        bound.highQueueSchedule, bound.linkSchedule}));
    EXPECT_GE(bound.linkSchedule, bound.linkCut * (1 - 1e-12));
    linkBinds += bound.linkSchedule >
                 std::max({bound.linkCut, bound.compute, bound.criticalPath,
                           bound.streamPath, bound.computeSchedule,
                           bound.highQueueSchedule});
    EXPECT_GE(bound.streamPath, bound.criticalPath * (1 - 1e-12));
    streamBinds += bound.streamPath >
                   std::max({bound.linkCut, bound.compute, bound.criticalPath,
                             bound.computeSchedule, bound.highQueueSchedule});
    EXPECT_GE(bound.computeSchedule, bound.compute * (1 - 1e-12));
    scheduleBinds +=
        std::max(bound.computeSchedule, bound.highQueueSchedule) >
        std::max({bound.linkCut, bound.compute, bound.criticalPath});
    highBinds +=
        bound.highQueueSchedule >
        std::max({bound.linkCut, bound.computeSchedule, bound.criticalPath});
    int64_t credit = std::uniform_int_distribution<int64_t>(0, 1 << 20)(rng);
    for (Policy policy : {Policy::Lina, Policy::Fifo})
      for (int64_t c : {int64_t(0), credit})
        for (bool linkPriority : {false, true}) {
          SimResult r = simulate(plan, cluster, {{policy, c}, linkPriority});
          ASSERT_GE(r.stepTime, bound.step * (1 - 1e-9))
              << "iteration " << iter << " policy "
              << (policy == Policy::Lina ? "lina" : "fifo") << " credit " << c
              << " link priority " << linkPriority << ": link cut "
              << bound.linkCut << " compute " << bound.compute
              << " critical path " << bound.criticalPath << " compute schedule "
              << bound.computeSchedule << " high-queue schedule "
              << bound.highQueueSchedule << " stream path " << bound.streamPath
              << " link schedule " << bound.linkSchedule;
          ++checked;
        }
  }
  EXPECT_EQ(checked, 200 * 8);
  // The compute-schedule term must be the binding one in some plans, or the
  // test would not check it.
  EXPECT_GT(scheduleBinds, 10) << scheduleBinds << " of 200";
  EXPECT_GT(highBinds, 0) << "the high-queue term never binds";
  EXPECT_GT(streamBinds, 0) << "the stream-path term never binds";
  EXPECT_GT(linkBinds, 0) << "the link-schedule term never binds";
}

TEST(SimulatorBound, ChainIsTight) {
  // dense -> all_reduce -> dense on 2 ranks of one node: nothing overlaps,
  // so the simulated step equals the critical path.
  std::mt19937 rng(1);
  json buffers =
      json::array({buffer(0, 64, 64, "input"), buffer(1, 64, 64, "param"),
                   buffer(2, 64, 64, "temp"), buffer(3, 64, 64, "temp"),
                   buffer(4, 64, 64, "temp")});
  json ops = json::array({
      {{"id", 0}, {"kind", "dense"}, {"inputs", {0, 1}}, {"outputs", {2}}},
      {{"id", 1},
       {"kind", "all_reduce"},
       {"inputs", {2}},
       {"outputs", {3}},
       {"group", "world"},
       {"priority", "low"}},
      {{"id", 2}, {"kind", "dense"}, {"inputs", {3, 1}}, {"outputs", {4}}},
  });
  Plan plan = parsePlan(json{
      {"format", "lina-plan"},
      {"version", 1},
      {"world_size", 2},
      {"groups", groupsOf(2)},
      {"buffers", buffers},
      {"ops", ops}}.dump());
  ClusterSpec cluster = randomCluster(rng, 2);
  SimBound bound = lowerBound(plan, cluster);
  SimResult r = simulate(plan, cluster, {});
  EXPECT_NEAR(r.stepTime, bound.criticalPath, 1e-12 + 1e-9 * r.stepTime);
  EXPECT_NEAR(bound.step, bound.criticalPath, 0);
}
TEST(SimulatorBound, ComputeScheduleCountsTheIdleStream) {
  // Two chains dense -> all_reduce -> dense on 2 ranks. The critical path
  // is t + ar + t and the compute sum 4t, but one stream must run both
  // first denses before the second all_reduce can start: no schedule ends
  // before 2t + ar + t. The compute schedule finds exactly that.
  std::mt19937 rng(7);
  json buffers = json::array();
  for (int i = 0; i < 8; ++i)
    buffers.push_back(buffer(i, 64, 64,
                             i == 0   ? "input"
                             : i == 1 ? "param"
                                      : "temp"));
  json ops = json::array({
      {{"id", 0}, {"kind", "dense"}, {"inputs", {0, 1}}, {"outputs", {2}}},
      {{"id", 1}, {"kind", "dense"}, {"inputs", {0, 1}}, {"outputs", {3}}},
      {{"id", 2},
       {"kind", "all_reduce"},
       {"inputs", {2}},
       {"outputs", {4}},
       {"group", "world"},
       {"priority", "low"}},
      {{"id", 3},
       {"kind", "all_reduce"},
       {"inputs", {3}},
       {"outputs", {5}},
       {"group", "world"},
       {"priority", "low"}},
      {{"id", 4}, {"kind", "dense"}, {"inputs", {4, 1}}, {"outputs", {6}}},
      {{"id", 5}, {"kind", "dense"}, {"inputs", {5, 1}}, {"outputs", {7}}},
  });
  Plan plan = parsePlan(json{
      {"format", "lina-plan"},
      {"version", 1},
      {"world_size", 2},
      {"groups", groupsOf(2)},
      {"buffers", buffers},
      {"ops", ops}}.dump());
  ClusterSpec cluster = randomCluster(rng, 2);
  SimBound bound = lowerBound(plan, cluster);
  double t = bound.compute / 4;
  ASSERT_GT(t, 0);
  EXPECT_NEAR(bound.computeSchedule, bound.criticalPath + t,
              1e-12 + 1e-9 * bound.step);
  EXPECT_GT(bound.computeSchedule, bound.compute);
  EXPECT_EQ(bound.step,
            std::max({bound.linkCut, bound.streamPath, bound.computeSchedule,
                      bound.highQueueSchedule, bound.linkSchedule}));
  for (Policy policy : {Policy::Lina, Policy::Fifo}) {
    SimResult r = simulate(plan, cluster, {{policy, 0}, false});
    EXPECT_GE(r.stepTime, bound.step * (1 - 1e-9));
  }
}
} // namespace
