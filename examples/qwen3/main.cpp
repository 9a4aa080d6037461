// qwen3 - command-line tool of qwen3.hpp: inspect models, run them, tokenize, chat, benchmark.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string_view>

#include <qwen3/error.hpp>

#include "cli.hpp"
#include "commands.hpp"

namespace {

struct Command {
    const char* name;
    int (*run)(int, char**);
    const char* usage;
};

const Command kCommands[] = {
    {"info", run_info, "info MODEL [--tensors]            variant, hyperparameters, tensor types and sizes"},
    {"bench", run_bench, "bench MODEL [-p 512] [-n 128] [-d 0,4096] [-t N] [-r 5] [--json] [--bf16-products] [--bandwidth] [--no-copy] [--parallel 1,8,16]   speed as llama-bench (and llama-batched-bench) measure it"},
    {"generate", run_generate, "generate MODEL -p PROMPT [-n 128] [--temp T --top-k K --top-p P --min-p M --seed S] [--ids] [--json-schema FILE | --grammar FILE.gbnf]   raw completion"},
    {"chat", run_chat, "chat MODEL [--think|--no-think] [--system TEXT] [--hide-reasoning] [sampling flags] [--tools FILE [--tool-choice auto|none|required|NAME]] [--json | --json-schema FILE]   interactive chat"},
    {"tokenize", run_tokenize, "tokenize --tokenizer PATH [--jsonl] [--plain]    text on stdin -> ids (JSON)"},
    {"detokenize", run_detokenize, "detokenize --tokenizer PATH [--jsonl] [--skip-special]   ids (JSON) on stdin -> text"},
    {"template", run_template, "template [--jsonl] [--chat-template FILE.jinja | --model MODEL]   chat request JSON on stdin -> the rendered prompt"},
    {"logits", run_logits, "logits MODEL --tokens 1,2,3 [--out FILE] [-t N]   one prefill; all positions' logits"},
#if defined(QWEN3_TOOL_SERVE)
    {"serve", run_serve, "serve MODEL [--host 127.0.0.1] [--port 8080] [--parallel 4] [--queue N] [--api-key KEY] [--ctx-per-seq N] [-t N] [--model-name NAME] [-n MAX_TOKENS] [sampling flags]   OpenAI-compatible HTTP server"},
#endif
    {"quantize", run_quantize, "quantize IN OUT TYPE [-t N] [-q]   GGUF or HF folder -> GGUF of TYPE (F16, BF16, Q8_0, Q4_0, Q5_0, Q4_K_M, Q5_K_M, Q6_K)"},
};

void print_usage(std::FILE* out) {
    std::fprintf(out, "usage: qwen3 COMMAND [ARGS]\n\nMODEL is a .gguf file or a Hugging Face folder (config.json + safetensors).\n\ncommands:\n");
    for (const Command& c : kCommands) std::fprintf(out, "  qwen3 %s\n", c.usage);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "help") == 0) {
        print_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (const Command& c : kCommands) {
        if (std::string_view(argv[1]) != c.name) continue;
        try {
            return c.run(argc - 1, argv + 1);
        } catch (const cli::UsageError& e) {
            std::fprintf(stderr, "qwen3 %s: %s\nusage: qwen3 %s\n", c.name, e.what(), c.usage);
            return 2;
        } catch (const qwen3::Error& e) {
            std::fprintf(stderr, "qwen3 %s: error (%s): %s\n", c.name, qwen3::to_string(e.code()), e.what());
            return 1;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "qwen3 %s: error: %s\n", c.name, e.what());
            return 1;
        }
    }
    std::fprintf(stderr, "qwen3: unknown command \"%s\"\n\n", argv[1]);
    print_usage(stderr);
    return 2;
}
