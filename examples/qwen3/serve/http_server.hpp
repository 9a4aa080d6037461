// The HTTP side of `qwen3 serve`: OpenAI-compatible routes over a Scheduler, with cpp-httplib.
//
//   POST /v1/chat/completions   POST /v1/completions   GET /v1/models   GET /v1/models/{id}
//   GET /health                 GET /metrics (Prometheus text)
//
// Every /v1 route checks the API key when one is set (401 otherwise). Errors are OpenAI-style JSON
// ({"error": {"message", "type", "param", "code"}}): 400 for a malformed body or field, 401, 404,
// 413 for a body over the limit, 503 with Retry-After when the queue is full or the server is
// stopping. Streams are server-sent events ending in "data: [DONE]"; a client that disconnects
// cancels its request. One access-log line per request goes to stderr.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "openai_api.hpp"
#include "scheduler.hpp"

namespace httplib {
class Server;
}

namespace serve {

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;                         // 0: any free port (see HttpServer::port)
    std::string api_key;                     // empty: no key needed
    std::string model_id = "qwen3";          // the name /v1/models lists and responses carry
    std::size_t max_body_bytes = 8u << 20;
    int http_threads = 32;                   // connections served at once (streams hold one each)
    RequestDefaults defaults;
    bool access_log = true;
};

class HttpServer {
public:
    HttpServer(Scheduler& scheduler, ServerOptions options);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Binds the socket; throws std::runtime_error when it cannot. Then port() is the bound port.
    void bind();
    int port() const { return port_; }
    // Serves until stop() (from another thread). Returns false if the server failed.
    bool serve();
    void stop();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    int port_ = 0;
};

}  // namespace serve
