// qwen3/quantize/hf_metadata.hpp - the GGUF metadata of a model that comes as a Hugging Face folder.
//
// A GGUF file carries what a Hugging Face folder spreads over config.json, tokenizer.json and
// tokenizer_config.json. The keys and values written here are those of llama.cpp's converter for
// Qwen3 (convert_hf_to_gguf.py), which llama.cpp's loader reads:
//   general.architecture "qwen3", general.type "model", general.name (the folder's name);
//   qwen3.context_length, embedding_length, block_count, feed_forward_length, attention.head_count,
//   attention.head_count_kv, attention.key_length, attention.value_length (u32), rope.freq_base,
//   attention.layer_norm_rms_epsilon (f32), and rope.scaling.* when config.json asks for scaling;
//   tokenizer.ggml.model "gpt2", pre "qwen2", tokens, token_type, merges, eos/padding/bos token ids,
//   add_bos_token false, and tokenizer.chat_template from tokenizer_config.json.
// The vocabulary has config.json's vocab_size entries: ids tokenizer.json lacks become "[PAD<id>]"
// with type 5 (unused); model.vocab tokens have type 1 (normal); added tokens type 3 (control) when
// marked special or written like <|...|>, else 4 (user-defined). When vocab_size is below the
// tokenizer's size, merges whose parts or result fall outside are dropped.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../error.hpp"
#include "../format/checkpoint.hpp"
#include "../format/gguf_writer.hpp"
#include "../format/json.hpp"
#include "../format/mmap.hpp"

namespace qwen3::detail {

// tokenizer.json of Qwen3 is 11 MB and ~600k JSON values; these bounds are far above that.
inline constexpr std::uint64_t kMaxTokenizerJsonBytes = 512ull << 20;
inline constexpr std::size_t kMaxTokenizerJsonValues = 64u << 20;

inline json::Value read_json_file(const std::string& path) {
    MappedFile file(path);
    if (file.size() > kMaxTokenizerJsonBytes)
        qwen3::detail::fail(ErrorCode::format, path, ": ", file.size(), " bytes, over the limit of ", kMaxTokenizerJsonBytes);
    json::ParseOptions options;
    options.max_depth = 64;
    options.max_values = kMaxTokenizerJsonValues;
    json::Value v = json::parse(file.view(), path, options);
    if (!v.is_object()) qwen3::detail::fail(ErrorCode::format, path, ": not a JSON object");
    return v;
}

// `what` and `key` name the value in the message ("model.vocab", the token).
inline std::int64_t token_id(const json::Value& v, const std::string& path, std::string_view what, std::string_view key) {
    if (!v.is_integer() || v.as_double() < 0 || v.as_double() > double(kMaxHyperparameter))
        qwen3::detail::fail(ErrorCode::format, path, ": ", what, " ", json::quote(key), " must have a token id (an integer from 0 to ",
                            kMaxHyperparameter, "), found ", json::dump(v));
    return v.as_int();
}

// llama.cpp's converter stores a space inside a merge part as U+0120 (byte-level BPE has none).
inline std::string merge_part(std::string_view s) {
    std::string out;
    for (char c : s) out += c == ' ' ? std::string("\xC4\xA0") : std::string(1, c);
    return out;
}

inline bool looks_special(std::string_view text) {
    return (text.size() >= 4 && text.substr(0, 2) == "<|" && text.substr(text.size() - 2) == "|>") || text == "<pad>" ||
           text == "<mask>";
}

struct GgufVocabulary {
    std::vector<std::string> tokens;
    std::vector<std::int32_t> types;
    std::vector<std::string> merges;
    std::vector<std::pair<const char*, std::uint32_t>> special_ids;  // key suffix, id
};

inline GgufVocabulary vocabulary_from_tokenizer_json(const std::string& path, std::uint64_t vocab_size) {
    constexpr std::int32_t normal = 1, control = 3, user_defined = 4, unused = 5;
    const json::Value root = read_json_file(path);
    const json::Value* model = root.find("model");
    if (!model || !model->is_object()) qwen3::detail::fail(ErrorCode::format, path, ": no \"model\" object");
    const json::Value* type = model->find("type");
    if (!type || !type->is_string() || type->as_string() != "BPE")
        qwen3::detail::fail(ErrorCode::unsupported, path, ": model.type must be \"BPE\" (Qwen3's byte-level BPE)");
    const json::Value* vocab = model->find("vocab");
    const json::Value* merges = model->find("merges");
    if (!vocab || !vocab->is_object()) qwen3::detail::fail(ErrorCode::format, path, ": model.vocab must be an object");
    if (!merges || !merges->is_array()) qwen3::detail::fail(ErrorCode::format, path, ": model.merges must be an array");

    GgufVocabulary out;
    std::vector<bool> present(vocab_size, false);
    out.tokens.resize(vocab_size);
    out.types.assign(vocab_size, unused);
    std::unordered_map<std::string_view, std::int64_t> id_of;
    std::unordered_set<std::int64_t> known_ids;  // every id the tokenizer defines
    for (const json::Member& m : vocab->as_object()) {
        const std::int64_t id = token_id(m.value, path, "model.vocab entry", m.key);
        id_of.emplace(m.key, id);
        known_ids.insert(id);
        if (std::uint64_t(id) < vocab_size) {
            out.tokens[id] = m.key;
            out.types[id] = normal;
            present[id] = true;
        }
    }
    std::unordered_map<std::string_view, std::int64_t> added_id_of;
    if (const json::Value* added = root.find("added_tokens")) {
        if (!added->is_array()) qwen3::detail::fail(ErrorCode::format, path, ": added_tokens must be an array");
        for (const json::Value& a : added->as_array()) {
            const json::Value* id_value = a.find("id");
            const json::Value* content = a.find("content");
            const json::Value* special = a.find("special");
            if (!id_value || !content || !content->is_string())
                qwen3::detail::fail(ErrorCode::format, path, ": every added_tokens entry needs an id and a string content");
            const std::int64_t id = token_id(*id_value, path, "added token", content->as_string());
            known_ids.insert(id);
            added_id_of[content->as_string()] = id;
            if (std::uint64_t(id) >= vocab_size) continue;
            const bool is_special = (special && special->is_bool() && special->as_bool()) || looks_special(content->as_string());
            out.tokens[id] = content->as_string();
            out.types[id] = is_special ? control : user_defined;
            present[id] = true;
        }
    }
    for (std::uint64_t i = 0; i < vocab_size; ++i)
        if (!present[i]) out.tokens[i] = "[PAD" + std::to_string(i) + "]";

    const bool filter = vocab_size < known_ids.size();
    out.merges.reserve(merges->as_array().size());
    for (const json::Value& m : merges->as_array()) {
        std::string a, b;
        if (m.is_string()) {
            const std::string& s = m.as_string();
            const std::size_t space = s.find(' ');
            if (space == std::string::npos)
                qwen3::detail::fail(ErrorCode::format, path, ": merge ", json::quote(s), " is not two tokens separated by a space");
            a = s.substr(0, space);
            b = s.substr(space + 1);
        } else if (m.is_array() && m.as_array().size() == 2 && m.as_array()[0].is_string() && m.as_array()[1].is_string()) {
            a = m.as_array()[0].as_string();
            b = m.as_array()[1].as_string();
        } else {
            qwen3::detail::fail(ErrorCode::format, path, ": a merge must be \"a b\" or [\"a\", \"b\"], found ", json::dump(m));
        }
        if (filter) {
            auto ia = id_of.find(a), ib = id_of.find(b), im = id_of.find(a + b);
            if (ia == id_of.end() || ib == id_of.end() || im == id_of.end()) continue;
            if (std::uint64_t(std::max({ia->second, ib->second, im->second})) >= vocab_size) continue;
        }
        out.merges.push_back(merge_part(a) + " " + merge_part(b));
    }
    for (auto [key, text] : {std::pair{"eos", "<|im_end|>"}, std::pair{"padding", "<|endoftext|>"}, std::pair{"bos", "<|endoftext|>"}}) {
        auto it = added_id_of.find(text);
        if (it != added_id_of.end() && std::uint64_t(it->second) < vocab_size)
            out.special_ids.emplace_back(key, std::uint32_t(it->second));
    }
    return out;
}

inline bool file_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

}  // namespace qwen3::detail

namespace qwen3::quant {

// Adds the model's hyperparameters to `w` as llama.cpp's converter writes them for Qwen3.
inline void add_model_metadata(gguf::Writer& w, const ModelParams& p) {
    w.set_string("general.architecture", "qwen3");
    w.set_string("general.type", "model");
    std::string_view name = p.name;
    while (name.size() > 1 && name.back() == '/') name.remove_suffix(1);
    w.set_string("general.name", name);
    auto u32 = [&](const char* key, std::uint64_t v) { w.set_u32(key, std::uint32_t(v)); };
    if (p.context_length) u32("qwen3.context_length", p.context_length);
    u32("qwen3.embedding_length", p.hidden);
    u32("qwen3.block_count", p.layers);
    u32("qwen3.feed_forward_length", p.ffn);
    u32("qwen3.attention.head_count", p.heads);
    u32("qwen3.attention.head_count_kv", p.kv_heads);
    u32("qwen3.attention.key_length", p.head_dim);
    u32("qwen3.attention.value_length", p.head_dim);
    w.set_f32("qwen3.rope.freq_base", float(p.rope_theta));
    w.set_f32("qwen3.attention.layer_norm_rms_epsilon", float(p.rms_norm_eps));
    if (p.rope_scaling.kind != RopeScaling::Kind::none) {
        w.set_string("qwen3.rope.scaling.type", p.rope_scaling.kind == RopeScaling::Kind::yarn ? "yarn" : "linear");
        w.set_f32("qwen3.rope.scaling.factor", float(p.rope_scaling.factor));
        if (p.rope_scaling.original_context) u32("qwen3.rope.scaling.original_context_length", p.rope_scaling.original_context);
    }
}

// Adds the tokenizer of `tokenizer_json` (a Hugging Face tokenizer.json), cut or padded to
// `vocab_size` entries, and the chat template of `tokenizer_config_json` when that file exists.
// Throws Error(io) when tokenizer.json cannot be read, Error(format) when a file is malformed,
// Error(unsupported) for a tokenizer other than BPE.
inline void add_tokenizer_metadata(gguf::Writer& w, const std::string& tokenizer_json, std::uint64_t vocab_size,
                                   const std::string& tokenizer_config_json = "") {
    const detail::GgufVocabulary vocab = detail::vocabulary_from_tokenizer_json(tokenizer_json, vocab_size);
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", "qwen2");
    w.set_strings("tokenizer.ggml.tokens", std::vector<std::string_view>(vocab.tokens.begin(), vocab.tokens.end()));
    w.set_i32s("tokenizer.ggml.token_type", vocab.types);
    w.set_strings("tokenizer.ggml.merges", std::vector<std::string_view>(vocab.merges.begin(), vocab.merges.end()));
    for (auto [key, id] : vocab.special_ids) w.set_u32(std::string("tokenizer.ggml.") + key + "_token_id", id);
    w.set_bool("tokenizer.ggml.add_bos_token", false);
    if (!tokenizer_config_json.empty() && detail::file_exists(tokenizer_config_json)) {
        const json::Value config = detail::read_json_file(tokenizer_config_json);
        if (const json::Value* tmpl = config.find("chat_template"); tmpl && tmpl->is_string())
            w.set_string("tokenizer.chat_template", tmpl->as_string());
    }
}

// Adds the metadata of the Hugging Face checkpoint `checkpoint` (opened from a folder) to `w`.
// Throws Error(io) when the folder has no tokenizer.json, Error(format) when tokenizer.json or
// tokenizer_config.json is malformed or config.json's vocab_size disagrees with the embedding,
// Error(unsupported) for a tokenizer other than BPE.
inline void add_hf_metadata(gguf::Writer& w, const Checkpoint& checkpoint) {
    const ModelParams& p = checkpoint.params();
    const std::string& folder = checkpoint.folder();
    const TensorView* embedding = checkpoint.find("token_embd.weight");
    if (!embedding || embedding->shape.rank != 2)
        qwen3::detail::fail(ErrorCode::missing_tensor, folder, ": no 2-D model.embed_tokens.weight");
    if (embedding->shape[0] != p.vocab)
        qwen3::detail::fail(ErrorCode::format, folder, "/config.json: vocab_size is ", p.vocab,
                            " but model.embed_tokens.weight has ", embedding->shape[0], " rows");
    const std::string tokenizer_path = folder + "/tokenizer.json";
    if (!detail::file_exists(tokenizer_path))
        qwen3::detail::fail(ErrorCode::io, folder, ": no tokenizer.json (a GGUF file carries the tokenizer, so it is needed)");
    add_model_metadata(w, p);
    add_tokenizer_metadata(w, tokenizer_path, p.vocab, folder + "/tokenizer_config.json");
}

}  // namespace qwen3::quant
