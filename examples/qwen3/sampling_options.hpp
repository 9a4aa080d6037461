// Sampling flags shared by `qwen3 generate` and `qwen3 chat`.
#pragma once

#include <random>

#include <qwen3/sampler.hpp>

#include "cli.hpp"

#define SAMPLING_OPTIONS                                                                                          \
    {"--temp", "", true}, {"--top-k", "", true}, {"--top-p", "", true}, {"--min-p", "", true},                  \
        {"--repeat-penalty", "", true}, {"--presence-penalty", "", true}, {"--frequency-penalty", "", true},     \
        {"--repeat-last-n", "", true}, {"--seed", "-s", true}

namespace cli {

// The preset, overridden by any flag given. --temp 0 is greedy. Without --seed the seed is random
// (and printed, so a run can be repeated).
inline qwen3::SamplerParams sampling_from(const Args& args, qwen3::SamplerParams p) {
    p.temperature = float(args.get_double("--temp", p.temperature));
    p.top_k = int(args.get_int("--top-k", p.top_k, 0, 1 << 30));
    p.top_p = float(args.get_double("--top-p", p.top_p));
    p.min_p = float(args.get_double("--min-p", p.min_p));
    p.repetition_penalty = float(args.get_double("--repeat-penalty", p.repetition_penalty));
    p.presence_penalty = float(args.get_double("--presence-penalty", p.presence_penalty));
    p.frequency_penalty = float(args.get_double("--frequency-penalty", p.frequency_penalty));
    p.penalty_last_n = int(args.get_int("--repeat-last-n", p.penalty_last_n, -1, 1 << 30));
    if (args.has("--seed")) {
        const std::string s = args.get("--seed");
        char* end = nullptr;
        p.seed = std::strtoull(s.c_str(), &end, 10);
        if (s.empty() || *end != '\0') throw UsageError("--seed must be a non-negative integer");
    } else {
        p.seed = std::random_device{}();
    }
    p.validate();
    return p;
}

}  // namespace cli
