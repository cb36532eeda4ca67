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
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

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
  case ModelFamily::QwenMoE:
    return "qwen2_moe";
  }
  llvm_unreachable("unknown model family");
}

bool ModelSpec::hasMoELayer() const {
  return llvm::any_of(stacks, [](const StackSpec &s) {
    return llvm::is_contained(s.moeLayers, true);
  });
}

namespace {

/// Fields that do not change the lina graph, accepted for every family
/// (docs/IMPORT.md says why each one is irrelevant).
const char *const kIgnoredFields[] = {
    // Bookkeeping, tokenizer and embeddings (not modelled).
    "_name_or_path", "architectures", "auto_map", "model_type", "torch_dtype",
    "transformers_version", "vocab_size", "bos_token_id", "eos_token_id",
    "pad_token_id", "decoder_start_token_id", "tie_word_embeddings",
    "use_cache", "initializer_range", "initializer_factor", "is_decoder",
    // Positions, normalisation, dropout, biases.
    "rope_theta", "rope_scaling", "max_position_embeddings", "rms_norm_eps",
    "layer_norm_epsilon", "attention_dropout", "dropout_rate",
    "hidden_dropout", "attention_bias", "pretraining_tp",
    "relative_attention_num_buckets", "relative_attention_max_distance",
    "sliding_window", "use_sliding_window", "max_window_layers",
    // Router losses, noise and normalisation: same shapes and top-k.
    "output_router_logits", "router_aux_loss_coef", "router_z_loss_coef",
    "router_jitter_noise", "router_bias", "router_dtype",
    "router_ignore_padding_tokens", "router_type", "add_router_probs",
    "batch_prioritized_routing", "expert_capacity", "norm_topk_prob",
    "scoring_func", "aux_loss_alpha", "seq_aux", "topk_method",
    "routed_scaling_factor",
};

enum class Kind { Integer, Number, Bool, String, IntegerList };

struct FieldSpec {
  const char *name;
  Kind kind;
};

/// Graph fields of each family. Which of them are required is decided by
/// the family's reader.
const FieldSpec kLlamaStyleFields[] = {
    {"hidden_size", Kind::Integer},       {"intermediate_size", Kind::Integer},
    {"num_hidden_layers", Kind::Integer}, {"num_attention_heads", Kind::Integer},
    {"num_key_value_heads", Kind::Integer}, {"head_dim", Kind::Integer},
    {"hidden_act", Kind::String},         {"num_experts_per_tok", Kind::Integer},
    {"capacity_factor", Kind::Number},
};
const FieldSpec kMixtralFields[] = {{"num_local_experts", Kind::Integer}};
const FieldSpec kDeepSeekFields[] = {
    {"moe_intermediate_size", Kind::Integer}, {"n_routed_experts", Kind::Integer},
    {"n_shared_experts", Kind::Integer},      {"first_k_dense_replace", Kind::Integer},
    {"moe_layer_freq", Kind::Integer},
};
const FieldSpec kQwenFields[] = {
    {"moe_intermediate_size", Kind::Integer},
    {"shared_expert_intermediate_size", Kind::Integer},
    {"num_experts", Kind::Integer},
    {"decoder_sparse_step", Kind::Integer},
    {"mlp_only_layers", Kind::IntegerList},
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
};

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
  ConfigReader(StringRef path, const json::Object &root, ModelFamily family)
      : path(path), root(root), family(family) {}

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
      if (!ignored.contains(key))
        return fail(formatv("unknown field '{0}' for model_type '{1}'; remove "
                            "it, or see docs/IMPORT.md for the fields "
                            "lina-import accepts",
                            key, getFamilyName(family)));
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
  int64_t reqInt(StringRef name) {
    std::optional<int64_t> v = optInt(name);
    if (!v) {
      missing(name);
      return 0;
    }
    return *v;
  }
  /// A required positive integer, or one with a default.
  int64_t positive(StringRef name, std::optional<int64_t> dflt = std::nullopt) {
    std::optional<int64_t> v = optInt(name);
    if (!v) {
      if (!dflt)
        missing(name);
      return dflt.value_or(1);
    }
    if (*v <= 0) {
      fail(formatv("field '{0}' must be positive, got {1}", name, *v));
      return 1;
    }
    return *v;
  }
  int64_t nonNegative(StringRef name, int64_t dflt) {
    std::optional<int64_t> v = optInt(name);
    if (!v)
      return dflt;
    if (*v < 0) {
      fail(formatv("field '{0}' must not be negative, got {1}", name, *v));
      return dflt;
    }
    return *v;
  }
  std::optional<double> optPositiveNumber(StringRef name) {
    const json::Value *v = lookup(name);
    if (!v)
      return std::nullopt;
    double d = *v->getAsNumber();
    if (!(d > 0.0)) {
      fail(formatv("field '{0}' must be positive, got {1}", name, d));
      return std::nullopt;
    }
    return d;
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
  std::vector<int64_t> intList(StringRef name) {
    std::vector<int64_t> out;
    if (const json::Value *v = lookup(name))
      for (const json::Value &e : *v->getAsArray())
        out.push_back(*e.getAsInteger());
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
    fail(formatv("field '{0}': unsupported activation '{1}'; expected one of "
                 "silu, swish, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, "
                 "relu",
                 field, name));
    return Activation::none;
  }

  void fail(const Twine &msg) {
    if (message.empty())
      message = (path + ": " + msg).str();
  }
  bool failed() const { return !message.empty(); }
  Error takeError() {
    if (failed())
      return createStringError(inconvertibleErrorCode(), message);
    return Error::success();
  }

private:
  void missing(StringRef name) {
    fail(formatv("missing required field '{0}' for model_type '{1}'", name,
                 getFamilyName(family)));
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
      break;
    case Kind::Number:
      ok = v->getAsNumber().has_value();
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
    }
    if (!ok) {
      fail(formatv("field '{0}' must be {1}, got {2}", name, kindName(kind),
                   jsonKindName(*v)));
      return nullptr;
    }
    return v;
  }

  StringRef path;
  const json::Object &root;
  ModelFamily family;
  StringMap<Kind> kinds;
  /// The first error, empty while there is none.
  std::string message;
};

/// Attention heads of the Llama-style families.
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

void checkTopK(ConfigReader &r, const ModelSpec &spec, StringRef topKField,
               StringRef expertsField) {
  if (!r.failed() && spec.topK > spec.numExperts)
    r.fail(formatv("{0} ({1}) must not exceed {2} ({3})", topKField, spec.topK,
                   expertsField, spec.numExperts));
}

int64_t numLayers(ConfigReader &r, StringRef field, int64_t override) {
  int64_t n = r.positive(field);
  return override > 0 ? override : n;
}

void readMixtral(ConfigReader &r, ModelSpec &spec, int64_t override) {
  r.checkFields({kLlamaStyleFields, kMixtralFields});
  readAttention(r, spec);
  spec.denseIntermediate = r.positive("intermediate_size");
  spec.expertIntermediate = spec.denseIntermediate;
  spec.gated = true;
  spec.activation = r.activation("hidden_act", r.optString("hidden_act").value_or("silu"));
  spec.numExperts = r.positive("num_local_experts");
  spec.topK = r.positive("num_experts_per_tok");
  checkTopK(r, spec, "num_experts_per_tok", "num_local_experts");
  spec.capacityFactor = r.optPositiveNumber("capacity_factor");
  int64_t n = numLayers(r, "num_hidden_layers", override);
  spec.stacks.push_back({"layers", std::vector<bool>(n, true), false});
}

void readDeepSeek(ConfigReader &r, ModelSpec &spec, int64_t override) {
  r.checkFields({kLlamaStyleFields, kDeepSeekFields});
  readAttention(r, spec);
  spec.denseIntermediate = r.positive("intermediate_size");
  spec.gated = true;
  spec.activation = r.activation("hidden_act", r.optString("hidden_act").value_or("silu"));
  // n_routed_experts = null describes a dense model.
  spec.numExperts = r.nonNegative("n_routed_experts", 0);
  int64_t firstDense = r.nonNegative("first_k_dense_replace", 0);
  int64_t freq = r.positive("moe_layer_freq", 1);
  int64_t shared = r.nonNegative("n_shared_experts", 0);
  if (spec.numExperts > 0) {
    spec.expertIntermediate = r.positive("moe_intermediate_size");
    spec.sharedIntermediate = shared * spec.expertIntermediate;
    spec.topK = r.positive("num_experts_per_tok");
    checkTopK(r, spec, "num_experts_per_tok", "n_routed_experts");
  }
  spec.capacityFactor = r.optPositiveNumber("capacity_factor");
  int64_t n = numLayers(r, "num_hidden_layers", override);
  StackSpec stack{"layers", {}, false};
  for (int64_t i = 0; i < n; ++i)
    stack.moeLayers.push_back(spec.numExperts > 0 && i >= firstDense &&
                              i % freq == 0);
  spec.stacks.push_back(std::move(stack));
}

void readQwen(ConfigReader &r, ModelSpec &spec, int64_t override) {
  r.checkFields({kLlamaStyleFields, kQwenFields});
  readAttention(r, spec);
  spec.denseIntermediate = r.positive("intermediate_size");
  spec.gated = true;
  spec.activation = r.activation("hidden_act", r.optString("hidden_act").value_or("silu"));
  spec.numExperts = r.nonNegative("num_experts", 0);
  int64_t step = r.positive("decoder_sparse_step", 1);
  std::vector<int64_t> mlpOnly = r.intList("mlp_only_layers");
  if (spec.numExperts > 0) {
    spec.expertIntermediate = r.positive("moe_intermediate_size");
    spec.sharedIntermediate = r.nonNegative("shared_expert_intermediate_size", 0);
    spec.topK = r.positive("num_experts_per_tok");
    checkTopK(r, spec, "num_experts_per_tok", "num_experts");
  }
  spec.capacityFactor = r.optPositiveNumber("capacity_factor");
  int64_t configLayers = r.positive("num_hidden_layers");
  if (r.failed())
    return;
  for (int64_t l : mlpOnly)
    if (l < 0 || l >= configLayers)
      return r.fail(formatv("mlp_only_layers names layer {0}, but "
                            "num_hidden_layers is {1}",
                            l, configLayers));
  int64_t n = override > 0 ? override : configLayers;
  StackSpec stack{"layers", {}, false};
  for (int64_t i = 0; i < n; ++i)
    stack.moeLayers.push_back(spec.numExperts > 0 &&
                              !llvm::is_contained(mlpOnly, i) &&
                              (i + 1) % step == 0);
  spec.stacks.push_back(std::move(stack));
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
  spec.capacityFactor = r.optPositiveNumber("capacity_factor");

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
  spec.activation = r.activation(r.has("dense_act_fn") ? "dense_act_fn"
                                                       : "feed_forward_proj",
                                 act);

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
      r.fail(formatv("field '{0}' must not be negative, got {1}", stepField, *s));
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
  int64_t encStep = step("encoder_sparse_step", "num_sparse_encoder_layers",
                         encLayers);
  int64_t decStep =
      encDec ? step("decoder_sparse_step", "num_sparse_decoder_layers", decLayers)
             : 0;
  if (r.failed())
    return;
  if (override > 0)
    encLayers = decLayers = override;
  spec.stacks.push_back(
      {"encoder", switchSparseLayers(encLayers, encStep), false});
  if (encDec)
    spec.stacks.push_back(
        {"decoder", switchSparseLayers(decLayers, decStep), true});
}

/// Picks the family from model_type, or from the fields when it is absent.
Expected<ModelFamily> detectFamily(StringRef path, const json::Object &root) {
  if (const json::Value *mt = root.get("model_type")) {
    std::optional<StringRef> name = mt->getAsString();
    if (!name)
      return createStringError(inconvertibleErrorCode(),
                               path + ": field 'model_type' must be a string");
    if (*name == "mixtral")
      return ModelFamily::Mixtral;
    if (*name == "switch_transformers")
      return ModelFamily::Switch;
    if (*name == "deepseek" || *name == "deepseek_moe")
      return ModelFamily::DeepSeekMoE;
    if (*name == "qwen2_moe")
      return ModelFamily::QwenMoE;
    return createStringError(
        inconvertibleErrorCode(),
        path + ": unsupported model_type '" + *name +
            "'; expected mixtral, switch_transformers, deepseek or qwen2_moe");
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

} // namespace

Expected<ModelSpec> mlir::lina::import::parseModelConfig(StringRef path,
                                                   StringRef text,
                                                   int64_t layersOverride) {
  Expected<json::Value> parsed = json::parse(text);
  if (!parsed)
    return createStringError(inconvertibleErrorCode(),
                             path + ": invalid JSON: " +
                                 toString(parsed.takeError()));
  const json::Object *root = parsed->getAsObject();
  if (!root)
    return createStringError(inconvertibleErrorCode(),
                             path + ": the config must be a JSON object");
  Expected<ModelFamily> family = detectFamily(path, *root);
  if (!family)
    return family.takeError();

  ModelSpec spec;
  spec.family = *family;
  ConfigReader reader(path, *root, *family);
  switch (*family) {
  case ModelFamily::Mixtral:
    readMixtral(reader, spec, layersOverride);
    break;
  case ModelFamily::Switch:
    readSwitch(reader, spec, layersOverride);
    break;
  case ModelFamily::DeepSeekMoE:
    readDeepSeek(reader, spec, layersOverride);
    break;
  case ModelFamily::QwenMoE:
    readQwen(reader, spec, layersOverride);
    break;
  }
  if (Error err = reader.takeError())
    return std::move(err);
  return spec;
}
