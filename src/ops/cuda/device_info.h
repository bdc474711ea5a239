// The CUDA devices of this machine and their host-to-device copy speed (for `moerun check`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moerun {

// One GPU as the runtime reports it.
struct GpuInfo {
  int index = 0;
  std::string name;
  int compute_major = 0;
  int compute_minor = 0;
  int multiprocessors = 0;
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;
};

// All visible CUDA devices; empty when there is no driver or no device (never throws).
std::vector<GpuInfo> list_gpus();

// Host-to-device copy bandwidth in bytes per second (best of `repeats`) on device `gpu`, from
// pinned or pageable host memory, for `bytes` copied in pieces of `chunk` bytes (0: one copy).
double measure_h2d_bandwidth(int gpu, uint64_t bytes, bool pinned, int repeats = 5,
                             uint64_t chunk = 0);

// Host-to-device copy bandwidth (best of `repeats`) from host memory that is not the runtime's
// own, e.g. a mapped model file, page-locked in place for the measurement: `bytes` from `host`
// in copies of `chunk` bytes (an expert's size). 0 when the range cannot be page-locked.
double measure_h2d_in_place(int gpu, const void* host, uint64_t bytes, uint64_t chunk,
                            int repeats = 3);
// Device memory bandwidth in bytes per second (best of `repeats`) on device `gpu`: a
// device-to-device copy of `bytes`, counting the bytes read and written.
double measure_device_bandwidth(int gpu, uint64_t bytes, int repeats = 5);

}  // namespace moerun
