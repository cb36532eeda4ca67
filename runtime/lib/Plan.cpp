//===- Plan.cpp - Plan loading and validation -----------------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Plan.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>

using nlohmann::json;
using namespace lina::rt;

namespace {
struct NameTable {
  const char *name;
  OpKind kind;
};
const NameTable kOpNames[] = {
    {"dense", OpKind::Dense},
    {"dense_grad", OpKind::DenseGrad},
    {"gate", OpKind::Gate},
    {"gate_grad", OpKind::GateGrad},
    {"dispatch", OpKind::Dispatch},
    {"dispatch_grad", OpKind::DispatchGrad},
    {"combine", OpKind::Combine},
    {"combine_grad", OpKind::CombineGrad},
    {"expert_ffn", OpKind::ExpertFfn},
    {"expert_ffn_grad", OpKind::ExpertFfnGrad},
    {"add", OpKind::Add},
    {"copy", OpKind::Copy},
    {"all_to_all", OpKind::AllToAll},
    {"all_to_all_v", OpKind::AllToAllV},
    {"all_reduce", OpKind::AllReduce},
};

std::string shapeString(const std::vector<int64_t> &shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i)
    os << (i ? "x" : "") << shape[i];
  os << "]";
  return os.str();
}
} // namespace

const char *lina::rt::toString(OpKind kind) {
  for (const NameTable &entry : kOpNames)
    if (entry.kind == kind)
      return entry.name;
  return "?";
}

const char *lina::rt::toString(DType type) {
  switch (type) {
  case DType::F32: return "f32";
  case DType::BF16: return "bf16";
  case DType::F16: return "f16";
  case DType::I32: return "i32";
  case DType::I64: return "i64";
  }
  return "?";
}

const char *lina::rt::toString(Priority p) {
  switch (p) {
  case Priority::Normal: return "normal";
  case Priority::High: return "high";
  case Priority::Low: return "low";
  }
  return "?";
}

int64_t lina::rt::dtypeBytes(DType type) {
  switch (type) {
  case DType::F32: case DType::I32: return 4;
  case DType::BF16: case DType::F16: return 2;
  case DType::I64: return 8;
  }
  return 4;
}

int64_t Buffer::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::string Op::describe() const {
  std::ostringstream os;
  os << "op " << id << " (" << toString(kind);
  if (!loc.empty())
    os << " at " << loc;
  os << ")";
  return os.str();
}

const std::vector<int> &Group::instanceOf(int rank, int *indexInGroup) const {
  for (const auto &list : members)
    for (size_t i = 0; i < list.size(); ++i)
      if (list[i] == rank) {
        if (indexInGroup)
          *indexInGroup = static_cast<int>(i);
        return list;
      }
  throw PlanError("rank " + std::to_string(rank) + " is not in group '" +
                  name + "'");
}

int64_t Plan::collectiveBytes(const Op &op) const {
  return op.inputs.empty() ? 0 : buffer(op.inputs[0]).numBytes();
}

//===----------------------------------------------------------------------===//
// Parsing
//===----------------------------------------------------------------------===//

namespace {
class Parser {
public:
  explicit Parser(std::string origin) : origin(std::move(origin)) {}

  [[noreturn]] void fail(const std::string &msg) const {
    throw PlanError(origin + ": " + msg);
  }

  template <typename T>
  T get(const json &obj, const char *key, const std::string &where) const {
    auto it = obj.find(key);
    if (it == obj.end())
      fail(where + ": missing field '" + key + "'");
    try {
      return it->get<T>();
    } catch (const json::exception &) {
      fail(where + ": field '" + key + "' has the wrong type");
    }
  }

  template <typename T>
  T getOr(const json &obj, const char *key, T fallback,
          const std::string &where) const {
    if (!obj.contains(key))
      return fallback;
    return get<T>(obj, key, where);
  }

  DType parseDType(const std::string &s, const std::string &where) const {
    if (s == "f32") return DType::F32;
    if (s == "bf16") return DType::BF16;
    if (s == "f16") return DType::F16;
    if (s == "i32") return DType::I32;
    if (s == "i64") return DType::I64;
    fail(where + ": unknown dtype '" + s + "'");
  }

  Plan parse(const json &root) const {
    if (!root.is_object())
      fail("the top level must be a JSON object");
    Plan plan;
    if (getOr<std::string>(root, "format", "", "plan") != "lina-plan")
      fail("not a Lina plan (field 'format' must be \"lina-plan\")");
    plan.version = get<int>(root, "version", "plan");
    if (plan.version != kPlanVersion)
      fail("unsupported plan version " + std::to_string(plan.version) +
           " (this runtime reads version " + std::to_string(kPlanVersion) + ")");
    plan.source = getOr<std::string>(root, "source", "", "plan");
    plan.function = getOr<std::string>(root, "function", "", "plan");
    plan.mode = getOr<std::string>(root, "mode", "train", "plan");
    if (plan.mode != "train" && plan.mode != "infer")
      fail("field 'mode' must be \"train\" or \"infer\", got \"" + plan.mode + "\"");
    plan.worldSize = get<int>(root, "world_size", "plan");
    if (plan.worldSize < 1)
      fail("world_size must be at least 1, got " + std::to_string(plan.worldSize));
    if (root.contains("grid")) {
      plan.gridShape = get<std::vector<int64_t>>(root["grid"], "shape", "grid");
      int64_t devices = 1;
      for (int64_t d : plan.gridShape)
        devices *= d;
      if (devices != plan.worldSize)
        fail("grid shape holds " + std::to_string(devices) +
             " devices, but world_size is " + std::to_string(plan.worldSize));
    }

    const json &groups = root.contains("groups") ? root["groups"] : json::object();
    if (!groups.is_object())
      fail("field 'groups' must be an object");
    for (auto it = groups.begin(); it != groups.end(); ++it) {
      Group g;
      g.name = it.key();
      g.members = get<std::vector<std::vector<int>>>(it.value(), "members",
                                                     "group '" + g.name + "'");
      plan.groups[g.name] = std::move(g);
    }

    const json &buffers = root.contains("buffers") ? root["buffers"] : json::array();
    if (!buffers.is_array())
      fail("field 'buffers' must be an array");
    for (const json &b : buffers) {
      Buffer buf;
      std::string where = "buffer " + (b.contains("id") ? b["id"].dump() : "?");
      buf.id = get<int>(b, "id", where);
      buf.name = getOr<std::string>(b, "name", "buf" + std::to_string(buf.id), where);
      buf.dtype = parseDType(get<std::string>(b, "dtype", where), where);
      buf.shape = get<std::vector<int64_t>>(b, "shape", where);
      std::string role = getOr<std::string>(b, "role", "temp", where);
      if (role == "input") buf.role = Role::Input;
      else if (role == "param") buf.role = Role::Param;
      else if (role == "temp") buf.role = Role::Temp;
      else if (role == "output") buf.role = Role::Output;
      else fail(where + ": unknown role '" + role + "'");
      std::string init = getOr<std::string>(b, "init", "none", where);
      if (init == "random") buf.init = Init::Random;
      else if (init == "zero") buf.init = Init::Zero;
      else if (init == "none") buf.init = Init::None;
      else fail(where + ": unknown init '" + init + "'");
      if (b.contains("view")) {
        buf.viewBase = get<int>(b["view"], "base", where + " view");
        buf.viewOffset = get<int64_t>(b["view"], "offset", where + " view");
      }
      plan.buffers.push_back(std::move(buf));
    }

    const json &ops = root.contains("ops") ? root["ops"] : json::array();
    if (!ops.is_array())
      fail("field 'ops' must be an array");
    for (const json &o : ops)
      plan.ops.push_back(parseOp(o));
    plan.outputs = getOr<std::vector<int>>(root, "outputs", {}, "plan");
    return plan;
  }

  Op parseOp(const json &o) const {
    Op op;
    std::string where = "op " + (o.contains("id") ? o["id"].dump() : "?");
    op.id = get<int>(o, "id", where);
    op.loc = getOr<std::string>(o, "loc", "", where);
    std::string kind = get<std::string>(o, "kind", where);
    auto entry = std::find_if(std::begin(kOpNames), std::end(kOpNames),
                              [&](const NameTable &e) { return kind == e.name; });
    if (entry == std::end(kOpNames))
      fail(where + ": unknown kind '" + kind + "'");
    op.kind = entry->kind;
    where = op.describe();
    op.inputs = get<std::vector<int>>(o, "inputs", where);
    op.outputs = get<std::vector<int>>(o, "outputs", where);
    op.deps = getOr<std::vector<int>>(o, "deps", {}, where);
    std::string prio = getOr<std::string>(o, "priority", "normal", where);
    if (prio == "normal") op.priority = Priority::Normal;
    else if (prio == "high") op.priority = Priority::High;
    else if (prio == "low") op.priority = Priority::Low;
    else fail(where + ": unknown priority '" + prio + "'");
    op.group = getOr<std::string>(o, "group", "", where);
    op.holdLow = getOr<bool>(o, "hold_low", false, where);
    if (o.contains("partition")) {
      op.partitionIndex = get<int>(o["partition"], "index", where + " partition");
      op.partitionCount = get<int>(o["partition"], "count", where + " partition");
    }
    if (o.contains("chunk")) {
      op.chunkIndex = get<int>(o["chunk"], "index", where + " chunk");
      op.chunkCount = get<int>(o["chunk"], "count", where + " chunk");
    }
    const json &attrs = o.contains("attrs") ? o["attrs"] : json::object();
    std::string act = getOr<std::string>(attrs, "activation", "none", where);
    if (act == "none") op.activation = Activation::None;
    else if (act == "relu") op.activation = Activation::Relu;
    else if (act == "gelu") op.activation = Activation::Gelu;
    else if (act == "silu") op.activation = Activation::Silu;
    else fail(where + ": unknown activation '" + act + "'");
    std::string red = getOr<std::string>(attrs, "reduction", "sum", where);
    if (red == "sum") op.reduction = Reduction::Sum;
    else if (red == "max") op.reduction = Reduction::Max;
    else if (red == "min") op.reduction = Reduction::Min;
    else if (red == "prod") op.reduction = Reduction::Prod;
    else fail(where + ": unknown reduction '" + red + "'");
    op.numExperts = getOr<int64_t>(attrs, "num_experts", 0, where);
    op.topK = getOr<int64_t>(attrs, "top_k", 0, where);
    op.capacityFactor = getOr<double>(attrs, "capacity_factor", 0.0, where);
    op.capacity = getOr<int64_t>(attrs, "capacity", -1, where);
    op.maxRows = getOr<int64_t>(attrs, "max_rows", -1, where);
    op.splitAxis = getOr<int64_t>(attrs, "split_axis", 0, where);
    op.concatAxis = getOr<int64_t>(attrs, "concat_axis", 0, where);
    op.srcOffsets = getOr<std::vector<int64_t>>(attrs, "src_offsets", {}, where);
    op.dstOffsets = getOr<std::vector<int64_t>>(attrs, "dst_offsets", {}, where);
    op.sizes = getOr<std::vector<int64_t>>(attrs, "sizes", {}, where);
    return op;
  }

private:
  std::string origin;
};

//===----------------------------------------------------------------------===//
// Validation
//===----------------------------------------------------------------------===//

class Validator {
public:
  explicit Validator(Plan &plan, std::string origin)
      : plan(plan), origin(std::move(origin)) {}

  void run() {
    checkGroups();
    checkBuffers();
    plan.producers.assign(plan.buffers.size(), -1);
    writes.assign(plan.buffers.size(), {});
    for (size_t i = 0; i < plan.ops.size(); ++i)
      checkOp(plan.ops[i], static_cast<int>(i));
    for (int out : plan.outputs)
      if (out < 0 || out >= static_cast<int>(plan.buffers.size()))
        fail("plan output " + std::to_string(out) + " is not a buffer id");
  }

private:
  [[noreturn]] void fail(const std::string &msg) const {
    throw PlanError(origin + ": " + msg);
  }
  [[noreturn]] void failOp(const Op &op, const std::string &msg) const {
    fail(op.describe() + ": " + msg);
  }

  void checkGroups() {
    for (auto &[name, g] : plan.groups) {
      if (g.members.empty())
        fail("group '" + name + "' has no members");
      std::set<int> seen;
      for (const auto &list : g.members) {
        if (list.size() != g.members[0].size())
          fail("group '" + name + "': instances have different sizes");
        for (int r : list) {
          if (r < 0 || r >= plan.worldSize)
            fail("group '" + name + "' names rank " + std::to_string(r) +
                 ", outside the world of " + std::to_string(plan.worldSize));
          if (!seen.insert(r).second)
            fail("group '" + name + "' lists rank " + std::to_string(r) + " twice");
        }
      }
      if (static_cast<int>(seen.size()) != plan.worldSize)
        fail("group '" + name + "' does not cover every rank of the world (" +
             std::to_string(seen.size()) + " of " +
             std::to_string(plan.worldSize) + ")");
    }
  }

  void checkBuffers() {
    for (size_t i = 0; i < plan.buffers.size(); ++i) {
      Buffer &b = plan.buffers[i];
      std::string where = "buffer " + std::to_string(b.id) + " ('" + b.name + "')";
      if (b.id != static_cast<int>(i))
        fail(where + ": buffer ids must be 0, 1, 2... in order");
      for (int64_t d : b.shape)
        if (d < 0)
          fail(where + ": negative dimension in shape " + shapeString(b.shape));
      if (b.isView()) {
        if (b.viewBase < 0 || b.viewBase >= static_cast<int>(plan.buffers.size()))
          fail(where + ": view of unknown buffer " + std::to_string(b.viewBase));
        const Buffer &base = plan.buffers[b.viewBase];
        if (base.isView())
          fail(where + ": view of a view (buffer " + std::to_string(base.id) +
               "); views must name their base");
        if (base.dtype != b.dtype)
          fail(where + ": dtype differs from its base buffer " + std::to_string(base.id));
        if (b.viewOffset < 0 || b.viewOffset + b.numElements() > base.numElements())
          fail(where + ": view [" + std::to_string(b.viewOffset) + ", " +
               std::to_string(b.viewOffset + b.numElements()) +
               ") does not fit in buffer " + std::to_string(base.id) + " of " +
               std::to_string(base.numElements()) + " elements");
      }
    }
  }

  const Buffer &buf(const Op &op, int id) const {
    if (id < 0 || id >= static_cast<int>(plan.buffers.size()))
      failOp(op, "refers to unknown buffer " + std::to_string(id));
    return plan.buffers[id];
  }

  void arity(const Op &op, size_t in, size_t out) const {
    if (op.inputs.size() != in || op.outputs.size() != out)
      failOp(op, "expects " + std::to_string(in) + " inputs and " +
                     std::to_string(out) + " outputs, got " +
                     std::to_string(op.inputs.size()) + " and " +
                     std::to_string(op.outputs.size()));
  }

  const std::vector<int64_t> &shape(const Op &op, bool input, size_t i,
                                    size_t rank) const {
    const Buffer &b = buf(op, input ? op.inputs[i] : op.outputs[i]);
    if (b.shape.size() != rank)
      failOp(op, std::string(input ? "input " : "output ") + std::to_string(i) +
                     " (buffer " + std::to_string(b.id) + ") must have rank " +
                     std::to_string(rank) + ", got " + shapeString(b.shape));
    return b.shape;
  }

  void eq(const Op &op, int64_t a, int64_t b, const std::string &what) const {
    if (a != b)
      failOp(op, what + ": " + std::to_string(a) + " != " + std::to_string(b));
  }

  void sameShape(const Op &op, int a, int b, const std::string &what) const {
    if (buf(op, a).shape != buf(op, b).shape)
      failOp(op, what + ": shapes " + shapeString(buf(op, a).shape) + " and " +
                     shapeString(buf(op, b).shape) + " differ");
  }

  void checkOp(Op &op, int index) {
    if (op.id != index)
      failOp(op, "op ids must be 0, 1, 2... in program order");
    for (int d : op.deps)
      if (d < 0 || d >= op.id)
        failOp(op, "depends on op " + std::to_string(d) +
                       ", which is not an earlier op");
    for (int in : op.inputs) {
      const Buffer &b = buf(op, in);
      int base = b.isView() ? b.viewBase : in;
      const Buffer &root = plan.buffers[base];
      bool external = root.role == Role::Input || root.role == Role::Param;
      if (!external && plan.producers[in] < 0 && plan.producers[base] < 0 &&
          !anyViewProduced(base))
        failOp(op, "reads buffer " + std::to_string(in) + " ('" + b.name +
                       "') before any op writes it");
    }
    for (int out : op.outputs) {
      const Buffer &b = buf(op, out);
      int base = b.isView() ? b.viewBase : out;
      if (b.role == Role::Input || b.role == Role::Param ||
          plan.buffers[base].role == Role::Input ||
          plan.buffers[base].role == Role::Param)
        failOp(op, "writes buffer " + std::to_string(out) + " ('" + b.name +
                       "'), which is an input or parameter");
      // SSA: a buffer is written once, except that ops may write disjoint
      // views of one base, and copy ops may assemble one buffer piece by
      // piece.
      int64_t begin = b.isView() ? b.viewOffset : 0;
      int64_t end = begin + b.numElements();
      for (const Write &w : writes[base]) {
        if (w.begin >= end || begin >= w.end)
          continue;
        if (op.kind == OpKind::Copy && plan.ops[w.op].kind == OpKind::Copy)
          continue;
        if (w.buffer == out)
          failOp(op, "writes buffer " + std::to_string(out) +
                         ", already written by op " + std::to_string(w.op));
        failOp(op, "writes buffer " + std::to_string(out) + " ('" + b.name +
                       "'), which overlaps buffer " + std::to_string(w.buffer) +
                       " written by op " + std::to_string(w.op) +
                       " (only copy ops may write a buffer more than once)");
      }
      writes[base].push_back({op.id, out, begin, end});
      plan.producers[out] = op.id;
    }
    if (op.isCollective()) {
      if (op.group.empty())
        failOp(op, "a collective must name its group");
      if (!plan.groups.count(op.group))
        failOp(op, "unknown group '" + op.group + "'");
    }
    if (op.partitionIndex >= 0 &&
        (op.partitionCount < 1 || op.partitionIndex >= op.partitionCount))
      failOp(op, "partition index out of range");
    if (op.chunkIndex >= 0 &&
        (op.chunkCount < 1 || op.chunkIndex >= op.chunkCount))
      failOp(op, "chunk index out of range");
    checkKind(op);
  }

  bool anyViewProduced(int base) const {
    for (const Buffer &b : plan.buffers)
      if (b.viewBase == base && plan.producers[b.id] >= 0)
        return true;
    return false;
  }

  void checkDType(const Op &op, int id, bool integer) const {
    DType t = buf(op, id).dtype;
    bool isInt = t == DType::I32 || t == DType::I64;
    if (isInt != integer)
      failOp(op, "buffer " + std::to_string(id) + " must have " +
                     (integer ? "an integer" : "a floating-point") +
                     " dtype, got " + toString(t));
  }

  /// The per-expert buffer of a dispatch/combine (or grad) has one row
  /// per expert of the gate that produced `ids`, and `capacity` slots.
  void checkRouting(const Op &op, int ids, const std::vector<int64_t> &bufShape) {
    if (op.capacity >= 0)
      eq(op, bufShape[1], op.capacity, "buffer dimension 1 vs capacity");
    if (op.numExperts > 0)
      eq(op, bufShape[0], op.numExperts, "buffer dimension 0 vs num_experts");
    int producer = plan.producers[ids];
    if (producer >= 0 && plan.ops[producer].kind == OpKind::Gate) {
      const Op &gate = plan.ops[producer];
      if (bufShape[0] != gate.numExperts)
        failOp(op, "buffer dimension 0 (" + std::to_string(bufShape[0]) +
                       ") must equal num_experts (" +
                       std::to_string(gate.numExperts) + ") of the gate, " +
                       gate.describe());
    }
  }

  void checkKind(const Op &op) {
    switch (op.kind) {
    case OpKind::Dense: {
      arity(op, 2, 1);
      auto &x = shape(op, true, 0, 2), &w = shape(op, true, 1, 2),
           &y = shape(op, false, 0, 2);
      eq(op, x[1], w[0], "input columns vs weight rows");
      eq(op, y[0], x[0], "result rows vs input rows");
      eq(op, y[1], w[1], "result columns vs weight columns");
      break;
    }
    case OpKind::DenseGrad: {
      arity(op, 3, 2);
      auto &dy = shape(op, true, 0, 2), &x = shape(op, true, 1, 2),
           &w = shape(op, true, 2, 2);
      eq(op, x[1], w[0], "input columns vs weight rows");
      eq(op, dy[0], x[0], "grad rows vs input rows");
      eq(op, dy[1], w[1], "grad columns vs weight columns");
      sameShape(op, op.outputs[0], op.inputs[1], "input grad vs input");
      sameShape(op, op.outputs[1], op.inputs[2], "weight grad vs weight");
      break;
    }
    case OpKind::Gate: {
      arity(op, 2, 2);
      auto &x = shape(op, true, 0, 2), &w = shape(op, true, 1, 2),
           &ids = shape(op, false, 0, 2), &gw = shape(op, false, 1, 2);
      if (op.numExperts < 1 || op.topK < 1 || op.topK > op.numExperts)
        failOp(op, "needs 1 <= top_k <= num_experts, got top_k=" +
                       std::to_string(op.topK) + " num_experts=" +
                       std::to_string(op.numExperts));
      eq(op, x[1], w[0], "input columns vs router rows");
      eq(op, w[1], op.numExperts, "router columns vs num_experts");
      eq(op, ids[0], x[0], "expert_ids rows vs tokens");
      eq(op, ids[1], op.topK, "expert_ids columns vs top_k");
      eq(op, gw[0], ids[0], "gate_weights rows");
      eq(op, gw[1], ids[1], "gate_weights columns");
      checkDType(op, op.outputs[0], true);
      checkDType(op, op.outputs[1], false);
      break;
    }
    case OpKind::GateGrad: {
      arity(op, 4, 2);
      auto &dgw = shape(op, true, 0, 2), &x = shape(op, true, 1, 2),
           &w = shape(op, true, 2, 2), &ids = shape(op, true, 3, 2);
      eq(op, x[1], w[0], "input columns vs router rows");
      eq(op, ids[0], x[0], "expert_ids rows vs tokens");
      eq(op, dgw[0], ids[0], "grad rows vs expert_ids rows");
      eq(op, dgw[1], ids[1], "grad columns vs expert_ids columns");
      checkDType(op, op.inputs[3], true);
      sameShape(op, op.outputs[0], op.inputs[1], "input grad vs input");
      sameShape(op, op.outputs[1], op.inputs[2], "weight grad vs weight");
      break;
    }
    case OpKind::Dispatch:
    case OpKind::DispatchGrad: {
      arity(op, 2, 1);
      bool fwd = op.kind == OpKind::Dispatch;
      auto &tok = fwd ? shape(op, true, 0, 2) : shape(op, false, 0, 2);
      auto &bufShape = fwd ? shape(op, false, 0, 3) : shape(op, true, 0, 3);
      auto &ids = shape(op, true, 1, 2);
      eq(op, ids[0], tok[0], "expert_ids rows vs tokens");
      eq(op, bufShape[2], tok[1], "buffer hidden size vs token hidden size");
      checkDType(op, op.inputs[1], true);
      checkRouting(op, op.inputs[1], bufShape);
      break;
    }
    case OpKind::Combine:
    case OpKind::CombineGrad: {
      bool fwd = op.kind == OpKind::Combine;
      arity(op, fwd ? 3 : 4, fwd ? 1 : 2);
      size_t b = fwd ? 0 : 1;
      auto &bufShape = shape(op, true, b, 3), &ids = shape(op, true, b + 1, 2),
           &gw = shape(op, true, b + 2, 2);
      auto &tok = fwd ? shape(op, false, 0, 2) : shape(op, true, 0, 2);
      eq(op, ids[0], tok[0], "expert_ids rows vs tokens");
      eq(op, gw[0], ids[0], "gate_weights rows");
      eq(op, gw[1], ids[1], "gate_weights columns");
      eq(op, bufShape[2], tok[1], "buffer hidden size vs token hidden size");
      checkDType(op, op.inputs[b + 1], true);
      checkDType(op, op.inputs[b + 2], false);
      checkRouting(op, op.inputs[b + 1], bufShape);
      if (!fwd) {
        sameShape(op, op.outputs[0], op.inputs[1], "buffer grad vs buffer");
        sameShape(op, op.outputs[1], op.inputs[3], "gate weight grad vs gate weights");
      }
      break;
    }
    case OpKind::ExpertFfn:
    case OpKind::ExpertFfnGrad: {
      bool fwd = op.kind == OpKind::ExpertFfn;
      arity(op, fwd ? 3 : 4, fwd ? 1 : 3);
      size_t b = fwd ? 0 : 1;
      auto &in = shape(op, true, b, 3), &w1 = shape(op, true, b + 1, 3),
           &w2 = shape(op, true, b + 2, 3);
      eq(op, w1[0], in[0], "w1 experts vs local experts");
      eq(op, w2[0], in[0], "w2 experts vs local experts");
      eq(op, w1[1], in[2], "w1 rows vs hidden size");
      eq(op, w2[1], w1[2], "w2 rows vs w1 columns");
      eq(op, w2[2], in[2], "w2 columns vs hidden size");
      sameShape(op, op.outputs[0], op.inputs[b], "result vs input");
      if (!fwd) {
        sameShape(op, op.inputs[0], op.inputs[1], "grad vs input");
        sameShape(op, op.outputs[1], op.inputs[2], "w1 grad vs w1");
        sameShape(op, op.outputs[2], op.inputs[3], "w2 grad vs w2");
      }
      break;
    }
    case OpKind::Add:
      arity(op, 2, 1);
      sameShape(op, op.inputs[0], op.inputs[1], "operands");
      sameShape(op, op.outputs[0], op.inputs[0], "result vs operands");
      break;
    case OpKind::Copy: {
      arity(op, 1, 1);
      const Buffer &src = buf(op, op.inputs[0]), &dst = buf(op, op.outputs[0]);
      size_t r = op.sizes.size();
      if (op.srcOffsets.size() != src.shape.size() ||
          op.dstOffsets.size() != dst.shape.size() || src.shape.size() != r ||
          dst.shape.size() != r)
        failOp(op, "copy boxes must have the rank of both buffers");
      if (src.dtype != dst.dtype)
        failOp(op, "copy from " + std::string(toString(src.dtype)) + " to " +
                       toString(dst.dtype));
      for (size_t i = 0; i < r; ++i)
        if (op.sizes[i] < 0 || op.srcOffsets[i] < 0 || op.dstOffsets[i] < 0 ||
            op.srcOffsets[i] + op.sizes[i] > src.shape[i] ||
            op.dstOffsets[i] + op.sizes[i] > dst.shape[i])
          failOp(op, "copy box out of bounds in dimension " + std::to_string(i));
      break;
    }
    case OpKind::AllToAll: {
      arity(op, 1, 1);
      const Buffer &in = buf(op, op.inputs[0]), &out = buf(op, op.outputs[0]);
      int64_t n = plan.groups.count(op.group) ? plan.groups.at(op.group).size() : 1;
      int64_t rank = static_cast<int64_t>(in.shape.size());
      if (op.splitAxis < 0 || op.splitAxis >= rank || op.concatAxis < 0 ||
          op.concatAxis >= rank)
        failOp(op, "split_axis/concat_axis out of range for rank " +
                       std::to_string(rank));
      if (in.shape[op.splitAxis] % n)
        failOp(op, "split dimension " + std::to_string(in.shape[op.splitAxis]) +
                       " does not divide by the group size " + std::to_string(n));
      std::vector<int64_t> expect = in.shape;
      expect[op.splitAxis] /= n;
      expect[op.concatAxis] *= n;
      if (out.shape != expect)
        failOp(op, "result shape " + shapeString(out.shape) + " should be " +
                       shapeString(expect));
      if (in.dtype != out.dtype)
        failOp(op, "input and result dtypes differ");
      break;
    }
    case OpKind::AllToAllV: {
      arity(op, 3, 1);
      int64_t n = plan.groups.count(op.group) ? plan.groups.at(op.group).size() : 1;
      for (int i : {1, 2}) {
        const Buffer &c = buf(op, op.inputs[i]);
        if (c.dtype != DType::I64 || c.shape != std::vector<int64_t>{n})
          failOp(op, "counts must be i64 vectors of the group size " +
                         std::to_string(n));
      }
      const Buffer &in = buf(op, op.inputs[0]), &out = buf(op, op.outputs[0]);
      if (in.shape.empty() || in.shape.size() != out.shape.size() ||
          !std::equal(in.shape.begin() + 1, in.shape.end(), out.shape.begin() + 1))
        failOp(op, "rows of input and result must have the same shape");
      if (in.dtype != out.dtype)
        failOp(op, "input and result dtypes differ");
      if (op.maxRows >= 0)
        eq(op, out.shape[0], op.maxRows, "result rows vs max_rows");
      break;
    }
    case OpKind::AllReduce:
      arity(op, 1, 1);
      if (buf(op, op.inputs[0]).numElements() != buf(op, op.outputs[0]).numElements())
        failOp(op, "input and result sizes differ");
      if (buf(op, op.inputs[0]).dtype != buf(op, op.outputs[0]).dtype)
        failOp(op, "input and result dtypes differ");
      break;
    }
  }

  /// Element ranges of each base buffer written so far.
  struct Write {
    int op, buffer;
    int64_t begin, end;
  };
  std::vector<std::vector<Write>> writes;

  Plan &plan;
  std::string origin;
};
} // namespace

Plan lina::rt::parsePlan(const std::string &text, const std::string &origin) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception &e) {
    throw PlanError(origin + ": not valid JSON: " + e.what());
  }
  Plan plan = Parser(origin).parse(root);
  Validator(plan, origin).run();
  return plan;
}

Plan lina::rt::loadPlan(const std::string &path) {
  std::ifstream in(path);
  if (!in)
    throw PlanError("cannot open plan '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return parsePlan(ss.str(), path);
}

std::string lina::rt::dumpPlan(const Plan &plan) {
  std::ostringstream os;
  os << "plan v" << plan.version << " of " << plan.function << " ("
     << plan.source << "), mode " << plan.mode << ", world size "
     << plan.worldSize << "\n\ngroups:\n";
  for (const auto &[name, g] : plan.groups) {
    os << "  " << std::left << std::setw(8) << name << " size " << g.size()
       << ":";
    for (const auto &list : g.members) {
      os << " {";
      for (size_t i = 0; i < list.size(); ++i)
        os << (i ? "," : "") << list[i];
      os << "}";
    }
    os << "\n";
  }
  os << "\nbuffers:\n";
  static const char *roles[] = {"input", "param", "temp", "output"};
  for (const Buffer &b : plan.buffers) {
    os << "  %" << std::left << std::setw(5) << b.id << std::setw(24) << b.name
       << std::setw(5) << toString(b.dtype) << std::setw(18)
       << shapeString(b.shape) << std::setw(7) << roles[static_cast<int>(b.role)];
    static const char *inits[] = {" random", " zero", ""};
    os << inits[static_cast<int>(b.init)];
    if (b.isView())
      os << " view of %" << b.viewBase << " at " << b.viewOffset;
    os << "\n";
  }
  os << "\nops:\n";
  for (const Op &op : plan.ops) {
    os << "  " << std::right << std::setw(4) << op.id << "  " << std::left
       << std::setw(16) << toString(op.kind);
    os << "(";
    for (size_t i = 0; i < op.inputs.size(); ++i)
      os << (i ? ", " : "") << "%" << op.inputs[i];
    os << ") -> (";
    for (size_t i = 0; i < op.outputs.size(); ++i)
      os << (i ? ", " : "") << "%" << op.outputs[i];
    os << ")";
    if (op.isCollective())
      os << " group=" << op.group << " priority=" << toString(op.priority);
    if (op.partitionIndex >= 0)
      os << " partition=" << op.partitionIndex << "/" << op.partitionCount;
    if (op.chunkIndex >= 0)
      os << " chunk=" << op.chunkIndex << "/" << op.chunkCount;
    if (op.holdLow)
      os << " hold_low";
    if (!op.deps.empty()) {
      os << " deps=";
      for (size_t i = 0; i < op.deps.size(); ++i)
        os << (i ? "," : "") << op.deps[i];
    }
    if (!op.loc.empty())
      os << "  @" << op.loc;
    os << "\n";
  }
  return os.str();
}
