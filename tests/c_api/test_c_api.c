/* The C interface (include/qwen3.h), used from C, against reference data:
 *   - the real Qwen3 tokenizer.json: ids of cases from tests/data/tokenizer/cases.jsonl (Hugging Face
 *     `tokenizers` 0.23.2), copied below with their text;
 *   - the micro model: logits of every position against llama.cpp's (tests/data/llamacpp/micro/m1),
 *     and a greedy generation equal to llama.cpp's greedy tokens;
 *   - every failure: a status code and a message naming the problem, never a crash.
 * Usage: test_c_api DATA_DIR. Prints "N passed, N failed". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qwen3.h>

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
    int32_t out_of_range = 1 << 30;
    char* text = NULL;
    qwen3_status s = qwen3_detokenize(tok, &out_of_range, 1, 0, &text);
    CHECK(s == QWEN3_OK || (s != QWEN3_OK && qwen3_last_error()[0] != '\0'), "status %d", (int)s);
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

    float* logits = malloc(n * vocab * sizeof(float));
    float* golden = read_floats(data_path(data, "llamacpp/micro/m1.logits.f32"), n * vocab);
    CHECK(golden != NULL, "cannot read m1.logits.f32");
    qwen3_status s = qwen3_model_logits(m, kM1Tokens, n, logits, n * vocab);
    CHECK(s == QWEN3_OK, "logits: %s", qwen3_last_error());
    if (s == QWEN3_OK && golden) {
        double worst = 0;
        for (size_t i = 0; i < n * vocab; ++i) worst = fmax(worst, fabs((double)logits[i] - golden[i]));
        CHECK(worst < 1e-4, "max |logits - llama.cpp| = %g", worst);
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

/* A streaming callback that stops after three pieces. */
static int stop_after_three(const char* piece, size_t length, int reasoning, void* user) {
    (void)piece;
    (void)length;
    (void)reasoning;
    int* calls = user;
    return ++*calls < 3;
}

static void test_streaming(const char* data) {
    qwen3_model* m = qwen3_model_load(data_path(data, "qwen3-micro-f32.gguf"), 1);
    if (!m) return;
    int calls = 0;
    char* text = NULL;
    qwen3_sampling sampling = qwen3_sampling_non_thinking();
    sampling.seed = 7;
    qwen3_status s = qwen3_generate(m, "Once upon a time", 64, &sampling, stop_after_three, &calls, &text);
    CHECK(s == QWEN3_OK && calls == 3, "status %d, %d calls", (int)s, calls);
    qwen3_string_free(text);
    calls = 0;
    s = qwen3_chat(m, "Hello", 0, NULL, stop_after_three, &calls, &text);
    CHECK(s == QWEN3_OK && calls <= 3, "chat: status %d (%s), %d calls", (int)s, qwen3_last_error(), calls);
    qwen3_string_free(text);
    qwen3_chat_reset(m);
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
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
