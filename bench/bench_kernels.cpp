// Google Benchmark microbenchmarks of the matrix kernels at the real shapes of the named variants.
//
//   bench_kernels --benchmark_filter='matvec.*Qwen3-4B'      decode: bytes of weights per second
//   bench_kernels --benchmark_filter='matmul'                 prefill: multiply-adds per second
//
// Weights are random blocks of each format in a ring of matrices larger than the last-level cache,
// so decode numbers measure memory streaming, as in a real forward pass. One thread each.
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <qwen3/config.hpp>
#include <qwen3/kernels/linear.hpp>
#include <qwen3/kernels/simd.hpp>

namespace {

using qwen3::DType;

// Random bytes with every block's scales set to small finite halves, so no NaN/inf reaches the math.
std::vector<std::byte> random_weights(DType type, int rows, int cols, std::uint64_t seed) {
    const std::size_t stride = qwen3::row_bytes(type, std::uint64_t(cols));
    std::vector<std::byte> data(stride * std::size_t(rows));
    std::mt19937_64 rng(seed);
    for (std::size_t i = 0; i < data.size(); i += 8) {
        std::uint64_t v = rng();
        std::memcpy(data.data() + i, &v, std::min<std::size_t>(8, data.size() - i));
    }
    const auto& info = qwen3::dtype_info(type);
    const std::uint16_t small_half = qwen3::simd::f32_to_f16(0.01f);
    auto set_half = [&](std::size_t offset) { std::memcpy(data.data() + offset, &small_half, 2); };
    const std::size_t blocks = data.size() / info.block_bytes;
    for (std::size_t b = 0; b < blocks; ++b) {
        const std::size_t at = b * info.block_bytes;
        switch (type) {
            case DType::f32: { float f = float(int(rng() % 2001) - 1000) * 1e-5f; std::memcpy(data.data() + at, &f, 4); break; }
            case DType::f16: set_half(at); break;
            case DType::bf16: { std::uint16_t h = qwen3::simd::f32_to_bf16(float(int(rng() % 2001) - 1000) * 1e-5f); std::memcpy(data.data() + at, &h, 2); break; }
            case DType::q6_k: set_half(at + 208); break;
            case DType::q4_k: case DType::q5_k: set_half(at); set_half(at + 2); break;
            default: set_half(at); break;  // Q8_0, Q4_0, Q5_0: d first
        }
    }
    return data;
}

constexpr std::size_t kRingBytes = std::size_t(512) << 20;  // well past any last-level cache

template <int Rows, int Cols>
void matvec(benchmark::State& state, DType type) {
    const std::size_t bytes = qwen3::row_bytes(type, Cols) * Rows;
    const int copies = int(std::max<std::size_t>(1, kRingBytes / bytes));
    std::vector<std::vector<std::byte>> ring;
    for (int c = 0; c < copies; ++c) ring.push_back(random_weights(type, Rows, Cols, std::uint64_t(c)));
    qwen3::kernels::Input<Cols, 1> in;
    std::vector<float> x(Cols), y(Rows);
    for (int i = 0; i < Cols; ++i) x[std::size_t(i)] = std::sin(float(i));
    in.set(x.data(), 1);
    in.prepare(type);
    int next = 0;
    for (auto _ : state) {
        qwen3::Matrix<Rows, Cols> w{type, ring[std::size_t(next)].data()};
        next = (next + 1) % copies;
        qwen3::matvec(w, in, y.data(), 0, Rows);
        benchmark::DoNotOptimize(y.data());
    }
    state.counters["bytes/s"] = benchmark::Counter(double(bytes), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["FLOP/s"] = benchmark::Counter(2.0 * Rows * Cols, benchmark::Counter::kIsIterationInvariantRate);
}

template <int Rows, int Cols>
void matmul(benchmark::State& state, DType type) {
    constexpr int kTokens = 128;
    const auto weights = random_weights(type, Rows, Cols, 7);
    auto in = std::make_unique<qwen3::kernels::Input<Cols, kTokens>>();
    std::vector<float> x(static_cast<std::size_t>(Cols) * kTokens), y(static_cast<std::size_t>(Rows) * kTokens);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i));
    qwen3::Matrix<Rows, Cols> w{type, weights.data()};
    for (auto _ : state) {
        in->set(x.data(), kTokens);  // the input is prepared anew for every matrix, as in prefill
        in->prepare(type);
        qwen3::matmul(w, *in, y.data(), Rows, 0, Rows);
        benchmark::DoNotOptimize(y.data());
    }
    state.counters["FLOP/s"] = benchmark::Counter(2.0 * Rows * Cols * kTokens, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["tokens/s"] = benchmark::Counter(kTokens, benchmark::Counter::kIsIterationInvariantRate);
}

const DType kTypes[] = {DType::f32, DType::bf16, DType::f16, DType::q8_0, DType::q4_0, DType::q5_0, DType::q4_k, DType::q5_k, DType::q6_k};

// The projections of one variant: [rows, cols] of q, k/v, o, gate/up, down.
template <class Cfg>
void register_variant() {
    const std::string name(Cfg::name);
    for (DType type : kTypes) {
        const std::string t = qwen3::dtype_name(type);
        if (!qwen3::supports_matrix_type<Cfg::hidden>(type) || !qwen3::supports_matrix_type<Cfg::ffn>(type)) continue;
        benchmark::RegisterBenchmark(("matvec/" + name + "/gate_up/" + t).c_str(), matvec<Cfg::ffn, Cfg::hidden>, type)->UseRealTime();
        benchmark::RegisterBenchmark(("matvec/" + name + "/down/" + t).c_str(), matvec<Cfg::hidden, Cfg::ffn>, type)->UseRealTime();
        benchmark::RegisterBenchmark(("matvec/" + name + "/q/" + t).c_str(), matvec<Cfg::q_dim, Cfg::hidden>, type)->UseRealTime();
        benchmark::RegisterBenchmark(("matvec/" + name + "/o/" + t).c_str(), matvec<Cfg::hidden, Cfg::q_dim>, type)->UseRealTime();
        benchmark::RegisterBenchmark(("matmul128/" + name + "/gate_up/" + t).c_str(), matmul<Cfg::ffn, Cfg::hidden>, type)->UseRealTime();
        benchmark::RegisterBenchmark(("matmul128/" + name + "/down/" + t).c_str(), matmul<Cfg::hidden, Cfg::ffn>, type)->UseRealTime();
    }
}

const int registered = [] {
    register_variant<qwen3::Qwen3_0_6B>();
    register_variant<qwen3::Qwen3_4B>();
    return 0;
}();

}  // namespace

BENCHMARK_MAIN();
