// CudaDecoder: the forward pass of MoeDecoder as CUDA kernels on one compute stream. The host
// checks the batch, gathers embedding rows and writes the batch layout to pinned memory; one copy
// moves both to the GPU, then every layer runs on the GPU and only logits come back. Decode steps
// (every sequence one token) are captured once per batch size and replayed as CUDA graphs.
#include "model/cuda_decoder.h"

#include <cuda_runtime_api.h>

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <tuple>

#include "core/error.h"
#include "core/quant.h"
#include "core/thread_pool.h"
#include "model/batch_plan.h"
#include "model/cuda_weights.h"
#include "model/sequence_caches.h"
#include "moe/cache_policy.h"
#include "moe/gpu_expert_cache.h"
#include "moe/moe_dispatcher.h"
#include "moe/prefill_split.h"
#include "moe/routing_override.h"
#include "ops/cuda/attention_cuda.h"
#include "ops/cuda/attention_prefill_cuda.h"
#include "ops/cuda/cuda_check.cuh"
#include "ops/cuda/deltanet_chunked_cuda.h"
#include "ops/cuda/deltanet_cuda.h"
#include "ops/cuda/device_batch.h"
#include "ops/cuda/device_memory.h"
#include "ops/cuda/elementwise_cuda.h"
#include "ops/cuda/matmul_cuda.h"
#include "ops/cuda/moe_experts_cuda.h"
#include "ops/cuda/norms_cuda.h"
#include "ops/cuda/router_cuda.h"
#include "ops/cuda/top_k_cuda.h"

namespace moerun {
namespace {

// Most rows of logits computed per lm_head pass (bounds the logits buffer).
constexpr int64_t kLogitChunk = 16;
static_assert(kTopCandidates <= kMaxTopKCuda);
// Most tokens of a batch replayed as a CUDA graph (the GEMV range of matmul_cuda).
constexpr int64_t kMaxGraphTokens = 8;
// Batches with a run longer than this use the tiled prefill attention kernel; shorter runs (and
// every graph-captured step) the split-key kernel.
constexpr int64_t kPrefillAttentionRun = 16;
static_assert(kPrefillAttentionRun >= kMaxGraphTokens, "graphs keep the split-key kernel");
// VRAM kept free beyond the routed experts before the whole model is placed on the GPU.
constexpr uint64_t kHybridMargin = uint64_t{256} << 20;
// Batches with a run of at least this many tokens run DeltaNet in the chunked form; the others
// (decode steps, every graph-captured step) the recurrent kernel.
constexpr int64_t kChunkedDeltaNetRun = 32;
static_assert(kChunkedDeltaNetRun > kMaxGraphTokens, "graphs keep the recurrent kernel");

// Waits for `event` by spinning (the per-layer round trip is the hybrid mode's fixed cost).
void spin_wait(cudaEvent_t event) {
  for (;;) {
    const cudaError_t status = cudaEventQuery(event);
    if (status == cudaSuccess) return;
    if (status != cudaErrorNotReady) MOERUN_CUDA_CHECK(status);
    _mm_pause();
  }
}

// Key splits of attention for n query tokens: enough blocks to fill the GPU for decode, one split
// per token when there are many tokens.
int64_t attention_splits(int64_t n_tokens, int64_t n_heads) {
  const int64_t blocks = n_tokens * n_heads;
  return std::clamp<int64_t>((264 + blocks - 1) / blocks, 1, 32);
}

// Frees cudaMallocHost memory.
struct PinnedFree {
  void operator()(void* p) const { cudaFreeHost(p); }
};

// A pinned host buffer of `bytes`.
std::unique_ptr<void, PinnedFree> pinned(size_t bytes) {
  void* p = nullptr;
  MOERUN_CUDA_CHECK(cudaMallocHost(&p, std::max<size_t>(bytes, 1)));
  return std::unique_ptr<void, PinnedFree>(p);
}

// The batch layout arrays, laid out identically in pinned host memory and in VRAM, so one copy
// moves them all.
struct BatchLayout {
  size_t positions = 0, token_run = 0, run_begin = 0, run_count = 0, kv = 0, capacity = 0,
         recurrent = 0, logit_rows = 0, bytes = 0;

  BatchLayout(int64_t max_tokens, int64_t max_runs) {
    auto take = [this](size_t n) {
      const size_t at = bytes;
      bytes += (n + 15) / 16 * 16;
      return at;
    };
    const auto t = static_cast<size_t>(max_tokens);
    const auto r = static_cast<size_t>(max_runs);
    kv = take(r * sizeof(float*));
    recurrent = take(r * sizeof(float*));
    positions = take(t * sizeof(int32_t));
    token_run = take(t * sizeof(int32_t));
    run_begin = take(r * sizeof(int32_t));
    run_count = take(r * sizeof(int32_t));
    capacity = take(r * sizeof(int32_t));
    logit_rows = take(t * sizeof(int32_t));
  }
  template <typename T>
  static T* at(void* base, size_t offset) {
    return reinterpret_cast<T*>(static_cast<uint8_t*>(base) + offset);
  }
};

class CudaDecoder : public LanguageModel {
 public:
  CudaDecoder(DecoderWeights weights, const ModelOptions& options)
      : host_(std::move(weights)),
        options_(options.gpu),
        memory_(options.gpu.budget),
        layout_(options.gpu.max_batch_tokens, options.gpu.max_sequences) {
    if (options_.max_batch_tokens < 1 || options_.max_sequences < 1) {
      fail("GPU options: max_batch_tokens and max_sequences must be positive");
    }
    const int64_t hidden = host_.hidden;
    if (host_.embedding.ne[0] != hidden) fail("embedding width does not match the hidden size");
    // Whole model on the GPU when it fits with room for the planned sequences; otherwise the
    // hybrid mode: dense weights on the GPU, routed experts in host memory and a VRAM cache.
    const uint64_t experts_bytes = routed_expert_bytes(host_);
    hybrid_ = options_.hybrid || options.routing_override != nullptr ||
              options.routing_observer != nullptr || memory_.left() < experts_bytes + kHybridMargin;
    gpu_ = upload_weights(host_, memory_, !hybrid_);
    cache_.n_kv_layers = static_cast<int64_t>(host_.attention.size());
    cache_.kv_width = host_.attention_config.kv_width();
    cache_.n_recurrent_layers = static_cast<int64_t>(host_.deltanet.size());
    if (cache_.n_recurrent_layers > 0) {
      cache_.conv_floats = host_.deltanet_config.conv_floats();
      cache_.ssm_floats = host_.deltanet_config.ssm_floats();
    }
    MOERUN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    allocate_activations();
    if (hybrid_) set_up_expert_cache(options);
  }

  ~CudaDecoder() override {
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    for (auto& [n, exec] : graphs_) cudaGraphExecDestroy(exec);
    for (auto& [key, exec] : layer_graphs_) cudaGraphExecDestroy(exec);
    if (routed_ != nullptr) cudaEventDestroy(routed_);
    for (cudaEvent_t e : expert_timing_) cudaEventDestroy(e);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  const ModelInfo& info() const override { return host_.info; }

  ExpertStats* expert_stats() override { return cpu_ ? cpu_->stats() : nullptr; }

  std::optional<GpuMemoryUse> gpu_memory() const override {
    GpuMemoryUse u;
    u.budget = memory_.budget();
    u.used = memory_.used();
    u.peak = memory_.peak();
    for (int i = 0; i < static_cast<int>(GpuUse::kCount); ++i) {
      const auto use = static_cast<GpuUse>(i);
      u.categories.emplace_back(gpu_use_name(use), memory_.used_by(use));
    }
    return u;
  }

  std::string describe_placement() const override {
    auto gib = [](uint64_t b) { return static_cast<double>(b) / (1ull << 30); };
    std::string s = fmt::format(
        "GPU plan ({:.2f} GiB budget): dense weights {:.2f} GiB, expert cache {:.2f} GiB, "
        "workspace {:.2f} GiB, reserved for {} sequence(s) of {} tokens {:.2f} GiB",
        gib(memory_.budget()), gib(memory_.used_by(GpuUse::dense_weights)),
        gib(memory_.used_by(GpuUse::expert_cache)), gib(memory_.used_by(GpuUse::workspace)),
        options_.plan_sequences, options_.plan_context, gib(state_reserve_));
    if (hybrid_) {
      s += fmt::format("; hybrid: {} expert slots of {} ({:.1f}%), misses on {} CPU threads",
                       cache_slots_, host_.info.n_layers * host_.info.n_experts,
                       100.0 * static_cast<double>(cache_slots_) /
                           static_cast<double>(host_.info.n_layers * host_.info.n_experts),
                       pool_->size());
      if (!expert_cache_->host_registered()) s += " (experts not page-locked: slower copies)";
      if (expert_cache_->staging_capacity() == 0) {
        s += "; prefill misses on the CPU (no room for staging buffers)";
      } else if (options_.calibration.cpu_read_bw <= 0) {
        s += "; prefill split from default constants (run `moerun check` to measure them)";
      }
    } else {
      s += "; every routed expert on the GPU";
    }
    return s;
  }

  std::unique_ptr<SequenceState> new_sequence(int64_t max_tokens) const override {
    if (max_tokens < 1 || max_tokens > host_.info.context_length) {
      fail("a sequence of {} tokens is outside [1, {}], the model's context length", max_tokens,
           host_.info.context_length);
    }
    const uint64_t kv_floats =
        static_cast<uint64_t>(2 * cache_.n_kv_layers * max_tokens * cache_.kv_width);
    const uint64_t rec_floats =
        static_cast<uint64_t>(cache_.n_recurrent_layers * (cache_.conv_floats + cache_.ssm_floats));
    CacheStorage storage;
    DeviceMemory* memory = &memory_;
    storage.kv =
        static_cast<float*>(memory->allocate(std::max<uint64_t>(kv_floats, 1) * sizeof(float),
                                             GpuUse::kv_cache, "a sequence's KV cache"));
    try {
      storage.recurrent = static_cast<float*>(
          memory->allocate(std::max<uint64_t>(rec_floats, 1) * sizeof(float),
                           GpuUse::recurrent_state, "a sequence's DeltaNet state"));
    } catch (...) {
      memory->release(storage.kv);
      throw;
    }
    storage.zero = [](float* p, int64_t n) {
      MOERUN_CUDA_CHECK(cudaMemset(p, 0, static_cast<size_t>(n) * sizeof(float)));
    };
    storage.release = [memory, kv = storage.kv, rec = storage.recurrent] {
      memory->release(kv);
      memory->release(rec);
    };
    return std::make_unique<CacheSequenceState>(cache_, max_tokens, this, std::move(storage));
  }

  void forward(const Batch& batch, std::span<SequenceState* const> states, float* logits) override {
    forward_slices(batch, states, LogitsOut{logits, nullptr, nullptr, 0});
  }

  // lm_head and top-k on the GPU; only the candidates come back (k beyond what the GPU selects:
  // full logits and the host's selection).
  void forward_top(const Batch& batch, std::span<SequenceState* const> states, int64_t k,
                   float* top_logits, int32_t* top_ids) override {
    if (k < 1 || k > top_k_) {
      LanguageModel::forward_top(batch, states, k, top_logits, top_ids);
      return;
    }
    forward_slices(batch, states, LogitsOut{nullptr, top_logits, top_ids, k});
  }

 private:
  // Where forward() or forward_top() puts its rows: full logits [rows, vocab], or the k best of
  // each row (top_logits [rows, k], top_ids [rows, k]) when `logits` is null.
  struct LogitsOut {
    float* logits = nullptr;
    float* top_logits = nullptr;
    int32_t* top_ids = nullptr;
    int64_t k = 0;
    // The same outputs from row `row` on.
    LogitsOut from(int64_t row, int64_t vocab) const {
      if (logits != nullptr) return {logits + row * vocab, nullptr, nullptr, 0};
      return {nullptr, top_logits + row * k, top_ids + row * k, k};
    }
  };

  // The batch in slices of at most max_batch_tokens consecutive tokens.
  void forward_slices(const Batch& batch, std::span<SequenceState* const> states,
                      const LogitsOut& out) {
    const int64_t n = batch.size();
    if (n <= options_.max_batch_tokens) {
      forward_chunk(batch, states, out);
      return;
    }
    // Larger batches in slices of consecutive tokens (a sequence's tokens stay in order).
    Batch slice;
    int64_t rows = 0;
    for (int64_t begin = 0; begin < n; begin += options_.max_batch_tokens) {
      const int64_t end = std::min(n, begin + options_.max_batch_tokens);
      slice.clear();
      for (int64_t t = begin; t < end; ++t) {
        slice.tokens.push_back(batch.tokens[t]);
        slice.sequence.push_back(batch.sequence[t]);
        slice.want_logits.push_back(batch.want_logits[t]);
      }
      forward_chunk(slice, states, out.from(rows, host_.info.vocab));
      rows += std::count(slice.want_logits.begin(), slice.want_logits.end(), 1);
    }
  }

  // Device buffers of every activation, sized for max_batch_tokens.
  void allocate_activations() {
    const int64_t T = options_.max_batch_tokens;
    const int64_t hidden = host_.hidden;
    const AttentionShape& as = gpu_.attention_shape;
    const DeltaNetShape& ds = gpu_.deltanet_shape;
    const MoeConfig& mc = host_.moe_config;
    auto floats = [this](int64_t count, const char* what) {
      return static_cast<float*>(
          memory_.allocate(static_cast<uint64_t>(std::max<int64_t>(count, 1)) * sizeof(float),
                           GpuUse::workspace, what));
    };
    h_ = floats(T * hidden, "residual stream");
    xn_ = floats(T * hidden, "normalised activations");
    mix_ = floats(T * hidden, "block outputs");
    if (!host_.attention.empty()) {
      const int64_t qw = as.n_heads * as.head_dim;
      const int64_t kvw = as.n_kv_heads * as.head_dim;
      q_proj_ = floats(T * qw * (as.output_gate ? 2 : 1), "q projection");
      q_ = floats(T * qw, "queries");
      gate_ = floats(T * qw, "attention gate");
      k_ = floats(T * kvw, "keys");
      v_ = floats(T * kvw, "values");
      att_ = floats(T * qw, "attention output");
      int64_t ws = 0;
      for (int64_t n = 1; n <= T; ++n) {
        ws = std::max(ws, attention_workspace_floats(as, n, attention_splits(n, as.n_heads)));
      }
      attention_ws_ = floats(ws, "attention workspace");
    }
    if (!host_.deltanet.empty()) {
      proj_ = floats(T * (2 * ds.key_width() + 2 * ds.value_width()), "DeltaNet projection");
      mixed_ = floats(T * ds.channels(), "DeltaNet conv input");
      z_ = floats(T * ds.value_width(), "DeltaNet z");
      ba_ = floats(T * 2 * ds.v_heads, "DeltaNet b/a");
      conv_ = floats(T * ds.channels(), "DeltaNet conv output");
      core_ = floats(T * ds.value_width(), "DeltaNet core output");
    }
    router_logits_ = floats(T * mc.n_experts, "router logits");
    ids_ = static_cast<int32_t*>(memory_.allocate(
        static_cast<uint64_t>(T * mc.top_k) * sizeof(int32_t), GpuUse::workspace, "expert ids"));
    weights_ = floats(T * mc.top_k, "expert weights");
    if (mc.shared_ffn > 0) {
      shared_gate_ = floats(T * mc.shared_ffn, "shared expert gate");
      shared_up_ = floats(T * mc.shared_ffn, "shared expert up");
      shared_scale_ = floats(T, "shared expert scale");
      shared_out_ = floats(T * hidden, "shared expert output");
    }
    out_rows_ = floats(kLogitChunk * hidden, "final-normalised rows");
    logits_ = floats(kLogitChunk * host_.info.vocab, "logits");
    meta_ = memory_.allocate(layout_.bytes, GpuUse::workspace, "batch layout");
    meta_host_ = pinned(layout_.bytes);
    emb_host_ = pinned(static_cast<size_t>(T * hidden) * sizeof(float));
    logits_host_ = pinned(static_cast<size_t>(kLogitChunk * host_.info.vocab) * sizeof(float));
    top_k_ = std::min(kTopCandidates, host_.info.vocab);
    const auto top_bytes = static_cast<uint64_t>(kLogitChunk * top_k_) * 8;  // f32 + i32 each
    top_ = memory_.allocate(top_bytes, GpuUse::workspace, "top logits");
    top_ws_ = memory_.allocate(top_k_cuda_workspace_bytes(kLogitChunk, host_.info.vocab, top_k_),
                               GpuUse::workspace, "top-k workspace");
    top_host_ = pinned(top_bytes);

    // Matmul and expert scratch for the largest matrix and batch.
    int64_t max_rows = host_.info.vocab;
    int64_t max_cols = hidden;
    auto grow = [&](const WeightMatrix& m) {
      max_rows = std::max(max_rows, m.rows);
      max_cols = std::max(max_cols, m.cols);
    };
    for (const GpuAttention& a : gpu_.attention) {
      for (const WeightMatrix* m : {&a.q, &a.k, &a.v, &a.o}) grow(*m);
    }
    for (const GpuDeltaNet& d : gpu_.deltanet) {
      for (const WeightMatrix* m : {&d.ssm_in, &d.qkv, &d.gate, &d.ba, &d.out}) grow(*m);
    }
    for (const GpuLayer& l : gpu_.layers) {
      for (const WeightMatrix* m : {&l.moe.router, &l.moe.shared_gate, &l.moe.shared_up,
                                    &l.moe.shared_down, &l.moe.shared_scale}) {
        grow(*m);
      }
    }
    matmul_ws_.reserve(max_rows, max_cols, T);
    const int64_t expert_ffn = gpu_.layers.empty() ? 0 : gpu_.layers[0].moe.experts.ffn;
    experts_ws_.reserve(T, mc.top_k, hidden, expert_ffn);
    memory_.account(static_cast<uint64_t>(matmul_ws_.device_bytes()), GpuUse::workspace,
                    "matmul workspace");
    memory_.account(static_cast<uint64_t>(experts_ws_.device_bytes()), GpuUse::workspace,
                    "expert workspace");
  }

  // Hybrid mode: the CPU dispatcher for misses, the slots the budget leaves after a reserve for
  // the planned sequences, pinned buffers of the per-layer round trip.
  void set_up_expert_cache(const ModelOptions& options) {
    if (options.pool == nullptr) fail("the hybrid mode needs a CPU thread pool");
    hooks_.replace = options.routing_override;
    hooks_.observe = options.routing_observer;
    pool_ = options.pool;
    cpu_ = std::make_unique<CpuMoeDispatcher>(host_.experts, *pool_);
    {
      const auto state = new_sequence(std::min(options_.plan_context, host_.info.context_length));
      state_reserve_ = static_cast<uint64_t>(state->bytes()) *
                       static_cast<uint64_t>(std::max<int64_t>(options_.plan_sequences, 0));
    }
    const int64_t slot = GpuExpertCache::slot_bytes(host_.experts);
    const int64_t T = options_.max_batch_tokens;
    const int64_t hidden = host_.hidden;
    const uint64_t table_bytes =
        static_cast<uint64_t>(host_.info.n_layers * 3 * host_.info.n_experts) * sizeof(void*) +
        static_cast<uint64_t>(T * hidden) * 4 + (uint64_t{1} << 20);
    if (memory_.left() < state_reserve_ + table_bytes) {
      fail(
          "GPU memory budget: {:.2f} GiB is too small for the dense part of this model: it needs "
          "at least {:.2f} GiB (dense weights and workspace {:.2f} GiB, {} sequence(s) of {} "
          "tokens {:.2f} GiB)",
          static_cast<double>(memory_.budget()) / (1ull << 30),
          static_cast<double>(memory_.used() + state_reserve_ + table_bytes) / (1ull << 30),
          static_cast<double>(memory_.used()) / (1ull << 30), options_.plan_sequences,
          options_.plan_context, static_cast<double>(state_reserve_) / (1ull << 30));
    }
    // Prefill staging (two buffers and the output they add into mix_), when the budget has room
    // for it and a few cache slots besides.
    const uint64_t staging_bytes = static_cast<uint64_t>(2 * options_.staging_experts * slot) +
                                   static_cast<uint64_t>(T * hidden) * 4;
    const bool staging =
        options_.staging_experts > 0 && memory_.left() - state_reserve_ - table_bytes >=
                                            staging_bytes + 4 * static_cast<uint64_t>(slot);
    cache_slots_ = static_cast<int64_t>(
        (memory_.left() - state_reserve_ - table_bytes - (staging ? staging_bytes : 0)) /
        static_cast<uint64_t>(slot));
    cache_slots_ = std::min(cache_slots_, host_.info.n_layers * host_.info.n_experts);
    if (options_.max_expert_slots >= 0) {
      cache_slots_ = std::min(cache_slots_, options_.max_expert_slots);
    }
    expert_cache_ = std::make_unique<GpuExpertCache>(
        host_.experts, cache_slots_,
        make_cache_policy(options_.cache_policy, host_.info.n_layers, host_.info.n_experts,
                          options_.profile_counts),
        memory_, cpu_->stats());
    if (staging) {
      expert_cache_->reserve_staging(std::min(options_.staging_experts, host_.info.n_experts),
                                     memory_);
      stage_out_ = static_cast<float*>(memory_.allocate(
          static_cast<uint64_t>(T * hidden) * 4, GpuUse::workspace, "staged experts' output"));
    }
    prefill_costs_ = initial_prefill_costs(slot);
    if (!options_.profile_counts.empty()) {
      expert_cache_->warm_start(options_.profile_counts, stream_);
    }
    for (size_t l = 0; l < gpu_.layers.size(); ++l) {
      gpu_.layers[l].moe.table = expert_cache_->device_table(static_cast<int64_t>(l));
    }
    const int64_t top_k = host_.moe_config.top_k;
    ids_host_ = pinned(static_cast<size_t>(T * top_k) * sizeof(int32_t));
    weights_host_ = pinned(static_cast<size_t>(T * top_k) * sizeof(float));
    xn_host_ = pinned(static_cast<size_t>(T * hidden) * sizeof(float));
    cpu_out_host_ = pinned(static_cast<size_t>(T * hidden) * sizeof(float));
    on_cpu_.resize(static_cast<size_t>(T * top_k));
    pred_ids_host_ = pinned(static_cast<size_t>(T * top_k) * sizeof(int32_t));
    pred_logits_ = static_cast<float*>(
        memory_.allocate(static_cast<uint64_t>(kMaxGraphTokens * host_.info.n_experts) * 4,
                         GpuUse::workspace, "predicted router logits"));
    pred_ids_ = static_cast<int32_t*>(memory_.allocate(
        static_cast<uint64_t>(kMaxGraphTokens * top_k) * 4, GpuUse::workspace, "predicted ids"));
    pred_weights_ =
        static_cast<float*>(memory_.allocate(static_cast<uint64_t>(kMaxGraphTokens * top_k) * 4,
                                             GpuUse::workspace, "predicted weights"));
    cpu_out_ = static_cast<float*>(memory_.allocate(static_cast<uint64_t>(T * hidden) * 4,
                                                    GpuUse::workspace, "CPU expert results"));
    MOERUN_CUDA_CHECK(cudaEventCreateWithFlags(&routed_, cudaEventDisableTiming));
    expert_timing_.resize(2 * gpu_.layers.size());
    for (cudaEvent_t& e : expert_timing_) MOERUN_CUDA_CHECK(cudaEventCreate(&e));
  }

  void matmul(const WeightMatrix& w, const float* x, int64_t n, float* y) {
    matmul_cuda(w, x, n, y, matmul_ws_, stream_);
  }

  void attention_block(const DeviceBatch& b, const GpuAttention& w, int64_t kv_layer) {
    const AttentionShape& s = gpu_.attention_shape;
    const int64_t n = b.n_tokens;
    const CudaMatmulJob qkv[] = {{&w.q, q_proj_}, {&w.k, k_}, {&w.v, v_}};
    matmul_cuda_batch(qkv, 3, xn_, n, matmul_ws_, stream_);
    attention_prepare_cuda(s, b, kv_layer, q_proj_, k_, v_, w.q_norm, w.k_norm, gpu_.inv_freq, q_,
                           gate_, stream_);
    const bool prefill = std::any_of(plan_.runs.begin(), plan_.runs.end(), [](const BatchRun& r) {
      return r.count > kPrefillAttentionRun;
    });
    if (prefill) {
      attention_prefill_cuda(s, b, kv_layer, q_, s.output_gate ? gate_ : nullptr, att_, stream_);
    } else {
      attention_cuda(s, b, kv_layer, q_, s.output_gate ? gate_ : nullptr,
                     attention_splits(n, s.n_heads), attention_ws_, att_, stream_);
    }
    matmul(w.o, att_, n, mix_);
  }

  void deltanet_block(const DeviceBatch& b, const GpuDeltaNet& w, int64_t layer) {
    const DeltaNetShape& s = gpu_.deltanet_shape;
    const int64_t n = b.n_tokens;
    // The input projections share xn_: one batch (one GEMV launch per weight format).
    if (w.layout == DeltaNetLayout::ssm_in) {
      const CudaMatmulJob jobs[] = {{&w.ssm_in, proj_}, {&w.ba, ba_}};
      matmul_cuda_batch(jobs, 2, xn_, n, matmul_ws_, stream_);
      deltanet_ungroup_cuda(s, proj_, n, mixed_, z_, stream_);
    } else {
      const CudaMatmulJob jobs[] = {{&w.qkv, mixed_}, {&w.gate, z_}, {&w.ba, ba_}};
      matmul_cuda_batch(jobs, 3, xn_, n, matmul_ws_, stream_);
    }
    deltanet_conv_cuda(s, b, layer, mixed_, w.conv, conv_, stream_);
    const bool prefill = std::any_of(plan_.runs.begin(), plan_.runs.end(), [](const BatchRun& r) {
      return r.count >= kChunkedDeltaNetRun;
    });
    if (prefill) {
      deltanet_chunked_cuda(s, b, layer, conv_, ba_, z_, w.dt_bias, w.a, w.norm, core_, stream_);
    } else {
      deltanet_recurrent_cuda(s, b, layer, conv_, ba_, z_, w.dt_bias, w.a, w.norm, core_, stream_);
    }
    matmul(w.out, core_, n, mix_);
  }

  // The router's choice (ids_, weights_) and the shared expert's gate, up and scale inputs.
  void router(const GpuMoe& m, int64_t n) {
    const MoeConfig& c = host_.moe_config;
    // The router and the shared expert's gate, up and scale share xn_: one batch.
    const CudaMatmulJob jobs[] = {{&m.router, router_logits_},
                                  {&m.shared_gate, shared_gate_},
                                  {&m.shared_up, shared_up_},
                                  {&m.shared_scale, shared_scale_}};
    matmul_cuda_batch(jobs, c.shared_ffn > 0 ? 4 : 1, xn_, n, matmul_ws_, stream_);
    softmax_top_k_cuda(router_logits_, n, c.n_experts, c.top_k, c.normalize_top_k, ids_, weights_,
                       stream_);
  }

  // The rest of the shared expert, into shared_out_ (added by routed_experts()).
  void shared_expert(const GpuMoe& m, int64_t n) {
    const MoeConfig& c = host_.moe_config;
    if (c.shared_ffn == 0) return;
    silu_mul_cuda(shared_gate_, shared_up_, n * c.shared_ffn, shared_gate_, stream_);
    matmul(m.shared_down, shared_gate_, n, shared_out_);
  }

  // The routed experts the device table holds, into mix_, plus the gated shared expert.
  void routed_experts(const GpuMoe& m, int64_t n) {
    const MoeConfig& c = host_.moe_config;
    moe_experts_cuda(m.experts, m.table, xn_, n, ids_, weights_, c.top_k, mix_, experts_ws_,
                     stream_);
    if (c.shared_ffn > 0) {
      add_gated_shared_cuda(mix_, shared_out_, shared_scale_, n, host_.hidden, stream_);
    }
  }

  void moe_block(const GpuMoe& m, int64_t n) {
    router(m, n);
    shared_expert(m, n);
    routed_experts(m, n);
  }

  // Share of a decode step's misses to copy in so that the copy engine and the CPU finish
  // together, from their measured time per expert (options_.copy_share until both are measured).
  double copy_share() const {
    const double copy = expert_cache_->copy_seconds_per_expert();
    if (copy <= 0 || cpu_seconds_per_expert_ <= 0) return options_.copy_share;
    return cpu_seconds_per_expert_ / (cpu_seconds_per_expert_ + copy);
  }

  // The prefill split's costs per expert of `bytes`: from the calibration `moerun check` stored,
  // else conservative defaults until the copies are measured (CPU 40 GB/s stream and 1e11 byte
  // x tokens/s of GEMM, PCIe 20 GB/s).
  PrefillCosts initial_prefill_costs(int64_t bytes) const {
    Calibration c = options_.calibration;
    if (c.cpu_read_bw <= 0 || c.cpu_gemm_bytes_tokens <= 0) {
      c.cpu_read_bw = 40e9;
      c.cpu_gemm_bytes_tokens = 1e11;
    }
    if (!c.has_gpu()) c.h2d_pinned_bw = 20e9;
    return prefill_costs(CostModel(c), bytes);
  }

  // Prefill, layer l: every miss either streams to the GPU through the staging buffers (the
  // experts with the most tokens, as the cost model splits them) or stays marked in on_cpu_ for
  // the CPU. The resident experts and the shared expert run first, then the staged groups, each
  // group's copy overlapping the previous group's kernels. The cache itself is left unchanged.
  int64_t prefill_routed_experts(const GpuMoe& m, size_t l, int64_t n, const int32_t* ids) {
    const int64_t top_k = host_.moe_config.top_k;
    const int64_t n_assign = n * top_k;
    const auto layer = static_cast<int64_t>(l);
    expert_cache_->plan(layer, ids, n_assign, 0, on_cpu_.data(), stream_);
    expert_cache_->publish(layer, stream_);  // experts an earlier prefill placed in free slots
    routed_experts(m, n);
    const int64_t capacity = expert_cache_->staging_capacity();
    if (capacity == 0) return 0;
    // Tokens per missed expert, in order of first appearance.
    miss_tokens_.assign(static_cast<size_t>(host_.info.n_experts), 0);
    missed_.clear();
    for (int64_t i = 0; i < n_assign; ++i) {
      if (on_cpu_[static_cast<size_t>(i)] == 0) continue;
      if (miss_tokens_[static_cast<size_t>(ids[i])]++ == 0) missed_.push_back(ids[i]);
    }
    split_tokens_.clear();
    for (const int32_t e : missed_) split_tokens_.push_back(miss_tokens_[static_cast<size_t>(e)]);
    to_gpu_.resize(missed_.size());
    PrefillCosts costs = prefill_costs_;
    if (!options_.calibration.has_gpu() && expert_cache_->copy_seconds_per_expert() > 0) {
      costs.copy_seconds = expert_cache_->copy_seconds_per_expert();  // measured here instead
    }
    split_prefill_misses(costs, split_tokens_, to_gpu_, split_order_);
    staged_.clear();
    for (size_t i = 0; i < missed_.size(); ++i) {
      if (to_gpu_[i] != 0) staged_.push_back(missed_[i]);
      miss_tokens_[static_cast<size_t>(missed_[i])] = to_gpu_[i] != 0 ? -1 : 0;
    }
    for (int64_t i = 0; i < n_assign; ++i) {
      if (miss_tokens_[static_cast<size_t>(ids[i])] < 0) on_cpu_[static_cast<size_t>(i)] = 0;
    }
    for (size_t first = 0; first < staged_.size(); first += static_cast<size_t>(capacity)) {
      const int64_t count =
          std::min<int64_t>(capacity, static_cast<int64_t>(staged_.size() - first));
      const DeviceExpertTable table =
          expert_cache_->stage(layer, staged_.data() + first, count, stream_);
      moe_experts_cuda(m.experts, table, xn_, n, ids_, weights_, top_k, stage_out_, experts_ws_,
                       stream_);
      add_into_cuda(mix_, stage_out_, n * host_.hidden, stream_);
      expert_cache_->release_staging(stream_);
    }
    return static_cast<int64_t>(staged_.size());
  }

  // Whether decode steps of n tokens predict and prefetch the next layer's experts.
  bool prefetching(int64_t n) const {
    return options_.max_prefetch > 0 && n <= kMaxGraphTokens && hooks_.replace == nullptr;
  }

  // Hybrid piece 0 of layer l: mixer and router, then the router's choice and the normalised
  // input copied to pinned memory for the CPU.
  void layer_mixer_and_router(const DeviceBatch& b, size_t l) {
    const int64_t n = b.n_tokens;
    const int64_t hidden = host_.hidden;
    const GpuLayer& layer = gpu_.layers[l];
    add_rms_norm_cuda(h_, l == 0 ? nullptr : mix_, layer.mixer_norm, n, hidden, host_.rms_eps, xn_,
                      stream_);
    if (layer.attention >= 0) {
      attention_block(b, gpu_.attention[static_cast<size_t>(layer.attention)], layer.attention);
    } else {
      deltanet_block(b, gpu_.deltanet[static_cast<size_t>(layer.deltanet)], layer.deltanet);
    }
    add_rms_norm_cuda(h_, mix_, layer.ffn_norm, n, hidden, host_.rms_eps, xn_, stream_);
    router(layer.moe, n);
    const int64_t top_k = host_.moe_config.top_k;
    if (prefetching(n) && l + 1 < gpu_.layers.size()) {
      // The next layer's router applied to this layer's input predicts its experts.
      const MoeConfig& c = host_.moe_config;
      matmul(gpu_.layers[l + 1].moe.router, xn_, n, pred_logits_);
      softmax_top_k_cuda(pred_logits_, n, c.n_experts, c.top_k, c.normalize_top_k, pred_ids_,
                         pred_weights_, stream_);
      MOERUN_CUDA_CHECK(cudaMemcpyAsync(pred_ids_host_.get(), pred_ids_,
                                        static_cast<size_t>(n * top_k) * sizeof(int32_t),
                                        cudaMemcpyDeviceToHost, stream_));
    }
    MOERUN_CUDA_CHECK(cudaMemcpyAsync(ids_host_.get(), ids_,
                                      static_cast<size_t>(n * top_k) * sizeof(int32_t),
                                      cudaMemcpyDeviceToHost, stream_));
    MOERUN_CUDA_CHECK(cudaMemcpyAsync(weights_host_.get(), weights_,
                                      static_cast<size_t>(n * top_k) * sizeof(float),
                                      cudaMemcpyDeviceToHost, stream_));
    MOERUN_CUDA_CHECK(cudaMemcpyAsync(xn_host_.get(), xn_,
                                      static_cast<size_t>(n * hidden) * sizeof(float),
                                      cudaMemcpyDeviceToHost, stream_));
  }

  // Runs piece `part` of layer l for batch b: from a graph captured once per (tokens, layer, part)
  // for decode-sized batches, directly otherwise.
  template <typename Fn>
  void run_piece(const DeviceBatch& b, size_t l, int part, bool graph, Fn&& fn) {
    if (!graph) {
      fn();
      return;
    }
    const auto key = std::make_tuple(b.n_tokens, l, part);
    auto it = layer_graphs_.find(key);
    if (it == layer_graphs_.end()) {
      cudaGraph_t g = nullptr;
      MOERUN_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
      fn();
      MOERUN_CUDA_CHECK(cudaStreamEndCapture(stream_, &g));
      cudaGraphExec_t exec = nullptr;
      MOERUN_CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
      MOERUN_CUDA_CHECK(cudaGraphDestroy(g));
      it = layer_graphs_.emplace(key, exec).first;
    }
    MOERUN_CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
  }

  // Every layer with routed experts split between the VRAM cache (GPU) and the CPU: per layer, the
  // GPU runs mixer and router; the host reads the choice and admits misses to the cache (copies
  // on their own stream; the GPU waits for them only where it computes them); the GPU runs the
  // shared expert and the resident experts while the CPU computes the rest; the CPU's sum is added
  // on the GPU before the next layer.
  // Adds the GPU time of the step's routed experts to the statistics (after the step's
  // synchronisation: its events have completed).
  void collect_expert_gpu_time() {
    if (!expert_timing_pending_) return;
    expert_timing_pending_ = false;
    double seconds = 0;
    for (size_t l = 0; l < gpu_.layers.size(); ++l) {
      float ms = 0;
      MOERUN_CUDA_CHECK(
          cudaEventElapsedTime(&ms, expert_timing_[2 * l], expert_timing_[2 * l + 1]));
      seconds += 1e-3 * ms;
    }
    cpu_->stats()->add_gpu_seconds(seconds);
  }

  void run_layers_hybrid(const DeviceBatch& b, bool graph) {
    const int64_t n = b.n_tokens;
    const int64_t hidden = host_.hidden;
    const int64_t top_k = host_.moe_config.top_k;
    const int64_t n_assign = n * top_k;
    expert_cache_->begin_step();
    for (size_t l = 0; l < gpu_.layers.size(); ++l) {
      const GpuLayer& layer = gpu_.layers[l];
      run_piece(b, l, 0, graph, [&] { layer_mixer_and_router(b, l); });
      MOERUN_CUDA_CHECK(cudaEventRecord(routed_, stream_));
      run_piece(b, l, 1, graph, [&] { shared_expert(layer.moe, n); });
      spin_wait(routed_);
      auto* ids = static_cast<int32_t*>(ids_host_.get());
      if (hooks_.replace != nullptr) {
        // Benchmark routing: the host's choice replaces the router's on the GPU too.
        hooks_.replace->choose(static_cast<int64_t>(l), n, top_k, ids,
                               static_cast<float*>(weights_host_.get()));
        MOERUN_CUDA_CHECK(cudaMemcpyAsync(ids_, ids, static_cast<size_t>(n_assign) * 4,
                                          cudaMemcpyHostToDevice, stream_));
        MOERUN_CUDA_CHECK(cudaMemcpyAsync(weights_, weights_host_.get(),
                                          static_cast<size_t>(n_assign) * 4, cudaMemcpyHostToDevice,
                                          stream_));
      }
      if (prefetching(n) && l > 0)
        expert_cache_->record_prediction(static_cast<int64_t>(l), ids, n_assign);
      if (hooks_.observe != nullptr) {
        hooks_.observe->observe(static_cast<int64_t>(l), n, top_k, ids,
                                static_cast<const float*>(weights_host_.get()));
      }
      // The misses are split between the copy engine and the CPU so that both finish together.
      // Decode: the most used misses are copied into the cache (and computed on the GPU once
      // there), the CPU computes the rest. Prefill streams misses through staging buffers.
      const int64_t misses = expert_cache_->count_misses(static_cast<int64_t>(l), ids, n_assign);
      int64_t admit = 0;
      if (n > kMaxGraphTokens) {
        MOERUN_CUDA_CHECK(cudaEventRecord(expert_timing_[2 * l], stream_));
        admit = prefill_routed_experts(layer.moe, l, n, ids);
      } else {
        admit = std::min<int64_t>(options_.max_admissions,
                                  std::llround(static_cast<double>(misses) * copy_share()));
        expert_cache_->plan(static_cast<int64_t>(l), ids, n_assign, admit, on_cpu_.data(), stream_);
        expert_cache_->publish(static_cast<int64_t>(l), stream_);
        expert_cache_->mark_resident_on_gpu(static_cast<int64_t>(l), ids, n_assign, on_cpu_.data());
        MOERUN_CUDA_CHECK(cudaEventRecord(expert_timing_[2 * l], stream_));
        run_piece(b, l, 2, graph, [&] { routed_experts(layer.moe, n); });
        if (prefetching(n) && l + 1 < gpu_.layers.size()) {
          expert_cache_->prefetch(static_cast<int64_t>(l) + 1,
                                  static_cast<const int32_t*>(pred_ids_host_.get()), n_assign,
                                  options_.max_prefetch, stream_);
        }
      }
      MOERUN_CUDA_CHECK(cudaEventRecord(expert_timing_[2 * l + 1], stream_));
      const bool any_on_cpu = std::any_of(on_cpu_.begin(), on_cpu_.begin() + n_assign,
                                          [](uint8_t c) { return c != 0; });
      if (!any_on_cpu) continue;  // every expert of this step ran on the GPU
      const auto start = std::chrono::steady_clock::now();
      auto* cpu_out = static_cast<float*>(cpu_out_host_.get());
      cpu_->run_masked(static_cast<int64_t>(l), static_cast<const float*>(xn_host_.get()), n, ids,
                       static_cast<const float*>(weights_host_.get()), top_k, on_cpu_.data(),
                       cpu_out);
      const double cpu_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      cpu_->stats()->add_cpu_seconds(cpu_seconds);
      const int64_t cpu_experts = misses - admit;
      if (n <= kMaxGraphTokens && cpu_experts > 0) {
        const double per_expert = cpu_seconds / static_cast<double>(cpu_experts);
        cpu_seconds_per_expert_ = cpu_seconds_per_expert_ == 0
                                      ? per_expert
                                      : 0.9 * cpu_seconds_per_expert_ + 0.1 * per_expert;
      }
      MOERUN_CUDA_CHECK(cudaMemcpyAsync(cpu_out_, cpu_out,
                                        static_cast<size_t>(n * hidden) * sizeof(float),
                                        cudaMemcpyHostToDevice, stream_));
      add_into_cuda(mix_, cpu_out_, n * hidden, stream_);
    }
    expert_timing_pending_ = true;
    cpu_->stats()->record_tokens(static_cast<uint64_t>(n));
    add_rms_norm_cuda(h_, mix_, gpu_.output_norm, n, hidden, host_.rms_eps, xn_, stream_);
  }

  // Every layer, then the final residual add (h holds the last hidden states).
  void run_layers(const DeviceBatch& b) {
    const int64_t n = b.n_tokens;
    const int64_t hidden = host_.hidden;
    for (size_t l = 0; l < gpu_.layers.size(); ++l) {
      const GpuLayer& layer = gpu_.layers[l];
      add_rms_norm_cuda(h_, l == 0 ? nullptr : mix_, layer.mixer_norm, n, hidden, host_.rms_eps,
                        xn_, stream_);
      if (layer.attention >= 0) {
        attention_block(b, gpu_.attention[static_cast<size_t>(layer.attention)], layer.attention);
      } else {
        deltanet_block(b, gpu_.deltanet[static_cast<size_t>(layer.deltanet)], layer.deltanet);
      }
      add_rms_norm_cuda(h_, mix_, layer.ffn_norm, n, hidden, host_.rms_eps, xn_, stream_);
      moe_block(layer.moe, n);
    }
    add_rms_norm_cuda(h_, mix_, gpu_.output_norm, n, hidden, host_.rms_eps, xn_, stream_);
  }

  // Final norm of rows [first, first + count) of the logit rows, lm_head, copy to pinned memory:
  // the logits, or (top) only the top_k_ largest of each row with their ids.
  void output_rows(int64_t first, int64_t count, bool top) {
    const int32_t* rows =
        BatchLayout::at<int32_t>(meta_, layout_.logit_rows) + static_cast<ptrdiff_t>(first);
    rms_norm_rows_cuda(h_, rows, count, gpu_.output_norm, host_.hidden, host_.rms_eps, out_rows_,
                       stream_);
    matmul(gpu_.output, out_rows_, count, logits_);
    if (top) {
      auto* values = static_cast<float*>(top_);
      auto* ids = reinterpret_cast<int32_t*>(values + kLogitChunk * top_k_);
      top_k_cuda(logits_, count, host_.info.vocab, top_k_, top_ws_, values, ids, stream_);
      MOERUN_CUDA_CHECK(cudaMemcpyAsync(top_host_.get(), top_,
                                        static_cast<size_t>(kLogitChunk * top_k_) * 8,
                                        cudaMemcpyDeviceToHost, stream_));
      return;
    }
    MOERUN_CUDA_CHECK(cudaMemcpyAsync(logits_host_.get(), logits_,
                                      static_cast<size_t>(count * host_.info.vocab) * sizeof(float),
                                      cudaMemcpyDeviceToHost, stream_));
  }

  // Rows [first, first + count) of what output_rows() left in pinned memory (after a sync) into
  // `out`, whose row 0 is row 0 of the forward pass.
  void take_rows(const LogitsOut& out, int64_t first, int64_t count) const {
    const int64_t vocab = host_.info.vocab;
    if (out.logits != nullptr) {
      std::memcpy(out.logits + first * vocab, logits_host_.get(),
                  static_cast<size_t>(count * vocab) * sizeof(float));
      return;
    }
    const auto* values = static_cast<const float*>(top_host_.get());  // [kLogitChunk, top_k_]
    const auto* ids = reinterpret_cast<const int32_t*>(values + kLogitChunk * top_k_);
    for (int64_t r = 0; r < count; ++r) {
      std::memcpy(out.top_logits + (first + r) * out.k, values + r * top_k_,
                  static_cast<size_t>(out.k) * sizeof(float));
      std::memcpy(out.top_ids + (first + r) * out.k, ids + r * top_k_,
                  static_cast<size_t>(out.k) * sizeof(int32_t));
    }
  }

  DeviceBatch device_batch(int64_t n, int64_t runs) const {
    DeviceBatch b;
    b.n_tokens = n;
    b.n_runs = runs;
    b.positions = BatchLayout::at<int32_t>(meta_, layout_.positions);
    b.token_run = BatchLayout::at<int32_t>(meta_, layout_.token_run);
    b.run_begin = BatchLayout::at<int32_t>(meta_, layout_.run_begin);
    b.run_count = BatchLayout::at<int32_t>(meta_, layout_.run_count);
    b.kv = BatchLayout::at<float* const>(meta_, layout_.kv);
    b.capacity = BatchLayout::at<int32_t>(meta_, layout_.capacity);
    b.recurrent = BatchLayout::at<float* const>(meta_, layout_.recurrent);
    return b;
  }

  // Host side of a step: layout arrays and embedding rows into pinned memory, one copy each.
  void stage_inputs(const Batch& batch) {
    const int64_t n = batch.size();
    const int64_t hidden = host_.hidden;
    void* m = meta_host_.get();
    for (int64_t t = 0; t < n; ++t) {
      BatchLayout::at<int32_t>(m, layout_.positions)[t] = static_cast<int32_t>(plan_.positions[t]);
      BatchLayout::at<int32_t>(m, layout_.token_run)[t] = plan_.run_of[t];
    }
    for (size_t r = 0; r < plan_.runs.size(); ++r) {
      const BatchRun& run = plan_.runs[r];
      BatchLayout::at<int32_t>(m, layout_.run_begin)[r] = static_cast<int32_t>(run.begin);
      BatchLayout::at<int32_t>(m, layout_.run_count)[r] = static_cast<int32_t>(run.count);
      BatchLayout::at<int32_t>(m, layout_.capacity)[r] =
          static_cast<int32_t>(run.state->capacity());
      BatchLayout::at<float*>(m, layout_.kv)[r] =
          cache_.n_kv_layers > 0 ? run.state->keys(0) : nullptr;
      BatchLayout::at<float*>(m, layout_.recurrent)[r] =
          cache_.n_recurrent_layers > 0 ? run.state->conv_state(0) : nullptr;
    }
    for (size_t i = 0; i < plan_.logit_rows.size(); ++i) {
      BatchLayout::at<int32_t>(m, layout_.logit_rows)[i] =
          static_cast<int32_t>(plan_.logit_rows[i]);
    }
    const Tensor& emb = host_.embedding;
    const auto* base = static_cast<const uint8_t*>(emb.data);
    auto* rows = static_cast<float*>(emb_host_.get());
    for (int64_t t = 0; t < n; ++t) {
      dequantize_row(emb.type, base + batch.tokens[t] * emb.row_nbytes(), rows + t * hidden,
                     hidden);
    }
    MOERUN_CUDA_CHECK(cudaMemcpyAsync(meta_, m, layout_.bytes, cudaMemcpyHostToDevice, stream_));
    MOERUN_CUDA_CHECK(cudaMemcpyAsync(h_, rows, static_cast<size_t>(n * hidden) * sizeof(float),
                                      cudaMemcpyHostToDevice, stream_));
  }

  void forward_chunk(const Batch& batch, std::span<SequenceState* const> states,
                     const LogitsOut& out) {
    plan_.build(batch, states, this, host_.info.vocab);
    const int64_t n = batch.size();
    if (n == 0) return;
    const auto runs = static_cast<int64_t>(plan_.runs.size());
    if (runs > options_.max_sequences) {
      fail("batch: {} sequences, but the GPU model was set up for at most {}", runs,
           options_.max_sequences);
    }
    stage_inputs(batch);
    const DeviceBatch b = device_batch(n, runs);
    const auto n_out = static_cast<int64_t>(plan_.logit_rows.size());
    const bool top = out.logits == nullptr;
    const bool decode_step = runs == n && n_out == n && n <= kMaxGraphTokens;
    if (hybrid_) {
      run_layers_hybrid(b, options_.graphs && n <= kMaxGraphTokens);
      if (decode_step) output_rows(0, n, top);
    } else if (decode_step && options_.graphs) {
      MOERUN_CUDA_CHECK(cudaGraphLaunch(decode_graph(b, top), stream_));
    } else {
      run_layers(b);
      if (decode_step) output_rows(0, n, top);
    }
    if (decode_step) {
      MOERUN_CUDA_CHECK(cudaStreamSynchronize(stream_));
      take_rows(out, 0, n);
    } else {
      for (int64_t first = 0; first < n_out; first += kLogitChunk) {
        const int64_t count = std::min(kLogitChunk, n_out - first);
        output_rows(first, count, top);
        MOERUN_CUDA_CHECK(cudaStreamSynchronize(stream_));
        take_rows(out, first, count);
      }
      MOERUN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    if (hybrid_) collect_expert_gpu_time();
    for (const BatchRun& run : plan_.runs) run.state->advance(run.count);
  }

  // The decode step for n sequences as a graph (ending with full logits or, top, candidates),
  // captured on first use.
  cudaGraphExec_t decode_graph(const DeviceBatch& b, bool top) {
    const auto it = graphs_.find({b.n_tokens, top});
    if (it != graphs_.end()) return it->second;
    cudaGraph_t graph = nullptr;
    MOERUN_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    run_layers(b);
    output_rows(0, b.n_tokens, top);
    MOERUN_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    cudaGraphExec_t exec = nullptr;
    MOERUN_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    MOERUN_CUDA_CHECK(cudaGraphDestroy(graph));
    graphs_.emplace(std::make_pair(b.n_tokens, top), exec);
    return exec;
  }

  DecoderWeights host_;
  GpuOptions options_;
  mutable DeviceMemory memory_;
  BatchLayout layout_;
  GpuWeights gpu_;
  CacheLayout cache_;
  cudaStream_t stream_ = nullptr;
  CudaMatmulWorkspace matmul_ws_;
  MoeCudaWorkspace experts_ws_;
  std::map<std::pair<int64_t, bool>, cudaGraphExec_t> graphs_;  // decode graphs by (size, top)
  // Hybrid mode.
  bool hybrid_ = false;
  RoutingHooks hooks_;  // benchmark routing and observers (applied on the host's copy)
  ThreadPool* pool_ = nullptr;
  std::unique_ptr<CpuMoeDispatcher> cpu_;
  std::unique_ptr<GpuExpertCache> expert_cache_;
  int64_t cache_slots_ = 0;
  uint64_t state_reserve_ = 0;
  std::map<std::tuple<int64_t, size_t, int>, cudaGraphExec_t> layer_graphs_;
  cudaEvent_t routed_ = nullptr;  // the router's choice of the current layer is on the host
  // [layers, 2] around each layer's routed-expert kernels (prefill: with the staged groups, whose
  // kernels wait for their copies)
  std::vector<cudaEvent_t> expert_timing_;
  bool expert_timing_pending_ = false;  // the last step's events are not yet summed
  double cpu_seconds_per_expert_ = 0;   // measured CPU time per missed expert (moving average)
  std::vector<uint8_t> on_cpu_;         // [T, top_k] assignments the CPU computes
  float* cpu_out_ = nullptr;            // [T, hidden] the CPU's sum in VRAM
  float* pred_logits_ = nullptr;        // [8, n_experts] next layer's router on this layer's input
  int32_t* pred_ids_ = nullptr;         // [8, top_k] its choice (the prefetch's prediction)
  float* pred_weights_ = nullptr;       // [8, top_k]
  float* stage_out_ = nullptr;          // [T, hidden] a staged group's sum (prefill)
  PrefillCosts prefill_costs_;          // per expert: copy and CPU times the prefill split weighs
  std::vector<int32_t> miss_tokens_;    // [n_experts] prefill: tokens per missed expert
  std::vector<int32_t> missed_;         // distinct missed experts of a prefill layer
  std::vector<int32_t> split_tokens_;   // [missed] their tokens
  std::vector<uint8_t> to_gpu_;         // [missed] 1: streamed to the GPU
  std::vector<int32_t> split_order_;    // scratch of split_prefill_misses
  std::vector<int32_t> staged_;         // experts streamed to the GPU, in order
  BatchPlan plan_;
  // Activations in VRAM, [max_batch_tokens, ...] each.
  float* h_ = nullptr;    // [T, hidden] residual stream
  float* xn_ = nullptr;   // [T, hidden] normalised block input
  float* mix_ = nullptr;  // [T, hidden] block output
  float* q_proj_ = nullptr;
  float* q_ = nullptr;
  float* gate_ = nullptr;
  float* k_ = nullptr;
  float* v_ = nullptr;
  float* att_ = nullptr;
  float* attention_ws_ = nullptr;
  float* proj_ = nullptr;
  float* mixed_ = nullptr;
  float* z_ = nullptr;
  float* ba_ = nullptr;
  float* conv_ = nullptr;
  float* core_ = nullptr;
  float* router_logits_ = nullptr;
  int32_t* ids_ = nullptr;
  float* weights_ = nullptr;
  float* shared_gate_ = nullptr;
  float* shared_up_ = nullptr;
  float* shared_scale_ = nullptr;
  float* shared_out_ = nullptr;
  float* out_rows_ = nullptr;                        // [kLogitChunk, hidden]
  float* logits_ = nullptr;                          // [kLogitChunk, vocab]
  void* meta_ = nullptr;                             // BatchLayout in VRAM
  std::unique_ptr<void, PinnedFree> meta_host_;      // BatchLayout in pinned host memory
  std::unique_ptr<void, PinnedFree> emb_host_;       // [T, hidden] gathered embedding rows
  std::unique_ptr<void, PinnedFree> logits_host_;    // [kLogitChunk, vocab]
  std::unique_ptr<void, PinnedFree> ids_host_;       // [T, top_k] the router's choice
  std::unique_ptr<void, PinnedFree> weights_host_;   // [T, top_k]
  std::unique_ptr<void, PinnedFree> xn_host_;        // [T, hidden] the experts' input
  std::unique_ptr<void, PinnedFree> cpu_out_host_;   // [T, hidden] the CPU experts' sum
  std::unique_ptr<void, PinnedFree> pred_ids_host_;  // [T, top_k] predicted next-layer ids

  // forward_top(): the candidates selected on the GPU.
  int64_t top_k_ = 0;                           // candidates per row
  void* top_ = nullptr;                         // [kLogitChunk, top_k_] f32, then the same i32
  void* top_ws_ = nullptr;                      // top_k_cuda's workspace for kLogitChunk rows
  std::unique_ptr<void, PinnedFree> top_host_;  // top_ in pinned host memory
};

}  // namespace

std::unique_ptr<LanguageModel> make_cuda_decoder(DecoderWeights weights,
                                                 const ModelOptions& options) {
  return std::make_unique<CudaDecoder>(std::move(weights), options);
}

}  // namespace moerun
