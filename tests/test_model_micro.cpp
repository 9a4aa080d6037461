// The micro model (tests/data, 4096-token vocabulary) against llama.cpp's logits: prompts, decode
// steps, greedy tokens, a prompt that fills the arena; the arena's errors and element types; the
// quantized micro model against the F32 reference.
#include <doctest/doctest.h>

#include <cmath>
#include <qwen3/model.hpp>
#include <qwen3/quantize.hpp>

#include "golden.hpp"

using Cfg = qwen3::Qwen3_Micro;
using test::Golden;
using test::max_abs_diff;

static Golden micro(const char* name) { return test::load_golden("micro", name, Cfg::vocab); }

TEST_CASE("micro model from GGUF matches llama.cpp's logits in prefill and at every decode step") {
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

TEST_CASE("micro model from the safetensors folder matches llama.cpp's logits in prefill and decode") {
    qwen3::Model<Cfg> model(test::data_path("qwen3-micro-f32-hf"));
    for (const char* name : {"m1", "m2"}) test::check_golden(model, micro(name), 2);
}

TEST_CASE("prefill of N tokens equals N single-token decodes") {
    qwen3::Model<Cfg> model(test::data_path("qwen3-micro-f32.gguf"));
    Golden g = micro("m2");
    qwen3::Session<Cfg, qwen3::KVF32> batch(model), stepwise(model);
    std::vector<float> all(g.tokens.size() * Cfg::vocab);
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
    REQUIRE(g.all_positions());
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
            worst = std::max(worst, max_abs_diff(ours, g.prompt_row(t)));
        }
        INFO("prefix of " << split << " tokens, then " << n - split << ": max |logit - llama.cpp| = " << worst);
        CHECK(worst < 1e-5f);
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
    REQUIRE(g.all_positions());
    const std::span<const float> golden_last = g.prompt_row(g.tokens.size() - 1);
    CHECK(max_abs_diff(last, golden_last) < 1e-5f);
    s.reset();
    CHECK(s.position() == 0);
    s.eval(g.tokens);
    CHECK(max_abs_diff(s.logits(), golden_last) < 1e-5f);
}

TEST_CASE("a prompt of 4090 tokens matches llama.cpp at positions in the thousands, and so do the decode steps that fill the arena") {
    // eight prefill chunks of up to 512 tokens, then six decodes at positions 4090 .. 4095: the last
    // position of the arena
    qwen3::Model<Cfg> model(test::data_path("qwen3-micro-f32.gguf"));
    const Golden g = micro("long");
    REQUIRE(g.tokens.size() + g.decode.size() == std::size_t(Cfg::max_context));
    REQUIRE(g.positions.back() == 4089);
    // 2 and 4 threads split each decode query's positions into 2 and 4 parts (flash-decoding)
    for (int threads : {1, 2, 4}) CHECK(test::check_golden(model, g, threads) < 1e-5f);
}

TEST_CASE("positions past the arena and ids outside the vocabulary are errors") {
    qwen3::Model<Cfg> model(test::data_path("qwen3-micro-f32.gguf"));
    qwen3::Session<Cfg, qwen3::KVF32> s(model, 2);
    std::vector<std::int32_t> too_long(Cfg::max_context + 1, 1);
    CHECK(test::throws_error([&] { s.eval(too_long); }, qwen3::ErrorCode::context_overflow, "holds 4096 positions"));
    CHECK(s.position() == 0);
    CHECK(test::throws_error([&] { s.eval(4096); }, qwen3::ErrorCode::invalid_argument, "outside the vocabulary"));
    CHECK(test::throws_error([&] { s.eval(-1); }, qwen3::ErrorCode::invalid_argument, "outside the vocabulary"));
    // the long reference's prompt and decode steps fill the arena exactly; one more token does not fit
    const Golden g = micro("long");
    s.eval(g.tokens);
    for (std::int32_t id : g.decode) s.eval(id);
    CHECK(s.position() == Cfg::max_context);
    CHECK(max_abs_diff(s.logits(), g.decode_row(g.decode.size() - 1)) < 1e-5f);
    CHECK(test::throws_error([&] { s.eval(1); }, qwen3::ErrorCode::context_overflow, "4096 are used"));
    CHECK(s.position() == Cfg::max_context);
}

// The KV arena's element types, against the F32 arena's logits (which match llama.cpp): rounding
// keys and values to 8 or 16 bits moves the logits by a small, bounded amount.
template <class KV>
static float kv_type_error(const qwen3::Model<Cfg>& model, const Golden& g) {
    qwen3::Session<Cfg, KV> s(model, 2);
    std::vector<float> logits(g.tokens.size() * Cfg::vocab);
    s.eval(g.tokens, logits);
    float worst = test::max_abs_diff(logits, std::span<const float>(g.logits).first(logits.size()));
    for (std::size_t i = 0; i < g.decode.size(); ++i) worst = std::max(worst, test::max_abs_diff(s.eval(g.decode[i]), g.decode_row(i)));
    return worst;
}

TEST_CASE("KV arena element types stay close to the F32 arena") {
    qwen3::Model<Cfg> model(test::data_path("qwen3-micro-f32.gguf"));
    const Golden g = micro("m2");
    const float f32 = kv_type_error<qwen3::KVF32>(model, g), bf16 = kv_type_error<qwen3::KVBF16>(model, g),
                f16 = kv_type_error<qwen3::KVF16>(model, g), q8 = kv_type_error<qwen3::KVQ8_0>(model, g);
    MESSAGE("max |logit - llama.cpp (F32 KV)|: F32 " << f32 << ", BF16 " << bf16 << ", F16 " << f16 << ", Q8_0 " << q8);
    CHECK(f32 < 1e-5f);
    CHECK(f16 < 2e-3f);
    CHECK(bf16 < 1e-2f);
    CHECK(q8 < 2e-2f);
    // each narrower type must move the logits: an arena that silently stored F32 would fail here
    CHECK(f32 < f16);
    CHECK(f16 < bf16);
    CHECK(bf16 < q8);
    CHECK(f16 > 1e-5f);
}

TEST_CASE("quantized micro models stay close to llama.cpp's F32 logits, in prefill and in (packed) decode") {
    test::TempDir dir;
    const Golden g = micro("m2");
    REQUIRE(g.all_positions());
    // bounds: about 8x the mean divergence measured (Q8_0 6.2e-6, Q4_0 4.5e-4 nats)
    const std::pair<qwen3::quant::FileType, double> cases[] = {{qwen3::quant::FileType::q8_0, 5e-5}, {qwen3::quant::FileType::q4_0, 4e-3}};
    for (auto [file_type, bound] : cases) {
        const std::string path = dir.file("micro-quantized.gguf");
        qwen3::quant::quantize_model(test::data_path("qwen3-micro-f32.gguf"), path, file_type);
        qwen3::Model<Cfg> model(path), unpacked(path, qwen3::ModelOptions{.copy_for_decode = false});
        CAPTURE(int(file_type));
        qwen3::Session<Cfg, qwen3::KVF32> prefill(model), decode(model), decode_in_place(unpacked);
        std::vector<float> all(g.tokens.size() * Cfg::vocab);
        prefill.eval(g.tokens, all);
        double prefill_kl = 0, decode_kl = 0, in_place_kl = 0;
        for (std::size_t t = 0; t < g.tokens.size(); ++t) {
            const auto ref = g.prompt_row(t);
            prefill_kl += test::kl_divergence(ref, std::span<const float>(all).subspan(t * Cfg::vocab, Cfg::vocab));
            decode_kl += test::kl_divergence(ref, decode.eval(g.tokens[t]));
            in_place_kl += test::kl_divergence(ref, decode_in_place.eval(g.tokens[t]));
        }
        const double n = double(g.tokens.size());
        MESSAGE("mean KL vs llama.cpp F32: prefill " << prefill_kl / n << ", packed decode " << decode_kl / n
                                                     << ", in-place decode " << in_place_kl / n);
        CHECK(prefill_kl / n < bound);
        CHECK(decode_kl / n < bound);
        CHECK(in_place_kl / n < bound);
    }
}
