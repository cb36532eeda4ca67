//===- LinaDialect.td - Lina dialect definition ------------*- tablegen -*-===//
//
// The `lina` dialect describes Mixture-of-Experts computation graphs for
// distributed training and inference: gating, token dispatch and combine,
// expert FFNs, dense blocks, the collectives that connect them, and the
// explicit backward forms that make a training step one straight-line
// function.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_DIALECT_LINA_IR_LINADIALECT_TD
#define LINA_DIALECT_LINA_IR_LINADIALECT_TD

include "mlir/IR/OpBase.td"

def Lina_Dialect : Dialect {
  let name = "lina";
  let cppNamespace = "::mlir::lina";
  let summary = "Mixture-of-Experts computation graphs and their collectives";
  let description = [{
    The `lina` dialect models one training step or one inference pass of a
    Mixture-of-Experts (MoE) model as seen by one rank of an SPMD program.
    Values are builtin ranked tensors with static shapes. Collectives name a
    parallel group of a device grid declared with `lina.grid`; the schedule
    passes annotate them with typed priority, partition and chunk
    attributes, and `lina-translate --lina-to-plan` turns the result into an
    executable plan.
  }];
  let useDefaultAttributePrinterParser = 1;
  // The discardable `lina.*` attributes (on ops and on function arguments)
  // are verified by the dialect: known names with the right kind of value.
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
  let extraClassDeclaration = [{
    /// Discardable attribute names, defined once for the passes, the plan
    /// emitter and the verifier.
    /// `#lina.placement<...>` on a lina.gate (--lina-build-placement).
    static constexpr ::llvm::StringLiteral kPlacementAttrName = "lina.placement";
    /// Unit attribute on a compute op: hold low-priority collectives back
    /// while it runs (--lina-prioritize-alltoall).
    static constexpr ::llvm::StringLiteral kHoldLowAttrName = "lina.hold_low";
    /// Positive integer on a function (--lina-pipeline-experts chunks=0).
    static constexpr ::llvm::StringLiteral kSuggestedExpertsPerDeviceAttrName =
        "lina.suggested_experts_per_device";
    /// Positive integer on a lina.all_reduce: the number of gradients it
    /// merges (--lina-bucket-allreduce).
    static constexpr ::llvm::StringLiteral kBucketAttrName = "lina.bucket";
    /// Function argument attributes read by lina-to-plan.
    static constexpr ::llvm::StringLiteral kInitAttrName = "lina.init";
    static constexpr ::llvm::StringLiteral kNameAttrName = "lina.name";
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

// Every lina op checks its tensor types against the documented limits
// (lina/Support/CheckedMath.h) before its own verifier reads a dimension.
def Lina_TensorsWithinLimits : NativeOpTrait<"TensorsWithinLimits"> {
  let cppNamespace = "::mlir::OpTrait::lina";
}

class Lina_Op<string mnemonic, list<Trait> traits = []>
    : Op<Lina_Dialect, mnemonic, !listconcat([Lina_TensorsWithinLimits], traits)>;

#endif // LINA_DIALECT_LINA_IR_LINADIALECT_TD
