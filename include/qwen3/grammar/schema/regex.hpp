// qwen3/grammar/schema/regex.hpp - the ECMAScript regular expressions of JSON Schema's "pattern"
// (the subset listed at the top of json_schema.hpp), parsed and written as GBNF.
//
// Not its job: matching text (the grammar engine does, once the pattern is GBNF).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../../error.hpp"
#include "../../format/json.hpp"
#include "gbnf_text.hpp"

namespace qwen3::detail::json_schema {

// ---------------------------------------------------------------------------------------------
// Regular expressions (the ECMAScript subset listed at the top of this file)

struct RegexNode {
    enum class Kind : std::uint8_t { chars, sequence, alternation, repeat };
    Kind kind = Kind::sequence;
    CharSet set;                   // chars: one code point of the set
    std::vector<RegexNode> items;  // sequence, alternation; repeat: its one item
    std::uint64_t min = 0;         // repeat bounds
    std::int64_t max = -1;         // -1: unbounded
};

// A top-level alternative with its anchors.
struct RegexBranch {
    RegexNode node;
    bool anchored_start = false, anchored_end = false;
};

inline constexpr std::uint64_t kMaxRepeat = 10000;

inline CharSet regex_digits() { return CharSet::range('0', '9'); }
inline CharSet regex_word() {
    CharSet s = CharSet::range('0', '9');
    s.add('A', 'Z');
    s.add('a', 'z');
    s.add('_', '_');
    return s;
}
inline CharSet regex_space() {  // ECMAScript WhiteSpace and LineTerminator
    CharSet s = CharSet::range('\t', '\r');
    for (char32_t c : {char32_t(' '), char32_t(0xA0), char32_t(0x1680), char32_t(0x2028), char32_t(0x2029), char32_t(0x202F),
                       char32_t(0x205F), char32_t(0x3000), char32_t(0xFEFF)})
        s.add(c, c);
    s.add(0x2000, 0x200A);
    return s;
}
inline CharSet regex_dot() {  // everything but line terminators
    CharSet s = CharSet::of('\n');
    s.add('\r', '\r');
    s.add(0x2028, 0x2029);
    return s.complement();
}

class RegexParser {
public:
    RegexParser(std::string_view pattern, std::string_view at) : pattern_(pattern), at_(at), s_(code_points(pattern)) {}

    std::vector<RegexBranch> parse() {
        std::vector<RegexBranch> branches;
        for (;;) {
            RegexBranch b;
            b.anchored_start = eat('^');
            while (!at_end() && peek() != '|') {
                if (peek() == '$') {
                    ++pos_;
                    if (at_end() || peek() == '|') {
                        b.anchored_end = true;
                        break;
                    }
                    unsupported("\"$\" before the end of the pattern");
                }
                if (peek() == ')') invalid("unmatched \")\"");
                term(b.node, 0);
            }
            branches.push_back(std::move(b));
            if (at_end()) return branches;
            ++pos_;  // '|'
        }
    }

private:
    [[noreturn]] void unsupported(std::string_view what) const {
        fail(ErrorCode::unsupported, "JSON Schema: pattern ", json::dump(json::Value(pattern_)), " at ", at_, ": ", what,
             " is not supported");
    }
    [[noreturn]] void invalid(std::string_view what) const {
        fail(ErrorCode::invalid_argument, "JSON Schema: pattern ", json::dump(json::Value(pattern_)), " at ", at_,
             " is not a valid regular expression: ", what, " at character ", pos_);
    }
    bool at_end() const { return pos_ >= s_.size(); }
    char32_t peek(std::size_t ahead = 0) const { return pos_ + ahead < s_.size() ? s_[pos_ + ahead] : 0; }
    bool eat(char32_t c) {
        if (at_end() || s_[pos_] != c) return false;
        ++pos_;
        return true;
    }

    RegexNode disjunction(int depth) {
        RegexNode alt{RegexNode::Kind::alternation, {}, {}, 0, -1};
        for (;;) {
            RegexNode sequence;
            while (!at_end() && peek() != '|' && peek() != ')') term(sequence, depth);
            alt.items.push_back(std::move(sequence));
            if (!eat('|')) break;
        }
        if (alt.items.size() == 1) return std::move(alt.items[0]);
        return alt;
    }

    void term(RegexNode& sequence, int depth) {
        if (peek() == '^') unsupported("\"^\" after the start of the pattern");
        if (peek() == '$') unsupported("\"$\" inside a group");
        RegexNode node = atom(depth);
        std::uint64_t min = 0;
        std::int64_t max = 0;
        if (quantifier(min, max)) {
            eat('?');  // lazy: the same language
            std::uint64_t m2 = 0;
            std::int64_t n2 = 0;
            const std::size_t save = pos_;
            if (quantifier(m2, n2)) {
                pos_ = save;
                invalid("nothing to repeat");
            }
            RegexNode rep{RegexNode::Kind::repeat, {}, {}, min, max};
            rep.items.push_back(std::move(node));
            node = std::move(rep);
        }
        sequence.items.push_back(std::move(node));
    }

    // Reads a quantifier if one follows; a "{" that does not start one is a literal (Annex B).
    bool quantifier(std::uint64_t& min, std::int64_t& max) {
        if (eat('*')) return min = 0, max = -1, true;
        if (eat('+')) return min = 1, max = -1, true;
        if (eat('?')) return min = 0, max = 1, true;
        if (peek() != '{') return false;
        std::size_t p = pos_ + 1;
        auto number = [&](std::uint64_t& out) {
            const std::size_t start = p;
            out = 0;
            while (p < s_.size() && s_[p] >= '0' && s_[p] <= '9') out = std::min<std::uint64_t>(out * 10 + (s_[p++] - '0'), kMaxRepeat + 1);
            return p > start;
        };
        std::uint64_t lo = 0, hi = 0;
        if (!number(lo)) return false;
        bool unbounded = false;
        if (p < s_.size() && s_[p] == ',') {
            ++p;
            if (!number(hi)) unbounded = true;
        } else {
            hi = lo;
        }
        if (p >= s_.size() || s_[p] != '}') return false;
        pos_ = p + 1;
        if (lo > kMaxRepeat || (!unbounded && hi > kMaxRepeat)) unsupported("a repetition count above 10000");
        if (!unbounded && hi < lo) invalid("numbers out of order in a {m,n} quantifier");
        min = lo;
        max = unbounded ? -1 : std::int64_t(hi);
        return true;
    }

    static RegexNode chars(CharSet set) { return RegexNode{RegexNode::Kind::chars, std::move(set), {}, 0, -1}; }

    RegexNode atom(int depth) {
        const char32_t c = s_[pos_++];
        switch (c) {
            case '(': return group_atom(depth);
            case '[': return chars(char_class());
            case '.': return chars(regex_dot());
            case '\\': return chars(escape(false));
            case '*':
            case '+':
            case '?': --pos_; invalid("nothing to repeat");
            case '{': {
                --pos_;
                std::uint64_t m = 0;
                std::int64_t n = 0;
                if (quantifier(m, n)) invalid("nothing to repeat");
                ++pos_;
                return chars(CharSet::of('{'));
            }
            default: return chars(CharSet::of(c));
        }
    }

    RegexNode group_atom(int depth) {
        if (eat('?')) {
            if (eat('=') || eat('!')) unsupported("lookahead \"(?=\" or \"(?!\"");
            if (eat('<')) {
                if (eat('=') || eat('!')) unsupported("lookbehind \"(?<=\" or \"(?<!\"");
                while (!at_end() && peek() != '>') ++pos_;  // a named group: the name does not matter
                if (!eat('>')) invalid("unterminated group name");
            } else if (!eat(':')) {
                invalid("unknown group \"(?\"");
            }
        }
        RegexNode inner = disjunction(depth + 1);
        if (!eat(')')) invalid("missing \")\"");
        return inner;
    }

    std::uint32_t hex(int n) {
        std::uint32_t v = 0;
        for (int i = 0; i < n; ++i) {
            const char32_t c = peek();
            int d = -1;
            if (c >= '0' && c <= '9') d = int(c - '0');
            else if (c >= 'a' && c <= 'f') d = int(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') d = int(c - 'A' + 10);
            if (d < 0) invalid("a hexadecimal digit expected");
            v = v * 16 + std::uint32_t(d);
            ++pos_;
        }
        return v;
    }

    // After a backslash: the set the escape stands for.
    CharSet escape(bool in_class) {
        if (at_end()) invalid("\"\\\" at the end of the pattern");
        const char32_t c = s_[pos_++];
        switch (c) {
            case 'd': return regex_digits();
            case 'D': return regex_digits().complement();
            case 'w': return regex_word();
            case 'W': return regex_word().complement();
            case 's': return regex_space();
            case 'S': return regex_space().complement();
            case 'b':
                if (in_class) return CharSet::of('\b');
                unsupported("the word boundary \"\\b\"");
            case 'B':
                if (in_class) invalid("\"\\B\" in a character class");
                unsupported("the word boundary \"\\B\"");
            case 'p':
            case 'P': unsupported("the Unicode property escape \"\\p\"");
            case 'k': unsupported("the backreference \"\\k\"");
            case 't': return CharSet::of('\t');
            case 'n': return CharSet::of('\n');
            case 'v': return CharSet::of('\v');
            case 'f': return CharSet::of('\f');
            case 'r': return CharSet::of('\r');
            case '0':
                if (peek() >= '0' && peek() <= '9') unsupported("the octal escape \"\\0" + std::string(1, char(peek())) + "\"");
                return CharSet::of(0);
            case 'c': {
                const char32_t letter = peek();
                if (!((letter >= 'a' && letter <= 'z') || (letter >= 'A' && letter <= 'Z'))) invalid("\"\\c\" without a letter");
                ++pos_;
                return CharSet::of(letter % 32);
            }
            case 'x': return CharSet::of(hex(2));
            case 'u': {
                char32_t cp = 0;
                if (eat('{')) {
                    while (!at_end() && peek() != '}') {
                        cp = cp * 16 + hex(1);
                        if (cp > kMaxCodePoint) invalid("\"\\u{...}\" above U+10FFFF");
                    }
                    if (!eat('}')) invalid("unterminated \"\\u{\"");
                } else {
                    cp = hex(4);
                    if (cp >= 0xD800 && cp <= 0xDBFF && peek() == '\\' && peek(1) == 'u') {
                        const std::size_t save = pos_;
                        pos_ += 2;
                        const char32_t low = hex(4);
                        if (low >= 0xDC00 && low <= 0xDFFF) cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                        else pos_ = save;
                    }
                }
                if (cp >= 0xD800 && cp <= 0xDFFF) unsupported("a lone surrogate escape");
                return CharSet::of(cp);
            }
            default:
                if (c >= '1' && c <= '9') unsupported("the backreference \"\\" + std::string(1, char(c)) + "\"");
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) invalid("unknown escape \"\\" + std::string(1, char(c)) + "\"");
                return CharSet::of(c);  // an identity escape: \. \* \/ \- ...
        }
    }

    CharSet char_class() {
        const bool negate = eat('^');
        CharSet set;
        for (;;) {
            if (at_end()) invalid("missing \"]\"");
            if (eat(']')) break;
            bool lo_is_set = false;
            const CharSet lo = class_atom(lo_is_set);
            if (peek() == '-' && peek(1) != ']' && pos_ + 1 < s_.size()) {
                ++pos_;
                bool hi_is_set = false;
                const CharSet hi = class_atom(hi_is_set);
                if (lo_is_set || hi_is_set) invalid("a class escape such as \\d as the end of a range");
                const char32_t a = lo.ranges()[0].lo, b = hi.ranges()[0].lo;
                if (a > b) invalid("a range out of order in a character class");
                set.add(a, b);
            } else {
                set.add(lo);
            }
        }
        return negate ? set.complement() : set;
    }

    CharSet class_atom(bool& is_set) {
        const char32_t c = s_[pos_++];
        if (c != '\\') return CharSet::of(c);
        const char32_t e = peek();
        is_set = e == 'd' || e == 'D' || e == 'w' || e == 'W' || e == 's' || e == 'S';
        if (e == '-') {
            ++pos_;
            return CharSet::of('-');
        }
        return escape(true);
    }

    std::string pattern_, at_;
    std::vector<char32_t> s_;
    std::size_t pos_ = 0;
};

inline bool nullable(const RegexNode& n) {
    switch (n.kind) {
        case RegexNode::Kind::chars: return false;
        case RegexNode::Kind::sequence: return std::all_of(n.items.begin(), n.items.end(), [](const RegexNode& i) { return nullable(i); });
        case RegexNode::Kind::alternation: return std::any_of(n.items.begin(), n.items.end(), [](const RegexNode& i) { return nullable(i); });
        case RegexNode::Kind::repeat: return n.min == 0 || nullable(n.items[0]);
    }
    return false;
}

// The same language without the empty text (nullopt when nothing else is left). Repeating something
// that matches the empty text would give the grammar engine a loop that consumes nothing.
inline std::optional<RegexNode> without_empty(const RegexNode& n) {
    if (!nullable(n)) return n;
    switch (n.kind) {
        case RegexNode::Kind::chars: return n;
        case RegexNode::Kind::sequence: {  // every item may be empty: the first non-empty one is item j
            RegexNode alt{RegexNode::Kind::alternation, {}, {}, 0, -1};
            for (std::size_t j = 0; j < n.items.size(); ++j) {
                const auto first = without_empty(n.items[j]);
                if (!first) continue;
                RegexNode s;
                s.items.push_back(*first);
                s.items.insert(s.items.end(), n.items.begin() + std::ptrdiff_t(j) + 1, n.items.end());
                alt.items.push_back(std::move(s));
            }
            if (alt.items.empty()) return std::nullopt;
            return alt;
        }
        case RegexNode::Kind::alternation: {
            RegexNode alt{RegexNode::Kind::alternation, {}, {}, 0, -1};
            for (const RegexNode& item : n.items)
                if (auto x = without_empty(item)) alt.items.push_back(std::move(*x));
            if (alt.items.empty()) return std::nullopt;
            return alt;
        }
        case RegexNode::Kind::repeat: {
            if (n.max == 0) return std::nullopt;
            auto item = without_empty(n.items[0]);
            if (!item) return std::nullopt;
            RegexNode rep{RegexNode::Kind::repeat, {}, {}, 1, n.max};
            rep.items.push_back(std::move(*item));
            return rep;
        }
    }
    return std::nullopt;
}

}  // namespace qwen3::detail::json_schema
