// The fuzz targets (fuzz/fuzz_*.cpp), compiled as ordinary functions, replaying
//   - every input that once was a finding (tests/data/regressions/<target>/, one file per finding,
//     named after what it broke; tests/data/regressions/README.md lists them with their fixes), and
//   - the hand-written seeds (fuzz/corpus/<target>/),
// with the targets' own invariants; plus a check that the generated seeds (fuzz/seeds.hpp) are valid
// files all the way down (a model that binds and runs, tokenizers that load), since a seed that is
// refused early would leave the fuzzer exploring only the refusal.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <qwen3/format/checkpoint.hpp>
#include <qwen3/format/gguf.hpp>
#include <qwen3/model.hpp>
#include <qwen3/tokenizer.hpp>

#include "fuzz_support.hpp"
#include "seeds.hpp"
#include "support.hpp"

namespace qwen3_fuzz {
namespace gguf_target { void run(const std::uint8_t*, std::size_t); }
namespace hf_target { void run(const std::uint8_t*, std::size_t); }
namespace json_target { void run(const std::uint8_t*, std::size_t); }
namespace chat_target { void run(const std::uint8_t*, std::size_t); }
namespace jinja_target { void run(const std::uint8_t*, std::size_t); }
namespace reply_target { void run(const std::uint8_t*, std::size_t); }
namespace tokenizer_target { void run(const std::uint8_t*, std::size_t); }
namespace tokenizer_json_target { void run(const std::uint8_t*, std::size_t); }
}  // namespace qwen3_fuzz

namespace fs = std::filesystem;

namespace {

using Target = void (*)(const std::uint8_t*, std::size_t);

const std::vector<std::pair<std::string, Target>>& targets() {
    static const std::vector<std::pair<std::string, Target>> list = {
        {"gguf", qwen3_fuzz::gguf_target::run},
        {"hf", qwen3_fuzz::hf_target::run},
        {"json", qwen3_fuzz::json_target::run},
        {"chat_template", qwen3_fuzz::chat_target::run},
        {"jinja", qwen3_fuzz::jinja_target::run},
        {"reply", qwen3_fuzz::reply_target::run},
        {"tokenizer", qwen3_fuzz::tokenizer_target::run},
        {"tokenizer_json", qwen3_fuzz::tokenizer_json_target::run},
    };
    return list;
}

std::vector<fs::path> files_in(const fs::path& dir) {
    std::vector<fs::path> out;
    if (!fs::is_directory(dir)) return out;
    for (const fs::directory_entry& e : fs::directory_iterator(dir))
        if (e.is_regular_file() && e.path().filename() != "README.md") out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

// Runs every file of `dir` through the target; returns how many ran.
std::size_t replay(const std::string& name, Target run, const fs::path& dir) {
    std::size_t count = 0;
    for (const fs::path& file : files_in(dir)) {
        const std::string bytes = test::read_file(file.string());
        INFO("target ", name, ", input ", file.string());
        try {
            run(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
        } catch (const qwen3_fuzz::Finding& f) {
            FAIL_CHECK(f.what());
        } catch (const std::exception& e) {
            FAIL_CHECK("exception other than qwen3::Error escaped: ", e.what());
        }
        ++count;
    }
    return count;
}

}  // namespace

// The findings tests/data/regressions/README.md lists, as "target/file".
std::set<std::string> listed_findings() {
    std::set<std::string> out;
    std::istringstream lines(test::read_file(test::data_path("regressions/README.md")));
    std::string line;
    while (std::getline(lines, line)) {
        if (line.rfind("| ", 0) != 0) continue;
        const std::size_t a = line.find('`'), b = line.find('`', a + 1);
        if (a != std::string::npos && b != std::string::npos) out.insert(line.substr(a + 1, b - a - 1));
    }
    return out;
}

TEST_CASE("fuzz findings and hand-written seeds replay without a finding, every target's") {
    const fs::path regressions = test::data_path("regressions");
    const fs::path corpus = fs::path(QWEN3_FUZZ_SOURCE) / "corpus";
    std::set<std::string> found;
    for (const auto& [name, run] : targets()) {
        CAPTURE(name);
        for (const fs::path& file : files_in(regressions / name)) found.insert(name + "/" + file.filename().string());
        const std::size_t findings = replay(name, run, regressions / name), seeds = replay(name, run, corpus / name);
        MESSAGE(name << ": " << findings << " findings and " << seeds << " seeds replayed");
        CHECK(seeds >= 1);  // every target starts from at least one hand-written seed
    }
    // the README's table and the folder agree: every finding is documented, every documented one replays
    CHECK(found == listed_findings());
    CHECK(found.size() == 5);
}

TEST_CASE("the generated fuzz seeds are valid all the way down") {
    const qwen3::json::Value real = test::read_json(test::data_path("tokenizer/tokenizer.json"));
    const qwen3_fuzz::MiniVocab vocab = qwen3_fuzz::mini_vocab(real, 320, 26);
    REQUIRE(vocab.merges.size() > 10);
    test::TempDir dir;
    auto run_model = [](const std::string& path) {
        qwen3::Model<qwen3_fuzz::FuzzConfig> model(qwen3::Checkpoint::open(path));
        qwen3::Session<qwen3_fuzz::FuzzConfig> session(model, 1);
        const std::int32_t prompt[] = {1, 2, 3};
        const std::span<const float> logits = session.eval(prompt);
        return std::all_of(logits.begin(), logits.end(), [](float x) { return std::isfinite(x); });
    };

    SUBCASE("GGUF checkpoint with tokenizer metadata") {
        test::write_file(dir.file("m.gguf"), qwen3_fuzz::seed_gguf(&vocab));
        CHECK(run_model(dir.file("m.gguf")));
        const qwen3::gguf::File f(dir.file("m.gguf"));
        const qwen3::Tokenizer tok = qwen3::Tokenizer::from_gguf(f);
        CHECK(tok.vocab_size() == 320 + 26);
        CHECK(tok.decode(tok.encode("<|im_start|>user\nthe cat<|im_end|>")) == "<|im_start|>user\nthe cat<|im_end|>");
        CHECK(tok.encode("<|im_start|>")[0] == 320 + 1);  // the second added token, as in Qwen3's list
    }
    SUBCASE("Hugging Face folder, single file and sharded") {
        test::write_file(dir.file("config.json"), qwen3_fuzz::seed_config_json());
        test::write_file(dir.file("model.safetensors"), qwen3_fuzz::seed_safetensors());
        CHECK(run_model(dir.path()));
        test::TempDir sharded;
        test::write_file(sharded.file("config.json"), qwen3_fuzz::seed_config_json());
        test::write_file(sharded.file("model.safetensors.index.json"), qwen3_fuzz::seed_index_json());
        test::write_file(sharded.file(std::string(qwen3_fuzz::kSeedShard1)), qwen3_fuzz::seed_safetensors(0, qwen3_fuzz::kSeedShardSplit));
        test::write_file(sharded.file(std::string(qwen3_fuzz::kSeedShard2)), qwen3_fuzz::seed_safetensors(qwen3_fuzz::kSeedShardSplit));
        CHECK(run_model(sharded.path()));
    }
    SUBCASE("tokenizer.json with Qwen3's first tokens and merges") {
        const std::string text = qwen3_fuzz::mini_tokenizer_json(real, vocab);
        const qwen3::Tokenizer tok = qwen3::Tokenizer::from_tokenizer_json_text(text);
        // the first merges of the real file apply: " t" + "he" ... as in the full tokenizer
        const qwen3::Tokenizer& full = qwen3::Tokenizer::from_tokenizer_json(test::data_path("tokenizer/tokenizer.json"));
        CHECK(tok.encode("  ") == full.encode("  "));
        CHECK(tok.decode(tok.encode("Hello, world! \xC3\xA9")) == "Hello, world! \xC3\xA9");
    }
}
