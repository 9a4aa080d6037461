// qwen3/kernels/arch/avx512_gemm.hpp - AVX-512 VNNI matrix-matrix kernel for quantized weights (prefill).
//
// Prefill multiplies every weight row with many tokens, so the work per weight is arranged to be
// done once: a few rows are unpacked from their format into plain signed bytes with one float scale
// per block (UnpackedRow; every format becomes value = scale * w + min_coef), then reused for every
// group of 16 tokens. Tokens sit side by side in the lanes of a register (Input's column form), so
// one vpdpbusd multiplies four bytes of one weight row, broadcast, with four bytes of 16 tokens, and
// the per-block scales multiply whole registers of tokens at once. The input is offset by +128 to
// be the unsigned operand; 128 * sum(w) per block takes the offset back out.
#pragma once

#include "avx512_quant.hpp"

#if defined(QWEN3_HAVE_AVX512_VNNI)

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../../quant/blocks.hpp"
#include "../../tensor.hpp"
#include "avx512_tile_store.hpp"

namespace qwen3::detail::avx512 {

// One weight row as signed bytes in blocks of G elements: element = scale[b] * w + min_coef[b].
template <int K, int G>
struct UnpackedRow {
    static constexpr int blocks = K / G;
    alignas(64) std::int8_t w[K];
    float scale[blocks];
    float min_coef[blocks];
    std::int32_t bias[blocks];  // 128 * sum of the block's w, removed from the offset input's dot product
};

template <int K, int G>
inline void finish_block_sums(UnpackedRow<K, G>& u) {
    // sum of signed bytes: flip them to unsigned (+128), sum with vpsadbw, take the 128s back out
    const __m128i flip = _mm_set1_epi8(char(0x80));
    for (int b = 0; b < UnpackedRow<K, G>::blocks; ++b) {
        __m128i sums = _mm_setzero_si128();
        for (int i = 0; i < G; i += 16) {
            const __m128i v = _mm_xor_si128(_mm_load_si128(reinterpret_cast<const __m128i*>(u.w + b * G + i)), flip);
            sums = _mm_add_epi64(sums, _mm_sad_epu8(v, _mm_setzero_si128()));
        }
        const std::int64_t total = _mm_cvtsi128_si64(sums) + _mm_extract_epi64(sums, 1) - 128 * G;
        u.bias[b] = std::int32_t(128 * total);
    }
}

// --- unpacking each format into UnpackedRow<K, 32> (Q6_K: UnpackedRow<K, 16>) ---

template <int K>
inline void unpack_q8_0(const quant::BlockQ8_0* blocks, UnpackedRow<K, 32>& u) {
    for (int b = 0; b < K / 32; ++b) {
        std::memcpy(u.w + b * 32, blocks[b].qs, 32);
        u.scale[b] = half_to_float(blocks[b].d);
        u.min_coef[b] = 0;
    }
    finish_block_sums(u);
}

template <int K>
inline void unpack_q4_0(const quant::BlockQ4_0* blocks, UnpackedRow<K, 32>& u) {
    const __m256i eight = _mm256_set1_epi8(8);
    for (int b = 0; b < K / 32; ++b) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(u.w + b * 32), _mm256_sub_epi8(unpack_nibbles_16(blocks[b].qs), eight));
        u.scale[b] = half_to_float(blocks[b].d);
        u.min_coef[b] = 0;
    }
    finish_block_sums(u);
}

template <int K>
inline void unpack_q5_0(const quant::BlockQ5_0* blocks, UnpackedRow<K, 32>& u) {
    const __m256i sixteen = _mm256_set1_epi8(16);
    for (int b = 0; b < K / 32; ++b) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(u.w + b * 32), _mm256_sub_epi8(q5_0_values(blocks[b]), sixteen));
        u.scale[b] = half_to_float(blocks[b].d);
        u.min_coef[b] = 0;
    }
    finish_block_sums(u);
}

template <int K>
inline void unpack_q4_k(const quant::BlockQ4_K* blocks, UnpackedRow<K, 32>& u) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    for (int b = 0; b < K / 256; ++b) {
        const quant::BlockQ4_K& blk = blocks[b];
        std::uint8_t sm[16];
        unpack_scales_k4(blk.scales, sm);
        const float d = half_to_float(blk.d), dmin = half_to_float(blk.dmin);
        for (int c = 0; c < 4; ++c) {
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs + 32 * c));
            std::int8_t* out = u.w + b * 256 + 64 * c;
            _mm256_store_si256(reinterpret_cast<__m256i*>(out), _mm256_and_si256(q, low));
            _mm256_store_si256(reinterpret_cast<__m256i*>(out + 32), _mm256_and_si256(_mm256_srli_epi16(q, 4), low));
        }
        for (int j = 0; j < 8; ++j) {
            u.scale[b * 8 + j] = d * float(sm[j]);
            u.min_coef[b * 8 + j] = -dmin * float(sm[8 + j]);
        }
    }
    finish_block_sums(u);
}

template <int K>
inline void unpack_q5_k(const quant::BlockQ5_K* blocks, UnpackedRow<K, 32>& u) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    const __m256i sixteen = _mm256_set1_epi8(0x10);
    for (int b = 0; b < K / 256; ++b) {
        const quant::BlockQ5_K& blk = blocks[b];
        std::uint8_t sm[16];
        unpack_scales_k4(blk.scales, sm);
        const float d = half_to_float(blk.d), dmin = half_to_float(blk.dmin);
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh));
        for (int c = 0; c < 4; ++c) {
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs + 32 * c));
            const __mmask32 hi_lo = _mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << (2 * c))));
            const __mmask32 hi_hi = _mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << (2 * c + 1))));
            std::int8_t* out = u.w + b * 256 + 64 * c;
            _mm256_store_si256(reinterpret_cast<__m256i*>(out), _mm256_or_si256(_mm256_and_si256(q, low), _mm256_maskz_mov_epi8(hi_lo, sixteen)));
            _mm256_store_si256(reinterpret_cast<__m256i*>(out + 32),
                               _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), low), _mm256_maskz_mov_epi8(hi_hi, sixteen)));
        }
        for (int j = 0; j < 8; ++j) {
            u.scale[b * 8 + j] = d * float(sm[j]);
            u.min_coef[b * 8 + j] = -dmin * float(sm[8 + j]);
        }
    }
    finish_block_sums(u);
}

template <int K>
inline void unpack_q6_k(const quant::BlockQ6_K* blocks, UnpackedRow<K, 16>& u) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    const __m256i three = _mm256_set1_epi8(0x03);
    const __m256i thirty_two = _mm256_set1_epi8(32);
    for (int b = 0; b < K / 256; ++b) {
        const quant::BlockQ6_K& blk = blocks[b];
        const float d = half_to_float(blk.d);
        for (int half = 0; half < 2; ++half) {
            const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * half));
            const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * half + 32));
            const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh + 32 * half));
            auto high_bits = [&](int shift) { return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), three), 4); };
            std::int8_t* out = u.w + b * 256 + 128 * half;
            _mm256_store_si256(reinterpret_cast<__m256i*>(out), _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(ql0, low), high_bits(0)), thirty_two));
            _mm256_store_si256(reinterpret_cast<__m256i*>(out + 32), _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(ql1, low), high_bits(2)), thirty_two));
            _mm256_store_si256(reinterpret_cast<__m256i*>(out + 64),
                               _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low), high_bits(4)), thirty_two));
            _mm256_store_si256(reinterpret_cast<__m256i*>(out + 96),
                               _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low), high_bits(6)), thirty_two));
        }
        for (int g = 0; g < 16; ++g) {
            u.scale[b * 16 + g] = d * float(blk.scales[g]);
            u.min_coef[b * 16 + g] = 0;
        }
    }
    finish_block_sums(u);
}

// --- the column kernel ---

inline constexpr int kGemmRows = 4;

// The NG column groups of 16 tokens from `group` on times kGemmRows unpacked rows, into `out` in
// store_partials' layout for one four-row tile ([group][row][16 tokens], `out` holds NG * 64 floats).
// A short tile repeats its last row. Not inlined into the panel loop: alone, it keeps every operand
// in a register.
template <int K, int G, bool HasMin, int NG, class Input>
[[gnu::noinline]] void column_tile(const UnpackedRow<K, G>* const* rows, const Input& in, int group, float* out) {
    constexpr int R = kGemmRows;
    const std::uint8_t* x[NG];
    const float* dx[NG];
    const float* sx[NG];
    for (int g = 0; g < NG; ++g) {
        x[g] = in.columns(group + g);
        dx[g] = in.column_scales(group + g);
        sx[g] = in.column_sums(group + g);
    }
    __m512 acc[R][NG];
    for (int r = 0; r < R; ++r)
        for (int g = 0; g < NG; ++g) acc[r][g] = _mm512_setzero_ps();
    for (int b = 0; b < K / G; ++b) {
        __m512i dot[R][NG];
        for (int r = 0; r < R; ++r)
            for (int g = 0; g < NG; ++g) dot[r][g] = _mm512_setzero_si512();
        for (int j = 0; j < G / 4; ++j) {
            __m512i xv[NG];
            for (int g = 0; g < NG; ++g) xv[g] = _mm512_loadu_si512(x[g] + std::size_t(b * (G / 4) + j) * 64);
            for (int r = 0; r < R; ++r) {
                std::int32_t w4;
                std::memcpy(&w4, rows[r]->w + b * G + 4 * j, 4);
                const __m512i wv = _mm512_set1_epi32(w4);
                for (int g = 0; g < NG; ++g) dot[r][g] = _mm512_dpbusd_epi32(dot[r][g], xv[g], wv);
            }
        }
        const int xb = b * G / 32;  // the input's block of 32 holding this block
        for (int g = 0; g < NG; ++g) {
            const __m512 dxv = _mm512_loadu_ps(dx[g] + xb * 16);
            for (int r = 0; r < R; ++r) {
                const __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(dot[r][g], _mm512_set1_epi32(rows[r]->bias[b])));
                acc[r][g] = _mm512_fmadd_ps(v, _mm512_mul_ps(_mm512_set1_ps(rows[r]->scale[b]), dxv), acc[r][g]);
                if constexpr (HasMin)
                    acc[r][g] = _mm512_fmadd_ps(_mm512_loadu_ps(sx[g] + xb * 16), _mm512_set1_ps(rows[r]->min_coef[b]), acc[r][g]);
            }
        }
    }
    for (int g = 0; g < NG; ++g)
        for (int r = 0; r < R; ++r) _mm512_store_ps(out + (g * R + r) * 16, acc[r][g]);
}

// Y[t][row0 + r] for the NG column groups from `group` on and every row r of an unpacked panel:
// sixteen rows' tiles at a time into a buffer, then to Y by store_partials (whole-line stores).
template <int K, int G, bool HasMin, int NG, class Input>
inline void column_panel(const UnpackedRow<K, G>* panel, int panel_rows, int row0, const Input& in, int group, float* y,
                         std::size_t y_stride) {
    constexpr int R = kGemmRows, kTilesPerStore = 16 / R;
    alignas(64) float results[kTilesPerStore * NG * R * 16];
    float* out = y + std::size_t(group * 16) * y_stride;
    for (int s0 = 0; s0 < panel_rows; s0 += 16) {
        const int rows_here = std::min(16, panel_rows - s0);
        for (int t = 0; t * R < rows_here; ++t) {
            const int first = s0 + t * R, count = std::min(R, rows_here - t * R);
            const UnpackedRow<K, G>* rows[R];
            for (int r = 0; r < R; ++r) rows[r] = panel + first + std::min(r, count - 1);
            column_tile<K, G, HasMin, NG>(rows, in, group, results + t * NG * R * 16);
        }
        store_partials(results, rows_here, NG, in.tokens() - group * 16, out, y_stride, row0 + s0);
    }
}

// Rows unpacked at a time: a panel of about 256 KB, which stays in L2 while every group of tokens
// passes over it (the tokens' columns, 32 x K bytes, stay in L1 or L2 across the panel's tiles).
template <int K>
inline constexpr int kPanelRowsQ = std::clamp((256 * 1024 / K) / kGemmRows * kGemmRows, kGemmRows, 64);

template <int K, int G>
inline std::vector<UnpackedRow<K, G>>& unpack_buffer() {
    thread_local std::vector<UnpackedRow<K, G>> rows(kPanelRowsQ<K>);
    return rows;
}

// Rows [row_begin, row_end) of a quantized matrix times every token of `in` (column form).
template <int K, class Input>
void matmul_quant(DType type, const std::byte* w, std::size_t stride, const Input& in, float* y, std::size_t y_stride,
                  int row_begin, int row_end) {
    auto run = [&]<int G, bool HasMin>(auto unpack) {
        UnpackedRow<K, G>* panel = unpack_buffer<K, G>().data();
        constexpr int P = kPanelRowsQ<K>;
        const int groups = (in.tokens() + 15) / 16;
        for (int p0 = row_begin; p0 < row_end; p0 += P) {
            const int rows = std::min(P, row_end - p0);
            for (int i = 0; i < rows; ++i) unpack(w + std::size_t(p0 + i) * stride, panel[i]);
            int g = 0;
            for (; g + 2 <= groups; g += 2) column_panel<K, G, HasMin, 2>(panel, rows, p0, in, g, y, y_stride);
            if (g < groups) column_panel<K, G, HasMin, 1>(panel, rows, p0, in, g, y, y_stride);
        }
    };
    if constexpr (K % 32 != 0) return;  // no kernel for partial blocks (has_quant_kernel is false)
    switch (type) {
        case DType::q8_0:
            return run.template operator()<32, false>([](const std::byte* row, UnpackedRow<K, 32>& u) {
                unpack_q8_0<K>(reinterpret_cast<const quant::BlockQ8_0*>(row), u);
            });
        case DType::q4_0:
            return run.template operator()<32, false>([](const std::byte* row, UnpackedRow<K, 32>& u) {
                unpack_q4_0<K>(reinterpret_cast<const quant::BlockQ4_0*>(row), u);
            });
        case DType::q5_0:
            return run.template operator()<32, false>([](const std::byte* row, UnpackedRow<K, 32>& u) {
                unpack_q5_0<K>(reinterpret_cast<const quant::BlockQ5_0*>(row), u);
            });
        case DType::q4_k:
            if constexpr (K % 256 == 0)
                return run.template operator()<32, true>([](const std::byte* row, UnpackedRow<K, 32>& u) {
                    unpack_q4_k<K>(reinterpret_cast<const quant::BlockQ4_K*>(row), u);
                });
            break;
        case DType::q5_k:
            if constexpr (K % 256 == 0)
                return run.template operator()<32, true>([](const std::byte* row, UnpackedRow<K, 32>& u) {
                    unpack_q5_k<K>(reinterpret_cast<const quant::BlockQ5_K*>(row), u);
                });
            break;
        case DType::q6_k:
            if constexpr (K % 256 == 0)
                return run.template operator()<16, false>([](const std::byte* row, UnpackedRow<K, 16>& u) {
                    unpack_q6_k<K>(reinterpret_cast<const quant::BlockQ6_K*>(row), u);
                });
            break;
        default: break;
    }
}

}  // namespace qwen3::detail::avx512

#endif
