//===- lina-import.cpp - Model config to lina IR --------------------------===//
//
// Part of the Lina project.
//
// `lina-import CONFIG.json --ep E --dp D --micro-batch B --seq S
//  --mode train|infer` reads a Hugging Face style MoE model configuration
// and prints the lina IR of one training step (forward, backward, gradient
// all-reduce) or one inference pass on one rank of a [D, E] device grid.
// docs/IMPORT.md documents the flags, the accepted config fields and the
// modelling.
//
//===----------------------------------------------------------------------===//

#include "ModelBuilder.h"
#include "ModelConfig.h"

#include "lina/Dialect/Lina/IR/LinaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

using namespace llvm;
using namespace mlir::lina::import;

namespace {
enum class Mode { Train, Infer };

cl::OptionCategory importCategory("lina-import options");

cl::opt<std::string> configPath(cl::Positional, cl::Required,
                                cl::desc("<config.json>"),
                                cl::cat(importCategory));
cl::opt<std::string> outputPath("o", cl::desc("Output file (default: stdout)"),
                                cl::value_desc("file"), cl::init("-"),
                                cl::cat(importCategory));
cl::opt<int64_t> epOpt("ep",
                       cl::desc("Expert-parallel ranks; must divide the "
                                "number of experts"),
                       cl::init(1), cl::cat(importCategory));
cl::opt<int64_t> dpOpt("dp",
                       cl::desc("Data-parallel replicas of each expert; the "
                                "grid has dp * ep ranks"),
                       cl::init(1), cl::cat(importCategory));
cl::opt<int64_t> microBatchOpt("micro-batch",
                               cl::desc("Sequences per rank per step"),
                               cl::Required, cl::cat(importCategory));
cl::opt<int64_t> seqOpt("seq", cl::desc("Tokens per sequence"), cl::Required,
                        cl::cat(importCategory));
cl::opt<Mode> modeOpt(
    "mode", cl::desc("What to build"), cl::Required,
    cl::values(clEnumValN(Mode::Train, "train",
                          "one training step: forward, backward, gradient "
                          "all-reduce"),
               clEnumValN(Mode::Infer, "infer", "one inference pass")),
    cl::cat(importCategory));
cl::opt<ElementType> dtypeOpt(
    "dtype", cl::desc("Element type of activations and parameters"),
    cl::init(ElementType::f32),
    cl::values(clEnumValN(ElementType::f32, "f32", "32-bit float (default)"),
               clEnumValN(ElementType::bf16, "bf16", "bfloat16"),
               clEnumValN(ElementType::f16, "f16", "16-bit float")),
    cl::cat(importCategory));
cl::opt<int64_t> layersOpt(
    "layers",
    cl::desc("Override the number of layers of every stack (small test "
             "models); 0 keeps the config's"),
    cl::init(0), cl::cat(importCategory));
cl::opt<double> capacityFactorOpt(
    "capacity-factor",
    cl::desc("Capacity factor of every gate; 0 takes the config's "
             "capacity_factor, else 1.25 for train and 2.0 for infer"),
    cl::init(0.0), cl::cat(importCategory));

int fail(const Twine &msg) {
  WithColor::error(errs(), "lina-import") << msg << "\n";
  return 1;
}

/// Divisors of n, for the message of a bad --ep.
std::string divisors(int64_t n) {
  std::string out;
  for (int64_t d = 1; d <= n; ++d)
    if (n % d == 0)
      out += (out.empty() ? "" : ", ") + std::to_string(d);
  return out;
}
} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(importCategory);
  cl::ParseCommandLineOptions(
      argc, argv,
      "lina-import: compile an MoE model config.json into lina IR\n");

  for (auto [name, value] :
       {std::pair<StringRef, int64_t>{"--ep", epOpt},
        {"--dp", dpOpt},
        {"--micro-batch", microBatchOpt},
        {"--seq", seqOpt}})
    if (value <= 0)
      return fail(formatv("{0} must be positive, got {1}", name, value));
  if (layersOpt < 0)
    return fail(formatv("--layers must be positive (or 0 to keep the "
                        "config's), got {0}",
                        static_cast<int64_t>(layersOpt)));
  if (capacityFactorOpt < 0.0)
    return fail(formatv("--capacity-factor must be positive (or 0 for the "
                        "default), got {0}",
                        static_cast<double>(capacityFactorOpt)));
  if (microBatchOpt > (int64_t(1) << 40) / seqOpt)
    return fail("--micro-batch * --seq is too large");

  ErrorOr<std::unique_ptr<MemoryBuffer>> file =
      MemoryBuffer::getFile(configPath, /*IsText=*/true);
  if (!file)
    return fail(formatv("cannot read config '{0}': {1}", configPath,
                        file.getError().message()));
  Expected<ModelSpec> spec =
      parseModelConfig(configPath, (*file)->getBuffer(), layersOpt);
  if (!spec)
    return fail(toString(spec.takeError()));

  ImportOptions options;
  options.ep = epOpt;
  options.dp = dpOpt;
  options.microBatch = microBatchOpt;
  options.seq = seqOpt;
  options.training = modeOpt == Mode::Train;
  options.dtype = dtypeOpt;
  if (capacityFactorOpt > 0.0)
    options.capacityFactor = capacityFactorOpt;
  else
    options.capacityFactor = spec->capacityFactor.value_or(
        options.training ? 1.25 : 2.0);

  if (spec->hasMoELayer() && spec->numExperts % options.ep != 0)
    return fail(formatv("--ep {0} does not divide the number of experts "
                        "({1}); expert parallelism needs an equal number of "
                        "experts per rank. Valid --ep values: {2}",
                        options.ep, spec->numExperts,
                        divisors(spec->numExperts)));

  mlir::MLIRContext context;
  context.loadDialect<mlir::lina::LinaDialect, mlir::func::FuncDialect,
                      mlir::arith::ArithDialect, mlir::tensor::TensorDialect>();
  mlir::OwningOpRef<mlir::ModuleOp> module =
      buildModel(context, *spec, options, configPath);
  if (mlir::failed(mlir::verify(*module)))
    return fail("the generated IR does not verify (see the diagnostics "
                "above); this is a bug in lina-import");

  std::string error;
  std::unique_ptr<ToolOutputFile> output =
      mlir::openOutputFile(outputPath, &error);
  if (!output)
    return fail(error);
  module->print(output->os());
  output->os() << "\n";
  output->keep();
  return 0;
}
