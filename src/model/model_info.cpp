#include "model/model_info.h"

#include <fmt/format.h>

#include "io/gguf_file.h"
#include "model/language_model.h"

namespace moerun {

std::string model_name(const GgufFile& file) {
  const GgufValue* v = file.find("general.name");
  if (v != nullptr && v->type == GgufType::string) return v->as_string("general.name");
  return file.path();
}

ProfileModel profile_model_of(const GgufFile& file, const ModelInfo& info) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  };
  for (const GgufTensorInfo& t : file.tensors()) {
    mix(t.name.data(), t.name.size() + 1);  // with the terminating zero
    for (int64_t ne : t.view.ne) mix(&ne, sizeof(ne));
  }
  return ProfileModel{info.architecture, info.n_layers, info.n_experts, info.n_experts_used,
                      fmt::format("{:016x}", h)};
}

}  // namespace moerun
