// qwen3/chat/jinja/value.hpp - the values a chat template computes with, as Python has them.
//
// Use: jinja::Value::from_json(request, /*untrusted=*/true); v.truthy(); jinja::str_of(v)
// Not its job: reading templates (parser.hpp) or running them (interpreter.hpp).
//
// Hugging Face renders chat templates with Python Jinja2, so a value is a Python value: None, bool,
// int, float, str, list, dict (insertion order), plus Jinja's Undefined (a missing key), a
// namespace() and macros. Strings carry where their bytes came from: `Text` marks the byte ranges
// that came from the caller's data (message content, tool schemas), so the rendered prompt can be
// tokenized without letting that data become control tokens. Every operation keeps the marks:
// concatenation shifts them, slicing and stripping clip them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../../error.hpp"
#include "../../format/json.hpp"
#include "../python_values.hpp"

namespace qwen3::chat::jinja {

namespace detail {

// What a render may still allocate for strings, lists and dicts, counted as they are made (live or
// not), so that a template doubling a string or a list in a loop fails instead of taking the
// machine's memory. Set by the interpreter for the time of a render (interpreter.hpp).
struct AllocationBudget {
    std::uint64_t left = ~std::uint64_t(0);
};
inline thread_local AllocationBudget* allocation_budget = nullptr;

inline void spend(std::uint64_t bytes) {
    AllocationBudget* b = allocation_budget;
    if (!b) return;
    if (bytes > b->left)
        qwen3::detail::fail(ErrorCode::invalid_argument, "chat template: the render allocates more than RenderLimits::max_allocated_bytes");
    b->left -= bytes;
}
// For text still being built: fails once `size` alone passes what is left.
inline void check_growth(std::size_t size) {
    if (allocation_budget && size > allocation_budget->left) spend(size);
}

}  // namespace detail

// Bytes with the ranges [begin, end) that came from untrusted data (sorted, disjoint, not adjacent).
struct Text {
    std::string bytes;
    std::vector<std::pair<std::size_t, std::size_t>> untrusted;

    static Text trusted(std::string s) { return Text{std::move(s), {}}; }
    static Text from_data(std::string s) {
        Text t{std::move(s), {}};
        if (!t.bytes.empty()) t.untrusted.emplace_back(0, t.bytes.size());
        return t;
    }
    void mark(std::size_t begin, std::size_t end) {
        if (begin >= end) return;
        if (!untrusted.empty() && untrusted.back().second >= begin) untrusted.back().second = std::max(untrusted.back().second, end);
        else untrusted.emplace_back(begin, end);
    }
    void append(const Text& other) {
        detail::check_growth(bytes.size() + other.bytes.size());
        const std::size_t base = bytes.size();
        bytes += other.bytes;
        for (auto [b, e] : other.untrusted) mark(base + b, base + e);
    }
    void append_trusted(std::string_view s) { bytes += s; }
    // bytes [begin, end) with their marks
    Text slice(std::size_t begin, std::size_t end) const {
        Text out{bytes.substr(begin, end - begin), {}};
        for (auto [b, e] : untrusted) {
            const std::size_t lo = std::max(b, begin), hi = std::min(e, end);
            if (lo < hi) out.mark(lo - begin, hi - begin);
        }
        return out;
    }
    bool any_untrusted() const { return !untrusted.empty(); }
};


// Decimal digits (an optional '-' first) as a 64-bit integer; false when they are not that or do
// not fit.
inline bool parse_int64(std::string_view text, std::int64_t* out) {
    bool negative = false;
    if (!text.empty() && (text[0] == '-' || text[0] == '+')) negative = text[0] == '-', text.remove_prefix(1);
    if (text.empty()) return false;
    std::uint64_t v = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        if (v > (std::uint64_t(1) << 63) / 10) return false;
        v = v * 10 + std::uint64_t(c - '0');
    }
    if (v > (std::uint64_t(1) << 63) - (negative ? 0 : 1)) return false;
    *out = negative ? std::int64_t(0 - v) : std::int64_t(v);
    return true;
}

class Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion order, as Python's dict

struct Macro;  // interpreter.hpp

class Value {
public:
    enum class Kind : std::uint8_t { undefined, none, boolean, integer, floating, string, list, dict, names, macro, function };
    using Function = std::function<Value(std::vector<Value>&, std::vector<std::pair<std::string, Value>>&)>;

    Value() = default;  // Undefined
    static Value none() { return Value(Kind::none); }
    static Value boolean(bool b) {
        Value v(Kind::boolean);
        v.b_ = b;
        return v;
    }
    static Value integer(std::int64_t i) {
        Value v(Kind::integer);
        v.i_ = i;
        return v;
    }
    static Value floating(double f) {
        Value v(Kind::floating);
        v.f_ = f;
        return v;
    }
    static Value string(Text t) {
        detail::spend(t.bytes.size() + 16 * t.untrusted.size());
        Value v(Kind::string);
        v.s_ = std::make_shared<const Text>(std::move(t));
        return v;
    }
    static Value string(std::string s) { return string(Text::trusted(std::move(s))); }
    // Lists and dicts nest at most this deep (printing, comparing and tojson recurse through them;
    // a template rebinding x = [x] in a loop must not exhaust the stack).
    static constexpr int kMaxDepth = 256;
    static Value list(List items) {
        detail::spend(items.size() * sizeof(Value));
        Value v(Kind::list);
        v.depth_ = nested_depth(items);
        v.list_ = std::make_shared<List>(std::move(items));
        return v;
    }
    // A Python tuple: a list printed in parentheses (item pairs, tuple literals).
    static Value tuple(List items) {
        Value v = list(std::move(items));
        v.b_ = true;
        return v;
    }
    // `keys_from_data`: some key came from the caller's data (so printing the keys marks them untrusted)
    static Value dict(Dict items, bool keys_from_data = false) {
        detail::spend(items.size() * (sizeof(Value) + 32));
        Value v(Kind::dict);
        v.depth_ = 1;
        for (const auto& [k, x] : items) v.depth_ = std::max(v.depth_, x.depth_ + 1);
        if (v.depth_ > kMaxDepth) fail_depth();
        v.dict_ = std::make_shared<Dict>(std::move(items));
        v.data_ = keys_from_data;
        return v;
    }
    // namespace(): a dict whose members templates may assign ({% set ns.x = ... %})
    static Value names(Dict items, bool keys_from_data = false) {
        Value v(Kind::names);
        v.dict_ = std::make_shared<Dict>(std::move(items));
        v.data_ = keys_from_data;
        return v;
    }
    static Value macro(std::shared_ptr<const Macro> m) {
        Value v(Kind::macro);
        v.macro_ = std::move(m);
        return v;
    }
    static Value function(std::string name, Function f) {
        Value v(Kind::function);
        v.function_ = std::make_shared<const std::pair<std::string, Function>>(std::move(name), std::move(f));
        return v;
    }
    // A JSON value; strings (and object keys, which tojson prints) marked untrusted if `untrusted`.
    // Throws Error(invalid_argument) for an integer outside 64 bits.
    static Value from_json(const json::Value& j, bool untrusted) {
        switch (j.kind()) {
            case json::Value::Kind::null: return none();
            case json::Value::Kind::boolean: return boolean(j.as_bool());
            case json::Value::Kind::number: {
                const json::Number& n = j.as_number();
                if (!n.integral) return floating(n.value);
                if (!(std::fabs(n.value) < 9.2e18)) {  // Python's ints have no bound: kept to be printed
                    Value v = integer(0);
                    v.f_ = n.value;
                    v.big_ = std::make_shared<const std::string>(n.text);
                    return v;
                }
                std::int64_t i = 0;
                if (!parse_int64(n.text, &i)) i = std::int64_t(n.value);
                return integer(i);
            }
            case json::Value::Kind::string: return string(untrusted ? Text::from_data(j.as_string()) : Text::trusted(j.as_string()));
            case json::Value::Kind::array: {
                List items;
                for (const json::Value& x : j.as_array()) items.push_back(from_json(x, untrusted));
                return list(std::move(items));
            }
            case json::Value::Kind::object: {
                Dict items;
                for (const json::Member& m : j.as_object()) {
                    auto it = std::find_if(items.begin(), items.end(), [&](const auto& p) { return p.first == m.key; });
                    if (it != items.end()) it->second = from_json(m.value, untrusted);  // json.loads keeps the last
                    else items.emplace_back(m.key, from_json(m.value, untrusted));
                }
                return dict(std::move(items), untrusted);
            }
        }
        return {};
    }

    Kind kind() const noexcept { return kind_; }
    bool is_undefined() const noexcept { return kind_ == Kind::undefined; }
    bool is_none() const noexcept { return kind_ == Kind::none; }
    bool is_string() const noexcept { return kind_ == Kind::string; }
    bool is_number() const noexcept { return kind_ == Kind::integer || kind_ == Kind::floating; }
    bool is_list() const noexcept { return kind_ == Kind::list; }
    bool is_tuple() const noexcept { return kind_ == Kind::list && b_; }
    bool is_dict() const noexcept { return kind_ == Kind::dict; }
    bool is_mapping() const noexcept { return kind_ == Kind::dict || kind_ == Kind::names; }
    bool from_data() const noexcept { return data_; }
    bool as_bool() const noexcept { return b_; }
    std::int64_t as_integer() const noexcept { return i_; }
    double as_double() const noexcept { return kind_ == Kind::integer && !big_ ? double(i_) : f_; }
    // An integer past 64 bits from the caller's JSON: printable (its digits), not computable.
    bool is_big() const noexcept { return big_ != nullptr; }
    const std::string& big_digits() const { return *big_; }
    const Text& text() const { return *s_; }
    const std::string& str_bytes() const { return s_->bytes; }
    const List& items() const { return *list_; }
    const Dict& members() const { return *dict_; }
    Dict& mutable_members() const { return *dict_; }  // a namespace's, for {% set ns.x %}
    const Macro& as_macro() const { return *macro_; }
    const std::string& function_name() const { return function_->first; }
    const Function& as_function() const { return function_->second; }

    // dict member by key, nullptr if missing
    const Value* member(std::string_view key) const {
        for (const auto& [k, v] : *dict_)
            if (k == key) return &v;
        return nullptr;
    }

    // Python truthiness (Undefined is false).
    bool truthy() const {
        switch (kind_) {
            case Kind::undefined:
            case Kind::none: return false;
            case Kind::boolean: return b_;
            case Kind::integer: return i_ != 0;
            case Kind::floating: return f_ != 0;
            case Kind::string: return !s_->bytes.empty();
            case Kind::list: return !list_->empty();
            case Kind::dict: return !dict_->empty();
            default: return true;
        }
    }

private:
    explicit Value(Kind k) : kind_(k) {}
    static int nested_depth(const List& items) {
        int depth = 1;
        for (const Value& x : items) depth = std::max(depth, x.depth_ + 1);
        if (depth > kMaxDepth) fail_depth();
        return depth;
    }
    [[noreturn]] static void fail_depth() {
        qwen3::detail::fail(ErrorCode::invalid_argument, "chat template: lists or dicts nested more than ", kMaxDepth, " deep");
    }
    Kind kind_ = Kind::undefined;
    bool b_ = false;
    bool data_ = false;  // a dict from the caller's data
    int depth_ = 0;      // lists and dicts: 1 + the deepest item
    std::int64_t i_ = 0;
    double f_ = 0;
    std::shared_ptr<const Text> s_;
    std::shared_ptr<List> list_;
    std::shared_ptr<Dict> dict_;
    std::shared_ptr<const Macro> macro_;
    std::shared_ptr<const std::pair<std::string, Function>> function_;
    std::shared_ptr<const std::string> big_;
};

// Python's type name, for error messages.
inline const char* type_name(const Value& v) {
    switch (v.kind()) {
        case Value::Kind::undefined: return "Undefined";
        case Value::Kind::none: return "NoneType";
        case Value::Kind::boolean: return "bool";
        case Value::Kind::integer: return "int";
        case Value::Kind::floating: return "float";
        case Value::Kind::string: return "str";
        case Value::Kind::list: return "list";
        case Value::Kind::dict: return "dict";
        case Value::Kind::names: return "Namespace";
        case Value::Kind::macro: return "Macro";
        case Value::Kind::function: return "function";
    }
    return "?";
}

// Python's repr() of a value inside a container; str() of a top-level value is str_of().
inline void repr_to(std::string& out, const Value& v);

inline std::string float_repr(double f) {
    if (std::isnan(f)) return "nan";
    if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
    return json::python_float_repr(f);
}

// Python's repr() of a str: its quote choice and escapes (non-printable code points as \x, \u, \U).
inline void repr_string(std::string& out, std::string_view s) { qwen3::detail::python_repr_string(out, s); }

inline void repr_to(std::string& out, const Value& v) {
    switch (v.kind()) {
        case Value::Kind::undefined: break;
        case Value::Kind::none: out += "None"; break;
        case Value::Kind::boolean: out += v.as_bool() ? "True" : "False"; break;
        case Value::Kind::integer: out += v.is_big() ? v.big_digits() : std::to_string(v.as_integer()); break;
        case Value::Kind::floating: out += float_repr(v.as_double()); break;
        case Value::Kind::string: repr_string(out, v.str_bytes()); break;
        case Value::Kind::list: {
            out += v.is_tuple() ? '(' : '[';
            for (std::size_t i = 0; i < v.items().size(); ++i) {
                if (i) out += ", ";
                repr_to(out, v.items()[i]);
                detail::check_growth(out.size());
            }
            if (v.is_tuple() && v.items().size() == 1) out += ',';
            out += v.is_tuple() ? ')' : ']';
            break;
        }
        case Value::Kind::dict: {
            out += '{';
            bool first = true;
            for (const auto& [k, x] : v.members()) {
                if (!first) out += ", ";
                first = false;
                repr_string(out, k);
                out += ": ";
                repr_to(out, x);
                detail::check_growth(out.size());
            }
            out += '}';
            break;
        }
        case Value::Kind::names: out += "<Namespace>"; break;
        case Value::Kind::macro: out += "<Macro>"; break;
        case Value::Kind::function: out += "<function " + v.function_name() + ">"; break;
    }
}

// What `{{ v }}` prints: str(v), with a string's marks; Undefined prints nothing. Anything but a
// string is printed as untrusted (it is the caller's data or a number).
inline Text str_of(const Value& v) {
    if (v.is_string()) return v.text();
    std::string out;
    repr_to(out, v);
    return Text::from_data(std::move(out));
}

// json.dumps(v, ensure_ascii=False) as transformers' tojson filter calls it; `indent` < 0: none.
inline void dump_json(std::string& out, const Value& v, int indent, int level, const std::string& where) {
    auto newline = [&](int depth) {
        if (indent < 0) return;
        out += '\n';
        out.append(std::size_t(indent * depth), ' ');
    };
    switch (v.kind()) {
        case Value::Kind::none: out += "null"; break;
        case Value::Kind::boolean: out += v.as_bool() ? "true" : "false"; break;
        case Value::Kind::integer: out += v.is_big() ? v.big_digits() : std::to_string(v.as_integer()); break;
        case Value::Kind::floating: {
            const double f = v.as_double();
            out += std::isnan(f) ? "NaN" : std::isinf(f) ? (f > 0 ? "Infinity" : "-Infinity") : json::python_float_repr(f);
            break;
        }
        case Value::Kind::string: out += json::quote(v.str_bytes()); break;
        case Value::Kind::list: {
            if (v.items().empty()) {
                out += "[]";
                break;
            }
            out += '[';
            for (std::size_t i = 0; i < v.items().size(); ++i) {
                if (i) out += indent < 0 ? ", " : ",";
                newline(level + 1);
                dump_json(out, v.items()[i], indent, level + 1, where);
                detail::check_growth(out.size());
            }
            newline(level);
            out += ']';
            break;
        }
        case Value::Kind::dict: {
            if (v.members().empty()) {
                out += "{}";
                break;
            }
            out += '{';
            bool first = true;
            for (const auto& [k, x] : v.members()) {
                if (!first) out += indent < 0 ? ", " : ",";
                first = false;
                newline(level + 1);
                out += json::quote(k);
                out += ": ";
                dump_json(out, x, indent, level + 1, where);
                detail::check_growth(out.size());
            }
            newline(level);
            out += '}';
            break;
        }
        default:
            qwen3::detail::fail(ErrorCode::invalid_argument, where, "Object of type ", type_name(v), " is not JSON serializable");
    }
}

// Python's == (1 == 1.0; Undefined equals only Undefined).
inline bool equal(const Value& a, const Value& b) {
    if (a.is_number() && b.is_number()) {
        if (a.is_big() || b.is_big()) return a.is_big() && b.is_big() && a.big_digits() == b.big_digits();
        if (a.kind() == Value::Kind::integer && b.kind() == Value::Kind::integer) return a.as_integer() == b.as_integer();
        return a.as_double() == b.as_double();
    }
    if (a.kind() == Value::Kind::boolean && b.is_number()) return equal(Value::integer(a.as_bool()), b);
    if (b.kind() == Value::Kind::boolean && a.is_number()) return equal(a, Value::integer(b.as_bool()));
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
        case Value::Kind::undefined:
        case Value::Kind::none: return true;
        case Value::Kind::boolean: return a.as_bool() == b.as_bool();
        case Value::Kind::string: return a.str_bytes() == b.str_bytes();
        case Value::Kind::list: {
            if (a.is_tuple() != b.is_tuple() || a.items().size() != b.items().size()) return false;
            for (std::size_t i = 0; i < a.items().size(); ++i)
                if (!equal(a.items()[i], b.items()[i])) return false;
            return true;
        }
        case Value::Kind::dict: {
            if (a.members().size() != b.members().size()) return false;
            for (const auto& [k, x] : a.members()) {
                const Value* y = b.member(k);
                if (!y || !equal(x, *y)) return false;
            }
            return true;
        }
        default: return false;  // identity, which copies here do not keep
    }
}

// ---- UTF-8 code points (Python indexes strings by code point)

inline std::size_t code_point_count(std::string_view s) {
    std::size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

// byte offsets of each code point, plus s.size() at the end
inline std::vector<std::size_t> code_point_offsets(std::string_view s) {
    std::vector<std::size_t> at;
    for (std::size_t i = 0; i < s.size(); ++i)
        if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) at.push_back(i);
    at.push_back(s.size());
    return at;
}

}  // namespace qwen3::chat::jinja
