//===- ModelConfigFuzzer.cpp - Fuzz lina-import's model configs -----------===//
//
// Part of the Lina project.
//
// The input is a Hugging Face-style config.json. parseModelConfig must
// accept it or return an error. An accepted config is imported the way
// lina-import does (two layers, one rank, a short sequence) and the module
// it builds must verify.
//
//===----------------------------------------------------------------------===//

#include "FuzzerUtil.h"

#include "ModelBuilder.h"
#include "ModelConfig.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/Error.h"

using namespace mlir;
using namespace mlir::lina::import;

namespace {
constexpr const char *kTarget = "lina-fuzz-model-config";
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
  std::string text = ::lina::fuzz::asText(data, size);
  ModelOverrides overrides;
  overrides.layers = 2;
  llvm::Expected<ModelSpec> spec =
      parseModelConfig("fuzz.json", text, overrides);
  if (!spec) {
    ::lina::fuzz::checkMessage(kTarget, llvm::toString(spec.takeError()));
    return 0;
  }

  static MLIRContext *context = [] {
    auto *ctx = new MLIRContext(MLIRContext::Threading::DISABLED);
    ctx->loadDialect<mlir::lina::LinaDialect, func::FuncDialect,
                     arith::ArithDialect, tensor::TensorDialect>();
    return ctx;
  }();
  ImportOptions options;
  options.seq = 8;
  options.capacityFactor = spec->capacityFactor.value_or(1.25);
  // Keep lina-import's own diagnostics (the verifier's) off the output; a
  // failure is reported below.
  ScopedDiagnosticHandler quiet(context,
                                [](Diagnostic &) { return success(); });
  OwningOpRef<ModuleOp> module = buildModel(*context, *spec, options, "fuzz");
  if (!module || failed(verify(*module)))
    ::lina::fuzz::fail(kTarget, "an accepted config imports to IR that does "
                                "not verify");
  return 0;
}
