// The tiny random model (full 151,936-token vocabulary, BF16 embedding) against llama.cpp, rebuilt
// in memory by random_model.hpp: prompts with control tokens, decode steps through <think> and
// </think>, greedy tokens; and the loaders' checks of shapes against the variant.
#include <doctest/doctest.h>

#include <qwen3/model.hpp>

#include "golden.hpp"
#include "random_model.hpp"

using Cfg = qwen3::Qwen3_Tiny;

TEST_CASE("tiny model (BF16 embedding widened to f32) matches llama.cpp on every prompt and decode step") {
    qwen3::ThreadPool pool(2);
    qwen3::Model<Cfg> model(test::make_random_model(test::tiny_spec(), pool));
    for (const char* name : {"short5", "chat_special", "long64"}) {
        const test::Golden g = test::load_golden("tiny", name, Cfg::vocab);
        test::check_golden(model, g, 2);
        if (std::string(name) == "short5") test::check_golden(model, g, 1);
    }
}

TEST_CASE("a model bound to the wrong variant names the tensor and the variant that fits") {
    qwen3::ThreadPool pool(2);
    auto spec = test::tiny_spec();
    spec.vocab = 4096;  // the micro shape
    std::string message;
    CHECK(test::throws_error([&] { qwen3::Model<Cfg> m(test::make_random_model(spec, pool)); },
                             qwen3::ErrorCode::config_mismatch, "matches the named variant Qwen3-micro", &message));
    INFO(message);
    CHECK(message.find("vocab 4096") != std::string::npos);
}
