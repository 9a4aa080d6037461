// The C interface compiled for the test: the micro model's shape only, with an f32 KV arena so that
// logits can be held to llama.cpp's (computed with an F32 KV cache) at 1e-4.
#define QWEN3_KV_TYPE qwen3::KVF32
#define QWEN3_C_API_VARIANTS qwen3::ConfigList<qwen3::Qwen3_Micro>
#include <qwen3/c_api.hpp>
