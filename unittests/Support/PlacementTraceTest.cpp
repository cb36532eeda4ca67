//===- PlacementTraceTest.cpp - Routing trace parser errors ---------------===//
//
// Part of the Lina project.
//
// Every malformed trace is rejected with the line number and what is wrong.
//
//===----------------------------------------------------------------------===//

#include "lina/Support/RoutingTrace.h"

#include <gtest/gtest.h>

#include <sstream>

using namespace lina;

namespace {

/// Parses `text` expecting failure; returns the message.
std::string parseError(const std::string &text, int experts = 0,
                       int layers = 0) {
  std::istringstream in(text);
  std::string error;
  TraceParseOptions opts;
  opts.numExperts = experts;
  opts.numLayers = layers;
  EXPECT_FALSE(parseRoutingTrace(in, "t.jsonl", opts, error)) << text;
  return error;
}

const char *kGood = R"({"request": 0, "token": 0, "layer": 0, "experts": [1]}
{"request": 0, "token": 0, "layer": 1, "experts": [2]}
)";

TEST(RoutingTrace, ParsesAndSkipsBlankLines) {
  std::istringstream in(std::string("\n") + kGood + "   \n");
  std::string error;
  std::optional<RoutingTrace> t =
      parseRoutingTrace(in, "t.jsonl", TraceParseOptions(), error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->numLayers, 2);
  EXPECT_EQ(t->numExperts, 3);
  EXPECT_EQ(t->topK, 1);
  ASSERT_EQ(t->tokens.size(), 1u);
  EXPECT_EQ(t->tokens[0].top1(1), 2);
  EXPECT_TRUE(t->tokens[0].weights[0].empty());
}

TEST(RoutingTrace, MalformedLines) {
  EXPECT_EQ(parseError(std::string(kGood) + "{\"request\": 0,\n"),
            "t.jsonl:3: not valid JSON");
  EXPECT_EQ(parseError("[1, 2]\n"),
            "t.jsonl:1: expected a JSON object {\"request\", \"token\", "
            "\"layer\", \"experts\"}, got array");
  EXPECT_EQ(parseError(R"({"token": 0, "layer": 0, "experts": [1]})"),
            "t.jsonl:1: missing field 'request'");
  EXPECT_EQ(
      parseError(R"({"request": -1, "token": 0, "layer": 0, "experts": [1]})"),
      "t.jsonl:1: field 'request' must be a non-negative integer, got -1");
  EXPECT_EQ(
      parseError(R"({"request": 0, "token": "a", "layer": 0, "experts": [1]})"),
      "t.jsonl:1: field 'token' must be a non-negative integer, got \"a\"");
  EXPECT_EQ(
      parseError(R"({"request": 0, "token": 0, "layer": 0.5, "experts": [1]})"),
      "t.jsonl:1: field 'layer' must be a non-negative integer, got 0.5");
  EXPECT_EQ(parseError(R"({"request": 0, "token": 0, "layer": 0})"),
            "t.jsonl:1: missing field 'experts'");
  EXPECT_EQ(
      parseError(R"({"request": 0, "token": 0, "layer": 0, "experts": []})"),
      "t.jsonl:1: field 'experts' must be a non-empty array of expert ids");
  EXPECT_EQ(
      parseError(
          R"({"request": 0, "token": 0, "layer": 0, "experts": [1, -2]})"),
      "t.jsonl:1: expert id -2 is not a non-negative integer");
  EXPECT_EQ(parseError(
                R"({"request": 0, "token": 0, "layer": 0, "experts": [1, 1]})"),
            "t.jsonl:1: expert 1 is listed twice");
  EXPECT_EQ(
      parseError(
          R"({"request": 0, "token": 0, "layer": 0, "experts": [1, 2], "weights": [1]})"),
      "t.jsonl:1: field 'weights' must be an array with one number per "
      "expert (2)");
  EXPECT_EQ(
      parseError(
          R"({"request": 0, "token": 0, "layer": 0, "experts": [1], "weights": ["x"]})"),
      "t.jsonl:1: weight \"x\" is not a finite number");
}

TEST(RoutingTrace, InconsistentTopK) {
  EXPECT_EQ(parseError(
                std::string(kGood) +
                R"({"request": 0, "token": 1, "layer": 0, "experts": [1, 2]})"),
            "t.jsonl:3: record has 2 experts but line 1 has 1 (all records "
            "need the same top-k)");
}

TEST(RoutingTrace, ExpertOrLayerOutOfRange) {
  EXPECT_EQ(parseError(kGood, /*experts=*/2),
            "t.jsonl:2: expert id 2 is out of range [0, 2)");
  EXPECT_EQ(parseError(kGood, /*experts=*/0, /*layers=*/1),
            "t.jsonl:2: layer 1 is out of range [0, 1)");
}

TEST(RoutingTrace, DuplicateAndMissingRecords) {
  EXPECT_EQ(
      parseError(std::string(kGood) +
                 R"({"request": 0, "token": 0, "layer": 1, "experts": [0]})"),
      "t.jsonl:3: duplicate record for request 0 token 0 layer 1 (first "
      "on line 2)");
  EXPECT_EQ(
      parseError(std::string(kGood) +
                 R"({"request": 3, "token": 4, "layer": 0, "experts": [0]})"),
      "t.jsonl:3: request 3 token 4 has no record for layer 1 (every "
      "token needs one record per layer 0..1)");
  EXPECT_EQ(parseError("\n\n"), "t.jsonl: the trace has no records");
}

TEST(RoutingTrace, MissingFile) {
  std::string error;
  EXPECT_FALSE(
      readRoutingTrace("/nonexistent/trace.jsonl", TraceParseOptions(), error));
  EXPECT_EQ(error, "cannot open routing trace '/nonexistent/trace.jsonl'");
}

} // namespace
