#include "server/request_fields.h"

#include <cmath>
#include <random>

#include <fmt/format.h>

#include "server/api_error.h"
#include "tokenizer/utf8.h"

namespace moerun::server {
namespace {

const ojson* field(const ojson& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

uint64_t random_seed() {
  static thread_local std::mt19937_64 gen{std::random_device{}()};
  return gen();
}

}  // namespace

ojson parse_json_object(std::string_view body, const RequestLimits& limits) {
  if (body.size() > limits.max_body_bytes) {
    throw ApiError(413, "invalid_request_error",
                   fmt::format("the request body has {} bytes; the limit is {}", body.size(),
                               limits.max_body_bytes));
  }
  if (!is_valid_utf8(body)) throw bad_request("the request body is not valid UTF-8");
  ojson j;
  try {
    j = ojson::parse(body);
  } catch (const nlohmann::json::exception& e) {
    throw bad_request(fmt::format("the request body is not valid JSON: {}", e.what()));
  }
  if (!j.is_object()) throw bad_request("the request body must be a JSON object");
  return j;
}

std::optional<double> number_field(const ojson& j, const char* key, double min, double max) {
  const ojson* f = field(j, key);
  if (!f) return std::nullopt;
  if (!f->is_number()) throw bad_request(fmt::format("'{}' must be a number", key), key);
  const double v = f->get<double>();
  if (!std::isfinite(v) || v < min || v > max) {
    throw bad_request(fmt::format("'{}' must be in [{}, {}] (got {})", key, min, max, v), key);
  }
  return v;
}

std::optional<int64_t> integer_field(const ojson& j, const char* key, int64_t min, int64_t max) {
  const ojson* f = field(j, key);
  if (!f) return std::nullopt;
  if (!f->is_number_integer()) {
    throw bad_request(fmt::format("'{}' must be an integer", key), key);
  }
  int64_t v = 0;
  if (f->is_number_unsigned()) {
    const uint64_t u = f->get<uint64_t>();
    if (u > static_cast<uint64_t>(max)) {
      throw bad_request(fmt::format("'{}' must be in [{}, {}] (got {})", key, min, max, u), key);
    }
    v = static_cast<int64_t>(u);
  } else {
    v = f->get<int64_t>();
  }
  if (v < min || v > max) {
    throw bad_request(fmt::format("'{}' must be in [{}, {}] (got {})", key, min, max, v), key);
  }
  return v;
}

std::optional<bool> bool_field(const ojson& j, const char* key) {
  const ojson* f = field(j, key);
  if (!f) return std::nullopt;
  if (!f->is_boolean()) throw bad_request(fmt::format("'{}' must be true or false", key), key);
  return f->get<bool>();
}

std::optional<std::string> string_field(const ojson& j, const char* key) {
  const ojson* f = field(j, key);
  if (!f) return std::nullopt;
  if (!f->is_string()) throw bad_request(fmt::format("'{}' must be a string", key), key);
  return f->get<std::string>();
}

GenerationFields parse_generation_fields(const ojson& j, const RequestLimits& limits) {
  GenerationFields g;
  SamplingParams& s = g.sampling;
  if (auto v = number_field(j, "temperature", 0, 2)) s.temperature = static_cast<float>(*v);
  if (auto v = number_field(j, "top_p", 0, 1)) {
    if (*v <= 0) throw bad_request("'top_p' must be in (0, 1]", "top_p");
    s.top_p = static_cast<float>(*v);
  }
  if (auto v = integer_field(j, "top_k", 0, 1 << 30)) s.top_k = static_cast<int32_t>(*v);
  if (auto v = number_field(j, "min_p", 0, 1)) s.min_p = static_cast<float>(*v);
  if (auto v = number_field(j, "presence_penalty", -2, 2)) {
    s.presence_penalty = static_cast<float>(*v);
  }
  if (auto v = number_field(j, "frequency_penalty", -2, 2)) {
    s.frequency_penalty = static_cast<float>(*v);
  }
  if (auto v = number_field(j, "repetition_penalty", 0.01, 100)) {
    s.repetition_penalty = static_cast<float>(*v);
  }
  if (const ojson* seed = field(j, "seed")) {
    if (!seed->is_number_integer()) throw bad_request("'seed' must be an integer", "seed");
    // Negative seeds (allowed by OpenAI) wrap around to 64-bit values.
    s.seed = seed->is_number_unsigned() ? seed->get<uint64_t>()
                                        : static_cast<uint64_t>(seed->get<int64_t>());
  } else {
    s.seed = random_seed();
  }
  g.max_tokens = integer_field(j, "max_completion_tokens", 1, int64_t{1} << 40);
  if (!g.max_tokens) g.max_tokens = integer_field(j, "max_tokens", 1, int64_t{1} << 40);
  if (const ojson* stop = field(j, "stop")) {
    if (stop->is_string()) {
      g.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const ojson& item : *stop) {
        if (!item.is_string()) throw bad_request("'stop' must hold only strings", "stop");
        g.stop.push_back(item.get<std::string>());
      }
    } else {
      throw bad_request("'stop' must be a string or an array of strings", "stop");
    }
    if (g.stop.size() > limits.max_stop) {
      throw bad_request(fmt::format("'stop' may hold at most {} strings", limits.max_stop), "stop");
    }
    for (const std::string& x : g.stop) {
      if (x.size() > limits.max_stop_bytes) {
        throw bad_request(
            fmt::format("a stop string may have at most {} bytes", limits.max_stop_bytes), "stop");
      }
    }
  }
  if (auto n = integer_field(j, "n", 1, 1 << 20); n && *n != 1) {
    throw bad_request(
        fmt::format("'n' = {} is not supported: moerun returns one choice per request (n = 1)", *n),
        "n");
  }
  return g;
}

}  // namespace moerun::server
