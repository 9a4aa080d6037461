// qwen3/format/gguf_params.hpp - the hyperparameters of a Qwen3 GGUF file, from its metadata.
//
//     const ModelParams p = detail::read_gguf_params(gguf::File(path));
//
// llama.cpp's keys (qwen3.embedding_length, qwen3.rope.freq_base, ...) with its defaults where a key
// may be absent; the vocabulary size falls back to the embedding's rows and the embeddings count as
// tied when the file has no output.weight. Reading the file is gguf.hpp's job.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "../error.hpp"
#include "../model_params.hpp"
#include "gguf.hpp"
#include "hf_config.hpp"

namespace qwen3::detail {

// Throws Error(format) for a missing required key, a value of the wrong type, an integer over
// kMaxHyperparameter or a number that is not finite; Error(unsupported) for another architecture,
// differing key and value lengths, or a RoPE scaling type other than none, linear and yarn.
inline ModelParams read_gguf_params(const gguf::File& f) {
    const std::string& path = f.path();
    ModelParams p;
    p.architecture = std::string(f.require_string("general.architecture"));
    if (p.architecture != "qwen3")
        fail(ErrorCode::unsupported, path, ": architecture is ", quote_file_string(p.architecture),
             "; this library runs Qwen3 dense models (\"qwen3\")");
    auto uint = [&](const char* key, std::optional<std::uint64_t> fallback) -> std::uint64_t {
        std::uint64_t v = fallback && !f.find(key) ? *fallback : f.require_uint(key);
        if (v > kMaxHyperparameter)
            fail(ErrorCode::format, path, ": metadata ", key, " is ", v, ", over the limit of ", kMaxHyperparameter);
        return v;
    };
    auto real = [&](const char* key, std::optional<double> fallback) -> double {
        double v = fallback && !f.find(key) ? *fallback : f.require_float(key);
        if (!std::isfinite(v)) fail(ErrorCode::format, path, ": metadata ", key, " is ", v, ", not a finite number");
        return v;
    };
    p.name = std::string(f.get_string("general.name", ""));
    p.hidden = uint("qwen3.embedding_length", std::nullopt);
    p.layers = uint("qwen3.block_count", std::nullopt);
    p.heads = uint("qwen3.attention.head_count", std::nullopt);
    p.kv_heads = uint("qwen3.attention.head_count_kv", p.heads);
    p.head_dim = uint("qwen3.attention.key_length", p.heads ? p.hidden / p.heads : 0);
    std::uint64_t value_length = uint("qwen3.attention.value_length", p.head_dim);
    if (value_length != p.head_dim)
        fail(ErrorCode::unsupported, path, ": key_length ", p.head_dim, " differs from value_length ", value_length);
    p.ffn = uint("qwen3.feed_forward_length", std::nullopt);
    p.context_length = uint("qwen3.context_length", 0);
    p.rope_theta = real("qwen3.rope.freq_base", 10000.0);
    p.rms_norm_eps = real("qwen3.attention.layer_norm_rms_epsilon", std::nullopt);
    std::string_view scaling = f.get_string("qwen3.rope.scaling.type", "none");
    if (scaling == "yarn" || scaling == "linear") {
        p.rope_scaling.kind = scaling == "yarn" ? RopeScaling::Kind::yarn : RopeScaling::Kind::linear;
        p.rope_scaling.factor = real("qwen3.rope.scaling.factor", std::nullopt);
        p.rope_scaling.original_context = uint("qwen3.rope.scaling.original_context_length", p.context_length);
        p.rope_scaling.beta_fast = real("qwen3.rope.scaling.yarn_beta_fast", 32.0);
        p.rope_scaling.beta_slow = real("qwen3.rope.scaling.yarn_beta_slow", 1.0);
        p.rope_scaling.attention_factor = real("qwen3.rope.scaling.attn_factor", 0.0);
    } else if (scaling != "none" && !scaling.empty()) {
        fail(ErrorCode::unsupported, path, ": RoPE scaling ", quote_file_string(scaling),
             " is not supported (none, linear and yarn are)");
    }
    const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
    p.vocab = uint("qwen3.vocab_size", embd && embd->shape.rank == 2 ? embd->shape[0] : 0);
    p.tied_embeddings = f.find_tensor("output.weight") == nullptr;
    return p;
}

}  // namespace qwen3::detail
