// qwen3/kv_types.hpp - element types of the KV cache: how keys and values are stored and read back.
//
//     qwen3::Session<qwen3::Qwen3_4B, qwen3::KVF16> session(model);   // KVBF16 unless you say so
//
// A KV element type fixes the bytes of one key block (16 positions of one head) and one value row
// (one position of one head), how f32 keys and values are written into them, and how attention reads
// them back as f32 vectors. Where those blocks live is the arena's job (kv_arena.hpp); the arithmetic
// over them is the attention kernel's (kernels/attention.hpp).
//
// Keys are stored transposed in blocks of 16 positions (for each element of the head, the 16
// positions side by side), so attention computes 16 scores with one multiply-add per element and no
// horizontal sums; values are rows, one per position, which attention scales and adds.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "detail/simd.hpp"

namespace qwen3 {

// Positions per key block.
inline constexpr int kKeyBlock = 16;

// Each element type provides, for a head of D elements:
//   key_block_bytes<D> / value_row_bytes<D>   sizes of a key block and a value row
//   store_key<D>(block, lane, k) / store_value<D>(row, v)   write position `lane` of a block, a row
//   key_column<D>(block, d, lane)  element d of the block's positions [lane, lane + simd lanes) as f32
//   value<D>(row, d)               elements [d, d + simd lanes) of a value row as f32

// Exact: what the comparisons with llama.cpp's F32 cache use.
struct KVF32 {
    static constexpr const char* name = "F32";
    template <int D>
    static constexpr std::size_t key_block_bytes = std::size_t(D) * kKeyBlock * 4;
    template <int D>
    static constexpr std::size_t value_row_bytes = std::size_t(D) * 4;
    template <int D>
    static void store_key(std::byte* block, int lane, const float* k) {
        float* b = reinterpret_cast<float*>(block);
        for (int d = 0; d < D; ++d) b[d * kKeyBlock + lane] = k[d];
    }
    template <int D>
    static void store_value(std::byte* row, const float* v) { std::memcpy(row, v, std::size_t(D) * 4); }
    template <int D>
    static detail::simd::fbatch key_column(const std::byte* block, int d, int lane) {
        return detail::simd::load_f32(reinterpret_cast<const float*>(block) + d * kKeyBlock + lane);
    }
    template <int D>
    static detail::simd::fbatch value(const std::byte* row, int d) {
        return detail::simd::load_f32(reinterpret_cast<const float*>(row) + d);
    }
};

namespace detail {
// The two 16-bit float formats: rounding from f32 (to nearest even) and widening loads.
struct Bf16Format {
    static constexpr const char* name = "BF16";
    static std::uint16_t round(float f) { return simd::f32_to_bf16(f); }
    static simd::fbatch load(const std::uint16_t* p) { return simd::load_bf16(p); }
};
struct F16Format {
    static constexpr const char* name = "F16";
    static std::uint16_t round(float f) { return simd::f32_to_f16(f); }
    static simd::fbatch load(const std::uint16_t* p) { return simd::load_f16(p); }
};
}  // namespace detail

// Half the memory of F32, each element rounded once to a 16-bit float format.
template <class Format>
struct KVHalf {
    static constexpr const char* name = Format::name;
    template <int D>
    static constexpr std::size_t key_block_bytes = std::size_t(D) * kKeyBlock * 2;
    template <int D>
    static constexpr std::size_t value_row_bytes = std::size_t(D) * 2;
    template <int D>
    static void store_key(std::byte* block, int lane, const float* k) {
        auto* b = reinterpret_cast<std::uint16_t*>(block);
        for (int d = 0; d < D; ++d) b[d * kKeyBlock + lane] = Format::round(k[d]);
    }
    template <int D>
    static void store_value(std::byte* row, const float* v) {
        auto* r = reinterpret_cast<std::uint16_t*>(row);
        for (int d = 0; d < D; ++d) r[d] = Format::round(v[d]);
    }
    template <int D>
    static detail::simd::fbatch key_column(const std::byte* block, int d, int lane) {
        return Format::load(reinterpret_cast<const std::uint16_t*>(block) + d * kKeyBlock + lane);
    }
    template <int D>
    static detail::simd::fbatch value(const std::byte* row, int d) {
        return Format::load(reinterpret_cast<const std::uint16_t*>(row) + d);
    }
};

// BF16: the default. Its rounding is below what a BF16 or quantized model already carries.
using KVBF16 = KVHalf<detail::Bf16Format>;
// F16: more mantissa than BF16, less range.
using KVF16 = KVHalf<detail::F16Format>;

// 8-bit keys and values: each position's head is split into blocks of 32 elements, each stored as
// int8 with one f32 scale (max |x| / 127), as Q8_0 does. About 56% of BF16's memory.
struct KVQ8_0 {
    static constexpr const char* name = "Q8_0";
    // key block: int8 [D][16], then f32 scales [D / 32][16]
    template <int D>
    static constexpr std::size_t key_block_bytes = std::size_t(D) * kKeyBlock + std::size_t(D / 32) * kKeyBlock * 4;
    // value row: f32 scales [D / 32], then int8 [D]
    template <int D>
    static constexpr std::size_t value_row_bytes = std::size_t(D / 32) * 4 + std::size_t(D);

    static float quantize_block(const float* x, std::int8_t* q, int stride) {
        float amax = 0;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float scale = amax / 127.f, inv = scale ? 1.f / scale : 0.f;
        for (int i = 0; i < 32; ++i) q[i * stride] = std::int8_t(std::nearbyint(x[i] * inv));
        return scale;
    }
    template <int D>
    static void store_key(std::byte* block, int lane, const float* k) {
        static_assert(D % 32 == 0);
        auto* q = reinterpret_cast<std::int8_t*>(block);
        auto* scales = reinterpret_cast<float*>(block + std::size_t(D) * kKeyBlock);
        for (int b = 0; b < D / 32; ++b) scales[b * kKeyBlock + lane] = quantize_block(k + b * 32, q + b * 32 * kKeyBlock + lane, kKeyBlock);
    }
    template <int D>
    static void store_value(std::byte* row, const float* v) {
        auto* scales = reinterpret_cast<float*>(row);
        auto* q = reinterpret_cast<std::int8_t*>(row + std::size_t(D / 32) * 4);
        for (int b = 0; b < D / 32; ++b) scales[b] = quantize_block(v + b * 32, q + b * 32, 1);
    }
    template <int D>
    static detail::simd::fbatch key_column(const std::byte* block, int d, int lane) {
        const auto* q = reinterpret_cast<const std::int8_t*>(block) + d * kKeyBlock + lane;
        const auto* scales = reinterpret_cast<const float*>(block + std::size_t(D) * kKeyBlock) + (d / 32) * kKeyBlock + lane;
        return detail::simd::load_i8(q) * detail::simd::load_f32(scales);
    }
    template <int D>
    static detail::simd::fbatch value(const std::byte* row, int d) {
        const float scale = reinterpret_cast<const float*>(row)[d / 32];
        const auto* q = reinterpret_cast<const std::int8_t*>(row + std::size_t(D / 32) * 4) + d;
        return detail::simd::load_i8(q) * detail::simd::fbatch(scale);
    }
};

// The element type of a Session's KV arena when none is named. Define QWEN3_KV_TYPE to change it
// for a whole program.
#ifndef QWEN3_KV_TYPE
#define QWEN3_KV_TYPE ::qwen3::KVBF16
#endif
using DefaultKV = QWEN3_KV_TYPE;

}  // namespace qwen3
