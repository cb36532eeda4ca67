//===- PlanWriterTest.cpp - writePlan and the plan round trip -------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "TestPlans.h"

#include "lina/rt/Plan.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

using namespace lina::rt;
using nlohmann::json;

namespace {

/// Two ranks; every op field and attribute the format has, most of them
/// away from their defaults: a gate with a placement table (shares that
/// are not short decimals), dispatch, all_to_all, an accumulating copy, a
/// partitioned all_reduce over a view, all_to_all_v with max_rows and
/// send_rows, and a dense op with a chunk, hold_low, a priority and a
/// location.
json fullPlan() {
  json buffers = json::array({
      {{"id", 0},
       {"name", "x"},
       {"dtype", "f32"},
       {"shape", {4, 8}},
       {"role", "input"},
       {"init", "random"}},
      {{"id", 1},
       {"name", "wg"},
       {"dtype", "f32"},
       {"shape", {8, 4}},
       {"role", "param"},
       {"init", "random"}},
      {{"id", 2}, {"name", "ids"}, {"dtype", "i32"}, {"shape", {4, 1}}},
      {{"id", 3}, {"name", "gw"}, {"dtype", "f32"}, {"shape", {4, 1}}},
      {{"id", 4}, {"dtype", "f32"}, {"shape", {4, 2, 8}}},
      {{"id", 5}, {"name", "recv"}, {"dtype", "f32"}, {"shape", {4, 2, 8}}},
      {{"id", 6},
       {"name", "acc"},
       {"dtype", "f32"},
       {"shape", {4, 2, 8}},
       {"init", "zero"}},
      {{"id", 7},
       {"name", "flat"},
       {"dtype", "f32"},
       {"shape", {64}},
       {"view", {{"base", 6}, {"offset", 0}}}},
      {{"id", 8},
       {"name", "red"},
       {"dtype", "f32"},
       {"shape", {64}},
       {"role", "output"}},
      {{"id", 9},
       {"name", "send"},
       {"dtype", "i64"},
       {"shape", {2}},
       {"role", "input"},
       {"init", "zero"}},
      {{"id", 10},
       {"name", "recvc"},
       {"dtype", "i64"},
       {"shape", {2}},
       {"role", "input"},
       {"init", "zero"}},
      {{"id", 11},
       {"name", "rows"},
       {"dtype", "f32"},
       {"shape", {6, 8}},
       {"role", "output"}},
      {{"id", 12},
       {"name", "y"},
       {"dtype", "f32"},
       {"shape", {4, 4}},
       {"role", "output"}},
      {{"id", 13},
       {"name", "half"},
       {"dtype", "bf16"},
       {"shape", {3}},
       {"role", "input"}},
  });
  json placement = {{"num_devices", 2},
                    {"slots_per_device", 3},
                    {"offsets", {0, 2, 3, 4, 5}},
                    {"devices", {0, 1, 1, 0, 1}},
                    {"shares", {1.0 / 3, 2.0 / 3, 1, 1, 1}}};
  json ops = json::array({
      {{"id", 0},
       {"kind", "gate"},
       {"inputs", {0, 1}},
       {"outputs", {2, 3}},
       {"attrs", {{"num_experts", 4}, {"top_k", 1}, {"capacity_factor", 0.1}}},
       {"loc", "m.mlir:1:2"},
       {"placement", placement}},
      {{"id", 1},
       {"kind", "dispatch"},
       {"inputs", {0, 2}},
       {"outputs", {4}},
       {"deps", {0}},
       {"attrs", {{"num_experts", 4}, {"capacity", 2}}}},
      {{"id", 2},
       {"kind", "all_to_all"},
       {"inputs", {4}},
       {"outputs", {5}},
       {"group", "ep"},
       {"priority", "high"},
       {"attrs", {{"split_axis", 0}, {"concat_axis", 0}}},
       {"chunk", {{"index", 0}, {"count", 1}}}},
      {{"id", 3},
       {"kind", "copy"},
       {"inputs", {5}},
       {"outputs", {6}},
       {"attrs",
        {{"src_offsets", {0, 0, 0}},
         {"dst_offsets", {0, 0, 0}},
         {"sizes", {4, 2, 8}},
         {"accumulate_into", true}}}},
      {{"id", 4},
       {"kind", "all_reduce"},
       {"inputs", {7}},
       {"outputs", {8}},
       {"group", "ep"},
       {"priority", "low"},
       {"attrs", {{"reduction", "max"}}},
       {"partition", {{"index", 0}, {"count", 1}}}},
      {{"id", 5},
       {"kind", "all_to_all_v"},
       {"inputs", {0, 9, 10}},
       {"outputs", {11}},
       {"group", "ep"},
       {"attrs",
        {{"split_axis", 0},
         {"concat_axis", 0},
         {"max_rows", 6},
         {"send_rows", {1, 2, 3, 1}}}}},
      {{"id", 6},
       {"kind", "dense"},
       {"inputs", {0, 1}},
       {"outputs", {12}},
       {"priority", "low"},
       {"hold_low", true},
       {"chunk", {{"index", 1}, {"count", 2}}},
       {"loc", "m.mlir:3:5"},
       {"attrs", {{"activation", "gelu"}}}},
  });
  return {
      {"format", "lina-plan"},
      {"version", 1},
      {"source", "m.mlir"},
      {"function", "forward"},
      {"mode", "infer"},
      {"world_size", 2},
      {"grid", {{"shape", {2}}}},
      {"groups",
       {{"ep", {{"members", {{1, 0}}}}}, {"dp", {{"members", {{0}, {1}}}}}}},
      {"buffers", buffers},
      {"ops", ops},
      {"outputs", {8, 11, 12}}};
}

std::string errorOf(const json &plan) {
  try {
    parsePlan(plan.dump(), "test.json");
  } catch (const PlanError &e) {
    return e.what();
  }
  return "";
}

TEST(PlanWriter, RoundTripsEveryField) {
  for (const json &text : {fullPlan(), test::smallPlan(), test::smallPlan(3)}) {
    Plan plan = parsePlan(text.dump(), "in.json");
    std::string written = writePlan(plan);
    Plan again = parsePlan(written, "written.json");
    EXPECT_TRUE(again == plan) << written;
    // Writing is deterministic: the plan read back writes the same text.
    EXPECT_EQ(writePlan(again), written);
  }
}

TEST(PlanWriter, KeepsTheFieldsItRead) {
  Plan plan = parsePlan(writePlan(parsePlan(fullPlan().dump())));
  ASSERT_EQ(plan.ops.size(), 7u);
  const Op &gate = plan.ops[0];
  ASSERT_TRUE(gate.placement.has_value());
  EXPECT_EQ(gate.placement->numDevices, 2);
  EXPECT_EQ(gate.placement->slotsPerDevice, 3);
  EXPECT_EQ(gate.placement->numExperts(), 4);
  EXPECT_EQ(gate.placement->devices, (std::vector<int>{0, 1, 1, 0, 1}));
  // Doubles come back bit for bit, short decimal or not.
  EXPECT_EQ(gate.placement->shares[0], 1.0 / 3);
  EXPECT_EQ(gate.placement->shares[1], 2.0 / 3);
  EXPECT_EQ(gate.capacityFactor, 0.1);
  EXPECT_TRUE(plan.ops[3].accumulateInto);
  EXPECT_FALSE(plan.ops[6].accumulateInto);
  EXPECT_EQ(plan.ops[4].reduction, Reduction::Max);
  EXPECT_EQ(plan.ops[5].maxRows, 6);
  EXPECT_EQ(plan.ops[5].sendRows, (std::vector<int64_t>{1, 2, 3, 1}));
  EXPECT_EQ(plan.ops[6].priority, Priority::Low);
  EXPECT_EQ(plan.ops[6].activation, Activation::Gelu);
  EXPECT_EQ(plan.buffers[4].name, "buf4");
  EXPECT_EQ(plan.buffers[13].dtype, DType::BF16);
  EXPECT_EQ(plan.groups.at("ep").members,
            (std::vector<std::vector<int>>{{1, 0}}));
  EXPECT_EQ(plan.gridShape, (std::vector<int64_t>{2}));
  EXPECT_EQ(plan.mode, "infer");
  EXPECT_EQ(plan.function, "forward");
  EXPECT_EQ(plan.source, "m.mlir");
}

TEST(PlanWriter, EqualityComparesEveryField) {
  const Plan plan = parsePlan(fullPlan().dump());
  auto differs = [&](auto &&change) {
    Plan other = plan;
    change(other);
    return !(other == plan);
  };
  EXPECT_TRUE(differs([](Plan &p) { p.ops[0].placement->shares[4] = 0.5; }));
  EXPECT_TRUE(differs([](Plan &p) { p.ops[0].placement.reset(); }));
  EXPECT_TRUE(differs([](Plan &p) { p.ops[3].accumulateInto = false; }));
  EXPECT_TRUE(differs([](Plan &p) { p.ops[6].loc = ""; }));
  EXPECT_TRUE(differs([](Plan &p) { p.ops[5].sendRows[3] = 0; }));
  EXPECT_TRUE(differs([](Plan &p) { p.buffers[7].viewOffset = 1; }));
  EXPECT_TRUE(differs([](Plan &p) { p.groups["ep"].members[0] = {0, 1}; }));
  EXPECT_TRUE(differs([](Plan &p) { p.gridShape.clear(); }));
  EXPECT_TRUE(differs([](Plan &p) { p.source = "other.mlir"; }));
  // The producers are derived by the loader, not part of the format.
  EXPECT_FALSE(differs([](Plan &p) { p.producers.clear(); }));
}

TEST(PlanWriter, WritesTheEmitterLayout) {
  Plan plan;
  Buffer x;
  x.name = "x";
  x.shape = {2};
  x.role = Role::Input;
  x.init = Init::Random;
  plan.buffers.push_back(x);
  Buffer y = x;
  y.id = 1;
  y.name = "y";
  y.role = Role::Output;
  y.init = Init::None;
  plan.buffers.push_back(y);
  Op add;
  add.kind = OpKind::Add;
  add.inputs = {0, 0};
  add.outputs = {1};
  add.loc = "m.mlir:2:3";
  plan.ops.push_back(add);
  plan.outputs = {1};
  plan.function = "f";
  plan.gridShape = {1};
  plan.groups["dp"] = Group{"dp", {{0}}};
  EXPECT_EQ(writePlan(plan),
            R"({
  "format": "lina-plan",
  "version": 1,
  "source": "",
  "function": "f",
  "mode": "train",
  "world_size": 1,
  "grid": {"shape":[1]},
  "groups": {
    "dp": {"members":[[0]]}
  },
  "buffers": [
    {"id":0,"name":"x","dtype":"f32","shape":[2],"role":"input","init":"random"},
    {"id":1,"name":"y","dtype":"f32","shape":[2],"role":"output","init":"none"}
  ],
  "ops": [
    {"id":0,"kind":"add","inputs":[0,0],"outputs":[1],"deps":[],"loc":"m.mlir:2:3"}
  ],
  "outputs": [1]
}
)");
}

TEST(PlanWriter, WritesKindAttributesAndIntegralNumbers) {
  Plan plan = parsePlan(fullPlan().dump());
  plan.ops[0].capacityFactor = 2;
  std::string text = writePlan(plan);
  // Attributes by name, the gate's always; an integral double as an integer.
  EXPECT_NE(
      text.find(R"("attrs":{"capacity_factor":2,"num_experts":4,"top_k":1})"),
      std::string::npos)
      << text;
  // Defaults the kind states anyway: axes of all_to_all, the activation.
  EXPECT_NE(text.find(R"("attrs":{"concat_axis":0,"split_axis":0})"),
            std::string::npos);
  EXPECT_NE(text.find(R"("placement":{"devices":[0,1,1,0,1],"num_devices":2,)"),
            std::string::npos);
  // A priority off a collective is kept; none is written for an op without.
  EXPECT_NE(
      text.find(
          R"("priority":"low","chunk":{"index":1,"count":2},"hold_low":true)"),
      std::string::npos);
  EXPECT_NE(
      text.find(
          R"("kind":"dispatch","inputs":[0,2],"outputs":[4],"deps":[0],"attrs":{"capacity":2,"num_experts":4}})"),
      std::string::npos);
}

TEST(PlanWriter, RefusesNumbersJsonCannotHold) {
  Plan plan = parsePlan(fullPlan().dump());
  plan.ops[0].capacityFactor = std::numeric_limits<double>::infinity();
  try {
    writePlan(plan);
    FAIL() << "an infinite capacity_factor was written";
  } catch (const PlanError &e) {
    EXPECT_NE(std::string(e.what()).find(
                  "op 0: field 'attrs.capacity_factor' is inf"),
              std::string::npos)
        << e.what();
  }
  plan = parsePlan(fullPlan().dump());
  plan.ops[0].placement->shares[1] = std::nan("");
  EXPECT_THROW(writePlan(plan), PlanError);
}

TEST(PlanWriter, LoaderChecksPlacementTablesAndAccumulateInto) {
  EXPECT_EQ(errorOf(fullPlan()), "");

  json p = fullPlan();
  p["ops"][1]["placement"] = p["ops"][0]["placement"];
  EXPECT_NE(
      errorOf(p).find("op 1 (dispatch): only gates carry a placement table"),
      std::string::npos)
      << errorOf(p);

  p = fullPlan();
  p["ops"][0]["placement"]["offsets"] = {0, 2, 3, 5};
  EXPECT_NE(
      errorOf(p).find(
          "its placement table has 4 offsets; a gate of 4 experts needs 5"),
      std::string::npos)
      << errorOf(p);

  p = fullPlan();
  p["ops"][0]["placement"]["offsets"] = {0, 2, 2, 4, 5};
  EXPECT_NE(errorOf(p).find("expert 1 has no replica"), std::string::npos)
      << errorOf(p);

  p = fullPlan();
  p["ops"][0]["placement"]["offsets"] = {0, 2, 3, 4, 6};
  EXPECT_NE(errorOf(p).find("must run from 0 to the number of replicas (5)"),
            std::string::npos)
      << errorOf(p);

  p = fullPlan();
  p["ops"][0]["placement"]["shares"] = {0.5, 0.5, 1, 1};
  EXPECT_NE(errorOf(p).find("has 5 devices but 4 shares"), std::string::npos)
      << errorOf(p);

  p = fullPlan();
  p["ops"][0]["placement"]["devices"] = {0, 1, 1, 0, 2};
  EXPECT_NE(errorOf(p).find("names device 2 of 2"), std::string::npos)
      << errorOf(p);

  p = fullPlan();
  p["ops"][0]["placement"]["shares"][0] = 0;
  EXPECT_NE(errorOf(p).find("field 'placement.shares[0]' is 0, outside (0, 1]"),
            std::string::npos)
      << errorOf(p);

  p = fullPlan();
  p["ops"][0]["placement"]["slots_per_device"] = 1.5;
  EXPECT_NE(
      errorOf(p).find("field 'placement.slots_per_device' must be an integer"),
      std::string::npos)
      << errorOf(p);

  p = fullPlan();
  p["ops"][0]["placement"].erase("devices");
  EXPECT_NE(errorOf(p).find("missing field 'devices'"), std::string::npos)
      << errorOf(p);

  p = fullPlan();
  p["ops"][3]["attrs"]["accumulate_into"] = 1;
  EXPECT_NE(
      errorOf(p).find("field 'attrs.accumulate_into' must be true or false"),
      std::string::npos)
      << errorOf(p);
}

} // namespace

TEST(PlanWriter, WritesEveryAttributeTheOpTableStates) {
  // OpKinds.def names, per kind, the attributes a plan always states; an op
  // of that kind at its defaults must still carry each of them, and no
  // other attribute.
  for (int k = 0; k < kNumOpKinds; ++k) {
    const OpKindInfo &kind = kOpKinds[k];
    Plan plan;
    plan.worldSize = 1;
    Op op;
    op.kind = kind.kind;
    plan.ops.push_back(op);
    nlohmann::json written = nlohmann::json::parse(writePlan(plan));
    const nlohmann::json &attrs = written["ops"][0]["attrs"];
    std::string stated = kind.statedAttrs;
    size_t words = 0;
    for (size_t at = 0; at < stated.size();) {
      size_t space = std::min(stated.find(' ', at), stated.size());
      std::string attr = stated.substr(at, space - at);
      EXPECT_TRUE(attrs.contains(attr)) << kind.name << ": " << attr;
      EXPECT_TRUE(kind.alwaysStates(attr));
      ++words;
      at = space + 1;
    }
    EXPECT_EQ(attrs.size(), words) << kind.name << ": " << attrs.dump();
    EXPECT_FALSE(kind.alwaysStates("no_such_attribute"));
    EXPECT_FALSE(kind.alwaysStates(""));
  }
}
