// qwen3/grammar/grammar.hpp - a context-free grammar over bytes, the form every constraint takes.
//
// Use: Grammar g = Grammar::from_gbnf(text) (grammar/gbnf.hpp), or grammar_from_json_schema()
// (grammar/json_schema.hpp); then a GrammarRecognizer or a GrammarMatcher runs it.
// Not its job: reading grammar text (gbnf.hpp) or tokens (token_mask.hpp).
//
// A rule is a list of alternatives, an alternative a sequence of elements, an element either a set
// of bytes, a reference to a rule, or one whole token named by the grammar (control tokens such as
// <tool_call> are not text). Text grammars speak of Unicode code points; the builder turns
// each character class into the UTF-8 byte sequences of its code points, so that a model's tokens,
// which may end inside a character, are checked byte by byte and exactly.
//
// The flat layout: every alternative is a run of elements ending in an `end` element, so a parse
// position is one index and "the next element" is the next index.
//
// Three things are decided here for the matcher's sake:
// - Left recursion is rejected (the parser is top-down: it would expand forever).
// - Small rules that do not recurse (a character class, `ws`, a JSON string's character) are
//   copied into each place that uses them, so that leaving one continues at a known place.
// - For each rule, the one position where every use of it continues, when there is one: the
//   token-mask caches (token_mask.hpp) follow such rules outward and stop only at rules with
//   several continuations, where the real parse stack must decide.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../error.hpp"

namespace qwen3 {

// A set of bytes.
struct ByteSet {
    std::array<std::uint64_t, 4> bits{};

    bool has(std::uint8_t b) const noexcept { return (bits[b >> 6] >> (b & 63)) & 1; }
    void add(std::uint8_t lo, std::uint8_t hi) noexcept {
        for (int b = lo; b <= hi; ++b) bits[b >> 6] |= std::uint64_t(1) << (b & 63);
    }
    bool empty() const noexcept { return !(bits[0] | bits[1] | bits[2] | bits[3]); }
    friend bool operator==(const ByteSet&, const ByteSet&) = default;
    friend auto operator<=>(const ByteSet&, const ByteSet&) = default;
};

class GrammarBuilder;

class Grammar {
public:
    enum class Kind : std::uint8_t { bytes, rule, end, token };
    struct Element {
        Kind kind;
        std::int32_t value;  // bytes: index into byte_sets(); rule: rule index; end: the rule it ends;
                             // token: index into tokens()
    };
    struct Rule {
        std::string name;                       // as written (copies of a small rule share its name)
        std::vector<std::int32_t> alternatives;  // position of each alternative's first element
    };
    // continuation(rule) when a rule's uses continue at different places (or nowhere: unused)
    static constexpr std::int32_t kSeveral = -2;
    // continuation(rule) of the root rule: leaving it completes the parse
    static constexpr std::int32_t kParseEnd = -1;

    // Parses llama.cpp's GBNF text (grammar/gbnf.hpp). Throws Error(invalid_argument) naming the
    // line and column of a syntax error, an undefined rule, a missing root or left recursion.
    static Grammar from_gbnf(std::string_view text, std::string_view root = "root");

    std::int32_t root() const noexcept { return root_; }
    const std::vector<Element>& elements() const noexcept { return elements_; }
    const std::vector<Rule>& rules() const noexcept { return rules_; }
    const std::vector<ByteSet>& byte_sets() const noexcept { return byte_sets_; }
    // The whole tokens the grammar names (`<think>`, `<[151667]>`): a token's text, or "[id]".
    // Control tokens are not text, so a grammar that wants one must name it.
    const std::vector<std::string>& tokens() const noexcept { return tokens_; }
    const Element& at(std::int32_t position) const { return elements_[std::size_t(position)]; }
    std::int32_t rule_of(std::int32_t position) const { return rule_of_[std::size_t(position)]; }
    // Where the parse continues after a frame of `rule` ends, when that is the same for every use:
    // a position, kParseEnd (the root), or kSeveral.
    std::int32_t continuation(std::int32_t rule) const { return continuation_[std::size_t(rule)]; }
    // Bytes no element of the grammar tells apart share a class (a parser state reads them alike),
    // so transition tables need one column per class, not 256.
    std::uint8_t byte_class(std::uint8_t b) const noexcept { return byte_class_[b]; }
    int byte_classes() const noexcept { return byte_classes_; }
    bool accepts_byte(std::int32_t position, std::uint8_t b) const {
        const Element& e = at(position);
        return e.kind == Kind::bytes && byte_sets_[std::size_t(e.value)].has(b);
    }
    bool accepts_token(std::int32_t position, std::int32_t token_index) const {
        const Element& e = at(position);
        return e.kind == Kind::token && e.value == token_index;
    }

private:
    friend class GrammarBuilder;
    std::int32_t root_ = 0;
    std::vector<Element> elements_;
    std::vector<Rule> rules_;
    std::vector<ByteSet> byte_sets_;
    std::vector<std::string> tokens_;
    std::vector<std::int32_t> rule_of_;
    std::vector<std::int32_t> continuation_;
    std::array<std::uint8_t, 256> byte_class_{};
    int byte_classes_ = 1;
};

// Code point ranges [first, last], the form character classes take before they become bytes.
using CodePointRanges = std::vector<std::pair<char32_t, char32_t>>;

namespace detail {

inline constexpr char32_t kMaxCodePoint = 0x10FFFF;

// The complement of `ranges` among the Unicode scalar values (surrogates excluded).
inline CodePointRanges complement_code_points(CodePointRanges ranges) {
    std::sort(ranges.begin(), ranges.end());
    CodePointRanges out;
    char32_t next = 0;
    auto keep = [&](char32_t lo, char32_t hi) {  // [lo, hi] minus the surrogates
        if (lo > hi) return;
        if (hi < 0xD800 || lo > 0xDFFF) out.emplace_back(lo, hi);
        else {
            if (lo < 0xD800) out.emplace_back(lo, 0xD7FF);
            if (hi > 0xDFFF) out.emplace_back(0xE000, hi);
        }
    };
    for (auto [lo, hi] : ranges) {
        if (lo > next) keep(next, lo - 1);
        if (hi >= next) next = hi + 1;
        if (next > kMaxCodePoint) return out;
    }
    keep(next, kMaxCodePoint);
    return out;
}

inline int utf8_length(char32_t c) { return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4; }

inline std::array<std::uint8_t, 4> utf8_bytes(char32_t c) {
    const int n = utf8_length(c);
    std::array<std::uint8_t, 4> b{};
    if (n == 1) b[0] = std::uint8_t(c);
    for (int i = n - 1; i > 0; --i, c >>= 6) b[std::size_t(i)] = std::uint8_t(0x80 | (c & 0x3F));
    if (n == 2) b[0] = std::uint8_t(0xC0 | c);
    if (n == 3) b[0] = std::uint8_t(0xE0 | c);
    if (n == 4) b[0] = std::uint8_t(0xF0 | c);
    return b;
}

using ByteRangeSequence = std::vector<std::pair<std::uint8_t, std::uint8_t>>;

// The UTF-8 encodings of the code points [lo, hi] (one encoded length, no surrogates inside) as
// sequences of byte ranges: split until, between the encodings of the ends, each byte varies over
// a whole range independently of the others.
inline void utf8_range_sequences(char32_t lo, char32_t hi, std::vector<ByteRangeSequence>& out) {
    const int n = utf8_length(lo);
    for (int i = 1; i < n; ++i) {
        const char32_t low_bits = (char32_t(1) << (6 * i)) - 1;  // the last i continuation bytes
        if ((lo & ~low_bits) != (hi & ~low_bits)) {
            if ((lo & low_bits) != 0) {
                utf8_range_sequences(lo, lo | low_bits, out);
                utf8_range_sequences((lo | low_bits) + 1, hi, out);
                return;
            }
            if ((hi & low_bits) != low_bits) {
                utf8_range_sequences(lo, (hi & ~low_bits) - 1, out);
                utf8_range_sequences(hi & ~low_bits, hi, out);
                return;
            }
        }
    }
    const auto a = utf8_bytes(lo), b = utf8_bytes(hi);
    ByteRangeSequence seq;
    for (int i = 0; i < n; ++i) seq.emplace_back(a[std::size_t(i)], b[std::size_t(i)]);
    out.push_back(std::move(seq));
}

inline std::vector<ByteRangeSequence> utf8_sequences(const CodePointRanges& ranges) {
    std::vector<ByteRangeSequence> out;
    for (auto [lo, hi] : ranges) {
        if (lo > hi) continue;
        hi = std::min(hi, kMaxCodePoint);
        for (char32_t start = lo; start <= hi;) {
            // one encoded length and one side of the surrogates at a time
            char32_t end = hi;
            for (char32_t boundary : {char32_t(0x7F), char32_t(0x7FF), char32_t(0xD7FF), char32_t(0xFFFF)})
                if (start <= boundary && end > boundary) end = boundary;
            if (start >= 0xD800 && start <= 0xDFFF) {  // surrogates have no encoding
                start = std::min<char32_t>(0xE000, hi + 1);
                if (start > hi) break;
                continue;
            }
            utf8_range_sequences(start, end, out);
            start = end + 1;
        }
    }
    return out;
}

}  // namespace detail

// Builds a Grammar rule by rule (the GBNF parser and the JSON Schema converter use it).
class GrammarBuilder {
public:
    using Element = Grammar::Element;
    using Sequence = std::vector<Element>;

    // The rule named `name`, created undefined on first mention; `line` is where it was mentioned
    // (for the error if it is never defined).
    std::int32_t rule(std::string_view name, int line = 0) {
        auto it = by_name_.find(std::string(name));
        if (it != by_name_.end()) return it->second;
        const auto id = std::int32_t(rules_.size());
        rules_.push_back(RuleDef{std::string(name), {}, false, line});
        by_name_.emplace(std::string(name), id);
        return id;
    }
    // A new rule no text can name (a group, a repetition, a character class's byte sequences).
    std::int32_t helper(std::string_view base) {
        const auto id = std::int32_t(rules_.size());
        rules_.push_back(RuleDef{std::string(base), {}, false, 0});
        return id;
    }
    bool defined(std::int32_t rule) const { return rules_[std::size_t(rule)].defined; }
    // Throws Error(invalid_argument) if the rule already has a definition.
    void define(std::int32_t rule, std::vector<Sequence> alternatives, int line = 0) {
        RuleDef& r = rules_[std::size_t(rule)];
        if (r.defined) detail::fail(ErrorCode::invalid_argument, "grammar: line ", line, ": rule '", r.name, "' is defined twice");
        r.alternatives = std::move(alternatives);
        r.defined = true;
        total_elements_ += count(r.alternatives);
        if (total_elements_ > kMaxElements)
            detail::fail(ErrorCode::invalid_argument, "grammar: more than ", kMaxElements, " elements (repetition counts too large?)");
    }

    Element bytes(const ByteSet& set) {
        auto it = byte_set_ids_.find(set);
        if (it == byte_set_ids_.end()) {
            it = byte_set_ids_.emplace(set, std::int32_t(byte_sets_.size())).first;
            byte_sets_.push_back(set);
        }
        return Element{Grammar::Kind::bytes, it->second};
    }
    Element byte(std::uint8_t b) {
        ByteSet s;
        s.add(b, b);
        return bytes(s);
    }
    static Element ref(std::int32_t rule) { return Element{Grammar::Kind::rule, rule}; }
    // One whole token, by its text ("<tool_call>") or id ("[151657]"); resolved against a vocabulary
    // when the grammar is bound to one (TokenGrammar).
    Element token(std::string_view name) {
        auto it = std::find(tokens_.begin(), tokens_.end(), name);
        if (it == tokens_.end()) it = tokens_.insert(tokens_.end(), std::string(name));
        return Element{Grammar::Kind::token, std::int32_t(it - tokens_.begin())};
    }

    // The elements matching one code point of `ranges`: one byte set when all are ASCII, else a
    // reference to a new rule whose alternatives are the UTF-8 byte sequences.
    Element code_points(const CodePointRanges& ranges) {
        const auto sequences = detail::utf8_sequences(ranges);
        ByteSet single;
        std::vector<Sequence> alternatives;
        for (const auto& seq : sequences) {
            if (seq.size() == 1) {
                single.add(seq[0].first, seq[0].second);
                continue;
            }
            Sequence s;
            for (auto [lo, hi] : seq) {
                ByteSet b;
                b.add(lo, hi);
                s.push_back(bytes(b));
            }
            alternatives.push_back(std::move(s));
        }
        if (alternatives.empty() && !single.empty()) return bytes(single);
        if (!single.empty()) alternatives.insert(alternatives.begin(), Sequence{bytes(single)});
        if (alternatives.empty()) detail::fail(ErrorCode::invalid_argument, "grammar: a character class matches no character");
        const std::int32_t h = helper("character class");
        define(h, std::move(alternatives));
        return ref(h);
    }
    // The bytes of a literal, one element per byte.
    void literal(std::string_view utf8, Sequence& out) {
        for (unsigned char c : utf8) out.push_back(byte(c));
    }

    // Checks and lays out the grammar from `root`. Throws Error(invalid_argument) for a missing
    // root, a rule used but never defined (naming where it was used) or left recursion.
    Grammar build(std::string_view root_name);

private:
    struct RuleDef {
        std::string name;
        std::vector<Sequence> alternatives;
        bool defined;
        int line;  // where first mentioned
    };
    static constexpr std::size_t kMaxElements = 1 << 21;
    static std::size_t count(const std::vector<Sequence>& alternatives) {
        std::size_t n = 0;
        for (const auto& a : alternatives) n += a.size() + 1;
        return n;
    }

    std::vector<RuleDef> rules_;
    std::map<std::string, std::int32_t> by_name_;
    std::vector<ByteSet> byte_sets_;
    std::map<ByteSet, std::int32_t> byte_set_ids_;
    std::vector<std::string> tokens_;
    std::size_t total_elements_ = 0;
};

inline Grammar GrammarBuilder::build(std::string_view root_name) {
    auto root_it = by_name_.find(std::string(root_name));
    if (root_it == by_name_.end() || !rules_[std::size_t(root_it->second)].defined)
        detail::fail(ErrorCode::invalid_argument, "grammar: no rule named '", root_name, "' (the start rule)");
    for (const RuleDef& r : rules_)
        if (!r.defined) detail::fail(ErrorCode::invalid_argument, "grammar: line ", r.line, ": rule '", r.name, "' is used but never defined");
    const std::size_t n = rules_.size();

    // Rules on a cycle of references can not be copied; the small others are copied into each use.
    std::vector<int> index(n, -1), low(n, 0), on_cycle(n, 0);
    {  // Tarjan's strongly connected components, iteratively
        std::vector<std::int32_t> stack;
        std::vector<char> on_stack(n, 0);
        int counter = 0;
        for (std::size_t start = 0; start < n; ++start) {
            if (index[start] >= 0) continue;
            std::vector<std::pair<std::int32_t, std::size_t>> work{{std::int32_t(start), 0}};  // (rule, next edge)
            auto edges = [&](std::int32_t r) {
                std::vector<std::int32_t> e;
                for (const auto& a : rules_[std::size_t(r)].alternatives)
                    for (const Element& el : a)
                        if (el.kind == Grammar::Kind::rule) e.push_back(el.value);
                return e;
            };
            std::vector<std::vector<std::int32_t>> pending;
            index[start] = low[start] = counter++;
            stack.push_back(std::int32_t(start));
            on_stack[start] = 1;
            pending.push_back(edges(std::int32_t(start)));
            while (!work.empty()) {
                auto& [r, next] = work.back();
                auto& e = pending.back();
                if (next < e.size()) {
                    const std::int32_t s = e[next++];
                    if (s == r) on_cycle[std::size_t(r)] = 1;
                    if (index[std::size_t(s)] < 0) {
                        index[std::size_t(s)] = low[std::size_t(s)] = counter++;
                        stack.push_back(s);
                        on_stack[std::size_t(s)] = 1;
                        work.emplace_back(s, 0);
                        pending.push_back(edges(s));
                    } else if (on_stack[std::size_t(s)]) {
                        low[std::size_t(r)] = std::min(low[std::size_t(r)], index[std::size_t(s)]);
                    }
                    continue;
                }
                const std::int32_t done = r;
                work.pop_back();
                pending.pop_back();
                if (!work.empty()) low[std::size_t(work.back().first)] = std::min(low[std::size_t(work.back().first)], low[std::size_t(done)]);
                if (low[std::size_t(done)] == index[std::size_t(done)]) {
                    std::vector<std::int32_t> component;
                    for (;;) {
                        const std::int32_t x = stack.back();
                        stack.pop_back();
                        on_stack[std::size_t(x)] = 0;
                        component.push_back(x);
                        if (x == done) break;
                    }
                    if (component.size() > 1)
                        for (std::int32_t x : component) on_cycle[std::size_t(x)] = 1;
                }
            }
        }
    }
    // size of a rule with its copied rules inside; copy when small, acyclic and using only rules
    // that are copied too
    constexpr std::size_t kCopyLimit = 160;
    std::vector<std::size_t> size(n, 0);
    std::vector<char> copy(n, 0), sized(n, 0);
    for (std::size_t start = 0; start < n; ++start) {  // sizes after the rules each uses (post-order, no recursion)
        if (sized[start]) continue;
        std::vector<std::pair<std::size_t, bool>> todo{{start, false}};
        while (!todo.empty()) {
            const auto [r, children_done] = todo.back();
            todo.pop_back();
            if (sized[r]) continue;
            if (!children_done) {
                todo.emplace_back(r, true);
                if (!on_cycle[r])
                    for (const auto& a : rules_[r].alternatives)
                        for (const Element& el : a)
                            if (el.kind == Grammar::Kind::rule && !sized[std::size_t(el.value)]) todo.emplace_back(std::size_t(el.value), false);
                continue;
            }
            sized[r] = 1;
            std::size_t s = count(rules_[r].alternatives);
            bool all_small = !on_cycle[r];
            if (all_small)
                for (const auto& a : rules_[r].alternatives)
                    for (const Element& el : a)
                        if (el.kind == Grammar::Kind::rule) {
                            // a copy would give the shared rules it uses several continuations
                            s = std::min(s + size[std::size_t(el.value)], kCopyLimit + 1);  // saturates: sharing can double it per level
                            all_small = all_small && copy[std::size_t(el.value)];
                        }
            size[r] = s;
            copy[r] = all_small && s <= kCopyLimit;
        }
    }

    Grammar g;
    g.byte_sets_ = byte_sets_;
    g.tokens_ = tokens_;
    std::vector<std::int32_t> laid_out(n, -1);  // shared rules: index in g
    std::vector<std::pair<std::int32_t, std::int32_t>> queue;  // (source rule, grammar rule) to lay out
    auto new_rule = [&](std::int32_t source) {
        const auto id = std::int32_t(g.rules_.size());
        g.rules_.push_back(Grammar::Rule{rules_[std::size_t(source)].name, {}});
        queue.emplace_back(source, id);
        return id;
    };
    auto target = [&](std::int32_t source) {
        if (copy[std::size_t(source)]) return new_rule(source);
        if (laid_out[std::size_t(source)] < 0) laid_out[std::size_t(source)] = new_rule(source);
        return laid_out[std::size_t(source)];
    };
    g.root_ = laid_out[std::size_t(root_it->second)] = new_rule(root_it->second);
    for (std::size_t next = 0; next < queue.size(); ++next) {
        const auto [source, id] = queue[next];
        for (const Sequence& alt : rules_[std::size_t(source)].alternatives) {
            g.rules_[std::size_t(id)].alternatives.push_back(std::int32_t(g.elements_.size()));
            for (const Element& el : alt) {
                Element e = el;
                if (el.kind == Grammar::Kind::rule) e.value = target(el.value);
                g.elements_.push_back(e);
                g.rule_of_.push_back(id);
            }
            g.elements_.push_back(Element{Grammar::Kind::end, id});
            g.rule_of_.push_back(id);
        }
        if (g.elements_.size() > kMaxElements)
            detail::fail(ErrorCode::invalid_argument, "grammar: more than ", kMaxElements, " elements once small rules are copied");
    }

    // Left recursion: a rule reachable from itself through first elements that can match nothing.
    const std::size_t m = g.rules_.size();
    std::vector<char> nullable(m, 0);
    for (bool changed = true; changed;) {
        changed = false;
        for (std::size_t r = 0; r < m; ++r) {
            if (nullable[r]) continue;
            for (std::int32_t p : g.rules_[r].alternatives) {
                bool all = true;
                for (; g.elements_[std::size_t(p)].kind != Grammar::Kind::end; ++p) {
                    const Element& e = g.elements_[std::size_t(p)];
                    if (e.kind != Grammar::Kind::rule || !nullable[std::size_t(e.value)]) {
                        all = false;
                        break;
                    }
                }
                if (all) {
                    nullable[r] = 1;
                    changed = true;
                    break;
                }
            }
        }
    }
    std::vector<std::vector<std::int32_t>> left(m);
    for (std::size_t r = 0; r < m; ++r)
        for (std::int32_t p : g.rules_[r].alternatives)
            for (; g.elements_[std::size_t(p)].kind == Grammar::Kind::rule; ++p) {
                left[r].push_back(g.elements_[std::size_t(p)].value);
                if (!nullable[std::size_t(g.elements_[std::size_t(p)].value)]) break;
            }
    std::vector<char> state(m, 0);  // 0 new, 1 on the path, 2 done
    for (std::size_t start = 0; start < m; ++start) {
        if (state[start]) continue;
        std::vector<std::pair<std::int32_t, std::size_t>> path{{std::int32_t(start), 0}};
        state[start] = 1;
        while (!path.empty()) {
            auto& [r, next] = path.back();
            if (next < left[std::size_t(r)].size()) {
                const std::int32_t s = left[std::size_t(r)][next++];
                if (state[std::size_t(s)] == 1)
                    detail::fail(ErrorCode::invalid_argument, "grammar: rule '", g.rules_[std::size_t(s)].name,
                                 "' is left-recursive (it can reach itself before matching any character); rewrite it with repetition");
                if (state[std::size_t(s)] == 0) {
                    state[std::size_t(s)] = 1;
                    path.emplace_back(s, 0);
                }
                continue;
            }
            state[std::size_t(r)] = 2;
            path.pop_back();
        }
    }

    // Continuations: a use of R at position q continues at q + 1, or, when q is the last element
    // of its alternative (a tail call: the frame is replaced, not stacked), wherever its own rule's
    // frame continues.
    constexpr std::int32_t kUnknown = -3;
    g.continuation_.assign(m, kUnknown);
    g.continuation_[std::size_t(g.root_)] = Grammar::kParseEnd;
    auto join = [](std::int32_t a, std::int32_t b) {
        if (a == kUnknown) return b;
        if (b == kUnknown || a == b) return a;
        return Grammar::kSeveral;
    };
    for (bool changed = true; changed;) {
        changed = false;
        for (std::size_t q = 0; q < g.elements_.size(); ++q) {
            const Element& e = g.elements_[q];
            if (e.kind != Grammar::Kind::rule) continue;
            const bool tail = g.elements_[q + 1].kind == Grammar::Kind::end;
            const std::int32_t from = tail ? g.continuation_[std::size_t(g.rule_of_[q])] : std::int32_t(q + 1);
            if (from == kUnknown) continue;
            const std::int32_t joined = join(g.continuation_[std::size_t(e.value)], from);
            if (joined != g.continuation_[std::size_t(e.value)]) {
                g.continuation_[std::size_t(e.value)] = joined;
                changed = true;
            }
        }
    }
    for (auto& c : g.continuation_)
        if (c == kUnknown) c = Grammar::kSeveral;

    // Byte classes: refine one class by every byte set in use.
    g.byte_class_.fill(0);
    g.byte_classes_ = 1;
    for (const ByteSet& set : g.byte_sets_) {
        std::array<int, 512> split;  // (old class, in set) -> new class
        split.fill(-1);
        int classes = 0;
        for (int b = 0; b < 256; ++b) {
            int& c = split[std::size_t(g.byte_class_[std::size_t(b)] * 2 + set.has(std::uint8_t(b)))];
            if (c < 0) c = classes++;
            g.byte_class_[std::size_t(b)] = std::uint8_t(c);
        }
        g.byte_classes_ = classes;
    }
    return g;
}

}  // namespace qwen3
