#include "model/moe_decoder.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/quant.h"
#include "core/stage_clock.h"
#include "core/thread_pool.h"
#include "model/batch_plan.h"
#include "model/scratch.h"
#include "model/sequence_caches.h"
#include "moe/routing_override.h"
#include "ops/cpu/norms.h"

namespace moerun {
namespace {

void add_into(float* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

class MoeDecoder : public LanguageModel {
 public:
  MoeDecoder(DecoderWeights weights, const ModelOptions& options)
      : w_(std::move(weights)), pool_(*options.pool), experts_(options.experts) {
    hooks_.replace = options.routing_override;
    hooks_.observe = options.routing_observer;
    if (experts_ == nullptr) {
      own_experts_ = std::make_unique<CpuMoeDispatcher>(w_.experts, pool_);
      experts_ = own_experts_.get();
    }
    layout_.n_kv_layers = static_cast<int64_t>(w_.attention.size());
    layout_.kv_width = w_.attention_config.kv_width();
    layout_.n_recurrent_layers = static_cast<int64_t>(w_.deltanet.size());
    if (layout_.n_recurrent_layers > 0) {
      layout_.conv_floats = w_.deltanet_config.conv_floats();
      layout_.ssm_floats = w_.deltanet_config.ssm_floats();
    }
  }

  const ModelInfo& info() const override { return w_.info; }

  std::unique_ptr<SequenceState> new_sequence(int64_t max_tokens) const override {
    if (max_tokens < 1 || max_tokens > w_.info.context_length) {
      fail("a sequence of {} tokens is outside [1, {}], the model's context length", max_tokens,
           w_.info.context_length);
    }
    return std::make_unique<CacheSequenceState>(layout_, max_tokens, this);
  }

  void forward(const Batch& batch, std::span<SequenceState* const> states, float* logits) override {
    plan_.build(batch, states, this, w_.info.vocab);
    const int64_t n = batch.size();
    if (n == 0) return;
    const int64_t hidden = w_.hidden;
    const auto un = static_cast<size_t>(n);
    float* h = grow(h_, un * hidden);
    float* xn = grow(xn_, un * hidden);
    float* mix = grow(mix_, un * hidden);

    {
      StageClock::Scope timed(&clock_, StageClock::embed);
      const Tensor& emb = w_.embedding;
      const auto* emb_base = static_cast<const uint8_t*>(emb.data);
      for (int64_t t = 0; t < n; ++t) {
        dequantize_row(emb.type, emb_base + batch.tokens[t] * emb.row_nbytes(), h + t * hidden,
                       hidden);
      }
    }

    for (size_t l = 0; l < w_.layers.size(); ++l) {
      const DecoderLayer& layer = w_.layers[l];
      if (layer.attention >= 0) {
        StageClock::Scope timed(&clock_, StageClock::attention);
        rms_norm(h, layer.mixer_norm.data(), n, hidden, w_.rms_eps, xn);
        attention_layer(w_.attention_config, w_.attention[layer.attention], layer.attention, xn,
                        plan_, pool_, attention_scratch_, mix);
      } else {
        StageClock::Scope timed(&clock_, StageClock::deltanet);
        rms_norm(h, layer.mixer_norm.data(), n, hidden, w_.rms_eps, xn);
        deltanet_layer(w_.deltanet_config, w_.deltanet[layer.deltanet], layer.deltanet, xn, plan_,
                       pool_, deltanet_scratch_, mix);
      }
      add_into(h, mix, n * hidden);
      {
        // The router and shared expert: the whole block less the dispatcher's own time.
        const double experts_before = clock_.seconds(StageClock::experts);
        const auto start = std::chrono::steady_clock::now();
        rms_norm(h, layer.ffn_norm.data(), n, hidden, w_.rms_eps, xn);
        moe_block(w_.moe_config, layer.moe, static_cast<int64_t>(l), xn, n, *experts_, pool_,
                  moe_scratch_, mix, &clock_, hooks_.replace || hooks_.observe ? &hooks_ : nullptr);
        add_into(h, mix, n * hidden);
        if (clock_.enabled()) {
          const double total =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          clock_.add(StageClock::router_shared,
                     total - (clock_.seconds(StageClock::experts) - experts_before));
        }
      }
    }

    // Final norm and lm_head on the rows that want logits.
    const int64_t n_out = static_cast<int64_t>(plan_.logit_rows.size());
    if (n_out > 0) {
      StageClock::Scope timed(&clock_, StageClock::output);
      float* rows = grow(logit_in_, static_cast<size_t>(n_out * hidden));
      for (int64_t i = 0; i < n_out; ++i) {
        rms_norm(h + plan_.logit_rows[i] * hidden, w_.output_norm.data(), 1, hidden, w_.rms_eps,
                 rows + i * hidden);
      }
      matmul(w_.output, rows, n_out, logits, &pool_);
    }
    for (const BatchRun& run : plan_.runs) run.state->advance(run.count);
  }

  StageClock* stage_clock() override { return &clock_; }
  ExpertStats* expert_stats() override { return experts_->stats(); }

 private:
  DecoderWeights w_;
  ThreadPool& pool_;
  MoeDispatcher* experts_;
  RoutingHooks hooks_;  // from ModelOptions; both null on the model's own path
  std::unique_ptr<CpuMoeDispatcher> own_experts_;
  CacheLayout layout_;
  // Per-call working memory, grown on demand and kept.
  BatchPlan plan_;
  std::vector<float> h_;         // [n, hidden] residual stream
  std::vector<float> xn_;        // [n, hidden] normalised input of a block
  std::vector<float> mix_;       // [n, hidden] output of a block
  std::vector<float> logit_in_;  // [n_out, hidden] final-normalised rows
  AttentionScratch attention_scratch_;
  DeltaNetScratch deltanet_scratch_;
  MoeScratch moe_scratch_;
  StageClock clock_;
};

}  // namespace

std::unique_ptr<LanguageModel> make_moe_decoder(DecoderWeights weights,
                                                const ModelOptions& options) {
  if (options.pool == nullptr) fail("loading a model needs a thread pool (ModelOptions::pool)");
  return std::make_unique<MoeDecoder>(std::move(weights), options);
}

}  // namespace moerun
