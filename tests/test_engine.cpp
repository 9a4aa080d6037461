// The batching engine: every sequence of a batch gets the logits and tokens it gets alone (a Session
// of its own, itself held to llama.cpp's logits by test_model_micro), whether sequences join and
// leave mid-run, have very different lengths, or share prefix pages; the tiny model's greedy tokens
// against llama.cpp's, several requests at once; pool exhaustion, cancellation, the context limit;
// and a bounded stress run of a few hundred requests with joins from another thread, cancels and stops.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <thread>

#include <qwen3/engine.hpp>
#include <qwen3/generation.hpp>
#include <qwen3/quantize.hpp>

#include "golden.hpp"
#include "random_model.hpp"
#include "support.hpp"

using Micro = qwen3::Qwen3_Micro;
using MicroEngine = qwen3::Engine<Micro, qwen3::KVF32>;

namespace {

qwen3::Model<Micro>& micro_model() {
    static qwen3::Model<Micro> model(test::data_path("qwen3-micro-f32.gguf"));
    return model;
}

// A sequence run alone: the logits before each sampled token, and the tokens.
struct Alone {
    std::vector<std::vector<float>> logits;
    std::vector<std::int32_t> tokens;
};

template <class Cfg>
Alone run_alone(const qwen3::Model<Cfg>& model, const std::vector<std::int32_t>& prompt, int max_tokens,
                const qwen3::SamplerParams& params = qwen3::SamplerParams::greedy()) {
    qwen3::Session<Cfg, qwen3::KVF32> session(model, 1);
    qwen3::Sampler sampler(params);
    for (std::int32_t t : prompt) sampler.accept(t);
    Alone a;
    std::span<const float> logits = session.eval(prompt);
    while (int(a.tokens.size()) < max_tokens) {
        a.logits.emplace_back(logits.begin(), logits.end());
        const std::int32_t id = sampler.sample(logits);
        a.tokens.push_back(id);
        sampler.accept(id);
        if (int(a.tokens.size()) == max_tokens || session.position() == Cfg::max_context) break;
        logits = session.eval(id);
    }
    return a;
}

std::vector<std::int32_t> random_tokens(std::mt19937& rng, int n, int vocab) {
    std::vector<std::int32_t> v(static_cast<std::size_t>(n));
    for (auto& t : v) t = std::int32_t(rng() % std::uint32_t(vocab));
    return v;
}

qwen3::EngineRequest make_request(std::vector<std::int32_t> prompt, qwen3::GenerationOptions options = {}) {
    qwen3::EngineRequest r;
    r.prompt = std::move(prompt);
    r.options = std::move(options);
    return r;
}
qwen3::GenerationOptions with_stop(std::string stop) {
    qwen3::GenerationOptions o;
    o.stop = {std::move(stop)};
    return o;
}

// A request that records the logits it is given.
struct Recorder {
    std::vector<std::vector<float>> logits;
    qwen3::EngineRequest request(std::vector<std::int32_t> prompt, int max_tokens,
                                 qwen3::SamplerParams params = qwen3::SamplerParams::greedy()) {
        qwen3::EngineRequest r;
        r.prompt = std::move(prompt);
        r.options.max_tokens = max_tokens;
        r.options.sampling = params;
        r.options.stop_at_end_of_turn = false;
        r.logits_processor = [this](std::span<float> l, std::span<const std::int32_t>) { logits.emplace_back(l.begin(), l.end()); };
        return r;
    }
};

// Largest |batch - alone| over every step; the tokens must be the same.
float compare(const Alone& alone, const Recorder& rec, const qwen3::Generation& g) {
    CHECK(g.tokens == alone.tokens);
    REQUIRE(rec.logits.size() == alone.logits.size());
    float worst = 0;
    for (std::size_t i = 0; i < rec.logits.size(); ++i) worst = std::max(worst, test::max_abs_diff(rec.logits[i], alone.logits[i]));
    return worst;
}

}  // namespace

TEST_CASE("engine: sequences joining and leaving mid-run get the logits and tokens they get alone") {
    const auto& model = micro_model();
    std::mt19937 rng(7);
    // very different lengths: prompts of 1 to 700 tokens (several chunks of the budget), 1 to 40 tokens out
    const std::vector<std::pair<int, int>> shapes = {{1, 40}, {700, 12}, {37, 1}, {130, 25}, {5, 33}, {64, 20}, {300, 8}, {2, 17}};
    std::vector<std::vector<std::int32_t>> prompts;
    for (auto [p, n] : shapes) prompts.push_back(random_tokens(rng, p, Micro::vocab));

    for (bool share : {true, false}) {
        CAPTURE(share);
        MicroEngine engine(model, nullptr, {.max_sequences = 4, .pool_pages = 64, .prefill_budget = 96, .share_prefixes = share, .threads = 2});
        std::vector<Recorder> recorders(shapes.size());
        std::vector<MicroEngine::RequestId> ids;
        // two now, the rest one every few steps: they join while others decode, and wait when 4 run
        for (std::size_t i = 0; i < shapes.size(); ++i) {
            ids.push_back(engine.add(recorders[i].request(prompts[i], shapes[i].second)));
            if (i >= 1) for (int s = 0; s < 3; ++s) engine.step();
        }
        engine.run();
        float worst = 0;
        for (std::size_t i = 0; i < shapes.size(); ++i) {
            CAPTURE(i);
            auto r = engine.take(ids[i]);
            REQUIRE(r);
            CHECK(r->generation.reason == qwen3::StopReason::max_tokens);
            CHECK(r->error.empty());
            worst = std::max(worst, compare(run_alone(model, prompts[i], shapes[i].second), recorders[i], r->generation));
        }
        MESSAGE("max |batch - alone| logit = " << worst);
        CHECK(worst < 1e-5f);
        const qwen3::EngineStats st = engine.stats();
        CHECK(st.active == 0);
        CHECK(st.waiting == 0);
        CHECK(st.used_pages == st.cached_pages);  // only the prefix cache holds pages once all have finished
        if (!share) CHECK(st.cached_pages == 0);
    }
}

TEST_CASE("engine: sequences sharing a prefix hold it once and get what unshared sequences get") {
    const auto& model = micro_model();
    std::mt19937 rng(11);
    const std::vector<std::int32_t> system = random_tokens(rng, 1000, Micro::vocab);  // 15 full pages and 40 positions
    std::vector<std::vector<std::int32_t>> prompts;
    for (int i = 0; i < 8; ++i) {
        auto p = system;
        const auto tail = random_tokens(rng, 3 + 9 * i, Micro::vocab);
        p.insert(p.end(), tail.begin(), tail.end());
        prompts.push_back(p);
    }
    prompts.push_back(system);  // exactly the shared prefix
    prompts.push_back(std::vector<std::int32_t>(system.begin(), system.begin() + 640));  // ends on a page boundary
    prompts.push_back(std::vector<std::int32_t>(system.begin(), system.begin() + 980));  // ends inside the partial page
    constexpr int kTokens = 6;
    MicroEngine engine(model, nullptr, {.max_sequences = 16, .pool_pages = 64, .prefill_budget = 512, .threads = 2});
    std::vector<Recorder> recorders(prompts.size());
    std::vector<MicroEngine::RequestId> ids;
    for (std::size_t i = 0; i < prompts.size(); ++i) ids.push_back(engine.add(recorders[i].request(prompts[i], kTokens)));
    int peak_pages = 0;
    while (engine.step()) peak_pages = std::max(peak_pages, engine.stats().used_pages);
    // the prefix's 15 full pages once, then for each of the 11 sequences its own pages from where
    // it diverges (a copy of the partial 16th page, the pages of its tail); the prefix cache may keep
    // the partial last pages of sequences that finished meanwhile
    int own = 0;
    for (const auto& p : prompts) own += std::max(1, int((p.size() + kTokens + 63) / 64) - 15);
    MESSAGE("pool pages at the peak: " << peak_pages << " (unshared, the 11 sequences would hold "
                                       << [&] { int n = 0; for (const auto& p : prompts) n += int((p.size() + kTokens + 63) / 64); return n; }() << ")");
    CHECK(peak_pages <= 15 + own + 2);
    long long evaluated = engine.stats().prompt_tokens;
    long long total = 0;
    for (const auto& p : prompts) total += (long long)p.size();
    MESSAGE("prompt tokens evaluated: " << evaluated << " of " << total);
    CHECK(evaluated < total - 9 * 900);  // the 1000-token prefix evaluated once, not by each sequence
    float worst = 0;
    int reused = 0;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
        CAPTURE(i);
        auto r = engine.take(ids[i]);
        REQUIRE(r);
        reused += r->generation.stats.reused_tokens;
        worst = std::max(worst, compare(run_alone(model, prompts[i], kTokens), recorders[i], r->generation));
    }
    MESSAGE("max |shared - alone| logit = " << worst << ", prompt tokens reused: " << reused);
    CHECK(worst < 1e-5f);
    CHECK(reused > 9 * 900);

    // a later request continuing a finished one's tokens reuses its pages from the prefix cache
    Recorder later;
    auto p = prompts[0];
    p.push_back(17);
    const auto id = engine.add(later.request(p, 3));
    engine.run();
    auto r = engine.take(id);
    REQUIRE(r);
    CHECK(r->generation.stats.reused_tokens >= 1000);
    CHECK(compare(run_alone(model, p, 3), later, r->generation) < 1e-5f);
}

TEST_CASE("engine: the prefix cache keeps at most cached_pages pages, the most recently used") {
    const auto& model = micro_model();
    std::mt19937 rng(17);
    MicroEngine engine(model, nullptr, {.max_sequences = 2, .pool_pages = 64, .prefill_budget = 512, .cached_pages = 3, .threads = 2});
    std::vector<std::vector<std::int32_t>> prompts;
    for (int i = 0; i < 30; ++i) {  // one after another: each leaves 3 pages behind (129 positions)
        prompts.push_back(random_tokens(rng, 129, Micro::vocab));
        Recorder rec;
        const auto id = engine.add(rec.request(prompts.back(), 1));
        engine.run();
        CHECK(engine.take(id)->generation.reason == qwen3::StopReason::max_tokens);
        const qwen3::EngineStats st = engine.stats();
        CHECK(st.cached_pages <= 3);
        CHECK(st.used_pages == st.cached_pages);
    }
    // the last prompt's first two pages are still there (reused), the first prompt's are not
    Recorder last, first;
    const auto a = engine.add(last.request(prompts.back(), 2));
    engine.run();
    auto ra = engine.take(a);
    CHECK(ra->generation.stats.reused_tokens == 128);
    CHECK(compare(run_alone(model, prompts.back(), 2), last, ra->generation) < 1e-5f);
    const auto b = engine.add(first.request(prompts.front(), 2));
    engine.run();
    CHECK(engine.take(b)->generation.stats.reused_tokens == 0);
}

TEST_CASE("engine: quantized models decode in a batch exactly as alone (packed decode kernels, default BF16 KV)") {
    test::TempDir dir;
    std::mt19937 rng(5);
    for (auto file_type : {qwen3::quant::FileType::q8_0, qwen3::quant::FileType::q4_0, qwen3::quant::FileType::q4_k_m}) {
        CAPTURE(int(file_type));
        const std::string path = dir.file("micro-quantized.gguf");
        qwen3::quant::quantize_model(test::data_path("qwen3-micro-f32.gguf"), path, file_type);
        qwen3::Model<Micro> model(path);
        std::vector<std::vector<std::int32_t>> prompts;
        for (int i = 0; i < 12; ++i) prompts.push_back(random_tokens(rng, 1 + 3 * i, Micro::vocab));
        qwen3::Engine<Micro> engine(model, nullptr, {.max_sequences = 12, .threads = 2});
        std::vector<qwen3::Engine<Micro>::RequestId> ids;
        for (auto& p : prompts) {
            qwen3::EngineRequest r;
            r.prompt = p;
            r.options.max_tokens = 24;
            ids.push_back(engine.add(std::move(r)));
        }
        engine.run();
        for (std::size_t i = 0; i < prompts.size(); ++i) {
            // alone: the default BF16 KV, one token at a time after the prompt (Generator)
            qwen3::Session<Micro> session(model, 2);
            std::vector<std::int32_t> alone;
            auto logits = session.eval(prompts[i]);
            for (int t = 0; t < 24; ++t) {
                alone.push_back(test::argmax(logits));
                logits = session.eval(alone.back());
            }
            CHECK(engine.take(ids[i])->generation.tokens == alone);
        }
    }
}

TEST_CASE("engine: the tiny model's greedy tokens match llama.cpp's with its requests stepping together") {
    qwen3::ThreadPool pool(2);
    qwen3::Model<qwen3::Qwen3_Tiny> model(test::make_random_model(test::tiny_spec(), pool));
    const qwen3::Tokenizer tokenizer = qwen3::Tokenizer::from_tokenizer_json(test::data_path("tokenizer/tokenizer.json"));
    qwen3::Engine<qwen3::Qwen3_Tiny, qwen3::KVF32> engine(model, &tokenizer, {.max_sequences = 3, .pool_pages = 32, .prefill_budget = 16, .threads = 2});
    std::vector<test::Golden> goldens;
    std::vector<std::uint64_t> ids;
    std::vector<std::string> streamed(3);
    for (const char* name : {"short5", "long64", "chat_special"}) {
        goldens.push_back(test::load_golden("tiny", name, qwen3::Qwen3_Tiny::vocab));
        qwen3::EngineRequest r;
        r.prompt = goldens.back().tokens;
        r.options.max_tokens = int(goldens.back().greedy.size());
        r.options.stop_at_end_of_turn = false;
        r.on_text = [&streamed, i = goldens.size() - 1](std::string_view s) { streamed[i] += s; return true; };
        ids.push_back(engine.add(std::move(r)));
    }
    engine.run();
    for (std::size_t i = 0; i < goldens.size(); ++i) {
        const test::Golden& g = goldens[i];
        auto r = engine.take(ids[i]);
        REQUIRE(r);
        std::size_t n = 0;  // as far as every earlier step had a clear top-1 margin
        while (n < g.greedy.size() && g.margins[n] > 1e-3f) ++n;
        CAPTURE(i);
        CHECK(n > 0);
        REQUIRE(r->generation.tokens.size() >= n);
        CHECK(std::vector<std::int32_t>(r->generation.tokens.begin(), r->generation.tokens.begin() + std::ptrdiff_t(n)) ==
              std::vector<std::int32_t>(g.greedy.begin(), g.greedy.begin() + std::ptrdiff_t(n)));
        CHECK(r->generation.text == streamed[i]);
        CHECK(r->generation.text == tokenizer.decode(r->generation.tokens));
    }
}

TEST_CASE("engine: stop strings and end of turn end a request as they end a Generator's") {
    qwen3::ThreadPool pool(2);
    qwen3::Model<qwen3::Qwen3_Tiny> model(test::make_random_model(test::tiny_spec(), pool));
    const qwen3::Tokenizer tokenizer = qwen3::Tokenizer::from_tokenizer_json(test::data_path("tokenizer/tokenizer.json"));
    const test::Golden g = test::load_golden("tiny", "long64", qwen3::Qwen3_Tiny::vocab);
    qwen3::Generator<qwen3::Qwen3_Tiny, qwen3::KVF32> generator(model, tokenizer, qwen3::SessionOptions{2});
    qwen3::GenerationOptions free_run;
    free_run.max_tokens = 30;
    const qwen3::Generation unstopped = generator.generate(g.tokens, free_run);
    REQUIRE(unstopped.text.size() > 8);
    // a stop string from the middle of the text the model writes
    qwen3::GenerationOptions stopped = free_run;
    stopped.stop = {unstopped.text.substr(unstopped.text.size() / 2, 3)};
    generator.reset();
    const qwen3::Generation expected = generator.generate(g.tokens, stopped);
    REQUIRE(expected.reason == qwen3::StopReason::stop_string);

    qwen3::Engine<qwen3::Qwen3_Tiny, qwen3::KVF32> engine(model, &tokenizer, {.max_sequences = 2, .pool_pages = 16, .threads = 2});
    const auto a = engine.add(make_request(g.tokens, stopped));
    const auto b = engine.add(make_request(g.tokens, free_run));
    engine.run();
    const auto ra = engine.take(a), rb = engine.take(b);
    CHECK(ra->generation.reason == qwen3::StopReason::stop_string);
    CHECK(ra->generation.text == expected.text);
    CHECK(ra->generation.tokens == expected.tokens);
    CHECK(rb->generation.text == unstopped.text);
    CHECK(rb->generation.reason == unstopped.reason);
    CHECK_THROWS_AS(engine.add(make_request(g.tokens, with_stop(""))), qwen3::Error);
}

TEST_CASE("engine: a full pool fails the request that cannot fit, and only that one") {
    const auto& model = micro_model();
    std::mt19937 rng(3);
    const auto small = random_tokens(rng, 100, Micro::vocab), big = random_tokens(rng, 200, Micro::vocab);
    // 4 pages of 64 positions: the small request needs 2 (100 + 20 positions), the big one 4
    MicroEngine engine(model, nullptr, {.max_sequences = 2, .pool_pages = 4, .prefill_budget = 64, .share_prefixes = false, .threads = 2});
    Recorder rs, rb;
    const auto s = engine.add(rs.request(small, 20));
    const auto b = engine.add(rb.request(big, 20));
    engine.run();
    auto r_small = engine.take(s), r_big = engine.take(b);
    REQUIRE(r_small);
    REQUIRE(r_big);
    CHECK(r_big->generation.reason == qwen3::StopReason::failed);
    MESSAGE(r_big->error);
    CHECK(r_big->error.find("KV pool is full") != std::string::npos);
    CHECK(r_small->generation.reason == qwen3::StopReason::max_tokens);
    CHECK(compare(run_alone(model, small, 20), rs, r_small->generation) < 1e-5f);
    CHECK(engine.stats().used_pages == 0);

    // a sequence that outgrows the pool while decoding stops there, with the tokens it has
    MicroEngine tight(model, nullptr, {.max_sequences = 1, .pool_pages = 2, .share_prefixes = false, .threads = 2});
    Recorder rt;
    const auto t = tight.add(rt.request(small, 100));
    tight.run();
    auto r_tight = tight.take(t);
    CHECK(r_tight->generation.reason == qwen3::StopReason::failed);
    CHECK(r_tight->generation.tokens.size() == 128 - 100 + 1);  // positions 100..127 fed, one more sampled
    const Alone alone = run_alone(model, small, 29);
    CHECK(r_tight->generation.tokens == alone.tokens);
}

TEST_CASE("engine: a request whose logits leave no token to draw fails alone; the others go on") {
    const auto& model = micro_model();
    std::mt19937 rng(5);
    const auto a = random_tokens(rng, 30, Micro::vocab), b = random_tokens(rng, 40, Micro::vocab);
    MicroEngine engine(model, nullptr, {.max_sequences = 4, .pool_pages = 16, .threads = 2});
    Recorder ra, rb, rn;
    const auto ia = engine.add(ra.request(a, 12, qwen3::SamplerParams::thinking()));
    auto bad = rb.request(b, 12);
    int calls = 0;
    bad.logits_processor = [&](std::span<float> l, std::span<const std::int32_t>) {
        if (++calls == 3) std::fill(l.begin(), l.end(), -std::numeric_limits<float>::infinity());
    };
    const auto ib = engine.add(std::move(bad));
    auto nan_request = rn.request(b, 12, qwen3::SamplerParams::non_thinking());
    nan_request.logits_processor = [](std::span<float> l, std::span<const std::int32_t>) { l[7] = std::nanf(""); };
    const auto in = engine.add(std::move(nan_request));
    engine.run();
    auto r_bad = engine.take(ib), r_nan = engine.take(in), r_a = engine.take(ia);
    CHECK(r_bad->generation.reason == qwen3::StopReason::failed);
    CHECK(r_bad->generation.tokens.size() == 2);
    MESSAGE(r_bad->error);
    CHECK(r_bad->error.find("every logit is -inf") != std::string::npos);
    CHECK(r_nan->generation.reason == qwen3::StopReason::failed);
    CHECK(r_nan->generation.tokens.empty());
    MESSAGE(r_nan->error);
    CHECK(r_nan->error.find("logit 7 is NaN") != std::string::npos);
    // the sampled request draws what it draws alone (its sampler's own random sequence)
    CHECK(r_a->generation.reason == qwen3::StopReason::max_tokens);
    CHECK(compare(run_alone(model, a, 12, qwen3::SamplerParams::thinking()), ra, r_a->generation) < 1e-5f);
    CHECK(engine.stats().used_pages == engine.stats().cached_pages);
}

TEST_CASE("engine: cancelling mid-prefill, from a callback and while waiting; others unaffected") {
    const auto& model = micro_model();
    std::mt19937 rng(9);
    const auto long_prompt = random_tokens(rng, 2000, Micro::vocab), short_prompt = random_tokens(rng, 10, Micro::vocab);
    MicroEngine engine(model, nullptr, {.max_sequences = 2, .pool_pages = 64, .prefill_budget = 128, .threads = 2});
    Recorder rl, rs, rw, rc;
    const auto l = engine.add(rl.request(long_prompt, 5));
    const auto s = engine.add(rs.request(short_prompt, 30));
    const auto w = engine.add(rw.request(short_prompt, 5));  // waits: two run
    auto c_request = rc.request(random_tokens(rng, 4, Micro::vocab), 50);
    int calls = 0;
    c_request.logits_processor = [&](std::span<float>, std::span<const std::int32_t>) { ++calls; };
    engine.step();
    engine.step();
    engine.cancel(l);  // 2 of its 16 chunks done
    engine.cancel(w);
    engine.cancel(12345);  // unknown: ignored
    engine.run();
    CHECK(engine.take(l)->generation.reason == qwen3::StopReason::cancelled);
    auto rw_result = engine.take(w);
    CHECK(rw_result->generation.reason == qwen3::StopReason::cancelled);
    CHECK(rw_result->generation.tokens.empty());
    auto r = engine.take(s);
    CHECK(r->generation.reason == qwen3::StopReason::max_tokens);
    CHECK(compare(run_alone(model, short_prompt, 30), rs, r->generation) < 1e-5f);
    CHECK_FALSE(engine.take(s));  // taken once
    CHECK(engine.stats().used_pages == engine.stats().cached_pages);
    (void)calls;
}

TEST_CASE("engine: a sequence reaching the context stops there; bad requests are errors at add()") {
    const auto& model = micro_model();
    std::mt19937 rng(13);
    const auto near_end = random_tokens(rng, Micro::max_context - 3, Micro::vocab), other = random_tokens(rng, 20, Micro::vocab);
    MicroEngine engine(model, nullptr, {.max_sequences = 2, .pool_pages = 80, .prefill_budget = 512, .threads = 2});
    Recorder rn, ro;
    const auto n = engine.add(rn.request(near_end, 50));
    const auto o = engine.add(ro.request(other, 40));
    engine.run();
    auto r = engine.take(n);
    CHECK(r->generation.reason == qwen3::StopReason::context_full);
    const Alone alone = run_alone(model, near_end, 50);
    CHECK(alone.tokens.size() == 4);  // sampled after positions max_context - 4 .. max_context - 1
    CHECK(compare(alone, rn, r->generation) < 1e-5f);
    CHECK(compare(run_alone(model, other, 40), ro, engine.take(o)->generation) < 1e-5f);

    CHECK_THROWS_AS(engine.add(make_request({})), qwen3::Error);
    CHECK_THROWS_AS(engine.add(make_request({1, Micro::vocab})), qwen3::Error);
    CHECK_THROWS_AS(engine.add(make_request(std::vector<std::int32_t>(Micro::max_context + 1, 1))), qwen3::Error);
    CHECK_THROWS_AS(engine.add(make_request({1}, qwen3::GenerationOptions{.max_tokens = -1, .sampling = qwen3::SamplerParams::greedy(), .stop = {}, .stop_at_end_of_turn = true, .grammar = {}})), qwen3::Error);
    CHECK_THROWS_AS(engine.add(make_request({1}, with_stop("x"))), qwen3::Error);  // stop strings need a tokenizer
    CHECK_THROWS_AS(MicroEngine(model, nullptr, {.max_sequences = 0}), qwen3::Error);
    CHECK_THROWS_AS(MicroEngine(model, nullptr, {.max_sequences = 1000}), qwen3::Error);
    CHECK_THROWS_AS(MicroEngine(model, nullptr, {.prefill_budget = 0}), qwen3::Error);
    CHECK(engine.stats().active == 0);
}

TEST_CASE("engine: stress - a few hundred requests, joins from another thread, cancels and stops, each as alone") {
    const auto& model = micro_model();
    std::mt19937 rng(2026);
    // prompts drawn from a few shared stems (prefix sharing, pages copied at every offset) and random tails
    std::vector<std::vector<std::int32_t>> stems;
    for (int i = 0; i < 4; ++i) stems.push_back(random_tokens(rng, 40 + 70 * i, Micro::vocab));
    struct Job {
        std::vector<std::int32_t> prompt;
        int max_tokens;
        qwen3::SamplerParams params;
        bool cancel;
        Recorder rec;
        MicroEngine::RequestId id = 0;
    };
    constexpr int kJobs = 300;
    std::vector<Job> jobs(kJobs);
    for (auto& j : jobs) {
        const auto& stem = stems[rng() % stems.size()];
        j.prompt.assign(stem.begin(), stem.begin() + std::ptrdiff_t(rng() % (stem.size() + 1)));
        const auto tail = random_tokens(rng, 1 + int(rng() % 90), Micro::vocab);
        j.prompt.insert(j.prompt.end(), tail.begin(), tail.end());
        j.max_tokens = int(rng() % 24);
        j.params = qwen3::SamplerParams::greedy();
        if (rng() % 3 == 0) j.params = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .seed = rng()};
        j.cancel = rng() % 10 == 0;
    }
    MicroEngine engine(model, nullptr, {.max_sequences = 6, .pool_pages = 40, .prefill_budget = 100, .threads = 2});
    std::atomic<int> added{0};
    std::thread producer([&] {
        std::mt19937 r(1);
        for (auto& j : jobs) {
            j.id = engine.add(j.rec.request(j.prompt, j.max_tokens, j.params));
            added.store(int(&j - jobs.data()) + 1, std::memory_order_release);
            if (r() % 4 == 0) std::this_thread::sleep_for(std::chrono::microseconds(r() % 2000));
        }
    });
    // the stepping thread cancels some requests at random times
    int finished = 0;
    std::mt19937 cancel_rng(4);
    while (finished < kJobs) {
        engine.step();
        const int n = added.load(std::memory_order_acquire);
        finished = 0;
        for (int i = 0; i < n; ++i) {
            if (jobs[std::size_t(i)].cancel && cancel_rng() % 8 == 0) engine.cancel(jobs[std::size_t(i)].id);
            finished += engine.done(jobs[std::size_t(i)].id);
        }
        if (n < kJobs) std::this_thread::yield();
    }
    producer.join();
    int cancelled = 0;
    float worst = 0;
    std::map<qwen3::StopReason, int> reasons;
    for (auto& j : jobs) {
        auto r = engine.take(j.id);
        REQUIRE(r);
        ++reasons[r->generation.reason];
        const Alone alone = run_alone(model, j.prompt, j.max_tokens, j.params);
        if (r->generation.reason == qwen3::StopReason::cancelled) {
            // a prefix of what it would have written
            ++cancelled;
            REQUIRE(r->generation.tokens.size() <= alone.tokens.size());
            CHECK(std::equal(r->generation.tokens.begin(), r->generation.tokens.end(), alone.tokens.begin()));
            continue;
        }
        CHECK(r->generation.reason == qwen3::StopReason::max_tokens);
        CHECK(r->generation.tokens == alone.tokens);
        REQUIRE(j.rec.logits.size() == alone.logits.size());
        for (std::size_t i = 0; i < alone.logits.size(); ++i) worst = std::max(worst, test::max_abs_diff(j.rec.logits[i], alone.logits[i]));
    }
    MESSAGE(kJobs << " requests, " << cancelled << " cancelled, max |batch - alone| logit " << worst << ", steps " << engine.stats().steps);
    CHECK(worst < 1e-5f);
    CHECK(engine.stats().used_pages == engine.stats().cached_pages);
    CHECK(engine.stats().active == 0);
}
