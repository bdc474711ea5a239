#include "model/sequence_caches.h"

#include <algorithm>

namespace moerun {

CacheSequenceState::CacheSequenceState(const CacheLayout& layout, int64_t capacity,
                                       const void* owner, CacheStorage storage)
    : layout_(layout), capacity_(capacity), owner_(owner), storage_(std::move(storage)) {
  reset();
}

namespace {

// Host arrays for a CacheSequenceState. new float[n] (not new float[n]()): KV pages are only
// touched when tokens are written.
CacheStorage host_storage(const CacheLayout& layout, int64_t capacity) {
  CacheStorage s;
  s.kv = new float[static_cast<size_t>(2 * layout.n_kv_layers * capacity * layout.kv_width)];
  s.recurrent = new float[static_cast<size_t>(layout.n_recurrent_layers *
                                              (layout.conv_floats + layout.ssm_floats))];
  s.zero = [](float* p, int64_t n) { std::fill(p, p + n, 0.0f); };
  s.release = [kv = s.kv, rec = s.recurrent] {
    delete[] kv;
    delete[] rec;
  };
  return s;
}

}  // namespace

CacheSequenceState::CacheSequenceState(const CacheLayout& layout, int64_t capacity,
                                       const void* owner)
    : CacheSequenceState(layout, capacity, owner, host_storage(layout, capacity)) {}

CacheSequenceState::~CacheSequenceState() {
  if (storage_.release) storage_.release();
}

void CacheSequenceState::reset() {
  position_ = 0;
  storage_.zero(storage_.recurrent, layout_.n_recurrent_layers * per_recurrent_layer());
}

int64_t CacheSequenceState::bytes() const {
  const int64_t floats = 2 * layout_.n_kv_layers * capacity_ * layout_.kv_width +
                         layout_.n_recurrent_layers * per_recurrent_layer();
  return floats * static_cast<int64_t>(sizeof(float));
}

}  // namespace moerun
