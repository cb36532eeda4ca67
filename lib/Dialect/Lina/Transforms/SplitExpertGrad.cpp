//===- SplitExpertGrad.cpp - Input gradient first, weight gradients later -===//
//
// Part of the Lina project.
//
/// Splits each lina.expert_ffn_grad into lina.expert_ffn_grad_input (three
/// GEMMs per expert: the recomputed pre-activation, the gradient before the
/// activation and the input gradient) and lina.expert_ffn_grad_weight (the
/// two weight-gradient GEMMs): the backward-for-input / backward-for-weights
/// split of zero-bubble pipeline schedules and DualPipe, applied to the
/// expert all-to-all. The input half stays where the op was, so the
/// all_to_all that returns the input gradient starts after three of the
/// five GEMMs. The weight half, which only the gradient all_reduce waits
/// for, goes where the compute stream would otherwise idle: before the first
/// later op that reads the result of an all_to_all issued after the input
/// half (that op waits for the network), or before the first use of a
/// weight gradient if that comes first. With interleaved micro-batches this
/// gives the compute order in(A), in(B), weight(A), rest(A), weight(B), ...
/// while the all_to_alls of A and B are in flight.
///
/// The scan for that place visits at most kMaxScan ops per expert_ffn_grad,
/// so the pass is linear in the function's size; positions are those of the
/// original block, taken once, so no order query recomputes the block's
/// order after an insertion.
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/ADT/SmallVector.h"

namespace mlir::lina {
#define GEN_PASS_DEF_LINASPLITEXPERTGRADPASS
#include "lina/Dialect/Lina/Transforms/Passes.h.inc"
} // namespace mlir::lina

using namespace mlir;
using namespace mlir::lina;

namespace {

/// Ops scanned after an expert_ffn_grad for the place of its weight half.
constexpr int kMaxScan = 1024;

/// True if `op` (or an op nested in it) reads the result of an all_to_all
/// placed after position `after` of its block.
bool waitsOnLaterAllToAll(
    Operation *op, int64_t after,
    const llvm::DenseMap<Operation *, int64_t> &position) {
  Block *block = op->getBlock();
  bool found = false;
  op->walk([&](Operation *inner) {
    for (Value v : inner->getOperands()) {
      auto a2a = v.getDefiningOp<AllToAllOp>();
      if (!a2a)
        continue;
      Operation *mine = block->findAncestorOpInBlock(*a2a);
      auto it = mine ? position.find(mine) : position.end();
      if (it != position.end() && it->second > after) {
        found = true;
        return WalkResult::interrupt();
      }
    }
    return WalkResult::advance();
  });
  return found;
}

struct SplitExpertGradPass
    : public mlir::lina::impl::LinaSplitExpertGradPassBase<
          SplitExpertGradPass> {
  using LinaSplitExpertGradPassBase::LinaSplitExpertGradPassBase;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    SmallVector<ExpertFfnGradOp> grads;
    func.walk([&](ExpertFfnGradOp op) { grads.push_back(op); });
    if (grads.empty()) {
      emitReport(func, 0, 0);
      return;
    }
    llvm::DenseMap<Operation *, int64_t> position;
    func.walk([&](Block *block) {
      int64_t i = 0;
      for (Operation &op : *block)
        position[&op] = i++;
    });
    int64_t split = 0, deferred = 0;
    for (ExpertFfnGradOp grad : grads) {
      Block *block = grad->getBlock();
      // Where the weight half goes: before the first later op of the block
      // that waits on the network for an all_to_all issued after this op
      // (the compute stream would idle there), or before the first use of
      // a weight gradient, whichever comes first.
      int64_t here = position.lookup(grad);
      llvm::SmallPtrSet<Operation *, 4> uses;
      for (Value v : {grad.getW1Grad(), grad.getW2Grad()})
        for (Operation *user : v.getUsers())
          if (Operation *mine = block->findAncestorOpInBlock(*user))
            uses.insert(mine);
      Operation *before = nullptr;
      int scanned = 0;
      for (Operation *op = grad->getNextNode(); op && scanned < kMaxScan;
           op = op->getNextNode(), ++scanned) {
        auto it = position.find(op);
        if (it == position.end())
          continue; // a half made by this pass
        if (uses.contains(op) || waitsOnLaterAllToAll(op, here, position)) {
          before = op;
          break;
        }
      }
      OpBuilder b(grad);
      auto in = cast<RankedTensorType>(grad.getInput().getType());
      auto w1 = cast<RankedTensorType>(grad.getW1().getType());
      auto hidden = RankedTensorType::get(
          {in.getDimSize(0), in.getDimSize(1), w1.getDimSize(2)},
          in.getElementType());
      auto input = b.create<ExpertFfnGradInputOp>(
          grad.getLoc(),
          TypeRange{grad.getInputGrad().getType(), hidden, hidden},
          grad.getGrad(), grad.getInput(), grad.getW1(), grad.getW2(),
          grad.getActivationAttr(), grad.getChunkAttr());
      if (before && before != grad->getNextNode()) {
        b.setInsertionPoint(before);
        ++deferred;
      }
      auto weight = b.create<ExpertFfnGradWeightOp>(
          grad.getLoc(),
          TypeRange{grad.getW1Grad().getType(), grad.getW2Grad().getType()},
          grad.getGrad(), grad.getInput(), input.getAct(), input.getPreGrad(),
          grad.getChunkAttr());
      grad.getInputGrad().replaceAllUsesWith(input.getInputGrad());
      grad.getW1Grad().replaceAllUsesWith(weight.getW1Grad());
      grad.getW2Grad().replaceAllUsesWith(weight.getW2Grad());
      position.erase(grad); // its address may be reused by a new op
      grad->erase();
      ++split;
    }
    numSplit += split;
    numDeferred += deferred;
    emitReport(func, split, deferred);
  }

  void emitReport(func::FuncOp func, int64_t split, int64_t deferred) {
    if (report)
      emitRemark(func.getLoc())
          << "lina-split-expert-grad: split " << split
          << " expert_ffn_grad ops, " << deferred
          << " weight halves placed where the compute stream would wait for "
             "an all_to_all";
  }
};

} // namespace
