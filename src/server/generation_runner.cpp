#include "server/generation_runner.h"

#include <chrono>
#include <vector>

#include <fmt/format.h>
#include <httplib.h>

#include "server/api_error.h"
#include "server/connection_probe.h"

namespace moerun::server {
namespace {

using namespace std::chrono_literals;

// How often a waiting handler checks its client's connection.
constexpr auto kPollInterval = 100ms;

bool failed_ending(const EngineEvent& e) {
  return e.kind == EngineEvent::done &&
         (e.finish == FinishReason::timeout || e.finish == FinishReason::error ||
          e.finish == FinishReason::cancelled);
}

}  // namespace

EngineRequest make_engine_request(std::vector<int32_t> prompt, const GenerationFields& fields,
                                  const ojson& body, const ServerContext& ctx) {
  const int64_t context = ctx.engine->options().context;
  const auto n = static_cast<int64_t>(prompt.size());
  if (n == 0) throw bad_request("the prompt is empty", "prompt");
  if (n >= context) {
    throw ApiError(400, "invalid_request_error",
                   fmt::format("the prompt has {} tokens, but this server's context is {} tokens "
                               "(prompt and answer together); shorten the prompt",
                               n, context),
                   "messages", "context_length_exceeded");
  }
  EngineRequest r;
  r.prompt = std::move(prompt);
  r.sampling = fields.sampling;
  r.max_tokens = fields.max_tokens.value_or(context - n);
  r.stop = fields.stop;
  r.stop_tokens = ctx.end_of_turn;
  r.timeout_seconds = number_field(body, "timeout", 0.001, ctx.request_timeout_seconds)
                          .value_or(ctx.request_timeout_seconds);
  return r;
}

void require_served_model(const ojson& body, const ServerContext& ctx) {
  const std::optional<std::string> model = string_field(body, "model");
  if (!model) throw bad_request("'model' is required", "model");
  if (*model != ctx.model_alias) {
    throw ApiError(404, "invalid_request_error",
                   fmt::format("the model '{}' does not exist; this server serves '{}'", *model,
                               ctx.model_alias),
                   "model", "model_not_found");
  }
}

std::string sse_data(const nlohmann::json& j) {
  return "data: " + dump_json(j) + "\n\n";
}

std::unique_ptr<ApiError> error_for_ending(const EngineEvent& done, double timeout_seconds) {
  switch (done.finish) {
    case FinishReason::timeout:
      return std::make_unique<ApiError>(
          504, "timeout",
          fmt::format("the request did not finish within its timeout of {} s", timeout_seconds));
    case FinishReason::error:
      return std::make_unique<ApiError>(500, "server_error", done.error);
    case FinishReason::cancelled:
      return std::make_unique<ApiError>(503, "server_shutting_down",
                                        "the request was cancelled: the server is shutting down");
    default:
      return nullptr;
  }
}

void run_generation(const httplib::Request& req, httplib::Response& res, ServerContext& ctx,
                    EngineRequest request, bool stream,
                    std::shared_ptr<ResponseFormatter> formatter) {
  const double timeout = request.timeout_seconds;
  Submission s = ctx.engine->submit(std::move(request));
  if (s.status == SubmitStatus::invalid) throw bad_request(s.error);
  if (s.status != SubmitStatus::accepted) {
    res.set_header("Retry-After", "1");
    if (s.status == SubmitStatus::queue_full) {
      throw ApiError(503, "server_overloaded",
                     fmt::format("the server is busy: {} requests are already waiting; retry later",
                                 ctx.engine->options().max_queue));
    }
    throw ApiError(503, "server_shutting_down", "the server is shutting down");
  }
  std::shared_ptr<RequestHandle> handle = s.handle;
  auto probe = std::make_shared<ConnectionProbe>(req.remote_addr, req.remote_port, req.local_port);

  if (!stream) {
    std::vector<EngineEvent> events;
    while (!handle->finished()) {
      events.clear();
      handle->wait_events(events, kPollInterval);
      for (const EngineEvent& e : events) {
        if (failed_ending(e)) throw *error_for_ending(e, timeout);
        formatter->collect(e);
      }
      if (!handle->finished() && probe->peer_closed()) {
        handle->cancel();  // the client is gone: free the sequence now
        std::vector<EngineEvent> rest;
        while (!handle->finished()) handle->wait_events(rest, kPollInterval);
        res.status = 499;  // nobody reads it
        return;
      }
    }
    res.set_content(formatter->body(), "application/json");
    return;
  }

  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [handle, probe, formatter, timeout](size_t, httplib::DataSink& sink) {
        std::vector<EngineEvent> events;
        std::string out;
        while (!handle->finished()) {
          events.clear();
          if (!handle->wait_events(events, kPollInterval)) {
            if (probe->peer_closed()) break;
            continue;
          }
          out.clear();
          for (const EngineEvent& e : events) {
            if (failed_ending(e)) {
              out += sse_data(error_for_ending(e, timeout)->body());
              out += "data: [DONE]\n\n";
            } else {
              formatter->stream(e, out);
            }
          }
          if (!out.empty() && !sink.write(out.data(), out.size())) break;
        }
        if (!handle->finished()) {
          handle->cancel();  // the client went away
          return false;
        }
        sink.done();
        return true;
      },
      [handle](bool success) {
        if (!success) handle->cancel();
      });
}

}  // namespace moerun::server
