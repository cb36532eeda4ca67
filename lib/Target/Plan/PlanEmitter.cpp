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
// The plan is built as a lina::rt::Plan, the runtime's definition of the
// format, and written with lina::rt::writePlan, so that the emitter and the
// loader share one model of it.
//
//===----------------------------------------------------------------------===//

#include "lina/Target/Plan/PlanEmitter.h"
#include "lina/Dialect/Lina/IR/LinaOps.h"
#include "lina/Support/CheckedMath.h"
#include "lina/rt/Plan.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Tools/mlir-translate/Translation.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Path.h"

#include <climits>
#include <cmath>
#include <map>
#include <optional>
#include <set>

using namespace mlir;
using namespace mlir::lina;
namespace rt = ::lina::rt;

namespace {
/// An op of `kind` with no attributes yet.
rt::Op planOp(rt::OpKind kind) {
  rt::Op op;
  op.kind = kind;
  return op;
}

rt::Activation toPlan(Activation a) {
  switch (a) {
  case Activation::none:
    return rt::Activation::None;
  case Activation::relu:
    return rt::Activation::Relu;
  case Activation::gelu:
    return rt::Activation::Gelu;
  case Activation::silu:
    return rt::Activation::Silu;
  }
  llvm_unreachable("unknown activation");
}

rt::Reduction toPlan(Reduction r) {
  switch (r) {
  case Reduction::sum:
    return rt::Reduction::Sum;
  case Reduction::max:
    return rt::Reduction::Max;
  case Reduction::min:
    return rt::Reduction::Min;
  case Reduction::prod:
    return rt::Reduction::Prod;
  }
  llvm_unreachable("unknown reduction");
}

rt::Priority toPlan(Priority p) {
  switch (p) {
  case Priority::normal:
    return rt::Priority::Normal;
  case Priority::high:
    return rt::Priority::High;
  case Priority::low:
    return rt::Priority::Low;
  }
  llvm_unreachable("unknown priority");
}

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
      .Case<ExpertFfnOp, ExpertFfnGradOp, ExpertFfnGradInputOp>([&](auto op) {
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
  FailureOr<rt::DType> dtypeOf(Operation *op, Type type);
  FailureOr<int> newBuffer(Operation *where, Value value, rt::Role role);
  FailureOr<int> viewOf(Operation *where, int source, int64_t offset,
                        Type type);
  LogicalResult checkLimits(Operation *where, RankedTensorType type);
  FailureOr<int> destinationFor(Operation *where, Value value);
  void planConcats(func::FuncOp func);
  LogicalResult emitOp(Operation *op);
  LogicalResult addOp(Operation *op, rt::Op info, ArrayRef<Value> inputs,
                      ArrayRef<int> outputs);
  FailureOr<int> planInt(Operation *op, StringRef what, int64_t value,
                         int64_t limit);
  LogicalResult setChunk(Operation *op, rt::Op &info, ChunkAttr c);
  int bufferOf(Value v) {
    auto it = values.find(v);
    assert(it != values.end() && "value used before its definition");
    return it->second;
  }
  /// Element range [begin, end) of buffer `b` in its base's storage.
  std::pair<int64_t, int64_t> rangeOf(int b) const {
    const rt::Buffer &buffer = plan.buffers[b];
    int64_t begin = buffer.isView() ? buffer.viewOffset : 0;
    return {begin, begin + elements[b]};
  }
  int baseOf(int b) const {
    return plan.buffers[b].isView() ? plan.buffers[b].viewBase : b;
  }
  void finish(func::FuncOp func, GridOp grid);

  ModuleOp module;
  PlanEmitterOptions options;
  /// The plan being built; ops and buffers are appended in program order.
  rt::Plan plan;
  /// Element count of each buffer: the product of its shape, checked
  /// against Limits::kMaxElements when the buffer is made.
  std::vector<int64_t> elements;
  llvm::DenseMap<Value, int> values;
  /// Op results that are built in place inside a concatenation's buffer:
  /// the concat result and the element offset of the piece.
  llvm::DenseMap<Value, std::pair<Value, int64_t>> pieceOf;
  /// Concatenations whose pieces are each one contiguous run of the result.
  llvm::DenseSet<Operation *> contiguousConcats;
  /// Ops so far that wrote each base buffer: (op id, buffer written).
  std::map<int, std::vector<std::pair<int, int>>> writers;
  bool hasGrad = false;
};
} // namespace

FailureOr<rt::DType> Emitter::dtypeOf(Operation *op, Type type) {
  Type e = cast<ShapedType>(type).getElementType();
  if (e.isF32())
    return rt::DType::F32;
  if (e.isBF16())
    return rt::DType::BF16;
  if (e.isF16())
    return rt::DType::F16;
  if (e.isInteger(32))
    return rt::DType::I32;
  if (e.isInteger(64))
    return rt::DType::I64;
  op->emitError() << "lina-to-plan: unsupported element type " << e
                  << "; plan buffers are f32, bf16, f16, i32 or i64";
  return failure();
}

FailureOr<int> Emitter::newBuffer(Operation *where, Value value,
                                  rt::Role role) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  if (!type || !type.hasStaticShape()) {
    where->emitError() << "lina-to-plan: unsupported type " << value.getType()
                       << "; plan buffers need a statically shaped tensor";
    return failure();
  }
  FailureOr<rt::DType> dtype = dtypeOf(where, type);
  if (failed(dtype) || failed(checkLimits(where, type)))
    return failure();
  int id = static_cast<int>(plan.buffers.size());
  rt::Buffer b;
  b.id = id;
  b.dtype = *dtype;
  b.shape.assign(type.getShape().begin(), type.getShape().end());
  b.role = role;
  b.name = "t" + std::to_string(id);
  plan.buffers.push_back(std::move(b));
  elements.push_back(type.getNumElements());
  return id;
}

FailureOr<int> Emitter::viewOf(Operation *where, int source, int64_t offset,
                               Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor || !tensor.hasStaticShape())
    return where->emitError()
           << "lina-to-plan: unsupported dynamic shape " << type
           << "; plan buffers need a statically shaped tensor";
  FailureOr<rt::DType> dtype = dtypeOf(where, tensor);
  if (failed(dtype) || failed(checkLimits(where, tensor)))
    return failure();
  int id = static_cast<int>(plan.buffers.size());
  int64_t count = tensor.getNumElements();
  // Views never chain: a view of a view is a view of its base.
  int base = baseOf(source);
  std::optional<int64_t> start =
      ::lina::checkedAdd(rangeOf(source).first, offset);
  if (!start || !::lina::rangeWithin(*start, count, elements[base]))
    return where->emitError()
           << "lina-to-plan: a view of " << count << " elements at "
           << "offset " << offset << " does not fit in its source of "
           << elements[source] << " elements";
  rt::Buffer b;
  b.id = id;
  b.dtype = *dtype;
  b.shape.assign(tensor.getShape().begin(), tensor.getShape().end());
  b.viewBase = base;
  b.viewOffset = *start;
  b.name = "t" + std::to_string(id);
  plan.buffers.push_back(std::move(b));
  elements.push_back(count);
  return id;
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
    return newBuffer(where, value, rt::Role::Temp);
  auto [concat, offset] = it->second;
  int whole;
  if (auto found = values.find(concat); found != values.end()) {
    whole = found->second;
  } else {
    FailureOr<int> made = newBuffer(where, concat, rt::Role::Temp);
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

/// `value` as an int field of the plan, or an error on `op` if it exceeds
/// `limit` (at most INT_MAX).
FailureOr<int> Emitter::planInt(Operation *op, StringRef what, int64_t value,
                                int64_t limit) {
  if (value >= 0 && value <= limit)
    return static_cast<int>(value);
  return op->emitError() << "lina-to-plan: " << what << " is " << value
                         << "; a plan holds 0 to " << limit;
}

LogicalResult Emitter::addOp(Operation *op, rt::Op info, ArrayRef<Value> inputs,
                             ArrayRef<int> outputs) {
  int id = static_cast<int>(plan.ops.size());
  info.id = id;
  std::set<int> deps;
  for (Value v : inputs) {
    int b = bufferOf(v);
    info.inputs.push_back(b);
    auto [begin, end] = rangeOf(b);
    for (auto [writer, written] : writers[baseOf(b)]) {
      auto [wBegin, wEnd] = rangeOf(written);
      if (wBegin < end && begin < wEnd)
        deps.insert(writer);
    }
  }
  info.deps.assign(deps.begin(), deps.end());
  for (int b : outputs) {
    info.outputs.push_back(b);
    writers[baseOf(b)].push_back({id, b});
  }
  info.loc = locString(op->getLoc());
  info.holdLow = op->hasAttr(LinaDialect::kHoldLowAttrName);

  auto collective = [&](GroupAttr group, std::optional<Priority> priority) {
    info.group = group.getName().getValue().str();
    info.priority = toPlan(priority.value_or(Priority::normal));
  };
  if (auto a2a = dyn_cast<AllToAllOp>(op))
    collective(a2a.getGroup(), a2a.getPriority());
  else if (auto ar = dyn_cast<AllReduceOp>(op))
    collective(ar.getGroup(), ar.getPriority());
  // The attribute verifiers keep 0 <= index < count.
  if (auto p = op->getAttrOfType<PartitionAttr>("partition")) {
    FailureOr<int> count =
        planInt(op, "the partition count", p.getCount(), INT_MAX);
    if (failed(count))
      return failure();
    info.partitionIndex = static_cast<int>(p.getIndex());
    info.partitionCount = *count;
  }
  if (auto c = op->getAttrOfType<ChunkAttr>("chunk"))
    if (failed(setChunk(op, info, c)))
      return failure();
  if (auto p =
          op->getAttrOfType<PlacementAttr>(LinaDialect::kPlacementAttrName)) {
    // The attribute verifier requires devices in [0, num_devices) and
    // positive finite shares.
    rt::PlacementTable table;
    FailureOr<int> devices =
        planInt(op, "the placement's num_devices", p.getNumDevices(),
                ::lina::Limits::kMaxRanks);
    FailureOr<int> slots =
        planInt(op, "the placement's slots_per_device", p.getSlotsPerDevice(),
                ::lina::Limits::kMaxExperts);
    if (failed(devices) || failed(slots))
      return failure();
    table.numDevices = *devices;
    table.slotsPerDevice = *slots;
    table.offsets.assign(p.getOffsets().begin(), p.getOffsets().end());
    for (int64_t d : p.getDevices())
      table.devices.push_back(static_cast<int>(d));
    ArrayRef<double> shares = p.getShares().asArrayRef();
    table.shares.assign(shares.begin(), shares.end());
    info.placement = std::move(table);
  }
  plan.ops.push_back(std::move(info));
  return success();
}

/// Marks `info` as chunk `c` of a pipelined op.
LogicalResult Emitter::setChunk(Operation *op, rt::Op &info, ChunkAttr c) {
  FailureOr<int> count = planInt(op, "the chunk count", c.getCount(), INT_MAX);
  if (failed(count))
    return failure();
  info.chunkIndex = static_cast<int>(c.getIndex());
  info.chunkCount = *count;
  return success();
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
  auto simple = [&](rt::Op info) -> LogicalResult {
    FailureOr<SmallVector<int>> outs = results();
    if (failed(outs))
      return failure();
    return addOp(op, std::move(info), llvm::to_vector(op->getOperands()),
                 *outs);
  };
  auto grad = [&](rt::Op info) {
    hasGrad = true;
    return simple(std::move(info));
  };
  auto act = [](rt::OpKind kind, Activation a) {
    rt::Op info = planOp(kind);
    info.activation = toPlan(a);
    return info;
  };
  using rt::OpKind;

  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](DenseOp o) {
        return simple(act(OpKind::Dense, o.getActivation()));
      })
      .Case([&](DenseGradOp o) {
        return grad(act(OpKind::DenseGrad, o.getActivation()));
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
        rt::Op gate = planOp(OpKind::Gate);
        gate.numExperts = static_cast<int64_t>(o.getNumExperts());
        gate.topK = static_cast<int64_t>(o.getTopK());
        gate.capacityFactor = *factor;
        return simple(std::move(gate));
      })
      .Case([&](GateGradOp) { return grad(planOp(OpKind::GateGrad)); })
      .Case([&](DispatchOp o) {
        rt::Op dispatch = planOp(OpKind::Dispatch);
        dispatch.numExperts = o.getType().getDimSize(0);
        dispatch.capacity = o.getType().getDimSize(1);
        return simple(std::move(dispatch));
      })
      .Case([&](DispatchGradOp) { return grad(planOp(OpKind::DispatchGrad)); })
      .Case([&](CombineOp) { return simple(planOp(OpKind::Combine)); })
      .Case([&](CombineGradOp) { return grad(planOp(OpKind::CombineGrad)); })
      .Case([&](ExpertFfnOp o) {
        return simple(act(OpKind::ExpertFfn, o.getActivation()));
      })
      .Case([&](ExpertFfnGradOp o) {
        return grad(act(OpKind::ExpertFfnGrad, o.getActivation()));
      })
      .Case([&](ExpertFfnGradInputOp o) {
        return grad(act(OpKind::ExpertFfnGradInput, o.getActivation()));
      })
      .Case([&](ExpertFfnGradWeightOp) {
        return grad(planOp(OpKind::ExpertFfnGradWeight));
      })
      .Case([&](ExpertWeightGradOp) {
        return grad(planOp(OpKind::ExpertWeightGrad));
      })
      .Case([&](arith::AddFOp) { return simple(planOp(OpKind::Add)); })
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
        FailureOr<int> b = newBuffer(op, c.getResult(), rt::Role::Input);
        if (failed(b))
          return failure();
        plan.buffers[*b].init = rt::Init::Zero;
        plan.buffers[*b].name = "zeros" + std::to_string(*b);
        values[c.getResult()] = *b;
        return success();
      })
      .Case([&](AllReduceOp o) {
        rt::Op allReduce = planOp(OpKind::AllReduce);
        allReduce.reduction = toPlan(o.getReduction());
        return simple(std::move(allReduce));
      })
      .Case([&](AllToAllOp o) {
        rt::Op a2a =
            planOp(o.isVariable() ? OpKind::AllToAllV : OpKind::AllToAll);
        a2a.splitAxis = static_cast<int64_t>(o.getSplitAxis());
        a2a.concatAxis = static_cast<int64_t>(o.getConcatAxis());
        if (o.isVariable())
          a2a.maxRows = o.getType().getDimSize(0);
        return simple(std::move(a2a));
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
                   << " is outside the source's size " << srcType.getDimSize(i);
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
        rt::Op copy = planOp(OpKind::Copy);
        copy.srcOffsets.assign(offs.begin(), offs.end());
        copy.dstOffsets.assign(offs.size(), 0);
        copy.sizes.assign(sizes.begin(), sizes.end());
        if (failed(addOp(op, std::move(copy), {o.getSource()}, *outs)))
          return failure();
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
          return setChunk(op, plan.ops.back(), *chunk);
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
            rt::Op copy = planOp(OpKind::Copy);
            for (int64_t i = 0; i < type.getRank(); ++i) {
              copy.srcOffsets.push_back(0);
              copy.dstOffsets.push_back(i == dim && !contiguous ? at : 0);
              copy.sizes.push_back(pieceType.getDimSize(i));
            }
            copy.accumulateInto = !contiguous;
            if (failed(addOp(op, std::move(copy), {piece}, {dst})))
              return failure();
            // A chunk's piece belongs to the chunk that produced it.
            if (Operation *def = piece.getDefiningOp())
              if (auto c = def->getAttrOfType<ChunkAttr>("chunk"))
                if (failed(setChunk(op, plan.ops.back(), c)))
                  return failure();
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
    rt::Group group;
    group.name = g.getName().getValue().str();
    for (auto &[key, ranks] : instances) {
      llvm::sort(ranks);
      // Ranks are below Limits::kMaxRanks (checked by run()).
      std::vector<int> list;
      for (auto [groupRank, rank] : ranks)
        list.push_back(static_cast<int>(rank));
      group.members.push_back(std::move(list));
    }
    plan.groups[group.name] = std::move(group);
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
    FailureOr<int> b = newBuffer(
        func, arg, isUsedAsWeight(arg) ? rt::Role::Param : rt::Role::Input);
    if (failed(b))
      return failure();
    rt::Buffer &buffer = plan.buffers[*b];
    buffer.init = rt::Init::Random;
    if (Attribute attr = func.getArgAttr(n, "lina.init")) {
      auto init = dyn_cast<StringAttr>(attr);
      if (!init || (init.getValue() != "random" && init.getValue() != "zero"))
        return func.emitError()
               << "lina-to-plan: argument " << n << " has lina.init = " << attr
               << "; expected \"random\" or \"zero\"";
      buffer.init =
          init.getValue() == "zero" ? rt::Init::Zero : rt::Init::Random;
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
           << "lina-to-plan: the grid has " << world << " ranks; the limit is "
           << ::lina::Limits::kMaxRanks;
  computeGroups(grids.front());
  if (failed(emitArguments(*func)))
    return failure();
  planConcats(*func);

  Block &body = func->getBody().front();
  for (Operation &op : body) {
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      for (Value v : ret.getOperands()) {
        int b = bufferOf(v);
        if (plan.buffers[b].role == rt::Role::Temp)
          plan.buffers[b].role = rt::Role::Output;
        plan.outputs.push_back(b);
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
  finish(*func, grids.front());
  // Every number in the plan is finite (checked as the ops were emitted),
  // which is all writePlan asks of a plan.
  os << rt::writePlan(plan);
  return success();
}

/// Fills in the plan's top-level fields.
void Emitter::finish(func::FuncOp func, GridOp grid) {
  switch (options.mode) {
  case PlanMode::Auto:
    plan.mode = hasGrad ? "train" : "infer";
    break;
  case PlanMode::Train:
    plan.mode = "train";
    break;
  case PlanMode::Infer:
    plan.mode = "infer";
    break;
  }
  plan.version = rt::kPlanVersion;
  plan.source = locString(func.getLoc());
  if (auto colon = plan.source.find(':'); colon != std::string::npos)
    plan.source.resize(colon);
  plan.function = func.getName().str();
  // run() checked the rank count against Limits::kMaxRanks.
  plan.worldSize = static_cast<int>(grid.getNumRanks());
  plan.gridShape.assign(grid.getShape().begin(), grid.getShape().end());
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
