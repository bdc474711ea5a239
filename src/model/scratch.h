// Grow-only scratch buffers for the forward pass: they reach their working size once and stay.
#pragma once

#include <cstddef>
#include <vector>

namespace moerun {

// v.data() after making v hold at least n elements (never shrinks, so steady state never
// allocates).
template <typename T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace moerun
