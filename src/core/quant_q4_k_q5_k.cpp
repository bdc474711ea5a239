// Q4_K and Q5_K: super-blocks of eight 32-weight sub-blocks on affine grids with 6-bit scales/mins.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "core/quant_fit.h"
#include "core/quant_formats.h"

namespace moerun {
namespace {

constexpr int kSubBlocks = kBlockK / 32;  // sub-blocks of 32 weights per super-block

// A quantised Q4_K/Q5_K super-block before bit packing.
struct AffineSuperBlock {
  uint16_t d;               // fp16 super-scale of sc
  uint16_t dmin;            // fp16 super-scale of m
  uint8_t sc[kSubBlocks];   // [8] 6-bit sub-block scales
  uint8_t m[kSubBlocks];    // [8] 6-bit sub-block mins
  uint8_t levels[kBlockK];  // [256] quants 0..nmax
};

// Puts each of x [32] on its nearest level of the grid d1 * l - m1 (l in 0..nmax), writing
// levels [32]; returns the squared error as dequantisation computes it.
float levels_for_grid(const float* x, int nmax, float d1, float m1, uint8_t* levels) {
  float err = 0.0f;
  const float inv = d1 > 0.0f ? 1.0f / d1 : 0.0f;
  for (int i = 0; i < 32; ++i) {
    const int l = round_clamped((x[i] + m1) * inv, 0, nmax);
    levels[i] = static_cast<uint8_t>(l);
    const float diff = d1 * static_cast<float>(l) - m1 - x[i];
    err += diff * diff;
  }
  return err;
}

// Quantises x [256] onto levels 0..nmax (15 or 31) with the grid search parameters given.
AffineSuperBlock quantize_affine_superblock(const float* x, int nmax, float rmin, float rdelta,
                                            int nstep) {
  AffineFit fits[kSubBlocks];
  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (int j = 0; j < kSubBlocks; ++j) {
    fits[j] = fit_affine_grid(x + 32 * j, 32, nmax, rmin, rdelta, nstep);
    max_scale = std::fmax(max_scale, fits[j].scale);
    max_min = std::fmax(max_min, fits[j].min_neg);
  }
  AffineSuperBlock out;
  out.d = f32_to_fp16(std::fmin(max_scale / 63.0f, kFp16Max));
  out.dmin = f32_to_fp16(std::fmin(max_min / 63.0f, kFp16Max));
  const float d = fp16_to_f32(out.d);
  const float dmin = fp16_to_f32(out.dmin);
  for (int j = 0; j < kSubBlocks; ++j) {
    const float* xj = x + 32 * j;
    // Round the scale; for the min try its neighbours and mins that shift the grid by a whole
    // level (data that already lies on a grid may leave its bottom level unused).
    const int sc = d > 0.0f ? round_clamped(fits[j].scale / d, 0, 63) : 0;
    const float d1 = d * static_cast<float>(sc);
    out.sc[j] = static_cast<uint8_t>(sc);
    float best_err = INFINITY;
    bool first = true;  // the first candidate is kept even if its error overflows
    for (int shift = -1; shift <= 1; ++shift) {
      const float target = fits[j].min_neg + static_cast<float>(shift) * d1;
      const int m0 = dmin > 0.0f ? round_clamped(target / dmin, 0, 63) : 0;
      for (int m = std::max(m0 - 1, 0); m <= std::min(m0 + 1, 63); ++m) {
        uint8_t levels[32];
        const float err = levels_for_grid(xj, nmax, d1, dmin * static_cast<float>(m), levels);
        if (first || err < best_err) {
          first = false;
          best_err = err;
          out.m[j] = static_cast<uint8_t>(m);
          std::memcpy(out.levels + 32 * j, levels, 32);
        }
      }
    }
  }
  return out;
}

}  // namespace

void dequantize_q4_k(const void* src, float* dst, int64_t n_blocks) {
  const auto* bytes = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n_blocks; ++b) {
    BlockQ4_K block;
    std::memcpy(&block, bytes + b * sizeof(BlockQ4_K), sizeof(BlockQ4_K));
    const float d = fp16_to_f32(block.d);
    const float dmin = fp16_to_f32(block.dmin);
    float* y = dst + b * kBlockK;
    for (int c = 0; c < 4; ++c) {  // chunks of 64 weights: two sub-blocks sharing 32 bytes
      const uint8_t* q = block.qs + 32 * c;
      uint8_t sc, m;
      unpack_scale_min_k4(2 * c, block.scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      unpack_scale_min_k4(2 * c + 1, block.scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) y[64 * c + l] = d1 * (q[l] & 15) - m1;
      for (int l = 0; l < 32; ++l) y[64 * c + 32 + l] = d2 * (q[l] >> 4) - m2;
    }
  }
}

void quantize_q4_k(const float* src, void* dst, int64_t n_blocks) {
  auto* bytes = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n_blocks; ++b) {
    const AffineSuperBlock q = quantize_affine_superblock(src + b * kBlockK, 15, -1.0f, 0.1f, 20);
    BlockQ4_K block;
    block.d = q.d;
    block.dmin = q.dmin;
    pack_scale_min_k4(q.sc, q.m, block.scales);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        block.qs[32 * c + l] =
            static_cast<uint8_t>(q.levels[64 * c + l] | (q.levels[64 * c + 32 + l] << 4));
      }
    }
    std::memcpy(bytes + b * sizeof(BlockQ4_K), &block, sizeof(BlockQ4_K));
  }
}

void dequantize_q5_k(const void* src, float* dst, int64_t n_blocks) {
  const auto* bytes = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n_blocks; ++b) {
    BlockQ5_K block;
    std::memcpy(&block, bytes + b * sizeof(BlockQ5_K), sizeof(BlockQ5_K));
    const float d = fp16_to_f32(block.d);
    const float dmin = fp16_to_f32(block.dmin);
    float* y = dst + b * kBlockK;
    for (int c = 0; c < 4; ++c) {
      const uint8_t* q = block.qs + 32 * c;
      const int bit1 = 1 << (2 * c);
      const int bit2 = 1 << (2 * c + 1);
      uint8_t sc, m;
      unpack_scale_min_k4(2 * c, block.scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      unpack_scale_min_k4(2 * c + 1, block.scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) {
        y[64 * c + l] = d1 * ((q[l] & 15) + ((block.qh[l] & bit1) ? 16 : 0)) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        y[64 * c + 32 + l] = d2 * ((q[l] >> 4) + ((block.qh[l] & bit2) ? 16 : 0)) - m2;
      }
    }
  }
}

void quantize_q5_k(const float* src, void* dst, int64_t n_blocks) {
  auto* bytes = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n_blocks; ++b) {
    const AffineSuperBlock q = quantize_affine_superblock(src + b * kBlockK, 31, -0.5f, 0.1f, 15);
    BlockQ5_K block;
    block.d = q.d;
    block.dmin = q.dmin;
    pack_scale_min_k4(q.sc, q.m, block.scales);
    std::memset(block.qh, 0, sizeof(block.qh));
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const int lo = q.levels[64 * c + l];
        const int hi = q.levels[64 * c + 32 + l];
        block.qs[32 * c + l] = static_cast<uint8_t>((lo & 15) | ((hi & 15) << 4));
        block.qh[l] =
            static_cast<uint8_t>(block.qh[l] | ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
      }
    }
    std::memcpy(bytes + b * sizeof(BlockQ5_K), &block, sizeof(BlockQ5_K));
  }
}

}  // namespace moerun
