// Reading general.name for ModelInfo.
#pragma once

#include <string>

namespace moerun {

class GgufFile;

// general.name when present, else the file's path.
std::string model_name(const GgufFile& file);

}  // namespace moerun
