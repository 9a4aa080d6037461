// Kernel microbenchmarks for a model shape of your own: the configuration below is not one of the
// named Qwen3 variants, and every kernel is instantiated for its dimensions at compile time.
//
//   ./custom_variant_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <memory>
#include <vector>

#include <qwen3/qwen3.hpp>

// A hypothetical Qwen3-style model: hidden 1536, 24 layers, 12 query / 4 KV heads of 128, FFN 4608.
struct MyQwen : qwen3::Config<1536, 24, 12, 4, 128, 4608, 151936, /*tied=*/true, /*max_context=*/4096> {
    static constexpr std::string_view name = "my-qwen";
};

namespace {

// A BF16 matrix of the given shape, filled with small values.
template <int Rows, int Cols>
std::vector<std::uint16_t> bf16_matrix() {
    std::vector<std::uint16_t> w(static_cast<std::size_t>(Rows) * Cols);
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = qwen3::detail::simd::f32_to_bf16(0.01f * std::sin(float(i)));
    return w;
}

// Decode: one token through the FFN's gate projection (bytes of weights streamed per second).
void decode_gate(benchmark::State& state) {
    static const auto weights = bf16_matrix<MyQwen::ffn, MyQwen::hidden>();
    const qwen3::Matrix<MyQwen::ffn, MyQwen::hidden> w{qwen3::DType::bf16, reinterpret_cast<const std::byte*>(weights.data())};
    qwen3::detail::Input<MyQwen::hidden, 1> in;
    std::vector<float> x(MyQwen::hidden, 0.5f), y(MyQwen::ffn);
    in.set(x.data(), 1);
    in.prepare(w.type);
    for (auto _ : state) {
        qwen3::detail::matvec(w, in, y.data(), 0, MyQwen::ffn);
        benchmark::DoNotOptimize(y.data());
    }
    state.counters["bytes/s"] = benchmark::Counter(double(weights.size() * 2), benchmark::Counter::kIsIterationInvariantRate);
}

// Prefill: 64 tokens through the same matrix (multiply-adds per second).
void prefill_gate(benchmark::State& state) {
    static const auto weights = bf16_matrix<MyQwen::ffn, MyQwen::hidden>();
    const qwen3::Matrix<MyQwen::ffn, MyQwen::hidden> w{qwen3::DType::bf16, reinterpret_cast<const std::byte*>(weights.data())};
    constexpr int kTokens = 64;
    auto in = std::make_unique<qwen3::detail::Input<MyQwen::hidden, kTokens>>();
    std::vector<float> x(static_cast<std::size_t>(MyQwen::hidden) * kTokens, 0.5f), y(static_cast<std::size_t>(MyQwen::ffn) * kTokens);
    for (auto _ : state) {
        in->set(x.data(), kTokens);
        in->prepare(w.type);
        qwen3::detail::matmul(w, *in, y.data(), MyQwen::ffn, 0, MyQwen::ffn);
        benchmark::DoNotOptimize(y.data());
    }
    state.counters["FLOP/s"] = benchmark::Counter(2.0 * MyQwen::ffn * MyQwen::hidden * kTokens, benchmark::Counter::kIsIterationInvariantRate);
}

// Attention of one layer at a 1024-token context, GQA group of 3 query heads per KV head.
void attention(benchmark::State& state) {
    auto arena = std::make_unique<qwen3::KVArena<MyQwen>>();
    std::vector<float> kv(MyQwen::head_dim, 0.1f), q(MyQwen::q_dim, 0.1f), out(MyQwen::q_dim);
    constexpr int kContext = 1024;
    for (int p = 0; p < kContext; ++p)
        for (int h = 0; h < MyQwen::kv_heads; ++h) arena->store(0, h, p, kv.data(), kv.data());
    for (auto _ : state) {
        for (int h = 0; h < MyQwen::kv_heads; ++h)
            qwen3::detail::attend<MyQwen::head_dim, MyQwen::group, qwen3::DefaultKV>(
                q.data() + h * MyQwen::group * MyQwen::head_dim, *arena, 0, h, kContext, 0.088f,
                out.data() + h * MyQwen::group * MyQwen::head_dim);
        benchmark::DoNotOptimize(out.data());
    }
}

void rms_norm(benchmark::State& state) {
    std::vector<float> x(MyQwen::hidden, 0.3f), w(MyQwen::hidden, 1.0f), y(MyQwen::hidden);
    for (auto _ : state) {
        qwen3::detail::rms_norm<MyQwen::hidden>(x.data(), w.data(), 1e-6f, y.data());
        benchmark::DoNotOptimize(y.data());
    }
}

BENCHMARK(decode_gate)->UseRealTime();
BENCHMARK(prefill_gate)->UseRealTime();
BENCHMARK(attention);
BENCHMARK(rms_norm);

}  // namespace

BENCHMARK_MAIN();
