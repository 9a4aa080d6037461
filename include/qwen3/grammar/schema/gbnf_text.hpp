// qwen3/grammar/schema/gbnf_text.hpp - sets of code points and the GBNF text that matches them, for
// the JSON Schema converter (json_schema.hpp) and its parts.
//
// Not its job: reading GBNF (gbnf.hpp) or running it (recognizer.hpp).
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
#include "../../tokenizer/unicode.hpp"

namespace qwen3::detail::json_schema {

// ---------------------------------------------------------------------------------------------
// Sets of code points

inline constexpr char32_t kMaxCodePoint = 0x10FFFF;

struct CodeRange {
    char32_t lo, hi;
};

// Code points as sorted, disjoint, non-adjacent ranges. The universe excludes surrogates, which never
// occur in UTF-8 text.
class CharSet {
public:
    CharSet() = default;
    static CharSet of(char32_t c) { return range(c, c); }
    static CharSet range(char32_t lo, char32_t hi) {
        CharSet s;
        s.add(lo, hi);
        return s;
    }
    static CharSet all() { return CharSet().complement(); }

    void add(char32_t lo, char32_t hi) {
        ranges_.push_back({lo, hi});
        normalize();
    }
    void add(const CharSet& other) {
        ranges_.insert(ranges_.end(), other.ranges_.begin(), other.ranges_.end());
        normalize();
    }
    CharSet complement() const {
        CharSet out;
        char32_t next = 0;
        for (const CodeRange& r : ranges_) {
            if (r.lo > next) out.ranges_.push_back({next, r.lo - 1});
            next = r.hi + 1;
        }
        if (next <= kMaxCodePoint) out.ranges_.push_back({next, kMaxCodePoint});
        out.remove_surrogates();
        return out;
    }
    CharSet intersect(const CharSet& other) const { return complement().unite(other.complement()).complement(); }
    CharSet minus(const CharSet& other) const { return intersect(other.complement()); }
    CharSet unite(const CharSet& other) const {
        CharSet out = *this;
        out.add(other);
        return out;
    }
    bool empty() const { return ranges_.empty(); }
    bool contains(char32_t c) const {
        for (const CodeRange& r : ranges_)
            if (c >= r.lo && c <= r.hi) return true;
        return false;
    }
    bool operator==(const CharSet& other) const {
        if (ranges_.size() != other.ranges_.size()) return false;
        for (std::size_t i = 0; i < ranges_.size(); ++i)
            if (ranges_[i].lo != other.ranges_[i].lo || ranges_[i].hi != other.ranges_[i].hi) return false;
        return true;
    }
    const std::vector<CodeRange>& ranges() const { return ranges_; }

private:
    void normalize() {
        std::sort(ranges_.begin(), ranges_.end(), [](const CodeRange& a, const CodeRange& b) { return a.lo < b.lo; });
        std::vector<CodeRange> merged;
        for (const CodeRange& r : ranges_) {
            if (!merged.empty() && r.lo <= merged.back().hi + 1)
                merged.back().hi = std::max(merged.back().hi, r.hi);
            else
                merged.push_back(r);
        }
        ranges_ = std::move(merged);
        remove_surrogates();
    }
    void remove_surrogates() {
        std::vector<CodeRange> out;
        for (const CodeRange& r : ranges_) {
            if (r.hi < 0xD800 || r.lo > 0xDFFF) {
                out.push_back(r);
                continue;
            }
            if (r.lo < 0xD800) out.push_back({r.lo, 0xD7FF});
            if (r.hi > 0xDFFF) out.push_back({0xE000, r.hi});
        }
        ranges_ = std::move(out);
    }
    std::vector<CodeRange> ranges_;
};

using unicode::append_utf8;

// Code points of UTF-8 text that is known to be valid (every json::Value string is).
inline std::vector<char32_t> code_points(std::string_view utf8) {
    std::vector<char32_t> out;
    for (std::size_t i = 0; i < utf8.size();) {
        const unsigned char c = static_cast<unsigned char>(utf8[i]);
        const int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
        for (int k = 1; k < n && i + std::size_t(k) < utf8.size(); ++k)
            cp = (cp << 6) | (static_cast<unsigned char>(utf8[i + std::size_t(k)]) & 0x3F);
        out.push_back(cp);
        i += std::size_t(n);
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// GBNF text. The grammar is kept ASCII: other code points are written as \u or \U escapes.

inline std::string hex_digits(std::uint32_t v, int n) {
    static const char* hex = "0123456789abcdef";
    std::string out(std::size_t(n), '0');
    for (int i = n - 1; i >= 0; --i, v >>= 4) out[std::size_t(i)] = hex[v & 15];
    return out;
}

inline std::string gbnf_escape(char32_t c, bool in_class) {
    const bool special = c == '"' || c == '\\' || (in_class && (c == '[' || c == ']' || c == '^' || c == '-'));
    if (c >= 0x20 && c < 0x7F && !special) return std::string(1, char(c));
    if (c == '"' && !in_class) return "\\\"";
    if (c == '\\' && !in_class) return "\\\\";
    if (c < 0x80) return "\\x" + hex_digits(c, 2);
    if (c < 0x10000) return "\\u" + hex_digits(c, 4);
    return "\\U" + hex_digits(c, 8);
}

// A GBNF string literal matching the UTF-8 text `utf8` (which must not be empty).
inline std::string gbnf_literal(std::string_view utf8) {
    std::string out = "\"";
    for (char32_t c : code_points(utf8)) out += gbnf_escape(c, false);
    return out + "\"";
}

inline std::string gbnf_literal_char(char32_t c) { return "\"" + gbnf_escape(c, false) + "\""; }

// A GBNF terminal matching one code point of `set` (not empty): a literal for one code point, else a
// class, negated when that is shorter.
inline std::string gbnf_class(const CharSet& set) {
    const auto& ranges = set.ranges();
    if (ranges.size() == 1 && ranges[0].lo == ranges[0].hi) return gbnf_literal_char(ranges[0].lo);
    const CharSet complement = set.complement();
    const bool negate = !complement.empty() && complement.ranges().size() < ranges.size();
    std::string out = negate ? "[^" : "[";
    for (const CodeRange& r : negate ? complement.ranges() : ranges) {
        out += gbnf_escape(r.lo, true);
        if (r.hi == r.lo + 1) out += gbnf_escape(r.hi, true);
        else if (r.hi != r.lo) out += "-" + gbnf_escape(r.hi, true);
    }
    return out + "]";
}

// A sequence of GBNF expressions; empty parts (matching the empty text) are left out.
inline std::string seq(std::initializer_list<std::string> parts) {
    std::string out;
    for (const std::string& p : parts) {
        if (p.empty()) continue;
        if (!out.empty()) out += ' ';
        out += p;
    }
    return out;
}

// Whether `e` is one GBNF term (a name, literal, class or parenthesized group, without a quantifier),
// so that a quantifier can follow it without parentheses.
inline bool is_single_term(std::string_view e) {
    if (e.empty()) return false;
    int depth = 0;
    bool literal = false, klass = false;
    for (std::size_t i = 0; i < e.size(); ++i) {
        const char c = e[i];
        if (literal || klass) {
            if (c == '\\') ++i;
            else if (literal && c == '"') literal = false;
            else if (klass && c == ']') klass = false;
            continue;
        }
        if (c == '"') literal = true;
        else if (c == '[') klass = true;
        else if (c == '(') ++depth;
        else if (c == ')') --depth;
        else if (depth == 0 && (c == ' ' || c == '|' || c == '*' || c == '+' || c == '?' || c == '{')) return false;
        // a group closed before the end, as in "(a) (b)", is two terms (caught by the space)
    }
    return true;
}

inline std::string group(const std::string& e) { return is_single_term(e) ? e : "(" + e + ")"; }

// Alternatives (none of them empty) as one expression.
inline std::string choice(const std::vector<std::string>& alts) {
    if (alts.size() == 1) return alts[0];
    std::string out = "(";
    for (std::size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
    return out + ")";
}

// The GBNF suffix repeating a term min..max times (max < 0: unbounded).
inline std::string repeat_suffix(std::uint64_t min, std::int64_t max) {
    if (max < 0) {
        if (min == 0) return "*";
        if (min == 1) return "+";
        return "{" + std::to_string(min) + ",}";
    }
    if (min == 0 && max == 1) return "?";
    if (std::int64_t(min) == max) return "{" + std::to_string(min) + "}";
    return "{" + std::to_string(min) + "," + std::to_string(max) + "}";
}

// `e` repeated min..max times; empty when max is 0.
inline std::string repeated(const std::string& e, std::uint64_t min, std::int64_t max) {
    if (max == 0 || e.empty()) return "";
    if (min == 1 && max == 1) return e;
    return group(e) + repeat_suffix(min, max);
}

}  // namespace qwen3::detail::json_schema
