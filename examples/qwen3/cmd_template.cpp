// qwen3 template [--jsonl]: renders chat requests with the Qwen3 chat template.
//
// Input: one JSON object {"messages": [...], "tools": [...], "add_generation_prompt": bool,
// "enable_thinking": bool} on stdin; output: the prompt text exactly (no newline added).
// --jsonl: one object per input line; one line {"rendered": "..."} per input line, or
// {"error": "..."} for a request the template refuses (the exit status is then 1).
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include <qwen3/chat/template.hpp>
#include <qwen3/error.hpp>
#include <qwen3/format/json.hpp>

#include "cli.hpp"
#include "commands.hpp"

namespace {

void write_stdout(std::string_view bytes) { std::fwrite(bytes.data(), 1, bytes.size(), stdout); }

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
            out = "{\"rendered\": " + qwen3::json::quote(qwen3::chat::render_text(request)) + "}\n";
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
    cli::Args args(argc, argv, {{"--jsonl", "", false}});
    if (!args.positional().empty()) throw cli::UsageError("unexpected argument " + args.positional()[0]);
    if (args.has("--jsonl")) return run_jsonl();
    std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    qwen3::json::Value request = qwen3::json::parse(input, "stdin");
    write_stdout(qwen3::chat::render_text(request));
    return 0;
}
