// qwen3/kernels/arch/avx512_quant.hpp - AVX-512 VNNI matrix-vector kernels for quantized weights.
//
// The input is quantized once per matrix to int8 (Input's q8 forms: blocks of 32 with their own
// scales for the 32-element formats, blocks of 256 for K-quants) and each weight block is multiplied
// with integer dot products: vpdpbusd (unsigned x signed bytes, summed in fours) for the 32-element
// formats, vpmaddubsw + vpdpwssd (pairs, then pairs times each sub-block's scale) for K-quants, whose
// sub-blocks carry integer scales that fold into the integer sum. Each block's float scales are
// applied once per block. Offsets (Q4_0's 8, Q5_0's 16, Q6_K's 32) and K-quant minimums are applied
// through the precomputed sums of the input's blocks instead of touching every element.
//
// Weight blocks have odd sizes (18, 22, 34, 144, 176, 210 bytes), so loads are unaligned; the next
// rows are prefetched (non-temporal) while a row is processed.
#pragma once

#include "features.hpp"

#if defined(QWEN3_HAVE_AVX512_VNNI)

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../../quant/blocks.hpp"

namespace qwen3::detail::avx512 {

inline float half_to_float(std::uint16_t h) { return _cvtsh_ss(h); }

inline void prefetch_row(const std::byte* row, std::size_t bytes) {
    for (std::size_t off = 0; off < bytes; off += 64) _mm_prefetch(reinterpret_cast<const char*>(row + off), _MM_HINT_NTA);
}

// Two 16-lane halves: lanes 0..7 hold a, lanes 8..15 hold b.
inline __m512 halves(float a, float b) { return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1); }

// 32 nibbles of one 32-element block (16 bytes) as 32 bytes in element order: low nibbles are
// elements 0..15, high nibbles 16..31.
inline __m256i unpack_nibbles_16(const std::uint8_t* qs) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m128i mask = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), mask), _mm_and_si128(q, mask));
}

// --- 32-element formats: dot(W[r], x) = sum_b d_w[b] * d_x[b] * (sum q_w * q_x - offset * sum q_x) ---

// Q8_0: signed weights; vpdpbusd needs an unsigned operand, so it multiplies |w| by x carrying w's sign.
inline __m512i dot_q8_0_pair(const quant::BlockQ8_0* b, const std::int8_t* x) {
    const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs))),
                                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs)), 1);
    const __m512i xv = _mm512_loadu_si512(x);
    const __mmask64 negative = _mm512_movepi8_mask(w);
    const __m512i signed_x = _mm512_mask_sub_epi8(xv, negative, _mm512_setzero_si512(), xv);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), signed_x);
}

inline __m512i dot_q4_0_pair(const quant::BlockQ4_0* b, const std::int8_t* x) {
    const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(unpack_nibbles_16(b[0].qs)), unpack_nibbles_16(b[1].qs), 1);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, _mm512_loadu_si512(x));
}

inline __m256i q5_0_values(const quant::BlockQ5_0& b) {
    std::uint32_t high;
    std::memcpy(&high, b.qh, 4);
    return _mm256_or_si256(unpack_nibbles_16(b.qs), _mm256_maskz_mov_epi8(high, _mm256_set1_epi8(0x10)));
}

inline __m512i dot_q5_0_pair(const quant::BlockQ5_0* b, const std::int8_t* x) {
    const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(q5_0_values(b[0])), q5_0_values(b[1]), 1);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, _mm512_loadu_si512(x));
}

// One row of a 32-element format. Offset: the constant subtracted from every stored value (0, 8, 16).
template <int K, class Block, int Offset, __m512i (*DotPair)(const Block*, const std::int8_t*)>
inline float row_dot_32(const Block* blocks, const std::int8_t* xq, const float* xd, const std::int32_t* xs) {
    constexpr int nb = K / 32;
    static_assert(nb % 2 == 0, "rows hold an even number of 32-element blocks");
    __m512 acc = _mm512_setzero_ps();
    float offset_sum = 0;
    for (int b = 0; b < nb; b += 2) {
        const float s0 = half_to_float(blocks[b].d) * xd[b], s1 = half_to_float(blocks[b + 1].d) * xd[b + 1];
        const __m512i dot = DotPair(blocks + b, xq + b * 32);
        acc = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, dot), halves(s0, s1), acc);
        if constexpr (Offset != 0) offset_sum += s0 * float(xs[b]) + s1 * float(xs[b + 1]);
    }
    return _mm512_reduce_add_ps(acc) - float(Offset) * offset_sum;
}

#if defined(__AVX512VBMI__)
// Q4_0 and Q5_0 rows, two blocks per step from one masked 64-byte load: the two scales and the
// nibbles are moved into place with byte/word permutes, so a block costs about seven instructions
// (these formats are compute-bound in decode otherwise: 18 bytes per 32 elements).
template <int K, class Block>
inline float row_dot_small_blocks(const Block* blocks, const std::int8_t* xq, const float* lane_scales, const float* lane_sums) {
    constexpr int nb = K / 32;
    static_assert(nb % 2 == 0, "rows hold an even number of 32-element blocks");
    constexpr int size = int(sizeof(Block));  // 18 (Q4_0) or 22 (Q5_0)
    constexpr int qs = int(offsetof(Block, qs));
    constexpr int offset = std::is_same_v<Block, quant::BlockQ4_0> ? 8 : 16;
    constexpr __mmask64 load_mask = (__mmask64(1) << (2 * size)) - 1;
    // words 0 and size / 2 are the two scales: 8 lanes each
    const __m512i scale_index = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, size / 2, size / 2, size / 2,
                                                 size / 2, size / 2, size / 2, size / 2, size / 2, 0, 0, 0, 0, 0, 0, 0, 0);
    // bytes [lo nibbles of block 0 | high nibbles of block 0 | lo of block 1 | high of block 1]
    static constexpr auto nibble_index_bytes = [] {
        struct alignas(64) Table {
            std::int8_t bytes[64];
        } t{};
        for (int i = 0; i < 64; ++i) t.bytes[i] = std::int8_t((i < 32 ? qs : size + qs) + i % 16);
        return t;
    }();
    const __m512i nibble_index = _mm512_load_si512(nibble_index_bytes.bytes);
    const __m512i nibble_shift = _mm512_set_epi64(0x0004000400040004, 0x0004000400040004, 0, 0, 0x0004000400040004,
                                                  0x0004000400040004, 0, 0);
    const __m512i low = _mm512_set1_epi8(0x0F);
    const __m512i sixteen = _mm512_set1_epi8(0x10);
    // two accumulators of each kind: one chain of dependent FMAs would limit a step to its latency
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0, offset0 = acc0, offset1 = acc0;
    auto step = [&](int b, __m512& a, __m512& o) {
        const std::byte* pair = reinterpret_cast<const std::byte*>(blocks + b);
        const __m512i raw = _mm512_maskz_loadu_epi8(load_mask, pair);
        const __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(scale_index, raw)));
        __m512i q = _mm512_and_si512(_mm512_srlv_epi16(_mm512_permutexvar_epi8(nibble_index, raw), nibble_shift), low);
        if constexpr (std::is_same_v<Block, quant::BlockQ5_0>) {
            std::uint32_t h0, h1;
            std::memcpy(&h0, blocks[b].qh, 4);
            std::memcpy(&h1, blocks[b + 1].qh, 4);
            q = _mm512_or_si512(q, _mm512_maskz_mov_epi8(__mmask64(h0) | (__mmask64(h1) << 32), sixteen));
        }
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, _mm512_loadu_si512(xq + b * 32));
        const __m512 dx = _mm512_loadu_ps(lane_scales + b * 8);
        a = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, dot), _mm512_mul_ps(dw, dx), a);
        o = _mm512_fmadd_ps(dw, _mm512_loadu_ps(lane_sums + b * 8), o);
    };
    int b = 0;
    for (; b + 4 <= nb; b += 4) {
        step(b, acc0, offset0);
        step(b + 2, acc1, offset1);
    }
    if (b < nb) step(b, acc0, offset0);
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) - float(offset) * _mm512_reduce_add_ps(_mm512_add_ps(offset0, offset1));
}
#endif

// --- K-quants: 256-element super-blocks ---

// The 8 six-bit scales and 8 six-bit minimums of a Q4_K / Q5_K block (bytes 0..7 and 8..15).
inline void unpack_scales_k4(const std::uint8_t* packed, std::uint8_t out[16]) {
    for (int j = 0; j < 8; ++j) quant::scale_min_k4(j, packed, out[j], out[8 + j]);
}

// sum over the block's 8 sub-blocks of min_j * (sum of x's int8 values in sub-block j), from the
// input's sums of 16.
inline std::int32_t mins_dot(const std::uint8_t* mins8, const std::int32_t* sums16) {
    const __m128i m = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(mins8));
    const __m512i m16 = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(m, m));  // each minimum covers two sums of 16
    return _mm512_reduce_add_epi32(_mm512_mullo_epi32(m16, _mm512_loadu_si512(sums16)));
}

// Scale vector for vpdpwssd over one 64-element chunk: int16 lanes 0..15 = a, 16..31 = b.
inline __m512i scale_pair16(int a, int b) {
    return _mm512_inserti64x4(_mm512_set1_epi16(std::int16_t(a)), _mm256_set1_epi16(std::int16_t(b)), 1);
}

// 64 unsigned values of one chunk times x, weighted per 32: sum_j scale_j * sum q * x.
inline __m512i chunk_dot(__m512i q, const std::int8_t* x, __m512i scales16, __m512i acc) {
    const __m512i pairs = _mm512_maddubs_epi16(q, _mm512_loadu_si512(x));
    return _mm512_dpwssd_epi32(acc, pairs, scales16);
}

#if defined(__AVX512VBMI__)
// The 6-bit scales and minimums of a Q4_K / Q5_K block as 16 bytes (scales 0..7, minimums 0..7),
// unpacked with word operations from the 12 packed bytes.
inline __m128i k4_scales_mins(const std::uint8_t* packed) {
    std::uint32_t w[3];
    std::memcpy(w, packed, 12);
    const std::uint32_t low6 = 0x3F3F3F3F, low4 = 0x0F0F0F0F, top2 = 0x03030303;
    const std::uint32_t scales_lo = w[0] & low6, mins_lo = w[1] & low6;
    const std::uint32_t scales_hi = (w[2] & low4) | (((w[0] >> 6) & top2) << 4);
    const std::uint32_t mins_hi = ((w[2] >> 4) & low4) | (((w[1] >> 6) & top2) << 4);
    return _mm_set_epi32(int(mins_hi), int(mins_lo), int(scales_hi), int(scales_lo));
}

// vpdpwssd scale lanes for 64-element chunk c: int16 lanes 0..15 take scale 2c, 16..31 scale 2c + 1.
inline __m512i k4_chunk_scales(__m128i scales_mins, int c) {
    const __m512i index = _mm512_set1_epi16(std::int16_t(2 * c));  // low byte: scale index; high byte zeroed below
    const __m512i upper = _mm512_set_epi64(0x0001000100010001, 0x0001000100010001, 0x0001000100010001, 0x0001000100010001, 0, 0, 0, 0);
    return _mm512_maskz_permutexvar_epi8(0x5555555555555555ull, _mm512_add_epi16(index, upper), _mm512_castsi128_si512(scales_mins));
}

// 64 values of chunk c: the 32 bytes' low nibbles (elements 0..31), then their high nibbles.
inline __m512i k4_chunk_nibbles(const std::uint8_t* qs) {
    const __m512i both = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs)));
    const __m512i shift = _mm512_set_epi64(0x0004000400040004, 0x0004000400040004, 0x0004000400040004, 0x0004000400040004, 0, 0, 0, 0);
    return _mm512_and_si512(_mm512_srlv_epi16(both, shift), _mm512_set1_epi8(0x0F));
}

// sum_j min_j * (sum of x in sub-block j) as 16 int32 lanes (each minimum covers two sums of 16).
inline __m512 k4_mins_dot(__m128i scales_mins, const std::int32_t* sums16) {
    const __m128i mins_twice = _mm_unpackhi_epi8(scales_mins, scales_mins);  // m0 m0 m1 m1 ... m7 m7
    return _mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(mins_twice), _mm512_loadu_si512(sums16)));
}

template <int K, bool FiveBit>
inline float row_dot_k4(const std::byte* row, const std::int8_t* xq, const float* xd, const std::int32_t* xs16) {
    using Block = std::conditional_t<FiveBit, quant::BlockQ5_K, quant::BlockQ4_K>;
    const Block* blocks = reinterpret_cast<const Block*>(row);
    constexpr int nb = K / 256;
    const __m512i sixteen = _mm512_set1_epi8(0x10);
    __m512 acc = _mm512_setzero_ps(), min_acc = _mm512_setzero_ps();
    for (int b = 0; b < nb; ++b) {
        const Block& blk = blocks[b];
        const __m128i sm = k4_scales_mins(blk.scales);
        const std::int8_t* x = xq + b * 256;
        __m512i isum = _mm512_setzero_si512();
        [[maybe_unused]] __m256i qh;
        if constexpr (FiveBit) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh));
        for (int c = 0; c < 4; ++c) {
            __m512i values = k4_chunk_nibbles(blk.qs + 32 * c);
            if constexpr (FiveBit) {
                // fifth bit: bit 2c of qh[l] for element l, bit 2c + 1 for element 32 + l
                const __mmask64 high = __mmask64(_mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << (2 * c))))) |
                                       (__mmask64(_mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << (2 * c + 1))))) << 32);
                values = _mm512_or_si512(values, _mm512_maskz_mov_epi8(high, sixteen));
            }
            const __m512i pairs = _mm512_maddubs_epi16(values, _mm512_loadu_si512(x + 64 * c));
            isum = _mm512_dpwssd_epi32(isum, pairs, k4_chunk_scales(sm, c));
        }
        const float dx = xd[b];
        acc = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, isum), _mm512_set1_ps(half_to_float(blk.d) * dx), acc);
        min_acc = _mm512_fmadd_ps(k4_mins_dot(sm, xs16 + b * 16), _mm512_set1_ps(half_to_float(blk.dmin) * dx), min_acc);
    }
    return _mm512_reduce_add_ps(_mm512_sub_ps(acc, min_acc));
}
#else
template <int K>
inline float row_dot_q4_k(const quant::BlockQ4_K* blocks, const std::int8_t* xq, const float* xd, const std::int32_t* xs16) {
    constexpr int nb = K / 256;
    const __m256i low = _mm256_set1_epi8(0x0F);
    __m512 acc = _mm512_setzero_ps();
    float min_sum = 0;
    for (int b = 0; b < nb; ++b) {
        const quant::BlockQ4_K& blk = blocks[b];
        std::uint8_t sm[16];
        unpack_scales_k4(blk.scales, sm);
        const std::int8_t* x = xq + b * 256;
        __m512i isum = _mm512_setzero_si512();
        for (int c = 0; c < 4; ++c) {
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs + 32 * c));
            const __m512i values = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(q, low)),
                                                      _mm256_and_si256(_mm256_srli_epi16(q, 4), low), 1);
            isum = chunk_dot(values, x + 64 * c, scale_pair16(sm[2 * c], sm[2 * c + 1]), isum);
        }
        const float dx = xd[b];
        acc = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, isum), _mm512_set1_ps(half_to_float(blk.d) * dx), acc);
        min_sum += half_to_float(blk.dmin) * dx * float(mins_dot(sm + 8, xs16 + b * 16));
    }
    return _mm512_reduce_add_ps(acc) - min_sum;
}

template <int K>
inline float row_dot_q5_k(const quant::BlockQ5_K* blocks, const std::int8_t* xq, const float* xd, const std::int32_t* xs16) {
    constexpr int nb = K / 256;
    const __m256i low = _mm256_set1_epi8(0x0F);
    const __m256i sixteen = _mm256_set1_epi8(0x10);
    __m512 acc = _mm512_setzero_ps();
    float min_sum = 0;
    for (int b = 0; b < nb; ++b) {
        const quant::BlockQ5_K& blk = blocks[b];
        std::uint8_t sm[16];
        unpack_scales_k4(blk.scales, sm);
        const std::int8_t* x = xq + b * 256;
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh));
        __m512i isum = _mm512_setzero_si512();
        for (int c = 0; c < 4; ++c) {
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs + 32 * c));
            const __mmask32 hi_lo = _mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << (2 * c))));
            const __mmask32 hi_hi = _mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << (2 * c + 1))));
            const __m256i lo_values = _mm256_or_si256(_mm256_and_si256(q, low), _mm256_maskz_mov_epi8(hi_lo, sixteen));
            const __m256i hi_values =
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), low), _mm256_maskz_mov_epi8(hi_hi, sixteen));
            const __m512i values = _mm512_inserti64x4(_mm512_castsi256_si512(lo_values), hi_values, 1);
            isum = chunk_dot(values, x + 64 * c, scale_pair16(sm[2 * c], sm[2 * c + 1]), isum);
        }
        const float dx = xd[b];
        acc = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, isum), _mm512_set1_ps(half_to_float(blk.d) * dx), acc);
        min_sum += half_to_float(blk.dmin) * dx * float(mins_dot(sm + 8, xs16 + b * 16));
    }
    return _mm512_reduce_add_ps(acc) - min_sum;
}

#endif

template <int K>
inline float row_dot_q6_k(const quant::BlockQ6_K* blocks, const std::int8_t* xq, const float* xd, const std::int32_t* xs16) {
    constexpr int nb = K / 256;
    const __m256i low = _mm256_set1_epi8(0x0F);
    const __m256i three = _mm256_set1_epi8(0x03);
    // int16 lane i takes the scale of group i / 8 (groups 0..3), or 4 + i / 8 (groups 4..7)
    const __m512i group_index_low = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i group_index_high = _mm512_add_epi16(group_index_low, _mm512_set1_epi16(4));
    __m512 acc = _mm512_setzero_ps();
    for (int b = 0; b < nb; ++b) {
        const quant::BlockQ6_K& blk = blocks[b];
        const std::int8_t* x = xq + b * 256;
        __m512i isum = _mm512_setzero_si512();
        for (int half = 0; half < 2; ++half) {
            const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * half));
            const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * half + 32));
            const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh + 32 * half));
            auto high_bits = [&](int shift) { return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), three), 4); };
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(ql0, low), high_bits(0));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(ql1, low), high_bits(2));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low), high_bits(4));
            const __m256i q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low), high_bits(6));
            // one scale per 16 elements; a vpdpwssd lane covers 2 elements, so each scale fills 8 lanes
            const __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk.scales + 8 * half))));
            const __m512i first = _mm512_permutexvar_epi16(group_index_low, sc16), second = _mm512_permutexvar_epi16(group_index_high, sc16);
            isum = chunk_dot(_mm512_inserti64x4(_mm512_castsi256_si512(q1), q2, 1), x + 128 * half, first, isum);
            isum = chunk_dot(_mm512_inserti64x4(_mm512_castsi256_si512(q3), q4, 1), x + 128 * half + 64, second, isum);
        }
        // the stored values are q + 32: subtract 32 * sum_g scale_g * sum(x in group g)
        const __m512i sc32 = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.scales)));
        const std::int32_t offset = _mm512_reduce_add_epi32(_mm512_mullo_epi32(sc32, _mm512_loadu_si512(xs16 + b * 16)));
        isum = _mm512_sub_epi32(isum, _mm512_maskz_set1_epi32(1, 32 * offset));
        acc = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, isum), _mm512_set1_ps(half_to_float(blk.d) * xd[b]), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

// True for the weight types matvec_quant handles with rows of K elements.
template <int K>
constexpr bool has_quant_kernel(DType type) {
    switch (type) {
        case DType::q8_0: case DType::q4_0: case DType::q5_0: return K % 64 == 0;
        case DType::q4_k: case DType::q5_k: case DType::q6_k: return K % 256 == 0;
        default: return false;
    }
}

// Rows [row_begin, row_end) of a quantized matrix against token t of `in` (prepared for `type`).
template <int K, class Input>
void matvec_quant(DType type, const std::byte* w, std::size_t stride, const Input& in, int t, float* y, int row_begin, int row_end) {
    auto rows = [&](auto row_dot) {
        for (int r = row_begin; r < row_end; ++r) {
            const std::byte* row = w + std::size_t(r) * stride;
            prefetch_row(row + 4 * stride, stride);
            y[r] = row_dot(row);
        }
    };
    const std::int8_t* xq = in.q8(t);
    if constexpr (K % 64 != 0) {
        return;  // no kernel for rows of an odd number of blocks (has_quant_kernel is false)
    } else {
    switch (type) {
        case DType::q8_0:
            return rows([&](const std::byte* row) {
                return row_dot_32<K, quant::BlockQ8_0, 0, dot_q8_0_pair>(reinterpret_cast<const quant::BlockQ8_0*>(row), xq, in.scales32(t), in.sums32(t));
            });
#if defined(__AVX512VBMI__)
        case DType::q4_0:
            return rows([&](const std::byte* row) {
                return row_dot_small_blocks<K>(reinterpret_cast<const quant::BlockQ4_0*>(row), xq, in.lane_scales32(t), in.lane_sums32(t));
            });
        case DType::q5_0:
            return rows([&](const std::byte* row) {
                return row_dot_small_blocks<K>(reinterpret_cast<const quant::BlockQ5_0*>(row), xq, in.lane_scales32(t), in.lane_sums32(t));
            });
#else
        case DType::q4_0:
            return rows([&](const std::byte* row) {
                return row_dot_32<K, quant::BlockQ4_0, 8, dot_q4_0_pair>(reinterpret_cast<const quant::BlockQ4_0*>(row), xq, in.scales32(t), in.sums32(t));
            });
        case DType::q5_0:
            return rows([&](const std::byte* row) {
                return row_dot_32<K, quant::BlockQ5_0, 16, dot_q5_0_pair>(reinterpret_cast<const quant::BlockQ5_0*>(row), xq, in.scales32(t), in.sums32(t));
            });
#endif
#if defined(__AVX512VBMI__)
        case DType::q4_k:
            if constexpr (K % 256 != 0) break;
            else return rows([&](const std::byte* row) { return row_dot_k4<K, false>(row, xq, in.scales256(t), in.sums16(t)); });
        case DType::q5_k:
            if constexpr (K % 256 != 0) break;
            else return rows([&](const std::byte* row) { return row_dot_k4<K, true>(row, xq, in.scales256(t), in.sums16(t)); });
#else
        case DType::q4_k:
            if constexpr (K % 256 != 0) break;
            else return rows([&](const std::byte* row) {
                return row_dot_q4_k<K>(reinterpret_cast<const quant::BlockQ4_K*>(row), xq, in.scales256(t), in.sums16(t));
            });
        case DType::q5_k:
            if constexpr (K % 256 != 0) break;
            else return rows([&](const std::byte* row) {
                return row_dot_q5_k<K>(reinterpret_cast<const quant::BlockQ5_K*>(row), xq, in.scales256(t), in.sums16(t));
            });
#endif
        case DType::q6_k:
            if constexpr (K % 256 != 0) break;
            else return rows([&](const std::byte* row) {
                return row_dot_q6_k<K>(reinterpret_cast<const quant::BlockQ6_K*>(row), xq, in.scales256(t), in.sums16(t));
            });
        default: break;
    }
    }
}

}  // namespace qwen3::detail::avx512

#endif
