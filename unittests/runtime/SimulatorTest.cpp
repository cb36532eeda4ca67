//===- SimulatorTest.cpp - The cluster simulator on known answers ---------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Simulator.h"
#include "lina/rt/OpKinds.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

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
  return {{"id", id},       {"name", "b" + std::to_string(id)},
          {"dtype", "f32"}, {"shape", shape},
          {"role", role},   {"init", "random"}};
}

json plan2(json buffers, json ops, int world = 2) {
  std::vector<int> all;
  for (int r = 0; r < world; ++r)
    all.push_back(r);
  return {
      {"format", "lina-plan"},
      {"version", 1},
      {"world_size", world},
      {"groups", {{"dp", {{"members", {all}}}}, {"ep", {{"members", {all}}}}}},
      {"buffers", buffers},
      {"ops", ops}};
}

/// `count` all_reduce ops of `elems` f32 each over 2 ranks, all ready at once.
Plan allReduces(int count, int64_t elems) {
  json buffers = json::array(), ops = json::array();
  for (int i = 0; i < count; ++i) {
    buffers.push_back(buffer(2 * i, {elems}, "param"));
    buffers.push_back(buffer(2 * i + 1, {elems}));
    ops.push_back({{"id", i},
                   {"kind", "all_reduce"},
                   {"inputs", {2 * i}},
                   {"outputs", {2 * i + 1}},
                   {"group", "dp"},
                   {"priority", "low"}});
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
  // The bound: the link cut (both partitions' bytes on one link) is tight.
  SimBound bound = lowerBound(plan, node());
  EXPECT_NEAR(bound.linkCut, 2e-3, 1e-9);
  EXPECT_NEAR(bound.criticalPath, 1e-3 + 2e-6, 1e-9);
  EXPECT_LE(bound.step, r.stepTime);
  // One at a time (no credit), they take their alone time each, in turn.
  SimResult serial = simulate(plan, node(), {{Policy::Lina, 0}, false});
  EXPECT_NEAR(serial.stepTime, 2 * (1e-3 + 2e-6), 1e-9);
}

TEST(Simulator, InterNodeFlowsUseTheSharedInterface) {
  // 8 ranks over 2 nodes; all_to_all of 80 MB per rank: inter part
  // (8 - 4) / 8 * 8e7 * 4 / 1e10 = 16 ms dominates; latency 7 * 5 us.
  json buffers = json::array(
      {buffer(0, {8, 2'500'000}, "input"), buffer(1, {8, 2'500'000})});
  json ops =
      json::array({{{"id", 0},
                    {"kind", "all_to_all"},
                    {"inputs", {0}},
                    {"outputs", {1}},
                    {"group", "ep"},
                    {"priority", "high"},
                    {"attrs", {{"split_axis", 0}, {"concat_axis", 0}}}}});
  Plan plan = parsePlan(plan2(buffers, ops, 8).dump());
  SimResult r = simulate(plan, node(), {});
  EXPECT_NEAR(r.stepTime, 16e-3 + 35e-6, 1e-9);
}

/// dense -> all_to_all (high) -> dense, plus `parts` low all_reduce
/// partitions of `elems` each, ready from the start.
Plan contention(int parts, int64_t elems) {
  json buffers =
      json::array({buffer(0, {4096, 4096}, "input"),
                   buffer(1, {4096, 4096}, "param"), buffer(2, {4096, 4096}),
                   buffer(3, {4096, 4096}), buffer(4, {4096, 4096})});
  json ops = json::array({
      {{"id", 0},
       {"kind", "dense"},
       {"inputs", {0, 1}},
       {"outputs", {2}},
       {"hold_low", true}},
      {{"id", 1},
       {"kind", "all_to_all"},
       {"inputs", {2}},
       {"outputs", {3}},
       {"group", "ep"},
       {"priority", "high"},
       {"attrs", {{"split_axis", 0}, {"concat_axis", 0}}}},
  });
  for (int i = 0; i < parts; ++i) {
    int b = 5 + 2 * i;
    buffers.push_back(buffer(b, {elems}, "param"));
    buffers.push_back(buffer(b + 1, {elems}));
    ops.push_back({{"id", 2 + i},
                   {"kind", "all_reduce"},
                   {"inputs", {b}},
                   {"outputs", {b + 1}},
                   {"group", "dp"},
                   {"priority", "low"}});
  }
  ops.push_back({{"id", 2 + parts},
                 {"kind", "dense"},
                 {"inputs", {3, 1}},
                 {"outputs", {4}}});
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
  json ops = json::array({{{"id", 0},
                           {"kind", "all_reduce"},
                           {"inputs", {0}},
                           {"outputs", {1}},
                           {"group", "dp"}}});
  Plan plan = parsePlan(plan2(buffers, ops, 16).dump());
  EXPECT_THROW(simulate(plan, node(), {}), PlanError);
}

TEST(Simulator, ComputeEfficiencyAndKernelLaunches) {
  std::string error;
  auto spec = ClusterSpec::fromJson(R"({
    "name": "slow", "nodes": 1, "gpus_per_node": 2,
    "intra_node": {"bandwidth_gbps": 800, "latency_us": 1},
    "inter_node": {"bandwidth_gbps": 80, "latency_us": 5},
    "gpu": {"flops": 1e14, "memory_bandwidth_gbps": 8000,
            "gemm_efficiency": 0.5, "memory_efficiency": 0.8,
            "kernel_launch_us": 10},
    "launch_latency_us": 0})",
                                    error);
  ASSERT_TRUE(spec) << error;
  Plan plan = contention(0, 1);
  SimResult r = simulate(plan, *spec, {});
  const OpInterval &first = r.ranks[0].timeline.front();
  // GEMM-bound at half the peak, plus one launch.
  EXPECT_NEAR(first.end - first.start, 2.0 * 4096 * 4096 * 4096 / 5e13 + 10e-6,
              1e-9);
  // A memory-bound op: bytes over 80% of 1000 GB/s, plus one launch.
  CostModel model(*spec);
  Op add;
  add.kind = OpKind::Add;
  add.inputs = {0, 1};
  add.outputs = {2};
  EXPECT_NEAR(computeTime(plan, add, model),
              3 * 4096.0 * 4096 * 4 / 8e11 + 10e-6, 1e-12);
}

TEST(Simulator, SplitExpertGradientCostsItsShareOfTheFusedOne) {
  // expert_ffn_grad and its two halves on El=2, N=64, H=32, F=128.
  json buffers = json::array({
      buffer(0, {2, 64, 32}, "input"),
      buffer(1, {2, 64, 32}, "input"),
      buffer(2, {2, 32, 128}, "param"),
      buffer(3, {2, 128, 32}, "param"),
      buffer(4, {2, 64, 32}, "output"),
      buffer(5, {2, 32, 128}, "output"),
      buffer(6, {2, 128, 32}, "output"),
      buffer(7, {2, 64, 32}, "output"),
      buffer(8, {2, 64, 128}),
      buffer(9, {2, 64, 128}),
      buffer(10, {2, 32, 128}, "output"),
      buffer(11, {2, 128, 32}, "output"),
  });
  json ops = json::array({
      {{"id", 0},
       {"kind", "expert_ffn_grad"},
       {"inputs", {0, 1, 2, 3}},
       {"outputs", {4, 5, 6}},
       {"attrs", {{"activation", "gelu"}}}},
      {{"id", 1},
       {"kind", "expert_ffn_grad_input"},
       {"inputs", {0, 1, 2, 3}},
       {"outputs", {7, 8, 9}},
       {"attrs", {{"activation", "gelu"}}}},
      {{"id", 2},
       {"kind", "expert_ffn_grad_weight"},
       {"inputs", {0, 1, 8, 9}},
       {"outputs", {10, 11}}},
  });
  Plan plan = parsePlan(plan2(buffers, ops, 1).dump());
  OpCost fused = opCost(plan, plan.ops[0]), input = opCost(plan, plan.ops[1]),
         weight = opCost(plan, plan.ops[2]);
  const double enhf = 2.0 * 64 * 32 * 128;
  EXPECT_EQ(fused.flops, 10 * enhf);
  EXPECT_EQ(input.flops, 6 * enhf);  // z, dz, din
  EXPECT_EQ(weight.flops, 4 * enhf); // dw1, dw2
  EXPECT_EQ(fused.kernels, 8 * 2);
  EXPECT_EQ(input.kernels, 5 * 2);
  EXPECT_EQ(weight.kernels, 2 * 2);
  EXPECT_TRUE(input.gemm);
  EXPECT_TRUE(weight.gemm);
  // Bytes: every input and output (tokens 2x64x32, weights 2x32x128,
  // act and dz 2x64x128).
  const double tok = 4.0 * 2 * 64 * 32, w = 4.0 * 2 * 32 * 128,
               enf = 4.0 * 2 * 64 * 128;
  EXPECT_EQ(input.bytes, 3 * tok + 2 * w + 2 * enf);
  EXPECT_EQ(weight.bytes, 2 * tok + 2 * enf + 2 * w);
  SimResult r = simulate(plan, node(), {});
  ASSERT_EQ(r.ranks[0].timeline.size(), 3u);
  for (const OpInterval &i : r.ranks[0].timeline)
    EXPECT_GT(i.end, i.start) << "op " << i.op;
}

TEST(Simulator, TwoExpertWeightGradsCostTheWeightHalf) {
  // expert_ffn_grad_weight(dy, in, act, dz), then its two GEMMs as
  // expert_weight_grad(in, dz) -> dw1 and expert_weight_grad(act, dy) -> dw2,
  // on El=2, N=64, H=32, F=128.
  json buffers = json::array({
      buffer(0, {2, 64, 32}, "input"),
      buffer(1, {2, 64, 32}, "input"),
      buffer(2, {2, 64, 128}, "input"),
      buffer(3, {2, 64, 128}, "input"),
      buffer(4, {2, 32, 128}, "output"),
      buffer(5, {2, 128, 32}, "output"),
      buffer(6, {2, 32, 128}, "output"),
      buffer(7, {2, 128, 32}, "output"),
  });
  json ops = json::array({
      {{"id", 0},
       {"kind", "expert_ffn_grad_weight"},
       {"inputs", {0, 1, 2, 3}},
       {"outputs", {4, 5}}},
      {{"id", 1},
       {"kind", "expert_weight_grad"},
       {"inputs", {1, 3}},
       {"outputs", {6}}},
      {{"id", 2},
       {"kind", "expert_weight_grad"},
       {"inputs", {2, 0}},
       {"outputs", {7}}},
  });
  Plan plan = parsePlan(plan2(buffers, ops, 1).dump());
  OpCost half = opCost(plan, plan.ops[0]), dw1 = opCost(plan, plan.ops[1]),
         dw2 = opCost(plan, plan.ops[2]);
  const double enhf = 2.0 * 64 * 32 * 128;
  EXPECT_EQ(half.flops, 4 * enhf);
  EXPECT_EQ(dw1.flops, 2 * enhf); // 2·El·N·X·Y with X=H, Y=F
  EXPECT_EQ(dw2.flops, 2 * enhf); // X=F, Y=H
  EXPECT_EQ(dw1.flops + dw2.flops, half.flops);
  EXPECT_EQ(dw1.kernels, 2); // one GEMM per local expert
  EXPECT_EQ(dw2.kernels, 2);
  EXPECT_EQ(dw1.kernels + dw2.kernels, half.kernels);
  EXPECT_TRUE(dw1.gemm);
  EXPECT_TRUE(dw2.gemm);
  // Bytes: a, b and the result of each.
  const double tok = 4.0 * 2 * 64 * 32, enf = 4.0 * 2 * 64 * 128,
               w = 4.0 * 2 * 32 * 128;
  EXPECT_EQ(dw1.bytes, tok + enf + w);
  EXPECT_EQ(dw2.bytes, enf + tok + w);
  EXPECT_EQ(dw1.bytes + dw2.bytes, half.bytes);
  SimResult r = simulate(plan, node(), {});
  ASSERT_EQ(r.ranks[0].timeline.size(), 3u);
  for (const OpInterval &i : r.ranks[0].timeline)
    EXPECT_GT(i.end, i.start) << "op " << i.op;
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

//===----------------------------------------------------------------------===//
// Max-min fair sharing on known answers
//===----------------------------------------------------------------------===//

namespace {
TEST(MaxMin, TwoFlowsOnOneLinkShareIt) {
  std::vector<double> r = maxMinRates({10}, {{0, -1, 1}, {0, -1, 1}});
  EXPECT_DOUBLE_EQ(r[0], 5);
  EXPECT_DOUBLE_EQ(r[1], 5);
}

TEST(MaxMin, AFlowLimitedElsewhereGivesItsShareBack) {
  // B crosses both links and is held to 1/2 by link 0; C takes the rest of
  // link 1 (equal shares per link would give C only 5).
  std::vector<double> r =
      maxMinRates({1, 10}, {{0, -1, 1}, {0, 1, 1}, {1, -1, 1}});
  EXPECT_DOUBLE_EQ(r[0], 0.5);
  EXPECT_DOUBLE_EQ(r[1], 0.5);
  EXPECT_DOUBLE_EQ(r[2], 9.5);
}

TEST(MaxMin, BottlenecksFillInOrder) {
  // Link 0 (1/2 per flow) saturates first; link 1 then splits 2 - 1/2.
  std::vector<double> r =
      maxMinRates({1, 2}, {{0, -1, 1}, {0, 1, 1}, {1, -1, 1}, {1, -1, 1}});
  EXPECT_DOUBLE_EQ(r[0], 0.5);
  EXPECT_DOUBLE_EQ(r[1], 0.5);
  EXPECT_DOUBLE_EQ(r[2], 0.75);
  EXPECT_DOUBLE_EQ(r[3], 0.75);
}

TEST(MaxMin, WeightsCountIdenticalSubFlows) {
  // Three sub-flows on one link: 4 each, 8 for the pair.
  std::vector<double> r = maxMinRates({12}, {{0, -1, 2}, {0, -1, 1}});
  EXPECT_DOUBLE_EQ(r[0], 4);
  EXPECT_DOUBLE_EQ(r[1], 4);
}

TEST(MaxMin, RejectsBadFlows) {
  EXPECT_THROW(maxMinRates({1}, {{0, 3, 1}}), PlanError);
  EXPECT_THROW(maxMinRates({1}, {{0, -1, 0}}), PlanError);
  EXPECT_THROW(maxMinRates({1}, {{-1, -1, 1}}), PlanError);
}

//===----------------------------------------------------------------------===//
// Collectives as flows over the links they use
//===----------------------------------------------------------------------===//

/// Like node() but with no latencies: pure bandwidth answers.
ClusterSpec pureBandwidth(const char *extra = "", int nodes = 2,
                          int perNode = 4) {
  std::string error;
  std::string text = std::string(R"({"name": "bw", "nodes": )") +
                     std::to_string(nodes) + R"(, "gpus_per_node": )" +
                     std::to_string(perNode) + R"(,
    "intra_node": {"bandwidth_gbps": 800, "latency_us": 0},
    "inter_node": {"bandwidth_gbps": 80, "latency_us": 0},
    "gpu": {"flops": 1e14, "memory_bandwidth_gbps": 8000},
    "launch_latency_us": 0)" +
                     extra + "}";
  auto spec = ClusterSpec::fromJson(text, error);
  EXPECT_TRUE(spec) << error;
  return *spec;
}

/// Groups: "world" (all 8 ranks), "node" (the two nodes of 4).
json groups8() {
  return {{"world", {{"members", {{0, 1, 2, 3, 4, 5, 6, 7}}}}},
          {"node", {{"members", {{0, 1, 2, 3}, {4, 5, 6, 7}}}}}};
}

json collective(int id, const char *kind, int in, int out, const char *group,
                const char *priority) {
  json op = {{"id", id},         {"kind", kind},   {"inputs", {in}},
             {"outputs", {out}}, {"group", group}, {"priority", priority}};
  if (std::string(kind) == "all_to_all")
    op["attrs"] = {{"split_axis", 0}, {"concat_axis", 0}};
  return op;
}

Plan plan8(json buffers, json ops) {
  return parsePlan(json{
      {"format", "lina-plan"},
      {"version", 1},
      {"world_size", 8},
      {"groups", groups8()},
      {"buffers", buffers},
      {"ops", ops}}.dump());
}

double duration(const SimResult &r, int rank, int op) {
  for (const OpInterval &i : r.ranks[rank].timeline)
    if (i.op == op)
      return i.end - i.start;
  return -1;
}

TEST(SimulatorFlows, NetworkTrafficDoesNotUseNvlink) {
  // An all_to_all over both nodes (80 MB per rank: 16 x 10 MB cross each
  // interface, 16 ms) and, at the same time, a ring all_reduce inside each
  // node (4e8 bytes: 6e8 per GPU port, 6 ms alone). The all_to_all's
  // in-node pairs (3 x 10 MB per port) share the ports with the ring for
  // 0.4 ms at 1/4 each; its network pairs never touch NVLink, so it is not
  // slowed, and the ring loses only 0.3 ms.
  json buffers = json::array(
      {buffer(0, {8, 2'500'000}, "input"), buffer(1, {8, 2'500'000}),
       buffer(2, {100'000'000}, "param"), buffer(3, {100'000'000})});
  json ops = json::array({collective(0, "all_to_all", 0, 1, "world", "high"),
                          collective(1, "all_reduce", 2, 3, "node", "low")});
  Plan plan = plan8(buffers, ops);
  SimResult r = simulate(plan, pureBandwidth(), {{Policy::Fifo, 0}, false});
  for (int rank : {0, 5}) {
    EXPECT_NEAR(duration(r, rank, 0), 16e-3, 1e-9);
    EXPECT_NEAR(duration(r, rank, 1), 6.3e-3, 1e-9);
  }
}

TEST(SimulatorFlows, AllToAllInsideANodeUsesEveryPort) {
  // 4e8 bytes per rank: each port up carries 3/4 of it at 100 GB/s.
  json buffers = json::array(
      {buffer(0, {4, 25'000'000}, "input"), buffer(1, {4, 25'000'000})});
  json ops = json::array({collective(0, "all_to_all", 0, 1, "node", "high")});
  SimResult r = simulate(plan8(buffers, ops), pureBandwidth(), {});
  EXPECT_NEAR(r.stepTime, 3e-3, 1e-9);
  // Across both nodes each rank sends 4/8 of its bytes out of the node: 16
  // pairs x 5e7 over one 10 GB/s interface, 80 ms.
  ops = json::array({collective(0, "all_to_all", 0, 1, "world", "high")});
  json buffers8 = json::array(
      {buffer(0, {8, 12'500'000}, "input"), buffer(1, {8, 12'500'000})});
  r = simulate(plan8(buffers8, ops), pureBandwidth(), {});
  EXPECT_NEAR(r.stepTime, 80e-3, 1e-9);
}

/// The step time of one all_to_all_v over the 8 ranks of plan8 with
/// send_rows `rows` (8 x 8) and f32 buffers of `count` rows of `width`.
double simulateAllToAllV(const std::vector<int64_t> &rows, int64_t count,
                         int64_t width, const ClusterSpec &spec) {
  json counts = {{"dtype", "i64"}, {"shape", {8}}, {"role", "input"}};
  json sc = counts, rc = counts;
  sc["id"] = 2;
  sc["name"] = "sc";
  rc["id"] = 3;
  rc["name"] = "rc";
  json buffers = json::array(
      {buffer(0, {count, width}, "input"), buffer(1, {count, width}), sc, rc});
  json op = {{"id", 0},
             {"kind", "all_to_all_v"},
             {"inputs", {0, 2, 3}},
             {"outputs", {1}},
             {"group", "world"},
             {"attrs", {{"send_rows", rows}}}};
  return simulate(plan8(buffers, json::array({op})), spec, {}).stepTime;
}

TEST(SimulatorFlows, AllToAllVMovesItsSendRows) {
  // Rows of 4 MB; rank 0 sends 10 of them to one peer, nobody else sends:
  // 40 MB over one NVLink port at 100 GB/s, or over the node interface at
  // 10 GB/s. Split evenly (no send_rows) the same 10 rows would load every
  // pair.
  auto run = [](int to) {
    std::vector<int64_t> rows(64, 0);
    rows[to] = 10;
    return simulateAllToAllV(rows, 10, 1'000'000, pureBandwidth());
  };
  EXPECT_NEAR(run(1), 0.4e-3, 1e-9);
  EXPECT_NEAR(run(4), 4e-3, 1e-9);
  EXPECT_NEAR(run(0), 0, 1e-9); // to itself: no flow
}

// An all_to_all_v with send_rows contacts only the peers it has rows for:
// its latency is the launch plus one link latency per peer of the busiest
// member, across nodes if any pair with rows is.
TEST(SimulatorFlows, AllToAllVLatencyCountsItsPeers) {
  std::string error;
  auto spec = ClusterSpec::fromJson(R"({"name": "lat", "nodes": 2,
    "gpus_per_node": 4,
    "intra_node": {"bandwidth_gbps": 800, "latency_us": 10},
    "inter_node": {"bandwidth_gbps": 80, "latency_us": 100},
    "gpu": {"flops": 1e14, "memory_bandwidth_gbps": 8000},
    "launch_latency_us": 1})",
                                    error);
  ASSERT_TRUE(spec) << error;
  auto run = [&](const std::vector<std::pair<int, int>> &pairs) {
    std::vector<int64_t> rows(64, 0);
    for (auto [s, d] : pairs)
      rows[s * 8 + d] = 1;
    return simulateAllToAllV(rows, 8, 1, *spec);
  };
  EXPECT_NEAR(run({{0, 1}}), 11e-6, 1e-9);                 // one copy
  EXPECT_NEAR(run({{0, 1}, {0, 2}, {0, 3}}), 31e-6, 1e-9); // three peers
  EXPECT_NEAR(run({{0, 1}, {2, 3}}), 11e-6, 1e-9);         // in parallel
  EXPECT_NEAR(run({{0, 4}}), 101e-6, 1e-9);                // across nodes
  std::vector<std::pair<int, int>> all;
  for (int s = 0; s < 8; ++s)
    for (int d = 0; d < 8; ++d)
      all.push_back({s, d});
  EXPECT_NEAR(run(all), 701e-6, 1e-8); // dense: n - 1 peers
}

TEST(SimulatorFlows, AllReduceAcrossNodesRingAndTree) {
  // 4e8 bytes over 2 nodes of 4.
  json buffers = json::array(
      {buffer(0, {100'000'000}, "param"), buffer(1, {100'000'000})});
  json ops = json::array({collective(0, "all_reduce", 0, 1, "world", "low")});
  Plan plan = plan8(buffers, ops);
  // Ring: every hop carries 2*7/8 B; the two node crossings go through the
  // 10 GB/s interfaces: 70 ms. Latency 2*3 x 1 us + 2*1 x 5 us.
  SimResult ring = simulate(plan, node(), {});
  EXPECT_NEAR(ring.stepTime, 70e-3 + 16e-6, 1e-9);
  SimBound b = lowerBound(plan, node());
  EXPECT_NEAR(b.criticalPath, 70e-3 + 16e-6, 1e-9);
  EXPECT_NEAR(b.linkCut, 70e-3, 1e-9);
  EXPECT_EQ(b.link, "node 0 network up");
  // Tree, in phases: reduce 3/4 B per port (3 ms), the two nodes' shards
  // 2 (m-1)/m B = B per interface (40 ms), broadcast (3 ms); latencies
  // 3 x 1 us, 2 x 5 us, 3 x 1 us.
  ClusterSpec tree = node();
  tree.allReduceAlgorithm = AllReduceAlgorithm::Tree;
  EXPECT_NEAR(simulate(plan, tree, {}).stepTime, 46e-3 + 16e-6, 1e-9);
  EXPECT_NEAR(lowerBound(plan, tree).criticalPath, 46e-3 + 16e-6, 1e-9);
}

TEST(SimulatorFlows, SharingPerCollective) {
  // The all_to_all over both nodes of NetworkTrafficDoesNotUseNvlink with
  // a world all-reduce of 1e8 bytes (crossing each interface once with
  // 1.75e8 bytes) started with it. Per pair, the all_to_all's 16 sub-flows
  // take 16/17 of each interface; per collective, each takes half.
  json buffers = json::array(
      {buffer(0, {8, 2'500'000}, "input"), buffer(1, {8, 2'500'000}),
       buffer(2, {25'000'000}, "param"), buffer(3, {25'000'000})});
  json ops = json::array({collective(0, "all_to_all", 0, 1, "world", "high"),
                          collective(1, "all_reduce", 2, 3, "world", "low")});
  Plan plan = plan8(buffers, ops);
  SimResult pair = simulate(plan, pureBandwidth(), {{Policy::Fifo, 0}, false});
  ClusterSpec perCollective = pureBandwidth(R"(, "sharing": "collective")");
  SimResult coll = simulate(plan, perCollective, {{Policy::Fifo, 0}, false});
  // Per pair: the ring's crossing gets 1/17 of 10 GB/s until the
  // all_to_all's 1.6e8 bytes are done at 17 ms; the ring then finishes
  // 1.75e8 - 1e7 bytes at full rate: 17 + 16.5 = 33.5 ms.
  EXPECT_NEAR(duration(pair, 0, 0), 17e-3, 1e-9);
  EXPECT_NEAR(duration(pair, 0, 1), 33.5e-3, 1e-9);
  // Per collective: 5 GB/s each until the all_to_all is done at 32 ms; the
  // ring has 1.75e8 - 1.6e8 left: 1.5 ms more.
  EXPECT_NEAR(duration(coll, 0, 0), 32e-3, 1e-9);
  EXPECT_NEAR(duration(coll, 0, 1), 33.5e-3, 1e-9);
}

TEST(SimulatorFlows, TreeAllReduceHasLogarithmicLatency) {
  // 8 nodes of 1 GPU, 8 bytes: ring 2 x 7 steps of 5 us, tree 2 x 3.
  std::string error;
  auto cluster = [&](const char *algo) {
    auto spec = ClusterSpec::fromJson(
        std::string(R"({"name": "t", "nodes": 8, "gpus_per_node": 1,
          "intra_node": {"bandwidth_gbps": 800, "latency_us": 1},
          "inter_node": {"bandwidth_gbps": 80, "latency_us": 5},
          "gpu": {"flops": 1e14, "memory_bandwidth_gbps": 8000},
          "launch_latency_us": 0, "all_reduce_algorithm": ")") +
            algo + "\"}",
        error);
    EXPECT_TRUE(spec) << error;
    return *spec;
  };
  json buffers = json::array({buffer(0, {2}, "param"), buffer(1, {2})});
  json ops = json::array({collective(0, "all_reduce", 0, 1, "world", "low")});
  Plan plan = plan8(buffers, ops);
  double bw = 2.0 * 7 / 8 * 8 / 1e10;
  EXPECT_NEAR(simulate(plan, cluster("ring"), {}).stepTime, 70e-6 + bw, 1e-12);
  EXPECT_NEAR(simulate(plan, cluster("tree"), {}).stepTime, 30e-6 + bw, 1e-12);
}

TEST(SimulatorFlows, LinkPriorityGivesTheAllToAllItsAloneTime) {
  double alone = 0.5 * 4096.0 * 4096 * 4 / 1e11 + 1e-6;
  Plan plan = contention(16, 4'000'000);
  SimResult shared = simulate(plan, node(), {{Policy::Fifo, 0}, false});
  SimResult strict = simulate(plan, node(), {{Policy::Fifo, 0}, true});
  EXPECT_GT(allToAllDuration(shared), 1.2 * alone);
  EXPECT_NEAR(allToAllDuration(strict), alone, 1e-9);
}

//===----------------------------------------------------------------------===//
// Termination whatever the magnitudes
//===----------------------------------------------------------------------===//

ClusterSpec extreme(const char *flops, const char *intraGbps) {
  std::string error;
  auto spec = ClusterSpec::fromJson(
      std::string(R"({"name": "x", "nodes": 1, "gpus_per_node": 2,
        "intra_node": {"bandwidth_gbps": )") +
          intraGbps + R"(, "latency_us": 1},
        "inter_node": {"bandwidth_gbps": 80, "latency_us": 5},
        "gpu": {"flops": )" +
          flops + R"(, "memory_bandwidth_gbps": 8000},
        "launch_latency_us": 0})",
      error);
  EXPECT_TRUE(spec) << error;
  return *spec;
}

TEST(SimulatorTermination, SlowGpuClockOutgrowsTinyFlows) {
  // Each dense op takes 1.4e8 s at 1 kFLOP/s; after the first, a 16-byte
  // all_reduce partition lasts 1.6e-10 s, far below the clock's resolution
  // (clock + duration == clock). The simulation must still end.
  Plan plan = contention(2, 4);
  SimResult r = simulate(plan, extreme("1e3", "800"), {});
  double dense = 2.0 * 4096 * 4096 * 4096 / 1e3;
  EXPECT_TRUE(std::isfinite(r.stepTime));
  EXPECT_GE(r.stepTime, 2 * dense);
  EXPECT_NEAR(r.stepTime, 2 * dense, 1e-9 * dense);
}

TEST(SimulatorTermination, AbsurdTimesAreErrors) {
  // 1e8 bytes at 1e-20 Gb/s: finite (8e22 s) but beyond any real step.
  try {
    simulate(allReduces(1, 25'000'000), extreme("1e14", "1e-20"), {});
    FAIL() << "expected an error";
  } catch (const PlanError &e) {
    EXPECT_NE(std::string(e.what()).find("op 0 (all_reduce"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("beyond the limit"), std::string::npos)
        << e.what();
  }
}

TEST(SimulatorTermination, TinyBandwidthEnds) {
  // 1e-6 Gb/s = 125 B/s: 1e8 bytes take 8e5 s.
  SimResult r =
      simulate(allReduces(1, 25'000'000), extreme("1e14", "1e-6"), {});
  EXPECT_NEAR(r.stepTime, 8e5 + 2e-6, 1e-3);
}

TEST(SimulatorTermination, InfiniteTimeNamesTheOp) {
  // A bandwidth so small that the transfer time overflows a double.
  try {
    simulate(allReduces(1, 25'000'000), extreme("1e14", "1e-310"), {});
    FAIL() << "expected an error";
  } catch (const PlanError &e) {
    EXPECT_NE(std::string(e.what()).find("op 0 (all_reduce"), std::string::npos)
        << e.what();
    EXPECT_NE(
        std::string(e.what()).find("infinity, beyond the limit of 1e+12 s"),
        std::string::npos)
        << e.what();
  }
}

TEST(SimulatorScale, ManyRanksAreDeterministic) {
  // 256 ranks in 32 nodes: all_to_all in groups of 16 and all_reduce over
  // the world, twice; two runs give identical timelines.
  std::vector<int> world;
  json ep = json::array();
  for (int r = 0; r < 256; ++r)
    world.push_back(r);
  for (int g = 0; g < 16; ++g) {
    std::vector<int> m;
    for (int i = 0; i < 16; ++i)
      m.push_back(16 * g + i);
    ep.push_back(m);
  }
  json buffers =
      json::array({buffer(0, {16, 4096}, "input"), buffer(1, {16, 4096}),
                   buffer(2, {1'000'000}, "param"), buffer(3, {1'000'000}),
                   buffer(4, {16, 4096})});
  json ops = json::array({collective(0, "all_to_all", 0, 1, "ep", "high"),
                          collective(1, "all_reduce", 2, 3, "world", "low"),
                          collective(2, "all_to_all", 1, 4, "ep", "high")});
  Plan plan = parsePlan(json{
      {"format", "lina-plan"},
      {"version", 1},
      {"world_size", 256},
      {"groups",
       {{"world", {{"members", {world}}}}, {"ep", {{"members", ep}}}}},
      {"buffers", buffers},
      {"ops", ops}}.dump());
  ClusterSpec cluster = ClusterSpec::a100Ib100();
  cluster.nodes = 32;
  SimResult a = simulate(plan, cluster, {{Policy::Fifo, 0}, false});
  SimResult b = simulate(plan, cluster, {{Policy::Fifo, 0}, false});
  ASSERT_EQ(a.ranks.size(), 256u);
  for (int r = 0; r < 256; ++r) {
    ASSERT_EQ(a.ranks[r].timeline.size(), 3u);
    for (size_t i = 0; i < 3; ++i)
      EXPECT_EQ(a.ranks[r].timeline[i].end, b.ranks[r].timeline[i].end);
  }
  EXPECT_GE(a.stepTime, lowerBound(plan, cluster).step * (1 - 1e-9));
}
} // namespace
