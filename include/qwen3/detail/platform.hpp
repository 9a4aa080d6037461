// qwen3/detail/platform.hpp - what the library asks of the operating system about memory.
//
// How much memory is available, how many file pages a process maps with huge pages, an allocation
// backed by huge pages, and address space reserved now and committed as it is touched. Linux does
// all of it; elsewhere the queries answer "unknown" (0) and the allocations are plain ones.
// (Mapping files is format/mmap.hpp's job.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "../error.hpp"

namespace qwen3::detail {

// A "Key: N kB" line of a /proc file, in bytes; 0 when the file or the line is missing.
inline std::size_t proc_kib_field(const char* path, const char* key) {
    std::size_t bytes = 0;
#if defined(__linux__)
    if (std::FILE* f = std::fopen(path, "r")) {
        char line[256];
        const std::size_t key_length = std::strlen(key);
        while (std::fgets(line, sizeof line, f)) {
            unsigned long long kib = 0;
            if (std::strncmp(line, key, key_length) == 0 && line[key_length] == ':' &&
                std::sscanf(line + key_length + 1, " %llu kB", &kib) == 1) {
                bytes = std::size_t(kib) * 1024;
                break;
            }
        }
        std::fclose(f);
    }
#else
    (void)path, (void)key;
#endif
    return bytes;
}

// Memory the system can give without swapping (MemAvailable), in bytes; 0 when unknown.
inline std::size_t available_memory() { return proc_kib_field("/proc/meminfo", "MemAvailable"); }

// Bytes of file pages this process maps with huge (2 MiB) page table entries; 0 when unknown.
inline std::size_t file_pages_mapped_huge() { return proc_kib_field("/proc/self/smaps_rollup", "FilePmdMapped"); }

inline constexpr std::size_t kHugePage = std::size_t(2) << 20;

// An allocation of whole 2 MiB pages, with transparent huge pages requested (fewer TLB misses while
// decode streams it) and every page faulted in by one call rather than one fault per 4 KiB.
class HugePageBuffer {
public:
    HugePageBuffer() = default;
    // Throws Error(unsupported) when the allocation fails.
    explicit HugePageBuffer(std::size_t bytes) : bytes_((bytes + kHugePage - 1) / kHugePage * kHugePage) {
        auto* p = static_cast<std::byte*>(std::aligned_alloc(kHugePage, bytes_));
        if (!p) fail(ErrorCode::unsupported, "could not allocate ", bytes_, " bytes for a copy of the weights");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        ::madvise(p, bytes_, MADV_HUGEPAGE);
#endif
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
        ::madvise(p, bytes_, MADV_POPULATE_WRITE);
#endif
        data_ = std::shared_ptr<std::byte>(p, [](std::byte* q) { std::free(q); });
    }
    std::byte* data() const { return data_.get(); }
    std::size_t size() const { return bytes_; }

private:
    std::shared_ptr<std::byte> data_;
    std::size_t bytes_ = 0;
};

// Address space of `bytes`, reserved at once and backed by memory only where it is written (the
// KV arena). Throws Error(io) when the address space cannot be reserved, naming `purpose`.
// With `huge_pages`, the range starts on a 2 MiB boundary and transparent huge pages are asked for:
// memory is then committed 2 MiB at a time, one fault instead of 512 (for stores whose unit of use
// is megabytes, like the KV pool's pages).
class ReservedMemory {
public:
    ReservedMemory(std::size_t bytes, std::string_view purpose, bool huge_pages = false) : bytes_(bytes) {
        const std::size_t slack = huge_pages ? kHugePage : 0;
        void* p = ::mmap(nullptr, bytes + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) fail(ErrorCode::io, "cannot reserve ", bytes, " bytes of address space for ", purpose);
        mapping_ = static_cast<std::byte*>(p);
        mapped_ = bytes + slack;
        base_ = mapping_;
        if (huge_pages) {
            base_ = mapping_ + (kHugePage - reinterpret_cast<std::uintptr_t>(mapping_) % kHugePage) % kHugePage;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
            ::madvise(base_, bytes_ / kHugePage * kHugePage, MADV_HUGEPAGE);
#endif
        }
    }
    ~ReservedMemory() { ::munmap(mapping_, mapped_); }
    ReservedMemory(const ReservedMemory&) = delete;
    ReservedMemory& operator=(const ReservedMemory&) = delete;

    std::byte* data() const { return base_; }
    std::size_t size() const { return bytes_; }

    // Gives the whole pages inside [begin, end) back to the system; they read as zeros afterwards.
    void release(std::byte* begin, std::byte* end) const {
        const std::uintptr_t page = std::uintptr_t(::sysconf(_SC_PAGESIZE));
        const std::uintptr_t b = (reinterpret_cast<std::uintptr_t>(begin) + page - 1) / page * page;
        const std::uintptr_t e = reinterpret_cast<std::uintptr_t>(end) / page * page;
        if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
    }

private:
    std::byte* mapping_ = nullptr;  // what mmap returned, and its length
    std::size_t mapped_ = 0;
    std::byte* base_ = nullptr;
    std::size_t bytes_ = 0;
};

}  // namespace qwen3::detail
