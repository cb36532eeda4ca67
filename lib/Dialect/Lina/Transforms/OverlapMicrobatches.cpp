//===- OverlapMicrobatches.cpp - Interleave micro-batches at all_to_all ---===//
//
// Part of the Lina project.
//
/// Splits a step's tokens into M micro-batches and interleaves their
/// computations so that one micro-batch's all_to_all is in flight while
/// another computes (the two-micro-batch overlap of DeepSeek's DualPipe and
/// of SGLang/vLLM's two-batch overlap, here decided by the compiler).
///
/// Every value that carries tokens (its dimension 0 is the token dimension,
/// or it is a dispatch buffer derived from such a value) is computed M times,
/// once per micro-batch of T/M tokens: the token arguments are sliced with
/// `tensor.extract_slice`, each op that reads a token value is cloned per
/// micro-batch with its result types recomputed, and token results are
/// reassembled with `tensor.concat`. Weight gradients (the second result
/// of dense_grad and gate_grad, the last two of expert_ffn_grad) are sums
/// over tokens: the micro-batches' partial gradients are added with
/// `arith.addf` where the gradient is first used. Ops that read no token
/// value (the gradient all_reduce ops) are kept once.
///
/// Order: each micro-batch's ops are cut into segments that end with an
/// all_to_all, and the segments are issued round-robin: segment i of
/// micro-batch 0, of micro-batch 1, ..., then segment i + 1. While the
/// all_to_all that ends a segment is in flight, the next micro-batch's
/// segment computes. The order is a function of the IR alone, so every
/// rank issues the same collectives in the same order.
///
/// What changes: every op is row-wise in the tokens except the gate's
/// capacity, which is per micro-batch (max(1, ceil(T/M * top_k / experts *
/// capacity_factor)) rows per expert), as in any micro-batched training.
/// When no expert overflows its capacity, the results equal the unsplit
/// step's up to floating-point reassociation of the weight gradients.
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/TypeSwitch.h"

#include <queue>

namespace mlir::lina {
#define GEN_PASS_DEF_LINAOVERLAPMICROBATCHESPASS
#include "lina/Dialect/Lina/Transforms/Passes.h.inc"
} // namespace mlir::lina

using namespace mlir;
using namespace mlir::lina;

namespace {

/// Operand positions that hold tokens along dimension 0 ([tokens, ...]).
bool isTokenOperand(Operation *op, unsigned index) {
  return llvm::TypeSwitch<Operation *, bool>(op)
      .Case([&](DenseOp) { return index == 0; })
      .Case([&](DenseGradOp) { return index <= 1; })
      .Case([&](GateOp) { return index == 0; })
      .Case([&](GateGradOp) { return index != 2; })
      .Case([&](DispatchOp) { return true; })
      .Case([&](DispatchGradOp) { return index == 1; })
      .Case([&](CombineOp) { return index >= 1; })
      .Case([&](CombineGradOp) { return index != 1; })
      .Default([](Operation *) { return false; });
}

/// Result positions that are sums over the tokens (weight gradients).
bool isReducedResult(Operation *op, unsigned index) {
  return llvm::TypeSwitch<Operation *, bool>(op)
      .Case([&](DenseGradOp) { return index == 1; })
      .Case([&](GateGradOp) { return index == 1; })
      .Case([&](ExpertFfnGradOp) { return index >= 1; })
      .Default([](Operation *) { return false; });
}

/// Result positions with tokens along dimension 0.
bool isTokenResult(Operation *op, unsigned index) {
  return llvm::TypeSwitch<Operation *, bool>(op)
      .Case<DenseOp, GateOp, CombineOp, DispatchGradOp, arith::AddFOp,
            tensor::ExtractSliceOp, tensor::ConcatOp>(
          [](Operation *) { return true; })
      .Case<DenseGradOp, GateGradOp>([&](Operation *) { return index == 0; })
      .Case([&](CombineGradOp) { return index == 1; })
      .Default([](Operation *) { return false; });
}

RankedTensorType withDim0(Type type, int64_t size) {
  auto t = cast<RankedTensorType>(type);
  SmallVector<int64_t> shape(t.getShape());
  shape[0] = size;
  return RankedTensorType::get(shape, t.getElementType());
}

int64_t dim0(Value v) {
  return cast<RankedTensorType>(v.getType()).getDimSize(0);
}

/// The result types of `clone`, a per-micro-batch copy of `orig` whose
/// operands are already the micro-batch's. Fails (with an error on `orig`)
/// for ops it cannot split.
FailureOr<SmallVector<Type>>
cloneResultTypes(Operation *orig, Operation *clone,
                 const llvm::DenseSet<Value> &tokenMajor) {
  auto operandType = [&](unsigned i) { return clone->getOperand(i).getType(); };
  auto old = [&](unsigned i) { return orig->getResult(i).getType(); };
  SmallVector<Type> types;
  bool ok = true;
  StringRef reason =
      "only lina compute ops, uniform all_to_all and arith.addf can be split";
  llvm::TypeSwitch<Operation *>(orig)
      .Case([&](DenseOp) {
        types = {withDim0(old(0), dim0(clone->getOperand(0)))};
      })
      .Case([&](arith::AddFOp) {
        if (operandType(0) != operandType(1)) {
          ok = false;
          reason = "it adds a token value to a value that is not split the "
                   "same way";
        }
        types = {operandType(0)};
      })
      .Case([&](GateOp) {
        int64_t tokens = dim0(clone->getOperand(0));
        types = {withDim0(old(0), tokens), withDim0(old(1), tokens)};
      })
      .Case([&](DispatchOp) {
        auto gate = clone->getOperand(1).getDefiningOp<GateOp>();
        if (!gate) {
          ok = false;
          reason = "its expert ids do not come from a lina.gate of the "
                   "function, so its per-micro-batch capacity is unknown";
          return;
        }
        auto t = cast<RankedTensorType>(old(0));
        types = {RankedTensorType::get(
            {t.getDimSize(0), gate.getCapacity(), t.getDimSize(2)},
            t.getElementType())};
      })
      .Case([&](AllToAllOp a2a) {
        if (a2a.isVariable()) {
          ok = false;
          reason = "the counts of a variable all_to_all are not split";
          return;
        }
        auto in = cast<RankedTensorType>(orig->getOperand(0).getType());
        auto out = cast<RankedTensorType>(old(0));
        auto newIn = cast<RankedTensorType>(operandType(0));
        SmallVector<int64_t> shape(newIn.getShape());
        uint64_t split = a2a.getSplitAxis(), concat = a2a.getConcatAxis();
        if (split != concat) {
          int64_t n = out.getDimSize(concat) / in.getDimSize(concat);
          if (n < 1 || shape[split] % n) {
            ok = false;
            reason = "its split axis does not divide over the group";
            return;
          }
          shape[split] /= n;
          shape[concat] *= n;
        }
        types = {RankedTensorType::get(shape, out.getElementType())};
      })
      .Case([&](ExpertFfnOp) { types = {operandType(0)}; })
      .Case([&](CombineOp) {
        types = {withDim0(old(0), dim0(clone->getOperand(1)))};
      })
      .Case([&](CombineGradOp) { types = {operandType(1), operandType(3)}; })
      .Case([&](ExpertFfnGradOp) { types = {operandType(0), old(1), old(2)}; })
      .Case([&](DispatchGradOp) {
        types = {withDim0(old(0), dim0(clone->getOperand(1)))};
      })
      .Case([&](GateGradOp) { types = {operandType(1), old(1)}; })
      .Case([&](DenseGradOp) { types = {operandType(1), old(1)}; })
      .Case([&](tensor::ExtractSliceOp slice) {
        // A slice of the columns of a token value (lina-import's Q/K/V
        // split): all of dimension 0, static, not rank-reducing.
        if (!tokenMajor.contains(slice.getSource())) {
          ok = false;
          reason = "only slices of values with tokens along dimension 0 "
                   "can be split";
          return;
        }
        auto source = slice.getSourceType();
        ArrayRef<int64_t> offsets = slice.getStaticOffsets(),
                          sizes = slice.getStaticSizes();
        if (!slice.getOffsets().empty() || !slice.getSizes().empty() ||
            offsets[0] != 0 || sizes[0] != source.getDimSize(0) ||
            slice.getResultType().getRank() != source.getRank()) {
          ok = false;
          reason = "only static slices that keep every token (all of "
                   "dimension 0) can be split";
          return;
        }
        int64_t tokens = dim0(clone->getOperand(0));
        SmallVector<int64_t> newSizes(sizes);
        newSizes[0] = tokens;
        cast<tensor::ExtractSliceOp>(clone).setStaticSizes(newSizes);
        types = {withDim0(old(0), tokens)};
      })
      .Case([&](tensor::ConcatOp concat) {
        // Columns joined to a token value; a splat constant among them
        // (zero gradients of lina-import) is remade at the micro-batch's
        // size.
        if (concat.getDim() == 0) {
          ok = false;
          reason = "a concatenation along the tokens cannot be split";
          return;
        }
        // Operands the clone reads as they were are not split (constants,
        // or an error below); the split ones must carry tokens.
        for (auto [v, mapped] :
             llvm::zip(concat.getOperands(), clone->getOperands()))
          if (v != mapped && !tokenMajor.contains(v)) {
            ok = false;
            reason = "only values with tokens along dimension 0 can be "
                     "concatenated";
            return;
          }
        int64_t tokens = -1;
        for (Value v : clone->getOperands())
          if (v.getDefiningOp<arith::ConstantOp>() == nullptr)
            tokens = dim0(v);
        OpBuilder cb(clone);
        for (OpOperand &operand : clone->getOpOperands()) {
          if (tokens < 0 || dim0(operand.get()) == tokens)
            continue;
          auto cst = operand.get().getDefiningOp<arith::ConstantOp>();
          auto splat = cst ? dyn_cast<SplatElementsAttr>(cst.getValue())
                           : SplatElementsAttr();
          if (!splat) {
            ok = false;
            reason = "only splat constants can be joined to token values";
            return;
          }
          RankedTensorType type = withDim0(operand.get().getType(), tokens);
          operand.set(cb.create<arith::ConstantOp>(
              cst.getLoc(), type,
              SplatElementsAttr::get(type, splat.getSplatValue<Attribute>())));
        }
        if (tokens < 0) {
          ok = false;
          return;
        }
        types = {withDim0(old(0), tokens)};
      })
      .Default([&](Operation *) { ok = false; });
  if (!ok || types.size() != orig->getNumResults()) {
    orig->emitOpError()
        << "reads a token value but cannot be split into micro-batches: "
        << reason;
    return failure();
  }
  return types;
}

struct OverlapMicrobatchesPass
    : public mlir::lina::impl::LinaOverlapMicrobatchesPassBase<
          OverlapMicrobatchesPass> {
  using Base::Base;

  void runOnOperation() override;
};

void OverlapMicrobatchesPass::runOnOperation() {
  func::FuncOp func = getOperation();
  const int64_t M = microbatches;
  if (M < 1) {
    func.emitError() << "invalid value " << M
                     << " for option 'microbatches': must be positive";
    return signalPassFailure();
  }
  if (M == 1 || func.isExternal())
    return;
  if (!func.getBody().hasOneBlock()) {
    func.emitError() << "microbatches=" << M
                     << " needs a function with one block";
    return signalPassFailure();
  }
  Block &block = func.getBody().front();
  Operation *terminator = block.getTerminator();

  // Which values carry tokens. Arguments: those read as tokens by some op,
  // then those added to a token value.
  llvm::DenseSet<Value> split, reduced, tokenMajor;
  for (BlockArgument arg : block.getArguments())
    for (OpOperand &use : arg.getUses())
      if (isTokenOperand(use.getOwner(), use.getOperandNumber()))
        split.insert(arg);
  for (bool changed = true; changed;) {
    changed = false;
    for (Operation &op : block.without_terminator()) {
      bool anySplit = llvm::any_of(op.getOperands(),
                                   [&](Value v) { return split.contains(v); });
      if (anySplit)
        for (unsigned i = 0; i < op.getNumResults(); ++i)
          changed |= (isReducedResult(&op, i) ? reduced : split)
                         .insert(op.getResult(i))
                         .second;
      if (anySplit && isa<arith::AddFOp>(op))
        for (Value v : op.getOperands())
          if (isa<BlockArgument>(v))
            changed |= split.insert(v).second;
    }
  }
  if (split.empty()) {
    func.emitRemark() << "microbatches=" << M
                      << ": no value carries tokens; nothing to split";
    return;
  }
  for (BlockArgument arg : block.getArguments())
    if (split.contains(arg))
      tokenMajor.insert(arg);
  for (Operation &op : block.without_terminator())
    for (unsigned i = 0; i < op.getNumResults(); ++i)
      if (split.contains(op.getResult(i)) && isTokenResult(&op, i) &&
          (!isa<arith::AddFOp, tensor::ExtractSliceOp, tensor::ConcatOp>(op) ||
           llvm::all_of(op.getOperands(), [&](Value v) {
             return !split.contains(v) || tokenMajor.contains(v);
           })))
        tokenMajor.insert(op.getResult(i));

  // The per-micro-batch ops in block order, cut after each all_to_all; the
  // ops read no token value are kept once, issued as soon as their
  // operands exist.
  SmallVector<SmallVector<Operation *>> segments(1);
  SmallVector<Operation *> shared;
  for (Operation &op : block.without_terminator()) {
    if (llvm::any_of(op.getOperands(),
                     [&](Value v) { return split.contains(v); })) {
      for (Value v : op.getOperands())
        if (reduced.contains(v)) {
          op.emitOpError() << "reads both token values and a weight "
                              "gradient summed over micro-batches";
          return signalPassFailure();
        }
      segments.back().push_back(&op);
      if (isa<AllToAllOp>(op))
        segments.emplace_back();
    } else {
      shared.push_back(&op);
    }
  }

  // Token arguments are cut into M equal slices.
  OpBuilder b(terminator);
  SmallVector<IRMapping> maps(M);
  for (BlockArgument arg : block.getArguments()) {
    if (!split.contains(arg))
      continue;
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    if (!type || !type.hasStaticShape() || type.getRank() < 1) {
      func.emitError() << "argument #" << arg.getArgNumber()
                       << " carries tokens but is not a static tensor";
      return signalPassFailure();
    }
    int64_t tokens = type.getDimSize(0);
    if (tokens % M) {
      func.emitError() << "microbatches=" << M << " does not divide the "
                       << tokens << " tokens of argument #"
                       << arg.getArgNumber();
      return signalPassFailure();
    }
    for (int64_t m = 0; m < M; ++m) {
      SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0));
      SmallVector<OpFoldResult> sizes,
          strides(type.getRank(), b.getIndexAttr(1));
      offsets[0] = b.getIndexAttr(m * (tokens / M));
      for (int64_t d = 0; d < type.getRank(); ++d)
        sizes.push_back(b.getIndexAttr(d ? type.getDimSize(d) : tokens / M));
      Value slice = b.create<tensor::ExtractSliceOp>(arg.getLoc(), arg, offsets,
                                                     sizes, strides);
      maps[m].map(arg, slice);
    }
  }

  // Availability: a value defined in the block exists once its op was
  // issued (for a reduced value: all M copies); shared ops wait for theirs.
  llvm::DenseSet<Value> ready;
  llvm::DenseMap<Value, int64_t> copiesLeft;
  llvm::DenseMap<Value, Value> sums;
  auto isReady = [&](Value v) {
    return isa<BlockArgument>(v) || ready.contains(v);
  };
  // The sum over micro-batches of reduced value `v`.
  auto sumOf = [&](Value v) -> Value {
    auto it = sums.find(v);
    if (it != sums.end())
      return it->second;
    Value sum = maps[0].lookup(v);
    for (int64_t m = 1; m < M; ++m)
      sum = b.create<arith::AddFOp>(v.getLoc(), sum, maps[m].lookup(v));
    sums[v] = sum;
    return sum;
  };
  // Each shared op counts its operands that do not exist yet; when a value
  // becomes ready its waiting ops are told, and the ops whose count reaches
  // zero are issued in block order (linear time overall).
  SmallVector<unsigned> missing(shared.size(), 0);
  llvm::DenseMap<Value, SmallVector<size_t, 1>> waiting;
  std::priority_queue<size_t, std::vector<size_t>, std::greater<size_t>>
      runnable;
  for (size_t i = 0; i < shared.size(); ++i) {
    for (Value v : shared[i]->getOperands())
      if (!isReady(v)) {
        ++missing[i];
        waiting[v].push_back(i);
      }
    if (missing[i] == 0)
      runnable.push(i);
  }
  size_t issuedShared = 0;
  auto markReady = [&](Value v) {
    ready.insert(v);
    auto it = waiting.find(v);
    if (it == waiting.end())
      return;
    for (size_t i : it->second)
      if (--missing[i] == 0)
        runnable.push(i);
    waiting.erase(it);
  };
  auto issueReadyShared = [&]() {
    while (!runnable.empty()) {
      Operation *op = shared[runnable.top()];
      runnable.pop();
      for (OpOperand &operand : op->getOpOperands())
        if (reduced.contains(operand.get()))
          operand.set(sumOf(operand.get()));
      op->moveBefore(terminator);
      ++issuedShared;
      for (Value r : op->getResults())
        markReady(r);
    }
  };
  issueReadyShared();
  for (const SmallVector<Operation *> &segment : segments)
    for (int64_t m = 0; m < M; ++m)
      for (Operation *op : segment) {
        for (Value v : op->getOperands())
          if (!split.contains(v) && !isReady(v)) {
            op->emitOpError() << "reads a value computed from weight "
                                 "gradients summed over micro-batches; it "
                                 "cannot be split";
            return signalPassFailure();
          }
        Operation *clone = b.clone(*op, maps[m]);
        ++numCloned;
        FailureOr<SmallVector<Type>> types =
            cloneResultTypes(op, clone, tokenMajor);
        if (failed(types))
          return signalPassFailure();
        for (unsigned i = 0; i < clone->getNumResults(); ++i) {
          clone->getResult(i).setType((*types)[i]);
          Value orig = op->getResult(i);
          if (!reduced.contains(orig))
            continue;
          auto [it, inserted] = copiesLeft.try_emplace(orig, M);
          if (--it->second == 0)
            markReady(orig);
        }
        issueReadyShared();
      }
  if (issuedShared < shared.size()) {
    for (size_t i = 0; i < shared.size(); ++i)
      if (missing[i] != 0) {
        shared[i]->emitOpError()
            << "cannot be placed after splitting into micro-batches";
        break;
      }
    return signalPassFailure();
  }

  // Results: token values reassembled, weight gradients summed.
  for (OpOperand &operand : terminator->getOpOperands()) {
    Value v = operand.get();
    if (reduced.contains(v)) {
      operand.set(sumOf(v));
    } else if (split.contains(v)) {
      if (!tokenMajor.contains(v)) {
        func.emitError() << "result #" << operand.getOperandNumber()
                         << " carries tokens in a dispatch layout and "
                            "cannot be reassembled from micro-batches";
        return signalPassFailure();
      }
      SmallVector<Value> pieces;
      for (int64_t m = 0; m < M; ++m)
        pieces.push_back(maps[m].lookup(v));
      operand.set(b.create<tensor::ConcatOp>(v.getLoc(), 0, pieces));
    }
  }

  // The original per-micro-batch ops are now dead; erase users first.
  // Shared ops that only they used (constants at the full token count)
  // go too.
  for (auto &segment : llvm::reverse(segments))
    for (Operation *op : llvm::reverse(segment))
      op->erase();
  for (Operation *op : llvm::reverse(shared))
    if (op->use_empty() && isa<arith::ConstantOp>(op))
      op->erase();
}

} // namespace
