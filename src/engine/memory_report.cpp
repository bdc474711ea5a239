#include "engine/memory_report.h"

#include <fstream>
#include <sstream>

namespace moerun {

ProcessMemory read_process_memory(const std::string& pid) {
  ProcessMemory m;
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line)) {
    // Lines such as "VmRSS:	  123456 kB".
    auto field = [&](const char* key, int64_t& out) {
      if (line.rfind(key, 0) != 0) return;
      std::istringstream values(line.substr(std::char_traits<char>::length(key)));
      int64_t kib = 0;
      if (values >> kib) out = kib * 1024;
    };
    field("VmRSS:", m.rss_bytes);
    field("VmHWM:", m.peak_rss_bytes);
  }
  return m;
}

void read_host_memory(MemoryReport& report) {
  const ProcessMemory m = read_process_memory();
  report.host_rss_bytes = m.rss_bytes;
  report.host_peak_rss_bytes = m.peak_rss_bytes;
}

}  // namespace moerun
