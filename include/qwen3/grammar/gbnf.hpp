// qwen3/grammar/gbnf.hpp - reading llama.cpp's GBNF grammar text into a Grammar.
//
// Use: Grammar g = Grammar::from_gbnf(R"(root ::= "yes" | "no")");
// Not its job: running the grammar (recognizer.hpp, token_mask.hpp).
//
// The format (llama.cpp's grammars/README.md): one rule per line, `name ::= alternatives`, names of
// letters, digits, `-` and `_`; a rule continues onto the next lines after `::=`, after `|` and
// inside parentheses; `#` starts a comment. Elements: "literal", [character class] with ranges and
// `^` negation, `.` (any character), a rule name, ( group ); repetition `*`, `+`, `?`, `{m}`,
// `{m,}`, `{m,n}`. Escapes in literals and classes: \n \r \t \\ \" \[ \] \- \xHH \uHHHH \UHHHHHHHH.
// Characters are Unicode code points of UTF-8 text (invalid UTF-8 in the grammar is an error).
// Whole tokens: `<think>` (the token whose text that is) and `<[151667]>` (by id), as llama.cpp
// writes them; they match only that token, never its text as bytes. `!<...>` is not supported.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../error.hpp"
#include "../tokenizer/unicode.hpp"
#include "grammar.hpp"

namespace qwen3 {
namespace detail {

class GbnfParser {
public:
    // Reads `text` into `builder`, every rule name (defined or used) prefixed with `prefix`, so that
    // several grammars can live in one builder.
    GbnfParser(std::string_view text, GrammarBuilder& builder, std::string_view prefix = {}) : text_(text), prefix_(prefix), builder_(builder) {
        const std::size_t bad = unicode::find_invalid_utf8(text);
        if (bad != text.size()) {
            pos_ = bad;
            error("invalid UTF-8");
        }
    }

    void parse_rules() {
        for (;;) {
            skip_space(true);
            if (at_end()) break;
            parse_rule();
        }
    }

private:
    using Sequence = GrammarBuilder::Sequence;
    static constexpr long kMaxRepetition = 100000;
    static constexpr int kMaxNesting = 256;

    [[noreturn]] void error(std::string_view what) const {
        int line = 1, column = 1;
        for (std::size_t i = 0; i < pos_ && i < text_.size(); ++i) {
            if (text_[i] == '\n') ++line, column = 1;
            else if ((static_cast<unsigned char>(text_[i]) & 0xC0) != 0x80) ++column;
        }
        fail(ErrorCode::invalid_argument, "GBNF: line ", line, ", column ", column, ": ", what);
    }
    int line() const { return line_; }
    bool at_end() const { return pos_ >= text_.size(); }
    char peek(std::size_t ahead = 0) const { return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0'; }
    static bool is_name_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    }

    // Spaces, tabs, carriage returns and comments; newlines too when `newlines`.
    void skip_space(bool newlines) {
        while (!at_end()) {
            const char c = peek();
            if (c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n')) line_ += c == '\n', ++pos_;
            else if (c == '#') while (!at_end() && peek() != '\n') ++pos_;
            else break;
        }
    }

    std::string_view parse_name() {
        const std::size_t start = pos_;
        while (!at_end() && is_name_char(peek())) ++pos_;
        if (pos_ == start) error("expected a rule name");
        return text_.substr(start, pos_ - start);
    }

    void parse_rule() {
        const int at_line = line();
        const std::string_view name = parse_name();
        skip_space(false);
        if (text_.substr(pos_, 3) != "::=") error("expected '::=' after the rule name '" + std::string(name) + "'");
        pos_ += 3;
        skip_space(true);
        const std::int32_t rule = builder_.rule(prefix_ + std::string(name), at_line);
        if (builder_.defined(rule)) error("rule '" + std::string(name) + "' is defined twice");
        auto alternatives = parse_alternatives(false);
        if (!at_end() && peek() != '\n') error(std::string("unexpected '") + peek() + "'");
        builder_.define(rule, std::move(alternatives), at_line);
    }

    std::vector<Sequence> parse_alternatives(bool nested) {
        std::vector<Sequence> alternatives;
        alternatives.push_back(parse_sequence(nested));
        while (peek() == '|') {
            ++pos_;
            skip_space(true);
            alternatives.push_back(parse_sequence(nested));
        }
        return alternatives;
    }

    Sequence parse_sequence(bool nested) {
        Sequence seq;
        for (;;) {
            const char c = peek();
            if (at_end() || !(c == '"' || c == '[' || c == '.' || c == '(' || c == '<' || is_name_char(c))) {
                if (c == '!') error("'!' (negated token references) is not supported");
                break;
            }
            Sequence item = parse_item();
            skip_space(nested);
            while (peek() == '*' || peek() == '+' || peek() == '?' || peek() == '{') {  // "a"+? repeats "a"+
                item = repeat(std::move(item));
                skip_space(nested);
            }
            seq.insert(seq.end(), item.begin(), item.end());
        }
        return seq;
    }

    Sequence parse_item() {
        Sequence out;
        const char c = peek();
        if (c == '"') {
            ++pos_;
            std::string bytes;
            while (peek() != '"') {
                if (at_end() || peek() == '\n') error("unterminated string literal");
                unicode::append_utf8(bytes, parse_char());
            }
            ++pos_;
            builder_.literal(bytes, out);
        } else if (c == '[') {
            ++pos_;
            const bool negated = peek() == '^';
            if (negated) ++pos_;
            CodePointRanges ranges;
            while (peek() != ']') {
                if (at_end() || peek() == '\n') error("unterminated character class");
                const char32_t lo = parse_char();
                char32_t hi = lo;
                if (peek() == '-' && peek(1) != ']') {
                    ++pos_;
                    if (at_end() || peek() == '\n') error("unterminated character class");
                    hi = parse_char();
                    if (hi < lo) error("character range is backwards");
                }
                ranges.emplace_back(lo, hi);
            }
            ++pos_;
            if (negated) ranges = complement_code_points(std::move(ranges));
            if (ranges.empty()) error("character class matches no character");
            out.push_back(builder_.code_points(ranges));
        } else if (c == '<') {  // a whole token: <think> by its text, <[151667]> by its id
            const std::size_t start = pos_;
            while (!at_end() && peek() != '>' && peek() != '\n' && peek() != ' ') ++pos_;
            if (peek() != '>') error("unterminated token reference (expected '>')");
            ++pos_;
            const std::string_view inner = text_.substr(start + 1, pos_ - start - 2);
            if (inner.empty()) error("empty token reference '<>'");
            if (inner.front() == '[') {
                if (inner.size() < 3 || inner.back() != ']' || inner.find_first_not_of("0123456789", 1) != inner.size() - 1)
                    error("a token id reference is <[digits]>");
                out.push_back(builder_.token(inner));
            } else {
                out.push_back(builder_.token(text_.substr(start, pos_ - start)));
            }
        } else if (c == '.') {
            ++pos_;
            out.push_back(builder_.code_points({{0, kMaxCodePoint}}));
        } else if (c == '(') {
            if (++depth_ > kMaxNesting) error("parentheses nested more than " + std::to_string(kMaxNesting) + " deep");
            ++pos_;
            skip_space(true);
            auto alternatives = parse_alternatives(true);
            if (peek() != ')') error(at_end() ? "unbalanced '(': missing ')'" : std::string("expected ')' but found '") + peek() + "'");
            ++pos_;
            --depth_;
            const std::int32_t group = builder_.helper("group");
            builder_.define(group, std::move(alternatives), line());
            out.push_back(GrammarBuilder::ref(group));
        } else {
            const int at_line = line();
            out.push_back(GrammarBuilder::ref(builder_.rule(prefix_ + std::string(parse_name()), at_line)));
        }
        return out;
    }

    // One character of a literal or class, escapes resolved.
    char32_t parse_char() {
        const auto* p = reinterpret_cast<const unsigned char*>(text_.data());
        if (peek() != '\\') {
            const int n = unicode::utf8_lead_length(p[pos_]);
            const char32_t cp = unicode::decode_utf8(p + pos_, n);
            pos_ += std::size_t(n);
            return cp;
        }
        ++pos_;
        const char e = peek();
        ++pos_;
        switch (e) {
            case 'n': return '\n';
            case 'r': return '\r';
            case 't': return '\t';
            case '\\': case '"': case '[': case ']': case '-': case '/': return char32_t(e);
            case 'x': return parse_hex(2);
            case 'u': return parse_hex(4);
            case 'U': return parse_hex(8);
            default:
                --pos_;
                error(at_end() ? std::string("unterminated escape") : std::string("unknown escape '\\") + e + "'");
        }
    }
    char32_t parse_hex(int digits) {
        char32_t v = 0;
        for (int i = 0; i < digits; ++i) {
            const char c = peek();
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) error("expected " + std::to_string(digits) + " hexadecimal digits in an escape");
            v = v * 16 + char32_t(d);
            ++pos_;
        }
        if (v > kMaxCodePoint || (v >= 0xD800 && v <= 0xDFFF)) error("escape is not a Unicode scalar value");
        return v;
    }

    long parse_count() {
        const std::size_t start = pos_;
        long v = 0;
        while (peek() >= '0' && peek() <= '9') {
            v = v * 10 + (peek() - '0');
            if (v > kMaxRepetition) error("repetition count above " + std::to_string(kMaxRepetition));
            ++pos_;
        }
        if (pos_ == start) error("expected a number in '{...}'");
        return v;
    }

    // x? x* x+ x{m} x{m,} x{m,n} as helper rules. x is used at one place in each helper (x+ is
    // h ::= x t, t ::= h | ""), so that a small x copied there continues at a known place.
    Sequence repeat(Sequence x) {
        const char op = peek();
        ++pos_;
        auto as_helper = [&](std::vector<Sequence> alternatives) {
            const std::int32_t h = builder_.helper("repetition");
            builder_.define(h, std::move(alternatives), line());
            return Sequence{GrammarBuilder::ref(h)};
        };
        auto star = [&] {
            const std::int32_t h = builder_.helper("repetition");
            Sequence again = x;
            again.push_back(GrammarBuilder::ref(h));
            builder_.define(h, {std::move(again), Sequence{}}, line());
            return Sequence{GrammarBuilder::ref(h)};
        };
        if (op == '?') return as_helper({x, Sequence{}});
        if (op == '*') return star();
        if (op == '+') {
            const std::int32_t h = builder_.helper("repetition"), t = builder_.helper("repetition");
            Sequence first = x;
            first.push_back(GrammarBuilder::ref(t));
            builder_.define(h, {std::move(first)}, line());
            builder_.define(t, {Sequence{GrammarBuilder::ref(h)}, Sequence{}}, line());
            return Sequence{GrammarBuilder::ref(h)};
        }
        skip_space(false);
        const long m = parse_count();
        long n = m;
        bool unbounded = false;
        skip_space(false);
        if (peek() == ',') {
            ++pos_;
            skip_space(false);
            if (peek() == '}') unbounded = true;
            else n = parse_count();
            skip_space(false);
        }
        if (peek() != '}') error("expected '}' to close a repetition count");
        ++pos_;
        if (!unbounded && n < m) error("repetition {m,n} with n < m");
        Sequence out;
        for (long i = 0; i < m; ++i) out.insert(out.end(), x.begin(), x.end());
        if (unbounded) {
            Sequence s = star();
            out.insert(out.end(), s.begin(), s.end());
        } else if (n > m) {
            // (x (x (x)?)?)? for n - m optional copies, innermost first
            Sequence tail;
            for (long i = 0; i < n - m; ++i) {
                Sequence more = x;
                more.insert(more.end(), tail.begin(), tail.end());
                tail = as_helper({std::move(more), Sequence{}});
            }
            out.insert(out.end(), tail.begin(), tail.end());
        }
        return out;
    }

    std::string_view text_;
    std::string prefix_;
    std::size_t pos_ = 0;
    int line_ = 1;  // of pos_ (newlines are only crossed in skip_space)
    int depth_ = 0;  // open parentheses
    GrammarBuilder& builder_;
};

}  // namespace detail

inline Grammar Grammar::from_gbnf(std::string_view text, std::string_view root) {
    GrammarBuilder builder;
    detail::GbnfParser(text, builder).parse_rules();
    return builder.build(root);
}

}  // namespace qwen3
