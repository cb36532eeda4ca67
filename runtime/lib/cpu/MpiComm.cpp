//===- MpiComm.cpp - MPI collectives of the CPU backend -------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "MpiComm.h"

#include "lina/Support/CheckedMath.h"
#include "lina/rt/Kernels.h"
#include "lina/rt/MpiWait.h"
#include "lina/rt/Scheduler.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>

using namespace lina::rt;

namespace {
MPI_Datatype mpiType(DType t) {
  switch (t) {
  case DType::F32:
    return MPI_FLOAT;
  case DType::I32:
    return MPI_INT32_T;
  case DType::I64:
    return MPI_INT64_T;
  default:
    return MPI_DATATYPE_NULL;
  }
}

MPI_Op mpiOp(Reduction r) {
  switch (r) {
  case Reduction::Sum:
    return MPI_SUM;
  case Reduction::Max:
    return MPI_MAX;
  case Reduction::Min:
    return MPI_MIN;
  case Reduction::Prod:
    return MPI_PROD;
  }
  return MPI_SUM;
}

int toInt(int64_t v, const Op &op) {
  if (v > INT_MAX)
    throw PlanError(op.describe() + ": message of " + std::to_string(v) +
                    " bytes exceeds MPI's int count");
  return static_cast<int>(v);
}
} // namespace

MpiComm::MpiComm(const Plan &plan, int rank, double timeoutSeconds)
    : plan(plan), rank(rank), timeout(timeoutSeconds) {
  // Communicators are built collectively: first make sure every rank is
  // here and agrees on the groups, with a timeout instead of a hang.
  uint64_t h = 1469598103934665603ull ^ static_cast<uint64_t>(plan.worldSize);
  for (const auto &[name, group] : plan.groups) {
    for (char c : name)
      h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    for (const auto &list : group.members)
      for (int r : list)
        h = (h ^ static_cast<uint64_t>(r + 1)) * 1099511628211ull;
  }
  uint64_t range[2] = {h, ~h}, agreed[2] = {0, 0};
  MPI_Request request;
  Arrival arrival = arrive(kCommunicatorSetup);
  MPI_Iallreduce(range, agreed, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD,
                 &request);
  waitAllOrAbort(&request, 1, timeout, rank,
                 "waiting for the other ranks to set up the communicators",
                 &arrival);
  if (agreed[0] != h || agreed[1] != ~h)
    throw PlanError("the ranks disagree on the plan's groups (is every rank "
                    "running the same plan?)");
  for (const auto &[name, group] : plan.groups) {
    int index = 0;
    const std::vector<int> &instance = group.instanceOf(rank, &index);
    int color = static_cast<int>(&instance - group.members.data());
    MPI_Comm split, high, low;
    MPI_Comm_split(MPI_COMM_WORLD, color, index, &split);
    MPI_Comm_dup(split, &high);
    MPI_Comm_dup(split, &low);
    MPI_Comm_free(&split);
    comms[name] = {high, low};
  }
  worker = std::thread([this] { loop(); });
}

MpiComm::~MpiComm() {
  stopping = true;
  inboxReady.notify_all();
  if (worker.joinable())
    worker.join();
  setCollectivesInFlight("");
  for (auto &[name, pair] : comms) {
    MPI_Comm_free(&pair.first);
    MPI_Comm_free(&pair.second);
  }
}

void MpiComm::start(const Op &op) {
  auto p = std::make_unique<Pending>();
  p->op = &op;
  auto &pair = comms.at(op.group);
  p->comm = queueOf(op) == Queue::Low ? pair.second : pair.first;
  const Buffer &in = plan.buffers[op.inputs[0]];
  const Buffer &out = plan.buffers[op.outputs[0]];
  int n = plan.groups.at(op.group).size();
  if (op.kind == OpKind::AllToAll &&
      !(op.splitAxis == 0 && op.concatAxis == 0)) {
    // Pack piece i (along split_axis) contiguously for group rank i.
    std::vector<int64_t> piece = in.shape;
    piece[op.splitAxis] /= n;
    int64_t pieceBytes = in.numBytes() / n;
    p->send.resize(in.numBytes());
    p->recv.resize(out.numBytes());
    std::vector<int64_t> zero(piece.size(), 0);
    for (int i = 0; i < n; ++i) {
      std::vector<int64_t> offs(piece.size(), 0);
      offs[op.splitAxis] = i * piece[op.splitAxis];
      cpu::copyBox(data(in.id), in.shape, offs, p->send.data() + i * pieceBytes,
                   piece, zero, piece, dtypeBytes(in.dtype));
    }
  } else if (op.kind == OpKind::AllToAllV) {
    const int64_t *sc = reinterpret_cast<const int64_t *>(data(op.inputs[1]));
    const int64_t *rc = reinterpret_cast<const int64_t *>(data(op.inputs[2]));
    int64_t rowBytes = in.shape[0] ? in.numBytes() / in.shape[0] : 0;
    // Counts are data computed at run time: bound them by the buffers
    // before any product, so that no size wraps around.
    int64_t sendRows = 0, recvRows = 0;
    bool fits = true;
    for (int i = 0; i < n && fits; ++i) {
      if (sc[i] < 0 || rc[i] < 0)
        throw PlanError("rank " + std::to_string(rank) + ": " + op.describe() +
                        ": negative count");
      std::optional<int64_t> s = lina::checkedAdd(sendRows, sc[i]);
      std::optional<int64_t> r = lina::checkedAdd(recvRows, rc[i]);
      fits = s && r && *s <= in.shape[0] && *r <= out.shape[0];
      sendRows = s ? *s : INT64_MAX;
      recvRows = r ? *r : INT64_MAX;
    }
    int64_t sent = 0, received = 0;
    for (int i = 0; i < n && fits; ++i) {
      p->sendDispls.push_back(toInt(sent * rowBytes, op));
      p->recvDispls.push_back(toInt(received * rowBytes, op));
      p->sendCounts.push_back(toInt(sc[i] * rowBytes, op));
      p->recvCounts.push_back(toInt(rc[i] * rowBytes, op));
      sent += sc[i];
      received += rc[i];
    }
    if (!fits)
      throw PlanError(
          "rank " + std::to_string(rank) + ": " + op.describe() +
          ": counts need " + std::to_string(sendRows) + " rows to send and " +
          std::to_string(recvRows) + " to receive; buffers hold " +
          std::to_string(in.shape[0]) + " and " + std::to_string(out.shape[0]));
    std::memset(data(out.id), 0, out.numBytes());
  }
  std::lock_guard<std::mutex> lock(mutex);
  inbox.push_back(std::move(p));
  inboxReady.notify_one();
}

void MpiComm::issue(Pending &p) {
  const Op &op = *p.op;
  const Buffer &in = plan.buffers[op.inputs[0]];
  const Buffer &out = plan.buffers[op.outputs[0]];
  int n = plan.groups.at(op.group).size();
  p.started = std::chrono::steady_clock::now();
  int index = 0;
  p.arrival = arrive(op.id, plan.groups.at(op.group).instanceOf(rank, &index));
  switch (op.kind) {
  case OpKind::AllToAll: {
    int pieceBytes = toInt(in.numBytes() / n, op);
    char *send = p.send.empty() ? data(in.id) : p.send.data();
    char *recv = p.recv.empty() ? data(out.id) : p.recv.data();
    MPI_Ialltoall(send, pieceBytes, MPI_BYTE, recv, pieceBytes, MPI_BYTE,
                  p.comm, &p.request);
    break;
  }
  case OpKind::AllToAllV:
    MPI_Ialltoallv(data(in.id), p.sendCounts.data(), p.sendDispls.data(),
                   MPI_BYTE, data(out.id), p.recvCounts.data(),
                   p.recvDispls.data(), MPI_BYTE, p.comm, &p.request);
    break;
  case OpKind::AllReduce: {
    char *src = data(in.id), *dst = data(out.id);
    MPI_Iallreduce(src == dst ? MPI_IN_PLACE : src, dst,
                   toInt(in.numElements(), op), mpiType(in.dtype),
                   mpiOp(op.reduction), p.comm, &p.request);
    break;
  }
  default:
    break;
  }
}

void MpiComm::unpack(Pending &p) {
  const Op &op = *p.op;
  if (op.kind != OpKind::AllToAll || p.recv.empty())
    return;
  const Buffer &out = plan.buffers[op.outputs[0]];
  int n = plan.groups.at(op.group).size();
  std::vector<int64_t> piece = out.shape;
  piece[op.concatAxis] /= n;
  int64_t pieceBytes = out.numBytes() / n;
  std::vector<int64_t> zero(piece.size(), 0);
  for (int j = 0; j < n; ++j) {
    std::vector<int64_t> offs(piece.size(), 0);
    offs[op.concatAxis] = j * piece[op.concatAxis];
    cpu::copyBox(p.recv.data() + j * pieceBytes, piece, zero, data(out.id),
                 out.shape, offs, piece, dtypeBytes(out.dtype));
  }
}

void MpiComm::loop() {
  std::vector<std::unique_ptr<Pending>> active;
  std::vector<MPI_Request> requests;
  std::vector<int> indices;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex);
      if (active.empty())
        inboxReady.wait_for(lock, std::chrono::milliseconds(50),
                            [&] { return stopping || !inbox.empty(); });
      if (stopping && inbox.empty() && active.empty())
        return;
      bool issued = !inbox.empty();
      while (!inbox.empty()) {
        active.push_back(std::move(inbox.front()));
        inbox.pop_front();
        issue(*active.back());
      }
      if (issued)
        describeInFlight(active);
    }
    if (active.empty())
      continue;
    // This thread makes the MPI calls while collectives are in flight.
    answerArrivalQueries();
    requests.clear();
    for (auto &p : active)
      requests.push_back(p->request);
    indices.resize(requests.size());
    int count = 0;
    MPI_Testsome(static_cast<int>(requests.size()), requests.data(), &count,
                 indices.data(), MPI_STATUSES_IGNORE);
    if (count > 0 && count != MPI_UNDEFINED) {
      std::vector<char> finished(active.size(), 0);
      for (int i = 0; i < count; ++i)
        finished[indices[i]] = 1;
      std::lock_guard<std::mutex> lock(mutex);
      std::vector<std::unique_ptr<Pending>> still;
      for (size_t i = 0; i < active.size(); ++i) {
        if (finished[i])
          outbox.push_back(std::move(active[i]));
        else
          still.push_back(std::move(active[i]));
      }
      active.swap(still);
      describeInFlight(active);
      outboxReady.notify_all();
      continue;
    }
    // Watchdog: a collective that cannot complete ends the job, naming it
    // and the ranks of its group that have not arrived.
    auto now = std::chrono::steady_clock::now();
    for (auto &p : active) {
      double waited = std::chrono::duration<double>(now - p->started).count();
      if (waited > timeout) {
        std::string missing =
            describeMissing(p->arrival, rank, std::min(5.0, timeout));
        if (missing.empty())
          missing = "every rank of the group has arrived, but the collective "
                    "does not complete (a transport problem?)";
        std::fprintf(stderr,
                     "lina-run: error: rank %d: %s in group '%s' did not "
                     "complete within %.0f s: %s; aborting\n",
                     rank, p->op->describe().c_str(), p->op->group.c_str(),
                     timeout, missing.c_str());
        abortJob(3);
      }
    }
    // Shared-memory transports progress only inside MPI calls; poll often
    // but leave the core to compute.
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void MpiComm::describeInFlight(
    const std::vector<std::unique_ptr<Pending>> &active) {
  std::string text;
  for (const auto &p : active) {
    if (text.size() > 160) {
      text += ", ...";
      break;
    }
    text += (text.empty() ? "waiting for " : ", ") + p->op->describe();
  }
  setCollectivesInFlight(text);
}

std::vector<int> MpiComm::waitAny() {
  std::vector<std::unique_ptr<Pending>> done;
  {
    std::unique_lock<std::mutex> lock(mutex);
    outboxReady.wait(lock, [&] { return !outbox.empty(); });
    while (!outbox.empty()) {
      done.push_back(std::move(outbox.front()));
      outbox.pop_front();
    }
  }
  std::vector<int> ids;
  for (auto &p : done) {
    unpack(*p);
    ids.push_back(p->op->id);
  }
  return ids;
}
