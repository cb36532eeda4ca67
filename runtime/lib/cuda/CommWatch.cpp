//===- CommWatch.cpp - Bounded waits and teardown of communicators --------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/cuda/CommWatch.h"
#include "lina/rt/Scheduler.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <thread>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

using namespace lina::rt;
using namespace lina::rt::cuda;

std::string CommSpec::name() const {
  return "group '" + group + "' (" + (low ? "low" : "high") + " queue)";
}

std::vector<CommSpec> lina::rt::cuda::communicatorOrder(const Plan &plan,
                                                        int rank) {
  // The (group, queue) pairs some collective of the plan uses. A set of
  // pairs ordered by name, then high before low: a function of the plan.
  std::set<std::pair<std::string, bool>> used;
  for (const Op &op : plan.ops)
    if (op.isCollective())
      used.insert({op.group, queueOf(op) == Queue::Low});
  std::vector<CommSpec> order;
  for (const auto &[group, low] : used) {
    auto it = plan.groups.find(group);
    if (it == plan.groups.end() || it->second.size() <= 1)
      continue;
    const Group &g = it->second;
    CommSpec spec;
    spec.group = group;
    spec.low = low;
    const std::vector<int> &instance = g.instanceOf(rank, &spec.index);
    spec.members = instance;
    spec.instance = static_cast<int>(&instance - g.members.data());
    spec.size = static_cast<int>(spec.members.size());
    spec.leader = spec.members.front();
    order.push_back(std::move(spec));
  }
  return order;
}

std::vector<int>
lina::rt::cuda::eventsToWait(const Plan &plan,
                             const std::vector<std::vector<int>> &deps,
                             const Op &op, bool sideStream) {
  Queue mine = queueOf(op);
  std::vector<int> waits;
  int lastComputeDep = -1;
  for (int d : deps.at(op.id)) {
    Queue theirs = queueOf(plan.ops.at(d));
    if (theirs == Queue::Compute)
      lastComputeDep = std::max(lastComputeDep, d);
    else if (theirs != mine || sideStream)
      waits.push_back(d);
  }
  if (lastComputeDep >= 0 && (mine != Queue::Compute || sideStream))
    waits.push_back(lastComputeDep);
  return waits;
}

int lina::rt::cuda::lastComputeOp(const Plan &plan) {
  int last = -1;
  for (const Op &op : plan.ops)
    if (queueOf(op) == Queue::Compute)
      last = op.id;
  return last;
}

CommDriver::~CommDriver() = default;
WaitClock::~WaitClock() = default;

Pause lina::rt::cuda::backoff(unsigned idlePolls) {
  // About a microsecond of spinning covers a kernel or event that is about
  // to complete; after that, give the core to the other ranks' processes.
  return idlePolls < 64 ? Pause::Spin : Pause::Yield;
}

double SteadyWaitClock::now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void SteadyWaitClock::pause(Pause pause) {
  if (pause == Pause::Yield) {
    std::this_thread::yield();
    return;
  }
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

CommWatch::CommWatch(int rank, CommDriver &driver, WaitClock &clock,
                     double timeoutSeconds)
    : rank(rank), driver(driver), clock(clock), timeoutSeconds(timeoutSeconds) {
}

size_t CommWatch::add(std::string name) {
  names.push_back(std::move(name));
  alive.push_back(1);
  return names.size() - 1;
}

long CommWatch::firstFailure(std::string &reason) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (!alive[i])
      continue;
    std::string why;
    if (driver.poll(i, why) == CommState::Failed) {
      reason = "the NCCL communicator of " + names[i] + " failed: " + why;
      return static_cast<long>(i);
    }
  }
  return -1;
}

void CommWatch::fail(const std::string &what, const std::string &reason) {
  abortAll();
  throw CommFailure("rank " + std::to_string(rank) + ": " + what + ": " +
                    reason);
}

void CommWatch::check(const std::string &what) {
  std::string reason;
  if (firstFailure(reason) >= 0)
    fail(what, reason);
}

void CommWatch::waitUntil(const std::function<bool()> &done, double deadline,
                          const std::function<std::string()> &what,
                          unsigned checkEvery) {
  if (checkEvery == 0)
    checkEvery = 1;
  for (unsigned polls = 0;; ++polls) {
    bool finished = false;
    try {
      finished = done();
    } catch (...) {
      abortAll();
      throw;
    }
    if (finished)
      return;
    if (polls % checkEvery == checkEvery - 1) {
      std::string reason;
      if (firstFailure(reason) >= 0)
        fail(what(), reason);
      if (clock.now() > deadline) {
        // A communicator that failed meanwhile is the better explanation.
        if (firstFailure(reason) >= 0)
          fail(what(), reason);
        char buf[64];
        std::snprintf(buf, sizeof(buf), "%g", timeoutSeconds);
        fail(what(), std::string("no progress within the timeout of ") + buf +
                         " s (a rank is missing, stuck, failed, or runs "
                         "another plan)");
      }
    }
    clock.pause(backoff(polls));
  }
}

void CommWatch::settle(size_t comm, const std::string &what) {
  if (!alive.at(comm))
    fail(what,
         "the NCCL communicator of " + names[comm] + " was already aborted");
  double deadline = clock.now() + timeoutSeconds;
  std::string reason;
  waitUntil(
      [&] {
        CommState s = driver.poll(comm, reason);
        if (s == CommState::Failed)
          fail(what, "the NCCL communicator of " + names[comm] +
                         " failed: " + reason);
        return s == CommState::Ready;
      },
      deadline, [&] { return what + " on " + names[comm]; }, 16);
}

void CommWatch::settleAll(const std::string &what) {
  double deadline = clock.now() + timeoutSeconds;
  size_t next = 0;
  std::string reason;
  waitUntil(
      [&] {
        while (next < names.size()) {
          CommState s = driver.poll(next, reason);
          if (s == CommState::Failed)
            fail(what, "the NCCL communicator of " + names[next] +
                           " failed: " + reason);
          if (s == CommState::InProgress)
            return false;
          ++next;
        }
        return true;
      },
      deadline,
      [&] {
        return what + " (waiting for " +
               (next < names.size() ? names[next] : std::string("?")) + ")";
      },
      16);
}

void CommWatch::abortAll() {
  for (size_t i = 0; i < names.size(); ++i)
    if (alive[i]) {
      alive[i] = 0;
      driver.abort(i);
    }
  abortedAll = true;
}

void CommWatch::shutdown(bool failed) {
  if (failed || abortedAll) {
    abortAll();
    return;
  }
  // Orderly: flush every communicator (in the order every rank uses), then
  // free. finalize waits for the peers, so it is bounded like any wait.
  double deadline = clock.now() + timeoutSeconds;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!alive[i])
      continue;
    std::string reason;
    CommState s = driver.finalize(i, reason);
    bool ok = s != CommState::Failed;
    for (unsigned polls = 0; ok && s == CommState::InProgress; ++polls) {
      if (clock.now() > deadline) {
        ok = false;
        break;
      }
      clock.pause(backoff(polls));
      s = driver.poll(i, reason);
      ok = s != CommState::Failed;
    }
    if (!ok) {
      abortAll();
      return;
    }
  }
  for (size_t i = 0; i < names.size(); ++i)
    if (alive[i]) {
      alive[i] = 0;
      driver.destroy(i);
    }
}

Teardown lina::rt::cuda::teardownFor(bool failed) {
  Teardown t;
  if (failed) {
    t.abortComms = true;
    return t;
  }
  t.synchronizeDevice = true;
  t.destroyComms = true;
  t.freeMemory = true;
  return t;
}
