//===- ModelConfig.cpp - Model configurations for lina-import -------------===//
//
// Part of the Lina project.
//
// Every field of a config is either a graph field of its family (typed,
// checked, used), on the allow-list of fields that do not change the graph
// (tokenizer ids, positional encoding, normalisation epsilons, loss
// coefficients, ...), or an error that names it: a silently ignored field
// could change the model without changing the IR.
//
//===----------------------------------------------------------------------===//

#include "ModelConfig.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

#include "lina/Support/CheckedMath.h"

#include <cmath>
#include <functional>

using namespace llvm;
using namespace mlir::lina::import;
using mlir::lina::Activation;

StringRef mlir::lina::import::getFamilyName(ModelFamily family) {
  switch (family) {
  case ModelFamily::Mixtral:
    return "mixtral";
  case ModelFamily::Switch:
    return "switch_transformers";
  case ModelFamily::DeepSeekMoE:
    return "deepseek";
  case ModelFamily::DeepSeekV2:
    return "deepseek_v2";
  case ModelFamily::DeepSeekV3:
    return "deepseek_v3";
  case ModelFamily::QwenMoE:
    return "qwen2_moe";
  case ModelFamily::Qwen3MoE:
    return "qwen3_moe";
  case ModelFamily::OLMoE:
    return "olmoe";
  case ModelFamily::GptOss:
    return "gpt_oss";
  case ModelFamily::Llama4:
    return "llama4_text";
  case ModelFamily::PhiMoE:
    return "phimoe";
  case ModelFamily::GraniteMoE:
    return "granitemoe";
  case ModelFamily::Dbrx:
    return "dbrx";
  }
  llvm_unreachable("unknown model family");
}

bool ModelSpec::hasMoELayer() const {
  return llvm::any_of(stacks, [](const StackSpec &s) {
    return llvm::is_contained(s.moeLayers, true);
  });
}

namespace {

using ::lina::Limits;

/// Fields that do not change the lina graph or the parameter count,
/// accepted for every family (docs/IMPORT.md says why each one is
/// irrelevant). Numbers among them must still be finite.
const char *const kIgnoredFields[] = {
    // Bookkeeping and tokenizer.
    "_name_or_path",
    "architectures",
    "auto_map",
    "model_type",
    "torch_dtype",
    "transformers_version",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "decoder_start_token_id",
    "use_cache",
    "initializer_range",
    "initializer_factor",
    "is_decoder",
    "quantization_config",
    "ep_size",
    // Positions, normalisation constants, dropout, scaling constants.
    "rope_theta",
    "rope_scaling",
    "max_position_embeddings",
    "rms_norm_eps",
    "layer_norm_epsilon",
    "attention_dropout",
    "dropout_rate",
    "hidden_dropout",
    "pretraining_tp",
    "relative_attention_max_distance",
    "clip_qkv",
    "original_max_position_embeddings",
    "initial_context_length",
    "attention_multiplier",
    "embedding_multiplier",
    "residual_multiplier",
    "logits_scaling",
    "attn_scale",
    "attn_temperature_tuning",
    "floor_scale",
    "for_llm_compressor",
    "swiglu_limit",
    "emb_pdrop",
    "resid_pdrop",
    "max_seq_len",
    // Router losses, noise and normalisation: same shapes and top-k.
    "output_router_logits",
    "router_aux_loss_coef",
    "router_z_loss_coef",
    "router_jitter_noise",
    "input_jitter_noise",
    "router_dtype",
    "router_ignore_padding_tokens",
    "router_type",
    "add_router_probs",
    "batch_prioritized_routing",
    "expert_capacity",
    "norm_topk_prob",
    "aux_loss_alpha",
    "seq_aux",
    "routed_scaling_factor",
};

enum class Kind {
  Integer,
  Number,
  Bool,
  String,
  IntegerList,
  StringList,
  Object
};

struct FieldSpec {
  const char *name;
  Kind kind;
};

/// Graph fields of each family. Which of them are required is decided by
/// the family's reader.
const FieldSpec kLlamaStyleFields[] = {
    {"hidden_size", Kind::Integer},
    {"intermediate_size", Kind::Integer},
    {"num_hidden_layers", Kind::Integer},
    {"num_attention_heads", Kind::Integer},
    {"num_key_value_heads", Kind::Integer},
    {"head_dim", Kind::Integer},
    {"hidden_act", Kind::String},
    {"num_experts_per_tok", Kind::Integer},
    {"capacity_factor", Kind::Number},
    {"vocab_size", Kind::Integer},
    {"tie_word_embeddings", Kind::Bool},
    {"attention_bias", Kind::Bool},
    {"sliding_window", Kind::Integer},
    {"use_sliding_window", Kind::Bool},
    {"max_window_layers", Kind::Integer},
};
const FieldSpec kMixtralFields[] = {{"num_local_experts", Kind::Integer}};
const FieldSpec kDeepSeekFields[] = {
    {"moe_intermediate_size", Kind::Integer},
    {"n_routed_experts", Kind::Integer},
    {"n_shared_experts", Kind::Integer},
    {"first_k_dense_replace", Kind::Integer},
    {"moe_layer_freq", Kind::Integer},
    {"scoring_func", Kind::String},
    {"topk_method", Kind::String},
};
const FieldSpec kLatentFields[] = {
    {"q_lora_rank", Kind::Integer},
    {"kv_lora_rank", Kind::Integer},
    {"qk_nope_head_dim", Kind::Integer},
    {"qk_rope_head_dim", Kind::Integer},
    {"v_head_dim", Kind::Integer},
    {"n_group", Kind::Integer},
    {"topk_group", Kind::Integer},
    {"num_nextn_predict_layers", Kind::Integer},
};
const FieldSpec kQwenFields[] = {
    {"moe_intermediate_size", Kind::Integer},
    {"shared_expert_intermediate_size", Kind::Integer},
    {"num_experts", Kind::Integer},
    {"decoder_sparse_step", Kind::Integer},
    {"mlp_only_layers", Kind::IntegerList},
};
const FieldSpec kOlmoeFields[] = {{"num_experts", Kind::Integer}};
const FieldSpec kGptOssFields[] = {
    {"num_local_experts", Kind::Integer},
    {"experts_per_token", Kind::Integer},
    {"layer_types", Kind::StringList},
};
const FieldSpec kLlama4Fields[] = {
    {"num_local_experts", Kind::Integer},
    {"intermediate_size_mlp", Kind::Integer},
    {"interleave_moe_layer_step", Kind::Integer},
    {"moe_layers", Kind::IntegerList},
    {"attention_chunk_size", Kind::Integer},
    {"no_rope_layers", Kind::IntegerList},
    {"use_qk_norm", Kind::Bool},
};
/// The top level of a multimodal Llama 4 config (`llama4`): the text
/// decoder, the vision encoder and the image token ids.
const FieldSpec kLlama4MultimodalFields[] = {
    {"text_config", Kind::Object},       {"vision_config", Kind::Object},
    {"tie_word_embeddings", Kind::Bool}, {"image_token_index", Kind::Integer},
    {"boi_token_index", Kind::Integer},  {"eoi_token_index", Kind::Integer},
};
/// Llama4VisionConfig. Every field is listed: the allow-list does not apply
/// inside vision_config.
const FieldSpec kLlama4VisionFields[] = {
    {"hidden_size", Kind::Integer},
    {"num_hidden_layers", Kind::Integer},
    {"num_attention_heads", Kind::Integer},
    {"intermediate_size", Kind::Integer},
    {"image_size", Kind::Integer},
    {"patch_size", Kind::Integer},
    {"num_channels", Kind::Integer},
    {"pixel_shuffle_ratio", Kind::Number},
    {"projector_input_dim", Kind::Integer},
    {"projector_output_dim", Kind::Integer},
    {"vision_output_dim", Kind::Integer},
    {"hidden_act", Kind::String},
    {"model_type", Kind::String},
    // Hugging Face's Llama4MultiModalProjector has no bias whatever this
    // says.
    {"multi_modal_projector_bias", Kind::Bool},
    // Which hidden state feeds the adapter; every layer exists regardless.
    {"vision_feature_layer", Kind::Integer},
    {"vision_feature_select_strategy", Kind::String},
    // Constants that do not change shapes.
    {"norm_eps", Kind::Number},
    {"rope_theta", Kind::Number},
    {"attention_dropout", Kind::Number},
    {"projector_dropout", Kind::Number},
    {"initializer_range", Kind::Number},
};
const FieldSpec kPhiMoEFields[] = {{"num_local_experts", Kind::Integer},
                                   {"lm_head_bias", Kind::Bool}};
const FieldSpec kDbrxFields[] = {
    {"d_model", Kind::Integer},          {"n_heads", Kind::Integer},
    {"n_layers", Kind::Integer},         {"vocab_size", Kind::Integer},
    {"tie_word_embeddings", Kind::Bool}, {"ffn_config", Kind::Object},
    {"attn_config", Kind::Object},       {"capacity_factor", Kind::Number},
};
const FieldSpec kDbrxAttnFields[] = {
    {"kv_n_heads", Kind::Integer}, {"clip_qkv", Kind::Number},
    {"rope_theta", Kind::Number},  {"attn_pdrop", Kind::Number},
    {"model_type", Kind::String},
};
const FieldSpec kDbrxFfnFields[] = {
    {"ffn_hidden_size", Kind::Integer},
    {"moe_num_experts", Kind::Integer},
    {"moe_top_k", Kind::Integer},
    {"ffn_act_fn", Kind::Object},
    {"moe_jitter_eps", Kind::Number},
    {"moe_loss_weight", Kind::Number},
    {"moe_normalize_expert_weights", Kind::Number},
    {"uniform_expert_assignment", Kind::Bool},
    {"model_type", Kind::String},
};
const FieldSpec kSwitchFields[] = {
    {"d_model", Kind::Integer},
    {"d_ff", Kind::Integer},
    {"d_kv", Kind::Integer},
    {"num_heads", Kind::Integer},
    {"num_layers", Kind::Integer},
    {"num_decoder_layers", Kind::Integer},
    {"num_experts", Kind::Integer},
    {"num_selected_experts", Kind::Integer},
    {"encoder_sparse_step", Kind::Integer},
    {"decoder_sparse_step", Kind::Integer},
    {"num_sparse_encoder_layers", Kind::Integer},
    {"num_sparse_decoder_layers", Kind::Integer},
    {"dense_act_fn", Kind::String},
    {"is_gated_act", Kind::Bool},
    {"feed_forward_proj", Kind::String},
    {"is_encoder_decoder", Kind::Bool},
    {"capacity_factor", Kind::Number},
    {"vocab_size", Kind::Integer},
    {"tie_word_embeddings", Kind::Bool},
    {"relative_attention_num_buckets", Kind::Integer},
    {"router_bias", Kind::Bool},
};

/// The largest value an integer field accepts (the smallest is given by the
/// reader: 0 or 1).
int64_t upperBound(StringRef name) {
  if (name.contains("intermediate") || name.contains("hidden_size") ||
      name.contains("head_dim") || name.contains("rank"))
    return ConfigLimits::kMaxWidth;
  if (name.contains("layers") || name == "first_k_dense_replace" ||
      name == "moe_layer_freq" || name == "decoder_sparse_step" ||
      name == "encoder_sparse_step" || name == "interleave_moe_layer_step" ||
      name == "num_nextn_predict_layers")
    return ConfigLimits::kMaxLayers;
  if (name.contains("expert") || name == "num_selected_experts" ||
      name == "moe_top_k" || name == "n_group" || name == "topk_group")
    return Limits::kMaxExperts;
  if (name.contains("heads") || name == "relative_attention_num_buckets")
    return ConfigLimits::kMaxHeads;
  if (name == "vocab_size")
    return ConfigLimits::kMaxVocab;
  if (name == "sliding_window" || name == "attention_chunk_size")
    return Limits::kMaxElements;
  return ConfigLimits::kMaxWidth;
}

StringRef kindName(Kind kind) {
  switch (kind) {
  case Kind::Integer:
    return "an integer";
  case Kind::Number:
    return "a number";
  case Kind::Bool:
    return "a boolean";
  case Kind::String:
    return "a string";
  case Kind::IntegerList:
    return "a list of integers";
  case Kind::StringList:
    return "a list of strings";
  case Kind::Object:
    return "an object";
  }
  llvm_unreachable("unknown kind");
}

StringRef jsonKindName(const json::Value &v) {
  switch (v.kind()) {
  case json::Value::Null:
    return "null";
  case json::Value::Boolean:
    return "a boolean";
  case json::Value::Number:
    return "a number";
  case json::Value::String:
    return "a string";
  case json::Value::Array:
    return "an array";
  case json::Value::Object:
    return "an object";
  }
  llvm_unreachable("unknown JSON kind");
}

/// Typed access to one config object. The first error is kept; later calls
/// return empty values, so a reader can be written as straight-line code
/// and check `takeError()` at the end.
class ConfigReader {
public:
  ConfigReader(StringRef path, const json::Object &root, ModelFamily family,
               StringRef prefix = "")
      : ConfigReader(path, root, getFamilyName(family), prefix,
                     /*allowIgnored=*/prefix.empty()) {}
  /// A reader whose messages name `modelType`. Fields of a nested object
  /// carry `prefix` ("ffn_config."); `allowIgnored` accepts the fields of
  /// the allow-list as in a top-level config (a `text_config`), otherwise
  /// every field must be a graph field.
  ConfigReader(StringRef path, const json::Object &root, StringRef modelType,
               StringRef prefix, bool allowIgnored)
      : path(path), root(root), modelType(modelType), prefix(prefix),
        allowIgnored(allowIgnored) {}

  /// Checks every field of the object against `graphFields` and the
  /// allow-list, and the type of every graph field.
  void checkFields(ArrayRef<ArrayRef<FieldSpec>> graphFields) {
    StringSet<> ignored;
    for (const char *name : kIgnoredFields)
      ignored.insert(name);
    // Report in a stable (sorted) order.
    SmallVector<StringRef> keys;
    for (const auto &entry : root)
      keys.push_back(entry.first);
    llvm::sort(keys);
    for (StringRef key : keys) {
      const FieldSpec *spec = nullptr;
      for (ArrayRef<FieldSpec> table : graphFields)
        for (const FieldSpec &f : table)
          if (key == f.name)
            spec = &f;
      if (spec) {
        kinds[key] = spec->kind;
        continue;
      }
      if (!ignored.contains(key) || !allowIgnored)
        return fail(formatv("unknown field '{0}{1}' for model_type '{2}'; "
                            "remove it, or see docs/IMPORT.md for the fields "
                            "lina-import accepts",
                            prefix, key, modelType));
      std::optional<double> d = root.get(key)->getAsNumber();
      if (d && !std::isfinite(*d))
        return fail(
            formatv("field '{0}{1}' must be a finite number", prefix, key));
    }
    for (StringRef key : keys)
      if (kinds.count(key))
        (void)lookup(key);
  }

  std::optional<int64_t> optInt(StringRef name) {
    const json::Value *v = lookup(name);
    if (!v)
      return std::nullopt;
    return v->getAsInteger();
  }
  /// An integer field in [lo, upperBound(name)]; `dflt` when absent, an
  /// error naming the field when absent without a default.
  int64_t integer(StringRef name, int64_t lo,
                  std::optional<int64_t> dflt = std::nullopt) {
    std::optional<int64_t> v = optInt(name);
    if (!v) {
      if (!dflt)
        missing(name);
      return dflt.value_or(std::max<int64_t>(lo, 1));
    }
    int64_t hi = upperBound(name);
    if (*v < lo || *v > hi) {
      if (lo == 1 && *v <= 0)
        fail(formatv("field '{0}{1}' must be positive, got {2}", prefix, name,
                     *v));
      else if (lo == 0 && *v < 0)
        fail(formatv("field '{0}{1}' must not be negative, got {2}", prefix,
                     name, *v));
      else
        fail(formatv("field '{0}{1}' is {2}; it must be between {3} and {4}",
                     prefix, name, *v, lo, hi));
      return std::max<int64_t>(lo, 1);
    }
    return *v;
  }
  /// A required positive integer, or one with a default.
  int64_t positive(StringRef name, std::optional<int64_t> dflt = std::nullopt) {
    return integer(name, 1, dflt);
  }
  int64_t nonNegative(StringRef name, int64_t dflt) {
    return integer(name, 0, dflt);
  }
  /// A capacity factor: finite, in (0, kMaxCapacityFactor].
  std::optional<double> optCapacityFactor(StringRef name) {
    const json::Value *v = lookup(name);
    if (!v)
      return std::nullopt;
    double d = *v->getAsNumber();
    if (!(d > 0.0) || !(d <= ConfigLimits::kMaxCapacityFactor)) {
      fail(formatv("field '{0}{1}' must be a number in (0, {2}], got {3}",
                   prefix, name, format("%g", ConfigLimits::kMaxCapacityFactor),
                   format("%g", d)));
      return std::nullopt;
    }
    return d;
  }
  /// A finite number; `dflt` when absent.
  double number(StringRef name, double dflt) {
    const json::Value *v = lookup(name);
    return v ? *v->getAsNumber() : dflt;
  }
  std::optional<bool> optBool(StringRef name) {
    const json::Value *v = lookup(name);
    if (!v)
      return std::nullopt;
    return v->getAsBoolean();
  }
  std::optional<StringRef> optString(StringRef name) {
    const json::Value *v = lookup(name);
    if (!v)
      return std::nullopt;
    return v->getAsString();
  }
  const json::Object *optObject(StringRef name) {
    const json::Value *v = lookup(name);
    return v ? v->getAsObject() : nullptr;
  }
  /// A list of integers, each in [lo, hi].
  std::vector<int64_t> intList(StringRef name, int64_t lo, int64_t hi) {
    std::vector<int64_t> out;
    if (const json::Value *v = lookup(name))
      for (const json::Value &e : *v->getAsArray()) {
        int64_t i = *e.getAsInteger();
        if (i < lo || i > hi) {
          fail(formatv("field '{0}{1}' has the entry {2}; entries must be "
                       "between {3} and {4}",
                       prefix, name, i, lo, hi));
          return {};
        }
        out.push_back(i);
      }
    return out;
  }
  std::vector<StringRef> stringList(StringRef name) {
    std::vector<StringRef> out;
    if (const json::Value *v = lookup(name))
      for (const json::Value &e : *v->getAsArray())
        out.push_back(*e.getAsString());
    return out;
  }
  bool has(StringRef name) { return lookup(name) != nullptr; }

  /// Maps an activation name to a lina activation.
  Activation activation(StringRef field, StringRef name) {
    if (name == "silu" || name == "swish")
      return Activation::silu;
    if (name == "gelu" || name == "gelu_new" || name == "gelu_pytorch_tanh" ||
        name == "gelu_fast")
      return Activation::gelu;
    if (name == "relu")
      return Activation::relu;
    fail(formatv("field '{0}{1}': unsupported activation '{2}'; expected one "
                 "of silu, swish, gelu, gelu_new, gelu_pytorch_tanh, "
                 "gelu_fast, relu",
                 prefix, field, name));
    return Activation::none;
  }

  void fail(const Twine &msg) {
    if (message.empty())
      message = (path + ": " + msg).str();
  }
  /// Takes over the first error of a reader of a nested object.
  void absorb(const ConfigReader &nested) {
    if (message.empty())
      message = nested.message;
  }
  bool failed() const { return !message.empty(); }
  StringRef getPath() const { return path; }
  Error takeError() {
    if (failed())
      return createStringError(inconvertibleErrorCode(), message);
    return Error::success();
  }

private:
  void missing(StringRef name) {
    fail(formatv("missing required field '{0}{1}' for model_type '{2}'", prefix,
                 name, modelType));
  }

  /// The value of a graph field, type-checked; null counts as absent.
  const json::Value *lookup(StringRef name) {
    if (failed())
      return nullptr;
    const json::Value *v = root.get(name);
    if (!v || v->kind() == json::Value::Null)
      return nullptr;
    auto it = kinds.find(name);
    assert(it != kinds.end() && "reading a field that is not a graph field");
    Kind kind = it->second;
    bool ok = false;
    switch (kind) {
    case Kind::Integer:
      ok = v->getAsInteger().has_value();
      if (!ok && v->kind() == json::Value::Number) {
        // A fraction, or an integer beyond int64_t.
        fail(formatv("field '{0}{1}' must be an integer of at most {2}, got "
                     "{3}",
                     prefix, name, upperBound(name),
                     format("%g", *v->getAsNumber())));
        return nullptr;
      }
      break;
    case Kind::Number:
      ok = v->getAsNumber().has_value();
      if (ok && !std::isfinite(*v->getAsNumber())) {
        fail(formatv("field '{0}{1}' must be a finite number", prefix, name));
        return nullptr;
      }
      break;
    case Kind::Bool:
      ok = v->getAsBoolean().has_value();
      break;
    case Kind::String:
      ok = v->getAsString().has_value();
      break;
    case Kind::IntegerList:
      if (const json::Array *a = v->getAsArray())
        ok = llvm::all_of(*a, [](const json::Value &e) {
          return e.getAsInteger().has_value();
        });
      break;
    case Kind::StringList:
      if (const json::Array *a = v->getAsArray())
        ok = llvm::all_of(*a, [](const json::Value &e) {
          return e.getAsString().has_value();
        });
      break;
    case Kind::Object:
      ok = v->getAsObject() != nullptr;
      break;
    }
    if (!ok) {
      fail(formatv("field '{0}{1}' must be {2}, got {3}", prefix, name,
                   kindName(kind), jsonKindName(*v)));
      return nullptr;
    }
    return v;
  }

  StringRef path;
  const json::Object &root;
  /// The model_type named in messages.
  std::string modelType;
  /// "ffn_config." for the fields of a nested object.
  std::string prefix;
  bool allowIgnored;
  StringMap<Kind> kinds;
  /// The first error, empty while there is none.
  std::string message;
};

/// Grouped-query attention of the Llama-style families.
void readAttention(ConfigReader &r, ModelSpec &spec) {
  spec.hidden = r.positive("hidden_size");
  spec.numHeads = r.positive("num_attention_heads");
  spec.numKvHeads = r.positive("num_key_value_heads", spec.numHeads);
  if (r.failed())
    return;
  if (spec.numHeads % spec.numKvHeads != 0)
    return r.fail(formatv("num_attention_heads ({0}) must be a multiple of "
                          "num_key_value_heads ({1})",
                          spec.numHeads, spec.numKvHeads));
  if (r.has("head_dim")) {
    spec.headDim = r.positive("head_dim");
    return;
  }
  if (spec.hidden % spec.numHeads != 0)
    return r.fail(formatv("hidden_size ({0}) must be a multiple of "
                          "num_attention_heads ({1}) when head_dim is absent",
                          spec.hidden, spec.numHeads));
  spec.headDim = spec.hidden / spec.numHeads;
}

/// Fields every Llama-style family shares: attention, activation (gated
/// FFNs), vocabulary, tied embeddings and attention biases.
void readDecoderCommon(ConfigReader &r, ModelSpec &spec) {
  readAttention(r, spec);
  spec.gated = true;
  spec.activation =
      r.activation("hidden_act", r.optString("hidden_act").value_or("silu"));
  // Absent: no embedding or LM head counted (--summary says so).
  spec.vocab = r.nonNegative("vocab_size", 0);
  spec.tieEmbeddings = r.optBool("tie_word_embeddings").value_or(false);
  bool bias = r.optBool("attention_bias").value_or(false);
  spec.qkvBias = spec.outBias = bias;
  spec.capacityFactor = r.optCapacityFactor("capacity_factor");
}

void checkTopK(ConfigReader &r, const ModelSpec &spec, StringRef topKField,
               StringRef expertsField) {
  if (!r.failed() && spec.topK > spec.numExperts)
    r.fail(formatv("{0} ({1}) must not exceed {2} ({3})", topKField, spec.topK,
                   expertsField, spec.numExperts));
}

/// Builds the single decoder stack of `n` layers.
template <typename IsMoE, typename Window>
void addDecoderStack(ModelSpec &spec, int64_t n, IsMoE isMoE, Window window) {
  StackSpec stack{"layers", {}, false, {}};
  for (int64_t i = 0; i < n; ++i) {
    stack.moeLayers.push_back(isMoE(i));
    stack.window.push_back(window(i));
  }
  spec.stacks.push_back(std::move(stack));
}

/// The attention window of every layer of a Mistral-style config:
/// `sliding_window` (null: full attention).
int64_t slidingWindow(ConfigReader &r) {
  return r.nonNegative("sliding_window", 0);
}

/// Qwen's windows: sliding only when use_sliding_window is set, and then
/// for the layers from max_window_layers on (as in Hugging Face).
std::function<int64_t(int64_t)> qwenWindows(ConfigReader &r) {
  bool use = r.optBool("use_sliding_window").value_or(false);
  int64_t w = r.nonNegative("sliding_window", 0);
  int64_t from = r.nonNegative("max_window_layers", 0);
  return [=](int64_t i) { return use && i >= from ? w : 0; };
}

int64_t layerCount(ConfigReader &r, StringRef field, int64_t override) {
  int64_t n = r.positive(field);
  return override > 0 ? override : n;
}

void readMixtral(ConfigReader &r, ModelSpec &spec, int64_t override) {
  bool phi = spec.family == ModelFamily::PhiMoE;
  bool granite = spec.family == ModelFamily::GraniteMoE;
  if (phi)
    r.checkFields({kLlamaStyleFields, kPhiMoEFields});
  else
    r.checkFields({kLlamaStyleFields, kMixtralFields});
  readDecoderCommon(r, spec);
  spec.denseIntermediate = r.positive("intermediate_size");
  spec.expertIntermediate = spec.denseIntermediate;
  spec.numExperts = r.positive("num_local_experts");
  spec.topK = r.positive("num_experts_per_tok");
  checkTopK(r, spec, "num_experts_per_tok", "num_local_experts");
  if (phi) {
    // LayerNorm with bias; the LM head has a bias.
    spec.norm = NormKind::ScaleBias;
    spec.lmHeadBias = r.optBool("lm_head_bias").value_or(false);
  }
  // Granite has no sliding window; Mixtral and Phi-MoE apply it to every
  // layer.
  int64_t w = granite ? 0 : slidingWindow(r);
  int64_t n = layerCount(r, "num_hidden_layers", override);
  addDecoderStack(
      spec, n, [](int64_t) { return true; }, [=](int64_t) { return w; });
}

void readOlmoe(ConfigReader &r, ModelSpec &spec, int64_t override) {
  r.checkFields({kLlamaStyleFields, kOlmoeFields});
  readDecoderCommon(r, spec);
  spec.denseIntermediate = r.positive("intermediate_size");
  spec.expertIntermediate = spec.denseIntermediate;
  spec.numExperts = r.positive("num_experts");
  spec.topK = r.positive("num_experts_per_tok");
  checkTopK(r, spec, "num_experts_per_tok", "num_experts");
  // OLMoE normalises the whole query and key projections.
  spec.qkNorm = QkNormKind::Full;
  int64_t n = layerCount(r, "num_hidden_layers", override);
  addDecoderStack(
      spec, n, [](int64_t) { return true; },
      [](int64_t) { return int64_t(0); });
}

void readDeepSeek(ConfigReader &r, ModelSpec &spec, int64_t override) {
  bool latent = spec.family != ModelFamily::DeepSeekMoE;
  if (latent)
    r.checkFields({kLlamaStyleFields, kDeepSeekFields, kLatentFields});
  else
    r.checkFields({kLlamaStyleFields, kDeepSeekFields});
  readDecoderCommon(r, spec);
  spec.denseIntermediate = r.positive("intermediate_size");
  // n_routed_experts = null describes a dense model.
  spec.numExperts = r.nonNegative("n_routed_experts", 0);
  int64_t firstDense = r.nonNegative("first_k_dense_replace", 0);
  int64_t freq = r.positive("moe_layer_freq", 1);
  int64_t shared = r.nonNegative("n_shared_experts", 0);
  if (spec.numExperts > 0) {
    spec.expertIntermediate = r.positive("moe_intermediate_size");
    spec.setShared(shared, spec.expertIntermediate);
    spec.topK = r.positive("num_experts_per_tok");
    checkTopK(r, spec, "num_experts_per_tok", "n_routed_experts");
  }
  // Scoring and top-k methods change the routing values, not the shapes;
  // noaux_tc adds a score-correction bias of E per MoE layer.
  if (std::optional<StringRef> f = r.optString("scoring_func"))
    if (*f != "softmax" && *f != "sigmoid")
      r.fail(formatv("field 'scoring_func': unsupported value '{0}'; "
                     "expected softmax or sigmoid",
                     *f));
  if (std::optional<StringRef> m = r.optString("topk_method")) {
    if (*m != "greedy" && *m != "group_limited_greedy" && *m != "noaux_tc")
      r.fail(formatv("field 'topk_method': unsupported value '{0}'; expected "
                     "greedy, group_limited_greedy or noaux_tc",
                     *m));
    spec.routerBias = *m == "noaux_tc";
  }
  if (latent) {
    LatentAttentionSpec &la = spec.latent.emplace();
    la.qLoraRank = r.nonNegative("q_lora_rank", 0);
    la.kvLoraRank = r.positive("kv_lora_rank");
    la.qkNopeHeadDim = r.positive("qk_nope_head_dim");
    la.qkRopeHeadDim = r.nonNegative("qk_rope_head_dim", 0);
    la.vHeadDim = r.positive("v_head_dim");
    spec.headDim = la.qkHeadDim();
    // The IR's stand-in for the attention context adds the value columns
    // to as many query columns.
    if (!r.failed() && la.vHeadDim > la.qkHeadDim())
      r.fail(formatv("v_head_dim ({0}) must not exceed qk_nope_head_dim + "
                     "qk_rope_head_dim ({1})",
                     la.vHeadDim, la.qkHeadDim()));
    // Group-limited routing: the experts split into n_group groups, the
    // top topk_group groups are searched.
    int64_t groups = r.positive("n_group", 1);
    int64_t topGroups = r.positive("topk_group", 1);
    if (!r.failed() && spec.numExperts > 0 && spec.numExperts % groups != 0)
      r.fail(formatv("n_group ({0}) must divide n_routed_experts ({1})", groups,
                     spec.numExperts));
    if (!r.failed() && topGroups > groups)
      r.fail(formatv("topk_group ({0}) must not exceed n_group ({1})",
                     topGroups, groups));
    spec.mtpLayers = r.nonNegative("num_nextn_predict_layers", 0);
  }
  int64_t n = layerCount(r, "num_hidden_layers", override);
  bool moe = spec.numExperts > 0;
  addDecoderStack(
      spec, n,
      [=](int64_t i) { return moe && i >= firstDense && i % freq == 0; },
      [](int64_t) { return int64_t(0); });
}

void readQwen(ConfigReader &r, ModelSpec &spec, int64_t override) {
  bool qwen3 = spec.family == ModelFamily::Qwen3MoE;
  r.checkFields({kLlamaStyleFields, kQwenFields});
  readDecoderCommon(r, spec);
  spec.denseIntermediate = r.positive("intermediate_size");
  spec.numExperts = r.nonNegative("num_experts", 0);
  int64_t step = r.positive("decoder_sparse_step", 1);
  int64_t configLayers = r.positive("num_hidden_layers");
  std::vector<int64_t> mlpOnly =
      r.intList("mlp_only_layers", 0, ConfigLimits::kMaxLayers);
  if (spec.numExperts > 0) {
    spec.expertIntermediate = r.positive("moe_intermediate_size");
    int64_t shared = r.nonNegative("shared_expert_intermediate_size", 0);
    if (qwen3 && shared > 0)
      r.fail("qwen3_moe has no shared expert; remove "
             "'shared_expert_intermediate_size'");
    if (shared > 0) {
      spec.setShared(1, shared);
      spec.sharedExpertGate = true;
    }
    spec.topK = r.positive("num_experts_per_tok");
    checkTopK(r, spec, "num_experts_per_tok", "num_experts");
  }
  if (qwen3) {
    // Qwen3: RMSNorm of head_dim on every query and key head; biases only
    // when attention_bias is set.
    spec.qkNorm = QkNormKind::PerHead;
  } else {
    // Qwen2: biases on q, k and v, none on the output projection.
    spec.qkvBias = true;
    spec.outBias = false;
  }
  std::function<int64_t(int64_t)> window = qwenWindows(r);
  if (r.failed())
    return;
  for (int64_t l : mlpOnly)
    if (l >= configLayers)
      return r.fail(formatv("mlp_only_layers names layer {0}, but "
                            "num_hidden_layers is {1}",
                            l, configLayers));
  int64_t n = override > 0 ? override : configLayers;
  bool moe = spec.numExperts > 0;
  addDecoderStack(
      spec, n,
      [&](int64_t i) {
        return moe && !llvm::is_contained(mlpOnly, i) && (i + 1) % step == 0;
      },
      window);
}

void readGptOss(ConfigReader &r, ModelSpec &spec, int64_t override) {
  r.checkFields({kLlamaStyleFields, kGptOssFields});
  readDecoderCommon(r, spec);
  spec.expertIntermediate = r.positive("intermediate_size");
  spec.denseIntermediate = spec.expertIntermediate;
  spec.numExperts = r.positive("num_local_experts");
  spec.topK = r.positive("num_experts_per_tok");
  if (r.has("experts_per_token") && !r.failed() &&
      r.positive("experts_per_token") != spec.topK)
    r.fail(formatv("experts_per_token ({0}) disagrees with "
                   "num_experts_per_tok ({1})",
                   *r.optInt("experts_per_token"), spec.topK));
  checkTopK(r, spec, "num_experts_per_tok", "num_local_experts");
  // Biases on every projection (attention, experts, router) and one
  // attention sink per head.
  spec.qkvBias = spec.outBias = true;
  spec.expertBias = true;
  spec.routerBias = true;
  spec.attentionSinks = true;
  int64_t w = r.nonNegative("sliding_window", 0);
  int64_t configLayers = r.positive("num_hidden_layers");
  std::vector<StringRef> types = r.stringList("layer_types");
  if (r.failed())
    return;
  if (!types.empty() && static_cast<int64_t>(types.size()) != configLayers)
    return r.fail(formatv("layer_types has {0} entries, but "
                          "num_hidden_layers is {1}",
                          types.size(), configLayers));
  std::vector<int64_t> windows;
  for (int64_t i = 0; i < configLayers; ++i) {
    // Without layer_types, gpt-oss alternates: even layers slide.
    StringRef t = types.empty()
                      ? (i % 2 == 0 ? "sliding_attention" : "full_attention")
                      : types[i];
    if (t != "sliding_attention" && t != "full_attention")
      return r.fail(formatv("layer_types[{0}] is '{1}'; expected "
                            "sliding_attention or full_attention",
                            i, t));
    windows.push_back(t == "sliding_attention" ? w : 0);
  }
  int64_t n = override > 0 ? override : configLayers;
  addDecoderStack(
      spec, n, [](int64_t) { return true; },
      [&](int64_t i) { return windows[i % configLayers]; });
}

void readLlama4(ConfigReader &r, ModelSpec &spec, int64_t override) {
  r.checkFields({kLlamaStyleFields, kLlama4Fields});
  readDecoderCommon(r, spec);
  spec.expertIntermediate = r.positive("intermediate_size");
  spec.denseIntermediate =
      r.positive("intermediate_size_mlp", spec.expertIntermediate);
  spec.numExperts = r.positive("num_local_experts");
  spec.topK = r.positive("num_experts_per_tok");
  checkTopK(r, spec, "num_experts_per_tok", "num_local_experts");
  // One shared expert of the routed experts' size, no gate. The q/k norm
  // is an L2 norm without weights.
  spec.setShared(1, spec.expertIntermediate);
  (void)r.optBool("use_qk_norm");
  int64_t step = r.positive("interleave_moe_layer_step", 1);
  int64_t chunk = r.nonNegative("attention_chunk_size", 0);
  int64_t configLayers = r.positive("num_hidden_layers");
  std::vector<int64_t> moeLayers =
      r.intList("moe_layers", 0, ConfigLimits::kMaxLayers);
  std::vector<int64_t> noRope = r.intList("no_rope_layers", 0, 1);
  if (r.failed())
    return;
  for (int64_t l : moeLayers)
    if (l >= configLayers)
      return r.fail(formatv("moe_layers names layer {0}, but "
                            "num_hidden_layers is {1}",
                            l, configLayers));
  if (!noRope.empty() && static_cast<int64_t>(noRope.size()) != configLayers)
    return r.fail(formatv("no_rope_layers has {0} entries, but "
                          "num_hidden_layers is {1}",
                          noRope.size(), configLayers));
  // As in Hugging Face: MoE every `step` layers ending each group of
  // `step`, unless moe_layers lists them; layers with RoPE (no_rope_layers
  // entry 1, by default all but every fourth) use chunked attention.
  bool explicitMoE = r.has("moe_layers");
  auto isMoE = [&](int64_t i) {
    return explicitMoE ? llvm::is_contained(moeLayers, i) : (i + 1) % step == 0;
  };
  auto window = [&](int64_t i) -> int64_t {
    bool rope =
        noRope.empty() ? (i + 1) % 4 != 0 : noRope[i % configLayers] != 0;
    return rope ? chunk : 0;
  };
  int64_t n = override > 0 ? override : configLayers;
  addDecoderStack(spec, n, isMoE, window);
  // Chunked, not sliding: record it in the stack for the FLOP count.
  spec.chunkedAttention = true;
}

/// `vision_config` of a multimodal Llama 4 config, as Hugging Face's
/// Llama4VisionModel builds it. The fields that size the modules are
/// required (Hugging Face's defaults do not fit together: hidden 768 and
/// vision_output_dim 7680 against projector_output_dim 4096); the shapes
/// must chain as the forward pass needs them.
void readLlama4Vision(ConfigReader &v, VisionSpec &vs) {
  v.checkFields({kLlama4VisionFields});
  vs.hidden = v.positive("hidden_size");
  vs.layers = v.positive("num_hidden_layers");
  vs.heads = v.positive("num_attention_heads");
  vs.intermediate = v.positive("intermediate_size");
  vs.imageSize = v.positive("image_size");
  vs.patchSize = v.positive("patch_size");
  vs.numChannels = v.positive("num_channels", 3);
  vs.projectorInputDim = v.positive("projector_input_dim");
  vs.projectorOutputDim = v.positive("projector_output_dim");
  vs.visionOutputDim = v.positive("vision_output_dim");
  double ratio = v.number("pixel_shuffle_ratio", 0.5);
  // The encoder and adapter use GELU whatever hidden_act says; it must
  // still name an activation.
  (void)v.activation("hidden_act", v.optString("hidden_act").value_or("gelu"));
  std::optional<StringRef> type = v.optString("model_type");
  (void)v.optBool("multi_modal_projector_bias");
  (void)v.optInt("vision_feature_layer");
  (void)v.optString("vision_feature_select_strategy");
  for (StringRef constant : {"norm_eps", "rope_theta", "attention_dropout",
                             "projector_dropout", "initializer_range"})
    (void)v.number(constant, 0.0);
  if (v.failed())
    return;
  if (type && *type != "llama4_vision_model")
    return v.fail(formatv("field 'vision_config.model_type' is '{0}'; "
                          "expected llama4_vision_model",
                          *type));
  if (vs.imageSize % vs.patchSize != 0)
    return v.fail(formatv("vision_config.image_size ({0}) must be a multiple "
                          "of vision_config.patch_size ({1})",
                          vs.imageSize, vs.patchSize));
  if (vs.hidden % vs.heads != 0)
    return v.fail(formatv("vision_config.hidden_size ({0}) must be a multiple "
                          "of vision_config.num_attention_heads ({1})",
                          vs.hidden, vs.heads));
  if (!(ratio > 0.0) || ratio > 1.0)
    return v.fail(formatv("field 'vision_config.pixel_shuffle_ratio' must be "
                          "a number in (0, 1], got {0}",
                          format("%g", ratio)));
  // The pixel shuffle folds 1 / ratio^2 neighbouring patches into one
  // vector, the input of the adapter's fc1.
  double shuffled = std::floor(double(vs.hidden) / (ratio * ratio));
  if (shuffled != double(vs.intermediate))
    return v.fail(formatv("vision_config.intermediate_size ({0}) must equal "
                          "vision_config.hidden_size / pixel_shuffle_ratio^2 "
                          "({1}), the width of the pixel-shuffled patches "
                          "the adapter reads",
                          vs.intermediate, format("%.0f", shuffled)));
  if (vs.projectorInputDim != vs.projectorOutputDim)
    return v.fail(formatv("vision_config.projector_input_dim ({0}) must "
                          "equal vision_config.projector_output_dim ({1}): "
                          "the adapter's fc2 reads fc1's output",
                          vs.projectorInputDim, vs.projectorOutputDim));
  if (vs.visionOutputDim != vs.projectorOutputDim)
    return v.fail(formatv("vision_config.vision_output_dim ({0}) must equal "
                          "vision_config.projector_output_dim ({1}): the "
                          "multimodal projector reads the adapter's output",
                          vs.visionOutputDim, vs.projectorOutputDim));
}

/// A multimodal Llama 4 config (`llama4`, Llama4ForConditionalGeneration):
/// the text decoder from `text_config`, read as a `llama4_text` config, and
/// the vision encoder from `vision_config`, which only `--summary` counts.
void readLlama4Multimodal(ConfigReader &r, ModelSpec &spec, int64_t override) {
  r.checkFields({kLlama4MultimodalFields});
  const json::Object *text = r.optObject("text_config");
  const json::Object *vision = r.optObject("vision_config");
  std::optional<bool> tie = r.optBool("tie_word_embeddings");
  for (StringRef id :
       {"image_token_index", "boi_token_index", "eoi_token_index"})
    (void)r.optInt(id);
  if (r.failed())
    return;
  for (auto [object, name] :
       {std::pair(text, "text_config"), std::pair(vision, "vision_config")})
    if (!object)
      return r.fail(formatv("missing required field '{0}' for model_type "
                            "'llama4'",
                            name));

  // The text model's model_type, when given, must be the one it is read as
  // (the allow-list accepts model_type without looking at it).
  if (const json::Value *type = text->get("model_type");
      type && type->kind() != json::Value::Null &&
      type->getAsString() != StringRef("llama4_text"))
    return r.fail("field 'text_config.model_type' must be 'llama4_text'");
  ConfigReader t(r.getPath(), *text, getFamilyName(ModelFamily::Llama4),
                 "text_config.", /*allowIgnored=*/true);
  readLlama4(t, spec, override);
  r.absorb(t);
  if (r.failed())
    return;
  // Tied embeddings: the text model's setting, else the top level's.
  const json::Value *textTie = text->get("tie_word_embeddings");
  bool textHasTie = textTie && textTie->kind() != json::Value::Null;
  if (tie && textHasTie && *tie != spec.tieEmbeddings)
    return r.fail(formatv("tie_word_embeddings ({0}) disagrees with "
                          "text_config.tie_word_embeddings ({1})",
                          *tie, spec.tieEmbeddings));
  if (tie && !textHasTie)
    spec.tieEmbeddings = *tie;

  ConfigReader v(r.getPath(), *vision, "llama4", "vision_config.",
                 /*allowIgnored=*/false);
  readLlama4Vision(v, spec.vision.emplace());
  r.absorb(v);
}

void readDbrx(ConfigReader &r, ModelSpec &spec, int64_t override) {
  r.checkFields({kDbrxFields});
  spec.hidden = r.positive("d_model");
  spec.numHeads = r.positive("n_heads");
  spec.vocab = r.nonNegative("vocab_size", 0);
  spec.tieEmbeddings = r.optBool("tie_word_embeddings").value_or(false);
  spec.capacityFactor = r.optCapacityFactor("capacity_factor");
  int64_t n = layerCount(r, "n_layers", override);
  spec.gated = true;
  // LayerNorm without bias; no attention biases.
  spec.norm = NormKind::Scale;
  const json::Object *attn = r.optObject("attn_config");
  const json::Object *ffn = r.optObject("ffn_config");
  if (r.failed())
    return;
  if (!ffn)
    return r.fail("missing required field 'ffn_config' for model_type 'dbrx'");
  static const json::Object empty;
  ConfigReader a(r.getPath(), attn ? *attn : empty, spec.family,
                 "attn_config.");
  a.checkFields({kDbrxAttnFields});
  spec.numKvHeads = a.positive("kv_n_heads", spec.numHeads);
  (void)a.optString("model_type");
  r.absorb(a);
  ConfigReader f(r.getPath(), *ffn, spec.family, "ffn_config.");
  f.checkFields({kDbrxFfnFields});
  spec.expertIntermediate = f.positive("ffn_hidden_size");
  spec.denseIntermediate = spec.expertIntermediate;
  spec.numExperts = f.positive("moe_num_experts");
  spec.topK = f.positive("moe_top_k");
  checkTopK(f, spec, "ffn_config.moe_top_k", "ffn_config.moe_num_experts");
  spec.activation = Activation::silu;
  if (const json::Object *act = f.optObject("ffn_act_fn")) {
    ConfigReader ar(r.getPath(), *act, spec.family, "ffn_config.ffn_act_fn.");
    static const FieldSpec kActFields[] = {{"name", Kind::String}};
    ar.checkFields({kActFields});
    spec.activation =
        ar.activation("name", ar.optString("name").value_or("silu"));
    f.absorb(ar);
  }
  r.absorb(f);
  if (r.failed())
    return;
  if (spec.numHeads % spec.numKvHeads != 0)
    return r.fail(formatv("n_heads ({0}) must be a multiple of "
                          "attn_config.kv_n_heads ({1})",
                          spec.numHeads, spec.numKvHeads));
  if (spec.hidden % spec.numHeads != 0)
    return r.fail(formatv("d_model ({0}) must be a multiple of n_heads ({1})",
                          spec.hidden, spec.numHeads));
  spec.headDim = spec.hidden / spec.numHeads;
  addDecoderStack(
      spec, n, [](int64_t) { return true; },
      [](int64_t) { return int64_t(0); });
}

/// Which layers of a Switch stack are sparse, as in Hugging Face's
/// SwitchTransformersStack: layer i is sparse when i % step == 1 (every
/// layer when step == 1, none when step == 0).
std::vector<bool> switchSparseLayers(int64_t n, int64_t step) {
  std::vector<bool> out;
  for (int64_t i = 0; i < n; ++i)
    out.push_back(step > 0 && (step == 1 || i % step == 1));
  return out;
}

void readSwitch(ConfigReader &r, ModelSpec &spec, int64_t override) {
  r.checkFields({kSwitchFields});
  spec.hidden = r.positive("d_model");
  spec.numHeads = r.positive("num_heads");
  spec.numKvHeads = spec.numHeads;
  spec.headDim = r.positive("d_kv");
  spec.denseIntermediate = r.positive("d_ff");
  spec.expertIntermediate = spec.denseIntermediate;
  spec.numExperts = r.positive("num_experts");
  spec.topK = r.positive("num_selected_experts", 1);
  checkTopK(r, spec, "num_selected_experts", "num_experts");
  spec.capacityFactor = r.optCapacityFactor("capacity_factor");
  // T5: shared token embedding, tied LM head by default, weight-only
  // LayerNorms, a relative position bias in the first layer of each stack.
  spec.vocab = r.positive("vocab_size", 32128);
  spec.tieEmbeddings = r.optBool("tie_word_embeddings").value_or(true);
  spec.relativeAttentionBuckets =
      r.nonNegative("relative_attention_num_buckets", 32);
  spec.routerBias = r.optBool("router_bias").value_or(false);

  // T5's feed_forward_proj ("relu", "gated-gelu") is the source of
  // dense_act_fn and is_gated_act; the explicit fields, when present, must
  // agree with it.
  StringRef act = "relu";
  bool gated = false;
  if (std::optional<StringRef> proj = r.optString("feed_forward_proj")) {
    gated = proj->consume_front("gated-");
    act = *proj;
  }
  if (std::optional<StringRef> a = r.optString("dense_act_fn")) {
    if (r.has("feed_forward_proj") && *a != act)
      return r.fail(formatv("dense_act_fn ('{0}') disagrees with "
                            "feed_forward_proj ('{1}')",
                            *a, *r.optString("feed_forward_proj")));
    act = *a;
  }
  if (std::optional<bool> g = r.optBool("is_gated_act")) {
    if (r.has("feed_forward_proj") && *g != gated)
      return r.fail(formatv("is_gated_act ({0}) disagrees with "
                            "feed_forward_proj ('{1}')",
                            *g ? "true" : "false",
                            *r.optString("feed_forward_proj")));
    gated = *g;
  }
  spec.gated = gated;
  spec.activation = r.activation(
      r.has("dense_act_fn") ? "dense_act_fn" : "feed_forward_proj", act);

  int64_t encLayers = r.positive("num_layers");
  int64_t decLayers = r.positive("num_decoder_layers", encLayers);
  bool encDec = r.optBool("is_encoder_decoder").value_or(true);
  // Hugging Face derives the sparse steps from num_sparse_*_layers; a
  // config that carries both must be consistent.
  auto step = [&](StringRef stepField, StringRef countField,
                  int64_t layers) -> int64_t {
    std::optional<int64_t> s = r.optInt(stepField);
    std::optional<int64_t> count = r.optInt(countField);
    if (r.failed())
      return 0;
    if (s && *s < 0) {
      r.fail(
          formatv("field '{0}' must not be negative, got {1}", stepField, *s));
      return 0;
    }
    if (count && (*count < 0 || *count > layers)) {
      r.fail(formatv("field '{0}' ({1}) must be between 0 and the number of "
                     "layers ({2})",
                     countField, *count, layers));
      return 0;
    }
    int64_t derived = count ? (*count > 0 ? layers / *count : layers) : 0;
    if (s && count && *s != derived) {
      r.fail(formatv("{0} ({1}) is inconsistent with {2} ({3}): {4} layers "
                     "with {3} sparse layers give a step of {5}",
                     stepField, *s, countField, *count, layers, derived));
      return 0;
    }
    if (!s && !count) {
      r.fail(formatv("missing required field '{0}' for model_type '{1}'",
                     stepField, getFamilyName(spec.family)));
      return 0;
    }
    return s ? *s : derived;
  };
  int64_t encStep =
      step("encoder_sparse_step", "num_sparse_encoder_layers", encLayers);
  int64_t decStep = encDec ? step("decoder_sparse_step",
                                  "num_sparse_decoder_layers", decLayers)
                           : 0;
  if (r.failed())
    return;
  if (override > 0)
    encLayers = decLayers = override;
  spec.stacks.push_back(
      {"encoder", switchSparseLayers(encLayers, encStep), false, {}});
  if (encDec)
    spec.stacks.push_back(
        {"decoder", switchSparseLayers(decLayers, decStep), true, {}});
}

/// Picks the family from model_type, or from the fields when it is absent.
Expected<ModelFamily> detectFamily(StringRef path, const json::Object &root) {
  if (const json::Value *mt = root.get("model_type")) {
    std::optional<StringRef> name = mt->getAsString();
    if (!name)
      return createStringError(inconvertibleErrorCode(),
                               path + ": field 'model_type' must be a string");
    static const std::pair<const char *, ModelFamily> kNames[] = {
        {"mixtral", ModelFamily::Mixtral},
        {"switch_transformers", ModelFamily::Switch},
        {"deepseek", ModelFamily::DeepSeekMoE},
        {"deepseek_moe", ModelFamily::DeepSeekMoE},
        {"deepseek_v2", ModelFamily::DeepSeekV2},
        {"deepseek_v3", ModelFamily::DeepSeekV3},
        {"qwen2_moe", ModelFamily::QwenMoE},
        {"qwen3_moe", ModelFamily::Qwen3MoE},
        {"olmoe", ModelFamily::OLMoE},
        {"gpt_oss", ModelFamily::GptOss},
        {"llama4_text", ModelFamily::Llama4},
        {"llama4", ModelFamily::Llama4},
        {"phimoe", ModelFamily::PhiMoE},
        {"granitemoe", ModelFamily::GraniteMoE},
        {"dbrx", ModelFamily::Dbrx},
    };
    for (auto [n, f] : kNames)
      if (*name == n)
        return f;
    return createStringError(
        inconvertibleErrorCode(),
        path + ": unsupported model_type '" + *name +
            "'; expected mixtral, switch_transformers, deepseek, "
            "deepseek_v2, deepseek_v3, qwen2_moe, qwen3_moe, olmoe, gpt_oss, "
            "llama4_text, llama4, phimoe, granitemoe or dbrx");
  }
  if (root.get("num_local_experts"))
    return ModelFamily::Mixtral;
  if (root.get("d_model") && root.get("num_experts"))
    return ModelFamily::Switch;
  if (root.get("n_routed_experts"))
    return ModelFamily::DeepSeekMoE;
  if (root.get("num_experts") && root.get("hidden_size"))
    return ModelFamily::QwenMoE;
  return createStringError(
      inconvertibleErrorCode(),
      path + ": cannot tell the model family: no 'model_type' field and none "
             "of num_local_experts (mixtral), d_model + num_experts "
             "(switch_transformers), n_routed_experts (deepseek), "
             "hidden_size + num_experts (qwen2_moe)");
}

/// Applies the size overrides of a small test model.
Error applyOverrides(StringRef path, ModelSpec &spec, const ModelOverrides &o) {
  auto bad = [&](const Twine &msg) {
    return createStringError(inconvertibleErrorCode(), path + ": " + msg);
  };
  if (o.hidden > 0) {
    // A head dimension derived from the hidden size stays as configured:
    // only the model width changes.
    spec.hidden = o.hidden;
  }
  if (o.heads > 0) {
    int64_t ratio = spec.numHeads / spec.numKvHeads;
    spec.numHeads = o.heads;
    spec.numKvHeads = o.heads % ratio == 0 ? o.heads / ratio : o.heads;
  }
  if (o.intermediate > 0) {
    spec.denseIntermediate = o.intermediate;
    if (spec.numExperts > 0)
      spec.expertIntermediate = o.intermediate;
    if (spec.numShared > 0)
      spec.setShared(spec.numShared, o.intermediate);
  }
  if (o.experts > 0) {
    if (spec.numExperts == 0)
      return bad("--experts needs a model with MoE layers");
    spec.numExperts = o.experts;
    spec.topK = std::min(spec.topK, o.experts);
  }
  return Error::success();
}

} // namespace

Expected<ModelSpec>
mlir::lina::import::parseModelConfig(StringRef path, StringRef text,
                                     const ModelOverrides &overrides) {
  Expected<json::Value> parsed = json::parse(text);
  if (!parsed)
    return createStringError(
        inconvertibleErrorCode(),
        path + ": invalid JSON: " + toString(parsed.takeError()));
  const json::Object *root = parsed->getAsObject();
  if (!root)
    return createStringError(inconvertibleErrorCode(),
                             path + ": the config must be a JSON object");
  Expected<ModelFamily> family = detectFamily(path, *root);
  if (!family)
    return family.takeError();

  ModelSpec spec;
  spec.family = *family;
  // `llama4` is the multimodal config around a `llama4_text` one.
  bool multimodal = *family == ModelFamily::Llama4 &&
                    root->getString("model_type") == StringRef("llama4");
  ConfigReader reader(path, *root,
                      multimodal ? "llama4" : getFamilyName(*family), "",
                      /*allowIgnored=*/true);
  int64_t layers = overrides.layers;
  switch (*family) {
  case ModelFamily::Mixtral:
  case ModelFamily::PhiMoE:
  case ModelFamily::GraniteMoE:
    readMixtral(reader, spec, layers);
    break;
  case ModelFamily::Switch:
    readSwitch(reader, spec, layers);
    break;
  case ModelFamily::DeepSeekMoE:
  case ModelFamily::DeepSeekV2:
  case ModelFamily::DeepSeekV3:
    readDeepSeek(reader, spec, layers);
    break;
  case ModelFamily::QwenMoE:
  case ModelFamily::Qwen3MoE:
    readQwen(reader, spec, layers);
    break;
  case ModelFamily::OLMoE:
    readOlmoe(reader, spec, layers);
    break;
  case ModelFamily::GptOss:
    readGptOss(reader, spec, layers);
    break;
  case ModelFamily::Llama4:
    if (multimodal)
      readLlama4Multimodal(reader, spec, layers);
    else
      readLlama4(reader, spec, layers);
    break;
  case ModelFamily::Dbrx:
    readDbrx(reader, spec, layers);
    break;
  }
  if (Error err = reader.takeError())
    return std::move(err);
  if (Error err = applyOverrides(path, spec, overrides))
    return std::move(err);
  return spec;
}
