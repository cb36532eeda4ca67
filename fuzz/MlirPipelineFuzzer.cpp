//===- MlirPipelineFuzzer.cpp - Fuzz parse + verify + training pipeline ---===//
//
// Part of the Lina project.
//
// The input is MLIR text in the lina, func, arith and tensor dialects (what
// lina-opt reads). It is parsed and verified; a module that verifies then
// goes through --lina-training-pipeline (partition all_reduce, pipeline
// experts, prioritise all_to_all) with fixed options. Diagnostics are
// expected and swallowed; a crash, a sanitizer report, a hang, or a pass
// that succeeds but leaves IR that no longer verifies are findings. Input
// nested deeper than lina::kMaxMlirNesting is skipped, as the tools reject
// it before parsing (lina/Support/NestingDepth.h).
//
//===----------------------------------------------------------------------===//

#include "FuzzerUtil.h"

#include "lina/Dialect/Lina/IR/LinaOps.h"
#include "lina/Dialect/Lina/Transforms/Passes.h"
#include "lina/Support/NestingDepth.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassInstrumentation.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/SourceMgr.h"

using namespace mlir;

namespace {

constexpr const char *kTarget = "lina-fuzz-mlir";

MLIRContext &getContext() {
  static MLIRContext *context = [] {
    DialectRegistry registry;
    registry.insert<mlir::lina::LinaDialect, func::FuncDialect,
                    arith::ArithDialect, tensor::TensorDialect>();
    auto *ctx = new MLIRContext(registry, MLIRContext::Threading::DISABLED);
    ctx->loadAllAvailableDialects();
    // Diagnostics are swallowed: printing the failing op into each one only
    // costs time (and MLIR 19's printer crashes on some parsed attributes,
    // e.g. `array<i01: 0>`, which would hide every later finding; that one is
    // reproduced by fuzz/regressions/mlir/open/upstream-dense-array-i01.mlir).
    ctx->printOpOnDiagnostic(false);
    return ctx;
  }();
  return *context;
}

/// Fails the run when a pass succeeds but leaves IR that does not verify.
struct VerifyAfterEachPass : public PassInstrumentation {
  void runAfterPass(Pass *pass, Operation *op) override {
    if (failed(verify(op)))
      ::lina::fuzz::fail(kTarget, "pass '" + pass->getArgument().str() +
                                      "' succeeded but left IR that does not "
                                      "verify");
  }
};

} // namespace

// LLVM's headers poison and unpoison allocator memory by hand when they are
// compiled with ASan, but Debian's LLVM/MLIR libraries are not instrumented
// and reuse that memory without unpoisoning it: every MLIRContext would
// report a false use-after-poison. Ignore manual poisoning (ASan's own
// checks are unaffected).
extern "C" const char *__asan_default_options() {
  return "allow_user_poisoning=0";
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // lina-opt and lina-translate refuse input nested deeper than the parser's
  // stack allows before they parse it; so does the target.
  if (::lina::findExcessiveNesting(
          std::string_view(reinterpret_cast<const char *>(data), size)))
    return 0;

  MLIRContext &context = getContext();
  ScopedDiagnosticHandler quiet(&context,
                                [](Diagnostic &) { return success(); });

  // The parser needs a buffer of its own (it may read one past the end).
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(
          llvm::StringRef(reinterpret_cast<const char *>(data), size),
          "fuzz.mlir"),
      llvm::SMLoc());
  // parseSourceFile verifies the module it returns.
  OwningOpRef<ModuleOp> module =
      parseSourceFile<ModuleOp>(sourceMgr, ParserConfig(&context));
  if (!module)
    return 0;

  PassManager pm(&context);
  // Verify after each pass ourselves, so that a pass that breaks the IR is
  // named (the pass manager's own verifier would only fail the run).
  pm.enableVerifier(false);
  pm.addInstrumentation(std::make_unique<VerifyAfterEachPass>());
  mlir::lina::TrainingPipelineOptions options;
  options.partitionBytes = mlir::lina::SizeOption(1048576);
  options.chunks = mlir::lina::SizeOption(2);
  mlir::lina::buildTrainingPipeline(pm, options);
  (void)pm.run(*module);
  return 0;
}
