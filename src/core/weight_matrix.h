// A weight matrix described by type, shape, row stride and data pointer (host or device memory).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace moerun {

// A weight matrix in memory: `rows` rows of `cols` weights of `type`, rows `row_stride` bytes
// apart; `data` may point to host or device memory (the function it is passed to says which).
struct WeightMatrix {
  DType type = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;        // a multiple of the type's block size
  int64_t row_stride = 0;  // bytes between rows (row_bytes(type, cols) when packed)
  const void* data = nullptr;
};

}  // namespace moerun
