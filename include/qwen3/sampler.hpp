// qwen3/sampler.hpp - choosing the next token from the logits.
//
// Order of operations: Hugging Face transformers' (the order Qwen3's recommended settings were
// tuned with; vLLM agrees): penalties on the logits, then temperature, then top-k, top-p and min-p,
// each on the distribution the previous step left (renormalized), then one random draw.
// (llama.cpp's default chain differs: it applies temperature last, so its top-p/min-p see the
// temperature-1 distribution.)
//
//   penalties   for each token seen in the last penalty_last_n accepted tokens, `count` times:
//               l = (l <= 0 ? l * repetition_penalty : l / repetition_penalty)
//                   - count * frequency_penalty - (count > 0) * presence_penalty
//               (llama.cpp's formula; HF's repetition penalty is the same first line)
//   temperature x = l / temperature; temperature 0 (or one below ~3e-39, whose reciprocal overflows)
//               means greedy: the argmax, lowest id on ties
//   top-k       keep the k largest (ties broken by lower token id)
//   top-p       sort the kept tokens by probability (ties: lower id first) and keep the shortest prefix
//               whose probability sums to at least top_p (always at least one token)
//   min-p       keep tokens whose probability is at least min_p times the largest
//   draw        u = uniform [0, 1) from xoshiro256** seeded by splitmix64(seed) (53-bit doubles);
//               walk the kept tokens in id order and take the first whose cumulative weight exceeds
//               u times the total
//
// Speed on a 151,936-token vocabulary: never a full sort. With top-k, one SIMD pass keeps a small
// heap of candidates (one compare against the heap's threshold rejects 16 logits at a time), and
// penalties touch only the penalized tokens: the k + P best raw logits (P penalized tokens) always
// contain the k best penalized ones. Without top-k, one SIMD pass computes the exp() weights, a
// 1024-bucket histogram of log-probabilities (1/16 nat each) finds the bucket where the top-p mass
// is reached and only that bucket is sorted, and per-block sums let the draw skip to its block;
// penalties then work on one copy of the logits. Weights are summed in double precision.
// bench/bench_sampler.cpp measures each path.
//
// Reproducibility: the draw sequence depends only on the seed (the generator is written here, not
// std::mt19937 plus a distribution whose float conversion the standard leaves open). exp() comes
// from xsimd, so a platform with another SIMD width may round a weight differently in the last bit,
// which can only change a draw that lands within that rounding of a boundary.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "detail/simd.hpp"
#include "error.hpp"

namespace qwen3 {

struct SamplerParams {
    float temperature = 1.0f;         // >= 0; 0 = greedy (no randomness)
    int top_k = 0;                    // >= 0; 0 = off
    float top_p = 1.0f;               // in (0, 1]; 1 = off
    float min_p = 0.0f;               // in [0, 1]; 0 = off
    float repetition_penalty = 1.0f;  // > 0; 1 = off; > 1 discourages repeats
    float presence_penalty = 0.0f;    // subtracted once from every token in the window
    float frequency_penalty = 0.0f;   // subtracted per occurrence in the window
    int penalty_last_n = 64;          // accepted tokens the penalties look back on; 0 = none, -1 = all
    std::uint64_t seed = 0;

    // Qwen3's recommended settings (model card): thinking mode and non-thinking mode.
    static SamplerParams thinking() { return with(0.6f, 20, 0.95f, 0.0f); }
    static SamplerParams non_thinking() { return with(0.7f, 20, 0.8f, 0.0f); }
    static SamplerParams greedy() { return with(0.0f, 0, 1.0f, 0.0f); }

    // Throws Error(invalid_argument) naming the first field outside its documented range.
    void validate() const;

private:
    static SamplerParams with(float temperature, int top_k, float top_p, float min_p) {
        SamplerParams p;
        p.temperature = temperature;
        p.top_k = top_k;
        p.top_p = top_p;
        p.min_p = min_p;
        return p;
    }
};

struct TokenProbability {
    std::int32_t token;
    float probability;
};

namespace detail {

// xoshiro256** (Blackman and Vigna), state filled from the seed by splitmix64, as its authors advise.
class Xoshiro256 {
public:
    explicit Xoshiro256(std::uint64_t seed) {
        for (std::uint64_t& word : s_) {
            seed += 0x9E3779B97F4A7C15ull;
            std::uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            word = z ^ (z >> 31);
        }
    }
    std::uint64_t next() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    // Uniform in [0, 1) with 53 random bits.
    double uniform() { return double(next() >> 11) * 0x1.0p-53; }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::uint64_t s_[4];
};

}  // namespace detail

// Not thread-safe: one Sampler per generation stream.
class Sampler {
public:
    // Throws Error(invalid_argument) if params.validate() does.
    explicit Sampler(const SamplerParams& params = {}) : params_(params), rng_(params.seed) {
        params_.validate();
        window_capacity_ = params_.penalty_last_n;
    }

    const SamplerParams& params() const noexcept { return params_; }

    // Chooses a token from `logits` (one per vocabulary entry; not modified). Does not record it:
    // call accept() with the token actually used. Throws Error(invalid_argument) if logits is empty,
    // holds NaN or +inf, has no finite entry, or if a token in the penalty history is not an index
    // into it.
    std::int32_t sample(std::span<const float> logits);

    // sample() among the tokens whose bit is set in `allowed` (bit i of word i / 64; tokens past
    // its end are not allowed): the others count as -inf, before penalties and every filter, so
    // top-k, top-p and min-p choose among allowed tokens. Throws as sample(), and
    // Error(invalid_argument) when no token is allowed.
    std::int32_t sample(std::span<const float> logits, std::span<const std::uint64_t> allowed) { return sample(masked(logits, allowed)); }
    std::vector<TokenProbability> distribution(std::span<const float> logits, std::span<const std::uint64_t> allowed) {
        return distribution(masked(logits, allowed));
    }

    // The distribution sample() draws from: the tokens that survive every filter, in id order, with
    // their renormalized probabilities (greedy: the argmax with probability 1). Does not use the
    // random generator. Throws as sample().
    std::vector<TokenProbability> distribution(std::span<const float> logits);

    // Records a token for the penalties (prompt tokens too, if they should count). Throws
    // Error(invalid_argument) for a negative id.
    void accept(std::int32_t token);

    // Forgets the accepted tokens and restarts the random sequence from the seed.
    void reset();

    // The penalties applied to `logits` in place (sample() does this on the side, without writing).
    // Throws Error(invalid_argument) if a token in the history is not an index into logits.
    void apply_penalties(std::span<float> logits) const;

private:
    struct Candidate {
        std::int32_t token;
        float logit;    // after penalties
        double weight;  // exp((logit - max) / temperature), before the draw's renormalization
    };
    static bool ranks_before(const Candidate& a, const Candidate& b) {
        return a.logit > b.logit || (a.logit == b.logit && a.token < b.token);
    }

    bool is_greedy() const;
    std::span<const float> masked(std::span<const float> logits, std::span<const std::uint64_t> allowed);
    bool penalties_active() const;
    float penalized(float logit, std::int32_t count) const;
    void collect_penalties(std::size_t vocab);
    std::int32_t greedy(std::span<const float> logits);
    void filter(std::span<const float> logits);
    void filter_top_k(std::span<const float> logits, std::size_t k);
    void filter_full(std::span<const float> logits);
    std::int32_t draw_full(double target) const;
    void cut_sorted(std::vector<Candidate>& sorted) const;

    static constexpr std::size_t kBlock = 256;  // tokens per block sum on the full-vocabulary path

    SamplerParams params_;
    detail::Xoshiro256 rng_;
    int window_capacity_ = 0;
    std::vector<std::int32_t> window_;  // ring buffer of the last accepted tokens
    std::size_t window_next_ = 0;
    std::unordered_map<std::int32_t, std::int32_t> counts_;  // occurrences in window_

    // filter()'s result: with top-k, the kept candidates in token order; otherwise (full_path_)
    // one weight per token, 0 for the tokens filtered out, and sums per block of kBlock tokens
    bool full_path_ = false;
    std::vector<Candidate> candidates_;
    std::vector<float> weights_;
    std::vector<double> block_sums_;
    double kept_total_ = 0;

    // scratch, kept between calls to avoid allocation per token
    std::vector<std::pair<std::int32_t, std::int32_t>> penalties_;  // (token, count)
    std::vector<float> scratch_;          // penalized logits (full path)
    std::vector<float> masked_;           // logits with the tokens a constraint forbids at -inf
    std::vector<std::int32_t> buckets_;   // top-p histogram bucket per token (full path)
    std::vector<Candidate> bucket_;       // the tokens of the bucket where top-p's mass is reached
};

// ---------------------------------------------------------------------------------------------
// implementation

inline void SamplerParams::validate() const {
    auto bad = [](const char* field, const std::string& expected, double value) {
        detail::fail(ErrorCode::invalid_argument, "sampler: ", field, " must be ", expected, ", got ",
                     std::to_string(value));
    };
    if (!(temperature >= 0) || !std::isfinite(temperature)) bad("temperature", "finite and >= 0", temperature);
    if (top_k < 0) bad("top_k", ">= 0 (0 = off)", top_k);
    if (!(top_p > 0 && top_p <= 1)) bad("top_p", "in (0, 1]", top_p);
    if (!(min_p >= 0 && min_p <= 1)) bad("min_p", "in [0, 1]", min_p);
    if (!(repetition_penalty > 0) || !std::isfinite(repetition_penalty))
        bad("repetition_penalty", "finite and > 0 (1 = off)", repetition_penalty);
    if (!std::isfinite(presence_penalty)) bad("presence_penalty", "finite", presence_penalty);
    if (!std::isfinite(frequency_penalty)) bad("frequency_penalty", "finite", frequency_penalty);
    if (penalty_last_n < -1) bad("penalty_last_n", ">= -1 (-1 = all, 0 = none)", penalty_last_n);
}

namespace detail {

[[noreturn]] inline void bad_logit(std::span<const float> logits) {
    for (std::size_t i = 0; i < logits.size(); ++i)
        if (std::isnan(logits[i]) || logits[i] == std::numeric_limits<float>::infinity())
            fail(ErrorCode::invalid_argument, "sampler: logit ", i, " is ", std::isnan(logits[i]) ? "NaN" : "+inf",
                 " (expected a finite number or -inf)");
    fail(ErrorCode::invalid_argument, "sampler: invalid logit");
}

// The largest logit, checking every one for NaN and +inf on the way.
inline float checked_max(std::span<const float> logits) {
    using detail::simd::fbatch;
    constexpr std::size_t L = detail::simd::lanes;
    const float* p = logits.data();
    const std::size_t n = logits.size();
    const fbatch inf(std::numeric_limits<float>::infinity());
    fbatch best(-std::numeric_limits<float>::infinity());
    xsimd::batch_bool<float, detail::simd::arch> invalid(false);
    std::size_t i = 0;
    for (; i + L <= n; i += L) {
        fbatch x = fbatch::load_unaligned(p + i);
        invalid = invalid | xsimd::isnan(x) | (x == inf);  // not x != x: xsimd 8.1 compares NEQ ordered
        best = xsimd::max(best, x);
    }
    if (xsimd::any(invalid)) bad_logit(logits);
    alignas(64) float lanes[L];
    best.store_aligned(lanes);
    float m = lanes[0];
    for (std::size_t j = 1; j < L; ++j) m = std::max(m, lanes[j]);
    for (; i < n; ++i) {
        if (std::isnan(p[i]) || p[i] == std::numeric_limits<float>::infinity()) bad_logit(logits);
        m = std::max(m, p[i]);
    }
    return m;
}

}  // namespace detail

inline bool Sampler::penalties_active() const {
    return window_capacity_ != 0 && !counts_.empty() &&
           (params_.repetition_penalty != 1.0f || params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f);
}

inline float Sampler::penalized(float logit, std::int32_t count) const {
    float v = logit;
    if (params_.repetition_penalty != 1.0f) v = v <= 0 ? v * params_.repetition_penalty : v / params_.repetition_penalty;
    return v - float(count) * params_.frequency_penalty - (count > 0 ? params_.presence_penalty : 0.0f);
}

inline void Sampler::collect_penalties(std::size_t vocab) {
    penalties_.clear();
    if (!penalties_active()) return;
    for (const auto& [token, count] : counts_) {
        if (std::size_t(token) >= vocab)
            detail::fail(ErrorCode::invalid_argument, "sampler: accepted token ", token, " is outside the ", vocab,
                         " logits given (penalty history from another vocabulary?)");
        penalties_.emplace_back(token, count);
    }
    // hash-map order is unspecified; sort so every platform applies them identically
    std::sort(penalties_.begin(), penalties_.end());
}

inline void Sampler::apply_penalties(std::span<float> logits) const {
    if (!penalties_active()) return;
    for (const auto& [token, count] : counts_) {
        if (std::size_t(token) >= logits.size())
            detail::fail(ErrorCode::invalid_argument, "sampler: accepted token ", token, " is outside the ",
                         logits.size(), " logits given");
        logits[std::size_t(token)] = penalized(logits[std::size_t(token)], count);
    }
}

inline void Sampler::accept(std::int32_t token) {
    if (token < 0) detail::fail(ErrorCode::invalid_argument, "sampler: accept() got the negative token id ", token);
    if (window_capacity_ == 0) return;
    if (window_capacity_ > 0 && window_.size() == std::size_t(window_capacity_)) {
        std::int32_t& slot = window_[window_next_];
        if (--counts_[slot] == 0) counts_.erase(slot);
        slot = token;
        window_next_ = (window_next_ + 1) % window_.size();
    } else {
        window_.push_back(token);
    }
    ++counts_[token];
}

inline void Sampler::reset() {
    window_.clear();
    window_next_ = 0;
    counts_.clear();
    rng_ = detail::Xoshiro256(params_.seed);
}

inline std::int32_t Sampler::greedy(std::span<const float> logits) {
    std::span<const float> source = logits;
    if (!penalties_.empty()) {
        scratch_.assign(logits.begin(), logits.end());
        for (const auto& [token, count] : penalties_) scratch_[std::size_t(token)] = penalized(scratch_[std::size_t(token)], count);
        source = scratch_;
    }
    const float best = detail::checked_max(source);
    if (best == -std::numeric_limits<float>::infinity())
        detail::fail(ErrorCode::invalid_argument, "sampler: every logit is -inf (no token can be chosen)");
    return std::int32_t(std::find(source.begin(), source.end(), best) - source.begin());
}

// Keeps the shortest prefix of `sorted` (best first, weights set) that top-p and min-p allow.
inline void Sampler::cut_sorted(std::vector<Candidate>& sorted) const {
    double total = 0;
    for (const Candidate& c : sorted) total += c.weight;
    std::size_t keep = sorted.size();
    if (params_.top_p < 1.0f) {
        const double target = double(params_.top_p) * total;
        double sum = 0;
        for (std::size_t i = 0; i < sorted.size(); ++i) {
            sum += sorted[i].weight;
            if (sum >= target) {
                keep = i + 1;
                break;
            }
        }
    }
    if (params_.min_p > 0.0f) {
        // probability ratio to the best = weight ratio; the best has weight exp(0) = 1
        const double floor_weight = double(params_.min_p) * sorted.front().weight;
        std::size_t n = 1;
        while (n < keep && sorted[n].weight >= floor_weight) ++n;
        keep = n;
    }
    sorted.resize(keep);
}

inline void Sampler::filter_top_k(std::span<const float> logits, std::size_t k) {
    // 1. the k + P best raw logits (P = penalized tokens): enough to contain the k best after the
    //    penalties, since only the P penalized tokens can move in the ranking.
    const std::size_t want = std::min(logits.size(), k + penalties_.size());
    std::vector<Candidate>& heap = candidates_;  // worst candidate on top
    heap.clear();
    auto worse = [](const Candidate& a, const Candidate& b) { return ranks_before(a, b); };
    const float* p = logits.data();
    const std::size_t n = logits.size();
    std::size_t i = 0;
    for (; i < n && heap.size() < want; ++i) {
        if (std::isnan(p[i]) || p[i] == std::numeric_limits<float>::infinity()) detail::bad_logit(logits);
        heap.push_back({std::int32_t(i), p[i], 0.0});
        std::push_heap(heap.begin(), heap.end(), worse);
    }
    float threshold = heap.front().logit;
    auto consider = [&](std::size_t j) {
        // a later token equal to the threshold ranks after it (higher id): strict compare is exact
        if (p[j] > threshold) {
            std::pop_heap(heap.begin(), heap.end(), worse);
            heap.back() = {std::int32_t(j), p[j], 0.0};
            std::push_heap(heap.begin(), heap.end(), worse);
            threshold = heap.front().logit;
        }
    };
    using detail::simd::fbatch;
    constexpr std::size_t L = detail::simd::lanes;
    const fbatch inf(std::numeric_limits<float>::infinity());
    xsimd::batch_bool<float, detail::simd::arch> invalid(false);
    for (; i + L <= n; i += L) {
        fbatch x = fbatch::load_unaligned(p + i);
        invalid = invalid | xsimd::isnan(x) | (x == inf);  // not x != x: xsimd 8.1 compares NEQ ordered
        if (xsimd::any(x > fbatch(threshold)))
            for (std::size_t j = i; j < i + L; ++j) consider(j);
    }
    if (xsimd::any(invalid)) detail::bad_logit(logits);
    for (; i < n; ++i) {
        if (std::isnan(p[i]) || p[i] == std::numeric_limits<float>::infinity()) detail::bad_logit(logits);
        consider(i);
    }

    // 2. penalized values replace or join the raw ones (both lists sorted by id); then the k best
    std::vector<Candidate>& set = heap;
    if (!penalties_.empty()) {
        std::sort(set.begin(), set.end(), [](const Candidate& a, const Candidate& b) { return a.token < b.token; });
        const std::size_t raw = set.size();
        std::size_t at = 0;
        for (const auto& [token, count] : penalties_) {
            while (at < raw && set[at].token < token) ++at;
            const float v = penalized(p[token], count);
            if (at < raw && set[at].token == token) set[at].logit = v;
            else set.push_back({token, v, 0.0});
        }
    }
    std::sort(set.begin(), set.end(), ranks_before);
    set.resize(std::min(set.size(), k));
    while (!set.empty() && set.back().logit == -std::numeric_limits<float>::infinity()) set.pop_back();
    if (set.empty()) detail::fail(ErrorCode::invalid_argument, "sampler: every logit is -inf (no token can be chosen)");

    // 3. weights, top-p, min-p; then id order for the draw
    const double best = set.front().logit;
    const double temperature = params_.temperature;
    for (Candidate& c : set) c.weight = std::exp((double(c.logit) - best) / temperature);
    cut_sorted(set);
    std::sort(set.begin(), set.end(), [](const Candidate& a, const Candidate& b) { return a.token < b.token; });
    kept_total_ = 0;
    for (const Candidate& c : set) kept_total_ += c.weight;
}

inline void Sampler::filter_full(std::span<const float> logits) {
    using detail::simd::fbatch;
    using ibatch = xsimd::batch<std::int32_t, detail::simd::arch>;
    constexpr std::size_t L = detail::simd::lanes;
    static_assert(kBlock % L == 0, "a block is whole SIMD batches");

    std::span<const float> source = logits;
    if (!penalties_.empty()) {
        scratch_.assign(logits.begin(), logits.end());
        for (const auto& [token, count] : penalties_) scratch_[std::size_t(token)] = penalized(scratch_[std::size_t(token)], count);
        source = scratch_;
    }
    const float best = detail::checked_max(source);
    if (best == -std::numeric_limits<float>::infinity())
        detail::fail(ErrorCode::invalid_argument, "sampler: every logit is -inf (no token can be chosen)");
    const std::size_t n = source.size();
    const float* p = source.data();
    // multiplied by 1/T (a division per element would cost more than the exp); greedy() takes the
    // temperatures whose reciprocal overflows
    const float inv_t = 1.0f / params_.temperature;
    const bool top_p = params_.top_p < 1.0f;

    // 1. weights exp((l - best) / T), and for top-p each token's bucket: bucket b holds the tokens
    //    whose (best - l) / T lies in [b/16, (b+1)/16) nats; the last bucket holds everything beyond
    constexpr int kBuckets = 1024;
    constexpr float kPerNat = 16.0f;
    auto bucket_of = [&](float l) {
        const float d = (best - l) * (inv_t * kPerNat);
        return d < float(kBuckets - 1) ? std::int32_t(d) : kBuckets - 1;
    };
    weights_.resize(n);
    if (top_p) buckets_.resize(n);
    {
        const fbatch b(best), scale(inv_t), bucket_scale(inv_t * kPerNat), last(float(kBuckets - 1));
        std::size_t i = 0;
        for (; i + L <= n; i += L) {
            const fbatch x = fbatch::load_unaligned(p + i);
            xsimd::exp((x - b) * scale).store_unaligned(weights_.data() + i);
            if (top_p) xsimd::to_int(xsimd::min((b - x) * bucket_scale, last)).store_unaligned(buckets_.data() + i);
        }
        for (; i < n; ++i) {
            weights_[i] = std::exp((p[i] - best) * inv_t);
            if (top_p) buckets_[i] = bucket_of(p[i]);
        }
    }

    // 2. top-p: the mass per bucket locates the cutoff; only the tokens of that bucket are sorted.
    //    A token is kept if it ranks at or before the cutoff (logit, then lower id).
    float cutoff_logit = -std::numeric_limits<float>::infinity();
    if (top_p) {
        // four histograms, each token to the next: consecutive adds rarely hit the same counter, so
        // they do not wait on each other (padded rows keep the four off the same cache sets)
        double mass[4][kBuckets + 8] = {};
        std::size_t i = 0;
        for (; i + 4 <= n; i += 4) {
            mass[0][buckets_[i]] += weights_[i];
            mass[1][buckets_[i + 1]] += weights_[i + 1];
            mass[2][buckets_[i + 2]] += weights_[i + 2];
            mass[3][buckets_[i + 3]] += weights_[i + 3];
        }
        for (; i < n; ++i) mass[0][buckets_[i]] += weights_[i];
        double bucket_mass[kBuckets];
        double total = 0;
        for (int b = 0; b < kBuckets; ++b) total += bucket_mass[b] = (mass[0][b] + mass[1][b]) + (mass[2][b] + mass[3][b]);
        const double target = double(params_.top_p) * total;
        double before = 0;
        std::int32_t b = 0;
        while (b < kBuckets - 1 && before + bucket_mass[b] < target) before += bucket_mass[b++];
        bucket_.clear();
        {
            const ibatch wanted(b);
            std::size_t i = 0;
            for (; i + L <= n; i += L)
                if (xsimd::any(ibatch::load_unaligned(buckets_.data() + i) == wanted))
                    for (std::size_t j = i; j < i + L; ++j)
                        if (buckets_[j] == b) bucket_.push_back({std::int32_t(j), p[j], double(weights_[j])});
            for (; i < n; ++i)
                if (buckets_[i] == b) bucket_.push_back({std::int32_t(i), p[i], double(weights_[i])});
        }
        std::sort(bucket_.begin(), bucket_.end(), ranks_before);
        std::size_t cut = bucket_.size() - 1;
        for (std::size_t k = 0; k < bucket_.size(); ++k) {
            before += bucket_[k].weight;
            if (before >= target) {
                cut = k;
                break;
            }
        }
        cutoff_logit = bucket_[cut].logit;
        // tokens tied with the cutoff but ranked after it (higher id) are out
        for (std::size_t k = cut + 1; k < bucket_.size() && bucket_[k].logit == cutoff_logit; ++k)
            weights_[std::size_t(bucket_[k].token)] = 0.0f;
    }

    // 3. min-p (the best token's weight is exp(0) = 1, so a weight is its probability ratio), the
    //    top-p cutoff: weights of the tokens that are out become 0; sums per block of kBlock tokens
    //    let the draw skip ahead
    const std::size_t blocks = (n + kBlock - 1) / kBlock;
    block_sums_.assign(blocks, 0.0);
    kept_total_ = 0;
    const fbatch min_weight(params_.min_p), cutoff(cutoff_logit), zero(0.0f);
    for (std::size_t block = 0; block < blocks; ++block) {
        const std::size_t begin = block * kBlock, end = std::min(n, begin + kBlock);
        fbatch sum(0.0f);
        std::size_t i = begin;
        for (; i + L <= end; i += L) {
            const fbatch w = fbatch::load_unaligned(weights_.data() + i);
            const fbatch kept = xsimd::select((w >= min_weight) & (fbatch::load_unaligned(p + i) >= cutoff), w, zero);
            kept.store_unaligned(weights_.data() + i);
            sum += kept;
        }
        double block_sum = xsimd::hadd(sum);
        for (; i < end; ++i) {
            if (!(weights_[i] >= params_.min_p && p[i] >= cutoff_logit)) weights_[i] = 0.0f;
            block_sum += weights_[i];
        }
        block_sums_[block] = block_sum;
        kept_total_ += block_sum;
    }
}

inline std::int32_t Sampler::draw_full(double target) const {
    double sum = 0;
    std::size_t block = 0;
    while (block + 1 < block_sums_.size() && sum + block_sums_[block] <= target) sum += block_sums_[block++];
    const std::size_t begin = block * kBlock, end = std::min(weights_.size(), begin + kBlock);
    std::int32_t last_kept = -1;
    for (std::size_t i = begin; i < end; ++i) {
        if (weights_[i] <= 0.0f) continue;
        sum += weights_[i];
        last_kept = std::int32_t(i);
        if (target < sum) return last_kept;
    }
    // the target sits within rounding of the block's end: its last kept token, else the last one before
    for (std::size_t i = end; last_kept < 0 && i-- > 0;)
        if (weights_[i] > 0.0f) last_kept = std::int32_t(i);
    return last_kept;
}

inline void Sampler::filter(std::span<const float> logits) {
    if (logits.empty()) detail::fail(ErrorCode::invalid_argument, "sampler: no logits given");
    if (logits.size() > std::size_t(std::numeric_limits<std::int32_t>::max()))
        detail::fail(ErrorCode::invalid_argument, "sampler: ", logits.size(), " logits is more than token ids can index");
    collect_penalties(logits.size());
    full_path_ = !(params_.top_k > 0 && std::size_t(params_.top_k) < logits.size());
    if (full_path_) filter_full(logits);
    else filter_top_k(logits, std::size_t(params_.top_k));
}

inline bool Sampler::is_greedy() const {
    // a temperature so small that 1/T overflows a float leaves only the argmax anyway
    return params_.temperature == 0.0f || !std::isfinite(1.0f / params_.temperature);
}

inline std::span<const float> Sampler::masked(std::span<const float> logits, std::span<const std::uint64_t> allowed) {
    constexpr float kForbidden = -std::numeric_limits<float>::infinity();
    masked_.assign(logits.size(), kForbidden);
    bool any = false;
    for (std::size_t w = 0; w < allowed.size() && w * 64 < logits.size(); ++w) {
        std::uint64_t bits = allowed[w];
        const std::size_t base = w * 64, n = std::min<std::size_t>(64, logits.size() - base);
        if (n < 64) bits &= (std::uint64_t(1) << n) - 1;
        if (bits == ~std::uint64_t(0)) {
            std::copy_n(logits.data() + base, 64, masked_.data() + base);
            any = true;
            continue;
        }
        for (; bits; bits &= bits - 1) {
            const std::size_t i = base + std::size_t(std::countr_zero(bits));
            masked_[i] = logits[i];
            any = true;
        }
    }
    if (!any) detail::fail(ErrorCode::invalid_argument, "sampler: the constraint allows no token");
    return masked_;
}

inline std::int32_t Sampler::sample(std::span<const float> logits) {
    if (is_greedy()) {
        if (logits.empty()) detail::fail(ErrorCode::invalid_argument, "sampler: no logits given");
        collect_penalties(logits.size());
        return greedy(logits);
    }
    filter(logits);
    const double target = rng_.uniform() * kept_total_;
    if (full_path_) return draw_full(target);
    double sum = 0;
    for (const Candidate& c : candidates_) {
        sum += c.weight;
        if (target < sum) return c.token;
    }
    return candidates_.back().token;  // target within rounding of the total
}

inline std::vector<TokenProbability> Sampler::distribution(std::span<const float> logits) {
    if (is_greedy()) {
        if (logits.empty()) detail::fail(ErrorCode::invalid_argument, "sampler: no logits given");
        collect_penalties(logits.size());
        return {{greedy(logits), 1.0f}};
    }
    filter(logits);
    std::vector<TokenProbability> out;
    if (full_path_) {
        for (std::size_t i = 0; i < weights_.size(); ++i)
            if (weights_[i] > 0.0f) out.push_back({std::int32_t(i), float(weights_[i] / kept_total_)});
    } else {
        out.reserve(candidates_.size());
        for (const Candidate& c : candidates_) out.push_back({c.token, float(c.weight / kept_total_)});
    }
    return out;
}

}  // namespace qwen3
