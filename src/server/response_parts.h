// Pieces shared by the response formats: ids, usage and timings, token text and bytes for
// log-probabilities.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/engine_request.h"

namespace moerun {
class Tokenizer;
}

namespace moerun::server {

// A random id such as "chatcmpl-3f9a..." (`prefix` then 24 hex digits).
std::string random_id(const char* prefix);
// OpenAI usage: prompt_tokens, completion_tokens, total_tokens.
nlohmann::json usage_json(const RequestUsage& u);
// moerun's timings: queue, prefill and decode milliseconds and speeds.
nlohmann::json timings_json(const RequestUsage& u);
// The raw bytes of token `id` as text (invalid UTF-8 is replaced when the JSON is written).
std::string token_piece(const Tokenizer* tokenizer, int32_t id);
// The same bytes as an array of integers (OpenAI's "bytes").
nlohmann::json token_bytes_json(const Tokenizer* tokenizer, int32_t id);
// The system_fingerprint sent with every response.
inline constexpr const char* kSystemFingerprint = "moerun-0.1.0";

}  // namespace moerun::server
