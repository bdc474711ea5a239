#include "model/cuda_weights.h"

#include <cuda_runtime_api.h>

#include <string>

#include "core/error.h"
#include "ops/cuda/cuda_check.cuh"
#include "ops/cuda/device_memory.h"
#include "ops/cuda/launch_plan.h"

namespace moerun {
namespace {

// Copies `bytes` from host memory into a new allocation.
void* upload_bytes(DeviceMemory& memory, const void* src, uint64_t bytes, GpuUse use,
                   const std::string& what) {
  void* dst = memory.allocate(bytes, use, what.c_str());
  MOERUN_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
  return dst;
}

WeightMatrix upload_matrix(DeviceMemory& memory, const WeightMatrix& m, const std::string& what) {
  if (m.data == nullptr || m.rows == 0) return m;
  if (!cuda_plan::gpu_matmul_supports(m.type)) {
    fail("{}: weights of type {} have no GPU kernel", what, dtype_name(m.type));
  }
  WeightMatrix out = m;
  out.data = upload_bytes(memory, m.data, static_cast<uint64_t>(m.rows * m.row_stride),
                          GpuUse::dense_weights, what);
  return out;
}

const float* upload_floats(DeviceMemory& memory, const std::vector<float>& v,
                           const std::string& what) {
  if (v.empty()) return nullptr;
  return static_cast<const float*>(
      upload_bytes(memory, v.data(), v.size() * sizeof(float), GpuUse::dense_weights, what));
}

// The stacked experts of one layer in VRAM and their device pointer table.
GpuMoe upload_moe(DeviceMemory& memory, const MoeWeights& m, const LayerExperts& e, int64_t layer,
                  bool experts) {
  const std::string prefix = "layer " + std::to_string(layer) + " ";
  GpuMoe g;
  g.router = upload_matrix(memory, m.router, prefix + "router");
  g.shared_gate = upload_matrix(memory, m.shared_gate, prefix + "shared expert gate");
  g.shared_up = upload_matrix(memory, m.shared_up, prefix + "shared expert up");
  g.shared_down = upload_matrix(memory, m.shared_down, prefix + "shared expert down");
  g.shared_scale = upload_matrix(memory, m.shared_scale, prefix + "shared expert gate scale");

  const int64_t hidden = e.gate.ne[0];
  const int64_t ffn = e.gate.ne[1];
  const int64_t n_experts = e.gate.ne[2];
  g.experts = ExpertShape{e.gate.type, e.up.type, e.down.type, hidden, ffn, n_experts};
  if (!experts) return g;
  const Tensor* parts[3] = {&e.gate, &e.up, &e.down};
  const char* names[3] = {"experts gate", "experts up", "experts down"};
  std::vector<const void*> pointers(static_cast<size_t>(3 * n_experts));
  for (int p = 0; p < 3; ++p) {
    const Tensor& t = *parts[p];
    if (!cuda_plan::gpu_matmul_supports(t.type)) {
      fail("{}{}: weights of type {} have no GPU kernel", prefix, names[p], dtype_name(t.type));
    }
    const auto* base =
        static_cast<const uint8_t*>(upload_bytes(memory, t.data, static_cast<uint64_t>(t.nbytes()),
                                                 GpuUse::expert_cache, prefix + names[p]));
    const int64_t expert_bytes = t.ne[1] * t.row_nbytes();
    for (int64_t x = 0; x < n_experts; ++x) {
      pointers[static_cast<size_t>(p * n_experts + x)] = base + x * expert_bytes;
    }
  }
  const auto* table = static_cast<const void* const*>(
      upload_bytes(memory, pointers.data(), pointers.size() * sizeof(void*), GpuUse::expert_cache,
                   prefix + "expert table"));
  g.table = DeviceExpertTable{table, table + n_experts, table + 2 * n_experts};
  return g;
}

}  // namespace

uint64_t routed_expert_bytes(const DecoderWeights& w) {
  uint64_t bytes = 0;
  for (const LayerExperts& e : w.experts) {
    bytes += static_cast<uint64_t>(e.gate.nbytes() + e.up.nbytes() + e.down.nbytes());
  }
  return bytes;
}

GpuWeights upload_weights(const DecoderWeights& w, DeviceMemory& memory, bool experts) {
  GpuWeights g;
  g.output_norm = upload_floats(memory, w.output_norm, "output norm");
  g.output = upload_matrix(memory, w.output, "output (lm_head)");
  g.inv_freq = upload_floats(memory, w.attention_config.inv_freq, "RoPE frequencies");

  const AttentionConfig& ac = w.attention_config;
  g.attention_shape = AttentionShape{ac.dims.n_heads, ac.dims.n_kv_heads, ac.dims.head_dim,
                                     ac.rope_dims,    ac.rms_eps,         ac.output_gate};
  const DeltaNetConfig& dc = w.deltanet_config;
  g.deltanet_shape =
      DeltaNetShape{dc.k_heads, dc.v_heads, dc.k_dim, dc.v_dim, dc.conv_kernel, dc.rms_eps};

  for (size_t i = 0; i < w.attention.size(); ++i) {
    const AttentionWeights& a = w.attention[i];
    const std::string p = "attention " + std::to_string(i) + " ";
    g.attention.push_back(
        GpuAttention{upload_matrix(memory, a.q, p + "q"), upload_matrix(memory, a.k, p + "k"),
                     upload_matrix(memory, a.v, p + "v"), upload_matrix(memory, a.o, p + "output"),
                     upload_floats(memory, a.q_norm, p + "q norm"),
                     upload_floats(memory, a.k_norm, p + "k norm")});
  }
  for (size_t i = 0; i < w.deltanet.size(); ++i) {
    const DeltaNetWeights& d = w.deltanet[i];
    const std::string p = "DeltaNet " + std::to_string(i) + " ";
    GpuDeltaNet n;
    n.layout = d.layout;
    n.ssm_in = upload_matrix(memory, d.ssm_in, p + "ssm_in");
    n.qkv = upload_matrix(memory, d.qkv, p + "qkv");
    n.gate = upload_matrix(memory, d.gate, p + "gate");
    n.ba = upload_matrix(memory, d.ba, p + "ba");
    n.out = upload_matrix(memory, d.out, p + "out");
    n.conv = upload_floats(memory, d.conv, p + "conv");
    n.dt_bias = upload_floats(memory, d.dt_bias, p + "dt bias");
    n.a = upload_floats(memory, d.a, p + "a");
    n.norm = upload_floats(memory, d.norm, p + "norm");
    g.deltanet.push_back(n);
  }
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const DecoderLayer& L = w.layers[l];
    const std::string p = "layer " + std::to_string(l) + " ";
    GpuLayer gl;
    gl.mixer_norm = upload_floats(memory, L.mixer_norm, p + "input norm");
    gl.ffn_norm = upload_floats(memory, L.ffn_norm, p + "post-attention norm");
    gl.attention = L.attention;
    gl.deltanet = L.deltanet;
    gl.moe = upload_moe(memory, L.moe, w.experts[l], static_cast<int64_t>(l), experts);
    g.layers.push_back(gl);
  }
  return g;
}

}  // namespace moerun
