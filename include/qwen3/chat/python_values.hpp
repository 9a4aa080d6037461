// qwen3/chat/python_values.hpp - the Python semantics the chat template relies on, over JSON values.
//
// Hugging Face renders chat templates with Python Jinja2, so a template expression means what it
// means in Python: `if x` is Python truthiness, `{{ x }}` prints str(x) (None, True, {'a': 1}),
// `a + b` needs two str, `s.strip('\n')` removes newlines only, a missing key is Jinja's Undefined
// (printed as "", falsy, an error when concatenated or called), and json.loads keeps the *last*
// value of a duplicated key. These helpers give chat/template.hpp exactly those meanings, so the
// renderer can follow the template line by line. A template value is a `Ref`: a pointer to a JSON
// value, or nullptr for Undefined.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../error.hpp"
#include "../format/json.hpp"

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
