// qwen3/kernels/norm.hpp - RMSNorm.
#pragma once

#include <cmath>

#include "../detail/simd.hpp"

namespace qwen3::detail {

// out = x / sqrt(mean(x^2) + eps) * weight, over N elements (out may alias x). As in the Qwen3
// reference, x is scaled first and the weight applied to the scaled value.
template <int N>
inline void rms_norm(const float* x, const float* weight, float eps, float* out) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes);
    static_assert(N % L == 0, "RMSNorm width must be a multiple of the SIMD width");
    fbatch s0(0.f), s1(0.f);
    int i = 0;
    for (; i + 2 * L <= N; i += 2 * L) {
        fbatch a = simd::load_f32(x + i), b = simd::load_f32(x + i + L);
        s0 = simd::fma(a, a, s0);
        s1 = simd::fma(b, b, s1);
    }
    for (; i < N; i += L) {
        fbatch a = simd::load_f32(x + i);
        s0 = simd::fma(a, a, s0);
    }
    const float mean = simd::sum(s0 + s1) / float(N);
    const fbatch scale(1.0f / std::sqrt(mean + eps));
    for (int j = 0; j < N; j += L) (simd::load_f32(x + j) * scale * simd::load_f32(weight + j)).store_unaligned(out + j);
}

}  // namespace qwen3::detail
