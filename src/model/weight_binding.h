// Binding model weights by name from a mapped GGUF, with shape and type checks that name the
// tensor.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "ops/cpu/matmul.h"

namespace moerun {

class GgufFile;

// Looks tensors up in one file; every accessor throws Error naming the file and tensor when the
// tensor is missing, has another shape, or a type moerun cannot compute with.
class WeightBinder {
 public:
  explicit WeightBinder(const GgufFile& file) : file_(file) {}

  // The file's path, for messages.
  const std::string& path() const;
  // True when the file has a tensor called `name`.
  bool has(const std::string& name) const;
  // The view of `name` after checking its shape is exactly `ne` (missing trailing dims are 1).
  Tensor view(const std::string& name, std::initializer_list<int64_t> ne) const;
  // A matrix of `rows` rows of `cols` weights (GGUF ne {cols, rows}), in place in the mapping.
  WeightMatrix matrix(const std::string& name, int64_t cols, int64_t rows) const;
  // A small tensor of shape `ne` converted to f32 (norm weights, biases, conv taps).
  std::vector<float> floats(const std::string& name, std::initializer_list<int64_t> ne) const;

 private:
  const GgufFile& file_;
};

}  // namespace moerun
