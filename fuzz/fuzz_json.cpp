// Fuzz target: the JSON reader and writers.
//
// The first byte picks the limits (depth 1..64 or the default 128, a value budget, unique keys); the
// rest is the text. For every text the parser accepts:
//   - the tree respects the limits it was given;
//   - dump() reads back to the same tree, number texts included;
//   - dump_python() reads back to the same tree up to number spelling (1.50 -> 1.5), unless a
//     number is out of a double's range (Python prints Infinity, which is not JSON);
//   - every string, quoted, reads back to itself;
//   - python_float_repr of every number reads back (strtod) to the same double.
// Input the parser refuses must be refused with Error(format) and nothing else.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <qwen3/format/json.hpp>

#include "fuzz_support.hpp"

namespace qwen3_fuzz::json_target {

namespace json = qwen3::json;

struct Stats {
    int depth = 0;
    std::size_t values = 0;
    bool finite = true;
};

inline void walk(const json::Value& v, int depth, const json::ParseOptions& options, Stats& stats) {
    ++stats.values;
    stats.depth = std::max(stats.depth, depth);
    switch (v.kind()) {
        case json::Value::Kind::number: {
            const double x = v.as_double();
            if (!std::isfinite(x)) {
                stats.finite = false;
                break;
            }
            const std::string repr = json::python_float_repr(x);
            const double back = std::strtod(repr.c_str(), nullptr);
            check(back == x && std::signbit(back) == std::signbit(x), "python_float_repr(", v.as_number().text, ") = ", repr,
                  " reads back as another double");
            break;
        }
        case json::Value::Kind::string: {
            const std::string quoted = json::quote(v.as_string());
            check(json::parse(quoted, "quoted").as_string() == v.as_string(), "quote() of ", show(v.as_string()),
                  " reads back differently");
            break;
        }
        case json::Value::Kind::array:
            for (const json::Value& item : v.as_array()) walk(item, depth + 1, options, stats);
            break;
        case json::Value::Kind::object:
            if (options.unique_keys) {
                const json::Object& o = v.as_object();
                for (std::size_t i = 0; i < o.size(); ++i)
                    for (std::size_t j = i + 1; j < o.size() && j < i + 64; ++j)
                        check(o[i].key != o[j].key, "duplicate key ", show(o[i].key), " accepted with unique_keys");
            }
            for (const json::Member& m : v.as_object()) walk(m.value, depth + 1, options, stats);
            break;
        default: break;
    }
}

void run(const std::uint8_t* data, std::size_t size) {
    Input in(data, size);
    const std::uint8_t mode = in.byte();
    json::ParseOptions options;
    if (mode & 0x40) options.max_depth = 1 + (mode & 0x3F);
    if (mode & 0x80) options.max_values = 1 + (mode & 0x1F) * 7;
    options.unique_keys = mode & 1;
    const std::string_view text = in.rest();

    json::Value v;
    try {
        v = json::parse(text, "fuzz", options);
    } catch (const qwen3::Error& e) {
        check(e.code() == qwen3::ErrorCode::format, "parse failed with code ", qwen3::to_string(e.code()));
        return;
    }
    Stats stats;
    walk(v, 0, options, stats);
    check(stats.depth <= options.max_depth, "depth ", stats.depth, " over the limit ", options.max_depth);
    check(stats.values <= options.max_values, stats.values, " values over the limit ", options.max_values);

    json::ParseOptions unlimited;
    unlimited.max_depth = options.max_depth;
    const std::string compact = json::dump(v);
    try {
        check(same_json(json::parse(compact, "dump", unlimited), v), "dump() reads back differently: ", show(compact));
        if (stats.finite) {
            const std::string python = json::dump_python(v);
            check(same_json(json::parse(python, "dump_python", unlimited), v, true), "dump_python() reads back differently: ",
                  show(python));
        }
    } catch (const qwen3::Error& e) {
        finding("the writer's output does not parse: ", e.what());
    }
    // a copy is deep and equal
    const json::Value copy = v;
    check(same_json(copy, v), "a copied value differs");
}

}  // namespace qwen3_fuzz::json_target

#ifndef QWEN3_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    qwen3_fuzz::json_target::run(data, size);
    return 0;
}
#endif
