// Wrapping route handlers so that every failure becomes a JSON error in OpenAI's shape.
#pragma once

#include <exception>
#include <utility>

#include <httplib.h>

#include "server/api_error.h"

namespace moerun::server {

// Sends `e` as the response: its status and JSON body.
inline void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status();
  res.set_content(dump_json(e.body()), "application/json");
}

// A handler that runs `f(req, res)` and turns ApiError and other exceptions into error responses.
template <typename F>
httplib::Server::Handler api_handler(F f) {
  return [f = std::move(f)](const httplib::Request& req, httplib::Response& res) {
    try {
      f(req, res);
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, "server_error", e.what()));
    }
  };
}

}  // namespace moerun::server
