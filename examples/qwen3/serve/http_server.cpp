// The HTTP side of `qwen3 serve` (see http_server.hpp).
#include "http_server.hpp"

#include <httplib.h>

#include <cstdio>
#include <ctime>
#include <mutex>
#include <stdexcept>

#include <qwen3/error.hpp>

namespace serve {

namespace json = qwen3::json;

namespace {

std::string utc_now() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

void send_error(httplib::Response& res, const ApiError& e) {
    res.status = e.status;
    if (e.status == 503) res.set_header("Retry-After", "1");
    res.set_content(error_body(e), "application/json");
}

std::string sse(const json::Value& v) { return "data: " + json::dump(v) + "\n\n"; }

// The error a finished request reports instead of a reply, if any.
std::optional<ApiError> result_error(const qwen3::EngineResult& r) {
    if (r.generation.reason == qwen3::StopReason::failed) {
        // the request's own grammar (no token fits it, or it passed the server's GrammarLimits)
        if (r.grammar_error) return ApiError(400, "invalid_request_error", r.error);
        const bool full = r.error.find("KV pool is full") != std::string::npos;
        return ApiError(full ? 503 : 500, "server_error", r.error.empty() ? "generation failed" : r.error);
    }
    if (r.generation.reason == qwen3::StopReason::cancelled)
        return ApiError(503, "server_error", "the request was cancelled: the server is shutting down");
    return std::nullopt;
}

}  // namespace

struct HttpServer::Impl {
    Scheduler& scheduler;
    ServerOptions options;
    httplib::Server server;
    long long created = std::time(nullptr);
    std::mutex log_mutex;
    // tokens/s gauge of /metrics: the engine's decode tokens since the previous scrape
    std::mutex rate_mutex;
    std::chrono::steady_clock::time_point rate_time = std::chrono::steady_clock::now();
    long long rate_tokens = 0;

    Impl(Scheduler& s, ServerOptions o) : scheduler(s), options(std::move(o)) {}

    void log(const std::string& line) {
        if (!options.access_log) return;
        std::lock_guard<std::mutex> lock(log_mutex);
        std::fprintf(stderr, "%s %s\n", utc_now().c_str(), line.c_str());
    }

    void routes();
    void generate(const httplib::Request& req, httplib::Response& res, bool chat);
    void stream(httplib::Response& res, std::shared_ptr<Job> job, std::shared_ptr<ParsedRequest> request, std::string id, long long created);
    void finished_log(const std::string& id, const Job& job);
    // Waits until the job has finished, at most `limit`; whether it has.
    static bool wait_up_to(Job& job, std::chrono::milliseconds limit);
    // The response to a finished request (its status in `status`): the reply, or the error.
    std::string reply_body(const ParsedRequest& request, Job& job, const std::string& id, long long created, int& status);
    std::string metrics_text();
    json::Value model_json() const {
        json::Value m(json::Object{});
        m.set("id", json::Value(options.model_id));
        m.set("object", json::Value("model"));
        m.set("created", json::Value::integer(created));
        m.set("owned_by", json::Value("qwen3.hpp"));
        return m;
    }
};

void HttpServer::Impl::finished_log(const std::string& id, const Job& job) {
    const qwen3::GenerationStats& st = job.result.generation.stats;
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s: prompt %d tokens (%d reused), completion %d tokens, first text after %.3f s, %.1f t/s, %s",
                  id.c_str(), st.prompt_tokens, st.reused_tokens, st.generated_tokens, job.first_token_seconds,
                  st.generation_tokens_per_second(), qwen3::to_string(job.result.generation.reason));
    log(buf + (job.result.error.empty() ? std::string() : ": " + job.result.error));
}

void HttpServer::Impl::routes() {
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        if (options.api_key.empty() || req.path.rfind("/v1", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
        if (req.get_header_value("Authorization") == "Bearer " + options.api_key) return httplib::Server::HandlerResponse::Unhandled;
        send_error(res, ApiError(401, "authentication_error", "Incorrect API key provided.", "", "invalid_api_key"));
        return httplib::Server::HandlerResponse::Handled;
    });
    // bodies for the errors httplib answers itself (404, 413, ...)
    server.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string message = "HTTP status " + std::to_string(res.status);
        if (res.status == 404) message = "no route for " + req.method + " " + req.path;
        if (res.status == 413) message = "the request body is too large";
        if (res.status == 400) message = "the request is not valid HTTP";
        res.set_content(error_body(ApiError(res.status, res.status >= 500 ? "server_error" : "invalid_request_error", message)),
                        "application/json");
        return httplib::Server::HandlerResponse::Handled;
    }));
    server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string message = "internal error";
        try {
            std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            message = std::string("internal error: ") + e.what();
        } catch (...) {
        }
        send_error(res, ApiError(500, "server_error", message));
    });
    server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
        log(req.remote_addr + " \"" + req.method + " " + req.path + "\" " + std::to_string(res.status));
    });

    server.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
        const bool ok = scheduler.accepting();
        res.status = ok ? 200 : 503;
        res.set_content(ok ? R"({"status":"ok"})" : R"({"status":"shutting down"})", "application/json");
    });
    server.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
        json::Array data;
        data.push_back(model_json());
        json::Value out(json::Object{});
        out.set("object", json::Value("list"));
        out.set("data", json::Value(std::move(data)));
        res.set_content(json::dump(out), "application/json");
    });
    server.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
        if (req.matches[1] != options.model_id)
            return send_error(res, ApiError(404, "invalid_request_error", "The model '" + std::string(req.matches[1]) + "' does not exist",
                                            "model", "model_not_found"));
        res.set_content(json::dump(model_json()), "application/json");
    });
    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
        res.set_content(metrics_text(), "text/plain; version=0.0.4");
    });
    server.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) { generate(req, res, true); });
    server.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) { generate(req, res, false); });
}

void HttpServer::Impl::generate(const httplib::Request& req, httplib::Response& res, bool chat) {
    auto request = std::make_shared<ParsedRequest>();
    std::shared_ptr<Job> job;
    try {
        const json::Value body = parse_body(req.body);
        const qwen3::Tokenizer& tokenizer = scheduler.backend().tokenizer();
        *request = chat ? parse_chat_request(body, tokenizer, options.defaults) : parse_completion_request(body, tokenizer, options.defaults);
        if (!scheduler.accepting()) throw ApiError(503, "server_error", "the server is shutting down");
        try {
            job = scheduler.submit(request->prompt, request->options, request->top_logprobs);
        } catch (const qwen3::Error& e) {
            throw ApiError(400, "invalid_request_error", e.what());
        }
        if (!job) throw ApiError(503, "server_error", "the server is busy: every sequence and queue place is taken; retry later");
    } catch (const ApiError& e) {
        return send_error(res, e);
    }
    const std::string id = new_id(chat ? "chatcmpl-" : "cmpl-");
    const long long created = std::time(nullptr);
    if (request->stream) return stream(res, std::move(job), std::move(request), id, created);

    // Most requests end within a second: a plain response with the right status. A longer one is
    // answered 200 from then on, with a space (JSON white space) every second until the body: a
    // client that went away is noticed by the failed write, and its request cancelled.
    bool done = wait_up_to(*job, std::chrono::seconds(1));
    if (done) {
        int status = 200;
        std::string body = reply_body(*request, *job, id, created, status);
        res.status = status;
        if (status == 503) res.set_header("Retry-After", "1");
        res.set_content(std::move(body), "application/json");
        return;
    }
    auto ended = std::make_shared<bool>(false);
    res.set_chunked_content_provider(
        "application/json; charset=utf-8",  // not "application/json", which httplib compresses (holding the spaces back)
        [this, job, request, id, created, ended](std::size_t, httplib::DataSink& sink) {
            if (!wait_up_to(*job, std::chrono::seconds(1))) {
                if (sink.write(" ", 1)) return true;
                scheduler.cancel(*job);
                return false;
            }
            int status = 200;  // too late to say: an error goes out as its body
            const std::string body = reply_body(*request, *job, id, created, status);
            sink.write(body.data(), body.size());
            *ended = true;
            sink.done();
            return true;
        },
        [this, job, id, ended](bool) {
            if (*ended) return;
            scheduler.cancel(*job);
            wait_up_to(*job, std::chrono::seconds(30));
            finished_log(id, *job);
        });
}

bool HttpServer::Impl::wait_up_to(Job& job, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    bool done = false;
    for (auto now = std::chrono::steady_clock::now(); !done && now < deadline; now = std::chrono::steady_clock::now())
        job.wait(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) + std::chrono::milliseconds(1), done);
    return done;
}

std::string HttpServer::Impl::reply_body(const ParsedRequest& request, Job& job, const std::string& id, long long created, int& status) {
    finished_log(id, job);
    if (auto error = result_error(job.result)) {
        status = error->status;
        return error_body(*error);
    }
    status = 200;
    const bool chat = request.chat;
    const qwen3::Generation& g = job.result.generation;
    const ReplyParts reply = split_reply(request, g.text, "call_" + id.substr(id.find('-') + 1) + "_");
    const std::string finish = finish_reason(g.reason, !reply.tool_calls.empty());
    const json::Value usage = usage_json(g.stats.prompt_tokens, g.stats.generated_tokens, g.stats.reused_tokens);
    json::Value logprobs;
    if (request.top_logprobs >= 0) {
        const std::vector<TokenLogprob> tokens = job.take_logprobs();
        const qwen3::Tokenizer& tokenizer = scheduler.backend().tokenizer();
        logprobs = chat ? chat_logprobs(tokens, tokenizer) : completion_logprobs(tokens, tokenizer, 0);
    }
    const json::Value out = chat ? chat_completion(id, created, options.model_id, reply, finish, usage, std::move(logprobs))
                                 : completion(id, created, options.model_id, reply.content, finish, usage, std::move(logprobs));
    return json::dump(out);
}

void HttpServer::Impl::stream(httplib::Response& res, std::shared_ptr<Job> job, std::shared_ptr<ParsedRequest> request, std::string id,
                              long long created) {
    struct State {
        std::shared_ptr<Job> job;
        std::shared_ptr<ParsedRequest> request;
        std::string id;
        long long created;
        ChatStream chat;
        bool started = false;
        bool ended = false;
        std::vector<TokenLogprob> logprobs;  // taken from the job, not yet sent
        std::size_t text_offset = 0;         // completions: text sent so far
        State(std::shared_ptr<Job> j, std::shared_ptr<ParsedRequest> r, std::string i, long long c)
            : job(std::move(j)), request(std::move(r)), id(std::move(i)), created(c),
              chat(*request, "call_" + id.substr(id.find('-') + 1) + "_") {}
    };
    auto state = std::make_shared<State>(std::move(job), std::move(request), std::move(id), created);
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");  // proxies (nginx) pass events on as they come
    const std::string& model = options.model_id;
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, state, model](std::size_t, httplib::DataSink& sink) {
            State& s = *state;
            const bool chat = s.request->chat;
            auto send = [&](const std::string& text) { return sink.write(text.data(), text.size()); };
            auto gone = [&] {  // the client went away: free its sequence
                scheduler.cancel(*s.job);
                return false;
            };
            if (!s.started) {
                s.started = true;
                json::Value delta(json::Object{});
                delta.set("role", json::Value("assistant"));
                delta.set("content", json::Value(""));
                if (chat && !send(sse(chat_chunk(s.id, s.created, model, std::move(delta), nullptr)))) return gone();
            }
            bool done = false;
            const std::string text = s.job->wait(std::chrono::milliseconds(1000), done);
            const bool want_logprobs = s.request->top_logprobs >= 0;
            if (want_logprobs)
                for (TokenLogprob& t : s.job->take_logprobs()) s.logprobs.push_back(std::move(t));
            // the log-probabilities gathered so far ride on the next chunk that goes out
            auto logprobs = [&]() -> json::Value {
                if (!want_logprobs) return nullptr;
                const qwen3::Tokenizer& tokenizer = scheduler.backend().tokenizer();
                json::Value v = chat ? chat_logprobs(s.logprobs, tokenizer) : completion_logprobs(s.logprobs, tokenizer, s.text_offset);
                s.logprobs.clear();
                return v;
            };
            if (!text.empty()) {
                if (chat) {
                    for (json::Value& d : s.chat.feed(text))
                        if (!send(sse(chat_chunk(s.id, s.created, model, std::move(d), nullptr, logprobs())))) return gone();
                } else {
                    if (!send(sse(completion_chunk(s.id, s.created, model, text, nullptr, logprobs())))) return gone();
                    s.text_offset += text.size();
                }
            } else if (!done) {
                // a comment every second while nothing comes: finds a client that went away
                if (!send(": keep-alive\n\n")) return gone();
            }
            if (!done) return true;

            finished_log(s.id, *s.job);
            if (auto error = result_error(s.job->result)) {
                send(sse(error_json(*error)));
            } else {
                const qwen3::Generation& g = s.job->result.generation;
                bool calls = false;
                if (chat)
                    for (json::Value& d : s.chat.finish(calls))
                        send(sse(chat_chunk(s.id, s.created, model, std::move(d), nullptr, logprobs())));
                const std::string finish = finish_reason(g.reason, calls);
                if (chat) send(sse(chat_chunk(s.id, s.created, model, json::Value(json::Object{}), &finish, logprobs())));
                else send(sse(completion_chunk(s.id, s.created, model, "", &finish, logprobs())));
                if (s.request->include_usage)
                    send(sse(usage_chunk(s.id, s.created, model, chat,
                                         usage_json(g.stats.prompt_tokens, g.stats.generated_tokens, g.stats.reused_tokens))));
            }
            send("data: [DONE]\n\n");
            s.ended = true;
            sink.done();
            return true;
        },
        [this, state](bool) {
            if (state->ended) return;
            // the client went away: free its sequence, and log the request once the engine let it go
            scheduler.cancel(*state->job);
            bool done = false;
            for (int i = 0; i < 30 && !done; ++i) state->job->wait(std::chrono::milliseconds(1000), done);
            finished_log(state->id, *state->job);
        });
}

std::string HttpServer::Impl::metrics_text() {
    const Metrics& m = scheduler.metrics();
    const qwen3::EngineStats st = scheduler.backend().stats();
    double rate = 0;
    {
        std::lock_guard<std::mutex> lock(rate_mutex);
        const auto now = std::chrono::steady_clock::now();
        const double seconds = std::chrono::duration<double>(now - rate_time).count();
        if (seconds > 0) rate = double(st.decode_tokens - rate_tokens) / seconds;
        rate_time = now;
        rate_tokens = st.decode_tokens;
    }
    std::string out;
    auto metric = [&](const char* name, const char* type, const char* help, double value) {
        char buf[512];
        std::snprintf(buf, sizeof buf, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, value);
        out += buf;
    };
    metric("qwen3_requests_total", "counter", "Generation requests accepted.", double(m.requests));
    metric("qwen3_requests_rejected_total", "counter", "Requests refused with 503 because the queue was full.", double(m.rejected));
    metric("qwen3_requests_failed_total", "counter", "Accepted requests that ended in an error.", double(m.failed));
    metric("qwen3_prompt_tokens_total", "counter", "Prompt tokens of finished requests.", double(m.prompt_tokens));
    metric("qwen3_completion_tokens_total", "counter", "Tokens generated for finished requests.", double(m.completion_tokens));
    metric("qwen3_requests_running", "gauge", "Sequences the engine is stepping.", st.active);
    metric("qwen3_requests_waiting", "gauge", "Requests queued for a sequence.", st.waiting);
    out += "# HELP qwen3_time_to_first_token_seconds Time from a request's arrival to its first token.\n"
           "# TYPE qwen3_time_to_first_token_seconds summary\n";
    out += "qwen3_time_to_first_token_seconds_sum " + std::to_string(double(m.ttft_micros) * 1e-6) + "\n";
    out += "qwen3_time_to_first_token_seconds_count " + std::to_string(m.ttft_count.load()) + "\n";
    metric("qwen3_generation_seconds_total", "counter", "Time from first to last token, summed over finished requests.",
           double(m.generation_micros) * 1e-6);
    metric("qwen3_decode_tokens_per_second", "gauge", "Tokens the engine decoded per second since the previous scrape.", rate);
    metric("qwen3_engine_steps_total", "counter", "Engine steps.", double(st.steps));
    metric("qwen3_kv_pages_used", "gauge", "KV pool pages holding keys and values.", st.used_pages);
    metric("qwen3_kv_pages_total", "gauge", "KV pool pages.", st.pool_pages);
    return out;
}

HttpServer::HttpServer(Scheduler& scheduler, ServerOptions options) : impl_(std::make_unique<Impl>(scheduler, std::move(options))) {
    httplib::Server& s = impl_->server;
    const int threads = impl_->options.http_threads;
    s.new_task_queue = [threads] { return new httplib::ThreadPool(std::size_t(threads)); };
    s.set_payload_max_length(impl_->options.max_body_bytes);
    s.set_read_timeout(30, 0);
    s.set_write_timeout(30, 0);
    impl_->routes();
}

HttpServer::~HttpServer() = default;

void HttpServer::bind() {
    httplib::Server& s = impl_->server;
    if (impl_->options.port == 0) {
        port_ = s.bind_to_any_port(impl_->options.host);
    } else {
        port_ = s.bind_to_port(impl_->options.host, impl_->options.port) ? impl_->options.port : -1;
    }
    if (port_ < 0) throw std::runtime_error("cannot listen on " + impl_->options.host + ":" + std::to_string(impl_->options.port));
}

bool HttpServer::serve() { return impl_->server.listen_after_bind(); }

void HttpServer::stop() { impl_->server.stop(); }

}  // namespace serve
