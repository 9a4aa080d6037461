// qwen3/format/gguf_writer.hpp - writes GGUF v3 files (metadata, tensor table, aligned data).
//
// Used by `qwen3 quantize` and by tests that build malformed or synthetic files. The output follows
// the layout llama.cpp reads: little-endian, tensors listed fastest dimension first, each tensor's
// data starting at a multiple of general.alignment (32 unless set with set_alignment), back to back
// in the order they were added.
//
// The writer refuses what the reader would refuse (invalid_argument): a rank outside 1..4, a zero
// dimension, a row that is not whole blocks, a duplicate tensor name, a bad alignment. Metadata is
// written as given; setting "general.alignment" with set_u32 instead of set_alignment writes the
// key without changing the layout, which tests use to build inconsistent files.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../error.hpp"
#include "../tensor.hpp"
#include "gguf.hpp"

namespace qwen3::gguf {

class Writer {
public:
    // Scalars and strings. Keys are written in the order they are first set.
    void set_u32(std::string_view key, std::uint32_t v) { scalar(key, Type::u32, &v, 4); }
    void set_i32(std::string_view key, std::int32_t v) { scalar(key, Type::i32, &v, 4); }
    void set_u64(std::string_view key, std::uint64_t v) { scalar(key, Type::u64, &v, 8); }
    void set_f32(std::string_view key, float v) { scalar(key, Type::f32, &v, 4); }
    void set_f64(std::string_view key, double v) { scalar(key, Type::f64, &v, 8); }
    void set_bool(std::string_view key, bool v) {
        std::uint8_t b = v;
        scalar(key, Type::boolean, &b, 1);
    }
    void set_string(std::string_view key, std::string_view v) {
        std::string& out = entry(key);
        put_u32(out, std::uint32_t(Type::string));
        put_string(out, v);
    }
    void set_strings(std::string_view key, const std::vector<std::string_view>& values) {
        std::string& out = entry(key);
        put_u32(out, std::uint32_t(Type::array));
        put_u32(out, std::uint32_t(Type::string));
        put_u64(out, values.size());
        for (std::string_view s : values) put_string(out, s);
    }
    void set_i32s(std::string_view key, std::span<const std::int32_t> values) {
        std::string& out = entry(key);
        put_u32(out, std::uint32_t(Type::array));
        put_u32(out, std::uint32_t(Type::i32));
        put_u64(out, values.size());
        out.append(reinterpret_cast<const char*>(values.data()), values.size() * 4);
    }
    void set_f32s(std::string_view key, std::span<const float> values) {
        std::string& out = entry(key);
        put_u32(out, std::uint32_t(Type::array));
        put_u32(out, std::uint32_t(Type::f32));
        put_u64(out, values.size());
        out.append(reinterpret_cast<const char*>(values.data()), values.size() * 4);
    }
    // Copies one metadata value from a parsed file unchanged. general.alignment also sets the layout
    // (as set_alignment), so a copied file stays consistent. Throws Error(unsupported) for an array
    // of arrays.
    void copy_value(std::string_view key, const Value& v) {
        if (key == "general.alignment" && v.type != Type::array && v.is_integer() && !v.is_signed()) {
            check_alignment(v.uint_value);
            alignment_ = std::uint32_t(v.uint_value);
        }
        std::string& out = entry(key);
        put_u32(out, std::uint32_t(v.type));
        put_payload(out, v);
    }

    // Adds a tensor whose bytes are produced later, at write time, by `fill` (so a converter can
    // stream a model larger than memory). `shape` is outermost first, as everywhere in this library.
    // Throws Error(invalid_argument) for a rank outside 1..4, a zero dimension, a row that is not a
    // whole number of blocks of `type`, or a name already added.
    using Fill = std::function<void(std::byte* out, std::uint64_t bytes)>;
    void add_tensor(std::string name, DType type, Shape shape, Fill fill) {
        std::uint64_t bytes = tensor_bytes(name, type, shape);
        for (const Tensor& t : tensors_)
            if (t.name == name) detail::fail(ErrorCode::invalid_argument, "gguf writer: tensor ", name, " added twice");
        tensors_.push_back(Tensor{std::move(name), type, shape, bytes, std::move(fill)});
    }
    // The bytes are copied at write time; `data` must stay valid until then and hold exactly the
    // tensor's size (Error(invalid_argument) otherwise).
    void add_tensor(std::string name, DType type, Shape shape, std::span<const std::byte> data) {
        std::uint64_t bytes = tensor_bytes(name, type, shape);
        if (data.size() != bytes)
            detail::fail(ErrorCode::invalid_argument, "gguf writer: tensor ", name, " ", shape.to_string(), " of type ",
                         dtype_name(type), " needs ", bytes, " bytes, given ", data.size());
        add_tensor(std::move(name), type, shape, [data](std::byte* out, std::uint64_t n) { std::memcpy(out, data.data(), n); });
    }

    // A power of two up to 1 MiB (Error(invalid_argument) otherwise); also sets general.alignment.
    void set_alignment(std::uint32_t alignment) {
        check_alignment(alignment);
        alignment_ = alignment;
        set_u32("general.alignment", alignment);
    }

    // The whole file as bytes (for small files and tests).
    std::string to_bytes() const {
        std::string out = header();
        std::vector<std::byte> buffer;
        for (const Tensor& t : tensors_) {
            buffer.assign(t.bytes, std::byte{0});
            t.fill(buffer.data(), t.bytes);
            out.append(reinterpret_cast<const char*>(buffer.data()), buffer.size());
            out.append(padding(t.bytes), '\0');
        }
        return out;
    }

    // Writes the file, filling one tensor at a time. Throws Error(io) on failure, and whatever a
    // fill function throws; either way the partly written file is removed.
    void write(const std::string& path) const {
        struct Output {
            std::FILE* file;
            const std::string& path;
            bool done = false;
            ~Output() {
                if (file) std::fclose(file);
                if (!done) std::remove(path.c_str());
            }
        } out{std::fopen(path.c_str(), "wb"), path};
        if (!out.file) detail::fail(ErrorCode::io, "cannot create ", path);
        auto put = [&](const void* p, std::size_t n) {
            if (n && std::fwrite(p, 1, n, out.file) != n) detail::fail(ErrorCode::io, "write to ", path, " failed (disk full?)");
        };
        std::string head = header();
        put(head.data(), head.size());
        std::vector<std::byte> buffer;
        const std::string zeros(alignment_, '\0');
        for (const Tensor& t : tensors_) {
            buffer.assign(t.bytes, std::byte{0});
            t.fill(buffer.data(), t.bytes);
            put(buffer.data(), buffer.size());
            put(zeros.data(), padding(t.bytes));
        }
        std::FILE* f = out.file;
        out.file = nullptr;
        if (std::fclose(f) != 0) detail::fail(ErrorCode::io, "closing ", path, " failed");
        out.done = true;
    }

private:
    struct Tensor {
        std::string name;
        DType type;
        Shape shape;
        std::uint64_t bytes;
        Fill fill;
    };

    std::size_t padding(std::uint64_t n) const { return std::size_t((alignment_ - n % alignment_) % alignment_); }

    static void check_alignment(std::uint64_t alignment) {
        if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > kMaxAlignment)
            detail::fail(ErrorCode::invalid_argument, "gguf writer: alignment ", alignment,
                         " is not a power of two up to 1 MiB");
    }

    static std::uint64_t tensor_bytes(const std::string& name, DType type, const Shape& shape) {
        if (shape.rank < 1 || shape.rank > kMaxDims)
            detail::fail(ErrorCode::invalid_argument, "gguf writer: tensor ", name, " has rank ", shape.rank,
                         " (must be 1 to ", kMaxDims, ")");
        for (std::uint32_t d = 0; d < shape.rank; ++d)
            if (shape.dims[d] == 0 || shape.dims[d] > kMaxDimension)
                detail::fail(ErrorCode::invalid_argument, "gguf writer: tensor ", name, " has shape ", shape.to_string());
        std::uint64_t row = row_bytes(type, shape.cols());
        if (row == 0)
            detail::fail(ErrorCode::invalid_argument, "gguf writer: tensor ", name, " of type ", dtype_name(type),
                         " cannot have rows of ", shape.cols(), " elements (not whole blocks)");
        std::uint64_t rows = 1;
        for (std::uint32_t d = 0; d + 1 < shape.rank; ++d) {
            if (rows > std::uint64_t(-1) / shape.dims[d])
                detail::fail(ErrorCode::invalid_argument, "gguf writer: tensor ", name, " is too large");
            rows *= shape.dims[d];
        }
        if (rows > std::uint64_t(-1) / row) detail::fail(ErrorCode::invalid_argument, "gguf writer: tensor ", name, " is too large");
        return rows * row;
    }

    std::string header() const {
        std::string out = "GGUF";
        put_u32(out, 3);
        put_u64(out, tensors_.size());
        put_u64(out, entries_.size());
        for (const auto& [key, payload] : entries_) {
            put_string(out, key);
            out += payload;
        }
        std::uint64_t offset = 0;
        for (const Tensor& t : tensors_) {
            put_string(out, t.name);
            put_u32(out, t.shape.rank);
            for (std::uint32_t d = t.shape.rank; d-- > 0;) put_u64(out, t.shape.dims[d]);  // fastest first
            put_u32(out, static_cast<std::uint32_t>(t.type));
            put_u64(out, offset);
            offset += t.bytes + padding(t.bytes);
        }
        out.append(padding(out.size()), '\0');
        return out;
    }

    std::string& entry(std::string_view key) {
        for (auto& [k, payload] : entries_)
            if (k == key) {
                payload.clear();
                return payload;
            }
        entries_.emplace_back(std::string(key), std::string());
        return entries_.back().second;
    }
    void scalar(std::string_view key, Type type, const void* v, std::size_t n) {
        std::string& out = entry(key);
        put_u32(out, std::uint32_t(type));
        out.append(static_cast<const char*>(v), n);
    }
    void put_payload(std::string& out, const Value& v) {
        switch (v.type) {
            case Type::string: put_string(out, v.string_value); break;
            case Type::array:
                put_u32(out, std::uint32_t(v.element_type));
                put_u64(out, v.count);
                if (v.element_type == Type::string)
                    for (std::string_view s : v.strings) put_string(out, s);
                else if (scalar_size(v.element_type))
                    out.append(reinterpret_cast<const char*>(v.elements), v.count * scalar_size(v.element_type));
                else
                    detail::fail(ErrorCode::unsupported, "gguf writer: nested arrays are not copied");
                break;
            case Type::f32: {
                float f = float(v.float_value);
                out.append(reinterpret_cast<const char*>(&f), 4);
                break;
            }
            case Type::f64: out.append(reinterpret_cast<const char*>(&v.float_value), 8); break;
            default: {
                std::size_t n = scalar_size(v.type);
                if (v.is_signed()) out.append(reinterpret_cast<const char*>(&v.int_value), n);
                else out.append(reinterpret_cast<const char*>(&v.uint_value), n);  // little-endian: low bytes first
            }
        }
    }
    static void put_u32(std::string& out, std::uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
    static void put_u64(std::string& out, std::uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
    static void put_string(std::string& out, std::string_view s) {
        put_u64(out, s.size());
        out.append(s);
    }

    std::vector<std::pair<std::string, std::string>> entries_;
    std::vector<Tensor> tensors_;
    std::uint32_t alignment_ = 32;
};

}  // namespace qwen3::gguf
