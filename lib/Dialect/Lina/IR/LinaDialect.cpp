//===- LinaDialect.cpp - Lina dialect and attributes ----------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/IR/LinaDialect.h"
#include "lina/Dialect/Lina/IR/LinaOps.h"

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
// Attribute verifiers
//===----------------------------------------------------------------------===//

LogicalResult
PartitionAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                      int64_t index, int64_t count, int64_t offset,
                      int64_t original) {
  if (count < 1)
    return emitError() << "partition count must be positive, got " << count;
  if (index < 0 || index >= count)
    return emitError() << "partition index " << index
                       << " is out of range [0, " << count << ")";
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
