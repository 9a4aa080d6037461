// qwen3/grammar/token_mask.hpp - which tokens keep the output inside a grammar.
//
// Use: auto constraint = TokenGrammar::create(Grammar::from_gbnf(text), tokenizer);
//      GrammarMatcher m(constraint); m.fill_mask(allowed); ... m.accept_token(id);
// Not its job: sampling (sampler.hpp reads the mask) or grammar text (gbnf.hpp, json_schema.hpp).
//
// A token is allowed iff its bytes continue a prefix of the language, and an end-of-turn token iff
// the output so far is a whole sentence. Exact over byte-level tokens: a token may end inside a
// UTF-8 character, and the grammar is over bytes.
//
// Speed: checking 151,936 tokens against the parser each step would cost milliseconds. The
// vocabulary is a trie of token bytes, walked with the parser's states interned and their byte
// transitions memoized, so a shared prefix is read once and a rejected byte prunes its subtree.
// The walk is done once per grammar position (the top of a parse stack) with no stack beneath
// it, and cached: tokens it accepts are accepted whatever the stack; where a walk leaves the
// frames the position determines (the grammar knows where every use of a rule continues, until
// a rule with several continuations ends), it records the trie node and depth, and at run time
// only the rest of those tokens is walked, from the real stack. Inside a JSON string that is the
// few tokens that close the string and go on. A subtree whose tokens are all characters the state
// reads in a row (the string's characters, as many as its deepest token has) is taken whole.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <bit>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "../tokenizer/tokenizer.hpp"
#include "grammar.hpp"
#include "recognizer.hpp"

namespace qwen3 {

// A set of token ids, one bit each.
class TokenBitmask {
public:
    explicit TokenBitmask(std::size_t tokens = 0) { resize(tokens); }
    void resize(std::size_t tokens) {
        tokens_ = tokens;
        words_.assign((tokens + 63) / 64, 0);
    }
    void clear() { std::fill(words_.begin(), words_.end(), 0); }
    void set(std::int32_t id) { words_[std::size_t(id) >> 6] |= std::uint64_t(1) << (id & 63); }
    bool test(std::int32_t id) const {
        return id >= 0 && std::size_t(id) < tokens_ && ((words_[std::size_t(id) >> 6] >> (id & 63)) & 1);
    }
    void merge(const TokenBitmask& other) {
        for (std::size_t i = 0; i < words_.size() && i < other.words_.size(); ++i) words_[i] |= other.words_[i];
    }
    std::size_t size() const noexcept { return tokens_; }
    std::size_t count() const {
        std::size_t n = 0;
        for (std::uint64_t w : words_) n += std::size_t(std::popcount(w));
        return n;
    }
    std::span<const std::uint64_t> words() const noexcept { return words_; }

private:
    std::size_t tokens_ = 0;
    std::vector<std::uint64_t> words_;
};

// The vocabulary's token bytes as a trie in depth-first order: a node's children follow it, and
// `end` is the first index after its subtree (so a rejected subtree is skipped in one step).
class TokenTrie {
public:
    struct Node {
        std::int32_t end;          // first node after this subtree
        std::int32_t first_token;  // into tokens(): the token_count tokens whose bytes end here, then
                                   // those below it, up to tokens_end
        std::int32_t tokens_end;
        std::uint16_t token_count;
        std::uint8_t byte;
    };

    // The tokens that can appear in constrained text: the BPE vocabulary (added and control tokens
    // such as <think> or <|im_end|> are never part of a grammar's text). `vocab_size` is the
    // number of logits (at least the tokenizer's ids).
    TokenTrie(const Tokenizer& tokenizer, std::size_t vocab_size) : vocab_size_(std::max(vocab_size, tokenizer.vocab_size())) {
        std::vector<std::string> bytes(tokenizer.vocab_size());
        for (std::size_t id = 0; id < bytes.size(); ++id)
            if (tokenizer.kind(TokenId(id)) == TokenKind::normal) bytes[id] = std::string(tokenizer.token_bytes(TokenId(id)));
        build(std::move(bytes));
    }
    // Token id i has the bytes token_bytes[i]; an empty string leaves the id out (tests, other vocabularies).
    TokenTrie(std::vector<std::string> token_bytes, std::size_t vocab_size) : vocab_size_(std::max(vocab_size, token_bytes.size())) {
        build(std::move(token_bytes));
    }

    const std::vector<Node>& nodes() const noexcept { return nodes_; }
    std::span<const std::int32_t> tokens(const Node& n) const { return {tokens_.data() + n.first_token, n.token_count}; }
    // The tokens strictly below a node.
    std::span<const std::int32_t> tokens_below(const Node& n) const {
        return {tokens_.data() + n.first_token + n.token_count, std::size_t(n.tokens_end - n.first_token - n.token_count)};
    }
    // The bytes that occur below a node (after its own byte), for nodes with a large subtree; null
    // for the others. A walk whose state reads them all, as many in a row as a token below has,
    // can take the whole subtree at once.
    const ByteSet* bytes_below(std::int32_t node) const {
        const std::int32_t i = summary_of_[std::size_t(node)];
        return i < 0 ? nullptr : &summaries_[std::size_t(i)].bytes;
    }
    // For a node with bytes_below(): the most bytes a token below it has after the node's own.
    std::int32_t depth_below(std::int32_t node) const { return summaries_[std::size_t(summary_of_[std::size_t(node)])].depth; }
    // For a node with bytes_below(): whether the bytes below it, read from a character boundary
    // after the node, are valid UTF-8 (each token's may end inside a character).
    bool utf8_below(std::int32_t node) const { return summaries_[std::size_t(summary_of_[std::size_t(node)])].utf8; }
    std::size_t vocab_size() const noexcept { return vocab_size_; }
    // The bytes of a token in the trie, empty for a token left out.
    std::string_view bytes(std::int32_t id) const {
        if (id < 0 || std::size_t(id) >= offsets_.size() - 1) return {};
        return std::string_view(text_).substr(offsets_[std::size_t(id)], offsets_[std::size_t(id) + 1] - offsets_[std::size_t(id)]);
    }

private:
    void build(std::vector<std::string> token_bytes) {
        offsets_.push_back(0);
        for (const std::string& b : token_bytes) {
            text_ += b;
            offsets_.push_back(text_.size());
        }
        std::vector<std::int32_t> order;
        for (std::size_t id = 0; id < token_bytes.size(); ++id)
            if (!token_bytes[id].empty()) order.push_back(std::int32_t(id));
        std::sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
            return token_bytes[std::size_t(a)] < token_bytes[std::size_t(b)] || (token_bytes[std::size_t(a)] == token_bytes[std::size_t(b)] && a < b);
        });
        nodes_.push_back(Node{0, 0, 0, 0, 0});  // the root
        std::vector<std::int32_t> depth{0};  // of each node
        std::vector<std::int32_t> path{0};   // path[d]: the node at depth d on the current branch
        std::string_view previous;
        for (std::int32_t id : order) {
            const std::string_view s = token_bytes[std::size_t(id)];
            std::size_t common = 0;
            while (common < s.size() && common < previous.size() && s[common] == previous[common]) ++common;
            auto close = [&] {
                Node& n = nodes_[std::size_t(path.back())];
                n.end = std::int32_t(nodes_.size());
                n.tokens_end = std::int32_t(tokens_.size());
                path.pop_back();
            };
            while (path.size() > common + 1) close();
            for (std::size_t d = common; d < s.size(); ++d) {
                path.push_back(std::int32_t(nodes_.size()));
                nodes_.push_back(Node{0, std::int32_t(tokens_.size()), 0, 0, static_cast<std::uint8_t>(s[d])});
                depth.push_back(std::int32_t(d + 1));
            }
            tokens_.push_back(id);  // equal byte strings are adjacent in `order`, and follow their node
            ++nodes_[std::size_t(path.back())].token_count;
            previous = s;
        }
        while (!path.empty()) {
            Node& n = nodes_[std::size_t(path.back())];
            n.end = std::int32_t(nodes_.size());
            n.tokens_end = std::int32_t(tokens_.size());
            path.pop_back();
        }
        summary_of_.assign(nodes_.size(), -1);
        std::vector<std::pair<std::int32_t, Utf8Step>> open;
        for (std::size_t n = 0; n < nodes_.size(); ++n) {
            if (nodes_[n].end - std::int32_t(n) - 1 < kSummaryMinNodes) continue;
            Summary below{{}, 0, true};
            open.clear();  // (end of a node on the current branch, what its byte leaves of a character)
            for (std::int32_t d = std::int32_t(n) + 1; d < nodes_[n].end; ++d) {
                const std::uint8_t byte = nodes_[std::size_t(d)].byte;
                below.bytes.add(byte, byte);
                below.depth = std::max(below.depth, depth[std::size_t(d)] - depth[n]);
                while (!open.empty() && open.back().first <= d) open.pop_back();
                const Utf8Step step = utf8_step(open.empty() ? Utf8Step{} : open.back().second, byte);
                below.utf8 = below.utf8 && step.valid;
                open.emplace_back(nodes_[std::size_t(d)].end, step);
            }
            summary_of_[n] = std::int32_t(summaries_.size());
            summaries_.push_back(below);
        }
    }
    static constexpr std::int32_t kSummaryMinNodes = 8;

    // A UTF-8 reader's place: how many bytes the character still needs, and the range of the next.
    struct Utf8Step {
        std::uint8_t needed = 0, lo = 0x80, hi = 0xBF;
        bool valid = true;
    };
    static Utf8Step utf8_step(Utf8Step at, std::uint8_t b) {
        if (!at.valid) return at;
        if (at.needed) {
            if (b < at.lo || b > at.hi) return Utf8Step{0, 0, 0, false};
            return Utf8Step{std::uint8_t(at.needed - 1), 0x80, 0xBF, true};
        }
        if (b < 0x80) return Utf8Step{};
        if (b >= 0xC2 && b <= 0xDF) return Utf8Step{1, 0x80, 0xBF, true};
        if (b == 0xE0) return Utf8Step{2, 0xA0, 0xBF, true};
        if (b == 0xED) return Utf8Step{2, 0x80, 0x9F, true};
        if (b >= 0xE1 && b <= 0xEF) return Utf8Step{2, 0x80, 0xBF, true};
        if (b == 0xF0) return Utf8Step{3, 0x90, 0xBF, true};
        if (b >= 0xF1 && b <= 0xF3) return Utf8Step{3, 0x80, 0xBF, true};
        if (b == 0xF4) return Utf8Step{3, 0x80, 0x8F, true};
        return Utf8Step{0, 0, 0, false};
    }

    std::size_t vocab_size_;
    std::vector<Node> nodes_;
    std::vector<std::int32_t> tokens_;  // in depth-first order
    std::vector<std::int32_t> summary_of_;
    struct Summary {
        ByteSet bytes;       // below the node
        std::int32_t depth;  // depth_below
        bool utf8;           // utf8_below
    };
    std::vector<Summary> summaries_;
    std::string text_;
    std::vector<std::size_t> offsets_;
};

namespace detail {

// What one grammar position (a byte element at the top of a stack) allows, whatever lies below.
struct PositionMasks {
    std::vector<std::int32_t> accepted;  // token ids, sorted (when few)
    TokenBitmask accepted_bits;           // (when many: size() > 0)
    // after trie node `node` the frame `depth` below ended with several possible continuations:
    // the rest of the tokens under that node depends on the real stack (sorted by depth)
    std::vector<std::pair<std::int32_t, std::int8_t>> exits;
};

}  // namespace detail

// Bounds on what a grammar may cost, so that one built from untrusted input (a server's request)
// fails with an error instead of taking the memory or the time of everyone else. A grammar that
// keeps thousands of alternatives open at once (e.g. 3,000 alternatives of [a-z]{k}) needs a
// cached walk of the vocabulary for each; ordinary grammars and JSON Schemas stay far below both.
struct GrammarLimits {
    std::size_t max_cache_bytes = std::size_t(1) << 30;   // a TokenGrammar's caches, and each matcher's states
    std::uint64_t max_mask_steps = std::uint64_t(1) << 24; // vocabulary-trie steps one fill_mask may take (cold caches: ~0.2 s)
};

// A grammar bound to a vocabulary, with the per-position token caches. Shared by every sequence
// generating under it; thread-safe (the caches fill under a lock, once per position).
class TokenGrammar {
public:
    // `end_tokens`: the tokens that end the output (allowed only when it is a whole sentence).
    // `token_ids`: the id of each of grammar.tokens() (the whole tokens it names).
    TokenGrammar(Grammar grammar, std::shared_ptr<const TokenTrie> vocabulary, std::vector<TokenId> end_tokens,
                 std::vector<TokenId> token_ids = {}, GrammarLimits limits = {})
        : grammar_(std::move(grammar)), vocabulary_(std::move(vocabulary)), end_tokens_(std::move(end_tokens)),
          token_ids_(std::move(token_ids)), limits_(limits), cache_(grammar_.elements().size()), walker_(grammar_) {
        if (!vocabulary_) fail_null();
        if (token_ids_.size() != grammar_.tokens().size())
            detail::fail(ErrorCode::invalid_argument, "TokenGrammar: ", token_ids_.size(), " token ids for the grammar's ",
                         grammar_.tokens().size(), " token references");
        for (TokenId id : token_ids_)
            if (id < 0 || std::size_t(id) >= vocabulary_->vocab_size())
                detail::fail(ErrorCode::invalid_argument, "TokenGrammar: token id ", id, " outside the vocabulary");
    }

    // The ids of a grammar's token references in `tokenizer`'s vocabulary (<[id]> or the token whose
    // text is written). Throws Error(invalid_argument) naming a reference it does not have.
    static std::vector<TokenId> resolve_tokens(const Grammar& grammar, const Tokenizer& tokenizer) {
        std::vector<TokenId> ids;
        for (const std::string& name : grammar.tokens()) {
            if (name.front() == '[') {
                const long id = std::strtol(name.c_str() + 1, nullptr, 10);
                if (id < 0 || std::size_t(id) >= tokenizer.vocab_size())
                    detail::fail(ErrorCode::invalid_argument, "grammar: token <", name, "> is not in the vocabulary");
                ids.push_back(TokenId(id));
            } else if (auto id = tokenizer.token_id(name)) {
                ids.push_back(*id);
            } else {
                detail::fail(ErrorCode::invalid_argument, "grammar: no token of the vocabulary is ", name);
            }
        }
        return ids;
    }

    // The grammar over `tokenizer`'s vocabulary (already a trie: share one when making many grammars
    // for one tokenizer), with <|im_end|> and <|endoftext|> as end tokens and the grammar's token
    // references resolved. Throws what resolve_tokens throws.
    static std::shared_ptr<const TokenGrammar> bind(Grammar grammar, std::shared_ptr<const TokenTrie> vocabulary, const Tokenizer& tokenizer,
                                                    GrammarLimits limits = {}) {
        std::vector<TokenId> ends;
        for (std::string_view name : {"<|im_end|>", "<|endoftext|>"})
            if (auto id = tokenizer.token_id(name)) ends.push_back(*id);
        std::vector<TokenId> ids = resolve_tokens(grammar, tokenizer);
        return std::make_shared<const TokenGrammar>(std::move(grammar), std::move(vocabulary), std::move(ends), std::move(ids), limits);
    }
    // bind() with a trie built here; vocab_size is the model's number of logits (0: the tokenizer's).
    static std::shared_ptr<const TokenGrammar> create(Grammar grammar, const Tokenizer& tokenizer, std::size_t vocab_size = 0,
                                                      GrammarLimits limits = {}) {
        return bind(std::move(grammar), std::make_shared<const TokenTrie>(tokenizer, vocab_size), tokenizer, limits);
    }

    const Grammar& grammar() const noexcept { return grammar_; }
    const TokenTrie& vocabulary() const noexcept { return *vocabulary_; }
    std::span<const TokenId> end_tokens() const noexcept { return end_tokens_; }
    bool is_end_token(TokenId id) const { return std::find(end_tokens_.begin(), end_tokens_.end(), id) != end_tokens_.end(); }
    // The id of the grammar's token reference `index`.
    TokenId token_id(std::int32_t index) const { return token_ids_[std::size_t(index)]; }
    // Which of the grammar's token references have this id (usually none or one).
    template <class Fn>
    void for_each_reference(TokenId id, Fn&& fn) const {
        for (std::size_t i = 0; i < token_ids_.size(); ++i)
            if (token_ids_[i] == id) fn(std::int32_t(i));
    }

    const GrammarLimits& limits() const noexcept { return limits_; }
    // Roughly the bytes the grammar and its caches hold now (they grow as positions are first used).
    std::size_t memory_bytes() const {
        std::lock_guard lock(mutex_);
        return cache_bytes_ + walker_.memory_bytes() + cache_.size() * sizeof(cache_[0]) +
               grammar_.elements().size() * sizeof(Grammar::Element);
    }

    // The cached walk of `position` (a byte element), computed on first use; the trie steps a walk
    // takes are added to `*steps`. Throws Error(invalid_argument) when the caches would pass
    // limits().max_cache_bytes.
    const detail::PositionMasks& masks(std::int32_t position, std::uint64_t* steps = nullptr) const {
        const detail::PositionMasks* m = cache_[std::size_t(position)].load(std::memory_order_acquire);
        if (m) return *m;
        std::lock_guard lock(mutex_);
        m = cache_[std::size_t(position)].load(std::memory_order_relaxed);
        if (!m) {
            if (cache_bytes_ + walker_.memory_bytes() > limits_.max_cache_bytes) fail_memory();
            std::uint64_t taken = 0;
            auto walked = std::make_unique<detail::PositionMasks>(walk(position, taken));
            if (steps) *steps += taken;
            cache_bytes_ += sizeof(detail::PositionMasks) + walked->accepted.capacity() * sizeof(std::int32_t) +
                            walked->accepted_bits.words().size() * sizeof(std::uint64_t) +
                            walked->exits.capacity() * sizeof(walked->exits[0]);
            storage_.push_back(std::move(walked));
            m = storage_.back().get();
            cache_[std::size_t(position)].store(m, std::memory_order_release);
        }
        return *m;
    }
    // Computes every position's cache now instead of on first use (for even per-token times).
    void precompute() const {
        for (std::size_t p = 0; p < grammar_.elements().size(); ++p)
            if (grammar_.at(std::int32_t(p)).kind == Grammar::Kind::bytes) masks(std::int32_t(p));
    }

private:
    static bool contains(const ByteSet& outer, const ByteSet& inner) {
        for (std::size_t i = 0; i < 4; ++i)
            if (inner.bits[i] & ~outer.bits[i]) return false;
        return true;
    }
    static ByteSet ascii_part(ByteSet set) {
        set.bits[2] = set.bits[3] = 0;
        return set;
    }
    [[noreturn]] static void fail_null() { detail::fail(ErrorCode::invalid_argument, "TokenGrammar: no vocabulary"); }
    [[noreturn]] void fail_memory() const {
        detail::fail(ErrorCode::invalid_argument, "grammar: its token caches need more than ", limits_.max_cache_bytes >> 20,
                     " MB (GrammarLimits::max_cache_bytes): too many alternatives are open at once");
    }

    detail::PositionMasks walk(std::int32_t position, std::uint64_t& steps) const {
        const auto& nodes = vocabulary_->nodes();
        detail::PositionMasks out;
        // ids while few, a bitmask once many (the ids of a vocabulary walk are not in order)
        const std::size_t many = vocabulary_->vocab_size() / 32;
        TokenBitmask& bits = out.accepted_bits;
        auto accept = [&](std::int32_t id) {
            if (bits.size()) return bits.set(id);
            out.accepted.push_back(id);
            if (out.accepted.size() > many) {
                bits.resize(vocabulary_->vocab_size());
                for (std::int32_t a : out.accepted) bits.set(a);
                out.accepted = {};
            }
        };
        struct Frame {
            std::int32_t node, state, child;
        };
        const std::int32_t start = walker_.enter(position, detail::StackPool::marker(grammar_.rule_of(position), 0));
        std::vector<Frame> path{{0, start, 1}};
        while (!path.empty()) {
            Frame& f = path.back();
            if (f.child >= nodes[std::size_t(f.node)].end) {
                path.pop_back();
                continue;
            }
            const std::int32_t c = f.child;
            const TokenTrie::Node& child = nodes[std::size_t(c)];
            f.child = child.end;
            ++steps;
            const std::int32_t next = walker_.next(f.state, child.byte);
            if (next == detail::StateTable::kDead) continue;
            for (std::int32_t id : vocabulary_->tokens(child)) accept(id);
            const bool has_children = child.end > c + 1;
            if (!has_children) continue;
            const detail::ParseState& s = walker_[next];
            for (std::int8_t depth : s.exits) out.exits.emplace_back(c, depth);
            if (s.stacks.empty()) continue;
            // a state that reads every character below this node, as many as any token has: every
            // token below is accepted (inside a JSON string, most of the vocabulary)
            // (the first child's byte tells cheaply whether the state can read on at all)
            const ByteSet* below = vocabulary_->bytes_below(c);
            if (below && walker_.next(next, nodes[std::size_t(c) + 1].byte) != detail::StateTable::kDead) {
                const ByteSet ascii = ascii_part(*below);
                const bool unicode = !(ascii == *below);
                const std::int32_t need = vocabulary_->depth_below(c);
                if ((!unicode || vocabulary_->utf8_below(c)) && walker_.reads_run(next, ascii, unicode, need)) {
                    for (std::int32_t id : vocabulary_->tokens_below(child)) accept(id);
                    continue;
                }
            }
            path.push_back(Frame{c, next, c + 1});
        }
        std::stable_sort(out.exits.begin(), out.exits.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
        std::sort(out.accepted.begin(), out.accepted.end());
        return out;
    }

    Grammar grammar_;
    std::shared_ptr<const TokenTrie> vocabulary_;
    std::vector<TokenId> end_tokens_;
    std::vector<TokenId> token_ids_;
    GrammarLimits limits_;
    mutable std::vector<std::atomic<const detail::PositionMasks*>> cache_;
    mutable std::vector<std::unique_ptr<detail::PositionMasks>> storage_;
    mutable std::size_t cache_bytes_ = 0;  // storage_'s
    mutable std::mutex mutex_;
    mutable detail::StateTable walker_;  // marker walks only, under mutex_
};

// One output's progress through a TokenGrammar: the allowed tokens each step, then the token
// chosen. Not thread-safe (one per sequence); many matchers may share one TokenGrammar.
class GrammarMatcher {
public:
    explicit GrammarMatcher(std::shared_ptr<const TokenGrammar> grammar) : grammar_(std::move(grammar)), table_(grammar_->grammar()) { reset(); }

    void reset() {
        state_ = table_.start();
        finished_ = false;
    }

    // The tokens allowed next, into `allowed` (resized to the vocabulary). Throws
    // Error(invalid_argument) if none is (a grammar no token of this vocabulary can continue), and
    // when the grammar's limits() are passed (then the matcher is left as it was).
    void fill_mask(TokenBitmask& allowed) {
        const TokenTrie& vocab = grammar_->vocabulary();
        if (allowed.size() != vocab.vocab_size()) allowed.resize(vocab.vocab_size());
        else allowed.clear();
        if (finished_ || state_ == detail::StateTable::kDead) return;
        const detail::ParseState state = table_[state_];  // a copy: walks below intern more states
        seen_.clear();
        std::uint64_t steps = 0;
        const GrammarLimits& limits = grammar_->limits();
        auto check = [&] {
            if (steps > limits.max_mask_steps)
                detail::fail(ErrorCode::invalid_argument, "grammar: one token mask needs more than ", limits.max_mask_steps,
                             " vocabulary steps (GrammarLimits::max_mask_steps): too many alternatives are open at once");
            if (table_.memory_bytes() > limits.max_cache_bytes)
                detail::fail(ErrorCode::invalid_argument, "grammar: an output's parse states need more than ", limits.max_cache_bytes >> 20,
                             " MB (GrammarLimits::max_cache_bytes): too many alternatives are open at once");
        };
        for (std::int32_t stack : state.stacks) {
            const detail::StackPool::Node top = table_.pool()[stack];
            const Grammar::Element& element = grammar_->grammar().at(top.position);
            if (element.kind == Grammar::Kind::token) {
                allowed.set(grammar_->token_id(element.value));
                continue;
            }
            const detail::PositionMasks& m = grammar_->masks(top.position, &steps);
            check();
            if (std::find(seen_.begin(), seen_.end(), top.position) == seen_.end()) {
                seen_.push_back(top.position);
                if (m.accepted_bits.size()) allowed.merge(m.accepted_bits);
                for (std::int32_t id : m.accepted) allowed.set(id);
            }
            std::int32_t depth_done = -1, from = detail::StateTable::kDead;
            for (auto [node, depth] : m.exits) {
                if (depth != depth_done) {
                    std::int32_t parent = top.parent;
                    for (int d = 0; d < depth; ++d) parent = table_.pool()[parent].parent;
                    from = table_.leave_to(parent);
                    depth_done = depth;
                }
                if (from != detail::StateTable::kDead) steps += walk_below(node, from, allowed);
                check();
            }
        }
        if (table_[state_].complete)
            for (TokenId id : grammar_->end_tokens()) allowed.set(id);
        if (allowed.count() == 0)
            detail::fail(ErrorCode::invalid_argument, "grammar: no token of the vocabulary can continue the output here");
    }

    // Moves past `id`. False (state unchanged) if it is not allowed; an end token is allowed when
    // the output is complete, and finishes the matcher.
    bool accept_token(TokenId id) {
        if (finished_ || state_ == detail::StateTable::kDead) return false;
        std::int32_t by_reference = detail::StateTable::kDead;
        grammar_->for_each_reference(id, [&](std::int32_t index) {
            if (by_reference == detail::StateTable::kDead) by_reference = table_.next_token(state_, index);
        });
        if (by_reference != detail::StateTable::kDead) {  // the grammar names this token here
            state_ = by_reference;
            return true;
        }
        if (grammar_->is_end_token(id)) {
            if (!complete()) return false;
            finished_ = true;
            return true;
        }
        const std::string_view bytes = grammar_->vocabulary().bytes(id);
        return !bytes.empty() && accept_bytes(bytes);
    }
    // Moves past raw bytes (e.g. a forced prefix). False (state unchanged) if they do not fit.
    bool accept_bytes(std::string_view bytes) {
        std::int32_t s = state_;
        for (unsigned char b : bytes) {
            if (s == detail::StateTable::kDead || table_[s].stacks.empty()) return false;
            s = table_.next(s, b);
        }
        if (s == detail::StateTable::kDead) return false;
        state_ = s;
        return true;
    }

    // The output so far is a whole sentence (an end token is allowed).
    bool complete() const { return state_ != detail::StateTable::kDead && table_[state_].complete; }
    // Some token other than an end token can follow.
    bool can_continue() const { return !finished_ && state_ != detail::StateTable::kDead && !table_[state_].stacks.empty(); }
    // An end token was accepted.
    bool finished() const { return finished_; }
    const TokenGrammar& grammar() const { return *grammar_; }

private:
    // Marks the tokens under trie node `node` (not the node's own) whose remaining bytes `from`
    // reads; returns the trie steps taken.
    std::uint64_t walk_below(std::int32_t node, std::int32_t from, TokenBitmask& allowed) {
        const auto& nodes = grammar_->vocabulary().nodes();
        std::uint64_t steps = 0;
        walk_.assign(1, WalkFrame{node, from, node + 1});
        while (!walk_.empty()) {
            WalkFrame& f = walk_.back();
            if (f.child >= nodes[std::size_t(f.node)].end) {
                walk_.pop_back();
                continue;
            }
            const std::int32_t c = f.child;
            const TokenTrie::Node& child = nodes[std::size_t(c)];
            f.child = child.end;
            if (table_[f.state].stacks.empty()) continue;
            ++steps;
            const std::int32_t next = table_.next(f.state, child.byte);
            if (next == detail::StateTable::kDead) continue;
            for (std::int32_t id : grammar_->vocabulary().tokens(child)) allowed.set(id);
            if (child.end > c + 1 && !table_[next].stacks.empty()) walk_.push_back(WalkFrame{c, next, c + 1});
        }
        return steps;
    }
    struct WalkFrame {
        std::int32_t node, state, child;
    };

    std::shared_ptr<const TokenGrammar> grammar_;
    detail::StateTable table_;
    std::int32_t state_ = detail::StateTable::kDead;
    bool finished_ = false;
    std::vector<std::int32_t> seen_;
    std::vector<WalkFrame> walk_;
};

}  // namespace qwen3
