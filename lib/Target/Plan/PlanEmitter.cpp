//===- PlanEmitter.cpp - Scheduled lina IR to an executable plan ----------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/Target/Plan/PlanEmitter.h"
#include "lina/Dialect/Lina/IR/LinaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Tools/mlir-translate/Translation.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"

#include <map>
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
  int64_t numElements() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
};

/// Element strides of a row-major shape.
SmallVector<int64_t> stridesOf(ArrayRef<int64_t> shape) {
  SmallVector<int64_t> s(shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i)
    s[i] = s[i + 1] * shape[i + 1];
  return s;
}

/// True if the box `sizes` of `shape` is one contiguous run of elements.
bool isContiguous(ArrayRef<int64_t> shape, ArrayRef<int64_t> sizes) {
  size_t k = 0;
  while (k < sizes.size() && sizes[k] == 1)
    ++k;
  for (size_t i = k + 1; i < sizes.size(); ++i)
    if (sizes[i] != shape[i])
      return false;
  return true;
}

class Emitter {
public:
  Emitter(ModuleOp module, const PlanEmitterOptions &options)
      : module(module), options(options) {}

  LogicalResult run(llvm::raw_ostream &os);

private:
  LogicalResult emitGrid(GridOp grid, json::Object &root);
  FailureOr<func::FuncOp> selectFunction();
  FailureOr<std::string> dtypeOf(Operation *op, Type type);
  FailureOr<int> newBuffer(Operation *where, Value value, StringRef role);
  int viewOf(int source, int64_t offset, ArrayRef<int64_t> shape,
             const std::string &dtype, const std::string &name);
  FailureOr<int> destinationFor(Operation *where, Value value);
  void planConcats(func::FuncOp func);
  LogicalResult emitOp(Operation *op);
  void addOp(Operation *op, StringRef kind, ArrayRef<Value> inputs,
             ArrayRef<int> outputs, json::Object attrs);
  int bufferOf(Value v) { return values.lookup(v); }

  ModuleOp module;
  PlanEmitterOptions options;
  std::vector<BufferInfo> buffers;
  llvm::DenseMap<Value, int> values;
  json::Array ops;
  /// Values that are built in place inside a concatenation's buffer: the
  /// concat result and the element offset of the piece.
  llvm::DenseMap<Value, std::pair<Value, int64_t>> pieceOf;
  /// Writers so far of each base buffer: (op id, buffer id).
  std::map<int, std::vector<std::pair<int, int>>> writers;
  bool hasGrad = false;
};
} // namespace

FailureOr<std::string> Emitter::dtypeOf(Operation *op, Type type) {
  Type e = cast<ShapedType>(type).getElementType();
  if (e.isF32()) return std::string("f32");
  if (e.isBF16()) return std::string("bf16");
  if (e.isF16()) return std::string("f16");
  if (e.isInteger(32)) return std::string("i32");
  if (e.isInteger(64)) return std::string("i64");
  op->emitError() << "lina-to-plan: unsupported element type " << e;
  return failure();
}

FailureOr<int> Emitter::newBuffer(Operation *where, Value value,
                                  StringRef role) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  if (!type || !type.hasStaticShape()) {
    where->emitError() << "lina-to-plan: value of type " << value.getType()
                       << " needs a static tensor shape";
    return failure();
  }
  FailureOr<std::string> dtype = dtypeOf(where, type);
  if (failed(dtype))
    return failure();
  BufferInfo b;
  b.dtype = *dtype;
  b.shape.assign(type.getShape().begin(), type.getShape().end());
  b.role = role.str();
  b.name = "t" + std::to_string(buffers.size());
  buffers.push_back(b);
  return static_cast<int>(buffers.size() - 1);
}

int Emitter::viewOf(int source, int64_t offset, ArrayRef<int64_t> shape,
                    const std::string &dtype, const std::string &name) {
  const BufferInfo &src = buffers[source];
  BufferInfo b;
  b.dtype = dtype;
  b.shape.assign(shape.begin(), shape.end());
  b.base = src.base >= 0 ? src.base : source;
  b.offset = (src.base >= 0 ? src.offset : 0) + offset;
  b.name = name;
  buffers.push_back(b);
  return static_cast<int>(buffers.size() - 1);
}

/// The buffer an op result is written to: a fresh one, or a view of the
/// concatenation it is a piece of.
FailureOr<int> Emitter::destinationFor(Operation *where, Value value) {
  auto it = pieceOf.find(value);
  if (it == pieceOf.end())
    return newBuffer(where, value, "temp");
  auto [concat, offset] = it->second;
  int whole;
  if (auto found = values.find(concat); found != values.end()) {
    whole = found->second;
  } else {
    FailureOr<int> made = destinationFor(where, concat);
    if (failed(made))
      return failure();
    whole = *made;
    values[concat] = whole;
  }
  auto type = cast<RankedTensorType>(value.getType());
  FailureOr<std::string> dtype = dtypeOf(where, type);
  if (failed(dtype))
    return failure();
  return viewOf(whole, offset, type.getShape(), *dtype,
                "t" + std::to_string(buffers.size()));
}

/// Finds concatenations whose pieces can be produced in place.
void Emitter::planConcats(func::FuncOp func) {
  func.walk([&](tensor::ConcatOp concat) {
    auto type = cast<RankedTensorType>(concat.getType());
    int64_t dim = concat.getDim();
    for (int64_t i = 0; i < dim; ++i)
      if (type.getDimSize(i) != 1)
        return;
    auto strides = stridesOf(type.getShape());
    int64_t offset = 0;
    for (Value piece : concat.getInputs()) {
      Operation *def = piece.getDefiningOp();
      bool redirectable =
          def && (isa<LinaDialect>(def->getDialect()) || isa<arith::AddFOp>(def)) &&
          !pieceOf.count(piece);
      if (redirectable)
        pieceOf[piece] = {concat.getResult(), offset};
      offset += cast<RankedTensorType>(piece.getType()).getDimSize(dim) *
                strides[dim];
    }
  });
}

void Emitter::addOp(Operation *op, StringRef kind, ArrayRef<Value> inputs,
                    ArrayRef<int> outputs, json::Object attrs) {
  int id = static_cast<int>(ops.size());
  json::Object entry;
  entry["id"] = id;
  entry["kind"] = kind.str();
  json::Array in, out, deps;
  std::set<int> depSet;
  for (Value v : inputs) {
    int b = bufferOf(v);
    in.push_back(b);
    const BufferInfo &info = buffers[b];
    int base = info.base >= 0 ? info.base : b;
    int64_t begin = info.base >= 0 ? info.offset : 0, end = begin + info.numElements();
    for (auto [writer, wb] : writers[base]) {
      const BufferInfo &w = buffers[wb];
      int64_t wBegin = w.base >= 0 ? w.offset : 0, wEnd = wBegin + w.numElements();
      if (wBegin < end && begin < wEnd)
        depSet.insert(writer);
    }
  }
  for (int b : outputs) {
    out.push_back(b);
    writers[buffers[b].base >= 0 ? buffers[b].base : b].push_back({id, b});
  }
  for (int d : depSet)
    deps.push_back(d);
  entry["inputs"] = std::move(in);
  entry["outputs"] = std::move(out);
  entry["deps"] = std::move(deps);
  if (!attrs.empty())
    entry["attrs"] = json::Value(std::move(attrs));
  if (auto loc = dyn_cast<FileLineColLoc>(op->getLoc()))
    entry["loc"] = (llvm::sys::path::filename(loc.getFilename().getValue()) +
                    ":" + Twine(loc.getLine()) + ":" + Twine(loc.getColumn()))
                       .str();
  if (op->hasAttr("lina.hold_low"))
    entry["hold_low"] = true;
  auto setCollective = [&](GroupAttr group, std::optional<Priority> priority) {
    entry["group"] = group.getName().getValue().str();
    entry["priority"] = stringifyPriority(priority.value_or(Priority::normal)).str();
  };
  if (auto a2a = dyn_cast<AllToAllOp>(op)) {
    setCollective(a2a.getGroup(), a2a.getPriority());
    if (auto c = a2a.getChunkAttr())
      entry["chunk"] = json::Object{{"index", c.getIndex()}, {"count", c.getCount()}};
  } else if (auto ar = dyn_cast<AllReduceOp>(op)) {
    setCollective(ar.getGroup(), ar.getPriority());
    if (auto p = ar.getPartitionAttr())
      entry["partition"] = json::Object{{"index", p.getIndex()}, {"count", p.getCount()}};
  } else if (auto chunk = op->getAttrOfType<ChunkAttr>("chunk")) {
    entry["chunk"] = json::Object{{"index", chunk.getIndex()}, {"count", chunk.getCount()}};
  }
  ops.push_back(json::Value(std::move(entry)));
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
    addOp(op, kind, llvm::to_vector(op->getOperands()), *outs, std::move(attrs));
    return success();
  };
  auto act = [](Activation a) { return stringifyActivation(a).str(); };

  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](DenseOp o) { return simple("dense", json::Object{{"activation", act(o.getActivation())}}); })
      .Case([&](DenseGradOp o) {
        hasGrad = true;
        return simple("dense_grad", json::Object{{"activation", act(o.getActivation())}});
      })
      .Case([&](GateOp o) {
        return simple("gate", json::Object{{"num_experts", static_cast<int64_t>(o.getNumExperts())},
                               {"top_k", static_cast<int64_t>(o.getTopK())},
                               {"capacity_factor", o.getCapacityFactor().convertToDouble()}});
      })
      .Case([&](GateGradOp) { hasGrad = true; return simple("gate_grad", json::Object()); })
      .Case([&](DispatchOp) { return simple("dispatch", json::Object()); })
      .Case([&](DispatchGradOp) { hasGrad = true; return simple("dispatch_grad", json::Object()); })
      .Case([&](CombineOp) { return simple("combine", json::Object()); })
      .Case([&](CombineGradOp) { hasGrad = true; return simple("combine_grad", json::Object()); })
      .Case([&](ExpertFfnOp o) { return simple("expert_ffn", json::Object{{"activation", act(o.getActivation())}}); })
      .Case([&](ExpertFfnGradOp o) {
        hasGrad = true;
        return simple("expert_ffn_grad", json::Object{{"activation", act(o.getActivation())}});
      })
      .Case([&](arith::AddFOp) { return simple("add", json::Object()); })
      .Case([&](AllReduceOp o) {
        return simple("all_reduce", json::Object{{"reduction", stringifyReduction(o.getReduction()).str()}});
      })
      .Case([&](AllToAllOp o) {
        return simple(o.isVariable() ? "all_to_all_v" : "all_to_all",
                      json::Object{{"split_axis", static_cast<int64_t>(o.getSplitAxis())},
                       {"concat_axis", static_cast<int64_t>(o.getConcatAxis())}});
      })
      .Case<tensor::CollapseShapeOp, tensor::ExpandShapeOp>([&](auto o) -> LogicalResult {
        // Same storage, new shape.
        int src = bufferOf(o.getSrc());
        FailureOr<std::string> dtype = dtypeOf(op, o.getType());
        if (failed(dtype))
          return failure();
        values[o.getResult()] = viewOf(src, 0, o.getType().getShape(), *dtype,
                                       "t" + std::to_string(buffers.size()));
        return success();
      })
      .Case([&](tensor::ExtractSliceOp o) -> LogicalResult {
        if (!o.hasUnitStride() || !o.getOffsets().empty() || !o.getSizes().empty())
          return o.emitError() << "lina-to-plan: only static, unit-stride slices are supported";
        auto srcType = o.getSourceType();
        if (o.getType().getRank() != srcType.getRank())
          return o.emitError() << "lina-to-plan: rank-reducing slices are not supported";
        ArrayRef<int64_t> offs = o.getStaticOffsets(), sizes = o.getStaticSizes();
        int src = bufferOf(o.getSource());
        FailureOr<std::string> dtype = dtypeOf(op, o.getType());
        if (failed(dtype))
          return failure();
        if (isContiguous(srcType.getShape(), sizes)) {
          auto strides = stridesOf(srcType.getShape());
          int64_t offset = 0;
          for (size_t i = 0; i < offs.size(); ++i)
            offset += offs[i] * strides[i];
          values[o.getResult()] = viewOf(src, offset, o.getType().getShape(), *dtype,
                                         "t" + std::to_string(buffers.size()));
          return success();
        }
        FailureOr<SmallVector<int>> outs = results();
        if (failed(outs))
          return failure();
        json::Array so, dz, sz;
        for (size_t i = 0; i < offs.size(); ++i) {
          so.push_back(offs[i]);
          dz.push_back(0);
          sz.push_back(sizes[i]);
        }
        addOp(op, "copy", {o.getSource()}, *outs,
              json::Object{{"src_offsets", std::move(so)}, {"dst_offsets", std::move(dz)},
               {"sizes", std::move(sz)}});
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
        auto type = o.getResultType();
        for (Value piece : o.getInputs()) {
          auto pt = cast<RankedTensorType>(piece.getType());
          auto it = pieceOf.find(piece);
          bool inPlace = it != pieceOf.end() && it->second.first == o.getResult();
          if (!inPlace) {
            json::Array so, dofs, sz;
            for (int64_t i = 0; i < type.getRank(); ++i) {
              so.push_back(0);
              dofs.push_back(i == dim ? at : 0);
              sz.push_back(pt.getDimSize(i));
            }
            addOp(op, "copy", {piece}, {whole},
                  json::Object{{"src_offsets", std::move(so)}, {"dst_offsets", std::move(dofs)},
                   {"sizes", std::move(sz)}});
          }
          at += pt.getDimSize(dim);
        }
        return success();
      })
      .Default([&](Operation *other) {
        return other->emitError()
               << "lina-to-plan: unsupported operation '" << other->getName()
               << "'";
      });
}

FailureOr<func::FuncOp> Emitter::selectFunction() {
  func::FuncOp chosen;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal())
      continue;
    if (!options.function.empty()) {
      if (func.getName() == options.function)
        return func;
      continue;
    }
    if (!func.isPublic())
      continue;
    if (chosen) {
      module.emitError() << "lina-to-plan: several public functions (@"
                         << chosen.getName() << ", @" << func.getName()
                         << "); choose one with --lina-plan-function";
      return failure();
    }
    chosen = func;
  }
  if (!chosen) {
    if (!options.function.empty())
      module.emitError() << "lina-to-plan: no function named @" << options.function;
    else
      module.emitError() << "lina-to-plan: no function with a body to emit";
    return failure();
  }
  return chosen;
}

LogicalResult Emitter::emitGrid(GridOp grid, json::Object &root) {
  ArrayRef<int64_t> shape = grid.getShape();
  int64_t world = grid.getNumRanks();
  root["world_size"] = world;
  json::Array shapeJson;
  for (int64_t s : shape)
    shapeJson.push_back(s);
  root["grid"] = json::Object{{"shape", std::move(shapeJson)}};
  json::Object groups;
  for (NamedAttribute g : grid.getGroups()) {
    ArrayRef<int64_t> axes = cast<DenseI64ArrayAttr>(g.getValue()).asArrayRef();
    std::map<std::vector<int64_t>, std::vector<int64_t>> instances;
    for (int64_t r = 0; r < world; ++r) {
      // Row-major coordinates of rank r.
      std::vector<int64_t> coords(shape.size());
      int64_t rem = r;
      for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0; --i) {
        coords[i] = rem % shape[i];
        rem /= shape[i];
      }
      std::vector<int64_t> key;
      for (size_t i = 0; i < shape.size(); ++i)
        if (!llvm::is_contained(axes, static_cast<int64_t>(i)))
          key.push_back(coords[i]);
      instances[key].push_back(r);
    }
    json::Array members;
    for (auto &[key, ranks] : instances) {
      json::Array list;
      for (int64_t r : ranks)
        list.push_back(r);
      members.push_back(std::move(list));
    }
    groups[g.getName().getValue()] = json::Object{{"members", std::move(members)}};
  }
  root["groups"] = std::move(groups);
  return success();
}

LogicalResult Emitter::run(llvm::raw_ostream &os) {
  SmallVector<GridOp> grids(module.getOps<GridOp>());
  if (grids.size() != 1)
    return module.emitError() << "lina-to-plan: expected exactly one lina.grid, found "
                              << grids.size();
  FailureOr<func::FuncOp> func = selectFunction();
  if (failed(func))
    return failure();
  if (!func->getBody().hasOneBlock())
    return func->emitError() << "lina-to-plan: the function must be one block "
                                "of straight-line code";

  json::Object root;
  root["format"] = "lina-plan";
  root["version"] = 1;
  if (auto loc = dyn_cast<FileLineColLoc>(func->getLoc()))
    root["source"] = llvm::sys::path::filename(loc.getFilename().getValue()).str();
  root["function"] = func->getName().str();
  if (failed(emitGrid(grids.front(), root)))
    return failure();

  // Arguments: parameters (weights) or inputs, named stably so that two
  // plans of one function seed the same values.
  Block &body = func->getBody().front();
  for (BlockArgument arg : body.getArguments()) {
    bool isWeight = llvm::any_of(arg.getUses(), [](OpOperand &use) {
      Operation *user = use.getOwner();
      unsigned n = use.getOperandNumber();
      return (isa<DenseOp, GateOp>(user) && n == 1) ||
             (isa<DenseGradOp, GateGradOp>(user) && n == 2) ||
             (isa<ExpertFfnOp>(user) && n >= 1) ||
             (isa<ExpertFfnGradOp>(user) && n >= 2);
    });
    FailureOr<int> b = newBuffer(*func, arg, isWeight ? "param" : "input");
    if (failed(b))
      return failure();
    buffers[*b].init = "random";
    if (auto init = func->getArgAttrOfType<StringAttr>(arg.getArgNumber(), "lina.init")) {
      if (init.getValue() != "random" && init.getValue() != "zero")
        return func->emitError() << "lina-to-plan: argument " << arg.getArgNumber()
                                 << " has lina.init = \"" << init.getValue()
                                 << "\"; expected \"random\" or \"zero\"";
      buffers[*b].init = init.getValue().str();
    }
    auto name = func->getArgAttrOfType<StringAttr>(arg.getArgNumber(), "lina.name");
    buffers[*b].name =
        name ? name.getValue().str() : "arg" + std::to_string(arg.getArgNumber());
    values[arg] = *b;
  }

  planConcats(*func);
  json::Array outputs;
  for (Operation &op : body) {
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      for (Value v : ret.getOperands()) {
        int b = bufferOf(v);
        if (buffers[b].base < 0 && buffers[b].role == "temp")
          buffers[b].role = "output";
        outputs.push_back(b);
      }
      continue;
    }
    if (failed(emitOp(&op)))
      return failure();
  }
  root["mode"] = hasGrad ? "train" : "infer";

  json::Array bufferJson;
  for (auto [i, b] : llvm::enumerate(buffers)) {
    json::Object o{{"id", static_cast<int64_t>(i)}, {"name", b.name},
                   {"dtype", b.dtype}, {"role", b.role}, {"init", b.init}};
    json::Array shape;
    for (int64_t d : b.shape)
      shape.push_back(d);
    o["shape"] = std::move(shape);
    if (b.base >= 0)
      o["view"] = json::Object{{"base", b.base}, {"offset", b.offset}};
    bufferJson.push_back(std::move(o));
  }
  root["buffers"] = std::move(bufferJson);
  root["ops"] = std::move(ops);
  root["outputs"] = std::move(outputs);
  os << llvm::formatv("{0:2}", json::Value(std::move(root))) << "\n";
  return success();
}

LogicalResult mlir::lina::emitPlan(ModuleOp module, llvm::raw_ostream &os,
                                   const PlanEmitterOptions &options) {
  return Emitter(module, options).run(os);
}

void mlir::lina::registerToPlanTranslation() {
  static llvm::cl::opt<std::string> function(
      "lina-plan-function",
      llvm::cl::desc("Function to emit with --lina-to-plan (default: the only "
                     "public one)"),
      llvm::cl::init(""));
  TranslateFromMLIRRegistration registration(
      "lina-to-plan", "Emit the executable Lina plan (JSON) of scheduled lina IR",
      [](Operation *op, llvm::raw_ostream &os) -> LogicalResult {
        auto module = dyn_cast<ModuleOp>(op);
        if (!module)
          return op->emitError("lina-to-plan: expected a module");
        PlanEmitterOptions options;
        options.function = function;
        return emitPlan(module, os, options);
      },
      [](DialectRegistry &registry) {
        registry.insert<LinaDialect, func::FuncDialect, arith::ArithDialect,
                        tensor::TensorDialect>();
      });
}
