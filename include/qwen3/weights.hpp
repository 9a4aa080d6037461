// qwen3/weights.hpp - a checkpoint's tensors bound to a compiled configuration.
//
// Binding checks everything the forward pass relies on: the file's hyperparameters against the
// configuration, and every tensor's presence, shape and element type. A mismatch is an Error that
// names the tensor, the expected and found shapes, and which compiled variant would fit the file.
// Matrices stay in the mapped file (zero copy); the small 1-D norm weights are widened to f32.
// pack_for_decode() may add a copy of the quantized matrices in the decode kernels' layout.
#pragma once

#include <array>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "config.hpp"
#include "error.hpp"
#include "format/checkpoint.hpp"
#include "kernels/linear.hpp"
#include "kernels/simd.hpp"
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
    std::shared_ptr<std::byte> packed_storage;  // the matrices' decode layout, when pack_for_decode made one
    std::size_t packed_bytes = 0;

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
                    case DType::bf16: dst[i] = simd::bf16_to_f32(reinterpret_cast<const std::uint16_t*>(t.data)[i]); break;
                    case DType::f16: dst[i] = simd::f16_to_f32(reinterpret_cast<const std::uint16_t*>(t.data)[i]); break;
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

    // Copies every matrix that has a packed decode layout on this CPU (has_packed_layout: Q8_0, Q4_0, Q5_0,
    // Q4_K, Q5_K, Q6_K with AVX-512 VNNI) into one allocation in that layout; decode (matvec) then reads
    // the copy, prefill keeps reading the mapped file. The copy is as large as those matrices are in
    // the file (for a Q4_0 model, about the file's size): that is the memory this costs, in anonymous
    // pages (transparent huge pages requested), besides the file's pages in the page cache. Returns
    // the bytes allocated, 0 when nothing has a packed layout. Throws Error(unsupported) when the
    // allocation fails.
    std::size_t pack_for_decode(int threads = default_thread_count()) {
        std::size_t total = 0;
        auto each_matrix = [&](auto&& fn) {
            for (LayerWeights<Cfg>& L : layers) {
                fn(L.attn_q), fn(L.attn_k), fn(L.attn_v), fn(L.attn_output);
                fn(L.ffn_gate), fn(L.ffn_up), fn(L.ffn_down);
            }
            fn(output);  // token_embd is only looked up by row (in the file's layout), never packed
        };
        auto wanted = [](const auto& m) {
            using M = std::remove_cvref_t<decltype(m)>;
            return M::rows % kPackRows == 0 && has_packed_layout<M::cols>(m.type) && !m.packed;
        };
        auto packed_size = [](const auto& m) {  // a matrix's bytes, rounded up to a cache line
            return (m.row_stride() * std::size_t(m.rows) + 63) / 64 * 64;
        };
        each_matrix([&](auto& m) {
            if (wanted(m)) total += packed_size(m);
        });
        if (total == 0) return 0;
        constexpr std::size_t kHugePage = std::size_t(2) << 20;
        const std::size_t allocated = (total + kHugePage - 1) / kHugePage * kHugePage;
        auto* base = static_cast<std::byte*>(std::aligned_alloc(kHugePage, allocated));
        if (!base)
            detail::fail(ErrorCode::unsupported, "could not allocate ", allocated, " bytes for the decode layout of the weights");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        ::madvise(base, allocated, MADV_HUGEPAGE);  // fewer TLB misses while decode streams the weights
#endif
        packed_storage = std::shared_ptr<std::byte>(base, [](std::byte* p) { std::free(p); });
        packed_bytes = allocated;
        ThreadPool pool(threads);
        std::size_t used = 0;
        each_matrix([&](auto& m) {
            if (!wanted(m)) return;
            std::byte* dst = base + used;
            used += packed_size(m);
            constexpr int kGroupsPerTask = 64;
            const int groups = m.rows / kPackRows;
            pool.run((groups + kGroupsPerTask - 1) / kGroupsPerTask, [&](int task) {
                const int begin = task * kGroupsPerTask;
                pack_row_groups(m, begin, std::min(groups, begin + kGroupsPerTask), dst);
            });
            m.packed = dst;
        });
        return allocated;
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
        if (!supports_matrix_type<Cols>(t.type))
            detail::fail(ErrorCode::unsupported, ckpt.path(), ": tensor ", name, " has type ", dtype_name(t.type),
                         ", which has no matrix kernel here");
        if (row_bytes(t.type, Cols) == 0)
            detail::fail(ErrorCode::shape_mismatch, ckpt.path(), ": tensor ", name, " of type ", dtype_name(t.type),
                         " has ", Cols, " columns, not a whole number of blocks");
        return Matrix<Rows, Cols>{t.type, t.data};
    }
};

}  // namespace qwen3
