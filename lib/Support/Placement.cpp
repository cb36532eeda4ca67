//===- Placement.cpp - Expert placement on devices ------------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/Support/Placement.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>

using namespace lina;

std::vector<double>
LayerPlacement::deviceLoads(const std::vector<double> &loads) const {
  std::vector<double> out(numDevices, 0.0);
  for (size_t e = 0; e < replicas.size() && e < loads.size(); ++e)
    for (const Replica &r : replicas[e])
      out[r.device] += r.share * loads[e];
  return out;
}

double LayerPlacement::maxDeviceLoad(const std::vector<double> &loads) const {
  std::vector<double> d = deviceLoads(loads);
  return d.empty() ? 0.0 : *std::max_element(d.begin(), d.end());
}

std::vector<int> LayerPlacement::expertsOn(int device) const {
  std::vector<int> out;
  for (int e = 0; e < numExperts(); ++e)
    for (const Replica &r : replicas[e])
      if (r.device == device)
        out.push_back(e);
  return out;
}

std::string LayerPlacement::verify() const {
  if (numDevices < 1 || slotsPerDevice < 1)
    return "the placement needs at least one device and one slot per device";
  std::vector<int> used(numDevices, 0);
  for (int e = 0; e < numExperts(); ++e) {
    const auto &reps = replicas[e];
    std::string name = "expert " + std::to_string(e);
    if (reps.empty())
      return name + " has no replica";
    double sum = 0;
    std::set<int> devices;
    for (const Replica &r : reps) {
      if (r.device < 0 || r.device >= numDevices)
        return name + " has a replica on device " + std::to_string(r.device) +
               ", outside [0, " + std::to_string(numDevices) + ")";
      if (!devices.insert(r.device).second)
        return name + " has two replicas on device " + std::to_string(r.device);
      if (!(r.share > 0) || !std::isfinite(r.share))
        return name + " has a replica with share " + std::to_string(r.share) +
               " (shares must be positive)";
      sum += r.share;
      ++used[r.device];
    }
    if (std::fabs(sum - 1) > 1e-6)
      return name + "'s replica shares sum to " + std::to_string(sum) +
             ", not 1";
  }
  for (int d = 0; d < numDevices; ++d)
    if (used[d] > slotsPerDevice)
      return "device " + std::to_string(d) + " hosts " +
             std::to_string(used[d]) + " experts but has " +
             std::to_string(slotsPerDevice) + " slots";
  return "";
}

std::string lina::checkPlacementShape(int numExperts, int numDevices,
                                      int slotsPerDevice) {
  if (numExperts < 1)
    return "the layer has no experts";
  if (numDevices < 1)
    return "the number of devices must be positive, got " +
           std::to_string(numDevices);
  if (slotsPerDevice < 1)
    return "the number of expert slots per device must be positive, got " +
           std::to_string(slotsPerDevice);
  if (static_cast<long long>(numDevices) * slotsPerDevice < numExperts)
    return std::to_string(numDevices) + " devices with " +
           std::to_string(slotsPerDevice) + " expert slots each cannot hold " +
           std::to_string(numExperts) +
           " experts (need devices x slots >= " + "experts)";
  return "";
}

std::optional<LayerPlacement> lina::staticPlacement(int numExperts,
                                                    int numDevices,
                                                    int slotsPerDevice,
                                                    std::string &error) {
  error = checkPlacementShape(numExperts, numDevices, slotsPerDevice);
  if (!error.empty())
    return std::nullopt;
  LayerPlacement p;
  p.numDevices = numDevices;
  p.slotsPerDevice = slotsPerDevice;
  p.usedStatic = true;
  int perDevice = (numExperts + numDevices - 1) / numDevices;
  p.replicas.resize(numExperts);
  for (int e = 0; e < numExperts; ++e)
    p.replicas[e] = {Replica{e / perDevice, 1.0}};
  return p;
}

namespace {

/// Moves expert e's shares over its devices so that they end at one level
/// (water-filling): minimises the largest load among those devices with the
/// other experts fixed. Replicas left with no share are removed.
void waterFill(LayerPlacement &p, int e, double load,
               std::vector<double> &deviceLoad, bool keepAll) {
  auto &reps = p.replicas[e];
  if (reps.size() < 2 || load <= 0)
    return;
  std::vector<std::pair<double, int>> others; // (load without e, index)
  for (size_t i = 0; i < reps.size(); ++i)
    others.push_back({deviceLoad[reps[i].device] - reps[i].share * load,
                      static_cast<int>(i)});
  std::sort(others.begin(), others.end());
  // Find the level: the largest prefix of devices that get water.
  double level = 0, prefix = 0;
  for (size_t i = 0; i < others.size(); ++i) {
    prefix += others[i].first;
    double candidate = (load + prefix) / static_cast<double>(i + 1);
    if (i + 1 == others.size() || candidate <= others[i + 1].first) {
      level = candidate;
      break;
    }
  }
  std::vector<Replica> kept;
  for (const auto &[other, i] : others) {
    double share = std::max(0.0, level - other) / load;
    deviceLoad[reps[i].device] = other + share * load;
    if (share > 1e-9 || keepAll)
      kept.push_back({reps[i].device, std::max(share, keepAll ? 1e-6 : 0.0)});
  }
  double sum = 0;
  for (const Replica &r : kept)
    sum += r.share;
  for (Replica &r : kept)
    r.share /= sum;
  std::sort(kept.begin(), kept.end(), [](const Replica &a, const Replica &b) {
    return a.device < b.device;
  });
  reps = std::move(kept);
}

/// Renames devices so that as many replicas as possible sit on their
/// expert's static home device (fewer weight moves); loads are unchanged.
void relabelTowardsHome(LayerPlacement &p, int perDevice) {
  const int N = p.numDevices;
  // overlap[i][d]: replicas on device i whose expert's home is d.
  std::vector<std::vector<int>> overlap(N, std::vector<int>(N, 0));
  for (int e = 0; e < p.numExperts(); ++e)
    for (const Replica &r : p.replicas[e])
      ++overlap[r.device][e / perDevice];
  std::vector<int> rename(N, -1);
  std::vector<char> taken(N, 0);
  for (int step = 0; step < N; ++step) {
    int bi = -1, bd = -1, best = -1;
    for (int i = 0; i < N; ++i) {
      if (rename[i] >= 0)
        continue;
      for (int d = 0; d < N; ++d)
        if (!taken[d] && overlap[i][d] > best) {
          best = overlap[i][d];
          bi = i;
          bd = d;
        }
    }
    rename[bi] = bd;
    taken[bd] = 1;
  }
  for (auto &reps : p.replicas) {
    for (Replica &r : reps)
      r.device = rename[r.device];
    std::sort(reps.begin(), reps.end(), [](const Replica &a, const Replica &b) {
      return a.device < b.device;
    });
  }
}

/// Water-fills the shares of every replicated expert (heaviest expert
/// first, repeated while the largest device load improves), then rounds
/// them to a 1e-6 grid. keepAll: replicas without tokens keep a minimal
/// share instead of being dropped.
void balanceShares(LayerPlacement &p, const std::vector<double> &loads,
                   bool keepAll) {
  const int E = p.numExperts();
  std::vector<double> deviceLoad = p.deviceLoads(loads);

  std::vector<int> order(E);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return loads[a] > loads[b]; });
  double total = std::accumulate(loads.begin(), loads.end(), 0.0);
  double previous = p.maxDeviceLoad(loads);
  for (int round = 0; round < 64; ++round) {
    for (int e : order)
      waterFill(p, e, loads[e], deviceLoad, keepAll);
    double now = p.maxDeviceLoad(loads);
    if (now >= previous - 1e-12 * total)
      break;
    previous = now;
  }
  // Shares on a 1e-6 grid (readable tables); the largest share of each
  // expert takes the rounding remainder so that they sum to 1.
  for (auto &reps : p.replicas) {
    if (reps.size() < 2)
      continue;
    double sum = 0;
    size_t largest = 0;
    for (size_t i = 0; i < reps.size(); ++i) {
      reps[i].share = std::max(1e-6, std::round(reps[i].share * 1e6) / 1e6);
      if (reps[i].share > reps[largest].share)
        largest = i;
    }
    for (size_t i = 0; i < reps.size(); ++i)
      if (i != largest)
        sum += reps[i].share;
    reps[largest].share = std::round((1 - sum) * 1e6) / 1e6;
  }
}

/// Places `count[e]` replicas of every expert and balances their shares.
/// homeFirst: every expert's first replica stays on its static device and
/// only the extra replicas go, heaviest first, to the least loaded device
/// with a free slot; otherwise all replicas are placed longest processing
/// time first. Then the shares of replicated experts are water-filled,
/// heaviest expert first, until the largest device load stops improving.
LayerPlacement assignReplicas(const std::vector<double> &loads,
                              const std::vector<int> &count, int N, int C,
                              bool homeFirst, bool keepAll = false) {
  const int E = static_cast<int>(loads.size());
  const int perDevice = (E + N - 1) / N;
  LayerPlacement p;
  p.numDevices = N;
  p.slotsPerDevice = C;
  p.replicas.resize(E);
  std::vector<double> deviceLoad(N, 0.0);
  std::vector<int> used(N, 0);
  std::vector<std::pair<double, int>> items; // (load per replica, expert)
  for (int e = 0; e < E; ++e) {
    double per = loads[e] / count[e];
    int first = 0;
    if (homeFirst) {
      int d = e / perDevice; // fits: perDevice <= C
      p.replicas[e].push_back({d, 0.0});
      deviceLoad[d] += per;
      ++used[d];
      first = 1;
    }
    for (int i = first; i < count[e]; ++i)
      items.push_back({per, e});
  }
  std::stable_sort(
      items.begin(), items.end(),
      [](const auto &a, const auto &b) { return a.first > b.first; });
  for (const auto &[load, e] : items) {
    int best = -1;
    for (int d = 0; d < N; ++d) {
      if (used[d] >= C)
        continue;
      bool hosts = std::any_of(p.replicas[e].begin(), p.replicas[e].end(),
                               [&](const Replica &r) { return r.device == d; });
      if (hosts)
        continue;
      if (best < 0 || deviceLoad[d] < deviceLoad[best])
        best = d;
    }
    // No room for another replica of e (an expert's first replica always
    // fits: there are at least E slots): drop it.
    if (best < 0)
      continue;
    p.replicas[e].push_back({best, 0.0});
    deviceLoad[best] += load;
    ++used[best];
  }
  for (int e = 0; e < E; ++e) {
    for (Replica &r : p.replicas[e])
      r.share = 1.0 / static_cast<double>(p.replicas[e].size());
    std::sort(
        p.replicas[e].begin(), p.replicas[e].end(),
        [](const Replica &a, const Replica &b) { return a.device < b.device; });
  }
  balanceShares(p, loads, keepAll);
  return p;
}

} // namespace

/// The sum of an expert load vector, or nullopt (with `error` naming the
/// expert) when a load is negative or not finite.
static std::optional<double> totalLoad(const std::vector<double> &loads,
                                       std::string &error) {
  double total = 0;
  for (size_t e = 0; e < loads.size(); ++e) {
    if (!std::isfinite(loads[e]) || loads[e] < 0) {
      error = "expert " + std::to_string(e) + " has load " +
              std::to_string(loads[e]) + " (loads must be finite and >= 0)";
      return std::nullopt;
    }
    total += loads[e];
  }
  return total;
}

std::optional<LayerPlacement>
lina::linaPlacement(const std::vector<double> &loads, int numDevices,
                    int slotsPerDevice, std::string &error) {
  const int E = static_cast<int>(loads.size());
  std::optional<LayerPlacement> fallback =
      staticPlacement(E, numDevices, slotsPerDevice, error);
  if (!fallback)
    return std::nullopt;
  std::optional<double> sum = totalLoad(loads, error);
  if (!sum)
    return std::nullopt;
  double total = *sum;
  if (total <= 0)
    return fallback;
  const int N = numDevices, C = slotsPerDevice;

  // Replica counts: one each, then spare slots to the largest load per
  // replica while it is above the mean load per slot.
  std::vector<int> count(E, 1);
  int spare = N * C - E;
  double meanSlot = total / (static_cast<double>(N) * C);
  while (spare > 0) {
    int best = -1;
    double bestLoad = 0;
    for (int e = 0; e < E; ++e) {
      double per = loads[e] / count[e];
      if (count[e] < N && (best < 0 || per > bestLoad)) {
        best = e;
        bestLoad = per;
      }
    }
    if (best < 0 || bestLoad <= meanSlot * (1 + 1e-12))
      break;
    ++count[best];
    --spare;
  }

  LayerPlacement lpt = assignReplicas(loads, count, N, C, /*homeFirst=*/false);
  relabelTowardsHome(lpt, (E + N - 1) / N);
  LayerPlacement home = assignReplicas(loads, count, N, C, /*homeFirst=*/true);
  // Prefer the candidate that moves fewer weights unless the other one is
  // strictly better balanced.
  LayerPlacement p =
      lpt.maxDeviceLoad(loads) < home.maxDeviceLoad(loads) * (1 - 1e-6)
          ? std::move(lpt)
          : std::move(home);

  // The guarantee: never worse than expert parallelism; and where it is
  // not strictly better (a uniform profile), keep expert parallelism, which
  // moves no weights.
  if (!p.verify().empty() ||
      p.maxDeviceLoad(loads) >= fallback->maxDeviceLoad(loads) * (1 - 1e-9))
    return fallback;
  return p;
}

//===----------------------------------------------------------------------===//
// Serving
//===----------------------------------------------------------------------===//

std::optional<LayerPlacement>
lina::redundantPlacement(const std::vector<double> &loads, int numDevices,
                         int slotsPerDevice, int replicaBudget,
                         std::string &error) {
  const int E = static_cast<int>(loads.size());
  std::optional<LayerPlacement> fallback =
      staticPlacement(E, numDevices, slotsPerDevice, error);
  if (!fallback)
    return std::nullopt;
  std::optional<double> sum = totalLoad(loads, error);
  if (!sum)
    return std::nullopt;
  double total = *sum;
  const int N = numDevices, C = slotsPerDevice;
  int64_t spare = static_cast<int64_t>(N) * C - E;
  if (replicaBudget >= 0)
    spare = std::min<int64_t>(spare, replicaBudget);
  if (total <= 0 || spare <= 0)
    return fallback;
  std::vector<int> count(E, 1);
  double meanSlot = total / (static_cast<double>(E) + spare);
  while (spare > 0) {
    int best = -1;
    double bestLoad = 0;
    for (int e = 0; e < E; ++e) {
      double per = loads[e] / count[e];
      if (count[e] < N && (best < 0 || per > bestLoad)) {
        best = e;
        bestLoad = per;
      }
    }
    if (best < 0 || bestLoad <= meanSlot * (1 + 1e-12))
      break;
    ++count[best];
    --spare;
  }
  LayerPlacement p = assignReplicas(loads, count, N, C, /*homeFirst=*/true,
                                    /*keepAll=*/true);
  p.usedStatic = false;
  if (!p.verify().empty())
    return fallback;
  return p;
}

int64_t RowAssignment::maxRows() const {
  return deviceRows.empty()
             ? 0
             : *std::max_element(deviceRows.begin(), deviceRows.end());
}

double RowAssignment::meanRows() const {
  if (deviceRows.empty())
    return 0;
  double sum = 0;
  for (int64_t r : deviceRows)
    sum += static_cast<double>(r);
  return sum / static_cast<double>(deviceRows.size());
}

namespace {

RowAssignment emptyAssignment(const LayerPlacement &p) {
  RowAssignment a;
  a.deviceRows.assign(p.numDevices, 0);
  a.rows.resize(p.numExperts());
  for (int e = 0; e < p.numExperts(); ++e)
    a.rows[e].assign(p.replicas[e].size(), 0);
  return a;
}

void sumDevices(const LayerPlacement &p, RowAssignment &a) {
  std::fill(a.deviceRows.begin(), a.deviceRows.end(), 0);
  for (int e = 0; e < p.numExperts(); ++e)
    for (size_t i = 0; i < p.replicas[e].size(); ++i)
      a.deviceRows[p.replicas[e][i].device] += a.rows[e][i];
}

/// Dinic's max-flow on a small graph with integral capacities.
class MaxFlow {
public:
  explicit MaxFlow(int n) : head(n, -1), level(n), next(n) {}
  int addEdge(int from, int to, int64_t capacity) {
    edges.push_back({to, head[from], capacity});
    head[from] = static_cast<int>(edges.size()) - 1;
    edges.push_back({from, head[to], 0});
    head[to] = static_cast<int>(edges.size()) - 1;
    return static_cast<int>(edges.size()) - 2;
  }
  int64_t run(int s, int t) {
    int64_t flow = 0;
    while (bfs(s, t)) {
      next = head;
      while (int64_t f = dfs(s, t, INT64_MAX))
        flow += f;
    }
    return flow;
  }
  /// Flow on the edge returned by addEdge.
  int64_t flowOn(int edge) const { return edges[edge ^ 1].capacity; }

private:
  struct Edge {
    int to, next;
    int64_t capacity;
  };
  bool bfs(int s, int t) {
    std::fill(level.begin(), level.end(), -1);
    std::vector<int> queue{s};
    level[s] = 0;
    for (size_t i = 0; i < queue.size(); ++i)
      for (int k = head[queue[i]]; k >= 0; k = edges[k].next)
        if (edges[k].capacity > 0 && level[edges[k].to] < 0) {
          level[edges[k].to] = level[queue[i]] + 1;
          queue.push_back(edges[k].to);
        }
    return level[t] >= 0;
  }
  int64_t dfs(int v, int t, int64_t limit) {
    if (v == t)
      return limit;
    for (int &k = next[v]; k >= 0; k = edges[k].next) {
      Edge &edge = edges[k];
      if (edge.capacity <= 0 || level[edge.to] != level[v] + 1)
        continue;
      if (int64_t f = dfs(edge.to, t, std::min(limit, edge.capacity))) {
        edge.capacity -= f;
        edges[k ^ 1].capacity += f;
        return f;
      }
    }
    return 0;
  }
  std::vector<Edge> edges;
  std::vector<int> head, level, next;
};

/// Tries to place `rows` on the replicas with at most `bound` rows per
/// device; fills `out` and returns true when every row fits.
bool fitRows(const LayerPlacement &p, const std::vector<int64_t> &rows,
             int64_t bound, RowAssignment &out) {
  const int E = p.numExperts(), N = p.numDevices;
  const int source = 0, sink = E + N + 1;
  MaxFlow flow(E + N + 2);
  int64_t total = 0;
  std::vector<std::vector<int>> edge(E);
  for (int e = 0; e < E; ++e) {
    flow.addEdge(source, 1 + e, rows[e]);
    total += rows[e];
    for (const Replica &r : p.replicas[e])
      edge[e].push_back(flow.addEdge(1 + e, 1 + E + r.device, rows[e]));
  }
  for (int d = 0; d < N; ++d)
    flow.addEdge(1 + E + d, sink, bound);
  if (flow.run(source, sink) != total)
    return false;
  out = emptyAssignment(p);
  for (int e = 0; e < E; ++e)
    for (size_t i = 0; i < edge[e].size(); ++i)
      out.rows[e][i] = flow.flowOn(edge[e][i]);
  sumDevices(p, out);
  return true;
}

} // namespace

RowAssignment lina::splitByShares(const LayerPlacement &p,
                                  const std::vector<int64_t> &rows) {
  RowAssignment a = emptyAssignment(p);
  for (int e = 0; e < p.numExperts(); ++e) {
    const auto &reps = p.replicas[e];
    int64_t n = e < static_cast<int>(rows.size()) ? rows[e] : 0;
    int64_t given = 0;
    std::vector<std::pair<double, size_t>> remainder;
    for (size_t i = 0; i < reps.size(); ++i) {
      double exact = reps[i].share * static_cast<double>(n);
      a.rows[e][i] = static_cast<int64_t>(std::floor(exact));
      given += a.rows[e][i];
      remainder.push_back({exact - std::floor(exact), i});
    }
    std::stable_sort(
        remainder.begin(), remainder.end(),
        [](const auto &x, const auto &y) { return x.first > y.first; });
    for (size_t j = 0; given < n; j = (j + 1) % remainder.size(), ++given)
      ++a.rows[e][remainder[j].second];
  }
  sumDevices(p, a);
  return a;
}

std::optional<RowAssignment> lina::homeRows(const LayerPlacement &p,
                                            const std::vector<int64_t> &rows) {
  const int E = p.numExperts();
  const int perDevice = (E + p.numDevices - 1) / p.numDevices;
  RowAssignment a = emptyAssignment(p);
  for (int e = 0; e < E; ++e) {
    const auto &reps = p.replicas[e];
    auto it = std::find_if(reps.begin(), reps.end(), [&](const Replica &r) {
      return r.device == e / perDevice;
    });
    if (it == reps.end())
      return std::nullopt;
    a.rows[e][it - reps.begin()] =
        e < static_cast<int>(rows.size()) ? rows[e] : 0;
  }
  sumDevices(p, a);
  return a;
}

RowAssignment lina::balanceRows(const LayerPlacement &p,
                                const std::vector<int64_t> &rows) {
  RowAssignment best = splitByShares(p, rows);
  int64_t total = 0;
  for (int64_t r : rows)
    total += r;
  int64_t lo = (total + p.numDevices - 1) / p.numDevices, hi = best.maxRows();
  // Invariant: hi is feasible (best holds an assignment within it).
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    RowAssignment a;
    if (fitRows(p, rows, mid, a)) {
      best = std::move(a);
      hi = best.maxRows();
    } else {
      lo = mid + 1;
    }
  }
  return best;
}

LayerTime lina::layerTime(const CostModel &model, const ExpertCost &cost,
                          const LayerPlacement &p, const RowAssignment &rows) {
  LayerTime t;
  t.dense = cost.denseSeconds;
  double slowest = 0;
  std::vector<double> device(p.numDevices, 0.0);
  for (int e = 0; e < p.numExperts(); ++e)
    for (size_t i = 0; i < p.replicas[e].size(); ++i) {
      double r = static_cast<double>(rows.rows[e][i]);
      if (r > 0)
        device[p.replicas[e][i].device] += model.computeTime(
            r * cost.flopsPerRow, cost.weightBytes + r * cost.bytesPerRow);
    }
  for (double d : device)
    slowest = std::max(slowest, d);
  t.experts = slowest;
  double bytes = static_cast<double>(rows.maxRows()) * cost.rowBytes;
  t.allToAll = 2 * model.allToAllTime(bytes, p.numDevices);
  return t;
}

const char *lina::toString(PlacementPolicy policy) {
  switch (policy) {
  case PlacementPolicy::Static:
    return "static";
  case PlacementPolicy::EplbLike:
    return "eplb";
  case PlacementPolicy::Lina:
    return "lina";
  case PlacementPolicy::Oracle:
    return "oracle";
  }
  return "?";
}

std::optional<PlacementPolicy>
lina::parsePlacementPolicy(const std::string &name) {
  for (PlacementPolicy p : {PlacementPolicy::Static, PlacementPolicy::EplbLike,
                            PlacementPolicy::Lina, PlacementPolicy::Oracle})
    if (name == toString(p))
      return p;
  return std::nullopt;
}

namespace {
bool hosts(const LayerPlacement &p, int e, int d) {
  for (const Replica &r : p.replicas[e])
    if (r.device == d)
      return true;
  return false;
}

int slotsUsed(const LayerPlacement &p, int d) {
  int n = 0;
  for (const auto &reps : p.replicas)
    for (const Replica &r : reps)
      n += r.device == d;
  return n;
}

void removeReplica(LayerPlacement &p, int e, int d) {
  auto &reps = p.replicas[e];
  double freed = 0;
  for (size_t i = 0; i < reps.size(); ++i)
    if (reps[i].device == d) {
      freed = reps[i].share;
      reps.erase(reps.begin() + i);
      break;
    }
  for (Replica &r : reps)
    r.share /= (1 - freed > 0 ? 1 - freed : 1);
}

void addReplica(LayerPlacement &p, int e, int d) {
  auto &reps = p.replicas[e];
  double share = 1.0 / static_cast<double>(reps.size() + 1);
  for (Replica &r : reps)
    r.share *= 1 - share;
  reps.push_back({d, share});
  std::sort(reps.begin(), reps.end(), [](const Replica &a, const Replica &b) {
    return a.device < b.device;
  });
}
} // namespace

std::optional<LayerPlanner>
LayerPlanner::create(const PlannerOptions &options, const CostModel &model,
                     const ExpertCost &cost, const std::vector<double> &prior,
                     std::string &error) {
  if (options.window < 1) {
    error = "the re-plan window must be at least one batch, got " +
            std::to_string(options.window);
    return std::nullopt;
  }
  if (static_cast<int>(prior.size()) != options.numExperts) {
    error = "the prior popularity has " + std::to_string(prior.size()) +
            " experts, the layer " + std::to_string(options.numExperts);
    return std::nullopt;
  }
  for (double x :
       {cost.weightBytes, cost.flopsPerRow, cost.bytesPerRow, cost.rowBytes,
        cost.denseSeconds, cost.moveLatency, cost.copyOpSeconds})
    if (!std::isfinite(x) || x < 0) {
      error = "expert costs must be finite and non-negative";
      return std::nullopt;
    }
  if (!std::isfinite(cost.moveBandwidth) || cost.moveBandwidth <= 0) {
    error = "the weight-move bandwidth must be positive";
    return std::nullopt;
  }
  LayerPlanner planner(options, model, cost);
  std::optional<LayerPlacement> home = staticPlacement(
      options.numExperts, options.numDevices, options.slotsPerDevice, error);
  if (!home)
    return std::nullopt;
  planner.home = *home;
  planner.current = *home;
  planner.target = *home;
  double sum = 0;
  for (double x : prior) {
    if (!std::isfinite(x) || x < 0) {
      error = "the prior popularity must be finite and non-negative";
      return std::nullopt;
    }
    sum += x;
  }
  // The prior counts as one window of batches of the long-run popularity.
  planner.popularity.assign(prior.size(), 0.0);
  for (size_t e = 0; e < prior.size(); ++e)
    planner.popularity[e] = sum > 0 ? prior[e] / sum * options.window : 0.0;
  if (options.policy == PlacementPolicy::EplbLike ||
      options.policy == PlacementPolicy::Lina) {
    // The initial table is deployed before serving (no move cost), as the
    // compiler's placement table is.
    std::optional<LayerPlacement> first = redundantPlacement(
        planner.popularity, options.numDevices, options.slotsPerDevice,
        options.replicaBudget, error);
    if (!first)
      return std::nullopt;
    planner.meanBatchRows = std::max(0.0, options.batchRows);
    if (options.policy == PlacementPolicy::Lina && planner.meanBatchRows > 0)
      first = planner.cheapest(*first, /*deployed=*/true);
    if (first) {
      planner.current = *first;
      planner.target = *first;
    }
  }
  return planner;
}

namespace {
/// The most batches a re-plan is judged on (the last ones served, or drawn
/// from the popularity before any).
constexpr int kSampleBatches = 16;
} // namespace

double lina::copyOpSeconds(const CostModel &model, int devices) {
  if (devices <= 1)
    return 0;
  const ClusterSpec &c = model.cluster();
  const LinkSpec &link = model.spansNodes(devices) ? c.interNode : c.intraNode;
  return c.launchLatency + link.latency;
}

double LayerPlanner::moveSeconds(double bytes, int moves) const {
  return bytes / cost.moveBandwidth + moves * cost.moveLatency;
}

std::optional<LayerPlacement> LayerPlanner::cheapest(const LayerPlacement &plan,
                                                     bool deployed) const {
  std::string error;
  std::optional<LayerPlacement> next = plan;
  // Cost-aware: among the re-plans with the full, half, a quarter of and
  // no replica budget, and the current placement, keep the fastest (the
  // latency model, whole rows) for the batches of the last window, or
  // before any, for a window of batches of the mean size drawn from the
  // long-run popularity (a fixed seed: every rank draws the same). Small
  // batches are judged on their real spread, not on a rounded mean.
  // Replicas that do not pay are not copied at all.
  std::vector<std::vector<int64_t>> sample(recent.begin(), recent.end());
  double sum = 0;
  for (double x : popularity)
    sum += x;
  // Batches too large to draw quickly are close to their mean.
  constexpr int64_t kMaxDrawnRows = int64_t(1) << 16;
  const int64_t n = std::llround(meanBatchRows);
  if (sample.empty() && sum > 0 && n > kMaxDrawnRows) {
    std::vector<int64_t> mean(popularity.size(), 0);
    for (size_t e = 0; e < popularity.size(); ++e)
      mean[e] = std::llround(popularity[e] / sum * meanBatchRows);
    sample.push_back(std::move(mean));
  }
  if (sample.empty() && sum > 0) {
    std::mt19937_64 rng(0x11a);
    std::discrete_distribution<int> pick(popularity.begin(), popularity.end());
    for (int b = 0; b < std::min(options.window, kSampleBatches); ++b) {
      std::vector<int64_t> rows(popularity.size(), 0);
      for (int64_t i = 0; i < n; ++i)
        ++rows[pick(rng)];
      sample.push_back(std::move(rows));
    }
  }
  if (sample.empty())
    sample.emplace_back(popularity.size(), 0);
  auto timeOf = [&](const LayerPlacement &p) {
    double t = 0;
    for (const std::vector<int64_t> &rows : sample)
      t += options.estimate
               ? options.estimate(p, rows)
               : layerTime(*model, cost, p, route(p, rows)).total();
    return t / static_cast<double>(sample.size());
  };
  // The batches the copies of `p` take (the busiest destination at the
  // background budget), each paying the copy operation.
  const double perBatch = cost.denseSeconds * cost.moveBandwidth;
  auto copyBatches = [&](const LayerPlacement &p) {
    if (deployed)
      return 0.0;
    std::vector<double> bytes(p.numDevices, 0.0);
    for (int e = 0; e < p.numExperts(); ++e)
      for (const Replica &r : p.replicas[e])
        if (!hosts(current, e, r.device))
          bytes[r.device] += cost.weightBytes;
    double most = *std::max_element(bytes.begin(), bytes.end());
    if (most <= 0)
      return 0.0;
    if (perBatch <= 0)
      return std::numeric_limits<double>::infinity();
    return std::ceil(most / perBatch);
  };
  const double now = timeOf(current);
  const double window = static_cast<double>(options.window);
  double bestTime = now * (1 - 1e-3);
  std::optional<LayerPlacement> best;
  int spare =
      current.numDevices * current.slotsPerDevice - current.numExperts();
  int full = options.replicaBudget >= 0 ? std::min(options.replicaBudget, spare)
                                        : spare;
  for (int budget : {full, full / 2, full / 4, 0}) {
    std::optional<LayerPlacement> c =
        budget == full
            ? next
            : redundantPlacement(popularity, options.numDevices,
                                 options.slotsPerDevice, budget, error);
    if (!c)
      continue;
    double t = timeOf(*c);
    // The copies must land within a window (the next re-plan may change
    // the target again), and a window of batches must win back what they
    // expose.
    double copies = copyBatches(*c);
    if (t < bestTime && copies <= window &&
        (now - t) * window > copies * cost.copyOpSeconds) {
      bestTime = t;
      best = c;
    }
  }
  return best;
}

void LayerPlanner::replan() {
  std::string error;
  std::optional<LayerPlacement> next =
      redundantPlacement(popularity, options.numDevices, options.slotsPerDevice,
                         options.replicaBudget, error);
  if (!next)
    return;
  if (options.policy == PlacementPolicy::Lina && meanBatchRows > 0) {
    next = cheapest(*next, /*deployed=*/false);
    if (!next)
      return;
  }
  target = *next;
  // Replicas no longer planned keep serving until a new copy needs their
  // slot (home replicas are in every plan); the new ones are copied in the
  // background, the most loaded per replica first.
  const int E = current.numExperts();
  std::vector<Pending> before = std::move(pending);
  pending.clear();
  std::vector<std::pair<double, Pending>> adds;
  for (int e = 0; e < E; ++e)
    for (const Replica &r : target.replicas[e])
      if (!hosts(current, e, r.device)) {
        // A copy already under way keeps its progress.
        double left = cost.weightBytes;
        for (const Pending &b : before)
          if (b.expert == e && b.device == r.device)
            left = b.bytesLeft;
        adds.push_back({popularity[e] / target.replicas[e].size(),
                        Pending{e, r.device, left}});
      }
  std::stable_sort(adds.begin(), adds.end(), [](const auto &a, const auto &b) {
    return a.first > b.first;
  });
  for (auto &[load, p] : adds)
    pending.push_back(p);
}

double LayerPlanner::backgroundCopy(double budget,
                                    std::vector<BatchOutcome::Copy> &copies) {
  // Every destination device receives over its own link (or its share of
  // the node's interface): copies to different devices proceed in
  // parallel, each within `budget` bytes per batch, in pending order.
  double moved = 0;
  std::vector<double> left(current.numDevices, budget);
  for (size_t i = 0; i < pending.size();) {
    Pending &p = pending[i];
    double step = std::min(left[p.device], p.bytesLeft);
    p.bytesLeft -= step;
    left[p.device] -= step;
    moved += step;
    if (step > 0)
      copies.push_back({p.expert, p.device, step});
    if (p.bytesLeft > 0) {
      ++i;
      continue;
    }
    if (!hosts(current, p.expert, p.device)) {
      // Free a slot from a replica the last re-plan dropped, if needed.
      const int E = current.numExperts();
      for (int x = 0;
           x < E && slotsUsed(current, p.device) >= current.slotsPerDevice; ++x)
        if (hosts(current, x, p.device) && !hosts(target, x, p.device))
          removeReplica(current, x, p.device);
      if (slotsUsed(current, p.device) < current.slotsPerDevice)
        addReplica(current, p.expert, p.device);
    }
    pending.erase(pending.begin() + i);
  }
  // The split shares follow the re-plan's water-filling where the replica
  // set matches it, else an even split.
  for (int e = 0; e < current.numExperts(); ++e) {
    auto &reps = current.replicas[e];
    bool same = reps.size() == target.replicas[e].size();
    for (size_t i = 0; same && i < reps.size(); ++i)
      same = reps[i].device == target.replicas[e][i].device;
    if (same)
      reps = target.replicas[e];
  }
  return moved;
}

RowAssignment LayerPlanner::route(const LayerPlacement &p,
                                  const std::vector<int64_t> &rows) const {
  // The fastest by the latency model of three whole-row splits: the
  // fewest rows on the busiest device, the replicas' shares (EPLB-like's
  // split) and every expert's home (static's).
  RowAssignment best = balanceRows(p, rows);
  double bestTime = layerTime(*model, cost, p, best).total();
  auto consider = [&](RowAssignment a) {
    double t = layerTime(*model, cost, p, a).total();
    if (t < bestTime) {
      bestTime = t;
      best = std::move(a);
    }
  };
  consider(splitByShares(p, rows));
  if (std::optional<RowAssignment> atHome = homeRows(p, rows))
    consider(std::move(*atHome));
  return best;
}

BatchOutcome LayerPlanner::serve(const std::vector<int64_t> &rows,
                                 const std::vector<double> *predicted) {
  BatchOutcome out;
  const int E = current.numExperts(), N = current.numDevices;
  std::vector<int64_t> r(rows.begin(), rows.end());
  r.resize(E, 0);
  RowAssignment assigned;
  switch (options.policy) {
  case PlacementPolicy::Static:
    assigned = *homeRows(current, r);
    out.time = layerTime(*model, cost, current, assigned);
    break;
  case PlacementPolicy::Oracle: {
    std::vector<double> loads(r.begin(), r.end());
    std::string error;
    std::vector<LayerPlacement> candidates{home};
    if (auto p = linaPlacement(loads, N, options.slotsPerDevice, error))
      candidates.push_back(*p);
    int spare = N * options.slotsPerDevice - E;
    int full = options.replicaBudget >= 0
                   ? std::min(options.replicaBudget, spare)
                   : spare;
    for (int budget : {full, full / 2, full / 4})
      if (auto p = redundantPlacement(loads, N, options.slotsPerDevice, budget,
                                      error))
        candidates.push_back(*p);
    double best = 0;
    LayerPlacement chosen;
    for (const LayerPlacement &c : candidates) {
      RowAssignment a = balanceRows(c, r);
      LayerTime t = layerTime(*model, cost, c, a);
      if (chosen.replicas.empty() || t.total() < best) {
        best = t.total();
        chosen = c;
        assigned = std::move(a);
        out.time = t;
      }
    }
    for (int e = 0; e < E; ++e)
      for (const Replica &rep : chosen.replicas[e])
        if (!hosts(current, e, rep.device))
          out.bytesMoved += cost.weightBytes;
    current = std::move(chosen);
    break;
  }
  case PlacementPolicy::EplbLike:
  case PlacementPolicy::Lina: {
    const bool lina = options.policy == PlacementPolicy::Lina;
    if (served > 0 && served % options.window == 0)
      replan();
    // Copies overlap the dense block, never the all-to-alls: they share
    // the links with the tokens, so a copy that outlasts the dense block
    // delays the dispatch. Every copy gets this budget per batch.
    double phase1Budget = cost.denseSeconds * cost.moveBandwidth;
    double budget = phase1Budget;
    // Phase 1: a predictive copy that fits behind the dense block.
    if (lina && predicted && pending.empty() && cost.weightBytes > 0 &&
        cost.weightBytes <= phase1Budget) {
      std::vector<int64_t> guess(E);
      for (int e = 0; e < E; ++e)
        guess[e] = static_cast<int64_t>(std::llround((*predicted)[e]));
      RowAssignment now = route(current, guess);
      double base = layerTime(*model, cost, current, now).total();
      int hot = -1;
      double hotLoad = -1;
      for (int e = 0; e < E; ++e) {
        double per = (*predicted)[e] / current.replicas[e].size();
        if (static_cast<int>(current.replicas[e].size()) < N && per > hotLoad) {
          hot = e;
          hotLoad = per;
        }
      }
      // The copy takes this batch's copy operation, whatever it saves.
      int bestDevice = -1;
      double bestTime = base - cost.copyOpSeconds;
      for (int d = 0; hot >= 0 && d < N; ++d) {
        if (hosts(current, hot, d) ||
            slotsUsed(current, d) >= current.slotsPerDevice)
          continue;
        LayerPlacement trial = current;
        addReplica(trial, hot, d);
        double t = layerTime(*model, cost, trial, route(trial, guess)).total();
        if (t < bestTime) {
          bestTime = t;
          bestDevice = d;
        }
      }
      if (bestDevice >= 0) {
        pending.insert(pending.begin(),
                       Pending{hot, bestDevice, cost.weightBytes});
        out.predictiveMove = true;
      }
    }
    out.bytesMoved += backgroundCopy(budget, out.copies);
    assigned = lina ? route(current, r) : splitByShares(current, r);
    out.time = layerTime(*model, cost, current, assigned);
    // Phase 2: single moves on the critical path while they pay.
    for (int step = 0; lina && options.phase2 && step < 2; ++step) {
      std::vector<double> device(N, 0.0);
      for (int e = 0; e < E; ++e)
        for (size_t i = 0; i < current.replicas[e].size(); ++i)
          if (assigned.rows[e][i] > 0)
            device[current.replicas[e][i].device] += model->computeTime(
                assigned.rows[e][i] * cost.flopsPerRow,
                cost.weightBytes + assigned.rows[e][i] * cost.bytesPerRow);
      int slow = static_cast<int>(
          std::max_element(device.begin(), device.end()) - device.begin());
      // The first move of the batch also pays the copy operation.
      double price = moveSeconds(cost.weightBytes, 1) +
                     (step == 0 ? cost.copyOpSeconds : 0.0);
      double bestGain = price;
      LayerPlacement bestPlacement;
      RowAssignment bestRows;
      LayerTime bestTime;
      for (int e = 0; e < E; ++e) {
        if (!hosts(current, e, slow) || r[e] < 2)
          continue;
        for (int d = 0; d < N; ++d) {
          if (hosts(current, e, d))
            continue;
          LayerPlacement trial = current;
          if (slotsUsed(trial, d) >= trial.slotsPerDevice) {
            // Evict the non-home replica on d that serves the fewest rows.
            int victim = -1;
            int64_t fewest = INT64_MAX;
            const int perDevice = (E + N - 1) / N;
            for (int x = 0; x < E; ++x)
              for (size_t i = 0; i < trial.replicas[x].size(); ++i)
                if (trial.replicas[x][i].device == d && x / perDevice != d &&
                    assigned.rows[x][i] < fewest) {
                  fewest = assigned.rows[x][i];
                  victim = x;
                }
            if (victim < 0)
              continue;
            removeReplica(trial, victim, d);
          }
          addReplica(trial, e, d);
          RowAssignment a = route(trial, r);
          LayerTime t = layerTime(*model, cost, trial, a);
          double gain = out.time.total() - out.time.moves - t.total();
          if (gain > bestGain) {
            bestGain = gain;
            bestPlacement = std::move(trial);
            bestRows = std::move(a);
            bestTime = t;
          }
        }
      }
      if (bestPlacement.replicas.empty())
        break;
      double moves = out.time.moves + price;
      current = std::move(bestPlacement);
      assigned = std::move(bestRows);
      out.time = bestTime;
      out.time.moves = moves;
      out.bytesMoved += cost.weightBytes;
      out.phase2 = true;
    }
    // Long-run popularity: every row served.
    double total = 0;
    for (int64_t x : r)
      total += static_cast<double>(x);
    meanBatchRows += (total - meanBatchRows) / static_cast<double>(served + 1);
    recent.push_back(r);
    if (static_cast<int>(recent.size()) >
        std::min(options.window, kSampleBatches))
      recent.pop_front();
    if (total > 0)
      for (int e = 0; e < E; ++e)
        popularity[e] += static_cast<double>(r[e]) / total;
    break;
  }
  }
  out.maxRows = assigned.maxRows();
  out.meanRows = assigned.meanRows();
  ++served;
  return out;
}
