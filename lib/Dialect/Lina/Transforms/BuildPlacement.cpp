//===- BuildPlacement.cpp - Expert placement tables from a profile --------===//
//
// Part of the Lina project.
//
/// Attaches a `#lina.placement` table to every `lina.gate` (one per MoE
/// layer, in program order) from the expert popularity in a routing profile:
/// skewed popularity makes the devices hosting popular experts the
/// stragglers of every inference batch, so popular experts are replicated
/// and unpopular ones packed (lina::linaPlacement, which never does worse
/// than expert parallelism). The runtime starts each batch from this table
/// and refines it per batch from the tokens' paths.
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/Transforms/Passes.h"

#include "lina/Support/Placement.h"
#include "lina/Support/Profile.h"

#include "llvm/Support/Debug.h"
#include "llvm/Support/Format.h"

#include <memory>

#define DEBUG_TYPE "lina-build-placement"

namespace mlir::lina {
#define GEN_PASS_DEF_LINABUILDPLACEMENTPASS
#include "lina/Dialect/Lina/Transforms/Passes.h.inc"
} // namespace mlir::lina

using namespace mlir;
using namespace mlir::lina;

static constexpr llvm::StringLiteral kPlacementAttr =
    LinaDialect::kPlacementAttrName;

/// The largest `devices` and `experts-per-device` accepted.
static constexpr int64_t kMaxCount = int64_t(1) << 20;

/// Checks a positive integer option (0: not given); emits an error naming it
/// otherwise.
static LogicalResult checkCount(MLIRContext *context, StringRef name,
                                int64_t value) {
  if (value < 0)
    return emitError(UnknownLoc::get(context))
           << "lina-build-placement: " << name
           << " must be a positive integer, got '" << value << "'";
  if (value > kMaxCount)
    return emitError(UnknownLoc::get(context))
           << "lina-build-placement: " << name << " must be at most "
           << kMaxCount << ", got '" << value << "'";
  return success();
}

namespace {
/// Where the IR places a gate's experts: the all_to_all that carries the
/// gate's dispatch buffers to the experts (its group is the
/// expert-parallel group) and the experts per device of the expert_ffn
/// that consumes the exchange (its weights' leading dimension).
struct IrGrid {
  AllToAllOp exchange;
  int64_t devices = 0;
  ExpertFfnOp ffn;
  int64_t expertsPerDevice = 0;
};

/// Follows gate -> dispatch -> all_to_all (-> expert_ffn); nullopt when the
/// gate's experts are not exchanged in this function (nothing to check).
std::optional<IrGrid> findIrGrid(GateOp gate) {
  for (Operation *user : gate->getResult(0).getUsers()) {
    auto dispatch = dyn_cast<DispatchOp>(user);
    if (!dispatch)
      continue;
    for (Operation *next : dispatch->getUsers()) {
      auto exchange = dyn_cast<AllToAllOp>(next);
      if (!exchange)
        continue;
      IrGrid grid;
      grid.exchange = exchange;
      grid.devices = exchange.getGroupSize();
      for (Operation *consumer : exchange->getUsers())
        if (auto ffn = dyn_cast<ExpertFfnOp>(consumer)) {
          grid.ffn = ffn;
          grid.expertsPerDevice =
              cast<RankedTensorType>(ffn.getW1().getType()).getDimSize(0);
          break;
        }
      return grid;
    }
  }
  return std::nullopt;
}

struct BuildPlacementPass
    : public mlir::lina::impl::LinaBuildPlacementPassBase<BuildPlacementPass> {
  using LinaBuildPlacementPassBase::LinaBuildPlacementPassBase;

  /// Checks the numeric options and reads the profile once (not once per
  /// function). Missing options are reported by runOnOperation, on the
  /// first function that has gates.
  LogicalResult initialize(MLIRContext *context) override {
    profile.reset();
    if (failed(checkCount(context, "devices", devices)) ||
        failed(checkCount(context, "experts-per-device", expertsPerDevice)))
      return failure();
    if (profileFile.empty())
      return success();
    std::string error;
    std::optional<::lina::Profile> loaded =
        ::lina::Profile::fromFile(profileFile, error);
    if (!loaded)
      // Profile::fromFile's errors name the file.
      return emitError(UnknownLoc::get(context))
             << "lina-build-placement: " << error;
    profile = std::make_shared<const ::lina::Profile>(std::move(*loaded));
    return success();
  }

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    SmallVector<GateOp> gates;
    func.walk([&](GateOp gate) { gates.push_back(gate); });
    if (gates.empty())
      return;

    if (profileFile.empty()) {
      func.emitError() << "lina-build-placement: the profile=FILE option is "
                          "required (a routing profile written by "
                          "lina-profile)";
      return signalPassFailure();
    }
    if (devices == 0) {
      func.emitError() << "lina-build-placement: devices=N is required (the "
                          "number of devices of the expert-parallel group, a "
                          "positive integer)";
      return signalPassFailure();
    }
    assert(profile && "initialize loads the profile");
    int64_t numDevices = devices;
    std::optional<int64_t> slots;
    if (expertsPerDevice != 0)
      slots = expertsPerDevice;

    std::string error;
    if (profile->numLayers != static_cast<int>(gates.size())) {
      func.emitError() << "lina-build-placement: the profile '" << profileFile
                       << "' describes " << profile->numLayers
                       << " MoE layers but @" << func.getSymName() << " has "
                       << gates.size()
                       << " lina.gate ops; profile a trace of this model";
      return signalPassFailure();
    }

    for (auto [layer, gate] : llvm::enumerate(gates)) {
      int64_t experts = gate.getNumExperts();
      if (experts != profile->numExperts) {
        gate.emitError() << "lina-build-placement: MoE layer " << layer
                         << ": the profile has " << profile->numExperts
                         << " experts per layer but this gate has "
                            "num_experts = "
                         << experts;
        return signalPassFailure();
      }
      if (static_cast<int64_t>(gate.getTopK()) != profile->topK) {
        gate.emitError() << "lina-build-placement: MoE layer " << layer
                         << ": the profile was recorded with top-k "
                         << profile->topK
                         << " but this gate has top_k = " << gate.getTopK();
        return signalPassFailure();
      }
      if (std::optional<IrGrid> grid = findIrGrid(gate)) {
        if (grid->devices != numDevices) {
          InFlightDiagnostic diag = gate.emitError();
          diag << "lina-build-placement: devices=" << numDevices
               << " disagrees with the IR: MoE layer " << layer
               << " exchanges its experts over " << grid->devices
               << " devices (the group of its lina.all_to_all); pass "
                  "devices="
               << grid->devices;
          diag.attachNote(grid->exchange.getLoc())
              << "the expert exchange, over a group of " << grid->devices
              << " devices";
          return signalPassFailure();
        }
        if (slots && grid->ffn && *slots < grid->expertsPerDevice) {
          InFlightDiagnostic diag = gate.emitError();
          diag << "lina-build-placement: experts-per-device=" << *slots
               << " disagrees with the IR: MoE layer " << layer << " holds "
               << grid->expertsPerDevice
               << " experts on each device (the lina.expert_ffn weights); "
                  "experts-per-device counts expert slots, at least "
               << grid->expertsPerDevice;
          diag.attachNote(grid->ffn.getLoc())
              << "the experts of one device: " << grid->expertsPerDevice;
          return signalPassFailure();
        }
      }
      int64_t perDevice =
          slots ? *slots : (experts + numDevices - 1) / numDevices;
      std::optional<::lina::LayerPlacement> placement = ::lina::linaPlacement(
          profile->popularity[layer], static_cast<int>(numDevices),
          static_cast<int>(perDevice), error);
      if (!placement) {
        gate.emitError() << "lina-build-placement: MoE layer " << layer << ": "
                         << error << "; raise experts-per-device or devices";
        return signalPassFailure();
      }
      SmallVector<int64_t> offsets{0}, devs;
      SmallVector<double> shares;
      for (const auto &reps : placement->replicas) {
        for (const ::lina::Replica &r : reps) {
          devs.push_back(r.device);
          shares.push_back(r.share);
        }
        offsets.push_back(static_cast<int64_t>(devs.size()));
      }
      // A structured binding cannot be captured before C++20: name the op.
      GateOp gateOp = gate;
      auto emitError = [&]() -> InFlightDiagnostic {
        return gateOp.emitError();
      };
      PlacementAttr attr = PlacementAttr::getChecked(
          llvm::function_ref<InFlightDiagnostic()>(emitError), &getContext(),
          numDevices, perDevice, ArrayRef<int64_t>(offsets),
          ArrayRef<int64_t>(devs),
          DenseF64ArrayAttr::get(&getContext(), shares));
      if (!attr)
        return signalPassFailure();
      gate->setAttr(kPlacementAttr, attr);
      ++numLayers;
      numReplicas += devs.size();
      if (placement->usedStatic)
        ++numStatic;
      double lina = placement->maxDeviceLoad(profile->popularity[layer]);
      std::optional<::lina::LayerPlacement> base = ::lina::staticPlacement(
          static_cast<int>(experts), static_cast<int>(numDevices),
          static_cast<int>(perDevice), error);
      double baseline = base->maxDeviceLoad(profile->popularity[layer]);
      LLVM_DEBUG(llvm::dbgs() << "layer " << layer << ": max device load "
                              << lina << " (static " << baseline << ")\n");
      if (report) {
        std::string text;
        llvm::raw_string_ostream os(text);
        os << "lina-build-placement: MoE layer " << layer << ": " << devs.size()
           << " replicas of " << experts << " experts, max device load "
           << llvm::format("%.4f", lina) << " (static "
           << llvm::format("%.4f", baseline) << ")"
           << (placement->usedStatic ? ", static placement" : "");
        gate.emitRemark() << os.str();
      }
    }
  }

  /// The routing profile, read by `initialize`; shared by the copies of
  /// this pass that run on other threads.
  std::shared_ptr<const ::lina::Profile> profile;
};
} // namespace
