#include "moe/cost_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/paths.h"

namespace moerun {
namespace {

using nlohmann::json;

// The field `key` of `j` as a finite number >= 0; throws Error naming the field.
double rate_field(const json& j, const char* key) {
  if (!j.contains(key)) fail("calibration: missing field '{}'", key);
  const json& v = j.at(key);
  if (!v.is_number()) fail("calibration: field '{}' is not a number", key);
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < 0) fail("calibration: field '{}' = {} is not >= 0", key, d);
  return d;
}

// The field `key` of `j` as a string; throws Error naming the field.
std::string string_field(const json& j, const char* key) {
  if (!j.contains(key) || !j.at(key).is_string()) {
    fail("calibration: field '{}' is missing or not a string", key);
  }
  return j.at(key).get<std::string>();
}

std::string describe(const MachineIdentity& m) {
  return fmt::format("CPU '{}' with {} threads, GPU '{}'", m.cpu_model, m.threads,
                     m.gpu_name.empty() ? "none" : m.gpu_name);
}

}  // namespace

std::string default_calibration_path() {
  return cache_dir() + "/calibration.json";
}

std::string calibration_to_json(const Calibration& c) {
  json j;
  j["version"] = Calibration::kVersion;
  j["date"] = c.date;
  j["cpu_model"] = c.machine.cpu_model;
  j["threads"] = c.machine.threads;
  j["gpu_name"] = c.machine.gpu_name;
  j["cpu_read_bytes_per_s"] = c.cpu_read_bw;
  j["cpu_read_bytes_per_s_1thread"] = c.cpu_read_bw_1thread;
  j["cpu_gemm_bytes_tokens_per_s"] = c.cpu_gemm_bytes_tokens;
  j["h2d_pinned_bytes_per_s"] = c.h2d_pinned_bw;
  j["h2d_pageable_bytes_per_s"] = c.h2d_pageable_bw;
  j["expert_copy_bytes"] = c.expert_copy_bytes;
  j["expert_copy_seconds"] = c.expert_copy_seconds;
  j["gpu_device_bytes_per_s"] = c.gpu_device_bw;
  return j.dump(2) + "\n";
}

Calibration calibration_from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("calibration: not valid JSON ({})", e.what());
  }
  if (!j.is_object()) fail("calibration: expected a JSON object");
  if (!j.contains("version") || !j.at("version").is_number_integer()) {
    fail("calibration: missing integer field 'version'");
  }
  if (j.at("version").get<int64_t>() != Calibration::kVersion) {
    fail("calibration: version {} is not the current version {}", j.at("version").dump(),
         Calibration::kVersion);
  }
  Calibration c;
  c.date = string_field(j, "date");
  c.machine.cpu_model = string_field(j, "cpu_model");
  c.machine.gpu_name = string_field(j, "gpu_name");
  if (!j.contains("threads") || !j.at("threads").is_number_integer() ||
      j.at("threads").get<int64_t>() < 1 || j.at("threads").get<int64_t>() > 65536) {
    fail("calibration: field 'threads' is missing or not a thread count");
  }
  c.machine.threads = j.at("threads").get<int>();
  c.cpu_read_bw = rate_field(j, "cpu_read_bytes_per_s");
  c.cpu_read_bw_1thread = rate_field(j, "cpu_read_bytes_per_s_1thread");
  c.cpu_gemm_bytes_tokens = rate_field(j, "cpu_gemm_bytes_tokens_per_s");
  c.h2d_pinned_bw = rate_field(j, "h2d_pinned_bytes_per_s");
  c.h2d_pageable_bw = rate_field(j, "h2d_pageable_bytes_per_s");
  c.expert_copy_bytes = static_cast<int64_t>(rate_field(j, "expert_copy_bytes"));
  c.expert_copy_seconds = rate_field(j, "expert_copy_seconds");
  c.gpu_device_bw = rate_field(j, "gpu_device_bytes_per_s");
  if (c.cpu_read_bw <= 0) fail("calibration: cpu_read_bytes_per_s must be > 0");
  if (c.cpu_gemm_bytes_tokens <= 0) fail("calibration: cpu_gemm_bytes_tokens_per_s must be > 0");
  if (!c.machine.gpu_name.empty() && c.h2d_pinned_bw <= 0) {
    fail("calibration: a GPU ('{}') without a pinned copy bandwidth", c.machine.gpu_name);
  }
  if (c.expert_copy_seconds > 0 && c.expert_copy_bytes <= 0) {
    fail("calibration: expert_copy_seconds without expert_copy_bytes");
  }
  return c;
}

void save_calibration(const Calibration& c, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec) fail("cannot create folder {}: {}", parent.string(), ec.message());
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << calibration_to_json(c);
    if (!out.good()) fail("cannot write calibration file {}", tmp);
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail("cannot write calibration file {}", path);
  }
}

CalibrationLoad load_calibration(const std::string& path, const MachineIdentity& current) {
  CalibrationLoad result;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    result.problem = fmt::format("no calibration at {} (run `moerun check`)", path);
    return result;
  }
  std::stringstream text;
  text << in.rdbuf();
  Calibration c;
  try {
    c = calibration_from_json(text.str());
  } catch (const Error& e) {
    result.problem = fmt::format("{} is corrupt and ignored: {}", path, e.what());
    return result;
  }
  if (c.machine.cpu_model != current.cpu_model || c.machine.threads != current.threads ||
      c.machine.gpu_name != current.gpu_name) {
    result.problem =
        fmt::format("{} is stale and ignored: measured with {} on {}, this run uses {}", path,
                    describe(c.machine), c.date, describe(current));
    return result;
  }
  result.calibration = c;
  return result;
}

Roofline compute_roofline(const RooflineInputs& in) {
  if (in.cpu_bw <= 0) fail("roofline: the CPU bandwidth is not known");
  if (in.hit_fraction < 0 || in.hit_fraction > 1) {
    fail("roofline: hit fraction {} is outside [0, 1]", in.hit_fraction);
  }
  Roofline r;
  const double miss_bytes = (1.0 - in.hit_fraction) * in.expert_bytes;
  if (in.dense_on_gpu) {
    if (in.hbm_bw <= 0) fail("roofline: the GPU memory bandwidth is not known");
    r.t_gpu = (in.dense_bytes + in.hit_fraction * in.expert_bytes) / in.hbm_bw;
    r.t_miss = miss_bytes / (in.cpu_bw + in.pcie_bw);
    r.t_miss_no_copy = miss_bytes / in.cpu_bw;
  } else {
    // Everything is read by the CPU: nothing is cached and nothing is copied.
    r.t_miss = (in.dense_bytes + in.expert_bytes) / in.cpu_bw;
    r.t_miss_no_copy = r.t_miss;
  }
  r.t_floor = std::max(r.t_gpu, r.t_miss);
  r.t_floor_no_copy = std::max(r.t_gpu, r.t_miss_no_copy);
  r.tok_s = r.t_floor > 0 ? 1.0 / r.t_floor : 0.0;
  r.tok_s_no_copy = r.t_floor_no_copy > 0 ? 1.0 / r.t_floor_no_copy : 0.0;
  return r;
}

CostModel::CostModel(const Calibration& c) : c_(c) {
  if (c.cpu_read_bw <= 0 || c.cpu_gemm_bytes_tokens <= 0) {
    fail("cost model: the calibration lacks the CPU bandwidth or GEMM rate");
  }
  if (c.has_gpu() && c.expert_copy_bytes > 0 && c.expert_copy_seconds > 0) {
    copy_latency_ = std::max(
        0.0, c.expert_copy_seconds - static_cast<double>(c.expert_copy_bytes) / c.h2d_pinned_bw);
  }
}

double CostModel::cpu_expert_seconds(int64_t bytes, int64_t tokens) const {
  const double b = static_cast<double>(bytes);
  const double stream = b / c_.cpu_read_bw;
  const double compute = b * static_cast<double>(tokens) / c_.cpu_gemm_bytes_tokens;
  return std::max(stream, compute);
}

double CostModel::copy_seconds(int64_t bytes) const {
  if (!c_.has_gpu()) return std::numeric_limits<double>::infinity();
  return copy_latency_ + static_cast<double>(bytes) / c_.h2d_pinned_bw;
}

double CostModel::gpu_expert_seconds(int64_t bytes, int64_t /*tokens*/) const {
  if (c_.gpu_device_bw <= 0) return 0.0;
  return static_cast<double>(bytes) / c_.gpu_device_bw;
}

bool CostModel::copy_miss_instead_of_cpu(int64_t expert_bytes, int64_t tokens,
                                         double cpu_pending_seconds,
                                         double copy_pending_seconds) const {
  if (!c_.has_gpu()) return false;
  const double on_cpu = cpu_pending_seconds + cpu_expert_seconds(expert_bytes, tokens);
  const double on_gpu =
      copy_pending_seconds + copy_seconds(expert_bytes) + gpu_expert_seconds(expert_bytes, tokens);
  return on_gpu < on_cpu;
}

int64_t CostModel::prefill_gpu_min_tokens(int64_t expert_bytes) const {
  constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
  if (!c_.has_gpu() || expert_bytes <= 0) return kNever;
  // GPU time does not grow with tokens here; CPU time is max(stream, bytes * t / gemm rate).
  const double gpu = copy_seconds(expert_bytes) + gpu_expert_seconds(expert_bytes, 1);
  if (gpu < cpu_expert_seconds(expert_bytes, 1)) return 1;
  const double t = gpu * c_.cpu_gemm_bytes_tokens / static_cast<double>(expert_bytes);
  if (t >= 9.0e18) return kNever;
  int64_t n = std::max<int64_t>(1, static_cast<int64_t>(std::floor(t)));
  while (!(gpu < cpu_expert_seconds(expert_bytes, n))) ++n;  // at most a step or two
  return n;
}

}  // namespace moerun
