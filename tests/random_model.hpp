// Random-weight Qwen3 models of any shape, bit for bit reproducible, so tests and benchmarks can run
// the real shapes without downloading gigabytes: in memory (a Checkpoint), as a GGUF file with the
// real Qwen3 tokenizer that llama.cpp loads, or as a Hugging Face folder (config.json +
// model.safetensors). tools/make_random_model.cpp is the command-line front end; the llama.cpp
// references in tests/data were computed on these files (tests/data/README.md).
//
// The weights (every value a function of the tensor's name, its index and a seed):
//
//   s0  = fnv1a64(GGUF tensor name) ^ seed;   x_i = splitmix64_mix(s0 + (i + 1) * G), G = 0x9E3779B97F4A7C15
//   u_i = float32(x_i >> 40) * 2^-23 - 1       (exact, in [-1, 1))
//   matrix: u_i * float32(0.02 * sqrt(3));     norm: 1 + u_i * 0.125   (float32 arithmetic)
//
// i runs over the tensor in row-major order of its [out, in] shape. Every value is then rounded (to
// nearest even) to the model's precision (`matrix_type`; the two vocabulary matrices to
// `embedding_type`). GGUF files store the 1-D norms as F32 holding those rounded values, as
// llama.cpp's converter does; safetensors folders store every tensor in its precision.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <qwen3/detail/simd.hpp>
#include <qwen3/format/checkpoint.hpp>
#include <qwen3/format/gguf_writer.hpp>
#include <qwen3/format/json.hpp>
#include <qwen3/quantize.hpp>
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

// Value i of a tensor whose name hashed with the seed is s0, before rounding to its precision.
inline float generated_value(std::uint64_t s0, std::uint64_t i, Kind kind) {
    constexpr std::uint64_t G = 0x9E3779B97F4A7C15ull;
    const std::uint64_t x = splitmix_mix(s0 + (i + 1) * G);
    const float u = float(x >> 40) * 0x1p-23f - 1.0f;
    if (kind == Kind::norm) return 1.0f + u * 0.125f;
    const float amplitude = float(0.02 * std::sqrt(3.0));
    return u * amplitude;
}

// v rounded (to nearest even) to the precision of `type` (F32, F16 or BF16).
inline float rounded_to(qwen3::DType type, float v) {
    if (type == qwen3::DType::bf16) return qwen3::detail::simd::bf16_to_f32(qwen3::detail::simd::f32_to_bf16(v));
    if (type == qwen3::DType::f16) return qwen3::detail::simd::f16_to_f32(qwen3::detail::simd::f32_to_f16(v));
    return v;
}

struct RandomModelSpec {
    int hidden, layers, heads, kv_heads, head_dim, ffn, vocab;
    bool tied;
    qwen3::DType matrix_type;     // precision (and storage) of every tensor but the vocabulary matrices: F32, F16, BF16
    qwen3::DType embedding_type;  // precision of token_embd (and an untied output)
    std::uint64_t seed = 0;
    double rope_theta = 1000000.0;
    double rms_norm_eps = 1e-6;
    std::uint64_t context_length = 40960;
    qwen3::RopeScaling rope_scaling = {};
    // Storage when it differs from the precision (the values stay rounded to the precision): BF16
    // values stored as F32 give llama.cpp, whose BF16 products round the activations too, the exact
    // arithmetic of this library's BF16 path.
    std::optional<qwen3::DType> matrix_storage = std::nullopt, embedding_storage = std::nullopt;

    qwen3::DType matrix_storage_type() const { return matrix_storage.value_or(matrix_type); }
    qwen3::DType embedding_storage_type() const { return embedding_storage.value_or(embedding_type); }
};

// The tiny random model of the llama.cpp "tiny" goldens (hidden 128, 2 layers, full vocabulary,
// f32 weights with BF16-valued embeddings), seed 0.
inline RandomModelSpec tiny_spec() { return {128, 2, 4, 2, 64, 384, 151936, true, qwen3::DType::f32, qwen3::DType::bf16}; }
// The Qwen3-0.6B shape in f32, seed 0: the llama.cpp "0.6b" golden.
inline RandomModelSpec qwen3_06b_spec() { return {1024, 28, 16, 8, 128, 3072, 151936, true, qwen3::DType::f32, qwen3::DType::f32}; }

// One tensor of the model: its canonical name, shape, kind, precision and storage type.
struct TensorSpec {
    std::string name;
    qwen3::Shape shape;
    Kind kind;
    qwen3::DType precision;  // values are rounded to this
    qwen3::DType storage;    // GGUF storage (norms: F32)
};

// Every tensor, in llama.cpp's GGUF order.
inline std::vector<TensorSpec> tensor_specs(const RandomModelSpec& spec) {
    std::vector<TensorSpec> specs;
    auto mat = [&](std::string name, int rows, int cols, qwen3::DType precision, qwen3::DType storage) {
        specs.push_back({std::move(name), qwen3::make_shape(std::uint64_t(rows), std::uint64_t(cols)), Kind::matrix, precision, storage});
    };
    auto norm = [&](std::string name, int n) {
        specs.push_back({std::move(name), qwen3::make_shape(std::uint64_t(n)), Kind::norm, spec.matrix_type, qwen3::DType::f32});
    };
    mat("token_embd.weight", spec.vocab, spec.hidden, spec.embedding_type, spec.embedding_storage_type());
    for (int l = 0; l < spec.layers; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        norm(b + "attn_norm.weight", spec.hidden);
        const qwen3::DType m = spec.matrix_type, stored = spec.matrix_storage_type();
        mat(b + "attn_q.weight", spec.heads * spec.head_dim, spec.hidden, m, stored);
        mat(b + "attn_k.weight", spec.kv_heads * spec.head_dim, spec.hidden, m, stored);
        mat(b + "attn_v.weight", spec.kv_heads * spec.head_dim, spec.hidden, m, stored);
        mat(b + "attn_output.weight", spec.hidden, spec.heads * spec.head_dim, m, stored);
        norm(b + "attn_q_norm.weight", spec.head_dim);
        norm(b + "attn_k_norm.weight", spec.head_dim);
        norm(b + "ffn_norm.weight", spec.hidden);
        mat(b + "ffn_gate.weight", spec.ffn, spec.hidden, m, stored);
        mat(b + "ffn_up.weight", spec.ffn, spec.hidden, m, stored);
        mat(b + "ffn_down.weight", spec.hidden, spec.ffn, m, stored);
    }
    norm("output_norm.weight", spec.hidden);
    if (!spec.tied) mat("output.weight", spec.vocab, spec.hidden, spec.embedding_type, spec.embedding_storage_type());
    return specs;
}

inline std::uint64_t storage_bytes(const TensorSpec& t, qwen3::DType storage) {
    return qwen3::row_bytes(storage, t.shape.cols()) * t.shape.rows();
}

// Writes tensor `t`'s values, stored as `storage` (F32, F16 or BF16), into out, in parallel.
inline void fill_tensor(const TensorSpec& t, qwen3::DType storage, std::uint64_t seed, std::byte* out, qwen3::ThreadPool& pool) {
    const std::uint64_t n = t.shape.elements();
    const std::uint64_t s0 = fnv1a64(t.name) ^ seed;
    constexpr std::uint64_t kChunk = 1 << 20;
    pool.run(int((n + kChunk - 1) / kChunk), [&](int c) {
        const std::uint64_t begin = std::uint64_t(c) * kChunk, end = std::min(n, begin + kChunk);
        for (std::uint64_t e = begin; e < end; ++e) {
            const float v = rounded_to(t.precision, generated_value(s0, e, t.kind));
            if (storage == qwen3::DType::f32) {
                std::memcpy(out + e * 4, &v, 4);
            } else {
                const std::uint16_t h = storage == qwen3::DType::bf16 ? qwen3::detail::simd::f32_to_bf16(v)
                                                                      : qwen3::detail::simd::f32_to_f16(v);
                std::memcpy(out + e * 2, &h, 2);
            }
        }
    });
}

inline qwen3::ModelParams model_params(const RandomModelSpec& spec, std::string name = "random") {
    qwen3::ModelParams p;
    p.architecture = "qwen3";
    p.name = std::move(name);
    p.hidden = std::uint64_t(spec.hidden);
    p.layers = std::uint64_t(spec.layers);
    p.heads = std::uint64_t(spec.heads);
    p.kv_heads = std::uint64_t(spec.kv_heads);
    p.head_dim = std::uint64_t(spec.head_dim);
    p.ffn = std::uint64_t(spec.ffn);
    p.vocab = std::uint64_t(spec.vocab);
    p.tied_embeddings = spec.tied;
    p.context_length = spec.context_length;
    p.rope_theta = spec.rope_theta;
    p.rms_norm_eps = spec.rms_norm_eps;
    p.rope_scaling = spec.rope_scaling;
    return p;
}

// The whole model in memory, as a checkpoint (GGUF storage types).
inline qwen3::Checkpoint make_random_model(const RandomModelSpec& spec, qwen3::ThreadPool& pool) {
    const std::vector<TensorSpec> specs = tensor_specs(spec);
    std::uint64_t total = 0;
    std::vector<std::uint64_t> offsets;
    for (const TensorSpec& t : specs) {
        offsets.push_back(total);
        total += (storage_bytes(t, t.storage) + 63) / 64 * 64;
    }
    auto storage = std::shared_ptr<std::byte[]>(new std::byte[total]);
    std::vector<qwen3::TensorView> views;
    for (std::size_t i = 0; i < specs.size(); ++i) {
        const TensorSpec& t = specs[i];
        std::byte* dst = storage.get() + offsets[i];
        fill_tensor(t, t.storage, spec.seed, dst, pool);
        views.push_back(qwen3::TensorView{t.name, t.storage, t.shape, dst, storage_bytes(t, t.storage)});
    }
    return qwen3::Checkpoint::in_memory(model_params(spec), std::move(views), storage, "random model (tests/random_model.hpp)");
}

// A checkpoint (e.g. make_random_model's) written as a GGUF file with Qwen3 metadata; with the
// tokenizer of `tokenizer_json` (cut or padded to the vocabulary) when one is given, so that
// llama.cpp loads it.
inline void write_gguf(const qwen3::Checkpoint& ckpt, const std::string& path, const std::string& name = "random",
                       const std::string& tokenizer_json = "", const std::string& tokenizer_config_json = "") {
    qwen3::ModelParams p = ckpt.params();
    p.name = name;
    qwen3::gguf::Writer w;
    qwen3::quant::add_model_metadata(w, p);
    if (!tokenizer_json.empty()) qwen3::quant::add_tokenizer_metadata(w, tokenizer_json, p.vocab, tokenizer_config_json);
    for (const qwen3::TensorView& t : ckpt.tensors())
        w.add_tensor(t.name, t.type, t.shape, std::span<const std::byte>(t.data, t.bytes));
    w.write(path);
}

// The model written as a GGUF file tensor by tensor (never whole in memory).
inline void write_random_gguf(const RandomModelSpec& spec, const std::string& path, const std::string& name,
                              const std::string& tokenizer_json, const std::string& tokenizer_config_json, qwen3::ThreadPool& pool) {
    qwen3::gguf::Writer w;
    qwen3::quant::add_model_metadata(w, model_params(spec, name));
    // llama.cpp's file types (llama_ftype): all F32 0, mostly F16 1, mostly BF16 32
    const qwen3::DType stored = spec.matrix_storage_type();
    w.set_u32("general.file_type", stored == qwen3::DType::f32 ? 0 : stored == qwen3::DType::f16 ? 1 : 32);
    if (!tokenizer_json.empty())
        qwen3::quant::add_tokenizer_metadata(w, tokenizer_json, std::uint64_t(spec.vocab), tokenizer_config_json);
    for (const TensorSpec& t : tensor_specs(spec))
        w.add_tensor(t.name, t.storage, t.shape, [&spec, &pool, t](std::byte* out, std::uint64_t) {
            fill_tensor(t, t.storage, spec.seed, out, pool);
        });
    w.write(path);
}

// The Hugging Face name of a canonical tensor name (the inverse of Checkpoint::canonical_name).
inline std::string hf_tensor_name(const std::string& canonical) {
    if (canonical == "token_embd.weight") return "model.embed_tokens.weight";
    if (canonical == "output_norm.weight") return "model.norm.weight";
    if (canonical == "output.weight") return "lm_head.weight";
    static const std::pair<const char*, const char*> parts[] = {
        {"attn_norm.weight", "input_layernorm.weight"},      {"attn_q.weight", "self_attn.q_proj.weight"},
        {"attn_k.weight", "self_attn.k_proj.weight"},        {"attn_v.weight", "self_attn.v_proj.weight"},
        {"attn_output.weight", "self_attn.o_proj.weight"},   {"attn_q_norm.weight", "self_attn.q_norm.weight"},
        {"attn_k_norm.weight", "self_attn.k_norm.weight"},   {"ffn_norm.weight", "post_attention_layernorm.weight"},
        {"ffn_gate.weight", "mlp.gate_proj.weight"},         {"ffn_up.weight", "mlp.up_proj.weight"},
        {"ffn_down.weight", "mlp.down_proj.weight"},
    };
    const std::size_t dot = canonical.find('.', 4);  // "blk.N."
    const std::string layer = canonical.substr(4, dot - 4), part = canonical.substr(dot + 1);
    for (auto [from, to] : parts)
        if (part == from) return "model.layers." + layer + "." + to;
    return "";
}

// The model as a Hugging Face folder: config.json (Qwen3ForCausalLM), model.safetensors with every
// tensor in its precision (norms too), and tokenizer.json / tokenizer_config.json copied when given.
inline void write_random_hf_folder(const RandomModelSpec& spec, const std::string& folder, const std::string& tokenizer_json,
                                   const std::string& tokenizer_config_json, qwen3::ThreadPool& pool) {
    namespace json = qwen3::json;
    namespace fs = std::filesystem;
    fs::create_directories(folder);
    auto dtype_name = [](qwen3::DType t) { return t == qwen3::DType::f32 ? "F32" : t == qwen3::DType::bf16 ? "BF16" : "F16"; };
    auto torch_name = [](qwen3::DType t) { return t == qwen3::DType::f32 ? "float32" : t == qwen3::DType::bf16 ? "bfloat16" : "float16"; };

    auto integer = [](auto v) { return json::Value::integer(std::int64_t(v)); };
    auto real = [](double v) { return json::Value(json::Number{json::python_float_repr(v), v, false}); };
    json::Value config(json::Object{});
    config.set("architectures", json::Value(json::Array{json::Value("Qwen3ForCausalLM")}));
    config.set("model_type", json::Value("qwen3"));
    config.set("hidden_size", integer(spec.hidden));
    config.set("num_hidden_layers", integer(spec.layers));
    config.set("num_attention_heads", integer(spec.heads));
    config.set("num_key_value_heads", integer(spec.kv_heads));
    config.set("head_dim", integer(spec.head_dim));
    config.set("intermediate_size", integer(spec.ffn));
    config.set("vocab_size", integer(spec.vocab));
    config.set("max_position_embeddings", integer(spec.context_length));
    config.set("rms_norm_eps", real(spec.rms_norm_eps));
    config.set("rope_theta", real(spec.rope_theta));
    config.set("tie_word_embeddings", json::Value(spec.tied));
    config.set("hidden_act", json::Value("silu"));
    config.set("torch_dtype", json::Value(torch_name(spec.matrix_type)));
    if (spec.rope_scaling.kind != qwen3::RopeScaling::Kind::none) {
        json::Value rs(json::Object{});
        rs.set("rope_type", json::Value(spec.rope_scaling.kind == qwen3::RopeScaling::Kind::yarn ? "yarn" : "linear"));
        rs.set("factor", real(spec.rope_scaling.factor));
        if (spec.rope_scaling.original_context)
            rs.set("original_max_position_embeddings", integer(spec.rope_scaling.original_context));
        config.set("rope_scaling", std::move(rs));
    }
    {
        const std::string text = json::dump(config) + "\n";
        std::FILE* f = std::fopen((folder + "/config.json").c_str(), "wb");
        if (!f || std::fwrite(text.data(), 1, text.size(), f) != text.size()) throw std::runtime_error("cannot write config.json");
        std::fclose(f);
    }

    // safetensors: 8-byte header length, the JSON header, then the tensors back to back
    std::vector<TensorSpec> specs = tensor_specs(spec);
    for (TensorSpec& t : specs) t.storage = t.precision;  // safetensors keep every tensor in its precision
    json::Value header(json::Object{});
    std::uint64_t offset = 0;
    for (const TensorSpec& t : specs) {
        json::Value entry(json::Object{});
        entry.set("dtype", json::Value(dtype_name(t.storage)));
        json::Array shape;
        for (std::uint32_t d = 0; d < t.shape.rank; ++d) shape.push_back(integer(t.shape[d]));
        entry.set("shape", json::Value(std::move(shape)));
        const std::uint64_t bytes = storage_bytes(t, t.storage);
        entry.set("data_offsets", json::Value(json::Array{integer(offset), integer(offset + bytes)}));
        header.set(hf_tensor_name(t.name), std::move(entry));
        offset += bytes;
    }
    std::string head = json::dump(header);
    head.append((8 - head.size() % 8) % 8, ' ');
    std::FILE* f = std::fopen((folder + "/model.safetensors").c_str(), "wb");
    if (!f) throw std::runtime_error("cannot create " + folder + "/model.safetensors");
    const std::uint64_t head_size = head.size();
    std::fwrite(&head_size, 8, 1, f);
    std::fwrite(head.data(), 1, head.size(), f);
    std::vector<std::byte> buffer;
    for (const TensorSpec& t : specs) {
        buffer.assign(storage_bytes(t, t.storage), std::byte{0});
        fill_tensor(t, t.storage, spec.seed, buffer.data(), pool);
        if (std::fwrite(buffer.data(), 1, buffer.size(), f) != buffer.size()) throw std::runtime_error("write failed (disk full?)");
    }
    std::fclose(f);
    if (!tokenizer_json.empty()) fs::copy_file(tokenizer_json, folder + "/tokenizer.json", fs::copy_options::overwrite_existing);
    if (!tokenizer_config_json.empty() && fs::exists(tokenizer_config_json))
        fs::copy_file(tokenizer_config_json, folder + "/tokenizer_config.json", fs::copy_options::overwrite_existing);
}

}  // namespace test
