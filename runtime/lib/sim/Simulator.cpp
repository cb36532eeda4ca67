//===- Simulator.cpp - Discrete-event cluster simulator backend -----------===//
//
// Part of the Lina project.
//
// One thread runs one discrete-event loop. Every simulated rank runs the
// real Scheduler on a fiber (a ucontext with its own small stack): when the
// scheduler waits for a completion the fiber yields to the loop, which
// advances the clock to the next event and resumes exactly the ranks that
// have completions to consume. No locks, no thread wake-ups, and the result
// is deterministic.
//
// The network is a set of links (each GPU's port up to and down from the
// node's NVSwitch, each node's network interface up and down). A running
// collective is a sequence of phases; each phase waits for its latency,
// then runs a set of flows, each over the one or two links it crosses. All
// flows in flight share the links max-min fairly (progressive filling); the
// rates are recomputed only when the set of flows changes. Every event
// completes at least one compute op, phase latency or flow, so the loop
// ends whatever the magnitudes of the times.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Simulator.h"
#include "lina/Support/CheckedMath.h"
#include "lina/rt/OpKinds.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <sstream>
#include <type_traits>
#include <unordered_map>

using namespace lina;
using namespace lina::rt;

double lina::rt::computeTime(const Plan &plan, const Op &op,
                             const CostModel &model) {
  OpCost cost = opCost(plan, op);
  return model.computeTime(cost.flops, cost.bytes,
                           cost.gemm ? KernelClass::Gemm : KernelClass::Memory,
                           cost.kernels);
}

namespace {
//===----------------------------------------------------------------------===//
// Links and the decomposition of collectives into phases of flows
//===----------------------------------------------------------------------===//

/// Link ids: GPU r's port up to the NVSwitch is 2r, down from it 2r+1;
/// node k's interface up is 2G+2k, down 2G+2k+1 (G GPUs in the plan).
struct Topology {
  int gpus, perNode, nodes;
  const ClusterSpec *cluster;

  Topology(int gpus, const ClusterSpec &c)
      : gpus(gpus), perNode(c.gpusPerNode),
        nodes((gpus + c.gpusPerNode - 1) / c.gpusPerNode), cluster(&c) {}
  int nodeOf(int rank) const { return rank / perNode; }
  int gpuUp(int r) const { return 2 * r; }
  int gpuDown(int r) const { return 2 * r + 1; }
  int nicUp(int k) const { return 2 * gpus + 2 * k; }
  int nicDown(int k) const { return 2 * gpus + 2 * k + 1; }
  int numLinks() const { return 2 * gpus + 2 * nodes; }
  double capacity(int l) const {
    return l < 2 * gpus ? cluster->intraNode.bandwidth
                        : cluster->interNode.bandwidth;
  }
  std::string name(int l) const {
    if (l < 2 * gpus)
      return "GPU " + std::to_string(l / 2) +
             (l % 2 ? " NVLink down" : " NVLink up");
    int k = (l - 2 * gpus) / 2;
    return "node " + std::to_string(k) +
           (l % 2 ? " network down" : " network up");
  }
};

/// `weight` identical sub-flows of `bytes` each over links `a` and `b`
/// (the flow moves weight x bytes in all).
struct FlowSpec {
  int a, b;
  double weight;
  double bytes;
};

/// A phase waits `latency`, then runs its flows; it ends when all have.
struct PhaseSpec {
  double latency = 0;
  std::vector<FlowSpec> flows;
};

/// The phases of collective `op` over `members` (see docs/SIMULATOR.md):
///   all_to_all: one phase; a sub-flow of B/n per ordered pair, inside a
///     node over the sender's port up and the receiver's port down, across
///     nodes over the sending node's interface up and the receiving node's
///     down (the g_a x g_b pairs of two nodes grouped into one flow of that
///     weight: identical flows get identical max-min rates);
///   all_reduce, ring: one phase, each member sending 2(n-1)/n B to its
///     ring successor (over NVLink, or through the node interfaces where
///     the ring crosses nodes);
///   all_reduce across m nodes, tree: reduce in each node ((g-1)/g B per
///     GPU to its successor), the tree of the g shards between the node
///     interfaces (2(m-1)/m B per node), broadcast in each node.
void collectivePhases(const Plan &plan, const Op &op,
                      const std::vector<int> &members, const Topology &t,
                      std::vector<PhaseSpec> &phases) {
  phases.clear();
  int n = static_cast<int>(members.size());
  if (n <= 1)
    return;
  const ClusterSpec &c = *t.cluster;
  double bytes = static_cast<double>(plan.collectiveBytes(op));
  // Members by node, in rank order.
  std::vector<int> sorted(members);
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::vector<int>> byNode;
  for (int r : sorted) {
    if (byNode.empty() || t.nodeOf(byNode.back().front()) != t.nodeOf(r))
      byNode.emplace_back();
    byNode.back().push_back(r);
  }
  int m = static_cast<int>(byNode.size());
  size_t gmax = 0;
  for (const auto &node : byNode)
    gmax = std::max(gmax, node.size());
  double inLat = c.intraNode.latency, outLat = c.interNode.latency;
  // `pairs` sub-flows of `bytes` each over links a and b. Shared per
  // collective, the collective's `users` flows on a link weigh 1 together.
  bool perCollective = c.sharing == LinkSharing::Collective;
  auto flow = [&](int a, int b, double pairs, double each, double users) {
    double weight = perCollective ? 1.0 / users : pairs;
    return FlowSpec{a, b, weight, pairs * each / weight};
  };

  if (op.kind != OpKind::AllReduce) { // all_to_all, all_to_all_v
    PhaseSpec p;
    p.latency = c.launchLatency + (n - 1) * (m > 1 ? outLat : inLat);
    if (!op.sendRows.empty()) {
      // The rows the plan says each member sends to each: one flow per
      // pair inside a node, per ordered pair of nodes one flow of their
      // members' pairs.
      const Buffer &in = plan.buffer(op.inputs[0]);
      double rowBytes = in.shape[0] > 0
                            ? static_cast<double>(in.numBytes()) / in.shape[0]
                            : 0.0;
      std::map<std::pair<int, int>, double> across;
      // A rank exchanges with the peers it has rows for, each a send or a
      // receive of the grouped point-to-point calls: the latency is the
      // busiest rank's peer count (all of them for a dense exchange, one
      // for a single weight copy).
      int most = 0;
      bool crosses = false;
      for (int i = 0; i < n; ++i) {
        int peers = 0;
        for (int j = 0; j < n; ++j)
          if (i != j &&
              (op.sendRows[i * n + j] > 0 || op.sendRows[j * n + i] > 0)) {
            ++peers;
            crosses |= t.nodeOf(members[i]) != t.nodeOf(members[j]);
          }
        most = std::max(most, peers);
      }
      p.latency = c.launchLatency + most * (crosses ? outLat : inLat);
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) {
          double b = rowBytes * static_cast<double>(op.sendRows[i * n + j]);
          int src = members[i], dst = members[j];
          if (i == j || b <= 0)
            continue;
          if (t.nodeOf(src) == t.nodeOf(dst)) {
            double users = 0;
            for (const auto &node : byNode)
              if (t.nodeOf(node.front()) == t.nodeOf(src))
                users = node.size() - 1.0;
            p.flows.push_back(
                flow(t.gpuUp(src), t.gpuDown(dst), 1.0, b, users));
          } else {
            across[{t.nodeOf(src), t.nodeOf(dst)}] += b;
          }
        }
      for (const auto &[nodes, b] : across) {
        double pairs = 0;
        for (const auto &from : byNode)
          for (const auto &to : byNode)
            if (t.nodeOf(from.front()) == nodes.first &&
                t.nodeOf(to.front()) == nodes.second)
              pairs = static_cast<double>(from.size() * to.size());
        p.flows.push_back(flow(t.nicUp(nodes.first), t.nicDown(nodes.second),
                               pairs, b / pairs, m - 1.0));
      }
      phases.push_back(std::move(p));
      return;
    }
    double per = bytes / n;
    if (per > 0) {
      for (const auto &node : byNode)
        for (int i : node)
          for (int j : node)
            if (i != j)
              p.flows.push_back(
                  flow(t.gpuUp(i), t.gpuDown(j), 1.0, per, node.size() - 1.0));
      for (const auto &from : byNode)
        for (const auto &to : byNode)
          if (&from != &to)
            p.flows.push_back(flow(t.nicUp(t.nodeOf(from.front())),
                                   t.nicDown(t.nodeOf(to.front())),
                                   static_cast<double>(from.size() * to.size()),
                                   per, m - 1.0));
    }
    phases.push_back(std::move(p));
    return;
  }

  // One ring step set inside every node: each GPU sends `fraction(g)` of
  // the bytes to its successor.
  auto intraRing = [&](double latency, double factor) {
    PhaseSpec p;
    p.latency = latency;
    for (const auto &node : byNode) {
      size_t g = node.size();
      if (g < 2 || bytes <= 0)
        continue;
      double b = factor * (g - 1.0) / g * bytes;
      for (size_t i = 0; i < g; ++i)
        p.flows.push_back(
            flow(t.gpuUp(node[i]), t.gpuDown(node[(i + 1) % g]), 1.0, b, 1.0));
    }
    return p;
  };
  if (m == 1 || c.allReduceAlgorithm == AllReduceAlgorithm::Ring) {
    // NCCL's ring over the members in rank order: every hop carries
    // 2(n-1)/n B, inside a node over NVLink, across nodes through the
    // interfaces.
    PhaseSpec p;
    p.latency =
        c.launchLatency + 2 * (gmax - 1.0) * inLat + 2 * (m - 1.0) * outLat;
    double each = 2.0 * (n - 1) / n * bytes;
    if (each > 0)
      for (int i = 0; i < n; ++i) {
        int a = sorted[i], b = sorted[(i + 1) % n];
        if (t.nodeOf(a) == t.nodeOf(b))
          p.flows.push_back(flow(t.gpuUp(a), t.gpuDown(b), 1.0, each, 1.0));
        else
          p.flows.push_back(flow(t.nicUp(t.nodeOf(a)), t.nicDown(t.nodeOf(b)),
                                 1.0, each, 1.0));
      }
    phases.push_back(std::move(p));
    return;
  }
  // Tree: reduce in each node (as a reduce-scatter: each GPU sends
  // (g-1)/g B to its successor), the double binary tree of the nodes' g
  // shards between the interfaces (2(m-1)/m B per node, latency
  // 2 ceil(log2 m) alpha), broadcast in each node.
  bool intra = gmax > 1;
  if (intra)
    phases.push_back(intraRing(c.launchLatency + (gmax - 1.0) * inLat, 1.0));
  PhaseSpec net;
  net.latency = 2.0 * std::ceil(std::log2(static_cast<double>(m))) * outLat +
                (intra ? 0.0 : c.launchLatency);
  if (bytes > 0)
    for (int k = 0; k < m; ++k) {
      double g = static_cast<double>(byNode[k].size());
      net.flows.push_back(flow(t.nicUp(t.nodeOf(byNode[k].front())),
                               t.nicDown(t.nodeOf(byNode[(k + 1) % m].front())),
                               g, 2.0 * (m - 1) / m * bytes / g, 1.0));
    }
  phases.push_back(std::move(net));
  if (intra)
    phases.push_back(intraRing((gmax - 1.0) * inLat, 1.0));
}

/// Time of `phases` alone on the network: per phase its latency plus its
/// own most loaded link at full bandwidth. A lower bound on the phases'
/// simulated time under any sharing, and their exact time alone whenever
/// one link bounds every flow of a phase.
double aloneTime(const std::vector<PhaseSpec> &phases, const Topology &t,
                 std::unordered_map<int, double> &load) {
  double total = 0;
  for (const PhaseSpec &p : phases) {
    load.clear();
    double worst = 0;
    for (const FlowSpec &f : p.flows)
      for (int l : {f.a, f.b})
        worst =
            std::max(worst, (load[l] += f.weight * f.bytes) / t.capacity(l));
    total += p.latency + worst;
  }
  return total;
}

/// Every group's rank -> (instance, index) table and its channel numbering.
struct GroupIndex {
  std::vector<const Group *> groups;
  std::map<std::string, int> byName;
  std::vector<std::vector<int>> instanceOf; ///< per group, per rank
  std::vector<int> channelBase;             ///< per group
  int channels = 0;

  explicit GroupIndex(const Plan &plan) {
    for (const auto &[name, group] : plan.groups) {
      byName[name] = static_cast<int>(groups.size());
      groups.push_back(&group);
      std::vector<int> inst(plan.worldSize, -1);
      for (size_t i = 0; i < group.members.size(); ++i)
        for (int r : group.members[i])
          if (r >= 0 && r < plan.worldSize)
            inst[r] = static_cast<int>(i);
      instanceOf.push_back(std::move(inst));
      channelBase.push_back(channels);
      channels += 3 * static_cast<int>(group.members.size());
    }
  }
  int groupOf(const Op &op) const {
    auto it = byName.find(op.group);
    if (it == byName.end())
      throw PlanError(op.describe() + " uses the unknown group '" + op.group +
                      "'");
    return it->second;
  }
  const std::vector<int> &members(int g, int rank, const Op &op) const {
    int i = instanceOf[g][rank];
    if (i < 0)
      throw PlanError(op.describe() + ": rank " + std::to_string(rank) +
                      " is in no instance of group '" + op.group + "'");
    return groups[g]->members[i];
  }
};

//===----------------------------------------------------------------------===//
// Max-min fair sharing
//===----------------------------------------------------------------------===//

/// Progressive filling over links with scratch space reused across calls.
/// Flows are any type with links `a` and `b` (-1: none), an integral
/// `weight` (identical sub-flows) and an output `rate` per sub-flow.
class MaxMinFiller {
public:
  explicit MaxMinFiller(int links)
      : residual(links), weightSum(links, 0.0), linkCount(links, 0),
        linkStart(links, 0), version(links, 0) {}

  /// The capacity left on each link; set before fill, reduced by it.
  std::vector<double> residual;

  /// Max-min fair rates of the flows `ids` on the capacities left in
  /// `residual`: all unfrozen sub-flows grow at one level; the link whose
  /// residual per unfrozen weight is smallest saturates first and freezes
  /// its flows at that level. O((F + L) log L) for F flows on L links.
  template <typename FlowT>
  void fill(std::vector<FlowT> &flows, const std::vector<int> &ids) {
    touched.clear();
    for (int i : ids) {
      const FlowT &f = flows[i];
      for (int l : {f.a, f.b}) {
        if (l < 0)
          continue;
        if (linkCount[l]++ == 0)
          touched.push_back(l);
        weightSum[l] += f.weight;
      }
    }
    int at = 0;
    for (int l : touched) {
      linkStart[l] = at;
      at += linkCount[l];
      linkCount[l] = 0; // reused as the fill cursor
    }
    adjacency.resize(at);
    for (int i : ids)
      for (int l : {flows[i].a, flows[i].b})
        if (l >= 0)
          adjacency[linkStart[l] + linkCount[l]++] = i;

    using Key =
        std::pair<double, std::pair<int, int>>; // share, (link, version)
    std::priority_queue<Key, std::vector<Key>, std::greater<Key>> shares;
    for (int l : touched)
      shares.push({residual[l] / weightSum[l], {l, version[l]}});
    for (int i : ids)
      flows[i].rate = -1; // unfrozen
    double level = 0;
    while (!shares.empty()) {
      auto [share, lv] = shares.top();
      shares.pop();
      int l = lv.first;
      if (lv.second != version[l] || weightSum[l] <= 0)
        continue;
      // Levels never decrease; rounding must not make them.
      level = std::max(level, share);
      for (int k = linkStart[l], e = k + linkCount[l]; k < e; ++k) {
        FlowT &f = flows[adjacency[k]];
        if (f.rate >= 0)
          continue;
        f.rate = level;
        for (int l2 : {f.a, f.b}) {
          if (l2 < 0)
            continue;
          residual[l2] = std::max(0.0, residual[l2] - f.weight * level);
          weightSum[l2] -= f.weight;
          if (l2 != l && weightSum[l2] > 0)
            shares.push({residual[l2] / weightSum[l2], {l2, ++version[l2]}});
        }
      }
      weightSum[l] = 0;
    }
    for (int l : touched) {
      linkCount[l] = 0;
      weightSum[l] = 0;
    }
  }

private:
  std::vector<double> weightSum;
  std::vector<int> linkCount, linkStart, version, adjacency, touched;
};

//===----------------------------------------------------------------------===//
// Fibers
//===----------------------------------------------------------------------===//

#if defined(__x86_64__)
// Switching stacks is the simulator's innermost operation (two per
// completion a rank waits for). swapcontext() also saves the signal mask
// with a system call; these two routines switch only what the SysV x86-64
// ABI makes the callee preserve: rbx, rbp, r12-r15, the stack pointer, and
// the SSE and x87 control words.
extern "C" void lina_sim_switch(void **save, void *next);
extern "C" void lina_sim_start();
__asm__(".text\n"
        ".globl lina_sim_switch\n"
        ".hidden lina_sim_switch\n"
        ".type lina_sim_switch,@function\n"
        "lina_sim_switch:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  subq $8, %rsp\n"
        "  stmxcsr (%rsp)\n"
        "  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp)\n"
        "  fldcw 4(%rsp)\n"
        "  addq $8, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size lina_sim_switch, .-lina_sim_switch\n"
        // First entry: r13 holds the function, r12 its argument.
        ".globl lina_sim_start\n"
        ".hidden lina_sim_start\n"
        ".type lina_sim_start,@function\n"
        "lina_sim_start:\n"
        "  movq %r12, %rdi\n"
        "  andq $-16, %rsp\n"
        "  callq *%r13\n"
        "  ud2\n"
        ".size lina_sim_start, .-lina_sim_start\n");
#endif

// Under AddressSanitizer a fiber stack's shadow keeps the poison of the
// frames that were live when the fiber last yielded (a fiber never returns).
// A later mapping at the same address would inherit that stale poison and
// be reported as a stack-use-after-scope: clear it when a stack is mapped
// and unmapped.
// Every switch is also announced to ASan (start/finish_switch_fiber), so
// that it tracks which stack is live.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
static void unpoisonStack(void *p, size_t n) {
  __asan_unpoison_memory_region(p, n);
}
static void startSwitch(void **fake, const void *bottom, size_t size) {
  __sanitizer_start_switch_fiber(fake, bottom, size);
}
static void finishSwitch(void *fake, const void **bottom, size_t *size) {
  __sanitizer_finish_switch_fiber(fake, bottom, size);
}
#else
static void unpoisonStack(void *, size_t) {}
static void startSwitch(void **, const void *, size_t) {}
static void finishSwitch(void *, const void **, size_t *) {}
#endif

/// A coroutine on its own mmap'ed stack, with a guard page below it.
/// resume() runs it until it calls yield(); its entry function must never
/// return (it yields for the last time instead).
class Fiber {
public:
  using Entry = void (*)(void *);
  static constexpr size_t kStackBytes = 256 * 1024;

  Fiber(Entry entry, void *arg) {
    page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void *mem = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
      throw PlanError(std::string("simulator: cannot map a fiber stack: ") +
                      std::strerror(errno));
    stack = static_cast<char *>(mem);
    unpoisonStack(stack, kStackBytes + page);
    mprotect(stack, page, PROT_NONE); // overflow faults instead of corrupting
#if defined(__x86_64__)
    // The frame lina_sim_switch pops: control words, r15, r14, r13 (entry),
    // r12 (arg), rbx, rbp, return address (lina_sim_start).
    auto top = reinterpret_cast<uintptr_t>(stack + page + kStackBytes) &
               ~uintptr_t(15);
    void **frame = reinterpret_cast<void **>(top) - 8;
    uint32_t mxcsr = 0;
    uint16_t fpcw = 0;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpcw));
    uint64_t words = mxcsr | (static_cast<uint64_t>(fpcw) << 32);
    std::memcpy(&frame[0], &words, sizeof words);
    frame[1] = frame[2] = frame[5] = frame[6] = nullptr;
    userEntry = entry;
    userArg = arg;
    frame[3] = reinterpret_cast<void *>(&Fiber::boot);
    frame[4] = this;
    frame[7] = reinterpret_cast<void *>(&lina_sim_start);
    sp = frame;
#else
    if (getcontext(&context) != 0)
      throw PlanError("simulator: getcontext failed");
    context.uc_stack.ss_sp = stack + page;
    context.uc_stack.ss_size = kStackBytes;
    context.uc_link = nullptr;
    auto bits = reinterpret_cast<uintptr_t>(arg);
    auto fn = reinterpret_cast<uintptr_t>(entry);
    makecontext(&context, reinterpret_cast<void (*)()>(&trampoline), 4,
                static_cast<uint32_t>(fn >> 32), static_cast<uint32_t>(fn),
                static_cast<uint32_t>(bits >> 32), static_cast<uint32_t>(bits));
#endif
  }
  ~Fiber() {
    unpoisonStack(stack, kStackBytes + page);
    munmap(stack, kStackBytes + page);
  }
  Fiber(const Fiber &) = delete;
  Fiber &operator=(const Fiber &) = delete;

  /// From the loop: runs the fiber until it yields.
  void resume() {
#if defined(__x86_64__)
    void *fake = nullptr;
    startSwitch(&fake, stack + page, kStackBytes);
    lina_sim_switch(&callerSp, sp);
    finishSwitch(fake, nullptr, nullptr);
#else
    swapcontext(&caller, &context);
#endif
  }
  /// From the fiber: returns to the loop.
  void yield() {
#if defined(__x86_64__)
    void *fake = nullptr;
    startSwitch(&fake, callerBottom, callerSize);
    lina_sim_switch(&sp, callerSp);
    finishSwitch(fake, &callerBottom, &callerSize);
#else
    swapcontext(&context, &caller);
#endif
  }

private:
#if defined(__x86_64__)
  /// First code on the fiber's stack: tells ASan the switch is complete,
  /// then runs the entry function.
  static void boot(void *self) {
    auto *f = static_cast<Fiber *>(self);
    finishSwitch(nullptr, &f->callerBottom, &f->callerSize);
    f->userEntry(f->userArg);
  }
  void *sp = nullptr, *callerSp = nullptr;
  Entry userEntry = nullptr;
  void *userArg = nullptr;
  const void *callerBottom = nullptr;
  size_t callerSize = 0;
#else
  static void trampoline(uint32_t fnHi, uint32_t fnLo, uint32_t argHi,
                         uint32_t argLo) {
    auto fn = reinterpret_cast<Entry>((uintptr_t(fnHi) << 32) | fnLo);
    fn(reinterpret_cast<void *>((uintptr_t(argHi) << 32) | argLo));
  }
  ucontext_t context, caller;
#endif
  char *stack = nullptr;
  size_t page = 0;
};

//===----------------------------------------------------------------------===//
// The event loop
//===----------------------------------------------------------------------===//

/// Simulated times beyond this (about 31,700 years) are input errors, not
/// results: a cluster's rates are off by many orders of magnitude.
constexpr double kMaxSimulatedTime = 1e12;

/// Thrown into fibers to unwind them when the simulation stops early.
struct Unwind {};

class Engine;

struct RankState {
  Engine *engine = nullptr;
  int rank = 0;
  std::unique_ptr<Fiber> fiber;
  std::vector<int> ready;
  bool waiting = false, done = false, queued = false;
  std::vector<int> computeQueue; ///< compute ops waiting for the stream
  size_t computeHead = 0;
  bool computeBusy = false;
  std::vector<int> seq; ///< per group x queue: collectives issued
  StepStats stats;
};

class Engine {
public:
  Engine(const Plan &plan, const ClusterSpec &cluster,
         const SimOptions &options)
      : plan(plan), model(cluster), options(options),
        topo(plan.worldSize, cluster), groups(plan),
        prototype(plan, options.scheduler), filler(topo.numLinks()) {
    opGroup.assign(plan.ops.size(), -1);
    opTime.assign(plan.ops.size(), 0.0);
    for (const Op &op : plan.ops) {
      if (op.isCollective())
        opGroup[op.id] = groups.groupOf(op);
      else
        opTime[op.id] = computeTime(plan, op, model);
    }
  }

  SimResult run();

  // Called on the rank fibers, through RankBackend.
  void start(int rank, const Op &op);
  std::vector<int> waitAny(int rank);
  double now() const { return clock; }

private:
  struct Flow {
    int coll;
    int a, b;
    double weight;
    double remaining; ///< bytes per sub-flow left at the last filling
    double rate;      ///< bytes/s per sub-flow; 0 until first rated
    double finish;    ///< when it ends at its rate
    bool high;
  };
  struct Running {
    int op = -1;
    const std::vector<int> *members = nullptr;
    std::vector<PhaseSpec> phases;
    size_t phase = 0;
    int activeFlows = 0;
  };
  struct Pending {
    int op = -1;
    int issued = 0;
  };
  struct Event {
    double time;
    int64_t seq;
    bool compute; ///< a compute op ends (else a phase's latency ends)
    int a, b;     ///< rank and op, or the running collective
    bool operator>(const Event &o) const {
      return time != o.time ? time > o.time : seq > o.seq;
    }
  };

  static void entry(void *rank);
  void resume(RankState &r);
  void unwindAll();
  [[noreturn]] void fail(const std::string &msg);
  void deliver(int rank, int op);
  void beginCompute(RankState &r, int op);
  void push(double time, bool compute, int a, int b);
  void checkTime(double time, int op);
  void startCollective(const Op &op, const std::vector<int> &members);
  void startPhase(int c);
  void startFlows(int c);
  void fillRates();
  std::string deadlockMessage() const;

  const Plan &plan;
  CostModel model;
  SimOptions options;
  Topology topo;
  GroupIndex groups;
  Scheduler prototype;
  std::vector<int> opGroup;
  std::vector<double> opTime;

  std::vector<RankState> ranks;
  std::vector<int> runnable;
  int finished = 0;
  bool unwinding = false;
  std::string error;

  double clock = 0;
  int64_t seqNo = 0, events = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> heap;
  std::unordered_map<uint64_t, Pending> pending;
  std::vector<Running> colls;
  std::vector<int> freeColls;
  std::vector<Flow> flows;
  bool dirty = false;
  double minFinish = INFINITY;

  MaxMinFiller filler;
};

class RankBackend : public Backend {
public:
  RankBackend(Engine &engine, int rank) : engine(engine), rank(rank) {}
  void start(const Op &op) override { engine.start(rank, op); }
  std::vector<int> waitAny() override { return engine.waitAny(rank); }
  double now() override { return engine.now(); }

private:
  Engine &engine;
  int rank;
};

void Engine::entry(void *rank) {
  auto *r = static_cast<RankState *>(rank);
  Engine &e = *r->engine;
  try {
    // Copying one scheduler saves recomputing the plan's dependencies per
    // rank; a scheduler that cannot be copied is built afresh.
    std::optional<Scheduler> scheduler;
    if constexpr (std::is_copy_constructible_v<Scheduler>)
      scheduler.emplace(e.prototype);
    else
      scheduler.emplace(e.plan, e.options.scheduler);
    RankBackend backend(e, r->rank);
    r->stats = scheduler->run(backend);
  } catch (const Unwind &) {
  } catch (const std::exception &ex) {
    if (e.error.empty())
      e.error = "rank " + std::to_string(r->rank) + ": " + ex.what();
  } catch (...) {
    if (e.error.empty())
      e.error = "rank " + std::to_string(r->rank) + ": unknown exception";
  }
  r->done = true;
  ++e.finished;
  r->fiber->yield(); // for the last time: never resumed
  __builtin_unreachable();
}

void Engine::resume(RankState &r) {
  r.waiting = false;
  r.fiber->resume();
}

void Engine::start(int rank, const Op &op) {
  RankState &r = ranks[rank];
  if (!op.isCollective()) {
    // One compute stream per GPU: ops run one at a time, in start order.
    if (r.computeBusy)
      r.computeQueue.push_back(op.id);
    else
      beginCompute(r, op.id);
    return;
  }
  int g = opGroup[op.id];
  const std::vector<int> &members = groups.members(g, rank, op);
  int instance = groups.instanceOf[g][rank];
  int q = static_cast<int>(queueOf(op));
  int channel = groups.channelBase[g] + 3 * instance + q;
  int k = r.seq[3 * g + q]++;
  uint64_t key =
      (static_cast<uint64_t>(channel) << 32) | static_cast<uint32_t>(k);
  Pending &p = pending[key];
  if (p.issued == 0)
    p.op = op.id;
  else if (p.op != op.id)
    throw PlanError("ranks issue different collectives on group '" + op.group +
                    "': " + plan.ops[p.op].describe() + " and " +
                    op.describe());
  if (++p.issued < static_cast<int>(members.size()))
    return;
  pending.erase(key);
  startCollective(op, members);
}

std::vector<int> Engine::waitAny(int rank) {
  RankState &r = ranks[rank];
  while (r.ready.empty()) {
    if (unwinding)
      throw Unwind();
    r.waiting = true;
    r.fiber->yield();
  }
  if (unwinding)
    throw Unwind();
  std::vector<int> out;
  out.swap(r.ready);
  return out;
}

void Engine::deliver(int rank, int op) {
  RankState &r = ranks[rank];
  r.ready.push_back(op);
  if (r.waiting && !r.queued) {
    r.queued = true;
    runnable.push_back(rank);
  }
}

void Engine::fail(const std::string &msg) {
  if (error.empty())
    error = msg;
  throw PlanError(error);
}

void Engine::checkTime(double time, int op) {
  if (time <= kMaxSimulatedTime)
    return;
  std::ostringstream os;
  os << plan.ops[op].describe() << " would end at a simulated time of ";
  if (std::isfinite(time))
    os << time << " s";
  else
    os << "infinity";
  os << ", beyond the limit of " << kMaxSimulatedTime
     << " s (check the cluster's FLOP/s, bandwidths and latencies)";
  fail(os.str());
}

void Engine::push(double time, bool compute, int a, int b) {
  checkTime(time, compute ? b : colls[a].op);
  heap.push({time, seqNo++, compute, a, b});
}

void Engine::beginCompute(RankState &r, int op) {
  r.computeBusy = true;
  push(clock + opTime[op], true, r.rank, op);
}

void Engine::startCollective(const Op &op, const std::vector<int> &members) {
  int c;
  if (!freeColls.empty()) {
    c = freeColls.back();
    freeColls.pop_back();
  } else {
    c = static_cast<int>(colls.size());
    colls.emplace_back();
  }
  Running &run = colls[c];
  run.op = op.id;
  run.members = &members;
  run.phase = 0;
  run.activeFlows = 0;
  collectivePhases(plan, op, members, topo, run.phases);
  startPhase(c);
}

void Engine::startPhase(int c) {
  Running &run = colls[c];
  if (run.phase == run.phases.size()) {
    for (int r : *run.members)
      deliver(r, run.op);
    run.op = -1;
    freeColls.push_back(c);
    return;
  }
  double latency = run.phases[run.phase].latency;
  if (latency > 0)
    push(clock + latency, false, c, 0);
  else
    startFlows(c);
}

void Engine::startFlows(int c) {
  Running &run = colls[c];
  bool high = queueOf(plan.ops[run.op]) != Queue::Low;
  for (const FlowSpec &f : run.phases[run.phase].flows) {
    if (f.bytes <= 0 || f.weight <= 0)
      continue;
    // Not rated yet: no finish time until the next filling.
    flows.push_back({c, f.a, f.b, f.weight, f.bytes, 0.0, INFINITY, high});
    ++run.activeFlows;
  }
  if (run.activeFlows > 0) {
    dirty = true;
    return;
  }
  ++run.phase;
  startPhase(c);
}

void Engine::fillRates() {
  // Bytes left at the old rates: the finish times were exact for them.
  for (Flow &f : flows)
    if (f.rate > 0)
      f.remaining = std::max(0.0, (f.finish - clock) * f.rate);
  for (int l = 0, e = topo.numLinks(); l < e; ++l)
    filler.residual[l] = topo.capacity(l);
  std::vector<int> high, low;
  for (int i = 0, e = static_cast<int>(flows.size()); i < e; ++i)
    (options.linkPriority && !flows[i].high ? low : high).push_back(i);
  filler.fill(flows, high);
  if (!low.empty())
    filler.fill(flows, low);
  minFinish = INFINITY;
  for (Flow &f : flows) {
    f.finish = clock + f.remaining / f.rate;
    minFinish = std::min(minFinish, f.finish);
  }
}

std::string Engine::deadlockMessage() const {
  std::string waitingOn;
  std::vector<std::pair<int, int>> list;
  for (const auto &[key, p] : pending)
    list.push_back({p.op, p.issued});
  std::sort(list.begin(), list.end());
  for (size_t i = 0; i < list.size() && i < 8; ++i)
    waitingOn += " " + plan.ops[list[i].first].describe() + " (" +
                 std::to_string(list[i].second) + " ranks issued)";
  if (list.size() > 8)
    waitingOn += " and " + std::to_string(list.size() - 8) + " more";
  return "simulated ranks deadlocked; collectives waiting for ranks:" +
         (waitingOn.empty() ? std::string(" none") : waitingOn);
}

void Engine::unwindAll() {
  unwinding = true;
  for (RankState &r : ranks)
    if (r.fiber && !r.done)
      r.fiber->resume();
}

SimResult Engine::run() {
  int n = plan.worldSize;
  ranks.resize(n);
  for (int r = 0; r < n; ++r) {
    RankState &s = ranks[r];
    s.engine = this;
    s.rank = r;
    s.seq.assign(3 * groups.groups.size(), 0);
    s.fiber = std::make_unique<Fiber>(&Engine::entry, &s);
    runnable.push_back(r);
    s.queued = true;
  }
  std::vector<int> batch;
  try {
    while (true) {
      while (!runnable.empty()) {
        batch.swap(runnable);
        for (int r : batch) {
          ranks[r].queued = false;
          resume(ranks[r]);
          if (!error.empty())
            throw PlanError(error);
        }
        batch.clear();
      }
      if (finished == n)
        break;
      if (dirty) {
        fillRates();
        dirty = false;
      }
      double next =
          std::min(minFinish, heap.empty() ? INFINITY : heap.top().time);
      if (flows.empty() && heap.empty())
        fail(deadlockMessage());
      if (!(next <= kMaxSimulatedTime)) {
        const Flow *slow = &flows.front();
        for (const Flow &f : flows)
          if (!(f.finish <= slow->finish))
            slow = &f;
        checkTime(slow->finish, colls[slow->coll].op);
      }
      ++events;
      // Events within a relative 1e-12 of each other are one event: the
      // symmetric instances of a collective end together.
      double horizon = next + std::abs(next) * 1e-12;
      clock = std::max(clock, next);
      while (!heap.empty() && heap.top().time <= horizon) {
        Event ev = heap.top();
        heap.pop();
        if (ev.compute) {
          RankState &r = ranks[ev.a];
          r.computeBusy = false;
          deliver(ev.a, ev.b);
          if (r.computeHead < r.computeQueue.size())
            beginCompute(r, r.computeQueue[r.computeHead++]);
        } else {
          startFlows(ev.a);
        }
      }
      if (minFinish <= horizon) {
        // Flows ending now leave; the earliest always does, so every event
        // makes progress even when the step underflows against the clock.
        std::vector<int> ended;
        size_t keep = 0;
        for (size_t i = 0; i < flows.size(); ++i) {
          if (flows[i].finish <= horizon)
            ended.push_back(flows[i].coll);
          else
            flows[keep++] = flows[i];
        }
        flows.resize(keep);
        dirty = true;
        for (int c : ended)
          if (--colls[c].activeFlows == 0) {
            ++colls[c].phase;
            startPhase(c);
          }
      }
    }
  } catch (...) {
    unwindAll();
    throw;
  }
  SimResult result;
  result.events = events;
  result.ranks.resize(n);
  for (int r = 0; r < n; ++r) {
    const StepStats &s = ranks[r].stats;
    result.stepTime = std::max(result.stepTime, s.stepTime);
    result.meanAllToAllBlocked += s.allToAllBlocked / n;
    result.meanAllToAllTime += s.allToAllTime / n;
    result.meanAllReduceTime += s.allReduceTime / n;
    result.ranks[r] = std::move(ranks[r].stats);
  }
  return result;
}

void checkFits(const Plan &plan, const ClusterSpec &cluster) {
  if (plan.worldSize > cluster.numGpus())
    throw PlanError("the plan needs " + std::to_string(plan.worldSize) +
                    " GPUs, but the cluster '" + cluster.name + "' has " +
                    std::to_string(cluster.numGpus()));
}
} // namespace

SimResult lina::rt::simulate(const Plan &plan, const ClusterSpec &cluster,
                             const SimOptions &options) {
  checkFits(plan, cluster);
  try {
    Engine engine(plan, cluster, options);
    return engine.run();
  } catch (const PlanError &e) {
    throw PlanError(std::string("simulator: ") + e.what());
  }
}

SimBound lina::rt::lowerBound(const Plan &plan, const ClusterSpec &cluster) {
  checkFits(plan, cluster);
  int n = plan.worldSize;
  Topology topo(n, cluster);
  CostModel model(cluster);
  GroupIndex groups(plan);
  Scheduler scheduler(plan, {});
  const std::vector<std::vector<int>> &deps = scheduler.dependencies();
  std::vector<double> linkBytes(topo.numLinks(), 0.0);
  std::vector<double> computeSum(n, 0.0);
  // finish[op][rank]: the earliest the op can end on the rank.
  std::vector<std::vector<double>> finish(plan.ops.size());
  std::vector<double> ready(n);
  std::vector<PhaseSpec> phases;
  std::unordered_map<int, double> load;
  // Per collective: its instances (the members, alone on the network).
  struct Instance {
    const std::vector<int> *members;
    double alone;
    std::vector<std::pair<int, double>> links; ///< (link, bytes on it)
  };
  std::vector<std::vector<Instance>> instances(plan.ops.size());
  std::vector<double> opTime(plan.ops.size(), 0.0);
  SimBound bound;
  for (const Op &op : plan.ops) {
    for (int r = 0; r < n; ++r) {
      ready[r] = 0;
      for (int d : deps[op.id])
        ready[r] = std::max(ready[r], finish[d][r]);
    }
    std::vector<double> &end = finish[op.id];
    end.assign(n, 0.0);
    if (!op.isCollective()) {
      double t = computeTime(plan, op, model);
      opTime[op.id] = t;
      for (int r = 0; r < n; ++r) {
        end[r] = ready[r] + t;
        computeSum[r] += t;
      }
      continue;
    }
    const Group &group = *groups.groups[groups.groupOf(op)];
    for (const std::vector<int> &members : group.members) {
      collectivePhases(plan, op, members, topo, phases);
      std::map<int, double> bytesOn;
      for (const PhaseSpec &p : phases)
        for (const FlowSpec &f : p.flows)
          for (int l : {f.a, f.b}) {
            linkBytes[l] += f.weight * f.bytes;
            bytesOn[l] += f.weight * f.bytes;
          }
      double start = 0;
      for (int r : members)
        start = std::max(start, ready[r]);
      double alone = aloneTime(phases, topo, load);
      instances[op.id].push_back(
          {&members, alone, {bytesOn.begin(), bytesOn.end()}});
      for (int r : members)
        end[r] = start + alone;
    }
  }
  for (int l = 0; l < topo.numLinks(); ++l) {
    double cut = linkBytes[l] / topo.capacity(l);
    if (cut > bound.linkCut) {
      bound.linkCut = cut;
      bound.link = topo.name(l);
    }
  }
  for (int r = 0; r < n; ++r)
    bound.compute = std::max(bound.compute, computeSum[r]);
  for (const std::vector<double> &end : finish)
    for (double t : end)
      bound.criticalPath = std::max(bound.criticalPath, t);

  // tail[op][r]: the least time from the end of `op` on rank r to the end
  // of the step, along the dependency graph (compute ops at their time,
  // collectives alone on the network). Successors come later in the plan.
  std::vector<std::vector<double>> tail(plan.ops.size(),
                                        std::vector<double>(n, 0.0));
  std::vector<double> through(n);
  for (size_t i = plan.ops.size(); i-- > 0;) {
    const Op &op = plan.ops[i];
    if (deps[op.id].empty())
      continue;
    // through[r]: the least time from the moment op's inputs on rank r are
    // ready to the end of the step.
    if (!op.isCollective()) {
      for (int r = 0; r < n; ++r)
        through[r] = opTime[op.id] + tail[op.id][r];
    } else {
      std::fill(through.begin(), through.end(), 0.0);
      for (const Instance &inst : instances[op.id]) {
        double after = 0;
        for (int m : *inst.members)
          after = std::max(after, tail[op.id][m]);
        for (int m : *inst.members)
          through[m] = inst.alone + after;
      }
    }
    for (int d : deps[op.id])
      for (int r = 0; r < n; ++r)
        tail[d][r] = std::max(tail[d][r], through[r]);
  }

  // Stream-aware heads. Every op starts after all its ancestors (the ops
  // with a dependency path to it; the same op ids on every rank, since
  // dependencies stay on a rank). On rank r the compute ancestors run one
  // at a time on one stream, so the last of them ends no earlier than the
  // optimal one-machine makespan with release times (earliest release
  // first); so do the high-queue ancestors, each at least alone on the
  // network. With those heads as release times, by induction in plan
  // order, start[op][r] is a lower bound of op's start in any schedule.
  // Ancestor sets are bitsets: quadratic, so only for plans of at most
  // kMaxStreamOps ops (beyond, the term is 0 and the others remain). Ranks
  // with the same starts and lengths of every op (symmetric ranks of an
  // SPMD plan) are computed once, while they stay alike.
  constexpr size_t kMaxStreamOps = 6000;
  constexpr double kMaxStreamWork = 4e8;
  const size_t numOps = plan.ops.size();
  std::vector<std::vector<double>> start(numOps, std::vector<double>(n, 0.0));
  std::vector<std::vector<double>> length(numOps, std::vector<double>(n, 0.0));
  std::vector<std::vector<char>> member(numOps, std::vector<char>(n, 0));
  for (const Op &op : plan.ops) {
    if (!op.isCollective()) {
      std::fill(length[op.id].begin(), length[op.id].end(), opTime[op.id]);
      std::fill(member[op.id].begin(), member[op.id].end(), 1);
    } else {
      for (const Instance &inst : instances[op.id])
        for (int m : *inst.members) {
          length[op.id][m] = inst.alone;
          member[op.id][m] = 1;
        }
    }
    for (int r = 0; r < n; ++r)
      start[op.id][r] = finish[op.id][r] - length[op.id][r];
  }
  std::vector<int> rep(n), reps;
  {
    std::map<std::vector<double>, int> classes;
    std::vector<double> key(2 * numOps);
    for (int r = 0; r < n; ++r) {
      for (size_t i = 0; i < numOps; ++i) {
        key[2 * i] = start[i][r];
        key[2 * i + 1] = length[i][r];
      }
      auto [it, fresh] = classes.emplace(key, r);
      rep[r] = it->second;
      if (fresh)
        reps.push_back(r);
    }
  }
  double work = 0.5 * double(numOps) * double(numOps) * double(reps.size());
  if (numOps <= kMaxStreamOps && work <= kMaxStreamWork) {
    const size_t words = (numOps + 63) / 64;
    std::vector<std::vector<uint64_t>> ancestors(numOps,
                                                 std::vector<uint64_t>(words));
    std::vector<int> computeAnc, highAnc;
    std::vector<std::pair<double, double>> set;
    auto makespan = [&set]() {
      std::sort(set.begin(), set.end());
      double clock = 0;
      for (const auto &[release, time] : set)
        clock = std::max(clock, release) + time;
      return clock;
    };
    std::vector<double> head(n);
    for (const Op &op : plan.ops) {
      std::vector<uint64_t> &anc = ancestors[op.id];
      for (int d : deps[op.id]) {
        for (size_t w = 0; w < words; ++w)
          anc[w] |= ancestors[d][w];
        anc[d / 64] |= uint64_t(1) << (d % 64);
      }
      computeAnc.clear();
      highAnc.clear();
      for (size_t w = 0; w < words; ++w)
        for (uint64_t bits = anc[w]; bits; bits &= bits - 1) {
          int i = static_cast<int>(w * 64 + __builtin_ctzll(bits));
          const Op &a = plan.ops[i];
          if (!a.isCollective())
            computeAnc.push_back(i);
          else if (queueOf(a) == Queue::High)
            highAnc.push_back(i);
        }
      for (int r : reps) {
        double h = 0;
        for (int d : deps[op.id])
          h = std::max(h, start[d][r] + length[d][r]);
        set.clear();
        for (int i : computeAnc)
          set.emplace_back(start[i][r], length[i][r]);
        h = std::max(h, makespan());
        set.clear();
        for (int i : highAnc)
          if (member[i][r])
            set.emplace_back(start[i][r], length[i][r]);
        h = std::max(h, makespan());
        head[r] = h;
      }
      for (int r = 0; r < n; ++r)
        head[r] = head[rep[r]];
      if (!op.isCollective()) {
        start[op.id] = head;
      } else {
        for (const Instance &inst : instances[op.id]) {
          double s = 0;
          for (int m : *inst.members)
            s = std::max(s, head[m]);
          for (int m : *inst.members)
            start[op.id][m] = s;
        }
        // Instances that mix classes can make ranks of one class differ
        // from here on: then every rank is its own class.
        if (reps.size() < static_cast<size_t>(n))
          for (int r = 0; r < n; ++r)
            if (start[op.id][r] != start[op.id][rep[r]]) {
              reps.resize(n);
              for (int q = 0; q < n; ++q)
                reps[q] = rep[q] = q;
              break;
            }
      }
      for (int r = 0; r < n; ++r)
        if (member[op.id][r])
          bound.streamPath =
              std::max(bound.streamPath,
                       start[op.id][r] + length[op.id][r] + tail[op.id][r]);
    }
  }

  // One compute stream per GPU: its compute ops form a one-machine schedule
  // with release times (the earliest starts above) and tails. The
  // preemptive schedule that always runs the released op of longest tail
  // (Jackson's rule) minimises max(end + tail) over all preemptive
  // schedules, so over the simulator's non-preemptive ones too. The same
  // holds for the high-priority queue, a stream that runs its collectives
  // one at a time (each at least as long as alone on the network). The low
  // queue may overlap partitions under a credit window: it has no term.
  struct Job {
    double release, time, tail;
  };
  std::vector<Job> jobs;
  auto jackson = [&jobs]() {
    std::sort(jobs.begin(), jobs.end(),
              [](const Job &a, const Job &b) { return a.release < b.release; });
    auto byTail = [&](size_t a, size_t b) {
      return jobs[a].tail < jobs[b].tail;
    };
    std::priority_queue<size_t, std::vector<size_t>, decltype(byTail)> ready(
        byTail);
    double clock = 0, worst = 0;
    size_t next = 0;
    while (next < jobs.size() || !ready.empty()) {
      if (ready.empty())
        clock = std::max(clock, jobs[next].release);
      while (next < jobs.size() && jobs[next].release <= clock)
        ready.push(next++);
      Job &job = jobs[ready.top()];
      double until = next < jobs.size() ? jobs[next].release : INFINITY;
      if (clock + job.time <= until) {
        clock += job.time;
        worst = std::max(worst, clock + job.tail);
        ready.pop();
      } else {
        job.time -= until - clock; // preempted by the next release
        clock = until;
      }
    }
    return worst;
  };
  for (int r = 0; r < n; ++r) {
    jobs.clear();
    for (const Op &op : plan.ops)
      if (!op.isCollective() && opTime[op.id] > 0)
        jobs.push_back({start[op.id][r], opTime[op.id], tail[op.id][r]});
    bound.computeSchedule = std::max(bound.computeSchedule, jackson());
  }
  std::vector<std::vector<Job>> high(n);
  for (const Op &op : plan.ops)
    if (op.isCollective() && queueOf(op) == Queue::High)
      for (const Instance &inst : instances[op.id])
        for (int m : *inst.members)
          if (inst.alone > 0)
            high[m].push_back({start[op.id][m], inst.alone, tail[op.id][m]});
  for (int r = 0; r < n; ++r) {
    jobs = std::move(high[r]);
    bound.highQueueSchedule = std::max(bound.highQueueSchedule, jackson());
  }
  // Every link carries at most its bandwidth, shared however the simulator
  // likes: a preemptive one-machine schedule of the bytes each collective
  // puts on it, released at the collective's stream-path start and followed
  // by its longest tail on any member (Jackson's rule again).
  std::vector<std::vector<Job>> onLink(topo.numLinks());
  for (const Op &op : plan.ops)
    for (const Instance &inst : instances[op.id]) {
      double release = INFINITY, after = 0;
      for (int m : *inst.members) {
        release = std::min(release, start[op.id][m]);
        after = std::max(after, tail[op.id][m]);
      }
      for (const auto &[l, bytes] : inst.links)
        if (bytes > 0)
          onLink[l].push_back({release, bytes / topo.capacity(l), after});
    }
  for (std::vector<Job> &linkJobs : onLink) {
    jobs = std::move(linkJobs);
    bound.linkSchedule = std::max(bound.linkSchedule, jackson());
  }
  bound.step = std::max({bound.linkCut, bound.compute, bound.criticalPath,
                         bound.streamPath, bound.computeSchedule,
                         bound.highQueueSchedule, bound.linkSchedule});
  return bound;
}

std::vector<double>
lina::rt::maxMinRates(const std::vector<double> &capacity,
                      const std::vector<SharedFlow> &flows) {
  struct F {
    int a, b;
    double weight, rate;
  };
  std::vector<F> fs;
  std::vector<int> ids;
  int links = static_cast<int>(capacity.size());
  for (const SharedFlow &f : flows) {
    for (int l : {f.a, f.b})
      if (l >= links)
        throw PlanError("maxMinRates: link " + std::to_string(l) +
                        " out of range");
    if (!(f.weight > 0) || (f.a < 0 && f.b < 0))
      throw PlanError("maxMinRates: a flow needs a link and a positive weight");
    ids.push_back(static_cast<int>(fs.size()));
    fs.push_back({f.a, f.b == f.a ? -1 : f.b, f.weight, 0.0});
  }
  MaxMinFiller filler(links);
  filler.residual = capacity;
  filler.fill(fs, ids);
  std::vector<double> rates;
  for (const F &f : fs)
    rates.push_back(f.rate);
  return rates;
}
