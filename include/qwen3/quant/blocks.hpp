// qwen3/quant/blocks.hpp - the block layouts of ggml's quantized tensor types.
//
// A quantized row is a sequence of blocks; each block holds a fixed number of elements as small
// integers plus the scales that turn them back into floats. The layouts below are byte-for-byte
// those of the GGUF format (ggml's definitions), so a mapped GGUF tensor is an array of these structs.
// Scales are IEEE half floats stored as uint16 (see detail/simd.hpp f16_to_f32).
#pragma once

#include <cstddef>
#include <cstdint>

namespace qwen3::detail::quant {

inline constexpr int kBlock32 = 32;   // elements of a Q4_0 / Q5_0 / Q8_0 block
inline constexpr int kSuperBlock = 256;  // elements of a K-quant super-block

// x[i] = d * qs[i]
struct BlockQ8_0 {
    std::uint16_t d;
    std::int8_t qs[32];
};

// x[i] = d * ((qs[i % 16] >> (4 * (i / 16))) & 15) - 8): low nibbles hold elements 0..15, high 16..31
struct BlockQ4_0 {
    std::uint16_t d;
    std::uint8_t qs[16];
};

// x[i] = d * q[i] + m, q as in Q4_0 without the offset
struct BlockQ4_1 {
    std::uint16_t d;
    std::uint16_t m;
    std::uint8_t qs[16];
};

// x[i] = d * (q[i] - 16), q = 4 low bits from qs (as Q4_0) | bit i of qh (little-endian uint32) << 4
struct BlockQ5_0 {
    std::uint16_t d;
    std::uint8_t qh[4];
    std::uint8_t qs[16];
};

// x[i] = d * q[i] + m, q as in Q5_0 without the offset
struct BlockQ5_1 {
    std::uint16_t d;
    std::uint16_t m;
    std::uint8_t qh[4];
    std::uint8_t qs[16];
};

// 256 elements in 8 sub-blocks of 32, each with a 6-bit scale and a 6-bit min packed in `scales`:
// x = d * scale_j * q - dmin * min_j, q in [0, 15]; qs holds 4 chunks of 64 elements, each chunk's
// first 32 in the low nibbles and last 32 in the high nibbles.
struct BlockQ4_K {
    std::uint16_t d;
    std::uint16_t dmin;
    std::uint8_t scales[12];
    std::uint8_t qs[128];
};

// As Q4_K with a fifth bit per element in qh: bit (2 * chunk) of qh[l] for the low-nibble element
// l of a chunk, bit (2 * chunk + 1) for the high-nibble one.
struct BlockQ5_K {
    std::uint16_t d;
    std::uint16_t dmin;
    std::uint8_t scales[12];
    std::uint8_t qh[32];
    std::uint8_t qs[128];
};

// 256 elements in 16 groups of 16 with int8 scales: x = d * scales_j * (q - 32), q 6-bit: 4 low bits
// in ql, 2 high bits in qh (two chunks of 128 elements; see dequantize_q6_k in dequantize.hpp).
struct BlockQ6_K {
    std::uint8_t ql[128];
    std::uint8_t qh[64];
    std::int8_t scales[16];
    std::uint16_t d;
};

// The activation format of K-quant dot products: a float scale, 256 int8 values and the sums of
// each group of 16 (used to apply K-quants' per-sub-block minimums without touching the values).
struct BlockQ8_K {
    float d;
    std::int8_t qs[256];
    std::int16_t bsums[16];
};

static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);
static_assert(alignof(BlockQ8_0) == 2 && alignof(BlockQ6_K) == 2, "blocks must pack without padding");

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block.
inline void scale_min_k4(int j, const std::uint8_t* q, std::uint8_t& scale, std::uint8_t& min) {
    if (j < 4) {
        scale = q[j] & 63;
        min = q[j + 4] & 63;
    } else {
        scale = std::uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        min = std::uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

}  // namespace qwen3::detail::quant
