//===- InferExecutor.cpp - Inference with per-batch expert placement ------===//
//
// Part of the Lina project.
//
// Executes an inference plan batch by batch (see Infer.h and
// docs/INFERENCE.md). Compute ops outside the MoE chains run with the CPU
// kernels; each MoE chain gate -> dispatch -> all_to_all -> expert_ffn ->
// all_to_all -> combine is replaced by trace routing, a per-batch placement,
// a counts-first variable all-to-all of the tokens to the expert replicas,
// one GEMM pair per hosted expert, and the way back.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Infer.h"

#include "InferComm.h"

#include "lina/Support/CheckedMath.h"
#include "lina/Support/Fnv1a.h"
#include "lina/Support/Placement.h"
#include "lina/Support/Profile.h"
#include "lina/Support/RoutingTrace.h"
#include "lina/rt/InferStep.h"
#include "lina/rt/Init.h"
#include "lina/rt/Kernels.h"
#include "lina/rt/Plan.h"
#include "lina/rt/Scheduler.h"
#include "lina/rt/Simulator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

using namespace lina::rt;
using namespace lina::rt::infer;
using lina::LayerPlacement;
using lina::Profile;
using lina::RoutingTrace;

const char *lina::rt::infer::toString(PlacementMode mode) {
  switch (mode) {
  case PlacementMode::Static:
    return "static";
  case PlacementMode::Lina:
    return "lina";
  case PlacementMode::Oracle:
    return "oracle";
  }
  return "?";
}

namespace {

/// Statistics of a run, summed over layers and batches on this rank.
struct RunStats {
  std::vector<double> batchSeconds;
  double phase2 = 0, layerBatches = 0;
  double predicted = 0, predictedRight = 0;
  double loadError = 0, loadErrorSamples = 0;
  double imbalance = 0;
  double bytesMoved = 0;
  std::vector<std::vector<float>> outputs; ///< --check: per batch, per output
};

double seconds(std::chrono::steady_clock::time_point a,
               std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

class Executor {
public:
  Executor(const Plan &plan, const InferOptions &o, InferComm &comm,
           const RoutingTrace &trace, const Profile *profile,
           const std::vector<MoeLayer> &layers,
           const std::vector<std::vector<int>> &batches, PlacementMode mode,
           int slots)
      : plan(plan), o(o), comm(comm), trace(trace), profile(profile),
        layers(layers), batches(batches), mode(mode), slots(slots) {
    inChain.assign(plan.ops.size(), -1);
    for (size_t l = 0; l < layers.size(); ++l)
      for (int id : {layers[l].gate, layers[l].dispatch, layers[l].a2aIn,
                     layers[l].ffn, layers[l].a2aOut, layers[l].combine})
        inChain[id] = static_cast<int>(l);
    storage.assign(plan.buffers.size(), {});
    for (const Buffer &b : plan.buffers)
      if (!b.isView())
        storage[b.id].assign(static_cast<size_t>(b.numBytes()), 0);
    for (const Buffer &b : plan.buffers)
      if (!b.isView() && b.init == Init::Random && b.dtype == DType::F32)
        fillRandom(b, comm.rank(), o.seed, f32(b.id));
    held.assign(layers.size(), std::vector<std::set<int>>(comm.size()));
    cache.assign(layers.size(), {});
    current.assign(layers.size(), LayerPlacement());
    estimate.assign(layers.size(), {});
  }

  /// Serves batch `b`; returns this rank's wall time.
  double runBatch(int b, RunStats &stats, bool record);

private:
  char *data(int id) {
    const Buffer &buf = plan.buffers[id];
    int base = buf.isView() ? buf.viewBase : id;
    return storage[base].data() + buf.viewOffset * dtypeBytes(buf.dtype);
  }
  float *f32(int id) { return reinterpret_cast<float *>(data(id)); }

  void runCompute(const Op &op);
  void prepare(int l, RunStats &stats);
  void runMoe(int l, RunStats &stats);
  void schedule(int l, const LayerPlacement &placement, RunStats &stats);
  std::vector<double> trueLoads(int l);
  const float *expertWeights(int l, int e, bool second);

  /// The tokens of the current batch this rank serves (trace indices).
  std::vector<int> myTokens() const {
    const std::vector<int> &all = batches[batch];
    int64_t n = static_cast<int64_t>(all.size());
    int64_t per = (n + comm.size() - 1) / comm.size();
    int64_t lo = std::min(n, per * comm.rank()),
            hi = std::min(n, per * (comm.rank() + 1));
    return std::vector<int>(all.begin() + lo, all.begin() + hi);
  }
  int home(const MoeLayer &m, int e) const {
    return static_cast<int>(e / m.localExperts);
  }

  const Plan &plan;
  const InferOptions &o;
  InferComm &comm;
  const RoutingTrace &trace;
  const Profile *profile;
  const std::vector<MoeLayer> &layers;
  const std::vector<std::vector<int>> &batches;
  PlacementMode mode;
  int slots;

  int batch = 0;
  std::vector<int> inChain;
  std::vector<std::vector<char>> storage;
  /// Per layer: the non-home experts each device holds (the same on every
  /// rank: placements are computed identically everywhere).
  std::vector<std::vector<std::set<int>>> held;
  /// Per layer: this rank's copies of non-home experts (w1 then w2).
  std::vector<std::map<int, std::vector<float>>> cache;
  std::vector<std::vector<float>> staging; ///< weights being sent
  std::vector<LayerPlacement> current;
  std::vector<std::vector<double>> estimate; ///< phase-1 loads (lina)
};

void Executor::runCompute(const Op &op) {
  const Buffer &out = plan.buffers[op.outputs[0]];
  switch (op.kind) {
  case OpKind::Dense: {
    const Buffer &x = plan.buffers[op.inputs[0]];
    const Buffer &w = plan.buffers[op.inputs[1]];
    cpu::dense(f32(x.id), f32(w.id), f32(out.id), x.shape[0], x.shape[1],
               w.shape[1], op.activation);
    return;
  }
  case OpKind::Add: {
    const float *a = f32(op.inputs[0]), *b = f32(op.inputs[1]);
    float *y = f32(out.id);
    for (int64_t i = 0, n = out.numElements(); i < n; ++i)
      y[i] = a[i] + b[i];
    return;
  }
  case OpKind::Copy: {
    const Buffer &src = plan.buffers[op.inputs[0]];
    cpu::copyBox(data(src.id), src.shape, op.srcOffsets, data(out.id),
                 out.shape, op.dstOffsets, op.sizes, dtypeBytes(src.dtype));
    return;
  }
  default:
    throw PlanError(op.describe() + ": not supported by --mode infer");
  }
}

std::vector<double> Executor::trueLoads(int l) {
  const MoeLayer &m = layers[l];
  std::vector<double> loads(m.experts, 0.0);
  for (int t : myTokens())
    for (int e : trace.tokens[t].experts[l])
      loads[e] += 1;
  comm.sum(loads.data(), static_cast<int>(m.experts),
           "exchanging expert loads");
  return loads;
}

const float *Executor::expertWeights(int l, int e, bool second) {
  const MoeLayer &m = layers[l];
  int64_t block = m.hidden * m.ffnDim;
  if (home(m, e) == comm.rank()) {
    int64_t local = e - comm.rank() * m.localExperts;
    return f32(second ? m.w2 : m.w1) + local * block;
  }
  auto it = cache[l].find(e);
  if (it == cache[l].end())
    throw PlanError("internal error: rank " + std::to_string(comm.rank()) +
                    " runs expert " + std::to_string(e) + " of MoE layer " +
                    std::to_string(l) + " without its weights");
  return it->second.data() + (second ? block : 0);
}

/// Starts the weight moves that `placement` needs for layer l: every
/// replica on a device that neither is the expert's home nor holds a copy
/// receives (w1, w2) from the home device. Copies no longer placed are
/// dropped.
void Executor::schedule(int l, const LayerPlacement &placement,
                        RunStats &stats) {
  const MoeLayer &m = layers[l];
  int64_t block = m.hidden * m.ffnDim;
  int me = comm.rank();
  std::vector<std::set<int>> next(comm.size());
  for (int e = 0; e < m.experts; ++e) {
    for (const lina::Replica &r : placement.replicas[e]) {
      int h = home(m, e);
      if (r.device == h)
        continue;
      next[r.device].insert(e);
      if (held[l][r.device].count(e))
        continue;
      stats.bytesMoved += 2.0 * block * sizeof(float);
      int tag = static_cast<int>(l * m.experts + e);
      if (me == h) {
        staging.emplace_back(2 * block);
        std::memcpy(staging.back().data(), expertWeights(l, e, false),
                    block * sizeof(float));
        std::memcpy(staging.back().data() + block, expertWeights(l, e, true),
                    block * sizeof(float));
        comm.postSend(staging.back().data(), 2 * block, r.device, tag);
      }
      if (me == r.device) {
        std::vector<float> &dst = cache[l][e];
        dst.assign(2 * block, 0.0f);
        comm.postRecv(dst.data(), 2 * block, h, tag);
      }
    }
  }
  // Drop the copies the new placement does not use.
  for (auto it = cache[l].begin(); it != cache[l].end();)
    it = next[me].count(it->first) ? std::next(it) : cache[l].erase(it);
  held[l] = std::move(next);
  current[l] = placement;
}

/// Phase 1 for layer l: choose the placement before the layer runs and
/// start moving weights, so that the moves overlap the dense block.
void Executor::prepare(int l, RunStats &stats) {
  const MoeLayer &m = layers[l];
  std::string error;
  std::optional<LayerPlacement> p;
  int E = static_cast<int>(m.experts), N = comm.size();
  switch (mode) {
  case PlacementMode::Static:
    p = lina::staticPlacement(E, N, slots, error);
    break;
  case PlacementMode::Oracle:
    p = lina::linaPlacement(trueLoads(l), N, slots, error);
    break;
  case PlacementMode::Lina:
    if (profile) {
      std::vector<double> est(E, 0.0);
      for (int t : myTokens()) {
        std::vector<int> history(l);
        for (int i = 0; i < l; ++i)
          history[i] = trace.tokens[t].top1(i);
        profile->addExpectedLoad(l, history.data(), est.data());
      }
      comm.sum(est.data(), E, "exchanging estimated expert loads");
      estimate[l] = est;
      p = lina::linaPlacement(est, N, slots, error);
    } else {
      p = *m.table;
    }
    break;
  }
  if (!p)
    throw PlanError("MoE layer " + std::to_string(l) + ": " + error);
  schedule(l, *p, stats);
}

void Executor::runMoe(int l, RunStats &stats) {
  const MoeLayer &m = layers[l];
  const int E = static_cast<int>(m.experts), K = static_cast<int>(m.topK);
  const int64_t H = m.hidden;
  const int N = comm.size(), me = comm.rank();
  std::vector<int> tokens = myTokens();
  const int64_t n = static_cast<int64_t>(tokens.size());
  const float *x = f32(m.x);

  // The router still runs (its cost is real); its probabilities weight the
  // experts the trace chose.
  std::vector<float> probs(static_cast<size_t>(n * E));
  if (n > 0)
    cpu::gemm(false, false, n, E, H, x, f32(m.wg), probs.data());
  for (int64_t i = 0; i < n; ++i) {
    float *row = probs.data() + i * E;
    float mx = *std::max_element(row, row + E), sum = 0;
    for (int e = 0; e < E; ++e)
      sum += row[e] = std::exp(row[e] - mx);
    for (int e = 0; e < E; ++e)
      row[e] /= sum;
  }

  // The real routing and the loads (counts of every rank).
  std::vector<int64_t> mine(E, 0), all(static_cast<size_t>(N) * E);
  for (int t : tokens)
    for (int e : trace.tokens[t].experts[l])
      ++mine[e];
  comm.allgather(mine.data(), E, all.data(), "exchanging expert counts");
  std::vector<double> loads(E, 0.0);
  double total = 0;
  for (int r = 0; r < N; ++r)
    for (int e = 0; e < E; ++e) {
      loads[e] += static_cast<double>(all[r * E + e]);
      total += static_cast<double>(all[r * E + e]);
    }

  // Estimation quality (lina with a profile).
  if (mode == PlacementMode::Lina && profile) {
    if (l >= 1)
      for (int t : tokens) {
        std::vector<int> history(l);
        for (int i = 0; i < l; ++i)
          history[i] = trace.tokens[t].top1(i);
        stats.predicted += 1;
        stats.predictedRight +=
            profile->predictTop1(l, history.data()) == trace.tokens[t].top1(l);
      }
    if (total > 0) {
      double err = 0;
      for (int e = 0; e < E; ++e)
        err += std::fabs(estimate[l][e] - loads[e]);
      stats.loadError += err / total;
      stats.loadErrorSamples += 1;
    }
  }

  // Weights moved in phase 1 must be in place before the experts run.
  comm.waitTransfers("moving expert weights (phase 1)");
  staging.clear();

  // Whole rows: the per-expert counts of every rank.
  std::vector<int64_t> rows(E, 0);
  for (int e = 0; e < E; ++e)
    rows[e] = static_cast<int64_t>(loads[e]);

  // Phase 2: re-balance when the busiest device's real rows (balanced over
  // the replicas in place, whole rows) deviate from the estimate by more
  // than the threshold.
  if (mode == PlacementMode::Lina && total > 0) {
    double expected =
        profile ? current[l].maxDeviceLoad(estimate[l]) : total / N;
    double measured =
        static_cast<double>(lina::balanceRows(current[l], rows).maxRows());
    if (expected > 0 &&
        std::fabs(measured - expected) > o.phase2Threshold * expected) {
      std::string error;
      std::optional<LayerPlacement> p =
          lina::linaPlacement(loads, N, slots, error);
      if (!p)
        throw PlanError("MoE layer " + std::to_string(l) + ": " + error);
      schedule(l, *p, stats);
      comm.waitTransfers("moving expert weights (phase 2)");
      staging.clear();
      stats.phase2 += 1;
    }
  }
  stats.layerBatches += 1;
  const LayerPlacement &place = current[l];

  // Each assignment's replica: the rows of every expert are balanced over
  // its replicas in whole rows (balanceRows: the smallest possible busiest
  // device, no weight moves); expert e's assignments are numbered globally
  // (rank by rank, then in token order) and replica i serves the numbers
  // in [R_{i-1}, R_i), R_i the cumulative rows of replicas 0..i.
  lina::RowAssignment split = mode == PlacementMode::Static
                                  ? lina::splitByShares(place, rows)
                                  : lina::balanceRows(place, rows);
  if (total > 0)
    stats.imbalance += static_cast<double>(split.maxRows()) / split.meanRows();
  std::vector<std::vector<int64_t>> bounds(E);
  for (int e = 0; e < E; ++e) {
    int64_t cum = 0;
    for (size_t i = 0; i < place.replicas[e].size(); ++i)
      bounds[e].push_back(cum += split.rows[e][i]);
  }
  std::vector<int64_t> next(E, 0);
  for (int r = 0; r < me; ++r)
    for (int e = 0; e < E; ++e)
      next[e] += all[r * E + e];
  // dest[i * K + j]: device of assignment (token i, choice j).
  std::vector<int> dest(static_cast<size_t>(n * K));
  std::vector<int64_t> sendCounts(static_cast<size_t>(N) * E, 0);
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < K; ++j) {
      int e = trace.tokens[tokens[i]].experts[l][j];
      int64_t g = next[e]++;
      size_t rep = 0;
      while (rep + 1 < bounds[e].size() && g >= bounds[e][rep])
        ++rep;
      int d = place.replicas[e][rep].device;
      dest[i * K + j] = d;
      ++sendCounts[d * E + e];
    }
  std::vector<int64_t> recvCounts(static_cast<size_t>(N) * E);
  comm.alltoall(sendCounts.data(), E, recvCounts.data(),
                "exchanging token counts");

  // Pack rows by destination, then expert, then token order.
  std::vector<int64_t> sendRows(N, 0), recvRows(N, 0);
  std::vector<int64_t> slot(static_cast<size_t>(N) * E);
  int64_t offset = 0;
  for (int d = 0; d < N; ++d)
    for (int e = 0; e < E; ++e) {
      slot[d * E + e] = offset;
      offset += sendCounts[d * E + e];
      sendRows[d] += sendCounts[d * E + e];
      recvRows[d] += recvCounts[d * E + e];
    }
  std::vector<float> send(static_cast<size_t>(offset * H));
  std::vector<int64_t> position(static_cast<size_t>(n * K));
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < K; ++j) {
      int e = trace.tokens[tokens[i]].experts[l][j];
      int64_t row = slot[dest[i * K + j] * E + e]++;
      position[i * K + j] = row;
      std::memcpy(send.data() + row * H, x + i * H, H * sizeof(float));
    }
  int64_t received = 0;
  for (int d = 0; d < N; ++d)
    received += recvRows[d];
  std::vector<float> recv(static_cast<size_t>(received * H));
  comm.alltoallv(send.data(), sendRows, recv.data(), recvRows, H,
                 "sending tokens to the experts");

  // Run the hosted experts: gather each expert's rows from every source,
  // one GEMM pair, scatter the results back in place.
  std::vector<float> result(recv.size());
  std::vector<int64_t> sourceBase(N, 0);
  for (int s = 1; s < N; ++s)
    sourceBase[s] = sourceBase[s - 1] + recvRows[s - 1];
  std::vector<float> in, out;
  for (int e = 0; e < E; ++e) {
    int64_t rows = 0;
    for (int s = 0; s < N; ++s)
      rows += recvCounts[s * E + e];
    if (rows == 0)
      continue;
    in.resize(static_cast<size_t>(rows * H));
    out.resize(in.size());
    auto forEachBlock = [&](auto fn) {
      int64_t at = 0;
      for (int s = 0; s < N; ++s) {
        int64_t start = sourceBase[s];
        for (int f = 0; f < e; ++f)
          start += recvCounts[s * E + f];
        fn(start, recvCounts[s * E + e], at);
        at += recvCounts[s * E + e];
      }
    };
    forEachBlock([&](int64_t start, int64_t count, int64_t at) {
      std::memcpy(in.data() + at * H, recv.data() + start * H,
                  count * H * sizeof(float));
    });
    cpu::expertFfn(in.data(), expertWeights(l, e, false),
                   expertWeights(l, e, true), out.data(), 1, rows, H, m.ffnDim,
                   m.act);
    forEachBlock([&](int64_t start, int64_t count, int64_t at) {
      std::memcpy(result.data() + start * H, out.data() + at * H,
                  count * H * sizeof(float));
    });
  }
  std::vector<float> back(send.size());
  comm.alltoallv(result.data(), recvRows, back.data(), sendRows, H,
                 "returning expert outputs");

  // Combine: y[t] = sum_j p[t, e_j] * expert_j(x[t]); idle rows are zero.
  float *y = f32(m.out);
  std::fill(y, y + m.tokens * H, 0.0f);
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < K; ++j) {
      int e = trace.tokens[tokens[i]].experts[l][j];
      float w = probs[i * E + e];
      const float *row = back.data() + position[i * K + j] * H;
      for (int64_t h = 0; h < H; ++h)
        y[i * H + h] += w * row[h];
    }
}

double Executor::runBatch(int b, RunStats &stats, bool record) {
  batch = b;
  auto start = std::chrono::steady_clock::now();
  if (!layers.empty())
    prepare(0, stats);
  for (const Op &op : plan.ops) {
    int l = inChain[op.id];
    if (l >= 0) {
      if (op.id == layers[l].gate) {
        runMoe(l, stats);
        if (l + 1 < static_cast<int>(layers.size()))
          prepare(l + 1, stats);
      }
      continue;
    }
    runCompute(op);
    comm.poll();
  }
  double elapsed = seconds(start, std::chrono::steady_clock::now());
  if (record)
    for (int id : plan.outputs) {
      const float *p = f32(id);
      stats.outputs.emplace_back(p, p + plan.buffers[id].numElements());
    }
  return elapsed;
}

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
  auto serve = [&](PlacementMode mode, RunStats &stats, bool record,
                   int warmup) {
    Executor exec(plan, o, comm, *trace, prof, layers, batches, mode, slots);
    RunStats ignored;
    for (int w = 0; w < warmup; ++w) {
      comm.barrier("waiting for the other ranks before a warm-up batch");
      exec.runBatch(w % static_cast<int>(batches.size()), ignored, false);
    }
    for (size_t b = 0; b < batches.size(); ++b) {
      comm.barrier("waiting for the other ranks before a batch");
      double t = exec.runBatch(static_cast<int>(b), stats, record);
      stats.batchSeconds.push_back(comm.max(t, "exchanging batch times"));
    }
  };

  if (rank == 0 && !o.quiet)
    std::printf("infer: %s, %d ranks, placement %s, %zu MoE layers, %d "
                "requests in %zu batches of %d, %d expert slots per device\n",
                o.plan.c_str(), worldSize, toString(o.placement), layers.size(),
                o.requests, batches.size(), o.batch, slots);
  RunStats stats;
  serve(o.placement, stats, o.check, o.warmup);

  double sums[] = {stats.phase2,    stats.layerBatches,
                   stats.predicted, stats.predictedRight,
                   stats.loadError, stats.loadErrorSamples,
                   stats.imbalance};
  comm.sum(sums, 7, "exchanging statistics");
  if (rank == 0) {
    // Layer-batch counts and imbalances are identical on every rank; the
    // others are sums over the ranks' own tokens.
    PlacerStats total;
    total.phase2 = sums[0] / worldSize;
    total.layerBatches = sums[1] / worldSize;
    total.predicted = sums[2];
    total.predictedRight = sums[3];
    total.loadError = sums[4];
    total.loadErrorSamples = sums[5];
    total.imbalance = sums[6] / worldSize;
    total.bytesMoved = stats.bytesMoved;
    InferReport r =
        summarize(o, stats.batchSeconds, total, static_cast<int>(layers.size()),
                  slots, prof != nullptr);
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
                     o.phase2Threshold);
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
