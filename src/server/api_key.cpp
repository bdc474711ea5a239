#include "server/api_key.h"

#include <algorithm>
#include <cctype>

namespace moerun::server {

bool keys_equal(std::string_view given, std::string_view expected) {
  // Every byte of the longer string is looked at once, whatever the contents.
  const size_t n = std::max(given.size(), expected.size());
  volatile unsigned diff = given.size() == expected.size() ? 0u : 1u;
  for (size_t i = 0; i < n; ++i) {
    const auto a = static_cast<unsigned char>(i < given.size() ? given[i] : 0);
    const auto b = static_cast<unsigned char>(i < expected.size() ? expected[i] : 0);
    diff = diff | static_cast<unsigned>(a ^ b);
  }
  return diff == 0 && !expected.empty();
}

std::string bearer_token(std::string_view authorization) {
  constexpr std::string_view scheme = "bearer ";
  if (authorization.size() < scheme.size()) return {};
  for (size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != scheme[i]) return {};
  }
  std::string_view key = authorization.substr(scheme.size());
  while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
  while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.remove_suffix(1);
  return std::string(key);
}

}  // namespace moerun::server
