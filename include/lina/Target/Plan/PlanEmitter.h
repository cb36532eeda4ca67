//===- PlanEmitter.h - Scheduled lina IR to an executable plan --*- C++ -*-===//
//
// Part of the Lina project.
//
// Emits the plan format of docs/PLAN.md (a lina::rt::Plan, written with
// lina::rt::writePlan) from a module holding one lina.grid and a
// straight-line function of lina, arith.addf and tensor reshape, slice and
// concat ops. Tensor reshapes and contiguous slices become
// zero-copy views; non-contiguous slices and concatenations become box
// copies; concatenations of op results along the outermost non-unit
// dimension are built in place (the producers write views of the
// concatenated buffer), which is how a partitioned all_reduce reduces one
// gradient buffer in place.
//
// Function arguments become "param" buffers when they (or a reshape or slice
// of them) are a weight operand of dense, gate, expert_ffn or their
// gradients, and "input" buffers otherwise. The runtime seeds them by name:
// an argument's name is its `lina.name` string attribute, else "arg<N>";
// its init is its `lina.init` attribute ("random" or "zero"), else "random".
// Group members are listed in group-rank order: row-major over the group's
// axes in the order the lina.grid lists them.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_TARGET_PLAN_PLANEMITTER_H
#define LINA_TARGET_PLAN_PLANEMITTER_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace mlir::lina {

/// What the plan's "mode" field says.
enum class PlanMode {
  /// "train" if the function has a *_grad op, else "infer".
  Auto,
  Train,
  Infer,
};

struct PlanEmitterOptions {
  /// Function to emit; empty selects the only public function.
  std::string function;
  PlanMode mode = PlanMode::Auto;
};

/// Writes the plan of `module` to `os`; on error reports a diagnostic at the
/// offending op and returns failure (nothing is written then).
LogicalResult emitPlan(ModuleOp module, llvm::raw_ostream &os,
                       const PlanEmitterOptions &options = {});

/// Registers the `--lina-to-plan` translation and its options
/// (`--lina-plan-function`, `--lina-plan-mode`).
void registerToPlanTranslation();

} // namespace mlir::lina

#endif // LINA_TARGET_PLAN_PLANEMITTER_H
