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
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "../format/json.hpp"
#include "../tokenizer/unicode.hpp"
#include "schema/gbnf_text.hpp"
#include "schema/number_ranges.hpp"
#include "schema/regex.hpp"

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
