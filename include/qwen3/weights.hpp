// qwen3/weights.hpp - a checkpoint's tensors bound to a compiled configuration.
//
// Binding checks everything the forward pass relies on: the file's hyperparameters against the
// configuration, and every tensor's presence, shape and element type. A mismatch is an Error that
// names the tensor, the expected and found shapes, and which compiled variant would fit the file.
// Matrices stay in the mapped file (zero copy); the small 1-D norm weights are widened to f32.
// make_decode_copies() may copy the matrices into huge pages (the quantized ones in the decode
// kernels' layout).
#pragma once

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "detail/platform.hpp"
#include "detail/simd.hpp"
#include "error.hpp"
#include "format/checkpoint.hpp"
#include "format/mmap.hpp"
#include "kernels/linear.hpp"
#include "tensor.hpp"
#include "thread_pool.hpp"

namespace qwen3 {

namespace detail {

inline std::string describe(const ConfigDims& d) {
    return "hidden " + std::to_string(d.hidden) + ", layers " + std::to_string(d.layers) + ", heads " +
           std::to_string(d.heads) + "/" + std::to_string(d.kv_heads) + ", head_dim " + std::to_string(d.head_dim) +
           ", ffn " + std::to_string(d.ffn) + ", vocab " + std::to_string(d.vocab) +
           (d.tied_embeddings ? ", tied embeddings" : ", untied embeddings");
}

inline ConfigDims dims_of_file(const ModelParams& p) {
    auto narrow = [](std::uint64_t v) { return v > 1u << 30 ? -1 : int(v); };
    return {p.name, narrow(p.hidden), narrow(p.layers), narrow(p.heads), narrow(p.kv_heads),
            narrow(p.head_dim), narrow(p.ffn), narrow(p.vocab), p.tied_embeddings, 0};
}

// "the file matches compiled variant Qwen3-0.6B" or a hint to define one.
inline std::string variant_hint(const ModelParams& p) {
    const ConfigDims file = dims_of_file(p);
    constexpr auto table = dims_of_list(NamedVariants{});
    for (const ConfigDims& d : table.items)
        if (same_shape(d, file)) return "the file matches the named variant " + std::string(d.name);
    return "no named variant matches; define one: qwen3::Config<" + std::to_string(file.hidden) + ", " +
           std::to_string(file.layers) + ", " + std::to_string(file.heads) + ", " + std::to_string(file.kv_heads) +
           ", " + std::to_string(file.head_dim) + ", " + std::to_string(file.ffn) + ", " + std::to_string(file.vocab) +
           ", " + (file.tied_embeddings ? "true" : "false") + ">";
}

}  // namespace detail

// Throws Error(config_mismatch) when the file's hyperparameters differ from Cfg's, listing both and
// naming the variant that would fit; Error(format) for values no model can have (eps <= 0, ...).
template <class Cfg>
void check_params(const Checkpoint& ckpt) {
    const ModelParams& p = ckpt.params();
    const ConfigDims want = dims_of<Cfg>(), have = detail::dims_of_file(p);
    if (!same_shape(want, have))
        detail::fail(ErrorCode::config_mismatch, ckpt.path(), ": the model does not fit the compiled variant ", Cfg::name,
                     ".\n  file:     ", detail::describe(have), "\n  compiled: ", detail::describe(want), "\n  ",
                     detail::variant_hint(p));
    if (!(p.rms_norm_eps > 0 && p.rms_norm_eps < 1))
        detail::fail(ErrorCode::format, ckpt.path(), ": RMSNorm epsilon ", p.rms_norm_eps, " is outside (0, 1)");
    if (!(p.rope_theta > 1 && std::isfinite(p.rope_theta)))
        detail::fail(ErrorCode::format, ckpt.path(), ": RoPE theta ", p.rope_theta, " must be a finite number above 1");
    if (p.rope_scaling.kind != RopeScaling::Kind::none &&
        !(p.rope_scaling.factor >= 1 && std::isfinite(p.rope_scaling.factor) && p.rope_scaling.original_context > 0))
        detail::fail(ErrorCode::format, ckpt.path(), ": RoPE scaling needs a finite factor >= 1 and an original context");
}

// Thresholds of Weights::make_decode_copies: tuning knobs for experiments and tests, whose defaults
// are the measured choices (docs/performance.md).
struct DecodeCopyTuning {
    // Float matrices are copied into huge pages only from this total size: below a few GB the page
    // tables of 4 KiB pages stay in cache and a copy only costs load time.
    std::size_t float_copy_minimum = std::size_t(2) << 30;
    // ... and only when fewer than this share of their file pages came in as huge pages.
    double float_copy_huge_share = 0.5;
    // Memory left free after the copies (and the file pages prefill still reads), or nothing is copied.
    std::size_t memory_reserve = std::size_t(1) << 30;
};

template <class Cfg>
struct LayerWeights {
    const float* attn_norm = nullptr;  // [hidden]
    Matrix<Cfg::q_dim, Cfg::hidden> attn_q;
    Matrix<Cfg::kv_dim, Cfg::hidden> attn_k;
    Matrix<Cfg::kv_dim, Cfg::hidden> attn_v;
    Matrix<Cfg::hidden, Cfg::q_dim> attn_output;
    const float* attn_q_norm = nullptr;  // [head_dim], shared by all query heads
    const float* attn_k_norm = nullptr;  // [head_dim], shared by all KV heads
    const float* ffn_norm = nullptr;     // [hidden]
    Matrix<Cfg::ffn, Cfg::hidden> ffn_gate;
    Matrix<Cfg::ffn, Cfg::hidden> ffn_up;
    Matrix<Cfg::hidden, Cfg::ffn> ffn_down;
};

template <class Cfg>
struct Weights {
    Matrix<Cfg::vocab, Cfg::hidden> token_embd;
    std::array<LayerWeights<Cfg>, Cfg::layers> layers;
    const float* output_norm = nullptr;      // [hidden]
    Matrix<Cfg::vocab, Cfg::hidden> output;  // the embedding itself when tied
    std::vector<float> norm_storage;         // f32 copies of every norm weight
    std::vector<detail::HugePageBuffer> copies;  // make_decode_copies's (quantized ones in the decode layout)

    // Bytes held by copies of the weights.
    std::size_t copied_bytes() const {
        std::size_t n = 0;
        for (const detail::HugePageBuffer& c : copies) n += c.size();
        return n;
    }

    // Binds `ckpt` (which must outlive the Weights). Throws Error(config_mismatch), Error(missing_tensor),
    // Error(shape_mismatch) or Error(unsupported) naming the first problem found.
    static Weights bind(const Checkpoint& ckpt) {
        check_params<Cfg>(ckpt);
        Weights w;
        constexpr std::size_t norm_floats =
            std::size_t(Cfg::layers) * (2 * Cfg::hidden + 2 * Cfg::head_dim) + Cfg::hidden;
        w.norm_storage.resize(norm_floats);
        std::size_t used = 0;
        auto norm = [&](const std::string& name, int n) {
            const TensorView& t = require(ckpt, name, make_shape(std::uint64_t(n)));
            float* dst = w.norm_storage.data() + used;
            used += std::size_t(n);
            for (int i = 0; i < n; ++i) {
                switch (t.type) {
                    case DType::f32: dst[i] = reinterpret_cast<const float*>(t.data)[i]; break;
                    case DType::bf16: dst[i] = detail::simd::bf16_to_f32(reinterpret_cast<const std::uint16_t*>(t.data)[i]); break;
                    case DType::f16: dst[i] = detail::simd::f16_to_f32(reinterpret_cast<const std::uint16_t*>(t.data)[i]); break;
                    default:
                        detail::fail(ErrorCode::unsupported, ckpt.path(), ": norm weight ", name, " has type ",
                                     dtype_name(t.type), "; norm weights must be F32, F16 or BF16");
                }
            }
            return static_cast<const float*>(dst);
        };
        w.token_embd = matrix<Cfg::vocab, Cfg::hidden>(ckpt, "token_embd.weight");
        for (int l = 0; l < Cfg::layers; ++l) {
            const std::string b = "blk." + std::to_string(l) + ".";
            LayerWeights<Cfg>& L = w.layers[std::size_t(l)];
            L.attn_norm = norm(b + "attn_norm.weight", Cfg::hidden);
            L.attn_q = matrix<Cfg::q_dim, Cfg::hidden>(ckpt, b + "attn_q.weight");
            L.attn_k = matrix<Cfg::kv_dim, Cfg::hidden>(ckpt, b + "attn_k.weight");
            L.attn_v = matrix<Cfg::kv_dim, Cfg::hidden>(ckpt, b + "attn_v.weight");
            L.attn_output = matrix<Cfg::hidden, Cfg::q_dim>(ckpt, b + "attn_output.weight");
            L.attn_q_norm = norm(b + "attn_q_norm.weight", Cfg::head_dim);
            L.attn_k_norm = norm(b + "attn_k_norm.weight", Cfg::head_dim);
            L.ffn_norm = norm(b + "ffn_norm.weight", Cfg::hidden);
            L.ffn_gate = matrix<Cfg::ffn, Cfg::hidden>(ckpt, b + "ffn_gate.weight");
            L.ffn_up = matrix<Cfg::ffn, Cfg::hidden>(ckpt, b + "ffn_up.weight");
            L.ffn_down = matrix<Cfg::hidden, Cfg::ffn>(ckpt, b + "ffn_down.weight");
        }
        w.output_norm = norm("output_norm.weight", Cfg::hidden);
        w.output = Cfg::tied_embeddings ? w.token_embd : matrix<Cfg::vocab, Cfg::hidden>(ckpt, "output.weight");
        return w;
    }

    // Copies the matrices decode streams into one allocation of huge pages, where that makes decode
    // faster:
    //  - float matrices (F32, F16, BF16) unchanged, when they total tuning.float_copy_minimum bytes
    //    or more and the kernel maps few of their file pages with huge pages (a file just written or
    //    copied sits in the page cache in small pages, which slow decode down). Prefill and decode
    //    then both read the copy, and the file's pages are released, so memory stays one copy;
    //  - quantized matrices with a decode layout on this CPU (detail::has_packed_layout: Q8_0, Q4_0,
    //    Q5_0, Q4_K, Q5_K, Q6_K with AVX-512 VNNI or AVX2) in that layout: decode reads the copy,
    //    prefill keeps reading the file, so these cost their size a second time.
    // Nothing is copied when MemAvailable cannot hold the copies and the file pages prefill still
    // reads, with tuning.memory_reserve to spare. Returns the bytes allocated (0: nothing copied).
    // Throws Error(unsupported) when the allocation fails.
    std::size_t make_decode_copies(int threads = default_thread_count(), const DecodeCopyTuning& tuning = {}) {
        const bool copy_floats = float_copies_pay(tuning);
        auto wanted = [&](const auto& m) { return !m.packed && !m.copied && (is_float(m.type) ? copy_floats : packs(m)); };
        std::size_t float_bytes = 0, packed_bytes = 0;
        each_decode_matrix([&](auto& m) {
            if (wanted(m)) (is_float(m.type) ? float_bytes : packed_bytes) += copy_size(m);
        });
        if (float_bytes + packed_bytes == 0) return 0;
        if (const std::size_t available = detail::available_memory();
            available && float_bytes + 2 * packed_bytes + tuning.memory_reserve > available)
            return 0;
        const detail::HugePageBuffer& buffer = copies.emplace_back(float_bytes + packed_bytes);
        ThreadPool pool(threads);
        std::byte* next = buffer.data();
        each_decode_matrix([&](auto& m) {
            if (!wanted(m)) return;
            if (is_float(m.type)) copy_float_matrix(m, next, pool);
            else pack_matrix(m, next, pool);
            next += copy_size(m);
        });
        if (Cfg::tied_embeddings && output.copied) token_embd.data = output.data;  // the lookup reads the copy too
        return buffer.size();
    }

    // Bytes of weights read to produce one token (every matrix once, the output matrix whole).
    std::uint64_t bytes_per_token() const {
        std::uint64_t n = 0;
        auto add = [&](const auto& m) { n += std::uint64_t(m.row_stride()) * m.rows; };
        for (const LayerWeights<Cfg>& L : layers) {
            add(L.attn_q), add(L.attn_k), add(L.attn_v), add(L.attn_output);
            add(L.ffn_gate), add(L.ffn_up), add(L.ffn_down);
        }
        add(output);
        return n;
    }

private:
    static bool is_float(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }
    template <class M>
    static bool packs(const M& m) { return M::rows % detail::kPackRows == 0 && detail::has_packed_layout<M::cols>(m.type); }
    template <class M>
    static std::size_t matrix_bytes(const M& m) { return m.row_stride() * std::size_t(M::rows); }
    template <class M>
    static std::size_t copy_size(const M& m) { return (matrix_bytes(m) + 63) / 64 * 64; }  // whole cache lines

    // fn(matrix) for every matrix decode streams (an untied token_embd is only looked up by row).
    template <class Fn>
    void each_decode_matrix(Fn&& fn) {
        for (LayerWeights<Cfg>& L : layers) {
            fn(L.attn_q), fn(L.attn_k), fn(L.attn_v), fn(L.attn_output);
            fn(L.ffn_gate), fn(L.ffn_up), fn(L.ffn_down);
        }
        fn(output);
    }

    // Whether the float matrices still read from the file are large enough, and mapped with few
    // enough huge pages, for a huge-page copy to speed decode up. Maps their pages to find out.
    bool float_copies_pay(const DecodeCopyTuning& tuning) {
        std::size_t in_file = 0;
        each_decode_matrix([&](auto& m) {
            if (is_float(m.type) && !m.copied) in_file += matrix_bytes(m);
        });
        if (in_file == 0 || in_file < tuning.float_copy_minimum) return false;
        // map the pages now (one call per matrix, not a fault per page) and see how many came in huge
        const std::size_t huge_before = detail::file_pages_mapped_huge();
        each_decode_matrix([&](auto& m) {
            if (is_float(m.type) && !m.copied) MappedFile::populate_pages(m.data, matrix_bytes(m));
        });
        const std::size_t huge_after = detail::file_pages_mapped_huge();
        const std::size_t mapped_huge = huge_after > huge_before ? huge_after - huge_before : 0;
        return double(mapped_huge) < tuning.float_copy_huge_share * double(in_file);
    }

    // m's rows copied unchanged to dst, which m then reads; the file's pages are released.
    template <class M>
    static void copy_float_matrix(M& m, std::byte* dst, ThreadPool& pool) {
        constexpr int kRowsPerTask = 256;
        const std::size_t stride = m.row_stride();
        pool.run((M::rows + kRowsPerTask - 1) / kRowsPerTask, [&](int task) {
            const std::size_t begin = std::size_t(task) * kRowsPerTask;
            const std::size_t rows = std::min<std::size_t>(kRowsPerTask, M::rows - begin);
            std::memcpy(dst + begin * stride, m.data + begin * stride, rows * stride);
        });
        MappedFile::release_pages(m.data, matrix_bytes(m));
        m.data = dst;
        m.copied = true;
    }

    // m in the decode layout at dst, which decode then reads (prefill keeps reading the file).
    template <class M>
    static void pack_matrix(M& m, std::byte* dst, ThreadPool& pool) {
        MappedFile::populate_pages(m.data, matrix_bytes(m));
        constexpr int kGroupsPerTask = 64;
        const int groups = M::rows / detail::kPackRows;
        pool.run((groups + kGroupsPerTask - 1) / kGroupsPerTask, [&](int task) {
            const int begin = task * kGroupsPerTask;
            detail::pack_row_groups(m, begin, std::min(groups, begin + kGroupsPerTask), dst);
        });
        m.packed = dst;
    }

    static const TensorView& require(const Checkpoint& ckpt, const std::string& name, const Shape& expected) {
        const TensorView* t = ckpt.find(name);
        if (!t)
            detail::fail(ErrorCode::missing_tensor, ckpt.path(), ": tensor ", name, " is missing (variant ", Cfg::name,
                         " needs it, shape ", expected.to_string(), ")");
        if (!(t->shape == expected))
            detail::fail(ErrorCode::shape_mismatch, ckpt.path(), ": tensor ", name, " has shape ", t->shape.to_string(),
                         ", expected ", expected.to_string(), " for variant ", Cfg::name, "; ",
                         detail::variant_hint(ckpt.params()));
        return *t;
    }

    template <int Rows, int Cols>
    static Matrix<Rows, Cols> matrix(const Checkpoint& ckpt, const std::string& name) {
        const TensorView& t = require(ckpt, name, make_shape(Rows, Cols));
        if (!detail::supports_matrix_type<Cols>(t.type))
            detail::fail(ErrorCode::unsupported, ckpt.path(), ": tensor ", name, " has type ", dtype_name(t.type),
                         ", which has no matrix kernel here");
        if (row_bytes(t.type, Cols) == 0)
            detail::fail(ErrorCode::shape_mismatch, ckpt.path(), ": tensor ", name, " of type ", dtype_name(t.type),
                         " has ", Cols, " columns, not a whole number of blocks");
        return Matrix<Rows, Cols>{t.type, t.data};
    }
};

}  // namespace qwen3
