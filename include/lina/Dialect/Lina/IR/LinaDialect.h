//===- LinaDialect.h - Lina dialect, attributes and enums ------*- C++ -*-===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_DIALECT_LINA_IR_LINADIALECT_H
#define LINA_DIALECT_LINA_IR_LINADIALECT_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"

#include "lina/Dialect/Lina/IR/LinaOpsDialect.h.inc"

#include "lina/Dialect/Lina/IR/LinaEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "lina/Dialect/Lina/IR/LinaAttrs.h.inc"

#endif // LINA_DIALECT_LINA_IR_LINADIALECT_H
