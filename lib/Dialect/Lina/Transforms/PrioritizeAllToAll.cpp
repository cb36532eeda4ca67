//===- PrioritizeAllToAll.cpp - all_to_all before all_reduce --------------===//
//
// Part of the Lina project.
//
/// Gives every all_to_all high priority and every all_reduce (partition)
/// low priority, moves low-priority all_reduce ops out of the window
/// between an all_to_all's producer and the all_to_all, and marks the
/// compute that produces all_to_all inputs with `lina.hold_low`. The
/// runtime's scheduler reads these marks: a low-priority collective is
/// never started while an all_to_all is queued, running, or about to be
/// issued (its producer is running).
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/Transforms/Passes.h"

#include "mlir/Analysis/SliceAnalysis.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "lina-prioritize-alltoall"

namespace mlir::lina {
#define GEN_PASS_DEF_LINAPRIORITIZEALLTOALLPASS
#include "lina/Dialect/Lina/Transforms/Passes.h.inc"
} // namespace mlir::lina

using namespace mlir;
using namespace mlir::lina;

static constexpr llvm::StringLiteral kHoldLow = "lina.hold_low";

/// Ops that only reinterpret or slice storage: look through them to find
/// the compute that produces a collective's input.
static bool isViewLike(Operation *op) {
  return isa<tensor::ExtractSliceOp, tensor::CollapseShapeOp,
             tensor::ExpandShapeOp, tensor::ConcatOp>(op);
}

/// Collects the non-view ops producing `value` (through view-like ops).
static void collectProducers(Value value, llvm::SetVector<Operation *> &out) {
  SmallVector<Value> work{value};
  while (!work.empty()) {
    Value v = work.pop_back_val();
    Operation *def = v.getDefiningOp();
    if (!def)
      continue;
    if (isViewLike(def)) {
      for (Value operand : def->getOperands())
        work.push_back(operand);
      continue;
    }
    out.insert(def);
  }
}

namespace {
/// This run's counters, reported by `report=true`.
struct Counts {
  int64_t high = 0, low = 0, hold = 0, moved = 0;
};

struct LinaPrioritizeAllToAllPass
    : public mlir::lina::impl::LinaPrioritizeAllToAllPassBase<
          LinaPrioritizeAllToAllPass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    MLIRContext *ctx = &getContext();
    auto high = PriorityAttr::get(ctx, Priority::high);
    auto low = PriorityAttr::get(ctx, Priority::low);
    Counts counts;

    SmallVector<AllToAllOp> allToAlls;
    llvm::SmallPtrSet<Operation *, 8> moved;
    func.walk([&](Operation *op) {
      if (auto a2a = dyn_cast<AllToAllOp>(op)) {
        if (a2a.getPriorityAttr() != high) {
          a2a.setPriorityAttr(high);
          ++counts.high;
        }
        allToAlls.push_back(a2a);
      } else if (auto ar = dyn_cast<AllReduceOp>(op)) {
        if (ar.getPriorityAttr() != low) {
          ar.setPriorityAttr(low);
          ++counts.low;
        }
      }
    });

    for (AllToAllOp a2a : allToAlls) {
      // The input, and for the variable form the counts, which must be
      // ready before the all_to_all can start too.
      llvm::SetVector<Operation *> producers;
      for (Value operand : a2a->getOperands())
        collectProducers(operand, producers);
      Operation *latest = nullptr;
      for (Operation *p : producers) {
        if (p->getBlock() != a2a->getBlock())
          continue;
        if (!isa<AllToAllOp, AllReduceOp>(p) && !p->hasAttr(kHoldLow)) {
          p->setAttr(kHoldLow, UnitAttr::get(ctx));
          ++counts.hold;
        }
        if (!latest || latest->isBeforeInBlock(p))
          latest = p;
      }
      if (latest)
        sinkLowPriorityAfter(latest, a2a, moved);
    }
    counts.moved = static_cast<int64_t>(moved.size());

    numHigh += counts.high;
    numLow += counts.low;
    numHold += counts.hold;
    numMoved += counts.moved;
    if (report)
      emitRemark(func.getLoc())
          << "lina-prioritize-alltoall: " << counts.high << " high, "
          << counts.low << " low, " << counts.hold << " hold_low marks, "
          << counts.moved << " moved";
  }

  /// Moves the low-priority all_reduce ops strictly between `producer` and
  /// `a2a` (and the ops in that window that use their results) to just
  /// after `a2a`, unless `a2a` depends on them; adds the all_reduce ops
  /// moved to `moved`. Ops that `a2a` depends on stay, and since the
  /// backward slice is transitive, none of them uses a moved op: SSA
  /// dominance is kept.
  void sinkLowPriorityAfter(Operation *producer, AllToAllOp a2a,
                            llvm::SmallPtrSetImpl<Operation *> &moved) {
    llvm::SetVector<Operation *> dependsOn;
    BackwardSliceOptions options;
    options.inclusive = false;
    getBackwardSlice(a2a.getOperation(), &dependsOn, options);

    llvm::SetVector<Operation *> toMove;
    for (Operation *op = producer->getNextNode(); op && op != a2a;
         op = op->getNextNode()) {
      bool isLow = isa<AllReduceOp>(op);
      // Uses inside nested regions count too.
      bool usesMoved = false;
      op->walk([&](Operation *nested) {
        for (Value v : nested->getOperands())
          if (Operation *def = v.getDefiningOp(); def && toMove.contains(def))
            usesMoved = true;
      });
      if ((isLow || usesMoved) && !dependsOn.contains(op))
        toMove.insert(op);
    }
    Operation *anchor = a2a;
    for (Operation *op : toMove) {
      LLVM_DEBUG(llvm::dbgs() << "moving " << *op << " after " << a2a << "\n");
      op->moveAfter(anchor);
      anchor = op;
      if (isa<AllReduceOp>(op))
        moved.insert(op);
    }
  }
};
} // namespace
