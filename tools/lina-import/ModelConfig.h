//===- ModelConfig.h - Model configurations for lina-import -----*- C++ -*-===//
//
// Part of the Lina project.
//
// Reads a Hugging Face style `config.json` of a Mixture-of-Experts model
// (Mixtral, Switch Transformers, DeepSeek-MoE/V2/V3, Qwen-MoE, Qwen3-MoE,
// OLMoE, gpt-oss, Llama 4 text or multimodal, Phi-MoE, Granite-MoE, DBRX)
// and normalises it into a ModelSpec: the layer stacks, which layers are
// MoE layers, the shapes lina-import needs, and the parameters the IR does
// not model (embeddings, norms, biases, a vision encoder) for `--summary`.
// The accepted fields and how each maps onto the IR are documented in
// docs/IMPORT.md.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_TOOLS_LINA_IMPORT_MODELCONFIG_H
#define LINA_TOOLS_LINA_IMPORT_MODELCONFIG_H

#include "lina/Dialect/Lina/IR/LinaDialect.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlir::lina::import {

enum class ModelFamily {
  Mixtral,
  Switch,
  DeepSeekMoE,
  DeepSeekV2,
  DeepSeekV3,
  QwenMoE,
  Qwen3MoE,
  OLMoE,
  GptOss,
  Llama4,
  PhiMoE,
  GraniteMoE,
  Dbrx,
};

/// The `model_type` spelling of a family.
llvm::StringRef getFamilyName(ModelFamily family);

/// One stack of transformer layers.
struct StackSpec {
  /// Prefix of the parameter names: "layers", "encoder" or "decoder".
  std::string name;
  /// Per layer: true for an MoE layer, false for a dense FFN layer.
  std::vector<bool> moeLayers;
  /// Decoder layers of an encoder-decoder model also attend to the encoder.
  bool crossAttention = false;
  /// Per layer: the attention window in tokens (sliding-window or chunked
  /// attention), 0 for full causal attention. Empty: every layer is full.
  std::vector<int64_t> window;
};

/// Multi-head latent attention (DeepSeek-V2/V3): low-rank query and
/// key/value projections.
struct LatentAttentionSpec {
  /// 0: the query is projected directly (`q_lora_rank` null).
  int64_t qLoraRank = 0;
  int64_t kvLoraRank = 0;
  int64_t qkNopeHeadDim = 0;
  int64_t qkRopeHeadDim = 0;
  int64_t vHeadDim = 0;
  int64_t qkHeadDim() const { return qkNopeHeadDim + qkRopeHeadDim; }
};

/// The vision encoder of a multimodal Llama 4 checkpoint (`vision_config`
/// of `model_type` `llama4`) and the projector into the text model. The IR
/// models only the text decoder; `--summary` counts these parameters in the
/// total, not in the parameters a text token uses.
struct VisionSpec {
  int64_t hidden = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  /// Width of the encoder MLP, and the input of the pixel-shuffle adapter.
  int64_t intermediate = 0;
  int64_t imageSize = 0;
  int64_t patchSize = 0;
  int64_t numChannels = 0;
  /// The adapter MLP: fc1 [intermediate -> projectorInputDim], fc2
  /// [projectorOutputDim -> projectorOutputDim].
  int64_t projectorInputDim = 0;
  int64_t projectorOutputDim = 0;
  /// Input of the multimodal projector, which maps it to the text hidden
  /// size.
  int64_t visionOutputDim = 0;
  /// Patches per side of the image.
  int64_t patchesPerSide() const { return imageSize / patchSize; }
};

/// How each norm of the model is parameterised.
enum class NormKind {
  /// RMSNorm or LayerNorm without bias: H weights.
  Scale,
  /// LayerNorm with bias: 2 * H.
  ScaleBias,
};

/// Query/key normalisation inside the attention.
enum class QkNormKind {
  None,
  /// One norm of head_dim weights for the queries and one for the keys.
  PerHead,
  /// Norms over the whole query and key projections (OLMoE).
  Full,
};

/// A model configuration reduced to what determines the lina graph.
struct ModelSpec {
  ModelFamily family = ModelFamily::Mixtral;
  int64_t hidden = 0;
  int64_t numHeads = 0;
  int64_t numKvHeads = 0;
  int64_t headDim = 0;
  /// Intermediate size of the dense (non-MoE) FFN layers, as configured.
  int64_t denseIntermediate = 0;
  /// Intermediate size of one routed expert, as configured.
  int64_t expertIntermediate = 0;
  /// Total intermediate size of the shared experts; 0 when there are none.
  int64_t sharedIntermediate = 0;
  /// Gated (GLU-style: gate, up and down projections) FFNs.
  bool gated = false;
  mlir::lina::Activation activation = mlir::lina::Activation::silu;
  int64_t numExperts = 0;
  int64_t topK = 0;
  /// From the config's `capacity_factor`, when present.
  std::optional<double> capacityFactor;
  std::vector<StackSpec> stacks;

  /// Multi-head latent attention instead of grouped-query attention.
  std::optional<LatentAttentionSpec> latent;
  /// Number of shared experts (DeepSeek) or 1 (Qwen2-MoE, Llama 4), and the
  /// intermediate size of each; sharedIntermediate is their product.
  int64_t numShared = 0;
  int64_t sharedExpertIntermediate = 0;

  // Parameters that do not change the IR, counted by --summary.
  int64_t vocab = 0;
  bool tieEmbeddings = false;
  bool lmHeadBias = false;
  NormKind norm = NormKind::Scale;
  /// Biases on the query, key and value projections and on the output
  /// projection.
  bool qkvBias = false;
  bool outBias = false;
  QkNormKind qkNorm = QkNormKind::None;
  /// gpt-oss attention sinks: one learned logit per head.
  bool attentionSinks = false;
  /// Biases of every expert's projections (gpt-oss).
  bool expertBias = false;
  /// Router bias or DeepSeek-V3's score-correction bias: E per MoE layer.
  bool routerBias = false;
  /// Qwen2-MoE's sigmoid gate on the shared expert: H per MoE layer.
  bool sharedExpertGate = false;
  /// Switch (T5): relative position bias of the first layer of each stack
  /// (buckets * heads).
  int64_t relativeAttentionBuckets = 0;
  /// The attention windows of the stacks are chunks (Llama 4: each token
  /// attends to the start of its chunk), not sliding windows.
  bool chunkedAttention = false;
  /// DeepSeek-V3's multi-token-prediction layers, which the Hugging Face
  /// model (and the published total) leaves out.
  int64_t mtpLayers = 0;
  /// The vision encoder of a multimodal config (Llama 4's `llama4`).
  std::optional<VisionSpec> vision;

  /// The `model_type` the config was read as: the family's, or `llama4`
  /// for a multimodal Llama 4 config.
  llvm::StringRef modelType() const {
    return vision ? "llama4" : getFamilyName(family);
  }

  /// Sets the shared experts: `count` experts of `intermediate` each.
  void setShared(int64_t count, int64_t intermediate) {
    numShared = count;
    sharedExpertIntermediate = intermediate;
    sharedIntermediate = count * intermediate;
  }
  /// Width of the modelled (non-gated) FFN for a configured intermediate
  /// size: a gated FFN of size I has 3*H*I weights, modelled as w1 [H, F]
  /// and w2 [F, H] with F = ceil(3*I/2).
  int64_t modelledFfnWidth(int64_t intermediate) const {
    return gated ? (3 * intermediate + 1) / 2 : intermediate;
  }
  bool hasMoELayer() const;
};

/// Upper bounds on config values, far above any published model, so that a
/// typo cannot build a module of 10^12 layers (docs/IMPORT.md).
struct ConfigLimits {
  static constexpr int64_t kMaxLayers = 4096;
  static constexpr int64_t kMaxWidth = int64_t(1) << 24;
  static constexpr int64_t kMaxHeads = int64_t(1) << 16;
  static constexpr int64_t kMaxVocab = int64_t(1) << 31;
  static constexpr double kMaxCapacityFactor = 64.0;
};

/// Overrides that make small test models from a real config. Zero keeps the
/// config's value. The config's own consistency is checked before they are
/// applied.
struct ModelOverrides {
  /// Layers of every stack.
  int64_t layers = 0;
  /// hidden_size (d_model).
  int64_t hidden = 0;
  /// Query heads; key/value heads keep their ratio where it divides.
  int64_t heads = 0;
  /// Every FFN intermediate size: dense layers, each routed and each shared
  /// expert.
  int64_t intermediate = 0;
  /// Routed experts; top-k is clamped to it.
  int64_t experts = 0;
};

/// Parses the JSON text of `path` and applies `overrides`.
llvm::Expected<ModelSpec> parseModelConfig(llvm::StringRef path,
                                           llvm::StringRef text,
                                           const ModelOverrides &overrides);

} // namespace mlir::lina::import

#endif // LINA_TOOLS_LINA_IMPORT_MODELCONFIG_H
