// qwen3 template [--jsonl] [--chat-template FILE.jinja | --model MODEL]: renders chat requests.
//
// Input: one JSON object {"messages": [...], "tools": [...], "add_generation_prompt": bool,
// "enable_thinking": bool} on stdin; output: the prompt text exactly (no newline added).
// --jsonl: one object per input line; one line {"rendered": "..."} per input line, or
// {"error": "..."} for a request the template refuses (the exit status is then 1).
// The template: the built-in Qwen3 renderer, or a Jinja2 template from a file (--chat-template)
// or from a model (--model: the GGUF's tokenizer.chat_template, the folder's chat_template.jinja
// or tokenizer_config.json), run by the library's Jinja interpreter.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include <optional>

#include <qwen3/chat/chat_template.hpp>
#include <qwen3/chat/template.hpp>
#include <qwen3/format/checkpoint.hpp>
#include <qwen3/error.hpp>
#include <qwen3/format/json.hpp>

#include "cli.hpp"
#include "commands.hpp"

namespace {

void write_stdout(std::string_view bytes) { std::fwrite(bytes.data(), 1, bytes.size(), stdout); }

// The template chosen on the command line (none: the built-in renderer).
std::optional<qwen3::chat::ChatTemplate> chosen;

std::string render(const qwen3::json::Value& request) {
    return chosen ? chosen->render(request).text : qwen3::chat::render_text(request);
}

int run_jsonl() {
    int status = 0;
    std::string line;
    std::size_t number = 0;
    while (std::getline(std::cin, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        std::string out;
        try {
            qwen3::json::Value request = qwen3::json::parse(line, "stdin line " + std::to_string(number));
            out = "{\"rendered\": " + qwen3::json::quote(render(request)) + "}\n";
        } catch (const qwen3::Error& e) {
            out = "{\"error\": " + qwen3::json::quote(e.what()) + "}\n";
            status = 1;
        }
        write_stdout(out);
    }
    return status;
}

}  // namespace

int run_template(int argc, char** argv) {
    cli::Args args(argc, argv, {{"--jsonl", "", false}, {"--chat-template", "", true}, {"--model", "", true}});
    if (!args.positional().empty()) throw cli::UsageError("unexpected argument " + args.positional()[0]);
    if (args.has("--chat-template") && args.has("--model")) throw cli::UsageError("--chat-template and --model exclude each other");
    if (args.has("--chat-template")) chosen.emplace(cli::read_text_file(args.get("--chat-template")));
    if (args.has("--model")) {
        const qwen3::Checkpoint ckpt = qwen3::Checkpoint::open(args.get("--model"));
        chosen = ckpt.gguf_file() ? qwen3::chat::ChatTemplate::from_gguf(*ckpt.gguf_file())
                                  : qwen3::chat::ChatTemplate::from_folder(ckpt.folder());
        if (!chosen) throw qwen3::Error(qwen3::ErrorCode::invalid_argument, args.get("--model") + " has no chat template");
    }
    if (args.has("--jsonl")) return run_jsonl();
    std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    qwen3::json::Value request = qwen3::json::parse(input, "stdin");
    write_stdout(render(request));
    return 0;
}
