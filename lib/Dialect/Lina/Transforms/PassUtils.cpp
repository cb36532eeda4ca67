//===- PassUtils.cpp - Cost model loading and pass pipelines --------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/Transforms/Passes.h"
#include "lina/Support/CostModel.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

using namespace mlir;
using namespace mlir::lina;

std::shared_ptr<const ::lina::CostModel>
mlir::lina::loadCostModel(MLIRContext *context, StringRef passName,
                          StringRef clusterFile) {
  if (clusterFile.empty())
    return std::make_shared<const ::lina::CostModel>(
        ::lina::ClusterSpec::a100Ib100());
  std::string error;
  auto spec = ::lina::ClusterSpec::fromFile(clusterFile.str(), error);
  if (!spec) {
    // ClusterSpec::fromFile's errors name the file.
    emitError(UnknownLoc::get(context)) << passName << ": " << error;
    return nullptr;
  }
  return std::make_shared<const ::lina::CostModel>(std::move(*spec));
}

LogicalResult mlir::lina::checkGroupFits(Operation *op, int64_t groupSize,
                                         const ::lina::CostModel &model) {
  const ::lina::ClusterSpec &cluster = model.cluster();
  if (groupSize <= cluster.numGpus())
    return success();
  return op->emitOpError()
         << "has a group of " << groupSize << " ranks, more than the "
         << cluster.numGpus() << " GPUs of cluster '" << cluster.name
         << "'; pass a cluster file that fits with cluster=FILE";
}

void mlir::lina::buildTrainingPipeline(OpPassManager &pm,
                                       const TrainingPipelineOptions &options) {
  OpPassManager &fpm = pm.nest<func::FuncOp>();
  if (options.microbatches != 1)
    fpm.addPass(
        createLinaOverlapMicrobatchesPass({options.microbatches.getValue()}));
  fpm.addPass(createLinaPartitionAllReducePass(
      {options.partitionBytes.getValue(), options.cluster.getValue(),
       options.report.getValue()}));
  fpm.addPass(createLinaPipelineExpertsPass({options.chunks.getValue(),
                                             options.cluster.getValue(),
                                             options.report.getValue()}));
  if (options.splitExpertGrad)
    fpm.addPass(createLinaSplitExpertGradPass(
        {options.separateWeightGrads.getValue(), options.report.getValue()}));
  fpm.addPass(createLinaPrioritizeAllToAllPass(
      {ScheduleMode::Lina, options.report.getValue()}));
}

void mlir::lina::buildBaselinePipeline(OpPassManager &pm,
                                       const BaselinePipelineOptions &options) {
  OpPassManager &fpm = pm.nest<func::FuncOp>();
  if (options.mode == ScheduleMode::Ds)
    fpm.addPass(createLinaBucketAllReducePass(
        {options.bucketBytes.getValue(), options.report.getValue()}));
  fpm.addPass(createLinaPrioritizeAllToAllPass(
      {options.mode.getValue(), options.report.getValue()}));
}

void mlir::lina::registerLinaPassesAndPipelines() {
  registerLinaPasses();
  PassPipelineRegistration<TrainingPipelineOptions>(
      "lina-training-pipeline",
      "Lina's training schedule: overlap micro-batches, partition "
      "all_reduce, pipeline experts, split expert gradients, prioritise "
      "all_to_all",
      buildTrainingPipeline);
  PassPipelineRegistration<BaselinePipelineOptions>(
      "lina-baseline-pipeline",
      "A named baseline schedule: mode=ds (DDP-style gradient buckets "
      "all-reduced on the low queue as soon as ready, sharing the network "
      "with all_to_all; run with --policy fifo) or mode=serial (every "
      "collective on one queue in program order)",
      buildBaselinePipeline);
}
