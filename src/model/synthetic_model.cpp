#include "model/synthetic_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <future>
#include <memory>
#include <vector>

#include "core/blocks.h"
#include "core/error.h"
#include "core/half.h"
#include "core/quant.h"
#include "core/thread_pool.h"
#include "io/gguf_vocab.h"
#include "io/gguf_writer.h"
#include "tokenizer/vocab.h"

namespace moerun {
namespace {

// A small fast generator (xoshiro256**), seeded through splitmix64; deterministic per chunk.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& s : s_) s = splitmix(seed);
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1).
  float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }
  // Approximately standard normal: the sum of four 16-bit uniforms (Irwin-Hall), rescaled.
  float normal() {
    const uint64_t r = next();
    const float sum =
        static_cast<float>((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48));
    return (sum * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t splitmix(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t s_[4];
};

// How one tensor's values are drawn.
struct Init {
  enum Kind { normal, uniform, neg_uniform, dt_bias } kind;
  float a;  // normal: std; uniform: low
  float b;  // uniform: high
};

Init init_for(const TensorSpec& s, const Qwen3NextConfig& c) {
  const float fan_in = static_cast<float>(s.ne[0]);
  const float residual_scale = 1.0f / std::sqrt(2.0f * static_cast<float>(c.n_layers));
  switch (s.role) {
    case TensorRole::embedding:
      return {Init::normal, 1.0f, 0};
    case TensorRole::norm:
      return {Init::uniform, 0.8f, 1.2f};
    case TensorRole::out_projection:
    case TensorRole::shared_down:
    case TensorRole::expert_down:
      return {Init::normal, residual_scale / std::sqrt(fan_in), 0};
    case TensorRole::conv:
      return {Init::normal, 1.0f / std::sqrt(fan_in), 0};
    case TensorRole::ssm_a:
      return {Init::neg_uniform, 1.0f, 16.0f};  // -exp(A_log), A in [1, 16]
    case TensorRole::ssm_dt_bias:
      return {Init::dt_bias, 1e-3f, 0.1f};
    default:
      return {Init::normal, 1.0f / std::sqrt(fan_in), 0};
  }
}

void fill(const Init& init, Rng& rng, float* out, int64_t n) {
  switch (init.kind) {
    case Init::normal:
      for (int64_t i = 0; i < n; ++i) out[i] = init.a * rng.normal();
      break;
    case Init::uniform:
      for (int64_t i = 0; i < n; ++i) out[i] = init.a + (init.b - init.a) * rng.uniform();
      break;
    case Init::neg_uniform:
      for (int64_t i = 0; i < n; ++i) out[i] = -(init.a + (init.b - init.a) * rng.uniform());
      break;
    case Init::dt_bias:  // dt log-uniform in [a, b], stored as softplus^-1(dt) like HF's init
      for (int64_t i = 0; i < n; ++i) {
        const float dt =
            std::exp(std::log(init.a) + (std::log(init.b) - std::log(init.a)) * rng.uniform());
        out[i] = dt + std::log(-std::expm1(-dt));
      }
      break;
  }
}

// Writes n_blocks random blocks of a quantised type directly: uniformly random codes, with scales
// chosen so the weights have mean about 0 and standard deviation `std`. Much faster than drawing
// floats and quantising them, and the result is a valid block like any other.
void fill_random_blocks(DType type, float std, Rng& rng, uint8_t* out, int64_t n_blocks) {
  const int64_t bytes = n_blocks * dtype_info(type).block_bytes;
  for (int64_t i = 0; i + 8 <= bytes; i += 8) {
    const uint64_t r = rng.next();
    std::memcpy(out + i, &r, 8);
  }
  for (int64_t i = bytes & ~int64_t{7}; i < bytes; ++i) out[i] = static_cast<uint8_t>(rng.next());
  // Standard deviations of uniform codes: 0..15 is 4.61, 0..31 is 9.23, 0..63 is 18.47, and a
  // uniform int8 is 73.9.
  for (int64_t b = 0; b < n_blocks; ++b) {
    switch (type) {
      case DType::Q8_0: {
        auto* blk = reinterpret_cast<BlockQ8_0*>(out) + b;
        blk->d = f32_to_fp16(std / 73.9f);
        break;
      }
      case DType::Q4_0: {
        auto* blk = reinterpret_cast<BlockQ4_0*>(out) + b;
        blk->d = f32_to_fp16(std / 4.61f);
        break;
      }
      case DType::Q4_K:
      case DType::Q5_K: {
        // One scale S for all sub-blocks, mins at 63 so that dmin * 63 cancels the mean code.
        const bool q5 = type == DType::Q5_K;
        const int scale = 32 + static_cast<int>(rng.next() % 32);
        const float d = std / ((q5 ? 9.23f : 4.61f) * static_cast<float>(scale));
        const float dmin = (q5 ? 15.5f : 7.5f) * d * static_cast<float>(scale) / 63.0f;
        uint8_t sc[8], m[8];
        for (int j = 0; j < 8; ++j) {
          sc[j] = static_cast<uint8_t>(scale);
          m[j] = 63;
        }
        uint8_t* base = out + b * dtype_info(type).block_bytes;
        uint16_t dh = f32_to_fp16(d), mh = f32_to_fp16(dmin);
        std::memcpy(base, &dh, 2);
        std::memcpy(base + 2, &mh, 2);
        pack_scale_min_k4(sc, m, base + 4);
        break;
      }
      case DType::Q6_K: {
        auto* blk = reinterpret_cast<BlockQ6_K*>(out) + b;
        for (int8_t& s : blk->scales) s = static_cast<int8_t>(96 + rng.next() % 32);
        blk->d = f32_to_fp16(std / (18.47f * 111.5f));
        break;
      }
      default:
        MOERUN_CHECK(false);
    }
  }
}

// Generates tensor `index` into `out` (its packed bytes), splitting rows into fixed chunks so the
// result does not depend on the number of threads.
void generate_tensor(const SynthOptions& o, const TensorSpec& spec, DType type, uint64_t index,
                     uint8_t* out, ThreadPool& pool, std::vector<std::vector<float>>& scratch) {
  const int64_t cols = spec.ne[0];
  const int64_t rows = spec.rows();
  const int64_t rows_per_chunk = std::max<int64_t>(1, (int64_t{1} << 20) / cols);
  const int64_t n_chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
  const int64_t stride = row_bytes(type, cols);
  const Init init = init_for(spec, o.config);
  const DTypeInfo& info = dtype_info(type);
  const bool direct_blocks = info.block_elems > 1 && init.kind == Init::normal;
  pool.parallel_for(n_chunks, [&](int64_t chunk, int thread) {
    Rng rng(o.seed * 0x9e3779b97f4a7c15ull ^ (index << 32) ^ static_cast<uint64_t>(chunk));
    const int64_t r0 = chunk * rows_per_chunk;
    const int64_t r1 = std::min(rows, r0 + rows_per_chunk);
    if (direct_blocks) {
      fill_random_blocks(type, init.a, rng, out + r0 * stride, (r1 - r0) * cols / info.block_elems);
      return;
    }
    std::vector<float>& buf = scratch[static_cast<size_t>(thread)];  // [rows_per_chunk, cols] f32
    buf.resize(static_cast<size_t>(rows_per_chunk * cols));
    fill(init, rng, buf.data(), (r1 - r0) * cols);
    for (int64_t r = r0; r < r1; ++r) {
      quantize_row(type, buf.data() + (r - r0) * cols, out + r * stride, cols);
    }
  });
}

}  // namespace

std::optional<Qwen3NextConfig> synth_preset(const std::string& name) {
  if (name == "qwen3-next-80b-a3b") return Qwen3NextConfig{};
  if (name == "tiny") {
    Qwen3NextConfig c;
    c.n_layers = 4;
    c.hidden = 256;
    c.context_length = 4096;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 64;
    c.rope_dims = 16;
    c.linear_k_heads = 4;
    c.linear_v_heads = 8;
    c.linear_k_dim = 32;
    c.linear_v_dim = 32;
    c.n_experts = 32;
    c.n_experts_used = 4;
    c.expert_ffn = 256;
    c.shared_ffn = 256;
    c.dense_ffn = 512;
    return c;
  }
  return std::nullopt;
}

void write_synthetic_model(const SynthOptions& o, const std::string& path, ThreadPool& pool,
                           const SynthProgress& progress) {
  o.config.validate("synth");
  VocabData vocab = load_hf_vocab(o.tokenizer_dir, o.config.vocab);
  if (static_cast<int64_t>(vocab.tokens.size()) != o.config.vocab) {
    fail("synth: the tokenizer in {} has {} tokens, more than the vocabulary size {}",
         o.tokenizer_dir, vocab.tokens.size(), o.config.vocab);
  }

  const std::vector<TensorSpec> specs = qwen3_next_tensor_specs(o.config, o.layout);
  std::vector<DType> types;
  types.reserve(specs.size());
  GgufWriter writer(path);
  writer.set("general.name", GgufValue::of_string(o.name));
  writer.set("general.file_type", GgufValue::of_u32(llama_file_type(o.types)));
  writer.set("general.quantization_version", GgufValue::of_u32(2));
  writer.set("moerun.synthetic", GgufValue::of_bool(true));
  writer.set("moerun.synthetic.seed", GgufValue::of_u64(o.seed));
  write_qwen3_next_config(writer, o.config);
  write_vocab(writer, vocab);
  uint64_t max_bytes = 0;
  for (const TensorSpec& s : specs) {
    const DType t = tensor_type_in_mix(o.types, s);
    types.push_back(t);
    writer.add_tensor(s.name, t, s.ne);
    max_bytes =
        std::max<uint64_t>(max_bytes, static_cast<uint64_t>(row_bytes(t, s.ne[0]) * s.rows()));
  }
  writer.write_header();

  // Two buffers: one being generated, one being written by a background task.
  std::unique_ptr<uint8_t[]> buffers[2] = {std::make_unique_for_overwrite<uint8_t[]>(max_bytes),
                                           std::make_unique_for_overwrite<uint8_t[]>(max_bytes)};
  std::vector<std::vector<float>> scratch(static_cast<size_t>(pool.size()));
  std::future<void> pending;
  uint64_t done = 0;
  uint64_t pending_bytes = 0;
  const uint64_t total = writer.data_bytes();
  for (size_t i = 0; i < specs.size(); ++i) {
    uint8_t* out = buffers[i % 2].get();
    generate_tensor(o, specs[i], types[i], i, out, pool, scratch);
    const uint64_t nbytes =
        static_cast<uint64_t>(row_bytes(types[i], specs[i].ne[0]) * specs[i].rows());
    if (pending.valid()) {
      pending.get();
      done += pending_bytes;
      if (progress) progress(done, total);
    }
    pending = std::async(std::launch::async,
                         [&writer, out, nbytes] { writer.write_tensor_data(out, nbytes); });
    pending_bytes = nbytes;
  }
  if (pending.valid()) {
    pending.get();
    done += pending_bytes;
    if (progress) progress(done, total);
  }
  writer.finish();
}

}  // namespace moerun
