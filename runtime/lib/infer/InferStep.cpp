//===- InferStep.cpp - One inference batch as a scheduler step ------------===//
//
// Part of the Lina project.
//
// The MoE chains of an inference plan, the per-batch placement of every
// rank (BatchPlacer) and the step plan of a batch (buildStepPlan); see
// InferStep.h and docs/INFERENCE.md.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/InferStep.h"

#include "lina/Support/CheckedMath.h"
#include "lina/Support/Profile.h"
#include "lina/Support/RoutingTrace.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>

using namespace lina::rt;
using namespace lina::rt::infer;
using lina::LayerPlacement;
using lina::RoutingTrace;

//===----------------------------------------------------------------------===//
// The MoE chains of the plan
//===----------------------------------------------------------------------===//

std::map<int, LayerPlacement>
lina::rt::infer::placementTables(const Plan &plan) {
  std::map<int, LayerPlacement> tables;
  for (const Op &op : plan.ops) {
    if (!op.placement)
      continue;
    const PlacementTable &p = *op.placement;
    LayerPlacement t;
    t.numDevices = p.numDevices;
    t.slotsPerDevice = p.slotsPerDevice;
    for (size_t e = 0; e + 1 < p.offsets.size(); ++e) {
      t.replicas.emplace_back();
      for (int64_t i = p.offsets[e]; i < p.offsets[e + 1]; ++i)
        t.replicas.back().push_back({p.devices[i], p.shares[i]});
    }
    std::string problem = t.verify();
    if (!problem.empty())
      throw PlanError(op.describe() + ": placement: " + problem);
    tables[op.id] = std::move(t);
  }
  return tables;
}

std::vector<MoeLayer>
lina::rt::infer::findMoeLayers(const Plan &plan, int worldSize,
                               const std::map<int, LayerPlacement> &tables) {
  std::vector<MoeLayer> layers;
  auto consumer = [&](OpKind kind, int buffer, int index) {
    for (const Op &op : plan.ops)
      if (op.kind == kind && static_cast<int>(op.inputs.size()) > index &&
          op.inputs[index] == buffer)
        return op.id;
    return -1;
  };
  std::vector<char> inChain(plan.ops.size(), 0);
  for (const Op &gate : plan.ops) {
    if (gate.kind != OpKind::Gate)
      continue;
    auto bad = [&](const std::string &what) {
      return PlanError(gate.describe() +
                       ": --mode infer needs each MoE layer "
                       "as the chain gate -> dispatch -> all_to_all -> "
                       "expert_ffn -> all_to_all -> combine (" +
                       what + ")");
    };
    MoeLayer m;
    m.gate = gate.id;
    m.dispatch = consumer(OpKind::Dispatch, gate.outputs[0], 1);
    if (m.dispatch < 0)
      throw bad("no dispatch of its expert ids");
    m.a2aIn = consumer(OpKind::AllToAll, plan.ops[m.dispatch].outputs[0], 0);
    if (m.a2aIn < 0)
      throw bad("no all_to_all of the dispatched tokens; pipelined plans are "
                "not supported");
    m.ffn = consumer(OpKind::ExpertFfn, plan.ops[m.a2aIn].outputs[0], 0);
    if (m.ffn < 0)
      throw bad("no expert_ffn after the all_to_all");
    m.a2aOut = consumer(OpKind::AllToAll, plan.ops[m.ffn].outputs[0], 0);
    if (m.a2aOut < 0)
      throw bad("no all_to_all of the expert outputs");
    m.combine = consumer(OpKind::Combine, plan.ops[m.a2aOut].outputs[0], 0);
    if (m.combine < 0 || plan.ops[m.combine].inputs[1] != gate.outputs[0] ||
        plan.ops[m.combine].inputs[2] != gate.outputs[1])
      throw bad("no combine with this gate's ids and weights");
    const Op &ffn = plan.ops[m.ffn];
    const Group &group = plan.groups.at(plan.ops[m.a2aIn].group);
    if (group.size() != worldSize)
      throw bad("its all_to_all group '" + group.name + "' has " +
                std::to_string(group.size()) +
                " ranks; inference places "
                "experts over all " +
                std::to_string(worldSize) + " ranks");
    for (size_t i = 0; i < group.members[0].size(); ++i)
      if (group.members[0][i] != static_cast<int>(i))
        throw bad("group '" + group.name + "' must list the ranks in order");
    m.x = gate.inputs[0];
    m.wg = gate.inputs[1];
    m.w1 = ffn.inputs[1];
    m.w2 = ffn.inputs[2];
    m.out = plan.ops[m.combine].outputs[0];
    m.act = ffn.activation;
    m.tokens = plan.buffers[m.x].shape[0];
    m.hidden = plan.buffers[m.x].shape[1];
    m.experts = gate.numExperts;
    m.topK = gate.topK;
    m.localExperts = plan.buffers[m.w1].shape[0];
    m.ffnDim = plan.buffers[m.w1].shape[2];
    if (m.localExperts * worldSize != m.experts)
      throw bad(std::to_string(m.localExperts) + " local experts x " +
                std::to_string(worldSize) +
                " ranks != " + std::to_string(m.experts) + " experts");
    if (plan.buffers[m.w1].shape[1] != m.hidden)
      throw bad("expert_ffn hidden size differs from the gate's input");
    std::optional<int64_t> bytes = lina::checkedProduct(
        {2, m.hidden, m.ffnDim, dtypeBytes(plan.buffers[m.w1].dtype)});
    if (!bytes)
      throw bad("the weights of one expert exceed 2^63 bytes");
    m.expertBytes = *bytes;
    auto table = tables.find(gate.id);
    if (table != tables.end()) {
      if (table->second.numExperts() != m.experts ||
          table->second.numDevices != worldSize)
        throw PlanError(
            gate.describe() + ": its placement table is for " +
            std::to_string(table->second.numExperts()) + " experts on " +
            std::to_string(table->second.numDevices) + " devices, not " +
            std::to_string(m.experts) + " on " + std::to_string(worldSize));
      m.table = table->second;
    }
    for (int id : {m.gate, m.dispatch, m.a2aIn, m.ffn, m.a2aOut, m.combine})
      inChain[id] = 1;
    layers.push_back(m);
  }
  for (const Op &op : plan.ops)
    if (!inChain[op.id] && op.kind != OpKind::Dense && op.kind != OpKind::Add &&
        op.kind != OpKind::Copy)
      throw PlanError(op.describe() + ": --mode infer runs dense, add and "
                                      "copy ops besides the MoE chains");
  if (layers.empty())
    throw PlanError("the plan has no MoE layer (lina.gate): nothing to place");
  return layers;
}

//===----------------------------------------------------------------------===//
// BatchPlacer
//===----------------------------------------------------------------------===//

lina::ExpertCost lina::rt::infer::expertCost(const MoeLayer &m, int ranks,
                                             const lina::ClusterSpec &cluster,
                                             double denseSeconds) {
  const bool oneNode = ranks <= cluster.gpusPerNode;
  const double hf = static_cast<double>(m.hidden) * m.ffnDim;
  const double dtype = hf > 0 ? m.expertBytes / (2 * hf) : 0;
  lina::ExpertCost cost;
  cost.weightBytes = static_cast<double>(m.expertBytes);
  cost.flopsPerRow = 2.0 * 2 * hf;
  cost.bytesPerRow = (2.0 * m.hidden + 2.0 * m.ffnDim) * dtype;
  cost.rowBytes = static_cast<double>(m.hidden) * dtype;
  cost.denseSeconds = denseSeconds;
  cost.moveBandwidth = oneNode
                           ? cluster.intraNode.bandwidth
                           : cluster.interNode.bandwidth / cluster.gpusPerNode;
  cost.moveLatency =
      oneNode ? cluster.intraNode.latency : cluster.interNode.latency;
  cost.copyOpSeconds = lina::copyOpSeconds(lina::CostModel(cluster), ranks);
  return cost;
}

BatchPlacer::BatchPlacer(const std::vector<MoeLayer> &layers,
                         const RoutingTrace &trace, const Profile *profile,
                         PlacementMode mode, int ranks, int slots,
                         const lina::ClusterSpec &cluster, double batchTokens,
                         double denseSeconds)
    : layers(layers), trace(trace), profile(profile), mode(mode), ranks(ranks),
      slots(slots), cluster(cluster) {
  current.resize(layers.size());
  estimate.resize(layers.size());
  held.resize(layers.size());
  for (size_t l = 0; l < layers.size(); ++l)
    held[l].assign(ranks, std::vector<char>(layers[l].experts, 0));
  if (mode != PlacementMode::Lina && mode != PlacementMode::Eplb)
    return;
  // One planner per layer (lina: cost-aware; EPLB-like: the same replicas
  // from the long-run popularity, re-planned every window, fixed shares) on the
  // cluster's cost model, with the expert costs of the layer's two matrices (H
  // x F and F x H).
  model = std::make_unique<lina::CostModel>(cluster);
  for (size_t l = 0; l < layers.size(); ++l) {
    const MoeLayer &m = layers[l];
    lina::ExpertCost cost = expertCost(m, ranks, cluster, denseSeconds);
    lina::PlannerOptions po;
    po.policy = mode == PlacementMode::Lina ? lina::PlacementPolicy::Lina
                                            : lina::PlacementPolicy::EplbLike;
    po.numExperts = static_cast<int>(m.experts);
    po.numDevices = ranks;
    po.slotsPerDevice = slots;
    po.batchRows = batchTokens * m.topK;
    if (mode == PlacementMode::Lina)
      po.estimate = [cost, c = cluster,
                     m = model.get()](const LayerPlacement &p,
                                      const std::vector<int64_t> &rows) {
        return estimateBatch(p, rows, cost, *m, c);
      };
    std::vector<double> prior(m.experts, 1.0);
    if (profile)
      prior = profile->popularity[l];
    std::string error;
    std::optional<lina::LayerPlanner> planner =
        lina::LayerPlanner::create(po, *model, cost, prior, error);
    if (!planner)
      throw PlanError("MoE layer " + std::to_string(l) + ": " + error);
    planners.push_back(std::move(*planner));
    costs.push_back(cost);
  }
}

namespace {
/// A placement or a PlanError naming the layer.
LayerPlacement orThrow(std::optional<LayerPlacement> p, int l,
                       const std::string &error) {
  if (!p)
    throw PlanError("MoE layer " + std::to_string(l) + ": " + error);
  return std::move(*p);
}
} // namespace

/// The placement of layer l before its gate (lina: the planner's).
LayerPlacement BatchPlacer::place(int l, const std::vector<int> &tokens) {
  const MoeLayer &m = layers[l];
  int E = static_cast<int>(m.experts);
  std::string error;
  switch (mode) {
  case PlacementMode::Static:
    return orThrow(lina::staticPlacement(E, ranks, slots, error), l, error);
  case PlacementMode::Oracle: {
    std::vector<double> loads(E, 0.0);
    for (int t : tokens)
      for (int e : trace.tokens[t].experts[l])
        loads[e] += 1;
    return orThrow(lina::linaPlacement(loads, ranks, slots, error), l, error);
  }
  case PlacementMode::Eplb:
  case PlacementMode::Lina:
    break;
  }
  return planners[l].placement();
}

/// Puts placement `p` in use for layer l: every replica on a device that is
/// neither the expert's home nor holds a copy receives the expert's
/// weights from the home (counted in `moves`, home x device); copies no
/// longer placed are dropped.
void BatchPlacer::move(int l, const LayerPlacement &p,
                       std::vector<int64_t> &moves, PlacerStats &stats) {
  const MoeLayer &m = layers[l];
  std::vector<std::vector<char>> next(ranks, std::vector<char>(m.experts, 0));
  for (int e = 0; e < m.experts; ++e)
    for (const lina::Replica &r : p.replicas[e]) {
      int home = static_cast<int>(e / m.localExperts);
      if (r.device == home)
        continue;
      next[r.device][e] = 1;
      if (held[l][r.device][e])
        continue;
      ++moves[static_cast<size_t>(home) * ranks + r.device];
      stats.bytesMoved += static_cast<double>(m.expertBytes);
    }
  held[l] = std::move(next);
  current[l] = p;
}

namespace {
/// Where each rank's rows of each expert go: alloc[s * E + e] lists
/// (device, rows) pairs; expertRows[d * E + e] the rows device d serves.
struct SourceRoute {
  SourceRoute() = default;
  SourceRoute(int N, int E)
      : alloc(static_cast<size_t>(N) * E),
        expertRows(static_cast<size_t>(N) * E, 0) {}
  std::vector<std::vector<std::pair<int, int64_t>>> alloc;
  std::vector<int64_t> expertRows;
};

/// The rows of `a` (per replica) drawn from the ranks (`fromRank`, N x E)
/// nearest first: a rank's rows go to a replica on its own device, then on
/// its node, then anywhere, so that a split replica takes the rows that
/// cost the least to send.
SourceRoute mapSources(const LayerPlacement &p, const lina::RowAssignment &a,
                       const std::vector<int64_t> &fromRank, int perNode) {
  const int N = p.numDevices, E = p.numExperts();
  const int g = std::max(1, perNode);
  SourceRoute r(N, E);
  for (int e = 0; e < E; ++e) {
    const auto &reps = p.replicas[e];
    std::vector<int64_t> cap(a.rows[e]);
    std::vector<int64_t> need(N);
    for (int s = 0; s < N; ++s)
      need[s] = fromRank[static_cast<size_t>(s) * E + e];
    for (int pass = 0; pass < 3; ++pass)
      for (int s = 0; s < N; ++s)
        for (size_t i = 0; i < reps.size() && need[s] > 0; ++i) {
          int d = reps[i].device;
          bool near = pass == 0   ? d == s
                      : pass == 1 ? d / g == s / g && d != s
                                  : d / g != s / g;
          int64_t take = near ? std::min(need[s], cap[i]) : 0;
          if (take <= 0)
            continue;
          need[s] -= take;
          cap[i] -= take;
          r.alloc[static_cast<size_t>(s) * E + e].push_back({d, take});
          r.expertRows[static_cast<size_t>(d) * E + e] += take;
        }
  }
  return r;
}

/// Each rank's rows of an expert to the replica on its own device, else to
/// one of those on its node, else to one of all (ranks spread over them in
/// turn): the fewest bytes across the node interfaces and the fewest peers
/// per rank, whatever the load.
SourceRoute nearestSources(const LayerPlacement &p,
                           const std::vector<int64_t> &fromRank, int perNode) {
  const int N = p.numDevices, E = p.numExperts();
  const int g = std::max(1, perNode);
  SourceRoute r(N, E);
  for (int e = 0; e < E; ++e)
    for (int s = 0; s < N; ++s) {
      int64_t rows = fromRank[static_cast<size_t>(s) * E + e];
      if (rows == 0)
        continue;
      std::vector<int> own, node, all;
      for (const lina::Replica &rep : p.replicas[e]) {
        all.push_back(rep.device);
        if (rep.device == s)
          own.push_back(rep.device);
        else if (rep.device / g == s / g)
          node.push_back(rep.device);
      }
      const std::vector<int> &to = !own.empty()    ? own
                                   : !node.empty() ? node
                                                   : all;
      const int d = to[static_cast<size_t>(s) % to.size()];
      r.alloc[static_cast<size_t>(s) * E + e].push_back({d, rows});
      r.expertRows[static_cast<size_t>(d) * E + e] += rows;
    }
  return r;
}

/// The rank-to-device rows (N x N) of `r`.
std::vector<int64_t> rankRows(const SourceRoute &r, int N, int E) {
  std::vector<int64_t> rows(static_cast<size_t>(N) * N, 0);
  for (int s = 0; s < N; ++s)
    for (int e = 0; e < E; ++e)
      for (const auto &[d, n] : r.alloc[static_cast<size_t>(s) * E + e])
        rows[static_cast<size_t>(s) * N + d] += n;
  return rows;
}
} // namespace

double lina::rt::infer::trafficSeconds(const std::vector<int64_t> &rows,
                                       const std::vector<int64_t> &expertRows,
                                       int N, int E,
                                       const lina::ExpertCost &cost,
                                       const lina::CostModel &model,
                                       const lina::ClusterSpec &c) {
  if (N < 1 || E < 1 || rows.size() != static_cast<size_t>(N) * N ||
      expertRows.size() != static_cast<size_t>(N) * E)
    throw PlanError("trafficSeconds: the traffic is not " + std::to_string(N) +
                    " x " + std::to_string(N) + " ranks and " +
                    std::to_string(N) + " x " + std::to_string(E) +
                    " expert rows");
  const int g = std::max(1, c.gpusPerNode);
  const int nodes = (N + g - 1) / g;
  std::vector<double> up(N, 0.0), down(N, 0.0), nicUp(nodes, 0.0),
      nicDown(nodes, 0.0), work(N, 0.0);
  int most = 0;
  bool crosses = false;
  for (int s = 0; s < N; ++s) {
    int peers = 0;
    for (int d = 0; d < N; ++d)
      if (d != s && (rows[static_cast<size_t>(s) * N + d] > 0 ||
                     rows[static_cast<size_t>(d) * N + s] > 0)) {
        ++peers;
        crosses |= s / g != d / g;
      }
    most = std::max(most, peers);
  }
  for (int s = 0; s < N; ++s)
    for (int d = 0; d < N; ++d) {
      if (d == s || rows[static_cast<size_t>(s) * N + d] <= 0)
        continue;
      double b = static_cast<double>(rows[static_cast<size_t>(s) * N + d]) *
                 cost.rowBytes;
      if (d / g == s / g) {
        up[s] += b;
        down[d] += b;
      } else {
        nicUp[s / g] += b;
        nicDown[d / g] += b;
      }
    }
  double link = 0, nic = 0;
  for (int d = 0; d < N; ++d)
    link = std::max({link, up[d], down[d]});
  for (int k = 0; k < nodes; ++k)
    nic = std::max({nic, nicUp[k], nicDown[k]});
  double net = c.intraNode.bandwidth > 0 ? link / c.intraNode.bandwidth : 0;
  if (nodes > 1 && c.interNode.bandwidth > 0)
    net = std::max(net, nic / c.interNode.bandwidth);
  // As the simulator: the launch and a link latency per peer of the
  // busiest rank (the ranks it has rows for or from).
  net += c.launchLatency +
         most * (crosses ? c.interNode.latency : c.intraNode.latency);
  // Two GEMMs and the activation per expert with rows, as the runtime
  // costs expert_ffn.
  constexpr int kKernelsPerExpert = 3;
  for (int d = 0; d < N; ++d)
    for (int e = 0; e < E; ++e)
      if (int64_t r = expertRows[static_cast<size_t>(d) * E + e])
        work[d] += model.computeTime(
            static_cast<double>(r) * cost.flopsPerRow,
            cost.weightBytes + static_cast<double>(r) * cost.bytesPerRow,
            lina::KernelClass::Gemm, kKernelsPerExpert);
  return 2 * net + *std::max_element(work.begin(), work.end());
}

namespace {
/// Lina's routing of one batch and layer on `place`: of the splits that
/// move no weights -- every expert's home (static expert parallelism),
/// the balanced split and the shares' split (each rank's rows to the
/// replicas nearest it), and each rank's rows to a replica on its own
/// device or node -- the fastest by trafficSeconds (so at 32 GPUs a node's
/// interface, which the per-device rows do not show, counts too). Another
/// split must beat the home by more than kRouteMargin, the estimate's
/// resolution against the simulator's max-min sharing, or the batch keeps
/// static's routing. Returns the route and its estimate.
constexpr double kRouteMargin = 0.01;

std::pair<SourceRoute, double>
fastestRoute(const LayerPlacement &place, const std::vector<int64_t> &rows,
             const std::vector<int64_t> &fromRank, const lina::ExpertCost &cost,
             const lina::CostModel &model, const lina::ClusterSpec &cluster) {
  const int N = place.numDevices, E = place.numExperts();
  auto seconds = [&](const SourceRoute &c) {
    return trafficSeconds(rankRows(c, N, E), c.expertRows, N, E, cost, model,
                          cluster);
  };
  SourceRoute chosen;
  // best: the chosen split's estimate; bar: what another must beat.
  double best = std::numeric_limits<double>::infinity(), bar = best;
  if (std::optional<lina::RowAssignment> atHome = lina::homeRows(place, rows)) {
    chosen = mapSources(place, *atHome, fromRank, cluster.gpusPerNode);
    best = seconds(chosen);
    bar = best * (1 - kRouteMargin);
  }
  for (SourceRoute c : {mapSources(place, lina::balanceRows(place, rows),
                                   fromRank, cluster.gpusPerNode),
                        mapSources(place, lina::splitByShares(place, rows),
                                   fromRank, cluster.gpusPerNode),
                        nearestSources(place, fromRank, cluster.gpusPerNode)}) {
    double t = seconds(c);
    if (chosen.alloc.empty() || t < bar) {
      best = bar = t;
      chosen = std::move(c);
    }
  }
  return {std::move(chosen), best};
}
} // namespace

double lina::rt::infer::estimateBatch(const LayerPlacement &place,
                                      const std::vector<int64_t> &rows,
                                      const lina::ExpertCost &cost,
                                      const lina::CostModel &model,
                                      const lina::ClusterSpec &cluster) {
  const int N = place.numDevices, E = place.numExperts();
  if (static_cast<int>(rows.size()) != E)
    throw PlanError("estimateBatch: rows for " + std::to_string(rows.size()) +
                    " experts, the placement has " + std::to_string(E));
  // Every rank sends an even share of each expert's rows (the tokens are
  // dealt to the ranks in blocks); the remainders go round the ranks.
  std::vector<int64_t> fromRank(static_cast<size_t>(N) * E, 0);
  for (int e = 0; e < E; ++e)
    for (int s = 0; s < N; ++s)
      fromRank[static_cast<size_t>(s) * E + e] =
          rows[e] / N + ((s - e % N + N) % N < rows[e] % N ? 1 : 0);
  return fastestRoute(place, rows, fromRank, cost, model, cluster).second;
}

std::vector<LayerTraffic> BatchPlacer::route(const std::vector<int> &tokens,
                                             PlacerStats &stats) {
  const int N = ranks;
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t per = (n + N - 1) / N;
  auto rankOf = [&](int64_t i) { return static_cast<int>(i / per); };
  std::vector<LayerTraffic> out;
  for (size_t li = 0; li < layers.size(); ++li) {
    const int l = static_cast<int>(li);
    const MoeLayer &m = layers[l];
    const int E = static_cast<int>(m.experts);
    LayerTraffic t;
    t.ranks = N;
    t.experts = E;
    t.rows.assign(static_cast<size_t>(N) * N, 0);
    t.phase1.assign(static_cast<size_t>(N) * N, 0);
    t.phase2.assign(static_cast<size_t>(N) * N, 0);

    auto offHome = [&](const LayerPlacement &p) {
      std::vector<std::pair<int, int>> used;
      for (int e = 0; e < E; ++e)
        for (const lina::Replica &r : p.replicas[e])
          if (r.device != e / m.localExperts)
            used.push_back({e, r.device});
      return used;
    };

    // The rows of each expert from each rank, and of each expert.
    std::vector<int64_t> fromRank(static_cast<size_t>(N) * E, 0), rows(E, 0);
    for (int64_t i = 0; i < n; ++i)
      for (int e : trace.tokens[tokens[i]].experts[l]) {
        ++fromRank[static_cast<size_t>(rankOf(i)) * E + e];
        ++rows[e];
      }
    double total = 0;
    std::vector<double> loads(E);
    for (int e = 0; e < E; ++e)
      total += loads[e] = static_cast<double>(rows[e]);

    if (mode == PlacementMode::Static || mode == PlacementMode::Oracle) {
      move(l, place(l, tokens), t.phase1, stats);
      t.used1 = offHome(current[l]);
    } else {
      // The profile's path prediction of this batch's rows (phase 1).
      if (profile && mode == PlacementMode::Lina) {
        std::vector<double> est(E, 0.0);
        std::vector<int> history(l);
        for (int tok : tokens) {
          for (int i = 0; i < l; ++i)
            history[i] = trace.tokens[tok].top1(i);
          profile->addExpectedLoad(l, history.data(), est.data());
          if (l >= 1) {
            stats.predicted += 1;
            stats.predictedRight += profile->predictTop1(l, history.data()) ==
                                    trace.tokens[tok].top1(l);
          }
        }
        estimate[l] = est;
        if (total > 0) {
          double err = 0;
          for (int e = 0; e < E; ++e)
            err += std::fabs(est[e] - loads[e]);
          stats.loadError += err / total;
          stats.loadErrorSamples += 1;
        }
      }
      // The planner serves the batch; the devices copy the experts they
      // newly hold. Without a phase-2 move they were copied before the
      // gate (background or predictive copies, finished by this batch);
      // with one, every new copy of this batch is counted after the gate,
      // on the critical path (an upper bound).
      const LayerPlacement before = planners[l].placement();
      lina::BatchOutcome outcome = planners[l].serve(
          rows,
          profile && mode == PlacementMode::Lina ? &estimate[l] : nullptr);
      const LayerPlacement &after = planners[l].placement();
      t.background.assign(static_cast<size_t>(N) * N, 0.0);
      for (const lina::BatchOutcome::Copy &c : outcome.copies)
        t.background[static_cast<size_t>(c.expert / m.localExperts) * N +
                     c.device] += c.bytes;
      if (!outcome.phase2) {
        move(l, after, t.phase1, stats);
        t.used1 = offHome(after);
      } else {
        move(l, before, t.phase1, stats);
        t.used1 = offHome(before);
        double moved = stats.bytesMoved;
        move(l, after, t.phase2, stats);
        if (stats.bytesMoved > moved)
          stats.phase2 += 1;
        for (const std::pair<int, int> &r : offHome(after))
          if (!std::count(t.used1.begin(), t.used1.end(), r))
            t.used2.push_back(r);
      }
    }
    stats.layerBatches += 1;
    const LayerPlacement &place = current[l];

    SourceRoute chosen;
    if (mode != PlacementMode::Lina) {
      // Static (the home), oracle (its replicas) and EPLB-like (fixed
      // shares) split by the shares, each rank's rows to its nearest
      // replicas.
      chosen = mapSources(place, lina::splitByShares(place, rows), fromRank,
                          cluster.gpusPerNode);
    } else {
      chosen =
          fastestRoute(place, rows, fromRank, costs[l], *model, cluster).first;
    }
    if (total > 0) {
      int64_t most = 0;
      for (int d = 0; d < N; ++d) {
        int64_t r = 0;
        for (int e = 0; e < E; ++e)
          r += chosen.expertRows[static_cast<size_t>(d) * E + e];
        most = std::max(most, r);
      }
      stats.imbalance += static_cast<double>(most) * N / total;
    }
    t.expertRows = chosen.expertRows;
    // Each token takes the next row of its (rank, expert) allocation.
    std::vector<size_t> cursor(chosen.alloc.size(), 0);
    for (int64_t i = 0; i < n; ++i)
      for (int e : trace.tokens[tokens[i]].experts[l]) {
        auto &a = chosen.alloc[static_cast<size_t>(rankOf(i)) * E + e];
        size_t &c = cursor[static_cast<size_t>(rankOf(i)) * E + e];
        while (a[c].second == 0)
          ++c;
        --a[c].second;
        int d = a[c].first;
        t.dest.push_back(d);
        ++t.rows[static_cast<size_t>(rankOf(i)) * N + d];
      }
    out.push_back(std::move(t));
  }
  return out;
}

//===----------------------------------------------------------------------===//
// The step plan
//===----------------------------------------------------------------------===//

namespace {

int64_t ceilDiv(int64_t a, int64_t b) { return b > 0 ? (a + b - 1) / b : 0; }

/// The most any rank sends (rows of `m`, n x n by sender) and the most any
/// rank receives.
std::pair<int64_t, int64_t> extremes(const std::vector<int64_t> &m, int64_t n) {
  int64_t sent = 0, received = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t s = 0, r = 0;
    for (int64_t j = 0; j < n; ++j) {
      s += m[i * n + j];
      r += m[j * n + i];
    }
    sent = std::max(sent, s);
    received = std::max(received, r);
  }
  return {sent, received};
}

/// Re-emits the ops of `plan` in order with `emit`: an op outside the MoE
/// chains as it is (its deps renamed through `newId`, which it extends),
/// and at the gate of MoE layer l, `atGate(l)`, which emits that layer's
/// chain (its other ops are skipped here).
template <typename Emit, typename AtGate>
void rewriteChains(const Plan &plan, const std::vector<MoeLayer> &layers,
                   std::vector<int> &newId, Emit emit, AtGate atGate) {
  std::vector<int> layerOf(plan.ops.size(), -1);
  for (size_t l = 0; l < layers.size(); ++l)
    for (int id : {layers[l].gate, layers[l].dispatch, layers[l].a2aIn,
                   layers[l].ffn, layers[l].a2aOut, layers[l].combine})
      layerOf[id] = static_cast<int>(l);
  for (const Op &op : plan.ops) {
    int l = layerOf[op.id];
    if (l < 0) {
      Op same = op;
      for (int &d : same.deps)
        d = newId[d];
      newId[op.id] = emit(std::move(same));
    } else if (op.id == layers[l].gate) {
      atGate(l);
    }
  }
}

/// Builds the step plan: appends buffers to a copy of the plan's and
/// re-emits its ops with the MoE chains replaced.
class StepBuilder {
public:
  StepBuilder(const Plan &plan, const std::vector<MoeLayer> &layers,
              const std::vector<LayerTraffic> &traffic)
      : plan(plan), layers(layers), traffic(traffic) {}

  Plan build();

private:
  /// A new buffer; a view of `base` when base >= 0.
  int buffer(const std::string &name, DType dtype, std::vector<int64_t> shape,
             Role role, int base = -1) {
    Buffer b;
    b.id = static_cast<int>(step.buffers.size());
    b.name = name;
    b.dtype = dtype;
    b.shape = std::move(shape);
    b.role = role;
    b.init =
        role == Role::Param || role == Role::Input ? Init::Random : Init::None;
    b.viewBase = base;
    b.numElements(); // throws PlanError on overflow
    step.buffers.push_back(std::move(b));
    return step.buffers.back().id;
  }
  int emit(Op op) {
    op.id = static_cast<int>(step.ops.size());
    step.ops.push_back(std::move(op));
    return step.ops.back().id;
  }
  /// An all_to_all_v of `data` into `out` with count buffers and the rows
  /// of `rows` (n x n by sender).
  Op allToAllV(int l, const std::string &name, int data, int out,
               std::vector<int64_t> rows) {
    const Op &a2a = plan.ops[layers[l].a2aIn];
    int64_t n = static_cast<int64_t>(plan.groups.at(a2a.group).size());
    Op op;
    op.kind = OpKind::AllToAllV;
    op.inputs = {data,
                 buffer(name + ".send_counts", DType::I64, {n}, Role::Input),
                 buffer(name + ".recv_counts", DType::I64, {n}, Role::Input)};
    op.outputs = {out};
    op.group = a2a.group;
    op.sendRows = std::move(rows);
    return op;
  }
  /// The phase-1 or phase-2 weight moves of layer l (one row per expert),
  /// or -1 when nothing moves.
  int moves(int l, const std::vector<int64_t> &experts, Priority priority,
            const char *phase);
  /// The copies of layer l in flight in this batch (LayerTraffic::
  /// background, rounded up to 1/64 of an expert per pair), or -1.
  int background(int l);
  void emitLayer(int l);

  const Plan &plan;
  const std::vector<MoeLayer> &layers;
  const std::vector<LayerTraffic> &traffic;
  Plan step;
  std::vector<int> newId;  ///< the plan's op id -> the step's op for it
  std::vector<int> phase1; ///< per layer: the phase-1 move op, or -1
};

int StepBuilder::background(int l) {
  const MoeLayer &m = layers[l];
  const std::vector<double> &bytes = traffic[l].background;
  DType dtype = plan.buffers[m.w1].dtype;
  constexpr int64_t kSlices = 64;
  int64_t row =
      std::max<int64_t>(1, ceilDiv(m.expertBytes / dtypeBytes(dtype), kSlices));
  double rowBytes = static_cast<double>(row) * dtypeBytes(dtype);
  std::vector<int64_t> rows(bytes.size(), 0);
  for (size_t i = 0; i < bytes.size(); ++i)
    rows[i] = static_cast<int64_t>(std::ceil(bytes[i] / rowBytes));
  int64_t n = traffic[l].ranks;
  auto [sent, received] = extremes(rows, n);
  if (sent == 0)
    return -1;
  std::string name = "moe" + std::to_string(l) + ".background_copies";
  int in = buffer(name + ".send", dtype, {sent, row}, Role::Param);
  int out = buffer(name + ".recv", dtype, {received, row}, Role::Temp);
  Op op = allToAllV(l, name, in, out, rows);
  op.priority = Priority::Low;
  op.loc = "MoE layer " + std::to_string(l) + " background weight copies";
  return emit(std::move(op));
}

int StepBuilder::moves(int l, const std::vector<int64_t> &experts,
                       Priority priority, const char *phase) {
  const MoeLayer &m = layers[l];
  int64_t n = traffic[l].ranks;
  auto [sent, received] = extremes(experts, n);
  if (sent == 0)
    return -1;
  DType dtype = plan.buffers[m.w1].dtype;
  int64_t row = m.expertBytes / dtypeBytes(dtype); // w1 and w2 of an expert
  std::string name = "moe" + std::to_string(l) + "." + phase + "_moves";
  int in = buffer(name + ".send", dtype, {sent, row}, Role::Param);
  int out = buffer(name + ".recv", dtype, {received, row}, Role::Temp);
  Op op = allToAllV(l, name, in, out, experts);
  op.priority = priority;
  op.loc = "MoE layer " + std::to_string(l) + " " + phase + " weight moves";
  return emit(std::move(op));
}

void StepBuilder::emitLayer(int l) {
  const MoeLayer &m = layers[l];
  const LayerTraffic &t = traffic[l];
  const int64_t N = t.ranks, E = t.experts, H = m.hidden, F = m.ffnDim;
  const Op &gate = plan.ops[m.gate];
  const DType xType = plan.buffers[m.x].dtype, wType = plan.buffers[m.w1].dtype;
  const std::string prefix = "moe" + std::to_string(l) + ".";

  auto [sent, received] = extremes(t.rows, N);
  // The device with the most expert rows (ties: the most hosted experts)
  // sets the expert_ffn of every rank.
  int64_t rows = 0, hosted = 0;
  for (int64_t d = 0; d < N; ++d) {
    int64_t r = 0, h = 0;
    for (int64_t e = 0; e < E; ++e)
      if (t.expertRows[d * E + e] > 0) {
        r += t.expertRows[d * E + e];
        ++h;
      }
    if (r > rows || (r == rows && h > hosted)) {
      rows = r;
      hosted = h;
    }
  }
  hosted = std::max<int64_t>(hosted, 1);
  const int64_t perExpert = std::max<int64_t>(1, ceilDiv(rows, hosted));
  const int64_t capacity = std::max<int64_t>(1, ceilDiv(sent, E));
  // A device receives the rows it computes: at most hosted x perExpert.
  const int64_t computed = std::max(received, hosted * perExpert);

  // gate, then the moves of phase 2 on the critical path.
  Op g = gate;
  for (int &d : g.deps)
    d = newId[d];
  newId[gate.id] = emit(std::move(g));
  int phase2 = moves(l, t.phase2, Priority::Normal, "phase2");
  if (phase2 >= 0)
    step.ops[phase2].deps = {newId[gate.id]};

  // dispatch: the rows by destination (the busiest sender's shape).
  int packed = buffer(prefix + "dispatch", xType, {E, capacity, H}, Role::Temp);
  Op dispatch = plan.ops[m.dispatch];
  dispatch.outputs = {packed};
  dispatch.capacity = capacity;
  dispatch.deps.clear();
  newId[m.dispatch] = emit(std::move(dispatch));

  // all_to_all_v of every assignment to its replica's device.
  int recv = buffer(prefix + "received", xType, {computed, H}, Role::Temp);
  Op in = allToAllV(l, prefix + "tokens",
                    buffer(prefix + "dispatch.rows", xType, {E * capacity, H},
                           Role::Temp, packed),
                    recv, t.rows);
  in.loc = plan.ops[m.a2aIn].loc;
  newId[m.a2aIn] = emit(std::move(in));

  // The hosted experts of the busiest device on its rows; the weights of
  // phase 1 and phase 2 must be in place.
  int w1 = buffer(prefix + "hosted.w1", wType, {hosted, H, F}, Role::Param);
  int w2 = buffer(prefix + "hosted.w2", wType, {hosted, F, H}, Role::Param);
  int results =
      buffer(prefix + "expert_out", xType, {hosted, perExpert, H}, Role::Temp);
  Op ffn = plan.ops[m.ffn];
  ffn.inputs = {buffer(prefix + "received.experts", xType,
                       {hosted, perExpert, H}, Role::Temp, recv),
                w1, w2};
  ffn.outputs = {results};
  ffn.deps.clear();
  for (int mv : {phase1[l], phase2})
    if (mv >= 0)
      ffn.deps.push_back(mv);
  newId[m.ffn] = emit(std::move(ffn));

  // The results return the way the rows came.
  std::vector<int64_t> back(t.rows.size());
  for (int64_t s = 0; s < N; ++s)
    for (int64_t d = 0; d < N; ++d)
      back[d * N + s] = t.rows[s * N + d];
  int returned =
      buffer(prefix + "returned", xType, {E * capacity, H}, Role::Temp);
  Op out = allToAllV(l, prefix + "results",
                     buffer(prefix + "expert_out.rows", xType,
                            {hosted * perExpert, H}, Role::Temp, results),
                     returned, std::move(back));
  out.loc = plan.ops[m.a2aOut].loc;
  newId[m.a2aOut] = emit(std::move(out));

  Op combine = plan.ops[m.combine];
  combine.inputs[0] = buffer(prefix + "returned.experts", xType,
                             {E, capacity, H}, Role::Temp, returned);
  combine.capacity = capacity;
  combine.deps.clear();
  newId[m.combine] = emit(std::move(combine));
}

Plan StepBuilder::build() {
  if (traffic.size() != layers.size())
    throw PlanError("step plan: traffic for " + std::to_string(traffic.size()) +
                    " MoE layers, the plan has " +
                    std::to_string(layers.size()));
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerTraffic &t = traffic[l];
    size_t n = static_cast<size_t>(t.ranks), e = static_cast<size_t>(t.experts);
    if (t.ranks != plan.worldSize || t.experts != layers[l].experts ||
        t.rows.size() != n * n || t.expertRows.size() != n * e ||
        t.phase1.size() != n * n || t.phase2.size() != n * n ||
        (!t.background.empty() && t.background.size() != n * n))
      throw PlanError("step plan: the traffic of MoE layer " +
                      std::to_string(l) + " is not for " +
                      std::to_string(plan.worldSize) + " ranks and " +
                      std::to_string(layers[l].experts) + " experts");
  }
  step.version = plan.version;
  step.source = plan.source;
  step.function = plan.function;
  step.mode = plan.mode;
  step.worldSize = plan.worldSize;
  step.gridShape = plan.gridShape;
  step.groups = plan.groups;
  step.buffers = plan.buffers;
  step.outputs = plan.outputs;
  newId.assign(plan.ops.size(), -1);
  phase1.assign(layers.size(), -1);

  // Phase 1 of layer 0 starts with the batch, of layer l + 1 right after
  // layer l: the copies overlap the dense ops in between.
  // Copies that span batches run there too, and no op waits for them.
  auto startPhase1 = [&](int l) {
    if (!traffic[l].background.empty())
      background(l);
    else
      phase1[l] = moves(l, traffic[l].phase1, Priority::Low, "phase1");
  };
  startPhase1(0);
  rewriteChains(
      plan, layers, newId, [&](Op op) { return emit(std::move(op)); },
      [&](int l) {
        emitLayer(l);
        if (l + 1 < static_cast<int>(layers.size()))
          startPhase1(l + 1);
      });
  return std::move(step);
}

} // namespace

Plan lina::rt::infer::buildStepPlan(const Plan &plan,
                                    const std::vector<MoeLayer> &layers,
                                    const std::vector<LayerTraffic> &traffic) {
  return StepBuilder(plan, layers, traffic).build();
}

//===----------------------------------------------------------------------===//
// The executable step of one rank (cpu backend)
//===----------------------------------------------------------------------===//

namespace {

template <typename T> std::vector<char> bytesOf(const std::vector<T> &v) {
  std::vector<char> out(v.size() * sizeof(T));
  if (!out.empty())
    std::memcpy(out.data(), v.data(), out.size());
  return out;
}

/// Weight copies of one phase: for every home rank, its copies in packing
/// order (by destination, then expert), and every device's arrivals.
struct CopyPlan {
  std::vector<std::vector<std::pair<int, int>>> sent; ///< per home: (e, d)
  std::vector<int64_t> rows;                          ///< n x n by home
  int64_t mostSent = 0, mostReceived = 0;
};

CopyPlan copyPlan(const std::vector<std::pair<int, int>> &used, int64_t n,
                  int64_t local) {
  CopyPlan c;
  c.sent.resize(n);
  c.rows.assign(n * n, 0);
  for (const auto &[e, d] : used) {
    c.sent[e / local].push_back({e, d});
    ++c.rows[(e / local) * n + d];
  }
  for (auto &s : c.sent)
    std::sort(s.begin(), s.end(), [](auto a, auto b) {
      return std::make_pair(a.second, a.first) <
             std::make_pair(b.second, b.first);
    });
  std::tie(c.mostSent, c.mostReceived) = extremes(c.rows, n);
  return c;
}

class RankStepBuilder {
public:
  RankStepBuilder(const Plan &plan, const std::vector<MoeLayer> &layers,
                  const std::vector<LayerTraffic> &traffic,
                  const RoutingTrace &trace, const std::vector<int> &tokens,
                  int rank)
      : plan(plan), layers(layers), traffic(traffic), trace(trace),
        tokens(tokens), rank(rank) {}

  RankStep build();

private:
  int buffer(const std::string &name, DType dtype, std::vector<int64_t> shape,
             Role role, int base = -1) {
    Buffer b;
    b.id = static_cast<int>(step.plan.buffers.size());
    b.name = name;
    b.dtype = dtype;
    b.shape = std::move(shape);
    b.role = role;
    b.viewBase = base;
    b.numElements(); // throws PlanError on overflow
    step.plan.buffers.push_back(std::move(b));
    return step.plan.buffers.back().id;
  }
  /// An input buffer that this rank fills with `values`.
  template <typename T>
  int input(const std::string &name, DType dtype, std::vector<int64_t> shape,
            const std::vector<T> &values) {
    int id = buffer(name, dtype, std::move(shape), Role::Input);
    step.inputs.push_back({id, bytesOf(values)});
    return id;
  }
  int emit(Op op) {
    op.id = static_cast<int>(step.plan.ops.size());
    step.plan.ops.push_back(std::move(op));
    return step.plan.ops.back().id;
  }
  int copy(int src, int dst, std::vector<int64_t> srcOffsets,
           std::vector<int64_t> dstOffsets, std::vector<int64_t> sizes) {
    Op op;
    op.kind = OpKind::Copy;
    op.inputs = {src};
    op.outputs = {dst};
    op.srcOffsets = std::move(srcOffsets);
    op.dstOffsets = std::move(dstOffsets);
    op.sizes = std::move(sizes);
    op.accumulateInto = true;
    return emit(std::move(op));
  }
  int dispatch(int x, int ids, int out, int64_t experts, int64_t capacity) {
    Op op;
    op.kind = OpKind::Dispatch;
    op.inputs = {x, ids};
    op.outputs = {out};
    op.numExperts = experts;
    op.capacity = capacity;
    return emit(std::move(op));
  }
  /// An all_to_all_v of `rows` (n x n by sender) over layer l's group;
  /// this rank's counts are its row and column.
  int allToAllV(int l, const std::string &name, int data, int out,
                const std::vector<int64_t> &rows, Priority priority) {
    int64_t n = plan.worldSize;
    std::vector<int64_t> send(rows.begin() + rank * n,
                              rows.begin() + (rank + 1) * n),
        recv(n);
    for (int64_t s = 0; s < n; ++s)
      recv[s] = rows[s * n + rank];
    Op op;
    op.kind = OpKind::AllToAllV;
    op.inputs = {data, input(name + ".send_counts", DType::I64, {n}, send),
                 input(name + ".recv_counts", DType::I64, {n}, recv)};
    op.outputs = {out};
    op.group = plan.ops[layers[l].a2aIn].group;
    op.priority = priority;
    op.sendRows = rows;
    return emit(std::move(op));
  }
  /// The weight copies of one phase into the slots from `base` on.
  void copies(int l, const CopyPlan &c, int64_t base, const char *phase,
              Priority priority, int after);
  void emitLayer(int l);

  const Plan &plan;
  const std::vector<MoeLayer> &layers;
  const std::vector<LayerTraffic> &traffic;
  const RoutingTrace &trace;
  const std::vector<int> &tokens;
  const int rank;
  RankStep step;
  std::vector<int> newId;
  /// Per layer: the slot weights, w1 and w2 of every home expert and
  /// replica side by side, and the expert slots.
  std::vector<int> cat, slotW1, slotW2;
  std::vector<int64_t> slots, copies1;
  std::vector<CopyPlan> plans1, plans2;
};

void RankStepBuilder::copies(int l, const CopyPlan &c, int64_t base,
                             const char *phase, Priority priority, int after) {
  if (c.mostSent == 0)
    return;
  const MoeLayer &m = layers[l];
  const int64_t local = m.localExperts, hf = m.hidden * m.ffnDim;
  const std::string name = "moe" + std::to_string(l) + "." + phase + "_copies";
  // This rank's copies, one choice per copy of each home expert (as many
  // choices as the most copied expert of any rank has copies).
  int64_t choices = 1;
  for (const auto &sent : c.sent) {
    std::map<int, int64_t> copiesOf;
    for (const auto &[e, d] : sent)
      choices = std::max(choices, ++copiesOf[e]);
  }
  const std::vector<std::pair<int, int>> &mine = c.sent[rank];
  std::vector<int64_t> perExpert(local, 0);
  std::vector<int32_t> ids(local * choices, static_cast<int32_t>(c.mostSent));
  for (size_t i = 0; i < mine.size(); ++i) {
    int64_t q = mine[i].first - rank * local;
    ids[q * choices + perExpert[q]++] = static_cast<int32_t>(i);
  }
  DType w = plan.buffers[m.w1].dtype;
  int packed =
      buffer(name + ".packed", w, {c.mostSent + 1, 1, 2 * hf}, Role::Temp);
  int d = dispatch(
      buffer(name + ".experts", w, {local, 2 * hf}, Role::Temp, cat[l]),
      input(name + ".ids", DType::I32, {local, choices}, ids), packed,
      c.mostSent + 1, 1);
  if (after >= 0)
    step.plan.ops[d].deps = {after};
  int received =
      buffer(name + ".received", w, {c.mostReceived, 1, 2 * hf}, Role::Temp);
  int a2a = allToAllV(l, name, packed, received, c.rows, priority);
  step.plan.ops[a2a].loc =
      "MoE layer " + std::to_string(l) + " " + phase + " weight copies";
  int halves = buffer(name + ".halves", w, {c.mostReceived, 2, hf}, Role::Temp,
                      received);
  // One row per slot of each slot weight.
  int64_t z = slots[l];
  copy(halves, buffer(name + ".w1", w, {z, 1, hf}, Role::Temp, slotW1[l]),
       {0, 0, 0}, {base, 0, 0}, {c.mostReceived, 1, hf});
  copy(halves, buffer(name + ".w2", w, {z, 1, hf}, Role::Temp, slotW2[l]),
       {0, 1, 0}, {base, 0, 0}, {c.mostReceived, 1, hf});
}

void RankStepBuilder::emitLayer(int l) {
  const MoeLayer &m = layers[l];
  const LayerTraffic &t = traffic[l];
  const int64_t N = plan.worldSize, K = m.topK, H = m.hidden, T = m.tokens;
  const int64_t local = m.localExperts, Z = slots[l];
  const Op &gate = plan.ops[m.gate];
  const DType xType = plan.buffers[m.x].dtype;
  const std::string prefix = "moe" + std::to_string(l) + ".";
  const int64_t n = static_cast<int64_t>(tokens.size()), per = (n + N - 1) / N;

  // The slot of expert e on device d: its home experts first, then the
  // phase-1 copies, then the phase-2 ones, each in arrival order.
  std::vector<std::map<int, int64_t>> slotOf(N);
  for (int64_t d = 0; d < N; ++d)
    for (int64_t q = 0; q < local; ++q)
      slotOf[d][static_cast<int>(d * local + q)] = q;
  auto arrivals = [&](const CopyPlan &c, int64_t base) {
    std::vector<int64_t> next(N, base);
    for (int64_t h = 0; h < N; ++h)
      for (const auto &[e, d] : c.sent[h])
        slotOf[d][e] = next[d]++;
  };
  arrivals(plans1[l], local);
  arrivals(plans2[l], local + copies1[l]);

  // The gate, with the trace's experts imposed; then the phase-2 copies.
  Op g = gate;
  for (int &d : g.deps)
    d = newId[d];
  newId[gate.id] = emit(std::move(g));
  copies(l, plans2[l], local + copies1[l], "phase2", Priority::Normal,
         newId[gate.id]);

  // Each sender packs its assignments by destination, then slot there,
  // then token and choice.
  struct Row {
    int64_t dest, slot, token, choice;
  };
  auto rowsOf = [&](int64_t s) {
    std::vector<Row> rows;
    for (int64_t i = std::min(n, s * per); i < std::min(n, (s + 1) * per); ++i)
      for (int64_t j = 0; j < K; ++j) {
        int64_t d = t.dest[i * K + j];
        int e = trace.tokens[tokens[i]].experts[l][j];
        rows.push_back({d, slotOf[d].at(e), i, j});
      }
    std::sort(rows.begin(), rows.end(), [](const Row &a, const Row &b) {
      return std::tie(a.dest, a.slot, a.token, a.choice) <
             std::tie(b.dest, b.slot, b.token, b.choice);
    });
    return rows;
  };
  auto [sent, received] = extremes(t.rows, N);
  received = std::max<int64_t>(received, 1);
  const int64_t trash = sent; // the packed row of padding tokens
  std::vector<int32_t> vids(T * K, static_cast<int32_t>(trash));
  std::vector<Row> mine = rowsOf(rank);
  for (size_t p = 0; p < mine.size(); ++p)
    vids[(mine[p].token - rank * per) * K + mine[p].choice] =
        static_cast<int32_t>(p);
  // Arrivals at this rank: from every source in its packing order.
  std::vector<int32_t> sids(received, static_cast<int32_t>(Z - 1));
  int64_t at = 0, capacity = 1;
  std::vector<std::vector<int64_t>> perSlot(N, std::vector<int64_t>(Z, 0));
  for (int64_t s = 0; s < N; ++s)
    for (const Row &r : rowsOf(s)) {
      capacity = std::max(capacity, ++perSlot[r.dest][r.slot]);
      if (r.dest == rank)
        sids[at++] = static_cast<int32_t>(r.slot);
    }

  int ids = input(prefix + "rows", DType::I32, {T, K}, vids);
  int packed = buffer(prefix + "packed", xType, {sent + 1, 1, H}, Role::Temp);
  newId[m.dispatch] = dispatch(m.x, ids, packed, sent + 1, 1);
  int arrived = buffer(prefix + "arrived", xType, {received, 1, H}, Role::Temp);
  newId[m.a2aIn] = allToAllV(l, prefix + "tokens", packed, arrived, t.rows,
                             Priority::Normal);
  step.plan.ops[newId[m.a2aIn]].loc = plan.ops[m.a2aIn].loc;
  int slotIds = input(prefix + "slots", DType::I32, {received, 1}, sids);
  int bySlot = buffer(prefix + "by_slot", xType, {Z, capacity, H}, Role::Temp);
  dispatch(buffer(prefix + "arrived.rows", xType, {received, H}, Role::Temp,
                  arrived),
           slotIds, bySlot, Z, capacity);
  int out = buffer(prefix + "expert_out", xType, {Z, capacity, H}, Role::Temp);
  Op ffn = plan.ops[m.ffn];
  ffn.inputs = {bySlot, slotW1[l], slotW2[l]};
  ffn.outputs = {out};
  ffn.deps.clear();
  newId[m.ffn] = emit(std::move(ffn));
  // Back to arrival order (weight 1), then to the senders.
  int results = buffer(prefix + "results", xType, {received, H}, Role::Temp);
  Op unsort;
  unsort.kind = OpKind::Combine;
  unsort.inputs = {out, slotIds,
                   input(prefix + "ones", xType, {received, 1},
                         std::vector<float>(received, 1.0f))};
  unsort.outputs = {results};
  unsort.capacity = capacity;
  emit(std::move(unsort));
  std::vector<int64_t> back(N * N);
  for (int64_t s = 0; s < N; ++s)
    for (int64_t d = 0; d < N; ++d)
      back[d * N + s] = t.rows[s * N + d];
  int returned =
      buffer(prefix + "returned", xType, {sent + 1, 1, H}, Role::Temp);
  newId[m.a2aOut] = allToAllV(l, prefix + "results",
                              buffer(prefix + "results.rows", xType,
                                     {received, 1, H}, Role::Temp, results),
                              returned, back, Priority::Normal);
  step.plan.ops[newId[m.a2aOut]].loc = plan.ops[m.a2aOut].loc;
  Op combine = plan.ops[m.combine];
  combine.inputs = {returned, ids, gate.outputs[1]};
  combine.capacity = 1;
  combine.deps.clear();
  newId[m.combine] = emit(std::move(combine));

  // The trace's experts of this rank's tokens for the gate.
  std::vector<int32_t> experts(T * K);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < K; ++j) {
      int64_t global = rank * per + i;
      experts[i * K + j] = i < per && global < n
                               ? trace.tokens[tokens[global]].experts[l][j]
                               : static_cast<int32_t>(j);
    }
  step.gateExperts.push_back(std::move(experts));
}

RankStep RankStepBuilder::build() {
  Plan &p = step.plan;
  p.version = plan.version;
  p.source = plan.source;
  p.function = plan.function;
  p.mode = plan.mode;
  p.worldSize = plan.worldSize;
  p.gridShape = plan.gridShape;
  p.groups = plan.groups;
  p.buffers = plan.buffers;
  p.outputs = plan.outputs;
  newId.assign(plan.ops.size(), -1);
  size_t L = layers.size();
  cat.assign(L, -1);
  slotW1.assign(L, -1);
  slotW2.assign(L, -1);
  slots.assign(L, 0);
  copies1.assign(L, 0);
  for (size_t l = 0; l < L; ++l) {
    const MoeLayer &m = layers[l];
    plans1.push_back(
        copyPlan(traffic[l].used1, plan.worldSize, m.localExperts));
    plans2.push_back(
        copyPlan(traffic[l].used2, plan.worldSize, m.localExperts));
    copies1[l] = plans1[l].mostReceived;
    slots[l] = m.localExperts + copies1[l] + plans2[l].mostReceived + 1;
  }
  // The home experts into their slots and the phase-1 copies: before the
  // batch for layer 0, right after layer l for layer l + 1.
  auto prepare = [&](int l) {
    const MoeLayer &m = layers[l];
    const int64_t local = m.localExperts, H = m.hidden, F = m.ffnDim;
    const DType w = plan.buffers[m.w1].dtype;
    const std::string prefix = "moe" + std::to_string(l) + ".";
    slotW1[l] = buffer(prefix + "slots.w1", w, {slots[l], H, F}, Role::Temp);
    slotW2[l] = buffer(prefix + "slots.w2", w, {slots[l], F, H}, Role::Temp);
    copy(m.w1, slotW1[l], {0, 0, 0}, {0, 0, 0}, {local, H, F});
    copy(m.w2, slotW2[l], {0, 0, 0}, {0, 0, 0}, {local, F, H});
    if (plans1[l].mostSent == 0 && plans2[l].mostSent == 0)
      return;
    // w1 and w2 of each home expert side by side: one row per expert.
    cat[l] = buffer(prefix + "experts", w, {local, 2, H * F}, Role::Temp);
    copy(buffer(prefix + "w1.rows", w, {local, 1, H * F}, Role::Temp, m.w1),
         cat[l], {0, 0, 0}, {0, 0, 0}, {local, 1, H * F});
    copy(buffer(prefix + "w2.rows", w, {local, 1, H * F}, Role::Temp, m.w2),
         cat[l], {0, 0, 0}, {0, 1, 0}, {local, 1, H * F});
    copies(l, plans1[l], local, "phase1", Priority::Low, -1);
  };
  prepare(0);
  rewriteChains(
      plan, layers, newId, [&](Op op) { return emit(std::move(op)); },
      [&](int l) {
        emitLayer(l);
        if (l + 1 < static_cast<int>(L))
          prepare(l + 1);
      });
  return std::move(step);
}

} // namespace

RankStep lina::rt::infer::buildRankStep(
    const Plan &plan, const std::vector<MoeLayer> &layers,
    const std::vector<LayerTraffic> &traffic, const RoutingTrace &trace,
    const std::vector<int> &tokens, int rank) {
  return RankStepBuilder(plan, layers, traffic, trace, tokens, rank).build();
}
