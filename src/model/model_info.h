// Reading general.name for ModelInfo.
#pragma once

#include <string>

#include "moe/expert_profile.h"

namespace moerun {

class GgufFile;
struct ModelInfo;

// general.name when present, else the file's path.
std::string model_name(const GgufFile& file);

// The identity an expert profile records and is checked against: architecture, layer, expert and
// top-k counts, and a 64-bit FNV-1a hash (16 hex digits) of every tensor's name and shape, so that
// other quantisations of the same model share profiles and other models do not.
ProfileModel profile_model_of(const GgufFile& file, const ModelInfo& info);

}  // namespace moerun
