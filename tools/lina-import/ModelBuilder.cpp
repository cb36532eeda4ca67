//===- ModelBuilder.cpp - Builds lina IR from a model spec ----------------===//
//
// Part of the Lina project.
//
// The forward pass is built layer by layer while recording what the
// backward pass needs; the backward pass then walks the records in reverse,
// emitting the lina.*_grad ops, arith.addf for every gradient that meets
// another one (residual branches, shared experts, cross-attention), and the
// gradient all_reduce of each parameter as soon as its gradient is final.
// Arguments are added to the entry block as they are first needed, so the
// argument order is: token inputs, parameters in forward order, then %dy.
//
//===----------------------------------------------------------------------===//

#include "ModelBuilder.h"

#include "lina/Dialect/Lina/IR/LinaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"

#include <cmath>
#include <map>

using namespace mlir;
using namespace mlir::lina;
using namespace mlir::lina::import;

int64_t mlir::lina::import::computeCapacity(int64_t tokens, int64_t topK,
                                            int64_t experts,
                                            double capacityFactor) {
  // Same arithmetic as GateOp::getCapacity, so that the buffers built here
  // agree with the gate's own capacity.
  double perExpert = static_cast<double>(tokens) * static_cast<double>(topK) /
                     static_cast<double>(experts);
  return std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil(perExpert * capacityFactor)));
}

namespace {

constexpr StringLiteral kGrid = "world";
/// Dense parameters: data-parallel over every rank of the grid.
constexpr StringLiteral kDenseGroup = "dp";
/// Expert parameters: data-parallel over the replicas of an expert.
constexpr StringLiteral kExpertDpGroup = "expert_dp";
constexpr StringLiteral kExpertGroup = "ep";

struct SelfAttention {
  Value input, context;
  int wqkv = -1, wo = -1;
  /// Multi-head latent attention: the query path (through the query
  /// latent `qLatent` when q_lora_rank is set) and the key/value path
  /// through the compressed latent `kvLatent`.
  bool latent = false;
  Value qLatent, kvLatent;
  int wqA = -1, wqB = -1, wkvA = -1, wkvB = -1;
};

struct CrossAttention {
  Value input, encoder, context;
  int wq = -1, wkv = -1, wo = -1;
};

struct DenseFfn {
  Value input, hidden;
  int w1 = -1, w2 = -1;
};

struct MoEBlock {
  Value input, ids, gateWeights, received, returned;
  int router = -1, w1 = -1, w2 = -1;
  /// Shared experts, when the model has them.
  std::optional<DenseFfn> shared;
};

struct LayerRecord {
  SelfAttention self;
  std::optional<CrossAttention> cross;
  std::optional<DenseFfn> dense;
  std::optional<MoEBlock> moe;
};

class IRGenerator {
public:
  IRGenerator(MLIRContext &ctx, const ModelSpec &spec,
              const ImportOptions &opts, StringRef source)
      : ctx(ctx), spec(spec), opts(opts), b(&ctx),
        loc(FileLineColLoc::get(&ctx, source, 1, 1)) {
    switch (opts.dtype) {
    case ElementType::f32:
      elt = b.getF32Type();
      break;
    case ElementType::bf16:
      elt = b.getBF16Type();
      break;
    case ElementType::f16:
      elt = b.getF16Type();
      break;
    }
    tokens = opts.microBatch * opts.seq;
    if (spec.numExperts > 0) {
      capacity = computeCapacity(tokens, spec.topK, spec.numExperts,
                                 opts.capacityFactor);
      localExperts = spec.numExperts / opts.ep;
    }
  }

  OwningOpRef<ModuleOp> build();

private:
  struct Param {
    Value value;
    bool expert;
    Value grad;
  };

  RankedTensorType tensor(ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, elt);
  }
  RankedTensorType act(int64_t width) { return tensor({tokens, width}); }
  GroupAttr group(StringRef name) {
    return GroupAttr::get(&ctx, FlatSymbolRefAttr::get(&ctx, kGrid),
                          b.getStringAttr(name));
  }
  ActivationAttr activation(Activation a) {
    return ActivationAttr::get(&ctx, a);
  }

  Value addArgument(Type type, const std::string &name) {
    argNames.push_back(name);
    return body->addArgument(type, loc);
  }
  int addParam(ArrayRef<int64_t> shape, const std::string &name, bool expert) {
    params.push_back({addArgument(tensor(shape), name), expert, Value()});
    return static_cast<int>(params.size()) - 1;
  }
  Value param(int idx) { return params[idx].value; }

  Value dense(Value x, int w, Activation a) {
    auto wt = cast<RankedTensorType>(param(w).getType());
    return b.create<DenseOp>(loc, act(wt.getDimSize(1)), x, param(w),
                             activation(a));
  }
  Value add(Value x, Value y) { return b.create<arith::AddFOp>(loc, x, y); }
  Value addAll(ArrayRef<Value> values) {
    Value sum = values.front();
    for (Value v : values.drop_front())
      sum = add(sum, v);
    return sum;
  }
  Value columns(Value x, int64_t offset, int64_t width) {
    SmallVector<OpFoldResult> offsets = {b.getIndexAttr(0),
                                         b.getIndexAttr(offset)};
    SmallVector<OpFoldResult> sizes = {b.getIndexAttr(tokens),
                                       b.getIndexAttr(width)};
    SmallVector<OpFoldResult> strides = {b.getIndexAttr(1), b.getIndexAttr(1)};
    return b.create<tensor::ExtractSliceOp>(loc, x, offsets, sizes, strides);
  }
  /// A zero [tokens, width] tensor, one constant per width.
  Value zeros(int64_t width) {
    auto it = zeroCache.find(width);
    if (it != zeroCache.end())
      return it->second;
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(body);
    RankedTensorType type = act(width);
    Value z = b.create<arith::ConstantOp>(loc, type, b.getZeroAttr(type));
    zeroCache[width] = z;
    return z;
  }
  /// Dense gradient: returns the input gradient, records the weight's.
  Value denseGrad(Value dy, Value x, int w, Activation a) {
    auto op = b.create<DenseGradOp>(loc, x.getType(), param(w).getType(), dy, x,
                                    param(w), activation(a));
    reduce(w, op.getWeightGrad());
    return op.getInputGrad();
  }
  /// Synchronises a parameter gradient over its data-parallel group;
  /// groups of one rank need no collective.
  void reduce(int idx, Value grad) {
    Param &p = params[idx];
    int64_t groupSize = p.expert ? opts.dp : opts.dp * opts.ep;
    if (groupSize > 1)
      grad =
          b.create<AllReduceOp>(loc, grad.getType(), grad,
                                group(p.expert ? kExpertDpGroup : kDenseGroup),
                                ReductionAttr::get(&ctx, Reduction::sum),
                                PriorityAttr(), PartitionAttr());
    p.grad = grad;
  }

  std::string layerName(const StackSpec &stack, size_t i) {
    return stack.name + "." + std::to_string(i) + ".";
  }

  // Forward.
  Value forwardLatentAttention(const std::string &prefix, Value h,
                               SelfAttention &sa);
  Value backwardLatentAttention(const SelfAttention &sa, Value g);
  Value forwardStack(const StackSpec &stack, Value x, Value encoder,
                     std::vector<LayerRecord> &records);
  Value forwardFfn(const std::string &prefix, Value h, DenseFfn &rec,
                   int64_t intermediate);
  Value forwardMoE(const std::string &prefix, Value h, MoEBlock &rec);

  // Backward: each returns the gradient of the block's input.
  Value backwardStack(std::vector<LayerRecord> &records, Value dy,
                      Value &encoderGrad);
  Value backwardFfn(const DenseFfn &rec, Value dy);
  Value backwardMoE(const MoEBlock &rec, Value dy);

  MLIRContext &ctx;
  const ModelSpec &spec;
  const ImportOptions &opts;
  OpBuilder b;
  Location loc;
  Type elt;
  int64_t tokens = 0, capacity = 0, localExperts = 0;
  Block *body = nullptr;
  std::vector<std::string> argNames;
  std::vector<Param> params;
  std::map<int64_t, Value> zeroCache;
};

Value IRGenerator::forwardFfn(const std::string &prefix, Value h, DenseFfn &rec,
                              int64_t intermediate) {
  int64_t f = spec.modelledFfnWidth(intermediate);
  rec.input = h;
  rec.w1 = addParam({spec.hidden, f}, prefix + "w1", false);
  rec.w2 = addParam({f, spec.hidden}, prefix + "w2", false);
  rec.hidden = dense(h, rec.w1, spec.activation);
  return dense(rec.hidden, rec.w2, Activation::none);
}

Value IRGenerator::forwardMoE(const std::string &prefix, Value h,
                              MoEBlock &rec) {
  int64_t e = spec.numExperts, k = spec.topK, hid = spec.hidden;
  int64_t f = spec.modelledFfnWidth(spec.expertIntermediate);
  rec.input = h;
  rec.router = addParam({hid, e}, prefix + "router", false);
  rec.w1 = addParam({localExperts, hid, f}, prefix + "experts.w1", true);
  rec.w2 = addParam({localExperts, f, hid}, prefix + "experts.w2", true);

  auto gate = b.create<GateOp>(
      loc, RankedTensorType::get({tokens, k}, b.getI32Type()),
      tensor({tokens, k}), h, param(rec.router), b.getI64IntegerAttr(e),
      b.getI64IntegerAttr(k), b.getF64FloatAttr(opts.capacityFactor));
  rec.ids = gate.getExpertIds();
  rec.gateWeights = gate.getGateWeights();
  RankedTensorType bufType = tensor({e, capacity, hid});
  RankedTensorType localType = tensor({localExperts, opts.ep * capacity, hid});
  Value buf = b.create<DispatchOp>(loc, bufType, h, rec.ids);
  rec.received = b.create<AllToAllOp>(loc, localType, buf, Value(), Value(),
                                      group(kExpertGroup), 0, 1, PriorityAttr(),
                                      ChunkAttr());
  Value out = b.create<ExpertFfnOp>(loc, localType, rec.received, param(rec.w1),
                                    param(rec.w2), activation(spec.activation),
                                    ChunkAttr());
  rec.returned = b.create<AllToAllOp>(loc, bufType, out, Value(), Value(),
                                      group(kExpertGroup), 1, 0, PriorityAttr(),
                                      ChunkAttr());
  Value y = b.create<CombineOp>(loc, act(hid), rec.returned, rec.ids,
                                rec.gateWeights);
  if (spec.sharedIntermediate > 0) {
    rec.shared.emplace();
    y = add(y, forwardFfn(prefix + "shared.", h, *rec.shared,
                          spec.sharedIntermediate));
  }
  return y;
}

/// Multi-head latent attention (DeepSeek-V2/V3): the weights and GEMMs of
/// the query path (H -> q_lora_rank -> heads * qk_head_dim, or H -> heads *
/// qk_head_dim), of the key/value path (H -> kv_lora_rank + rope, the latent
/// -> heads * (nope + v)) and of the output projection. As for grouped-query
/// attention the scores are not modelled: the context is the first
/// heads * v_head_dim query columns plus the value columns, so both paths
/// get gradients.
Value IRGenerator::forwardLatentAttention(const std::string &prefix, Value h,
                                          SelfAttention &sa) {
  const LatentAttentionSpec &la = *spec.latent;
  int64_t hid = spec.hidden, nh = spec.numHeads;
  int64_t qWidth = nh * la.qkHeadDim(), vWidth = nh * la.vHeadDim;
  int64_t nopeWidth = nh * la.qkNopeHeadDim;
  sa.latent = true;
  sa.input = h;
  Value q;
  if (la.qLoraRank > 0) {
    sa.wqA = addParam({hid, la.qLoraRank}, prefix + "attn.wq_a", false);
    sa.wqB = addParam({la.qLoraRank, qWidth}, prefix + "attn.wq_b", false);
    sa.qLatent = dense(h, sa.wqA, Activation::none);
    q = dense(sa.qLatent, sa.wqB, Activation::none);
  } else {
    sa.wqB = addParam({hid, qWidth}, prefix + "attn.wq", false);
    q = dense(h, sa.wqB, Activation::none);
  }
  sa.wkvA = addParam({hid, la.kvLoraRank + la.qkRopeHeadDim},
                     prefix + "attn.wkv_a", false);
  sa.wkvB = addParam({la.kvLoraRank, nopeWidth + vWidth}, prefix + "attn.wkv_b",
                     false);
  sa.wo = addParam({vWidth, hid}, prefix + "attn.wo", false);
  Value kvA = dense(h, sa.wkvA, Activation::none);
  sa.kvLatent = la.qkRopeHeadDim > 0 ? columns(kvA, 0, la.kvLoraRank) : kvA;
  Value kv = dense(sa.kvLatent, sa.wkvB, Activation::none);
  Value qPart = vWidth == qWidth ? q : columns(q, 0, vWidth);
  sa.context = add(qPart, columns(kv, nopeWidth, vWidth));
  return dense(sa.context, sa.wo, Activation::none);
}

Value IRGenerator::backwardLatentAttention(const SelfAttention &sa, Value g) {
  const LatentAttentionSpec &la = *spec.latent;
  int64_t nh = spec.numHeads;
  int64_t qWidth = nh * la.qkHeadDim(), vWidth = nh * la.vHeadDim;
  int64_t nopeWidth = nh * la.qkNopeHeadDim;
  Value dContext = denseGrad(g, sa.context, sa.wo, Activation::none);
  // Query path: the context used the first vWidth query columns.
  Value dq = vWidth == qWidth
                 ? dContext
                 : b.create<tensor::ConcatOp>(
                       loc, 1, ValueRange{dContext, zeros(qWidth - vWidth)});
  Value dIn;
  if (la.qLoraRank > 0) {
    Value dqLatent = denseGrad(dq, sa.qLatent, sa.wqB, Activation::none);
    dIn = denseGrad(dqLatent, sa.input, sa.wqA, Activation::none);
  } else {
    dIn = denseGrad(dq, sa.input, sa.wqB, Activation::none);
  }
  // Key/value path: the value columns follow the no-RoPE key columns.
  Value dkv = nopeWidth == 0
                  ? dContext
                  : b.create<tensor::ConcatOp>(
                        loc, 1, ValueRange{zeros(nopeWidth), dContext});
  Value dkvLatent = denseGrad(dkv, sa.kvLatent, sa.wkvB, Activation::none);
  Value dkvA = la.qkRopeHeadDim > 0
                   ? b.create<tensor::ConcatOp>(
                         loc, 1, ValueRange{dkvLatent, zeros(la.qkRopeHeadDim)})
                   : dkvLatent;
  return add(dIn, denseGrad(dkvA, sa.input, sa.wkvA, Activation::none));
}

Value IRGenerator::forwardStack(const StackSpec &stack, Value x, Value encoder,
                                std::vector<LayerRecord> &records) {
  int64_t hid = spec.hidden, hd = spec.headDim;
  int64_t qWidth = spec.numHeads * hd, kvWidth = spec.numKvHeads * hd;
  Value h = x;
  for (size_t i = 0; i < stack.moeLayers.size(); ++i) {
    std::string prefix = layerName(stack, i);
    LayerRecord &rec = records.emplace_back();

    SelfAttention &sa = rec.self;
    if (spec.latent) {
      h = add(h, forwardLatentAttention(prefix, h, sa));
      Value f;
      if (stack.moeLayers[i])
        f = forwardMoE(prefix + "moe.", h, rec.moe.emplace());
      else
        f = forwardFfn(prefix + "ffn.", h, rec.dense.emplace(),
                       spec.denseIntermediate);
      h = add(h, f);
      continue;
    }

    // Self-attention: fused QKV projection; the query columns stand in for
    // the attention context (the score computation is not modelled).
    sa.input = h;
    sa.wqkv =
        addParam({hid, qWidth + 2 * kvWidth}, prefix + "attn.wqkv", false);
    sa.wo = addParam({qWidth, hid}, prefix + "attn.wo", false);
    Value qkv = dense(h, sa.wqkv, Activation::none);
    sa.context = columns(qkv, 0, qWidth);
    h = add(h, dense(sa.context, sa.wo, Activation::none));

    // Cross-attention: queries from the decoder, keys and values from the
    // encoder output; context = query + value.
    if (stack.crossAttention) {
      CrossAttention &ca = rec.cross.emplace();
      ca.input = h;
      ca.encoder = encoder;
      ca.wq = addParam({hid, qWidth}, prefix + "cross_attn.wq", false);
      ca.wkv = addParam({hid, 2 * qWidth}, prefix + "cross_attn.wkv", false);
      ca.wo = addParam({qWidth, hid}, prefix + "cross_attn.wo", false);
      Value q = dense(h, ca.wq, Activation::none);
      Value kv = dense(encoder, ca.wkv, Activation::none);
      ca.context = add(q, columns(kv, qWidth, qWidth));
      h = add(h, dense(ca.context, ca.wo, Activation::none));
    }

    Value f;
    if (stack.moeLayers[i]) {
      f = forwardMoE(prefix + "moe.", h, rec.moe.emplace());
    } else {
      f = forwardFfn(prefix + "ffn.", h, rec.dense.emplace(),
                     spec.denseIntermediate);
    }
    h = add(h, f);
  }
  return h;
}

Value IRGenerator::backwardFfn(const DenseFfn &rec, Value dy) {
  Value dHidden = denseGrad(dy, rec.hidden, rec.w2, Activation::none);
  return denseGrad(dHidden, rec.input, rec.w1, spec.activation);
}

Value IRGenerator::backwardMoE(const MoEBlock &rec, Value dy) {
  int64_t hid = spec.hidden;
  RankedTensorType bufType = tensor({spec.numExperts, capacity, hid});
  RankedTensorType localType = tensor({localExperts, opts.ep * capacity, hid});
  auto comb =
      b.create<CombineGradOp>(loc, bufType, rec.gateWeights.getType(), dy,
                              rec.returned, rec.ids, rec.gateWeights);
  Value dOut = b.create<AllToAllOp>(loc, localType, comb.getInputGrad(),
                                    Value(), Value(), group(kExpertGroup), 0, 1,
                                    PriorityAttr(), ChunkAttr());
  auto ffn = b.create<ExpertFfnGradOp>(
      loc, localType, param(rec.w1).getType(), param(rec.w2).getType(), dOut,
      rec.received, param(rec.w1), param(rec.w2), activation(spec.activation),
      ChunkAttr());
  reduce(rec.w1, ffn.getW1Grad());
  reduce(rec.w2, ffn.getW2Grad());
  Value dBuf = b.create<AllToAllOp>(loc, bufType, ffn.getInputGrad(), Value(),
                                    Value(), group(kExpertGroup), 1, 0,
                                    PriorityAttr(), ChunkAttr());
  Value dDispatch = b.create<DispatchGradOp>(loc, act(hid), dBuf, rec.ids);
  auto gate = b.create<GateGradOp>(loc, act(hid), param(rec.router).getType(),
                                   comb.getGateWeightsGrad(), rec.input,
                                   param(rec.router), rec.ids);
  reduce(rec.router, gate.getWeightGrad());
  SmallVector<Value> parts = {dDispatch, gate.getInputGrad()};
  if (rec.shared)
    parts.push_back(backwardFfn(*rec.shared, dy));
  return addAll(parts);
}

Value IRGenerator::backwardStack(std::vector<LayerRecord> &records, Value dy,
                                 Value &encoderGrad) {
  int64_t qWidth = spec.numHeads * spec.headDim;
  int64_t kvWidth = spec.numKvHeads * spec.headDim;
  Value g = dy;
  for (LayerRecord &rec : llvm::reverse(records)) {
    // h_out = h_mid + ffn(h_mid): the residual passes g through.
    Value dFfn =
        rec.moe ? backwardMoE(*rec.moe, g) : backwardFfn(*rec.dense, g);
    g = add(g, dFfn);

    if (rec.cross) {
      CrossAttention &ca = *rec.cross;
      Value dContext = denseGrad(g, ca.context, ca.wo, Activation::none);
      Value dQuery = denseGrad(dContext, ca.input, ca.wq, Activation::none);
      Value dKv = b.create<tensor::ConcatOp>(
          loc, 1, ValueRange{zeros(qWidth), dContext});
      Value dEnc = denseGrad(dKv, ca.encoder, ca.wkv, Activation::none);
      encoderGrad = encoderGrad ? add(encoderGrad, dEnc) : dEnc;
      g = add(g, dQuery);
    }

    SelfAttention &sa = rec.self;
    if (sa.latent) {
      g = add(g, backwardLatentAttention(sa, g));
      continue;
    }
    Value dContext = denseGrad(g, sa.context, sa.wo, Activation::none);
    Value dQkv = b.create<tensor::ConcatOp>(
        loc, 1, ValueRange{dContext, zeros(2 * kvWidth)});
    g = add(g, denseGrad(dQkv, sa.input, sa.wqkv, Activation::none));
  }
  return g;
}

OwningOpRef<ModuleOp> IRGenerator::build() {
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module->getBody());

  // Grid [dp, ep]: experts are split over axis 1 and replicated over axis 0.
  SmallVector<NamedAttribute> groups = {
      b.getNamedAttr(kDenseGroup, b.getDenseI64ArrayAttr({0, 1})),
      b.getNamedAttr(kExpertGroup, b.getDenseI64ArrayAttr({1})),
      b.getNamedAttr(kExpertDpGroup, b.getDenseI64ArrayAttr({0})),
  };
  b.create<GridOp>(loc, b.getStringAttr(kGrid),
                   b.getDenseI64ArrayAttr({opts.dp, opts.ep}),
                   b.getDictionaryAttr(groups));

  auto func = b.create<func::FuncOp>(
      loc, opts.training ? "train_step" : "forward", b.getFunctionType({}, {}));
  body = func.addEntryBlock();
  b.setInsertionPointToStart(body);

  bool encDec = spec.stacks.size() > 1;
  SmallVector<Value> inputs;
  for (const StackSpec &stack : spec.stacks)
    if (!stack.crossAttention || !encDec)
      inputs.push_back(
          addArgument(act(spec.hidden), encDec ? stack.name + ".x" : "x"));
  if (encDec)
    inputs.push_back(addArgument(act(spec.hidden), "decoder.x"));

  // Forward.
  std::vector<std::vector<LayerRecord>> records(spec.stacks.size());
  Value encoderOut;
  Value y;
  for (auto [i, stack] : llvm::enumerate(spec.stacks)) {
    Value x = stack.crossAttention ? inputs[1] : inputs[0];
    y = forwardStack(stack, x, encoderOut, records[i]);
    if (!stack.crossAttention)
      encoderOut = y;
  }

  SmallVector<Value> results = {y};
  if (opts.training) {
    Value dy = addArgument(act(spec.hidden), "dy");
    Value encoderGrad;
    SmallVector<Value> inputGrads(inputs.size());
    for (size_t i = spec.stacks.size(); i-- > 0;) {
      const StackSpec &stack = spec.stacks[i];
      if (stack.crossAttention) {
        inputGrads[1] = backwardStack(records[i], dy, encoderGrad);
        continue;
      }
      // An encoder's output gradient comes from the decoder's
      // cross-attention; a decoder-only stack gets %dy.
      Value g = encDec ? encoderGrad : dy;
      inputGrads[0] = backwardStack(records[i], g, encoderGrad);
    }
    results.append(inputGrads.begin(), inputGrads.end());
    for (const Param &p : params)
      results.push_back(p.grad);
  }
  b.create<func::ReturnOp>(loc, results);

  SmallVector<Type> argTypes(body->getArgumentTypes());
  func.setFunctionType(
      b.getFunctionType(argTypes, ValueRange(results).getTypes()));
  for (auto [i, name] : llvm::enumerate(argNames))
    func.setArgAttr(i, "lina.name", b.getStringAttr(name));
  return module;
}

} // namespace

OwningOpRef<ModuleOp>
mlir::lina::import::buildModel(MLIRContext &context, const ModelSpec &spec,
                               const ImportOptions &options, StringRef source) {
  return IRGenerator(context, spec, options, source).build();
}
