//===- lina-opt.cpp - Lina optimizer driver -------------------------------===//
//
// Part of the Lina project.
//
// Parses lina, func, arith and tensor IR, runs the Lina passes and prints
// the result. See `lina-opt --help` for the passes and their options. The
// `-o` file is replaced only when the run succeeds.
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/IR/LinaOps.h"
#include "lina/Dialect/Lina/Transforms/Passes.h"
#include "lina/Support/AtomicOutput.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<mlir::lina::LinaDialect, mlir::func::FuncDialect,
                  mlir::arith::ArithDialect, mlir::tensor::TensorDialect>();
  mlir::lina::registerLinaPassesAndPipelines();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerSymbolDCEPass();
  return lina::runWithAtomicOutput(argc, argv, [&](int n, char **args) {
    return mlir::asMainReturnCode(
        mlir::MlirOptMain(n, args, "Lina optimizer driver\n", registry));
  });
}
