#include "model/qwen3_moe_config.h"

#include "core/error.h"
#include "io/gguf_file.h"
#include "model/arch_keys.h"

namespace moerun {
namespace {

const ArchKeys kKeys("qwen3moe");

}  // namespace

void Qwen3MoeConfig::validate(const std::string& origin) const {
  validate_moe_shape(origin, {n_layers, hidden, vocab, n_heads, n_kv_heads, head_dim, n_experts,
                              n_experts_used, expert_ffn, rms_eps, rope_theta});
  if (head_dim % 2 != 0) fail("{}: key_length {} must be even for RoPE", origin, head_dim);
}

void write_qwen3_moe_config(GgufWriter& w, const Qwen3MoeConfig& c) {
  write_moe_keys(kKeys, w, c, std::nullopt);
}

Qwen3MoeConfig read_qwen3_moe_config(const GgufFile& file) {
  const ArchKeys& k = kKeys;
  // Older files leave key_length out: then it is hidden / heads.
  Qwen3MoeConfig c = read_moe_keys<Qwen3MoeConfig>(k, file, KeyLength::optional);
  c.dense_ffn = k.read_optional_int(file, "feed_forward_length").value_or(c.dense_ffn);
  c.tied_embeddings = file.find_tensor("output.weight") == nullptr;
  c.vocab = file.tensor("token_embd.weight").view.ne[1];
  c.validate(file.path());
  return c;
}

}  // namespace moerun
