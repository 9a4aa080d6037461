// A program built from single_include/qwen3.hpp alone (its include path has no include/): writes the
// logits that test_single_header compares, bit for bit, with the multi-header library's and with
// llama.cpp's.
//
//   single_header_logits micro|tiny MODEL THREADS f32|default PROMPT_IDS DECODE_IDS OUT
//
// PROMPT_IDS and DECODE_IDS are comma-separated token ids (DECODE_IDS may be "-" for none); the rows
// of test::run_logits are written to OUT as float32 in the machine's byte order.
#include "qwen3.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "run_logits.hpp"

namespace {

std::vector<std::int32_t> parse_ids(const std::string& list) {
    std::vector<std::int32_t> ids;
    if (list == "-") return ids;
    std::size_t start = 0;
    while (start <= list.size()) {
        const std::size_t comma = std::min(list.find(',', start), list.size());
        const std::string item = list.substr(start, comma - start);
        char* end = nullptr;
        const long v = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || v < 0 || v > 0x7fffffff)
            qwen3::detail::fail(qwen3::ErrorCode::invalid_argument, "not a token id: \"", item, "\"");
        ids.push_back(std::int32_t(v));
        start = comma + 1;
    }
    return ids;
}

template <class Cfg>
std::vector<float> run(const std::string& path, int threads, const std::string& kv, const std::vector<std::int32_t>& prompt,
                       const std::vector<std::int32_t>& decode) {
    qwen3::Model<Cfg> model(path);
    if (kv == "f32") return test::run_logits<Cfg, qwen3::KVF32>(model, threads, prompt, decode);
    if (kv == "default") return test::run_logits<Cfg, qwen3::DefaultKV>(model, threads, prompt, decode);
    qwen3::detail::fail(qwen3::ErrorCode::invalid_argument, "KV type must be f32 or default, not ", kv);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 8) {
        std::fprintf(stderr, "usage: %s micro|tiny MODEL THREADS f32|default PROMPT_IDS DECODE_IDS OUT\n", argv[0]);
        return 2;
    }
    try {
        const std::string variant = argv[1], path = argv[2], kv = argv[4], out = argv[7];
        const int threads = std::atoi(argv[3]);
        const auto prompt = parse_ids(argv[5]), decode = parse_ids(argv[6]);
        std::vector<float> rows;
        if (variant == "micro") rows = run<qwen3::Qwen3_Micro>(path, threads, kv, prompt, decode);
        else if (variant == "tiny") rows = run<qwen3::Qwen3_Tiny>(path, threads, kv, prompt, decode);
        else qwen3::detail::fail(qwen3::ErrorCode::invalid_argument, "variant must be micro or tiny, not ", variant);
        std::FILE* f = std::fopen(out.c_str(), "wb");
        if (!f || std::fwrite(rows.data(), sizeof(float), rows.size(), f) != rows.size() || std::fclose(f) != 0)
            qwen3::detail::fail(qwen3::ErrorCode::io, "cannot write ", out);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "single_header_logits: %s\n", e.what());
        return 1;
    }
}
