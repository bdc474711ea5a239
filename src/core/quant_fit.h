// Scale searches shared by the quantisers: fit a small integer grid to a group of weights.
#pragma once

#include <cstdint>
#include <cstring>

namespace moerun {

// Largest finite fp16 value; stored scales are clamped to it so blocks never hold infinity.
inline constexpr float kFp16Max = 65504.0f;

// Rounds x to the nearest integer (ties to even) after clamping it to [lo, hi].
inline int round_clamped(float x, int lo, int hi) {
  if (!(x > static_cast<float>(lo))) return lo;  // also maps NaN to lo
  if (x >= static_cast<float>(hi)) return hi;
  // Adding 1.5 * 2^23 leaves the rounded integer (ties to even) in the low mantissa bits.
  const float shifted = x + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, 4);
  return (bits & 0x007fffff) - 0x00400000;
}

// Returns the scale s minimising sum (x[i] - s * l[i])^2 over l[i] in [-nmax, nmax - 1], searching
// a few grid stretches around the one that maps the largest |x| to -nmax; 0 for an all-zero x[n].
float fit_signed_scale(const float* x, int n, int nmax);

// A fitted affine grid: x[i] ~ scale * l[i] - min_neg with l[i] in [0, nmax], scale, min_neg >= 0.
struct AffineFit {
  float scale;    // step of the grid (>= 0)
  float min_neg;  // minus the grid's offset (>= 0, so the grid starts at -min_neg)
};

// Fits an affine grid with levels 0..nmax to x[n] minimising squared error; tries nstep + 1 grid
// stretches (nmax + rmin + rdelta * k) / (max - min) and refits scale and offset by least squares.
AffineFit fit_affine_grid(const float* x, int n, int nmax, float rmin, float rdelta, int nstep);

}  // namespace moerun
