// qwen3/tokenizer/piece_cache.hpp - remembers the tokens of short pieces ("Ġthe", "ing", ", ").
//
// Text repeats its words, and a cache lookup costs a fraction of running the merges again. The cache
// is direct-mapped (a newer piece replaces an older one in its slot) and stores keys and ids inline,
// so it never allocates after construction and never grows. A hit compares the whole key, so it
// cannot return another piece's tokens. One cache serves one thread (see Tokenizer::encode); it is
// emptied in constant time (a generation number) when that thread moves to another tokenizer.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "bpe.hpp"

namespace qwen3::detail {

// A fast hash of a short byte string (8 bytes at a time, multiply-xorshift mixing).
inline std::uint64_t hash_bytes(std::string_view s) {
    constexpr std::uint64_t k = 0x9E3779B97F4A7C15ull;
    std::uint64_t h = 0x243F6A8885A308D3ull ^ (s.size() * k);
    const char* p = s.data();
    std::size_t n = s.size();
    while (n >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        h = (h ^ w) * k;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        std::uint64_t w = 0;
        std::memcpy(&w, p, n);
        h = (h ^ w) * k;
        h ^= h >> 32;
    }
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 31);
}

class PieceCache {
public:
    static constexpr std::size_t kMaxKey = 18;  // bytes of a cached piece
    static constexpr std::size_t kMaxIds = 8;   // tokens of a cached piece
    static constexpr std::size_t kSlots = 1 << 16;

    PieceCache() : slots_(new Slot[kSlots]) { wipe(); }

    // Forgets every piece.
    void clear() {
        if (++generation_ == 0) wipe();  // after 2^32 clears, old generation numbers would come back
    }

    static bool cacheable(std::string_view piece) { return piece.size() <= kMaxKey; }

    // Appends the cached tokens of `piece` to `out` and returns true, or returns false.
    bool find(std::string_view piece, std::uint64_t hash, std::vector<TokenId>& out) const {
        const Slot& s = slots_[hash & (kSlots - 1)];
        if (s.hash != hash || s.generation != generation_ || s.key_length != piece.size() ||
            std::memcmp(s.key, piece.data(), piece.size()) != 0)
            return false;
        out.insert(out.end(), s.ids, s.ids + s.id_count);
        return true;
    }

    // Starts loading the slot of `hash` into the processor's cache.
    void prefetch(std::uint64_t hash) const { __builtin_prefetch(&slots_[hash & (kSlots - 1)]); }

    // Remembers the tokens of `piece` (cacheable), if they fit.
    void store(std::string_view piece, std::uint64_t hash, const TokenId* ids, std::size_t count) {
        if (count > kMaxIds || count == 0) return;
        Slot& s = slots_[hash & (kSlots - 1)];
        s.hash = hash;
        s.generation = generation_;
        s.key_length = std::uint8_t(piece.size());
        s.id_count = std::uint8_t(count);
        std::memcpy(s.key, piece.data(), piece.size());
        std::memcpy(s.ids, ids, count * sizeof(TokenId));
    }

private:
    struct alignas(64) Slot {  // one cache line
        std::uint64_t hash;
        std::uint32_t generation;  // valid only when equal to generation_
        std::uint8_t key_length;
        std::uint8_t id_count;
        char key[kMaxKey];
        TokenId ids[kMaxIds];
    };
    static_assert(sizeof(Slot) == 64);

    void wipe() {
        generation_ = 1;
        for (std::size_t i = 0; i < kSlots; ++i) slots_[i].generation = 0;
    }

    std::unique_ptr<Slot[]> slots_;
    std::uint32_t generation_ = 1;
};

}  // namespace qwen3::detail
