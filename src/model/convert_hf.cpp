// The converter's driver: plan every tensor, write the header, then stream tensor data.
#include "model/convert_hf.h"

#include <algorithm>
#include <filesystem>
#include <future>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "core/quant.h"
#include "core/thread_pool.h"
#include "io/gguf_vocab.h"
#include "io/gguf_writer.h"
#include "model/convert_hf_config.h"
#include "model/convert_plan.h"
#include "tokenizer/vocab.h"

namespace moerun {
namespace {

constexpr int64_t kChunkElems = int64_t{1} << 18;  // f32 elements each thread converts at a time

std::string dir_name(const std::string& dir) {
  std::filesystem::path p = std::filesystem::absolute(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

// Checkpoint tensors that are not part of the GGUF: the multi-token-prediction head, rotary
// buffers, and lm_head when it is tied to the embeddings.
bool ignored_tensor(const std::string& name, bool tied) {
  return name.rfind("mtp.", 0) == 0 || name.find("rotary_emb.inv_freq") != std::string::npos ||
         (tied && name == "lm_head.weight");
}

// Converts one planned tensor into `out` (its bytes in `type`), rows split into chunks over the
// pool; `scratch` holds one f32 buffer per thread.
void produce_tensor(const PlannedTensor& t, DType type, uint8_t* out, ThreadPool& pool,
                    std::vector<std::vector<float>>& scratch) {
  const int64_t cols = t.spec.ne[0];
  const int64_t rows = t.spec.rows();
  const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkElems / cols);
  const int64_t n_chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
  const int64_t stride = row_bytes(type, cols);
  pool.parallel_for(n_chunks, [&](int64_t chunk, int thread) {
    const int64_t r0 = chunk * rows_per_chunk;
    const int64_t r1 = std::min(rows, r0 + rows_per_chunk);
    std::vector<float>& buf = scratch[static_cast<size_t>(thread)];  // [r1 - r0, cols] f32
    buf.resize(static_cast<size_t>(rows_per_chunk * cols));
    t.fill(r0, r1, buf.data());
    for (int64_t r = r0; r < r1; ++r) {
      quantize_row(type, buf.data() + (r - r0) * cols, out + r * stride, cols);
    }
  });
}

}  // namespace

void convert_hf_checkpoint(const std::string& hf_dir, const std::string& out_path, TypeMix types,
                           ThreadPool& pool, const ConvertProgress& progress,
                           const ConvertOptions& options) {
  // Everything is checked before the output file is created.
  const HfModelConfig config = read_hf_config(hf_dir);
  HfWeights weights(hf_dir);
  const bool qwen3_next = config.arch == HfArchitecture::qwen3_next;
  const bool tied = qwen3_next ? config.tie_word_embeddings : config.moe.tied_embeddings;
  const std::vector<PlannedTensor> plan =
      qwen3_next ? plan_qwen3_next(config.next, tied, options.layout, weights)
                 : plan_qwen3_moe(config.moe, weights);
  weights.check_complete([tied](const std::string& name) { return ignored_tensor(name, tied); });
  const int64_t vocab_size = qwen3_next ? config.next.vocab : config.moe.vocab;

  const bool has_tokenizer =
      std::filesystem::exists(std::filesystem::path(hf_dir) / "tokenizer.json");
  VocabData vocab;
  if (has_tokenizer) {
    vocab = load_hf_vocab(hf_dir, vocab_size);
    if (static_cast<int64_t>(vocab.tokens.size()) > vocab_size) {
      fail("{}: the tokenizer has {} tokens, more than the model's vocab_size {}", hf_dir,
           vocab.tokens.size(), vocab_size);
    }
  } else {
    fmt::print(stderr,
               "moerun convert: warning: {} has no tokenizer.json; the GGUF gets no tokenizer\n",
               hf_dir);
  }

  std::vector<DType> tensor_types;
  uint64_t max_bytes = 0;
  uint64_t total = 0;  // tensor bytes without alignment padding, for progress
  for (const PlannedTensor& t : plan) {
    const DType type = tensor_type_in_mix(types, t.spec);
    tensor_types.push_back(type);
    const auto nbytes = static_cast<uint64_t>(row_bytes(type, t.spec.ne[0]) * t.spec.rows());
    max_bytes = std::max(max_bytes, nbytes);
    total += nbytes;
  }

  GgufWriter writer(out_path);  // removes its partial file unless finish() completes
  writer.set("general.name",
             GgufValue::of_string(options.name.empty() ? dir_name(hf_dir) : options.name));
  writer.set("general.file_type", GgufValue::of_u32(llama_file_type(types)));
  writer.set("general.quantization_version", GgufValue::of_u32(2));
  if (qwen3_next) {
    write_qwen3_next_config(writer, config.next);
  } else {
    write_qwen3_moe_config(writer, config.moe);
  }
  if (has_tokenizer) write_vocab(writer, vocab);
  for (size_t i = 0; i < plan.size(); ++i) {
    writer.add_tensor(plan[i].spec.name, tensor_types[i], plan[i].spec.ne);
  }
  writer.write_header();

  // Two output buffers: one being produced while the other is written by a background task.
  std::unique_ptr<uint8_t[]> buffers[2] = {std::make_unique_for_overwrite<uint8_t[]>(max_bytes),
                                           std::make_unique_for_overwrite<uint8_t[]>(max_bytes)};
  std::vector<std::vector<float>> scratch(static_cast<size_t>(pool.size()));
  uint64_t done = 0;
  uint64_t pending_bytes = 0;
  size_t pending_index = 0;
  std::future<void> pending;  // destroyed (joined) before the writer
  auto complete_pending = [&] {
    pending.get();
    done += pending_bytes;
    if (progress) progress(done, total, plan[pending_index].spec.name);
  };
  for (size_t i = 0; i < plan.size(); ++i) {
    uint8_t* out = buffers[i % 2].get();
    produce_tensor(plan[i], tensor_types[i], out, pool, scratch);
    weights.release_read_weights();  // the checkpoint's pages do not accumulate in memory
    const uint64_t nbytes =
        static_cast<uint64_t>(row_bytes(tensor_types[i], plan[i].spec.ne[0]) * plan[i].spec.rows());
    if (pending.valid()) complete_pending();
    pending = std::async(std::launch::async,
                         [&writer, out, nbytes] { writer.write_tensor_data(out, nbytes); });
    pending_bytes = nbytes;
    pending_index = i;
  }
  if (pending.valid()) complete_pending();
  writer.finish();
}

}  // namespace moerun
