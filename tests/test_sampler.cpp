// Sampler: every filter keeps exactly the set its definition gives on distributions whose answer is
// known by hand; penalties change exactly the penalized logits by the documented amounts; the seed
// reproduces; draws follow the kept distribution.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include <qwen3/sampler.hpp>

#include "support.hpp"

using qwen3::ErrorCode;
using qwen3::Sampler;
using qwen3::SamplerParams;

namespace {

constexpr std::size_t kVocab = 151936;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Probabilities 1/2, 1/4, 1/8, 1/16, 1/16 placed at scattered ids of a full-size vocabulary; every
// other token is -inf (impossible) or, with `background`, a logit far below (probability ~e^-60 each).
const std::vector<std::int32_t> kIds = {70000, 5, 151935, 1234, 99999};
const std::vector<double> kProbs = {0.5, 0.25, 0.125, 0.0625, 0.0625};

std::vector<float> known_logits(float background = kNegInf) {
    std::vector<float> logits(kVocab, background);
    for (std::size_t i = 0; i < kIds.size(); ++i) logits[std::size_t(kIds[i])] = float(std::log(kProbs[i]) + 3.0);
    return logits;
}

SamplerParams params(float temperature, int top_k, float top_p, float min_p) {
    SamplerParams p;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    return p;
}

// The distribution as a map token -> probability.
std::map<std::int32_t, double> dist(Sampler& s, const std::vector<float>& logits) {
    std::map<std::int32_t, double> out;
    std::int32_t previous = -1;
    for (const qwen3::TokenProbability& tp : s.distribution(logits)) {
        CHECK(tp.token > previous);  // id order
        previous = tp.token;
        out[tp.token] = tp.probability;
    }
    return out;
}

// Expected: the tokens at positions `keep` of kIds, with kProbs renormalized over them.
std::map<std::int32_t, double> expected(std::vector<std::size_t> keep, double temperature = 1.0) {
    std::map<std::int32_t, double> out;
    double total = 0;
    for (std::size_t i : keep) total += std::pow(kProbs[i], 1.0 / temperature);
    for (std::size_t i : keep) out[kIds[i]] = std::pow(kProbs[i], 1.0 / temperature) / total;
    return out;
}

void check_same(const std::map<std::int32_t, double>& got, const std::map<std::int32_t, double>& want) {
    REQUIRE(got.size() == want.size());
    for (const auto& [token, p] : want) {
        REQUIRE(got.count(token) == 1);
        CHECK(got.at(token) == doctest::Approx(p).epsilon(1e-5));
    }
}

}  // namespace

TEST_CASE("sampler: presets are Qwen3's recommended settings") {
    SamplerParams t = SamplerParams::thinking();
    CHECK(t.temperature == 0.6f);
    CHECK(t.top_p == 0.95f);
    CHECK(t.top_k == 20);
    CHECK(t.min_p == 0.0f);
    SamplerParams n = SamplerParams::non_thinking();
    CHECK(n.temperature == 0.7f);
    CHECK(n.top_p == 0.8f);
    CHECK(n.top_k == 20);
    CHECK(n.min_p == 0.0f);
    CHECK(SamplerParams::greedy().temperature == 0.0f);
}

TEST_CASE("sampler: greedy takes the argmax, the lowest id on ties, and uses no randomness") {
    std::vector<float> logits(kVocab, 0.0f);
    logits[77] = 5.0f;
    logits[1000] = 5.0f;
    logits[151935] = 4.0f;
    Sampler s(SamplerParams::greedy());
    for (int i = 0; i < 3; ++i) CHECK(s.sample(logits) == 77);
    auto d = s.distribution(logits);
    REQUIRE(d.size() == 1);
    CHECK(d[0].token == 77);
    CHECK(d[0].probability == 1.0f);
    std::vector<float> last(kVocab, -1.0f);
    last[kVocab - 1] = 0.5f;  // in the scalar tail after the SIMD blocks
    CHECK(s.sample(last) == std::int32_t(kVocab - 1));
}

TEST_CASE("sampler: temperature 1 without filters keeps the whole distribution") {
    for (float background : {kNegInf, -60.0f}) {
        Sampler s(params(1.0f, 0, 1.0f, 0.0f));
        auto d = dist(s, known_logits(background));
        if (background == kNegInf) {
            check_same(d, expected({0, 1, 2, 3, 4}));
        } else {
            CHECK(d.size() == kVocab);  // every token has some probability
            for (std::size_t i = 0; i < kIds.size(); ++i) CHECK(d[kIds[i]] == doctest::Approx(kProbs[i]).epsilon(1e-5));
        }
    }
}

TEST_CASE("sampler: temperature reshapes p into p^(1/T), renormalized") {
    for (float t : {0.5f, 2.0f, 0.6f}) {
        Sampler s(params(t, 0, 1.0f, 0.0f));
        check_same(dist(s, known_logits()), expected({0, 1, 2, 3, 4}, t));
    }
}

TEST_CASE("sampler: top-k keeps exactly the k most likely tokens, lowest id first on ties") {
    for (int k : {1, 2, 3}) {
        Sampler s(params(1.0f, k, 1.0f, 0.0f));
        std::vector<std::size_t> keep;
        for (int i = 0; i < k; ++i) keep.push_back(std::size_t(i));
        check_same(dist(s, known_logits(-60.0f)), expected(keep));
    }
    // the two 1/16 tokens tie: ids 1234 and 99999; top-4 keeps the lower id
    Sampler s4(params(1.0f, 4, 1.0f, 0.0f));
    check_same(dist(s4, known_logits(-60.0f)), expected({0, 1, 2, 3}));
    // more candidates than finite logits: only the finite ones remain
    Sampler s20(params(1.0f, 20, 1.0f, 0.0f));
    check_same(dist(s20, known_logits()), expected({0, 1, 2, 3, 4}));
}

TEST_CASE("sampler: top-p keeps the shortest most-likely prefix reaching p (with and without top-k)") {
    // cumulative: 0.5, 0.75, 0.875, 0.9375, 1
    const std::vector<std::pair<float, std::vector<std::size_t>>> table = {
        {0.3f, {0}}, {0.49f, {0}}, {0.6f, {0, 1}}, {0.8f, {0, 1, 2}}, {0.9f, {0, 1, 2, 3}}, {0.95f, {0, 1, 2, 3, 4}}};
    for (const auto& row : table) {
        const float top_p = row.first;  // not a structured binding: clang 14 cannot capture those
        const std::vector<std::size_t>& keep = row.second;
        for (int top_k : {0, 10}) {
            for (float background : {kNegInf, -60.0f}) {
                CAPTURE(top_p);
                CAPTURE(top_k);
                CAPTURE(background);
                Sampler s(params(1.0f, top_k, top_p, 0.0f));
                check_same(dist(s, known_logits(background)), expected(keep));
            }
        }
    }
    // top-p after top-k sees the top-k distribution renormalized: top-2 gives 2/3, 1/3
    Sampler s(params(1.0f, 2, 0.6f, 0.0f));
    check_same(dist(s, known_logits()), expected({0}));
    Sampler s2(params(1.0f, 2, 0.7f, 0.0f));
    check_same(dist(s2, known_logits()), expected({0, 1}));
    // top-p after temperature: at T = 0.5 the probabilities are 64/86 (0.744), 16/86, 4/86, 1/86, 1/86
    Sampler s3(params(0.5f, 0, 0.74f, 0.0f));
    check_same(dist(s3, known_logits()), expected({0}, 0.5));
    Sampler s4(params(0.5f, 0, 0.75f, 0.0f));
    check_same(dist(s4, known_logits()), expected({0, 1}, 0.5));
}

TEST_CASE("sampler: top-p cuts between tied tokens by id, lower ids first") {
    // ten equally likely tokens: top_p 0.35 needs four of them (0.4), and they are the four lowest ids
    const std::vector<std::int32_t> ids = {151000, 3, 90000, 17, 120000, 64, 500, 149999, 77777, 2};
    std::vector<float> logits(kVocab, kNegInf);
    for (std::int32_t id : ids) logits[std::size_t(id)] = 1.5f;
    for (int top_k : {0, 20}) {
        CAPTURE(top_k);
        Sampler s(params(1.0f, top_k, 0.35f, 0.0f));
        auto d = dist(s, logits);
        const std::map<std::int32_t, double> want = {{2, 0.25}, {3, 0.25}, {17, 0.25}, {64, 0.25}};
        check_same(d, want);
    }
}

TEST_CASE("sampler: top-p on a wide distribution matches a full sort of the softmax") {
    // 151,936 distinct logits in a scrambled order: the histogram path must find the same cutoff as
    // sorting everything
    std::vector<float> logits(kVocab);
    for (std::size_t i = 0; i < kVocab; ++i) logits[i] = float((i * 7919) % kVocab) * 1e-4f - 8.0f;
    for (float top_p : {0.1f, 0.5f, 0.9f, 0.99f}) {
        Sampler s(params(1.0f, 0, top_p, 0.0f));
        auto got = s.distribution(logits);
        std::vector<std::pair<float, std::int32_t>> sorted;
        for (std::size_t i = 0; i < kVocab; ++i) sorted.push_back({logits[i], std::int32_t(i)});
        std::sort(sorted.begin(), sorted.end(), [](auto a, auto b) { return a.first > b.first; });
        double total = 0;
        for (auto& e : sorted) total += std::exp(double(e.first) - sorted[0].first);
        std::set<std::int32_t> want;
        double sum = 0;
        for (auto& e : sorted) {
            want.insert(e.second);
            sum += std::exp(double(e.first) - sorted[0].first) / total;
            if (sum >= top_p) break;
        }
        std::set<std::int32_t> have;
        for (auto& tp : got) have.insert(tp.token);
        CAPTURE(top_p);
        CHECK(have == want);
    }
}

TEST_CASE("sampler: min-p keeps tokens at least min_p times as likely as the best") {
    // ratios to the best: 1, 1/2, 1/4, 1/8, 1/8
    const std::vector<std::pair<float, std::vector<std::size_t>>> table = {
        {1.0f, {0}}, {0.6f, {0}}, {0.49f, {0, 1}}, {0.3f, {0, 1}}, {0.2f, {0, 1, 2}}, {0.1f, {0, 1, 2, 3, 4}}};
    for (const auto& row : table) {
        const float min_p = row.first;
        const std::vector<std::size_t>& keep = row.second;
        for (int top_k : {0, 10}) {
            CAPTURE(min_p);
            CAPTURE(top_k);
            Sampler s(params(1.0f, top_k, 1.0f, min_p));
            check_same(dist(s, known_logits(-60.0f)), expected(keep));
        }
    }
    // min-p after temperature: at T = 2 the ratios are 1, 0.707, 0.5, 0.354, 0.354
    Sampler s(params(2.0f, 0, 1.0f, 0.6f));
    check_same(dist(s, known_logits()), expected({0, 1}, 2.0));
}

TEST_CASE("sampler: penalties change exactly the penalized logits by the documented amounts") {
    SamplerParams p;
    p.repetition_penalty = 1.5f;
    p.presence_penalty = 0.25f;
    p.frequency_penalty = 0.5f;
    p.penalty_last_n = 4;
    Sampler s(p);
    std::vector<float> logits(1000, 1.0f);
    logits[10] = 3.0f;
    logits[20] = -2.0f;
    logits[30] = 0.0f;
    for (std::int32_t t : {10, 20, 20, 30}) s.accept(t);
    std::vector<float> out = logits;
    s.apply_penalties(out);
    // 10 (once): 3 / 1.5 - 0.5 - 0.25 = 1.25; 20 (twice): -2 * 1.5 - 1.0 - 0.25 = -4.25;
    // 30 (once, logit 0): 0 * 1.5 - 0.5 - 0.25 = -0.75
    CHECK(out[10] == 1.25f);
    CHECK(out[20] == -4.25f);
    CHECK(out[30] == -0.75f);
    for (std::size_t i = 0; i < out.size(); ++i)
        if (i != 10 && i != 20 && i != 30) CHECK(out[i] == logits[i]);

    // the window holds the last 4 accepted tokens: 10 leaves, 20 stays (twice), 40 comes in
    s.accept(40);
    out = logits;
    s.apply_penalties(out);
    CHECK(out[10] == 3.0f);
    CHECK(out[20] == -4.25f);
    CHECK(out[30] == -0.75f);
    CHECK(out[40] == 1.0f / 1.5f - 0.5f - 0.25f);

    s.reset();
    out = logits;
    s.apply_penalties(out);
    CHECK(out == logits);
}

TEST_CASE("sampler: penalties move tokens in and out of top-k and decide greedy") {
    // the favourite (id 70000, p = 1/2) is pushed below the rest; a penalty of -10 (a boost) lifts id
    // 42 from the background into the set
    SamplerParams p = params(1.0f, 3, 1.0f, 0.0f);
    p.presence_penalty = 10.0f;
    Sampler with_top_k(p);
    p.top_k = 0;
    p.min_p = 0.01f;  // the full-vocabulary path, without the -60 background
    Sampler full(p);
    for (Sampler* s : {&with_top_k, &full}) s->accept(70000);
    std::vector<float> logits = known_logits(-60.0f);
    auto d = dist(with_top_k, logits);
    check_same(d, expected({1, 2, 3}));
    d = dist(full, logits);
    check_same(d, expected({1, 2, 3, 4}));

    SamplerParams boost = params(1.0f, 2, 1.0f, 0.0f);
    boost.presence_penalty = -100.0f;
    Sampler b(boost);
    b.accept(42);
    d = dist(b, logits);
    REQUIRE(d.size() == 2);
    CHECK(d.count(42) == 1);
    CHECK(d.count(70000) == 1);

    SamplerParams g = SamplerParams::greedy();
    g.repetition_penalty = 100.0f;
    Sampler greedy(g);
    CHECK(greedy.sample(logits) == 70000);
    greedy.accept(70000);
    CHECK(greedy.sample(logits) == 5);  // 70000's logit 2.31 / 100 falls below 5's 1.61
}

TEST_CASE("sampler: xoshiro256** seeded by splitmix64 matches the published reference") {
    // first outputs of prng.di.unimi.it's xoshiro256starstar.c with its state filled by splitmix64.c
    qwen3::detail::Xoshiro256 a(0), b(42);
    CHECK(a.next() == 0x99ec5f36cb75f2b4ull);
    CHECK(a.next() == 0xbf6e1f784956452aull);
    CHECK(a.next() == 0x1a5f849d4933e6e0ull);
    CHECK(b.next() == 0x15780b2e0c2ec716ull);
    CHECK(b.next() == 0x6104d9866d113a7eull);
}

TEST_CASE("sampler: the seed reproduces a run; another seed gives another run; reset restarts it") {
    std::vector<float> logits(kVocab);
    for (std::size_t i = 0; i < kVocab; ++i) logits[i] = float((i * 2654435761u) % 1000) * 0.01f;
    auto run = [&](Sampler& s) {
        std::vector<std::int32_t> out;
        for (int i = 0; i < 200; ++i) out.push_back(s.sample(logits));
        return out;
    };
    for (SamplerParams p : {SamplerParams::thinking(), params(1.0f, 0, 0.9f, 0.0f), params(1.0f, 0, 1.0f, 0.0f)}) {
        p.seed = 1234;
        Sampler a(p), b(p);
        const auto first = run(a);
        CHECK(first == run(b));
        a.reset();
        CHECK(first == run(a));
        p.seed = 1235;
        Sampler c(p);
        CHECK(first != run(c));
    }
}

TEST_CASE("sampler: draw frequencies follow the kept distribution (chi-square, fixed seed)") {
    // 200,000 draws; chi-square with 4 degrees of freedom exceeds 40 with probability below 1e-7
    for (SamplerParams p : {params(1.0f, 0, 1.0f, 0.0f), params(1.0f, 20, 1.0f, 0.0f), params(0.5f, 0, 0.99f, 0.0f)}) {
        p.seed = 7;
        Sampler s(p);
        // a small vocabulary keeps 200,000 draws quick; the known ids are remapped into it
        std::vector<float> logits(64, kNegInf);
        std::map<std::int32_t, double> want;
        for (const auto& [token, prob] : expected({0, 1, 2, 3, 4}, p.temperature)) {
            const std::int32_t small_id = token % 61;
            logits[std::size_t(small_id)] = known_logits()[std::size_t(token)];
            want[small_id] = prob;
        }
        std::map<std::int32_t, int> counts;
        const int draws = 200000;
        for (int i = 0; i < draws; ++i) ++counts[s.sample(logits)];
        double chi2 = 0;
        for (const auto& [token, prob] : want) {
            const double e = prob * draws;
            chi2 += (counts[token] - e) * (counts[token] - e) / e;
        }
        CAPTURE(p.temperature);
        CAPTURE(p.top_k);
        CHECK(counts.size() == want.size());
        CHECK(chi2 < 40.0);
    }
}

TEST_CASE("sampler: tokens top-k, top-p and min-p exclude are never drawn; the kept ones follow their share (chi-square)") {
    // 64 tokens: five with probabilities 0.4, 0.2, 0.1, 0.05, 0.05 and 59 with 0.2 / 59 each. Each
    // filter below keeps exactly the first three (renormalized: 4/7, 2/7, 1/7):
    //   top-k 3; top-p 0.65 (0.4 + 0.2 < 0.65 <= 0.4 + 0.2 + 0.1); min-p 0.2 (0.1 >= 0.2 x 0.4 > 0.05);
    //   top-k 40 (the five and 35 of the rest, renormalized by 0.9186), then top-p 0.7 (0.6531 < 0.7 <=
    //   0.7620 on those), then min-p 0.2; top-k 5, then min-p 0.2 alone decides (0.0625 < 0.2 x 0.5)
    const std::int32_t ids[] = {17, 3, 60, 41, 9};
    const double probs[] = {0.4, 0.2, 0.1, 0.05, 0.05};
    std::vector<float> logits(64, float(std::log(0.2 / 59)));
    for (int i = 0; i < 5; ++i) logits[std::size_t(ids[i])] = float(std::log(probs[i]));
    const std::map<std::int32_t, double> want = {{17, 4.0 / 7}, {3, 2.0 / 7}, {60, 1.0 / 7}};
    for (SamplerParams p : {params(1.0f, 3, 1.0f, 0.0f), params(1.0f, 0, 0.65f, 0.0f), params(1.0f, 0, 1.0f, 0.2f),
                            params(1.0f, 40, 0.7f, 0.2f), params(1.0f, 5, 1.0f, 0.2f)}) {
        CAPTURE(p.top_k);
        CAPTURE(p.top_p);
        CAPTURE(p.min_p);
        p.seed = 11;
        Sampler s(p);
        std::map<std::int32_t, int> counts;
        const int draws = 100000;
        for (int i = 0; i < draws; ++i) ++counts[s.sample(logits)];
        CHECK(counts.size() == 3);  // not one draw outside the kept three
        for (const auto& [token, n] : counts) CHECK_MESSAGE(want.count(token) == 1, "token " << token << " drawn " << n << " times");
        double chi2 = 0;  // 2 degrees of freedom: above 40 with probability about 2e-9
        for (const auto& [token, prob] : want) {
            const double e = prob * draws;
            chi2 += (counts[token] - e) * (counts[token] - e) / e;
        }
        CHECK(chi2 < 40.0);
    }
}

TEST_CASE("sampler: bad parameters and bad logits are errors") {
    auto bad = [](auto mutate, const char* needle) {
        SamplerParams p;
        mutate(p);
        return test::throws_error([&] { Sampler s(p); }, ErrorCode::invalid_argument, needle);
    };
    CHECK(bad([](SamplerParams& p) { p.temperature = -1; }, "temperature"));
    CHECK(bad([](SamplerParams& p) { p.temperature = NAN; }, "temperature"));
    CHECK(bad([](SamplerParams& p) { p.top_k = -1; }, "top_k"));
    CHECK(bad([](SamplerParams& p) { p.top_p = 0; }, "top_p"));
    CHECK(bad([](SamplerParams& p) { p.top_p = 1.5f; }, "top_p"));
    CHECK(bad([](SamplerParams& p) { p.min_p = -0.1f; }, "min_p"));
    CHECK(bad([](SamplerParams& p) { p.repetition_penalty = 0; }, "repetition_penalty"));
    CHECK(bad([](SamplerParams& p) { p.presence_penalty = INFINITY; }, "presence_penalty"));
    CHECK(bad([](SamplerParams& p) { p.penalty_last_n = -2; }, "penalty_last_n"));

    for (SamplerParams p : {SamplerParams::greedy(), SamplerParams::thinking(), params(1.0f, 0, 0.9f, 0.0f)}) {
        Sampler s(p);
        std::vector<float> logits(kVocab, 0.0f);
        CHECK(test::throws_error([&] { s.sample({}); }, ErrorCode::invalid_argument, "no logits"));
        logits[123456] = NAN;
        CHECK(test::throws_error([&] { s.sample(logits); }, ErrorCode::invalid_argument, "logit 123456 is NaN"));
        logits[123456] = INFINITY;
        CHECK(test::throws_error([&] { s.sample(logits); }, ErrorCode::invalid_argument, "logit 123456 is +inf"));
        logits[123456] = 0;
        logits[kVocab - 1] = NAN;  // in the scalar tail
        CHECK(test::throws_error([&] { s.sample(logits); }, ErrorCode::invalid_argument, "is NaN"));
        std::vector<float> none(kVocab, kNegInf);
        CHECK(test::throws_error([&] { s.sample(none); }, ErrorCode::invalid_argument, "every logit is -inf"));
    }
    SamplerParams p;
    p.repetition_penalty = 1.1f;
    Sampler s(p);
    CHECK(test::throws_error([&] { s.accept(-1); }, ErrorCode::invalid_argument, "negative"));
    s.accept(500);
    std::vector<float> small(100, 0.0f);
    CHECK(test::throws_error([&] { s.sample(small); }, ErrorCode::invalid_argument, "accepted token 500"));
}
