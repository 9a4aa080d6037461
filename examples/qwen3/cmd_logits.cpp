// qwen3 logits MODEL --tokens 1,2,3 [--out FILE] [-t N]
// Runs the tokens as one prefill and writes the logits of every position as little-endian float32,
// row-major [tokens x vocab]; without --out, prints the top 5 of the last position.
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <vector>

#include <qwen3/qwen3.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "variants.hpp"

int run_logits(int argc, char** argv) {
    cli::Args args(argc, argv, {{"--tokens", "", true}, {"--out", "-o", true}, {"--threads", "-t", true}});
    if (args.positional().size() != 1) throw cli::UsageError("expected one MODEL path");
    if (!args.has("--tokens")) throw cli::UsageError("--tokens is required");
    const std::vector<std::int32_t> tokens = cli::parse_int_list(args.get("--tokens"), "--tokens");
    const int threads = int(args.get_int("--threads", qwen3::default_thread_count(), 1, 1024));

    qwen3::Checkpoint ckpt = qwen3::Checkpoint::open(args.positional()[0]);
    return qwen3::with_variant<tool::Variants>(ckpt.params(), [&]<class Cfg>() {
        qwen3::Model<Cfg> model(std::move(ckpt));
        qwen3::Session session(model, threads);
        std::vector<float> logits(tokens.size() * std::size_t(Cfg::vocab));
        session.eval(tokens, logits);
        if (args.has("--out")) {
            const std::string path = args.get("--out");
            std::FILE* f = std::fopen(path.c_str(), "wb");
            if (!f) qwen3::detail::fail(qwen3::ErrorCode::io, "cannot create ", path);
            const std::size_t written = std::fwrite(logits.data(), sizeof(float), logits.size(), f);
            if (std::fclose(f) != 0 || written != logits.size()) qwen3::detail::fail(qwen3::ErrorCode::io, "write to ", path, " failed");
            std::fprintf(stderr, "wrote %zu x %d logits to %s\n", tokens.size(), Cfg::vocab, path.c_str());
        } else {
            const std::span<const float> last = session.logits();
            std::vector<int> ids(last.size());
            std::iota(ids.begin(), ids.end(), 0);
            std::partial_sort(ids.begin(), ids.begin() + 5, ids.end(), [&](int a, int b) {
                return last[std::size_t(a)] > last[std::size_t(b)] || (last[std::size_t(a)] == last[std::size_t(b)] && a < b);
            });
            std::printf("top 5 of position %zu (variant %s):\n", tokens.size() - 1, std::string(Cfg::name).c_str());
            for (int r = 0; r < 5; ++r) std::printf("  %d  id %6d  logit %.6f\n", r + 1, ids[std::size_t(r)], last[std::size_t(ids[std::size_t(r)])]);
        }
        return 0;
    });
}
