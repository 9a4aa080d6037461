// qwen3/format/gguf.hpp - a bounds-checked GGUF reader (versions 2 and 3, little-endian).
//
// GGUF is llama.cpp's single-file format: a header, typed metadata key/value pairs, a table of tensor
// descriptions, then the aligned tensor data. The reader maps the file and keeps views into it;
// strings, string arrays (a 151k-token vocabulary) and tensor data are never copied.
//
// Every count, length and offset in the file is checked against the bytes that remain before it is
// used, so a truncated or hostile file yields Error(format) naming the file, the byte offset and
// the field, never an out-of-bounds read or an allocation sized by an unchecked number. Counts also
// have hard limits (kMax* below) far above any real model, so the memory the parsed tables take is
// bounded by those limits and by the file's own size; every reserve() names the check it relies on.
//
// Tensor data: each tensor must lie inside the data section, at a multiple of the alignment, and no
// two tensors may overlap (their views would alias, which no writer produces; llama.cpp goes further
// and requires them back to back in table order). Gaps and any order are accepted.
#pragma once

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../error.hpp"
#include "../tensor.hpp"
#include "mmap.hpp"

namespace qwen3::detail {
// A name or key from the file, made safe to print: control and non-ASCII bytes as \xNN, and long
// names cut short, so a hostile file cannot put terminal escapes or megabytes into a message.
inline std::string quote_file_string(std::string_view s) {
    constexpr std::size_t kMaxShown = 120;
    static const char hex[] = "0123456789abcdef";
    std::string out = "\"";
    for (std::size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out += char(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    out += s.size() > kMaxShown ? "\"..." : "\"";
    return out;
}

// ggml's name for a type id this library does not load (for the message that refuses it); "" when
// the id is not a ggml type at all.
inline const char* ggml_type_name(std::uint32_t id) {
    static const char* const names[] = {
        "F32", "F16", "Q4_0", "Q4_1", "", "", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
        "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8",
        "I16", "I32", "I64", "F64", "IQ1_M", "BF16", "", "", "", "TQ1_0", "TQ2_0", "", "", "", "MXFP4"};
    return id < sizeof names / sizeof names[0] ? names[id] : "";
}
}  // namespace qwen3::detail

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

    // Element i of an integer (or bool) array as int64. Throws Error(invalid_argument) when this is
    // not such an array or i >= count (uint64 elements above INT64_MAX wrap, as a cast would).
    std::int64_t integer_element(std::uint64_t i) const {
        if (type != Type::array || !elements || element_type == Type::f32 || element_type == Type::f64)
            detail::fail(ErrorCode::invalid_argument, "gguf: integer_element on a value that is not an integer array");
        if (i >= count)
            detail::fail(ErrorCode::invalid_argument, "gguf: array element ", i, " requested, the array has ", count);
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
// (A Qwen3 GGUF has ~30 metadata keys, at most ~900 tensors, arrays of 151,936 tokens and strings of a
// few kilobytes; ggml itself caps tensor names at 63 bytes.)
inline constexpr std::uint64_t kMaxKeyLength = 65536;           // metadata keys and tensor names
inline constexpr std::uint64_t kMaxStringLength = 1ull << 30;   // metadata string values (1 GiB)
inline constexpr std::uint64_t kMaxArrayLength = 1ull << 24;    // elements of one metadata array
inline constexpr std::uint64_t kMaxMetadataCount = 1ull << 16;  // metadata key/value pairs
inline constexpr std::uint64_t kMaxTensorCount = 1ull << 16;    // tensors
inline constexpr std::uint64_t kMaxDimension = 1ull << 40;      // elements along one dimension
inline constexpr std::uint64_t kMaxAlignment = 1ull << 20;      // general.alignment (a power of two)
inline constexpr std::uint32_t kMaxDims = 4;
inline constexpr int kMaxArrayNesting = 2;  // an array of arrays is accepted (and skipped); deeper is not

class File {
public:
    // Maps and parses `path`. Throws Error(io) when it cannot be read; Error(format) when it is
    // malformed or over a limit above (the message names the file, the field and its byte offset);
    // Error(unsupported) for a big-endian file, a version other than 2 and 3, or a ggml tensor type
    // this library does not load (an id that is no ggml type at all is Error(format)).
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

        [[noreturn]] void truncated(std::string_view what, std::uint64_t at) const {
            detail::fail(ErrorCode::format, owner.path(), ": truncated GGUF: ", what, " at byte ", at,
                         " runs past the end of the file (", std::uint64_t(end - begin), " bytes)");
        }
        template <typename T>
        T read(std::string_view what) {
            if (remaining() < sizeof(T)) truncated(what, offset());
            T v;
            std::memcpy(&v, p, sizeof(T));
            p += sizeof(T);
            return v;
        }
        // A length-prefixed string, viewed in place (nothing is allocated for it).
        std::string_view read_string(std::string_view what, std::uint64_t max_length) {
            std::uint64_t at = offset();
            std::uint64_t n = read<std::uint64_t>(what);
            if (n > max_length)
                detail::fail(ErrorCode::format, owner.path(), ": ", what, " at byte ", at, " has length ", n,
                             ", over the limit of ", max_length);
            if (n > remaining()) truncated(what, at);
            std::string_view s(reinterpret_cast<const char*>(p), std::size_t(n));
            p += n;
            return s;
        }
    };

    void parse() {
        const std::byte* base = file_.data();
        Cursor c{*this, base, base, base + file_.size()};
        if (file_.size() < 4)
            detail::fail(ErrorCode::format, path(), ": not a GGUF file (", file_.size(),
                         " bytes; a GGUF file starts with the 4-byte magic \"GGUF\")");
        if (std::memcmp(base, "GGUF", 4) != 0)
            detail::fail(ErrorCode::format, path(), ": not a GGUF file (it starts with ",
                         detail::quote_file_string(std::string_view(reinterpret_cast<const char*>(base), 4)),
                         ", not \"GGUF\")");
        c.p += 4;
        version_ = c.read<std::uint32_t>("version");
        if (version_ == 1)
            detail::fail(ErrorCode::unsupported, path(), ": GGUF version 1 is not supported (convert it to version 3)");
        if ((version_ & 0xFFFF) == 0 && version_ != 0)
            detail::fail(ErrorCode::unsupported, path(), ": big-endian GGUF files are not supported (version field ",
                         version_, " is a byte-swapped ", __builtin_bswap32(version_), ")");
        if (version_ != 2 && version_ != 3)
            detail::fail(ErrorCode::unsupported, path(), ": unknown GGUF version ", version_, " (expected 2 or 3)");
        std::uint64_t tensor_count = c.read<std::uint64_t>("tensor count");
        std::uint64_t kv_count = c.read<std::uint64_t>("metadata count");
        if (tensor_count > kMaxTensorCount)
            detail::fail(ErrorCode::format, path(), ": tensor count ", tensor_count, " is over the limit of ", kMaxTensorCount);
        if (kv_count > kMaxMetadataCount)
            detail::fail(ErrorCode::format, path(), ": metadata count ", kv_count, " is over the limit of ", kMaxMetadataCount);
        // Every key/value takes at least 8 (key length) + 4 (type) + 1 (smallest value) bytes, so a
        // count the remaining bytes cannot hold is rejected before anything is reserved for it.
        if (kv_count > c.remaining() / 13)
            detail::fail(ErrorCode::format, path(), ": metadata count ", kv_count, " cannot fit in a file of ",
                         file_.size(), " bytes (truncated or corrupt)");
        metadata_.reserve(std::size_t(kv_count));  // bounded by kMaxMetadataCount and the file size
        for (std::uint64_t i = 0; i < kv_count; ++i) {
            std::uint64_t at = c.offset();
            std::string_view key = c.read_string("metadata key", kMaxKeyLength);
            Value v = read_value(c, key, 0);
            if (!metadata_index_.emplace(key, metadata_.size()).second)
                detail::fail(ErrorCode::format, path(), ": duplicate metadata key ", detail::quote_file_string(key),
                             " at byte ", at);
            metadata_.emplace_back(key, std::move(v));
        }

        alignment_ = 32;
        if (const Value* a = find("general.alignment")) {
            if (!a->is_integer() || a->is_signed())
                detail::fail(ErrorCode::format, path(), ": general.alignment must be an unsigned integer, found ",
                             type_name(a->type));
            alignment_ = a->uint_value;
            if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0 || alignment_ > kMaxAlignment)
                detail::fail(ErrorCode::format, path(), ": general.alignment ", alignment_,
                             " is not a power of two up to 1 MiB");
        }

        // A tensor entry takes at least 8 (name length) + 4 (rank) + 8 (one dimension) + 4 (type) +
        // 8 (offset) bytes; the same argument as for the metadata count.
        if (tensor_count > c.remaining() / 32)
            detail::fail(ErrorCode::format, path(), ": tensor count ", tensor_count, " cannot fit in a file of ",
                         file_.size(), " bytes (truncated or corrupt)");
        tensors_.reserve(std::size_t(tensor_count));  // bounded by kMaxTensorCount and the file size
        for (std::uint64_t i = 0; i < tensor_count; ++i) tensors_.push_back(read_tensor_info(c));

        // header_end <= file size and alignment <= 1 MiB: no overflow
        std::uint64_t header_end = c.offset();
        data_offset_ = (header_end + alignment_ - 1) / alignment_ * alignment_;
        if (tensor_count > 0 && data_offset_ > file_.size())
            detail::fail(ErrorCode::format, path(), ": truncated GGUF: the tensor data section would start at byte ",
                         data_offset_, " but the file has ", file_.size(), " bytes");
        std::uint64_t data_size = file_.size() > data_offset_ ? file_.size() - data_offset_ : 0;
        for (std::size_t i = 0; i < tensors_.size(); ++i) {
            TensorInfo& t = tensors_[i];
            if (!tensor_index_.emplace(t.name, i).second)
                detail::fail(ErrorCode::format, path(), ": duplicate tensor name ", detail::quote_file_string(t.name));
            if (t.offset % alignment_ != 0)
                detail::fail(ErrorCode::format, path(), ": tensor ", detail::quote_file_string(t.name), " has offset ",
                             t.offset, ", not a multiple of the alignment ", alignment_);
            // written as two comparisons so that offset + bytes cannot overflow
            if (t.offset > data_size || t.bytes > data_size - t.offset)
                detail::fail(ErrorCode::format, path(), ": tensor ", detail::quote_file_string(t.name), " (", t.bytes,
                             " bytes at data offset ", t.offset,
                             ") runs past the end of the file: truncated or corrupt (the data section holds ", data_size,
                             " bytes)");
            t.data = base + data_offset_ + t.offset;
        }
        check_no_overlap();
    }

    // Two tensors sharing bytes would alias each other's data: no writer produces that, so it is
    // corruption (or a crafted file), reported with both names.
    void check_no_overlap() const {
        std::vector<std::size_t> order(tensors_.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::sort(order.begin(), order.end(),
                  [&](std::size_t a, std::size_t b) {
                      return tensors_[a].offset != tensors_[b].offset ? tensors_[a].offset < tensors_[b].offset : a < b;
                  });
        for (std::size_t k = 1; k < order.size(); ++k) {
            const TensorInfo& prev = tensors_[order[k - 1]];
            const TensorInfo& next = tensors_[order[k]];
            if (next.offset < prev.offset + prev.bytes)  // both in bounds: no overflow
                detail::fail(ErrorCode::format, path(), ": tensor ", detail::quote_file_string(next.name),
                             " (data bytes ", next.offset, " to ", next.offset + next.bytes, ") overlaps tensor ",
                             detail::quote_file_string(prev.name), " (", prev.offset, " to ", prev.offset + prev.bytes, ")");
        }
    }

    Value read_value(Cursor& c, std::string_view key, int depth) {
        Value v;
        std::uint64_t at = c.offset();
        std::uint32_t raw_type = c.read<std::uint32_t>("metadata value type");
        if (raw_type > std::uint32_t(Type::f64))
            detail::fail(ErrorCode::format, path(), ": metadata ", detail::quote_file_string(key), " at byte ", at,
                         " has unknown value type ", raw_type);
        v.type = static_cast<Type>(raw_type);
        read_scalar_or_array(c, key, v, depth);
        return v;
    }

    void read_scalar_or_array(Cursor& c, std::string_view key, Value& v, int depth) {
        const std::string what = "metadata " + detail::quote_file_string(key);
        switch (v.type) {
            case Type::u8: v.uint_value = c.read<std::uint8_t>(what); break;
            case Type::i8: v.int_value = c.read<std::int8_t>(what); break;
            case Type::u16: v.uint_value = c.read<std::uint16_t>(what); break;
            case Type::i16: v.int_value = c.read<std::int16_t>(what); break;
            case Type::u32: v.uint_value = c.read<std::uint32_t>(what); break;
            case Type::i32: v.int_value = c.read<std::int32_t>(what); break;
            case Type::u64: v.uint_value = c.read<std::uint64_t>(what); break;
            case Type::i64: v.int_value = c.read<std::int64_t>(what); break;
            case Type::f32: v.float_value = c.read<float>(what); break;
            case Type::f64: v.float_value = c.read<double>(what); break;
            case Type::boolean: {
                std::uint64_t at = c.offset();
                std::uint8_t b = c.read<std::uint8_t>(what);
                if (b > 1)
                    detail::fail(ErrorCode::format, path(), ": ", what, " at byte ", at, " is a bool with value ", int(b),
                                 " (must be 0 or 1)");
                v.uint_value = b;
                break;
            }
            case Type::string: v.string_value = c.read_string(what, kMaxStringLength); break;
            case Type::array: read_array(c, key, v, depth); break;
        }
    }

    void read_array(Cursor& c, std::string_view key, Value& v, int depth) {
        const std::string what = "metadata " + detail::quote_file_string(key);
        if (depth >= kMaxArrayNesting)
            detail::fail(ErrorCode::format, path(), ": ", what, " at byte ", c.offset(), " nests arrays deeper than ",
                         kMaxArrayNesting);
        std::uint32_t raw = c.read<std::uint32_t>("array element type");
        if (raw > std::uint32_t(Type::f64))
            detail::fail(ErrorCode::format, path(), ": ", what, " has unknown array element type ", raw);
        v.element_type = static_cast<Type>(raw);
        std::uint64_t at = c.offset();
        v.count = c.read<std::uint64_t>("array length");
        if (v.count > kMaxArrayLength)
            detail::fail(ErrorCode::format, path(), ": ", what, " at byte ", at, " declares ", v.count,
                         " elements, over the limit of ", kMaxArrayLength);
        std::size_t elem = scalar_size(v.element_type);
        // A string element takes at least its 8-byte length, a nested array at least 12 bytes: a count
        // the remaining bytes cannot hold is rejected before anything is reserved or skipped.
        std::uint64_t min_elem = elem ? elem : (v.element_type == Type::string ? 8 : 12);
        if (v.count > c.remaining() / min_elem)
            detail::fail(ErrorCode::format, path(), ": ", what, " at byte ", at, " declares ", v.count,
                         " elements, more than the remaining ", c.remaining(), " bytes can hold (truncated or corrupt)");
        if (elem) {
            v.elements = c.p;
            if (v.element_type == Type::boolean)
                for (std::uint64_t i = 0; i < v.count; ++i)
                    if (std::uint8_t(c.p[i]) > 1)
                        detail::fail(ErrorCode::format, path(), ": ", what, " element ", i, " at byte ", c.offset() + i,
                                     " is a bool with value ", int(c.p[i]), " (must be 0 or 1)");
            c.p += v.count * elem;  // in bounds: count <= remaining / elem
        } else if (v.element_type == Type::string) {
            v.strings.reserve(std::size_t(v.count));  // <= remaining / 8 views: bounded by the file size
            for (std::uint64_t i = 0; i < v.count; ++i) v.strings.push_back(c.read_string(what, kMaxStringLength));
        } else {
            // arrays of arrays: validated and skipped (nothing in a Qwen3 file uses them); the recursion
            // is at most kMaxArrayNesting deep, and each element consumes at least 12 bytes
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
        t.name = std::string(c.read_string("tensor name", kMaxKeyLength));  // <= 64 KiB each
        const std::string name = detail::quote_file_string(t.name);
        std::uint32_t n_dims = c.read<std::uint32_t>("tensor rank");
        if (n_dims == 0 || n_dims > kMaxDims)
            detail::fail(ErrorCode::format, path(), ": tensor ", name, " at byte ", at, " has rank ", n_dims,
                         " (must be 1 to ", kMaxDims, ")");
        std::uint64_t ne[kMaxDims] = {};
        for (std::uint32_t d = 0; d < n_dims; ++d) ne[d] = c.read<std::uint64_t>("tensor dimension");
        std::uint32_t raw_type = c.read<std::uint32_t>("tensor type");
        t.offset = c.read<std::uint64_t>("tensor offset");
        const DTypeInfo* info = find_dtype(raw_type);
        if (!info) {
            const char* ggml_name = detail::ggml_type_name(raw_type);
            if (*ggml_name)
                detail::fail(ErrorCode::unsupported, path(), ": tensor ", name, " has ggml type ", raw_type, " (",
                             ggml_name, "), which this library does not support");
            detail::fail(ErrorCode::format, path(), ": tensor ", name, " at byte ", at, " has unknown ggml type ", raw_type);
        }
        t.type = info->type;
        t.shape.rank = n_dims;
        std::uint64_t elements = 1;
        for (std::uint32_t d = 0; d < n_dims; ++d) {
            // ne[d] <= 2^40, so the product check below is the only overflow to guard
            if (ne[d] == 0 || ne[d] > kMaxDimension)
                detail::fail(ErrorCode::format, path(), ": tensor ", name, " dimension ", d, " has size ", ne[d],
                             " (must be 1 to ", kMaxDimension, ")");
            if (elements > std::numeric_limits<std::uint64_t>::max() / ne[d])
                detail::fail(ErrorCode::format, path(), ": tensor ", name, " has too many elements (over 2^64)");
            elements *= ne[d];
            t.shape.dims[n_dims - 1 - d] = ne[d];  // GGUF lists the fastest dimension first
        }
        if (ne[0] % info->block_elems != 0)
            detail::fail(ErrorCode::format, path(), ": tensor ", name, " of type ", info->name, " has rows of ", ne[0],
                         " elements, not a multiple of its block size ", info->block_elems);
        std::uint64_t blocks = elements / info->block_elems;
        if (blocks > std::numeric_limits<std::uint64_t>::max() / info->block_bytes)
            detail::fail(ErrorCode::format, path(), ": tensor ", name, " is too large (over 2^64 bytes)");
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
