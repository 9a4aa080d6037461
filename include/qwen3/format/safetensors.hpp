// qwen3/format/safetensors.hpp - a bounds-checked reader of Hugging Face safetensors files.
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON describing each tensor (dtype,
// shape, [begin, end) offsets into the data that follows), then the raw row-major data. Sharded
// checkpoints list which file holds each tensor in model.safetensors.index.json.
#pragma once

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

// Element size of a safetensors dtype; 0 when unknown.
inline std::uint64_t dtype_size(std::string_view dtype) {
    if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
    if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
    if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
    if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2") return 1;
    return 0;
}

// The safetensors format caps its JSON header at 100 MB; a larger declared length is corrupt.
inline constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

class File {
public:
    // Maps and parses one .safetensors file. Throws Error(io) or Error(format) naming the file.
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
        json::Value root = json::parse(header, path() + " (safetensors header)", 16);
        if (!root.is_object()) detail::fail(ErrorCode::format, path(), ": safetensors header is not a JSON object");
        const std::byte* data = file_.data() + 8 + header_len;
        const std::uint64_t data_size = size - 8 - header_len;

        for (const json::Member& m : root.as_object()) {
            if (m.key == "__metadata__") continue;
            tensors_.push_back(parse_entry(m.key, m.value, data, data_size));
        }
        for (std::size_t i = 0; i < tensors_.size(); ++i)
            if (!index_.emplace(tensors_[i].name, i).second)
                detail::fail(ErrorCode::format, path(), ": duplicate tensor ", tensors_[i].name);
    }

    TensorInfo parse_entry(const std::string& name, const json::Value& entry, const std::byte* data,
                           std::uint64_t data_size) const {
        auto bad = [&](std::string_view why) {
            detail::fail(ErrorCode::format, path(), ": tensor ", name, ": ", why);
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
        std::uint64_t elem = dtype_size(t.dtype);
        if (!elem) bad("unknown dtype \"" + t.dtype + "\"");
        if (t.dtype == "F32") t.type = DType::f32, t.supported = true;
        else if (t.dtype == "F16") t.type = DType::f16, t.supported = true;
        else if (t.dtype == "BF16") t.type = DType::bf16, t.supported = true;

        const json::Array& dims = shape->as_array();
        if (dims.size() > 4) bad("rank " + std::to_string(dims.size()) + " is over 4");
        t.shape.rank = std::uint32_t(dims.size());
        std::uint64_t elements = 1;
        for (std::size_t d = 0; d < dims.size(); ++d) {
            if (!dims[d].is_integer() || dims[d].as_number().text[0] == '-') bad("shape entries must be non-negative integers");
            std::int64_t v = dims[d].as_int();
            if (v > (std::int64_t(1) << 40)) bad("dimension " + std::to_string(v) + " is too large");
            t.shape.dims[d] = std::uint64_t(v);
            if (v && elements > std::numeric_limits<std::uint64_t>::max() / std::uint64_t(v)) bad("too many elements");
            elements *= std::uint64_t(v);
        }
        const json::Array& off = offsets->as_array();
        for (const json::Value& o : off)
            if (!o.is_integer() || o.as_number().text[0] == '-') bad("data_offsets must be non-negative integers");
        std::uint64_t begin = std::uint64_t(off[0].as_int()), end = std::uint64_t(off[1].as_int());
        if (end < begin) bad("data_offsets end before they begin");
        if (end > data_size)
            bad("data [" + std::to_string(begin) + ", " + std::to_string(end) + ") runs past the end of the file (" +
                std::to_string(data_size) + " data bytes): truncated or corrupt");
        if (elements > std::numeric_limits<std::uint64_t>::max() / elem || end - begin != elements * elem)
            bad("holds " + std::to_string(end - begin) + " bytes but shape " + t.shape.to_string() + " of " + t.dtype +
                " needs " + std::to_string(elements * elem));
        t.data = data + begin;
        t.bytes = end - begin;
        return t;
    }

    MappedFile file_;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string_view, std::size_t> index_;
};

// Reads model.safetensors.index.json and returns the distinct shard file names in first-use order.
// Shard names must be plain file names in the same folder (no path separators, no "..").
inline std::vector<std::string> read_shard_list(const std::string& index_path) {
    json::Value root = json::parse(read_text_file(index_path), index_path, 16);
    const json::Value* map = root.find("weight_map");
    if (!map || !map->is_object()) detail::fail(ErrorCode::format, index_path, ": no \"weight_map\" object");
    std::vector<std::string> shards;
    for (const json::Member& m : map->as_object()) {
        if (!m.value.is_string()) detail::fail(ErrorCode::format, index_path, ": weight_map entry ", m.key, " is not a string");
        const std::string& file = m.value.as_string();
        if (file.empty() || file.find('/') != std::string::npos || file.find('\\') != std::string::npos ||
            file == "." || file == "..")
            detail::fail(ErrorCode::format, index_path, ": shard name \"", file, "\" is not a plain file name");
        bool seen = false;
        for (const std::string& s : shards) seen = seen || s == file;
        if (!seen) shards.push_back(file);
    }
    if (shards.empty()) detail::fail(ErrorCode::format, index_path, ": weight_map is empty");
    return shards;
}

}  // namespace qwen3::safetensors
