// qwen3/engine.hpp - many sequences over one model, stepping together (continuous batching).
//
//     qwen3::Engine<qwen3::Qwen3_0_6B> engine(model, &tokenizer, {.max_sequences = 8});
//     auto id = engine.add({.prompt = tokenizer.encode("Once upon a time"), .options = {.max_tokens = 64}});
//     engine.run();                                   // or step() in a loop of your own
//     qwen3::EngineResult r = *engine.take(id);       // r.generation.text, .tokens, .reason
//
// Each step advances every active sequence by one token in one pass over the weights (the decode
// kernels read each weight once for all of them), and feeds prompt chunks of newly added sequences
// within a per-step token budget, so a long prompt does not stall the others. Sequences join and
// leave between steps. A sequence's tokens are those it would get alone: its decode arithmetic is
// the one-sequence arithmetic, and its prompt is evaluated by the same kernels in other chunks.
//
// Keys and values live in one KVPool of fixed size; sequences that start with the same tokens (a
// system prompt, tool schemas) share the pages that hold them, and up to cached_pages pages of
// finished sequences are kept for later requests. A request the pool cannot hold ends with
// StopReason::failed and a message; the others go on.
//
// Threads: add(), cancel(), take(), done() and stats() may be called from any thread; step() and
// run() from one thread at a time, which also runs every request's callbacks.
//
// Compile an engine once: QWEN3_INSTANTIATE_ENGINE(Cfg) in one .cpp file, QWEN3_EXTERN_ENGINE(Cfg)
// where others use qwen3::Engine<Cfg> (the default KV type and page size).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "error.hpp"
#include "generation.hpp"
#include "kv_pool.hpp"
#include "model.hpp"
#include "prefix_cache.hpp"
#include "sampler.hpp"
#include "tokenizer.hpp"

namespace qwen3 {

struct EngineOptions {
    int max_sequences = 8;    // sequences stepping together, 1 .. 64; more requests wait their turn
    int pool_pages = 0;       // KV pages of the pool; 0: enough for max_sequences at the full context
    int prefill_budget = 256; // prompt tokens fed per step, over all sequences (1 .. 512)
    bool share_prefixes = true;
    // Pages of finished sequences the prefix cache keeps for later requests (least recently used
    // go first beyond it). Memory in use stays within the running sequences' pages plus these.
    int cached_pages = 64;
    int threads = default_thread_count();
    Precision precision = Precision::exact;
};

struct EngineRequest {
    std::vector<std::int32_t> prompt;  // token ids; evaluated as a whole, at least one
    GenerationOptions options;         // sampling, max_tokens, stop strings, stop at end of turn
    OnText on_text;                    // streamed text (whole UTF-8 characters); false cancels
    // Called with the sequence's logits before each token is sampled (it may change them, e.g. to
    // ban tokens) and the sequence's tokens so far, prompt then generated.
    std::function<void(std::span<float> logits, std::span<const std::int32_t> tokens)> logits_processor;
    // Called with each sampled token and the logits it was drawn from (after logits_processor),
    // before the token's text is streamed: log-probabilities, traces.
    std::function<void(std::int32_t token, std::span<const float> logits)> on_token;
};

struct EngineResult {
    Generation generation;  // text, tokens, why it stopped, counts and times
    std::string error;      // what went wrong, when generation.reason is StopReason::failed
    bool grammar_error = false;  // ... and it was the request's grammar: no token fits it, or it passed its GrammarLimits
};

struct EngineStats {
    int active = 0;         // sequences stepping
    int waiting = 0;        // requests not started yet
    int pool_pages = 0;     // pages of the pool
    int used_pages = 0;     // pages holding keys and values (of sequences or the prefix cache)
    int cached_pages = 0;   // pages only the prefix cache holds, kept for later requests
    long long steps = 0;    // steps run so far
    long long prompt_tokens = 0;     // prompt tokens evaluated so far (not those reused from shared pages)
    long long decode_tokens = 0;     // decode tokens evaluated so far
    int step_prompt_tokens = 0;      // ... in the last step
    int step_decode_tokens = 0;
};

template <class Cfg, class KV = DefaultKV, int PagePositions = kDefaultPagePositions>
class Engine {
public:
    using RequestId = std::uint64_t;
    using Pool = KVPool<Cfg, KV, PagePositions>;

    // `model` (and `tokenizer`, which may be null: then no text is streamed and no stop strings
    // are allowed) must outlive the engine. Throws Error(invalid_argument) for options out of range.
    Engine(const Model<Cfg>& model, const Tokenizer* tokenizer, EngineOptions options = {})
        : model_(&model), tokenizer_(tokenizer), options_(checked(options)),
          pool_(options_.pool_pages ? options_.pool_pages : options_.max_sequences * pages_for(Cfg::max_context)),
          cache_(pool_),
          forward_(std::make_shared<ThreadPool>(options_.threads), options_.precision, options_.max_sequences + options_.prefill_budget) {
        if (tokenizer_)
            for (std::string_view name : {"<|im_end|>", "<|endoftext|>"})
                if (auto id = tokenizer_->token_id(name)) end_of_turn_.push_back(*id);
    }
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;
    ~Engine() {
        for (auto& s : active_) release_pages(*s);
    }

    // Queues a request; it starts at the next step with room. Throws Error(invalid_argument) for an
    // empty prompt, an id outside the vocabulary, invalid options or stop strings without a
    // tokenizer, Error(context_overflow) for a prompt longer than the context.
    RequestId add(EngineRequest request) {
        if (request.prompt.empty()) detail::fail(ErrorCode::invalid_argument, "Engine::add: the prompt is empty");
        detail::check_token_ids<Cfg>(request.prompt);
        if (request.prompt.size() > std::size_t(Cfg::max_context))
            detail::fail(ErrorCode::context_overflow, "Engine::add: the prompt has ", request.prompt.size(),
                         " tokens; a sequence holds ", Cfg::max_context, " positions (variant ", Cfg::name, ")");
        if (request.options.max_tokens < 0) detail::fail(ErrorCode::invalid_argument, "Engine::add: max_tokens must be >= 0");
        if (!tokenizer_ && !request.options.stop.empty())
            detail::fail(ErrorCode::invalid_argument, "Engine::add: stop strings need the engine's tokenizer");
        request.options.sampling.validate();
        detail::StopMatcher check(request.options.stop);  // throws for an empty stop string
        std::lock_guard<std::mutex> lock(mutex_);
        const RequestId id = next_id_++;
        incoming_.push_back({id, std::move(request)});
        return id;
    }

    // Stops a request at the next step (its result says StopReason::cancelled). Unknown or
    // finished ids are ignored.
    void cancel(RequestId id) {
        std::lock_guard<std::mutex> lock(mutex_);
        cancelled_.insert(id);
    }

    // The result of a finished request, once (then it is forgotten); nothing while it runs.
    std::optional<EngineResult> take(RequestId id) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = results_.find(id);
        if (it == results_.end()) return std::nullopt;
        EngineResult r = std::move(it->second);
        results_.erase(it);
        return r;
    }
    bool done(RequestId id) const {
        std::lock_guard<std::mutex> lock(mutex_);
        return results_.count(id) > 0;
    }

    EngineStats stats() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return stats_;
    }

    // Advances every active sequence by one token and feeds prompt chunks; returns whether work
    // remains (active or waiting requests).
    bool step();
    // Steps until every request has finished.
    void run() {
        while (step()) {
        }
    }

private:
    static constexpr int P = PagePositions;

    struct Pending {
        RequestId id;
        EngineRequest request;
    };

    struct Sequence {
        RequestId id;
        EngineRequest request;
        typename Pool::Sequence kv;
        std::vector<std::int32_t> tokens;  // prompt, then generated tokens (each in kv once fed)
        int prompt_size = 0;
        int computed = 0;                  // positions written in kv
        std::vector<int> chain;            // prefix-cache entries of its first full pages
        Sampler sampler;
        std::optional<StreamDecoder> decoder;
        detail::StopMatcher stops;
        Generation out;
        std::chrono::steady_clock::time_point started, first_token;
        std::optional<GrammarMatcher> matcher;  // when the request has a grammar
        TokenBitmask allowed;

        Sequence(RequestId id_, EngineRequest r, Pool& pool)
            : id(id_), request(std::move(r)), kv(pool), sampler(request.options.sampling), stops(request.options.stop) {
            if (request.options.grammar) matcher.emplace(request.options.grammar);
        }
        bool prefilling() const { return computed < prompt_size; }
    };

    static EngineOptions checked(EngineOptions o) {
        if (o.max_sequences < 1 || o.max_sequences > detail::ForwardPass<Cfg>::kMaxDecode)
            detail::fail(ErrorCode::invalid_argument, "EngineOptions::max_sequences must be 1 .. ",
                         detail::ForwardPass<Cfg>::kMaxDecode, ", got ", o.max_sequences);
        if (o.prefill_budget < 1 || o.prefill_budget > kMaxBatch)
            detail::fail(ErrorCode::invalid_argument, "EngineOptions::prefill_budget must be 1 .. ", kMaxBatch, ", got ",
                         o.prefill_budget);
        if (o.pool_pages < 0) detail::fail(ErrorCode::invalid_argument, "EngineOptions::pool_pages must be >= 0");
        if (o.cached_pages < 0) detail::fail(ErrorCode::invalid_argument, "EngineOptions::cached_pages must be >= 0");
        if (o.threads < 1) detail::fail(ErrorCode::invalid_argument, "EngineOptions::threads must be >= 1");
        return o;
    }
    static int pages_for(int positions) { return (positions + P - 1) / P; }

    // A free page, giving back pages only the prefix cache holds if need be; -1 when the pool is full.
    int allocate_page() {
        int page = pool_.allocate();
        while (page < 0 && cache_.evict_one()) page = pool_.allocate();
        return page;
    }
    // Makes kv hold positions [0, n); false when the pool cannot.
    bool reserve(Sequence& s, int n) {
        while (s.kv.capacity() < n) {
            const int page = allocate_page();
            if (page < 0) return false;
            s.kv.page_table().push_back(page);
        }
        return true;
    }
    std::string pool_full(const std::string& consequence) const {
        return "the KV pool is full (" + std::to_string(pool_.pages()) + " pages of " + std::to_string(P) + " positions); " + consequence;
    }
    void release_pages(Sequence& s) {
        for (int page : s.kv.page_table()) pool_.release(page);
        s.kv.page_table().clear();
    }

    void admit(Pending& p);
    bool waits_for_a_prefix(const Pending& p) const;
    void register_full_pages(Sequence& s);
    void take_token(Sequence& s, std::int32_t id);  // a sampled token: stops, streaming, limits
    void finish(Sequence& s, StopReason reason, std::string error = {}, bool grammar_error = false);

    const Model<Cfg>* model_;
    const Tokenizer* tokenizer_;
    EngineOptions options_;
    Pool pool_;
    detail::PrefixCache<Pool> cache_;
    detail::ForwardPass<Cfg> forward_;
    std::vector<std::int32_t> end_of_turn_;

    mutable std::mutex mutex_;  // guards what other threads touch: the next four and stats_
    std::vector<Pending> incoming_;
    std::unordered_set<RequestId> cancelled_;
    std::map<RequestId, EngineResult> results_;
    RequestId next_id_ = 1;
    EngineStats stats_;

    std::deque<Pending> waiting_;
    std::vector<std::unique_ptr<Sequence>> active_;  // in the order they started
    std::vector<std::int32_t> batch_tokens_;
    std::vector<float> batch_logits_;
    std::vector<std::int32_t> drawn_;
};

// ---------------------------------------------------------------------------------------------
// implementation

template <class Cfg, class KV, int PP>
bool Engine<Cfg, KV, PP>::step() {
    using clock = std::chrono::steady_clock;
    std::unordered_set<RequestId> cancelled;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (Pending& p : incoming_) waiting_.push_back(std::move(p));
        incoming_.clear();
        cancelled.swap(cancelled_);
    }
    // cancellations, of running and of waiting requests
    for (auto& s : active_)
        if (cancelled.count(s->id)) finish(*s, StopReason::cancelled);
    for (auto it = waiting_.begin(); it != waiting_.end();) {
        if (!cancelled.count(it->id)) {
            ++it;
            continue;
        }
        Sequence s(it->id, std::move(it->request), pool_);
        finish(s, StopReason::cancelled);
        it = waiting_.erase(it);
    }

    // new sequences, in the order they came, while there is room
    for (auto it = waiting_.begin(); it != waiting_.end() && int(active_.size()) < options_.max_sequences;) {
        if (waits_for_a_prefix(*it)) {
            ++it;
            continue;
        }
        admit(*it);
        it = waiting_.erase(it);
    }

    // the batch: one token of every generating sequence, then prompt chunks within the budget
    std::vector<detail::Segment<typename Pool::Sequence>> segments;
    std::vector<Sequence*> owners;
    std::vector<int> logit_rows;
    std::vector<Sequence*> logit_owners;
    batch_tokens_.clear();
    for (auto& sp : active_) {
        Sequence& s = *sp;
        if (s.prefilling() || s.out.stats.generated_tokens < 0) continue;
        if (s.computed >= Cfg::max_context) {
            finish(s, StopReason::context_full);
            continue;
        }
        if (!reserve(s, s.computed + 1)) {
            finish(s, StopReason::failed, pool_full("this sequence stopped at position " + std::to_string(s.computed)));
            continue;
        }
        logit_rows.push_back(int(batch_tokens_.size()));
        logit_owners.push_back(&s);
        segments.push_back({&s.kv, int(batch_tokens_.size()), 1, s.computed});
        owners.push_back(&s);
        batch_tokens_.push_back(s.tokens[std::size_t(s.computed)]);
    }
    const int decode = int(batch_tokens_.size());
    int budget = options_.prefill_budget;
    for (auto& sp : active_) {
        Sequence& s = *sp;
        if (!s.prefilling() || s.out.stats.generated_tokens < 0 || budget == 0) continue;
        const int chunk = std::min(budget, s.prompt_size - s.computed);
        if (!reserve(s, s.computed + chunk)) {
            finish(s, StopReason::failed, pool_full("the prompt could not be held"));
            continue;
        }
        budget -= chunk;
        segments.push_back({&s.kv, int(batch_tokens_.size()), chunk, s.computed});
        owners.push_back(&s);
        batch_tokens_.insert(batch_tokens_.end(), s.tokens.begin() + s.computed, s.tokens.begin() + s.computed + chunk);
        if (s.computed + chunk == s.prompt_size) {
            logit_rows.push_back(int(batch_tokens_.size()) - 1);
            logit_owners.push_back(&s);
        }
    }

    if (!batch_tokens_.empty()) {
        batch_logits_.resize(logit_rows.size() * std::size_t(Cfg::vocab));
        forward_.run(*model_, batch_tokens_.data(), int(batch_tokens_.size()),
                     std::span<const detail::Segment<typename Pool::Sequence>>(segments), decode, logit_rows, batch_logits_.data());
        for (std::size_t i = 0; i < segments.size(); ++i) {
            owners[i]->computed += segments[i].count;
            if (options_.share_prefixes) register_full_pages(*owners[i]);
        }
        const auto now = clock::now();
        auto logits_of = [&](std::size_t i) { return std::span<float>(batch_logits_).subspan(i * std::size_t(Cfg::vocab), Cfg::vocab); };
        std::vector<std::size_t> drawing;  // the rows whose sequences sample a token now
        for (std::size_t i = 0; i < logit_owners.size(); ++i) {
            Sequence& s = *logit_owners[i];
            if (s.out.tokens.empty()) {
                s.first_token = now;
                s.out.stats.prompt_seconds = std::chrono::duration<double>(now - s.started).count();
            }
            if (s.matcher && s.matcher->complete() && !s.matcher->can_continue()) {  // nothing but the end can follow
                finish(s, StopReason::end_of_turn);
                continue;
            }
            if (int(s.out.tokens.size()) >= s.request.options.max_tokens) {
                finish(s, StopReason::max_tokens);
                continue;
            }
            // user code runs on this thread, in the order the sequences started
            if (s.request.logits_processor) s.request.logits_processor(logits_of(i), s.tokens);
            drawing.push_back(i);
        }
        // each sampler reads only its own sequence's logits and state: the draws run in parallel
        // (a full-vocabulary softmax is a sizeable share of a step's time once many sequences decode)
        drawn_.assign(drawing.size(), -1);
        std::vector<std::string> failures(drawing.size());
        std::vector<char> grammar_failed(drawing.size(), 0);
        forward_.pool().run(int(drawing.size()), [&](int j) {
            const std::size_t i = drawing[std::size_t(j)];
            try {
                Sequence& s = *logit_owners[i];
                if (s.matcher) {  // the grammar's caches are shared and thread-safe; the matcher is the sequence's
                    grammar_failed[std::size_t(j)] = 1;
                    s.matcher->fill_mask(s.allowed);
                    grammar_failed[std::size_t(j)] = 0;
                    drawn_[std::size_t(j)] = s.sampler.sample(logits_of(i), s.allowed.words());
                } else {
                    drawn_[std::size_t(j)] = s.sampler.sample(logits_of(i));
                }
            } catch (const std::exception& e) {  // reported below, on this thread
                failures[std::size_t(j)] = e.what();
            }
        });
        for (std::size_t j = 0; j < drawing.size(); ++j) {
            Sequence& s = *logit_owners[drawing[j]];
            if (drawn_[j] < 0) {
                finish(s, StopReason::failed, "sampling failed: " + failures[j], grammar_failed[j] != 0);
                continue;
            }
            if (s.request.on_token) s.request.on_token(drawn_[j], logits_of(drawing[j]));
            take_token(s, drawn_[j]);
        }
    }
    std::erase_if(active_, [](const auto& s) { return s->out.stats.generated_tokens < 0; });  // finished
    // the cache keeps at most cached_pages pages nobody uses: the pool's untouched pages stay untouched
    // (uncommitted) while freed ones are reused
    while (cache_.held_pages() > options_.cached_pages && cache_.evict_one()) {
    }

    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.steps;
    stats_.step_decode_tokens = decode;
    stats_.step_prompt_tokens = int(batch_tokens_.size()) - decode;
    stats_.decode_tokens += decode;
    stats_.prompt_tokens += stats_.step_prompt_tokens;
    stats_.active = int(active_.size());
    stats_.waiting = int(waiting_.size() + incoming_.size());
    stats_.pool_pages = pool_.pages();
    stats_.used_pages = pool_.used_pages();
    stats_.cached_pages = cache_.held_pages();
    return !active_.empty() || !waiting_.empty() || !incoming_.empty();
}

// A new request whose prompt continues a prefix another sequence is still computing waits for it
// (a page of prompt or more), so that the prefix is computed and held once.
template <class Cfg, class KV, int PP>
bool Engine<Cfg, KV, PP>::waits_for_a_prefix(const Pending& p) const {
    if (!options_.share_prefixes) return false;
    for (const auto& s : active_) {
        if (!s->prefilling()) continue;
        const std::size_t most = std::min(p.request.prompt.size() - 1, std::size_t(s->prompt_size));
        std::size_t n = 0;
        while (n < most && p.request.prompt[n] == s->tokens[n]) ++n;
        if (int(n) > s->computed && int(n) >= P) return true;
    }
    return false;
}

template <class Cfg, class KV, int PP>
void Engine<Cfg, KV, PP>::admit(Pending& p) {
    auto seq = std::make_unique<Sequence>(p.id, std::move(p.request), pool_);
    Sequence& s = *seq;
    s.started = std::chrono::steady_clock::now();
    s.tokens = s.request.prompt;
    s.prompt_size = int(s.tokens.size());
    s.out.stats.prompt_tokens = s.prompt_size;
    if (tokenizer_) s.decoder.emplace(*tokenizer_);
    // penalties see the prompt, as Generator's do
    const std::size_t history = s.request.options.sampling.penalty_last_n < 0 ? s.tokens.size()
                                                                               : std::size_t(s.request.options.sampling.penalty_last_n);
    for (std::size_t i = s.tokens.size() - std::min(history, s.tokens.size()); i < s.tokens.size(); ++i) s.sampler.accept(s.tokens[i]);

    if (options_.share_prefixes) {
        // the last prompt token is always evaluated, for its logits
        const int limit = s.prompt_size - 1;
        auto m = cache_.match(s.tokens, limit);
        // a running sequence may hold more of the prefix than the cache (its pages not yet full)
        const Sequence* best = nullptr;
        int best_n = m.positions();
        for (const auto& other : active_) {
            const int most = std::min(limit, other->computed);
            int n = 0;
            while (n < most && other->tokens[std::size_t(n)] == s.tokens[std::size_t(n)]) ++n;
            if (n > best_n) best = other.get(), best_n = n;
        }
        if (best) {
            for (int page : m.pages) pool_.release(page);
            const int full = best_n / P;
            for (int i = 0; i < full; ++i) {
                pool_.retain(best->kv.page_table()[std::size_t(i)]);
                s.kv.page_table().push_back(best->kv.page_table()[std::size_t(i)]);
            }
            s.chain.assign(best->chain.begin(), best->chain.begin() + std::min<std::ptrdiff_t>(full, std::ptrdiff_t(best->chain.size())));
            m.copy_from = best_n % P ? best->kv.page_table()[std::size_t(full)] : -1;
            m.copy_count = best_n % P;
        } else {
            s.kv.page_table() = m.pages;
            s.chain = m.chain;
        }
        s.computed = int(s.kv.page_table().size()) * P;
        if (m.copy_count > 0) {
            const int page = allocate_page();
            if (page >= 0) {
                pool_.copy_positions(page, m.copy_from, m.copy_count);
                s.kv.page_table().push_back(page);
                s.computed += m.copy_count;
            }
        }
        s.out.stats.reused_tokens = s.computed;
    }
    active_.push_back(std::move(seq));
}

// Pages the sequence filled this step go to the prefix cache (keyed by their tokens and the page
// before them), as long as every earlier page is there too.
template <class Cfg, class KV, int PP>
void Engine<Cfg, KV, PP>::register_full_pages(Sequence& s) {
    while (int(s.chain.size()) < s.computed / P && s.chain.size() < s.kv.page_table().size()) {
        const std::size_t i = s.chain.size();
        const int parent = i == 0 ? -1 : s.chain.back();
        if (parent == -2) return;  // the chain broke earlier
        const int e = cache_.add_full(parent, std::span<const std::int32_t>(s.tokens).subspan(i * P, P), s.kv.page_table()[i]);
        s.chain.push_back(e);
    }
}

template <class Cfg, class KV, int PP>
void Engine<Cfg, KV, PP>::take_token(Sequence& s, std::int32_t id) {
    const GenerationOptions& o = s.request.options;
    s.out.tokens.push_back(id);
    if (s.matcher && !s.matcher->accept_token(id)) return finish(s, StopReason::failed, "sampled a token outside the grammar");
    const bool ends_turn = std::find(end_of_turn_.begin(), end_of_turn_.end(), id) != end_of_turn_.end();
    if ((o.stop_at_end_of_turn && ends_turn) || (s.matcher && s.matcher->finished())) return finish(s, StopReason::end_of_turn);
    s.sampler.accept(id);
    s.tokens.push_back(id);
    if (s.decoder) {
        bool stopped = false;
        const std::string text = s.stops.push(s.decoder->push(id), stopped);
        if (!text.empty()) {
            s.out.text += text;
            if (s.request.on_text && !s.request.on_text(text)) return finish(s, StopReason::cancelled);
        }
        if (stopped) return finish(s, StopReason::stop_string);
    }
    if (int(s.out.tokens.size()) >= o.max_tokens) return finish(s, StopReason::max_tokens);
    if (s.computed >= Cfg::max_context) return finish(s, StopReason::context_full);
}

template <class Cfg, class KV, int PP>
void Engine<Cfg, KV, PP>::finish(Sequence& s, StopReason reason, std::string error, bool grammar_error) {
    if (s.out.stats.generated_tokens < 0) return;  // already finished
    s.out.reason = reason;
    if (s.decoder && reason != StopReason::stop_string && reason != StopReason::cancelled && reason != StopReason::failed) {
        bool stopped = false;
        std::string tail = s.stops.push(s.decoder->finish(), stopped);
        if (!stopped) tail += s.stops.flush();
        else s.out.reason = StopReason::stop_string;
        s.out.text += tail;
        if (!tail.empty() && s.request.on_text) s.request.on_text(tail);
    }
    const int generated = int(s.out.tokens.size());
    if (s.out.tokens.size() && s.first_token.time_since_epoch().count())
        s.out.stats.generation_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - s.first_token).count();
    // the last, partial page stays findable for later requests that continue these tokens
    if (options_.share_prefixes && !s.kv.page_table().empty() && s.computed % P && int(s.chain.size()) == s.computed / P &&
        int(s.kv.page_table().size()) > s.computed / P) {
        const int parent = s.chain.empty() ? -1 : s.chain.back();
        cache_.add_partial(parent, std::span<const std::int32_t>(s.tokens).subspan(std::size_t(s.computed / P * P), std::size_t(s.computed % P)),
                           s.kv.page_table()[std::size_t(s.computed / P)]);
    }
    release_pages(s);
    EngineResult r;
    r.generation = std::move(s.out);
    r.generation.stats.generated_tokens = generated;
    r.error = std::move(error);
    r.grammar_error = grammar_error;
    s.out.stats.generated_tokens = -1;  // marks the sequence finished
    std::lock_guard<std::mutex> lock(mutex_);
    results_[s.id] = std::move(r);
}

}  // namespace qwen3

#define QWEN3_EXTERN_ENGINE(...) extern template class qwen3::Engine<__VA_ARGS__>;
#define QWEN3_INSTANTIATE_ENGINE(...) template class qwen3::Engine<__VA_ARGS__>;
