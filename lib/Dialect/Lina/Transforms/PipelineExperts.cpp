//===- PipelineExperts.cpp - Micro-chunk all_to_all with expert FFNs ------===//
//
// Part of the Lina project.
//
/// Splits each all_to_all -> expert_ffn -> all_to_all chain into K
/// micro-chunks along the capacity (token) dimension and interleaves them,
/// so that the FFN of chunk i runs while chunk i+1 is in flight. The
/// chunked chain computes exactly what the original did: the FFN is
/// row-wise, and each chunk's return all_to_all sends every row back to
/// the rank and slot it came from.
//
//===----------------------------------------------------------------------===//

#include "lina/Analysis/CostModel.h"
#include "lina/Dialect/Lina/Transforms/Passes.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "lina-pipeline-experts"

namespace mlir::lina {
#define GEN_PASS_DEF_LINAPIPELINEEXPERTSPASS
#include "lina/Dialect/Lina/Transforms/Passes.h.inc"
} // namespace mlir::lina

using namespace mlir;
using namespace mlir::lina;

namespace {
/// One all_to_all -> expert_ffn -> all_to_all chain.
struct Chain {
  AllToAllOp in;
  ExpertFfnOp ffn;
  AllToAllOp out;
};

std::optional<Chain> matchChain(AllToAllOp in) {
  if (in.isVariable() || in.getChunkAttr() || in.getSplitAxis() != 0 ||
      in.getConcatAxis() != 1 || in.getInput().getType().getRank() != 3)
    return std::nullopt;
  // The received tokens may have other users (the backward pass reads
  // them); those get the chunks reassembled in the original order.
  ExpertFfnOp ffn;
  for (Operation *user : in->getUsers())
    if (auto f = dyn_cast<ExpertFfnOp>(user); f && f.getInput() == in.getResult())
      ffn = f;
  if (!ffn || !ffn->hasOneUse())
    return std::nullopt;
  auto out = dyn_cast<AllToAllOp>(*ffn->getUsers().begin());
  if (!out || out.isVariable() || out.getSplitAxis() != 1 ||
      out.getConcatAxis() != 0 || out.getGroup() != in.getGroup() ||
      out.getResult().getType() != in.getInput().getType())
    return std::nullopt;
  return Chain{in, ffn, out};
}

struct LinaPipelineExpertsPass
    : public mlir::lina::impl::LinaPipelineExpertsPassBase<LinaPipelineExpertsPass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    std::optional<int64_t> k = parseSizeOption(func, "chunks", chunks);
    if (!k)
      return signalPassFailure();
    std::unique_ptr<::lina::CostModel> model;
    if (*k == 0 && !(model = loadCostModel(func, clusterFile)))
      return signalPassFailure();

    SmallVector<Chain> found;
    func.walk([&](AllToAllOp op) {
      if (auto chain = matchChain(op))
        found.push_back(*chain);
    });
    int64_t suggested = 0;
    for (Chain &chain : found) {
      int64_t numChunks = *k;
      if (numChunks == 0) {
        ::lina::PipelineChoice choice = choose(chain, *model);
        numChunks = choice.chunks;
        suggested = std::max<int64_t>(suggested, choice.expertsPerDevice);
      }
      if (failed(split(chain, numChunks)))
        return signalPassFailure();
    }
    if (report)
      mlir::emitRemark(func.getLoc()) << "lina-pipeline-experts: split " << chainsHere
                        << " chains into " << chunksHere << " chunks";
    if (suggested)
      func->setAttr("lina.suggested_experts_per_device",
                    IntegerAttr::get(IntegerType::get(&getContext(), 64),
                                     suggested));
  }

  int64_t chainsHere = 0, chunksHere = 0;

  ::lina::PipelineChoice choose(Chain &chain, ::lina::CostModel &model) {
    RankedTensorType buf = chain.in.getInput().getType();
    RankedTensorType local = chain.in.getResult().getType();
    int64_t experts = local.getDimSize(0), rows = local.getDimSize(1),
            hidden = local.getDimSize(2);
    int64_t ffn = chain.ffn.getW1().getType().getDimSize(2);
    int64_t elem = (buf.getElementTypeBitWidth() + 7) / 8;
    double flops = 4.0 * experts * rows * hidden * ffn;
    double bytes =
        static_cast<double>(getTensorBytes(chain.ffn.getW1().getType()) +
                            getTensorBytes(chain.ffn.getW2().getType())) +
        2.0 * experts * rows * hidden * elem;
    int maxChunks = static_cast<int>(std::min<int64_t>(16, buf.getDimSize(1)));
    int maxExperts = static_cast<int>(buf.getDimSize(0));
    return model.choosePipeline(static_cast<double>(getTensorBytes(buf)), flops,
                                bytes, static_cast<int>(chain.in.getGroupSize()),
                                static_cast<int>(experts), maxChunks,
                                maxExperts);
  }

  /// Rebuilds the unchunked all_to_all result `[E, n * C, H]` (rows ordered
  /// by source rank, then slot) from the chunks `[E, n * c_i, H]`: view each
  /// as `[E, n, c_i, H]`, concatenate along the slot dimension, flatten.
  Value reassemble(OpBuilder &b, Location loc, ArrayRef<Value> chunks,
                   ArrayRef<int64_t> sizes, int64_t groupSize,
                   RankedTensorType localType) {
    SmallVector<ReassociationIndices> reassociation{{0}, {1, 2}, {3}};
    SmallVector<Value> pieces;
    for (auto [chunk, size] : llvm::zip(chunks, sizes)) {
      auto type = RankedTensorType::get({localType.getDimSize(0), groupSize,
                                         size, localType.getDimSize(2)},
                                        localType.getElementType());
      pieces.push_back(
          b.create<tensor::ExpandShapeOp>(loc, type, chunk, reassociation));
    }
    Value joined = b.create<tensor::ConcatOp>(loc, /*dim=*/2, pieces);
    return b.create<tensor::CollapseShapeOp>(loc, localType, joined,
                                             reassociation);
  }

  LogicalResult split(Chain &chain, int64_t pieces) {
    if (pieces == 1)
      return success();
    RankedTensorType bufType = chain.in.getInput().getType();
    RankedTensorType localType = chain.in.getResult().getType();
    int64_t capacity = bufType.getDimSize(1);
    if (pieces > capacity)
      return chain.in.emitOpError()
             << "cannot be split into chunks=" << pieces
             << ": its capacity dimension has only " << capacity
             << " rows; use chunks <= " << capacity;
    int64_t groupSize = localType.getDimSize(1) / capacity;
    MLIRContext *ctx = &getContext();
    OpBuilder b(chain.out);
    Location loc = chain.in.getLoc();
    Value buf = chain.in.getInput();

    SmallVector<int64_t> offsets, sizes;
    for (int64_t i = 0, off = 0; i < pieces; ++i) {
      int64_t size = capacity / pieces + (i < capacity % pieces ? 1 : 0);
      offsets.push_back(off);
      sizes.push_back(size);
      off += size;
    }
    auto sendChunk = [&](int64_t i) -> Value {
      SmallVector<OpFoldResult> offs{b.getIndexAttr(0), b.getIndexAttr(offsets[i]),
                                     b.getIndexAttr(0)};
      SmallVector<OpFoldResult> szs{b.getIndexAttr(bufType.getDimSize(0)),
                                    b.getIndexAttr(sizes[i]),
                                    b.getIndexAttr(bufType.getDimSize(2))};
      SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
      Value slice = b.create<tensor::ExtractSliceOp>(loc, buf, offs, szs, strides);
      auto resultType = RankedTensorType::get(
          {localType.getDimSize(0), groupSize * sizes[i], localType.getDimSize(2)},
          localType.getElementType());
      return b.create<AllToAllOp>(
          chain.in.getLoc(), resultType, slice, Value(), Value(),
          chain.in.getGroupAttr(), chain.in.getSplitAxisAttr(),
          chain.in.getConcatAxisAttr(), chain.in.getPriorityAttr(),
          ChunkAttr::get(ctx, i, pieces));
    };

    SmallVector<Value> received(pieces), returned(pieces);
    received[0] = sendChunk(0);
    for (int64_t i = 0; i < pieces; ++i) {
      // Issue the next chunk's all_to_all before this chunk's FFN.
      if (i + 1 < pieces)
        received[i + 1] = sendChunk(i + 1);
      Value ffn = b.create<ExpertFfnOp>(
          chain.ffn.getLoc(), received[i].getType(), received[i],
          chain.ffn.getW1(), chain.ffn.getW2(), chain.ffn.getActivationAttr(),
          ChunkAttr::get(ctx, i, pieces));
      auto backType = RankedTensorType::get(
          {bufType.getDimSize(0), sizes[i], bufType.getDimSize(2)},
          bufType.getElementType());
      returned[i] = b.create<AllToAllOp>(
          chain.out.getLoc(), backType, ffn, Value(), Value(),
          chain.out.getGroupAttr(), chain.out.getSplitAxisAttr(),
          chain.out.getConcatAxisAttr(), chain.out.getPriorityAttr(),
          ChunkAttr::get(ctx, i, pieces));
    }
    Value joined = b.create<tensor::ConcatOp>(loc, /*dim=*/1, returned);
    if (!chain.in->use_empty() && !chain.in->hasOneUse())
      chain.in.getResult().replaceUsesWithIf(
          reassemble(b, loc, received, sizes, groupSize, localType),
          [&](OpOperand &use) { return use.getOwner() != chain.ffn; });
    chain.out.replaceAllUsesWith(joined);
    chain.out.erase();
    chain.ffn.erase();
    chain.in.erase();
    ++numChains;
    numChunks += pieces;
    ++chainsHere;
    chunksHere += pieces;
    return success();
  }
};
} // namespace
