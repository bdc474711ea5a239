// ToolCallParser: a three-state scanner (text, reasoning, tool call) with held-back tag prefixes.
// Newlines around blocks are dropped as the Qwen3 template inserts them: the reasoning is
// strip('\n')-ed, text after </think> is lstrip('\n')-ed, and newlines before <tool_call> vanish.
#include "tokenizer/tool_call_parser.h"

#include <nlohmann/json.hpp>

#include "tokenizer/python_json.h"

namespace moerun {
namespace {

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
constexpr std::string_view kCallOpen = "<tool_call>";
constexpr std::string_view kCallClose = "</tool_call>";

// Length of the longest suffix of `s` that is a proper prefix of `tag`.
size_t partial_tag_suffix(std::string_view s, std::string_view tag) {
  for (size_t k = std::min(s.size(), tag.size() - 1); k > 0; --k)
    if (s.substr(s.size() - k) == tag.substr(0, k)) return k;
  return 0;
}

}  // namespace

void ToolCallParser::emit_text(ChatOutputEvent::Kind kind, std::string_view s,
                               std::vector<ChatOutputEvent>& events) {
  for (char c : s) {
    if (c == '\n') {
      if (!strip_leading_) newlines_ += c;
      continue;
    }
    strip_leading_ = false;
    std::string add = std::move(newlines_);
    newlines_.clear();
    add += c;
    if (!events.empty() && events.back().kind == kind)
      events.back().text += add;
    else
      events.push_back(ChatOutputEvent{kind, add, {}, {}, {}});
  }
}

void ToolCallParser::flush_newlines(ChatOutputEvent::Kind kind,
                                    std::vector<ChatOutputEvent>& events) {
  if (newlines_.empty()) return;
  if (!events.empty() && events.back().kind == kind)
    events.back().text += newlines_;
  else
    events.push_back(ChatOutputEvent{kind, newlines_, {}, {}, {}});
  newlines_.clear();
}

void ToolCallParser::finish_call(std::vector<ChatOutputEvent>& events) {
  std::string raw = std::move(call_);
  call_.clear();
  ChatOutputEvent ev{ChatOutputEvent::tool_call_error, raw, {}, {}, {}};
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(raw, nullptr, false);
  if (j.is_discarded()) {
    ev.error = "tool call is not valid JSON";
  } else if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) {
    ev.error = "tool call JSON has no string \"name\"";
  } else {
    ev.kind = ChatOutputEvent::tool_call;
    ev.text.clear();
    ev.name = j["name"].get<std::string>();
    auto args = j.find("arguments");
    if (args == j.end() || args->is_null())
      ev.arguments = "{}";
    else if (args->is_string())
      ev.arguments = args->get<std::string>();
    else
      ev.arguments = python_json_dumps(*args);
  }
  events.push_back(std::move(ev));
}

void ToolCallParser::feed(std::string_view text, std::vector<ChatOutputEvent>& events) {
  buf_.append(text);
  std::string_view rest = buf_;
  while (!rest.empty()) {
    if (state_ == call) {
      size_t close = rest.find(kCallClose);
      if (close == std::string_view::npos) {
        size_t keep = partial_tag_suffix(rest, kCallClose);
        call_.append(rest.substr(0, rest.size() - keep));
        rest = rest.substr(rest.size() - keep);
        break;
      }
      call_.append(rest.substr(0, close));
      rest = rest.substr(close + kCallClose.size());
      finish_call(events);
      state_ = normal;
      strip_leading_ = true;
      continue;
    }
    const auto kind = state_ == think ? ChatOutputEvent::reasoning : ChatOutputEvent::content;
    // The next tag that changes state.
    size_t pos = std::string_view::npos;
    std::string_view tag;
    auto consider = [&](std::string_view t) {
      size_t p = rest.find(t);
      if (p < pos) {
        pos = p;
        tag = t;
      }
    };
    if (state_ == think) {
      consider(kThinkClose);
    } else {
      consider(kThinkOpen);
      consider(kCallOpen);
    }
    if (pos == std::string_view::npos) {
      size_t keep = state_ == think ? partial_tag_suffix(rest, kThinkClose)
                                    : std::max(partial_tag_suffix(rest, kThinkOpen),
                                               partial_tag_suffix(rest, kCallOpen));
      emit_text(kind, rest.substr(0, rest.size() - keep), events);
      rest = rest.substr(rest.size() - keep);
      break;
    }
    emit_text(kind, rest.substr(0, pos), events);
    rest = rest.substr(pos + tag.size());
    newlines_.clear();  // newlines before a tag belong to the markup
    strip_leading_ = true;
    state_ = tag == kCallOpen ? call : tag == kThinkOpen ? think : normal;
  }
  buf_ = std::string(rest);
}

void ToolCallParser::finish(std::vector<ChatOutputEvent>& events) {
  std::string rest = std::move(buf_);
  buf_.clear();
  if (state_ == call) {
    call_ += rest;
    finish_call(events);
  } else {
    emit_text(state_ == think ? ChatOutputEvent::reasoning : ChatOutputEvent::content, rest,
              events);
    if (state_ == normal) flush_newlines(ChatOutputEvent::content, events);
  }
  newlines_.clear();
  state_ = normal;
  strip_leading_ = true;
}

}  // namespace moerun
