//===- VerifySchedule.cpp - Check collectives name declared groups --------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/Transforms/Passes.h"

namespace mlir::lina {
#define GEN_PASS_DEF_LINAVERIFYSCHEDULEPASS
#include "lina/Dialect/Lina/Transforms/Passes.h.inc"
} // namespace mlir::lina

using namespace mlir;
using namespace mlir::lina;

namespace {
struct LinaVerifySchedulePass
    : public lina::impl::LinaVerifySchedulePassBase<LinaVerifySchedulePass> {
  void runOnOperation() override {}
};
} // namespace
