//===- PlanEmitter.cpp - Scheduled lina IR to an executable plan ----------===//
//
// Part of the Lina project.
//
// One walk over the function in program order. Every SSA value gets a plan
// buffer: function arguments become "input"/"param" buffers, op results new
// buffers, and tensor reshapes and contiguous slices views of their
// operand's storage (views always name their base, never another view).
// Concatenations whose pieces are op results and lie contiguously in the
// result are planned before the walk, so that the concatenated buffer is
// allocated first and the producers write views of it (destination
// passing); every other slice or concatenation becomes a box "copy" op.
// Dependencies are the data dependencies: the ops that wrote an overlapping
// part of the storage an op reads.
//
//===----------------------------------------------------------------------===//

#include "lina/Target/Plan/PlanEmitter.h"
#include "lina/Dialect/Lina/IR/LinaOps.h"
#include "lina/Support/CheckedMath.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Tools/mlir-translate/Translation.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"

#include <cmath>
#include <map>
#include <optional>
#include <set>

using namespace mlir;
using namespace mlir::lina;
namespace json = llvm::json;

namespace {
struct BufferInfo {
  std::string name;
  std::string dtype;
  SmallVector<int64_t> shape;
  std::string role = "temp";
  std::string init = "none";
  int base = -1;      ///< view base, or -1
  int64_t offset = 0; ///< element offset in the base
  /// Product of `shape`, checked against Limits::kMaxElements on creation.
  int64_t elements = 0;
  int64_t numElements() const { return elements; }
};

struct OpInfo {
  std::string kind;
  SmallVector<int> inputs, outputs, deps;
  json::Object attrs;
  std::string group;               ///< collectives only
  std::string priority = "normal"; ///< collectives only
  std::optional<std::pair<int64_t, int64_t>> partition, chunk;
  bool holdLow = false;
  std::string loc;
  /// Gates only: the #lina.placement table of --lina-build-placement.
  std::optional<json::Object> placement;
};

/// Element strides of a row-major shape, or nullopt if they overflow.
std::optional<SmallVector<int64_t>> stridesOf(ArrayRef<int64_t> shape) {
  SmallVector<int64_t> s(shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i) {
    std::optional<int64_t> stride = ::lina::checkedMul(s[i + 1], shape[i + 1]);
    if (!stride)
      return std::nullopt;
    s[i] = *stride;
  }
  return s;
}

/// `value` when it is finite; otherwise an error on `op`: JSON has no
/// infinities or NaNs, and the plan holds none.
FailureOr<double> finiteNumber(Operation *op, StringRef what, double value) {
  if (std::isfinite(value))
    return value;
  return op->emitError() << "lina-to-plan: " << what << " is " << value
                         << "; a plan holds finite numbers only";
}

/// True if the box `sizes` of `shape` is one contiguous run of elements: the
/// dims before the first non-unit dim are 1 and the dims after it are full.
bool isContiguous(ArrayRef<int64_t> shape, ArrayRef<int64_t> sizes) {
  size_t k = 0;
  while (k < sizes.size() && sizes[k] == 1)
    ++k;
  for (size_t i = k + 1; i < sizes.size(); ++i)
    if (sizes[i] != shape[i])
      return false;
  return true;
}

/// "file:line:col" of the first file location in `loc`, or "".
std::string locString(Location loc) {
  auto flc = loc->findInstanceOf<FileLineColLoc>();
  if (!flc)
    return "";
  return (llvm::sys::path::filename(flc.getFilename().getValue()) + ":" +
          Twine(flc.getLine()) + ":" + Twine(flc.getColumn()))
      .str();
}

/// True if `use` is a weight operand of a compute op.
bool isWeightUse(OpOperand &use) {
  Operation *user = use.getOwner();
  unsigned n = use.getOperandNumber();
  return llvm::TypeSwitch<Operation *, bool>(user)
      .Case<DenseOp, GateOp, DenseGradOp, GateGradOp>([&](auto op) {
        return n == op.getWeightMutable().getOperandNumber();
      })
      .Case<ExpertFfnOp, ExpertFfnGradOp>([&](auto op) {
        return n == op.getW1Mutable().getOperandNumber() ||
               n == op.getW2Mutable().getOperandNumber();
      })
      .Default([](Operation *) { return false; });
}

/// True if `value`, or a reshape or slice of it, is used as a weight.
bool isUsedAsWeight(Value value) {
  for (OpOperand &use : value.getUses()) {
    if (isWeightUse(use))
      return true;
    Operation *user = use.getOwner();
    if (isa<tensor::CollapseShapeOp, tensor::ExpandShapeOp,
            tensor::ExtractSliceOp>(user) &&
        isUsedAsWeight(user->getResult(0)))
      return true;
  }
  return false;
}

class Emitter {
public:
  Emitter(ModuleOp module, const PlanEmitterOptions &options)
      : module(module), options(options) {}

  LogicalResult run(llvm::raw_ostream &os);

private:
  FailureOr<func::FuncOp> selectFunction();
  LogicalResult emitArguments(func::FuncOp func);
  void computeGroups(GridOp grid);
  FailureOr<std::string> dtypeOf(Operation *op, Type type);
  FailureOr<int> newBuffer(Operation *where, Value value, StringRef role);
  FailureOr<int> viewOf(Operation *where, int source, int64_t offset,
                        Type type);
  LogicalResult checkLimits(Operation *where, RankedTensorType type);
  FailureOr<int> destinationFor(Operation *where, Value value);
  void planConcats(func::FuncOp func);
  LogicalResult emitOp(Operation *op);
  void addOp(Operation *op, StringRef kind, ArrayRef<Value> inputs,
             ArrayRef<int> outputs, json::Object attrs);
  int bufferOf(Value v) {
    auto it = values.find(v);
    assert(it != values.end() && "value used before its definition");
    return it->second;
  }
  void print(llvm::raw_ostream &os, func::FuncOp func, GridOp grid);

  ModuleOp module;
  PlanEmitterOptions options;
  std::vector<BufferInfo> buffers;
  std::vector<OpInfo> ops;
  llvm::DenseMap<Value, int> values;
  /// Op results that are built in place inside a concatenation's buffer:
  /// the concat result and the element offset of the piece.
  llvm::DenseMap<Value, std::pair<Value, int64_t>> pieceOf;
  /// Concatenations whose pieces are each one contiguous run of the result.
  llvm::DenseSet<Operation *> contiguousConcats;
  /// Ops so far that wrote each base buffer: (op id, buffer written).
  std::map<int, std::vector<std::pair<int, int>>> writers;
  /// Group name -> instances -> ranks in group-rank order.
  std::vector<std::pair<std::string, std::vector<std::vector<int64_t>>>> groups;
  /// Buffers the function returns, in order.
  SmallVector<int> outputIds;
  bool hasGrad = false;
};
} // namespace

FailureOr<std::string> Emitter::dtypeOf(Operation *op, Type type) {
  Type e = cast<ShapedType>(type).getElementType();
  if (e.isF32())
    return std::string("f32");
  if (e.isBF16())
    return std::string("bf16");
  if (e.isF16())
    return std::string("f16");
  if (e.isInteger(32))
    return std::string("i32");
  if (e.isInteger(64))
    return std::string("i64");
  op->emitError() << "lina-to-plan: unsupported element type " << e
                  << "; plan buffers are f32, bf16, f16, i32 or i64";
  return failure();
}

FailureOr<int> Emitter::newBuffer(Operation *where, Value value,
                                  StringRef role) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  if (!type || !type.hasStaticShape()) {
    where->emitError() << "lina-to-plan: unsupported type " << value.getType()
                       << "; plan buffers need a statically shaped tensor";
    return failure();
  }
  FailureOr<std::string> dtype = dtypeOf(where, type);
  if (failed(dtype) || failed(checkLimits(where, type)))
    return failure();
  BufferInfo b;
  b.dtype = *dtype;
  b.shape.assign(type.getShape().begin(), type.getShape().end());
  b.elements = type.getNumElements();
  b.role = role.str();
  b.name = "t" + std::to_string(buffers.size());
  buffers.push_back(std::move(b));
  return static_cast<int>(buffers.size() - 1);
}

FailureOr<int> Emitter::viewOf(Operation *where, int source, int64_t offset,
                               Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor || !tensor.hasStaticShape())
    return where->emitError()
           << "lina-to-plan: unsupported dynamic shape " << type
           << "; plan buffers need a statically shaped tensor";
  FailureOr<std::string> dtype = dtypeOf(where, tensor);
  if (failed(dtype) || failed(checkLimits(where, tensor)))
    return failure();
  const BufferInfo &src = buffers[source];
  BufferInfo b;
  b.dtype = *dtype;
  b.shape.assign(tensor.getShape().begin(), tensor.getShape().end());
  b.elements = tensor.getNumElements();
  // Views never chain: a view of a view is a view of its base.
  b.base = src.base >= 0 ? src.base : source;
  std::optional<int64_t> start =
      ::lina::checkedAdd(src.base >= 0 ? src.offset : 0, offset);
  const BufferInfo &base = buffers[b.base];
  if (!start || !::lina::rangeWithin(*start, b.elements, base.numElements()))
    return where->emitError()
           << "lina-to-plan: a view of " << b.elements << " elements at "
           << "offset " << offset << " does not fit in its source of "
           << src.numElements() << " elements";
  b.offset = *start;
  b.name = "t" + std::to_string(buffers.size());
  buffers.push_back(std::move(b));
  return static_cast<int>(buffers.size() - 1);
}

/// Checks a buffer's type against the documented limits (docs/LIMITS.md).
LogicalResult Emitter::checkLimits(Operation *where, RankedTensorType type) {
  if (std::optional<std::string> message = checkTensorLimits(type))
    return where->emitError() << "lina-to-plan: a buffer of type " << type
                              << " is too large: " << *message;
  return success();
}

/// The buffer an op result is written to: a fresh one, or a view of the
/// concatenation it is a piece of (allocating the concatenation first).
FailureOr<int> Emitter::destinationFor(Operation *where, Value value) {
  auto it = pieceOf.find(value);
  if (it == pieceOf.end())
    return newBuffer(where, value, "temp");
  auto [concat, offset] = it->second;
  int whole;
  if (auto found = values.find(concat); found != values.end()) {
    whole = found->second;
  } else {
    FailureOr<int> made = newBuffer(where, concat, "temp");
    if (failed(made))
      return failure();
    whole = *made;
    values[concat] = whole;
  }
  return viewOf(where, whole, offset, value.getType());
}

/// Finds the concatenations whose pieces can be produced in place: along the
/// outermost non-unit dimension (each piece is one contiguous run of the
/// result) and produced by an op the plan emits (a lina op or arith.addf).
void Emitter::planConcats(func::FuncOp func) {
  func.walk([&](tensor::ConcatOp concat) {
    auto type = cast<RankedTensorType>(concat.getType());
    if (!type.hasStaticShape())
      return;
    int64_t dim = concat.getDim();
    for (int64_t i = 0; i < dim; ++i)
      if (type.getDimSize(i) != 1)
        return;
    for (Value piece : concat.getInputs())
      if (!cast<RankedTensorType>(piece.getType()).hasStaticShape())
        return;
    // Shapes beyond the limits are reported when the buffer is made.
    if (checkTensorLimits(type))
      return;
    contiguousConcats.insert(concat);
    SmallVector<int64_t> strides = *stridesOf(type.getShape());
    int64_t offset = 0;
    for (Value piece : concat.getInputs()) {
      auto pieceType = cast<RankedTensorType>(piece.getType());
      Operation *def = piece.getDefiningOp();
      bool redirectable =
          def && def->getBlock() == concat->getBlock() &&
          (isa<LinaDialect>(def->getDialect()) || isa<arith::AddFOp>(def)) &&
          !isa<GridOp>(def) && !pieceOf.count(piece);
      if (redirectable)
        pieceOf[piece] = {concat.getResult(), offset};
      offset += pieceType.getDimSize(dim) * strides[dim];
    }
  });
}

void Emitter::addOp(Operation *op, StringRef kind, ArrayRef<Value> inputs,
                    ArrayRef<int> outputs, json::Object attrs) {
  int id = static_cast<int>(ops.size());
  OpInfo info;
  info.kind = kind.str();
  std::set<int> deps;
  for (Value v : inputs) {
    int b = bufferOf(v);
    info.inputs.push_back(b);
    const BufferInfo &in = buffers[b];
    int base = in.base >= 0 ? in.base : b;
    int64_t begin = in.base >= 0 ? in.offset : 0;
    int64_t end = begin + in.numElements();
    for (auto [writer, written] : writers[base]) {
      const BufferInfo &w = buffers[written];
      int64_t wBegin = w.base >= 0 ? w.offset : 0;
      int64_t wEnd = wBegin + w.numElements();
      if (wBegin < end && begin < wEnd)
        deps.insert(writer);
    }
  }
  info.deps.assign(deps.begin(), deps.end());
  for (int b : outputs) {
    info.outputs.push_back(b);
    writers[buffers[b].base >= 0 ? buffers[b].base : b].push_back({id, b});
  }
  info.attrs = std::move(attrs);
  info.loc = locString(op->getLoc());
  info.holdLow = op->hasAttr(LinaDialect::kHoldLowAttrName);

  auto collective = [&](GroupAttr group, std::optional<Priority> priority) {
    info.group = group.getName().getValue().str();
    info.priority =
        stringifyPriority(priority.value_or(Priority::normal)).str();
  };
  if (auto a2a = dyn_cast<AllToAllOp>(op))
    collective(a2a.getGroup(), a2a.getPriority());
  else if (auto ar = dyn_cast<AllReduceOp>(op))
    collective(ar.getGroup(), ar.getPriority());
  if (auto p = op->getAttrOfType<PartitionAttr>("partition"))
    info.partition = {p.getIndex(), p.getCount()};
  if (auto c = op->getAttrOfType<ChunkAttr>("chunk"))
    info.chunk = {c.getIndex(), c.getCount()};
  if (auto p = op->getAttrOfType<PlacementAttr>(
          LinaDialect::kPlacementAttrName)) {
    // The attribute verifier requires positive finite shares.
    json::Array shares;
    for (double x : p.getShares().asArrayRef())
      shares.push_back(x);
    info.placement = json::Object{
        {"num_devices", p.getNumDevices()},
        {"slots_per_device", p.getSlotsPerDevice()},
        {"offsets", json::Array(p.getOffsets())},
        {"devices", json::Array(p.getDevices())},
        {"shares", std::move(shares)}};
  }
  ops.push_back(std::move(info));
}

LogicalResult Emitter::emitOp(Operation *op) {
  auto results = [&]() -> FailureOr<SmallVector<int>> {
    SmallVector<int> ids;
    for (Value r : op->getResults()) {
      FailureOr<int> b = destinationFor(op, r);
      if (failed(b))
        return failure();
      values[r] = *b;
      ids.push_back(*b);
    }
    return ids;
  };
  auto simple = [&](StringRef kind, json::Object attrs) -> LogicalResult {
    FailureOr<SmallVector<int>> outs = results();
    if (failed(outs))
      return failure();
    addOp(op, kind, llvm::to_vector(op->getOperands()), *outs,
          std::move(attrs));
    return success();
  };
  auto grad = [&](StringRef kind, json::Object attrs) {
    hasGrad = true;
    return simple(kind, std::move(attrs));
  };
  auto act = [](Activation a) {
    return json::Object{{"activation", stringifyActivation(a).str()}};
  };

  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](DenseOp o) { return simple("dense", act(o.getActivation())); })
      .Case([&](DenseGradOp o) {
        return grad("dense_grad", act(o.getActivation()));
      })
      .Case([&](GateOp o) -> LogicalResult {
        FailureOr<double> factor =
            finiteNumber(o, "the gate's capacity_factor",
                         o.getCapacityFactor().convertToDouble());
        if (failed(factor))
          return failure();
        if (auto p = o->getAttrOfType<PlacementAttr>(
                LinaDialect::kPlacementAttrName))
          for (double x : p.getShares().asArrayRef())
            if (failed(finiteNumber(o, "a placement share", x)))
              return failure();
        return simple(
            "gate",
            json::Object{
                {"num_experts", static_cast<int64_t>(o.getNumExperts())},
                {"top_k", static_cast<int64_t>(o.getTopK())},
                {"capacity_factor", *factor}});
      })
      .Case([&](GateGradOp) { return grad("gate_grad", json::Object()); })
      .Case([&](DispatchOp o) {
        return simple("dispatch",
                      json::Object{{"num_experts", o.getType().getDimSize(0)},
                                   {"capacity", o.getType().getDimSize(1)}});
      })
      .Case(
          [&](DispatchGradOp) { return grad("dispatch_grad", json::Object()); })
      .Case([&](CombineOp) { return simple("combine", json::Object()); })
      .Case([&](CombineGradOp) { return grad("combine_grad", json::Object()); })
      .Case([&](ExpertFfnOp o) {
        return simple("expert_ffn", act(o.getActivation()));
      })
      .Case([&](ExpertFfnGradOp o) {
        return grad("expert_ffn_grad", act(o.getActivation()));
      })
      .Case([&](arith::AddFOp) { return simple("add", json::Object()); })
      .Case([&](arith::ConstantOp c) -> LogicalResult {
        // A zero-filled tensor (e.g. the gradient of an unused slice) is a
        // buffer initialised to zero; other constants have no plan form.
        auto dense = dyn_cast<DenseElementsAttr>(c.getValue());
        bool zero = dense && dense.isSplat() &&
                    ((isa<FloatType>(dense.getElementType()) &&
                      dense.getSplatValue<APFloat>().isZero()) ||
                     (isa<IntegerType>(dense.getElementType()) &&
                      dense.getSplatValue<APInt>().isZero()));
        if (!zero)
          return c.emitError() << "lina-to-plan: only zero-filled tensor "
                                  "constants are supported";
        FailureOr<int> b = newBuffer(op, c.getResult(), "input");
        if (failed(b))
          return failure();
        buffers[*b].init = "zero";
        buffers[*b].name = "zeros" + std::to_string(*b);
        values[c.getResult()] = *b;
        return success();
      })
      .Case([&](AllReduceOp o) {
        return simple(
            "all_reduce",
            json::Object{
                {"reduction", stringifyReduction(o.getReduction()).str()}});
      })
      .Case([&](AllToAllOp o) {
        json::Object attrs{
            {"split_axis", static_cast<int64_t>(o.getSplitAxis())},
            {"concat_axis", static_cast<int64_t>(o.getConcatAxis())}};
        if (!o.isVariable())
          return simple("all_to_all", std::move(attrs));
        attrs["max_rows"] = o.getType().getDimSize(0);
        return simple("all_to_all_v", std::move(attrs));
      })
      .Case<tensor::CollapseShapeOp, tensor::ExpandShapeOp>(
          [&](auto o) -> LogicalResult {
            // Same storage, new shape.
            FailureOr<int> view =
                viewOf(op, bufferOf(o.getSrc()), 0, o.getType());
            if (failed(view))
              return failure();
            values[o.getResult()] = *view;
            return success();
          })
      .Case([&](tensor::ExtractSliceOp o) -> LogicalResult {
        if (!o.getOffsets().empty() || !o.getSizes().empty() ||
            !o.getStrides().empty() || !o.hasUnitStride())
          return o.emitError() << "lina-to-plan: unsupported slice with "
                                  "dynamic or non-unit offsets, sizes or "
                                  "strides; the plan needs static unit-stride "
                                  "slices";
        RankedTensorType srcType = o.getSourceType();
        if (o.getType().getRank() != srcType.getRank())
          return o.emitError() << "lina-to-plan: unsupported rank-reducing "
                                  "slice; slice with the source's rank and "
                                  "reshape with tensor.collapse_shape";
        ArrayRef<int64_t> offs = o.getStaticOffsets();
        ArrayRef<int64_t> sizes = o.getStaticSizes();
        int src = bufferOf(o.getSource());
        // The source is a plan buffer, so its strides and offsets inside
        // it stay below Limits::kMaxElements once the box is in bounds.
        for (size_t i = 0; i < offs.size(); ++i)
          if (!::lina::rangeWithin(offs[i], sizes[i], srcType.getDimSize(i)))
            return o.emitError()
                   << "lina-to-plan: slice [" << offs[i] << ", " << offs[i]
                   << " + " << sizes[i] << ") of dimension " << i
                   << " is outside the source's size "
                   << srcType.getDimSize(i);
        if (isContiguous(srcType.getShape(), sizes)) {
          SmallVector<int64_t> strides = *stridesOf(srcType.getShape());
          int64_t offset = 0;
          for (size_t i = 0; i < offs.size(); ++i)
            offset += offs[i] * strides[i];
          FailureOr<int> view = viewOf(op, src, offset, o.getType());
          if (failed(view))
            return failure();
          values[o.getResult()] = *view;
          return success();
        }
        FailureOr<SmallVector<int>> outs = results();
        if (failed(outs))
          return failure();
        json::Array srcOffsets, dstOffsets, boxSizes;
        for (size_t i = 0; i < offs.size(); ++i) {
          srcOffsets.push_back(offs[i]);
          dstOffsets.push_back(0);
          boxSizes.push_back(sizes[i]);
        }
        addOp(op, "copy", {o.getSource()}, *outs,
              json::Object{{"src_offsets", std::move(srcOffsets)},
                           {"dst_offsets", std::move(dstOffsets)},
                           {"sizes", std::move(boxSizes)}});
        // A chunk's slice belongs to the chunk its users process.
        std::optional<ChunkAttr> chunk;
        for (Operation *user : o->getUsers()) {
          auto c = user->getAttrOfType<ChunkAttr>("chunk");
          if (!c || (chunk && *chunk != c)) {
            chunk.reset();
            break;
          }
          chunk = c;
        }
        if (chunk)
          ops.back().chunk = {chunk->getIndex(), chunk->getCount()};
        return success();
      })
      .Case([&](tensor::ConcatOp o) -> LogicalResult {
        int whole;
        if (auto found = values.find(o.getResult()); found != values.end()) {
          whole = found->second;
        } else {
          FailureOr<int> made = destinationFor(op, o.getResult());
          if (failed(made))
            return failure();
          whole = *made;
          values[o.getResult()] = whole;
        }
        int64_t dim = o.getDim(), at = 0;
        RankedTensorType type = o.getResultType();
        // The result is a plan buffer, checked against the element limit.
        SmallVector<int64_t> strides = *stridesOf(type.getShape());
        bool contiguous = contiguousConcats.contains(op);
        for (Value piece : o.getInputs()) {
          auto pieceType = cast<RankedTensorType>(piece.getType());
          auto it = pieceOf.find(piece);
          bool inPlace =
              it != pieceOf.end() && it->second.first == o.getResult();
          if (!inPlace) {
            // A piece of a contiguous concatenation is copied into a view of
            // its own run, so that it never overlaps the pieces other ops
            // write in place; otherwise it is a box of the whole result.
            int dst = whole;
            if (contiguous) {
              FailureOr<int> view =
                  viewOf(op, whole, at * strides[dim], pieceType);
              if (failed(view))
                return failure();
              dst = *view;
            }
            json::Array srcOffsets, dstOffsets, boxSizes;
            for (int64_t i = 0; i < type.getRank(); ++i) {
              srcOffsets.push_back(0);
              dstOffsets.push_back(i == dim && !contiguous ? at : 0);
              boxSizes.push_back(pieceType.getDimSize(i));
            }
            json::Object attrs{{"src_offsets", std::move(srcOffsets)},
                               {"dst_offsets", std::move(dstOffsets)},
                               {"sizes", std::move(boxSizes)}};
            if (!contiguous)
              attrs["accumulate_into"] = true;
            addOp(op, "copy", {piece}, {dst}, std::move(attrs));
            // A chunk's piece belongs to the chunk that produced it.
            if (Operation *def = piece.getDefiningOp())
              if (auto c = def->getAttrOfType<ChunkAttr>("chunk"))
                ops.back().chunk = {c.getIndex(), c.getCount()};
          }
          at += pieceType.getDimSize(dim);
        }
        return success();
      })
      .Default([&](Operation *other) {
        return other->emitError()
               << "lina-to-plan: unsupported operation '" << other->getName()
               << "'; a plan holds lina ops, arith.addf, "
                  "tensor.collapse_shape/expand_shape/extract_slice/concat "
                  "and func.return";
      });
}

FailureOr<func::FuncOp> Emitter::selectFunction() {
  func::FuncOp chosen;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (!options.function.empty()) {
      if (func.getName() != options.function)
        continue;
      if (func.isExternal()) {
        func.emitError() << "lina-to-plan: function @" << func.getName()
                         << " has no body";
        return failure();
      }
      return func;
    }
    if (func.isExternal() || !func.isPublic())
      continue;
    if (chosen) {
      func.emitError() << "lina-to-plan: several public functions (@"
                       << chosen.getName() << ", @" << func.getName()
                       << "); choose one with --lina-plan-function=NAME";
      return failure();
    }
    chosen = func;
  }
  if (!chosen) {
    if (!options.function.empty())
      module.emitError() << "lina-to-plan: no function named @"
                         << options.function;
    else
      module.emitError() << "lina-to-plan: no public function with a body "
                            "to emit";
    return failure();
  }
  return chosen;
}

void Emitter::computeGroups(GridOp grid) {
  ArrayRef<int64_t> shape = grid.getShape();
  int64_t world = grid.getNumRanks();
  for (NamedAttribute g : grid.getGroups()) {
    // The verifier guarantees an array of distinct, in-range axes.
    ArrayRef<int64_t> axes = cast<DenseI64ArrayAttr>(g.getValue()).asArrayRef();
    // Instance key (coordinates on the other axes) -> (group rank, rank).
    std::map<std::vector<int64_t>, std::vector<std::pair<int64_t, int64_t>>>
        instances;
    for (int64_t r = 0; r < world; ++r) {
      SmallVector<int64_t> coords(shape.size());
      int64_t rem = r;
      for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0; --i) {
        coords[i] = rem % shape[i];
        rem /= shape[i];
      }
      std::vector<int64_t> key;
      for (size_t i = 0; i < shape.size(); ++i)
        if (!llvm::is_contained(axes, static_cast<int64_t>(i)))
          key.push_back(coords[i]);
      // Row-major over the spanned axes, in the order the group lists them.
      int64_t groupRank = 0;
      for (int64_t axis : axes)
        groupRank = groupRank * shape[axis] + coords[axis];
      instances[key].push_back({groupRank, r});
    }
    std::vector<std::vector<int64_t>> members;
    for (auto &[key, ranks] : instances) {
      llvm::sort(ranks);
      std::vector<int64_t> list;
      for (auto [groupRank, rank] : ranks)
        list.push_back(rank);
      members.push_back(std::move(list));
    }
    groups.push_back({g.getName().getValue().str(), std::move(members)});
  }
}

LogicalResult Emitter::emitArguments(func::FuncOp func) {
  llvm::StringMap<unsigned> names;
  for (BlockArgument arg : func.getArguments()) {
    unsigned n = arg.getArgNumber();
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    if (!type || !type.hasStaticShape())
      return func.emitError()
             << "lina-to-plan: argument " << n << " has unsupported type "
             << arg.getType()
             << "; plan buffers need a statically shaped tensor";
    FailureOr<int> b =
        newBuffer(func, arg, isUsedAsWeight(arg) ? "param" : "input");
    if (failed(b))
      return failure();
    BufferInfo &buffer = buffers[*b];
    buffer.init = "random";
    if (Attribute attr = func.getArgAttr(n, "lina.init")) {
      auto init = dyn_cast<StringAttr>(attr);
      if (!init || (init.getValue() != "random" && init.getValue() != "zero"))
        return func.emitError()
               << "lina-to-plan: argument " << n << " has lina.init = " << attr
               << "; expected \"random\" or \"zero\"";
      buffer.init = init.getValue().str();
    }
    if (Attribute attr = func.getArgAttr(n, "lina.name")) {
      auto name = dyn_cast<StringAttr>(attr);
      if (!name || name.getValue().empty())
        return func.emitError()
               << "lina-to-plan: argument " << n << " has lina.name = " << attr
               << "; expected a non-empty string";
      buffer.name = name.getValue().str();
    } else {
      buffer.name = "arg" + std::to_string(n);
    }
    // Inputs are seeded by name: two arguments must not share one.
    auto [it, inserted] = names.insert({buffer.name, n});
    if (!inserted)
      return func.emitError()
             << "lina-to-plan: arguments " << it->second << " and " << n
             << " are both named '" << buffer.name
             << "'; give them distinct lina.name attributes";
    values[arg] = *b;
  }
  return success();
}

LogicalResult Emitter::run(llvm::raw_ostream &os) {
  SmallVector<GridOp> grids(module.getOps<GridOp>());
  if (grids.size() != 1) {
    InFlightDiagnostic diag =
        (grids.size() > 1 ? grids[1].emitError() : module.emitError())
        << "lina-to-plan: expected exactly one lina.grid, found "
        << grids.size();
    if (grids.size() > 1)
      diag.attachNote(grids[0].getLoc()) << "first grid here";
    return diag;
  }
  FailureOr<func::FuncOp> func = selectFunction();
  if (failed(func))
    return failure();
  if (!func->getBody().hasOneBlock())
    return func->emitError() << "lina-to-plan: unsupported control flow; the "
                                "function must be one block of straight-line "
                                "code";

  // The grid verifier bounds the ranks; check again before a loop over them.
  int64_t world = grids.front().getNumRanks();
  if (world < 1 || world > ::lina::Limits::kMaxRanks)
    return grids.front().emitError()
           << "lina-to-plan: the grid has " << world
           << " ranks; the limit is " << ::lina::Limits::kMaxRanks;
  computeGroups(grids.front());
  if (failed(emitArguments(*func)))
    return failure();
  planConcats(*func);

  Block &body = func->getBody().front();
  for (Operation &op : body) {
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      for (Value v : ret.getOperands()) {
        int b = bufferOf(v);
        if (buffers[b].role == "temp")
          buffers[b].role = "output";
        outputIds.push_back(b);
      }
      continue;
    }
    if (op.getNumRegions() != 0)
      return op.emitError()
             << "lina-to-plan: unsupported operation '" << op.getName()
             << "' with regions; the plan is straight-line code";
    if (failed(emitOp(&op)))
      return failure();
  }
  print(os, *func, grids.front());
  return success();
}

namespace {
/// Writes `v` as compact JSON.
void writeJson(llvm::raw_ostream &os, const json::Value &v) {
  json::OStream(os).value(v);
}

void writeInts(json::OStream &j, ArrayRef<int> values) {
  j.array([&] {
    for (int v : values)
      j.value(v);
  });
}
void writeInts(json::OStream &j, ArrayRef<int64_t> values) {
  j.array([&] {
    for (int64_t v : values)
      j.value(v);
  });
}
} // namespace

/// Prints the plan with one buffer or op per line, fields in schema order.
void Emitter::print(llvm::raw_ostream &os, func::FuncOp func, GridOp grid) {
  std::string mode;
  switch (options.mode) {
  case PlanMode::Auto:
    mode = hasGrad ? "train" : "infer";
    break;
  case PlanMode::Train:
    mode = "train";
    break;
  case PlanMode::Infer:
    mode = "infer";
    break;
  }
  std::string source = locString(func.getLoc());
  if (auto colon = source.find(':'); colon != std::string::npos)
    source.resize(colon);

  auto field = [&](StringRef key, const json::Value &value) {
    os << "  ";
    writeJson(os, key);
    os << ": ";
    writeJson(os, value);
    os << ",\n";
  };
  os << "{\n";
  field("format", "lina-plan");
  field("version", 1);
  field("source", source);
  field("function", func.getName());
  field("mode", mode);
  field("world_size", grid.getNumRanks());
  {
    os << "  \"grid\": ";
    json::OStream j(os);
    j.object([&] {
      j.attributeBegin("shape");
      writeInts(j, grid.getShape());
      j.attributeEnd();
    });
    os << ",\n";
  }
  os << "  \"groups\": {\n";
  for (auto [i, group] : llvm::enumerate(groups)) {
    os << "    ";
    writeJson(os, group.first);
    os << ": ";
    json::OStream j(os);
    j.object([&] {
      j.attributeArray("members", [&] {
        for (const auto &list : group.second)
          writeInts(j, list);
      });
    });
    os << (i + 1 < groups.size() ? ",\n" : "\n");
  }
  os << "  },\n";

  os << "  \"buffers\": [\n";
  for (auto [i, b] : llvm::enumerate(buffers)) {
    os << "    ";
    json::OStream j(os);
    j.object([&] {
      j.attribute("id", static_cast<int64_t>(i));
      j.attribute("name", b.name);
      j.attribute("dtype", b.dtype);
      j.attributeBegin("shape");
      writeInts(j, b.shape);
      j.attributeEnd();
      j.attribute("role", b.role);
      j.attribute("init", b.init);
      if (b.base >= 0)
        j.attributeObject("view", [&] {
          j.attribute("base", b.base);
          j.attribute("offset", b.offset);
        });
    });
    os << (i + 1 < buffers.size() ? ",\n" : "\n");
  }
  os << "  ],\n";

  os << "  \"ops\": [\n";
  for (auto [i, op] : llvm::enumerate(ops)) {
    os << "    ";
    json::OStream j(os);
    j.object([&] {
      j.attribute("id", static_cast<int64_t>(i));
      j.attribute("kind", op.kind);
      j.attributeBegin("inputs");
      writeInts(j, op.inputs);
      j.attributeEnd();
      j.attributeBegin("outputs");
      writeInts(j, op.outputs);
      j.attributeEnd();
      j.attributeBegin("deps");
      writeInts(j, op.deps);
      j.attributeEnd();
      if (!op.attrs.empty())
        j.attribute("attrs", json::Object(op.attrs));
      if (!op.group.empty()) {
        j.attribute("group", op.group);
        j.attribute("priority", op.priority);
      }
      auto pair = [&](StringRef key, std::pair<int64_t, int64_t> p) {
        j.attributeObject(key, [&] {
          j.attribute("index", p.first);
          j.attribute("count", p.second);
        });
      };
      if (op.partition)
        pair("partition", *op.partition);
      if (op.chunk)
        pair("chunk", *op.chunk);
      if (op.holdLow)
        j.attribute("hold_low", true);
      if (!op.loc.empty())
        j.attribute("loc", op.loc);
      if (op.placement)
        j.attribute("placement", json::Object(*op.placement));
    });
    os << (i + 1 < ops.size() ? ",\n" : "\n");
  }
  os << "  ],\n";
  os << "  \"outputs\": ";
  {
    json::OStream j(os);
    writeInts(j, outputIds);
  }
  os << "\n}\n";
}

LogicalResult mlir::lina::emitPlan(ModuleOp module, llvm::raw_ostream &os,
                                   const PlanEmitterOptions &options) {
  return Emitter(module, options).run(os);
}

void mlir::lina::registerToPlanTranslation() {
  static llvm::cl::OptionCategory category("lina-to-plan options");
  static llvm::cl::opt<std::string> function(
      "lina-plan-function",
      llvm::cl::desc("Function to emit with --lina-to-plan (default: the only "
                     "public function with a body)"),
      llvm::cl::value_desc("name"), llvm::cl::init(""),
      llvm::cl::cat(category));
  static llvm::cl::opt<PlanMode> mode(
      "lina-plan-mode",
      llvm::cl::desc("The plan's mode (default: train if the function has a "
                     "*_grad op, else infer)"),
      llvm::cl::values(
          clEnumValN(PlanMode::Train, "train", "a training step"),
          clEnumValN(PlanMode::Infer, "infer", "an inference step")),
      llvm::cl::init(PlanMode::Auto), llvm::cl::cat(category));
  TranslateFromMLIRRegistration registration(
      "lina-to-plan",
      "Emit the executable Lina plan (JSON, docs/PLAN.md) of scheduled lina IR",
      [](Operation *op, llvm::raw_ostream &os) -> LogicalResult {
        auto module = dyn_cast<ModuleOp>(op);
        if (!module)
          return op->emitError("lina-to-plan: expected a builtin.module");
        PlanEmitterOptions options;
        options.function = function;
        options.mode = mode;
        return emitPlan(module, os, options);
      },
      [](DialectRegistry &registry) {
        registry.insert<LinaDialect, func::FuncDialect, arith::ArithDialect,
                        tensor::TensorDialect>();
      });
}
