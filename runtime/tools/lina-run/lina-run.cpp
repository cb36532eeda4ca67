//===- lina-run.cpp - Execute a Lina plan ---------------------------------===//
//
// Part of the Lina project.
//
// lina-run PLAN [--backend cpu|cuda] [--steps N] [--warmup W] [--policy lina|fifo]
//          [--credit-bytes B] [--trace out.json] [--check [--baseline PLAN2]]
//          [--baseline-backend B] [--seed S] [--timeout SEC] [--dump] [--quiet]
//
// Launched with `mpirun -np R`, R equal to the plan's world size.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/CpuBackend.h"
#include "lina/rt/Infer.h"
#include "lina/rt/Plan.h"
#include "lina/rt/Scheduler.h"
#include "lina/rt/Simulator.h"
#include "lina/rt/Trace.h"
#ifdef LINA_HAVE_CUDA
#include "lina/rt/cuda/CudaBackend.h"
#endif

#ifdef LINA_HAVE_MPI
#include "lina/rt/MpiWait.h"
#include <mpi.h>
#endif
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace lina::rt;

namespace {
const char *kUsage =
    "usage: lina-run PLAN [options]   (launch with: mpirun -np <world size> lina-run ...)\n"
    "  --backend NAME         backend: cpu, or cuda where built (default cpu)\n"
    "  --steps N              timed steps (default 10)\n"
    "  --warmup N             untimed steps first (default 2)\n"
    "  --policy lina|fifo     collective issue policy (default lina)\n"
    "  --credit-bytes B       lina: cap on low-priority bytes in flight (0: none)\n"
    "  --trace FILE           write a Chrome-trace/Perfetto timeline of the last step\n"
    "  --check                compare outputs with a baseline run (see --baseline)\n"
    "  --baseline PLAN2       baseline for --check (default: this plan, fifo policy)\n"
    "  --baseline-backend B   backend of the --check baseline (default: --backend)\n"
    "  --tolerance R          --check relative tolerance (default 1e-4; absolute 1e-5)\n"
    "  --seed S               seed of the inputs and weights (default 1)\n"
    "  --timeout SEC          watchdog for a collective (default 120)\n"
    "  --dump                 print the plan as a table and exit\n"
    "  --quiet                only the summary\n"
    "  --mode train|infer     infer: serve requests with per-batch expert placement\n"
    "                         (flags: lina-run PLAN --mode infer --help)\n"
    "  --cluster FILE         sim: the cluster to simulate (JSON, docs/COST_MODEL.md)\n"
    "  --contention-free      sim: every collective alone on the network (lower bound)\n"
    "The sim backend runs in one process (no mpirun); world size from the plan.\n";

//===----------------------------------------------------------------------===//
// Backend factory: the one place that names the concrete backends.
//===----------------------------------------------------------------------===//

/// What lina-run needs of a backend besides the scheduler's interface.
class RunBackend : public Backend {
public:
  virtual void initialize(uint64_t seed) = 0;
  virtual std::vector<float> read(int id) const = 0;
};

template <typename Impl> class RunBackendOf final : public RunBackend {
public:
  RunBackendOf(const Plan &plan, int rank, double timeout)
      : impl(plan, rank, timeout) {}
  void initialize(uint64_t seed) override { impl.initialize(seed); }
  std::vector<float> read(int id) const override { return impl.read(id); }
  void start(const Op &op) override { impl.start(op); }
  std::vector<int> waitAny() override { return impl.waitAny(); }
  double now() override { return impl.now(); }

private:
  Impl impl;
};

std::string availableBackends() {
#ifdef LINA_HAVE_CUDA
  return "cpu, cuda";
#else
  return "cpu";
#endif
}

bool backendAvailable(const std::string &name) {
#ifdef LINA_HAVE_CUDA
  if (name == "cuda")
    return true;
#endif
  return name == "cpu";
}

std::unique_ptr<RunBackend> makeBackend(const std::string &name,
                                        const Plan &plan, int rank,
                                        double timeout) {
#ifdef LINA_HAVE_CUDA
  if (name == "cuda")
    return std::make_unique<RunBackendOf<cuda::CudaBackend>>(plan, rank, timeout);
#endif
  if (name == "cpu")
    return std::make_unique<RunBackendOf<CpuBackend>>(plan, rank, timeout);
  throw PlanError("backend '" + name + "' is not available in this build");
}

struct Options {
  std::string plan, backend = "cpu", policy = "lina", trace, baseline;
  std::string baselineBackend;
  std::string cluster;          ///< sim: cluster description
  bool contentionFree = false;  ///< sim: no bandwidth sharing (lower bound)
  int steps = 10, warmup = 2;
  int64_t creditBytes = 0;
  bool check = false, dump = false, quiet = false;
  uint64_t seed = 1;
  double timeout = 120, tolerance = 1e-4;
};

[[noreturn]] void usageError(const std::string &msg) {
  throw PlanError(msg + "\n" + kUsage);
}

int64_t parseInt(const std::string &flag, const std::string &v, int64_t min) {
  char *end = nullptr;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || x < min)
    usageError("invalid value '" + v + "' for " + flag + " (an integer >= " +
               std::to_string(min) + ")");
  return x;
}

double parseDouble(const std::string &flag, const std::string &v) {
  char *end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || !(x > 0))
    usageError("invalid value '" + v + "' for " + flag + " (a positive number)");
  return x;
}

Options parseArgs(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        usageError("missing value for " + a);
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (a == "--mode") {
      std::string mode = value();
      if (mode != "train")
        usageError("unknown mode '" + mode + "' (train, or infer: see "
                   "docs/INFERENCE.md)");
    } else if (a == "--backend") o.backend = value();
    else if (a == "--cluster") o.cluster = value();
    else if (a == "--contention-free") o.contentionFree = true;
    else if (a == "--steps") o.steps = static_cast<int>(parseInt(a, value(), 1));
    else if (a == "--warmup") o.warmup = static_cast<int>(parseInt(a, value(), 0));
    else if (a == "--policy") o.policy = value();
    else if (a == "--credit-bytes") o.creditBytes = parseInt(a, value(), 0);
    else if (a == "--trace") o.trace = value();
    else if (a == "--check") o.check = true;
    else if (a == "--baseline") o.baseline = value();
    else if (a == "--baseline-backend") o.baselineBackend = value();
    else if (a == "--tolerance") o.tolerance = parseDouble(a, value());
    else if (a == "--seed") o.seed = static_cast<uint64_t>(parseInt(a, value(), 0));
    else if (a == "--timeout") o.timeout = parseDouble(a, value());
    else if (a == "--dump") o.dump = true;
    else if (a == "--quiet") o.quiet = true;
    else if (!a.empty() && a[0] == '-') usageError("unknown option '" + a + "'");
    else if (o.plan.empty()) o.plan = a;
    else usageError("more than one plan given ('" + o.plan + "' and '" + a + "')");
  }
  if (o.plan.empty())
    usageError("no plan given");
  if (o.baselineBackend.empty())
    o.baselineBackend = o.backend;
  if (o.backend == "sim") {
    if (o.cluster.empty())
      usageError("--backend sim needs --cluster FILE (see examples/clusters)");
    if (o.check)
      usageError("--check compares numerics; the sim backend computes none");
  } else if (!o.cluster.empty() || o.contentionFree) {
    usageError("--cluster and --contention-free are options of --backend sim");
  }
  for (const std::string &b : {o.backend, o.baselineBackend})
    if (b != "sim" && !backendAvailable(b))
      usageError("backend '" + b + "' is not available in this build "
                 "(available: " + availableBackends() + ")");
  parsePolicy(o.policy);
  if (!o.baseline.empty() && !o.check)
    usageError("--baseline needs --check");
  if (o.baselineBackend != o.backend && !o.check)
    usageError("--baseline-backend needs --check");
  return o;
}

/// The job's ranks. Every collective of the driver itself is non-blocking
/// and waited for with the watchdog timeout, so a rank that stopped or runs
/// something else ends the job with a message instead of a hang.
struct World {
  int rank = 0, size = 1;
  double timeout = 120;
  /// Set once every rank has loaded the plan and started executing it:
  /// from then on an error (a kernel finding an expert id out of range,
  /// counts that do not fit) can be this rank's alone.
  bool executing = false;
#ifdef LINA_HAVE_MPI
  void wait(MPI_Request &request, const char *what) {
    waitAllOrAbort(&request, 1, timeout, rank, what);
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

/// Gathers every rank's timeline on rank 0.
std::vector<std::vector<OpInterval>> gather(World &w,
                                            const std::vector<OpInterval> &mine) {
  std::vector<std::vector<OpInterval>> all(w.size);
#ifdef LINA_HAVE_MPI
  std::vector<double> flat;
  for (const OpInterval &i : mine)
    flat.insert(flat.end(), {double(i.op), double(int(i.queue)), i.start, i.end});
  int n = static_cast<int>(flat.size());
  std::vector<int> counts(w.size), displs(w.size);
  MPI_Request req;
  MPI_Igather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD, &req);
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
        all[r].push_back({int(recv[i]), Queue(int(recv[i + 1])), recv[i + 2],
                          recv[i + 3]});
#else
  all[0] = mine;
#endif
  return all;
}

/// Runs `plan` once and returns its outputs.
std::vector<std::vector<float>> runOnce(const Plan &plan, const Options &o,
                                        const std::string &backendName,
                                        Policy policy, int rank) {
  std::unique_ptr<RunBackend> backend =
      makeBackend(backendName, plan, rank, o.timeout);
  backend->initialize(o.seed);
  Scheduler scheduler(plan, {policy, o.creditBytes});
  scheduler.run(*backend);
  std::vector<std::vector<float>> outs;
  for (int id : plan.outputs)
    outs.push_back(backend->read(id));
  return outs;
}

/// --backend sim: one process simulates every rank of the plan on the
/// cluster; the same summary and trace as the real backends.
int runSimulated(World &w, const Options &o, const Plan &plan) {
  if (w.rank != 0)
    return 0;
  std::string error;
  auto cluster = lina::ClusterSpec::fromFile(o.cluster, error);
  if (!cluster)
    throw PlanError(error);
  SimOptions sim;
  sim.scheduler = {parsePolicy(o.policy), o.creditBytes};
  // The simulator has a cost model: policy lina uses its admission rule.
  sim.scheduler.estimate = costModelEstimator(plan, *cluster);
  sim.contentionFree = o.contentionFree;
  SimResult r = simulate(plan, *cluster, sim);
  if (!o.quiet)
    std::printf("lina-run: %s, %d simulated ranks on %s, backend sim, policy "
                "%s%s, %zu ops\n"
                "step   0: %9.3f ms  all_to_all blocked %8.3f ms  all_to_all "
                "%8.3f ms  all_reduce %8.3f ms\n",
                o.plan.c_str(), plan.worldSize, cluster->name.c_str(),
                o.policy.c_str(), o.contentionFree ? " (contention-free)" : "",
                plan.ops.size(), r.stepTime * 1e3, r.meanAllToAllBlocked * 1e3,
                r.meanAllToAllTime * 1e3, r.meanAllReduceTime * 1e3);
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
  return 0;
}

int run(World &w, const Options &o) {
  Plan plan = loadPlan(o.plan);
  if (o.dump) {
    if (w.rank == 0)
      std::cout << dumpPlan(plan);
    return 0;
  }
  if (o.backend == "sim")
    return runSimulated(w, o, plan);
  if (plan.worldSize != w.size)
    throw PlanError("the plan '" + o.plan + "' is for " +
                    std::to_string(plan.worldSize) + " ranks, but " +
                    std::to_string(w.size) + " were launched (use mpirun -np " +
                    std::to_string(plan.worldSize) + ")");
  Policy policy = parsePolicy(o.policy);
  w.timeout = o.timeout;
  std::unique_ptr<RunBackend> backendPtr =
      makeBackend(o.backend, plan, w.rank, o.timeout);
  RunBackend &backend = *backendPtr;
  backend.initialize(o.seed);
  Scheduler scheduler(plan, {policy, o.creditBytes});
  w.executing = true;

  if (w.rank == 0 && !o.quiet)
    std::printf("lina-run: %s, %d ranks, backend %s, policy %s, %zu ops\n",
                o.plan.c_str(), w.size, o.backend.c_str(), o.policy.c_str(),
                plan.ops.size());
  for (int i = 0; i < o.warmup; ++i) {
    w.barrier("waiting for the other ranks before a warm-up step");
    scheduler.run(backend);
  }
  double sumStep = 0, minStep = 1e300, sumBlocked = 0, sumA2a = 0, sumAr = 0;
  StepStats last;
  for (int s = 0; s < o.steps; ++s) {
    w.barrier("waiting for the other ranks before a step");
    StepStats st = scheduler.run(backend);
    double step = w.max(st.stepTime);
    double blocked = w.sum(st.allToAllBlocked) / w.size;
    double a2a = w.sum(st.allToAllTime) / w.size;
    double ar = w.sum(st.allReduceTime) / w.size;
    sumStep += step;
    minStep = std::min(minStep, step);
    sumBlocked += blocked;
    sumA2a += a2a;
    sumAr += ar;
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
    auto all = gather(w, last.timeline);
    if (w.rank == 0) {
      writeChromeTrace(o.trace, plan, all);
      if (!o.quiet)
        std::printf("trace: %s\n", o.trace.c_str());
    }
  }
  if (!o.check)
    return 0;

  // Compare with the baseline on identical inputs and weights.
  auto mine = runOnce(plan, o, o.backend, policy, w.rank);
  std::unique_ptr<Plan> basePlan;
  if (!o.baseline.empty()) {
    // Loading fails alike on every rank: report it once, exit cleanly.
    w.executing = false;
    basePlan = std::make_unique<Plan>(loadPlan(o.baseline));
    if (basePlan->worldSize != w.size)
      throw PlanError("the baseline plan '" + o.baseline + "' is for " +
                      std::to_string(basePlan->worldSize) + " ranks, not " +
                      std::to_string(w.size));
    w.executing = true;
  }
  const Plan &bp = basePlan ? *basePlan : plan;
  auto theirs = runOnce(bp, o, o.baselineBackend, Policy::Fifo, w.rank);
  std::string problem;
  if (mine.size() != theirs.size())
    problem = "the plans return " + std::to_string(mine.size()) + " and " +
              std::to_string(theirs.size()) + " outputs";
  double maxAbs = 0, worst = 0;
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
      worst = std::max(worst, err / (1e-5 + o.tolerance * std::fabs(b)));
    }
  }
  double bad = w.max(problem.empty() ? 0.0 : 1.0);
  maxAbs = w.max(maxAbs);
  worst = w.max(worst);
  bool pass = bad == 0 && worst <= 1.0;
  std::string baselineName = o.baseline.empty() ? "the fifo policy" : o.baseline;
  if (o.baselineBackend != o.backend)
    baselineName += " on backend " + o.baselineBackend;
  if (w.rank == 0) {
    if (!problem.empty())
      std::printf("check: FAIL: %s\n", problem.c_str());
    std::printf("check: %zu outputs vs %s: max abs error %.3g "
                "(tolerance %.0e relative + 1e-05 absolute): %s\n",
                mine.size(),
                baselineName.c_str(),
                maxAbs, o.tolerance, pass ? "PASS" : "FAIL");
  }
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
  // One BLAS thread per rank: ranks already use every core.
  if (!std::getenv("OPENBLAS_NUM_THREADS"))
    openblas_set_num_threads(1);
  int rc = 0;
  try {
    if (infer::isInferMode(argc, argv)) {
      // --mode infer: batches of requests with per-batch expert placement.
      rc = infer::runInference(infer::parseInferArgs(argc, argv), w.rank,
                               w.size);
    } else {
      Options o = parseArgs(argc, argv);
      rc = run(w, o);
    }
  } catch (const std::exception &e) {
    // Every rank reads the same plan and flags, so they fail alike; rank 0
    // reports. An error on one rank only (a kernel failure) aborts the job.
    std::string msg = e.what();
    bool everyone =
        dynamic_cast<const PlanError *>(&e) != nullptr && !w.executing;
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
    if (!everyone && w.size > 1) {
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, rc);
    }
#endif
  }
#ifdef LINA_HAVE_MPI
  MPI_Finalize();
#endif
  return rc;
}
