// The embedded default model: the `tiny` synthetic Qwen3-Next, generated on first use in the cache.
#pragma once

#include <string>

namespace moerun::cli {

// Path of the model to use for `-m ARG`: ARG itself, or for "" / "default" / "tiny" the cached
// tiny synthetic model, written first if it does not exist yet.
std::string resolve_model_path(const std::string& arg);

}  // namespace moerun::cli
