// Quantization of f32 activations to 8 bits: layout sizes, the scalar blocks layout, dispatch.
#include <cmath>

#include "core/cpu_features.h"
#include "core/error.h"
#include "ops/cpu/matmul_internal.h"

namespace moerun::cpu_matmul {
namespace {

int64_t round_up(int64_t v, int64_t m) {
  return (v + m - 1) / m * m;
}

}  // namespace

ActSizes act_sizes(ActLayout layout, int64_t cols) {
  switch (layout) {
    case ActLayout::f32:
      return {};
    case ActLayout::blocks32:
      return {cols, cols / 32, cols / kSumGroup, 2};
    case ActLayout::blocks256:
      return {cols, cols / 256, cols / kSumGroup, 2};
    case ActLayout::q8_0x2: {
      const int64_t p = round_up(cols, 64);
      return {p, p / 4, p / 4, 4};
    }
    case ActLayout::q4_0x4: {
      const int64_t p = round_up(cols, 128);
      return {p, p / 8, p / 8, 4};
    }
    case ActLayout::k_perm:
    case ActLayout::k6_perm:
      return {cols, cols / 256, cols / kSumGroup, 4};
  }
  return {};
}

void quantize_blocks(const float* x, int64_t cols, int64_t block, int64_t t_begin, int64_t t_end,
                     int8_t* q, float* d, int16_t* sums) {
  MOERUN_CHECK(block > 0 && block % kSumGroup == 0 && cols % block == 0);
  const int64_t n_blocks = cols / block;
  for (int64_t i = t_begin * n_blocks; i < t_end * n_blocks; ++i) {
    const float* xb = x + i * block;  // tokens are contiguous rows, so blocks are too
    int8_t* qb = q + i * block;
    float amax = 0.0f;
    for (int64_t j = 0; j < block; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float dv = amax / 127.0f;
    const float id = dv > 0.0f ? 1.0f / dv : 0.0f;
    d[i] = dv;
    for (int64_t g = 0; g < block / kSumGroup; ++g) {
      int sum = 0;
      for (int64_t j = g * kSumGroup; j < (g + 1) * kSumGroup; ++j) {
        // |x * id| <= 127 up to rounding; the clamp keeps -128 out (the sign trick needs it).
        const float v = std::fmin(127.0f, std::fmax(-127.0f, std::nearbyint(xb[j] * id)));
        qb[j] = static_cast<int8_t>(v);
        sum += qb[j];
      }
      sums[i * (block / kSumGroup) + g] = static_cast<int16_t>(sum);
    }
  }
}

QuantizedActivations quantize_activations(const float* x, int64_t n_tokens, int64_t cols,
                                          int64_t block, ActivationBuffer& buf) {
  MOERUN_CHECK(block > 0 && block % kSumGroup == 0 && cols % block == 0);
  const size_t n_q = static_cast<size_t>(n_tokens * cols);
  if (buf.q.size() < n_q) buf.q.resize(n_q);
  if (buf.d.size() < n_q / static_cast<size_t>(block)) buf.d.resize(n_q / block);
  if (buf.sums.size() < n_q / kSumGroup) buf.sums.resize(n_q / kSumGroup);
  quantize_blocks(x, cols, block, 0, n_tokens, buf.q.data(), buf.d.data(), buf.sums.data());
  return QuantizedActivations{block,   buf.q.data(), buf.d.data(), buf.sums.data(), nullptr,
                              nullptr, cols,         cols / block, cols / kSumGroup};
}

QuantizedActivations quantize_into(ActLayout layout, const float* x, int64_t cols, int64_t t_begin,
                                   int64_t t_end, const ActStorage& s) {
  MOERUN_CHECK(layout != ActLayout::f32);
  const ActSizes z = act_sizes(layout, cols);
  QuantizedActivations qa;
  qa.q = s.q;
  qa.d = s.d;
  qa.q_stride = z.q;
  qa.d_stride = z.d;
  qa.aux_stride = z.aux;
  const CpuFeatures& f = cpu_features();
  switch (layout) {
    case ActLayout::blocks32:
    case ActLayout::blocks256: {
      qa.block = layout == ActLayout::blocks32 ? 32 : 256;
      qa.sums = static_cast<int16_t*>(s.aux);
      if (f.avx2 && f.fma) {
        quantize_blocks_avx2(x, cols, qa.block, t_begin, t_end, s.q, s.d,
                             static_cast<int16_t*>(s.aux));
      } else {
        quantize_blocks(x, cols, qa.block, t_begin, t_end, s.q, s.d, static_cast<int16_t*>(s.aux));
      }
      return qa;
    }
    case ActLayout::q8_0x2:
    case ActLayout::q4_0x4:
      qa.block = 32;
      qa.init = static_cast<int32_t*>(s.aux);
      break;
    case ActLayout::k_perm:
    case ActLayout::k6_perm:
      qa.block = 256;
      qa.fsums = static_cast<float*>(s.aux);
      break;
    case ActLayout::f32:
      break;
  }
  quantize_avx512(layout, x, cols, t_begin, t_end, s);
  return qa;
}

}  // namespace moerun::cpu_matmul
