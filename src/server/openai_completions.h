// POST /v1/completions (OpenAI's legacy text completions: a prompt string or token ids) and
// moerun's POST /api/v1/generate (prompt and sampling in; text, tokens, usage and timings out).
#pragma once

#include <memory>

#include "server/generation_runner.h"
#include "server/request_fields.h"
#include "server/server_context.h"

namespace moerun::server {

// A validated completion or generate request.
struct CompletionRequest {
  EngineRequest engine;
  bool stream = false;
  bool include_usage = false;
};

// The prompt of `body["prompt"]`: a string (encoded as plain text), an array of token ids, or an
// array holding one of those. Throws ApiError (400) otherwise or when an id is out of range.
std::vector<int32_t> parse_prompt(const ojson& body, const ServerContext& ctx);

// /v1/completions: model check, prompt, generation fields, logprobs (0..20 alternatives).
CompletionRequest parse_completion_request(const ojson& body, const ServerContext& ctx);
// The formatter of text_completion objects or chunks.
std::shared_ptr<ResponseFormatter> make_completion_formatter(const ServerContext& ctx,
                                                             const CompletionRequest& request);

// /api/v1/generate: prompt (string or ids), generation fields, "stream", "logprobs" (bool) and
// "top_logprobs"; no model field needed.
CompletionRequest parse_generate_request(const ojson& body, const ServerContext& ctx);
// The formatter of /api/v1/generate: {text, tokens, finish_reason, usage, timings}, or streamed
// events {"text", "token"} then the same object with "done": true.
std::shared_ptr<ResponseFormatter> make_generate_formatter(const ServerContext& ctx,
                                                           const CompletionRequest& request);

}  // namespace moerun::server
