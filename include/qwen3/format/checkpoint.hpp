// qwen3/format/checkpoint.hpp - one view of a Qwen3 checkpoint, whichever format it came in.
//
// A GGUF file and a Hugging Face folder (config.json + model.safetensors or shards) both become a
// Checkpoint: the hyperparameters the file declares (ModelParams) and its tensors under canonical
// GGUF-style names ("blk.3.attn_q.weight") with shapes outermost-first ([out, in]). The files stay
// mapped for the Checkpoint's lifetime and the tensors point into them.
//
// What is checked here: that the files are well formed (the format readers), that the architecture
// is "qwen3", that every hyperparameter is present where required, an integer from 0 to 2^31 - 1 or a
// finite number, and that a sharded folder's index agrees with its shards. Whether the values and
// tensors fit a compiled configuration is checked when a model binds the checkpoint (weights.hpp).
#pragma once

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../error.hpp"
#include "../model_params.hpp"
#include "../tensor.hpp"
#include "gguf.hpp"
#include "json.hpp"
#include "mmap.hpp"
#include "safetensors.hpp"

namespace qwen3 {

enum class CheckpointFormat { gguf, safetensors };

// config.json is a few hundred bytes; anything near this limit is not a model configuration.
inline constexpr std::uint64_t kMaxConfigBytes = 16u << 20;
// Integer hyperparameters above this fit no compiled configuration (its dimensions are int).
inline constexpr std::uint64_t kMaxHyperparameter = 2147483647;

class Checkpoint {
public:
    // Opens a .gguf file, or a Hugging Face folder (or its config.json / a .safetensors file in it).
    // Throws Error(io) when nothing readable is at `path` (or a folder has no config.json),
    // Error(format) when a file is malformed or a required hyperparameter is missing or out of range,
    // Error(unsupported) for another architecture, RoPE scaling type or a model tensor's dtype.
    static Checkpoint open(const std::string& path) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) detail::fail(ErrorCode::io, "cannot open ", path, ": ", std::strerror(errno));
        if (S_ISDIR(st.st_mode)) return open_hf_folder(path);
        // a file: GGUF by its magic; config.json or *.safetensors name their folder
        {
            MappedFile probe(path);
            if (probe.size() >= 4 && std::memcmp(probe.data(), "GGUF", 4) == 0) return open_gguf(path);
        }
        std::string_view p(path);
        auto ends_with = [&](std::string_view s) { return p.size() >= s.size() && p.substr(p.size() - s.size()) == s; };
        if (ends_with(".safetensors") || ends_with("config.json") || ends_with(".index.json")) {
            std::size_t slash = path.find_last_of('/');
            return open_hf_folder(slash == std::string::npos ? std::string(".") : path.substr(0, slash));
        }
        if (ends_with(".gguf"))
            detail::fail(ErrorCode::format, path, ": not a GGUF file (the first 4 bytes are not \"GGUF\")");
        detail::fail(ErrorCode::format, path, ": neither a GGUF file nor a Hugging Face model folder");
    }

    const ModelParams& params() const { return params_; }
    CheckpointFormat format() const { return format_; }
    const std::string& path() const { return path_; }
    const std::vector<TensorView>& tensors() const { return tensors_; }
    const TensorView* find(std::string_view canonical_name) const {
        auto it = index_.find(std::string(canonical_name));
        return it == index_.end() ? nullptr : &tensors_[it->second];
    }
    // The parsed GGUF file (tokenizer metadata lives there); nullptr for a Hugging Face folder.
    const gguf::File* gguf_file() const { return gguf_.get(); }
    // The Hugging Face folder ("" for GGUF): tokenizer.json and tokenizer_config.json live there.
    const std::string& folder() const { return folder_; }
    // Bytes of tensor data in the checkpoint.
    std::uint64_t tensor_bytes() const {
        std::uint64_t n = 0;
        for (const TensorView& t : tensors_) n += t.bytes;
        return n;
    }

    // A checkpoint over tensors already in memory (synthetic models, converters). `keep_alive` owns
    // the memory the views point into and lives as long as the checkpoint.
    // Throws Error(invalid_argument) when two tensors have the same name.
    static Checkpoint in_memory(ModelParams params, std::vector<TensorView> tensors, std::shared_ptr<const void> keep_alive,
                                std::string name = "(in memory)") {
        Checkpoint c;
        c.format_ = CheckpointFormat::gguf;
        c.path_ = std::move(name);
        c.params_ = std::move(params);
        for (TensorView& t : tensors) {
            if (c.find(t.name)) detail::fail(ErrorCode::invalid_argument, c.path_, ": tensor ", t.name, " given twice");
            c.add(std::move(t));
        }
        c.keep_alive_ = std::move(keep_alive);
        return c;
    }

    // Maps a Hugging Face tensor name to the canonical name; "" for names the model does not use.
    static std::string canonical_name(std::string_view hf) {
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

private:
    static Checkpoint open_gguf(const std::string& path) {
        Checkpoint c;
        c.format_ = CheckpointFormat::gguf;
        c.path_ = path;
        c.gguf_ = std::make_shared<gguf::File>(path);
        const gguf::File& f = *c.gguf_;
        ModelParams& p = c.params_;
        p.architecture = std::string(f.require_string("general.architecture"));
        if (p.architecture != "qwen3")
            detail::fail(ErrorCode::unsupported, path, ": architecture is ", detail::quote_file_string(p.architecture),
                         "; this library runs Qwen3 dense models (\"qwen3\")");
        auto uint = [&](const char* key, std::optional<std::uint64_t> fallback) -> std::uint64_t {
            std::uint64_t v = fallback && !f.find(key) ? *fallback : f.require_uint(key);
            if (v > kMaxHyperparameter)
                detail::fail(ErrorCode::format, path, ": metadata ", key, " is ", v, ", over the limit of ", kMaxHyperparameter);
            return v;
        };
        auto real = [&](const char* key, std::optional<double> fallback) -> double {
            double v = fallback && !f.find(key) ? *fallback : f.require_float(key);
            if (!std::isfinite(v)) detail::fail(ErrorCode::format, path, ": metadata ", key, " is ", v, ", not a finite number");
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
            detail::fail(ErrorCode::unsupported, path, ": key_length ", p.head_dim, " differs from value_length ", value_length);
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
            detail::fail(ErrorCode::unsupported, path, ": RoPE scaling ", detail::quote_file_string(scaling),
                         " is not supported (none, linear and yarn are)");
        }
        for (const gguf::TensorInfo& t : f.tensors())
            c.add(TensorView{t.name, t.type, t.shape, t.data, t.bytes});
        const TensorView* embd = c.find("token_embd.weight");
        p.vocab = uint("qwen3.vocab_size", embd && embd->shape.rank == 2 ? embd->shape[0] : 0);
        p.tied_embeddings = c.find("output.weight") == nullptr;
        return c;
    }

    // A hyperparameter from config.json: an integer 0 .. kMaxHyperparameter (1024.0 is accepted as
    // 1024, as Python would), or a finite number.
    static std::uint64_t config_uint(const json::Value& v, const std::string& file, std::string_view key) {
        std::uint64_t out = 0;
        if (detail::json_uint_at_most(v, kMaxHyperparameter, out)) return out;
        if (v.is_number() && !v.is_integer()) {
            double d = v.as_double();
            if (d >= 0 && d <= double(kMaxHyperparameter) && std::floor(d) == d) return std::uint64_t(d);
        }
        detail::fail(ErrorCode::format, file, ": \"", key, "\" must be an integer from 0 to ", kMaxHyperparameter,
                     ", found ", json::dump(v));
    }
    static double config_real(const json::Value& v, const std::string& file, std::string_view key) {
        if (!v.is_number() || !std::isfinite(v.as_double()))
            detail::fail(ErrorCode::format, file, ": \"", key, "\" must be a finite number, found ", json::dump(v));
        return v.as_double();
    }

    // Reads a small JSON file of a Hugging Face folder strictly (unique keys, bounded size and depth).
    static json::Value read_config_json(const std::string& file) {
        MappedFile mapped(file);
        if (mapped.size() > kMaxConfigBytes)
            detail::fail(ErrorCode::format, file, ": ", mapped.size(), " bytes, over the limit of ", kMaxConfigBytes,
                         " for a model configuration");
        json::ParseOptions options;
        options.max_depth = 32;
        options.max_values = safetensors::kMaxHeaderValues;
        options.unique_keys = true;  // Python would keep the last of two values, Value::find the first
        json::Value cfg = json::parse(mapped.view(), file, options);
        if (!cfg.is_object()) detail::fail(ErrorCode::format, file, ": not a JSON object");
        return cfg;
    }

    // RoPE scaling from a "rope_scaling" object (transformers 4) or "rope_parameters" (transformers 5,
    // which also moves rope_theta there). The type is "rope_type" (or the older "type").
    static void read_rope(const json::Value& cfg, const std::string& config_path, ModelParams& p) {
        const json::Value* params = cfg.find("rope_parameters");
        if (params && !params->is_null() && !params->is_object())
            detail::fail(ErrorCode::format, config_path, ": \"rope_parameters\" must be an object or null");
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
        if (!rs->is_object()) detail::fail(ErrorCode::format, config_path, ": \"rope_scaling\" must be an object or null");
        const json::Value* type = rs->find("rope_type");
        if (!type) type = rs->find("type");
        if (!type || !type->is_string())
            detail::fail(ErrorCode::format, config_path, ": ", section, " needs a string \"rope_type\"");
        const std::string& kind = type->as_string();
        if (kind == "default") return;
        if (kind != "yarn" && kind != "linear")
            detail::fail(ErrorCode::unsupported, config_path, ": ", section, " type ", json::quote(kind),
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

    static Checkpoint open_hf_folder(const std::string& folder) {
        Checkpoint c;
        c.format_ = CheckpointFormat::safetensors;
        c.path_ = folder;
        c.folder_ = folder;
        const std::string config_path = folder + "/config.json";
        struct stat st {};
        if (::stat(config_path.c_str(), &st) != 0)
            detail::fail(ErrorCode::io, folder, ": no config.json (neither a GGUF file nor a Hugging Face model folder)");
        const json::Value cfg = read_config_json(config_path);
        ModelParams& p = c.params_;
        auto get_uint = [&](const char* key, std::optional<std::uint64_t> fallback) -> std::uint64_t {
            const json::Value* v = cfg.find(key);
            if (!v || v->is_null()) {
                if (fallback) return *fallback;
                detail::fail(ErrorCode::format, config_path, ": missing \"", key, "\"");
            }
            return config_uint(*v, config_path, key);
        };
        auto get_real = [&](const char* key, double fallback) {
            const json::Value* v = cfg.find(key);
            return !v || v->is_null() ? fallback : config_real(*v, config_path, key);
        };
        const json::Value* model_type = cfg.find("model_type");
        if (!model_type || !model_type->is_string())
            detail::fail(ErrorCode::format, config_path, ": missing or non-string \"model_type\"");
        p.architecture = model_type->as_string();
        if (p.architecture != "qwen3")
            detail::fail(ErrorCode::unsupported, config_path, ": model_type is ", json::quote(p.architecture),
                         "; this library runs Qwen3 dense models (\"qwen3\")");
        std::size_t slash = folder.find_last_of('/', folder.size() > 1 ? folder.size() - 2 : 0);
        p.name = slash == std::string::npos ? folder : folder.substr(slash + 1);
        p.hidden = get_uint("hidden_size", std::nullopt);
        p.layers = get_uint("num_hidden_layers", std::nullopt);
        p.heads = get_uint("num_attention_heads", std::nullopt);
        p.kv_heads = get_uint("num_key_value_heads", p.heads);
        p.head_dim = get_uint("head_dim", p.heads ? p.hidden / p.heads : 0);
        p.ffn = get_uint("intermediate_size", std::nullopt);
        p.vocab = get_uint("vocab_size", std::nullopt);
        p.context_length = get_uint("max_position_embeddings", 0);
        p.rms_norm_eps = get_real("rms_norm_eps", 1e-6);
        read_rope(cfg, config_path, p);
        const json::Value* tie = cfg.find("tie_word_embeddings");
        if (tie && !tie->is_null() && !tie->is_bool())
            detail::fail(ErrorCode::format, config_path, ": \"tie_word_embeddings\" must be true or false, found ",
                         json::dump(*tie));

        // The shards: those the index names, or the single model.safetensors.
        std::optional<safetensors::Index> index;
        const std::string index_path = folder + "/model.safetensors.index.json";
        if (::stat(index_path.c_str(), &st) == 0) index = safetensors::read_index(index_path);
        const std::vector<std::string> names = index ? index->shards : std::vector<std::string>{"model.safetensors"};
        std::unordered_map<std::string, std::size_t> shard_of;  // canonical name -> shard it came from
        for (std::size_t s = 0; s < names.size(); ++s) {
            const std::string file = folder + "/" + names[s];
            auto shard = std::make_shared<safetensors::File>(file);
            for (const safetensors::TensorInfo& t : shard->tensors()) {
                std::string name = canonical_name(t.name);
                if (name.empty()) continue;  // not a weight the model uses (e.g. rotary_emb.inv_freq)
                if (auto [it, added] = shard_of.emplace(name, s); !added)
                    detail::fail(ErrorCode::format, file, ": tensor ", t.name, " appears in more than one shard (also in ",
                                 names[it->second], ")");
                if (index) {
                    auto listed = index->shard_of.find(t.name);
                    if (listed == index->shard_of.end())
                        detail::fail(ErrorCode::format, file, ": tensor ", t.name, " is not listed in ", index_path);
                    if (listed->second != s)
                        detail::fail(ErrorCode::format, file, ": tensor ", t.name, " is in this shard, but ", index_path,
                                     " lists it in ", names[listed->second]);
                }
                if (!t.supported)
                    detail::fail(ErrorCode::unsupported, file, ": tensor ", t.name, " has dtype ", t.dtype,
                                 "; supported are F32, F16 and BF16");
                c.add(TensorView{name, t.type, t.shape, t.data, t.bytes});
            }
            c.shards_.push_back(std::move(shard));
        }
        if (index)
            for (const auto& [hf_name, s] : index->shard_of)
                if (std::string name = canonical_name(hf_name); !name.empty() && !c.find(name))
                    detail::fail(ErrorCode::format, index_path, ": lists tensor ", hf_name, " in ", names[s],
                                 ", which does not hold it");

        p.tied_embeddings = tie && tie->is_bool() ? tie->as_bool() : c.find("output.weight") == nullptr;
        // Some exports store lm_head even when tied; the tie decides and the copy is dropped.
        if (p.tied_embeddings) c.remove("output.weight");
        return c;
    }

    void remove(std::string_view canonical_name) {
        auto it = index_.find(std::string(canonical_name));
        if (it == index_.end()) return;
        tensors_.erase(tensors_.begin() + std::ptrdiff_t(it->second));
        index_.clear();
        for (std::size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
    }

    void add(TensorView view) {
        index_.emplace(view.name, tensors_.size());
        tensors_.push_back(std::move(view));
    }

    CheckpointFormat format_ = CheckpointFormat::gguf;
    std::string path_, folder_;
    ModelParams params_;
    std::vector<TensorView> tensors_;
    std::unordered_map<std::string, std::size_t> index_;
    std::shared_ptr<gguf::File> gguf_;
    std::vector<std::shared_ptr<safetensors::File>> shards_;
    std::shared_ptr<const void> keep_alive_;
};

}  // namespace qwen3
