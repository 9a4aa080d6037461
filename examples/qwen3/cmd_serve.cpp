// qwen3 serve MODEL [options]: an OpenAI-compatible HTTP server on the batching engine.
// The server's parts live in serve/ (wire format, scheduler, HTTP routes) and compile once for
// every variant; only the engine behind serve::Backend is per variant.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include <qwen3/qwen3.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "model_tokenizer.hpp"
#include "sampling_options.hpp"
#include "serve/http_server.hpp"
#include "serve/scheduler.hpp"
#include "variants.hpp"

namespace {

// Waits for SIGINT/SIGTERM (blocked in every thread, taken here with sigwait). The first stops
// new requests and lets those in flight finish for up to `grace` seconds, then cancels them and
// stops the server; a second signal cancels at once.
void handle_signals(serve::Scheduler& scheduler, serve::HttpServer& server, const sigset_t& set, double grace,
                    const std::atomic<bool>& exiting) {
    int sig = 0;
    sigwait(&set, &sig);
    if (exiting) return;
    std::fprintf(stderr, "qwen3 serve: %s: finishing %d request(s) in flight (up to %.0f s; again to cancel them)\n",
                 sig == SIGINT ? "interrupted" : "terminated", scheduler.in_flight(), grace);
    scheduler.stop_accepting();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace);
    bool cancelled = false;
    while (scheduler.in_flight() > 0) {
        sigset_t pending;
        sigpending(&pending);
        if (!cancelled && (std::chrono::steady_clock::now() > deadline || sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM))) {
            scheduler.cancel_all();
            cancelled = true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    server.stop();
}

}  // namespace

int run_serve(int argc, char** argv) {
    cli::Args args(argc, argv,
                   {{"--host", "", true}, {"--port", "", true}, {"--parallel", "-np", true}, {"--queue", "", true},
                    {"--api-key", "", true}, {"--ctx-per-seq", "", true}, {"--threads", "-t", true}, {"--tokenizer", "", true},
                    {"--model-name", "", true}, {"--max-tokens", "-n", true}, {"--max-tokens-limit", "", true},
                    {"--max-body", "", true}, {"--http-threads", "", true}, {"--prefill-budget", "", true},
                    {"--shutdown-grace", "", true}, {"--no-log", "", false}, SAMPLING_OPTIONS});
    if (args.positional().size() != 1) throw cli::UsageError("expected one MODEL path");
    const int parallel = int(args.get_int("--parallel", 4, 1, 64));
    const int queue = int(args.get_int("--queue", 4 * parallel, 0, 1 << 16));
    const int threads = int(args.get_int("--threads", qwen3::default_thread_count(), 1, 1024));
    const double grace = args.get_double("--shutdown-grace", 30);

    serve::ServerOptions options;
    options.host = args.get("--host", "127.0.0.1");
    options.port = int(args.get_int("--port", 8080, 0, 65535));
    options.api_key = args.get("--api-key", std::getenv("QWEN3_API_KEY") ? std::getenv("QWEN3_API_KEY") : "");
    options.max_body_bytes = std::size_t(args.get_int("--max-body", 8 << 20, 1024, 1L << 30));
    options.http_threads = int(args.get_int("--http-threads", parallel + queue + 8, 2, 4096));
    options.access_log = !args.has("--no-log");
    options.defaults.max_tokens = int(args.get_int("--max-tokens", 2048, 1, 1 << 24));
    options.defaults.max_tokens_limit = int(args.get_int("--max-tokens-limit", 1 << 20, 1, 1 << 24));
    bool any_sampling = false;
    for (const char* flag : {"--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty", "--presence-penalty", "--frequency-penalty",
                             "--repeat-last-n"})
        any_sampling = any_sampling || args.has(flag);
    if (any_sampling) options.defaults.sampling = cli::sampling_from(args, qwen3::SamplerParams::non_thinking());

    // blocked before any thread starts (the engine's pool, HTTP workers), so every thread inherits
    // the mask and only the handler thread takes the signals
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not end the process

    const std::string model_path = args.positional()[0];
    qwen3::Checkpoint ckpt = qwen3::Checkpoint::open(model_path);
    qwen3::Tokenizer tokenizer = cli::load_tokenizer(args, ckpt);
    {
        std::string name = args.get("--model-name", model_path);
        if (!args.has("--model-name")) name = name.substr(name.find_last_of('/') == std::string::npos ? 0 : name.find_last_of('/') + 1);
        options.model_id = name;
    }

    std::unique_ptr<serve::Backend> backend = qwen3::with_variant<tool::Variants>(ckpt.params(), [&]<class Cfg>() {
        const int ctx = int(args.get_int("--ctx-per-seq", Cfg::max_context, 16, Cfg::max_context));
        qwen3::EngineOptions engine;
        engine.max_sequences = parallel;
        engine.threads = threads;
        engine.prefill_budget = int(args.get_int("--prefill-budget", engine.prefill_budget, 1, qwen3::kMaxBatch));
        constexpr int page = qwen3::kDefaultPagePositions;
        engine.pool_pages = parallel * ((ctx + page - 1) / page);
        options.defaults.context = ctx;
        return std::unique_ptr<serve::Backend>(
            std::make_unique<serve::EngineBackend<Cfg>>(std::move(ckpt), std::move(tokenizer), engine));
    });

    const std::string variant = backend->variant();
    options.defaults.grammars = std::make_shared<serve::GrammarCache>(backend->tokenizer());
    serve::Scheduler scheduler(std::move(backend), parallel, queue);
    serve::HttpServer server(scheduler, options);
    server.bind();
    std::atomic<bool> exiting{false};
    std::thread signals([&] { handle_signals(scheduler, server, set, grace, exiting); });
    std::fprintf(stderr, "qwen3 serve: %s as \"%s\", %d sequences of up to %d positions, queue %d, %d threads%s\n", variant.c_str(),
                 options.model_id.c_str(), parallel, options.defaults.context, queue, threads,
                 options.api_key.empty() ? "" : ", API key required");
    std::fprintf(stderr, "qwen3 serve: listening on http://%s:%d\n", options.host.c_str(), server.port());
    std::fflush(stderr);
    const bool ok = server.serve();
    exiting = true;
    pthread_kill(signals.native_handle(), SIGTERM);  // wakes the handler if no signal came
    signals.join();
    scheduler.shutdown(true);
    std::fprintf(stderr, "qwen3 serve: stopped\n");
    return ok ? 0 : 1;
}
