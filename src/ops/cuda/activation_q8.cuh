// Device-side int8 quantisation of one group of 32 activations by a warp, shared by the standalone
// quantisation kernel and the fused GEMV and expert kernels so that all of them round alike.
#pragma once

#include <cstdint>

namespace moerun::cuda {

// Lane `lane` of a full warp holds value v of a group of 32: stores q[lane] = round-half-even(v /
// d) with d = max|v| / 127 (0 when d is 0, clamped to [-127, 127]) and, from lane 0, *ds = (d, d *
// sum of the group's q). q and ds may point to global or shared memory.
__device__ inline void quantize_group32_q8(float v, int lane, int8_t* q, float2* ds) {
  float amax = fabsf(v);
#pragma unroll
  for (int off = 16; off > 0; off /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
  const float d = amax / 127.0f;
  int qi = d > 0.0f ? __float2int_rn(v / d) : 0;
  qi = max(-127, min(127, qi));
  q[lane] = static_cast<int8_t>(qi);
  int sum = qi;
#pragma unroll
  for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if (lane == 0) *ds = make_float2(d, d * static_cast<float>(sum));
}

}  // namespace moerun::cuda
