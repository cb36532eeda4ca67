//===- PlanValidationTest.cpp - Consistency rules of the plan loader ------===//
//
// Part of the Lina project.
//
// One small routed plan (gate -> dispatch -> combine, with views and copies)
// and one broken variant per rule: each is rejected before anything runs,
// with a message that names the op (id, kind, location) and the problem.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Plan.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace lina::rt;
using nlohmann::json;

namespace {
json buffer(int id, const char *name, const char *dtype, json shape,
            const char *role = "temp") {
  json b = {{"id", id},
            {"name", name},
            {"dtype", dtype},
            {"shape", shape},
            {"role", role}};
  if (std::string(role) == "input" || std::string(role) == "param")
    b["init"] = "random";
  return b;
}

/// x[8,4] -> gate (4 experts, top-1) -> dispatch [4,3,4] -> combine [8,4];
/// then the combine result is copied in two halves into `cat` [8,8].
json routedPlan() {
  json buffers = json::array({
      buffer(0, "x", "f32", {8, 4}, "input"),
      buffer(1, "wg", "f32", {4, 4}, "param"),
      buffer(2, "ids", "i32", {8, 1}),
      buffer(3, "gw", "f32", {8, 1}),
      buffer(4, "buf", "f32", {4, 3, 4}),
      buffer(5, "y", "f32", {8, 4}),
      buffer(6, "cat", "f32", {8, 8}, "output"),
  });
  auto copy = [](int id, int dstCol) {
    return json{{"id", id},
                {"kind", "copy"},
                {"inputs", {5}},
                {"outputs", {6}},
                {"loc", "m.mlir:" + std::to_string(id + 1) + ":3"},
                {"attrs",
                 {{"src_offsets", {0, 0}},
                  {"dst_offsets", {0, dstCol}},
                  {"sizes", {8, 4}},
                  {"accumulate_into", true}}}};
  };
  json ops = json::array({
      {{"id", 0},
       {"kind", "gate"},
       {"inputs", {0, 1}},
       {"outputs", {2, 3}},
       {"loc", "m.mlir:1:3"},
       {"attrs", {{"num_experts", 4}, {"top_k", 1}, {"capacity_factor", 1.5}}}},
      {{"id", 1},
       {"kind", "dispatch"},
       {"inputs", {0, 2}},
       {"outputs", {4}},
       {"loc", "m.mlir:2:3"},
       {"attrs", {{"capacity", 3}}}},
      {{"id", 2},
       {"kind", "combine"},
       {"inputs", {4, 2, 3}},
       {"outputs", {5}},
       {"loc", "m.mlir:3:3"},
       {"attrs", {{"capacity", 3}}}},
      copy(3, 0),
      copy(4, 4),
  });
  return {{"format", "lina-plan"},
          {"version", 1},
          {"world_size", 2},
          {"grid", {{"shape", {2}}}},
          {"groups", {{"ep", {{"members", {{0, 1}}}}}}},
          {"buffers", buffers},
          {"ops", ops},
          {"outputs", {6}},
          {"placement", nullptr}};
}

std::string errorOf(const json &plan) {
  try {
    parsePlan(plan.dump(), "p.json");
  } catch (const PlanError &e) {
    return e.what();
  }
  return "(accepted)";
}

#define EXPECT_ERROR(plan, text)                                               \
  do {                                                                         \
    std::string error = errorOf(plan);                                         \
    EXPECT_NE(error.find(text), std::string::npos) << error;                   \
  } while (0)

TEST(PlanValidation, AcceptsTheRoutedPlan) {
  Plan plan = parsePlan(routedPlan().dump(), "p.json");
  EXPECT_EQ(plan.ops[1].capacity, 3);
  // Both copies assemble `cat`; the last one is its recorded producer.
  EXPECT_EQ(plan.producers[6], 4);
}

TEST(PlanValidation, GridMustHoldTheWorld) {
  json p = routedPlan();
  p["grid"]["shape"] = {4};
  EXPECT_ERROR(p, "grid shape holds 4 devices, but world_size is 2");
}

TEST(PlanValidation, DispatchBufferHasOneRowPerExpertOfItsGate) {
  json p = routedPlan();
  p["buffers"][4]["shape"] = {2, 3, 4};
  EXPECT_ERROR(p, "p.json: op 1 (dispatch at m.mlir:2:3): buffer dimension 0 "
                  "(2) must equal num_experts (4) of the gate, op 0 (gate at "
                  "m.mlir:1:3)");
}

TEST(PlanValidation, CapacityAttributeMatchesTheBuffer) {
  json p = routedPlan();
  p["ops"][2]["attrs"]["capacity"] = 5;
  EXPECT_ERROR(p, "op 2 (combine at m.mlir:3:3): buffer dimension 1 vs "
                  "capacity: 3 != 5");
}

TEST(PlanValidation, ExpertIdsAreIntegersAndGateWeightsFloats) {
  json p = routedPlan();
  p["buffers"][2]["dtype"] = "f32";
  EXPECT_ERROR(p, "op 0 (gate at m.mlir:1:3): buffer 2 must have an integer "
                  "dtype, got f32");
  p = routedPlan();
  p["buffers"][3]["dtype"] = "i32";
  EXPECT_ERROR(p, "op 0 (gate at m.mlir:1:3): buffer 3 must have a "
                  "floating-point dtype, got i32");
}

TEST(PlanValidation, OnlyCopiesMayWriteABufferTwice) {
  json p = routedPlan();
  p["ops"][2]["outputs"] = {4};
  p["buffers"][4]["shape"] = {4, 3, 4};
  EXPECT_ERROR(p, "writes buffer 4, already written by op 1");

  // A copy onto a buffer that a compute op wrote is not an assembly.
  p = routedPlan();
  p["ops"][3]["outputs"] = {5};
  p["ops"][3]["attrs"]["dst_offsets"] = {0, 0};
  EXPECT_ERROR(p, "op 3 (copy at m.mlir:4:3): writes buffer 5, already "
                  "written by op 2");
}

TEST(PlanValidation, ViewsOfOneBaseMustNotOverlapWhenWritten) {
  json p = routedPlan();
  // Two all_reduce partitions whose output views overlap by 4 elements.
  p["groups"]["dp"] = {{"members", {{0}, {1}}}};
  p["buffers"].push_back(buffer(7, "red", "f32", {32}, "output"));
  json v1 = buffer(8, "y0", "f32", {16});
  v1["view"] = {{"base", 5}, {"offset", 0}};
  json v2 = buffer(9, "y1", "f32", {16});
  v2["view"] = {{"base", 5}, {"offset", 16}};
  json o1 = buffer(10, "r0", "f32", {16});
  o1["view"] = {{"base", 7}, {"offset", 0}};
  json o2 = buffer(11, "r1", "f32", {16});
  o2["view"] = {{"base", 7}, {"offset", 12}};
  for (json b : {v1, v2, o1, o2})
    p["buffers"].push_back(b);
  p["ops"].push_back({{"id", 5},
                      {"kind", "all_reduce"},
                      {"inputs", {8}},
                      {"outputs", {10}},
                      {"group", "dp"},
                      {"priority", "low"},
                      {"partition", {{"index", 0}, {"count", 2}}}});
  p["ops"].push_back({{"id", 6},
                      {"kind", "all_reduce"},
                      {"inputs", {9}},
                      {"outputs", {11}},
                      {"group", "dp"},
                      {"priority", "low"},
                      {"partition", {{"index", 1}, {"count", 2}}},
                      {"loc", "m.mlir:9:3"}});
  EXPECT_ERROR(p, "op 6 (all_reduce at m.mlir:9:3): writes buffer 11 ('r1'), "
                  "which overlaps buffer 10 written by op 5");
  // Disjoint partitions are fine.
  p["buffers"][11]["view"]["offset"] = 16;
  EXPECT_EQ(errorOf(p), "(accepted)");
}

TEST(PlanValidation, CopyAndCollectiveDtypesMatch) {
  json p = routedPlan();
  p["buffers"][6]["dtype"] = "bf16";
  EXPECT_ERROR(p, "op 3 (copy at m.mlir:4:3): copy from f32 to bf16");
}

TEST(PlanValidation, AllToAllVResultHasMaxRows) {
  json p = routedPlan();
  p["buffers"].push_back(buffer(7, "sc", "i64", {2}, "input"));
  p["buffers"].push_back(buffer(8, "rc", "i64", {2}, "input"));
  p["buffers"].push_back(buffer(9, "recv", "f32", {12, 4}, "output"));
  p["ops"].push_back({{"id", 5},
                      {"kind", "all_to_all_v"},
                      {"inputs", {5, 7, 8}},
                      {"outputs", {9}},
                      {"group", "ep"},
                      {"attrs", {{"max_rows", 16}}}});
  EXPECT_ERROR(p, "op 5 (all_to_all_v): result rows vs max_rows: 12 != 16");
  p["ops"][5]["attrs"]["max_rows"] = 12;
  EXPECT_EQ(errorOf(p), "(accepted)");
}

TEST(PlanValidation, AllToAllVSendRowsFitTheGroupAndTheBuffers) {
  // Group of 2: input y has 8 rows, the result 12.
  json p = routedPlan();
  p["buffers"].push_back(buffer(7, "sc", "i64", {2}, "input"));
  p["buffers"].push_back(buffer(8, "rc", "i64", {2}, "input"));
  p["buffers"].push_back(buffer(9, "recv", "f32", {12, 4}, "output"));
  p["ops"].push_back({{"id", 5},
                      {"kind", "all_to_all_v"},
                      {"inputs", {5, 7, 8}},
                      {"outputs", {9}},
                      {"group", "ep"},
                      {"attrs", {{"send_rows", {1, 2, 3}}}}});
  EXPECT_ERROR(p, "op 5 (all_to_all_v): send_rows has 3 entries; the group "
                  "of 2 needs 4");
  p["ops"][5]["attrs"]["send_rows"] = {5, 4, 0, 8};
  EXPECT_ERROR(p, "op 5 (all_to_all_v): send_rows: group rank 0 sends 9 "
                  "rows; the input has 8");
  p["ops"][5]["attrs"]["send_rows"] = {3, 5, 0, 8};
  EXPECT_ERROR(p, "op 5 (all_to_all_v): send_rows: group rank 1 receives 13 "
                  "rows; the result has 12");
  p["ops"][5]["attrs"]["send_rows"] = {4, 4, 0, 9};
  EXPECT_ERROR(p, "op 5 (all_to_all_v): send_rows: group rank 1 sends 9 "
                  "rows; the input has 8");
  p["ops"][5]["attrs"]["send_rows"] = {8, 0, 5, 3};
  EXPECT_ERROR(p, "op 5 (all_to_all_v): send_rows: group rank 0 receives 13 "
                  "rows; the result has 12");
  p["ops"][5]["attrs"]["send_rows"] = {4, 4, 7, 1};
  EXPECT_EQ(errorOf(p), "(accepted)");
  p["ops"][5]["attrs"]["send_rows"] = {4, 4, -7, 1};
  EXPECT_NE(errorOf(p), "(accepted)");
  // Only all_to_all_v states the rows it sends.
  p = routedPlan();
  p["ops"][2]["attrs"]["send_rows"] = json::array({1});
  EXPECT_NE(errorOf(p).find("field 'attrs.send_rows' belongs to "
                            "all_to_all_v ops"),
            std::string::npos)
      << errorOf(p);
}

TEST(PlanValidation, AllToAllSplitMustDivideByTheGroupSize) {
  json p = routedPlan();
  p["buffers"].push_back(buffer(7, "out", "f32", {3, 8}, "output"));
  p["buffers"][5]["shape"] = {8, 4};
  p["ops"].push_back({{"id", 5},
                      {"kind", "all_to_all"},
                      {"inputs", {4}},
                      {"outputs", {7}},
                      {"group", "ep"},
                      {"loc", "m.mlir:6:1"},
                      {"attrs", {{"split_axis", 2}, {"concat_axis", 0}}}});
  p["buffers"][4]["shape"] = {4, 3, 3};
  p["buffers"][0]["shape"] = {8, 3};
  p["buffers"][1]["shape"] = {3, 4};
  p["buffers"][5]["shape"] = {8, 3};
  p["buffers"][6]["shape"] = {8, 6};
  p["ops"][3]["attrs"]["sizes"] = {8, 3};
  p["ops"][4]["attrs"]["sizes"] = {8, 3};
  p["ops"][4]["attrs"]["dst_offsets"] = {0, 3};
  EXPECT_ERROR(p, "op 5 (all_to_all at m.mlir:6:1): split dimension 3 does "
                  "not divide by the group size 2");
}

TEST(PlanValidation, ChunkAndPartitionIndicesAreInRange) {
  json p = routedPlan();
  p["ops"][1]["chunk"] = {{"index", 2}, {"count", 2}};
  EXPECT_ERROR(p, "op 1 (dispatch at m.mlir:2:3): chunk index out of range");
}

/// The expert FFN gradient split in two (El=2, N=5, H=3, F=4):
/// expert_ffn_grad_input(dy, in, w1, w2) -> din, act, dz, then
/// expert_ffn_grad_weight(dy, in, act, dz) -> dw1, dw2.
json splitGradPlan() {
  json buffers = json::array({
      buffer(0, "dy", "f32", {2, 5, 3}, "input"),
      buffer(1, "in", "f32", {2, 5, 3}, "input"),
      buffer(2, "w1", "f32", {2, 3, 4}, "param"),
      buffer(3, "w2", "f32", {2, 4, 3}, "param"),
      buffer(4, "din", "f32", {2, 5, 3}, "output"),
      buffer(5, "act", "f32", {2, 5, 4}),
      buffer(6, "dz", "f32", {2, 5, 4}),
      buffer(7, "dw1", "f32", {2, 3, 4}, "output"),
      buffer(8, "dw2", "f32", {2, 4, 3}, "output"),
  });
  json ops = json::array({
      {{"id", 0},
       {"kind", "expert_ffn_grad_input"},
       {"inputs", {0, 1, 2, 3}},
       {"outputs", {4, 5, 6}},
       {"loc", "m.mlir:1:3"},
       {"attrs", {{"activation", "gelu"}}}},
      {{"id", 1},
       {"kind", "expert_ffn_grad_weight"},
       {"inputs", {0, 1, 5, 6}},
       {"outputs", {7, 8}},
       {"loc", "m.mlir:2:3"}},
  });
  return {{"format", "lina-plan"}, {"version", 1},
          {"world_size", 1},       {"groups", {{"ep", {{"members", {{0}}}}}}},
          {"buffers", buffers},    {"ops", ops},
          {"outputs", {4, 7, 8}}};
}

TEST(PlanValidation, AcceptsTheSplitExpertGradient) {
  Plan plan = parsePlan(splitGradPlan().dump(), "p.json");
  EXPECT_EQ(plan.ops[0].kind, OpKind::ExpertFfnGradInput);
  EXPECT_EQ(plan.ops[0].activation, Activation::Gelu);
  EXPECT_EQ(plan.ops[1].kind, OpKind::ExpertFfnGradWeight);
  EXPECT_EQ(plan.producers[5], 0);
  EXPECT_EQ(plan.producers[8], 1);
}

TEST(PlanValidation, SplitExpertGradientShapesAgree) {
  // act or dz of the input half not [El,N,F].
  json p = splitGradPlan();
  p["buffers"][5]["shape"] = {2, 5, 3};
  EXPECT_ERROR(p, "op 0 (expert_ffn_grad_input at m.mlir:1:3): output 1 "
                  "(act, buffer 5) must have shape [2x5x4] (El x N x F), "
                  "got [2x5x3]");
  p = splitGradPlan();
  p["buffers"][6]["shape"] = {2, 4, 4};
  EXPECT_ERROR(p, "op 0 (expert_ffn_grad_input at m.mlir:1:3): output 2 "
                  "(dz, buffer 6) must have shape [2x5x4] (El x N x F), "
                  "got [2x4x4]");
  p = splitGradPlan();
  p["buffers"][6]["shape"] = {40};
  EXPECT_ERROR(p, "op 0 (expert_ffn_grad_input at m.mlir:1:3): output 2 "
                  "(dz, buffer 6) must have shape [2x5x4]");
  // The operands it shares with expert_ffn_grad.
  p = splitGradPlan();
  p["buffers"][3]["shape"] = {2, 5, 3};
  EXPECT_ERROR(p, "op 0 (expert_ffn_grad_input at m.mlir:1:3): w2 rows vs w1 "
                  "columns: 5 != 4");
  p = splitGradPlan();
  p["buffers"][0]["shape"] = {2, 4, 3};
  EXPECT_ERROR(p, "op 0 (expert_ffn_grad_input at m.mlir:1:3): grad vs "
                  "input: shapes [2x4x3] and [2x5x3] differ");

  // The weight half reading a wrong-shaped act or dz: give it inputs of
  // its own.
  p = splitGradPlan();
  p["buffers"].push_back(buffer(9, "act2", "f32", {2, 6, 4}, "input"));
  p["ops"][1]["inputs"] = {0, 1, 9, 6};
  EXPECT_ERROR(p, "op 1 (expert_ffn_grad_weight at m.mlir:2:3): act rows vs "
                  "input rows: 6 != 5");
  p = splitGradPlan();
  p["buffers"].push_back(buffer(9, "act2", "f32", {3, 5, 4}, "input"));
  p["ops"][1]["inputs"] = {0, 1, 9, 6};
  EXPECT_ERROR(p, "op 1 (expert_ffn_grad_weight at m.mlir:2:3): act experts "
                  "vs local experts: 3 != 2");
  p = splitGradPlan();
  p["buffers"].push_back(buffer(9, "dz2", "f32", {2, 5, 3}, "input"));
  p["ops"][1]["inputs"] = {0, 1, 5, 9};
  EXPECT_ERROR(p, "op 1 (expert_ffn_grad_weight at m.mlir:2:3): dz vs act: "
                  "shapes [2x5x3] and [2x5x4] differ");
  p = splitGradPlan();
  p["buffers"].push_back(buffer(9, "act2", "f32", {10, 4}, "input"));
  p["ops"][1]["inputs"] = {0, 1, 9, 6};
  EXPECT_ERROR(p, "op 1 (expert_ffn_grad_weight at m.mlir:2:3): input 2 "
                  "(buffer 9) must have rank 3, got [10x4]");
  // Its results are the shapes of w1 and w2.
  p = splitGradPlan();
  p["buffers"][7]["shape"] = {2, 4, 3};
  EXPECT_ERROR(p, "op 1 (expert_ffn_grad_weight at m.mlir:2:3): output 0 "
                  "(w1 grad, buffer 7) must have shape [2x3x4] (El x H x F), "
                  "got [2x4x3]");
  p = splitGradPlan();
  p["buffers"][8]["shape"] = {2, 3, 4};
  EXPECT_ERROR(p, "op 1 (expert_ffn_grad_weight at m.mlir:2:3): output 1 "
                  "(w2 grad, buffer 8) must have shape [2x4x3] (El x F x H), "
                  "got [2x3x4]");
}

TEST(PlanValidation, SplitExpertGradientNeedsEveryOperand) {
  json p = splitGradPlan();
  p["ops"][1]["inputs"] = {0, 1, 5};
  EXPECT_ERROR(p, "op 1 (expert_ffn_grad_weight at m.mlir:2:3): expects 4 "
                  "inputs and 2 outputs, got 3 and 2");
  p = splitGradPlan();
  p["ops"][0]["outputs"] = {4, 5};
  EXPECT_ERROR(p, "op 0 (expert_ffn_grad_input at m.mlir:1:3): expects 4 "
                  "inputs and 3 outputs, got 4 and 2");
  // dz never written: the weight half reads it before any op writes it.
  p = splitGradPlan();
  p["buffers"].push_back(buffer(9, "dz0", "f32", {2, 5, 4}));
  p["ops"][0]["outputs"] = {4, 5, 9};
  EXPECT_ERROR(p, "op 1 (expert_ffn_grad_weight at m.mlir:2:3): reads buffer "
                  "6 ('dz') before any op writes it");
}

/// One GEMM of the weight half (El=2, N=5, X=3, Y=4):
/// expert_weight_grad(a[2,5,3], b[2,5,4]) -> out[2,3,4].
json weightGradPlan() {
  json buffers = json::array({
      buffer(0, "a", "f32", {2, 5, 3}, "input"),
      buffer(1, "b", "f32", {2, 5, 4}, "input"),
      buffer(2, "out", "f32", {2, 3, 4}, "output"),
  });
  json ops = json::array({
      {{"id", 0},
       {"kind", "expert_weight_grad"},
       {"inputs", {0, 1}},
       {"outputs", {2}},
       {"loc", "m.mlir:4:5"}},
  });
  return {{"format", "lina-plan"}, {"version", 1},
          {"world_size", 1},       {"groups", {{"ep", {{"members", {{0}}}}}}},
          {"buffers", buffers},    {"ops", ops},
          {"outputs", {2}}};
}

TEST(PlanValidation, AcceptsAnExpertWeightGrad) {
  Plan plan = parsePlan(weightGradPlan().dump(), "p.json");
  EXPECT_EQ(plan.ops[0].kind, OpKind::ExpertWeightGrad);
  EXPECT_STREQ(toString(plan.ops[0].kind), "expert_weight_grad");
  EXPECT_EQ(plan.producers[2], 0);
}

TEST(PlanValidation, ExpertWeightGradShapesAndDtypesAgree) {
  // Rank 3 operands.
  json p = weightGradPlan();
  p["buffers"][0]["shape"] = {10, 3};
  EXPECT_ERROR(p, "op 0 (expert_weight_grad at m.mlir:4:5): input 0 (buffer "
                  "0) must have rank 3, got [10x3]");
  p = weightGradPlan();
  p["buffers"][1]["shape"] = {2, 5, 2, 2};
  EXPECT_ERROR(p, "op 0 (expert_weight_grad at m.mlir:4:5): input 1 (buffer "
                  "1) must have rank 3, got [2x5x2x2]");
  // The same experts and rows.
  p = weightGradPlan();
  p["buffers"][1]["shape"] = {3, 5, 4};
  EXPECT_ERROR(p, "op 0 (expert_weight_grad at m.mlir:4:5): b experts vs a "
                  "experts: 3 != 2");
  p = weightGradPlan();
  p["buffers"][1]["shape"] = {2, 6, 4};
  EXPECT_ERROR(p, "op 0 (expert_weight_grad at m.mlir:4:5): b rows vs a rows: "
                  "6 != 5");
  // The result is [El, X, Y].
  p = weightGradPlan();
  p["buffers"][2]["shape"] = {2, 4, 3};
  EXPECT_ERROR(p, "op 0 (expert_weight_grad at m.mlir:4:5): output 0 "
                  "(result, buffer 2) must have shape [2x3x4] (El x X x Y), "
                  "got [2x4x3]");
  p = weightGradPlan();
  p["buffers"][2]["shape"] = {24};
  EXPECT_ERROR(p, "op 0 (expert_weight_grad at m.mlir:4:5): output 0 "
                  "(result, buffer 2) must have shape [2x3x4] (El x X x Y), "
                  "got [24]");
  // One floating-point dtype.
  p = weightGradPlan();
  p["buffers"][1]["dtype"] = "bf16";
  EXPECT_ERROR(p, "op 0 (expert_weight_grad at m.mlir:4:5): b vs a: dtypes "
                  "bf16 and f32 differ");
  p = weightGradPlan();
  p["buffers"][2]["dtype"] = "f16";
  EXPECT_ERROR(p, "op 0 (expert_weight_grad at m.mlir:4:5): result vs a: "
                  "dtypes f16 and f32 differ");
  p = weightGradPlan();
  p["buffers"][0]["dtype"] = "i32";
  EXPECT_ERROR(p, "op 0 (expert_weight_grad at m.mlir:4:5): buffer 0 must "
                  "have a floating-point dtype, got i32");
  // bf16 throughout is a valid plan (the cuda backend computes on it).
  p = weightGradPlan();
  for (int i : {0, 1, 2})
    p["buffers"][i]["dtype"] = "bf16";
  EXPECT_EQ(errorOf(p), "(accepted)");
  // Two inputs, one output.
  p = weightGradPlan();
  p["ops"][0]["inputs"] = {0, 1, 1};
  EXPECT_ERROR(p, "op 0 (expert_weight_grad at m.mlir:4:5): expects 2 inputs "
                  "and 1 outputs, got 3 and 1");
}
} // namespace
