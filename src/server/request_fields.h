// Reading request bodies: size and UTF-8 checks, JSON parsing, typed fields with ranges, and the
// sampling and stop fields every generating endpoint shares. Problems become 400 ApiErrors that
// name the field; unknown fields are ignored.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/sampler.h"

namespace moerun::server {

using ojson = nlohmann::ordered_json;

// Limits on what one request may hold.
struct RequestLimits {
  size_t max_body_bytes = size_t{8} << 20;  // larger bodies get 413
  size_t max_messages = 1024;               // chat messages per request
  size_t max_tools = 128;                   // tool definitions per request
  size_t max_stop = 16;                     // stop strings per request
  size_t max_stop_bytes = 512;              // bytes of one stop string
};

// Parses `body` as a JSON object: 413 when too large, 400 for invalid UTF-8, bad JSON or a
// non-object. Key order is kept (tool schemas are shown to the model as given).
ojson parse_json_object(std::string_view body, const RequestLimits& limits);

// Optional fields; a missing or null field gives nullopt, a wrong type or range gives 400.
std::optional<double> number_field(const ojson& j, const char* key, double min, double max);
std::optional<int64_t> integer_field(const ojson& j, const char* key, int64_t min, int64_t max);
std::optional<bool> bool_field(const ojson& j, const char* key);
std::optional<std::string> string_field(const ojson& j, const char* key);

// The generation fields shared by chat, completions and /api/v1/generate.
struct GenerationFields {
  SamplingParams sampling;            // defaults: Qwen3's recommended values
  std::optional<int64_t> max_tokens;  // max_completion_tokens, else max_tokens
  std::vector<std::string> stop;      // "stop": a string or an array of strings
  int32_t n = 1;
};

// Reads temperature, top_p, top_k, min_p, presence/frequency/repetition penalties, seed (random
// when absent), max_tokens / max_completion_tokens, stop and n (only 1 is supported).
GenerationFields parse_generation_fields(const ojson& j, const RequestLimits& limits);

}  // namespace moerun::server
