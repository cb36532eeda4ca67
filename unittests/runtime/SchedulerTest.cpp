//===- SchedulerTest.cpp - Lina's issue policy against a fake backend -----===//
//
// Part of the Lina project.
//
// A scripted backend with a virtual clock: every op takes a fixed duration.
// The tests read the resulting timeline.
//
//===----------------------------------------------------------------------===//

#include "TestPlans.h"

#include "lina/rt/Plan.h"
#include "lina/rt/Scheduler.h"

#include <gtest/gtest.h>

#include <map>

using namespace lina::rt;
using nlohmann::json;

namespace {
class FakeBackend : public Backend {
public:
  explicit FakeBackend(std::map<int, double> durations)
      : durations(std::move(durations)) {}
  void start(const Op &op) override {
    running[op.id] = clock + (durations.count(op.id) ? durations[op.id] : 1.0);
  }
  std::vector<int> waitAny() override {
    EXPECT_FALSE(running.empty());
    double next = 1e300;
    for (auto &[id, end] : running)
      next = std::min(next, end);
    clock = next;
    std::vector<int> done;
    for (auto it = running.begin(); it != running.end();) {
      if (it->second <= next) {
        done.push_back(it->first);
        it = running.erase(it);
      } else {
        ++it;
      }
    }
    return done;
  }
  double now() override { return clock; }

private:
  std::map<int, double> durations;
  std::map<int, double> running;
  double clock = 0;
};

/// dense(x) -> all_to_all (high) -> dense, with `lows` low-priority
/// all_reduce ops over parameters that are ready from the start.
json contentionPlan(int lows, int64_t elems = 64) {
  json buffers = json::array({
      {{"id", 0}, {"name", "x"}, {"dtype", "f32"}, {"shape", {4, 4}}, {"role", "input"}, {"init", "random"}},
      {{"id", 1}, {"name", "w"}, {"dtype", "f32"}, {"shape", {4, 4}}, {"role", "param"}, {"init", "random"}},
      {{"id", 2}, {"name", "a"}, {"dtype", "f32"}, {"shape", {4, 4}}},
      {{"id", 3}, {"name", "b"}, {"dtype", "f32"}, {"shape", {4, 4}}},
      {{"id", 4}, {"name", "c"}, {"dtype", "f32"}, {"shape", {4, 4}}},
  });
  json ops = json::array({
      {{"id", 0}, {"kind", "dense"}, {"inputs", {0, 1}}, {"outputs", {2}}, {"hold_low", true}},
      {{"id", 1}, {"kind", "all_to_all"}, {"inputs", {2}}, {"outputs", {3}}, {"group", "ep"},
       {"priority", "high"}},
  });
  for (int i = 0; i < lows; ++i) {
    int in = 5 + 2 * i;
    buffers.push_back({{"id", in}, {"name", "g" + std::to_string(i)}, {"dtype", "f32"},
                       {"shape", {elems}}, {"role", "param"}, {"init", "random"}});
    buffers.push_back({{"id", in + 1}, {"name", "r" + std::to_string(i)}, {"dtype", "f32"},
                       {"shape", {elems}}});
    ops.push_back({{"id", 2 + i}, {"kind", "all_reduce"}, {"inputs", {in}},
                   {"outputs", {in + 1}}, {"group", "dp"}, {"priority", "low"}});
  }
  ops.push_back({{"id", 2 + lows}, {"kind", "dense"}, {"inputs", {3, 1}}, {"outputs", {4}}});
  return {{"format", "lina-plan"}, {"version", 1}, {"world_size", 1},
          {"groups", {{"ep", {{"members", {{0}}}}}, {"dp", {{"members", {{0}}}}}}},
          {"buffers", buffers}, {"ops", ops}};
}

const OpInterval &intervalOf(const StepStats &s, int op) {
  for (const OpInterval &i : s.timeline)
    if (i.op == op)
      return i;
  throw std::runtime_error("op not in timeline");
}

void expectDependenciesRespected(const Scheduler &sched, const StepStats &s) {
  for (const OpInterval &i : s.timeline)
    for (int d : sched.dependencies()[i.op])
      EXPECT_GE(i.start, intervalOf(s, d).end) << "op " << i.op << " before dep " << d;
}

TEST(Scheduler, LinaHoldsLowPriorityWhileAllToAllIsQueuedOrRunning) {
  Plan plan = parsePlan(contentionPlan(2).dump());
  FakeBackend backend({{0, 1}, {1, 10}, {2, 5}, {3, 5}, {4, 1}});
  Scheduler sched(plan, {Policy::Lina, 0});
  StepStats s = sched.run(backend);
  ASSERT_EQ(s.timeline.size(), plan.ops.size());
  const OpInterval &a2a = intervalOf(s, 1);
  EXPECT_DOUBLE_EQ(a2a.start, 1.0); // right after its producer
  for (int low : {2, 3}) {
    const OpInterval &i = intervalOf(s, low);
    // Not during the producer (hold_low), not during the all_to_all.
    EXPECT_GE(i.start, a2a.end) << "low op " << low;
  }
  expectDependenciesRespected(sched, s);
  // The all_to_all never shares time with an all_reduce.
  EXPECT_DOUBLE_EQ(s.allToAllTime, 10.0);
}

TEST(Scheduler, FifoStartsLowPriorityRightAway) {
  Plan plan = parsePlan(contentionPlan(2).dump());
  FakeBackend backend({{0, 1}, {1, 10}, {2, 5}, {3, 5}, {4, 1}});
  Scheduler sched(plan, {Policy::Fifo, 0});
  StepStats s = sched.run(backend);
  // The first all_reduce starts at once, during the all_to_all's producer;
  // the queue is a stream, so the second follows the first.
  EXPECT_DOUBLE_EQ(intervalOf(s, 2).start, 0.0);
  EXPECT_DOUBLE_EQ(intervalOf(s, 3).start, 5.0);
  // ...so they overlap the all_to_all.
  EXPECT_LT(intervalOf(s, 2).end, intervalOf(s, 1).end);
  EXPECT_GT(intervalOf(s, 2).end, intervalOf(s, 1).start);
  expectDependenciesRespected(sched, s);
}

TEST(Scheduler, EachQueueRunsOneCollectiveAtATime) {
  for (Policy policy : {Policy::Lina, Policy::Fifo}) {
    Plan plan = parsePlan(contentionPlan(4).dump());
    FakeBackend backend({{0, 1}, {1, 2}, {2, 3}, {3, 3}, {4, 3}, {5, 3}, {6, 1}});
    Scheduler sched(plan, {policy, 0});
    StepStats s = sched.run(backend);
    for (int a : {2, 3, 4, 5})
      for (int b : {2, 3, 4, 5})
        if (a < b) {
          EXPECT_LE(intervalOf(s, a).end, intervalOf(s, b).start);
        }
  }
}

TEST(Scheduler, CreditWindowBoundsLowPriorityBytesInFlight) {
  // Three 256-byte partitions, credit 512 bytes: two in flight, not three.
  Plan plan = parsePlan(contentionPlan(3, 64).dump());
  FakeBackend backend({{0, 1}, {1, 1}, {2, 4}, {3, 4}, {4, 4}, {5, 1}});
  Scheduler sched(plan, {Policy::Lina, 512});
  StepStats s = sched.run(backend);
  int maxInFlight = 0;
  for (double t = 0; t < 20; t += 0.5) {
    int inFlight = 0;
    for (int op : {2, 3, 4}) {
      const OpInterval &i = intervalOf(s, op);
      if (i.start <= t && t < i.end)
        ++inFlight;
    }
    maxInFlight = std::max(maxInFlight, inFlight);
  }
  EXPECT_EQ(maxInFlight, 2);
  EXPECT_DOUBLE_EQ(intervalOf(s, 2).start, intervalOf(s, 3).start);
  EXPECT_GE(intervalOf(s, 4).start, intervalOf(s, 2).end);
}

TEST(Scheduler, KeepsProgramOrderWithinAQueue) {
  // The first low all_reduce reads the output of the last compute op; the
  // second is ready at once. Neither policy may start the second first,
  // because every rank must issue a communicator's collectives in the same
  // order.
  json p = contentionPlan(2);
  p["ops"][2]["inputs"] = {4};
  p["buffers"][5]["shape"] = {4, 4};
  p["buffers"][6]["shape"] = {4, 4};
  // Move the consumer dense before the all_reduce ops (program order).
  json dense = p["ops"][4];
  p["ops"].erase(4);
  dense["id"] = 2;
  p["ops"][2]["id"] = 3;
  p["ops"][3]["id"] = 4;
  p["ops"].insert(p["ops"].begin() + 2, dense);
  for (Policy policy : {Policy::Lina, Policy::Fifo}) {
    Plan plan = parsePlan(p.dump());
    FakeBackend backend({{0, 1}, {1, 3}, {2, 2}, {3, 1}, {4, 1}});
    Scheduler sched(plan, {policy, 0});
    StepStats s = sched.run(backend);
    EXPECT_LE(intervalOf(s, 3).start, intervalOf(s, 4).start);
    expectDependenciesRespected(sched, s);
  }
}

TEST(Scheduler, ViewsMakeReadersWaitForEveryOverlappingWriter) {
  // Partition outputs are views of one buffer: a reader of the whole
  // buffer depends on all of them.
  json p = test::smallPlan(4);
  p["buffers"].push_back({{"id", 14}, {"name", "s"}, {"dtype", "f32"}, {"shape", {8, 8}}});
  p["ops"].push_back({{"id", 7}, {"kind", "add"}, {"inputs", {5, 5}}, {"outputs", {14}}});
  Plan plan = parsePlan(p.dump());
  Scheduler sched(plan, {});
  EXPECT_EQ(sched.dependencies()[7], (std::vector<int>{3, 4, 5, 6}));
  // A partition's input view depends on the op that wrote the gradient.
  EXPECT_EQ(sched.dependencies()[3], (std::vector<int>{2}));
}

TEST(Scheduler, ParsesPolicies) {
  EXPECT_EQ(parsePolicy("lina"), Policy::Lina);
  EXPECT_EQ(parsePolicy("fifo"), Policy::Fifo);
  EXPECT_THROW(parsePolicy("random"), PlanError);
}
} // namespace
