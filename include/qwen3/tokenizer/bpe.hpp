// qwen3/tokenizer/bpe.hpp - byte-level byte-pair encoding by merge rank.
//
// GPT-2 style byte-level BPE: a piece's bytes start as one token each, then the adjacent pair with the
// lowest merge rank is merged, leftmost first among equal pairs, until no adjacent pair has a merge.
// That is exactly Hugging Face's BPE with dropout off (its queue orders by rank, then position).
//
// Vocabulary strings in tokenizer.json and GGUF are written in GPT-2's byte-to-character alphabet
// ("Ġthe" for " the"). We convert every token to its raw bytes once, at load, and merge token ids, so
// encoding never maps characters.
//
// Cost: pieces of up to kSmallPiece bytes use a flat array and a linear scan for the lowest rank (few
// elements, no allocation); longer pieces a linked list and a priority queue with lazy deletion, a
// binary heap up to kHugePiece bytes and buckets of ranks beyond (see BucketQueue): O(n log n) with
// a small constant, so a 1 MB word without spaces is no problem (bench_tokenizer prints the scaling).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace qwen3 {
using TokenId = std::int32_t;
}  // namespace qwen3

namespace qwen3::detail::bpe {

// ---------------------------------------------------------------------------------------------
// GPT-2's byte-level alphabet: printable bytes stand for themselves, the other 68 bytes (controls,
// space, DEL, NBSP, soft hyphen, ...) for the characters U+0100, U+0101, ... in byte order.

struct ByteAlphabet {
    std::array<char32_t, 256> char_of_byte{};
    std::array<std::uint8_t, 68> byte_of_shifted{};  // byte of the character U+0100 + i

    constexpr ByteAlphabet() {
        int next = 0;
        for (int b = 0; b < 256; ++b) {
            bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            if (printable) {
                char_of_byte[std::size_t(b)] = char32_t(b);
            } else {
                byte_of_shifted[std::size_t(next)] = std::uint8_t(b);
                char_of_byte[std::size_t(b)] = char32_t(0x100 + next++);
            }
        }
    }
    // The byte a character stands for, or -1 when it is not in the alphabet.
    constexpr int byte_of_char(char32_t c) const {
        if (c < 0x100) return char_of_byte[c] == c ? int(c) : -1;
        if (c < 0x100 + 68) return byte_of_shifted[c - 0x100];
        return -1;
    }
};
inline constexpr ByteAlphabet kByteAlphabet;

// ---------------------------------------------------------------------------------------------
// Merge table: (left id, right id) -> rank, open addressing with linear probing; rank -> merged id.
//
// A lookup that finds no merge is the common case (every adjacent pair is tried), so a slot is one
// 64-bit word holding the whole key and the rank: 2 MiB for Qwen3's 151,387 merges, a quarter of a
// key/value table, which keeps more of it in cache. The merged id is read only when a merge is made.

class MergeTable {
public:
    static constexpr std::uint32_t kNoRank = std::numeric_limits<std::uint32_t>::max();
    static constexpr int kIdBits = 22;    // token ids below 2^22 (Tokenizer::kMaxTokenId)
    static constexpr int kRankBits = 20;  // ranks below 2^20 - 1
    static constexpr std::size_t kMaxMerges = (std::size_t(1) << kRankBits) - 1;

    void reserve(std::size_t count) {
        std::size_t capacity = 16;
        while (capacity < count + count / 2 + 16) capacity *= 2;  // load at most 2/3
        slots_.assign(capacity, kEmpty);
        shift_ = 64 - std::countr_zero(capacity);
        size_ = 0;
    }

    // Adds a merge. Preconditions: 0 <= left, right, merged < 2^kIdBits, rank < kMaxMerges. Returns
    // false when the pair already has a merge.
    bool insert(TokenId left, TokenId right, std::uint32_t rank, TokenId merged) {
        if ((size_ + 1) * 3 > slots_.size() * 2) grow();
        if (!insert_slot(key(left, right) | (rank + 1))) return false;
        if (merged_.size() <= rank) merged_.resize(std::size_t(rank) + 1, -1);
        merged_[rank] = merged;
        max_rank_ = std::max(max_rank_, rank);
        return true;
    }

    // The rank of the merge of (left, right), or kNoRank.
    std::uint32_t find(TokenId left, TokenId right) const {
        const std::uint64_t k = key(left, right);
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t i = index(k);; i = (i + 1) & mask) {
            const std::uint64_t slot = slots_[i];
            if ((slot & ~kRankMask) == k && slot != kEmpty) return std::uint32_t(slot & kRankMask) - 1;
            if (slot == kEmpty) return kNoRank;
        }
    }

    // The token a merge of rank `rank` (found by find) makes.
    TokenId merged(std::uint32_t rank) const { return merged_[rank]; }

    std::size_t size() const { return size_; }
    std::uint32_t max_rank() const { return max_rank_; }

private:
    static constexpr std::uint64_t kEmpty = 0;  // a stored slot has rank + 1 >= 1 in its low bits
    static constexpr std::uint64_t kRankMask = (std::uint64_t(1) << kRankBits) - 1;
    static std::uint64_t key(TokenId left, TokenId right) {
        return (std::uint64_t(std::uint32_t(left)) << (kIdBits + kRankBits)) | (std::uint64_t(std::uint32_t(right)) << kRankBits);
    }
    std::size_t index(std::uint64_t k) const { return std::size_t((k * 0x9E3779B97F4A7C15ull) >> shift_); }

    bool insert_slot(std::uint64_t slot) {
        const std::uint64_t k = slot & ~kRankMask;
        const std::size_t mask = slots_.size() - 1;
        std::size_t i = index(k);
        for (; slots_[i] != kEmpty; i = (i + 1) & mask)
            if ((slots_[i] & ~kRankMask) == k) return false;
        slots_[i] = slot;
        ++size_;
        return true;
    }
    void grow() {
        std::vector<std::uint64_t> old = std::move(slots_);
        reserve(std::max<std::size_t>(old.size(), 16));
        for (std::uint64_t slot : old)
            if (slot != kEmpty) insert_slot(slot);
    }

    std::vector<std::uint64_t> slots_ = std::vector<std::uint64_t>(16, kEmpty);
    std::vector<TokenId> merged_;
    int shift_ = 60;
    std::size_t size_ = 0;
    std::uint32_t max_rank_ = 0;
};

// Scratch memory for encoding one piece; reused between pieces to avoid allocation.
struct Workspace {
    std::vector<TokenId> ids;
    std::vector<std::uint32_t> pair;  // rank of the merge of (ids[i], its next), or kNoRank
    std::vector<std::int32_t> prev, next;
    std::vector<std::uint64_t> heap;  // (rank << 32 | position), smallest first
    std::vector<std::vector<std::uint64_t>> buckets;  // for pieces of kHugePiece bytes and more
};

// The merges of a byte-level BPE model and the token of each single byte.
class Encoder {
public:
    static constexpr std::size_t kSmallPiece = 48;

    Encoder() { byte_token_.fill(-1); }

    void set_byte_token(unsigned char byte, TokenId id) { byte_token_[byte] = id; }
    TokenId byte_token(unsigned char byte) const { return byte_token_[byte]; }
    MergeTable& merges() { return merges_; }
    const MergeTable& merges() const { return merges_; }

    // Call once the byte tokens and all merges are in: tabulates the ranks of byte pairs, which
    // every piece looks up first (a 256 KiB table instead of the hash table for n - 1 lookups).
    void finish() {
        byte_pair_rank_.assign(65536, MergeTable::kNoRank);
        for (int a = 0; a < 256; ++a)
            for (int b = 0; b < 256; ++b)
                byte_pair_rank_[std::size_t(a) << 8 | std::size_t(b)] = merges_.find(byte_token_[std::size_t(a)], byte_token_[std::size_t(b)]);
    }

    // Appends the tokens of `piece` (non-empty). Precondition: every byte has a token.
    void encode(std::string_view piece, std::vector<TokenId>& out, Workspace& ws) const {
        const auto* bytes = reinterpret_cast<const unsigned char*>(piece.data());
        const std::size_t n = piece.size();
        if (n == 1) {
            out.push_back(byte_token_[bytes[0]]);
            return;
        }
        if (n <= kSmallPiece) encode_small(bytes, n, out);
        else encode_large(bytes, n, out, ws);
    }

private:
    // Flat arrays on the stack: find the lowest rank by a scan, merge, update the two neighbours.
    void encode_small(const unsigned char* bytes, std::size_t n, std::vector<TokenId>& out) const {
        TokenId ids[kSmallPiece];
        std::uint32_t rank[kSmallPiece];
        for (std::size_t i = 0; i < n; ++i) ids[i] = byte_token_[bytes[i]];
        for (std::size_t i = 0; i + 1 < n; ++i) rank[i] = byte_pair_rank(bytes[i], bytes[i + 1]);
        std::size_t m = n;
        while (m > 1) {
            std::size_t best = 0;
            std::uint32_t best_rank = rank[0];
            for (std::size_t i = 1; i + 1 < m; ++i)
                if (rank[i] < best_rank) {
                    best_rank = rank[i];
                    best = i;
                }
            if (best_rank == MergeTable::kNoRank) break;
            ids[best] = merges_.merged(best_rank);
            // remove element best + 1
            for (std::size_t i = best + 1; i + 1 < m; ++i) ids[i] = ids[i + 1];
            for (std::size_t i = best + 1; i + 2 < m; ++i) rank[i] = rank[i + 1];
            --m;
            if (best + 1 < m) rank[best] = merges_.find(ids[best], ids[best + 1]);
            if (best > 0) rank[best - 1] = merges_.find(ids[best - 1], ids[best]);
        }
        out.insert(out.end(), ids, ids + m);
    }

    // Candidate merges are kept in a priority queue of (rank << 32 | position): the lowest rank comes
    // first, then the leftmost position. Two queues with that behaviour:

    // A binary heap, for pieces of moderate length.
    struct HeapQueue {
        std::vector<std::uint64_t>& heap;
        void add_initial(std::uint64_t e) { heap.push_back(e); }
        void start() { std::make_heap(heap.begin(), heap.end(), std::greater<>()); }
        void push(std::uint64_t e) {
            heap.push_back(e);
            std::push_heap(heap.begin(), heap.end(), std::greater<>());
        }
        bool pop(std::uint64_t& e) {
            if (heap.empty()) return false;
            std::pop_heap(heap.begin(), heap.end(), std::greater<>());
            e = heap.back();
            heap.pop_back();
            return true;
        }
    };

    // For long pieces (a megabyte without a space), where a heap of a million entries misses the
    // cache on every operation: entries wait unsorted in buckets of 256 ranks, appended in order, and
    // only the bucket being merged is a heap. A merge creates a token that later merges use, so new
    // pairs almost always rank above the current bucket; one that does not (a merge list out of
    // training order) goes into the current heap, which keeps the order exact either way.
    struct BucketQueue {
        static constexpr int kShift = 8;
        std::vector<std::uint64_t>& heap;
        std::vector<std::vector<std::uint64_t>>& buckets;
        std::size_t next = 0;  // buckets before this one have been moved into the heap
        void add_initial(std::uint64_t e) { push(e); }
        void start() {}
        void push(std::uint64_t e) {
            const std::size_t b = std::size_t(e >> (32 + kShift));
            if (b < next) {
                heap.push_back(e);
                std::push_heap(heap.begin(), heap.end(), std::greater<>());
            } else {
                buckets[b].push_back(e);
            }
        }
        bool pop(std::uint64_t& e) {
            while (heap.empty()) {
                while (next < buckets.size() && buckets[next].empty()) ++next;
                if (next == buckets.size()) return false;
                std::swap(heap, buckets[next++]);
                std::make_heap(heap.begin(), heap.end(), std::greater<>());
            }
            std::pop_heap(heap.begin(), heap.end(), std::greater<>());
            e = heap.back();
            heap.pop_back();
            return true;
        }
    };

    static constexpr std::size_t kHugePiece = 4096;

    void encode_large(const unsigned char* bytes, std::size_t n, std::vector<TokenId>& out, Workspace& ws) const {
        ws.heap.clear();
        if (n < kHugePiece) {
            merge_with(HeapQueue{ws.heap}, bytes, n, out, ws);
            return;
        }
        // ranks fit below 2^32 and every bucket index below this count
        ws.buckets.resize((std::size_t(merges_.max_rank()) >> BucketQueue::kShift) + 1);
        for (auto& b : ws.buckets) b.clear();
        merge_with(BucketQueue{ws.heap, ws.buckets}, bytes, n, out, ws);
    }

    // Linked list over positions and a queue of candidate merges. A queue entry is stale when its pair
    // has changed since it was pushed; it is then skipped (the pair's current merge is in pair[]).
    template <typename Queue>
    void merge_with(Queue queue, const unsigned char* bytes, std::size_t n, std::vector<TokenId>& out, Workspace& ws) const {
        ws.ids.resize(n);
        ws.pair.resize(n);
        ws.prev.resize(n);
        ws.next.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
            ws.ids[i] = byte_token_[bytes[i]];
            ws.prev[i] = std::int32_t(i) - 1;
            ws.next[i] = i + 1 < n ? std::int32_t(i + 1) : -1;
        }
        auto entry = [](std::uint32_t rank, std::size_t i) { return std::uint64_t(rank) << 32 | i; };
        auto update = [&](std::size_t i) {
            std::uint32_t r = ws.next[i] < 0 ? MergeTable::kNoRank : merges_.find(ws.ids[i], ws.ids[std::size_t(ws.next[i])]);
            ws.pair[i] = r;
            if (r != MergeTable::kNoRank) queue.push(entry(r, i));
        };
        for (std::size_t i = 0; i + 1 < n; ++i) {
            std::uint32_t r = byte_pair_rank(bytes[i], bytes[i + 1]);
            ws.pair[i] = r;
            if (r != MergeTable::kNoRank) queue.add_initial(entry(r, i));
        }
        ws.pair[n - 1] = MergeTable::kNoRank;
        queue.start();
        std::uint64_t top;
        while (queue.pop(top)) {
            const std::size_t i = std::size_t(std::uint32_t(top));
            const std::uint32_t rank = std::uint32_t(top >> 32);
            // removed positions have kNoRank, so one comparison detects every stale entry
            if (ws.pair[i] != rank) continue;
            const std::size_t j = std::size_t(ws.next[i]);
            ws.ids[i] = merges_.merged(rank);
            ws.pair[j] = MergeTable::kNoRank;
            ws.next[i] = ws.next[j];
            if (ws.next[j] >= 0) ws.prev[std::size_t(ws.next[j])] = std::int32_t(i);
            update(i);
            if (ws.prev[i] >= 0) update(std::size_t(ws.prev[i]));
        }
        for (std::int32_t i = 0; i >= 0; i = ws.next[std::size_t(i)]) out.push_back(ws.ids[std::size_t(i)]);
    }

    std::uint32_t byte_pair_rank(unsigned char a, unsigned char b) const { return byte_pair_rank_[std::size_t(a) << 8 | b]; }

    std::array<TokenId, 256> byte_token_;
    MergeTable merges_;
    std::vector<std::uint32_t> byte_pair_rank_ = std::vector<std::uint32_t>(65536, MergeTable::kNoRank);
};

}  // namespace qwen3::detail::bpe
