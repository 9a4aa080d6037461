// qwen3/chat/jinja/parser.hpp - reads a Jinja2 chat template into a tree of statements.
//
// Use: jinja::Program p = jinja::parse(source);   // then interpreter.hpp runs it
// Not its job: values (value.hpp) or running the tree (interpreter.hpp).
//
// The subset chat templates use: text, {{ expressions }}, {% if/elif/else %}, {% for ... in ... if
// ... %} with {% else %}, {% set %} (names, tuples, namespace members, blocks), {% macro %} and
// calls, {% break %}/{% continue %}, {% raw %}, {% generation %} (transformers' marker, rendered as
// its body), comments, whitespace control with '-' and '+', and the environment transformers
// sets up: trim_blocks (the newline after a block tag is dropped) and lstrip_blocks (spaces and
// tabs before a block tag on its line are dropped). Expressions follow Jinja's grammar and
// precedence: conditional expressions, or/and/not, comparisons and `in`, + - ~ * / // % **,
// filters (|name(args)), tests (is [not] name), attribute, subscript, slices, calls with keyword
// arguments, and list/tuple/dict literals. Anything else is an Error(invalid_argument) naming the
// construct and its line.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../../error.hpp"
#include "value.hpp"

namespace qwen3::chat::jinja {

struct Expr;
using ExprPtr = std::shared_ptr<const Expr>;

struct Expr {
    enum class Kind : std::uint8_t {
        literal, name, attribute, item, slice, call, filter, test, unary, binary, conditional, list, tuple, dict
    };
    Kind kind = Kind::literal;
    int line = 0;
    Value value;                  // literal
    std::string name;             // name, attribute, filter, test; unary/binary: the operator
    std::vector<ExprPtr> args;    // operands: [object], [object, key], [object, start, stop, step], call args after callee,
                                  // filter/test args after the operand, list/tuple items, dict keys and values alternating
    std::vector<std::pair<std::string, ExprPtr>> kwargs;
    bool negated = false;         // `is not`
    int depth = 1;                // of the tree below (bounded, see Parser::kMaxNesting)
};

struct Stmt;
using Body = std::vector<std::shared_ptr<const Stmt>>;

struct Stmt {
    enum class Kind : std::uint8_t { text, output, if_, for_, set, set_block, macro, call_block, break_, continue_, block };
    Kind kind = Kind::text;
    int line = 0;
    std::string text;                               // text
    ExprPtr expr;                                   // output; for: the iterable; set: the value
    std::vector<std::pair<ExprPtr, Body>> branches; // if: (condition, body)...; a null condition is else
    std::vector<std::string> targets;               // for/set: names (a tuple if several); set ns.x: {ns, x} with member = true
    bool member = false;
    ExprPtr filter;                                 // for ... if filter
    Body body, else_body;                           // for, set block, macro, block
    std::string name;                               // macro
    std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters with defaults (null: none)
};

struct Program {
    Body body;
};

inline std::shared_ptr<Expr> new_expr(Expr::Kind kind) {
    auto e = std::make_shared<Expr>();
    e->kind = kind;
    return e;
}
inline std::shared_ptr<Stmt> new_stmt(Stmt::Kind kind) {
    auto s = std::make_shared<Stmt>();
    s->kind = kind;
    return s;
}

namespace detail {

struct Token {
    enum class Kind : std::uint8_t { name, string, integer, floating, op, end };
    Kind kind;
    std::string text;
    int line;
};

class Parser {
public:
    // As Jinja's lexer: newlines become "\n", and one at the very end is dropped (keep_trailing_newline
    // is off in transformers' environment).
    explicit Parser(std::string_view source) {
        normalized_.reserve(source.size());
        for (std::size_t i = 0; i < source.size(); ++i) {
            if (source[i] == '\r') {
                normalized_ += '\n';
                if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
            } else {
                normalized_ += source[i];
            }
        }
        if (!normalized_.empty() && normalized_.back() == '\n') normalized_.pop_back();
        src_ = normalized_;
    }

    Program parse() {
        split();
        pos_ = 0;
        Program p;
        p.body = parse_body({});
        if (pos_ < parts_.size()) fail_at(parts_[pos_].line, "unexpected '{% ", parts_[pos_].first_word(), " %}'");
        return p;
    }

private:
    // ---- the template cut into text, {{ }} and {% %} parts, whitespace control applied
    struct Part {
        enum class Kind : std::uint8_t { text, output, statement } kind;
        std::string text;  // text, or the tag's inside
        int line;
        std::string first_word() const {
            std::size_t i = text.find_first_not_of(" \t\r\n");
            std::size_t j = i == std::string::npos ? i : text.find_first_of(" \t\r\n(", i);
            return i == std::string::npos ? std::string() : text.substr(i, j - i);
        }
    };

    template <class... A>
    [[noreturn]] static void fail_at(int line, const A&... a) {
        qwen3::detail::fail(ErrorCode::invalid_argument, "chat template: line ", line, ": ", a...);
    }

    void split() {
        std::size_t i = 0;
        int line = 1;
        bool strip_next = false;   // a '-' closed the last tag: drop the whitespace that follows
        bool trim_newline = false; // trim_blocks: drop one newline after a block tag
        auto count_lines = [&](std::size_t from, std::size_t to) {
            for (std::size_t k = from; k < to; ++k) line += src_[k] == '\n';
        };
        while (i < src_.size()) {
            std::size_t open = src_.find('{', i);
            while (open != std::string_view::npos && open + 1 < src_.size() && src_[open + 1] != '{' && src_[open + 1] != '%' &&
                   src_[open + 1] != '#')
                open = src_.find('{', open + 1);
            if (open + 1 >= src_.size()) open = std::string_view::npos;
            std::string text(src_.substr(i, open == std::string_view::npos ? std::string_view::npos : open - i));
            const int text_line = line;
            count_lines(i, open == std::string_view::npos ? src_.size() : open);
            if (strip_next) {
                const std::size_t k = text.find_first_not_of(" \t\r\n\f\v");
                text.erase(0, k == std::string::npos ? text.size() : k);
            } else if (trim_newline && !text.empty() && text[0] == '\n') {
                text.erase(0, 1);
            }
            strip_next = trim_newline = false;
            if (open == std::string_view::npos) {
                push_text(std::move(text), text_line);
                break;
            }
            const char type = src_[open + 1];
            std::size_t inner = open + 2;
            const bool minus_left = inner < src_.size() && src_[inner] == '-';
            const bool plus_left = inner < src_.size() && src_[inner] == '+';
            if (minus_left || plus_left) ++inner;
            if (minus_left) {
                const std::size_t k = text.find_last_not_of(" \t\r\n\f\v");
                text.erase(k == std::string::npos ? 0 : k + 1);
            } else if (type != '{' && !plus_left) {  // lstrip_blocks: a block tag alone at the start of its line
                const std::size_t nl = text.find_last_of('\n');
                const std::size_t line_start = nl == std::string::npos ? 0 : nl + 1;
                // (as Jinja's lexer: a newline in the text, or the text starts a line)
                const bool at_line_start = nl != std::string::npos || starts_line(open - text.size());
                if (at_line_start && text.find_first_not_of(" \t", line_start) == std::string::npos) text.erase(line_start);
            }
            push_text(std::move(text), text_line);
            const int tag_line = line;
            if (type == '#') {
                const std::size_t close = src_.find("#}", inner);
                if (close == std::string_view::npos) fail_at(tag_line, "a comment '{#' is never closed");
                strip_next = close > inner && src_[close - 1] == '-';
                trim_newline = !strip_next;
                count_lines(open, close + 2);
                i = close + 2;
                continue;
            }
            // find the closing tag outside string literals
            const char* closer = type == '{' ? "}}" : "%}";
            std::size_t k = inner;
            char quote = 0;
            for (; k + 1 < src_.size(); ++k) {
                const char c = src_[k];
                if (quote) {
                    if (c == '\\') ++k;
                    else if (c == quote) quote = 0;
                } else if (c == '\'' || c == '"') {
                    quote = c;
                } else if (c == closer[0] && src_[k + 1] == closer[1]) {
                    break;
                }
            }
            if (k + 1 >= src_.size()) fail_at(tag_line, type == '{' ? "'{{' is never closed by '}}'" : "'{%' is never closed by '%}'");
            std::size_t end = k;
            const bool minus_right = end > inner && src_[end - 1] == '-';
            const bool plus_right = end > inner && src_[end - 1] == '+';
            if (minus_right || plus_right) --end;
            std::string inside(src_.substr(inner, end - inner));
            count_lines(open, k + 2);
            i = k + 2;
            strip_next = minus_right;
            if (type == '%') {
                trim_newline = !minus_right && !plus_right;
                Part part{Part::Kind::statement, std::move(inside), tag_line};
                if (part.first_word() == "raw") {  // the text up to {% endraw %} as it is
                    const std::size_t close = find_endraw(i);
                    if (close == std::string_view::npos) fail_at(tag_line, "'{% raw %}' is never closed by '{% endraw %}'");
                    std::string raw(src_.substr(i, close - i));
                    if (trim_newline && !raw.empty() && raw[0] == '\n') raw.erase(0, 1);
                    count_lines(i, close);
                    const std::size_t after = src_.find("%}", close);
                    if (after == std::string_view::npos) fail_at(tag_line, "'{% endraw' is never closed by '%}'");
                    const bool minus = src_[after - 1] == '-';
                    if (src_[close + 2] == '-') {
                        const std::size_t e = raw.find_last_not_of(" \t\r\n\f\v");
                        raw.erase(e == std::string::npos ? 0 : e + 1);
                    }
                    parts_.push_back(Part{Part::Kind::text, std::move(raw), tag_line});
                    count_lines(close, after + 2);
                    i = after + 2;
                    strip_next = minus;
                    trim_newline = !minus;
                    continue;
                }
                parts_.push_back(std::move(part));
            } else {
                parts_.push_back(Part{Part::Kind::output, std::move(inside), tag_line});
            }
        }
    }
    bool starts_line(std::size_t offset) const { return offset == 0 || src_[offset - 1] == '\n'; }
    std::size_t find_endraw(std::size_t from) const {
        for (std::size_t k = src_.find("{%", from); k != std::string_view::npos; k = src_.find("{%", k + 2)) {
            std::size_t w = k + 2;
            if (w < src_.size() && (src_[w] == '-' || src_[w] == '+')) ++w;
            while (w < src_.size() && (src_[w] == ' ' || src_[w] == '\t' || src_[w] == '\n' || src_[w] == '\r')) ++w;
            if (src_.substr(w, 6) == "endraw") return k;
        }
        return std::string_view::npos;
    }
    void push_text(std::string text, int line) {
        if (!text.empty()) parts_.push_back(Part{Part::Kind::text, std::move(text), line});
    }

    // Nesting (blocks in blocks, parentheses, `not not`) is bounded so the recursive descent, and the
    // interpreter walking its tree, never run out of stack on hostile text.
    static constexpr int kMaxNesting = 200;
    struct Nested {
        explicit Nested(Parser& p, int line) : p_(p) {
            if (++p_.nesting_ > kMaxNesting) fail_at(line, "nested more than ", kMaxNesting, " deep");
        }
        ~Nested() { --p_.nesting_; }
        Parser& p_;
    };

    // ---- statements

    // Parses parts until a statement whose first word is one of `stops` (left unconsumed).
    Body parse_body(const std::vector<std::string_view>& stops) {
        const Nested nested(*this, pos_ < parts_.size() ? parts_[pos_].line : 0);
        Body body;
        while (pos_ < parts_.size()) {
            const Part& part = parts_[pos_];
            if (part.kind == Part::Kind::text) {
                auto s = new_stmt(Stmt::Kind::text);
                s->line = part.line;
                s->text = part.text;
                body.push_back(s);
                ++pos_;
                continue;
            }
            if (part.kind == Part::Kind::output) {
                tokenize(part.text, part.line);
                auto s = new_stmt(Stmt::Kind::output);
                s->line = part.line;
                s->expr = expression();
                expect_end("'}}'");
                body.push_back(s);
                ++pos_;
                continue;
            }
            const std::string word = part.first_word();
            for (std::string_view stop : stops)
                if (word == stop) return body;
            body.push_back(statement());
        }
        if (!stops.empty()) {
            std::string want;
            for (std::string_view s : stops) want += (want.empty() ? "" : " or ") + std::string("'{% ") + std::string(s) + " %}'";
            fail_at(parts_.empty() ? 1 : parts_.back().line, "the template ends before ", want);
        }
        return body;
    }

    std::shared_ptr<Stmt> statement() {
        const Part& part = parts_[pos_];
        tokenize(part.text, part.line);
        const int line = part.line;
        const std::string word = next_name("a statement");
        auto s = new_stmt(Stmt::Kind::text);
        s->line = line;
        if (word == "if") {
            s->kind = Stmt::Kind::if_;
            ExprPtr condition = expression();
            expect_end("'%}'");
            ++pos_;
            for (;;) {
                Body body = parse_body({"elif", "else", "endif"});
                s->branches.emplace_back(condition, std::move(body));
                const Part& stop = parts_[pos_];
                tokenize(stop.text, stop.line);
                const std::string w = next_name("");
                if (w == "endif") {
                    expect_end("'%}'");
                    ++pos_;
                    break;
                }
                if (w == "else") {
                    expect_end("'%}'");
                    ++pos_;
                    s->else_body = parse_body({"endif"});
                    tokenize(parts_[pos_].text, parts_[pos_].line);
                    next_name("");
                    expect_end("'%}'");
                    ++pos_;
                    break;
                }
                condition = expression();  // elif
                expect_end("'%}'");
                ++pos_;
            }
        } else if (word == "for") {
            s->kind = Stmt::Kind::for_;
            s->targets.push_back(next_name("a loop variable"));
            while (take_op(",")) s->targets.push_back(next_name("a loop variable"));
            if (next_name("'in'") != "in") fail_at(line, "expected 'in' in a for loop");
            s->expr = expression(/*no_conditional=*/true);
            if (peek_name("if")) {
                ++tok_;
                s->filter = expression(true);
            }
            if (peek_name("recursive")) fail_at(line, "recursive for loops are not supported");
            expect_end("'%}'");
            ++pos_;
            s->body = parse_body({"else", "endfor"});
            tokenize(parts_[pos_].text, parts_[pos_].line);
            if (next_name("") == "else") {
                expect_end("'%}'");
                ++pos_;
                s->else_body = parse_body({"endfor"});
                tokenize(parts_[pos_].text, parts_[pos_].line);
                next_name("");
            }
            expect_end("'%}'");
            ++pos_;
        } else if (word == "set") {
            std::string first = next_name("a variable name");
            s->targets.push_back(first);
            if (take_op(".")) {
                s->member = true;
                s->targets.push_back(next_name("a namespace member"));
            } else {
                while (take_op(",")) s->targets.push_back(next_name("a variable name"));
            }
            if (take_op("=")) {
                s->kind = Stmt::Kind::set;
                s->expr = expression();
                expect_end("'%}'");
                ++pos_;
            } else {
                if (s->member || s->targets.size() != 1) fail_at(line, "a block {% set %} takes one name");
                s->kind = Stmt::Kind::set_block;
                expect_end("'%}' or '='");
                ++pos_;
                s->body = parse_body({"endset"});
                ++pos_;
            }
        } else if (word == "macro") {
            s->kind = Stmt::Kind::macro;
            s->name = next_name("a macro name");
            if (!take_op("(")) fail_at(line, "expected '(' after the macro name");
            if (!take_op(")")) {
                do {
                    std::string param = next_name("a parameter name");
                    ExprPtr def;
                    if (take_op("=")) def = expression();
                    s->params.emplace_back(std::move(param), def);
                } while (take_op(","));
                if (!take_op(")")) fail_at(line, "expected ')' after the macro's parameters");
            }
            expect_end("'%}'");
            ++pos_;
            s->body = parse_body({"endmacro"});
            ++pos_;
        } else if (word == "break" || word == "continue") {
            s->kind = word == "break" ? Stmt::Kind::break_ : Stmt::Kind::continue_;
            expect_end("'%}'");
            ++pos_;
        } else if (word == "generation") {  // transformers' AssistantTracker marker
            s->kind = Stmt::Kind::block;
            expect_end("'%}'");
            ++pos_;
            s->body = parse_body({"endgeneration"});
            ++pos_;
        } else {
            fail_at(line, "the statement '{% ", word, " %}' is not supported");
        }
        return s;
    }

    // ---- expression tokens of one tag

    void tokenize(std::string_view s, int line) {
        toks_.clear();
        tok_ = 0;
        std::size_t i = 0;
        while (i < s.size()) {
            const char c = s[i];
            if (c == '\n') ++line;
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                ++i;
                continue;
            }
            if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
                std::size_t j = i;
                while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
                toks_.push_back(Token{Token::Kind::name, std::string(s.substr(i, j - i)), line});
                i = j;
                continue;
            }
            if (std::isdigit(static_cast<unsigned char>(c))) {
                std::size_t j = i;
                bool is_float = false;
                while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
                if (j + 1 < s.size() && s[j] == '.' && std::isdigit(static_cast<unsigned char>(s[j + 1]))) {
                    is_float = true;
                    ++j;
                    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
                }
                if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
                    std::size_t k = j + 1;
                    if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
                    if (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) {
                        is_float = true;
                        j = k;
                        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
                    }
                }
                std::string digits;
                for (char d : s.substr(i, j - i))
                    if (d != '_') digits += d;
                toks_.push_back(Token{is_float ? Token::Kind::floating : Token::Kind::integer, digits, line});
                i = j;
                continue;
            }
            if (c == '\'' || c == '"') {
                std::string out;
                std::size_t j = i + 1;
                for (; j < s.size() && s[j] != c; ++j) {
                    if (s[j] != '\\' || j + 1 >= s.size()) {
                        out += s[j];
                        continue;
                    }
                    const char e = s[++j];
                    switch (e) {
                        case 'n': out += '\n'; break;
                        case 't': out += '\t'; break;
                        case 'r': out += '\r'; break;
                        case '0': out += '\0'; break;
                        case 'b': out += '\b'; break;
                        case 'f': out += '\f'; break;
                        case 'v': out += '\v'; break;
                        case 'a': out += '\a'; break;
                        case '\\': out += '\\'; break;
                        case '\'': out += '\''; break;
                        case '"': out += '"'; break;
                        case '\n': break;
                        case 'x':
                        case 'u':
                        case 'U': {
                            const int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                            if (j + std::size_t(n) >= s.size() + 0 && j + std::size_t(n) > s.size() - 1)
                                fail_at(line, "a truncated \\", e, " escape in a string literal");
                            std::uint32_t cp = 0;
                            for (int k = 1; k <= n; ++k) {
                                const char h = s[j + std::size_t(k)];
                                if (!std::isxdigit(static_cast<unsigned char>(h))) fail_at(line, "a bad \\", e, " escape in a string literal");
                                cp = cp * 16 + std::uint32_t(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
                            }
                            j += std::size_t(n);
                            append_utf8(out, cp, line);
                            break;
                        }
                        default: out += '\\', out += e;  // Python keeps unknown escapes
                    }
                }
                if (j >= s.size()) fail_at(line, "a string literal is never closed");
                toks_.push_back(Token{Token::Kind::string, std::move(out), line});
                i = j + 1;
                continue;
            }
            static constexpr std::string_view kOps[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                                                        "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "="};
            bool matched = false;
            for (std::string_view op : kOps)
                if (s.substr(i, op.size()) == op) {
                    toks_.push_back(Token{Token::Kind::op, std::string(op), line});
                    i += op.size();
                    matched = true;
                    break;
                }
            if (!matched) fail_at(line, "unexpected character '", std::string(1, c), "'");
        }
        toks_.push_back(Token{Token::Kind::end, "", line});
    }
    static void append_utf8(std::string& out, std::uint32_t cp, int line) {
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) fail_at(line, "an escape names no Unicode scalar value");
        if (cp < 0x80) out += char(cp);
        else if (cp < 0x800) out += char(0xC0 | (cp >> 6)), out += char(0x80 | (cp & 0x3F));
        else if (cp < 0x10000) out += char(0xE0 | (cp >> 12)), out += char(0x80 | ((cp >> 6) & 0x3F)), out += char(0x80 | (cp & 0x3F));
        else
            out += char(0xF0 | (cp >> 18)), out += char(0x80 | ((cp >> 12) & 0x3F)), out += char(0x80 | ((cp >> 6) & 0x3F)),
                out += char(0x80 | (cp & 0x3F));
    }

    const Token& peek() const { return toks_[tok_]; }
    bool peek_op(std::string_view op) const { return peek().kind == Token::Kind::op && peek().text == op; }
    bool peek_name(std::string_view n) const { return peek().kind == Token::Kind::name && peek().text == n; }
    bool take_op(std::string_view op) {
        if (!peek_op(op)) return false;
        ++tok_;
        return true;
    }
    std::string next_name(std::string_view what) {
        if (peek().kind != Token::Kind::name) fail_at(peek().line, "expected ", what.empty() ? "a name" : what, describe());
        return toks_[tok_++].text;
    }
    std::string describe() const {
        return peek().kind == Token::Kind::end ? " at the end of the tag" : ", found '" + peek().text + "'";
    }
    void expect_end(std::string_view closer) {
        if (peek().kind != Token::Kind::end) fail_at(peek().line, "expected ", closer, describe());
    }

    // ---- expressions, by Jinja's precedence

    ExprPtr make(Expr::Kind kind, int line, std::string name = {}, std::vector<ExprPtr> args = {}) {
        auto e = new_expr(kind);
        e->line = line;
        e->name = std::move(name);
        e->args = std::move(args);
        return measured(e);
    }
    // `e` with its depth, refused past kMaxNesting: chains such as a|f|f|f... or 1+1+1... build deep
    // trees without deep parsing
    static std::shared_ptr<Expr> measured(std::shared_ptr<Expr> e) {
        for (const ExprPtr& a : e->args)
            if (a) e->depth = std::max(e->depth, a->depth + 1);
        for (const auto& kv : e->kwargs) e->depth = std::max(e->depth, kv.second->depth + 1);
        if (e->depth > kMaxNesting) fail_at(e->line, "an expression nested more than ", kMaxNesting, " deep");
        return e;
    }

    ExprPtr expression(bool no_conditional = false) {
        const Nested nested(*this, peek().line);
        ExprPtr e = or_expr();
        if (no_conditional) return e;
        while (peek_name("if")) {
            const int line = peek().line;
            ++tok_;
            ExprPtr condition = or_expr();
            std::vector<ExprPtr> args{condition, e};
            if (peek_name("else")) {
                ++tok_;
                args.push_back(expression());
            }
            e = make(Expr::Kind::conditional, line, {}, std::move(args));
        }
        return e;
    }
    ExprPtr or_expr() {
        ExprPtr e = and_expr();
        while (peek_name("or")) {
            const int line = peek().line;
            ++tok_;
            e = make(Expr::Kind::binary, line, "or", {e, and_expr()});
        }
        return e;
    }
    ExprPtr and_expr() {
        ExprPtr e = not_expr();
        while (peek_name("and")) {
            const int line = peek().line;
            ++tok_;
            e = make(Expr::Kind::binary, line, "and", {e, not_expr()});
        }
        return e;
    }
    ExprPtr not_expr() {
        const Nested nested(*this, peek().line);
        if (peek_name("not")) {
            const int line = peek().line;
            ++tok_;
            return make(Expr::Kind::unary, line, "not", {not_expr()});
        }
        return compare();
    }
    ExprPtr compare() {
        ExprPtr e = math1();
        for (;;) {
            const int line = peek().line;
            std::string op;
            if (peek().kind == Token::Kind::op && (peek().text == "==" || peek().text == "!=" || peek().text == "<" || peek().text == ">" ||
                                                   peek().text == "<=" || peek().text == ">=")) {
                op = toks_[tok_++].text;
            } else if (peek_name("in")) {
                ++tok_;
                op = "in";
            } else if (peek_name("not") && toks_[tok_ + 1].kind == Token::Kind::name && toks_[tok_ + 1].text == "in") {
                tok_ += 2;
                op = "not in";
            } else {
                return e;
            }
            e = make(Expr::Kind::binary, line, op, {e, math1()});
        }
    }
    ExprPtr math1() {
        ExprPtr e = concat();
        while (peek_op("+") || peek_op("-")) {
            const int line = peek().line;
            const std::string op = toks_[tok_++].text;
            e = make(Expr::Kind::binary, line, op, {e, concat()});
        }
        return e;
    }
    ExprPtr concat() {
        ExprPtr e = math2();
        while (peek_op("~")) {
            const int line = peek().line;
            ++tok_;
            e = make(Expr::Kind::binary, line, "~", {e, math2()});
        }
        return e;
    }
    ExprPtr math2() {
        ExprPtr e = power();
        while (peek_op("*") || peek_op("/") || peek_op("//") || peek_op("%")) {
            const int line = peek().line;
            const std::string op = toks_[tok_++].text;
            e = make(Expr::Kind::binary, line, op, {e, power()});
        }
        return e;
    }
    ExprPtr power() {
        ExprPtr e = unary();
        while (peek_op("**")) {
            const int line = peek().line;
            ++tok_;
            e = make(Expr::Kind::binary, line, "**", {e, unary()});
        }
        return e;
    }
    ExprPtr unary() {
        if (peek_op("-") || peek_op("+")) {
            const int line = peek().line;
            const std::string op = toks_[tok_++].text;
            return filters(make(Expr::Kind::unary, line, op, {unary_operand()}));
        }
        return filters(postfix(primary()));
    }
    ExprPtr unary_operand() {
        const Nested nested(*this, peek().line);
        if (peek_op("-") || peek_op("+")) {
            const int line = peek().line;
            const std::string op = toks_[tok_++].text;
            return make(Expr::Kind::unary, line, op, {unary_operand()});
        }
        return postfix(primary());
    }
    void call_arguments(Expr& e) {
        if (take_op(")")) return;
        do {
            if (peek().kind == Token::Kind::name && toks_[tok_ + 1].kind == Token::Kind::op && toks_[tok_ + 1].text == "=") {
                std::string key = toks_[tok_].text;
                tok_ += 2;
                e.kwargs.emplace_back(std::move(key), expression());
            } else {
                if (!e.kwargs.empty()) fail_at(peek().line, "a positional argument after keyword arguments");
                e.args.push_back(expression());
            }
        } while (take_op(","));
        if (!take_op(")")) fail_at(peek().line, "expected ')' after arguments", describe());
    }
    ExprPtr filters(ExprPtr e) {
        for (;;) {
            if (peek_op("|")) {
                const int line = peek().line;
                ++tok_;
                std::string name = next_name("a filter name");
                while (take_op(".")) name += "." + next_name("a filter name");
                auto f = new_expr(Expr::Kind::filter);
                f->line = line;
                f->name = std::move(name);
                f->args.push_back(e);
                if (take_op("(")) call_arguments(*f);
                e = measured(f);
            } else if (peek_name("is")) {
                const int line = peek().line;
                ++tok_;
                auto t = new_expr(Expr::Kind::test);
                t->line = line;
                if (peek_name("not")) {
                    ++tok_;
                    t->negated = true;
                }
                t->name = next_name("a test name");
                t->args.push_back(e);
                if (take_op("(")) {
                    call_arguments(*t);
                } else if (peek().kind == Token::Kind::string || peek().kind == Token::Kind::integer ||
                           peek().kind == Token::Kind::floating ||
                           (peek().kind == Token::Kind::name && peek().text != "and" && peek().text != "or" && peek().text != "else" &&
                            peek().text != "if" && peek().text != "is" && peek().text != "in" && peek().text != "not")) {
                    t->args.push_back(postfix(primary()));  // `is divisibleby 3`, `is sameas none`
                }
                e = measured(t);
            } else {
                return e;
            }
        }
    }
    ExprPtr postfix(ExprPtr e) {
        for (;;) {
            const int line = peek().line;
            if (take_op(".")) {
                if (peek().kind == Token::Kind::integer) {  // `x.0` is x[0]
                    auto index = make(Expr::Kind::literal, line);
                    std::int64_t i = 0;
                    if (!parse_int64(toks_[tok_].text, &i)) fail_at(line, "the index ", toks_[tok_].text, " does not fit in 64 bits");
                    ++tok_;
                    std::const_pointer_cast<Expr>(index)->value = Value::integer(i);
                    e = make(Expr::Kind::item, line, {}, {e, index});
                } else {
                    e = make(Expr::Kind::attribute, line, next_name("an attribute name"), {e});
                }
            } else if (take_op("[")) {
                ExprPtr start, stop, step;
                bool is_slice = false;
                if (!peek_op(":")) start = expression();
                if (take_op(":")) {
                    is_slice = true;
                    if (!peek_op("]") && !peek_op(":")) stop = expression();
                    if (take_op(":") && !peek_op("]")) step = expression();
                }
                if (!take_op("]")) fail_at(line, "expected ']'", describe());
                e = is_slice ? make(Expr::Kind::slice, line, {}, {e, start, stop, step}) : make(Expr::Kind::item, line, {}, {e, start});
            } else if (take_op("(")) {
                auto call = new_expr(Expr::Kind::call);
                call->line = line;
                call->args.push_back(e);
                call_arguments(*call);
                e = measured(call);
            } else {
                return e;
            }
        }
    }
    ExprPtr primary() {
        const Token& t = peek();
        const int line = t.line;
        auto literal = [&](Value v) {
            auto e = new_expr(Expr::Kind::literal);
            e->line = line;
            e->value = std::move(v);
            return ExprPtr(e);
        };
        switch (t.kind) {
            case Token::Kind::string: {
                std::string s = toks_[tok_++].text;
                while (peek().kind == Token::Kind::string) s += toks_[tok_++].text;  // adjacent literals join
                return literal(Value::string(std::move(s)));
            }
            case Token::Kind::integer: {
                const std::string text = toks_[tok_++].text;
                std::int64_t i = 0;
                if (!parse_int64(text, &i)) fail_at(line, "the integer ", text, " does not fit in 64 bits");
                return literal(Value::integer(i));
            }
            case Token::Kind::floating: return literal(Value::floating(std::strtod(toks_[tok_++].text.c_str(), nullptr)));  // 1e999: inf
            case Token::Kind::name: {
                const std::string name = toks_[tok_++].text;
                if (name == "true" || name == "True") return literal(Value::boolean(true));
                if (name == "false" || name == "False") return literal(Value::boolean(false));
                if (name == "none" || name == "None") return literal(Value::none());
                return make(Expr::Kind::name, line, name);
            }
            case Token::Kind::op: {
                if (take_op("(")) {
                    if (take_op(")")) return make(Expr::Kind::tuple, line);
                    ExprPtr first = expression();
                    if (!peek_op(",")) {
                        if (!take_op(")")) fail_at(line, "expected ')'", describe());
                        return first;
                    }
                    std::vector<ExprPtr> items{first};
                    while (take_op(",") && !peek_op(")")) items.push_back(expression());
                    if (!take_op(")")) fail_at(line, "expected ')'", describe());
                    return make(Expr::Kind::tuple, line, {}, std::move(items));
                }
                if (take_op("[")) {
                    std::vector<ExprPtr> items;
                    while (!peek_op("]")) {
                        items.push_back(expression());
                        if (!take_op(",")) break;
                    }
                    if (!take_op("]")) fail_at(line, "expected ']'", describe());
                    return make(Expr::Kind::list, line, {}, std::move(items));
                }
                if (take_op("{")) {
                    std::vector<ExprPtr> items;
                    while (!peek_op("}")) {
                        items.push_back(expression());
                        if (!take_op(":")) fail_at(line, "expected ':' in a dict literal", describe());
                        items.push_back(expression());
                        if (!take_op(",")) break;
                    }
                    if (!take_op("}")) fail_at(line, "expected '}'", describe());
                    return make(Expr::Kind::dict, line, {}, std::move(items));
                }
                break;
            }
            case Token::Kind::end: fail_at(line, "an expression is missing");
        }
        fail_at(line, "unexpected '", t.text, "' in an expression");
    }

    std::string normalized_;
    std::string_view src_;
    std::vector<Part> parts_;
    std::size_t pos_ = 0;
    std::vector<Token> toks_;
    std::size_t tok_ = 0;
    int nesting_ = 0;
};

}  // namespace detail

// Reads a template. Throws Error(invalid_argument) naming the line of a syntax error or of a
// construct this interpreter does not run.
inline Program parse(std::string_view source) { return detail::Parser(source).parse(); }

}  // namespace qwen3::chat::jinja
