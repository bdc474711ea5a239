// What every HTTP handler reads: the engine, the tokenizer, the model's facts, limits, memory
// providers and the server's own counters.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/memory_report.h"
#include "model/language_model.h"
#include "server/request_fields.h"

namespace moerun {
class Tokenizer;
}

namespace moerun::server {

// HTTP responses counted by status, for /metrics.
class HttpCounters {
 public:
  // The statuses counted one by one; everything else goes to "other".
  static constexpr std::array<int, 11> kStatuses = {200, 400, 401, 404, 405, 413,
                                                    429, 500, 503, 504, 0};
  // Counts one response with `status`.
  void add(int status);
  // Responses with kStatuses[i] (the last entry: any other status).
  uint64_t count(size_t i) const { return counts_[i].load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<uint64_t>, kStatuses.size()> counts_{};
};

// Shared, read-mostly state of the server; lives as long as the HTTP server.
struct ServerContext {
  Engine* engine = nullptr;
  const Tokenizer* tokenizer = nullptr;  // null: only token-id prompts are accepted
  ModelInfo model;
  std::string model_alias;           // the id clients name in "model"
  std::vector<int32_t> end_of_turn;  // ids that end an answer
  RequestLimits limits;
  double request_timeout_seconds = 600;  // default and upper bound of a request's timeout
  int64_t created_unix = 0;              // when the server started (model "created")
  std::vector<const MemoryProvider*> memory;
  HttpCounters http;
  std::atomic<bool> shutting_down{false};
};

// Seconds since the Unix epoch.
int64_t unix_now();

}  // namespace moerun::server
