//===- Simulator.cpp - Discrete-event cluster simulator backend -----------===//
//
// Part of the Lina project.
//
// One thread per simulated rank runs the real Scheduler against a
// RankBackend; the threads meet in a Coordinator that owns the simulated
// clock. Time advances only when every rank is blocked in waitAny() (or has
// finished) and no completion is waiting to be consumed, so the simulation
// is deterministic whatever the host's thread timing.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Simulator.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace lina;
using namespace lina::rt;

void lina::rt::computeCost(const Plan &plan, const Op &op, double &flops,
                           double &bytes) {
  bytes = 0;
  for (int id : op.inputs)
    bytes += static_cast<double>(plan.buffer(id).numBytes());
  for (int id : op.outputs)
    bytes += static_cast<double>(plan.buffer(id).numBytes());
  auto dim = [&](int id, size_t i) {
    return static_cast<double>(plan.buffer(id).shape.at(i));
  };
  switch (op.kind) {
  case OpKind::Dense: // 2 T I O
    flops = 2 * dim(op.inputs[0], 0) * dim(op.inputs[0], 1) * dim(op.inputs[1], 1);
    break;
  case OpKind::DenseGrad: // recompute + dx + dw
    flops = 6 * dim(op.inputs[1], 0) * dim(op.inputs[1], 1) * dim(op.inputs[2], 1);
    break;
  case OpKind::Gate:
    flops = 2 * dim(op.inputs[0], 0) * dim(op.inputs[0], 1) * dim(op.inputs[1], 1);
    break;
  case OpKind::GateGrad:
    flops = 6 * dim(op.inputs[1], 0) * dim(op.inputs[1], 1) * dim(op.inputs[2], 1);
    break;
  case OpKind::ExpertFfn: // two GEMMs per local expert
    flops = 4 * dim(op.inputs[0], 0) * dim(op.inputs[0], 1) * dim(op.inputs[0], 2) *
            dim(op.inputs[1], 2);
    break;
  case OpKind::ExpertFfnGrad: // recompute + four GEMMs
    flops = 12 * dim(op.inputs[1], 0) * dim(op.inputs[1], 1) * dim(op.inputs[1], 2) *
            dim(op.inputs[2], 2);
    break;
  default: // permutations, adds and copies are bound by memory
    flops = 0;
    break;
  }
}

namespace {
struct Flow {
  int op = 0;
  std::vector<int> ranks;
  std::vector<int> resources;
  double latencyEnd = 0; ///< the fixed part ends here
  double work = 0;       ///< bandwidth part left, in seconds-when-alone
  double rate = 1;
};

class Coordinator {
public:
  Coordinator(const Plan &plan, const ClusterSpec &cluster, SimOptions options)
      : plan(plan), cluster(cluster), model(cluster), options(options),
        n(plan.worldSize), ready(n), seq(n) {}

  void start(int rank, const Op &op) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!op.isCollective()) {
      double flops, bytes;
      computeCost(plan, op, flops, bytes);
      computes.push_back({clock + model.computeTime(flops, bytes), rank, op.id});
      return;
    }
    const Group &group = plan.groups.at(op.group);
    int index = 0;
    const std::vector<int> &members = group.instanceOf(rank, &index);
    int instance = static_cast<int>(&members - group.members.data());
    Queue q = queueOf(op);
    std::string channel = op.group + "/" + std::to_string(instance) + "/" +
                          toString(q);
    int k = seq[rank][channel]++;
    Pending &p = pending[{channel, k}];
    if (p.issued == 0)
      p.op = op.id;
    else if (p.op != op.id)
      fail("ranks issue different collectives on group '" + op.group +
           "': " + plan.ops[p.op].describe() + " and " + op.describe());
    if (++p.issued < static_cast<int>(members.size()))
      return;
    pending.erase({channel, k});
    if (members.size() == 1) {
      computes.push_back({clock, rank, op.id});
      return;
    }
    startFlow(op, members);
  }

  std::vector<int> waitAny(int rank) {
    std::unique_lock<std::mutex> lock(mutex);
    ++waiting;
    while (ready[rank].empty() && error.empty()) {
      if (waiting + finished == n && allReadyEmpty())
        advance();
      else
        cv.wait(lock);
    }
    --waiting;
    if (!error.empty())
      throw PlanError(error);
    std::vector<int> out;
    out.swap(ready[rank]);
    return out;
  }

  void finish() {
    std::lock_guard<std::mutex> lock(mutex);
    ++finished;
    cv.notify_all();
  }

  void abort(const std::string &msg) {
    std::lock_guard<std::mutex> lock(mutex);
    if (error.empty())
      error = msg;
    ++finished;
    cv.notify_all();
  }

  double now() {
    std::lock_guard<std::mutex> lock(mutex);
    return clock;
  }

private:
  struct Pending {
    int op = -1;
    int issued = 0;
  };
  struct Compute {
    double end;
    int rank, op;
  };

  [[noreturn]] void fail(const std::string &msg) {
    error = msg;
    cv.notify_all();
    throw PlanError(msg);
  }

  bool allReadyEmpty() const {
    return std::all_of(ready.begin(), ready.end(),
                       [](const std::vector<int> &r) { return r.empty(); });
  }

  /// Time of a collective alone on the network: fixed part and bandwidth
  /// part. Members per node g' and nodes spanned m generalise the cost
  /// model's formulas to groups that are not consecutive ranks.
  void aloneTime(const Op &op, const std::vector<int> &members, double &fixed,
                 double &transfer) {
    double bytes = static_cast<double>(plan.collectiveBytes(op));
    std::set<int> nodes;
    for (int r : members)
      nodes.insert(r / cluster.gpusPerNode);
    double n = static_cast<double>(members.size());
    double m = static_cast<double>(nodes.size());
    double g = n / m; // members per node
    const LinkSpec &in = cluster.intraNode, &out = cluster.interNode;
    if (op.kind == OpKind::AllReduce) {
      fixed = 2 * (g - 1) * in.latency + 2 * (m - 1) * out.latency;
      transfer = 2 * (g - 1) / g * bytes / in.bandwidth +
                 2 * (m - 1) / m * bytes / out.bandwidth;
    } else {
      fixed = (m > 1 ? (n - 1) * out.latency : (n - 1) * in.latency);
      double intra = (g - 1) / n * bytes / in.bandwidth;
      double inter = (n - g) / n * bytes * g / out.bandwidth;
      transfer = std::max(intra, inter);
    }
    fixed += cluster.launchLatency;
  }

  void startFlow(const Op &op, const std::vector<int> &members) {
    Flow f;
    f.op = op.id;
    f.ranks = members;
    std::set<int> nodes;
    for (int r : members) {
      f.resources.push_back(r); // the GPU's intra-node link
      nodes.insert(r / cluster.gpusPerNode);
    }
    if (nodes.size() > 1)
      for (int node : nodes)
        f.resources.push_back(n + node); // the node's network interface
    double fixed, transfer;
    aloneTime(op, members, fixed, transfer);
    f.latencyEnd = clock + fixed;
    f.work = transfer;
    flows.push_back(f);
    updateRates();
  }

  void updateRates() {
    std::map<int, int> users;
    for (const Flow &f : flows)
      if (f.latencyEnd <= clock)
        for (int r : f.resources)
          ++users[r];
    for (Flow &f : flows) {
      f.rate = 1;
      if (options.contentionFree)
        continue;
      for (int r : f.resources)
        if (users[r] > 1)
          f.rate = std::min(f.rate, 1.0 / users[r]);
    }
  }

  /// Advances the clock to the next event and delivers its completions.
  void advance() {
    constexpr double eps = 1e-15;
    while (true) {
      double next = INFINITY;
      for (const Compute &c : computes)
        next = std::min(next, c.end);
      for (const Flow &f : flows)
        next = std::min(next, f.latencyEnd > clock ? f.latencyEnd
                                                   : clock + f.work / f.rate);
      if (!std::isfinite(next)) {
        std::string waitingOn;
        for (auto &[key, p] : pending)
          waitingOn += " " + plan.ops[p.op].describe() + " (" +
                       std::to_string(p.issued) + " ranks issued)";
        error = "simulated ranks deadlocked; collectives waiting for ranks:" +
                (waitingOn.empty() ? std::string(" none") : waitingOn);
        cv.notify_all();
        return;
      }
      for (Flow &f : flows)
        if (f.latencyEnd <= clock)
          f.work -= f.rate * (next - clock);
      clock = next;
      bool delivered = false;
      for (auto it = computes.begin(); it != computes.end();) {
        if (it->end <= clock + eps) {
          ready[it->rank].push_back(it->op);
          delivered = true;
          it = computes.erase(it);
        } else {
          ++it;
        }
      }
      for (auto it = flows.begin(); it != flows.end();) {
        if (it->latencyEnd <= clock + eps && it->work <= eps * 1e3) {
          for (int r : it->ranks)
            ready[r].push_back(it->op);
          delivered = true;
          it = flows.erase(it);
        } else {
          ++it;
        }
      }
      updateRates();
      if (delivered) {
        cv.notify_all();
        return;
      }
    }
  }

  const Plan &plan;
  ClusterSpec cluster;
  CostModel model;
  SimOptions options;
  int n;
  std::mutex mutex;
  std::condition_variable cv;
  double clock = 0;
  int waiting = 0, finished = 0;
  std::vector<std::vector<int>> ready;
  std::vector<std::map<std::string, int>> seq;
  std::map<std::pair<std::string, int>, Pending> pending;
  std::vector<Compute> computes;
  std::vector<Flow> flows;
  std::string error;
};

class RankBackend : public Backend {
public:
  RankBackend(Coordinator &sim, int rank) : sim(sim), rank(rank) {}
  void start(const Op &op) override { sim.start(rank, op); }
  std::vector<int> waitAny() override { return sim.waitAny(rank); }
  double now() override { return sim.now(); }

private:
  Coordinator &sim;
  int rank;
};
} // namespace

SimResult lina::rt::simulate(const Plan &plan, const ClusterSpec &cluster,
                             const SimOptions &options) {
  if (plan.worldSize > cluster.numGpus())
    throw PlanError("the plan needs " + std::to_string(plan.worldSize) +
                    " GPUs, but the cluster '" + cluster.name + "' has " +
                    std::to_string(cluster.numGpus()));
  Coordinator sim(plan, cluster, options);
  int n = plan.worldSize;
  SimResult result;
  result.ranks.resize(n);
  std::vector<std::string> errors(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      RankBackend backend(sim, r);
      try {
        Scheduler scheduler(plan, options.scheduler);
        result.ranks[r] = scheduler.run(backend);
        sim.finish();
      } catch (const std::exception &e) {
        errors[r] = e.what();
        sim.abort(e.what());
      }
    });
  for (std::thread &t : threads)
    t.join();
  for (const std::string &e : errors)
    if (!e.empty())
      throw PlanError("simulator: " + e);
  for (const StepStats &s : result.ranks) {
    result.stepTime = std::max(result.stepTime, s.stepTime);
    result.meanAllToAllBlocked += s.allToAllBlocked / n;
    result.meanAllToAllTime += s.allToAllTime / n;
    result.meanAllReduceTime += s.allReduceTime / n;
  }
  return result;
}
