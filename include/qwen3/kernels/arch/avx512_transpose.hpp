// qwen3/kernels/arch/avx512_transpose.hpp - 16 x 16 transpose of 32-bit elements.
//
// The prefill inputs' column forms put 16 tokens side by side (one 32-bit lane each: an f32, two
// bf16 or four int8 values). Building them a lane at a time costs a scalar load and store per
// element; loading 16 elements of each of 16 tokens and transposing in registers costs 64 shuffles
// per 16 x 16 block.
#pragma once

#if defined(__AVX512F__)

#include <immintrin.h>

namespace qwen3::detail::avx512 {

// r[i] element j  ->  r[j] element i.
inline void transpose_16x16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {  // 32-bit interleave of row pairs, within 128-bit lanes
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {  // u[i + e], lane L: element 4L + e of rows i .. i + 3
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int e = 0; e < 4; ++e) {  // a 4 x 4 transpose of 128-bit lanes across u[e], u[4 + e], ...
        const __m512i v0 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0x44), v1 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0xEE);
        const __m512i v2 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0x44), v3 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0xEE);
        r[e] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        r[4 + e] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
        r[8 + e] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        r[12 + e] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
    }
}

// 16 floats to bf16 (round to nearest even, NaN kept quiet: simd::f32_to_bf16's rule), in the low
// half of each 32-bit lane.
inline __m512i round_to_bf16(__m512 x) {
    const __m512i bits = _mm512_castps_si512(x);
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1)))), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
    return _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
}

// Elements 2i and 2i + 1 of x[0, 32) as bf16 in 32-bit lane i (2i in the low half).
inline __m512i bf16_pairs(const float* x) {
    const __m256i lo = _mm512_cvtepi32_epi16(round_to_bf16(_mm512_loadu_ps(x)));
    const __m256i hi = _mm512_cvtepi32_epi16(round_to_bf16(_mm512_loadu_ps(x + 16)));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

}  // namespace qwen3::detail::avx512

#endif
