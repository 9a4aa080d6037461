// qwen3/config.hpp - compile-time model configurations.
//
// Every dimension of a Qwen3 dense model is a compile-time constant, so each configuration gets
// kernels with fixed trip counts and a KV arena whose size is known when the program is built:
//
//     qwen3::Model<qwen3::Qwen3_4B> model("Qwen3-4B-Q4_K_M.gguf");
//
// A variant of your own is a few lines (the last argument, the KV arena's context, is optional):
//
//     struct MyQwen : qwen3::Config<1536, 24, 12, 4, 128, 4608, 151936, /*tied=*/true> {
//         static constexpr std::string_view name = "my-qwen";
//     };
//
// Values a file decides (RoPE theta and scaling, RMSNorm epsilon, tensor types) are read from the
// file at load time and validated; they are not part of the configuration.
#pragma once

#include <cstddef>
#include <string_view>

namespace qwen3 {

// Default size of the KV arena in tokens. The arena is reserved once, at this size, and its pages
// are committed by the OS only as positions are used, so a large value costs address space, not RAM.
#ifndef QWEN3_DEFAULT_MAX_CONTEXT
#define QWEN3_DEFAULT_MAX_CONTEXT 32768
#endif

template <int Hidden, int Layers, int Heads, int KVHeads, int HeadDim, int FFN, int Vocab, bool TiedEmbeddings,
          int MaxContext = QWEN3_DEFAULT_MAX_CONTEXT>
struct Config {
    static constexpr int hidden = Hidden;          // residual stream width
    static constexpr int layers = Layers;          // transformer blocks
    static constexpr int heads = Heads;            // query heads
    static constexpr int kv_heads = KVHeads;       // key/value heads (grouped-query attention)
    static constexpr int head_dim = HeadDim;       // per-head width of q, k and v
    static constexpr int ffn = FFN;                // SwiGLU intermediate width
    static constexpr int vocab = Vocab;            // rows of the embedding and of the output matrix
    static constexpr bool tied_embeddings = TiedEmbeddings;  // output matrix is the embedding
    static constexpr int max_context = MaxContext; // KV arena positions

    static constexpr int q_dim = Heads * HeadDim;       // width of the attention's query/output space
    static constexpr int kv_dim = KVHeads * HeadDim;    // width of k and v per token
    static constexpr int group = Heads / KVHeads;       // query heads per KV head

    static constexpr std::string_view name = "custom";

    static_assert(Hidden > 0 && Layers > 0 && Heads > 0 && KVHeads > 0 && HeadDim > 0 && FFN > 0 && Vocab > 0,
                  "every dimension must be positive");
    static_assert(Heads % KVHeads == 0, "query heads must be a multiple of KV heads (grouped-query attention)");
    static_assert(HeadDim % 2 == 0, "RoPE rotates pairs: head_dim must be even");
    static_assert(Hidden % 32 == 0 && FFN % 32 == 0 && HeadDim % 32 == 0,
                  "hidden, ffn and head_dim must be multiples of 32 (the block size of quantized formats)");
    static_assert(MaxContext > 0, "the KV arena needs at least one position");
};

// The same configuration with a KV arena of another size: `WithContext<Qwen3_4B, 8192>`.
template <class Base, int MaxContext>
struct WithContext : Base {
    static_assert(MaxContext > 0, "the KV arena needs at least one position");
    static constexpr int max_context = MaxContext;
};

// Official Qwen3 dense shapes (config.json of each Hugging Face release).
struct Qwen3_0_6B : Config<1024, 28, 16, 8, 128, 3072, 151936, true> {
    static constexpr std::string_view name = "Qwen3-0.6B";
};
struct Qwen3_1_7B : Config<2048, 28, 16, 8, 128, 6144, 151936, true> {
    static constexpr std::string_view name = "Qwen3-1.7B";
};
struct Qwen3_4B : Config<2560, 36, 32, 8, 128, 9728, 151936, true> {
    static constexpr std::string_view name = "Qwen3-4B";
};
struct Qwen3_8B : Config<4096, 36, 32, 8, 128, 12288, 151936, false> {
    static constexpr std::string_view name = "Qwen3-8B";
};
struct Qwen3_14B : Config<5120, 40, 40, 8, 128, 17408, 151936, false> {
    static constexpr std::string_view name = "Qwen3-14B";
};
struct Qwen3_32B : Config<5120, 64, 64, 8, 128, 25600, 151936, false> {
    static constexpr std::string_view name = "Qwen3-32B";
};

// Test shapes: the random-weight models of make_model.py's "tiny" preset (full vocabulary) and the
// 4 MB "micro" model committed in tests/data (first 4096 tokens of the vocabulary).
struct Qwen3_Tiny : Config<128, 2, 4, 2, 64, 384, 151936, true, 4096> {
    static constexpr std::string_view name = "Qwen3-tiny";
};
struct Qwen3_Micro : Config<128, 2, 4, 2, 64, 384, 4096, true, 4096> {
    static constexpr std::string_view name = "Qwen3-micro";
};

// The runtime description of a configuration, for messages and for matching a file to a variant.
struct ConfigDims {
    std::string_view name;
    int hidden, layers, heads, kv_heads, head_dim, ffn, vocab;
    bool tied_embeddings;
    int max_context;

    friend bool same_shape(const ConfigDims& a, const ConfigDims& b) {
        return a.hidden == b.hidden && a.layers == b.layers && a.heads == b.heads && a.kv_heads == b.kv_heads &&
               a.head_dim == b.head_dim && a.ffn == b.ffn && a.vocab == b.vocab &&
               a.tied_embeddings == b.tied_embeddings;
    }
};

template <class Cfg>
constexpr ConfigDims dims_of() {
    return {Cfg::name, Cfg::hidden, Cfg::layers, Cfg::heads, Cfg::kv_heads, Cfg::head_dim,
            Cfg::ffn, Cfg::vocab, Cfg::tied_embeddings, Cfg::max_context};
}

// A type list of configurations, for picking the compiled variant that fits a file (see variant.hpp).
template <class... Cfgs>
struct ConfigList {};

using NamedVariants =
    ConfigList<Qwen3_0_6B, Qwen3_1_7B, Qwen3_4B, Qwen3_8B, Qwen3_14B, Qwen3_32B, Qwen3_Tiny, Qwen3_Micro>;

template <class... Cfgs>
constexpr auto dims_of_list(ConfigList<Cfgs...>) {
    struct Table {
        ConfigDims items[sizeof...(Cfgs)];
    };
    return Table{{dims_of<Cfgs>()...}};
}

}  // namespace qwen3
