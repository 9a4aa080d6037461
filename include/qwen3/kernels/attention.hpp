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

// q: [Group][D] (already normed and rotated); n: positions to attend (0 .. n-1); out: [Group][D].
// `arena`/`layer`/`kv_head` locate the keys and values; scale multiplies the dot products.
template <int D, int Group, class KV, class Arena>
void attend(const float* q, const Arena& arena, int layer, int kv_head, int n, float scale, float* out) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes);
    constexpr int DL = D / L;
    static_assert(D % L == 0 && kKeyBlock % L == 0, "head_dim and the key block must be multiples of the SIMD width");
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();

    alignas(64) float acc[Group][D];
    float running_max[Group], running_sum[Group];
    for (int g = 0; g < Group; ++g) {
        std::fill_n(acc[g], D, 0.f);
        running_max[g] = kNegInf;
        running_sum[g] = 0.f;
    }
    const fbatch scale_v(scale);
    alignas(64) float p[Group][kKeyBlock];
    const int blocks = (n + kKeyBlock - 1) / kKeyBlock;
    for (int b = 0; b < blocks; ++b) {
        const std::byte* block = arena.key_block(layer, kv_head, b);
        const int valid = std::min(kKeyBlock, n - b * kKeyBlock);
        // scores of the block's 16 positions for every query head of the group
        for (int l = 0; l < kKeyBlock; l += L) {
            fbatch s[Group];
            for (int g = 0; g < Group; ++g) s[g] = fbatch(0.f);
            for (int d = 0; d < D; ++d) {
                const fbatch k = kv_key_column<KV, D>(block, d, l);
                for (int g = 0; g < Group; ++g) s[g] = simd::fma(fbatch(q[g * D + d]), k, s[g]);
            }
            for (int g = 0; g < Group; ++g) (s[g] * scale_v).store_aligned(p[g] + l);
        }
        for (int g = 0; g < Group; ++g) {
            for (int j = valid; j < kKeyBlock; ++j) p[g][j] = kNegInf;  // positions not yet written
            float block_max = running_max[g];
            for (int j = 0; j < valid; ++j) block_max = std::max(block_max, p[g][j]);
            const float correction = std::exp(running_max[g] - block_max);
            running_max[g] = block_max;
            float block_sum = 0.f;
            for (int l = 0; l < kKeyBlock; l += L) {
                const fbatch e = xsimd::exp(fbatch::load_aligned(p[g] + l) - fbatch(block_max));
                e.store_aligned(p[g] + l);
                block_sum += simd::sum(e);
            }
            running_sum[g] = running_sum[g] * correction + block_sum;
            if (correction != 1.f) {
                const fbatch c(correction);
                for (int d = 0; d < D; d += L) (fbatch::load_aligned(acc[g] + d) * c).store_aligned(acc[g] + d);
            }
        }
        for (int j = 0; j < valid; ++j) {
            const std::byte* row = arena.value_row(layer, kv_head, b * kKeyBlock + j);
            fbatch v[DL];
            for (int c = 0; c < DL; ++c) v[c] = kv_value<KV, D>(row, c * L);
            for (int g = 0; g < Group; ++g) {
                const fbatch weight(p[g][j]);
                for (int c = 0; c < DL; ++c)
                    simd::fma(weight, v[c], fbatch::load_aligned(acc[g] + c * L)).store_aligned(acc[g] + c * L);
            }
        }
    }
    for (int g = 0; g < Group; ++g) {
        const fbatch inv(1.f / running_sum[g]);
        for (int d = 0; d < D; d += L) (fbatch::load_aligned(acc[g] + d) * inv).store_unaligned(out + g * D + d);
    }
}

}  // namespace qwen3::kernels
