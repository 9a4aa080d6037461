#include <doctest/doctest.h>

#include <qwen3/format/checkpoint.hpp>

#include "support.hpp"

TEST_CASE("checkpoint: GGUF and safetensors folder give the same tensors") {
    auto g = qwen3::Checkpoint::open(test::data_path("qwen3-micro-f32.gguf"));
    auto h = qwen3::Checkpoint::open(test::data_path("qwen3-micro-f32-hf"));
    CHECK(g.params().hidden == h.params().hidden);
    CHECK(g.params().vocab == 4096);
    CHECK(h.params().vocab == 4096);
    CHECK(g.tensors().size() == h.tensors().size());
    for (const auto& t : g.tensors()) {
        const auto* other = h.find(t.name);
        REQUIRE_MESSAGE(other, t.name);
        CHECK(other->shape == t.shape);
        CHECK(other->bytes == t.bytes);
        CHECK(std::memcmp(other->data, t.data, t.bytes) == 0);
    }
}
