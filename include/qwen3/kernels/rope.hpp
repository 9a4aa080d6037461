// qwen3/kernels/rope.hpp - rotary position embedding, NeoX pairing (element i with i + head_dim/2).
#pragma once

#include <cmath>
#include <vector>

#include "../model_params.hpp"

namespace qwen3::detail {

// Frequencies of one model's RoPE, from the file's theta and scaling (none, linear or YaRN as
// Hugging Face computes them). Angles are formed in double precision and rounded once to float.
template <int HeadDim>
class Rope {
public:
    static constexpr int half = HeadDim / 2;

    Rope() = default;
    Rope(double theta, const RopeScaling& scaling) {
        for (int i = 0; i < half; ++i) inv_freq_[i] = std::pow(theta, -2.0 * i / HeadDim);
        if (scaling.kind == RopeScaling::Kind::linear) {
            for (double& f : inv_freq_) f /= scaling.factor;
        } else if (scaling.kind == RopeScaling::Kind::yarn && scaling.factor > 1.0) {
            apply_yarn(theta, scaling);
        }
    }

    // cos and sin of every pair's angle at position `pos` (arrays of HeadDim/2), scaled by YaRN's
    // attention factor (1 without YaRN).
    void angles(long pos, float* cos_out, float* sin_out) const {
        for (int i = 0; i < half; ++i) {
            const double a = double(pos) * inv_freq_[i];
            cos_out[i] = float(std::cos(a) * attention_factor_);
            sin_out[i] = float(std::sin(a) * attention_factor_);
        }
    }

    double inv_freq(int i) const { return inv_freq_[i]; }
    double attention_factor() const { return attention_factor_; }

private:
    void apply_yarn(double theta, const RopeScaling& s) {
        const double dim = HeadDim;
        const double original = double(s.original_context);
        auto correction_dim = [&](double rotations) {
            return dim * std::log(original / (rotations * 2 * M_PI)) / (2 * std::log(theta));
        };
        double low = std::max(std::floor(correction_dim(s.beta_fast)), 0.0);
        double high = std::min(std::ceil(correction_dim(s.beta_slow)), dim - 1);
        if (low == high) high += 0.001;
        for (int i = 0; i < half; ++i) {
            const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
            const double extrapolation = 1.0 - ramp;  // share of the unscaled frequency
            const double extrapolated = inv_freq_[i], interpolated = inv_freq_[i] / s.factor;
            inv_freq_[i] = interpolated * (1 - extrapolation) + extrapolated * extrapolation;
        }
        attention_factor_ = s.attention_factor > 0 ? s.attention_factor : 0.1 * std::log(s.factor) + 1.0;
    }

    double inv_freq_[half] = {};
    double attention_factor_ = 1.0;
};

// Rotates one head vector in place.
template <int HeadDim>
inline void apply_rope(float* v, const float* cos, const float* sin) {
    constexpr int half = HeadDim / 2;
    for (int i = 0; i < half; ++i) {
        const float x0 = v[i], x1 = v[i + half];
        v[i] = x0 * cos[i] - x1 * sin[i];
        v[i + half] = x0 * sin[i] + x1 * cos[i];
    }
}

}  // namespace qwen3::detail
