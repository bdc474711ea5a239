// Helpers shared by the model-op tests: random vectors and error measures.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace moerun::test {

// n values drawn from N(mean, stddev) with a fixed seed.
inline std::vector<float> random_vector(int64_t n, uint32_t seed, float stddev = 1.0f,
                                        float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(mean, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(rng);
  return v;
}

// Largest |a[i] - b[i]|.
template <typename A, typename B>
double max_abs_diff(const A& a, const B& b) {
  double m = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    m = std::max(m, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  }
  return m;
}

// Largest |x|.
template <typename A>
double max_abs(const A& a) {
  double m = 0.0;
  for (auto x : a) m = std::max(m, std::abs(static_cast<double>(x)));
  return m;
}

}  // namespace moerun::test
