// qwen3/kernels/arch/avx512_gemm_float.hpp - AVX-512 matrix-matrix kernel for float weights (prefill).
//
// The same arrangement as the quantized kernel (avx512_gemm.hpp): tokens side by side in register
// lanes (Input's f32 column form), one weight broadcast against 16 tokens per FMA, a tile of
// kFloatRows rows by two groups of 16 tokens. F32 rows are read in place; BF16 and F16 rows are
// widened to f32 once per tile and reused for every token. All arithmetic is f32, so results stay
// within float rounding of an f32 reference (each output is one sequential sum over k).
#pragma once

#if defined(__AVX512F__)

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../../tensor.hpp"
#include "../simd.hpp"
#include "avx512_tile_store.hpp"

namespace qwen3::kernels::avx512 {

inline constexpr int kFloatRows = 4;

// Tokens are processed in slices of K (kSliceK elements) so the input's columns for every token of
// the chunk stay in L2 while all of a thread's rows pass over them; partial sums per (row, token)
// wait in a small buffer between slices (the sums continue exactly where they stopped).
inline constexpr int kSliceK = 512;

// Adds W[rows][k0, k0 + kc) . X[k0, k0 + kc) into the partial sums `partial` ([NG][kFloatRows][16])
// for NG column groups from `group`. Named accumulators rather than an array: GCC 12 keeps an array
// of vectors in memory across iterations here.
template <int NG, class Input>
inline void float_column_tile(const float* const* rows, const Input& in, int group, int k0, int kc, float* partial) {
    static_assert(kFloatRows == 4 && (NG == 1 || NG == 2));
    const float* x0 = in.float_columns(group) + std::size_t(k0) * 16;
    const float* x1 = in.float_columns(group + NG - 1) + std::size_t(k0) * 16;
    const float *w0 = rows[0], *w1 = rows[1], *w2 = rows[2], *w3 = rows[3];
    __m512 a00 = _mm512_loadu_ps(partial), a10 = _mm512_loadu_ps(partial + 16), a20 = _mm512_loadu_ps(partial + 32),
           a30 = _mm512_loadu_ps(partial + 48), a01 = a00, a11 = a00, a21 = a00, a31 = a00;
    if constexpr (NG == 2) {
        a01 = _mm512_loadu_ps(partial + 64), a11 = _mm512_loadu_ps(partial + 80), a21 = _mm512_loadu_ps(partial + 96),
        a31 = _mm512_loadu_ps(partial + 112);
    }
    for (int k = 0; k < kc; ++k) {
        const __m512 xv0 = _mm512_loadu_ps(x0 + std::size_t(k) * 16);
        const __m512 b0 = _mm512_set1_ps(w0[k]), b1 = _mm512_set1_ps(w1[k]), b2 = _mm512_set1_ps(w2[k]), b3 = _mm512_set1_ps(w3[k]);
        a00 = _mm512_fmadd_ps(b0, xv0, a00);
        a10 = _mm512_fmadd_ps(b1, xv0, a10);
        a20 = _mm512_fmadd_ps(b2, xv0, a20);
        a30 = _mm512_fmadd_ps(b3, xv0, a30);
        if constexpr (NG == 2) {
            const __m512 xv1 = _mm512_loadu_ps(x1 + std::size_t(k) * 16);
            a01 = _mm512_fmadd_ps(b0, xv1, a01);
            a11 = _mm512_fmadd_ps(b1, xv1, a11);
            a21 = _mm512_fmadd_ps(b2, xv1, a21);
            a31 = _mm512_fmadd_ps(b3, xv1, a31);
        }
    }
    _mm512_storeu_ps(partial, a00), _mm512_storeu_ps(partial + 16, a10), _mm512_storeu_ps(partial + 32, a20), _mm512_storeu_ps(partial + 48, a30);
    if constexpr (NG == 2)
        _mm512_storeu_ps(partial + 64, a01), _mm512_storeu_ps(partial + 80, a11), _mm512_storeu_ps(partial + 96, a21),
            _mm512_storeu_ps(partial + 112, a31);
}

// Rows per block: a block's rows are widened once (whole rows, read in order) and then stay in L2
// while the slices of the input pass over them.
inline constexpr int kBlockRows = 32;

// Rows [row_begin, row_end) of an F32, F16 or BF16 matrix times every token of `in` (f32 columns).
template <int K, class Input>
void matmul_float_columns(DType type, const std::byte* w, std::size_t stride, const Input& in, float* y,
                          std::size_t y_stride, int row_begin, int row_end) {
    constexpr int R = kFloatRows, B = kBlockRows;
    static_assert(B % R == 0);
    const int groups = (in.tokens() + 15) / 16;
    thread_local std::vector<float> partial;  // [tile][group][row in tile][16 lanes] of one block
    thread_local std::vector<float> widened;  // [B][K]
    partial.resize(std::size_t(B / R) * groups * R * 16);
    if (type != DType::f32) widened.resize(std::size_t(B) * K);
    for (int b0 = row_begin; b0 < row_end; b0 += B) {
        const int rows_in_block = std::min(B, row_end - b0);
        const float* block_rows[B];
        for (int i = 0; i < B; ++i) {
            const int r = b0 + std::min(i, rows_in_block - 1);  // a short block repeats its last row
            const std::byte* row = w + std::size_t(r) * stride;
            if (type == DType::f32) {
                block_rows[i] = reinterpret_cast<const float*>(row);
            } else if (i < rows_in_block) {
                float* out = widened.data() + std::size_t(i) * K;
                const auto* h = reinterpret_cast<const std::uint16_t*>(row);
                for (int k = 0; k < K; k += 16)
                    (type == DType::bf16 ? simd::load_bf16(h + k) : simd::load_f16(h + k)).store_unaligned(out + k);
                block_rows[i] = out;
            } else {
                block_rows[i] = block_rows[rows_in_block - 1];
            }
        }
        std::fill(partial.begin(), partial.end(), 0.f);
        const int tiles = (rows_in_block + R - 1) / R;
        for (int k0 = 0; k0 < K; k0 += kSliceK) {
            const int kc = std::min(kSliceK, K - k0);
            for (int tile = 0; tile < tiles; ++tile) {
                const float* rows[R];
                for (int i = 0; i < R; ++i) rows[i] = block_rows[tile * R + i] + k0;
                float* p = partial.data() + std::size_t(tile) * groups * R * 16;
                int g = 0;
                for (; g + 2 <= groups; g += 2) float_column_tile<2>(rows, in, g, k0, kc, p + std::size_t(g) * R * 16);
                if (g < groups) float_column_tile<1>(rows, in, g, k0, kc, p + std::size_t(g) * R * 16);
            }
        }
        store_partials(partial.data(), rows_in_block, groups, in.tokens(), y, y_stride, b0);
    }
}

}  // namespace qwen3::kernels::avx512

#endif
