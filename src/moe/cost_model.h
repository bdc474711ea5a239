// The cost model: the machine's measured constants (a Calibration that `moerun check` stores),
// per-expert time estimates on the CPU and the GPU, and the decode roofline of spec/bench.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace moerun {

// Which machine a calibration was measured on; a calibration of another machine is stale.
struct MachineIdentity {
  std::string cpu_model;  // /proc/cpuinfo "model name"
  int threads = 0;        // CPU threads the bandwidth was measured with
  std::string gpu_name;   // "" when there is no GPU
};

// Constants measured on this machine. Rates are bytes per second; 0 means "not measured" (for
// the GPU fields: no GPU, or a build without CUDA).
struct Calibration {
  static constexpr int kVersion = 1;  // bumped when the meaning of a field changes

  MachineIdentity machine;
  std::string date;                  // when measured, UTC, e.g. "2026-12-01T10:00:00Z"
  double cpu_read_bw = 0;            // CPU memory read with machine.threads threads
  double cpu_read_bw_1thread = 0;    // the same with one thread
  double cpu_gemm_bytes_tokens = 0;  // weight bytes x tokens per second of a many-token CPU GEMM
  double h2d_pinned_bw = 0;          // host-to-device copies from pinned memory (large copies)
  double h2d_pageable_bw = 0;        // the same from pageable memory
  int64_t expert_copy_bytes = 0;     // size of the expert-sized probe copy
  double expert_copy_seconds = 0;    // time of one pinned copy of expert_copy_bytes
  double gpu_device_bw = 0;          // GPU memory bandwidth (kernel reads of weights)

  // True when a GPU was measured (copies are possible).
  bool has_gpu() const { return h2d_pinned_bw > 0; }
};

// The calibration file: cache_dir()/calibration.json.
std::string default_calibration_path();

// Serialises `c` as JSON text (pretty-printed).
std::string calibration_to_json(const Calibration& c);
// Parses and validates calibration JSON; throws Error naming the bad or missing field.
Calibration calibration_from_json(const std::string& text);

// Writes `c` to `path` (creating its folder) through a temporary file and a rename; throws Error.
void save_calibration(const Calibration& c, const std::string& path);

// A calibration read from disk, or why there is none to use.
struct CalibrationLoad {
  std::optional<Calibration> calibration;  // empty when missing, corrupt or stale
  std::string problem;                     // why it is empty ("" when loaded)
};

// Reads `path`; a missing, corrupt or stale file (measured on another machine than `current`)
// is reported in `problem` and ignored, never thrown.
CalibrationLoad load_calibration(const std::string& path, const MachineIdentity& current);

// Inputs of the decode roofline (spec/bench.md), bytes and bytes per second.
struct RooflineInputs {
  double expert_bytes = 0;   // B_exp: the chosen experts of all layers for one token
  double dense_bytes = 0;    // B_dense: the other tensors read per token (no embedding table)
  double hit_fraction = 0;   // h: fraction of B_exp served from the VRAM cache
  double hbm_bw = 0;         // BW_hbm: GPU memory bandwidth (0: no GPU)
  double cpu_bw = 0;         // BW_cpu: CPU memory read bandwidth
  double pcie_bw = 0;        // BW_pcie: pinned host-to-device bandwidth (0: no copies)
  bool dense_on_gpu = true;  // false for CPU-only runs: the CPU also reads B_dense
};

// The bound on one decode step, seconds, with copies of misses (CPU and PCIe share the misses)
// and without (the CPU computes every miss).
struct Roofline {
  double t_gpu = 0;           // (B_dense + h B_exp) / BW_hbm
  double t_miss = 0;          // (1 - h) B_exp / (BW_cpu + BW_pcie)
  double t_floor = 0;         // max(t_gpu, t_miss)
  double tok_s = 0;           // 1 / t_floor
  double t_miss_no_copy = 0;  // (1 - h) B_exp / BW_cpu
  double t_floor_no_copy = 0;
  double tok_s_no_copy = 0;
};

// Computes the roofline exactly as spec/bench.md writes it; for a CPU-only run (dense_on_gpu
// false) the step reads B_dense + B_exp at BW_cpu. Throws Error when a needed bandwidth is 0.
Roofline compute_roofline(const RooflineInputs& in);

// Per-expert time estimates from a Calibration.
class CostModel {
 public:
  // Uses `c`'s constants; throws Error when the CPU constants are missing.
  explicit CostModel(const Calibration& c);

  // Seconds for the CPU to apply an expert of `bytes` to `tokens` tokens: the weight stream at
  // the CPU read bandwidth, or the GEMM's compute when that takes longer (many tokens).
  double cpu_expert_seconds(int64_t bytes, int64_t tokens) const;
  // Seconds to copy `bytes` from pinned host memory to the GPU (per-copy latency included);
  // infinite without a GPU.
  double copy_seconds(int64_t bytes) const;
  // Seconds of the GPU kernel for an expert of `bytes` (reads its weights once); 0 when the GPU
  // bandwidth was not measured (the kernel is then taken as hidden behind its copy).
  double gpu_expert_seconds(int64_t bytes, int64_t tokens) const;
  // Decode, per step: whether copying a missed expert to the GPU and running it there finishes
  // before computing it on the CPU, given the seconds of work already queued on the CPU and on
  // the copy stream this step.
  bool copy_miss_instead_of_cpu(int64_t expert_bytes, int64_t tokens, double cpu_pending_seconds,
                                double copy_pending_seconds) const;
  // Prefill: the fewest tokens routed to one expert for which streaming it to the GPU beats
  // the CPU; INT64_MAX when never (no GPU, or the CPU always wins).
  int64_t prefill_gpu_min_tokens(int64_t expert_bytes) const;

  const Calibration& calibration() const { return c_; }

 private:
  Calibration c_;
  double copy_latency_ = 0;  // fixed seconds per copy, from the expert-sized probe
};

}  // namespace moerun
