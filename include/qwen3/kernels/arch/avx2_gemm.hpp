// qwen3/kernels/arch/avx2_gemm.hpp - AVX2 matrix-matrix kernel for quantized weights (prefill).
//
// The AVX2 counterpart of avx512_gemm.hpp: a panel of weight rows is unpacked into bytes with one
// float scale and one offset per block (element = scale * w + min_coef), and each row's four bytes
// at a time, broadcast, are multiplied with four bytes of 16 tokens side by side (Input's column
// form, two 32-byte halves of 8 tokens). The products go through vpmaddubsw (unsigned weight x
// signed input, pairs summed to int16) and are summed in int16 for as many steps as the format's
// values allow before one vpmaddwd widens them: 8 steps for 4-bit values (a pair reaches
// 2 x 15 x 127 = 3810), 4 for 5-bit, 2 for Q6_K (signed, |w| <= 32, times the input + 128), 1 for
// Q8_0 (signed, as |w| with w's sign moved onto the input). For the 4-bit formats that is 9
// multiplies per 256 products and no float work until a block ends, where a kernel that finishes
// every block of 32 per row and token in float (as llama.cpp's AVX2 path does) needs 16 and 8 float
// conversions.
#pragma once

#include "avx2_quant.hpp"

#if defined(QWEN3_HAVE_AVX2_QUANT)

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../../quant/blocks.hpp"
#include "../../tensor.hpp"
#include "../packed_layout.hpp"

namespace qwen3::detail::avx2 {

// Types the column kernel handles, for rows of K elements: the six of the packed decode layout.
template <int K>
constexpr bool has_column_gemm(DType type) {
    return packed::has_layout<K>(type);
}

namespace column_tiles {

// One weight row as bytes in blocks of G elements: element = scale[b] * w + min_coef[b]; w is
// unsigned, except for Q8_0 and Q6_K (signed; min_coef 0: Q6_K's blocks of 16 are finer than the
// input's sums, per 32).
template <int K, int G>
struct UnpackedRow {
    static constexpr int blocks = K / G;
    alignas(32) std::uint8_t w[K];
    float scale[blocks];
    float min_coef[blocks];
    std::int32_t bias[blocks];  // Operands::offset_input: 128 * sum of the block's w
};

// How a kernel feeds vpmaddubsw, whose first operand is unsigned and second signed.
enum class Operands {
    unsigned_weights,  // w unsigned (Q4_0, Q5_0, Q4_K, Q5_K: up to 31), x as it is
    offset_input,      // w signed and small (Q6_K: |w| <= 32), x + 128; 128 * sum(w) comes back out
    sign_moved,        // w signed (Q8_0): |w|, with w's sign moved onto x
};

inline __m256i load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline void store(void* p, __m256i v) { _mm256_storeu_si256(static_cast<__m256i*>(p), v); }

template <int K>
inline void unpack_q8_0(const quant::BlockQ8_0* blocks, UnpackedRow<K, 32>& u) {
    for (int b = 0; b < K / 32; ++b) {
        std::memcpy(u.w + 32 * b, blocks[b].qs, 32);
        u.scale[b] = half_to_float(blocks[b].d);
        u.min_coef[b] = 0;
    }
}

template <int K, bool FifthBit>
inline void unpack_q4_0_q5_0(const std::byte* row, UnpackedRow<K, 32>& u) {
    using Block = std::conditional_t<FifthBit, quant::BlockQ5_0, quant::BlockQ4_0>;
    const Block* blocks = reinterpret_cast<const Block*>(row);
    for (int b = 0; b < K / 32; ++b) {
        __m256i v = nibbles_32(blocks[b].qs);
        if constexpr (FifthBit) {
            std::uint32_t high;
            std::memcpy(&high, blocks[b].qh, 4);
            v = _mm256_or_si256(v, _mm256_and_si256(bits_to_bytes(high), _mm256_set1_epi8(0x10)));
        }
        store(u.w + 32 * b, v);
        const float d = half_to_float(blocks[b].d);
        u.scale[b] = d;
        u.min_coef[b] = -(FifthBit ? 16.f : 8.f) * d;
    }
}

template <int K, bool FifthBit>
inline void unpack_q4_k_q5_k(const std::byte* row, UnpackedRow<K, 32>& u) {
    using Block = std::conditional_t<FifthBit, quant::BlockQ5_K, quant::BlockQ4_K>;
    const Block* blocks = reinterpret_cast<const Block*>(row);
    const __m256i low = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    for (int b = 0; b < K / 256; ++b) {
        const Block& blk = blocks[b];
        alignas(16) std::uint8_t sm[16];
        k4_scales_mins(blk.scales, sm);
        [[maybe_unused]] __m256i qh;
        if constexpr (FifthBit) qh = load(blk.qh);
        for (int c = 0; c < 4; ++c) {
            const __m256i q = load(blk.qs + 32 * c);
            __m256i lo = _mm256_and_si256(q, low), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
            if constexpr (FifthBit) {
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
            }
            store(u.w + 256 * b + 64 * c, lo);
            store(u.w + 256 * b + 64 * c + 32, hi);
        }
        const float d = half_to_float(blk.d), dmin = half_to_float(blk.dmin);
        for (int j = 0; j < 8; ++j) {
            u.scale[8 * b + j] = d * float(sm[j]);
            u.min_coef[8 * b + j] = -dmin * float(sm[8 + j]);
        }
    }
}

template <int K>
inline void unpack_q6_k(const quant::BlockQ6_K* blocks, UnpackedRow<K, 16>& u) {
    const __m256i low = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(0x03), thirty_two = _mm256_set1_epi8(32);
    for (int b = 0; b < K / 256; ++b) {
        const quant::BlockQ6_K& blk = blocks[b];
        for (int half = 0; half < 2; ++half) {
            const __m256i ql0 = load(blk.ql + 64 * half), ql1 = load(blk.ql + 64 * half + 32), qh = load(blk.qh + 32 * half);
            auto value = [&](__m256i nibbles, int shift) {  // stored values are q + 32
                const __m256i high = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), three), 4);
                return _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(nibbles, low), high), thirty_two);
            };
            std::uint8_t* out = u.w + 256 * b + 128 * half;
            store(out, value(ql0, 0));
            store(out + 32, value(ql1, 2));
            store(out + 64, value(_mm256_srli_epi16(ql0, 4), 4));
            store(out + 96, value(_mm256_srli_epi16(ql1, 4), 6));
        }
        // 128 * (sum of each 16 values): vpsadbw sums 8 bytes, flipped to unsigned (w + 128)
        for (int i = 0; i < 8; ++i) {
            const __m256i sums = _mm256_sad_epu8(_mm256_xor_si256(load(u.w + 256 * b + 32 * i), _mm256_set1_epi8(char(0x80))), _mm256_setzero_si256());
            alignas(32) std::int64_t part[4];
            _mm256_store_si256(reinterpret_cast<__m256i*>(part), sums);
            u.bias[16 * b + 2 * i] = std::int32_t(128 * (part[0] + part[1] - 128 * 16));
            u.bias[16 * b + 2 * i + 1] = std::int32_t(128 * (part[2] + part[3] - 128 * 16));
        }
        const float d = half_to_float(blk.d);
        for (int g = 0; g < 16; ++g) {
            u.scale[16 * b + g] = d * float(blk.scales[g]);
            u.min_coef[16 * b + g] = 0;
        }
    }
}

inline constexpr int kGemmRows = 4;

// Y for kGemmRows unpacked rows times the 16 tokens of column group `group`: out[r][16 tokens].
// Steps: how many 4-byte steps are summed in int16 before widening (see the header comment);
// How: the operands of vpmaddubsw (see Operands).
// One half of the group (8 tokens) at a time, so that every sum stays in one of AVX2's 16 registers.
template <int K, int G, int Steps, Operands How, bool HasMin, class Input>
[[gnu::noinline]] void column_tile(const UnpackedRow<K, G>* const* rows, const Input& in, int group, float* out) {
    constexpr int R = kGemmRows;
    static_assert((G / 4) % Steps == 0);
    static_assert(Input::kColumnFlip == 0, "the column form holds the input as signed bytes");
    const __m256i ones = _mm256_set1_epi16(1);
    for (int h = 0; h < 2; ++h) {
        const std::uint8_t* x = in.columns(group) + 32 * h;
        const float* dx = in.column_scales(group) + 8 * h;
        const float* sx = in.column_sums(group) + 8 * h;
        __m256 acc[R];
        for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
        for (int b = 0; b < K / G; ++b) {
            __m256i dot[R];
            for (int r = 0; r < R; ++r) dot[r] = _mm256_setzero_si256();
#pragma GCC unroll 1
            for (int j0 = 0; j0 < G / 4; j0 += Steps) {
                __m256i sum16[R];
                for (int r = 0; r < R; ++r) sum16[r] = _mm256_setzero_si256();
#pragma GCC unroll 2
                for (int j = j0; j < j0 + Steps; ++j) {
                    __m256i xv = load(x + std::size_t(b * (G / 4) + j) * 64);
                    if constexpr (How == Operands::offset_input) xv = _mm256_xor_si256(xv, _mm256_set1_epi8(char(0x80)));
                    for (int r = 0; r < R; ++r) {
                        std::int32_t w4;
                        std::memcpy(&w4, rows[r]->w + b * G + 4 * j, 4);
                        const __m256i wv = _mm256_set1_epi32(w4);
                        __m256i products;
                        if constexpr (How == Operands::sign_moved) products = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
                        else if constexpr (How == Operands::offset_input) products = _mm256_maddubs_epi16(xv, wv);
                        else products = _mm256_maddubs_epi16(wv, xv);
                        sum16[r] = _mm256_add_epi16(sum16[r], products);
                    }
                }
                for (int r = 0; r < R; ++r) dot[r] = _mm256_add_epi32(dot[r], _mm256_madd_epi16(sum16[r], ones));
            }
            const int xb = b * G / 32;  // the input's block of 32 holding this block
            const __m256 dxv = _mm256_loadu_ps(dx + xb * 16);
            [[maybe_unused]] const __m256 sxv = _mm256_loadu_ps(sx + xb * 16);
            for (int r = 0; r < R; ++r) {
                if constexpr (How == Operands::offset_input) dot[r] = _mm256_sub_epi32(dot[r], _mm256_set1_epi32(rows[r]->bias[b]));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[r]), _mm256_mul_ps(_mm256_set1_ps(rows[r]->scale[b]), dxv), acc[r]);
                if constexpr (HasMin) acc[r] = _mm256_fmadd_ps(sxv, _mm256_set1_ps(rows[r]->min_coef[b]), acc[r]);
            }
        }
        for (int r = 0; r < R; ++r) _mm256_storeu_ps(out + 16 * r + 8 * h, acc[r]);
    }
}

// Rows unpacked at a time: a panel of about 128 KB, which stays in L2 while every group of tokens
// passes over it.
template <int K>
inline constexpr int kPanelRows = std::clamp((128 * 1024 / K) / kGemmRows * kGemmRows, kGemmRows, 64);

template <int K, int G>
inline std::vector<UnpackedRow<K, G>>& unpack_buffer() {
    thread_local std::vector<UnpackedRow<K, G>> rows(kPanelRows<K>);
    return rows;
}

}  // namespace column_tiles

// Y[t][r] for every token of `in` (column form) and r in [row_begin, row_end).
// Precondition: has_column_gemm<K>(type).
template <int K, class Input>
void matmul_columns(DType type, const std::byte* w, std::size_t stride, const Input& in, float* y, std::size_t y_stride,
                    int row_begin, int row_end) {
    using namespace column_tiles;
    auto run = [&]<int G, int Steps, Operands How, bool HasMin>(auto unpack) {
        UnpackedRow<K, G>* panel = unpack_buffer<K, G>().data();
        constexpr int P = kPanelRows<K>, R = kGemmRows;
        const int tokens = in.tokens(), groups = (tokens + 15) / 16;
        alignas(32) float tile[R * 16];
        for (int p0 = row_begin; p0 < row_end; p0 += P) {
            const int rows = std::min(P, row_end - p0);
            for (int i = 0; i < rows; ++i) unpack(w + std::size_t(p0 + i) * stride, panel[i]);
            for (int g = 0; g < groups; ++g) {
                const int lanes = std::min(16, tokens - 16 * g);
                for (int r0 = 0; r0 < rows; r0 += R) {
                    const int count = std::min(R, rows - r0);
                    const UnpackedRow<K, G>* tile_rows[R];
                    for (int r = 0; r < R; ++r) tile_rows[r] = panel + r0 + std::min(r, count - 1);  // a short tile repeats its last row
                    column_tile<K, G, Steps, How, HasMin>(tile_rows, in, g, tile);
                    for (int t = 0; t < lanes; ++t)
                        for (int r = 0; r < count; ++r) y[std::size_t(16 * g + t) * y_stride + std::size_t(p0 + r0 + r)] = tile[16 * r + t];
                }
            }
        }
    };
    switch (type) {
        case DType::q8_0:
            if constexpr (K % 32 == 0)
                return run.template operator()<32, 1, Operands::sign_moved, false>([](const std::byte* row, UnpackedRow<K, 32>& u) {
                    unpack_q8_0<K>(reinterpret_cast<const quant::BlockQ8_0*>(row), u);
                });
            break;
        case DType::q4_0:
            if constexpr (K % 32 == 0)
                return run.template operator()<32, 8, Operands::unsigned_weights, true>([](const std::byte* row, UnpackedRow<K, 32>& u) { unpack_q4_0_q5_0<K, false>(row, u); });
            break;
        case DType::q5_0:
            if constexpr (K % 32 == 0)
                return run.template operator()<32, 4, Operands::unsigned_weights, true>([](const std::byte* row, UnpackedRow<K, 32>& u) { unpack_q4_0_q5_0<K, true>(row, u); });
            break;
        case DType::q4_k:
            if constexpr (K % 256 == 0)
                return run.template operator()<32, 8, Operands::unsigned_weights, true>([](const std::byte* row, UnpackedRow<K, 32>& u) { unpack_q4_k_q5_k<K, false>(row, u); });
            break;
        case DType::q5_k:
            if constexpr (K % 256 == 0)
                return run.template operator()<32, 4, Operands::unsigned_weights, true>([](const std::byte* row, UnpackedRow<K, 32>& u) { unpack_q4_k_q5_k<K, true>(row, u); });
            break;
        case DType::q6_k:
            if constexpr (K % 256 == 0)
                return run.template operator()<16, 2, Operands::offset_input, false>([](const std::byte* row, UnpackedRow<K, 16>& u) {
                    unpack_q6_k<K>(reinterpret_cast<const quant::BlockQ6_K*>(row), u);
                });
            break;
        default: break;
    }
}

}  // namespace qwen3::detail::avx2

#endif
