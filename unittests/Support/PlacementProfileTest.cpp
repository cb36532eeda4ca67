//===- PlacementProfileTest.cpp - Popularity and path profiles ------------===//
//
// Part of the Lina project.
//
// Profiles of tiny traces against values computed by hand, the JSON round
// trip, backoff, and the synthetic trace generator's skew and stickiness.
//
//===----------------------------------------------------------------------===//

#include "lina/Support/Profile.h"

#include <gtest/gtest.h>

#include <sstream>

using namespace lina;

namespace {

RoutingTrace parse(const std::string &text, int experts = 0) {
  std::istringstream in(text);
  std::string error;
  TraceParseOptions opts;
  opts.numExperts = experts;
  std::optional<RoutingTrace> t = parseRoutingTrace(in, "t.jsonl", opts, error);
  EXPECT_TRUE(t) << error;
  return t ? *t : RoutingTrace();
}

Profile build(const RoutingTrace &t, int pathLength) {
  std::string error;
  std::optional<Profile> p = Profile::build(t, pathLength, error);
  EXPECT_TRUE(p) << error;
  return p ? *p : Profile();
}

/// 4 tokens, 3 layers, 4 experts, top-2. Top-1 paths:
///   token 0: 0 -> 1 -> 2      token 1: 0 -> 1 -> 3
///   token 2: 0 -> 2 -> 2      token 3: 3 -> 1 -> 2
const char *kTiny = R"(
{"request": 0, "token": 0, "layer": 0, "experts": [0, 1]}
{"request": 0, "token": 0, "layer": 1, "experts": [1, 0]}
{"request": 0, "token": 0, "layer": 2, "experts": [2, 3]}
{"request": 0, "token": 1, "layer": 0, "experts": [0, 2]}
{"request": 0, "token": 1, "layer": 1, "experts": [1, 2]}
{"request": 0, "token": 1, "layer": 2, "experts": [3, 2]}
{"request": 1, "token": 0, "layer": 2, "experts": [2, 0], "weights": [0.6, 0.4]}
{"request": 1, "token": 0, "layer": 1, "experts": [2, 3], "weights": [0.7, 0.3]}
{"request": 1, "token": 0, "layer": 0, "experts": [0, 3], "weights": [0.9, 0.1]}
{"request": 1, "token": 1, "layer": 0, "experts": [3, 0]}
{"request": 1, "token": 1, "layer": 1, "experts": [1, 3]}
{"request": 1, "token": 1, "layer": 2, "experts": [2, 1]}
)";

TEST(Profile, PopularityByHand) {
  RoutingTrace t = parse(kTiny);
  EXPECT_EQ(t.numLayers, 3);
  EXPECT_EQ(t.numExperts, 4);
  EXPECT_EQ(t.topK, 2);
  ASSERT_EQ(t.tokens.size(), 4u);
  // Records out of order are regrouped per token.
  EXPECT_EQ(t.tokens[2].experts[0], (std::vector<int>{0, 3}));
  EXPECT_EQ(t.tokens[2].weights[1], (std::vector<double>{0.7, 0.3}));
  Profile p = build(t, 2);
  EXPECT_EQ(p.numTokens, 4);
  // Layer 0 assignments: 0,1, 0,2, 0,3, 3,0 -> e0 4/8, e1 1/8, e2 1/8, e3 2/8.
  EXPECT_EQ(p.popularity[0], (std::vector<double>{0.5, 0.125, 0.125, 0.25}));
  // Layer 1: 1,0, 1,2, 2,3, 1,3 -> e0 1, e1 3, e2 2, e3 2.
  EXPECT_EQ(p.popularity[1], (std::vector<double>{0.125, 0.375, 0.25, 0.25}));
  // Layer 2: 2,3, 3,2, 2,0, 2,1 -> e0 1, e1 1, e2 4, e3 2.
  EXPECT_EQ(p.popularity[2], (std::vector<double>{0.125, 0.125, 0.5, 0.25}));
}

TEST(Profile, TransitionsByHand) {
  Profile p = build(parse(kTiny), 2);
  EXPECT_TRUE(p.transitions[0].empty());
  // Layer 1, path [0] (tokens 0, 1, 2): assignments 1,0 1,2 2,3.
  const PathStats &s = p.transitions[1].at({0});
  EXPECT_EQ(s.count, 3);
  EXPECT_EQ(s.top1, 1); // top-1s: 1, 1, 2
  EXPECT_NEAR(s.shares[0], 1.0 / 6, 1e-12);
  EXPECT_NEAR(s.shares[1], 2.0 / 6, 1e-12);
  EXPECT_NEAR(s.shares[2], 2.0 / 6, 1e-12);
  EXPECT_NEAR(s.shares[3], 1.0 / 6, 1e-12);
  // Layer 2, path [0, 1] (tokens 0, 1): assignments 2,3 3,2; top-1 2 and 3,
  // a tie broken to the lower id.
  const PathStats &s2 = p.transitions[2].at({0, 1});
  EXPECT_EQ(s2.count, 2);
  EXPECT_EQ(s2.top1, 2);
  EXPECT_EQ(s2.shares, (std::vector<double>{0, 0, 0.5, 0.5}));
  // Layer 2, path [1] (tokens 0, 1, 3): 2,3 3,2 2,1.
  const PathStats &s3 = p.transitions[2].at({1});
  EXPECT_EQ(s3.count, 3);
  EXPECT_EQ(s3.top1, 2);
  // Paths of length 1 and 2 at layer 2: [0,1] [0,2] [3,1], [1] [2].
  EXPECT_EQ(p.transitions[2].size(), 5u);
}

TEST(Profile, BackoffToShorterPathsThenPopularity) {
  Profile p = build(parse(kTiny), 2);
  int used = -1;
  // Seen path of length 2.
  int h1[] = {0, 1};
  EXPECT_EQ(p.lookup(2, h1, &used), &p.transitions[2].at({0, 1}));
  EXPECT_EQ(used, 2);
  // [3, 2] was never seen, [2] was (token 2): back off to length 1.
  int h2[] = {3, 2};
  EXPECT_EQ(p.lookup(2, h2, &used), &p.transitions[2].at({2}));
  EXPECT_EQ(used, 1);
  // [0, 3]: neither [0,3] nor [3] at layer 2: the popularity applies.
  int h3[] = {0, 3};
  EXPECT_EQ(p.lookup(2, h3, &used), nullptr);
  EXPECT_EQ(used, 0);
  EXPECT_EQ(p.predictTop1(2, h3), 2); // most popular at layer 2
  // Layer 0 has no history.
  EXPECT_EQ(p.lookup(0, h1, &used), nullptr);
  EXPECT_EQ(p.predictTop1(0, h1), 0);
  // Expected load: k * distribution.
  std::vector<double> loads(4, 0.0);
  p.addExpectedLoad(2, h1, loads.data());
  EXPECT_EQ(loads, (std::vector<double>{0, 0, 1, 1}));
  p.addExpectedLoad(2, h3, loads.data());
  EXPECT_EQ(loads, (std::vector<double>{0.25, 0.25, 2, 1.5}));
}

TEST(Profile, PathLengthZeroKeepsOnlyPopularity) {
  Profile p = build(parse(kTiny), 0);
  for (const auto &t : p.transitions)
    EXPECT_TRUE(t.empty());
  int h[] = {0, 1};
  EXPECT_EQ(p.lookup(2, h), nullptr);
}

TEST(Profile, JsonRoundTrip) {
  Profile p = build(parse(kTiny), 2);
  std::string error;
  std::optional<Profile> q = Profile::fromJson(p.toJson(), "p.json", error);
  ASSERT_TRUE(q) << error;
  EXPECT_EQ(q->numLayers, 3);
  EXPECT_EQ(q->pathLength, 2);
  EXPECT_EQ(q->popularity, p.popularity);
  for (int l = 0; l < 3; ++l) {
    ASSERT_EQ(q->transitions[l].size(), p.transitions[l].size());
    for (const auto &[path, s] : p.transitions[l]) {
      const PathStats &r = q->transitions[l].at(path);
      EXPECT_EQ(r.count, s.count);
      EXPECT_EQ(r.top1, s.top1);
      EXPECT_EQ(r.shares, s.shares);
    }
  }
}

TEST(Profile, RejectsBadFiles) {
  std::string error;
  auto expectError = [&](const std::string &text, const std::string &what) {
    EXPECT_FALSE(Profile::fromJson(text, "p.json", error)) << text;
    EXPECT_NE(error.find(what), std::string::npos) << error;
  };
  expectError("{not json", "p.json: not valid JSON");
  expectError(R"({"format": "lina-plan"})", "not a profile");
  expectError(R"({"format": 3})", "not a profile");
  std::string head = R"({"format": "lina-profile", "version": 1, "layers": 2,
      "experts": 2, "top_k": 1, "path_length": 1, "tokens": 4, )";
  expectError(head + R"("popularity": [[0.5, 0.5]], "transitions": []})",
              "one entry per layer (2)");
  expectError(
      head + R"("popularity": [[0.5, 0.5], [0.9, 0.9]], "transitions": []})",
      "popularity[1]' sum to");
  expectError(head + R"("popularity": [[0.5, 0.5], [0.5, 0.5]],
      "transitions": [{"layer": 1, "path": [2], "count": 1, "top1": 0,
                       "experts": [0], "shares": [1]}]})",
              "transitions[0].path' holds 2");
  expectError(head + R"("popularity": [[0.5, 0.5], [0.5, 0.5]],
      "transitions": [{"layer": 1, "path": [0, 1], "count": 1, "top1": 0,
                       "experts": [0], "shares": [1]}]})",
              "array of 1 to 1 expert ids");
  expectError(head + R"("popularity": [[0.5, 0.5], [0.5, 0.5]],
      "transitions": [{"layer": 0, "path": [0], "count": 1, "top1": 0,
                       "experts": [0], "shares": [1]}]})",
              "transitions[0].layer' must be an integer in [1, 1]");
  std::string noTokens = R"({"format": "lina-profile", "version": 1,
      "layers": 1, "experts": 2, "top_k": 1, "path_length": 1})";
  expectError(noTokens, "missing field 'tokens'");
  EXPECT_FALSE(Profile::fromFile("/nonexistent/profile.json", error));
  EXPECT_NE(error.find("cannot open profile"), std::string::npos);
}

TEST(Profile, SyntheticSkewAndStickiness) {
  SynthesisOptions o;
  o.layers = 4;
  o.experts = 16;
  o.topK = 2;
  o.requests = 32;
  o.tokensPerRequest = 64;
  o.zipf = 1.2;
  o.stickiness = 0.4;
  o.seed = 7;
  std::string error;
  std::optional<RoutingTrace> t = synthesizeTrace(o, error);
  ASSERT_TRUE(t) << error;
  ASSERT_EQ(t->tokens.size(), 32u * 64u);
  // Deterministic for a seed.
  std::optional<RoutingTrace> again = synthesizeTrace(o, error);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->tokens[100].experts, t->tokens[100].experts);
  Profile p = build(*t, 1);
  for (int l = 0; l < 4; ++l) {
    double hottest =
        *std::max_element(p.popularity[l].begin(), p.popularity[l].end());
    EXPECT_GT(hottest * 16, 3.0) << "layer " << l << " is not skewed";
  }
  // Stickiness: the top-1 expert repeats at least ~40% of the time.
  int same = 0, total = 0;
  for (const TokenRoute &r : t->tokens)
    for (int l = 1; l < 4; ++l, ++total)
      same += r.top1(l) == r.top1(l - 1);
  EXPECT_GT(same, total * 0.38);
  // Round trip through JSONL.
  std::stringstream io;
  ASSERT_TRUE(writeRoutingTrace(*t, io, error)) << error;
  TraceParseOptions opts;
  opts.numExperts = 16;
  std::optional<RoutingTrace> back = parseRoutingTrace(io, "io", opts, error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->tokens.size(), t->tokens.size());
  EXPECT_EQ(back->tokens[5].experts, t->tokens[5].experts);
  // Uniform with zipf 0 and no stickiness: no expert far from 1/16.
  o.zipf = 0;
  o.stickiness = 0;
  t = synthesizeTrace(o, error);
  ASSERT_TRUE(t);
  Profile u = build(*t, 1);
  for (double share : u.popularity[0])
    EXPECT_NEAR(share, 1.0 / 16, 0.02);
}

TEST(Profile, SyntheticOptionsAreChecked) {
  SynthesisOptions o;
  o.topK = 20;
  o.experts = 16;
  std::string error;
  EXPECT_FALSE(synthesizeTrace(o, error));
  EXPECT_NE(error.find("--top-k (20) exceeds --experts (16)"),
            std::string::npos);
  o.topK = 2;
  o.stickiness = 1.5;
  EXPECT_FALSE(synthesizeTrace(o, error));
  EXPECT_NE(error.find("--stickiness"), std::string::npos);
}

} // namespace
