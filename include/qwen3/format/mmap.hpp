// qwen3/format/mmap.hpp - a read-only memory-mapped file (POSIX).
//
// Checkpoints are mapped, not read: weights are used in place where their layout allows, and the
// operating system pages them in on first use and shares them between processes.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "../error.hpp"

namespace qwen3 {

class MappedFile {
public:
    MappedFile() = default;

    // Maps `path` read-only. Throws Error(io) naming the path and the system's reason.
    explicit MappedFile(const std::string& path) : path_(path) {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) detail::fail(ErrorCode::io, "cannot open ", path, ": ", std::strerror(errno));
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
            int err = errno;
            ::close(fd);
            detail::fail(ErrorCode::io, "cannot stat ", path, ": ", std::strerror(err));
        }
        if (!S_ISREG(st.st_mode)) {
            ::close(fd);
            detail::fail(ErrorCode::io, path, " is not a regular file");
        }
        size_ = static_cast<std::size_t>(st.st_size);
        if (size_ > 0) {
            void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) {
                int err = errno;
                ::close(fd);
                detail::fail(ErrorCode::io, "cannot map ", path, ": ", std::strerror(err));
            }
            data_ = static_cast<const std::byte*>(p);
#if defined(MADV_HUGEPAGE)
            // pages read through this mapping may come in as huge pages (kernels with large folios
            // in the page cache): decode streams gigabytes, and 4 KiB pages slow it down
            ::madvise(p, size_, MADV_HUGEPAGE);
#endif
        }
        ::close(fd);
    }

    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    MappedFile(MappedFile&& other) noexcept { swap(other); }
    MappedFile& operator=(MappedFile&& other) noexcept {
        MappedFile tmp(std::move(other));
        swap(tmp);
        return *this;
    }
    ~MappedFile() {
        if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
    }

    const std::byte* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    const std::string& path() const noexcept { return path_; }
    std::string_view view() const noexcept { return {reinterpret_cast<const char*>(data_), size_}; }

    // Hints that [offset, offset+length) will be read soon, sequentially (prefault for benchmarks).
    void advise_willneed(std::size_t offset, std::size_t length) const noexcept {
        if (!data_ || offset >= size_) return;
        advise(data_ + offset, std::min(size_ - offset, length), MADV_WILLNEED, false);
    }

    // Drops this process's mapping of the whole pages inside [p, p + n), which must lie in this file's
    // mapping: the kernel may then reclaim them from the page cache (used once a copy replaced them);
    // reading them again faults them back in from the file.
    static void release_pages(const std::byte* p, std::size_t n) noexcept { advise(p, n, MADV_DONTNEED, true); }

    // Maps every page touching [p, p + n) now, in one call (MADV_POPULATE_READ, Linux 5.14; a no-op
    // where it is missing): a pass over gigabytes of weights otherwise takes one page fault per 4 KiB,
    // which costs seconds in a virtual machine.
    static void populate_pages(const std::byte* p, std::size_t n) noexcept {
#if defined(MADV_POPULATE_READ)
        advise(p, n, MADV_POPULATE_READ, false);
#else
        (void)p, (void)n;
#endif
    }

private:
    // madvise over the pages of [p, p + n): only those wholly inside it, or every page it touches.
    static void advise(const std::byte* p, std::size_t n, int advice, bool whole_pages_only) noexcept {
        const auto page = std::uintptr_t(::sysconf(_SC_PAGESIZE));
        const auto first = reinterpret_cast<std::uintptr_t>(p), last = first + n;
        const std::uintptr_t begin = (whole_pages_only ? first + page - 1 : first) / page * page;
        const std::uintptr_t end = whole_pages_only ? last / page * page : last;
        if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, advice);
    }

    void swap(MappedFile& other) noexcept {
        std::swap(path_, other.path_);
        std::swap(data_, other.data_);
        std::swap(size_, other.size_);
    }

    std::string path_;
    const std::byte* data_ = nullptr;
    std::size_t size_ = 0;
};

// Reads a whole (small) file into a string: config.json, index files, tokenizer.json.
inline std::string read_text_file(const std::string& path) {
    MappedFile file(path);
    return std::string(file.view());
}

}  // namespace qwen3
