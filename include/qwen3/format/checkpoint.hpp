// qwen3/format/checkpoint.hpp - one view of a Qwen3 checkpoint, whichever format it came in.
//
// A GGUF file and a Hugging Face folder (config.json + model.safetensors or shards) both become a
// Checkpoint: the hyperparameters the file declares (ModelParams) and its tensors under canonical
// GGUF-style names ("blk.3.attn_q.weight") with shapes outermost-first ([out, in]). The files stay
// mapped for the Checkpoint's lifetime and the tensors point into them.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../error.hpp"
#include "../tensor.hpp"
#include "gguf.hpp"
#include "json.hpp"
#include "mmap.hpp"
#include "safetensors.hpp"

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

enum class CheckpointFormat { gguf, safetensors };

class Checkpoint {
public:
    // Opens a .gguf file, or a Hugging Face folder (or its config.json / a .safetensors file in it).
    // Throws Error(io) when nothing readable is at `path`, Error(format) when a file is malformed,
    // Error(unsupported) for another architecture.
    static Checkpoint open(const std::string& path) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) detail::fail(ErrorCode::io, "cannot open ", path, ": no such file or folder");
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
    static Checkpoint in_memory(ModelParams params, std::vector<TensorView> tensors, std::shared_ptr<const void> keep_alive,
                                std::string name = "(in memory)") {
        Checkpoint c;
        c.format_ = CheckpointFormat::gguf;
        c.path_ = std::move(name);
        c.params_ = std::move(params);
        for (TensorView& t : tensors) c.add(std::move(t));
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
        p.architecture = std::string(f.get_string("general.architecture", ""));
        if (p.architecture != "qwen3")
            detail::fail(ErrorCode::unsupported, path, ": architecture is \"", p.architecture,
                         "\"; this library runs Qwen3 dense models (\"qwen3\")");
        p.name = std::string(f.get_string("general.name", ""));
        p.hidden = f.require_uint("qwen3.embedding_length");
        p.layers = f.require_uint("qwen3.block_count");
        p.heads = f.require_uint("qwen3.attention.head_count");
        p.kv_heads = f.get_uint("qwen3.attention.head_count_kv", p.heads);
        p.head_dim = f.get_uint("qwen3.attention.key_length", p.heads ? p.hidden / p.heads : 0);
        std::uint64_t value_length = f.get_uint("qwen3.attention.value_length", p.head_dim);
        if (value_length != p.head_dim)
            detail::fail(ErrorCode::unsupported, path, ": key_length ", p.head_dim, " differs from value_length ", value_length);
        p.ffn = f.require_uint("qwen3.feed_forward_length");
        p.context_length = f.get_uint("qwen3.context_length", 0);
        p.rope_theta = f.get_float("qwen3.rope.freq_base", 10000.0);
        p.rms_norm_eps = f.require_float("qwen3.attention.layer_norm_rms_epsilon");
        std::string_view scaling = f.get_string("qwen3.rope.scaling.type", "none");
        if (scaling == "yarn" || scaling == "linear") {
            p.rope_scaling.kind = scaling == "yarn" ? RopeScaling::Kind::yarn : RopeScaling::Kind::linear;
            p.rope_scaling.factor = f.require_float("qwen3.rope.scaling.factor");
            p.rope_scaling.original_context = f.get_uint("qwen3.rope.scaling.original_context_length", p.context_length);
            p.rope_scaling.beta_fast = f.get_float("qwen3.rope.scaling.yarn_beta_fast", 32.0);
            p.rope_scaling.beta_slow = f.get_float("qwen3.rope.scaling.yarn_beta_slow", 1.0);
            p.rope_scaling.attention_factor = f.get_float("qwen3.rope.scaling.attn_factor", 0.0);
        } else if (scaling != "none" && !scaling.empty()) {
            detail::fail(ErrorCode::unsupported, path, ": RoPE scaling \"", scaling, "\" is not supported");
        }
        for (const gguf::TensorInfo& t : f.tensors())
            c.add(TensorView{t.name, t.type, t.shape, t.data, t.bytes});
        const TensorView* embd = c.find("token_embd.weight");
        p.vocab = f.get_uint("qwen3.vocab_size", embd && embd->shape.rank == 2 ? embd->shape[0] : 0);
        p.tied_embeddings = c.find("output.weight") == nullptr;
        return c;
    }

    static Checkpoint open_hf_folder(const std::string& folder) {
        Checkpoint c;
        c.format_ = CheckpointFormat::safetensors;
        c.path_ = folder;
        c.folder_ = folder;
        const std::string config_path = folder + "/config.json";
        json::Value cfg = json::parse(read_text_file(config_path), config_path, 32);
        if (!cfg.is_object()) detail::fail(ErrorCode::format, config_path, ": not a JSON object");
        ModelParams& p = c.params_;
        auto get_uint = [&](const char* key, std::optional<std::uint64_t> fallback) -> std::uint64_t {
            const json::Value* v = cfg.find(key);
            if (!v || v->is_null()) {
                if (fallback) return *fallback;
                detail::fail(ErrorCode::format, config_path, ": missing \"", key, "\"");
            }
            if (!v->is_number() || v->as_double() < 0)
                detail::fail(ErrorCode::format, config_path, ": \"", key, "\" must be a non-negative integer");
            return std::uint64_t(v->as_int());
        };
        auto get_float = [&](const char* key, double fallback) {
            const json::Value* v = cfg.find(key);
            if (!v || v->is_null()) return fallback;
            if (!v->is_number()) detail::fail(ErrorCode::format, config_path, ": \"", key, "\" must be a number");
            return v->as_double();
        };
        const json::Value* model_type = cfg.find("model_type");
        p.architecture = model_type && model_type->is_string() ? model_type->as_string() : "";
        if (p.architecture != "qwen3")
            detail::fail(ErrorCode::unsupported, config_path, ": model_type is \"", p.architecture,
                         "\"; this library runs Qwen3 dense models (\"qwen3\")");
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
        p.rope_theta = get_float("rope_theta", 10000.0);
        p.rms_norm_eps = get_float("rms_norm_eps", 1e-6);
        if (const json::Value* rs = cfg.find("rope_scaling"); rs && !rs->is_null()) {
            if (!rs->is_object()) detail::fail(ErrorCode::format, config_path, ": \"rope_scaling\" must be an object or null");
            const json::Value* type = rs->find("rope_type");
            if (!type) type = rs->find("type");
            std::string kind = type && type->is_string() ? type->as_string() : "";
            auto num = [&](const char* key, double fallback) {
                const json::Value* v = rs->find(key);
                if (!v || v->is_null()) return fallback;
                if (!v->is_number()) detail::fail(ErrorCode::format, config_path, ": rope_scaling.", key, " must be a number");
                return v->as_double();
            };
            if (kind == "yarn" || kind == "linear") {
                p.rope_scaling.kind = kind == "yarn" ? RopeScaling::Kind::yarn : RopeScaling::Kind::linear;
                p.rope_scaling.factor = num("factor", 1.0);
                p.rope_scaling.original_context =
                    std::uint64_t(num("original_max_position_embeddings", double(p.context_length)));
                p.rope_scaling.beta_fast = num("beta_fast", 32.0);
                p.rope_scaling.beta_slow = num("beta_slow", 1.0);
                p.rope_scaling.attention_factor = num("attention_factor", 0.0);
            } else if (kind != "default" && !kind.empty()) {
                detail::fail(ErrorCode::unsupported, config_path, ": rope_scaling type \"", kind, "\" is not supported");
            }
        }

        std::vector<std::string> files;
        const std::string index_path = folder + "/model.safetensors.index.json";
        struct stat st {};
        if (::stat(index_path.c_str(), &st) == 0) {
            for (const std::string& shard : safetensors::read_shard_list(index_path)) files.push_back(folder + "/" + shard);
        } else {
            files.push_back(folder + "/model.safetensors");
        }
        for (const std::string& file : files) {
            auto shard = std::make_shared<safetensors::File>(file);
            for (const safetensors::TensorInfo& t : shard->tensors()) {
                std::string name = canonical_name(t.name);
                if (name.empty()) continue;  // not a weight the model uses (e.g. rotary_emb.inv_freq)
                if (!t.supported)
                    detail::fail(ErrorCode::unsupported, file, ": tensor ", t.name, " has dtype ", t.dtype,
                                 "; supported are F32, F16 and BF16");
                if (c.find(name)) detail::fail(ErrorCode::format, file, ": tensor ", t.name, " appears in more than one shard");
                c.add(TensorView{name, t.type, t.shape, t.data, t.bytes});
            }
            c.shards_.push_back(std::move(shard));
        }
        const json::Value* tie = cfg.find("tie_word_embeddings");
        p.tied_embeddings = tie && tie->is_bool() ? tie->as_bool() : c.find("output.weight") == nullptr;
        if (p.tied_embeddings && c.find("output.weight")) {
            // Some exports store lm_head even when tied; the tie decides, the copy is ignored.
            c.index_.erase("output.weight");
        }
        return c;
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
