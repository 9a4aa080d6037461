// qwen3/format/hf_config.hpp - what a Hugging Face folder's config.json says, and its tensor names.
//
//     const detail::HfConfig c = detail::read_hf_config(folder + "/config.json", "Qwen3-4B");
//
// Reads config.json strictly (bounded size and depth, unique keys) into ModelParams, with RoPE
// scaling in either of transformers' spellings, and maps Hugging Face tensor names to the canonical
// GGUF-style names the rest of the library uses. Finding and checking the shards is the checkpoint's
// job (checkpoint.hpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "../error.hpp"
#include "../model_params.hpp"
#include "json.hpp"
#include "mmap.hpp"
#include "safetensors.hpp"

namespace qwen3::detail {

// config.json is a few hundred bytes; anything near this limit is not a model configuration.
inline constexpr std::uint64_t kMaxConfigBytes = 16u << 20;
// Integer hyperparameters above this fit no compiled configuration (its dimensions are int).
inline constexpr std::uint64_t kMaxHyperparameter = 2147483647;

// A hyperparameter from config.json: an integer 0 .. kMaxHyperparameter (1024.0 is accepted as 1024,
// as Python would), or a finite number. Throws Error(format) naming the file and key.
inline std::uint64_t config_uint(const json::Value& v, const std::string& file, std::string_view key) {
    std::uint64_t out = 0;
    if (json_uint_at_most(v, kMaxHyperparameter, out)) return out;
    if (v.is_number() && !v.is_integer()) {
        double d = v.as_double();
        if (d >= 0 && d <= double(kMaxHyperparameter) && std::floor(d) == d) return std::uint64_t(d);
    }
    fail(ErrorCode::format, file, ": \"", key, "\" must be an integer from 0 to ", kMaxHyperparameter, ", found ",
         json::dump(v));
}

inline double config_real(const json::Value& v, const std::string& file, std::string_view key) {
    if (!v.is_number() || !std::isfinite(v.as_double()))
        fail(ErrorCode::format, file, ": \"", key, "\" must be a finite number, found ", json::dump(v));
    return v.as_double();
}

// Reads a small JSON file of a Hugging Face folder strictly (unique keys, bounded size and depth).
inline json::Value read_config_json(const std::string& file) {
    MappedFile mapped(file);
    if (mapped.size() > kMaxConfigBytes)
        fail(ErrorCode::format, file, ": ", mapped.size(), " bytes, over the limit of ", kMaxConfigBytes,
             " for a model configuration");
    json::ParseOptions options;
    options.max_depth = 32;
    options.max_values = safetensors::kMaxHeaderValues;
    options.unique_keys = true;  // Python would keep the last of two values, Value::find the first
    json::Value cfg = json::parse(mapped.view(), file, options);
    if (!cfg.is_object()) fail(ErrorCode::format, file, ": not a JSON object");
    return cfg;
}

// RoPE theta and scaling from a "rope_scaling" object (transformers 4) or "rope_parameters"
// (transformers 5, which also moves rope_theta there). The type is "rope_type" (or the older "type").
inline void read_hf_rope(const json::Value& cfg, const std::string& config_path, ModelParams& p) {
    const json::Value* params = cfg.find("rope_parameters");
    if (params && !params->is_null() && !params->is_object())
        fail(ErrorCode::format, config_path, ": \"rope_parameters\" must be an object or null");
    if (params && params->is_null()) params = nullptr;
    if (const json::Value* theta = cfg.find("rope_theta"); theta && !theta->is_null())
        p.rope_theta = config_real(*theta, config_path, "rope_theta");
    else if (const json::Value* inner = params ? params->find("rope_theta") : nullptr; inner && !inner->is_null())
        p.rope_theta = config_real(*inner, config_path, "rope_parameters.rope_theta");
    else
        p.rope_theta = 10000.0;  // transformers' Qwen3Config default

    const json::Value* rs = cfg.find("rope_scaling");
    std::string section = "rope_scaling";
    if (!rs || rs->is_null()) rs = params, section = "rope_parameters";
    if (!rs || rs->is_null()) return;
    if (!rs->is_object()) fail(ErrorCode::format, config_path, ": \"rope_scaling\" must be an object or null");
    const json::Value* type = rs->find("rope_type");
    if (!type) type = rs->find("type");
    if (!type || !type->is_string()) fail(ErrorCode::format, config_path, ": ", section, " needs a string \"rope_type\"");
    const std::string& kind = type->as_string();
    if (kind == "default") return;
    if (kind != "yarn" && kind != "linear")
        fail(ErrorCode::unsupported, config_path, ": ", section, " type ", json::quote(kind),
             " is not supported (default, linear and yarn are)");
    auto real = [&](const char* key, double fallback) {
        const json::Value* v = rs->find(key);
        return !v || v->is_null() ? fallback : config_real(*v, config_path, section + "." + key);
    };
    p.rope_scaling.kind = kind == "yarn" ? RopeScaling::Kind::yarn : RopeScaling::Kind::linear;
    p.rope_scaling.factor = real("factor", 1.0);
    const json::Value* original = rs->find("original_max_position_embeddings");
    p.rope_scaling.original_context = !original || original->is_null()
                                          ? p.context_length
                                          : config_uint(*original, config_path, section + ".original_max_position_embeddings");
    p.rope_scaling.beta_fast = real("beta_fast", 32.0);
    p.rope_scaling.beta_slow = real("beta_slow", 1.0);
    p.rope_scaling.attention_factor = real("attention_factor", 0.0);
}

struct HfConfig {
    ModelParams params;                        // tied_embeddings as the file says it, when it does
    std::optional<bool> tie_word_embeddings;   // absent: the tensors decide (lm_head present or not)
};

// config.json of a Qwen3 folder as ModelParams. Throws Error(io) when it cannot be read,
// Error(format) for a malformed file or a missing or out-of-range hyperparameter, Error(unsupported)
// for another model_type or RoPE scaling type.
inline HfConfig read_hf_config(const std::string& config_path, std::string model_name) {
    const json::Value cfg = read_config_json(config_path);
    HfConfig out;
    ModelParams& p = out.params;
    auto get_uint = [&](const char* key, std::optional<std::uint64_t> fallback) -> std::uint64_t {
        const json::Value* v = cfg.find(key);
        if (!v || v->is_null()) {
            if (fallback) return *fallback;
            fail(ErrorCode::format, config_path, ": missing \"", key, "\"");
        }
        return config_uint(*v, config_path, key);
    };
    auto get_real = [&](const char* key, double fallback) {
        const json::Value* v = cfg.find(key);
        return !v || v->is_null() ? fallback : config_real(*v, config_path, key);
    };
    const json::Value* model_type = cfg.find("model_type");
    if (!model_type || !model_type->is_string())
        fail(ErrorCode::format, config_path, ": missing or non-string \"model_type\"");
    p.architecture = model_type->as_string();
    if (p.architecture != "qwen3")
        fail(ErrorCode::unsupported, config_path, ": model_type is ", json::quote(p.architecture),
             "; this library runs Qwen3 dense models (\"qwen3\")");
    p.name = std::move(model_name);
    p.hidden = get_uint("hidden_size", std::nullopt);
    p.layers = get_uint("num_hidden_layers", std::nullopt);
    p.heads = get_uint("num_attention_heads", std::nullopt);
    p.kv_heads = get_uint("num_key_value_heads", p.heads);
    p.head_dim = get_uint("head_dim", p.heads ? p.hidden / p.heads : 0);
    p.ffn = get_uint("intermediate_size", std::nullopt);
    p.vocab = get_uint("vocab_size", std::nullopt);
    p.context_length = get_uint("max_position_embeddings", 0);
    p.rms_norm_eps = get_real("rms_norm_eps", 1e-6);
    read_hf_rope(cfg, config_path, p);
    if (const json::Value* tie = cfg.find("tie_word_embeddings"); tie && !tie->is_null()) {
        if (!tie->is_bool())
            fail(ErrorCode::format, config_path, ": \"tie_word_embeddings\" must be true or false, found ", json::dump(*tie));
        out.tie_word_embeddings = tie->as_bool();
        p.tied_embeddings = tie->as_bool();
    }
    return out;
}

// The canonical (GGUF-style) name of a Hugging Face tensor name; "" for names the model does not use.
inline std::string canonical_tensor_name(std::string_view hf) {
    static const std::pair<std::string_view, std::string_view> layer_parts[] = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.o_proj.weight", "attn_output.weight"},
        {"self_attn.q_norm.weight", "attn_q_norm.weight"},
        {"self_attn.k_norm.weight", "attn_k_norm.weight"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},
        {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"},
    };
    if (hf == "model.embed_tokens.weight") return "token_embd.weight";
    if (hf == "model.norm.weight") return "output_norm.weight";
    if (hf == "lm_head.weight") return "output.weight";
    constexpr std::string_view prefix = "model.layers.";
    if (hf.substr(0, prefix.size()) != prefix) return "";
    std::string_view rest = hf.substr(prefix.size());
    std::size_t dot = rest.find('.');
    if (dot == 0 || dot == std::string_view::npos || dot > 6) return "";
    for (std::size_t i = 0; i < dot; ++i)
        if (rest[i] < '0' || rest[i] > '9') return "";
    std::string_view layer = rest.substr(0, dot), part = rest.substr(dot + 1);
    for (auto& [from, to] : layer_parts)
        if (part == from) return "blk." + std::string(layer) + "." + std::string(to);
    return "";
}

}  // namespace qwen3::detail
