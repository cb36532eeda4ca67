//===- Passes.h - Lina transformation passes --------------------*- C++ -*-===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_DIALECT_LINA_TRANSFORMS_PASSES_H
#define LINA_DIALECT_LINA_TRANSFORMS_PASSES_H

#include "lina/Dialect/Lina/IR/LinaOps.h"
#include "lina/Dialect/Lina/Transforms/SizeOption.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

#include <memory>
#include <string>

namespace lina {
class CostModel;
}

namespace mlir::lina {

/// What --lina-prioritize-alltoall does (its `mode` option).
enum class ScheduleMode { Lina, Ds, Serial };

#define GEN_PASS_DECL
#include "lina/Dialect/Lina/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "lina/Dialect/Lina/Transforms/Passes.h.inc"

/// Options of the --lina-training-pipeline pass pipeline.
struct TrainingPipelineOptions
    : public PassPipelineOptions<TrainingPipelineOptions> {
  Option<SizeOption> partitionBytes{
      *this, "partition-bytes",
      llvm::cl::desc("Largest all_reduce partition in bytes (a positive "
                     "integer), or 'auto'"),
      llvm::cl::init(SizeOption(31457280))};
  Option<SizeOption> chunks{
      *this, "chunks",
      llvm::cl::desc("Expert pipeline micro-chunks (a positive integer), or "
                     "'auto'"),
      llvm::cl::init(SizeOption(2))};
  Option<int64_t> microbatches{
      *this, "microbatches",
      llvm::cl::desc("Micro-batches interleaved at every all_to_all "
                     "(--lina-overlap-microbatches; 1: none)"),
      llvm::cl::init(1)};
  Option<bool> splitExpertGrad{
      *this, "split-expert-grad",
      llvm::cl::desc("Split expert_ffn_grad into its input and weight "
                     "gradients (--lina-split-expert-grad)"),
      llvm::cl::init(true)};
  Option<bool> separateWeightGrads{
      *this, "separate-weight-grads",
      llvm::cl::desc("With split-expert-grad: one lina.expert_weight_grad "
                     "per weight matrix, so the first one's all_reduce "
                     "starts while the second's GEMM runs"),
      llvm::cl::init(true)};
  Option<std::string> cluster{
      *this, "cluster",
      llvm::cl::desc("Cluster description (JSON) for the 'auto' choices"),
      llvm::cl::init("")};
  Option<bool> report{*this, "report",
                      llvm::cl::desc("Emit a remark with each pass's counters"),
                      llvm::cl::init(false)};
};

/// Options of the --lina-baseline-pipeline pass pipeline.
struct BaselinePipelineOptions
    : public PassPipelineOptions<BaselinePipelineOptions> {
  Option<ScheduleMode> mode{
      *this, "mode",
      llvm::cl::desc("ds: bucketed gradient all_reduce on the low queue; "
                     "serial: one queue in program order"),
      llvm::cl::init(ScheduleMode::Ds),
      llvm::cl::values(
          clEnumValN(ScheduleMode::Ds, "ds", "DeepSpeed-like baseline"),
          clEnumValN(ScheduleMode::Serial, "serial", "one queue"))};
  Option<int64_t> bucketBytes{
      *this, "bucket-bytes",
      llvm::cl::desc("Gradient bucket size in bytes for mode=ds"),
      llvm::cl::init(26214400)};
  Option<bool> report{*this, "report",
                      llvm::cl::desc("Emit a remark with each pass's counters"),
                      llvm::cl::init(false)};
};

/// Adds the passes of a named baseline schedule to `pm`.
void buildBaselinePipeline(OpPassManager &pm,
                           const BaselinePipelineOptions &options);

/// Adds partition -> pipeline-experts -> prioritize to `pm`.
void buildTrainingPipeline(OpPassManager &pm,
                           const TrainingPipelineOptions &options);

/// Registers the passes and the --lina-training-pipeline pipeline.
void registerLinaPassesAndPipelines();

/// Loads the cost model of `clusterFile` (or of the built-in a100-ib100
/// cluster when empty). Meant for a pass's `initialize`: on failure emits an
/// error at an unknown location, prefixed with `passName` and naming the
/// file, and returns nullptr.
std::shared_ptr<const ::lina::CostModel>
loadCostModel(MLIRContext *context, llvm::StringRef passName,
              llvm::StringRef clusterFile);

/// Checks that a group of `groupSize` ranks fits the cluster of `model`;
/// otherwise emits an error on `op` and fails.
LogicalResult checkGroupFits(Operation *op, int64_t groupSize,
                             const ::lina::CostModel &model);

} // namespace mlir::lina

#endif // LINA_DIALECT_LINA_TRANSFORMS_PASSES_H
