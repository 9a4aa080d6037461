// qwen3/kernels/arch/avx512_tile_store.hpp - writing prefill tiles (four rows x 16 tokens) to the
// token-major output.
//
// The column kernels hold a row's results for 16 tokens in one register, while the output is
// Y[token][row]: a 4 x 4 transpose in each 128-bit lane turns four rows' registers into one 16-byte
// store per token (instead of 16 scalar stores per row).
#pragma once

#if defined(__AVX512F__)

#include <immintrin.h>

#include <algorithm>
#include <cstddef>

#include "avx512_transpose.hpp"

namespace qwen3::detail::avx512 {

// Y[t][0..3] = rows[0..3] lane t, for t in [0, 16); y points at token 0, row 0.
inline void store_four_rows(const __m512 rows[4], float* y, std::size_t y_stride) {
    const __m512 t0 = _mm512_unpacklo_ps(rows[0], rows[1]), t1 = _mm512_unpackhi_ps(rows[0], rows[1]);
    const __m512 t2 = _mm512_unpacklo_ps(rows[2], rows[3]), t3 = _mm512_unpackhi_ps(rows[2], rows[3]);
    const __m512 token[4] = {  // token[i], 128-bit lane l: the four rows of token 4 * l + i
        _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))),
        _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))),
        _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3))),
        _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)))};
    for (int i = 0; i < 4; ++i) {
        _mm_storeu_ps(y + std::size_t(i) * y_stride, _mm512_extractf32x4_ps(token[i], 0));
        _mm_storeu_ps(y + std::size_t(4 + i) * y_stride, _mm512_extractf32x4_ps(token[i], 1));
        _mm_storeu_ps(y + std::size_t(8 + i) * y_stride, _mm512_extractf32x4_ps(token[i], 2));
        _mm_storeu_ps(y + std::size_t(12 + i) * y_stride, _mm512_extractf32x4_ps(token[i], 3));
    }
}

// Y[t][r] for `count` (1..4) rows and `lanes` (1..16) tokens of a tile in memory (row r, token t at
// rows[r * 16 + t]); y points at token 0, row 0.
inline void store_rows(const float* rows, int count, int lanes, float* y, std::size_t y_stride) {
    if (count == 4 && lanes == 16) {
        const __m512 v[4] = {_mm512_loadu_ps(rows), _mm512_loadu_ps(rows + 16), _mm512_loadu_ps(rows + 32),
                             _mm512_loadu_ps(rows + 48)};
        return store_four_rows(v, y, y_stride);
    }
    for (int r = 0; r < count; ++r)
        for (int t = 0; t < lanes; ++t) y[std::size_t(t) * y_stride + std::size_t(r)] = rows[r * 16 + t];
}

// Kernels with tiles of eight rows keep their partial sums in this same layout: row r (0..7) of
// column group g of a tile at the address below, rows 4-7 in the next four-row tile, `upper` (= 64 *
// groups) floats on. `tile_partials` points at the tile's first four-row tile.
inline float* eight_row_partial(float* tile_partials, std::size_t upper, int g, int r) {
    return tile_partials + std::size_t(r / 4) * upper + std::size_t(g * 4 + r % 4) * 16;
}

// The partial sums of a block of rows ([tile][group][4 rows][16 tokens]) to Y[token][row0 + row].
// Sixteen rows at a time go through a 16 x 16 transpose, so each token gets one 64-byte store (a
// whole cache line when aligned): Y's token rows are a multiple of 4 KiB apart for every Qwen3
// shape, and four 16-byte stores per line, far apart in time, made the stores a tenth of the
// bf16-product prefill's time.
inline void store_partials(const float* partial, int rows, int groups, int tokens, float* y, std::size_t y_stride, int row0) {
    const int tiles = (rows + 3) / 4;
    for (int g = 0; g < groups; ++g) {
        const int lanes = std::min(16, tokens - g * 16);
        float* yg = y + std::size_t(g * 16) * y_stride + std::size_t(row0);
        auto tile_rows = [&](int tile) { return partial + (std::size_t(tile) * groups + std::size_t(g)) * 64; };
        int tile = 0;
        for (; 4 * tile + 16 <= rows; tile += 4) {
            __m512i v[16];
            for (int i = 0; i < 16; ++i) v[i] = _mm512_castps_si512(_mm512_loadu_ps(tile_rows(tile + i / 4) + (i % 4) * 16));
            transpose_16x16(v);
            for (int t = 0; t < lanes; ++t) _mm512_storeu_si512(yg + std::size_t(t) * y_stride + std::size_t(4 * tile), v[t]);
        }
        for (; tile < tiles; ++tile) store_rows(tile_rows(tile), std::min(4, rows - tile * 4), lanes, yg + std::size_t(4 * tile), y_stride);
    }
}

}  // namespace qwen3::detail::avx512

#endif
