// qwen3/quantize.hpp - the quantizer: a quantized GGUF file from a GGUF file or a Hugging Face folder.
//
//     qwen3::quant::quantize_model("Qwen3-4B/", "Qwen3-4B-Q4_K_M.gguf", qwen3::quant::FileType::q4_k_m);
//
// What `qwen3 quantize` runs. Programs that only load and run models do not need it, so
// <qwen3/qwen3.hpp> leaves it out; include this header beside it (or alone) to convert files.
#pragma once

#include "quantize/quantize_model.hpp"
