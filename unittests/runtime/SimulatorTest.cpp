//===- SimulatorTest.cpp - The cluster simulator on known answers ---------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Simulator.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace lina;
using namespace lina::rt;
using nlohmann::json;

namespace {
/// Two nodes of 4 GPUs: intra links 100 GB/s (800 Gb/s) and 1 us, node
/// interfaces 10 GB/s and 5 us, no launch latency; 100 TFLOP/s, 1000 GB/s.
ClusterSpec node() {
  std::string error;
  auto spec = ClusterSpec::fromJson(R"({
    "name": "test-node", "nodes": 2, "gpus_per_node": 4,
    "intra_node": {"bandwidth_gbps": 800, "latency_us": 1},
    "inter_node": {"bandwidth_gbps": 80, "latency_us": 5},
    "gpu": {"flops": 1e14, "memory_bandwidth_gbps": 8000},
    "launch_latency_us": 0})",
                                    error);
  EXPECT_TRUE(spec) << error;
  return *spec;
}

json buffer(int id, std::vector<int64_t> shape, const char *role = "temp") {
  return {{"id", id}, {"name", "b" + std::to_string(id)}, {"dtype", "f32"},
          {"shape", shape}, {"role", role}, {"init", "random"}};
}

json plan2(json buffers, json ops, int world = 2) {
  std::vector<int> all;
  for (int r = 0; r < world; ++r)
    all.push_back(r);
  return {{"format", "lina-plan"}, {"version", 1}, {"world_size", world},
          {"groups", {{"dp", {{"members", {all}}}}, {"ep", {{"members", {all}}}}}},
          {"buffers", buffers}, {"ops", ops}};
}

/// `count` all_reduce ops of `elems` f32 each over 2 ranks, all ready at once.
Plan allReduces(int count, int64_t elems) {
  json buffers = json::array(), ops = json::array();
  for (int i = 0; i < count; ++i) {
    buffers.push_back(buffer(2 * i, {elems}, "param"));
    buffers.push_back(buffer(2 * i + 1, {elems}));
    ops.push_back({{"id", i}, {"kind", "all_reduce"}, {"inputs", {2 * i}},
                   {"outputs", {2 * i + 1}}, {"group", "dp"}, {"priority", "low"}});
  }
  return parsePlan(plan2(buffers, ops).dump());
}

TEST(Simulator, OneFlowAloneTakesBytesOverBandwidth) {
  // 2 ranks, 100 MB: ring all-reduce 2 * 1/2 * 1e8 / 1e11 = 1 ms plus
  // 2 * 1 us of latency.
  Plan plan = allReduces(1, 25'000'000);
  SimResult r = simulate(plan, node(), {});
  EXPECT_NEAR(r.stepTime, 1e-3 + 2e-6, 1e-9);
  EXPECT_NEAR(r.meanAllReduceTime, 1e-3 + 2e-6, 1e-9);
}

TEST(Simulator, TwoEqualFlowsOnOneLinkTakeTwiceAsLong) {
  // Two partitions in flight at once (a credit window of both), sharing the
  // links of the same two GPUs.
  Plan plan = allReduces(2, 25'000'000);
  SimResult r = simulate(plan, node(), {{Policy::Lina, 200'000'000}, false});
  EXPECT_NEAR(r.stepTime, 2e-3 + 2e-6, 1e-9);
  // Both end together, each having taken twice its time alone.
  const auto &tl = r.ranks[0].timeline;
  ASSERT_EQ(tl.size(), 2u);
  EXPECT_NEAR(tl[0].end - tl[0].start, 2e-3 + 2e-6, 1e-9);
  EXPECT_NEAR(tl[1].end - tl[1].start, 2e-3 + 2e-6, 1e-9);
  // Without contention they would each take their alone time.
  SimResult free = simulate(plan, node(), {{Policy::Lina, 200'000'000}, true});
  EXPECT_NEAR(free.stepTime, 1e-3 + 2e-6, 1e-9);
  // One at a time (no credit), they take their alone time each, in turn.
  SimResult serial = simulate(plan, node(), {{Policy::Lina, 0}, false});
  EXPECT_NEAR(serial.stepTime, 2 * (1e-3 + 2e-6), 1e-9);
}

TEST(Simulator, InterNodeFlowsUseTheSharedInterface) {
  // 8 ranks over 2 nodes; all_to_all of 80 MB per rank: inter part
  // (8 - 4) / 8 * 8e7 * 4 / 1e10 = 16 ms dominates; latency 7 * 5 us.
  json buffers = json::array({buffer(0, {8, 2'500'000}, "input"), buffer(1, {8, 2'500'000})});
  json ops = json::array({{{"id", 0}, {"kind", "all_to_all"}, {"inputs", {0}},
                           {"outputs", {1}}, {"group", "ep"}, {"priority", "high"},
                           {"attrs", {{"split_axis", 0}, {"concat_axis", 0}}}}});
  Plan plan = parsePlan(plan2(buffers, ops, 8).dump());
  SimResult r = simulate(plan, node(), {});
  EXPECT_NEAR(r.stepTime, 16e-3 + 35e-6, 1e-9);
}

/// dense -> all_to_all (high) -> dense, plus `parts` low all_reduce
/// partitions of `elems` each, ready from the start.
Plan contention(int parts, int64_t elems) {
  json buffers = json::array({buffer(0, {4096, 4096}, "input"), buffer(1, {4096, 4096}, "param"),
                              buffer(2, {4096, 4096}), buffer(3, {4096, 4096}),
                              buffer(4, {4096, 4096})});
  json ops = json::array({
      {{"id", 0}, {"kind", "dense"}, {"inputs", {0, 1}}, {"outputs", {2}}, {"hold_low", true}},
      {{"id", 1}, {"kind", "all_to_all"}, {"inputs", {2}}, {"outputs", {3}}, {"group", "ep"},
       {"priority", "high"}, {"attrs", {{"split_axis", 0}, {"concat_axis", 0}}}},
  });
  for (int i = 0; i < parts; ++i) {
    int b = 5 + 2 * i;
    buffers.push_back(buffer(b, {elems}, "param"));
    buffers.push_back(buffer(b + 1, {elems}));
    ops.push_back({{"id", 2 + i}, {"kind", "all_reduce"}, {"inputs", {b}}, {"outputs", {b + 1}},
                   {"group", "dp"}, {"priority", "low"}});
  }
  ops.push_back({{"id", 2 + parts}, {"kind", "dense"}, {"inputs", {3, 1}}, {"outputs", {4}}});
  return parsePlan(plan2(buffers, ops).dump());
}

double allToAllDuration(const SimResult &r) {
  for (const OpInterval &i : r.ranks[0].timeline)
    if (i.op == 1)
      return i.end - i.start;
  return -1;
}

TEST(Simulator, PartitionedAllReduceYieldsToAllToAll) {
  // Alone, the all_to_all of 64 MiB over 2 ranks takes 1/2 * 67 MB / 1e11
  // + 1 us.
  double alone = 0.5 * 4096.0 * 4096 * 4 / 1e11 + 1e-6;
  Plan plan = contention(16, 4'000'000);
  SimResult lina = simulate(plan, node(), {{Policy::Lina, 0}, false});
  SimResult fifo = simulate(plan, node(), {{Policy::Fifo, 0}, false});
  // Lina: the partitions wait; the all_to_all runs alone.
  EXPECT_NEAR(allToAllDuration(lina), alone, 1e-9);
  // Fifo: a partition started during the dense op still runs when the
  // all_to_all starts and shares the link with it: the all_to_all takes
  // longer.
  EXPECT_GT(allToAllDuration(fifo), 1.2 * alone);
  EXPECT_GT(fifo.meanAllToAllBlocked, lina.meanAllToAllBlocked);
}

TEST(Simulator, RejectsPlansLargerThanTheCluster) {
  json buffers = json::array({buffer(0, {4}, "param"), buffer(1, {4})});
  json ops = json::array({{{"id", 0}, {"kind", "all_reduce"}, {"inputs", {0}},
                           {"outputs", {1}}, {"group", "dp"}}});
  Plan plan = parsePlan(plan2(buffers, ops, 16).dump());
  EXPECT_THROW(simulate(plan, node(), {}), PlanError);
}

TEST(Simulator, ComputeTakesItsRooflineTime) {
  Plan plan = contention(0, 1);
  SimResult r = simulate(plan, node(), {});
  // dense 4096^3 * 2 = 137 GFLOP at 100 TFLOP/s = 1.37 ms (compute bound).
  const OpInterval &first = r.ranks[0].timeline.front();
  EXPECT_EQ(first.op, 0);
  EXPECT_NEAR(first.end - first.start, 2.0 * 4096 * 4096 * 4096 / 1e14, 1e-9);
}
} // namespace
