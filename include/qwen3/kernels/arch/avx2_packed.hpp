// qwen3/kernels/arch/avx2_packed.hpp - AVX2 decode kernels over weights in the packed layout
// (kernels/packed_layout.hpp: groups of 16 rows interleaved block by block).
//
// The AVX2 reading of avx512_packed.hpp: each 64-byte vector of the layout is two 32-byte halves,
// rows 0-7 and rows 8-15, and a group's 16 outputs are the lanes of two accumulators. The 4-byte
// dot product per lane is vpmaddubsw (unsigned x signed bytes, pairs summed to int16) then
// vpmaddwd, by ones or, for K-quants, by the lane's sub-block scale, which folds the scale in
// without an int32 multiply (vpmulld is slow on many AVX2 cores). The unsigned operand is the value
// as stored (Q4/Q5 nibbles, K-quant 4/5/6-bit values); Q8_0, stored with its sign flipped for
// vpdpbusd, is turned back into |w| with w's sign moved onto x, because 255 x 127 would saturate
// the int16 pair sum. No int16 sum saturates: the largest pair is 2 x 128 x 127.
#pragma once

#include "avx2_quant.hpp"

#if defined(QWEN3_HAVE_AVX2_QUANT)

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../../tensor.hpp"
#include "../packed_layout.hpp"

namespace qwen3::detail::avx2 {

using packed::kPackRows;

namespace packed_blocks {

inline __m256i broadcast4(const std::int8_t* x) { return _mm256_set1_epi32(packed::four_bytes(x)); }

inline __m256 halves8(const std::byte* p) {  // 8 f16 values
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

inline __m256i load(const std::byte* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m128i load8(const std::byte* p) { return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)); }

// acc + the sum of u[i] * s[i] over each lane's 4 bytes (u unsigned, s signed).
inline __m256i dot4(__m256i acc, __m256i u, __m256i s) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}

// Pair products u * s summed into int16 lanes. Values of up to 6 bits add a few steps of these in
// int16 before one vpmaddwd widens them, half the multiplies of widening every step (both
// instructions use the multiplier ports; decode, which waits on memory, measured the same either
// way): a pair of 4-bit values reaches 2 x 15 x 127 = 3810, so eight steps stay below 2^15 (four for
// 5-bit values, two for Q6_K's 6-bit ones).
inline __m256i pairs16(__m256i u, __m256i s) { return _mm256_maddubs_epi16(u, s); }
inline __m256i add16(__m256i a, __m256i b) { return _mm256_add_epi16(a, b); }

// acc + the int16 sums widened to int32 lanes, each multiplied by the lane's int16 in
// `scale_pairs` (both halves of a lane hold it).
inline __m256i widen_scaled(__m256i acc, __m256i sums16, __m256i scale_pairs) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(sums16, scale_pairs));
}
inline __m256i widen(__m256i acc, __m256i sums16) { return widen_scaled(acc, sums16, _mm256_set1_epi16(1)); }

// 8 bytes (one per row) as int16 pairs, each lane's byte in both halves.
inline __m256i pairs_unsigned(__m128i bytes8) { return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(bytes8, bytes8)); }
inline __m256i pairs_signed(__m128i bytes8) { return _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(bytes8, bytes8)); }

// bytes8[lane] (unsigned, < 2^15) times a scalar int16 v, as int32 lanes: vpmaddwd with the upper
// half of every lane of the other operand zero.
inline __m256i times_scalar(__m128i bytes8, std::int32_t v) {
    return _mm256_madd_epi16(_mm256_cvtepu8_epi32(bytes8), _mm256_set1_epi32(v & 0xFFFF));
}
inline __m256i times_scalar_signed(__m128i bytes8, std::int32_t v) {
    return _mm256_madd_epi16(_mm256_cvtepi8_epi32(bytes8), _mm256_set1_epi32(v & 0xFFFF));
}

// Twice the AVX-512 kernels' distance: these spend about twice as long on each cache line.
inline void prefetch(const std::byte* p, int bytes) { packed::prefetch_stream<packed::kPrefetchDistance<4096>>(p, bytes); }

// A group's 16 results: rows 0-7 and rows 8-15.
struct Group16 {
    __m256 low, high;
};

// Bits [first, first + 4) of each 32-bit lane of qh as bit 4 of the lane's four bytes (0 or 16):
// the fifth bits of four consecutive elements. The multiply sends bit k to bit 8k (k < 4).
inline __m256i fifth_bits(__m256i qh, int first) {
    const __m256i bits = _mm256_and_si256(_mm256_srli_epi32(qh, first), _mm256_set1_epi32(0x0F));
    const __m256i spread = _mm256_and_si256(_mm256_mullo_epi32(bits, _mm256_set1_epi32(0x00204081)), _mm256_set1_epi32(0x01010101));
    return _mm256_slli_epi32(spread, 4);
}

// The integer products of half `h` (rows 8h..8h+7) of one packed block of 32 with x.
inline __m256i block_dot_q8_0(const std::byte* p, int h, const std::int8_t* x) {
    const std::byte* q = p + 32 + 32 * h;
    const __m256i flip = _mm256_set1_epi8(char(0x80));
    __m256i d0 = _mm256_setzero_si256(), d1 = d0;
    for (int j = 0; j < 8; j += 2) {
        const __m256i w0 = _mm256_xor_si256(load(q + 64 * j), flip), w1 = _mm256_xor_si256(load(q + 64 * j + 64), flip);
        d0 = dot4(d0, _mm256_sign_epi8(w0, w0), _mm256_sign_epi8(broadcast4(x + 4 * j), w0));
        d1 = dot4(d1, _mm256_sign_epi8(w1, w1), _mm256_sign_epi8(broadcast4(x + 4 * j + 4), w1));
    }
    return _mm256_add_epi32(d0, d1);
}

template <bool FifthBit>
inline __m256i block_dot_nibbles(const std::byte* p, int h, const std::int8_t* x) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    [[maybe_unused]] const __m256i qh = FifthBit ? load(p + 32 + 32 * h) : _mm256_setzero_si256();
    const std::byte* q = p + (FifthBit ? 96 : 32) + 32 * h;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0;  // int16 sums: 8 steps of 4-bit values, 4 of 5-bit
    for (int j = 0; j < 4; ++j) {
        const __m256i v = load(q + 64 * j);
        __m256i lo = _mm256_and_si256(v, low), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
        if constexpr (FifthBit) {
            lo = _mm256_or_si256(lo, fifth_bits(qh, 4 * j));
            hi = _mm256_or_si256(hi, fifth_bits(qh, 16 + 4 * j));
        }
        s0 = add16(s0, pairs16(lo, broadcast4(x + 4 * j)));
        if constexpr (FifthBit) s1 = add16(s1, pairs16(hi, broadcast4(x + 16 + 4 * j)));
        else s0 = add16(s0, pairs16(hi, broadcast4(x + 16 + 4 * j)));
    }
    return FifthBit ? widen(widen(_mm256_setzero_si256(), s0), s1) : widen(_mm256_setzero_si256(), s0);
}

// Formats with blocks of 32 and one f16 scale per row; Offset is what the unsigned operand carries
// (8 for Q4_0, 16 for Q5_0; Q8_0's is undone in block_dot_q8_0), taken out through the sum of x.
template <int K, int BlockBytes, int Offset, __m256i (*BlockDot)(const std::byte*, int, const std::int8_t*)>
inline Group16 group_blocks32(const std::byte* p, const std::int8_t* x, const float* dx, const std::int32_t* xs) {
    // two chains of FMAs per half, alternating blocks (named, not indexed by b & 1, so that they
    // stay in registers)
    __m256 low0 = _mm256_setzero_ps(), low1 = low0, high0 = low0, high1 = low0;
    auto block = [&](int b, __m256& low, __m256& high) {
        prefetch(p, BlockBytes);
        const __m256 xd = _mm256_set1_ps(dx[b]);
        __m256i dot_low = BlockDot(p, 0, x + 32 * b), dot_high = BlockDot(p, 1, x + 32 * b);
        if constexpr (Offset != 0) {
            const __m256i offset = _mm256_set1_epi32(Offset * xs[b]);
            dot_low = _mm256_sub_epi32(dot_low, offset);
            dot_high = _mm256_sub_epi32(dot_high, offset);
        }
        low = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_low), _mm256_mul_ps(halves8(p), xd), low);
        high = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_high), _mm256_mul_ps(halves8(p + 16), xd), high);
        p += BlockBytes;
    };
    int b = 0;
    for (; b + 2 <= K / 32; b += 2) {
        block(b, low0, high0);
        block(b + 1, low1, high1);
    }
    if (b < K / 32) block(b, low0, high0);
    return {_mm256_add_ps(low0, low1), _mm256_add_ps(high0, high1)};
}

// Q4_K, and Q5_K (FifthBit): the fifth bit of the values of chunk c (64 elements) is bit 2c (low
// nibbles) or 2c + 1 (high nibbles) of the element's qh byte, moved to bit 4 of the value.
template <int K, bool FifthBit = false>
inline Group16 group_q4_k(const std::byte* p, const std::int8_t* x, const float* dx, const std::int32_t* xs16) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    [[maybe_unused]] const __m256i one = _mm256_set1_epi8(0x01);
    const __m128i low6 = _mm_set1_epi8(0x3F), low4 = _mm_set1_epi8(0x0F), top2 = _mm_set1_epi8(0x03);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, min_acc[2] = {acc[0], acc[1]};
    constexpr int kBlockBytes = 16 * (FifthBit ? 176 : 144);
    for (int b = 0; b < K / 256; ++b, p += kBlockBytes) {
        prefetch(p, kBlockBytes);
        const std::byte* sc = p + 64;
        [[maybe_unused]] const std::byte* qh = sc + 192;
        const std::byte* q = sc + 192 + (FifthBit ? 512 : 0);
        const std::int8_t* xb = x + 256 * b;
        const std::int32_t* s16 = xs16 + 16 * b;
        const __m256 xd = _mm256_set1_ps(dx[b]);
        for (int h = 0; h < 2; ++h) {
            // the 6-bit scale and minimum of sub-block j, 8 rows in the low 8 bytes (quant::scale_min_k4)
            __m128i s[12];
            for (int i = 0; i < 12; ++i) s[i] = load8(sc + 16 * i + 8 * h);
            auto scale_of = [&](int j) {
                if (j < 4) return _mm_and_si128(s[j], low6);
                return _mm_or_si128(_mm_and_si128(s[j + 4], low4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(s[j - 4], 6), top2), 4));
            };
            auto min_of = [&](int j) {
                if (j < 4) return _mm_and_si128(s[j + 4], low6);
                return _mm_or_si128(_mm_and_si128(_mm_srli_epi16(s[j + 4], 4), low4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(s[j], 6), top2), 4));
            };
            __m256i isum = _mm256_setzero_si256(), msum = isum;
            for (int c = 0; c < 4; ++c) {
                const __m256i scale_lo = pairs_unsigned(scale_of(2 * c)), scale_hi = pairs_unsigned(scale_of(2 * c + 1));
                constexpr int kSteps = FifthBit ? 4 : 8;  // steps summed in int16 (pairs16)
                for (int j0 = 0; j0 < 8; j0 += kSteps) {
                    __m256i lo16 = _mm256_setzero_si256(), hi16 = lo16;
                    for (int j = j0; j < j0 + kSteps; ++j) {
                        const __m256i v = load(q + 64 * (8 * c + j) + 32 * h);
                        __m256i vlo = _mm256_and_si256(v, low), vhi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
                        if constexpr (FifthBit) {
                            const __m256i hb = load(qh + 64 * j + 32 * h);
                            vlo = _mm256_or_si256(vlo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c), one), 4));
                            vhi = _mm256_or_si256(vhi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c + 1), one), 4));
                        }
                        lo16 = add16(lo16, pairs16(vlo, broadcast4(xb + 64 * c + 4 * j)));
                        hi16 = add16(hi16, pairs16(vhi, broadcast4(xb + 64 * c + 32 + 4 * j)));
                    }
                    isum = widen_scaled(widen_scaled(isum, lo16, scale_lo), hi16, scale_hi);
                }
                // sums of 16: two per sub-block of 32
                msum = _mm256_add_epi32(msum, times_scalar(min_of(2 * c), s16[4 * c] + s16[4 * c + 1]));
                msum = _mm256_add_epi32(msum, times_scalar(min_of(2 * c + 1), s16[4 * c + 2] + s16[4 * c + 3]));
            }
            acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(halves8(p + 16 * h), xd), acc[h]);
            min_acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(halves8(p + 32 + 16 * h), xd), min_acc[h]);
        }
    }
    return {_mm256_sub_ps(acc[0], min_acc[0]), _mm256_sub_ps(acc[1], min_acc[1])};
}

template <int K>
inline Group16 group_q6_k(const std::byte* p, const std::int8_t* x, const float* dx, const std::int32_t* xs16) {
    const __m256i low = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(0x03);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    constexpr int kBlockBytes = 16 * 210;
    for (int b = 0; b < K / 256; ++b, p += kBlockBytes) {
        prefetch(p, kBlockBytes);
        const std::byte* sc = p + 32;
        const std::byte* ql = sc + 256;
        const std::byte* qh = ql + 32 * 64;
        const std::int8_t* xb = x + 256 * b;
        const __m256 xd = _mm256_set1_ps(dx[b]);
        for (int rh = 0; rh < 2; ++rh) {  // rows 8rh..8rh+7
            __m256i isum = _mm256_setzero_si256(), offset = isum;
            for (int h = 0; h < 2; ++h)
                for (int quarter = 0; quarter < 4; ++quarter) {
                    // elements 128h + 32 quarter + [0, 32): low/high nibbles of ql half (quarter & 1),
                    // bits 2 * quarter of qh; two sub-blocks of 16 (j < 4 and j >= 4)
                    const int sub = 8 * h + 2 * quarter;
                    const __m128i sc_first = load8(sc + 16 * sub + 8 * rh), sc_second = load8(sc + 16 * (sub + 1) + 8 * rh);
                    const __m256i scale_first = pairs_signed(sc_first), scale_second = pairs_signed(sc_second);
                    for (int j = 0; j < 8; j += 2) {  // two steps of 6-bit values summed in int16
                        __m256i sum16 = _mm256_setzero_si256();
                        for (int i = j; i < j + 2; ++i) {
                            const __m256i l = load(ql + 64 * (16 * h + 8 * (quarter & 1) + i) + 32 * rh);
                            const __m256i nib = quarter < 2 ? _mm256_and_si256(l, low) : _mm256_and_si256(_mm256_srli_epi16(l, 4), low);
                            const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(load(qh + 64 * (8 * h + i) + 32 * rh), 2 * quarter), three);
                            const __m256i v = _mm256_or_si256(nib, _mm256_slli_epi16(hb, 4));
                            sum16 = add16(sum16, pairs16(v, broadcast4(xb + 128 * h + 32 * quarter + 4 * i)));
                        }
                        isum = widen_scaled(isum, sum16, j < 4 ? scale_first : scale_second);
                    }
                    // stored values are q + 32: 32 * scale * (sum of x over the sub-block) comes back out
                    offset = _mm256_add_epi32(offset, times_scalar_signed(sc_first, xs16[16 * b + sub]));
                    offset = _mm256_add_epi32(offset, times_scalar_signed(sc_second, xs16[16 * b + sub + 1]));
                }
            const __m256i corrected = _mm256_sub_epi32(isum, _mm256_slli_epi32(offset, 5));
            acc[rh] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(corrected), _mm256_mul_ps(halves8(p + 16 * rh), xd), acc[rh]);
        }
    }
    return {acc[0], acc[1]};
}

}  // namespace packed_blocks

// The group kernel of a type for rows of K elements; null when the type has no packed layout.
using GroupDot = packed_blocks::Group16 (*)(const std::byte*, const std::int8_t*, const float*, const std::int32_t*);

template <int K>
constexpr GroupDot group_kernel(DType type) {
    using namespace packed_blocks;
    if constexpr (K % 32 == 0) {
        switch (type) {
            case DType::q8_0: return group_blocks32<K, 16 * 34, 0, block_dot_q8_0>;
            case DType::q4_0: return group_blocks32<K, 16 * 18, 8, block_dot_nibbles<false>>;
            case DType::q5_0: return group_blocks32<K, 16 * 22, 16, block_dot_nibbles<true>>;
            default: break;
        }
    }
    if constexpr (K % 256 == 0) {
        switch (type) {
            case DType::q4_k: return group_q4_k<K>;
            case DType::q5_k: return group_q4_k<K, true>;
            case DType::q6_k: return group_q6_k<K>;
            default: break;
        }
    }
    return nullptr;
}

// Types with a packed layout and an AVX2 kernel for it, for rows of K elements.
template <int K>
constexpr bool packable(DType type) {
    return packed::has_layout<K>(type) && group_kernel<K>(type) != nullptr;
}

// y[r] = dot(W[r], x) for r in [row_begin, row_end), W packed by packed::pack_groups, x token 0 of
// `in` (prepared for `type`: q8 blocks of 32 for Q8_0/Q4_0/Q5_0, of 256 for K-quants).
// Precondition: packable<K>(type).
template <int K, class Input>
void matvec_packed(DType type, const std::byte* w, const Input& in, float* y, int row_begin, int row_end, int token = 0) {
    const GroupDot group_dot = group_kernel<K>(type);
    const TokenQ8 x = token_q8(type, in, token);
    const std::size_t group_bytes = std::size_t(kPackRows) * row_bytes(type, K);
    for (int g = row_begin / kPackRows; g * kPackRows < row_end; ++g) {
        const packed_blocks::Group16 v = group_dot(w + std::size_t(g) * group_bytes, x.q, x.scales, x.sums);
        const int first = std::max(row_begin - g * kPackRows, 0), last = std::min(row_end - g * kPackRows, kPackRows);
        float* out = y + g * kPackRows;
        if (first == 0 && last == kPackRows) {
            _mm256_storeu_ps(out, v.low);
            _mm256_storeu_ps(out + 8, v.high);
        } else {  // a range that starts or ends inside the group: write its rows only
            alignas(32) float all[kPackRows];
            _mm256_store_ps(all, v.low);
            _mm256_store_ps(all + 8, v.high);
            std::copy(all + first, all + last, out + first);
        }
    }
}

}  // namespace qwen3::detail::avx2

#endif
