//===- Plan.cpp - Plan loading and validation -----------------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Plan.h"
#include "lina/Support/CheckedMath.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>
#include <tuple>

using nlohmann::json;
using namespace lina::rt;
using lina::checkedAdd;
using lina::checkedMul;
using lina::checkedProduct;
using lina::Limits;
using lina::rangeWithin;

const OpKindInfo lina::rt::kOpKinds[] = {
#define LINA_OP_KIND(Kind, name, inputs, outputs, collective, attrs)           \
  {OpKind::Kind,                                                               \
   name,                                                                       \
   inputs,                                                                     \
   outputs,                                                                    \
   sizeof(inputs) - 1,                                                         \
   sizeof(outputs) - 1,                                                        \
   collective != 0,                                                            \
   attrs},
#include "lina/rt/OpKinds.def"
};

bool lina::rt::OpKindInfo::alwaysStates(std::string_view attr) const {
  std::string_view rest = statedAttrs;
  while (!rest.empty()) {
    size_t space = rest.find(' ');
    if (rest.substr(0, space) == attr)
      return true;
    rest = space == std::string_view::npos ? std::string_view()
                                           : rest.substr(space + 1);
  }
  return false;
}

std::vector<int> lina::rt::Op::buffersWithRole(char role) const {
  const OpKindInfo &kind = info(this->kind);
  std::vector<int> ids;
  for (size_t i = 0; i < inputs.size() && kind.inputRoles[i]; ++i)
    if (kind.inputRoles[i] == role)
      ids.push_back(inputs[i]);
  for (size_t i = 0; i < outputs.size() && kind.outputRoles[i]; ++i)
    if (kind.outputRoles[i] == role)
      ids.push_back(outputs[i]);
  return ids;
}

namespace {
std::string shapeString(const std::vector<int64_t> &shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i)
    os << (i ? "x" : "") << shape[i];
  os << "]";
  return os.str();
}
} // namespace

const char *lina::rt::toString(OpKind kind) { return info(kind).name; }

const char *lina::rt::toString(DType type) {
  switch (type) {
  case DType::F32:
    return "f32";
  case DType::BF16:
    return "bf16";
  case DType::F16:
    return "f16";
  case DType::I32:
    return "i32";
  case DType::I64:
    return "i64";
  }
  return "?";
}

const char *lina::rt::toString(Priority p) {
  switch (p) {
  case Priority::Normal:
    return "normal";
  case Priority::High:
    return "high";
  case Priority::Low:
    return "low";
  }
  return "?";
}

int64_t lina::rt::dtypeBytes(DType type) {
  switch (type) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::BF16:
  case DType::F16:
    return 2;
  case DType::I64:
    return 8;
  }
  return 4;
}

int64_t Buffer::numElements() const {
  // Validated plans stay within Limits::kMaxElements; anything else (a
  // buffer built by hand) is refused instead of wrapping around.
  std::optional<int64_t> n = checkedProduct(shape);
  if (!n)
    throw PlanError("buffer " + std::to_string(id) + " ('" + name +
                    "'): the element count of shape " + shapeString(shape) +
                    " overflows");
  return *n;
}

int64_t Buffer::numBytes() const {
  std::optional<int64_t> n = checkedMul(numElements(), dtypeBytes(dtype));
  if (!n)
    throw PlanError("buffer " + std::to_string(id) + " ('" + name +
                    "'): the byte size of shape " + shapeString(shape) +
                    " overflows");
  return *n;
}

int64_t Plan::allocatedBytes() const {
  int64_t total = 0;
  for (const Buffer &b : buffers) {
    if (b.isView())
      continue;
    std::optional<int64_t> sum = checkedAdd(total, b.numBytes());
    if (!sum)
      throw PlanError("the plan's buffers need more than 2^63 bytes");
    total = *sum;
  }
  return total;
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
  throw PlanError("rank " + std::to_string(rank) + " is not in group '" + name +
                  "'");
}

bool lina::rt::operator==(const PlacementTable &a, const PlacementTable &b) {
  return std::tie(a.numDevices, a.slotsPerDevice, a.offsets, a.devices,
                  a.shares) == std::tie(b.numDevices, b.slotsPerDevice,
                                        b.offsets, b.devices, b.shares);
}

bool lina::rt::operator==(const Buffer &a, const Buffer &b) {
  return std::tie(a.id, a.name, a.dtype, a.shape, a.role, a.init, a.viewBase,
                  a.viewOffset) == std::tie(b.id, b.name, b.dtype, b.shape,
                                            b.role, b.init, b.viewBase,
                                            b.viewOffset);
}

bool lina::rt::operator==(const Op &a, const Op &b) {
  auto fields = [](const Op &o) {
    return std::tie(o.id, o.kind, o.inputs, o.outputs, o.deps, o.priority,
                    o.group, o.holdLow, o.partitionIndex, o.partitionCount,
                    o.chunkIndex, o.chunkCount, o.loc, o.activation,
                    o.reduction, o.numExperts, o.topK, o.capacityFactor,
                    o.capacity, o.maxRows, o.sendRows, o.splitAxis,
                    o.concatAxis, o.srcOffsets, o.dstOffsets, o.sizes,
                    o.accumulateInto, o.placement);
  };
  return fields(a) == fields(b);
}

bool lina::rt::operator==(const Group &a, const Group &b) {
  return a.name == b.name && a.members == b.members;
}

bool lina::rt::operator==(const Plan &a, const Plan &b) {
  return std::tie(a.version, a.source, a.function, a.mode, a.worldSize,
                  a.gridShape, a.groups, a.buffers, a.ops, a.outputs) ==
         std::tie(b.version, b.source, b.function, b.mode, b.worldSize,
                  b.gridShape, b.groups, b.buffers, b.ops, b.outputs);
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

  //===--------------------------------------------------------------------===//
  // Strict field readers: every value must have exactly the JSON type of its
  // field (no bool or float for an integer, no number for a string), every
  // integer must lie in the field's range, and every float must be finite.
  // Each error names the field and where it is ("op 3 (dispatch at m:1:2):
  // field 'attrs.capacity' ...").
  //===--------------------------------------------------------------------===//

  static std::string valueString(const json &v) {
    std::string s = v.dump();
    return s.size() > 40 ? s.substr(0, 37) + "..." : s;
  }

  [[noreturn]] void failField(const std::string &where,
                              const std::string &field,
                              const std::string &msg) const {
    fail(where + ": field '" + field + "' " + msg);
  }

  const json *find(const json &obj, const char *key) const {
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }

  const json &require(const json &obj, const char *key,
                      const std::string &where) const {
    const json *v = find(obj, key);
    if (!v)
      fail(where + ": missing field '" + key + "'");
    return *v;
  }

  /// An integer in [lo, hi]. `field` is the name reported.
  int64_t asInt(const json &v, const std::string &field,
                const std::string &where, int64_t lo, int64_t hi) const {
    if (!v.is_number_integer())
      failField(where, field,
                "must be an integer, got " + std::string(v.type_name()) + " " +
                    valueString(v));
    std::string range =
        "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    if (v.is_number_unsigned() &&
        v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      failField(where, field, "is " + valueString(v) + ", outside " + range);
    int64_t i = v.get<int64_t>();
    if (i < lo || i > hi)
      failField(where, field, "is " + std::to_string(i) + ", outside " + range);
    return i;
  }

  int64_t getInt(const json &obj, const char *key, const std::string &where,
                 int64_t lo, int64_t hi, const std::string &prefix = "") const {
    return asInt(require(obj, key, where), prefix + key, where, lo, hi);
  }

  int64_t getIntOr(const json &obj, const char *key, int64_t fallback,
                   const std::string &where, int64_t lo, int64_t hi,
                   const std::string &prefix = "") const {
    const json *v = find(obj, key);
    return v ? asInt(*v, prefix + key, where, lo, hi) : fallback;
  }

  /// A list of at most `maxLen` integers in [lo, hi].
  std::vector<int64_t> asIntList(const json &v, const std::string &field,
                                 const std::string &where, int64_t lo,
                                 int64_t hi, size_t maxLen) const {
    if (!v.is_array())
      failField(where, field,
                "must be an array of integers, got " +
                    std::string(v.type_name()));
    if (v.size() > maxLen)
      failField(where, field,
                "has " + std::to_string(v.size()) + " entries; the limit is " +
                    std::to_string(maxLen));
    std::vector<int64_t> out;
    out.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i)
      out.push_back(
          asInt(v[i], field + "[" + std::to_string(i) + "]", where, lo, hi));
    return out;
  }

  std::vector<int64_t> getIntList(const json &obj, const char *key,
                                  const std::string &where, int64_t lo,
                                  int64_t hi, size_t maxLen,
                                  const std::string &prefix = "") const {
    return asIntList(require(obj, key, where), prefix + key, where, lo, hi,
                     maxLen);
  }

  std::vector<int64_t> getIntListOr(const json &obj, const char *key,
                                    const std::string &where, int64_t lo,
                                    int64_t hi, size_t maxLen,
                                    const std::string &prefix = "") const {
    const json *v = find(obj, key);
    return v ? asIntList(*v, prefix + key, where, lo, hi, maxLen)
             : std::vector<int64_t>{};
  }

  /// Buffer or op ids: non-negative and within int.
  std::vector<int> getIdList(const json &obj, const char *key,
                             const std::string &where, bool required) const {
    std::vector<int64_t> ids =
        required ? getIntList(obj, key, where, 0, INT_MAX, kMaxListLength)
                 : getIntListOr(obj, key, where, 0, INT_MAX, kMaxListLength);
    return std::vector<int>(ids.begin(), ids.end());
  }

  /// A finite number in [lo, hi] (integers are accepted as numbers).
  double getDoubleOr(const json &obj, const char *key, double fallback,
                     const std::string &where, double lo, double hi,
                     const std::string &prefix = "") const {
    const json *v = find(obj, key);
    if (!v)
      return fallback;
    if (!v->is_number())
      failField(where, prefix + key,
                "must be a number, got " + std::string(v->type_name()) + " " +
                    valueString(*v));
    double d = v->get<double>();
    if (!std::isfinite(d))
      failField(where, prefix + key, "must be finite, got " + valueString(*v));
    if (d < lo || d > hi)
      failField(where, prefix + key,
                "is " + valueString(*v) + ", outside [" + json(lo).dump() +
                    ", " + json(hi).dump() + "]");
    return d;
  }

  /// A list of at most `maxLen` finite numbers in (0, 1].
  std::vector<double> getShareList(const json &obj, const char *key,
                                   const std::string &where, size_t maxLen,
                                   const std::string &prefix) const {
    const json &v = require(obj, key, where);
    std::string field = prefix + key;
    if (!v.is_array())
      failField(where, field,
                "must be an array of numbers, got " +
                    std::string(v.type_name()));
    if (v.size() > maxLen)
      failField(where, field,
                "has " + std::to_string(v.size()) + " entries; the limit is " +
                    std::to_string(maxLen));
    std::vector<double> out;
    out.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      std::string entry = field + "[" + std::to_string(i) + "]";
      if (!v[i].is_number())
        failField(where, entry,
                  "must be a number, got " + std::string(v[i].type_name()) +
                      " " + valueString(v[i]));
      double d = v[i].get<double>();
      if (!std::isfinite(d) || d <= 0 || d > 1)
        failField(where, entry, "is " + valueString(v[i]) + ", outside (0, 1]");
      out.push_back(d);
    }
    return out;
  }

  std::string getString(const json &obj, const char *key,
                        const std::string &where,
                        const std::string &prefix = "") const {
    const json &v = require(obj, key, where);
    if (!v.is_string())
      failField(where, prefix + key,
                "must be a string, got " + std::string(v.type_name()) + " " +
                    valueString(v));
    return v.get<std::string>();
  }

  std::string getStringOr(const json &obj, const char *key,
                          const std::string &fallback, const std::string &where,
                          const std::string &prefix = "") const {
    return find(obj, key) ? getString(obj, key, where, prefix) : fallback;
  }

  bool getBoolOr(const json &obj, const char *key, bool fallback,
                 const std::string &where,
                 const std::string &prefix = "") const {
    const json *v = find(obj, key);
    if (!v)
      return fallback;
    if (!v->is_boolean())
      failField(where, prefix + key,
                "must be true or false, got " + std::string(v->type_name()) +
                    " " + valueString(*v));
    return v->get<bool>();
  }

  /// An optional object-valued field (an empty object when absent).
  const json &objectOr(const json &obj, const char *key,
                       const std::string &where) const {
    static const json empty = json::object();
    const json *v = find(obj, key);
    if (!v)
      return empty;
    if (!v->is_object())
      failField(where, key,
                "must be an object, got " + std::string(v->type_name()));
    return *v;
  }

  const json &arrayOr(const json &obj, const char *key,
                      const std::string &where) const {
    static const json empty = json::array();
    const json *v = find(obj, key);
    if (!v)
      return empty;
    if (!v->is_array())
      failField(where, key,
                "must be an array, got " + std::string(v->type_name()));
    return *v;
  }

  DType parseDType(const std::string &s, const std::string &where) const {
    if (s == "f32")
      return DType::F32;
    if (s == "bf16")
      return DType::BF16;
    if (s == "f16")
      return DType::F16;
    if (s == "i32")
      return DType::I32;
    if (s == "i64")
      return DType::I64;
    fail(where + ": unknown dtype '" + s + "'");
  }

  Plan parse(const json &root) const {
    if (!root.is_object())
      fail("the top level must be a JSON object");
    Plan plan;
    const std::string top = "plan";
    if (getStringOr(root, "format", "", top) != "lina-plan")
      fail("not a Lina plan (field 'format' must be \"lina-plan\")");
    plan.version = static_cast<int>(getInt(root, "version", top, 0, INT_MAX));
    if (plan.version != kPlanVersion)
      fail("unsupported plan version " + std::to_string(plan.version) +
           " (this runtime reads version " + std::to_string(kPlanVersion) +
           ")");
    plan.source = getStringOr(root, "source", "", top);
    plan.function = getStringOr(root, "function", "", top);
    plan.mode = getStringOr(root, "mode", "train", top);
    if (plan.mode != "train" && plan.mode != "infer")
      fail("field 'mode' must be \"train\" or \"infer\", got \"" + plan.mode +
           "\"");
    plan.worldSize =
        static_cast<int>(getInt(root, "world_size", top, 1, Limits::kMaxRanks));
    const json &grid = objectOr(root, "grid", top);
    if (find(root, "grid")) {
      plan.gridShape = getIntList(grid, "shape", top, 1, Limits::kMaxRanks,
                                  Limits::kMaxTensorRank, "grid.");
      std::optional<int64_t> devices = checkedProduct(plan.gridShape);
      if (!devices || *devices != plan.worldSize)
        fail("grid shape holds " +
             (devices ? std::to_string(*devices)
                      : std::string("more than 2^63")) +
             " devices, but world_size is " + std::to_string(plan.worldSize));
    }

    const json &groups = objectOr(root, "groups", top);
    for (auto it = groups.begin(); it != groups.end(); ++it) {
      Group g;
      g.name = it.key();
      std::string where = "group '" + g.name + "'";
      if (!it.value().is_object())
        fail(where + " must be an object");
      const json &members = require(it.value(), "members", where);
      if (!members.is_array())
        failField(where, "members", "must be an array of rank lists");
      if (members.size() > static_cast<size_t>(plan.worldSize))
        failField(where, "members", "has more instances than ranks");
      for (size_t i = 0; i < members.size(); ++i) {
        std::vector<int64_t> list =
            asIntList(members[i], "members[" + std::to_string(i) + "]", where,
                      0, plan.worldSize - 1, plan.worldSize);
        g.members.emplace_back(list.begin(), list.end());
      }
      plan.groups[g.name] = std::move(g);
    }

    const json &buffers = arrayOr(root, "buffers", top);
    for (size_t i = 0; i < buffers.size(); ++i) {
      const json &b = buffers[i];
      std::string where = "buffers[" + std::to_string(i) + "]";
      if (!b.is_object())
        fail(where + " must be an object");
      Buffer buf;
      buf.id = static_cast<int>(getInt(b, "id", where, 0, INT_MAX));
      where = "buffer " + std::to_string(buf.id);
      buf.name = getStringOr(b, "name", "buf" + std::to_string(buf.id), where);
      buf.dtype = parseDType(getString(b, "dtype", where), where);
      buf.shape = getIntList(b, "shape", where, 0, Limits::kMaxElements,
                             Limits::kMaxTensorRank);
      std::string role = getStringOr(b, "role", "temp", where);
      if (role == "input")
        buf.role = Role::Input;
      else if (role == "param")
        buf.role = Role::Param;
      else if (role == "temp")
        buf.role = Role::Temp;
      else if (role == "output")
        buf.role = Role::Output;
      else
        fail(where + ": unknown role '" + role + "'");
      std::string init = getStringOr(b, "init", "none", where);
      if (init == "random")
        buf.init = Init::Random;
      else if (init == "zero")
        buf.init = Init::Zero;
      else if (init == "none")
        buf.init = Init::None;
      else
        fail(where + ": unknown init '" + init + "'");
      if (find(b, "view")) {
        const json &view = objectOr(b, "view", where);
        buf.viewBase =
            static_cast<int>(getInt(view, "base", where, 0, INT_MAX, "view."));
        buf.viewOffset =
            getInt(view, "offset", where, 0, Limits::kMaxElements, "view.");
      }
      plan.buffers.push_back(std::move(buf));
    }

    const json &ops = arrayOr(root, "ops", top);
    for (size_t i = 0; i < ops.size(); ++i)
      plan.ops.push_back(parseOp(ops[i], i));
    plan.outputs = getIdList(root, "outputs", top, /*required=*/false);
    return plan;
  }

  Op parseOp(const json &o, size_t index) const {
    Op op;
    std::string where = "ops[" + std::to_string(index) + "]";
    if (!o.is_object())
      fail(where + " must be an object");
    op.id = static_cast<int>(getInt(o, "id", where, 0, INT_MAX));
    where = "op " + std::to_string(op.id);
    op.loc = getStringOr(o, "loc", "", where);
    std::string kind = getString(o, "kind", where);
    auto entry =
        std::find_if(kOpKinds, kOpKinds + kNumOpKinds,
                     [&](const OpKindInfo &e) { return kind == e.name; });
    if (entry == kOpKinds + kNumOpKinds)
      fail(where + ": unknown kind '" + kind + "'");
    op.kind = entry->kind;
    where = op.describe();
    op.inputs = getIdList(o, "inputs", where, /*required=*/true);
    op.outputs = getIdList(o, "outputs", where, /*required=*/true);
    op.deps = getIdList(o, "deps", where, /*required=*/false);
    std::string prio = getStringOr(o, "priority", "normal", where);
    if (prio == "normal")
      op.priority = Priority::Normal;
    else if (prio == "high")
      op.priority = Priority::High;
    else if (prio == "low")
      op.priority = Priority::Low;
    else
      fail(where + ": unknown priority '" + prio + "'");
    op.group = getStringOr(o, "group", "", where);
    op.holdLow = getBoolOr(o, "hold_low", false, where);
    if (find(o, "partition")) {
      const json &p = objectOr(o, "partition", where);
      op.partitionIndex =
          static_cast<int>(getInt(p, "index", where, 0, INT_MAX, "partition."));
      op.partitionCount =
          static_cast<int>(getInt(p, "count", where, 1, INT_MAX, "partition."));
    }
    if (find(o, "chunk")) {
      const json &c = objectOr(o, "chunk", where);
      op.chunkIndex =
          static_cast<int>(getInt(c, "index", where, 0, INT_MAX, "chunk."));
      op.chunkCount =
          static_cast<int>(getInt(c, "count", where, 1, INT_MAX, "chunk."));
    }
    const json &attrs = objectOr(o, "attrs", where);
    const std::string a = "attrs.";
    std::string act = getStringOr(attrs, "activation", "none", where, a);
    if (act == "none")
      op.activation = Activation::None;
    else if (act == "relu")
      op.activation = Activation::Relu;
    else if (act == "gelu")
      op.activation = Activation::Gelu;
    else if (act == "silu")
      op.activation = Activation::Silu;
    else
      fail(where + ": unknown activation '" + act + "'");
    std::string red = getStringOr(attrs, "reduction", "sum", where, a);
    if (red == "sum")
      op.reduction = Reduction::Sum;
    else if (red == "max")
      op.reduction = Reduction::Max;
    else if (red == "min")
      op.reduction = Reduction::Min;
    else if (red == "prod")
      op.reduction = Reduction::Prod;
    else
      fail(where + ": unknown reduction '" + red + "'");
    op.numExperts =
        getIntOr(attrs, "num_experts", 0, where, 0, Limits::kMaxExperts, a);
    op.topK = getIntOr(attrs, "top_k", 0, where, 0, Limits::kMaxExperts, a);
    op.capacityFactor =
        getDoubleOr(attrs, "capacity_factor", 0.0, where, 0.0,
                    static_cast<double>(Limits::kMaxCapacity), a);
    op.capacity =
        getIntOr(attrs, "capacity", -1, where, 1, Limits::kMaxCapacity, a);
    op.maxRows =
        getIntOr(attrs, "max_rows", -1, where, 0, Limits::kMaxElements, a);
    op.sendRows = getIntListOr(attrs, "send_rows", where, 0,
                               Limits::kMaxElements, kMaxListLength, a);
    if (!op.sendRows.empty() && op.kind != OpKind::AllToAllV)
      fail(where + ": field 'attrs.send_rows' belongs to all_to_all_v ops");
    op.splitAxis = getIntOr(attrs, "split_axis", 0, where, 0,
                            Limits::kMaxTensorRank - 1, a);
    op.concatAxis = getIntOr(attrs, "concat_axis", 0, where, 0,
                             Limits::kMaxTensorRank - 1, a);
    op.srcOffsets =
        getIntListOr(attrs, "src_offsets", where, 0, Limits::kMaxElements,
                     Limits::kMaxTensorRank, a);
    op.dstOffsets =
        getIntListOr(attrs, "dst_offsets", where, 0, Limits::kMaxElements,
                     Limits::kMaxTensorRank, a);
    op.sizes = getIntListOr(attrs, "sizes", where, 0, Limits::kMaxElements,
                            Limits::kMaxTensorRank, a);
    op.accumulateInto = getBoolOr(attrs, "accumulate_into", false, where, a);
    if (find(o, "placement"))
      op.placement = parsePlacement(objectOr(o, "placement", where), where);
    return op;
  }

  /// The fields of a placement table; the validator relates them.
  PlacementTable parsePlacement(const json &p, const std::string &where) const {
    const std::string prefix = "placement.";
    PlacementTable t;
    t.numDevices = static_cast<int>(
        getInt(p, "num_devices", where, 1, Limits::kMaxRanks, prefix));
    t.slotsPerDevice = static_cast<int>(
        getInt(p, "slots_per_device", where, 1, Limits::kMaxExperts, prefix));
    t.offsets = getIntList(p, "offsets", where, 0, kMaxListLength,
                           Limits::kMaxExperts + 1, prefix);
    std::vector<int64_t> devices = getIntList(
        p, "devices", where, 0, Limits::kMaxRanks - 1, kMaxListLength, prefix);
    t.devices.assign(devices.begin(), devices.end());
    t.shares = getShareList(p, "shares", where, kMaxListLength, prefix);
    return t;
  }

private:
  /// Inputs, outputs and deps of one op, and plan outputs.
  static constexpr size_t kMaxListLength = size_t(1) << 24;
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
            fail("group '" + name + "' lists rank " + std::to_string(r) +
                 " twice");
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
      std::string where =
          "buffer " + std::to_string(b.id) + " ('" + b.name + "')";
      if (b.id != static_cast<int>(i))
        fail(where + ": buffer ids must be 0, 1, 2... in order");
      for (int64_t d : b.shape)
        if (d < 0)
          fail(where + ": negative dimension in shape " + shapeString(b.shape));
      std::optional<int64_t> elements = checkedProduct(b.shape);
      if (!elements || *elements > Limits::kMaxElements)
        fail(where + ": shape " + shapeString(b.shape) + " has " +
             (elements ? std::to_string(*elements)
                       : std::string("more than 2^63")) +
             " elements; the limit is " + std::to_string(Limits::kMaxElements));
      std::optional<int64_t> bytes = checkedMul(*elements, dtypeBytes(b.dtype));
      if (!bytes || *bytes > Limits::kMaxBytes)
        fail(where + ": shape " + shapeString(b.shape) + " of " +
             toString(b.dtype) + " needs more than " +
             std::to_string(Limits::kMaxBytes) + " bytes (the limit)");
      if (!b.isView()) {
        std::optional<int64_t> sum = checkedAdd(totalBytes, *bytes);
        if (!sum)
          fail("the plan's buffers need more than 2^63 bytes");
        totalBytes = *sum;
      }
      if (b.isView()) {
        if (b.viewBase < 0 ||
            b.viewBase >= static_cast<int>(plan.buffers.size()))
          fail(where + ": view of unknown buffer " +
               std::to_string(b.viewBase));
        const Buffer &base = plan.buffers[b.viewBase];
        if (base.isView())
          fail(where + ": view of a view (buffer " + std::to_string(base.id) +
               "); views must name their base");
        if (base.dtype != b.dtype)
          fail(where + ": dtype differs from its base buffer " +
               std::to_string(base.id));
        if (!rangeWithin(b.viewOffset, *elements, base.numElements()))
          fail(where + ": view of " + std::to_string(*elements) +
               " elements at offset " + std::to_string(b.viewOffset) +
               " does not fit in buffer " + std::to_string(base.id) + " of " +
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
    if (op.placement)
      checkPlacement(op, *op.placement);
  }

  /// A placement table's lists fit together and the gate: one range of
  /// replicas per expert, devices within the table's. What lina-run --mode
  /// infer needs beyond that (shares summing to 1, slots per device) it
  /// checks itself.
  void checkPlacement(const Op &op, const PlacementTable &t) const {
    if (op.kind != OpKind::Gate)
      failOp(op, "only gates carry a placement table");
    if (t.numExperts() != op.numExperts)
      failOp(op, "its placement table has " + std::to_string(t.offsets.size()) +
                     " offsets; a gate of " + std::to_string(op.numExperts) +
                     " experts needs " + std::to_string(op.numExperts + 1));
    if (t.devices.size() != t.shares.size())
      failOp(op, "its placement table has " + std::to_string(t.devices.size()) +
                     " devices but " + std::to_string(t.shares.size()) +
                     " shares");
    if (t.offsets.front() != 0 ||
        t.offsets.back() != static_cast<int64_t>(t.devices.size()))
      failOp(op, "the offsets of its placement table must run from 0 to the "
                 "number of replicas (" +
                     std::to_string(t.devices.size()) + ")");
    for (size_t e = 0; e + 1 < t.offsets.size(); ++e)
      if (t.offsets[e] >= t.offsets[e + 1])
        failOp(op, "expert " + std::to_string(e) +
                       " has no replica in its placement table (offsets must "
                       "increase)");
    for (int d : t.devices)
      if (d >= t.numDevices)
        failOp(op, "its placement table names device " + std::to_string(d) +
                       " of " + std::to_string(t.numDevices));
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
  void checkRouting(const Op &op, int ids,
                    const std::vector<int64_t> &bufShape) {
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

  /// The checks of each op kind (OpKinds.def): arity from the table, then
  /// the kind's own check<Kind>.
  void checkKind(const Op &op) {
    const OpKindInfo &kind = info(op.kind);
    arity(op, kind.inputs, kind.outputs);
    using Check = void (Validator::*)(const Op &);
    static constexpr Check kChecks[] = {
#define LINA_OP_KIND(Kind, name, inputs, outputs, collective, attrs)           \
  &Validator::check##Kind,
#include "lina/rt/OpKinds.def"
    };
    (this->*kChecks[static_cast<int>(op.kind)])(op);
  }

  void checkDense(const Op &op) {
    auto &x = shape(op, true, 0, 2), &w = shape(op, true, 1, 2),
         &y = shape(op, false, 0, 2);
    eq(op, x[1], w[0], "input columns vs weight rows");
    eq(op, y[0], x[0], "result rows vs input rows");
    eq(op, y[1], w[1], "result columns vs weight columns");
  }

  void checkDenseGrad(const Op &op) {
    auto &dy = shape(op, true, 0, 2), &x = shape(op, true, 1, 2),
         &w = shape(op, true, 2, 2);
    eq(op, x[1], w[0], "input columns vs weight rows");
    eq(op, dy[0], x[0], "grad rows vs input rows");
    eq(op, dy[1], w[1], "grad columns vs weight columns");
    sameShape(op, op.outputs[0], op.inputs[1], "input grad vs input");
    sameShape(op, op.outputs[1], op.inputs[2], "weight grad vs weight");
  }

  void checkGate(const Op &op) {
    auto &x = shape(op, true, 0, 2), &w = shape(op, true, 1, 2),
         &ids = shape(op, false, 0, 2), &gw = shape(op, false, 1, 2);
    if (op.numExperts < 1 || op.topK < 1 || op.topK > op.numExperts)
      failOp(op, "needs 1 <= top_k <= num_experts, got top_k=" +
                     std::to_string(op.topK) +
                     " num_experts=" + std::to_string(op.numExperts));
    eq(op, x[1], w[0], "input columns vs router rows");
    eq(op, w[1], op.numExperts, "router columns vs num_experts");
    eq(op, ids[0], x[0], "expert_ids rows vs tokens");
    eq(op, ids[1], op.topK, "expert_ids columns vs top_k");
    eq(op, gw[0], ids[0], "gate_weights rows");
    eq(op, gw[1], ids[1], "gate_weights columns");
    checkDType(op, op.outputs[0], true);
    checkDType(op, op.outputs[1], false);
  }

  void checkGateGrad(const Op &op) {
    auto &dgw = shape(op, true, 0, 2), &x = shape(op, true, 1, 2),
         &w = shape(op, true, 2, 2), &ids = shape(op, true, 3, 2);
    eq(op, x[1], w[0], "input columns vs router rows");
    eq(op, ids[0], x[0], "expert_ids rows vs tokens");
    eq(op, dgw[0], ids[0], "grad rows vs expert_ids rows");
    eq(op, dgw[1], ids[1], "grad columns vs expert_ids columns");
    checkDType(op, op.inputs[3], true);
    sameShape(op, op.outputs[0], op.inputs[1], "input grad vs input");
    sameShape(op, op.outputs[1], op.inputs[2], "weight grad vs weight");
  }

  void checkDispatchOrGrad(const Op &op) {
    bool fwd = op.kind == OpKind::Dispatch;
    auto &tok = fwd ? shape(op, true, 0, 2) : shape(op, false, 0, 2);
    auto &bufShape = fwd ? shape(op, false, 0, 3) : shape(op, true, 0, 3);
    auto &ids = shape(op, true, 1, 2);
    eq(op, ids[0], tok[0], "expert_ids rows vs tokens");
    eq(op, bufShape[2], tok[1], "buffer hidden size vs token hidden size");
    checkDType(op, op.inputs[1], true);
    checkRouting(op, op.inputs[1], bufShape);
  }
  void checkDispatch(const Op &op) { checkDispatchOrGrad(op); }
  void checkDispatchGrad(const Op &op) { checkDispatchOrGrad(op); }

  void checkCombineOrGrad(const Op &op) {
    bool fwd = op.kind == OpKind::Combine;
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
      sameShape(op, op.outputs[1], op.inputs[3],
                "gate weight grad vs gate weights");
    }
  }
  void checkCombine(const Op &op) { checkCombineOrGrad(op); }
  void checkCombineGrad(const Op &op) { checkCombineOrGrad(op); }

  /// The operands in[El,N,H], w1[El,H,F], w2[El,F,H] of expert_ffn, and
  /// (after dy[El,N,H]) of expert_ffn_grad and expert_ffn_grad_input; their
  /// output 0 has the input's shape.
  void checkExpertFfnOrGrad(const Op &op) {
    bool fwd = op.kind == OpKind::ExpertFfn;
    size_t b = fwd ? 0 : 1;
    auto &in = shape(op, true, b, 3), &w1 = shape(op, true, b + 1, 3),
         &w2 = shape(op, true, b + 2, 3);
    eq(op, w1[0], in[0], "w1 experts vs local experts");
    eq(op, w2[0], in[0], "w2 experts vs local experts");
    eq(op, w1[1], in[2], "w1 rows vs hidden size");
    eq(op, w2[1], w1[2], "w2 rows vs w1 columns");
    eq(op, w2[2], in[2], "w2 columns vs hidden size");
    sameShape(op, op.outputs[0], op.inputs[b], "result vs input");
    if (!fwd)
      sameShape(op, op.inputs[0], op.inputs[1], "grad vs input");
  }
  void checkExpertFfn(const Op &op) { checkExpertFfnOrGrad(op); }
  void checkExpertFfnGrad(const Op &op) {
    checkExpertFfnOrGrad(op);
    sameShape(op, op.outputs[1], op.inputs[2], "w1 grad vs w1");
    sameShape(op, op.outputs[2], op.inputs[3], "w2 grad vs w2");
  }

  /// Output `i` of the op, its `what`, has exactly the shape `want`, whose
  /// dimensions `dims` names.
  void outputShape(const Op &op, size_t i, const std::vector<int64_t> &want,
                   const char *what, const char *dims) const {
    const Buffer &b = buf(op, op.outputs[i]);
    if (b.shape != want)
      failOp(op, "output " + std::to_string(i) + " (" + what + ", buffer " +
                     std::to_string(b.id) + ") must have shape " +
                     shapeString(want) + " (" + dims + "), got " +
                     shapeString(b.shape));
  }

  /// dy[El,N,H], in[El,N,H], w1[El,H,F], w2[El,F,H] -> din[El,N,H],
  /// act[El,N,F], dz[El,N,F]: the operands of expert_ffn_grad, and the
  /// activation and pre-activation gradient the weight half reads.
  void checkExpertFfnGradInput(const Op &op) {
    checkExpertFfnOrGrad(op);
    auto &in = shape(op, true, 1, 3), &w1 = shape(op, true, 2, 3);
    std::vector<int64_t> enf = {in[0], in[1], w1[2]};
    outputShape(op, 1, enf, "act", "El x N x F");
    outputShape(op, 2, enf, "dz", "El x N x F");
  }

  /// dy[El,N,H], in[El,N,H], act[El,N,F], dz[El,N,F] -> dw1[El,H,F],
  /// dw2[El,F,H].
  void checkExpertFfnGradWeight(const Op &op) {
    auto &in = shape(op, true, 1, 3), &act = shape(op, true, 2, 3);
    sameShape(op, op.inputs[0], op.inputs[1], "grad vs input");
    eq(op, act[0], in[0], "act experts vs local experts");
    eq(op, act[1], in[1], "act rows vs input rows");
    sameShape(op, op.inputs[3], op.inputs[2], "dz vs act");
    outputShape(op, 0, {in[0], in[2], act[2]}, "w1 grad", "El x H x F");
    outputShape(op, 1, {in[0], act[2], in[2]}, "w2 grad", "El x F x H");
  }

  /// Buffer `id` has buffer `ref`'s dtype.
  void sameDType(const Op &op, int id, int ref, const std::string &what) const {
    DType t = buf(op, id).dtype, want = buf(op, ref).dtype;
    if (t != want)
      failOp(op, what + ": dtypes " + toString(t) + " and " + toString(want) +
                     " differ");
  }

  /// a[El,N,X], b[El,N,Y] -> out[El,X,Y]: out[e] = a[e]ᵀ·b[e], one of the
  /// two GEMMs of expert_ffn_grad_weight (dw1 from in and dz, dw2 from act
  /// and dy).
  void checkExpertWeightGrad(const Op &op) {
    auto &a = shape(op, true, 0, 3), &b = shape(op, true, 1, 3);
    eq(op, b[0], a[0], "b experts vs a experts");
    eq(op, b[1], a[1], "b rows vs a rows");
    checkDType(op, op.inputs[0], false);
    sameDType(op, op.inputs[1], op.inputs[0], "b vs a");
    sameDType(op, op.outputs[0], op.inputs[0], "result vs a");
    outputShape(op, 0, {a[0], a[2], b[2]}, "result", "El x X x Y");
  }

  void checkAdd(const Op &op) {
    sameShape(op, op.inputs[0], op.inputs[1], "operands");
    sameShape(op, op.outputs[0], op.inputs[0], "result vs operands");
  }

  void checkCopy(const Op &op) {
    const Buffer &src = buf(op, op.inputs[0]), &dst = buf(op, op.outputs[0]);
    size_t r = op.sizes.size();
    if (op.srcOffsets.size() != src.shape.size() ||
        op.dstOffsets.size() != dst.shape.size() || src.shape.size() != r ||
        dst.shape.size() != r)
      failOp(op, "copy boxes must have the rank of both buffers");
    if (src.dtype != dst.dtype)
      failOp(op, "copy from " + std::string(toString(src.dtype)) + " to " +
                     toString(dst.dtype));
    for (size_t i = 0; i < r; ++i) {
      std::string dim = " in dimension " + std::to_string(i);
      if (op.sizes[i] < 1)
        failOp(op, "field 'attrs.sizes' is 0" + dim +
                       ": a copy must move at least one element");
      if (!rangeWithin(op.srcOffsets[i], op.sizes[i], src.shape[i]))
        failOp(op, "copy box out of bounds" + dim + ": source offset " +
                       std::to_string(op.srcOffsets[i]) + " + size " +
                       std::to_string(op.sizes[i]) + " exceeds extent " +
                       std::to_string(src.shape[i]));
      if (!rangeWithin(op.dstOffsets[i], op.sizes[i], dst.shape[i]))
        failOp(op, "copy box out of bounds" + dim + ": destination offset " +
                       std::to_string(op.dstOffsets[i]) + " + size " +
                       std::to_string(op.sizes[i]) + " exceeds extent " +
                       std::to_string(dst.shape[i]));
    }
  }

  void checkAllToAll(const Op &op) {
    const Buffer &in = buf(op, op.inputs[0]), &out = buf(op, op.outputs[0]);
    int64_t n =
        plan.groups.count(op.group) ? plan.groups.at(op.group).size() : 1;
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
    std::optional<int64_t> concat = checkedMul(expect[op.concatAxis], n);
    if (!concat)
      failOp(op, "result dimension " + std::to_string(op.concatAxis) +
                     " overflows");
    expect[op.concatAxis] = *concat;
    if (out.shape != expect)
      failOp(op, "result shape " + shapeString(out.shape) + " should be " +
                     shapeString(expect));
    if (in.dtype != out.dtype)
      failOp(op, "input and result dtypes differ");
  }

  void checkAllToAllV(const Op &op) {
    int64_t n =
        plan.groups.count(op.group) ? plan.groups.at(op.group).size() : 1;
    for (int i : {1, 2}) {
      const Buffer &c = buf(op, op.inputs[i]);
      if (c.dtype != DType::I64 || c.shape != std::vector<int64_t>{n})
        failOp(op, "counts must be i64 vectors of the group size " +
                       std::to_string(n));
    }
    const Buffer &in = buf(op, op.inputs[0]), &out = buf(op, op.outputs[0]);
    if (in.shape.empty() || in.shape.size() != out.shape.size() ||
        !std::equal(in.shape.begin() + 1, in.shape.end(),
                    out.shape.begin() + 1))
      failOp(op, "rows of input and result must have the same shape");
    if (in.dtype != out.dtype)
      failOp(op, "input and result dtypes differ");
    if (op.maxRows >= 0)
      eq(op, out.shape[0], op.maxRows, "result rows vs max_rows");
    if (op.sendRows.empty())
      return;
    if (static_cast<int64_t>(op.sendRows.size()) != n * n)
      failOp(op, "send_rows has " + std::to_string(op.sendRows.size()) +
                     " entries; the group of " + std::to_string(n) + " needs " +
                     std::to_string(n * n));
    // Each rank's sends fit its input rows, its receives the result rows.
    for (int64_t i = 0; i < n; ++i) {
      int64_t sent = 0, received = 0;
      for (int64_t j = 0; j < n; ++j) {
        std::optional<int64_t> s = checkedAdd(sent, op.sendRows[i * n + j]);
        std::optional<int64_t> r = checkedAdd(received, op.sendRows[j * n + i]);
        sent = s ? *s : INT64_MAX;
        received = r ? *r : INT64_MAX;
      }
      if (sent > in.shape[0])
        failOp(op, "send_rows: group rank " + std::to_string(i) + " sends " +
                       std::to_string(sent) + " rows; the input has " +
                       std::to_string(in.shape[0]));
      if (received > out.shape[0])
        failOp(op, "send_rows: group rank " + std::to_string(i) + " receives " +
                       std::to_string(received) + " rows; the result has " +
                       std::to_string(out.shape[0]));
    }
  }

  void checkAllReduce(const Op &op) {
    if (buf(op, op.inputs[0]).numElements() !=
        buf(op, op.outputs[0]).numElements())
      failOp(op, "input and result sizes differ");
    if (buf(op, op.inputs[0]).dtype != buf(op, op.outputs[0]).dtype)
      failOp(op, "input and result dtypes differ");
  }

  /// Bytes of the base buffers checked so far.
  int64_t totalBytes = 0;

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

std::string lina::rt::readInputFile(const std::string &path, const char *what) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw PlanError("cannot open " + std::string(what) + " '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad())
    throw PlanError("cannot read " + std::string(what) + " '" + path + "'");
  return text.str();
}

Plan lina::rt::loadPlan(const std::string &path) {
  return parsePlan(readInputFile(path, "plan"), path);
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
       << shapeString(b.shape) << std::setw(7)
       << roles[static_cast<int>(b.role)];
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
