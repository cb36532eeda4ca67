//===- Kernels.cpp - Host reference kernels -------------------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Kernels.h"

#include "lina/rt/Activation.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <numeric>

using namespace lina::rt;
using namespace lina::rt::cpu;

namespace {
thread_local bool rowwiseGemm = false;
} // namespace

cpu::RowwiseGemmScope::RowwiseGemmScope(bool enable) : saved(rowwiseGemm) {
  rowwiseGemm = saved || enable;
}

cpu::RowwiseGemmScope::~RowwiseGemmScope() { rowwiseGemm = saved; }

void cpu::gemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k,
               const float *a, const float *b, float *c, bool accumulate) {
  if (m == 0 || n == 0)
    return;
  if (m > INT_MAX || n > INT_MAX || k > INT_MAX)
    throw PlanError("a matrix of " + std::to_string(m) + "x" +
                    std::to_string(k) + " by " + std::to_string(k) + "x" +
                    std::to_string(n) + " exceeds BLAS's int dimensions");
  if (k == 0) {
    if (!accumulate)
      std::fill(c, c + m * n, 0.0f);
    return;
  }
  if (rowwiseGemm && !transA && m > 1) {
    for (int64_t i = 0; i < m; ++i)
      gemm(false, transB, 1, n, k, a + i * k, b, c + i * n, accumulate);
    return;
  }
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
              transB ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), 1.0f, a,
              static_cast<int>(transA ? m : k), b,
              static_cast<int>(transB ? k : n), accumulate ? 1.0f : 0.0f, c,
              static_cast<int>(n));
}

float cpu::activate(Activation act, float x) {
  return activation::apply(act, x);
}

float cpu::activateGrad(Activation act, float x) {
  return activation::derivative(act, x);
}

void cpu::dense(const float *x, const float *w, float *y, int64_t tokens,
                int64_t in, int64_t out, Activation act) {
  gemm(false, false, tokens, out, in, x, w, y);
  if (act != Activation::None)
    for (int64_t i = 0; i < tokens * out; ++i)
      y[i] = activate(act, y[i]);
}

void cpu::denseGrad(const float *dy, const float *x, const float *w, float *dx,
                    float *dw, int64_t tokens, int64_t in, int64_t out,
                    Activation act) {
  std::vector<float> dz(dy, dy + tokens * out);
  if (act != Activation::None) {
    std::vector<float> z(tokens * out);
    gemm(false, false, tokens, out, in, x, w, z.data());
    for (int64_t i = 0; i < tokens * out; ++i)
      dz[i] *= activateGrad(act, z[i]);
  }
  gemm(false, true, tokens, in, out, dz.data(), w, dx);
  gemm(true, false, in, out, tokens, x, dz.data(), dw);
}

namespace {
/// Row-wise softmax of x * wg.
std::vector<float> routerProbabilities(const float *x, const float *wg,
                                       int64_t tokens, int64_t hidden,
                                       int64_t experts) {
  std::vector<float> p(tokens * experts);
  gemm(false, false, tokens, experts, hidden, x, wg, p.data());
  for (int64_t t = 0; t < tokens; ++t) {
    float *row = p.data() + t * experts;
    float mx = *std::max_element(row, row + experts);
    float sum = 0;
    for (int64_t e = 0; e < experts; ++e)
      sum += (row[e] = std::exp(row[e] - mx));
    for (int64_t e = 0; e < experts; ++e)
      row[e] /= sum;
  }
  return p;
}
} // namespace

void cpu::gate(const float *x, const float *wg, int32_t *ids, float *weights,
               int64_t tokens, int64_t hidden, int64_t experts, int64_t k) {
  std::vector<float> p = routerProbabilities(x, wg, tokens, hidden, experts);
  std::vector<int32_t> order(experts);
  for (int64_t t = 0; t < tokens; ++t) {
    const float *row = p.data() + t * experts;
    std::iota(order.begin(), order.end(), 0);
    // Descending probability, ties to the lower expert id.
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t a, int32_t b) {
                        return row[a] > row[b] || (row[a] == row[b] && a < b);
                      });
    for (int64_t j = 0; j < k; ++j) {
      ids[t * k + j] = order[j];
      weights[t * k + j] = row[order[j]];
    }
  }
}

int64_t cpu::gatePinned(const float *x, const float *wg, const int32_t *pinned,
                        int32_t *ids, float *weights, int64_t tokens,
                        int64_t hidden, int64_t experts, int64_t k) {
  std::vector<int32_t> own(tokens * k);
  std::vector<float> ownWeights(tokens * k);
  gate(x, wg, own.data(), ownWeights.data(), tokens, hidden, experts, k);
  std::vector<float> p = routerProbabilities(x, wg, tokens, hidden, experts);
  int64_t flipped = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    const int32_t *want = pinned + t * k;
    bool same = true;
    for (int64_t j = 0; j < k; ++j) {
      if (want[j] < 0 || want[j] >= experts)
        throw PlanError("pinned expert id " + std::to_string(want[j]) +
                        " of token " + std::to_string(t) + " is outside [0, " +
                        std::to_string(experts) + ")");
      same = same && std::find(own.begin() + t * k, own.begin() + (t + 1) * k,
                               want[j]) != own.begin() + (t + 1) * k;
      ids[t * k + j] = want[j];
      weights[t * k + j] = p[t * experts + want[j]];
    }
    flipped += !same;
  }
  return flipped;
}

void cpu::gateGrad(const float *dweights, const float *x, const float *wg,
                   const int32_t *ids, float *dx, float *dwg, int64_t tokens,
                   int64_t hidden, int64_t experts, int64_t k) {
  std::vector<float> p = routerProbabilities(x, wg, tokens, hidden, experts);
  std::vector<float> dlogits(tokens * experts, 0.0f);
  std::vector<float> dp(experts);
  for (int64_t t = 0; t < tokens; ++t) {
    std::fill(dp.begin(), dp.end(), 0.0f);
    for (int64_t j = 0; j < k; ++j) {
      int32_t e = ids[t * k + j];
      if (e >= 0 && e < experts)
        dp[e] += dweights[t * k + j];
    }
    const float *row = p.data() + t * experts;
    float dot = 0;
    for (int64_t e = 0; e < experts; ++e)
      dot += dp[e] * row[e];
    for (int64_t e = 0; e < experts; ++e)
      dlogits[t * experts + e] = row[e] * (dp[e] - dot);
  }
  gemm(false, true, tokens, hidden, experts, dlogits.data(), wg, dx);
  gemm(true, false, hidden, experts, tokens, x, dlogits.data(), dwg);
}

std::vector<int64_t> cpu::assignSlots(const int32_t *ids, int64_t tokens,
                                      int64_t k, int64_t experts,
                                      int64_t capacity) {
  std::vector<int64_t> slots(tokens * k, -1);
  std::vector<int64_t> fill(experts, 0);
  for (int64_t j = 0; j < k; ++j)
    for (int64_t t = 0; t < tokens; ++t) {
      int32_t e = ids[t * k + j];
      if (e < 0 || e >= experts)
        throw PlanError("token " + std::to_string(t) + " is routed to expert " +
                        std::to_string(e) + ", outside [0, " +
                        std::to_string(experts) + ")");
      int64_t pos = fill[e]++;
      if (pos < capacity)
        slots[t * k + j] = pos;
    }
  return slots;
}

void cpu::dispatch(const float *x, const int32_t *ids, float *buf,
                   int64_t tokens, int64_t k, int64_t hidden, int64_t experts,
                   int64_t capacity) {
  std::fill(buf, buf + experts * capacity * hidden, 0.0f);
  std::vector<int64_t> slots = assignSlots(ids, tokens, k, experts, capacity);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < k; ++j)
      if (int64_t pos = slots[t * k + j]; pos >= 0)
        std::memcpy(buf + (ids[t * k + j] * capacity + pos) * hidden,
                    x + t * hidden, hidden * sizeof(float));
}

void cpu::dispatchGrad(const float *dbuf, const int32_t *ids, float *dx,
                       int64_t tokens, int64_t k, int64_t hidden,
                       int64_t experts, int64_t capacity) {
  std::fill(dx, dx + tokens * hidden, 0.0f);
  std::vector<int64_t> slots = assignSlots(ids, tokens, k, experts, capacity);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < k; ++j)
      if (int64_t pos = slots[t * k + j]; pos >= 0) {
        const float *src = dbuf + (ids[t * k + j] * capacity + pos) * hidden;
        for (int64_t h = 0; h < hidden; ++h)
          dx[t * hidden + h] += src[h];
      }
}

void cpu::combine(const float *buf, const int32_t *ids, const float *weights,
                  float *y, int64_t tokens, int64_t k, int64_t hidden,
                  int64_t experts, int64_t capacity) {
  std::fill(y, y + tokens * hidden, 0.0f);
  std::vector<int64_t> slots = assignSlots(ids, tokens, k, experts, capacity);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < k; ++j)
      if (int64_t pos = slots[t * k + j]; pos >= 0) {
        const float *src = buf + (ids[t * k + j] * capacity + pos) * hidden;
        float w = weights[t * k + j];
        for (int64_t h = 0; h < hidden; ++h)
          y[t * hidden + h] += w * src[h];
      }
}

void cpu::combineGrad(const float *dy, const float *buf, const int32_t *ids,
                      const float *weights, float *dbuf, float *dweights,
                      int64_t tokens, int64_t k, int64_t hidden,
                      int64_t experts, int64_t capacity) {
  std::fill(dbuf, dbuf + experts * capacity * hidden, 0.0f);
  std::vector<int64_t> slots = assignSlots(ids, tokens, k, experts, capacity);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < k; ++j) {
      int64_t pos = slots[t * k + j];
      if (pos < 0) {
        dweights[t * k + j] = 0.0f;
        continue;
      }
      int64_t off = (ids[t * k + j] * capacity + pos) * hidden;
      float w = weights[t * k + j], dot = 0;
      for (int64_t h = 0; h < hidden; ++h) {
        dbuf[off + h] = w * dy[t * hidden + h];
        dot += dy[t * hidden + h] * buf[off + h];
      }
      dweights[t * k + j] = dot;
    }
}

void cpu::expertFfn(const float *in, const float *w1, const float *w2,
                    float *out, int64_t experts, int64_t rows, int64_t hidden,
                    int64_t ffn, Activation act) {
  std::vector<float> h(rows * ffn);
  for (int64_t e = 0; e < experts; ++e) {
    gemm(false, false, rows, ffn, hidden, in + e * rows * hidden,
         w1 + e * hidden * ffn, h.data());
    for (float &v : h)
      v = activate(act, v);
    gemm(false, false, rows, hidden, ffn, h.data(), w2 + e * ffn * hidden,
         out + e * rows * hidden);
  }
}

namespace {
/// expert_ffn_grad_input of one expert: z = x·W1 (scratch), act = f(z),
/// dz = (g·W2ᵀ) ⊙ f'(z), din = dz·W1ᵀ.
void expertGradInput(const float *g, const float *x, const float *W1,
                     const float *W2, float *z, float *act, float *dz,
                     float *din, int64_t rows, int64_t hidden, int64_t ffn,
                     Activation f) {
  gemm(false, false, rows, ffn, hidden, x, W1, z);
  for (int64_t i = 0; i < rows * ffn; ++i)
    act[i] = activate(f, z[i]);
  gemm(false, true, rows, ffn, hidden, g, W2, dz);
  for (int64_t i = 0; i < rows * ffn; ++i)
    dz[i] *= activateGrad(f, z[i]);
  gemm(false, true, rows, hidden, ffn, dz, W1, din);
}

/// expert_weight_grad of one expert: out[x,y] = aᵀ·b, a [rows,x], b
/// [rows,y]. Every weight gradient of an expert FFN is this GEMM, so the
/// fused and split kinds compute bitwise the same.
void weightGrad(const float *a, const float *b, float *out, int64_t rows,
                int64_t x, int64_t y) {
  gemm(true, false, x, y, rows, a, b, out);
}

/// expert_ffn_grad_weight of one expert: dW1 = xᵀ·dz, dW2 = actᵀ·g.
void expertGradWeight(const float *g, const float *x, const float *act,
                      const float *dz, float *dW1, float *dW2, int64_t rows,
                      int64_t hidden, int64_t ffn) {
  weightGrad(x, dz, dW1, rows, hidden, ffn);
  weightGrad(act, g, dW2, rows, ffn, hidden);
}
} // namespace

void cpu::expertFfnGrad(const float *dy, const float *in, const float *w1,
                        const float *w2, float *din, float *dw1, float *dw2,
                        int64_t experts, int64_t rows, int64_t hidden,
                        int64_t ffn, Activation act) {
  // The two halves below, one expert at a time, so that the scratch is one
  // expert's and the results are bitwise those of the split kinds.
  std::vector<float> z(rows * ffn), a(rows * ffn), dz(rows * ffn);
  for (int64_t e = 0; e < experts; ++e) {
    const float *x = in + e * rows * hidden, *g = dy + e * rows * hidden;
    expertGradInput(g, x, w1 + e * hidden * ffn, w2 + e * ffn * hidden,
                    z.data(), a.data(), dz.data(), din + e * rows * hidden,
                    rows, hidden, ffn, act);
    expertGradWeight(g, x, a.data(), dz.data(), dw1 + e * hidden * ffn,
                     dw2 + e * ffn * hidden, rows, hidden, ffn);
  }
}

void cpu::expertFfnGradInput(const float *dy, const float *in, const float *w1,
                             const float *w2, float *din, float *act, float *dz,
                             int64_t experts, int64_t rows, int64_t hidden,
                             int64_t ffn, Activation f) {
  std::vector<float> z(rows * ffn);
  for (int64_t e = 0; e < experts; ++e)
    expertGradInput(dy + e * rows * hidden, in + e * rows * hidden,
                    w1 + e * hidden * ffn, w2 + e * ffn * hidden, z.data(),
                    act + e * rows * ffn, dz + e * rows * ffn,
                    din + e * rows * hidden, rows, hidden, ffn, f);
}

void cpu::expertFfnGradWeight(const float *dy, const float *in,
                              const float *act, const float *dz, float *dw1,
                              float *dw2, int64_t experts, int64_t rows,
                              int64_t hidden, int64_t ffn) {
  expertWeightGrad(in, dz, dw1, experts, rows, hidden, ffn);
  expertWeightGrad(act, dy, dw2, experts, rows, ffn, hidden);
}

void cpu::expertWeightGrad(const float *a, const float *b, float *out,
                           int64_t experts, int64_t rows, int64_t x,
                           int64_t y) {
  for (int64_t e = 0; e < experts; ++e)
    weightGrad(a + e * rows * x, b + e * rows * y, out + e * x * y, rows, x, y);
}

void cpu::copyBox(const char *src, const std::vector<int64_t> &srcShape,
                  const std::vector<int64_t> &srcOffsets, char *dst,
                  const std::vector<int64_t> &dstShape,
                  const std::vector<int64_t> &dstOffsets,
                  const std::vector<int64_t> &sizes, int64_t elemBytes) {
  size_t rank = sizes.size();
  if (rank == 0) {
    std::memcpy(dst, src, elemBytes);
    return;
  }
  for (int64_t s : sizes)
    if (s == 0)
      return;
  // Strides in elements.
  std::vector<int64_t> ss(rank, 1), ds(rank, 1);
  for (size_t i = rank - 1; i > 0; --i) {
    ss[i - 1] = ss[i] * srcShape[i];
    ds[i - 1] = ds[i] * dstShape[i];
  }
  int64_t row = sizes[rank - 1] * elemBytes;
  std::vector<int64_t> idx(rank, 0);
  while (true) {
    int64_t so = 0, dof = 0;
    for (size_t i = 0; i < rank; ++i) {
      so += (srcOffsets[i] + idx[i]) * ss[i];
      dof += (dstOffsets[i] + idx[i]) * ds[i];
    }
    std::memcpy(dst + dof * elemBytes, src + so * elemBytes, row);
    // Advance over all dims but the innermost.
    size_t d = rank - 1;
    while (d > 0) {
      --d;
      if (++idx[d] < sizes[d])
        break;
      idx[d] = 0;
      if (d == 0)
        return;
    }
    if (rank == 1)
      return;
  }
}
