// qwen3/thread_pool.hpp - a small pool for the matrix work of one forward pass.
//
// A forward pass hands the pool hundreds of short jobs per token (one per projection), so dispatch
// must cost microseconds: workers spin briefly on a generation counter before they sleep, the
// calling thread works too, and a job is a function pointer plus a context pointer (no allocation).
// Work is split by index, and every index is computed the same way whichever thread runs it, so
// results do not depend on the number of threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

#include "error.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace qwen3 {

// The default worker count: $QWEN3_THREADS when set, otherwise QWEN3_DEFAULT_THREADS when defined
// at compile time, otherwise the machine's hardware threads.
inline int default_thread_count() {
    if (const char* env = std::getenv("QWEN3_THREADS")) {
        int n = std::atoi(env);
        if (n > 0) return std::min(n, 1024);
    }
#ifdef QWEN3_DEFAULT_THREADS
    return QWEN3_DEFAULT_THREADS;
#else
    return std::max(1, int(std::thread::hardware_concurrency()));
#endif
}

class ThreadPool {
public:
    // `threads` counts the calling thread: ThreadPool(1) runs everything on the caller.
    // Throws Error(invalid_argument) for threads < 1.
    explicit ThreadPool(int threads = default_thread_count()) {
        if (threads < 1) detail::fail(ErrorCode::invalid_argument, "ThreadPool: thread count must be at least 1, got ", threads);
        workers_.reserve(std::size_t(threads - 1));
        for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
    }
    ~ThreadPool() {
        stop_.store(true, std::memory_order_relaxed);
        generation_.fetch_add(1, std::memory_order_release);
        generation_.notify_all();
        for (std::thread& t : workers_) t.join();
    }
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return int(workers_.size()) + 1; }

    // Calls fn(i) once for every i in [0, tasks), spread over the pool and the caller; returns when
    // all calls have returned. Not reentrant: fn must not call run() on the same pool.
    template <class Fn>
    void run(int tasks, Fn&& fn) {
        if (tasks <= 0) return;
        if (workers_.empty() || tasks == 1) {
            for (int i = 0; i < tasks; ++i) fn(i);
            return;
        }
        using F = std::remove_reference_t<Fn>;
        job_ = [](void* ctx, int i) { (*static_cast<F*>(ctx))(i); };
        context_ = const_cast<void*>(static_cast<const void*>(&fn));
        tasks_ = tasks;
        next_.store(0, std::memory_order_relaxed);
        checked_out_.store(0, std::memory_order_relaxed);
        generation_.fetch_add(1, std::memory_order_release);
        generation_.notify_all();
        work();
        // wait until every worker has left this job, so none can touch the next one's state
        const int workers = int(workers_.size());
        int spin = 0;
        for (int out; (out = checked_out_.load(std::memory_order_acquire)) != workers;) {
            if (++spin < kSpinPauses) pause();
            else checked_out_.wait(out, std::memory_order_acquire);  // a busy machine: sleep until notified
        }
    }

    // Splits [0, n) into one contiguous range per thread, each a multiple of `align` long (the last
    // takes the rest), and calls fn(begin, end) for each non-empty range.
    template <class Fn>
    void for_ranges(int n, int align, Fn&& fn) {
        const int parts = size();
        const int units = (n + align - 1) / align;
        run(std::min(parts, units), [&](int part) {
            const int per = units / std::min(parts, units), extra = units % std::min(parts, units);
            const int first = part * per + std::min(part, extra);
            const int count = per + (part < extra ? 1 : 0);
            const int begin = first * align, end = std::min(n, (first + count) * align);
            if (begin < end) fn(begin, end);
        });
    }

private:
    static void pause() {
#if defined(__x86_64__) || defined(_M_X64)
        _mm_pause();
#else
        std::this_thread::yield();
#endif
    }

    void work() {
        for (;;) {
            int i = next_.fetch_add(1, std::memory_order_relaxed);
            if (i >= tasks_) break;
            job_(context_, i);
        }
    }

    void worker_loop() {
        std::uint64_t seen = 0;  // not a load: a job posted before this thread started must still run
        for (;;) {
            // Spin a little (jobs arrive microseconds apart during a forward pass), then sleep.
            std::uint64_t now = seen;
            for (int spin = 0; spin < kSpinPauses; ++spin) {
                now = generation_.load(std::memory_order_acquire);
                if (now != seen) break;
                pause();
            }
            while (now == seen) {
                generation_.wait(seen, std::memory_order_acquire);
                now = generation_.load(std::memory_order_acquire);
            }
            seen = now;
            if (stop_.load(std::memory_order_relaxed)) return;
            work();
            checked_out_.fetch_add(1, std::memory_order_release);
            checked_out_.notify_one();
        }
    }

    // Spin about 50 microseconds (2000 pause instructions of ~25 ns) before sleeping: long enough to
    // cover the gaps between the jobs of a forward pass, short enough that on a busy machine, where
    // two of the pool's threads may share a core, a waiting thread soon gives the core back.
    static constexpr int kSpinPauses = 2000;

    std::vector<std::thread> workers_;
    std::atomic<std::uint64_t> generation_{0};
    std::atomic<int> next_{0};
    std::atomic<int> checked_out_{0};
    std::atomic<bool> stop_{false};
    void (*job_)(void*, int) = nullptr;
    void* context_ = nullptr;
    int tasks_ = 0;
};

}  // namespace qwen3
