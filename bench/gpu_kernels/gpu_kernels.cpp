//===- gpu_kernels.cpp - Benchmark of the cuda backend's kernels ----------===//
//
// Part of the Lina project.
//
// In one run, for realistic MoE sizes (8-64 experts, hidden 4096, 4k-64k
// tokens, top-2, capacity factor 1, uniform routing, bf16):
//   - the local experts' first GEMM over the real per-expert counts as one
//     cuBLAS grouped GEMM (cublasGemmGroupedBatchedEx), and as the strided
//     batched GEMM over the padded capacity that expert_ffn runs, each
//     against one dense GEMM of the same real rows (equal FLOPs), in
//     TFLOP/s of real work;
//   - dispatch (slot assignment + permutation into [E, C, H]) and combine
//     (weighted un-permutation) against a device-to-device cudaMemcpy of
//     the expert buffer's bytes, in GB/s (bytes of the [E, C, H] buffer
//     per second).
// Every output is checked: slots and kept counts exactly against the CPU
// order, sampled expert-buffer rows exactly (a token's row or zeros),
// sampled combined tokens and GEMM entries against fp32 sums on the host.
// A failed check prints CHECK FAILED and the exit code is 1.
// Reported like nccl-tests: size, min/avg/max time over the timed
// iterations after a warm-up, rate, baseline rate and ratio.
//
// usage: gpu_kernels [--quick] [--warmup N] [--iters N] | --probe
// Exit codes: 0 measured, 1 error, 2 bad usage, 77 no usable GPU (nothing
// measured; the reason is printed).
//
//===----------------------------------------------------------------------===//

#include "lina/rt/cuda/CudaCheck.h"
#include "lina/rt/cuda/CudaKernels.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

using namespace lina::rt;
using namespace lina::rt::cuda;

namespace {
constexpr int kNoGpu = 77;

struct Timing {
  double minUs = 0, avgUs = 0, maxUs = 0;
};

/// Runs `body` `warmup` times, then times `iters` runs one by one.
Timing timeIt(cudaStream_t stream, int warmup, int iters,
              const std::function<void()> &body) {
  for (int i = 0; i < warmup; ++i)
    body();
  cudaEvent_t start, stop;
  LINA_CUDA_CHECK(cudaEventCreate(&start));
  LINA_CUDA_CHECK(cudaEventCreate(&stop));
  Timing t;
  t.minUs = 1e300;
  for (int i = 0; i < iters; ++i) {
    LINA_CUDA_CHECK(cudaEventRecord(start, stream));
    body();
    LINA_CUDA_CHECK(cudaEventRecord(stop, stream));
    LINA_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    LINA_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    double us = ms * 1e3;
    t.minUs = std::min(t.minUs, us);
    t.maxUs = std::max(t.maxUs, us);
    t.avgUs += us / iters;
  }
  LINA_CUDA_CHECK(cudaEventDestroy(start));
  LINA_CUDA_CHECK(cudaEventDestroy(stop));
  return t;
}

void *deviceAlloc(size_t bytes) {
  void *p = nullptr;
  LINA_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 1)));
  return p;
}

/// Fills `n` bf16/f32 values uniformly in [-a, a] on the device.
void fillUniform(void *dst, DType type, size_t n, float a, unsigned seed,
                 cudaStream_t stream) {
  std::vector<float> host(n);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-a, a);
  for (float &x : host)
    x = dist(rng);
  float *tmp = static_cast<float *>(deviceAlloc(n * sizeof(float)));
  LINA_CUDA_CHECK(
      cudaMemcpy(tmp, host.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  convert(tmp, DType::F32, dst, type, n, stream);
  LINA_CUDA_CHECK(cudaStreamSynchronize(stream));
  LINA_CUDA_CHECK(cudaFree(tmp));
}

struct Config {
  int64_t experts, tokens, hidden, ffn, topK;
};

/// Top-k distinct experts per token, uniformly at random (ids[t*k + j]).
std::vector<int32_t> randomRouting(const Config &c, unsigned seed) {
  std::vector<int32_t> ids(c.tokens * c.topK);
  std::mt19937 rng(seed);
  for (int64_t t = 0; t < c.tokens; ++t) {
    int32_t first = static_cast<int32_t>(rng() % c.experts);
    for (int64_t j = 0; j < c.topK; ++j)
      ids[t * c.topK + j] = static_cast<int32_t>((first + j) % c.experts);
  }
  return ids;
}

/// The CPU backend's slot order: for j, for t; -1 when dropped.
std::vector<int32_t> hostSlots(const std::vector<int32_t> &ids, const Config &c,
                               int64_t cap, std::vector<int64_t> &kept) {
  std::vector<int32_t> slots(ids.size(), -1);
  std::vector<int64_t> fill(c.experts, 0);
  for (int64_t j = 0; j < c.topK; ++j)
    for (int64_t t = 0; t < c.tokens; ++t) {
      int64_t pos = fill[ids[t * c.topK + j]]++;
      if (pos < cap)
        slots[j * c.tokens + t] = static_cast<int32_t>(pos);
    }
  kept.assign(c.experts, 0);
  for (int64_t e = 0; e < c.experts; ++e)
    kept[e] = std::min(fill[e], cap);
  return slots;
}

float bf16ToFloat(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/// `n` bf16 values at `src` (device), as floats; `pitch` elements apart.
std::vector<float> fetch(const void *src, int64_t n, int64_t pitch = 1) {
  std::vector<uint16_t> raw(n);
  LINA_CUDA_CHECK(cudaMemcpy2D(raw.data(), 2, src, pitch * 2, 2, n,
                               cudaMemcpyDeviceToHost));
  std::vector<float> out(n);
  for (int64_t i = 0; i < n; ++i)
    out[i] = bf16ToFloat(raw[i]);
  return out;
}

/// Counts failed output checks; prints the first few.
struct Checker {
  int failures = 0, checked = 0;
  void expect(bool ok, const std::string &what) {
    ++checked;
    if (ok)
      return;
    if (++failures <= 5)
      std::printf("CHECK FAILED: %s\n", what.c_str());
  }
  static bool close(double got, double want, double abs, double rel) {
    return std::isfinite(got) &&
           std::fabs(got - want) <= abs + rel * std::fabs(want);
  }
};

int run(bool quick, int warmup, int iters) {
  std::string reason;
  if (!cudaAvailable(&reason)) {
    std::printf("gpu_kernels: no CUDA GPU: %s; nothing measured (exit %d)\n",
                reason.c_str(), kNoGpu);
    return kNoGpu;
  }
  cudaDeviceProp prop{};
  LINA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf(
      "# gpu_kernels: %s, sm_%d%d, %d SMs, %.1f GiB; bf16 storage, fp32 "
      "accumulation; warm-up %d, timed iterations %d\n",
      prop.name, prop.major, prop.minor, prop.multiProcessorCount,
      prop.totalGlobalMem / 1073741824.0, warmup, iters);
  std::vector<Config> configs;
  if (quick) {
    configs = {{8, 1024, 512, 512, 2}};
  } else {
    for (int64_t e : {8, 64})
      for (int64_t t : {4096, 16384, 65536})
        configs.push_back({e, t, 4096, 4096, 2});
  }
  cudaStream_t stream;
  LINA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cublasHandle_t blas;
  LINA_CUBLAS_CHECK(cublasCreate(&blas));
  LINA_CUBLAS_CHECK(cublasSetStream(blas, stream));
  const DType type = DType::BF16;
  const int64_t es = dtypeBytes(type);
  Checker check;
  std::mt19937 sampler(99);

  std::printf(
      "\n# Expert GEMM [E,C,H] x [E,H,F] over the real per-expert "
      "counts (capacity factor 1, uniform top-2 routing). TFLOP/s count "
      "only the real rows.\n#   grouped: one cublasGemmGroupedBatchedEx "
      "over the kept rows; padded: strided batched over the capacity "
      "(what expert_ffn runs); dense: one GEMM of the same real rows\n");
  std::printf("#%8s %8s %7s %7s %10s %11s %11s %11s %9s %9s %9s %7s %7s\n",
              "experts", "tokens", "hidden", "ffn", "GFLOP", "min(us)",
              "avg(us)", "max(us)", "grouped", "padded", "dense", "grp/dns",
              "pad/dns");
  for (const Config &c : configs) {
    int64_t cap = c.tokens * c.topK / c.experts;
    int64_t rows = c.experts * cap;
    std::vector<int32_t> ids = randomRouting(c, 4);
    std::vector<int64_t> kept;
    hostSlots(ids, c, cap, kept);
    int64_t real = 0;
    for (int64_t k : kept)
      real += k;
    void *buf = deviceAlloc(rows * c.hidden * es);
    void *w = deviceAlloc(c.experts * c.hidden * c.ffn * es);
    void *out = deviceAlloc(rows * c.ffn * es);
    void *padded = deviceAlloc(rows * c.ffn * es);
    void *scratch = deviceAlloc(groupedGemmScratchBytes(c.experts));
    fillUniform(buf, type, rows * c.hidden, 1.0f, 1, stream);
    fillUniform(w, type, c.experts * c.hidden * c.ffn, 0.02f, 2, stream);
    double flops = 2.0 * real * c.hidden * c.ffn;
    Timing grouped = timeIt(stream, warmup, iters, [&] {
      groupedGemm(blas, kept, c.ffn, c.hidden, buf, cap * c.hidden, w,
                  c.hidden * c.ffn, type, out, cap * c.ffn, scratch);
    });
    Timing pad = timeIt(stream, warmup, iters, [&] {
      gemm(blas, false, false, cap, c.ffn, c.hidden, buf, w, type, padded, type,
           c.experts, cap * c.hidden, c.hidden * c.ffn, cap * c.ffn);
    });
    Timing dense = timeIt(stream, warmup, iters, [&] {
      gemm(blas, false, false, real, c.ffn, c.hidden, buf, w, type, padded,
           type);
    });
    // Outputs: the grouped result against an fp32 dot product on the host
    // (bf16 output: 2^-8 relative rounding), at sampled entries; and the
    // padded (strided batched) result on the same entries.
    gemm(blas, false, false, cap, c.ffn, c.hidden, buf, w, type, padded, type,
         c.experts, cap * c.hidden, c.hidden * c.ffn, cap * c.ffn);
    groupedGemm(blas, kept, c.ffn, c.hidden, buf, cap * c.hidden, w,
                c.hidden * c.ffn, type, out, cap * c.ffn, scratch);
    LINA_CUDA_CHECK(cudaStreamSynchronize(stream));
    for (int s = 0; s < 64; ++s) {
      int64_t e = sampler() % c.experts;
      if (kept[e] == 0)
        continue;
      int64_t r = sampler() % kept[e], f = sampler() % c.ffn;
      auto *bufRow = static_cast<char *>(buf) + ((e * cap + r) * c.hidden) * es;
      auto *wCol = static_cast<char *>(w) + (e * c.hidden * c.ffn + f) * es;
      std::vector<float> x = fetch(bufRow, c.hidden);
      std::vector<float> col = fetch(wCol, c.hidden, c.ffn);
      double want = 0;
      for (int64_t h = 0; h < c.hidden; ++h)
        want += double(x[h]) * col[h];
      int64_t at = (e * cap + r) * c.ffn + f;
      float got = fetch(static_cast<char *>(out) + at * es, 1)[0];
      float gotPad = fetch(static_cast<char *>(padded) + at * es, 1)[0];
      std::string where = "expert " + std::to_string(e) + " row " +
                          std::to_string(r) + " col " + std::to_string(f) +
                          ": want " + std::to_string(want);
      check.expect(Checker::close(got, want, 2e-3, 1e-2),
                   "grouped GEMM " + where + ", got " + std::to_string(got));
      check.expect(Checker::close(gotPad, want, 2e-3, 1e-2),
                   "padded GEMM " + where + ", got " + std::to_string(gotPad));
    }
    double tf = flops / (grouped.avgUs * 1e-6) / 1e12;
    double tfPad = flops / (pad.avgUs * 1e-6) / 1e12;
    double tfDense = flops / (dense.avgUs * 1e-6) / 1e12;
    std::printf(" %8lld %8lld %7lld %7lld %10.1f %11.1f %11.1f %11.1f %9.1f "
                "%9.1f %9.1f %7.3f %7.3f\n",
                (long long)c.experts, (long long)c.tokens, (long long)c.hidden,
                (long long)c.ffn, flops / 1e9, grouped.minUs, grouped.avgUs,
                grouped.maxUs, tf, tfPad, tfDense, tf / tfDense,
                tfPad / tfDense);
    for (void *p : {buf, w, out, padded, scratch})
      LINA_CUDA_CHECK(cudaFree(p));
  }

  std::printf(
      "\n# Dispatch (slots + permutation) and combine vs cudaMemcpy D2D of "
      "the [E,C,H] buffer's bytes\n");
  std::printf("#%8s %8s %7s %8s %14s %11s %11s %11s %9s %9s %7s\n", "experts",
              "tokens", "hidden", "op", "size(B)", "min(us)", "avg(us)",
              "max(us)", "GB/s", "memcpy", "ratio");
  for (const Config &c : configs) {
    int64_t cap = c.tokens * c.topK / c.experts;
    int64_t bufBytes = c.experts * cap * c.hidden * es;
    void *x = deviceAlloc(c.tokens * c.hidden * es);
    void *y = deviceAlloc(c.tokens * c.hidden * es);
    void *buf = deviceAlloc(bufBytes);
    void *copy = deviceAlloc(bufBytes);
    fillUniform(x, type, c.tokens * c.hidden, 1.0f, 3, stream);
    std::vector<int32_t> ids = randomRouting(c, 4);
    std::vector<float> weights(c.tokens * c.topK);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    for (float &v : weights)
      v = unit(rng);
    auto *dIds = static_cast<int32_t *>(deviceAlloc(ids.size() * 4));
    auto *dW = static_cast<float *>(deviceAlloc(weights.size() * 4));
    auto *slots = static_cast<int32_t *>(deviceAlloc(ids.size() * 4));
    auto *kept = static_cast<int32_t *>(deviceAlloc(c.experts * 4));
    auto *err = static_cast<uint32_t *>(deviceAlloc(8));
    void *work = deviceAlloc(slotWorkspaceBytes(c.tokens, c.topK, c.experts));
    LINA_CUDA_CHECK(
        cudaMemcpy(dIds, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice));
    LINA_CUDA_CHECK(cudaMemcpy(dW, weights.data(), weights.size() * 4,
                               cudaMemcpyHostToDevice));
    Timing mc = timeIt(stream, warmup, iters, [&] {
      LINA_CUDA_CHECK(cudaMemcpyAsync(copy, buf, bufBytes,
                                      cudaMemcpyDeviceToDevice, stream));
    });
    Timing disp = timeIt(stream, warmup, iters, [&] {
      assignSlots(dIds, c.tokens, c.topK, c.experts, cap, work, slots, kept,
                  err, stream);
      dispatch(x, dIds, slots, kept, buf, type, c.tokens, c.topK, c.hidden,
               c.experts, cap, stream);
    });
    Timing comb = timeIt(stream, warmup, iters, [&] {
      assignSlots(dIds, c.tokens, c.topK, c.experts, cap, work, slots, kept,
                  err, stream);
      combine(buf, dIds, slots, dW, y, type, c.tokens, c.topK, c.hidden,
              c.experts, cap, stream);
    });
    // Outputs: slots and kept counts exactly as the CPU order; sampled
    // rows of the expert buffer (a token's row, or zeros past kept[e]);
    // sampled combined tokens against an fp32 sum on the host.
    LINA_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::vector<int64_t> wantKept;
    std::vector<int32_t> want = hostSlots(ids, c, cap, wantKept);
    std::vector<int32_t> gotSlots(ids.size()), gotKept(c.experts);
    LINA_CUDA_CHECK(cudaMemcpy(gotSlots.data(), slots, ids.size() * 4,
                               cudaMemcpyDeviceToHost));
    LINA_CUDA_CHECK(cudaMemcpy(gotKept.data(), kept, c.experts * 4,
                               cudaMemcpyDeviceToHost));
    check.expect(gotSlots == want, "slots differ from the CPU order");
    for (int64_t e = 0; e < c.experts; ++e)
      check.expect(gotKept[e] == wantKept[e],
                   "kept[" + std::to_string(e) +
                       "] = " + std::to_string(gotKept[e]) + ", want " +
                       std::to_string(wantKept[e]));
    std::vector<int64_t> tokenAt(c.experts * cap, -1);
    for (int64_t j = 0; j < c.topK; ++j)
      for (int64_t t = 0; t < c.tokens; ++t)
        if (int32_t pos = want[j * c.tokens + t]; pos >= 0)
          tokenAt[ids[t * c.topK + j] * cap + pos] = t;
    for (int s = 0; s < 256; ++s) {
      int64_t row = sampler() % (c.experts * cap);
      std::vector<float> got =
          fetch(static_cast<char *>(buf) + row * c.hidden * es, c.hidden);
      std::vector<float> ref(c.hidden, 0.0f);
      if (tokenAt[row] >= 0)
        ref = fetch(static_cast<char *>(x) + tokenAt[row] * c.hidden * es,
                    c.hidden);
      check.expect(got == ref,
                   "dispatch row " + std::to_string(row) +
                       (tokenAt[row] >= 0
                            ? " (token " + std::to_string(tokenAt[row]) + ")"
                            : " (unused: zeros)"));
    }
    for (int s = 0; s < 64; ++s) {
      int64_t t = sampler() % c.tokens;
      std::vector<double> sum(c.hidden, 0.0);
      for (int64_t j = 0; j < c.topK; ++j) {
        int32_t pos = want[j * c.tokens + t];
        if (pos < 0)
          continue;
        int64_t row = ids[t * c.topK + j] * cap + pos;
        std::vector<float> r =
            fetch(static_cast<char *>(buf) + row * c.hidden * es, c.hidden);
        for (int64_t h = 0; h < c.hidden; ++h)
          sum[h] += double(weights[t * c.topK + j]) * r[h];
      }
      std::vector<float> got =
          fetch(static_cast<char *>(y) + t * c.hidden * es, c.hidden);
      bool ok = true;
      for (int64_t h = 0; h < c.hidden && ok; ++h)
        ok = Checker::close(got[h], sum[h], 1e-3, 1e-2);
      check.expect(ok, "combine token " + std::to_string(t));
    }
    double gbMemcpy = bufBytes / (mc.avgUs * 1e-6) / 1e9;
    for (auto [name, t] : {std::pair<const char *, Timing>{"dispatch", disp},
                           std::pair<const char *, Timing>{"combine", comb}}) {
      double gb = bufBytes / (t.avgUs * 1e-6) / 1e9;
      std::printf(" %8lld %8lld %7lld %8s %14lld %11.1f %11.1f %11.1f %9.1f "
                  "%9.1f %7.3f\n",
                  (long long)c.experts, (long long)c.tokens,
                  (long long)c.hidden, name, (long long)bufBytes, t.minUs,
                  t.avgUs, t.maxUs, gb, gbMemcpy, gb / gbMemcpy);
    }
    for (void *p : {x, y, buf, copy, work})
      LINA_CUDA_CHECK(cudaFree(p));
    for (void *p :
         {(void *)dIds, (void *)dW, (void *)slots, (void *)kept, (void *)err})
      LINA_CUDA_CHECK(cudaFree(p));
  }
  LINA_CUBLAS_CHECK(cublasDestroy(blas));
  LINA_CUDA_CHECK(cudaStreamDestroy(stream));
  std::printf("\n# output checks: %d of %d failed\n", check.failures,
              check.checked);
  return check.failures ? 1 : 0;
}
} // namespace

int main(int argc, char **argv) {
  bool quick = false;
  int warmup = 5, iters = 20;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto number = [&](int min) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "gpu_kernels: missing value for %s\n", a.c_str());
        std::exit(2);
      }
      char *end = nullptr;
      long v = std::strtol(argv[++i], &end, 10);
      if (*end || v < min) {
        std::fprintf(stderr,
                     "gpu_kernels: invalid value '%s' for %s (an "
                     "integer >= %d)\n",
                     argv[i], a.c_str(), min);
        std::exit(2);
      }
      return static_cast<int>(v);
    };
    if (a == "--probe") {
      // Is a usable GPU present? Exit 0 (named) or 77 (with the reason).
      std::string why;
      if (!cudaAvailable(&why)) {
        std::printf("no CUDA GPU: %s\n", why.c_str());
        return kNoGpu;
      }
      cudaDeviceProp prop{};
      if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        std::printf("cudaGetDeviceProperties failed\n");
        return 1;
      }
      std::printf("CUDA GPU: %s (sm_%d%d)\n", prop.name, prop.major,
                  prop.minor);
      return 0;
    } else if (a == "--quick") {
      quick = true;
      warmup = 1;
      iters = 2;
    } else if (a == "--warmup") {
      warmup = number(0);
    } else if (a == "--iters") {
      iters = number(1);
    } else if (a == "--help" || a == "-h") {
      std::printf("usage: gpu_kernels [--quick] [--warmup N] [--iters N]\n"
                  "       gpu_kernels --probe   (is a usable GPU present?)\n"
                  "exit 77: no usable CUDA GPU (nothing measured)\n");
      return 0;
    } else {
      std::fprintf(stderr, "gpu_kernels: unknown option '%s' (see --help)\n",
                   a.c_str());
      return 2;
    }
  }
  try {
    return run(quick, warmup, iters);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "gpu_kernels: error: %s\n", e.what());
    return 1;
  }
}
