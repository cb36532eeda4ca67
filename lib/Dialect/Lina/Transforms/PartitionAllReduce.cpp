//===- PartitionAllReduce.cpp - Split all_reduce into partitions ----------===//
//
// Part of the Lina project.
//
/// Splits every lina.all_reduce larger than `partition-bytes` into
/// fixed-size all_reduce ops over contiguous slices of the flattened
/// tensor. Collectives are not preemptible once started; equal, bounded
/// pieces are what lets a gradient all-reduce yield to an all_to_all.
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/Transforms/Passes.h"
#include "lina/Support/CostModel.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "lina-partition-allreduce"

namespace mlir::lina {
#define GEN_PASS_DEF_LINAPARTITIONALLREDUCEPASS
#include "lina/Dialect/Lina/Transforms/Passes.h.inc"
} // namespace mlir::lina

using namespace mlir;
using namespace mlir::lina;

namespace {
struct LinaPartitionAllReducePass
    : public mlir::lina::impl::LinaPartitionAllReducePassBase<
          LinaPartitionAllReducePass> {
  using Base::Base;

  /// Reads the cluster file once (not once per function) for
  /// partition-bytes=auto.
  LogicalResult initialize(MLIRContext *context) override {
    model.reset();
    if (partitionBytes.isAuto() &&
        !(model = loadCostModel(context, getArgument(), clusterFile)))
      return failure();
    return success();
  }

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    SmallVector<AllReduceOp> ops;
    func.walk([&](AllReduceOp op) { ops.push_back(op); });
    int64_t split = 0, parts = 0;
    for (AllReduceOp op : ops) {
      int64_t bytes;
      if (partitionBytes.isAuto()) {
        assert(model && "initialize loads the cost model for 'auto'");
        if (failed(checkGroupFits(op, op.getGroupSize(), *model)))
          return signalPassFailure();
        bytes = model->choosePartitionBytes(op.getGroupSize());
      } else {
        bytes = partitionBytes.getNumber();
      }
      FailureOr<int64_t> count = partition(op, bytes);
      if (failed(count))
        return signalPassFailure();
      if (*count) {
        ++split;
        parts += *count;
      }
    }
    numSplit += split;
    numPartitions += parts;
    if (report)
      emitRemark(func.getLoc())
          << "lina-partition-allreduce: split " << split
          << " all_reduce ops into " << parts << " partitions";
  }

  /// Replaces `op` by its partitions of at most `limit` bytes; returns their
  /// number, or 0 when `op` is small enough to stay whole.
  FailureOr<int64_t> partition(AllReduceOp op, int64_t limit) {
    RankedTensorType type = op.getInput().getType();
    int64_t bytes = getTensorBytes(type);
    if (bytes <= limit)
      return 0;
    if (op.getPartitionAttr())
      return op->emitOpError()
             << "is already a partition (" << bytes
             << " bytes) larger than partition-bytes=" << limit
             << "; partition each all_reduce once, with the final size";
    int64_t elementBytes = (type.getElementTypeBitWidth() + 7) / 8;
    int64_t perPart = limit / elementBytes;
    if (perPart == 0)
      return op->emitOpError()
             << "cannot be partitioned: partition-bytes=" << limit
             << " is smaller than one element (" << elementBytes << " bytes)";
    int64_t numel = type.getNumElements();
    int64_t count = (numel + perPart - 1) / perPart;
    LLVM_DEBUG(llvm::dbgs() << "splitting " << op << " into " << count
                            << " partitions of " << perPart << " elements\n");

    OpBuilder b(op);
    Location loc = op.getLoc();
    Value flat = op.getInput();
    SmallVector<ReassociationIndices> reassociation;
    if (type.getRank() != 1) {
      ReassociationIndices all;
      for (int64_t i = 0; i < type.getRank(); ++i)
        all.push_back(i);
      reassociation.push_back(all);
      flat = b.create<tensor::CollapseShapeOp>(
          loc, RankedTensorType::get({numel}, type.getElementType()), flat,
          reassociation);
    }
    SmallVector<Value> parts;
    for (int64_t i = 0; i < count; ++i) {
      int64_t offset = i * perPart;
      int64_t size = std::min(perPart, numel - offset);
      Value slice = b.create<tensor::ExtractSliceOp>(
          loc, flat, ArrayRef<OpFoldResult>{b.getIndexAttr(offset)},
          ArrayRef<OpFoldResult>{b.getIndexAttr(size)},
          ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
      auto part = b.create<AllReduceOp>(
          loc, slice.getType(), slice, op.getGroupAttr(), op.getReductionAttr(),
          op.getPriorityAttr(),
          PartitionAttr::get(op.getContext(), i, count, offset, numel));
      // Keep discardable attributes (e.g. names) on every piece.
      for (NamedAttribute attr : op->getDiscardableAttrs())
        part->setAttr(attr.getName(), attr.getValue());
      parts.push_back(part);
    }
    Value joined = b.create<tensor::ConcatOp>(loc, /*dim=*/0, parts);
    if (type.getRank() != 1)
      joined =
          b.create<tensor::ExpandShapeOp>(loc, type, joined, reassociation);
    op.replaceAllUsesWith(joined);
    op.erase();
    return count;
  }

  /// The cost model of partition-bytes=auto, loaded by `initialize`; shared
  /// by the copies of this pass that run on other threads.
  std::shared_ptr<const ::lina::CostModel> model;
};
} // namespace
