// qwen3/c_api.hpp - the implementation of the C interface declared in qwen3.h.
//
// Include this from exactly one C++ translation unit of a program (the qwen3::c CMake target is
// such a file). Every compiled variant costs compile time and code size; to compile fewer, define
// QWEN3_C_API_VARIANTS before the include, e.g.
//
//     #define QWEN3_C_API_VARIANTS qwen3::ConfigList<qwen3::Qwen3_0_6B, qwen3::Qwen3_4B>
//     #include <qwen3/c_api.hpp>
//
// Every C function catches every exception: a qwen3::Error becomes its status code and message,
// std::bad_alloc QWEN3_ERROR_OUT_OF_MEMORY, anything else QWEN3_ERROR_INTERNAL.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <string>

#include "../qwen3.h"
#include "qwen3.hpp"

#ifndef QWEN3_C_API_VARIANTS
#define QWEN3_C_API_VARIANTS qwen3::NamedVariants
#endif

struct qwen3_tokenizer {
    qwen3::Tokenizer tokenizer;
};

// One loaded model with its tokenizer and one conversation (a KV arena), type-erased over the
// compiled variants.
struct qwen3_model {
    explicit qwen3_model(qwen3::Tokenizer t) : tokenizer{std::move(t)} {}
    virtual ~qwen3_model() = default;
    virtual const char* variant() const = 0;
    virtual std::size_t vocab_size() const = 0;
    virtual std::size_t max_context() const = 0;
    virtual void logits(const std::int32_t* ids, std::size_t count, float* out) = 0;
    virtual qwen3::Generation generate(const std::vector<std::int32_t>& prompt, const qwen3::GenerationOptions& options,
                                       const qwen3::OnText& on_text) = 0;
    virtual qwen3::Reply chat(std::string message, bool enable_thinking, const qwen3::SamplerParams* sampling,
                              const qwen3::OnReply& on_reply) = 0;
    virtual void chat_reset() = 0;
    virtual qwen3_engine* make_engine(qwen3::EngineOptions options, int threads) = 0;  // threads 0: the model's

    qwen3_tokenizer tokenizer;
};

struct qwen3_grammar {
    std::shared_ptr<const qwen3::TokenGrammar> grammar;
};

// An engine over one model, type-erased over the compiled variants.
struct qwen3_engine {
    virtual ~qwen3_engine() = default;
    virtual std::uint64_t add(qwen3::EngineRequest request) = 0;
    virtual void cancel(std::uint64_t id) = 0;
    virtual bool step() = 0;
    virtual std::optional<qwen3::EngineResult> take(std::uint64_t id) = 0;
    virtual qwen3::EngineStats stats() const = 0;
};

namespace qwen3::detail::c_api {

static_assert(int(StopReason::end_of_turn) == QWEN3_STOP_END_OF_TURN && int(StopReason::stop_string) == QWEN3_STOP_STRING &&
              int(StopReason::max_tokens) == QWEN3_STOP_MAX_TOKENS && int(StopReason::context_full) == QWEN3_STOP_CONTEXT_FULL &&
              int(StopReason::cancelled) == QWEN3_STOP_CANCELLED && int(StopReason::failed) == QWEN3_STOP_FAILED);

thread_local std::string last_error;

inline qwen3_status status_of(ErrorCode code) {
    switch (code) {
        case ErrorCode::io: return QWEN3_ERROR_IO;
        case ErrorCode::format: return QWEN3_ERROR_FORMAT;
        case ErrorCode::unsupported: return QWEN3_ERROR_UNSUPPORTED;
        case ErrorCode::shape_mismatch: return QWEN3_ERROR_SHAPE_MISMATCH;
        case ErrorCode::config_mismatch: return QWEN3_ERROR_CONFIG_MISMATCH;
        case ErrorCode::missing_tensor: return QWEN3_ERROR_MISSING_TENSOR;
        case ErrorCode::context_overflow: return QWEN3_ERROR_CONTEXT_OVERFLOW;
        case ErrorCode::invalid_argument: return QWEN3_ERROR_INVALID_ARGUMENT;
        case ErrorCode::tokenizer: return QWEN3_ERROR_TOKENIZER;
        case ErrorCode::cancelled: return QWEN3_ERROR_INVALID_ARGUMENT;
    }
    return QWEN3_ERROR_INTERNAL;
}

inline qwen3_status fail(qwen3_status status, std::string message) {
    last_error = std::move(message);
    return status;
}

// Runs fn (returning qwen3_status) with every exception turned into a status and a message.
template <class Fn>
qwen3_status guarded(Fn&& fn) noexcept {
    try {
        last_error.clear();
        return fn();
    } catch (const Error& e) {
        return fail(status_of(e.code()), e.what());
    } catch (const std::bad_alloc&) {
        return fail(QWEN3_ERROR_OUT_OF_MEMORY, "out of memory");
    } catch (const std::exception& e) {
        return fail(QWEN3_ERROR_INTERNAL, std::string("internal error: ") + e.what());
    } catch (...) {
        return fail(QWEN3_ERROR_INTERNAL, "internal error: unknown exception");
    }
}

inline qwen3_status null_argument(const char* function, const char* argument) {
    return fail(QWEN3_ERROR_INVALID_ARGUMENT, std::string(function) + ": " + argument + " is NULL");
}

inline char* copy_string(std::string_view s) {
    char* out = static_cast<char*>(std::malloc(s.size() + 1));
    if (!out) throw std::bad_alloc();
    std::memcpy(out, s.data(), s.size());
    out[s.size()] = '\0';
    return out;
}

inline SamplerParams sampler_params(const qwen3_sampling& s) {
    SamplerParams p = SamplerParams::greedy();
    p.temperature = s.temperature;
    p.top_k = s.top_k;
    p.top_p = s.top_p;
    p.min_p = s.min_p;
    p.repetition_penalty = s.repetition_penalty;
    p.presence_penalty = s.presence_penalty;
    p.frequency_penalty = s.frequency_penalty;
    p.seed = s.seed;
    return p;
}

inline qwen3_sampling c_sampling(const SamplerParams& p) {
    return {p.temperature, p.top_k, p.top_p, p.min_p, p.repetition_penalty, p.presence_penalty, p.frequency_penalty, p.seed};
}

template <class Cfg>
struct EngineOf final : qwen3_engine {
    EngineOf(const Model<Cfg>& model, const Tokenizer& tokenizer, const EngineOptions& options) : engine(model, &tokenizer, options) {}
    std::uint64_t add(EngineRequest request) override { return engine.add(std::move(request)); }
    void cancel(std::uint64_t id) override { engine.cancel(id); }
    bool step() override { return engine.step(); }
    std::optional<EngineResult> take(std::uint64_t id) override { return engine.take(id); }
    EngineStats stats() const override { return engine.stats(); }
    Engine<Cfg> engine;
};

template <class Cfg>
struct ModelOf final : qwen3_model {
    ModelOf(Checkpoint checkpoint, Tokenizer tok, int threads)
        : qwen3_model(std::move(tok)), model(std::move(checkpoint)),
          options{threads > 0 ? threads : default_thread_count(), Precision::exact} {}
    const char* variant() const override { return Cfg::name.data(); }
    std::size_t vocab_size() const override { return Cfg::vocab; }
    std::size_t max_context() const override { return Cfg::max_context; }

    void logits(const std::int32_t* ids, std::size_t count, float* out) override {
        Session<Cfg>& s = scratch_session();
        s.reset();
        s.eval(std::span<const std::int32_t>(ids, count), std::span<float>(out, count * std::size_t(Cfg::vocab)));
        s.reset();
    }
    Generation generate(const std::vector<std::int32_t>& prompt, const GenerationOptions& o, const OnText& on_text) override {
        if (!generator) generator = std::make_unique<Generator<Cfg>>(model, tokenizer.tokenizer, options);
        return generator->generate(prompt, o, on_text);
    }
    Reply chat(std::string message, bool enable_thinking, const SamplerParams* sampling, const OnReply& on_reply) override {
        if (!conversation) {
            ConversationOptions co;
            co.session = options;
            conversation = std::make_unique<Conversation<Cfg>>(model, tokenizer.tokenizer, co);
        }
        conversation->options().enable_thinking = enable_thinking;
        conversation->options().sampling = sampling ? std::optional<SamplerParams>(*sampling) : std::nullopt;
        return conversation->send(std::move(message), on_reply);
    }
    void chat_reset() override {
        if (conversation) conversation->clear();
    }
    qwen3_engine* make_engine(EngineOptions o, int threads) override {
        o.threads = threads > 0 ? threads : options.threads;
        return new EngineOf<Cfg>(model, tokenizer.tokenizer, o);
    }

    Session<Cfg>& scratch_session() {
        if (!session) session = std::make_unique<Session<Cfg>>(model, options);
        return *session;
    }

    Model<Cfg> model;
    SessionOptions options;
    // made on first use: each holds a KV arena (address space, committed as used)
    std::unique_ptr<Session<Cfg>> session;
    std::unique_ptr<Generator<Cfg>> generator;
    std::unique_ptr<Conversation<Cfg>> conversation;
};

}  // namespace qwen3::detail::c_api

extern "C" {

const char* qwen3_last_error(void) { return qwen3::detail::c_api::last_error.c_str(); }

const char* qwen3_version(void) { return "0.1.0"; }

void qwen3_string_free(char* s) { std::free(s); }

qwen3_tokenizer* qwen3_tokenizer_load(const char* path) {
    using namespace qwen3::detail::c_api;
    qwen3_tokenizer* out = nullptr;
    guarded([&] {
        if (!path) return null_argument("qwen3_tokenizer_load", "path");
        out = new qwen3_tokenizer{qwen3::Tokenizer::load(path)};
        return QWEN3_OK;
    });
    return out;
}

void qwen3_tokenizer_free(qwen3_tokenizer* tokenizer) { delete tokenizer; }

size_t qwen3_tokenizer_vocab_size(const qwen3_tokenizer* tokenizer) {
    return tokenizer ? tokenizer->tokenizer.vocab_size() : 0;
}

qwen3_status qwen3_tokenize(const qwen3_tokenizer* tokenizer, const char* text, size_t length, int plain, int32_t* ids,
                            size_t capacity, size_t* count) {
    using namespace qwen3::detail::c_api;
    return guarded([&] {
        if (!tokenizer) return null_argument("qwen3_tokenize", "tokenizer");
        if (!text && length > 0) return null_argument("qwen3_tokenize", "text");
        if (!count) return null_argument("qwen3_tokenize", "count");
        if (!ids && capacity > 0) return null_argument("qwen3_tokenize", "ids");
        qwen3::EncodeOptions options;
        options.match_added_tokens = plain == 0;
        options.reject_invalid_utf8 = true;
        const std::vector<qwen3::TokenId> out = tokenizer->tokenizer.encode(std::string_view(text ? text : "", length), options);
        *count = out.size();
        if (out.size() > capacity)
            return fail(QWEN3_ERROR_BUFFER_TOO_SMALL, "qwen3_tokenize: " + std::to_string(out.size()) +
                                                          " ids do not fit in a buffer of " + std::to_string(capacity));
        std::copy(out.begin(), out.end(), ids);
        return QWEN3_OK;
    });
}

qwen3_status qwen3_detokenize(const qwen3_tokenizer* tokenizer, const int32_t* ids, size_t count, int skip_special,
                              char** text) {
    using namespace qwen3::detail::c_api;
    return guarded([&] {
        if (!tokenizer) return null_argument("qwen3_detokenize", "tokenizer");
        if (!ids && count > 0) return null_argument("qwen3_detokenize", "ids");
        if (!text) return null_argument("qwen3_detokenize", "text");
        *text = nullptr;
        const std::string s = tokenizer->tokenizer.decode(std::span<const qwen3::TokenId>(ids, count), skip_special != 0);
        *text = copy_string(s);
        return QWEN3_OK;
    });
}

qwen3_model* qwen3_model_load(const char* path, int threads) {
    using namespace qwen3::detail::c_api;
    qwen3_model* out = nullptr;
    guarded([&] {
        if (!path) return null_argument("qwen3_model_load", "path");
        if (threads < 0) return fail(QWEN3_ERROR_INVALID_ARGUMENT, "qwen3_model_load: threads must be >= 0");
        qwen3::Checkpoint checkpoint = qwen3::Checkpoint::open(path);
        qwen3::Tokenizer tokenizer = qwen3::Tokenizer::load(path);
        const qwen3::ModelParams params = checkpoint.params();
        out = qwen3::with_variant<QWEN3_C_API_VARIANTS>(params, [&]<class Cfg>() -> qwen3_model* {
            return new ModelOf<Cfg>(std::move(checkpoint), std::move(tokenizer), threads);
        });
        return QWEN3_OK;
    });
    return out;
}

void qwen3_model_free(qwen3_model* model) { delete model; }

const char* qwen3_model_variant(const qwen3_model* model) { return model ? model->variant() : ""; }

const qwen3_tokenizer* qwen3_model_tokenizer(const qwen3_model* model) { return model ? &model->tokenizer : nullptr; }

size_t qwen3_model_vocab_size(const qwen3_model* model) { return model ? model->vocab_size() : 0; }

size_t qwen3_model_max_context(const qwen3_model* model) { return model ? model->max_context() : 0; }

qwen3_status qwen3_model_logits(qwen3_model* model, const int32_t* ids, size_t count, float* logits, size_t capacity) {
    using namespace qwen3::detail::c_api;
    return guarded([&] {
        if (!model) return null_argument("qwen3_model_logits", "model");
        if (!ids || count == 0) return fail(QWEN3_ERROR_INVALID_ARGUMENT, "qwen3_model_logits: no ids given");
        if (!logits) return null_argument("qwen3_model_logits", "logits");
        const std::size_t needed = count * model->vocab_size();
        if (capacity < needed)
            return fail(QWEN3_ERROR_BUFFER_TOO_SMALL, "qwen3_model_logits: " + std::to_string(count) + " x " +
                                                          std::to_string(model->vocab_size()) + " logits do not fit in " +
                                                          std::to_string(capacity) + " floats");
        model->logits(ids, count, logits);
        return QWEN3_OK;
    });
}

qwen3_sampling qwen3_sampling_greedy(void) { return qwen3::detail::c_api::c_sampling(qwen3::SamplerParams::greedy()); }
qwen3_sampling qwen3_sampling_thinking(void) { return qwen3::detail::c_api::c_sampling(qwen3::SamplerParams::thinking()); }
qwen3_sampling qwen3_sampling_non_thinking(void) { return qwen3::detail::c_api::c_sampling(qwen3::SamplerParams::non_thinking()); }

qwen3_status qwen3_generate(qwen3_model* model, const char* prompt, int32_t max_tokens, const qwen3_sampling* sampling,
                            qwen3_on_text on_text, void* user, char** text) {
    return qwen3_generate_constrained(model, prompt, max_tokens, sampling, nullptr, on_text, user, text);
}

namespace qwen3::detail::c_api {
inline qwen3_grammar* make_grammar(const qwen3_model* model, const char* text, bool schema, const char* function) {
    qwen3_grammar* out = nullptr;
    guarded([&] {
        if (!model) return null_argument(function, "model");
        if (!text) return null_argument(function, schema ? "schema" : "gbnf");
        Grammar g = schema ? grammar_from_json_schema(text) : Grammar::from_gbnf(text);
        out = new qwen3_grammar{TokenGrammar::create(std::move(g), model->tokenizer.tokenizer, model->vocab_size())};
        return QWEN3_OK;
    });
    return out;
}
}  // namespace qwen3::detail::c_api

qwen3_grammar* qwen3_grammar_from_gbnf(const qwen3_model* model, const char* gbnf) {
    return qwen3::detail::c_api::make_grammar(model, gbnf, false, "qwen3_grammar_from_gbnf");
}
qwen3_grammar* qwen3_grammar_from_json_schema(const qwen3_model* model, const char* schema) {
    return qwen3::detail::c_api::make_grammar(model, schema, true, "qwen3_grammar_from_json_schema");
}
void qwen3_grammar_free(qwen3_grammar* grammar) { delete grammar; }

qwen3_status qwen3_generate_constrained(qwen3_model* model, const char* prompt, int32_t max_tokens, const qwen3_sampling* sampling,
                                       const qwen3_grammar* grammar, qwen3_on_text on_text, void* user, char** text) {
    using namespace qwen3::detail::c_api;
    if (text) *text = nullptr;
    return guarded([&] {
        if (!model) return null_argument(grammar ? "qwen3_generate_constrained" : "qwen3_generate", "model");
        if (!prompt) return null_argument(grammar ? "qwen3_generate_constrained" : "qwen3_generate", "prompt");
        qwen3::EncodeOptions encode;
        encode.reject_invalid_utf8 = true;
        const std::vector<qwen3::TokenId> ids = model->tokenizer.tokenizer.encode(prompt, encode);
        qwen3::GenerationOptions options;
        options.max_tokens = max_tokens;
        if (sampling) options.sampling = sampler_params(*sampling);
        if (grammar) options.grammar = grammar->grammar;
        qwen3::OnText stream;
        if (on_text) stream = [&](std::string_view piece) { return on_text(piece.data(), piece.size(), 0, user) != 0; };
        const qwen3::Generation g = model->generate(ids, options, stream);
        if (text) *text = copy_string(g.text);
        return QWEN3_OK;
    });
}

qwen3_status qwen3_chat(qwen3_model* model, const char* user_message, int enable_thinking, const qwen3_sampling* sampling,
                        qwen3_on_text on_text, void* user, char** answer) {
    using namespace qwen3::detail::c_api;
    if (answer) *answer = nullptr;
    return guarded([&] {
        if (!model) return null_argument("qwen3_chat", "model");
        if (!user_message) return null_argument("qwen3_chat", "user_message");
        if (!qwen3::detail::unicode::is_valid_utf8(user_message))
            return fail(QWEN3_ERROR_INVALID_ARGUMENT, "qwen3_chat: the user message is not valid UTF-8");
        const qwen3::SamplerParams params = sampling ? sampler_params(*sampling) : qwen3::SamplerParams{};
        qwen3::OnReply stream;
        if (on_text)
            stream = [&](const qwen3::chat::ReplyDelta& d) {
                if (!d.reasoning.empty() && on_text(d.reasoning.data(), d.reasoning.size(), 1, user) == 0) return false;
                if (!d.answer.empty() && on_text(d.answer.data(), d.answer.size(), 0, user) == 0) return false;
                return true;
            };
        const qwen3::Reply reply = model->chat(user_message, enable_thinking != 0, sampling ? &params : nullptr, stream);
        if (answer) *answer = copy_string(reply.content);
        return QWEN3_OK;
    });
}

void qwen3_chat_reset(qwen3_model* model) {
    if (model) model->chat_reset();
}

qwen3_engine_params qwen3_engine_default_params(void) {
    const qwen3::EngineOptions o;
    return {sizeof(qwen3_engine_params), o.max_sequences, o.pool_pages, o.prefill_budget, o.share_prefixes ? 1 : 0, 0, o.cached_pages};
}

qwen3_request qwen3_request_default(void) {
    qwen3_request r{};
    r.size = sizeof(qwen3_request);
    r.max_tokens = qwen3::GenerationOptions{}.max_tokens;
    r.stop_at_end_of_turn = 1;
    return r;
}

qwen3_engine* qwen3_engine_create(qwen3_model* model, const qwen3_engine_params* params) {
    using namespace qwen3::detail::c_api;
    qwen3_engine* out = nullptr;
    guarded([&] {
        if (!model) return null_argument("qwen3_engine_create", "model");
        // a program built against an older qwen3.h passes a shorter struct: the fields it lacks
        // keep their defaults (the first version ended with `threads`)
        qwen3_engine_params p = qwen3_engine_default_params();
        if (params) {
            constexpr std::size_t first_size = offsetof(qwen3_engine_params, threads) + sizeof(int32_t);
            if (params->size < first_size)
                return fail(QWEN3_ERROR_INVALID_ARGUMENT, "qwen3_engine_create: params.size is " + std::to_string(params->size) +
                                                              "; start from qwen3_engine_default_params()");
            std::memcpy(&p, params, std::min<std::size_t>(params->size, sizeof p));
        }
        qwen3::EngineOptions o;
        o.max_sequences = p.max_sequences;
        o.pool_pages = p.pool_pages;
        o.prefill_budget = p.prefill_budget;
        o.share_prefixes = p.share_prefixes != 0;
        o.cached_pages = p.cached_pages;
        if (p.threads < 0) return fail(QWEN3_ERROR_INVALID_ARGUMENT, "qwen3_engine_create: threads must be >= 0");
        out = model->make_engine(o, p.threads);
        return QWEN3_OK;
    });
    return out;
}

void qwen3_engine_free(qwen3_engine* engine) { delete engine; }

qwen3_status qwen3_engine_add(qwen3_engine* engine, const qwen3_request* request, uint64_t* id) {
    using namespace qwen3::detail::c_api;
    return guarded([&] {
        if (!engine) return null_argument("qwen3_engine_add", "engine");
        if (!request) return null_argument("qwen3_engine_add", "request");
        if (!id) return null_argument("qwen3_engine_add", "id");
        // programs built before on_token existed pass a request that ends before it
        if (request->size < offsetof(qwen3_request, on_token))
            return fail(QWEN3_ERROR_INVALID_ARGUMENT, "qwen3_engine_add: request.size is " + std::to_string(request->size) +
                                                          "; start from qwen3_request_default()");
        const bool has_on_token = request->size >= offsetof(qwen3_request, on_token) + sizeof(qwen3_on_token);
        if (!request->prompt && request->prompt_length > 0) return null_argument("qwen3_engine_add", "request.prompt");
        if (!request->stop && request->stop_count > 0) return null_argument("qwen3_engine_add", "request.stop");
        qwen3::EngineRequest r;
        r.prompt.assign(request->prompt, request->prompt + request->prompt_length);
        r.options.max_tokens = request->max_tokens;
        if (request->sampling) r.options.sampling = sampler_params(*request->sampling);
        for (std::size_t i = 0; i < request->stop_count; ++i) {
            if (!request->stop[i]) return null_argument("qwen3_engine_add", "a stop string");
            if (!qwen3::detail::unicode::is_valid_utf8(request->stop[i]))
                return fail(QWEN3_ERROR_INVALID_ARGUMENT, "qwen3_engine_add: stop string " + std::to_string(i) + " is not valid UTF-8");
            r.options.stop.emplace_back(request->stop[i]);
        }
        r.options.stop_at_end_of_turn = request->stop_at_end_of_turn != 0;
        if (request->on_text) {
            const qwen3_on_text on_text = request->on_text;
            void* user = request->user;
            r.on_text = [on_text, user](std::string_view piece) { return on_text(piece.data(), piece.size(), 0, user) != 0; };
        }
        const bool has_grammar = request->size >= offsetof(qwen3_request, grammar) + sizeof(const qwen3_grammar*);
        if (has_grammar && request->grammar) r.options.grammar = request->grammar->grammar;
        if (has_on_token && request->on_token) {
            const qwen3_on_token on_token = request->on_token;
            void* user = request->user;
            r.on_token = [on_token, user](std::int32_t token, std::span<const float> logits) {
                on_token(token, logits.data(), logits.size(), user);
            };
        }
        *id = engine->add(std::move(r));
        return QWEN3_OK;
    });
}

qwen3_status qwen3_engine_cancel(qwen3_engine* engine, uint64_t id) {
    using namespace qwen3::detail::c_api;
    return guarded([&] {
        if (!engine) return null_argument("qwen3_engine_cancel", "engine");
        engine->cancel(id);
        return QWEN3_OK;
    });
}

qwen3_status qwen3_engine_step(qwen3_engine* engine, int* more) {
    using namespace qwen3::detail::c_api;
    return guarded([&] {
        if (!engine) return null_argument("qwen3_engine_step", "engine");
        const bool m = engine->step();
        if (more) *more = m ? 1 : 0;
        return QWEN3_OK;
    });
}

qwen3_status qwen3_engine_run(qwen3_engine* engine) {
    using namespace qwen3::detail::c_api;
    return guarded([&] {
        if (!engine) return null_argument("qwen3_engine_run", "engine");
        while (engine->step()) {
        }
        return QWEN3_OK;
    });
}

qwen3_status qwen3_engine_take(qwen3_engine* engine, uint64_t id, qwen3_result* result, int* done) {
    using namespace qwen3::detail::c_api;
    if (done) *done = 0;
    return guarded([&] {
        if (!engine) return null_argument("qwen3_engine_take", "engine");
        if (!result) return null_argument("qwen3_engine_take", "result");
        std::optional<qwen3::EngineResult> r = engine->take(id);
        if (!r) return QWEN3_OK;
        const qwen3::Generation& g = r->generation;
        qwen3_result out{};
        out.reason = qwen3_stop_reason(int(g.reason));
        out.prompt_tokens = g.stats.prompt_tokens;
        out.reused_tokens = g.stats.reused_tokens;
        out.token_count = g.tokens.size();
        try {
            out.text = copy_string(g.text);
            out.error = copy_string(r->error);
            out.tokens = static_cast<int32_t*>(std::malloc(std::max<std::size_t>(1, g.tokens.size()) * sizeof(int32_t)));
            if (!out.tokens) throw std::bad_alloc();
        } catch (...) {
            qwen3_result_free(&out);
            throw;
        }
        std::copy(g.tokens.begin(), g.tokens.end(), out.tokens);
        *result = out;
        if (done) *done = 1;
        return QWEN3_OK;
    });
}

void qwen3_result_free(qwen3_result* result) {
    if (!result) return;
    std::free(result->text);
    std::free(result->tokens);
    std::free(result->error);
    result->text = result->error = nullptr;
    result->tokens = nullptr;
    result->token_count = 0;
}

qwen3_status qwen3_engine_get_stats(const qwen3_engine* engine, qwen3_engine_stats* stats) {
    using namespace qwen3::detail::c_api;
    return guarded([&] {
        if (!engine) return null_argument("qwen3_engine_get_stats", "engine");
        if (!stats) return null_argument("qwen3_engine_get_stats", "stats");
        const qwen3::EngineStats s = engine->stats();
        *stats = {s.active, s.waiting, s.pool_pages, s.used_pages, s.cached_pages, s.steps, s.prompt_tokens, s.decode_tokens};
        return QWEN3_OK;
    });
}

}  // extern "C"
