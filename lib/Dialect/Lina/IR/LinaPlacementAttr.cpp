//===- LinaPlacementAttr.cpp - #lina.placement syntax and verifier --------===//
//
// Part of the Lina project.
//
// The verifier and the syntax of the shares of
// #lina.placement<num_devices = N, slots_per_device = C,
//                 offsets = [...], devices = [...], shares = [...]>.
// Shares are printed with the fewest digits that read back to the same
// double, so a table survives a round trip exactly.
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/IR/LinaDialect.h"
#include "lina/Support/CheckedMath.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/DenseSet.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace mlir;
using namespace mlir::lina;

/// Shortest decimal form of `x` that reads back exactly, always with a
/// '.' or an exponent so that it reads as a float.
static std::string formatShare(double x) {
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, x);
    if (std::strtod(buf, nullptr) == x)
      break;
  }
  std::string s = buf;
  if (s.find_first_of(".eEn") == std::string::npos)
    s += ".0";
  return s;
}

ParseResult PlacementAttr::parseShares(AsmParser &parser,
                                       DenseF64ArrayAttr &shares) {
  SmallVector<double> values;
  if (parser.parseCommaSeparatedList([&]() -> ParseResult {
        double v = 0;
        if (parser.parseFloat(v))
          return failure();
        values.push_back(v);
        return success();
      }))
    return failure();
  shares = DenseF64ArrayAttr::get(parser.getContext(), values);
  return success();
}

void PlacementAttr::printShares(AsmPrinter &printer, DenseF64ArrayAttr shares) {
  llvm::interleaveComma(
      shares.asArrayRef(), printer.getStream(),
      [&](double x) { printer.getStream() << formatShare(x); });
}

LogicalResult
PlacementAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                      int64_t numDevices, int64_t slotsPerDevice,
                      ArrayRef<int64_t> offsets, ArrayRef<int64_t> devices,
                      DenseF64ArrayAttr sharesAttr) {
  if (!sharesAttr)
    return emitError() << "placement shares are missing";
  ArrayRef<double> shares = sharesAttr.asArrayRef();
  using ::lina::Limits;
  // Sizes first: nothing below is allocated or indexed from an unchecked
  // value.
  if (numDevices < 1)
    return emitError() << "placement num_devices must be positive, got "
                       << numDevices;
  if (numDevices > Limits::kMaxRanks)
    return emitError() << "placement num_devices is " << numDevices
                       << "; the limit is " << Limits::kMaxRanks;
  if (slotsPerDevice < 1)
    return emitError() << "placement slots_per_device must be positive, got "
                       << slotsPerDevice;
  if (slotsPerDevice > Limits::kMaxExperts)
    return emitError() << "placement slots_per_device is " << slotsPerDevice
                       << "; the limit is " << Limits::kMaxExperts;
  if (offsets.size() < 2 || offsets.front() != 0)
    return emitError() << "placement offsets must start at 0 and have one "
                          "entry per expert plus one";
  if (static_cast<int64_t>(offsets.size()) - 1 > Limits::kMaxExperts)
    return emitError() << "placement has " << offsets.size() - 1
                       << " experts; the limit is " << Limits::kMaxExperts;
  if (devices.size() != shares.size() ||
      offsets.back() != static_cast<int64_t>(devices.size()))
    return emitError() << "placement devices (" << devices.size()
                       << ") and shares (" << shares.size()
                       << ") must both have offsets' last entry ("
                       << offsets.back() << ") elements";
  // Strictly increasing offsets from 0 to devices.size() keep every replica
  // index below in range.
  for (size_t e = 0; e + 1 < offsets.size(); ++e)
    if (offsets[e + 1] <= offsets[e])
      return emitError() << "placement expert " << e << " has no replica "
                         << "(offsets must increase strictly)";
  SmallVector<int64_t> used(numDevices, 0);
  for (size_t e = 0; e + 1 < offsets.size(); ++e) {
    llvm::SmallDenseSet<int64_t> seen;
    double sum = 0;
    for (int64_t i = offsets[e]; i < offsets[e + 1]; ++i) {
      if (devices[i] < 0 || devices[i] >= numDevices)
        return emitError() << "placement expert " << e
                           << " has a replica on device " << devices[i]
                           << ", outside [0, " << numDevices << ")";
      if (!seen.insert(devices[i]).second)
        return emitError() << "placement expert " << e
                           << " has two replicas on device " << devices[i];
      if (!(shares[i] > 0) || !std::isfinite(shares[i]))
        return emitError() << "placement expert " << e
                           << " has a replica with share "
                           << formatShare(shares[i])
                           << " (shares must be positive)";
      sum += shares[i];
      ++used[devices[i]];
    }
    if (std::fabs(sum - 1) > 1e-6)
      return emitError() << "placement expert " << e
                         << "'s replica shares sum to " << formatShare(sum)
                         << ", not 1";
  }
  for (int64_t d = 0; d < numDevices; ++d)
    if (used[d] > slotsPerDevice)
      return emitError() << "placement device " << d << " hosts " << used[d]
                         << " experts but has " << slotsPerDevice << " slots";
  return success();
}
