#include "engine/generator.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "engine/token_text_stream.h"
#include "model/language_model.h"
#include "tokenizer/tokenizer.h"

namespace moerun {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::stop:
      return "stop";
    case FinishReason::length:
      return "length";
    case FinishReason::cancelled:
      return "cancelled";
    case FinishReason::timeout:
      return "timeout";
    case FinishReason::error:
      return "error";
  }
  return "unknown";
}

GenerationResult generate(LanguageModel& model, SequenceState& state, const Tokenizer* tokenizer,
                          const GenerationRequest& req, const GenerationCallbacks& cb,
                          const std::atomic<bool>* cancel) {
  if (req.prompt.empty()) fail("the prompt is empty: give at least one token");
  if (req.max_tokens < 0) fail("max_tokens must be >= 0 (got {})", req.max_tokens);
  const int64_t vocab = model.info().vocab;
  const int64_t needed = state.position() + static_cast<int64_t>(req.prompt.size());
  if (needed > state.capacity()) {
    fail("the prompt needs {} tokens of context but only {} are available ({} in use, limit {})",
         req.prompt.size(), state.capacity() - state.position(), state.position(),
         state.capacity());
  }

  GenerationResult result;
  result.prompt_tokens = static_cast<int64_t>(req.prompt.size());
  Sampler sampler(req.sampling, vocab);
  sampler.add_prompt(req.prompt);
  // Only the largest logits come back from the model when they are enough for the sampler and
  // nobody asked to see whole rows.
  const int64_t n_top = std::min(kTopCandidates, vocab);
  const bool use_top = !cb.on_logits && sampler.can_sample_top(n_top);
  std::vector<float> logits(static_cast<size_t>(use_top ? n_top : vocab));  // [vocab or n_top]
  std::vector<int32_t> top_ids(static_cast<size_t>(use_top ? n_top : 0));   // [n_top]
  SequenceState* states[] = {&state};
  auto run = [&](const Batch& b) {
    if (use_top) {
      model.forward_top(b, states, n_top, logits.data(), top_ids.data());
    } else {
      model.forward(b, states, logits.data());
    }
  };

  // Prefill in chunks; logits only for the very last prompt token.
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t chunk = std::max<int64_t>(1, req.prefill_chunk);
  Batch batch;
  for (size_t begin = 0; begin < req.prompt.size(); begin += static_cast<size_t>(chunk)) {
    const size_t end = std::min(req.prompt.size(), begin + static_cast<size_t>(chunk));
    batch.clear();
    batch.add(std::span(req.prompt).subspan(begin, end - begin), 0, end == req.prompt.size());
    run(batch);
  }
  result.prefill_seconds = seconds_since(t0);
  if (cb.on_prefill_done) cb.on_prefill_done();

  TokenTextStream output(tokenizer, req.stop, req.stop_tokens);
  std::string released;  // text released by the current token
  auto emit = [&] {
    if (released.empty()) return;
    result.text += released;
    if (cb.on_text) cb.on_text(released);
    released.clear();
  };

  const auto t1 = std::chrono::steady_clock::now();
  result.finish = FinishReason::length;
  for (int64_t i = 0; i < req.max_tokens; ++i) {
    if (cancel && cancel->load(std::memory_order_relaxed)) {
      result.finish = FinishReason::cancelled;
      break;
    }
    if (cb.on_logits) cb.on_logits(logits);
    const int32_t id = (use_top ? sampler.sample_top(logits, top_ids) : sampler.sample(logits)).id;
    const TokenVerdict verdict = output.push(id, released);
    if (verdict == TokenVerdict::stop_token) {
      result.finish = FinishReason::stop;
      break;
    }
    result.tokens.push_back(id);
    if (cb.on_token) cb.on_token(id);
    emit();
    if (verdict == TokenVerdict::stop_string) {
      result.finish = FinishReason::stop;
      break;
    }
    if (i + 1 == req.max_tokens) break;  // no need to run the model for a token never sampled
    if (state.position() >= state.capacity()) break;  // context full: finish with `length`
    batch.clear();
    const int32_t one[] = {id};
    batch.add(one, 0, true);
    run(batch);
    ++result.fed_tokens;
  }
  output.finish(released);  // held-back text, unless a stop string ended the output
  emit();
  result.decode_seconds = seconds_since(t1);
  return result;
}

}  // namespace moerun
