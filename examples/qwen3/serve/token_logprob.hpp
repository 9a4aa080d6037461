// A sampled token's log-probability, as `qwen3 serve` reports it (OpenAI's logprobs).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace serve {

// The log-softmax of the token's logit under the model's distribution (before sampling filters),
// and the `top` most likely tokens with theirs, most likely first.
struct TokenLogprob {
    std::int32_t token = 0;
    float logprob = 0;
    std::vector<std::pair<std::int32_t, float>> top;
};

}  // namespace serve
