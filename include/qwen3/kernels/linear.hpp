// qwen3/kernels/linear.hpp - y = W x for one token (matvec) and Y = X W^T for many (matmul).
//
// W is a [Rows, Cols] weight matrix in any supported element type (a runtime tag: files mix types);
// x and y are f32. Cols is a compile-time constant, so every inner loop has a fixed trip count.
// Float weights (F32, F16, BF16) are widened to f32 and multiplied in f32, which keeps results within
// float rounding of an f32 reference. Quantized weights dispatch to the integer kernels of arch/ (or,
// on CPUs without them, to the reference dequantization of quant/).
//
// Both kernels compute rows [row_begin, row_end) only; the caller splits rows across threads. Each
// output element is computed by one fixed sequence of operations, whatever the split.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../detail/simd.hpp"
#include "../error.hpp"
#include "../quant/dequantize.hpp"
#include "../tensor.hpp"
#include "arch/avx512_float.hpp"
#include "arch/avx512_gemm.hpp"
#include "arch/avx512_gemm_bf16.hpp"
#include "arch/avx512_gemm_float.hpp"
#include "arch/avx512_packed.hpp"
#include "arch/avx512_quant.hpp"
#include "arch/avx2_gemm.hpp"
#include "arch/avx2_packed.hpp"
#include "arch/avx2_quant.hpp"
#include "input.hpp"
#include "packed_layout.hpp"
#include "panel_gemm.hpp"

namespace qwen3::detail {

// Loads `lanes` consecutive elements of a float-typed weight row, widened to f32.
template <DType T>
inline simd::fbatch load_weights(const std::byte* row, int k) {
    if constexpr (T == DType::f32) return simd::load_f32(reinterpret_cast<const float*>(row) + k);
    else if constexpr (T == DType::bf16) return simd::load_bf16(reinterpret_cast<const std::uint16_t*>(row) + k);
    else return simd::load_f16(reinterpret_cast<const std::uint16_t*>(row) + k);
}

template <DType T>
inline float weight_scalar(const std::byte* row, int k) {
    if constexpr (T == DType::f32) return reinterpret_cast<const float*>(row)[k];
    else if constexpr (T == DType::bf16) return simd::bf16_to_f32(reinterpret_cast<const std::uint16_t*>(row)[k]);
    else return simd::f16_to_f32(reinterpret_cast<const std::uint16_t*>(row)[k]);
}

// Asks for `bytes` at p to be brought into cache: the hardware prefetchers lose time at the start of
// every row.
inline void prefetch_ahead(const std::byte* p, std::size_t bytes) {
#if defined(__GNUC__)
    for (std::size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 0, 3);
#else
    (void)p;
    (void)bytes;
#endif
}

// y[r] = dot(W[r], x), one row at a time with four accumulators (one chain of dependent FMAs would
// be bound by their latency). Rows are read one after the other, a single sequential stream, which
// measured faster on AVX2 than several rows side by side sharing each load of x.
template <int K, DType T>
inline void matvec_float(const std::byte* w, std::size_t stride, const float* x, float* y, int row_begin, int row_end) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes);
    static_assert(K % L == 0, "the inner dimension must be a multiple of the SIMD width");
    constexpr int K4 = K - K % (4 * L);  // rows of e.g. 96 elements on AVX-512 end with a partial step
    for (int r = row_begin; r < row_end; ++r) {
        const std::byte* row = w + std::size_t(r) * stride;
        prefetch_ahead(row + 2 * stride, stride);
        fbatch a0(0.f), a1(0.f), a2(0.f), a3(0.f);
        for (int k = 0; k < K4; k += 4 * L) {
            a0 = simd::fma(load_weights<T>(row, k), simd::load_f32(x + k), a0);
            a1 = simd::fma(load_weights<T>(row, k + L), simd::load_f32(x + k + L), a1);
            a2 = simd::fma(load_weights<T>(row, k + 2 * L), simd::load_f32(x + k + 2 * L), a2);
            a3 = simd::fma(load_weights<T>(row, k + 3 * L), simd::load_f32(x + k + 3 * L), a3);
        }
        for (int k = K4; k < K; k += L) a0 = simd::fma(load_weights<T>(row, k), simd::load_f32(x + k), a0);
        y[r] = simd::sum((a0 + a1) + (a2 + a3));
    }
}

// Tile of the matmul micro-kernel: kTileRows weight rows x kTileTokens tokens of accumulators.
// With 16 AVX2 registers, 2 x 6 (12 accumulators) measured faster than 4 x 2 on BF16 weights; rows
// come in multiples of 16.
inline constexpr int kTileRows = simd::is_avx512 ? 4 : 2;
inline constexpr int kTileTokens = 6;
// Tokens per cache block: a block of X (tokens x Cols f32) should stay in L2 while weight rows stream.
inline constexpr int kTokenBlock = 48;

// Y[t][r] = dot(X[t], W[r]) for t in [0, tokens), r in [row_begin, row_end); X rows are K floats
// apart, Y rows are y_stride floats apart.
template <int K, DType T>
inline void matmul_float(const std::byte* w, std::size_t stride, const float* x, int tokens, float* y,
                         std::size_t y_stride, int row_begin, int row_end) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes);
    constexpr int R = kTileRows, TT = kTileTokens;
    for (int t0 = 0; t0 < tokens; t0 += kTokenBlock) {
        const int t_end = std::min(tokens, t0 + kTokenBlock);
        int r = row_begin;
        for (; r + R <= row_end; r += R) {
            const std::byte* wr[R];
            for (int i = 0; i < R; ++i) wr[i] = w + std::size_t(r + i) * stride;
            int t = t0;
            for (; t + TT <= t_end; t += TT) {
                fbatch acc[R][TT];
                for (int i = 0; i < R; ++i)
                    for (int j = 0; j < TT; ++j) acc[i][j] = fbatch(0.f);
                for (int k = 0; k < K; k += L) {
                    fbatch wv[R];
                    for (int i = 0; i < R; ++i) wv[i] = load_weights<T>(wr[i], k);
                    for (int j = 0; j < TT; ++j) {
                        fbatch xv = simd::load_f32(x + std::size_t(t + j) * K + k);
                        for (int i = 0; i < R; ++i) acc[i][j] = simd::fma(wv[i], xv, acc[i][j]);
                    }
                }
                for (int i = 0; i < R; ++i)
                    for (int j = 0; j < TT; ++j) y[std::size_t(t + j) * y_stride + r + i] = simd::sum(acc[i][j]);
            }
            for (; t < t_end; ++t) {
                fbatch acc[R];
                for (int i = 0; i < R; ++i) acc[i] = fbatch(0.f);
                for (int k = 0; k < K; k += L) {
                    fbatch xv = simd::load_f32(x + std::size_t(t) * K + k);
                    for (int i = 0; i < R; ++i) acc[i] = simd::fma(load_weights<T>(wr[i], k), xv, acc[i]);
                }
                for (int i = 0; i < R; ++i) y[std::size_t(t) * y_stride + r + i] = simd::sum(acc[i]);
            }
        }
        for (; r < row_end; ++r)  // leftover rows, one token at a time
            for (int t = t0; t < t_end; ++t)
                matvec_float<K, T>(w, stride, x + std::size_t(t) * K, y + std::size_t(t) * y_stride, r, r + 1);
    }
}

// Portable path for quantized weights (CPUs without AVX-512 VNNI or AVX2): each row is dequantized with the
// reference definition and multiplied in f32 (no activation quantization, so it is also the most
// exact path).
template <int K>
inline void matmul_dequantized(DType type, const std::byte* w, std::size_t stride, const float* x, int tokens, float* y,
                               std::size_t y_stride, int row_begin, int row_end) {
    using simd::fbatch;
    constexpr int L = int(simd::lanes);
    thread_local std::vector<float> row;
    row.resize(K);
    for (int r = row_begin; r < row_end; ++r) {
        quant::dequantize_row(type, w + std::size_t(r) * stride, row.data(), K);
        for (int t = 0; t < tokens; ++t) {
            const float* xt = x + std::size_t(t) * K;
            fbatch a(0.f);
            for (int k = 0; k < K; k += L) a = simd::fma(simd::load_f32(row.data() + k), simd::load_f32(xt + k), a);
            y[std::size_t(t) * y_stride + r] = simd::sum(a);
        }
    }
}

[[noreturn]] inline void unsupported_weight_type(DType t) {
    fail(ErrorCode::unsupported, "no matrix kernel for weight type ", dtype_name(t));
}

// True when matvec/matmul have a kernel for weights of type t with rows of Cols elements.
template <int Cols>
bool supports_matrix_type(DType t) {
    if (t == DType::f32 || t == DType::bf16 || t == DType::f16) return true;
    if (t == DType::q8_k) return false;  // an activation format, not a weight format
    return quant::dequantize_supported(t) && Cols % int(dtype_info(t).block_elems) == 0;
}

// y[r] = dot(W[r], x) for r in [row_begin, row_end), x token `token` of `in` (prepared for w.type as
// a decode token: one token alone, or Input's decode rows).
template <int Rows, int Cols, int MaxTokens>
void matvec(const Matrix<Rows, Cols>& w, const Input<Cols, MaxTokens>& in, float* y, int row_begin, int row_end, int token = 0) {
    const std::size_t stride = w.row_stride();
    const float* x = in.f32() + std::size_t(token) * Cols;
    switch (w.type) {
#if defined(__AVX512F__)
        case DType::f32: return avx512::matvec_f32_f16<Cols, false>(w.data, stride, x, y, row_begin, row_end);
        case DType::f16: return avx512::matvec_f32_f16<Cols, true>(w.data, stride, x, y, row_begin, row_end);
        case DType::bf16: return avx512::matvec_bf16<Cols>(w.data, stride, in.pairs(token), y, row_begin, row_end);
#else
        case DType::f32: return matvec_float<Cols, DType::f32>(w.data, stride, x, y, row_begin, row_end);
        case DType::f16: return matvec_float<Cols, DType::f16>(w.data, stride, x, y, row_begin, row_end);
        case DType::bf16: return matvec_float<Cols, DType::bf16>(w.data, stride, x, y, row_begin, row_end);
#endif
        default:
#if defined(QWEN3_HAVE_AVX512_VNNI)
            if (w.packed) return avx512::matvec_packed<Cols>(w.type, w.packed, in, y, row_begin, row_end, token);
            if (avx512::has_quant_kernel<Cols>(w.type))
                return avx512::matvec_quant<Cols>(w.type, w.data, stride, in, token, y, row_begin, row_end);
#elif defined(QWEN3_HAVE_AVX2_QUANT)
            if (w.packed) return avx2::matvec_packed<Cols>(w.type, w.packed, in, y, row_begin, row_end, token);
            if (avx2::has_quant_kernel<Cols>(w.type))
                return avx2::matvec_quant<Cols>(w.type, w.data, stride, in, token, y, row_begin, row_end);
#endif
            if (supports_matrix_type<Cols>(w.type))
                return matmul_dequantized<Cols>(w.type, w.data, stride, x, 1, y, 0, row_begin, row_end);
            unsupported_weight_type(w.type);
    }
}

// Y[t][r] = dot(W[r], token t of `in`) for every token of `in`, decode steps of different sequences
// (Input's decode rows); Y rows are y_stride floats apart. Rows go in blocks of 16, each block read
// from memory once and from cache for the other tokens; every token gets exactly the arithmetic
// matvec gives it alone.
template <int Rows, int Cols, int MaxTokens>
void matvec_batch(const Matrix<Rows, Cols>& w, const Input<Cols, MaxTokens>& in, float* y, std::size_t y_stride,
                  int row_begin, int row_end) {
#if defined(QWEN3_HAVE_AVX512_VNNI)
    if (w.packed && in.tokens() > 1) return avx512::matvec_packed_tokens<Cols>(w.type, w.packed, in, y, y_stride, row_begin, row_end);
#endif
    constexpr int kBlock = 16;
    for (int begin = row_begin; begin < row_end;) {
        const int end = std::min(row_end, (begin / kBlock + 1) * kBlock);
        for (int t = 0; t < in.tokens(); ++t) matvec(w, in, y + std::size_t(t) * y_stride, begin, end, t);
        begin = end;
    }
}

// Y[t][r] = dot(X[t], W[r]) for the tokens of `in` and r in [row_begin, row_end); Y rows are
// y_stride floats apart.
template <int Rows, int Cols, int MaxTokens>
void matmul(const Matrix<Rows, Cols>& w, const Input<Cols, MaxTokens>& in, float* y, std::size_t y_stride,
            int row_begin, int row_end) {
    const float* x = in.f32();
    const int tokens = in.tokens();
#if defined(QWEN3_HAVE_AVX512_BF16)
    if (w.type == DType::bf16 && in.bf16_products())
        return avx512::matmul_bf16_products<Cols>(w.data, w.row_stride(), in, y, y_stride, row_begin, row_end);
#endif
#if defined(__AVX512F__)
    if (w.type == DType::f32 || w.type == DType::bf16 || w.type == DType::f16)
        return avx512::matmul_float_columns<Cols>(w.type, w.data, w.row_stride(), in, y, y_stride, row_begin, row_end);
#endif
    if (uses_panel_gemm(w.type, tokens) && supports_matrix_type<Cols>(w.type))
        return matmul_panels<Cols>(w.type, w.data, w.row_stride(), x, tokens, y, y_stride, row_begin, row_end);
    switch (w.type) {
        case DType::f32:
            return matmul_float<Cols, DType::f32>(w.data, w.row_stride(), x, tokens, y, y_stride, row_begin, row_end);
        case DType::bf16:
            return matmul_float<Cols, DType::bf16>(w.data, w.row_stride(), x, tokens, y, y_stride, row_begin, row_end);
        case DType::f16:
            return matmul_float<Cols, DType::f16>(w.data, w.row_stride(), x, tokens, y, y_stride, row_begin, row_end);
        default:
#if defined(QWEN3_HAVE_AVX512_VNNI)
            if (avx512::has_quant_kernel<Cols>(w.type))
                return avx512::matmul_quant<Cols>(w.type, w.data, w.row_stride(), in, y, y_stride, row_begin, row_end);
#elif defined(QWEN3_HAVE_AVX2_QUANT)
            if (uses_column_gemm(w.type, tokens) && avx2::has_column_gemm<Cols>(w.type))
                return avx2::matmul_columns<Cols>(w.type, w.data, w.row_stride(), in, y, y_stride, row_begin, row_end);
            if (avx2::has_quant_kernel<Cols>(w.type))
                return avx2::matmul_quant<Cols>(w.type, w.data, w.row_stride(), in, y, y_stride, row_begin, row_end);
#endif
            if (supports_matrix_type<Cols>(w.type))
                return matmul_dequantized<Cols>(w.type, w.data, w.row_stride(), x, tokens, y, y_stride, row_begin, row_end);
            unsupported_weight_type(w.type);
    }
}

// The decode layout (kernels/packed_layout.hpp): groups of 16 rows interleaved block by block, the
// same bytes reordered. Where it exists, matvec reads w.packed instead of w.data.
inline constexpr int kPackRows = packed::kPackRows;

// True when matvec has a packed-layout kernel for weights of type t with rows of Cols elements on
// this CPU (AVX-512 VNNI or AVX2).
template <int Cols>
bool has_packed_layout(DType t) {
#if defined(QWEN3_HAVE_AVX512_VNNI)
    return avx512::packable<Cols>(t);
#elif defined(QWEN3_HAVE_AVX2_QUANT)
    return avx2::packable<Cols>(t);
#else
    (void)t;
    return false;
#endif
}

// Writes row groups [group_begin, group_end) of w (rows [16 group_begin, 16 group_end)) into dst,
// which holds the whole packed matrix (w.row_stride() bytes per row). Precondition:
// has_packed_layout<Cols>(w.type).
template <int Rows, int Cols>
void pack_row_groups(const Matrix<Rows, Cols>& w, int group_begin, int group_end, std::byte* dst) {
    packed::pack_groups<Cols>(w.type, w.data, w.row_stride(), group_begin, group_end, dst);
}

// Row r of W as f32 (the embedding lookup), by the format's reference definition.
template <int Rows, int Cols>
void dequantize_row(const Matrix<Rows, Cols>& w, int r, float* out) {
    quant::dequantize_row(w.type, w.row(r), out, Cols);
}

}  // namespace qwen3::detail
