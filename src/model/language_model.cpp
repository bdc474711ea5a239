#include "model/language_model.h"

#include <algorithm>

#include "core/error.h"
#include "io/gguf_file.h"
#include "model/qwen3_moe.h"
#include "model/qwen3_next.h"
#include "ops/cpu/top_k.h"
#if MOERUN_CUDA
#include "model/cuda_decoder.h"
#endif

namespace moerun {

void Batch::add(std::span<const int32_t> ids, int32_t seq, bool logits_for_last) {
  for (size_t i = 0; i < ids.size(); ++i) {
    tokens.push_back(ids[i]);
    sequence.push_back(seq);
    want_logits.push_back(logits_for_last && i + 1 == ids.size() ? 1 : 0);
  }
}

void LanguageModel::forward_top(const Batch& batch, std::span<SequenceState* const> states,
                                int64_t k, float* top_logits, int32_t* top_ids) {
  const int64_t vocab = info().vocab;
  if (k < 1 || k > vocab) fail("forward_top: k must be in [1, {}] (got {})", vocab, k);
  const auto rows = static_cast<int64_t>(std::count_if(
      batch.want_logits.begin(), batch.want_logits.end(), [](uint8_t w) { return w != 0; }));
  const auto size = static_cast<size_t>(rows * vocab);
  if (top_scratch_.size() < size) top_scratch_.resize(size);
  forward(batch, states, top_scratch_.data());
  top_k_rows(top_scratch_.data(), rows, vocab, k, top_logits, top_ids);
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
  DecoderWeights weights;
  if (arch == "qwen3next") {
    weights = bind_qwen3_next(file);
  } else if (arch == "qwen3moe") {
    weights = bind_qwen3_moe(file);
  } else {
    fail("{}: architecture '{}' is not supported; supported architectures: qwen3next, qwen3moe",
         file.path(), arch);
  }
  if (!options.gpu.enabled) return make_moe_decoder(std::move(weights), options);
#if MOERUN_CUDA
  return make_cuda_decoder(std::move(weights), options);
#else
  fail("{}: this build of moerun has no CUDA backend (build with nvcc, or use --device cpu)",
       file.path());
#endif
}

}  // namespace moerun
