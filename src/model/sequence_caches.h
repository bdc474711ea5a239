// The per-sequence state of a MoE decoder: KV caches of attention layers, conv and recurrent
// states of Gated DeltaNet layers, and the position.
#pragma once

#include <cstdint>
#include <functional>

#include "model/language_model.h"

namespace moerun {

// Sizes of one sequence's caches, the same for every sequence of a model.
struct CacheLayout {
  int64_t n_kv_layers = 0;         // attention layers
  int64_t kv_width = 0;            // floats per token per layer for K (and again for V)
  int64_t n_recurrent_layers = 0;  // DeltaNet layers
  int64_t conv_floats = 0;         // conv state per layer: [kernel - 1, channels]
  int64_t ssm_floats = 0;          // recurrent state per layer: [v_heads, k_dim, v_dim]
};

// Memory of a CacheSequenceState kept elsewhere than in host arrays (e.g. on the GPU).
struct CacheStorage {
  float* kv = nullptr;                        // [n_kv_layers, 2, capacity, kv_width]
  float* recurrent = nullptr;                 // [n_recurrent_layers, conv_floats + ssm_floats]
  std::function<void(float*, int64_t)> zero;  // zeroes n floats at p
  std::function<void()> release;              // frees kv and recurrent
};

// A SequenceState with f32 caches laid out by a CacheLayout; `owner` identifies the model that
// made it, so a model refuses states of another model.
class CacheSequenceState : public SequenceState {
 public:
  // Allocates host caches for `capacity` tokens; KV memory is left untouched until written.
  CacheSequenceState(const CacheLayout& layout, int64_t capacity, const void* owner);
  // Uses `storage` (sized for `capacity` tokens) instead, e.g. device memory.
  CacheSequenceState(const CacheLayout& layout, int64_t capacity, const void* owner,
                     CacheStorage storage);
  ~CacheSequenceState() override;
  CacheSequenceState(const CacheSequenceState&) = delete;
  CacheSequenceState& operator=(const CacheSequenceState&) = delete;

  int64_t position() const override { return position_; }
  int64_t capacity() const override { return capacity_; }
  void reset() override;
  int64_t bytes() const override;

  // The model that created this state.
  const void* owner() const { return owner_; }
  // Keys of attention layer `i` (counting attention layers only): [capacity, kv_width] f32.
  float* keys(int64_t i) { return storage_.kv + (2 * i) * capacity_ * layout_.kv_width; }
  // Values of attention layer `i`: [capacity, kv_width] f32.
  float* values(int64_t i) { return storage_.kv + (2 * i + 1) * capacity_ * layout_.kv_width; }
  // Conv state of DeltaNet layer `i` (counting DeltaNet layers only): [kernel - 1, channels] f32.
  float* conv_state(int64_t i) { return storage_.recurrent + i * per_recurrent_layer(); }
  // Recurrent state of DeltaNet layer `i`: [v_heads, k_dim, v_dim] f32.
  float* ssm_state(int64_t i) { return conv_state(i) + layout_.conv_floats; }
  // Moves the position on by n tokens (after a forward pass wrote them).
  void advance(int64_t n) { position_ += n; }

 private:
  int64_t per_recurrent_layer() const { return layout_.conv_floats + layout_.ssm_floats; }

  CacheLayout layout_;
  int64_t capacity_ = 0;
  int64_t position_ = 0;
  const void* owner_ = nullptr;
  CacheStorage storage_;
};

}  // namespace moerun
