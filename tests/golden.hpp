// llama.cpp goldens (tests/data/llamacpp/*/*.json + .logits.f32) and the checks every model test runs.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <qwen3/model.hpp>

#include "support.hpp"

namespace test {

struct Golden {
    std::string name;
    std::vector<std::int32_t> tokens;
    std::vector<std::int32_t> greedy;           // llama.cpp's argmax continuation
    std::vector<double> margins;                // top-1 minus top-2 logit at each greedy step
    std::vector<std::int32_t> argmax_per_position;
    std::vector<float> logits;                  // all positions or the last one, row-major
    bool all_positions = false;
};

inline Golden load_golden(const std::string& dir, const std::string& name, int vocab) {
    auto j = read_json(data_path("llamacpp/" + dir + "/" + name + ".json"));
    Golden g;
    g.name = dir + "/" + name;
    auto ints = [&](const char* key, std::vector<std::int32_t>& out) {
        if (const auto* v = j.find(key))
            for (const auto& e : v->as_array()) out.push_back(std::int32_t(e.as_int()));
    };
    ints("tokens", g.tokens);
    ints("greedy", g.greedy);
    ints("argmax_per_position", g.argmax_per_position);
    for (const auto& v : j.at("greedy_top1_minus_top2").as_array()) g.margins.push_back(v.as_double());
    g.logits = read_floats(data_path("llamacpp/" + dir + "/" + j.at("logits_file").as_string()));
    g.all_positions = g.logits.size() == g.tokens.size() * std::size_t(vocab);
    REQUIRE((g.all_positions || g.logits.size() == std::size_t(vocab)));
    return g;
}

inline float max_abs_diff(std::span<const float> a, std::span<const float> b) {
    REQUIRE(a.size() == b.size());
    float m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const float d = std::fabs(a[i] - b[i]);
        if (std::isnan(d)) return std::numeric_limits<float>::infinity();  // std::max would skip a NaN
        m = std::max(m, d);
    }
    return m;
}

inline int argmax(std::span<const float> v) { return int(std::max_element(v.begin(), v.end()) - v.begin()); }

// Prefill the golden's prompt (one batch, every position's logits), compare with llama.cpp within
// `tolerance`, check the argmax at every position, then decode llama.cpp's greedy continuation and
// check each choice where llama.cpp's top-1 margin exceeds the tolerance. Returns the max difference.
// The KV arena is F32, as in the llama.cpp runs that made the goldens.
template <class Cfg, class KV = qwen3::KVF32>
float check_golden(const qwen3::Model<Cfg>& model, const Golden& g, int threads, float tolerance = 1e-4f) {
    qwen3::Session<Cfg, KV> session(model, threads);
    const std::size_t V = Cfg::vocab, n = g.tokens.size();
    std::vector<float> logits(n * V);
    session.eval(g.tokens, logits);
    const std::span<const float> ours = g.all_positions ? std::span<const float>(logits)
                                                        : std::span<const float>(logits).subspan((n - 1) * V, V);
    const float diff = max_abs_diff(ours, g.logits);
    MESSAGE(g.name << " (threads " << threads << "): max |ours - llama.cpp| = " << diff);
    CHECK(diff < tolerance);
    for (std::size_t t = 0; t < g.argmax_per_position.size() && t < n; ++t)
        CHECK(argmax(std::span<const float>(logits).subspan(t * V, V)) == g.argmax_per_position[t]);

    int next = argmax(session.logits());
    for (std::size_t i = 0; i < g.greedy.size(); ++i) {
        if (g.margins[i] > tolerance) CHECK(next == g.greedy[i]);
        session.eval(g.greedy[i]);  // follow llama.cpp's path so later steps stay comparable
        next = argmax(session.logits());
    }
    return diff;
}

}  // namespace test
