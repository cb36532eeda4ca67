//===- lina-translate.cpp - Lina translation driver -----------------------===//
//
// Part of the Lina project.
//
// `lina-translate --lina-to-plan in.mlir -o plan.json` emits the executable
// plan of scheduled lina IR (docs/PLAN.md). `lina-run PLAN --dump` prints a
// plan as a readable table. The `-o` file is replaced only when the
// translation succeeds.
//
//===----------------------------------------------------------------------===//

#include "lina/Support/AtomicOutput.h"
#include "lina/Target/Plan/PlanEmitter.h"

#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"

int main(int argc, char **argv) {
  mlir::lina::registerToPlanTranslation();
  return lina::runWithAtomicOutput(argc, argv, [](int n, char **args) {
    return mlir::failed(
               mlir::mlirTranslateMain(n, args, "Lina translation driver"))
               ? 1
               : 0;
  });
}
