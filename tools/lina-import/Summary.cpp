//===- Summary.cpp - Parameter, FLOP and traffic summary ------------------===//
//
// Part of the Lina project.
//
// Counts follow the Hugging Face modules of each family: every projection,
// bias, norm and embedding a checkpoint stores. "Active" parameters are
// those a token uses: everything but the routed experts it is not sent to.
// docs/IMPORT.md compares the totals with the publishers' counts.
//
//===----------------------------------------------------------------------===//

#include "Summary.h"

#include "lina/Support/CheckedMath.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"

using namespace llvm;
using namespace mlir::lina::import;

namespace {

/// An int64_t that remembers overflow instead of wrapping.
class Count {
public:
  Count(int64_t v = 0) : value(v) {}
  friend Count operator+(Count a, Count b) {
    if (!a.ok || !b.ok)
      return overflowed();
    std::optional<int64_t> r = ::lina::checkedAdd(a.value, b.value);
    return r ? Count(*r) : overflowed();
  }
  friend Count operator*(Count a, Count b) {
    if (!a.ok || !b.ok)
      return overflowed();
    std::optional<int64_t> r = ::lina::checkedMul(a.value, b.value);
    return r ? Count(*r) : overflowed();
  }
  Count &operator+=(Count o) { return *this = *this + o; }
  bool valid() const { return ok; }
  int64_t get() const { return value; }

private:
  static Count overflowed() {
    Count c;
    c.ok = false;
    return c;
  }
  int64_t value = 0;
  bool ok = true;
};

/// Accumulates the parameters of a model by kind.
struct Counter {
  std::array<Count, kNumParamKinds> total, active;
  /// Weights of the matrix products one token goes through (2 FLOPs each).
  Count matmulActive;

  void add(ParamKind kind, Count all, Count used) {
    total[size_t(kind)] += all;
    active[size_t(kind)] += used;
  }
  void add(ParamKind kind, Count n) { add(kind, n, n); }
};

class ParameterCounter {
public:
  explicit ParameterCounter(const ModelSpec &spec) : spec(spec) {}
  Counter run();

private:
  Count norm() const {
    return spec.norm == NormKind::ScaleBias ? Count(2) * spec.hidden
                                            : Count(spec.hidden);
  }
  void selfAttention(Counter &c);
  void crossAttention(Counter &c);
  void denseFfn(Counter &c, int64_t intermediate, ParamKind kind);
  void moe(Counter &c);
  void vision(Counter &c, const VisionSpec &v);

  const ModelSpec &spec;
};

void ParameterCounter::selfAttention(Counter &c) {
  Count h = spec.hidden, nh = spec.numHeads;
  Count weights, biases;
  if (const LatentAttentionSpec *la = spec.latent ? &*spec.latent : nullptr) {
    Count qk = la->qkHeadDim();
    if (la->qLoraRank > 0) {
      weights += h * la->qLoraRank + Count(la->qLoraRank) * nh * qk;
      c.add(ParamKind::Norms, la->qLoraRank);
      if (spec.qkvBias)
        biases += la->qLoraRank;
    } else {
      weights += h * nh * qk;
    }
    Count kvA = Count(la->kvLoraRank) + la->qkRopeHeadDim;
    weights +=
        h * kvA +
        Count(la->kvLoraRank) * nh * (Count(la->qkNopeHeadDim) + la->vHeadDim) +
        nh * la->vHeadDim * h;
    c.add(ParamKind::Norms, la->kvLoraRank);
    if (spec.qkvBias)
      biases += kvA;
  } else {
    Count q = nh * spec.headDim, kv = Count(spec.numKvHeads) * spec.headDim;
    weights += h * q + Count(2) * h * kv + q * h;
    if (spec.qkvBias)
      biases += q + Count(2) * kv;
    switch (spec.qkNorm) {
    case QkNormKind::None:
      break;
    case QkNormKind::PerHead:
      c.add(ParamKind::Norms, Count(2) * spec.headDim);
      break;
    case QkNormKind::Full:
      c.add(ParamKind::Norms, q + kv);
      break;
    }
  }
  if (spec.outBias)
    biases += h;
  if (spec.attentionSinks)
    biases += nh;
  c.add(ParamKind::Attention, weights + biases);
  c.matmulActive += weights;
}

void ParameterCounter::crossAttention(Counter &c) {
  Count h = spec.hidden, q = Count(spec.numHeads) * spec.headDim;
  Count weights = Count(4) * h * q;
  c.add(ParamKind::Attention, weights);
  c.matmulActive += weights;
  c.add(ParamKind::Norms, norm());
}

void ParameterCounter::denseFfn(Counter &c, int64_t intermediate,
                                ParamKind kind) {
  Count weights = Count(spec.gated ? 3 : 2) * spec.hidden * intermediate;
  c.add(kind, weights);
  c.matmulActive += weights;
}

void ParameterCounter::moe(Counter &c) {
  Count h = spec.hidden, e = spec.numExperts;
  Count expertWeights = Count(spec.gated ? 3 : 2) * h * spec.expertIntermediate;
  Count expert = expertWeights;
  if (spec.expertBias)
    expert += Count(spec.gated ? 2 : 1) * spec.expertIntermediate + h;
  c.add(ParamKind::RoutedExperts, e * expert, Count(spec.topK) * expert);
  c.matmulActive += Count(spec.topK) * expertWeights;

  c.add(ParamKind::Router, h * e + (spec.routerBias ? e : Count(0)));
  c.matmulActive += h * e;

  if (spec.sharedIntermediate > 0) {
    denseFfn(c, spec.sharedIntermediate, ParamKind::SharedExperts);
    if (spec.sharedExpertGate) {
      c.add(ParamKind::SharedExperts, h);
      c.matmulActive += h;
    }
  }
}

/// Hugging Face's Llama4VisionModel and Llama4MultiModalProjector: none of
/// it is active for a text token, and none of it is in the FLOPs per token.
void ParameterCounter::vision(Counter &c, const VisionSpec &v) {
  Count h = v.hidden, inner = v.intermediate;
  Count layerNorm = Count(2) * h;
  // q, k, v and o projections with biases; fc1 and fc2 with biases; two
  // LayerNorms with bias.
  Count layer = Count(4) * (h * h + h) + h * inner + inner + inner * h + h +
                Count(2) * layerNorm;
  Count side = v.patchesPerSide();
  // The patch embedding is an unfold and a linear map without bias; the
  // positional embedding has a row per patch and one for the class token.
  Count embeddings = Count(v.numChannels) * v.patchSize * v.patchSize * h + h +
                     (side * side + 1) * h;
  // layernorm_pre and layernorm_post.
  Count norms = Count(2) * layerNorm;
  // The pixel-shuffle adapter MLP (no biases) and the projector to the text
  // hidden size (no bias).
  Count adapter = inner * v.projectorInputDim +
                  Count(v.projectorOutputDim) * v.projectorOutputDim;
  Count projector = Count(v.visionOutputDim) * spec.hidden;
  c.add(ParamKind::Vision,
        Count(v.layers) * layer + embeddings + norms + adapter + projector, 0);
}

Counter ParameterCounter::run() {
  Counter c;
  for (const StackSpec &stack : spec.stacks) {
    // Switch (T5): a relative position bias in the first layer of a stack.
    if (spec.relativeAttentionBuckets > 0)
      c.add(ParamKind::Attention,
            Count(spec.relativeAttentionBuckets) * spec.numHeads);
    for (bool isMoE : stack.moeLayers) {
      c.add(ParamKind::Norms, Count(2) * norm());
      selfAttention(c);
      if (stack.crossAttention)
        crossAttention(c);
      if (isMoE)
        moe(c);
      else
        denseFfn(c, spec.denseIntermediate, ParamKind::DenseFfn);
    }
    // The final norm of the stack.
    c.add(ParamKind::Norms, norm());
  }
  Count table = Count(spec.vocab) * spec.hidden;
  c.add(ParamKind::Embedding, table);
  if (!spec.tieEmbeddings)
    c.add(ParamKind::LmHead, table);
  if (spec.lmHeadBias)
    c.add(ParamKind::LmHead, spec.vocab);
  c.matmulActive += table;
  if (spec.vision)
    vision(c, *spec.vision);
  return c;
}

/// "46.70 B" style, for reading; the exact count is printed next to it.
std::string human(double v) {
  const char *units[] = {"", " K", " M", " B", " T"};
  int u = 0;
  while (std::fabs(v) >= 1000.0 && u < 4) {
    v /= 1000.0;
    ++u;
  }
  return formatv("{0:f2}{1}", v, units[u]).str();
}

StringRef kindLabel(ParamKind k) {
  switch (k) {
  case ParamKind::Attention:
    return "attention";
  case ParamKind::DenseFfn:
    return "dense FFN";
  case ParamKind::Router:
    return "router";
  case ParamKind::SharedExperts:
    return "shared experts";
  case ParamKind::RoutedExperts:
    return "routed experts";
  case ParamKind::Embedding:
    return "embedding";
  case ParamKind::LmHead:
    return "LM head";
  case ParamKind::Norms:
    return "norms";
  case ParamKind::Vision:
    return "vision encoder + projector";
  }
  llvm_unreachable("unknown parameter kind");
}

/// The sum over the positions of a sequence of `seq` tokens of the number
/// of keys each attends to: causal, with a sliding window or in chunks of
/// `window` tokens (0: full causal attention).
double attendedKeys(int64_t seq, int64_t window, bool chunked) {
  auto tri = [](double n) { return n * (n + 1.0) / 2.0; };
  double s = static_cast<double>(seq);
  if (window <= 0 || window >= seq)
    return tri(s);
  double w = static_cast<double>(window);
  if (chunked)
    return static_cast<double>(seq / window) * tri(w) +
           tri(static_cast<double>(seq % window));
  return tri(w) + (s - w) * w;
}

Error overflow(StringRef what) {
  return createStringError(inconvertibleErrorCode(),
                           "the " + what +
                               " of this model overflow a 64-bit count");
}

} // namespace

int64_t ParamCounts::sumTotal() const {
  int64_t s = 0;
  for (int64_t v : total)
    s += v;
  return s;
}

int64_t ParamCounts::sumActive() const {
  int64_t s = 0;
  for (int64_t v : active)
    s += v;
  return s;
}

Expected<ParamCounts>
mlir::lina::import::countParameters(const ModelSpec &spec) {
  Counter c = ParameterCounter(spec).run();
  ParamCounts out;
  Count sumT, sumA;
  for (size_t k = 0; k < kNumParamKinds; ++k) {
    sumT += c.total[k];
    sumA += c.active[k];
    out.total[k] = c.total[k].get();
    out.active[k] = c.active[k].get();
  }
  if (!sumT.valid() || !sumA.valid())
    return overflow("parameter counts");
  return out;
}

Error mlir::lina::import::printSummary(raw_ostream &os, const ModelSpec &spec,
                                       const ImportOptions &opts,
                                       StringRef source) {
  Expected<ParamCounts> counts = countParameters(spec);
  if (!counts)
    return counts.takeError();
  Counter c = ParameterCounter(spec).run();
  if (!c.matmulActive.valid())
    return overflow("FLOPs per token");

  int64_t layers = 0, moeLayers = 0;
  for (const StackSpec &s : spec.stacks) {
    layers += static_cast<int64_t>(s.moeLayers.size());
    moeLayers += llvm::count(s.moeLayers, true);
  }
  int64_t eltBytes = opts.dtype == ElementType::f32 ? 4 : 2;
  StringRef eltName = opts.dtype == ElementType::f32    ? "f32"
                      : opts.dtype == ElementType::bf16 ? "bf16"
                                                        : "f16";
  int64_t tokens = opts.microBatch * opts.seq;

  os << "model: " << source << " (" << spec.modelType() << ")\n";
  os << formatv("layers: {0} ({1} MoE); hidden {2}; ", layers, moeLayers,
                spec.hidden);
  if (spec.numExperts > 0)
    os << formatv("experts {0}, top-{1}", spec.numExperts, spec.topK);
  else
    os << "no experts";
  if (spec.numShared > 0)
    os << formatv(", {0} shared", spec.numShared);
  os << "\n";
  if (const VisionSpec *v = spec.vision ? &*spec.vision : nullptr)
    os << formatv("vision encoder: {0} layers; hidden {1}; {2} x {2} patches "
                  "of {3} + class token; projector {4} -> {5}\n",
                  v->layers, v->hidden, v->patchesPerSide(), v->patchSize,
                  v->visionOutputDim, spec.hidden);
  os << formatv("grid: dp {0} x ep {1} = {2} ranks; {3} x {4} = {5} tokens "
                "per rank; {6}; {7}\n",
                opts.dp, opts.ep, opts.dp * opts.ep, opts.microBatch, opts.seq,
                tokens, eltName, opts.training ? "train" : "infer");

  // Wide enough for "vision encoder + projector".
  os << formatv("{0,-30}{1,16}{2,22}\n", "parameters", "total",
                "active per token");
  for (size_t k = 0; k < kNumParamKinds; ++k) {
    // Only a multimodal config has a vision encoder.
    if (ParamKind(k) == ParamKind::Vision && !spec.vision)
      continue;
    os << formatv("  {0,-28}{1,16}{2,22}\n", kindLabel(ParamKind(k)),
                  counts->total[k], counts->active[k]);
  }
  int64_t total = counts->sumTotal(), active = counts->sumActive();
  os << formatv("  {0,-28}{1,16}{2,22}\n", "total", total, active);
  os << formatv("total {0}, active {1} per token\n", human(double(total)),
                human(double(active)));
  if (spec.vision) {
    int64_t text = total - counts->total[size_t(ParamKind::Vision)];
    os << formatv("total without the vision encoder and projector: {0} "
                  "({1})\n",
                  text, human(double(text)));
  }
  int64_t embedding = counts->total[size_t(ParamKind::Embedding)];
  int64_t lmHead = counts->total[size_t(ParamKind::LmHead)];
  // A tied table is also the LM head: it stays in the first figure.
  int64_t withoutInput = spec.tieEmbeddings ? active : active - embedding;
  int64_t nonEmbedding = active - embedding - lmHead;
  os << formatv("total without embedding and LM head: {0} ({1})\n",
                total - embedding - lmHead,
                human(double(total - embedding - lmHead)));
  os << formatv("active without the input embedding: {0} ({1})\n", withoutInput,
                human(double(withoutInput)));
  os << formatv("active without embedding and LM head: {0} ({1})\n",
                nonEmbedding, human(double(nonEmbedding)));
  if (spec.vocab == 0)
    os << "not counted: the embedding and LM head (the config has no "
          "vocab_size)\n";
  if (spec.mtpLayers > 0)
    os << formatv("not counted: {0} multi-token-prediction layer(s), which "
                  "the Hugging Face model does not load\n",
                  spec.mtpLayers);
  if (spec.vision)
    os << "not counted in the FLOPs: the vision encoder, adapter and "
          "projector (they run per image, not per text token)\n";

  // FLOPs per token: 2 per weight of every matrix product, plus the
  // attention scores (QK^T and AV) over the keys each token attends to.
  double scores = 0.0;
  for (const StackSpec &s : spec.stacks) {
    double qk = double(spec.numHeads) *
                double(spec.latent ? spec.latent->qkHeadDim() : spec.headDim);
    double v = double(spec.numHeads) *
               double(spec.latent ? spec.latent->vHeadDim : spec.headDim);
    bool encoder = spec.stacks.size() > 1 && !s.crossAttention;
    for (size_t i = 0; i < s.moeLayers.size(); ++i) {
      int64_t w = s.window.empty() ? 0 : s.window[i];
      // A Switch encoder attends both ways: every token sees all S.
      double keys = encoder ? double(opts.seq) * double(opts.seq)
                            : attendedKeys(opts.seq, w, spec.chunkedAttention);
      scores += 2.0 * (qk + v) * keys / double(opts.seq);
      if (s.crossAttention)
        scores += 2.0 * (qk + v) * double(opts.seq);
    }
  }
  double matmul = 2.0 * double(c.matmulActive.get());
  os << formatv("FLOPs per token, forward: {0} (matrix products {1}, "
                "attention scores {2} at seq {3})\n",
                format("%.0f", matmul + scores), format("%.0f", matmul),
                format("%.0f", scores), opts.seq);
  os << formatv("FLOPs per token, training step (3x forward): {0}\n",
                format("%.0f", 3.0 * (matmul + scores)));

  if (moeLayers > 0) {
    int64_t capacity = computeCapacity(tokens, spec.topK, spec.numExperts,
                                       opts.capacityFactor);
    Count bytes = Count(spec.numExperts) * capacity * spec.hidden * eltBytes;
    if (!bytes.valid())
      return overflow("all_to_all bytes");
    int64_t offRank = bytes.get() / opts.ep * (opts.ep - 1);
    os << formatv("all_to_all per MoE layer and rank: buffer [{0}, {1}, {2}] "
                  "{3} = {4} bytes, {5} of them to other ranks; {6} "
                  "all_to_alls per MoE layer ({7} in the step)\n",
                  spec.numExperts, capacity, spec.hidden, eltName, bytes.get(),
                  offRank, opts.training ? 4 : 2,
                  (opts.training ? 4 : 2) * moeLayers);
  }

  if (opts.training) {
    int64_t routed = counts->total[size_t(ParamKind::RoutedExperts)];
    Count dense = Count(total - routed) * eltBytes;
    Count expert = Count(routed / opts.ep) * eltBytes;
    if (!dense.valid() || !expert.valid())
      return overflow("gradient bytes");
    int64_t denseRanks = opts.dp * opts.ep;
    os << formatv("gradient bytes per step and rank: dense {0} (all-reduce "
                  "over {1} ranks), experts {2} (over {3} ranks); "
                  "all-reduced {4}\n",
                  dense.get(), denseRanks, expert.get(), opts.dp,
                  (denseRanks > 1 ? dense.get() : 0) +
                      (opts.dp > 1 ? expert.get() : 0));
  }
  return Error::success();
}
