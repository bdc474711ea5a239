#include "model/moe_block.h"

#include "core/stage_clock.h"
#include "model/scratch.h"
#include "moe/moe_dispatcher.h"
#include "moe/routing_override.h"
#include "ops/cpu/activations.h"
#include "ops/cpu/router.h"

namespace moerun {

void moe_block(const MoeConfig& c, const MoeWeights& w, int64_t layer, const float* x, int64_t n,
               MoeDispatcher& experts, ThreadPool& pool, MoeScratch& s, float* out,
               StageClock* clock, const RoutingHooks* hooks) {
  const auto un = static_cast<size_t>(n);
  const bool shared = c.shared_ffn > 0;
  float* logits = grow(s.logits, un * c.n_experts);
  int32_t* ids = grow(s.ids, un * c.top_k);
  float* weights = grow(s.weights, un * c.top_k);
  float* gate = shared ? grow(s.gate, un * c.shared_ffn) : nullptr;
  float* up = shared ? grow(s.up, un * c.shared_ffn) : nullptr;
  float* scale = shared ? grow(s.scale, un) : nullptr;
  // Router and the shared expert's input side in one batched matmul (x quantized once).
  s.jobs.clear();
  s.jobs.push_back(MatmulJob{w.router, x, n, logits});
  if (shared) {
    s.jobs.push_back(MatmulJob{w.shared_gate, x, n, gate});
    s.jobs.push_back(MatmulJob{w.shared_up, x, n, up});
    s.jobs.push_back(MatmulJob{w.shared_scale, x, n, scale});
  }
  matmul_batch(s.jobs, &pool, s.workspace);
  softmax_top_k(logits, n, c.n_experts, c.top_k, c.normalize_top_k, ids, weights,
                grow(s.probs, static_cast<size_t>(c.n_experts)));
  if (hooks != nullptr) {
    if (hooks->replace) hooks->replace->choose(layer, n, c.top_k, ids, weights);
    if (hooks->observe) hooks->observe->observe(layer, n, c.top_k, ids, weights);
  }
  {
    StageClock::Scope timed(clock, StageClock::experts);
    experts.run(layer, x, n, ids, weights, c.top_k, out);
  }
  if (!shared) return;

  float* shared_out = grow(s.shared, un * c.hidden);
  silu_mul(gate, up, n * c.shared_ffn, gate);
  matmul(w.shared_down, gate, n, shared_out, &pool);
  for (int64_t t = 0; t < n; ++t) {
    const float g = sigmoid(scale[t]);
    float* o = out + t * c.hidden;
    const float* sh = shared_out + t * c.hidden;
    for (int64_t i = 0; i < c.hidden; ++i) o[i] += g * sh[i];
  }
}

}  // namespace moerun
