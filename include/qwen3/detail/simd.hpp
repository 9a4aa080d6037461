// qwen3/detail/simd.hpp - the SIMD vocabulary every kernel uses.
//
// Arithmetic goes through xsimd. Where xsimd 8.1 lacks an operation (widening bf16/f16 loads, a fused
// multiply-add on AVX-512, which it emulates with a multiply and an add), a short intrinsics path is
// used for that one operation, with a portable scalar/xsimd fallback beside it.
//
// The instruction set is chosen when the program is compiled: xsimd's best architecture for the
// compiler flags (-march=native builds AVX-512 code on a CPU that has it). Define QWEN3_SIMD_ARCH to
// an xsimd architecture type (e.g. xsimd::avx2) to pick another.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <xsimd/xsimd.hpp>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace qwen3::detail::simd {

#ifdef QWEN3_SIMD_ARCH
using arch = QWEN3_SIMD_ARCH;
#else
using arch = xsimd::default_arch;
#endif

using fbatch = xsimd::batch<float, arch>;
inline constexpr std::size_t lanes = fbatch::size;

inline constexpr bool is_avx512 = std::is_base_of_v<xsimd::avx512f, arch>;
inline constexpr bool is_avx2 = std::is_base_of_v<xsimd::avx2, arch>;

// a * b + c, fused (one rounding) where the hardware has it.
template <class A = arch, std::size_t N = xsimd::batch<float, A>::size>
inline xsimd::batch<float, A> fma(xsimd::batch<float, A> a, xsimd::batch<float, A> b, xsimd::batch<float, A> c) {
#if defined(__AVX512F__)
    if constexpr (N == 16) return _mm512_fmadd_ps(a, b, c);
#endif
    return xsimd::fma(a, b, c);
}

inline float sum(fbatch v) { return xsimd::hadd(v); }

// The largest lane (xsimd 8 has no reduction for it). NaN lanes are skipped where the hardware max
// does so; callers pass scores, which are finite or -inf.
inline float max_lane(fbatch v) {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) return _mm512_reduce_max_ps(v);
#endif
    alignas(64) float tmp[lanes];
    v.store_aligned(tmp);
    float m = tmp[0];
    for (std::size_t i = 1; i < lanes; ++i) m = std::max(m, tmp[i]);
    return m;
}

// ---- scalar conversions (exact; round-to-nearest-even where narrowing) ----

inline float bf16_to_f32(std::uint16_t h) {
    std::uint32_t bits = std::uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

inline std::uint16_t f32_to_bf16(float f) {
    std::uint32_t bits;
    std::memcpy(&bits, &f, 4);
    if ((bits & 0x7FFFFFFF) > 0x7F800000) return std::uint16_t((bits >> 16) | 0x40);  // quiet NaN
    bits += 0x7FFF + ((bits >> 16) & 1);
    return std::uint16_t(bits >> 16);
}

inline float f16_to_f32(std::uint16_t h) {
    std::uint32_t sign = std::uint32_t(h & 0x8000) << 16;
    std::uint32_t exp = (h >> 10) & 0x1F;
    std::uint32_t mant = h & 0x3FF;
    std::uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalize
            int e = -1;
            do {
                ++e;
                mant <<= 1;
            } while ((mant & 0x400) == 0);
            bits = sign | std::uint32_t(127 - 15 - e) << 23 | (mant & 0x3FF) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000 | mant << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | mant << 13;
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

inline std::uint16_t f32_to_f16(float f) {
#if defined(__F16C__)
    return std::uint16_t(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
#else
    std::uint32_t x;
    std::memcpy(&x, &f, 4);
    const std::uint32_t sign = (x >> 16) & 0x8000;
    x &= 0x7FFFFFFF;
    if (x >= 0x7F800000) return std::uint16_t(sign | (x > 0x7F800000 ? 0x7E00 : 0x7C00));  // NaN, inf
    if (x >= 0x477FF000) return std::uint16_t(sign | 0x7C00);  // rounds to infinity (>= 65520)
    if (x >= 0x38800000) {                                      // normal in f16 (>= 2^-14)
        std::uint32_t r = x - (112u << 23);                     // rebias the exponent 127 -> 15
        r += 0xFFF + ((r >> 13) & 1);                           // round to nearest even on 10 bits
        return std::uint16_t(sign | (r >> 13));
    }
    if (x < 0x33000000) return std::uint16_t(sign);  // below half the smallest subnormal: zero
    const std::uint32_t e = x >> 23, m = (x & 0x7FFFFF) | 0x800000;
    const std::uint32_t shift = 126 - e;  // subnormal unit 2^-24
    std::uint32_t r = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (r & 1))) ++r;
    return std::uint16_t(sign | r);
#endif
}

// ---- widening loads: `lanes` elements of a weight row as f32 ----

inline fbatch load_f32(const float* p) { return fbatch::load_unaligned(p); }

// (Templates only so that `if constexpr` discards the paths of the other register widths.)
template <class A = arch, std::size_t N = xsimd::batch<float, A>::size>
inline xsimd::batch<float, A> load_bf16(const std::uint16_t* p) {
#if defined(__AVX512F__)
    if constexpr (N == 16) {
        __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        // maskz forms: GCC 12 warns falsely about the undefined source operand of the plain forms
        return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16));
    }
#endif
#if defined(__AVX2__)
    if constexpr (N == 8) {
        __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
#endif
    alignas(64) float tmp[N];
    for (std::size_t i = 0; i < N; ++i) tmp[i] = bf16_to_f32(p[i]);
    return xsimd::batch<float, A>::load_aligned(tmp);
}

template <class A = arch, std::size_t N = xsimd::batch<float, A>::size>
inline xsimd::batch<float, A> load_f16(const std::uint16_t* p) {
#if defined(__AVX512F__)
    if constexpr (N == 16) return _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
#endif
#if defined(__F16C__) && defined(__AVX__)
    if constexpr (N == 8) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
#endif
    alignas(64) float tmp[N];
    for (std::size_t i = 0; i < N; ++i) tmp[i] = f16_to_f32(p[i]);
    return xsimd::batch<float, A>::load_aligned(tmp);
}

// `lanes` int8 values widened to f32.
template <class A = arch, std::size_t N = xsimd::batch<float, A>::size>
inline xsimd::batch<float, A> load_i8(const std::int8_t* p) {
#if defined(__AVX512F__)
    if constexpr (N == 16) return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#endif
#if defined(__AVX2__)
    if constexpr (N == 8) return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
#endif
    alignas(64) float tmp[N];
    for (std::size_t i = 0; i < N; ++i) tmp[i] = float(p[i]);
    return xsimd::batch<float, A>::load_aligned(tmp);
}

}  // namespace qwen3::detail::simd
