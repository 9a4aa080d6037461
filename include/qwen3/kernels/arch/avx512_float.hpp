// qwen3/kernels/arch/avx512_float.hpp - AVX-512 matrix-vector kernels for float weights (decode).
//
// Decode reads every weight once per token, so these kernels are about keeping memory busy: four
// rows advance together (the input is loaded once for all four) and the next group of rows is
// prefetched (non-temporal: weights are not reused before they would be evicted anyway).
// BF16 rows are widened without a shuffle: 32 bf16 values loaded as 16 dwords give the odd elements
// by masking the low halves and the even ones by shifting them up, so the input is pre-split into
// even and odd halves per 32 elements (Input's pair form) and the kernel does two FMAs per load.
#pragma once

#if defined(__AVX512F__)

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace qwen3::detail::avx512 {

inline constexpr int kPrefetchRows = 4;  // prefetch the next group of 4 rows

inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

inline void prefetch_rows(const std::byte* p, std::size_t stride, int rows) {
    for (int i = 0; i < rows; ++i) _mm_prefetch(reinterpret_cast<const char*>(p + std::size_t(i) * stride), _MM_HINT_NTA);
}

// y[r] = dot(W[r], x) for BF16 W; `pairs` is the input in Input's pair form.
template <int K>
void matvec_bf16(const std::byte* w, std::size_t stride, const float* pairs, float* y, int row_begin, int row_end) {
    static_assert(K % 32 == 0);
    const __m512i high = _mm512_set1_epi32(int(0xFFFF0000u));
    auto row_dot = [&](const std::byte* row, int k, __m512 xe, __m512 xo, __m512& even, __m512& odd) {
        // two 32-byte loads: GGUF aligns tensors to 32 bytes, so a 64-byte load would often span
        // two cache lines
        const std::byte* p = row + std::size_t(k) * 2;
        const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))),
                                             _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)), 1);
        even = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), xe, even);
        odd = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, high)), xo, odd);
    };
    int r = row_begin;
    for (; r + 4 <= row_end; r += 4) {
        const std::byte* w0 = w + std::size_t(r) * stride;
        const std::byte* ahead = w0 + std::size_t(kPrefetchRows) * stride;
        __m512 e0 = _mm512_setzero_ps(), e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
        for (int k = 0; k < K; k += 32) {
            // one 64-byte line of each of the next four rows
            for (int i = 0; i < 4; ++i) _mm_prefetch(reinterpret_cast<const char*>(ahead + std::size_t(i) * stride + std::size_t(k) * 2), _MM_HINT_NTA);
            const __m512 xe = _mm512_loadu_ps(pairs + k), xo = _mm512_loadu_ps(pairs + k + 16);
            row_dot(w0, k, xe, xo, e0, o0);
            row_dot(w0 + stride, k, xe, xo, e1, o1);
            row_dot(w0 + 2 * stride, k, xe, xo, e2, o2);
            row_dot(w0 + 3 * stride, k, xe, xo, e3, o3);
        }
        y[r] = hsum(_mm512_add_ps(e0, o0));
        y[r + 1] = hsum(_mm512_add_ps(e1, o1));
        y[r + 2] = hsum(_mm512_add_ps(e2, o2));
        y[r + 3] = hsum(_mm512_add_ps(e3, o3));
    }
    for (; r < row_end; ++r) {
        const std::byte* w0 = w + std::size_t(r) * stride;
        __m512 e0 = _mm512_setzero_ps(), o0 = e0;
        for (int k = 0; k < K; k += 32) row_dot(w0, k, _mm512_loadu_ps(pairs + k), _mm512_loadu_ps(pairs + k + 16), e0, o0);
        y[r] = hsum(_mm512_add_ps(e0, o0));
    }
}

// y[r] = dot(W[r], x) for F32 or F16 W.
template <int K, bool Half>
void matvec_f32_f16(const std::byte* w, std::size_t stride, const float* x, float* y, int row_begin, int row_end) {
    static_assert(K % 16 == 0);
    constexpr int kElementBytes = Half ? 2 : 4;
    auto load = [](const std::byte* row, int k) {
        if constexpr (Half) return _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + std::size_t(k) * 2)));
        else {  // two 32-byte halves: tensors are 32-byte aligned, so one 64-byte load could split lines
            const float* p = reinterpret_cast<const float*>(row) + k;
            return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(p)), _mm256_loadu_ps(p + 8), 1);
        }
    };
    int r = row_begin;
    for (; r + 4 <= row_end; r += 4) {
        const std::byte* w0 = w + std::size_t(r) * stride;
        const std::byte* ahead = w0 + std::size_t(kPrefetchRows) * stride;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int k = 0; k < K; k += 16) {
            if ((k * kElementBytes) % 64 == 0)
                for (int i = 0; i < 4; ++i)
                    _mm_prefetch(reinterpret_cast<const char*>(ahead + std::size_t(i) * stride + std::size_t(k) * kElementBytes), _MM_HINT_NTA);
            const __m512 xv = _mm512_loadu_ps(x + k);
            a0 = _mm512_fmadd_ps(load(w0, k), xv, a0);
            a1 = _mm512_fmadd_ps(load(w0 + stride, k), xv, a1);
            a2 = _mm512_fmadd_ps(load(w0 + 2 * stride, k), xv, a2);
            a3 = _mm512_fmadd_ps(load(w0 + 3 * stride, k), xv, a3);
        }
        y[r] = hsum(a0);
        y[r + 1] = hsum(a1);
        y[r + 2] = hsum(a2);
        y[r + 3] = hsum(a3);
    }
    for (; r < row_end; ++r) {
        const std::byte* w0 = w + std::size_t(r) * stride;
        __m512 a0 = _mm512_setzero_ps();
        for (int k = 0; k < K; k += 16) a0 = _mm512_fmadd_ps(load(w0, k), _mm512_loadu_ps(x + k), a0);
        y[r] = hsum(a0);
    }
}

}  // namespace qwen3::detail::avx512

#endif  // __AVX512F__
