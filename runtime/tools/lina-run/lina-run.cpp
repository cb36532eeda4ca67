//===- lina-run.cpp - Execute a Lina plan ---------------------------------===//
//
// Part of the Lina project.
//
// lina-run PLAN [--backend cpu|sim|cuda] [--steps N] [--policy lina|fifo]
//          [--check] [--json FILE] ... (lina-run --help lists every option)
// lina-run PLAN --mode infer --requests N --batch B --routing TRACE.jsonl ...
//
// Launched with `mpirun -np R`, R equal to the plan's world size. Before
// running, the ranks agree on the plan (hash), the flags and the world size,
// and check that the plan's buffers fit in memory (docs/RUNTIME.md).
//
//===----------------------------------------------------------------------===//

#include "CommandLine.h"
#include "Results.h"

#include "lina/Support/Fnv1a.h"
#include "lina/rt/CpuBackend.h"
#include "lina/rt/Infer.h"
#include "lina/rt/Launch.h"
#include "lina/rt/OutputFile.h"
#include "lina/rt/Plan.h"
#include "lina/rt/Scheduler.h"
#include "lina/rt/Simulator.h"
#include "lina/rt/Trace.h"
#ifdef LINA_HAVE_CUDA
#include "lina/rt/cuda/CudaBackend.h"
#include "lina/rt/cuda/NcclComm.h"
#endif

#ifdef LINA_HAVE_MPI
#include "lina/rt/MpiWait.h"
#include <mpi.h>
#endif
#include <cblas.h>

#include "lina/Support/CheckedMath.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace lina::rt;

using namespace lina::rt::run;
using json = nlohmann::ordered_json;

namespace {
//===----------------------------------------------------------------------===//
// Backend factory: the one place that names the concrete backends.
//===----------------------------------------------------------------------===//

/// What lina-run needs of a backend besides the scheduler's interface.
class RunBackend : public Backend {
public:
  virtual void initialize(uint64_t seed) = 0;
  virtual std::vector<float> read(int id) const = 0;
  /// --check: records or imposes the gates' routing; false if the backend
  /// cannot.
  virtual bool setRoutingPin(RoutingPin *) { return false; }
};

template <typename Impl> bool pinRouting(Impl &, RoutingPin *) { return false; }
template <> bool pinRouting<CpuBackend>(CpuBackend &b, RoutingPin *pin) {
  b.setRoutingPin(pin);
  // Rounding that depends on how rows are chunked would otherwise flip
  // ReLU derivatives at pre-activations within rounding of 0.
  b.setRowwiseExpertGemms(pin != nullptr);
  return true;
}

template <typename Impl> class RunBackendOf final : public RunBackend {
public:
  RunBackendOf(const Plan &plan, int rank, double timeout)
      : impl(plan, rank, timeout) {}
  void initialize(uint64_t seed) override { impl.initialize(seed); }
  std::vector<float> read(int id) const override { return impl.read(id); }
  bool setRoutingPin(RoutingPin *pin) override { return pinRouting(impl, pin); }
  void start(const Op &op) override { impl.start(op); }
  std::vector<int> waitAny() override { return impl.waitAny(); }
  double now() override { return impl.now(); }

private:
  Impl impl;
};

std::unique_ptr<RunBackend> makeBackend(const std::string &name,
                                        const Plan &plan, int rank,
                                        double timeout) {
#ifdef LINA_HAVE_CUDA
  if (name == "cuda")
    return std::make_unique<RunBackendOf<cuda::CudaBackend>>(plan, rank,
                                                             timeout);
#endif
  if (name == "cpu")
    return std::make_unique<RunBackendOf<CpuBackend>>(plan, rank, timeout);
  throw PlanError("backend '" + name + "' is not available in this build");
}

/// The device a rank of `backend` computes on, for the start-up report:
/// the GPU that the cuda backend will select, "cpu" for the cpu backend.
std::string deviceOf(const std::string &backend, int localRank) {
#ifdef LINA_HAVE_CUDA
  if (backend == "cuda")
    return cuda::describeDevice(localRank);
#endif
  (void)localRank;
  return backend;
}

/// The job's ranks. Every collective of the driver itself is non-blocking
/// and waited for with the watchdog timeout, so a rank that stopped or runs
/// something else ends the job with a message naming the ranks that have
/// not arrived, instead of a hang.
struct World {
  int rank = 0, size = 1;
  double timeout = 120;
  /// Set once every rank has loaded the plan and started executing it:
  /// from then on an error (a kernel finding an expert id out of range,
  /// counts that do not fit) can be this rank's alone.
  bool executing = false;
  /// What this rank is doing, for out-of-memory messages and for the
  /// answers to ranks that wait for this one.
  std::string stage = "starting";

  void setStage(std::string what) {
    stage = std::move(what);
#ifdef LINA_HAVE_MPI
    setActivity(stage);
#endif
  }
#ifdef LINA_HAVE_MPI
  void wait(MPI_Request &request, const char *what) {
    Arrival arrival = arrive(kDriverCollective);
    waitAllOrAbort(&request, 1, timeout, rank, what, &arrival);
  }

#endif
  void barrier(const char *what) {
#ifdef LINA_HAVE_MPI
    MPI_Request r;
    MPI_Ibarrier(MPI_COMM_WORLD, &r);
    wait(r, what);
#endif
  }
  double reduce(double v, bool isMax) {
#ifdef LINA_HAVE_MPI
    double out = v;
    MPI_Request r;
    MPI_Iallreduce(&v, &out, 1, MPI_DOUBLE, isMax ? MPI_MAX : MPI_SUM,
                   MPI_COMM_WORLD, &r);
    wait(r, "exchanging step statistics");
    return out;
#else
    return v;
#endif
  }
  double max(double v) { return reduce(v, true); }
  double sum(double v) { return reduce(v, false); }
};

//===----------------------------------------------------------------------===//
// Start-up agreement and memory preflight
//===----------------------------------------------------------------------===//

using lina::fnv1a;

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

std::string gib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f",
                static_cast<double>(bytes) / (1 << 30));
  return buf;
}

/// The plans of this run, loaded and hashed on every rank.
struct LoadedPlans {
  Plan plan;
  std::unique_ptr<Plan> baseline;
  uint64_t hash = 0; ///< FNV-1a of the plan file's bytes (and the baseline's)
};

/// Memory this process may still allocate: MemAvailable of /proc/meminfo,
/// else the available physical pages. -1 when unknown.
int64_t availableMemory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") {
      std::optional<int64_t> bytes = lina::checkedMul(kib, 1024);
      return bytes ? *bytes : INT64_MAX;
    }
  long pages = sysconf(_SC_AVPHYS_PAGES), pageSize = sysconf(_SC_PAGESIZE);
  if (pages > 0 && pageSize > 0) {
    std::optional<int64_t> bytes = lina::checkedMul(pages, pageSize);
    return bytes ? *bytes : INT64_MAX;
  }
  return -1;
}

/// Ranks of this job sharing this node's memory (from the launcher's
/// environment; 1 when it does not say).
int64_t ranksOnThisNode() {
  for (const char *var : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS",
                          "SLURM_NTASKS_PER_NODE"}) {
    const char *v = std::getenv(var);
    char *end = nullptr;
    long long n = v ? std::strtoll(v, &end, 10) : 0;
    if (v && *v && !*end && n >= 1)
      return n;
  }
  return 1;
}

/// Refuses a plan whose buffers cannot fit in this node's free memory,
/// before anything is allocated. The cpu backend allocates one plan at a
/// time (the timed plan, then for --check the plan and the baseline).
void preflightBytes(int64_t need, int rank);

void preflightMemory(const LoadedPlans &plans, const std::string &backend,
                     int rank) {
  if (backend != "cpu")
    return; // device memory is the device backend's to check
  int64_t need = plans.plan.allocatedBytes();
  if (plans.baseline)
    need = std::max(need, plans.baseline->allocatedBytes());
  preflightBytes(need, rank);
}

/// Refuses to go on when `need` bytes on each rank of this node do not fit
/// in the node's free memory.
void preflightBytes(int64_t need, int rank) {
  int64_t available = availableMemory();
  if (available < 0)
    return;
  int64_t local = ranksOnThisNode();
  std::optional<int64_t> total = lina::checkedMul(need, local);
  if (total && *total <= available)
    return;
  std::string msg = "the plan needs " + gib(need) + " GiB of buffers on rank " +
                    std::to_string(rank);
  if (local > 1)
    msg += " (" + std::to_string(local) + " ranks share this node: " +
           (total ? gib(*total) : std::string("more than 2^63 bytes")) +
           " GiB in all)";
  msg += "; " + gib(available) + " GiB are available";
  throw PlanError(msg);
}

/// The flags that decide which collectives a rank runs, in a canonical
/// form: ranks launched with different ones would deadlock or mismatch
/// (--json: rank 0 tells the others whether it could write the file).
std::string canonicalFlags(const CommandLine &cl) {
  const TrainOptions &o = cl.train;
  return "--steps " + std::to_string(o.steps) + " --warmup " +
         std::to_string(o.warmup) + " --policy " + o.policy +
         " --credit-bytes " + std::to_string(o.creditBytes) + " --backend " +
         o.backend + (o.trace.empty() ? "" : " --trace") +
         (cl.json.empty() ? "" : " --json") +
         (o.check ? " --check --baseline-backend " + o.baselineBackend +
                        (o.pinRouting ? "" : " --no-pin-routing")
                  : "") +
         " --seed " + std::to_string(o.seed);
}

/// What every rank tells the others before any other collective: whether
/// it loaded its plan (and the error if not), the plan's world size, the
/// hash of its plan files and of its flags.
struct StartupStatus {
  int32_t ok = 0;
  int32_t planWorldSize = -1;
  uint64_t planHash = 0, flagsHash = 0;
  char plan[160] = {};
  char flags[200] = {};
  char error[640] = {};
};

void copyText(char *dst, size_t size, const std::string &src) {
  std::strncpy(dst, src.c_str(), size - 1);
  dst[size - 1] = '\0';
}

/// Decides, identically on every rank, whether the ranks can run together;
/// returns the error (empty if they can).
std::string agreementError(const std::vector<StartupStatus> &all,
                           int launched) {
  std::string out;
  auto add = [&](const std::string &line) {
    out += (out.empty() ? "" : "\n") + line;
  };
  // Load failures: every rank's own message, once if all failed alike.
  std::vector<int> failed;
  for (size_t r = 0; r < all.size(); ++r)
    if (!all[r].ok)
      failed.push_back(static_cast<int>(r));
  if (!failed.empty()) {
    bool alike = failed.size() == all.size();
    for (int r : failed)
      alike = alike && std::strcmp(all[r].error, all[0].error) == 0;
    if (alike)
      return all[0].error;
    for (int r : failed)
      add("rank " + std::to_string(r) + ": " + all[r].error);
    return out;
  }
  // Different plans, or the same plan with different flags.
  const StartupStatus &ref = all[0];
  for (size_t r = 1; r < all.size(); ++r) {
    const StartupStatus &s = all[r];
    if (s.planHash != ref.planHash)
      add("rank " + std::to_string(r) + " loaded a plan with hash " +
          hex(s.planHash) + " ('" + s.plan + "', world_size " +
          std::to_string(s.planWorldSize) + "), rank 0 " + hex(ref.planHash) +
          " ('" + ref.plan + "', world_size " +
          std::to_string(ref.planWorldSize) +
          "): every rank must run the same plan");
    else if (s.flagsHash != ref.flagsHash)
      add("rank " + std::to_string(r) + " was launched with '" + s.flags +
          "', rank 0 with '" + ref.flags +
          "': every rank needs the same flags");
  }
  if (!out.empty())
    return out;
  if (ref.planWorldSize != launched)
    return "the plan '" + std::string(ref.plan) + "' is for " +
           std::to_string(ref.planWorldSize) + " ranks, but " +
           std::to_string(launched) + " were launched (use mpirun -np " +
           std::to_string(ref.planWorldSize) + ")";
  return {};
}

/// Gathers every rank's timeline on rank 0.
std::vector<std::vector<OpInterval>>
gather(World &w, const std::vector<OpInterval> &mine) {
  std::vector<std::vector<OpInterval>> all(w.size);
#ifdef LINA_HAVE_MPI
  std::vector<double> flat;
  for (const OpInterval &i : mine)
    flat.insert(flat.end(),
                {double(i.op), double(int(i.queue)), i.start, i.end});
  int n = static_cast<int>(flat.size());
  std::vector<int> counts(w.size), displs(w.size);
  MPI_Request req;
  MPI_Igather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD,
              &req);
  w.wait(req, "gathering the trace");
  std::vector<double> recv;
  if (w.rank == 0) {
    int total = 0;
    for (int r = 0; r < w.size; ++r) {
      displs[r] = total;
      total += counts[r];
    }
    recv.resize(total);
  }
  MPI_Igatherv(flat.data(), n, MPI_DOUBLE, recv.data(), counts.data(),
               displs.data(), MPI_DOUBLE, 0, MPI_COMM_WORLD, &req);
  w.wait(req, "gathering the trace");
  if (w.rank == 0)
    for (int r = 0; r < w.size; ++r)
      for (int i = displs[r]; i < displs[r] + counts[r]; i += 4)
        all[r].push_back(
            {int(recv[i]), Queue(int(recv[i + 1])), recv[i + 2], recv[i + 3]});
#else
  all[0] = mine;
#endif
  return all;
}

/// Runs `plan` once and returns its outputs. With `pin`, records or
/// imposes the routing; `pinned` says whether the backend did.
std::vector<std::vector<float>> runOnce(const Plan &plan, const TrainOptions &o,
                                        const std::string &backendName,
                                        Policy policy, int rank,
                                        RoutingPin *pin, bool *pinned) {
  std::unique_ptr<RunBackend> backend =
      makeBackend(backendName, plan, rank, o.timeout);
  backend->initialize(o.seed);
  *pinned = pin && backend->setRoutingPin(pin);
  Scheduler scheduler(plan, {policy, o.creditBytes});
  scheduler.run(*backend);
  std::vector<std::vector<float>> outs;
  for (int id : plan.outputs)
    outs.push_back(backend->read(id));
  return outs;
}

/// Rank 0 writes an output file with `write`; every rank learns whether
/// that worked, so that a failed write ends the job with one message and a
/// non-zero exit. Every rank calls it.
void writeOnRankZero(World &w, const std::string &what,
                     const std::function<void()> &write) {
  std::string writeError;
  if (w.rank == 0) {
    try {
      write();
    } catch (const std::exception &e) {
      writeError = e.what();
    }
  }
  if (w.max(writeError.empty() ? 0.0 : 1.0) != 0) {
    w.executing = false; // reported once, by rank 0
    throw PlanError(writeError.empty() ? "rank 0 could not write the " + what
                                       : writeError);
  }
}

/// The results of a training run (--json) that do not depend on how it
/// went: the plan, the backend and the bytes each step moves.
json trainResults(const CommandLine &cl, const Plan &plan, int worldSize) {
  const TrainOptions &o = cl.train;
  json r = resultsHeader(cl);
  r["plan"] = o.plan;
  r["world_size"] = worldSize;
  r["backend"] = o.backend;
  r["policy"] = o.policy;
  r["credit_bytes"] = o.creditBytes;
  r["seed"] = o.seed;
  r["ops"] = plan.ops.size();
  // Per rank and step: what the collectives send (their input sizes).
  int64_t allToAll = 0, allReduce = 0;
  for (const Op &op : plan.ops) {
    if (!op.isCollective())
      continue;
    (op.kind == OpKind::AllReduce ? allReduce : allToAll) +=
        plan.collectiveBytes(op);
  }
  r["bytes"] = {{"buffers_per_rank", plan.allocatedBytes()},
                {"all_to_all_per_rank_step", allToAll},
                {"all_reduce_per_rank_step", allReduce}};
  return r;
}

/// Per-step times (seconds) of a training run, as --json reports them.
struct StepTimes {
  std::vector<double> step, blocked, allToAll, allReduce;

  void add(double s, double b, double a2a, double ar) {
    step.push_back(s);
    blocked.push_back(b);
    allToAll.push_back(a2a);
    allReduce.push_back(ar);
  }
  static std::vector<double> ms(const std::vector<double> &seconds) {
    std::vector<double> out;
    for (double s : seconds)
      out.push_back(s * 1e3);
    return out;
  }
  static double meanMs(const std::vector<double> &seconds) {
    double sum = 0;
    for (double s : seconds)
      sum += s;
    return seconds.empty() ? 0 : sum / seconds.size() * 1e3;
  }
  /// "steps", "step_ms" (statistics) and "summary" (the summary line's
  /// values, under its names) of `r`.
  void report(json &r, const std::string &policy, int warmup) const {
    json steps;
    steps["warmup"] = warmup;
    steps["step_ms"] = ms(step);
    steps["a2a_blocked_ms"] = ms(blocked);
    steps["a2a_ms"] = ms(allToAll);
    steps["allreduce_ms"] = ms(allReduce);
    r["steps"] = steps;
    json stats = statistics(ms(step));
    r["step_ms"] = stats;
    r["summary"] = {{"policy", policy},
                    {"steps", step.size()},
                    {"step_ms", meanMs(step)},
                    {"min_step_ms", stats.value("min", 0.0)},
                    {"max_step_ms", stats.value("max", 0.0)},
                    {"p50_step_ms", stats.value("p50", 0.0)},
                    {"p95_step_ms", stats.value("p95", 0.0)},
                    {"p99_step_ms", stats.value("p99", 0.0)},
                    {"a2a_blocked_ms", meanMs(blocked)},
                    {"a2a_ms", meanMs(allToAll)},
                    {"allreduce_ms", meanMs(allReduce)}};
  }
};

/// Writes the results of a run that one process made (sim, --dump).
void writeResultsHere(const std::string &path, const json &results) {
  try {
    writeResults(path, results);
  } catch (const OutputError &e) {
    throw PlanError(e.what());
  }
}

/// --backend sim: one process simulates every rank of the plan on the
/// cluster; the same summary and trace as the real backends.
int runSimulated(World &w, const CommandLine &cl, const Plan &plan) {
  const TrainOptions &o = cl.train;
  if (w.rank != 0)
    return 0;
  std::string error;
  auto cluster = lina::ClusterSpec::fromFile(o.cluster, error);
  if (!cluster)
    throw PlanError(error);
  json results = trainResults(cl, plan, plan.worldSize);
  results["cluster"] = {{"file", o.cluster}, {"name", cluster->name}};
  results["link_priority"] = o.linkPriority;
  if (o.bound) {
    // No schedule the simulator produces beats it, whatever the policy.
    SimBound b = lowerBound(plan, *cluster);
    if (!o.quiet)
      std::printf("lina-run: %s, %d simulated ranks on %s, lower bound\n"
                  "bound: link cut %.3f ms (%s), compute %.3f ms, critical "
                  "path %.3f ms, stream path %.3f ms, compute schedule %.3f "
                  "ms, high-queue schedule %.3f ms, link schedule %.3f ms\n",
                  o.plan.c_str(), plan.worldSize, cluster->name.c_str(),
                  b.linkCut * 1e3,
                  b.link.empty() ? "no traffic" : b.link.c_str(),
                  b.compute * 1e3, b.criticalPath * 1e3, b.streamPath * 1e3,
                  b.computeSchedule * 1e3, b.highQueueSchedule * 1e3,
                  b.linkSchedule * 1e3);
    std::printf("summary: bound=1 steps=1 step_ms=%.3f min_step_ms=%.3f "
                "link_cut_ms=%.3f compute_ms=%.3f critical_path_ms=%.3f "
                "stream_path_ms=%.3f compute_schedule_ms=%.3f "
                "high_queue_schedule_ms=%.3f link_schedule_ms=%.3f\n",
                b.step * 1e3, b.step * 1e3, b.linkCut * 1e3, b.compute * 1e3,
                b.criticalPath * 1e3, b.streamPath * 1e3,
                b.computeSchedule * 1e3, b.highQueueSchedule * 1e3,
                b.linkSchedule * 1e3);
    if (!cl.json.empty()) {
      results["bound"] = {{"step_ms", b.step * 1e3},
                          {"link_cut_ms", b.linkCut * 1e3},
                          {"link", b.link},
                          {"compute_ms", b.compute * 1e3},
                          {"critical_path_ms", b.criticalPath * 1e3},
                          {"stream_path_ms", b.streamPath * 1e3},
                          {"compute_schedule_ms", b.computeSchedule * 1e3},
                          {"high_queue_schedule_ms", b.highQueueSchedule * 1e3},
                          {"link_schedule_ms", b.linkSchedule * 1e3}};
      json summary = results["bound"];
      summary.erase("link");
      summary["bound"] = 1;
      summary["steps"] = 1;
      summary["min_step_ms"] = b.step * 1e3;
      results["summary"] = summary;
      writeResultsHere(cl.json, results);
    }
    return 0;
  }
  SimOptions sim;
  sim.scheduler = {parsePolicy(o.policy), o.creditBytes};
  sim.linkPriority = o.linkPriority;
  // The simulator has a cost model: policy lina uses its admission rule.
  sim.scheduler.estimate = costModelEstimator(plan, *cluster);
  auto wallStart = std::chrono::steady_clock::now();
  std::clock_t cpuStart = std::clock();
  SimResult r = simulate(plan, *cluster, sim);
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                              wallStart)
                    .count();
  double cpu = static_cast<double>(std::clock() - cpuStart) / CLOCKS_PER_SEC;
  if (!o.quiet)
    std::printf("lina-run: %s, %d simulated ranks on %s, backend sim, policy "
                "%s%s, %zu ops\n"
                "step   0: %9.3f ms  all_to_all blocked %8.3f ms  all_to_all "
                "%8.3f ms  all_reduce %8.3f ms\n"
                "sim: %lld events in %.2f s (%.2f s of CPU)\n",
                o.plan.c_str(), plan.worldSize, cluster->name.c_str(),
                o.policy.c_str(), o.linkPriority ? " (link priority)" : "",
                plan.ops.size(), r.stepTime * 1e3, r.meanAllToAllBlocked * 1e3,
                r.meanAllToAllTime * 1e3, r.meanAllReduceTime * 1e3,
                static_cast<long long>(r.events), wall, cpu);
  // The simulation is deterministic: every step is the same.
  std::printf("summary: policy=%s steps=1 step_ms=%.3f min_step_ms=%.3f "
              "a2a_blocked_ms=%.3f a2a_ms=%.3f allreduce_ms=%.3f\n",
              o.policy.c_str(), r.stepTime * 1e3, r.stepTime * 1e3,
              r.meanAllToAllBlocked * 1e3, r.meanAllToAllTime * 1e3,
              r.meanAllReduceTime * 1e3);
  if (!o.trace.empty()) {
    std::vector<std::vector<OpInterval>> timelines;
    for (const StepStats &s : r.ranks)
      timelines.push_back(s.timeline);
    writeChromeTrace(o.trace, plan, timelines);
    if (!o.quiet)
      std::printf("trace: %s\n", o.trace.c_str());
  }
  if (!cl.json.empty()) {
    StepTimes times;
    times.add(r.stepTime, r.meanAllToAllBlocked, r.meanAllToAllTime,
              r.meanAllReduceTime);
    times.report(results, o.policy, 0);
    results["simulator"] = {
        {"events", r.events}, {"wall_s", wall}, {"cpu_s", cpu}};
    writeResultsHere(cl.json, results);
  }
  return 0;
}

/// Loads the plan (and the --check baseline) on this rank and checks that
/// its buffers fit in memory. Any failure becomes `status.error`.
StartupStatus loadOnThisRank(World &w, const CommandLine &cl,
                             LoadedPlans &plans) {
  const TrainOptions &o = cl.train;
  StartupStatus status;
  copyText(status.plan, sizeof status.plan, o.plan);
  std::string flags = canonicalFlags(cl);
  copyText(status.flags, sizeof status.flags, flags);
  status.flagsHash = fnv1a(flags);
  try {
    w.setStage("loading the plan '" + o.plan + "'");
    std::string text = readInputFile(o.plan, "plan");
    plans.hash = fnv1a(text);
    plans.plan = parsePlan(text, o.plan);
    status.planWorldSize = plans.plan.worldSize;
    if (o.check && !o.baseline.empty()) {
      w.setStage("loading the baseline plan '" + o.baseline + "'");
      std::string base = readInputFile(o.baseline, "baseline plan");
      plans.hash = fnv1a(base, plans.hash ^ 0x9e3779b97f4a7c15ull);
      plans.baseline = std::make_unique<Plan>(parsePlan(base, o.baseline));
      if (plans.baseline->worldSize != plans.plan.worldSize)
        throw PlanError("the baseline plan '" + o.baseline + "' is for " +
                        std::to_string(plans.baseline->worldSize) +
                        " ranks, but the plan '" + o.plan + "' for " +
                        std::to_string(plans.plan.worldSize));
    }
    status.planHash = plans.hash;
    if (!o.dump && plans.plan.worldSize == w.size)
      preflightMemory(plans, o.backend, w.rank);
    status.ok = 1;
  } catch (const std::bad_alloc &) {
    copyText(status.error, sizeof status.error,
             "out of memory while " + w.stage);
  } catch (const std::length_error &) {
    copyText(status.error, sizeof status.error,
             "out of memory while " + w.stage);
  } catch (const std::exception &e) {
    copyText(status.error, sizeof status.error, e.what());
  }
  return status;
}

/// Every rank loads its plan, then all exchange a fixed-size status (the
/// load error, the world size, the hashes of plan and flags) before any
/// other collective: a rank that failed reports its own error, and ranks
/// that disagree are named. Throws PlanError (the same on every rank).
void exchangeStartup(World &w, const StartupStatus &mine);

void agreeOnThePlan(World &w, const CommandLine &cl, LoadedPlans &plans) {
  exchangeStartup(w, loadOnThisRank(w, cl, plans));
}

/// Exchanges every rank's start-up status and throws PlanError (the same on
/// every rank) unless all loaded their inputs and agree.
void exchangeStartup(World &w, const StartupStatus &mine) {
  std::vector<StartupStatus> all(static_cast<size_t>(w.size));
#ifdef LINA_HAVE_MPI
  if (w.size > 1) {
    w.setStage("at start-up");
    MPI_Request r;
    MPI_Iallgather(const_cast<StartupStatus *>(&mine), sizeof mine, MPI_BYTE,
                   all.data(), sizeof mine, MPI_BYTE, MPI_COMM_WORLD, &r);
    w.wait(r, "waiting for the other ranks to load the plan");
  } else {
    all[0] = mine;
  }
#else
  all[0] = mine;
#endif
  std::string error = agreementError(all, w.size);
  if (!error.empty())
    throw PlanError(error);
}

/// Where one rank runs, as the start-up report prints it.
struct RankPlace {
  int32_t rank = 0, localRank = 0;
  int64_t pid = 0;
  char host[128] = {};
  char device[256] = {};
};

/// The start-up report: after the agreement and before any backend is
/// created, rank 0 prints one line per rank with its host, its rank on that
/// host, its process id and its device, e.g.
///   rank 0 on node01: local rank 0, pid 4711, GPU 0 [0000:3b:00.0] NVIDIA H100
/// Every rank takes part (the gather is one of the driver's collectives);
/// `quiet` only silences the printing.
void reportRanks(World &w, const std::string &backend, bool quiet) {
  w.setStage("reporting where the ranks run");
  RankPlace mine;
  mine.rank = w.rank;
  mine.localRank = localRank();
  mine.pid = static_cast<int64_t>(getpid());
  copyText(mine.host, sizeof mine.host, hostName());
  copyText(mine.device, sizeof mine.device, deviceOf(backend, mine.localRank));
  std::vector<RankPlace> all(static_cast<size_t>(w.size));
#ifdef LINA_HAVE_MPI
  if (w.size > 1) {
    MPI_Request r;
    MPI_Igather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE,
                0, MPI_COMM_WORLD, &r);
    w.wait(r, "gathering the ranks' hosts and devices");
  } else {
    all[0] = mine;
  }
#else
  all[0] = mine;
#endif
  if (w.rank != 0 || quiet)
    return;
  int width = static_cast<int>(std::to_string(w.size - 1).size());
  for (const RankPlace &p : all)
    std::printf("rank %*d on %s: local rank %d, pid %" PRId64 ", %s\n", width,
                p.rank, p.host, p.localRank, p.pid, p.device);
  std::fflush(stdout);
}

/// The flags of --mode infer that decide what a rank runs, in a canonical
/// form (the files are compared by their hashes).
std::string canonicalInferFlags(const CommandLine &cl) {
  const infer::InferOptions &o = cl.infer;
  std::ostringstream out;
  out << "--requests " << o.requests << " --batch " << o.batch << " --warmup "
      << o.warmup << " --seed " << o.seed << " --experts-per-device "
      << o.slotsPerDevice << " --phase2-threshold " << o.phase2Threshold
      << (o.check ? " --check" : "") << (cl.json.empty() ? "" : " --json")
      << " --placement " << infer::toString(o.placement);
  return out.str();
}

/// The start-up agreement of --mode infer: the same exchange as training,
/// over the hash of the plan, routing trace and profile files, the flags,
/// and the memory preflight of the inference run.
void agreeOnInference(World &w, const CommandLine &cl,
                      const infer::InferStartup &startup) {
  const infer::InferOptions &o = cl.infer;
  StartupStatus mine;
  // The files whose hash is compared, as the messages name them.
  copyText(mine.plan, sizeof mine.plan,
           o.plan + " + " + o.routing +
               (o.profile.empty() ? "" : " + " + o.profile));
  std::string flags = canonicalInferFlags(cl);
  copyText(mine.flags, sizeof mine.flags, flags);
  mine.flagsHash = fnv1a(flags);
  mine.planWorldSize = startup.planWorldSize;
  std::string error = startup.error;
  if (error.empty()) {
    try {
      // The hash of the bytes runInference read (each file is read once).
      mine.planHash = startup.inputsHash;
      preflightBytes(startup.bytesNeeded, w.rank);
    } catch (const std::exception &e) {
      error = e.what();
    }
  }
  mine.ok = error.empty();
  copyText(mine.error, sizeof mine.error, error);
  exchangeStartup(w, mine);
  reportRanks(w, "cpu", o.quiet); // --mode infer on MPI ranks: the cpu backend
}

/// The results of --mode infer (--json), from rank 0's report.
json inferResults(const CommandLine &cl, int worldSize,
                  const infer::InferReport &report) {
  const infer::InferOptions &o = cl.infer;
  json r = resultsHeader(cl);
  r["plan"] = o.plan;
  r["world_size"] = worldSize;
  r["backend"] = cl.train.backend;
  if (!o.cluster.empty())
    r["cluster"] = o.cluster;
  r["placement"] = infer::toString(o.placement);
  r["routing"] = o.routing;
  r["profile"] = o.profile.empty() ? json() : json(o.profile);
  r["requests"] = o.requests;
  r["batch"] = o.batch;
  r["warmup"] = o.warmup;
  r["seed"] = o.seed;
  r["phase2_threshold"] = o.phase2Threshold;
  r["moe_layers"] = report.moeLayers;
  r["expert_slots_per_device"] = report.slotsPerDevice;
  std::vector<double> ms;
  for (double t : report.batchSeconds)
    ms.push_back(t * 1e3);
  r["batch_ms"] = ms;
  r["batch_ms_stats"] = statistics(ms);
  auto optional = [](const std::optional<double> &v) {
    return v ? json(*v) : json();
  };
  r["summary"] = {{"placement", infer::toString(o.placement)},
                  {"batches", report.batchSeconds.size()},
                  {"p50_ms", report.p50 * 1e3},
                  {"p95_ms", report.p95 * 1e3},
                  {"p99_ms", report.p99 * 1e3},
                  {"mean_ms", report.mean * 1e3},
                  {"phase2_rate", report.phase2Rate},
                  {"top1_accuracy", optional(report.top1Accuracy)},
                  {"load_error", optional(report.loadError)},
                  {"max_over_mean_load", report.maxOverMeanLoad},
                  {"weight_bytes_moved", report.weightBytesMoved}};
  if (report.checked)
    r["check"] = {{"pass", report.checkPassed},
                  {"max_abs_error", report.checkMaxAbsError},
                  {"tolerance", o.tolerance}};
  return r;
}

/// Test hook: LINA_RUN_INJECT_FAULT=RANK:stall makes that rank stop
/// answering before its first collective of the first timed step (the
/// others' watchdog must name it); RANK:error makes it fail there alone.
struct Fault {
  int rank = -1;
  std::string kind;
  static Fault fromEnvironment() {
    Fault f;
    const char *v = std::getenv("LINA_RUN_INJECT_FAULT");
    if (!v)
      return f;
    std::string text = v;
    size_t colon = text.find(':');
    char *end = nullptr;
    long r = std::strtol(text.c_str(), &end, 10);
    if (colon == std::string::npos || end != text.c_str() + colon || r < 0 ||
        (text.substr(colon + 1) != "stall" &&
         text.substr(colon + 1) != "error"))
      throw PlanError("LINA_RUN_INJECT_FAULT must be RANK:stall or RANK:error, "
                      "got '" +
                      text + "'");
    f.rank = static_cast<int>(r);
    f.kind = text.substr(colon + 1);
    return f;
  }
};

/// Wraps a backend to inject a Fault at the first collective it starts.
class FaultyBackend final : public RunBackend {
public:
  FaultyBackend(RunBackend &inner, const Fault &fault, int rank)
      : inner(inner), fault(fault), rank(rank) {}
  void initialize(uint64_t seed) override { inner.initialize(seed); }
  std::vector<float> read(int id) const override { return inner.read(id); }
  void start(const Op &op) override {
    if (armed && fault.rank == rank && op.isCollective()) {
      if (fault.kind == "error")
        throw PlanError("rank " + std::to_string(rank) + ": " + op.describe() +
                        ": injected fault (LINA_RUN_INJECT_FAULT)");
      std::fflush(stdout);
      while (true) // stall until the job is ended
        std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    inner.start(op);
  }
  std::vector<int> waitAny() override { return inner.waitAny(); }
  double now() override { return inner.now(); }
  bool armed = false;

private:
  RunBackend &inner;
  Fault fault;
  int rank;
};

int runTraining(World &w, const CommandLine &cl) {
  const TrainOptions &o = cl.train;
  w.timeout = o.timeout;
  Fault fault = Fault::fromEnvironment();
  LoadedPlans plans;
  if (o.dump || o.backend == "sim") {
    // One process reads the plan; no agreement needed.
    w.setStage("loading the plan '" + o.plan + "'");
    plans.plan = loadPlan(o.plan);
    if (o.dump) {
      if (w.rank == 0)
        std::cout << dumpPlan(plans.plan);
      return 0;
    }
    return runSimulated(w, cl, plans.plan);
  }
  agreeOnThePlan(w, cl, plans);
  reportRanks(w, o.backend, o.quiet);
  const Plan &plan = plans.plan;
  Policy policy = parsePolicy(o.policy);
  w.setStage("allocating the buffers of the plan '" + o.plan + "' (" +
             gib(plan.allocatedBytes()) + " GiB)");
  std::unique_ptr<RunBackend> backendPtr =
      makeBackend(o.backend, plan, w.rank, o.timeout);
  FaultyBackend backend(*backendPtr, fault, w.rank);
  backend.initialize(o.seed);
  Scheduler scheduler(plan, {policy, o.creditBytes});
  w.executing = true;

  if (w.rank == 0 && !o.quiet)
    std::printf("lina-run: %s, %d ranks, backend %s, policy %s, %zu ops\n",
                o.plan.c_str(), w.size, o.backend.c_str(), o.policy.c_str(),
                plan.ops.size());
  for (int i = 0; i < o.warmup; ++i) {
    w.setStage("in warm-up step " + std::to_string(i) + " of " +
               std::to_string(o.warmup));
    w.barrier("waiting for the other ranks before a warm-up step");
    scheduler.run(backend);
  }
  double sumStep = 0, minStep = 1e300, sumBlocked = 0, sumA2a = 0, sumAr = 0;
  StepTimes times;
  StepStats last;
  for (int s = 0; s < o.steps; ++s) {
    w.setStage("in step " + std::to_string(s) + " of " +
               std::to_string(o.steps));
    w.barrier("waiting for the other ranks before a step");
    backend.armed = s == 0;
    StepStats st = scheduler.run(backend);
    backend.armed = false;
    double step = w.max(st.stepTime);
    double blocked = w.sum(st.allToAllBlocked) / w.size;
    double a2a = w.sum(st.allToAllTime) / w.size;
    double ar = w.sum(st.allReduceTime) / w.size;
    sumStep += step;
    minStep = std::min(minStep, step);
    sumBlocked += blocked;
    sumA2a += a2a;
    sumAr += ar;
    times.add(step, blocked, a2a, ar);
    if (w.rank == 0 && !o.quiet)
      std::printf("step %3d: %9.3f ms  all_to_all blocked %8.3f ms  "
                  "all_to_all %8.3f ms  all_reduce %8.3f ms\n",
                  s, step * 1e3, blocked * 1e3, a2a * 1e3, ar * 1e3);
    last = std::move(st);
  }
  int n = o.steps;
  if (w.rank == 0)
    std::printf("summary: policy=%s steps=%d step_ms=%.3f min_step_ms=%.3f "
                "a2a_blocked_ms=%.3f a2a_ms=%.3f allreduce_ms=%.3f\n",
                o.policy.c_str(), n, sumStep / n * 1e3, minStep * 1e3,
                sumBlocked / n * 1e3, sumA2a / n * 1e3, sumAr / n * 1e3);
  if (!o.trace.empty()) {
    w.setStage("gathering the trace");
    auto all = gather(w, last.timeline);
    writeOnRankZero(w, "trace", [&] {
      writeChromeTrace(o.trace, plan, all);
      if (!o.quiet)
        std::printf("trace: %s\n", o.trace.c_str());
    });
  }
  json results;
  if (!cl.json.empty() && w.rank == 0) {
    results = trainResults(cl, plan, w.size);
    times.report(results, o.policy, o.warmup);
  }
  auto writeJson = [&] {
    if (!cl.json.empty()) {
      w.setStage("writing the results");
      writeOnRankZero(w, "results", [&] { writeResults(cl.json, results); });
    }
  };
  if (!o.check) {
    writeJson();
    return 0;
  }

  // Compare with the baseline on identical inputs and weights. One plan's
  // buffers are allocated at a time (the preflight counted on it).
  // The baseline runs first and records each gate's expert choices; the
  // checked run imposes them, so that a near-tie that rounding resolves
  // differently (chunked GEMMs sum in another order) does not send a token
  // to another expert and fail a correct schedule.
  backendPtr.reset();
  const Plan &bp = plans.baseline ? *plans.baseline : plan;
  RoutingPin pin;
  bool recorded = false, imposed = false;
  w.setStage("in the --check run of the baseline");
  auto theirs = runOnce(bp, o, o.baselineBackend, Policy::Fifo, w.rank,
                        o.pinRouting ? &pin : nullptr, &recorded);
  pin.mode = RoutingPin::Mode::Impose;
  w.setStage("in the --check run of the plan '" + o.plan + "'");
  auto mine = runOnce(plan, o, o.backend, policy, w.rank,
                      recorded ? &pin : nullptr, &imposed);
  // Every rank ran the same backends: pinned everywhere or nowhere.
  bool pinned = recorded && imposed;
  double flipped = w.sum(static_cast<double>(pin.flipped));
  double decisions = w.sum(static_cast<double>(pin.decisions));
  std::string problem;
  if (mine.size() != theirs.size())
    problem = "the plans return " + std::to_string(mine.size()) + " and " +
              std::to_string(theirs.size()) + " outputs";
  double maxAbs = 0, worst = 0;
  // The output that is furthest outside the tolerance, for the report.
  double worstOutput = -1, worstOutputRatio = 0;
  double worstValues[3] = {0, 0, 0}; // checked, baseline, max |baseline|
  for (size_t i = 0; problem.empty() && i < mine.size(); ++i) {
    if (mine[i].size() != theirs[i].size()) {
      problem = "output " + std::to_string(i) + " has different sizes";
      break;
    }
    for (size_t j = 0; j < mine[i].size(); ++j) {
      double a = mine[i][j], b = theirs[i][j];
      double err = std::fabs(a - b);
      if (!std::isfinite(a) || !std::isfinite(b))
        err = INFINITY;
      maxAbs = std::max(maxAbs, err);
      double ratio = err / (1e-5 + o.tolerance * std::fabs(b));
      worst = std::max(worst, ratio);
      if (ratio > 1.0 && ratio > worstOutputRatio) {
        worstOutputRatio = ratio;
        worstOutput = static_cast<double>(i);
        worstValues[0] = a;
        worstValues[1] = b;
        worstValues[2] = 0;
        for (float v : theirs[i])
          worstValues[2] = std::max(worstValues[2], std::fabs(double(v)));
      }
    }
  }
  double bad = w.max(problem.empty() ? 0.0 : 1.0);
  maxAbs = w.max(maxAbs);
  worst = w.max(worst);
  // The output index of the rank with the largest ratio.
  bool mineIsWorst = worstOutputRatio == worst && worst > 1.0;
  worstOutput = w.max(mineIsWorst ? worstOutput : -1.0);
  for (double &v : worstValues)
    v = w.sum(mineIsWorst ? v : 0.0) /
        std::max(1.0, w.sum(mineIsWorst ? 1.0 : 0.0));
  bool pass = bad == 0 && worst <= 1.0;
  std::string baselineName =
      o.baseline.empty() ? "the fifo policy" : o.baseline;
  if (o.baselineBackend != o.backend)
    baselineName += " on backend " + o.baselineBackend;
  if (w.rank == 0) {
    if (pinned)
      std::printf("check: routing pinned to the baseline's: %.0f of %.0f "
                  "token routings would have flipped\n",
                  flipped, decisions);
    else if (o.pinRouting)
      std::printf("check: routing not pinned (backend %s cannot); each run "
                  "routes on its own\n",
                  recorded ? o.backend.c_str() : o.baselineBackend.c_str());
    if (!problem.empty())
      std::printf("check: FAIL: %s\n", problem.c_str());
    std::printf("check: %zu outputs vs %s: max abs error %.3g "
                "(tolerance %.0e relative + 1e-05 absolute): %s\n",
                mine.size(), baselineName.c_str(), maxAbs, o.tolerance,
                pass ? "PASS" : "FAIL");
    if (!pass && worstOutput >= 0) {
      int id = plan.outputs[static_cast<size_t>(worstOutput)];
      std::printf("check: the worst output is output %.0f (buffer %d '%s' "
                  "of %s): %.9g where the baseline has %.9g (largest "
                  "|baseline| in that output: %.4g)\n",
                  worstOutput, id, plan.buffer(id).name.c_str(), o.plan.c_str(),
                  worstValues[0], worstValues[1], worstValues[2]);
    }
    if (!cl.json.empty())
      results["check"] = {{"pass", pass},
                          {"outputs", mine.size()},
                          {"baseline", baselineName},
                          {"max_abs_error", maxAbs},
                          {"tolerance", o.tolerance},
                          {"routing_pinned", pinned},
                          {"flipped_routings", flipped},
                          {"routings", decisions},
                          {"problem", problem}};
  }
  writeJson();
  return pass ? 0 : 1;
}
} // namespace

int main(int argc, char **argv) {
  World w;
#ifdef LINA_HAVE_MPI
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &w.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &w.size);
  if (provided < MPI_THREAD_SERIALIZED) {
    if (w.rank == 0)
      std::fprintf(stderr, "lina-run: error: MPI does not provide "
                           "MPI_THREAD_SERIALIZED\n");
    MPI_Finalize();
    return 2;
  }
#endif
  // A file size limit makes writes fail with EFBIG, reported as an error,
  // instead of killing the rank.
  std::signal(SIGXFSZ, SIG_IGN);
  // One BLAS thread per rank: ranks already use every core.
  if (!std::getenv("OPENBLAS_NUM_THREADS"))
    openblas_set_num_threads(1);
  int rc = 0;
  try {
    CommandLine cl = parseCommandLine(argc, argv);
    if (!cl.info.empty()) {
      // --help or --version.
      if (w.rank == 0)
        std::cout << cl.info << std::flush;
    } else if (cl.mode == Mode::Infer && cl.train.backend == "sim") {
      // --mode infer on the simulator: one process, every batch one step.
      infer::InferReport report;
      if (w.rank == 0) {
        rc = infer::simulateInference(cl.infer, &report);
        if (!cl.json.empty())
          writeResultsHere(cl.json, inferResults(cl, report.worldSize, report));
      }
    } else if (cl.mode == Mode::Infer) {
      // --mode infer: batches of requests with per-batch expert placement.
      w.timeout = cl.infer.timeout;
      infer::InferReport report;
      rc = infer::runInference(
          cl.infer, w.rank, w.size,
          [&](const infer::InferStartup &startup) {
            agreeOnInference(w, cl, startup);
          },
          &report);
      if (!cl.json.empty()) {
        w.setStage("writing the results");
        writeOnRankZero(w, "results", [&] {
          writeResults(cl.json, inferResults(cl, w.size, report));
        });
      }
    } else {
      rc = runTraining(w, cl);
    }
  } catch (const std::exception &e) {
    // Before execution every rank knows the same facts (the start-up
    // agreement exchanged them), so they fail alike and rank 0 reports. An
    // error on one rank only (a kernel failure, memory running out) aborts
    // the job with that rank's message.
    std::string msg = e.what();
    bool outOfMemory = dynamic_cast<const std::bad_alloc *>(&e) != nullptr ||
                       dynamic_cast<const std::length_error *>(&e) != nullptr;
    if (outOfMemory)
      msg = "out of memory while " + w.stage + " (" + msg + ")";
    bool everyone = !outOfMemory &&
                    dynamic_cast<const PlanError *>(&e) != nullptr &&
                    !w.executing;
    if (w.rank == 0 || !everyone)
      std::fprintf(stderr, "lina-run: error: %s%s\n",
                   w.size > 1 && !everyone && msg.rfind("rank ", 0) != 0
                       ? ("rank " + std::to_string(w.rank) + ": ").c_str()
                       : "",
                   msg.c_str());
    rc = 2;
#ifdef LINA_HAVE_MPI
    // The other ranks would wait for this one in the next collective until
    // the watchdog fires: end the job now, with this rank's message.
    if (!everyone && w.size > 1)
      abortJob(rc);
#endif
  }
#ifdef LINA_HAVE_MPI
  MPI_Finalize();
#endif
  return rc;
}
