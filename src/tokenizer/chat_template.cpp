// The Qwen3 chat template, step by step as tokenizer_config.json's Jinja source does it.
#include "tokenizer/chat_template.h"

#include <string>
#include <string_view>

#include "core/error.h"
#include "tokenizer/python_json.h"

namespace moerun {
namespace {

using ojson = nlohmann::ordered_json;

// Accumulates rendered text, recording which ranges are the template's own markup.
class MarkedBuilder {
 public:
  // Appends template markup (added-token text here becomes added tokens).
  void markup(std::string_view s) {
    if (s.empty()) return;
    size_t b = out_.text.size();
    out_.text.append(s);
    if (!out_.trusted.empty() && out_.trusted.back().end == b)
      out_.trusted.back().end = out_.text.size();
    else
      out_.trusted.push_back({b, out_.text.size()});
  }
  // Appends text that came from the request (always encoded as plain text).
  void data(std::string_view s) { out_.text.append(s); }
  MarkedText take() { return std::move(out_); }

 private:
  MarkedText out_;
};

// Python's str.strip/lstrip/rstrip with a set of characters.
std::string_view lstrip(std::string_view s, std::string_view chars) {
  size_t b = s.find_first_not_of(chars);
  return b == std::string_view::npos ? std::string_view() : s.substr(b);
}
std::string_view rstrip(std::string_view s, std::string_view chars) {
  size_t e = s.find_last_not_of(chars);
  return e == std::string_view::npos ? std::string_view() : s.substr(0, e + 1);
}
std::string_view strip(std::string_view s, std::string_view chars) {
  return lstrip(rstrip(s, chars), chars);
}

bool starts_with(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}
bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

// A string field of a message: "" when missing or null; Error for other types.
std::string_view text_field(const ojson& m, const char* key, size_t index) {
  auto it = m.find(key);
  if (it == m.end() || it->is_null()) return {};
  if (!it->is_string()) fail("chat message {}: '{}' must be a string or null", index, key);
  return it->get_ref<const std::string&>();
}

std::string_view role_of(const ojson& messages, size_t i) {
  return text_field(messages[i], "role", i);
}

void render_tool_calls(const ojson& calls, std::string_view content, size_t index,
                       MarkedBuilder& b) {
  if (!calls.is_array()) fail("chat message {}: 'tool_calls' must be an array", index);
  for (size_t j = 0; j < calls.size(); ++j) {
    const ojson* call = &calls[j];
    if (!call->is_object()) fail("chat message {}: tool call {} is not an object", index, j);
    if ((j == 0 && !content.empty()) || j > 0) b.markup("\n");
    if (auto f = call->find("function"); f != call->end() && f->is_object() && !f->empty())
      call = &*f;
    b.markup("<tool_call>\n{\"name\": \"");
    b.data(text_field(*call, "name", index));
    b.markup("\", \"arguments\": ");
    auto args = call->find("arguments");
    if (args == call->end()) fail("chat message {}: tool call {} has no 'arguments'", index, j);
    if (args->is_string())
      b.data(args->get_ref<const std::string&>());
    else
      b.data(python_json_dumps(*args));
    b.markup("}\n</tool_call>");
  }
}

}  // namespace

MarkedText render_qwen3_chat(const ojson& messages, const ojson& tools,
                             const ChatOptions& options) {
  if (!messages.is_array() || messages.empty()) fail("chat: 'messages' must be a non-empty array");
  for (size_t i = 0; i < messages.size(); ++i) {
    if (!messages[i].is_object()) fail("chat message {} is not an object", i);
    if (!messages[i].contains("role") || !messages[i]["role"].is_string())
      fail("chat message {} has no string 'role'", i);
  }
  if (!tools.is_null() && !tools.is_array()) fail("chat: 'tools' must be an array or null");
  const size_t n = messages.size();
  MarkedBuilder b;

  // System turn, with the tool list when there are tools.
  const bool first_is_system = role_of(messages, 0) == "system";
  if (tools.is_array() && !tools.empty()) {
    b.markup("<|im_start|>system\n");
    if (first_is_system) {
      b.data(text_field(messages[0], "content", 0));
      b.markup("\n\n");
    }
    b.markup(
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are "
        "provided with function signatures within <tools></tools> XML tags:\n<tools>");
    for (const auto& tool : tools) {
      b.markup("\n");
      b.data(python_json_dumps(tool));
    }
    b.markup(
        "\n</tools>\n\nFor each function call, return a json object with function name and "
        "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
        "<function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n");
  } else if (first_is_system) {
    b.markup("<|im_start|>system\n");
    b.data(text_field(messages[0], "content", 0));
    b.markup("<|im_end|>\n");
  }

  // The last user query that is not a tool response.
  size_t last_query_index = n - 1;
  for (size_t k = n; k-- > 0;) {
    std::string_view c = text_field(messages[k], "content", k);
    if (role_of(messages, k) == "user" &&
        !(starts_with(c, "<tool_response>") && ends_with(c, "</tool_response>"))) {
      last_query_index = k;
      break;
    }
  }

  for (size_t i = 0; i < n; ++i) {
    const ojson& m = messages[i];
    std::string_view role = role_of(messages, i);
    std::string_view content = text_field(m, "content", i);
    if (role == "user" || (role == "system" && i != 0)) {
      b.markup("<|im_start|>");
      b.markup(role);  // one of two fixed words
      b.markup("\n");
      b.data(content);
      b.markup("<|im_end|>\n");
    } else if (role == "assistant") {
      std::string_view reasoning;
      auto rc = m.find("reasoning_content");
      if (rc != m.end() && !rc->is_null()) {
        reasoning = text_field(m, "reasoning_content", i);
      } else if (size_t close = content.find("</think>"); close != std::string_view::npos) {
        std::string_view full = content;
        content = lstrip(full.substr(full.rfind("</think>") + 8), "\n");
        std::string_view before = rstrip(full.substr(0, close), "\n");
        size_t open = before.rfind("<think>");
        reasoning = lstrip(open == std::string_view::npos ? before : before.substr(open + 7), "\n");
      }
      b.markup("<|im_start|>assistant\n");
      if (i > last_query_index && (i + 1 == n || !reasoning.empty())) {
        b.markup("<think>\n");
        b.data(strip(reasoning, "\n"));
        b.markup("\n</think>\n\n");
        b.data(lstrip(content, "\n"));
      } else {
        b.data(content);
      }
      if (auto tc = m.find("tool_calls");
          tc != m.end() && !tc->is_null() && !(tc->is_array() && tc->empty()))
        render_tool_calls(*tc, content, i, b);
      b.markup("<|im_end|>\n");
    } else if (role == "tool") {
      if (i == 0 || role_of(messages, i - 1) != "tool") b.markup("<|im_start|>user");
      b.markup("\n<tool_response>\n");
      b.data(content);
      b.markup("\n</tool_response>");
      if (i + 1 == n || role_of(messages, i + 1) != "tool") b.markup("<|im_end|>\n");
    }
  }
  if (options.add_generation_prompt) {
    b.markup("<|im_start|>assistant\n");
    if (options.enable_thinking.has_value() && !*options.enable_thinking)
      b.markup("<think>\n\n</think>\n\n");
  }
  return b.take();
}

}  // namespace moerun
