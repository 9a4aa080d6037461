// qwen3 tokenize / qwen3 detokenize: text to token ids and back, with the Qwen3 tokenizer.
//
//   qwen3 tokenize --tokenizer PATH [--jsonl] [--plain]
//       stdin is the text (bytes as they are; ill-formed UTF-8 reads as U+FFFD); stdout one JSON array
//       of ids and a newline. --jsonl: each input line {"text": ...} gives a line {"ids": [...]}, in
//       order. --plain: added-token text ("<|im_end|>") is encoded as plain text (untrusted input).
//   qwen3 detokenize --tokenizer PATH [--jsonl] [--skip-special]
//       stdin is a JSON array of ids; stdout the text exactly (no newline added). --jsonl: each line
//       {"ids": [...]} gives a line {"text": ...}. --skip-special drops control tokens (<|im_end|>...).
// PATH is a tokenizer.json, a .gguf file or a model folder holding a tokenizer.json.
// A --jsonl line that cannot be read gives {"error": "..."} in its place, and the exit status is 1.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <qwen3/error.hpp>
#include <qwen3/format/json.hpp>
#include <qwen3/tokenizer.hpp>

#include "cli.hpp"
#include "commands.hpp"

namespace {

void write_stdout(std::string_view bytes) { std::fwrite(bytes.data(), 1, bytes.size(), stdout); }

std::string read_stdin() { return std::string((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>()); }

qwen3::Tokenizer load_tokenizer(const cli::Args& args) {
    if (!args.has("--tokenizer")) throw cli::UsageError("--tokenizer PATH is required (a tokenizer.json, a .gguf or a model folder)");
    if (!args.positional().empty()) throw cli::UsageError("unexpected argument " + args.positional()[0]);
    return qwen3::Tokenizer::load(args.get("--tokenizer"));
}

std::string ids_json(const std::vector<qwen3::TokenId>& ids) {
    std::string out = "[";
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (i) out += ',';
        out += std::to_string(ids[i]);
    }
    return out + "]";
}

// A JSON array of token ids; ids must be integers in int32 range (ids naming no token decode to nothing).
std::vector<qwen3::TokenId> parse_ids(const qwen3::json::Value& array, const std::string& where) {
    if (!array.is_array()) qwen3::detail::fail(qwen3::ErrorCode::invalid_argument, where, ": expected a JSON array of token ids");
    std::vector<qwen3::TokenId> ids;
    ids.reserve(array.as_array().size());
    for (const qwen3::json::Value& v : array.as_array()) {
        if (!v.is_integer() || v.as_int() < 0 || v.as_int() > 0x7FFFFFFF)
            qwen3::detail::fail(qwen3::ErrorCode::invalid_argument, where, ": token ids must be integers from 0 to 2147483647, found ",
                                qwen3::json::dump(v));
        ids.push_back(qwen3::TokenId(v.as_int()));
    }
    return ids;
}

// Runs `line_fn` on each non-blank stdin line; its result, or {"error": ...}, is one output line.
template <typename LineFn>
int for_each_line(LineFn&& line_fn) {
    int status = 0;
    std::string line;
    std::size_t number = 0;
    while (std::getline(std::cin, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        std::string out;
        try {
            const std::string where = "stdin line " + std::to_string(number);
            out = line_fn(qwen3::json::parse(line, where), where) + "\n";
        } catch (const qwen3::Error& e) {
            out = "{\"error\": " + qwen3::json::quote(e.what()) + "}\n";
            status = 1;
        }
        write_stdout(out);
    }
    return status;
}

}  // namespace

int run_tokenize(int argc, char** argv) {
    cli::Args args(argc, argv, {{"--tokenizer", "", true}, {"--jsonl", "", false}, {"--plain", "", false}});
    const qwen3::Tokenizer tokenizer = load_tokenizer(args);
    qwen3::EncodeOptions options;
    options.match_added_tokens = !args.has("--plain");
    if (!args.has("--jsonl")) {
        write_stdout(ids_json(tokenizer.encode(read_stdin(), options)) + "\n");
        return 0;
    }
    return for_each_line([&](const qwen3::json::Value& request, const std::string& where) {
        const qwen3::json::Value* text = request.is_object() ? request.find("text") : nullptr;
        if (!text || !text->is_string())
            qwen3::detail::fail(qwen3::ErrorCode::invalid_argument, where, ": expected {\"text\": \"...\"}");
        return "{\"ids\": " + ids_json(tokenizer.encode(text->as_string(), options)) + "}";
    });
}

int run_detokenize(int argc, char** argv) {
    cli::Args args(argc, argv, {{"--tokenizer", "", true}, {"--jsonl", "", false}, {"--skip-special", "", false}});
    const qwen3::Tokenizer tokenizer = load_tokenizer(args);
    const bool skip = args.has("--skip-special");
    if (!args.has("--jsonl")) {
        const std::vector<qwen3::TokenId> ids = parse_ids(qwen3::json::parse(read_stdin(), "stdin"), "stdin");
        write_stdout(tokenizer.decode(ids, skip));
        return 0;
    }
    return for_each_line([&](const qwen3::json::Value& request, const std::string& where) {
        const qwen3::json::Value* ids = request.is_object() ? request.find("ids") : nullptr;
        if (!ids) qwen3::detail::fail(qwen3::ErrorCode::invalid_argument, where, ": expected {\"ids\": [...]}");
        return "{\"text\": " + qwen3::json::quote(tokenizer.decode(parse_ids(*ids, where), skip)) + "}";
    });
}
