// qwen3/kernels/arch/avx2_quant.hpp - AVX2 kernels for quantized weights (CPUs without AVX-512 VNNI).
//
// The same scheme as avx512_quant.hpp with 256-bit integer dot products: the input is quantized
// once per matrix to int8 (Input's q8 forms), a weight block's values are unpacked to bytes and
// multiplied with vpmaddubsw (unsigned x signed bytes, summed in pairs to int16) and vpmaddwd
// (pairs to int32, by 1 or by a K-quant sub-block's integer scale). Unsigned operands: Q4_0/Q5_0/
// K-quant values as stored (0..15, 0..31, 0..63), their offsets and minimums applied through the
// input's block sums; Q8_0's signed values as |w| with w's sign moved onto x. No int16 sum can
// saturate: the largest pair is 2 * 128 * 127 (Q8_0).
//
// One kernel serves decode and prefill: rows_dot<NT> unpacks a weight block once and multiplies it
// with NT tokens, so prefill reads (and unpacks) each weight row once per 4 tokens, not per token.
#pragma once

#include "features.hpp"

#if defined(QWEN3_HAVE_AVX2_QUANT)

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../../quant/blocks.hpp"
#include "../../tensor.hpp"

namespace qwen3::detail::avx2 {

inline float half_to_float(std::uint16_t h) { return _cvtsh_ss(h); }

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// sum of u[i] * s[i] over each 4 bytes, as 8 int32 (u unsigned, s signed)
inline __m256i dot_bytes(__m256i u, __m256i s) { return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)); }

// the same, each 16-byte half weighted by an int16 scale (K-quant sub-blocks)
inline __m256i dot_bytes_scaled(__m256i u, __m256i s, __m256i scales16) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scales16);
}

// 32 values of a Q4_0/Q5_0 block in element order: low nibbles are elements 0..15, high 16..31.
inline __m256i nibbles_32(const std::uint8_t* qs) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
}

// Byte i = 0xFF where bit i of `bits` is set.
inline __m256i bits_to_bytes(std::uint32_t bits) {
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(int(bits)),
                                               _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
    const __m256i bit = _mm256_set1_epi64x(std::int64_t(0x8040201008040201));
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

// The token side of a kernel: int8 values, per-block scales, per-block (32) or per-16 sums.
struct TokenQ8 {
    const std::int8_t* q;
    const float* scales;
    const std::int32_t* sums;
};

// --- 32-element formats: dot(W[r], x) = sum_b d_w[b] * d_x[b] * (sum q_w * q_x - offset * sum q_x) ---

template <int K, int NT, class Block>
inline void rows_dot_32(const Block* blocks, const TokenQ8 (&x)[NT], float (&out)[NT]) {
    constexpr int nb = K / 32;
    constexpr bool is_q8 = std::is_same_v<Block, quant::BlockQ8_0>;
    constexpr int offset = std::is_same_v<Block, quant::BlockQ4_0> ? 8 : std::is_same_v<Block, quant::BlockQ5_0> ? 16 : 0;
    static_assert(nb % 2 == 0, "rows hold an even number of 32-element blocks");
    // two accumulators per token: one chain of dependent FMAs would limit decode to its latency
    __m256 acc[NT][2];
    float offset_sum[NT];
    for (int t = 0; t < NT; ++t) {
        acc[t][0] = acc[t][1] = _mm256_setzero_ps();
        offset_sum[t] = 0;
    }
    auto step = [&](int b, int a) {
        const Block& blk = blocks[b];
        const float dw = half_to_float(blk.d);
        __m256i u, w;
        if constexpr (is_q8) {
            w = load256(blk.qs);
            u = _mm256_sign_epi8(w, w);  // |w| (-128 stays 0x80, read as unsigned 128)
        } else if constexpr (offset == 8) {
            u = nibbles_32(blk.qs);
        } else {
            std::uint32_t high;
            std::memcpy(&high, blk.qh, 4);
            u = _mm256_or_si256(nibbles_32(blk.qs), _mm256_and_si256(bits_to_bytes(high), _mm256_set1_epi8(0x10)));
        }
        for (int t = 0; t < NT; ++t) {
            __m256i xv = load256(x[t].q + 32 * b);
            if constexpr (is_q8) xv = _mm256_sign_epi8(xv, w);
            const float s = dw * x[t].scales[b];
            acc[t][a] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_bytes(u, xv)), _mm256_set1_ps(s), acc[t][a]);
            if constexpr (offset != 0) offset_sum[t] += s * float(x[t].sums[b]);
        }
    };
    for (int b = 0; b < nb; b += 2) {
        step(b, 0);
        step(b + 1, 1);
    }
    for (int t = 0; t < NT; ++t) out[t] = hsum(_mm256_add_ps(acc[t][0], acc[t][1])) - float(offset) * offset_sum[t];
}

// --- K-quants: 256-element super-blocks, x in blocks of 256 with sums of each 16 ---

// The 6-bit scales (bytes 0..7) and minimums (bytes 8..15) of a Q4_K / Q5_K block, unpacked with
// word operations from the 12 packed bytes.
inline void k4_scales_mins(const std::uint8_t* packed, std::uint8_t out[16]) {
    std::uint32_t w[3];
    std::memcpy(w, packed, 12);
    const std::uint32_t low6 = 0x3F3F3F3F, low4 = 0x0F0F0F0F, top2 = 0x03030303;
    const std::uint32_t words[4] = {w[0] & low6, (w[2] & low4) | (((w[0] >> 6) & top2) << 4), w[1] & low6,
                                    ((w[2] >> 4) & low4) | (((w[1] >> 6) & top2) << 4)};
    std::memcpy(out, words, 16);
}

// sum over the 8 sub-blocks of 32 of min_j * (sum of x in sub-block j), from the sums of 16.
inline __m256i k4_mins_dot(const std::uint8_t* mins8, const std::int32_t* sums16) {
    const __m256i pairs = _mm256_hadd_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sums16)),
                                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sums16 + 8)));
    const __m256i sums32 = _mm256_permute4x64_epi64(pairs, 0xD8);  // sub-blocks 0..7 in order
    const __m256i mins = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mins8)));
    return _mm256_mullo_epi32(mins, sums32);
}

template <int K, int NT, bool FiveBit>
inline void rows_dot_k4(const std::byte* row, const TokenQ8 (&x)[NT], float (&out)[NT]) {
    using Block = std::conditional_t<FiveBit, quant::BlockQ5_K, quant::BlockQ4_K>;
    const Block* blocks = reinterpret_cast<const Block*>(row);
    constexpr int nb = K / 256;
    const __m256i low = _mm256_set1_epi8(0x0F);
    __m256 acc[NT], min_acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = min_acc[t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; ++b) {
        const Block& blk = blocks[b];
        alignas(16) std::uint8_t sm[16];
        k4_scales_mins(blk.scales, sm);
        __m256i isum[NT];
        for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
        [[maybe_unused]] __m256i qh;
        if constexpr (FiveBit) qh = load256(blk.qh);
        for (int c = 0; c < 4; ++c) {
            const __m256i q = load256(blk.qs + 32 * c);
            __m256i lo = _mm256_and_si256(q, low), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
            if constexpr (FiveBit) {
                // fifth bit: bit 2c of qh[l] for element l, bit 2c + 1 for element 32 + l
                const __m256i one = _mm256_set1_epi8(1);
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
            }
            const __m256i s_lo = _mm256_set1_epi16(sm[2 * c]), s_hi = _mm256_set1_epi16(sm[2 * c + 1]);
            for (int t = 0; t < NT; ++t) {
                const std::int8_t* xc = x[t].q + 256 * b + 64 * c;
                isum[t] = _mm256_add_epi32(isum[t], dot_bytes_scaled(lo, load256(xc), s_lo));
                isum[t] = _mm256_add_epi32(isum[t], dot_bytes_scaled(hi, load256(xc + 32), s_hi));
            }
        }
        const float d = half_to_float(blk.d), dmin = half_to_float(blk.dmin);
        for (int t = 0; t < NT; ++t) {
            const float dx = x[t].scales[b];
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * dx), acc[t]);
            min_acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(k4_mins_dot(sm + 8, x[t].sums + 16 * b)), _mm256_set1_ps(dmin * dx),
                                         min_acc[t]);
        }
    }
    for (int t = 0; t < NT; ++t) out[t] = hsum(_mm256_sub_ps(acc[t], min_acc[t]));
}

template <int K, int NT>
inline void rows_dot_q6_k(const quant::BlockQ6_K* blocks, const TokenQ8 (&x)[NT], float (&out)[NT]) {
    constexpr int nb = K / 256;
    const __m256i low = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(0x03);
    __m256 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; ++b) {
        const quant::BlockQ6_K& blk = blocks[b];
        __m256i isum[NT];
        for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
        for (int half = 0; half < 2; ++half) {
            const __m256i ql0 = load256(blk.ql + 64 * half), ql1 = load256(blk.ql + 64 * half + 32);
            const __m256i qh = load256(blk.qh + 32 * half);
            auto high_bits = [&](int shift) { return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), three), 4); };
            // elements 128 * half + 32 * i + l, for i = 0..3
            const __m256i q[4] = {_mm256_or_si256(_mm256_and_si256(ql0, low), high_bits(0)),
                                  _mm256_or_si256(_mm256_and_si256(ql1, low), high_bits(2)),
                                  _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low), high_bits(4)),
                                  _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low), high_bits(6))};
            for (int i = 0; i < 4; ++i) {
                // one signed scale per 16 elements: the two halves of the register
                const std::int8_t* sc = reinterpret_cast<const std::int8_t*>(blk.scales) + 8 * half + 2 * i;
                const __m256i scales = _mm256_set_m128i(_mm_set1_epi16(sc[1]), _mm_set1_epi16(sc[0]));
                for (int t = 0; t < NT; ++t)
                    isum[t] = _mm256_add_epi32(isum[t], dot_bytes_scaled(q[i], load256(x[t].q + 256 * b + 128 * half + 32 * i), scales));
            }
        }
        // the stored values are q + 32: subtract 32 * sum_g scale_g * sum(x in group g)
        const __m256i sc_lo = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk.scales)));
        const __m256i sc_hi = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk.scales + 8)));
        const float d = half_to_float(blk.d);
        for (int t = 0; t < NT; ++t) {
            const std::int32_t* s16 = x[t].sums + 16 * b;
            const __m256i offset = _mm256_add_epi32(_mm256_mullo_epi32(sc_lo, load256(s16)), _mm256_mullo_epi32(sc_hi, load256(s16 + 8)));
            const __m256i corrected = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(offset, 5));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(corrected), _mm256_set1_ps(d * x[t].scales[b]), acc[t]);
        }
    }
    for (int t = 0; t < NT; ++t) out[t] = hsum(acc[t]);
}

// True for the weight types these kernels handle with rows of K elements.
template <int K>
constexpr bool has_quant_kernel(DType type) {
    switch (type) {
        case DType::q8_0: case DType::q4_0: case DType::q5_0: return K % 64 == 0;
        case DType::q4_k: case DType::q5_k: case DType::q6_k: return K % 256 == 0;
        default: return false;
    }
}

// out[t] = dot(row, token t) for the NT tokens of x, for a row of `type`.
template <int K, int NT>
inline void rows_dot(DType type, const std::byte* row, const TokenQ8 (&x)[NT], float (&out)[NT]) {
    if constexpr (K % 64 == 0) {
        switch (type) {
            case DType::q8_0: return rows_dot_32<K, NT>(reinterpret_cast<const quant::BlockQ8_0*>(row), x, out);
            case DType::q4_0: return rows_dot_32<K, NT>(reinterpret_cast<const quant::BlockQ4_0*>(row), x, out);
            case DType::q5_0: return rows_dot_32<K, NT>(reinterpret_cast<const quant::BlockQ5_0*>(row), x, out);
            default: break;
        }
    }
    if constexpr (K % 256 == 0) {
        switch (type) {
            case DType::q4_k: return rows_dot_k4<K, NT, false>(row, x, out);
            case DType::q5_k: return rows_dot_k4<K, NT, true>(row, x, out);
            case DType::q6_k: return rows_dot_q6_k<K, NT>(reinterpret_cast<const quant::BlockQ6_K*>(row), x, out);
            default: break;
        }
    }
}

// Token t of `in` in the form `type` reads (Input's q8_32 form, or q8_256 for K-quants).
template <class Input>
inline TokenQ8 token_q8(DType type, const Input& in, int t) {
    const bool k_quant = type == DType::q4_k || type == DType::q5_k || type == DType::q6_k;
    return k_quant ? TokenQ8{in.q8(t), in.scales256(t), in.sums16(t)} : TokenQ8{in.q8(t), in.scales32(t), in.sums32(t)};
}

// Rows [row_begin, row_end) of a quantized matrix against token t of `in` (prepared for `type`).
template <int K, class Input>
void matvec_quant(DType type, const std::byte* w, std::size_t stride, const Input& in, int t, float* y, int row_begin, int row_end) {
    const TokenQ8 x[1] = {token_q8(type, in, t)};
    for (int r = row_begin; r < row_end; ++r) {
        const std::byte* row = w + std::size_t(r) * stride;
        // the row after next: hardware prefetchers lose track at the start of each row's odd-sized blocks
        for (std::size_t off = 0; off < stride; off += 64) _mm_prefetch(reinterpret_cast<const char*>(row + 2 * stride + off), _MM_HINT_T0);
        float out[1];
        rows_dot<K, 1>(type, row, x, out);
        y[r] = out[0];
    }
}

// Y[t][r] = dot(X[t], W[r]) for every token of `in`, r in [row_begin, row_end): each weight row is
// read once and multiplied with 4 tokens at a time.
template <int K, class Input>
void matmul_quant(DType type, const std::byte* w, std::size_t stride, const Input& in, float* y, std::size_t y_stride,
                  int row_begin, int row_end) {
    constexpr int NT = 4;
    const int tokens = in.tokens();
    for (int r = row_begin; r < row_end; ++r) {
        const std::byte* row = w + std::size_t(r) * stride;
        int t = 0;
        for (; t + NT <= tokens; t += NT) {
            const TokenQ8 x[NT] = {token_q8(type, in, t), token_q8(type, in, t + 1), token_q8(type, in, t + 2),
                                   token_q8(type, in, t + 3)};
            float out[NT];
            rows_dot<K, NT>(type, row, x, out);
            for (int i = 0; i < NT; ++i) y[std::size_t(t + i) * y_stride + r] = out[i];
        }
        for (; t < tokens; ++t) {
            const TokenQ8 x[1] = {token_q8(type, in, t)};
            float out[1];
            rows_dot<K, 1>(type, row, x, out);
            y[std::size_t(t) * y_stride + r] = out[0];
        }
    }
}

}  // namespace qwen3::detail::avx2

#endif
