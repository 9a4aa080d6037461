// qwen3/format/gguf.hpp - a bounds-checked GGUF reader (versions 2 and 3, little-endian).
//
// GGUF is llama.cpp's single-file format: a header, typed metadata key/value pairs, a table of tensor
// descriptions, then the aligned tensor data. The reader maps the file and keeps views into it;
// strings, string arrays (a 151k-token vocabulary) and tensor data are never copied.
//
// Every count, length and offset in the file is checked against the bytes that remain before it is
// used, so a truncated or hostile file yields Error(format) naming the file, the byte offset and
// the field, never an out-of-bounds read or an allocation sized by an unchecked number.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../error.hpp"
#include "../tensor.hpp"
#include "mmap.hpp"

namespace qwen3::gguf {

enum class Type : std::uint32_t {
    u8 = 0,
    i8 = 1,
    u16 = 2,
    i16 = 3,
    u32 = 4,
    i32 = 5,
    f32 = 6,
    boolean = 7,
    string = 8,
    array = 9,
    u64 = 10,
    i64 = 11,
    f64 = 12,
};

inline const char* type_name(Type t) {
    switch (t) {
        case Type::u8: return "uint8";
        case Type::i8: return "int8";
        case Type::u16: return "uint16";
        case Type::i16: return "int16";
        case Type::u32: return "uint32";
        case Type::i32: return "int32";
        case Type::f32: return "float32";
        case Type::boolean: return "bool";
        case Type::string: return "string";
        case Type::array: return "array";
        case Type::u64: return "uint64";
        case Type::i64: return "int64";
        case Type::f64: return "float64";
    }
    return "unknown";
}

// Size in bytes of a fixed-size scalar type; 0 for string and array.
inline std::size_t scalar_size(Type t) {
    switch (t) {
        case Type::u8: case Type::i8: case Type::boolean: return 1;
        case Type::u16: case Type::i16: return 2;
        case Type::u32: case Type::i32: case Type::f32: return 4;
        case Type::u64: case Type::i64: case Type::f64: return 8;
        default: return 0;
    }
}

// One metadata value. Scalars are decoded; strings view the mapped file; arrays of fixed-size
// scalars view their packed little-endian elements; arrays of strings hold one view per element.
struct Value {
    Type type = Type::u8;
    std::uint64_t uint_value = 0;  // u8 .. u64, bool
    std::int64_t int_value = 0;    // i8 .. i64
    double float_value = 0;        // f32, f64
    std::string_view string_value;

    // arrays
    Type element_type = Type::u8;
    std::uint64_t count = 0;
    const std::byte* elements = nullptr;        // fixed-size element arrays
    std::vector<std::string_view> strings;      // string arrays

    bool is_integer() const {
        return type == Type::u8 || type == Type::i8 || type == Type::u16 || type == Type::i16 || type == Type::u32 ||
               type == Type::i32 || type == Type::u64 || type == Type::i64;
    }
    bool is_signed() const { return type == Type::i8 || type == Type::i16 || type == Type::i32 || type == Type::i64; }

    // Element i of an integer array as int64 (precondition: element_type is an integer type).
    std::int64_t integer_element(std::uint64_t i) const {
        const std::byte* p = elements + i * scalar_size(element_type);
        switch (element_type) {
            case Type::u8: return std::int64_t(std::uint8_t(p[0]));
            case Type::i8: return std::int64_t(std::int8_t(p[0]));
            case Type::u16: { std::uint16_t v; std::memcpy(&v, p, 2); return v; }
            case Type::i16: { std::int16_t v; std::memcpy(&v, p, 2); return v; }
            case Type::u32: { std::uint32_t v; std::memcpy(&v, p, 4); return v; }
            case Type::i32: { std::int32_t v; std::memcpy(&v, p, 4); return v; }
            case Type::u64: { std::uint64_t v; std::memcpy(&v, p, 8); return std::int64_t(v); }
            case Type::i64: { std::int64_t v; std::memcpy(&v, p, 8); return v; }
            case Type::boolean: return std::int64_t(p[0] != std::byte{0});
            default: return 0;
        }
    }
};

struct TensorInfo {
    std::string name;
    DType type = DType::f32;
    Shape shape;                  // outermost first (GGUF's dims reversed)
    std::uint64_t offset = 0;     // from the start of the data section
    std::uint64_t bytes = 0;
    const std::byte* data = nullptr;
};

// Hard limits that no real model comes near; they bound work and memory for hostile files.
inline constexpr std::uint64_t kMaxKeyLength = 65536;
inline constexpr std::uint32_t kMaxDims = 4;
inline constexpr int kMaxArrayNesting = 2;

class File {
public:
    // Maps and parses `path`. Throws Error(io) when it cannot be read, Error(format) when malformed,
    // Error(unsupported) for a big-endian file, GGUF v1, or a tensor type this library does not know.
    explicit File(const std::string& path) : file_(path) { parse(); }

    const std::string& path() const { return file_.path(); }
    std::uint32_t version() const { return version_; }
    std::uint64_t alignment() const { return alignment_; }
    std::uint64_t data_offset() const { return data_offset_; }
    const MappedFile& mapped() const { return file_; }

    const std::vector<std::pair<std::string_view, Value>>& metadata() const { return metadata_; }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }

    const Value* find(std::string_view key) const {
        auto it = metadata_index_.find(key);
        return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
    }
    const TensorInfo* find_tensor(std::string_view name) const {
        auto it = tensor_index_.find(name);
        return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
    }

    // Typed metadata access. The `require_` forms throw Error(format) naming the key when it is
    // absent or of the wrong type; the `get_` forms return the fallback when absent.
    std::uint64_t require_uint(std::string_view key) const {
        const Value& v = require(key);
        if (v.is_integer() && (!v.is_signed() || v.int_value >= 0)) return v.is_signed() ? std::uint64_t(v.int_value) : v.uint_value;
        detail::fail(ErrorCode::format, path(), ": metadata ", key, " must be a non-negative integer, found ", type_name(v.type));
    }
    std::uint64_t get_uint(std::string_view key, std::uint64_t fallback) const {
        return find(key) ? require_uint(key) : fallback;
    }
    double require_float(std::string_view key) const {
        const Value& v = require(key);
        if (v.type == Type::f32 || v.type == Type::f64) return v.float_value;
        if (v.is_integer()) return v.is_signed() ? double(v.int_value) : double(v.uint_value);
        detail::fail(ErrorCode::format, path(), ": metadata ", key, " must be a number, found ", type_name(v.type));
    }
    double get_float(std::string_view key, double fallback) const { return find(key) ? require_float(key) : fallback; }
    std::string_view require_string(std::string_view key) const {
        const Value& v = require(key);
        if (v.type != Type::string)
            detail::fail(ErrorCode::format, path(), ": metadata ", key, " must be a string, found ", type_name(v.type));
        return v.string_value;
    }
    std::string_view get_string(std::string_view key, std::string_view fallback) const {
        return find(key) ? require_string(key) : fallback;
    }
    bool get_bool(std::string_view key, bool fallback) const {
        const Value* v = find(key);
        if (!v) return fallback;
        if (v->type != Type::boolean)
            detail::fail(ErrorCode::format, path(), ": metadata ", key, " must be a bool, found ", type_name(v->type));
        return v->uint_value != 0;
    }
    const Value& require(std::string_view key) const {
        if (const Value* v = find(key)) return *v;
        detail::fail(ErrorCode::format, path(), ": metadata key ", key, " is missing");
    }

private:
    // A cursor over the mapped bytes that checks every read.
    struct Cursor {
        const File& owner;
        const std::byte* begin;
        const std::byte* p;
        const std::byte* end;

        std::uint64_t offset() const { return std::uint64_t(p - begin); }
        std::uint64_t remaining() const { return std::uint64_t(end - p); }

        [[noreturn]] void truncated(std::string_view what) const {
            detail::fail(ErrorCode::format, owner.path(), ": truncated GGUF: ", what, " at byte ", offset(),
                         " runs past the end of the file (", std::uint64_t(end - begin), " bytes)");
        }
        template <typename T>
        T read(std::string_view what) {
            if (remaining() < sizeof(T)) truncated(what);
            T v;
            std::memcpy(&v, p, sizeof(T));
            p += sizeof(T);
            return v;
        }
        std::string_view read_string(std::string_view what, std::uint64_t max_length) {
            std::uint64_t at = offset();
            std::uint64_t n = read<std::uint64_t>(what);
            if (n > max_length)
                detail::fail(ErrorCode::format, owner.path(), ": ", what, " at byte ", at, " has length ", n,
                             ", over the limit of ", max_length);
            if (n > remaining()) truncated(what);
            std::string_view s(reinterpret_cast<const char*>(p), std::size_t(n));
            p += n;
            return s;
        }
    };

    void parse() {
        const std::byte* base = file_.data();
        Cursor c{*this, base, base, base + file_.size()};
        if (file_.size() < 4 || std::memcmp(base, "GGUF", 4) != 0)
            detail::fail(ErrorCode::format, path(), ": not a GGUF file (the first 4 bytes are not \"GGUF\")");
        c.p += 4;
        version_ = c.read<std::uint32_t>("version");
        if (version_ == 1)
            detail::fail(ErrorCode::unsupported, path(), ": GGUF version 1 is not supported (convert it to version 3)");
        if ((version_ & 0xFFFF) == 0 && version_ != 0)
            detail::fail(ErrorCode::unsupported, path(), ": big-endian GGUF files are not supported");
        if (version_ != 2 && version_ != 3)
            detail::fail(ErrorCode::unsupported, path(), ": unknown GGUF version ", version_, " (expected 2 or 3)");
        std::uint64_t tensor_count = c.read<std::uint64_t>("tensor count");
        std::uint64_t kv_count = c.read<std::uint64_t>("metadata count");
        // Every entry takes at least 8+4+1 (key/value) or 8+4+8+4+8 (tensor) bytes: a larger count
        // cannot fit in the file, so it is rejected before anything is reserved for it.
        if (kv_count > c.remaining() / 13)
            detail::fail(ErrorCode::format, path(), ": metadata count ", kv_count, " cannot fit in a file of ",
                         file_.size(), " bytes");
        metadata_.reserve(std::size_t(kv_count));
        for (std::uint64_t i = 0; i < kv_count; ++i) {
            std::uint64_t at = c.offset();
            std::string_view key = c.read_string("metadata key", kMaxKeyLength);
            Value v = read_value(c, key, 0);
            if (!metadata_index_.emplace(key, metadata_.size()).second)
                detail::fail(ErrorCode::format, path(), ": duplicate metadata key ", key, " at byte ", at);
            metadata_.emplace_back(key, std::move(v));
        }

        alignment_ = 32;
        if (const Value* a = find("general.alignment")) {
            if (!a->is_integer() || a->is_signed())
                detail::fail(ErrorCode::format, path(), ": general.alignment must be an unsigned integer");
            alignment_ = a->uint_value;
            if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0 || alignment_ > (1u << 20))
                detail::fail(ErrorCode::format, path(), ": general.alignment ", alignment_, " is not a power of two up to 1 MiB");
        }

        if (tensor_count > c.remaining() / 32)
            detail::fail(ErrorCode::format, path(), ": tensor count ", tensor_count, " cannot fit in a file of ",
                         file_.size(), " bytes");
        tensors_.reserve(std::size_t(tensor_count));
        for (std::uint64_t i = 0; i < tensor_count; ++i) tensors_.push_back(read_tensor_info(c));

        std::uint64_t header_end = c.offset();
        data_offset_ = (header_end + alignment_ - 1) / alignment_ * alignment_;
        if (tensor_count > 0 && data_offset_ > file_.size())
            detail::fail(ErrorCode::format, path(), ": truncated GGUF: the tensor data section would start at byte ",
                         data_offset_, " but the file has ", file_.size(), " bytes");
        std::uint64_t data_size = file_.size() > data_offset_ ? file_.size() - data_offset_ : 0;
        for (std::size_t i = 0; i < tensors_.size(); ++i) {
            TensorInfo& t = tensors_[i];
            if (t.offset % alignment_ != 0)
                detail::fail(ErrorCode::format, path(), ": tensor ", t.name, " has offset ", t.offset,
                             ", not a multiple of the alignment ", alignment_);
            if (t.offset > data_size || t.bytes > data_size - t.offset)
                detail::fail(ErrorCode::format, path(), ": tensor ", t.name, " (", t.bytes, " bytes at data offset ",
                             t.offset, ") runs past the end of the file: truncated or corrupt (data section holds ",
                             data_size, " bytes)");
            t.data = base + data_offset_ + t.offset;
            if (!tensor_index_.emplace(t.name, i).second)
                detail::fail(ErrorCode::format, path(), ": duplicate tensor name ", t.name);
        }
    }

    Value read_value(Cursor& c, std::string_view key, int depth) {
        Value v;
        std::uint32_t raw_type = c.read<std::uint32_t>("metadata value type");
        if (raw_type > std::uint32_t(Type::f64))
            detail::fail(ErrorCode::format, path(), ": metadata ", key, " has unknown value type ", raw_type);
        v.type = static_cast<Type>(raw_type);
        read_scalar_or_array(c, key, v, depth);
        return v;
    }

    void read_scalar_or_array(Cursor& c, std::string_view key, Value& v, int depth) {
        switch (v.type) {
            case Type::u8: v.uint_value = c.read<std::uint8_t>(key); break;
            case Type::i8: v.int_value = c.read<std::int8_t>(key); break;
            case Type::u16: v.uint_value = c.read<std::uint16_t>(key); break;
            case Type::i16: v.int_value = c.read<std::int16_t>(key); break;
            case Type::u32: v.uint_value = c.read<std::uint32_t>(key); break;
            case Type::i32: v.int_value = c.read<std::int32_t>(key); break;
            case Type::u64: v.uint_value = c.read<std::uint64_t>(key); break;
            case Type::i64: v.int_value = c.read<std::int64_t>(key); break;
            case Type::f32: v.float_value = c.read<float>(key); break;
            case Type::f64: v.float_value = c.read<double>(key); break;
            case Type::boolean: {
                std::uint8_t b = c.read<std::uint8_t>(key);
                if (b > 1) detail::fail(ErrorCode::format, path(), ": metadata ", key, " is a bool with value ", int(b));
                v.uint_value = b;
                break;
            }
            case Type::string: v.string_value = c.read_string(key, c.remaining()); break;
            case Type::array: read_array(c, key, v, depth); break;
        }
    }

    void read_array(Cursor& c, std::string_view key, Value& v, int depth) {
        if (depth >= kMaxArrayNesting)
            detail::fail(ErrorCode::format, path(), ": metadata ", key, " nests arrays deeper than ", kMaxArrayNesting);
        std::uint32_t raw = c.read<std::uint32_t>("array element type");
        if (raw > std::uint32_t(Type::f64))
            detail::fail(ErrorCode::format, path(), ": metadata ", key, " has unknown array element type ", raw);
        v.element_type = static_cast<Type>(raw);
        std::uint64_t at = c.offset();
        v.count = c.read<std::uint64_t>("array length");
        std::size_t elem = scalar_size(v.element_type);
        // a string takes at least its 8-byte length, a nested array at least 12 bytes
        std::uint64_t min_elem = elem ? elem : (v.element_type == Type::string ? 8 : 12);
        if (v.count > c.remaining() / min_elem)
            detail::fail(ErrorCode::format, path(), ": metadata ", key, " at byte ", at, " declares ", v.count,
                         " elements, more than the remaining ", c.remaining(), " bytes can hold");
        if (elem) {
            v.elements = c.p;
            c.p += v.count * elem;
        } else if (v.element_type == Type::string) {
            v.strings.reserve(std::size_t(v.count));
            for (std::uint64_t i = 0; i < v.count; ++i) v.strings.push_back(c.read_string(key, c.remaining()));
        } else {
            // arrays of arrays: validated and skipped (nothing in a Qwen3 file uses them)
            for (std::uint64_t i = 0; i < v.count; ++i) {
                Value inner;
                inner.type = Type::array;
                read_array(c, key, inner, depth + 1);
            }
        }
    }

    TensorInfo read_tensor_info(Cursor& c) {
        TensorInfo t;
        std::uint64_t at = c.offset();
        t.name = std::string(c.read_string("tensor name", kMaxKeyLength));
        std::uint32_t n_dims = c.read<std::uint32_t>("tensor rank");
        if (n_dims == 0 || n_dims > kMaxDims)
            detail::fail(ErrorCode::format, path(), ": tensor ", t.name, " at byte ", at, " has rank ", n_dims,
                         " (must be 1 to ", kMaxDims, ")");
        std::uint64_t ne[kMaxDims] = {};
        for (std::uint32_t d = 0; d < n_dims; ++d) ne[d] = c.read<std::uint64_t>("tensor dimension");
        std::uint32_t raw_type = c.read<std::uint32_t>("tensor type");
        t.offset = c.read<std::uint64_t>("tensor offset");
        const DTypeInfo* info = find_dtype(raw_type);
        if (!info)
            detail::fail(ErrorCode::unsupported, path(), ": tensor ", t.name, " has ggml type ", raw_type,
                         ", which this library does not support");
        t.type = info->type;
        t.shape.rank = n_dims;
        std::uint64_t elements = 1;
        for (std::uint32_t d = 0; d < n_dims; ++d) {
            // 2^40 elements per dimension is far beyond any model and keeps products from overflowing
            if (ne[d] == 0 || ne[d] > (std::uint64_t(1) << 40))
                detail::fail(ErrorCode::format, path(), ": tensor ", t.name, " has dimension ", d, " = ", ne[d]);
            if (elements > std::numeric_limits<std::uint64_t>::max() / ne[d])
                detail::fail(ErrorCode::format, path(), ": tensor ", t.name, " has too many elements");
            elements *= ne[d];
            t.shape.dims[n_dims - 1 - d] = ne[d];  // GGUF lists the fastest dimension first
        }
        if (ne[0] % info->block_elems != 0)
            detail::fail(ErrorCode::format, path(), ": tensor ", t.name, " of type ", info->name, " has ", ne[0],
                         " columns, not a multiple of its block size ", info->block_elems);
        std::uint64_t blocks = elements / info->block_elems;
        if (blocks > std::numeric_limits<std::uint64_t>::max() / info->block_bytes)
            detail::fail(ErrorCode::format, path(), ": tensor ", t.name, " is too large");
        t.bytes = blocks * info->block_bytes;
        return t;
    }

    MappedFile file_;
    std::uint32_t version_ = 0;
    std::uint64_t alignment_ = 32;
    std::uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string_view, Value>> metadata_;
    std::unordered_map<std::string_view, std::size_t> metadata_index_;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string_view, std::size_t> tensor_index_;
};

}  // namespace qwen3::gguf
