#include "server/response_parts.h"

#include <random>

#include <fmt/format.h>

#include "tokenizer/tokenizer.h"

namespace moerun::server {

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 gen{std::random_device{}()};
  return fmt::format("{}{:016x}{:08x}", prefix, gen(), static_cast<uint32_t>(gen()));
}

nlohmann::json usage_json(const RequestUsage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

nlohmann::json timings_json(const RequestUsage& u) {
  const double decode_rate = u.decode_seconds > 0 && u.completion_tokens > 1
                                 ? static_cast<double>(u.completion_tokens - 1) / u.decode_seconds
                                 : 0.0;
  const double prefill_rate =
      u.prefill_seconds > 0 ? static_cast<double>(u.prompt_tokens) / u.prefill_seconds : 0.0;
  return {{"queue_ms", u.queue_seconds * 1e3},
          {"prefill_ms", u.prefill_seconds * 1e3},
          {"decode_ms", u.decode_seconds * 1e3},
          {"prefill_tokens_per_second", prefill_rate},
          {"decode_tokens_per_second", decode_rate}};
}

std::string token_piece(const Tokenizer* tokenizer, int32_t id) {
  if (!tokenizer) return fmt::format("<{}>", id);
  return std::string(tokenizer->token_bytes(id));
}

nlohmann::json token_bytes_json(const Tokenizer* tokenizer, int32_t id) {
  nlohmann::json bytes = nlohmann::json::array();
  for (char c : token_piece(tokenizer, id)) bytes.push_back(static_cast<uint8_t>(c));
  return bytes;
}

}  // namespace moerun::server
