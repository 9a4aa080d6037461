// Sampler speed on Qwen3's 151,936-entry vocabulary, next to a naive full sort of the logits (what
// the sampler avoids) and a plain pass over them (the memory-bound floor). Bytes processed = the
// logits read once per token, so the GB/s column compares with memory bandwidth.
//
//   cmake -S . -B build-bench -DQWEN3_BUILD_BENCH=ON && cmake --build build-bench --target bench_sampler
//   build-bench/bench/bench_sampler
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <qwen3/sampler.hpp>

namespace {

constexpr std::size_t kVocab = 151936;

// Logits shaped like a language model's: a broad bulk (normal, sd 2) and a handful of strong
// candidates a few nats above it. Deterministic.
const std::vector<float>& logits() {
    static const std::vector<float> values = [] {
        std::vector<float> v(kVocab);
        qwen3::detail::Xoshiro256 rng(2024);
        for (std::size_t i = 0; i < kVocab; ++i) {
            const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();
            v[i] = float(2.0 * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
        }
        for (std::size_t i = 0; i < 8; ++i) v[(i * 19937) % kVocab] = 12.0f - float(i);
        return v;
    }();
    return values;
}

void run(benchmark::State& state, qwen3::SamplerParams params, int history = 0) {
    qwen3::Sampler sampler(params);
    for (int i = 0; i < history; ++i) sampler.accept((i * 7919) % int(kVocab));
    const std::vector<float>& l = logits();
    for (auto _ : state) benchmark::DoNotOptimize(sampler.sample(l));
    state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(kVocab * sizeof(float)));
}

qwen3::SamplerParams custom(float temperature, int top_k, float top_p, float min_p) {
    qwen3::SamplerParams p;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    return p;
}

void BM_greedy(benchmark::State& s) { run(s, qwen3::SamplerParams::greedy()); }
void BM_thinking_preset(benchmark::State& s) { run(s, qwen3::SamplerParams::thinking()); }
void BM_non_thinking_preset(benchmark::State& s) { run(s, qwen3::SamplerParams::non_thinking()); }
void BM_thinking_preset_penalties(benchmark::State& s) {
    qwen3::SamplerParams p = qwen3::SamplerParams::thinking();
    p.repetition_penalty = 1.1f;
    p.presence_penalty = 1.5f;
    run(s, p, 64);
}
void BM_top_p_only(benchmark::State& s) { run(s, custom(1.0f, 0, 0.9f, 0.0f)); }
void BM_min_p_only(benchmark::State& s) { run(s, custom(1.0f, 0, 1.0f, 0.05f)); }
void BM_whole_distribution(benchmark::State& s) { run(s, custom(1.0f, 0, 1.0f, 0.0f)); }

// What the sampler avoids: sorting every (logit, id) pair once per token.
void BM_baseline_full_sort(benchmark::State& state) {
    const std::vector<float>& l = logits();
    std::vector<std::pair<float, int>> pairs(kVocab);
    for (auto _ : state) {
        for (std::size_t i = 0; i < kVocab; ++i) pairs[i] = {l[i], int(i)};
        std::sort(pairs.begin(), pairs.end(), [](auto a, auto b) { return a.first > b.first; });
        benchmark::DoNotOptimize(pairs.data());
    }
    state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(kVocab * sizeof(float)));
}

// The floor: one read of the logits (a max reduction).
void BM_baseline_one_pass(benchmark::State& state) {
    const std::vector<float>& l = logits();
    for (auto _ : state) benchmark::DoNotOptimize(qwen3::detail::checked_max(l));
    state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(kVocab * sizeof(float)));
}

}  // namespace

BENCHMARK(BM_greedy)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_thinking_preset)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_non_thinking_preset)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_thinking_preset_penalties)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_top_p_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_min_p_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_whole_distribution)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_baseline_full_sort)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_baseline_one_pass)->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
