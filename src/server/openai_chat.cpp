#include "server/openai_chat.h"

#include <fmt/format.h>

#include "core/error.h"
#include "server/api_error.h"
#include "server/response_parts.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace moerun::server {
namespace {

using json = nlohmann::json;

// Content as a string: a string, null, or an array of {"type": "text", "text": ...} parts.
ojson content_string(const ojson& content, size_t index) {
  if (content.is_null() || content.is_string()) return content;
  if (!content.is_array()) {
    throw bad_request(
        fmt::format("messages[{}].content must be a string or an array of parts", index),
        "messages");
  }
  std::string text;
  for (const ojson& part : content) {
    const bool is_text = part.is_object() && part.value("type", "") == "text" &&
                         part.contains("text") && part["text"].is_string();
    if (!is_text) {
      throw bad_request(fmt::format("messages[{}].content: only text parts "
                                    "({{\"type\": \"text\", \"text\": ...}}) are supported",
                                    index),
                        "messages");
    }
    text += part["text"].get<std::string>();
  }
  return text;
}

}  // namespace

ojson normalize_messages(const ojson& messages, const RequestLimits& limits) {
  if (!messages.is_array() || messages.empty()) {
    throw bad_request("'messages' must be a non-empty array", "messages");
  }
  if (messages.size() > limits.max_messages) {
    throw bad_request(fmt::format("'messages' has {} entries; the limit is {}", messages.size(),
                                  limits.max_messages),
                      "messages");
  }
  ojson out = ojson::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const ojson& m = messages[i];
    if (!m.is_object())
      throw bad_request(fmt::format("messages[{}] is not an object", i), "messages");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      throw bad_request(fmt::format("messages[{}] has no string 'role'", i), "messages");
    }
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";
    if (r != "system" && r != "user" && r != "assistant" && r != "tool") {
      throw bad_request(fmt::format("messages[{}].role '{}' is not one of system, developer, "
                                    "user, assistant, tool",
                                    i, r),
                        "messages");
    }
    ojson n = {{"role", r}, {"content", content_string(m.value("content", ojson()), i)}};
    if (r == "assistant") {
      if (auto rc = m.find("reasoning_content"); rc != m.end() && !rc->is_null()) {
        if (!rc->is_string()) {
          throw bad_request(fmt::format("messages[{}].reasoning_content must be a string", i),
                            "messages");
        }
        n["reasoning_content"] = *rc;
      }
      if (auto tc = m.find("tool_calls"); tc != m.end() && !tc->is_null()) {
        if (!tc->is_array()) {
          throw bad_request(fmt::format("messages[{}].tool_calls must be an array", i), "messages");
        }
        for (const ojson& call : *tc) {
          const ojson* f =
              call.is_object() && call.contains("function") ? &call["function"] : nullptr;
          const bool ok = f && f->is_object() && f->contains("name") && (*f)["name"].is_string() &&
                          f->contains("arguments") &&
                          ((*f)["arguments"].is_string() || (*f)["arguments"].is_object());
          if (!ok) {
            throw bad_request(fmt::format("messages[{}].tool_calls: each call needs "
                                          "function.name (string) and function.arguments "
                                          "(a JSON string)",
                                          i),
                              "messages");
          }
        }
        n["tool_calls"] = *tc;
      }
    }
    out.push_back(std::move(n));
  }
  return out;
}

ChatRequest parse_chat_request(const ojson& body, const ServerContext& ctx) {
  require_served_model(body, ctx);
  if (!ctx.tokenizer) throw bad_request("this model has no tokenizer, so it cannot chat");
  const ojson messages = normalize_messages(body.value("messages", ojson()), ctx.limits);
  ojson tools = nullptr;
  if (auto t = body.find("tools"); t != body.end() && !t->is_null()) {
    if (!t->is_array()) throw bad_request("'tools' must be an array", "tools");
    if (t->size() > ctx.limits.max_tools) {
      throw bad_request(fmt::format("'tools' may hold at most {} tools", ctx.limits.max_tools),
                        "tools");
    }
    for (const ojson& tool : *t) {
      const bool ok = tool.is_object() && tool.value("type", "function") == "function" &&
                      tool.contains("function") && tool["function"].is_object() &&
                      tool["function"].contains("name") && tool["function"]["name"].is_string();
      if (!ok) {
        throw bad_request(
            "each tool must be {\"type\": \"function\", \"function\": {\"name\": ...}}", "tools");
      }
    }
    if (!t->empty()) tools = *t;
  }
  if (auto choice = body.find("tool_choice"); choice != body.end() && !choice->is_null()) {
    if (choice->is_string() && *choice == "none") {
      tools = nullptr;  // the model is not told about the tools
    } else if (!(choice->is_string() && *choice == "auto")) {
      throw bad_request(
          "tool_choice: only \"auto\" and \"none\" are supported (moerun does not constrain "
          "decoding to force a tool call)",
          "tool_choice");
    }
  }
  ChatOptions options;
  if (auto v = bool_field(body, "enable_thinking")) options.enable_thinking = *v;
  if (auto kw = body.find("chat_template_kwargs"); kw != body.end() && kw->is_object()) {
    if (auto v = bool_field(*kw, "enable_thinking")) options.enable_thinking = *v;
  }
  MarkedText text;
  try {
    text = render_qwen3_chat(messages, tools, options);
  } catch (const Error& e) {
    throw bad_request(e.what(), "messages");
  }
  const GenerationFields fields = parse_generation_fields(body, ctx.limits);
  ChatRequest r;
  r.engine = make_engine_request(ctx.tokenizer->encode(text), fields, body, ctx);
  r.engine.logprobs = bool_field(body, "logprobs").value_or(false);
  if (auto top = integer_field(body, "top_logprobs", 0, kMaxTopLogprobs)) {
    if (!r.engine.logprobs) {
      throw bad_request("'top_logprobs' needs 'logprobs': true", "top_logprobs");
    }
    r.engine.top_logprobs = static_cast<int32_t>(*top);
  }
  r.stream = bool_field(body, "stream").value_or(false);
  if (auto so = body.find("stream_options"); so != body.end() && so->is_object()) {
    r.include_usage = bool_field(*so, "include_usage").value_or(false);
  }
  return r;
}

void add_chat_events(const std::vector<ChatOutputEvent>& events, ChatAnswer& answer) {
  for (const ChatOutputEvent& e : events) {
    switch (e.kind) {
      case ChatOutputEvent::content:
      case ChatOutputEvent::tool_call_error:
        answer.content += e.text;
        break;
      case ChatOutputEvent::reasoning:
        answer.reasoning += e.text;
        break;
      case ChatOutputEvent::tool_call:
        answer.tool_calls.push_back({{"id", random_id("call_")},
                                     {"type", "function"},
                                     {"function", {{"name", e.name}, {"arguments", e.arguments}}}});
        break;
    }
  }
}

json chat_message_json(const ChatAnswer& answer) {
  json m = {{"role", "assistant"}, {"content", answer.content}};
  if (!answer.reasoning.empty()) m["reasoning_content"] = answer.reasoning;
  if (!answer.tool_calls.empty()) {
    m["tool_calls"] = answer.tool_calls;
    if (answer.content.empty()) m["content"] = nullptr;
  }
  return m;
}

std::string chat_finish_reason(FinishReason finish, bool made_tool_calls) {
  if (finish == FinishReason::length) return "length";
  return made_tool_calls ? "tool_calls" : "stop";
}

namespace {

// Chat completion objects (collected) or chunks (streamed) for one request.
class ChatFormatter : public ResponseFormatter {
 public:
  ChatFormatter(const ServerContext& ctx, const ChatRequest& r)
      : tokenizer_(ctx.tokenizer),
        model_(ctx.model_alias),
        id_(random_id("chatcmpl-")),
        created_(unix_now()),
        logprobs_(r.engine.logprobs),
        include_usage_(r.include_usage) {}

  void stream(const EngineEvent& e, std::string& out) override {
    if (!started_) {
      out += sse_data(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
      started_ = true;
    }
    events_.clear();
    parser_.feed(e.text, events_);
    if (e.kind == EngineEvent::done) parser_.finish(events_);
    json delta = json::object();
    std::string content, reasoning;
    for (const ChatOutputEvent& ev : events_) {
      if (ev.kind == ChatOutputEvent::content || ev.kind == ChatOutputEvent::tool_call_error) {
        content += ev.text;
      } else if (ev.kind == ChatOutputEvent::reasoning) {
        reasoning += ev.text;
      }
    }
    if (!content.empty()) delta["content"] = content;
    if (!reasoning.empty()) delta["reasoning_content"] = reasoning;
    json logprobs = nullptr;
    if (e.kind == EngineEvent::token && logprobs_) {
      logprobs = {{"content", json::array({logprob_entry(e)})}, {"refusal", nullptr}};
    }
    if (!delta.empty() || !logprobs.is_null()) out += sse_data(chunk(delta, logprobs));
    for (const ChatOutputEvent& ev : events_) {
      if (ev.kind != ChatOutputEvent::tool_call) continue;
      json call = {{"index", n_calls_++},
                   {"id", random_id("call_")},
                   {"type", "function"},
                   {"function", {{"name", ev.name}, {"arguments", ev.arguments}}}};
      out += sse_data(chunk({{"tool_calls", json::array({call})}}, nullptr));
    }
    if (e.kind != EngineEvent::done) return;
    json last = chunk(json::object(), nullptr);
    last["choices"][0]["finish_reason"] = chat_finish_reason(e.finish, n_calls_ > 0);
    out += sse_data(last);
    if (include_usage_) {
      json u = base("chat.completion.chunk");
      u["choices"] = json::array();
      u["usage"] = usage_json(e.usage);
      u["timings"] = timings_json(e.usage);
      out += sse_data(u);
    }
    out += "data: [DONE]\n\n";
  }

  void collect(const EngineEvent& e) override {
    events_.clear();
    parser_.feed(e.text, events_);
    if (e.kind == EngineEvent::done) {
      parser_.finish(events_);
      finish_ = e.finish;
      usage_ = e.usage;
    }
    add_chat_events(events_, answer_);
    if (e.kind == EngineEvent::token && logprobs_) content_logprobs_.push_back(logprob_entry(e));
  }

  std::string body() override {
    json choice = {{"index", 0},
                   {"message", chat_message_json(answer_)},
                   {"logprobs", nullptr},
                   {"finish_reason", chat_finish_reason(finish_, !answer_.tool_calls.empty())}};
    if (logprobs_) choice["logprobs"] = {{"content", content_logprobs_}, {"refusal", nullptr}};
    json b = base("chat.completion");
    b["choices"] = json::array({choice});
    b["usage"] = usage_json(usage_);
    b["timings"] = timings_json(usage_);
    return dump_json(b);
  }

 private:
  json base(const char* object) const {
    return {{"id", id_},
            {"object", object},
            {"created", created_},
            {"model", model_},
            {"system_fingerprint", kSystemFingerprint}};
  }

  json chunk(json delta, json logprobs) const {
    json c = base("chat.completion.chunk");
    c["choices"] = json::array({{{"index", 0},
                                 {"delta", std::move(delta)},
                                 {"logprobs", std::move(logprobs)},
                                 {"finish_reason", nullptr}}});
    if (include_usage_) c["usage"] = nullptr;
    return c;
  }

  json logprob_entry(const EngineEvent& e) const {
    json top = json::array();
    for (const TokenLogprob& t : e.top) {
      top.push_back({{"token", token_piece(tokenizer_, t.id)},
                     {"logprob", t.logprob},
                     {"bytes", token_bytes_json(tokenizer_, t.id)}});
    }
    return {{"token", token_piece(tokenizer_, e.sampled.id)},
            {"logprob", e.sampled.logprob},
            {"bytes", token_bytes_json(tokenizer_, e.sampled.id)},
            {"top_logprobs", std::move(top)}};
  }

  const Tokenizer* tokenizer_;
  std::string model_;
  std::string id_;
  int64_t created_;
  bool logprobs_;
  bool include_usage_;
  ToolCallParser parser_;
  std::vector<ChatOutputEvent> events_;
  bool started_ = false;
  int n_calls_ = 0;
  ChatAnswer answer_;
  json content_logprobs_ = json::array();
  FinishReason finish_ = FinishReason::stop;
  RequestUsage usage_;
};

}  // namespace

std::shared_ptr<ResponseFormatter> make_chat_formatter(const ServerContext& ctx,
                                                       const ChatRequest& request) {
  return std::make_shared<ChatFormatter>(ctx, request);
}

}  // namespace moerun::server
