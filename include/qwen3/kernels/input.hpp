// qwen3/kernels/input.hpp - the input of a projection, prepared once for the weights that read it.
//
// Several matrices read the same activations (q, k and v read the normed residual; gate and up read
// it too), and each weight type wants them in its own form: f32 as they are, a pair-split copy for
// BF16 weights, int8 blocks with scales for quantized weights. Input<K> computes each form on first
// request and keeps it until the next set(), so the work is done once per input, not per matrix.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../format/quant_blocks.hpp"
#include "../tensor.hpp"
#include "simd.hpp"

namespace qwen3::kernels {

// The activation forms a weight type reads.
enum class InputForm { f32, pairs, q8_32, q8_256 };

// Decode (one token) reads BF16 weights through the pair-split form; prefill reads plain f32.
inline InputForm input_form(DType weights, int tokens) {
    switch (weights) {
        case DType::bf16: return tokens == 1 ? InputForm::pairs : InputForm::f32;
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

    Input() : pairs_(std::size_t(K) * MaxTokens), q8_(std::size_t(K) * MaxTokens),
              scales32_(std::size_t(blocks32) * MaxTokens), sums32_(std::size_t(blocks32) * MaxTokens),
              scales256_(std::size_t(blocks256 ? blocks256 : 1) * MaxTokens), sums16_(std::size_t(K / 16) * MaxTokens) {}

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
    void prepare(DType weights) {
        const InputForm form = input_form(weights, tokens_);
        const unsigned bit = 1u << unsigned(form);
        if (ready_ & bit) return;
        for (int t = 0; t < tokens_; ++t) {
            const float* x = x_ + std::size_t(t) * K;
            switch (form) {
                case InputForm::f32: break;
                case InputForm::pairs: split_pairs(x, pairs_.data() + std::size_t(t) * K); break;
                case InputForm::q8_32: quantize_32(x, t); break;
                case InputForm::q8_256: quantize_256(x, t); break;
            }
        }
        ready_ |= bit;
    }

    // BF16 form: per 32-element chunk, the 16 even-indexed values then the 16 odd-indexed ones, so a
    // kernel can widen 32 bf16 weights with one shift and one mask (see linear.hpp).
    const float* pairs(int t) const { return pairs_.data() + std::size_t(t) * K; }
    // Q8 forms: int8 values of token t, and per-block scales (x ~ scale * q) and sums of q.
    const std::int8_t* q8(int t) const { return q8_.data() + std::size_t(t) * K; }
    const float* scales32(int t) const { return scales32_.data() + std::size_t(t) * blocks32; }
    const std::int32_t* sums32(int t) const { return sums32_.data() + std::size_t(t) * blocks32; }
    const float* scales256(int t) const { return scales256_.data() + std::size_t(t) * blocks256; }
    const std::int32_t* sums16(int t) const { return sums16_.data() + std::size_t(t) * (K / 16); }

private:
    static void split_pairs(const float* x, float* out) {
        for (int c = 0; c < K; c += 32)
            for (int j = 0; j < 16; ++j) {
                out[c + j] = x[c + 2 * j];
                out[c + 16 + j] = x[c + 2 * j + 1];
            }
    }

    // Round to nearest, ties away from zero (as the reference quantizers do).
    static std::int8_t round_i8(float v) { return std::int8_t(std::lround(v)); }

    // Blocks of 32 with scale = max|x| / 127.
    void quantize_32(const float* x, int t) {
        std::int8_t* q = q8_.data() + std::size_t(t) * K;
        float* d = scales32_.data() + std::size_t(t) * blocks32;
        std::int32_t* s = sums32_.data() + std::size_t(t) * blocks32;
        for (int b = 0; b < blocks32; ++b) {
            float amax = 0;
            for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
            const float scale = amax / 127.f, inv = scale ? 1.f / scale : 0.f;
            std::int32_t sum = 0;
            for (int i = 0; i < 32; ++i) sum += q[b * 32 + i] = round_i8(x[b * 32 + i] * inv);
            d[b] = scale;
            s[b] = sum;
        }
    }

    // Blocks of 256 with one scale, plus the sums of each 16 (K-quants apply their minimums per
    // sub-block through these sums).
    void quantize_256(const float* x, int t) {
        std::int8_t* q = q8_.data() + std::size_t(t) * K;
        float* d = scales256_.data() + std::size_t(t) * blocks256;
        std::int32_t* s = sums16_.data() + std::size_t(t) * (K / 16);
        for (int b = 0; b < blocks256; ++b) {
            float amax = 0;
            for (int i = 0; i < 256; ++i) amax = std::max(amax, std::fabs(x[b * 256 + i]));
            const float scale = amax / 127.f, inv = scale ? 1.f / scale : 0.f;
            for (int g = 0; g < 16; ++g) {
                std::int32_t sum = 0;
                for (int i = 0; i < 16; ++i) sum += q[b * 256 + g * 16 + i] = round_i8(x[b * 256 + g * 16 + i] * inv);
                s[b * 16 + g] = sum;
            }
            d[b] = scale;
        }
    }

    const float* x_ = nullptr;
    int tokens_ = 0;
    unsigned ready_ = 0;
    std::vector<float> pairs_;
    std::vector<std::int8_t> q8_;
    std::vector<float> scales32_;
    std::vector<std::int32_t> sums32_;
    std::vector<float> scales256_;
    std::vector<std::int32_t> sums16_;
};

}  // namespace qwen3::kernels
