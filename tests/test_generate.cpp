// Generation against llama.cpp: greedy decoding of the tiny random model (full vocabulary, rebuilt in
// memory by random_model.hpp) reproduces llama.cpp's greedy tokens through the library's Generator
// (test_cli runs `qwen3 generate` on the same weights). Also: stop strings, cancellation, prefix
// reuse and the arena's limit, on the same model.
#include <doctest/doctest.h>

#include <memory>
#include <qwen3/format/gguf_writer.hpp>
#include <qwen3/generation.hpp>

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

namespace {

// A message of a chat test case (tests/data/chat/cases.jsonl) as the library's Message.
qwen3::chat::Message message_of(const qwen3::json::Value& m) {
    qwen3::chat::Message out;
    out.role = m.at("role").as_string();
    if (const auto* c = m.find("content"); c && c->is_string()) out.content = c->as_string();
    if (const auto* r = m.find("reasoning_content"); r && r->is_string()) out.reasoning_content = r->as_string();
    if (const auto* calls = m.find("tool_calls"))
        for (const qwen3::json::Value& call : calls->as_array()) {
            const qwen3::json::Value& f = call.find("function") ? call.at("function") : call;
            out.tool_calls.push_back({f.at("name").as_string(), f.at("arguments")});
        }
    return out;
}

}  // namespace

TEST_CASE("a Conversation prompts the model with the Jinja template's rendering, thinking on or off, with tools and tool results") {
    TinyFixture& f = tiny();
    // the built-in renderer, and the Jinja interpreter running the template file
    const auto from_file = std::make_shared<const qwen3::chat::ChatTemplate>(test::read_file(test::data_path("chat/qwen3_chat_template.jinja")));
    for (const auto& chat_template : {std::shared_ptr<const qwen3::chat::ChatTemplate>(), from_file}) {
        CAPTURE(bool(chat_template));
        int used = 0, with_tools = 0, without_thinking = 0;
        for (const qwen3::json::Value& c : test::read_jsonl("chat/cases.jsonl")) {
            const qwen3::json::Value* agp = c.find("add_generation_prompt");
            if (!agp || !agp->as_bool() || !c.find("rendered")) continue;
            std::vector<qwen3::chat::Message> messages;
            for (const qwen3::json::Value& m : c.at("messages").as_array()) messages.push_back(message_of(m));
            // only cases that the library's messages express exactly (the others hold other JSON types)
            if (qwen3::json::dump(qwen3::chat::make_chat_request(messages).at("messages")) != qwen3::json::dump(c.at("messages")))
                continue;
            qwen3::ConversationOptions options;
            options.chat_template = chat_template;
            options.enable_thinking = c.find("enable_thinking") ? c.at("enable_thinking").as_bool() : true;
            if (const auto* tools = c.find("tools")) options.tools = tools->as_array();
            options.max_tokens = 1;
            options.session.threads = 2;
            qwen3::Conversation<Cfg, qwen3::KVF32> chat(f.model, f.tokenizer, options);
            for (qwen3::chat::Message& m : messages) chat.add(std::move(m));
            const qwen3::Reply reply = chat.respond();
            const std::vector<std::int32_t> expected = f.tokenizer.encode(c.at("rendered").as_string());
            const auto context = chat.generator().context();
            CAPTURE(c.at("rendered").as_string());
            CHECK(reply.stats.prompt_tokens == int(expected.size()));
            CHECK(std::vector<std::int32_t>(context.begin(), context.end()) == expected);
            CHECK(reply.reason == qwen3::StopReason::max_tokens);
            ++used;
            with_tools += c.find("tools") ? 1 : 0;
            without_thinking += options.enable_thinking ? 0 : 1;
        }
        MESSAGE(used << " conversations, " << with_tools << " with tools, " << without_thinking << " with thinking off");
        CHECK(used >= 15);
        CHECK(with_tools >= 5);
        CHECK(without_thinking >= 3);
    }
}

TEST_CASE("a template that opens the think block (Qwen3-Thinking-2507) gets a reply that starts as reasoning") {
    TinyFixture& f = tiny();
    std::string source = test::read_file(test::data_path("chat/qwen3_chat_template.jinja"));
    const std::string prompt_line = "{{- '<|im_start|>assistant\\n' }}";
    REQUIRE(source.find(prompt_line) != std::string::npos);
    source.replace(source.rfind(prompt_line), prompt_line.size(), "{{- '<|im_start|>assistant\\n<think>\\n' }}");
    qwen3::ConversationOptions options;
    options.chat_template = std::make_shared<const qwen3::chat::ChatTemplate>(source);
    options.max_tokens = 6;
    options.session.threads = 2;
    qwen3::SamplerParams greedy;
    greedy.temperature = 0;
    options.sampling = greedy;
    qwen3::Conversation<Cfg, qwen3::KVF32> chat(f.model, f.tokenizer, options);
    std::string reasoning, answer;
    const qwen3::Reply reply = chat.send("Hello", [&](const qwen3::chat::ReplyDelta& d) {
        reasoning += d.reasoning;
        answer += d.answer;
        return true;
    });
    // the prompt ends with "<think>\n" (the template's), and the random model never closes it here
    const auto context = chat.generator().context();
    const std::string prompt_text = f.tokenizer.decode(std::vector<std::int32_t>(context.begin(), context.begin() + reply.stats.prompt_tokens));
    CHECK(prompt_text.ends_with("<|im_start|>assistant\n<think>\n"));
    CHECK(reply.reason == qwen3::StopReason::max_tokens);
    CHECK(answer.empty());
    CHECK(reply.content.empty());
    CHECK_FALSE(reply.reasoning.empty());
    CHECK(reasoning.find(reply.reasoning) != std::string::npos);
    // the history keeps it as the assistant's reasoning
    REQUIRE(chat.messages().size() == 2);
    CHECK(chat.messages()[1].reasoning_content == reply.reasoning);
}

TEST_CASE("a second turn reuses the first turn's tokens and gives the logits of a fresh session over the whole prompt") {
    TinyFixture& f = tiny();
    for (bool thinking : {true, false}) {
        CAPTURE(thinking);
        qwen3::ConversationOptions options;
        options.enable_thinking = thinking;
        options.system = "You are a helpful assistant.";
        options.max_tokens = 3;
        options.session.threads = 2;
        qwen3::Conversation<Cfg, qwen3::KVF32> chat(f.model, f.tokenizer, options);
        const qwen3::Reply first = chat.send("What is the capital of France?");
        CHECK(first.stats.reused_tokens == 0);
        chat.options().max_tokens = 1;  // the arena then ends with the prompt: its logits are the session's
        const qwen3::Reply second = chat.send("And of Germany?");
        CHECK(second.stats.reused_tokens > 0);
        if (thinking) CHECK(second.stats.reused_tokens >= first.stats.prompt_tokens);  // the first prompt is a prefix
        const auto context = chat.generator().context();
        REQUIRE(context.size() == std::size_t(second.stats.prompt_tokens));
        qwen3::Session<Cfg, qwen3::KVF32> fresh(f.model, 2);
        fresh.eval(context);
        CHECK(test::max_abs_diff(chat.generator().session().logits(), fresh.logits()) < 1e-5f);
        CHECK(chat.messages().size() == 5);  // system, user, assistant, user, assistant
    }
}

TEST_CASE("Generator::complete follows llama.cpp's greedy path, and stops at the end of a turn and when the arena is full") {
    TinyFixture& f = tiny();
    const test::Golden g = test::load_golden("tiny", "short5", Cfg::vocab);
    qwen3::GenerationOptions options;
    options.max_tokens = 6;
    qwen3::Generator<Cfg, qwen3::KVF32> gen(f.model, f.tokenizer, qwen3::SessionOptions{2});
    const qwen3::Generation out = gen.complete("The capital of France is", options);
    CHECK(out.stats.prompt_tokens == int(g.tokens.size()));
    CHECK(out.tokens == std::vector<std::int32_t>(g.greedy.begin(), g.greedy.begin() + 6));

    // <|im_end|>'s embedding row set to twice the row of llama.cpp's first greedy token: with tied
    // embeddings its logit doubles that token's (positive) top logit, so it wins at once; the prompt
    // does not hold <|im_end|>, so nothing else changes
    const std::int32_t im_end = *f.tokenizer.token_id("<|im_end|>"), first = g.greedy[0];
    REQUIRE(g.prompt_row(g.positions.size() - 1)[std::size_t(first)] > 0.1f);
    qwen3::Checkpoint ckpt = test::make_random_model(test::tiny_spec(), f.pool);
    const qwen3::TensorView* embd = ckpt.find("token_embd.weight");
    REQUIRE(embd->type == qwen3::DType::bf16);
    auto* rows = const_cast<std::uint16_t*>(reinterpret_cast<const std::uint16_t*>(embd->data));
    for (int i = 0; i < Cfg::hidden; ++i) {
        const float twice = 2 * qwen3::detail::simd::bf16_to_f32(rows[std::size_t(first) * Cfg::hidden + std::size_t(i)]);
        rows[std::size_t(im_end) * Cfg::hidden + std::size_t(i)] = qwen3::detail::simd::f32_to_bf16(twice);
    }
    const qwen3::Model<Cfg> rigged(std::move(ckpt));
    qwen3::Generator<Cfg, qwen3::KVF32> ending(rigged, f.tokenizer, qwen3::SessionOptions{2});
    const qwen3::Generation ended = ending.generate(g.tokens, options);
    CHECK(ended.reason == qwen3::StopReason::end_of_turn);
    CHECK(ended.tokens == std::vector<std::int32_t>{im_end});
    CHECK(ended.text.empty());
    options.stop_at_end_of_turn = false;  // then it is a token like any other
    const qwen3::Generation kept_going = ending.generate(g.tokens, options);
    CHECK(kept_going.reason == qwen3::StopReason::max_tokens);
    CHECK(kept_going.tokens.front() == im_end);

    // an arena of 64 positions and a 60-token prompt: positions 60 .. 63 are decoded, a fifth token
    // sampled from the last, and generation stops there
    using Small = qwen3::WithContext<Cfg, 64>;
    const qwen3::Model<Small> small(test::make_random_model(test::tiny_spec(), f.pool));
    qwen3::Generator<Small, qwen3::KVF32> full(small, f.tokenizer, qwen3::SessionOptions{2});
    options.max_tokens = 100;
    const std::vector<std::int32_t> prompt(60, g.tokens[0]);
    const qwen3::Generation filled = full.generate(prompt, options);
    CHECK(filled.reason == qwen3::StopReason::context_full);
    CHECK(filled.tokens.size() == 5);
    CHECK(full.session().position() == 64);
}
