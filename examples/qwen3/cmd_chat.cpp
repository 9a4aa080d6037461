// qwen3 chat MODEL [--think | --no-think] [--system TEXT] [--hide-reasoning] [sampling flags]
// An interactive conversation: each line typed is a user message; the reply streams to stdout, its
// reasoning dimmed (or hidden), the speed to stderr. Lines starting with / are commands.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include <qwen3/generation.hpp>
#include <qwen3/qwen3.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "model_tokenizer.hpp"
#include "sampling_options.hpp"
#include "variants.hpp"

namespace {

const char* kHelp =
    "commands: /think, /no_think (as a message suffix, Qwen3's soft switches, work as typed)\n"
    "          /clear   start a new conversation      /exit   quit (or end of input)\n";

}  // namespace

int run_chat(int argc, char** argv) {
    cli::Args args(argc, argv,
                   {{"--think", "", false}, {"--no-think", "", false}, {"--system", "", true}, {"--hide-reasoning", "", false},
                    {"--threads", "-t", true}, {"--tokenizer", "", true}, {"--max-tokens", "-n", true}, SAMPLING_OPTIONS});
    if (args.positional().size() != 1) throw cli::UsageError("expected one MODEL path");
    if (args.has("--think") && args.has("--no-think")) throw cli::UsageError("--think and --no-think exclude each other");
    const bool thinking = !args.has("--no-think");
    const bool hide_reasoning = args.has("--hide-reasoning");
    const bool tty = ::isatty(STDOUT_FILENO);

    qwen3::ConversationOptions options;
    options.enable_thinking = thinking;
    options.system = args.get("--system");
    options.max_tokens = int(args.get_int("--max-tokens", 8192, 1, 1 << 24));
    options.session.threads = int(args.get_int("--threads", qwen3::default_thread_count(), 1, 1024));
    options.sampling = cli::sampling_from(args, thinking ? qwen3::SamplerParams::thinking() : qwen3::SamplerParams::non_thinking());

    qwen3::Checkpoint ckpt = qwen3::Checkpoint::open(args.positional()[0]);
    const qwen3::Tokenizer tokenizer = cli::load_tokenizer(args, ckpt);
    return qwen3::with_variant<tool::Variants>(ckpt.params(), [&]<class Cfg>() {
        qwen3::Model<Cfg> model(std::move(ckpt));
        qwen3::Conversation<Cfg> chat(model, tokenizer, options);
        std::fprintf(stderr, "%s loaded; thinking %s; /exit to quit, /help for commands\n", std::string(Cfg::name).c_str(),
                     thinking ? "on" : "off");
        std::string line;
        for (;;) {
            if (tty) std::fputs("\n> ", stdout), std::fflush(stdout);
            if (!std::getline(std::cin, line)) break;
            if (line.empty()) continue;
            if (line == "/exit" || line == "/quit") break;
            if (line == "/help") {
                std::fputs(kHelp, stdout);
                continue;
            }
            if (line == "/clear") {
                chat.clear();
                std::fputs("(new conversation)\n", stdout);
                continue;
            }
            bool in_reasoning = false;
            const qwen3::Reply reply = chat.send(line, [&](const qwen3::chat::ReplyDelta& d) {
                if (!d.reasoning.empty() && !hide_reasoning) {
                    if (!in_reasoning && tty) std::fputs("\033[2m", stdout);
                    in_reasoning = true;
                    std::fwrite(d.reasoning.data(), 1, d.reasoning.size(), stdout);
                }
                if (!d.answer.empty()) {
                    if (in_reasoning) {
                        if (tty) std::fputs("\033[0m", stdout);
                        std::fputs("\n", stdout);
                        in_reasoning = false;
                    }
                    std::fwrite(d.answer.data(), 1, d.answer.size(), stdout);
                }
                std::fflush(stdout);
                return true;
            });
            if (in_reasoning && tty) std::fputs("\033[0m", stdout);
            for (const auto& call : reply.tool_calls)
                std::printf("\n[tool call] %s %s", call.name.c_str(), qwen3::json::dump(call.arguments).c_str());
            std::printf("\n");
            std::fflush(stdout);
            std::fprintf(stderr, "[prompt %d tokens (%d reused), %.1f t/s | reply %d tokens, %.1f t/s | %s]\n",
                         reply.stats.prompt_tokens, reply.stats.reused_tokens, reply.stats.prompt_tokens_per_second(),
                         reply.stats.generated_tokens, reply.stats.generation_tokens_per_second(), qwen3::to_string(reply.reason));
        }
        return 0;
    });
}
