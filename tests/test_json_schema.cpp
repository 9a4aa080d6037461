// JSON Schema -> GBNF (qwen3/grammar/json_schema.hpp). The grammars run on the library's recognizer
// against verdicts made elsewhere: the JSON-Schema-Test-Suite's (tests/data/grammar/json_schema_suite),
// python3-jsonschema's for a hand-written corpus of realistic schemas (tests/data/grammar/schemas,
// confirmed by tests/grammar/check_schema_corpus.py), and plain arithmetic for number ranges. Errors
// must name the keyword and its JSON pointer.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <qwen3/format/json.hpp>
#include <qwen3/grammar.hpp>
#include <qwen3/grammar/json_schema.hpp>

#include "support.hpp"

using qwen3::ErrorCode;
namespace json = qwen3::json;

namespace {

bool recognizes(const qwen3::Grammar& g, std::string_view text) {
    qwen3::GrammarRecognizer r(g);
    return r.accept(text) && r.complete();
}

// Property names in the order the schema first mentions them (in "properties", "required", or as
// keys of const/enum objects): the order in which the grammar wants object members.
void property_order(const json::Value& v, std::vector<std::string>& order, bool in_value = false) {
    auto add = [&](const std::string& name) {
        if (std::find(order.begin(), order.end(), name) == order.end()) order.push_back(name);
    };
    if (v.is_array()) {
        for (const json::Value& x : v.as_array()) property_order(x, order, in_value);
        return;
    }
    if (!v.is_object()) return;
    for (const json::Member& m : v.as_object()) {
        if (in_value) add(m.key);
        if (!in_value && m.key == "properties" && m.value.is_object())
            for (const json::Member& p : m.value.as_object()) add(p.key);
        if (!in_value && m.key == "required" && m.value.is_array())
            for (const json::Value& name : m.value.as_array())
                if (name.is_string()) add(name.as_string());
        property_order(m.value, order, in_value || (!in_value && (m.key == "const" || m.key == "enum")));
    }
}

// The plain decimal spelling of a JSON number's value: 1.0 -> 1, 1e2 -> 100, -0 -> 0, 1.50 -> 1.5.
std::string plain_number(const std::string& text) {
    std::size_t i = 0;
    const bool negative = text[0] == '-';
    if (negative) ++i;
    std::string digits;
    long point = 0;  // digits before the decimal point
    for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i, ++point) digits += text[i];
    if (i < text.size() && text[i] == '.')
        for (++i; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) digits += text[i];
    if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
        const long exponent = std::stol(text.substr(i + 1));
        if (std::labs(exponent) > 5000) return text;  // no such numbers in the data
        point += exponent;
    }
    while (!digits.empty() && digits[0] == '0') digits.erase(0, 1), --point;
    if (digits.empty()) return "0";
    std::string out;
    if (point <= 0) out = "0." + std::string(std::size_t(-point), '0') + digits;
    else if (std::size_t(point) >= digits.size()) out = digits + std::string(std::size_t(point) - digits.size(), '0');
    else out = digits.substr(0, std::size_t(point)) + "." + digits.substr(std::size_t(point));
    if (out.find('.') != std::string::npos) {
        while (out.back() == '0') out.pop_back();
        if (out.back() == '.') out.pop_back();
    }
    return negative ? "-" + out : out;
}

// JSON text with object members in `order` (others after, as they were) and plain numbers:
// compact, or pretty (a newline and two spaces per level, ": " after names).
void write(const json::Value& v, const std::vector<std::string>& order, bool pretty, int depth, std::string& out) {
    auto newline = [&](int d) {
        if (pretty) out += "\n" + std::string(std::size_t(2 * d), ' ');
    };
    if (v.is_number()) {
        out += plain_number(v.as_number().text);
    } else if (v.is_array()) {
        out += '[';
        for (std::size_t i = 0; i < v.as_array().size(); ++i) {
            if (i) out += ',';
            newline(depth + 1);
            write(v.as_array()[i], order, pretty, depth + 1, out);
        }
        if (!v.as_array().empty()) newline(depth);
        out += ']';
    } else if (v.is_object()) {
        std::vector<const json::Member*> members;
        for (const json::Member& m : v.as_object()) members.push_back(&m);
        auto rank = [&](const json::Member* m) { return std::find(order.begin(), order.end(), m->key) - order.begin(); };
        std::stable_sort(members.begin(), members.end(), [&](auto* a, auto* b) { return rank(a) < rank(b); });
        out += '{';
        for (std::size_t i = 0; i < members.size(); ++i) {
            if (i) out += ',';
            newline(depth + 1);
            out += json::dump(json::Value(members[i]->key)) + (pretty ? ": " : ":");
            write(members[i]->value, order, pretty, depth + 1, out);
        }
        if (!members.empty()) newline(depth);
        out += '}';
    } else {
        out += json::dump(v);
    }
}

std::string text_of(const json::Value& v, const std::vector<std::string>& order, bool pretty) {
    std::string out;
    write(v, order, pretty, 0, out);
    return out;
}

// A schema the converter cannot express exactly (or that is malformed), by the suite case's names.
struct ExpectedError {
    const char* file;
    const char* schema;  // the case's description
    ErrorCode code;
    const char* needle;  // in the message
};

// A valid instance the grammar rejects by design (the spellings at the top of json_schema.hpp).
struct KnownRejection {
    const char* file;
    const char* schema;
    const char* test;
    const char* reason;
};

// Every suite case the converter refuses; all other cases must convert.
const ExpectedError kSuiteErrors[] = {
    {"draft2020-12/additionalProperties.json", "additionalProperties being false does not allow other properties", ErrorCode::unsupported, "keyword \"patternProperties\" at the root"},
    {"draft2020-12/additionalProperties.json", "non-ASCII pattern with additionalProperties", ErrorCode::unsupported, "keyword \"patternProperties\" at the root"},
    {"draft2020-12/additionalProperties.json", "additionalProperties with propertyNames", ErrorCode::unsupported, "keyword \"propertyNames\" at the root"},
    {"draft2020-12/additionalProperties.json", "dependentSchemas with additionalProperties", ErrorCode::unsupported, "keyword \"dependentSchemas\" at the root"},
    {"draft2020-12/allOf.json", "allOf with boolean schemas, some false", ErrorCode::invalid_argument, "accepts no value"},
    {"draft2020-12/allOf.json", "allOf with boolean schemas, all false", ErrorCode::invalid_argument, "accepts no value"},
    {"draft2020-12/allOf.json", "allOf combined with anyOf, oneOf", ErrorCode::unsupported, "keyword \"multipleOf\" at /allOf/0"},
    {"draft2020-12/anchor.json", "Location-independent identifier with absolute URI", ErrorCode::unsupported, "$ref \"http://localhost:1234/draft2020-12/bar#foo\" at the root"},
    {"draft2020-12/anchor.json", "Location-independent identifier with base URI change in subschema", ErrorCode::unsupported, "$ref \"http://localhost:1234/draft2020-12/nested.json#foo\" at the root"},
    {"draft2020-12/anchor.json", "same $anchor with different base uri", ErrorCode::unsupported, "$ref \"child1#my_anchor\" at the root"},
    {"draft2020-12/anyOf.json", "anyOf with boolean schemas, all false", ErrorCode::invalid_argument, "accepts no value"},
    {"draft2020-12/boolean_schema.json", "boolean schema 'false'", ErrorCode::invalid_argument, "accepts no value"},
    {"draft2020-12/defs.json", "validate definition against metaschema", ErrorCode::unsupported, "$ref \"https://json-schema.org/draft/2020-12/schema\" at the root"},
    {"draft2020-12/enum.json", "empty enum", ErrorCode::invalid_argument, "accepts no value"},
    {"draft2020-12/not.json", "not", ErrorCode::unsupported, "keyword \"not\" at the root"},
    {"draft2020-12/not.json", "not multiple types", ErrorCode::unsupported, "keyword \"not\" at the root"},
    {"draft2020-12/not.json", "not more complex schema", ErrorCode::unsupported, "keyword \"not\" at the root"},
    {"draft2020-12/not.json", "forbidden property", ErrorCode::unsupported, "keyword \"not\" at /properties/foo"},
    {"draft2020-12/not.json", "forbid everything with empty schema", ErrorCode::unsupported, "keyword \"not\" at the root"},
    {"draft2020-12/not.json", "forbid everything with boolean schema true", ErrorCode::unsupported, "keyword \"not\" at the root"},
    {"draft2020-12/not.json", "allow everything with boolean schema false", ErrorCode::unsupported, "keyword \"not\" at the root"},
    {"draft2020-12/not.json", "double negation", ErrorCode::unsupported, "keyword \"not\" at the root"},
    {"draft2020-12/not.json", "collect annotations inside a 'not', even if collection is disabled", ErrorCode::unsupported, "keyword \"not\" at the root"},
    {"draft2020-12/oneOf.json", "oneOf", ErrorCode::unsupported, "keyword \"oneOf\" at the root"},
    {"draft2020-12/oneOf.json", "oneOf with base schema", ErrorCode::unsupported, "keyword \"oneOf\" at the root"},
    {"draft2020-12/oneOf.json", "oneOf with boolean schemas, all true", ErrorCode::unsupported, "keyword \"oneOf\" at the root"},
    {"draft2020-12/oneOf.json", "oneOf with boolean schemas, more than one true", ErrorCode::unsupported, "keyword \"oneOf\" at the root"},
    {"draft2020-12/oneOf.json", "oneOf with boolean schemas, all false", ErrorCode::invalid_argument, "accepts no value"},
    {"draft2020-12/oneOf.json", "oneOf complex types", ErrorCode::unsupported, "keyword \"oneOf\" at the root"},
    {"draft2020-12/oneOf.json", "oneOf with empty schema", ErrorCode::unsupported, "keyword \"oneOf\" at the root"},
    {"draft2020-12/oneOf.json", "oneOf with required", ErrorCode::unsupported, "keyword \"oneOf\" at the root"},
    {"draft2020-12/oneOf.json", "oneOf with missing optional property", ErrorCode::unsupported, "keyword \"oneOf\" at the root"},
    {"draft2020-12/optional/ecmascript-regex.json", "patterns always use unicode semantics with pattern", ErrorCode::unsupported, "the Unicode property escape"},
    {"draft2020-12/optional/ecmascript-regex.json", "pattern with non-ASCII digits", ErrorCode::unsupported, "the Unicode property escape"},
    {"draft2020-12/optional/ecmascript-regex.json", "patterns always use unicode semantics with patternProperties", ErrorCode::unsupported, "keyword \"patternProperties\" at the root"},
    {"draft2020-12/optional/ecmascript-regex.json", "\\w in patternProperties matches [A-Za-z0-9_], not unicode letters", ErrorCode::unsupported, "keyword \"patternProperties\" at the root"},
    {"draft2020-12/optional/ecmascript-regex.json", "patternProperties with ASCII ranges", ErrorCode::unsupported, "keyword \"patternProperties\" at the root"},
    {"draft2020-12/optional/ecmascript-regex.json", "\\d in patternProperties matches [0-9], not unicode digits", ErrorCode::unsupported, "keyword \"patternProperties\" at the root"},
    {"draft2020-12/optional/ecmascript-regex.json", "patternProperties with non-ASCII digits", ErrorCode::unsupported, "keyword \"patternProperties\" at the root"},
    {"draft2020-12/optional/float-overflow.json", "all integers are multiples of 0.5, if overflow is handled", ErrorCode::unsupported, "keyword \"multipleOf\" at the root"},
    {"draft2020-12/optional/non-bmp-regex.json", "Proper UTF-16 surrogate pair handling: patternProperties", ErrorCode::unsupported, "keyword \"patternProperties\" at the root"},
    {"draft2020-12/pattern.json", "pattern with Unicode property escape requires unicode mode", ErrorCode::unsupported, "the Unicode property escape"},
    {"draft2020-12/properties.json", "properties, patternProperties, additionalProperties interaction", ErrorCode::unsupported, "keyword \"patternProperties\" at the root"},
    {"draft2020-12/ref.json", "remote ref, containing refs itself", ErrorCode::unsupported, "$ref \"https://json-schema.org/draft/2020-12/schema\" at the root"},
    {"draft2020-12/ref.json", "$ref to boolean schema false", ErrorCode::invalid_argument, "accepts no value"},
    {"draft2020-12/ref.json", "Recursive references between schemas", ErrorCode::unsupported, "$ref \"node\" at /properties/nodes/items"},
    {"draft2020-12/ref.json", "ref creates new scope when adjacent to keywords", ErrorCode::unsupported, "keyword \"unevaluatedProperties\" at /$defs/A"},
    {"draft2020-12/ref.json", "refs with relative uris and defs", ErrorCode::unsupported, "$ref \"schema-relative-uri-defs2.json\" at the root"},
    {"draft2020-12/ref.json", "relative refs with absolute uris and defs", ErrorCode::unsupported, "$ref \"schema-refs-absolute-uris-defs2.json\" at the root"},
    {"draft2020-12/ref.json", "$id must be resolved against nearest parent, not just immediate parent", ErrorCode::unsupported, "$ref \"http://example.com/b/d.json\" at /allOf/0"},
    {"draft2020-12/ref.json", "order of evaluation: $id and $ref", ErrorCode::unsupported, "$ref \"int.json\" at the root"},
    {"draft2020-12/ref.json", "order of evaluation: $id and $ref on nested schema", ErrorCode::unsupported, "$ref \"nested/foo.json\" at the root"},
    {"draft2020-12/ref.json", "URN ref with nested pointer ref", ErrorCode::unsupported, "$ref \"urn:uuid:deadbeef-4321-ffff-ffff-1234feebdaed\" at the root"},
    {"draft2020-12/ref.json", "ref to if", ErrorCode::unsupported, "keyword \"if\" at the root"},
    {"draft2020-12/ref.json", "ref to then", ErrorCode::unsupported, "keyword \"then\" at the root"},
    {"draft2020-12/ref.json", "ref to else", ErrorCode::unsupported, "keyword \"else\" at the root"},
    {"draft2020-12/ref.json", "ref with absolute-path-reference", ErrorCode::unsupported, "$ref \"/absref/foobar.json\" at the root"},
    {"draft2020-12/uniqueItems.json", "uniqueItems validation", ErrorCode::unsupported, "keyword \"uniqueItems\" at the root"},
    {"draft2020-12/uniqueItems.json", "uniqueItems with an array of items", ErrorCode::unsupported, "keyword \"uniqueItems\" at the root"},
    {"draft2020-12/uniqueItems.json", "uniqueItems with an array of items and additionalItems=false", ErrorCode::unsupported, "keyword \"uniqueItems\" at the root"},
    {"draft7/definitions.json", "validate definition against metaschema", ErrorCode::unsupported, "$ref \"http://json-schema.org/draft-07/schema#\" at the root"},
    {"draft7/ref.json", "$ref prevents a sibling $id from changing the base uri", ErrorCode::unsupported, "$ref \"foo.json\" at /allOf/0"},
    {"draft7/ref.json", "remote ref, containing refs itself", ErrorCode::unsupported, "$ref \"http://json-schema.org/draft-07/schema#\" at the root"},
    {"draft7/ref.json", "$ref to boolean schema false", ErrorCode::invalid_argument, "accepts no value"},
    {"draft7/ref.json", "Recursive references between schemas", ErrorCode::unsupported, "$ref \"node\" at /properties/nodes/items"},
    {"draft7/ref.json", "Location-independent identifier with base URI change in subschema", ErrorCode::unsupported, "$ref \"http://localhost:1234/nested.json#foo\" at /allOf/0"},
    {"draft7/ref.json", "refs with relative uris and defs", ErrorCode::unsupported, "$ref \"schema-relative-uri-defs2.json\" at /allOf/0"},
    {"draft7/ref.json", "relative refs with absolute uris and defs", ErrorCode::unsupported, "$ref \"schema-refs-absolute-uris-defs2.json\" at /allOf/0"},
    {"draft7/ref.json", "$id must be resolved against nearest parent, not just immediate parent", ErrorCode::unsupported, "$ref \"http://example.com/b/d.json\" at /allOf/0"},
    {"draft7/ref.json", "ref to if", ErrorCode::unsupported, "$ref \"http://example.com/ref/if\" at /allOf/0"},
    {"draft7/ref.json", "ref to then", ErrorCode::unsupported, "$ref \"http://example.com/ref/then\" at /allOf/0"},
    {"draft7/ref.json", "ref to else", ErrorCode::unsupported, "$ref \"http://example.com/ref/else\" at /allOf/0"},
    {"draft7/ref.json", "ref with absolute-path-reference", ErrorCode::unsupported, "$ref \"/absref/foobar.json\" at /allOf/0"},
};

// A leap second is accepted only as 23:59:60 with a zero offset: pairing the local time with any
// offset would take thousands of alternatives.
constexpr const char* kLeapSecond = "a leap second with a non-zero offset";
// "t" and "z" are RFC 3339 but not what validators in common use accept (python-jsonschema's time
// check rejects "z"): the grammar writes "T" and "Z" only.
constexpr const char* kLowerCase = "a lower-case t or z";
const KnownRejection kSuiteRejections[] = {
    {"draft2020-12/optional/format/date-time.json", "validation of date-time strings", "a valid date-time with a leap second, with minus offset", kLeapSecond},
    {"draft2020-12/optional/format/time.json", "validation of time strings", "valid leap second, positive time-offset", kLeapSecond},
    {"draft2020-12/optional/format/time.json", "validation of time strings", "valid leap second, large positive time-offset", kLeapSecond},
    {"draft2020-12/optional/format/time.json", "validation of time strings", "valid leap second, negative time-offset", kLeapSecond},
    {"draft2020-12/optional/format/time.json", "validation of time strings", "valid leap second, large negative time-offset", kLeapSecond},
    {"draft2020-12/optional/format/date-time.json", "validation of date-time strings", "case-insensitive T and Z", kLowerCase},
    {"draft2020-12/optional/format/time.json", "validation of time strings", "a valid time string with case-insensitive Z", kLowerCase},
};

std::vector<std::string> json_files(const std::string& dir) {
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
        if (e.path().extension() == ".json") files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    return files;
}

std::string relative(const std::string& path, const std::string& dir) { return path.substr(dir.size() + 1); }

// What the suite test saw, for its closing message.
struct Tally {
    int schemas = 0, errors = 0, instances = 0, known = 0;
};

}  // namespace

TEST_CASE("JSON-Schema-Test-Suite: grammars reject every invalid instance and accept the valid ones") {
    const std::string dir = test::data_path("grammar/json_schema_suite");
    std::set<std::string> used_errors, used_rejections;
    Tally tally;
    for (const std::string& path : json_files(dir)) {
        const std::string file = relative(path, dir);
        const json::Value cases = test::read_json(path);
        for (const json::Value& c : cases.as_array()) {
            const std::string description = c.at("description").as_string();
            const std::string where = file + ": " + description;
            json::Value schema = c.at("schema");
            if (file.starts_with("draft7/") && schema.is_object() && !schema.find("$schema"))
                schema.set("$schema", "http://json-schema.org/draft-07/schema#");
            const ExpectedError* expected = nullptr;
            for (const ExpectedError& e : kSuiteErrors)
                if (file == e.file && description == e.schema) expected = &e;
            std::string gbnf;
            try {
                gbnf = qwen3::json_schema_to_gbnf(schema);
            } catch (const qwen3::Error& e) {
                ++tally.errors;
                CHECK_MESSAGE(expected, where << ": unexpected error: " << std::string(e.what()));
                if (expected) {
                    used_errors.insert(where);
                    CHECK_MESSAGE(e.code() == expected->code, where << ": " << std::string(e.what()));
                    CHECK_MESSAGE(std::string(e.what()).find(expected->needle) != std::string::npos, where << ": " << std::string(e.what()));
                }
                continue;
            }
            CHECK_MESSAGE(!expected, where << ": converted, but an error was expected");
            ++tally.schemas;
            const qwen3::Grammar g = qwen3::Grammar::from_gbnf(gbnf);
            std::vector<std::string> order;
            property_order(schema, order);
            for (const json::Value& t : c.at("tests").as_array()) {
                const std::string test_description = t.at("description").as_string();
                const bool valid = t.at("valid").as_bool();
                const std::string compact = text_of(t.at("data"), order, false), pretty = text_of(t.at("data"), order, true);
                const bool accepted = recognizes(g, compact), accepted_pretty = recognizes(g, pretty);
                ++tally.instances;
                if (!valid) {
                    CHECK_MESSAGE(!accepted, where << " | " << test_description << ": accepts invalid " << compact << "\n" << gbnf);
                    CHECK_MESSAGE(!accepted_pretty, where << " | " << test_description << ": accepts invalid " << pretty << "\n" << gbnf);
                    continue;
                }
                const KnownRejection* known = nullptr;
                for (const KnownRejection& k : kSuiteRejections)
                    if (file == k.file && description == k.schema && test_description == k.test) known = &k;
                if (known) {
                    ++tally.known;
                    used_rejections.insert(where + " | " + test_description);
                    CHECK_MESSAGE(!accepted, where << " | " << test_description << ": now accepted; drop it from kSuiteRejections");
                    continue;
                }
                CHECK_MESSAGE(accepted, where << " | " << test_description << ": rejects valid " << compact << "\n" << gbnf);
                CHECK_MESSAGE(accepted_pretty, where << " | " << test_description << ": rejects valid " << pretty << "\n" << gbnf);
            }
        }
    }
    for (const ExpectedError& e : kSuiteErrors)  // no stale entries
        CHECK_MESSAGE(used_errors.count(std::string(e.file) + ": " + e.schema), "no such case: " << e.file << ": " << e.schema);
    for (const KnownRejection& k : kSuiteRejections)
        CHECK_MESSAGE(used_rejections.count(std::string(k.file) + ": " + k.schema + " | " + k.test),
                      "no such test: " << k.file << ": " << k.schema << " | " << k.test);
    MESSAGE("suite: " << tally.schemas << " schemas converted, " << tally.errors << " refused, " << tally.instances
                      << " instances checked, " << tally.known << " valid ones rejected by design");
}

TEST_CASE("realistic schemas: grammars agree with python3-jsonschema's verdicts") {
    const std::string dir = test::data_path("grammar/schemas");
    int files = 0, instances = 0;
    for (const std::string& path : json_files(dir)) {
        const json::Value c = test::read_json(path);
        const std::string where = relative(path, dir);
        const json::Value& schema = c.at("schema");
        std::string gbnf;
        REQUIRE_NOTHROW_MESSAGE(gbnf = qwen3::json_schema_to_gbnf(schema), where);
        const qwen3::Grammar g = qwen3::Grammar::from_gbnf(gbnf);
        std::vector<std::string> order;
        property_order(schema, order);
        ++files;
        for (const char* key : {"valid", "invalid"}) {
            const bool valid = std::string(key) == "valid";
            for (const json::Value& instance : c.at(key).as_array()) {
                ++instances;
                for (bool pretty : {false, true}) {
                    const std::string text = text_of(instance, order, pretty);
                    CHECK_MESSAGE(recognizes(g, text) == valid, where << ": " << (valid ? "rejects valid " : "accepts invalid ") << text << "\n" << gbnf);
                }
            }
        }
    }
    CHECK(files >= 40);
    MESSAGE("corpus: " << files << " schemas, " << instances << " instances");
}

namespace {

struct ErrorCase {
    const char* schema;
    ErrorCode code;
    const char* needle;
};

// Schemas the converter must refuse, with what the message must say (the keyword or construct, and
// where). Verdicts by reading the JSON Schema specification.
const ErrorCase kErrorCases[] = {
    // keywords it cannot express exactly, named with their JSON pointer
    {R"j({"type": "object", "patternProperties": {"^a": {}}})j", ErrorCode::unsupported, "keyword \"patternProperties\" at the root is not supported"},
    {R"j({"properties": {"a": {"not": {"type": "string"}}}})j", ErrorCode::unsupported, "keyword \"not\" at /properties/a is not supported"},
    {R"j({"items": {"properties": {"x/y~z": {"multipleOf": 2}}}})j", ErrorCode::unsupported, "keyword \"multipleOf\" at /items/properties/x~1y~0z"},
    {R"j({"$defs": {"a": {"if": {"type": "string"}}}, "$ref": "#/$defs/a"})j", ErrorCode::unsupported, "keyword \"if\" at /$defs/a"},
    {R"j({"type": "array", "uniqueItems": true})j", ErrorCode::unsupported, "keyword \"uniqueItems\" at the root is not supported when true"},
    {R"j({"type": "array", "contains": {"type": "integer"}})j", ErrorCode::unsupported, "keyword \"contains\" at the root"},
    {R"j({"type": "object", "minProperties": 1})j", ErrorCode::unsupported, "keyword \"minProperties\" at the root"},
    {R"j({"dependentRequired": {"a": ["b"]}})j", ErrorCode::unsupported, "keyword \"dependentRequired\""},
    {R"j({"unevaluatedProperties": false})j", ErrorCode::unsupported, "keyword \"unevaluatedProperties\""},
    {R"j({"type": "string", "x-display": "wide"})j", ErrorCode::unsupported, "keyword \"x-display\" at the root"},
    {R"j({"type": "string", "nullable": true})j", ErrorCode::unsupported, "keyword \"nullable\""},
    {R"j({"properties": {"a": {"$id": "http://example.com/a", "type": "string"}}})j", ErrorCode::unsupported, "keyword \"$id\" at /properties/a is not supported below the root"},
    {R"j({"$dynamicRef": "#meta"})j", ErrorCode::unsupported, "keyword \"$dynamicRef\""},
    // combinations it cannot express exactly
    {R"j({"oneOf": [{"type": "string"}, {"minLength": 2}]})j", ErrorCode::unsupported, "keyword \"oneOf\" at the root is not supported: branches 0 and 1"},
    {R"({"properties": {"s": {"oneOf": [{"type": "object", "properties": {"k": {"const": "a"}}}, {"type": "object", "properties": {"k": {"const": "b"}}}]}}})",
     ErrorCode::unsupported, "keyword \"oneOf\" at /properties/s"},  // k is required by neither branch: {} matches both
    {R"j({"enum": ["a", "bb"], "pattern": "^a"})j", ErrorCode::unsupported, "\"enum\"/\"const\" at /enum together with \"pattern\""},
    {R"j({"const": [1], "minItems": 1})j", ErrorCode::unsupported, "\"enum\"/\"const\" at /const together with \"items\" or \"minItems\"/\"maxItems\""},
    {R"j({"type": "string", "format": "date", "maxLength": 20})j", ErrorCode::unsupported, "\"format\" at the root together with \"minLength\"/\"maxLength\" at /maxLength"},
    {R"j({"type": "string", "pattern": "^a+b$", "maxLength": 3})j", ErrorCode::unsupported, "\"pattern\" at the root together with \"minLength\"/\"maxLength\""},
    {R"j({"allOf": [{"pattern": "^a"}, {"pattern": "b$"}]})j", ErrorCode::unsupported, "two different \"pattern\" keywords (at /allOf/0 and /allOf/1)"},
    {R"j({"properties": {"mail": {"type": "string", "format": "email"}}})j", ErrorCode::unsupported, "\"format\": \"email\" at /properties/mail is not supported"},
    {R"j({"properties": {"bio": {"type": "string", "maxLength": 65535}}})j", ErrorCode::unsupported, "\"maxLength\": 65535 at /properties/bio is not supported: counts above 10000"},
    // patterns
    {R"j({"properties": {"p": {"pattern": "(?=a)b"}}})j", ErrorCode::unsupported, "pattern \"(?=a)b\" at /properties/p: lookahead"},
    {R"j({"pattern": "(?<!a)b"})j", ErrorCode::unsupported, "lookbehind"},
    {R"j({"pattern": "\\bword"})j", ErrorCode::unsupported, "the word boundary \"\\b\""},
    {R"j({"pattern": "(a)\\1"})j", ErrorCode::unsupported, "the backreference \"\\1\""},
    {R"j({"pattern": "\\p{L}"})j", ErrorCode::unsupported, "the Unicode property escape"},
    {R"j({"pattern": "a^b"})j", ErrorCode::unsupported, "\"^\" after the start of the pattern"},
    {R"j({"pattern": "(a$)"})j", ErrorCode::unsupported, "\"$\" inside a group"},
    {R"j({"pattern": "a{3,1}"})j", ErrorCode::invalid_argument, "numbers out of order in a {m,n} quantifier"},
    {R"j({"pattern": "[z-a]"})j", ErrorCode::invalid_argument, "a range out of order"},
    {R"j({"pattern": "(ab"})j", ErrorCode::invalid_argument, "missing \")\""},
    {R"j({"pattern": "ab)"})j", ErrorCode::invalid_argument, "unmatched \")\""},
    {R"j({"pattern": "*a"})j", ErrorCode::invalid_argument, "nothing to repeat"},
    {R"j({"pattern": "a**"})j", ErrorCode::invalid_argument, "nothing to repeat"},
    {R"j({"pattern": "[ab"})j", ErrorCode::invalid_argument, "missing \"]\""},
    {R"j({"pattern": "\\q"})j", ErrorCode::invalid_argument, "unknown escape \"\\q\""},
    {R"j({"pattern": "a{20000}"})j", ErrorCode::unsupported, "a repetition count above 10000"},
    // malformed schemas, named with the pointer
    {R"j({"minimum": "3"})j", ErrorCode::invalid_argument, "\"minimum\" at the root must be a number, found a string"},
    {R"j({"properties": {"n": {"maxLength": -1}}})j", ErrorCode::invalid_argument, "\"maxLength\" at /properties/n must be a whole number >= 0, found -1"},
    {R"j({"minItems": 1.5})j", ErrorCode::invalid_argument, "\"minItems\" at the root must be a whole number >= 0, found 1.5"},
    {R"j({"type": "strin"})j", ErrorCode::invalid_argument, "\"type\" at the root names the unknown type \"strin\""},
    {R"j({"type": ["string", 3]})j", ErrorCode::invalid_argument, "\"type\" at the root must be a type name or an array of them"},
    {R"j({"required": "a"})j", ErrorCode::invalid_argument, "\"required\" at the root must be an array of strings, found a string"},
    {R"j({"properties": []})j", ErrorCode::invalid_argument, "\"properties\" at the root must be an object of schemas"},
    {R"j({"properties": {"a": 1}})j", ErrorCode::invalid_argument, "\"property\" at /properties/a must be a schema"},
    {R"j({"anyOf": []})j", ErrorCode::invalid_argument, "\"anyOf\" at the root must be a non-empty array of schemas"},
    {R"j({"items": 3})j", ErrorCode::invalid_argument, "\"items\" at the root must be a schema"},
    {R"j({"items": [{}], "prefixItems": [{}]})j", ErrorCode::invalid_argument, "is an array (draft 7) beside \"prefixItems\""},
    {R"j({"exclusiveMinimum": true})j", ErrorCode::invalid_argument, "\"exclusiveMinimum\" at the root is a boolean without \"minimum\""},
    {R"j({"enum": "a"})j", ErrorCode::invalid_argument, "\"enum\" at the root must be an array"},
    {R"j(3)j", ErrorCode::invalid_argument, "a schema must be an object or a boolean"},
    // $ref
    {R"j({"$ref": "#/$defs/missing"})j", ErrorCode::invalid_argument, "$ref \"#/$defs/missing\" at the root does not resolve: no value at that pointer"},
    {R"j({"properties": {"a": {"$ref": "#nope"}}})j", ErrorCode::invalid_argument, "$ref \"#nope\" at /properties/a does not resolve: no \"$anchor\" has that name"},
    {R"j({"properties": {"a": {"$ref": "other.json#/x"}}})j", ErrorCode::unsupported, "$ref \"other.json#/x\" at /properties/a refers to another document"},
    {R"j({"$ref": 5})j", ErrorCode::invalid_argument, "\"$ref\" at the root must be a string"},
    {R"j({"$defs": {"a": 3}, "$ref": "#/$defs/a"})j", ErrorCode::invalid_argument, "the value at /$defs/a must be a schema"},
    // nothing can be generated
    {R"j(false)j", ErrorCode::invalid_argument, "the schema accepts no value"},
    {R"j({"type": "string", "minLength": 5, "maxLength": 2})j", ErrorCode::invalid_argument, "the schema accepts no value"},
    {R"j({"type": "integer", "minimum": 3, "maximum": 2})j", ErrorCode::invalid_argument, "the schema accepts no value"},
    {R"j({"type": "integer", "exclusiveMinimum": 2, "exclusiveMaximum": 3})j", ErrorCode::invalid_argument, "the schema accepts no value"},
    {R"j({"allOf": [{"type": "string"}, {"type": "number"}]})j", ErrorCode::invalid_argument, "the schema accepts no value"},
    {R"j({"type": "object", "properties": {"a": false}, "required": ["a"]})j", ErrorCode::invalid_argument, "the schema accepts no value"},
    {R"j({"type": "array", "items": false, "minItems": 1})j", ErrorCode::invalid_argument, "the schema accepts no value"},
    {R"j({"enum": [1, "a"], "type": "boolean"})j", ErrorCode::invalid_argument, "the schema accepts no value"},
};

}  // namespace

TEST_CASE("unsupported keywords, malformed schemas and bad $refs are errors naming the keyword and its pointer") {
    for (const ErrorCase& e : kErrorCases) {
        std::string message;
        CHECK_MESSAGE(test::throws_error([&] { qwen3::json_schema_to_gbnf(json::parse(e.schema)); }, e.code, e.needle, &message),
                      e.schema << " -> " << message << " (expected " << qwen3::to_string(e.code) << ": " << e.needle << ")");
    }
    CHECK(test::throws_error([] { qwen3::json_schema_to_gbnf(json::parse("{}"), {.max_whitespace = -1}); }, ErrorCode::invalid_argument,
                             "max_whitespace must be 0 or more"));
}

namespace {

// The schema's grammar, compiled.
qwen3::Grammar grammar_of(const std::string& schema, const qwen3::JsonSchemaOptions& options = {}) {
    return qwen3::Grammar::from_gbnf(qwen3::json_schema_to_gbnf(json::parse(schema), options));
}

}  // namespace

TEST_CASE("integer bounds accept exactly the integers in range, written plainly") {
    struct Range {
        const char* schema;
        long lo, hi;  // inclusive; LONG_MIN / LONG_MAX: unbounded
    };
    const Range ranges[] = {
        {R"({"type": "integer", "minimum": 1, "maximum": 12})", 1, 12},
        {R"({"type": "integer", "minimum": -5, "maximum": 5})", -5, 5},
        {R"({"type": "integer", "minimum": 0, "maximum": 100000})", 0, 100000},
        {R"({"type": "integer", "minimum": -1000, "maximum": -10})", -1000, -10},
        {R"({"type": "integer", "minimum": 7, "maximum": 7})", 7, 7},
        {R"({"type": "integer", "minimum": 9, "maximum": 1001})", 9, 1001},
        {R"({"type": "integer", "minimum": 10, "maximum": 99})", 10, 99},
        {R"({"type": "integer", "minimum": 123, "maximum": 4567})", 123, 4567},
        {R"({"type": "integer", "exclusiveMinimum": -3.5, "exclusiveMaximum": 2.5})", -3, 2},
        {R"({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10})", 1, 9},
        {R"({"type": "integer", "minimum": 0.5, "maximum": 19.99})", 1, 19},
        {R"({"type": "integer", "minimum": 1e2, "maximum": 2.5e2})", 100, 250},
        {R"({"type": "integer", "maximum": 42})", LONG_MIN, 42},
        {R"({"type": "integer", "minimum": -3})", -3, LONG_MAX},
        {R"({"type": "integer", "minimum": 95})", 95, LONG_MAX},
        {R"({"type": "integer", "maximum": -95})", LONG_MIN, -95},
        {R"({"type": "integer", "minimum": 5, "exclusiveMinimum": 5, "maximum": 8, "exclusiveMaximum": 8.5})", 6, 8},
        {R"({"type": "integer", "minimum": 3, "exclusiveMinimum": true, "maximum": 6, "exclusiveMaximum": true})", 4, 5},  // draft 4
    };
    for (const Range& r : ranges) {
        const qwen3::Grammar g = grammar_of(r.schema);
        const long from = r.lo == LONG_MIN ? r.hi - 3000 : r.lo - 1500, to = r.hi == LONG_MAX ? r.lo + 3000 : r.hi + 1500;
        for (long v = from; v <= to; ++v) {
            const bool inside = v >= r.lo && v <= r.hi;
            CHECK_MESSAGE(recognizes(g, std::to_string(v)) == inside, r.schema << ": " << v);
        }
        for (const char* spelling : {"-0", "00", "01", "+1", "1.0", "1e0", "", "-"}) CHECK_MESSAGE(!recognizes(g, spelling), r.schema << ": " << spelling);
    }
    // bounds beyond 64 bits
    const qwen3::Grammar big = grammar_of(R"({"type": "integer", "minimum": 18446744073709551616, "maximum": 1e30})");
    CHECK(recognizes(big, "18446744073709551616"));
    CHECK(recognizes(big, "1000000000000000000000000000000"));
    CHECK(recognizes(big, "999999999999999999999999999999"));
    CHECK(!recognizes(big, "18446744073709551615"));
    CHECK(!recognizes(big, "1000000000000000000000000000001"));
}

TEST_CASE("number bounds accept exactly the plain decimals in range") {
    // Bounds and candidates in thousandths, so that the reference is integer arithmetic.
    struct Range {
        const char* schema;
        long lo, hi;       // thousandths; LONG_MIN / LONG_MAX: unbounded
        bool lo_open, hi_open;
    };
    const Range ranges[] = {
        {R"({"type": "number", "minimum": -1.5, "exclusiveMaximum": 2.25})", -1500, 2250, false, true},
        {R"({"type": "number", "exclusiveMinimum": 0, "maximum": 1})", 0, 1000, true, false},
        {R"({"type": "number", "minimum": -0.001, "maximum": 0.001})", -1, 1, false, false},
        {R"({"type": "number", "exclusiveMinimum": -10.5, "maximum": -0.25})", -10500, -250, true, false},
        {R"({"type": "number", "minimum": 0.5})", 500, LONG_MAX, false, false},
        {R"({"type": "number", "exclusiveMaximum": -3.75})", LONG_MIN, -3750, false, true},
        {R"({"type": "number", "exclusiveMinimum": 1.2, "exclusiveMaximum": 1.25})", 1200, 1250, true, true},
        {R"({"type": "number", "minimum": 12.345, "maximum": 12.345})", 12345, 12345, false, false},
        {R"({"type": "number", "minimum": 0, "maximum": 100})", 0, 100000, false, false},
        {R"({"type": "number", "exclusiveMinimum": -273.15})", -273150, LONG_MAX, true, false},
        {R"({"type": "number", "minimum": 9.99, "maximum": 10.01})", 9990, 10010, false, false},
    };
    for (const Range& r : ranges) {
        const qwen3::Grammar g = grammar_of(r.schema);
        const long from = r.lo == LONG_MIN ? r.hi - 4000 : r.lo - 2500, to = r.hi == LONG_MAX ? r.lo + 4000 : r.hi + 2500;
        for (long k = from; k <= to; ++k) {
            const bool inside = (r.lo == LONG_MIN || (r.lo_open ? k > r.lo : k >= r.lo)) && (r.hi == LONG_MAX || (r.hi_open ? k < r.hi : k <= r.hi));
            const long magnitude = std::labs(k);
            std::string fraction = std::to_string(magnitude % 1000);
            fraction = std::string(3 - fraction.size(), '0') + fraction;
            std::string integer = std::to_string(magnitude / 1000);
            if (k < 0) integer.insert(integer.begin(), '-');
            std::string shortest = fraction;
            while (!shortest.empty() && shortest.back() == '0') shortest.pop_back();
            std::vector<std::string> spellings{integer + "." + fraction + "0"};  // trailing zeros are fine
            spellings.push_back(shortest.empty() ? integer : integer + "." + shortest);
            for (std::string s : spellings) {
                if (s == "-0" || s.starts_with("-0.000")) continue;  // -0 is not written
                CHECK_MESSAGE(recognizes(g, s) == inside, r.schema << ": " << s);
            }
        }
        for (const char* spelling : {"-0", "1e0", "0.5e1", "01", ".5", "5.", "+1"}) CHECK_MESSAGE(!recognizes(g, spelling), r.schema << ": " << spelling);
    }
}

TEST_CASE("whitespace between tokens is bounded, and options change what is allowed") {
    const char* schema = R"({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}}}, "required": ["a"]})";
    const qwen3::Grammar g = grammar_of(schema);
    CHECK(recognizes(g, R"({"a":[1,2]})"));
    CHECK(recognizes(g, "{ \"a\" : [ 1 , 2 ] }"));
    CHECK(recognizes(g, "{\n\t\"a\": [\n" + std::string(20, ' ') + "1\n]}"));
    CHECK(!recognizes(g, "{\n\"a\": [\n" + std::string(21, ' ') + "1\n]}"));  // more than max_whitespace
    CHECK(!recognizes(g, "{  \"a\":[1]}"));    // two spaces
    CHECK(!recognizes(g, "{\n\n\"a\":[1]}"));  // two newlines
    CHECK(!recognizes(g, " {\"a\":[1]}"));     // nothing around the root value
    CHECK(!recognizes(g, "{\"a\":[1]} "));
    const qwen3::Grammar compact = grammar_of(schema, {.max_whitespace = 0});
    CHECK(recognizes(compact, R"({"a":[1,2],"b":{"c":null}})"));
    CHECK(!recognizes(compact, R"({"a": [1]})"));
    CHECK(!recognizes(compact, "{\"a\":[1],\n\"b\":1}"));
    const qwen3::Grammar four = grammar_of(schema, {.max_whitespace = 4});
    CHECK(recognizes(four, "{\n    \"a\": []\n}"));
    CHECK(!recognizes(four, "{\n     \"a\": []\n}"));

    // Other members: allowed without additionalProperties (JSON Schema), or only the listed ones.
    const char* listed = R"({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["a"]})";
    CHECK(recognizes(grammar_of(listed), R"({"a":1,"b":"x","c":[true]})"));
    CHECK(recognizes(grammar_of(listed), R"({"a":1,"ab":2,"":3,"bb":4})"));
    CHECK(!recognizes(grammar_of(listed), R"({"a":1,"a":2})"));      // a listed name cannot come again
    CHECK(!recognizes(grammar_of(listed), R"({"a":1,"c":1,"b":1})"));  // nor after the other members
    CHECK(!recognizes(grammar_of(listed), R"({"b":"x","a":1})"));      // the schema's order
    const qwen3::Grammar strict = grammar_of(listed, {.allow_extra_properties = false});
    CHECK(recognizes(strict, R"({"a":1,"b":"x"})"));
    CHECK(!recognizes(strict, R"({"a":1,"c":1})"));
    CHECK(recognizes(grammar_of(R"({"properties": {"a": {}}, "additionalProperties": {"type": "integer"}})", {.allow_extra_properties = false}),
                     R"({"a":"x","b":1})"));  // additionalProperties still decides

    // Unknown formats: an error by default, an annotation when asked.
    const char* email = R"({"type": "string", "format": "email"})";
    CHECK_THROWS_AS(qwen3::json_schema_to_gbnf(json::parse(email)), qwen3::Error);
    CHECK(recognizes(grammar_of(email, {.ignore_unknown_formats = true}), R"("not an email")"));
}

TEST_CASE("the grammar's text: root first, annotations ignored, recursion through $ref") {
    const std::string gbnf = qwen3::json_schema_to_gbnf(json::parse(R"({
        "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://example.com/tree",
        "title": "Tree", "description": "d", "$comment": "c", "examples": [{}], "deprecated": false,
        "type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "https://example.com/tree"}, "readOnly": true}},
        "additionalProperties": false})"));
    CHECK(gbnf.starts_with("root ::= "));
    const qwen3::Grammar g = qwen3::Grammar::from_gbnf(gbnf);
    CHECK(recognizes(g, R"({"kids":[{},{"kids":[{"kids":[]}]}]})"));
    CHECK(!recognizes(g, R"({"kids":[{"kid":[]}]})"));
}

TEST_CASE("a branch that leads back to its own rule without reading anything is dropped, not left-recursive") {
    const qwen3::Grammar self = grammar_of(R"({"anyOf": [{"$ref": "#"}, {"type": "null"}]})");
    CHECK(recognizes(self, "null"));
    CHECK(!recognizes(self, "1"));
    const qwen3::Grammar mutual = grammar_of(R"({"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/b"}, {"type": "string"}]},
        "b": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "integer"}]}}, "$ref": "#/$defs/a"})");
    CHECK(recognizes(mutual, "\"x\""));
    CHECK(recognizes(mutual, "-12"));
    CHECK(!recognizes(mutual, "null"));
    const qwen3::Grammar nested = grammar_of(R"({"type": "object", "properties": {"x": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}, "additionalProperties": false})");
    CHECK(recognizes(nested, R"({"x":{"x":{"x":null}}})"));
    CHECK(!recognizes(nested, R"({"x":{"y":null}})"));
    CHECK(test::throws_error([] { qwen3::json_schema_to_gbnf(json::parse(R"({"anyOf": [{"$ref": "#"}]})")); }, ErrorCode::invalid_argument,
                             "accepts no value"));
}
