// The API key check: the key from "Authorization: Bearer KEY" (or "X-Api-Key"), compared in
// constant time so that response timing does not reveal how much of a guess was right.
#pragma once

#include <string>
#include <string_view>

namespace moerun::server {

// True when `given` equals `expected`; the time taken depends only on their lengths.
bool keys_equal(std::string_view given, std::string_view expected);

// The key in an Authorization header value ("Bearer KEY", scheme case-insensitive), or "".
std::string bearer_token(std::string_view authorization);

}  // namespace moerun::server
