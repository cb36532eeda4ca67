//===- InferExecutor.cpp - Inference with per-batch expert placement ------===//
//
// Part of the Lina project.
//
// Serves an inference plan batch by batch (see Infer.h and
// docs/INFERENCE.md): reads and checks the plan, the routing trace and the
// profile; places every batch (BatchPlacer) and runs it as one step plan
// (InferStep.h) through the Scheduler, on the cpu backend over MPI
// (runInference) or on the simulator (simulateInference); reports the
// latencies and, with --check, compares the outputs with the static
// placement's.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Infer.h"

#include "InferComm.h"

#include "lina/Support/CheckedMath.h"
#include "lina/Support/Fnv1a.h"
#include "lina/Support/Profile.h"
#include "lina/Support/RoutingTrace.h"
#include "lina/rt/CpuBackend.h"
#include "lina/rt/InferStep.h"
#include "lina/rt/Plan.h"
#include "lina/rt/Scheduler.h"
#include "lina/rt/Simulator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <sstream>

using namespace lina::rt;
using namespace lina::rt::infer;
using lina::Profile;
using lina::RoutingTrace;

const char *lina::rt::infer::toString(PlacementMode mode) {
  switch (mode) {
  case PlacementMode::Static:
    return "static";
  case PlacementMode::Eplb:
    return "eplb";
  case PlacementMode::Lina:
    return "lina";
  case PlacementMode::Oracle:
    return "oracle";
  }
  return "?";
}

namespace {

/// What a run measured on this rank.
struct RunStats {
  std::vector<double> batchSeconds;        ///< the slowest rank's, per batch
  std::vector<std::vector<float>> outputs; ///< --check: per batch, per output
  PlacerStats placed; ///< the placement of every rank (the same everywhere)
};

//===----------------------------------------------------------------------===//
// Reports
//===----------------------------------------------------------------------===//

/// Percentile by the nearest-rank method.
double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * v.size()));
  return v[std::max<size_t>(rank, 1) - 1];
}

/// The report of a run from every batch's latency and the placement's
/// statistics; prints the batches (unless --quiet) and the summary line.
InferReport summarize(const InferOptions &o,
                      const std::vector<double> &batchSeconds,
                      const PlacerStats &s, int moeLayers, int slots,
                      bool haveProfile) {
  if (!o.quiet)
    for (size_t b = 0; b < batchSeconds.size(); ++b)
      std::printf("batch %3zu: %9.3f ms\n", b, batchSeconds[b] * 1e3);
  InferReport r;
  r.batchSeconds = batchSeconds;
  r.moeLayers = moeLayers;
  r.slotsPerDevice = slots;
  for (double t : batchSeconds)
    r.mean += t;
  r.mean /= batchSeconds.size();
  r.p50 = percentile(batchSeconds, 50);
  r.p95 = percentile(batchSeconds, 95);
  r.p99 = percentile(batchSeconds, 99);
  if (o.placement == PlacementMode::Lina)
    r.phase2Rate = s.phase2 / s.layerBatches;
  if (o.placement == PlacementMode::Lina && haveProfile) {
    r.top1Accuracy = s.predicted > 0 ? s.predictedRight / s.predicted : 0.0;
    r.loadError =
        s.loadErrorSamples > 0 ? s.loadError / s.loadErrorSamples : 0.0;
  }
  r.maxOverMeanLoad = s.imbalance / s.layerBatches;
  r.weightBytesMoved = s.bytesMoved;
  std::printf("summary: placement=%s batches=%zu p50_ms=%.3f p95_ms=%.3f "
              "p99_ms=%.3f mean_ms=%.3f phase2_rate=%.3f",
              toString(o.placement), r.batchSeconds.size(), r.p50 * 1e3,
              r.p95 * 1e3, r.p99 * 1e3, r.mean * 1e3, r.phase2Rate);
  if (r.top1Accuracy && r.loadError)
    std::printf(" top1_accuracy=%.3f load_error=%.3f", *r.top1Accuracy,
                *r.loadError);
  else
    std::printf(" top1_accuracy=n/a load_error=n/a");
  std::printf(" max_over_mean_load=%.3f weight_bytes_moved=%.0f\n",
              r.maxOverMeanLoad, r.weightBytesMoved);
  std::fflush(stdout);
  return r;
}

} // namespace

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

namespace {

/// The mean tokens of a batch.
double meanBatchTokens(const std::vector<std::vector<int>> &batches) {
  double tokens = 0;
  for (const std::vector<int> &b : batches)
    tokens += static_cast<double>(b.size());
  return batches.empty() ? 0.0 : tokens / batches.size();
}

/// The dense block of one MoE layer on `cluster`: the plan's ops outside
/// the MoE chains (dense, add, copy) by the cost model, over the layers.
double denseSecondsPerLayer(const Plan &plan, size_t moeLayers,
                            const lina::ClusterSpec &cluster) {
  Estimator estimate = costModelEstimator(plan, cluster);
  double seconds = 0;
  for (const Op &op : plan.ops)
    if (op.kind == OpKind::Dense || op.kind == OpKind::Add ||
        op.kind == OpKind::Copy)
      seconds += estimate(op);
  return moeLayers ? seconds / static_cast<double>(moeLayers) : 0.0;
}

/// Reads and checks the plan, the routing trace and the profile, and cuts
/// the requests into batches; throws PlanError naming the problem. Fills
/// `startup` with the plan's world size and the memory the run will need.
/// `simulated`: one process serves the plan's ranks (worldSize is taken
/// from the plan) in any dtype.
void prepareInference(const InferOptions &o, bool simulated, int worldSize,
                      Plan &plan, std::vector<MoeLayer> &layers,
                      std::optional<RoutingTrace> &trace,
                      std::optional<Profile> &profile,
                      std::vector<std::vector<int>> &batches, int &slots,
                      InferStartup &startup) {
  // Each input is read once: the bytes parsed are the bytes hashed for the
  // start-up agreement.
  std::string planText = readInputFile(o.plan, "plan");
  startup.inputsHash = lina::fnv1a(planText);
  plan = parsePlan(planText, o.plan);
  startup.planWorldSize = plan.worldSize;
  if (simulated)
    worldSize = plan.worldSize;
  if (plan.worldSize != worldSize)
    throw PlanError("the plan '" + o.plan + "' is for " +
                    std::to_string(plan.worldSize) + " ranks, but " +
                    std::to_string(worldSize) +
                    " were launched (use mpirun "
                    "-np " +
                    std::to_string(plan.worldSize) + ")");
  layers = findMoeLayers(plan, worldSize, placementTables(plan));
  if (!simulated)
    for (const Buffer &b : plan.buffers)
      if (b.dtype != DType::F32 && b.dtype != DType::I32)
        throw PlanError("buffer " + std::to_string(b.id) + " ('" + b.name +
                        "') is " + toString(b.dtype) +
                        "; inference on the cpu backend computes in f32");
  const MoeLayer &first = layers.front();

  std::string error;
  lina::TraceParseOptions parse;
  parse.numExperts = static_cast<int>(first.experts);
  std::string traceText = readInputFile(o.routing, "routing trace");
  startup.inputsHash = lina::fnv1a(traceText, startup.inputsHash ^ 1);
  try {
    std::istringstream in(traceText);
    trace = lina::parseRoutingTrace(in, o.routing, parse, error);
  } catch (const std::exception &e) {
    error = o.routing + ": " + e.what();
  }
  if (!trace)
    throw PlanError(error);
  if (trace->numLayers < static_cast<int>(layers.size()))
    throw PlanError("the routing trace '" + o.routing + "' has " +
                    std::to_string(trace->numLayers) +
                    " layers but the plan "
                    "has " +
                    std::to_string(layers.size()) + " MoE layers");
  for (size_t l = 0; l < layers.size(); ++l) {
    if (layers[l].experts != trace->numExperts)
      throw PlanError(plan.ops[layers[l].gate].describe() + ": " +
                      std::to_string(layers[l].experts) +
                      " experts, but the "
                      "routing trace is for " +
                      std::to_string(trace->numExperts));
    if (layers[l].topK != trace->topK)
      throw PlanError(plan.ops[layers[l].gate].describe() + ": top_k " +
                      std::to_string(layers[l].topK) +
                      ", but the routing "
                      "trace has top-" +
                      std::to_string(trace->topK));
  }
  if (!o.profile.empty()) {
    std::string profileText = readInputFile(o.profile, "profile");
    startup.inputsHash = lina::fnv1a(profileText, startup.inputsHash ^ 2);
    profile = Profile::fromJson(profileText, o.profile, error);
    if (!profile)
      throw PlanError(error);
    if (profile->numLayers < static_cast<int>(layers.size()) ||
        profile->numExperts != first.experts)
      throw PlanError("the profile '" + o.profile + "' (" +
                      std::to_string(profile->numLayers) + " layers, " +
                      std::to_string(profile->numExperts) +
                      " experts) does "
                      "not match the plan (" +
                      std::to_string(layers.size()) + " MoE layers, " +
                      std::to_string(first.experts) + " experts)");
  }
  if (o.placement == PlacementMode::Lina && !profile)
    for (const MoeLayer &m : layers)
      if (!m.table)
        throw PlanError(
            "--placement lina needs --profile, or a plan whose "
            "gates carry placement tables (--lina-build-placement)");

  slots = o.slotsPerDevice;
  if (!slots)
    slots = first.table ? first.table->slotsPerDevice
                        : static_cast<int>(2 * first.localExperts);
  if (static_cast<int64_t>(slots) < first.localExperts)
    throw PlanError("--experts-per-device " + std::to_string(slots) +
                    " is below the " + std::to_string(first.localExperts) +
                    " experts per device of expert parallelism");

  // Requests in trace order; batch b serves requests [bB, (b+1)B).
  std::vector<std::vector<int>> byRequest;
  for (size_t t = 0; t < trace->tokens.size(); ++t) {
    if (t == 0 || trace->tokens[t].request != trace->tokens[t - 1].request)
      byRequest.emplace_back();
    byRequest.back().push_back(static_cast<int>(t));
  }
  if (o.requests > static_cast<int>(byRequest.size()))
    throw PlanError("--requests " + std::to_string(o.requests) +
                    ": the routing trace '" + o.routing + "' has only " +
                    std::to_string(byRequest.size()) + " requests");
  batches.clear();
  for (int r = 0; r < o.requests; r += o.batch) {
    batches.emplace_back();
    for (int q = r; q < std::min(o.requests, r + o.batch); ++q)
      batches.back().insert(batches.back().end(), byRequest[q].begin(),
                            byRequest[q].end());
    int64_t per =
        (static_cast<int64_t>(batches.back().size()) + worldSize - 1) /
        worldSize;
    if (per > first.tokens)
      throw PlanError("a batch of " + std::to_string(o.batch) +
                      " requests has " + std::to_string(batches.back().size()) +
                      " tokens, " + std::to_string(per) +
                      " per rank, but the "
                      "plan holds " +
                      std::to_string(first.tokens) +
                      " tokens per rank (lower --batch)");
  }

  // Memory: the plan's buffers plus, per MoE layer, the copies of non-home
  // experts a device may hold (w1 and w2 of each extra slot, f32).
  int64_t need = plan.allocatedBytes();
  for (const MoeLayer &m : layers) {
    std::optional<int64_t> copies =
        lina::checkedProduct({std::max<int64_t>(0, slots - m.localExperts), 2,
                              m.hidden, m.ffnDim, int64_t(sizeof(float))});
    std::optional<int64_t> sum =
        copies ? lina::checkedAdd(need, *copies) : std::nullopt;
    if (!sum)
      throw PlanError("the expert copies of --experts-per-device " +
                      std::to_string(slots) + " need more than 2^63 bytes");
    need = *sum;
  }
  startup.bytesNeeded = need;
}

} // namespace

int lina::rt::infer::runInference(const InferOptions &o, int rank,
                                  int worldSize, const AgreeFn &agree,
                                  InferReport *report) {
  // Read and check every input, then agree with the other ranks before the
  // first collective: a rank that failed reports its own error.
  Plan plan;
  std::vector<MoeLayer> layers;
  std::optional<RoutingTrace> trace;
  std::optional<Profile> profile;
  std::vector<std::vector<int>> batches;
  int slots = 0;
  InferStartup startup;
  try {
    prepareInference(o, false, worldSize, plan, layers, trace, profile, batches,
                     slots, startup);
  } catch (const std::bad_alloc &) {
    startup.error = "out of memory while reading the inputs of --mode infer";
  } catch (const std::length_error &) {
    startup.error = "out of memory while reading the inputs of --mode infer";
  } catch (const std::exception &e) {
    startup.error = e.what();
  }
  agree(startup);
  if (!startup.error.empty()) // agree() must have thrown; never run alone
    throw PlanError(startup.error);

  InferComm comm(rank, worldSize, o.timeout);
  const Profile *prof = profile ? &*profile : nullptr;
  // Lina's planner prices moves on the default cluster of the cost model.
  const lina::ClusterSpec cluster = lina::ClusterSpec::a100Ib100();
  // Every batch as one step plan on the Scheduler and the cpu backend.
  auto serve = [&](PlacementMode mode, RunStats &stats, bool record,
                   int warmup) {
    BatchPlacer placer(layers, *trace, prof, mode, worldSize, slots, cluster,
                       meanBatchTokens(batches),
                       denseSecondsPerLayer(plan, layers.size(), cluster));
    PlacerStats ignored;
    auto runBatch = [&](size_t b, PlacerStats &placed, bool timed) {
      std::vector<LayerTraffic> traffic = placer.route(batches[b], placed);
      RankStep st =
          buildRankStep(plan, layers, traffic, *trace, batches[b], rank);
      Plan step = parsePlan(writePlan(st.plan),
                            "the step plan of batch " + std::to_string(b));
      CpuBackend backend(step, rank, o.timeout);
      backend.initialize(o.seed);
      for (const auto &[id, bytes] : st.inputs)
        backend.write(id, bytes);
      RoutingPin pin;
      pin.mode = RoutingPin::Mode::Impose;
      pin.gates = std::move(st.gateExperts);
      backend.setRoutingPin(&pin);
      comm.barrier("waiting for the other ranks before a batch");
      StepStats s =
          Scheduler(step, SchedulerOptions(Policy::Lina)).run(backend);
      if (!timed)
        return;
      stats.batchSeconds.push_back(
          comm.max(s.stepTime, "exchanging batch times"));
      if (record)
        for (int id : step.outputs)
          stats.outputs.push_back(backend.read(id));
    };
    for (int w = 0; w < warmup; ++w)
      runBatch(static_cast<size_t>(w) % batches.size(), ignored, false);
    for (size_t b = 0; b < batches.size(); ++b)
      runBatch(b, stats.placed, true);
  };
  if (rank == 0 && !o.quiet)
    std::printf("infer: %s, %d ranks, placement %s, %zu MoE layers, %d "
                "requests in %zu batches of %d, %d expert slots per device\n",
                o.plan.c_str(), worldSize, toString(o.placement), layers.size(),
                o.requests, batches.size(), o.batch, slots);
  RunStats stats;
  serve(o.placement, stats, o.check, o.warmup);

  if (rank == 0) {
    InferReport r =
        summarize(o, stats.batchSeconds, stats.placed,
                  static_cast<int>(layers.size()), slots, prof != nullptr);
    r.worldSize = worldSize;
    if (report)
      *report = std::move(r);
  }
  if (!o.check)
    return 0;

  // The same batches under expert parallelism must give the same outputs.
  RunStats base;
  serve(PlacementMode::Static, base, true, 0);
  double maxAbs = 0, worst = 0;
  for (size_t i = 0; i < stats.outputs.size(); ++i)
    for (size_t j = 0; j < stats.outputs[i].size(); ++j) {
      double a = stats.outputs[i][j], b = base.outputs[i][j];
      double err =
          std::isfinite(a) && std::isfinite(b) ? std::fabs(a - b) : INFINITY;
      maxAbs = std::max(maxAbs, err);
      worst = std::max(worst, err / (1e-5 + o.tolerance * std::fabs(b)));
    }
  maxAbs = comm.max(maxAbs, "exchanging the check");
  worst = comm.max(worst, "exchanging the check");
  bool pass = worst <= 1.0;
  if (rank == 0 && report) {
    report->checked = true;
    report->checkPassed = pass;
    report->checkMaxAbsError = maxAbs;
  }
  if (rank == 0)
    std::printf("check: outputs of %zu batches vs the static placement: max "
                "abs error %.3g (tolerance %.0e relative + 1e-05 absolute): "
                "%s\n",
                batches.size(), maxAbs, o.tolerance, pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}

//===----------------------------------------------------------------------===//
// --backend sim: every batch as one step plan on the simulator
//===----------------------------------------------------------------------===//

int lina::rt::infer::simulateInference(const InferOptions &o,
                                       InferReport *report) {
  std::string error;
  std::optional<lina::ClusterSpec> cluster =
      lina::ClusterSpec::fromFile(o.cluster, error);
  if (!cluster)
    throw PlanError(error);
  Plan plan;
  std::vector<MoeLayer> layers;
  std::optional<RoutingTrace> trace;
  std::optional<Profile> profile;
  std::vector<std::vector<int>> batches;
  int slots = 0;
  InferStartup startup;
  prepareInference(o, true, 0, plan, layers, trace, profile, batches, slots,
                   startup);
  if (plan.worldSize > cluster->numGpus())
    throw PlanError("the plan '" + o.plan + "' has " +
                    std::to_string(plan.worldSize) + " ranks, the cluster '" +
                    o.cluster + "' " + std::to_string(cluster->numGpus()) +
                    " GPUs");
  const Profile *prof = profile ? &*profile : nullptr;
  if (!o.quiet)
    std::printf("infer: %s, %d simulated ranks on %s, placement %s, %zu MoE "
                "layers, %d requests in %zu batches of %d, %d expert slots "
                "per device\n",
                o.plan.c_str(), plan.worldSize, cluster->name.c_str(),
                toString(o.placement), layers.size(), o.requests,
                batches.size(), o.batch, slots);
  BatchPlacer placer(layers, *trace, prof, o.placement, plan.worldSize, slots,
                     *cluster, meanBatchTokens(batches),
                     denseSecondsPerLayer(plan, layers.size(), *cluster));
  // Warm-up batches only move weights, as on the cpu backend.
  PlacerStats ignored, stats;
  for (int w = 0; w < o.warmup; ++w)
    placer.route(batches[w % batches.size()], ignored);
  std::vector<double> seconds;
  for (size_t b = 0; b < batches.size(); ++b) {
    Plan step = buildStepPlan(plan, layers, placer.route(batches[b], stats));
    // Validated like any plan (and its producers derived) before it runs.
    step = parsePlan(writePlan(step),
                     "the step plan of batch " + std::to_string(b));
    SimOptions sim;
    sim.scheduler = {Policy::Lina, 0, costModelEstimator(step, *cluster)};
    seconds.push_back(simulate(step, *cluster, sim).stepTime);
  }
  InferReport r = summarize(o, seconds, stats, static_cast<int>(layers.size()),
                            slots, prof != nullptr);
  r.worldSize = plan.worldSize;
  if (report)
    *report = std::move(r);
  return 0;
}
