// Google Benchmark microbenchmarks of the matrix kernels at the real shapes of the named variants.
//
//   bench_kernels --benchmark_filter='matvec.*Qwen3-4B'      decode: bytes of weights per second
//                                                             (matvec_packed: the load-time decode layout)
//   bench_kernels --benchmark_filter='matvec_batch/Qwen3-0.6B/.*/Q4_0'   batched decode of 1-16 sequences
//   bench_kernels --benchmark_filter='matmul'                 prefill (512 tokens, prefill's chunk):
//                                                             FLOP/s, the input's preparation included
//   bench_kernels --benchmark_filter='attention_prefill'      a layer's attention for a 512-token prompt
//                                                             chunk after 0, 3584 or 15872 positions: FLOP/s
//   bench_kernels --benchmark_filter='^attention/Qwen3-0.6B'  decode attention of every layer at a depth:
//                                                             GB/s of KV read
//
// Weights are random blocks of each format in a ring of matrices larger than the last-level cache,
// so decode numbers measure memory streaming, as in a real forward pass. One thread each.
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <qwen3/config.hpp>
#include <qwen3/kernels/activation.hpp>
#include <qwen3/kernels/attention.hpp>
#include <qwen3/kernels/linear.hpp>
#include <qwen3/kernels/norm.hpp>
#include <qwen3/kernels/rope.hpp>
#include <qwen3/detail/simd.hpp>
#include <qwen3/kv_arena.hpp>

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
    const std::uint16_t small_half = qwen3::detail::simd::f32_to_f16(0.01f);
    auto set_half = [&](std::size_t offset) { std::memcpy(data.data() + offset, &small_half, 2); };
    const std::size_t blocks = data.size() / info.block_bytes;
    for (std::size_t b = 0; b < blocks; ++b) {
        const std::size_t at = b * info.block_bytes;
        switch (type) {
            case DType::f32: { float f = float(int(rng() % 2001) - 1000) * 1e-5f; std::memcpy(data.data() + at, &f, 4); break; }
            case DType::f16: set_half(at); break;
            case DType::bf16: { std::uint16_t h = qwen3::detail::simd::f32_to_bf16(float(int(rng() % 2001) - 1000) * 1e-5f); std::memcpy(data.data() + at, &h, 2); break; }
            case DType::q6_k: set_half(at + 208); break;
            case DType::q4_k: case DType::q5_k: set_half(at); set_half(at + 2); break;
            default: set_half(at); break;  // Q8_0, Q4_0, Q5_0: d first
        }
    }
    return data;
}

constexpr std::size_t kRingBytes = std::size_t(512) << 20;  // well past any last-level cache

// packed: the weights in the decode layout of 16 interleaved rows (avx512_packed.hpp), as a Model
// makes them at load.
template <int Rows, int Cols>
void matvec(benchmark::State& state, DType type, bool packed) {
    const std::size_t bytes = qwen3::row_bytes(type, Cols) * Rows;
    const int copies = int(std::max<std::size_t>(1, kRingBytes / bytes));
    std::vector<std::vector<std::byte>> ring, packed_ring;
    for (int c = 0; c < copies; ++c) {
        ring.push_back(random_weights(type, Rows, Cols, std::uint64_t(c)));
        if (!packed) continue;
        packed_ring.emplace_back(bytes);
        qwen3::detail::pack_row_groups(qwen3::Matrix<Rows, Cols>{type, ring.back().data()}, 0, Rows / qwen3::detail::kPackRows,
                               packed_ring.back().data());
    }
    qwen3::detail::Input<Cols, 1> in;
    std::vector<float> x(Cols), y(Rows);
    for (int i = 0; i < Cols; ++i) x[std::size_t(i)] = std::sin(float(i));
    in.set(x.data(), 1);
    in.prepare(type);
    int next = 0;
    for (auto _ : state) {
        qwen3::Matrix<Rows, Cols> w{type, ring[std::size_t(next)].data()};
        if (packed) w.packed = packed_ring[std::size_t(next)].data();
        next = (next + 1) % copies;
        qwen3::detail::matvec(w, in, y.data(), 0, Rows);
        benchmark::DoNotOptimize(y.data());
    }
    state.counters["bytes/s"] = benchmark::Counter(double(bytes), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["FLOP/s"] = benchmark::Counter(2.0 * Rows * Cols, benchmark::Counter::kIsIterationInvariantRate);
}

// Decode steps of state.range(0) sequences at once (the engine's batched decode): each group of 16
// packed rows read once for all of them. FLOP/s counts every token's products, so the figure at 8
// tokens over the figure at 1 is what batching gains in this kernel, memory streaming included.
template <int Rows, int Cols>
void matvec_batch(benchmark::State& state, DType type) {
    const int tokens = int(state.range(0));
    const std::size_t bytes = qwen3::row_bytes(type, Cols) * Rows;
    const int copies = int(std::max<std::size_t>(1, kRingBytes / bytes));
    std::vector<std::vector<std::byte>> packed_ring;
    for (int c = 0; c < copies; ++c) {
        const auto weights = random_weights(type, Rows, Cols, std::uint64_t(c));
        packed_ring.emplace_back(bytes);
        qwen3::detail::pack_row_groups(qwen3::Matrix<Rows, Cols>{type, weights.data()}, 0, Rows / qwen3::detail::kPackRows,
                                       packed_ring.back().data());
    }
    qwen3::detail::Input<Cols, 64> in(true);
    std::vector<float> x(static_cast<std::size_t>(Cols) * std::size_t(tokens)), y(static_cast<std::size_t>(Rows) * std::size_t(tokens));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i));
    in.set(x.data(), tokens);
    in.prepare(type);
    int next = 0;
    for (auto _ : state) {
        qwen3::Matrix<Rows, Cols> w{type, nullptr};
        w.packed = packed_ring[std::size_t(next)].data();
        next = (next + 1) % copies;
        qwen3::detail::matvec_batch(w, in, y.data(), std::size_t(Rows), 0, Rows);
        benchmark::DoNotOptimize(y.data());
    }
    state.counters["FLOP/s"] = benchmark::Counter(2.0 * Rows * Cols * tokens, benchmark::Counter::kIsIterationInvariantRate);
}

// bf16_products: Precision::bf16_products (BF16 weights only).
template <int Rows, int Cols>
void matmul(benchmark::State& state, DType type, bool bf16_products) {
    constexpr int kTokens = 512;
    const auto weights = random_weights(type, Rows, Cols, 7);
    auto in = std::make_unique<qwen3::detail::Input<Cols, kTokens>>();
    in->allow_bf16_products(bf16_products);
    std::vector<float> x(static_cast<std::size_t>(Cols) * kTokens), y(static_cast<std::size_t>(Rows) * kTokens);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i));
    qwen3::Matrix<Rows, Cols> w{type, weights.data()};
    for (auto _ : state) {
        in->set(x.data(), kTokens);  // the input is prepared anew for every matrix, as in prefill
        in->prepare(type);
        qwen3::detail::matmul(w, *in, y.data(), Rows, 0, Rows);
        benchmark::DoNotOptimize(y.data());
    }
    state.counters["FLOP/s"] = benchmark::Counter(2.0 * Rows * Cols * kTokens, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["tokens/s"] = benchmark::Counter(kTokens, benchmark::Counter::kIsIterationInvariantRate);
}

template <int N>
void rms_norm(benchmark::State& state) {
    std::vector<float> x(N), w(N, 1.0f), y(N);
    for (int i = 0; i < N; ++i) x[std::size_t(i)] = std::sin(float(i));
    for (auto _ : state) {
        qwen3::detail::rms_norm<N>(x.data(), w.data(), 1e-6f, y.data());
        benchmark::DoNotOptimize(y.data());
    }
    state.counters["bytes/s"] = benchmark::Counter(3.0 * N * 4, benchmark::Counter::kIsIterationInvariantRate);
}

template <int N>
void swiglu(benchmark::State& state) {
    std::vector<float> g(N), u(N);
    for (int i = 0; i < N; ++i) g[std::size_t(i)] = std::sin(float(i)), u[std::size_t(i)] = std::cos(float(i));
    for (auto _ : state) {
        std::vector<float> gate = g;
        qwen3::detail::swiglu<N>(gate.data(), u.data());
        benchmark::DoNotOptimize(gate.data());
    }
    state.counters["elements/s"] = benchmark::Counter(N, benchmark::Counter::kIsIterationInvariantRate);
}

template <class Cfg>
void rope(benchmark::State& state) {
    qwen3::detail::Rope<Cfg::head_dim> r(1e6, qwen3::RopeScaling{});
    std::vector<float> q(Cfg::q_dim, 0.5f), cs(Cfg::head_dim);
    long pos = 1000;
    for (auto _ : state) {
        r.angles(pos++, cs.data(), cs.data() + Cfg::head_dim / 2);
        for (int h = 0; h < Cfg::heads; ++h) qwen3::detail::apply_rope<Cfg::head_dim>(q.data() + h * Cfg::head_dim, cs.data(), cs.data() + Cfg::head_dim / 2);
        benchmark::DoNotOptimize(q.data());
    }
}

// A 512-token prompt chunk's attention for one layer (all KV heads) after `depth` positions already
// in the cache, Queries consecutive queries per call as prefill hands them out; FLOP/s counts the
// causal products (2 per head element and position, QK and PV).
template <class Cfg, class KV, int Queries>
void attention_prefill(benchmark::State& state) {
    constexpr int kTokens = 512;
    const int depth = int(state.range(0));
    using Small = qwen3::WithContext<Cfg, 16384>;
    auto arena = std::make_unique<qwen3::KVArena<Small, KV>>();
    std::vector<float> kv(Cfg::head_dim);
    for (int p = 0; p < depth + kTokens; ++p)
        for (int h = 0; h < Cfg::kv_heads; ++h) {
            for (int d = 0; d < Cfg::head_dim; ++d) kv[std::size_t(d)] = std::sin(float(p * 131 + h * 7 + d));
            arena->store(0, h, p, kv.data(), kv.data());
        }
    std::vector<float> q(std::size_t(kTokens) * Cfg::q_dim), out(q.size());
    for (std::size_t i = 0; i < q.size(); ++i) q[i] = 0.1f * std::sin(float(i));
    constexpr std::size_t head_group = std::size_t(Cfg::group) * Cfg::head_dim;
    for (auto _ : state) {
        for (int h = 0; h < Cfg::kv_heads; ++h)
            for (int t = 0; t < kTokens; t += Queries)
                qwen3::detail::attend<Cfg::head_dim, Cfg::group, KV, Queries>(
                    q.data() + std::size_t(t) * Cfg::q_dim + h * head_group, *arena, 0, h, depth + t + 1, 0.088f,
                    out.data() + std::size_t(t) * Cfg::q_dim + h * head_group, Queries, Cfg::q_dim);
        benchmark::DoNotOptimize(out.data());
    }
    const double products = (double(kTokens) * depth + double(kTokens) * (kTokens + 1) / 2) * Cfg::heads * Cfg::head_dim;
    state.counters["FLOP/s"] = benchmark::Counter(4.0 * products, benchmark::Counter::kIsIterationInvariantRate);
}

// One decode step's attention for one layer (all KV heads) at a given context length.
template <class Cfg, class KV>
void attention(benchmark::State& state) {
    const int context = int(state.range(0));
    using Small = qwen3::WithContext<Cfg, 16384>;
    auto arena = std::make_unique<qwen3::KVArena<Small, KV>>();
    std::vector<float> kv(Cfg::head_dim);
    for (int l = 0; l < Cfg::layers; ++l)
        for (int p = 0; p < context; ++p)
            for (int h = 0; h < Cfg::kv_heads; ++h) {
                for (int d = 0; d < Cfg::head_dim; ++d) kv[std::size_t(d)] = std::sin(float(p * 131 + h * 7 + d + l));
                arena->store(l, h, p, kv.data(), kv.data());
            }
    std::vector<float> q(Cfg::q_dim, 0.01f), out(Cfg::q_dim);
    for (auto _ : state) {  // every layer, as a decode step reads them: the cache is streamed from memory
        for (int l = 0; l < Cfg::layers; ++l)
            for (int h = 0; h < Cfg::kv_heads; ++h)
                qwen3::detail::attend<Cfg::head_dim, Cfg::group, KV>(q.data() + h * Cfg::group * Cfg::head_dim, *arena, l, h, context,
                                                                      0.088f, out.data() + h * Cfg::group * Cfg::head_dim);
        benchmark::DoNotOptimize(out.data());
    }
    const double kv_bytes = double(context) * Cfg::layers * Cfg::kv_heads *
                            double(KV::template key_block_bytes<Cfg::head_dim> / qwen3::kKeyBlock + KV::template value_row_bytes<Cfg::head_dim>);
    state.counters["bytes/s"] = benchmark::Counter(kv_bytes, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["FLOP/s"] = benchmark::Counter(4.0 * context * Cfg::layers * Cfg::heads * Cfg::head_dim, benchmark::Counter::kIsIterationInvariantRate);
}

const DType kTypes[] = {DType::f32, DType::bf16, DType::f16, DType::q8_0, DType::q4_0, DType::q5_0, DType::q4_k, DType::q5_k, DType::q6_k};

// The projections of one variant: [rows, cols] of q, k/v, o, gate/up, down.
template <class Cfg>
void register_variant() {
    const std::string name(Cfg::name);
    for (DType type : kTypes) {
        const std::string t = qwen3::dtype_name(type);
        if (!qwen3::detail::supports_matrix_type<Cfg::hidden>(type) || !qwen3::detail::supports_matrix_type<Cfg::ffn>(type)) continue;
        const bool packable = qwen3::detail::has_packed_layout<Cfg::hidden>(type) && qwen3::detail::has_packed_layout<Cfg::ffn>(type) &&
                              qwen3::detail::has_packed_layout<Cfg::q_dim>(type);
        for (bool packed : {false, true}) {
            if (packed && !packable) continue;
            const std::string kind = packed ? "matvec_packed/" : "matvec/";
            benchmark::RegisterBenchmark((kind + name + "/gate_up/" + t).c_str(), matvec<Cfg::ffn, Cfg::hidden>, type, packed)->UseRealTime();
            benchmark::RegisterBenchmark((kind + name + "/down/" + t).c_str(), matvec<Cfg::hidden, Cfg::ffn>, type, packed)->UseRealTime();
            benchmark::RegisterBenchmark((kind + name + "/q/" + t).c_str(), matvec<Cfg::q_dim, Cfg::hidden>, type, packed)->UseRealTime();
            benchmark::RegisterBenchmark((kind + name + "/o/" + t).c_str(), matvec<Cfg::hidden, Cfg::q_dim>, type, packed)->UseRealTime();
        }
        if (packable) {
            benchmark::RegisterBenchmark(("matvec_batch/" + name + "/gate_up/" + t).c_str(), matvec_batch<Cfg::ffn, Cfg::hidden>, type)
                ->Arg(1)->Arg(4)->Arg(8)->Arg(16)->UseRealTime();
            benchmark::RegisterBenchmark(("matvec_batch/" + name + "/down/" + t).c_str(), matvec_batch<Cfg::hidden, Cfg::ffn>, type)
                ->Arg(1)->Arg(4)->Arg(8)->Arg(16)->UseRealTime();
        }
        for (bool products : {false, true}) {
            if (products && type != DType::bf16) continue;
            const std::string tt = products ? t + "-products" : t;
            benchmark::RegisterBenchmark(("matmul512/" + name + "/gate_up/" + tt).c_str(), matmul<Cfg::ffn, Cfg::hidden>, type, products)
                ->UseRealTime();
            benchmark::RegisterBenchmark(("matmul512/" + name + "/down/" + tt).c_str(), matmul<Cfg::hidden, Cfg::ffn>, type, products)
                ->UseRealTime();
        }
    }
    benchmark::RegisterBenchmark(("rms_norm/" + name + "/hidden").c_str(), rms_norm<Cfg::hidden>);
    benchmark::RegisterBenchmark(("rms_norm/" + name + "/head").c_str(), rms_norm<Cfg::head_dim>);
    benchmark::RegisterBenchmark(("swiglu/" + name).c_str(), swiglu<Cfg::ffn>);
    benchmark::RegisterBenchmark(("rope/" + name + "/all_heads").c_str(), rope<Cfg>);
    for (int depth : {0, 3584, 15872}) {
        if (depth > 4096 && Cfg::layers * Cfg::kv_heads > 28 * 8) continue;
        benchmark::RegisterBenchmark(("attention_prefill/" + name + "/BF16").c_str(), attention_prefill<Cfg, qwen3::KVBF16, 4>)->Arg(depth);
    }
    for (int context : {512, 4096, 16384}) {
        if (context > 4096 && Cfg::layers * Cfg::kv_heads > 28 * 8) continue;  // at most 0.6B/1.7B's 3.7 GB of F32 KV
        benchmark::RegisterBenchmark(("attention/" + name + "/F32").c_str(), attention<Cfg, qwen3::KVF32>)->Arg(context);
        benchmark::RegisterBenchmark(("attention/" + name + "/BF16").c_str(), attention<Cfg, qwen3::KVBF16>)->Arg(context);
        benchmark::RegisterBenchmark(("attention/" + name + "/Q8_0").c_str(), attention<Cfg, qwen3::KVQ8_0>)->Arg(context);
    }
}

const int registered = [] {
    register_variant<qwen3::Qwen3_0_6B>();
    register_variant<qwen3::Qwen3_1_7B>();
    register_variant<qwen3::Qwen3_4B>();
    register_variant<qwen3::Qwen3_8B>();
    register_variant<qwen3::Qwen3_14B>();
    register_variant<qwen3::Qwen3_32B>();
    return 0;
}();

}  // namespace

BENCHMARK_MAIN();
