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
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "../error.hpp"

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
