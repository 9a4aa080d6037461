// qwen3/error.hpp - the library's one exception type.
//
// Every failure the library reports is a qwen3::Error. Its message says what went wrong, where
// (file, tensor, byte offset, token position) and what was expected, so a user can act on it.
// The code lets a program (or the C ABI) branch on the kind of failure without parsing text.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace qwen3 {

enum class ErrorCode {
    io,                // a file could not be opened, read or mapped
    format,            // a file is malformed: bad magic, truncated, out-of-bounds offsets, bad JSON
    unsupported,       // a valid file uses something this library does not implement
    shape_mismatch,    // a tensor's shape or type does not fit the compiled configuration
    config_mismatch,   // the file's hyperparameters do not fit the compiled configuration
    missing_tensor,    // a tensor the model needs is absent
    context_overflow,  // a position past the end of the KV arena
    invalid_argument,  // a caller passed a value outside the documented range
    tokenizer,         // tokenizer data is inconsistent, or text could not be tokenized
    cancelled,         // a callback asked to stop
};

inline const char* to_string(ErrorCode code) noexcept {
    switch (code) {
        case ErrorCode::io: return "io";
        case ErrorCode::format: return "format";
        case ErrorCode::unsupported: return "unsupported";
        case ErrorCode::shape_mismatch: return "shape_mismatch";
        case ErrorCode::config_mismatch: return "config_mismatch";
        case ErrorCode::missing_tensor: return "missing_tensor";
        case ErrorCode::context_overflow: return "context_overflow";
        case ErrorCode::invalid_argument: return "invalid_argument";
        case ErrorCode::tokenizer: return "tokenizer";
        case ErrorCode::cancelled: return "cancelled";
    }
    return "unknown";
}

class Error : public std::runtime_error {
public:
    Error(ErrorCode code, const std::string& message)
        : std::runtime_error(message), code_(code) {}
    ErrorCode code() const noexcept { return code_; }

private:
    ErrorCode code_;
};

namespace detail {
// Builds a message from pieces: fail(ErrorCode::format, path, ": offset ", 12, " past end").
template <typename... Parts>
[[noreturn]] void fail(ErrorCode code, Parts&&... parts) {
    std::string message;
    auto append = [&message](const auto& part) {
        using T = std::decay_t<decltype(part)>;
        if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, char> && !std::is_same_v<T, bool>)
            message += std::to_string(part);
        else if constexpr (std::is_same_v<T, bool>)
            message += part ? "true" : "false";
        else
            message += part;
    };
    (append(parts), ...);
    throw Error(code, message);
}
}  // namespace detail

}  // namespace qwen3
