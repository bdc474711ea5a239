// GET /openapi.json: an OpenAPI 3 document describing every endpoint of the server.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace moerun::server {

// The document for moerun `version`.
nlohmann::ordered_json openapi_document(const std::string& version);

}  // namespace moerun::server
