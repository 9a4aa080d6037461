// Constrained decoding costs over Qwen3's 151,936-token vocabulary: compiling a JSON Schema or GBNF
// grammar, and the token mask per generated token (median, p99, max) along seeded random walks
// through the language (each step draws uniformly among the allowed tokens). One thread.
//
//     bench_grammar [--tokenizer tokenizer.json] [--schema FILE]... [--gbnf FILE]... [--steps N] [--json]
//
// Without --schema/--gbnf: a moderate built-in schema (an event with nested attendees, enums, dates,
// integer ranges, arrays) and a 50-property one. "cold": caches filled on first use during the walk;
// "warm": after TokenGrammar::precompute().
#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <qwen3/format/json.hpp>
#include <qwen3/grammar.hpp>
#include <qwen3/grammar/json_schema.hpp>
#include <qwen3/tokenizer.hpp>

namespace {

using clock_type = std::chrono::steady_clock;
double ms_since(clock_type::time_point t) { return std::chrono::duration<double, std::milli>(clock_type::now() - t).count(); }

const char* kModerateSchema = R"({
  "type": "object",
  "properties": {
    "title": {"type": "string", "maxLength": 80},
    "date": {"type": "string", "format": "date"},
    "start": {"type": "string", "format": "time"},
    "duration_minutes": {"type": "integer", "minimum": 5, "maximum": 480},
    "kind": {"enum": ["meeting", "call", "focus", "travel"]},
    "location": {"type": ["string", "null"]},
    "attendees": {
      "type": "array", "maxItems": 8,
      "items": {
        "type": "object",
        "properties": {
          "name": {"type": "string"},
          "email": {"type": "string"},
          "optional": {"type": "boolean"}
        },
        "required": ["name", "email"],
        "additionalProperties": false
      }
    },
    "reminders": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 10080}},
    "notes": {"type": "string"}
  },
  "required": ["title", "date", "start", "duration_minutes", "kind", "attendees"],
  "additionalProperties": false
})";

std::string wide_schema(int properties) {
    std::string s = R"({"type": "object", "additionalProperties": false, "required": [)";
    for (int i = 0; i < properties; ++i) s += (i ? ", " : "") + std::string("\"field_") + std::to_string(i) + "\"";
    s += R"(], "properties": {)";
    const char* types[] = {R"({"type": "string"})", R"({"type": "integer", "minimum": 0, "maximum": 1000})", R"({"type": "boolean"})",
                           R"({"enum": ["low", "medium", "high"]})", R"({"type": "number"})", R"({"type": "array", "items": {"type": "string"}})"};
    for (int i = 0; i < properties; ++i) s += (i ? ", " : "") + std::string("\"field_") + std::to_string(i) + "\": " + types[i % 6];
    return s + "}}";
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

struct Case {
    std::string name, gbnf_or_schema;
    bool schema;
};

double percentile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, std::size_t(q * double(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
    std::string tokenizer_path = QWEN3_SOURCE_DIR "/tests/data/tokenizer/tokenizer.json";
    std::vector<Case> cases;
    int steps = 2000;
    bool json_out = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "--tokenizer") tokenizer_path = value();
        else if (a == "--schema") { const std::string p = value(); cases.push_back({p, read_file(p), true}); }
        else if (a == "--gbnf") { const std::string p = value(); cases.push_back({p, read_file(p), false}); }
        else if (a == "--steps") steps = std::stoi(value());
        else if (a == "--json") json_out = true;
        else {
            std::fprintf(stderr, "usage: bench_grammar [--tokenizer FILE] [--schema FILE]... [--gbnf FILE]... [--steps N] [--json]\n");
            return 2;
        }
    }
    if (cases.empty()) {
        cases.push_back({"moderate schema (event)", kModerateSchema, true});
        cases.push_back({"50-property schema", wide_schema(50), true});
    }

    const qwen3::Tokenizer tokenizer = qwen3::Tokenizer::from_tokenizer_json(tokenizer_path);
    auto t = clock_type::now();
    const auto vocabulary = std::make_shared<const qwen3::TokenTrie>(tokenizer, 151936);
    const double trie_ms = ms_since(t);
    if (!json_out)
        std::printf("vocabulary trie: %zu nodes, built in %.1f ms (once per tokenizer)\n\n", vocabulary->nodes().size(), trie_ms);

    for (const Case& c : cases) {
        t = clock_type::now();
        const std::string gbnf = c.schema ? qwen3::json_schema_to_gbnf(qwen3::json::parse(c.gbnf_or_schema)) : c.gbnf_or_schema;
        const double convert_ms = ms_since(t);
        t = clock_type::now();
        qwen3::Grammar grammar = qwen3::Grammar::from_gbnf(gbnf);
        const double parse_ms = ms_since(t);
        const std::size_t elements = grammar.elements().size();

        for (const bool warm : {false, true}) {
            t = clock_type::now();
            auto tg = qwen3::TokenGrammar::bind(grammar, vocabulary, tokenizer);
            double precompute_ms = 0;
            if (warm) {
                tg->precompute();
                precompute_ms = ms_since(t);
            }
            std::mt19937_64 rng(1);
            std::vector<double> times;
            qwen3::GrammarMatcher matcher(tg);
            qwen3::TokenBitmask mask;
            std::vector<qwen3::TokenId> allowed;
            int sentences = 0;
            for (int step = 0; step < steps; ++step) {
                t = clock_type::now();
                matcher.fill_mask(mask);
                times.push_back(ms_since(t) * 1000.0);
                allowed.clear();
                for (std::size_t w = 0; w < mask.words().size(); ++w)
                    for (std::uint64_t bits = mask.words()[w]; bits; bits &= bits - 1)
                        allowed.push_back(qwen3::TokenId(w * 64 + std::size_t(std::countr_zero(bits))));
                const qwen3::TokenId id = allowed[rng() % allowed.size()];
                if (!matcher.accept_token(id)) throw std::runtime_error("a token of the mask was refused");
                if (matcher.finished()) {
                    ++sentences;
                    matcher.reset();
                }
            }
            const double median = percentile(times, 0.5), p99 = percentile(times, 0.99), worst = percentile(times, 1.0);
            if (json_out) {
                std::printf("{\"case\": \"%s\", \"caches\": \"%s\", \"elements\": %zu, \"convert_ms\": %.3f, \"parse_ms\": %.3f, "
                            "\"precompute_ms\": %.1f, \"steps\": %d, \"sentences\": %d, \"mask_us_median\": %.1f, \"mask_us_p99\": %.1f, "
                            "\"mask_us_max\": %.1f}\n",
                            c.name.c_str(), warm ? "warm" : "cold", elements, convert_ms, parse_ms, precompute_ms, steps, sentences, median, p99,
                            worst);
            } else {
                std::printf("%s (%s caches): %zu elements; schema->GBNF %.2f ms, GBNF->grammar %.2f ms%s\n", c.name.c_str(), warm ? "warm" : "cold",
                            elements, convert_ms, parse_ms, warm ? (", precompute " + std::to_string(precompute_ms) + " ms").c_str() : "");
                std::printf("  mask per token over %d steps (%d whole sentences): median %.1f us, p99 %.1f us, max %.1f us\n\n", steps,
                            sentences, median, p99, worst);
            }
        }
    }
    return 0;
}
