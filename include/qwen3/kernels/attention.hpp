// qwen3/kernels/attention.hpp - causal grouped-query attention over the KV arena.
//
// One call handles one KV head and the `Group` query heads that share it, for one query position:
// each key and value is read once for the whole group. Keys come in blocks of 16 positions stored
// transposed (see kv_arena.hpp), so 16 scores are one multiply-add per head element, with no
// horizontal sums. Softmax is computed online over the blocks (running maximum and sum, as in
// FlashAttention): no buffer grows with the context, and the result equals the two-pass softmax up
// to float rounding.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "../kv_arena.hpp"
#include "simd.hpp"

namespace qwen3::kernels {

// Up to Queries consecutive query positions of one KV head (prefill hands several to one call, so
// each key and value is read once for all of them). Query t (t < count) has its Group heads at
// q + t * stride ([Group][D], normed and rotated), sits at position first_n - 1 + t and attends to
// positions [0, first_n + t); its output goes to out + t * stride in the same layout.
// `arena`/`layer`/`kv_head` locate the keys and values; scale multiplies the dot products.
template <int D, int Group, class KV, int Queries = 1, class Arena>
void attend(const float* q, const Arena& arena, int layer, int kv_head, int first_n, float scale, float* out, int count = 1,
            std::size_t stride = 0) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes);
    constexpr int DL = D / L;
    constexpr int QN = Queries * Group;  // query rows of this call
    static_assert(D % L == 0 && kKeyBlock % L == 0, "head_dim and the key block must be multiples of the SIMD width");
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();

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
    alignas(64) float p[QN][kKeyBlock];
    const int blocks = (n_last + kKeyBlock - 1) / kKeyBlock;
    for (int b = 0; b < blocks; ++b) {
        const std::byte* block = arena.key_block(layer, kv_head, b);
        // scores of the block's 16 positions for every query row
        for (int l = 0; l < kKeyBlock; l += L) {
            fbatch s[QN];
            for (int i = 0; i < QN; ++i) s[i] = fbatch(0.f);
            for (int d = 0; d < D; ++d) {
                const fbatch k = kv_key_column<KV, D>(block, d, l);
                for (int i = 0; i < QN; ++i) s[i] = simd::fma(fbatch(qs[i][d]), k, s[i]);
            }
            for (int i = 0; i < QN; ++i) (s[i] * scale_v).store_aligned(p[i] + l);
        }
        for (int i = 0; i < rows; ++i) {
            const int n = first_n + i / Group;  // causal: this query sees positions [0, n)
            const int valid = std::clamp(n - b * kKeyBlock, 0, kKeyBlock);
            if (valid == 0) {  // a query earlier than the block (several queries per call): weights 0
                std::fill_n(p[i], kKeyBlock, 0.f);
                continue;
            }
            for (int j = valid; j < kKeyBlock; ++j) p[i][j] = kNegInf;
            float block_max = running_max[i];
            for (int j = 0; j < valid; ++j) block_max = std::max(block_max, p[i][j]);
            const float correction = std::exp(running_max[i] - block_max);
            running_max[i] = block_max;
            float block_sum = 0.f;
            for (int l = 0; l < kKeyBlock; l += L) {
                const fbatch e = xsimd::exp(fbatch::load_aligned(p[i] + l) - fbatch(block_max));
                e.store_aligned(p[i] + l);
                block_sum += simd::sum(e);
            }
            running_sum[i] = running_sum[i] * correction + block_sum;
            if (correction != 1.f) {
                const fbatch c(correction);
                for (int d = 0; d < D; d += L) (fbatch::load_aligned(acc[i] + d) * c).store_aligned(acc[i] + d);
            }
        }
        // out += p v over the block's positions, one SIMD width of the head at a time, so that the
        // partial sums of every query row stay in registers across the positions
        const int block_valid = std::min(kKeyBlock, n_last - b * kKeyBlock);
        const std::byte* value_rows[kKeyBlock];
        for (int j = 0; j < block_valid; ++j) value_rows[j] = arena.value_row(layer, kv_head, b * kKeyBlock + j);
        for (int c = 0; c < DL; ++c) {
            fbatch a[QN];
            for (int i = 0; i < QN; ++i) a[i] = fbatch::load_aligned(acc[i] + c * L);
            for (int j = 0; j < block_valid; ++j) {
                const fbatch v = kv_value<KV, D>(value_rows[j], c * L);
                for (int i = 0; i < QN; ++i) a[i] = simd::fma(fbatch(p[i][j]), v, a[i]);  // masked: p = 0
            }
            for (int i = 0; i < QN; ++i) a[i].store_aligned(acc[i] + c * L);
        }
    }
    for (int i = 0; i < rows; ++i) {
        const fbatch inv(1.f / running_sum[i]);
        for (int d = 0; d < D; d += L) (fbatch::load_aligned(acc[i] + d) * inv).store_unaligned(out + row_offset(i) + d);
    }
}

}  // namespace qwen3::kernels
