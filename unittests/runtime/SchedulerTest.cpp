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
      {{"id", 0},
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
       {"init", "random"}},
      {{"id", 2}, {"name", "a"}, {"dtype", "f32"}, {"shape", {4, 4}}},
      {{"id", 3}, {"name", "b"}, {"dtype", "f32"}, {"shape", {4, 4}}},
      {{"id", 4}, {"name", "c"}, {"dtype", "f32"}, {"shape", {4, 4}}},
  });
  json ops = json::array({
      {{"id", 0},
       {"kind", "dense"},
       {"inputs", {0, 1}},
       {"outputs", {2}},
       {"hold_low", true}},
      {{"id", 1},
       {"kind", "all_to_all"},
       {"inputs", {2}},
       {"outputs", {3}},
       {"group", "ep"},
       {"priority", "high"}},
  });
  for (int i = 0; i < lows; ++i) {
    int in = 5 + 2 * i;
    buffers.push_back({{"id", in},
                       {"name", "g" + std::to_string(i)},
                       {"dtype", "f32"},
                       {"shape", {elems}},
                       {"role", "param"},
                       {"init", "random"}});
    buffers.push_back({{"id", in + 1},
                       {"name", "r" + std::to_string(i)},
                       {"dtype", "f32"},
                       {"shape", {elems}}});
    ops.push_back({{"id", 2 + i},
                   {"kind", "all_reduce"},
                   {"inputs", {in}},
                   {"outputs", {in + 1}},
                   {"group", "dp"},
                   {"priority", "low"}});
  }
  ops.push_back({{"id", 2 + lows},
                 {"kind", "dense"},
                 {"inputs", {3, 1}},
                 {"outputs", {4}}});
  return {
      {"format", "lina-plan"},
      {"version", 1},
      {"world_size", 1},
      {"groups", {{"ep", {{"members", {{0}}}}}, {"dp", {{"members", {{0}}}}}}},
      {"buffers", buffers},
      {"ops", ops}};
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
      EXPECT_GE(i.start, intervalOf(s, d).end)
          << "op " << i.op << " before dep " << d;
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
  // The first all_reduce starts as soon as the all_to_all before it (in
  // program order) is issued, while it runs; the queue is a stream, so the
  // second follows the first.
  EXPECT_DOUBLE_EQ(intervalOf(s, 1).start, 1.0);
  EXPECT_DOUBLE_EQ(intervalOf(s, 2).start, 1.0);
  EXPECT_DOUBLE_EQ(intervalOf(s, 3).start, 6.0);
  // ...so they overlap the all_to_all.
  EXPECT_LT(intervalOf(s, 2).end, intervalOf(s, 1).end);
  EXPECT_GT(intervalOf(s, 2).end, intervalOf(s, 1).start);
  expectDependenciesRespected(sched, s);
}

TEST(Scheduler, EachQueueRunsOneCollectiveAtATime) {
  for (Policy policy : {Policy::Lina, Policy::Fifo}) {
    Plan plan = parsePlan(contentionPlan(4).dump());
    FakeBackend backend(
        {{0, 1}, {1, 2}, {2, 3}, {3, 3}, {4, 3}, {5, 3}, {6, 1}});
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
  p["buffers"].push_back(
      {{"id", 14}, {"name", "s"}, {"dtype", "f32"}, {"shape", {8, 8}}});
  p["ops"].push_back(
      {{"id", 7}, {"kind", "add"}, {"inputs", {5, 5}}, {"outputs", {14}}});
  Plan plan = parsePlan(p.dump());
  Scheduler sched(plan, {});
  EXPECT_EQ(sched.dependencies()[7], (std::vector<int>{3, 4, 5, 6}));
  // A partition's input view depends on the op that wrote the gradient.
  EXPECT_EQ(sched.dependencies()[3], (std::vector<int>{2}));
}

/// x -> dense (slow) -> all_reduce (low), then an all_to_all (high) of a
/// parameter that is ready at once: program order puts the all_reduce
/// first, so no rank may issue the all_to_all before it.
json crossQueuePlan() {
  json buffers = json::array({
      {{"id", 0},
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
       {"init", "random"}},
      {{"id", 2}, {"name", "g"}, {"dtype", "f32"}, {"shape", {4, 4}}},
      {{"id", 3}, {"name", "r"}, {"dtype", "f32"}, {"shape", {4, 4}}},
      {{"id", 4}, {"name", "y"}, {"dtype", "f32"}, {"shape", {4, 4}}},
  });
  json ops = json::array({
      {{"id", 0}, {"kind", "dense"}, {"inputs", {0, 1}}, {"outputs", {2}}},
      {{"id", 1},
       {"kind", "all_reduce"},
       {"inputs", {2}},
       {"outputs", {3}},
       {"group", "dp"},
       {"priority", "low"}},
      {{"id", 2},
       {"kind", "all_to_all"},
       {"inputs", {1}},
       {"outputs", {4}},
       {"group", "ep"},
       {"priority", "high"}},
  });
  return {
      {"format", "lina-plan"},
      {"version", 1},
      {"world_size", 1},
      {"groups", {{"ep", {{"members", {{0}}}}}, {"dp", {{"members", {{0}}}}}}},
      {"buffers", buffers},
      {"ops", ops}};
}

TEST(Scheduler, HighPriorityWaitsForAnEarlierLowPriorityIssue) {
  for (Policy policy : {Policy::Lina, Policy::Fifo}) {
    Plan plan = parsePlan(crossQueuePlan().dump());
    FakeBackend backend({{0, 3}, {1, 5}, {2, 2}});
    Scheduler sched(plan, {policy, 0});
    StepStats s = sched.run(backend);
    // The all_to_all is ready at 0 but follows the all_reduce, issued when
    // the dense is done; then both run (the low one is not held back, the
    // high one is waiting for it).
    EXPECT_DOUBLE_EQ(intervalOf(s, 1).start, 3.0);
    EXPECT_DOUBLE_EQ(intervalOf(s, 2).start, 3.0);
    EXPECT_DOUBLE_EQ(s.stepTime, 8.0);
  }
}

TEST(Scheduler, LowPriorityWaitsForAnEarlierHighPriorityIssue) {
  // Swap the two collectives in program order: the all_reduce (ready at 3)
  // is not issued before the all_to_all (ready at 0), which runs until 10.
  json p = crossQueuePlan();
  std::swap(p["ops"][1], p["ops"][2]);
  p["ops"][1]["id"] = 1;
  p["ops"][2]["id"] = 2;
  Plan plan = parsePlan(p.dump());
  FakeBackend backend({{0, 3}, {1, 10}, {2, 5}});
  StepStats fifo = Scheduler(plan, {Policy::Fifo, 0}).run(backend);
  EXPECT_DOUBLE_EQ(intervalOf(fifo, 1).start, 0.0);
  EXPECT_DOUBLE_EQ(intervalOf(fifo, 2).start, 3.0); // overlaps
  FakeBackend backend2({{0, 3}, {1, 10}, {2, 5}});
  StepStats lina = Scheduler(plan, {Policy::Lina, 0}).run(backend2);
  EXPECT_DOUBLE_EQ(intervalOf(lina, 2).start, 10.0); // held: a2a running
}

/// dense -> all_to_all -> (all_reduce of a parameter) -> dense (hold_low:
/// it produces the next all_to_all's input) -> all_to_all.
json admissionPlan() {
  json buffers = json::array({
      {{"id", 0},
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
       {"init", "random"}},
      {{"id", 2}, {"name", "a"}, {"dtype", "f32"}, {"shape", {4, 4}}},
      {{"id", 3}, {"name", "b"}, {"dtype", "f32"}, {"shape", {4, 4}}},
      {{"id", 4}, {"name", "r"}, {"dtype", "f32"}, {"shape", {4, 4}}},
      {{"id", 5}, {"name", "c"}, {"dtype", "f32"}, {"shape", {4, 4}}},
      {{"id", 6}, {"name", "d"}, {"dtype", "f32"}, {"shape", {4, 4}}},
  });
  json ops = json::array({
      {{"id", 0},
       {"kind", "dense"},
       {"inputs", {0, 1}},
       {"outputs", {2}},
       {"hold_low", true}},
      {{"id", 1},
       {"kind", "all_to_all"},
       {"inputs", {2}},
       {"outputs", {3}},
       {"group", "ep"},
       {"priority", "high"}},
      {{"id", 2},
       {"kind", "all_reduce"},
       {"inputs", {1}},
       {"outputs", {4}},
       {"group", "dp"},
       {"priority", "low"}},
      {{"id", 3},
       {"kind", "dense"},
       {"inputs", {3, 1}},
       {"outputs", {5}},
       {"hold_low", true}},
      {{"id", 4},
       {"kind", "all_to_all"},
       {"inputs", {5}},
       {"outputs", {6}},
       {"group", "ep"},
       {"priority", "high"}},
  });
  return {
      {"format", "lina-plan"},
      {"version", 1},
      {"world_size", 1},
      {"groups", {{"ep", {{"members", {{0}}}}}, {"dp", {{"members", {{0}}}}}}},
      {"buffers", buffers},
      {"ops", ops}};
}

TEST(Scheduler, AdmissionRuleUsesComputeThatFeedsNoImminentAllToAll) {
  Plan plan = parsePlan(admissionPlan().dump());
  std::map<int, double> t = {{0, 2}, {1, 3}, {2, 4}, {3, 10}, {4, 3}};
  // hold_low: the all_reduce may not run beside the dense that produces the
  // next all_to_all's input; it is issued with that all_to_all and shares
  // the network with it.
  FakeBackend holdBackend(t);
  StepStats hold = Scheduler(plan, {Policy::Lina, 0}).run(holdBackend);
  EXPECT_DOUBLE_EQ(intervalOf(hold, 2).start, 15.0);
  EXPECT_DOUBLE_EQ(intervalOf(hold, 4).start, 15.0);
  // Admission: 4 s of all_reduce fit in the 10 s dense: it starts when the
  // first all_to_all ends and is done before the second needs the network.
  SchedulerOptions options{Policy::Lina, 0,
                           [&](const Op &op) { return t[op.id]; }};
  FakeBackend admitBackend(t);
  StepStats admit = Scheduler(plan, options).run(admitBackend);
  EXPECT_DOUBLE_EQ(intervalOf(admit, 2).start, 5.0);
  EXPECT_LE(intervalOf(admit, 2).end, intervalOf(admit, 4).start);
  EXPECT_DOUBLE_EQ(admit.stepTime, 18.0);
  // A 12 s all_reduce does not fit, but it is more than the 10 s of compute
  // left: the low queue is the critical resource and ends the step anyway,
  // so it is not held: it is issued right after the first all_to_all and
  // shares the network with it (held, the step would take 27 s).
  t[2] = 12;
  FakeBackend criticalBackend(t);
  StepStats critical = Scheduler(plan, options).run(criticalBackend);
  EXPECT_DOUBLE_EQ(intervalOf(critical, 2).start, 2.0);
  EXPECT_DOUBLE_EQ(critical.stepTime, 18.0);
  // With 20 s more compute after the second all_to_all it is not critical:
  // it is held until the second all_to_all is ready, then issued first
  // (program order) -- never reordered.
  json withTail = admissionPlan();
  withTail["buffers"].push_back(
      {{"id", 7}, {"name", "e"}, {"dtype", "f32"}, {"shape", {4, 4}}});
  withTail["ops"].push_back(
      {{"id", 5}, {"kind", "dense"}, {"inputs", {6, 1}}, {"outputs", {7}}});
  Plan tailPlan = parsePlan(withTail.dump());
  t[5] = 20;
  FakeBackend bigBackend(t);
  StepStats big = Scheduler(tailPlan, options).run(bigBackend);
  EXPECT_DOUBLE_EQ(intervalOf(big, 2).start, 15.0);
  EXPECT_DOUBLE_EQ(intervalOf(big, 4).start, 15.0);
}

TEST(Scheduler, ParsesPolicies) {
  EXPECT_EQ(parsePolicy("lina"), Policy::Lina);
  EXPECT_EQ(parsePolicy("fifo"), Policy::Fifo);
  EXPECT_THROW(parsePolicy("random"), PlanError);
}
} // namespace
