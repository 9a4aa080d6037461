// qwen3/kernels/attention.hpp - causal grouped-query attention over the KV arena.
//
// One call handles one KV head and the `Group` query heads that share it, for one query position:
// each key and value is read once for the whole group. Keys come in blocks of 16 positions stored
// transposed (see kv_arena.hpp), so 16 scores are one multiply-add per head element, with no
// horizontal sums. Softmax is computed online over the blocks (running maximum and sum, as in
// FlashAttention): no buffer grows with the context, and the result equals the two-pass softmax up
// to float rounding. A decode query over a long context can also be split into parts over its
// positions, run by different threads and combined (flash-decoding): attend_part and combine_parts.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "../detail/simd.hpp"
#include "../kv_types.hpp"

namespace qwen3::detail {

// The online softmax of Rows query rows over the positions read so far: the output rows not yet
// divided by their sums, each row's running maximum and sum of exponentials.
template <int Rows, int D>
struct SoftmaxRows {
    alignas(64) float acc[Rows][D];
    float max[Rows], sum[Rows];
};

// Up to Queries consecutive query positions of one KV head over positions [begin, ...) (begin a
// multiple of kKeyBlock). Query t (t < count) has its Group heads at q + t * stride ([Group][D],
// normed and rotated) and attends to positions [begin, first_n + t). `arena`/`layer`/`kv_head`
// locate the keys and values; scale multiplies the dot products. The rows of `st` are [t][Group].
template <int D, int Group, class KV, int Queries, class Arena>
void attend_positions(const float* q, const Arena& arena, int layer, int kv_head, int begin, int first_n, float scale, int count,
                      std::size_t stride, SoftmaxRows<Queries * Group, D>& st) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes);
    constexpr int DL = D / L;
    constexpr int QN = Queries * Group;  // query rows of this call
    static_assert(D % L == 0 && kKeyBlock % L == 0, "head_dim and the key block must be multiples of the SIMD width");
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();

    // local until the end: stores through `st` could alias the cache's bytes and force reloads
    alignas(64) float acc[QN][D];
    float running_max[QN], running_sum[QN];
    for (int i = 0; i < QN; ++i) {
        std::fill_n(acc[i], D, 0.f);
        running_max[i] = kNegInf;
        running_sum[i] = 0.f;
    }
    const int rows = count * Group;
    auto row_offset = [&](int i) { return std::size_t(i / Group) * stride + std::size_t(i % Group) * D; };
    alignas(64) float qs[QN][D];  // the query rows, contiguous
    for (int i = 0; i < QN; ++i)
        for (int d = 0; d < D; ++d) qs[i][d] = i < rows ? q[row_offset(i) + d] : 0.f;
    const int n_last = first_n + count - 1;  // positions the last query attends to
    const fbatch scale_v(scale);
    // Rows go in chunks of up to 8, positions in passes of V SIMD widths, and the value rows V widths
    // of the head at a time: each broadcast query element or weight feeds V multiply-adds, and the
    // RC x V partial sums are independent chains, at least 8 of them so that the multiply-add
    // latency does not bind when a chunk has few rows (one decode query of a group of 2), 16 with
    // AVX-512's 32 registers, whose longer passes also let the prefetchers run ahead in decode.
    constexpr int RC = [] {  // query rows per chunk: the largest divisor of QN up to 8
        int r = QN < 8 ? QN : 8;
        while (QN % r != 0) --r;
        return r;
    }();
    constexpr int V = [] {  // halved until it divides the head's SIMD widths (small test heads)
        int v = RC >= 4 ? 2 : 4;
        if (simd::lanes == 16) {
            v = 1;
            while (v * 2 * RC <= 16) v *= 2;
        }
        while (DL % v != 0) v /= 2;
        return v;
    }();
    constexpr int PL = V * L;  // positions per pass
    alignas(64) float p[QN][PL];
    const int passes = (n_last - begin + PL - 1) / PL;
    for (int pass = 0; pass < passes; ++pass) {
        const int start = begin + pass * PL;
        const int pass_valid = std::min(PL, n_last - start);  // positions in the arena
        // the key column of the pass's vector v at element d
        const std::byte* key_block[V];
        int key_lane[V];
        for (int v = 0; v < V; ++v) {
            const int pos = start + v * L;
            key_block[v] = pos < n_last ? arena.key_block(layer, kv_head, pos / kKeyBlock) : key_block[0];
            key_lane[v] = pos % kKeyBlock;
        }
        // (a vector past the arena's end reads the first vector's block again; its scores are masked below)
        for (int i0 = 0; i0 < QN; i0 += RC) {
            fbatch sc[RC][V];
            for (int i = 0; i < RC; ++i)
                for (int v = 0; v < V; ++v) sc[i][v] = fbatch(0.f);
            for (int d = 0; d < D; ++d) {
                fbatch k[V];
                for (int v = 0; v < V; ++v) k[v] = KV::template key_column<D>(key_block[v], d, key_lane[v]);
                for (int i = 0; i < RC; ++i) {
                    const fbatch qd(qs[i0 + i][d]);
                    for (int v = 0; v < V; ++v) sc[i][v] = simd::fma(qd, k[v], sc[i][v]);
                }
            }
            for (int i = 0; i < RC; ++i)
                for (int v = 0; v < V; ++v) (sc[i][v] * scale_v).store_aligned(p[i0 + i] + v * L);
        }
        // online softmax: each row's running maximum and sum absorb the pass
        for (int i = 0; i < rows; ++i) {
            const int n = first_n + i / Group;  // causal: this query sees positions [0, n)
            const int valid = std::clamp(n - start, 0, PL);
            if (valid == 0) {  // a query earlier than the pass (several queries per call): weights 0
                std::fill_n(p[i], PL, 0.f);
                continue;
            }
            for (int j = valid; j < PL; ++j) p[i][j] = kNegInf;
            fbatch scores[PL / L];
            for (int l = 0; l < PL / L; ++l) scores[l] = fbatch::load_aligned(p[i] + l * L);
            fbatch top = scores[0];
            for (int l = 1; l < PL / L; ++l) top = xsimd::max(top, scores[l]);
            const float pass_max = std::max(running_max[i], simd::max_lane(top));
            const float correction = pass_max == running_max[i] ? 1.f : std::exp(running_max[i] - pass_max);
            running_max[i] = pass_max;
            fbatch total(0.f);
            for (int l = 0; l < PL / L; ++l) {
                const fbatch e = xsimd::exp(scores[l] - fbatch(pass_max));
                e.store_aligned(p[i] + l * L);
                total += e;
            }
            running_sum[i] = running_sum[i] * correction + simd::sum(total);
            if (correction != 1.f) {
                const fbatch c(correction);
                for (int d = 0; d < D; d += L) (fbatch::load_aligned(acc[i] + d) * c).store_aligned(acc[i] + d);
            }
        }
        // out += p v over the pass's positions, V SIMD widths of the head at a time, the partial
        // sums of a chunk of rows in registers across the positions
        const std::byte* value_rows[PL];
        for (int j = 0; j < pass_valid; ++j) value_rows[j] = arena.value_row(layer, kv_head, start + j);
        for (int i0 = 0; i0 < QN; i0 += RC)
            for (int c = 0; c < DL; c += V) {
                fbatch a[RC][V];
                for (int i = 0; i < RC; ++i)
                    for (int v = 0; v < V; ++v) a[i][v] = fbatch::load_aligned(acc[i0 + i] + (c + v) * L);
                for (int j = 0; j < pass_valid; ++j) {
                    fbatch vals[V];
                    for (int v = 0; v < V; ++v) vals[v] = KV::template value<D>(value_rows[j], (c + v) * L);
                    for (int i = 0; i < RC; ++i) {  // masked positions have p = 0
                        const fbatch w(p[i0 + i][j]);
                        for (int v = 0; v < V; ++v) a[i][v] = simd::fma(w, vals[v], a[i][v]);
                    }
                }
                for (int i = 0; i < RC; ++i)
                    for (int v = 0; v < V; ++v) a[i][v].store_aligned(acc[i0 + i] + (c + v) * L);
            }
    }
    std::copy_n(&acc[0][0], QN * D, &st.acc[0][0]);
    std::copy_n(running_max, QN, st.max);
    std::copy_n(running_sum, QN, st.sum);
}

// Attention over all the positions each query sees, [0, first_n + t) for query t: its output goes to
// out + t * stride in the queries' layout. Prefill hands several queries to one call, so each key and
// value is read once for all of them.
template <int D, int Group, class KV, int Queries = 1, class Arena>
void attend(const float* q, const Arena& arena, int layer, int kv_head, int first_n, float scale, float* out, int count = 1,
            std::size_t stride = 0) {
    using simd::fbatch;
    SoftmaxRows<Queries * Group, D> st;
    attend_positions<D, Group, KV, Queries>(q, arena, layer, kv_head, 0, first_n, scale, count, stride, st);
    for (int i = 0; i < count * Group; ++i) {
        const fbatch inv(1.f / st.sum[i]);
        float* row = out + std::size_t(i / Group) * stride + std::size_t(i % Group) * D;
        for (int d = 0; d < D; d += int(simd::lanes)) (fbatch::load_aligned(st.acc[i] + d) * inv).store_unaligned(row + d);
    }
}

// One decode query's Group heads (at q, [Group][D]) over positions [begin, end) only, begin a
// multiple of kKeyBlock and begin < end: the part's softmax state, for combine_parts.
template <int D, int Group, class KV, class Arena>
void attend_part(const float* q, const Arena& arena, int layer, int kv_head, int begin, int end, float scale,
                 SoftmaxRows<Group, D>& part) {
    attend_positions<D, Group, KV, 1>(q, arena, layer, kv_head, begin, end, scale, 1, 0, part);
}

// The output ([Group][D]) of a decode query split into n_parts consecutive parts: each part's sums
// and rows rescaled to the largest maximum, as the online softmax does across passes.
template <int D, int Group>
void combine_parts(const SoftmaxRows<Group, D>* parts, int n_parts, float* out) {
    for (int i = 0; i < Group; ++i) {
        float top = parts[0].max[i];
        for (int p = 1; p < n_parts; ++p) top = std::max(top, parts[p].max[i]);
        float total = 0.f;
        float* row = out + std::size_t(i) * D;
        std::fill_n(row, D, 0.f);
        for (int p = 0; p < n_parts; ++p) {
            const float w = std::exp(parts[p].max[i] - top);
            total += parts[p].sum[i] * w;
            for (int d = 0; d < D; ++d) row[d] += parts[p].acc[i][d] * w;
        }
        const float inv = 1.f / total;
        for (int d = 0; d < D; ++d) row[d] *= inv;
    }
}

}  // namespace qwen3::detail
