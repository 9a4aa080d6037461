// qwen3/quant/dequantize.hpp - the reference meaning of every weight format: blocks to floats.
//
// Scalar and exact: each element is computed with the float operations, in the order, that ggml's
// definition of the format uses (ggml-quants.c dequantize_row_*; gguf-py's quants.py computes the
// same). The order matters for the last bit where a product rounds: Q6_K is (d * scale) * q, not
// d * (scale * q). Products of a half-precision scale (11 significant bits) and the small integers
// of Q4_1/Q5_1/Q4_K/Q5_K (at most 6 + 5 bits) are exact in float, so there a compiler that fuses the
// following add into an FMA cannot change the result. The fast kernels are checked against this;
// tests check this against golden blocks made by gguf-py.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../detail/simd.hpp"
#include "../error.hpp"
#include "../tensor.hpp"
#include "blocks.hpp"

namespace qwen3::detail::quant {

template <class Block>
inline Block load_block(const std::byte* p) {
    Block b;
    std::memcpy(&b, p, sizeof b);  // rows in a mapped file are only 2-byte aligned, if that
    return b;
}

inline float half(std::uint16_t h) { return simd::f16_to_f32(h); }

// The 5-bit value of element i (0..31) of a Q5_0 / Q5_1 block.
inline int q5_value(const std::uint8_t* qs, const std::uint8_t* qh, int i) {
    std::uint32_t high;
    std::memcpy(&high, qh, 4);
    const int low = i < 16 ? (qs[i] & 0xF) : (qs[i - 16] >> 4);
    return low | int((high >> i) & 1) << 4;
}

inline void dequantize_q8_0(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ8_0>(p);
    const float d = half(b.d);
    for (int i = 0; i < 32; ++i) y[i] = float(b.qs[i]) * d;
}

inline void dequantize_q4_0(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ4_0>(p);
    const float d = half(b.d);
    for (int i = 0; i < 16; ++i) {
        y[i] = float((b.qs[i] & 0xF) - 8) * d;
        y[i + 16] = float((b.qs[i] >> 4) - 8) * d;
    }
}

inline void dequantize_q4_1(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ4_1>(p);
    const float d = half(b.d), m = half(b.m);
    for (int i = 0; i < 16; ++i) {
        y[i] = float(b.qs[i] & 0xF) * d + m;
        y[i + 16] = float(b.qs[i] >> 4) * d + m;
    }
}

inline void dequantize_q5_0(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ5_0>(p);
    const float d = half(b.d);
    for (int i = 0; i < 32; ++i) y[i] = float(q5_value(b.qs, b.qh, i) - 16) * d;
}

inline void dequantize_q5_1(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ5_1>(p);
    const float d = half(b.d), m = half(b.m);
    for (int i = 0; i < 32; ++i) y[i] = float(q5_value(b.qs, b.qh, i)) * d + m;
}

// Q4_K and Q5_K: sub-block j (32 elements) is (d * scale_j) * q - (dmin * min_j). Chunk c of 64
// elements takes the low nibbles of qs[32c .. 32c+31] for its first 32 and the high nibbles for
// the rest; Q5_K's fifth bit of element l of those halves is bit 2c / 2c+1 of qh[l].
inline void dequantize_q4_k(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ4_K>(p);
    const float d = half(b.d), dmin = half(b.dmin);
    for (int j = 0; j < 8; ++j) {
        std::uint8_t sc, m;
        scale_min_k4(j, b.scales, sc, m);
        const float dl = d * float(sc), ml = dmin * float(m);
        const std::uint8_t* q = b.qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        for (int l = 0; l < 32; ++l) y[32 * j + l] = dl * float((q[l] >> shift) & 0xF) - ml;
    }
}

inline void dequantize_q5_k(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ5_K>(p);
    const float d = half(b.d), dmin = half(b.dmin);
    for (int j = 0; j < 8; ++j) {
        std::uint8_t sc, m;
        scale_min_k4(j, b.scales, sc, m);
        const float dl = d * float(sc), ml = dmin * float(m);
        const std::uint8_t* q = b.qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        for (int l = 0; l < 32; ++l) {
            const int value = ((q[l] >> shift) & 0xF) | ((b.qh[l] >> j) & 1) << 4;
            y[32 * j + l] = dl * float(value) - ml;
        }
    }
}

// Q6_K: group g (16 elements) is (d * scales_g) * (q - 32). Each half of 128 elements has 64 bytes
// of ql and 32 of qh: element l + 32k (l < 32, k < 4) takes the low (k even) or high (k odd) nibble
// of ql[l + 32 * (k % 2)] and bits 2k, 2k+1 of qh[l].
inline void dequantize_q6_k(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ6_K>(p);
    const float d = half(b.d);
    for (int half_index = 0; half_index < 2; ++half_index) {
        const std::uint8_t* ql = b.ql + 64 * half_index;
        const std::uint8_t* qh = b.qh + 32 * half_index;
        const std::int8_t* sc = b.scales + 8 * half_index;
        float* out = y + 128 * half_index;
        for (int k = 0; k < 4; ++k)
            for (int l = 0; l < 32; ++l) {
                const int low = (ql[l + 32 * (k % 2)] >> (4 * (k / 2))) & 0xF;
                const int q = (low | ((qh[l] >> (2 * k)) & 3) << 4) - 32;
                out[32 * k + l] = d * float(sc[2 * k + l / 16]) * float(q);
            }
    }
}

inline void dequantize_q8_k(const std::byte* p, float* y) {
    const auto b = load_block<BlockQ8_K>(p);
    for (int i = 0; i < 256; ++i) y[i] = b.d * float(b.qs[i]);
}

// Whether dequantize_row knows `type`: F32, F16, BF16 and every block type of blocks.hpp.
inline bool dequantize_supported(DType type) noexcept {
    switch (type) {
        case DType::f32: case DType::f16: case DType::bf16:
        case DType::q8_0: case DType::q4_0: case DType::q4_1: case DType::q5_0: case DType::q5_1:
        case DType::q4_k: case DType::q5_k: case DType::q6_k: case DType::q8_k: return true;
        default: return false;
    }
}

// Decodes the first `n` elements of a row of `type` at `row` into out[0 .. n).
// Preconditions: `row` holds n / block_elems whole blocks (any alignment), `out` has room for n.
// Throws Error(invalid_argument) when n is negative or not a multiple of the type's block size,
// Error(unsupported) for a type without a definition here (dequantize_supported).
inline void dequantize_row(DType type, const std::byte* row, float* out, std::int64_t n) {
    if (!dequantize_supported(type))
        fail(ErrorCode::unsupported, "dequantize_row: no reference dequantization for type ", dtype_name(type));
    const DTypeInfo& info = dtype_info(type);
    if (n < 0 || n % info.block_elems != 0)
        fail(ErrorCode::invalid_argument, "dequantize_row: ", n, " elements of ", info.name,
                            " are not whole blocks of ", info.block_elems);
    const std::int64_t blocks = n / info.block_elems;
    void (*block_fn)(const std::byte*, float*) = nullptr;
    switch (type) {
        case DType::f32: std::memcpy(out, row, std::size_t(n) * 4); return;
        case DType::f16:
        case DType::bf16:
            for (std::int64_t i = 0; i < n; ++i) {
                std::uint16_t h;
                std::memcpy(&h, row + 2 * i, 2);
                out[i] = type == DType::f16 ? simd::f16_to_f32(h) : simd::bf16_to_f32(h);
            }
            return;
        case DType::q8_0: block_fn = dequantize_q8_0; break;
        case DType::q4_0: block_fn = dequantize_q4_0; break;
        case DType::q4_1: block_fn = dequantize_q4_1; break;
        case DType::q5_0: block_fn = dequantize_q5_0; break;
        case DType::q5_1: block_fn = dequantize_q5_1; break;
        case DType::q4_k: block_fn = dequantize_q4_k; break;
        case DType::q5_k: block_fn = dequantize_q5_k; break;
        case DType::q6_k: block_fn = dequantize_q6_k; break;
        case DType::q8_k: block_fn = dequantize_q8_k; break;
        default: break;
    }
    for (std::int64_t i = 0; i < blocks; ++i) block_fn(row + i * info.block_bytes, out + i * info.block_elems);
}

}  // namespace qwen3::detail::quant
