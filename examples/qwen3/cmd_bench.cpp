// qwen3 bench MODEL [-p 512] [-n 128] [-d 0,4096] [-t THREADS] [-r REPEATS] [--json] [--no-copy] [--parallel 1,8,16]
// Prompt processing (one prefill of p tokens) and text generation (n decode steps), after a context
// of d tokens (llama-bench's -d; the context is filled once per depth, untimed in the tests and
// reported as its own prefill), as llama-bench measures them: a warm-up run, then mean and spread
// over the repeats. Decode lines give the bytes each token reads: weights, and the KV cache at the
// test's middle position.
// With --parallel, the same for N sequences at once on one Engine (aggregate tokens per second, as
// llama-batched-bench's S_PP and S_TG), and the time to first token of one more sequence that joins
// N decoding ones, beside its time alone.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <qwen3/qwen3.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "variants.hpp"

namespace {

struct Stats {
    double mean = 0, stddev = 0;
};

Stats stats(const std::vector<double>& v) {
    Stats s;
    for (double x : v) s.mean += x;
    s.mean /= double(v.size());
    for (double x : v) s.stddev += (x - s.mean) * (x - s.mean);
    s.stddev = v.size() > 1 ? std::sqrt(s.stddev / double(v.size() - 1)) : 0;
    return s;
}

std::string weight_format(const qwen3::Checkpoint& ckpt) {
    // the type of the largest share of matrix bytes, as llama-bench names a file by its main type
    std::uint64_t best = 0;
    std::string name;
    std::vector<std::pair<std::string, std::uint64_t>> totals;
    for (const auto& t : ckpt.tensors()) {
        if (t.shape.rank < 2) continue;
        bool found = false;
        for (auto& [n, b] : totals)
            if (n == qwen3::dtype_name(t.type)) b += t.bytes, found = true;
        if (!found) totals.emplace_back(qwen3::dtype_name(t.type), t.bytes);
    }
    for (auto& [n, b] : totals)
        if (b > best) best = b, name = n;
    return name;
}

// Read bandwidth: the best of 5 passes summing a 1 GiB array with `threads` threads. Decode reads
// every weight once per token, so this is its ceiling (bytes of weights per token / bandwidth).
double measure_bandwidth(int threads) {
    const std::size_t n = (std::size_t(1) << 30) / sizeof(float);
    std::vector<float> data(n);
    qwen3::ThreadPool pool(threads);
    pool.run(threads, [&](int t) {  // first touch by the thread that reads it
        const std::size_t begin = n / std::size_t(threads) * std::size_t(t), end = t + 1 == threads ? n : begin + n / std::size_t(threads);
        for (std::size_t i = begin; i < end; ++i) data[i] = float(i & 1023);
    });
    std::vector<float> sums(std::size_t(threads) * 16);
    double best = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        pool.run(threads, [&](int t) {
            const std::size_t begin = n / std::size_t(threads) * std::size_t(t), end = t + 1 == threads ? n : begin + n / std::size_t(threads);
            qwen3::detail::simd::fbatch a(0.f), b(0.f), c(0.f), d(0.f);
            constexpr std::size_t L = qwen3::detail::simd::lanes;
            for (std::size_t i = begin; i + 4 * L <= end; i += 4 * L) {
                a += qwen3::detail::simd::load_f32(&data[i]);
                b += qwen3::detail::simd::load_f32(&data[i + L]);
                c += qwen3::detail::simd::load_f32(&data[i + 2 * L]);
                d += qwen3::detail::simd::load_f32(&data[i + 3 * L]);
            }
            sums[std::size_t(t) * 16] = qwen3::detail::simd::sum(a + b + c + d);
        });
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return double(n * sizeof(float)) / best / 1e9;
}

std::vector<int> parse_depths(const std::string& text, int max_context) {
    std::vector<int> depths;
    std::stringstream in(text);
    for (std::string item; std::getline(in, item, ',');) {
        char* end = nullptr;
        const long v = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end || v < 0 || v > max_context)
            throw cli::UsageError("-d takes context depths 0.." + std::to_string(max_context) + " separated by commas, got '" + text + "'");
        depths.push_back(int(v));
    }
    if (depths.empty()) throw cli::UsageError("-d needs at least one depth");
    return depths;
}

std::vector<int> parse_counts(const std::string& text) {
    std::vector<int> counts;
    std::stringstream in(text);
    for (std::string item; std::getline(in, item, ',');) {
        char* end = nullptr;
        const long v = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end || v < 1 || v > 64) throw cli::UsageError("--parallel takes counts of sequences 1..64 separated by commas, got '" + text + "'");
        counts.push_back(int(v));
    }
    if (counts.empty()) throw cli::UsageError("--parallel needs at least one count");
    return counts;
}

// Fixed pseudo-random ids (speed does not depend on them); `stream` makes each sequence's differ.
template <class Cfg>
std::vector<std::int32_t> random_prompt(int n, std::uint64_t stream) {
    std::vector<std::int32_t> prompt(static_cast<std::size_t>(n));
    std::uint64_t state = 0x9E3779B97F4A7C15ull ^ (stream * 0xD1B54A32D192ED03ull);
    for (auto& id : prompt) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        id = std::int32_t((state >> 33) % std::uint64_t(Cfg::vocab));
    }
    return prompt;
}

// One run of `sequences` requests of n_prompt tokens (at least one) each generating n_gen tokens,
// all added before the first step: aggregate prompt and decode speeds, and the pool's peak use.
struct ParallelRun {
    double pp_tps = 0, tg_tps = 0;
    int peak_pages = 0;
};

template <class Cfg>
ParallelRun run_parallel(qwen3::Engine<Cfg>& engine, int sequences, int n_prompt, int n_gen, std::uint64_t round) {
    using clock = std::chrono::steady_clock;
    std::vector<typename qwen3::Engine<Cfg>::RequestId> ids;
    for (int s = 0; s < sequences; ++s) {
        qwen3::EngineRequest r;
        r.prompt = random_prompt<Cfg>(std::max(n_prompt, 1), round * 1000 + std::uint64_t(s) + 1);
        r.options.max_tokens = n_gen + 1;  // the first comes from the prompt's logits
        r.options.stop_at_end_of_turn = false;
        ids.push_back(engine.add(std::move(r)));
    }
    ParallelRun run;
    double prompt_seconds = 0, decode_seconds = 0;
    long long decoded = 0;
    bool more = true;
    while (more) {
        const auto t0 = clock::now();
        more = engine.step();
        const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
        const qwen3::EngineStats st = engine.stats();
        run.peak_pages = std::max(run.peak_pages, st.used_pages - st.cached_pages);
        if (st.step_prompt_tokens > 0) {
            prompt_seconds += seconds;  // steps that evaluate prompts (and decode what has started)
        } else if (st.step_decode_tokens > 0) {
            decode_seconds += seconds;
            decoded += st.step_decode_tokens;
        }
    }
    for (auto id : ids) (void)engine.take(id);
    run.pp_tps = double(sequences) * std::max(n_prompt, 1) / prompt_seconds;
    run.tg_tps = decode_seconds > 0 ? double(decoded) / decode_seconds : 0;
    return run;
}

// Seconds from adding a request of `prompt` tokens to its first token, while `others` sequences
// decode (0: alone).
template <class Cfg>
double time_to_first_token(qwen3::Engine<Cfg>& engine, int others, int prompt, std::uint64_t round) {
    std::vector<typename qwen3::Engine<Cfg>::RequestId> background;
    for (int s = 0; s < others; ++s) {
        qwen3::EngineRequest r;
        r.prompt = random_prompt<Cfg>(1, round * 1000 + 500 + std::uint64_t(s));
        r.options.max_tokens = 1 << 20;
        r.options.stop_at_end_of_turn = false;
        background.push_back(engine.add(std::move(r)));
    }
    for (int i = 0; i < 3 && others > 0; ++i) engine.step();  // all decoding
    qwen3::EngineRequest r;
    r.prompt = random_prompt<Cfg>(prompt, round * 1000 + 999);
    r.options.max_tokens = 1;
    r.options.stop_at_end_of_turn = false;
    const auto t0 = std::chrono::steady_clock::now();
    const auto id = engine.add(std::move(r));
    while (!engine.done(id)) engine.step();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (auto b : background) engine.cancel(b);
    engine.run();
    for (auto b : background) (void)engine.take(b);
    (void)engine.take(id);
    return seconds;
}

}  // namespace

int run_bench(int argc, char** argv) {
    cli::Args args(argc, argv,
                   {{"--prompt", "-p", true}, {"--gen", "-n", true}, {"--threads", "-t", true}, {"--repeats", "-r", true},
                    {"--json", "", false}, {"--bf16-products", "", false}, {"--bandwidth", "", false},
                    {"--no-copy", "", false}, {"--parallel", "", true}, {"--depth", "-d", true}});
    if (args.has("--bandwidth")) {
        const int t = int(args.get_int("--threads", qwen3::default_thread_count(), 1, 1024));
        const double gbs = measure_bandwidth(t);
        if (args.has("--json")) std::printf("{\"test\": \"bandwidth\", \"threads\": %d, \"gb_per_s\": %.2f}\n", t, gbs);
        else std::printf("memory read bandwidth, %d threads: %.2f GB/s\n", t, gbs);
        if (args.positional().empty()) return 0;
    }
    if (args.positional().size() != 1) throw cli::UsageError("expected one MODEL path");
    const int n_prompt = int(args.get_int("--prompt", 512, 0, 1 << 20));
    const int n_gen = int(args.get_int("--gen", 128, 0, 1 << 20));
    const int threads = int(args.get_int("--threads", qwen3::default_thread_count(), 1, 1024));
    const int repeats = int(args.get_int("--repeats", 5, 1, 1000));
    const bool json = args.has("--json");

    qwen3::Checkpoint ckpt = qwen3::Checkpoint::open(args.positional()[0]);
    const std::string path = ckpt.path(), format = weight_format(ckpt);
    return qwen3::with_variant<tool::Variants>(ckpt.params(), [&]<class Cfg>() {
        const auto load_start = std::chrono::steady_clock::now();
        qwen3::Model<Cfg> model(std::move(ckpt), qwen3::ModelOptions{.copy_for_decode = !args.has("--no-copy")});
        if (!json && model.weights().copied_bytes())
            std::fprintf(stderr, "model bound, %.1f MB of weights copied into huge pages (quantized ones in the decode layout): %.2f s\n", double(model.weights().copied_bytes()) / 1e6,
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count());
        const qwen3::Precision precision = args.has("--bf16-products") ? qwen3::Precision::bf16_products : qwen3::Precision::exact;
        qwen3::Session session(model, qwen3::SessionOptions{threads, precision});
        const std::vector<int> depths = parse_depths(args.get("--depth", "0"), Cfg::max_context);
        for (int d : depths)
            if (std::max(n_prompt, n_gen) > Cfg::max_context - d)
                qwen3::detail::fail(qwen3::ErrorCode::context_overflow, "a test at depth ", d, " does not fit the KV arena of ", Cfg::max_context);
        if (args.has("--parallel") && depths != std::vector<int>{0}) throw cli::UsageError("-d is not supported with --parallel yet");
        const double gb_per_token = double(model.weights().bytes_per_token()) / 1e9;
        using KV = qwen3::DefaultKV;
        constexpr double kv_bytes_per_position =
            double(Cfg::layers) * Cfg::kv_heads *
            double(KV::template key_block_bytes<Cfg::head_dim> / qwen3::kKeyBlock + KV::template value_row_bytes<Cfg::head_dim>);
        int depth = 0;  // the context the tests start from

        std::vector<std::int32_t> prompt(static_cast<std::size_t>(n_prompt));
        std::uint64_t state = 0x9E3779B97F4A7C15ull;  // fixed pseudo-random ids: speed does not depend on them
        for (auto& id : prompt) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            id = std::int32_t((state >> 33) % std::uint64_t(Cfg::vocab));
        }
        using clock = std::chrono::steady_clock;
        auto run_pp = [&] {
            session.truncate(depth);
            const auto t0 = clock::now();
            session.eval(prompt);
            return double(n_prompt) / std::chrono::duration<double>(clock::now() - t0).count();
        };
        auto run_tg = [&] {
            session.truncate(depth);
            std::int32_t id = 0;
            const auto t0 = clock::now();
            for (int i = 0; i < n_gen; ++i) {
                auto logits = session.eval(id);
                id = std::int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
            }
            return double(n_gen) / std::chrono::duration<double>(clock::now() - t0).count();
        };
        auto report = [&](const char* kind, int n, const std::vector<double>& tps) {
            const Stats s = stats(tps);
            const std::string test = std::string(kind) + std::to_string(n) + (depth ? " @ d" + std::to_string(depth) : "");
            const bool tg = kind[0] == 't';
            // a decode step reads every weight once and the KV cache of the positions before it
            const double kv_gb = kv_bytes_per_position * (depth + (n - 1) / 2.0) / 1e9;
            char read[160] = "";
            if (tg && json)
                std::snprintf(read, sizeof read, ", \"weights_gb_per_s\": %.3f, \"kv_gb_per_token\": %.4f, \"read_gb_per_s\": %.3f", s.mean * gb_per_token,
                              kv_gb, s.mean * (gb_per_token + kv_gb));
            else if (tg)
                std::snprintf(read, sizeof read, "%.0f MB weights + %.0f MB KV: %.1f GB/s", gb_per_token * 1e3, kv_gb * 1e3,
                              s.mean * (gb_per_token + kv_gb));
            if (json)
                std::printf("{\"model\": %s, \"variant\": \"%s\", \"format\": \"%s\", \"threads\": %d, \"test\": \"%s%d\", \"depth\": %d, "
                            "\"tokens_per_s\": %.3f, \"stddev\": %.3f, \"repeats\": %d, \"weights_gb_per_token\": %.4f%s}\n",
                            qwen3::json::quote(path).c_str(), std::string(Cfg::name).c_str(), format.c_str(), threads, kind, n, depth,
                            s.mean, s.stddev, repeats, gb_per_token, read);
            else
                std::printf("| %-12s | %-6s | %7d | %-13s | %9.2f ± %-6.2f | %s |\n", std::string(Cfg::name).c_str(), format.c_str(),
                            threads, test.c_str(), s.mean, s.stddev, read);
            std::fflush(stdout);
        };
        auto report_parallel = [&](int n, const char* kind, int tokens, const std::vector<double>& tps, int peak_pages) {
            if (tokens == 0) return;
            const Stats s = stats(tps);
            const std::string test = std::string(kind) + std::to_string(tokens);
            if (json)
                std::printf("{\"model\": %s, \"variant\": \"%s\", \"format\": \"%s\", \"threads\": %d, \"test\": \"%s\", "
                            "\"parallel\": %d, \"tokens_per_s\": %.3f, \"stddev\": %.3f, \"repeats\": %d, \"pool_pages\": %d}\n",
                            qwen3::json::quote(path).c_str(), std::string(Cfg::name).c_str(), format.c_str(), threads, test.c_str(), n, s.mean,
                            s.stddev, repeats, peak_pages);
            else
                std::printf("| %-12s | %-6s | %7d | %-6s | %8d | %9.2f ± %-6.2f | %d pages of %d positions |\n", std::string(Cfg::name).c_str(),
                            format.c_str(), threads, test.c_str(), n, s.mean, s.stddev, peak_pages, qwen3::kDefaultPagePositions);
            std::fflush(stdout);
        };
        if (!json && args.has("--parallel")) {
            std::printf("| %-12s | %-6s | %7s | %-6s | %8s | %18s | %s |\n", "model", "format", "threads", "test", "parallel", "t/s (aggregate)", "pool used");
            std::printf("|--------------|--------|---------|--------|----------|--------------------|----------------|\n");
        } else if (!json) {
            std::printf("| %-12s | %-6s | %7s | %-13s | %18s | %s |\n", "model", "format", "threads", "test", "t/s", "read per token");
            std::printf("|--------------|--------|---------|---------------|--------------------|----------------|\n");
        }
        if (args.has("--parallel")) {
            const int ttft_prompt = n_prompt > 0 ? n_prompt : 128;
            for (int n : parse_counts(args.get("--parallel", ""))) {
                const int per_sequence = (std::max(n_prompt, ttft_prompt) + n_gen + 2 + qwen3::kDefaultPagePositions - 1) / qwen3::kDefaultPagePositions;
                qwen3::Engine<Cfg> engine(model, nullptr,
                                          {.max_sequences = n + 1, .pool_pages = (n + 1) * per_sequence + 8, .prefill_budget = qwen3::kMaxBatch,
                                           .threads = threads, .precision = precision});
                std::uint64_t round = 1;
                run_parallel(engine, n, n_prompt, std::min(n_gen, 8), round++);  // warm-up
                std::vector<double> pp, tg, ttft, alone;
                int peak = 0;
                for (int r = 0; r < repeats; ++r) {
                    const ParallelRun run = run_parallel(engine, n, n_prompt, n_gen, round++);
                    pp.push_back(run.pp_tps), tg.push_back(run.tg_tps), peak = std::max(peak, run.peak_pages);
                    ttft.push_back(time_to_first_token(engine, n, ttft_prompt, round++) * 1e3);
                    alone.push_back(time_to_first_token(engine, 0, ttft_prompt, round++) * 1e3);
                }
                report_parallel(n, "pp", n_prompt, pp, peak);
                report_parallel(n, "tg", n_gen, tg, peak);
                const Stats joined = stats(ttft), single = stats(alone);
                if (json)
                    std::printf("{\"model\": %s, \"variant\": \"%s\", \"format\": \"%s\", \"threads\": %d, \"test\": \"ttft%d\", "
                                "\"parallel\": %d, \"ttft_ms\": %.2f, \"stddev\": %.2f, \"alone_ms\": %.2f, \"repeats\": %d}\n",
                                qwen3::json::quote(path).c_str(), std::string(Cfg::name).c_str(), format.c_str(), threads, ttft_prompt, n,
                                joined.mean, joined.stddev, single.mean, repeats);
                else
                    std::printf("| %-12s | %-6s | %7d | %-6s | %8d | first token of a %d-token prompt: %.1f ms beside %d decoding, %.1f ms alone (%.2fx) |\n",
                                std::string(Cfg::name).c_str(), format.c_str(), threads, "ttft", n, ttft_prompt, joined.mean, n, single.mean,
                                joined.mean / single.mean);
                std::fflush(stdout);
            }
            return 0;
        }
        for (int d : depths) {
            depth = 0;
            if (d > 0) {  // the context, once: a prefill of d tokens from an empty arena
                session.reset();
                const auto t0 = clock::now();
                session.eval(random_prompt<Cfg>(d, 7));
                const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
                if (json)
                    std::printf("{\"model\": %s, \"variant\": \"%s\", \"format\": \"%s\", \"threads\": %d, \"test\": \"fill%d\", "
                                "\"depth\": 0, \"tokens_per_s\": %.3f, \"seconds\": %.3f, \"repeats\": 1}\n",
                                qwen3::json::quote(path).c_str(), std::string(Cfg::name).c_str(), format.c_str(), threads, d, d / seconds, seconds);
                else
                    std::printf("| %-12s | %-6s | %7d | %-13s | %9.2f          | the context: %d tokens in %.2f s (once) |\n",
                                std::string(Cfg::name).c_str(), format.c_str(), threads, ("fill" + std::to_string(d)).c_str(), d / seconds, d, seconds);
                std::fflush(stdout);
            }
            depth = d;
            if (n_prompt > 0) {
                run_pp();  // warm-up: pages the weights in
                std::vector<double> tps;
                for (int r = 0; r < repeats; ++r) tps.push_back(run_pp());
                report("pp", n_prompt, tps);
            }
            if (n_gen > 0) {
                run_tg();
                std::vector<double> tps;
                for (int r = 0; r < repeats; ++r) tps.push_back(run_tg());
                report("tg", n_gen, tps);
            }
        }
        return 0;
    });
}
