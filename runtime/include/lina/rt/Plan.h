//===- Plan.h - The executable plan: buffers, ops, groups -------*- C++ -*-===//
//
// Part of the Lina project.
//
// A plan is what lina-translate emits from scheduled IR and what every
// backend executes: one SPMD program (ops in program order over buffers)
// plus the rank lists of its parallel groups. These structs are the one
// definition of the format (documented in docs/PLAN.md): the emitter builds
// a Plan and writes it with writePlan(); parsePlan()/loadPlan() read it
// back, validate all of it and reject a bad plan with a message naming the
// offending op before anything runs.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_PLAN_H
#define LINA_RT_PLAN_H

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lina::rt {

/// Error in a plan (or in its use). The message names the op or buffer.
class PlanError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

enum class DType { F32, BF16, F16, I32, I64 };
enum class Role { Input, Param, Temp, Output };
enum class Init { Random, Zero, None };
enum class Priority { Normal, High, Low };

/// The op kinds of a plan, from the one list in OpKinds.def.
enum class OpKind {
#define LINA_OP_KIND(Kind, name, inputs, outputs, collective, attrs) Kind,
#include "lina/rt/OpKinds.def"
};

/// What OpKinds.def says of an op kind.
struct OpKindInfo {
  OpKind kind;
  const char *name;        ///< the plan format's "kind" string
  const char *inputRoles;  ///< one letter per input (OpKinds.def)
  const char *outputRoles; ///< one letter per output
  int inputs, outputs;
  bool collective;
  /// The attributes the plan always states for this kind, separated by
  /// spaces (OpKinds.def).
  const char *statedAttrs;

  /// Whether `attr` is one of statedAttrs.
  bool alwaysStates(std::string_view attr) const;
};

/// Every op kind, in the order of OpKinds.def (indexed by the enumerator).
extern const OpKindInfo kOpKinds[];
inline constexpr int kNumOpKinds = 0
#define LINA_OP_KIND(Kind, name, inputs, outputs, collective, attrs) +1
#include "lina/rt/OpKinds.def"
    ;
inline const OpKindInfo &info(OpKind kind) {
  return kOpKinds[static_cast<int>(kind)];
}

enum class Activation { None, Relu, Gelu, Silu };
enum class Reduction { Sum, Max, Min, Prod };

const char *toString(OpKind kind);
const char *toString(DType type);
const char *toString(Priority priority);
int64_t dtypeBytes(DType type);

struct Buffer {
  int id = 0;
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  Role role = Role::Temp;
  Init init = Init::None;
  int viewBase = -1;      ///< base buffer id if this is a view, else -1
  int64_t viewOffset = 0; ///< element offset into the base

  /// Element and byte counts; throw PlanError on overflow (a validated plan
  /// keeps them within lina::Limits).
  int64_t numElements() const;
  int64_t numBytes() const;
  bool isView() const { return viewBase >= 0; }
};

/// A gate's expert placement table (docs/PLAN.md#placement-tables): expert
/// e's replicas are entries offsets[e] .. offsets[e+1]-1 of the parallel
/// lists `devices` (ranks of the layer's expert-parallel group) and `shares`
/// (the share of the expert's tokens each replica serves).
struct PlacementTable {
  int numDevices = 0;
  int slotsPerDevice = 0;
  std::vector<int64_t> offsets; ///< one per expert, plus the end
  std::vector<int> devices;
  std::vector<double> shares;

  int64_t numExperts() const {
    return offsets.empty() ? 0 : static_cast<int64_t>(offsets.size()) - 1;
  }
};

struct Op {
  int id = 0;
  OpKind kind = OpKind::Add;
  std::vector<int> inputs;
  std::vector<int> outputs;
  std::vector<int> deps; ///< explicit dependencies (earlier op ids)
  Priority priority = Priority::Normal;
  std::string group; ///< collectives only
  bool holdLow = false;
  int partitionIndex = -1, partitionCount = 0;
  int chunkIndex = -1, chunkCount = 0;
  std::string loc;

  // Kind-specific attributes.
  Activation activation = Activation::None;
  Reduction reduction = Reduction::Sum;
  int64_t numExperts = 0, topK = 0;
  double capacityFactor = 0;
  int64_t capacity = -1; ///< dispatch/combine and grads: -1 if not given
  int64_t maxRows = -1;  ///< all_to_all_v: -1 if not given
  /// all_to_all_v: the rows each group rank sends to each, n x n row-major
  /// by sender, when they were known as the plan was built (a step plan of
  /// --mode infer); empty if not given. The simulator moves these rows;
  /// the real backends move what the count buffers hold at run time.
  std::vector<int64_t> sendRows;
  int64_t splitAxis = 0, concatAxis = 0;
  std::vector<int64_t> srcOffsets, dstOffsets, sizes; ///< copy boxes
  /// copy: one of several copies that assemble their destination
  /// (informational).
  bool accumulateInto = false;
  /// gate: the layer's expert placement table, if the plan has one.
  std::optional<PlacementTable> placement;

  bool isCollective() const { return info(kind).collective; }
  /// The buffers of this op with role `role` of OpKinds.def, inputs first.
  std::vector<int> buffersWithRole(char role) const;
  /// "op 12 (all_to_all at model.mlir:3:5)".
  std::string describe() const;
};

struct Group {
  std::string name;
  std::vector<std::vector<int>> members; ///< a partition of the ranks
  /// The members list containing `rank`, and the rank's index in it.
  const std::vector<int> &instanceOf(int rank, int *indexInGroup) const;
  int size() const {
    return members.empty() ? 0 : static_cast<int>(members[0].size());
  }
};

struct Plan {
  int version = 1;
  std::string source, function, mode = "train";
  int worldSize = 1;
  std::vector<int64_t> gridShape; ///< empty if the plan has no grid
  std::map<std::string, Group> groups;
  std::vector<Buffer> buffers;
  std::vector<Op> ops;
  std::vector<int> outputs;

  /// Producer op of each buffer id (-1 for inputs/params).
  std::vector<int> producers;
  /// Bytes a collective moves from this rank (its input size).
  int64_t collectiveBytes(const Op &op) const;
  const Buffer &buffer(int id) const { return buffers.at(id); }
  /// Bytes a backend allocates for the plan on one rank: the sum of its
  /// base (non-view) buffers. Throws PlanError on overflow.
  int64_t allocatedBytes() const;
};

/// Current plan format version.
constexpr int kPlanVersion = 1;

/// Parses and validates a plan; throws PlanError naming the problem.
Plan loadPlan(const std::string &path);
/// The bytes of input file `path`; throws PlanError "cannot open WHAT
/// 'PATH'" or "cannot read WHAT 'PATH'".
std::string readInputFile(const std::string &path, const char *what);
Plan parsePlan(const std::string &text, const std::string &origin = "plan");
/// Human-readable table of groups, buffers and ops.
std::string dumpPlan(const Plan &plan);

/// The plan as JSON text in the layout lina-translate writes: the top-level
/// fields one per line, then one line per group, buffer and op, each
/// compact, with fields in the order of docs/PLAN.md ("attrs" and
/// "placement" by name). A field is written when the format needs it or
/// it differs from its default, so parsePlan(writePlan(p)) == p for every
/// plan p that parsePlan accepts. Numbers keep their value exactly (an
/// integral double is written as an integer). Throws PlanError if a number
/// is not finite (JSON has no infinities or NaNs); invalid UTF-8 in a
/// string is replaced by U+FFFD. It does not validate the plan otherwise.
std::string writePlan(const Plan &plan);

/// Field-by-field equality of what the plan format holds (Plan::producers,
/// which the loader derives, is not compared).
bool operator==(const PlacementTable &a, const PlacementTable &b);
bool operator==(const Buffer &a, const Buffer &b);
bool operator==(const Op &a, const Op &b);
bool operator==(const Group &a, const Group &b);
bool operator==(const Plan &a, const Plan &b);
inline bool operator!=(const Plan &a, const Plan &b) { return !(a == b); }

} // namespace lina::rt

#endif // LINA_RT_PLAN_H
