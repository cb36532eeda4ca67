//===- LinaOps.cpp - Lina operation verifiers and helpers -----------------===//
//
// Part of the Lina project.
//
// ODS checks operand kinds and attribute ranges; the verifiers here check
// the rules that relate several operands: shapes that must agree, axes in
// range, and (for collectives, once the grid symbol is known) sizes that
// must divide by the group size.
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/IR/LinaOps.h"
#include "lina/Support/CheckedMath.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/ADT/SmallSet.h"

#include <climits>
#include <cmath>
#include <cstdio>

using namespace mlir;
using namespace mlir::lina;

using ::lina::Limits;

std::optional<int64_t>
mlir::lina::getCheckedTensorBytes(RankedTensorType type) {
  if (!type.hasStaticShape())
    return std::nullopt;
  std::optional<int64_t> elements = ::lina::checkedProduct(type.getShape());
  if (!elements)
    return std::nullopt;
  int64_t bits = type.getElementTypeBitWidth();
  return ::lina::checkedMul(*elements, (bits + 7) / 8);
}

int64_t mlir::lina::getTensorBytes(RankedTensorType type) {
  return getCheckedTensorBytes(type).value_or(INT64_MAX);
}

std::optional<std::string>
mlir::lina::checkTensorLimits(RankedTensorType type) {
  std::string message;
  if (!(message = ::lina::checkLimit("tensor rank", type.getRank(),
                                     Limits::kMaxTensorRank))
           .empty())
    return message;
  if (!type.hasStaticShape())
    return std::nullopt;
  std::optional<int64_t> elements = ::lina::checkedProduct(type.getShape());
  if (!elements)
    return "element count overflows a 64-bit integer; the limit is " +
           std::to_string(Limits::kMaxElements);
  if (!(message = ::lina::checkLimit("element count", *elements,
                                     Limits::kMaxElements))
           .empty())
    return message;
  // Elements are at most 2^48 and element types at most 16 bytes wide, but
  // integer types can be wider: check the product too.
  std::optional<int64_t> bytes = getCheckedTensorBytes(type);
  if (!bytes)
    return "size in bytes overflows a 64-bit integer; the limit is " +
           std::to_string(Limits::kMaxBytes);
  if (!(message =
            ::lina::checkLimit("size in bytes", *bytes, Limits::kMaxBytes))
           .empty())
    return message;
  return std::nullopt;
}

LogicalResult
mlir::OpTrait::lina::detail::verifyTensorsWithinLimits(Operation *op) {
  auto check = [&](StringRef what, unsigned index, Type type) -> LogicalResult {
    auto tensor = dyn_cast<RankedTensorType>(type);
    if (!tensor)
      return success();
    if (std::optional<std::string> message = checkTensorLimits(tensor))
      return op->emitOpError() << what << " #" << index << " of type " << type
                               << ": " << *message;
    return success();
  };
  for (auto [i, type] : llvm::enumerate(op->getOperandTypes()))
    if (failed(check("operand", i, type)))
      return failure();
  for (auto [i, type] : llvm::enumerate(op->getResultTypes()))
    if (failed(check("result", i, type)))
      return failure();

  // The typed schedule attributes are inherent on the ops that declare them
  // and mean nothing elsewhere; a misplaced one is a mistake, not a no-op.
  using namespace ::mlir::lina;
  auto misplaced = [&](StringRef name, Attribute attr, StringRef where) {
    return op->emitOpError()
           << "has '" << name << " = " << attr << "', but " << where;
  };
  if (Attribute a = op->getAttr("partition"); a && !isa<AllReduceOp>(op))
    return misplaced("partition", a,
                     "a #lina.partition is only valid on lina.all_reduce");
  if (Attribute a = op->getAttr("chunk");
      a && !isa<AllToAllOp, ExpertFfnOp, ExpertFfnGradOp, ExpertFfnGradInputOp,
                ExpertFfnGradWeightOp, ExpertWeightGradOp>(op))
    return misplaced("chunk", a,
                     "a #lina.chunk is only valid on lina.all_to_all, "
                     "lina.expert_ffn and lina.expert_ffn_grad (and its "
                     "halves and lina.expert_weight_grad)");
  if (Attribute a = op->getAttr("priority");
      a && !isa<AllToAllOp, AllReduceOp>(op))
    return misplaced("priority", a,
                     "a #lina.priority is only valid on lina.all_to_all and "
                     "lina.all_reduce");
  return success();
}

namespace {
/// Small helper that reports shape mismatches with both values in the
/// message, so the user sees what to change.
class ShapeChecker {
public:
  explicit ShapeChecker(Operation *op) : opPtr(op) {}

  LogicalResult rank(StringRef what, Type type, int64_t expected) {
    auto shaped = cast<ShapedType>(type);
    if (shaped.getRank() == expected)
      return success();
    return opPtr->emitOpError()
           << what << " must have rank " << expected << ", got " << type;
  }

  LogicalResult dim(StringRef what, Type type, unsigned idx,
                    const Twine &otherWhat, int64_t expected) {
    int64_t actual = cast<ShapedType>(type).getDimSize(idx);
    if (actual == expected)
      return success();
    return opPtr->emitOpError()
           << what << " dimension " << idx << " (" << actual << ") must equal "
           << otherWhat << " (" << expected << ")";
  }

  LogicalResult sameType(StringRef what, Type type, const Twine &otherWhat,
                         Type expected) {
    if (type == expected)
      return success();
    return opPtr->emitOpError() << what << " type " << type << " must equal "
                                << otherWhat << " type " << expected;
  }

  LogicalResult sameElementType(StringRef what, Type type,
                                const Twine &otherWhat, Type other) {
    Type a = cast<ShapedType>(type).getElementType();
    Type b = cast<ShapedType>(other).getElementType();
    if (a == b)
      return success();
    return opPtr->emitOpError()
           << what << " element type " << a << " must equal " << otherWhat
           << " element type " << b;
  }

  Operation *op() const { return opPtr; }

private:
  Operation *opPtr;
};

/// A double as "%g" prints it (1, 1.25, 1e+30).
std::string formatNumber(double value) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", value);
  return buf;
}

int64_t dimOf(Value v, unsigned i) {
  return cast<ShapedType>(v.getType()).getDimSize(i);
}
} // namespace

//===----------------------------------------------------------------------===//
// GridOp
//===----------------------------------------------------------------------===//

LogicalResult GridOp::verify() {
  ArrayRef<int64_t> shape = getShape();
  if (shape.empty())
    return emitOpError() << "grid shape must have at least one axis";
  for (auto [i, size] : llvm::enumerate(shape))
    if (size <= 0)
      return emitOpError() << "grid axis " << i << " has size " << size
                           << "; sizes must be positive";
  std::optional<int64_t> ranks = ::lina::checkedProduct(shape);
  if (!ranks)
    return emitOpError() << "grid of shape [" << shape
                         << "] has more ranks than a 64-bit integer holds; "
                            "the limit is "
                         << Limits::kMaxRanks << " ranks";
  if (*ranks > Limits::kMaxRanks)
    return emitOpError() << "grid of shape [" << shape << "] has " << *ranks
                         << " ranks; the limit is " << Limits::kMaxRanks;
  if (getGroups().empty())
    return emitOpError() << "grid must declare at least one group";
  for (NamedAttribute group : getGroups()) {
    auto axes = dyn_cast<DenseI64ArrayAttr>(group.getValue());
    if (!axes)
      return emitOpError() << "group '" << group.getName().getValue()
                           << "' must be an array<i64: ...> of grid axes";
    if (axes.empty())
      return emitOpError() << "group '" << group.getName().getValue()
                           << "' spans no grid axis";
    llvm::SmallSet<int64_t, 4> seen;
    for (int64_t axis : axes.asArrayRef()) {
      if (axis < 0 || axis >= static_cast<int64_t>(shape.size()))
        return emitOpError()
               << "group '" << group.getName().getValue() << "' names axis "
               << axis << ", but the grid has " << shape.size() << " axes";
      if (!seen.insert(axis).second)
        return emitOpError() << "group '" << group.getName().getValue()
                             << "' names axis " << axis << " twice";
    }
  }
  return success();
}

int64_t GridOp::getNumRanks() {
  // The verifier bounds the product by Limits::kMaxRanks.
  return ::lina::checkedProduct(getShape()).value_or(INT64_MAX);
}

FailureOr<ArrayRef<int64_t>> GridOp::getGroupAxes(StringRef name) {
  auto axes = dyn_cast_or_null<DenseI64ArrayAttr>(getGroups().get(name));
  if (!axes)
    return failure();
  return axes.asArrayRef();
}

FailureOr<int64_t> GridOp::getGroupSize(StringRef name) {
  FailureOr<ArrayRef<int64_t>> axes = getGroupAxes(name);
  if (failed(axes))
    return failure();
  ArrayRef<int64_t> shape = getShape();
  int64_t n = 1;
  for (int64_t axis : *axes) {
    if (axis < 0 || axis >= static_cast<int64_t>(shape.size()))
      return failure();
    std::optional<int64_t> next = ::lina::checkedMul(n, shape[axis]);
    if (!next || *next < 1)
      return failure();
    n = *next;
  }
  return n;
}

/// Resolves `group` from `op`, reporting an unknown grid or group.
static FailureOr<int64_t> resolveGroup(Operation *op, GroupAttr group,
                                       SymbolTableCollection *symbolTable) {
  GridOp grid =
      symbolTable
          ? symbolTable->lookupNearestSymbolFrom<GridOp>(op, group.getGrid())
          : SymbolTable::lookupNearestSymbolFrom<GridOp>(op, group.getGrid());
  if (!grid)
    return op->emitOpError() << "refers to unknown grid " << group.getGrid();
  if (failed(grid.getGroupAxes(group.getName().getValue())))
    return op->emitOpError()
           << "grid " << group.getGrid() << " has no group named '"
           << group.getName().getValue() << "'";
  FailureOr<int64_t> size = grid.getGroupSize(group.getName().getValue());
  if (failed(size))
    return op->emitOpError()
           << "group '" << group.getName().getValue() << "' of grid "
           << group.getGrid() << " has an invalid size (see the grid's errors)";
  return size;
}

//===----------------------------------------------------------------------===//
// AllToAllOp
//===----------------------------------------------------------------------===//

LogicalResult AllToAllOp::verify() {
  ShapeChecker check(*this);
  auto inType = getInput().getType();
  auto outType = getResult().getType();
  int64_t rank = inType.getRank();
  if (rank < 1)
    return emitOpError() << "input must have rank >= 1";
  if (failed(check.rank("result", outType, rank)) ||
      failed(check.sameElementType("result", outType, "input", inType)))
    return failure();
  int64_t split = getSplitAxis(), concat = getConcatAxis();
  if (split >= rank)
    return emitOpError() << "split_axis " << split
                         << " is out of range for rank " << rank;
  if (concat >= rank)
    return emitOpError() << "concat_axis " << concat
                         << " is out of range for rank " << rank;
  if (static_cast<bool>(getSendCounts()) != static_cast<bool>(getRecvCounts()))
    return emitOpError() << "needs both send and receive counts, or neither";
  if (isVariable()) {
    if (split != 0 || concat != 0)
      return emitOpError() << "with counts requires split_axis = 0 and "
                              "concat_axis = 0, got "
                           << split << " and " << concat;
    if (failed(check.sameType("receive counts", getRecvCounts().getType(),
                              "send counts", getSendCounts().getType())))
      return failure();
    for (int64_t i = 1; i < rank; ++i)
      if (failed(check.dim("result", outType, i, "the input's",
                           inType.getDimSize(i))))
        return failure();
    return success();
  }
  for (int64_t i = 0; i < rank; ++i)
    if (i != split && i != concat &&
        failed(check.dim("result", outType, i, "the input's",
                         inType.getDimSize(i))))
      return failure();
  return success();
}

LogicalResult AllToAllOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  FailureOr<int64_t> n = resolveGroup(*this, getGroup(), &symbolTable);
  if (failed(n))
    return failure();
  auto inType = getInput().getType();
  auto outType = getResult().getType();
  // verify() reports bad ranks and axes; only check what it leaves.
  int64_t rank = inType.getRank();
  if (rank < 1 || outType.getRank() != rank ||
      getSplitAxis() >= static_cast<uint64_t>(rank) ||
      getConcatAxis() >= static_cast<uint64_t>(rank))
    return success();
  if (isVariable()) {
    int64_t numCounts = getSendCounts().getType().getDimSize(0);
    if (numCounts != *n)
      return emitOpError() << "has " << numCounts
                           << " counts per direction, but group '"
                           << getGroup().getName().getValue() << "' has " << *n
                           << " ranks";
    return success();
  }
  int64_t split = getSplitAxis(), concat = getConcatAxis();
  int64_t splitDim = inType.getDimSize(split);
  if (splitDim % *n != 0)
    return emitOpError() << "split_axis " << split << " has size " << splitDim
                         << ", which does not divide by the group size " << *n;
  SmallVector<int64_t> expected(inType.getShape());
  expected[split] /= *n;
  std::optional<int64_t> gathered = ::lina::checkedMul(expected[concat], *n);
  if (!gathered || *gathered > Limits::kMaxElements)
    return emitOpError() << "concat_axis " << concat << " of size "
                         << expected[concat] << " gathered from " << *n
                         << " ranks exceeds the element limit "
                         << Limits::kMaxElements;
  expected[concat] = *gathered;
  if (ArrayRef<int64_t>(expected) != outType.getShape())
    return emitOpError() << "result shape must be "
                         << RankedTensorType::get(expected,
                                                  inType.getElementType())
                         << " for a group of " << *n << " ranks, got "
                         << outType;
  return success();
}

int64_t AllToAllOp::getGroupSize() {
  return *resolveGroup(*this, getGroup(), nullptr);
}

int64_t AllToAllOp::getNumBytes() {
  return getTensorBytes(getInput().getType());
}

//===----------------------------------------------------------------------===//
// AllReduceOp
//===----------------------------------------------------------------------===//

/// Calls `fn` on each all_reduce partition that, with `op`, covers one
/// original tensor, in a fixed order, until `fn` returns true: those
/// reading slices of the same source (as --lina-partition-allreduce builds
/// them), or, for partitions that do not read a slice, those of the same
/// block with the same original size and count. All share `op`'s group and
/// reduction.
static void forEachPartitionSibling(AllReduceOp op,
                                    function_ref<bool(AllReduceOp)> fn) {
  PartitionAttr part = op.getPartitionAttr();
  auto sameReduction = [&](AllReduceOp other) {
    return other.getPartitionAttr() && other.getGroup() == op.getGroup() &&
           other.getReduction() == op.getReduction();
  };
  if (auto slice = op.getInput().getDefiningOp<tensor::ExtractSliceOp>()) {
    for (Operation *user : slice.getSource().getUsers()) {
      auto other = dyn_cast<tensor::ExtractSliceOp>(user);
      if (!other || other.getSource() != slice.getSource())
        continue;
      for (Operation *reader : other->getUsers())
        if (auto ar = dyn_cast<AllReduceOp>(reader);
            ar && ar.getInput() == other.getResult() && sameReduction(ar) &&
            fn(ar))
          return;
    }
    return;
  }
  for (Operation &other : *op->getBlock())
    if (auto ar = dyn_cast<AllReduceOp>(other);
        ar && sameReduction(ar) &&
        !ar.getInput().getDefiningOp<tensor::ExtractSliceOp>() &&
        ar.getPartitionAttr().getOriginal() == part.getOriginal() &&
        ar.getPartitionAttr().getCount() == part.getCount() && fn(ar))
      return;
}

/// Checks that the partitions of one original tensor are pieces 0..count-1,
/// each once, that piece i starts where piece i-1 ends, and that together
/// they cover [0, original) without gap or overlap. Reported once per
/// tensor, by the first partition forEachPartitionSibling visits, so that
/// the check costs O(partitions) per tensor, not per partition.
static LogicalResult verifyPartitionCoverage(AllReduceOp op) {
  AllReduceOp reporter;
  forEachPartitionSibling(op, [&](AllReduceOp ar) {
    reporter = ar;
    return true;
  });
  if (reporter != op)
    return success();
  SmallVector<AllReduceOp> siblings;
  llvm::SmallPtrSet<Operation *, 16> seen;
  forEachPartitionSibling(op, [&](AllReduceOp ar) {
    if (seen.insert(ar).second)
      siblings.push_back(ar);
    return false;
  });
  // The first partition in program order is the reference the others
  // must agree with.
  AllReduceOp first =
      *llvm::min_element(siblings, [](AllReduceOp a, AllReduceOp b) {
        return a != b && a->isBeforeInBlock(b);
      });
  PartitionAttr part = first.getPartitionAttr();
  for (AllReduceOp other : siblings) {
    PartitionAttr p = other.getPartitionAttr();
    if (p.getCount() != part.getCount() ||
        p.getOriginal() != part.getOriginal())
      return other.emitOpError()
             << "partition " << p << " disagrees with " << part
             << " on the count or the original size of the tensor they "
                "partition";
  }
  // Sorted by index; the count is not trusted to size anything.
  SmallVector<AllReduceOp> byIndex(siblings);
  llvm::sort(byIndex, [](AllReduceOp a, AllReduceOp b) {
    int64_t ia = a.getPartitionAttr().getIndex(),
            ib = b.getPartitionAttr().getIndex();
    if (ia != ib)
      return ia < ib;
    return a != b && a->isBeforeInBlock(b);
  });
  for (size_t i = 1; i < byIndex.size(); ++i)
    if (byIndex[i].getPartitionAttr().getIndex() ==
        byIndex[i - 1].getPartitionAttr().getIndex()) {
      InFlightDiagnostic diag =
          byIndex[i].emitOpError()
          << "partition index " << byIndex[i].getPartitionAttr().getIndex()
          << " of " << part.getCount() << " appears twice";
      diag.attachNote(byIndex[i - 1].getLoc()) << "first here";
      return diag;
    }
  int64_t covered = 0;
  for (auto [index, piece] : llvm::enumerate(byIndex)) {
    PartitionAttr p = piece.getPartitionAttr();
    if (p.getIndex() != static_cast<int64_t>(index))
      return byIndex[index > 0 ? index - 1 : 0].emitOpError()
             << "partition " << index << " of " << part.getCount()
             << " is missing: elements from " << covered << " of the original "
             << part.getOriginal() << " are not reduced";
    int64_t numel = piece.getInput().getType().getNumElements();
    if (p.getOffset() > covered)
      return piece.emitOpError()
             << "partition " << index << " starts at element " << p.getOffset()
             << ", leaving a gap [" << covered << ", " << p.getOffset()
             << ") of the original tensor unreduced";
    if (p.getOffset() < covered)
      return piece.emitOpError()
             << "partition " << index << " starts at element " << p.getOffset()
             << ", overlapping the previous partition, "
             << "which ends at " << covered;
    covered = p.getOffset() + numel; // rangeWithin checked it per op.
  }
  if (static_cast<int64_t>(byIndex.size()) != part.getCount())
    return byIndex.back().emitOpError()
           << "partition " << byIndex.size() << " of " << part.getCount()
           << " is missing: elements from " << covered << " of the original "
           << part.getOriginal() << " are not reduced";
  if (covered != part.getOriginal())
    return byIndex.back().emitOpError()
           << "partitions cover [0, " << covered << ") of the original "
           << part.getOriginal() << " elements, leaving a gap [" << covered
           << ", " << part.getOriginal() << ")";
  return success();
}

LogicalResult AllReduceOp::verify() {
  PartitionAttr part = getPartitionAttr();
  if (!part)
    return success();
  int64_t numel = getInput().getType().getNumElements();
  if (numel < 1)
    return emitOpError() << "partition " << part.getIndex()
                         << " must reduce at least one element";
  if (!::lina::rangeWithin(part.getOffset(), numel, part.getOriginal()))
    return emitOpError() << "partition of " << numel << " elements at offset "
                         << part.getOffset() << " does not fit in the original "
                         << part.getOriginal() << " elements";
  // A partition read from a 1-D slice must name the slice's own position.
  if (auto slice = getInput().getDefiningOp<tensor::ExtractSliceOp>()) {
    RankedTensorType source = slice.getSourceType();
    if (source.getRank() == 1 && source.hasStaticShape() &&
        !ShapedType::isDynamic(slice.getStaticOffsets()[0])) {
      if (source.getNumElements() != part.getOriginal())
        return emitOpError() << "partition original size " << part.getOriginal()
                             << " differs from the size of the sliced tensor "
                             << source.getNumElements();
      if (slice.getStaticOffsets()[0] != part.getOffset())
        return emitOpError() << "partition offset " << part.getOffset()
                             << " differs from the offset of its input slice "
                             << slice.getStaticOffsets()[0];
    }
  }
  return verifyPartitionCoverage(*this);
}

LogicalResult
AllReduceOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  return resolveGroup(*this, getGroup(), &symbolTable);
}

int64_t AllReduceOp::getGroupSize() {
  return *resolveGroup(*this, getGroup(), nullptr);
}

int64_t AllReduceOp::getNumBytes() {
  return getTensorBytes(getInput().getType());
}

//===----------------------------------------------------------------------===//
// Compute ops
//===----------------------------------------------------------------------===//

LogicalResult DenseOp::verify() {
  ShapeChecker check(*this);
  Type x = getInput().getType(), w = getWeight().getType(),
       y = getResult().getType();
  if (failed(check.rank("input", x, 2)) || failed(check.rank("weight", w, 2)) ||
      failed(check.rank("result", y, 2)) ||
      failed(check.dim("weight", w, 0, "input dimension 1",
                       dimOf(getInput(), 1))) ||
      failed(check.dim("result", y, 0, "input dimension 0",
                       dimOf(getInput(), 0))) ||
      failed(check.dim("result", y, 1, "weight dimension 1",
                       dimOf(getWeight(), 1))) ||
      failed(check.sameElementType("weight", w, "input", x)) ||
      failed(check.sameElementType("result", y, "input", x)))
    return failure();
  return success();
}

LogicalResult GateOp::verify() {
  ShapeChecker check(*this);
  Type x = getInput().getType(), w = getWeight().getType();
  Type ids = getExpertIds().getType(), gw = getGateWeights().getType();
  int64_t experts = getNumExperts(), k = getTopK();
  if (std::string message =
          ::lina::checkLimit("num_experts", experts, Limits::kMaxExperts);
      !message.empty())
    return emitOpError() << message;
  if (k > experts)
    return emitOpError() << "top_k (" << k << ") must not exceed num_experts ("
                         << experts << ")";
  // Ranks first: the dimensions below exist only once they are checked.
  if (failed(check.rank("input", x, 2)) || failed(check.rank("weight", w, 2)) ||
      failed(check.rank("expert_ids", ids, 2)))
    return failure();
  int64_t tokens = dimOf(getInput(), 0);
  if (failed(check.dim("weight", w, 0, "input dimension 1",
                       dimOf(getInput(), 1))) ||
      failed(check.dim("weight", w, 1, "num_experts", experts)) ||
      failed(check.dim("expert_ids", ids, 0, "the number of tokens", tokens)) ||
      failed(check.dim("expert_ids", ids, 1, "top_k", k)) ||
      failed(check.sameType(
          "gate_weights", gw, "expected",
          RankedTensorType::get({tokens, k},
                                cast<ShapedType>(x).getElementType()))))
    return failure();
  double capacity = std::ceil(
      static_cast<double>(tokens) * static_cast<double>(k) /
      static_cast<double>(experts) * getCapacityFactor().convertToDouble());
  if (!(capacity <= static_cast<double>(Limits::kMaxCapacity)))
    return emitOpError() << "capacity_factor "
                         << formatNumber(getCapacityFactor().convertToDouble())
                         << " implies a capacity of " << formatNumber(capacity)
                         << " rows per expert for " << tokens
                         << " tokens; the limit is " << Limits::kMaxCapacity;
  return success();
}

int64_t GateOp::getCapacity() {
  // capacity = max(1, ceil(tokens * top_k / experts * capacity_factor)),
  // the arithmetic lina-import sizes its buffers with; the verifier bounds
  // it by Limits::kMaxCapacity, so the conversion below is exact.
  double tokens = static_cast<double>(getInput().getType().getDimSize(0));
  double perExpert = tokens * static_cast<double>(getTopK()) /
                     static_cast<double>(getNumExperts());
  double capacity =
      std::ceil(perExpert * getCapacityFactor().convertToDouble());
  if (!(capacity <= static_cast<double>(Limits::kMaxCapacity)))
    return Limits::kMaxCapacity;
  return std::max<int64_t>(1, static_cast<int64_t>(capacity));
}

/// Checks `[experts, capacity, hidden]` buffers against `[tokens, k]` routing.
static LogicalResult verifyRouting(ShapeChecker &check, StringRef bufName,
                                   Value buf, StringRef tokName, Value tokens,
                                   Value ids, Value gateWeights) {
  Type idsType = ids.getType();
  if (failed(check.rank(bufName, buf.getType(), 3)) ||
      failed(check.rank(tokName, tokens.getType(), 2)) ||
      failed(check.rank("expert_ids", idsType, 2)) ||
      failed(check.dim(tokName, tokens.getType(), 1, bufName + " dimension 2",
                       dimOf(buf, 2))) ||
      failed(check.dim("expert_ids", idsType, 0, tokName + " dimension 0",
                       dimOf(tokens, 0))) ||
      failed(check.sameElementType(tokName, tokens.getType(), bufName,
                                   buf.getType())))
    return failure();
  if (gateWeights &&
      (failed(check.rank("gate_weights", gateWeights.getType(), 2)) ||
       failed(check.dim("gate_weights", gateWeights.getType(), 0,
                        "expert_ids dimension 0", dimOf(ids, 0))) ||
       failed(check.dim("gate_weights", gateWeights.getType(), 1,
                        "expert_ids dimension 1", dimOf(ids, 1)))))
    return failure();
  int64_t experts = dimOf(buf, 0), capacity = dimOf(buf, 1);
  if (experts < 1 || capacity < 1)
    return check.op()->emitOpError()
           << bufName << " has " << experts << " experts of capacity "
           << capacity << "; both must be positive";
  // Facts fixed by the gate that routed the tokens, when it is visible.
  auto gate = ids.getDefiningOp<GateOp>();
  if (!gate)
    return success();
  if (experts != static_cast<int64_t>(gate.getNumExperts()))
    return check.op()->emitOpError()
           << bufName << " dimension 0 (" << experts
           << ") must equal the num_experts of its gate ("
           << gate.getNumExperts() << ")";
  if (capacity != gate.getCapacity())
    return check.op()->emitOpError()
           << bufName << " dimension 1 (" << capacity
           << ") must equal the capacity its gate implies ("
           << gate.getCapacity() << " = ceil(" << dimOf(tokens, 0)
           << " tokens * top_k " << gate.getTopK() << " / "
           << gate.getNumExperts() << " experts * capacity_factor "
           << formatNumber(gate.getCapacityFactor().convertToDouble()) << "))";
  if (gateWeights) {
    auto weightsGate = gateWeights.getDefiningOp<GateOp>();
    if (weightsGate && weightsGate != gate)
      return check.op()->emitOpError()
             << "expert_ids and gate_weights come from different gates";
  }
  return success();
}

LogicalResult DispatchOp::verify() {
  ShapeChecker check(*this);
  return verifyRouting(check, "result", getResult(), "input", getInput(),
                       getExpertIds(), Value());
}

LogicalResult CombineOp::verify() {
  ShapeChecker check(*this);
  return verifyRouting(check, "input", getInput(), "result", getResult(),
                       getExpertIds(), getGateWeights());
}

/// Checks `in : [E, N, H]`, `w1 : [E, H, F]`, `w2 : [E, F, H]`.
static LogicalResult verifyExperts(ShapeChecker &check, Value in, Value w1,
                                   Value w2) {
  Type t = in.getType();
  if (failed(check.rank("input", t, 3)) ||
      failed(check.rank("w1", w1.getType(), 3)) ||
      failed(check.rank("w2", w2.getType(), 3)) ||
      failed(check.dim("w1", w1.getType(), 0, "the number of local experts",
                       dimOf(in, 0))) ||
      failed(check.dim("w2", w2.getType(), 0, "the number of local experts",
                       dimOf(in, 0))) ||
      failed(check.dim("w1", w1.getType(), 1, "input dimension 2",
                       dimOf(in, 2))) ||
      failed(
          check.dim("w2", w2.getType(), 1, "w1 dimension 2", dimOf(w1, 2))) ||
      failed(check.dim("w2", w2.getType(), 2, "input dimension 2",
                       dimOf(in, 2))) ||
      failed(check.sameElementType("w1", w1.getType(), "input", t)) ||
      failed(check.sameElementType("w2", w2.getType(), "input", t)))
    return failure();
  return success();
}

LogicalResult ExpertFfnOp::verify() {
  ShapeChecker check(*this);
  if (failed(verifyExperts(check, getInput(), getW1(), getW2())))
    return failure();
  return check.sameType("result", getResult().getType(), "input",
                        getInput().getType());
}

//===----------------------------------------------------------------------===//
// Backward forms
//===----------------------------------------------------------------------===//

LogicalResult DenseGradOp::verify() {
  ShapeChecker check(*this);
  Type dy = getGrad().getType(), x = getInput().getType(),
       w = getWeight().getType();
  if (failed(check.rank("input", x, 2)) || failed(check.rank("weight", w, 2)) ||
      failed(check.rank("grad", dy, 2)) ||
      failed(check.dim("weight", w, 0, "input dimension 1",
                       dimOf(getInput(), 1))) ||
      failed(check.dim("grad", dy, 0, "input dimension 0",
                       dimOf(getInput(), 0))) ||
      failed(check.dim("grad", dy, 1, "weight dimension 1",
                       dimOf(getWeight(), 1))) ||
      failed(check.sameElementType("grad", dy, "input", x)) ||
      failed(
          check.sameType("input_grad", getInputGrad().getType(), "input", x)) ||
      failed(check.sameType("weight_grad", getWeightGrad().getType(), "weight",
                            w)))
    return failure();
  return success();
}

LogicalResult GateGradOp::verify() {
  ShapeChecker check(*this);
  Type dgw = getGrad().getType(), x = getInput().getType(),
       w = getWeight().getType(), ids = getExpertIds().getType();
  if (failed(check.rank("input", x, 2)) || failed(check.rank("weight", w, 2)) ||
      failed(check.rank("expert_ids", ids, 2)))
    return failure();
  if (dimOf(getExpertIds(), 1) > dimOf(getWeight(), 1))
    return emitOpError() << "expert_ids dimension 1 ("
                         << dimOf(getExpertIds(), 1)
                         << ") must not exceed the number of experts ("
                         << dimOf(getWeight(), 1) << ")";
  if (failed(check.dim("weight", w, 0, "input dimension 1",
                       dimOf(getInput(), 1))) ||
      failed(check.dim("expert_ids", ids, 0, "input dimension 0",
                       dimOf(getInput(), 0))) ||
      failed(check.sameType(
          "grad", dgw, "expected",
          RankedTensorType::get(cast<ShapedType>(ids).getShape(),
                                cast<ShapedType>(x).getElementType()))) ||
      failed(
          check.sameType("input_grad", getInputGrad().getType(), "input", x)) ||
      failed(check.sameType("weight_grad", getWeightGrad().getType(), "weight",
                            w)))
    return failure();
  return success();
}

LogicalResult DispatchGradOp::verify() {
  ShapeChecker check(*this);
  return verifyRouting(check, "grad", getGrad(), "result", getResult(),
                       getExpertIds(), Value());
}

LogicalResult ExpertFfnGradOp::verify() {
  ShapeChecker check(*this);
  if (failed(verifyExperts(check, getInput(), getW1(), getW2())) ||
      failed(check.sameType("grad", getGrad().getType(), "input",
                            getInput().getType())) ||
      failed(check.sameType("input_grad", getInputGrad().getType(), "input",
                            getInput().getType())) ||
      failed(check.sameType("w1_grad", getW1Grad().getType(), "w1",
                            getW1().getType())) ||
      failed(check.sameType("w2_grad", getW2Grad().getType(), "w2",
                            getW2().getType())))
    return failure();
  return success();
}

LogicalResult ExpertFfnGradInputOp::verify() {
  ShapeChecker check(*this);
  Type in = getInput().getType();
  if (failed(verifyExperts(check, getInput(), getW1(), getW2())) ||
      failed(check.sameType("grad", getGrad().getType(), "input", in)) ||
      failed(
          check.sameType("input_grad", getInputGrad().getType(), "input", in)))
    return failure();
  // act and pre_grad: [experts, rows, ffn] of the input's element type.
  for (auto [what, v] : {std::pair<StringRef, Value>{"act", getAct()},
                         {"pre_grad", getPreGrad()}})
    if (failed(check.rank(what, v.getType(), 3)) ||
        failed(check.dim(what, v.getType(), 0, "the number of local experts",
                         dimOf(getInput(), 0))) ||
        failed(check.dim(what, v.getType(), 1, "input dimension 1",
                         dimOf(getInput(), 1))) ||
        failed(check.dim(what, v.getType(), 2, "w1 dimension 2",
                         dimOf(getW1(), 2))) ||
        failed(check.sameElementType(what, v.getType(), "input", in)))
      return failure();
  return success();
}

LogicalResult ExpertFfnGradWeightOp::verify() {
  ShapeChecker check(*this);
  Type in = getInput().getType(), act = getAct().getType();
  if (failed(check.rank("input", in, 3)) ||
      failed(check.sameType("grad", getGrad().getType(), "input", in)) ||
      failed(check.rank("act", act, 3)) ||
      failed(check.dim("act", act, 0, "the number of local experts",
                       dimOf(getInput(), 0))) ||
      failed(check.dim("act", act, 1, "input dimension 1",
                       dimOf(getInput(), 1))) ||
      failed(check.sameElementType("act", act, "input", in)) ||
      failed(check.sameType("pre_grad", getPreGrad().getType(), "act", act)))
    return failure();
  int64_t experts = dimOf(getInput(), 0), hidden = dimOf(getInput(), 2),
          ffn = dimOf(getAct(), 2);
  Type elem = cast<ShapedType>(in).getElementType();
  if (failed(check.sameType(
          "w1_grad", getW1Grad().getType(),
          "[experts, input dimension 2, act dimension 2]",
          RankedTensorType::get({experts, hidden, ffn}, elem))) ||
      failed(
          check.sameType("w2_grad", getW2Grad().getType(),
                         "[experts, act dimension 2, input dimension 2]",
                         RankedTensorType::get({experts, ffn, hidden}, elem))))
    return failure();
  return success();
}

LogicalResult ExpertWeightGradOp::verify() {
  ShapeChecker check(*this);
  Type in = getInput().getType(), grad = getGrad().getType();
  if (failed(check.rank("input", in, 3)) ||
      failed(check.rank("grad", grad, 3)) ||
      failed(check.dim("grad", grad, 0, "the number of local experts",
                       dimOf(getInput(), 0))) ||
      failed(check.dim("grad", grad, 1, "input dimension 1",
                       dimOf(getInput(), 1))) ||
      failed(check.sameElementType("grad", grad, "input", in)))
    return failure();
  Type elem = cast<ShapedType>(in).getElementType();
  return check.sameType(
      "result", getResult().getType(),
      "[experts, input dimension 2, grad dimension 2]",
      RankedTensorType::get(
          {dimOf(getInput(), 0), dimOf(getInput(), 2), dimOf(getGrad(), 2)},
          elem));
}

LogicalResult CombineGradOp::verify() {
  ShapeChecker check(*this);
  if (failed(verifyRouting(check, "input", getInput(), "grad", getGrad(),
                           getExpertIds(), getGateWeights())) ||
      failed(check.sameType("input_grad", getInputGrad().getType(), "input",
                            getInput().getType())) ||
      failed(check.sameType("gate_weights_grad", getGateWeightsGrad().getType(),
                            "gate_weights", getGateWeights().getType())))
    return failure();
  return success();
}

#define GET_OP_CLASSES
#include "lina/Dialect/Lina/IR/LinaOps.cpp.inc"
