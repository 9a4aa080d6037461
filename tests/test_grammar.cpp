// Grammars: llama.cpp's GBNF examples and feature cases against verdicts computed by an independent
// recogniser (Lark, tests/grammar/gbnf_lark.py; tests/data/grammar/README.md); malformed grammars;
// the token mask against brute force over the real 151,643-token vocabulary; constrained generation
// with the tiny random model.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <qwen3/engine.hpp>
#include <qwen3/format/json.hpp>
#include <qwen3/generation.hpp>
#include <qwen3/grammar.hpp>

#include "random_model.hpp"
#include "support.hpp"

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in, "cannot open " << path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<qwen3::json::Value> read_jsonl(const std::string& path) {
    std::vector<qwen3::json::Value> out;
    std::istringstream lines(read_file(path));
    for (std::string line; std::getline(lines, line);)
        if (!line.empty()) out.push_back(qwen3::json::parse(line, path));
    return out;
}

bool recognizes(const qwen3::Grammar& g, const std::string& input) {
    qwen3::GrammarRecognizer r(g);
    return r.accept(input) && r.complete();
}

const qwen3::Tokenizer& tokenizer() {
    static const qwen3::Tokenizer t = qwen3::Tokenizer::from_tokenizer_json(test::data_path("tokenizer/tokenizer.json"));
    return t;
}
std::shared_ptr<const qwen3::TokenTrie> vocabulary() {
    static const auto v = std::make_shared<const qwen3::TokenTrie>(tokenizer(), 151936);
    return v;
}
std::vector<qwen3::TokenId> end_tokens() { return {*tokenizer().token_id("<|im_end|>"), *tokenizer().token_id("<|endoftext|>")}; }

}  // namespace

TEST_CASE("llama.cpp's example grammars accept exactly the inputs Lark accepts") {
    std::map<std::string, qwen3::Grammar> grammars;
    int checked = 0;
    for (const auto& c : read_jsonl(test::data_path("grammar/gbnf_cases.jsonl"))) {
        const std::string name = c.at("grammar").as_string();
        auto it = grammars.find(name);
        if (it == grammars.end()) it = grammars.emplace(name, qwen3::Grammar::from_gbnf(read_file(test::data_path("grammar/gbnf/" + name)))).first;
        const std::string& input = c.at("input").as_string();
        CHECK_MESSAGE(recognizes(it->second, input) == c.at("accepted").as_bool(), name << ": " << input);
        ++checked;
    }
    CHECK(grammars.size() >= 8);
    CHECK(checked > 400);
}

TEST_CASE("GBNF features (escapes, classes, repetition counts, groups, comments) agree with Lark") {
    int checked = 0;
    for (const auto& c : read_jsonl(test::data_path("grammar/gbnf_feature_cases.jsonl"))) {
        const qwen3::Grammar g = qwen3::Grammar::from_gbnf(c.at("gbnf").as_string());
        const std::string& input = c.at("input").as_string();
        CHECK_MESSAGE(recognizes(g, input) == c.at("accepted").as_bool(), c.at("gbnf").as_string() << " on " << input);
        ++checked;
    }
    CHECK(checked > 50);
}

TEST_CASE("a malformed grammar is an invalid_argument error saying where") {
    for (const auto& c : read_jsonl(test::data_path("grammar/gbnf_syntax_errors.jsonl"))) {
        const std::string& text = c.at("gbnf").as_string();
        try {
            (void)qwen3::Grammar::from_gbnf(text);
            FAIL_CHECK("accepted a malformed grammar (" << c.at("reason").as_string() << "): " << text);
        } catch (const qwen3::Error& e) {
            CHECK(e.code() == qwen3::ErrorCode::invalid_argument);
            const std::string message = e.what();
            CHECK((message.find("GBNF") != std::string::npos || message.find("grammar") != std::string::npos));
        }
    }
    // where: line and column
    try {
        (void)qwen3::Grammar::from_gbnf("root ::= \"a\" b\nb ::= [x-\n");
        FAIL_CHECK("accepted an unterminated class");
    } catch (const qwen3::Error& e) {
        CHECK(std::string(e.what()).find("line 2") != std::string::npos);
    }
    try {
        (void)qwen3::Grammar::from_gbnf("root ::= \"a\" item\n");
        FAIL_CHECK("accepted an undefined rule");
    } catch (const qwen3::Error& e) {
        CHECK(std::string(e.what()).find("'item'") != std::string::npos);
    }
}

TEST_CASE("the token mask is the set of tokens whose bytes continue the text, over the whole vocabulary") {
    const auto vocab = vocabulary();
    const auto ends = end_tokens();
    std::mt19937_64 rng(7);
    std::vector<std::pair<std::string, std::string>> grammars;  // (name, GBNF)
    for (const char* name : {"json.gbnf", "arithmetic.gbnf", "list.gbnf", "japanese.gbnf", "c.gbnf"})
        grammars.emplace_back(name, read_file(test::data_path(std::string("grammar/gbnf/") + name)));
    // bounded repetitions, whose copies the walks take as runs of characters: a JSON string under
    // maxLength, runs shorter than many tokens, a class leaving out one non-ASCII character, a
    // repetition that cycles through three states, non-ASCII only
    const std::string json_char = "json-char ::= [^\\x22\\x5c\\x00-\\x1f] | \"\\\\\" ( [\\x22\\x5c/bfnrt] | \"u\" [0-9a-fA-F]{4} )\n";
    grammars.emplace_back("maxLength 30", "root ::= \"\\\"\" json-char{0,30} \"\\\"\" [ ]* \"!\"\n" + json_char);
    grammars.emplace_back("runs of 6", "root ::= ([a-z ]{0,6} \".\")+\n");
    grammars.emplace_back("no e-acute", "root ::= [^\"é]{2,40} \"\\\"\"\n");
    grammars.emplace_back("cycle of 3", "root ::= ([a-zA-Z0-9 ]{3} \",\")*\n");
    grammars.emplace_back("non-ASCII", "root ::= [^\\x00-\\x7f]{0,12} \"!\"\n");
    for (const auto& [name, gbnf] : grammars) {
        CAPTURE(name);
        const auto grammar = std::make_shared<const qwen3::TokenGrammar>(qwen3::Grammar::from_gbnf(gbnf), vocab, ends);
        for (int walk = 0; walk < (name == "json.gbnf" || name == "maxLength 30" ? 3 : 1); ++walk) {
            qwen3::GrammarMatcher matcher(grammar);
            qwen3::GrammarRecognizer reference(grammar->grammar());  // runs bytes, no masks or caches
            qwen3::TokenBitmask mask;
            std::string text;
            for (int step = 0; step < 12; ++step) {
                CAPTURE(text);
                matcher.fill_mask(mask);
                // every token at the first steps and at the seventh, the allowed ones and a random
                // fiftieth of the others otherwise (under a sanitizer, a random fiftieth of all at
                // every step: the masks themselves are still computed whole)
                const bool every = !test::sanitized && (step < 2 || step == 6);
                std::vector<qwen3::TokenId> allowed;
                for (qwen3::TokenId id = 0; id < 151936; ++id) {
                    const bool in_mask = mask.test(id);
                    if (in_mask) allowed.push_back(id);
                    if (!every && rng() % 50 != 0 && (!in_mask || test::sanitized)) continue;
                    const bool is_end = std::find(ends.begin(), ends.end(), id) != ends.end();
                    const std::string_view bytes = vocab->bytes(id);
                    const bool truth = is_end ? reference.complete() : !bytes.empty() && reference.would_accept(bytes);
                    if (truth != in_mask) FAIL_CHECK("token " << id << " '" << std::string(bytes) << "': mask " << in_mask << ", bytes " << truth);
                }
                REQUIRE(!allowed.empty());
                const qwen3::TokenId id = allowed[rng() % allowed.size()];
                if (std::find(ends.begin(), ends.end(), id) != ends.end()) break;
                REQUIRE(matcher.accept_token(id));
                REQUIRE(reference.accept(vocab->bytes(id)));
                text += vocab->bytes(id);
            }
        }
    }
}

TEST_CASE("a matcher refuses tokens outside the grammar and end tokens before the text is complete") {
    const auto grammar = std::make_shared<const qwen3::TokenGrammar>(qwen3::Grammar::from_gbnf(R"(root ::= "yes" | "no")"), vocabulary(), end_tokens());
    qwen3::GrammarMatcher m(grammar);
    const auto yes = tokenizer().encode_plain("yes"), maybe = tokenizer().encode_plain("maybe");
    CHECK_FALSE(m.accept_token(maybe[0]));
    CHECK_FALSE(m.accept_token(end_tokens()[0]));
    for (auto id : yes) REQUIRE(m.accept_token(id));
    CHECK(m.complete());
    CHECK_FALSE(m.can_continue());
    qwen3::TokenBitmask mask;
    m.fill_mask(mask);
    CHECK(mask.count() == end_tokens().size());
    CHECK(m.accept_token(end_tokens()[0]));
    CHECK(m.finished());
}

TEST_CASE("constrained generation with the tiny model: sampled text stays in the grammar and ends only when complete") {
    using Cfg = qwen3::Qwen3_Tiny;
    qwen3::ThreadPool pool{2};
    const qwen3::Model<Cfg> model{test::make_random_model(test::tiny_spec(), pool)};
    qwen3::Generator<Cfg> generator(model, tokenizer());
    for (const char* name : {"json.gbnf", "arithmetic.gbnf", "list.gbnf"}) {
        const std::string text = read_file(test::data_path(std::string("grammar/gbnf/") + name));
        qwen3::GenerationOptions options;
        options.max_tokens = 40;
        options.grammar = qwen3::TokenGrammar::create(qwen3::Grammar::from_gbnf(text), tokenizer(), Cfg::vocab);
        for (std::uint64_t seed = 1; seed <= 3; ++seed) {
            options.sampling = qwen3::SamplerParams{};
            options.sampling.seed = seed;
            const qwen3::Generation g = generator.generate(tokenizer().encode("Output:"), options);
            CAPTURE(name);
            CAPTURE(g.text);
            qwen3::GrammarRecognizer r(options.grammar->grammar());
            CHECK(r.accept(g.text));
            if (g.reason == qwen3::StopReason::end_of_turn) CHECK(r.complete());
            else CHECK(g.reason == qwen3::StopReason::max_tokens);
        }
    }
}

TEST_CASE("the engine constrains each sequence by its own grammar, with the tokens it would sample alone") {
    using Cfg = qwen3::Qwen3_Tiny;
    qwen3::ThreadPool pool{2};
    const qwen3::Model<Cfg> model{test::make_random_model(test::tiny_spec(), pool)};
    std::vector<std::shared_ptr<const qwen3::TokenGrammar>> grammars;
    for (const char* name : {"json.gbnf", "arithmetic.gbnf", "chess.gbnf"})
        grammars.push_back(qwen3::TokenGrammar::create(qwen3::Grammar::from_gbnf(read_file(test::data_path(std::string("grammar/gbnf/") + name))),
                                                       tokenizer(), Cfg::vocab));
    grammars.push_back(nullptr);  // one free sequence beside them
    std::vector<qwen3::GenerationOptions> options;
    for (std::size_t i = 0; i < 8; ++i) {
        qwen3::GenerationOptions o;
        o.max_tokens = 24;
        o.grammar = grammars[i % grammars.size()];
        if (i >= 4) {  // sampled, not greedy
            o.sampling = qwen3::SamplerParams{};
            o.sampling.seed = i;
        }
        options.push_back(o);
    }
    const auto prompt = tokenizer().encode("Answer:");
    std::vector<qwen3::Generation> alone;
    qwen3::Generator<Cfg, qwen3::KVF32> generator(model, tokenizer(), qwen3::SessionOptions{2});
    for (const auto& o : options) alone.push_back(generator.generate(prompt, o));

    qwen3::Engine<Cfg, qwen3::KVF32> engine(model, &tokenizer(), {.max_sequences = 8, .pool_pages = 32, .threads = 2});
    std::vector<qwen3::Engine<Cfg, qwen3::KVF32>::RequestId> ids;
    for (const auto& o : options) {
        qwen3::EngineRequest request;
        request.prompt = prompt;
        request.options = o;
        ids.push_back(engine.add(std::move(request)));
    }
    engine.run();
    for (std::size_t i = 0; i < options.size(); ++i) {
        CAPTURE(i);
        const auto r = engine.take(ids[i]);
        REQUIRE(r);
        CHECK(r->error.empty());
        CHECK(r->generation.tokens == alone[i].tokens);
        if (options[i].grammar) {
            qwen3::GrammarRecognizer rec(options[i].grammar->grammar());
            CHECK(rec.accept(r->generation.text));
        }
    }
}

TEST_CASE("a grammar past its limits fails alone, with an error naming the limit") {
    // 400 alternatives of [a-z]{k}: after the "x", hundreds are open at distinct positions, each
    // needing its own walk of the vocabulary
    std::string gbnf = "root ::= \"x\" word (\" \" word)*\nword ::= ";
    for (int i = 0; i < 400; ++i) gbnf += (i ? " | " : "") + std::string("[a-z]{") + std::to_string(i % 40 + 1) + "}";
    const qwen3::Grammar costly = qwen3::Grammar::from_gbnf(gbnf + "\n");
    const auto x = tokenizer().encode_plain("x");
    REQUIRE(x.size() == 1);
    qwen3::TokenBitmask mask;
    {
        qwen3::GrammarLimits limits;
        limits.max_mask_steps = 1 << 20;
        const auto tg = qwen3::TokenGrammar::create(costly, tokenizer(), 0, limits);
        qwen3::GrammarMatcher m(tg);
        m.fill_mask(mask);  // the first position alone is within the limit
        REQUIRE(m.accept_token(x[0]));
        CHECK_THROWS_WITH_AS(m.fill_mask(mask), doctest::Contains("GrammarLimits::max_mask_steps"), qwen3::Error);
        // the matcher is where it was: after "x", a word must follow
        CHECK_FALSE(m.complete());
        CHECK(m.accept_bytes("abc"));
        CHECK(m.complete());
    }
    {
        qwen3::GrammarLimits limits;
        limits.max_cache_bytes = std::size_t(4) << 20;
        const auto tg = qwen3::TokenGrammar::create(costly, tokenizer(), 0, limits);
        qwen3::GrammarMatcher m(tg);
        m.fill_mask(mask);
        REQUIRE(m.accept_token(x[0]));
        CHECK_THROWS_WITH_AS(m.fill_mask(mask), doctest::Contains("GrammarLimits::max_cache_bytes"), qwen3::Error);
        CHECK(tg->memory_bytes() > limits.max_cache_bytes);
        CHECK(tg->memory_bytes() < 4 * limits.max_cache_bytes);  // passed by at most a walk or so
    }

    // in the engine, the sequence whose grammar passes its limits ends with that error; the others
    // get what they get alone
    using Cfg = qwen3::Qwen3_Tiny;
    qwen3::ThreadPool pool{2};
    const qwen3::Model<Cfg> model{test::make_random_model(test::tiny_spec(), pool)};
    qwen3::GrammarLimits limits;
    limits.max_mask_steps = 1 << 20;
    qwen3::GenerationOptions bounded, plain;
    bounded.max_tokens = plain.max_tokens = 12;
    bounded.grammar = qwen3::TokenGrammar::create(costly, tokenizer(), Cfg::vocab, limits);
    plain.grammar = qwen3::TokenGrammar::create(qwen3::Grammar::from_gbnf(read_file(test::data_path("grammar/gbnf/json.gbnf"))), tokenizer(), Cfg::vocab);
    const auto prompt = tokenizer().encode("Words:");
    qwen3::Generator<Cfg, qwen3::KVF32> generator(model, tokenizer(), qwen3::SessionOptions{2});
    const qwen3::Generation alone = generator.generate(prompt, plain);
    qwen3::Engine<Cfg, qwen3::KVF32> engine(model, &tokenizer(), {.max_sequences = 2, .pool_pages = 8, .threads = 2});
    qwen3::EngineRequest a, b;
    a.prompt = b.prompt = prompt;
    a.options = bounded;
    b.options = plain;
    const auto ia = engine.add(std::move(a)), ib = engine.add(std::move(b));
    engine.run();
    const auto ra = engine.take(ia), rb = engine.take(ib);
    REQUIRE(ra);
    REQUIRE(rb);
    CHECK(ra->generation.reason == qwen3::StopReason::failed);
    CHECK(ra->error.find("GrammarLimits::max_mask_steps") != std::string::npos);
    CHECK(ra->grammar_error);
    CHECK(rb->error.empty());
    CHECK(rb->generation.tokens == alone.tokens);
}

TEST_CASE("whole-token references: <think> by text and <[id]> by id match only that token, never its text") {
    const qwen3::Tokenizer& t = tokenizer();
    const qwen3::TokenId think = *t.token_id("<think>"), end_think = *t.token_id("</think>"), call = *t.token_id("<tool_call>");
    qwen3::Grammar g = qwen3::Grammar::from_gbnf("root ::= <think> [a-z ]* <[" + std::to_string(end_think) + "]> \"ok\" (<tool_call> \"x\")?\n");
    REQUIRE(g.tokens().size() == 3);
    const auto tg = std::make_shared<const qwen3::TokenGrammar>(g, vocabulary(), end_tokens(), qwen3::TokenGrammar::resolve_tokens(g, t));
    qwen3::GrammarMatcher m(tg);
    qwen3::TokenBitmask mask;
    m.fill_mask(mask);
    CHECK(mask.count() == 1);
    CHECK(mask.test(think));
    CHECK_FALSE(m.accept_bytes("<think>"));  // the text is not the token
    REQUIRE(m.accept_token(think));
    m.fill_mask(mask);
    CHECK(mask.test(end_think));
    CHECK(mask.test(t.encode_plain("hello")[0]));
    CHECK_FALSE(mask.test(think));
    for (auto id : t.encode_plain("hello world")) REQUIRE(m.accept_token(id));
    REQUIRE(m.accept_token(end_think));
    REQUIRE(m.accept_bytes("ok"));
    CHECK(m.complete());
    m.fill_mask(mask);
    CHECK(mask.test(call));
    CHECK(mask.test(end_tokens()[0]));
    CHECK(mask.count() == 1 + end_tokens().size());
    // an unknown token text is an error naming it
    CHECK_THROWS_WITH_AS(qwen3::TokenGrammar::create(qwen3::Grammar::from_gbnf("root ::= <nope>"), t), doctest::Contains("<nope>"), qwen3::Error);
}

TEST_CASE("a reply that starts inside the think block the prompt opened: reasoning, </think>, then the answer's form") {
    const qwen3::Tokenizer& t = tokenizer();
    const qwen3::TokenId think = *t.token_id("<think>"), end_think = *t.token_id("</think>");
    qwen3::chat::ReplyForm form;
    form.starts_in_reasoning = true;
    form.response_format = qwen3::chat::ResponseFormat::json_object();
    const auto tg = qwen3::TokenGrammar::create(qwen3::chat::reply_grammar(form), t);
    qwen3::GrammarMatcher m(tg);
    qwen3::TokenBitmask mask;
    m.fill_mask(mask);
    CHECK(mask.test(end_think));
    CHECK_FALSE(mask.test(think));                // no second think block
    CHECK(mask.test(t.encode_plain("{")[0]));     // any text is reasoning until </think>
    CHECK_FALSE(mask.test(end_tokens()[0]));      // the reasoning must close and the answer follow
    for (auto id : t.encode_plain("first {not json")) REQUIRE(m.accept_token(id));
    REQUIRE(m.accept_token(end_think));
    REQUIRE(m.accept_bytes("\n\n"));
    CHECK_FALSE(m.accept_bytes("plain"));         // the answer is a JSON object
    REQUIRE(m.accept_bytes("{\"a\": 1}"));
    CHECK(m.complete());
    CHECK(qwen3::chat::cache_key(form) != qwen3::chat::cache_key([&] {
              auto other = form;
              other.starts_in_reasoning = false;
              return other;
          }()));
}

TEST_CASE("a reply form's cache key changes with everything its grammar depends on") {
    qwen3::ConversationOptions options;
    options.tools = {qwen3::json::parse(R"({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}})")};
    const qwen3::chat::ReplyForm base = qwen3::reply_form(options, true);
    CHECK(base.thinking);
    CHECK(base.tools.size() == 1);
    CHECK(base.constrain_tool_calls);
    const std::string key = qwen3::chat::cache_key(base);
    CHECK(qwen3::chat::cache_key(qwen3::reply_form(options, true)) == key);
    std::vector<qwen3::chat::ReplyForm> changed(9, base);
    changed[0].thinking = false;
    changed[1].tool_choice = qwen3::chat::ToolChoice::required();
    changed[2].tool_choice = qwen3::chat::ToolChoice::named("f");
    changed[3].constrain_tool_calls = false;
    changed[4].response_format = qwen3::chat::ResponseFormat::json_object();
    changed[5].response_format = qwen3::chat::ResponseFormat::json_schema(qwen3::json::parse(R"({"type": "string"})"));
    changed[6].response_format = qwen3::chat::ResponseFormat::json_schema(qwen3::json::parse(R"({"type": "integer"})"));
    changed[7].tools.clear();
    changed[8].schema_options.max_whitespace = 0;
    std::set<std::string> keys{key};
    for (const auto& form : changed) keys.insert(qwen3::chat::cache_key(form));
    CHECK(keys.size() == changed.size() + 1);
}

TEST_CASE("a Conversation with tools and tool_choice required always gets tool calls that parse into a known tool") {
    using Cfg = qwen3::Qwen3_Tiny;
    qwen3::ThreadPool pool{2};
    const qwen3::Model<Cfg> model{test::make_random_model(test::tiny_spec(), pool)};
    const std::vector<qwen3::json::Value> tools = {
        qwen3::json::parse(R"({"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
            "properties": {"city": {"type": "string", "maxLength": 12}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"], "additionalProperties": false}}})"),
        qwen3::json::parse(R"({"type": "function", "function": {"name": "set_alarm", "parameters": {"type": "object",
            "properties": {"hour": {"type": "integer", "minimum": 0, "maximum": 23}, "minute": {"type": "integer", "minimum": 0, "maximum": 59}},
            "required": ["hour", "minute"], "additionalProperties": false}}})")};
    int calls = 0;
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        qwen3::ConversationOptions options;
        options.enable_thinking = false;
        options.tools = tools;
        options.tool_choice = seed % 2 ? qwen3::chat::ToolChoice::required() : qwen3::chat::ToolChoice::named("set_alarm");
        options.sampling = qwen3::SamplerParams{};
        options.sampling->seed = seed;
        options.max_tokens = 160;
        qwen3::Conversation<Cfg> chat(model, tokenizer(), options);
        const qwen3::Reply reply = chat.send("What now?");
        CAPTURE(seed);
        if (reply.reason != qwen3::StopReason::end_of_turn) {
            CHECK(reply.reason == qwen3::StopReason::max_tokens);
            continue;
        }
        REQUIRE(!reply.tool_calls.empty());
        CHECK(reply.content.empty());
        for (const auto& call : reply.tool_calls) {
            ++calls;
            if (seed % 2 == 0) CHECK(call.name == "set_alarm");
            if (call.name == "set_alarm") {
                const auto hour = call.arguments.at("hour").as_int(), minute = call.arguments.at("minute").as_int();
                CHECK((hour >= 0 && hour <= 23 && minute >= 0 && minute <= 59));
            } else {
                REQUIRE(call.name == "get_weather");
                const std::string unit = call.arguments.at("unit").as_string();
                CHECK((unit == "celsius" || unit == "fahrenheit"));
                CHECK(call.arguments.at("city").as_string().size() <= 12 * 4);
            }
        }
    }
    CHECK(calls >= 2);
}

TEST_CASE("the sampler's filters choose among the allowed tokens: top-k keeps the k best allowed, greedy the best allowed") {
    std::mt19937_64 rng(3);
    std::normal_distribution<float> normal;
    std::vector<float> logits(1000);
    for (float& l : logits) l = normal(rng) * 3;
    qwen3::TokenBitmask allowed(1000);
    std::vector<std::pair<float, std::int32_t>> ranked;
    for (std::int32_t id = 0; id < 1000; ++id)
        if (rng() % 7 == 0) {
            allowed.set(id);
            ranked.emplace_back(logits[std::size_t(id)], id);
        }
    std::sort(ranked.begin(), ranked.end(), [](auto a, auto b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    qwen3::SamplerParams p;
    p.top_k = 3;
    qwen3::Sampler sampler(p);
    const auto dist = sampler.distribution(logits, allowed.words());
    REQUIRE(dist.size() == 3);
    std::vector<std::int32_t> kept;
    for (const auto& tp : dist) kept.push_back(tp.token);
    std::vector<std::int32_t> best{ranked[0].second, ranked[1].second, ranked[2].second};
    std::sort(best.begin(), best.end());
    CHECK(kept == best);
    qwen3::Sampler greedy(qwen3::SamplerParams::greedy());
    CHECK(greedy.sample(logits, allowed.words()) == ranked[0].second);
    for (std::uint64_t seed = 0; seed < 50; ++seed) {  // every draw of the full path lands in the mask
        qwen3::SamplerParams q;
        q.seed = seed;
        qwen3::Sampler s(q);
        CHECK(allowed.test(s.sample(logits, allowed.words())));
    }
    CHECK_THROWS_AS(greedy.sample(logits, qwen3::TokenBitmask(1000).words()), qwen3::Error);
}
