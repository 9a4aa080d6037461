// The tokenizer the tool uses for a model: --tokenizer PATH when given, else the model's own (the
// GGUF file's metadata, or tokenizer.json in the Hugging Face folder).
#pragma once

#include <qwen3/format/checkpoint.hpp>
#include <qwen3/tokenizer.hpp>

#include "cli.hpp"

namespace cli {

inline qwen3::Tokenizer load_tokenizer(const Args& args, const qwen3::Checkpoint& ckpt) {
    if (args.has("--tokenizer")) return qwen3::Tokenizer::load(args.get("--tokenizer"));
    if (const qwen3::gguf::File* g = ckpt.gguf_file()) return qwen3::Tokenizer::from_gguf(*g);
    return qwen3::Tokenizer::load(ckpt.folder());
}

}  // namespace cli
