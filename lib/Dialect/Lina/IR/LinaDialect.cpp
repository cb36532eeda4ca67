//===- LinaDialect.cpp - Lina dialect and attributes ----------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/IR/LinaDialect.h"
#include "lina/Dialect/Lina/IR/LinaOps.h"

#include "lina/Support/CheckedMath.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::lina;

#include "lina/Dialect/Lina/IR/LinaOpsDialect.cpp.inc"

#include "lina/Dialect/Lina/IR/LinaEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "lina/Dialect/Lina/IR/LinaAttrs.cpp.inc"

void LinaDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "lina/Dialect/Lina/IR/LinaOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "lina/Dialect/Lina/IR/LinaAttrs.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// Discardable attributes
//===----------------------------------------------------------------------===//

/// The names of every discardable lina attribute, for the error message of
/// an unknown one.
static constexpr StringLiteral kKnownOpAttrs =
    "lina.placement (on lina.gate), lina.bucket (on lina.all_reduce), "
    "lina.hold_low and lina.suggested_experts_per_device";

LogicalResult LinaDialect::verifyOperationAttribute(Operation *op,
                                                    NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  Attribute value = attr.getValue();
  if (name == kPlacementAttrName) {
    auto table = dyn_cast<PlacementAttr>(value);
    if (!table)
      return op->emitError()
             << "'" << name << "' must be a #lina.placement<...> table, got "
             << value;
    auto gate = dyn_cast<GateOp>(op);
    if (!gate)
      return op->emitError()
             << "'" << name << "' is only valid on lina.gate, not on '"
             << op->getName() << "'";
    if (table.getNumExperts() != static_cast<int64_t>(gate.getNumExperts()))
      return op->emitError()
             << "'" << name << "' places " << table.getNumExperts()
             << " experts, but the gate has " << gate.getNumExperts();
    return success();
  }
  if (name == kHoldLowAttrName) {
    if (!isa<UnitAttr>(value))
      return op->emitError()
             << "'" << name << "' must be a unit attribute (no value), got "
             << value;
    return success();
  }
  if (name == kSuggestedExpertsPerDeviceAttrName) {
    auto count = dyn_cast<IntegerAttr>(value);
    if (!count || !count.getType().isSignlessInteger(64) ||
        count.getInt() < 1 || count.getInt() > ::lina::Limits::kMaxExperts)
      return op->emitError()
             << "'" << name << "' must be an i64 in [1, "
             << ::lina::Limits::kMaxExperts << "], got " << value;
    return success();
  }
  if (name == kBucketAttrName) {
    auto count = dyn_cast<IntegerAttr>(value);
    if (!isa<AllReduceOp>(op))
      return op->emitError()
             << "'" << name << "' is only valid on lina.all_reduce, not on '"
             << op->getName() << "'";
    if (!count || !count.getType().isSignlessInteger(64) || count.getInt() < 1)
      return op->emitError() << "'" << name
                             << "' must be a positive i64 (the number of "
                                "gradients merged), got "
                             << value;
    return success();
  }
  if (name == kInitAttrName || name == kNameAttrName)
    return op->emitError() << "'" << name
                           << "' is a function argument attribute, not an "
                              "operation attribute";
  return op->emitError() << "unknown attribute '" << name
                         << "'; the lina dialect defines " << kKnownOpAttrs
                         << " on operations";
}

LogicalResult LinaDialect::verifyRegionArgAttribute(Operation *op,
                                                    unsigned regionIndex,
                                                    unsigned argIndex,
                                                    NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  Attribute value = attr.getValue();
  if (name == kInitAttrName) {
    auto init = dyn_cast<StringAttr>(value);
    if (!init || (init.getValue() != "random" && init.getValue() != "zero"))
      return op->emitError()
             << "argument " << argIndex << " has '" << name << " = " << value
             << "'; expected \"random\" or \"zero\"";
    return success();
  }
  if (name == kNameAttrName) {
    auto str = dyn_cast<StringAttr>(value);
    if (!str || str.getValue().empty())
      return op->emitError()
             << "argument " << argIndex << " has '" << name << " = " << value
             << "'; expected a non-empty string";
    return success();
  }
  return op->emitError() << "argument " << argIndex
                         << " has unknown attribute '" << name
                         << "'; the lina dialect defines lina.init and "
                            "lina.name on function arguments";
}

//===----------------------------------------------------------------------===//
// Attribute verifiers
//===----------------------------------------------------------------------===//

LogicalResult
PartitionAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                      int64_t index, int64_t count, int64_t offset,
                      int64_t original) {
  if (count < 1)
    return emitError() << "partition count must be positive, got " << count;
  if (index < 0 || index >= count)
    return emitError() << "partition index " << index << " is out of range [0, "
                       << count << ")";
  if (original < 1)
    return emitError() << "partition original size must be positive, got "
                       << original;
  if (offset < 0 || offset >= original)
    return emitError() << "partition offset " << offset
                       << " is out of range [0, " << original << ")";
  return success();
}

LogicalResult ChunkAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                int64_t index, int64_t count) {
  if (count < 1)
    return emitError() << "chunk count must be positive, got " << count;
  if (index < 0 || index >= count)
    return emitError() << "chunk index " << index << " is out of range [0, "
                       << count << ")";
  return success();
}
