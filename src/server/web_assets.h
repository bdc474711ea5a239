// Static files of the web pages (/docs: swagger-ui-dist from npm and moerun's index page),
// compiled into the binary so the server needs no network and no files at run time.
#pragma once

#include <cstddef>
#include <string_view>

namespace moerun::server {

// One embedded file.
struct WebAsset {
  const char* name;          // path under its page, e.g. "swagger-ui.css"
  const char* content_type;  // e.g. "text/css" (UTF-8 text)
  const char* data;
  size_t size;
};

// The embedded files (generated at build time).
extern const WebAsset kWebAssets[];
extern const size_t kWebAssetCount;

// The asset called `name`, or null.
const WebAsset* find_web_asset(std::string_view name);

}  // namespace moerun::server
