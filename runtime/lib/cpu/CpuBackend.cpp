//===- CpuBackend.cpp - Plan execution on CPUs with MPI ranks -------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/CpuBackend.h"
#include "lina/rt/Init.h"
#include "lina/rt/Kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#ifdef LINA_HAVE_MPI
#include "MpiComm.h"
#else
namespace lina::rt {
/// Built without MPI: never instantiated (plans whose groups all have one
/// rank need no communicator), but unique_ptr needs a complete type.
class MpiComm {};
} // namespace lina::rt
#endif

using namespace lina::rt;

namespace {
int groupSize(const Plan &plan, const Op &op) {
  return plan.groups.at(op.group).size();
}
} // namespace

CpuBackend::CpuBackend(const Plan &plan, int rank, double timeoutSeconds)
    : plan(plan), rank(rank), timeout(timeoutSeconds),
      epoch(std::chrono::steady_clock::now()) {
  // Every rank of a multi-rank plan joins the communicator set-up, even
  // one whose own ops need no collective, so that no rank waits alone.
  bool needsComm = plan.worldSize > 1;
  int gates = 0;
  for (const Op &op : plan.ops) {
    if (op.isCollective() && groupSize(plan, op) > 1)
      needsComm = true;
    gateOrdinal.push_back(op.kind == OpKind::Gate ? gates++ : -1);
  }
  if (needsComm) {
#ifdef LINA_HAVE_MPI
    comm = std::make_unique<MpiComm>(plan, rank, timeout);
#else
    throw PlanError(
        "this plan has collectives over several ranks, but lina-run "
        "was built without MPI");
#endif
  }
}

CpuBackend::~CpuBackend() = default;

double CpuBackend::now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch)
      .count();
}

char *CpuBackend::data(int id) {
  const Buffer &b = plan.buffers[id];
  if (b.isView())
    return storage[b.viewBase].data() + b.viewOffset * dtypeBytes(b.dtype);
  return storage[id].data();
}

const char *CpuBackend::data(int id) const {
  return const_cast<CpuBackend *>(this)->data(id);
}

void CpuBackend::initialize(uint64_t seed) {
  for (const Buffer &b : plan.buffers)
    if (b.dtype == DType::BF16 || b.dtype == DType::F16)
      throw PlanError("buffer " + std::to_string(b.id) + " ('" + b.name +
                      "') is " + toString(b.dtype) +
                      "; the cpu backend computes in f32 (compile the model "
                      "with f32, or use the cuda backend)");
  storage.assign(plan.buffers.size(), {});
  for (const Buffer &b : plan.buffers)
    if (!b.isView())
      storage[b.id].assign(static_cast<size_t>(b.numBytes()), 0);
  for (const Buffer &b : plan.buffers) {
    if (b.isView() || b.init != Init::Random)
      continue;
    if (b.dtype == DType::F32)
      fillRandom(b, rank, seed, reinterpret_cast<float *>(data(b.id)));
  }
#ifdef LINA_HAVE_MPI
  if (comm)
    comm->attach([this](int id) { return data(id); });
#endif
}

void CpuBackend::write(int id, const std::vector<char> &bytes) {
  const Buffer &b = plan.buffer(id);
  if (static_cast<int64_t>(bytes.size()) != b.numBytes())
    throw PlanError("buffer " + std::to_string(id) + " ('" + b.name +
                    "') holds " + std::to_string(b.numBytes()) +
                    " bytes, not " + std::to_string(bytes.size()));
  if (!bytes.empty())
    std::memcpy(data(id), bytes.data(), bytes.size());
}

std::vector<float> CpuBackend::read(int id) const {
  const Buffer &b = plan.buffers[id];
  int64_t n = b.numElements();
  std::vector<float> out(n);
  const char *p = data(id);
  for (int64_t i = 0; i < n; ++i) {
    switch (b.dtype) {
    case DType::F32:
      out[i] = reinterpret_cast<const float *>(p)[i];
      break;
    case DType::I32:
      out[i] = static_cast<float>(reinterpret_cast<const int32_t *>(p)[i]);
      break;
    case DType::I64:
      out[i] = static_cast<float>(reinterpret_cast<const int64_t *>(p)[i]);
      break;
    default:
      out[i] = 0;
      break;
    }
  }
  return out;
}

void CpuBackend::start(const Op &op) {
  if (!op.isCollective()) {
    try {
      runCompute(op);
    } catch (const PlanError &e) {
      throw PlanError("rank " + std::to_string(rank) + ": " + op.describe() +
                      ": " + e.what());
    }
    completedLocally.push_back(op.id);
    return;
  }
  if (groupSize(plan, op) == 1) {
    runLocalCollective(op);
    completedLocally.push_back(op.id);
    return;
  }
#ifdef LINA_HAVE_MPI
  comm->start(op);
#endif
}

std::vector<int> CpuBackend::waitAny() {
  if (!completedLocally.empty()) {
    std::vector<int> done;
    done.swap(completedLocally);
    return done;
  }
#ifdef LINA_HAVE_MPI
  if (comm)
    return comm->waitAny();
#endif
  throw PlanError("cpu backend: waiting with nothing in flight");
}

void CpuBackend::runLocalCollective(const Op &op) {
  const Buffer &in = plan.buffers[op.inputs[0]];
  const Buffer &out = plan.buffers[op.outputs[0]];
  if (op.kind == OpKind::AllToAllV) {
    int64_t rows = reinterpret_cast<const int64_t *>(data(op.inputs[1]))[0];
    int64_t recvRows = reinterpret_cast<const int64_t *>(data(op.inputs[2]))[0];
    int64_t rowBytes = in.numBytes() / std::max<int64_t>(1, in.shape[0]);
    if (rows != recvRows || rows > out.shape[0] || rows > in.shape[0])
      throw PlanError(op.describe() + ": inconsistent counts for one rank");
    std::memset(data(out.id), 0, out.numBytes());
    std::memmove(data(out.id), data(in.id), rows * rowBytes);
    return;
  }
  if (data(out.id) != data(in.id))
    std::memmove(data(out.id), data(in.id), in.numBytes());
}

/// The buffers of one op, typed as its kernels read them.
struct CpuBackend::OpArgs {
  OpArgs(CpuBackend &backend, const Op &op) : backend(backend), op(op) {}
  float *f(int i) {
    return reinterpret_cast<float *>(backend.data(op.inputs[i]));
  }
  float *o(int i) {
    return reinterpret_cast<float *>(backend.data(op.outputs[i]));
  }
  const int32_t *ids(int i) {
    return reinterpret_cast<const int32_t *>(backend.data(op.inputs[i]));
  }
  const std::vector<int64_t> &shape(bool input, int i) const {
    return backend.plan.buffers[input ? op.inputs[i] : op.outputs[i]].shape;
  }
  void checkIds(int i) const {
    if (backend.plan.buffers[op.inputs[i]].dtype != DType::I32)
      throw PlanError("expert ids must be i32 on the cpu backend");
  }
  CpuBackend &backend;
  const Op &op;
};

void CpuBackend::runCompute(const Op &op) {
  // One kernel per compute kind of OpKinds.def; collectives have none here.
  using Kernel = void (CpuBackend::*)(const Op &);
  static constexpr Kernel kKernels[] = {
#define LINA_COMPUTE_OP_KIND(Kind, name, inputs, outputs, attrs)               \
  &CpuBackend::run##Kind,
#define LINA_COLLECTIVE_OP_KIND(Kind, name, inputs, outputs, attrs) nullptr,
#include "lina/rt/OpKinds.def"
  };
  Kernel kernel = kKernels[static_cast<int>(op.kind)];
  if (!kernel)
    throw PlanError(op.describe() + ": not a compute op");
  (this->*kernel)(op);
}

void CpuBackend::runDense(const Op &op) {
  OpArgs a(*this, op);
  auto &x = a.shape(true, 0), &w = a.shape(true, 1);
  cpu::dense(a.f(0), a.f(1), a.o(0), x[0], x[1], w[1], op.activation);
}

void CpuBackend::runDenseGrad(const Op &op) {
  OpArgs a(*this, op);
  auto &x = a.shape(true, 1), &w = a.shape(true, 2);
  cpu::denseGrad(a.f(0), a.f(1), a.f(2), a.o(0), a.o(1), x[0], x[1], w[1],
                 op.activation);
}

void CpuBackend::runGate(const Op &op) {
  OpArgs a(*this, op);
  auto &x = a.shape(true, 0);
  if (plan.buffers[op.outputs[0]].dtype != DType::I32)
    throw PlanError("expert ids must be i32 on the cpu backend");
  int32_t *outIds = reinterpret_cast<int32_t *>(a.o(0));
  size_t n = static_cast<size_t>(x[0] * op.topK);
  if (!routingPin) {
    cpu::gate(a.f(0), a.f(1), outIds, a.o(1), x[0], x[1], op.numExperts,
              op.topK);
    return;
  }
  size_t ordinal = static_cast<size_t>(gateOrdinal[op.id]);
  std::vector<std::vector<int32_t>> &gates = routingPin->gates;
  if (routingPin->mode == RoutingPin::Mode::Record) {
    cpu::gate(a.f(0), a.f(1), outIds, a.o(1), x[0], x[1], op.numExperts,
              op.topK);
    if (gates.size() <= ordinal)
      gates.resize(ordinal + 1);
    gates[ordinal].assign(outIds, outIds + n);
    return;
  }
  if (ordinal >= gates.size() || gates[ordinal].size() != n)
    throw PlanError("--check cannot impose the baseline's routing: gate " +
                    std::to_string(ordinal) + " routes " + std::to_string(n) +
                    " choices here but " +
                    (ordinal < gates.size()
                         ? std::to_string(gates[ordinal].size())
                         : std::string("none")) +
                    " in the baseline (use --no-pin-routing)");
  routingPin->flipped +=
      cpu::gatePinned(a.f(0), a.f(1), gates[ordinal].data(), outIds, a.o(1),
                      x[0], x[1], op.numExperts, op.topK);
  routingPin->decisions += x[0];
}

void CpuBackend::runGateGrad(const Op &op) {
  OpArgs a(*this, op);
  auto &x = a.shape(true, 1), &w = a.shape(true, 2), &id = a.shape(true, 3);
  a.checkIds(3);
  cpu::gateGrad(a.f(0), a.f(1), a.f(2), a.ids(3), a.o(0), a.o(1), x[0], x[1],
                w[1], id[1]);
}

void CpuBackend::runDispatch(const Op &op) {
  OpArgs a(*this, op);
  auto &x = a.shape(true, 0), &id = a.shape(true, 1), &b = a.shape(false, 0);
  a.checkIds(1);
  cpu::dispatch(a.f(0), a.ids(1), a.o(0), x[0], id[1], x[1], b[0], b[1]);
}

void CpuBackend::runDispatchGrad(const Op &op) {
  OpArgs a(*this, op);
  auto &b = a.shape(true, 0), &id = a.shape(true, 1), &x = a.shape(false, 0);
  a.checkIds(1);
  cpu::dispatchGrad(a.f(0), a.ids(1), a.o(0), x[0], id[1], x[1], b[0], b[1]);
}

void CpuBackend::runCombine(const Op &op) {
  OpArgs a(*this, op);
  auto &b = a.shape(true, 0), &id = a.shape(true, 1), &y = a.shape(false, 0);
  a.checkIds(1);
  cpu::combine(a.f(0), a.ids(1), a.f(2), a.o(0), y[0], id[1], y[1], b[0], b[1]);
}

void CpuBackend::runCombineGrad(const Op &op) {
  OpArgs a(*this, op);
  auto &dy = a.shape(true, 0), &b = a.shape(true, 1), &id = a.shape(true, 2);
  a.checkIds(2);
  cpu::combineGrad(a.f(0), a.f(1), a.ids(2), a.f(3), a.o(0), a.o(1), dy[0],
                   id[1], dy[1], b[0], b[1]);
}

void CpuBackend::runExpertFfn(const Op &op) {
  OpArgs a(*this, op);
  cpu::RowwiseGemmScope rowwise(rowwiseExperts);
  auto &in = a.shape(true, 0), &w1 = a.shape(true, 1);
  cpu::expertFfn(a.f(0), a.f(1), a.f(2), a.o(0), in[0], in[1], in[2], w1[2],
                 op.activation);
}

void CpuBackend::runExpertFfnGrad(const Op &op) {
  OpArgs a(*this, op);
  cpu::RowwiseGemmScope rowwise(rowwiseExperts);
  auto &in = a.shape(true, 1), &w1 = a.shape(true, 2);
  cpu::expertFfnGrad(a.f(0), a.f(1), a.f(2), a.f(3), a.o(0), a.o(1), a.o(2),
                     in[0], in[1], in[2], w1[2], op.activation);
}

void CpuBackend::runExpertFfnGradInput(const Op &op) {
  OpArgs a(*this, op);
  cpu::RowwiseGemmScope rowwise(rowwiseExperts);
  auto &in = a.shape(true, 1), &w1 = a.shape(true, 2);
  cpu::expertFfnGradInput(a.f(0), a.f(1), a.f(2), a.f(3), a.o(0), a.o(1),
                          a.o(2), in[0], in[1], in[2], w1[2], op.activation);
}

void CpuBackend::runExpertFfnGradWeight(const Op &op) {
  OpArgs a(*this, op);
  cpu::RowwiseGemmScope rowwise(rowwiseExperts);
  auto &in = a.shape(true, 1), &act = a.shape(true, 2);
  cpu::expertFfnGradWeight(a.f(0), a.f(1), a.f(2), a.f(3), a.o(0), a.o(1),
                           in[0], in[1], in[2], act[2]);
}

void CpuBackend::runExpertWeightGrad(const Op &op) {
  OpArgs a(*this, op);
  cpu::RowwiseGemmScope rowwise(rowwiseExperts);
  auto &x = a.shape(true, 0), &y = a.shape(true, 1);
  cpu::expertWeightGrad(a.f(0), a.f(1), a.o(0), x[0], x[1], x[2], y[2]);
}

void CpuBackend::runAdd(const Op &op) {
  OpArgs args(*this, op);
  int64_t n = plan.buffers[op.outputs[0]].numElements();
  const float *a = args.f(0), *b = args.f(1);
  float *y = args.o(0);
  for (int64_t i = 0; i < n; ++i)
    y[i] = a[i] + b[i];
}

void CpuBackend::runCopy(const Op &op) {
  const Buffer &src = plan.buffers[op.inputs[0]];
  const Buffer &dst = plan.buffers[op.outputs[0]];
  cpu::copyBox(data(src.id), src.shape, op.srcOffsets, data(dst.id), dst.shape,
               op.dstOffsets, op.sizes, dtypeBytes(src.dtype));
}
