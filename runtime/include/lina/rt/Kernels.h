//===- Kernels.h - Host reference kernels of the plan's ops -----*- C++ -*-===//
//
// Part of the Lina project.
//
// f32 kernels on row-major arrays, with GEMMs on BLAS (cblas_sgemm). Their
// semantics are those of docs/PLAN.md; the CUDA kernels must match them.
// They belong to the runtime core, not to a backend: the cpu backend
// computes with them (for training and --mode infer alike).
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_KERNELS_H
#define LINA_RT_KERNELS_H

#include "lina/rt/Plan.h"

#include <cstdint>
#include <vector>

namespace lina::rt::cpu {

/// C[m,n] = A[m,k] * B[k,n] (+ C if accumulate); transA/transB read the
/// stored A[k,m] / B[n,k] transposed. Throws PlanError when a dimension
/// exceeds BLAS's int.
void gemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k,
          const float *a, const float *b, float *c, bool accumulate = false);

/// While alive, gemm() computes every row of an untransposed A with its own
/// BLAS call on the calling thread, so that a row's result does not depend
/// on how many rows share the call: BLAS kernels round a row differently
/// by its position in their tiles, and a chunked schedule splits the rows
/// of an expert FFN across calls. lina-run --check uses it for the expert
/// FFNs of both runs; it is slower (each row reads the whole weight).
class RowwiseGemmScope {
public:
  explicit RowwiseGemmScope(bool enable);
  ~RowwiseGemmScope();
  RowwiseGemmScope(const RowwiseGemmScope &) = delete;
  RowwiseGemmScope &operator=(const RowwiseGemmScope &) = delete;

private:
  bool saved;
};

float activate(Activation act, float x);
/// d act(x) / dx.
float activateGrad(Activation act, float x);

void dense(const float *x, const float *w, float *y, int64_t tokens, int64_t in,
           int64_t out, Activation act);
void denseGrad(const float *dy, const float *x, const float *w, float *dx,
               float *dw, int64_t tokens, int64_t in, int64_t out,
               Activation act);

/// Softmax router with top-k; ids are written as int32.
void gate(const float *x, const float *wg, int32_t *ids, float *weights,
          int64_t tokens, int64_t hidden, int64_t experts, int64_t k);
/// The gate with its choices imposed: writes `pinned` (tokens x k expert
/// ids) to `ids` and the router probabilities of those experts to
/// `weights`. Returns the number of tokens whose own top-k set differs
/// from the pinned one (decisions that rounding flipped). Throws PlanError
/// for a pinned id outside [0, experts).
int64_t gatePinned(const float *x, const float *wg, const int32_t *pinned,
                   int32_t *ids, float *weights, int64_t tokens, int64_t hidden,
                   int64_t experts, int64_t k);
void gateGrad(const float *dweights, const float *x, const float *wg,
              const int32_t *ids, float *dx, float *dwg, int64_t tokens,
              int64_t hidden, int64_t experts, int64_t k);

/// Slot of each (token, choice) assignment in its expert's buffer, in
/// slot order (choice-major, then token); -1 where it was dropped. Throws
/// PlanError for an expert id outside [0, experts).
std::vector<int64_t> assignSlots(const int32_t *ids, int64_t tokens, int64_t k,
                                 int64_t experts, int64_t capacity);

void dispatch(const float *x, const int32_t *ids, float *buf, int64_t tokens,
              int64_t k, int64_t hidden, int64_t experts, int64_t capacity);
void dispatchGrad(const float *dbuf, const int32_t *ids, float *dx,
                  int64_t tokens, int64_t k, int64_t hidden, int64_t experts,
                  int64_t capacity);
void combine(const float *buf, const int32_t *ids, const float *weights,
             float *y, int64_t tokens, int64_t k, int64_t hidden,
             int64_t experts, int64_t capacity);
void combineGrad(const float *dy, const float *buf, const int32_t *ids,
                 const float *weights, float *dbuf, float *dweights,
                 int64_t tokens, int64_t k, int64_t hidden, int64_t experts,
                 int64_t capacity);

void expertFfn(const float *in, const float *w1, const float *w2, float *out,
               int64_t experts, int64_t rows, int64_t hidden, int64_t ffn,
               Activation act);
/// expertFfnGradInput followed by expertFfnGradWeight, one expert at a
/// time: bitwise the same din, dw1 and dw2 as the two split kinds.
void expertFfnGrad(const float *dy, const float *in, const float *w1,
                   const float *w2, float *din, float *dw1, float *dw2,
                   int64_t experts, int64_t rows, int64_t hidden, int64_t ffn,
                   Activation act);
/// The input-gradient half of expertFfnGrad (expert_ffn_grad_input): per
/// expert z = in·w1, act = f(z), dz = (dy·w2ᵀ) ⊙ f'(z), din = dz·w1ᵀ;
/// act and dz are [experts, rows, ffn].
void expertFfnGradInput(const float *dy, const float *in, const float *w1,
                        const float *w2, float *din, float *act, float *dz,
                        int64_t experts, int64_t rows, int64_t hidden,
                        int64_t ffn, Activation f);
/// The weight-gradient half (expert_ffn_grad_weight): per expert
/// dw1 = inᵀ·dz, dw2 = actᵀ·dy; expertWeightGrad(in, dz) then
/// expertWeightGrad(act, dy), so that it is bitwise the two split ops.
void expertFfnGradWeight(const float *dy, const float *in, const float *act,
                         const float *dz, float *dw1, float *dw2,
                         int64_t experts, int64_t rows, int64_t hidden,
                         int64_t ffn);
/// expert_weight_grad: per expert out[e] = a[e]ᵀ·b[e], with a
/// [experts, rows, x], b [experts, rows, y] and out [experts, x, y]; one
/// GEMM per expert.
void expertWeightGrad(const float *a, const float *b, float *out,
                      int64_t experts, int64_t rows, int64_t x, int64_t y);

/// Copies the box `sizes` at `srcOffsets` of `src` (shape srcShape) to
/// `dstOffsets` of `dst` (shape dstShape); elements of `elemBytes` bytes.
void copyBox(const char *src, const std::vector<int64_t> &srcShape,
             const std::vector<int64_t> &srcOffsets, char *dst,
             const std::vector<int64_t> &dstShape,
             const std::vector<int64_t> &dstOffsets,
             const std::vector<int64_t> &sizes, int64_t elemBytes);

} // namespace lina::rt::cpu

#endif // LINA_RT_KERNELS_H
