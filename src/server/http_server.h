// The HTTP server: cpp-httplib with a fixed pool of handler threads, the API key check, JSON error
// bodies for every failure, response counting, and the routes of every endpoint.
#pragma once

#include <memory>
#include <string>

#include "server/server_context.h"

namespace httplib {
class Server;
}

namespace moerun::server {

// Where and how to listen.
struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8000;      // 0: any free port
  std::string api_key;  // empty: no key needed
  int threads = 0;      // handler threads; 0: enough for every sequence and queued request
};

// Serves the endpoints of `ctx` (which must outlive the server).
class HttpServer {
 public:
  HttpServer(ServerContext& ctx, HttpOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the socket; returns the port. Throws Error when the address cannot be bound.
  int bind();
  // Serves until stop() (call bind() first).
  void listen();
  // Stops listen() (thread-safe); handlers in progress finish first.
  void stop();

 private:
  ServerContext& ctx_;
  HttpOptions options_;
  std::unique_ptr<httplib::Server> server_;
};

// Registers /v1/chat/completions, /v1/completions, /v1/models and /api/v1/chat/completions.
void add_openai_routes(httplib::Server& server, ServerContext& ctx);
// Registers /health, /api/v1/generate, /api/v1/expert-stats, /api/v1/memory, /metrics,
// /openapi.json and /docs.
void add_moerun_routes(httplib::Server& server, ServerContext& ctx);

}  // namespace moerun::server
