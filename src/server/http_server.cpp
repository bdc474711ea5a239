#include "server/http_server.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"
#include "server/api_key.h"
#include "server/route_handler.h"

namespace moerun::server {
namespace {

// Paths anyone may read without the API key.
bool is_public(const std::string& path) {
  return path == "/health" || path == "/openapi.json" || path == "/docs" ||
         path.rfind("/docs/", 0) == 0;
}

// The error for a status that httplib produced itself (no route, body too large, ...).
ApiError error_for_status(const httplib::Request& req, int status) {
  switch (status) {
    case 404:
      return ApiError(404, "invalid_request_error",
                      fmt::format("no route {} {}", req.method, req.path), {}, "unknown_url");
    case 413:
      return ApiError(413, "invalid_request_error", "the request body is too large", {},
                      "request_too_large");
    case 400:
      return bad_request("the request could not be read");
    default:
      return ApiError(status, status >= 500 ? "server_error" : "invalid_request_error",
                      fmt::format("HTTP error {}", status));
  }
}

}  // namespace

HttpServer::HttpServer(ServerContext& ctx, HttpOptions options)
    : ctx_(ctx), options_(std::move(options)), server_(std::make_unique<httplib::Server>()) {
  httplib::Server& s = *server_;
  const EngineOptions& eo = ctx.engine->options();
  // Every running or queued request holds a thread, plus room for idle keep-alive connections
  // and monitoring requests.
  const int threads = options_.threads > 0 ? options_.threads
                                           : static_cast<int>(eo.max_sequences + eo.max_queue + 32);
  s.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.set_payload_max_length(ctx.limits.max_body_bytes);
  s.set_keep_alive_timeout(5);
  s.set_read_timeout(30, 0);
  s.set_write_timeout(30, 0);
  const std::string key = options_.api_key;
  s.set_pre_routing_handler([key](const httplib::Request& req, httplib::Response& res) {
    if (key.empty() || is_public(req.path)) return httplib::Server::HandlerResponse::Unhandled;
    std::string given = bearer_token(req.get_header_value("Authorization"));
    if (given.empty()) given = req.get_header_value("X-Api-Key");
    if (keys_equal(given, key)) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, ApiError(401, "invalid_request_error",
                             given.empty() ? "an API key is required: send "
                                             "\"Authorization: Bearer KEY\""
                                           : "the API key is not valid",
                             {}, "invalid_api_key"));
    res.set_header("WWW-Authenticate", "Bearer");
    return httplib::Server::HandlerResponse::Handled;
  });
  s.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty() || res.status < 400)
          return httplib::Server::HandlerResponse::Unhandled;
        send_error(res, error_for_status(req, res.status));
        return httplib::Server::HandlerResponse::Handled;
      }));
  s.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          send_error(res, ApiError(500, "server_error", e.what()));
        } catch (...) {
          send_error(res, ApiError(500, "server_error", "unknown error"));
        }
      });
  s.set_logger(
      [&ctx](const httplib::Request&, const httplib::Response& res) { ctx.http.add(res.status); });
  add_openai_routes(s, ctx);
  add_moerun_routes(s, ctx);
}

HttpServer::~HttpServer() {
  stop();
}

int HttpServer::bind() {
  const int port = options_.port == 0
                       ? server_->bind_to_any_port(options_.host)
                       : (server_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port < 0) {
    fail("cannot listen on {}:{} (is the address right and the port free?)", options_.host,
         options_.port);
  }
  return port;
}

void HttpServer::listen() {
  server_->listen_after_bind();
}

void HttpServer::stop() {
  if (server_) server_->stop();
}

}  // namespace moerun::server
