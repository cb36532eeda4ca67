//===- PlanWriter.cpp - A plan as JSON text -------------------------------===//
//
// Part of the Lina project.
//
// The writing half of the plan format (parsePlan in Plan.cpp is the
// reading half). lina-translate builds a Plan and writes it with
// writePlan(); the layout keeps plans diffable: the top-level fields one
// per line, then one compact line per group, buffer and op.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Plan.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <string>

using namespace lina::rt;
/// Objects keep the order their fields are written in.
using Json = nlohmann::ordered_json;

namespace {

std::string dump(const Json &value) {
  // Compact; invalid UTF-8 becomes U+FFFD rather than an exception.
  return value.dump(-1, ' ', /*ensure_ascii=*/false,
                    Json::error_handler_t::replace);
}

/// `value` as a JSON number. Integral values are written as integers
/// ("capacity_factor":1), the others with the shortest text that reads back
/// as the same double.
Json number(double value, const std::string &where, const char *field) {
  if (!std::isfinite(value))
    throw PlanError(where + ": field '" + field + "' is " +
                    std::to_string(value) +
                    "; a plan holds finite numbers only");
  // 2^53: every integer below it is exact in a double and in an int64_t.
  constexpr double kExactIntegers = 9007199254740992.0;
  if (std::trunc(value) == value && std::fabs(value) < kExactIntegers)
    return Json(static_cast<int64_t>(value));
  return Json(value);
}

const char *toString(Role role) {
  switch (role) {
  case Role::Input:
    return "input";
  case Role::Param:
    return "param";
  case Role::Temp:
    return "temp";
  case Role::Output:
    return "output";
  }
  return "?";
}

const char *toString(Init init) {
  switch (init) {
  case Init::Random:
    return "random";
  case Init::Zero:
    return "zero";
  case Init::None:
    return "none";
  }
  return "?";
}

const char *toString(Activation act) {
  switch (act) {
  case Activation::None:
    return "none";
  case Activation::Relu:
    return "relu";
  case Activation::Gelu:
    return "gelu";
  case Activation::Silu:
    return "silu";
  }
  return "?";
}

const char *toString(Reduction red) {
  switch (red) {
  case Reduction::Sum:
    return "sum";
  case Reduction::Max:
    return "max";
  case Reduction::Min:
    return "min";
  case Reduction::Prod:
    return "prod";
  }
  return "?";
}

/// The "attrs" object of `op`, its fields by name.
Json attrsOf(const Op &op, const std::string &where) {
  // An attribute is written when the kind always states it (OpKinds.def)
  // or when it differs from its default.
  const OpKindInfo &kind = info(op.kind);
  auto always = [&](std::string_view attr) { return kind.alwaysStates(attr); };
  Json attrs = Json::object();
  if (op.accumulateInto)
    attrs["accumulate_into"] = true;
  if (always("activation") || op.activation != Activation::None)
    attrs["activation"] = toString(op.activation);
  if (op.capacity >= 0)
    attrs["capacity"] = op.capacity;
  if (always("capacity_factor") || op.capacityFactor != 0)
    attrs["capacity_factor"] =
        number(op.capacityFactor, where, "attrs.capacity_factor");
  if (always("concat_axis") || op.concatAxis != 0)
    attrs["concat_axis"] = op.concatAxis;
  if (always("dst_offsets") || !op.dstOffsets.empty())
    attrs["dst_offsets"] = op.dstOffsets;
  if (op.maxRows >= 0)
    attrs["max_rows"] = op.maxRows;
  if (always("num_experts") || op.numExperts != 0)
    attrs["num_experts"] = op.numExperts;
  if (always("reduction") || op.reduction != Reduction::Sum)
    attrs["reduction"] = toString(op.reduction);
  if (!op.sendRows.empty())
    attrs["send_rows"] = op.sendRows;
  if (always("sizes") || !op.sizes.empty())
    attrs["sizes"] = op.sizes;
  if (always("split_axis") || op.splitAxis != 0)
    attrs["split_axis"] = op.splitAxis;
  if (always("src_offsets") || !op.srcOffsets.empty())
    attrs["src_offsets"] = op.srcOffsets;
  if (always("top_k") || op.topK != 0)
    attrs["top_k"] = op.topK;
  return attrs;
}

/// A placement table, its fields by name.
Json placementOf(const PlacementTable &t, const std::string &where) {
  Json shares = Json::array();
  for (double share : t.shares)
    shares.push_back(number(share, where, "placement.shares"));
  Json p = Json::object();
  p["devices"] = t.devices;
  p["num_devices"] = t.numDevices;
  p["offsets"] = t.offsets;
  p["shares"] = std::move(shares);
  p["slots_per_device"] = t.slotsPerDevice;
  return p;
}

Json indexCount(int index, int count) {
  Json pair = Json::object();
  pair["index"] = index;
  pair["count"] = count;
  return pair;
}

Json bufferOf(const Buffer &b) {
  Json j = Json::object();
  j["id"] = b.id;
  j["name"] = b.name;
  j["dtype"] = toString(b.dtype);
  j["shape"] = b.shape;
  j["role"] = toString(b.role);
  j["init"] = toString(b.init);
  if (b.isView()) {
    Json view = Json::object();
    view["base"] = b.viewBase;
    view["offset"] = b.viewOffset;
    j["view"] = std::move(view);
  }
  return j;
}

Json opOf(const Op &op) {
  std::string where = "op " + std::to_string(op.id);
  Json j = Json::object();
  j["id"] = op.id;
  j["kind"] = toString(op.kind);
  j["inputs"] = op.inputs;
  j["outputs"] = op.outputs;
  j["deps"] = op.deps;
  Json attrs = attrsOf(op, where);
  if (!attrs.empty())
    j["attrs"] = std::move(attrs);
  if (!op.group.empty())
    j["group"] = op.group;
  if (!op.group.empty() || op.priority != Priority::Normal)
    j["priority"] = toString(op.priority);
  if (op.partitionIndex >= 0)
    j["partition"] = indexCount(op.partitionIndex, op.partitionCount);
  if (op.chunkIndex >= 0)
    j["chunk"] = indexCount(op.chunkIndex, op.chunkCount);
  if (op.holdLow)
    j["hold_low"] = true;
  if (!op.loc.empty())
    j["loc"] = op.loc;
  if (op.placement)
    j["placement"] = placementOf(*op.placement, where);
  return j;
}

} // namespace

std::string lina::rt::writePlan(const Plan &plan) {
  std::string out = "{\n";
  auto field = [&](const char *key, const Json &value) {
    out += "  ";
    out += dump(Json(key));
    out += ": ";
    out += dump(value);
    out += ",\n";
  };
  /// "  KEY": OPEN, one indented line per item, CLOSE.
  auto list = [&](const char *key, char open, char close, size_t size,
                  auto &&item) {
    out += "  ";
    out += dump(Json(key));
    out += ": ";
    out += open;
    out += '\n';
    for (size_t i = 0; i < size; ++i) {
      out += "    ";
      out += item(i);
      out += i + 1 < size ? ",\n" : "\n";
    }
    out += "  ";
    out += close;
    out += ",\n";
  };

  field("format", "lina-plan");
  field("version", plan.version);
  field("source", plan.source);
  field("function", plan.function);
  field("mode", plan.mode);
  field("world_size", plan.worldSize);
  if (!plan.gridShape.empty()) {
    Json grid = Json::object();
    grid["shape"] = plan.gridShape;
    field("grid", grid);
  }
  auto group = plan.groups.begin();
  list("groups", '{', '}', plan.groups.size(), [&](size_t) {
    Json members = Json::object();
    members["members"] = group->second.members;
    std::string line = dump(Json(group->first)) + ": " + dump(members);
    ++group;
    return line;
  });
  list("buffers", '[', ']', plan.buffers.size(),
       [&](size_t i) { return dump(bufferOf(plan.buffers[i])); });
  list("ops", '[', ']', plan.ops.size(),
       [&](size_t i) { return dump(opOf(plan.ops[i])); });
  out += "  \"outputs\": ";
  out += dump(Json(plan.outputs));
  out += "\n}\n";
  return out;
}
