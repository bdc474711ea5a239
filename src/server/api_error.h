// Errors of the HTTP API in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with
// the HTTP status that goes with them.
#pragma once

#include <exception>
#include <string>

#include <nlohmann/json.hpp>

namespace moerun::server {

// An error to send to the client; thrown by request parsing and caught by the HTTP layer.
class ApiError : public std::exception {
 public:
  // `type`: OpenAI's error type (e.g. "invalid_request_error"); `param`: the offending field or "".
  ApiError(int status, std::string type, std::string message, std::string param = {},
           std::string code = {});
  const char* what() const noexcept override { return message_.c_str(); }
  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }
  // The JSON body: {"error": {...}}; param and code are null when empty.
  nlohmann::json body() const;

 private:
  int status_;
  std::string type_, message_, param_, code_;
};

// 400 invalid_request_error about field `param`.
ApiError bad_request(std::string message, std::string param = {});

// JSON text that never throws on invalid UTF-8 (replaced by U+FFFD).
std::string dump_json(const nlohmann::json& j);
// The same for ordered JSON.
std::string dump_json(const nlohmann::ordered_json& j);

}  // namespace moerun::server
