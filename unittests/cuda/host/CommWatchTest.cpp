//===- CommWatchTest.cpp - Waits, errors and teardown without a GPU -------===//
//
// Part of the Lina project.
//
// The cuda backend's communicator order, bounded waits, abort-on-error and
// teardown decisions, driven by a fake communicator library and a fake
// clock. Needs no GPU, CUDA or NCCL: runs everywhere.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/cuda/CommWatch.h"
#include "lina/rt/Scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

using namespace lina::rt;
using namespace lina::rt::cuda;

namespace {

/// A communicator library whose state the test sets; records every call.
class FakeDriver : public CommDriver {
public:
  explicit FakeDriver(size_t n) : state(n, CommState::Ready), polls(n, 0) {}

  CommState poll(size_t comm, std::string &reason) override {
    ++polls.at(comm);
    if (becomeReadyAfter.count(comm) && polls[comm] >= becomeReadyAfter[comm])
      state[comm] = CommState::Ready;
    if (state[comm] == CommState::Failed)
      reason = "remote process exited (ncclRemoteError = 6)";
    return state[comm];
  }
  CommState finalize(size_t comm, std::string &reason) override {
    log.push_back("finalize " + std::to_string(comm));
    return poll(comm, reason);
  }
  void destroy(size_t comm) override {
    log.push_back("destroy " + std::to_string(comm));
  }
  void abort(size_t comm) override {
    log.push_back("abort " + std::to_string(comm));
  }

  std::vector<CommState> state;
  std::vector<int> polls;
  std::map<size_t, int> becomeReadyAfter;
  std::vector<std::string> log;
};

/// Each pause advances time by `step` seconds; counts the kinds of pause.
class FakeClock : public WaitClock {
public:
  double now() override { return t; }
  void pause(Pause p) override {
    t += step;
    (p == Pause::Spin ? spins : yields) += 1;
  }
  double t = 100.0, step = 0.001;
  int spins = 0, yields = 0;
};

int count(const std::vector<std::string> &log, const std::string &prefix) {
  int n = 0;
  for (const std::string &s : log)
    n += s.rfind(prefix, 0) == 0;
  return n;
}

std::string readFile(const std::string &path) {
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Watched : ::testing::Test {
  FakeDriver driver{3};
  FakeClock clock;
  CommWatch watch{5, driver, clock, 2.0};
  void SetUp() override {
    watch.add("group 'dp' (low queue)");
    watch.add("group 'ep' (high queue)");
    watch.add("group 'tp' (high queue)");
  }
};

} // namespace

//===----------------------------------------------------------------------===//
// Communicator order
//===----------------------------------------------------------------------===//

TEST(CommOrder, EveryRankWalksTheSameCommunicatorsInPlanOrder) {
  Plan plan = parsePlan(
      readFile(std::string(LINA_RUNTIME_TEST_PLANS) + "/moe2_np4.lina.json"));
  std::vector<std::string> first;
  for (int rank = 0; rank < 4; ++rank) {
    std::vector<CommSpec> order = communicatorOrder(plan, rank);
    std::vector<std::string> names;
    for (const CommSpec &c : order) {
      names.push_back(c.name());
      EXPECT_EQ(c.size, 4);
      EXPECT_EQ(c.leader, 0);
      EXPECT_EQ(c.index, rank);
    }
    // dp only carries low-priority all_reduce, ep only all_to_all: one
    // communicator each, groups by name.
    ASSERT_EQ(names, (std::vector<std::string>{"group 'dp' (low queue)",
                                               "group 'ep' (high queue)"}));
    if (rank == 0)
      first = names;
    EXPECT_EQ(names, first);
  }
}

TEST(CommOrder, SeveralInstancesHaveTheirOwnLeader) {
  std::string text =
      readFile(std::string(LINA_RUNTIME_TEST_PLANS) + "/moe2_np4.lina.json");
  // dp as two instances {0,2} and {1,3}; all_reduce shapes do not depend
  // on the group size.
  std::string from = "\"dp\": {\"members\": [[0, 1, 2, 3]]}";
  size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos) << "test plan layout changed";
  text.replace(at, from.size(), "\"dp\": {\"members\": [[0, 2], [1, 3]]}");
  Plan plan = parsePlan(text);
  struct Want {
    int instance, index, leader;
  } want[4] = {{0, 0, 0}, {1, 0, 1}, {0, 1, 0}, {1, 1, 1}};
  for (int rank = 0; rank < 4; ++rank) {
    std::vector<CommSpec> order = communicatorOrder(plan, rank);
    ASSERT_EQ(order.size(), 2u);
    EXPECT_EQ(order[0].group, "dp");
    EXPECT_TRUE(order[0].low);
    EXPECT_EQ(order[0].size, 2);
    EXPECT_EQ(order[0].instance, want[rank].instance) << "rank " << rank;
    EXPECT_EQ(order[0].index, want[rank].index) << "rank " << rank;
    EXPECT_EQ(order[0].leader, want[rank].leader) << "rank " << rank;
    EXPECT_EQ(order[1].group, "ep");
    EXPECT_FALSE(order[1].low);
  }
}

TEST(CommOrder, OneRankGroupsNeedNoCommunicator) {
  Plan plan = parsePlan(
      readFile(std::string(LINA_RUNTIME_TEST_PLANS) + "/moe2_np1.lina.json"));
  EXPECT_TRUE(communicatorOrder(plan, 0).empty());
}

//===----------------------------------------------------------------------===//
// Cross-stream order (compute is reported when enqueued)
//===----------------------------------------------------------------------===//

TEST(StreamOrder, EveryOpWaitsForItsDependenciesOnOtherStreams) {
  Plan plan = parsePlan(
      readFile(std::string(LINA_RUNTIME_TEST_PLANS) + "/moe2_np2.lina.json"));
  std::vector<std::vector<int>> deps = Scheduler(plan, {}).dependencies();
  int checkedCollectives = 0;
  for (const Op &op : plan.ops) {
    Queue mine = queueOf(op);
    std::vector<int> waits = eventsToWait(plan, deps, op, false);
    std::set<int> got(waits.begin(), waits.end());
    EXPECT_EQ(got.size(), waits.size())
        << "op " << op.id << ": a repeated wait";
    int lastCompute = -1;
    for (int d : deps[op.id]) {
      Queue theirs = queueOf(plan.ops[d]);
      if (theirs == Queue::Compute)
        lastCompute = std::max(lastCompute, d);
      else // a collective on another queue: waited for; on its own: never
        EXPECT_EQ(got.count(d), theirs != mine ? 1u : 0u)
            << "op " << op.id << " dep " << d;
    }
    for (int w : waits) {
      EXPECT_TRUE(std::count(deps[op.id].begin(), deps[op.id].end(), w))
          << "op " << op.id << " waits for " << w << ", not a dependency";
      if (queueOf(plan.ops[w]) == Queue::Compute) {
        EXPECT_EQ(w, lastCompute) << "op " << op.id;
      }
    }
    if (mine == Queue::Compute) {
      EXPECT_FALSE(lastCompute >= 0 && got.count(lastCompute))
          << "op " << op.id << " waits for its own stream";
    } else if (lastCompute >= 0) {
      // A collective after the compute that produces its input.
      EXPECT_EQ(got.count(lastCompute), 1u) << "op " << op.id;
      for (int in : op.inputs) {
        const Buffer &b = plan.buffers[in];
        int producer = plan.producers[b.isView() ? b.viewBase : in];
        if (producer >= 0 && queueOf(plan.ops[producer]) == Queue::Compute) {
          EXPECT_LE(producer, lastCompute) << "op " << op.id;
        }
      }
      ++checkedCollectives;
    }
  }
  EXPECT_GT(checkedCollectives, 4); // all_to_all and all_reduce partitions
}

TEST(StreamOrder, TheSideStreamWaitsForEveryOtherQueue) {
  Plan plan = parsePlan(
      readFile(std::string(LINA_RUNTIME_TEST_PLANS) + "/moe2_np2.lina.json"));
  std::vector<std::vector<int>> deps = Scheduler(plan, {}).dependencies();
  for (const Op &op : plan.ops) {
    std::vector<int> side = eventsToWait(plan, deps, op, true);
    std::set<int> got(side.begin(), side.end());
    int lastCompute = -1;
    for (int d : deps[op.id]) {
      if (queueOf(plan.ops[d]) == Queue::Compute) {
        lastCompute = std::max(lastCompute, d);
      } else {
        EXPECT_EQ(got.count(d), 1u) << "op " << op.id << " dep " << d;
      }
    }
    if (lastCompute >= 0) {
      EXPECT_EQ(got.count(lastCompute), 1u) << "op " << op.id;
    }
  }
}

TEST(StreamOrder, TheLastComputeOpEndsTheStep) {
  Plan plan = parsePlan(
      readFile(std::string(LINA_RUNTIME_TEST_PLANS) + "/moe2_np2.lina.json"));
  int last = lastComputeOp(plan);
  ASSERT_GE(last, 0);
  EXPECT_EQ(queueOf(plan.ops[last]), Queue::Compute);
  for (const Op &op : plan.ops) {
    if (op.id > last) {
      EXPECT_NE(queueOf(op), Queue::Compute) << "op " << op.id;
    }
  }
}

//===----------------------------------------------------------------------===//
// Waits
//===----------------------------------------------------------------------===//

TEST_F(Watched, WaitReturnsWhenDoneWithoutTouchingTheCommunicators) {
  int calls = 0;
  watch.waitUntil([&] { return ++calls == 50; }, clock.now() + 1.0,
                  [] { return std::string("op 7"); });
  EXPECT_EQ(calls, 50);
  EXPECT_TRUE(driver.log.empty());
  EXPECT_FALSE(watch.aborted());
  // The first polls spin, later ones yield; nothing sleeps.
  EXPECT_GT(clock.spins, 0);
  EXPECT_EQ(clock.spins + clock.yields, 49);
}

TEST_F(Watched, BackoffSpinsThenYields) {
  EXPECT_EQ(backoff(0), Pause::Spin);
  EXPECT_EQ(backoff(63), Pause::Spin);
  EXPECT_EQ(backoff(64), Pause::Yield);
  EXPECT_EQ(backoff(1u << 30), Pause::Yield);
}

TEST_F(Watched, TimeoutAbortsEveryCommunicatorAndNamesRankAndOp) {
  try {
    watch.waitUntil(
        [] { return false; }, clock.now() + 0.5,
        [] { return std::string("op 12 (all_to_all at x.mlir:3)"); }, 8);
    FAIL() << "expected CommFailure";
  } catch (const CommFailure &e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind("rank 5: op 12 (all_to_all at x.mlir:3): ", 0), 0u)
        << msg;
    EXPECT_NE(msg.find("no progress within the timeout of 2 s"),
              std::string::npos)
        << msg;
  }
  // The deadline, not much later: checks happen every 8 polls of 1 ms.
  EXPECT_LE(clock.now(), 100.0 + 0.5 + 0.01);
  EXPECT_TRUE(watch.aborted());
  EXPECT_EQ(driver.log,
            (std::vector<std::string>{"abort 0", "abort 1", "abort 2"}));
}

TEST_F(Watched, AsyncErrorOfAnyCommunicatorAbortsAllAtOnce) {
  int calls = 0;
  driver.state[1] = CommState::Failed;
  EXPECT_THROW(
      {
        try {
          watch.waitUntil([&] { return ++calls > 1000000; }, clock.now() + 60,
                          [] { return std::string("op 3 (all_reduce)"); }, 4);
        } catch (const CommFailure &e) {
          std::string msg = e.what();
          EXPECT_NE(msg.find("rank 5: op 3 (all_reduce): the NCCL "
                             "communicator of group 'ep' (high queue) failed: "
                             "remote process exited"),
                    std::string::npos)
              << msg;
          throw;
        }
      },
      CommFailure);
  EXPECT_EQ(calls, 4); // caught at the first check, long before the deadline
  EXPECT_EQ(count(driver.log, "abort"), 3);
  EXPECT_EQ(count(driver.log, "destroy"), 0);
}

TEST_F(Watched, AnErrorFromThePolledConditionAbortsAndPropagates) {
  EXPECT_THROW(
      watch.waitUntil(
          []() -> bool { throw std::runtime_error("cudaEventQuery failed"); },
          clock.now() + 1, [] { return std::string("op 1"); }),
      std::runtime_error);
  EXPECT_TRUE(watch.aborted());
  EXPECT_EQ(count(driver.log, "abort"), 3);
}

TEST_F(Watched, SettleWaitsForInProgressCommunicatorsInOrder) {
  driver.state = {CommState::InProgress, CommState::InProgress,
                  CommState::Ready};
  driver.becomeReadyAfter = {{0, 3}, {1, 10}};
  watch.settleAll("creating the NCCL communicators");
  EXPECT_EQ(driver.state[0], CommState::Ready);
  EXPECT_EQ(driver.state[1], CommState::Ready);
  EXPECT_FALSE(watch.aborted());
  EXPECT_TRUE(driver.log.empty());
}

TEST_F(Watched, SettleOfACommunicatorThatNeverConnectsTimesOut) {
  driver.state[2] = CommState::InProgress; // a peer never called init
  try {
    watch.settleAll("creating the NCCL communicators");
    FAIL() << "expected CommFailure";
  } catch (const CommFailure &e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("rank 5: creating the NCCL communicators (waiting for "
                       "group 'tp' (high queue)): no progress within"),
              std::string::npos)
        << msg;
  }
  EXPECT_LE(clock.now(), 100.0 + 2.0 + 0.1);
  EXPECT_EQ(count(driver.log, "abort"), 3);
}

TEST_F(Watched, SettleOfAFailedCommunicatorNamesIt) {
  driver.state[0] = CommState::Failed;
  try {
    watch.settle(0, "ncclGroupEnd of op 4");
    FAIL() << "expected CommFailure";
  } catch (const CommFailure &e) {
    EXPECT_NE(std::string(e.what()).find(
                  "rank 5: ncclGroupEnd of op 4: the NCCL communicator of "
                  "group 'dp' (low queue) failed"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(watch.aborted());
}

//===----------------------------------------------------------------------===//
// Teardown
//===----------------------------------------------------------------------===//

TEST_F(Watched, AbortHappensOncePerCommunicator) {
  watch.abortAll();
  watch.abortAll();
  watch.shutdown(false);
  EXPECT_EQ(driver.log,
            (std::vector<std::string>{"abort 0", "abort 1", "abort 2"}));
  for (size_t i = 0; i < 3; ++i)
    EXPECT_FALSE(watch.live(i));
}

TEST_F(Watched, OrderlyShutdownFinalizesAllThenDestroysInOrder) {
  watch.shutdown(false);
  EXPECT_EQ(driver.log,
            (std::vector<std::string>{"finalize 0", "finalize 1", "finalize 2",
                                      "destroy 0", "destroy 1", "destroy 2"}));
}

TEST_F(Watched, ShutdownAfterAFailureNeverDestroys) {
  watch.shutdown(true);
  EXPECT_EQ(count(driver.log, "abort"), 3);
  EXPECT_EQ(count(driver.log, "destroy"), 0);
  EXPECT_EQ(count(driver.log, "finalize"), 0);
}

TEST_F(Watched, AFinalizeThatHangsIsBoundedAndAborts) {
  // The flush of communicator 1 waits for a peer that is gone.
  driver.state[1] = CommState::InProgress;
  watch.shutdown(false);
  EXPECT_LE(clock.now(), 100.0 + 2.0 + 0.1);
  EXPECT_EQ(count(driver.log, "destroy"), 0);
  EXPECT_EQ(count(driver.log, "abort"), 3);
}

TEST(Teardown, AfterAFailureOnlyTheCommunicatorsAreAborted) {
  Teardown t = teardownFor(true);
  EXPECT_TRUE(t.abortComms);
  EXPECT_FALSE(t.destroyComms);
  EXPECT_FALSE(t.synchronizeDevice);
  EXPECT_FALSE(t.freeMemory);
  Teardown ok = teardownFor(false);
  EXPECT_FALSE(ok.abortComms);
  EXPECT_TRUE(ok.destroyComms);
  EXPECT_TRUE(ok.synchronizeDevice);
  EXPECT_TRUE(ok.freeMemory);
}
