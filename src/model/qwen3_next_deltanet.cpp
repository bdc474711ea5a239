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

// Everything a head-group task reads, so the pool closure holds one pointer.
struct GroupArgs {
  const DeltaNetConfig* c;
  const DeltaNetWeights* w;
  const BatchPlan* plan;
  int64_t layer;
  const float* mixed;  // [n, channels] conv input
  const float* ba;     // [n, 2 v_heads] per key head g: b of its value heads, then a
  const float* z;      // [n, value_width]
  float q_scale;
  float* conv;   // [n, channels] conv output: q | k | v
  float* decay;  // [n, v_heads] log decay g
  float* beta;   // [n, v_heads]
  float* core;   // [n, value_width]
};

// Value head h of one run: beta = sigmoid(b), g = a * softplus(a_in + dt), the gated delta rule
// over the run's tokens with its sequence's state, then the gated norm with z.
void run_value_head(const GroupArgs& a, const BatchRun& run, int64_t h) {
  const DeltaNetConfig& c = *a.c;
  const DeltaNetWeights& w = *a.w;
  const int64_t vh = c.v_heads;
  const int64_t r = c.ratio();
  const int64_t kh = h / r;
  const int64_t channels = c.channels();
  const auto hu = static_cast<size_t>(h);
  for (int64_t t = run.begin; t < run.begin + run.count; ++t) {
    const float* bat = a.ba + t * 2 * vh;
    const float b = bat[kh * 2 * r + h % r];
    const float ain = bat[kh * 2 * r + r + h % r];
    a.beta[t * vh + h] = sigmoid(b);
    a.decay[t * vh + h] = w.a[hu] * softplus(ain + w.dt_bias[hu]);
  }
  const float* base = a.conv + run.begin * channels;
  DeltaRuleInputs in;
  in.q = base + kh * c.k_dim;
  in.k = base + c.key_width() + kh * c.k_dim;
  in.v = base + 2 * c.key_width() + h * c.v_dim;
  in.q_stride = in.k_stride = in.v_stride = channels;
  in.g = a.decay + run.begin * vh + h;
  in.beta = a.beta + run.begin * vh + h;
  in.gb_stride = vh;
  float* state = run.state->ssm_state(a.layer) + h * c.k_dim * c.v_dim;
  float* o = a.core + run.begin * c.value_width() + h * c.v_dim;
  gated_delta_rule(state, c.k_dim, c.v_dim, run.count, in, o, c.value_width());
  for (int64_t t = 0; t < run.count; ++t) {
    float* row = o + t * c.value_width();  // [v_dim]
    gated_rms_norm(row, a.z + (run.begin + t) * c.value_width() + h * c.v_dim, w.norm.data(), 1,
                   c.v_dim, c.rms_eps, row);
  }
}

// Task (run, key head kh): conv + SiLU of the channels it reads (q and k of kh, v of its value
// heads), L2 norm of q and k (q also scaled), then each of its value heads (run_value_head).
void run_group(const GroupArgs& a, int64_t task) {
  const DeltaNetConfig& c = *a.c;
  const BatchRun& run = a.plan->runs[static_cast<size_t>(task / c.k_heads)];
  const int64_t kh = task % c.k_heads;
  const int64_t r = c.ratio();
  const int64_t channels = c.channels();
  const float* x = a.mixed + run.begin * channels;
  float* y = a.conv + run.begin * channels;
  float* conv_state = run.state->conv_state(a.layer);
  const float* conv_w = a.w->conv.data();
  const int64_t q0 = kh * c.k_dim;
  const int64_t k0 = c.key_width() + kh * c.k_dim;
  const int64_t v0 = 2 * c.key_width() + kh * r * c.v_dim;
  for (const int64_t begin : {q0, k0}) {
    causal_conv1d_silu_channels(x, run.count, channels, conv_w, c.conv_kernel, conv_state, y, begin,
                                begin + c.k_dim);
  }
  causal_conv1d_silu_channels(x, run.count, channels, conv_w, c.conv_kernel, conv_state, y, v0,
                              v0 + r * c.v_dim);
  for (int64_t t = 0; t < run.count; ++t) {
    float* q = y + t * channels + q0;  // [k_dim]
    l2_norm(q, 1, c.k_dim, 1e-6f);
    l2_norm(y + t * channels + k0, 1, c.k_dim, 1e-6f);
    for (int64_t i = 0; i < c.k_dim; ++i) q[i] *= a.q_scale;
  }
  for (int64_t h = kh * r; h < (kh + 1) * r; ++h) run_value_head(a, run, h);
}

}  // namespace

void deltanet_layer(const DeltaNetConfig& c, const DeltaNetWeights& w, int64_t layer,
                    const float* x, const BatchPlan& plan, ThreadPool& pool, DeltaNetScratch& s,
                    float* out) {
  const int64_t n = static_cast<int64_t>(plan.positions.size());
  const auto un = static_cast<size_t>(n);
  const int64_t channels = c.channels();
  const int64_t vh = c.v_heads;

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

  // Per (run, key head), one pool task: causal conv + SiLU of its channels, L2 norm of q and k
  // (q scaled by 1/sqrt(k_dim)), then gates, delta rule and gated norm of its value heads.
  const GroupArgs args{&c,
                       &w,
                       &plan,
                       layer,
                       mixed,
                       ba,
                       z,
                       static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.k_dim))),
                       grow(s.conv, un * channels),
                       grow(s.decay, un * vh),
                       grow(s.beta, un * vh),
                       grow(s.core, un * c.value_width())};
  const GroupArgs* pa = &args;
  pool.parallel_for(static_cast<int64_t>(plan.runs.size()) * c.k_heads,
                    [pa](int64_t task, int) { run_group(*pa, task); });
  float* core = args.core;

  // Output projection.
  matmul(w.out, core, n, out, &pool);
}

}  // namespace moerun
