// qwen3 bench MODEL [-p 512] [-n 128] [-t THREADS] [-r REPEATS] [--json] [--no-copy]
// Prompt processing (one prefill of p tokens) and text generation (n decode steps from an empty
// context), as llama-bench measures them: a warm-up run, then mean and spread over the repeats.
#include <chrono>
#include <cmath>
#include <cstdio>
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

}  // namespace

int run_bench(int argc, char** argv) {
    cli::Args args(argc, argv,
                   {{"--prompt", "-p", true}, {"--gen", "-n", true}, {"--threads", "-t", true}, {"--repeats", "-r", true},
                    {"--json", "", false}, {"--bf16-products", "", false}, {"--bandwidth", "", false},
                    {"--no-copy", "", false}});
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
        qwen3::Session session(model, qwen3::SessionOptions{threads, args.has("--bf16-products") ? qwen3::Precision::bf16_products : qwen3::Precision::exact});
        if (n_prompt > Cfg::max_context || n_gen > Cfg::max_context)
            qwen3::detail::fail(qwen3::ErrorCode::context_overflow, "the test does not fit the KV arena of ", Cfg::max_context);
        const double gb_per_token = double(model.weights().bytes_per_token()) / 1e9;

        std::vector<std::int32_t> prompt(static_cast<std::size_t>(n_prompt));
        std::uint64_t state = 0x9E3779B97F4A7C15ull;  // fixed pseudo-random ids: speed does not depend on them
        for (auto& id : prompt) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            id = std::int32_t((state >> 33) % std::uint64_t(Cfg::vocab));
        }
        using clock = std::chrono::steady_clock;
        auto run_pp = [&] {
            session.reset();
            const auto t0 = clock::now();
            session.eval(prompt);
            return double(n_prompt) / std::chrono::duration<double>(clock::now() - t0).count();
        };
        auto run_tg = [&] {
            session.reset();
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
            const std::string test = std::string(kind) + std::to_string(n);
            const bool tg = kind[0] == 't';
            if (json) {
                std::printf("{\"model\": %s, \"variant\": \"%s\", \"format\": \"%s\", \"threads\": %d, \"test\": \"%s\", "
                            "\"tokens_per_s\": %.3f, \"stddev\": %.3f, \"repeats\": %d, \"weights_gb_per_token\": %.4f%s}\n",
                            qwen3::json::quote(path).c_str(), std::string(Cfg::name).c_str(), format.c_str(), threads,
                            test.c_str(), s.mean, s.stddev, repeats, gb_per_token,
                            tg ? (", \"weights_gb_per_s\": " + std::to_string(s.mean * gb_per_token)).c_str() : "");
            } else {
                std::printf("| %-12s | %-6s | %7d | %-6s | %9.2f ± %-6.2f | %s |\n", std::string(Cfg::name).c_str(),
                            format.c_str(), threads, test.c_str(), s.mean, s.stddev,
                            tg ? (std::to_string(s.mean * gb_per_token).substr(0, 6) + " GB/s").c_str() : "");
            }
            std::fflush(stdout);
        };
        if (!json) {
            std::printf("| %-12s | %-6s | %7s | %-6s | %18s | %s |\n", "model", "format", "threads", "test", "t/s", "weights read");
            std::printf("|--------------|--------|---------|--------|--------------------|--------------|\n");
        }
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
        return 0;
    });
}
