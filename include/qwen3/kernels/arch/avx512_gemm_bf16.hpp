// qwen3/kernels/arch/avx512_gemm_bf16.hpp - prefill with AVX-512 BF16 dot products (opt-in).
//
// With Precision::bf16_products, prefill rounds the activations to bf16 and multiplies them with BF16
// weights by vdpbf16ps: pairs of bf16 products summed into f32, twice the multiply rate of f32 FMA.
// This is what llama.cpp's CPU backend does for BF16 weights; logits move by about 1e-3 against an
// f32 computation, which is why it is not the default.
//
// Layout as in the other column kernels: tokens side by side (Input's bf16 column form: for each
// pair of elements, one 32-bit lane per token), a pair of weights (one dword of the BF16 row, read
// in place) broadcast against 16 tokens. Rows are processed in blocks and the input in slices of K
// so that a slice of every token's columns stays in L2 while a block of rows passes over it.
#pragma once

#include "features.hpp"

#if defined(QWEN3_HAVE_AVX512_BF16)

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "avx512_tile_store.hpp"

namespace qwen3::detail::avx512 {

// Tiles of 8 rows x 2 groups of 16 tokens (16 accumulators; 4 x 3 measured slower).
inline constexpr int kBf16Rows = 8;
inline constexpr int kBf16Groups = 2;
inline constexpr int kBf16SliceK = 256;  // elements; a slice of 512 tokens' columns is 256 KB
template <int K>
inline constexpr int kBf16BlockRows = K >= 8192 ? 128 : 64;  // as kBlockRows in avx512_gemm_float.hpp

// Adds rows . X over elements [k0, k0 + kc) into the partial sums of NG groups (eight_row_partial's
// layout, as store_partials reads it).
template <int NG, class Input>
inline void bf16_column_tile(const std::uint16_t* const* rows, const Input& in, int group, int k0, int kc, float* partial, std::size_t upper) {
    constexpr int R = kBf16Rows;
    const std::uint32_t* x[NG];
    for (int g = 0; g < NG; ++g) x[g] = in.bf16_columns(group + g) + std::size_t(k0 / 2) * 16;
    __m512 acc[NG][R];
    for (int g = 0; g < NG; ++g)
        for (int r = 0; r < R; ++r) acc[g][r] = _mm512_loadu_ps(eight_row_partial(partial, upper, g, r));
    for (int p = 0; p < kc / 2; ++p) {
        __m512bh xv[NG];
        for (int g = 0; g < NG; ++g) xv[g] = (__m512bh)_mm512_loadu_si512(x[g] + std::size_t(p) * 16);
        for (int r = 0; r < R; ++r) {
            std::uint32_t pair;
            std::memcpy(&pair, rows[r] + k0 + 2 * p, 4);
            const __m512bh wv = (__m512bh)_mm512_set1_epi32(int(pair));
            for (int g = 0; g < NG; ++g) acc[g][r] = _mm512_dpbf16_ps(acc[g][r], xv[g], wv);
        }
    }
    for (int g = 0; g < NG; ++g)
        for (int r = 0; r < R; ++r) _mm512_storeu_ps(eight_row_partial(partial, upper, g, r), acc[g][r]);
}

// Rows [row_begin, row_end) of a BF16 matrix times every token of `in` (bf16 columns).
template <int K, class Input>
void matmul_bf16_products(const std::byte* w, std::size_t stride, const Input& in, float* y, std::size_t y_stride,
                          int row_begin, int row_end) {
    constexpr int R = kBf16Rows, B = kBf16BlockRows<K>;
    static_assert(B % R == 0 && R == 8);
    const int groups = (in.tokens() + 15) / 16;
    const std::size_t upper = std::size_t(groups) * 64;  // rows 4-7 of a tile: the next four-row tile
    thread_local std::vector<float> partial;  // [four-row tile][group][row][16 lanes] of one block
    partial.resize(std::size_t(B / 4) * upper);
    for (int b0 = row_begin; b0 < row_end; b0 += B) {
        const int rows_in_block = std::min(B, row_end - b0);
        const int tiles = (rows_in_block + R - 1) / R;
        std::fill(partial.begin(), partial.begin() + std::ptrdiff_t(std::size_t(2 * tiles) * upper), 0.f);
        for (int k0 = 0; k0 < K; k0 += kBf16SliceK) {
            const int kc = std::min(kBf16SliceK, K - k0);
            for (int tile = 0; tile < tiles; ++tile) {
                const std::uint16_t* rows[R];
                for (int i = 0; i < R; ++i) {
                    const int r = b0 + std::min(tile * R + i, rows_in_block - 1);  // short tiles repeat a row
                    rows[i] = reinterpret_cast<const std::uint16_t*>(w + std::size_t(r) * stride);
                }
                float* p = partial.data() + std::size_t(2 * tile) * upper;
                int g = 0;
                for (; g + kBf16Groups <= groups; g += kBf16Groups)
                    bf16_column_tile<kBf16Groups>(rows, in, g, k0, kc, p + std::size_t(g) * 64, upper);
                for (; g < groups; ++g) bf16_column_tile<1>(rows, in, g, k0, kc, p + std::size_t(g) * 64, upper);
            }
        }
        store_partials(partial.data(), rows_in_block, groups, in.tokens(), y, y_stride, b0);
    }
}

}  // namespace qwen3::detail::avx512

#endif
