// Helpers shared by the tests: paths to reference data, temporary files, raw float files.
#pragma once

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <qwen3/error.hpp>
#include <qwen3/format/json.hpp>
#include <qwen3/format/mmap.hpp>

namespace test {

inline std::string data_path(const std::string& relative) { return std::string(QWEN3_TEST_DATA) + "/" + relative; }

// True in a build under AddressSanitizer (tools/sanitize.sh): brute-force cross-checks that the normal
// build runs in full sample fewer cases there, where each costs fifty times more and only memory use is new.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif
#else
inline constexpr bool sanitized = false;
#endif

// A fresh directory under $TMPDIR, removed with everything in it when the object dies.
class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "qwen3-test-XXXXXX").string();
        std::vector<char> buf(pattern.begin(), pattern.end());
        buf.push_back('\0');
        if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
        path_ = buf.data();
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string file(const std::string& name) const { return path_ + "/" + name; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

inline void write_file(const std::string& path, std::string_view bytes) {
    std::ofstream f(path, std::ios::binary);
    f.write(bytes.data(), std::streamsize(bytes.size()));
    if (!f) throw std::runtime_error("cannot write " + path);
}

inline std::string read_file(const std::string& path) { return qwen3::read_text_file(path); }

inline std::vector<float> read_floats(const std::string& path) {
    std::string bytes = read_file(path);
    std::vector<float> out(bytes.size() / 4);
    std::memcpy(out.data(), bytes.data(), out.size() * 4);
    return out;
}

inline qwen3::json::Value read_json(const std::string& path) { return qwen3::json::parse(read_file(path), path); }

// One JSON value per line of a tests/data file (JSON Lines); empty lines are skipped.
inline std::vector<qwen3::json::Value> read_jsonl(const std::string& relative) {
    const std::string text = read_file(data_path(relative));
    std::vector<qwen3::json::Value> out;
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        if (end > start) out.push_back(qwen3::json::parse(std::string_view(text).substr(start, end - start), relative));
        start = end + 1;
    }
    return out;
}

// Runs `fn`, expecting a qwen3::Error of `code` whose message contains `needle`.
template <typename Fn>
bool throws_error(Fn&& fn, qwen3::ErrorCode code, const std::string& needle, std::string* message = nullptr) {
    try {
        fn();
    } catch (const qwen3::Error& e) {
        if (message) *message = e.what();
        return e.code() == code && std::string(e.what()).find(needle) != std::string::npos;
    }
    return false;
}

}  // namespace test
