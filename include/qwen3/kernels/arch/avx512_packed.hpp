// qwen3/kernels/arch/avx512_packed.hpp - decode kernels over weights in the packed layout
// (kernels/packed_layout.hpp: groups of 16 rows interleaved block by block).
//
// The per-row kernels (avx512_quant.hpp) read ggml's blocks in place, but each row ends in a
// horizontal sum and each block's bytes must be moved into place before a vpdpbusd: on the AVX-512
// machine measured they reach about half of one core's memory bandwidth in decode. Here one vpdpbusd
// against four input bytes broadcast advances 16 rows at once, and a group's 16 outputs are the 16
// lanes of an accumulator (no horizontal sums).
#pragma once

#include "avx512_quant.hpp"

#if defined(QWEN3_HAVE_AVX512_VNNI)

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../../quant/blocks.hpp"
#include "../../tensor.hpp"
#include "../packed_layout.hpp"

namespace qwen3::detail::avx512 {

using packed::kPackRows;

namespace packed_blocks {

inline __m512i broadcast4(const std::int8_t* x) { return _mm512_set1_epi32(packed::four_bytes(x)); }

inline __m512 halves16(const std::byte* p) {  // 16 f16 values
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

inline __m512i load(const std::byte* p) { return _mm512_loadu_si512(p); }

// Doubling the distance measured no better here overall (Q8_0 with 2 threads slower).
inline void prefetch(const std::byte* p, int bytes) { packed::prefetch_stream<packed::kPrefetchDistance<2048>>(p, bytes); }

// Bits [first, first + 4) of each 32-bit lane of qh as bit 4 of the lane's four bytes (0 or 16):
// the fifth bits of four consecutive elements. The multiply sends bit k to bit 8k (k < 4).
inline __m512i fifth_bits(__m512i qh, int first) {
    const __m512i bits = _mm512_and_si512(_mm512_srli_epi32(qh, unsigned(first)), _mm512_set1_epi32(0x0F));
    const __m512i spread = _mm512_and_si512(_mm512_mullo_epi32(bits, _mm512_set1_epi32(0x00204081)), _mm512_set1_epi32(0x01010101));
    return _mm512_slli_epi32(spread, 4);
}

// 16 bytes (one per row) widened to 16 int32 lanes.
inline __m512i widen16(__m128i v) { return _mm512_cvtepu8_epi32(v); }
inline __m128i load16(const std::byte* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// One group's 16 dot products for T tokens at once (decode steps of different sequences, or T = 1):
// each packed block is loaded and unpacked once for all of them. A token's arithmetic does not
// depend on T (integer dot products are exact in any order, and its float accumulation is the same
// sequence), so a sequence's logits do not depend on the batch it is in. Inputs: the int8 values,
// per-block scales and sums of the int8 values (per 32 for Q8_0/Q4_0/Q5_0, per 16 for K-quants).
// Unpack fills w[8]: vectors of 4-byte groups, w[i] against the input bytes at x + offset(i).
struct UnpackQ8_0 {
    static constexpr int kBlockBytes = 16 * 34, kOffset = 128;
    static constexpr int offset(int i) { return 4 * i; }
    static void unpack(const std::byte* p, __m512i* w) {
        for (int j = 0; j < 8; ++j) w[j] = load(p + 32 + 64 * j);
    }
};
template <bool FifthBit>
struct UnpackNibbles {
    static constexpr int kBlockBytes = 16 * (FifthBit ? 22 : 18), kOffset = FifthBit ? 16 : 8;
    static constexpr int offset(int i) { return i < 4 ? 4 * i : 16 + 4 * (i - 4); }
    static void unpack(const std::byte* p, __m512i* w) {
        const __m512i low = _mm512_set1_epi8(0x0F);
        [[maybe_unused]] const __m512i qh = FifthBit ? load(p + 32) : _mm512_setzero_si512();
        const std::byte* q = p + (FifthBit ? 96 : 32);
        for (int j = 0; j < 4; ++j) {
            const __m512i v = load(q + 64 * j);
            w[j] = _mm512_and_si512(v, low);
            w[j + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
            if constexpr (FifthBit) {
                w[j] = _mm512_or_si512(w[j], fifth_bits(qh, 4 * j));
                w[j + 4] = _mm512_or_si512(w[j + 4], fifth_bits(qh, 16 + 4 * j));
            }
        }
    }
};

template <int K, int T, class Format, class Input>
inline void group_blocks32_tokens(const std::byte* p, const Input& in, int t0, __m512* out) {
    const std::int8_t* x[T];
    const float* dx[T];
    const std::int32_t* xs[T];
    for (int t = 0; t < T; ++t) x[t] = in.q8(t0 + t), dx[t] = in.scales32(t0 + t), xs[t] = in.sums32(t0 + t);
    // even blocks into acc0, odd into acc1 (two float chains), two blocks per iteration so
    // that the accumulators stay in registers
    __m512 acc0[T], acc1[T];
    for (int t = 0; t < T; ++t) acc0[t] = acc1[t] = _mm512_setzero_ps();
    auto block = [&](int b, __m512* acc) {
        prefetch(p, Format::kBlockBytes);
        __m512i w[8];
        Format::unpack(p, w);
        const __m512 weight_scales = halves16(p);
        for (int t = 0; t < T; ++t) {
            const std::int8_t* xb = x[t] + 32 * b;
            // the chain starts from the offset to take out: kOffset * (sum of the block's x)
            __m512i d0 = _mm512_set1_epi32(-Format::kOffset * xs[t][b]), d1 = _mm512_setzero_si512();
            for (int i = 0; i < 8; i += 2) {
                d0 = _mm512_dpbusd_epi32(d0, w[i], broadcast4(xb + Format::offset(i)));
                d1 = _mm512_dpbusd_epi32(d1, w[i + 1], broadcast4(xb + Format::offset(i + 1)));
            }
            const __m512i dot = _mm512_add_epi32(d0, d1);
            const __m512 scale = _mm512_mul_ps(weight_scales, _mm512_set1_ps(dx[t][b]));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[t]);
        }
        p += Format::kBlockBytes;
    };
    for (int b = 0; b + 1 < K / 32; b += 2) {
        block(b, acc0);
        block(b + 1, acc1);
    }
    if constexpr (K / 32 % 2) block(K / 32 - 1, acc0);
    for (int t = 0; t < T; ++t) out[t] = _mm512_add_ps(acc0[t], acc1[t]);
}

// Q4_K, and Q5_K (FifthBit: the fifth bit of sub-block j's values is bit j of the element's qh byte,
// moved to bit 4 of the value), for T tokens. Two float chains, over the scaled dot products and
// over the minimums, kept apart and each in block order. Two passes over
// the group: the dot products a sub-block of 32 at a time, its unpacked vectors shared by the T
// tokens; then the minimums, which read only the scales. The registers then hold T accumulators
// and T block sums, not four sets of T.
template <int K, int T, bool FifthBit, class Input>
inline void group_q4_k_tokens(const std::byte* p, const Input& in, int t0, __m512* out) {
    const __m512i low = _mm512_set1_epi8(0x0F);
    [[maybe_unused]] const __m512i one = _mm512_set1_epi8(0x01);
    const __m128i low6 = _mm_set1_epi8(0x3F), low4 = _mm_set1_epi8(0x0F), top2 = _mm_set1_epi8(0x03);
    const std::int8_t* x[T];
    const float* dx[T];
    const std::int32_t* xs16[T];
    for (int t = 0; t < T; ++t) x[t] = in.q8(t0 + t), dx[t] = in.scales256(t0 + t), xs16[t] = in.sums16(t0 + t);
    constexpr int kBlockBytes = 16 * (FifthBit ? 176 : 144);
    // sub-block j's 6-bit scale (Minimum: its minimum) of the 16 rows, widened to 32-bit lanes
    auto six_bits = [&](const std::byte* sc, int j, bool minimum) {
        auto s = [&](int i) { return load16(sc + 16 * i); };
        if (j < 4) return widen16(_mm_and_si128(s(minimum ? j + 4 : j), low6));
        if (!minimum)
            return widen16(_mm_or_si128(_mm_and_si128(s(j + 4), low4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(s(j - 4), 6), top2), 4)));
        return widen16(_mm_or_si128(_mm_and_si128(_mm_srli_epi16(s(j + 4), 4), low4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(s(j), 6), top2), 4)));
    };
    __m512 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    const std::byte* block = p;
    for (int b = 0; b < K / 256; ++b, block += kBlockBytes) {
        prefetch(block, kBlockBytes);
        const __m512 d = halves16(block);
        const std::byte* sc = block + 64;
        [[maybe_unused]] const std::byte* qh = sc + 192;
        const std::byte* q = sc + 192 + (FifthBit ? 512 : 0);
        __m512i isum[T];
        for (int t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512();
        for (int j = 0; j < 8; ++j) {  // sub-block j: chunk c = j / 2, low nibbles when j is even
            const int c = j / 2;
            __m512i v[8];
            for (int i = 0; i < 8; ++i) {
                const __m512i raw = load(q + 64 * (8 * c + i));
                v[i] = j % 2 ? _mm512_and_si512(_mm512_srli_epi16(raw, 4), low) : _mm512_and_si512(raw, low);
                if constexpr (FifthBit)
                    v[i] = _mm512_or_si512(v[i], _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(load(qh + 64 * i), j), one), 4));
            }
            const __m512i scale = six_bits(sc, j, false);
            for (int t = 0; t < T; ++t) {
                const std::int8_t* xb = x[t] + 256 * b + 32 * j;
                // two chains: with one token the wait on vpdpbusd latency would bind
                __m512i d0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v[0], broadcast4(xb));
                __m512i d1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v[1], broadcast4(xb + 4));
                for (int i = 2; i < 8; i += 2) {
                    d0 = _mm512_dpbusd_epi32(d0, v[i], broadcast4(xb + 4 * i));
                    d1 = _mm512_dpbusd_epi32(d1, v[i + 1], broadcast4(xb + 4 * i + 4));
                }
                const __m512i dot = _mm512_add_epi32(d0, d1);
                isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(dot, scale));
            }
        }
        for (int t = 0; t < T; ++t) acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(d, _mm512_set1_ps(dx[t][b])), acc[t]);
    }
    __m512 min_acc[T];
    for (int t = 0; t < T; ++t) min_acc[t] = _mm512_setzero_ps();
    block = p;
    for (int b = 0; b < K / 256; ++b, block += kBlockBytes) {
        const __m512 dmin = halves16(block + 32);
        const std::byte* sc = block + 64;
        __m512i msum[T];
        for (int t = 0; t < T; ++t) msum[t] = _mm512_setzero_si512();
        for (int j = 0; j < 8; ++j) {
            const __m512i m = six_bits(sc, j, true);
            for (int t = 0; t < T; ++t) {
                const std::int32_t* s16 = xs16[t] + 16 * b + 2 * j;  // sums of 16: two per sub-block of 32
                msum[t] = _mm512_add_epi32(msum[t], _mm512_mullo_epi32(m, _mm512_set1_epi32(s16[0] + s16[1])));
            }
        }
        for (int t = 0; t < T; ++t)
            min_acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(msum[t]), _mm512_mul_ps(dmin, _mm512_set1_ps(dx[t][b])), min_acc[t]);
    }
    for (int t = 0; t < T; ++t) out[t] = _mm512_sub_ps(acc[t], min_acc[t]);
}

// Q6_K: a sub-block of 16 elements at a time, its four unpacked vectors shared by the T tokens, so that
// the registers hold T partial dot products and T block sums, not three sets of T.
template <int K, int T, class Input>
inline void group_q6_k_tokens(const std::byte* p, const Input& in, int t0, __m512* out) {
    const __m512i low = _mm512_set1_epi8(0x0F), three = _mm512_set1_epi8(0x03);
    const std::int8_t* x[T];
    const float* dx[T];
    const std::int32_t* xs16[T];
    for (int t = 0; t < T; ++t) x[t] = in.q8(t0 + t), dx[t] = in.scales256(t0 + t), xs16[t] = in.sums16(t0 + t);
    __m512 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    constexpr int kBlockBytes = 16 * 210;
    for (int b = 0; b < K / 256; ++b, p += kBlockBytes) {
        prefetch(p, kBlockBytes);
        const __m512 d = halves16(p);
        const std::byte* sc = p + 32;
        const std::byte* ql = sc + 256;
        const std::byte* qh = ql + 32 * 64;
        __m512i isum[T];
        for (int t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512();
        for (int h = 0; h < 2; ++h)
            for (int quarter = 0; quarter < 4; ++quarter)
                for (int half = 0; half < 2; ++half) {
                    // elements 128h + 32 quarter + 16 half + [0, 16): sub-block 8h + 2 quarter + half
                    __m512i v[4];
                    for (int i = 0; i < 4; ++i) {
                        const int j = 4 * half + i;
                        const __m512i l = load(ql + 64 * (16 * h + 8 * (quarter & 1) + j));
                        const __m512i nib = quarter < 2 ? _mm512_and_si512(l, low) : _mm512_and_si512(_mm512_srli_epi16(l, 4), low);
                        const __m512i hb = _mm512_and_si512(_mm512_srli_epi16(load(qh + 64 * (8 * h + j)), 2 * quarter), three);
                        v[i] = _mm512_or_si512(nib, _mm512_slli_epi16(hb, 4));
                    }
                    const int sub = 8 * h + 2 * quarter + half;
                    const __m512i scale = _mm512_cvtepi8_epi32(load16(sc + 16 * sub));
                    for (int t = 0; t < T; ++t) {
                        const std::int8_t* xb = x[t] + 256 * b + 16 * sub;
                        // two chains (with one token the wait on vpdpbusd latency would bind), one
                        // starting from what the stored q + 32 adds: 32 * (sum of x over the sub-block)
                        __m512i d0 = _mm512_dpbusd_epi32(_mm512_set1_epi32(-32 * xs16[t][16 * b + sub]), v[0], broadcast4(xb));
                        __m512i d1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v[1], broadcast4(xb + 4));
                        d0 = _mm512_dpbusd_epi32(d0, v[2], broadcast4(xb + 8));
                        d1 = _mm512_dpbusd_epi32(d1, v[3], broadcast4(xb + 12));
                        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(_mm512_add_epi32(d0, d1), scale));
                    }
                }
        for (int t = 0; t < T; ++t) acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(d, _mm512_set1_ps(dx[t][b])), acc[t]);
    }
    for (int t = 0; t < T; ++t) out[t] = acc[t];
}

}  // namespace packed_blocks

// Calls fn(max_tokens, kernel) with the group kernel of `type` for rows of K elements,
// kernel(std::integral_constant<int, T>, group, first token, out) writing T tokens' 16 outputs, and
// the most tokens it takes at once: 8 for every format (the unpacking shared by more tokens; at 16
// the accumulators leave the registers). False when the type has no packed layout.
template <int K, class Input, class Fn>
bool with_group_kernel(DType type, const Input& in, Fn&& fn) {
    using namespace packed_blocks;
    using Eight = std::integral_constant<int, 8>;
    if constexpr (K % 32 == 0) {
        auto blocks32 = [&]<class Format>() {
            fn(Eight{}, [&](auto T, const std::byte* p, int t0, __m512* out) { group_blocks32_tokens<K, decltype(T)::value, Format>(p, in, t0, out); });
            return true;
        };
        switch (type) {
            case DType::q8_0: return blocks32.template operator()<UnpackQ8_0>();
            case DType::q4_0: return blocks32.template operator()<UnpackNibbles<false>>();
            case DType::q5_0: return blocks32.template operator()<UnpackNibbles<true>>();
            default: break;
        }
    }
    if constexpr (K % 256 == 0) {
        switch (type) {
            case DType::q4_k:
                fn(Eight{}, [&](auto T, const std::byte* p, int t0, __m512* out) { group_q4_k_tokens<K, decltype(T)::value, false>(p, in, t0, out); });
                return true;
            case DType::q5_k:
                fn(Eight{}, [&](auto T, const std::byte* p, int t0, __m512* out) { group_q4_k_tokens<K, decltype(T)::value, true>(p, in, t0, out); });
                return true;
            case DType::q6_k:
                fn(Eight{}, [&](auto T, const std::byte* p, int t0, __m512* out) { group_q6_k_tokens<K, decltype(T)::value>(p, in, t0, out); });
                return true;
            default: break;
        }
    }
    return false;
}

// Types with a packed layout, for rows of K elements.
template <int K>
constexpr bool packable(DType type) {
    switch (type) {
        case DType::q8_0: case DType::q4_0: case DType::q5_0: return K % 32 == 0;
        case DType::q4_k: case DType::q5_k: case DType::q6_k: return K % 256 == 0;
        default: return false;
    }
}

// Calls fn(group start, lanes, first row of the group) for the 16-row groups that rows
// [row_begin, row_end) touch, lanes masking the rows of the group inside the range.
template <class Fn>
void for_each_group(const std::byte* packed, std::size_t group_bytes, int row_begin, int row_end, Fn&& fn) {
    for (int g = row_begin / kPackRows; g * kPackRows < row_end; ++g) {
        const int first = std::max(row_begin - g * kPackRows, 0), last = std::min(row_end - g * kPackRows, kPackRows);
        fn(packed + std::size_t(g) * group_bytes, __mmask16(((1u << last) - 1) & ~((1u << first) - 1)), g * kPackRows);
    }
}

// Calls fn(std::integral_constant<int, N>) for the largest N of MaxT, MaxT / 2, ... 1 that is at most
// `left`, and returns N.
template <int MaxT, class Fn>
int run_largest_chunk(int left, Fn&& fn) {
    if constexpr (MaxT > 1)
        if (left < MaxT) return run_largest_chunk<MaxT / 2>(left, fn);
    fn(std::integral_constant<int, MaxT>{});
    return MaxT;
}

// y[r] = dot(W[r], x) for r in [row_begin, row_end), W packed by pack_groups, x token `token` of `in`
// (prepared for `type`: q8 blocks of 32 for Q8_0/Q4_0/Q5_0, of 256 for K-quants).
// Precondition: packable<K>(type).
template <int K, class Input>
void matvec_packed(DType type, const std::byte* packed, const Input& in, float* y, int row_begin, int row_end, int token = 0) {
    const std::size_t group_bytes = std::size_t(kPackRows) * row_bytes(type, K);
    with_group_kernel<K>(type, in, [&](auto, auto kernel) {
        for_each_group(packed, group_bytes, row_begin, row_end, [&](const std::byte* p, __mmask16 lanes, int row) {
            __m512 out[1];
            kernel(std::integral_constant<int, 1>{}, p, token, out);
            _mm512_mask_storeu_ps(y + row, lanes, out[0]);
        });
    });
}

// Y[t][r] = dot(W[r], token t of `in`) for every token of `in` (decode rows) and r in [row_begin,
// row_end), Y rows y_stride floats apart: each group read once for several tokens, every token's
// result bit for bit matvec_packed's. Precondition: packable<K>(type).
template <int K, class Input>
void matvec_packed_tokens(DType type, const std::byte* packed, const Input& in, float* y, std::size_t y_stride, int row_begin,
                          int row_end) {
    const std::size_t group_bytes = std::size_t(kPackRows) * row_bytes(type, K);
    // the tokens go MaxT at a time, the rest in chunks of MaxT / 2, MaxT / 4, ... 1 (fewer kernel
    // instances than one per count; a token's result does not depend on its chunk)
    with_group_kernel<K>(type, in, [&]<int MaxT>(std::integral_constant<int, MaxT>, auto kernel) {
        static_assert((MaxT & (MaxT - 1)) == 0, "chunks halve down to 1");
        for_each_group(packed, group_bytes, row_begin, row_end, [&](const std::byte* p, __mmask16 lanes, int row) {
            __m512 out[MaxT];
            for (int t0 = 0; t0 < in.tokens();) {
                const int n = run_largest_chunk<MaxT>(in.tokens() - t0, [&](auto n) { kernel(n, p, t0, out); });
                for (int t = 0; t < n; ++t) _mm512_mask_storeu_ps(y + std::size_t(t0 + t) * y_stride + row, lanes, out[t]);
                t0 += n;
            }
        });
    });
}

}  // namespace qwen3::detail::avx512

#endif
