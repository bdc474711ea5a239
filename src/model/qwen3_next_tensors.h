// The tensors of a qwen3next GGUF (llama.cpp's names and shapes), listed from a config.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/qwen3_next_config.h"

namespace moerun {

// How a DeltaNet layer's input projection is stored (both exist in published files).
enum class DeltaNetLayout {
  qkv_gate,  // newer: attn_qkv [q all heads | k | v] and attn_gate (z)
  ssm_in,    // older: ssm_in, HF's grouped-by-key-head order
};

// What a tensor is for; decides its storage type in a type mix and its random initialisation.
enum class TensorRole {
  embedding,       // token_embd
  output,          // output (lm_head)
  norm,            // RMSNorm weights with the +1 baked in (and ssm_norm)
  projection,      // dense matrices of attention / DeltaNet (input side)
  out_projection,  // matrices writing into the residual (attn_output, ssm_out)
  value_proj,      // attn_v: kept at higher precision in a Q4_K_M mix
  router,          // ffn_gate_inp
  shared_gate,     // ffn_gate_inp_shexp (one vector)
  shared_in,       // ffn_gate_shexp, ffn_up_shexp
  shared_down,     // ffn_down_shexp
  expert_in,       // ffn_gate_exps, ffn_up_exps
  expert_down,     // ffn_down_exps
  conv,            // ssm_conv1d
  ssm_a,           // ssm_a = -exp(A_log)
  ssm_dt_bias,     // ssm_dt.bias
  ssm_ba,          // ssm_ba
};

// One tensor: name, shape (ne[0] contiguous) and role.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> ne;
  TensorRole role;

  // Rows of ne[0] elements (the product of ne[1..]).
  int64_t rows() const {
    int64_t r = 1;
    for (size_t d = 1; d < ne.size(); ++d) r *= ne[d];
    return r;
  }
};

// Every tensor of a qwen3next model in the order moerun writes them.
std::vector<TensorSpec> qwen3_next_tensor_specs(const Qwen3NextConfig& config,
                                                DeltaNetLayout layout);

}  // namespace moerun
