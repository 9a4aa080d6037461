/* The C interface (include/qwen3.h), used from C, against reference data:
 *   - the real Qwen3 tokenizer.json: ids of cases from tests/data/tokenizer/cases.jsonl (Hugging Face
 *     `tokenizers` 0.23.2), copied below with their text;
 *   - the micro model: logits of every position against llama.cpp's (tests/data/llamacpp/micro/m1),
 *     and a greedy generation equal to llama.cpp's greedy tokens;
 *   - the sampling presets against Qwen3's model card, the version against the project's;
 *   - streaming, the chat history and its reset;
 *   - the engine: three requests stepping together, the greedy one equal to llama.cpp's tokens, a
 *     streamed one equal to its text, a cancelled one; its errors;
 *   - constrained generation: a JSON Schema enum and a GBNF grammar, alone and in the engine;
 *   - every failure: a status code and a message naming the problem, never a crash.
 * Built twice: against a build of the interface for the micro shape with an F32 KV arena
 * (tests/c_api/c_api_micro.cpp), and, where CMake builds it (QWEN3_BUILD_C_API), against the library
 * target qwen3::c (every variant, the default BF16 arena: QWEN3_TEST_LOGIT_TOLERANCE is looser).
 * Usage: test_c_api DATA_DIR. Prints "N passed, N failed". */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qwen3.h>

#ifndef QWEN3_TEST_LOGIT_TOLERANCE
#define QWEN3_TEST_LOGIT_TOLERANCE 1e-5
#endif

static int passed = 0, failed = 0;

#define CHECK(cond, ...)                                          \
    do {                                                          \
        if (cond) {                                               \
            ++passed;                                             \
        } else {                                                  \
            ++failed;                                             \
            fprintf(stderr, "%s:%d: FAILED: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                         \
            fprintf(stderr, "\n");                                \
        }                                                         \
    } while (0)

static char path_buf[4096];
static const char* data_path(const char* dir, const char* name) {
    snprintf(path_buf, sizeof path_buf, "%s/%s", dir, name);
    return path_buf;
}

static float* read_floats(const char* path, size_t count) {
    FILE* f = fopen(path, "rb");
    if (!f) return NULL;
    float* out = malloc(count * sizeof(float));
    size_t got = out ? fread(out, sizeof(float), count, f) : 0;
    fclose(f);
    if (got != count) {
        free(out);
        return NULL;
    }
    return out;
}

/* Cases from tests/data/tokenizer/cases.jsonl (Hugging Face tokenizers 0.23.2). */
struct TokenizerCase {
    const char* text;
    int32_t ids[16];
    size_t count;
};
static const struct TokenizerCase kTokenizerCases[] = {
    {"Hello, world!", {9707, 11, 1879, 0}, 4},
    {"hello world\n", {14990, 1879, 198}, 3},
    {"The quick brown fox jumps over the lazy dog.", {785, 3974, 13876, 38835, 34208, 916, 279, 15678, 5562, 13}, 10},
};

static void test_tokenizer(const char* data) {
    qwen3_tokenizer* tok = qwen3_tokenizer_load(data_path(data, "tokenizer/tokenizer.json"));
    CHECK(tok != NULL, "load: %s", qwen3_last_error());
    if (!tok) return;
    CHECK(qwen3_tokenizer_vocab_size(tok) == 151669, "vocab %zu", qwen3_tokenizer_vocab_size(tok));
    for (size_t c = 0; c < sizeof kTokenizerCases / sizeof kTokenizerCases[0]; ++c) {
        const struct TokenizerCase* tc = &kTokenizerCases[c];
        int32_t ids[64];
        size_t count = 0;
        qwen3_status s = qwen3_tokenize(tok, tc->text, strlen(tc->text), 0, ids, 64, &count);
        CHECK(s == QWEN3_OK && count == tc->count && memcmp(ids, tc->ids, count * sizeof(int32_t)) == 0,
              "case %zu: status %d, %zu ids", c, (int)s, count);
        char* text = NULL;
        s = qwen3_detokenize(tok, ids, count, 0, &text);
        CHECK(s == QWEN3_OK && text && strcmp(text, tc->text) == 0, "decode case %zu: %s", c, text ? text : "(null)");
        qwen3_string_free(text);
    }
    /* asking for the count, then a buffer too small */
    size_t count = 0;
    CHECK(qwen3_tokenize(tok, "Hello, world!", 13, 0, NULL, 0, &count) == QWEN3_ERROR_BUFFER_TOO_SMALL && count == 4,
          "count %zu", count);
    int32_t two[2];
    CHECK(qwen3_tokenize(tok, "Hello, world!", 13, 0, two, 2, &count) == QWEN3_ERROR_BUFFER_TOO_SMALL &&
              strstr(qwen3_last_error(), "4 ids") != NULL,
          "%s", qwen3_last_error());
    /* control tokens: matched by default, plain text in safe mode */
    const char* control = "<|im_start|>user";
    int32_t ids[16];
    CHECK(qwen3_tokenize(tok, control, strlen(control), 0, ids, 16, &count) == QWEN3_OK && count == 2 && ids[0] == 151644,
          "%zu ids, first %d", count, ids[0]);
    CHECK(qwen3_tokenize(tok, control, strlen(control), 1, ids, 16, &count) == QWEN3_OK && count > 2 && ids[0] != 151644,
          "plain: %zu ids, first %d", count, ids[0]);
    char* skipped = NULL;
    int32_t with_special[] = {151644, 872};
    CHECK(qwen3_detokenize(tok, with_special, 2, 1, &skipped) == QWEN3_OK && strcmp(skipped, "user") == 0, "%s", skipped);
    qwen3_string_free(skipped);
    /* invalid UTF-8 is an error naming the offset; NULL arguments are errors */
    CHECK(qwen3_tokenize(tok, "ab\xff", 3, 0, ids, 16, &count) == QWEN3_ERROR_INVALID_ARGUMENT &&
              strstr(qwen3_last_error(), "UTF-8") != NULL,
          "%s", qwen3_last_error());
    CHECK(qwen3_tokenize(NULL, "a", 1, 0, ids, 16, &count) == QWEN3_ERROR_INVALID_ARGUMENT &&
              strstr(qwen3_last_error(), "tokenizer is NULL") != NULL,
          "%s", qwen3_last_error());
    /* ids that name no token decode to nothing (as documented), around ones that do */
    int32_t with_unknown[] = {9707, 1 << 30, 11, 151669};
    char* text = NULL;
    qwen3_status s = qwen3_detokenize(tok, with_unknown, 4, 0, &text);
    CHECK(s == QWEN3_OK && text && strcmp(text, "Hello,") == 0, "status %d, \"%s\"", (int)s, text ? text : "(null)");
    qwen3_string_free(text);
    qwen3_tokenizer_free(tok);
}

/* m1 of tests/data/llamacpp/micro (tokens and greedy continuation from m1.json). */
static const int32_t kM1Tokens[] = {785, 3, 315, 1000, 374, 11, 4095, 0};
static const int32_t kM1Greedy[] = {642, 642, 642, 642, 642, 642, 642, 642, 642, 642, 642, 642, 642, 642, 642, 642};

static void test_model(const char* data) {
    qwen3_model* m = qwen3_model_load(data_path(data, "qwen3-micro-f32.gguf"), 1);
    CHECK(m != NULL, "load: %s", qwen3_last_error());
    if (!m) return;
    CHECK(strcmp(qwen3_model_variant(m), "Qwen3-micro") == 0, "%s", qwen3_model_variant(m));
    const size_t vocab = qwen3_model_vocab_size(m), n = sizeof kM1Tokens / sizeof kM1Tokens[0];
    CHECK(vocab == 4096, "vocab %zu", vocab);
    CHECK(qwen3_model_max_context(m) == 4096, "max context %zu", qwen3_model_max_context(m));

    float* logits = malloc(n * vocab * sizeof(float));
    float* golden = read_floats(data_path(data, "llamacpp/micro/m1.logits.f32"), n * vocab);
    CHECK(golden != NULL, "cannot read m1.logits.f32");
    qwen3_status s = qwen3_model_logits(m, kM1Tokens, n, logits, n * vocab);
    CHECK(s == QWEN3_OK, "logits: %s", qwen3_last_error());
    if (s == QWEN3_OK && golden) {
        double worst = 0;
        for (size_t i = 0; i < n * vocab; ++i) worst = fmax(worst, fabs((double)logits[i] - golden[i]));
        CHECK(worst < QWEN3_TEST_LOGIT_TOLERANCE, "max |logits - llama.cpp| = %g", worst);
    }
    CHECK(qwen3_model_logits(m, kM1Tokens, n, logits, vocab) == QWEN3_ERROR_BUFFER_TOO_SMALL, "%s", qwen3_last_error());
    int32_t bad = 4096;
    CHECK(qwen3_model_logits(m, &bad, 1, logits, vocab) == QWEN3_ERROR_INVALID_ARGUMENT &&
              strstr(qwen3_last_error(), "4096") != NULL,
          "%s", qwen3_last_error());
    free(logits);
    free(golden);

    /* greedy generation from the m1 prompt (as text) reproduces llama.cpp's greedy tokens (as text) */
    const qwen3_tokenizer* tok = qwen3_model_tokenizer(m);
    char* prompt = NULL;
    char* expected = NULL;
    CHECK(qwen3_detokenize(tok, kM1Tokens, n, 0, &prompt) == QWEN3_OK, "%s", qwen3_last_error());
    CHECK(qwen3_detokenize(tok, kM1Greedy, 16, 0, &expected) == QWEN3_OK, "%s", qwen3_last_error());
    int32_t again[64];
    size_t again_count = 0;
    CHECK(qwen3_tokenize(tok, prompt, strlen(prompt), 0, again, 64, &again_count) == QWEN3_OK && again_count == n &&
              memcmp(again, kM1Tokens, sizeof kM1Tokens) == 0,
          "the m1 prompt does not tokenize back to its ids (%zu ids)", again_count);
    qwen3_sampling greedy = qwen3_sampling_greedy();
    char* text = NULL;
    s = qwen3_generate(m, prompt, 16, &greedy, NULL, NULL, &text);
    CHECK(s == QWEN3_OK && text && expected && strcmp(text, expected) == 0, "generate: %s / got \"%s\" expected \"%s\"",
          qwen3_last_error(), text ? text : "", expected ? expected : "");
    qwen3_string_free(text);
    qwen3_string_free(expected);
    qwen3_string_free(prompt);

    /* too long a prompt: the arena's size in the message */
    size_t long_len = 5000 * 2;
    char* long_prompt = malloc(long_len + 1);
    for (size_t i = 0; i < long_len; i += 2) memcpy(long_prompt + i, "a ", 2);
    long_prompt[long_len] = '\0';
    s = qwen3_generate(m, long_prompt, 4, NULL, NULL, NULL, &text);
    CHECK(s == QWEN3_ERROR_CONTEXT_OVERFLOW && text == NULL && strstr(qwen3_last_error(), "4096") != NULL, "status %d: %s",
          (int)s, qwen3_last_error());
    free(long_prompt);
    CHECK(qwen3_chat(m, "bad \xc3", 0, NULL, NULL, NULL, &text) == QWEN3_ERROR_INVALID_ARGUMENT, "%s", qwen3_last_error());
    qwen3_model_free(m);

    /* files that are not models */
    CHECK(qwen3_model_load(data_path(data, "no-such-model.gguf"), 1) == NULL && strstr(qwen3_last_error(), "no-such-model"),
          "%s", qwen3_last_error());
    CHECK(qwen3_model_load(data_path(data, "tokenizer/tokenizer.json"), 1) == NULL && qwen3_last_error()[0] != '\0', "%s",
          qwen3_last_error());
    CHECK(qwen3_model_load(NULL, 1) == NULL && strstr(qwen3_last_error(), "path is NULL"), "%s", qwen3_last_error());
}

/* A streaming callback that keeps the pieces and stops after three. */
struct Pieces {
    int calls;
    int reasoning_calls;
    char text[4096];
    size_t length;
};
static int keep_three(const char* piece, size_t length, int reasoning, void* user) {
    struct Pieces* p = user;
    p->reasoning_calls += reasoning != 0;
    if (p->length + length < sizeof p->text) {
        memcpy(p->text + p->length, piece, length);
        p->length += length;
        p->text[p->length] = '\0';
    }
    return ++p->calls < 3;
}

/* on_token: every token a greedy request samples, and whether each was its logits' largest */
struct Tokens {
    int32_t ids[64];
    size_t count;
    size_t vocab;
    int all_argmax;
};
static void record_token(int32_t token, const float* logits, size_t n_vocab, void* user) {
    struct Tokens* t = user;
    size_t best = 0;
    for (size_t i = 1; i < n_vocab; ++i)
        if (logits[i] > logits[best]) best = i;
    if (best != (size_t)token) t->all_argmax = 0;
    t->vocab = n_vocab;
    if (t->count < 64) t->ids[t->count++] = token;
}

static void test_streaming(const char* data) {
    qwen3_model* m = qwen3_model_load(data_path(data, "qwen3-micro-f32.gguf"), 1);
    if (!m) return;
    struct Pieces pieces = {0, 0, "", 0};
    char* text = NULL;
    qwen3_sampling sampling = qwen3_sampling_non_thinking();
    sampling.seed = 7;
    qwen3_status s = qwen3_generate(m, "Once upon a time", 64, &sampling, keep_three, &pieces, &text);
    CHECK(s == QWEN3_OK && pieces.calls == 3 && pieces.length > 0, "status %d, %d calls", (int)s, pieces.calls);
    CHECK(text && strcmp(text, pieces.text) == 0, "streamed \"%s\", returned \"%s\"", pieces.text, text ? text : "");
    qwen3_string_free(text);

    /* chat, thinking off: the streamed pieces are the answer, which the history keeps */
    qwen3_sampling greedy = qwen3_sampling_greedy();
    struct Pieces first = {0, 0, "", 0};
    char* answer = NULL;
    s = qwen3_chat(m, "Hello", 0, &greedy, keep_three, &first, &answer);
    CHECK(s == QWEN3_OK && first.calls == 3 && first.reasoning_calls == 0 && first.length > 0, "chat: status %d (%s), %d calls",
          (int)s, qwen3_last_error(), first.calls);
    CHECK(answer && strcmp(answer, first.text) == 0, "streamed \"%s\", answer \"%s\"", first.text, answer ? answer : "");
    qwen3_string_free(answer);
    /* the second turn sees the first: its reply differs from the same message sent alone */
    struct Pieces with_history = {0, 0, "", 0}, alone = {0, 0, "", 0}, again = {0, 0, "", 0};
    CHECK(qwen3_chat(m, "Tell me more.", 0, &greedy, keep_three, &with_history, NULL) == QWEN3_OK, "%s", qwen3_last_error());
    qwen3_chat_reset(m);
    CHECK(qwen3_chat(m, "Tell me more.", 0, &greedy, keep_three, &alone, NULL) == QWEN3_OK, "%s", qwen3_last_error());
    CHECK(strcmp(with_history.text, alone.text) != 0, "the same reply with and without history: \"%s\"", alone.text);
    /* after a reset the conversation starts over: the first turn again gives the first reply */
    qwen3_chat_reset(m);
    CHECK(qwen3_chat(m, "Hello", 0, &greedy, keep_three, &again, NULL) == QWEN3_OK, "%s", qwen3_last_error());
    CHECK(strcmp(again.text, first.text) == 0, "after reset \"%s\", first \"%s\"", again.text, first.text);
    /* thinking on: reasoning pieces are marked as such */
    qwen3_chat_reset(m);
    struct Pieces thinking = {0, 0, "", 0};
    CHECK(qwen3_chat(m, "Hello", 1, &greedy, keep_three, &thinking, NULL) == QWEN3_OK && thinking.calls == 3, "%s",
          qwen3_last_error());
    qwen3_model_free(m);
}

/* The presets against Qwen3's model card (generation_config.json and its "Best Practices"):
 * thinking: temperature 0.6, top-p 0.95, top-k 20, min-p 0; non-thinking: 0.7, 0.8, 20, 0. */
static void test_sampling_and_version(void) {
    const qwen3_sampling t = qwen3_sampling_thinking(), n = qwen3_sampling_non_thinking(), g = qwen3_sampling_greedy();
    CHECK(fabsf(t.temperature - 0.6f) < 1e-6f && t.top_k == 20 && fabsf(t.top_p - 0.95f) < 1e-6f && t.min_p == 0.0f,
          "thinking %g %d %g %g", t.temperature, t.top_k, t.top_p, t.min_p);
    CHECK(fabsf(n.temperature - 0.7f) < 1e-6f && n.top_k == 20 && fabsf(n.top_p - 0.8f) < 1e-6f && n.min_p == 0.0f,
          "non-thinking %g %d %g %g", n.temperature, n.top_k, n.top_p, n.min_p);
    CHECK(g.temperature == 0.0f && t.repetition_penalty == 1.0f && t.presence_penalty == 0.0f && t.frequency_penalty == 0.0f,
          "greedy %g", g.temperature);
    CHECK(strcmp(qwen3_version(), QWEN3_PROJECT_VERSION) == 0, "version %s, project %s", qwen3_version(), QWEN3_PROJECT_VERSION);
}

static void test_engine(const char* data) {
    qwen3_model* m = qwen3_model_load(data_path(data, "qwen3-micro-f32.gguf"), 1);
    CHECK(m != NULL, "%s", qwen3_last_error());
    if (!m) return;
    qwen3_engine_params p = qwen3_engine_default_params();
    p.max_sequences = 2; /* the third request waits for a free sequence */
    p.pool_pages = 16;
    p.threads = 2;
    qwen3_engine* e = qwen3_engine_create(m, &p);
    CHECK(e != NULL, "%s", qwen3_last_error());
    if (!e) {
        qwen3_model_free(m);
        return;
    }
    {
        /* a struct from an older qwen3.h (without cached_pages) is accepted, the missing field defaulted */
        qwen3_engine_params old = p;
        old.size = (uint32_t)offsetof(qwen3_engine_params, cached_pages);
        qwen3_engine* e_old = qwen3_engine_create(m, &old);
        CHECK(e_old != NULL, "%s", qwen3_last_error());
        qwen3_engine_free(e_old);
        old.size = 4;
        CHECK(qwen3_engine_create(m, &old) == NULL && strstr(qwen3_last_error(), "size"), "%s", qwen3_last_error());
        old = p;
        old.cached_pages = -1;
        CHECK(qwen3_engine_create(m, &old) == NULL && strstr(qwen3_last_error(), "cached_pages"), "%s", qwen3_last_error());
    }
    const size_t n = sizeof kM1Tokens / sizeof kM1Tokens[0];
    qwen3_sampling greedy = qwen3_sampling_greedy();
    qwen3_request r = qwen3_request_default();
    r.prompt = kM1Tokens;
    r.prompt_length = n;
    r.max_tokens = 16;
    r.sampling = &greedy;
    r.stop_at_end_of_turn = 0;
    uint64_t greedy_id = 0, streamed_id = 0, cancelled_id = 0;
    CHECK(qwen3_engine_add(e, &r, &greedy_id) == QWEN3_OK, "%s", qwen3_last_error());
    struct Pieces pieces = {0, 0, "", 0};
    qwen3_sampling sampled = qwen3_sampling_non_thinking();
    sampled.seed = 3;
    r.sampling = &sampled;
    r.max_tokens = 40;
    r.on_text = keep_three; /* stops after its third piece */
    r.user = &pieces;
    CHECK(qwen3_engine_add(e, &r, &streamed_id) == QWEN3_OK, "%s", qwen3_last_error());
    r.on_text = NULL;
    r.max_tokens = 1000;
    CHECK(qwen3_engine_add(e, &r, &cancelled_id) == QWEN3_OK, "%s", qwen3_last_error());
    /* the same greedy request with on_token; and one built before on_token existed (smaller size) */
    struct Tokens traced = {{0}, 0, 0, 1};
    uint64_t traced_id = 0, old_id = 0;
    r.sampling = &greedy;
    r.max_tokens = 16;
    r.on_token = record_token;
    r.user = &traced;
    CHECK(qwen3_engine_add(e, &r, &traced_id) == QWEN3_OK, "%s", qwen3_last_error());
    r.size = (uint32_t)offsetof(qwen3_request, on_token);
    CHECK(qwen3_engine_add(e, &r, &old_id) == QWEN3_OK, "old-size request: %s", qwen3_last_error());
    r.size = (uint32_t)offsetof(qwen3_request, on_token) - 1;
    uint64_t refused = 0;
    CHECK(qwen3_engine_add(e, &r, &refused) != QWEN3_OK && strstr(qwen3_last_error(), "size"), "%s", qwen3_last_error());
    r.size = sizeof(qwen3_request);
    r.on_token = NULL;
    int more = 0;
    CHECK(qwen3_engine_step(e, &more) == QWEN3_OK && more == 1, "%s", qwen3_last_error());
    CHECK(qwen3_engine_cancel(e, cancelled_id) == QWEN3_OK, "%s", qwen3_last_error());
    CHECK(qwen3_engine_run(e) == QWEN3_OK, "%s", qwen3_last_error());

    qwen3_result res;
    int done = 0;
    CHECK(qwen3_engine_take(e, greedy_id, &res, &done) == QWEN3_OK && done == 1, "%s", qwen3_last_error());
    if (done) {
        CHECK(res.reason == QWEN3_STOP_MAX_TOKENS && res.token_count == 16 && memcmp(res.tokens, kM1Greedy, sizeof(int32_t) * 16) == 0,
              "engine greedy: reason %d, %zu tokens", (int)res.reason, res.token_count);
        CHECK(res.prompt_tokens == (int32_t)n && res.error[0] == '\0', "prompt tokens %d", res.prompt_tokens);
        qwen3_result_free(&res);
    }
    CHECK(qwen3_engine_take(e, streamed_id, &res, &done) == QWEN3_OK && done == 1, "%s", qwen3_last_error());
    if (done) {
        CHECK(res.reason == QWEN3_STOP_CANCELLED && pieces.calls == 3 && strcmp(res.text, pieces.text) == 0,
              "engine streaming: reason %d, %d calls, \"%s\" vs \"%s\"", (int)res.reason, pieces.calls, res.text, pieces.text);
        qwen3_result_free(&res);
    }
    CHECK(qwen3_engine_take(e, cancelled_id, &res, &done) == QWEN3_OK && done == 1 && res.reason == QWEN3_STOP_CANCELLED,
          "cancelled: %d", done ? (int)res.reason : -1);
    if (done) qwen3_result_free(&res);
    /* llama.cpp's greedy tokens, each the largest of the logits on_token saw (the micro model's 4096) */
    CHECK(traced.count == 16 && traced.vocab == 4096 && traced.all_argmax && memcmp(traced.ids, kM1Greedy, sizeof(int32_t) * 16) == 0,
          "on_token: %zu tokens of a %zu vocabulary, argmax %d", traced.count, traced.vocab, traced.all_argmax);
    const uint64_t greedy_ids[2] = {traced_id, old_id};
    for (int i = 0; i < 2; ++i) {
        CHECK(qwen3_engine_take(e, greedy_ids[i], &res, &done) == QWEN3_OK && done == 1, "%s", qwen3_last_error());
        if (!done) continue;
        CHECK(res.token_count == 16 && memcmp(res.tokens, kM1Greedy, sizeof(int32_t) * 16) == 0, "greedy request %d", i);
        qwen3_result_free(&res);
    }
    CHECK(qwen3_engine_take(e, cancelled_id, &res, &done) == QWEN3_OK && done == 0, "a result is taken once");
    qwen3_engine_stats st;
    CHECK(qwen3_engine_get_stats(e, &st) == QWEN3_OK && st.active == 0 && st.waiting == 0 && st.steps > 0 && st.pool_pages == 16,
          "stats: %d active, %d waiting", st.active, st.waiting);

    /* errors: a status and a message, the engine still usable */
    uint64_t id = 0;
    int32_t bad[2] = {1, 99999};
    r = qwen3_request_default();
    r.prompt = bad;
    r.prompt_length = 2;
    CHECK(qwen3_engine_add(e, &r, &id) == QWEN3_ERROR_INVALID_ARGUMENT && strstr(qwen3_last_error(), "99999"), "%s", qwen3_last_error());
    r.prompt_length = 0;
    CHECK(qwen3_engine_add(e, &r, &id) == QWEN3_ERROR_INVALID_ARGUMENT && strstr(qwen3_last_error(), "empty"), "%s", qwen3_last_error());
    r.size = 4;
    r.prompt_length = 1;
    CHECK(qwen3_engine_add(e, &r, &id) == QWEN3_ERROR_INVALID_ARGUMENT && strstr(qwen3_last_error(), "size"), "%s", qwen3_last_error());
    CHECK(qwen3_engine_add(NULL, &r, &id) == QWEN3_ERROR_INVALID_ARGUMENT, "%s", qwen3_last_error());
    CHECK(qwen3_engine_step(NULL, NULL) == QWEN3_ERROR_INVALID_ARGUMENT, "%s", qwen3_last_error());
    p.max_sequences = 0;
    CHECK(qwen3_engine_create(m, &p) == NULL && strstr(qwen3_last_error(), "max_sequences"), "%s", qwen3_last_error());
    CHECK(qwen3_engine_create(NULL, NULL) == NULL, "%s", qwen3_last_error());
    qwen3_engine_free(e);
    qwen3_model_free(m);
}

/* Constrained generation: a JSON Schema's enum and a GBNF grammar, alone and in the engine; errors. */
static void test_grammar(const char* dir) {
    qwen3_model* m = qwen3_model_load(data_path(dir, "qwen3-micro-f32.gguf"), 2);
    CHECK(m != NULL, "%s", qwen3_last_error());
    if (!m) return;
    qwen3_grammar* answer = qwen3_grammar_from_json_schema(m, "{\"enum\": [\"yes\", \"no\", \"maybe later\"]}");
    CHECK(answer != NULL, "%s", qwen3_last_error());
    qwen3_grammar* digits = qwen3_grammar_from_gbnf(m, "root ::= [1-9] [0-9]{2} \"-\" [0-9]{4}\n");
    CHECK(digits != NULL, "%s", qwen3_last_error());
    if (!answer || !digits) {
        qwen3_model_free(m);
        return;
    }
    qwen3_sampling sampled = qwen3_sampling_non_thinking();
    for (uint64_t seed = 1; seed <= 3; ++seed) {
        sampled.seed = seed;
        char* text = NULL;
        CHECK(qwen3_generate_constrained(m, "Answer:", 16, &sampled, answer, NULL, NULL, &text) == QWEN3_OK, "%s", qwen3_last_error());
        CHECK(text && (!strcmp(text, "\"yes\"") || !strcmp(text, "\"no\"") || !strcmp(text, "\"maybe later\"")), "enum answer: %s",
              text ? text : "(null)");
        qwen3_string_free(text);
    }
    qwen3_engine_params p = qwen3_engine_default_params();
    p.max_sequences = 2;
    p.pool_pages = 8;
    qwen3_engine* e = qwen3_engine_create(m, &p);
    CHECK(e != NULL, "%s", qwen3_last_error());
    if (e) {
        qwen3_request r = qwen3_request_default();
        const int32_t prompt[3] = {1, 2, 3};
        r.prompt = prompt;
        r.prompt_length = 3;
        r.max_tokens = 20;
        r.sampling = &sampled;
        r.grammar = digits;
        uint64_t id = 0, old_id = 0;
        CHECK(qwen3_engine_add(e, &r, &id) == QWEN3_OK, "%s", qwen3_last_error());
        r.size = (uint32_t)offsetof(qwen3_request, grammar); /* an older request: no grammar field, free text */
        CHECK(qwen3_engine_add(e, &r, &old_id) == QWEN3_OK, "%s", qwen3_last_error());
        CHECK(qwen3_engine_run(e) == QWEN3_OK, "%s", qwen3_last_error());
        qwen3_result res;
        int done = 0;
        CHECK(qwen3_engine_take(e, id, &res, &done) == QWEN3_OK && done == 1, "%s", qwen3_last_error());
        if (done) {
            int shaped = strlen(res.text) == 8 && res.text[0] >= '1' && res.text[0] <= '9' && res.text[3] == '-';
            for (int i = 1; i < 8; ++i) shaped = shaped && (i == 3 || (res.text[i] >= '0' && res.text[i] <= '9'));
            CHECK(shaped && res.reason == QWEN3_STOP_END_OF_TURN, "engine grammar: \"%s\", reason %d", res.text, (int)res.reason);
            qwen3_result_free(&res);
        }
        CHECK(qwen3_engine_take(e, old_id, &res, &done) == QWEN3_OK && done == 1, "%s", qwen3_last_error());
        if (done) qwen3_result_free(&res);
        qwen3_engine_free(e);
    }
    /* errors: NULL and a message saying where */
    CHECK(qwen3_grammar_from_gbnf(m, "root ::= \"a\" (b\n") == NULL && strstr(qwen3_last_error(), "missing ')'"), "%s", qwen3_last_error());
    CHECK(qwen3_grammar_from_gbnf(m, "root ::= \"a\" b\n") == NULL && strstr(qwen3_last_error(), "'b'"), "%s", qwen3_last_error());
    CHECK(qwen3_grammar_from_json_schema(m, "{\"type\": \"object\", \"patternProperties\": {}}") == NULL &&
              strstr(qwen3_last_error(), "patternProperties"), "%s", qwen3_last_error());
    CHECK(qwen3_grammar_from_json_schema(m, "{not json") == NULL, "%s", qwen3_last_error());
    CHECK(qwen3_grammar_from_gbnf(NULL, "root ::= \"a\"") == NULL, "%s", qwen3_last_error());
    qwen3_grammar_free(answer);
    qwen3_grammar_free(digits);
    qwen3_grammar_free(NULL);
    qwen3_model_free(m);
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DATA_DIR\n", argv[0]);
        return 2;
    }
    test_tokenizer(argv[1]);
    test_model(argv[1]);
    test_streaming(argv[1]);
    test_engine(argv[1]);
    test_grammar(argv[1]);
    test_sampling_and_version();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
