// llama.cpp references (tests/data/llamacpp/*/*.json + .logits.f32) and the checks every model test runs.
//
// A reference holds a prompt and the logits llama.cpp computed for some of its positions (all, the
// last, or every Nth), then, for a fixed continuation (`decode`), the logits after each of its
// tokens decoded one at a time; and llama.cpp's greedy continuation of the prompt with the top-1
// minus top-2 logit at each step. tools/make_llamacpp_references.sh makes them.
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
    int vocab = 0;
    std::vector<std::int32_t> tokens;            // the prompt
    std::vector<int> positions;                  // prompt positions whose logits are stored
    std::vector<std::int32_t> decode;            // a fixed continuation, decoded token by token
    std::vector<std::int32_t> greedy;            // llama.cpp's argmax continuation of the prompt
    std::vector<double> margins;                 // top-1 minus top-2 logit at each greedy step
    std::vector<float> logits;                   // rows: `positions`, then one per decode step

    std::span<const float> prompt_row(std::size_t i) const { return row(i); }
    std::span<const float> decode_row(std::size_t i) const { return row(positions.size() + i); }
    bool all_positions() const { return positions.size() == tokens.size(); }

private:
    std::span<const float> row(std::size_t r) const {
        return std::span<const float>(logits).subspan(r * std::size_t(vocab), std::size_t(vocab));
    }
};

// Loads a reference and checks that it holds what it says: every list present, every row stored.
inline Golden load_golden(const std::string& dir, const std::string& name, int vocab) {
    const std::string path = data_path("llamacpp/" + dir + "/" + name + ".json");
    auto j = read_json(path);
    Golden g;
    g.name = dir + "/" + name;
    g.vocab = vocab;
    auto ints = [&](const char* key, auto& out, bool required) {
        const qwen3::json::Value* v = j.find(key);
        REQUIRE_MESSAGE((v || !required), path << " has no \"" << key << "\"");
        if (v)
            for (const auto& e : v->as_array()) out.push_back(std::int32_t(e.as_int()));
    };
    REQUIRE(j.at("n_vocab").as_int() == vocab);
    ints("tokens", g.tokens, true);
    ints("decode", g.decode, false);
    ints("greedy", g.greedy, false);
    if (const qwen3::json::Value* m = j.find("greedy_top1_minus_top2"))
        for (const auto& e : m->as_array()) g.margins.push_back(e.as_double());
    REQUIRE(g.margins.size() == g.greedy.size());
    REQUIRE(!g.tokens.empty());
    g.logits = read_floats(data_path("llamacpp/" + dir + "/" + j.at("logits_file").as_string()));
    if (j.find("prompt_positions")) {
        ints("prompt_positions", g.positions, true);
    } else {  // the references of the first driver: every position or only the last, and no decode steps
        const std::size_t n = g.tokens.size();
        if (g.logits.size() == n * std::size_t(vocab))
            for (std::size_t i = 0; i < n; ++i) g.positions.push_back(int(i));
        else
            g.positions.push_back(int(n - 1));
    }
    for (int p : g.positions) REQUIRE((p >= 0 && std::size_t(p) < g.tokens.size()));
    REQUIRE_MESSAGE(g.logits.size() == (g.positions.size() + g.decode.size()) * std::size_t(vocab),
                    g.name << ": " << g.logits.size() << " floats for " << g.positions.size() << " positions and "
                           << g.decode.size() << " decode steps of " << vocab);
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

// KL(p_ref || p) of two logit rows, in nats.
inline double kl_divergence(std::span<const float> reference, std::span<const float> logits) {
    auto log_softmax = [](std::span<const float> v) {
        const double m = *std::max_element(v.begin(), v.end());
        double sum = 0;
        for (float x : v) sum += std::exp(double(x) - m);
        std::vector<double> out(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) out[i] = double(v[i]) - m - std::log(sum);
        return out;
    };
    const auto lp = log_softmax(reference), lq = log_softmax(logits);
    double kl = 0;
    for (std::size_t i = 0; i < lp.size(); ++i) kl += std::exp(lp[i]) * (lp[i] - lq[i]);
    return kl;
}

inline int argmax(std::span<const float> v) { return int(std::max_element(v.begin(), v.end()) - v.begin()); }

// Top-1 minus top-2 of a row: an implementation within `tolerance` of it must pick the same argmax
// when this exceeds twice the tolerance.
inline float top_margin(std::span<const float> v) {
    const int best = argmax(v);
    float second = -std::numeric_limits<float>::infinity();
    for (std::size_t i = 0; i < v.size(); ++i)
        if (int(i) != best) second = std::max(second, v[i]);
    return v[std::size_t(best)] - second;
}

// Compares `ours` with a reference row: within `tolerance`, and the same argmax where the
// reference's margin leaves no room for rounding to change it. Returns the max difference.
inline float check_row(std::span<const float> ours, std::span<const float> reference, float tolerance, const std::string& where) {
    const float diff = max_abs_diff(ours, reference);
    CHECK_MESSAGE(diff < tolerance, where << ": max |ours - llama.cpp| = " << diff);
    if (top_margin(reference) > 2 * tolerance) CHECK_MESSAGE(argmax(ours) == argmax(reference), where << ": argmax");
    return diff;
}

// Prefills the reference's prompt (every position's logits), compares the stored positions with
// llama.cpp within `tolerance`; then decodes the fixed continuation token by token, comparing each
// step; then, from the prompt again, follows llama.cpp's greedy path, checking each choice whose
// llama.cpp margin exceeds twice the tolerance. Returns the largest difference seen. The KV arena is
// F32, as in the llama.cpp runs.
template <class Cfg, class KV = qwen3::KVF32>
float check_golden(const qwen3::Model<Cfg>& model, const Golden& g, int threads, float tolerance = 1e-5f) {
    CAPTURE(g.name);
    CAPTURE(threads);
    qwen3::Session<Cfg, KV> session(model, threads);
    const std::size_t V = Cfg::vocab, n = g.tokens.size();
    std::vector<float> logits(n * V);
    session.eval(g.tokens, logits);
    float worst = 0;
    for (std::size_t i = 0; i < g.positions.size(); ++i) {
        const std::size_t p = std::size_t(g.positions[i]);
        worst = std::max(worst, check_row(std::span<const float>(logits).subspan(p * V, V), g.prompt_row(i), tolerance,
                                          g.name + " position " + std::to_string(p)));
    }
    for (std::size_t i = 0; i < g.decode.size(); ++i)
        worst = std::max(worst, check_row(session.eval(g.decode[i]), g.decode_row(i), tolerance,
                                          g.name + " decode step " + std::to_string(i)));
    if (!g.greedy.empty()) {
        session.reset();
        int next = argmax(session.eval(g.tokens));
        for (std::size_t i = 0; i < g.greedy.size(); ++i) {
            if (g.margins[i] > 2 * tolerance) CHECK_MESSAGE(next == g.greedy[i], g.name << " greedy step " << i);
            if (i + 1 < g.greedy.size()) next = argmax(session.eval(g.greedy[i]));  // llama.cpp's path
        }
    }
    MESSAGE(g.name << " (threads " << threads << "): max |ours - llama.cpp| = " << worst << " over " << g.positions.size()
                   << " positions and " << g.decode.size() << " decode steps");
    return worst;
}

}  // namespace test
