// The Qwen3 chat format (ChatML with tools and thinking), producing byte for byte what
// transformers' apply_chat_template renders with the Qwen3 tokenizer_config.json template, with the
// template's own markup marked as trusted so that message text can never become control tokens.
#pragma once

#include <optional>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace moerun {

// Switches of apply_chat_template that the Qwen3 template reads.
struct ChatOptions {
  bool add_generation_prompt = true;    // end with "<|im_start|>assistant\n"
  std::optional<bool> enable_thinking;  // only an explicit false changes the output
};

// Renders OpenAI-style `messages` (array of {role, content, tool_calls, reasoning_content}) and
// `tools` (array of tool schemas, or null) as the Qwen3 template does. Parse requests into
// ordered_json so that key order (visible in tool JSON) is kept. A null or missing content is
// rendered as "" (transformers would raise). Throws Error for malformed messages.
MarkedText render_qwen3_chat(const nlohmann::ordered_json& messages,
                             const nlohmann::ordered_json& tools, const ChatOptions& options);

}  // namespace moerun
