// Shared helpers of the qwen3 tool: argument parsing and error reporting.
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <initializer_list>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <qwen3/error.hpp>

namespace cli {

// A usage mistake: printed with the command's usage text, exit status 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Option {
    std::string_view name;   // "--threads"
    std::string_view alias;  // "-t" or ""
    bool takes_value;
};

class Args {
public:
    // Parses argv[1..argc) (argv[0] is the command name). Throws UsageError for unknown options and
    // options missing their value.
    Args(int argc, char** argv, std::initializer_list<Option> options) {
        for (int i = 1; i < argc; ++i) {
            std::string_view a = argv[i];
            if (a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (a[1] >= '0' && a[1] <= '9'))) {
                std::string_view value;
                bool has_inline_value = false;
                if (std::size_t eq = a.find('='); a.substr(0, 2) == "--" && eq != std::string_view::npos) {
                    value = a.substr(eq + 1);
                    a = a.substr(0, eq);
                    has_inline_value = true;
                }
                const Option* match = nullptr;
                for (const Option& o : options)
                    if (a == o.name || (!o.alias.empty() && a == o.alias)) match = &o;
                if (!match) throw UsageError("unknown option " + std::string(a));
                if (match->takes_value) {
                    if (!has_inline_value) {
                        if (i + 1 >= argc) throw UsageError("option " + std::string(a) + " needs a value");
                        value = argv[++i];
                    }
                    values_[std::string(match->name)] = std::string(value);
                } else {
                    if (has_inline_value) throw UsageError("option " + std::string(a) + " takes no value");
                    values_[std::string(match->name)] = "";
                }
            } else {
                positional_.emplace_back(a);
            }
        }
    }

    const std::vector<std::string>& positional() const { return positional_; }
    bool has(std::string_view name) const { return values_.count(std::string(name)) != 0; }
    std::string get(std::string_view name, std::string fallback = "") const {
        auto it = values_.find(std::string(name));
        return it == values_.end() ? fallback : it->second;
    }
    long get_int(std::string_view name, long fallback, long min, long max) const {
        if (!has(name)) return fallback;
        const std::string s = get(name);
        char* end = nullptr;
        long v = std::strtol(s.c_str(), &end, 10);
        if (s.empty() || *end != '\0' || v < min || v > max)
            throw UsageError(std::string(name) + " must be an integer in [" + std::to_string(min) + ", " +
                             std::to_string(max) + "], got \"" + s + "\"");
        return v;
    }
    double get_double(std::string_view name, double fallback) const {
        if (!has(name)) return fallback;
        const std::string s = get(name);
        char* end = nullptr;
        double v = std::strtod(s.c_str(), &end);
        if (s.empty() || *end != '\0') throw UsageError(std::string(name) + " must be a number, got \"" + s + "\"");
        return v;
    }

private:
    std::vector<std::string> positional_;
    std::map<std::string, std::string> values_;
};

// Comma-separated integers: "1,2,3".
inline std::vector<std::int32_t> parse_int_list(const std::string& s, std::string_view what) {
    std::vector<std::int32_t> out;
    std::size_t i = 0;
    while (i <= s.size()) {
        std::size_t j = s.find(',', i);
        if (j == std::string::npos) j = s.size();
        std::string item = s.substr(i, j - i);
        char* end = nullptr;
        long v = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || v < 0 || v > 0x7FFFFFFF)
            throw UsageError(std::string(what) + ": \"" + item + "\" is not a token id");
        out.push_back(std::int32_t(v));
        i = j + 1;
    }
    return out;
}

// The whole file at `path`; throws qwen3::Error(io) naming it when it cannot be read.
inline std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) qwen3::detail::fail(qwen3::ErrorCode::io, path, ": cannot open");
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) qwen3::detail::fail(qwen3::ErrorCode::io, path, ": read failed");
    return std::move(text).str();
}

}  // namespace cli
