//===- ModelBuilder.h - Builds lina IR from a model spec --------*- C++ -*-===//
//
// Part of the Lina project.
//
// Builds the module of one training step or one inference pass of a
// ModelSpec as seen by one rank: a `lina.grid` and one `func.func`. The
// modelling choices are documented in docs/IMPORT.md.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_TOOLS_LINA_IMPORT_MODELBUILDER_H
#define LINA_TOOLS_LINA_IMPORT_MODELBUILDER_H

#include "ModelConfig.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace mlir::lina::import {

enum class ElementType { f32, bf16, f16 };

struct ImportOptions {
  /// Expert-parallel ranks (grid axis 1).
  int64_t ep = 1;
  /// Data-parallel replicas of each expert (grid axis 0).
  int64_t dp = 1;
  int64_t microBatch = 1;
  int64_t seq = 1;
  bool training = true;
  ElementType dtype = ElementType::f32;
  /// Capacity factor used by every gate.
  double capacityFactor = 1.25;
};

/// The dispatch capacity of a gate: ceil(topK * tokens / experts * cf), at
/// least 1 (the formula of lina.gate).
int64_t computeCapacity(int64_t tokens, int64_t topK, int64_t experts,
                        double capacityFactor);

/// Builds the module. `source` names the config in the IR's locations.
mlir::OwningOpRef<mlir::ModuleOp> buildModel(mlir::MLIRContext &context,
                                             const ModelSpec &spec,
                                             const ImportOptions &options,
                                             llvm::StringRef source);

} // namespace mlir::lina::import

#endif // LINA_TOOLS_LINA_IMPORT_MODELBUILDER_H
