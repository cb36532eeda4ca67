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

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallSet.h"

#include <cmath>

using namespace mlir;
using namespace mlir::lina;

int64_t mlir::lina::getTensorBytes(RankedTensorType type) {
  int64_t bits = type.getElementTypeBitWidth();
  return type.getNumElements() * ((bits + 7) / 8);
}

namespace {
/// Small helper that reports shape mismatches with both values in the
/// message, so the user sees what to change.
class ShapeChecker {
public:
  explicit ShapeChecker(Operation *op) : op(op) {}

  LogicalResult rank(StringRef what, Type type, int64_t expected) {
    auto shaped = cast<ShapedType>(type);
    if (shaped.getRank() == expected)
      return success();
    return op->emitOpError() << what << " must have rank " << expected
                             << ", got " << type;
  }

  LogicalResult dim(StringRef what, Type type, unsigned idx, const Twine &otherWhat,
                    int64_t expected) {
    int64_t actual = cast<ShapedType>(type).getDimSize(idx);
    if (actual == expected)
      return success();
    return op->emitOpError() << what << " dimension " << idx << " (" << actual
                             << ") must equal " << otherWhat << " ("
                             << expected << ")";
  }

  LogicalResult sameType(StringRef what, Type type, const Twine &otherWhat,
                         Type expected) {
    if (type == expected)
      return success();
    return op->emitOpError() << what << " type " << type << " must equal "
                             << otherWhat << " type " << expected;
  }

  LogicalResult sameElementType(StringRef what, Type type, const Twine &otherWhat,
                                Type other) {
    Type a = cast<ShapedType>(type).getElementType();
    Type b = cast<ShapedType>(other).getElementType();
    if (a == b)
      return success();
    return op->emitOpError() << what << " element type " << a << " must equal "
                             << otherWhat << " element type " << b;
  }

private:
  Operation *op;
};

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
        return emitOpError() << "group '" << group.getName().getValue()
                             << "' names axis " << axis
                             << ", but the grid has " << shape.size()
                             << " axes";
      if (!seen.insert(axis).second)
        return emitOpError() << "group '" << group.getName().getValue()
                             << "' names axis " << axis << " twice";
    }
  }
  return success();
}

int64_t GridOp::getNumRanks() {
  int64_t n = 1;
  for (int64_t s : getShape())
    n *= s;
  return n;
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
  int64_t n = 1;
  for (int64_t axis : *axes)
    n *= getShape()[axis];
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
  FailureOr<int64_t> size = grid.getGroupSize(group.getName().getValue());
  if (failed(size))
    return op->emitOpError()
           << "grid " << group.getGrid() << " has no group named '"
           << group.getName().getValue() << "'";
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

LogicalResult
AllToAllOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  FailureOr<int64_t> n = resolveGroup(*this, getGroup(), &symbolTable);
  if (failed(n))
    return failure();
  auto inType = getInput().getType();
  auto outType = getResult().getType();
  if (isVariable()) {
    int64_t numCounts = getSendCounts().getType().getDimSize(0);
    if (numCounts != *n)
      return emitOpError() << "has " << numCounts
                           << " counts per direction, but group '"
                           << getGroup().getName().getValue() << "' has "
                           << *n << " ranks";
    return success();
  }
  int64_t split = getSplitAxis(), concat = getConcatAxis();
  int64_t splitDim = inType.getDimSize(split);
  if (splitDim % *n != 0)
    return emitOpError() << "split_axis " << split << " has size " << splitDim
                         << ", which does not divide by the group size " << *n;
  SmallVector<int64_t> expected(inType.getShape());
  expected[split] /= *n;
  expected[concat] *= *n;
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

int64_t AllToAllOp::getNumBytes() { return getTensorBytes(getInput().getType()); }

//===----------------------------------------------------------------------===//
// AllReduceOp
//===----------------------------------------------------------------------===//

LogicalResult AllReduceOp::verify() {
  if (auto part = getPartitionAttr()) {
    int64_t numel = getInput().getType().getNumElements();
    if (part.getOffset() + numel > part.getOriginal())
      return emitOpError() << "partition [" << part.getOffset() << ", "
                           << part.getOffset() + numel
                           << ") does not fit in the original "
                           << part.getOriginal() << " elements";
  }
  return success();
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
      failed(check.dim("weight", w, 0, "input dimension 1", dimOf(getInput(), 1))) ||
      failed(check.dim("result", y, 0, "input dimension 0", dimOf(getInput(), 0))) ||
      failed(check.dim("result", y, 1, "weight dimension 1", dimOf(getWeight(), 1))) ||
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
  if (k > experts)
    return emitOpError() << "top_k (" << k << ") must not exceed num_experts ("
                         << experts << ")";
  int64_t tokens = dimOf(getInput(), 0);
  if (failed(check.rank("input", x, 2)) || failed(check.rank("weight", w, 2)) ||
      failed(check.dim("weight", w, 0, "input dimension 1", dimOf(getInput(), 1))) ||
      failed(check.dim("weight", w, 1, "num_experts", experts)) ||
      failed(check.rank("expert_ids", ids, 2)) ||
      failed(check.dim("expert_ids", ids, 0, "the number of tokens", tokens)) ||
      failed(check.dim("expert_ids", ids, 1, "top_k", k)) ||
      failed(check.sameType("gate_weights", gw, "expected",
                            RankedTensorType::get({tokens, k},
                                                  cast<ShapedType>(x).getElementType()))))
    return failure();
  return success();
}

int64_t GateOp::getCapacity() {
  double tokens = static_cast<double>(getInput().getType().getDimSize(0));
  double perExpert = tokens * static_cast<double>(getTopK()) /
                     static_cast<double>(getNumExperts());
  return std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil(perExpert * getCapacityFactor().convertToDouble())));
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
      failed(check.dim("w1", w1.getType(), 1, "input dimension 2", dimOf(in, 2))) ||
      failed(check.dim("w2", w2.getType(), 1, "w1 dimension 2", dimOf(w1, 2))) ||
      failed(check.dim("w2", w2.getType(), 2, "input dimension 2", dimOf(in, 2))) ||
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
      failed(check.dim("weight", w, 0, "input dimension 1", dimOf(getInput(), 1))) ||
      failed(check.dim("grad", dy, 0, "input dimension 0", dimOf(getInput(), 0))) ||
      failed(check.dim("grad", dy, 1, "weight dimension 1", dimOf(getWeight(), 1))) ||
      failed(check.sameElementType("grad", dy, "input", x)) ||
      failed(check.sameType("input_grad", getInputGrad().getType(), "input", x)) ||
      failed(check.sameType("weight_grad", getWeightGrad().getType(), "weight", w)))
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
    return emitOpError() << "expert_ids dimension 1 (" << dimOf(getExpertIds(), 1)
                         << ") must not exceed the number of experts ("
                         << dimOf(getWeight(), 1) << ")";
  if (
      failed(check.dim("weight", w, 0, "input dimension 1", dimOf(getInput(), 1))) ||
      failed(check.dim("expert_ids", ids, 0, "input dimension 0", dimOf(getInput(), 0))) ||
      failed(check.sameType("grad", dgw, "expected",
                            RankedTensorType::get(cast<ShapedType>(ids).getShape(),
                                                  cast<ShapedType>(x).getElementType()))) ||
      failed(check.sameType("input_grad", getInputGrad().getType(), "input", x)) ||
      failed(check.sameType("weight_grad", getWeightGrad().getType(), "weight", w)))
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

LogicalResult CombineGradOp::verify() {
  ShapeChecker check(*this);
  if (failed(verifyRouting(check, "input", getInput(), "grad", getGrad(),
                           getExpertIds(), getGateWeights())) ||
      failed(check.sameType("input_grad", getInputGrad().getType(), "input",
                            getInput().getType())) ||
      failed(check.sameType("gate_weights_grad",
                            getGateWeightsGrad().getType(), "gate_weights",
                            getGateWeights().getType())))
    return failure();
  return success();
}

#define GET_OP_CLASSES
#include "lina/Dialect/Lina/IR/LinaOps.cpp.inc"
