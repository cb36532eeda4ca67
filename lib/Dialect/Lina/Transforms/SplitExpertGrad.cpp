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

#include <limits>
#include <string>

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
      emitReport(func, 0, 0, 0);
      return;
    }
    llvm::DenseMap<Operation *, int64_t> position;
    func.walk([&](Block *block) {
      int64_t i = 0;
      for (Operation &op : *block)
        position[&op] = i++;
    });
    int64_t split = 0, deferred = 0, sunk = 0;
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
      grad.getInputGrad().replaceAllUsesWith(input.getInputGrad());
      if (separateWeightGrads) {
        placeWeightGrads(grad, input, b, before, here, position, sunk);
      } else {
        auto weight = b.create<ExpertFfnGradWeightOp>(
            grad.getLoc(),
            TypeRange{grad.getW1Grad().getType(), grad.getW2Grad().getType()},
            grad.getGrad(), grad.getInput(), input.getAct(), input.getPreGrad(),
            grad.getChunkAttr());
        grad.getW1Grad().replaceAllUsesWith(weight.getW1Grad());
        grad.getW2Grad().replaceAllUsesWith(weight.getW2Grad());
      }
      position.erase(grad); // its address may be reused by a new op
      grad->erase();
      ++split;
    }
    numSplit += split;
    numDeferred += deferred;
    numSunk += sunk;
    emitReport(func, split, deferred, sunk);
  }

  /// Emits the two weight gradients of `grad` as lina.expert_weight_grad
  /// ops. The one whose first user comes first goes at `b`'s insertion
  /// point (the weight half's place), so that its all_reduce can start
  /// while the other's GEMM runs. The other goes later, but never past an
  /// op that waits on the network for an all_to_all issued after the input
  /// half (the place the weight GEMMs fill): right before its own first
  /// user or before such an op, whichever comes first, scanning from
  /// `before` (the weight half's place, null if none was found). With
  /// interleaved micro-batches whose weight halves share a place, this
  /// computes the first gradient of every micro-batch before the second
  /// ones.
  void placeWeightGrads(ExpertFfnGradOp grad, ExpertFfnGradInputOp input,
                        OpBuilder &b, Operation *before, int64_t here,
                        const llvm::DenseMap<Operation *, int64_t> &position,
                        int64_t &sunk) {
    Block *block = grad->getBlock();
    auto pos = [&](Operation *op) {
      auto it = op ? position.find(op) : position.end();
      return it == position.end() ? std::numeric_limits<int64_t>::max()
                                  : it->second;
    };
    auto firstUser = [&](Value v) -> Operation * {
      Operation *first = nullptr;
      for (Operation *user : v.getUsers())
        if (Operation *mine = block->findAncestorOpInBlock(*user);
            mine && position.count(mine) && pos(mine) < pos(first))
          first = mine;
      return first;
    };
    struct Part {
      Value old, input, grad;
      Operation *user;
    };
    Part parts[2] = {{grad.getW1Grad(), grad.getInput(), input.getPreGrad(),
                      firstUser(grad.getW1Grad())},
                     {grad.getW2Grad(), input.getAct(), grad.getGrad(),
                      firstUser(grad.getW2Grad())}};
    if (pos(parts[1].user) < pos(parts[0].user))
      std::swap(parts[0], parts[1]);
    // Where the second goes: the first op from `before` on that is its
    // first user or waits on the network.
    Operation *limit = nullptr;
    int scanned = 0;
    for (Operation *op = before; op && scanned < kMaxScan;
         op = op->getNextNode(), ++scanned) {
      if (!position.count(op))
        continue; // an op made by this pass
      if (op == parts[1].user || waitsOnLaterAllToAll(op, here, position)) {
        limit = op;
        break;
      }
    }
    auto first = b.create<ExpertWeightGradOp>(
        grad.getLoc(), parts[0].old.getType(), parts[0].input, parts[0].grad,
        grad.getChunkAttr());
    if (limit && limit != before) {
      b.setInsertionPoint(limit);
      ++sunk;
    } else {
      b.setInsertionPointAfter(first);
    }
    auto second = b.create<ExpertWeightGradOp>(
        grad.getLoc(), parts[1].old.getType(), parts[1].input, parts[1].grad,
        grad.getChunkAttr());
    parts[0].old.replaceAllUsesWith(first.getResult());
    parts[1].old.replaceAllUsesWith(second.getResult());
  }

  void emitReport(func::FuncOp func, int64_t split, int64_t deferred,
                  int64_t sunk) {
    if (report)
      emitRemark(func.getLoc())
          << "lina-split-expert-grad: split " << split
          << " expert_ffn_grad ops, " << deferred
          << " weight halves placed where the compute stream would wait for "
             "an all_to_all"
          << (separateWeightGrads ? ", " + std::to_string(sunk) +
                                        " second weight gradients placed "
                                        "before their first use"
                                  : std::string());
  }
};

} // namespace
