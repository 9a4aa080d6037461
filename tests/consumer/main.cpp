// consumer MODEL TOKEN...: loads the micro model, evaluates the tokens and prints the most likely next
// token ("top token: N"). Built with no compiler flags of its own, as a user's program would be.
#include <qwen3/qwen3.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s MODEL TOKEN...\n", argv[0]);
        return 2;
    }
    try {
        qwen3::Model<qwen3::Qwen3_Micro> model(argv[1]);
        qwen3::Session<qwen3::Qwen3_Micro, qwen3::KVF32> session(model, 1);
        std::vector<std::int32_t> tokens;
        for (int i = 2; i < argc; ++i) tokens.push_back(std::int32_t(std::atoi(argv[i])));
        const auto logits = session.eval(tokens);
        std::printf("top token: %d\n", int(std::max_element(logits.begin(), logits.end()) - logits.begin()));
        return 0;
    } catch (const qwen3::Error& e) {
        std::fprintf(stderr, "consumer: %s\n", e.what());
        return 1;
    }
}
