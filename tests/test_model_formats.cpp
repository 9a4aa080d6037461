// The micro shape end to end in every weight format people download, with RoPE scaling, and with
// any thread count, against llama.cpp evaluating the same files (tests/data/llamacpp/formats, rope).
//   - quantized and float files made by `qwen3 quantize` from the micro model: the same bytes
//     llama.cpp evaluated (the quantizer is deterministic); llama.cpp quantizes or rounds the
//     activations its own way, so these hold to a bound per format rather than to float rounding;
//   - BF16 weights from a Hugging Face folder of safetensors (the usual release format) and from a
//     BF16 GGUF, against llama.cpp computing in f32 on the same values: float rounding only;
//   - YaRN and linear RoPE scaling read from the GGUF metadata and from config.json, at positions
//     past the original context;
//   - 1, 2, 3 and 4 threads give the same bits.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <qwen3/model.hpp>
#include <qwen3/quantize.hpp>

#include "golden.hpp"
#include "random_model.hpp"

using Cfg = qwen3::Qwen3_Micro;
using test::Golden;

namespace {

struct Distance {
    float max_abs = 0;  // largest logit difference over every stored row
    double mean_kl = 0; // mean KL divergence from llama.cpp's distribution, per row
};

// Our rows for the golden's prompt positions and decode steps, against llama.cpp's.
Distance distance_to(const qwen3::Model<Cfg>& model, const Golden& g, int threads = 2) {
    qwen3::Session<Cfg, qwen3::KVF32> s(model, threads);
    std::vector<float> logits(g.tokens.size() * Cfg::vocab);
    s.eval(g.tokens, logits);
    Distance d;
    std::size_t rows = 0;
    auto add = [&](std::span<const float> ours, std::span<const float> ref) {
        d.max_abs = std::max(d.max_abs, test::max_abs_diff(ours, ref));
        d.mean_kl += test::kl_divergence(ref, ours);
        ++rows;
    };
    for (std::size_t i = 0; i < g.positions.size(); ++i)
        add(std::span<const float>(logits).subspan(std::size_t(g.positions[i]) * Cfg::vocab, Cfg::vocab), g.prompt_row(i));
    for (std::size_t i = 0; i < g.decode.size(); ++i) add(s.eval(g.decode[i]), g.decode_row(i));
    d.mean_kl /= double(rows);
    return d;
}

test::RandomModelSpec micro_spec(qwen3::DType type) {
    test::RandomModelSpec spec{128, 2, 4, 2, 64, 384, 4096, true, type, type};
    spec.seed = 3;
    return spec;
}

}  // namespace

TEST_CASE("quantized and float files made by qwen3 quantize stay within their format's bound of llama.cpp on the same file") {
    struct Case {
        const char* type;
        qwen3::quant::FileType file_type;
        float max_abs;   // bounds, a few times the largest measured in the AVX-512, AVX2 and portable
        double mean_kl;  // builds (tests/data/README.md lists the measurements)
    };
    // llama.cpp multiplies F16 and BF16 weights with activations rounded to the weight's type, and
    // quantized ones with activations quantized per block; this library keeps f32 activations for
    // float weights and quantizes per block too, with its own rounding
    const Case cases[] = {
        {"Q8_0", qwen3::quant::FileType::q8_0, 3e-2f, 2e-5},    {"Q4_0", qwen3::quant::FileType::q4_0, 4e-2f, 2e-5},
        {"Q4_K_M", qwen3::quant::FileType::q4_k_m, 4e-2f, 3e-5}, {"Q5_K_M", qwen3::quant::FileType::q5_k_m, 4e-2f, 3e-5},
        {"Q6_K", qwen3::quant::FileType::q6_k, 4e-2f, 3e-5},    {"F16", qwen3::quant::FileType::f16, 2e-3f, 3e-8},
        {"BF16", qwen3::quant::FileType::bf16, 1.5e-2f, 2e-6},
    };
    test::TempDir dir;
    for (const Case& c : cases) {
        const std::string type = c.type;
        CAPTURE(type);
        const std::string path = dir.file(std::string("micro-") + c.type + ".gguf");
        qwen3::quant::quantize_model(test::data_path("qwen3-micro-f32.gguf"), path, c.file_type);
        const Golden g = test::load_golden("formats", c.type, Cfg::vocab);
        REQUIRE(g.positions.size() == 9);
        REQUIRE(g.decode.size() == 8);
        for (bool copies : {true, false}) {
            CAPTURE(copies);
            qwen3::Model<Cfg> model(path, qwen3::ModelOptions{.copy_for_decode = copies});
            const Distance d = distance_to(model, g);
            MESSAGE(type << (copies ? " (decode copies)" : " (file in place)") << ": max |ours - llama.cpp| = " << d.max_abs
                           << ", mean KL " << d.mean_kl);
            CHECK(d.max_abs < c.max_abs);
            CHECK(d.mean_kl < c.mean_kl);
        }
    }
}

TEST_CASE("BF16 weights from a Hugging Face safetensors folder and from a BF16 GGUF match llama.cpp in f32 on the same values") {
    // llama.cpp evaluated these values stored as F32 (its BF16 products would round the
    // activations); this library widens BF16 to f32 exactly, so only float rounding remains
    const Golden g = test::load_golden("formats", "bf16_values", Cfg::vocab);
    test::TempDir dir;
    qwen3::ThreadPool pool(2);
    test::write_random_hf_folder(micro_spec(qwen3::DType::bf16), dir.file("micro-bf16-hf"), "", "", pool);
    {
        qwen3::Model<Cfg> from_folder(dir.file("micro-bf16-hf"));
        REQUIRE(from_folder.checkpoint().format() == qwen3::CheckpointFormat::safetensors);
        REQUIRE(from_folder.weights().layers[1].ffn_down.type == qwen3::DType::bf16);
        test::check_golden(from_folder, g, 2);
    }
    qwen3::Model<Cfg> from_gguf(test::make_random_model(micro_spec(qwen3::DType::bf16), pool));
    REQUIRE(from_gguf.weights().layers[0].attn_q.type == qwen3::DType::bf16);
    test::check_golden(from_gguf, g, 1);
}

TEST_CASE("YaRN and linear RoPE scaling from GGUF metadata and from config.json match llama.cpp past the original context") {
    qwen3::ThreadPool pool(2);
    test::TempDir dir;
    for (const std::string kind : {"yarn", "linear"}) {
        CAPTURE(kind);
        test::RandomModelSpec spec = micro_spec(qwen3::DType::f32);
        spec.context_length = 2048;
        spec.rope_scaling.kind = kind == "yarn" ? qwen3::RopeScaling::Kind::yarn : qwen3::RopeScaling::Kind::linear;
        spec.rope_scaling.factor = 4;
        spec.rope_scaling.original_context = 512;
        const Golden g = test::load_golden("rope", kind, Cfg::vocab);
        REQUIRE(g.tokens.size() == 1800);  // positions far past the original 512
        const std::string gguf = dir.file(kind + ".gguf"), folder = dir.file(kind + "-hf");
        test::write_random_gguf(spec, gguf, kind, "", "", pool);
        test::write_random_hf_folder(spec, folder, "", "", pool);
        for (const std::string& path : {gguf, folder}) {
            CAPTURE(path);
            qwen3::Model<Cfg> model(path);
            REQUIRE(model.params().rope_scaling.kind == spec.rope_scaling.kind);
            test::check_golden(model, g, 2);
        }
        // without the scaling the same weights give other logits: the test can tell
        spec.rope_scaling = {};
        qwen3::Model<Cfg> unscaled(test::make_random_model(spec, pool));
        qwen3::Session<Cfg, qwen3::KVF32> s(unscaled, 2);
        s.eval(g.tokens);
        CHECK(test::max_abs_diff(s.logits(), g.prompt_row(g.positions.size() - 1)) > 1e-3f);
    }
}

TEST_CASE("1, 2, 3 and 4 threads give bit-identical logits in prefill and decode (F32, BF16 and Q4_K_M weights)") {
    const Golden g = test::load_golden("micro", "m2", Cfg::vocab);
    test::TempDir dir;
    qwen3::ThreadPool pool(2);
    const std::string q4 = dir.file("micro-q4_k_m.gguf");
    qwen3::quant::quantize_model(test::data_path("qwen3-micro-f32.gguf"), q4, qwen3::quant::FileType::q4_k_m);
    const qwen3::Model<Cfg> models[] = {qwen3::Model<Cfg>(test::data_path("qwen3-micro-f32.gguf")),
                                        qwen3::Model<Cfg>(test::make_random_model(micro_spec(qwen3::DType::bf16), pool)),
                                        qwen3::Model<Cfg>(q4)};
    for (const qwen3::Model<Cfg>& model : models) {
        std::vector<float> first;
        for (int threads : {1, 2, 3, 4}) {
            CAPTURE(threads);
            qwen3::Session<Cfg> s(model, threads);  // the default BF16 arena
            std::vector<float> rows(g.tokens.size() * Cfg::vocab);
            s.eval(g.tokens, rows);
            for (std::int32_t id : g.decode) {
                const auto step = s.eval(id);
                rows.insert(rows.end(), step.begin(), step.end());
            }
            if (first.empty()) first = rows;
            REQUIRE(rows.size() == first.size());
            CHECK(std::memcmp(rows.data(), first.data(), rows.size() * sizeof(float)) == 0);
        }
    }
}
