//===- OpKinds.h - Per-kind properties of plan ops --------------*- C++ -*-===//
//
// Part of the Lina project.
//
// What the runtime core knows of each op kind beyond OpKinds.def's
// declaration (names, arities and classes are in Plan.h's kOpKinds): its
// roofline cost. Backends index their kernels by OpKinds.def as well.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_OPKINDS_H
#define LINA_RT_OPKINDS_H

#include "lina/rt/Plan.h"

namespace lina::rt {

/// The roofline inputs of one op.
struct OpCost {
  double flops = 0;  ///< floating-point operations
  double bytes = 0;  ///< bytes read and written (every input and output)
  bool gemm = false; ///< GEMM kernels (else memory-bound ones)
  int kernels = 1;   ///< kernels launched
};

/// The cost of `op` (a compute op; collectives get the memory-bound
/// default, the network model costs them).
OpCost opCost(const Plan &plan, const Op &op);

} // namespace lina::rt

#endif // LINA_RT_OPKINDS_H
