// qwen3/kernels/activation.hpp - the SwiGLU gate and elementwise helpers.
#pragma once

#include "../detail/simd.hpp"

namespace qwen3::detail {

// gate[i] = silu(gate[i]) * up[i] = gate / (1 + exp(-gate)) * up, over N elements, in place.
template <int N>
inline void swiglu(float* gate, const float* up) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes);
    static_assert(N % L == 0, "FFN width must be a multiple of the SIMD width");
    const fbatch one(1.f);
    for (int i = 0; i < N; i += L) {
        fbatch g = simd::load_f32(gate + i);
        fbatch silu = g / (one + xsimd::exp(-g));
        (silu * simd::load_f32(up + i)).store_unaligned(gate + i);
    }
}

// x[i] += y[i] over N elements (the residual connection).
template <int N>
inline void add_in_place(float* x, const float* y) {
    constexpr int L = int(simd::lanes);
    static_assert(N % L == 0, "width must be a multiple of the SIMD width");
    for (int i = 0; i < N; i += L) (simd::load_f32(x + i) + simd::load_f32(y + i)).store_unaligned(x + i);
}

}  // namespace qwen3::detail
