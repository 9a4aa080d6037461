// qwen3/kernels/panel_gemm.hpp - prefill matmul where AVX-512 is missing: weights widened to f32
// panels once per prompt chunk, then an outer-product micro-kernel with no horizontal sums.
//
// Y[t][r] = dot(X[t], W[r]). A panel is kPanelRows rows of W by kPanelDepth columns, widened to f32
// (any element type: float formats converted, quantized blocks dequantized by their definition) and
// stored column-major, so one load gives element k of every row in the panel. The micro-kernel keeps
// a tile of kPanelTokens tokens x kPanelRows rows in registers: per k it loads the panel column once,
// broadcasts each token's x[k] and issues one FMA per register of the tile (on AVX2: 2 loads, 6
// broadcasts, 12 FMAs), the shape that keeps the FMA units busy. The widening is paid once per panel
// and shared by every token of the chunk, so it only pays for itself with enough tokens
// (uses_panel_gemm in input.hpp; fewer go to the row-at-a-time kernels).
//
// Quantized weights are multiplied in f32 with the activations unquantized: the same arithmetic as the
// reference dequantize-then-multiply, more exact than the int8 decode kernels (which quantize x).
//
// Each output is a chain of FMAs over one panel depth in k order, then a sum over depths in order:
// the same sequence whatever the thread split, because every row is one lane of some panel.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../detail/simd.hpp"
#include "../quant/dequantize.hpp"
#include "../tensor.hpp"
#include "arch/avx2_quant.hpp"

namespace qwen3::detail {

inline constexpr int kPanelRows = 2 * int(simd::lanes);
inline constexpr int kPanelTokens = 6;  // 12 accumulators + 2 panel registers + 1 broadcast of 16 AVX2 registers

// Columns per panel: 16 rows x 256 f32 (16 KB) and 6 tokens' 256 floats (6 KB) stay in L1. The
// largest multiple of 32 up to 256 that divides K (K-quant rows, multiples of 256, get 256).
template <int K>
inline constexpr int kPanelDepth = [] {
    static_assert(K % 32 == 0, "rows are whole multiples of 32 elements");
    int depth = 256;
    while (K % depth != 0) depth -= 32;
    return depth;
}();

// out[0, count) = elements [k0, k0 + count) of a quantized row, each block decoded by its reference
// definition (called directly, so that it is inlined and vectorized).
template <class Block, void (*Decode)(const std::byte*, float*), int Elems>
inline void dequantize_blocks(const std::byte* row, int k0, int count, float* out) {
    const std::byte* p = row + std::size_t(k0 / Elems) * sizeof(Block);
    for (int i = 0; i < count; i += Elems, p += sizeof(Block)) Decode(p, out + i);
}

#if defined(QWEN3_HAVE_AVX2_QUANT)
// AVX2 decoding of the common block types, as their reference definitions compute them:
// out[l] = a * q[l] + b for the 32 bytes q (a, b of the first 16 and of the last 16 elements).
template <bool Signed>
inline void bytes_to_f32(__m256i q, float a_lo, float b_lo, float a_hi, float b_hi, float* out) {
    const __m128i half[2] = {_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)};
    const __m256 a[2] = {_mm256_set1_ps(a_lo), _mm256_set1_ps(a_hi)}, b[2] = {_mm256_set1_ps(b_lo), _mm256_set1_ps(b_hi)};
    for (int h = 0; h < 2; ++h)
        for (int part = 0; part < 2; ++part) {
            const __m128i bytes = part ? _mm_srli_si128(half[h], 8) : half[h];
            const __m256i ints = Signed ? _mm256_cvtepi8_epi32(bytes) : _mm256_cvtepu8_epi32(bytes);
            _mm256_storeu_ps(out + 16 * h + 8 * part, _mm256_fmadd_ps(_mm256_cvtepi32_ps(ints), a[h], b[h]));
        }
}

inline bool widen_quant_avx2(DType type, const std::byte* row, int k0, int count, float* out) {
    using namespace avx2;
    switch (type) {
        case DType::q8_0: {
            const auto* blk = reinterpret_cast<const quant::BlockQ8_0*>(row) + k0 / 32;
            for (int i = 0; i < count; i += 32, ++blk) {
                const float d = half_to_float(blk->d);
                bytes_to_f32<true>(load256(blk->qs), d, 0.f, d, 0.f, out + i);
            }
            return true;
        }
        case DType::q4_0: {
            const auto* blk = reinterpret_cast<const quant::BlockQ4_0*>(row) + k0 / 32;
            for (int i = 0; i < count; i += 32, ++blk) {
                const float d = half_to_float(blk->d);
                bytes_to_f32<false>(nibbles_32(blk->qs), d, -8 * d, d, -8 * d, out + i);
            }
            return true;
        }
        case DType::q4_k: {
            const auto* blk = reinterpret_cast<const quant::BlockQ4_K*>(row) + k0 / 256;
            const __m256i low = _mm256_set1_epi8(0x0F);
            for (int i = 0; i < count; i += 256, ++blk) {
                alignas(16) std::uint8_t sm[16];
                k4_scales_mins(blk->scales, sm);
                const float d = half_to_float(blk->d), dmin = half_to_float(blk->dmin);
                for (int c = 0; c < 4; ++c) {
                    const __m256i q = load256(blk->qs + 32 * c);
                    for (int h = 0; h < 2; ++h) {
                        const int j = 2 * c + h;  // sub-block of 32
                        const __m256i u = h ? _mm256_and_si256(_mm256_srli_epi16(q, 4), low) : _mm256_and_si256(q, low);
                        const float a = d * float(sm[j]), b = -(dmin * float(sm[8 + j]));
                        bytes_to_f32<false>(u, a, b, a, b, out + i + 32 * j);
                    }
                }
            }
            return true;
        }
        case DType::q6_k: {
            const auto* blk = reinterpret_cast<const quant::BlockQ6_K*>(row) + k0 / 256;
            const __m256i low = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(0x03);
            for (int i = 0; i < count; i += 256, ++blk) {
                const float d = half_to_float(blk->d);
                for (int half = 0; half < 2; ++half) {
                    const __m256i ql0 = load256(blk->ql + 64 * half), ql1 = load256(blk->ql + 64 * half + 32);
                    const __m256i qh = load256(blk->qh + 32 * half);
                    auto high_bits = [&](int shift) { return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), three), 4); };
                    const __m256i q[4] = {_mm256_or_si256(_mm256_and_si256(ql0, low), high_bits(0)),
                                          _mm256_or_si256(_mm256_and_si256(ql1, low), high_bits(2)),
                                          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low), high_bits(4)),
                                          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low), high_bits(6))};
                    const std::int8_t* sc = blk->scales + 8 * half;
                    for (int k = 0; k < 4; ++k) {
                        const float a_lo = d * float(sc[2 * k]), a_hi = d * float(sc[2 * k + 1]);  // stored values are q + 32
                        bytes_to_f32<false>(q[k], a_lo, -32 * a_lo, a_hi, -32 * a_hi, out + i + 128 * half + 32 * k);
                    }
                }
            }
            return true;
        }
        default: return false;
    }
}
#endif

// out[0, count) = elements [k0, k0 + count) of a weight row, widened to f32; k0 and count are
// multiples of the type's block size.
inline void widen_weights(DType type, const std::byte* row, int k0, int count, float* out) {
    namespace d = quant;
    constexpr int L = int(simd::lanes);
    const std::uint16_t* halves = reinterpret_cast<const std::uint16_t*>(row) + k0;
#if defined(QWEN3_HAVE_AVX2_QUANT)
    if (widen_quant_avx2(type, row, k0, count, out)) return;
#endif
    switch (type) {
        case DType::f32: std::copy_n(reinterpret_cast<const float*>(row) + k0, count, out); return;
        case DType::bf16: for (int i = 0; i < count; i += L) simd::load_bf16(halves + i).store_unaligned(out + i); return;
        case DType::f16: for (int i = 0; i < count; i += L) simd::load_f16(halves + i).store_unaligned(out + i); return;
        case DType::q8_0: return dequantize_blocks<quant::BlockQ8_0, d::dequantize_q8_0, 32>(row, k0, count, out);
        case DType::q4_0: return dequantize_blocks<quant::BlockQ4_0, d::dequantize_q4_0, 32>(row, k0, count, out);
        case DType::q5_0: return dequantize_blocks<quant::BlockQ5_0, d::dequantize_q5_0, 32>(row, k0, count, out);
        case DType::q4_k: return dequantize_blocks<quant::BlockQ4_K, d::dequantize_q4_k, 256>(row, k0, count, out);
        case DType::q5_k: return dequantize_blocks<quant::BlockQ5_K, d::dequantize_q5_k, 256>(row, k0, count, out);
        case DType::q6_k: return dequantize_blocks<quant::BlockQ6_K, d::dequantize_q6_k, 256>(row, k0, count, out);
        default: {
            const DTypeInfo& info = dtype_info(type);
            quant::dequantize_row(type, row + std::size_t(k0) / info.block_elems * info.block_bytes, out, count);
            return;
        }
    }
}

#if defined(__AVX2__)
// dst[j * dst_stride + i] = src[i * src_stride + j] for an 8 x 8 block.
inline void transpose8x8(const float* src, std::size_t src_stride, float* dst, std::size_t dst_stride) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * src_stride);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4)
        for (int h = 0; h < 2; ++h) {
            r[i + h] = _mm256_shuffle_ps(t[i + h], t[i + 2 + h], 0x44);
            r[i + 2 + h] = _mm256_shuffle_ps(t[i + h], t[i + 2 + h], 0xEE);
        }
    // r[0]: cols 0,4 of rows 0-3; r[2]: cols 1,5; r[1]: cols 2,6; r[3]: cols 3,7 (and r[4..7] for rows 4-7)
    const int order[4] = {0, 2, 1, 3};
    for (int c = 0; c < 4; ++c) {
        const __m256 lo = r[order[c]], hi = r[4 + order[c]];
        _mm256_storeu_ps(dst + c * dst_stride, _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_storeu_ps(dst + (c + 4) * dst_stride, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
}
#endif

// panel[k * kPanelRows + i] = W[r0 + i][k0 + k] for i < n; zero for the rows past n.
template <int Depth>
inline void pack_panel(DType type, const std::byte* w, std::size_t stride, int r0, int n, int k0, float* panel) {
    constexpr int P = kPanelRows;
    alignas(64) float rows[P][Depth];
    for (int i = 0; i < P; ++i) {
        if (i < n) widen_weights(type, w + std::size_t(r0 + i) * stride, k0, Depth, rows[i]);
        else std::fill_n(rows[i], Depth, 0.f);
    }
#if defined(__AVX2__)
    if constexpr (P % 8 == 0 && Depth % 8 == 0) {
        for (int i = 0; i < P; i += 8)
            for (int k = 0; k < Depth; k += 8) transpose8x8(&rows[i][k], Depth, panel + k * P + i, P);
        return;
    }
#endif
    for (int i = 0; i < P; ++i)
        for (int k = 0; k < Depth; ++k) panel[k * P + i] = rows[i][k];
}

// c[j][0, kPanelRows) += dot over the panel's Depth columns of token j (x + j * x_stride), j < TT.
template <int TT, int Depth>
inline void panel_tile(const float* panel, const float* x, std::size_t x_stride, float* c) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes), V = kPanelRows / L;
    fbatch acc[TT][V];
    for (int j = 0; j < TT; ++j)
        for (int v = 0; v < V; ++v) acc[j][v] = fbatch(0.f);
    for (int k = 0; k < Depth; ++k) {
        fbatch b[V];
        for (int v = 0; v < V; ++v) b[v] = fbatch::load_aligned(panel + k * kPanelRows + v * L);
        for (int j = 0; j < TT; ++j) {
            const fbatch xb(x[std::size_t(j) * x_stride + std::size_t(k)]);
            for (int v = 0; v < V; ++v) acc[j][v] = simd::fma(b[v], xb, acc[j][v]);
        }
    }
    for (int j = 0; j < TT; ++j)
        for (int v = 0; v < V; ++v) {
            float* cj = c + j * kPanelRows + v * L;
            (fbatch::load_aligned(cj) + acc[j][v]).store_aligned(cj);
        }
}

template <int Depth>
inline void panel_tile_tail(int tt, const float* panel, const float* x, std::size_t x_stride, float* c) {
    switch (tt) {
        case 1: return panel_tile<1, Depth>(panel, x, x_stride, c);
        case 2: return panel_tile<2, Depth>(panel, x, x_stride, c);
        case 3: return panel_tile<3, Depth>(panel, x, x_stride, c);
        case 4: return panel_tile<4, Depth>(panel, x, x_stride, c);
        case 5: return panel_tile<5, Depth>(panel, x, x_stride, c);
        default: return;
    }
}

// Y[t][r] = dot(X[t], W[r]) for t in [0, tokens), r in [row_begin, row_end); X rows are K floats
// apart, Y rows y_stride floats apart. W is of any type widen_weights reads.
template <int K>
void matmul_panels(DType type, const std::byte* w, std::size_t stride, const float* x, int tokens, float* y,
                   std::size_t y_stride, int row_begin, int row_end) {
    constexpr int P = kPanelRows, TT = kPanelTokens, D = kPanelDepth<K>;
    static_assert(K % D == 0);
    struct Scratch {
        std::vector<float, xsimd::aligned_allocator<float, 64>> panel, c;
    };
    thread_local Scratch s;
    s.panel.resize(std::size_t(P) * D);
    s.c.resize(std::size_t(tokens) * P);
    for (int r0 = row_begin; r0 < row_end; r0 += P) {
        const int n = std::min(P, row_end - r0);
        std::fill(s.c.begin(), s.c.end(), 0.f);
        for (int k0 = 0; k0 < K; k0 += D) {
            pack_panel<D>(type, w, stride, r0, n, k0, s.panel.data());
            int t = 0;
            for (; t + TT <= tokens; t += TT) panel_tile<TT, D>(s.panel.data(), x + std::size_t(t) * K + k0, K, s.c.data() + t * P);
            if (t < tokens) panel_tile_tail<D>(tokens - t, s.panel.data(), x + std::size_t(t) * K + k0, K, s.c.data() + t * P);
        }
        for (int t = 0; t < tokens; ++t) std::copy_n(s.c.data() + t * P, n, y + std::size_t(t) * y_stride + r0);
    }
}

}  // namespace qwen3::detail
