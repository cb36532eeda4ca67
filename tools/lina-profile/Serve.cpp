//===- Serve.cpp - Placement policies on a routing trace ------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "Serve.h"

#include "lina/Support/CheckedMath.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

using namespace lina;
using namespace lina::serve;

std::optional<ModelShape> lina::serve::modelShape(const std::string &name) {
  ModelShape m;
  m.name = name;
  if (name == "mixtral-8x7b") {
    // 32 query heads and 8 KV heads of 128.
    m.hidden = 4096;
    m.ffn = 14336;
    m.attentionParams = 4096 * (4096 + 1024 + 1024 + 4096);
    m.kvBytesPerToken = 2 * 8 * 128 * 2;
    return m;
  }
  if (name == "olmoe-1b-7b") {
    // 16 heads of 128, full multi-head attention.
    m.hidden = 2048;
    m.ffn = 1024;
    m.attentionParams = 4 * 2048 * 2048;
    m.kvBytesPerToken = 2 * 16 * 128 * 2;
    return m;
  }
  return std::nullopt;
}

namespace {

/// Nearest-rank percentile of sorted values.
double percentile(const std::vector<double> &sorted, double q) {
  size_t rank = static_cast<size_t>(std::ceil(q * sorted.size()));
  return sorted[std::min(sorted.size(), std::max<size_t>(rank, 1)) - 1];
}

struct PolicyResult {
  std::vector<double> batchSeconds;
  std::vector<double> moeSeconds; ///< all-to-alls + experts + moves
  double maxOverMean = 0, samples = 0, bytes = 0, phase2 = 0, predictive = 0;
};

} // namespace

bool lina::serve::runServe(const RoutingTrace &trace, const Profile &profile,
                           const ModelShape &model, const ClusterSpec &cluster,
                           const ServeOptions &o, std::string &error) {
  const int E = trace.numExperts, L = trace.numLayers, K = trace.topK;
  if (profile.numLayers != L || profile.numExperts != E || profile.topK != K) {
    error = "the profile (" + std::to_string(profile.numLayers) + " layers, " +
            std::to_string(profile.numExperts) + " experts, top-" +
            std::to_string(profile.topK) + ") does not match the trace (" +
            std::to_string(L) + " layers, " + std::to_string(E) +
            " experts, top-" + std::to_string(K) + ")";
    return false;
  }
  if (o.devices < 1 || o.batch < 1 || o.batches < 1) {
    error = "--devices, --batch and --batches must be positive";
    return false;
  }
  if (o.devices > cluster.numGpus()) {
    error = "--devices " + std::to_string(o.devices) + " exceeds the " +
            std::to_string(cluster.numGpus()) + " GPUs of cluster '" +
            cluster.name + "'";
    return false;
  }
  const int N = o.devices;
  const int C = o.slots > 0 ? o.slots : (E + N - 1) / N + 1;
  std::string shape = checkPlacementShape(E, N, C);
  if (!shape.empty()) {
    error = shape;
    return false;
  }
  CostModel costModel(cluster);
  // Per-row and per-expert costs of a SwiGLU expert (three H x F matrices).
  std::optional<int64_t> weightBytes =
      checkedProduct(std::initializer_list<int64_t>{3, model.hidden, model.ffn,
                                                    model.dtypeBytes});
  if (!weightBytes) {
    error = "the model's expert size overflows";
    return false;
  }
  ExpertCost cost;
  cost.weightBytes = static_cast<double>(*weightBytes);
  cost.flopsPerRow = 2.0 * 3 * model.hidden * model.ffn;
  cost.bytesPerRow = static_cast<double>((2 * model.hidden + 3 * model.ffn) *
                                         model.dtypeBytes);
  cost.rowBytes = static_cast<double>(model.hidden * model.dtypeBytes);
  // Attention runs data-parallel: each device has batch / N tokens.
  double tokensPerDevice = static_cast<double>(o.batch) / N;
  // Decode: every token reads its own sequence's KV cache. Prefill: the
  // batch is prompt tokens that share their sequences' KV, read once.
  double kvTokens = o.prefill ? tokensPerDevice : tokensPerDevice * o.context;
  cost.denseSeconds = costModel.computeTime(
      2.0 * model.attentionParams * tokensPerDevice +
          4.0 * tokensPerDevice * o.context * model.hidden,
      2.0 * model.attentionParams + kvTokens * model.kvBytesPerToken);
  bool oneNode = N <= cluster.gpusPerNode;
  cost.moveBandwidth = oneNode
                           ? cluster.intraNode.bandwidth
                           : cluster.interNode.bandwidth / cluster.gpusPerNode;
  cost.moveLatency =
      oneNode ? cluster.intraNode.latency : cluster.interNode.latency;
  cost.copyOpSeconds = copyOpSeconds(costModel, N);

  // The batches: tokens drawn uniformly (with replacement) from the trace.
  std::mt19937_64 rng(o.seed);
  std::vector<std::vector<int>> batches(o.batches);
  for (auto &b : batches)
    for (int t = 0; t < o.batch; ++t)
      b.push_back(static_cast<int>(rng() % trace.tokens.size()));

  std::printf("serve: model=%s cluster=%s devices=%d slots=%d batch=%d%s "
              "batches=%d window=%d expert_mb=%.1f dense_us=%.1f "
              "move_gbps=%.0f\n",
              model.name.c_str(), cluster.name.c_str(), N, C, o.batch,
              o.prefill ? " (prefill)" : "", o.batches, o.window,
              cost.weightBytes / 1e6, cost.denseSeconds * 1e6,
              cost.moveBandwidth * 8 / 1e9);
  double staticP95 = 0, staticMoeP95 = 0;
  std::vector<int> history(L);
  for (PlacementPolicy policy : o.policies) {
    PlannerOptions po;
    po.policy = policy;
    po.numExperts = E;
    po.numDevices = N;
    po.slotsPerDevice = C;
    po.replicaBudget = o.replicaBudget;
    po.window = o.window;
    po.batchRows = static_cast<double>(o.batch) * K;
    std::vector<LayerPlanner> planners;
    for (int l = 0; l < L; ++l) {
      std::optional<LayerPlanner> p = LayerPlanner::create(
          po, costModel, cost, profile.popularity[l], error);
      if (!p)
        return false;
      planners.push_back(std::move(*p));
    }
    PolicyResult res;
    std::vector<int64_t> rows(E);
    std::vector<double> predicted(E);
    for (const auto &batch : batches) {
      double seconds = 0, moe = 0;
      for (int l = 0; l < L; ++l) {
        std::fill(rows.begin(), rows.end(), 0);
        std::fill(predicted.begin(), predicted.end(), 0.0);
        for (int t : batch) {
          const TokenRoute &route = trace.tokens[t];
          for (int e : route.experts[l])
            ++rows[e];
          for (int j = 0; j < l; ++j)
            history[j] = route.top1(j);
          profile.addExpectedLoad(l, history.data(), predicted.data());
        }
        BatchOutcome out = planners[l].serve(rows, &predicted);
        seconds += out.time.total();
        moe += out.time.total() - out.time.dense;
        if (out.meanRows > 0) {
          res.maxOverMean += static_cast<double>(out.maxRows) / out.meanRows;
          res.samples += 1;
        }
        res.bytes += out.bytesMoved;
        res.phase2 += out.phase2;
        res.predictive += out.predictiveMove;
      }
      res.batchSeconds.push_back(seconds);
      res.moeSeconds.push_back(moe);
    }
    std::vector<double> sorted = res.batchSeconds;
    std::sort(sorted.begin(), sorted.end());
    double p50 = percentile(sorted, 0.50), p95 = percentile(sorted, 0.95),
           p99 = percentile(sorted, 0.99);
    std::vector<double> moeSorted = res.moeSeconds;
    std::sort(moeSorted.begin(), moeSorted.end());
    double moeP95 = percentile(moeSorted, 0.95);
    if (policy == PlacementPolicy::Static) {
      staticP95 = p95;
      staticMoeP95 = moeP95;
    }
    double pairs = static_cast<double>(o.batches) * L;
    std::printf("serve: policy=%s p50_ms=%.4f p95_ms=%.4f p99_ms=%.4f "
                "max_over_mean_rows=%.3f bytes_moved_per_batch=%.4g "
                "phase2_rate=%.3f phase1_rate=%.3f moe_p95_ms=%.4f",
                toString(policy), p50 * 1e3, p95 * 1e3, p99 * 1e3,
                res.samples > 0 ? res.maxOverMean / res.samples : 1.0,
                res.bytes / o.batches, res.phase2 / pairs,
                res.predictive / pairs, moeP95 * 1e3);
    if (staticP95 > 0)
      std::printf(" p95_speedup=%.3f moe_p95_speedup=%.3f", staticP95 / p95,
                  staticMoeP95 / moeP95);
    std::printf("\n");
  }
  return true;
}
