//===- Summary.h - Parameter, FLOP and traffic summary ----------*- C++ -*-===//
//
// Part of the Lina project.
//
// `lina-import --summary`: what a model costs, computed from its config
// (including the embedding, LM head, norms, biases and vision encoder the IR
// leaves out):
// total and active parameters by kind, FLOPs per token, all_to_all bytes
// per MoE layer and gradient bytes per step on the chosen grid. Every count
// is computed with overflow-checked arithmetic.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_TOOLS_LINA_IMPORT_SUMMARY_H
#define LINA_TOOLS_LINA_IMPORT_SUMMARY_H

#include "ModelBuilder.h"
#include "ModelConfig.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <array>
#include <cstdint>

namespace mlir::lina::import {

/// The kinds of parameters the summary counts separately.
enum class ParamKind {
  Attention,
  DenseFfn,
  Router,
  SharedExperts,
  RoutedExperts,
  Embedding,
  LmHead,
  Norms,
  /// The vision encoder, its adapter and the multimodal projector of a
  /// multimodal config: in the total, never active per text token.
  Vision,
};
constexpr size_t kNumParamKinds = 9;

struct ParamCounts {
  /// Per kind: every parameter, and those one token uses.
  std::array<int64_t, kNumParamKinds> total{}, active{};
  int64_t sumTotal() const;
  int64_t sumActive() const;
};

/// Counts the parameters of `spec`; an error if a count overflows int64_t.
llvm::Expected<ParamCounts> countParameters(const ModelSpec &spec);

/// Prints the summary of `spec` on the grid and batch of `options`.
llvm::Error printSummary(llvm::raw_ostream &os, const ModelSpec &spec,
                         const ImportOptions &options, llvm::StringRef source);

} // namespace mlir::lina::import

#endif // LINA_TOOLS_LINA_IMPORT_SUMMARY_H
