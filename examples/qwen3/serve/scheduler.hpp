// The engine behind `qwen3 serve`: one thread steps a qwen3::Engine while HTTP threads submit
// requests and read their text as it comes. A request beyond the engine's sequences waits in a
// bounded queue; beyond that, submit() refuses it (the server answers 503). Cancelling a job (the
// client went away) frees its sequence at the next step.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <qwen3/engine.hpp>
#include <qwen3/tokenizer.hpp>

#include "token_logprob.hpp"

namespace serve {

// An Engine of any variant, behind one interface (the server is compiled once, not per variant).
class Backend {
public:
    virtual ~Backend() = default;
    virtual std::uint64_t add(qwen3::EngineRequest request) = 0;  // throws qwen3::Error for a bad request
    virtual void cancel(std::uint64_t id) = 0;
    virtual std::optional<qwen3::EngineResult> take(std::uint64_t id) = 0;
    virtual bool step() = 0;
    virtual qwen3::EngineStats stats() const = 0;
    virtual const qwen3::Tokenizer& tokenizer() const = 0;
    virtual int context() const = 0;  // positions a sequence holds
    virtual std::string variant() const = 0;
};

template <class Cfg>
class EngineBackend final : public Backend {
public:
    EngineBackend(qwen3::Checkpoint checkpoint, qwen3::Tokenizer tokenizer, qwen3::EngineOptions options)
        : model_(std::move(checkpoint)), tokenizer_(std::move(tokenizer)), engine_(model_, &tokenizer_, options) {}
    std::uint64_t add(qwen3::EngineRequest request) override { return engine_.add(std::move(request)); }
    void cancel(std::uint64_t id) override { engine_.cancel(id); }
    std::optional<qwen3::EngineResult> take(std::uint64_t id) override { return engine_.take(id); }
    bool step() override { return engine_.step(); }
    qwen3::EngineStats stats() const override { return engine_.stats(); }
    const qwen3::Tokenizer& tokenizer() const override { return tokenizer_; }
    int context() const override { return Cfg::max_context; }
    std::string variant() const override { return std::string(Cfg::name); }

private:
    qwen3::Model<Cfg> model_;
    qwen3::Tokenizer tokenizer_;
    qwen3::Engine<Cfg> engine_;
};

// One request's life, shared by the HTTP thread that waits on it and the stepping thread.
struct Job {
    std::mutex mutex;
    std::condition_variable changed;
    std::string text;            // generated text not yet taken by the HTTP thread
    std::vector<TokenLogprob> logprobs;  // when asked for: tokens not yet taken by the HTTP thread
    bool finished = false;
    qwen3::EngineResult result;  // once finished
    std::atomic<bool> cancelled{false};
    std::uint64_t id = 0;
    std::chrono::steady_clock::time_point submitted;
    double first_token_seconds = -1;  // after submission; set by the stepping thread

    // Waits until there is text or the job has finished, at most `timeout`. Returns the text (moved
    // out) and whether the job has finished (then the text is all that remains).
    std::string wait(std::chrono::milliseconds timeout, bool& done);
    // The log-probabilities gathered since the last call (tokens whose text may still be held back).
    std::vector<TokenLogprob> take_logprobs();
};

struct Metrics {
    std::atomic<long long> requests{0}, rejected{0}, failed{0}, prompt_tokens{0}, completion_tokens{0};
    std::atomic<long long> ttft_count{0}, ttft_micros{0};  // time to first token, summed
    std::atomic<long long> generation_micros{0};           // time from first to last token, summed
};

class Scheduler {
public:
    // queue_limit: requests that may wait beyond the engine's `parallel` sequences.
    Scheduler(std::unique_ptr<Backend> backend, int parallel, int queue_limit);
    ~Scheduler();
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    // A running job, or null when the queue is full. Throws qwen3::Error when the engine refuses the
    // request (e.g. a token id outside the vocabulary).
    // top_logprobs >= 0 records each token's log-probability and that many alternatives.
    std::shared_ptr<Job> submit(std::vector<std::int32_t> prompt, qwen3::GenerationOptions options, int top_logprobs = -1);
    // The client is gone: stop the job at the next step.
    void cancel(Job& job);
    // New requests are refused from now on (the server answers 503); those in flight go on.
    void stop_accepting() { accepting_ = false; }
    // Cancels every request in flight.
    void cancel_all();
    // Stops taking requests; `cancel_running` cancels the jobs in flight, otherwise they finish.
    // Returns when none is left and the stepping thread has ended.
    void shutdown(bool cancel_running);

    Backend& backend() { return *backend_; }
    const Metrics& metrics() const { return metrics_; }
    int in_flight() const;
    bool accepting() const { return accepting_; }

private:
    void loop();

    std::unique_ptr<Backend> backend_;
    const int capacity_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::map<std::uint64_t, std::shared_ptr<Job>> jobs_;  // in flight
    std::atomic<bool> accepting_{true};
    bool stop_ = false;
    Metrics metrics_;
    std::thread thread_;
};

}  // namespace serve
