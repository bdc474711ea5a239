#include "cli/machine_calibration.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <vector>

#include <fmt/format.h>

#include "core/cpu_model.h"
#include "core/memory_bandwidth.h"
#include "core/quant.h"
#include "core/thread_pool.h"
#include "core/weight_matrix.h"
#include "ops/cpu/matmul.h"
#ifdef MOERUN_CUDA
#include "ops/cuda/device_info.h"
#endif

namespace moerun::cli {
namespace {

// Weight bytes x tokens per second of the best of 3 many-token Q4_K GEMMs on `pool`.
double measure_cpu_gemm_rate(ThreadPool& pool) {
  constexpr int64_t kRows = 1536, kCols = 2048, kTokens = 64;  // one expert's gate+up+down size
  WeightMatrix w;
  w.type = DType::Q4_K;
  w.rows = kRows;
  w.cols = kCols;
  w.row_stride = row_bytes(w.type, kCols);
  std::vector<uint8_t> weights(static_cast<size_t>(kRows * w.row_stride));
  std::vector<float> row(static_cast<size_t>(kCols));
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t c = 0; c < kCols; ++c) {
      row[static_cast<size_t>(c)] = 0.02f * static_cast<float>(((r * 31 + c * 17) % 61) - 30);
    }
    quantize_row(w.type, row.data(), weights.data() + r * w.row_stride, kCols);
  }
  w.data = weights.data();
  std::vector<float> x(static_cast<size_t>(kTokens * kCols), 0.25f);  // [tokens, cols] f32
  std::vector<float> y(static_cast<size_t>(kTokens * kRows));         // [tokens, rows] f32
  matmul(w, x.data(), kTokens, y.data(), &pool);                      // warm-up
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    matmul(w, x.data(), kTokens, y.data(), &pool);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, static_cast<double>(weights.size()) * kTokens / secs);
  }
  return best;
}

}  // namespace

std::string utc_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

MachineIdentity current_machine(int threads) {
  MachineIdentity m;
  m.cpu_model = cpu_model_name();
  m.threads = threads;
#ifdef MOERUN_CUDA
  const std::vector<GpuInfo> gpus = list_gpus();
  if (!gpus.empty()) m.gpu_name = gpus.front().name;
#endif
  return m;
}

Calibration measure_calibration(ThreadPool& pool, int64_t expert_bytes) {
  Calibration c;
  c.machine = current_machine(static_cast<int>(pool.size()));
  c.date = utc_now();
  ThreadPool single(1);
  c.cpu_read_bw_1thread = measure_read_bandwidth(single, size_t{256} << 20, 3);
  c.cpu_read_bw = measure_read_bandwidth(pool);
  c.cpu_gemm_bytes_tokens = measure_cpu_gemm_rate(pool);
#ifdef MOERUN_CUDA
  if (!c.machine.gpu_name.empty()) {
    c.h2d_pinned_bw = measure_h2d_bandwidth(0, uint64_t{1} << 30, true);
    c.h2d_pageable_bw = measure_h2d_bandwidth(0, uint64_t{1} << 30, false, 3);
    c.expert_copy_bytes = expert_bytes;
    const double bw = measure_h2d_bandwidth(0, static_cast<uint64_t>(expert_bytes), true, 20);
    c.expert_copy_seconds = bw > 0 ? static_cast<double>(expert_bytes) / bw : 0.0;
    c.gpu_device_bw = measure_device_bandwidth(0, uint64_t{1} << 30);
  }
#else
  (void)expert_bytes;
#endif
  return c;
}

Calibration calibration_for_run(ThreadPool& pool, std::string& note) {
  const MachineIdentity machine = current_machine(static_cast<int>(pool.size()));
  CalibrationLoad load = load_calibration(default_calibration_path(), machine);
  if (load.calibration) {
    note = fmt::format("calibration of {} from {}", load.calibration->date,
                       default_calibration_path());
    return *load.calibration;
  }
  Calibration c;
  c.machine = machine;
  c.date = utc_now();
  c.cpu_read_bw = measure_read_bandwidth(pool, size_t{256} << 20, 3);
  c.cpu_read_bw_1thread = 0;
  c.cpu_gemm_bytes_tokens = measure_cpu_gemm_rate(pool);
  note = fmt::format("CPU constants measured now ({}; `moerun check` stores a full calibration)",
                     load.problem);
  return c;
}

}  // namespace moerun::cli
