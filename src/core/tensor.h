// Tensor: a non-owning view of typed, shaped data on some device (ne[0] is contiguous, as in GGUF).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace moerun {

// Where a tensor's bytes live.
enum class Device : uint8_t { cpu, cuda };

// A view: type, shape and data pointer; owning storage (mmap, pinned, GPU pools) is kept elsewhere.
struct Tensor {
  DType type = DType::F32;
  int n_dims = 0;
  std::array<int64_t, 4> ne{1, 1, 1, 1};  // ne[0] contiguous; unused dims are 1
  void* data = nullptr;
  Device device = Device::cpu;

  // Number of elements.
  int64_t nelements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  // Number of rows of ne[0] elements.
  int64_t nrows() const { return ne[1] * ne[2] * ne[3]; }
  // Bytes of one row of ne[0] elements.
  int64_t row_nbytes() const { return moerun::row_bytes(type, ne[0]); }
  // Bytes of the whole tensor.
  int64_t nbytes() const { return row_nbytes() * nrows(); }
  // Shape as text, e.g. "{2048, 512, 512}".
  std::string shape_string() const;
};

}  // namespace moerun
