// The engine behind `qwen3 serve` (see scheduler.hpp).
#include "scheduler.hpp"

namespace serve {

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

std::shared_ptr<Job> Scheduler::submit(std::vector<std::int32_t> prompt, qwen3::GenerationOptions options) {
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
