// The computation both sides of the single-header test perform, written once so they cannot drift
// apart: tests/single_header/logits.cpp (built from single_include/qwen3.hpp alone) and
// tests/test_single_header.cpp (built from include/). Include it after the library.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

namespace test {

// Prefills `prompt` in one batch (every position's logits), then decodes each of `decode` one token
// at a time (each step's logits); returns all rows, [prompt.size() + decode.size()][Cfg::vocab].
template <class Cfg, class KV>
std::vector<float> run_logits(const qwen3::Model<Cfg>& model, int threads, std::span<const std::int32_t> prompt,
                              std::span<const std::int32_t> decode) {
    qwen3::Session<Cfg, KV> session(model, threads);
    std::vector<float> rows((prompt.size() + decode.size()) * std::size_t(Cfg::vocab));
    session.eval(prompt, std::span<float>(rows).first(prompt.size() * Cfg::vocab));
    for (std::size_t i = 0; i < decode.size(); ++i) {
        const std::span<const float> step = session.eval(decode[i]);
        std::copy(step.begin(), step.end(), rows.begin() + std::ptrdiff_t((prompt.size() + i) * Cfg::vocab));
    }
    return rows;
}

}  // namespace test
