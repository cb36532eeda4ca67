//===- KernelsTest.cpp - CPU kernels vs references and finite differences -===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Kernels.h"

#include <gtest/gtest.h>

#include <functional>
#include <random>

using namespace lina::rt;
using namespace lina::rt::cpu;

namespace {
std::vector<float> randomVector(size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (float &x : v)
    x = d(rng);
  return v;
}

float dot(const std::vector<float> &a, const std::vector<float> &b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i)
    s += double(a[i]) * b[i];
  return float(s);
}

/// Checks `analytic` = d loss / d param by central differences on a few
/// coordinates.
void checkGradient(std::vector<float> &param,
                   const std::vector<float> &analytic,
                   const std::function<float()> &loss, const char *what) {
  const float h = 1e-2f;
  for (size_t i = 0; i < param.size();
       i += std::max<size_t>(1, param.size() / 7)) {
    float saved = param[i];
    param[i] = saved + h;
    float up = loss();
    param[i] = saved - h;
    float down = loss();
    param[i] = saved;
    float numeric = (up - down) / (2 * h);
    EXPECT_NEAR(analytic[i], numeric, 2e-2f * (1 + std::fabs(numeric)))
        << what << " coordinate " << i;
  }
}

TEST(Kernels, GemmMatchesLoops) {
  auto a = randomVector(3 * 5, 1), b = randomVector(5 * 4, 2);
  std::vector<float> c(12);
  gemm(false, false, 3, 4, 5, a.data(), b.data(), c.data());
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) {
      float ref = 0;
      for (int k = 0; k < 5; ++k)
        ref += a[i * 5 + k] * b[k * 4 + j];
      EXPECT_NEAR(c[i * 4 + j], ref, 1e-5);
    }
}

TEST(Kernels, DenseGradientIsCorrect) {
  for (Activation act : {Activation::None, Activation::Relu, Activation::Gelu,
                         Activation::Silu}) {
    int64_t T = 5, I = 6, O = 4;
    auto x = randomVector(T * I, 3), w = randomVector(I * O, 4),
         r = randomVector(T * O, 5);
    std::vector<float> y(T * O), dx(T * I), dw(I * O);
    auto loss = [&] {
      dense(x.data(), w.data(), y.data(), T, I, O, act);
      return dot(y, r);
    };
    denseGrad(r.data(), x.data(), w.data(), dx.data(), dw.data(), T, I, O, act);
    checkGradient(x, dx, loss, "dense dx");
    checkGradient(w, dw, loss, "dense dw");
  }
}

TEST(Kernels, ExpertFfnGradientIsCorrect) {
  int64_t E = 2, N = 3, H = 4, F = 5;
  auto in = randomVector(E * N * H, 6), w1 = randomVector(E * H * F, 7),
       w2 = randomVector(E * F * H, 8), r = randomVector(E * N * H, 9);
  std::vector<float> out(E * N * H), din(in.size()), dw1(w1.size()),
      dw2(w2.size());
  auto loss = [&] {
    expertFfn(in.data(), w1.data(), w2.data(), out.data(), E, N, H, F,
              Activation::Gelu);
    return dot(out, r);
  };
  expertFfnGrad(r.data(), in.data(), w1.data(), w2.data(), din.data(),
                dw1.data(), dw2.data(), E, N, H, F, Activation::Gelu);
  checkGradient(in, din, loss, "expert_ffn din");
  checkGradient(w1, dw1, loss, "expert_ffn dw1");
  checkGradient(w2, dw2, loss, "expert_ffn dw2");
}

// expert_ffn_grad_input then expert_ffn_grad_weight are expert_ffn_grad
// split at the activation: the same GEMMs on the same operands, so the
// same bits, with and without row-wise GEMMs (lina-run --check).
TEST(Kernels, SplitExpertFfnGradientIsBitwiseTheFusedOne) {
  struct Shape {
    int64_t E, N, H, F;
  };
  unsigned seed = 100;
  for (Shape sh : {Shape{2, 5, 3, 4}, Shape{3, 7, 16, 24}})
    for (Activation act : {Activation::None, Activation::Relu, Activation::Gelu,
                           Activation::Silu})
      for (bool rowwise : {false, true}) {
        int64_t E = sh.E, N = sh.N, H = sh.H, F = sh.F;
        std::string what = std::to_string(E) + "x" + std::to_string(N) + "x" +
                           std::to_string(H) + "x" + std::to_string(F) +
                           " activation " + std::to_string(int(act)) +
                           (rowwise ? " rowwise" : "");
        auto dy = randomVector(E * N * H, seed++),
             in = randomVector(E * N * H, seed++),
             w1 = randomVector(E * H * F, seed++),
             w2 = randomVector(E * F * H, seed++);
        RowwiseGemmScope scope(rowwise);
        std::vector<float> din(E * N * H), dw1(E * H * F), dw2(E * F * H);
        expertFfnGrad(dy.data(), in.data(), w1.data(), w2.data(), din.data(),
                      dw1.data(), dw2.data(), E, N, H, F, act);
        // Outputs start as garbage: every element must be written.
        std::vector<float> din2(din.size(), 7.0f), a(E * N * F, 7.0f),
            dz(E * N * F, 7.0f), dw1b(dw1.size(), 7.0f), dw2b(dw2.size(), 7.0f);
        expertFfnGradInput(dy.data(), in.data(), w1.data(), w2.data(),
                           din2.data(), a.data(), dz.data(), E, N, H, F, act);
        expertFfnGradWeight(dy.data(), in.data(), a.data(), dz.data(),
                            dw1b.data(), dw2b.data(), E, N, H, F);
        for (size_t i = 0; i < din.size(); ++i)
          ASSERT_EQ(din2[i], din[i]) << what << ": din[" << i << "]";
        for (size_t i = 0; i < dw1.size(); ++i)
          ASSERT_EQ(dw1b[i], dw1[i]) << what << ": dw1[" << i << "]";
        for (size_t i = 0; i < dw2.size(); ++i)
          ASSERT_EQ(dw2b[i], dw2[i]) << what << ": dw2[" << i << "]";
        // act is the activation of in·w1, expert by expert.
        std::vector<float> z(N * F);
        for (int64_t e = 0; e < E; ++e) {
          gemm(false, false, N, F, H, in.data() + e * N * H,
               w1.data() + e * H * F, z.data());
          for (int64_t i = 0; i < N * F; ++i)
            ASSERT_EQ(a[e * N * F + i], activate(act, z[i]))
                << what << ": act of expert " << e << " element " << i;
        }
      }
}

// expert_weight_grad(in, dz) and expert_weight_grad(act, dy) are the two
// GEMMs of expert_ffn_grad_weight: the same bits as its dw1 and dw2, and
// so as expert_ffn_grad's.
TEST(Kernels, TwoExpertWeightGradsAreBitwiseTheWeightHalf) {
  struct Shape {
    int64_t E, N, H, F;
  };
  unsigned seed = 300;
  for (Shape sh : {Shape{1, 5, 3, 4}, Shape{3, 5, 3, 4}, Shape{1, 7, 16, 24},
                   Shape{3, 9, 6, 10}})
    for (bool rowwise : {false, true}) {
      int64_t E = sh.E, N = sh.N, H = sh.H, F = sh.F;
      std::string what = std::to_string(E) + "x" + std::to_string(N) + "x" +
                         std::to_string(H) + "x" + std::to_string(F) +
                         (rowwise ? " rowwise" : "");
      auto dy = randomVector(E * N * H, seed++),
           in = randomVector(E * N * H, seed++),
           w1 = randomVector(E * H * F, seed++),
           w2 = randomVector(E * F * H, seed++);
      RowwiseGemmScope scope(rowwise);
      std::vector<float> din(E * N * H), dw1(E * H * F), dw2(E * F * H);
      expertFfnGrad(dy.data(), in.data(), w1.data(), w2.data(), din.data(),
                    dw1.data(), dw2.data(), E, N, H, F, Activation::Gelu);
      std::vector<float> a(E * N * F), dz(E * N * F), dw1h(dw1.size()),
          dw2h(dw2.size());
      expertFfnGradInput(dy.data(), in.data(), w1.data(), w2.data(), din.data(),
                         a.data(), dz.data(), E, N, H, F, Activation::Gelu);
      expertFfnGradWeight(dy.data(), in.data(), a.data(), dz.data(),
                          dw1h.data(), dw2h.data(), E, N, H, F);
      // Outputs start as garbage: every element must be written.
      std::vector<float> dw1s(dw1.size(), 7.0f), dw2s(dw2.size(), 7.0f);
      expertWeightGrad(in.data(), dz.data(), dw1s.data(), E, N, H, F);
      expertWeightGrad(a.data(), dy.data(), dw2s.data(), E, N, F, H);
      for (size_t i = 0; i < dw1.size(); ++i) {
        ASSERT_EQ(dw1s[i], dw1h[i]) << what << ": dw1[" << i << "]";
        ASSERT_EQ(dw1s[i], dw1[i]) << what << ": fused dw1[" << i << "]";
      }
      for (size_t i = 0; i < dw2.size(); ++i) {
        ASSERT_EQ(dw2s[i], dw2h[i]) << what << ": dw2[" << i << "]";
        ASSERT_EQ(dw2s[i], dw2[i]) << what << ": fused dw2[" << i << "]";
      }
    }
}

// out[e] = a[e]ᵀ·b[e], against a triple loop in double; no rows gives 0.
TEST(Kernels, ExpertWeightGradIsAPerExpertTransposedProduct) {
  int64_t E = 3, N = 6, X = 4, Y = 5;
  auto a = randomVector(E * N * X, 400), b = randomVector(E * N * Y, 401);
  std::vector<float> out(E * X * Y, 7.0f);
  expertWeightGrad(a.data(), b.data(), out.data(), E, N, X, Y);
  for (int64_t e = 0; e < E; ++e)
    for (int64_t i = 0; i < X; ++i)
      for (int64_t j = 0; j < Y; ++j) {
        double s = 0;
        for (int64_t n = 0; n < N; ++n)
          s += double(a[(e * N + n) * X + i]) * b[(e * N + n) * Y + j];
        EXPECT_NEAR(out[(e * X + i) * Y + j], s, 1e-5)
            << "expert " << e << " element " << i << "," << j;
      }
  std::fill(out.begin(), out.end(), 7.0f);
  expertWeightGrad(a.data(), b.data(), out.data(), E, 0, X, Y);
  for (float v : out)
    EXPECT_EQ(v, 0.0f);
}

TEST(Kernels, GateRoutesByProbabilityAndItsGradientIsCorrect) {
  int64_t T = 6, H = 4, E = 5, k = 2;
  auto x = randomVector(T * H, 10), wg = randomVector(H * E, 11),
       r = randomVector(T * k, 12);
  std::vector<int32_t> ids(T * k);
  std::vector<float> gw(T * k);
  gate(x.data(), wg.data(), ids.data(), gw.data(), T, H, E, k);
  for (int64_t t = 0; t < T; ++t) {
    EXPECT_NE(ids[t * k], ids[t * k + 1]);
    EXPECT_GE(gw[t * k], gw[t * k + 1]); // descending
  }
  // Gradient of sum(r * weights) with the routing held fixed.
  std::vector<int32_t> fixedIds = ids;
  auto loss = [&] {
    std::vector<int32_t> now(T * k);
    gate(x.data(), wg.data(), now.data(), gw.data(), T, H, E, k);
    EXPECT_EQ(now, fixedIds); // small steps must not change the routing
    return dot(gw, r);
  };
  std::vector<float> dx(T * H), dwg(H * E);
  gateGrad(r.data(), x.data(), wg.data(), ids.data(), dx.data(), dwg.data(), T,
           H, E, k);
  checkGradient(x, dx, loss, "gate dx");
  checkGradient(wg, dwg, loss, "gate dwg");
}

TEST(Kernels, TiesGoToTheLowerExpert) {
  std::vector<float> x(2 * 3, 1.0f), wg(3 * 4, 0.0f); // all logits equal
  std::vector<int32_t> ids(2 * 2);
  std::vector<float> gw(2 * 2);
  gate(x.data(), wg.data(), ids.data(), gw.data(), 2, 3, 4, 2);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1, 0, 1}));
  EXPECT_FLOAT_EQ(gw[0], 0.25f);
}

TEST(Kernels, SlotsFollowChoiceThenTokenOrderAndDropBeyondCapacity) {
  // 4 tokens, top-2, 3 experts, capacity 2.
  std::vector<int32_t> ids = {0, 1, 0, 2, 0, 1, 1, 0};
  auto slots = assignSlots(ids.data(), 4, 2, 3, 2);
  // Choice 0: tokens 0,1,2 -> expert 0 slots 0,1, dropped; token 3 -> e1 slot
  // 0. Choice 1: t0 -> e1 slot 1; t1 -> e2 slot 0; t2 -> e1 dropped; t3 -> e0
  // dropped.
  EXPECT_EQ(slots, (std::vector<int64_t>{0, 1, 1, 0, -1, -1, 0, -1}));
  std::vector<int32_t> bad = {0, 3};
  EXPECT_THROW(assignSlots(bad.data(), 2, 1, 3, 2), PlanError);
}

TEST(Kernels, DispatchAndItsGradientAreAdjoint) {
  int64_t T = 7, k = 2, H = 3, E = 4, C = 3;
  auto x = randomVector(T * H, 13), b = randomVector(E * C * H, 14);
  std::vector<int32_t> ids(T * k);
  std::mt19937 rng(15);
  for (int64_t t = 0; t < T; ++t) {
    ids[t * k] = rng() % E;
    ids[t * k + 1] = (ids[t * k] + 1 + rng() % (E - 1)) % E;
  }
  std::vector<float> buf(E * C * H), dx(T * H);
  dispatch(x.data(), ids.data(), buf.data(), T, k, H, E, C);
  dispatchGrad(b.data(), ids.data(), dx.data(), T, k, H, E, C);
  EXPECT_NEAR(dot(buf, b), dot(x, dx), 1e-4);
}

TEST(Kernels, CombineGradientIsCorrect) {
  int64_t T = 5, k = 2, H = 3, E = 3, C = 3;
  auto buf = randomVector(E * C * H, 16), w = randomVector(T * k, 17),
       r = randomVector(T * H, 18);
  std::vector<int32_t> ids = {0, 1, 1, 2, 0, 2, 0, 1, 2, 0};
  std::vector<float> y(T * H), dbuf(buf.size()), dw(w.size());
  auto loss = [&] {
    combine(buf.data(), ids.data(), w.data(), y.data(), T, k, H, E, C);
    return dot(y, r);
  };
  combineGrad(r.data(), buf.data(), ids.data(), w.data(), dbuf.data(),
              dw.data(), T, k, H, E, C);
  checkGradient(buf, dbuf, loss, "combine dbuf");
  checkGradient(w, dw, loss, "combine dweights");
}

TEST(Kernels, EveryTokenToOneExpertKeepsCapacity) {
  int64_t T = 6, H = 2, E = 3, C = 2;
  auto x = randomVector(T * H, 19);
  std::vector<int32_t> ids(T, 1);
  std::vector<float> buf(E * C * H), y(T * H), ones(T, 1.0f);
  dispatch(x.data(), ids.data(), buf.data(), T, 1, H, E, C);
  combine(buf.data(), ids.data(), ones.data(), y.data(), T, 1, H, E, C);
  // The first C tokens come back; the rest were dropped (zero); the other
  // experts received nothing (zero buffers).
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h)
      EXPECT_FLOAT_EQ(y[t * H + h], t < C ? x[t * H + h] : 0.0f);
  for (int64_t i = 0; i < C * H; ++i) {
    EXPECT_EQ(buf[i], 0.0f);
    EXPECT_EQ(buf[2 * C * H + i], 0.0f);
  }
}

TEST(Kernels, CopyBoxMovesAStridedBlock) {
  // src [2,4,3]; copy the box [2,2,3] at [0,1,0] to dst [2,5,3] at [0,3,0].
  std::vector<float> src(24), dst(30, -1.0f);
  for (int i = 0; i < 24; ++i)
    src[i] = float(i);
  copyBox(reinterpret_cast<const char *>(src.data()), {2, 4, 3}, {0, 1, 0},
          reinterpret_cast<char *>(dst.data()), {2, 5, 3}, {0, 3, 0}, {2, 2, 3},
          4);
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 5; ++b)
      for (int c = 0; c < 3; ++c) {
        float v = dst[(a * 5 + b) * 3 + c];
        if (b >= 3)
          EXPECT_EQ(v, src[(a * 4 + (b - 3 + 1)) * 3 + c]);
        else
          EXPECT_EQ(v, -1.0f);
      }
}
} // namespace

namespace {
// A row's result must not depend on how many rows share the GEMM, or a
// chunked schedule rounds differently from the unchunked one (and flips
// ReLU derivatives and top-k choices near ties) in lina-run --check.
TEST(Kernels, RowwiseGemmDoesNotDependOnTheRowsSharingTheCall) {
  const int64_t m = 40, k = 96, n = 72;
  std::vector<float> a(m * k), b(k * n);
  uint32_t state = 12345;
  auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / float(1 << 24) - 0.5f;
  };
  for (float &v : a)
    v = next();
  for (float &v : b)
    v = next();
  lina::rt::cpu::RowwiseGemmScope rowwise(true);
  std::vector<float> all(m * n), parts(m * n);
  lina::rt::cpu::gemm(false, false, m, n, k, a.data(), b.data(), all.data());
  // The same rows in calls of 5, 15 and 20 rows.
  int64_t splits[] = {0, 5, 20, 40};
  for (int s = 0; s < 3; ++s)
    lina::rt::cpu::gemm(false, false, splits[s + 1] - splits[s], n, k,
                        a.data() + splits[s] * k, b.data(),
                        parts.data() + splits[s] * n);
  for (int64_t i = 0; i < m * n; ++i)
    ASSERT_EQ(all[i], parts[i]) << "element " << i;
  // Transposed B and accumulation take the same path.
  std::vector<float> bt(n * k);
  for (int64_t r = 0; r < k; ++r)
    for (int64_t c = 0; c < n; ++c)
      bt[c * k + r] = b[r * n + c];
  std::vector<float> acc(all);
  lina::rt::cpu::gemm(false, true, m, n, k, a.data(), bt.data(), acc.data(),
                      /*accumulate=*/true);
  for (int64_t i = 0; i < m * n; ++i)
    ASSERT_NEAR(acc[i], 2 * all[i], 1e-5f * (1 + std::fabs(all[i])));
}
} // namespace
