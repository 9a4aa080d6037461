// qwen3 chat MODEL [--think | --no-think] [--system TEXT] [--hide-reasoning] [sampling flags]
//                  [--tools FILE [--tool-choice auto|none|required|NAME] [--free-tool-calls]]
//                  [--json | --json-schema FILE]
// An interactive conversation: each line typed is a user message; the reply streams to stdout, its
// reasoning dimmed (or hidden), the speed to stderr. Lines starting with / are commands. With
// --tools (a JSON array of OpenAI-style tools) the model may call them, its calls constrained to
// the tools' schemas; /tool TEXT answers a call. --json / --json-schema constrain every answer.
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
    "          /clear   start a new conversation      /exit   quit (or end of input)\n"
    "          /tool TEXT   the result of the last reply's next tool call (the reply follows the last one)\n";

// --tools FILE: a JSON array of tools, {"type": "function", "function": {...}} or the function itself.
std::vector<qwen3::json::Value> read_tools(const std::string& path) {
    const qwen3::json::Value tools = qwen3::json::parse(cli::read_text_file(path), path);
    if (!tools.is_array()) throw qwen3::Error(qwen3::ErrorCode::invalid_argument, path + ": tools must be a JSON array");
    return tools.as_array();
}

qwen3::chat::ToolChoice tool_choice_from(const std::string& choice) {
    if (choice.empty() || choice == "auto") return qwen3::chat::ToolChoice::automatic();
    if (choice == "none") return qwen3::chat::ToolChoice::none();
    if (choice == "required") return qwen3::chat::ToolChoice::required();
    return qwen3::chat::ToolChoice::named(choice);
}

}  // namespace

int run_chat(int argc, char** argv) {
    cli::Args args(argc, argv,
                   {{"--think", "", false}, {"--no-think", "", false}, {"--system", "", true}, {"--hide-reasoning", "", false},
                    {"--threads", "-t", true}, {"--tokenizer", "", true}, {"--max-tokens", "-n", true},
                    {"--tools", "", true}, {"--tool-choice", "", true}, {"--free-tool-calls", "", false}, {"--json", "", false},
                    {"--json-schema", "", true}, SAMPLING_OPTIONS});
    if (args.positional().size() != 1) throw cli::UsageError("expected one MODEL path");
    if (args.has("--think") && args.has("--no-think")) throw cli::UsageError("--think and --no-think exclude each other");
    if (args.has("--json") && args.has("--json-schema")) throw cli::UsageError("give --json or --json-schema, not both");
    if ((args.has("--tool-choice") || args.has("--free-tool-calls")) && !args.has("--tools"))
        throw cli::UsageError("--tool-choice and --free-tool-calls need --tools");
    const bool thinking = !args.has("--no-think");
    const bool hide_reasoning = args.has("--hide-reasoning");
    const bool tty = ::isatty(STDOUT_FILENO);

    qwen3::ConversationOptions options;
    options.enable_thinking = thinking;
    options.system = args.get("--system");
    options.max_tokens = int(args.get_int("--max-tokens", 8192, 1, 1 << 24));
    options.session.threads = int(args.get_int("--threads", qwen3::default_thread_count(), 1, 1024));
    options.sampling = cli::sampling_from(args, thinking ? qwen3::SamplerParams::thinking() : qwen3::SamplerParams::non_thinking());
    if (args.has("--tools")) options.tools = read_tools(args.get("--tools"));
    options.tool_choice = tool_choice_from(args.get("--tool-choice"));
    options.constrain_tool_calls = !args.has("--free-tool-calls");
    if (args.has("--json")) options.response_format = qwen3::chat::ResponseFormat::json_object();
    if (args.has("--json-schema"))
        options.response_format = qwen3::chat::ResponseFormat::json_schema(
            qwen3::json::parse(cli::read_text_file(args.get("--json-schema")), args.get("--json-schema")));
    {
        // the tools and the schema are checked before the model is read, so a bad one fails fast
        const qwen3::chat::ReplyForm form = qwen3::reply_form(options, thinking);
        if (qwen3::chat::constrains(form)) (void)qwen3::chat::reply_grammar(form);
    }

    qwen3::Checkpoint ckpt = qwen3::Checkpoint::open(args.positional()[0]);
    const qwen3::Tokenizer tokenizer = cli::load_tokenizer(args, ckpt);
    return qwen3::with_variant<tool::Variants>(ckpt.params(), [&]<class Cfg>() {
        qwen3::Model<Cfg> model(std::move(ckpt));
        qwen3::Conversation<Cfg> chat(model, tokenizer, options);
        std::fprintf(stderr, "%s loaded; thinking %s; /exit to quit, /help for commands\n", std::string(Cfg::name).c_str(),
                     thinking ? "on" : "off");
        std::string line;
        std::size_t pending_calls = 0;  // tool calls of the last reply still without a result
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
                pending_calls = 0;
                std::fputs("(new conversation)\n", stdout);
                continue;
            }
            // /tool TEXT: one call's result; the model replies once every call of its last reply has one
            const bool tool_result = line.rfind("/tool ", 0) == 0 || line == "/tool";
            if (tool_result) {
                if (pending_calls == 0) {
                    std::fputs("(no tool call awaits a result)\n", stdout);
                    continue;
                }
                chat.add(qwen3::chat::Message::tool(line.size() > 6 ? line.substr(6) : std::string()));
                if (--pending_calls > 0) continue;
            }
            bool in_reasoning = false;
            auto on_reply = [&](const qwen3::chat::ReplyDelta& d) {
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
            };
            const qwen3::Reply reply = tool_result ? chat.respond(on_reply) : chat.send(line, on_reply);
            pending_calls = reply.tool_calls.size();
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
