//===- PlanTest.cpp - Plan loading and validation -------------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "TestPlans.h"

#include "lina/rt/CpuBackend.h"
#include "lina/rt/Plan.h"
#include "lina/rt/Scheduler.h"

#include <gtest/gtest.h>

using namespace lina::rt;
using nlohmann::json;

namespace {
std::string errorOf(const json &plan) {
  try {
    parsePlan(plan.dump(), "test.json");
  } catch (const PlanError &e) {
    return e.what();
  }
  return "";
}

TEST(Plan, LoadsAValidPlan) {
  Plan plan = parsePlan(test::smallPlan().dump(), "test.json");
  EXPECT_EQ(plan.worldSize, 1);
  ASSERT_EQ(plan.ops.size(), 5u);
  EXPECT_EQ(plan.ops[1].kind, OpKind::AllToAll);
  EXPECT_EQ(plan.ops[1].priority, Priority::High);
  EXPECT_TRUE(plan.ops[0].holdLow);
  EXPECT_EQ(plan.ops[4].partitionIndex, 1);
  EXPECT_TRUE(plan.buffers[6].isView());
  EXPECT_NE(dumpPlan(plan).find("all_reduce"), std::string::npos);
}

TEST(Plan, RejectsBadPlansNamingTheProblem) {
  EXPECT_NE(errorOf(json::parse("[1, 2]")).find("must be a JSON object"),
            std::string::npos);
  try {
    parsePlan("{", "broken.json");
    FAIL();
  } catch (const PlanError &e) {
    EXPECT_NE(std::string(e.what()).find("broken.json: not valid JSON"),
              std::string::npos);
  }

  json p = test::smallPlan();
  p["version"] = 7;
  EXPECT_NE(errorOf(p).find("unsupported plan version 7"), std::string::npos);

  p = test::smallPlan();
  p["ops"][1]["kind"] = "teleport";
  EXPECT_NE(errorOf(p).find("op 1: unknown kind 'teleport'"),
            std::string::npos);

  p = test::smallPlan();
  p["ops"][1]["group"] = "tp";
  EXPECT_NE(errorOf(p).find("op 1 (all_to_all): unknown group 'tp'"),
            std::string::npos);

  p = test::smallPlan();
  p["buffers"][1]["shape"] = {7, 8};
  EXPECT_NE(
      errorOf(p).find("op 0 (dense): input columns vs weight rows: 8 != 7"),
      std::string::npos);

  p = test::smallPlan();
  p["ops"][2]["deps"] = {3};
  EXPECT_NE(errorOf(p).find(
                "op 2 (dense): depends on op 3, which is not an earlier op"),
            std::string::npos);

  p = test::smallPlan();
  p["ops"][0]["inputs"] = {4, 1};
  EXPECT_NE(errorOf(p).find("reads buffer 4 ('g') before any op writes it"),
            std::string::npos);

  p = test::smallPlan();
  p["buffers"][6]["view"]["offset"] = 60;
  EXPECT_NE(errorOf(p).find("does not fit in buffer 4"), std::string::npos);

  p = test::smallPlan();
  p["world_size"] = 2;
  EXPECT_NE(errorOf(p).find(
                "group 'dp' does not cover every rank of the world (1 of 2)"),
            std::string::npos);

  p = test::smallPlan();
  p["ops"][2]["outputs"] = {3};
  EXPECT_NE(
      errorOf(p).find("op 2 (dense): writes buffer 3, already written by op 1"),
      std::string::npos);

  p = test::smallPlan();
  p["ops"][0]["outputs"] = {1};
  EXPECT_NE(errorOf(p).find("which is an input or parameter"),
            std::string::npos);

  p = test::smallPlan();
  p["ops"][0]["loc"] = "model.mlir:3:5";
  p["ops"][0]["attrs"] = {{"activation", "swish"}};
  EXPECT_NE(errorOf(p).find(
                "op 0 (dense at model.mlir:3:5): unknown activation 'swish'"),
            std::string::npos);

  EXPECT_THROW(loadPlan("/nonexistent/plan.json"), PlanError);
}

TEST(Plan, CpuBackendRejectsHalfPrecision) {
  json p = test::smallPlan();
  for (auto &b : p["buffers"])
    b["dtype"] = "bf16";
  Plan plan = parsePlan(p.dump());
  CpuBackend backend(plan, 0, 10);
  try {
    backend.initialize(1);
    FAIL();
  } catch (const PlanError &e) {
    EXPECT_NE(std::string(e.what()).find("the cpu backend computes in f32"),
              std::string::npos);
  }
}

TEST(Plan, SingleRankRunComputesTheDenseChain) {
  Plan plan = parsePlan(test::smallPlan(4).dump());
  CpuBackend backend(plan, 0, 10);
  backend.initialize(7);
  Scheduler scheduler(plan, {});
  scheduler.run(backend);
  std::vector<float> x = backend.read(0), w = backend.read(1),
                     z = backend.read(3);
  // With one rank the all_to_all is the identity: z = x * w.
  for (int t = 0; t < 8; ++t)
    for (int o = 0; o < 8; ++o) {
      float ref = 0;
      for (int i = 0; i < 8; ++i)
        ref += x[t * 8 + i] * w[i * 8 + o];
      EXPECT_NEAR(z[t * 8 + o], ref, 1e-5);
    }
  // The partitioned all_reduce over one rank reassembles g exactly.
  std::vector<float> g = backend.read(4), r = backend.read(5);
  EXPECT_EQ(g, r);
  // Same seed, same name: same values; another seed: different values.
  CpuBackend again(plan, 0, 10), other(plan, 0, 10);
  again.initialize(7);
  other.initialize(8);
  EXPECT_EQ(again.read(1), w);
  EXPECT_NE(other.read(1), w);
}

TEST(Plan, SplitExpertGradientRunsBitwiseLikeTheFusedOne) {
  // expert_ffn_grad and its two halves on the same dy, in, w1, w2 (El=2,
  // N=5, H=3, F=4), through the scheduler and the cpu backend.
  auto buf = [](int id, const char *name, json shape, const char *role) {
    json b = {{"id", id},
              {"name", name},
              {"dtype", "f32"},
              {"shape", shape},
              {"role", role}};
    if (std::string(role) == "input" || std::string(role) == "param")
      b["init"] = "random";
    return b;
  };
  json buffers = json::array({
      buf(0, "dy", {2, 5, 3}, "input"),
      buf(1, "in", {2, 5, 3}, "input"),
      buf(2, "w1", {2, 3, 4}, "param"),
      buf(3, "w2", {2, 4, 3}, "param"),
      buf(4, "din", {2, 5, 3}, "output"),
      buf(5, "dw1", {2, 3, 4}, "output"),
      buf(6, "dw2", {2, 4, 3}, "output"),
      buf(7, "din_split", {2, 5, 3}, "output"),
      buf(8, "act", {2, 5, 4}, "temp"),
      buf(9, "dz", {2, 5, 4}, "temp"),
      buf(10, "dw1_split", {2, 3, 4}, "output"),
      buf(11, "dw2_split", {2, 4, 3}, "output"),
  });
  json ops = json::array({
      {{"id", 0},
       {"kind", "expert_ffn_grad"},
       {"inputs", {0, 1, 2, 3}},
       {"outputs", {4, 5, 6}},
       {"attrs", {{"activation", "silu"}}}},
      {{"id", 1},
       {"kind", "expert_ffn_grad_input"},
       {"inputs", {0, 1, 2, 3}},
       {"outputs", {7, 8, 9}},
       {"attrs", {{"activation", "silu"}}}},
      {{"id", 2},
       {"kind", "expert_ffn_grad_weight"},
       {"inputs", {0, 1, 8, 9}},
       {"outputs", {10, 11}}},
  });
  json p = {{"format", "lina-plan"},
            {"version", 1},
            {"world_size", 1},
            {"groups", {{"ep", {{"members", {{0}}}}}}},
            {"buffers", buffers},
            {"ops", ops},
            {"outputs", {4, 5, 6, 7, 10, 11}}};
  Plan plan = parsePlan(p.dump());
  CpuBackend backend(plan, 0, 10);
  backend.initialize(3);
  Scheduler scheduler(plan, {});
  scheduler.run(backend);
  EXPECT_EQ(backend.read(7), backend.read(4));
  EXPECT_EQ(backend.read(10), backend.read(5));
  EXPECT_EQ(backend.read(11), backend.read(6));
  // Not trivially equal: the gradients are not zero.
  EXPECT_NE(backend.read(5), std::vector<float>(24, 0.0f));
}
} // namespace
