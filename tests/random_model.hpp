// Builds, in memory, the random-weight models of shared/tools/make_model.py (whose weight generator
// its docstring specifies bit-exactly), so tests can check full-size shapes against llama.cpp's
// goldens without storing gigabytes. Written from that specification:
//
//   s0  = fnv1a64(GGUF tensor name) ^ seed;   x_i = splitmix64_mix(s0 + (i + 1) * G)
//   u_i = float32(x_i >> 40) * 2^-23 - 1       (exact)
//   matrix: u_i * float32(0.02 * sqrt(3));     norm: 1 + u_i * 0.125   (float32 arithmetic)
//   then rounded to the precision of the tensor (round to nearest even).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <qwen3/format/gguf_writer.hpp>
#include <qwen3/format/checkpoint.hpp>
#include <qwen3/detail/simd.hpp>
#include <qwen3/tensor.hpp>
#include <qwen3/thread_pool.hpp>

namespace test {

inline std::uint64_t fnv1a64(const std::string& s) {
    std::uint64_t h = 0xCBF29CE484222325ull;
    for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
    return h;
}

inline std::uint64_t splitmix_mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

enum class Kind { matrix, norm };

// Value i of tensor `name` before rounding to its storage precision.
inline float generated_value(std::uint64_t s0, std::uint64_t i, Kind kind) {
    constexpr std::uint64_t G = 0x9E3779B97F4A7C15ull;
    const std::uint64_t x = splitmix_mix(s0 + (i + 1) * G);
    const float u = float(x >> 40) * 0x1p-23f - 1.0f;
    if (kind == Kind::norm) return 1.0f + u * 0.125f;
    const float amplitude = float(0.02 * std::sqrt(3.0));
    return u * amplitude;
}

struct RandomModelSpec {
    int hidden, layers, heads, kv_heads, head_dim, ffn, vocab;
    bool tied;
    qwen3::DType matrix_type;     // storage of the 2-D tensors (F32 or BF16)
    qwen3::DType embedding_type;  // storage of token_embd / output (values rounded to it)
    std::uint64_t seed = 0;
    double rope_theta = 1000000.0;
    double rms_norm_eps = 1e-6;
};

// make_model.py --preset tiny --dtype f32 --embd-dtype bf16 (seed 0): the llama.cpp "tiny" goldens.
inline RandomModelSpec tiny_spec() { return {128, 2, 4, 2, 64, 384, 151936, true, qwen3::DType::f32, qwen3::DType::bf16}; }
// make_model.py --preset 0.6b --dtype f32 (seed 0): the llama.cpp "0.6b" goldens.
inline RandomModelSpec qwen3_06b_spec() { return {1024, 28, 16, 8, 128, 3072, 151936, true, qwen3::DType::f32, qwen3::DType::f32}; }

// Generates every tensor (in parallel over chunks of the pool) and returns an in-memory checkpoint.
inline qwen3::Checkpoint make_random_model(const RandomModelSpec& spec, qwen3::ThreadPool& pool) {
    struct Spec {
        std::string name;
        qwen3::Shape shape;
        Kind kind;
        qwen3::DType type;
    };
    std::vector<Spec> specs;
    auto mat = [&](std::string name, int rows, int cols, qwen3::DType type) {
        specs.push_back({std::move(name), qwen3::make_shape(std::uint64_t(rows), std::uint64_t(cols)), Kind::matrix, type});
    };
    auto norm = [&](std::string name, int n) {
        specs.push_back({std::move(name), qwen3::make_shape(std::uint64_t(n)), Kind::norm, qwen3::DType::f32});
    };
    mat("token_embd.weight", spec.vocab, spec.hidden, spec.embedding_type);
    for (int l = 0; l < spec.layers; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        norm(b + "attn_norm.weight", spec.hidden);
        mat(b + "attn_q.weight", spec.heads * spec.head_dim, spec.hidden, spec.matrix_type);
        mat(b + "attn_k.weight", spec.kv_heads * spec.head_dim, spec.hidden, spec.matrix_type);
        mat(b + "attn_v.weight", spec.kv_heads * spec.head_dim, spec.hidden, spec.matrix_type);
        mat(b + "attn_output.weight", spec.hidden, spec.heads * spec.head_dim, spec.matrix_type);
        norm(b + "attn_q_norm.weight", spec.head_dim);
        norm(b + "attn_k_norm.weight", spec.head_dim);
        norm(b + "ffn_norm.weight", spec.hidden);
        mat(b + "ffn_gate.weight", spec.ffn, spec.hidden, spec.matrix_type);
        mat(b + "ffn_up.weight", spec.ffn, spec.hidden, spec.matrix_type);
        mat(b + "ffn_down.weight", spec.hidden, spec.ffn, spec.matrix_type);
    }
    norm("output_norm.weight", spec.hidden);
    if (!spec.tied) mat("output.weight", spec.vocab, spec.hidden, spec.embedding_type);

    std::uint64_t total = 0;
    std::vector<std::uint64_t> offsets;
    for (const Spec& s : specs) {
        offsets.push_back(total);
        total += (qwen3::row_bytes(s.type, s.shape.cols()) * s.shape.rows() + 63) / 64 * 64;
    }
    auto storage = std::shared_ptr<std::byte[]>(new std::byte[total]);
    std::vector<qwen3::TensorView> views;
    for (std::size_t i = 0; i < specs.size(); ++i) {
        const Spec& s = specs[i];
        std::byte* dst = storage.get() + offsets[i];
        const std::uint64_t n = s.shape.elements();
        const std::uint64_t s0 = fnv1a64(s.name) ^ spec.seed;
        constexpr std::uint64_t kChunk = 1 << 20;
        const int chunks = int((n + kChunk - 1) / kChunk);
        pool.run(chunks, [&](int c) {
            const std::uint64_t begin = std::uint64_t(c) * kChunk, end = std::min(n, begin + kChunk);
            for (std::uint64_t e = begin; e < end; ++e) {
                const float v = generated_value(s0, e, s.kind);
                if (s.type == qwen3::DType::bf16) {
                    const std::uint16_t b = qwen3::detail::simd::f32_to_bf16(v);
                    std::memcpy(dst + e * 2, &b, 2);
                } else {
                    std::memcpy(dst + e * 4, &v, 4);
                }
            }
        });
        views.push_back(qwen3::TensorView{s.name, s.type, s.shape, dst, qwen3::row_bytes(s.type, s.shape.cols()) * s.shape.rows()});
    }
    qwen3::ModelParams p;
    p.architecture = "qwen3";
    p.name = "random";
    p.hidden = std::uint64_t(spec.hidden);
    p.layers = std::uint64_t(spec.layers);
    p.heads = std::uint64_t(spec.heads);
    p.kv_heads = std::uint64_t(spec.kv_heads);
    p.head_dim = std::uint64_t(spec.head_dim);
    p.ffn = std::uint64_t(spec.ffn);
    p.vocab = std::uint64_t(spec.vocab);
    p.tied_embeddings = spec.tied;
    p.context_length = 40960;
    p.rope_theta = spec.rope_theta;
    p.rms_norm_eps = spec.rms_norm_eps;
    return qwen3::Checkpoint::in_memory(std::move(p), std::move(views), storage, "random model (make_model.py generator)");
}


// A checkpoint (e.g. make_random_model's) written as a GGUF file with Qwen3 metadata, for programs
// that load the same weights from disk.
inline void write_gguf(const qwen3::Checkpoint& ckpt, const std::string& path, const std::string& name = "random") {
    const qwen3::ModelParams& p = ckpt.params();
    qwen3::gguf::Writer w;
    w.set_string("general.architecture", "qwen3");
    w.set_string("general.name", name);
    w.set_u32("qwen3.embedding_length", std::uint32_t(p.hidden));
    w.set_u32("qwen3.block_count", std::uint32_t(p.layers));
    w.set_u32("qwen3.attention.head_count", std::uint32_t(p.heads));
    w.set_u32("qwen3.attention.head_count_kv", std::uint32_t(p.kv_heads));
    w.set_u32("qwen3.attention.key_length", std::uint32_t(p.head_dim));
    w.set_u32("qwen3.attention.value_length", std::uint32_t(p.head_dim));
    w.set_u32("qwen3.feed_forward_length", std::uint32_t(p.ffn));
    w.set_u32("qwen3.context_length", std::uint32_t(p.context_length));
    w.set_f32("qwen3.rope.freq_base", float(p.rope_theta));
    w.set_f32("qwen3.attention.layer_norm_rms_epsilon", float(p.rms_norm_eps));
    for (const qwen3::TensorView& t : ckpt.tensors())
        w.add_tensor(t.name, t.type, t.shape, std::span<const std::byte>(t.data, t.bytes));
    w.write(path);
}

}  // namespace test
