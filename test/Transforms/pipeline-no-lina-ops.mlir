// A module without any lina op: the passes load the dialect themselves and
// leave the function alone (this used to crash in PriorityAttr::get).
// RUN: lina-opt %s --lina-training-pipeline | FileCheck %s
// RUN: lina-opt %s --lina-training-pipeline="microbatches=2" | FileCheck %s
// RUN: lina-opt %s --lina-baseline-pipeline="mode=serial" | FileCheck %s

// CHECK-LABEL: func.func @f()
// CHECK-NEXT: return
func.func @f() {
  return
}
