// The tokenizer on its own: text to ids and back, the untrusted-text mode, and streaming decode.
//
//   ./tokenize tokenizer.json "Hello <|im_start|> world"      (also a .gguf file or a model folder)
#include <cstdio>
#include <string>

#include <qwen3/tokenizer.hpp>

static void print_ids(const char* label, const std::vector<qwen3::TokenId>& ids) {
    std::printf("%s:", label);
    for (qwen3::TokenId id : ids) std::printf(" %d", id);
    std::printf("\n");
}

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s TOKENIZER [TEXT]\n", argv[0]);
        return 2;
    }
    const std::string text = argc > 2 ? argv[2] : "Hello <|im_start|> wörld 👋";
    try {
        const qwen3::Tokenizer tokenizer = qwen3::Tokenizer::load(argv[1]);
        const auto ids = tokenizer.encode(text);  // as Hugging Face: "<|im_start|>" is one control token
        print_ids("ids", ids);
        print_ids("untrusted", tokenizer.encode_plain(text));  // as text: a user cannot forge control tokens
        std::printf("decoded: %s\n", tokenizer.decode(ids).c_str());

        qwen3::StreamDecoder stream(tokenizer);  // one id at a time, whole UTF-8 characters only
        for (qwen3::TokenId id : ids) std::printf("[%s]", stream.push(id).c_str());
        std::printf("[%s]\n", stream.finish().c_str());
    } catch (const qwen3::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
