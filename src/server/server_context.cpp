#include "server/server_context.h"

#include <chrono>

namespace moerun::server {

void HttpCounters::add(int status) {
  size_t i = 0;
  while (i + 1 < kStatuses.size() && kStatuses[i] != status) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace moerun::server
