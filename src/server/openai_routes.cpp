// Routes of the OpenAI-compatible API.
#include <httplib.h>

#include "server/http_server.h"
#include "server/openai_chat.h"
#include "server/openai_completions.h"
#include "server/route_handler.h"

namespace moerun::server {
namespace {

nlohmann::json model_json(const ServerContext& ctx) {
  return {{"id", ctx.model_alias},
          {"object", "model"},
          {"created", ctx.created_unix},
          {"owned_by", "moerun"},
          {"meta",
           {{"architecture", ctx.model.architecture},
            {"name", ctx.model.name},
            {"vocab", ctx.model.vocab},
            {"context_length", ctx.engine->options().context},
            {"n_experts", ctx.model.n_experts},
            {"n_experts_used", ctx.model.n_experts_used}}}};
}

}  // namespace

void add_openai_routes(httplib::Server& server, ServerContext& ctx) {
  auto chat = api_handler([&ctx](const httplib::Request& req, httplib::Response& res) {
    const ojson body = parse_json_object(req.body, ctx.limits);
    ChatRequest r = parse_chat_request(body, ctx);
    auto formatter = make_chat_formatter(ctx, r);
    run_generation(req, res, ctx, std::move(r.engine), r.stream, formatter);
  });
  server.Post("/v1/chat/completions", chat);
  server.Post("/api/v1/chat/completions", chat);
  server.Post("/v1/completions",
              api_handler([&ctx](const httplib::Request& req, httplib::Response& res) {
                const ojson body = parse_json_object(req.body, ctx.limits);
                CompletionRequest r = parse_completion_request(body, ctx);
                auto formatter = make_completion_formatter(ctx, r);
                run_generation(req, res, ctx, std::move(r.engine), r.stream, formatter);
              }));
  server.Get("/v1/models", api_handler([&ctx](const httplib::Request&, httplib::Response& res) {
               const nlohmann::json list = {{"object", "list"},
                                            {"data", nlohmann::json::array({model_json(ctx)})}};
               res.set_content(dump_json(list), "application/json");
             }));
  server.Get(R"(/v1/models/(.+))",
             api_handler([&ctx](const httplib::Request& req, httplib::Response& res) {
               if (req.matches[1] != ctx.model_alias) {
                 throw ApiError(404, "invalid_request_error",
                                "the model '" + std::string(req.matches[1]) + "' does not exist",
                                "model", "model_not_found");
               }
               res.set_content(dump_json(model_json(ctx)), "application/json");
             }));
}

}  // namespace moerun::server
