// qwen3/kv_arena.hpp - the key/value cache: one allocation, sized at compile time.
//
// Layout: keys then values; within each, [layer][kv_head][position][head_dim], so the positions a
// head attends over are contiguous. The arena reserves address space for Cfg::max_context positions
// once (anonymous memory, never resized); the OS commits pages only as positions are written, so a
// 32k-token arena costs RAM in proportion to the tokens actually used.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "error.hpp"
#include "kernels/simd.hpp"

namespace qwen3 {

// Element types of the arena. Each says how a row is stored and loaded back as f32.
struct KVF32 {
    using storage = float;
    static constexpr const char* name = "F32";
    static void store(storage* dst, const float* src, int n) { std::memcpy(dst, src, std::size_t(n) * 4); }
    static simd::fbatch load(const storage* p) { return simd::load_f32(p); }
};
struct KVBF16 {
    using storage = std::uint16_t;
    static constexpr const char* name = "BF16";
    static void store(storage* dst, const float* src, int n) {
        for (int i = 0; i < n; ++i) dst[i] = simd::f32_to_bf16(src[i]);
    }
    static simd::fbatch load(const storage* p) { return simd::load_bf16(p); }
};
struct KVF16 {
    using storage = std::uint16_t;
    static constexpr const char* name = "F16";
    static void store(storage* dst, const float* src, int n) {
        for (int i = 0; i < n; ++i) dst[i] = simd::f32_to_f16(src[i]);
    }
    static simd::fbatch load(const storage* p) { return simd::load_f16(p); }
};

template <class Cfg, class KV = KVF32>
class KVArena {
public:
    using T = typename KV::storage;
    static constexpr std::size_t head_elements = std::size_t(Cfg::max_context) * Cfg::head_dim;
    static constexpr std::size_t layer_elements = std::size_t(Cfg::kv_heads) * head_elements;
    static constexpr std::size_t elements = 2 * std::size_t(Cfg::layers) * layer_elements;
    static constexpr std::size_t bytes = elements * sizeof(T);

    // Throws Error(io) when the address space cannot be reserved.
    KVArena() {
        void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            detail::fail(ErrorCode::io, "cannot reserve the KV arena of ", bytes, " bytes (", Cfg::max_context,
                         " positions); compile a smaller max_context");
        base_ = static_cast<T*>(p);
    }
    ~KVArena() { ::munmap(base_, bytes); }
    KVArena(const KVArena&) = delete;
    KVArena& operator=(const KVArena&) = delete;

    // Rows [0, max_context) of head_dim elements each.
    T* keys(int layer, int kv_head) { return base_ + std::size_t(layer) * layer_elements + std::size_t(kv_head) * head_elements; }
    T* values(int layer, int kv_head) { return keys(layer, kv_head) + std::size_t(Cfg::layers) * layer_elements; }
    const T* keys(int layer, int kv_head) const { return const_cast<KVArena*>(this)->keys(layer, kv_head); }
    const T* values(int layer, int kv_head) const { return const_cast<KVArena*>(this)->values(layer, kv_head); }

    // Gives the pages of positions [from, max_context) back to the OS (after a reset or truncation).
    void release_from(int from) {
        const long page = 4096;
        for (int l = 0; l < Cfg::layers; ++l)
            for (int h = 0; h < Cfg::kv_heads; ++h)
                for (T* head : {keys(l, h), values(l, h)}) {
                    auto begin = reinterpret_cast<std::uintptr_t>(head + std::size_t(from) * Cfg::head_dim);
                    auto end = reinterpret_cast<std::uintptr_t>(head + head_elements);
                    begin = (begin + page - 1) / page * page;
                    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
                }
    }

private:
    T* base_ = nullptr;
};

}  // namespace qwen3
