// qwen3 generate MODEL -p PROMPT [options]: raw completion of a prompt (no chat template).
// The generated text goes to stdout as it is produced; the seed, timings and speed go to stderr.
// --grammar FILE.gbnf / --json-schema FILE constrain the text (and then stdout is only the text).
#include <cstdio>
#include <random>
#include <string>

#include <qwen3/generation.hpp>
#include <qwen3/qwen3.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "model_tokenizer.hpp"
#include "sampling_options.hpp"
#include "variants.hpp"

int run_generate(int argc, char** argv) {
    cli::Args args(argc, argv,
                   {{"--prompt", "-p", true}, {"--tokens", "", true}, {"--n-predict", "-n", true}, {"--threads", "-t", true},
                    {"--tokenizer", "", true}, {"--stop", "", true}, {"--ids", "", false}, {"--echo", "", false},
                    {"--ignore-eos", "", false}, {"--grammar", "", true}, {"--json-schema", "", true}, SAMPLING_OPTIONS});
    if (args.positional().size() != 1) throw cli::UsageError("expected one MODEL path");
    if (args.has("--grammar") && args.has("--json-schema")) throw cli::UsageError("give --grammar or --json-schema, not both");
    if (args.has("--prompt") == args.has("--tokens")) throw cli::UsageError("give the prompt as -p TEXT or --tokens 1,2,3");
    const int threads = int(args.get_int("--threads", qwen3::default_thread_count(), 1, 1024));

    qwen3::GenerationOptions options;
    options.max_tokens = int(args.get_int("--n-predict", 128, 0, 1 << 24));
    options.sampling = cli::sampling_from(args, qwen3::SamplerParams::non_thinking());
    if (args.has("--stop")) options.stop.push_back(args.get("--stop"));
    options.stop_at_end_of_turn = !args.has("--ignore-eos");

    const std::string model_path = args.positional()[0];
    qwen3::Checkpoint ckpt = qwen3::Checkpoint::open(model_path);
    const qwen3::Tokenizer tokenizer = cli::load_tokenizer(args, ckpt);
    const bool constrained = args.has("--grammar") || args.has("--json-schema");
    if (constrained) {
        // the grammar is checked before the model is read, so a bad one fails fast
        qwen3::Grammar grammar = args.has("--grammar")
                                     ? qwen3::Grammar::from_gbnf(cli::read_text_file(args.get("--grammar")))
                                     : qwen3::grammar_from_json_schema(cli::read_text_file(args.get("--json-schema")));
        options.grammar = qwen3::TokenGrammar::create(std::move(grammar), tokenizer, std::size_t(ckpt.params().vocab));
    }
    return qwen3::with_variant<tool::Variants>(ckpt.params(), [&]<class Cfg>() {
        qwen3::Model<Cfg> model(std::move(ckpt));
        qwen3::Generator<Cfg> generator(model, tokenizer, qwen3::SessionOptions{threads});
        const std::vector<std::int32_t> prompt =
            args.has("--tokens") ? cli::parse_int_list(args.get("--tokens"), "--tokens") : tokenizer.encode(args.get("--prompt"));
        if (args.has("--echo")) {
            std::fputs(args.has("--tokens") ? tokenizer.decode(prompt).c_str() : args.get("--prompt").c_str(), stdout);
            std::fflush(stdout);
        }
        const bool ids = args.has("--ids");
        const qwen3::Generation g = generator.generate(prompt, options, [&](std::string_view piece) {
            if (!ids) {
                std::fwrite(piece.data(), 1, piece.size(), stdout);
                std::fflush(stdout);
            }
            return true;
        });
        if (ids) {
            std::string out = "[";
            for (std::size_t i = 0; i < g.tokens.size(); ++i) out += (i ? "," : "") + std::to_string(g.tokens[i]);
            std::printf("%s]\n", out.c_str());
        } else if (!constrained) {  // constrained: stdout is exactly the generated text
            std::printf("\n");
        }
        std::fprintf(stderr, "[%s | seed %llu | prompt %d tokens, %.1f t/s | generated %d tokens, %.1f t/s | stop: %s]\n",
                     std::string(Cfg::name).c_str(), static_cast<unsigned long long>(options.sampling.seed), g.stats.prompt_tokens,
                     g.stats.prompt_tokens_per_second(), g.stats.generated_tokens, g.stats.generation_tokens_per_second(),
                     qwen3::to_string(g.reason));
        return 0;
    });
}
