// qwen3/grammar/recognizer.hpp - running a Grammar over bytes: parse stacks, and a recognizer.
//
// Use: GrammarRecognizer r(grammar); r.accept("{\"a\": 1"); r.complete();
// Not its job: tokens and masks (token_mask.hpp builds on the pieces here).
//
// The parser is top-down over every alternative at once: its state is the set of parse stacks
// whose top is a byte (or whole-token) element, each stack a chain of frames (position, parent) interned in a pool,
// so stacks share their bottoms and a state is a sorted list of ids. Reading a byte keeps the
// stacks whose top accepts it, moves each to its next element and expands rules until every top
// is a byte element again (the closure). A reference that ends its alternative replaces its frame
// instead of stacking one (a tail call), so repetition runs in constant stack depth.
//
// Frames whose parent is unknown (negative "markers") let token_mask.hpp run a position with no
// real stack beneath it: leaving such a frame continues where the grammar says every use of that
// rule continues, or is reported as an exit at that depth for the real stack to decide.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../error.hpp"
#include "grammar.hpp"

namespace qwen3 {
namespace detail {

class StackPool {
public:
    struct Node {
        std::int32_t position;  // a byte element (the top), or the continuation in a parent frame
        std::int32_t parent;    // a node, kBottom, or a marker
    };
    static constexpr std::int32_t kBottom = -1;      // below the root frame
    static constexpr std::int32_t kMaxDepth = 64;    // frames a marker chain follows before exiting
    // A frame of `rule` with no known parent, `depth` frames above the stack the walk started from.
    static std::int32_t marker(std::int32_t rule, std::int32_t depth) { return -2 - (rule * kMaxDepth + depth); }
    static bool is_marker(std::int32_t parent) { return parent <= -2; }
    static std::int32_t marker_rule(std::int32_t m) { return (-2 - m) / kMaxDepth; }
    static std::int32_t marker_depth(std::int32_t m) { return (-2 - m) % kMaxDepth; }

    std::int32_t intern(std::int32_t position, std::int32_t parent) {
        const std::uint64_t key = (std::uint64_t(std::uint32_t(position)) << 32) | std::uint32_t(parent);
        auto [it, inserted] = ids_.try_emplace(key, std::int32_t(nodes_.size()));
        if (inserted) nodes_.push_back(Node{position, parent});
        return it->second;
    }
    const Node& operator[](std::int32_t id) const { return nodes_[std::size_t(id)]; }
    std::size_t size() const { return nodes_.size(); }
    // Roughly the bytes held (a node and its hash entry).
    std::size_t memory_bytes() const { return nodes_.size() * (sizeof(Node) + 40); }

private:
    std::vector<Node> nodes_;
    std::unordered_map<std::uint64_t, std::int32_t> ids_;
};

// A parser state: stacks whose top is a byte element, and whether the parse can end here.
// `exits` (marker walks only): depths at which a frame with several possible continuations ended.
struct ParseState {
    std::vector<std::int32_t> stacks;  // sorted, unique
    bool complete = false;
    std::vector<std::int8_t> exits;  // sorted, unique
    bool alive() const { return !stacks.empty() || complete || !exits.empty(); }
};

// Computes closures over one pool.
class Expander {
public:
    static constexpr std::size_t kMaxStacks = 20000;

    Expander(const Grammar& grammar, StackPool& pool) : grammar_(&grammar), pool_(&pool) {}

    // The state after reading the grammar's token `token_index` (a whole token, not bytes).
    void step_token(const ParseState& from, std::int32_t token_index, ParseState& out) {
        begin(out);
        for (std::int32_t s : from.stacks) {
            const StackPool::Node n = (*pool_)[s];
            if (grammar_->accepts_token(n.position, token_index)) expand(n.position + 1, n.parent, out);
        }
        finish(out);
    }
    // The state before any byte: the root rule entered.
    void start(ParseState& out) {
        begin(out);
        for (std::int32_t alternative : grammar_->rules()[std::size_t(grammar_->root())].alternatives)
            expand(alternative, StackPool::kBottom, out);
        finish(out);
    }
    // The state after the frame (position, parent) is entered.
    void enter(std::int32_t position, std::int32_t parent, ParseState& out) {
        begin(out);
        expand(position, parent, out);
        finish(out);
    }
    // The state after popping into `parent` (the rest of the parse once a frame ended).
    void leave_to(std::int32_t parent, ParseState& out) {
        begin(out);
        pop(parent, out);
        drain(out);
        finish(out);
    }
    // The state after reading byte b in `from` (only its stacks read bytes).
    void step(const ParseState& from, std::uint8_t b, ParseState& out) {
        begin(out);
        for (std::int32_t s : from.stacks) {
            const StackPool::Node n = (*pool_)[s];
            if (grammar_->accepts_byte(n.position, b)) expand(n.position + 1, n.parent, out);
        }
        finish(out);
    }

private:
    void begin(ParseState& out) {
        out.stacks.clear();
        out.exits.clear();
        out.complete = false;
        visited_few_.clear();
        if (!visited_.empty()) visited_.clear();
    }
    // First visit of a frame in this closure? (most closures visit a handful: a list before a set)
    bool visit(std::uint64_t key) {
        if (visited_.empty()) {
            if (std::find(visited_few_.begin(), visited_few_.end(), key) != visited_few_.end()) return false;
            if (visited_few_.size() < 32) {
                visited_few_.push_back(key);
                return true;
            }
            visited_.insert(visited_few_.begin(), visited_few_.end());
        }
        return visited_.insert(key).second;
    }
    void finish(ParseState& out) {
        std::sort(out.stacks.begin(), out.stacks.end());
        out.stacks.erase(std::unique(out.stacks.begin(), out.stacks.end()), out.stacks.end());
        std::sort(out.exits.begin(), out.exits.end());
        out.exits.erase(std::unique(out.exits.begin(), out.exits.end()), out.exits.end());
    }

    // Every stack reachable from the frame (position, parent) by entering rules and leaving ended
    // frames, without reading anything. A work list, not recursion: rule chains may be deep.
    void expand(std::int32_t position, std::int32_t parent, ParseState& out) {
        work_.emplace_back(position, parent);
        drain(out);
    }
    void drain(ParseState& out) {
        while (!work_.empty()) {
            const auto [position, parent] = work_.back();
            work_.pop_back();
            const std::uint64_t key = (std::uint64_t(std::uint32_t(position)) << 32) | std::uint32_t(parent);
            if (!visit(key)) continue;
            if (visited_.size() > kMaxStacks * 4) {
                work_.clear();
                fail(ErrorCode::invalid_argument, "grammar: more than ", kMaxStacks, " parse stacks at once (the grammar is too ambiguous)");
            }
            const Grammar::Element& e = grammar_->at(position);
            switch (e.kind) {
                case Grammar::Kind::bytes:
                case Grammar::Kind::token:
                    out.stacks.push_back(pool_->intern(position, parent));
                    break;
                case Grammar::Kind::end:
                    pop(parent, out);
                    break;
                case Grammar::Kind::rule: {
                    const bool tail = grammar_->at(position + 1).kind == Grammar::Kind::end;
                    const std::int32_t continuation = tail ? parent : pool_->intern(position + 1, parent);
                    for (std::int32_t alternative : grammar_->rules()[std::size_t(e.value)].alternatives) work_.emplace_back(alternative, continuation);
                    break;
                }
            }
        }
    }

    // Leaves a frame into `parent` (queues what follows; drain() expands it).
    void pop(std::int32_t parent, ParseState& out) {
        if (parent == StackPool::kBottom) {
            out.complete = true;
        } else if (!StackPool::is_marker(parent)) {
            const StackPool::Node n = (*pool_)[parent];
            work_.emplace_back(n.position, n.parent);
        } else {
            const std::int32_t rule = StackPool::marker_rule(parent), depth = StackPool::marker_depth(parent);
            const std::int32_t next = grammar_->continuation(rule);
            if (next == Grammar::kParseEnd) out.complete = true;
            else if (next >= 0 && depth + 1 < StackPool::kMaxDepth) work_.emplace_back(next, StackPool::marker(grammar_->rule_of(next), depth + 1));
            else out.exits.push_back(std::int8_t(depth));
        }
    }

    const Grammar* grammar_;
    StackPool* pool_;
    std::vector<std::pair<std::int32_t, std::int32_t>> work_;
    std::vector<std::uint64_t> visited_few_;
    std::unordered_set<std::uint64_t> visited_;
};

// Interned states with memoized byte transitions (each distinct state's closure is computed once).
class StateTable {
public:
    static constexpr std::int32_t kDead = -1;

    explicit StateTable(const Grammar& grammar) : grammar_(&grammar), expander_(grammar, pool_) {}
    // Copies keep their own pool (the expander points into it).
    StateTable(const StateTable& other)
        : grammar_(other.grammar_), pool_(other.pool_), expander_(*other.grammar_, pool_), states_(other.states_),
          character_successors_(other.character_successors_), representatives_(other.representatives_), representatives_ready_(other.representatives_ready_), row_of_(other.row_of_), transitions_(other.transitions_), ids_(other.ids_),
          state_bytes_(other.state_bytes_) {}
    StateTable& operator=(const StateTable&) = delete;

    StackPool& pool() { return pool_; }
    const ParseState& operator[](std::int32_t id) const { return states_[std::size_t(id)]; }
    std::size_t size() const { return states_.size(); }

    std::int32_t intern(const ParseState& s) {
        if (!s.alive()) return kDead;
        auto [it, inserted] = ids_.try_emplace(key(s), std::int32_t(states_.size()));
        if (inserted) {
            states_.push_back(s);
            row_of_.push_back(-1);
            // the state twice (its key and its copy) and its entries
            state_bytes_ += 2 * (s.stacks.size() * sizeof(std::int32_t) + s.exits.size()) + sizeof(ParseState) + 96;
        }
        return it->second;
    }
    // Roughly the bytes the table holds: its states, transitions and stacks.
    std::size_t memory_bytes() const {
        return state_bytes_ + transitions_.size() * sizeof(std::int32_t) + pool_.memory_bytes() + character_successors_.size() * sizeof(std::int32_t);
    }
    // The state after the grammar's token `token_index` (not memoized: such tokens are rare).
    std::int32_t next_token(std::int32_t state, std::int32_t token_index) {
        expander_.step_token(states_[std::size_t(state)], token_index, scratch_);
        return intern(scratch_);
    }
    std::int32_t start() {
        expander_.start(scratch_);
        return intern(scratch_);
    }
    std::int32_t enter(std::int32_t position, std::int32_t parent) {
        expander_.enter(position, parent, scratch_);
        return intern(scratch_);
    }
    std::int32_t leave_to(std::int32_t parent) {
        expander_.leave_to(parent, scratch_);
        return intern(scratch_);
    }
    // Whether `state` reads every string of up to `length` characters, each an ASCII byte of
    // `ascii` or, if `unicode`, any non-ASCII character (a valid UTF-8 sequence), each character
    // into one next state: a JSON string's characters (under maxLength, each step the next copy).
    bool reads_run(std::int32_t state, const ByteSet& ascii, bool unicode, std::int32_t length) {
        std::array<std::uint8_t, 128> bytes;  // one byte of each byte class in `ascii`
        std::size_t count = 0;
        ByteSet classes;
        for (std::size_t w = 0; w < 2; ++w)
            for (std::uint64_t bits = ascii.bits[w]; bits; bits &= bits - 1) {
                const auto b = std::uint8_t(w * 64 + std::size_t(std::countr_zero(bits)));
                const std::uint8_t c = grammar_->byte_class(b);
                if (!classes.has(c)) classes.add(c, c), bytes[count++] = b;
            }
        for (std::int32_t s = state, i = 0; i < length; ++i) {
            if (states_[std::size_t(s)].stacks.empty()) return false;
            const std::int32_t to = count ? next(s, bytes[0]) : character_successor(s);
            if (to == kDead) return false;
            for (std::size_t k = 1; k < count; ++k)
                if (next(s, bytes[k]) != to) return false;
            if (unicode && character_successor(s) != to) return false;
            if (to == s) return true;  // reads them back into itself: any number
            s = to;
        }
        return true;
    }
    // The state after byte b, kDead if no stack accepts it.
    std::int32_t next(std::int32_t state, std::uint8_t b) {
        const std::int32_t row = row_of_[std::size_t(state)];
        if (row >= 0) {  // the common case in a vocabulary walk: a transition seen before
            const std::int32_t known = transitions_[std::size_t(row) + grammar_->byte_class(b)];
            if (known != kUnknown) return known;
        }
        return compute_next(state, b);
    }

private:
    static constexpr std::int32_t kUnknown = -2;
    // The state every non-ASCII character (each valid UTF-8 sequence) leads to from `state`: kDead
    // if one dies or they lead to different states (computed once per state).
    std::int32_t character_successor(std::int32_t state) {
        if (character_successors_.size() < states_.size()) character_successors_.resize(states_.size(), kUnknown);
        if (character_successors_[std::size_t(state)] == kUnknown) {
            const std::int32_t to = every_character_leads(state);
            if (character_successors_.size() < states_.size()) character_successors_.resize(states_.size(), kUnknown);
            character_successors_[std::size_t(state)] = to;
        }
        return character_successors_[std::size_t(state)];
    }
    // The first byte of b's byte class (bytes of a class step alike in every state).
    int representative(std::uint8_t b) {
        if (!representatives_ready_) {
            representatives_.fill(-1);
            for (int x = 0; x < 256; ++x) {
                int& r = representatives_[grammar_->byte_class(std::uint8_t(x))];
                if (r < 0) r = x;
            }
            representatives_ready_ = true;
        }
        return representatives_[grammar_->byte_class(b)];
    }
    // character_successor() computed: one byte per class and UTF-8 byte range is tried.
    std::int32_t every_character_leads(std::int32_t state) {
        struct Range {
            std::uint8_t lo, hi;
        };
        constexpr Range kTail{0x80, 0xBF};
        // lead bytes with the range of the byte after them and the number of bytes after them
        constexpr struct {
            Range lead, second;
            int tail;
        } kForms[] = {{{0xC2, 0xDF}, kTail, 1}, {{0xE0, 0xE0}, {0xA0, 0xBF}, 2}, {{0xE1, 0xEC}, kTail, 2}, {{0xED, 0xED}, {0x80, 0x9F}, 2},
                      {{0xEE, 0xEF}, kTail, 2}, {{0xF0, 0xF0}, {0x90, 0xBF}, 3}, {{0xF1, 0xF3}, kTail, 3}, {{0xF4, 0xF4}, {0x80, 0x8F}, 3}};
        // the state after any byte of `range` from each of `from`, or false if one dies
        auto step = [&](const std::vector<std::int32_t>& from, Range range, std::vector<std::int32_t>& out) {
            out.clear();
            for (std::int32_t s : from)
                for (int b = range.lo; b <= range.hi; ++b) {
                    const int r = representative(std::uint8_t(b));
                    if (r != b && r >= range.lo) continue;  // an earlier byte of this range has the class
                    if (states_[std::size_t(s)].stacks.empty()) return false;
                    const std::int32_t n = next(s, std::uint8_t(b));
                    if (n == kDead) return false;
                    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
                }
            return true;
        };
        std::vector<std::int32_t> at, after;
        std::int32_t target = kDead;
        for (const auto& form : kForms) {
            at.assign(1, state);
            if (!step(at, form.lead, after)) return kDead;
            at.swap(after);
            for (int i = 0; i < form.tail; ++i) {
                if (!step(at, i == 0 ? form.second : kTail, after)) return kDead;
                at.swap(after);
            }
            if (target == kDead) target = at[0];
            if (at.size() != 1 || at[0] != target) return kDead;
        }
        return target;
    }
    std::int32_t compute_next(std::int32_t state, std::uint8_t b) {
        std::int32_t row = row_of_[std::size_t(state)];
        if (row < 0) {
            row = row_of_[std::size_t(state)] = std::int32_t(transitions_.size());
            transitions_.resize(transitions_.size() + std::size_t(grammar_->byte_classes()), kUnknown);
        }
        expander_.step(states_[std::size_t(state)], b, scratch_);
        const std::int32_t id = intern(scratch_);
        transitions_[std::size_t(row) + grammar_->byte_class(b)] = id;
        return id;
    }
    static std::string key(const ParseState& s) {
        std::string k;
        k.reserve(s.stacks.size() * 4 + s.exits.size() + 2);
        k.push_back(char(s.complete));
        k.append(reinterpret_cast<const char*>(s.stacks.data()), s.stacks.size() * sizeof(std::int32_t));
        k.push_back('|');
        k.append(reinterpret_cast<const char*>(s.exits.data()), s.exits.size());
        return k;
    }

    const Grammar* grammar_;
    StackPool pool_;
    Expander expander_;
    ParseState scratch_;
    std::vector<ParseState> states_;
    std::vector<std::int32_t> character_successors_;  // per state, kUnknown before computed
    std::array<int, 256> representatives_{};
    bool representatives_ready_ = false;
    std::vector<std::int32_t> row_of_;       // per state: where its row of transitions starts, -1 before the first step
    std::vector<std::int32_t> transitions_;  // a row per state, one entry per byte class: next state, kDead or kUnknown
    std::unordered_map<std::string, std::int32_t> ids_;
    std::size_t state_bytes_ = 0;
};

}  // namespace detail

// Checks text against a grammar byte by byte: whether it is a prefix of a sentence, and whether
// it is a whole one. Not thread-safe; the grammar must outlive it.
class GrammarRecognizer {
public:
    explicit GrammarRecognizer(const Grammar& grammar) : grammar_(&grammar), pool_(), expander_(grammar, pool_) { reset(); }
    GrammarRecognizer(const GrammarRecognizer&) = delete;  // the expander points into the pool
    GrammarRecognizer& operator=(const GrammarRecognizer&) = delete;

    // Back to the empty input.
    void reset() { expander_.start(state_); }

    // Reads `bytes`; false (and the state unchanged) if they do not continue a sentence prefix.
    bool accept(std::string_view bytes) {
        detail::ParseState s;
        if (!run(bytes, s)) return false;
        state_ = std::move(s);
        return true;
    }
    // Reads the grammar's token named `name` (as in grammar.tokens()); false (unchanged) if it does
    // not fit here.
    bool accept_token(std::string_view name) {
        const auto& names = grammar_->tokens();
        const auto it = std::find(names.begin(), names.end(), name);
        if (it == names.end()) return false;
        expander_.step_token(state_, std::int32_t(it - names.begin()), scratch_);
        if (scratch_.stacks.empty() && !scratch_.complete) return false;
        std::swap(state_, scratch_);
        return true;
    }
    // Whether accept(bytes) would succeed, without moving.
    bool would_accept(std::string_view bytes) { return run(bytes, trial_); }
    // The input read so far is a whole sentence.
    bool complete() const { return state_.complete; }
    // Some byte can still follow.
    bool can_continue() const { return !state_.stacks.empty(); }

private:
    bool run(std::string_view bytes, detail::ParseState& s) {
        s = state_;
        for (unsigned char b : bytes) {
            expander_.step(s, b, scratch_);
            if (scratch_.stacks.empty() && !scratch_.complete) return false;
            std::swap(s, scratch_);
        }
        return true;
    }

    const Grammar* grammar_;
    detail::StackPool pool_;
    detail::Expander expander_;
    detail::ParseState state_, scratch_, trial_;
};

}  // namespace qwen3
