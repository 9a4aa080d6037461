// Shared by the fuzz targets (fuzz/fuzz_*.cpp) and by the test that replays their inputs
// (tests/test_fuzz_regressions.cpp).
//
// A target is a function `void run(const std::uint8_t* data, std::size_t size)` in its own namespace.
// It catches qwen3::Error only: that is the library refusing bad input, as documented. Anything else
// escaping it is a finding: a crash or sanitizer report, another exception type, or a broken
// invariant, which the target reports by throwing fuzz::Finding (libFuzzer then sees an uncaught
// exception and aborts with the input saved; the replay test reports the message).
#pragma once

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <qwen3/format/json.hpp>

namespace qwen3_fuzz {

// A broken invariant: the message says which and shows the values.
struct Finding : std::logic_error {
    using std::logic_error::logic_error;
};

template <typename... Parts>
[[noreturn]] void finding(const Parts&... parts) {
    std::string message = "fuzz finding: ";
    auto append = [&message](const auto& part) {
        if constexpr (std::is_arithmetic_v<std::decay_t<decltype(part)>>) message += std::to_string(part);
        else message += part;
    };
    (append(parts), ...);
    throw Finding(message);
}

template <typename... Parts>
void check(bool ok, const Parts&... parts) {
    if (!ok) finding(parts...);
}

// Printable form of bytes for messages: JSON-quoted when valid UTF-8, else \xNN escapes; cut short.
inline std::string show(std::string_view s) {
    std::string out;
    static const char hex[] = "0123456789abcdef";
    for (std::size_t i = 0; i < s.size() && i < 200; ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += char(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return "\"" + out + (s.size() > 200 ? "\"..." : "\"");
}

// Reads the fuzzer's bytes as a few control values followed by a payload.
class Input {
public:
    Input(const std::uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}
    std::uint8_t byte() { return p_ < end_ ? *p_++ : 0; }
    std::uint32_t u32() {
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v = v << 8 | byte();
        return v;
    }
    // The next bytes up to (not including) `stop`, or all that remain; the stop byte is consumed.
    std::string_view until(char stop) {
        const auto* hit = static_cast<const std::uint8_t*>(std::memchr(p_, stop, std::size_t(end_ - p_)));
        const std::uint8_t* to = hit ? hit : end_;
        std::string_view s(reinterpret_cast<const char*>(p_), std::size_t(to - p_));
        p_ = hit ? hit + 1 : end_;
        return s;
    }
    std::string_view rest() {
        std::string_view s(reinterpret_cast<const char*>(p_), std::size_t(end_ - p_));
        p_ = end_;
        return s;
    }
    bool empty() const { return p_ == end_; }

private:
    const std::uint8_t* p_;
    const std::uint8_t* end_;
};

// Cut positions for streaming: a small generator (xorshift) seeded by the input, so a finding
// replays with the same cuts.
class Cuts {
public:
    explicit Cuts(std::uint32_t seed) : state_(seed * 2654435761u + 1) {}
    // The next piece length, 0 .. max (0 pieces are fed too: empty pieces are legal).
    std::size_t next(std::size_t max) {
        state_ ^= state_ << 13;
        state_ ^= state_ >> 17;
        state_ ^= state_ << 5;
        return state_ % (max + 1);
    }

private:
    std::uint32_t state_;
};

// A file holding the current input, rewritten for each one: an anonymous in-memory file (memfd),
// opened by the library through /proc/self/fd/N like any path. No disk I/O, nothing left behind.
class ScratchFile {
public:
    ScratchFile() {
        fd_ = ::memfd_create("qwen3-fuzz", MFD_CLOEXEC);
        if (fd_ < 0) throw std::runtime_error("memfd_create failed");
        path_ = "/proc/self/fd/" + std::to_string(fd_);
    }
    ~ScratchFile() { ::close(fd_); }
    ScratchFile(const ScratchFile&) = delete;
    ScratchFile& operator=(const ScratchFile&) = delete;

    void write(std::string_view bytes) {
        if (::ftruncate(fd_, 0) != 0) throw std::runtime_error("ftruncate failed");
        std::size_t done = 0;
        while (done < bytes.size()) {
            ssize_t n = ::pwrite(fd_, bytes.data() + done, bytes.size() - done, off_t(done));
            if (n <= 0) throw std::runtime_error("pwrite failed");
            done += std::size_t(n);
        }
    }
    const std::string& path() const { return path_; }

private:
    int fd_ = -1;
    std::string path_;
};

// A folder for targets that need named files (a Hugging Face model folder): in /dev/shm when it
// exists (memory, fast), else in the temporary directory; removed when the program ends.
class ScratchDir {
public:
    ScratchDir() {
        std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path().string();
        std::string pattern = base + "/qwen3-fuzz-XXXXXX";
        std::vector<char> buf(pattern.begin(), pattern.end());
        buf.push_back('\0');
        if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
        path_ = buf.data();
    }
    ~ScratchDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;

    std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }
    void write(std::string_view name, std::string_view bytes) const {
        std::ofstream f(file(name), std::ios::binary | std::ios::trunc);
        f.write(bytes.data(), std::streamsize(bytes.size()));
        if (!f) throw std::runtime_error("cannot write " + file(name));
    }
    void remove(std::string_view name) const { std::filesystem::remove(file(name)); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

// Deep equality of JSON values. Numbers compare by their text (exact), or, with `by_value`, by value
// for non-integers (dump_python rewrites 1.50 as 1.5) and by canonical text for integers ("-0" is 0).
inline bool same_json(const qwen3::json::Value& a, const qwen3::json::Value& b, bool by_value = false) {
    using Kind = qwen3::json::Value::Kind;
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
        case Kind::null: return true;
        case Kind::boolean: return a.as_bool() == b.as_bool();
        case Kind::number: {
            const qwen3::json::Number &x = a.as_number(), &y = b.as_number();
            if (!by_value) return x.text == y.text && x.integral == y.integral;
            // Python prints the integer -0 as 0: either side may be the one read back
            if (x.integral)
                return y.integral && (x.text == y.text || (x.text == "-0" && y.text == "0") || (x.text == "0" && y.text == "-0"));
            return !y.integral && x.value == y.value;
        }
        case Kind::string: return a.as_string() == b.as_string();
        case Kind::array: {
            const auto &x = a.as_array(), &y = b.as_array();
            if (x.size() != y.size()) return false;
            for (std::size_t i = 0; i < x.size(); ++i)
                if (!same_json(x[i], y[i], by_value)) return false;
            return true;
        }
        case Kind::object: {
            const auto &x = a.as_object(), &y = b.as_object();
            if (x.size() != y.size()) return false;
            for (std::size_t i = 0; i < x.size(); ++i)
                if (x[i].key != y[i].key || !same_json(x[i].value, y[i].value, by_value)) return false;
            return true;
        }
    }
    return false;
}

// UTF-8 validity and repair, written from the Unicode standard's Table 3-7 independently of the
// library's own (tokenizer/unicode.hpp), so targets can compare the two. Each maximal ill-formed
// subpart becomes one U+FFFD (Unicode's "substitution of maximal subparts", what Python and Rust do).
inline std::string reference_sanitize_utf8(std::string_view s, bool* valid = nullptr) {
    std::string out;
    bool ok = true;
    std::size_t i = 0;
    while (i < s.size()) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        int need = 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            out += char(c);
            ++i;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c == 0xE0) need = 2, lo = 0xA0;
        else if (c >= 0xE1 && c <= 0xEC) need = 2;
        else if (c == 0xED) need = 2, hi = 0x9F;
        else if (c >= 0xEE && c <= 0xEF) need = 2;
        else if (c == 0xF0) need = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) need = 3;
        else if (c == 0xF4) need = 3, hi = 0x8F;
        std::size_t k = 1;
        if (need) {
            for (; k <= std::size_t(need) && i + k < s.size(); ++k) {
                const unsigned char b = static_cast<unsigned char>(s[i + k]);
                const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
                if (b < l || b > h) break;
            }
        }
        if (need && k == std::size_t(need) + 1) {
            out.append(s.substr(i, k));
        } else {
            out += "\xEF\xBF\xBD";
            ok = false;
        }
        i += need ? k : 1;  // a lead byte alone, or the lead and the continuation bytes that fit
    }
    if (valid) *valid = ok;
    return out;
}

inline bool reference_valid_utf8(std::string_view s) {
    bool ok = true;
    reference_sanitize_utf8(s, &ok);
    return ok;
}

// The test data folder (tests/data), for targets that load the real Qwen3 tokenizer.
inline std::string data_path(const std::string& relative) {
    if (const char* env = std::getenv("QWEN3_FUZZ_DATA")) return std::string(env) + "/" + relative;
    return std::string(QWEN3_FUZZ_DATA) + "/" + relative;
}

}  // namespace qwen3_fuzz
