#include "model/qwen3_next_deltanet.h"

#include <cmath>
#include <cstring>

#include "core/thread_pool.h"
#include "model/batch_plan.h"
#include "model/scratch.h"
#include "ops/cpu/activations.h"
#include "ops/cpu/causal_conv1d.h"
#include "ops/cpu/gated_delta_rule.h"
#include "ops/cpu/norms.h"

namespace moerun {
namespace {

void copy_floats(float* dst, const float* src, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

// ssm_in output [n, k_heads, 2 k_dim + 2 ratio v_dim] (grouped by key head) -> mixed [n, q all |
// k all | v all] and z [n, value heads in order].
void ungroup_qkvz(const DeltaNetConfig& c, const float* proj, int64_t n, float* mixed, float* z) {
  const int64_t kd = c.k_dim;
  const int64_t group_v = c.ratio() * c.v_dim;
  const int64_t group = 2 * kd + 2 * group_v;
  const int64_t channels = c.channels();
  for (int64_t t = 0; t < n; ++t) {
    const float* p = proj + t * c.k_heads * group;
    float* m = mixed + t * channels;
    float* zt = z + t * c.value_width();
    for (int64_t g = 0; g < c.k_heads; ++g) {
      const float* src = p + g * group;
      copy_floats(m + g * kd, src, kd);
      copy_floats(m + c.key_width() + g * kd, src + kd, kd);
      copy_floats(m + 2 * c.key_width() + g * group_v, src + 2 * kd, group_v);
      copy_floats(zt + g * group_v, src + 2 * kd + group_v, group_v);
    }
  }
}

// Everything a recurrence task reads, so the pool closure holds one pointer.
struct RecurrenceArgs {
  const DeltaNetConfig* c;
  const BatchPlan* plan;
  int64_t layer;
  const float* conv;   // [n, channels]
  const float* decay;  // [n, v_heads]
  const float* beta;   // [n, v_heads]
  float* core;         // [n, value_width]
};

// Task (run, value head): the gated delta rule over the run's tokens with its sequence's state.
void run_recurrence(const RecurrenceArgs& a, int64_t task) {
  const DeltaNetConfig& c = *a.c;
  const auto& run = a.plan->runs[static_cast<size_t>(task / c.v_heads)];
  const int64_t h = task % c.v_heads;
  const int64_t kh = h / c.ratio();
  const int64_t channels = c.channels();
  const float* base = a.conv + run.begin * channels;
  DeltaRuleInputs in;
  in.q = base + kh * c.k_dim;
  in.k = base + c.key_width() + kh * c.k_dim;
  in.v = base + 2 * c.key_width() + h * c.v_dim;
  in.q_stride = in.k_stride = in.v_stride = channels;
  in.g = a.decay + run.begin * c.v_heads + h;
  in.beta = a.beta + run.begin * c.v_heads + h;
  in.gb_stride = c.v_heads;
  float* state = run.state->ssm_state(a.layer) + h * c.k_dim * c.v_dim;
  gated_delta_rule(state, c.k_dim, c.v_dim, run.count, in,
                   a.core + run.begin * c.value_width() + h * c.v_dim, c.value_width());
}

}  // namespace

void deltanet_layer(const DeltaNetConfig& c, const DeltaNetWeights& w, int64_t layer,
                    const float* x, const BatchPlan& plan, ThreadPool& pool, DeltaNetScratch& s,
                    float* out) {
  const int64_t n = static_cast<int64_t>(plan.positions.size());
  const auto un = static_cast<size_t>(n);
  const int64_t channels = c.channels();
  const int64_t vh = c.v_heads;
  const int64_t r = c.ratio();

  // Input projections in one batched matmul: mixed = [q | k | v], z, and b/a.
  float* mixed = grow(s.mixed, un * channels);
  float* z = grow(s.z, un * c.value_width());
  float* ba = grow(s.ba, un * 2 * vh);
  float* proj = nullptr;
  s.jobs.clear();
  if (w.layout == DeltaNetLayout::ssm_in) {
    proj = grow(s.proj, un * (2 * c.key_width() + 2 * c.value_width()));
    s.jobs.push_back(MatmulJob{w.ssm_in, x, n, proj});
  } else {
    s.jobs.push_back(MatmulJob{w.qkv, x, n, mixed});
    s.jobs.push_back(MatmulJob{w.gate, x, n, z});
  }
  s.jobs.push_back(MatmulJob{w.ba, x, n, ba});
  matmul_batch(s.jobs, &pool, s.workspace);
  if (proj != nullptr) ungroup_qkvz(c, proj, n, mixed, z);

  // Causal conv + SiLU per sequence run, with that sequence's conv state.
  float* conv = grow(s.conv, un * channels);
  for (const BatchRun& run : plan.runs) {
    causal_conv1d_silu(mixed + run.begin * channels, run.count, channels, w.conv.data(),
                       c.conv_kernel, run.state->conv_state(layer), conv + run.begin * channels);
  }

  // q, k: L2 norm per head; q scaled by 1/sqrt(k_dim). beta = sigmoid(b), g = a * softplus(a_in +
  // dt).
  const float q_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.k_dim)));
  float* beta = grow(s.beta, un * vh);
  float* decay = grow(s.decay, un * vh);
  for (int64_t t = 0; t < n; ++t) {
    float* q = conv + t * channels;
    float* k = q + c.key_width();
    l2_norm(q, c.k_heads, c.k_dim, 1e-6f);
    l2_norm(k, c.k_heads, c.k_dim, 1e-6f);
    for (int64_t i = 0; i < c.key_width(); ++i) q[i] *= q_scale;
    const float* bat = ba + t * 2 * vh;
    for (int64_t h = 0; h < vh; ++h) {
      const int64_t g = h / r;
      const int64_t j = h % r;
      const float b = bat[g * 2 * r + j];
      const float a = bat[g * 2 * r + r + j];
      beta[t * vh + h] = sigmoid(b);
      decay[t * vh + h] = w.a[h] * softplus(a + w.dt_bias[h]);
    }
  }

  // The delta rule, one task per (run, value head).
  float* core = grow(s.core, un * c.value_width());
  const RecurrenceArgs args{&c, &plan, layer, conv, decay, beta, core};
  const RecurrenceArgs* pa = &args;
  pool.parallel_for(static_cast<int64_t>(plan.runs.size()) * vh,
                    [pa](int64_t task, int) { run_recurrence(*pa, task); });

  // Gated norm per value head, then the output projection.
  gated_rms_norm(core, z, w.norm.data(), n * vh, c.v_dim, c.rms_eps, core);
  matmul(w.out, core, n, out, &pool);
}

}  // namespace moerun
