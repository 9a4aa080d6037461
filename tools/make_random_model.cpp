// make_random_model - writes a Qwen3 model with random weights of a real shape (tests/random_model.hpp
// defines the weights, bit for bit), as a GGUF file llama.cpp loads and/or a Hugging Face folder, with
// the real Qwen3 tokenizer (tests/data/tokenizer). Speed does not depend on the weights' values, so
// these files stand in for the published checkpoints in benchmarks; the llama.cpp references in
// tests/data were computed on them.
//
//   make_random_model --preset 0.6b|1.7b|4b|8b|14b|32b|tiny|micro --out PATH
//                     [--dtype f32|bf16|f16] [--embd-dtype f32|bf16|f16] [--storage T] [--embd-storage T]
//                     [--seed N] [--vocab N] [--context N] [--untied] [--format gguf|hf|both]
//                     [--rope-scaling yarn|linear --rope-factor F --rope-original-context N]
//                     [--tokenizer tokenizer.json] [--name NAME]
//
// --dtype is the precision of the values (every tensor's values are rounded to it; --embd-dtype for
// the vocabulary matrices), --storage and --embd-storage how a GGUF stores them when that differs
// (e.g. BF16 values stored as F32). --format gguf (the default) writes PATH as a file; hf writes PATH
// as a folder; both writes PATH.gguf and PATH-hf/. Quantized files: `qwen3 quantize PATH.gguf OUT Q4_K_M`.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <string>

#include "random_model.hpp"

namespace {

struct Preset {
    int hidden, layers, heads, kv_heads, head_dim, ffn, vocab;
    bool tied;
};

// The shapes of config.hpp's named variants (config.json of each Hugging Face release).
const std::map<std::string, Preset> kPresets = {
    {"0.6b", {1024, 28, 16, 8, 128, 3072, 151936, true}},  {"1.7b", {2048, 28, 16, 8, 128, 6144, 151936, true}},
    {"4b", {2560, 36, 32, 8, 128, 9728, 151936, true}},    {"8b", {4096, 36, 32, 8, 128, 12288, 151936, false}},
    {"14b", {5120, 40, 40, 8, 128, 17408, 151936, false}}, {"32b", {5120, 64, 64, 8, 128, 25600, 151936, false}},
    {"tiny", {128, 2, 4, 2, 64, 384, 151936, true}},       {"micro", {128, 2, 4, 2, 64, 384, 4096, true}},
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "make_random_model: %s\n"
                 "usage: make_random_model --preset 0.6b|1.7b|4b|8b|14b|32b|tiny|micro --out PATH [--dtype f32|bf16|f16]\n"
                 "         [--embd-dtype T] [--storage T] [--embd-storage T] [--seed N] [--vocab N] [--context N] [--untied]\n"
                 "         [--format gguf|hf|both] [--rope-scaling yarn|linear --rope-factor F --rope-original-context N]\n"
                 "         [--tokenizer tokenizer.json] [--name NAME]\n",
                 why);
    std::exit(2);
}

qwen3::DType dtype(const std::string& s) {
    if (s == "f32") return qwen3::DType::f32;
    if (s == "bf16") return qwen3::DType::bf16;
    if (s == "f16") return qwen3::DType::f16;
    usage(("unknown type " + s + " (f32, bf16, f16)").c_str());
}

long long integer(const std::string& s, long long lo, long long hi) {
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end || v < lo || v > hi) usage(("bad number " + s).c_str());
    return v;
}

}  // namespace

int main(int argc, char** argv) {
    std::map<std::string, std::string> opt;
    bool untied = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--untied") {
            untied = true;
            continue;
        }
        if (a.rfind("--", 0) != 0 || i + 1 >= argc) usage(("unexpected argument " + a).c_str());
        opt[a.substr(2)] = argv[++i];
    }
    for (const auto& [key, value] : opt)
        if (key != "preset" && key != "out" && key != "dtype" && key != "embd-dtype" && key != "embd-storage" && key != "storage" && key != "seed" &&
            key != "vocab" && key != "context" && key != "format" && key != "rope-scaling" && key != "rope-factor" &&
            key != "rope-original-context" && key != "tokenizer" && key != "name")
            usage(("unknown option --" + key).c_str());
    if (!opt.count("preset") || !opt.count("out")) usage("--preset and --out are required");
    const auto preset = kPresets.find(opt["preset"]);
    if (preset == kPresets.end()) usage(("unknown preset " + opt["preset"]).c_str());
    const Preset& p = preset->second;

    test::RandomModelSpec spec{p.hidden, p.layers, p.heads, p.kv_heads, p.head_dim, p.ffn, p.vocab, p.tied && !untied,
                               dtype(opt.count("dtype") ? opt["dtype"] : "bf16"), qwen3::DType::f32};
    spec.embedding_type = opt.count("embd-dtype") ? dtype(opt["embd-dtype"]) : spec.matrix_type;
    if (opt.count("embd-storage")) spec.embedding_storage = dtype(opt["embd-storage"]);
    if (opt.count("storage")) spec.matrix_storage = spec.embedding_storage = dtype(opt["storage"]);
    if (opt.count("seed")) spec.seed = std::uint64_t(integer(opt["seed"], 0, (1ll << 62)));
    if (opt.count("vocab")) spec.vocab = int(integer(opt["vocab"], 1, 1 << 24));
    if (opt.count("context")) spec.context_length = std::uint64_t(integer(opt["context"], 1, 1 << 24));
    if (opt.count("rope-scaling")) {
        const std::string kind = opt["rope-scaling"];
        if (kind != "yarn" && kind != "linear") usage("--rope-scaling takes yarn or linear");
        spec.rope_scaling.kind = kind == "yarn" ? qwen3::RopeScaling::Kind::yarn : qwen3::RopeScaling::Kind::linear;
        spec.rope_scaling.factor = opt.count("rope-factor") ? std::atof(opt["rope-factor"].c_str()) : 4.0;
        spec.rope_scaling.original_context =
            opt.count("rope-original-context") ? std::uint64_t(integer(opt["rope-original-context"], 1, 1 << 24)) : spec.context_length;
    }
    const std::string format = opt.count("format") ? opt["format"] : "gguf";
    if (format != "gguf" && format != "hf" && format != "both") usage("--format takes gguf, hf or both");
    const std::string tokenizer = opt.count("tokenizer") ? opt["tokenizer"] : std::string(QWEN3_TEST_DATA) + "/tokenizer/tokenizer.json";
    const std::string tokenizer_config = tokenizer.substr(0, tokenizer.find_last_of('/') + 1) + "tokenizer_config.json";
    const std::string name = opt.count("name") ? opt["name"] : "qwen3-" + opt["preset"] + "-random";
    const std::string out = opt["out"];
    try {
        qwen3::ThreadPool pool;
        if (format != "hf") {
            const std::string path = format == "both" ? out + ".gguf" : out;
            test::write_random_gguf(spec, path, name, tokenizer, tokenizer_config, pool);
            std::printf("wrote %s\n", path.c_str());
        }
        if (format != "gguf") {
            const std::string folder = format == "both" ? out + "-hf" : out;
            test::write_random_hf_folder(spec, folder, tokenizer, tokenizer_config, pool);
            std::printf("wrote %s/\n", folder.c_str());
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "make_random_model: %s\n", e.what());
        return 1;
    }
    return 0;
}
