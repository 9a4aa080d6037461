// qwen3.hpp 0.1.0 - single-header edition of the qwen3.hpp library.
//
// GENERATED FILE - DO NOT EDIT. Made by tools/amalgamate.py from include/qwen3/qwen3.hpp and the
// headers it includes (33 files); regenerate after changing include/ with
//
//     python3 tools/amalgamate.py
//
// It is the same code as `#include <qwen3/qwen3.hpp>`: use one or the other in a program, not
// both. Needs C++20, xsimd (header-only) and threads (-pthread); see docs/options.md for the
// compile-time options (QWEN3_SIMD_ARCH, QWEN3_KV_TYPE, QWEN3_DEFAULT_MAX_CONTEXT, ...).
#pragma once
// ===== qwen3/qwen3.hpp =====
// qwen3.hpp - the whole library: include this one header.
//
// Load a Qwen3 dense checkpoint (GGUF or a Hugging Face folder), tokenize, run the model, sample and
// stream text. Model dimensions are compile-time configurations (config.hpp); weights are memory-mapped.

// ===== qwen3/chat.hpp =====
// qwen3/chat.hpp - conversations with Qwen3: the chat template and reading the model's replies.
//
//   chat/messages.hpp      Message, ToolCall, Options; the JSON request the template reads
//   chat/template.hpp      render_prompt(): the Qwen3 chat template, byte-exact, with the byte
//                          ranges that came from user data (tokenize those without special tokens)
//   chat/reply_parser.hpp  ThinkSplitter (streaming reasoning/answer split), parse_reply() (tool
//                          calls), expects_thinking() (enable_thinking and /think, /no_think)

// ===== qwen3/chat/messages.hpp =====
// qwen3/chat/messages.hpp - a typed conversation, and the JSON the chat template reads.
//
// The template (chat/template.hpp) works on JSON shaped like Hugging Face's apply_chat_template
// arguments: {"messages": [...], "tools": [...], "add_generation_prompt": b, "enable_thinking": b}.
// These types are the convenient C++ way to build that JSON: every field here becomes the key the
// template reads, so anything a Message can say renders exactly as the template renders it.

#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

// ===== qwen3/format/json.hpp =====
// qwen3/format/json.hpp - a small, strict JSON reader and writer.
//
// Used for config.json, safetensors headers and indexes, tokenizer.json, chat messages and the
// command-line tools. Objects keep their keys in insertion order (as Python dicts do), because the
// chat template prints tool schemas and arguments in the order they were written.
//
// Hostile input: nesting depth is bounded (kDefaultMaxDepth), strings must be valid UTF-8, escapes
// must be complete, and every error names the byte offset. Nothing is allocated in proportion to a
// number read from the input; allocation follows the input's own length. The parsed tree costs up to
// ~60 bytes per input byte ("[0,0,0,...]"), so readers of untrusted files also cap the number of
// values (ParseOptions::max_values), which bounds the tree whatever the input looks like.
//
// Duplicate object keys: RFC 8259 leaves them to the implementation. By default both members are
// kept and Value::find returns the first (Python's json would keep the last), which is harmless for
// data we produce or only print. Checkpoint files (config.json, safetensors headers and indexes) are
// parsed with ParseOptions::unique_keys, which rejects a duplicate with its byte offset, because there
// the two readings would silently disagree with Hugging Face's.

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <unordered_set>
#include <variant>

// ===== qwen3/error.hpp =====
// qwen3/error.hpp - the library's one exception type.
//
// Every failure the library reports is a qwen3::Error. Its message says what went wrong, where
// (file, tensor, byte offset, token position) and what was expected, so a user can act on it.
// The code lets a program (or the C ABI) branch on the kind of failure without parsing text.

#include <stdexcept>
#include <type_traits>

namespace qwen3 {

enum class ErrorCode {
    io,                // a file could not be opened, read or mapped
    format,            // a file is malformed: bad magic, truncated, out-of-bounds offsets, bad JSON
    unsupported,       // a valid file uses something this library does not implement
    shape_mismatch,    // a tensor's shape or type does not fit the compiled configuration
    config_mismatch,   // the file's hyperparameters do not fit the compiled configuration
    missing_tensor,    // a tensor the model needs is absent
    context_overflow,  // a position past the end of the KV arena
    invalid_argument,  // a caller passed a value outside the documented range
    tokenizer,         // tokenizer data is inconsistent, or text could not be tokenized
    cancelled,         // a callback asked to stop
};

inline const char* to_string(ErrorCode code) noexcept {
    switch (code) {
        case ErrorCode::io: return "io";
        case ErrorCode::format: return "format";
        case ErrorCode::unsupported: return "unsupported";
        case ErrorCode::shape_mismatch: return "shape_mismatch";
        case ErrorCode::config_mismatch: return "config_mismatch";
        case ErrorCode::missing_tensor: return "missing_tensor";
        case ErrorCode::context_overflow: return "context_overflow";
        case ErrorCode::invalid_argument: return "invalid_argument";
        case ErrorCode::tokenizer: return "tokenizer";
        case ErrorCode::cancelled: return "cancelled";
    }
    return "unknown";
}

class Error : public std::runtime_error {
public:
    Error(ErrorCode code, const std::string& message)
        : std::runtime_error(message), code_(code) {}
    ErrorCode code() const noexcept { return code_; }

private:
    ErrorCode code_;
};

namespace detail {
// Builds a message from pieces: fail(ErrorCode::format, path, ": offset ", 12, " past end").
template <typename... Parts>
[[noreturn]] void fail(ErrorCode code, Parts&&... parts) {
    std::string message;
    auto append = [&message](const auto& part) {
        using T = std::decay_t<decltype(part)>;
        if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, char> && !std::is_same_v<T, bool>)
            message += std::to_string(part);
        else if constexpr (std::is_same_v<T, bool>)
            message += part ? "true" : "false";
        else
            message += part;
    };
    (append(parts), ...);
    throw Error(code, message);
}
}  // namespace detail

}  // namespace qwen3
// ===== end of qwen3/error.hpp =====

namespace qwen3::json {

class Value;
struct Member;
using Array = std::vector<Value>;
using Object = std::vector<Member>;

namespace detail_json {
// Arrays and objects live behind a pointer with value semantics: a Value holding a vector of an
// incomplete type is not portable (clang's libstdc++ checks reject it).
template <class T>
class Box {
public:
    Box(T v) : p_(std::make_unique<T>(std::move(v))) {}
    Box(const Box& other) : p_(std::make_unique<T>(*other.p_)) {}
    Box(Box&&) noexcept = default;
    Box& operator=(const Box& other) {
        p_ = std::make_unique<T>(*other.p_);
        return *this;
    }
    Box& operator=(Box&&) noexcept = default;
    T& get() { return *p_; }
    const T& get() const { return *p_; }

private:
    std::unique_ptr<T> p_;
};
}  // namespace detail_json

// A number keeps the text it was written as: integers of any length print back unchanged, and a
// reader can tell 1 from 1.0 (Python's json does, and the chat template prints what Python prints).
struct Number {
    std::string text;
    double value = 0;
    bool integral = true;  // written without fraction or exponent
};

class Value {
public:
    enum class Kind : std::uint8_t { null, boolean, number, string, array, object };

    Value() = default;
    Value(std::nullptr_t) {}
    Value(bool b) : data_(b) {}
    Value(Number n) : data_(std::move(n)) {}
    Value(std::string s) : data_(std::move(s)) {}
    Value(const char* s) : data_(std::string(s)) {}
    Value(std::string_view s) : data_(std::string(s)) {}
    Value(Array a);   // defined after Member, which must be complete
    Value(Object o);
    static Value integer(std::int64_t v) { return Value(Number{std::to_string(v), double(v), true}); }

    Kind kind() const noexcept { return static_cast<Kind>(data_.index()); }
    bool is_null() const noexcept { return kind() == Kind::null; }
    bool is_bool() const noexcept { return kind() == Kind::boolean; }
    bool is_number() const noexcept { return kind() == Kind::number; }
    bool is_integer() const noexcept { return is_number() && std::get<Number>(data_).integral; }
    bool is_string() const noexcept { return kind() == Kind::string; }
    bool is_array() const noexcept { return kind() == Kind::array; }
    bool is_object() const noexcept { return kind() == Kind::object; }

    // Typed access; each throws Error(format) naming the expected kind when the value is another.
    bool as_bool() const { return get<bool>("a boolean"); }
    double as_double() const { return get<Number>("a number").value; }
    std::int64_t as_int() const;
    const Number& as_number() const { return get<Number>("a number"); }
    const std::string& as_string() const { return get<std::string>("a string"); }
    const Array& as_array() const { return get<detail_json::Box<Array>>("an array").get(); }
    const Object& as_object() const { return get<detail_json::Box<Object>>("an object").get(); }
    Array& as_array() { return const_cast<Array&>(std::as_const(*this).as_array()); }
    Object& as_object() { return const_cast<Object&>(std::as_const(*this).as_object()); }

    // Object member by key: nullptr when absent or when this is not an object. Linear in the
    // number of members (objects here are small; large maps such as a vocabulary are iterated).
    const Value* find(std::string_view key) const;
    // Object member by key; throws Error(format) naming the key when absent.
    const Value& at(std::string_view key) const;
    // Appends or replaces a member (this must be an object or null, which becomes an object).
    void set(std::string key, Value value);

    static const char* kind_name(Kind k) noexcept;

private:
    template <typename T>
    const T& get(const char* expected) const {
        if (const T* p = std::get_if<T>(&data_)) return *p;
        detail::fail(ErrorCode::format, "JSON: expected ", expected, ", found ", kind_name(kind()));
    }
    std::variant<std::nullptr_t, bool, Number, std::string, detail_json::Box<Array>, detail_json::Box<Object>> data_;
};

struct Member {
    std::string key;
    Value value;
};

inline Value::Value(Array a) : data_(detail_json::Box<Array>(std::move(a))) {}
inline Value::Value(Object o) : data_(detail_json::Box<Object>(std::move(o))) {}

inline constexpr int kDefaultMaxDepth = 128;

// Limits and strictness for parsing untrusted text.
struct ParseOptions {
    int max_depth = kDefaultMaxDepth;  // arrays/objects nested deeper than this are an error
    std::size_t max_values = std::size_t(-1);  // every value counts, members and elements included
    bool unique_keys = false;  // an object with the same key twice is an error (see the top of this file)
};

// Parses a complete JSON text (RFC 8259; surrounding whitespace allowed, nothing else).
// Throws Error(format) with the byte offset on any syntax error, invalid UTF-8, a lone surrogate
// escape, nesting deeper than max_depth, more than max_values values, or (with unique_keys) a
// duplicate key. `what` names the source in messages (e.g. a path).
Value parse(std::string_view text, std::string_view what, const ParseOptions& options);
Value parse(std::string_view text, std::string_view what = "JSON", int max_depth = kDefaultMaxDepth);

// Compact output: no spaces, keys in order, non-ASCII kept as UTF-8.
std::string dump(const Value& v);
// Python's json.dumps(v, ensure_ascii=False) with default separators (", ", ": "); numbers as
// Python prints them (floats by repr). This is what the chat template's `tojson` produces.
std::string dump_python(const Value& v);
// A JSON string literal for `s` (quotes included), escaping as Python's json.dumps does.
std::string quote(std::string_view s);
// Python's repr(float): shortest round-trip digits, "1.0", "1e-05", "1e+16".
std::string python_float_repr(double x);

// ---------------------------------------------------------------------------------------------
// implementation

inline const char* Value::kind_name(Kind k) noexcept {
    switch (k) {
        case Kind::null: return "null";
        case Kind::boolean: return "a boolean";
        case Kind::number: return "a number";
        case Kind::string: return "a string";
        case Kind::array: return "an array";
        case Kind::object: return "an object";
    }
    return "?";
}

inline std::int64_t Value::as_int() const {
    const Number& n = as_number();
    std::int64_t out = 0;
    if (n.integral) {
        auto [ptr, ec] = std::from_chars(n.text.data(), n.text.data() + n.text.size(), out);
        if (ec == std::errc() && ptr == n.text.data() + n.text.size()) return out;
        detail::fail(ErrorCode::format, "JSON: integer ", n.text, " does not fit in 64 bits");
    }
    // 5.0 or 1e3 are accepted where an integer is expected, if exact and in range
    if (std::floor(n.value) == n.value && std::fabs(n.value) < 9.2e18) return std::int64_t(n.value);
    detail::fail(ErrorCode::format, "JSON: expected an integer, found ", n.text);
}

inline const Value* Value::find(std::string_view key) const {
    if (const auto* box = std::get_if<detail_json::Box<Object>>(&data_))
        if (const Object* o = &box->get())
        for (const Member& m : *o)
            if (m.key == key) return &m.value;
    return nullptr;
}

inline const Value& Value::at(std::string_view key) const {
    if (!is_object()) detail::fail(ErrorCode::format, "JSON: expected an object holding \"", key, "\", found ", kind_name(kind()));
    if (const Value* v = find(key)) return *v;
    detail::fail(ErrorCode::format, "JSON: missing key \"", key, "\"");
}

inline void Value::set(std::string key, Value value) {
    if (is_null()) data_ = detail_json::Box<Object>(Object{});
    Object& o = as_object();
    for (Member& m : o)
        if (m.key == key) {
            m.value = std::move(value);
            return;
        }
    o.push_back(Member{std::move(key), std::move(value)});
}

namespace detail_json {

class Parser {
public:
    Parser(std::string_view text, std::string_view what, const ParseOptions& options)
        : p_(text.data()), begin_(text.data()), end_(text.data() + text.size()), what_(what), options_(options) {}

    Value parse_document() {
        skip_ws();
        Value v = parse_value(0);
        skip_ws();
        if (p_ != end_) error("unexpected text after the JSON value");
        return v;
    }

private:
    [[noreturn]] void error(std::string_view msg) const {
        qwen3::detail::fail(ErrorCode::format, what_, ": invalid JSON at byte ", std::size_t(p_ - begin_), ": ", msg);
    }

    void skip_ws() {
        while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
    }

    bool consume_literal(std::string_view lit) {
        if (std::size_t(end_ - p_) >= lit.size() && std::memcmp(p_, lit.data(), lit.size()) == 0) {
            p_ += lit.size();
            return true;
        }
        return false;
    }

    Value parse_value(int depth) {
        if (p_ == end_) error("unexpected end of input");
        // counted before the value is built, so the tree never holds more than max_values values
        if (++values_ > options_.max_values)
            error("more than " + std::to_string(options_.max_values) + " values (the limit for this file)");
        switch (*p_) {
            case '{': return parse_object(depth + 1);
            case '[': return parse_array(depth + 1);
            case '"': return Value(parse_string());
            case 't':
                if (consume_literal("true")) return Value(true);
                break;
            case 'f':
                if (consume_literal("false")) return Value(false);
                break;
            case 'n':
                if (consume_literal("null")) return Value(nullptr);
                break;
            default:
                if (*p_ == '-' || (*p_ >= '0' && *p_ <= '9')) return Value(parse_number());
        }
        error("expected a value");
    }

    Value parse_object(int depth) {
        if (depth > options_.max_depth) error("nesting deeper than the limit of " + std::to_string(options_.max_depth));
        ++p_;  // '{'
        Object members;
        skip_ws();
        if (p_ != end_ && *p_ == '}') {
            ++p_;
            return Value(std::move(members));
        }
        std::unordered_set<std::string> seen;  // keys so far, kept only when unique_keys asks for it
        for (;;) {
            skip_ws();
            if (p_ == end_ || *p_ != '"') error("expected a string key");
            const char* key_at = p_;
            std::string key = parse_string();
            if (options_.unique_keys && !seen.insert(key).second) {
                p_ = key_at;
                error("duplicate key " + quote(key));
            }
            skip_ws();
            if (p_ == end_ || *p_ != ':') error("expected ':'");
            ++p_;
            skip_ws();
            members.push_back(Member{std::move(key), parse_value(depth)});
            skip_ws();
            if (p_ == end_) error("unterminated object");
            if (*p_ == ',') {
                ++p_;
                continue;
            }
            if (*p_ == '}') {
                ++p_;
                return Value(std::move(members));
            }
            error("expected ',' or '}'");
        }
    }

    Value parse_array(int depth) {
        if (depth > options_.max_depth) error("nesting deeper than the limit of " + std::to_string(options_.max_depth));
        ++p_;  // '['
        Array items;
        skip_ws();
        if (p_ != end_ && *p_ == ']') {
            ++p_;
            return Value(std::move(items));
        }
        for (;;) {
            skip_ws();
            items.push_back(parse_value(depth));
            skip_ws();
            if (p_ == end_) error("unterminated array");
            if (*p_ == ',') {
                ++p_;
                continue;
            }
            if (*p_ == ']') {
                ++p_;
                return Value(std::move(items));
            }
            error("expected ',' or ']'");
        }
    }

    Number parse_number() {
        const char* start = p_;
        bool integral = true;
        if (*p_ == '-') ++p_;
        if (p_ == end_) error("incomplete number");
        if (*p_ == '0') {
            ++p_;
        } else if (*p_ >= '1' && *p_ <= '9') {
            while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
        } else {
            error("invalid number");
        }
        if (p_ != end_ && *p_ == '.') {
            integral = false;
            ++p_;
            if (p_ == end_ || *p_ < '0' || *p_ > '9') error("digit expected after '.'");
            while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
        }
        if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
            integral = false;
            ++p_;
            if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
            if (p_ == end_ || *p_ < '0' || *p_ > '9') error("digit expected in exponent");
            while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
        }
        Number n;
        n.text.assign(start, p_);
        n.integral = integral;
        // from_chars gives the correctly rounded double; out-of-range values become +-inf or 0
        auto [ptr, ec] = std::from_chars(n.text.data(), n.text.data() + n.text.size(), n.value);
        if (ec == std::errc::result_out_of_range) n.value = out_of_range_value(n.text);
        (void)ptr;
        return n;
    }

    // A number too large or too small for a double: +-inf when its decimal magnitude is positive,
    // +-0 when negative (as Python's float() reads it).
    static double out_of_range_value(const std::string& text) {
        const bool negative = text[0] == '-';
        long exponent = 0;
        const std::size_t e = text.find_first_of("eE");
        if (e != std::string::npos) exponent = std::strtol(text.c_str() + e + 1, nullptr, 10);
        const std::string mantissa = text.substr(negative ? 1 : 0, e == std::string::npos ? std::string::npos : e - (negative ? 1 : 0));
        const std::size_t point = mantissa.find('.');
        const std::size_t first = mantissa.find_first_of("123456789");
        long magnitude = exponent;  // decimal position of the first significant digit
        if (first != std::string::npos) {
            const long point_at = long(point == std::string::npos ? mantissa.size() : point);
            magnitude += long(first) < point_at ? point_at - long(first) : point_at - long(first);
        }
        const double v = magnitude > 0 ? HUGE_VAL : 0.0;
        return negative ? -v : v;
    }

    static void append_utf8(std::string& out, std::uint32_t cp) {
        if (cp < 0x80) {
            out += char(cp);
        } else if (cp < 0x800) {
            out += char(0xC0 | (cp >> 6));
            out += char(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += char(0xE0 | (cp >> 12));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        } else {
            out += char(0xF0 | (cp >> 18));
            out += char(0x80 | ((cp >> 12) & 0x3F));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        }
    }

    std::uint32_t parse_hex4() {
        if (end_ - p_ < 4) error("incomplete \\u escape");
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) {
            char c = *p_++;
            v <<= 4;
            if (c >= '0' && c <= '9') v |= std::uint32_t(c - '0');
            else if (c >= 'a' && c <= 'f') v |= std::uint32_t(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= std::uint32_t(c - 'A' + 10);
            else error("invalid hex digit in \\u escape");
        }
        return v;
    }

    // Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid (overlong, surrogate, > U+10FFFF).
    static int utf8_sequence_length(const unsigned char* p, const unsigned char* end) {
        unsigned char c = p[0];
        if (c < 0x80) return 1;
        auto cont = [&](int i) { return p + i < end && (p[i] & 0xC0) == 0x80; };
        if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
        if (c >= 0xE0 && c <= 0xEF) {
            if (!cont(1) || !cont(2)) return 0;
            if (c == 0xE0 && p[1] < 0xA0) return 0;  // overlong
            if (c == 0xED && p[1] >= 0xA0) return 0;  // surrogate
            return 3;
        }
        if (c >= 0xF0 && c <= 0xF4) {
            if (!cont(1) || !cont(2) || !cont(3)) return 0;
            if (c == 0xF0 && p[1] < 0x90) return 0;  // overlong
            if (c == 0xF4 && p[1] >= 0x90) return 0;  // > U+10FFFF
            return 4;
        }
        return 0;
    }

    std::string parse_string() {
        ++p_;  // opening quote
        std::string out;
        for (;;) {
            // copy the run of plain characters in one go
            const char* run = p_;
            while (p_ != end_ && *p_ != '"' && *p_ != '\\' && static_cast<unsigned char>(*p_) >= 0x20 &&
                   static_cast<unsigned char>(*p_) < 0x80)
                ++p_;
            out.append(run, p_);
            if (p_ == end_) error("unterminated string");
            unsigned char c = static_cast<unsigned char>(*p_);
            if (c == '"') {
                ++p_;
                return out;
            }
            if (c < 0x20) error("control character in string (must be escaped)");
            if (c >= 0x80) {
                int n = utf8_sequence_length(reinterpret_cast<const unsigned char*>(p_),
                                             reinterpret_cast<const unsigned char*>(end_));
                if (n == 0) error("invalid UTF-8 in string");
                out.append(p_, p_ + n);
                p_ += n;
                continue;
            }
            // backslash escape
            ++p_;
            if (p_ == end_) error("unterminated escape");
            char e = *p_++;
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    std::uint32_t cp = parse_hex4();
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        if (end_ - p_ < 6 || p_[0] != '\\' || p_[1] != 'u') error("lone high surrogate in \\u escape");
                        p_ += 2;
                        std::uint32_t lo = parse_hex4();
                        if (lo < 0xDC00 || lo > 0xDFFF) error("high surrogate not followed by a low surrogate");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                        error("lone low surrogate in \\u escape");
                    }
                    append_utf8(out, cp);
                    break;
                }
                default: error("invalid escape character");
            }
        }
    }

    const char* p_;
    const char* begin_;
    const char* end_;
    std::string_view what_;
    ParseOptions options_;
    std::size_t values_ = 0;
};

inline void dump_to(std::string& out, const Value& v, bool python);

inline void dump_string(std::string& out, std::string_view s) {
    out += '"';
    for (char ch : s) {
        unsigned char c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20) {
                    static const char hex[] = "0123456789abcdef";
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                } else {
                    out += ch;
                }
        }
    }
    out += '"';
}

inline void dump_number(std::string& out, const Number& n, bool python) {
    if (!python) {
        out += n.text;
        return;
    }
    if (n.integral) {
        // Python ints print canonically; the only JSON integer text that differs is "-0"
        out += (n.text == "-0") ? "0" : n.text;
        return;
    }
    out += python_float_repr(n.value);
}

inline void dump_to(std::string& out, const Value& v, bool python) {
    switch (v.kind()) {
        case Value::Kind::null: out += "null"; break;
        case Value::Kind::boolean: out += v.as_bool() ? "true" : "false"; break;
        case Value::Kind::number: dump_number(out, v.as_number(), python); break;
        case Value::Kind::string: dump_string(out, v.as_string()); break;
        case Value::Kind::array: {
            out += '[';
            bool first = true;
            for (const Value& item : v.as_array()) {
                if (!first) out += python ? ", " : ",";
                first = false;
                dump_to(out, item, python);
            }
            out += ']';
            break;
        }
        case Value::Kind::object: {
            out += '{';
            bool first = true;
            for (const Member& m : v.as_object()) {
                if (!first) out += python ? ", " : ",";
                first = false;
                dump_string(out, m.key);
                out += python ? ": " : ":";
                dump_to(out, m.value, python);
            }
            out += '}';
            break;
        }
    }
}

}  // namespace detail_json

inline Value parse(std::string_view text, std::string_view what, const ParseOptions& options) {
    return detail_json::Parser(text, what, options).parse_document();
}

inline Value parse(std::string_view text, std::string_view what, int max_depth) {
    ParseOptions options;
    options.max_depth = max_depth;
    return parse(text, what, options);
}

inline std::string dump(const Value& v) {
    std::string out;
    detail_json::dump_to(out, v, false);
    return out;
}

inline std::string dump_python(const Value& v) {
    std::string out;
    detail_json::dump_to(out, v, true);
    return out;
}

inline std::string quote(std::string_view s) {
    std::string out;
    detail_json::dump_string(out, s);
    return out;
}

inline std::string python_float_repr(double x) {
    if (std::isnan(x)) return "NaN";
    if (std::isinf(x)) return x > 0 ? "Infinity" : "-Infinity";
    // shortest round-trip digits in scientific form: "d.ddde+XX"
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
    (void)ec;
    std::string_view sci(buf, std::size_t(end - buf));
    std::size_t epos = sci.find('e');
    std::string_view mantissa = sci.substr(0, epos);
    int exponent = std::stoi(std::string(sci.substr(epos + 1)));
    bool negative = !mantissa.empty() && mantissa[0] == '-';
    if (negative) mantissa.remove_prefix(1);
    std::string digits;
    for (char c : mantissa)
        if (c != '.') digits += c;
    // Python's repr: value = 0.DIGITS x 10^decpt; scientific when decpt <= -4 or decpt > 16
    int decpt = exponent + 1;
    std::string out = negative ? "-" : "";
    if (decpt <= -4 || decpt > 16) {
        out += digits[0];
        if (digits.size() > 1) {
            out += '.';
            out.append(digits, 1, std::string::npos);
        }
        char exp[16];
        int e = decpt - 1;
        std::snprintf(exp, sizeof exp, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
        out += exp;
    } else if (decpt <= 0) {
        out += "0.";
        out.append(std::size_t(-decpt), '0');
        out += digits;
    } else if (std::size_t(decpt) >= digits.size()) {
        out += digits;
        out.append(std::size_t(decpt) - digits.size(), '0');
        out += ".0";
    } else {
        out.append(digits, 0, std::size_t(decpt));
        out += '.';
        out.append(digits, std::size_t(decpt), std::string::npos);
    }
    return out;
}

}  // namespace qwen3::json
// ===== end of qwen3/format/json.hpp =====

namespace qwen3::chat {

// A function call the assistant made. `arguments` is normally a JSON object; a JSON string is
// printed verbatim by the template (so it must hold JSON text for the model to see valid JSON).
struct ToolCall {
    std::string name;
    json::Value arguments = json::Value(json::Object{});
};

// One turn. Roles the template knows: "system", "user", "assistant", "tool" (a tool's result);
// messages with any other role are skipped by the template.
struct Message {
    std::string role;
    std::string content;
    // The assistant's thinking, without the <think> tags. When absent, the template looks for a
    // <think>...</think> block inside `content` instead.
    std::optional<std::string> reasoning_content;
    std::vector<ToolCall> tool_calls;  // assistant turns only

    static Message system(std::string text) { return {"system", std::move(text), std::nullopt, {}}; }
    static Message user(std::string text) { return {"user", std::move(text), std::nullopt, {}}; }
    static Message assistant(std::string text, std::optional<std::string> reasoning = std::nullopt,
                             std::vector<ToolCall> calls = {}) {
        return {"assistant", std::move(text), std::move(reasoning), std::move(calls)};
    }
    static Message tool(std::string result) { return {"tool", std::move(result), std::nullopt, {}}; }
};

struct Options {
    // End the prompt with "<|im_start|>assistant\n" so the model writes the next assistant turn.
    bool add_generation_prompt = true;
    // false: the prompt ends with an empty "<think>\n\n</think>\n\n" block, so the model answers
    // without thinking. true renders exactly as leaving enable_thinking unset does.
    bool enable_thinking = true;
};

// {"role": ..., "content": ..., ["reasoning_content": ...,] ["tool_calls": [{"type": "function",
// "function": {"name": ..., "arguments": ...}}, ...]]}. Never throws except std::bad_alloc.
json::Value to_json(const Message& message);
json::Value to_json(const ToolCall& call);

// The template's input object. `tools` are JSON schemas as OpenAI-style tool definitions
// ({"type": "function", "function": {"name", "description", "parameters"}}); when empty, no "tools"
// key is written (the template then renders no tools section).
json::Value make_chat_request(std::span<const Message> messages, const Options& options = {},
                              std::span<const json::Value> tools = {});

// ---------------------------------------------------------------------------------------------
// implementation

inline json::Value to_json(const ToolCall& call) {
    json::Value function(json::Object{});
    function.set("name", json::Value(call.name));
    function.set("arguments", call.arguments);
    json::Value out(json::Object{});
    out.set("type", json::Value("function"));
    out.set("function", std::move(function));
    return out;
}

inline json::Value to_json(const Message& message) {
    json::Value out(json::Object{});
    out.set("role", json::Value(message.role));
    out.set("content", json::Value(message.content));
    if (message.reasoning_content) out.set("reasoning_content", json::Value(*message.reasoning_content));
    if (!message.tool_calls.empty()) {
        json::Array calls;
        calls.reserve(message.tool_calls.size());
        for (const ToolCall& call : message.tool_calls) calls.push_back(to_json(call));
        out.set("tool_calls", json::Value(std::move(calls)));
    }
    return out;
}

inline json::Value make_chat_request(std::span<const Message> messages, const Options& options,
                                     std::span<const json::Value> tools) {
    json::Array list;
    list.reserve(messages.size());
    for (const Message& m : messages) list.push_back(to_json(m));
    json::Value request(json::Object{});
    request.set("messages", json::Value(std::move(list)));
    if (!tools.empty()) request.set("tools", json::Value(json::Array(tools.begin(), tools.end())));
    request.set("add_generation_prompt", json::Value(options.add_generation_prompt));
    request.set("enable_thinking", json::Value(options.enable_thinking));
    return request;
}

}  // namespace qwen3::chat
// ===== end of qwen3/chat/messages.hpp =====
// ===== qwen3/chat/reply_parser.hpp =====
// qwen3/chat/reply_parser.hpp - reading what the model wrote: thinking, answer, tool calls.
//
// A Qwen3 reply in thinking mode is "<think>\n...reasoning...\n</think>\n\nanswer"; in non-thinking
// mode the prompt already holds an empty think block and the reply is just the answer. Tool calls are
// "<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>" blocks in the answer.
//
// The split follows the chat template's own reading of an assistant turn (reasoning.strip('\n'),
// answer.lstrip('\n')), so feeding a ParsedReply back as an assistant Message (to_message) renders
// the turn the way the model wrote it. ThinkSplitter does the split while tokens stream in; its
// deltas concatenate to exactly what parse_reply returns for the whole text, however the text is cut.
//
// Nothing here throws on model output: malformed tool calls are reported, not raised.

#include <algorithm>


namespace qwen3::chat {

// New text for each part since the last call (either may be empty).
struct ReplyDelta {
    std::string reasoning;
    std::string answer;
};

// Streaming think/answer splitter. Feed decoded text pieces in order (any cut, even inside a tag or
// a UTF-8 sequence: bytes are never reordered, only held back), then call finish() once.
//  - A reply whose first non-whitespace text is "<think>" starts a think block, ended by the first
//    "</think>"; everything after it is answer. Any other reply is all answer.
//  - Text that could still become a tag ("</thi" at the end of a piece) is held back until the next
//    piece decides it; so are newlines that the template would strip at the end of the reasoning.
class ThinkSplitter {
public:
    enum class State { start, reasoning, answer };

    // starts_in_reasoning: the prompt itself ended inside an open think block ("...<think>\n"), so
    // the reply begins with reasoning and no "<think>" will come.
    explicit ThinkSplitter(bool starts_in_reasoning = false)
        : state_(starts_in_reasoning ? State::reasoning : State::start), thought_(starts_in_reasoning) {}

    // Never throws (except std::bad_alloc).
    ReplyDelta feed(std::string_view piece);
    // Releases what was held back: an unfinished tag at the end is plain text. Call once, at the end.
    ReplyDelta finish();

    State state() const noexcept { return state_; }
    bool thought() const noexcept { return thought_; }  // a think block was opened
    bool reasoning_closed() const noexcept { return closed_; }  // ... and "</think>" has been seen

private:
    void emit_reasoning(ReplyDelta& out, std::string_view text);
    void emit_answer(ReplyDelta& out, std::string_view text);
    void process(ReplyDelta& out);

    State state_;
    bool thought_;
    bool closed_ = false;
    bool reasoning_begun_ = false;  // a non-newline reasoning byte was emitted (leading '\n's are dropped)
    bool answer_begun_ = false;     // likewise for the answer
    std::string pending_;           // bytes held back
};

// A block the model wrote as a tool call but that is not one: JSON that does not parse, no "name",
// or no "</tool_call>" before the end. Its text stays in ParsedReply::content.
struct InvalidToolCall {
    std::string text;   // the block, tags included
    std::string error;  // why it was not accepted
};

struct ParsedReply {
    std::string reasoning;  // inside <think>...</think>, newlines at both ends removed
    std::string content;    // the answer without the tool-call blocks
    std::vector<ToolCall> tool_calls;
    std::vector<InvalidToolCall> invalid_tool_calls;
    bool thought = false;  // the reply had a think block (possibly empty)
};

// Splits a complete reply (see ThinkSplitter) and takes the <tool_call> blocks out of the answer.
// A block's body must be a JSON object with a string "name"; "arguments" (any JSON value) defaults
// to {}. The newline the template writes before each block is removed from the content, as are
// whitespace-only gaps between and after blocks. Never throws (except std::bad_alloc).
ParsedReply parse_reply(std::string_view text, bool starts_in_reasoning = false);

// The reply as an assistant message for the conversation history: content, tool calls, and the
// reasoning (as reasoning_content) when the model thought.
Message to_message(const ParsedReply& reply);

// Whether the model is expected to think in its next reply, for display only (the model decides;
// ThinkSplitter handles either). false when enable_thinking is false. Otherwise the Qwen3 soft
// switches decide: the most recent "/think" or "/no_think" in a user or system message wins (a
// switch is the word itself: not preceded by a letter, digit, '_' or '/', not followed by a letter,
// digit or '_'); with none, true. Message text is never changed: the template passes switches on
// to the model as written. Never throws for any JSON value.
bool expects_thinking(const json::Value& request);
bool expects_thinking(std::span<const Message> messages, const Options& options);

// ---------------------------------------------------------------------------------------------
// implementation

namespace detail {

inline constexpr std::string_view kThinkOpen = "<think>";
inline constexpr std::string_view kThinkClose = "</think>";
inline constexpr std::string_view kToolCallOpen = "<tool_call>";
inline constexpr std::string_view kToolCallClose = "</tool_call>";

// Length of the longest suffix of `text` that is a proper prefix of `tag`.
inline std::size_t partial_tag_suffix(std::string_view text, std::string_view tag) {
    for (std::size_t n = std::min(text.size(), tag.size() - 1); n > 0; --n)
        if (text.substr(text.size() - n) == tag.substr(0, n)) return n;
    return 0;
}

inline bool is_reply_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

inline bool is_word_byte(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace detail

inline void ThinkSplitter::emit_reasoning(ReplyDelta& out, std::string_view text) {
    if (!reasoning_begun_) {
        std::size_t i = text.find_first_not_of('\n');
        if (i == std::string_view::npos) return;
        text.remove_prefix(i);
        reasoning_begun_ = true;
    }
    out.reasoning += text;
}

inline void ThinkSplitter::emit_answer(ReplyDelta& out, std::string_view text) {
    if (!answer_begun_) {
        std::size_t i = text.find_first_not_of('\n');
        if (i == std::string_view::npos) return;
        text.remove_prefix(i);
        answer_begun_ = true;
    }
    out.answer += text;
}

inline void ThinkSplitter::process(ReplyDelta& out) {
    if (state_ == State::start) {
        std::string_view text = pending_;
        std::size_t first = 0;
        while (first < text.size() && detail::is_reply_space(text[first])) ++first;
        std::string_view rest = text.substr(first);
        if (rest.starts_with(detail::kThinkOpen)) {
            state_ = State::reasoning;
            thought_ = true;
            pending_.erase(0, first + detail::kThinkOpen.size());
        } else if (detail::kThinkOpen.starts_with(rest)) {
            return;  // only whitespace and the start of "<think>" so far
        } else {
            state_ = State::answer;
        }
    }
    if (state_ == State::reasoning) {
        std::string_view text = pending_;
        std::size_t close = text.find(detail::kThinkClose);
        if (close == std::string_view::npos) {
            // keep a possible tag start and the newlines before it: they may be followed by </think>
            std::size_t keep_from = text.size() - detail::partial_tag_suffix(text, detail::kThinkClose);
            while (keep_from > 0 && text[keep_from - 1] == '\n') --keep_from;
            emit_reasoning(out, text.substr(0, keep_from));
            pending_.erase(0, keep_from);
            return;
        }
        std::string_view body = text.substr(0, close);
        while (!body.empty() && body.back() == '\n') body.remove_suffix(1);
        emit_reasoning(out, body);
        pending_.erase(0, close + detail::kThinkClose.size());
        state_ = State::answer;
        closed_ = true;
    }
    // answer: nothing is held back
    emit_answer(out, pending_);
    pending_.clear();
}

inline ReplyDelta ThinkSplitter::feed(std::string_view piece) {
    ReplyDelta out;
    pending_ += piece;
    process(out);
    return out;
}

inline ReplyDelta ThinkSplitter::finish() {
    ReplyDelta out;
    if (state_ == State::start) {
        state_ = State::answer;
        emit_answer(out, pending_);
    } else if (state_ == State::reasoning) {
        std::string_view text = pending_;  // an unfinished "</thi" is text; final newlines are stripped
        while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
        emit_reasoning(out, text);
    } else {
        emit_answer(out, pending_);
    }
    pending_.clear();
    return out;
}

namespace detail {

// One <tool_call> body: {"name": "...", "arguments": ...}. Returns an empty string on success, else why not.
inline std::string read_tool_call(std::string_view body, ToolCall& call) {
    json::Value value;
    try {
        value = json::parse(body, "tool call");
    } catch (const Error& e) {
        return e.what();
    }
    if (!value.is_object()) return "tool call: expected a JSON object";
    const json::Value* name = value.find("name");
    if (!name || !name->is_string()) return "tool call: expected a string \"name\"";
    call.name = name->as_string();
    const json::Value* arguments = value.find("arguments");
    call.arguments = arguments ? *arguments : json::Value(json::Object{});
    return {};
}

inline bool only_whitespace(std::string_view s) {
    for (char c : s)
        if (!is_reply_space(c)) return false;
    return true;
}

}  // namespace detail

inline ParsedReply parse_reply(std::string_view text, bool starts_in_reasoning) {
    ThinkSplitter splitter(starts_in_reasoning);
    ReplyDelta a = splitter.feed(text);
    ReplyDelta b = splitter.finish();
    ParsedReply reply;
    reply.thought = splitter.thought();
    reply.reasoning = std::move(a.reasoning) + b.reasoning;
    const std::string answer = std::move(a.answer) + b.answer;

    std::string_view rest = answer;
    bool after_block = false;
    for (;;) {
        std::size_t open = rest.find(detail::kToolCallOpen);
        std::string_view before = rest.substr(0, open == std::string_view::npos ? rest.size() : open);
        // the template writes one '\n' before each block: it belongs to the block, not the content
        const bool newline_before = open != std::string_view::npos && before.ends_with('\n');
        if (newline_before) before.remove_suffix(1);
        // text between or after blocks is kept only when it says something
        if (!(after_block && detail::only_whitespace(before))) reply.content += before;
        if (open == std::string_view::npos) break;
        std::size_t body_begin = open + detail::kToolCallOpen.size();
        std::size_t close = rest.find(detail::kToolCallClose, body_begin);
        std::size_t block_end = close == std::string_view::npos ? rest.size() : close + detail::kToolCallClose.size();
        ToolCall call;
        std::string error = close == std::string_view::npos
                                ? std::string("tool call: no </tool_call> before the end of the reply")
                                : detail::read_tool_call(rest.substr(body_begin, close - body_begin), call);
        if (error.empty()) {
            reply.tool_calls.push_back(std::move(call));
        } else {
            // the block stays in the content as written, so nothing the model wrote is lost
            std::string_view block = rest.substr(open, block_end - open);
            if (newline_before) reply.content += '\n';
            reply.content += block;
            reply.invalid_tool_calls.push_back({std::string(block), std::move(error)});
        }
        rest.remove_prefix(block_end);
        after_block = true;
    }
    return reply;
}

inline Message to_message(const ParsedReply& reply) {
    Message m = Message::assistant(reply.content);
    if (reply.thought) m.reasoning_content = reply.reasoning;
    m.tool_calls = reply.tool_calls;
    return m;
}

namespace detail {

// +1 for /think, -1 for /no_think, 0 when the text holds neither: the last one in the text.
inline int last_soft_switch(std::string_view text) {
    int found = 0;
    for (std::size_t at = text.find('/'); at != std::string_view::npos; at = text.find('/', at + 1)) {
        if (at > 0 && (is_word_byte(text[at - 1]) || text[at - 1] == '/')) continue;
        std::string_view rest = text.substr(at);
        for (auto [word, value] : {std::pair<std::string_view, int>{"/think", 1}, {"/no_think", -1}}) {
            if (rest.starts_with(word) && (rest.size() == word.size() || !is_word_byte(rest[word.size()]))) found = value;
        }
    }
    return found;
}

}  // namespace detail

inline bool expects_thinking(const json::Value& request) {
    const json::Value* enable = request.find("enable_thinking");
    if (enable && enable->is_bool() && !enable->as_bool()) return false;
    const json::Value* messages = request.find("messages");
    if (!messages || !messages->is_array()) return true;
    const json::Array& list = messages->as_array();
    for (std::size_t i = list.size(); i-- > 0;) {
        const json::Value* role = list[i].find("role");
        const json::Value* content = list[i].find("content");
        if (!role || !role->is_string() || !content || !content->is_string()) continue;
        if (role->as_string() != "user" && role->as_string() != "system") continue;
        if (int s = detail::last_soft_switch(content->as_string()); s != 0) return s > 0;
    }
    return true;
}

inline bool expects_thinking(std::span<const Message> messages, const Options& options) {
    if (!options.enable_thinking) return false;
    for (std::size_t i = messages.size(); i-- > 0;) {
        if (messages[i].role != "user" && messages[i].role != "system") continue;
        if (int s = detail::last_soft_switch(messages[i].content); s != 0) return s > 0;
    }
    return true;
}

}  // namespace qwen3::chat
// ===== end of qwen3/chat/reply_parser.hpp =====
// ===== qwen3/chat/template.hpp =====
// qwen3/chat/template.hpp - the Qwen3 chat template, rendered in C++.
//
// render_prompt() produces, byte for byte, what Hugging Face's apply_chat_template produces with the
// chat_template of Qwen3's tokenizer_config.json (Python Jinja2, sandboxed, trim_blocks and
// lstrip_blocks, tojson = json.dumps(ensure_ascii=False)). It is not a Jinja engine: the function
// below follows that one template statement by statement, with Python's meanings for every operation
// (chat/python_values.hpp). tests/test_chat.cpp checks it against renderings by the real template.
//
// Trusted and untrusted text. The result marks which bytes came from the caller's data (message
// content, reasoning, tool-call names and arguments, tool schemas): those are *untrusted*, the rest
// is the template's own text with its control tokens (<|im_start|>, <|im_end|>, <think>, ...).
// A tokenizer must not turn "<|im_end|>" typed by a user into the control token, so untrusted bytes
// are tokenized with special-token matching switched off.
//
// Why byte ranges of one string rather than separately tokenized pieces: Hugging Face tokenizes the
// whole prompt. It first splits at special tokens, then pre-tokenizes each stretch between them with
// the Qwen2 regex, and that regex merges across the template/content boundary in common cases:
//   "user\n" + "\nHello"      ->  "\n\n" is one pre-token (\s*[\r\n]+), not "\n" and "\n"
//   "\"arguments\": " + "{\"city\"..."  ->  " {\"" is one pre-token ( ?[^\s\p{L}\p{N}]+)
//   "text " + "\n</tool_response>"      ->  " \n" is one pre-token
// so tokenizing segment by segment would give different ids than the model was trained on. With
// ranges, the tokenizer splits at special tokens only outside the untrusted ranges and pre-tokenizes
// the text between special tokens as one string: the ids equal Hugging Face's whenever the content
// holds no special-token text, and content can never forge a control token. segments() is there for
// display and inspection, not for tokenizing piece by piece.

#include <cstddef>

// ===== qwen3/chat/python_values.hpp =====
// qwen3/chat/python_values.hpp - the Python semantics the chat template relies on, over JSON values.
//
// Hugging Face renders chat templates with Python Jinja2, so a template expression means what it
// means in Python: `if x` is Python truthiness, `{{ x }}` prints str(x) (None, True, {'a': 1}),
// `a + b` needs two str, `s.strip('\n')` removes newlines only, a missing key is Jinja's Undefined
// (printed as "", falsy, an error when concatenated or called), and json.loads keeps the *last*
// value of a duplicated key. These helpers give chat/template.hpp exactly those meanings, so the
// renderer can follow the template line by line. A template value is a `Ref`: a pointer to a JSON
// value, or nullptr for Undefined.

#include <unordered_map>


namespace qwen3::chat::detail {

using Ref = const json::Value*;  // nullptr: Jinja's Undefined (a missing key or index)

// Python truthiness: Undefined, None, False, 0, 0.0, "", [] and {} are false.
inline bool truthy(Ref v) {
    if (!v) return false;
    switch (v->kind()) {
        case json::Value::Kind::null: return false;
        case json::Value::Kind::boolean: return v->as_bool();
        case json::Value::Kind::number: return v->as_number().value != 0;
        case json::Value::Kind::string: return !v->as_string().empty();
        case json::Value::Kind::array: return !v->as_array().empty();
        case json::Value::Kind::object: return !v->as_object().empty();
    }
    return false;
}

inline bool is_string(Ref v) { return v && v->is_string(); }
inline bool equals(Ref v, std::string_view s) { return is_string(v) && v->as_string() == s; }

// `obj.key` in the sandbox: a dict's item, Undefined for anything else (the attribute names the
// template uses are not attributes of Python's dict, str or list).
inline Ref attribute(Ref obj, std::string_view key) { return obj ? obj->find(key) : nullptr; }

// Python's type name, for error messages that say what was found.
inline const char* python_type(Ref v) {
    if (!v) return "undefined";
    switch (v->kind()) {
        case json::Value::Kind::null: return "null";
        case json::Value::Kind::boolean: return "a boolean";
        case json::Value::Kind::number: return "a number";
        case json::Value::Kind::string: return "a string";
        case json::Value::Kind::array: return "an array";
        case json::Value::Kind::object: return "an object";
    }
    return "?";
}

// Names a value in error messages ("messages[2].content", "tools"); built only when an error is raised.
struct Where {
    std::string_view name;
    std::size_t index = std::size_t(-1);  // an element of `name`, or none
    std::string_view key = {};            // a key of that element, or none
    std::string text() const {
        std::string out(name);
        if (index != std::size_t(-1)) {
            out += '[';
            out += std::to_string(index);
            out += ']';
        }
        if (!key.empty()) {
            out += '.';
            out += key;
        }
        return out;
    }
};

// A value the template uses as a str (concatenation, a str method): anything else is the error
// Python raises there (TypeError, or UndefinedError for a missing key).
inline const std::string& need_string(Ref v, const Where& where, std::string_view use) {
    if (!is_string(v))
        qwen3::detail::fail(ErrorCode::invalid_argument, "chat template: ", where.text(), " must be a string (the template ",
                            use, "), found ", python_type(v));
    return v->as_string();
}

// ---- UTF-8 code points (JSON strings are valid UTF-8, checked by the parser)

inline std::size_t utf8_length(unsigned char lead) {
    return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

inline std::uint32_t utf8_decode(std::string_view s, std::size_t i, std::size_t n) {
    auto b = [&](std::size_t k) { return std::uint32_t(static_cast<unsigned char>(s[i + k])); };
    switch (n) {
        case 1: return b(0);
        case 2: return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
        case 3: return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
        default: return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    }
}

// ---- str methods the template calls

inline std::string_view lstrip_newlines(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size() && s[i] == '\n') ++i;
    return s.substr(i);
}
inline std::string_view rstrip_newlines(std::string_view s) {
    std::size_t n = s.size();
    while (n > 0 && s[n - 1] == '\n') --n;
    return s.substr(0, n);
}
inline std::string_view strip_newlines(std::string_view s) { return rstrip_newlines(lstrip_newlines(s)); }

// s.split(sep)[0] and s.split(sep)[-1] (sep non-empty; matches are found left to right, without overlap).
inline std::string_view split_first(std::string_view s, std::string_view sep) {
    std::size_t at = s.find(sep);
    return at == std::string_view::npos ? s : s.substr(0, at);
}
inline std::string_view split_last(std::string_view s, std::string_view sep) {
    std::size_t start = 0;
    for (std::size_t at = s.find(sep); at != std::string_view::npos; at = s.find(sep, start)) start = at + sep.size();
    return s.substr(start);
}

// `needle in container` (needle a str): substring of a str, an element of a list, a key of a dict,
// False for Undefined (it iterates as empty); any other type is Python's TypeError.
inline bool contains(Ref container, std::string_view needle, const Where& where) {
    if (!container) return false;
    switch (container->kind()) {
        case json::Value::Kind::string: return container->as_string().find(needle) != std::string::npos;
        case json::Value::Kind::array:
            for (const json::Value& item : container->as_array())
                if (equals(&item, needle)) return true;
            return false;
        case json::Value::Kind::object: return container->find(needle) != nullptr;
        default:
            qwen3::detail::fail(ErrorCode::invalid_argument, "chat template: ", where.text(), " is ", python_type(container),
                                ", which the template cannot search for \"", needle, "\" (expected a string)");
    }
}

// `for x in v`: a list's items, a dict's keys, a str's characters; other types are not iterable.
// Keys and characters are made into JSON strings held by `storage`, so the result can point at them.
inline std::vector<Ref> iterate(Ref v, std::vector<json::Value>& storage, const Where& where) {
    std::vector<Ref> out;
    if (!v) return out;
    switch (v->kind()) {
        case json::Value::Kind::array:
            for (const json::Value& item : v->as_array()) out.push_back(&item);
            return out;
        case json::Value::Kind::object:
            storage.clear();
            storage.reserve(v->as_object().size());
            for (const json::Member& m : v->as_object()) storage.emplace_back(m.key);
            break;
        case json::Value::Kind::string: {
            const std::string& s = v->as_string();
            storage.clear();
            storage.reserve(s.size());
            for (std::size_t i = 0; i < s.size();) {
                std::size_t n = utf8_length(static_cast<unsigned char>(s[i]));
                storage.emplace_back(std::string_view(s).substr(i, n));
                i += n;
            }
            break;
        }
        default:
            qwen3::detail::fail(ErrorCode::invalid_argument, "chat template: ", where.text(), " is ", python_type(v),
                                ", which the template cannot iterate (expected an array)");
    }
    for (const json::Value& item : storage) out.push_back(&item);
    return out;
}

// ---- str(x) and repr(x)

// Python's str.isprintable() for one code point outside ASCII: false for the categories Cc, Cf,
// Cs, Co, Zl, Zp and Zs. The ranges are Unicode 14 (Python 3.11), listed from unicodedata. Unassigned
// code points (Cn) are treated as printable, except the permanent noncharacters: a full Cn table
// would be ~700 ranges for a case (printing a container that holds unassigned code points) that
// only str() of non-string tool results can reach.
inline bool python_printable(std::uint32_t cp) {
    static constexpr std::uint32_t kNotPrintable[][2] = {
        {0x80, 0xA0},       {0xAD, 0xAD},       {0x600, 0x605},     {0x61C, 0x61C},     {0x6DD, 0x6DD},
        {0x70F, 0x70F},     {0x890, 0x891},     {0x8E2, 0x8E2},     {0x1680, 0x1680},   {0x180E, 0x180E},
        {0x2000, 0x200F},   {0x2028, 0x202F},   {0x205F, 0x2064},   {0x2066, 0x206F},   {0x3000, 0x3000},
        {0xD800, 0xF8FF},   {0xFEFF, 0xFEFF},   {0xFFF9, 0xFFFB},   {0x110BD, 0x110BD}, {0x110CD, 0x110CD},
        {0x13430, 0x13438}, {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A}, {0xE0001, 0xE0001}, {0xE0020, 0xE007F},
        {0xF0000, 0xFFFFD}, {0x100000, 0x10FFFD},
    };
    if (cp < 0x80) return cp >= 0x20 && cp < 0x7F;
    if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) return false;  // noncharacters
    for (const auto& r : kNotPrintable)
        if (cp >= r[0] && cp <= r[1]) return false;
    return true;
}

// repr(str): single quotes unless the text holds ' and no ", backslash escapes for the quote, the
// backslash, \t \n \r, and \xNN / \uNNNN / \UNNNNNNNN for what is not printable.
inline void python_repr_string(std::string& out, std::string_view s) {
    const char quote = (s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos) ? '"' : '\'';
    out += quote;
    for (std::size_t i = 0; i < s.size();) {
        std::size_t n = utf8_length(static_cast<unsigned char>(s[i]));
        std::uint32_t cp = utf8_decode(s, i, n);
        if (cp == std::uint32_t(quote) || cp == '\\') {
            out += '\\';
            out += char(cp);
        } else if (cp == '\t') {
            out += "\\t";
        } else if (cp == '\n') {
            out += "\\n";
        } else if (cp == '\r') {
            out += "\\r";
        } else if (python_printable(cp)) {
            out.append(s, i, n);
        } else {
            char buf[16];
            if (cp < 0x100) std::snprintf(buf, sizeof buf, "\\x%02x", unsigned(cp));
            else if (cp < 0x10000) std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(cp));
            else std::snprintf(buf, sizeof buf, "\\U%08x", unsigned(cp));
            out += buf;
        }
        i += n;
    }
    out += quote;
}

// Python's str() of an int or float read by json.loads.
inline std::string python_number(const json::Number& n) {
    if (n.integral) return n.text == "-0" ? "0" : n.text;
    if (n.value == HUGE_VAL) return "inf";
    if (n.value == -HUGE_VAL) return "-inf";
    return json::python_float_repr(n.value);
}

inline void python_repr(std::string& out, const json::Value& v) {
    switch (v.kind()) {
        case json::Value::Kind::null: out += "None"; break;
        case json::Value::Kind::boolean: out += v.as_bool() ? "True" : "False"; break;
        case json::Value::Kind::number: out += python_number(v.as_number()); break;
        case json::Value::Kind::string: python_repr_string(out, v.as_string()); break;
        case json::Value::Kind::array: {
            out += '[';
            bool first = true;
            for (const json::Value& item : v.as_array()) {
                if (!first) out += ", ";
                first = false;
                python_repr(out, item);
            }
            out += ']';
            break;
        }
        case json::Value::Kind::object: {
            out += '{';
            bool first = true;
            for (const json::Member& m : v.as_object()) {
                if (!first) out += ", ";
                first = false;
                python_repr_string(out, m.key);
                out += ": ";
                python_repr(out, m.value);
            }
            out += '}';
            break;
        }
    }
}

// What `{{ v }}` prints: str(v); Undefined prints nothing.
inline std::string python_str(Ref v) {
    if (!v) return {};
    if (v->is_string()) return v->as_string();
    std::string out;
    python_repr(out, *v);
    return out;
}

// ---- the value Python's json.loads would have built

// A number too small for a double is 0.0 in Python; json.hpp stores any out-of-range result as
// +-inf, so tell underflow from overflow by the decimal exponent of the first significant digit.
inline bool underflows(const json::Number& n) {
    if (n.integral || (n.value != HUGE_VAL && n.value != -HUGE_VAL)) return false;
    std::string_view t = n.text;
    if (!t.empty() && t[0] == '-') t.remove_prefix(1);
    std::size_t e = t.find_first_of("eE");
    std::string_view mantissa = t.substr(0, e);
    long exponent = 0;
    if (e != std::string_view::npos) {
        std::string_view x = t.substr(e + 1);
        bool negative = !x.empty() && x[0] == '-';
        if (!x.empty() && (x[0] == '-' || x[0] == '+')) x.remove_prefix(1);
        for (char c : x) exponent = std::min(exponent * 10 + (c - '0'), 100000000L);
        if (negative) exponent = -exponent;
    }
    std::size_t dot = mantissa.find('.');
    std::string_view whole = mantissa.substr(0, dot);
    std::string_view fraction = dot == std::string_view::npos ? std::string_view() : mantissa.substr(dot + 1);
    std::size_t lead = whole.find_first_not_of('0');
    long magnitude;  // decimal exponent of the first significant digit
    if (lead != std::string_view::npos) {
        magnitude = long(whole.size() - lead) - 1 + exponent;
    } else {
        std::size_t first = fraction.find_first_not_of('0');
        if (first == std::string_view::npos) return false;  // zero is never out of range
        magnitude = -long(first) - 1 + exponent;
    }
    return magnitude < 0;
}

inline bool differs_from_python(const json::Value& v) {
    if (v.is_number()) return underflows(v.as_number());
    if (v.is_array()) {
        for (const json::Value& item : v.as_array())
            if (differs_from_python(item)) return true;
        return false;
    }
    if (!v.is_object()) return false;
    const json::Object& members = v.as_object();
    if (members.size() <= 16) {
        for (std::size_t i = 0; i < members.size(); ++i)
            for (std::size_t j = 0; j < i; ++j)
                if (members[i].key == members[j].key) return true;
    } else {
        std::unordered_map<std::string_view, int> seen;
        for (const json::Member& m : members)
            if (!seen.emplace(m.key, 0).second) return true;
    }
    for (const json::Member& m : members)
        if (differs_from_python(m.value)) return true;
    return false;
}

inline json::Value rebuild_as_python(const json::Value& v) {
    if (v.is_number() && underflows(v.as_number())) {
        json::Number n = v.as_number();
        n.value = n.text[0] == '-' ? -0.0 : 0.0;
        return json::Value(std::move(n));
    }
    if (v.is_array()) {
        json::Array items;
        items.reserve(v.as_array().size());
        for (const json::Value& item : v.as_array()) items.push_back(rebuild_as_python(item));
        return json::Value(std::move(items));
    }
    if (v.is_object()) {
        // a duplicated key keeps its first position and takes its last value, as in a Python dict
        json::Object members;
        std::unordered_map<std::string_view, std::size_t> position;
        for (const json::Member& m : v.as_object()) {
            auto [it, added] = position.emplace(m.key, members.size());
            if (added) members.push_back(json::Member{m.key, rebuild_as_python(m.value)});
            else members[it->second].value = rebuild_as_python(m.value);
        }
        return json::Value(std::move(members));
    }
    return v;
}

}  // namespace qwen3::chat::detail
// ===== end of qwen3/chat/python_values.hpp =====

namespace qwen3::chat {

// Byte offsets [begin, end) into RenderedPrompt::text.
struct TextRange {
    std::size_t begin = 0;
    std::size_t end = 0;
    bool operator==(const TextRange&) const = default;
};

struct Segment {
    std::string_view text;  // points into RenderedPrompt::text
    bool trusted;           // the template's own text (may hold control tokens)
};

struct RenderedPrompt {
    std::string text;
    // Bytes that came from the caller's data: sorted, non-empty, disjoint and never adjacent (two
    // pieces of data with no template text between them form one range).
    std::vector<TextRange> untrusted;

    // text cut at every range boundary, in order; concatenated they give `text`. Views into `text`:
    // valid while this object lives unchanged.
    std::vector<Segment> segments() const;
};

// Renders a request object: {"messages": [...], "tools": [...], "add_generation_prompt": bool,
// "enable_thinking": bool}. A missing key is Jinja's undefined, which differs from null where the
// template tests `is defined`. Other keys are ignored. Like json.loads, a duplicated key takes its
// last value.
// Throws Error(invalid_argument) where the template raises an error under Jinja: `request` not an
// object; no messages, or messages neither a non-empty array nor a non-empty string; a user or
// system message whose content is not a string; an assistant message whose content is not a string
// (or whose reasoning_content is not a string where the template prints it); a tool call without
// arguments; tools or tool_calls of a type that cannot be iterated. The message says which value.
RenderedPrompt render_prompt(const json::Value& request);

// The same for typed messages (see make_chat_request). Throws as above (only empty `messages` can
// fail here).
RenderedPrompt render_prompt(std::span<const Message> messages, const Options& options = {},
                             std::span<const json::Value> tools = {});

// render_prompt(request).text: what `qwen3 template` prints. Throws as render_prompt.
std::string render_text(const json::Value& request);

// ---------------------------------------------------------------------------------------------
// implementation

inline std::vector<Segment> RenderedPrompt::segments() const {
    std::vector<Segment> out;
    std::string_view all = text;
    std::size_t at = 0;
    for (const TextRange& r : untrusted) {
        if (r.begin > at) out.push_back({all.substr(at, r.begin - at), true});
        out.push_back({all.substr(r.begin, r.end - r.begin), false});
        at = r.end;
    }
    if (at < all.size()) out.push_back({all.substr(at), true});
    return out;
}

namespace detail {

class PromptWriter {
public:
    void trusted(std::string_view s) { out_.text += s; }
    void untrusted(std::string_view s) {
        if (s.empty()) return;
        std::size_t begin = out_.text.size();
        out_.text += s;
        if (!out_.untrusted.empty() && out_.untrusted.back().end == begin) out_.untrusted.back().end = out_.text.size();
        else out_.untrusted.push_back({begin, out_.text.size()});
    }
    RenderedPrompt take() { return std::move(out_); }

private:
    RenderedPrompt out_;
};

inline Where message_where(std::size_t index, std::string_view key) { return {"messages", index, key}; }

// The template text, statement by statement; comments quote the Jinja they implement.
inline RenderedPrompt render_checked(const json::Value& request) {
    if (!request.is_object())
        qwen3::detail::fail(ErrorCode::invalid_argument, "chat template: the request must be a JSON object, found ",
                            json::Value::kind_name(request.kind()));
    const Ref messages_value = request.find("messages");
    const Ref tools = request.find("tools");
    const Ref add_generation_prompt = request.find("add_generation_prompt");
    const Ref enable_thinking = request.find("enable_thinking");

    // `messages[0].role` is the template's first use: a list or str with no element 0 fails there
    std::vector<json::Value> message_storage;
    std::vector<Ref> messages;
    if (messages_value && (messages_value->is_array() || messages_value->is_string()))
        messages = iterate(messages_value, message_storage, {"messages"});
    if (messages.empty())
        qwen3::detail::fail(ErrorCode::invalid_argument,
                            "chat template: \"messages\" must be a non-empty array of messages, found ",
                            !messages_value ? "no \"messages\" key"
                            : (messages_value->is_array() || messages_value->is_string())
                                ? "an empty one"
                                : python_type(messages_value));
    const std::size_t count = messages.size();
    auto role_is = [&](std::size_t i, std::string_view role) { return equals(attribute(messages[i], "role"), role); };
    auto content_of = [&](std::size_t i) { return attribute(messages[i], "content"); };

    PromptWriter out;
    // {%- if tools %} ... {%- else %} ... {%- endif %}
    if (truthy(tools)) {
        out.trusted("<|im_start|>system\n");
        if (role_is(0, "system")) {  // messages[0].content + '\n\n'
            out.untrusted(need_string(content_of(0), message_where(0, "content"), "joins it to the tools section"));
            out.trusted("\n\n");
        }
        out.trusted(
            "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>");
        std::vector<json::Value> tool_storage;
        for (Ref tool : iterate(tools, tool_storage, {"\"tools\""})) {  // "\n" + tool | tojson
            out.trusted("\n");
            out.untrusted(json::dump_python(*tool));
        }
        out.trusted(
            "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
            "<args-json-object>}\n</tool_call><|im_end|>\n");
    } else if (role_is(0, "system")) {
        out.trusted("<|im_start|>system\n");
        out.untrusted(need_string(content_of(0), message_where(0, "content"), "concatenates it"));
        out.trusted("<|im_end|>\n");
    }

    // The last user turn that is a real query, not a tool result passed back as a user message:
    // {%- for message in messages[::-1] %} ... {%- if ns.multi_step_tool and message.role == "user" and
    //     not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
    std::size_t last_query_index = count - 1;
    for (std::size_t i = count; i-- > 0;) {
        if (!role_is(i, "user")) continue;
        const std::string& content = need_string(content_of(i), message_where(i, "content"), "calls startswith on it");
        std::string_view c = content;
        if (!(c.starts_with("<tool_response>") && c.ends_with("</tool_response>"))) {
            last_query_index = i;
            break;
        }
    }

    std::vector<json::Value> call_storage;
    for (std::size_t i = 0; i < count; ++i) {
        const Ref message = messages[i];
        const bool last = i + 1 == count;
        if (role_is(i, "user") || (role_is(i, "system") && i != 0)) {
            // '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n'
            out.trusted(role_is(i, "user") ? "<|im_start|>user\n" : "<|im_start|>system\n");
            out.untrusted(need_string(content_of(i), message_where(i, "content"), "concatenates it"));
            out.trusted("<|im_end|>\n");
        } else if (role_is(i, "assistant")) {
            // {%- set content = message.content %} {%- set reasoning_content = '' %}
            const Ref message_content = content_of(i);
            const Ref message_reasoning = attribute(message, "reasoning_content");
            Ref content = message_content;
            json::Value reasoning_holder("");
            json::Value content_holder;
            Ref reasoning = &reasoning_holder;
            if (message_reasoning && !message_reasoning->is_null()) {
                reasoning = message_reasoning;
            } else if (contains(message_content, "</think>", message_where(i, "content"))) {
                // content = message.content.split('</think>')[-1].lstrip('\n')
                // reasoning = message.content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
                const std::string& text = need_string(message_content, message_where(i, "content"), "splits it at </think>");
                reasoning_holder = json::Value(lstrip_newlines(split_last(rstrip_newlines(split_first(text, "</think>")), "<think>")));
                content_holder = json::Value(lstrip_newlines(split_last(text, "</think>")));
                content = &content_holder;
            }
            const Where content_where = message_where(i, "content");
            // {%- if loop.index0 > ns.last_query_index and (loop.last or reasoning_content) %}
            if (i > last_query_index && (last || truthy(reasoning))) {
                out.trusted("<|im_start|>assistant\n<think>\n");
                out.untrusted(strip_newlines(need_string(reasoning, message_where(i, "reasoning_content"), "calls strip on it")));
                const std::string& c = need_string(content, content_where, "calls lstrip on it");
                out.trusted("\n</think>\n\n");
                out.untrusted(lstrip_newlines(c));
            } else {
                out.trusted("<|im_start|>assistant\n");
                out.untrusted(need_string(content, content_where, "concatenates it"));
            }
            // {%- if message.tool_calls %}{%- for tool_call in message.tool_calls %}
            const Ref tool_calls = attribute(message, "tool_calls");
            if (truthy(tool_calls)) {
                const std::vector<Ref> calls = iterate(tool_calls, call_storage, message_where(i, "tool_calls"));
                for (std::size_t k = 0; k < calls.size(); ++k) {
                    if ((k == 0 && truthy(content)) || k > 0) out.trusted("\n");
                    Ref call = calls[k];
                    if (const Ref function = attribute(call, "function"); truthy(function)) call = function;
                    out.trusted("<tool_call>\n{\"name\": \"");
                    out.untrusted(python_str(attribute(call, "name")));
                    out.trusted("\", \"arguments\": ");
                    const Ref arguments = attribute(call, "arguments");
                    if (is_string(arguments)) {
                        out.untrusted(arguments->as_string());
                    } else if (arguments) {
                        out.untrusted(json::dump_python(*arguments));  // tool_call.arguments | tojson
                    } else {
                        qwen3::detail::fail(ErrorCode::invalid_argument, "chat template: ",
                                            message_where(i, "tool_calls").text(), "[", k,
                                            "] has no \"arguments\" (json.dumps cannot print undefined)");
                    }
                    out.trusted("}\n</tool_call>");
                }
            }
            out.trusted("<|im_end|>\n");
        } else if (role_is(i, "tool")) {
            // consecutive tool results share one user turn
            if (i == 0 || !role_is(i - 1, "tool")) out.trusted("<|im_start|>user");
            out.trusted("\n<tool_response>\n");
            out.untrusted(python_str(content_of(i)));  // {{- message.content }}
            out.trusted("\n</tool_response>");
            if (last || !role_is(i + 1, "tool")) out.trusted("<|im_end|>\n");
        }
    }

    if (truthy(add_generation_prompt)) {
        out.trusted("<|im_start|>assistant\n");
        // {%- if enable_thinking is defined and enable_thinking is false %}: only the value false
        if (enable_thinking && enable_thinking->is_bool() && !enable_thinking->as_bool())
            out.trusted("<think>\n\n</think>\n\n");
    }
    return out.take();
}

}  // namespace detail

inline RenderedPrompt render_prompt(const json::Value& request) {
    if (detail::differs_from_python(request)) return detail::render_checked(detail::rebuild_as_python(request));
    return detail::render_checked(request);
}

inline RenderedPrompt render_prompt(std::span<const Message> messages, const Options& options,
                                    std::span<const json::Value> tools) {
    return render_prompt(make_chat_request(messages, options, tools));
}

inline std::string render_text(const json::Value& request) { return render_prompt(request).text; }

}  // namespace qwen3::chat
// ===== end of qwen3/chat/template.hpp =====
// ===== end of qwen3/chat.hpp =====
// ===== qwen3/config.hpp =====
// qwen3/config.hpp - compile-time model configurations.
//
// Every dimension of a Qwen3 dense model is a compile-time constant, so each configuration gets
// kernels with fixed trip counts and a KV arena whose size is known when the program is built:
//
//     qwen3::Model<qwen3::Qwen3_4B> model("Qwen3-4B-Q4_K_M.gguf");
//
// A variant of your own is a few lines (the last argument, the KV arena's context, is optional):
//
//     struct MyQwen : qwen3::Config<1536, 24, 12, 4, 128, 4608, 151936, /*tied=*/true> {
//         static constexpr std::string_view name = "my-qwen";
//     };
//
// Values a file decides (RoPE theta and scaling, RMSNorm epsilon, tensor types) are read from the
// file at load time and validated; they are not part of the configuration.


namespace qwen3 {

// Default size of the KV arena in tokens. The arena is reserved once, at this size, and its pages
// are committed by the OS only as positions are used, so a large value costs address space, not RAM.
#ifndef QWEN3_DEFAULT_MAX_CONTEXT
#define QWEN3_DEFAULT_MAX_CONTEXT 32768
#endif

template <int Hidden, int Layers, int Heads, int KVHeads, int HeadDim, int FFN, int Vocab, bool TiedEmbeddings,
          int MaxContext = QWEN3_DEFAULT_MAX_CONTEXT>
struct Config {
    static constexpr int hidden = Hidden;          // residual stream width
    static constexpr int layers = Layers;          // transformer blocks
    static constexpr int heads = Heads;            // query heads
    static constexpr int kv_heads = KVHeads;       // key/value heads (grouped-query attention)
    static constexpr int head_dim = HeadDim;       // per-head width of q, k and v
    static constexpr int ffn = FFN;                // SwiGLU intermediate width
    static constexpr int vocab = Vocab;            // rows of the embedding and of the output matrix
    static constexpr bool tied_embeddings = TiedEmbeddings;  // output matrix is the embedding
    static constexpr int max_context = MaxContext; // KV arena positions

    static constexpr int q_dim = Heads * HeadDim;       // width of the attention's query/output space
    static constexpr int kv_dim = KVHeads * HeadDim;    // width of k and v per token
    static constexpr int group = Heads / KVHeads;       // query heads per KV head

    static constexpr std::string_view name = "custom";

    static_assert(Hidden > 0 && Layers > 0 && Heads > 0 && KVHeads > 0 && HeadDim > 0 && FFN > 0 && Vocab > 0,
                  "every dimension must be positive");
    static_assert(Heads % KVHeads == 0, "query heads must be a multiple of KV heads (grouped-query attention)");
    static_assert(HeadDim % 2 == 0, "RoPE rotates pairs: head_dim must be even");
    static_assert(Hidden % 32 == 0 && FFN % 32 == 0 && HeadDim % 32 == 0,
                  "hidden, ffn and head_dim must be multiples of 32 (the block size of quantized formats)");
    static_assert(MaxContext > 0, "the KV arena needs at least one position");
};

// The same configuration with a KV arena of another size: `WithContext<Qwen3_4B, 8192>`.
template <class Base, int MaxContext>
struct WithContext : Base {
    static_assert(MaxContext > 0, "the KV arena needs at least one position");
    static constexpr int max_context = MaxContext;
};

// Official Qwen3 dense shapes (config.json of each Hugging Face release).
struct Qwen3_0_6B : Config<1024, 28, 16, 8, 128, 3072, 151936, true> {
    static constexpr std::string_view name = "Qwen3-0.6B";
};
struct Qwen3_1_7B : Config<2048, 28, 16, 8, 128, 6144, 151936, true> {
    static constexpr std::string_view name = "Qwen3-1.7B";
};
struct Qwen3_4B : Config<2560, 36, 32, 8, 128, 9728, 151936, true> {
    static constexpr std::string_view name = "Qwen3-4B";
};
struct Qwen3_8B : Config<4096, 36, 32, 8, 128, 12288, 151936, false> {
    static constexpr std::string_view name = "Qwen3-8B";
};
struct Qwen3_14B : Config<5120, 40, 40, 8, 128, 17408, 151936, false> {
    static constexpr std::string_view name = "Qwen3-14B";
};
struct Qwen3_32B : Config<5120, 64, 64, 8, 128, 25600, 151936, false> {
    static constexpr std::string_view name = "Qwen3-32B";
};

// Test shapes: the random-weight models of make_model.py's "tiny" preset (full vocabulary) and the
// 4 MB "micro" model committed in tests/data (first 4096 tokens of the vocabulary).
struct Qwen3_Tiny : Config<128, 2, 4, 2, 64, 384, 151936, true, 4096> {
    static constexpr std::string_view name = "Qwen3-tiny";
};
struct Qwen3_Micro : Config<128, 2, 4, 2, 64, 384, 4096, true, 4096> {
    static constexpr std::string_view name = "Qwen3-micro";
};

// The runtime description of a configuration, for messages and for matching a file to a variant.
struct ConfigDims {
    std::string_view name;
    int hidden, layers, heads, kv_heads, head_dim, ffn, vocab;
    bool tied_embeddings;
    int max_context;

    friend bool same_shape(const ConfigDims& a, const ConfigDims& b) {
        return a.hidden == b.hidden && a.layers == b.layers && a.heads == b.heads && a.kv_heads == b.kv_heads &&
               a.head_dim == b.head_dim && a.ffn == b.ffn && a.vocab == b.vocab &&
               a.tied_embeddings == b.tied_embeddings;
    }
};

template <class Cfg>
constexpr ConfigDims dims_of() {
    return {Cfg::name, Cfg::hidden, Cfg::layers, Cfg::heads, Cfg::kv_heads, Cfg::head_dim,
            Cfg::ffn, Cfg::vocab, Cfg::tied_embeddings, Cfg::max_context};
}

// A type list of configurations, for picking the compiled variant that fits a file (see variant.hpp).
template <class... Cfgs>
struct ConfigList {};

using NamedVariants =
    ConfigList<Qwen3_0_6B, Qwen3_1_7B, Qwen3_4B, Qwen3_8B, Qwen3_14B, Qwen3_32B, Qwen3_Tiny, Qwen3_Micro>;

template <class... Cfgs>
constexpr auto dims_of_list(ConfigList<Cfgs...>) {
    struct Table {
        ConfigDims items[sizeof...(Cfgs)];
    };
    return Table{{dims_of<Cfgs>()...}};
}

}  // namespace qwen3
// ===== end of qwen3/config.hpp =====
// ===== qwen3/format/checkpoint.hpp =====
// qwen3/format/checkpoint.hpp - one view of a Qwen3 checkpoint, whichever format it came in.
//
// A GGUF file and a Hugging Face folder (config.json + model.safetensors or shards) both become a
// Checkpoint: the hyperparameters the file declares (ModelParams) and its tensors under canonical
// GGUF-style names ("blk.3.attn_q.weight") with shapes outermost-first ([out, in]). The files stay
// mapped for the Checkpoint's lifetime and the tensors point into them.
//
// What is checked here: that the files are well formed (the format readers), that the architecture
// is "qwen3", that every hyperparameter is present where required, an integer from 0 to 2^31 - 1 or a
// finite number, and that a sharded folder's index agrees with its shards. Whether the values and
// tensors fit a compiled configuration is checked when a model binds the checkpoint (weights.hpp).

#include <sys/stat.h>

#include <cerrno>

// ===== qwen3/tensor.hpp =====
// qwen3/tensor.hpp - element types and non-owning views of weight tensors.
//
// A weight's element type is a runtime tag (DType), not a template parameter: a quantized GGUF mixes
// types (Q4_K_M holds Q4_K, Q6_K and F32 tensors), and each kernel switches on the tag of the tensor
// it is given. Shapes are written in row-major order, outermost first, as Hugging Face and numpy
// write them: a projection from `in` to `out` features is [out, in]. (GGUF lists the same dimensions
// fastest first, {in, out}; the bytes are identical.)

#include <array>


namespace qwen3 {

// Values are ggml's type ids, so a GGUF tensor's type converts by a cast after validation.
enum class DType : std::uint32_t {
    f32 = 0,
    f16 = 1,
    q4_0 = 2,
    q4_1 = 3,
    q5_0 = 6,
    q5_1 = 7,
    q8_0 = 8,
    q8_1 = 9,
    q2_k = 10,
    q3_k = 11,
    q4_k = 12,
    q5_k = 13,
    q6_k = 14,
    q8_k = 15,
    bf16 = 30,
};

struct DTypeInfo {
    DType type;
    const char* name;           // as llama.cpp prints it
    std::uint32_t block_elems;  // elements per block (1 for plain floats)
    std::uint32_t block_bytes;  // bytes per block
};

// Block layouts as ggml defines them (GGUF specification, "GGML types").
inline constexpr std::array<DTypeInfo, 15> kDTypes = {{
    {DType::f32, "F32", 1, 4},
    {DType::f16, "F16", 1, 2},
    {DType::q4_0, "Q4_0", 32, 18},
    {DType::q4_1, "Q4_1", 32, 20},
    {DType::q5_0, "Q5_0", 32, 22},
    {DType::q5_1, "Q5_1", 32, 24},
    {DType::q8_0, "Q8_0", 32, 34},
    {DType::q8_1, "Q8_1", 32, 36},
    {DType::q2_k, "Q2_K", 256, 84},
    {DType::q3_k, "Q3_K", 256, 110},
    {DType::q4_k, "Q4_K", 256, 144},
    {DType::q5_k, "Q5_K", 256, 176},
    {DType::q6_k, "Q6_K", 256, 210},
    {DType::q8_k, "Q8_K", 256, 292},
    {DType::bf16, "BF16", 1, 2},
}};

// nullptr for an id this library does not know.
inline const DTypeInfo* find_dtype(std::uint32_t ggml_type) noexcept {
    for (const DTypeInfo& info : kDTypes)
        if (static_cast<std::uint32_t>(info.type) == ggml_type) return &info;
    return nullptr;
}

inline const DTypeInfo& dtype_info(DType t) {
    if (const DTypeInfo* info = find_dtype(static_cast<std::uint32_t>(t))) return *info;
    detail::fail(ErrorCode::invalid_argument, "unknown element type id ", static_cast<std::uint32_t>(t));
}

inline const char* dtype_name(DType t) { return dtype_info(t).name; }

// Bytes taken by one row of `elems` elements; 0 when `elems` is not a whole number of blocks.
inline std::uint64_t row_bytes(DType t, std::uint64_t elems) {
    const DTypeInfo& info = dtype_info(t);
    if (elems % info.block_elems != 0) return 0;
    return elems / info.block_elems * info.block_bytes;
}

// The shape of a tensor, outermost dimension first; up to 4 dimensions (GGUF's limit).
struct Shape {
    std::array<std::uint64_t, 4> dims{};
    std::uint32_t rank = 0;

    std::uint64_t operator[](std::size_t i) const { return dims[i]; }
    std::uint64_t elements() const {
        std::uint64_t n = 1;
        for (std::uint32_t i = 0; i < rank; ++i) n *= dims[i];
        return n;
    }
    // Innermost (contiguous) dimension.
    std::uint64_t cols() const { return rank ? dims[rank - 1] : 1; }
    // Product of the outer dimensions.
    std::uint64_t rows() const { return cols() ? elements() / cols() : 0; }
    friend bool operator==(const Shape& a, const Shape& b) {
        if (a.rank != b.rank) return false;
        for (std::uint32_t i = 0; i < a.rank; ++i)
            if (a.dims[i] != b.dims[i]) return false;
        return true;
    }
    std::string to_string() const {
        std::string s = "[";
        for (std::uint32_t i = 0; i < rank; ++i) {
            if (i) s += ", ";
            s += std::to_string(dims[i]);
        }
        return s + "]";
    }
};

inline Shape make_shape(std::uint64_t d0) { return Shape{{d0, 0, 0, 0}, 1}; }
inline Shape make_shape(std::uint64_t d0, std::uint64_t d1) { return Shape{{d0, d1, 0, 0}, 2}; }

// A tensor in memory someone else owns (usually a mapped file). Rows are contiguous: row r starts at
// data + r * row_stride.
struct TensorView {
    std::string name;  // canonical (GGUF-style) name, e.g. "blk.3.attn_q.weight"
    DType type = DType::f32;
    Shape shape;
    const std::byte* data = nullptr;
    std::uint64_t bytes = 0;

    std::uint64_t row_stride() const { return row_bytes(type, shape.cols()); }
    const std::byte* row(std::uint64_t r) const { return data + r * row_stride(); }
};

}  // namespace qwen3
// ===== end of qwen3/tensor.hpp =====
// ===== qwen3/format/gguf.hpp =====
// qwen3/format/gguf.hpp - a bounds-checked GGUF reader (versions 2 and 3, little-endian).
//
// GGUF is llama.cpp's single-file format: a header, typed metadata key/value pairs, a table of tensor
// descriptions, then the aligned tensor data. The reader maps the file and keeps views into it;
// strings, string arrays (a 151k-token vocabulary) and tensor data are never copied.
//
// Every count, length and offset in the file is checked against the bytes that remain before it is
// used, so a truncated or hostile file yields Error(format) naming the file, the byte offset and
// the field, never an out-of-bounds read or an allocation sized by an unchecked number. Counts also
// have hard limits (kMax* below) far above any real model, so the memory the parsed tables take is
// bounded by those limits and by the file's own size; every reserve() names the check it relies on.
//
// Tensor data: each tensor must lie inside the data section, at a multiple of the alignment, and no
// two tensors may overlap (their views would alias, which no writer produces; llama.cpp goes further
// and requires them back to back in table order). Gaps and any order are accepted.

#include <limits>

// ===== qwen3/format/mmap.hpp =====
// qwen3/format/mmap.hpp - a read-only memory-mapped file (POSIX).
//
// Checkpoints are mapped, not read: weights are used in place where their layout allows, and the
// operating system pages them in on first use and shares them between processes.

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>



namespace qwen3 {

class MappedFile {
public:
    MappedFile() = default;

    // Maps `path` read-only. Throws Error(io) naming the path and the system's reason.
    explicit MappedFile(const std::string& path) : path_(path) {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) detail::fail(ErrorCode::io, "cannot open ", path, ": ", std::strerror(errno));
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
            int err = errno;
            ::close(fd);
            detail::fail(ErrorCode::io, "cannot stat ", path, ": ", std::strerror(err));
        }
        if (!S_ISREG(st.st_mode)) {
            ::close(fd);
            detail::fail(ErrorCode::io, path, " is not a regular file");
        }
        size_ = static_cast<std::size_t>(st.st_size);
        if (size_ > 0) {
            void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) {
                int err = errno;
                ::close(fd);
                detail::fail(ErrorCode::io, "cannot map ", path, ": ", std::strerror(err));
            }
            data_ = static_cast<const std::byte*>(p);
        }
        ::close(fd);
    }

    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    MappedFile(MappedFile&& other) noexcept { swap(other); }
    MappedFile& operator=(MappedFile&& other) noexcept {
        MappedFile tmp(std::move(other));
        swap(tmp);
        return *this;
    }
    ~MappedFile() {
        if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
    }

    const std::byte* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    const std::string& path() const noexcept { return path_; }
    std::string_view view() const noexcept { return {reinterpret_cast<const char*>(data_), size_}; }

    // Hints that [offset, offset+length) will be read soon, sequentially (prefault for benchmarks).
    void advise_willneed(std::size_t offset, std::size_t length) const noexcept {
        if (!data_ || offset >= size_) return;
        std::size_t page = std::size_t(::sysconf(_SC_PAGESIZE));
        std::size_t start = offset / page * page;
        std::size_t end = std::min(size_, offset + length);
        ::madvise(const_cast<std::byte*>(data_) + start, end - start, MADV_WILLNEED);
    }

private:
    void swap(MappedFile& other) noexcept {
        std::swap(path_, other.path_);
        std::swap(data_, other.data_);
        std::swap(size_, other.size_);
    }

    std::string path_;
    const std::byte* data_ = nullptr;
    std::size_t size_ = 0;
};

// Reads a whole (small) file into a string: config.json, index files, tokenizer.json.
inline std::string read_text_file(const std::string& path) {
    MappedFile file(path);
    return std::string(file.view());
}

}  // namespace qwen3
// ===== end of qwen3/format/mmap.hpp =====

namespace qwen3::detail {
// A name or key from the file, made safe to print: control and non-ASCII bytes as \xNN, and long
// names cut short, so a hostile file cannot put terminal escapes or megabytes into a message.
inline std::string quote_file_string(std::string_view s) {
    constexpr std::size_t kMaxShown = 120;
    static const char hex[] = "0123456789abcdef";
    std::string out = "\"";
    for (std::size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out += char(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    out += s.size() > kMaxShown ? "\"..." : "\"";
    return out;
}

// ggml's name for a type id this library does not load (for the message that refuses it); "" when
// the id is not a ggml type at all.
inline const char* ggml_type_name(std::uint32_t id) {
    static const char* const names[] = {
        "F32", "F16", "Q4_0", "Q4_1", "", "", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
        "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8",
        "I16", "I32", "I64", "F64", "IQ1_M", "BF16", "", "", "", "TQ1_0", "TQ2_0", "", "", "", "MXFP4"};
    return id < sizeof names / sizeof names[0] ? names[id] : "";
}
}  // namespace qwen3::detail

namespace qwen3::gguf {

enum class Type : std::uint32_t {
    u8 = 0,
    i8 = 1,
    u16 = 2,
    i16 = 3,
    u32 = 4,
    i32 = 5,
    f32 = 6,
    boolean = 7,
    string = 8,
    array = 9,
    u64 = 10,
    i64 = 11,
    f64 = 12,
};

inline const char* type_name(Type t) {
    switch (t) {
        case Type::u8: return "uint8";
        case Type::i8: return "int8";
        case Type::u16: return "uint16";
        case Type::i16: return "int16";
        case Type::u32: return "uint32";
        case Type::i32: return "int32";
        case Type::f32: return "float32";
        case Type::boolean: return "bool";
        case Type::string: return "string";
        case Type::array: return "array";
        case Type::u64: return "uint64";
        case Type::i64: return "int64";
        case Type::f64: return "float64";
    }
    return "unknown";
}

// Size in bytes of a fixed-size scalar type; 0 for string and array.
inline std::size_t scalar_size(Type t) {
    switch (t) {
        case Type::u8: case Type::i8: case Type::boolean: return 1;
        case Type::u16: case Type::i16: return 2;
        case Type::u32: case Type::i32: case Type::f32: return 4;
        case Type::u64: case Type::i64: case Type::f64: return 8;
        default: return 0;
    }
}

// One metadata value. Scalars are decoded; strings view the mapped file; arrays of fixed-size
// scalars view their packed little-endian elements; arrays of strings hold one view per element.
struct Value {
    Type type = Type::u8;
    std::uint64_t uint_value = 0;  // u8 .. u64, bool
    std::int64_t int_value = 0;    // i8 .. i64
    double float_value = 0;        // f32, f64
    std::string_view string_value;

    // arrays
    Type element_type = Type::u8;
    std::uint64_t count = 0;
    const std::byte* elements = nullptr;        // fixed-size element arrays
    std::vector<std::string_view> strings;      // string arrays

    bool is_integer() const {
        return type == Type::u8 || type == Type::i8 || type == Type::u16 || type == Type::i16 || type == Type::u32 ||
               type == Type::i32 || type == Type::u64 || type == Type::i64;
    }
    bool is_signed() const { return type == Type::i8 || type == Type::i16 || type == Type::i32 || type == Type::i64; }

    // Element i of an integer (or bool) array as int64. Throws Error(invalid_argument) when this is
    // not such an array or i >= count (uint64 elements above INT64_MAX wrap, as a cast would).
    std::int64_t integer_element(std::uint64_t i) const {
        if (type != Type::array || !elements || element_type == Type::f32 || element_type == Type::f64)
            detail::fail(ErrorCode::invalid_argument, "gguf: integer_element on a value that is not an integer array");
        if (i >= count)
            detail::fail(ErrorCode::invalid_argument, "gguf: array element ", i, " requested, the array has ", count);
        const std::byte* p = elements + i * scalar_size(element_type);
        switch (element_type) {
            case Type::u8: return std::int64_t(std::uint8_t(p[0]));
            case Type::i8: return std::int64_t(std::int8_t(p[0]));
            case Type::u16: { std::uint16_t v; std::memcpy(&v, p, 2); return v; }
            case Type::i16: { std::int16_t v; std::memcpy(&v, p, 2); return v; }
            case Type::u32: { std::uint32_t v; std::memcpy(&v, p, 4); return v; }
            case Type::i32: { std::int32_t v; std::memcpy(&v, p, 4); return v; }
            case Type::u64: { std::uint64_t v; std::memcpy(&v, p, 8); return std::int64_t(v); }
            case Type::i64: { std::int64_t v; std::memcpy(&v, p, 8); return v; }
            case Type::boolean: return std::int64_t(p[0] != std::byte{0});
            default: return 0;
        }
    }
};

struct TensorInfo {
    std::string name;
    DType type = DType::f32;
    Shape shape;                  // outermost first (GGUF's dims reversed)
    std::uint64_t offset = 0;     // from the start of the data section
    std::uint64_t bytes = 0;
    const std::byte* data = nullptr;
};

// Hard limits that no real model comes near; they bound work and memory for hostile files.
// (A Qwen3 GGUF has ~30 metadata keys, at most ~900 tensors, arrays of 151,936 tokens and strings of a
// few kilobytes; ggml itself caps tensor names at 63 bytes.)
inline constexpr std::uint64_t kMaxKeyLength = 65536;           // metadata keys and tensor names
inline constexpr std::uint64_t kMaxStringLength = 1ull << 30;   // metadata string values (1 GiB)
inline constexpr std::uint64_t kMaxArrayLength = 1ull << 24;    // elements of one metadata array
inline constexpr std::uint64_t kMaxMetadataCount = 1ull << 16;  // metadata key/value pairs
inline constexpr std::uint64_t kMaxTensorCount = 1ull << 16;    // tensors
inline constexpr std::uint64_t kMaxDimension = 1ull << 40;      // elements along one dimension
inline constexpr std::uint64_t kMaxAlignment = 1ull << 20;      // general.alignment (a power of two)
inline constexpr std::uint32_t kMaxDims = 4;
inline constexpr int kMaxArrayNesting = 2;  // an array of arrays is accepted (and skipped); deeper is not

class File {
public:
    // Maps and parses `path`. Throws Error(io) when it cannot be read; Error(format) when it is
    // malformed or over a limit above (the message names the file, the field and its byte offset);
    // Error(unsupported) for a big-endian file, a version other than 2 and 3, or a ggml tensor type
    // this library does not load (an id that is no ggml type at all is Error(format)).
    explicit File(const std::string& path) : file_(path) { parse(); }

    const std::string& path() const { return file_.path(); }
    std::uint32_t version() const { return version_; }
    std::uint64_t alignment() const { return alignment_; }
    std::uint64_t data_offset() const { return data_offset_; }
    const MappedFile& mapped() const { return file_; }

    const std::vector<std::pair<std::string_view, Value>>& metadata() const { return metadata_; }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }

    const Value* find(std::string_view key) const {
        auto it = metadata_index_.find(key);
        return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
    }
    const TensorInfo* find_tensor(std::string_view name) const {
        auto it = tensor_index_.find(name);
        return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
    }

    // Typed metadata access. The `require_` forms throw Error(format) naming the key when it is
    // absent or of the wrong type; the `get_` forms return the fallback when absent.
    std::uint64_t require_uint(std::string_view key) const {
        const Value& v = require(key);
        if (v.is_integer() && (!v.is_signed() || v.int_value >= 0)) return v.is_signed() ? std::uint64_t(v.int_value) : v.uint_value;
        detail::fail(ErrorCode::format, path(), ": metadata ", key, " must be a non-negative integer, found ", type_name(v.type));
    }
    std::uint64_t get_uint(std::string_view key, std::uint64_t fallback) const {
        return find(key) ? require_uint(key) : fallback;
    }
    double require_float(std::string_view key) const {
        const Value& v = require(key);
        if (v.type == Type::f32 || v.type == Type::f64) return v.float_value;
        if (v.is_integer()) return v.is_signed() ? double(v.int_value) : double(v.uint_value);
        detail::fail(ErrorCode::format, path(), ": metadata ", key, " must be a number, found ", type_name(v.type));
    }
    double get_float(std::string_view key, double fallback) const { return find(key) ? require_float(key) : fallback; }
    std::string_view require_string(std::string_view key) const {
        const Value& v = require(key);
        if (v.type != Type::string)
            detail::fail(ErrorCode::format, path(), ": metadata ", key, " must be a string, found ", type_name(v.type));
        return v.string_value;
    }
    std::string_view get_string(std::string_view key, std::string_view fallback) const {
        return find(key) ? require_string(key) : fallback;
    }
    bool get_bool(std::string_view key, bool fallback) const {
        const Value* v = find(key);
        if (!v) return fallback;
        if (v->type != Type::boolean)
            detail::fail(ErrorCode::format, path(), ": metadata ", key, " must be a bool, found ", type_name(v->type));
        return v->uint_value != 0;
    }
    const Value& require(std::string_view key) const {
        if (const Value* v = find(key)) return *v;
        detail::fail(ErrorCode::format, path(), ": metadata key ", key, " is missing");
    }

private:
    // A cursor over the mapped bytes that checks every read.
    struct Cursor {
        const File& owner;
        const std::byte* begin;
        const std::byte* p;
        const std::byte* end;

        std::uint64_t offset() const { return std::uint64_t(p - begin); }
        std::uint64_t remaining() const { return std::uint64_t(end - p); }

        [[noreturn]] void truncated(std::string_view what, std::uint64_t at) const {
            detail::fail(ErrorCode::format, owner.path(), ": truncated GGUF: ", what, " at byte ", at,
                         " runs past the end of the file (", std::uint64_t(end - begin), " bytes)");
        }
        template <typename T>
        T read(std::string_view what) {
            if (remaining() < sizeof(T)) truncated(what, offset());
            T v;
            std::memcpy(&v, p, sizeof(T));
            p += sizeof(T);
            return v;
        }
        // A length-prefixed string, viewed in place (nothing is allocated for it).
        std::string_view read_string(std::string_view what, std::uint64_t max_length) {
            std::uint64_t at = offset();
            std::uint64_t n = read<std::uint64_t>(what);
            if (n > max_length)
                detail::fail(ErrorCode::format, owner.path(), ": ", what, " at byte ", at, " has length ", n,
                             ", over the limit of ", max_length);
            if (n > remaining()) truncated(what, at);
            std::string_view s(reinterpret_cast<const char*>(p), std::size_t(n));
            p += n;
            return s;
        }
    };

    void parse() {
        const std::byte* base = file_.data();
        Cursor c{*this, base, base, base + file_.size()};
        if (file_.size() < 4)
            detail::fail(ErrorCode::format, path(), ": not a GGUF file (", file_.size(),
                         " bytes; a GGUF file starts with the 4-byte magic \"GGUF\")");
        if (std::memcmp(base, "GGUF", 4) != 0)
            detail::fail(ErrorCode::format, path(), ": not a GGUF file (it starts with ",
                         detail::quote_file_string(std::string_view(reinterpret_cast<const char*>(base), 4)),
                         ", not \"GGUF\")");
        c.p += 4;
        version_ = c.read<std::uint32_t>("version");
        if (version_ == 1)
            detail::fail(ErrorCode::unsupported, path(), ": GGUF version 1 is not supported (convert it to version 3)");
        if ((version_ & 0xFFFF) == 0 && version_ != 0)
            detail::fail(ErrorCode::unsupported, path(), ": big-endian GGUF files are not supported (version field ",
                         version_, " is a byte-swapped ", __builtin_bswap32(version_), ")");
        if (version_ != 2 && version_ != 3)
            detail::fail(ErrorCode::unsupported, path(), ": unknown GGUF version ", version_, " (expected 2 or 3)");
        std::uint64_t tensor_count = c.read<std::uint64_t>("tensor count");
        std::uint64_t kv_count = c.read<std::uint64_t>("metadata count");
        if (tensor_count > kMaxTensorCount)
            detail::fail(ErrorCode::format, path(), ": tensor count ", tensor_count, " is over the limit of ", kMaxTensorCount);
        if (kv_count > kMaxMetadataCount)
            detail::fail(ErrorCode::format, path(), ": metadata count ", kv_count, " is over the limit of ", kMaxMetadataCount);
        // Every key/value takes at least 8 (key length) + 4 (type) + 1 (smallest value) bytes, so a
        // count the remaining bytes cannot hold is rejected before anything is reserved for it.
        if (kv_count > c.remaining() / 13)
            detail::fail(ErrorCode::format, path(), ": metadata count ", kv_count, " cannot fit in a file of ",
                         file_.size(), " bytes (truncated or corrupt)");
        metadata_.reserve(std::size_t(kv_count));  // bounded by kMaxMetadataCount and the file size
        for (std::uint64_t i = 0; i < kv_count; ++i) {
            std::uint64_t at = c.offset();
            std::string_view key = c.read_string("metadata key", kMaxKeyLength);
            Value v = read_value(c, key, 0);
            if (!metadata_index_.emplace(key, metadata_.size()).second)
                detail::fail(ErrorCode::format, path(), ": duplicate metadata key ", detail::quote_file_string(key),
                             " at byte ", at);
            metadata_.emplace_back(key, std::move(v));
        }

        alignment_ = 32;
        if (const Value* a = find("general.alignment")) {
            if (!a->is_integer() || a->is_signed())
                detail::fail(ErrorCode::format, path(), ": general.alignment must be an unsigned integer, found ",
                             type_name(a->type));
            alignment_ = a->uint_value;
            if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0 || alignment_ > kMaxAlignment)
                detail::fail(ErrorCode::format, path(), ": general.alignment ", alignment_,
                             " is not a power of two up to 1 MiB");
        }

        // A tensor entry takes at least 8 (name length) + 4 (rank) + 8 (one dimension) + 4 (type) +
        // 8 (offset) bytes; the same argument as for the metadata count.
        if (tensor_count > c.remaining() / 32)
            detail::fail(ErrorCode::format, path(), ": tensor count ", tensor_count, " cannot fit in a file of ",
                         file_.size(), " bytes (truncated or corrupt)");
        tensors_.reserve(std::size_t(tensor_count));  // bounded by kMaxTensorCount and the file size
        for (std::uint64_t i = 0; i < tensor_count; ++i) tensors_.push_back(read_tensor_info(c));

        // header_end <= file size and alignment <= 1 MiB: no overflow
        std::uint64_t header_end = c.offset();
        data_offset_ = (header_end + alignment_ - 1) / alignment_ * alignment_;
        if (tensor_count > 0 && data_offset_ > file_.size())
            detail::fail(ErrorCode::format, path(), ": truncated GGUF: the tensor data section would start at byte ",
                         data_offset_, " but the file has ", file_.size(), " bytes");
        std::uint64_t data_size = file_.size() > data_offset_ ? file_.size() - data_offset_ : 0;
        for (std::size_t i = 0; i < tensors_.size(); ++i) {
            TensorInfo& t = tensors_[i];
            if (!tensor_index_.emplace(t.name, i).second)
                detail::fail(ErrorCode::format, path(), ": duplicate tensor name ", detail::quote_file_string(t.name));
            if (t.offset % alignment_ != 0)
                detail::fail(ErrorCode::format, path(), ": tensor ", detail::quote_file_string(t.name), " has offset ",
                             t.offset, ", not a multiple of the alignment ", alignment_);
            // written as two comparisons so that offset + bytes cannot overflow
            if (t.offset > data_size || t.bytes > data_size - t.offset)
                detail::fail(ErrorCode::format, path(), ": tensor ", detail::quote_file_string(t.name), " (", t.bytes,
                             " bytes at data offset ", t.offset,
                             ") runs past the end of the file: truncated or corrupt (the data section holds ", data_size,
                             " bytes)");
            t.data = base + data_offset_ + t.offset;
        }
        check_no_overlap();
    }

    // Two tensors sharing bytes would alias each other's data: no writer produces that, so it is
    // corruption (or a crafted file), reported with both names.
    void check_no_overlap() const {
        std::vector<std::size_t> order(tensors_.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::sort(order.begin(), order.end(),
                  [&](std::size_t a, std::size_t b) {
                      return tensors_[a].offset != tensors_[b].offset ? tensors_[a].offset < tensors_[b].offset : a < b;
                  });
        for (std::size_t k = 1; k < order.size(); ++k) {
            const TensorInfo& prev = tensors_[order[k - 1]];
            const TensorInfo& next = tensors_[order[k]];
            if (next.offset < prev.offset + prev.bytes)  // both in bounds: no overflow
                detail::fail(ErrorCode::format, path(), ": tensor ", detail::quote_file_string(next.name),
                             " (data bytes ", next.offset, " to ", next.offset + next.bytes, ") overlaps tensor ",
                             detail::quote_file_string(prev.name), " (", prev.offset, " to ", prev.offset + prev.bytes, ")");
        }
    }

    Value read_value(Cursor& c, std::string_view key, int depth) {
        Value v;
        std::uint64_t at = c.offset();
        std::uint32_t raw_type = c.read<std::uint32_t>("metadata value type");
        if (raw_type > std::uint32_t(Type::f64))
            detail::fail(ErrorCode::format, path(), ": metadata ", detail::quote_file_string(key), " at byte ", at,
                         " has unknown value type ", raw_type);
        v.type = static_cast<Type>(raw_type);
        read_scalar_or_array(c, key, v, depth);
        return v;
    }

    void read_scalar_or_array(Cursor& c, std::string_view key, Value& v, int depth) {
        const std::string what = "metadata " + detail::quote_file_string(key);
        switch (v.type) {
            case Type::u8: v.uint_value = c.read<std::uint8_t>(what); break;
            case Type::i8: v.int_value = c.read<std::int8_t>(what); break;
            case Type::u16: v.uint_value = c.read<std::uint16_t>(what); break;
            case Type::i16: v.int_value = c.read<std::int16_t>(what); break;
            case Type::u32: v.uint_value = c.read<std::uint32_t>(what); break;
            case Type::i32: v.int_value = c.read<std::int32_t>(what); break;
            case Type::u64: v.uint_value = c.read<std::uint64_t>(what); break;
            case Type::i64: v.int_value = c.read<std::int64_t>(what); break;
            case Type::f32: v.float_value = c.read<float>(what); break;
            case Type::f64: v.float_value = c.read<double>(what); break;
            case Type::boolean: {
                std::uint64_t at = c.offset();
                std::uint8_t b = c.read<std::uint8_t>(what);
                if (b > 1)
                    detail::fail(ErrorCode::format, path(), ": ", what, " at byte ", at, " is a bool with value ", int(b),
                                 " (must be 0 or 1)");
                v.uint_value = b;
                break;
            }
            case Type::string: v.string_value = c.read_string(what, kMaxStringLength); break;
            case Type::array: read_array(c, key, v, depth); break;
        }
    }

    void read_array(Cursor& c, std::string_view key, Value& v, int depth) {
        const std::string what = "metadata " + detail::quote_file_string(key);
        if (depth >= kMaxArrayNesting)
            detail::fail(ErrorCode::format, path(), ": ", what, " at byte ", c.offset(), " nests arrays deeper than ",
                         kMaxArrayNesting);
        std::uint32_t raw = c.read<std::uint32_t>("array element type");
        if (raw > std::uint32_t(Type::f64))
            detail::fail(ErrorCode::format, path(), ": ", what, " has unknown array element type ", raw);
        v.element_type = static_cast<Type>(raw);
        std::uint64_t at = c.offset();
        v.count = c.read<std::uint64_t>("array length");
        if (v.count > kMaxArrayLength)
            detail::fail(ErrorCode::format, path(), ": ", what, " at byte ", at, " declares ", v.count,
                         " elements, over the limit of ", kMaxArrayLength);
        std::size_t elem = scalar_size(v.element_type);
        // A string element takes at least its 8-byte length, a nested array at least 12 bytes: a count
        // the remaining bytes cannot hold is rejected before anything is reserved or skipped.
        std::uint64_t min_elem = elem ? elem : (v.element_type == Type::string ? 8 : 12);
        if (v.count > c.remaining() / min_elem)
            detail::fail(ErrorCode::format, path(), ": ", what, " at byte ", at, " declares ", v.count,
                         " elements, more than the remaining ", c.remaining(), " bytes can hold (truncated or corrupt)");
        if (elem) {
            v.elements = c.p;
            if (v.element_type == Type::boolean)
                for (std::uint64_t i = 0; i < v.count; ++i)
                    if (std::uint8_t(c.p[i]) > 1)
                        detail::fail(ErrorCode::format, path(), ": ", what, " element ", i, " at byte ", c.offset() + i,
                                     " is a bool with value ", int(c.p[i]), " (must be 0 or 1)");
            c.p += v.count * elem;  // in bounds: count <= remaining / elem
        } else if (v.element_type == Type::string) {
            v.strings.reserve(std::size_t(v.count));  // <= remaining / 8 views: bounded by the file size
            for (std::uint64_t i = 0; i < v.count; ++i) v.strings.push_back(c.read_string(what, kMaxStringLength));
        } else {
            // arrays of arrays: validated and skipped (nothing in a Qwen3 file uses them); the recursion
            // is at most kMaxArrayNesting deep, and each element consumes at least 12 bytes
            for (std::uint64_t i = 0; i < v.count; ++i) {
                Value inner;
                inner.type = Type::array;
                read_array(c, key, inner, depth + 1);
            }
        }
    }

    TensorInfo read_tensor_info(Cursor& c) {
        TensorInfo t;
        std::uint64_t at = c.offset();
        t.name = std::string(c.read_string("tensor name", kMaxKeyLength));  // <= 64 KiB each
        const std::string name = detail::quote_file_string(t.name);
        std::uint32_t n_dims = c.read<std::uint32_t>("tensor rank");
        if (n_dims == 0 || n_dims > kMaxDims)
            detail::fail(ErrorCode::format, path(), ": tensor ", name, " at byte ", at, " has rank ", n_dims,
                         " (must be 1 to ", kMaxDims, ")");
        std::uint64_t ne[kMaxDims] = {};
        for (std::uint32_t d = 0; d < n_dims; ++d) ne[d] = c.read<std::uint64_t>("tensor dimension");
        std::uint32_t raw_type = c.read<std::uint32_t>("tensor type");
        t.offset = c.read<std::uint64_t>("tensor offset");
        const DTypeInfo* info = find_dtype(raw_type);
        if (!info) {
            const char* ggml_name = detail::ggml_type_name(raw_type);
            if (*ggml_name)
                detail::fail(ErrorCode::unsupported, path(), ": tensor ", name, " has ggml type ", raw_type, " (",
                             ggml_name, "), which this library does not support");
            detail::fail(ErrorCode::format, path(), ": tensor ", name, " at byte ", at, " has unknown ggml type ", raw_type);
        }
        t.type = info->type;
        t.shape.rank = n_dims;
        std::uint64_t elements = 1;
        for (std::uint32_t d = 0; d < n_dims; ++d) {
            // ne[d] <= 2^40, so the product check below is the only overflow to guard
            if (ne[d] == 0 || ne[d] > kMaxDimension)
                detail::fail(ErrorCode::format, path(), ": tensor ", name, " dimension ", d, " has size ", ne[d],
                             " (must be 1 to ", kMaxDimension, ")");
            if (elements > std::numeric_limits<std::uint64_t>::max() / ne[d])
                detail::fail(ErrorCode::format, path(), ": tensor ", name, " has too many elements (over 2^64)");
            elements *= ne[d];
            t.shape.dims[n_dims - 1 - d] = ne[d];  // GGUF lists the fastest dimension first
        }
        if (ne[0] % info->block_elems != 0)
            detail::fail(ErrorCode::format, path(), ": tensor ", name, " of type ", info->name, " has rows of ", ne[0],
                         " elements, not a multiple of its block size ", info->block_elems);
        std::uint64_t blocks = elements / info->block_elems;
        if (blocks > std::numeric_limits<std::uint64_t>::max() / info->block_bytes)
            detail::fail(ErrorCode::format, path(), ": tensor ", name, " is too large (over 2^64 bytes)");
        t.bytes = blocks * info->block_bytes;
        return t;
    }

    MappedFile file_;
    std::uint32_t version_ = 0;
    std::uint64_t alignment_ = 32;
    std::uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string_view, Value>> metadata_;
    std::unordered_map<std::string_view, std::size_t> metadata_index_;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string_view, std::size_t> tensor_index_;
};

}  // namespace qwen3::gguf
// ===== end of qwen3/format/gguf.hpp =====
// ===== qwen3/format/safetensors.hpp =====
// qwen3/format/safetensors.hpp - a bounds-checked reader of Hugging Face safetensors files.
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON describing each tensor (dtype,
// shape, [begin, end) offsets into the data that follows), then the raw row-major data. Sharded
// checkpoints list which file holds each tensor in model.safetensors.index.json.
//
// Validation follows the reference implementation (the `safetensors` Rust crate behind Python's
// safe_open), so a file this reader accepts is one Hugging Face loads: the header is at most 100 MB
// of UTF-8 JSON; it is an object whose keys are unique; each entry has a known dtype, a shape of at
// most 4 non-negative integers and offsets whose span is exactly shape x dtype bytes; and the
// tensors, sorted by offset, tile the data section exactly, with no overlap, gap or trailing byte.
// Everything allocated while parsing is bounded by the header's length and kMaxHeaderValues.



namespace qwen3::detail {
// Reads a JSON integer written without fraction or exponent into `out`; false when it is negative,
// above `limit` or not such an integer (its text may be any length, so no conversion can overflow).
inline bool json_uint_at_most(const json::Value& v, std::uint64_t limit, std::uint64_t& out) {
    if (!v.is_integer()) return false;
    const std::string& text = v.as_number().text;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && ptr == text.data() + text.size() && out <= limit;
}
}  // namespace qwen3::detail

namespace qwen3::safetensors {

struct TensorInfo {
    std::string name;
    std::string dtype;  // as written: "BF16", "F16", "F32", "I64", ...
    Shape shape;
    const std::byte* data = nullptr;
    std::uint64_t bytes = 0;
    bool supported = false;  // dtype is one this library computes with
    DType type = DType::f32; // valid when supported
};

// Element size of a safetensors dtype in bytes; 0 when unknown (or smaller than a byte: see dtype_bits).
inline std::uint64_t dtype_size(std::string_view dtype) {
    if (dtype == "F64" || dtype == "I64" || dtype == "U64" || dtype == "C64") return 8;
    if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
    if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
    if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2" ||
        dtype == "F8_E8M0")
        return 1;
    return 0;
}

// Element size in bits, including the packed sub-byte float types; 0 when unknown.
inline std::uint64_t dtype_bits(std::string_view dtype) {
    if (dtype == "F4") return 4;
    if (dtype == "F6_E2M3" || dtype == "F6_E3M2") return 6;
    return dtype_size(dtype) * 8;
}

// The safetensors format caps its JSON header at 100 MB; a larger declared length is corrupt.
inline constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
// JSON values a header (or an index) may hold. A tensor entry takes at most 11 (the entry, dtype,
// shape and 4 dimensions, offsets and 2 numbers), so this allows ~95,000 tensors per file while
// capping the parsed tree at about 100 MB however the header is written (measured peak for 2^20
// values: 66 MB as [0,0,...], 104 MB as {"":0,...}), plus the strings' bytes, at most the header's.
inline constexpr std::size_t kMaxHeaderValues = 1u << 20;
// A valid header nests 3 deep (root, entry, shape); __metadata__ is an object of strings.
inline constexpr int kMaxHeaderDepth = 8;
inline constexpr std::uint64_t kMaxDimension = 1ull << 40;

class File {
public:
    // Maps and parses one .safetensors file. Throws Error(io) when it cannot be read, Error(format)
    // naming the file (and the tensor) when it is malformed.
    explicit File(const std::string& path) : file_(path) { parse(); }

    const std::string& path() const { return file_.path(); }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find(std::string_view name) const {
        auto it = index_.find(name);
        return it == index_.end() ? nullptr : &tensors_[it->second];
    }

private:
    void parse() {
        const std::uint64_t size = file_.size();
        if (size < 8) detail::fail(ErrorCode::format, path(), ": truncated safetensors file (", size, " bytes, no header)");
        std::uint64_t header_len;
        std::memcpy(&header_len, file_.data(), 8);
        if (header_len > kMaxHeaderBytes)
            detail::fail(ErrorCode::format, path(), ": safetensors header length ", header_len,
                         " is over the format's limit of 100 MB (corrupt file?)");
        if (header_len > size - 8)
            detail::fail(ErrorCode::format, path(), ": truncated safetensors file: header of ", header_len,
                         " bytes but only ", size - 8, " bytes follow");
        std::string_view header(reinterpret_cast<const char*>(file_.data()) + 8, std::size_t(header_len));
        json::ParseOptions options;
        options.max_depth = kMaxHeaderDepth;
        options.max_values = kMaxHeaderValues;
        options.unique_keys = true;  // a tensor named twice is rejected by the parser, with its offset
        json::Value root = json::parse(header, path() + " (safetensors header)", options);
        if (!root.is_object()) detail::fail(ErrorCode::format, path(), ": safetensors header is not a JSON object");
        const std::byte* data = file_.data() + 8 + header_len;
        const std::uint64_t data_size = size - 8 - header_len;

        tensors_.reserve(root.as_object().size());  // bounded by kMaxHeaderValues
        for (const json::Member& m : root.as_object()) {
            if (m.key == "__metadata__") {
                if (!m.value.is_object())
                    detail::fail(ErrorCode::format, path(), ": safetensors \"__metadata__\" is not a JSON object");
                continue;
            }
            tensors_.push_back(parse_entry(m.key, m.value, data, data_size));
        }
        check_layout(data, data_size);
        for (std::size_t i = 0; i < tensors_.size(); ++i)
            if (!index_.emplace(tensors_[i].name, i).second)  // unreachable after unique_keys; kept as a guard
                detail::fail(ErrorCode::format, path(), ": duplicate tensor ", json::quote(tensors_[i].name));
    }

    TensorInfo parse_entry(const std::string& name, const json::Value& entry, const std::byte* data,
                           std::uint64_t data_size) const {
        auto bad = [&](std::string_view why) {
            detail::fail(ErrorCode::format, path(), ": tensor ", json::quote(name), ": ", why);
        };
        if (!entry.is_object()) bad("entry is not an object");
        TensorInfo t;
        t.name = name;
        const json::Value* dtype = entry.find("dtype");
        const json::Value* shape = entry.find("shape");
        const json::Value* offsets = entry.find("data_offsets");
        if (!dtype || !dtype->is_string()) bad("missing or non-string \"dtype\"");
        if (!shape || !shape->is_array()) bad("missing or non-array \"shape\"");
        if (!offsets || !offsets->is_array() || offsets->as_array().size() != 2) bad("\"data_offsets\" must be [begin, end]");
        t.dtype = dtype->as_string();
        const std::uint64_t bits = dtype_bits(t.dtype);
        if (!bits) bad("unknown dtype " + json::quote(t.dtype));
        if (t.dtype == "F32") t.type = DType::f32, t.supported = true;
        else if (t.dtype == "F16") t.type = DType::f16, t.supported = true;
        else if (t.dtype == "BF16") t.type = DType::bf16, t.supported = true;

        const json::Array& dims = shape->as_array();
        if (dims.size() > 4) bad("rank " + std::to_string(dims.size()) + " is over 4");
        t.shape.rank = std::uint32_t(dims.size());
        std::uint64_t elements = 1;
        for (std::size_t d = 0; d < dims.size(); ++d) {
            std::uint64_t v = 0;
            if (!detail::json_uint_at_most(dims[d], kMaxDimension, v))
                bad("shape entries must be integers from 0 to " + std::to_string(kMaxDimension) + ", found " +
                    json::dump(dims[d]));
            t.shape.dims[d] = v;
            if (v && elements > std::numeric_limits<std::uint64_t>::max() / v) bad("too many elements (over 2^64)");
            elements *= v;
        }
        const json::Array& off = offsets->as_array();
        std::uint64_t begin = 0, end = 0;
        for (const json::Value& o : off)
            if (!o.is_integer() || o.as_number().text[0] == '-')
                bad("data_offsets must be non-negative integers, found " + json::dump(*offsets));
        if (!detail::json_uint_at_most(off[0], data_size, begin) || !detail::json_uint_at_most(off[1], data_size, end))
            bad("data " + json::dump(*offsets) + " runs past the end of the file (" + std::to_string(data_size) +
                " data bytes): truncated or corrupt");
        if (end < begin) bad("data_offsets end before they begin: " + json::dump(*offsets));
        // bits <= 64 and elements < 2^64: compare in bytes without overflow
        const bool fits = elements <= std::numeric_limits<std::uint64_t>::max() / bits;
        const std::uint64_t need_bits = fits ? elements * bits : 0;
        if (!fits || need_bits % 8 != 0 || end - begin != need_bits / 8)
            bad("holds " + std::to_string(end - begin) + " bytes but shape " + t.shape.to_string() + " of " + t.dtype +
                " needs " +
                (!fits ? std::string("more than 2^61 bytes")
                       : need_bits % 8 ? std::to_string(need_bits) + " bits (not whole bytes)"
                                       : std::to_string(need_bits / 8) + " bytes"));
        t.data = data + begin;
        t.bytes = end - begin;
        return t;
    }

    // The tensors must tile the data section: sorted by offset, each starts where the previous one
    // ended, the first at 0 and the last at the end (as the reference implementation requires).
    void check_layout(const std::byte* data, std::uint64_t data_size) const {
        std::vector<const TensorInfo*> order;
        order.reserve(tensors_.size());
        for (const TensorInfo& t : tensors_) order.push_back(&t);
        std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
            return a->data != b->data ? a->data < b->data : a->bytes < b->bytes;
        });
        std::uint64_t expected = 0;
        const TensorInfo* previous = nullptr;
        for (const TensorInfo* t : order) {
            const std::uint64_t begin = std::uint64_t(t->data - data);
            if (begin < expected)
                detail::fail(ErrorCode::format, path(), ": tensor ", json::quote(t->name), " (data bytes ", begin, " to ",
                             begin + t->bytes, ") overlaps tensor ", json::quote(previous->name), " (ending at ", expected, ")");
            if (begin > expected)
                detail::fail(ErrorCode::format, path(), ": tensor ", json::quote(t->name), " starts at data byte ", begin,
                             " but the data before it ends at ", expected,
                             " (safetensors packs tensors without gaps: corrupt file?)");
            expected = begin + t->bytes;
            previous = t;
        }
        if (expected != data_size)
            detail::fail(ErrorCode::format, path(), ": the tensors cover ", expected, " bytes of the ", data_size,
                         "-byte data section (safetensors packs tensors exactly: corrupt file?)");
    }

    MappedFile file_;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string_view, std::size_t> index_;
};

// model.safetensors.index.json: which shard file holds each tensor.
struct Index {
    std::vector<std::string> shards;                        // distinct file names, in first-use order
    std::unordered_map<std::string, std::size_t> shard_of;  // tensor name -> position in `shards`
};

// Reads a sharded checkpoint's index. Shard names must be plain file names in the same folder: no
// path separators, no "." or "..", no control characters (a NUL would cut the path short).
// Throws Error(io) when the file cannot be read, Error(format) when it is malformed (bad JSON,
// duplicate keys, no "weight_map" object, a non-string entry, a bad or empty shard list).
inline Index read_index(const std::string& index_path) {
    MappedFile file(index_path);
    if (file.size() > kMaxHeaderBytes)
        detail::fail(ErrorCode::format, index_path, ": ", file.size(), " bytes, over the limit of 100 MB for an index");
    json::ParseOptions options;
    options.max_depth = kMaxHeaderDepth;
    options.max_values = kMaxHeaderValues;
    options.unique_keys = true;  // a tensor listed twice would be ambiguous
    json::Value root = json::parse(file.view(), index_path, options);
    const json::Value* map = root.find("weight_map");
    if (!map || !map->is_object()) detail::fail(ErrorCode::format, index_path, ": no \"weight_map\" object");
    Index index;
    std::unordered_map<std::string, std::size_t> position_of;  // shard name -> position in index.shards
    for (const json::Member& m : map->as_object()) {
        if (!m.value.is_string())
            detail::fail(ErrorCode::format, index_path, ": weight_map entry ", json::quote(m.key), " is not a string");
        const std::string& file_name = m.value.as_string();
        bool plain = !file_name.empty() && file_name != "." && file_name != "..";
        for (char ch : file_name) plain = plain && ch != '/' && ch != '\\' && static_cast<unsigned char>(ch) >= 0x20;
        if (!plain)
            detail::fail(ErrorCode::format, index_path, ": shard name ", json::quote(file_name), " for tensor ",
                         json::quote(m.key), " is not a plain file name in the model's folder");
        auto [it, added] = position_of.emplace(file_name, index.shards.size());
        if (added) index.shards.push_back(file_name);
        index.shard_of.emplace(m.key, it->second);
    }
    if (index.shards.empty()) detail::fail(ErrorCode::format, index_path, ": weight_map is empty");
    return index;
}

// The distinct shard file names of an index, in first-use order (see read_index).
inline std::vector<std::string> read_shard_list(const std::string& index_path) { return read_index(index_path).shards; }

}  // namespace qwen3::safetensors
// ===== end of qwen3/format/safetensors.hpp =====

namespace qwen3 {

// RoPE frequency scaling declared by the file. Qwen3 ships without scaling (native 32k/40k context)
// and documents YaRN (factor 4, original 32768) for longer contexts.
struct RopeScaling {
    enum class Kind { none, linear, yarn };
    Kind kind = Kind::none;
    double factor = 1.0;
    std::uint64_t original_context = 0;
    double beta_fast = 32.0;   // YaRN: rotations per dimension above which frequencies are kept
    double beta_slow = 1.0;    // YaRN: below which they are interpolated
    double attention_factor = 0;  // YaRN: 0 = default 0.1 * ln(factor) + 1
};

// Hyperparameters as the file states them (validated against a compiled Config by the model).
struct ModelParams {
    std::string architecture;  // "qwen3"
    std::string name;          // general.name or the folder name
    std::uint64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, ffn = 0, vocab = 0;
    bool tied_embeddings = true;
    std::uint64_t context_length = 0;  // the model's trained context (max_position_embeddings)
    double rope_theta = 1000000.0;
    double rms_norm_eps = 1e-6;
    RopeScaling rope_scaling;
};

enum class CheckpointFormat { gguf, safetensors };

// config.json is a few hundred bytes; anything near this limit is not a model configuration.
inline constexpr std::uint64_t kMaxConfigBytes = 16u << 20;
// Integer hyperparameters above this fit no compiled configuration (its dimensions are int).
inline constexpr std::uint64_t kMaxHyperparameter = 2147483647;

class Checkpoint {
public:
    // Opens a .gguf file, or a Hugging Face folder (or its config.json / a .safetensors file in it).
    // Throws Error(io) when nothing readable is at `path` (or a folder has no config.json),
    // Error(format) when a file is malformed or a required hyperparameter is missing or out of range,
    // Error(unsupported) for another architecture, RoPE scaling type or a model tensor's dtype.
    static Checkpoint open(const std::string& path) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) detail::fail(ErrorCode::io, "cannot open ", path, ": ", std::strerror(errno));
        if (S_ISDIR(st.st_mode)) return open_hf_folder(path);
        // a file: GGUF by its magic; config.json or *.safetensors name their folder
        {
            MappedFile probe(path);
            if (probe.size() >= 4 && std::memcmp(probe.data(), "GGUF", 4) == 0) return open_gguf(path);
        }
        std::string_view p(path);
        auto ends_with = [&](std::string_view s) { return p.size() >= s.size() && p.substr(p.size() - s.size()) == s; };
        if (ends_with(".safetensors") || ends_with("config.json") || ends_with(".index.json")) {
            std::size_t slash = path.find_last_of('/');
            return open_hf_folder(slash == std::string::npos ? std::string(".") : path.substr(0, slash));
        }
        if (ends_with(".gguf"))
            detail::fail(ErrorCode::format, path, ": not a GGUF file (the first 4 bytes are not \"GGUF\")");
        detail::fail(ErrorCode::format, path, ": neither a GGUF file nor a Hugging Face model folder");
    }

    const ModelParams& params() const { return params_; }
    CheckpointFormat format() const { return format_; }
    const std::string& path() const { return path_; }
    const std::vector<TensorView>& tensors() const { return tensors_; }
    const TensorView* find(std::string_view canonical_name) const {
        auto it = index_.find(std::string(canonical_name));
        return it == index_.end() ? nullptr : &tensors_[it->second];
    }
    // The parsed GGUF file (tokenizer metadata lives there); nullptr for a Hugging Face folder.
    const gguf::File* gguf_file() const { return gguf_.get(); }
    // The Hugging Face folder ("" for GGUF): tokenizer.json and tokenizer_config.json live there.
    const std::string& folder() const { return folder_; }
    // Bytes of tensor data in the checkpoint.
    std::uint64_t tensor_bytes() const {
        std::uint64_t n = 0;
        for (const TensorView& t : tensors_) n += t.bytes;
        return n;
    }

    // A checkpoint over tensors already in memory (synthetic models, converters). `keep_alive` owns
    // the memory the views point into and lives as long as the checkpoint.
    // Throws Error(invalid_argument) when two tensors have the same name.
    static Checkpoint in_memory(ModelParams params, std::vector<TensorView> tensors, std::shared_ptr<const void> keep_alive,
                                std::string name = "(in memory)") {
        Checkpoint c;
        c.format_ = CheckpointFormat::gguf;
        c.path_ = std::move(name);
        c.params_ = std::move(params);
        for (TensorView& t : tensors) {
            if (c.find(t.name)) detail::fail(ErrorCode::invalid_argument, c.path_, ": tensor ", t.name, " given twice");
            c.add(std::move(t));
        }
        c.keep_alive_ = std::move(keep_alive);
        return c;
    }

    // Maps a Hugging Face tensor name to the canonical name; "" for names the model does not use.
    static std::string canonical_name(std::string_view hf) {
        static const std::pair<std::string_view, std::string_view> layer_parts[] = {
            {"input_layernorm.weight", "attn_norm.weight"},
            {"self_attn.q_proj.weight", "attn_q.weight"},
            {"self_attn.k_proj.weight", "attn_k.weight"},
            {"self_attn.v_proj.weight", "attn_v.weight"},
            {"self_attn.o_proj.weight", "attn_output.weight"},
            {"self_attn.q_norm.weight", "attn_q_norm.weight"},
            {"self_attn.k_norm.weight", "attn_k_norm.weight"},
            {"post_attention_layernorm.weight", "ffn_norm.weight"},
            {"mlp.gate_proj.weight", "ffn_gate.weight"},
            {"mlp.up_proj.weight", "ffn_up.weight"},
            {"mlp.down_proj.weight", "ffn_down.weight"},
        };
        if (hf == "model.embed_tokens.weight") return "token_embd.weight";
        if (hf == "model.norm.weight") return "output_norm.weight";
        if (hf == "lm_head.weight") return "output.weight";
        constexpr std::string_view prefix = "model.layers.";
        if (hf.substr(0, prefix.size()) != prefix) return "";
        std::string_view rest = hf.substr(prefix.size());
        std::size_t dot = rest.find('.');
        if (dot == 0 || dot == std::string_view::npos || dot > 6) return "";
        for (std::size_t i = 0; i < dot; ++i)
            if (rest[i] < '0' || rest[i] > '9') return "";
        std::string_view layer = rest.substr(0, dot), part = rest.substr(dot + 1);
        for (auto& [from, to] : layer_parts)
            if (part == from) return "blk." + std::string(layer) + "." + std::string(to);
        return "";
    }

private:
    static Checkpoint open_gguf(const std::string& path) {
        Checkpoint c;
        c.format_ = CheckpointFormat::gguf;
        c.path_ = path;
        c.gguf_ = std::make_shared<gguf::File>(path);
        const gguf::File& f = *c.gguf_;
        ModelParams& p = c.params_;
        p.architecture = std::string(f.require_string("general.architecture"));
        if (p.architecture != "qwen3")
            detail::fail(ErrorCode::unsupported, path, ": architecture is ", detail::quote_file_string(p.architecture),
                         "; this library runs Qwen3 dense models (\"qwen3\")");
        auto uint = [&](const char* key, std::optional<std::uint64_t> fallback) -> std::uint64_t {
            std::uint64_t v = fallback && !f.find(key) ? *fallback : f.require_uint(key);
            if (v > kMaxHyperparameter)
                detail::fail(ErrorCode::format, path, ": metadata ", key, " is ", v, ", over the limit of ", kMaxHyperparameter);
            return v;
        };
        auto real = [&](const char* key, std::optional<double> fallback) -> double {
            double v = fallback && !f.find(key) ? *fallback : f.require_float(key);
            if (!std::isfinite(v)) detail::fail(ErrorCode::format, path, ": metadata ", key, " is ", v, ", not a finite number");
            return v;
        };
        p.name = std::string(f.get_string("general.name", ""));
        p.hidden = uint("qwen3.embedding_length", std::nullopt);
        p.layers = uint("qwen3.block_count", std::nullopt);
        p.heads = uint("qwen3.attention.head_count", std::nullopt);
        p.kv_heads = uint("qwen3.attention.head_count_kv", p.heads);
        p.head_dim = uint("qwen3.attention.key_length", p.heads ? p.hidden / p.heads : 0);
        std::uint64_t value_length = uint("qwen3.attention.value_length", p.head_dim);
        if (value_length != p.head_dim)
            detail::fail(ErrorCode::unsupported, path, ": key_length ", p.head_dim, " differs from value_length ", value_length);
        p.ffn = uint("qwen3.feed_forward_length", std::nullopt);
        p.context_length = uint("qwen3.context_length", 0);
        p.rope_theta = real("qwen3.rope.freq_base", 10000.0);
        p.rms_norm_eps = real("qwen3.attention.layer_norm_rms_epsilon", std::nullopt);
        std::string_view scaling = f.get_string("qwen3.rope.scaling.type", "none");
        if (scaling == "yarn" || scaling == "linear") {
            p.rope_scaling.kind = scaling == "yarn" ? RopeScaling::Kind::yarn : RopeScaling::Kind::linear;
            p.rope_scaling.factor = real("qwen3.rope.scaling.factor", std::nullopt);
            p.rope_scaling.original_context = uint("qwen3.rope.scaling.original_context_length", p.context_length);
            p.rope_scaling.beta_fast = real("qwen3.rope.scaling.yarn_beta_fast", 32.0);
            p.rope_scaling.beta_slow = real("qwen3.rope.scaling.yarn_beta_slow", 1.0);
            p.rope_scaling.attention_factor = real("qwen3.rope.scaling.attn_factor", 0.0);
        } else if (scaling != "none" && !scaling.empty()) {
            detail::fail(ErrorCode::unsupported, path, ": RoPE scaling ", detail::quote_file_string(scaling),
                         " is not supported (none, linear and yarn are)");
        }
        for (const gguf::TensorInfo& t : f.tensors())
            c.add(TensorView{t.name, t.type, t.shape, t.data, t.bytes});
        const TensorView* embd = c.find("token_embd.weight");
        p.vocab = uint("qwen3.vocab_size", embd && embd->shape.rank == 2 ? embd->shape[0] : 0);
        p.tied_embeddings = c.find("output.weight") == nullptr;
        return c;
    }

    // A hyperparameter from config.json: an integer 0 .. kMaxHyperparameter (1024.0 is accepted as
    // 1024, as Python would), or a finite number.
    static std::uint64_t config_uint(const json::Value& v, const std::string& file, std::string_view key) {
        std::uint64_t out = 0;
        if (detail::json_uint_at_most(v, kMaxHyperparameter, out)) return out;
        if (v.is_number() && !v.is_integer()) {
            double d = v.as_double();
            if (d >= 0 && d <= double(kMaxHyperparameter) && std::floor(d) == d) return std::uint64_t(d);
        }
        detail::fail(ErrorCode::format, file, ": \"", key, "\" must be an integer from 0 to ", kMaxHyperparameter,
                     ", found ", json::dump(v));
    }
    static double config_real(const json::Value& v, const std::string& file, std::string_view key) {
        if (!v.is_number() || !std::isfinite(v.as_double()))
            detail::fail(ErrorCode::format, file, ": \"", key, "\" must be a finite number, found ", json::dump(v));
        return v.as_double();
    }

    // Reads a small JSON file of a Hugging Face folder strictly (unique keys, bounded size and depth).
    static json::Value read_config_json(const std::string& file) {
        MappedFile mapped(file);
        if (mapped.size() > kMaxConfigBytes)
            detail::fail(ErrorCode::format, file, ": ", mapped.size(), " bytes, over the limit of ", kMaxConfigBytes,
                         " for a model configuration");
        json::ParseOptions options;
        options.max_depth = 32;
        options.max_values = safetensors::kMaxHeaderValues;
        options.unique_keys = true;  // Python would keep the last of two values, Value::find the first
        json::Value cfg = json::parse(mapped.view(), file, options);
        if (!cfg.is_object()) detail::fail(ErrorCode::format, file, ": not a JSON object");
        return cfg;
    }

    // RoPE scaling from a "rope_scaling" object (transformers 4) or "rope_parameters" (transformers 5,
    // which also moves rope_theta there). The type is "rope_type" (or the older "type").
    static void read_rope(const json::Value& cfg, const std::string& config_path, ModelParams& p) {
        const json::Value* params = cfg.find("rope_parameters");
        if (params && !params->is_null() && !params->is_object())
            detail::fail(ErrorCode::format, config_path, ": \"rope_parameters\" must be an object or null");
        if (params && params->is_null()) params = nullptr;
        if (const json::Value* theta = cfg.find("rope_theta"); theta && !theta->is_null())
            p.rope_theta = config_real(*theta, config_path, "rope_theta");
        else if (const json::Value* inner = params ? params->find("rope_theta") : nullptr; inner && !inner->is_null())
            p.rope_theta = config_real(*inner, config_path, "rope_parameters.rope_theta");
        else
            p.rope_theta = 10000.0;  // transformers' Qwen3Config default

        const json::Value* rs = cfg.find("rope_scaling");
        std::string section = "rope_scaling";
        if (!rs || rs->is_null()) rs = params, section = "rope_parameters";
        if (!rs || rs->is_null()) return;
        if (!rs->is_object()) detail::fail(ErrorCode::format, config_path, ": \"rope_scaling\" must be an object or null");
        const json::Value* type = rs->find("rope_type");
        if (!type) type = rs->find("type");
        if (!type || !type->is_string())
            detail::fail(ErrorCode::format, config_path, ": ", section, " needs a string \"rope_type\"");
        const std::string& kind = type->as_string();
        if (kind == "default") return;
        if (kind != "yarn" && kind != "linear")
            detail::fail(ErrorCode::unsupported, config_path, ": ", section, " type ", json::quote(kind),
                         " is not supported (default, linear and yarn are)");
        auto real = [&](const char* key, double fallback) {
            const json::Value* v = rs->find(key);
            return !v || v->is_null() ? fallback : config_real(*v, config_path, section + "." + key);
        };
        p.rope_scaling.kind = kind == "yarn" ? RopeScaling::Kind::yarn : RopeScaling::Kind::linear;
        p.rope_scaling.factor = real("factor", 1.0);
        const json::Value* original = rs->find("original_max_position_embeddings");
        p.rope_scaling.original_context = !original || original->is_null()
                                              ? p.context_length
                                              : config_uint(*original, config_path, section + ".original_max_position_embeddings");
        p.rope_scaling.beta_fast = real("beta_fast", 32.0);
        p.rope_scaling.beta_slow = real("beta_slow", 1.0);
        p.rope_scaling.attention_factor = real("attention_factor", 0.0);
    }

    static Checkpoint open_hf_folder(const std::string& folder) {
        Checkpoint c;
        c.format_ = CheckpointFormat::safetensors;
        c.path_ = folder;
        c.folder_ = folder;
        const std::string config_path = folder + "/config.json";
        struct stat st {};
        if (::stat(config_path.c_str(), &st) != 0)
            detail::fail(ErrorCode::io, folder, ": no config.json (neither a GGUF file nor a Hugging Face model folder)");
        const json::Value cfg = read_config_json(config_path);
        ModelParams& p = c.params_;
        auto get_uint = [&](const char* key, std::optional<std::uint64_t> fallback) -> std::uint64_t {
            const json::Value* v = cfg.find(key);
            if (!v || v->is_null()) {
                if (fallback) return *fallback;
                detail::fail(ErrorCode::format, config_path, ": missing \"", key, "\"");
            }
            return config_uint(*v, config_path, key);
        };
        auto get_real = [&](const char* key, double fallback) {
            const json::Value* v = cfg.find(key);
            return !v || v->is_null() ? fallback : config_real(*v, config_path, key);
        };
        const json::Value* model_type = cfg.find("model_type");
        if (!model_type || !model_type->is_string())
            detail::fail(ErrorCode::format, config_path, ": missing or non-string \"model_type\"");
        p.architecture = model_type->as_string();
        if (p.architecture != "qwen3")
            detail::fail(ErrorCode::unsupported, config_path, ": model_type is ", json::quote(p.architecture),
                         "; this library runs Qwen3 dense models (\"qwen3\")");
        std::size_t slash = folder.find_last_of('/', folder.size() > 1 ? folder.size() - 2 : 0);
        p.name = slash == std::string::npos ? folder : folder.substr(slash + 1);
        p.hidden = get_uint("hidden_size", std::nullopt);
        p.layers = get_uint("num_hidden_layers", std::nullopt);
        p.heads = get_uint("num_attention_heads", std::nullopt);
        p.kv_heads = get_uint("num_key_value_heads", p.heads);
        p.head_dim = get_uint("head_dim", p.heads ? p.hidden / p.heads : 0);
        p.ffn = get_uint("intermediate_size", std::nullopt);
        p.vocab = get_uint("vocab_size", std::nullopt);
        p.context_length = get_uint("max_position_embeddings", 0);
        p.rms_norm_eps = get_real("rms_norm_eps", 1e-6);
        read_rope(cfg, config_path, p);
        const json::Value* tie = cfg.find("tie_word_embeddings");
        if (tie && !tie->is_null() && !tie->is_bool())
            detail::fail(ErrorCode::format, config_path, ": \"tie_word_embeddings\" must be true or false, found ",
                         json::dump(*tie));

        // The shards: those the index names, or the single model.safetensors.
        std::optional<safetensors::Index> index;
        const std::string index_path = folder + "/model.safetensors.index.json";
        if (::stat(index_path.c_str(), &st) == 0) index = safetensors::read_index(index_path);
        const std::vector<std::string> names = index ? index->shards : std::vector<std::string>{"model.safetensors"};
        std::unordered_map<std::string, std::size_t> shard_of;  // canonical name -> shard it came from
        for (std::size_t s = 0; s < names.size(); ++s) {
            const std::string file = folder + "/" + names[s];
            auto shard = std::make_shared<safetensors::File>(file);
            for (const safetensors::TensorInfo& t : shard->tensors()) {
                std::string name = canonical_name(t.name);
                if (name.empty()) continue;  // not a weight the model uses (e.g. rotary_emb.inv_freq)
                if (auto [it, added] = shard_of.emplace(name, s); !added)
                    detail::fail(ErrorCode::format, file, ": tensor ", t.name, " appears in more than one shard (also in ",
                                 names[it->second], ")");
                if (index) {
                    auto listed = index->shard_of.find(t.name);
                    if (listed == index->shard_of.end())
                        detail::fail(ErrorCode::format, file, ": tensor ", t.name, " is not listed in ", index_path);
                    if (listed->second != s)
                        detail::fail(ErrorCode::format, file, ": tensor ", t.name, " is in this shard, but ", index_path,
                                     " lists it in ", names[listed->second]);
                }
                if (!t.supported)
                    detail::fail(ErrorCode::unsupported, file, ": tensor ", t.name, " has dtype ", t.dtype,
                                 "; supported are F32, F16 and BF16");
                c.add(TensorView{name, t.type, t.shape, t.data, t.bytes});
            }
            c.shards_.push_back(std::move(shard));
        }
        if (index)
            for (const auto& [hf_name, s] : index->shard_of)
                if (std::string name = canonical_name(hf_name); !name.empty() && !c.find(name))
                    detail::fail(ErrorCode::format, index_path, ": lists tensor ", hf_name, " in ", names[s],
                                 ", which does not hold it");

        p.tied_embeddings = tie && tie->is_bool() ? tie->as_bool() : c.find("output.weight") == nullptr;
        // Some exports store lm_head even when tied; the tie decides and the copy is dropped.
        if (p.tied_embeddings) c.remove("output.weight");
        return c;
    }

    void remove(std::string_view canonical_name) {
        auto it = index_.find(std::string(canonical_name));
        if (it == index_.end()) return;
        tensors_.erase(tensors_.begin() + std::ptrdiff_t(it->second));
        index_.clear();
        for (std::size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
    }

    void add(TensorView view) {
        index_.emplace(view.name, tensors_.size());
        tensors_.push_back(std::move(view));
    }

    CheckpointFormat format_ = CheckpointFormat::gguf;
    std::string path_, folder_;
    ModelParams params_;
    std::vector<TensorView> tensors_;
    std::unordered_map<std::string, std::size_t> index_;
    std::shared_ptr<gguf::File> gguf_;
    std::vector<std::shared_ptr<safetensors::File>> shards_;
    std::shared_ptr<const void> keep_alive_;
};

}  // namespace qwen3
// ===== end of qwen3/format/checkpoint.hpp =====
// ===== qwen3/model.hpp =====
// qwen3/model.hpp - the Qwen3 forward pass.
//
//     qwen3::Model<qwen3::Qwen3_0_6B> model("Qwen3-0.6B.gguf");   // or a Hugging Face folder
//     qwen3::Session session(model);                              // KV arena + scratch + threads
//     std::span<const float> logits = session.eval(prompt_ids);   // prefill: one matrix-matrix pass
//     logits = session.eval(next_id);                             // decode: one matrix-vector pass
//
// A Model is the weights (immutable; share one between sessions). A Session is one sequence: its KV
// arena, its position, scratch buffers and a thread pool. forward() below reads top to bottom like
// the Qwen3 definition; the SIMD lives in kernels/.


// ===== qwen3/kernels/activation.hpp =====
// qwen3/kernels/activation.hpp - the SwiGLU gate and elementwise helpers.

// ===== qwen3/kernels/simd.hpp =====
// qwen3/kernels/simd.hpp - the SIMD vocabulary every kernel uses.
//
// Arithmetic goes through xsimd. Where xsimd 8.1 lacks an operation (widening bf16/f16 loads, a fused
// multiply-add on AVX-512, which it emulates with a multiply and an add), a short intrinsics path is
// used for that one operation, with a portable scalar/xsimd fallback beside it.
//
// The instruction set is chosen when the program is compiled: xsimd's best architecture for the
// compiler flags (-march=native builds AVX-512 code on a CPU that has it). Define QWEN3_SIMD_ARCH to
// an xsimd architecture type (e.g. xsimd::avx2) to pick another.


#include <xsimd/xsimd.hpp>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace qwen3::simd {

#ifdef QWEN3_SIMD_ARCH
using arch = QWEN3_SIMD_ARCH;
#else
using arch = xsimd::default_arch;
#endif

using fbatch = xsimd::batch<float, arch>;
inline constexpr std::size_t lanes = fbatch::size;

inline constexpr bool is_avx512 = std::is_base_of_v<xsimd::avx512f, arch>;
inline constexpr bool is_avx2 = std::is_base_of_v<xsimd::avx2, arch>;

// a * b + c, fused (one rounding) where the hardware has it.
template <class A = arch, std::size_t N = xsimd::batch<float, A>::size>
inline xsimd::batch<float, A> fma(xsimd::batch<float, A> a, xsimd::batch<float, A> b, xsimd::batch<float, A> c) {
#if defined(__AVX512F__)
    if constexpr (N == 16) return _mm512_fmadd_ps(a, b, c);
#endif
    return xsimd::fma(a, b, c);
}

inline float sum(fbatch v) { return xsimd::hadd(v); }

// ---- scalar conversions (exact; round-to-nearest-even where narrowing) ----

inline float bf16_to_f32(std::uint16_t h) {
    std::uint32_t bits = std::uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

inline std::uint16_t f32_to_bf16(float f) {
    std::uint32_t bits;
    std::memcpy(&bits, &f, 4);
    if ((bits & 0x7FFFFFFF) > 0x7F800000) return std::uint16_t((bits >> 16) | 0x40);  // quiet NaN
    bits += 0x7FFF + ((bits >> 16) & 1);
    return std::uint16_t(bits >> 16);
}

inline float f16_to_f32(std::uint16_t h) {
    std::uint32_t sign = std::uint32_t(h & 0x8000) << 16;
    std::uint32_t exp = (h >> 10) & 0x1F;
    std::uint32_t mant = h & 0x3FF;
    std::uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalize
            int e = -1;
            do {
                ++e;
                mant <<= 1;
            } while ((mant & 0x400) == 0);
            bits = sign | std::uint32_t(127 - 15 - e) << 23 | (mant & 0x3FF) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000 | mant << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | mant << 13;
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

inline std::uint16_t f32_to_f16(float f) {
#if defined(__F16C__)
    return std::uint16_t(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
#else
    std::uint32_t x;
    std::memcpy(&x, &f, 4);
    const std::uint32_t sign = (x >> 16) & 0x8000;
    x &= 0x7FFFFFFF;
    if (x >= 0x7F800000) return std::uint16_t(sign | (x > 0x7F800000 ? 0x7E00 : 0x7C00));  // NaN, inf
    if (x >= 0x477FF000) return std::uint16_t(sign | 0x7C00);  // rounds to infinity (>= 65520)
    if (x >= 0x38800000) {                                      // normal in f16 (>= 2^-14)
        std::uint32_t r = x - (112u << 23);                     // rebias the exponent 127 -> 15
        r += 0xFFF + ((r >> 13) & 1);                           // round to nearest even on 10 bits
        return std::uint16_t(sign | (r >> 13));
    }
    if (x < 0x33000000) return std::uint16_t(sign);  // below half the smallest subnormal: zero
    const std::uint32_t e = x >> 23, m = (x & 0x7FFFFF) | 0x800000;
    const std::uint32_t shift = 126 - e;  // subnormal unit 2^-24
    std::uint32_t r = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (r & 1))) ++r;
    return std::uint16_t(sign | r);
#endif
}

// ---- widening loads: `lanes` elements of a weight row as f32 ----

inline fbatch load_f32(const float* p) { return fbatch::load_unaligned(p); }

// (Templates only so that `if constexpr` discards the paths of the other register widths.)
template <class A = arch, std::size_t N = xsimd::batch<float, A>::size>
inline xsimd::batch<float, A> load_bf16(const std::uint16_t* p) {
#if defined(__AVX512F__)
    if constexpr (N == 16) {
        __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        // maskz forms: GCC 12 warns falsely about the undefined source operand of the plain forms
        return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16));
    }
#endif
#if defined(__AVX2__)
    if constexpr (N == 8) {
        __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
#endif
    alignas(64) float tmp[N];
    for (std::size_t i = 0; i < N; ++i) tmp[i] = bf16_to_f32(p[i]);
    return xsimd::batch<float, A>::load_aligned(tmp);
}

template <class A = arch, std::size_t N = xsimd::batch<float, A>::size>
inline xsimd::batch<float, A> load_f16(const std::uint16_t* p) {
#if defined(__AVX512F__)
    if constexpr (N == 16) return _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
#endif
#if defined(__F16C__) && defined(__AVX__)
    if constexpr (N == 8) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
#endif
    alignas(64) float tmp[N];
    for (std::size_t i = 0; i < N; ++i) tmp[i] = f16_to_f32(p[i]);
    return xsimd::batch<float, A>::load_aligned(tmp);
}

// `lanes` int8 values widened to f32.
template <class A = arch, std::size_t N = xsimd::batch<float, A>::size>
inline xsimd::batch<float, A> load_i8(const std::int8_t* p) {
#if defined(__AVX512F__)
    if constexpr (N == 16) return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#endif
#if defined(__AVX2__)
    if constexpr (N == 8) return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
#endif
    alignas(64) float tmp[N];
    for (std::size_t i = 0; i < N; ++i) tmp[i] = float(p[i]);
    return xsimd::batch<float, A>::load_aligned(tmp);
}

}  // namespace qwen3::simd
// ===== end of qwen3/kernels/simd.hpp =====

namespace qwen3::kernels {

// gate[i] = silu(gate[i]) * up[i] = gate / (1 + exp(-gate)) * up, over N elements, in place.
template <int N>
inline void swiglu(float* gate, const float* up) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes);
    static_assert(N % L == 0, "FFN width must be a multiple of the SIMD width");
    const fbatch one(1.f);
    for (int i = 0; i < N; i += L) {
        fbatch g = simd::load_f32(gate + i);
        fbatch silu = g / (one + xsimd::exp(-g));
        (silu * simd::load_f32(up + i)).store_unaligned(gate + i);
    }
}

// x[i] += y[i] over N elements (the residual connection).
template <int N>
inline void add_in_place(float* x, const float* y) {
    constexpr int L = int(simd::lanes);
    static_assert(N % L == 0, "width must be a multiple of the SIMD width");
    for (int i = 0; i < N; i += L) (simd::load_f32(x + i) + simd::load_f32(y + i)).store_unaligned(x + i);
}

}  // namespace qwen3::kernels
// ===== end of qwen3/kernels/activation.hpp =====
// ===== qwen3/kernels/attention.hpp =====
// qwen3/kernels/attention.hpp - causal grouped-query attention over the KV arena.
//
// One call handles one KV head and the `Group` query heads that share it, for one query position:
// each key and value is read once for the whole group. Keys come in blocks of 16 positions stored
// transposed (see kv_arena.hpp), so 16 scores are one multiply-add per head element, with no
// horizontal sums. Softmax is computed online over the blocks (running maximum and sum, as in
// FlashAttention): no buffer grows with the context, and the result equals the two-pass softmax up
// to float rounding.


// ===== qwen3/kv_arena.hpp =====
// qwen3/kv_arena.hpp - the key/value cache: one allocation, sized at compile time.
//
// The arena reserves address space for Cfg::max_context positions once (anonymous memory, never
// resized); the OS commits pages only as positions are written, so a 32k-token arena costs RAM in
// proportion to the tokens actually used.
//
// Layout, per layer and KV head: keys in blocks of 16 positions stored transposed (for each element
// of the head, the 16 positions side by side), so attention computes 16 scores with one multiply-add
// per element and no horizontal sums; values as rows, one per position, which attention scales and
// adds. The element type is a compile-time choice (KVBF16 by default; KVF32, KVF16, KVQ8_0).




namespace qwen3 {

// Positions per key block.
inline constexpr int kKeyBlock = 16;

namespace detail {
// Loads 16 consecutive f32 (as 16 / lanes batches) and passes each batch with its lane offset.
template <class Fn>
inline void for_lanes(Fn&& fn) {
    for (int l = 0; l < kKeyBlock; l += int(simd::lanes)) fn(l);
}
}  // namespace detail

// Each element type says how a key block and a value row are laid out, written and read back as f32.
//   key_block_bytes / value_row_bytes   sizes for a head of D elements
//   store_key(block, lane, k) / store_value(row, v)
//   key_column(block, d, lane)  the 16 positions' element d (lanes [lane, lane + simd::lanes)) as f32
//   value(row, d)               elements [d, d + simd::lanes) of a value row as f32
struct KVF32 {
    static constexpr const char* name = "F32";
    template <int D>
    static constexpr std::size_t key_block_bytes = std::size_t(D) * kKeyBlock * 4;
    template <int D>
    static constexpr std::size_t value_row_bytes = std::size_t(D) * 4;
    template <int D>
    static void store_key(std::byte* block, int lane, const float* k) {
        float* b = reinterpret_cast<float*>(block);
        for (int d = 0; d < D; ++d) b[d * kKeyBlock + lane] = k[d];
    }
    template <int D>
    static void store_value(std::byte* row, const float* v) { std::memcpy(row, v, std::size_t(D) * 4); }
    static simd::fbatch key_column(const std::byte* block, int d, int lane) {
        return simd::load_f32(reinterpret_cast<const float*>(block) + d * kKeyBlock + lane);
    }
    static simd::fbatch value(const std::byte* row, int d) { return simd::load_f32(reinterpret_cast<const float*>(row) + d); }
};

struct KVBF16 {
    static constexpr const char* name = "BF16";
    template <int D>
    static constexpr std::size_t key_block_bytes = std::size_t(D) * kKeyBlock * 2;
    template <int D>
    static constexpr std::size_t value_row_bytes = std::size_t(D) * 2;
    template <int D>
    static void store_key(std::byte* block, int lane, const float* k) {
        auto* b = reinterpret_cast<std::uint16_t*>(block);
        for (int d = 0; d < D; ++d) b[d * kKeyBlock + lane] = simd::f32_to_bf16(k[d]);
    }
    template <int D>
    static void store_value(std::byte* row, const float* v) {
        auto* r = reinterpret_cast<std::uint16_t*>(row);
        for (int d = 0; d < D; ++d) r[d] = simd::f32_to_bf16(v[d]);
    }
    static simd::fbatch key_column(const std::byte* block, int d, int lane) {
        return simd::load_bf16(reinterpret_cast<const std::uint16_t*>(block) + d * kKeyBlock + lane);
    }
    static simd::fbatch value(const std::byte* row, int d) { return simd::load_bf16(reinterpret_cast<const std::uint16_t*>(row) + d); }
};

struct KVF16 {
    static constexpr const char* name = "F16";
    template <int D>
    static constexpr std::size_t key_block_bytes = std::size_t(D) * kKeyBlock * 2;
    template <int D>
    static constexpr std::size_t value_row_bytes = std::size_t(D) * 2;
    template <int D>
    static void store_key(std::byte* block, int lane, const float* k) {
        auto* b = reinterpret_cast<std::uint16_t*>(block);
        for (int d = 0; d < D; ++d) b[d * kKeyBlock + lane] = simd::f32_to_f16(k[d]);
    }
    template <int D>
    static void store_value(std::byte* row, const float* v) {
        auto* r = reinterpret_cast<std::uint16_t*>(row);
        for (int d = 0; d < D; ++d) r[d] = simd::f32_to_f16(v[d]);
    }
    static simd::fbatch key_column(const std::byte* block, int d, int lane) {
        return simd::load_f16(reinterpret_cast<const std::uint16_t*>(block) + d * kKeyBlock + lane);
    }
    static simd::fbatch value(const std::byte* row, int d) { return simd::load_f16(reinterpret_cast<const std::uint16_t*>(row) + d); }
};

// 8-bit keys and values: each position's head is split into blocks of 32 elements, each stored as
// int8 with one f32 scale (max |x| / 127), as Q8_0 does. About 56% of BF16's memory.
struct KVQ8_0 {
    static constexpr const char* name = "Q8_0";
    // key block: int8 [D][16], then f32 scales [D / 32][16]
    template <int D>
    static constexpr std::size_t key_block_bytes = std::size_t(D) * kKeyBlock + std::size_t(D / 32) * kKeyBlock * 4;
    // value row: f32 scales [D / 32], then int8 [D]
    template <int D>
    static constexpr std::size_t value_row_bytes = std::size_t(D / 32) * 4 + std::size_t(D);

    static float quantize_block(const float* x, std::int8_t* q, int stride) {
        float amax = 0;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float scale = amax / 127.f, inv = scale ? 1.f / scale : 0.f;
        for (int i = 0; i < 32; ++i) q[i * stride] = std::int8_t(std::nearbyint(x[i] * inv));
        return scale;
    }
    template <int D>
    static void store_key(std::byte* block, int lane, const float* k) {
        static_assert(D % 32 == 0);
        auto* q = reinterpret_cast<std::int8_t*>(block);
        auto* scales = reinterpret_cast<float*>(block + std::size_t(D) * kKeyBlock);
        for (int b = 0; b < D / 32; ++b) scales[b * kKeyBlock + lane] = quantize_block(k + b * 32, q + b * 32 * kKeyBlock + lane, kKeyBlock);
    }
    template <int D>
    static void store_value(std::byte* row, const float* v) {
        auto* scales = reinterpret_cast<float*>(row);
        auto* q = reinterpret_cast<std::int8_t*>(row + std::size_t(D / 32) * 4);
        for (int b = 0; b < D / 32; ++b) scales[b] = quantize_block(v + b * 32, q + b * 32, 1);
    }
    // Needs D to find the scales: the attention kernel passes it through this template.
    template <int D>
    static simd::fbatch key_column_d(const std::byte* block, int d, int lane) {
        const auto* q = reinterpret_cast<const std::int8_t*>(block) + d * kKeyBlock + lane;
        const auto* scales = reinterpret_cast<const float*>(block + std::size_t(D) * kKeyBlock) + (d / 32) * kKeyBlock + lane;
        return simd::load_i8(q) * simd::load_f32(scales);
    }
    template <int D>
    static simd::fbatch value_d(const std::byte* row, int d) {
        const float scale = reinterpret_cast<const float*>(row)[d / 32];
        const auto* q = reinterpret_cast<const std::int8_t*>(row + std::size_t(D / 32) * 4) + d;
        return simd::load_i8(q) * simd::fbatch(scale);
    }
};

// Element access with the head size known, for every type (Q8_0 needs it to find its scales).
template <class KV, int D>
inline simd::fbatch kv_key_column(const std::byte* block, int d, int lane) {
    if constexpr (std::is_same_v<KV, KVQ8_0>) return KV::template key_column_d<D>(block, d, lane);
    else return KV::key_column(block, d, lane);
}
template <class KV, int D>
inline simd::fbatch kv_value(const std::byte* row, int d) {
    if constexpr (std::is_same_v<KV, KVQ8_0>) return KV::template value_d<D>(row, d);
    else return KV::value(row, d);
}

// The default element type of the KV arena: BF16 halves the memory of F32 and its rounding is below
// what a BF16 or quantized model already carries. Define QWEN3_KV_TYPE to change it.
#ifndef QWEN3_KV_TYPE
#define QWEN3_KV_TYPE ::qwen3::KVBF16
#endif
using DefaultKV = QWEN3_KV_TYPE;

template <class Cfg, class KV = DefaultKV>
class KVArena {
public:
    static constexpr int D = Cfg::head_dim;
    static constexpr int blocks = (Cfg::max_context + kKeyBlock - 1) / kKeyBlock;
    static constexpr std::size_t key_bytes_per_head = std::size_t(blocks) * KV::template key_block_bytes<D>;
    static constexpr std::size_t value_bytes_per_head = std::size_t(blocks) * kKeyBlock * KV::template value_row_bytes<D>;
    static constexpr std::size_t head_bytes = (key_bytes_per_head + value_bytes_per_head + 63) / 64 * 64;
    static constexpr std::size_t bytes = std::size_t(Cfg::layers) * Cfg::kv_heads * head_bytes;

    // Throws Error(io) when the address space cannot be reserved.
    KVArena() {
        void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            detail::fail(ErrorCode::io, "cannot reserve the KV arena of ", bytes, " bytes (", Cfg::max_context,
                         " positions); compile a smaller max_context");
        base_ = static_cast<std::byte*>(p);
    }
    ~KVArena() { ::munmap(base_, bytes); }
    KVArena(const KVArena&) = delete;
    KVArena& operator=(const KVArena&) = delete;

    std::byte* head(int layer, int kv_head) const { return base_ + (std::size_t(layer) * Cfg::kv_heads + kv_head) * head_bytes; }
    // Key block holding position p (block p / 16; the position is lane p % 16).
    std::byte* key_block(int layer, int kv_head, int block) const {
        return head(layer, kv_head) + std::size_t(block) * KV::template key_block_bytes<D>;
    }
    std::byte* value_row(int layer, int kv_head, int pos) const {
        return head(layer, kv_head) + key_bytes_per_head + std::size_t(pos) * KV::template value_row_bytes<D>;
    }

    void store(int layer, int kv_head, int pos, const float* k, const float* v) {
        KV::template store_key<D>(key_block(layer, kv_head, pos / kKeyBlock), pos % kKeyBlock, k);
        KV::template store_value<D>(value_row(layer, kv_head, pos), v);
    }

    // Gives the pages of positions [from, max_context) back to the OS (after a reset or truncation).
    void release_from(int from) {
        const std::uintptr_t page = 4096;
        for (int l = 0; l < Cfg::layers; ++l)
            for (int h = 0; h < Cfg::kv_heads; ++h) {
                auto release = [&](std::byte* begin_ptr, std::byte* end_ptr) {
                    auto begin = (reinterpret_cast<std::uintptr_t>(begin_ptr) + page - 1) / page * page;
                    auto end = reinterpret_cast<std::uintptr_t>(end_ptr) / page * page;
                    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
                };
                const int first_block = (from + kKeyBlock - 1) / kKeyBlock;
                release(key_block(l, h, first_block), key_block(l, h, blocks));
                release(value_row(l, h, from), value_row(l, h, blocks * kKeyBlock));
            }
    }

private:
    std::byte* base_ = nullptr;
};

}  // namespace qwen3
// ===== end of qwen3/kv_arena.hpp =====

namespace qwen3::kernels {

// q: [Group][D] (already normed and rotated); n: positions to attend (0 .. n-1); out: [Group][D].
// `arena`/`layer`/`kv_head` locate the keys and values; scale multiplies the dot products.
template <int D, int Group, class KV, class Arena>
void attend(const float* q, const Arena& arena, int layer, int kv_head, int n, float scale, float* out) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes);
    constexpr int DL = D / L;
    static_assert(D % L == 0 && kKeyBlock % L == 0, "head_dim and the key block must be multiples of the SIMD width");
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();

    alignas(64) float acc[Group][D];
    float running_max[Group], running_sum[Group];
    for (int g = 0; g < Group; ++g) {
        std::fill_n(acc[g], D, 0.f);
        running_max[g] = kNegInf;
        running_sum[g] = 0.f;
    }
    const fbatch scale_v(scale);
    alignas(64) float p[Group][kKeyBlock];
    const int blocks = (n + kKeyBlock - 1) / kKeyBlock;
    for (int b = 0; b < blocks; ++b) {
        const std::byte* block = arena.key_block(layer, kv_head, b);
        const int valid = std::min(kKeyBlock, n - b * kKeyBlock);
        // scores of the block's 16 positions for every query head of the group
        for (int l = 0; l < kKeyBlock; l += L) {
            fbatch s[Group];
            for (int g = 0; g < Group; ++g) s[g] = fbatch(0.f);
            for (int d = 0; d < D; ++d) {
                const fbatch k = kv_key_column<KV, D>(block, d, l);
                for (int g = 0; g < Group; ++g) s[g] = simd::fma(fbatch(q[g * D + d]), k, s[g]);
            }
            for (int g = 0; g < Group; ++g) (s[g] * scale_v).store_aligned(p[g] + l);
        }
        for (int g = 0; g < Group; ++g) {
            for (int j = valid; j < kKeyBlock; ++j) p[g][j] = kNegInf;  // positions not yet written
            float block_max = running_max[g];
            for (int j = 0; j < valid; ++j) block_max = std::max(block_max, p[g][j]);
            const float correction = std::exp(running_max[g] - block_max);
            running_max[g] = block_max;
            float block_sum = 0.f;
            for (int l = 0; l < kKeyBlock; l += L) {
                const fbatch e = xsimd::exp(fbatch::load_aligned(p[g] + l) - fbatch(block_max));
                e.store_aligned(p[g] + l);
                block_sum += simd::sum(e);
            }
            running_sum[g] = running_sum[g] * correction + block_sum;
            if (correction != 1.f) {
                const fbatch c(correction);
                for (int d = 0; d < D; d += L) (fbatch::load_aligned(acc[g] + d) * c).store_aligned(acc[g] + d);
            }
        }
        for (int j = 0; j < valid; ++j) {
            const std::byte* row = arena.value_row(layer, kv_head, b * kKeyBlock + j);
            fbatch v[DL];
            for (int c = 0; c < DL; ++c) v[c] = kv_value<KV, D>(row, c * L);
            for (int g = 0; g < Group; ++g) {
                const fbatch weight(p[g][j]);
                for (int c = 0; c < DL; ++c)
                    simd::fma(weight, v[c], fbatch::load_aligned(acc[g] + c * L)).store_aligned(acc[g] + c * L);
            }
        }
    }
    for (int g = 0; g < Group; ++g) {
        const fbatch inv(1.f / running_sum[g]);
        for (int d = 0; d < D; d += L) (fbatch::load_aligned(acc[g] + d) * inv).store_unaligned(out + g * D + d);
    }
}

}  // namespace qwen3::kernels
// ===== end of qwen3/kernels/attention.hpp =====
// ===== qwen3/kernels/linear.hpp =====
// qwen3/kernels/linear.hpp - y = W x for one token (matvec) and Y = X W^T for many (matmul).
//
// W is a [Rows, Cols] weight matrix in any supported element type (a runtime tag: files mix types);
// x and y are f32. Cols is a compile-time constant, so every inner loop has a fixed trip count.
// Float weights (F32, F16, BF16) are widened to f32 and multiplied in f32, which keeps results within
// float rounding of an f32 reference. Quantized weights dispatch to quant kernels (see quant.hpp).
//
// Both kernels compute rows [row_begin, row_end) only; the caller splits rows across threads. Each
// output element is computed by one fixed sequence of operations, whatever the split.


// ===== qwen3/kernels/arch/avx512_float.hpp =====
// qwen3/kernels/arch/avx512_float.hpp - AVX-512 matrix-vector kernels for float weights (decode).
//
// Decode reads every weight once per token, so these kernels are about keeping memory busy: four
// rows advance together (the input is loaded once for all four) and the next group of rows is
// prefetched (non-temporal: weights are not reused before they would be evicted anyway).
// BF16 rows are widened without a shuffle: 32 bf16 values loaded as 16 dwords give the odd elements
// by masking the low halves and the even ones by shifting them up, so the input is pre-split into
// even and odd halves per 32 elements (Input's pair form) and the kernel does two FMAs per load.

#if defined(__AVX512F__)

#include <immintrin.h>


namespace qwen3::kernels::avx512 {

inline constexpr int kPrefetchRows = 4;  // prefetch the next group of 4 rows

inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

inline void prefetch_rows(const std::byte* p, std::size_t stride, int rows) {
    for (int i = 0; i < rows; ++i) _mm_prefetch(reinterpret_cast<const char*>(p + std::size_t(i) * stride), _MM_HINT_NTA);
}

// y[r] = dot(W[r], x) for BF16 W; `pairs` is the input in Input's pair form.
template <int K>
void matvec_bf16(const std::byte* w, std::size_t stride, const float* pairs, float* y, int row_begin, int row_end) {
    static_assert(K % 32 == 0);
    const __m512i high = _mm512_set1_epi32(int(0xFFFF0000u));
    auto row_dot = [&](const std::byte* row, int k, __m512 xe, __m512 xo, __m512& even, __m512& odd) {
        // two 32-byte loads: GGUF aligns tensors to 32 bytes, so a 64-byte load would often span
        // two cache lines
        const std::byte* p = row + std::size_t(k) * 2;
        const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))),
                                             _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)), 1);
        even = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), xe, even);
        odd = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, high)), xo, odd);
    };
    int r = row_begin;
    for (; r + 4 <= row_end; r += 4) {
        const std::byte* w0 = w + std::size_t(r) * stride;
        const std::byte* ahead = w0 + std::size_t(kPrefetchRows) * stride;
        __m512 e0 = _mm512_setzero_ps(), e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
        for (int k = 0; k < K; k += 32) {
            // one 64-byte line of each of the next four rows
            for (int i = 0; i < 4; ++i) _mm_prefetch(reinterpret_cast<const char*>(ahead + std::size_t(i) * stride + std::size_t(k) * 2), _MM_HINT_NTA);
            const __m512 xe = _mm512_loadu_ps(pairs + k), xo = _mm512_loadu_ps(pairs + k + 16);
            row_dot(w0, k, xe, xo, e0, o0);
            row_dot(w0 + stride, k, xe, xo, e1, o1);
            row_dot(w0 + 2 * stride, k, xe, xo, e2, o2);
            row_dot(w0 + 3 * stride, k, xe, xo, e3, o3);
        }
        y[r] = hsum(_mm512_add_ps(e0, o0));
        y[r + 1] = hsum(_mm512_add_ps(e1, o1));
        y[r + 2] = hsum(_mm512_add_ps(e2, o2));
        y[r + 3] = hsum(_mm512_add_ps(e3, o3));
    }
    for (; r < row_end; ++r) {
        const std::byte* w0 = w + std::size_t(r) * stride;
        __m512 e0 = _mm512_setzero_ps(), o0 = e0;
        for (int k = 0; k < K; k += 32) row_dot(w0, k, _mm512_loadu_ps(pairs + k), _mm512_loadu_ps(pairs + k + 16), e0, o0);
        y[r] = hsum(_mm512_add_ps(e0, o0));
    }
}

// y[r] = dot(W[r], x) for F32 or F16 W.
template <int K, bool Half>
void matvec_f32_f16(const std::byte* w, std::size_t stride, const float* x, float* y, int row_begin, int row_end) {
    static_assert(K % 16 == 0);
    constexpr int kElementBytes = Half ? 2 : 4;
    auto load = [](const std::byte* row, int k) {
        if constexpr (Half) return _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + std::size_t(k) * 2)));
        else {  // two 32-byte halves: tensors are 32-byte aligned, so one 64-byte load could split lines
            const float* p = reinterpret_cast<const float*>(row) + k;
            return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(p)), _mm256_loadu_ps(p + 8), 1);
        }
    };
    int r = row_begin;
    for (; r + 4 <= row_end; r += 4) {
        const std::byte* w0 = w + std::size_t(r) * stride;
        const std::byte* ahead = w0 + std::size_t(kPrefetchRows) * stride;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int k = 0; k < K; k += 16) {
            if ((k * kElementBytes) % 64 == 0)
                for (int i = 0; i < 4; ++i)
                    _mm_prefetch(reinterpret_cast<const char*>(ahead + std::size_t(i) * stride + std::size_t(k) * kElementBytes), _MM_HINT_NTA);
            const __m512 xv = _mm512_loadu_ps(x + k);
            a0 = _mm512_fmadd_ps(load(w0, k), xv, a0);
            a1 = _mm512_fmadd_ps(load(w0 + stride, k), xv, a1);
            a2 = _mm512_fmadd_ps(load(w0 + 2 * stride, k), xv, a2);
            a3 = _mm512_fmadd_ps(load(w0 + 3 * stride, k), xv, a3);
        }
        y[r] = hsum(a0);
        y[r + 1] = hsum(a1);
        y[r + 2] = hsum(a2);
        y[r + 3] = hsum(a3);
    }
    for (; r < row_end; ++r) {
        const std::byte* w0 = w + std::size_t(r) * stride;
        __m512 a0 = _mm512_setzero_ps();
        for (int k = 0; k < K; k += 16) a0 = _mm512_fmadd_ps(load(w0, k), _mm512_loadu_ps(x + k), a0);
        y[r] = hsum(a0);
    }
}

}  // namespace qwen3::kernels::avx512

#endif  // __AVX512F__
// ===== end of qwen3/kernels/arch/avx512_float.hpp =====
// ===== qwen3/kernels/arch/avx512_gemm.hpp =====
// qwen3/kernels/arch/avx512_gemm.hpp - AVX-512 VNNI matrix-matrix kernel for quantized weights (prefill).
//
// Prefill multiplies every weight row with many tokens, so the work per weight is arranged to be
// done once: a few rows are unpacked from their format into plain signed bytes with one float scale
// per block (UnpackedRow; every format becomes value = scale * w + min_coef), then reused for every
// group of 16 tokens. Tokens sit side by side in the lanes of a register (Input's column form), so
// one vpdpbusd multiplies four bytes of one weight row, broadcast, with four bytes of 16 tokens, and
// the per-block scales multiply whole registers of tokens at once. The input is offset by +128 to
// be the unsigned operand; 128 * sum(w) per block takes the offset back out.

// ===== qwen3/kernels/arch/avx512_quant.hpp =====
// qwen3/kernels/arch/avx512_quant.hpp - AVX-512 VNNI matrix-vector kernels for quantized weights.
//
// The input is quantized once per matrix to int8 (Input's q8 forms: blocks of 32 with their own
// scales for the 32-element formats, blocks of 256 for K-quants) and each weight block is multiplied
// with integer dot products: vpdpbusd (unsigned x signed bytes, summed in fours) for the 32-element
// formats, vpmaddubsw + vpdpwssd (pairs, then pairs times each sub-block's scale) for K-quants, whose
// sub-blocks carry integer scales that fold into the integer sum. Each block's float scales are
// applied once per block. Offsets (Q4_0's 8, Q5_0's 16, Q6_K's 32) and K-quant minimums are applied
// through the precomputed sums of the input's blocks instead of touching every element.
//
// Weight blocks have odd sizes (18, 22, 34, 144, 176, 210 bytes), so loads are unaligned; the next
// rows are prefetched (non-temporal) while a row is processed.

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
#define QWEN3_HAVE_AVX512_VNNI 1

#include <immintrin.h>


// ===== qwen3/format/quant_blocks.hpp =====
#ifndef QWEN3_AMALGAMATED_QWEN3_FORMAT_QUANT_BLOCKS_HPP
#define QWEN3_AMALGAMATED_QWEN3_FORMAT_QUANT_BLOCKS_HPP
// qwen3/format/quant_blocks.hpp - the block layouts of ggml's quantized tensor types.
//
// A quantized row is a sequence of blocks; each block holds a fixed number of elements as small
// integers plus the scales that turn them back into floats. The layouts below are byte-for-byte
// those of the GGUF format (ggml's definitions), so a mapped GGUF tensor is an array of these structs.
// Scales are IEEE half floats stored as uint16 (see kernels/simd.hpp f16_to_f32).


namespace qwen3::quant {

inline constexpr int kBlock32 = 32;   // elements of a Q4_0 / Q5_0 / Q8_0 block
inline constexpr int kSuperBlock = 256;  // elements of a K-quant super-block

// x[i] = d * qs[i]
struct BlockQ8_0 {
    std::uint16_t d;
    std::int8_t qs[32];
};

// x[i] = d * ((qs[i % 16] >> (4 * (i / 16))) & 15) - 8): low nibbles hold elements 0..15, high 16..31
struct BlockQ4_0 {
    std::uint16_t d;
    std::uint8_t qs[16];
};

// x[i] = d * q[i] + m, q as in Q4_0 without the offset
struct BlockQ4_1 {
    std::uint16_t d;
    std::uint16_t m;
    std::uint8_t qs[16];
};

// x[i] = d * (q[i] - 16), q = 4 low bits from qs (as Q4_0) | bit i of qh (little-endian uint32) << 4
struct BlockQ5_0 {
    std::uint16_t d;
    std::uint8_t qh[4];
    std::uint8_t qs[16];
};

// x[i] = d * q[i] + m, q as in Q5_0 without the offset
struct BlockQ5_1 {
    std::uint16_t d;
    std::uint16_t m;
    std::uint8_t qh[4];
    std::uint8_t qs[16];
};

// 256 elements in 8 sub-blocks of 32, each with a 6-bit scale and a 6-bit min packed in `scales`:
// x = d * scale_j * q - dmin * min_j, q in [0, 15]; qs holds 4 chunks of 64 elements, each chunk's
// first 32 in the low nibbles and last 32 in the high nibbles.
struct BlockQ4_K {
    std::uint16_t d;
    std::uint16_t dmin;
    std::uint8_t scales[12];
    std::uint8_t qs[128];
};

// As Q4_K with a fifth bit per element in qh: bit (2 * chunk) of qh[l] for the low-nibble element
// l of a chunk, bit (2 * chunk + 1) for the high-nibble one.
struct BlockQ5_K {
    std::uint16_t d;
    std::uint16_t dmin;
    std::uint8_t scales[12];
    std::uint8_t qh[32];
    std::uint8_t qs[128];
};

// 256 elements in 16 groups of 16 with int8 scales: x = d * scales_j * (q - 32), q 6-bit: 4 low bits
// in ql, 2 high bits in qh (two chunks of 128 elements; see dequantize in quant.hpp).
struct BlockQ6_K {
    std::uint8_t ql[128];
    std::uint8_t qh[64];
    std::int8_t scales[16];
    std::uint16_t d;
};

// The activation format of K-quant dot products: a float scale, 256 int8 values and the sums of
// each group of 16 (used to apply K-quants' per-sub-block minimums without touching the values).
struct BlockQ8_K {
    float d;
    std::int8_t qs[256];
    std::int16_t bsums[16];
};

static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);
static_assert(alignof(BlockQ8_0) == 2 && alignof(BlockQ6_K) == 2, "blocks must pack without padding");

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block.
inline void scale_min_k4(int j, const std::uint8_t* q, std::uint8_t& scale, std::uint8_t& min) {
    if (j < 4) {
        scale = q[j] & 63;
        min = q[j + 4] & 63;
    } else {
        scale = std::uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        min = std::uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

}  // namespace qwen3::quant
#endif  // QWEN3_AMALGAMATED_QWEN3_FORMAT_QUANT_BLOCKS_HPP
// ===== end of qwen3/format/quant_blocks.hpp =====

namespace qwen3::kernels::avx512 {

inline float half_to_float(std::uint16_t h) { return _cvtsh_ss(h); }

inline void prefetch_row(const std::byte* row, std::size_t bytes) {
    for (std::size_t off = 0; off < bytes; off += 64) _mm_prefetch(reinterpret_cast<const char*>(row + off), _MM_HINT_NTA);
}

// Two 16-lane halves: lanes 0..7 hold a, lanes 8..15 hold b.
inline __m512 halves(float a, float b) { return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1); }

// 32 nibbles of one 32-element block (16 bytes) as 32 bytes in element order: low nibbles are
// elements 0..15, high nibbles 16..31.
inline __m256i unpack_nibbles_16(const std::uint8_t* qs) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m128i mask = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), mask), _mm_and_si128(q, mask));
}

// --- 32-element formats: dot(W[r], x) = sum_b d_w[b] * d_x[b] * (sum q_w * q_x - offset * sum q_x) ---

// Q8_0: signed weights; vpdpbusd needs an unsigned operand, so it multiplies |w| by x carrying w's sign.
inline __m512i dot_q8_0_pair(const quant::BlockQ8_0* b, const std::int8_t* x) {
    const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs))),
                                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs)), 1);
    const __m512i xv = _mm512_loadu_si512(x);
    const __mmask64 negative = _mm512_movepi8_mask(w);
    const __m512i signed_x = _mm512_mask_sub_epi8(xv, negative, _mm512_setzero_si512(), xv);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), signed_x);
}

inline __m512i dot_q4_0_pair(const quant::BlockQ4_0* b, const std::int8_t* x) {
    const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(unpack_nibbles_16(b[0].qs)), unpack_nibbles_16(b[1].qs), 1);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, _mm512_loadu_si512(x));
}

inline __m256i q5_0_values(const quant::BlockQ5_0& b) {
    std::uint32_t high;
    std::memcpy(&high, b.qh, 4);
    return _mm256_or_si256(unpack_nibbles_16(b.qs), _mm256_maskz_mov_epi8(high, _mm256_set1_epi8(0x10)));
}

inline __m512i dot_q5_0_pair(const quant::BlockQ5_0* b, const std::int8_t* x) {
    const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(q5_0_values(b[0])), q5_0_values(b[1]), 1);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, _mm512_loadu_si512(x));
}

// One row of a 32-element format. Offset: the constant subtracted from every stored value (0, 8, 16).
template <int K, class Block, int Offset, __m512i (*DotPair)(const Block*, const std::int8_t*)>
inline float row_dot_32(const Block* blocks, const std::int8_t* xq, const float* xd, const std::int32_t* xs) {
    constexpr int nb = K / 32;
    static_assert(nb % 2 == 0, "rows hold an even number of 32-element blocks");
    __m512 acc = _mm512_setzero_ps();
    float offset_sum = 0;
    for (int b = 0; b < nb; b += 2) {
        const float s0 = half_to_float(blocks[b].d) * xd[b], s1 = half_to_float(blocks[b + 1].d) * xd[b + 1];
        const __m512i dot = DotPair(blocks + b, xq + b * 32);
        acc = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, dot), halves(s0, s1), acc);
        if constexpr (Offset != 0) offset_sum += s0 * float(xs[b]) + s1 * float(xs[b + 1]);
    }
    return _mm512_reduce_add_ps(acc) - float(Offset) * offset_sum;
}

#if defined(__AVX512VBMI__)
// Q4_0 and Q5_0 rows, two blocks per step from one masked 64-byte load: the two scales and the
// nibbles are moved into place with byte/word permutes, so a block costs about seven instructions
// (these formats are compute-bound in decode otherwise: 18 bytes per 32 elements).
template <int K, class Block>
inline float row_dot_small_blocks(const Block* blocks, const std::int8_t* xq, const float* lane_scales, const float* lane_sums) {
    constexpr int nb = K / 32;
    static_assert(nb % 2 == 0, "rows hold an even number of 32-element blocks");
    constexpr int size = int(sizeof(Block));  // 18 (Q4_0) or 22 (Q5_0)
    constexpr int qs = int(offsetof(Block, qs));
    constexpr int offset = std::is_same_v<Block, quant::BlockQ4_0> ? 8 : 16;
    constexpr __mmask64 load_mask = (__mmask64(1) << (2 * size)) - 1;
    // words 0 and size / 2 are the two scales: 8 lanes each
    const __m512i scale_index = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, size / 2, size / 2, size / 2,
                                                 size / 2, size / 2, size / 2, size / 2, size / 2, 0, 0, 0, 0, 0, 0, 0, 0);
    // bytes [lo nibbles of block 0 | high nibbles of block 0 | lo of block 1 | high of block 1]
    static constexpr auto nibble_index_bytes = [] {
        struct alignas(64) Table {
            std::int8_t bytes[64];
        } t{};
        for (int i = 0; i < 64; ++i) t.bytes[i] = std::int8_t((i < 32 ? qs : size + qs) + i % 16);
        return t;
    }();
    const __m512i nibble_index = _mm512_load_si512(nibble_index_bytes.bytes);
    const __m512i nibble_shift = _mm512_set_epi64(0x0004000400040004, 0x0004000400040004, 0, 0, 0x0004000400040004,
                                                  0x0004000400040004, 0, 0);
    const __m512i low = _mm512_set1_epi8(0x0F);
    const __m512i sixteen = _mm512_set1_epi8(0x10);
    // two accumulators of each kind: one chain of dependent FMAs would limit a step to its latency
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0, offset0 = acc0, offset1 = acc0;
    auto step = [&](int b, __m512& a, __m512& o) {
        const std::byte* pair = reinterpret_cast<const std::byte*>(blocks + b);
        const __m512i raw = _mm512_maskz_loadu_epi8(load_mask, pair);
        const __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(scale_index, raw)));
        __m512i q = _mm512_and_si512(_mm512_srlv_epi16(_mm512_permutexvar_epi8(nibble_index, raw), nibble_shift), low);
        if constexpr (std::is_same_v<Block, quant::BlockQ5_0>) {
            std::uint32_t h0, h1;
            std::memcpy(&h0, blocks[b].qh, 4);
            std::memcpy(&h1, blocks[b + 1].qh, 4);
            q = _mm512_or_si512(q, _mm512_maskz_mov_epi8(__mmask64(h0) | (__mmask64(h1) << 32), sixteen));
        }
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, _mm512_loadu_si512(xq + b * 32));
        const __m512 dx = _mm512_loadu_ps(lane_scales + b * 8);
        a = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, dot), _mm512_mul_ps(dw, dx), a);
        o = _mm512_fmadd_ps(dw, _mm512_loadu_ps(lane_sums + b * 8), o);
    };
    int b = 0;
    for (; b + 4 <= nb; b += 4) {
        step(b, acc0, offset0);
        step(b + 2, acc1, offset1);
    }
    if (b < nb) step(b, acc0, offset0);
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) - float(offset) * _mm512_reduce_add_ps(_mm512_add_ps(offset0, offset1));
}
#endif

// --- K-quants: 256-element super-blocks ---

// The 8 six-bit scales and 8 six-bit minimums of a Q4_K / Q5_K block (bytes 0..7 and 8..15).
inline void unpack_scales_k4(const std::uint8_t* packed, std::uint8_t out[16]) {
    for (int j = 0; j < 8; ++j) quant::scale_min_k4(j, packed, out[j], out[8 + j]);
}

// sum over the block's 8 sub-blocks of min_j * (sum of x's int8 values in sub-block j), from the
// input's sums of 16.
inline std::int32_t mins_dot(const std::uint8_t* mins8, const std::int32_t* sums16) {
    const __m128i m = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(mins8));
    const __m512i m16 = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(m, m));  // each minimum covers two sums of 16
    return _mm512_reduce_add_epi32(_mm512_mullo_epi32(m16, _mm512_loadu_si512(sums16)));
}

// Scale vector for vpdpwssd over one 64-element chunk: int16 lanes 0..15 = a, 16..31 = b.
inline __m512i scale_pair16(int a, int b) {
    return _mm512_inserti64x4(_mm512_set1_epi16(std::int16_t(a)), _mm256_set1_epi16(std::int16_t(b)), 1);
}

// 64 unsigned values of one chunk times x, weighted per 32: sum_j scale_j * sum q * x.
inline __m512i chunk_dot(__m512i q, const std::int8_t* x, __m512i scales16, __m512i acc) {
    const __m512i pairs = _mm512_maddubs_epi16(q, _mm512_loadu_si512(x));
    return _mm512_dpwssd_epi32(acc, pairs, scales16);
}

#if defined(__AVX512VBMI__)
// The 6-bit scales and minimums of a Q4_K / Q5_K block as 16 bytes (scales 0..7, minimums 0..7),
// unpacked with word operations from the 12 packed bytes.
inline __m128i k4_scales_mins(const std::uint8_t* packed) {
    std::uint32_t w[3];
    std::memcpy(w, packed, 12);
    const std::uint32_t low6 = 0x3F3F3F3F, low4 = 0x0F0F0F0F, top2 = 0x03030303;
    const std::uint32_t scales_lo = w[0] & low6, mins_lo = w[1] & low6;
    const std::uint32_t scales_hi = (w[2] & low4) | (((w[0] >> 6) & top2) << 4);
    const std::uint32_t mins_hi = ((w[2] >> 4) & low4) | (((w[1] >> 6) & top2) << 4);
    return _mm_set_epi32(int(mins_hi), int(mins_lo), int(scales_hi), int(scales_lo));
}

// vpdpwssd scale lanes for 64-element chunk c: int16 lanes 0..15 take scale 2c, 16..31 scale 2c + 1.
inline __m512i k4_chunk_scales(__m128i scales_mins, int c) {
    const __m512i index = _mm512_set1_epi16(std::int16_t(2 * c));  // low byte: scale index; high byte zeroed below
    const __m512i upper = _mm512_set_epi64(0x0001000100010001, 0x0001000100010001, 0x0001000100010001, 0x0001000100010001, 0, 0, 0, 0);
    return _mm512_maskz_permutexvar_epi8(0x5555555555555555ull, _mm512_add_epi16(index, upper), _mm512_castsi128_si512(scales_mins));
}

// 64 values of chunk c: the 32 bytes' low nibbles (elements 0..31), then their high nibbles.
inline __m512i k4_chunk_nibbles(const std::uint8_t* qs) {
    const __m512i both = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs)));
    const __m512i shift = _mm512_set_epi64(0x0004000400040004, 0x0004000400040004, 0x0004000400040004, 0x0004000400040004, 0, 0, 0, 0);
    return _mm512_and_si512(_mm512_srlv_epi16(both, shift), _mm512_set1_epi8(0x0F));
}

// sum_j min_j * (sum of x in sub-block j) as 16 int32 lanes (each minimum covers two sums of 16).
inline __m512 k4_mins_dot(__m128i scales_mins, const std::int32_t* sums16) {
    const __m128i mins_twice = _mm_unpackhi_epi8(scales_mins, scales_mins);  // m0 m0 m1 m1 ... m7 m7
    return _mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(mins_twice), _mm512_loadu_si512(sums16)));
}

template <int K, bool FiveBit>
inline float row_dot_k4(const std::byte* row, const std::int8_t* xq, const float* xd, const std::int32_t* xs16) {
    using Block = std::conditional_t<FiveBit, quant::BlockQ5_K, quant::BlockQ4_K>;
    const Block* blocks = reinterpret_cast<const Block*>(row);
    constexpr int nb = K / 256;
    const __m512i sixteen = _mm512_set1_epi8(0x10);
    __m512 acc = _mm512_setzero_ps(), min_acc = _mm512_setzero_ps();
    for (int b = 0; b < nb; ++b) {
        const Block& blk = blocks[b];
        const __m128i sm = k4_scales_mins(blk.scales);
        const std::int8_t* x = xq + b * 256;
        __m512i isum = _mm512_setzero_si512();
        [[maybe_unused]] __m256i qh;
        if constexpr (FiveBit) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh));
        for (int c = 0; c < 4; ++c) {
            __m512i values = k4_chunk_nibbles(blk.qs + 32 * c);
            if constexpr (FiveBit) {
                // fifth bit: bit 2c of qh[l] for element l, bit 2c + 1 for element 32 + l
                const __mmask64 high = __mmask64(_mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << (2 * c))))) |
                                       (__mmask64(_mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << (2 * c + 1))))) << 32);
                values = _mm512_or_si512(values, _mm512_maskz_mov_epi8(high, sixteen));
            }
            const __m512i pairs = _mm512_maddubs_epi16(values, _mm512_loadu_si512(x + 64 * c));
            isum = _mm512_dpwssd_epi32(isum, pairs, k4_chunk_scales(sm, c));
        }
        const float dx = xd[b];
        acc = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, isum), _mm512_set1_ps(half_to_float(blk.d) * dx), acc);
        min_acc = _mm512_fmadd_ps(k4_mins_dot(sm, xs16 + b * 16), _mm512_set1_ps(half_to_float(blk.dmin) * dx), min_acc);
    }
    return _mm512_reduce_add_ps(_mm512_sub_ps(acc, min_acc));
}
#else
template <int K>
inline float row_dot_q4_k(const quant::BlockQ4_K* blocks, const std::int8_t* xq, const float* xd, const std::int32_t* xs16) {
    constexpr int nb = K / 256;
    const __m256i low = _mm256_set1_epi8(0x0F);
    __m512 acc = _mm512_setzero_ps();
    float min_sum = 0;
    for (int b = 0; b < nb; ++b) {
        const quant::BlockQ4_K& blk = blocks[b];
        std::uint8_t sm[16];
        unpack_scales_k4(blk.scales, sm);
        const std::int8_t* x = xq + b * 256;
        __m512i isum = _mm512_setzero_si512();
        for (int c = 0; c < 4; ++c) {
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs + 32 * c));
            const __m512i values = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(q, low)),
                                                      _mm256_and_si256(_mm256_srli_epi16(q, 4), low), 1);
            isum = chunk_dot(values, x + 64 * c, scale_pair16(sm[2 * c], sm[2 * c + 1]), isum);
        }
        const float dx = xd[b];
        acc = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, isum), _mm512_set1_ps(half_to_float(blk.d) * dx), acc);
        min_sum += half_to_float(blk.dmin) * dx * float(mins_dot(sm + 8, xs16 + b * 16));
    }
    return _mm512_reduce_add_ps(acc) - min_sum;
}

template <int K>
inline float row_dot_q5_k(const quant::BlockQ5_K* blocks, const std::int8_t* xq, const float* xd, const std::int32_t* xs16) {
    constexpr int nb = K / 256;
    const __m256i low = _mm256_set1_epi8(0x0F);
    const __m256i sixteen = _mm256_set1_epi8(0x10);
    __m512 acc = _mm512_setzero_ps();
    float min_sum = 0;
    for (int b = 0; b < nb; ++b) {
        const quant::BlockQ5_K& blk = blocks[b];
        std::uint8_t sm[16];
        unpack_scales_k4(blk.scales, sm);
        const std::int8_t* x = xq + b * 256;
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh));
        __m512i isum = _mm512_setzero_si512();
        for (int c = 0; c < 4; ++c) {
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs + 32 * c));
            const __mmask32 hi_lo = _mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << (2 * c))));
            const __mmask32 hi_hi = _mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << (2 * c + 1))));
            const __m256i lo_values = _mm256_or_si256(_mm256_and_si256(q, low), _mm256_maskz_mov_epi8(hi_lo, sixteen));
            const __m256i hi_values =
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), low), _mm256_maskz_mov_epi8(hi_hi, sixteen));
            const __m512i values = _mm512_inserti64x4(_mm512_castsi256_si512(lo_values), hi_values, 1);
            isum = chunk_dot(values, x + 64 * c, scale_pair16(sm[2 * c], sm[2 * c + 1]), isum);
        }
        const float dx = xd[b];
        acc = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, isum), _mm512_set1_ps(half_to_float(blk.d) * dx), acc);
        min_sum += half_to_float(blk.dmin) * dx * float(mins_dot(sm + 8, xs16 + b * 16));
    }
    return _mm512_reduce_add_ps(acc) - min_sum;
}

#endif

template <int K>
inline float row_dot_q6_k(const quant::BlockQ6_K* blocks, const std::int8_t* xq, const float* xd, const std::int32_t* xs16) {
    constexpr int nb = K / 256;
    const __m256i low = _mm256_set1_epi8(0x0F);
    const __m256i three = _mm256_set1_epi8(0x03);
    // int16 lane i takes the scale of group i / 8 (groups 0..3), or 4 + i / 8 (groups 4..7)
    const __m512i group_index_low = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i group_index_high = _mm512_add_epi16(group_index_low, _mm512_set1_epi16(4));
    __m512 acc = _mm512_setzero_ps();
    for (int b = 0; b < nb; ++b) {
        const quant::BlockQ6_K& blk = blocks[b];
        const std::int8_t* x = xq + b * 256;
        __m512i isum = _mm512_setzero_si512();
        for (int half = 0; half < 2; ++half) {
            const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * half));
            const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * half + 32));
            const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh + 32 * half));
            auto high_bits = [&](int shift) { return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), three), 4); };
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(ql0, low), high_bits(0));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(ql1, low), high_bits(2));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low), high_bits(4));
            const __m256i q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low), high_bits(6));
            // one scale per 16 elements; a vpdpwssd lane covers 2 elements, so each scale fills 8 lanes
            const __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk.scales + 8 * half))));
            const __m512i first = _mm512_permutexvar_epi16(group_index_low, sc16), second = _mm512_permutexvar_epi16(group_index_high, sc16);
            isum = chunk_dot(_mm512_inserti64x4(_mm512_castsi256_si512(q1), q2, 1), x + 128 * half, first, isum);
            isum = chunk_dot(_mm512_inserti64x4(_mm512_castsi256_si512(q3), q4, 1), x + 128 * half + 64, second, isum);
        }
        // the stored values are q + 32: subtract 32 * sum_g scale_g * sum(x in group g)
        const __m512i sc32 = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.scales)));
        const std::int32_t offset = _mm512_reduce_add_epi32(_mm512_mullo_epi32(sc32, _mm512_loadu_si512(xs16 + b * 16)));
        isum = _mm512_sub_epi32(isum, _mm512_maskz_set1_epi32(1, 32 * offset));
        acc = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, isum), _mm512_set1_ps(half_to_float(blk.d) * xd[b]), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

// True for the weight types matvec_quant handles with rows of K elements.
template <int K>
constexpr bool has_quant_kernel(DType type) {
    switch (type) {
        case DType::q8_0: case DType::q4_0: case DType::q5_0: return K % 64 == 0;
        case DType::q4_k: case DType::q5_k: case DType::q6_k: return K % 256 == 0;
        default: return false;
    }
}

// Rows [row_begin, row_end) of a quantized matrix against token t of `in` (prepared for `type`).
template <int K, class Input>
void matvec_quant(DType type, const std::byte* w, std::size_t stride, const Input& in, int t, float* y, int row_begin, int row_end) {
    auto rows = [&](auto row_dot) {
        for (int r = row_begin; r < row_end; ++r) {
            const std::byte* row = w + std::size_t(r) * stride;
            prefetch_row(row + 4 * stride, stride);
            y[r] = row_dot(row);
        }
    };
    const std::int8_t* xq = in.q8(t);
    switch (type) {
        case DType::q8_0:
            return rows([&](const std::byte* row) {
                return row_dot_32<K, quant::BlockQ8_0, 0, dot_q8_0_pair>(reinterpret_cast<const quant::BlockQ8_0*>(row), xq, in.scales32(t), in.sums32(t));
            });
#if defined(__AVX512VBMI__)
        case DType::q4_0:
            return rows([&](const std::byte* row) {
                return row_dot_small_blocks<K>(reinterpret_cast<const quant::BlockQ4_0*>(row), xq, in.lane_scales32(t), in.lane_sums32(t));
            });
        case DType::q5_0:
            return rows([&](const std::byte* row) {
                return row_dot_small_blocks<K>(reinterpret_cast<const quant::BlockQ5_0*>(row), xq, in.lane_scales32(t), in.lane_sums32(t));
            });
#else
        case DType::q4_0:
            return rows([&](const std::byte* row) {
                return row_dot_32<K, quant::BlockQ4_0, 8, dot_q4_0_pair>(reinterpret_cast<const quant::BlockQ4_0*>(row), xq, in.scales32(t), in.sums32(t));
            });
        case DType::q5_0:
            return rows([&](const std::byte* row) {
                return row_dot_32<K, quant::BlockQ5_0, 16, dot_q5_0_pair>(reinterpret_cast<const quant::BlockQ5_0*>(row), xq, in.scales32(t), in.sums32(t));
            });
#endif
#if defined(__AVX512VBMI__)
        case DType::q4_k:
            if constexpr (K % 256 != 0) break;
            else return rows([&](const std::byte* row) { return row_dot_k4<K, false>(row, xq, in.scales256(t), in.sums16(t)); });
        case DType::q5_k:
            if constexpr (K % 256 != 0) break;
            else return rows([&](const std::byte* row) { return row_dot_k4<K, true>(row, xq, in.scales256(t), in.sums16(t)); });
#else
        case DType::q4_k:
            if constexpr (K % 256 != 0) break;
            else return rows([&](const std::byte* row) {
                return row_dot_q4_k<K>(reinterpret_cast<const quant::BlockQ4_K*>(row), xq, in.scales256(t), in.sums16(t));
            });
        case DType::q5_k:
            if constexpr (K % 256 != 0) break;
            else return rows([&](const std::byte* row) {
                return row_dot_q5_k<K>(reinterpret_cast<const quant::BlockQ5_K*>(row), xq, in.scales256(t), in.sums16(t));
            });
#endif
        case DType::q6_k:
            if constexpr (K % 256 != 0) break;
            else return rows([&](const std::byte* row) {
                return row_dot_q6_k<K>(reinterpret_cast<const quant::BlockQ6_K*>(row), xq, in.scales256(t), in.sums16(t));
            });
        default: break;
    }
}

}  // namespace qwen3::kernels::avx512

#endif
// ===== end of qwen3/kernels/arch/avx512_quant.hpp =====

#if defined(QWEN3_HAVE_AVX512_VNNI)

#include <immintrin.h>


// ===== qwen3/format/quant_blocks.hpp =====
#ifndef QWEN3_AMALGAMATED_QWEN3_FORMAT_QUANT_BLOCKS_HPP
#define QWEN3_AMALGAMATED_QWEN3_FORMAT_QUANT_BLOCKS_HPP
// qwen3/format/quant_blocks.hpp - the block layouts of ggml's quantized tensor types.
//
// A quantized row is a sequence of blocks; each block holds a fixed number of elements as small
// integers plus the scales that turn them back into floats. The layouts below are byte-for-byte
// those of the GGUF format (ggml's definitions), so a mapped GGUF tensor is an array of these structs.
// Scales are IEEE half floats stored as uint16 (see kernels/simd.hpp f16_to_f32).


namespace qwen3::quant {

inline constexpr int kBlock32 = 32;   // elements of a Q4_0 / Q5_0 / Q8_0 block
inline constexpr int kSuperBlock = 256;  // elements of a K-quant super-block

// x[i] = d * qs[i]
struct BlockQ8_0 {
    std::uint16_t d;
    std::int8_t qs[32];
};

// x[i] = d * ((qs[i % 16] >> (4 * (i / 16))) & 15) - 8): low nibbles hold elements 0..15, high 16..31
struct BlockQ4_0 {
    std::uint16_t d;
    std::uint8_t qs[16];
};

// x[i] = d * q[i] + m, q as in Q4_0 without the offset
struct BlockQ4_1 {
    std::uint16_t d;
    std::uint16_t m;
    std::uint8_t qs[16];
};

// x[i] = d * (q[i] - 16), q = 4 low bits from qs (as Q4_0) | bit i of qh (little-endian uint32) << 4
struct BlockQ5_0 {
    std::uint16_t d;
    std::uint8_t qh[4];
    std::uint8_t qs[16];
};

// x[i] = d * q[i] + m, q as in Q5_0 without the offset
struct BlockQ5_1 {
    std::uint16_t d;
    std::uint16_t m;
    std::uint8_t qh[4];
    std::uint8_t qs[16];
};

// 256 elements in 8 sub-blocks of 32, each with a 6-bit scale and a 6-bit min packed in `scales`:
// x = d * scale_j * q - dmin * min_j, q in [0, 15]; qs holds 4 chunks of 64 elements, each chunk's
// first 32 in the low nibbles and last 32 in the high nibbles.
struct BlockQ4_K {
    std::uint16_t d;
    std::uint16_t dmin;
    std::uint8_t scales[12];
    std::uint8_t qs[128];
};

// As Q4_K with a fifth bit per element in qh: bit (2 * chunk) of qh[l] for the low-nibble element
// l of a chunk, bit (2 * chunk + 1) for the high-nibble one.
struct BlockQ5_K {
    std::uint16_t d;
    std::uint16_t dmin;
    std::uint8_t scales[12];
    std::uint8_t qh[32];
    std::uint8_t qs[128];
};

// 256 elements in 16 groups of 16 with int8 scales: x = d * scales_j * (q - 32), q 6-bit: 4 low bits
// in ql, 2 high bits in qh (two chunks of 128 elements; see dequantize in quant.hpp).
struct BlockQ6_K {
    std::uint8_t ql[128];
    std::uint8_t qh[64];
    std::int8_t scales[16];
    std::uint16_t d;
};

// The activation format of K-quant dot products: a float scale, 256 int8 values and the sums of
// each group of 16 (used to apply K-quants' per-sub-block minimums without touching the values).
struct BlockQ8_K {
    float d;
    std::int8_t qs[256];
    std::int16_t bsums[16];
};

static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);
static_assert(alignof(BlockQ8_0) == 2 && alignof(BlockQ6_K) == 2, "blocks must pack without padding");

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block.
inline void scale_min_k4(int j, const std::uint8_t* q, std::uint8_t& scale, std::uint8_t& min) {
    if (j < 4) {
        scale = q[j] & 63;
        min = q[j + 4] & 63;
    } else {
        scale = std::uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        min = std::uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

}  // namespace qwen3::quant
#endif  // QWEN3_AMALGAMATED_QWEN3_FORMAT_QUANT_BLOCKS_HPP
// ===== end of qwen3/format/quant_blocks.hpp =====

namespace qwen3::kernels::avx512 {

// One weight row as signed bytes in blocks of G elements: element = scale[b] * w + min_coef[b].
template <int K, int G>
struct UnpackedRow {
    static constexpr int blocks = K / G;
    alignas(64) std::int8_t w[K];
    float scale[blocks];
    float min_coef[blocks];
    std::int32_t bias[blocks];  // 128 * sum of the block's w, removed from the offset input's dot product
};

template <int K, int G>
inline void finish_block_sums(UnpackedRow<K, G>& u) {
    for (int b = 0; b < UnpackedRow<K, G>::blocks; ++b) {
        std::int32_t sum = 0;
        for (int i = 0; i < G; ++i) sum += u.w[b * G + i];
        u.bias[b] = 128 * sum;
    }
}

// --- unpacking each format into UnpackedRow<K, 32> (Q6_K: UnpackedRow<K, 16>) ---

template <int K>
inline void unpack_q8_0(const quant::BlockQ8_0* blocks, UnpackedRow<K, 32>& u) {
    for (int b = 0; b < K / 32; ++b) {
        std::memcpy(u.w + b * 32, blocks[b].qs, 32);
        u.scale[b] = half_to_float(blocks[b].d);
        u.min_coef[b] = 0;
    }
    finish_block_sums(u);
}

template <int K>
inline void unpack_q4_0(const quant::BlockQ4_0* blocks, UnpackedRow<K, 32>& u) {
    const __m256i eight = _mm256_set1_epi8(8);
    for (int b = 0; b < K / 32; ++b) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(u.w + b * 32), _mm256_sub_epi8(unpack_nibbles_16(blocks[b].qs), eight));
        u.scale[b] = half_to_float(blocks[b].d);
        u.min_coef[b] = 0;
    }
    finish_block_sums(u);
}

template <int K>
inline void unpack_q5_0(const quant::BlockQ5_0* blocks, UnpackedRow<K, 32>& u) {
    const __m256i sixteen = _mm256_set1_epi8(16);
    for (int b = 0; b < K / 32; ++b) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(u.w + b * 32), _mm256_sub_epi8(q5_0_values(blocks[b]), sixteen));
        u.scale[b] = half_to_float(blocks[b].d);
        u.min_coef[b] = 0;
    }
    finish_block_sums(u);
}

template <int K>
inline void unpack_q4_k(const quant::BlockQ4_K* blocks, UnpackedRow<K, 32>& u) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    for (int b = 0; b < K / 256; ++b) {
        const quant::BlockQ4_K& blk = blocks[b];
        std::uint8_t sm[16];
        unpack_scales_k4(blk.scales, sm);
        const float d = half_to_float(blk.d), dmin = half_to_float(blk.dmin);
        for (int c = 0; c < 4; ++c) {
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs + 32 * c));
            std::int8_t* out = u.w + b * 256 + 64 * c;
            _mm256_store_si256(reinterpret_cast<__m256i*>(out), _mm256_and_si256(q, low));
            _mm256_store_si256(reinterpret_cast<__m256i*>(out + 32), _mm256_and_si256(_mm256_srli_epi16(q, 4), low));
        }
        for (int j = 0; j < 8; ++j) {
            u.scale[b * 8 + j] = d * float(sm[j]);
            u.min_coef[b * 8 + j] = -dmin * float(sm[8 + j]);
        }
    }
    finish_block_sums(u);
}

template <int K>
inline void unpack_q5_k(const quant::BlockQ5_K* blocks, UnpackedRow<K, 32>& u) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    const __m256i sixteen = _mm256_set1_epi8(0x10);
    for (int b = 0; b < K / 256; ++b) {
        const quant::BlockQ5_K& blk = blocks[b];
        std::uint8_t sm[16];
        unpack_scales_k4(blk.scales, sm);
        const float d = half_to_float(blk.d), dmin = half_to_float(blk.dmin);
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh));
        for (int c = 0; c < 4; ++c) {
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs + 32 * c));
            const __mmask32 hi_lo = _mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << (2 * c))));
            const __mmask32 hi_hi = _mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << (2 * c + 1))));
            std::int8_t* out = u.w + b * 256 + 64 * c;
            _mm256_store_si256(reinterpret_cast<__m256i*>(out), _mm256_or_si256(_mm256_and_si256(q, low), _mm256_maskz_mov_epi8(hi_lo, sixteen)));
            _mm256_store_si256(reinterpret_cast<__m256i*>(out + 32),
                               _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), low), _mm256_maskz_mov_epi8(hi_hi, sixteen)));
        }
        for (int j = 0; j < 8; ++j) {
            u.scale[b * 8 + j] = d * float(sm[j]);
            u.min_coef[b * 8 + j] = -dmin * float(sm[8 + j]);
        }
    }
    finish_block_sums(u);
}

template <int K>
inline void unpack_q6_k(const quant::BlockQ6_K* blocks, UnpackedRow<K, 16>& u) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    const __m256i three = _mm256_set1_epi8(0x03);
    const __m256i thirty_two = _mm256_set1_epi8(32);
    for (int b = 0; b < K / 256; ++b) {
        const quant::BlockQ6_K& blk = blocks[b];
        const float d = half_to_float(blk.d);
        for (int half = 0; half < 2; ++half) {
            const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * half));
            const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * half + 32));
            const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh + 32 * half));
            auto high_bits = [&](int shift) { return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), three), 4); };
            std::int8_t* out = u.w + b * 256 + 128 * half;
            _mm256_store_si256(reinterpret_cast<__m256i*>(out), _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(ql0, low), high_bits(0)), thirty_two));
            _mm256_store_si256(reinterpret_cast<__m256i*>(out + 32), _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(ql1, low), high_bits(2)), thirty_two));
            _mm256_store_si256(reinterpret_cast<__m256i*>(out + 64),
                               _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low), high_bits(4)), thirty_two));
            _mm256_store_si256(reinterpret_cast<__m256i*>(out + 96),
                               _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low), high_bits(6)), thirty_two));
        }
        for (int g = 0; g < 16; ++g) {
            u.scale[b * 16 + g] = d * float(blk.scales[g]);
            u.min_coef[b * 16 + g] = 0;
        }
    }
    finish_block_sums(u);
}

// --- the column kernel ---

inline constexpr int kGemmRows = 4;

// Y[t][row r] for NG column groups of 16 tokens (from `group` on) and kGemmRows unpacked rows.
template <int K, int G, bool HasMin, int NG, class Input>
inline void column_tile(const UnpackedRow<K, G>* const* rows, const Input& in, int group, float* y, std::size_t y_stride,
                        const int* row_index, int row_count) {
    constexpr int R = kGemmRows;
    const std::uint8_t* x[NG];
    const float* dx[NG];
    const float* sx[NG];
    for (int g = 0; g < NG; ++g) {
        x[g] = in.columns(group + g);
        dx[g] = in.column_scales(group + g);
        sx[g] = in.column_sums(group + g);
    }
    __m512 acc[R][NG];
    for (int r = 0; r < R; ++r)
        for (int g = 0; g < NG; ++g) acc[r][g] = _mm512_setzero_ps();
    for (int b = 0; b < K / G; ++b) {
        __m512i dot[R][NG];
        for (int r = 0; r < R; ++r)
            for (int g = 0; g < NG; ++g) dot[r][g] = _mm512_setzero_si512();
        for (int j = 0; j < G / 4; ++j) {
            __m512i xv[NG];
            for (int g = 0; g < NG; ++g) xv[g] = _mm512_loadu_si512(x[g] + std::size_t(b * (G / 4) + j) * 64);
            for (int r = 0; r < R; ++r) {
                std::int32_t w4;
                std::memcpy(&w4, rows[r]->w + b * G + 4 * j, 4);
                const __m512i wv = _mm512_set1_epi32(w4);
                for (int g = 0; g < NG; ++g) dot[r][g] = _mm512_dpbusd_epi32(dot[r][g], xv[g], wv);
            }
        }
        const int xb = b * G / 32;  // the input's block of 32 holding this block
        for (int g = 0; g < NG; ++g) {
            const __m512 dxv = _mm512_loadu_ps(dx[g] + xb * 16);
            for (int r = 0; r < R; ++r) {
                const __m512 v = _mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_sub_epi32(dot[r][g], _mm512_set1_epi32(rows[r]->bias[b])));
                acc[r][g] = _mm512_fmadd_ps(v, _mm512_mul_ps(_mm512_set1_ps(rows[r]->scale[b]), dxv), acc[r][g]);
                if constexpr (HasMin)
                    acc[r][g] = _mm512_fmadd_ps(_mm512_loadu_ps(sx[g] + xb * 16), _mm512_set1_ps(rows[r]->min_coef[b]), acc[r][g]);
            }
        }
    }
    for (int g = 0; g < NG; ++g) {
        const int t0 = (group + g) * 16;
        const int lanes = std::min(16, in.tokens() - t0);
        for (int r = 0; r < row_count; ++r) {
            alignas(64) float out[16];
            _mm512_store_ps(out, acc[r][g]);
            for (int l = 0; l < lanes; ++l) y[std::size_t(t0 + l) * y_stride + row_index[r]] = out[l];
        }
    }
}

template <int K, int G>
inline std::vector<UnpackedRow<K, G>>& unpack_buffer() {
    thread_local std::vector<UnpackedRow<K, G>> rows(kGemmRows);
    return rows;
}

// Rows [row_begin, row_end) of a quantized matrix times every token of `in` (column form).
template <int K, class Input>
void matmul_quant(DType type, const std::byte* w, std::size_t stride, const Input& in, float* y, std::size_t y_stride,
                  int row_begin, int row_end) {
    auto run = [&]<int G, bool HasMin>(auto unpack) {
        auto& buffer = unpack_buffer<K, G>();
        const UnpackedRow<K, G>* rows[kGemmRows];
        int index[kGemmRows];
        for (int r0 = row_begin; r0 < row_end; r0 += kGemmRows) {
            const int count = std::min(kGemmRows, row_end - r0);
            for (int i = 0; i < kGemmRows; ++i) {
                index[i] = r0 + std::min(i, count - 1);  // a short last tile repeats its last row
                if (i < count) unpack(w + std::size_t(index[i]) * stride, buffer[std::size_t(i)]);
                rows[i] = &buffer[std::size_t(std::min(i, count - 1))];
            }
            const int groups = (in.tokens() + 15) / 16;
            int g = 0;
            for (; g + 2 <= groups; g += 2) column_tile<K, G, HasMin, 2>(rows, in, g, y, y_stride, index, count);
            if (g < groups) column_tile<K, G, HasMin, 1>(rows, in, g, y, y_stride, index, count);
        }
    };
    switch (type) {
        case DType::q8_0:
            return run.template operator()<32, false>([](const std::byte* row, UnpackedRow<K, 32>& u) {
                unpack_q8_0<K>(reinterpret_cast<const quant::BlockQ8_0*>(row), u);
            });
        case DType::q4_0:
            return run.template operator()<32, false>([](const std::byte* row, UnpackedRow<K, 32>& u) {
                unpack_q4_0<K>(reinterpret_cast<const quant::BlockQ4_0*>(row), u);
            });
        case DType::q5_0:
            return run.template operator()<32, false>([](const std::byte* row, UnpackedRow<K, 32>& u) {
                unpack_q5_0<K>(reinterpret_cast<const quant::BlockQ5_0*>(row), u);
            });
        case DType::q4_k:
            if constexpr (K % 256 == 0)
                return run.template operator()<32, true>([](const std::byte* row, UnpackedRow<K, 32>& u) {
                    unpack_q4_k<K>(reinterpret_cast<const quant::BlockQ4_K*>(row), u);
                });
            break;
        case DType::q5_k:
            if constexpr (K % 256 == 0)
                return run.template operator()<32, true>([](const std::byte* row, UnpackedRow<K, 32>& u) {
                    unpack_q5_k<K>(reinterpret_cast<const quant::BlockQ5_K*>(row), u);
                });
            break;
        case DType::q6_k:
            if constexpr (K % 256 == 0)
                return run.template operator()<16, false>([](const std::byte* row, UnpackedRow<K, 16>& u) {
                    unpack_q6_k<K>(reinterpret_cast<const quant::BlockQ6_K*>(row), u);
                });
            break;
        default: break;
    }
}

}  // namespace qwen3::kernels::avx512

#endif
// ===== end of qwen3/kernels/arch/avx512_gemm.hpp =====
// ===== qwen3/kernels/arch/avx512_gemm_bf16.hpp =====
// qwen3/kernels/arch/avx512_gemm_bf16.hpp - prefill with AVX-512 BF16 dot products (opt-in).
//
// With Precision::bf16_products, prefill rounds the activations to bf16 and multiplies them with BF16
// weights by vdpbf16ps: pairs of bf16 products summed into f32, twice the multiply rate of f32 FMA.
// This is what llama.cpp's CPU backend does for BF16 weights; logits move by about 1e-3 against an
// f32 computation, which is why it is not the default.
//
// Layout as in the other column kernels: tokens side by side (Input's bf16 column form: for each
// pair of elements, one 32-bit lane per token), a pair of weights (one dword of the BF16 row, read
// in place) broadcast against 16 tokens. Rows are processed in blocks and the input in slices of K
// so that a slice of every token's columns stays in L2 while a block of rows passes over it.

#if defined(__AVX512BF16__) && defined(__AVX512F__)
#define QWEN3_HAVE_AVX512_BF16 1

#include <immintrin.h>


namespace qwen3::kernels::avx512 {

inline constexpr int kBf16Rows = 4;
inline constexpr int kBf16SliceK = 1024;  // elements; a slice of 128 tokens' columns is 256 KB
inline constexpr int kBf16BlockRows = 64;

// Adds rows . X over elements [k0, k0 + kc) into partial ([NG][kBf16Rows][16]).
template <int NG, class Input>
inline void bf16_column_tile(const std::uint16_t* const* rows, const Input& in, int group, int k0, int kc, float* partial) {
    constexpr int R = kBf16Rows;
    const std::uint32_t* x[NG];
    for (int g = 0; g < NG; ++g) x[g] = in.bf16_columns(group + g) + std::size_t(k0 / 2) * 16;
    __m512 acc[NG][R];
    for (int g = 0; g < NG; ++g)
        for (int r = 0; r < R; ++r) acc[g][r] = _mm512_loadu_ps(partial + (g * R + r) * 16);
    for (int p = 0; p < kc / 2; ++p) {
        __m512bh xv[NG];
        for (int g = 0; g < NG; ++g) xv[g] = (__m512bh)_mm512_loadu_si512(x[g] + std::size_t(p) * 16);
        for (int r = 0; r < R; ++r) {
            std::uint32_t pair;
            std::memcpy(&pair, rows[r] + k0 + 2 * p, 4);
            const __m512bh wv = (__m512bh)_mm512_set1_epi32(int(pair));
            for (int g = 0; g < NG; ++g) acc[g][r] = _mm512_dpbf16_ps(acc[g][r], xv[g], wv);
        }
    }
    for (int g = 0; g < NG; ++g)
        for (int r = 0; r < R; ++r) _mm512_storeu_ps(partial + (g * R + r) * 16, acc[g][r]);
}

// Rows [row_begin, row_end) of a BF16 matrix times every token of `in` (bf16 columns).
template <int K, class Input>
void matmul_bf16_products(const std::byte* w, std::size_t stride, const Input& in, float* y, std::size_t y_stride,
                          int row_begin, int row_end) {
    constexpr int R = kBf16Rows, B = kBf16BlockRows;
    const int groups = (in.tokens() + 15) / 16;
    thread_local std::vector<float> partial;  // [tile][group][row][16] of one block
    partial.resize(std::size_t(B / R) * groups * R * 16);
    for (int b0 = row_begin; b0 < row_end; b0 += B) {
        const int rows_in_block = std::min(B, row_end - b0);
        const int tiles = (rows_in_block + R - 1) / R;
        std::fill(partial.begin(), partial.begin() + std::ptrdiff_t(std::size_t(tiles) * groups * R * 16), 0.f);
        for (int k0 = 0; k0 < K; k0 += kBf16SliceK) {
            const int kc = std::min(kBf16SliceK, K - k0);
            for (int tile = 0; tile < tiles; ++tile) {
                const std::uint16_t* rows[R];
                for (int i = 0; i < R; ++i) {
                    const int r = b0 + std::min(tile * R + i, rows_in_block - 1);  // short tiles repeat a row
                    rows[i] = reinterpret_cast<const std::uint16_t*>(w + std::size_t(r) * stride);
                }
                float* p = partial.data() + std::size_t(tile) * groups * R * 16;
                int g = 0;
                for (; g + 3 <= groups; g += 3) bf16_column_tile<3>(rows, in, g, k0, kc, p + std::size_t(g) * R * 16);
                if (groups - g == 2) bf16_column_tile<2>(rows, in, g, k0, kc, p + std::size_t(g) * R * 16);
                else if (groups - g == 1) bf16_column_tile<1>(rows, in, g, k0, kc, p + std::size_t(g) * R * 16);
            }
        }
        for (int tile = 0; tile < tiles; ++tile)
            for (int g = 0; g < groups; ++g)
                for (int i = 0; i < R && tile * R + i < rows_in_block; ++i) {
                    const float* p = partial.data() + ((std::size_t(tile) * groups + g) * R + i) * 16;
                    const int lanes = std::min(16, in.tokens() - g * 16);
                    for (int l = 0; l < lanes; ++l) y[std::size_t(g * 16 + l) * y_stride + b0 + tile * R + i] = p[l];
                }
    }
}

}  // namespace qwen3::kernels::avx512

#endif
// ===== end of qwen3/kernels/arch/avx512_gemm_bf16.hpp =====
// ===== qwen3/kernels/arch/avx512_gemm_float.hpp =====
// qwen3/kernels/arch/avx512_gemm_float.hpp - AVX-512 matrix-matrix kernel for float weights (prefill).
//
// The same arrangement as the quantized kernel (avx512_gemm.hpp): tokens side by side in register
// lanes (Input's f32 column form), one weight broadcast against 16 tokens per FMA, a tile of
// kFloatRows rows by two groups of 16 tokens. F32 rows are read in place; BF16 and F16 rows are
// widened to f32 once per tile and reused for every token. All arithmetic is f32, so results stay
// within float rounding of an f32 reference (each output is one sequential sum over k).

#if defined(__AVX512F__)

#include <immintrin.h>



namespace qwen3::kernels::avx512 {

inline constexpr int kFloatRows = 4;

// Tokens are processed in slices of K (kSliceK elements) so the input's columns for every token of
// the chunk stay in L2 while all of a thread's rows pass over them; partial sums per (row, token)
// wait in a small buffer between slices (the sums continue exactly where they stopped).
inline constexpr int kSliceK = 512;

// Adds W[rows][k0, k0 + kc) . X[k0, k0 + kc) into the partial sums `partial` ([NG][kFloatRows][16])
// for NG column groups from `group`. Named accumulators rather than an array: GCC 12 keeps an array
// of vectors in memory across iterations here.
template <int NG, class Input>
inline void float_column_tile(const float* const* rows, const Input& in, int group, int k0, int kc, float* partial) {
    static_assert(kFloatRows == 4 && (NG == 1 || NG == 2));
    const float* x0 = in.float_columns(group) + std::size_t(k0) * 16;
    const float* x1 = in.float_columns(group + NG - 1) + std::size_t(k0) * 16;
    const float *w0 = rows[0], *w1 = rows[1], *w2 = rows[2], *w3 = rows[3];
    __m512 a00 = _mm512_loadu_ps(partial), a10 = _mm512_loadu_ps(partial + 16), a20 = _mm512_loadu_ps(partial + 32),
           a30 = _mm512_loadu_ps(partial + 48), a01 = a00, a11 = a00, a21 = a00, a31 = a00;
    if constexpr (NG == 2) {
        a01 = _mm512_loadu_ps(partial + 64), a11 = _mm512_loadu_ps(partial + 80), a21 = _mm512_loadu_ps(partial + 96),
        a31 = _mm512_loadu_ps(partial + 112);
    }
    for (int k = 0; k < kc; ++k) {
        const __m512 xv0 = _mm512_loadu_ps(x0 + std::size_t(k) * 16);
        const __m512 b0 = _mm512_set1_ps(w0[k]), b1 = _mm512_set1_ps(w1[k]), b2 = _mm512_set1_ps(w2[k]), b3 = _mm512_set1_ps(w3[k]);
        a00 = _mm512_fmadd_ps(b0, xv0, a00);
        a10 = _mm512_fmadd_ps(b1, xv0, a10);
        a20 = _mm512_fmadd_ps(b2, xv0, a20);
        a30 = _mm512_fmadd_ps(b3, xv0, a30);
        if constexpr (NG == 2) {
            const __m512 xv1 = _mm512_loadu_ps(x1 + std::size_t(k) * 16);
            a01 = _mm512_fmadd_ps(b0, xv1, a01);
            a11 = _mm512_fmadd_ps(b1, xv1, a11);
            a21 = _mm512_fmadd_ps(b2, xv1, a21);
            a31 = _mm512_fmadd_ps(b3, xv1, a31);
        }
    }
    _mm512_storeu_ps(partial, a00), _mm512_storeu_ps(partial + 16, a10), _mm512_storeu_ps(partial + 32, a20), _mm512_storeu_ps(partial + 48, a30);
    if constexpr (NG == 2)
        _mm512_storeu_ps(partial + 64, a01), _mm512_storeu_ps(partial + 80, a11), _mm512_storeu_ps(partial + 96, a21),
            _mm512_storeu_ps(partial + 112, a31);
}

// Rows per block: a block's rows are widened once (whole rows, read in order) and then stay in L2
// while the slices of the input pass over them.
inline constexpr int kBlockRows = 32;

// Rows [row_begin, row_end) of an F32, F16 or BF16 matrix times every token of `in` (f32 columns).
template <int K, class Input>
void matmul_float_columns(DType type, const std::byte* w, std::size_t stride, const Input& in, float* y,
                          std::size_t y_stride, int row_begin, int row_end) {
    constexpr int R = kFloatRows, B = kBlockRows;
    static_assert(B % R == 0);
    const int groups = (in.tokens() + 15) / 16;
    thread_local std::vector<float> partial;  // [tile][group][row in tile][16 lanes] of one block
    thread_local std::vector<float> widened;  // [B][K]
    partial.resize(std::size_t(B / R) * groups * R * 16);
    if (type != DType::f32) widened.resize(std::size_t(B) * K);
    for (int b0 = row_begin; b0 < row_end; b0 += B) {
        const int rows_in_block = std::min(B, row_end - b0);
        const float* block_rows[B];
        for (int i = 0; i < B; ++i) {
            const int r = b0 + std::min(i, rows_in_block - 1);  // a short block repeats its last row
            const std::byte* row = w + std::size_t(r) * stride;
            if (type == DType::f32) {
                block_rows[i] = reinterpret_cast<const float*>(row);
            } else if (i < rows_in_block) {
                float* out = widened.data() + std::size_t(i) * K;
                const auto* h = reinterpret_cast<const std::uint16_t*>(row);
                for (int k = 0; k < K; k += 16)
                    (type == DType::bf16 ? simd::load_bf16(h + k) : simd::load_f16(h + k)).store_unaligned(out + k);
                block_rows[i] = out;
            } else {
                block_rows[i] = block_rows[rows_in_block - 1];
            }
        }
        std::fill(partial.begin(), partial.end(), 0.f);
        const int tiles = (rows_in_block + R - 1) / R;
        for (int k0 = 0; k0 < K; k0 += kSliceK) {
            const int kc = std::min(kSliceK, K - k0);
            for (int tile = 0; tile < tiles; ++tile) {
                const float* rows[R];
                for (int i = 0; i < R; ++i) rows[i] = block_rows[tile * R + i] + k0;
                float* p = partial.data() + std::size_t(tile) * groups * R * 16;
                int g = 0;
                for (; g + 2 <= groups; g += 2) float_column_tile<2>(rows, in, g, k0, kc, p + std::size_t(g) * R * 16);
                if (g < groups) float_column_tile<1>(rows, in, g, k0, kc, p + std::size_t(g) * R * 16);
            }
        }
        for (int tile = 0; tile < tiles; ++tile)
            for (int g = 0; g < groups; ++g)
                for (int i = 0; i < R && tile * R + i < rows_in_block; ++i) {
                    const float* p = partial.data() + ((std::size_t(tile) * groups + g) * R + i) * 16;
                    const int lanes = std::min(16, in.tokens() - g * 16);
                    for (int l = 0; l < lanes; ++l) y[std::size_t(g * 16 + l) * y_stride + b0 + tile * R + i] = p[l];
                }
    }
}

}  // namespace qwen3::kernels::avx512

#endif
// ===== end of qwen3/kernels/arch/avx512_gemm_float.hpp =====
// ===== qwen3/kernels/input.hpp =====
// qwen3/kernels/input.hpp - the input of a projection, prepared once for the weights that read it.
//
// Several matrices read the same activations (q, k and v read the normed residual; gate and up read
// it too), and each weight type wants them in its own form: f32 as they are, a pair-split copy for
// BF16 weights, int8 blocks with scales for quantized weights. Input<K> computes each form on first
// request and keeps it until the next set(), so the work is done once per input, not per matrix.


// ===== qwen3/format/quant_blocks.hpp =====
#ifndef QWEN3_AMALGAMATED_QWEN3_FORMAT_QUANT_BLOCKS_HPP
#define QWEN3_AMALGAMATED_QWEN3_FORMAT_QUANT_BLOCKS_HPP
// qwen3/format/quant_blocks.hpp - the block layouts of ggml's quantized tensor types.
//
// A quantized row is a sequence of blocks; each block holds a fixed number of elements as small
// integers plus the scales that turn them back into floats. The layouts below are byte-for-byte
// those of the GGUF format (ggml's definitions), so a mapped GGUF tensor is an array of these structs.
// Scales are IEEE half floats stored as uint16 (see kernels/simd.hpp f16_to_f32).


namespace qwen3::quant {

inline constexpr int kBlock32 = 32;   // elements of a Q4_0 / Q5_0 / Q8_0 block
inline constexpr int kSuperBlock = 256;  // elements of a K-quant super-block

// x[i] = d * qs[i]
struct BlockQ8_0 {
    std::uint16_t d;
    std::int8_t qs[32];
};

// x[i] = d * ((qs[i % 16] >> (4 * (i / 16))) & 15) - 8): low nibbles hold elements 0..15, high 16..31
struct BlockQ4_0 {
    std::uint16_t d;
    std::uint8_t qs[16];
};

// x[i] = d * q[i] + m, q as in Q4_0 without the offset
struct BlockQ4_1 {
    std::uint16_t d;
    std::uint16_t m;
    std::uint8_t qs[16];
};

// x[i] = d * (q[i] - 16), q = 4 low bits from qs (as Q4_0) | bit i of qh (little-endian uint32) << 4
struct BlockQ5_0 {
    std::uint16_t d;
    std::uint8_t qh[4];
    std::uint8_t qs[16];
};

// x[i] = d * q[i] + m, q as in Q5_0 without the offset
struct BlockQ5_1 {
    std::uint16_t d;
    std::uint16_t m;
    std::uint8_t qh[4];
    std::uint8_t qs[16];
};

// 256 elements in 8 sub-blocks of 32, each with a 6-bit scale and a 6-bit min packed in `scales`:
// x = d * scale_j * q - dmin * min_j, q in [0, 15]; qs holds 4 chunks of 64 elements, each chunk's
// first 32 in the low nibbles and last 32 in the high nibbles.
struct BlockQ4_K {
    std::uint16_t d;
    std::uint16_t dmin;
    std::uint8_t scales[12];
    std::uint8_t qs[128];
};

// As Q4_K with a fifth bit per element in qh: bit (2 * chunk) of qh[l] for the low-nibble element
// l of a chunk, bit (2 * chunk + 1) for the high-nibble one.
struct BlockQ5_K {
    std::uint16_t d;
    std::uint16_t dmin;
    std::uint8_t scales[12];
    std::uint8_t qh[32];
    std::uint8_t qs[128];
};

// 256 elements in 16 groups of 16 with int8 scales: x = d * scales_j * (q - 32), q 6-bit: 4 low bits
// in ql, 2 high bits in qh (two chunks of 128 elements; see dequantize in quant.hpp).
struct BlockQ6_K {
    std::uint8_t ql[128];
    std::uint8_t qh[64];
    std::int8_t scales[16];
    std::uint16_t d;
};

// The activation format of K-quant dot products: a float scale, 256 int8 values and the sums of
// each group of 16 (used to apply K-quants' per-sub-block minimums without touching the values).
struct BlockQ8_K {
    float d;
    std::int8_t qs[256];
    std::int16_t bsums[16];
};

static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);
static_assert(alignof(BlockQ8_0) == 2 && alignof(BlockQ6_K) == 2, "blocks must pack without padding");

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block.
inline void scale_min_k4(int j, const std::uint8_t* q, std::uint8_t& scale, std::uint8_t& min) {
    if (j < 4) {
        scale = q[j] & 63;
        min = q[j + 4] & 63;
    } else {
        scale = std::uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        min = std::uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

}  // namespace qwen3::quant
#endif  // QWEN3_AMALGAMATED_QWEN3_FORMAT_QUANT_BLOCKS_HPP
// ===== end of qwen3/format/quant_blocks.hpp =====

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace qwen3::kernels {

// The activation forms a weight type reads.
enum class InputForm { f32, pairs, q8_32, q8_256, q8_columns, f32_columns, bf16_columns };

// Decode (one token) reads BF16 weights through the pair-split form; prefill reads f32 columns (or
// bf16 columns when bf16 products are allowed). Quantized weights read int8 rows in decode and
// int8 columns (tokens side by side) in prefill.
inline InputForm input_form(DType weights, int tokens, bool bf16_products = false) {
    const bool quantized = dtype_info(weights).block_elems > 1;
#if defined(__AVX512BF16__)
    if (weights == DType::bf16 && tokens > 1 && bf16_products) return InputForm::bf16_columns;
#endif
    (void)bf16_products;
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
    if (quantized && tokens > 1) return InputForm::q8_columns;
#endif
#if defined(__AVX512F__)
    if (!quantized && tokens > 1) return InputForm::f32_columns;
#endif
    (void)quantized;
    switch (weights) {
        case DType::bf16: return tokens == 1 ? InputForm::pairs : InputForm::f32;
        case DType::q8_0:
        case DType::q4_0:
        case DType::q4_1:
        case DType::q5_0:
        case DType::q5_1: return InputForm::q8_32;
        case DType::q4_k:
        case DType::q5_k:
        case DType::q6_k:
        case DType::q2_k:
        case DType::q3_k: return InputForm::q8_256;
        default: return InputForm::f32;
    }
}

// Up to `MaxTokens` rows of K activations.
template <int K, int MaxTokens>
class Input {
public:
    static_assert(K % 256 == 0 || K % 32 == 0, "inputs are a whole number of 32-element blocks");
    static constexpr int blocks32 = K / 32;
    static constexpr int blocks256 = K / 256;  // 0 when K is not a multiple of 256

    Input() : pairs_(std::size_t(K) * MaxTokens), q8_(std::size_t(K) * MaxTokens),
              scales32_(std::size_t(blocks32) * MaxTokens), sums32_(std::size_t(blocks32) * MaxTokens),
              scales256_(std::size_t(blocks256 ? blocks256 : 1) * MaxTokens), sums16_(std::size_t(K / 16) * MaxTokens),
              lane_scales_(std::size_t(K / 4) * MaxTokens), lane_sums_(std::size_t(K / 4) * MaxTokens) {}

    // Points at n rows of K floats (row-major) and forgets every prepared form.
    void set(const float* x, int n) {
        x_ = x;
        tokens_ = n;
        ready_ = 0;
    }
    const float* f32() const { return x_; }
    int tokens() const { return tokens_; }

    // Makes sure the form `weights` reads exists; call before reading it (not thread-safe; the
    // session calls it on one thread before handing the matrix work to the pool).
    // `parallel(n, fn)` runs fn(0) .. fn(n - 1), possibly on several threads (the session passes its
    // pool); the default runs them in order.
    void prepare(DType weights) {
        prepare(weights, [](int n, auto&& fn) {
            for (int i = 0; i < n; ++i) fn(i);
        });
    }
    template <class Parallel>
    void prepare(DType weights, Parallel&& parallel) {
        prepare_form(input_form(weights, tokens_, bf16_products_), parallel);
    }

    // Allows prefill to round this input to bf16 for BF16 weights (Precision::bf16_products).
    void allow_bf16_products(bool allow) { bf16_products_ = allow; }
    bool bf16_products() const { return bf16_products_; }

    template <class Parallel>
    void prepare_form(InputForm form, Parallel& parallel) {
        const unsigned bit = 1u << unsigned(form);
        if (ready_ & bit) return;
        if (form == InputForm::q8_columns) {
            prepare_form(InputForm::q8_32, parallel);  // the int8 rows, then side by side
            if (columns_.empty()) {
                columns_.resize(std::size_t(K) * kGroups * kColumnGroup);
                column_scales_.resize(std::size_t(blocks32) * kGroups * kColumnGroup);
                column_sums_.resize(std::size_t(blocks32) * kGroups * kColumnGroup);
            }
            parallel((tokens_ + kColumnGroup - 1) / kColumnGroup, [&](int g) { transpose_group(g); });
            ready_ |= bit;
            return;
        }
        if (form == InputForm::bf16_columns) {
            if (bf16_columns_.empty()) bf16_columns_.resize(std::size_t(K / 2) * kGroups * kColumnGroup);
            parallel((tokens_ + kColumnGroup - 1) / kColumnGroup, [&](int g) { transpose_group_bf16(g); });
            ready_ |= bit;
            return;
        }
        if (form == InputForm::f32_columns) {
            if (float_columns_.empty()) float_columns_.resize(std::size_t(K) * kGroups * kColumnGroup);
            parallel((tokens_ + kColumnGroup - 1) / kColumnGroup, [&](int g) { transpose_group_f32(g); });
            ready_ |= bit;
            return;
        }
        if (form != InputForm::f32)
            parallel(tokens_, [&](int t) {
                const float* x = x_ + std::size_t(t) * K;
                switch (form) {
                    case InputForm::pairs: split_pairs(x, pairs_.data() + std::size_t(t) * K); break;
                    case InputForm::q8_32: quantize_32(x, t); break;
                    case InputForm::q8_256: quantize_256(x, t); break;
                    default: break;
                }
            });
        ready_ |= bit;
    }

    // BF16 form: per 32-element chunk, the 16 even-indexed values then the 16 odd-indexed ones, so a
    // kernel can widen 32 bf16 weights with one shift and one mask (see linear.hpp).
    const float* pairs(int t) const { return pairs_.data() + std::size_t(t) * K; }
    // Q8 forms: int8 values of token t, and per-block scales (x ~ scale * q) and sums of q.
    const std::int8_t* q8(int t) const { return q8_.data() + std::size_t(t) * K; }
    const float* scales32(int t) const { return scales32_.data() + std::size_t(t) * blocks32; }
    // Per 4-element lane of a vpdpbusd result (8 lanes per block of 32): the block's scale, and the
    // block's scale * (sum of its int8 values) / 8, so that 8 lanes add up to the block's value.
    const float* lane_scales32(int t) const { return lane_scales_.data() + std::size_t(t) * (K / 4); }
    const float* lane_sums32(int t) const { return lane_sums_.data() + std::size_t(t) * (K / 4); }
    const std::int32_t* sums32(int t) const { return sums32_.data() + std::size_t(t) * blocks32; }
    const float* scales256(int t) const { return scales256_.data() + std::size_t(t) * blocks256; }
    const std::int32_t* sums16(int t) const { return sums16_.data() + std::size_t(t) * (K / 16); }

    // Column form, for prefill: tokens in groups of kColumnGroup side by side. For group g, four
    // consecutive int8 values of each token, offset by +128 to unsigned, form one 32-bit lane, so
    // a 64-byte row holds elements [4j, 4j + 4) of all 16 tokens: columns(g) + 64 * j. Per block of
    // 32 and token: the scale, and scale * (sum of the int8 values). Missing tokens of the last
    // group are zeros with zero scales.
    static constexpr int kColumnGroup = 16;
    const std::uint8_t* columns(int g) const { return columns_.data() + std::size_t(g) * K * kColumnGroup; }
    const float* column_scales(int g) const { return column_scales_.data() + std::size_t(g) * blocks32 * kColumnGroup; }
    const float* column_sums(int g) const { return column_sums_.data() + std::size_t(g) * blocks32 * kColumnGroup; }

    // f32 column form: element k of the 16 tokens of group g at float_columns(g) + 16 * k.
    const float* float_columns(int g) const { return float_columns_.data() + std::size_t(g) * K * kColumnGroup; }

    // bf16 column form: elements (2p, 2p + 1) of the 16 tokens of group g, one uint32 per token, at
    // bf16_columns(g) + 16 * p.
    const std::uint32_t* bf16_columns(int g) const { return bf16_columns_.data() + std::size_t(g) * (K / 2) * kColumnGroup; }

private:
    void transpose_group_bf16(int g) {
        std::uint32_t* out = bf16_columns_.data() + std::size_t(g) * (K / 2) * kColumnGroup;
        for (int lane = 0; lane < kColumnGroup; ++lane) {
            const int t = g * kColumnGroup + lane;
            const float* x = t < tokens_ ? x_ + std::size_t(t) * K : nullptr;
            for (int p = 0; p < K / 2; ++p) {
                const std::uint32_t lo = x ? simd::f32_to_bf16(x[2 * p]) : 0, hi = x ? simd::f32_to_bf16(x[2 * p + 1]) : 0;
                out[std::size_t(p) * kColumnGroup + lane] = lo | (hi << 16);
            }
        }
    }

    void transpose_group_f32(int g) {
        float* out = float_columns_.data() + std::size_t(g) * K * kColumnGroup;
        for (int lane = 0; lane < kColumnGroup; ++lane) {
            const int t = g * kColumnGroup + lane;
            const float* x = t < tokens_ ? x_ + std::size_t(t) * K : nullptr;
            for (int k = 0; k < K; ++k) out[std::size_t(k) * kColumnGroup + lane] = x ? x[k] : 0.f;
        }
    }

    void transpose_group(int g) {
        std::uint8_t* out = columns_.data() + std::size_t(g) * K * kColumnGroup;
        float* scales = column_scales_.data() + std::size_t(g) * blocks32 * kColumnGroup;
        float* sums = column_sums_.data() + std::size_t(g) * blocks32 * kColumnGroup;
        for (int lane = 0; lane < kColumnGroup; ++lane) {
            const int t = g * kColumnGroup + lane;
            const bool present = t < tokens_;
            const std::int8_t* q = present ? q8(t) : nullptr;
            for (int k = 0; k < K; ++k)
                out[std::size_t(k / 4) * 64 + lane * 4 + k % 4] = std::uint8_t((present ? q[k] : 0) + 128);
            for (int b = 0; b < blocks32; ++b) {
                scales[b * kColumnGroup + lane] = present ? scales32(t)[b] : 0.f;
                sums[b * kColumnGroup + lane] = present ? scales32(t)[b] * float(sums32(t)[b]) : 0.f;
            }
        }
    }

    static constexpr int kGroups = (MaxTokens + kColumnGroup - 1) / kColumnGroup;

    static void split_pairs(const float* x, float* out) {
        for (int c = 0; c < K; c += 32)
            for (int j = 0; j < 16; ++j) {
                out[c + j] = x[c + 2 * j];
                out[c + 16 + j] = x[c + 2 * j + 1];
            }
    }

    static float abs_max(const float* x, int n) {
#if defined(__AVX512F__)
        __m512 m = _mm512_setzero_ps();
        for (int i = 0; i < n; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
        return _mm512_reduce_max_ps(m);
#else
        float m = 0;
        for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
        return m;
#endif
    }

    // q[i] = round(x[i] * inv) (to nearest even) for 16 values; returns their sum.
    static std::int32_t quantize_16(const float* x, float inv, std::int8_t* q) {
#if defined(__AVX512F__)
        const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), _mm512_set1_ps(inv)));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtsepi32_epi8(v));
        return _mm512_reduce_add_epi32(v);
#else
        std::int32_t sum = 0;
        for (int i = 0; i < 16; ++i) sum += q[i] = std::int8_t(std::nearbyint(x[i] * inv));
        return sum;
#endif
    }

    // Blocks of 32 with scale = max|x| / 127.
    void quantize_32(const float* x, int t) {
        std::int8_t* q = q8_.data() + std::size_t(t) * K;
        float* d = scales32_.data() + std::size_t(t) * blocks32;
        std::int32_t* s = sums32_.data() + std::size_t(t) * blocks32;
        for (int b = 0; b < blocks32; ++b) {
            const float scale = abs_max(x + b * 32, 32) / 127.f, inv = scale ? 1.f / scale : 0.f;
            d[b] = scale;
            s[b] = quantize_16(x + b * 32, inv, q + b * 32) + quantize_16(x + b * 32 + 16, inv, q + b * 32 + 16);
            float* ls = lane_scales_.data() + std::size_t(t) * (K / 4) + b * 8;
            float* lsum = lane_sums_.data() + std::size_t(t) * (K / 4) + b * 8;
            for (int i = 0; i < 8; ++i) {
                ls[i] = scale;
                lsum[i] = scale * float(s[b]) / 8.f;
            }
        }
    }

    // Blocks of 256 with one scale, plus the sums of each 16 (K-quants apply their minimums per
    // sub-block through these sums).
    void quantize_256(const float* x, int t) {
        std::int8_t* q = q8_.data() + std::size_t(t) * K;
        float* d = scales256_.data() + std::size_t(t) * blocks256;
        std::int32_t* s = sums16_.data() + std::size_t(t) * (K / 16);
        for (int b = 0; b < blocks256; ++b) {
            const float scale = abs_max(x + b * 256, 256) / 127.f, inv = scale ? 1.f / scale : 0.f;
            for (int g = 0; g < 16; ++g) s[b * 16 + g] = quantize_16(x + b * 256 + g * 16, inv, q + b * 256 + g * 16);
            d[b] = scale;
        }
    }

    const float* x_ = nullptr;
    int tokens_ = 0;
    unsigned ready_ = 0;
    std::vector<float> pairs_;
    std::vector<std::int8_t> q8_;
    std::vector<float> scales32_;
    std::vector<std::int32_t> sums32_;
    std::vector<float> scales256_;
    std::vector<std::int32_t> sums16_;
    std::vector<float> lane_scales_;
    std::vector<float> lane_sums_;
    std::vector<std::uint8_t> columns_;  // allocated on first use (prefill of quantized weights)
    std::vector<float> column_scales_;
    std::vector<float> column_sums_;
    std::vector<float> float_columns_;
    std::vector<std::uint32_t> bf16_columns_;
    bool bf16_products_ = false;
};

}  // namespace qwen3::kernels
// ===== end of qwen3/kernels/input.hpp =====

namespace qwen3 {

// A weight matrix with compile-time dimensions and a runtime element type.
template <int Rows, int Cols>
struct Matrix {
    static constexpr int rows = Rows;
    static constexpr int cols = Cols;
    DType type = DType::f32;
    const std::byte* data = nullptr;

    std::size_t row_stride() const { return std::size_t(row_bytes(type, Cols)); }
    const std::byte* row(int r) const { return data + std::size_t(r) * row_stride(); }
};

namespace kernels {

// Loads `lanes` consecutive elements of a float-typed weight row, widened to f32.
template <DType T>
inline simd::fbatch load_weights(const std::byte* row, int k) {
    if constexpr (T == DType::f32) return simd::load_f32(reinterpret_cast<const float*>(row) + k);
    else if constexpr (T == DType::bf16) return simd::load_bf16(reinterpret_cast<const std::uint16_t*>(row) + k);
    else return simd::load_f16(reinterpret_cast<const std::uint16_t*>(row) + k);
}

template <DType T>
inline float weight_scalar(const std::byte* row, int k) {
    if constexpr (T == DType::f32) return reinterpret_cast<const float*>(row)[k];
    else if constexpr (T == DType::bf16) return simd::bf16_to_f32(reinterpret_cast<const std::uint16_t*>(row)[k]);
    else return simd::f16_to_f32(reinterpret_cast<const std::uint16_t*>(row)[k]);
}

// Rows processed together by the matvec kernel: x is loaded once per group.
inline constexpr int kMatvecRows = 4;

template <int K, DType T>
inline void matvec_float(const std::byte* w, std::size_t stride, const float* x, float* y, int row_begin, int row_end) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes);
    static_assert(K % L == 0, "the inner dimension must be a multiple of the SIMD width");
    int r = row_begin;
    for (; r + kMatvecRows <= row_end; r += kMatvecRows) {
        const std::byte* w0 = w + std::size_t(r) * stride;
        const std::byte* w1 = w0 + stride;
        const std::byte* w2 = w1 + stride;
        const std::byte* w3 = w2 + stride;
        fbatch a0(0.f), a1(0.f), a2(0.f), a3(0.f);
        for (int k = 0; k < K; k += L) {
            fbatch xv = simd::load_f32(x + k);
            a0 = simd::fma(load_weights<T>(w0, k), xv, a0);
            a1 = simd::fma(load_weights<T>(w1, k), xv, a1);
            a2 = simd::fma(load_weights<T>(w2, k), xv, a2);
            a3 = simd::fma(load_weights<T>(w3, k), xv, a3);
        }
        y[r] = simd::sum(a0);
        y[r + 1] = simd::sum(a1);
        y[r + 2] = simd::sum(a2);
        y[r + 3] = simd::sum(a3);
    }
    for (; r < row_end; ++r) {
        const std::byte* w0 = w + std::size_t(r) * stride;
        fbatch a0(0.f);
        for (int k = 0; k < K; k += L) a0 = simd::fma(load_weights<T>(w0, k), simd::load_f32(x + k), a0);
        y[r] = simd::sum(a0);
    }
}

// Tile of the matmul micro-kernel: kTileRows weight rows x kTileTokens tokens of accumulators.
inline constexpr int kTileRows = 4;
inline constexpr int kTileTokens = simd::is_avx512 ? 6 : 2;
// Tokens per cache block: a block of X (tokens x Cols f32) should stay in L2 while weight rows stream.
inline constexpr int kTokenBlock = 48;

// Y[t][r] = dot(X[t], W[r]) for t in [0, tokens), r in [row_begin, row_end); X rows are K floats
// apart, Y rows are y_stride floats apart.
template <int K, DType T>
inline void matmul_float(const std::byte* w, std::size_t stride, const float* x, int tokens, float* y,
                         std::size_t y_stride, int row_begin, int row_end) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes);
    constexpr int R = kTileRows, TT = kTileTokens;
    for (int t0 = 0; t0 < tokens; t0 += kTokenBlock) {
        const int t_end = std::min(tokens, t0 + kTokenBlock);
        int r = row_begin;
        for (; r + R <= row_end; r += R) {
            const std::byte* wr[R];
            for (int i = 0; i < R; ++i) wr[i] = w + std::size_t(r + i) * stride;
            int t = t0;
            for (; t + TT <= t_end; t += TT) {
                fbatch acc[R][TT];
                for (int i = 0; i < R; ++i)
                    for (int j = 0; j < TT; ++j) acc[i][j] = fbatch(0.f);
                for (int k = 0; k < K; k += L) {
                    fbatch wv[R];
                    for (int i = 0; i < R; ++i) wv[i] = load_weights<T>(wr[i], k);
                    for (int j = 0; j < TT; ++j) {
                        fbatch xv = simd::load_f32(x + std::size_t(t + j) * K + k);
                        for (int i = 0; i < R; ++i) acc[i][j] = simd::fma(wv[i], xv, acc[i][j]);
                    }
                }
                for (int i = 0; i < R; ++i)
                    for (int j = 0; j < TT; ++j) y[std::size_t(t + j) * y_stride + r + i] = simd::sum(acc[i][j]);
            }
            for (; t < t_end; ++t) {
                fbatch acc[R];
                for (int i = 0; i < R; ++i) acc[i] = fbatch(0.f);
                for (int k = 0; k < K; k += L) {
                    fbatch xv = simd::load_f32(x + std::size_t(t) * K + k);
                    for (int i = 0; i < R; ++i) acc[i] = simd::fma(load_weights<T>(wr[i], k), xv, acc[i]);
                }
                for (int i = 0; i < R; ++i) y[std::size_t(t) * y_stride + r + i] = simd::sum(acc[i]);
            }
        }
        for (; r < row_end; ++r)  // leftover rows, one token at a time
            for (int t = t0; t < t_end; ++t)
                matvec_float<K, T>(w, stride, x + std::size_t(t) * K, y + std::size_t(t) * y_stride, r, r + 1);
    }
}

[[noreturn]] inline void unsupported_weight_type(DType t) {
    detail::fail(ErrorCode::unsupported, "no matrix kernel for weight type ", dtype_name(t));
}

}  // namespace kernels

// True when matvec/matmul have a kernel for weights of type t with rows of Cols elements.
template <int Cols>
bool supports_matrix_type(DType t) {
    if (t == DType::f32 || t == DType::bf16 || t == DType::f16) return true;
#if defined(QWEN3_HAVE_AVX512_VNNI)
    return kernels::avx512::has_quant_kernel<Cols>(t);
#else
    return false;
#endif
}

// y[r] = dot(W[r], x) for r in [row_begin, row_end), x the single token of `in` (prepared for w.type).
template <int Rows, int Cols, int MaxTokens>
void matvec(const Matrix<Rows, Cols>& w, const kernels::Input<Cols, MaxTokens>& in, float* y, int row_begin, int row_end) {
    const std::size_t stride = w.row_stride();
    switch (w.type) {
#if defined(__AVX512F__)
        case DType::f32: return kernels::avx512::matvec_f32_f16<Cols, false>(w.data, stride, in.f32(), y, row_begin, row_end);
        case DType::f16: return kernels::avx512::matvec_f32_f16<Cols, true>(w.data, stride, in.f32(), y, row_begin, row_end);
        case DType::bf16: return kernels::avx512::matvec_bf16<Cols>(w.data, stride, in.pairs(0), y, row_begin, row_end);
#else
        case DType::f32: return kernels::matvec_float<Cols, DType::f32>(w.data, stride, in.f32(), y, row_begin, row_end);
        case DType::f16: return kernels::matvec_float<Cols, DType::f16>(w.data, stride, in.f32(), y, row_begin, row_end);
        case DType::bf16: return kernels::matvec_float<Cols, DType::bf16>(w.data, stride, in.f32(), y, row_begin, row_end);
#endif
        default:
#if defined(QWEN3_HAVE_AVX512_VNNI)
            if (kernels::avx512::has_quant_kernel<Cols>(w.type))
                return kernels::avx512::matvec_quant<Cols>(w.type, w.data, stride, in, 0, y, row_begin, row_end);
#endif
            kernels::unsupported_weight_type(w.type);
    }
}

// Y[t][r] = dot(X[t], W[r]) for the tokens of `in` and r in [row_begin, row_end); Y rows are
// y_stride floats apart.
template <int Rows, int Cols, int MaxTokens>
void matmul(const Matrix<Rows, Cols>& w, const kernels::Input<Cols, MaxTokens>& in, float* y, std::size_t y_stride,
            int row_begin, int row_end) {
    const float* x = in.f32();
    const int tokens = in.tokens();
#if defined(QWEN3_HAVE_AVX512_BF16)
    if (w.type == DType::bf16 && in.bf16_products())
        return kernels::avx512::matmul_bf16_products<Cols>(w.data, w.row_stride(), in, y, y_stride, row_begin, row_end);
#endif
#if defined(__AVX512F__)
    if (w.type == DType::f32 || w.type == DType::bf16 || w.type == DType::f16)
        return kernels::avx512::matmul_float_columns<Cols>(w.type, w.data, w.row_stride(), in, y, y_stride, row_begin, row_end);
#endif
    switch (w.type) {
        case DType::f32:
            return kernels::matmul_float<Cols, DType::f32>(w.data, w.row_stride(), x, tokens, y, y_stride, row_begin, row_end);
        case DType::bf16:
            return kernels::matmul_float<Cols, DType::bf16>(w.data, w.row_stride(), x, tokens, y, y_stride, row_begin, row_end);
        case DType::f16:
            return kernels::matmul_float<Cols, DType::f16>(w.data, w.row_stride(), x, tokens, y, y_stride, row_begin, row_end);
        default:
#if defined(QWEN3_HAVE_AVX512_VNNI)
            if (kernels::avx512::has_quant_kernel<Cols>(w.type))
                return kernels::avx512::matmul_quant<Cols>(w.type, w.data, w.row_stride(), in, y, y_stride, row_begin, row_end);
#endif
            kernels::unsupported_weight_type(w.type);
    }
}

// Row r of W widened to f32 (the embedding lookup).
template <int Rows, int Cols>
void dequantize_row(const Matrix<Rows, Cols>& w, int r, float* out) {
    const std::byte* row = w.row(r);
    switch (w.type) {
        case DType::f32:
            for (int k = 0; k < Cols; ++k) out[k] = kernels::weight_scalar<DType::f32>(row, k);
            return;
        case DType::bf16:
            for (int k = 0; k < Cols; ++k) out[k] = kernels::weight_scalar<DType::bf16>(row, k);
            return;
        case DType::f16:
            for (int k = 0; k < Cols; ++k) out[k] = kernels::weight_scalar<DType::f16>(row, k);
            return;
        default: kernels::unsupported_weight_type(w.type);
    }
}

}  // namespace qwen3
// ===== end of qwen3/kernels/linear.hpp =====
// ===== qwen3/kernels/norm.hpp =====
// qwen3/kernels/norm.hpp - RMSNorm.



namespace qwen3::kernels {

// out = x / sqrt(mean(x^2) + eps) * weight, over N elements (out may alias x). As in the Qwen3
// reference, x is scaled first and the weight applied to the scaled value.
template <int N>
inline void rms_norm(const float* x, const float* weight, float eps, float* out) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes);
    static_assert(N % L == 0, "RMSNorm width must be a multiple of the SIMD width");
    fbatch s0(0.f), s1(0.f);
    int i = 0;
    for (; i + 2 * L <= N; i += 2 * L) {
        fbatch a = simd::load_f32(x + i), b = simd::load_f32(x + i + L);
        s0 = simd::fma(a, a, s0);
        s1 = simd::fma(b, b, s1);
    }
    for (; i < N; i += L) {
        fbatch a = simd::load_f32(x + i);
        s0 = simd::fma(a, a, s0);
    }
    const float mean = simd::sum(s0 + s1) / float(N);
    const fbatch scale(1.0f / std::sqrt(mean + eps));
    for (int j = 0; j < N; j += L) (simd::load_f32(x + j) * scale * simd::load_f32(weight + j)).store_unaligned(out + j);
}

}  // namespace qwen3::kernels
// ===== end of qwen3/kernels/norm.hpp =====
// ===== qwen3/kernels/rope.hpp =====
// qwen3/kernels/rope.hpp - rotary position embedding, NeoX pairing (element i with i + head_dim/2).



namespace qwen3::kernels {

// Frequencies of one model's RoPE, from the file's theta and scaling (none, linear or YaRN as
// Hugging Face computes them). Angles are formed in double precision and rounded once to float.
template <int HeadDim>
class Rope {
public:
    static constexpr int half = HeadDim / 2;

    Rope() = default;
    Rope(double theta, const RopeScaling& scaling) {
        for (int i = 0; i < half; ++i) inv_freq_[i] = std::pow(theta, -2.0 * i / HeadDim);
        if (scaling.kind == RopeScaling::Kind::linear) {
            for (double& f : inv_freq_) f /= scaling.factor;
        } else if (scaling.kind == RopeScaling::Kind::yarn && scaling.factor > 1.0) {
            apply_yarn(theta, scaling);
        }
    }

    // cos and sin of every pair's angle at position `pos` (arrays of HeadDim/2), scaled by YaRN's
    // attention factor (1 without YaRN).
    void angles(long pos, float* cos_out, float* sin_out) const {
        for (int i = 0; i < half; ++i) {
            const double a = double(pos) * inv_freq_[i];
            cos_out[i] = float(std::cos(a) * attention_factor_);
            sin_out[i] = float(std::sin(a) * attention_factor_);
        }
    }

    double inv_freq(int i) const { return inv_freq_[i]; }
    double attention_factor() const { return attention_factor_; }

private:
    void apply_yarn(double theta, const RopeScaling& s) {
        const double dim = HeadDim;
        const double original = double(s.original_context);
        auto correction_dim = [&](double rotations) {
            return dim * std::log(original / (rotations * 2 * M_PI)) / (2 * std::log(theta));
        };
        double low = std::max(std::floor(correction_dim(s.beta_fast)), 0.0);
        double high = std::min(std::ceil(correction_dim(s.beta_slow)), dim - 1);
        if (low == high) high += 0.001;
        for (int i = 0; i < half; ++i) {
            const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
            const double extrapolation = 1.0 - ramp;  // share of the unscaled frequency
            const double extrapolated = inv_freq_[i], interpolated = inv_freq_[i] / s.factor;
            inv_freq_[i] = interpolated * (1 - extrapolation) + extrapolated * extrapolation;
        }
        attention_factor_ = s.attention_factor > 0 ? s.attention_factor : 0.1 * std::log(s.factor) + 1.0;
    }

    double inv_freq_[half] = {};
    double attention_factor_ = 1.0;
};

// Rotates one head vector in place.
template <int HeadDim>
inline void apply_rope(float* v, const float* cos, const float* sin) {
    constexpr int half = HeadDim / 2;
    for (int i = 0; i < half; ++i) {
        const float x0 = v[i], x1 = v[i + half];
        v[i] = x0 * cos[i] - x1 * sin[i];
        v[i + half] = x0 * sin[i] + x1 * cos[i];
    }
}

}  // namespace qwen3::kernels
// ===== end of qwen3/kernels/rope.hpp =====
// ===== qwen3/thread_pool.hpp =====
// qwen3/thread_pool.hpp - a small pool for the matrix work of one forward pass.
//
// A forward pass hands the pool hundreds of short jobs per token (one per projection), so dispatch
// must cost microseconds: workers spin briefly on a generation counter before they sleep, the
// calling thread works too, and a job is a function pointer plus a context pointer (no allocation).
// Work is split by index, and every index is computed the same way whichever thread runs it, so
// results do not depend on the number of threads.

#include <atomic>
#include <thread>


#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace qwen3 {

// The default worker count: $QWEN3_THREADS when set, otherwise QWEN3_DEFAULT_THREADS when defined
// at compile time, otherwise the machine's hardware threads.
inline int default_thread_count() {
    if (const char* env = std::getenv("QWEN3_THREADS")) {
        int n = std::atoi(env);
        if (n > 0) return std::min(n, 1024);
    }
#ifdef QWEN3_DEFAULT_THREADS
    return QWEN3_DEFAULT_THREADS;
#else
    return std::max(1, int(std::thread::hardware_concurrency()));
#endif
}

class ThreadPool {
public:
    // `threads` counts the calling thread: ThreadPool(1) runs everything on the caller.
    // Throws Error(invalid_argument) for threads < 1.
    explicit ThreadPool(int threads = default_thread_count()) {
        if (threads < 1) detail::fail(ErrorCode::invalid_argument, "ThreadPool: thread count must be at least 1, got ", threads);
        workers_.reserve(std::size_t(threads - 1));
        for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
    }
    ~ThreadPool() {
        stop_.store(true, std::memory_order_relaxed);
        generation_.fetch_add(1, std::memory_order_release);
        generation_.notify_all();
        for (std::thread& t : workers_) t.join();
    }
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return int(workers_.size()) + 1; }

    // Calls fn(i) once for every i in [0, tasks), spread over the pool and the caller; returns when
    // all calls have returned. Not reentrant: fn must not call run() on the same pool.
    template <class Fn>
    void run(int tasks, Fn&& fn) {
        if (tasks <= 0) return;
        if (workers_.empty() || tasks == 1) {
            for (int i = 0; i < tasks; ++i) fn(i);
            return;
        }
        using F = std::remove_reference_t<Fn>;
        job_ = [](void* ctx, int i) { (*static_cast<F*>(ctx))(i); };
        context_ = const_cast<void*>(static_cast<const void*>(&fn));
        tasks_ = tasks;
        next_.store(0, std::memory_order_relaxed);
        checked_out_.store(0, std::memory_order_relaxed);
        generation_.fetch_add(1, std::memory_order_release);
        generation_.notify_all();
        work();
        // wait until every worker has left this job, so none can touch the next one's state
        const int workers = int(workers_.size());
        int spin = 0;
        for (int out; (out = checked_out_.load(std::memory_order_acquire)) != workers;) {
            if (++spin < kSpinPauses) pause();
            else checked_out_.wait(out, std::memory_order_acquire);  // a busy machine: sleep until notified
        }
    }

    // Splits [0, n) into one contiguous range per thread, each a multiple of `align` long (the last
    // takes the rest), and calls fn(begin, end) for each non-empty range.
    template <class Fn>
    void for_ranges(int n, int align, Fn&& fn) {
        const int parts = size();
        const int units = (n + align - 1) / align;
        run(std::min(parts, units), [&](int part) {
            const int per = units / std::min(parts, units), extra = units % std::min(parts, units);
            const int first = part * per + std::min(part, extra);
            const int count = per + (part < extra ? 1 : 0);
            const int begin = first * align, end = std::min(n, (first + count) * align);
            if (begin < end) fn(begin, end);
        });
    }

private:
    static void pause() {
#if defined(__x86_64__) || defined(_M_X64)
        _mm_pause();
#else
        std::this_thread::yield();
#endif
    }



    void work() {
        for (;;) {
            int i = next_.fetch_add(1, std::memory_order_relaxed);
            if (i >= tasks_) break;
            job_(context_, i);
        }
    }

    void worker_loop() {
        std::uint64_t seen = 0;  // not a load: a job posted before this thread started must still run
        for (;;) {
            // Spin a little (jobs arrive microseconds apart during a forward pass), then sleep.
            std::uint64_t now = seen;
            for (int spin = 0; spin < kSpinPauses; ++spin) {
                now = generation_.load(std::memory_order_acquire);
                if (now != seen) break;
                pause();
            }
            while (now == seen) {
                generation_.wait(seen, std::memory_order_acquire);
                now = generation_.load(std::memory_order_acquire);
            }
            seen = now;
            if (stop_.load(std::memory_order_relaxed)) return;
            work();
            checked_out_.fetch_add(1, std::memory_order_release);
            checked_out_.notify_one();
        }
    }

    // Spin about 50 microseconds (2000 pause instructions of ~25 ns) before sleeping: long enough to
    // cover the gaps between the jobs of a forward pass, short enough that on a busy machine, where
    // two of the pool's threads may share a core, a waiting thread soon gives the core back.
    static constexpr int kSpinPauses = 2000;

    std::vector<std::thread> workers_;
    std::atomic<std::uint64_t> generation_{0};
    std::atomic<int> next_{0};
    std::atomic<int> checked_out_{0};
    std::atomic<bool> stop_{false};
    void (*job_)(void*, int) = nullptr;
    void* context_ = nullptr;
    int tasks_ = 0;
};

}  // namespace qwen3
// ===== end of qwen3/thread_pool.hpp =====
// ===== qwen3/weights.hpp =====
// qwen3/weights.hpp - a checkpoint's tensors bound to a compiled configuration.
//
// Binding checks everything the forward pass relies on: the file's hyperparameters against the
// configuration, and every tensor's presence, shape and element type. A mismatch is an Error that
// names the tensor, the expected and found shapes, and which compiled variant would fit the file.
// Matrices stay in the mapped file (zero copy); the small 1-D norm weights are widened to f32.



namespace qwen3 {

namespace detail {

inline std::string describe(const ConfigDims& d) {
    return "hidden " + std::to_string(d.hidden) + ", layers " + std::to_string(d.layers) + ", heads " +
           std::to_string(d.heads) + "/" + std::to_string(d.kv_heads) + ", head_dim " + std::to_string(d.head_dim) +
           ", ffn " + std::to_string(d.ffn) + ", vocab " + std::to_string(d.vocab) +
           (d.tied_embeddings ? ", tied embeddings" : ", untied embeddings");
}

inline ConfigDims dims_of_file(const ModelParams& p) {
    auto narrow = [](std::uint64_t v) { return v > 1u << 30 ? -1 : int(v); };
    return {p.name, narrow(p.hidden), narrow(p.layers), narrow(p.heads), narrow(p.kv_heads),
            narrow(p.head_dim), narrow(p.ffn), narrow(p.vocab), p.tied_embeddings, 0};
}

// "the file matches compiled variant Qwen3-0.6B" or a hint to define one.
inline std::string variant_hint(const ModelParams& p) {
    const ConfigDims file = dims_of_file(p);
    constexpr auto table = dims_of_list(NamedVariants{});
    for (const ConfigDims& d : table.items)
        if (same_shape(d, file)) return "the file matches the named variant " + std::string(d.name);
    return "no named variant matches; define one: qwen3::Config<" + std::to_string(file.hidden) + ", " +
           std::to_string(file.layers) + ", " + std::to_string(file.heads) + ", " + std::to_string(file.kv_heads) +
           ", " + std::to_string(file.head_dim) + ", " + std::to_string(file.ffn) + ", " + std::to_string(file.vocab) +
           ", " + (file.tied_embeddings ? "true" : "false") + ">";
}

}  // namespace detail

// Throws Error(config_mismatch) when the file's hyperparameters differ from Cfg's, listing both and
// naming the variant that would fit; Error(format) for values no model can have (eps <= 0, ...).
template <class Cfg>
void check_params(const Checkpoint& ckpt) {
    const ModelParams& p = ckpt.params();
    const ConfigDims want = dims_of<Cfg>(), have = detail::dims_of_file(p);
    if (!same_shape(want, have))
        detail::fail(ErrorCode::config_mismatch, ckpt.path(), ": the model does not fit the compiled variant ", Cfg::name,
                     ".\n  file:     ", detail::describe(have), "\n  compiled: ", detail::describe(want), "\n  ",
                     detail::variant_hint(p));
    if (!(p.rms_norm_eps > 0 && p.rms_norm_eps < 1))
        detail::fail(ErrorCode::format, ckpt.path(), ": RMSNorm epsilon ", p.rms_norm_eps, " is outside (0, 1)");
    if (!(p.rope_theta > 1 && std::isfinite(p.rope_theta)))
        detail::fail(ErrorCode::format, ckpt.path(), ": RoPE theta ", p.rope_theta, " must be a finite number above 1");
    if (p.rope_scaling.kind != RopeScaling::Kind::none &&
        !(p.rope_scaling.factor >= 1 && std::isfinite(p.rope_scaling.factor) && p.rope_scaling.original_context > 0))
        detail::fail(ErrorCode::format, ckpt.path(), ": RoPE scaling needs a finite factor >= 1 and an original context");
}

template <class Cfg>
struct LayerWeights {
    const float* attn_norm = nullptr;  // [hidden]
    Matrix<Cfg::q_dim, Cfg::hidden> attn_q;
    Matrix<Cfg::kv_dim, Cfg::hidden> attn_k;
    Matrix<Cfg::kv_dim, Cfg::hidden> attn_v;
    Matrix<Cfg::hidden, Cfg::q_dim> attn_output;
    const float* attn_q_norm = nullptr;  // [head_dim], shared by all query heads
    const float* attn_k_norm = nullptr;  // [head_dim], shared by all KV heads
    const float* ffn_norm = nullptr;     // [hidden]
    Matrix<Cfg::ffn, Cfg::hidden> ffn_gate;
    Matrix<Cfg::ffn, Cfg::hidden> ffn_up;
    Matrix<Cfg::hidden, Cfg::ffn> ffn_down;
};

template <class Cfg>
struct Weights {
    Matrix<Cfg::vocab, Cfg::hidden> token_embd;
    std::array<LayerWeights<Cfg>, Cfg::layers> layers;
    const float* output_norm = nullptr;      // [hidden]
    Matrix<Cfg::vocab, Cfg::hidden> output;  // the embedding itself when tied
    std::vector<float> norm_storage;         // f32 copies of every norm weight

    // Binds `ckpt` (which must outlive the Weights). Throws Error(config_mismatch), Error(missing_tensor),
    // Error(shape_mismatch) or Error(unsupported) naming the first problem found.
    static Weights bind(const Checkpoint& ckpt) {
        check_params<Cfg>(ckpt);
        Weights w;
        constexpr std::size_t norm_floats =
            std::size_t(Cfg::layers) * (2 * Cfg::hidden + 2 * Cfg::head_dim) + Cfg::hidden;
        w.norm_storage.resize(norm_floats);
        std::size_t used = 0;
        auto norm = [&](const std::string& name, int n) {
            const TensorView& t = require(ckpt, name, make_shape(std::uint64_t(n)));
            float* dst = w.norm_storage.data() + used;
            used += std::size_t(n);
            for (int i = 0; i < n; ++i) {
                switch (t.type) {
                    case DType::f32: dst[i] = reinterpret_cast<const float*>(t.data)[i]; break;
                    case DType::bf16: dst[i] = simd::bf16_to_f32(reinterpret_cast<const std::uint16_t*>(t.data)[i]); break;
                    case DType::f16: dst[i] = simd::f16_to_f32(reinterpret_cast<const std::uint16_t*>(t.data)[i]); break;
                    default:
                        detail::fail(ErrorCode::unsupported, ckpt.path(), ": norm weight ", name, " has type ",
                                     dtype_name(t.type), "; norm weights must be F32, F16 or BF16");
                }
            }
            return static_cast<const float*>(dst);
        };
        w.token_embd = matrix<Cfg::vocab, Cfg::hidden>(ckpt, "token_embd.weight");
        for (int l = 0; l < Cfg::layers; ++l) {
            const std::string b = "blk." + std::to_string(l) + ".";
            LayerWeights<Cfg>& L = w.layers[std::size_t(l)];
            L.attn_norm = norm(b + "attn_norm.weight", Cfg::hidden);
            L.attn_q = matrix<Cfg::q_dim, Cfg::hidden>(ckpt, b + "attn_q.weight");
            L.attn_k = matrix<Cfg::kv_dim, Cfg::hidden>(ckpt, b + "attn_k.weight");
            L.attn_v = matrix<Cfg::kv_dim, Cfg::hidden>(ckpt, b + "attn_v.weight");
            L.attn_output = matrix<Cfg::hidden, Cfg::q_dim>(ckpt, b + "attn_output.weight");
            L.attn_q_norm = norm(b + "attn_q_norm.weight", Cfg::head_dim);
            L.attn_k_norm = norm(b + "attn_k_norm.weight", Cfg::head_dim);
            L.ffn_norm = norm(b + "ffn_norm.weight", Cfg::hidden);
            L.ffn_gate = matrix<Cfg::ffn, Cfg::hidden>(ckpt, b + "ffn_gate.weight");
            L.ffn_up = matrix<Cfg::ffn, Cfg::hidden>(ckpt, b + "ffn_up.weight");
            L.ffn_down = matrix<Cfg::hidden, Cfg::ffn>(ckpt, b + "ffn_down.weight");
        }
        w.output_norm = norm("output_norm.weight", Cfg::hidden);
        w.output = Cfg::tied_embeddings ? w.token_embd : matrix<Cfg::vocab, Cfg::hidden>(ckpt, "output.weight");
        return w;
    }

    // Bytes of weights read to produce one token (every matrix once, the output matrix whole).
    std::uint64_t bytes_per_token() const {
        std::uint64_t n = 0;
        auto add = [&](const auto& m) { n += std::uint64_t(m.row_stride()) * m.rows; };
        for (const LayerWeights<Cfg>& L : layers) {
            add(L.attn_q), add(L.attn_k), add(L.attn_v), add(L.attn_output);
            add(L.ffn_gate), add(L.ffn_up), add(L.ffn_down);
        }
        add(output);
        return n;
    }

private:
    static const TensorView& require(const Checkpoint& ckpt, const std::string& name, const Shape& expected) {
        const TensorView* t = ckpt.find(name);
        if (!t)
            detail::fail(ErrorCode::missing_tensor, ckpt.path(), ": tensor ", name, " is missing (variant ", Cfg::name,
                         " needs it, shape ", expected.to_string(), ")");
        if (!(t->shape == expected))
            detail::fail(ErrorCode::shape_mismatch, ckpt.path(), ": tensor ", name, " has shape ", t->shape.to_string(),
                         ", expected ", expected.to_string(), " for variant ", Cfg::name, "; ",
                         detail::variant_hint(ckpt.params()));
        return *t;
    }

    template <int Rows, int Cols>
    static Matrix<Rows, Cols> matrix(const Checkpoint& ckpt, const std::string& name) {
        const TensorView& t = require(ckpt, name, make_shape(Rows, Cols));
        if (!supports_matrix_type<Cols>(t.type))
            detail::fail(ErrorCode::unsupported, ckpt.path(), ": tensor ", name, " has type ", dtype_name(t.type),
                         ", which has no matrix kernel here");
        if (row_bytes(t.type, Cols) == 0)
            detail::fail(ErrorCode::shape_mismatch, ckpt.path(), ": tensor ", name, " of type ", dtype_name(t.type),
                         " has ", Cols, " columns, not a whole number of blocks");
        return Matrix<Rows, Cols>{t.type, t.data};
    }
};

}  // namespace qwen3
// ===== end of qwen3/weights.hpp =====

namespace qwen3 {

template <class Cfg>
class Model {
public:
    using config = Cfg;

    // Opens and binds a .gguf file or a Hugging Face folder. Throws Error (io, format, unsupported,
    // config_mismatch, missing_tensor, shape_mismatch) naming what does not fit.
    explicit Model(const std::string& path) : Model(Checkpoint::open(path)) {}
    explicit Model(Checkpoint checkpoint)
        : checkpoint_(std::make_shared<const Checkpoint>(std::move(checkpoint))),
          weights_(Weights<Cfg>::bind(*checkpoint_)),
          rope_(checkpoint_->params().rope_theta, checkpoint_->params().rope_scaling),
          rms_norm_eps_(float(checkpoint_->params().rms_norm_eps)) {}

    const Checkpoint& checkpoint() const { return *checkpoint_; }
    const ModelParams& params() const { return checkpoint_->params(); }
    const Weights<Cfg>& weights() const { return weights_; }
    const kernels::Rope<Cfg::head_dim>& rope() const { return rope_; }
    float rms_norm_eps() const { return rms_norm_eps_; }

private:
    std::shared_ptr<const Checkpoint> checkpoint_;
    Weights<Cfg> weights_;
    kernels::Rope<Cfg::head_dim> rope_;
    float rms_norm_eps_;
};

// Tokens processed per forward chunk during prefill: sizes the scratch buffers.
inline constexpr int kMaxBatch = 128;

// How prefill multiplies BF16 weights.
enum class Precision {
    // f32 products: weights widened to f32, results within float rounding of an f32 reference.
    exact,
    // Activations rounded to bf16 and multiplied with AVX-512 BF16 dot products where the CPU has
    // them: about twice the prefill speed on BF16 models, logits within ~1e-3 of exact (what
    // llama.cpp's CPU backend computes for BF16 weights). Decode is unaffected (it is memory-bound).
    bf16_products,
};

struct SessionOptions {
    int threads = default_thread_count();  // counts the calling thread
    Precision precision = Precision::exact;
};

template <class Cfg, class KV = DefaultKV>
class Session {
public:
    static constexpr int capacity = Cfg::max_context;

    // `model` must outlive the session. threads counts the calling thread.
    explicit Session(const Model<Cfg>& model, int threads = default_thread_count())
        : Session(model, SessionOptions{threads, Precision::exact}) {}
    Session(const Model<Cfg>& model, SessionOptions options)
        : Session(model, std::make_shared<ThreadPool>(options.threads), options.precision) {}
    Session(const Model<Cfg>& model, std::shared_ptr<ThreadPool> pool, Precision precision = Precision::exact)
        : model_(&model), pool_(std::move(pool)), arena_(std::make_unique<KVArena<Cfg, KV>>()) {
        scratch_.resize(std::size_t(kMaxBatch) * kScratchPerToken);
        logits_.resize(Cfg::vocab);
        normed_in_ = std::make_unique<kernels::Input<H, kMaxBatch>>();
        attention_in_ = std::make_unique<kernels::Input<Q, kMaxBatch>>();
        ffn_in_ = std::make_unique<kernels::Input<F, kMaxBatch>>();
        final_in_ = std::make_unique<kernels::Input<H, kMaxBatch>>();
        const bool bf16 = precision == Precision::bf16_products;
        for (auto* in : {normed_in_.get(), final_in_.get()}) in->allow_bf16_products(bf16);
        attention_in_->allow_bf16_products(bf16);
        ffn_in_->allow_bf16_products(bf16);
    }

    const Model<Cfg>& model() const { return *model_; }
    ThreadPool& pool() { return *pool_; }
    // Tokens in the KV arena (the position the next token will take).
    int position() const { return position_; }
    // Logits of the last token evaluated (Cfg::vocab floats).
    std::span<const float> logits() const { return logits_; }

    // Forgets every token.
    void reset() { position_ = 0; }
    // Keeps the first n tokens (a shared prompt prefix) and forgets the rest.
    // Throws Error(invalid_argument) unless 0 <= n <= position().
    void truncate(int n) {
        if (n < 0 || n > position_)
            detail::fail(ErrorCode::invalid_argument, "Session::truncate(", n, "): must be between 0 and the position ", position_);
        position_ = n;
    }
    // Returns the arena's pages past the current position to the OS.
    void release_memory() { arena_->release_from(position_); }

    // Runs `tokens` at positions [position(), position() + n) and returns the logits of the last one.
    // Several tokens are one prefill (matrix-matrix work, in chunks of kMaxBatch); one token is a
    // decode step (matrix-vector). If `all_logits` is non-empty it must hold n * Cfg::vocab floats and
    // receives every position's logits, row-major. Throws Error(context_overflow) when the tokens do not
    // fit in the arena, Error(invalid_argument) for an id outside the vocabulary; on error the session
    // keeps its previous position.
    std::span<const float> eval(std::span<const std::int32_t> tokens, std::span<float> all_logits = {});
    std::span<const float> eval(std::int32_t token) { return eval(std::span<const std::int32_t>(&token, 1)); }

private:
    static constexpr int H = Cfg::hidden, Q = Cfg::q_dim, KVD = Cfg::kv_dim, F = Cfg::ffn, D = Cfg::head_dim;
    static constexpr std::size_t kScratchPerToken = 3 * H + 2 * Q + 2 * KVD + 2 * F + D;

    // One chunk of n <= kMaxBatch tokens at positions [position_, position_ + n).
    void forward(const std::int32_t* tokens, int n, float* all_logits);

    template <int Rows, int Cols>
    struct Projection {
        const Matrix<Rows, Cols>& w;
        float* out;  // [tokens][Rows]
    };

    // out[t] = W in[t] for the tokens of `in` and every projection given (matrices that read the
    // same input), as one job: their rows are concatenated and split across the pool, so q, k and v
    // (or gate and up) cost one dispatch.
    template <int Cols, int MaxTokens, int... Rows>
    void project(kernels::Input<Cols, MaxTokens>& in, Projection<Rows, Cols>... targets) {
        auto parallel = [this](int n, auto&& fn) { pool_->run(n, fn); };
        (in.prepare(targets.w.type, parallel), ...);
        constexpr int total = (Rows + ...);
        pool_->for_ranges(total, 16, [&](int begin, int end) {
            int offset = 0;
            auto run = [&](const auto& target) {
                constexpr int R = std::remove_reference_t<decltype(target.w)>::rows;
                const int b = std::max(begin - offset, 0), e = std::min(end - offset, R);
                if (b < e) {
                    if (in.tokens() == 1) matvec(target.w, in, target.out, b, e);
                    else matmul(target.w, in, target.out, R, b, e);
                }
                offset += R;
            };
            (run(targets), ...);
        });
    }

    const Model<Cfg>* model_;
    std::shared_ptr<ThreadPool> pool_;
    std::unique_ptr<KVArena<Cfg, KV>> arena_;
    std::vector<float> scratch_;
    // the four distinct inputs of the projections, each prepared once per use
    std::unique_ptr<kernels::Input<H, kMaxBatch>> normed_in_;     // q, k, v, gate, up read the normed residual
    std::unique_ptr<kernels::Input<Q, kMaxBatch>> attention_in_;  // the output projection reads attention
    std::unique_ptr<kernels::Input<F, kMaxBatch>> ffn_in_;        // down reads silu(gate) * up
    std::unique_ptr<kernels::Input<H, kMaxBatch>> final_in_;      // the output matrix reads the final norm
    std::vector<float> logits_;
    int position_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Out-of-class definitions: not implicitly inline, so QWEN3_EXTERN_VARIANT can keep a program from
// compiling the forward pass in every translation unit that uses a session.

template <class Cfg, class KV>
std::span<const float> Session<Cfg, KV>::eval(std::span<const std::int32_t> tokens, std::span<float> all_logits) {
    const std::size_t n = tokens.size();
    if (n == 0) detail::fail(ErrorCode::invalid_argument, "Session::eval: no tokens given");
    if (!all_logits.empty() && all_logits.size() != n * std::size_t(Cfg::vocab))
        detail::fail(ErrorCode::invalid_argument, "Session::eval: all_logits holds ", all_logits.size(),
                     " floats, expected ", n, " x ", Cfg::vocab);
    if (n > std::size_t(capacity - position_))
        detail::fail(ErrorCode::context_overflow, "the KV arena holds ", capacity, " positions (variant ", Cfg::name,
                     "); ", position_, " are used and ", n, " more do not fit");
    for (std::size_t i = 0; i < n; ++i)
        if (tokens[i] < 0 || tokens[i] >= Cfg::vocab)
            detail::fail(ErrorCode::invalid_argument, "token id ", tokens[i], " at index ", i,
                         " is outside the vocabulary [0, ", Cfg::vocab, ")");
    for (std::size_t done = 0; done < n;) {
        const int chunk = int(std::min<std::size_t>(kMaxBatch, n - done));
        float* rows = all_logits.empty() ? nullptr : all_logits.data() + done * std::size_t(Cfg::vocab);
        forward(tokens.data() + done, chunk, rows);
        done += std::size_t(chunk);
    }
    return logits_;
}

// The Qwen3 forward pass over one chunk of tokens.
template <class Cfg, class KV>
void Session<Cfg, KV>::forward(const std::int32_t* tokens, int n, float* all_logits) {
    const Weights<Cfg>& w = model_->weights();
    const float eps = model_->rms_norm_eps();
    const int pos0 = position_;

    // scratch, token-major: x (residual), h (normed), q, k, v, attn, gate, up
    float* x = scratch_.data();
    float* h = x + std::size_t(n) * H;
    float* q = h + std::size_t(n) * H;
    float* k = q + std::size_t(n) * Q;
    float* v = k + std::size_t(n) * KVD;
    float* attn = v + std::size_t(n) * KVD;
    float* gate = attn + std::size_t(n) * Q;
    float* up = gate + std::size_t(n) * F;
    float* rope_cs = up + std::size_t(n) * F;  // [n][cos half | sin half]

    for (int t = 0; t < n; ++t) {
        dequantize_row(w.token_embd, tokens[t], x + std::size_t(t) * H);
        model_->rope().angles(pos0 + t, rope_cs + std::size_t(t) * D, rope_cs + std::size_t(t) * D + D / 2);
    }

    for (int l = 0; l < Cfg::layers; ++l) {
        const LayerWeights<Cfg>& L = w.layers[std::size_t(l)];

        // attention block
        for (int t = 0; t < n; ++t) kernels::rms_norm<H>(x + std::size_t(t) * H, L.attn_norm, eps, h + std::size_t(t) * H);
        normed_in_->set(h, n);
        project(*normed_in_, Projection<Q, H>{L.attn_q, q}, Projection<KVD, H>{L.attn_k, k}, Projection<KVD, H>{L.attn_v, v});
        for (int t = 0; t < n; ++t) {
            const float* cs = rope_cs + std::size_t(t) * D;
            for (int hd = 0; hd < Cfg::heads; ++hd) {
                float* qh = q + std::size_t(t) * Q + std::size_t(hd) * D;
                kernels::rms_norm<D>(qh, L.attn_q_norm, eps, qh);
                kernels::apply_rope<D>(qh, cs, cs + D / 2);
            }
            for (int g = 0; g < Cfg::kv_heads; ++g) {
                float* kh = k + std::size_t(t) * KVD + std::size_t(g) * D;
                kernels::rms_norm<D>(kh, L.attn_k_norm, eps, kh);
                kernels::apply_rope<D>(kh, cs, cs + D / 2);
                arena_->store(l, g, pos0 + t, kh, v + std::size_t(t) * KVD + std::size_t(g) * D);
            }
        }
        const float scale = 1.0f / std::sqrt(float(D));
        pool_->run(Cfg::kv_heads * n, [&](int task) {
            const int g = task % Cfg::kv_heads, t = task / Cfg::kv_heads;
            const std::size_t head_offset = std::size_t(t) * Q + std::size_t(g) * Cfg::group * D;
            kernels::attend<D, Cfg::group, KV>(q + head_offset, *arena_, l, g, pos0 + t + 1, scale, attn + head_offset);
        });
        attention_in_->set(attn, n);
        project(*attention_in_, Projection<H, Q>{L.attn_output, h});
        for (int t = 0; t < n; ++t) kernels::add_in_place<H>(x + std::size_t(t) * H, h + std::size_t(t) * H);

        // feed-forward block (SwiGLU)
        for (int t = 0; t < n; ++t) kernels::rms_norm<H>(x + std::size_t(t) * H, L.ffn_norm, eps, h + std::size_t(t) * H);
        normed_in_->set(h, n);
        project(*normed_in_, Projection<F, H>{L.ffn_gate, gate}, Projection<F, H>{L.ffn_up, up});
        for (int t = 0; t < n; ++t) kernels::swiglu<F>(gate + std::size_t(t) * F, up + std::size_t(t) * F);
        ffn_in_->set(gate, n);
        project(*ffn_in_, Projection<H, F>{L.ffn_down, h});
        for (int t = 0; t < n; ++t) kernels::add_in_place<H>(x + std::size_t(t) * H, h + std::size_t(t) * H);
    }

    for (int t = 0; t < n; ++t) kernels::rms_norm<H>(x + std::size_t(t) * H, w.output_norm, eps, x + std::size_t(t) * H);
    if (all_logits) {
        final_in_->set(x, n);
        project(*final_in_, Projection<Cfg::vocab, H>{w.output, all_logits});
        std::copy_n(all_logits + std::size_t(n - 1) * Cfg::vocab, Cfg::vocab, logits_.data());
    } else {
        final_in_->set(x + std::size_t(n - 1) * H, 1);
        project(*final_in_, Projection<Cfg::vocab, H>{w.output, logits_.data()});
    }
    position_ = pos0 + n;
}

template <class Cfg>
Session(const Model<Cfg>&) -> Session<Cfg>;
template <class Cfg>
Session(const Model<Cfg>&, int) -> Session<Cfg>;
template <class Cfg>
Session(const Model<Cfg>&, SessionOptions) -> Session<Cfg>;

}  // namespace qwen3

// Compile a variant's forward pass once: put QWEN3_INSTANTIATE_VARIANT(Cfg) in one .cpp file and
// QWEN3_EXTERN_VARIANT(Cfg) where other files use qwen3::Session<Cfg> (the default KV type).
#define QWEN3_EXTERN_VARIANT(...) extern template class qwen3::Session<__VA_ARGS__>;
#define QWEN3_INSTANTIATE_VARIANT(...) template class qwen3::Session<__VA_ARGS__>;
// ===== end of qwen3/model.hpp =====
// ===== qwen3/sampler.hpp =====
// qwen3/sampler.hpp - choosing the next token from the logits.
//
// Order of operations: Hugging Face transformers' (the order Qwen3's recommended settings were
// tuned with; vLLM agrees): penalties on the logits, then temperature, then top-k, top-p and min-p,
// each on the distribution the previous step left (renormalized), then one random draw.
// (llama.cpp's default chain differs: it applies temperature last, so its top-p/min-p see the
// temperature-1 distribution.)
//
//   penalties   for each token seen in the last penalty_last_n accepted tokens, `count` times:
//               l = (l <= 0 ? l * repetition_penalty : l / repetition_penalty)
//                   - count * frequency_penalty - (count > 0) * presence_penalty
//               (llama.cpp's formula; HF's repetition penalty is the same first line)
//   temperature x = l / temperature; temperature 0 (or one below ~3e-39, whose reciprocal overflows)
//               means greedy: the argmax, lowest id on ties
//   top-k       keep the k largest (ties broken by lower token id)
//   top-p       sort the kept tokens by probability (ties: lower id first) and keep the shortest prefix
//               whose probability sums to at least top_p (always at least one token)
//   min-p       keep tokens whose probability is at least min_p times the largest
//   draw        u = uniform [0, 1) from xoshiro256** seeded by splitmix64(seed) (53-bit doubles);
//               walk the kept tokens in id order and take the first whose cumulative weight exceeds
//               u times the total
//
// Speed on a 151,936-token vocabulary: never a full sort. With top-k, one SIMD pass keeps a small
// heap of candidates (one compare against the heap's threshold rejects 16 logits at a time), and
// penalties touch only the penalized tokens: the k + P best raw logits (P penalized tokens) always
// contain the k best penalized ones. Without top-k, one SIMD pass computes the exp() weights, a
// 1024-bucket histogram of log-probabilities (1/16 nat each) finds the bucket where the top-p mass
// is reached and only that bucket is sorted, and per-block sums let the draw skip to its block;
// penalties then work on one copy of the logits. Weights are summed in double precision.
// bench/bench_sampler.cpp measures each path.
//
// Reproducibility: the draw sequence depends only on the seed (the generator is written here, not
// std::mt19937 plus a distribution whose float conversion the standard leaves open). exp() comes
// from xsimd, so a platform with another SIMD width may round a weight differently in the last bit,
// which can only change a draw that lands within that rounding of a boundary.



namespace qwen3 {

struct SamplerParams {
    float temperature = 1.0f;         // >= 0; 0 = greedy (no randomness)
    int top_k = 0;                    // >= 0; 0 = off
    float top_p = 1.0f;               // in (0, 1]; 1 = off
    float min_p = 0.0f;               // in [0, 1]; 0 = off
    float repetition_penalty = 1.0f;  // > 0; 1 = off; > 1 discourages repeats
    float presence_penalty = 0.0f;    // subtracted once from every token in the window
    float frequency_penalty = 0.0f;   // subtracted per occurrence in the window
    int penalty_last_n = 64;          // accepted tokens the penalties look back on; 0 = none, -1 = all
    std::uint64_t seed = 0;

    // Qwen3's recommended settings (model card): thinking mode and non-thinking mode.
    static SamplerParams thinking() { return with(0.6f, 20, 0.95f, 0.0f); }
    static SamplerParams non_thinking() { return with(0.7f, 20, 0.8f, 0.0f); }
    static SamplerParams greedy() { return with(0.0f, 0, 1.0f, 0.0f); }

    // Throws Error(invalid_argument) naming the first field outside its documented range.
    void validate() const;

private:
    static SamplerParams with(float temperature, int top_k, float top_p, float min_p) {
        SamplerParams p;
        p.temperature = temperature;
        p.top_k = top_k;
        p.top_p = top_p;
        p.min_p = min_p;
        return p;
    }
};

struct TokenProbability {
    std::int32_t token;
    float probability;
};

namespace detail {

// xoshiro256** (Blackman and Vigna), state filled from the seed by splitmix64, as its authors advise.
class Xoshiro256 {
public:
    explicit Xoshiro256(std::uint64_t seed) {
        for (std::uint64_t& word : s_) {
            seed += 0x9E3779B97F4A7C15ull;
            std::uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            word = z ^ (z >> 31);
        }
    }
    std::uint64_t next() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    // Uniform in [0, 1) with 53 random bits.
    double uniform() { return double(next() >> 11) * 0x1.0p-53; }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::uint64_t s_[4];
};

}  // namespace detail

// Not thread-safe: one Sampler per generation stream.
class Sampler {
public:
    // Throws Error(invalid_argument) if params.validate() does.
    explicit Sampler(const SamplerParams& params = {}) : params_(params), rng_(params.seed) {
        params_.validate();
        window_capacity_ = params_.penalty_last_n;
    }

    const SamplerParams& params() const noexcept { return params_; }

    // Chooses a token from `logits` (one per vocabulary entry; not modified). Does not record it:
    // call accept() with the token actually used. Throws Error(invalid_argument) if logits is empty,
    // holds NaN or +inf, has no finite entry, or if a token in the penalty history is not an index
    // into it.
    std::int32_t sample(std::span<const float> logits);

    // The distribution sample() draws from: the tokens that survive every filter, in id order, with
    // their renormalized probabilities (greedy: the argmax with probability 1). Does not use the
    // random generator. Throws as sample().
    std::vector<TokenProbability> distribution(std::span<const float> logits);

    // Records a token for the penalties (prompt tokens too, if they should count). Throws
    // Error(invalid_argument) for a negative id.
    void accept(std::int32_t token);

    // Forgets the accepted tokens and restarts the random sequence from the seed.
    void reset();

    // The penalties applied to `logits` in place (sample() does this on the side, without writing).
    // Throws Error(invalid_argument) if a token in the history is not an index into logits.
    void apply_penalties(std::span<float> logits) const;

private:
    struct Candidate {
        std::int32_t token;
        float logit;    // after penalties
        double weight;  // exp((logit - max) / temperature), before the draw's renormalization
    };
    static bool ranks_before(const Candidate& a, const Candidate& b) {
        return a.logit > b.logit || (a.logit == b.logit && a.token < b.token);
    }

    bool is_greedy() const;
    bool penalties_active() const;
    float penalized(float logit, std::int32_t count) const;
    void collect_penalties(std::size_t vocab);
    std::int32_t greedy(std::span<const float> logits);
    void filter(std::span<const float> logits);
    void filter_top_k(std::span<const float> logits, std::size_t k);
    void filter_full(std::span<const float> logits);
    std::int32_t draw_full(double target) const;
    void cut_sorted(std::vector<Candidate>& sorted) const;

    static constexpr std::size_t kBlock = 256;  // tokens per block sum on the full-vocabulary path

    SamplerParams params_;
    detail::Xoshiro256 rng_;
    int window_capacity_ = 0;
    std::vector<std::int32_t> window_;  // ring buffer of the last accepted tokens
    std::size_t window_next_ = 0;
    std::unordered_map<std::int32_t, std::int32_t> counts_;  // occurrences in window_

    // filter()'s result: with top-k, the kept candidates in token order; otherwise (full_path_)
    // one weight per token, 0 for the tokens filtered out, and sums per block of kBlock tokens
    bool full_path_ = false;
    std::vector<Candidate> candidates_;
    std::vector<float> weights_;
    std::vector<double> block_sums_;
    double kept_total_ = 0;

    // scratch, kept between calls to avoid allocation per token
    std::vector<std::pair<std::int32_t, std::int32_t>> penalties_;  // (token, count)
    std::vector<float> scratch_;          // penalized logits (full path)
    std::vector<std::int32_t> buckets_;   // top-p histogram bucket per token (full path)
    std::vector<Candidate> bucket_;       // the tokens of the bucket where top-p's mass is reached
};

// ---------------------------------------------------------------------------------------------
// implementation

inline void SamplerParams::validate() const {
    auto bad = [](const char* field, const std::string& expected, double value) {
        detail::fail(ErrorCode::invalid_argument, "sampler: ", field, " must be ", expected, ", got ",
                     std::to_string(value));
    };
    if (!(temperature >= 0) || !std::isfinite(temperature)) bad("temperature", "finite and >= 0", temperature);
    if (top_k < 0) bad("top_k", ">= 0 (0 = off)", top_k);
    if (!(top_p > 0 && top_p <= 1)) bad("top_p", "in (0, 1]", top_p);
    if (!(min_p >= 0 && min_p <= 1)) bad("min_p", "in [0, 1]", min_p);
    if (!(repetition_penalty > 0) || !std::isfinite(repetition_penalty))
        bad("repetition_penalty", "finite and > 0 (1 = off)", repetition_penalty);
    if (!std::isfinite(presence_penalty)) bad("presence_penalty", "finite", presence_penalty);
    if (!std::isfinite(frequency_penalty)) bad("frequency_penalty", "finite", frequency_penalty);
    if (penalty_last_n < -1) bad("penalty_last_n", ">= -1 (-1 = all, 0 = none)", penalty_last_n);
}

namespace detail {

[[noreturn]] inline void bad_logit(std::span<const float> logits) {
    for (std::size_t i = 0; i < logits.size(); ++i)
        if (std::isnan(logits[i]) || logits[i] == std::numeric_limits<float>::infinity())
            fail(ErrorCode::invalid_argument, "sampler: logit ", i, " is ", std::isnan(logits[i]) ? "NaN" : "+inf",
                 " (expected a finite number or -inf)");
    fail(ErrorCode::invalid_argument, "sampler: invalid logit");
}

// The largest logit, checking every one for NaN and +inf on the way.
inline float checked_max(std::span<const float> logits) {
    using simd::fbatch;
    constexpr std::size_t L = simd::lanes;
    const float* p = logits.data();
    const std::size_t n = logits.size();
    const fbatch inf(std::numeric_limits<float>::infinity());
    fbatch best(-std::numeric_limits<float>::infinity());
    xsimd::batch_bool<float, simd::arch> invalid(false);
    std::size_t i = 0;
    for (; i + L <= n; i += L) {
        fbatch x = fbatch::load_unaligned(p + i);
        invalid = invalid | xsimd::isnan(x) | (x == inf);  // not x != x: xsimd 8.1 compares NEQ ordered
        best = xsimd::max(best, x);
    }
    if (xsimd::any(invalid)) bad_logit(logits);
    alignas(64) float lanes[L];
    best.store_aligned(lanes);
    float m = lanes[0];
    for (std::size_t j = 1; j < L; ++j) m = std::max(m, lanes[j]);
    for (; i < n; ++i) {
        if (std::isnan(p[i]) || p[i] == std::numeric_limits<float>::infinity()) bad_logit(logits);
        m = std::max(m, p[i]);
    }
    return m;
}

}  // namespace detail

inline bool Sampler::penalties_active() const {
    return window_capacity_ != 0 && !counts_.empty() &&
           (params_.repetition_penalty != 1.0f || params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f);
}

inline float Sampler::penalized(float logit, std::int32_t count) const {
    float v = logit;
    if (params_.repetition_penalty != 1.0f) v = v <= 0 ? v * params_.repetition_penalty : v / params_.repetition_penalty;
    return v - float(count) * params_.frequency_penalty - (count > 0 ? params_.presence_penalty : 0.0f);
}

inline void Sampler::collect_penalties(std::size_t vocab) {
    penalties_.clear();
    if (!penalties_active()) return;
    for (const auto& [token, count] : counts_) {
        if (std::size_t(token) >= vocab)
            detail::fail(ErrorCode::invalid_argument, "sampler: accepted token ", token, " is outside the ", vocab,
                         " logits given (penalty history from another vocabulary?)");
        penalties_.emplace_back(token, count);
    }
    // hash-map order is unspecified; sort so every platform applies them identically
    std::sort(penalties_.begin(), penalties_.end());
}

inline void Sampler::apply_penalties(std::span<float> logits) const {
    if (!penalties_active()) return;
    for (const auto& [token, count] : counts_) {
        if (std::size_t(token) >= logits.size())
            detail::fail(ErrorCode::invalid_argument, "sampler: accepted token ", token, " is outside the ",
                         logits.size(), " logits given");
        logits[std::size_t(token)] = penalized(logits[std::size_t(token)], count);
    }
}

inline void Sampler::accept(std::int32_t token) {
    if (token < 0) detail::fail(ErrorCode::invalid_argument, "sampler: accept() got the negative token id ", token);
    if (window_capacity_ == 0) return;
    if (window_capacity_ > 0 && window_.size() == std::size_t(window_capacity_)) {
        std::int32_t& slot = window_[window_next_];
        if (--counts_[slot] == 0) counts_.erase(slot);
        slot = token;
        window_next_ = (window_next_ + 1) % window_.size();
    } else {
        window_.push_back(token);
    }
    ++counts_[token];
}

inline void Sampler::reset() {
    window_.clear();
    window_next_ = 0;
    counts_.clear();
    rng_ = detail::Xoshiro256(params_.seed);
}

inline std::int32_t Sampler::greedy(std::span<const float> logits) {
    std::span<const float> source = logits;
    if (!penalties_.empty()) {
        scratch_.assign(logits.begin(), logits.end());
        for (const auto& [token, count] : penalties_) scratch_[std::size_t(token)] = penalized(scratch_[std::size_t(token)], count);
        source = scratch_;
    }
    const float best = detail::checked_max(source);
    if (best == -std::numeric_limits<float>::infinity())
        detail::fail(ErrorCode::invalid_argument, "sampler: every logit is -inf (no token can be chosen)");
    return std::int32_t(std::find(source.begin(), source.end(), best) - source.begin());
}

// Keeps the shortest prefix of `sorted` (best first, weights set) that top-p and min-p allow.
inline void Sampler::cut_sorted(std::vector<Candidate>& sorted) const {
    double total = 0;
    for (const Candidate& c : sorted) total += c.weight;
    std::size_t keep = sorted.size();
    if (params_.top_p < 1.0f) {
        const double target = double(params_.top_p) * total;
        double sum = 0;
        for (std::size_t i = 0; i < sorted.size(); ++i) {
            sum += sorted[i].weight;
            if (sum >= target) {
                keep = i + 1;
                break;
            }
        }
    }
    if (params_.min_p > 0.0f) {
        // probability ratio to the best = weight ratio; the best has weight exp(0) = 1
        const double floor_weight = double(params_.min_p) * sorted.front().weight;
        std::size_t n = 1;
        while (n < keep && sorted[n].weight >= floor_weight) ++n;
        keep = n;
    }
    sorted.resize(keep);
}

inline void Sampler::filter_top_k(std::span<const float> logits, std::size_t k) {
    // 1. the k + P best raw logits (P = penalized tokens): enough to contain the k best after the
    //    penalties, since only the P penalized tokens can move in the ranking.
    const std::size_t want = std::min(logits.size(), k + penalties_.size());
    std::vector<Candidate>& heap = candidates_;  // worst candidate on top
    heap.clear();
    auto worse = [](const Candidate& a, const Candidate& b) { return ranks_before(a, b); };
    const float* p = logits.data();
    const std::size_t n = logits.size();
    std::size_t i = 0;
    for (; i < n && heap.size() < want; ++i) {
        if (std::isnan(p[i]) || p[i] == std::numeric_limits<float>::infinity()) detail::bad_logit(logits);
        heap.push_back({std::int32_t(i), p[i], 0.0});
        std::push_heap(heap.begin(), heap.end(), worse);
    }
    float threshold = heap.front().logit;
    auto consider = [&](std::size_t j) {
        // a later token equal to the threshold ranks after it (higher id): strict compare is exact
        if (p[j] > threshold) {
            std::pop_heap(heap.begin(), heap.end(), worse);
            heap.back() = {std::int32_t(j), p[j], 0.0};
            std::push_heap(heap.begin(), heap.end(), worse);
            threshold = heap.front().logit;
        }
    };
    using simd::fbatch;
    constexpr std::size_t L = simd::lanes;
    const fbatch inf(std::numeric_limits<float>::infinity());
    xsimd::batch_bool<float, simd::arch> invalid(false);
    for (; i + L <= n; i += L) {
        fbatch x = fbatch::load_unaligned(p + i);
        invalid = invalid | xsimd::isnan(x) | (x == inf);  // not x != x: xsimd 8.1 compares NEQ ordered
        if (xsimd::any(x > fbatch(threshold)))
            for (std::size_t j = i; j < i + L; ++j) consider(j);
    }
    if (xsimd::any(invalid)) detail::bad_logit(logits);
    for (; i < n; ++i) {
        if (std::isnan(p[i]) || p[i] == std::numeric_limits<float>::infinity()) detail::bad_logit(logits);
        consider(i);
    }

    // 2. penalized values replace or join the raw ones (both lists sorted by id); then the k best
    std::vector<Candidate>& set = heap;
    if (!penalties_.empty()) {
        std::sort(set.begin(), set.end(), [](const Candidate& a, const Candidate& b) { return a.token < b.token; });
        const std::size_t raw = set.size();
        std::size_t at = 0;
        for (const auto& [token, count] : penalties_) {
            while (at < raw && set[at].token < token) ++at;
            const float v = penalized(p[token], count);
            if (at < raw && set[at].token == token) set[at].logit = v;
            else set.push_back({token, v, 0.0});
        }
    }
    std::sort(set.begin(), set.end(), ranks_before);
    set.resize(std::min(set.size(), k));
    while (!set.empty() && set.back().logit == -std::numeric_limits<float>::infinity()) set.pop_back();
    if (set.empty()) detail::fail(ErrorCode::invalid_argument, "sampler: every logit is -inf (no token can be chosen)");

    // 3. weights, top-p, min-p; then id order for the draw
    const double best = set.front().logit;
    const double temperature = params_.temperature;
    for (Candidate& c : set) c.weight = std::exp((double(c.logit) - best) / temperature);
    cut_sorted(set);
    std::sort(set.begin(), set.end(), [](const Candidate& a, const Candidate& b) { return a.token < b.token; });
    kept_total_ = 0;
    for (const Candidate& c : set) kept_total_ += c.weight;
}

inline void Sampler::filter_full(std::span<const float> logits) {
    using simd::fbatch;
    using ibatch = xsimd::batch<std::int32_t, simd::arch>;
    constexpr std::size_t L = simd::lanes;
    static_assert(kBlock % L == 0, "a block is whole SIMD batches");

    std::span<const float> source = logits;
    if (!penalties_.empty()) {
        scratch_.assign(logits.begin(), logits.end());
        for (const auto& [token, count] : penalties_) scratch_[std::size_t(token)] = penalized(scratch_[std::size_t(token)], count);
        source = scratch_;
    }
    const float best = detail::checked_max(source);
    if (best == -std::numeric_limits<float>::infinity())
        detail::fail(ErrorCode::invalid_argument, "sampler: every logit is -inf (no token can be chosen)");
    const std::size_t n = source.size();
    const float* p = source.data();
    // multiplied by 1/T (a division per element would cost more than the exp); greedy() takes the
    // temperatures whose reciprocal overflows
    const float inv_t = 1.0f / params_.temperature;
    const bool top_p = params_.top_p < 1.0f;

    // 1. weights exp((l - best) / T), and for top-p each token's bucket: bucket b holds the tokens
    //    whose (best - l) / T lies in [b/16, (b+1)/16) nats; the last bucket holds everything beyond
    constexpr int kBuckets = 1024;
    constexpr float kPerNat = 16.0f;
    auto bucket_of = [&](float l) {
        const float d = (best - l) * (inv_t * kPerNat);
        return d < float(kBuckets - 1) ? std::int32_t(d) : kBuckets - 1;
    };
    weights_.resize(n);
    if (top_p) buckets_.resize(n);
    {
        const fbatch b(best), scale(inv_t), bucket_scale(inv_t * kPerNat), last(float(kBuckets - 1));
        std::size_t i = 0;
        for (; i + L <= n; i += L) {
            const fbatch x = fbatch::load_unaligned(p + i);
            xsimd::exp((x - b) * scale).store_unaligned(weights_.data() + i);
            if (top_p) xsimd::to_int(xsimd::min((b - x) * bucket_scale, last)).store_unaligned(buckets_.data() + i);
        }
        for (; i < n; ++i) {
            weights_[i] = std::exp((p[i] - best) * inv_t);
            if (top_p) buckets_[i] = bucket_of(p[i]);
        }
    }

    // 2. top-p: the mass per bucket locates the cutoff; only the tokens of that bucket are sorted.
    //    A token is kept if it ranks at or before the cutoff (logit, then lower id).
    float cutoff_logit = -std::numeric_limits<float>::infinity();
    if (top_p) {
        // four histograms, each token to the next: consecutive adds rarely hit the same counter, so
        // they do not wait on each other (padded rows keep the four off the same cache sets)
        double mass[4][kBuckets + 8] = {};
        std::size_t i = 0;
        for (; i + 4 <= n; i += 4) {
            mass[0][buckets_[i]] += weights_[i];
            mass[1][buckets_[i + 1]] += weights_[i + 1];
            mass[2][buckets_[i + 2]] += weights_[i + 2];
            mass[3][buckets_[i + 3]] += weights_[i + 3];
        }
        for (; i < n; ++i) mass[0][buckets_[i]] += weights_[i];
        double bucket_mass[kBuckets];
        double total = 0;
        for (int b = 0; b < kBuckets; ++b) total += bucket_mass[b] = (mass[0][b] + mass[1][b]) + (mass[2][b] + mass[3][b]);
        const double target = double(params_.top_p) * total;
        double before = 0;
        std::int32_t b = 0;
        while (b < kBuckets - 1 && before + bucket_mass[b] < target) before += bucket_mass[b++];
        bucket_.clear();
        {
            const ibatch wanted(b);
            std::size_t i = 0;
            for (; i + L <= n; i += L)
                if (xsimd::any(ibatch::load_unaligned(buckets_.data() + i) == wanted))
                    for (std::size_t j = i; j < i + L; ++j)
                        if (buckets_[j] == b) bucket_.push_back({std::int32_t(j), p[j], double(weights_[j])});
            for (; i < n; ++i)
                if (buckets_[i] == b) bucket_.push_back({std::int32_t(i), p[i], double(weights_[i])});
        }
        std::sort(bucket_.begin(), bucket_.end(), ranks_before);
        std::size_t cut = bucket_.size() - 1;
        for (std::size_t k = 0; k < bucket_.size(); ++k) {
            before += bucket_[k].weight;
            if (before >= target) {
                cut = k;
                break;
            }
        }
        cutoff_logit = bucket_[cut].logit;
        // tokens tied with the cutoff but ranked after it (higher id) are out
        for (std::size_t k = cut + 1; k < bucket_.size() && bucket_[k].logit == cutoff_logit; ++k)
            weights_[std::size_t(bucket_[k].token)] = 0.0f;
    }

    // 3. min-p (the best token's weight is exp(0) = 1, so a weight is its probability ratio), the
    //    top-p cutoff: weights of the tokens that are out become 0; sums per block of kBlock tokens
    //    let the draw skip ahead
    const std::size_t blocks = (n + kBlock - 1) / kBlock;
    block_sums_.assign(blocks, 0.0);
    kept_total_ = 0;
    const fbatch min_weight(params_.min_p), cutoff(cutoff_logit), zero(0.0f);
    for (std::size_t block = 0; block < blocks; ++block) {
        const std::size_t begin = block * kBlock, end = std::min(n, begin + kBlock);
        fbatch sum(0.0f);
        std::size_t i = begin;
        for (; i + L <= end; i += L) {
            const fbatch w = fbatch::load_unaligned(weights_.data() + i);
            const fbatch kept = xsimd::select((w >= min_weight) & (fbatch::load_unaligned(p + i) >= cutoff), w, zero);
            kept.store_unaligned(weights_.data() + i);
            sum += kept;
        }
        double block_sum = xsimd::hadd(sum);
        for (; i < end; ++i) {
            if (!(weights_[i] >= params_.min_p && p[i] >= cutoff_logit)) weights_[i] = 0.0f;
            block_sum += weights_[i];
        }
        block_sums_[block] = block_sum;
        kept_total_ += block_sum;
    }
}

inline std::int32_t Sampler::draw_full(double target) const {
    double sum = 0;
    std::size_t block = 0;
    while (block + 1 < block_sums_.size() && sum + block_sums_[block] <= target) sum += block_sums_[block++];
    const std::size_t begin = block * kBlock, end = std::min(weights_.size(), begin + kBlock);
    std::int32_t last_kept = -1;
    for (std::size_t i = begin; i < end; ++i) {
        if (weights_[i] <= 0.0f) continue;
        sum += weights_[i];
        last_kept = std::int32_t(i);
        if (target < sum) return last_kept;
    }
    // the target sits within rounding of the block's end: its last kept token, else the last one before
    for (std::size_t i = end; last_kept < 0 && i-- > 0;)
        if (weights_[i] > 0.0f) last_kept = std::int32_t(i);
    return last_kept;
}

inline void Sampler::filter(std::span<const float> logits) {
    if (logits.empty()) detail::fail(ErrorCode::invalid_argument, "sampler: no logits given");
    if (logits.size() > std::size_t(std::numeric_limits<std::int32_t>::max()))
        detail::fail(ErrorCode::invalid_argument, "sampler: ", logits.size(), " logits is more than token ids can index");
    collect_penalties(logits.size());
    full_path_ = !(params_.top_k > 0 && std::size_t(params_.top_k) < logits.size());
    if (full_path_) filter_full(logits);
    else filter_top_k(logits, std::size_t(params_.top_k));
}

inline bool Sampler::is_greedy() const {
    // a temperature so small that 1/T overflows a float leaves only the argmax anyway
    return params_.temperature == 0.0f || !std::isfinite(1.0f / params_.temperature);
}

inline std::int32_t Sampler::sample(std::span<const float> logits) {
    if (is_greedy()) {
        if (logits.empty()) detail::fail(ErrorCode::invalid_argument, "sampler: no logits given");
        collect_penalties(logits.size());
        return greedy(logits);
    }
    filter(logits);
    const double target = rng_.uniform() * kept_total_;
    if (full_path_) return draw_full(target);
    double sum = 0;
    for (const Candidate& c : candidates_) {
        sum += c.weight;
        if (target < sum) return c.token;
    }
    return candidates_.back().token;  // target within rounding of the total
}

inline std::vector<TokenProbability> Sampler::distribution(std::span<const float> logits) {
    if (is_greedy()) {
        if (logits.empty()) detail::fail(ErrorCode::invalid_argument, "sampler: no logits given");
        collect_penalties(logits.size());
        return {{greedy(logits), 1.0f}};
    }
    filter(logits);
    std::vector<TokenProbability> out;
    if (full_path_) {
        for (std::size_t i = 0; i < weights_.size(); ++i)
            if (weights_[i] > 0.0f) out.push_back({std::int32_t(i), float(weights_[i] / kept_total_)});
    } else {
        out.reserve(candidates_.size());
        for (const Candidate& c : candidates_) out.push_back({c.token, float(c.weight / kept_total_)});
    }
    return out;
}

}  // namespace qwen3
// ===== end of qwen3/sampler.hpp =====
// ===== qwen3/variant.hpp =====
// qwen3/variant.hpp - pick, at run time, the compiled configuration that fits a file.
//
// Tools that accept any model write their work once, as a generic lambda, and let the file decide
// which compiled variant runs it:
//
//     auto ckpt = qwen3::Checkpoint::open(path);
//     qwen3::with_variant(ckpt.params(), [&]<class Cfg>() {
//         qwen3::Model<Cfg> model(std::move(ckpt));
//         ...
//     });
//
// Each listed variant instantiates the lambda; list only the variants a program needs (each one
// compiles its own kernels), or use QWEN3_EXTERN_VARIANT to compile their forward passes elsewhere.



namespace qwen3 {

namespace detail {

template <class Fn, class First, class... Rest>
decltype(auto) dispatch_variant(const ConfigDims& file, Fn&& fn, ConfigList<First, Rest...>) {
    if (same_shape(dims_of<First>(), file)) return fn.template operator()<First>();
    if constexpr (sizeof...(Rest) > 0) {
        return dispatch_variant(file, std::forward<Fn>(fn), ConfigList<Rest...>{});
    } else {
        using Result = decltype(fn.template operator()<First>());
        if constexpr (!std::is_void_v<Result>) return Result{};  // unreachable: callers check first
    }
}

template <class... Cfgs>
bool any_variant_fits(const ConfigDims& file, ConfigList<Cfgs...>) {
    return (same_shape(dims_of<Cfgs>(), file) || ...);
}

template <class... Cfgs>
std::string variant_names(ConfigList<Cfgs...>) {
    std::string out;
    ((out += (out.empty() ? "" : ", ") + std::string(Cfgs::name)), ...);
    return out;
}

}  // namespace detail

// The name of the variant in `List` whose shape equals the file's, or "" when none does.
template <class List = NamedVariants>
std::string matching_variant(const ModelParams& params) {
    const ConfigDims file = detail::dims_of_file(params);
    std::string name;
    detail::dispatch_variant(file, [&]<class Cfg>() { name = std::string(Cfg::name); }, List{});
    return name;
}

// Calls fn.template operator()<Cfg>() for the variant of `List` whose shape equals the file's and
// returns its result. Throws Error(config_mismatch) describing the file when no variant fits.
template <class List = NamedVariants, class Fn>
decltype(auto) with_variant(const ModelParams& params, Fn&& fn) {
    const ConfigDims file = detail::dims_of_file(params);
    if (!detail::any_variant_fits(file, List{}))
        detail::fail(ErrorCode::config_mismatch, "no compiled variant fits this model (", detail::describe(file),
                     "); compiled: ", detail::variant_names(List{}), ". ", detail::variant_hint(params));
    return detail::dispatch_variant(file, std::forward<Fn>(fn), List{});
}

}  // namespace qwen3
// ===== end of qwen3/variant.hpp =====
// ===== end of qwen3/qwen3.hpp =====
