// The attention kernel against a direct float64 computation: softmax(q k^T * scale) v over the
// positions each query sees, for decode (one query, whole or split into parts over its positions)
// and prefill (several queries per call), every
// KV element type, group sizes of the Qwen3 shapes and contexts that cross the kernel's key blocks
// and passes. Keys and values are multiples of 1/64 whose 32-element blocks all hold +-127/64, so
// BF16 and Q8_0 store them exactly and the reference needs no model of their rounding.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include <qwen3/config.hpp>
#include <qwen3/kernels/attention.hpp>
#include <qwen3/kv_arena.hpp>

namespace {

constexpr int kMaxContext = 4200;

template <int Heads, int KVHeads, int HeadDim>
struct AttentionShape : qwen3::Config<256, 1, Heads, KVHeads, HeadDim, 256, 64, true, kMaxContext> {};

template <class Cfg, class KV>
struct Fixture {
    static constexpr int D = Cfg::head_dim;
    std::unique_ptr<qwen3::KVArena<Cfg, KV>> arena = std::make_unique<qwen3::KVArena<Cfg, KV>>();
    std::vector<double> keys, values;  // [position][kv_head][D], exactly as stored
    std::vector<float> queries;        // [position][heads][D]

    explicit Fixture(int positions) {
        std::mt19937 rng(1234 + D + Cfg::group);
        std::uniform_int_distribution<int> step(-126, 126);
        std::uniform_real_distribution<float> uniform(-1.f, 1.f);
        keys.resize(std::size_t(positions) * Cfg::kv_dim);
        values.resize(keys.size());
        std::vector<float> k(D), v(D);
        for (int p = 0; p < positions; ++p)
            for (int h = 0; h < Cfg::kv_heads; ++h) {
                for (int d = 0; d < D; ++d) {
                    // one element per block of 32 is the block's largest magnitude, the rest below it
                    const bool top = (d + p) % 32 == 0;
                    k[std::size_t(d)] = top ? ((p & 1) ? 127 : -127) / 64.f : step(rng) / 64.f;
                    v[std::size_t(d)] = top ? ((p & 2) ? 127 : -127) / 64.f : step(rng) / 64.f;
                    const std::size_t at = (std::size_t(p) * Cfg::kv_heads + h) * D + d;
                    keys[at] = k[std::size_t(d)];
                    values[at] = v[std::size_t(d)];
                }
                arena->store(0, h, p, k.data(), v.data());
            }
        queries.resize(std::size_t(positions) * Cfg::q_dim);
        // scores of a few units and, for some positions, of tens: the softmax is far from uniform
        for (std::size_t i = 0; i < queries.size(); ++i) queries[i] = uniform(rng) * ((i / Cfg::q_dim) % 7 == 3 ? 0.6f : 0.08f);
    }

    // Head `head` of the query at `position` attends to positions [0, n).
    std::vector<double> reference(int position, int head, int n, double scale) const {
        const int g = head / Cfg::group;
        const float* q = queries.data() + std::size_t(position) * Cfg::q_dim + std::size_t(head) * D;
        std::vector<double> score(std::size_t(n), 0.0), out(D, 0.0);
        double top = -INFINITY;
        for (int j = 0; j < n; ++j) {
            double s = 0;
            for (int d = 0; d < D; ++d) s += double(q[d]) * keys[(std::size_t(j) * Cfg::kv_heads + g) * D + d];
            score[std::size_t(j)] = s * scale;
            top = std::max(top, score[std::size_t(j)]);
        }
        double total = 0;
        for (int j = 0; j < n; ++j) total += score[std::size_t(j)] = std::exp(score[std::size_t(j)] - top);
        for (int j = 0; j < n; ++j)
            for (int d = 0; d < D; ++d) out[std::size_t(d)] += score[std::size_t(j)] / total * values[(std::size_t(j) * Cfg::kv_heads + g) * D + d];
        return out;
    }
};

// Values are at most 2 in magnitude; float accumulation over 4,200 positions stays below 1e-6.
constexpr double kTolerance = 2e-6;

double worst_difference(const float* out, const std::vector<double>& want) {
    double worst = 0;
    for (std::size_t d = 0; d < want.size(); ++d) worst = std::max(worst, std::fabs(double(out[d]) - want[d]));
    return worst;
}

template <class Cfg, class KV>
void check_decode(const Fixture<Cfg, KV>& f, int n, float scale) {
    constexpr int D = Cfg::head_dim;
    const int position = n - 1;
    std::vector<float> out(Cfg::q_dim, NAN);
    for (int g = 0; g < Cfg::kv_heads; ++g) {
        const std::size_t offset = std::size_t(g) * Cfg::group * D;
        qwen3::detail::attend<D, Cfg::group, KV>(f.queries.data() + std::size_t(position) * Cfg::q_dim + offset, *f.arena, 0, g, n,
                                                 scale, out.data() + offset);
    }
    for (int head = 0; head < Cfg::heads; ++head) {
        const double worst = worst_difference(out.data() + std::size_t(head) * D, f.reference(position, head, n, scale));
        CAPTURE(n);
        CAPTURE(head);
        CHECK(worst <= kTolerance);
    }
}

// A decode query split into `n_parts` ranges of positions (each a whole number of key blocks),
// attended separately and combined, as several threads do for a long context.
template <class Cfg, class KV>
void check_split_decode(const Fixture<Cfg, KV>& f, int n, int n_parts, float scale) {
    constexpr int D = Cfg::head_dim;
    const int position = n - 1;
    const int length = ((n + n_parts - 1) / n_parts + qwen3::kKeyBlock - 1) / qwen3::kKeyBlock * qwen3::kKeyBlock;
    std::vector<float> out(Cfg::q_dim, NAN);
    std::vector<qwen3::detail::SoftmaxRows<Cfg::group, D>> parts{std::size_t(n_parts)};
    for (int g = 0; g < Cfg::kv_heads; ++g) {
        const std::size_t offset = std::size_t(g) * Cfg::group * D;
        int used = 0;
        for (int begin = 0; begin < n; begin += length, ++used)
            qwen3::detail::attend_part<D, Cfg::group, KV>(f.queries.data() + std::size_t(position) * Cfg::q_dim + offset, *f.arena, 0, g,
                                                           begin, std::min(begin + length, n), scale, parts[std::size_t(used)]);
        qwen3::detail::combine_parts<D, Cfg::group>(parts.data(), used, out.data() + offset);
    }
    for (int head = 0; head < Cfg::heads; ++head) {
        const double worst = worst_difference(out.data() + std::size_t(head) * D, f.reference(position, head, n, scale));
        CAPTURE(n);
        CAPTURE(n_parts);
        CAPTURE(head);
        CHECK(worst <= kTolerance);
    }
}

// `count` consecutive queries, the first at position first_n - 1, in one call of Queries.
template <int Queries, class Cfg, class KV>
void check_prefill(const Fixture<Cfg, KV>& f, int first_n, int count, float scale) {
    constexpr int D = Cfg::head_dim;
    const int first = first_n - 1;
    std::vector<float> out(std::size_t(count) * Cfg::q_dim, NAN);
    for (int g = 0; g < Cfg::kv_heads; ++g) {
        const std::size_t offset = std::size_t(g) * Cfg::group * D;
        qwen3::detail::attend<D, Cfg::group, KV, Queries>(f.queries.data() + std::size_t(first) * Cfg::q_dim + offset, *f.arena, 0, g,
                                                          first_n, scale, out.data() + offset, count, Cfg::q_dim);
    }
    for (int t = 0; t < count; ++t)
        for (int head = 0; head < Cfg::heads; ++head) {
            const double worst = worst_difference(out.data() + std::size_t(t) * Cfg::q_dim + std::size_t(head) * D,
                                                  f.reference(first + t, head, first_n + t, scale));
            CAPTURE(first_n);
            CAPTURE(t);
            CAPTURE(head);
            CHECK(worst <= kTolerance);
        }
}

template <class Cfg, class KV>
void check_shape() {
    const Fixture<Cfg, KV> f(kMaxContext);
    const float scale = 1.f / std::sqrt(float(Cfg::head_dim));
    for (int n : {1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 257, 1000, 4095, 4097, kMaxContext})
        check_decode(f, n, scale);
    for (int first_n : {1, 2, 14, 16, 17, 126, 130, 4094, kMaxContext - 3})
        for (int count = 1; count <= 4; ++count) check_prefill<4>(f, first_n, count, scale);
    for (int n : {40, 1000, 4097, kMaxContext})
        for (int n_parts : {2, 3, 5}) check_split_decode(f, n, n_parts, scale);
    check_prefill<8>(f, 1000, 8, scale);
    check_prefill<8>(f, 61, 5, scale);
}

}  // namespace

TEST_CASE_TEMPLATE("attention equals a float64 softmax over every position a query sees", KV, qwen3::KVF32, qwen3::KVBF16,
                   qwen3::KVF16, qwen3::KVQ8_0) {
    SUBCASE("group 2, head_dim 128 (0.6B, 1.7B)") { check_shape<AttentionShape<4, 2, 128>, KV>(); }
    SUBCASE("group 4, head_dim 128 (4B, 8B)") { check_shape<AttentionShape<8, 2, 128>, KV>(); }
    SUBCASE("group 5, head_dim 128 (14B)") { check_shape<AttentionShape<10, 2, 128>, KV>(); }
    SUBCASE("group 8, head_dim 128 (32B)") { check_shape<AttentionShape<16, 2, 128>, KV>(); }
    SUBCASE("group 2, head_dim 64 (the test models)") { check_shape<AttentionShape<4, 2, 64>, KV>(); }
}
