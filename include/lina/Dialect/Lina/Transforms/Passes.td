//===- Passes.td - Lina transformation passes --------------*- tablegen -*-===//

#ifndef LINA_DIALECT_LINA_TRANSFORMS_PASSES_TD
#define LINA_DIALECT_LINA_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def LinaVerifySchedulePass : Pass<"lina-verify-schedule", "::mlir::ModuleOp"> {
  let summary = "Checks that every collective names a declared group";
  let description = [{
    Placeholder kept until the schedule passes land.
  }];
}

#endif // LINA_DIALECT_LINA_TRANSFORMS_PASSES_TD
