// Binding a checkpoint to a compiled variant: every mismatch is an error naming what is wrong.
#include <doctest/doctest.h>

#include <qwen3/format/gguf_writer.hpp>
#include <qwen3/model.hpp>
#include <qwen3/variant.hpp>

#include "support.hpp"

using qwen3::ErrorCode;
using Micro = qwen3::Qwen3_Micro;

namespace {

// Rewrites the micro GGUF with `edit` applied to the writer (after its metadata and tensors are
// copied), skipping tensors for which `keep` returns false.
template <class Keep, class Edit>
std::string rewrite_micro(const test::TempDir& dir, Keep keep, Edit edit) {
    static qwen3::gguf::File source(test::data_path("qwen3-micro-f32.gguf"));
    qwen3::gguf::Writer w;
    for (const auto& [key, value] : source.metadata()) w.copy_value(key, value);
    for (const auto& t : source.tensors())
        if (keep(t)) w.add_tensor(t.name, t.type, t.shape, std::span<const std::byte>(t.data, t.bytes));
    edit(w);
    const std::string path = dir.file("edited.gguf");
    w.write(path);
    return path;
}

}  // namespace

TEST_CASE("an unchanged copy loads (the rewriting itself is sound)") {
    test::TempDir dir;
    auto path = rewrite_micro(dir, [](auto&) { return true; }, [](auto&) {});
    CHECK_NOTHROW(qwen3::Model<Micro>{path});
}

TEST_CASE("a missing tensor is named") {
    test::TempDir dir;
    auto path = rewrite_micro(dir, [](const auto& t) { return t.name != "blk.1.ffn_up.weight"; }, [](auto&) {});
    std::string msg;
    CHECK(test::throws_error([&] { qwen3::Model<Micro> m(path); }, ErrorCode::missing_tensor, "blk.1.ffn_up.weight is missing", &msg));
    CHECK(msg.find("[384, 128]") != std::string::npos);
}

TEST_CASE("a wrong-shaped tensor names the tensor, both shapes and the variant") {
    test::TempDir dir;
    std::vector<float> zeros(128 * 320);
    auto path = rewrite_micro(dir, [](const auto& t) { return t.name != "blk.0.ffn_gate.weight"; }, [&](qwen3::gguf::Writer& w) {
        w.add_tensor("blk.0.ffn_gate.weight", qwen3::DType::f32, qwen3::make_shape(320, 128),
                     std::as_bytes(std::span<const float>(zeros)));
    });
    std::string msg;
    CHECK(test::throws_error([&] { qwen3::Model<Micro> m(path); }, ErrorCode::shape_mismatch, "blk.0.ffn_gate.weight has shape [320, 128], expected [384, 128]", &msg));
    CHECK(msg.find("Qwen3-micro") != std::string::npos);
}

TEST_CASE("a tensor type without a kernel is refused with its name") {
    test::TempDir dir;
    std::vector<std::byte> blocks(128 / 32 * 36 * 256);  // Q8_1: 36 bytes per 32 elements (an activation format)
    auto path = rewrite_micro(dir, [](const auto& t) { return t.name != "blk.0.attn_q.weight"; }, [&](qwen3::gguf::Writer& w) {
        w.add_tensor("blk.0.attn_q.weight", qwen3::DType::q8_1, qwen3::make_shape(256, 128), blocks);
    });
    CHECK(test::throws_error([&] { qwen3::Model<Micro> m(path); }, ErrorCode::unsupported, "blk.0.attn_q.weight has type Q8_1"));
}

TEST_CASE("a norm weight in a quantized type is refused") {
    test::TempDir dir;
    std::vector<std::byte> blocks(128 / 32 * 34);
    auto path = rewrite_micro(dir, [](const auto& t) { return t.name != "output_norm.weight"; }, [&](qwen3::gguf::Writer& w) {
        w.add_tensor("output_norm.weight", qwen3::DType::q8_0, qwen3::make_shape(128), blocks);
    });
    CHECK(test::throws_error([&] { qwen3::Model<Micro> m(path); }, ErrorCode::unsupported, "norm weight output_norm.weight has type Q8_0"));
}

TEST_CASE("a file of another shape names the compiled variant that fits") {
    std::string msg;
    CHECK(test::throws_error([&] { qwen3::Model<qwen3::Qwen3_0_6B> m(test::data_path("qwen3-micro-f32.gguf")); },
                             ErrorCode::config_mismatch, "the file matches the named variant Qwen3-micro", &msg));
    CHECK(msg.find("compiled: hidden 1024") != std::string::npos);
    CHECK(msg.find("file:     hidden 128") != std::string::npos);
}

TEST_CASE("hyperparameters that contradict the tensors are refused") {
    test::TempDir dir;
    auto path = rewrite_micro(dir, [](const auto&) { return true; }, [](qwen3::gguf::Writer& w) { w.set_u32("qwen3.block_count", 3); });
    CHECK(test::throws_error([&] { qwen3::Model<Micro> m(path); }, ErrorCode::config_mismatch, "layers 3"));
    auto bad_eps = rewrite_micro(dir, [](const auto&) { return true; },
                                 [](qwen3::gguf::Writer& w) { w.set_f32("qwen3.attention.layer_norm_rms_epsilon", -1.0f); });
    CHECK(test::throws_error([&] { qwen3::Model<Micro> m(bad_eps); }, ErrorCode::format, "RMSNorm epsilon"));
    auto bad_theta = rewrite_micro(dir, [](const auto&) { return true; },
                                   [](qwen3::gguf::Writer& w) { w.set_f32("qwen3.rope.freq_base", 0.0f); });
    CHECK(test::throws_error([&] { qwen3::Model<Micro> m(bad_theta); }, ErrorCode::format, "RoPE theta"));
}

TEST_CASE("with_variant runs the lambda for the fitting variant and refuses others") {
    auto ckpt = qwen3::Checkpoint::open(test::data_path("qwen3-micro-f32.gguf"));
    std::string name = qwen3::with_variant(ckpt.params(), [&]<class Cfg>() { return std::string(Cfg::name); });
    CHECK(name == "Qwen3-micro");
    using OnlyBig = qwen3::ConfigList<qwen3::Qwen3_4B, qwen3::Qwen3_8B>;
    CHECK(test::throws_error([&] { qwen3::with_variant<OnlyBig>(ckpt.params(), [&]<class Cfg>() { return 0; }); },
                             ErrorCode::config_mismatch, "compiled: Qwen3-4B, Qwen3-8B"));
}
