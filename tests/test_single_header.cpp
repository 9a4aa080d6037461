// The single header (single_include/qwen3.hpp) against the multi-header library: a program built from
// the single header alone (tests/single_header/logits.cpp) must give logits identical, bit for bit,
// to this program's (built from include/, same compiler flags, thread count and KV type), and both
// must match llama.cpp's goldens. Whether the single header is up to date with include/ is the
// separate test single_include_fresh (tools/amalgamate.py --check).
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <qwen3/format/gguf_writer.hpp>
#include <qwen3/model.hpp>
#include <qwen3/quantize.hpp>
#include <sstream>

#include "golden.hpp"
#include "random_model.hpp"
#include "single_header/run_logits.hpp"

namespace {

std::string join(std::span<const std::int32_t> ids) {
    if (ids.empty()) return "-";
    std::string out;
    for (std::int32_t id : ids) {
        if (!out.empty()) out += ',';
        out += std::to_string(id);
    }
    return out;
}

// Runs the single-header program and reads the rows it wrote.
std::vector<float> single_header_logits(const char* variant, const std::string& model, int threads, const char* kv,
                                        std::span<const std::int32_t> prompt, std::span<const std::int32_t> decode) {
    test::TempDir dir;
    const std::string out = dir.file("logits.f32");
    std::ostringstream cmd;
    cmd << '"' << QWEN3_SINGLE_HEADER_PROGRAM << "\" " << variant << " \"" << model << "\" " << threads << ' ' << kv << ' '
        << join(prompt) << ' ' << join(decode) << " \"" << out << '"';
    INFO("command: " << cmd.str());
    REQUIRE(std::system(cmd.str().c_str()) == 0);
    return test::read_floats(out);
}

// Bit-for-bit equality, reporting the first difference.
void check_identical(std::span<const float> single, std::span<const float> multi, int vocab) {
    REQUIRE(single.size() == multi.size());
    const auto bytes = single.size() * sizeof(float);
    if (std::memcmp(single.data(), multi.data(), bytes) == 0) return;
    std::size_t i = 0;
    while (std::memcmp(&single[i], &multi[i], sizeof(float)) == 0) ++i;
    FAIL("single header and multi-header logits differ first at row " << i / std::size_t(vocab) << ", token "
         << i % std::size_t(vocab) << ": " << std::hexfloat << single[i] << " vs " << multi[i] << std::defaultfloat
         << " (max |diff| " << test::max_abs_diff(single, multi)
         << "); if include/ changed, regenerate the single header: python3 tools/amalgamate.py");
}

// The single header's rows against llama.cpp: the stored prompt positions and every decode step within
// `tolerance`, with the same argmax wherever llama.cpp's margin allows.
void check_against_llamacpp(std::span<const float> rows, const test::Golden& g, int vocab, float tolerance = 1e-5f) {
    const std::size_t V = std::size_t(vocab), n = g.tokens.size();
    REQUIRE(rows.size() == (n + g.decode.size()) * V);
    float worst = 0;
    for (std::size_t i = 0; i < g.positions.size(); ++i) {
        const std::size_t p = std::size_t(g.positions[i]);
        worst = std::max(worst, test::check_row(rows.subspan(p * V, V), g.prompt_row(i), tolerance, "position " + std::to_string(p)));
    }
    for (std::size_t i = 0; i < g.decode.size(); ++i)
        worst = std::max(worst, test::check_row(rows.subspan((n + i) * V, V), g.decode_row(i), tolerance, "decode step " + std::to_string(i)));
    MESSAGE(g.name << ": max |single header - llama.cpp| = " << worst);
}

template <class Cfg, class KV>
void compare(const char* variant, const std::string& path, const qwen3::Model<Cfg>& model, const test::Golden& g,
             int threads, const char* kv) {
    CAPTURE(g.name);
    CAPTURE(threads);
    const std::string kv_type = kv;
    CAPTURE(kv_type);
    const std::span<const std::int32_t> decode = g.decode;
    const std::vector<float> single = single_header_logits(variant, path, threads, kv, g.tokens, decode);
    const std::vector<float> multi = test::run_logits<Cfg, KV>(model, threads, g.tokens, decode);
    check_identical(single, multi, Cfg::vocab);
    if constexpr (std::is_same_v<KV, qwen3::KVF32>) check_against_llamacpp(single, g, Cfg::vocab);
}


}  // namespace

TEST_CASE("single header: micro model logits are identical to the multi-header build and match llama.cpp") {
    using Cfg = qwen3::Qwen3_Micro;
    const std::string path = test::data_path("qwen3-micro-f32.gguf");
    const qwen3::Model<Cfg> model(path);
    for (const char* name : {"m1", "m2"}) {
        const test::Golden g = test::load_golden("micro", name, Cfg::vocab);
        for (int threads : {1, 2}) {
            compare<Cfg, qwen3::KVF32>("micro", path, model, g, threads, "f32");
            compare<Cfg, qwen3::DefaultKV>("micro", path, model, g, threads, "default");
        }
    }
}

TEST_CASE("single header: tiny model (full vocabulary) logits are identical to the multi-header build") {
    using Cfg = qwen3::Qwen3_Tiny;
    test::TempDir dir;
    const std::string path = dir.file("tiny.gguf");
    {
        qwen3::ThreadPool pool(2);
        test::write_gguf(test::make_random_model(test::tiny_spec(), pool), path, "tiny");
    }
    const qwen3::Model<Cfg> model(path);
    const test::Golden g = test::load_golden("tiny", "short5", Cfg::vocab);
    compare<Cfg, qwen3::KVF32>("tiny", path, model, g, 2, "f32");
    compare<Cfg, qwen3::DefaultKV>("tiny", path, model, g, 1, "default");
}

TEST_CASE("single header: the quantizer edition writes the same Q4_K_M file as the multi-header quantizer") {
    test::TempDir dir;
    const std::string in = test::data_path("qwen3-micro-f32.gguf"), single = dir.file("single.gguf"), multi = dir.file("multi.gguf");
    const std::string cmd = std::string("\"") + QWEN3_SINGLE_HEADER_QUANTIZE + "\" \"" + in + "\" \"" + single + "\" Q4_K_M";
    INFO("command: " << cmd);
    REQUIRE(std::system(cmd.c_str()) == 0);
    qwen3::quant::QuantizeOptions options;
    options.threads = 2;
    qwen3::quant::quantize_model(in, multi, qwen3::quant::FileType::q4_k_m, options);
    const std::string a = test::read_file(single), b = test::read_file(multi);
    CHECK(a.size() == b.size());
    CHECK(a == b);
}
