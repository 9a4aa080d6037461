// qwen3/model_params.hpp - the hyperparameters a checkpoint declares.
//
//     const qwen3::ModelParams& p = qwen3::Checkpoint::open(path).params();   // p.rope_theta, p.vocab, ...
//
// What the file says, as it says it: the format readers fill these (format/checkpoint.hpp), a model
// checks them against its compiled configuration when it binds the file (weights.hpp), and the RoPE
// kernel takes its frequencies from them. Not the compile-time shape (config.hpp).
#pragma once

#include <cstdint>
#include <string>

namespace qwen3 {

// RoPE frequency scaling declared by the file. Qwen3 ships without scaling (native 32k/40k context)
// and documents YaRN (factor 4, original 32768) for longer contexts.
struct RopeScaling {
    enum class Kind { none, linear, yarn };
    Kind kind = Kind::none;
    double factor = 1.0;
    std::uint64_t original_context = 0;
    double beta_fast = 32.0;   // YaRN: rotations per dimension above which frequencies are kept
    double beta_slow = 1.0;    // YaRN: below which they are interpolated
    double attention_factor = 0;  // YaRN: 0 = default 0.1 * ln(factor) + 1
};

// Hyperparameters as the file states them (validated against a compiled Config by the model).
struct ModelParams {
    std::string architecture;  // "qwen3"
    std::string name;          // general.name or the folder name
    std::uint64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, ffn = 0, vocab = 0;
    bool tied_embeddings = true;
    std::uint64_t context_length = 0;  // the model's trained context (max_position_embeddings)
    double rope_theta = 1000000.0;
    double rms_norm_eps = 1e-6;
    RopeScaling rope_scaling;
};

}  // namespace qwen3
