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
struct LinaPrioritizeAllToAllPass
    : public mlir::lina::impl::LinaPrioritizeAllToAllPassBase<
          LinaPrioritizeAllToAllPass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    MLIRContext *ctx = &getContext();
    auto high = PriorityAttr::get(ctx, Priority::high);
    auto low = PriorityAttr::get(ctx, Priority::low);

    SmallVector<AllToAllOp> allToAlls;
    func.walk([&](Operation *op) {
      if (auto a2a = dyn_cast<AllToAllOp>(op)) {
        if (a2a.getPriorityAttr() != high) {
          a2a.setPriorityAttr(high);
          ++numHigh;
          ++highHere;
        }
        allToAlls.push_back(a2a);
      } else if (auto ar = dyn_cast<AllReduceOp>(op)) {
        if (ar.getPriorityAttr() != low) {
          ar.setPriorityAttr(low);
          ++numLow;
          ++lowHere;
        }
      }
    });

    for (AllToAllOp a2a : allToAlls) {
      llvm::SetVector<Operation *> producers;
      collectProducers(a2a.getInput(), producers);
      Operation *latest = nullptr;
      for (Operation *p : producers) {
        if (p->getBlock() != a2a->getBlock())
          continue;
        if (!isa<AllToAllOp, AllReduceOp>(p) && !p->hasAttr(kHoldLow)) {
          p->setAttr(kHoldLow, UnitAttr::get(ctx));
          ++numHold;
          ++holdHere;
        }
        if (!latest || latest->isBeforeInBlock(p))
          latest = p;
      }
      if (latest)
        sinkLowPriorityAfter(latest, a2a);
    }
    if (report)
      mlir::emitRemark(func.getLoc()) << "lina-prioritize-alltoall: " << highHere
                        << " high, " << lowHere << " low, " << holdHere
                        << " hold_low marks, " << movedHere << " moved";
  }
  int64_t highHere = 0, lowHere = 0, holdHere = 0, movedHere = 0;

  /// Moves the low-priority all_reduce ops strictly between `producer` and
  /// `a2a` (and the ops in that window that use their results) to just after
  /// `a2a`, unless `a2a` depends on them.
  void sinkLowPriorityAfter(Operation *producer, AllToAllOp a2a) {
    llvm::SetVector<Operation *> dependsOn;
    BackwardSliceOptions options;
    options.inclusive = false;
    getBackwardSlice(a2a.getOperation(), &dependsOn, options);

    llvm::SetVector<Operation *> toMove;
    for (Operation *op = producer->getNextNode(); op && op != a2a;
         op = op->getNextNode()) {
      bool isLow = isa<AllReduceOp>(op);
      bool usesMoved = llvm::any_of(op->getOperands(), [&](Value v) {
        Operation *def = v.getDefiningOp();
        return def && toMove.contains(def);
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
        {
        ++numMoved;
        ++movedHere;
      }
    }
  }
};
} // namespace
