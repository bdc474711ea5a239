// Where the process's memory goes, for /api/v1/memory and /metrics: host figures measured here,
// plus figures added by providers (the model file, the expert store, later the GPU accountant).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moerun {

// One named use of memory, in bytes.
struct MemoryFigure {
  std::string name;
  int64_t bytes = 0;
};

// A picture of memory use at one moment. VRAM fields stay 0 and `vram_categories` empty on the
// CPU path; a GPU provider fills them.
struct MemoryReport {
  int64_t host_rss_bytes = 0;       // resident set of the process
  int64_t host_peak_rss_bytes = 0;  // its high-water mark
  int64_t model_file_bytes = 0;     // size of the mapped model file
  int64_t expert_store_bytes = 0;   // routed-expert weights in host memory
  int64_t pinned_bytes = 0;         // page-locked host memory
  int64_t sequence_state_bytes = 0;
  int64_t vram_budget_bytes = 0;  // the user's budget (0: no GPU)
  int64_t vram_used_bytes = 0;
  std::vector<MemoryFigure> vram_categories;  // use of the budget by category
  std::vector<MemoryFigure> host_categories;  // other named host uses
};

// Something that knows part of the process's memory and adds it to a report (thread-safe).
class MemoryProvider {
 public:
  virtual ~MemoryProvider() = default;
  // Adds this provider's figures to `report`.
  virtual void add_to(MemoryReport& report) const = 0;
};

// Fills the host RSS and its peak from /proc/self (0 where unavailable).
void read_host_memory(MemoryReport& report);

// Resident and peak resident bytes of process `pid` from /proc/PID/status (0 when unreadable).
struct ProcessMemory {
  int64_t rss_bytes = 0;
  int64_t peak_rss_bytes = 0;
};
ProcessMemory read_process_memory(const std::string& pid = "self");

}  // namespace moerun
