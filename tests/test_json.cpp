#include <doctest/doctest.h>

#include <cmath>

#include <qwen3/format/json.hpp>

#include "support.hpp"

using qwen3::ErrorCode;
namespace json = qwen3::json;

TEST_CASE("json: objects keep insertion order and print as Python's json.dumps") {
    json::Value v = json::parse(R"({"b": 1, "a": [true, null, 2.5, "x\u00e9\n"], "c": {"z": -0, "y": 1e-5}})");
    CHECK(json::dump_python(v) == "{\"b\": 1, \"a\": [true, null, 2.5, \"x\xc3\xa9\\n\"], \"c\": {\"z\": 0, \"y\": 1e-05}}");
    CHECK(json::dump(v) == R"({"b":1,"a":[true,null,2.5,"xé\n"],"c":{"z":-0,"y":1e-5}})");
}

TEST_CASE("json: Python float repr") {
    CHECK(json::python_float_repr(1.0) == "1.0");
    CHECK(json::python_float_repr(0.1) == "0.1");
    CHECK(json::python_float_repr(1e16) == "1e+16");
    CHECK(json::python_float_repr(1e15) == "1000000000000000.0");
    CHECK(json::python_float_repr(0.0001) == "0.0001");
    CHECK(json::python_float_repr(0.00001) == "1e-05");
    CHECK(json::python_float_repr(-2.5e-7) == "-2.5e-07");
    CHECK(json::python_float_repr(123456.789) == "123456.789");
    CHECK(json::python_float_repr(-0.0) == "-0.0");
}

TEST_CASE("json: surrogate pairs decode, lone surrogates are errors") {
    CHECK(json::parse(R"("\ud83d\ude00")").as_string() == "\xF0\x9F\x98\x80");
    CHECK(test::throws_error([] { json::parse(R"("\ud83d")"); }, ErrorCode::format, "lone high surrogate"));
    CHECK(test::throws_error([] { json::parse(R"("\ude00")"); }, ErrorCode::format, "lone low surrogate"));
}

TEST_CASE("json: malformed input names the byte offset") {
    std::string msg;
    CHECK(test::throws_error([] { json::parse("{\"a\": 1,}"); }, ErrorCode::format, "byte 8", &msg));
    CHECK(test::throws_error([] { json::parse("[1, 2"); }, ErrorCode::format, "unterminated array"));
    CHECK(test::throws_error([] { json::parse("\"abc"); }, ErrorCode::format, "unterminated string"));
    CHECK(test::throws_error([] { json::parse("01"); }, ErrorCode::format, "unexpected text"));
    CHECK(test::throws_error([] { json::parse("\"\xff\""); }, ErrorCode::format, "invalid UTF-8"));
    CHECK(test::throws_error([] { json::parse("\"\xed\xa0\x80\""); }, ErrorCode::format, "invalid UTF-8"));
    CHECK(test::throws_error([] { json::parse("\"a\tb\""); }, ErrorCode::format, "control character"));
    CHECK(test::throws_error([] { json::parse("[1] x"); }, ErrorCode::format, "unexpected text"));
    CHECK(test::throws_error([] { json::parse(""); }, ErrorCode::format, "unexpected end"));
}

TEST_CASE("json: nesting depth is bounded") {
    std::string deep(100000, '[');
    CHECK(test::throws_error([&] { json::parse(deep); }, ErrorCode::format, "nesting deeper than the limit of 128"));
    std::string ok = std::string(128, '[') + std::string(128, ']');
    CHECK_NOTHROW(json::parse(ok));
}

TEST_CASE("json: integers keep their text, as_int checks range") {
    json::Value v = json::parse("[12345678901234567890123, 42, 5.0]");
    CHECK(json::dump_python(v) == "[12345678901234567890123, 42, 5.0]");
    CHECK(v.as_array()[1].as_int() == 42);
    CHECK(v.as_array()[2].as_int() == 5);
    CHECK(test::throws_error([&] { (void)v.as_array()[0].as_int(); }, ErrorCode::format, "does not fit"));
}

TEST_CASE("json: duplicate keys are kept by default and refused with unique_keys") {
    // default: both members kept, find() returns the first (documented in json.hpp)
    json::Value v = json::parse(R"({"a": 1, "a": 2})");
    CHECK(v.as_object().size() == 2);
    CHECK(v.at("a").as_int() == 1);
    json::ParseOptions strict;
    strict.unique_keys = true;
    std::string msg;
    CHECK(test::throws_error([&] { json::parse(R"({"a": 1, "b": {"x": 1, "x": 2}})", "cfg", strict); }, ErrorCode::format,
                             "cfg: invalid JSON at byte 23: duplicate key \"x\"", &msg));
    // keys are compared after unescaping, and the same key in different objects is fine
    CHECK(test::throws_error([&] { json::parse(R"({"\u0061": 1, "a": 2})", "cfg", strict); }, ErrorCode::format,
                             "duplicate key \"a\""));
    CHECK_NOTHROW(json::parse(R"({"a": {"a": 1}, "b": {"a": 2}})", "cfg", strict));
    // a large object (a vocabulary) is checked as well as a small one
    std::string big = "{";
    for (int i = 0; i < 5000; ++i) big += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
    CHECK_NOTHROW(json::parse(big + "}", "big", strict));
    CHECK(test::throws_error([&] { json::parse(big + ",\"k4321\":0}", "big", strict); }, ErrorCode::format, "duplicate key \"k4321\""));
}

TEST_CASE("json: max_values bounds the size of the parsed tree") {
    json::ParseOptions options;
    options.max_values = 4;
    CHECK_NOTHROW(json::parse("[1, 2, 3]", "small", options));  // the array and its 3 elements
    CHECK_NOTHROW(json::parse(R"({"a": [], "b": {}, "c": null})", "small", options));  // keys are not values
    CHECK(test::throws_error([&] { json::parse("[1, 2, 3, 4]", "small", options); }, ErrorCode::format,
                             "small: invalid JSON at byte 10: more than 4 values"));
    CHECK(test::throws_error([&] { json::parse(R"({"a": [], "b": {}, "c": null, "d": 1})", "small", options); }, ErrorCode::format,
                             "more than 4 values"));
    // the depth limit given through the options is the same as the three-argument form's
    options = {};
    options.max_depth = 2;
    CHECK_NOTHROW(json::parse("[[1]]", "d", options));
    CHECK(test::throws_error([&] { json::parse("[[[1]]]", "d", options); }, ErrorCode::format, "nesting deeper than the limit of 2"));
    CHECK(test::throws_error([&] { json::parse("[[[1]]]", "d", 2); }, ErrorCode::format, "nesting deeper than the limit of 2"));
}

TEST_CASE("json: numbers beyond double range read as Python reads them") {
    CHECK(json::parse("1e-400").as_double() == 0.0);
    CHECK(std::signbit(json::parse("-1e-400").as_double()));
    CHECK(json::parse("1e400").as_double() == HUGE_VAL);
    CHECK(json::parse("-1e400").as_double() == -HUGE_VAL);
    CHECK(json::parse("0.000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001").as_double() == 0.0);
    CHECK(json::dump_python(json::parse("[1e-400]")) == "[0.0]");
}
