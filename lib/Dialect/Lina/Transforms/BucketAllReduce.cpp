//===- BucketAllReduce.cpp - Merge gradient all_reduce ops into buckets ---===//
//
// Part of the Lina project.
//
/// The data-parallel baseline's gradient buckets (as PyTorch DDP and
/// DeepSpeed do): consecutive all_reduce ops of one block, in program order
/// (the backward pass produces gradients in reverse layer order), are
/// gathered into buckets of about `bucket-bytes` bytes; each bucket is one
/// all_reduce of the concatenation of its flattened gradients, placed where
/// the last of them is ready, and split back exactly. Sums over a group are
/// element-wise, so the results are those of the separate all_reduce ops.
///
/// A bucket closes when it reaches `bucket-bytes`, when the next all_reduce
/// differs in group, reduction, element type, priority or partition, or
/// when a result of the bucket is used before the next all_reduce (the
/// merged result is only available at the end of the bucket).
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/Transforms/Passes.h"
#include "lina/Support/CheckedMath.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "lina-bucket-allreduce"

namespace mlir::lina {
#define GEN_PASS_DEF_LINABUCKETALLREDUCEPASS
#include "lina/Dialect/Lina/Transforms/Passes.h.inc"
} // namespace mlir::lina

using namespace mlir;
using namespace mlir::lina;

/// Whether `a` and `b` may share one all_reduce.
static bool compatible(AllReduceOp a, AllReduceOp b) {
  return a.getGroupAttr() == b.getGroupAttr() &&
         a.getReductionAttr() == b.getReductionAttr() &&
         a.getPriorityAttr() == b.getPriorityAttr() &&
         a.getInput().getType().getElementType() ==
             b.getInput().getType().getElementType() &&
         !a.getPartitionAttr() && !b.getPartitionAttr();
}

namespace {
struct LinaBucketAllReducePass
    : public mlir::lina::impl::LinaBucketAllReducePassBase<
          LinaBucketAllReducePass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    int64_t limit = bucketBytes;
    if (limit <= 0) {
      func.emitError() << "invalid value '" << limit
                       << "' for option 'bucket-bytes': must be positive";
      return signalPassFailure();
    }
    llvm::SetVector<Block *> blocks;
    func.walk([&](AllReduceOp op) { blocks.insert(op->getBlock()); });
    int64_t buckets = 0, merged = 0;
    for (Block *block : blocks)
      if (failed(runOnBlock(*block, buckets, merged)))
        return signalPassFailure();
    numBuckets += buckets;
    numMerged += merged;
    if (report)
      emitRemark(func.getLoc())
          << "lina-bucket-allreduce: merged " << merged
          << " all_reduce ops into " << buckets << " buckets";
  }

  LogicalResult runOnBlock(Block &block, int64_t &buckets, int64_t &merged) {
    // Position of every op of the block, and of the first use of each
    // all_reduce (uses in nested regions count at their ancestor).
    llvm::DenseMap<Operation *, int64_t> position;
    int64_t index = 0;
    for (Operation &op : block)
      position[&op] = index++;
    auto firstUse = [&](AllReduceOp op) {
      int64_t first = index;
      for (Operation *user : op->getUsers())
        if (Operation *anc = block.findAncestorOpInBlock(*user))
          first = std::min(first, position.lookup(anc));
      return first;
    };

    SmallVector<SmallVector<AllReduceOp>> groups;
    SmallVector<AllReduceOp> current;
    int64_t currentBytes = 0, currentFirstUse = index;
    auto close = [&] {
      if (current.size() > 1)
        groups.push_back(current);
      current.clear();
      currentBytes = 0;
      currentFirstUse = index;
    };
    for (Operation &op : block) {
      auto ar = dyn_cast<AllReduceOp>(&op);
      if (!ar)
        continue;
      if (ar.getInput().getType().getRank() == 0) {
        close(); // a scalar stays alone
        continue;
      }
      std::optional<int64_t> bytes = ::lina::checkedMul(
          ar.getInput().getType().getNumElements(),
          (ar.getInput().getType().getElementTypeBitWidth() + 7) / 8);
      if (!bytes)
        return ar.emitOpError() << "has a size that overflows 64 bits";
      if (!current.empty() && (!compatible(current.front(), ar) ||
                               currentFirstUse <= position.lookup(&op) ||
                               currentBytes >= bucketBytes))
        close();
      current.push_back(ar);
      currentBytes = ::lina::checkedAdd(currentBytes, *bytes)
                         .value_or(std::numeric_limits<int64_t>::max());
      currentFirstUse = std::min(currentFirstUse, firstUse(ar));
    }
    close();
    for (ArrayRef<AllReduceOp> group : groups) {
      if (failed(merge(group)))
        return failure();
      ++buckets;
      merged += static_cast<int64_t>(group.size());
    }
    return success();
  }

  /// Replaces the all_reduce ops of `group` by one over their flattened
  /// concatenation, at the place of the last one.
  LogicalResult merge(ArrayRef<AllReduceOp> group) {
    AllReduceOp last = group.back();
    OpBuilder b(last);
    Location loc = last.getLoc();
    SmallVector<Value> flat;
    SmallVector<int64_t> sizes;
    int64_t total = 0;
    for (AllReduceOp op : group) {
      RankedTensorType type = op.getInput().getType();
      int64_t numel = type.getNumElements();
      std::optional<int64_t> sum = ::lina::checkedAdd(total, numel);
      if (!sum)
        return op.emitOpError() << "bucket size overflows 64 bits";
      total = *sum;
      sizes.push_back(numel);
      flat.push_back(flatten(b, loc, op.getInput()));
    }
    Value cat = b.create<tensor::ConcatOp>(loc, /*dim=*/0, flat);
    auto bucket = b.create<AllReduceOp>(
        loc, cat.getType(), cat, last.getGroupAttr(), last.getReductionAttr(),
        last.getPriorityAttr(), nullptr);
    bucket->setAttr(LinaDialect::kBucketAttrName,
                    b.getI64IntegerAttr(static_cast<int64_t>(group.size())));
    LLVM_DEBUG(llvm::dbgs() << "bucket of " << group.size() << " ops, " << total
                            << " elements\n");
    int64_t offset = 0;
    for (auto [index, numel] : llvm::enumerate(sizes)) {
      AllReduceOp op = group[index];
      RankedTensorType type = op.getInput().getType();
      Value piece = b.create<tensor::ExtractSliceOp>(
          loc, bucket.getResult(),
          ArrayRef<OpFoldResult>{b.getIndexAttr(offset)},
          ArrayRef<OpFoldResult>{b.getIndexAttr(numel)},
          ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
      if (type.getRank() != 1)
        piece = b.create<tensor::ExpandShapeOp>(loc, type, piece,
                                                fullReassociation(type));
      op.replaceAllUsesWith(piece);
      offset += numel;
    }
    for (AllReduceOp op : group)
      op->erase();
    return success();
  }

  static SmallVector<ReassociationIndices>
  fullReassociation(RankedTensorType type) {
    ReassociationIndices all;
    for (int64_t i = 0; i < type.getRank(); ++i)
      all.push_back(i);
    return {all};
  }

  static Value flatten(OpBuilder &b, Location loc, Value value) {
    auto type = cast<RankedTensorType>(value.getType());
    if (type.getRank() == 1)
      return value;
    return b.create<tensor::CollapseShapeOp>(
        loc,
        RankedTensorType::get({type.getNumElements()}, type.getElementType()),
        value, fullReassociation(type));
  }
};
} // namespace
