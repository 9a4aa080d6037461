// Small valid files for the fuzz targets: their seeds (written by fuzz/make_seeds.cpp at CI time, so
// no binary seed is committed) and the fixed files some targets put beside the fuzzed one.
//
// The model is the smallest shape a compiled configuration allows (FuzzConfig below: one layer,
// hidden 32, vocabulary 64), so a complete checkpoint is about 40 KB and the fuzzer can mutate all of
// it, from the header to the last tensor, and still reach weight binding.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <qwen3/config.hpp>
#include <qwen3/format/gguf_writer.hpp>
#include <qwen3/format/json.hpp>

namespace qwen3_fuzz {

// hidden 32, 1 layer, 2 query heads, 1 KV head, head_dim 32, ffn 64, vocabulary 64, tied, context 64.
using FuzzConfig = qwen3::Config<32, 1, 2, 1, 32, 64, 64, true, 64>;

struct SeedTensor {
    std::string gguf_name;  // canonical (GGUF) name
    std::string hf_name;    // Hugging Face name
    qwen3::Shape shape;     // outermost first
};

inline std::vector<SeedTensor> seed_tensors() {
    using qwen3::make_shape;
    const int h = FuzzConfig::hidden, q = FuzzConfig::q_dim, kv = FuzzConfig::kv_dim, f = FuzzConfig::ffn;
    const int v = FuzzConfig::vocab, d = FuzzConfig::head_dim;
    return {
        {"token_embd.weight", "model.embed_tokens.weight", make_shape(v, h)},
        {"blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight", make_shape(h)},
        {"blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", make_shape(q, h)},
        {"blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", make_shape(kv, h)},
        {"blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj.weight", make_shape(kv, h)},
        {"blk.0.attn_output.weight", "model.layers.0.self_attn.o_proj.weight", make_shape(h, q)},
        {"blk.0.attn_q_norm.weight", "model.layers.0.self_attn.q_norm.weight", make_shape(d)},
        {"blk.0.attn_k_norm.weight", "model.layers.0.self_attn.k_norm.weight", make_shape(d)},
        {"blk.0.ffn_norm.weight", "model.layers.0.post_attention_layernorm.weight", make_shape(h)},
        {"blk.0.ffn_gate.weight", "model.layers.0.mlp.gate_proj.weight", make_shape(f, h)},
        {"blk.0.ffn_up.weight", "model.layers.0.mlp.up_proj.weight", make_shape(f, h)},
        {"blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight", make_shape(h, f)},
        {"output_norm.weight", "model.norm.weight", make_shape(h)},
    };
}

// Deterministic F32 values (norms near 1, matrices small), as bytes.
inline std::string seed_tensor_bytes(const SeedTensor& t, std::size_t index) {
    const std::uint64_t n = t.shape.elements();
    std::string out(n * 4, '\0');
    for (std::uint64_t i = 0; i < n; ++i) {
        float x = t.shape.rank == 1 ? 1.0f + 0.01f * float((i + index) % 7) : 0.02f * float(int((i * 7 + index) % 11) - 5);
        std::memcpy(out.data() + i * 4, &x, 4);
    }
    return out;
}

// A small byte-level BPE vocabulary: Qwen3's own first tokens (the 256 byte tokens and the first
// merges), the merges among them, and added tokens. Built by make_seeds from tests/data's tokenizer.json.
struct MiniVocab {
    std::vector<std::string> tokens;         // index = id
    std::vector<std::string> merges;         // "left right", by rank
    std::vector<std::string> added;          // ids tokens.size() ... (all special-looking ones are special)
};

inline MiniVocab mini_vocab(const qwen3::json::Value& tokenizer_json, std::size_t vocab_size, std::size_t added_count) {
    MiniVocab v;
    v.tokens.resize(vocab_size);
    for (const qwen3::json::Member& m : tokenizer_json.at("model").at("vocab").as_object()) {
        const std::int64_t id = m.value.as_int();
        if (id >= 0 && std::size_t(id) < vocab_size) v.tokens[std::size_t(id)] = m.key;
    }
    auto in_vocab = [&](std::string_view s) {
        for (const std::string& t : v.tokens)
            if (t == s) return true;
        return false;
    };
    for (const qwen3::json::Value& m : tokenizer_json.at("model").at("merges").as_array()) {
        std::string left, right;
        if (m.is_string()) {
            const std::string& s = m.as_string();
            left = s.substr(0, s.find(' '));
            right = s.substr(s.find(' ') + 1);
        } else {
            left = m.as_array()[0].as_string();
            right = m.as_array()[1].as_string();
        }
        if (in_vocab(left) && in_vocab(right) && in_vocab(left + right)) v.merges.push_back(left + " " + right);
    }
    for (const qwen3::json::Value& a : tokenizer_json.at("added_tokens").as_array())
        if (v.added.size() < added_count) v.added.push_back(a.at("content").as_string());
    return v;
}

// tokenizer.json text for `v`, with the real file's normalizer, pre-tokenizer and decoder sections.
inline std::string mini_tokenizer_json(const qwen3::json::Value& real, const MiniVocab& v) {
    using qwen3::json::Value;
    qwen3::json::Object vocab;
    for (std::size_t i = 0; i < v.tokens.size(); ++i) vocab.push_back({v.tokens[i], Value::integer(std::int64_t(i))});
    qwen3::json::Array merges;
    for (const std::string& m : v.merges) {
        const std::size_t space = m.find(' ');
        merges.push_back(Value(qwen3::json::Array{Value(m.substr(0, space)), Value(m.substr(space + 1))}));
    }
    qwen3::json::Array added;
    for (std::size_t i = 0; i < v.added.size(); ++i) {
        Value a(qwen3::json::Object{});
        a.set("id", Value::integer(std::int64_t(v.tokens.size() + i)));
        a.set("content", Value(v.added[i]));
        a.set("single_word", Value(false));
        a.set("lstrip", Value(false));
        a.set("rstrip", Value(false));
        a.set("normalized", Value(false));
        a.set("special", Value(v.added[i].starts_with("<|")));
        added.push_back(std::move(a));
    }
    Value model = real.at("model");
    model.set("vocab", Value(std::move(vocab)));
    model.set("merges", Value(std::move(merges)));
    Value out(qwen3::json::Object{});
    out.set("version", Value("1.0"));
    out.set("added_tokens", Value(std::move(added)));
    for (const char* key : {"normalizer", "pre_tokenizer", "post_processor", "decoder"}) out.set(key, real.at(key));
    out.set("model", std::move(model));
    return qwen3::json::dump(out);
}

// A GGUF checkpoint of FuzzConfig; with `vocab`, also the tokenizer metadata llama.cpp writes.
inline std::string seed_gguf(const MiniVocab* vocab, bool with_tensors = true) {
    qwen3::gguf::Writer w;
    w.set_string("general.architecture", "qwen3");
    w.set_string("general.name", "fuzz");
    w.set_u32("qwen3.context_length", 64);
    w.set_u32("qwen3.embedding_length", FuzzConfig::hidden);
    w.set_u32("qwen3.feed_forward_length", FuzzConfig::ffn);
    w.set_u32("qwen3.block_count", FuzzConfig::layers);
    w.set_u32("qwen3.attention.head_count", FuzzConfig::heads);
    w.set_u32("qwen3.attention.head_count_kv", FuzzConfig::kv_heads);
    w.set_u32("qwen3.attention.key_length", FuzzConfig::head_dim);
    w.set_u32("qwen3.attention.value_length", FuzzConfig::head_dim);
    w.set_f32("qwen3.rope.freq_base", 1000000.0f);
    w.set_f32("qwen3.attention.layer_norm_rms_epsilon", 1e-6f);
    if (vocab) {
        std::vector<std::string_view> tokens(vocab->tokens.begin(), vocab->tokens.end());
        std::vector<std::int32_t> types(vocab->tokens.size(), 1);
        for (const std::string& a : vocab->added) {
            tokens.push_back(a);
            types.push_back(a.starts_with("<|") ? 3 : 4);
        }
        std::vector<std::string_view> merges(vocab->merges.begin(), vocab->merges.end());
        w.set_string("tokenizer.ggml.model", "gpt2");
        w.set_string("tokenizer.ggml.pre", "qwen2");
        w.set_strings("tokenizer.ggml.tokens", tokens);
        w.set_i32s("tokenizer.ggml.token_type", types);
        w.set_strings("tokenizer.ggml.merges", merges);
        w.set_u32("tokenizer.ggml.eos_token_id", std::uint32_t(vocab->tokens.size()));
    }
    std::vector<std::string> storage;
    const std::vector<SeedTensor> tensors = seed_tensors();
    storage.reserve(tensors.size());
    if (with_tensors)
        for (std::size_t i = 0; i < tensors.size(); ++i) {
            storage.push_back(seed_tensor_bytes(tensors[i], i));
            w.add_tensor(tensors[i].gguf_name, qwen3::DType::f32, tensors[i].shape,
                         std::as_bytes(std::span<const char>(storage.back())));
        }
    return w.to_bytes();
}

// A safetensors file holding tensors [first, last) of seed_tensors() under their Hugging Face names.
inline std::string seed_safetensors(std::size_t first = 0, std::size_t last = std::size_t(-1)) {
    const std::vector<SeedTensor> tensors = seed_tensors();
    last = std::min(last, tensors.size());
    qwen3::json::Value header(qwen3::json::Object{});
    qwen3::json::Value metadata(qwen3::json::Object{});
    metadata.set("format", qwen3::json::Value("pt"));
    header.set("__metadata__", std::move(metadata));
    std::string data;
    for (std::size_t i = first; i < last; ++i) {
        const SeedTensor& t = tensors[i];
        qwen3::json::Array shape;
        for (std::uint32_t d = 0; d < t.shape.rank; ++d) shape.push_back(qwen3::json::Value::integer(std::int64_t(t.shape[d])));
        const std::string bytes = seed_tensor_bytes(t, i);
        qwen3::json::Value entry(qwen3::json::Object{});
        entry.set("dtype", qwen3::json::Value("F32"));
        entry.set("shape", qwen3::json::Value(std::move(shape)));
        entry.set("data_offsets", qwen3::json::Value(qwen3::json::Array{qwen3::json::Value::integer(std::int64_t(data.size())),
                                                                         qwen3::json::Value::integer(std::int64_t(data.size() + bytes.size()))}));
        header.set(t.hf_name, std::move(entry));
        data += bytes;
    }
    std::string head = qwen3::json::dump(header);
    head.append((8 - head.size() % 8) % 8, ' ');  // as the reference writer pads: data stays 8-byte aligned
    std::string out(8, '\0');
    const std::uint64_t n = head.size();
    std::memcpy(out.data(), &n, 8);
    return out + head + data;
}

inline std::string seed_config_json() {
    return R"({"architectures": ["Qwen3ForCausalLM"], "head_dim": 32, "hidden_size": 32, "intermediate_size": 64,
 "max_position_embeddings": 64, "model_type": "qwen3", "num_attention_heads": 2, "num_hidden_layers": 1,
 "num_key_value_heads": 1, "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000.0,
 "tie_word_embeddings": true, "torch_dtype": "float32", "vocab_size": 64})";
}

// The two shards a sharded seed folder holds, and its index.
inline constexpr std::size_t kSeedShardSplit = 6;
inline constexpr std::string_view kSeedShard1 = "model-00001-of-00002.safetensors";
inline constexpr std::string_view kSeedShard2 = "model-00002-of-00002.safetensors";

inline std::string seed_index_json() {
    const std::vector<SeedTensor> tensors = seed_tensors();
    qwen3::json::Value map(qwen3::json::Object{});
    for (std::size_t i = 0; i < tensors.size(); ++i)
        map.set(tensors[i].hf_name, qwen3::json::Value(std::string(i < kSeedShardSplit ? kSeedShard1 : kSeedShard2)));
    qwen3::json::Value root(qwen3::json::Object{});
    qwen3::json::Value metadata(qwen3::json::Object{});
    metadata.set("total_size", qwen3::json::Value::integer(40000));
    root.set("metadata", std::move(metadata));
    root.set("weight_map", std::move(map));
    return qwen3::json::dump_python(root);
}

}  // namespace qwen3_fuzz
