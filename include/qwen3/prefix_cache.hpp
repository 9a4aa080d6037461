// qwen3/prefix_cache.hpp - which pages of a KV pool hold which token prefixes.
//
// A page's keys and values depend only on the tokens up to its last position, so a page written
// for one sequence serves every sequence that starts with the same tokens. The cache indexes full
// pages by their tokens and their parent page (the page before them in the sequence), holds a
// reference to each so they outlive the sequence that wrote them, and also keeps the partial last
// page of a finished sequence, whose first positions a later sequence may copy. When the pool runs
// short, pages only the cache holds are given back, least recently used first.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace qwen3::detail {

template <class Pool>
class PrefixCache {
public:
    static constexpr int P = Pool::page_positions;

    explicit PrefixCache(Pool& pool) : pool_(&pool) {}
    PrefixCache(const PrefixCache&) = delete;
    PrefixCache& operator=(const PrefixCache&) = delete;
    ~PrefixCache() {
        for (const Entry& e : entries_)
            if (e.alive) pool_->release(e.page);
    }

    // The longest prefix of `tokens`, at most `limit` positions, that the cache holds: whole pages,
    // each retained for the caller, then possibly the first positions of one more page to copy.
    struct Match {
        std::vector<int> pages;   // shared pages, in order (the caller owns one reference to each)
        std::vector<int> chain;   // their cache entries (a sequence extends its chain from the last)
        int copy_from = -1;       // a page whose first copy_count positions continue the prefix
        int copy_count = 0;
        int positions() const { return int(pages.size()) * P + copy_count; }
    };
    Match match(std::span<const std::int32_t> tokens, int limit) {
        Match m;
        int parent = kRoot;
        int pos = 0;
        ++tick_;
        while (pos + P <= limit) {
            const int e = find_full(parent, tokens.subspan(std::size_t(pos), P));
            if (e < 0) break;
            Entry& entry = entries_[std::size_t(e)];
            entry.last_used = tick_;
            pool_->retain(entry.page);
            m.pages.push_back(entry.page);
            m.chain.push_back(e);
            parent = e;
            pos += P;
        }
        // the child (full or partial) sharing the most of the rest
        for (int c : children(parent)) {
            const Entry& child = entries_[std::size_t(c)];
            const int most = std::min({child.count, limit - pos, int(tokens.size()) - pos});
            int n = 0;
            while (n < most && child.tokens[std::size_t(n)] == tokens[std::size_t(pos + n)]) ++n;
            if (n > m.copy_count) {
                m.copy_count = n;
                m.copy_from = child.page;
                entries_[std::size_t(c)].last_used = tick_;
            }
        }
        return m;
    }

    // Holds a full page whose tokens are `page_tokens` (P of them), following entry `parent` (-1:
    // the first page of a sequence). Returns its entry, or -1 when the same tokens are already held
    // (the caller keeps its own page and may continue from the returned entry of find()).
    int add_full(int parent, std::span<const std::int32_t> page_tokens, int page) {
        if (int e = find_full(parent, page_tokens); e >= 0) return e;
        const int e = new_entry(parent, page_tokens, page);
        full_[key(parent, hash(page_tokens))].push_back(e);
        return e;
    }

    // Holds the partial last page of a finished sequence (its first page_tokens.size() < P positions).
    void add_partial(int parent, std::span<const std::int32_t> page_tokens, int page) {
        if (page_tokens.empty() || int(page_tokens.size()) >= P) return;
        for (int c : children(parent)) {  // already held: as long or longer
            const Entry& e = entries_[std::size_t(c)];
            if (e.count >= int(page_tokens.size()) && std::equal(page_tokens.begin(), page_tokens.end(), e.tokens.begin())) return;
        }
        new_entry(parent, page_tokens, page);
    }

    // The entry of a held full page with these tokens after `parent`, or -1.
    int find_full(int parent, std::span<const std::int32_t> page_tokens) const {
        const auto it = full_.find(key(parent, hash(page_tokens)));
        if (it == full_.end()) return -1;
        for (int e : it->second) {
            const Entry& entry = entries_[std::size_t(e)];
            if (entry.alive && std::equal(page_tokens.begin(), page_tokens.end(), entry.tokens.begin())) return e;
        }
        return -1;
    }

    // Gives back to the pool the least recently used page only the cache holds (and the entries
    // after it, which no lookup could reach any more). False when there is none.
    bool evict_one() {
        int victim = -1;
        for (std::size_t i = 0; i < entries_.size(); ++i) {
            const Entry& e = entries_[i];
            if (!e.alive || pool_->references(e.page) != 1 || has_held_descendant(int(i))) continue;
            if (victim < 0 || e.last_used < entries_[std::size_t(victim)].last_used) victim = int(i);
        }
        if (victim < 0) return false;
        remove(victim);
        return true;
    }

    // Pages only the cache holds (kept for later requests; no running sequence uses them).
    int held_pages() const {
        int n = 0;
        for (const Entry& e : entries_) n += e.alive && pool_->references(e.page) == 1;
        return n;
    }

private:
    static constexpr int kRoot = -1;

    struct Entry {
        int parent = -1;
        int page = -1;
        int count = 0;                    // positions of the page that hold these tokens
        std::vector<std::int32_t> tokens;
        std::uint64_t last_used = 0;
        std::vector<int> children;
        bool alive = true;
    };

    static std::uint64_t hash(std::span<const std::int32_t> tokens) {
        std::uint64_t h = 0xCBF29CE484222325ull;
        for (std::int32_t t : tokens) h = (h ^ std::uint64_t(std::uint32_t(t))) * 0x100000001B3ull;
        return h;
    }
    static std::uint64_t key(int parent, std::uint64_t h) { return h ^ (std::uint64_t(std::uint32_t(parent)) * 0x9E3779B97F4A7C15ull); }

    std::vector<int>& children(int parent) { return parent == kRoot ? roots_ : entries_[std::size_t(parent)].children; }

    int new_entry(int parent, std::span<const std::int32_t> page_tokens, int page) {
        pool_->retain(page);
        Entry e;
        e.parent = parent;
        e.page = page;
        e.count = int(page_tokens.size());
        e.tokens.assign(page_tokens.begin(), page_tokens.end());
        e.last_used = ++tick_;
        int id;
        if (!free_slots_.empty()) {  // a removed entry's slot: entries_ stays as large as the most held at once
            id = free_slots_.back();
            free_slots_.pop_back();
            entries_[std::size_t(id)] = std::move(e);
        } else {
            entries_.push_back(std::move(e));
            id = int(entries_.size()) - 1;
        }
        children(parent).push_back(id);
        return id;
    }

    bool has_held_descendant(int e) const {
        for (int c : entries_[std::size_t(e)].children)
            if (entries_[std::size_t(c)].alive) return true;
        return false;
    }

    void remove(int e) {
        Entry& entry = entries_[std::size_t(e)];
        entry.alive = false;
        pool_->release(entry.page);
        std::vector<int>& siblings = children(entry.parent);
        siblings.erase(std::remove(siblings.begin(), siblings.end(), e), siblings.end());
        if (entry.count == P) {
            const auto it = full_.find(key(entry.parent, hash(entry.tokens)));
            if (it != full_.end()) {
                std::erase(it->second, e);
                if (it->second.empty()) full_.erase(it);
            }
        }
        entry.tokens = {};
        entry.children = {};  // none alive (only entries without live descendants are removed)
        free_slots_.push_back(e);
    }

    Pool* pool_;
    std::vector<Entry> entries_;
    std::vector<int> free_slots_;  // slots of removed entries
    std::vector<int> roots_;
    std::unordered_map<std::uint64_t, std::vector<int>> full_;
    std::uint64_t tick_ = 0;
};

}  // namespace qwen3::detail
