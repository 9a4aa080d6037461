// qwen3/tokenizer/added_tokens.hpp - finding added tokens (<|im_start|>, <think>, ...) in raw text.
//
// Hugging Face splits the text at added tokens before anything else, taking at each position the
// leftmost match and, among matches starting there, the longest (its Aho-Corasick automaton runs in
// LeftmostLongest mode). This matcher gives the same matches with a byte trie: only positions whose
// byte can start a token are tried (for Qwen3 only '<', found with memchr), and a walk stops at the
// first byte no token continues with, so it reads at most kMaxLength bytes per candidate position.
//
// Plain ranges: bytes inside them never belong to a match (user data in a chat prompt may spell
// "<|im_end|>" without producing the control token); a token must lie wholly outside them.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "bpe.hpp"

namespace qwen3 {

// Byte offsets [begin, end) into a text.
struct ByteRange {
    std::size_t begin = 0;
    std::size_t end = 0;
    bool operator==(const ByteRange&) const = default;
};

namespace detail {

class AddedTokenMatcher {
public:
    static constexpr std::size_t kMaxLength = 256;  // bytes of one added token (a limit of this library)

    struct Match {
        std::size_t begin = 0;
        std::size_t end = 0;
        TokenId id = -1;
    };

    bool empty() const { return nodes_.size() <= 1; }

    // Adds a token. Preconditions (checked by the loaders): 0 < content.size() <= kMaxLength, and no
    // other token has the same content.
    void add(std::string_view content, TokenId id) {
        std::uint32_t node = 0;
        for (unsigned char c : content) {
            auto& kids = nodes_[node].children;
            auto it = std::lower_bound(kids.begin(), kids.end(), c, [](const auto& kid, unsigned char b) { return kid.first < b; });
            if (it == kids.end() || it->first != c) {
                std::uint32_t fresh = std::uint32_t(nodes_.size());
                it = kids.insert(it, {c, fresh});
                nodes_.emplace_back();  // invalidates `kids`; `fresh` stays valid
            }
            node = it->second;
        }
        nodes_[node].token = id;
        unsigned char first = static_cast<unsigned char>(content[0]);
        if (!starts_[first]) {
            starts_[first] = true;
            ++start_count_;
            single_start_ = first;
        }
    }

    // The leftmost-longest match at or after `from`, wholly outside `plain` (sorted, disjoint ranges;
    // `plain_index` is the caller's cursor into them, advanced here). Returns false when none is left.
    bool next(std::string_view text, std::size_t from, std::span<const ByteRange> plain, std::size_t& plain_index,
              Match& match) const {
        if (empty()) return false;
        std::size_t i = from;
        while (i < text.size()) {
            i = next_candidate(text, i);
            if (i >= text.size()) return false;
            // skip plain ranges that end at or before i (and empty ones); jump over one that contains i
            while (plain_index < plain.size() && (plain[plain_index].end <= i || plain[plain_index].begin == plain[plain_index].end))
                ++plain_index;
            std::size_t limit = text.size();
            if (plain_index < plain.size()) {
                if (plain[plain_index].begin <= i) {
                    i = plain[plain_index].end;
                    continue;
                }
                limit = plain[plain_index].begin;
            }
            if (Match m = longest_at(text, i, limit); m.id >= 0) {
                match = m;
                return true;
            }
            ++i;
        }
        return false;
    }

private:
    struct Node {
        std::vector<std::pair<unsigned char, std::uint32_t>> children;  // sorted by byte
        TokenId token = -1;
    };

    std::size_t next_candidate(std::string_view text, std::size_t i) const {
        if (start_count_ == 1) {
            const void* hit = std::memchr(text.data() + i, single_start_, text.size() - i);
            return hit ? std::size_t(static_cast<const char*>(hit) - text.data()) : text.size();
        }
        while (i < text.size() && !starts_[static_cast<unsigned char>(text[i])]) ++i;
        return i;
    }

    // The longest token starting at i and ending at or before limit (id -1 when none).
    Match longest_at(std::string_view text, std::size_t i, std::size_t limit) const {
        std::uint32_t node = 0;
        Match best{i, i, -1};
        for (std::size_t k = i; k < limit; ++k) {
            const auto& kids = nodes_[node].children;
            unsigned char c = static_cast<unsigned char>(text[k]);
            auto it = std::lower_bound(kids.begin(), kids.end(), c, [](const auto& kid, unsigned char b) { return kid.first < b; });
            if (it == kids.end() || it->first != c) break;
            node = it->second;
            if (nodes_[node].token >= 0) best = {i, k + 1, nodes_[node].token};
        }
        return best;
    }

    std::vector<Node> nodes_ = std::vector<Node>(1);
    std::array<bool, 256> starts_{};
    int start_count_ = 0;
    unsigned char single_start_ = 0;
};

}  // namespace detail
}  // namespace qwen3
