//===- LinaOps.h - Lina operations ------------------------------*- C++ -*-===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_DIALECT_LINA_IR_LINAOPS_H
#define LINA_DIALECT_LINA_IR_LINAOPS_H

#include "lina/Dialect/Lina/IR/LinaDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::OpTrait::lina {
namespace detail {
LogicalResult verifyTensorsWithinLimits(Operation *op);
} // namespace detail

/// Checks every ranked tensor operand and result of a lina op against the
/// documented limits (tensor rank, elements, bytes; docs/LIMITS.md), and
/// that the typed lina attributes only sit on the ops that give them a
/// meaning. Runs before the op's own verifier, which may then compute
/// sizes from the shapes without overflow.
template <typename ConcreteType>
class TensorsWithinLimits
    : public TraitBase<ConcreteType, TensorsWithinLimits> {
public:
  static LogicalResult verifyTrait(Operation *op) {
    return detail::verifyTensorsWithinLimits(op);
  }
};
} // namespace mlir::OpTrait::lina

#define GET_OP_CLASSES
#include "lina/Dialect/Lina/IR/LinaOps.h.inc"

namespace mlir::lina {
/// Size in bytes of a statically shaped tensor (sub-byte types round up),
/// or std::nullopt if it overflows int64_t.
std::optional<int64_t> getCheckedTensorBytes(RankedTensorType type);

/// Size in bytes of a statically shaped tensor of a verified lina op: at
/// most Limits::kMaxBytes. Saturates at INT64_MAX instead of wrapping when
/// given an unverified type.
int64_t getTensorBytes(RankedTensorType type);

/// Checks `type` against the documented limits on tensor rank, elements and
/// bytes; on failure returns a message naming the quantity and the limit.
std::optional<std::string> checkTensorLimits(RankedTensorType type);
} // namespace mlir::lina

#endif // LINA_DIALECT_LINA_IR_LINAOPS_H
