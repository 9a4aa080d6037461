// qwen3/kernels/packed_layout.hpp - the decode layout: every 16 rows of a quantized matrix
// interleaved block by block, so that one 64-byte vector holds four consecutive values of each of
// the 16 rows.
//
// ggml's blocks store one row after another; a decode kernel reading them in place ends every row
// in a horizontal sum and must move each block's bytes into place before an integer dot product.
// In this layout one 4-byte dot product per lane (vpdpbusd on AVX-512, vpmaddubsw + vpmaddwd on
// AVX2, which read the 64 bytes as two 32-byte halves: rows 0-7 and 8-15) against four input
// bytes broadcast advances 16 rows at once, a block's 16 row scales are one vector, and a group's
// outputs are the lanes of an accumulator. The bits are ggml's, only reordered (Q8_0's flipped
// sign aside): a packed matrix takes exactly the bytes of the original. Plain C++; the kernels that
// read it are kernels/arch/avx512_packed.hpp and kernels/arch/avx2_packed.hpp.
//
// Layout of one group of 16 rows, block after block (32 elements for Q8_0/Q4_0, 256 for K-quants):
//   Q8_0: d[16] (f16), then 8 x 64 bytes: vector j, lane r = qs[4j, 4j + 4) of row r, XOR 0x80
//         (stored unsigned, so it is vpdpbusd's unsigned operand; 128 * sum(x) is taken back out)
//   Q4_0: d[16] (f16), then 4 x 64 bytes: vector j, lane r = qs[4j, 4j + 4) of row r (low nibbles are
//         elements 4j.., high nibbles 16 + 4j..)
//   Q5_0: d[16] (f16), qh of the 16 rows (64 bytes: lane r = row r's 32 fifth bits), then qs as Q4_0
//   Q4_K: d[16], dmin[16] (f16), scales transposed (byte i of the 16 rows together: 12 x 16 bytes),
//         then 32 x 64 bytes: vector 8c + j, lane r = qs[32c + 4j, +4) of row r
//   Q5_K: as Q4_K, with qh between the scales and qs: 8 x 64 bytes, vector j, lane r = qh[4j, 4j + 4)
//         of row r (the fifth bits of elements 4j.. of every chunk of 64)
//   Q6_K: d[16] (f16), scales transposed (16 x 16 bytes), then ql as 32 vectors (vector 16h + 8p + j,
//         lane r = ql[64h + 32p + 4j, +4)), then qh as 16 vectors (vector 8h + j: qh[32h + 4j, +4))
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../quant/blocks.hpp"
#include "../tensor.hpp"

namespace qwen3::detail::packed {

inline constexpr int kPackRows = 16;

// The four input bytes that one 32-bit lane multiplies, as one integer to broadcast to every lane.
inline std::int32_t four_bytes(const std::int8_t* x) {
    std::int32_t v;
    std::memcpy(&v, x, 4);
    return v;
}

// How far ahead of the block being read the decode kernels prefetch the packed stream: the distance
// that measured best for each family (docs/performance.md), or QWEN3_PACKED_PREFETCH for experiments.
template <int Measured>
inline constexpr int kPrefetchDistance =
#if defined(QWEN3_PACKED_PREFETCH)
    QWEN3_PACKED_PREFETCH;
#else
    Measured;
#endif

// Asks for the `bytes` that lie `Distance` bytes past p to be brought into the L1 cache.
template <int Distance>
inline void prefetch_stream(const std::byte* p, int bytes) {
#if defined(__GNUC__)
    for (int off = 0; off < bytes; off += 64) __builtin_prefetch(p + Distance + off, 0, 3);
#else
    (void)p, (void)bytes;
#endif
}

inline void put4(std::byte* dst, const void* src, std::uint32_t flip = 0) {
    std::uint32_t v;
    std::memcpy(&v, src, 4);
    v ^= flip;
    std::memcpy(dst, &v, 4);
}

// Writes the blocks of one group of 16 rows in the packed layout, in order.
struct GroupWriter {
    const std::byte* rows;  // row 0 of the group
    std::size_t stride;     // bytes from one row to the next
    std::byte* out;

    template <class Block>
    const Block& block(int r, int b) const {
        return reinterpret_cast<const Block*>(rows + std::size_t(r) * stride)[b];
    }
    // The f16 `field` of block b of the 16 rows: 32 bytes.
    template <class Block>
    void halves(int b, std::uint16_t Block::*field) {
        for (int r = 0; r < kPackRows; ++r) std::memcpy(out + 2 * r, &(block<Block>(r, b).*field), 2);
        out += 32;
    }
    // The bytes of `field` four at a time: vector v, lane r = bytes [4v, 4v + 4) of row r (XOR flip).
    template <class Block, class T, std::size_t N>
    void interleave(int b, T (Block::*field)[N], std::uint32_t flip = 0) {
        static_assert(sizeof(T) == 1 && N % 4 == 0);
        for (std::size_t v = 0; v < N / 4; ++v, out += 64)
            for (int r = 0; r < kPackRows; ++r) put4(out + 4 * r, (block<Block>(r, b).*field) + 4 * v, flip);
    }
    // The bytes of `field` one at a time: 16 bytes per byte index, one of each row.
    template <class Block, class T, std::size_t N>
    void transpose(int b, T (Block::*field)[N]) {
        static_assert(sizeof(T) == 1);
        for (std::size_t i = 0; i < N; ++i, out += 16)
            for (int r = 0; r < kPackRows; ++r) std::memcpy(out + r, (block<Block>(r, b).*field) + i, 1);
    }
};

// True for the types with a packed layout, for rows of K elements.
template <int K>
constexpr bool has_layout(DType type) {
    switch (type) {
        case DType::q8_0: case DType::q4_0: case DType::q5_0: return K % 32 == 0;
        case DType::q4_k: case DType::q5_k: case DType::q6_k: return K % 256 == 0;
        default: return false;
    }
}

// Packs row groups [group_begin, group_end) of a matrix whose rows are `stride` bytes apart into
// dst (group g at dst + g * 16 * stride). Rows must come in whole groups of 16.
// Precondition: has_layout<K>(type).
template <int K>
void pack_groups(DType type, const std::byte* src, std::size_t stride, int group_begin, int group_end, std::byte* dst) {
    using namespace quant;
    for (int g = group_begin; g < group_end; ++g) {
        const std::size_t offset = std::size_t(g) * kPackRows * stride;
        GroupWriter w{src + offset, stride, dst + offset};
        switch (type) {
            case DType::q8_0:
                for (int b = 0; b < K / 32; ++b) w.halves(b, &BlockQ8_0::d), w.interleave(b, &BlockQ8_0::qs, 0x80808080u);
                break;
            case DType::q4_0:
                for (int b = 0; b < K / 32; ++b) w.halves(b, &BlockQ4_0::d), w.interleave(b, &BlockQ4_0::qs);
                break;
            case DType::q5_0:
                for (int b = 0; b < K / 32; ++b)
                    w.halves(b, &BlockQ5_0::d), w.interleave(b, &BlockQ5_0::qh), w.interleave(b, &BlockQ5_0::qs);
                break;
            case DType::q4_k:
                for (int b = 0; b < K / 256; ++b)
                    w.halves(b, &BlockQ4_K::d), w.halves(b, &BlockQ4_K::dmin), w.transpose(b, &BlockQ4_K::scales),
                        w.interleave(b, &BlockQ4_K::qs);
                break;
            case DType::q5_k:
                for (int b = 0; b < K / 256; ++b)
                    w.halves(b, &BlockQ5_K::d), w.halves(b, &BlockQ5_K::dmin), w.transpose(b, &BlockQ5_K::scales),
                        w.interleave(b, &BlockQ5_K::qh), w.interleave(b, &BlockQ5_K::qs);
                break;
            case DType::q6_k:
                for (int b = 0; b < K / 256; ++b)
                    w.halves(b, &BlockQ6_K::d), w.transpose(b, &BlockQ6_K::scales), w.interleave(b, &BlockQ6_K::ql),
                        w.interleave(b, &BlockQ6_K::qh);
                break;
            default: break;
        }
    }
}

}  // namespace qwen3::detail::packed
