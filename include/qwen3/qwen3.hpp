// qwen3.hpp - the library for programs that run Qwen3 models: include this one header.
//
// Load a Qwen3 dense checkpoint (GGUF or a Hugging Face folder), tokenize, run the model, sample and
// stream text. Model dimensions are compile-time configurations (config.hpp); weights are memory-mapped.
// Converting and quantizing files is the quantizer's job: <qwen3/quantize.hpp>.
#pragma once

#include "chat.hpp"
#include "config.hpp"
#include "engine.hpp"
#include "error.hpp"
#include "format/checkpoint.hpp"
#include "generation.hpp"
#include "grammar.hpp"
#include "model.hpp"
#include "sampler.hpp"
#include "tokenizer.hpp"
#include "variant.hpp"
