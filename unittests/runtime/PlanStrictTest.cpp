//===- PlanStrictTest.cpp - Strict JSON and checked sizes in the loader ---===//
//
// Part of the Lina project.
//
// The plan loader reads every field strictly (integers are JSON integers in
// the field's range, floats are finite, strings are strings) and computes
// every element count, byte size and offset + size with overflow checks.
// Each case below was accepted before, often with a wrong result; each must
// now be rejected with a message that names the field and where it is.
//
//===----------------------------------------------------------------------===//

#include "lina/Support/CheckedMath.h"
#include "lina/rt/Plan.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace lina::rt;
using nlohmann::json;

namespace {
json buffer(int id, const char *name, json shape, const char *role = "temp",
            const char *dtype = "f32") {
  json b = {{"id", id},
            {"name", name},
            {"dtype", dtype},
            {"shape", shape},
            {"role", role}};
  if (std::string(role) == "input")
    b["init"] = "random";
  return b;
}

/// x[8,4] + y[8,4] -> s[8,4], then s is copied into out[8,4] in two halves.
json smallPlan() {
  json buffers = json::array({
      buffer(0, "x", {8, 4}, "input"),
      buffer(1, "y", {8, 4}, "input"),
      buffer(2, "s", {8, 4}),
      buffer(3, "out", {8, 4}, "output"),
  });
  auto copy = [](int id, int row) {
    return json{{"id", id},
                {"kind", "copy"},
                {"inputs", {2}},
                {"outputs", {3}},
                {"loc", "m.mlir:" + std::to_string(id + 1) + ":3"},
                {"attrs",
                 {{"src_offsets", {row, 0}},
                  {"dst_offsets", {row, 0}},
                  {"sizes", {4, 4}}}}};
  };
  json ops = json::array({
      {{"id", 0},
       {"kind", "add"},
       {"inputs", {0, 1}},
       {"outputs", {2}},
       {"loc", "m.mlir:1:3"}},
      copy(1, 0),
      copy(2, 4),
  });
  return {{"format", "lina-plan"},
          {"version", 1},
          {"world_size", 2},
          {"grid", {{"shape", {2}}}},
          {"groups", {{"ep", {{"members", {{0, 1}}}}}}},
          {"buffers", buffers},
          {"ops", ops},
          {"outputs", {3}}};
}

std::string errorOf(const std::string &text) {
  try {
    parsePlan(text, "p.json");
  } catch (const PlanError &e) {
    return e.what();
  }
  return "(accepted)";
}
std::string errorOf(const json &plan) { return errorOf(plan.dump()); }

#define EXPECT_ERROR(plan, text)                                               \
  do {                                                                         \
    std::string error = errorOf(plan);                                         \
    EXPECT_NE(error.find(text), std::string::npos) << error;                   \
  } while (0)

TEST(PlanStrict, AcceptsTheSmallPlan) {
  Plan plan = parsePlan(smallPlan().dump(), "p.json");
  EXPECT_EQ(plan.worldSize, 2);
  EXPECT_EQ(plan.allocatedBytes(), 4 * 32 * 4);
}

TEST(PlanStrict, IntegersMustBeJsonIntegers) {
  json p = smallPlan();
  p["world_size"] = 1.9;
  EXPECT_ERROR(p, "p.json: plan: field 'world_size' must be an integer, got "
                  "number 1.9");
  p["world_size"] = 2.0;
  EXPECT_ERROR(p, "field 'world_size' must be an integer, got number 2.0");
  p["world_size"] = true;
  EXPECT_ERROR(p, "field 'world_size' must be an integer, got boolean true");
  p["world_size"] = "2";
  EXPECT_ERROR(p, "field 'world_size' must be an integer, got string \"2\"");
  p = smallPlan();
  p["buffers"][1]["shape"] = {8, 4.5};
  EXPECT_ERROR(p,
               "buffer 1: field 'shape[1]' must be an integer, got number 4.5");
  p = smallPlan();
  p["ops"][1]["attrs"]["sizes"] = {4, false};
  EXPECT_ERROR(p, "op 1 (copy at m.mlir:2:3): field 'attrs.sizes[1]' must be "
                  "an integer, got boolean false");
}

TEST(PlanStrict, IntegersMustBeInRangeInsteadOfTruncating) {
  // 2^32 + 1 used to become world size 1.
  json p = smallPlan();
  p["world_size"] = 4294967297LL;
  EXPECT_ERROR(p, "field 'world_size' is 4294967297, outside [1, 1048576]");
  // An input id of 2^40 used to become buffer 0.
  p = smallPlan();
  p["ops"][0]["inputs"] = {int64_t(1) << 40, 1};
  EXPECT_ERROR(p, "op 0 (add at m.mlir:1:3): field 'inputs[0]' is "
                  "1099511627776, outside [0, 2147483647]");
  // Beyond int64_t altogether.
  EXPECT_ERROR(std::string(R"({"format": "lina-plan", "version": 1,
                               "world_size": 18446744073709551615})"),
               "field 'world_size' is 18446744073709551615, outside");
  p = smallPlan();
  p["groups"]["ep"]["members"] = {{0, 5}};
  EXPECT_ERROR(p, "group 'ep': field 'members[0][1]' is 5, outside [0, 1]");
  p = smallPlan();
  p["ops"][0]["deps"] = {-1};
  EXPECT_ERROR(p, "op 0 (add at m.mlir:1:3): field 'deps[0]' is -1, outside");
}

TEST(PlanStrict, OtherFieldsMustHaveTheirType) {
  json p = smallPlan();
  p["ops"][0]["kind"] = 5;
  EXPECT_ERROR(p, "op 0: field 'kind' must be a string, got number 5");
  p = smallPlan();
  p["ops"][0]["hold_low"] = 1;
  EXPECT_ERROR(p, "field 'hold_low' must be true or false, got number 1");
  p = smallPlan();
  p["ops"][0]["attrs"] = json::array();
  EXPECT_ERROR(p, "op 0 (add at m.mlir:1:3): field 'attrs' must be an object");
  p = smallPlan();
  p["ops"][2] = 7;
  EXPECT_ERROR(p, "ops[2] must be an object");
  p = smallPlan();
  p["ops"][0].erase("id");
  EXPECT_ERROR(p, "ops[0]: missing field 'id'");
}

TEST(PlanStrict, FloatsMustBeFinite) {
  json p = smallPlan();
  p["ops"][0]["attrs"] = {{"capacity_factor", "inf"}};
  EXPECT_ERROR(p, "field 'attrs.capacity_factor' must be a number, got string");
  p["ops"][0]["attrs"] = {{"capacity_factor", -1.0}};
  EXPECT_ERROR(p, "field 'attrs.capacity_factor' is -1.0, outside");
  // JSON has no infinity; a literal beyond double's range is refused
  // either by the JSON parser or as a non-finite value, never run.
  std::string text = smallPlan().dump();
  std::string key = "\"loc\":\"m.mlir:1:3\"";
  text.replace(text.find(key), key.size(),
               key + ",\"attrs\":{\"capacity_factor\":1e400}");
  std::string error = errorOf(text);
  EXPECT_NE(error, "(accepted)");
  EXPECT_TRUE(error.find("not valid JSON") != std::string::npos ||
              error.find("must be finite") != std::string::npos)
      << error;
}

TEST(PlanStrict, ElementCountsAreCheckedNotWrapped) {
  // 4611686018427387968 * 4 wraps to 256 in 64 bits.
  json p = smallPlan();
  p["buffers"][3]["shape"] = {4611686018427387968LL, 4};
  EXPECT_ERROR(p, "buffer 3: field 'shape[0]' is 4611686018427387968, outside "
                  "[0, 281474976710656]");
  // Every extent within the limit, the product far beyond int64_t.
  p = smallPlan();
  p["buffers"][3]["shape"] = {int64_t(1) << 40, int64_t(1) << 40};
  EXPECT_ERROR(p, "buffer 3 ('out'): shape [1099511627776x1099511627776] has "
                  "more than 2^63 elements; the limit is 281474976710656");
  // Within int64_t, beyond the documented limit.
  p["buffers"][3]["shape"] = {int64_t(1) << 30, int64_t(1) << 30};
  EXPECT_ERROR(p, "has 1152921504606846976 elements; the limit is");
  p["buffers"][3]["shape"] = json::array();
  for (int i = 0; i < 17; ++i)
    p["buffers"][3]["shape"].push_back(1);
  EXPECT_ERROR(p, "buffer 3: field 'shape' has 17 entries; the limit is 16");
}

TEST(PlanStrict, GridProductIsChecked) {
  json p = smallPlan();
  p["grid"]["shape"] = {3037000500LL, 3037000500LL};
  EXPECT_ERROR(p, "field 'grid.shape[0]' is 3037000500, outside [1, 1048576]");
  p["grid"]["shape"] = {1048576, 1048576, 1048576, 1048576};
  EXPECT_ERROR(p,
               "grid shape holds more than 2^63 devices, but world_size is 2");
  p["grid"]["shape"] = {1024, 1024};
  EXPECT_ERROR(p, "grid shape holds 1048576 devices, but world_size is 2");
}

TEST(PlanStrict, CopyBoundsDoNotOverflow) {
  // offset + size used to overflow and pass the check; copyBox then read
  // and wrote far outside the buffers.
  json p = smallPlan();
  p["ops"][1]["attrs"]["src_offsets"] = {INT64_MAX - 2, 0};
  EXPECT_ERROR(p, "op 1 (copy at m.mlir:2:3): field 'attrs.src_offsets[0]' is "
                  "9223372036854775805, outside [0, 281474976710656]");
  // Within the limit but beyond the buffer.
  p = smallPlan();
  p["ops"][2]["attrs"]["dst_offsets"] = {5, 0};
  EXPECT_ERROR(p,
               "op 2 (copy at m.mlir:3:3): copy box out of bounds in "
               "dimension 0: destination offset 5 + size 4 exceeds extent 8");
  p = smallPlan();
  p["ops"][1]["attrs"]["src_offsets"] = {int64_t(1) << 48, 0};
  EXPECT_ERROR(p, "copy box out of bounds in dimension 0: source offset "
                  "281474976710656 + size 4 exceeds extent 8");
}

TEST(PlanStrict, ZeroSizeCopyIsRejected) {
  // A zero-size copy moved nothing, silently leaving its target unwritten.
  json p = smallPlan();
  p["ops"][2]["attrs"]["sizes"] = {0, 4};
  EXPECT_ERROR(p, "op 2 (copy at m.mlir:3:3): field 'attrs.sizes' is 0 in "
                  "dimension 0: a copy must move at least one element");
}

TEST(PlanStrict, ViewBoundsDoNotOverflow) {
  json p = smallPlan();
  json v = buffer(4, "v", {8});
  v["view"] = {{"base", 2}, {"offset", (int64_t(1) << 48) - 4}};
  p["buffers"].push_back(v);
  EXPECT_ERROR(p, "buffer 4 ('v'): view of 8 elements at offset "
                  "281474976710652 does not fit in buffer 2 of 32 elements");
  p["buffers"][4]["view"]["offset"] = INT64_MAX;
  EXPECT_ERROR(p,
               "buffer 4: field 'view.offset' is 9223372036854775807, outside");
}

TEST(PlanStrict, RoutingAttributesHaveLimits) {
  json p = smallPlan();
  p["ops"][0]["attrs"] = {{"num_experts", int64_t(1) << 40}};
  EXPECT_ERROR(
      p, "field 'attrs.num_experts' is 1099511627776, outside [0, 1048576]");
  p["ops"][0]["attrs"] = {{"capacity", 0}};
  EXPECT_ERROR(p, "field 'attrs.capacity' is 0, outside [1, 1099511627776]");
  p["ops"][0]["attrs"] = {{"split_axis", 16}};
  EXPECT_ERROR(p, "field 'attrs.split_axis' is 16, outside [0, 15]");
}

TEST(PlanStrict, HandBuiltBuffersThrowInsteadOfWrapping) {
  Buffer b;
  b.id = 7;
  b.name = "big";
  b.shape = {int64_t(1) << 62, 4};
  EXPECT_THROW(b.numElements(), PlanError);
  b.shape = {int64_t(1) << 61};
  EXPECT_EQ(b.numElements(), int64_t(1) << 61);
  EXPECT_THROW(b.numBytes(), PlanError);
}

TEST(PlanStrict, AllocatedBytesCountBasesOnce) {
  json p = smallPlan();
  json v = buffer(4, "v", {16});
  v["view"] = {{"base", 2}, {"offset", 16}};
  p["buffers"].push_back(v);
  Plan plan = parsePlan(p.dump(), "p.json");
  EXPECT_EQ(plan.allocatedBytes(), 4 * 32 * 4); // the view adds nothing
}
} // namespace
