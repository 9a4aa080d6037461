// qwen3/format/safetensors.hpp - a bounds-checked reader of Hugging Face safetensors files.
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON describing each tensor (dtype,
// shape, [begin, end) offsets into the data that follows), then the raw row-major data. Sharded
// checkpoints list which file holds each tensor in model.safetensors.index.json.
//
// Validation follows the reference implementation (the `safetensors` Rust crate behind Python's
// safe_open), so a file this reader accepts is one Hugging Face loads: the header is at most 100 MB
// of UTF-8 JSON; it is an object whose keys are unique; each entry has a known dtype, a shape of at
// most 4 non-negative integers and offsets whose span is exactly shape x dtype bytes; and the
// tensors, sorted by offset, tile the data section exactly, with no overlap, gap or trailing byte.
// Everything allocated while parsing is bounded by the header's length and kMaxHeaderValues.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../error.hpp"
#include "../tensor.hpp"
#include "json.hpp"
#include "mmap.hpp"

namespace qwen3::detail {
// Reads a JSON integer written without fraction or exponent into `out`; false when it is negative,
// above `limit` or not such an integer (its text may be any length, so no conversion can overflow).
inline bool json_uint_at_most(const json::Value& v, std::uint64_t limit, std::uint64_t& out) {
    if (!v.is_integer()) return false;
    const std::string& text = v.as_number().text;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && ptr == text.data() + text.size() && out <= limit;
}
}  // namespace qwen3::detail

namespace qwen3::safetensors {

struct TensorInfo {
    std::string name;
    std::string dtype;  // as written: "BF16", "F16", "F32", "I64", ...
    Shape shape;
    const std::byte* data = nullptr;
    std::uint64_t bytes = 0;
    bool supported = false;  // dtype is one this library computes with
    DType type = DType::f32; // valid when supported
};

// Element size of a safetensors dtype in bytes; 0 when unknown (or smaller than a byte: see dtype_bits).
inline std::uint64_t dtype_size(std::string_view dtype) {
    if (dtype == "F64" || dtype == "I64" || dtype == "U64" || dtype == "C64") return 8;
    if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
    if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
    if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2" ||
        dtype == "F8_E8M0")
        return 1;
    return 0;
}

// Element size in bits, including the packed sub-byte float types; 0 when unknown.
inline std::uint64_t dtype_bits(std::string_view dtype) {
    if (dtype == "F4") return 4;
    if (dtype == "F6_E2M3" || dtype == "F6_E3M2") return 6;
    return dtype_size(dtype) * 8;
}

// The safetensors format caps its JSON header at 100 MB; a larger declared length is corrupt.
inline constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
// JSON values a header (or an index) may hold. A tensor entry takes at most 11 (the entry, dtype,
// shape and 4 dimensions, offsets and 2 numbers), so this allows ~95,000 tensors per file while
// capping the parsed tree at about 100 MB however the header is written (the densest spelling,
// {"":0,...}, is the largest), plus the strings' bytes, at most the header's.
inline constexpr std::size_t kMaxHeaderValues = 1u << 20;
// A valid header nests 3 deep (root, entry, shape); __metadata__ is an object of strings.
inline constexpr int kMaxHeaderDepth = 8;
inline constexpr std::uint64_t kMaxDimension = 1ull << 40;

class File {
public:
    // Maps and parses one .safetensors file. Throws Error(io) when it cannot be read, Error(format)
    // naming the file (and the tensor) when it is malformed.
    explicit File(const std::string& path) : file_(path) { parse(); }

    const std::string& path() const { return file_.path(); }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find(std::string_view name) const {
        auto it = index_.find(name);
        return it == index_.end() ? nullptr : &tensors_[it->second];
    }

private:
    void parse() {
        const std::uint64_t size = file_.size();
        if (size < 8) detail::fail(ErrorCode::format, path(), ": truncated safetensors file (", size, " bytes, no header)");
        std::uint64_t header_len;
        std::memcpy(&header_len, file_.data(), 8);
        if (header_len > kMaxHeaderBytes)
            detail::fail(ErrorCode::format, path(), ": safetensors header length ", header_len,
                         " is over the format's limit of 100 MB (corrupt file?)");
        if (header_len > size - 8)
            detail::fail(ErrorCode::format, path(), ": truncated safetensors file: header of ", header_len,
                         " bytes but only ", size - 8, " bytes follow");
        std::string_view header(reinterpret_cast<const char*>(file_.data()) + 8, std::size_t(header_len));
        json::ParseOptions options;
        options.max_depth = kMaxHeaderDepth;
        options.max_values = kMaxHeaderValues;
        options.unique_keys = true;  // a tensor named twice is rejected by the parser, with its offset
        json::Value root = json::parse(header, path() + " (safetensors header)", options);
        if (!root.is_object()) detail::fail(ErrorCode::format, path(), ": safetensors header is not a JSON object");
        const std::byte* data = file_.data() + 8 + header_len;
        const std::uint64_t data_size = size - 8 - header_len;

        tensors_.reserve(root.as_object().size());  // bounded by kMaxHeaderValues
        for (const json::Member& m : root.as_object()) {
            if (m.key == "__metadata__") {
                if (!m.value.is_object())
                    detail::fail(ErrorCode::format, path(), ": safetensors \"__metadata__\" is not a JSON object");
                continue;
            }
            tensors_.push_back(parse_entry(m.key, m.value, data, data_size));
        }
        check_layout(data, data_size);
        for (std::size_t i = 0; i < tensors_.size(); ++i)
            if (!index_.emplace(tensors_[i].name, i).second)  // unreachable after unique_keys; kept as a guard
                detail::fail(ErrorCode::format, path(), ": duplicate tensor ", json::quote(tensors_[i].name));
    }

    TensorInfo parse_entry(const std::string& name, const json::Value& entry, const std::byte* data,
                           std::uint64_t data_size) const {
        auto bad = [&](std::string_view why) {
            detail::fail(ErrorCode::format, path(), ": tensor ", json::quote(name), ": ", why);
        };
        if (!entry.is_object()) bad("entry is not an object");
        TensorInfo t;
        t.name = name;
        const json::Value* dtype = entry.find("dtype");
        const json::Value* shape = entry.find("shape");
        const json::Value* offsets = entry.find("data_offsets");
        if (!dtype || !dtype->is_string()) bad("missing or non-string \"dtype\"");
        if (!shape || !shape->is_array()) bad("missing or non-array \"shape\"");
        if (!offsets || !offsets->is_array() || offsets->as_array().size() != 2) bad("\"data_offsets\" must be [begin, end]");
        t.dtype = dtype->as_string();
        const std::uint64_t bits = dtype_bits(t.dtype);
        if (!bits) bad("unknown dtype " + json::quote(t.dtype));
        if (t.dtype == "F32") t.type = DType::f32, t.supported = true;
        else if (t.dtype == "F16") t.type = DType::f16, t.supported = true;
        else if (t.dtype == "BF16") t.type = DType::bf16, t.supported = true;

        const json::Array& dims = shape->as_array();
        if (dims.size() > 4) bad("rank " + std::to_string(dims.size()) + " is over 4");
        t.shape.rank = std::uint32_t(dims.size());
        std::uint64_t elements = 1;
        for (std::size_t d = 0; d < dims.size(); ++d) {
            std::uint64_t v = 0;
            if (!detail::json_uint_at_most(dims[d], kMaxDimension, v))
                bad("shape entries must be integers from 0 to " + std::to_string(kMaxDimension) + ", found " +
                    json::dump(dims[d]));
            t.shape.dims[d] = v;
            if (v && elements > std::numeric_limits<std::uint64_t>::max() / v) bad("too many elements (over 2^64)");
            elements *= v;
        }
        const json::Array& off = offsets->as_array();
        std::uint64_t begin = 0, end = 0;
        for (const json::Value& o : off)
            if (!o.is_integer() || o.as_number().text[0] == '-')
                bad("data_offsets must be non-negative integers, found " + json::dump(*offsets));
        if (!detail::json_uint_at_most(off[0], data_size, begin) || !detail::json_uint_at_most(off[1], data_size, end))
            bad("data " + json::dump(*offsets) + " runs past the end of the file (" + std::to_string(data_size) +
                " data bytes): truncated or corrupt");
        if (end < begin) bad("data_offsets end before they begin: " + json::dump(*offsets));
        // bits <= 64 and elements < 2^64: compare in bytes without overflow
        const bool fits = elements <= std::numeric_limits<std::uint64_t>::max() / bits;
        const std::uint64_t need_bits = fits ? elements * bits : 0;
        if (!fits || need_bits % 8 != 0 || end - begin != need_bits / 8)
            bad("holds " + std::to_string(end - begin) + " bytes but shape " + t.shape.to_string() + " of " + t.dtype +
                " needs " +
                (!fits ? std::string("more than 2^61 bytes")
                       : need_bits % 8 ? std::to_string(need_bits) + " bits (not whole bytes)"
                                       : std::to_string(need_bits / 8) + " bytes"));
        t.data = data + begin;
        t.bytes = end - begin;
        return t;
    }

    // The tensors must tile the data section: sorted by offset, each starts where the previous one
    // ended, the first at 0 and the last at the end (as the reference implementation requires).
    void check_layout(const std::byte* data, std::uint64_t data_size) const {
        std::vector<const TensorInfo*> order;
        order.reserve(tensors_.size());
        for (const TensorInfo& t : tensors_) order.push_back(&t);
        std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
            return a->data != b->data ? a->data < b->data : a->bytes < b->bytes;
        });
        std::uint64_t expected = 0;
        const TensorInfo* previous = nullptr;
        for (const TensorInfo* t : order) {
            const std::uint64_t begin = std::uint64_t(t->data - data);
            if (begin < expected)
                detail::fail(ErrorCode::format, path(), ": tensor ", json::quote(t->name), " (data bytes ", begin, " to ",
                             begin + t->bytes, ") overlaps tensor ", json::quote(previous->name), " (ending at ", expected, ")");
            if (begin > expected)
                detail::fail(ErrorCode::format, path(), ": tensor ", json::quote(t->name), " starts at data byte ", begin,
                             " but the data before it ends at ", expected,
                             " (safetensors packs tensors without gaps: corrupt file?)");
            expected = begin + t->bytes;
            previous = t;
        }
        if (expected != data_size)
            detail::fail(ErrorCode::format, path(), ": the tensors cover ", expected, " bytes of the ", data_size,
                         "-byte data section (safetensors packs tensors exactly: corrupt file?)");
    }

    MappedFile file_;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string_view, std::size_t> index_;
};

// model.safetensors.index.json: which shard file holds each tensor.
struct Index {
    std::vector<std::string> shards;                        // distinct file names, in first-use order
    std::unordered_map<std::string, std::size_t> shard_of;  // tensor name -> position in `shards`
};

// Reads a sharded checkpoint's index. Shard names must be plain file names in the same folder: no
// path separators, no "." or "..", no control characters (a NUL would cut the path short).
// Throws Error(io) when the file cannot be read, Error(format) when it is malformed (bad JSON,
// duplicate keys, no "weight_map" object, a non-string entry, a bad or empty shard list).
inline Index read_index(const std::string& index_path) {
    MappedFile file(index_path);
    if (file.size() > kMaxHeaderBytes)
        detail::fail(ErrorCode::format, index_path, ": ", file.size(), " bytes, over the limit of 100 MB for an index");
    json::ParseOptions options;
    options.max_depth = kMaxHeaderDepth;
    options.max_values = kMaxHeaderValues;
    options.unique_keys = true;  // a tensor listed twice would be ambiguous
    json::Value root = json::parse(file.view(), index_path, options);
    const json::Value* map = root.find("weight_map");
    if (!map || !map->is_object()) detail::fail(ErrorCode::format, index_path, ": no \"weight_map\" object");
    Index index;
    std::unordered_map<std::string, std::size_t> position_of;  // shard name -> position in index.shards
    for (const json::Member& m : map->as_object()) {
        if (!m.value.is_string())
            detail::fail(ErrorCode::format, index_path, ": weight_map entry ", json::quote(m.key), " is not a string");
        const std::string& file_name = m.value.as_string();
        bool plain = !file_name.empty() && file_name != "." && file_name != "..";
        for (char ch : file_name) plain = plain && ch != '/' && ch != '\\' && static_cast<unsigned char>(ch) >= 0x20;
        if (!plain)
            detail::fail(ErrorCode::format, index_path, ": shard name ", json::quote(file_name), " for tensor ",
                         json::quote(m.key), " is not a plain file name in the model's folder");
        auto [it, added] = position_of.emplace(file_name, index.shards.size());
        if (added) index.shards.push_back(file_name);
        index.shard_of.emplace(m.key, it->second);
    }
    if (index.shards.empty()) detail::fail(ErrorCode::format, index_path, ": weight_map is empty");
    return index;
}

// The distinct shard file names of an index, in first-use order (see read_index).
inline std::vector<std::string> read_shard_list(const std::string& index_path) { return read_index(index_path).shards; }

}  // namespace qwen3::safetensors
