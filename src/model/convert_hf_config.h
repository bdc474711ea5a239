// Reading a Hugging Face `config.json` (transformers v4 and v5 layouts) into moerun's model
// configs, for the converter.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/qwen3_moe_config.h"
#include "model/qwen3_next_config.h"

namespace moerun {

// The architectures the converter knows.
enum class HfArchitecture { qwen3_next, qwen3_moe };

// What `quantization_config` says (only bitsandbytes 4-bit NF4 is accepted).
struct HfQuantization {
  bool bnb_nf4 = false;                   // quant_method bitsandbytes, load_in_4bit, nf4
  std::vector<std::string> skip_modules;  // llm_int8_skip_modules: modules left unquantised
};

// A parsed config.json.
struct HfModelConfig {
  HfArchitecture arch = HfArchitecture::qwen3_next;
  Qwen3NextConfig next;  // valid when arch == qwen3_next
  Qwen3MoeConfig moe;    // valid when arch == qwen3_moe
  bool tie_word_embeddings = false;
  HfQuantization quantization;
};

// Parses the JSON of a config.json; `origin` names it in messages. Throws Error for unknown
// architectures (named), missing or inconsistent fields, and features the GGUF cannot express.
HfModelConfig parse_hf_config(const nlohmann::json& config, const std::string& origin);

// Reads `<dir>/config.json` and parses it.
HfModelConfig read_hf_config(const std::string& dir);

}  // namespace moerun
