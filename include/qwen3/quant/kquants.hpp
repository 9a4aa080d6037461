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
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "../detail/simd.hpp"
#include "../error.hpp"
#include "blocks.hpp"

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
