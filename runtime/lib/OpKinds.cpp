//===- OpKinds.cpp - Per-kind cost of plan ops ----------------------------===//
//
// Part of the Lina project.
//
// The roofline inputs of each op kind of OpKinds.def: the FLOPs it
// computes, whether its kernels are GEMMs, and how many kernels it
// launches (docs/SIMULATOR.md). The simulator and the scheduler's
// admission estimates read them through opCost(); a new op kind adds its
// cost<Kind> here.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/OpKinds.h"

#include "lina/Support/CheckedMath.h"

#include <algorithm>

using namespace lina::rt;

namespace {

double dim(const Plan &plan, int id, size_t i) {
  return static_cast<double>(plan.buffer(id).shape.at(i));
}

/// Local experts of an expert FFN (input `input`'s leading dimension).
int experts(const Plan &plan, const Op &op, int input) {
  int64_t e = plan.buffer(op.inputs.at(input)).shape.at(0);
  return static_cast<int>(std::clamp<int64_t>(e, 1, lina::Limits::kMaxExperts));
}

/// Everything else is one memory-bound kernel.
OpCost memoryBound(const Plan &, const Op &) { return {0, 0, false, 1}; }

/// `factor` x T x I x O FLOPs of GEMMs on token input `x` [T, I] and
/// weight `w` [I, O], in `kernels` GEMM kernels.
OpCost gemmCost(const Plan &p, int x, int w, double factor, int kernels) {
  return {factor * dim(p, x, 0) * dim(p, x, 1) * dim(p, w, 1), 0, true,
          kernels};
}

// A dense layer is one GEMM (2 T I O), its gradient three (recompute, dx,
// dw); the gate a GEMM and a top-k, its gradient three; an expert FFN two
// GEMMs and an activation per local expert, its gradient five GEMMs (the
// first recomputed, then dw2, the activation's gradient, dw1 and dx: 2.5
// times the forward FLOPs) and eight kernels. Split in two, its input half
// (expert_ffn_grad_input) runs three of the GEMMs (z, dz, din) and both
// activation kernels, its weight half (expert_ffn_grad_weight) the other
// two GEMMs (dw1, dw2), and expert_weight_grad one of those two: the two
// expert_weight_grad ops that replace a weight half cost what it costs.
OpCost costDense(const Plan &p, const Op &op) {
  return gemmCost(p, op.inputs[0], op.inputs[1], 2, 1);
}
OpCost costDenseGrad(const Plan &p, const Op &op) {
  return gemmCost(p, op.inputs[1], op.inputs[2], 6, 3);
}
OpCost costGate(const Plan &p, const Op &op) {
  return gemmCost(p, op.inputs[0], op.inputs[1], 2, 2);
}
OpCost costGateGrad(const Plan &p, const Op &op) {
  return gemmCost(p, op.inputs[1], op.inputs[2], 6, 3);
}
OpCost costExpertFfn(const Plan &p, const Op &op) {
  return {4 * dim(p, op.inputs[0], 0) * dim(p, op.inputs[0], 1) *
              dim(p, op.inputs[0], 2) * dim(p, op.inputs[1], 2),
          0, true, 3 * experts(p, op, 0)};
}
/// `factor` x El x N x H x F of an expert FFN gradient: input 1 is
/// in[El,N,H] and input 2 ends in F (w1[El,H,F], or act[El,N,F] for the
/// weight half).
double expertGradFlops(const Plan &p, const Op &op, double factor) {
  return factor * dim(p, op.inputs[1], 0) * dim(p, op.inputs[1], 1) *
         dim(p, op.inputs[1], 2) * dim(p, op.inputs[2], 2);
}
OpCost costExpertFfnGrad(const Plan &p, const Op &op) {
  return {expertGradFlops(p, op, 10), 0, true, 8 * experts(p, op, 1)};
}
OpCost costExpertFfnGradInput(const Plan &p, const Op &op) {
  return {expertGradFlops(p, op, 6), 0, true, 5 * experts(p, op, 1)};
}
OpCost costExpertFfnGradWeight(const Plan &p, const Op &op) {
  return {expertGradFlops(p, op, 4), 0, true, 2 * experts(p, op, 1)};
}
/// a[El,N,X]ᵀ·b[El,N,Y]: 2·El·N·X·Y FLOPs, one GEMM per local expert.
OpCost costExpertWeightGrad(const Plan &p, const Op &op) {
  return {2 * dim(p, op.inputs[0], 0) * dim(p, op.inputs[0], 1) *
              dim(p, op.inputs[0], 2) * dim(p, op.inputs[1], 2),
          0, true, experts(p, op, 0)};
}
// Permutations, adds and copies are bound by memory.
OpCost costDispatch(const Plan &p, const Op &op) { return memoryBound(p, op); }
OpCost costDispatchGrad(const Plan &p, const Op &op) {
  return memoryBound(p, op);
}
OpCost costCombine(const Plan &p, const Op &op) { return memoryBound(p, op); }
OpCost costCombineGrad(const Plan &p, const Op &op) {
  return memoryBound(p, op);
}
OpCost costAdd(const Plan &p, const Op &op) { return memoryBound(p, op); }
OpCost costCopy(const Plan &p, const Op &op) { return memoryBound(p, op); }
// Collectives are costed by the network model, not here.
OpCost costAllToAll(const Plan &p, const Op &op) { return memoryBound(p, op); }
OpCost costAllToAllV(const Plan &p, const Op &op) { return memoryBound(p, op); }
OpCost costAllReduce(const Plan &p, const Op &op) { return memoryBound(p, op); }

} // namespace

OpCost lina::rt::opCost(const Plan &plan, const Op &op) {
  using CostFn = OpCost (*)(const Plan &, const Op &);
  static constexpr CostFn kCosts[] = {
#define LINA_OP_KIND(Kind, name, inputs, outputs, collective, attrs)           \
  &cost##Kind,
#include "lina/rt/OpKinds.def"
  };
  OpCost cost = kCosts[static_cast<int>(op.kind)](plan, op);
  for (int id : op.inputs)
    cost.bytes += static_cast<double>(plan.buffer(id).numBytes());
  for (int id : op.outputs)
    cost.bytes += static_cast<double>(plan.buffer(id).numBytes());
  return cost;
}
