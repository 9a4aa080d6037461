// The Qwen3-0.6B shape (random f32 weights, 2.4 GB, rebuilt in memory) against llama.cpp.
#include <doctest/doctest.h>

#include <qwen3/model.hpp>

#include "golden.hpp"
#include "random_model.hpp"

using Cfg = qwen3::WithContext<qwen3::Qwen3_0_6B, 512>;

TEST_CASE("Qwen3-0.6B shape matches llama.cpp's logits at the last position and its greedy tokens") {
    qwen3::ThreadPool pool(2);
    qwen3::Model<Cfg> model(test::make_random_model(test::qwen3_06b_spec(), pool));
    // a looser bound than the two-layer models': 28 layers of f32 sums over rows of 1024 to 3072,
    // added in another order than llama.cpp adds them
    test::check_golden(model, test::load_golden("0.6b", "prompt32", Cfg::vocab), 2, 2e-5f);
}
