#include "model/convert_hf_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace moerun {
namespace {

using json = nlohmann::json;

// Typed access to the fields of one config object, with messages naming the file and the key.
class Fields {
 public:
  Fields(const json& j, const std::string& origin) : j_(j), origin_(origin) {}

  const json* find(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  int64_t integer(const char* key) const {
    const json* v = find(key);
    if (!v) fail("{}: missing '{}'", origin_, key);
    return as_integer(*v, key);
  }
  // The first of two spellings that is present (e.g. transformers 5 writes num_local_experts).
  int64_t integer_either(const char* key, const char* other) const {
    if (const json* v = find(other); v && !find(key)) return as_integer(*v, other);
    if (!find(key)) fail("{}: missing '{}' (or '{}')", origin_, key, other);
    return integer(key);
  }
  int64_t integer(const char* key, int64_t fallback) const {
    const json* v = find(key);
    return v ? as_integer(*v, key) : fallback;
  }
  double number(const char* key, double fallback) const {
    const json* v = find(key);
    return v ? as_number(*v, key) : fallback;
  }
  bool boolean(const char* key, bool fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_boolean()) fail("{}: '{}' is {}, expected true or false", origin_, key, v->dump());
    return v->get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_string()) fail("{}: '{}' is {}, expected a string", origin_, key, v->dump());
    return v->get<std::string>();
  }
  int64_t as_integer(const json& v, const char* key) const {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > (int64_t{1} << 40)) {
      fail("{}: '{}' is {}, expected a non-negative integer", origin_, key, v.dump());
    }
    return v.get<int64_t>();
  }
  double as_number(const json& v, const char* key) const {
    if (!v.is_number() || !std::isfinite(v.get<double>())) {
      fail("{}: '{}' is {}, expected a number", origin_, key, v.dump());
    }
    return v.get<double>();
  }
  const std::string& origin() const { return origin_; }

 private:
  const json& j_;
  const std::string& origin_;
};

HfArchitecture detect_architecture(const json& c, const std::string& origin) {
  std::string model_type;
  if (auto it = c.find("model_type"); it != c.end() && it->is_string()) model_type = *it;
  std::string architectures;
  if (auto it = c.find("architectures"); it != c.end() && it->is_array()) {
    for (const json& a : *it) {
      if (!a.is_string()) continue;
      const std::string name = a.get<std::string>();
      if (model_type.empty() && name == "Qwen3NextForCausalLM") return HfArchitecture::qwen3_next;
      if (model_type.empty() && name == "Qwen3MoeForCausalLM") return HfArchitecture::qwen3_moe;
      architectures += (architectures.empty() ? "" : ", ") + name;
    }
  }
  if (model_type == "qwen3_next") return HfArchitecture::qwen3_next;
  if (model_type == "qwen3_moe") return HfArchitecture::qwen3_moe;
  if (model_type.empty() && architectures.empty()) {
    fail("{}: has neither 'model_type' nor 'architectures'; cannot tell the architecture", origin);
  }
  fail(
      "{}: unsupported architecture: model_type '{}', architectures [{}] (supported: qwen3_next "
      "/ Qwen3NextForCausalLM, qwen3_moe / Qwen3MoeForCausalLM)",
      origin, model_type, architectures);
}

// RoPE settings from either layout: v5 nests them in `rope_parameters`, v4 has them at the top
// level (with an optional `rope_scaling`).
struct Rope {
  double theta;
  double partial_factor;
};

Rope read_rope(const Fields& f) {
  Rope r{f.number("rope_theta", 10000.0), f.number("partial_rotary_factor", 1.0)};
  std::string type = "default";
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    const json* p = f.find(key);
    if (!p) continue;
    if (!p->is_object()) fail("{}: '{}' is {}, expected an object", f.origin(), key, p->dump());
    const Fields pf(*p, f.origin());
    if (std::string(key) == "rope_parameters") {
      r.theta = pf.number("rope_theta", r.theta);
      r.partial_factor = pf.number("partial_rotary_factor", r.partial_factor);
    }
    type = pf.string("rope_type", pf.string("type", type));
  }
  if (type != "default") {
    fail("{}: RoPE type '{}' is not supported (only the default RoPE without scaling)", f.origin(),
         type);
  }
  if (!(r.theta > 0)) fail("{}: rope_theta must be positive", f.origin());
  if (!(r.partial_factor > 0 && r.partial_factor <= 1)) {
    fail("{}: partial_rotary_factor {} must be in (0, 1]", f.origin(), r.partial_factor);
  }
  return r;
}

// Refuses settings that make some layers dense or change the routing, which GGUF cannot express.
void check_all_layers_moe(const Fields& f, bool norm_topk_default) {
  if (f.integer("decoder_sparse_step", 1) != 1) {
    fail("{}: decoder_sparse_step {} is not supported (every layer must be MoE)", f.origin(),
         f.integer("decoder_sparse_step"));
  }
  if (const json* m = f.find("mlp_only_layers"); m && !(m->is_array() && m->empty())) {
    fail("{}: mlp_only_layers {} is not supported (every layer must be MoE)", f.origin(),
         m->dump());
  }
  if (!f.boolean("norm_topk_prob", norm_topk_default)) {
    fail("{}: norm_topk_prob must be true (the GGUF architecture renormalises the top-k weights)",
         f.origin());
  }
  const std::string act = f.string("hidden_act", "silu");
  if (act != "silu") fail("{}: hidden_act '{}' is not supported (only silu)", f.origin(), act);
  if (f.boolean("attention_bias", false)) {
    fail("{}: attention_bias is not supported (the GGUF layout has no attention biases)",
         f.origin());
  }
}

int64_t interval_from_layer_types(const json& types, int64_t n_layers, const std::string& origin) {
  if (!types.is_array() || static_cast<int64_t>(types.size()) != n_layers) {
    fail("{}: layer_types must be a list of num_hidden_layers = {} entries", origin, n_layers);
  }
  std::vector<bool> full;
  for (const json& t : types) {
    const std::string s = t.is_string() ? t.get<std::string>() : t.dump();
    if (s != "full_attention" && s != "linear_attention") {
      fail("{}: layer_types has '{}', expected full_attention or linear_attention", origin, s);
    }
    full.push_back(s == "full_attention");
  }
  int64_t interval = n_layers + 1;  // no attention layer at all
  for (int64_t i = 0; i < n_layers; ++i) {
    if (full[static_cast<size_t>(i)]) {
      interval = i + 1;
      break;
    }
  }
  for (int64_t i = 0; i < n_layers; ++i) {
    if (full[static_cast<size_t>(i)] != ((i + 1) % interval == 0)) {
      fail(
          "{}: layer_types cannot be expressed as a full_attention_interval (layer {} is {}, but "
          "an interval of {} makes it {})",
          origin, i, full[static_cast<size_t>(i)] ? "full_attention" : "linear_attention", interval,
          (i + 1) % interval == 0 ? "full_attention" : "linear_attention");
    }
  }
  return interval;
}

// transformers' defaults: norm_topk_prob true for Qwen3-Next, false for Qwen3-MoE.
Qwen3NextConfig read_qwen3_next(const Fields& f) {
  check_all_layers_moe(f, true);
  Qwen3NextConfig q;
  q.hidden = f.integer("hidden_size");
  q.n_layers = f.integer("num_hidden_layers");
  q.vocab = f.integer("vocab_size");
  q.context_length = f.integer("max_position_embeddings");
  q.n_heads = f.integer("num_attention_heads");
  q.n_kv_heads = f.integer("num_key_value_heads");
  q.head_dim = f.integer("head_dim", q.n_heads > 0 ? q.hidden / q.n_heads : 0);
  q.rms_eps = static_cast<float>(f.number("rms_norm_eps", 1e-6));
  const Rope rope = read_rope(f);
  q.rope_theta = static_cast<float>(rope.theta);
  const double rope_dims = rope.partial_factor * static_cast<double>(q.head_dim);
  if (rope_dims != std::floor(rope_dims)) {
    fail("{}: partial_rotary_factor {} times head_dim {} is not a whole number of dimensions",
         f.origin(), rope.partial_factor, q.head_dim);
  }
  q.rope_dims = static_cast<int64_t>(rope_dims);
  q.linear_k_heads = f.integer("linear_num_key_heads");
  q.linear_v_heads = f.integer("linear_num_value_heads");
  q.linear_k_dim = f.integer("linear_key_head_dim");
  q.linear_v_dim = f.integer("linear_value_head_dim");
  q.conv_kernel = f.integer("linear_conv_kernel_dim", 4);
  q.n_experts = f.integer_either("num_experts", "num_local_experts");
  q.n_experts_used = f.integer("num_experts_per_tok");
  q.expert_ffn = f.integer("moe_intermediate_size");
  q.shared_ffn = f.integer("shared_expert_intermediate_size");
  q.dense_ffn = f.integer("intermediate_size", q.dense_ffn);
  if (const json* lt = f.find("layer_types")) {
    q.full_attention_interval = interval_from_layer_types(*lt, q.n_layers, f.origin());
    if (const json* fai = f.find("full_attention_interval")) {
      const int64_t declared = f.as_integer(*fai, "full_attention_interval");
      if (declared != q.full_attention_interval && q.full_attention_interval <= q.n_layers) {
        fail("{}: layer_types imply full_attention_interval {} but the config says {}", f.origin(),
             q.full_attention_interval, declared);
      }
    }
  } else {
    q.full_attention_interval = f.integer("full_attention_interval");
  }
  q.validate(f.origin());
  return q;
}

Qwen3MoeConfig read_qwen3_moe(const Fields& f) {
  check_all_layers_moe(f, false);
  if (f.boolean("use_sliding_window", false)) {
    fail("{}: use_sliding_window is not supported", f.origin());
  }
  Qwen3MoeConfig q;
  q.hidden = f.integer("hidden_size");
  q.n_layers = f.integer("num_hidden_layers");
  q.vocab = f.integer("vocab_size");
  q.context_length = f.integer("max_position_embeddings");
  q.n_heads = f.integer("num_attention_heads");
  q.n_kv_heads = f.integer("num_key_value_heads");
  q.head_dim = f.integer("head_dim", q.n_heads > 0 ? q.hidden / q.n_heads : 0);
  q.rms_eps = static_cast<float>(f.number("rms_norm_eps", 1e-6));
  const Rope rope = read_rope(f);
  if (rope.partial_factor != 1.0) {
    fail("{}: partial_rotary_factor {} is not supported for qwen3_moe (RoPE covers the whole head)",
         f.origin(), rope.partial_factor);
  }
  q.rope_theta = static_cast<float>(rope.theta);
  q.n_experts = f.integer_either("num_experts", "num_local_experts");
  q.n_experts_used = f.integer("num_experts_per_tok");
  q.expert_ffn = f.integer("moe_intermediate_size");
  q.dense_ffn = f.integer("intermediate_size", q.dense_ffn);
  q.tied_embeddings = f.boolean("tie_word_embeddings", false);
  if (const json* lt = f.find("layer_types")) {
    for (const json& t : lt->is_array() ? *lt : json::array({*lt})) {
      if (t != "full_attention") {
        fail("{}: layer_types entry {} is not supported for qwen3_moe", f.origin(), t.dump());
      }
    }
  }
  q.validate(f.origin());
  return q;
}

HfQuantization read_quantization(const Fields& f) {
  HfQuantization q;
  const json* qc = f.find("quantization_config");
  if (!qc) return q;
  if (!qc->is_object()) fail("{}: quantization_config is not an object", f.origin());
  const Fields qf(*qc, f.origin());
  const std::string method = qf.string("quant_method", "");
  if (method != "bitsandbytes") {
    fail("{}: quantization_config quant_method '{}' is not supported (only bitsandbytes NF4)",
         f.origin(), method);
  }
  if (qf.boolean("load_in_8bit", false) || !qf.boolean("load_in_4bit", false)) {
    fail("{}: only 4-bit bitsandbytes checkpoints are supported (load_in_4bit with nf4)",
         f.origin());
  }
  const std::string type = qf.string("bnb_4bit_quant_type", "fp4");
  if (type != "nf4") {
    fail("{}: bnb_4bit_quant_type '{}' is not supported (only nf4)", f.origin(), type);
  }
  q.bnb_nf4 = true;
  if (const json* skip = qf.find("llm_int8_skip_modules")) {
    if (!skip->is_array()) fail("{}: llm_int8_skip_modules is not a list", f.origin());
    for (const json& s : *skip) {
      if (s.is_string()) q.skip_modules.push_back(s.get<std::string>());
    }
  }
  return q;
}

}  // namespace

HfModelConfig parse_hf_config(const json& config, const std::string& origin) {
  if (!config.is_object()) fail("{}: not a JSON object", origin);
  const Fields f(config, origin);
  HfModelConfig out;
  out.arch = detect_architecture(config, origin);
  out.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  if (out.arch == HfArchitecture::qwen3_next) {
    out.next = read_qwen3_next(f);
  } else {
    out.moe = read_qwen3_moe(f);
  }
  out.quantization = read_quantization(f);
  return out;
}

HfModelConfig read_hf_config(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot read (is {} a Hugging Face model directory?)", path, dir);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  json config;
  try {
    config = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
  return parse_hf_config(config, path);
}

}  // namespace moerun
