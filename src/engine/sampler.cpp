#include "engine/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace moerun {

Sampler::Sampler(const SamplingParams& params, int64_t vocab)
    : params_(params), vocab_(vocab), rng_(params.seed), work_(static_cast<size_t>(vocab)) {
  check(params);
}

void Sampler::check(const SamplingParams& params) {
  if (!(params.temperature >= 0.0f) || !std::isfinite(params.temperature)) {
    fail("temperature must be a finite number >= 0 (got {})", params.temperature);
  }
  if (params.top_k < 0) fail("top_k must be >= 0 (got {})", params.top_k);
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f)) {
    fail("top_p must be in (0, 1] (got {})", params.top_p);
  }
  if (!(params.min_p >= 0.0f && params.min_p <= 1.0f)) {
    fail("min_p must be in [0, 1] (got {})", params.min_p);
  }
  if (!(params.repetition_penalty > 0.0f) || !std::isfinite(params.repetition_penalty)) {
    fail("repetition_penalty must be > 0 (got {})", params.repetition_penalty);
  }
  if (!std::isfinite(params.presence_penalty) || !std::isfinite(params.frequency_penalty)) {
    fail("presence and frequency penalties must be finite");
  }
}

void Sampler::reset(const SamplingParams& params) {
  check(params);
  params_ = params;
  rng_.seed(params.seed);
  generated_counts_.clear();
  seen_.clear();
}

void Sampler::add_prompt(std::span<const int32_t> ids) {
  for (int32_t id : ids) seen_[id] = 1;
}

double Sampler::uniform() {
  // 53 random bits: the same value on every platform (unlike std::uniform_real_distribution).
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

void Sampler::apply_penalties(std::vector<float>& logits) const {
  if (params_.repetition_penalty != 1.0f) {
    for (const auto& [id, _] : seen_) {
      if (id < 0 || id >= vocab_) continue;
      float& l = logits[static_cast<size_t>(id)];
      l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  }
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) {
    for (const auto& [id, count] : generated_counts_) {
      if (id < 0 || id >= vocab_) continue;
      logits[static_cast<size_t>(id)] -=
          params_.presence_penalty + params_.frequency_penalty * static_cast<float>(count);
    }
  }
}

SampledToken Sampler::sample(std::span<const float> logits) {
  MOERUN_CHECK(static_cast<int64_t>(logits.size()) == vocab_);
  std::copy(logits.begin(), logits.end(), work_.begin());
  apply_penalties(work_);
  return record(sample_work());
}

bool Sampler::can_sample_top(int64_t n) const {
  if (n >= vocab_) return true;
  const bool penalties = params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f ||
                         params_.repetition_penalty != 1.0f;
  if (penalties) return false;
  if (params_.temperature <= 0.0f) return n >= 1;
  return params_.top_k >= 1 && params_.top_k <= n;
}

SampledToken Sampler::sample_top(std::span<const float> logits, std::span<const int32_t> ids) {
  MOERUN_CHECK(logits.size() == ids.size() && !logits.empty());
  const auto n = static_cast<int64_t>(logits.size());
  MOERUN_CHECK(can_sample_top(n));
  if (n >= vocab_) {
    // The whole row, in another order: put it back in place and sample as usual.
    for (size_t i = 0; i < logits.size(); ++i) work_[static_cast<size_t>(ids[i])] = logits[i];
    apply_penalties(work_);
    return record(sample_work());
  }
  SampledToken out;
  if (params_.temperature <= 0.0f) {
    out.id = ids[0];
    return record(out);
  }
  // The top_k largest are the first top_k candidates, in sample_work()'s order.
  const float inv_t = 1.0f / params_.temperature;
  const float best = logits[0];
  candidates_.clear();
  for (size_t i = 0; i < static_cast<size_t>(params_.top_k); ++i) {
    candidates_.emplace_back((logits[i] - best) * inv_t, ids[i]);
  }
  return record(draw_from_candidates());
}

SampledToken Sampler::sample_work() {
  SampledToken out;
  if (params_.temperature <= 0.0f) {
    out.id = static_cast<int32_t>(std::max_element(work_.begin(), work_.end()) - work_.begin());
    return out;
  }
  // Candidates: the top_k largest logits, or (top_k off) those within 30 nats of the largest,
  // which leaves out only tokens of probability below e^-30 relative to the best. They are ranked
  // by logit (equal logits: lower id first), as top_k_rows ranks them, so that sample_top() on
  // the row's largest logits makes the same choice.
  const float inv_t = 1.0f / params_.temperature;
  const float best = *std::max_element(work_.begin(), work_.end());
  candidates_.clear();
  for (int64_t i = 0; i < vocab_; ++i) {
    const float z = (work_[static_cast<size_t>(i)] - best) * inv_t;
    if (params_.top_k > 0 || z > -30.0f) candidates_.emplace_back(z, static_cast<int32_t>(i));
  }
  auto by_logit = [this](const auto& a, const auto& b) {
    const float la = work_[static_cast<size_t>(a.second)];
    const float lb = work_[static_cast<size_t>(b.second)];
    return la > lb || (la == lb && a.second < b.second);
  };
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < candidates_.size()) {
    std::nth_element(candidates_.begin(), candidates_.begin() + params_.top_k, candidates_.end(),
                     by_logit);
    candidates_.resize(static_cast<size_t>(params_.top_k));
  }
  std::sort(candidates_.begin(), candidates_.end(), by_logit);
  return draw_from_candidates();
}

SampledToken Sampler::draw_from_candidates() {
  // Softmax over the candidates (largest first), then top-p and min-p cuts.
  SampledToken out;
  double total = 0.0;
  for (const auto& c : candidates_) total += std::exp(static_cast<double>(c.first));
  const double p_best = std::exp(static_cast<double>(candidates_.front().first)) / total;
  size_t keep = 0;
  double cumulative = 0.0;
  for (const auto& c : candidates_) {
    const double p = std::exp(static_cast<double>(c.first)) / total;
    if (keep > 0 && (cumulative >= params_.top_p || p < params_.min_p * p_best)) break;
    cumulative += p;
    ++keep;
  }
  candidates_.resize(keep);
  double kept = 0.0;
  for (const auto& c : candidates_) kept += std::exp(static_cast<double>(c.first));
  double r = uniform() * kept;
  out.id = candidates_.back().second;
  double chosen = std::exp(static_cast<double>(candidates_.back().first));
  for (const auto& c : candidates_) {
    const double w = std::exp(static_cast<double>(c.first));
    if (r < w) {
      out.id = c.second;
      chosen = w;
      break;
    }
    r -= w;
  }
  out.logprob = static_cast<float>(std::log(chosen / kept));
  return out;
}

SampledToken Sampler::record(SampledToken token) {
  ++generated_counts_[token.id];
  seen_[token.id] = 1;
  return token;
}

}  // namespace moerun
