#include "cli/model_fit.h"

#include <algorithm>
#include <limits>
#include <memory>

#include "io/gguf_file.h"
#include "model/language_model.h"

namespace moerun::cli {

uint64_t budget_for_experts(const ModelFit& fit, int64_t experts) {
  return fit.min_budget +
         static_cast<uint64_t>(std::max<int64_t>(0, experts)) * fit.bytes.largest_expert;
}

ModelFit fit_model(const GgufFile& file, const LanguageModel& model, int64_t context, bool has_gpu,
                   uint64_t vram_free, const Calibration& calibration) {
  ModelFit f;
  f.bytes = tensor_bytes(file);
  const ModelInfo& info = model.info();
  f.context = std::min(context, info.context_length > 0 ? info.context_length : context);
  f.state_bytes = model.new_sequence(f.context)->bytes();  // KV pages are not touched
  f.top_k = info.n_experts_used;
  f.total_experts = f.bytes.moe_layers * f.bytes.experts_per_layer;
  f.gpu_resident = f.bytes.dense + f.bytes.embeddings;
  f.min_budget = f.gpu_resident + static_cast<uint64_t>(f.state_bytes) + kWorkspaceMargin;
  f.full_budget = budget_for_experts(f, f.total_experts);
  f.has_gpu = has_gpu;
  f.vram_free = has_gpu ? vram_free : 0;
  const uint64_t usable = f.vram_free > kVramReserve ? f.vram_free - kVramReserve : 0;
  f.dense_fits = has_gpu && f.min_budget <= usable;
  if (f.dense_fits) {
    f.suggested_budget = std::min(usable, f.full_budget);
    if (f.bytes.largest_expert > 0) {
      f.cached_experts = std::min<int64_t>(
          f.total_experts,
          static_cast<int64_t>((f.suggested_budget - f.min_budget) / f.bytes.largest_expert));
    }
  }
  f.hit_fraction = f.total_experts > 0 ? static_cast<double>(f.cached_experts) /
                                             static_cast<double>(f.total_experts)
                                       : 0.0;
  f.expert_bytes_per_token =
      static_cast<double>(f.top_k) * static_cast<double>(f.bytes.expert_all_layers);

  RooflineInputs& in = f.roofline_inputs;
  in.expert_bytes = f.expert_bytes_per_token;
  in.dense_bytes = static_cast<double>(f.bytes.dense);
  in.cpu_bw = calibration.cpu_read_bw;
  if (f.dense_fits) {
    in.dense_on_gpu = true;
    in.hit_fraction = f.hit_fraction;
    in.pcie_bw = calibration.h2d_pinned_bw;
    f.hbm_measured = calibration.gpu_device_bw > 0;
    in.hbm_bw =
        f.hbm_measured ? calibration.gpu_device_bw : std::numeric_limits<double>::infinity();
  } else {
    in.dense_on_gpu = false;  // the whole model runs on the CPU
  }
  f.roofline = compute_roofline(in);
  return f;
}

}  // namespace moerun::cli
