/* qwen3.h - the C interface of qwen3.hpp: opaque handles, load, tokenize, generate, chat, free.
 *
 *     qwen3_model* m = qwen3_model_load("Qwen3-0.6B-Q8_0.gguf", 2);
 *     if (!m) { fprintf(stderr, "%s\n", qwen3_last_error()); return 1; }
 *     char* reply = NULL;
 *     if (qwen3_chat(m, "Why is the sky blue?", 0, NULL, NULL, NULL, &reply) == QWEN3_OK) puts(reply);
 *     qwen3_string_free(reply);
 *     qwen3_model_free(m);
 *
 * The functions are implemented in C++ by qwen3/c_api.hpp: compile it into your program once, e.g.
 * as a .cpp file holding `#include <qwen3/c_api.hpp>` (CMake: link the qwen3::c target, which does
 * exactly that). Define QWEN3_C_API_VARIANTS before that include to choose the compiled model
 * shapes (default: every named Qwen3 variant).
 *
 * Conventions: functions that can fail return a qwen3_status (QWEN3_OK is 0) or NULL, and then
 * qwen3_last_error() describes the failure (what, where, what was expected). Strings are UTF-8.
 * Strings the library returns are freed with qwen3_string_free. Handles are not thread-safe: use
 * one handle per thread (a model's weights are memory-mapped, so loading a file twice costs little
 * memory). No function throws or aborts on bad input.
 */
#ifndef QWEN3_H
#define QWEN3_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum qwen3_status {
    QWEN3_OK = 0,
    QWEN3_ERROR_IO = 1,               /* a file could not be opened, read or mapped */
    QWEN3_ERROR_FORMAT = 2,           /* a file is malformed (truncated, bad magic, out-of-range offset) */
    QWEN3_ERROR_UNSUPPORTED = 3,      /* valid, but not something this library handles */
    QWEN3_ERROR_CONFIG_MISMATCH = 4,  /* the model's shape is not a compiled variant */
    QWEN3_ERROR_MISSING_TENSOR = 5,
    QWEN3_ERROR_SHAPE_MISMATCH = 6,
    QWEN3_ERROR_INVALID_ARGUMENT = 7, /* a NULL handle, an id outside the vocabulary, invalid UTF-8 ... */
    QWEN3_ERROR_CONTEXT_OVERFLOW = 8, /* the prompt does not fit in the KV arena */
    QWEN3_ERROR_OUT_OF_MEMORY = 9,
    QWEN3_ERROR_BUFFER_TOO_SMALL = 10, /* the output buffer is too small; the needed size was stored */
    QWEN3_ERROR_INTERNAL = 11,
    QWEN3_ERROR_TOKENIZER = 12         /* tokenizer data is inconsistent, or text could not be tokenized */
} qwen3_status;

typedef struct qwen3_tokenizer qwen3_tokenizer;
typedef struct qwen3_model qwen3_model;

/* The message of the last failure on this thread ("" if none). Valid until the next call. */
const char* qwen3_last_error(void);
/* The library version, "MAJOR.MINOR.PATCH". */
const char* qwen3_version(void);
/* Frees a string returned by the library (NULL is allowed). */
void qwen3_string_free(char* s);

/* ---- tokenizer ---- */

/* Loads a tokenizer.json, a .gguf file or a model folder. NULL on failure. */
qwen3_tokenizer* qwen3_tokenizer_load(const char* path);
void qwen3_tokenizer_free(qwen3_tokenizer* tokenizer);
size_t qwen3_tokenizer_vocab_size(const qwen3_tokenizer* tokenizer);

/* Encodes `length` bytes of UTF-8 text. plain != 0: control-token strings in the text stay plain text
 * (for untrusted input); plain == 0: they become control tokens, as Hugging Face encodes. Invalid
 * UTF-8 is an error. Stores the token count in *count; writes the ids when they fit in `capacity`
 * (ids may be NULL with capacity 0 to ask for the count), else returns QWEN3_ERROR_BUFFER_TOO_SMALL. */
qwen3_status qwen3_tokenize(const qwen3_tokenizer* tokenizer, const char* text, size_t length, int plain, int32_t* ids,
                            size_t capacity, size_t* count);

/* Decodes ids to UTF-8 text (invalid byte sequences become U+FFFD); *text receives a string to free
 * with qwen3_string_free. skip_special != 0 drops control tokens such as <|im_end|>. */
qwen3_status qwen3_detokenize(const qwen3_tokenizer* tokenizer, const int32_t* ids, size_t count, int skip_special,
                              char** text);

/* ---- model ---- */

/* Loads a .gguf file or a Hugging Face folder and its tokenizer, with `threads` threads (0: the
 * default). NULL on failure. */
qwen3_model* qwen3_model_load(const char* path, int threads);
void qwen3_model_free(qwen3_model* model);
/* The compiled variant that runs the model, e.g. "Qwen3-0.6B". */
const char* qwen3_model_variant(const qwen3_model* model);
/* The model's tokenizer (owned by the model). */
const qwen3_tokenizer* qwen3_model_tokenizer(const qwen3_model* model);
size_t qwen3_model_vocab_size(const qwen3_model* model);
/* Positions of the model's KV arena. */
size_t qwen3_model_max_context(const qwen3_model* model);

/* Evaluates `count` ids as one prompt (from an empty context) and writes every position's logits,
 * count x vocab floats row-major, to `logits` (capacity in floats). */
qwen3_status qwen3_model_logits(qwen3_model* model, const int32_t* ids, size_t count, float* logits, size_t capacity);

typedef struct qwen3_sampling {
    float temperature;        /* 0: greedy */
    int32_t top_k;            /* 0: off */
    float top_p;              /* 1: off */
    float min_p;              /* 0: off */
    float repetition_penalty; /* 1: off */
    float presence_penalty;   /* 0: off */
    float frequency_penalty;  /* 0: off */
    uint64_t seed;
} qwen3_sampling;

/* Greedy decoding, and Qwen3's recommended presets for thinking and non-thinking mode. */
qwen3_sampling qwen3_sampling_greedy(void);
qwen3_sampling qwen3_sampling_thinking(void);
qwen3_sampling qwen3_sampling_non_thinking(void);

/* Receives each new piece of generated text (whole UTF-8 characters, not NUL-terminated); returns
 * non-zero to go on, 0 to stop. For chat, `reasoning` is 1 for text inside <think>...</think>. */
typedef int (*qwen3_on_text)(const char* piece, size_t length, int reasoning, void* user);

/* Raw completion of `prompt` (control-token strings in it become control tokens). Stops at
 * <|im_end|>/<|endoftext|>, after max_tokens, or when on_text returns 0. sampling NULL: greedy.
 * on_text, user and text may be NULL; *text receives the whole generated text. */
qwen3_status qwen3_generate(qwen3_model* model, const char* prompt, int32_t max_tokens, const qwen3_sampling* sampling,
                            qwen3_on_text on_text, void* user, char** text);

/* ---- constrained generation ----
 * A grammar bound to a model's vocabulary: only text of its language is sampled, and the turn ends
 * only where the text is a whole sentence. One grammar may serve any number of requests, from any
 * thread, and must outlive them. */
typedef struct qwen3_grammar qwen3_grammar;

/* From llama.cpp's GBNF text (start rule "root"; <name> and <[id]> match whole tokens), or from a
 * JSON Schema given as JSON text (the subset is documented in qwen3/grammar/json_schema.hpp). NULL on
 * error: qwen3_last_error() says what is wrong (a line and column, a schema keyword and its JSON
 * pointer). */
qwen3_grammar* qwen3_grammar_from_gbnf(const qwen3_model* model, const char* gbnf);
qwen3_grammar* qwen3_grammar_from_json_schema(const qwen3_model* model, const char* schema);
void qwen3_grammar_free(qwen3_grammar* grammar);

/* qwen3_generate whose text follows `grammar` (NULL: none). */
qwen3_status qwen3_generate_constrained(qwen3_model* model, const char* prompt, int32_t max_tokens, const qwen3_sampling* sampling,
                                       const qwen3_grammar* grammar, qwen3_on_text on_text, void* user, char** text);

/* Sends a user message in the model's conversation (history and KV arena are kept between calls)
 * and generates the reply with the Qwen3 chat template. enable_thinking != 0: reasoning mode.
 * sampling NULL: Qwen3's preset for the mode. *answer receives the answer without the reasoning. */
qwen3_status qwen3_chat(qwen3_model* model, const char* user_message, int enable_thinking, const qwen3_sampling* sampling,
                        qwen3_on_text on_text, void* user, char** answer);
/* Forgets the conversation. */
void qwen3_chat_reset(qwen3_model* model);

/* ---- engine: many sequences over one model, stepping together ----
 *
 *     qwen3_engine_params p = qwen3_engine_default_params();
 *     p.max_sequences = 8;
 *     qwen3_engine* e = qwen3_engine_create(m, &p);
 *     qwen3_request r = qwen3_request_default();
 *     r.prompt = ids; r.prompt_length = n; r.max_tokens = 64;
 *     uint64_t id;
 *     qwen3_engine_add(e, &r, &id);          (any thread)
 *     qwen3_engine_run(e);                   (or qwen3_engine_step in a loop of your own)
 *     qwen3_result res;
 *     if (qwen3_engine_take(e, id, &res) == QWEN3_OK) { puts(res.text); qwen3_result_free(&res); }
 *
 * Each step advances every active sequence by one token in one pass over the weights and feeds
 * prompt chunks of new ones; sequences sharing a prefix share its KV pages. A sequence's tokens are
 * those it gets alone. Threads: qwen3_engine_add, _cancel, _take and _stats may be called from any
 * thread; _step and _run from one thread at a time, which also calls every request's on_text. The
 * structs carry their size in their first field (set by the _default functions), so that fields can
 * be added without breaking programs built against an older qwen3.h. */

typedef struct qwen3_engine qwen3_engine;

typedef struct qwen3_engine_params {
    uint32_t size;           /* sizeof(qwen3_engine_params) */
    int32_t max_sequences;   /* stepping together, 1 .. 64 (default 8); more requests wait */
    int32_t pool_pages;      /* KV pages of 64 positions; 0: max_sequences full contexts */
    int32_t prefill_budget;  /* prompt tokens per step, 1 .. 512 (default 256) */
    int32_t share_prefixes;  /* non-zero (default): sequences share the pages of a common prefix */
    int32_t threads;         /* 0: the model's */
    int32_t cached_pages;    /* pages of finished sequences kept for later prefixes (default 64) */
} qwen3_engine_params;

typedef void (*qwen3_on_token)(int32_t token, const float* logits, size_t n_vocab, void* user);

typedef struct qwen3_request {
    uint32_t size;                 /* sizeof(qwen3_request) */
    const int32_t* prompt;         /* token ids (e.g. from qwen3_tokenize), at least one */
    size_t prompt_length;
    int32_t max_tokens;            /* default 512 */
    const qwen3_sampling* sampling; /* NULL: greedy */
    const char* const* stop;       /* stop strings (may be NULL) */
    size_t stop_count;
    int32_t stop_at_end_of_turn;   /* non-zero (default): <|im_end|> and <|endoftext|> end it */
    qwen3_on_text on_text;         /* streamed text, called from the stepping thread; may be NULL */
    void* user;
    /* Each sampled token with the n_vocab logits it was drawn from (valid during the call), from the
     * stepping thread, before the token's text reaches on_text: log-probabilities, traces. May be
     * NULL. (Added after the fields above: a request whose size ends before it has none.) */
    qwen3_on_token on_token;
    /* The grammar the generated text must follow (NULL: free text). (Added after on_token: a request
     * whose size ends before it has none.) */
    const qwen3_grammar* grammar;
} qwen3_request;

typedef enum qwen3_stop_reason {
    QWEN3_STOP_END_OF_TURN = 0,
    QWEN3_STOP_STRING = 1,
    QWEN3_STOP_MAX_TOKENS = 2,
    QWEN3_STOP_CONTEXT_FULL = 3,
    QWEN3_STOP_CANCELLED = 4,
    QWEN3_STOP_FAILED = 5          /* e.g. the KV pool is full: qwen3_result.error says why */
} qwen3_stop_reason;

typedef struct qwen3_result {
    qwen3_stop_reason reason;
    char* text;                    /* the generated text */
    int32_t* tokens;               /* every sampled token */
    size_t token_count;
    int32_t prompt_tokens;
    int32_t reused_tokens;         /* prompt tokens found in shared pages, not evaluated again */
    char* error;                   /* "" unless reason is QWEN3_STOP_FAILED */
} qwen3_result;

typedef struct qwen3_engine_stats {
    int32_t active, waiting, pool_pages, used_pages, cached_pages;
    int64_t steps, prompt_tokens, decode_tokens;
} qwen3_engine_stats;

qwen3_engine_params qwen3_engine_default_params(void);
qwen3_request qwen3_request_default(void);
/* An engine over `model` (which must outlive it) and its tokenizer. NULL on failure. */
qwen3_engine* qwen3_engine_create(qwen3_model* model, const qwen3_engine_params* params);
void qwen3_engine_free(qwen3_engine* engine);
/* Queues a request; *id identifies it. Errors: an empty prompt, ids outside the vocabulary, a
 * prompt longer than the context (QWEN3_ERROR_CONTEXT_OVERFLOW), invalid sampling. */
qwen3_status qwen3_engine_add(qwen3_engine* engine, const qwen3_request* request, uint64_t* id);
/* Stops a request at the next step (its result says QWEN3_STOP_CANCELLED); unknown ids are ignored. */
qwen3_status qwen3_engine_cancel(qwen3_engine* engine, uint64_t id);
/* One step; *more (may be NULL) is set to whether requests remain. */
qwen3_status qwen3_engine_step(qwen3_engine* engine, int* more);
/* Steps until every request has finished. */
qwen3_status qwen3_engine_run(qwen3_engine* engine);
/* The result of a finished request, once; free it with qwen3_result_free. *done (may be NULL) is 0
 * and *result untouched while it runs. */
qwen3_status qwen3_engine_take(qwen3_engine* engine, uint64_t id, qwen3_result* result, int* done);
void qwen3_result_free(qwen3_result* result);
qwen3_status qwen3_engine_get_stats(const qwen3_engine* engine, qwen3_engine_stats* stats);

#ifdef __cplusplus
}
#endif

#endif /* QWEN3_H */
