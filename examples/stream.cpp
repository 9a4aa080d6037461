// Streaming: the reply is printed as it is generated (reasoning dimmed), and generation stops early
// when the answer grows past a length the program chooses, by returning false from the callback.
//
//   ./stream MODEL [PROMPT] [MAX_ANSWER_BYTES]
#include <cstdio>
#include <cstdlib>
#include <string>

#include <qwen3/qwen3.hpp>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s MODEL [PROMPT] [MAX_ANSWER_BYTES]\n", argv[0]);
        return 2;
    }
    const std::string prompt = argc > 2 ? argv[2] : "Write a haiku about memory bandwidth.";
    const std::size_t max_answer = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 2000;
    try {
        const qwen3::Checkpoint checkpoint = qwen3::Checkpoint::open(argv[1]);
        const qwen3::Tokenizer tokenizer = qwen3::Tokenizer::load(argv[1]);
        // The compiled variant that fits the file runs it (each listed variant compiles its own kernels).
        using Variants = qwen3::ConfigList<qwen3::Qwen3_0_6B, qwen3::Qwen3_4B, qwen3::Qwen3_8B, qwen3::Qwen3_Micro>;
        return qwen3::with_variant<Variants>(checkpoint.params(), [&]<class Cfg>() {
            qwen3::Model<Cfg> model(checkpoint);
            qwen3::Conversation chat(model, tokenizer);  // thinking on, Qwen3's recommended sampling
            std::size_t answered = 0;
            const qwen3::Reply reply = chat.send(prompt, [&](const qwen3::chat::ReplyDelta& delta) {
                if (!delta.reasoning.empty()) std::printf("\033[2m%s\033[0m", delta.reasoning.c_str());
                std::printf("%s", delta.answer.c_str());
                std::fflush(stdout);
                answered += delta.answer.size();
                return answered < max_answer;  // false cancels the generation
            });
            std::printf("\n\n[%d tokens at %.1f tokens/s, stopped by: %s]\n", reply.stats.generated_tokens,
                        reply.stats.generation_tokens_per_second(), qwen3::to_string(reply.reason));
            return 0;
        });
    } catch (const qwen3::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
