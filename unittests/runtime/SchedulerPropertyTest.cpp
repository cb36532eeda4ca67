//===- SchedulerPropertyTest.cpp - Scheduler invariants on random plans ---===//
//
// Part of the Lina project.
//
// Random plans (compute ops, high-priority all_to_all, low-priority
// all_reduce, data and explicit dependencies, hold_low marks) run on a fake
// backend with random durations. The backend logs every start and
// completion in the order the scheduler saw them; the invariants of
// docs/RUNTIME.md are checked on that log:
//   - no op starts before its dependencies (explicit and data) completed;
//   - compute runs one op at a time, in program order;
//   - each collective queue starts its ops in program order;
//   - lina: a low-priority collective starts only while no high-priority
//     one runs or is ready to start, no hold_low compute op runs or is
//     next, and the low bytes in flight stay within the credit -- except
//     when nothing at all runs: then the held compute op waits for it, and
//     holding it back would deadlock (random plans do produce this);
//     or when the next high-priority collective is ready and must follow
//     it (the cross-queue order is fixed, see below);
//   - fifo: low-priority collectives are not held back by those rules;
//   - one issue order: every rank starts the collectives of a plan in
//     program order across both queues, whatever its compute and network
//     times (several ranks with independent random durations).
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Plan.h"
#include "lina/rt/Scheduler.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

using namespace lina::rt;
using nlohmann::json;

namespace {
struct Event {
  bool start;
  int op;
};

/// Completes started ops after scripted random durations; logs events.
/// Compute and collective durations are scaled separately, so that one
/// rank can be compute-bound and another network-bound.
class LoggingBackend : public Backend {
public:
  explicit LoggingBackend(std::mt19937 &rng, double computeScale = 1,
                          double networkScale = 1)
      : rng(rng), computeScale(computeScale), networkScale(networkScale) {}
  void start(const Op &op) override {
    std::uniform_real_distribution<double> d(0.1, 3.0);
    running[op.id] =
        clock + d(rng) * (op.isCollective() ? networkScale : computeScale);
    log.push_back({true, op.id});
  }
  std::vector<int> waitAny() override {
    double next = 1e300;
    for (auto &[id, end] : running)
      next = std::min(next, end);
    clock = next;
    std::vector<int> done;
    for (auto it = running.begin(); it != running.end();)
      if (it->second <= next) {
        done.push_back(it->first);
        log.push_back({false, it->first});
        it = running.erase(it);
      } else {
        ++it;
      }
    return done;
  }
  double now() override { return clock; }

  std::vector<Event> log;

private:
  std::mt19937 &rng;
  double computeScale, networkScale;
  std::map<int, double> running;
  double clock = 0;
};

/// A random single-rank plan of `n` ops over [4, 4] f32 buffers.
json randomPlan(std::mt19937 &rng, int n) {
  json buffers = json::array({{{"id", 0},
                               {"name", "x"},
                               {"dtype", "f32"},
                               {"shape", {4, 4}},
                               {"role", "input"},
                               {"init", "random"}},
                              {{"id", 1},
                               {"name", "w"},
                               {"dtype", "f32"},
                               {"shape", {4, 4}},
                               {"role", "param"},
                               {"init", "random"}}});
  json ops = json::array();
  std::vector<int> readable = {0, 1};
  auto pick = [&](const std::vector<int> &v) {
    return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
  };
  for (int i = 0; i < n; ++i) {
    int out = static_cast<int>(buffers.size());
    buffers.push_back({{"id", out},
                       {"name", "t" + std::to_string(out)},
                       {"dtype", "f32"},
                       {"shape", {4, 4}}});
    int kind = std::uniform_int_distribution<int>(0, 2)(rng);
    json op = {{"id", i}, {"outputs", {out}}};
    if (kind == 0) {
      op["kind"] = "dense";
      op["inputs"] = {pick(readable), 1};
      op["hold_low"] = std::bernoulli_distribution(0.3)(rng);
    } else if (kind == 1) {
      op["kind"] = "all_to_all";
      op["inputs"] = {pick(readable)};
      op["group"] = "ep";
      op["priority"] = "high";
      op["attrs"] = {{"split_axis", 0}, {"concat_axis", 0}};
    } else {
      op["kind"] = "all_reduce";
      op["inputs"] = {pick(readable)};
      op["group"] = "dp";
      op["priority"] = "low";
    }
    json deps = json::array();
    if (i > 0 && std::bernoulli_distribution(0.3)(rng))
      deps.push_back(std::uniform_int_distribution<int>(0, i - 1)(rng));
    op["deps"] = deps;
    ops.push_back(op);
    readable.push_back(out);
  }
  return {
      {"format", "lina-plan"},
      {"version", 1},
      {"world_size", 1},
      {"groups", {{"ep", {{"members", {{0}}}}}, {"dp", {{"members", {{0}}}}}}},
      {"buffers", buffers},
      {"ops", ops}};
}

void checkInvariants(const Plan &plan, const Scheduler &sched,
                     const std::vector<Event> &log, Policy policy,
                     int64_t credit, int *lowBesideHigh, int *linaChecked) {
  size_t n = plan.ops.size();
  std::vector<char> started(n, 0), done(n, 0);
  std::set<int> running;
  std::map<Queue, std::vector<int>> order;
  for (const Op &op : plan.ops)
    order[queueOf(op)].push_back(op.id);
  std::map<Queue, size_t> nextInQueue;
  for (const Event &e : log) {
    const Op &op = plan.ops[e.op];
    Queue q = queueOf(op);
    if (!e.start) {
      ASSERT_TRUE(running.count(e.op));
      running.erase(e.op);
      done[e.op] = 1;
      continue;
    }
    // Dependencies completed, program order within the queue.
    for (int d : sched.dependencies()[e.op])
      EXPECT_TRUE(done[d]) << "op " << e.op << " started before dep " << d;
    for (int d : op.deps)
      EXPECT_TRUE(done[d]) << "op " << e.op << " started before explicit dep "
                           << d;
    ASSERT_LT(nextInQueue[q], order[q].size());
    EXPECT_EQ(order[q][nextInQueue[q]], e.op)
        << "out of order in queue " << toString(q);
    ++nextInQueue[q];
    bool computeRunning = false, highRunning = false, holdRunning = false;
    int64_t lowBytes = 0;
    for (int r : running) {
      Queue rq = queueOf(plan.ops[r]);
      computeRunning |= rq == Queue::Compute;
      highRunning |= rq == Queue::High;
      holdRunning |= rq == Queue::Compute && plan.ops[r].holdLow;
      if (rq == Queue::Low)
        lowBytes += plan.collectiveBytes(plan.ops[r]);
    }
    if (q == Queue::Compute) {
      EXPECT_FALSE(computeRunning) << "two compute ops at once";
    }
    if (q == Queue::Low) {
      if (highRunning)
        ++*lowBesideHigh;
      // Liveness exception: with nothing running, the held compute op
      // waits for this collective; the scheduler must start it.
      // Fixed order: the next high-priority collective is ready, the high
      // queue is free, and it must follow this one; holding this one back
      // would only hold the high one back.
      bool forced = false;
      const auto &high = order[Queue::High];
      size_t hi = nextInQueue[Queue::High];
      if (!highRunning && hi < high.size()) {
        const auto &deps = sched.dependencies()[high[hi]];
        forced = std::all_of(deps.begin(), deps.end(),
                             [&](int d) { return done[d] != 0; });
      }
      if (policy == Policy::Lina && !running.empty() && !forced) {
        ++*linaChecked;
        EXPECT_FALSE(highRunning) << "low op " << e.op << " beside a high one";
        EXPECT_FALSE(holdRunning)
            << "low op " << e.op << " beside hold_low compute";
        const auto &compute = order[Queue::Compute];
        size_t ci = nextInQueue[Queue::Compute];
        if (ci < compute.size()) {
          EXPECT_FALSE(plan.ops[compute[ci]].holdLow)
              << "low op " << e.op << " while hold_low op " << compute[ci]
              << " is next";
        }
        if (credit > 0 && lowBytes > 0) {
          EXPECT_LE(lowBytes + plan.collectiveBytes(op), credit);
        }
      }
    }
    started[e.op] = 1;
    running.insert(e.op);
  }
  for (size_t i = 0; i < n; ++i)
    EXPECT_TRUE(done[i]) << "op " << i << " never completed";
}

TEST(SchedulerProperty, InvariantsHoldOnRandomPlans) {
  std::mt19937 rng(12345);
  int lowBesideHighFifo = 0, linaChecked = 0;
  for (int trial = 0; trial < 200; ++trial) {
    Plan plan = parsePlan(randomPlan(rng, 4 + trial % 24).dump(), "random");
    for (Policy policy : {Policy::Lina, Policy::Fifo})
      for (int64_t credit : {int64_t(0), int64_t(128)}) {
        Scheduler sched(plan, {policy, credit});
        LoggingBackend backend(rng);
        sched.run(backend);
        int lowBesideHigh = 0;
        checkInvariants(plan, sched, backend.log, policy, credit,
                        &lowBesideHigh, &linaChecked);
        if (policy == Policy::Fifo)
          lowBesideHighFifo += lowBesideHigh;
        if (::testing::Test::HasFailure())
          FAIL() << "trial " << trial << ", policy "
                 << (policy == Policy::Lina ? "lina" : "fifo") << ", credit "
                 << credit;
      }
  }
  // The baseline does overlap low- and high-priority collectives.
  EXPECT_GT(lowBesideHighFifo, 0);
  // And the lina rules were checked on many low-priority starts.
  EXPECT_GT(linaChecked, 100) << linaChecked;
}

/// The collectives of `log`, in the order they were started.
std::vector<int> issueOrder(const Plan &plan, const std::vector<Event> &log) {
  std::vector<int> seq;
  for (const Event &e : log)
    if (e.start && plan.ops[e.op].isCollective())
      seq.push_back(e.op);
  return seq;
}

TEST(SchedulerProperty, EveryRankIssuesCollectivesInOneOrder) {
  // Ranks run the same plan with independent random compute and network
  // times (each rank with its own compute/network speed ratio, from 100x
  // compute-bound to 100x network-bound). On NCCL the high and low queues
  // are two communicators: ranks that issue their collectives in different
  // orders can deadlock. The order must be a function of the plan alone.
  constexpr int kRanks = 4;
  std::mt19937 rng(2024);
  std::uniform_real_distribution<double> logScale(-2.0, 2.0);
  int runs = 0, crossQueue = 0;
  for (int trial = 0; trial < 150; ++trial) {
    Plan plan = parsePlan(randomPlan(rng, 6 + trial % 40).dump(), "random");
    std::vector<int> programOrder;
    for (const Op &op : plan.ops)
      if (op.isCollective())
        programOrder.push_back(op.id);
    for (Policy policy : {Policy::Lina, Policy::Fifo})
      for (int64_t credit : {int64_t(0), int64_t(128), int64_t(1 << 20)}) {
        if (policy == Policy::Fifo && credit != 0)
          continue;
        for (int rank = 0; rank < kRanks; ++rank) {
          Scheduler sched(plan, {policy, credit});
          LoggingBackend backend(rng, std::pow(10.0, logScale(rng)),
                                 std::pow(10.0, logScale(rng)));
          sched.run(backend);
          ++runs;
          std::vector<int> seq = issueOrder(plan, backend.log);
          // Identical on every rank because it is the program order.
          ASSERT_EQ(seq, programOrder)
              << "trial " << trial << ", rank " << rank << ", policy "
              << (policy == Policy::Lina ? "lina" : "fifo") << ", credit "
              << credit;
        }
      }
    for (size_t i = 1; i < programOrder.size(); ++i)
      if (queueOf(plan.ops[programOrder[i]]) !=
          queueOf(plan.ops[programOrder[i - 1]]))
        ++crossQueue;
  }
  EXPECT_GE(runs, 1000);
  // The plans do interleave the two queues.
  EXPECT_GT(crossQueue, 1000) << crossQueue;
}

} // namespace
