//===- gpu_kernels.cpp - Benchmark of the cuda backend's kernels ----------===//
//
// Part of the Lina project.
//
// In one run, for realistic MoE sizes (8-64 experts, hidden 4096, 4k-64k
// tokens, top-2, capacity factor 1, bf16):
//   - the local experts' first GEMM as one strided-batched cuBLAS call
//     ([E, C, H] x [E, H, F]) against a dense GEMM of the same FLOPs
//     ([E*C, H] x [H, F]), in TFLOP/s;
//   - dispatch (slot assignment + permutation into [E, C, H]) and combine
//     (weighted un-permutation) against a device-to-device cudaMemcpy of
//     the expert buffer's bytes, in GB/s (bytes of the [E, C, H] buffer
//     per second).
// Reported like nccl-tests: size, min/avg/max time over the timed
// iterations after a warm-up, rate, baseline rate and ratio.
//
// usage: gpu_kernels [--quick] [--warmup N] [--iters N]
// Exit codes: 0 measured, 1 error, 2 bad usage, 77 no usable GPU (nothing
// measured; the reason is printed).
//
//===----------------------------------------------------------------------===//

#include "lina/rt/cuda/CudaCheck.h"
#include "lina/rt/cuda/CudaKernels.h"

#include <algorithm>
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
  LINA_CUDA_CHECK(cudaMemcpy(tmp, host.data(), n * sizeof(float),
                             cudaMemcpyHostToDevice));
  convert(tmp, DType::F32, dst, type, n, stream);
  LINA_CUDA_CHECK(cudaStreamSynchronize(stream));
  LINA_CUDA_CHECK(cudaFree(tmp));
}

struct Config {
  int64_t experts, tokens, hidden, ffn, topK;
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
  std::printf("# gpu_kernels: %s, sm_%d%d, %d SMs, %.1f GiB; bf16 storage, fp32 "
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

  std::printf("\n# Expert GEMM ([E,C,H] x [E,H,F], strided batched) vs dense GEMM "
              "of the same FLOPs ([E*C,H] x [H,F])\n");
  std::printf("#%8s %8s %7s %7s %14s %11s %11s %11s %9s %9s %7s\n", "experts",
              "tokens", "hidden", "ffn", "GFLOP", "min(us)", "avg(us)",
              "max(us)", "TFLOP/s", "dense", "ratio");
  for (const Config &c : configs) {
    int64_t cap = c.tokens * c.topK / c.experts;
    int64_t rows = c.experts * cap;
    void *buf = deviceAlloc(rows * c.hidden * es);
    void *w = deviceAlloc(c.experts * c.hidden * c.ffn * es);
    void *out = deviceAlloc(rows * c.ffn * es);
    fillUniform(buf, type, rows * c.hidden, 1.0f, 1, stream);
    fillUniform(w, type, c.experts * c.hidden * c.ffn, 0.02f, 2, stream);
    double flops = 2.0 * rows * c.hidden * c.ffn;
    Timing grouped = timeIt(stream, warmup, iters, [&] {
      gemm(blas, false, false, cap, c.ffn, c.hidden, buf, w, type, out, type,
           c.experts, cap * c.hidden, c.hidden * c.ffn, cap * c.ffn);
    });
    Timing dense = timeIt(stream, warmup, iters, [&] {
      gemm(blas, false, false, rows, c.ffn, c.hidden, buf, w, type, out, type);
    });
    double tf = flops / (grouped.avgUs * 1e-6) / 1e12;
    double tfDense = flops / (dense.avgUs * 1e-6) / 1e12;
    std::printf(" %8lld %8lld %7lld %7lld %14.1f %11.1f %11.1f %11.1f %9.1f %9.1f %7.3f\n",
                (long long)c.experts, (long long)c.tokens, (long long)c.hidden,
                (long long)c.ffn, flops / 1e9, grouped.minUs, grouped.avgUs,
                grouped.maxUs, tf, tfDense, tf / tfDense);
    for (void *p : {buf, w, out})
      LINA_CUDA_CHECK(cudaFree(p));
  }

  std::printf("\n# Dispatch (slots + permutation) and combine vs cudaMemcpy D2D of "
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
    std::vector<int32_t> ids(c.tokens * c.topK);
    std::vector<float> weights(c.tokens * c.topK, 0.5f);
    std::mt19937 rng(4);
    for (int64_t t = 0; t < c.tokens; ++t) {
      // top-k distinct experts, uniformly at random
      int32_t first = static_cast<int32_t>(rng() % c.experts);
      for (int64_t j = 0; j < c.topK; ++j)
        ids[t * c.topK + j] = static_cast<int32_t>((first + j) % c.experts);
    }
    auto *dIds = static_cast<int32_t *>(deviceAlloc(ids.size() * 4));
    auto *dW = static_cast<float *>(deviceAlloc(weights.size() * 4));
    auto *slots = static_cast<int32_t *>(deviceAlloc(ids.size() * 4));
    auto *kept = static_cast<int32_t *>(deviceAlloc(c.experts * 4));
    auto *err = static_cast<uint32_t *>(deviceAlloc(8));
    void *work = deviceAlloc(slotWorkspaceBytes(c.tokens, c.topK, c.experts));
    LINA_CUDA_CHECK(cudaMemcpy(dIds, ids.data(), ids.size() * 4,
                               cudaMemcpyHostToDevice));
    LINA_CUDA_CHECK(cudaMemcpy(dW, weights.data(), weights.size() * 4,
                               cudaMemcpyHostToDevice));
    Timing mc = timeIt(stream, warmup, iters, [&] {
      LINA_CUDA_CHECK(cudaMemcpyAsync(copy, buf, bufBytes,
                                      cudaMemcpyDeviceToDevice, stream));
    });
    Timing disp = timeIt(stream, warmup, iters, [&] {
      assignSlots(dIds, c.tokens, c.topK, c.experts, cap, work, slots, kept, err,
                  stream);
      dispatch(x, dIds, slots, kept, buf, type, c.tokens, c.topK, c.hidden,
               c.experts, cap, stream);
    });
    Timing comb = timeIt(stream, warmup, iters, [&] {
      assignSlots(dIds, c.tokens, c.topK, c.experts, cap, work, slots, kept, err,
                  stream);
      combine(buf, dIds, slots, dW, y, type, c.tokens, c.topK, c.hidden,
              c.experts, cap, stream);
    });
    double gbMemcpy = bufBytes / (mc.avgUs * 1e-6) / 1e9;
    for (auto [name, t] : {std::pair<const char *, Timing>{"dispatch", disp},
                           std::pair<const char *, Timing>{"combine", comb}}) {
      double gb = bufBytes / (t.avgUs * 1e-6) / 1e9;
      std::printf(" %8lld %8lld %7lld %8s %14lld %11.1f %11.1f %11.1f %9.1f %9.1f %7.3f\n",
                  (long long)c.experts, (long long)c.tokens,
                  (long long)c.hidden, name, (long long)bufBytes, t.minUs,
                  t.avgUs, t.maxUs, gb, gbMemcpy, gb / gbMemcpy);
    }
    for (void *p : {x, y, buf, copy, work})
      LINA_CUDA_CHECK(cudaFree(p));
    for (void *p : {(void *)dIds, (void *)dW, (void *)slots, (void *)kept,
                    (void *)err})
      LINA_CUDA_CHECK(cudaFree(p));
  }
  LINA_CUBLAS_CHECK(cublasDestroy(blas));
  LINA_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
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
        std::fprintf(stderr, "gpu_kernels: invalid value '%s' for %s (an "
                             "integer >= %d)\n", argv[i], a.c_str(), min);
        std::exit(2);
      }
      return static_cast<int>(v);
    };
    if (a == "--quick") {
      quick = true;
      warmup = 1;
      iters = 2;
    } else if (a == "--warmup") {
      warmup = number(0);
    } else if (a == "--iters") {
      iters = number(1);
    } else if (a == "--help" || a == "-h") {
      std::printf("usage: gpu_kernels [--quick] [--warmup N] [--iters N]\n"
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
