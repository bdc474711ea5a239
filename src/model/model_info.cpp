#include "model/model_info.h"

#include "io/gguf_file.h"

namespace moerun {

std::string model_name(const GgufFile& file) {
  const GgufValue* v = file.find("general.name");
  if (v != nullptr && v->type == GgufType::string) return v->as_string("general.name");
  return file.path();
}

}  // namespace moerun
