// The micro model (tests/data, 4096-token vocabulary) against llama.cpp's logits and greedy tokens.
#include <doctest/doctest.h>

#include <cmath>
#include <qwen3/model.hpp>
#include <qwen3/quantize.hpp>

#include "golden.hpp"

using Cfg = qwen3::Qwen3_Micro;
using test::Golden;
using test::max_abs_diff;

static Golden micro(const char* name) { return test::load_golden("micro", name, Cfg::vocab); }

TEST_CASE("micro model from GGUF matches llama.cpp logits and greedy tokens") {
    qwen3::Model<Cfg> model(test::data_path("qwen3-micro-f32.gguf"));
    for (const char* name : {"m1", "m2"})
        for (int threads : {1, 2}) test::check_golden(model, micro(name), threads);
}

TEST_CASE("micro model read from a huge-page copy of its F32 matrices matches llama.cpp") {
    // by default only large models get the copy; a minimum of 0 bytes gives the micro model one
    qwen3::Model<Cfg> model(test::data_path("qwen3-micro-f32.gguf"), qwen3::ModelOptions{.copy_tuning = {.float_copy_minimum = 0}});
    REQUIRE(model.weights().layers[0].ffn_up.copied);
    REQUIRE(model.weights().output.copied);
    CHECK(model.weights().token_embd.data == model.weights().output.data);  // tied: the lookup reads the copy
    for (const char* name : {"m1", "m2"})
        for (int threads : {1, 2}) test::check_golden(model, micro(name), threads);
}

TEST_CASE("micro model from the safetensors folder matches llama.cpp logits and greedy tokens") {
    qwen3::Model<Cfg> model(test::data_path("qwen3-micro-f32-hf"));
    for (const char* name : {"m1", "m2"}) test::check_golden(model, micro(name), 2);
}

TEST_CASE("prefill of N tokens equals N single-token decodes") {
    qwen3::Model<Cfg> model(test::data_path("qwen3-micro-f32.gguf"));
    Golden g = micro("m2");
    qwen3::Session<Cfg, qwen3::KVF32> batch(model), stepwise(model);
    std::vector<float> all(g.logits.size());
    batch.eval(g.tokens, all);
    float worst = 0;
    for (std::size_t t = 0; t < g.tokens.size(); ++t) {
        auto row = stepwise.eval(g.tokens[t]);
        worst = std::max(worst, max_abs_diff(row, std::span<const float>(all).subspan(t * Cfg::vocab, Cfg::vocab)));
    }
    INFO("max |prefill - decode| = " << worst);
    CHECK(worst < 1e-5f);
}

TEST_CASE("prefill starting at any position matches llama.cpp at every position") {
    // a prompt continued after a prefix of any length: the queries of one attention task then straddle
    // key blocks in every way (some see nothing of the last block)
    qwen3::Model<Cfg> model(test::data_path("qwen3-micro-f32.gguf"));
    Golden g = micro("m2");
    const std::size_t n = g.tokens.size();
    for (std::size_t split : {1, 2, 3, 5, 6, 7, 13}) {
        if (split >= n) continue;
        qwen3::Session<Cfg, qwen3::KVF32> s(model, 2);
        std::vector<float> first(split * Cfg::vocab), second((n - split) * Cfg::vocab);
        s.eval(std::span<const std::int32_t>(g.tokens).first(split), first);
        s.eval(std::span<const std::int32_t>(g.tokens).subspan(split), second);
        float worst = 0;
        for (std::size_t t = 0; t < n; ++t) {
            const std::span<const float> ours = t < split ? std::span<const float>(first).subspan(t * Cfg::vocab, Cfg::vocab)
                                                          : std::span<const float>(second).subspan((t - split) * Cfg::vocab, Cfg::vocab);
            worst = std::max(worst, max_abs_diff(ours, std::span<const float>(g.logits).subspan(t * Cfg::vocab, Cfg::vocab)));
        }
        INFO("prefix of " << split << " tokens, then " << n - split << ": max |logit - llama.cpp| = " << worst);
        CHECK(worst < 1e-4f);
    }
}

TEST_CASE("session truncate reuses a prefix; reset starts over") {
    qwen3::Model<Cfg> model(test::data_path("qwen3-micro-f32.gguf"));
    Golden g = micro("m1");
    qwen3::Session<Cfg, qwen3::KVF32> s(model);
    std::vector<std::int32_t> prefix(g.tokens.begin(), g.tokens.begin() + 5);
    std::vector<std::int32_t> rest(g.tokens.begin() + 5, g.tokens.end());
    s.eval(prefix);
    s.eval(std::vector<std::int32_t>{7, 8, 9});
    s.truncate(5);
    CHECK(s.position() == 5);
    auto last = s.eval(rest);
    const std::span<const float> golden_last(g.logits.data() + (g.tokens.size() - 1) * Cfg::vocab, Cfg::vocab);
    CHECK(max_abs_diff(last, golden_last) < 1e-4f);
    s.reset();
    CHECK(s.position() == 0);
    s.eval(g.tokens);
    CHECK(max_abs_diff(s.logits(), golden_last) < 1e-4f);
}

TEST_CASE("positions past the arena and ids outside the vocabulary are errors") {
    qwen3::Model<Cfg> model(test::data_path("qwen3-micro-f32.gguf"));
    qwen3::Session s(model, 1);
    std::vector<std::int32_t> too_long(Cfg::max_context + 1, 1);
    CHECK(test::throws_error([&] { s.eval(too_long); }, qwen3::ErrorCode::context_overflow, "holds 4096 positions"));
    CHECK(s.position() == 0);
    CHECK(test::throws_error([&] { s.eval(4096); }, qwen3::ErrorCode::invalid_argument, "outside the vocabulary"));
    CHECK(test::throws_error([&] { s.eval(-1); }, qwen3::ErrorCode::invalid_argument, "outside the vocabulary"));
    std::vector<std::int32_t> fill(Cfg::max_context, 1);
    s.eval(std::span<const std::int32_t>(fill).first(Cfg::max_context - 1));
    s.eval(1);
    CHECK(s.position() == Cfg::max_context);
    CHECK(test::throws_error([&] { s.eval(1); }, qwen3::ErrorCode::context_overflow, "4096 are used"));
}

// The KV arena's element types, against the F32 arena's logits (which match llama.cpp): rounding
// keys and values to 8 or 16 bits moves the logits by a small, bounded amount.
template <class KV>
static float kv_type_error(const qwen3::Model<Cfg>& model, const Golden& g) {
    qwen3::Session<Cfg, KV> s(model, 2);
    std::vector<float> logits(g.logits.size());
    s.eval(g.tokens, logits);
    return test::max_abs_diff(logits, g.logits);
}

TEST_CASE("KV arena element types stay close to the F32 arena") {
    qwen3::Model<Cfg> model(test::data_path("qwen3-micro-f32.gguf"));
    const Golden g = micro("m2");
    const float f32 = kv_type_error<qwen3::KVF32>(model, g), bf16 = kv_type_error<qwen3::KVBF16>(model, g),
                f16 = kv_type_error<qwen3::KVF16>(model, g), q8 = kv_type_error<qwen3::KVQ8_0>(model, g);
    MESSAGE("max |logit - llama.cpp (F32 KV)|: F32 " << f32 << ", BF16 " << bf16 << ", F16 " << f16 << ", Q8_0 " << q8);
    CHECK(f32 < 1e-4f);
    CHECK(f16 < 2e-3f);
    CHECK(bf16 < 1e-2f);
    CHECK(q8 < 2e-2f);
    CHECK(f32 < f16);
    CHECK(f16 < bf16);
}

// KL(p_ref || p) of two logit rows, in nats.
static double kl_divergence(std::span<const float> reference, std::span<const float> logits) {
    auto log_softmax = [](std::span<const float> v) {
        const double m = *std::max_element(v.begin(), v.end());
        double sum = 0;
        for (float x : v) sum += std::exp(double(x) - m);
        std::vector<double> out(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) out[i] = double(v[i]) - m - std::log(sum);
        return out;
    };
    const auto lp = log_softmax(reference), lq = log_softmax(logits);
    double kl = 0;
    for (std::size_t i = 0; i < lp.size(); ++i) kl += std::exp(lp[i]) * (lp[i] - lq[i]);
    return kl;
}

TEST_CASE("quantized micro models stay close to llama.cpp's F32 logits, in prefill and in (packed) decode") {
    test::TempDir dir;
    const Golden g = micro("m2");
    REQUIRE(g.all_positions);
    // bounds: about 8x the mean divergence measured (Q8_0 6.2e-6, Q4_0 4.5e-4 nats)
    const std::pair<qwen3::quant::FileType, double> cases[] = {{qwen3::quant::FileType::q8_0, 5e-5}, {qwen3::quant::FileType::q4_0, 4e-3}};
    for (auto [file_type, bound] : cases) {
        const std::string path = dir.file("micro-quantized.gguf");
        qwen3::quant::quantize_model(test::data_path("qwen3-micro-f32.gguf"), path, file_type);
        qwen3::Model<Cfg> model(path), unpacked(path, qwen3::ModelOptions{.copy_for_decode = false});
        CAPTURE(int(file_type));
        qwen3::Session<Cfg, qwen3::KVF32> prefill(model), decode(model), decode_in_place(unpacked);
        std::vector<float> all(g.logits.size());
        prefill.eval(g.tokens, all);
        double prefill_kl = 0, decode_kl = 0, in_place_kl = 0;
        for (std::size_t t = 0; t < g.tokens.size(); ++t) {
            const auto ref = std::span<const float>(g.logits).subspan(t * Cfg::vocab, Cfg::vocab);
            prefill_kl += kl_divergence(ref, std::span<const float>(all).subspan(t * Cfg::vocab, Cfg::vocab));
            decode_kl += kl_divergence(ref, decode.eval(g.tokens[t]));
            in_place_kl += kl_divergence(ref, decode_in_place.eval(g.tokens[t]));
        }
        const double n = double(g.tokens.size());
        MESSAGE("mean KL vs llama.cpp F32: prefill " << prefill_kl / n << ", packed decode " << decode_kl / n
                                                     << ", in-place decode " << in_place_kl / n);
        CHECK(prefill_kl / n < bound);
        CHECK(decode_kl / n < bound);
        CHECK(in_place_kl / n < bound);
    }
}
