#include "model/language_model.h"

#include "core/error.h"
#include "io/gguf_file.h"
#include "model/qwen3_moe.h"
#include "model/qwen3_next.h"

namespace moerun {

void Batch::add(std::span<const int32_t> ids, int32_t seq, bool logits_for_last) {
  for (size_t i = 0; i < ids.size(); ++i) {
    tokens.push_back(ids[i]);
    sequence.push_back(seq);
    want_logits.push_back(logits_for_last && i + 1 == ids.size() ? 1 : 0);
  }
}

std::unique_ptr<LanguageModel> load_language_model(const GgufFile& file,
                                                   const ModelOptions& options) {
  const GgufValue* arch_value = file.find("general.architecture");
  if (arch_value == nullptr) {
    fail("{}: no general.architecture key; supported architectures: qwen3next, qwen3moe",
         file.path());
  }
  const std::string& arch = arch_value->as_string("general.architecture");
  if (options.pool == nullptr) fail("loading a model needs a thread pool (ModelOptions::pool)");
  if (arch == "qwen3next") return load_qwen3_next(file, options);
  if (arch == "qwen3moe") return load_qwen3_moe(file, options);
  fail("{}: architecture '{}' is not supported; supported architectures: qwen3next, qwen3moe",
       file.path(), arch);
}

}  // namespace moerun
