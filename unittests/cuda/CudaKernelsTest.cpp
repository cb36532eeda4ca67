//===- CudaKernelsTest.cpp - CUDA kernels against reference loops ---------===//
//
// Part of the Lina project.
//
// Every kernel against a plain loop written here, on small f32 sizes
// (tolerance: 1e-5 absolute + 1e-5 relative unless stated), and the bf16
// GEMM against an f32 reference with a looser tolerance. Index results
// (top-k ids, slots) must match exactly. Without a GPU each test is
// skipped with the reason.
//
//===----------------------------------------------------------------------===//

#include "GpuTestUtil.h"

#include "lina/rt/cuda/CudaKernels.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace lina::rt;
using namespace lina::rt::cuda;
using namespace lina::rt::cuda::test;

namespace {

//===----------------------------------------------------------------------===//
// Reference loops
//===----------------------------------------------------------------------===//

std::vector<float> softmaxRows(const std::vector<float> &logits, int64_t t,
                               int64_t e) {
  std::vector<float> p(logits);
  for (int64_t i = 0; i < t; ++i) {
    float *row = p.data() + i * e;
    float mx = *std::max_element(row, row + e);
    float sum = 0;
    for (int64_t j = 0; j < e; ++j)
      sum += std::exp(row[j] - mx);
    for (int64_t j = 0; j < e; ++j)
      row[j] = std::exp(row[j] - mx) / sum;
  }
  return p;
}

void refTopK(const std::vector<float> &p, int64_t t, int64_t e, int64_t k,
             std::vector<int32_t> &ids, std::vector<float> &w) {
  ids.assign(t * k, 0);
  w.assign(t * k, 0);
  for (int64_t i = 0; i < t; ++i) {
    std::vector<int32_t> order(e);
    std::iota(order.begin(), order.end(), 0);
    const float *row = p.data() + i * e;
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    for (int64_t j = 0; j < k; ++j) {
      ids[i * k + j] = order[j];
      w[i * k + j] = row[order[j]];
    }
  }
}

/// slots[j*T+t] in the order "for j, for t", -1 if dropped or invalid.
std::vector<int32_t> refSlots(const std::vector<int32_t> &ids, int64_t t,
                              int64_t k, int64_t e, int64_t c) {
  std::vector<int32_t> slots(t * k, -1);
  std::vector<int64_t> fill(e, 0);
  for (int64_t j = 0; j < k; ++j)
    for (int64_t i = 0; i < t; ++i) {
      int32_t x = ids[i * k + j];
      if (x < 0 || x >= e)
        continue;
      int64_t pos = fill[x]++;
      if (pos < c)
        slots[j * t + i] = static_cast<int32_t>(pos);
    }
  return slots;
}

/// Positions in use per expert: min(capacity, valid assignments to it).
std::vector<int32_t> refKept(const std::vector<int32_t> &ids, int64_t e,
                             int64_t c) {
  std::vector<int32_t> kept(e, 0);
  for (int32_t x : ids)
    if (x >= 0 && x < e && kept[x] < c)
      ++kept[x];
  return kept;
}

/// Expert ids with a skew: about half of the assignments go to expert 0.
std::vector<int32_t> skewedIds(int64_t t, int64_t k, int64_t e, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(t * k);
  for (int32_t &x : ids)
    x = rng() % 2 ? 0 : static_cast<int32_t>(rng() % e);
  return ids;
}

float refAct(Activation act, float x) {
  switch (act) {
  case Activation::None:
    return x;
  case Activation::Relu:
    return x > 0 ? x : 0;
  case Activation::Gelu:
    return 0.5f * x *
           (1 + std::tanh(0.7978845608f * (x + 0.044715f * x * x * x)));
  case Activation::Silu:
    return x / (1 + std::exp(-x));
  }
  return x;
}

/// Central difference of refAct in double, as the derivative reference.
double refActGrad(Activation act, float x) {
  if (act == Activation::Relu)
    return x > 0 ? 1 : 0;
  double h = 1e-3;
  auto f = [&](double v) {
    switch (act) {
    case Activation::Gelu:
      return 0.5 * v *
             (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    case Activation::Silu:
      return v / (1 + std::exp(-v));
    default:
      return v;
    }
  };
  return (f(x + h) - f(x - h)) / (2 * h);
}

/// C[m,n] = op(A) op(B) in double.
std::vector<float> refGemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                           const std::vector<float> &a,
                           const std::vector<float> &b, int64_t offA = 0,
                           int64_t offB = 0) {
  std::vector<float> c(m * n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t l = 0; l < k; ++l)
        s += double(a[offA + (ta ? l * m + i : i * k + l)]) *
             double(b[offB + (tb ? j * k + l : l * n + j)]);
      c[i * n + j] = static_cast<float>(s);
    }
  return c;
}

class CudaKernels : public ::testing::Test {
protected:
  void SetUp() override {
    LINA_REQUIRE_GPU();
    LINA_CUDA_CHECK(cudaStreamCreate(&stream));
    LINA_CUBLAS_CHECK(cublasCreate(&blas));
    LINA_CUBLAS_CHECK(cublasSetStream(blas, stream));
  }
  void TearDown() override {
    if (blas)
      cublasDestroy(blas);
    if (stream)
      cudaStreamDestroy(stream);
  }
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  DeviceArena mem;
};
} // namespace

//===----------------------------------------------------------------------===//
// Gate
//===----------------------------------------------------------------------===//

TEST_F(CudaKernels, GateTopKMatchesReferenceIncludingTies) {
  const int64_t t = 37, e = 8, k = 3;
  std::vector<float> logits = uniform(t * e, -2, 2, 1);
  for (int64_t i = 0; i < t; ++i) {
    if (i % 5 == 0) // all tied: experts 0, 1, 2
      std::fill(logits.begin() + i * e, logits.begin() + (i + 1) * e, 0.25f);
    if (i % 7 == 1) { // two tied maxima at 6 and 3: 3 first
      logits[i * e + 6] = 5.0f;
      logits[i * e + 3] = 5.0f;
    }
  }
  std::vector<int32_t> wantIds;
  std::vector<float> wantW;
  refTopK(softmaxRows(logits, t, e), t, e, k, wantIds, wantW);
  float *dLogits = mem.upload(logits), *dW = mem.alloc<float>(t * k);
  int32_t *dIds = mem.alloc<int32_t>(t * k);
  gateTopK(dLogits, dIds, dW, t, e, k, stream);
  EXPECT_EQ(mem.download(dIds, t * k), wantIds);
  EXPECT_LE(worstError(mem.download(dW, t * k), wantW, 1e-6, 1e-5), 1.0);
  EXPECT_EQ(mem.download(dIds, t * k)[1 * k + 0], 3);
  EXPECT_EQ(mem.download(dIds, t * k)[1 * k + 1], 6);
}

TEST_F(CudaKernels, GateGradLogitsMatchesReference) {
  const int64_t t = 29, e = 6, k = 2;
  std::vector<float> logits = uniform(t * e, -1, 1, 2);
  std::vector<float> dw = uniform(t * k, -1, 1, 3);
  std::vector<float> p = softmaxRows(logits, t, e);
  std::vector<int32_t> ids;
  std::vector<float> w;
  refTopK(p, t, e, k, ids, w);
  std::vector<float> want(t * e);
  for (int64_t i = 0; i < t; ++i) {
    std::vector<float> dp(e, 0);
    for (int64_t j = 0; j < k; ++j)
      dp[ids[i * k + j]] += dw[i * k + j];
    float dot = 0;
    for (int64_t x = 0; x < e; ++x)
      dot += dp[x] * p[i * e + x];
    for (int64_t x = 0; x < e; ++x)
      want[i * e + x] = p[i * e + x] * (dp[x] - dot);
  }
  float *out = mem.alloc<float>(t * e);
  gateGradLogits(mem.upload(logits), mem.upload(dw), mem.upload(ids), out, t, e,
                 k, stream);
  EXPECT_LE(worstError(mem.download(out, t * e), want, 1e-6, 1e-5), 1.0);
}

//===----------------------------------------------------------------------===//
// Slots
//===----------------------------------------------------------------------===//

struct SlotCase {
  int64_t tokens, k, experts, capacity;
  bool skewed;
};

class CudaSlots : public CudaKernels,
                  public ::testing::WithParamInterface<SlotCase> {};

TEST_P(CudaSlots, MatchCpuOrderExactly) {
  SlotCase c = GetParam();
  std::vector<int32_t> ids;
  if (c.skewed) {
    ids = skewedIds(c.tokens, c.k, c.experts, 7);
  } else {
    std::mt19937 rng(11);
    ids.resize(c.tokens * c.k);
    for (int32_t &x : ids)
      x = static_cast<int32_t>(rng() % c.experts);
  }
  std::vector<int32_t> want =
      refSlots(ids, c.tokens, c.k, c.experts, c.capacity);
  void *work = mem.alloc<char>(slotWorkspaceBytes(c.tokens, c.k, c.experts));
  int32_t *slots = mem.alloc<int32_t>(c.tokens * c.k);
  int32_t *kept = mem.alloc<int32_t>(c.experts);
  uint32_t *err = mem.alloc<uint32_t>(2);
  assignSlots(mem.upload(ids), c.tokens, c.k, c.experts, c.capacity, work,
              slots, kept, err, stream);
  EXPECT_EQ(mem.download(slots, c.tokens * c.k), want);
  EXPECT_EQ(mem.download(kept, c.experts), refKept(ids, c.experts, c.capacity));
  EXPECT_EQ(mem.download(err, 2)[0], 0xffffffffu);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaSlots,
    ::testing::Values(SlotCase{7, 1, 3, 10, false},      // one partial warp
                      SlotCase{1000, 2, 8, 150, true},   // drops on expert 0
                      SlotCase{5000, 3, 64, 100, false}, // many chunks
                      SlotCase{300, 2, 5000, 2, false},  // few warps per block
                      SlotCase{513, 2, 4, 10000, true},  // nothing dropped
                      SlotCase{0, 2, 4, 8, false}));     // no tokens

TEST_F(CudaKernels, SlotsAllTokensToOneExpert) {
  const int64_t t = 700, k = 1, e = 4, c = 100;
  std::vector<int32_t> ids(t * k, 2);
  void *work = mem.alloc<char>(slotWorkspaceBytes(t, k, e));
  int32_t *slots = mem.alloc<int32_t>(t * k);
  uint32_t *err = mem.alloc<uint32_t>(2);
  int32_t *kept = mem.alloc<int32_t>(e);
  assignSlots(mem.upload(ids), t, k, e, c, work, slots, kept, err, stream);
  std::vector<int32_t> got = mem.download(slots, t * k);
  EXPECT_EQ(mem.download(kept, e), (std::vector<int32_t>{0, 0, 100, 0}));
  for (int64_t i = 0; i < t; ++i)
    ASSERT_EQ(got[i], i < c ? i : -1) << "token " << i;
}

TEST_F(CudaKernels, SlotsReportTheFirstOutOfRangeExpert) {
  const int64_t t = 40, k = 2, e = 8;
  std::vector<int32_t> ids = skewedIds(t, k, e, 5);
  ids[3 * k + 1] = -1; // assignment j*T+t = 43
  ids[10 * k + 0] = 9; // assignment 10: the first in slot order
  void *work = mem.alloc<char>(slotWorkspaceBytes(t, k, e));
  int32_t *slots = mem.alloc<int32_t>(t * k);
  uint32_t *err = mem.alloc<uint32_t>(2);
  int32_t *kept = mem.alloc<int32_t>(e);
  assignSlots(mem.upload(ids), t, k, e, 100, work, slots, kept, err, stream);
  std::vector<uint32_t> got = mem.download(err, 2);
  EXPECT_EQ(mem.download(kept, e), refKept(ids, e, 100));
  EXPECT_EQ(got[0], 10u);
  EXPECT_EQ(static_cast<int32_t>(got[1]), 9);
  EXPECT_EQ(mem.download(slots, t * k), refSlots(ids, t, k, e, 100));
}

//===----------------------------------------------------------------------===//
// Dispatch / combine and gradients
//===----------------------------------------------------------------------===//

class CudaRouting : public CudaKernels {
protected:
  static constexpr int64_t T = 50, K = 2, E = 4, C = 20, H = 33;
  void SetUp() override {
    CudaKernels::SetUp();
    if (IsSkipped())
      return;
    ids = skewedIds(T, K, E, 9);
    slots = refSlots(ids, T, K, E, C);
    dIds = mem.upload(ids);
    void *work = mem.alloc<char>(slotWorkspaceBytes(T, K, E));
    dSlots = mem.alloc<int32_t>(T * K);
    dKept = mem.alloc<int32_t>(E);
    assignSlots(dIds, T, K, E, C, work, dSlots, dKept, mem.alloc<uint32_t>(2),
                stream);
    ASSERT_EQ(mem.download(dSlots, T * K), slots);
    ASSERT_EQ(mem.download(dKept, E), refKept(ids, E, C));
  }
  /// Row offset in [E,C,H] of assignment (t, j), or -1.
  int64_t row(int64_t t, int64_t j) const {
    int32_t pos = slots[j * T + t];
    return pos < 0 ? -1 : (ids[t * K + j] * C + pos) * H;
  }
  std::vector<int32_t> ids, slots;
  int32_t *dIds = nullptr, *dSlots = nullptr, *dKept = nullptr;
};

TEST_F(CudaRouting, DispatchF32) {
  std::vector<float> x = uniform(T * H, -1, 1, 4);
  std::vector<float> want(E * C * H, 0.0f);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < K; ++j)
      if (int64_t r = row(t, j); r >= 0)
        std::copy(x.begin() + t * H, x.begin() + (t + 1) * H, want.begin() + r);
  // The arena fills new buffers with 0x7f bytes: the unused rows must be
  // zeroed by dispatch itself.
  float *buf = mem.alloc<float>(E * C * H);
  dispatch(mem.upload(x), dIds, dSlots, dKept, buf, DType::F32, T, K, H, E, C,
           stream);
  EXPECT_EQ(mem.download(buf, E * C * H), want); // a copy: exact
}

TEST_F(CudaRouting, DispatchBf16IsAnExactCopy) {
  std::vector<float> xf = uniform(T * H, -1, 1, 5);
  std::vector<uint16_t> x(T * H);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = toBf16(xf[i]);
  std::vector<uint16_t> want(E * C * H, 0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < K; ++j)
      if (int64_t r = row(t, j); r >= 0)
        std::copy(x.begin() + t * H, x.begin() + (t + 1) * H, want.begin() + r);
  uint16_t *buf = mem.alloc<uint16_t>(E * C * H);
  dispatch(mem.upload(x), dIds, dSlots, dKept, buf, DType::BF16, T, K, H, E, C,
           stream);
  EXPECT_EQ(mem.download(buf, E * C * H), want);
}

TEST_F(CudaKernels, DispatchAndCombineGradSixteenByteRowsBf16) {
  // Rows of 64 bf16 values (128 bytes) take the 16-byte copy and zeroing
  // paths; skewed routing over 16 experts drops tokens of expert 0 and
  // leaves unused rows in the others, which must come out zero (the arena
  // fills new buffers with 0x7f bytes).
  const int64_t t = 2048, k = 2, e = 16, c = 200, h = 64;
  std::vector<int32_t> ids = skewedIds(t, k, e, 21);
  std::vector<int32_t> slots = refSlots(ids, t, k, e, c);
  std::vector<uint16_t> x(t * h), dy(t * h);
  std::vector<float> xf = uniform(t * h, -1, 1, 22),
                     dyf = uniform(t * h, -1, 1, 23);
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = toBf16(xf[i]);
    dy[i] = toBf16(dyf[i]);
  }
  std::vector<float> w(t * k, 1.0f);
  std::vector<uint16_t> want(e * c * h, 0);
  for (int64_t i = 0; i < t; ++i)
    for (int64_t j = 0; j < k; ++j)
      if (int32_t pos = slots[j * t + i]; pos >= 0)
        std::copy(x.begin() + i * h, x.begin() + (i + 1) * h,
                  want.begin() + (ids[i * k + j] * c + pos) * h);
  int32_t *dIds = mem.upload(ids);
  void *work = mem.alloc<char>(slotWorkspaceBytes(t, k, e));
  int32_t *dSlots = mem.alloc<int32_t>(t * k), *kept = mem.alloc<int32_t>(e);
  assignSlots(dIds, t, k, e, c, work, dSlots, kept, mem.alloc<uint32_t>(2),
              stream);
  ASSERT_EQ(mem.download(dSlots, t * k), slots);
  uint16_t *buf = mem.alloc<uint16_t>(e * c * h);
  dispatch(mem.upload(x), dIds, dSlots, kept, buf, DType::BF16, t, k, h, e, c,
           stream);
  EXPECT_EQ(mem.download(buf, e * c * h), want);
  // combine_grad with unit weights scatters dy the same way.
  std::vector<uint16_t> wantDbuf(e * c * h, 0);
  for (int64_t i = 0; i < t; ++i)
    for (int64_t j = 0; j < k; ++j)
      if (int32_t pos = slots[j * t + i]; pos >= 0)
        std::copy(dy.begin() + i * h, dy.begin() + (i + 1) * h,
                  wantDbuf.begin() + (ids[i * k + j] * c + pos) * h);
  uint16_t *dbuf = mem.alloc<uint16_t>(e * c * h);
  float *dw = mem.alloc<float>(t * k);
  combineGrad(mem.upload(dy), buf, dIds, dSlots, kept, mem.upload(w), dbuf, dw,
              DType::BF16, t, k, h, e, c, stream);
  EXPECT_EQ(mem.download(dbuf, e * c * h), wantDbuf);
}

TEST_F(CudaRouting, DispatchGradF32) {
  std::vector<float> dbuf = uniform(E * C * H, -1, 1, 6);
  std::vector<float> want(T * H, 0.0f);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < K; ++j)
      if (int64_t r = row(t, j); r >= 0)
        for (int64_t h = 0; h < H; ++h)
          want[t * H + h] += dbuf[r + h];
  float *dx = mem.alloc<float>(T * H);
  dispatchGrad(mem.upload(dbuf), dIds, dSlots, dx, DType::F32, T, K, H, E, C,
               stream);
  EXPECT_LE(worstError(mem.download(dx, T * H), want, 1e-5, 1e-5), 1.0);
}

TEST_F(CudaRouting, CombineF32) {
  std::vector<float> buf = uniform(E * C * H, -1, 1, 7);
  std::vector<float> w = uniform(T * K, 0, 1, 8);
  std::vector<float> want(T * H, 0.0f);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < K; ++j)
      if (int64_t r = row(t, j); r >= 0)
        for (int64_t h = 0; h < H; ++h)
          want[t * H + h] += w[t * K + j] * buf[r + h];
  float *y = mem.alloc<float>(T * H);
  combine(mem.upload(buf), dIds, dSlots, mem.upload(w), y, DType::F32, T, K, H,
          E, C, stream);
  EXPECT_LE(worstError(mem.download(y, T * H), want, 1e-5, 1e-5), 1.0);
}

TEST_F(CudaRouting, CombineGradF32) {
  std::vector<float> dy = uniform(T * H, -1, 1, 9);
  std::vector<float> buf = uniform(E * C * H, -1, 1, 10);
  std::vector<float> w = uniform(T * K, 0, 1, 11);
  std::vector<float> wantDbuf(E * C * H, 0.0f), wantDw(T * K, 0.0f);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < K; ++j)
      if (int64_t r = row(t, j); r >= 0) {
        double dot = 0;
        for (int64_t h = 0; h < H; ++h) {
          wantDbuf[r + h] = w[t * K + j] * dy[t * H + h];
          dot += double(dy[t * H + h]) * buf[r + h];
        }
        wantDw[t * K + j] = static_cast<float>(dot);
      }
  float *dbuf = mem.alloc<float>(E * C * H), *dw = mem.alloc<float>(T * K);
  combineGrad(mem.upload(dy), mem.upload(buf), dIds, dSlots, dKept,
              mem.upload(w), dbuf, dw, DType::F32, T, K, H, E, C, stream);
  EXPECT_LE(worstError(mem.download(dbuf, E * C * H), wantDbuf, 1e-6, 1e-6),
            1.0);
  EXPECT_LE(worstError(mem.download(dw, T * K), wantDw, 1e-5, 1e-5), 1.0);
}

//===----------------------------------------------------------------------===//
// Elementwise, conversions, box copies
//===----------------------------------------------------------------------===//

TEST_F(CudaKernels, ActivationsForwardAndBackward) {
  const int64_t n = 1001;
  std::vector<float> z = uniform(n, -4, 4, 12), da = uniform(n, -1, 1, 13);
  for (Activation act : {Activation::None, Activation::Relu, Activation::Gelu,
                         Activation::Silu}) {
    std::vector<float> wantA(n), wantDz(n);
    for (int64_t i = 0; i < n; ++i) {
      wantA[i] = refAct(act, z[i]);
      wantDz[i] = static_cast<float>(da[i] * refActGrad(act, z[i]));
    }
    float *dz = mem.upload(z), *a = mem.alloc<float>(n),
          *g = mem.alloc<float>(n);
    activationForward(act, dz, a, DType::F32, n, stream);
    activationBackward(act, dz, mem.upload(da), g, DType::F32, n, stream);
    EXPECT_LE(worstError(mem.download(a, n), wantA, 1e-5, 1e-5), 1.0)
        << "activation " << int(act);
    // The reference derivative is a finite difference: 1e-4.
    EXPECT_LE(worstError(mem.download(g, n), wantDz, 1e-4, 1e-4), 1.0)
        << "activation " << int(act);
  }
}

TEST_F(CudaKernels, AddAndConvert) {
  const int64_t n = 777;
  std::vector<float> a = uniform(n, -3, 3, 14), b = uniform(n, -3, 3, 15);
  std::vector<float> want(n);
  for (int64_t i = 0; i < n; ++i)
    want[i] = a[i] + b[i];
  float *y = mem.alloc<float>(n);
  add(mem.upload(a), mem.upload(b), y, DType::F32, n, stream);
  EXPECT_EQ(mem.download(y, n), want);

  uint16_t *h = mem.alloc<uint16_t>(n);
  convert(mem.upload(a), DType::F32, h, DType::BF16, n, stream);
  std::vector<uint16_t> got = mem.download(h, n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(got[i], toBf16(a[i])) << "element " << i;
  float *back = mem.alloc<float>(n);
  convert(h, DType::BF16, back, DType::F32, n, stream);
  std::vector<float> backHost = mem.download(back, n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(backHost[i], fromBf16(got[i]));
}

TEST_F(CudaKernels, CopyBoxLeavesTheRestOfTheDestination) {
  std::vector<int64_t> srcShape{4, 5, 6}, dstShape{3, 4, 6};
  std::vector<int64_t> srcOff{1, 2, 0}, dstOff{0, 1, 0}, sizes{2, 3, 6};
  std::vector<float> src(4 * 5 * 6), dst(3 * 4 * 6);
  std::iota(src.begin(), src.end(), 0.0f);
  std::iota(dst.begin(), dst.end(), 1000.0f);
  std::vector<float> want = dst;
  for (int64_t a = 0; a < sizes[0]; ++a)
    for (int64_t b = 0; b < sizes[1]; ++b)
      for (int64_t c = 0; c < sizes[2]; ++c)
        want[((dstOff[0] + a) * 4 + dstOff[1] + b) * 6 + c] =
            src[((srcOff[0] + a) * 5 + srcOff[1] + b) * 6 + c];
  float *d = mem.upload(dst);
  copyBox(mem.upload(src), srcShape, srcOff, d, dstShape, dstOff, sizes, 4,
          stream);
  EXPECT_EQ(mem.download(d, dst.size()), want);
}

//===----------------------------------------------------------------------===//
// GEMMs
//===----------------------------------------------------------------------===//

TEST_F(CudaKernels, GemmF32AllTransposes) {
  const int64_t m = 17, n = 23, k = 29;
  std::vector<float> a = uniform(m * k, -1, 1, 16),
                     b = uniform(k * n, -1, 1, 17);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      std::vector<float> want = refGemm(ta, tb, m, n, k, a, b);
      float *c = mem.alloc<float>(m * n);
      gemm(blas, ta, tb, m, n, k, mem.upload(a), mem.upload(b), DType::F32, c,
           DType::F32);
      EXPECT_LE(worstError(mem.download(c, m * n), want, 1e-5, 1e-5), 1.0)
          << "transA " << ta << " transB " << tb;
    }
}

TEST_F(CudaKernels, GemmF32StridedBatchedAndAccumulate) {
  const int64_t batch = 3, m = 8, n = 12, k = 10;
  std::vector<float> a = uniform(batch * m * k, -1, 1, 18),
                     b = uniform(batch * k * n, -1, 1, 19),
                     c0 = uniform(batch * m * n, -1, 1, 20);
  std::vector<float> want(batch * m * n);
  for (int64_t i = 0; i < batch; ++i) {
    std::vector<float> one =
        refGemm(false, false, m, n, k, a, b, i * m * k, i * k * n);
    for (int64_t x = 0; x < m * n; ++x)
      want[i * m * n + x] = one[x] + c0[i * m * n + x];
  }
  float *c = mem.upload(c0);
  gemm(blas, false, false, m, n, k, mem.upload(a), mem.upload(b), DType::F32, c,
       DType::F32, batch, m * k, k * n, m * n, /*accumulate=*/true);
  EXPECT_LE(worstError(mem.download(c, batch * m * n), want, 1e-5, 1e-5), 1.0);
}

TEST_F(CudaKernels, GemmWithZeroInnerSizeWritesZeros) {
  float *c = mem.alloc<float>(6 * 4);
  gemm(blas, false, false, 6, 4, 0, mem.alloc<float>(1), mem.alloc<float>(1),
       DType::F32, c, DType::F32);
  EXPECT_EQ(mem.download(c, 24), std::vector<float>(24, 0.0f));
}

TEST_F(CudaKernels, GemmBf16AgainstF32Reference) {
  // bf16 inputs and result with fp32 accumulation, against the f32 GEMM of
  // the unrounded inputs: inputs carry 2^-9 relative rounding each and the
  // result another 2^-9, so allow 0.05 absolute + 1e-2 relative (the sums
  // have magnitude ~5 here).
  const int64_t m = 64, n = 48, k = 256;
  std::vector<float> a = uniform(m * k, -1, 1, 21),
                     b = uniform(k * n, -1, 1, 22);
  std::vector<uint16_t> ah(a.size()), bh(b.size());
  for (size_t i = 0; i < a.size(); ++i)
    ah[i] = toBf16(a[i]);
  for (size_t i = 0; i < b.size(); ++i)
    bh[i] = toBf16(b[i]);
  std::vector<float> want = refGemm(false, false, m, n, k, a, b);
  uint16_t *c = mem.alloc<uint16_t>(m * n);
  gemm(blas, false, false, m, n, k, mem.upload(ah), mem.upload(bh), DType::BF16,
       c, DType::BF16);
  std::vector<uint16_t> got = mem.download(c, m * n);
  std::vector<float> gotF(m * n);
  for (int64_t i = 0; i < m * n; ++i)
    gotF[i] = fromBf16(got[i]);
  EXPECT_LE(worstError(gotF, want, 0.05, 1e-2), 1.0);

  // With an f32 result the only error left is the inputs' rounding: the
  // GEMM of the rounded inputs must match to f32 accuracy.
  std::vector<float> ar(a.size()), br(b.size());
  for (size_t i = 0; i < a.size(); ++i)
    ar[i] = fromBf16(ah[i]);
  for (size_t i = 0; i < b.size(); ++i)
    br[i] = fromBf16(bh[i]);
  std::vector<float> wantRounded = refGemm(false, false, m, n, k, ar, br);
  float *cf = mem.alloc<float>(m * n);
  gemm(blas, false, false, m, n, k, mem.upload(ah), mem.upload(bh), DType::BF16,
       cf, DType::F32);
  EXPECT_LE(worstError(mem.download(cf, m * n), wantRounded, 1e-4, 1e-5), 1.0);
}
