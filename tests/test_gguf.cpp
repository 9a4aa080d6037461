#include <doctest/doctest.h>

#include <qwen3/format/gguf.hpp>

#include "support.hpp"

TEST_CASE("gguf: the micro model's header, metadata and tensor table") {
    qwen3::gguf::File f(test::data_path("qwen3-micro-f32.gguf"));
    CHECK(f.version() == 3);
    CHECK(f.require_string("general.architecture") == "qwen3");
    CHECK(f.require_uint("qwen3.embedding_length") == 128);
    CHECK(f.require("tokenizer.ggml.tokens").strings.size() == 4096);
    const auto* q = f.find_tensor("blk.0.attn_q.weight");
    REQUIRE(q);
    CHECK(q->shape == qwen3::make_shape(256, 128));
    CHECK(q->type == qwen3::DType::f32);
}
