//===- PrioritizeAllToAll.cpp - all_to_all before all_reduce --------------===//
//
// Part of the Lina project.
//
/// Gives every all_to_all high priority and every all_reduce (partition)
/// low priority, moves low-priority all_reduce ops out of the window
/// between an all_to_all's producer and the all_to_all, and marks the
/// compute that produces all_to_all inputs with `lina.hold_low`.
///
/// The runtime issues collectives in program order across its two queues
/// (every rank in the same order), so the place of an all_reduce in the
/// block is the place where it is issued: one left between an all_to_all's
/// producer and the all_to_all would be issued first, and share the
/// network with it.
///
/// One forward scan per block, linear in its size: an all_reduce met while
/// the window of a later all_to_all is open (all of its producers in the
/// block already placed) is deferred, and so is every memory-effect-free op
/// that uses a deferred result; the deferred ops are placed, in their
/// order, after the next all_to_all once no window is open. An op that may
/// not move (a side effect, a terminator, or an all_to_all) and uses a
/// deferred result places every deferred op first. Ops with memory effects
/// are never moved, so their relative order is kept, and every use stays
/// after its definition.
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/Transforms/Passes.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLExtras.h"
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

static constexpr llvm::StringLiteral kHoldLow = LinaDialect::kHoldLowAttrName;

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

/// Reorders one block in a single forward scan (see the file comment).
class BlockScheduler {
public:
  explicit BlockScheduler(Block &block) : block(block) {}

  /// Returns the number of all_reduce ops placed after an all_to_all they
  /// preceded.
  int64_t run(MLIRContext *ctx, int64_t &holdMarks);

private:
  void place(Operation *op);
  void placeDeferred();
  bool usesDeferred(Operation *op) const;

  Block &block;
  SmallVector<Operation *> order;
  llvm::SetVector<Operation *> deferred;
  /// Same-block producers not yet placed, per all_to_all with a window.
  llvm::DenseMap<Operation *, unsigned> remaining;
  /// The all_to_all ops each producer opens a window for.
  llvm::DenseMap<Operation *, SmallVector<Operation *, 2>> opens;
  /// all_to_all ops whose producers are all placed and that are not.
  unsigned openWindows = 0;
  /// Deferred all_reduce ops that an all_to_all was placed before.
  llvm::SmallPtrSet<Operation *, 16> passed;
};
} // namespace

int64_t BlockScheduler::run(MLIRContext *ctx, int64_t &holdMarks) {
  for (Operation &op : block) {
    auto a2a = dyn_cast<AllToAllOp>(&op);
    if (!a2a)
      continue;
    // The input, and for the variable form the counts, which must be
    // ready before the all_to_all can start too.
    llvm::SetVector<Operation *> producers;
    for (Value operand : a2a->getOperands())
      collectProducers(operand, producers);
    unsigned inBlock = 0;
    for (Operation *p : producers) {
      if (p->getBlock() != &block)
        continue;
      if (!isa<AllToAllOp, AllReduceOp>(p) && !p->hasAttr(kHoldLow)) {
        p->setAttr(kHoldLow, UnitAttr::get(ctx));
        ++holdMarks;
      }
      opens[p].push_back(a2a);
      ++inBlock;
    }
    // An all_to_all of arguments only has no window.
    if (inBlock)
      remaining[a2a] = inBlock;
  }
  if (remaining.empty())
    return 0;

  SmallVector<Operation *> original;
  for (Operation &op : block)
    original.push_back(&op);
  for (Operation *op : original) {
    bool isLow = isa<AllReduceOp>(op);
    bool movable = !op->hasTrait<OpTrait::IsTerminator>() &&
                   !isa<AllToAllOp>(op) && isMemoryEffectFree(op);
    bool uses = !deferred.empty() && usesDeferred(op);
    if (movable && ((isLow && openWindows > 0) || uses)) {
      LLVM_DEBUG(llvm::dbgs() << "deferring " << *op << "\n");
      deferred.insert(op);
      continue;
    }
    // An op that stays reads a deferred result: place those first.
    if (uses)
      placeDeferred();
    place(op);
    if (isa<AllToAllOp>(op)) {
      for (Operation *d : deferred)
        if (isa<AllReduceOp>(d))
          passed.insert(d);
      if (openWindows == 0)
        placeDeferred();
    }
  }
  placeDeferred();
  assert(order.size() == original.size() && "every op placed once");
  if (!llvm::equal(order, original)) {
    for (Operation *op : order)
      op->moveBefore(&block, block.end());
  }
  return static_cast<int64_t>(passed.size());
}

void BlockScheduler::place(Operation *op) {
  order.push_back(op);
  if (auto it = remaining.find(op); it != remaining.end() && it->second == 0)
    --openWindows; // its window closes
  auto it = opens.find(op);
  if (it == opens.end())
    return;
  for (Operation *a2a : it->second)
    if (--remaining[a2a] == 0)
      ++openWindows;
}

void BlockScheduler::placeDeferred() {
  // Deferred ops only read each other, earlier ones, or ops placed before
  // them: placing them in their original order keeps dominance.
  for (Operation *op : deferred)
    place(op);
  deferred.clear();
}

bool BlockScheduler::usesDeferred(Operation *op) const {
  // Uses inside nested regions count too.
  return op
      ->walk([&](Operation *nested) {
        for (Value v : nested->getOperands())
          if (Operation *def = v.getDefiningOp(); def && deferred.contains(def))
            return WalkResult::interrupt();
        return WalkResult::advance();
      })
      .wasInterrupted();
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
    Counts counts;

    if (mode == ScheduleMode::Serial) {
      // One queue: every collective normal priority, nothing held.
      func.walk([&](Operation *op) {
        if (auto a2a = dyn_cast<AllToAllOp>(op)) {
          a2a.setPriorityAttr(nullptr);
        } else if (auto ar = dyn_cast<AllReduceOp>(op)) {
          ar.setPriorityAttr(nullptr);
        } else if (op->hasAttr(kHoldLow)) {
          op->removeAttr(kHoldLow);
          ++counts.hold;
        }
      });
      if (report)
        emitRemark(func.getLoc()) << "lina-prioritize-alltoall: mode=serial, "
                                  << counts.hold << " hold_low marks removed";
      return;
    }

    llvm::SetVector<Block *> blocks;
    func.walk([&](Operation *op) {
      if (auto a2a = dyn_cast<AllToAllOp>(op)) {
        if (a2a.getPriorityAttr() != high) {
          a2a.setPriorityAttr(high);
          ++counts.high;
        }
        blocks.insert(a2a->getBlock());
      } else if (auto ar = dyn_cast<AllReduceOp>(op)) {
        if (ar.getPriorityAttr() != low) {
          ar.setPriorityAttr(low);
          ++counts.low;
        }
      }
    });
    // The ds baseline issues every all_reduce where the program has it.
    if (mode == ScheduleMode::Lina)
      for (Block *block : blocks)
        counts.moved += BlockScheduler(*block).run(ctx, counts.hold);

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
};
} // namespace
