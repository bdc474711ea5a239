// The JSON of moerun's monitoring endpoints: /api/v1/expert-stats and /api/v1/memory.
#pragma once

#include <nlohmann/json.hpp>

#include "engine/memory_report.h"
#include "moe/expert_stats.h"
#include "server/server_context.h"

namespace moerun::server {

// Per-layer hit rate, resident experts, usage counts, prefetch accuracy and bytes moved, with
// totals; {"available": false, ...} with empty layers when the model keeps no statistics.
nlohmann::json expert_stats_json(const ExpertStatsSnapshot* snapshot);

// The memory report of the server: host RSS, the engine's sequence states and every provider.
MemoryReport collect_memory(const ServerContext& ctx);

// {"host": {...}, "vram": {"budget_bytes", "used_bytes", "categories": {...}}}.
nlohmann::json memory_json(const MemoryReport& report);

}  // namespace moerun::server
