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
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

class Lina_Op<string mnemonic, list<Trait> traits = []>
    : Op<Lina_Dialect, mnemonic, traits>;

#endif // LINA_DIALECT_LINA_IR_LINADIALECT_TD
