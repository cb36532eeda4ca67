//===- PipelineExperts.cpp - Micro-chunk all_to_all with expert FFNs ------===//
//
// Part of the Lina project.
//
/// Splits each all_to_all -> expert_ffn -> all_to_all chain, and each
/// backward all_to_all -> expert_ffn_grad -> all_to_all chain, into K
/// micro-chunks along the capacity (token) dimension and interleaves them,
/// so that the FFN of chunk i runs while chunk i+1 is in flight. The
/// all_to_all is on the critical path of every MoE layer; overlapping it
/// with expert compute hides part of it.
///
/// Why the chunked chain computes what the original did: the expert FFN
/// (and the input gradient of expert_ffn_grad) is row-wise, i.e. each token
/// row of `[experts, rows, hidden]` is transformed on its own, with no
/// reduction across rows. Chunk i takes slots [o_i, o_i + c_i) of every
/// source rank's capacity; the dispatch all_to_all of the chunk delivers
/// exactly those rows, the FFN transforms them as it would have in the
/// whole buffer, and the return all_to_all (split on the same axis it was
/// concatenated on) sends every row back to the rank and slot it came
/// from. Concatenating the returned chunks along the capacity dimension
/// therefore rebuilds the unchunked result element for element. The weight
/// gradients of expert_ffn_grad are sums over rows; the chunks' partial
/// sums are added with arith.addf, which equals the unchunked gradient up
/// to floating-point reassociation.
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/Transforms/Passes.h"
#include "lina/Support/CostModel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "lina-pipeline-experts"

namespace mlir::lina {
#define GEN_PASS_DEF_LINAPIPELINEEXPERTSPASS
#include "lina/Dialect/Lina/Transforms/Passes.h.inc"
} // namespace mlir::lina

using namespace mlir;
using namespace mlir::lina;

namespace {
/// One all_to_all -> expert compute -> all_to_all chain. `compute` is an
/// ExpertFfnOp (forward) or an ExpertFfnGradOp (backward).
struct Chain {
  AllToAllOp in;
  Operation *compute;
  AllToAllOp out;

  bool isBackward() const { return isa<ExpertFfnGradOp>(compute); }
};

/// Matches the chain starting at `in`. The received tokens may have other
/// users (the backward pass reads the forward ones); they get the chunks
/// reassembled in the original order.
std::optional<Chain> matchChain(AllToAllOp in) {
  if (in.isVariable() || in.getChunkAttr() || in.getSplitAxis() != 0 ||
      in.getConcatAxis() != 1 || in.getInput().getType().getRank() != 3)
    return std::nullopt;
  Operation *compute = nullptr;
  for (OpOperand &use : in->getUses()) {
    Operation *user = use.getOwner();
    if (auto f = dyn_cast<ExpertFfnOp>(user);
        f && use.getOperandNumber() == f.getInputMutable().getOperandNumber())
      compute = f;
    if (auto g = dyn_cast<ExpertFfnGradOp>(user);
        g && use.getOperandNumber() == g.getGradMutable().getOperandNumber())
      compute = g;
  }
  if (!compute || compute->getNumRegions() != 0)
    return std::nullopt;
  // Only the chunked operand may read the received tokens: a chunk's compute
  // has the chunk there, and the whole tensor exists only after the last
  // chunk arrives, so another operand reading it (`expert_ffn %r, %r, %r`)
  // could not be given a value that dominates the chunk.
  unsigned chunked =
      isa<ExpertFfnOp>(compute)
          ? cast<ExpertFfnOp>(compute).getInputMutable().getOperandNumber()
          : cast<ExpertFfnGradOp>(compute).getGradMutable().getOperandNumber();
  for (OpOperand &operand : compute->getOpOperands())
    if (operand.get() == in.getResult() &&
        operand.getOperandNumber() != chunked) {
      compute->emitRemark()
          << "lina-pipeline-experts: not splitting this chain: operand #"
          << operand.getOperandNumber()
          << " also reads the received tokens, which a chunk cannot provide";
      return std::nullopt;
    }
  Value rows = compute->getResult(0);
  if (!rows.hasOneUse())
    return std::nullopt;
  auto out = dyn_cast<AllToAllOp>(*rows.getUsers().begin());
  if (!out || out.isVariable() || out.getChunkAttr() ||
      out.getSplitAxis() != 1 || out.getConcatAxis() != 0 ||
      out.getGroup() != in.getGroup() ||
      out.getResult().getType() != in.getInput().getType())
    return std::nullopt;
  // The chunks are built where `out` stands, so the chain must be straight
  // line code and every other reader of a value the rewrite replaces (the
  // received tokens, the weight gradients) must come after it.
  Block *block = in->getBlock();
  if (compute->getBlock() != block || out->getBlock() != block)
    return std::nullopt;
  auto readAfterOut = [&](Value value, Operation *except) {
    for (Operation *user : value.getUsers()) {
      if (user == except)
        continue;
      Operation *ancestor = block->findAncestorOpInBlock(*user);
      if (!ancestor || !out->isBeforeInBlock(ancestor)) {
        LLVM_DEBUG(llvm::dbgs() << "not pipelining " << in << ": " << value
                                << " is read before the chain ends\n");
        return false;
      }
    }
    return true;
  };
  if (!readAfterOut(in.getResult(), compute))
    return std::nullopt;
  for (Value weightGrad : compute->getResults().drop_front())
    if (!readAfterOut(weightGrad, nullptr))
      return std::nullopt;
  return Chain{in, compute, out};
}

/// Chunks of the received tokens of a split chain, kept so that the
/// backward chain with the same chunk sizes reads them directly instead of
/// slicing the reassembled tensor.
struct ReceivedChunks {
  SmallVector<Value> chunks;
  SmallVector<int64_t> sizes;
  /// The reassembly ops (expand_shape..., concat, collapse_shape).
  SmallVector<Operation *> ops;
};

struct LinaPipelineExpertsPass
    : public mlir::lina::impl::LinaPipelineExpertsPassBase<
          LinaPipelineExpertsPass> {
  using Base::Base;

  /// Reads the cluster file once (not once per function) for chunks=auto.
  LogicalResult initialize(MLIRContext *context) override {
    model.reset();
    if (chunks.isAuto() &&
        !(model = loadCostModel(context, getArgument(), clusterFile)))
      return failure();
    return success();
  }

  void runOnOperation() override {
    func::FuncOp func = getOperation();

    // Program order: forward chains are split before the backward chains
    // that read their received tokens.
    SmallVector<Chain> found;
    func.walk([&](AllToAllOp op) {
      if (auto chain = matchChain(op))
        found.push_back(*chain);
    });
    int64_t suggested = 0, chains = 0, pieces = 0;
    for (Chain &chain : found) {
      int64_t count;
      if (chunks.isAuto()) {
        assert(model && "initialize loads the cost model for 'auto'");
        if (failed(checkGroupFits(chain.in, chain.in.getGroupSize(), *model)))
          return signalPassFailure();
        ::lina::PipelineChoice choice = choose(chain, *model);
        count = choice.chunks;
        suggested = std::max<int64_t>(suggested, choice.expertsPerDevice);
        LLVM_DEBUG(llvm::dbgs() << "auto: " << choice.chunks << " chunks, "
                                << choice.expertsPerDevice
                                << " experts per device, estimated "
                                << choice.estimatedTime << " s\n");
      } else {
        count = chunks.getNumber();
      }
      if (failed(split(chain, count)))
        return signalPassFailure();
      if (count > 1) {
        ++chains;
        pieces += count;
      }
    }
    // Reassemblies that only the (now chunked) backward chains read.
    for (auto &entry : received)
      for (Operation *op : llvm::reverse(entry.second.ops))
        if (op->use_empty())
          op->erase();
    received.clear();

    numChains += chains;
    numChunks += pieces;
    if (report)
      emitRemark(func.getLoc()) << "lina-pipeline-experts: split " << chains
                                << " chains into " << pieces << " chunks";
    if (suggested)
      func->setAttr(
          LinaDialect::kSuggestedExpertsPerDeviceAttrName,
          IntegerAttr::get(IntegerType::get(&getContext(), 64), suggested));
  }

  /// Asks the cost model for K and the experts per device of `chain`.
  ::lina::PipelineChoice choose(Chain chain, const ::lina::CostModel &model) {
    RankedTensorType buf = chain.in.getInput().getType();
    RankedTensorType local = chain.in.getResult().getType();
    Value w1 = chain.compute->getOperand(chain.isBackward() ? 2 : 1);
    Value w2 = chain.compute->getOperand(chain.isBackward() ? 3 : 2);
    int64_t experts = local.getDimSize(0), rows = local.getDimSize(1),
            hidden = local.getDimSize(2);
    int64_t ffn = cast<RankedTensorType>(w1.getType()).getDimSize(2);
    int64_t elem = (buf.getElementTypeBitWidth() + 7) / 8;
    ::lina::ExpertWork work;
    work.a2aBytes = static_cast<double>(getTensorBytes(buf));
    double weightBytes = static_cast<double>(
        getTensorBytes(cast<RankedTensorType>(w1.getType())) +
        getTensorBytes(cast<RankedTensorType>(w2.getType())));
    double activationBytes = 1.0 * experts * rows * hidden * elem;
    // Forward: two GEMMs of 2 * rows * hidden * ffn FLOPs per expert; reads
    // the weights and the tokens, writes the result. Backward: five GEMMs
    // (the first recomputed, then the input and weight gradients of both,
    // as the runtime's kernels run them); reads the weights, the gradient
    // and the saved tokens, writes the input and the weight gradients.
    work.flops =
        (chain.isBackward() ? 10.0 : 4.0) * experts * rows * hidden * ffn;
    work.tokenBytes = (chain.isBackward() ? 3 : 2) * activationBytes;
    work.weightBytes = (chain.isBackward() ? 2 : 1) * weightBytes;
    int maxChunks = static_cast<int>(std::min<int64_t>(16, buf.getDimSize(1)));
    int maxExperts = static_cast<int>(buf.getDimSize(0));
    return model.choosePipeline(work, static_cast<int>(chain.in.getGroupSize()),
                                static_cast<int>(experts), maxChunks,
                                maxExperts);
  }

  /// Rebuilds the unchunked all_to_all result `[E, n * C, H]` (rows ordered
  /// by source rank, then slot) from the chunks `[E, n * c_i, H]`: view each
  /// as `[E, n, c_i, H]`, concatenate along the slot dimension, flatten.
  Value reassemble(OpBuilder &b, Location loc, ArrayRef<Value> chunks,
                   ArrayRef<int64_t> sizes, int64_t groupSize,
                   RankedTensorType localType, ReceivedChunks &record) {
    SmallVector<ReassociationIndices> reassociation{{0}, {1, 2}, {3}};
    SmallVector<Value> pieces;
    for (auto [chunk, size] : llvm::zip(chunks, sizes)) {
      auto type = RankedTensorType::get(
          {localType.getDimSize(0), groupSize, size, localType.getDimSize(2)},
          localType.getElementType());
      pieces.push_back(
          b.create<tensor::ExpandShapeOp>(loc, type, chunk, reassociation));
      record.ops.push_back(pieces.back().getDefiningOp());
    }
    Value joined = b.create<tensor::ConcatOp>(loc, /*dim=*/2, pieces);
    record.ops.push_back(joined.getDefiningOp());
    Value flat = b.create<tensor::CollapseShapeOp>(loc, localType, joined,
                                                   reassociation);
    record.ops.push_back(flat.getDefiningOp());
    return flat;
  }

  /// Views the saved tokens `tokens : [E, n * C, H]` as `[E, n, C, H]`.
  Value expandTokens(OpBuilder &b, Location loc, Value tokens,
                     int64_t groupSize, int64_t capacity) {
    auto type = cast<RankedTensorType>(tokens.getType());
    return b.create<tensor::ExpandShapeOp>(
        loc,
        RankedTensorType::get(
            {type.getDimSize(0), groupSize, capacity, type.getDimSize(2)},
            type.getElementType()),
        tokens, SmallVector<ReassociationIndices>{{0}, {1, 2}, {3}});
  }

  /// Slots `[offset, offset + size)` of the tokens viewed as `grid : [E, n,
  /// C, H]`, as `[E, n * size, H]` in the layout of a chunk's all_to_all
  /// result.
  Value sliceTokens(OpBuilder &b, Location loc, Value grid, int64_t offset,
                    int64_t size) {
    auto type = cast<RankedTensorType>(grid.getType());
    int64_t experts = type.getDimSize(0), groupSize = type.getDimSize(1),
            hidden = type.getDimSize(3);
    SmallVector<OpFoldResult> offsets{b.getIndexAttr(0), b.getIndexAttr(0),
                                      b.getIndexAttr(offset),
                                      b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes{
        b.getIndexAttr(experts), b.getIndexAttr(groupSize),
        b.getIndexAttr(size), b.getIndexAttr(hidden)};
    SmallVector<OpFoldResult> strides(4, b.getIndexAttr(1));
    Value slice =
        b.create<tensor::ExtractSliceOp>(loc, grid, offsets, sizes, strides);
    return b.create<tensor::CollapseShapeOp>(
        loc,
        RankedTensorType::get({experts, groupSize * size, hidden},
                              type.getElementType()),
        slice, SmallVector<ReassociationIndices>{{0}, {1, 2}, {3}});
  }

  LogicalResult split(Chain &chain, int64_t pieces) {
    if (pieces == 1)
      return success();
    RankedTensorType bufType = chain.in.getInput().getType();
    RankedTensorType localType = chain.in.getResult().getType();
    int64_t capacity = bufType.getDimSize(1);
    if (pieces > capacity)
      return chain.in->emitOpError()
             << "cannot be split into chunks=" << pieces
             << ": its capacity dimension has only " << capacity
             << " rows; use chunks <= " << capacity;
    int64_t groupSize = localType.getDimSize(1) / capacity;
    MLIRContext *ctx = &getContext();
    // The chunks' all_to_alls are issued where the original one was, the
    // rest where the original return was: ops between the two (another
    // micro-batch's, after --lina-overlap-microbatches) keep their place.
    OpBuilder sb(chain.in);
    OpBuilder b(chain.out);
    Location loc = chain.in.getLoc();
    Value buf = chain.in.getInput();

    // Chunk sizes differ by at most one row and cover the capacity.
    SmallVector<int64_t> offsets, sizes;
    for (int64_t i = 0, off = 0; i < pieces; ++i) {
      int64_t size = capacity / pieces + (i < capacity % pieces ? 1 : 0);
      offsets.push_back(off);
      sizes.push_back(size);
      off += size;
    }
    auto sendChunk = [&](int64_t i) -> Value {
      SmallVector<OpFoldResult> offs{
          sb.getIndexAttr(0), sb.getIndexAttr(offsets[i]), sb.getIndexAttr(0)};
      SmallVector<OpFoldResult> szs{sb.getIndexAttr(bufType.getDimSize(0)),
                                    sb.getIndexAttr(sizes[i]),
                                    sb.getIndexAttr(bufType.getDimSize(2))};
      SmallVector<OpFoldResult> strides(3, sb.getIndexAttr(1));
      Value slice =
          sb.create<tensor::ExtractSliceOp>(loc, buf, offs, szs, strides);
      auto resultType =
          RankedTensorType::get({localType.getDimSize(0), groupSize * sizes[i],
                                 localType.getDimSize(2)},
                                localType.getElementType());
      return sb.create<AllToAllOp>(
          chain.in.getLoc(), resultType, slice, Value(), Value(),
          chain.in.getGroupAttr(), chain.in.getSplitAxisAttr(),
          chain.in.getConcatAxisAttr(), chain.in.getPriorityAttr(),
          ChunkAttr::get(ctx, i, pieces));
    };

    // The backward chain also needs each chunk's saved forward tokens:
    // the forward chain's chunks when it was split the same way, else a
    // slice of the saved tensor.
    const ReceivedChunks *saved = nullptr;
    auto grad = dyn_cast<ExpertFfnGradOp>(chain.compute);
    if (grad) {
      auto it = received.find(grad.getInput());
      if (it != received.end() && it->second.sizes == sizes)
        saved = &it->second;
    }
    Value tokenGrid;
    auto computeChunk = [&](int64_t i, Value rows) -> Operation * {
      auto chunk = ChunkAttr::get(ctx, i, pieces);
      if (auto ffn = dyn_cast<ExpertFfnOp>(chain.compute))
        return b.create<ExpertFfnOp>(ffn.getLoc(), rows.getType(), rows,
                                     ffn.getW1(), ffn.getW2(),
                                     ffn.getActivationAttr(), chunk);
      Value tokens;
      if (saved) {
        tokens = saved->chunks[i];
      } else {
        if (!tokenGrid)
          tokenGrid =
              expandTokens(b, loc, grad.getInput(), groupSize, capacity);
        tokens = sliceTokens(b, loc, tokenGrid, offsets[i], sizes[i]);
      }
      return b.create<ExpertFfnGradOp>(grad.getLoc(),
                                       TypeRange{rows.getType(),
                                                 grad.getW1Grad().getType(),
                                                 grad.getW2Grad().getType()},
                                       rows, tokens, grad.getW1(), grad.getW2(),
                                       grad.getActivationAttr(), chunk);
    };

    SmallVector<Value> receivedChunks(pieces), returned(pieces);
    SmallVector<Value> weightGrads;
    receivedChunks[0] = sendChunk(0);
    for (int64_t i = 0; i < pieces; ++i) {
      // Issue the next chunk's all_to_all before this chunk's FFN.
      if (i + 1 < pieces)
        receivedChunks[i + 1] = sendChunk(i + 1);
      Operation *compute = computeChunk(i, receivedChunks[i]);
      auto backType = RankedTensorType::get(
          {bufType.getDimSize(0), sizes[i], bufType.getDimSize(2)},
          bufType.getElementType());
      returned[i] = b.create<AllToAllOp>(
          chain.out.getLoc(), backType, compute->getResult(0), Value(), Value(),
          chain.out.getGroupAttr(), chain.out.getSplitAxisAttr(),
          chain.out.getConcatAxisAttr(), chain.out.getPriorityAttr(),
          ChunkAttr::get(ctx, i, pieces));
      // Weight gradients: running sums of the chunks' partial sums.
      for (auto [j, partial] :
           llvm::enumerate(compute->getResults().drop_front())) {
        if (i == 0)
          weightGrads.push_back(partial);
        else
          weightGrads[j] =
              b.create<arith::AddFOp>(loc, weightGrads[j], partial);
      }
    }
    Value joined = b.create<tensor::ConcatOp>(loc, /*dim=*/1, returned);
    if (!chain.in->hasOneUse()) {
      ReceivedChunks record;
      record.chunks.assign(receivedChunks.begin(), receivedChunks.end());
      record.sizes = sizes;
      Value tokens = reassemble(b, loc, receivedChunks, sizes, groupSize,
                                localType, record);
      chain.in.getResult().replaceUsesWithIf(tokens, [&](OpOperand &use) {
        return use.getOwner() != chain.compute;
      });
      received[tokens] = std::move(record);
    }
    for (auto [old, sum] :
         llvm::zip(chain.compute->getResults().drop_front(), weightGrads))
      old.replaceAllUsesWith(sum);
    chain.out.replaceAllUsesWith(joined);
    chain.out.erase();
    chain.compute->erase();
    chain.in.erase();
    return success();
  }

  /// Received-token chunks of the forward chains split in this run, by the
  /// reassembled value that replaced the original all_to_all result.
  llvm::DenseMap<Value, ReceivedChunks> received;

  /// The cost model of chunks=auto, loaded by `initialize`; shared by the
  /// copies of this pass that run on other threads.
  std::shared_ptr<const ::lina::CostModel> model;
};
} // namespace
