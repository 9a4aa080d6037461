// Tokenizer throughput, one thread: encode MB/s and tokens/s on the deterministic corpora of
// tools/gen_tokenizer_corpus.py, load times, and linear scaling on one long word.
//
// usage: bench_tokenizer CORPUS_DIR [TOKENIZER_JSON]
//   CORPUS_DIR holds english.txt and mixed.txt (python3 tools/gen_tokenizer_corpus.py CORPUS_DIR 10).
//   TOKENIZER_JSON defaults to tests/data/tokenizer/tokenizer.json.
//
// "chunked" encodes the text in ~2 KB pieces cut at spaces exactly as tools/bench_hf_tokenizer.mjs
// cuts them for Hugging Face (positions counted in UTF-16 units, as JavaScript's slice does), so the
// token counts and MB/s compare with that script's output measured in the same session; "whole"
// encodes the file in one call. Best of 3 passes, as the script does.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <qwen3/format/gguf.hpp>
#include <qwen3/format/gguf_writer.hpp>
#include <qwen3/format/json.hpp>
#include <qwen3/format/mmap.hpp>
#include <qwen3/tokenizer.hpp>

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
double thread_seconds() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}

// Chunk boundaries of tools/bench_hf_tokenizer.mjs: from i, go 2048 UTF-16 units, then on to the next space,
// at most to i + 2300. Returned as byte offsets (a boundary inside a surrogate pair, possible in
// JavaScript only when no space follows within 300 units, moves to the end of that character).
std::vector<std::string_view> js_chunks(std::string_view text) {
    std::vector<std::size_t> byte_at;  // byte offset of each UTF-16 unit
    for (std::size_t b = 0; b < text.size();) {
        int n = qwen3::detail::unicode::utf8_lead_length(static_cast<unsigned char>(text[b]));
        byte_at.push_back(b);
        if (n == 4) byte_at.push_back(b + 4);  // second unit of a surrogate pair: cut after the character
        b += std::size_t(n);
    }
    const std::size_t units = byte_at.size();
    byte_at.push_back(text.size());
    std::vector<std::string_view> chunks;
    for (std::size_t i = 0; i < units;) {
        std::size_t j = std::min(units, i + 2048);
        while (j < units && text[byte_at[j]] != ' ' && j < i + 2300) ++j;
        chunks.push_back(text.substr(byte_at[i], byte_at[j] - byte_at[i]));
        i = j;
    }
    return chunks;
}

struct Result {
    double seconds = 1e30;
    std::size_t tokens = 0;
};

template <typename Fn>
Result best_of_3(Fn&& fn) {
    Result r;
    for (int rep = 0; rep < 3; ++rep) {
        Clock::time_point t = Clock::now();
        std::size_t tokens = fn();
        r.seconds = std::min(r.seconds, seconds_since(t));
        r.tokens = tokens;
    }
    return r;
}

void print_row(const char* corpus, const char* mode, std::size_t bytes, const Result& r) {
    std::printf("| %-11s | %-7s | %7.2f | %11.0f | %9zu |\n", corpus, mode, double(bytes) / r.seconds / 1e6,
                double(r.tokens) / r.seconds, r.tokens);
}

// A GGUF holding only the tokenizer metadata, written the way llama.cpp's converter writes it.
void write_vocab_gguf(const std::string& tokenizer_json, const std::string& out) {
    const qwen3::json::Value root = qwen3::json::parse(qwen3::read_text_file(tokenizer_json), tokenizer_json);
    std::size_t n = 151936;
    std::vector<std::string> tokens(n);
    std::vector<std::int32_t> types(n, 5);
    for (const auto& m : root.at("model").at("vocab").as_object()) {
        tokens[std::size_t(m.value.as_int())] = m.key;
        types[std::size_t(m.value.as_int())] = 1;
    }
    for (const auto& a : root.at("added_tokens").as_array()) {
        const std::string& c = a.at("content").as_string();
        tokens[std::size_t(a.at("id").as_int())] = c;
        bool control = a.at("special").as_bool() || (c.starts_with("<|") && c.ends_with("|>"));
        types[std::size_t(a.at("id").as_int())] = control ? 3 : 4;
    }
    for (std::size_t i = 0; i < n; ++i)
        if (types[i] == 5) tokens[i] = "[PAD" + std::to_string(i) + "]";
    std::vector<std::string> merges;
    for (const auto& m : root.at("model").at("merges").as_array())
        merges.push_back(m.as_array()[0].as_string() + " " + m.as_array()[1].as_string());
    qwen3::gguf::Writer w;
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", "qwen2");
    w.set_strings("tokenizer.ggml.tokens", std::vector<std::string_view>(tokens.begin(), tokens.end()));
    w.set_i32s("tokenizer.ggml.token_type", types);
    w.set_strings("tokenizer.ggml.merges", std::vector<std::string_view>(merges.begin(), merges.end()));
    w.write(out);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: bench_tokenizer CORPUS_DIR [TOKENIZER_JSON]\n");
        return 2;
    }
    const std::string corpus_dir = argv[1];
    const std::string tokenizer_json = argc > 2 ? argv[2] : std::string(QWEN3_SOURCE_DIR "/tests/data/tokenizer/tokenizer.json");
    try {
        // load times (best of 3)
        double json_load = 1e30, gguf_load = 1e30;
        std::optional<qwen3::Tokenizer> tok;
        for (int rep = 0; rep < 3; ++rep) {
            Clock::time_point t = Clock::now();
            tok.emplace(qwen3::Tokenizer::from_tokenizer_json(tokenizer_json));
            json_load = std::min(json_load, seconds_since(t));
        }
        const std::string gguf_path = (std::filesystem::temp_directory_path() / "bench_tokenizer_vocab.gguf").string();
        write_vocab_gguf(tokenizer_json, gguf_path);
        for (int rep = 0; rep < 3; ++rep) {
            Clock::time_point t = Clock::now();
            qwen3::gguf::File file(gguf_path);
            qwen3::Tokenizer from_gguf = qwen3::Tokenizer::from_gguf(file);
            gguf_load = std::min(gguf_load, seconds_since(t));
        }
        std::remove(gguf_path.c_str());
        std::printf("load: tokenizer.json %.1f ms, GGUF metadata (open + build) %.1f ms, %zu tokens\n\n", json_load * 1e3,
                    gguf_load * 1e3, tok->vocab_size());

        std::printf("| corpus      | mode    |    MB/s |    tokens/s |    tokens |\n");
        std::printf("|-------------|---------|--------:|------------:|----------:|\n");
        for (const char* name : {"english", "mixed"}) {
            const std::string text = qwen3::read_text_file(corpus_dir + "/" + name + ".txt");
            const std::vector<std::string_view> chunks = js_chunks(text);
            std::vector<qwen3::TokenId> ids;
            Result chunked = best_of_3([&] {
                std::size_t n = 0;
                for (std::string_view c : chunks) {
                    ids.clear();
                    tok->encode_append(c, ids);
                    n += ids.size();
                }
                return n;
            });
            print_row(name, "chunked", text.size(), chunked);
            Result whole = best_of_3([&] {
                ids.clear();
                tok->encode_append(text, ids);
                return ids.size();
            });
            print_row(name, "whole", text.size(), whole);
        }

        // linear scaling: one word of random letters (one pre-token), 100 KB and 1 MB; thread CPU time,
        // best of 5, since the ratio of two short runs suffers most from a busy machine
        std::printf("\none word without spaces (one piece for BPE), thread CPU time:\n");
        std::mt19937_64 rng(11);
        double per_byte[2];
        const std::size_t sizes[2] = {100'000, 1'000'000};
        for (int k = 0; k < 2; ++k) {
            std::string word;
            for (std::size_t i = 0; i < sizes[k]; ++i) word += char('a' + rng() % 26);
            Result r;
            for (int rep = 0; rep < 5; ++rep) {
                const double t = thread_seconds();
                r.tokens = tok->encode(word).size();
                r.seconds = std::min(r.seconds, thread_seconds() - t);
            }
            per_byte[k] = r.seconds / double(sizes[k]);
            std::printf("  %7zu bytes: %8.2f ms, %6.2f MB/s, %zu tokens\n", sizes[k], r.seconds * 1e3, double(sizes[k]) / r.seconds / 1e6,
                        r.tokens);
        }
        std::printf("  time per byte, 1 MB / 100 KB: %.2f (1.0 = linear; 10 would be quadratic)\n", per_byte[1] / per_byte[0]);
    } catch (const qwen3::Error& e) {
        std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
        return 1;
    }
    return 0;
}
