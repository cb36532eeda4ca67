//===- PlanEmitter.h - Scheduled lina IR to an executable plan --*- C++ -*-===//
//
// Part of the Lina project.
//
// Emits the plan format of docs/PLAN.md from a module holding one lina.grid
// and a straight-line function of lina, arith and tensor ops. Tensor
// reshapes and contiguous slices become zero-copy views; non-contiguous
// slices and concatenations become box copies; concatenations of op
// results along the outermost non-unit dimension are built in place (the
// producers write views of the concatenated buffer), which is how a
// partitioned all_reduce reduces one gradient buffer in place.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_TARGET_PLAN_PLANEMITTER_H
#define LINA_TARGET_PLAN_PLANEMITTER_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace mlir::lina {

struct PlanEmitterOptions {
  /// Function to emit; empty selects the only public function.
  std::string function;
};

/// Writes the plan of `module` to `os`; on error reports a diagnostic at the
/// offending op and returns failure.
LogicalResult emitPlan(ModuleOp module, llvm::raw_ostream &os,
                       const PlanEmitterOptions &options = {});

/// Registers the `--lina-to-plan` translation.
void registerToPlanTranslation();

} // namespace mlir::lina

#endif // LINA_TARGET_PLAN_PLANEMITTER_H
