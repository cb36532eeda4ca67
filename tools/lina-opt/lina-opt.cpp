//===- lina-opt.cpp - Lina optimizer driver -------------------------------===//
//
// Part of the Lina project.
//
// Parses lina, func, arith and tensor IR, runs the Lina passes and prints
// the result. See `lina-opt --help` for the passes and their options. The
// `-o` file is replaced only when the run succeeds, and input that nests
// brackets deeper than the parser's stack allows is an error, not a crash
// (lina/Support/NestingDepth.h).
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/IR/LinaOps.h"
#include "lina/Dialect/Lina/Transforms/Passes.h"
#include "lina/Support/NestingDepth.h"
#include "lina/Tools/AtomicOutput.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/ToolOutputFile.h"

namespace {

/// MlirOptMain with a nesting check between reading the input and parsing
/// it (the upstream driver offers no hook there).
mlir::LogicalResult runLinaOpt(int argc, char **argv,
                               mlir::DialectRegistry &registry) {
  llvm::InitLLVM initLLVM(argc, argv);
  auto [inputFilename, outputFilename] = mlir::registerAndParseCLIOptions(
      argc, argv, "Lina optimizer driver\n", registry);
  mlir::MlirOptMainConfig config =
      mlir::MlirOptMainConfig::createFromCLOptions();
  if (config.shouldShowDialects())
    return mlir::MlirOptMain(argc, argv, inputFilename, outputFilename,
                             registry);

  std::string errorMessage;
  std::unique_ptr<llvm::MemoryBuffer> input =
      mlir::openInputFile(inputFilename, &errorMessage);
  if (!input) {
    llvm::errs() << errorMessage << "\n";
    return mlir::failure();
  }
  if (auto deep = lina::findExcessiveNesting(
          std::string_view(input->getBufferStart(), input->getBufferSize()))) {
    llvm::errs() << lina::describeExcessiveNesting(
                        input->getBufferIdentifier().str(), *deep)
                 << "\n";
    return mlir::failure();
  }
  std::unique_ptr<llvm::ToolOutputFile> output =
      mlir::openOutputFile(outputFilename, &errorMessage);
  if (!output) {
    llvm::errs() << errorMessage << "\n";
    return mlir::failure();
  }
  if (mlir::failed(
          mlir::MlirOptMain(output->os(), std::move(input), registry, config)))
    return mlir::failure();
  output->keep();
  return mlir::success();
}

} // namespace

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<mlir::lina::LinaDialect, mlir::func::FuncDialect,
                  mlir::arith::ArithDialect, mlir::tensor::TensorDialect>();
  mlir::lina::registerLinaPassesAndPipelines();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerSymbolDCEPass();
  return lina::runWithAtomicOutput(argc, argv, [&](int n, char **args) {
    return mlir::asMainReturnCode(runLinaOpt(n, args, registry));
  });
}
