// Running one generating request over HTTP: submit to the engine, then either stream server-sent
// events or wait and send one JSON body; rejections, timeouts and failures become API errors, and
// a client that disconnects cancels its request.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine_request.h"
#include "server/api_error.h"
#include "server/server_context.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace moerun::server {

// Turns one request's engine events into an endpoint's response format.
class ResponseFormatter {
 public:
  virtual ~ResponseFormatter() = default;
  // Streaming: appends the server-sent events `event` produces to `out` (for the done event: the
  // last chunks and "data: [DONE]"); never called for failed, timed out or cancelled endings.
  virtual void stream(const EngineEvent& event, std::string& out) = 0;
  // Not streaming: records `event` (all of them, in order).
  virtual void collect(const EngineEvent& event) = 0;
  // Not streaming, after the done event: the JSON body.
  virtual std::string body() = 0;
};

// The engine request for `prompt` with the generation fields: max_tokens defaults to the rest of
// the context, stop tokens are the model's end-of-turn ids, the timeout is the body's "timeout"
// (seconds, an extension) or the server's. Throws 400 (code context_length_exceeded) when the
// prompt does not fit the context.
EngineRequest make_engine_request(std::vector<int32_t> prompt, const GenerationFields& fields,
                                  const ojson& body, const ServerContext& ctx);

// Throws 404 (model_not_found) unless the body's "model" names the served model; 400 when absent.
void require_served_model(const ojson& body, const ServerContext& ctx);

// One server-sent event carrying `j`: "data: JSON\n\n".
std::string sse_data(const nlohmann::json& j);

// Submits `request` and answers through `res` (see the file comment). Throws ApiError for
// rejections before anything is sent: 503 with Retry-After when the queue is full or the server
// shuts down, 400 for an invalid request.
void run_generation(const httplib::Request& req, httplib::Response& res, ServerContext& ctx,
                    EngineRequest request, bool stream,
                    std::shared_ptr<ResponseFormatter> formatter);

// The API error for a request that ended by timeout, failure or cancellation (null otherwise).
std::unique_ptr<ApiError> error_for_ending(const EngineEvent& done, double timeout_seconds);

}  // namespace moerun::server
