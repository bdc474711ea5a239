#include "model/sequence_caches.h"

#include <algorithm>

namespace moerun {

CacheSequenceState::CacheSequenceState(const CacheLayout& layout, int64_t capacity,
                                       const void* owner)
    : layout_(layout), capacity_(capacity), owner_(owner) {
  // new float[n] (not new float[n]()): KV pages are only touched when tokens are written.
  kv_.reset(new float[static_cast<size_t>(2 * layout.n_kv_layers * capacity * layout.kv_width)]);
  const int64_t recurrent = layout.n_recurrent_layers * per_recurrent_layer();
  recurrent_.reset(new float[static_cast<size_t>(recurrent)]);
  reset();
}

void CacheSequenceState::reset() {
  position_ = 0;
  const int64_t recurrent = layout_.n_recurrent_layers * per_recurrent_layer();
  std::fill(recurrent_.get(), recurrent_.get() + recurrent, 0.0f);
}

int64_t CacheSequenceState::bytes() const {
  const int64_t floats = 2 * layout_.n_kv_layers * capacity_ * layout_.kv_width +
                         layout_.n_recurrent_layers * per_recurrent_layer();
  return floats * static_cast<int64_t>(sizeof(float));
}

}  // namespace moerun
