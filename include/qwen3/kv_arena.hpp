// qwen3/kv_arena.hpp - the key/value cache: one allocation, sized at compile time.
//
// The arena reserves address space for Cfg::max_context positions once (anonymous memory, never
// resized); the OS commits pages only as positions are written, so a 32k-token arena costs RAM in
// proportion to the tokens actually used.
//
// Layout, per layer and KV head: the key blocks of all positions, then the value rows (the element
// type, kv_types.hpp, fixes their bytes; KVBF16 unless a Session names another).
#pragma once

#include <cstddef>
#include <string>

#include "detail/platform.hpp"
#include "error.hpp"
#include "kv_types.hpp"

namespace qwen3 {

template <class Cfg, class KV = DefaultKV>
class KVArena {
public:
    using element = KV;
    static constexpr int D = Cfg::head_dim;
    static constexpr int blocks = (Cfg::max_context + kKeyBlock - 1) / kKeyBlock;
    static constexpr std::size_t key_bytes_per_head = std::size_t(blocks) * KV::template key_block_bytes<D>;
    static constexpr std::size_t value_bytes_per_head = std::size_t(blocks) * kKeyBlock * KV::template value_row_bytes<D>;
    static constexpr std::size_t head_bytes = (key_bytes_per_head + value_bytes_per_head + 63) / 64 * 64;
    static constexpr std::size_t bytes = std::size_t(Cfg::layers) * Cfg::kv_heads * head_bytes;

    // Throws Error(io) when the address space cannot be reserved.
    KVArena()
        : memory_(bytes, "the KV arena of " + std::to_string(Cfg::max_context) +
                             " positions (compile a smaller max_context)") {}

    std::byte* head(int layer, int kv_head) const { return memory_.data() + (std::size_t(layer) * Cfg::kv_heads + kv_head) * head_bytes; }
    // Key block holding position p (block p / 16; the position is lane p % 16).
    std::byte* key_block(int layer, int kv_head, int block) const {
        return head(layer, kv_head) + std::size_t(block) * KV::template key_block_bytes<D>;
    }
    std::byte* value_row(int layer, int kv_head, int pos) const {
        return head(layer, kv_head) + key_bytes_per_head + std::size_t(pos) * KV::template value_row_bytes<D>;
    }

    void store(int layer, int kv_head, int pos, const float* k, const float* v) {
        KV::template store_key<D>(key_block(layer, kv_head, pos / kKeyBlock), pos % kKeyBlock, k);
        KV::template store_value<D>(value_row(layer, kv_head, pos), v);
    }

    // Gives the pages of positions [from, max_context) back to the OS (after a reset or truncation).
    void release_from(int from) {
        const int first_block = (from + kKeyBlock - 1) / kKeyBlock;
        for (int l = 0; l < Cfg::layers; ++l)
            for (int h = 0; h < Cfg::kv_heads; ++h) {
                memory_.release(key_block(l, h, first_block), key_block(l, h, blocks));
                memory_.release(value_row(l, h, from), value_row(l, h, blocks * kKeyBlock));
            }
    }

private:
    detail::ReservedMemory memory_;
};

}  // namespace qwen3
