#include "engine/engine.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/error.h"
#include "engine/token_text_stream.h"
#include "tokenizer/tokenizer.h"

namespace moerun {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void add_double(std::atomic<double>& a, double v) {
  double old = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(old, old + v, std::memory_order_relaxed)) {
  }
}

}  // namespace

bool RequestHandle::wait_events(std::vector<EngineEvent>& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return false;
  for (EngineEvent& e : events_) {
    if (e.kind == EngineEvent::done) finished_ = true;
    out.push_back(std::move(e));
  }
  events_.clear();
  return true;
}

void RequestHandle::push(EngineEvent&& event) {
  {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  cv_.notify_all();
}

// One sequence being served: its request, sampler, output rules and progress.
struct Engine::Slot {
  int32_t index = 0;
  bool active = false;
  std::shared_ptr<RequestHandle> handle;
  EngineRequest req;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<TokenTextStream> text;
  int64_t prompt_fed = 0;  // prompt tokens the state has consumed
  int64_t chunk = 0;       // prompt tokens in the current batch
  int32_t pending = -1;    // sampled token to feed in the next step, or -1
  int64_t generated = 0;   // tokens sampled (without a final end-of-turn id)
  Clock::time_point submitted, admitted, first_token, last_token;
  Clock::time_point deadline = Clock::time_point::max();
};

Engine::Engine(LanguageModel& model, const Tokenizer* tokenizer, const EngineOptions& options)
    : model_(model), tokenizer_(tokenizer), options_(options), vocab_(model.info().vocab) {
  if (options.max_sequences < 1 || options.max_sequences > 1024) {
    fail("max sequences must be in [1, 1024] (got {})", options.max_sequences);
  }
  if (options.context < 2 || options.context > model.info().context_length) {
    fail("the context of {} tokens is outside [2, {}], the model's context length", options.context,
         model.info().context_length);
  }
  if (options.max_queue < 0) fail("the queue limit must be >= 0 (got {})", options.max_queue);
  if (options.prefill_chunk < 1) fail("the prefill chunk must be >= 1");
  for (int64_t i = 0; i < options.max_sequences; ++i) {
    states_.push_back(model.new_sequence(options.context));
    state_ptrs_.push_back(states_.back().get());
    state_bytes_ += states_.back()->bytes();
    slots_.push_back(std::make_unique<Slot>());
    slots_.back()->index = static_cast<int32_t>(i);
    slots_.back()->sampler = std::make_unique<Sampler>(SamplingParams{}, vocab_);
  }
  logits_.resize(static_cast<size_t>(options.max_sequences * vocab_));
  n_top_ = std::min(kTopCandidates, vocab_);
  top_logits_.resize(static_cast<size_t>(options.max_sequences * n_top_));
  top_ids_.resize(static_cast<size_t>(options.max_sequences * n_top_));
  admission_order_.reserve(static_cast<size_t>(options.max_sequences));
  logit_slot_.reserve(static_cast<size_t>(options.max_sequences));
  rate_since_ = Clock::now();
  thread_ = std::thread([this] { run(); });
}

Engine::~Engine() {
  shutdown(std::chrono::milliseconds(0));
}

Submission Engine::submit(EngineRequest request) {
  Submission out;
  auto invalid = [&](std::string message) {
    out.status = SubmitStatus::invalid;
    out.error = std::move(message);
    return out;
  };
  if (request.prompt.empty()) return invalid("the prompt is empty: give at least one token");
  if (static_cast<int64_t>(request.prompt.size()) > options_.context) {
    return invalid(fmt::format("the prompt has {} tokens but the context holds {}",
                               request.prompt.size(), options_.context));
  }
  for (int32_t id : request.prompt) {
    if (id < 0 || id >= vocab_) {
      return invalid(fmt::format("token id {} is outside the vocabulary [0, {})", id, vocab_));
    }
  }
  if (request.max_tokens < 1) {
    return invalid(fmt::format("max_tokens must be >= 1 (got {})", request.max_tokens));
  }
  if (request.top_logprobs < 0 || request.top_logprobs > kMaxTopLogprobs) {
    return invalid(fmt::format("top_logprobs must be in [0, {}] (got {})", kMaxTopLogprobs,
                               request.top_logprobs));
  }
  if (!(request.timeout_seconds >= 0) || !std::isfinite(request.timeout_seconds)) {
    return invalid("the timeout must be a finite number of seconds >= 0");
  }
  try {
    Sampler check(request.sampling, 1);  // validates the parameters
  } catch (const Error& e) {
    return invalid(e.what());
  }
  std::lock_guard lock(mutex_);
  if (stopping_) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    out.status = SubmitStatus::shutting_down;
    return out;
  }
  if (static_cast<int64_t>(queue_.size()) >= options_.max_queue) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    out.status = SubmitStatus::queue_full;
    return out;
  }
  out.handle = std::make_shared<RequestHandle>(next_id_++);
  queue_.emplace_back(out.handle, std::move(request));
  queued_at_.push_back(Clock::now());
  submitted_.fetch_add(1, std::memory_order_relaxed);
  cv_.notify_all();
  return out;
}

void Engine::shutdown(std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  const auto until = Clock::now() + grace;
  while (Clock::now() < until) {
    {
      std::lock_guard lock(mutex_);
      if (queue_.empty() && active_.load() == 0) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  {
    std::lock_guard lock(mutex_);
    cancel_all_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

EngineCounters Engine::counters() const {
  EngineCounters c;
  c.requests_submitted = submitted_.load(std::memory_order_relaxed);
  c.requests_rejected = rejected_.load(std::memory_order_relaxed);
  c.requests_finished = finished_.load(std::memory_order_relaxed);
  c.requests_cancelled = cancelled_.load(std::memory_order_relaxed);
  c.requests_timed_out = timed_out_.load(std::memory_order_relaxed);
  c.requests_failed = failed_.load(std::memory_order_relaxed);
  c.prompt_tokens = prompt_tokens_.load(std::memory_order_relaxed);
  c.generated_tokens = generated_tokens_.load(std::memory_order_relaxed);
  c.steps = steps_.load(std::memory_order_relaxed);
  c.active_sequences = active_.load(std::memory_order_relaxed);
  c.max_sequences = options_.max_sequences;
  c.max_queue = options_.max_queue;
  c.tokens_per_second = tokens_per_second_.load(std::memory_order_relaxed);
  c.busy_seconds = busy_seconds_.load(std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  c.queue_depth = static_cast<int64_t>(queue_.size());
  return c;
}

void Engine::run() {
  while (admit()) {
    const auto now = Clock::now();
    for (auto& slot : slots_) {
      if (!slot->active) continue;
      if (slot->handle->cancel_requested()) {
        finish(*slot, FinishReason::cancelled);
      } else if (now >= slot->deadline) {
        finish(*slot, FinishReason::timeout);
      }
    }
    build_batch();
    if (batch_.size() == 0) continue;
    const auto t0 = Clock::now();
    try {
      top_step_ = batch_can_use_top();
      if (top_step_) {
        model_.forward_top(batch_, state_ptrs_, n_top_, top_logits_.data(), top_ids_.data());
      } else {
        model_.forward(batch_, state_ptrs_, logits_.data());
      }
    } catch (const std::exception& e) {
      fail_batch(e.what());
      continue;
    }
    add_double(busy_seconds_, seconds_between(t0, Clock::now()));
    steps_.fetch_add(1, std::memory_order_relaxed);
    after_forward();
  }
}

bool Engine::admit() {
  std::unique_lock lock(mutex_);
  for (;;) {
    // The recent generation rate, refreshed about every two seconds (also while idle).
    const auto now = Clock::now();
    if (seconds_between(rate_since_, now) >= 2.0) {
      const uint64_t total = generated_tokens_.load(std::memory_order_relaxed);
      tokens_per_second_.store(
          static_cast<double>(total - rate_tokens_) / seconds_between(rate_since_, now),
          std::memory_order_relaxed);
      rate_tokens_ = total;
      rate_since_ = now;
    }
    if (cancel_all_) {
      while (!queue_.empty()) {
        EngineEvent done;
        done.kind = EngineEvent::done;
        done.finish = FinishReason::cancelled;
        done.usage.prompt_tokens = static_cast<int64_t>(queue_.front().second.prompt.size());
        // Counters first: a client that sees the event also sees it counted.
        finished_.fetch_add(1, std::memory_order_relaxed);
        cancelled_.fetch_add(1, std::memory_order_relaxed);
        queue_.front().first->push(std::move(done));
        queue_.pop_front();
        queued_at_.pop_front();
      }
      lock.unlock();
      for (auto& slot : slots_) {
        if (slot->active) finish(*slot, FinishReason::cancelled);
      }
      return false;
    }
    // Requests cancelled or out of time while waiting end here, without a sequence.
    for (size_t i = 0; i < queue_.size();) {
      auto& [handle, req] = queue_[i];
      const bool late =
          req.timeout_seconds > 0 && seconds_between(queued_at_[i], now) >= req.timeout_seconds;
      if (!handle->cancel_requested() && !late) {
        ++i;
        continue;
      }
      EngineEvent done;
      done.kind = EngineEvent::done;
      done.finish = late ? FinishReason::timeout : FinishReason::cancelled;
      done.usage.prompt_tokens = static_cast<int64_t>(req.prompt.size());
      done.usage.queue_seconds = seconds_between(queued_at_[i], now);
      (late ? timed_out_ : cancelled_).fetch_add(1, std::memory_order_relaxed);
      finished_.fetch_add(1, std::memory_order_relaxed);
      handle->push(std::move(done));
      queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(i));
      queued_at_.erase(queued_at_.begin() + static_cast<std::ptrdiff_t>(i));
    }
    // Admit into free slots, oldest request first.
    for (auto& slot_ptr : slots_) {
      if (queue_.empty()) break;
      Slot& slot = *slot_ptr;
      if (slot.active) continue;
      slot.handle = std::move(queue_.front().first);
      slot.req = std::move(queue_.front().second);
      slot.submitted = queued_at_.front();
      queue_.pop_front();
      queued_at_.pop_front();
      slot.admitted = now;
      slot.deadline =
          slot.req.timeout_seconds > 0
              ? slot.submitted + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(slot.req.timeout_seconds))
              : Clock::time_point::max();
      slot.sampler->reset(slot.req.sampling);  // checked by submit(); keeps its buffers
      slot.sampler->add_prompt(slot.req.prompt);
      slot.text =
          std::make_unique<TokenTextStream>(tokenizer_, slot.req.stop, slot.req.stop_tokens);
      slot.prompt_fed = 0;
      slot.chunk = 0;
      slot.pending = -1;
      slot.generated = 0;
      states_[static_cast<size_t>(slot.index)]->reset();
      slot.active = true;
      admission_order_.push_back(slot.index);
      active_.fetch_add(1, std::memory_order_relaxed);
    }
    if (active_.load(std::memory_order_relaxed) > 0) return true;
    if (stopping_ && queue_.empty()) return false;
    cv_.wait_for(lock, std::chrono::milliseconds(50));
  }
}

void Engine::build_batch() {
  batch_.clear();
  logit_slot_.clear();
  // One decode token for each running sequence, in slot order.
  for (auto& slot : slots_) {
    if (!slot->active || slot->pending < 0) continue;
    const int32_t one[] = {slot->pending};
    batch_.add(one, slot->index, true);
    logit_slot_.push_back(slot->index);
  }
  // Prompt chunks of admitted sequences, oldest first, within the step's budget. A sequence's
  // chunk boundaries are always multiples of prefill_chunk, whatever else is in the batch, so its
  // results do not depend on the other sequences.
  int64_t budget = std::max(options_.step_prefill_tokens, options_.prefill_chunk);
  for (int64_t index : admission_order_) {
    Slot& slot = *slots_[static_cast<size_t>(index)];
    const int64_t left = static_cast<int64_t>(slot.req.prompt.size()) - slot.prompt_fed;
    const int64_t n = std::min(options_.prefill_chunk, left);
    if (n > budget) break;
    const bool last = n == left;
    batch_.add(std::span(slot.req.prompt)
                   .subspan(static_cast<size_t>(slot.prompt_fed), static_cast<size_t>(n)),
               slot.index, last);
    if (last) logit_slot_.push_back(slot.index);
    slot.chunk = n;
    budget -= n;
  }
}

// Whether every sequence sampling in this step can sample from the n_top_ largest logits (no
// log-probabilities: they are over the whole vocabulary).
bool Engine::batch_can_use_top() const {
  for (int32_t index : logit_slot_) {
    const Slot& slot = *slots_[static_cast<size_t>(index)];
    if (slot.req.logprobs || !slot.sampler->can_sample_top(n_top_)) return false;
  }
  return true;
}

void Engine::after_forward() {
  const auto now = Clock::now();
  // Prompt progress; sequences whose prompt is complete leave the admission list.
  for (int64_t index : admission_order_) {
    Slot& slot = *slots_[static_cast<size_t>(index)];
    slot.prompt_fed += slot.chunk;
    prompt_tokens_.fetch_add(static_cast<uint64_t>(slot.chunk), std::memory_order_relaxed);
    slot.chunk = 0;
  }
  std::erase_if(admission_order_, [&](int64_t index) {
    const Slot& slot = *slots_[static_cast<size_t>(index)];
    return slot.prompt_fed == static_cast<int64_t>(slot.req.prompt.size());
  });

  for (size_t row = 0; row < logit_slot_.size(); ++row) {
    Slot& slot = *slots_[static_cast<size_t>(logit_slot_[row])];
    const std::span<const float> logits(logits_.data() + static_cast<int64_t>(row) * vocab_,
                                        static_cast<size_t>(vocab_));
    if (slot.generated == 0 && slot.pending < 0) slot.first_token = now;
    slot.pending = -1;
    const auto top = static_cast<size_t>(static_cast<int64_t>(row) * n_top_);
    const SampledToken sampled =
        top_step_ ? slot.sampler->sample_top(std::span(top_logits_).subspan(top, n_top_),
                                             std::span(top_ids_).subspan(top, n_top_))
                  : slot.sampler->sample(logits);
    EngineEvent event;
    const TokenVerdict verdict = slot.text->push(sampled.id, event.text);
    if (verdict == TokenVerdict::stop_token) {
      finish(slot, FinishReason::stop);
      continue;
    }
    ++slot.generated;
    slot.last_token = now;
    generated_tokens_.fetch_add(1, std::memory_order_relaxed);
    event.sampled.id = sampled.id;
    if (slot.req.logprobs) {
      // log-softmax of the raw logits: max, then the log of the sum of exponentials.
      const float best = *std::max_element(logits.begin(), logits.end());
      double sum = 0;
      for (float l : logits) sum += std::exp(static_cast<double>(l - best));
      const float log_z = best + static_cast<float>(std::log(sum));
      event.sampled.logprob = logits[static_cast<size_t>(sampled.id)] - log_z;
      const auto k = static_cast<size_t>(slot.req.top_logprobs);
      if (k > 0) {
        // The k largest, kept sorted (largest first, lowest id on ties) in a small array.
        top_scratch_.clear();
        for (int64_t j = 0; j < vocab_; ++j) {
          const float l = logits[static_cast<size_t>(j)];
          if (top_scratch_.size() == k && l <= top_scratch_.back().first) continue;
          auto at = std::upper_bound(top_scratch_.begin(), top_scratch_.end(), l,
                                     [](float v, const auto& e) { return v > e.first; });
          top_scratch_.insert(at, {l, static_cast<int32_t>(j)});
          if (top_scratch_.size() > k) top_scratch_.pop_back();
        }
        for (const auto& [l, id] : top_scratch_) event.top.push_back({id, l - log_z});
      }
    }
    slot.handle->push(std::move(event));
    const SequenceState& state = *states_[static_cast<size_t>(slot.index)];
    if (verdict == TokenVerdict::stop_string) {
      finish(slot, FinishReason::stop);
    } else if (slot.generated >= slot.req.max_tokens || state.position() >= state.capacity()) {
      finish(slot, FinishReason::length);
    } else {
      slot.pending = sampled.id;
    }
  }
}

void Engine::finish(Slot& slot, FinishReason reason, const std::string& error) {
  EngineEvent done;
  done.kind = EngineEvent::done;
  done.finish = reason;
  done.error = error;
  if (reason != FinishReason::error && reason != FinishReason::cancelled) {
    slot.text->finish(done.text);
  }
  const auto now = Clock::now();
  done.usage.prompt_tokens = static_cast<int64_t>(slot.req.prompt.size());
  done.usage.completion_tokens = slot.generated;
  done.usage.queue_seconds = seconds_between(slot.submitted, slot.admitted);
  if (slot.generated > 0 || reason == FinishReason::stop) {
    done.usage.prefill_seconds = seconds_between(slot.admitted, slot.first_token);
    if (slot.generated > 0) {
      done.usage.decode_seconds = seconds_between(slot.first_token, slot.last_token);
    }
  } else {
    done.usage.prefill_seconds = seconds_between(slot.admitted, now);
  }
  // Counters first: a client that sees the event also sees it counted.
  finished_.fetch_add(1, std::memory_order_relaxed);
  if (reason == FinishReason::cancelled) cancelled_.fetch_add(1, std::memory_order_relaxed);
  if (reason == FinishReason::timeout) timed_out_.fetch_add(1, std::memory_order_relaxed);
  if (reason == FinishReason::error) failed_.fetch_add(1, std::memory_order_relaxed);
  active_.fetch_sub(1, std::memory_order_relaxed);
  slot.handle->push(std::move(done));
  // Free the sequence at once: the slot takes the next request in the following step.
  slot.active = false;
  slot.handle.reset();
  slot.text.reset();
  slot.pending = -1;
  slot.chunk = 0;
  std::erase(admission_order_, static_cast<int64_t>(slot.index));
}

void Engine::fail_batch(const std::string& error) {
  for (auto& slot : slots_) {
    if (!slot->active) continue;
    const bool in_batch = std::find(batch_.sequence.begin(), batch_.sequence.end(), slot->index) !=
                          batch_.sequence.end();
    if (in_batch) finish(*slot, FinishReason::error, "the forward pass failed: " + error);
  }
}

}  // namespace moerun
