// qwen3_quantize.hpp 0.1.0 - single-header edition of the qwen3.hpp library.
//
// GENERATED FILE - DO NOT EDIT. Made by tools/amalgamate.py from include/qwen3/quantize.hpp and the
// headers it includes (7 files); regenerate after changing include/ with
//
//     python3 tools/amalgamate.py
//
// The quantizer (`#include <qwen3/quantize.hpp>`): keep qwen3.hpp beside it, which it includes
// first; this file holds only the headers qwen3.hpp does not.
#pragma once
#include "qwen3.hpp"

// ===== qwen3/quantize.hpp =====
// qwen3/quantize.hpp - the quantizer: a quantized GGUF file from a GGUF file or a Hugging Face folder.
//
//     qwen3::quant::quantize_model("Qwen3-4B/", "Qwen3-4B-Q4_K_M.gguf", qwen3::quant::FileType::q4_k_m);
//
// What `qwen3 quantize` runs. Programs that only load and run models do not need it, so
// <qwen3/qwen3.hpp> leaves it out; include this header beside it (or alone) to convert files.

// ===== qwen3/quantize/quantize_model.hpp =====
// qwen3/quant/quantize_model.hpp - a quantized GGUF file from a GGUF file or a Hugging Face folder.
//
// What `qwen3 quantize IN OUT TYPE` does, as a library call. The output is a GGUF v3 file that
// llama.cpp loads: the input's metadata (a GGUF's copied key by key; a Hugging Face folder's built
// by hf_metadata.hpp), then general.quantization_version = 2 and general.file_type, and the
// tensors under their canonical names in the types mixture.hpp chooses, in llama.cpp's order.
// A tensor already in its target type is copied unchanged; any other is decoded row by row to
// float (quant/dequantize.hpp) and encoded (quant/encode.hpp), rows spread over the threads.
//
// Memory: the input stays mapped, and one output tensor at a time is held (the largest is the
// embedding, 0.3-0.8 GB for the big models), so a model larger than RAM converts.



// ===== qwen3/format/gguf_writer.hpp =====
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
// ===== end of qwen3/format/gguf_writer.hpp =====
// ===== qwen3/quant/encode.hpp =====
// qwen3/quant/encode.hpp - floats to a weight format, one row at a time.
//
// The formats whose encoding ggml fixes by a formula (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: a scale from the
// block's extreme value, then rounding) are computed exactly as ggml's reference quantizers compute
// them, operation for operation, so their bytes equal llama-quantize's. The K-quants (Q4_K, Q5_K,
// Q6_K) leave the choice of scales to the encoder; ours searches for the smallest squared error
// (kquants.hpp). F16 and BF16 round to nearest even, as ggml does.


// ===== qwen3/quant/kquants.hpp =====
// qwen3/quant/kquants.hpp - encoders for the K-quant formats (Q4_K, Q5_K, Q6_K).
//
// A K-quant super-block stores 256 values as small integers q with one scale per sub-block (and, for
// Q4_K/Q5_K, one offset), and those per-sub-block numbers are themselves 6- or 8-bit integers times
// a half-precision super-scale. Any choice of numbers decodes; the encoder's job is to pick the ones
// with the smallest squared error. This one works in three steps:
//
//  1. each sub-block alone: scan a grid of 21 step sizes around range / levels, fit scale (and
//     offset) to each candidate's integers by least squares, keep the best, then alternate four
//     times: re-round with the fitted scale, re-fit, keep it if the error fell;
//  2. the super-scale maps the largest sub-block scale to the top integer; each sub-block then tries
//     its rounded integer scale (and offset) and the neighbours +-1, measuring the exact error of
//     the re-rounded values, since rounding the scale the nearest way is not always best;
//  3. the super-scales are re-fitted by least squares to the chosen integers, step 2 is repeated
//     with them, and the better of the two encodings is kept.
// The last rounding of every value is to the nearest level of its decoded grid, so an element inside
// its sub-block's range is off by at most half a step.
//
// The error minimized is plain squared error, the quantity a round trip's RMSE measures (ggml's
// reference encoder weighs large values more). A super-block is held transposed, x[i][j] = element
// i of sub-block j, so every sum over a sub-block is a lane-wise sum across sub-blocks: the compiler
// vectorizes it, and the result does not depend on the vector width.



namespace qwen3::detail::quant {

inline constexpr float kInfinity = std::numeric_limits<float>::infinity();

// The nearest integer to v (ties to even), for |v| < 2^22: adding 1.5 * 2^23 leaves no fraction bits.
inline float nearest_integer(float v) {
    constexpr float magic = 12582912.0f;
    return (v + magic) - magic;
}

inline float clamp(float v, float lo, float hi) { return std::min(std::max(v, lo), hi); }

// A half-precision value as the decoder will see it; throws when the value does not fit.
inline float as_half(float v, const char* format) {
    const float back = simd::f16_to_f32(simd::f32_to_f16(v));
    if (!std::isfinite(back))
        fail(ErrorCode::invalid_argument, format, ": a super-block's scale ", v,
                            " does not fit a half-precision float (the weights are too large for this format)");
    return back;
}

// Refuses a super-block whose values cannot have a half-precision scale, before their squares
// overflow the search's sums (below 2^40 they cannot, and as_half catches the rest).
inline void check_magnitude(const float* x, const char* format) {
    float peak = 0;
    for (int i = 0; i < 256; ++i) peak = std::max(peak, std::fabs(x[i]));
    if (!(peak < 0x1p40f))
        fail(ErrorCode::invalid_argument, format, ": a value of magnitude ", peak,
                            " needs a scale that does not fit a half-precision float");
}

// ---- Q4_K / Q5_K: 8 sub-blocks of 32, x ~ step * q - lift, q in [0, levels], lift >= 0 -------
//
// The tile has 16 lanes of 16 values: lane l holds half l / 8 of sub-block l % 8, so loops run 16
// wide like Q6_K's, and a sub-block's sum is the sum of lanes j and j + 8.

using AffineTile = float[16][16];

struct AffineFits {
    float scale[8], lift[8];
};

// Step 1 for all 8 sub-blocks at once.
inline AffineFits best_affine_fits(const AffineTile& x, float levels) {
    float lo16[16], hi16[16], sx16[16] = {}, sxx16[16] = {};
    for (int l = 0; l < 16; ++l) lo16[l] = hi16[l] = x[0][l];
    for (int i = 0; i < 16; ++i)
        for (int l = 0; l < 16; ++l) {
            lo16[l] = std::min(lo16[l], x[i][l]);
            hi16[l] = std::max(hi16[l], x[i][l]);
            sx16[l] += x[i][l];
            sxx16[l] += x[i][l] * x[i][l];
        }
    // A sub-block whose values all equal lo <= 0 is held by the lift alone (error 0, never replaced).
    float lo[8], hi[8], sx[8], sxx[8], best_error[8];
    AffineFits best;
    for (int j = 0; j < 8; ++j) {
        lo[j] = std::min(std::min(lo16[j], lo16[j + 8]), 0.0f);
        hi[j] = std::max(hi16[j], hi16[j + 8]);
        sx[j] = sx16[j] + sx16[j + 8];
        sxx[j] = sxx16[j] + sxx16[j + 8];
        best.scale[j] = 0;
        best.lift[j] = -lo[j];
        best_error[j] = hi[j] > lo[j] ? kInfinity : 0.0f;
    }
    // Fits scale and offset (<= 0: the format's offset only subtracts) to the integers of the
    // candidate; at the least-squares optimum the error is sum x^2 - scale sum xq - offset sum x.
    float offset[16], inverse_step[16];
    auto try_candidate = [&]() {
        float sq16[16] = {}, sqq16[16] = {}, sxq16[16] = {};
        for (int i = 0; i < 16; ++i)
            for (int l = 0; l < 16; ++l) {
                const float q = nearest_integer(clamp((x[i][l] - offset[l]) * inverse_step[l], 0.0f, levels));
                sq16[l] += q;
                sqq16[l] += q * q;
                sxq16[l] += x[i][l] * q;
            }
        for (int j = 0; j < 8; ++j) {
            const float sq = sq16[j] + sq16[j + 8], sqq = sqq16[j] + sqq16[j + 8], sxq = sxq16[j] + sxq16[j + 8];
            const float det = 32 * sqq - sq * sq;
            float scale = (32 * sxq - sq * sx[j]) / det;
            float off = (sqq * sx[j] - sq * sxq) / det;
            if (!(det > 0 && off <= 0)) {
                off = 0;
                scale = sqq > 0 ? sxq / sqq : 0.0f;
            }
            const float error = sxx[j] - scale * sxq - off * sx[j];
            if (scale >= 0 && error < best_error[j]) {
                best_error[j] = error;
                best.scale[j] = scale;
                best.lift[j] = -off;
            }
        }
    };
    for (int step = 0; step <= 20; ++step) {  // levels - 1 ... levels + 1 steps across the range
        for (int l = 0; l < 16; ++l) {
            const int j = l % 8;
            offset[l] = lo[j];
            inverse_step[l] = hi[j] > lo[j] ? (levels - 1.0f + 0.1f * float(step)) / (hi[j] - lo[j]) : 0.0f;
        }
        try_candidate();
    }
    for (int round = 0; round < 4; ++round) {
        for (int l = 0; l < 16; ++l) {
            const int j = l % 8;
            offset[l] = -best.lift[j];
            inverse_step[l] = best.scale[j] > 0 ? 1.0f / best.scale[j] : 0.0f;
        }
        try_candidate();
    }
    return best;
}

struct AffineSuperBlock {
    float d = 0, dmin = 0;
    float scale[8] = {}, min[8] = {};  // the 6-bit integers, as floats
    float error = 0;
};

// Step 2: each sub-block's integer scale and min for super-scales d and dmin, the rounded fit or a
// neighbour, whichever re-rounds its values with the least error.
inline AffineSuperBlock choose_sub_scales(const AffineTile& x, const AffineFits& fits, float d, float dmin, float levels) {
    AffineSuperBlock sb;
    sb.d = d;
    sb.dmin = dmin;
    float s0[8], m0[8], best_error[8];
    for (int j = 0; j < 8; ++j) {
        s0[j] = d > 0 ? nearest_integer(std::min(fits.scale[j] / d, 63.0f)) : 0.0f;
        m0[j] = dmin > 0 ? nearest_integer(std::min(fits.lift[j] / dmin, 63.0f)) : 0.0f;
        best_error[j] = kInfinity;
    }
    for (int ds = -1; ds <= 1; ++ds)
        for (int dm = -1; dm <= 1; ++dm) {
            float s[8], m[8], step[16], lift[16], inverse_step[16], error16[16] = {};
            for (int j = 0; j < 8; ++j) {
                s[j] = clamp(s0[j] + float(ds), 0.0f, 63.0f);
                m[j] = clamp(m0[j] + float(dm), 0.0f, 63.0f);
            }
            for (int l = 0; l < 16; ++l) {
                step[l] = d * s[l % 8];
                lift[l] = dmin * m[l % 8];
                inverse_step[l] = step[l] > 0 ? 1.0f / step[l] : 0.0f;
            }
            for (int i = 0; i < 16; ++i)
                for (int l = 0; l < 16; ++l) {
                    const float q = nearest_integer(clamp((x[i][l] + lift[l]) * inverse_step[l], 0.0f, levels));
                    const float e = step[l] * q - lift[l] - x[i][l];
                    error16[l] += e * e;
                }
            for (int j = 0; j < 8; ++j) {
                const float error = error16[j] + error16[j + 8];
                if (error < best_error[j]) {
                    best_error[j] = error;
                    sb.scale[j] = s[j];
                    sb.min[j] = m[j];
                }
            }
        }
    for (int j = 0; j < 8; ++j) sb.error += best_error[j];
    return sb;
}

// The final integers: the nearest level of each value on its sub-block's decoded grid.
inline void affine_final_levels(const AffineTile& x, const AffineSuperBlock& sb, float levels, float (&q)[16][16]) {
    for (int i = 0; i < 16; ++i)
        for (int l = 0; l < 16; ++l) {
            const float step = sb.d * sb.scale[l % 8], lift = sb.dmin * sb.min[l % 8];
            q[i][l] = step > 0 ? nearest_integer(clamp((x[i][l] + lift) / step, 0.0f, levels)) : 0.0f;
        }
}

// Step 3: least-squares d and dmin for the integers of `sb`: x ~ d * (scale_j q) - dmin * min_j.
inline bool refit_super_scales(const AffineTile& x, const AffineSuperBlock& sb, float levels, float& d, float& dmin) {
    float q[16][16];
    affine_final_levels(x, sb, levels, q);
    double aa = 0, ab = 0, bb = 0, xa = 0, xb = 0;
    for (int i = 0; i < 16; ++i)
        for (int l = 0; l < 16; ++l) {
            const double a = double(sb.scale[l % 8]) * q[i][l], b = sb.min[l % 8];
            aa += a * a;
            ab += a * b;
            bb += b * b;
            xa += x[i][l] * a;
            xb += x[i][l] * b;
        }
    if (!(aa > 0)) return false;
    const double det = aa * bb - ab * ab;  // minimize sum (x - d a + dmin b)^2
    double new_d = xa / aa, new_dmin = 0;
    if (det > 1e-12 * aa * bb) {
        new_d = (xa * bb - xb * ab) / det;
        new_dmin = (xa * ab - xb * aa) / det;
        if (new_dmin < 0) {
            new_d = xa / aa;
            new_dmin = 0;
        }
    }
    if (!(new_d > 0)) return false;
    d = float(new_d);
    dmin = float(new_dmin);
    return true;
}

// Encodes 256 values; q receives the integers in element order.
inline AffineSuperBlock encode_affine_super_block(const float* values, float levels, const char* format, std::uint8_t* q) {
    check_magnitude(values, format);
    AffineTile x;
    for (int j = 0; j < 8; ++j)
        for (int i = 0; i < 32; ++i) x[i % 16][j + 8 * (i / 16)] = values[32 * j + i];
    const AffineFits fits = best_affine_fits(x, levels);
    float max_scale = 0, max_lift = 0;
    for (int j = 0; j < 8; ++j) {
        max_scale = std::max(max_scale, fits.scale[j]);
        max_lift = std::max(max_lift, fits.lift[j]);
    }
    AffineSuperBlock best = choose_sub_scales(x, fits, as_half(max_scale / 63, format), as_half(max_lift / 63, format), levels);
    float d, dmin;
    if (best.error > 0 && refit_super_scales(x, best, levels, d, dmin)) {
        AffineSuperBlock refit = choose_sub_scales(x, fits, as_half(d, format), as_half(dmin, format), levels);
        if (refit.error < best.error) best = refit;
    }
    float levels_out[16][16];
    affine_final_levels(x, best, levels, levels_out);
    for (int j = 0; j < 8; ++j)
        for (int i = 0; i < 32; ++i) q[32 * j + i] = std::uint8_t(levels_out[i % 16][j + 8 * (i / 16)]);
    return best;
}

// Packs eight 6-bit scales and mins as scale_min_k4 (blocks.hpp) reads them.
inline void pack_scales_k4(const AffineSuperBlock& sb, std::uint8_t* out) {
    std::uint8_t s[8], m[8];
    for (int j = 0; j < 8; ++j) {
        s[j] = std::uint8_t(sb.scale[j]);
        m[j] = std::uint8_t(sb.min[j]);
    }
    for (int j = 0; j < 4; ++j) {
        out[j] = std::uint8_t(s[j] | (s[j + 4] >> 4) << 6);
        out[j + 4] = std::uint8_t(m[j] | (m[j + 4] >> 4) << 6);
        out[j + 8] = std::uint8_t((s[j + 4] & 0xF) | (m[j + 4] & 0xF) << 4);
    }
}

inline void encode_q4_k(const float* x, std::byte* out) {
    std::uint8_t q[256];
    const AffineSuperBlock sb = encode_affine_super_block(x, 15, "Q4_K", q);
    BlockQ4_K b{};
    b.d = simd::f32_to_f16(sb.d);
    b.dmin = simd::f32_to_f16(sb.dmin);
    pack_scales_k4(sb, b.scales);
    for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l) b.qs[32 * c + l] = std::uint8_t(q[64 * c + l] | q[64 * c + 32 + l] << 4);
    std::memcpy(out, &b, sizeof b);
}

inline void encode_q5_k(const float* x, std::byte* out) {
    std::uint8_t q[256];
    const AffineSuperBlock sb = encode_affine_super_block(x, 31, "Q5_K", q);
    BlockQ5_K b{};
    b.d = simd::f32_to_f16(sb.d);
    b.dmin = simd::f32_to_f16(sb.dmin);
    pack_scales_k4(sb, b.scales);
    for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l) b.qs[32 * c + l] = std::uint8_t((q[64 * c + l] & 0xF) | (q[64 * c + 32 + l] & 0xF) << 4);
    for (int j = 0; j < 8; ++j)
        for (int l = 0; l < 32; ++l) b.qh[l] = std::uint8_t(b.qh[l] | ((q[32 * j + l] >> 4) & 1) << j);
    std::memcpy(out, &b, sizeof b);
}

// ---- Q6_K: 16 groups of 16, x ~ step * q, q in [-32, 31], step = d * int8 ----------------------

using SymmetricTile = float[16][16];

// Step 1 for all 16 groups: the value of largest magnitude goes to the long end of [-32, 31].
inline void best_symmetric_fits(const SymmetricTile& x, float (&scale)[16]) {
    float peak[16] = {}, sxx[16] = {}, best_error[16], inverse_step[16];
    for (int i = 0; i < 16; ++i)
        for (int g = 0; g < 16; ++g) {
            if (std::fabs(x[i][g]) > std::fabs(peak[g])) peak[g] = x[i][g];
            sxx[g] += x[i][g] * x[i][g];
        }
    for (int g = 0; g < 16; ++g) {
        scale[g] = 0;
        best_error[g] = sxx[g];  // the error of scale 0
    }
    // At the least-squares scale sum xq / sum q^2 the error is sum x^2 - scale * sum xq.
    auto try_candidate = [&]() {
        float sqq[16] = {}, sxq[16] = {};
        for (int i = 0; i < 16; ++i)
            for (int g = 0; g < 16; ++g) {
                const float q = nearest_integer(clamp(x[i][g] * inverse_step[g], -32.0f, 31.0f));
                sqq[g] += q * q;
                sxq[g] += x[i][g] * q;
            }
        for (int g = 0; g < 16; ++g) {
            const float s = sqq[g] > 0 ? sxq[g] / sqq[g] : 0.0f;
            const float error = sxx[g] - s * sxq[g];
            if (error < best_error[g]) {
                best_error[g] = error;
                scale[g] = s;
            }
        }
    };
    for (int step = 0; step <= 20; ++step) {  // the peak at -31 ... -33 steps
        for (int g = 0; g < 16; ++g) inverse_step[g] = peak[g] != 0 ? -(31.0f + 0.1f * float(step)) / peak[g] : 0.0f;
        try_candidate();
    }
    for (int round = 0; round < 4; ++round) {
        for (int g = 0; g < 16; ++g) inverse_step[g] = scale[g] != 0 ? 1.0f / scale[g] : 0.0f;
        try_candidate();
    }
}

struct SymmetricSuperBlock {
    float d = 0;
    float scale[16] = {};  // the int8 integers, as floats
    float error = 0;
};

inline SymmetricSuperBlock choose_group_scales(const SymmetricTile& x, const float (&fit)[16], float d) {
    SymmetricSuperBlock sb;
    sb.d = d;
    float s0[16], best_error[16];
    for (int g = 0; g < 16; ++g) {
        s0[g] = d != 0 ? nearest_integer(clamp(fit[g] / d, -128.0f, 127.0f)) : 0.0f;
        best_error[g] = kInfinity;
    }
    for (int ds = -1; ds <= 1; ++ds) {
        float s[16], step[16], inverse_step[16], error[16] = {};
        for (int g = 0; g < 16; ++g) {
            s[g] = clamp(s0[g] + float(ds), -128.0f, 127.0f);
            step[g] = d * s[g];
            inverse_step[g] = step[g] != 0 ? 1.0f / step[g] : 0.0f;
        }
        for (int i = 0; i < 16; ++i)
            for (int g = 0; g < 16; ++g) {
                const float e = step[g] * nearest_integer(clamp(x[i][g] * inverse_step[g], -32.0f, 31.0f)) - x[i][g];
                error[g] += e * e;
            }
        for (int g = 0; g < 16; ++g)
            if (error[g] < best_error[g]) {
                best_error[g] = error[g];
                sb.scale[g] = s[g];
            }
    }
    for (int g = 0; g < 16; ++g) sb.error += best_error[g];
    return sb;
}

inline void symmetric_final_levels(const SymmetricTile& x, const SymmetricSuperBlock& sb, float (&q)[16][16]) {
    for (int i = 0; i < 16; ++i)
        for (int g = 0; g < 16; ++g) {
            const float step = sb.d * sb.scale[g];
            q[i][g] = step != 0 ? nearest_integer(clamp(x[i][g] / step, -32.0f, 31.0f)) : 0.0f;
        }
}

inline void encode_q6_k(const float* values, std::byte* out) {
    check_magnitude(values, "Q6_K");
    SymmetricTile x;
    for (int g = 0; g < 16; ++g)
        for (int i = 0; i < 16; ++i) x[i][g] = values[16 * g + i];
    float fit[16];
    best_symmetric_fits(x, fit);
    float peak = 0;
    for (int g = 0; g < 16; ++g)
        if (std::fabs(fit[g]) > std::fabs(peak)) peak = fit[g];
    // The largest scale takes -128, the long end of int8, as each group's peak took -32.
    SymmetricSuperBlock best = choose_group_scales(x, fit, peak != 0 ? as_half(peak / -128, "Q6_K") : 0.0f);
    float q[16][16];
    if (best.error > 0 && best.d != 0) {  // step 3: least-squares super-scale for the chosen integers
        symmetric_final_levels(x, best, q);
        double aa = 0, xa = 0;
        for (int i = 0; i < 16; ++i)
            for (int g = 0; g < 16; ++g) {
                const double a = double(best.scale[g]) * q[i][g];
                aa += a * a;
                xa += x[i][g] * a;
            }
        if (aa > 0) {
            SymmetricSuperBlock refit = choose_group_scales(x, fit, as_half(float(xa / aa), "Q6_K"));
            if (refit.error < best.error) best = refit;
        }
    }
    symmetric_final_levels(x, best, q);
    std::uint8_t level[256];  // q + 32, element order
    for (int g = 0; g < 16; ++g)
        for (int i = 0; i < 16; ++i) level[16 * g + i] = std::uint8_t(32 + int(q[i][g]));
    BlockQ6_K b{};
    for (int h = 0; h < 2; ++h) {
        const std::uint8_t* L = level + 128 * h;
        for (int l = 0; l < 32; ++l) {
            b.ql[64 * h + l] = std::uint8_t((L[l] & 0xF) | (L[l + 64] & 0xF) << 4);
            b.ql[64 * h + l + 32] = std::uint8_t((L[l + 32] & 0xF) | (L[l + 96] & 0xF) << 4);
            b.qh[32 * h + l] = std::uint8_t(L[l] >> 4 | (L[l + 32] >> 4) << 2 | (L[l + 64] >> 4) << 4 | (L[l + 96] >> 4) << 6);
        }
    }
    for (int g = 0; g < 16; ++g) b.scales[g] = std::int8_t(best.scale[g]);
    b.d = simd::f32_to_f16(best.d);
    std::memcpy(out, &b, sizeof b);
}

}  // namespace qwen3::detail::quant
// ===== end of qwen3/quant/kquants.hpp =====

namespace qwen3::detail::quant {

// Returns x unchanged, but opaque to the optimizer, so a product passed through here is rounded to
// float before it enters a sum. GCC (-ffp-contract=fast, its default outside strict ISO mode) and
// Clang (within one expression) would otherwise fuse `x * id + 8.5f` into one FMA and skip the
// rounding of the product that ggml's reference quantizers (built without FMA) include.
inline float rounded(float x) {
#if defined(__GNUC__) && defined(__x86_64__)
    __asm__("" : "+x"(x));
#elif defined(__GNUC__) && defined(__aarch64__)
    __asm__("" : "+w"(x));
#elif defined(__GNUC__)
    __asm__("" : "+m"(x));
#endif
    return x;
}

// The largest magnitude of a block and the first value that has it (its sign chooses the scale's).
inline void block_peak(const float* x, int n, float& magnitude, float& value) {
    magnitude = 0;
    value = 0;
    for (int i = 0; i < n; ++i)
        if (magnitude < std::fabs(x[i])) {
            magnitude = std::fabs(x[i]);
            value = x[i];
        }
}

// The byte that ggml's C code stores when it converts a float to an 8-bit integer on x86: a
// truncating 32-bit conversion whose low byte is kept, where a value outside the int32 range (or
// NaN: a block of subnormals makes 1/d infinite) converts to INT_MIN, low byte 0. Computed without
// the undefined behaviour of converting such a float directly (found by UBSan on the golden rows).
inline std::uint8_t ggml_byte(float v) {
    if (!(std::fabs(v) < 2147483648.0f)) return 0;
    return std::uint8_t(std::uint32_t(std::int32_t(v)));
}

inline std::uint16_t half_scale(float d, const char* format) {
    const std::uint16_t h = simd::f32_to_f16(d);
    if (!std::isfinite(simd::f16_to_f32(h)))
        fail(ErrorCode::invalid_argument, format, ": a block's scale ", d,
                            " does not fit a half-precision float (the weights are too large for this format)");
    return h;
}

inline void encode_q8_0(const float* x, std::byte* out) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    BlockQ8_0 b;
    b.d = half_scale(d, "Q8_0");
    for (int i = 0; i < 32; ++i) b.qs[i] = std::int8_t(ggml_byte(std::round(x[i] * id)));  // half away from zero, as roundf
    std::memcpy(out, &b, sizeof b);
}

// Q4_0 / Q5_0: the peak value maps to -2^(bits-1); the others truncate (x / d + 2^(bits-1) + 0.5).
inline void encode_q4_0(const float* x, std::byte* out) {
    float amax, peak;
    block_peak(x, 32, amax, peak);
    const float d = peak / -8;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    BlockQ4_0 b;
    b.d = half_scale(d, "Q4_0");
    for (int i = 0; i < 16; ++i) {
        const int q0 = std::min(15, int(std::int8_t(ggml_byte(rounded(x[i] * id) + 8.5f))));
        const int q1 = std::min(15, int(std::int8_t(ggml_byte(rounded(x[i + 16] * id) + 8.5f))));
        b.qs[i] = std::uint8_t(q0 | q1 << 4);
    }
    std::memcpy(out, &b, sizeof b);
}

inline void encode_q5_0(const float* x, std::byte* out) {
    float amax, peak;
    block_peak(x, 32, amax, peak);
    const float d = peak / -16;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    BlockQ5_0 b;
    b.d = half_scale(d, "Q5_0");
    std::uint32_t high = 0;
    for (int i = 0; i < 16; ++i) {
        const int q0 = std::min(31, int(std::int8_t(ggml_byte(rounded(x[i] * id) + 16.5f))));
        const int q1 = std::min(31, int(std::int8_t(ggml_byte(rounded(x[i + 16] * id) + 16.5f))));
        b.qs[i] = std::uint8_t((q0 & 0xF) | (q1 & 0xF) << 4);
        high |= std::uint32_t(q0 >> 4 & 1) << i | std::uint32_t(q1 >> 4 & 1) << (i + 16);
    }
    std::memcpy(b.qh, &high, 4);
    std::memcpy(out, &b, sizeof b);
}

// Q4_1 / Q5_1: min and (max - min) / levels; truncate ((x - min) / d + 0.5).
inline void encode_q4_1(const float* x, std::byte* out) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < 32; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
    }
    const float d = (hi - lo) / 15;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    BlockQ4_1 b;
    b.d = half_scale(d, "Q4_1");
    b.m = half_scale(lo, "Q4_1");
    for (int i = 0; i < 16; ++i) {
        const int q0 = std::min(15, int(std::int8_t(ggml_byte(rounded((x[i] - lo) * id) + 0.5f))));
        const int q1 = std::min(15, int(std::int8_t(ggml_byte(rounded((x[i + 16] - lo) * id) + 0.5f))));
        b.qs[i] = std::uint8_t(q0 | q1 << 4);
    }
    std::memcpy(out, &b, sizeof b);
}

inline void encode_q5_1(const float* x, std::byte* out) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < 32; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
    }
    const float d = (hi - lo) / 31;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    BlockQ5_1 b;
    b.d = half_scale(d, "Q5_1");
    b.m = half_scale(lo, "Q5_1");
    std::uint32_t high = 0;
    for (int i = 0; i < 16; ++i) {
        const int q0 = ggml_byte(rounded((x[i] - lo) * id) + 0.5f);
        const int q1 = ggml_byte(rounded((x[i + 16] - lo) * id) + 0.5f);
        b.qs[i] = std::uint8_t((q0 & 0xF) | (q1 & 0xF) << 4);
        high |= std::uint32_t(q0 >> 4 & 1) << i | std::uint32_t(q1 >> 4 & 1) << (i + 16);
    }
    std::memcpy(b.qh, &high, 4);
    std::memcpy(out, &b, sizeof b);
}

// Whether quantize_row can write `type`: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K.
// (Q8_K is an activation format, made by the kernels themselves.)
inline bool quantize_supported(DType type) noexcept {
    switch (type) {
        case DType::f32: case DType::f16: case DType::bf16:
        case DType::q8_0: case DType::q4_0: case DType::q4_1: case DType::q5_0: case DType::q5_1:
        case DType::q4_k: case DType::q5_k: case DType::q6_k: return true;
        default: return false;
    }
}

// Encodes x[0 .. n) as `type` into out (row_bytes(type, n) bytes, any alignment).
// Deterministic: the same input gives the same bytes whatever the thread or call order.
// Throws Error(invalid_argument) when n is negative or not a multiple of the type's block size, when
// a block type is asked to hold a NaN or infinity, or when a block's scale overflows half precision;
// Error(unsupported) for a type quantize_supported rejects. On a throw, `out` may be partly written.
inline void quantize_row(DType type, const float* x, std::byte* out, std::int64_t n) {
    if (!quantize_supported(type))
        fail(ErrorCode::unsupported, "quantize_row: cannot encode type ", dtype_name(type));
    const DTypeInfo& info = dtype_info(type);
    if (n < 0 || n % info.block_elems != 0)
        fail(ErrorCode::invalid_argument, "quantize_row: ", n, " elements of ", info.name,
                            " are not whole blocks of ", info.block_elems);
    switch (type) {
        case DType::f32: std::memcpy(out, x, std::size_t(n) * 4); return;
        case DType::f16:
        case DType::bf16:
            for (std::int64_t i = 0; i < n; ++i) {
                const std::uint16_t h = type == DType::f16 ? simd::f32_to_f16(x[i]) : simd::f32_to_bf16(x[i]);
                std::memcpy(out + 2 * i, &h, 2);
            }
            return;
        default: break;
    }
    for (std::int64_t i = 0; i < n; ++i)
        if (!std::isfinite(x[i]))
            fail(ErrorCode::invalid_argument, "quantize_row: element ", i, " is ", x[i], "; ", info.name,
                                " holds finite values only");
    void (*encode)(const float*, std::byte*) = nullptr;
    switch (type) {
        case DType::q8_0: encode = encode_q8_0; break;
        case DType::q4_0: encode = encode_q4_0; break;
        case DType::q4_1: encode = encode_q4_1; break;
        case DType::q5_0: encode = encode_q5_0; break;
        case DType::q5_1: encode = encode_q5_1; break;
        case DType::q4_k: encode = encode_q4_k; break;
        case DType::q5_k: encode = encode_q5_k; break;
        case DType::q6_k: encode = encode_q6_k; break;
        default: break;
    }
    const std::int64_t blocks = n / info.block_elems;
    for (std::int64_t i = 0; i < blocks; ++i) encode(x + i * info.block_elems, out + i * info.block_bytes);
}

}  // namespace qwen3::detail::quant
// ===== end of qwen3/quant/encode.hpp =====
// ===== qwen3/quantize/hf_metadata.hpp =====
// qwen3/quantize/hf_metadata.hpp - the GGUF metadata of a model that comes as a Hugging Face folder.
//
// A GGUF file carries what a Hugging Face folder spreads over config.json, tokenizer.json and
// tokenizer_config.json. The keys and values written here are those of llama.cpp's converter for
// Qwen3 (convert_hf_to_gguf.py), which llama.cpp's loader reads:
//   general.architecture "qwen3", general.type "model", general.name (the folder's name);
//   qwen3.context_length, embedding_length, block_count, feed_forward_length, attention.head_count,
//   attention.head_count_kv, attention.key_length, attention.value_length (u32), rope.freq_base,
//   attention.layer_norm_rms_epsilon (f32), and rope.scaling.* when config.json asks for scaling;
//   tokenizer.ggml.model "gpt2", pre "qwen2", tokens, token_type, merges, eos/padding/bos token ids,
//   add_bos_token false, and tokenizer.chat_template from tokenizer_config.json.
// The vocabulary has config.json's vocab_size entries: ids tokenizer.json lacks become "[PAD<id>]"
// with type 5 (unused); model.vocab tokens have type 1 (normal); added tokens type 3 (control) when
// marked special or written like <|...|>, else 4 (user-defined). When vocab_size is below the
// tokenizer's size, merges whose parts or result fall outside are dropped.




namespace qwen3::detail {

// tokenizer.json of Qwen3 is 11 MB and ~600k JSON values; these bounds are far above that.
inline constexpr std::uint64_t kMaxTokenizerJsonBytes = 512ull << 20;
inline constexpr std::size_t kMaxTokenizerJsonValues = 64u << 20;

inline json::Value read_json_file(const std::string& path) {
    MappedFile file(path);
    if (file.size() > kMaxTokenizerJsonBytes)
        qwen3::detail::fail(ErrorCode::format, path, ": ", file.size(), " bytes, over the limit of ", kMaxTokenizerJsonBytes);
    json::ParseOptions options;
    options.max_depth = 64;
    options.max_values = kMaxTokenizerJsonValues;
    json::Value v = json::parse(file.view(), path, options);
    if (!v.is_object()) qwen3::detail::fail(ErrorCode::format, path, ": not a JSON object");
    return v;
}

// `what` and `key` name the value in the message ("model.vocab", the token).
inline std::int64_t token_id(const json::Value& v, const std::string& path, std::string_view what, std::string_view key) {
    if (!v.is_integer() || v.as_double() < 0 || v.as_double() > double(kMaxHyperparameter))
        qwen3::detail::fail(ErrorCode::format, path, ": ", what, " ", json::quote(key), " must have a token id (an integer from 0 to ",
                            kMaxHyperparameter, "), found ", json::dump(v));
    return v.as_int();
}

// llama.cpp's converter stores a space inside a merge part as U+0120 (byte-level BPE has none).
inline std::string merge_part(std::string_view s) {
    std::string out;
    for (char c : s) out += c == ' ' ? std::string("\xC4\xA0") : std::string(1, c);
    return out;
}

inline bool looks_special(std::string_view text) {
    return (text.size() >= 4 && text.substr(0, 2) == "<|" && text.substr(text.size() - 2) == "|>") || text == "<pad>" ||
           text == "<mask>";
}

struct GgufVocabulary {
    std::vector<std::string> tokens;
    std::vector<std::int32_t> types;
    std::vector<std::string> merges;
    std::vector<std::pair<const char*, std::uint32_t>> special_ids;  // key suffix, id
};

inline GgufVocabulary vocabulary_from_tokenizer_json(const std::string& path, std::uint64_t vocab_size) {
    constexpr std::int32_t normal = 1, control = 3, user_defined = 4, unused = 5;
    const json::Value root = read_json_file(path);
    const json::Value* model = root.find("model");
    if (!model || !model->is_object()) qwen3::detail::fail(ErrorCode::format, path, ": no \"model\" object");
    const json::Value* type = model->find("type");
    if (!type || !type->is_string() || type->as_string() != "BPE")
        qwen3::detail::fail(ErrorCode::unsupported, path, ": model.type must be \"BPE\" (Qwen3's byte-level BPE)");
    const json::Value* vocab = model->find("vocab");
    const json::Value* merges = model->find("merges");
    if (!vocab || !vocab->is_object()) qwen3::detail::fail(ErrorCode::format, path, ": model.vocab must be an object");
    if (!merges || !merges->is_array()) qwen3::detail::fail(ErrorCode::format, path, ": model.merges must be an array");

    GgufVocabulary out;
    std::vector<bool> present(vocab_size, false);
    out.tokens.resize(vocab_size);
    out.types.assign(vocab_size, unused);
    std::unordered_map<std::string_view, std::int64_t> id_of;
    std::unordered_set<std::int64_t> known_ids;  // every id the tokenizer defines
    for (const json::Member& m : vocab->as_object()) {
        const std::int64_t id = token_id(m.value, path, "model.vocab entry", m.key);
        id_of.emplace(m.key, id);
        known_ids.insert(id);
        if (std::uint64_t(id) < vocab_size) {
            out.tokens[id] = m.key;
            out.types[id] = normal;
            present[id] = true;
        }
    }
    std::unordered_map<std::string_view, std::int64_t> added_id_of;
    if (const json::Value* added = root.find("added_tokens")) {
        if (!added->is_array()) qwen3::detail::fail(ErrorCode::format, path, ": added_tokens must be an array");
        for (const json::Value& a : added->as_array()) {
            const json::Value* id_value = a.find("id");
            const json::Value* content = a.find("content");
            const json::Value* special = a.find("special");
            if (!id_value || !content || !content->is_string())
                qwen3::detail::fail(ErrorCode::format, path, ": every added_tokens entry needs an id and a string content");
            const std::int64_t id = token_id(*id_value, path, "added token", content->as_string());
            known_ids.insert(id);
            added_id_of[content->as_string()] = id;
            if (std::uint64_t(id) >= vocab_size) continue;
            const bool is_special = (special && special->is_bool() && special->as_bool()) || looks_special(content->as_string());
            out.tokens[id] = content->as_string();
            out.types[id] = is_special ? control : user_defined;
            present[id] = true;
        }
    }
    for (std::uint64_t i = 0; i < vocab_size; ++i)
        if (!present[i]) out.tokens[i] = "[PAD" + std::to_string(i) + "]";

    const bool filter = vocab_size < known_ids.size();
    out.merges.reserve(merges->as_array().size());
    for (const json::Value& m : merges->as_array()) {
        std::string a, b;
        if (m.is_string()) {
            const std::string& s = m.as_string();
            const std::size_t space = s.find(' ');
            if (space == std::string::npos)
                qwen3::detail::fail(ErrorCode::format, path, ": merge ", json::quote(s), " is not two tokens separated by a space");
            a = s.substr(0, space);
            b = s.substr(space + 1);
        } else if (m.is_array() && m.as_array().size() == 2 && m.as_array()[0].is_string() && m.as_array()[1].is_string()) {
            a = m.as_array()[0].as_string();
            b = m.as_array()[1].as_string();
        } else {
            qwen3::detail::fail(ErrorCode::format, path, ": a merge must be \"a b\" or [\"a\", \"b\"], found ", json::dump(m));
        }
        if (filter) {
            auto ia = id_of.find(a), ib = id_of.find(b), im = id_of.find(a + b);
            if (ia == id_of.end() || ib == id_of.end() || im == id_of.end()) continue;
            if (std::uint64_t(std::max({ia->second, ib->second, im->second})) >= vocab_size) continue;
        }
        out.merges.push_back(merge_part(a) + " " + merge_part(b));
    }
    for (auto [key, text] : {std::pair{"eos", "<|im_end|>"}, std::pair{"padding", "<|endoftext|>"}, std::pair{"bos", "<|endoftext|>"}}) {
        auto it = added_id_of.find(text);
        if (it != added_id_of.end() && std::uint64_t(it->second) < vocab_size)
            out.special_ids.emplace_back(key, std::uint32_t(it->second));
    }
    return out;
}

inline bool file_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

}  // namespace qwen3::detail

namespace qwen3::quant {

// Adds the model's hyperparameters to `w` as llama.cpp's converter writes them for Qwen3.
inline void add_model_metadata(gguf::Writer& w, const ModelParams& p) {
    w.set_string("general.architecture", "qwen3");
    w.set_string("general.type", "model");
    std::string_view name = p.name;
    while (name.size() > 1 && name.back() == '/') name.remove_suffix(1);
    w.set_string("general.name", name);
    auto u32 = [&](const char* key, std::uint64_t v) { w.set_u32(key, std::uint32_t(v)); };
    if (p.context_length) u32("qwen3.context_length", p.context_length);
    u32("qwen3.embedding_length", p.hidden);
    u32("qwen3.block_count", p.layers);
    u32("qwen3.feed_forward_length", p.ffn);
    u32("qwen3.attention.head_count", p.heads);
    u32("qwen3.attention.head_count_kv", p.kv_heads);
    u32("qwen3.attention.key_length", p.head_dim);
    u32("qwen3.attention.value_length", p.head_dim);
    w.set_f32("qwen3.rope.freq_base", float(p.rope_theta));
    w.set_f32("qwen3.attention.layer_norm_rms_epsilon", float(p.rms_norm_eps));
    if (p.rope_scaling.kind != RopeScaling::Kind::none) {
        w.set_string("qwen3.rope.scaling.type", p.rope_scaling.kind == RopeScaling::Kind::yarn ? "yarn" : "linear");
        w.set_f32("qwen3.rope.scaling.factor", float(p.rope_scaling.factor));
        if (p.rope_scaling.original_context) u32("qwen3.rope.scaling.original_context_length", p.rope_scaling.original_context);
    }
}

// Adds the tokenizer of `tokenizer_json` (a Hugging Face tokenizer.json), cut or padded to
// `vocab_size` entries, and the chat template of `tokenizer_config_json` when that file exists.
// Throws Error(io) when tokenizer.json cannot be read, Error(format) when a file is malformed,
// Error(unsupported) for a tokenizer other than BPE.
inline void add_tokenizer_metadata(gguf::Writer& w, const std::string& tokenizer_json, std::uint64_t vocab_size,
                                   const std::string& tokenizer_config_json = "") {
    const detail::GgufVocabulary vocab = detail::vocabulary_from_tokenizer_json(tokenizer_json, vocab_size);
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", "qwen2");
    w.set_strings("tokenizer.ggml.tokens", std::vector<std::string_view>(vocab.tokens.begin(), vocab.tokens.end()));
    w.set_i32s("tokenizer.ggml.token_type", vocab.types);
    w.set_strings("tokenizer.ggml.merges", std::vector<std::string_view>(vocab.merges.begin(), vocab.merges.end()));
    for (auto [key, id] : vocab.special_ids) w.set_u32(std::string("tokenizer.ggml.") + key + "_token_id", id);
    w.set_bool("tokenizer.ggml.add_bos_token", false);
    if (!tokenizer_config_json.empty() && detail::file_exists(tokenizer_config_json)) {
        const json::Value config = detail::read_json_file(tokenizer_config_json);
        if (const json::Value* tmpl = config.find("chat_template"); tmpl && tmpl->is_string())
            w.set_string("tokenizer.chat_template", tmpl->as_string());
    }
}

// Adds the metadata of the Hugging Face checkpoint `checkpoint` (opened from a folder) to `w`.
// Throws Error(io) when the folder has no tokenizer.json, Error(format) when tokenizer.json or
// tokenizer_config.json is malformed or config.json's vocab_size disagrees with the embedding,
// Error(unsupported) for a tokenizer other than BPE.
inline void add_hf_metadata(gguf::Writer& w, const Checkpoint& checkpoint) {
    const ModelParams& p = checkpoint.params();
    const std::string& folder = checkpoint.folder();
    const TensorView* embedding = checkpoint.find("token_embd.weight");
    if (!embedding || embedding->shape.rank != 2)
        qwen3::detail::fail(ErrorCode::missing_tensor, folder, ": no 2-D model.embed_tokens.weight");
    if (embedding->shape[0] != p.vocab)
        qwen3::detail::fail(ErrorCode::format, folder, "/config.json: vocab_size is ", p.vocab,
                            " but model.embed_tokens.weight has ", embedding->shape[0], " rows");
    const std::string tokenizer_path = folder + "/tokenizer.json";
    if (!detail::file_exists(tokenizer_path))
        qwen3::detail::fail(ErrorCode::io, folder, ": no tokenizer.json (a GGUF file carries the tokenizer, so it is needed)");
    add_model_metadata(w, p);
    add_tokenizer_metadata(w, tokenizer_path, p.vocab, folder + "/tokenizer_config.json");
}

}  // namespace qwen3::quant
// ===== end of qwen3/quantize/hf_metadata.hpp =====
// ===== qwen3/quantize/mixture.hpp =====
// qwen3/quant/mixture.hpp - which type each tensor of a quantized file gets.
//
// A file type such as Q4_K_M names a mixture, not one type: llama-quantize keeps norms in F32, gives
// the output projection (or the tied embedding that doubles as it) Q6_K, and spends more bits on
// some attn_v and ffn_down layers. Files made here follow the same rules, so they have the tensor
// types of llama-quantize's files for the same input (the rules of llama.cpp 82bb485,
// src/llama-quant.cpp, restated for the dense Qwen3 models):
//
//  * tensors of rank 1 are F32;
//  * F16 / BF16 files: every matrix in that type;
//  * output.weight, and token_embd.weight when the embeddings are tied: Q8_0 in a Q8_0 file or when
//    its rows are not whole blocks of the file's base type, Q6_K otherwise;
//  * Q4_K_M and Q5_K_M: attn_v and ffn_down get Q6_K in "more bits" layers: the first and last
//    eighth of the layers and every third layer between (i < n/8, i >= 7n/8, (i - n/8) % 3 == 2,
//    counting the tensors in llama.cpp's order);
//  * everything else: the base type;
//  * a K-quant type for rows that are not whole 256-element super-blocks falls back to a 32-element
//    type: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0 (and to F16 when rows are not whole blocks of
//    32 either; llama.cpp refuses those files, which no Qwen3 model produces).
//
// Tensors are listed in llama.cpp's order too (tensors outside the blocks first, then block by block,
// each group by name), which lets a file made here equal llama-quantize's byte for byte where the
// encodings agree (F16, BF16, Q8_0, Q4_0, Q5_0).



namespace qwen3::quant {

// llama.cpp's file type numbers (general.file_type, enum llama_ftype).
enum class FileType : std::uint32_t {
    f16 = 1,
    q4_0 = 2,
    q8_0 = 7,
    q5_0 = 8,
    q4_k_m = 15,
    q5_k_m = 17,
    q6_k = 18,
    bf16 = 32,
};

struct FileTypeInfo {
    FileType type;
    const char* name;  // as llama-quantize spells it
    DType base;        // the type of most matrices
};

inline constexpr FileTypeInfo kFileTypes[] = {
    {FileType::f16, "F16", DType::f16},       {FileType::bf16, "BF16", DType::bf16},
    {FileType::q8_0, "Q8_0", DType::q8_0},    {FileType::q4_0, "Q4_0", DType::q4_0},
    {FileType::q5_0, "Q5_0", DType::q5_0},    {FileType::q4_k_m, "Q4_K_M", DType::q4_k},
    {FileType::q5_k_m, "Q5_K_M", DType::q5_k}, {FileType::q6_k, "Q6_K", DType::q6_k},
};

// The file type named `name` (case does not matter); nullptr when there is none.
inline const FileTypeInfo* find_file_type(std::string_view name) noexcept {
    for (const FileTypeInfo& info : kFileTypes) {
        std::string_view known = info.name;
        if (known.size() == name.size() &&
            std::equal(known.begin(), known.end(), name.begin(), [](char a, char b) {
                return std::toupper(static_cast<unsigned char>(a)) == std::toupper(static_cast<unsigned char>(b));
            }))
            return &info;
    }
    return nullptr;
}

inline const FileTypeInfo& file_type_info(FileType type) {
    for (const FileTypeInfo& info : kFileTypes)
        if (info.type == type) return info;
    qwen3::detail::fail(ErrorCode::invalid_argument, "unknown file type ", static_cast<std::uint32_t>(type));
}

// "F16, BF16, Q8_0, ..." for messages.
inline std::string file_type_names() {
    std::string out;
    for (const FileTypeInfo& info : kFileTypes) out += (out.empty() ? "" : ", ") + std::string(info.name);
    return out;
}

// One tensor of the output file: where its values come from and the type it is written in.
struct PlannedTensor {
    const TensorView* source;  // in the input checkpoint
    DType type;
};

}  // namespace qwen3::quant

namespace qwen3::detail {

// The block number of "blk.N.*", -1 for other names (llama.cpp's order puts those first).
inline long block_number(std::string_view name) {
    constexpr std::string_view prefix = "blk.";
    if (name.substr(0, prefix.size()) != prefix) return -1;
    long n = 0;
    std::size_t i = prefix.size();
    if (i >= name.size() || name[i] < '0' || name[i] > '9') return -1;
    for (; i < name.size() && name[i] >= '0' && name[i] <= '9' && n < 100000000; ++i) n = n * 10 + (name[i] - '0');
    return i < name.size() && name[i] == '.' ? n : -1;
}

inline bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// llama.cpp's use_more_bits(i_layer, n_layers).
inline bool more_bits_layer(long i, long n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// A type whose blocks fit rows of `cols` elements: K-quants fall back as llama.cpp's do.
inline DType fit_rows(DType type, std::uint64_t cols) {
    if (cols % dtype_info(type).block_elems == 0) return type;
    switch (type) {
        case DType::q4_k: type = DType::q5_0; break;
        case DType::q5_k: type = DType::q5_1; break;
        case DType::q6_k: type = DType::q8_0; break;
        default: break;
    }
    return cols % dtype_info(type).block_elems == 0 ? type : DType::f16;
}

}  // namespace qwen3::detail

namespace qwen3::quant {

// The output tensors of quantizing `checkpoint` to `file_type`, in output order.
// The checkpoint's tensors must outlive the result (it points at them).
inline std::vector<PlannedTensor> plan_tensors(const Checkpoint& checkpoint, FileType file_type) {
    const FileTypeInfo& info = file_type_info(file_type);
    std::vector<const TensorView*> order;
    for (const TensorView& t : checkpoint.tensors()) order.push_back(&t);
    std::stable_sort(order.begin(), order.end(), [](const TensorView* a, const TensorView* b) {
        const long la = detail::block_number(a->name), lb = detail::block_number(b->name);
        return la != lb ? la < lb : a->name < b->name;
    });

    const bool tied = checkpoint.find("output.weight") == nullptr;
    const bool k_mixture = file_type == FileType::q4_k_m || file_type == FileType::q5_k_m;
    const bool quantized_base = info.base != DType::f16 && info.base != DType::bf16;
    const long layers = long(checkpoint.params().layers);
    long attn_v_total = 0, attn_v_seen = 0, ffn_down_seen = 0;
    for (const TensorView* t : order)
        if (detail::contains(t->name, "attn_v.weight")) ++attn_v_total;

    std::vector<PlannedTensor> plan;
    for (const TensorView* t : order) {
        const std::string& name = t->name;
        const std::uint64_t cols = t->shape.cols();
        const bool matrix = t->shape.rank >= 2 && name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0 &&
                            !detail::contains(name, "_norm.weight");
        if (!matrix) {
            plan.push_back({t, t->shape.rank < 2 ? DType::f32 : t->type});
            continue;
        }
        DType type = info.base;
        if (quantized_base) {
            if (name == "output.weight" || (tied && name == "token_embd.weight")) {
                if (cols % dtype_info(info.base).block_elems != 0) type = DType::q8_0;
                else if (info.base != DType::q8_0) type = DType::q6_k;
            } else if (detail::contains(name, "attn_v.weight")) {
                if (k_mixture && detail::more_bits_layer(attn_v_seen, attn_v_total)) type = DType::q6_k;
                ++attn_v_seen;
            } else if (detail::contains(name, "ffn_down")) {
                if (k_mixture && detail::more_bits_layer(ffn_down_seen, layers)) type = DType::q6_k;
                ++ffn_down_seen;
            }
        }
        plan.push_back({t, detail::fit_rows(type, cols)});
    }
    return plan;
}

}  // namespace qwen3::quant
// ===== end of qwen3/quantize/mixture.hpp =====

namespace qwen3::quant {

// llama.cpp's GGML_QNT_VERSION: the generation of the quantized block layouts.
inline constexpr std::uint32_t kQuantizationVersion = 2;

struct TensorReport {
    std::size_t index = 0, count = 0;  // this is tensor index + 1 of count
    std::string_view name;
    Shape shape;
    DType from = DType::f32, to = DType::f32;
    std::uint64_t bytes_in = 0, bytes_out = 0;
    double seconds = 0;
};

struct QuantizeOptions {
    int threads = default_thread_count();
    // Called after each tensor has been converted, before its bytes are written.
    std::function<void(const TensorReport&)> on_tensor;
};

struct QuantizeResult {
    std::vector<std::pair<std::string, DType>> tensor_types;  // in file order
    std::uint64_t bytes_in = 0, bytes_out = 0;                 // tensor data
};

}  // namespace qwen3::quant

namespace qwen3::detail {

// The canonical tensors of a Qwen3 model with `layers` blocks (output.weight only when untied).
inline void require_model_tensors(const Checkpoint& c) {
    static constexpr const char* per_layer[] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "attn_q_norm",
                                                 "attn_k_norm", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
    auto need = [&](const std::string& name) {
        if (!c.find(name)) qwen3::detail::fail(ErrorCode::missing_tensor, c.path(), ": no tensor ", name, " (not a complete Qwen3 model)");
    };
    need("token_embd.weight");
    need("output_norm.weight");
    for (std::uint64_t i = 0; i < c.params().layers; ++i)
        for (const char* part : per_layer) need("blk." + std::to_string(i) + "." + part + ".weight");
}

// Decodes and re-encodes the rows of `src` as `to` into `out`, spread over `pool`.
inline void convert_tensor(const TensorView& src, DType to, std::byte* out, ThreadPool& pool) {
    if (src.type == to) {
        std::memcpy(out, src.data, src.bytes);
        return;
    }
    if (!quant::dequantize_supported(src.type))
        qwen3::detail::fail(ErrorCode::unsupported, "tensor ", src.name, ": cannot convert from ", dtype_name(src.type), " to ",
                            dtype_name(to), " (no decoder for ", dtype_name(src.type), ")");
    const std::uint64_t cols = src.shape.cols(), rows = src.shape.rows();
    const std::uint64_t in_stride = row_bytes(src.type, cols), out_stride = row_bytes(to, cols);
    // ~64k elements per task: enough work to amortize dispatch, small enough to balance threads
    const std::uint64_t per_task = std::max<std::uint64_t>({1, (1u << 16) / std::max<std::uint64_t>(cols, 1), rows / (1u << 30)});
    const int tasks = int((rows + per_task - 1) / per_task);
    std::mutex mutex;
    std::exception_ptr error;
    pool.run(tasks, [&](int task) {
        std::uint64_t r = std::uint64_t(task) * per_task;
        try {
            std::vector<float> row(cols);
            for (const std::uint64_t end = std::min(rows, r + per_task); r < end; ++r) {
                quant::dequantize_row(src.type, src.data + r * in_stride, row.data(), std::int64_t(cols));
                quant::quantize_row(to, row.data(), out + r * out_stride, std::int64_t(cols));
            }
        } catch (const Error& e) {
            std::lock_guard<std::mutex> lock(mutex);
            if (!error)
                error = std::make_exception_ptr(Error(e.code(), "tensor " + src.name + " row " + std::to_string(r) + ": " + e.what()));
        } catch (...) {
            std::lock_guard<std::mutex> lock(mutex);
            if (!error) error = std::current_exception();
        }
    });
    if (error) std::rethrow_exception(error);
}

inline bool same_file(const std::string& a, const std::string& b) {
    struct stat sa {}, sb {};
    return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

inline void check_output_path(const std::string& output, const Checkpoint& input) {
    struct stat st {};
    if (::stat(output.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        qwen3::detail::fail(ErrorCode::io, "cannot write ", output, ": it is a directory");
    if (input.format() == CheckpointFormat::gguf && same_file(output, input.path()))
        qwen3::detail::fail(ErrorCode::invalid_argument, "the output ", output, " is the input file; choose another path");
    const std::size_t slash = output.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : output.substr(0, slash);
    if (::access(dir.c_str(), W_OK) != 0)
        qwen3::detail::fail(ErrorCode::io, "cannot write ", output, ": directory ", dir, " ", std::strerror(errno));
}

}  // namespace qwen3::detail

namespace qwen3::quant {

// Writes `checkpoint` quantized to `file_type` as a GGUF file at `output` (replacing any file there).
// Throws Error(missing_tensor) when a tensor of a Qwen3 model is absent; Error(io) when `output`
// cannot be written (a partly written file is removed); Error(invalid_argument) when `output` is the
// input file, or a weight holds NaN/infinity or a value too large for the format's scales (naming
// the tensor and row); Error(unsupported) for an input tensor type that has no decoder; and what
// add_hf_metadata throws for a Hugging Face folder.
inline QuantizeResult quantize_checkpoint(const Checkpoint& checkpoint, const std::string& output, FileType file_type,
                                          const QuantizeOptions& options = {}) {
    detail::require_model_tensors(checkpoint);
    detail::check_output_path(output, checkpoint);
    const std::vector<PlannedTensor> plan = plan_tensors(checkpoint, file_type);

    gguf::Writer writer;
    if (const gguf::File* file = checkpoint.gguf_file()) {
        for (const auto& [key, value] : file->metadata()) {
            if (key == "general.file_type" || key == "general.quantization_version" || key.substr(0, 6) == "split.") continue;
            writer.copy_value(key, value);
        }
    } else {
        add_hf_metadata(writer, checkpoint);
    }
    writer.set_u32("general.quantization_version", kQuantizationVersion);
    writer.set_u32("general.file_type", static_cast<std::uint32_t>(file_type));

    ThreadPool pool(std::max(1, options.threads));
    QuantizeResult result;
    for (std::size_t i = 0; i < plan.size(); ++i) {
        const PlannedTensor& t = plan[i];
        const std::uint64_t out_bytes = row_bytes(t.type, t.source->shape.cols()) * t.source->shape.rows();
        result.tensor_types.emplace_back(t.source->name, t.type);
        result.bytes_in += t.source->bytes;
        result.bytes_out += out_bytes;
        writer.add_tensor(t.source->name, t.type, t.source->shape, [&, i, out_bytes](std::byte* out, std::uint64_t bytes) {
            const auto start = std::chrono::steady_clock::now();
            if (bytes != out_bytes)
                qwen3::detail::fail(ErrorCode::invalid_argument, "tensor ", plan[i].source->name, ": ", bytes, " bytes, expected ", out_bytes);
            detail::convert_tensor(*plan[i].source, plan[i].type, out, pool);
            if (options.on_tensor) {
                TensorReport report;
                report.index = i + 1;
                report.count = plan.size();
                report.name = plan[i].source->name;
                report.shape = plan[i].source->shape;
                report.from = plan[i].source->type;
                report.to = plan[i].type;
                report.bytes_in = plan[i].source->bytes;
                report.bytes_out = out_bytes;
                report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
                options.on_tensor(report);
            }
        });
    }
    writer.write(output);
    return result;
}

// Opens `input` (a .gguf file or a Hugging Face folder) and quantizes it (quantize_checkpoint).
// Also throws what Checkpoint::open throws: Error(unsupported) for a model that is not Qwen3.
inline QuantizeResult quantize_model(const std::string& input, const std::string& output, FileType file_type,
                                     const QuantizeOptions& options = {}) {
    const Checkpoint checkpoint = Checkpoint::open(input);
    return quantize_checkpoint(checkpoint, output, file_type, options);
}

}  // namespace qwen3::quant
// ===== end of qwen3/quantize/quantize_model.hpp =====
// ===== end of qwen3/quantize.hpp =====
