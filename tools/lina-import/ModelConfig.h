//===- ModelConfig.h - Model configurations for lina-import -----*- C++ -*-===//
//
// Part of the Lina project.
//
// Reads a Hugging Face style `config.json` of a Mixture-of-Experts model
// (Mixtral, Switch Transformers, DeepSeek-MoE, Qwen-MoE) and normalises it
// into a ModelSpec: the layer stacks, which layers are MoE layers, and the
// shapes lina-import needs. The accepted fields and how each maps onto the
// IR are documented in docs/IMPORT.md.
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

enum class ModelFamily { Mixtral, Switch, DeepSeekMoE, QwenMoE };

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

  /// Width of the modelled (non-gated) FFN for a configured intermediate
  /// size: a gated FFN of size I has 3*H*I weights, modelled as w1 [H, F]
  /// and w2 [F, H] with F = ceil(3*I/2).
  int64_t modelledFfnWidth(int64_t intermediate) const {
    return gated ? (3 * intermediate + 1) / 2 : intermediate;
  }
  bool hasMoELayer() const;
};

/// Parses the JSON text of `path`. `layersOverride`, when positive, replaces
/// the number of layers of every stack (to make small test models); the
/// config's own consistency is checked before the override.
llvm::Expected<ModelSpec> parseModelConfig(llvm::StringRef path,
                                           llvm::StringRef text,
                                           int64_t layersOverride);

} // namespace mlir::lina::import

#endif // LINA_TOOLS_LINA_IMPORT_MODELCONFIG_H
