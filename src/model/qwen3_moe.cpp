#include "model/qwen3_moe.h"

#include "core/error.h"
#include "io/gguf_file.h"
#include "model/decoder_binding.h"
#include "model/model_info.h"
#include "model/qwen3_moe_config.h"
#include "model/weight_binding.h"
#include "ops/cpu/rope.h"

namespace moerun {

DecoderWeights bind_qwen3_moe(const GgufFile& file) {
  const Qwen3MoeConfig c = read_qwen3_moe_config(file);
  if (c.head_dim > kMaxRopeDims) fail("{}: key_length {} is too large", file.path(), c.head_dim);
  const WeightBinder b(file);
  DecoderWeights w;
  w.info = ModelInfo{"qwen3moe", model_name(file), c.vocab,         c.context_length,
                     c.n_layers, c.n_experts,      c.n_experts_used};
  w.hidden = c.hidden;
  w.rms_eps = c.rms_eps;
  w.embedding = b.view("token_embd.weight", {c.hidden, c.vocab});
  w.output_norm = b.floats("output_norm.weight", {c.hidden});
  // Tied embeddings: token_embd {hidden, vocab} is also the output matrix.
  w.output = b.matrix(c.tied_embeddings ? "token_embd.weight" : "output.weight", c.hidden, c.vocab);

  AttentionConfig& ac = w.attention_config;
  ac.dims = AttentionDims{c.n_heads, c.n_kv_heads, c.head_dim};
  ac.hidden = c.hidden;
  ac.rope_dims = c.head_dim;  // RoPE over the whole head
  ac.rms_eps = c.rms_eps;
  ac.output_gate = false;
  ac.inv_freq.resize(static_cast<size_t>(c.head_dim / 2));
  rope_inv_freq(c.rope_theta, c.head_dim, ac.inv_freq.data());

  w.moe_config = MoeConfig{c.hidden, c.n_experts, c.n_experts_used, true, 0};

  for (int64_t i = 0; i < c.n_layers; ++i) {
    DecoderLayer layer;
    layer.mixer_norm = b.floats(layer_tensor(i, "attn_norm.weight"), {c.hidden});
    layer.ffn_norm = b.floats(layer_tensor(i, "ffn_norm.weight"), {c.hidden});
    layer.attention = static_cast<int64_t>(w.attention.size());
    w.attention.push_back(bind_attention_weights(b, ac, i));
    layer.moe = bind_moe_weights(b, w.moe_config, i);
    w.experts.push_back(bind_layer_experts(b, w.moe_config, c.expert_ffn, i));
    w.layers.push_back(std::move(layer));
  }
  return w;
}

}  // namespace moerun
