// How a model fits this machine: sizes by category, the smallest and the suggested VRAM budget,
// how many experts the suggested budget caches, and the decode roofline at that budget (an
// estimate from measured constants, for `moerun check` and the bench scenarios).
#pragma once

#include <cstdint>

#include "io/gguf_describe.h"
#include "moe/cost_model.h"

namespace moerun {
class GgufFile;
class LanguageModel;
}  // namespace moerun

namespace moerun::cli {

// VRAM kept beyond weights and state for activations, logits of a prefill chunk and copy staging.
inline constexpr uint64_t kWorkspaceMargin = uint64_t{1} << 30;
// VRAM left free for the CUDA context and other processes when suggesting a budget.
inline constexpr uint64_t kVramReserve = uint64_t{512} << 20;
// Context the minimum budget's KV/state is sized for (the S5 prompt length).
inline constexpr int64_t kDefaultFitContext = 32768;

// The answer for one model on this machine.
struct ModelFit {
  TensorBytes bytes;          // sizes by category
  int64_t context = 0;        // tokens the state is sized for
  int64_t state_bytes = 0;    // KV caches and DeltaNet states of one sequence of `context`
  int64_t top_k = 0;          // experts chosen per token and layer
  int64_t total_experts = 0;  // routed experts of all layers
  uint64_t gpu_resident = 0;  // dense part + embeddings: what lives on the GPU
  uint64_t min_budget = 0;    // gpu_resident + state + workspace margin
  uint64_t full_budget = 0;   // min_budget + every routed expert: the whole model on the GPU
  bool has_gpu = false;
  uint64_t vram_free = 0;             // free VRAM of the GPU (0 without one)
  bool dense_fits = false;            // min_budget <= vram_free - reserve
  uint64_t suggested_budget = 0;      // free VRAM - reserve, at most full_budget (0: does not fit)
  int64_t cached_experts = 0;         // expert slots the suggested budget leaves room for
  double hit_fraction = 0;            // cached / total experts: h under uniform routing
  double expert_bytes_per_token = 0;  // B_exp = top_k x one expert's bytes over all layers
  RooflineInputs roofline_inputs;
  Roofline roofline;         // decode bound at the suggested budget (CPU-only without a GPU)
  bool hbm_measured = true;  // false: GPU memory bandwidth unknown, T_gpu left out of the bound
};

// The budget that caches `experts` experts of the model (min_budget + experts x largest expert).
uint64_t budget_for_experts(const ModelFit& fit, int64_t experts);

// Computes the fit of `model` (loaded from `file`) for `context` tokens, given the free VRAM of
// the GPU (`has_gpu` false: CPU only) and the machine's constants.
ModelFit fit_model(const GgufFile& file, const LanguageModel& model, int64_t context, bool has_gpu,
                   uint64_t vram_free, const Calibration& calibration);

}  // namespace moerun::cli
