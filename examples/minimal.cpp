// The smallest chat program: load a model, ask one question, print the answer.
//
//   ./minimal Qwen3-0.6B-Q8_0.gguf "Why is the sky blue?"
#include <cstdio>

#include <qwen3/qwen3.hpp>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s MODEL [QUESTION]\n", argv[0]);
        return 2;
    }
    const char* question = argc > 2 ? argv[2] : "Who are you?";
    try {
        qwen3::Model<qwen3::Qwen3_0_6B> model(argv[1]);           // a .gguf file or a Hugging Face folder
        qwen3::Tokenizer tokenizer = qwen3::Tokenizer::load(argv[1]);
        qwen3::ConversationOptions options;
        options.enable_thinking = false;                               // answer directly, no <think> block
        qwen3::Conversation chat(model, tokenizer, options);
        qwen3::Reply reply = chat.send(question);
        std::printf("%s\n", reply.content.c_str());
    } catch (const qwen3::Error& e) {                              // every failure: what, where, expected
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
