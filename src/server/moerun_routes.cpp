// moerun's own routes: generation with timings, expert and memory statistics, metrics, health,
// the OpenAPI document and its interactive page.
#include <httplib.h>

#include "moe/expert_stats.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/openai_completions.h"
#include "server/openapi.h"
#include "server/route_handler.h"
#include "server/stats_json.h"
#include "server/web_assets.h"

namespace moerun::server {

void add_moerun_routes(httplib::Server& server, ServerContext& ctx) {
  server.Get("/health", [&ctx](const httplib::Request&, httplib::Response& res) {
    const bool stopping = ctx.shutting_down.load();
    res.status = stopping ? 503 : 200;
    res.set_content(stopping ? R"({"status":"shutting_down"})" : R"({"status":"ok"})",
                    "application/json");
  });
  server.Post("/api/v1/generate",
              api_handler([&ctx](const httplib::Request& req, httplib::Response& res) {
                const ojson body = parse_json_object(req.body, ctx.limits);
                CompletionRequest r = parse_generate_request(body, ctx);
                auto formatter = make_generate_formatter(ctx, r);
                run_generation(req, res, ctx, std::move(r.engine), r.stream, formatter);
              }));
  server.Get("/api/v1/expert-stats",
             api_handler([&ctx](const httplib::Request&, httplib::Response& res) {
               ExpertStats* stats = ctx.engine->expert_stats();
               if (!stats) {
                 res.set_content(dump_json(expert_stats_json(nullptr)), "application/json");
                 return;
               }
               const ExpertStatsSnapshot snap = stats->snapshot();
               res.set_content(dump_json(expert_stats_json(&snap)), "application/json");
             }));
  server.Get("/api/v1/memory", api_handler([&ctx](const httplib::Request&, httplib::Response& res) {
               res.set_content(dump_json(memory_json(collect_memory(ctx))), "application/json");
             }));
  server.Get("/metrics", api_handler([&ctx](const httplib::Request&, httplib::Response& res) {
               res.set_content(prometheus_metrics(ctx), "text/plain; version=0.0.4; charset=utf-8");
             }));
  const std::string openapi = dump_json(openapi_document("0.1.0"));
  server.Get("/openapi.json", [openapi](const httplib::Request&, httplib::Response& res) {
    res.set_content(openapi, "application/json");
  });
  auto asset = [](const std::string& name, httplib::Response& res) {
    const WebAsset* a = find_web_asset(name);
    if (!a) {
      send_error(res, ApiError(404, "invalid_request_error", "no such file: /docs/" + name));
      return;
    }
    res.set_header("Cache-Control", "max-age=3600");
    res.set_content(a->data, a->size, std::string(a->content_type) + "; charset=utf-8");
  };
  server.Get("/docs/", [asset](const httplib::Request&, httplib::Response& res) {
    asset("index.html", res);
  });
  server.Get("/docs", [asset](const httplib::Request&, httplib::Response& res) {
    asset("index.html", res);
  });
  server.Get(
      R"(/docs/([A-Za-z0-9._-]+))",
      [asset](const httplib::Request& req, httplib::Response& res) { asset(req.matches[1], res); });
}

}  // namespace moerun::server
