#include "model/decoder_binding.h"

#include <fmt/format.h>

#include "model/weight_binding.h"

namespace moerun {

std::string layer_tensor(int64_t layer, const char* suffix) {
  return fmt::format("blk.{}.{}", layer, suffix);
}

AttentionWeights bind_attention_weights(const WeightBinder& b, const AttentionConfig& c,
                                        int64_t layer) {
  auto name = [layer](const char* s) { return layer_tensor(layer, s); };
  const int64_t hd = c.dims.head_dim;
  AttentionWeights w;
  w.q = b.matrix(name("attn_q.weight"), c.hidden, c.q_width() * (c.output_gate ? 2 : 1));
  w.k = b.matrix(name("attn_k.weight"), c.hidden, c.kv_width());
  w.v = b.matrix(name("attn_v.weight"), c.hidden, c.kv_width());
  w.o = b.matrix(name("attn_output.weight"), c.q_width(), c.hidden);
  w.q_norm = b.floats(name("attn_q_norm.weight"), {hd});
  w.k_norm = b.floats(name("attn_k_norm.weight"), {hd});
  return w;
}

MoeWeights bind_moe_weights(const WeightBinder& b, const MoeConfig& c, int64_t layer) {
  auto name = [layer](const char* s) { return layer_tensor(layer, s); };
  MoeWeights w;
  w.router = b.matrix(name("ffn_gate_inp.weight"), c.hidden, c.n_experts);
  if (c.shared_ffn > 0) {
    w.shared_gate = b.matrix(name("ffn_gate_shexp.weight"), c.hidden, c.shared_ffn);
    w.shared_up = b.matrix(name("ffn_up_shexp.weight"), c.hidden, c.shared_ffn);
    w.shared_down = b.matrix(name("ffn_down_shexp.weight"), c.shared_ffn, c.hidden);
    const Tensor scale = b.view(name("ffn_gate_inp_shexp.weight"), {c.hidden});
    w.shared_scale = WeightMatrix{scale.type, 1, c.hidden, scale.row_nbytes(), scale.data};
  }
  return w;
}

LayerExperts bind_layer_experts(const WeightBinder& b, const MoeConfig& c, int64_t ffn,
                                int64_t layer) {
  auto name = [layer](const char* s) { return layer_tensor(layer, s); };
  return LayerExperts{b.view(name("ffn_gate_exps.weight"), {c.hidden, ffn, c.n_experts}),
                      b.view(name("ffn_up_exps.weight"), {c.hidden, ffn, c.n_experts}),
                      b.view(name("ffn_down_exps.weight"), {ffn, c.hidden, c.n_experts})};
}

}  // namespace moerun
