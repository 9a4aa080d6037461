// qwen3/quant/encode.hpp - floats to a weight format, one row at a time.
//
// The formats whose encoding ggml fixes by a formula (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: a scale from the
// block's extreme value, then rounding) are computed exactly as ggml's reference quantizers compute
// them, operation for operation, so their bytes equal llama-quantize's. The K-quants (Q4_K, Q5_K,
// Q6_K) leave the choice of scales to the encoder; ours searches for the smallest squared error
// (kquants.hpp). F16 and BF16 round to nearest even, as ggml does.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../detail/simd.hpp"
#include "../error.hpp"
#include "../tensor.hpp"
#include "blocks.hpp"
#include "dequantize.hpp"
#include "kquants.hpp"

namespace qwen3::detail::quant {

// Returns x unchanged, but opaque to the optimizer, so a product passed through here is rounded to
// float before it enters a sum. GCC (-ffp-contract=fast, its default outside strict ISO mode) and
// Clang (within one expression) would otherwise fuse `x * id + 8.5f` into one FMA and skip the
// rounding of the product that ggml's reference quantizers (built without FMA) include.
inline float rounded(float x) {
#if defined(__GNUC__) && defined(__x86_64__)
    __asm__("" : "+x"(x));
#elif defined(__GNUC__) && defined(__aarch64__)
    __asm__("" : "+w"(x));
#elif defined(__GNUC__)
    __asm__("" : "+m"(x));
#endif
    return x;
}

// The largest magnitude of a block and the first value that has it (its sign chooses the scale's).
inline void block_peak(const float* x, int n, float& magnitude, float& value) {
    magnitude = 0;
    value = 0;
    for (int i = 0; i < n; ++i)
        if (magnitude < std::fabs(x[i])) {
            magnitude = std::fabs(x[i]);
            value = x[i];
        }
}

// The byte that ggml's C code stores when it converts a float to an 8-bit integer on x86: a
// truncating 32-bit conversion whose low byte is kept, where a value outside the int32 range (or
// NaN: a block of subnormals makes 1/d infinite) converts to INT_MIN, low byte 0. Computed without
// the undefined behaviour of converting such a float directly (found by UBSan on the golden rows).
inline std::uint8_t ggml_byte(float v) {
    if (!(std::fabs(v) < 2147483648.0f)) return 0;
    return std::uint8_t(std::uint32_t(std::int32_t(v)));
}

inline std::uint16_t half_scale(float d, const char* format) {
    const std::uint16_t h = simd::f32_to_f16(d);
    if (!std::isfinite(simd::f16_to_f32(h)))
        fail(ErrorCode::invalid_argument, format, ": a block's scale ", d,
                            " does not fit a half-precision float (the weights are too large for this format)");
    return h;
}

inline void encode_q8_0(const float* x, std::byte* out) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    BlockQ8_0 b;
    b.d = half_scale(d, "Q8_0");
    for (int i = 0; i < 32; ++i) b.qs[i] = std::int8_t(ggml_byte(std::round(x[i] * id)));  // half away from zero, as roundf
    std::memcpy(out, &b, sizeof b);
}

// Q4_0 / Q5_0: the peak value maps to -2^(bits-1); the others truncate (x / d + 2^(bits-1) + 0.5).
inline void encode_q4_0(const float* x, std::byte* out) {
    float amax, peak;
    block_peak(x, 32, amax, peak);
    const float d = peak / -8;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    BlockQ4_0 b;
    b.d = half_scale(d, "Q4_0");
    for (int i = 0; i < 16; ++i) {
        const int q0 = std::min(15, int(std::int8_t(ggml_byte(rounded(x[i] * id) + 8.5f))));
        const int q1 = std::min(15, int(std::int8_t(ggml_byte(rounded(x[i + 16] * id) + 8.5f))));
        b.qs[i] = std::uint8_t(q0 | q1 << 4);
    }
    std::memcpy(out, &b, sizeof b);
}

inline void encode_q5_0(const float* x, std::byte* out) {
    float amax, peak;
    block_peak(x, 32, amax, peak);
    const float d = peak / -16;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    BlockQ5_0 b;
    b.d = half_scale(d, "Q5_0");
    std::uint32_t high = 0;
    for (int i = 0; i < 16; ++i) {
        const int q0 = std::min(31, int(std::int8_t(ggml_byte(rounded(x[i] * id) + 16.5f))));
        const int q1 = std::min(31, int(std::int8_t(ggml_byte(rounded(x[i + 16] * id) + 16.5f))));
        b.qs[i] = std::uint8_t((q0 & 0xF) | (q1 & 0xF) << 4);
        high |= std::uint32_t(q0 >> 4 & 1) << i | std::uint32_t(q1 >> 4 & 1) << (i + 16);
    }
    std::memcpy(b.qh, &high, 4);
    std::memcpy(out, &b, sizeof b);
}

// Q4_1 / Q5_1: min and (max - min) / levels; truncate ((x - min) / d + 0.5).
inline void encode_q4_1(const float* x, std::byte* out) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < 32; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
    }
    const float d = (hi - lo) / 15;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    BlockQ4_1 b;
    b.d = half_scale(d, "Q4_1");
    b.m = half_scale(lo, "Q4_1");
    for (int i = 0; i < 16; ++i) {
        const int q0 = std::min(15, int(std::int8_t(ggml_byte(rounded((x[i] - lo) * id) + 0.5f))));
        const int q1 = std::min(15, int(std::int8_t(ggml_byte(rounded((x[i + 16] - lo) * id) + 0.5f))));
        b.qs[i] = std::uint8_t(q0 | q1 << 4);
    }
    std::memcpy(out, &b, sizeof b);
}

inline void encode_q5_1(const float* x, std::byte* out) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < 32; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
    }
    const float d = (hi - lo) / 31;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    BlockQ5_1 b;
    b.d = half_scale(d, "Q5_1");
    b.m = half_scale(lo, "Q5_1");
    std::uint32_t high = 0;
    for (int i = 0; i < 16; ++i) {
        const int q0 = ggml_byte(rounded((x[i] - lo) * id) + 0.5f);
        const int q1 = ggml_byte(rounded((x[i + 16] - lo) * id) + 0.5f);
        b.qs[i] = std::uint8_t((q0 & 0xF) | (q1 & 0xF) << 4);
        high |= std::uint32_t(q0 >> 4 & 1) << i | std::uint32_t(q1 >> 4 & 1) << (i + 16);
    }
    std::memcpy(b.qh, &high, 4);
    std::memcpy(out, &b, sizeof b);
}

// Whether quantize_row can write `type`: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K.
// (Q8_K is an activation format, made by the kernels themselves.)
inline bool quantize_supported(DType type) noexcept {
    switch (type) {
        case DType::f32: case DType::f16: case DType::bf16:
        case DType::q8_0: case DType::q4_0: case DType::q4_1: case DType::q5_0: case DType::q5_1:
        case DType::q4_k: case DType::q5_k: case DType::q6_k: return true;
        default: return false;
    }
}

// Encodes x[0 .. n) as `type` into out (row_bytes(type, n) bytes, any alignment).
// Deterministic: the same input gives the same bytes whatever the thread or call order.
// Throws Error(invalid_argument) when n is negative or not a multiple of the type's block size, when
// a block type is asked to hold a NaN or infinity, or when a block's scale overflows half precision;
// Error(unsupported) for a type quantize_supported rejects. On a throw, `out` may be partly written.
inline void quantize_row(DType type, const float* x, std::byte* out, std::int64_t n) {
    if (!quantize_supported(type))
        fail(ErrorCode::unsupported, "quantize_row: cannot encode type ", dtype_name(type));
    const DTypeInfo& info = dtype_info(type);
    if (n < 0 || n % info.block_elems != 0)
        fail(ErrorCode::invalid_argument, "quantize_row: ", n, " elements of ", info.name,
                            " are not whole blocks of ", info.block_elems);
    switch (type) {
        case DType::f32: std::memcpy(out, x, std::size_t(n) * 4); return;
        case DType::f16:
        case DType::bf16:
            for (std::int64_t i = 0; i < n; ++i) {
                const std::uint16_t h = type == DType::f16 ? simd::f32_to_f16(x[i]) : simd::f32_to_bf16(x[i]);
                std::memcpy(out + 2 * i, &h, 2);
            }
            return;
        default: break;
    }
    for (std::int64_t i = 0; i < n; ++i)
        if (!std::isfinite(x[i]))
            fail(ErrorCode::invalid_argument, "quantize_row: element ", i, " is ", x[i], "; ", info.name,
                                " holds finite values only");
    void (*encode)(const float*, std::byte*) = nullptr;
    switch (type) {
        case DType::q8_0: encode = encode_q8_0; break;
        case DType::q4_0: encode = encode_q4_0; break;
        case DType::q4_1: encode = encode_q4_1; break;
        case DType::q5_0: encode = encode_q5_0; break;
        case DType::q5_1: encode = encode_q5_1; break;
        case DType::q4_k: encode = encode_q4_k; break;
        case DType::q5_k: encode = encode_q5_k; break;
        case DType::q6_k: encode = encode_q6_k; break;
        default: break;
    }
    const std::int64_t blocks = n / info.block_elems;
    for (std::int64_t i = 0; i < blocks; ++i) encode(x + i * info.block_elems, out + i * info.block_bytes);
}

}  // namespace qwen3::detail::quant
