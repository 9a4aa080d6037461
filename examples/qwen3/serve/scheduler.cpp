// The engine behind `qwen3 serve` (see scheduler.hpp).
#include "scheduler.hpp"

#include <algorithm>
#include <cmath>

namespace serve {

namespace {

// log-softmax of `token` and the `top` most likely tokens (one pass; a small heap for the top).
TokenLogprob logprob_of(std::int32_t token, std::span<const float> logits, int top) {
    float max = -INFINITY;
    for (float x : logits) max = std::max(max, x);
    double sum = 0;
    for (float x : logits) sum += std::exp(double(x) - max);
    const double lse = max + std::log(sum);
    TokenLogprob out;
    out.token = token;
    out.logprob = float(double(logits[std::size_t(token)]) - lse);
    if (top > 0) {
        auto lower = [](const std::pair<std::int32_t, float>& a, const std::pair<std::int32_t, float>& b) {
            return a.second > b.second || (a.second == b.second && a.first < b.first);
        };
        std::vector<std::pair<std::int32_t, float>>& heap = out.top;  // min-heap of the best so far
        for (std::size_t i = 0; i < logits.size(); ++i) {
            const std::pair<std::int32_t, float> c{std::int32_t(i), logits[i]};
            if (int(heap.size()) < top) {
                heap.push_back(c);
                std::push_heap(heap.begin(), heap.end(), lower);
            } else if (lower(c, heap.front())) {
                std::pop_heap(heap.begin(), heap.end(), lower);
                heap.back() = c;
                std::push_heap(heap.begin(), heap.end(), lower);
            }
        }
        std::sort_heap(heap.begin(), heap.end(), lower);
        for (auto& [id, value] : heap) value = float(double(value) - lse);
    }
    return out;
}

}  // namespace

std::string Job::wait(std::chrono::milliseconds timeout, bool& done) {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait_for(lock, timeout, [&] { return finished || !text.empty(); });
    done = finished;
    std::string out;
    out.swap(text);
    return out;
}

Scheduler::Scheduler(std::unique_ptr<Backend> backend, int parallel, int queue_limit)
    : backend_(std::move(backend)), capacity_(parallel + queue_limit) {
    thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { shutdown(true); }

int Scheduler::in_flight() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return int(jobs_.size());
}

std::vector<TokenLogprob> Job::take_logprobs() {
    std::lock_guard<std::mutex> lock(mutex);
    std::vector<TokenLogprob> out;
    out.swap(logprobs);
    return out;
}

std::shared_ptr<Job> Scheduler::submit(std::vector<std::int32_t> prompt, qwen3::GenerationOptions options, int top_logprobs) {
    auto job = std::make_shared<Job>();
    job->submitted = std::chrono::steady_clock::now();
    qwen3::EngineRequest request;
    request.prompt = std::move(prompt);
    request.options = std::move(options);
    // runs on the stepping thread; holds only the job's own lock
    request.on_text = [j = job.get()](std::string_view piece) {
        std::lock_guard<std::mutex> lock(j->mutex);
        if (j->first_token_seconds < 0)
            j->first_token_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - j->submitted).count();
        j->text += piece;
        j->changed.notify_all();
        return !j->cancelled.load();
    };
    if (top_logprobs >= 0) {
        std::vector<std::int32_t> end_of_turn;  // not part of the reply when they end it
        if (request.options.stop_at_end_of_turn)
            for (std::string_view name : {"<|im_end|>", "<|endoftext|>"})
                if (auto id = backend_->tokenizer().token_id(name)) end_of_turn.push_back(*id);
        request.on_token = [j = job.get(), top_logprobs, end_of_turn](std::int32_t token, std::span<const float> logits) {
            if (std::find(end_of_turn.begin(), end_of_turn.end(), token) != end_of_turn.end()) return;
            TokenLogprob lp = logprob_of(token, logits, top_logprobs);
            std::lock_guard<std::mutex> lock(j->mutex);
            j->logprobs.push_back(std::move(lp));
        };
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (!accepting_ || int(jobs_.size()) >= capacity_) {
        ++metrics_.rejected;
        return nullptr;
    }
    job->id = backend_->add(std::move(request));
    jobs_[job->id] = job;
    ++metrics_.requests;
    wake_.notify_all();
    return job;
}

void Scheduler::cancel(Job& job) {
    job.cancelled = true;
    backend_->cancel(job.id);
}

void Scheduler::cancel_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [id, job] : jobs_) cancel(*job);
}

void Scheduler::shutdown(bool cancel_running) {
    accepting_ = false;
    if (cancel_running) cancel_all();
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
        wake_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
}

void Scheduler::loop() {
    for (;;) {
        std::vector<std::shared_ptr<Job>> running;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
            if (jobs_.empty()) return;  // stopping, and nothing left to finish
            for (auto& [id, job] : jobs_) running.push_back(job);
        }
        try {
            backend_->step();
        } catch (const std::exception& e) {
            // the engine reports per-request failures in results; anything else ends every request
            for (auto& job : running) {
                std::lock_guard<std::mutex> lock(job->mutex);
                job->result.generation.reason = qwen3::StopReason::failed;
                job->result.error = std::string("the engine failed: ") + e.what();
                job->finished = true;
                job->changed.notify_all();
            }
            std::lock_guard<std::mutex> lock(mutex_);
            for (auto& job : running) jobs_.erase(job->id);
            metrics_.failed += static_cast<long long>(running.size());
            continue;
        }
        for (auto& job : running) {
            std::optional<qwen3::EngineResult> r = backend_->take(job->id);
            if (!r) continue;
            const qwen3::GenerationStats& st = r->generation.stats;
            metrics_.prompt_tokens += st.prompt_tokens;
            metrics_.completion_tokens += st.generated_tokens;
            if (r->generation.reason == qwen3::StopReason::failed) ++metrics_.failed;
            {
                std::lock_guard<std::mutex> lock(job->mutex);
                const double since = std::chrono::duration<double>(std::chrono::steady_clock::now() - job->submitted).count();
                if (st.generated_tokens > 0) {
                    const double ttft = std::max(0.0, since - st.generation_seconds);
                    metrics_.ttft_micros += (long long)(ttft * 1e6);
                    ++metrics_.ttft_count;
                    metrics_.generation_micros += (long long)(st.generation_seconds * 1e6);
                }
                job->result = std::move(*r);
                job->finished = true;
                job->changed.notify_all();
            }
            std::lock_guard<std::mutex> lock(mutex_);
            jobs_.erase(job->id);
        }
    }
}

}  // namespace serve
