#include "model/qwen3_next.h"

#include "core/error.h"
#include "io/gguf_file.h"
#include "model/decoder_binding.h"
#include "model/model_info.h"
#include "model/qwen3_next_config.h"
#include "model/weight_binding.h"
#include "ops/cpu/gated_delta_rule.h"
#include "ops/cpu/rope.h"

namespace moerun {
namespace {

DeltaNetWeights bind_deltanet(const WeightBinder& b, const DeltaNetConfig& c, int64_t i) {
  auto name = [i](const char* s) { return layer_tensor(i, s); };
  DeltaNetWeights w;
  if (b.has(name("ssm_in.weight"))) {
    w.layout = DeltaNetLayout::ssm_in;
    w.ssm_in = b.matrix(name("ssm_in.weight"), c.hidden, 2 * c.key_width() + 2 * c.value_width());
  } else if (b.has(name("attn_qkv.weight"))) {
    w.layout = DeltaNetLayout::qkv_gate;
    w.qkv = b.matrix(name("attn_qkv.weight"), c.hidden, c.channels());
    w.gate = b.matrix(name("attn_gate.weight"), c.hidden, c.value_width());
  } else {
    fail("{}: tensor '{}' is missing (DeltaNet layer {} needs it, or '{}' and '{}')", b.path(),
         name("ssm_in.weight"), i, name("attn_qkv.weight"), name("attn_gate.weight"));
  }
  w.ba = b.matrix(name("ssm_ba.weight"), c.hidden, 2 * c.v_heads);
  // ssm_conv1d {kernel, channels}: tap j of channel ch at ch * kernel + j; kept transposed.
  const int64_t channels = c.channels();
  const std::vector<float> conv = b.floats(name("ssm_conv1d.weight"), {c.conv_kernel, channels});
  w.conv.resize(conv.size());
  for (int64_t ch = 0; ch < channels; ++ch) {
    for (int64_t j = 0; j < c.conv_kernel; ++j) {
      w.conv[j * channels + ch] = conv[ch * c.conv_kernel + j];
    }
  }
  w.dt_bias = b.floats(name("ssm_dt.bias"), {c.v_heads});
  w.a = b.floats(name("ssm_a"), {c.v_heads});
  w.norm = b.floats(name("ssm_norm.weight"), {c.v_dim});
  w.out = b.matrix(name("ssm_out.weight"), c.value_width(), c.hidden);
  return w;
}

}  // namespace

DecoderWeights bind_qwen3_next(const GgufFile& file) {
  const Qwen3NextConfig c = read_qwen3_next_config(file);
  if (c.rope_dims > kMaxRopeDims) fail("{}: rope.dimension_count is too large", file.path());
  if (c.linear_v_dim > kMaxDeltaValueDim) {
    fail("{}: DeltaNet value heads of {} exceed the supported {}", file.path(), c.linear_v_dim,
         kMaxDeltaValueDim);
  }
  if (c.shared_ffn <= 0) {
    fail("{}: expert_shared_feed_forward_length must be positive", file.path());
  }
  const WeightBinder b(file);
  DecoderWeights w;
  w.info = ModelInfo{"qwen3next", model_name(file), c.vocab,         c.context_length,
                     c.n_layers,  c.n_experts,      c.n_experts_used};
  w.hidden = c.hidden;
  w.rms_eps = c.rms_eps;
  w.embedding = b.view("token_embd.weight", {c.hidden, c.vocab});
  w.output_norm = b.floats("output_norm.weight", {c.hidden});
  w.output = b.matrix("output.weight", c.hidden, c.vocab);

  AttentionConfig& ac = w.attention_config;
  ac.dims = AttentionDims{c.n_heads, c.n_kv_heads, c.head_dim};
  ac.hidden = c.hidden;
  ac.rope_dims = c.rope_dims;
  ac.rms_eps = c.rms_eps;
  ac.output_gate = true;
  ac.inv_freq.resize(static_cast<size_t>(c.rope_dims / 2));
  rope_inv_freq(c.rope_theta, c.rope_dims, ac.inv_freq.data());

  w.deltanet_config =
      DeltaNetConfig{c.hidden,       c.linear_k_heads, c.linear_v_heads, c.linear_k_dim,
                     c.linear_v_dim, c.conv_kernel,    c.rms_eps};
  w.moe_config = MoeConfig{c.hidden, c.n_experts, c.n_experts_used, true, c.shared_ffn};

  for (int64_t i = 0; i < c.n_layers; ++i) {
    DecoderLayer layer;
    layer.mixer_norm = b.floats(layer_tensor(i, "attn_norm.weight"), {c.hidden});
    layer.ffn_norm = b.floats(layer_tensor(i, "post_attention_norm.weight"), {c.hidden});
    if (c.is_attention_layer(i)) {
      layer.attention = static_cast<int64_t>(w.attention.size());
      w.attention.push_back(bind_attention_weights(b, ac, i));
    } else {
      layer.deltanet = static_cast<int64_t>(w.deltanet.size());
      w.deltanet.push_back(bind_deltanet(b, w.deltanet_config, i));
    }
    layer.moe = bind_moe_weights(b, w.moe_config, i);
    w.experts.push_back(bind_layer_experts(b, w.moe_config, c.expert_ffn, i));
    w.layers.push_back(std::move(layer));
  }
  return w;
}

}  // namespace moerun
