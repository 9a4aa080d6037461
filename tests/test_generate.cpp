// Generation against llama.cpp: greedy decoding of the tiny random model (full vocabulary, rebuilt in
// memory from make_model.py's generator) reproduces llama.cpp's greedy tokens, through the library's
// Generator and through the `qwen3 generate` program on the same weights written as a GGUF file.
// Also: stop strings, cancellation, prefix reuse and the arena's limit, on the same model.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <qwen3/format/gguf_writer.hpp>
#include <qwen3/generation.hpp>
#include <sstream>

#include "golden.hpp"
#include "random_model.hpp"
#include "support.hpp"

using Cfg = qwen3::Qwen3_Tiny;

namespace {

struct TinyFixture {
    qwen3::ThreadPool pool{2};
    qwen3::Model<Cfg> model{test::make_random_model(test::tiny_spec(), pool)};
    qwen3::Tokenizer tokenizer = qwen3::Tokenizer::from_tokenizer_json(test::data_path("tokenizer/tokenizer.json"));
};

TinyFixture& tiny() {
    static TinyFixture f;
    return f;
}


std::vector<std::int32_t> parse_ids(const std::string& text) {
    std::vector<std::int32_t> out;
    std::string digits;
    for (char c : text) {
        if (c >= '0' && c <= '9') {
            digits += c;
        } else if (!digits.empty()) {
            out.push_back(std::stoi(digits));
            digits.clear();
        }
    }
    return out;
}

std::string run(const std::string& command) {
    std::string out;
    FILE* p = popen(command.c_str(), "r");
    REQUIRE(p != nullptr);
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    CHECK(pclose(p) == 0);
    return out;
}

// llama.cpp's greedy tokens, as far as every earlier step had a top-1 margin above `tolerance`
// (past a near-tie, either choice is right and the paths may part).
std::size_t comparable_steps(const test::Golden& g, float tolerance) {
    std::size_t n = 0;
    while (n < g.greedy.size() && g.margins[n] > tolerance) ++n;
    return n;
}

}  // namespace

TEST_CASE("greedy Generator on the tiny model reproduces llama.cpp's greedy tokens (F32 and default BF16 KV)") {
    TinyFixture& f = tiny();
    for (const char* name : {"short5", "long64", "chat_special"}) {
        const test::Golden g = test::load_golden("tiny", name, Cfg::vocab);
        CAPTURE(name);
        qwen3::GenerationOptions options;
        options.max_tokens = int(g.greedy.size());
        options.stop_at_end_of_turn = false;
        qwen3::Generator<Cfg, qwen3::KVF32> exact(f.model, f.tokenizer, qwen3::SessionOptions{2});
        const qwen3::Generation out = exact.generate(g.tokens, options);
        REQUIRE(out.tokens.size() == g.greedy.size());
        const std::size_t n = comparable_steps(g, 1e-4f);
        CHECK(n > 8);
        CHECK(std::vector<std::int32_t>(out.tokens.begin(), out.tokens.begin() + long(n)) ==
              std::vector<std::int32_t>(g.greedy.begin(), g.greedy.begin() + long(n)));
        // the default arena rounds keys and values to bf16: the same tokens where margins are wider
        qwen3::Generator<Cfg> rounded(f.model, f.tokenizer, qwen3::SessionOptions{2});
        const qwen3::Generation out16 = rounded.generate(g.tokens, options);
        const std::size_t n16 = comparable_steps(g, 1e-2f);
        CHECK(std::vector<std::int32_t>(out16.tokens.begin(), out16.tokens.begin() + long(n16)) ==
              std::vector<std::int32_t>(g.greedy.begin(), g.greedy.begin() + long(n16)));
        // the generated text is the decoding of the tokens
        CHECK(out.text == f.tokenizer.decode(out.tokens));
    }
}

#if defined(QWEN3_TOOL_PROGRAM)
TEST_CASE("qwen3 generate --ids on the tiny model file prints llama.cpp's greedy tokens") {
    test::TempDir dir;
    const std::string path = dir.file("tiny.gguf");
    test::write_gguf(tiny().model.checkpoint(), path, "tiny");
    const test::Golden g = test::load_golden("tiny", "short5", Cfg::vocab);
    std::ostringstream cmd;
    cmd << '"' << QWEN3_TOOL_PROGRAM << "\" generate \"" << path << "\" --tokenizer \"" << test::data_path("tokenizer/tokenizer.json")
        << "\" -p \"The capital of France is\" -n " << g.greedy.size() << " --temp 0 --ids --ignore-eos -t 2 2>/dev/null";
    INFO(cmd.str());
    const std::vector<std::int32_t> ids = parse_ids(run(cmd.str()));
    REQUIRE(ids.size() == g.greedy.size());
    const std::size_t n = comparable_steps(g, 1e-2f);
    CHECK(n > 4);
    CHECK(std::vector<std::int32_t>(ids.begin(), ids.begin() + long(n)) ==
          std::vector<std::int32_t>(g.greedy.begin(), g.greedy.begin() + long(n)));
    // the prompt text tokenizes to the golden's ids (so the tool ran the same prompt)
    CHECK(tiny().tokenizer.encode("The capital of France is") == g.tokens);
}
#endif

TEST_CASE("generation stops on stop strings, cancellation and the token limit; prompts reuse the arena's prefix") {
    TinyFixture& f = tiny();
    qwen3::Generator<Cfg> gen(f.model, f.tokenizer, qwen3::SessionOptions{2});
    const std::vector<std::int32_t> prompt = f.tokenizer.encode("The capital of France is");
    qwen3::GenerationOptions options;
    options.max_tokens = 12;
    const qwen3::Generation first = gen.generate(prompt, options);
    CHECK(first.reason == qwen3::StopReason::max_tokens);
    CHECK(first.tokens.size() == 12);
    CHECK(first.stats.reused_tokens == 0);

    // the same prompt again: all but its last token come from the arena, and greedy repeats itself
    const qwen3::Generation again = gen.generate(prompt, options);
    CHECK(again.stats.reused_tokens == int(prompt.size()) - 1);
    CHECK(again.tokens == first.tokens);

    // a stop string taken from the first run's text: the text before it is returned
    REQUIRE(first.text.size() > 4);
    const std::string stop = first.text.substr(first.text.size() / 2, 2);
    options.stop = {stop};
    const qwen3::Generation stopped = gen.generate(prompt, options);
    CHECK(stopped.reason == qwen3::StopReason::stop_string);
    CHECK(stopped.text == first.text.substr(0, first.text.find(stop)));
    options.stop.clear();

    // cancellation after the second piece
    int pieces = 0;
    const qwen3::Generation cancelled = gen.generate(prompt, options, [&](std::string_view) { return ++pieces < 2; });
    CHECK(cancelled.reason == qwen3::StopReason::cancelled);
    CHECK(pieces == 2);

    // a prompt longer than the arena is refused with its size in the message
    const std::vector<std::int32_t> too_long(std::size_t(Cfg::max_context) + 1, 785);
    CHECK(test::throws_error([&] { gen.generate(too_long, options); }, qwen3::ErrorCode::context_overflow,
                             std::to_string(Cfg::max_context)));
}
