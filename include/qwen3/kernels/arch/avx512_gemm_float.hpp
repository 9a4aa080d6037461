// qwen3/kernels/arch/avx512_gemm_float.hpp - AVX-512 matrix-matrix kernel for float weights (prefill).
//
// The same arrangement as the quantized kernel (avx512_gemm.hpp): tokens side by side in register
// lanes (Input's f32 column form), one weight broadcast against 16 tokens per FMA, a tile of
// kFloatRows rows by two groups of 16 tokens. F32 rows are read in place; BF16 and F16 rows are
// widened to f32 a slice of a block at a time and reused for every token. All arithmetic is f32, so results stay
// within float rounding of an f32 reference (each output is one sequential sum over k).
#pragma once

#if defined(__AVX512F__)

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../../detail/simd.hpp"
#include "../../tensor.hpp"
#include "avx512_tile_store.hpp"
#include "avx512_transpose.hpp"

namespace qwen3::detail::avx512 {

// A tile is kFloatRows rows by two groups of 16 tokens: 16 accumulators, twice the FMA latency times
// the two FMA ports, and each input load feeds eight FMAs (4 x 2 measured much slower; see
// docs/performance.md).
inline constexpr int kFloatRows = 8;
inline constexpr int kFloatGroups = 2;

// Tokens are processed in slices of K (kSliceK elements) so the input's columns for every token of
// the chunk stay in L2 while all of a thread's rows pass over them; partial sums per (row, token)
// wait in a small buffer between slices (the sums continue exactly where they stopped).
inline constexpr int kSliceK = 256;

// Adds W[8 rows][0, kc) . X[k0, k0 + kc) into the partial sums of NG column groups from `group`
// (eight_row_partial's layout, as store_partials reads it). `w` holds the tile's rows interleaved,
// w[8k + r] = row r, element k, so the eight broadcasts of a step share one pointer.
template <int NG, class Input>
inline void float_column_tile(const float* w, const Input& in, int group, int k0, int kc, float* partial, std::size_t upper) {
    constexpr int R = kFloatRows;
    const float* x[NG];
    for (int g = 0; g < NG; ++g) x[g] = in.float_columns(group + g) + std::size_t(k0) * 16;
    __m512 acc[NG][R];
    for (int g = 0; g < NG; ++g)
        for (int r = 0; r < R; ++r) acc[g][r] = _mm512_loadu_ps(eight_row_partial(partial, upper, g, r));
    for (int k = 0; k < kc; ++k) {
        __m512 xv[NG];
        for (int g = 0; g < NG; ++g) xv[g] = _mm512_loadu_ps(x[g] + std::size_t(k) * 16);
        for (int r = 0; r < R; ++r) {
            const __m512 wv = _mm512_set1_ps(w[std::size_t(k) * R + r]);
            for (int g = 0; g < NG; ++g) acc[g][r] = _mm512_fmadd_ps(wv, xv[g], acc[g][r]);
        }
    }
    for (int g = 0; g < NG; ++g)
        for (int r = 0; r < R; ++r) _mm512_storeu_ps(eight_row_partial(partial, upper, g, r), acc[g][r]);
}

// Rows per block: the partial sums of a block's rows for every token stay in L2 across the slices,
// and the whole input passes once per block, so long rows (the FFN's down projection, whose input
// does not fit in L2) take larger blocks (measured faster at K = 9728).
template <int K>
inline constexpr int kBlockRows = K >= 8192 ? 128 : 64;

// Elements [k, k + 16) of a weight row as f32.
inline __m512 load16_as_f32(DType type, const std::byte* row, int k) {
    if (type == DType::f32) return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + k);
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * std::size_t(k)));
    if (type == DType::f16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));  // bf16: the high half of an f32
}

// Elements [k0, k0 + kc) of eight rows as f32, interleaved (out[8k + r]): a 16 x 16 transpose per 16
// elements, whose upper eight rows are unused.
inline void interleave_eight_rows(DType type, const std::byte* const* rows, int k0, int kc, float* out) {
    for (int k = 0; k < kc; k += 16) {
        __m512i v[16];
        for (int r = 0; r < 8; ++r) v[r] = _mm512_castps_si512(load16_as_f32(type, rows[r], k0 + k));
        for (int r = 8; r < 16; ++r) v[r] = _mm512_setzero_si512();
        transpose_16x16(v);  // v[j] lanes 0-7: element k + j of the eight rows
        for (int j = 0; j < 16; ++j) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + std::size_t(k + j) * 8), _mm512_castsi512_si256(v[j]));
    }
}

// Rows [row_begin, row_end) of an F32, F16 or BF16 matrix times every token of `in` (f32 columns).
template <int K, class Input>
void matmul_float_columns(DType type, const std::byte* w, std::size_t stride, const Input& in, float* y,
                          std::size_t y_stride, int row_begin, int row_end) {
    constexpr int R = kFloatRows, B = kBlockRows<K>;
    static_assert(B % R == 0 && R == 8 && K % 16 == 0);
    const int groups = (in.tokens() + 15) / 16;
    const std::size_t upper = std::size_t(groups) * 64;  // rows 4-7 of a tile: the next four-row tile
    const std::size_t element_bytes = type == DType::f32 ? 4 : 2;
    thread_local std::vector<float> partial;  // [four-row tile][group][row][16 lanes] of one block
    thread_local std::vector<float> tiles_f32;  // [tile][kSliceK][8]: one slice of a block's rows, f32, interleaved
    partial.resize(std::size_t(B / 4) * upper);
    tiles_f32.resize(std::size_t(B) * kSliceK);
    for (int b0 = row_begin; b0 < row_end; b0 += B) {
        const int rows_in_block = std::min(B, row_end - b0);
        const int tiles = (rows_in_block + R - 1) / R;
        std::fill(partial.begin(), partial.end(), 0.f);
        const std::byte* block_rows[B];
        for (int i = 0; i < tiles * R; ++i)  // a short block repeats its last row
            block_rows[i] = w + std::size_t(b0 + std::min(i, rows_in_block - 1)) * stride;
        for (int k0 = 0; k0 < K; k0 += kSliceK) {
            const int kc = std::min(kSliceK, K - k0);
            for (int tile = 0; tile < tiles; ++tile)
                interleave_eight_rows(type, block_rows + tile * R, k0, kc, tiles_f32.data() + std::size_t(tile) * R * kSliceK);
            // the next slice's weights (or the next block's first) come into L2 during this one
            const int next_k0 = k0 + kSliceK < K ? k0 + kSliceK : 0, next_b0 = next_k0 ? b0 : b0 + B;
            for (int i = 0; next_b0 < row_end && i < std::min(B, row_end - next_b0); ++i) {
                const std::byte* row = w + std::size_t(next_b0 + i) * stride + std::size_t(next_k0) * element_bytes;
                const std::size_t bytes = std::size_t(std::min(kSliceK, K - next_k0)) * element_bytes;
                for (std::size_t off = 0; off < bytes; off += 64) _mm_prefetch(reinterpret_cast<const char*>(row + off), _MM_HINT_T1);
            }
            for (int tile = 0; tile < tiles; ++tile) {
                const float* wt = tiles_f32.data() + std::size_t(tile) * R * kSliceK;
                float* p = partial.data() + std::size_t(2 * tile) * upper;
                int g = 0;
                for (; g + kFloatGroups <= groups; g += kFloatGroups)
                    float_column_tile<kFloatGroups>(wt, in, g, k0, kc, p + std::size_t(g) * 64, upper);
                for (; g < groups; ++g) float_column_tile<1>(wt, in, g, k0, kc, p + std::size_t(g) * 64, upper);
            }
        }
        store_partials(partial.data(), rows_in_block, groups, in.tokens(), y, y_stride, b0);
    }
}

}  // namespace qwen3::detail::avx512

#endif
