// qwen3/kv_pool.hpp - the key/value cache of many sequences: pages from one pool of fixed size.
//
//     qwen3::KVPool<qwen3::Qwen3_0_6B> pool(1024);          // 1024 pages of 64 positions
//
// The static arena of kv_arena.hpp, generalised: one reservation of address space for `pages`
// pages of PagePositions positions each (committed by the OS as pages are first written), handed
// out to sequences as they grow and back when they end, so short and long sequences share memory
// instead of each reserving Cfg::max_context. A page is reference-counted: sequences with a common
// prefix (a system prompt, tool schemas) read the same pages, and the engine's prefix index keeps
// pages of finished sequences for later requests until the pool needs them. Within a page the
// layout is the arena's (per layer and KV head: key blocks of 16 positions, then value rows), so
// the attention kernel reads a sequence through its page table exactly as it reads an arena.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "detail/platform.hpp"
#include "error.hpp"
#include "kv_types.hpp"

namespace qwen3 {

// Positions per page of a KVPool unless named: a multiple of the attention kernel's key block (16),
// small enough that a sequence wastes little of its last page.
inline constexpr int kDefaultPagePositions = 64;

template <class Cfg, class KV = DefaultKV, int PagePositions = kDefaultPagePositions>
class KVPool {
public:
    using element = KV;
    static constexpr int page_positions = PagePositions;
    static_assert(PagePositions % kKeyBlock == 0, "a page holds whole key blocks of 16 positions");
    static constexpr int D = Cfg::head_dim;
    static constexpr std::size_t key_bytes = std::size_t(PagePositions / kKeyBlock) * KV::template key_block_bytes<D>;
    static constexpr std::size_t value_bytes = std::size_t(PagePositions) * KV::template value_row_bytes<D>;
    static constexpr std::size_t head_bytes = (key_bytes + value_bytes + 63) / 64 * 64;
    static constexpr std::size_t page_bytes = std::size_t(Cfg::layers) * Cfg::kv_heads * head_bytes;

    // Reserves `pages` pages. Throws Error(invalid_argument) for pages < 1, Error(io) when the
    // address space cannot be reserved.
    explicit KVPool(int pages)
        : memory_(checked_bytes(pages), "a KV pool of " + std::to_string(pages) + " pages of " + std::to_string(PagePositions) +
                                            " positions",
                  /*huge_pages=*/page_bytes >= detail::kHugePage),
          refs_(std::size_t(pages), 0) {
        free_.reserve(std::size_t(pages));
        for (int p = pages - 1; p >= 0; --p) free_.push_back(p);
    }
    KVPool(const KVPool&) = delete;
    KVPool& operator=(const KVPool&) = delete;

    int pages() const { return int(refs_.size()); }
    int free_pages() const { return int(free_.size()); }
    int used_pages() const { return pages() - free_pages(); }
    int references(int page) const { return refs_[std::size_t(page)]; }

    // A free page with one reference, or -1 when every page is in use.
    int allocate() {
        if (free_.empty()) return -1;
        const int p = free_.back();
        free_.pop_back();
        refs_[std::size_t(p)] = 1;
        return p;
    }
    void retain(int page) { ++refs_[std::size_t(page)]; }
    // Drops a reference; the page is free again when none is left.
    void release(int page) {
        if (--refs_[std::size_t(page)] == 0) free_.push_back(page);
    }

    std::byte* head(int page, int layer, int kv_head) const {
        return memory_.data() + std::size_t(page) * page_bytes + (std::size_t(layer) * Cfg::kv_heads + std::size_t(kv_head)) * head_bytes;
    }

    // Positions [0, count) of page `from` into page `to`, every layer and head (a shared prefix that
    // ends inside a page: the sequence continuing it gets its own copy of that page).
    void copy_positions(int to, int from, int count) {
        const std::size_t blocks = std::size_t(count + kKeyBlock - 1) / kKeyBlock;
        for (int l = 0; l < Cfg::layers; ++l)
            for (int h = 0; h < Cfg::kv_heads; ++h) {
                std::memcpy(head(to, l, h), head(from, l, h), blocks * KV::template key_block_bytes<D>);
                std::memcpy(head(to, l, h) + key_bytes, head(from, l, h) + key_bytes,
                            std::size_t(count) * KV::template value_row_bytes<D>);
            }
    }

    // One sequence's keys and values: positions p at page table[p / PagePositions], read and
    // written through the interface the forward pass and the attention kernel use.
    class Sequence {
    public:
        using element = KV;
        explicit Sequence(KVPool& pool) : pool_(&pool) {}

        std::vector<int>& page_table() { return pages_; }
        const std::vector<int>& page_table() const { return pages_; }
        // Positions the page table can hold.
        int capacity() const { return int(pages_.size()) * PagePositions; }

        std::byte* key_block(int layer, int kv_head, int block) const {
            constexpr int blocks_per_page = PagePositions / kKeyBlock;
            return pool_->head(pages_[std::size_t(block / blocks_per_page)], layer, kv_head) +
                   std::size_t(block % blocks_per_page) * KV::template key_block_bytes<D>;
        }
        std::byte* value_row(int layer, int kv_head, int pos) const {
            return pool_->head(pages_[std::size_t(pos / PagePositions)], layer, kv_head) + key_bytes +
                   std::size_t(pos % PagePositions) * KV::template value_row_bytes<D>;
        }
        void store(int layer, int kv_head, int pos, const float* k, const float* v) const {
            KV::template store_key<D>(key_block(layer, kv_head, pos / kKeyBlock), pos % kKeyBlock, k);
            KV::template store_value<D>(value_row(layer, kv_head, pos), v);
        }

    private:
        KVPool* pool_;
        std::vector<int> pages_;
    };

private:
    static std::size_t checked_bytes(int pages) {
        if (pages < 1) detail::fail(ErrorCode::invalid_argument, "KVPool: the pool needs at least one page, got ", pages);
        return std::size_t(pages) * page_bytes;
    }

    detail::ReservedMemory memory_;
    std::vector<int> refs_;
    std::vector<int> free_;
};

}  // namespace qwen3
