// POST /v1/chat/completions: OpenAI chat requests (messages, tools, sampling) turned into engine
// requests through the Qwen3 chat template, and the model's output turned back into chat
// completion objects or chunks, with reasoning and tool calls parsed out.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/engine_request.h"
#include "server/generation_runner.h"
#include "server/request_fields.h"
#include "server/server_context.h"
#include "tokenizer/tool_call_parser.h"

namespace moerun::server {

// A validated chat request.
struct ChatRequest {
  EngineRequest engine;  // prompt = the rendered conversation's tokens
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// Checks the model name (404 when unknown), the messages (roles, content, tool calls), tools,
// tool_choice and the generation fields; renders and tokenizes the conversation. Throws ApiError.
ChatRequest parse_chat_request(const ojson& body, const ServerContext& ctx);

// The messages with content parts joined into strings and "developer" turned into "system", in
// the form the chat template reads; throws ApiError naming the bad message.
ojson normalize_messages(const ojson& messages, const RequestLimits& limits);

// The assistant message of a finished answer, from the raw model text: content, reasoning and
// tool calls (each with a fresh id). `finish` becomes "tool_calls" when calls were made.
struct ChatAnswer {
  std::string content;
  std::string reasoning;
  nlohmann::json tool_calls = nlohmann::json::array();
};
// Feeds parser events into an answer (tool-call errors are kept as content text).
void add_chat_events(const std::vector<ChatOutputEvent>& events, ChatAnswer& answer);
// The OpenAI message object of `answer`.
nlohmann::json chat_message_json(const ChatAnswer& answer);
// "stop", "length" or "tool_calls".
std::string chat_finish_reason(FinishReason finish, bool made_tool_calls);

// The formatter of chat completion responses (objects or chunks) for `request`.
std::shared_ptr<ResponseFormatter> make_chat_formatter(const ServerContext& ctx,
                                                       const ChatRequest& request);

}  // namespace moerun::server
