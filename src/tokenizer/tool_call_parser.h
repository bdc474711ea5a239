// Parser of Qwen3 model output while it streams: `<think>...</think>` becomes reasoning text and
// `<tool_call>\n{"name": ..., "arguments": ...}\n</tool_call>` blocks become OpenAI-style tool
// calls.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace moerun {

// One piece of parsed output, in order.
struct ChatOutputEvent {
  enum Kind { content, reasoning, tool_call, tool_call_error };
  Kind kind;
  std::string text;       // content/reasoning text; for tool_call_error the raw block
  std::string name;       // tool_call: function name
  std::string arguments;  // tool_call: arguments as JSON text (json.dumps form)
  std::string error;      // tool_call_error: what is wrong
};

// Incremental parser; feed decoded text as it arrives (any chunking gives the same events, merged).
class ToolCallParser {
 public:
  // `in_reasoning`: the prompt already opened a <think> block, so output starts inside it.
  explicit ToolCallParser(bool in_reasoning = false) : state_(in_reasoning ? think : normal) {}

  // Parses `text` and appends the events it completes; a possible tag prefix at the end waits.
  void feed(std::string_view text, std::vector<ChatOutputEvent>& events);
  // End of output: flushes held text; an unterminated tool call is parsed as if closed.
  void finish(std::vector<ChatOutputEvent>& events);

 private:
  enum State { normal, think, call };
  void emit_text(ChatOutputEvent::Kind kind, std::string_view s,
                 std::vector<ChatOutputEvent>& events);
  void flush_newlines(ChatOutputEvent::Kind kind, std::vector<ChatOutputEvent>& events);
  void finish_call(std::vector<ChatOutputEvent>& events);

  State state_;
  std::string buf_;            // unparsed input (possible tag prefix)
  std::string call_;           // body of the open tool call
  std::string newlines_;       // held trailing newlines of the current text stream
  bool strip_leading_ = true;  // drop newlines at the start of the current text stream
};

}  // namespace moerun
