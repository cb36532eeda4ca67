//===- Scheduler.cpp - Lina's issue policy --------------------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Scheduler.h"

#include "lina/Support/CostModel.h"
#include "lina/rt/OpKinds.h"

#include <algorithm>
#include <memory>
#include <set>

using namespace lina::rt;

Backend::~Backend() = default;

Queue lina::rt::queueOf(const Op &op) {
  if (!op.isCollective())
    return Queue::Compute;
  return op.priority == Priority::Low ? Queue::Low : Queue::High;
}

const char *lina::rt::toString(Queue queue) {
  switch (queue) {
  case Queue::Compute:
    return "compute";
  case Queue::High:
    return "high";
  case Queue::Low:
    return "low";
  }
  return "?";
}

Policy lina::rt::parsePolicy(const std::string &name) {
  if (name == "lina")
    return Policy::Lina;
  if (name == "fifo")
    return Policy::Fifo;
  throw PlanError("unknown policy '" + name + "' (expected lina or fifo)");
}

Scheduler::Scheduler(const Plan &plan, SchedulerOptions options)
    : plan(plan), options(options) {
  // Element range of every buffer inside its base storage.
  struct Range {
    int base;
    int64_t begin, end;
  };
  std::vector<Range> ranges;
  for (const Buffer &b : plan.buffers) {
    int base = b.isView() ? b.viewBase : b.id;
    int64_t begin = b.isView() ? b.viewOffset : 0;
    ranges.push_back({base, begin, begin + b.numElements()});
  }
  // Writers of each base so far, in program order.
  std::vector<std::vector<std::pair<int, int>>> writers(plan.buffers.size());
  deps.resize(plan.ops.size());
  for (const Op &op : plan.ops) {
    std::set<int> d(op.deps.begin(), op.deps.end());
    for (int in : op.inputs) {
      const Range &r = ranges[in];
      for (auto [writer, buf] : writers[r.base]) {
        const Range &w = ranges[buf];
        if (w.begin < r.end && r.begin < w.end)
          d.insert(writer);
      }
    }
    deps[op.id].assign(d.begin(), d.end());
    for (int out : op.outputs)
      writers[ranges[out].base].push_back({op.id, out});
    switch (queueOf(op)) {
    case Queue::Compute:
      computeOrder.push_back(op.id);
      break;
    case Queue::High:
      highOrder.push_back(op.id);
      break;
    case Queue::Low:
      lowOrder.push_back(op.id);
      lowAnchor.push_back(highOrder.size());
      break;
    }
  }
  if (!options.estimate)
    return;
  // Position in compute order of the last compute op each op waits for,
  // directly or through collectives (-1: none).
  std::vector<long> computePos(plan.ops.size(), -1),
      lastCompute(plan.ops.size(), -1);
  for (size_t i = 0; i < computeOrder.size(); ++i)
    computePos[computeOrder[i]] = static_cast<long>(i);
  for (const Op &op : plan.ops)
    for (int d : deps[op.id])
      lastCompute[op.id] =
          std::max(lastCompute[op.id],
                   computePos[d] >= 0 ? computePos[d] : lastCompute[d]);
  for (int h : highOrder)
    highComputeDep.push_back(lastCompute[h]);
  estimates.resize(plan.ops.size());
  for (const Op &op : plan.ops)
    estimates[op.id] = std::max(0.0, options.estimate(op));
  computePrefix.assign(computeOrder.size() + 1, 0.0);
  for (size_t i = 0; i < computeOrder.size(); ++i)
    computePrefix[i + 1] = computePrefix[i] + estimates[computeOrder[i]];
  lowSuffix.assign(lowOrder.size() + 1, 0.0);
  for (size_t i = lowOrder.size(); i-- > 0;)
    lowSuffix[i] = lowSuffix[i + 1] + estimates[lowOrder[i]];
}

Estimator lina::rt::costModelEstimator(const Plan &plan,
                                       const ::lina::ClusterSpec &cluster) {
  auto model = std::make_shared<::lina::CostModel>(cluster);
  const Plan *p = &plan;
  return [model, p](const Op &op) {
    if (!op.isCollective()) {
      OpCost cost = opCost(*p, op);
      return model->computeTime(cost.flops, cost.bytes);
    }
    auto group = p->groups.find(op.group);
    int size = group == p->groups.end() ? 1 : group->second.size();
    double bytes = static_cast<double>(p->collectiveBytes(op));
    if (op.kind == OpKind::AllReduce)
      return model->allReduceTime(bytes, size);
    return model->allToAllTime(bytes, size);
  };
}

bool Scheduler::admits(const Op &low, size_t nextLow, size_t nextCompute,
                       size_t nextHigh, double now) const {
  double computeFree =
      runningCompute >= 0
          ? std::max(now, computeStart + estimates[runningCompute])
          : now;
  // The low queue is the critical resource: the low-priority collectives
  // left need more network time than the compute left, so the step ends
  // with them and holding one back only makes the step longer.
  double computeLeft =
      computeFree - now + computePrefix.back() - computePrefix[nextCompute];
  if (lowSuffix[nextLow] >= computeLeft)
    return true;
  if (highRunning > 0)
    return false;
  if (nextHigh >= highOrder.size())
    return true; // no all_to_all is coming
  // When the compute that the next high-priority collective reads is done.
  long need = highComputeDep[nextHigh];
  double needAt = now;
  if (need >= static_cast<long>(nextCompute))
    needAt = computeFree + computePrefix[need + 1] - computePrefix[nextCompute];
  else if (need >= 0 && runningCompute >= 0 &&
           computeOrder[need] == runningCompute)
    needAt = computeFree;
  double finish = std::max(now, lowBusyUntil) + estimates[low.id];
  return finish <= needAt;
}

bool Scheduler::lowAllowed(size_t nextCompute) const {
  if (options.policy == Policy::Fifo)
    return true;
  if (highRunning > 0)
    return false;
  // The running compute op produces an all_to_all's input.
  if (runningCompute >= 0 && plan.ops[runningCompute].holdLow)
    return false;
  // An all_to_all is about to be issued: the compute op that produces its
  // input is next.
  if (nextCompute < computeOrder.size() &&
      plan.ops[computeOrder[nextCompute]].holdLow)
    return false;
  return true;
}

StepStats Scheduler::run(Backend &backend) {
  size_t n = plan.ops.size();
  std::vector<char> started(n, 0), done(n, 0);
  std::vector<double> startTime(n, 0);
  size_t ci = 0, hi = 0, lo = 0, completed = 0;
  const size_t numHigh = highOrder.size(), numLow = lowOrder.size();
  bool computeRunning = false;
  highRunning = 0;
  lowBytesInFlight = 0;
  lowRunning = 0;
  runningCompute = -1;
  computeStart = 0;
  lowBusyUntil = 0;
  const bool admission = options.policy == Policy::Lina && !estimates.empty();
  StepStats stats;
  auto ready = [&](int id) {
    return std::all_of(deps[id].begin(), deps[id].end(),
                       [&](int d) { return done[d] != 0; });
  };
  auto launch = [&](int id) {
    started[id] = 1;
    startTime[id] = backend.now();
    const Op &op = plan.ops[id];
    Queue q = queueOf(op);
    if (q == Queue::High)
      ++highRunning;
    else if (q == Queue::Low) {
      lowBytesInFlight += plan.collectiveBytes(op);
      ++lowRunning;
      if (admission)
        lowBusyUntil = std::max(startTime[id], lowBusyUntil) + estimates[id];
    } else {
      computeRunning = true;
      runningCompute = id;
      computeStart = startTime[id];
    }
    backend.start(op);
  };
  double begin = backend.now();

  while (completed < n) {
    bool progress = true;
    while (progress) {
      progress = false;
      // One issue order on every rank: collectives are issued in program
      // order across both queues. The next high-priority collective waits
      // until every low-priority one before it has been issued, and a
      // low-priority collective until every high-priority one before it
      // has. A rank may delay a collective, never reorder it.
      bool lowFirst = lo < numLow && lowAnchor[lo] <= hi;
      bool highNext = hi < numHigh && !lowFirst;
      // High-priority collectives first. Each queue is a stream: its
      // collectives run one at a time, in program order (as on one NCCL
      // stream or MPI communicator).
      if (highNext && highRunning == 0 && ready(highOrder[hi])) {
        launch(highOrder[hi++]);
        progress = true;
      }
      // The low queue also runs one at a time, unless a credit window lets
      // several partitions share the network (ByteScheduler's credit). A
      // low-priority collective that the ready next high-priority one must
      // follow is issued at once: holding it would only delay the high one.
      while (lo < numLow && lowAnchor[lo] <= hi && ready(lowOrder[lo])) {
        bool blocksHigh =
            hi < numHigh && highRunning == 0 && ready(highOrder[hi]);
        if (!blocksHigh) {
          const Op &op = plan.ops[lowOrder[lo]];
          if (admission ? !admits(op, lo, ci, hi, backend.now())
                        : !lowAllowed(ci))
            break;
          if (lowRunning > 0 &&
              (options.policy != Policy::Lina || options.creditBytes <= 0 ||
               lowBytesInFlight + plan.collectiveBytes(op) >
                   options.creditBytes))
            break;
        }
        launch(lowOrder[lo++]);
        progress = true;
      }
      if (!computeRunning && ci < computeOrder.size() &&
          ready(computeOrder[ci])) {
        launch(computeOrder[ci++]);
        progress = true;
      }
    }
    bool anyRunning = computeRunning || highRunning > 0 || lowRunning > 0;
    if (!anyRunning && lo < numLow && lowAnchor[lo] <= hi &&
        ready(lowOrder[lo])) {
      // Liveness: nothing runs, so the held-back low-priority collective is
      // what the next compute op (marked hold_low) waits for, directly or
      // through a high-priority collective. Holding it would deadlock.
      // (The earliest op of the plan not yet started has its dependencies
      // done; if it is not this collective, it was started above.)
      launch(lowOrder[lo++]);
      continue;
    }
    if (!anyRunning) {
      for (size_t i = 0; i < n; ++i)
        if (started[i] && !done[i])
          anyRunning = true;
      if (!anyRunning)
        throw PlanError("scheduler: no op can start and none is running "
                        "(a dependency cycle in the plan?)");
    }
    // Compute idle while its next op waits on a high-priority collective.
    bool blockedOnHigh = false;
    if (!computeRunning && ci < computeOrder.size())
      for (int d : deps[computeOrder[ci]])
        if (!done[d] && queueOf(plan.ops[d]) == Queue::High)
          blockedOnHigh = true;
    double waitStart = backend.now();
    std::vector<int> finished = backend.waitAny();
    double now = backend.now();
    if (blockedOnHigh)
      stats.allToAllBlocked += now - waitStart;
    for (int id : finished) {
      if (id < 0 || id >= static_cast<int>(n) || !started[id] || done[id])
        throw PlanError("backend reported an op that was not running: " +
                        std::to_string(id));
      done[id] = 1;
      ++completed;
      const Op &op = plan.ops[id];
      Queue q = queueOf(op);
      if (q == Queue::High)
        --highRunning;
      else if (q == Queue::Low) {
        lowBytesInFlight -= plan.collectiveBytes(op);
        --lowRunning;
      } else {
        computeRunning = false;
        runningCompute = -1;
      }
      stats.timeline.push_back({id, q, startTime[id] - begin, now - begin});
    }
  }
  stats.stepTime = backend.now() - begin;
  stats.allToAllTime = busyTime(plan, stats.timeline, OpKind::AllToAll) +
                       busyTime(plan, stats.timeline, OpKind::AllToAllV);
  stats.allReduceTime = busyTime(plan, stats.timeline, OpKind::AllReduce);
  return stats;
}

double lina::rt::busyTime(const Plan &plan,
                          const std::vector<OpInterval> &timeline,
                          OpKind kind) {
  std::vector<std::pair<double, double>> iv;
  for (const OpInterval &i : timeline)
    if (plan.ops[i.op].kind == kind)
      iv.push_back({i.start, i.end});
  std::sort(iv.begin(), iv.end());
  double total = 0, curStart = 0, curEnd = -1;
  for (auto [s, e] : iv) {
    if (s > curEnd) {
      if (curEnd > curStart)
        total += curEnd - curStart;
      curStart = s;
      curEnd = e;
    } else {
      curEnd = std::max(curEnd, e);
    }
  }
  if (curEnd > curStart)
    total += curEnd - curStart;
  return total;
}
