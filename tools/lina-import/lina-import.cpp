//===- lina-import.cpp - Model config to lina IR --------------------------===//
//
// Part of the Lina project.
//
// `lina-import CONFIG.json --ep E --dp D --micro-batch B --seq S
//  --mode train|infer` reads a Hugging Face style MoE model configuration
// and prints the lina IR of one training step (forward, backward, gradient
// all-reduce) or one inference pass on one rank of a [D, E] device grid;
// with --summary, the model's parameters, FLOPs per token, all_to_all and
// gradient bytes on that grid instead. Every flag and config number is
// range-checked before anything is sized. docs/IMPORT.md documents the
// flags, the accepted config fields and the modelling.
//
//===----------------------------------------------------------------------===//

#include "ModelBuilder.h"
#include "ModelConfig.h"
#include "Summary.h"

#include "lina/Support/CheckedMath.h"

#include "lina/Dialect/Lina/IR/LinaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

#include <cmath>
#include <numeric>
#include <tuple>

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
cl::opt<std::string>
    epOpt("ep",
          cl::desc("Expert-parallel ranks; must divide the number of experts. "
                   "'auto': the largest that divides the experts and --world"),
          cl::value_desc("n|auto"), cl::init("1"), cl::cat(importCategory));
cl::opt<int64_t> dpOpt("dp",
                       cl::desc("Data-parallel replicas of each expert; the "
                                "grid has dp * ep ranks"),
                       cl::init(1), cl::cat(importCategory));
cl::opt<int64_t>
    worldOpt("world",
             cl::desc("Ranks in the grid (dp * ep); with it --dp is derived"),
             cl::init(0), cl::cat(importCategory));
cl::opt<bool> summaryOpt(
    "summary",
    cl::desc("Print the model's parameters, FLOPs per token, all_to_all and "
             "gradient bytes on the grid instead of the IR"),
    cl::init(false), cl::cat(importCategory));
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
cl::opt<int64_t>
    hiddenOpt("hidden",
              cl::desc("Override the hidden size (small test models)"),
              cl::init(0), cl::cat(importCategory));
cl::opt<int64_t> headsOpt(
    "heads",
    cl::desc("Override the number of attention heads (small test models)"),
    cl::init(0), cl::cat(importCategory));
cl::opt<int64_t> intermediateOpt(
    "intermediate",
    cl::desc("Override every FFN intermediate size: dense layers, routed "
             "and shared experts (small test models)"),
    cl::init(0), cl::cat(importCategory));
cl::opt<int64_t> expertsOpt(
    "experts",
    cl::desc("Override the number of routed experts; top-k is clamped to it "
             "(small test models)"),
    cl::init(0), cl::cat(importCategory));
cl::opt<double> capacityFactorOpt(
    "capacity-factor",
    cl::desc("Capacity factor of every gate, in (0, 64]; 0 takes the "
             "config's capacity_factor, else 1.25 for train and 2.0 for "
             "infer"),
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

/// Every tensor the builder creates stays within lina::Limits, computed
/// without overflow: activations [T, width], expert weights [E/ep, H, F],
/// dispatch buffers [E, C, H] and what a rank receives [E/ep, ep * C, H].
Error checkSizes(const ModelSpec &spec, const ImportOptions &opts) {
  using ::lina::Limits;
  int64_t tokens = opts.microBatch * opts.seq;
  int64_t widest =
      std::max({spec.hidden, spec.modelledFfnWidth(spec.denseIntermediate),
                spec.modelledFfnWidth(spec.expertIntermediate),
                spec.modelledFfnWidth(spec.sharedIntermediate)});
  SmallVector<std::pair<std::string, SmallVector<int64_t, 4>>> shapes;
  int64_t heads = spec.numHeads + 2 * spec.numKvHeads;
  shapes.push_back({"the attention weights",
                    {spec.hidden, heads, std::max<int64_t>(spec.headDim, 1)}});
  shapes.push_back({"an activation", {tokens, widest}});
  shapes.push_back({"an attention activation",
                    {tokens, heads, std::max<int64_t>(spec.headDim, 1)}});
  if (spec.latent) {
    const LatentAttentionSpec &la = *spec.latent;
    shapes.push_back(
        {"the latent query weights",
         {std::max(la.qLoraRank, spec.hidden), spec.numHeads, la.qkHeadDim()}});
    shapes.push_back(
        {"the latent key/value weights",
         {la.kvLoraRank, spec.numHeads, la.qkNopeHeadDim + la.vHeadDim}});
  }
  if (spec.hasMoELayer()) {
    if (std::string m = ::lina::checkLimit(
            "the number of experts", spec.numExperts, Limits::kMaxExperts);
        !m.empty())
      return createStringError(inconvertibleErrorCode(), m);
    double perExpert = double(tokens) * double(spec.topK) /
                       double(spec.numExperts) * opts.capacityFactor;
    if (!(perExpert <= double(Limits::kMaxCapacity)))
      return createStringError(
          inconvertibleErrorCode(),
          formatv("the expert capacity ({0} rows) exceeds the limit of {1}; "
                  "lower --capacity-factor, --micro-batch or --seq",
                  format("%g", perExpert), Limits::kMaxCapacity));
    int64_t c = computeCapacity(tokens, spec.topK, spec.numExperts,
                                opts.capacityFactor);
    int64_t f = spec.modelledFfnWidth(spec.expertIntermediate);
    shapes.push_back(
        {"the expert weights", {spec.numExperts / opts.ep, spec.hidden, f}});
    shapes.push_back(
        {"the dispatch buffer", {spec.numExperts, c, spec.hidden}});
    shapes.push_back({"the received tokens",
                      {spec.numExperts / opts.ep, opts.ep, c, spec.hidden}});
    shapes.push_back({"the router weights", {spec.hidden, spec.numExperts}});
  }
  for (auto &[what, shape] : shapes) {
    std::optional<int64_t> n = ::lina::checkedProduct(shape);
    if (!n || *n > Limits::kMaxElements) {
      std::string dims;
      for (int64_t d : shape)
        dims += (dims.empty() ? "" : " x ") + std::to_string(d);
      return createStringError(
          inconvertibleErrorCode(),
          formatv("{0} would have {1} elements; the limit is {2} elements "
                  "per tensor",
                  what, dims, Limits::kMaxElements));
    }
  }
  return Error::success();
}
} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(importCategory);
  cl::ParseCommandLineOptions(
      argc, argv,
      "lina-import: compile an MoE model config.json into lina IR\n");

  // Flags: integers in range, the capacity factor finite.
  for (auto [name, value, lo, hi] :
       {std::tuple<StringRef, int64_t, int64_t, int64_t>{
            "--dp", dpOpt, 1, ::lina::Limits::kMaxRanks},
        {"--world", worldOpt, 0, ::lina::Limits::kMaxRanks},
        {"--micro-batch", microBatchOpt, 1, int64_t(1) << 40},
        {"--seq", seqOpt, 1, int64_t(1) << 40},
        {"--layers", layersOpt, 0, ConfigLimits::kMaxLayers},
        {"--hidden", hiddenOpt, 0, ConfigLimits::kMaxWidth},
        {"--heads", headsOpt, 0, ConfigLimits::kMaxHeads},
        {"--intermediate", intermediateOpt, 0, ConfigLimits::kMaxWidth},
        {"--experts", expertsOpt, 0, ::lina::Limits::kMaxExperts}}) {
    if (value < lo && lo == 1)
      return fail(formatv("{0} must be positive, got {1}", name, value));
    if (value < lo)
      return fail(formatv("{0} must be positive (or 0 for the default), got "
                          "{1}",
                          name, value));
    if (value > hi)
      return fail(formatv("{0} is {1}; the limit is {2}", name, value, hi));
  }
  double cf = capacityFactorOpt;
  if (!std::isfinite(cf) || cf < 0.0 || cf > ConfigLimits::kMaxCapacityFactor)
    return fail(formatv("--capacity-factor must be a finite number in (0, "
                        "{0}] (or 0 for the default), got {1}",
                        format("%g", ConfigLimits::kMaxCapacityFactor),
                        format("%g", cf)));
  if (microBatchOpt > (int64_t(1) << 40) / seqOpt)
    return fail(formatv("--micro-batch * --seq is {0} tokens per rank; the "
                        "limit is 2^40",
                        format("%g", static_cast<double>(microBatchOpt) *
                                         static_cast<double>(seqOpt))));
  bool epAuto = epOpt == "auto";
  int64_t ep = 0;
  if (!epAuto) {
    if (StringRef(epOpt).getAsInteger(10, ep))
      return fail(formatv("--ep must be a positive integer or 'auto', got "
                          "'{0}'",
                          epOpt));
    if (ep <= 0)
      return fail(formatv("--ep must be positive, got {0}", ep));
    if (ep > ::lina::Limits::kMaxRanks)
      return fail(formatv("--ep is {0}; the limit is {1}", ep,
                          ::lina::Limits::kMaxRanks));
  } else if (worldOpt == 0) {
    return fail("--ep auto needs --world N, the number of ranks");
  }
  if (worldOpt > 0 && dpOpt.getNumOccurrences() > 0)
    return fail("--world and --dp are exclusive: --dp is --world / --ep");

  ErrorOr<std::unique_ptr<MemoryBuffer>> file =
      MemoryBuffer::getFile(configPath, /*IsText=*/true);
  if (!file)
    return fail(formatv("cannot read config '{0}': {1}", configPath,
                        file.getError().message()));
  ModelOverrides overrides;
  overrides.layers = layersOpt;
  overrides.hidden = hiddenOpt;
  overrides.heads = headsOpt;
  overrides.intermediate = intermediateOpt;
  overrides.experts = expertsOpt;
  Expected<ModelSpec> spec =
      parseModelConfig(configPath, (*file)->getBuffer(), overrides);
  if (!spec)
    return fail(toString(spec.takeError()));
  bool moe = spec->hasMoELayer();

  // The grid: --ep auto takes the largest divisor of the experts that
  // divides the world, gcd(experts, world).
  if (epAuto)
    ep = moe ? std::gcd(spec->numExperts, static_cast<int64_t>(worldOpt)) : 1;
  if (moe && spec->numExperts % ep != 0)
    return fail(formatv("--ep {0} does not divide the number of experts "
                        "({1}); expert parallelism needs an equal number of "
                        "experts per rank. Valid --ep values: {2}",
                        ep, spec->numExperts, divisors(spec->numExperts)));
  int64_t dp = dpOpt;
  if (worldOpt > 0) {
    if (worldOpt % ep != 0)
      return fail(formatv("--world {0} is not a multiple of --ep {1}",
                          static_cast<int64_t>(worldOpt), ep));
    dp = worldOpt / ep;
  }
  if (std::optional<int64_t> world = ::lina::checkedMul(dp, ep);
      !world || *world > ::lina::Limits::kMaxRanks)
    return fail(formatv("the grid has --dp {0} x --ep {1} ranks; the limit "
                        "is {2}",
                        dp, ep, ::lina::Limits::kMaxRanks));

  ImportOptions options;
  options.ep = ep;
  options.dp = dp;
  options.microBatch = microBatchOpt;
  options.seq = seqOpt;
  options.training = modeOpt == Mode::Train;
  options.dtype = dtypeOpt;
  if (cf > 0.0)
    options.capacityFactor = cf;
  else
    options.capacityFactor =
        spec->capacityFactor.value_or(options.training ? 1.25 : 2.0);

  if (Error err = checkSizes(*spec, options))
    return fail(toString(std::move(err)));

  std::string error;
  std::unique_ptr<ToolOutputFile> output =
      mlir::openOutputFile(outputPath, &error);
  if (!output)
    return fail(error);
  if (summaryOpt) {
    if (Error err = printSummary(output->os(), *spec, options, configPath))
      return fail(toString(std::move(err)));
    output->keep();
    return 0;
  }

  mlir::MLIRContext context;
  context.loadDialect<mlir::lina::LinaDialect, mlir::func::FuncDialect,
                      mlir::arith::ArithDialect, mlir::tensor::TensorDialect>();
  mlir::OwningOpRef<mlir::ModuleOp> module =
      buildModel(context, *spec, options, configPath);
  if (mlir::failed(mlir::verify(*module)))
    return fail("the generated IR does not verify (see the diagnostics "
                "above); this is a bug in lina-import");

  module->print(output->os());
  output->os() << "\n";
  output->keep();
  return 0;
}
