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

#define GET_OP_CLASSES
#include "lina/Dialect/Lina/IR/LinaOps.h.inc"

namespace mlir::lina {
/// Size in bytes of a statically shaped tensor (sub-byte types round up).
int64_t getTensorBytes(RankedTensorType type);
} // namespace mlir::lina

#endif // LINA_DIALECT_LINA_IR_LINAOPS_H
