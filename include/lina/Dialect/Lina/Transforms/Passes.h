//===- Passes.h - Lina transformation passes --------------------*- C++ -*-===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_DIALECT_LINA_TRANSFORMS_PASSES_H
#define LINA_DIALECT_LINA_TRANSFORMS_PASSES_H

#include "lina/Dialect/Lina/IR/LinaOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::lina {

#define GEN_PASS_DECL
#include "lina/Dialect/Lina/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "lina/Dialect/Lina/Transforms/Passes.h.inc"

} // namespace mlir::lina

#endif // LINA_DIALECT_LINA_TRANSFORMS_PASSES_H
