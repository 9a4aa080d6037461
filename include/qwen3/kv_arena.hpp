// qwen3/kv_arena.hpp - the key/value cache: one allocation, sized at compile time.
//
// The arena reserves address space for Cfg::max_context positions once (anonymous memory, never
// resized); the OS commits pages only as positions are written, so a 32k-token arena costs RAM in
// proportion to the tokens actually used.
//
// Layout, per layer and KV head: keys in blocks of 16 positions stored transposed (for each element
// of the head, the 16 positions side by side), so attention computes 16 scores with one multiply-add
// per element and no horizontal sums; values as rows, one per position, which attention scales and
// adds. The element type is a compile-time choice (KVBF16 by default; KVF32, KVF16, KVQ8_0).
#pragma once

#include <sys/mman.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "error.hpp"
#include "kernels/simd.hpp"

namespace qwen3 {

// Positions per key block.
inline constexpr int kKeyBlock = 16;

namespace detail {
// Loads 16 consecutive f32 (as 16 / lanes batches) and passes each batch with its lane offset.
template <class Fn>
inline void for_lanes(Fn&& fn) {
    for (int l = 0; l < kKeyBlock; l += int(simd::lanes)) fn(l);
}
}  // namespace detail

// Each element type says how a key block and a value row are laid out, written and read back as f32.
//   key_block_bytes / value_row_bytes   sizes for a head of D elements
//   store_key(block, lane, k) / store_value(row, v)
//   key_column(block, d, lane)  the 16 positions' element d (lanes [lane, lane + simd::lanes)) as f32
//   value(row, d)               elements [d, d + simd::lanes) of a value row as f32
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
    static simd::fbatch key_column(const std::byte* block, int d, int lane) {
        return simd::load_f32(reinterpret_cast<const float*>(block) + d * kKeyBlock + lane);
    }
    static simd::fbatch value(const std::byte* row, int d) { return simd::load_f32(reinterpret_cast<const float*>(row) + d); }
};

struct KVBF16 {
    static constexpr const char* name = "BF16";
    template <int D>
    static constexpr std::size_t key_block_bytes = std::size_t(D) * kKeyBlock * 2;
    template <int D>
    static constexpr std::size_t value_row_bytes = std::size_t(D) * 2;
    template <int D>
    static void store_key(std::byte* block, int lane, const float* k) {
        auto* b = reinterpret_cast<std::uint16_t*>(block);
        for (int d = 0; d < D; ++d) b[d * kKeyBlock + lane] = simd::f32_to_bf16(k[d]);
    }
    template <int D>
    static void store_value(std::byte* row, const float* v) {
        auto* r = reinterpret_cast<std::uint16_t*>(row);
        for (int d = 0; d < D; ++d) r[d] = simd::f32_to_bf16(v[d]);
    }
    static simd::fbatch key_column(const std::byte* block, int d, int lane) {
        return simd::load_bf16(reinterpret_cast<const std::uint16_t*>(block) + d * kKeyBlock + lane);
    }
    static simd::fbatch value(const std::byte* row, int d) { return simd::load_bf16(reinterpret_cast<const std::uint16_t*>(row) + d); }
};

struct KVF16 {
    static constexpr const char* name = "F16";
    template <int D>
    static constexpr std::size_t key_block_bytes = std::size_t(D) * kKeyBlock * 2;
    template <int D>
    static constexpr std::size_t value_row_bytes = std::size_t(D) * 2;
    template <int D>
    static void store_key(std::byte* block, int lane, const float* k) {
        auto* b = reinterpret_cast<std::uint16_t*>(block);
        for (int d = 0; d < D; ++d) b[d * kKeyBlock + lane] = simd::f32_to_f16(k[d]);
    }
    template <int D>
    static void store_value(std::byte* row, const float* v) {
        auto* r = reinterpret_cast<std::uint16_t*>(row);
        for (int d = 0; d < D; ++d) r[d] = simd::f32_to_f16(v[d]);
    }
    static simd::fbatch key_column(const std::byte* block, int d, int lane) {
        return simd::load_f16(reinterpret_cast<const std::uint16_t*>(block) + d * kKeyBlock + lane);
    }
    static simd::fbatch value(const std::byte* row, int d) { return simd::load_f16(reinterpret_cast<const std::uint16_t*>(row) + d); }
};

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
    // Needs D to find the scales: the attention kernel passes it through this template.
    template <int D>
    static simd::fbatch key_column_d(const std::byte* block, int d, int lane) {
        const auto* q = reinterpret_cast<const std::int8_t*>(block) + d * kKeyBlock + lane;
        const auto* scales = reinterpret_cast<const float*>(block + std::size_t(D) * kKeyBlock) + (d / 32) * kKeyBlock + lane;
        return simd::load_i8(q) * simd::load_f32(scales);
    }
    template <int D>
    static simd::fbatch value_d(const std::byte* row, int d) {
        const float scale = reinterpret_cast<const float*>(row)[d / 32];
        const auto* q = reinterpret_cast<const std::int8_t*>(row + std::size_t(D / 32) * 4) + d;
        return simd::load_i8(q) * simd::fbatch(scale);
    }
};

// Element access with the head size known, for every type (Q8_0 needs it to find its scales).
template <class KV, int D>
inline simd::fbatch kv_key_column(const std::byte* block, int d, int lane) {
    if constexpr (std::is_same_v<KV, KVQ8_0>) return KV::template key_column_d<D>(block, d, lane);
    else return KV::key_column(block, d, lane);
}
template <class KV, int D>
inline simd::fbatch kv_value(const std::byte* row, int d) {
    if constexpr (std::is_same_v<KV, KVQ8_0>) return KV::template value_d<D>(row, d);
    else return KV::value(row, d);
}

// The default element type of the KV arena: BF16 halves the memory of F32 and its rounding is below
// what a BF16 or quantized model already carries. Define QWEN3_KV_TYPE to change it.
#ifndef QWEN3_KV_TYPE
#define QWEN3_KV_TYPE ::qwen3::KVBF16
#endif
using DefaultKV = QWEN3_KV_TYPE;

template <class Cfg, class KV = DefaultKV>
class KVArena {
public:
    static constexpr int D = Cfg::head_dim;
    static constexpr int blocks = (Cfg::max_context + kKeyBlock - 1) / kKeyBlock;
    static constexpr std::size_t key_bytes_per_head = std::size_t(blocks) * KV::template key_block_bytes<D>;
    static constexpr std::size_t value_bytes_per_head = std::size_t(blocks) * kKeyBlock * KV::template value_row_bytes<D>;
    static constexpr std::size_t head_bytes = (key_bytes_per_head + value_bytes_per_head + 63) / 64 * 64;
    static constexpr std::size_t bytes = std::size_t(Cfg::layers) * Cfg::kv_heads * head_bytes;

    // Throws Error(io) when the address space cannot be reserved.
    KVArena() {
        void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            detail::fail(ErrorCode::io, "cannot reserve the KV arena of ", bytes, " bytes (", Cfg::max_context,
                         " positions); compile a smaller max_context");
        base_ = static_cast<std::byte*>(p);
    }
    ~KVArena() { ::munmap(base_, bytes); }
    KVArena(const KVArena&) = delete;
    KVArena& operator=(const KVArena&) = delete;

    std::byte* head(int layer, int kv_head) const { return base_ + (std::size_t(layer) * Cfg::kv_heads + kv_head) * head_bytes; }
    // Key block holding position p (block p / 16; the position is lane p % 16).
    std::byte* key_block(int layer, int kv_head, int block) const {
        return head(layer, kv_head) + std::size_t(block) * KV::template key_block_bytes<D>;
    }
    std::byte* value_row(int layer, int kv_head, int pos) const {
        return head(layer, kv_head) + key_bytes_per_head + std::size_t(pos) * KV::template value_row_bytes<D>;
    }

    void store(int layer, int kv_head, int pos, const float* k, const float* v) {
        KV::template store_key<D>(key_block(layer, kv_head, pos / kKeyBlock), pos % kKeyBlock, k);
        KV::template store_value<D>(value_row(layer, kv_head, pos), v);
    }

    // Gives the pages of positions [from, max_context) back to the OS (after a reset or truncation).
    void release_from(int from) {
        const std::uintptr_t page = 4096;
        for (int l = 0; l < Cfg::layers; ++l)
            for (int h = 0; h < Cfg::kv_heads; ++h) {
                auto release = [&](std::byte* begin_ptr, std::byte* end_ptr) {
                    auto begin = (reinterpret_cast<std::uintptr_t>(begin_ptr) + page - 1) / page * page;
                    auto end = reinterpret_cast<std::uintptr_t>(end_ptr) / page * page;
                    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
                };
                const int first_block = (from + kKeyBlock - 1) / kKeyBlock;
                release(key_block(l, h, first_block), key_block(l, h, blocks));
                release(value_row(l, h, from), value_row(l, h, blocks * kKeyBlock));
            }
    }

private:
    std::byte* base_ = nullptr;
};

}  // namespace qwen3
