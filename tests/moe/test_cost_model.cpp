// The cost model: calibration JSON round trip and validation, the roofline against the numbers
// worked out by hand in spec/bench.md, and the per-expert decisions.
#include "moe/cost_model.h"

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace moerun {
namespace {

// A calibration like the reference machine's (spec/bench.md): 89.6 GB/s CPU, 55 GB/s pinned.
Calibration reference_calibration() {
  Calibration c;
  c.machine = {"Intel Xeon test", 16, "NVIDIA H100 PCIe"};
  c.date = "2026-11-26T00:00:00Z";
  c.cpu_read_bw = 89.6e9;
  c.cpu_read_bw_1thread = 7.6e9;
  c.cpu_gemm_bytes_tokens = 2.0e12;
  c.h2d_pinned_bw = 55e9;
  c.h2d_pageable_bw = 22e9;
  c.expert_copy_bytes = 1'600'000;
  c.expert_copy_seconds = 32e-6;
  c.gpu_device_bw = 3.0e12;
  return c;
}

TEST(Roofline, SpecExampleWithAndWithoutCopies) {
  RooflineInputs in;
  in.expert_bytes = 849e6;
  in.dense_bytes = 1.2e9;
  in.hit_fraction = 0.3;
  in.hbm_bw = 3.0e12;
  in.cpu_bw = 89.6e9;
  in.pcie_bw = 55e9;
  const Roofline r = compute_roofline(in);
  // 0.7 * 849 MB / 144.6 GB/s = 4.110 ms; 0.7 * 849 MB / 89.6 GB/s = 6.633 ms.
  EXPECT_NEAR(r.t_miss, 0.7 * 849e6 / 144.6e9, 1e-12);
  EXPECT_NEAR(r.t_miss * 1e3, 4.11, 0.005);
  EXPECT_NEAR(r.t_miss_no_copy * 1e3, 6.63, 0.005);
  // T_gpu = (1.2 GB + 0.3 * 849 MB) / 3 TB/s = 0.485 ms: the misses bound the step.
  EXPECT_NEAR(r.t_gpu, (1.2e9 + 0.3 * 849e6) / 3.0e12, 1e-12);
  EXPECT_DOUBLE_EQ(r.t_floor, r.t_miss);
  EXPECT_NEAR(r.tok_s, 243.3, 0.1);
  EXPECT_NEAR(r.tok_s_no_copy, 150.8, 0.1);
}

TEST(Roofline, GpuBoundWhenAllCached) {
  RooflineInputs in;
  in.expert_bytes = 849e6;
  in.dense_bytes = 1.151e9;
  in.hit_fraction = 1.0;
  in.hbm_bw = 2.0e12;
  in.cpu_bw = 89.6e9;
  in.pcie_bw = 55e9;
  const Roofline r = compute_roofline(in);
  EXPECT_DOUBLE_EQ(r.t_miss, 0.0);
  EXPECT_NEAR(r.t_gpu, 1.0e-3, 1e-12);  // 2.0 GB / 2 TB/s
  EXPECT_NEAR(r.tok_s, 1000.0, 1e-6);
}

TEST(Roofline, CpuOnlyReadsEverythingAtCpuBandwidth) {
  RooflineInputs in;
  in.expert_bytes = 6e6;
  in.dense_bytes = 4e6;
  in.cpu_bw = 10e9;
  in.dense_on_gpu = false;
  const Roofline r = compute_roofline(in);
  EXPECT_NEAR(r.t_floor, 1e-3, 1e-15);  // 10 MB / 10 GB/s
  EXPECT_NEAR(r.tok_s, 1000.0, 1e-9);
  EXPECT_DOUBLE_EQ(r.tok_s_no_copy, r.tok_s);
}

TEST(Roofline, RejectsMissingBandwidthAndBadHitFraction) {
  RooflineInputs in;
  in.expert_bytes = 1e6;
  in.hbm_bw = 1e12;
  EXPECT_THROW(compute_roofline(in), Error);  // no CPU bandwidth
  in.cpu_bw = 1e10;
  in.hit_fraction = 1.5;
  EXPECT_THROW(compute_roofline(in), Error);
  in.hit_fraction = 0.5;
  in.hbm_bw = 0;
  EXPECT_THROW(compute_roofline(in), Error);  // dense on a GPU of unknown bandwidth
}

TEST(CostModel, CpuTimeIsStreamOrComputeWhicheverIsLonger) {
  const CostModel m(reference_calibration());
  // 1.77 MB at 89.6 GB/s = 19.75 us; compute for 1 token = 0.885 us.
  EXPECT_NEAR(m.cpu_expert_seconds(1'770'000, 1), 1.77e6 / 89.6e9, 1e-15);
  // 100 tokens: 1.77e6 * 100 / 2e12 = 88.5 us > 19.75 us.
  EXPECT_NEAR(m.cpu_expert_seconds(1'770'000, 100), 88.5e-6, 1e-12);
}

TEST(CostModel, CopyTimeHasTheProbedLatency) {
  const CostModel m(reference_calibration());
  // Probe: 1.6 MB in 32 us at 55 GB/s (29.09 us of transfer) -> 2.909 us of latency.
  const double latency = 32e-6 - 1.6e6 / 55e9;
  EXPECT_NEAR(m.copy_seconds(1'600'000), 32e-6, 1e-12);
  EXPECT_NEAR(m.copy_seconds(3'200'000), latency + 3.2e6 / 55e9, 1e-12);
  EXPECT_NEAR(m.gpu_expert_seconds(3'000'000, 1), 1e-6, 1e-15);  // 3 MB at 3 TB/s
}

TEST(CostModel, DecodeCopiesAMissOnlyWhenTheCpuIsBusier) {
  const CostModel m(reference_calibration());
  const int64_t bytes = 1'770'000;
  // CPU idle: 19.75 us on the CPU against 32.2 + 0.59 us of copy and kernel.
  EXPECT_FALSE(m.copy_miss_instead_of_cpu(bytes, 1, 0.0, 0.0));
  // CPU has 100 us queued, copy stream idle: the copy finishes first.
  EXPECT_TRUE(m.copy_miss_instead_of_cpu(bytes, 1, 100e-6, 0.0));
  // Both busy by the same amount: the CPU still wins.
  EXPECT_FALSE(m.copy_miss_instead_of_cpu(bytes, 1, 100e-6, 100e-6));
}

TEST(CostModel, PrefillThresholdIsTheFirstTokenCountWhereTheGpuWins) {
  const CostModel m(reference_calibration());
  const int64_t bytes = 1'770'000;
  const int64_t n = m.prefill_gpu_min_tokens(bytes);
  // GPU: 2.909 us + 1.77e6 / 55e9 (32.18 us) + 0.59 us = 35.68 us; the CPU needs 1.77e6 * t / 2e12,
  // which passes 35.68 us above t = 40.3: the threshold is 41 tokens.
  EXPECT_EQ(n, 41);
  const double gpu = m.copy_seconds(bytes) + m.gpu_expert_seconds(bytes, n);
  EXPECT_LT(gpu, m.cpu_expert_seconds(bytes, n));
  EXPECT_GE(gpu, m.cpu_expert_seconds(bytes, n - 1));
}

TEST(CostModel, NoGpuNeverCopies) {
  Calibration c = reference_calibration();
  c.machine.gpu_name.clear();
  c.h2d_pinned_bw = c.h2d_pageable_bw = c.gpu_device_bw = 0;
  c.expert_copy_bytes = 0;
  c.expert_copy_seconds = 0;
  const CostModel m(c);
  EXPECT_FALSE(m.copy_miss_instead_of_cpu(1'000'000, 1, 1.0, 0.0));
  EXPECT_EQ(m.prefill_gpu_min_tokens(1'000'000), std::numeric_limits<int64_t>::max());
  EXPECT_TRUE(std::isinf(m.copy_seconds(1)));
}

TEST(Calibration, JsonRoundTrip) {
  const Calibration c = reference_calibration();
  const Calibration back = calibration_from_json(calibration_to_json(c));
  EXPECT_EQ(back.machine.cpu_model, c.machine.cpu_model);
  EXPECT_EQ(back.machine.threads, c.machine.threads);
  EXPECT_EQ(back.machine.gpu_name, c.machine.gpu_name);
  EXPECT_EQ(back.date, c.date);
  EXPECT_DOUBLE_EQ(back.cpu_read_bw, c.cpu_read_bw);
  EXPECT_DOUBLE_EQ(back.cpu_read_bw_1thread, c.cpu_read_bw_1thread);
  EXPECT_DOUBLE_EQ(back.cpu_gemm_bytes_tokens, c.cpu_gemm_bytes_tokens);
  EXPECT_DOUBLE_EQ(back.h2d_pinned_bw, c.h2d_pinned_bw);
  EXPECT_DOUBLE_EQ(back.h2d_pageable_bw, c.h2d_pageable_bw);
  EXPECT_EQ(back.expert_copy_bytes, c.expert_copy_bytes);
  EXPECT_DOUBLE_EQ(back.expert_copy_seconds, c.expert_copy_seconds);
  EXPECT_DOUBLE_EQ(back.gpu_device_bw, c.gpu_device_bw);
}

TEST(Calibration, RejectsBadFields) {
  const nlohmann::json good = nlohmann::json::parse(calibration_to_json(reference_calibration()));
  auto with = [&](const char* key, const nlohmann::json& value) {
    nlohmann::json j = good;
    j[key] = value;
    return j.dump();
  };
  auto without = [&](const char* key) {
    nlohmann::json j = good;
    j.erase(key);
    return j.dump();
  };
  EXPECT_THROW(calibration_from_json("{not json"), Error);
  EXPECT_THROW(calibration_from_json("[1,2]"), Error);
  EXPECT_THROW(calibration_from_json(with("version", 99)), Error);
  EXPECT_THROW(calibration_from_json(with("cpu_read_bytes_per_s", -1.0)), Error);
  EXPECT_THROW(calibration_from_json(with("cpu_read_bytes_per_s", 0.0)), Error);
  EXPECT_THROW(calibration_from_json(with("cpu_read_bytes_per_s", "fast")), Error);
  EXPECT_THROW(calibration_from_json(with("threads", 0)), Error);
  EXPECT_THROW(calibration_from_json(with("h2d_pinned_bytes_per_s", 0.0)), Error);  // GPU named
  EXPECT_THROW(calibration_from_json(without("cpu_model")), Error);
  EXPECT_THROW(calibration_from_json(without("expert_copy_seconds")), Error);
  try {
    calibration_from_json(without("cpu_gemm_bytes_tokens_per_s"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cpu_gemm_bytes_tokens_per_s"), std::string::npos);
  }
}

class CalibrationFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("moerun_calib_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path() const { return (dir_ / "sub" / "calibration.json").string(); }
  std::filesystem::path dir_;
};

TEST_F(CalibrationFile, SavedFileLoadsOnTheSameMachine) {
  const Calibration c = reference_calibration();
  save_calibration(c, path());  // creates the folder
  const CalibrationLoad load = load_calibration(path(), c.machine);
  ASSERT_TRUE(load.calibration.has_value()) << load.problem;
  EXPECT_TRUE(load.problem.empty());
  EXPECT_DOUBLE_EQ(load.calibration->cpu_read_bw, c.cpu_read_bw);
}

TEST_F(CalibrationFile, MissingCorruptAndStaleFilesAreReportedAndIgnored) {
  const Calibration c = reference_calibration();
  CalibrationLoad load = load_calibration(path(), c.machine);
  EXPECT_FALSE(load.calibration);
  EXPECT_NE(load.problem.find("no calibration"), std::string::npos);

  save_calibration(c, path());
  MachineIdentity other = c.machine;
  other.threads = 8;
  load = load_calibration(path(), other);
  EXPECT_FALSE(load.calibration);
  EXPECT_NE(load.problem.find("stale"), std::string::npos) << load.problem;
  other = c.machine;
  other.gpu_name = "";
  EXPECT_FALSE(load_calibration(path(), other).calibration);

  std::ofstream(path(), std::ios::trunc) << "{\"version\": 1, \"date\": ";
  load = load_calibration(path(), c.machine);
  EXPECT_FALSE(load.calibration);
  EXPECT_NE(load.problem.find("corrupt"), std::string::npos) << load.problem;
}

TEST(CostModel, RefusesACalibrationWithoutCpuConstants) {
  Calibration c = reference_calibration();
  c.cpu_gemm_bytes_tokens = 0;
  EXPECT_THROW(CostModel{c}, Error);
}

}  // namespace
}  // namespace moerun
