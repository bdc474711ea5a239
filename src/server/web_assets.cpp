#include "server/web_assets.h"

namespace moerun::server {

const WebAsset* find_web_asset(std::string_view name) {
  for (size_t i = 0; i < kWebAssetCount; ++i) {
    if (name == kWebAssets[i].name) return &kWebAssets[i];
  }
  return nullptr;
}

}  // namespace moerun::server
