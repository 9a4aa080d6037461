// qwen3/kernels/input.hpp - the input of a projection, prepared once for the weights that read it.
//
// Several matrices read the same activations (q, k and v read the normed residual; gate and up read
// it too), and each weight type wants them in its own form: f32 as they are, a pair-split copy for
// BF16 weights, int8 blocks with scales for quantized weights. Input<K> computes each form on first
// request and keeps it until the next set(), so the work is done once per input, not per matrix.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../detail/simd.hpp"
#include "../quant/blocks.hpp"
#include "../tensor.hpp"
#include "arch/avx512_transpose.hpp"
#include "arch/features.hpp"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace qwen3::detail {

// Whether a matmul of `tokens` tokens with quantized `weights` goes to an int8 column kernel, which
// reads the input's column form (tokens side by side): avx512_gemm.hpp with AVX-512 VNNI for every
// prefill, avx2_gemm.hpp on AVX2 for its six formats from one full group of 16 tokens.
inline bool uses_column_gemm(DType weights, int tokens) {
#if defined(QWEN3_HAVE_AVX512_VNNI)
    return dtype_info(weights).block_elems > 1 && tokens > 1;
#elif defined(QWEN3_HAVE_AVX2_QUANT)
    switch (weights) {
        case DType::q8_0: case DType::q4_0: case DType::q5_0: case DType::q4_k: case DType::q5_k: case DType::q6_k: return tokens >= 16;
        default: return false;
    }
#else
    (void)weights;
    (void)tokens;
    return false;
#endif
}

// Whether a matmul of `tokens` tokens with `weights` goes to the panel kernels (panel_gemm.hpp),
// which read f32 rows: on CPUs without AVX-512, with enough tokens to repay widening each panel
// (measured with bench_kernels: BF16 and Q4 formats gain from 32 tokens, Q8_0 and Q6_K, whose int8
// kernels are the fastest, from 64), unless an int8 column kernel takes them.
inline bool uses_panel_gemm(DType weights, int tokens) {
#if defined(__AVX512F__)
    (void)weights;
    (void)tokens;
    return false;
#else
    if (uses_column_gemm(weights, tokens)) return false;
    if (weights == DType::q8_0 || weights == DType::q6_k) return tokens >= 64;
    return tokens >= 32;
#endif
}

// The activation forms a weight type reads.
enum class InputForm { f32, pairs, q8_32, q8_256, q8_columns, f32_columns, bf16_columns };

// Decode (one token) reads BF16 weights through the pair-split form; prefill reads f32 columns (or
// bf16 columns when bf16 products are allowed). Quantized weights read int8 rows in decode and
// int8 columns (tokens side by side) in prefill.
inline InputForm input_form(DType weights, int tokens, bool bf16_products = false) {
    const bool quantized = dtype_info(weights).block_elems > 1;
#if defined(__AVX512BF16__)
    if (weights == DType::bf16 && tokens > 1 && bf16_products) return InputForm::bf16_columns;
#endif
    (void)bf16_products;
    if (uses_column_gemm(weights, tokens)) return InputForm::q8_columns;
#if defined(__AVX512F__)
    if (!quantized && tokens > 1) return InputForm::f32_columns;
#endif
    (void)quantized;
    if (uses_panel_gemm(weights, tokens)) return InputForm::f32;
    switch (weights) {
#if defined(__AVX512F__)
        case DType::bf16: return tokens == 1 ? InputForm::pairs : InputForm::f32;  // avx512::matvec_bf16 reads pairs
#else
        case DType::bf16: return InputForm::f32;  // the xsimd kernels widen bf16 weights and read f32
#endif
        case DType::q8_0:
        case DType::q4_0:
        case DType::q4_1:
        case DType::q5_0:
        case DType::q5_1: return InputForm::q8_32;
        case DType::q4_k:
        case DType::q5_k:
        case DType::q6_k:
        case DType::q2_k:
        case DType::q3_k: return InputForm::q8_256;
        default: return InputForm::f32;
    }
}

// Up to `MaxTokens` rows of K activations.
template <int K, int MaxTokens>
class Input {
public:
    static_assert(K % 256 == 0 || K % 32 == 0, "inputs are a whole number of 32-element blocks");
    static constexpr int blocks32 = K / 32;
    static constexpr int blocks256 = K / 256;  // 0 when K is not a multiple of 256

    // decode_rows: the tokens are decode steps of different sequences, each read by the
    // matrix-vector kernels in the form one token alone would have (prefill forms are never made).
    explicit Input(bool decode_rows = false)
        : decode_rows_(decode_rows), pairs_(std::size_t(K) * MaxTokens), q8_(std::size_t(K) * MaxTokens),
              scales32_(std::size_t(blocks32) * MaxTokens), sums32_(std::size_t(blocks32) * MaxTokens),
              scales256_(std::size_t(blocks256 ? blocks256 : 1) * MaxTokens), sums16_(std::size_t(K / 16) * MaxTokens),
              lane_scales_(std::size_t(K / 4) * MaxTokens), lane_sums_(std::size_t(K / 4) * MaxTokens) {}

    // Points at n rows of K floats (row-major) and forgets every prepared form.
    void set(const float* x, int n) {
        x_ = x;
        tokens_ = n;
        ready_ = 0;
    }
    const float* f32() const { return x_; }
    int tokens() const { return tokens_; }

    // Makes sure the form `weights` reads exists; call before reading it (not thread-safe; the
    // session calls it on one thread before handing the matrix work to the pool).
    // `parallel(n, fn)` runs fn(0) .. fn(n - 1), possibly on several threads (the session passes its
    // pool); the default runs them in order.
    void prepare(DType weights) {
        prepare(weights, [](int n, auto&& fn) {
            for (int i = 0; i < n; ++i) fn(i);
        });
    }
    template <class Parallel>
    void prepare(DType weights, Parallel&& parallel) {
        prepare_form(input_form(weights, decode_rows_ ? 1 : tokens_, bf16_products_), parallel);
    }

    // Allows prefill to round this input to bf16 for BF16 weights (Precision::bf16_products).
    void allow_bf16_products(bool allow) { bf16_products_ = allow; }
    bool bf16_products() const { return bf16_products_; }

    template <class Parallel>
    void prepare_form(InputForm form, Parallel& parallel) {
        const unsigned bit = 1u << unsigned(form);
        if (ready_ & bit) return;
        if (form == InputForm::q8_columns) {
            if (!(ready_ & (1u << unsigned(InputForm::q8_32))))  // the int8 rows (without decode's lane data)
                parallel(tokens_, [&](int t) { quantize_32(x_ + std::size_t(t) * K, t, false); });
            if (columns_.empty()) {
                columns_.resize(std::size_t(K) * kGroups * kColumnGroup);
                column_scales_.resize(std::size_t(blocks32) * kGroups * kColumnGroup);
                column_sums_.resize(std::size_t(blocks32) * kGroups * kColumnGroup);
            }
            parallel((tokens_ + kColumnGroup - 1) / kColumnGroup, [&](int g) { transpose_group(g); });
            ready_ |= bit;
            return;
        }
        if (form == InputForm::bf16_columns) {
            if (bf16_columns_.empty()) bf16_columns_.resize(std::size_t(K / 2) * kGroups * kColumnGroup);
            parallel((tokens_ + kColumnGroup - 1) / kColumnGroup, [&](int g) { transpose_group_bf16(g); });
            ready_ |= bit;
            return;
        }
        if (form == InputForm::f32_columns) {
            if (float_columns_.empty()) float_columns_.resize(std::size_t(K) * kGroups * kColumnGroup);
            parallel((tokens_ + kColumnGroup - 1) / kColumnGroup, [&](int g) { transpose_group_f32(g); });
            ready_ |= bit;
            return;
        }
        if (form != InputForm::f32)
            parallel(tokens_, [&](int t) {
                const float* x = x_ + std::size_t(t) * K;
                switch (form) {
                    case InputForm::pairs: split_pairs(x, pairs_.data() + std::size_t(t) * K); break;
                    case InputForm::q8_32: quantize_32(x, t, true); break;
                    case InputForm::q8_256: quantize_256(x, t); break;
                    default: break;
                }
            });
        ready_ |= bit;
    }

    // BF16 form: per 32-element chunk, the 16 even-indexed values then the 16 odd-indexed ones, so a
    // kernel can widen 32 bf16 weights with one shift and one mask (see arch/avx512_float.hpp).
    const float* pairs(int t) const { return pairs_.data() + std::size_t(t) * K; }
    // Q8 forms: int8 values of token t, and per-block scales (x ~ scale * q) and sums of q.
    const std::int8_t* q8(int t) const { return q8_.data() + std::size_t(t) * K; }
    const float* scales32(int t) const { return scales32_.data() + std::size_t(t) * blocks32; }
    // Per 4-element lane of a vpdpbusd result (8 lanes per block of 32): the block's scale, and the
    // block's scale * (sum of its int8 values) / 8, so that 8 lanes add up to the block's value.
    const float* lane_scales32(int t) const { return lane_scales_.data() + std::size_t(t) * (K / 4); }
    const float* lane_sums32(int t) const { return lane_sums_.data() + std::size_t(t) * (K / 4); }
    const std::int32_t* sums32(int t) const { return sums32_.data() + std::size_t(t) * blocks32; }
    const float* scales256(int t) const { return scales256_.data() + std::size_t(t) * blocks256; }
    const std::int32_t* sums16(int t) const { return sums16_.data() + std::size_t(t) * (K / 16); }

    // Column form, for prefill: tokens in groups of kColumnGroup side by side. For group g, four
    // consecutive int8 values of each token (offset by +128 to unsigned: kColumnFlip) form one lane, so
    // a 64-byte row holds elements [4j, 4j + 4) of all 16 tokens: columns(g) + 64 * j. Per block of
    // 32 and token: the scale, and scale * (sum of the int8 values). Missing tokens of the last
    // group are zeros with zero scales.
    static constexpr int kColumnGroup = 16;
    // What the column form's bytes are XORed with: 0x80 each (+128, unsigned) for the AVX-512 VNNI
    // kernel; the AVX2 kernel takes the input as vpmaddubsw's signed operand, as it is.
#if defined(QWEN3_HAVE_AVX512_VNNI)
    static constexpr std::uint32_t kColumnFlip = 0x80808080u;
#else
    static constexpr std::uint32_t kColumnFlip = 0;
#endif
    const std::uint8_t* columns(int g) const { return columns_.data() + std::size_t(g) * K * kColumnGroup; }
    const float* column_scales(int g) const { return column_scales_.data() + std::size_t(g) * blocks32 * kColumnGroup; }
    const float* column_sums(int g) const { return column_sums_.data() + std::size_t(g) * blocks32 * kColumnGroup; }

    // f32 column form: element k of the 16 tokens of group g at float_columns(g) + 16 * k.
    const float* float_columns(int g) const { return float_columns_.data() + std::size_t(g) * K * kColumnGroup; }

    // bf16 column form: elements (2p, 2p + 1) of the 16 tokens of group g, one uint32 per token, at
    // bf16_columns(g) + 16 * p.
    const std::uint32_t* bf16_columns(int g) const { return bf16_columns_.data() + std::size_t(g) * (K / 2) * kColumnGroup; }

private:
    // The token rows of group g, 16 x 16 blocks of 32-bit lanes at a time (missing tokens: zeros).
    // load(t, i) gives block i of token t's row; store(i, r) takes the transposed block.
#if defined(__AVX512F__)
    template <class Load, class Store>
    void transpose_blocks(int g, int blocks, Load load, Store store) const {
        for (int i = 0; i < blocks; ++i) {
            __m512i r[kColumnGroup];
            for (int lane = 0; lane < kColumnGroup; ++lane) {
                const int t = g * kColumnGroup + lane;
                r[lane] = t < tokens_ ? load(t, i) : _mm512_setzero_si512();
            }
            avx512::transpose_16x16(r);
            store(i, r);
        }
    }
#endif

    void transpose_group_bf16(int g) {
        std::uint32_t* out = bf16_columns_.data() + std::size_t(g) * (K / 2) * kColumnGroup;
#if defined(__AVX512F__)
        if constexpr (K % 32 == 0)
            return transpose_blocks(
                g, K / 32, [&](int t, int i) { return avx512::bf16_pairs(x_ + std::size_t(t) * K + 32 * i); },
                [&](int i, const __m512i* r) {
                    for (int p = 0; p < 16; ++p) _mm512_storeu_si512(out + std::size_t(16 * i + p) * kColumnGroup, r[p]);
                });
#endif
        for (int lane = 0; lane < kColumnGroup; ++lane) {
            const int t = g * kColumnGroup + lane;
            const float* x = t < tokens_ ? x_ + std::size_t(t) * K : nullptr;
            for (int p = 0; p < K / 2; ++p) {
                const std::uint32_t lo = x ? simd::f32_to_bf16(x[2 * p]) : 0, hi = x ? simd::f32_to_bf16(x[2 * p + 1]) : 0;
                out[std::size_t(p) * kColumnGroup + lane] = lo | (hi << 16);
            }
        }
    }

    void transpose_group_f32(int g) {
        float* out = float_columns_.data() + std::size_t(g) * K * kColumnGroup;
#if defined(__AVX512F__)
        if constexpr (K % 16 == 0)
            return transpose_blocks(
                g, K / 16, [&](int t, int i) { return _mm512_castps_si512(_mm512_loadu_ps(x_ + std::size_t(t) * K + 16 * i)); },
                [&](int i, const __m512i* r) {
                    for (int k = 0; k < 16; ++k) _mm512_storeu_si512(out + std::size_t(16 * i + k) * kColumnGroup, r[k]);
                });
#endif
        for (int lane = 0; lane < kColumnGroup; ++lane) {
            const int t = g * kColumnGroup + lane;
            const float* x = t < tokens_ ? x_ + std::size_t(t) * K : nullptr;
            for (int k = 0; k < K; ++k) out[std::size_t(k) * kColumnGroup + lane] = x ? x[k] : 0.f;
        }
    }

    void transpose_group(int g) {
        std::uint8_t* out = columns_.data() + std::size_t(g) * K * kColumnGroup;
        float* scales = column_scales_.data() + std::size_t(g) * blocks32 * kColumnGroup;
        float* sums = column_sums_.data() + std::size_t(g) * blocks32 * kColumnGroup;
        for (int lane = 0; lane < kColumnGroup; ++lane) {
            const int t = g * kColumnGroup + lane;
            const bool present = t < tokens_;
            for (int b = 0; b < blocks32; ++b) {
                scales[b * kColumnGroup + lane] = present ? scales32(t)[b] : 0.f;
                sums[b * kColumnGroup + lane] = present ? scales32(t)[b] * float(sums32(t)[b]) : 0.f;
            }
        }
        // four int8 values as one 32-bit lane, each flipped to unsigned (q + 128 == q ^ 0x80) where
        // the kernel reading them takes the input as vpdpbusd's unsigned operand (kColumnFlip)
#if defined(__AVX512F__)
        if constexpr (K % 64 == 0) {
            const __m512i flip = _mm512_set1_epi32(int(kColumnFlip));
            return transpose_blocks(
                g, K / 64, [&](int t, int i) { return _mm512_loadu_si512(q8(t) + 64 * i); },
                [&](int i, const __m512i* r) {
                    for (int j = 0; j < 16; ++j) _mm512_storeu_si512(out + std::size_t(16 * i + j) * 64, _mm512_xor_si512(r[j], flip));
                });
        }
#endif
        for (int lane = 0; lane < kColumnGroup; ++lane) {
            const int t = g * kColumnGroup + lane;
            const std::int8_t* q = t < tokens_ ? q8(t) : nullptr;
            for (int j = 0; j < K / 4; ++j) {
                std::uint32_t four = 0;
                if (q) std::memcpy(&four, q + 4 * j, 4);
                four ^= kColumnFlip;
                std::memcpy(out + (std::size_t(j) * kColumnGroup + std::size_t(lane)) * 4, &four, 4);
            }
        }
    }

    static constexpr int kGroups = (MaxTokens + kColumnGroup - 1) / kColumnGroup;

    static void split_pairs(const float* x, float* out) {
        for (int c = 0; c < K; c += 32)
            for (int j = 0; j < 16; ++j) {
                out[c + j] = x[c + 2 * j];
                out[c + 16 + j] = x[c + 2 * j + 1];
            }
    }

    static float abs_max(const float* x, int n) {
#if defined(__AVX512F__)
        __m512 m = _mm512_setzero_ps();
        for (int i = 0; i < n; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
        return _mm512_reduce_max_ps(m);
#elif defined(__AVX2__)
        const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
        __m256 m = _mm256_setzero_ps();
        // max_ps returns its second operand when either is NaN: NaNs are skipped, as below
        for (int i = 0; i < n; i += 8) m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), magnitude), m);
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        return _mm_cvtss_f32(h);
#else
        float m = 0;
        for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
        return m;
#endif
    }

    // q[i] = round(x[i] * inv) (to nearest even) for 16 values; returns their sum.
    static std::int32_t quantize_16(const float* x, float inv, std::int8_t* q) {
#if defined(__AVX512F__)
        // cvtps gives INT_MIN for NaN (a file's NaN weights): clamp first, so that the sum is that of
        // the stored bytes and cannot overflow
        const __m512i v = _mm512_max_epi32(_mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), _mm512_set1_ps(inv))),
                                                            _mm512_set1_epi32(127)),
                                           _mm512_set1_epi32(-128));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtepi32_epi8(v));
        return _mm512_reduce_add_epi32(v);
#elif defined(__AVX2__)
        // cvtps gives INT_MIN for NaN (a file's NaN weights); the saturating packs make that -128
        const __m256 s = _mm256_set1_ps(inv);
        const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), s));
        const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), s));
        const __m256i words = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);  // 16 int16 in order
        const __m128i bytes = _mm_packs_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q), bytes);
        // the sum of what was stored (after saturation)
        const __m256i wide = _mm256_madd_epi16(_mm256_cvtepi8_epi16(bytes), _mm256_set1_epi16(1));
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(wide), _mm256_extracti128_si256(wide, 1));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
        return _mm_cvtsi128_si32(t);
#else
        std::int32_t sum = 0;
        for (int i = 0; i < 16; ++i) {
            const float v = x[i] * inv;  // |v| <= 127 unless x holds NaN or infinity (a hostile file)
            sum += q[i] = v == v ? std::int8_t(std::nearbyint(std::clamp(v, -127.f, 127.f))) : std::int8_t(0);
        }
        return sum;
#endif
    }

    // Blocks of 32 with scale = max|x| / 127; `lanes`: also the per-lane data decode reads.
    void quantize_32(const float* x, int t, bool lanes) {
        std::int8_t* q = q8_.data() + std::size_t(t) * K;
        float* d = scales32_.data() + std::size_t(t) * blocks32;
        std::int32_t* s = sums32_.data() + std::size_t(t) * blocks32;
        for (int b = 0; b < blocks32; ++b) {
            const float scale = abs_max(x + b * 32, 32) / 127.f, inv = scale ? 1.f / scale : 0.f;
            d[b] = scale;
            s[b] = quantize_16(x + b * 32, inv, q + b * 32) + quantize_16(x + b * 32 + 16, inv, q + b * 32 + 16);
            if (!lanes) continue;
            float* ls = lane_scales_.data() + std::size_t(t) * (K / 4) + b * 8;
            float* lsum = lane_sums_.data() + std::size_t(t) * (K / 4) + b * 8;
            for (int i = 0; i < 8; ++i) {
                ls[i] = scale;
                lsum[i] = scale * float(s[b]) / 8.f;
            }
        }
    }

    // Blocks of 256 with one scale, plus the sums of each 16 (K-quants apply their minimums per
    // sub-block through these sums).
    void quantize_256(const float* x, int t) {
        std::int8_t* q = q8_.data() + std::size_t(t) * K;
        float* d = scales256_.data() + std::size_t(t) * blocks256;
        std::int32_t* s = sums16_.data() + std::size_t(t) * (K / 16);
        for (int b = 0; b < blocks256; ++b) {
            const float scale = abs_max(x + b * 256, 256) / 127.f, inv = scale ? 1.f / scale : 0.f;
            for (int g = 0; g < 16; ++g) s[b * 16 + g] = quantize_16(x + b * 256 + g * 16, inv, q + b * 256 + g * 16);
            d[b] = scale;
        }
    }

    const float* x_ = nullptr;
    int tokens_ = 0;
    unsigned ready_ = 0;
    bool decode_rows_;
    std::vector<float> pairs_;
    std::vector<std::int8_t> q8_;
    std::vector<float> scales32_;
    std::vector<std::int32_t> sums32_;
    std::vector<float> scales256_;
    std::vector<std::int32_t> sums16_;
    std::vector<float> lane_scales_;
    std::vector<float> lane_sums_;
    std::vector<std::uint8_t> columns_;  // allocated on first use (prefill of quantized weights)
    std::vector<float> column_scales_;
    std::vector<float> column_sums_;
    std::vector<float> float_columns_;
    std::vector<std::uint32_t> bf16_columns_;
    bool bf16_products_ = false;
};

}  // namespace qwen3::detail
