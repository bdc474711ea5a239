// CpuMoeDispatcher: tokens grouped by expert; gate and up of all used experts in one batched
// matmul, SiLU product, then all downs in a second.
#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/thread_pool.h"
#include "moe/moe_dispatcher.h"
#include "ops/cpu/activations.h"
#include "ops/cpu/matmul.h"

namespace moerun {
namespace {

template <typename T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// The matrix of one expert inside a stacked tensor {cols, rows, n_experts}.
WeightMatrix expert_view(const Tensor& stacked, int64_t expert) {
  const int64_t rows = stacked.ne[1];
  const int64_t stride = stacked.row_nbytes();
  const auto* base = static_cast<const uint8_t*>(stacked.data);
  return WeightMatrix{stacked.type, rows, stacked.ne[0], stride, base + expert * rows * stride};
}

}  // namespace

struct CpuMoeDispatcher::Scratch {
  std::vector<int32_t> counts;     // [n_experts] assignments per expert
  std::vector<int32_t> offsets;    // [n_experts] first grouped row of each expert
  std::vector<int32_t> used;       // experts with at least one token, ascending
  std::vector<int32_t> slot_row;   // [n, top_k] grouped row of each assignment
  std::vector<int32_t> row_token;  // [assignments] token of each grouped row
  std::vector<float> xg;           // [assignments, hidden] inputs grouped by expert
  std::vector<float> gate;         // [assignments, ffn] silu(gate) * up after phase 1
  std::vector<float> up;           // [assignments, ffn]
  std::vector<float> down;         // [assignments, hidden]
  std::vector<MatmulJob> jobs;     // gate and up jobs, then down jobs
  MatmulWorkspace workspace;       // matmul_batch scratch
};

CpuMoeDispatcher::CpuMoeDispatcher(std::vector<LayerExperts> layers, ThreadPool& pool)
    : layers_(std::move(layers)),
      stats_(static_cast<int64_t>(layers_.size()), layers_.empty() ? 0 : layers_[0].gate.ne[2]),
      pool_(pool),
      scratch_(std::make_unique<Scratch>()) {
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerExperts& e = layers_[l];
    const bool ok = e.gate.ne == e.up.ne && e.down.ne[0] == e.gate.ne[1] &&
                    e.down.ne[1] == e.gate.ne[0] && e.down.ne[2] == e.gate.ne[2] &&
                    e.gate.ne[3] == 1 && e.down.ne[3] == 1 && e.gate.data && e.up.data &&
                    e.down.data;
    if (!ok) {
      fail("experts of layer {}: gate {}, up {}, down {} do not fit together", l,
           e.gate.shape_string(), e.up.shape_string(), e.down.shape_string());
    }
  }
}

CpuMoeDispatcher::~CpuMoeDispatcher() = default;

void CpuMoeDispatcher::run(int64_t layer, const float* x, int64_t n_tokens, const int32_t* ids,
                           const float* weights, int64_t top_k, float* out) {
  run_masked(layer, x, n_tokens, ids, weights, top_k, nullptr, out);
}

void CpuMoeDispatcher::run_masked(int64_t layer, const float* x, int64_t n_tokens,
                                  const int32_t* ids, const float* weights, int64_t top_k,
                                  const uint8_t* on_cpu, float* out) {
  MOERUN_CHECK(layer >= 0 && layer < static_cast<int64_t>(layers_.size()));
  const LayerExperts& L = layers_[static_cast<size_t>(layer)];
  const int64_t hidden = L.gate.ne[0];
  const int64_t ffn = L.gate.ne[1];
  const int64_t n_experts = L.gate.ne[2];
  Scratch& s = *scratch_;
  std::fill(out, out + n_tokens * hidden, 0.0f);
  if (n_tokens == 0) return;
  const auto start = std::chrono::steady_clock::now();

  // Group the assignments by expert (ascending expert id, token order within an expert).
  const int64_t n_assign = n_tokens * top_k;
  int32_t* counts = grow(s.counts, static_cast<size_t>(n_experts));
  int32_t* offsets = grow(s.offsets, static_cast<size_t>(n_experts));
  std::fill(counts, counts + n_experts, 0);
  for (int64_t i = 0; i < n_assign; ++i) {
    MOERUN_CHECK(ids[i] >= 0 && ids[i] < n_experts);
    if (on_cpu == nullptr || on_cpu[i]) ++counts[ids[i]];
  }
  s.used.clear();
  int32_t next = 0;
  for (int64_t e = 0; e < n_experts; ++e) {
    offsets[e] = next;
    next += counts[e];
    if (counts[e] > 0) s.used.push_back(static_cast<int32_t>(e));
  }
  int32_t* slot_row = grow(s.slot_row, static_cast<size_t>(n_assign));
  int32_t* row_token = grow(s.row_token, static_cast<size_t>(n_assign));
  float* xg = grow(s.xg, static_cast<size_t>(n_assign * hidden));
  std::fill(counts, counts + n_experts, 0);  // reused as fill cursors
  for (int64_t i = 0; i < n_assign; ++i) {
    if (on_cpu != nullptr && !on_cpu[i]) {
      slot_row[i] = -1;
      continue;
    }
    const int32_t e = ids[i];
    const int32_t row = offsets[e] + counts[e]++;
    slot_row[i] = row;
    row_token[row] = static_cast<int32_t>(i / top_k);
    std::copy(x + (i / top_k) * hidden, x + (i / top_k + 1) * hidden, xg + row * hidden);
  }
  if (s.used.empty()) return;
  float* gate = grow(s.gate, static_cast<size_t>(n_assign * ffn));
  float* up = grow(s.up, static_cast<size_t>(n_assign * ffn));
  float* down = grow(s.down, static_cast<size_t>(n_assign * hidden));

  // Phase 1: gate and up of every used expert in one matmul_batch (each expert's rows quantized
  // once for both), then silu(gate) * up. An expert with one token reads that token's row of x, so
  // experts sharing a token (every expert at decode) share one quantized input.
  s.jobs.clear();
  for (int32_t e : s.used) {
    const float* xe = counts[e] == 1 ? x + static_cast<int64_t>(row_token[offsets[e]]) * hidden
                                     : xg + static_cast<int64_t>(offsets[e]) * hidden;
    s.jobs.push_back(MatmulJob{expert_view(L.gate, e), xe, counts[e], gate + offsets[e] * ffn});
    s.jobs.push_back(MatmulJob{expert_view(L.up, e), xe, counts[e], up + offsets[e] * ffn});
  }
  matmul_batch(s.jobs, &pool_, s.workspace);
  silu_mul(gate, up, static_cast<int64_t>(next) * ffn, gate);

  // Phase 2: down of every used expert in one matmul_batch.
  s.jobs.clear();
  for (int32_t e : s.used) {
    s.jobs.push_back(MatmulJob{expert_view(L.down, e), gate + offsets[e] * ffn, counts[e],
                               down + static_cast<int64_t>(offsets[e]) * hidden});
  }
  matmul_batch(s.jobs, &pool_, s.workspace);

  // Phase 3: weighted sum per token, in the order of the token's choices.
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* o = out + t * hidden;
    for (int64_t k = 0; k < top_k; ++k) {
      if (slot_row[t * top_k + k] < 0) continue;
      const float wk = weights[t * top_k + k];
      const float* d = down + static_cast<int64_t>(slot_row[t * top_k + k]) * hidden;
      for (int64_t i = 0; i < hidden; ++i) o[i] += wk * d[i];
    }
  }
  if (on_cpu == nullptr) stats_.record_routing(layer, ids, n_assign);
  const uint64_t expert_bytes =
      static_cast<uint64_t>(L.gate.ne[1] * L.gate.row_nbytes() + L.up.ne[1] * L.up.row_nbytes() +
                            L.down.ne[1] * L.down.row_nbytes());
  stats_.record_cpu(layer, s.used.size(), s.used.size() * expert_bytes);
  if (layer == 0 && on_cpu == nullptr) stats_.record_tokens(static_cast<uint64_t>(n_tokens));
  stats_.add_cpu_seconds(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace moerun
