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
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "../error.hpp"
#include "../format/checkpoint.hpp"
#include "../format/gguf_writer.hpp"
#include "../quant/dequantize.hpp"
#include "../quant/encode.hpp"
#include "../tensor.hpp"
#include "../thread_pool.hpp"
#include "hf_metadata.hpp"
#include "mixture.hpp"

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
