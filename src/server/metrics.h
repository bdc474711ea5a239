// GET /metrics: the server's counters in the Prometheus text exposition format (version 0.0.4).
#pragma once

#include <string>

#include "server/server_context.h"

namespace moerun::server {

// Requests, tokens in and out, tokens/s, queue depth, active sequences, HTTP statuses, expert
// hit rate and bytes, host RSS and VRAM, each with HELP and TYPE lines.
std::string prometheus_metrics(const ServerContext& ctx);

}  // namespace moerun::server
