// qwen3/tensor.hpp - element types and non-owning views of weight tensors and matrices.
//
// A weight's element type is a runtime tag (DType), not a template parameter: a quantized GGUF mixes
// types (Q4_K_M holds Q4_K, Q6_K and F32 tensors), and each kernel switches on the tag of the tensor
// it is given. Shapes are written in row-major order, outermost first, as Hugging Face and numpy
// write them: a projection from `in` to `out` features is [out, in]. (GGUF lists the same dimensions
// fastest first, {in, out}; the bytes are identical.)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "error.hpp"

namespace qwen3 {

// Values are ggml's type ids, so a GGUF tensor's type converts by a cast after validation.
enum class DType : std::uint32_t {
    f32 = 0,
    f16 = 1,
    q4_0 = 2,
    q4_1 = 3,
    q5_0 = 6,
    q5_1 = 7,
    q8_0 = 8,
    q8_1 = 9,
    q2_k = 10,
    q3_k = 11,
    q4_k = 12,
    q5_k = 13,
    q6_k = 14,
    q8_k = 15,
    bf16 = 30,
};

struct DTypeInfo {
    DType type;
    const char* name;           // as llama.cpp prints it
    std::uint32_t block_elems;  // elements per block (1 for plain floats)
    std::uint32_t block_bytes;  // bytes per block
};

// Block layouts as ggml defines them (GGUF specification, "GGML types").
inline constexpr std::array<DTypeInfo, 15> kDTypes = {{
    {DType::f32, "F32", 1, 4},
    {DType::f16, "F16", 1, 2},
    {DType::q4_0, "Q4_0", 32, 18},
    {DType::q4_1, "Q4_1", 32, 20},
    {DType::q5_0, "Q5_0", 32, 22},
    {DType::q5_1, "Q5_1", 32, 24},
    {DType::q8_0, "Q8_0", 32, 34},
    {DType::q8_1, "Q8_1", 32, 36},
    {DType::q2_k, "Q2_K", 256, 84},
    {DType::q3_k, "Q3_K", 256, 110},
    {DType::q4_k, "Q4_K", 256, 144},
    {DType::q5_k, "Q5_K", 256, 176},
    {DType::q6_k, "Q6_K", 256, 210},
    {DType::q8_k, "Q8_K", 256, 292},
    {DType::bf16, "BF16", 1, 2},
}};

// nullptr for an id this library does not know.
inline const DTypeInfo* find_dtype(std::uint32_t ggml_type) noexcept {
    for (const DTypeInfo& info : kDTypes)
        if (static_cast<std::uint32_t>(info.type) == ggml_type) return &info;
    return nullptr;
}

inline const DTypeInfo& dtype_info(DType t) {
    if (const DTypeInfo* info = find_dtype(static_cast<std::uint32_t>(t))) return *info;
    detail::fail(ErrorCode::invalid_argument, "unknown element type id ", static_cast<std::uint32_t>(t));
}

inline const char* dtype_name(DType t) { return dtype_info(t).name; }

// Bytes taken by one row of `elems` elements; 0 when `elems` is not a whole number of blocks.
inline std::uint64_t row_bytes(DType t, std::uint64_t elems) {
    const DTypeInfo& info = dtype_info(t);
    if (elems % info.block_elems != 0) return 0;
    return elems / info.block_elems * info.block_bytes;
}

// The shape of a tensor, outermost dimension first; up to 4 dimensions (GGUF's limit).
struct Shape {
    std::array<std::uint64_t, 4> dims{};
    std::uint32_t rank = 0;

    std::uint64_t operator[](std::size_t i) const { return dims[i]; }
    std::uint64_t elements() const {
        std::uint64_t n = 1;
        for (std::uint32_t i = 0; i < rank; ++i) n *= dims[i];
        return n;
    }
    // Innermost (contiguous) dimension.
    std::uint64_t cols() const { return rank ? dims[rank - 1] : 1; }
    // Product of the outer dimensions.
    std::uint64_t rows() const { return cols() ? elements() / cols() : 0; }
    friend bool operator==(const Shape& a, const Shape& b) {
        if (a.rank != b.rank) return false;
        for (std::uint32_t i = 0; i < a.rank; ++i)
            if (a.dims[i] != b.dims[i]) return false;
        return true;
    }
    std::string to_string() const {
        std::string s = "[";
        for (std::uint32_t i = 0; i < rank; ++i) {
            if (i) s += ", ";
            s += std::to_string(dims[i]);
        }
        return s + "]";
    }
};

inline Shape make_shape(std::uint64_t d0) { return Shape{{d0, 0, 0, 0}, 1}; }
inline Shape make_shape(std::uint64_t d0, std::uint64_t d1) { return Shape{{d0, d1, 0, 0}, 2}; }

// A tensor in memory someone else owns (usually a mapped file). Rows are contiguous: row r starts at
// data + r * row_stride.
struct TensorView {
    std::string name;  // canonical (GGUF-style) name, e.g. "blk.3.attn_q.weight"
    DType type = DType::f32;
    Shape shape;
    const std::byte* data = nullptr;
    std::uint64_t bytes = 0;

    std::uint64_t row_stride() const { return row_bytes(type, shape.cols()); }
    const std::byte* row(std::uint64_t r) const { return data + r * row_stride(); }
};

// A weight matrix with compile-time dimensions and a runtime element type.
template <int Rows, int Cols>
struct Matrix {
    static constexpr int rows = Rows;
    static constexpr int cols = Cols;
    DType type = DType::f32;
    const std::byte* data = nullptr;
    // The same weights in the decode layout of kernels/packed_layout.hpp (groups of 16 rows
    // interleaved), when the model made one (Weights::make_decode_copies); null otherwise.
    const std::byte* packed = nullptr;
    // True when data points to the model's huge-page copy instead of the file (float matrices).
    bool copied = false;

    std::size_t row_stride() const { return std::size_t(row_bytes(type, Cols)); }
    const std::byte* row(int r) const { return data + std::size_t(r) * row_stride(); }
};

}  // namespace qwen3
