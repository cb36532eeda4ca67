//===- Placement.cpp - Expert placement on devices ------------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/Analysis/Placement.h"

#include <algorithm>
#include <cmath>
#include <numeric>
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
           std::to_string(numExperts) + " experts (need devices x slots >= " +
           "experts)";
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
               std::vector<double> &deviceLoad) {
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
    if (share > 1e-9)
      kept.push_back({reps[i].device, share});
  }
  double sum = 0;
  for (const Replica &r : kept)
    sum += r.share;
  for (Replica &r : kept)
    r.share /= sum;
  std::sort(kept.begin(), kept.end(),
            [](const Replica &a, const Replica &b) { return a.device < b.device; });
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
    std::sort(reps.begin(), reps.end(),
              [](const Replica &a, const Replica &b) { return a.device < b.device; });
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
                              bool homeFirst) {
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
  std::stable_sort(items.begin(), items.end(),
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
    std::sort(p.replicas[e].begin(), p.replicas[e].end(),
              [](const Replica &a, const Replica &b) { return a.device < b.device; });
  }
  deviceLoad = p.deviceLoads(loads);

  std::vector<int> order(E);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return loads[a] > loads[b]; });
  double total = std::accumulate(loads.begin(), loads.end(), 0.0);
  double previous = p.maxDeviceLoad(loads);
  for (int round = 0; round < 64; ++round) {
    for (int e : order)
      waterFill(p, e, loads[e], deviceLoad);
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
  return p;
}

} // namespace

std::optional<LayerPlacement> lina::linaPlacement(const std::vector<double> &loads,
                                                  int numDevices,
                                                  int slotsPerDevice,
                                                  std::string &error) {
  const int E = static_cast<int>(loads.size());
  std::optional<LayerPlacement> fallback =
      staticPlacement(E, numDevices, slotsPerDevice, error);
  if (!fallback)
    return std::nullopt;
  double total = 0;
  for (int e = 0; e < E; ++e) {
    if (!std::isfinite(loads[e]) || loads[e] < 0) {
      error = "expert " + std::to_string(e) + " has load " +
              std::to_string(loads[e]) + " (loads must be finite and >= 0)";
      return std::nullopt;
    }
    total += loads[e];
  }
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
  LayerPlacement p = lpt.maxDeviceLoad(loads) <
                             home.maxDeviceLoad(loads) * (1 - 1e-6)
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
