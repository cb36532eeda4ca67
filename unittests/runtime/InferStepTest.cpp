//===- InferStepTest.cpp - The step plan of an inference batch -----------===//
//
// Part of the Lina project.
//
// BatchPlacer's per-rank traffic (every assignment is sent exactly once, to
// a device hosting its expert) and buildStepPlan's plan (validated, the
// busiest device's rows, the moves before the experts) on a 4-rank plan.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/InferStep.h"

#include "lina/Support/CostModel.h"
#include "lina/Support/RoutingTrace.h"
#include "lina/rt/Plan.h"
#include "lina/rt/Scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

using namespace lina;
using namespace lina::rt;
using namespace lina::rt::infer;

namespace {

/// Two MoE layers of 4 experts, top-2, on 4 ranks of 16 tokens each.
const char *kPlan = R"json({
  "format": "lina-plan",
  "version": 1,
  "source": "tiny.mlir",
  "function": "forward",
  "mode": "infer",
  "world_size": 4,
  "grid": {"shape":[4]},
  "groups": {
    "ep": {"members":[[0,1,2,3]]}
  },
  "buffers": [
    {"id":0,"name":"arg0","dtype":"f32","shape":[16,8],"role":"input","init":"random"},
    {"id":1,"name":"arg1","dtype":"f32","shape":[8,8],"role":"param","init":"random"},
    {"id":2,"name":"arg2","dtype":"f32","shape":[8,4],"role":"param","init":"random"},
    {"id":3,"name":"arg3","dtype":"f32","shape":[1,8,16],"role":"param","init":"random"},
    {"id":4,"name":"arg4","dtype":"f32","shape":[1,16,8],"role":"param","init":"random"},
    {"id":5,"name":"arg5","dtype":"f32","shape":[8,8],"role":"param","init":"random"},
    {"id":6,"name":"arg6","dtype":"f32","shape":[8,4],"role":"param","init":"random"},
    {"id":7,"name":"arg7","dtype":"f32","shape":[1,8,16],"role":"param","init":"random"},
    {"id":8,"name":"arg8","dtype":"f32","shape":[1,16,8],"role":"param","init":"random"},
    {"id":9,"name":"t9","dtype":"f32","shape":[16,8],"role":"temp","init":"none"},
    {"id":10,"name":"t10","dtype":"i32","shape":[16,2],"role":"temp","init":"none"},
    {"id":11,"name":"t11","dtype":"f32","shape":[16,2],"role":"temp","init":"none"},
    {"id":12,"name":"t12","dtype":"f32","shape":[4,8,8],"role":"temp","init":"none"},
    {"id":13,"name":"t13","dtype":"f32","shape":[1,32,8],"role":"temp","init":"none"},
    {"id":14,"name":"t14","dtype":"f32","shape":[1,32,8],"role":"temp","init":"none"},
    {"id":15,"name":"t15","dtype":"f32","shape":[4,8,8],"role":"temp","init":"none"},
    {"id":16,"name":"t16","dtype":"f32","shape":[16,8],"role":"temp","init":"none"},
    {"id":17,"name":"t17","dtype":"f32","shape":[16,8],"role":"temp","init":"none"},
    {"id":18,"name":"t18","dtype":"f32","shape":[16,8],"role":"temp","init":"none"},
    {"id":19,"name":"t19","dtype":"i32","shape":[16,2],"role":"temp","init":"none"},
    {"id":20,"name":"t20","dtype":"f32","shape":[16,2],"role":"temp","init":"none"},
    {"id":21,"name":"t21","dtype":"f32","shape":[4,8,8],"role":"temp","init":"none"},
    {"id":22,"name":"t22","dtype":"f32","shape":[1,32,8],"role":"temp","init":"none"},
    {"id":23,"name":"t23","dtype":"f32","shape":[1,32,8],"role":"temp","init":"none"},
    {"id":24,"name":"t24","dtype":"f32","shape":[4,8,8],"role":"temp","init":"none"},
    {"id":25,"name":"t25","dtype":"f32","shape":[16,8],"role":"temp","init":"none"},
    {"id":26,"name":"t26","dtype":"f32","shape":[16,8],"role":"output","init":"none"}
  ],
  "ops": [
    {"id":0,"kind":"dense","inputs":[0,1],"outputs":[9],"deps":[],"attrs":{"activation":"silu"},"loc":"tiny.mlir:6:9"},
    {"id":1,"kind":"gate","inputs":[9,2],"outputs":[10,11],"deps":[0],"attrs":{"capacity_factor":1,"num_experts":4,"top_k":2},"loc":"tiny.mlir:7:17"},
    {"id":2,"kind":"dispatch","inputs":[9,10],"outputs":[12],"deps":[0,1],"attrs":{"capacity":8,"num_experts":4},"loc":"tiny.mlir:8:11"},
    {"id":3,"kind":"all_to_all","inputs":[12],"outputs":[13],"deps":[2],"attrs":{"concat_axis":1,"split_axis":0},"group":"ep","priority":"normal","loc":"tiny.mlir:9:9"},
    {"id":4,"kind":"expert_ffn","inputs":[13,3,4],"outputs":[14],"deps":[3],"attrs":{"activation":"gelu"},"loc":"tiny.mlir:10:9"},
    {"id":5,"kind":"all_to_all","inputs":[14],"outputs":[15],"deps":[4],"attrs":{"concat_axis":0,"split_axis":1},"group":"ep","priority":"normal","loc":"tiny.mlir:11:9"},
    {"id":6,"kind":"combine","inputs":[15,10,11],"outputs":[16],"deps":[1,5],"loc":"tiny.mlir:12:9"},
    {"id":7,"kind":"add","inputs":[9,16],"outputs":[17],"deps":[0,6],"loc":"tiny.mlir:13:9"},
    {"id":8,"kind":"dense","inputs":[17,5],"outputs":[18],"deps":[7],"attrs":{"activation":"silu"},"loc":"tiny.mlir:14:9"},
    {"id":9,"kind":"gate","inputs":[18,6],"outputs":[19,20],"deps":[8],"attrs":{"capacity_factor":1,"num_experts":4,"top_k":2},"loc":"tiny.mlir:15:17"},
    {"id":10,"kind":"dispatch","inputs":[18,19],"outputs":[21],"deps":[8,9],"attrs":{"capacity":8,"num_experts":4},"loc":"tiny.mlir:16:11"},
    {"id":11,"kind":"all_to_all","inputs":[21],"outputs":[22],"deps":[10],"attrs":{"concat_axis":1,"split_axis":0},"group":"ep","priority":"normal","loc":"tiny.mlir:17:9"},
    {"id":12,"kind":"expert_ffn","inputs":[22,7,8],"outputs":[23],"deps":[11],"attrs":{"activation":"gelu"},"loc":"tiny.mlir:18:9"},
    {"id":13,"kind":"all_to_all","inputs":[23],"outputs":[24],"deps":[12],"attrs":{"concat_axis":0,"split_axis":1},"group":"ep","priority":"normal","loc":"tiny.mlir:19:9"},
    {"id":14,"kind":"combine","inputs":[24,19,20],"outputs":[25],"deps":[9,13],"loc":"tiny.mlir:20:9"},
    {"id":15,"kind":"add","inputs":[18,25],"outputs":[26],"deps":[8,14],"loc":"tiny.mlir:21:9"}
  ],
  "outputs": [26]
}
)json";

/// `tokens` tokens of 2 layers, top-2, experts drawn with weight 8 for
/// expert 0 and 1 for the others (a skewed batch).
RoutingTrace skewedTrace(int tokens, unsigned seed) {
  RoutingTrace t;
  t.numLayers = 2;
  t.numExperts = 4;
  t.topK = 2;
  std::mt19937 rng(seed);
  std::discrete_distribution<int> pick({8, 1, 1, 1});
  for (int i = 0; i < tokens; ++i) {
    TokenRoute r;
    r.request = i;
    for (int l = 0; l < 2; ++l) {
      int a = pick(rng), b = a;
      while (b == a)
        b = pick(rng);
      r.experts.push_back({a, b});
    }
    t.tokens.push_back(r);
  }
  return t;
}

struct Fixture {
  Plan plan = parsePlan(kPlan, "tiny.json");
  std::vector<MoeLayer> layers = findMoeLayers(plan, 4, placementTables(plan));
  RoutingTrace trace = skewedTrace(48, 7);
  std::vector<int> batch = [] {
    std::vector<int> b(48);
    std::iota(b.begin(), b.end(), 0);
    return b;
  }();
};

/// Every assignment of the batch appears exactly once in the traffic, sent
/// by the rank that holds its token, to a device with rows of its expert.
void checkTraffic(const Fixture &f, const std::vector<LayerTraffic> &traffic) {
  ASSERT_EQ(traffic.size(), 2u);
  for (int l = 0; l < 2; ++l) {
    const LayerTraffic &t = traffic[l];
    ASSERT_EQ(t.ranks, 4);
    ASSERT_EQ(t.experts, 4);
    // Tokens are dealt in blocks of 12: rank s sends 12 x 2 rows.
    for (int s = 0; s < 4; ++s) {
      int64_t sent = 0;
      for (int d = 0; d < 4; ++d)
        sent += t.rows[s * 4 + d];
      EXPECT_EQ(sent, 24) << "layer " << l << " rank " << s;
    }
    std::vector<int64_t> perExpert(4, 0);
    for (int tok : f.batch)
      for (int e : f.trace.tokens[tok].experts[l])
        ++perExpert[e];
    for (int e = 0; e < 4; ++e) {
      int64_t served = 0;
      for (int d = 0; d < 4; ++d)
        served += t.expertRows[d * 4 + e];
      EXPECT_EQ(served, perExpert[e]) << "layer " << l << " expert " << e;
    }
    for (int d = 0; d < 4; ++d) {
      int64_t received = 0, computed = 0;
      for (int s = 0; s < 4; ++s)
        received += t.rows[s * 4 + d];
      for (int e = 0; e < 4; ++e)
        computed += t.expertRows[d * 4 + e];
      EXPECT_EQ(received, computed) << "layer " << l << " device " << d;
    }
  }
}

TEST(InferStepTest, StaticSendsEveryAssignmentToItsHome) {
  Fixture f;
  BatchPlacer placer(f.layers, f.trace, nullptr, PlacementMode::Static, 4, 2,
                     lina::ClusterSpec::a100Ib100(), 16, 0);
  PlacerStats stats;
  std::vector<LayerTraffic> traffic = placer.route(f.batch, stats);
  checkTraffic(f, traffic);
  for (const LayerTraffic &t : traffic)
    for (int d = 0; d < 4; ++d) {
      // One local expert per rank: expert e lives on rank e.
      for (int e = 0; e < 4; ++e) {
        if (e != d) {
          EXPECT_EQ(t.expertRows[d * 4 + e], 0);
        }
      }
    }
  for (const LayerTraffic &t : traffic)
    for (size_t i = 0; i < t.phase1.size(); ++i) {
      EXPECT_EQ(t.phase1[i], 0);
      EXPECT_EQ(t.phase2[i], 0);
    }
  EXPECT_EQ(stats.bytesMoved, 0);
  EXPECT_EQ(stats.layerBatches, 2);
}

TEST(InferStepTest, OracleReplicatesTheHotExpertAndCountsItsCopies) {
  Fixture f;
  BatchPlacer placer(f.layers, f.trace, nullptr, PlacementMode::Oracle, 4, 2,
                     lina::ClusterSpec::a100Ib100(), 16, 0);
  PlacerStats first, second;
  std::vector<LayerTraffic> traffic = placer.route(f.batch, first);
  checkTraffic(f, traffic);
  // Expert 0 is hot: its rows are spread over more than its home.
  int hosts = 0;
  int64_t moved = 0;
  for (int d = 0; d < 4; ++d)
    hosts += traffic[0].expertRows[d * 4 + 0] > 0;
  // Every device serving expert 0 off its home received it from rank 0.
  for (int s = 0; s < 4; ++s)
    for (int d = 0; d < 4; ++d) {
      int64_t copies = traffic[0].phase1[s * 4 + d];
      EXPECT_GE(copies, 0);
      EXPECT_TRUE(copies == 0 || s != d);
      moved += copies;
    }
  for (int d = 1; d < 4; ++d) {
    if (traffic[0].expertRows[d * 4 + 0] > 0) {
      EXPECT_EQ(traffic[0].phase1[0 * 4 + d], 1) << "device " << d;
    }
  }
  EXPECT_GT(hosts, 1);
  // One expert of the tiny plan: w1 [8, 16] and w2 [16, 8] in f32.
  EXPECT_EQ(f.layers[0].expertBytes, 2 * 8 * 16 * 4);
  EXPECT_GT(moved, 0);
  // The same batch again: the copies are in place, nothing moves.
  placer.route(f.batch, second);
  EXPECT_EQ(second.bytesMoved, 0);
  EXPECT_DOUBLE_EQ(first.bytesMoved,
                   static_cast<double>(moved +
                                       [&] {
                                         int64_t m1 = 0;
                                         for (int64_t c : traffic[1].phase1)
                                           m1 += c;
                                         return m1;
                                       }()) *
                       f.layers[0].expertBytes);
}

TEST(InferStepTest, StepPlanIsValidAndShapedByTheBusiestDevice) {
  Fixture f;
  for (PlacementMode mode : {PlacementMode::Static, PlacementMode::Eplb,
                             PlacementMode::Lina, PlacementMode::Oracle}) {
    BatchPlacer placer(f.layers, f.trace, nullptr, mode, 4, 2,
                       lina::ClusterSpec::a100Ib100(), 16, 0);
    PlacerStats stats;
    std::vector<LayerTraffic> traffic = placer.route(f.batch, stats);
    Plan step = buildStepPlan(f.plan, f.layers, traffic);
    Plan valid;
    ASSERT_NO_THROW(valid = parsePlan(writePlan(step), "step"));
    EXPECT_EQ(valid.outputs, f.plan.outputs);
    // The scheduler accepts it (every dependency is earlier).
    Scheduler scheduler(valid, SchedulerOptions(Policy::Lina));
    int gates = 0, ffns = 0, a2a = 0, low = 0;
    for (const Op &op : valid.ops) {
      gates += op.kind == OpKind::Gate;
      EXPECT_NE(op.kind, OpKind::AllToAll);
      if (op.kind == OpKind::AllToAllV && op.priority != Priority::Low) {
        // The token rows: the traffic's matrix, then its transpose.
        const LayerTraffic &t = traffic[a2a / 2];
        for (int s = 0; s < 4; ++s)
          for (int d = 0; d < 4; ++d)
            EXPECT_EQ(op.sendRows[s * 4 + d],
                      a2a % 2 ? t.rows[d * 4 + s] : t.rows[s * 4 + d]);
        ++a2a;
      }
      low += op.kind == OpKind::AllToAllV && op.priority == Priority::Low;
      if (op.kind != OpKind::ExpertFfn)
        continue;
      ++ffns;
      // The busiest device's rows, whole, over its hosted experts.
      const LayerTraffic &t = traffic[ffns - 1];
      int64_t most = 0;
      for (int d = 0; d < 4; ++d) {
        int64_t r = 0;
        for (int e = 0; e < 4; ++e)
          r += t.expertRows[d * 4 + e];
        most = std::max(most, r);
      }
      const Buffer &in = valid.buffer(op.inputs[0]);
      EXPECT_GE(in.shape[0] * in.shape[1], most);
      EXPECT_LT(in.shape[0] * (in.shape[1] - 1), most);
      // Moves of this layer come before its experts.
      for (int dep : op.deps) {
        EXPECT_EQ(valid.ops[dep].kind, OpKind::AllToAllV);
        EXPECT_EQ(valid.ops[dep].priority, Priority::Low);
      }
    }
    EXPECT_EQ(gates, 2);
    EXPECT_EQ(ffns, 2);
    EXPECT_EQ(a2a, 4);
    if (mode == PlacementMode::Static) {
      EXPECT_EQ(low, 0);
    } else if (mode == PlacementMode::Oracle) {
      EXPECT_GE(low, 1);
    }
  }
}

// Copies that span batches are one low-priority all_to_all_v of their
// bytes, in 1/64 slices of an expert, that no op waits for.
TEST(InferStepTest, BackgroundCopiesAreSlicedAndAwaitedByNothing) {
  Fixture f;
  BatchPlacer placer(f.layers, f.trace, nullptr, PlacementMode::Static, 4, 2,
                     lina::ClusterSpec::a100Ib100(), 16, 0);
  PlacerStats stats;
  std::vector<LayerTraffic> traffic = placer.route(f.batch, stats);
  const double expert = static_cast<double>(f.layers[1].expertBytes);
  traffic[1].background.assign(16, 0.0);
  traffic[1].background[0 * 4 + 2] = expert / 2;      // 32 slices
  traffic[1].background[3 * 4 + 1] = expert / 64 + 1; // just over 1: 2
  Plan step = buildStepPlan(f.plan, f.layers, traffic);
  int copies = -1;
  for (const Op &op : step.ops)
    if (op.kind == OpKind::AllToAllV && op.priority == Priority::Low) {
      ASSERT_EQ(copies, -1) << "one copy op only";
      copies = op.id;
      std::vector<int64_t> want(16, 0);
      want[0 * 4 + 2] = 32;
      want[3 * 4 + 1] = 2;
      EXPECT_EQ(op.sendRows, want);
      EXPECT_EQ(step.buffer(op.inputs[0]).shape[1] * 64 *
                    dtypeBytes(step.buffer(op.inputs[0]).dtype),
                f.layers[1].expertBytes);
    }
  ASSERT_GE(copies, 0);
  for (const Op &op : step.ops)
    EXPECT_EQ(std::count(op.deps.begin(), op.deps.end(), copies), 0)
        << op.describe();
  // Background bytes of the wrong size are an error naming the layer.
  traffic[1].background.assign(3, 1.0);
  try {
    buildStepPlan(f.plan, f.layers, traffic);
    FAIL() << "no error";
  } catch (const PlanError &e) {
    EXPECT_NE(std::string(e.what()).find("MoE layer 1"), std::string::npos)
        << e.what();
  }
}

// The estimate lina routes by: the busiest GPU link or node interface and
// the busiest rank's peer latencies, for the dispatch and the combine, plus
// the slowest device's experts.
TEST(InferStepTest, TrafficSecondsCostsTheBusiestLinkAndDevice) {
  lina::ClusterSpec c;
  c.nodes = 2;
  c.gpusPerNode = 2;
  c.intraNode = {1000, 0};
  c.interNode = {100, 0};
  c.flops = 1000;
  c.memoryBandwidth = 1e12;
  lina::CostModel model(c);
  lina::ExpertCost cost;
  cost.rowBytes = 10;
  cost.flopsPerRow = 100;
  std::vector<int64_t> rows(16, 0), experts(16, 0);
  rows[0 * 4 + 1] = 5; // inside node 0: 50 B over 1000 B/s
  rows[0 * 4 + 2] = 3; // node 0 -> node 1: 30 B
  rows[1 * 4 + 3] = 2; // node 0 -> node 1: 20 B, 50 B over 100 B/s
  rows[2 * 4 + 2] = 7; // stays on device 2: free
  EXPECT_DOUBLE_EQ(trafficSeconds(rows, experts, 4, 4, cost, model, c),
                   2 * 0.5);
  experts[3 * 4 + 0] = 3; // 300 FLOPs at 1000 FLOP/s
  experts[3 * 4 + 1] = 1;
  experts[1 * 4 + 2] = 2;
  EXPECT_DOUBLE_EQ(trafficSeconds(rows, experts, 4, 4, cost, model, c),
                   2 * 0.5 + 0.4);
  // One node: the node interface does not count.
  c.nodes = 1;
  c.gpusPerNode = 4;
  lina::CostModel one(c);
  EXPECT_DOUBLE_EQ(trafficSeconds(rows, experts, 4, 4, cost, one, c),
                   2 * 0.08 + 0.4);
  // Latencies: the launch and one link latency per peer of the busiest
  // rank (rank 0 sends to 1 and 2, rank 2 hears from 0 and 1, ...).
  c.launchLatency = 0.01;
  c.intraNode.latency = 0.1;
  lina::CostModel slow(c);
  EXPECT_DOUBLE_EQ(trafficSeconds(rows, experts, 4, 4, cost, slow, c),
                   2 * (0.08 + 0.01 + 2 * 0.1) + 0.4);
  EXPECT_THROW(trafficSeconds(rows, experts, 4, 3, cost, one, c), PlanError);
  EXPECT_THROW(trafficSeconds({1, 2}, experts, 4, 4, cost, one, c), PlanError);
}

// On two nodes, with routing that shifts from batch to batch, lina's
// routing of every batch and layer is never slower than static expert
// parallelism's by the estimate it routes by, and every assignment is
// still sent once to a device serving its expert.
TEST(InferStepTest, LinaNeverSlowerThanStaticOnTwoNodes) {
  Fixture f;
  lina::ClusterSpec c = lina::ClusterSpec::a100Ib100();
  c.nodes = 2;
  c.gpusPerNode = 2;
  lina::CostModel model(c);
  for (unsigned seed = 1; seed <= 6; ++seed) {
    // A different hot expert per seed, as a shifted domain would have.
    RoutingTrace trace = skewedTrace(48 * 8, seed);
    std::mt19937 rng(seed);
    std::vector<int> perm{0, 1, 2, 3};
    std::shuffle(perm.begin(), perm.end(), rng);
    for (TokenRoute &r : trace.tokens)
      for (auto &layer : r.experts)
        for (int &e : layer)
          e = perm[e];
    BatchPlacer lina(f.layers, trace, nullptr, PlacementMode::Lina, 4, 2, c, 48,
                     1e-5);
    BatchPlacer base(f.layers, trace, nullptr, PlacementMode::Static, 4, 2, c,
                     48, 1e-5);
    for (int b = 0; b < 8; ++b) {
      std::vector<int> batch(48);
      std::iota(batch.begin(), batch.end(), 48 * b);
      PlacerStats s1, s2;
      std::vector<LayerTraffic> a = lina.route(batch, s1);
      std::vector<LayerTraffic> h = base.route(batch, s2);
      for (int l = 0; l < 2; ++l) {
        lina::ExpertCost cost = expertCost(f.layers[l], 4, c, 1e-5);
        double tl =
            trafficSeconds(a[l].rows, a[l].expertRows, 4, 4, cost, model, c);
        double ts =
            trafficSeconds(h[l].rows, h[l].expertRows, 4, 4, cost, model, c);
        EXPECT_LE(tl, ts * (1 + 1e-12))
            << "seed " << seed << " batch " << b << " layer " << l;
        // Every assignment once, to a device serving its expert.
        std::vector<int64_t> want(4, 0), got(4, 0);
        for (int tok : batch)
          for (int e : trace.tokens[tok].experts[l])
            ++want[e];
        for (int d = 0; d < 4; ++d)
          for (int e = 0; e < 4; ++e)
            got[e] += a[l].expertRows[d * 4 + e];
        EXPECT_EQ(got, want);
        ASSERT_EQ(a[l].dest.size(), 96u);
        size_t i = 0;
        for (int tok : batch)
          for (int e : trace.tokens[tok].experts[l]) {
            EXPECT_GT(a[l].expertRows[a[l].dest[i] * 4 + e], 0);
            ++i;
          }
      }
    }
  }
}

// How lina's planners judge a table: the estimate of lina's routing with
// every rank sending an even share, never above the home routing's.
TEST(InferStepTest, EstimateBatchIsLinasRoutingOfAnEvenBatch) {
  Fixture f;
  lina::ClusterSpec c = lina::ClusterSpec::a100Ib100();
  c.nodes = 2;
  c.gpusPerNode = 2;
  lina::CostModel model(c);
  lina::ExpertCost cost = expertCost(f.layers[0], 4, c, 1e-5);
  std::string error;
  LayerPlacement home = *lina::staticPlacement(4, 4, 2, error);
  LayerPlacement spread = *lina::linaPlacement({40, 4, 4, 4}, 4, 2, error);
  std::vector<int64_t> rows{40, 4, 4, 4};
  // The home routing of an even batch: rank s sends rows[e] / 4 to e.
  std::vector<int64_t> byRank(16, 0), served(16, 0);
  for (int s = 0; s < 4; ++s)
    for (int e = 0; e < 4; ++e)
      byRank[s * 4 + e] = rows[e] / 4;
  for (int e = 0; e < 4; ++e)
    served[e * 4 + e] = rows[e];
  double atHome = trafficSeconds(byRank, served, 4, 4, cost, model, c);
  EXPECT_DOUBLE_EQ(estimateBatch(home, rows, cost, model, c), atHome);
  EXPECT_LE(estimateBatch(spread, rows, cost, model, c), atHome);
  EXPECT_THROW(estimateBatch(home, {1, 2, 3}, cost, model, c), PlanError);
}

TEST(InferStepTest, RankStepsAreOnePlanWithEachRanksRows) {
  Fixture f;
  for (PlacementMode mode : {PlacementMode::Static, PlacementMode::Eplb,
                             PlacementMode::Lina, PlacementMode::Oracle}) {
    BatchPlacer placer(f.layers, f.trace, nullptr, mode, 4, 2,
                       lina::ClusterSpec::a100Ib100(), 16, 0);
    PlacerStats stats;
    std::vector<LayerTraffic> traffic = placer.route(f.batch, stats);
    std::string first;
    for (int rank = 0; rank < 4; ++rank) {
      RankStep st =
          buildRankStep(f.plan, f.layers, traffic, f.trace, f.batch, rank);
      // One SPMD plan: the same text on every rank, and a valid one.
      std::string text = writePlan(st.plan);
      if (rank == 0)
        first = text;
      EXPECT_EQ(text, first) << "rank " << rank;
      Plan valid;
      ASSERT_NO_THROW(valid = parsePlan(text, "step"));
      for (const auto &[id, bytes] : st.inputs)
        EXPECT_EQ(static_cast<int64_t>(bytes.size()),
                  valid.buffer(id).numBytes())
            << valid.buffer(id).name;
      // The gates take the trace's experts of this rank's 12 tokens.
      ASSERT_EQ(st.gateExperts.size(), 2u);
      for (int l = 0; l < 2; ++l) {
        ASSERT_EQ(st.gateExperts[l].size(), 16u * 2);
        for (int i = 0; i < 12; ++i)
          for (int j = 0; j < 2; ++j)
            EXPECT_EQ(st.gateExperts[l][i * 2 + j],
                      f.trace.tokens[rank * 12 + i].experts[l][j]);
      }
      // Each of this rank's 24 assignments has its own packed row; the 4
      // padding tokens share the spare one.
      for (const auto &[id, bytes] : st.inputs) {
        if (valid.buffer(id).name != "moe0.rows")
          continue;
        std::vector<int32_t> rows(bytes.size() / 4);
        std::memcpy(rows.data(), bytes.data(), bytes.size());
        std::vector<int32_t> real(rows.begin(), rows.begin() + 24);
        std::sort(real.begin(), real.end());
        for (int i = 0; i < 24; ++i)
          EXPECT_EQ(real[i], i);
        int32_t spare = rows[24];
        EXPECT_GE(spare, 24);
        for (size_t i = 24; i < rows.size(); ++i)
          EXPECT_EQ(rows[i], spare);
      }
    }
  }
}

TEST(InferStepTest, MismatchedTrafficIsAnError) {
  Fixture f;
  BatchPlacer placer(f.layers, f.trace, nullptr, PlacementMode::Static, 4, 2,
                     lina::ClusterSpec::a100Ib100(), 16, 0);
  PlacerStats stats;
  std::vector<LayerTraffic> traffic = placer.route(f.batch, stats);
  traffic.pop_back();
  EXPECT_THROW(buildStepPlan(f.plan, f.layers, traffic), PlanError);
  traffic = placer.route(f.batch, stats);
  traffic[1].rows.pop_back();
  EXPECT_THROW(buildStepPlan(f.plan, f.layers, traffic), PlanError);
}

} // namespace
