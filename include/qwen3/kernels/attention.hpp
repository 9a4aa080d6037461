// qwen3/kernels/attention.hpp - causal grouped-query attention over the KV arena.
//
// One call handles one KV head and the `Group` query heads that share it, for one query position:
// each key and value row is read once for the whole group. Softmax is computed online over blocks of
// keys (running maximum and sum, as in FlashAttention), so no buffer proportional to the context is
// needed; the result equals the two-pass softmax up to float rounding.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "simd.hpp"

namespace qwen3::kernels {

// q: [Group][HeadDim] (already normed and rotated); keys, values: rows [0, n) of HeadDim elements;
// out: [Group][HeadDim]. scale multiplies the dot products (1/sqrt(head_dim)).
template <int HeadDim, int Group, class KV>
void attend(const float* q, const typename KV::storage* keys, const typename KV::storage* values, int n, float scale,
            float* out) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes);
    constexpr int D = HeadDim / L;
    static_assert(HeadDim % L == 0, "head_dim must be a multiple of the SIMD width");
    constexpr int kBlock = 64;

    fbatch qv[Group][D];
    fbatch acc[Group][D];
    float running_max[Group], running_sum[Group];
    for (int g = 0; g < Group; ++g) {
        for (int d = 0; d < D; ++d) {
            qv[g][d] = simd::load_f32(q + g * HeadDim + d * L);
            acc[g][d] = fbatch(0.f);
        }
        running_max[g] = -std::numeric_limits<float>::infinity();
        running_sum[g] = 0.f;
    }

    float scores[Group][kBlock];
    for (int b0 = 0; b0 < n; b0 += kBlock) {
        const int bn = std::min(kBlock, n - b0);
        for (int j = 0; j < bn; ++j) {
            const auto* k = keys + std::size_t(b0 + j) * HeadDim;
            fbatch kv[D];
            for (int d = 0; d < D; ++d) kv[d] = KV::load(k + d * L);
            for (int g = 0; g < Group; ++g) {
                fbatch s = qv[g][0] * kv[0];
                for (int d = 1; d < D; ++d) s = simd::fma(qv[g][d], kv[d], s);
                scores[g][j] = simd::sum(s) * scale;
            }
        }
        for (int g = 0; g < Group; ++g) {
            float block_max = running_max[g];
            for (int j = 0; j < bn; ++j) block_max = std::max(block_max, scores[g][j]);
            const float correction = std::exp(running_max[g] - block_max);
            running_max[g] = block_max;
            float block_sum = 0.f;
            for (int j = 0; j < bn; ++j) {
                scores[g][j] = std::exp(scores[g][j] - block_max);
                block_sum += scores[g][j];
            }
            running_sum[g] = running_sum[g] * correction + block_sum;
            const fbatch c(correction);
            for (int d = 0; d < D; ++d) acc[g][d] = acc[g][d] * c;
        }
        for (int j = 0; j < bn; ++j) {
            const auto* v = values + std::size_t(b0 + j) * HeadDim;
            fbatch vv[D];
            for (int d = 0; d < D; ++d) vv[d] = KV::load(v + d * L);
            for (int g = 0; g < Group; ++g) {
                const fbatch p(scores[g][j]);
                for (int d = 0; d < D; ++d) acc[g][d] = simd::fma(p, vv[d], acc[g][d]);
            }
        }
    }
    for (int g = 0; g < Group; ++g) {
        const fbatch inv(1.f / running_sum[g]);
        for (int d = 0; d < D; ++d) (acc[g][d] * inv).store_unaligned(out + g * HeadDim + d * L);
    }
}

}  // namespace qwen3::kernels
