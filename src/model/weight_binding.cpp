#include "model/weight_binding.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/quant.h"
#include "io/gguf_file.h"

namespace moerun {

const std::string& WeightBinder::path() const {
  return file_.path();
}

bool WeightBinder::has(const std::string& name) const {
  return file_.find_tensor(name) != nullptr;
}

Tensor WeightBinder::view(const std::string& name, std::initializer_list<int64_t> ne) const {
  const GgufTensorInfo* info = file_.find_tensor(name);
  if (info == nullptr) fail("{}: tensor '{}' is missing", file_.path(), name);
  const Tensor& t = info->view;
  std::array<int64_t, 4> want{1, 1, 1, 1};
  size_t d = 0;
  for (int64_t v : ne) want[d++] = v;
  if (t.ne != want) {
    fail("{}: tensor '{}' has shape {}, expected {{{}}}", file_.path(), name, t.shape_string(),
         fmt::join(ne, ", "));
  }
  if (!dtype_info(t.type).supported) {
    fail("{}: tensor '{}' has type {}, which moerun does not support", file_.path(), name,
         dtype_name(t.type));
  }
  return t;
}

WeightMatrix WeightBinder::matrix(const std::string& name, int64_t cols, int64_t rows) const {
  const Tensor t = view(name, {cols, rows});
  return WeightMatrix{t.type, rows, cols, t.row_nbytes(), t.data};
}

std::vector<float> WeightBinder::floats(const std::string& name,
                                        std::initializer_list<int64_t> ne) const {
  const Tensor t = view(name, ne);
  std::vector<float> out(static_cast<size_t>(t.nelements()));
  const auto* src = static_cast<const uint8_t*>(t.data);
  for (int64_t r = 0; r < t.nrows(); ++r) {
    dequantize_row(t.type, src + r * t.row_nbytes(), out.data() + r * t.ne[0], t.ne[0]);
  }
  return out;
}

}  // namespace moerun
