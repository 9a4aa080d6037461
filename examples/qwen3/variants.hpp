// The compiled variants the qwen3 tool can run. Each one's forward pass is compiled once, in its own
// variant_*.cpp (in parallel, and not again in every command's file).
#pragma once

#include <qwen3/qwen3.hpp>

namespace tool {
using Variants = qwen3::NamedVariants;
}

QWEN3_EXTERN_VARIANT(qwen3::Qwen3_0_6B)
QWEN3_EXTERN_ENGINE(qwen3::Qwen3_0_6B)
QWEN3_EXTERN_VARIANT(qwen3::Qwen3_1_7B)
QWEN3_EXTERN_ENGINE(qwen3::Qwen3_1_7B)
QWEN3_EXTERN_VARIANT(qwen3::Qwen3_4B)
QWEN3_EXTERN_ENGINE(qwen3::Qwen3_4B)
QWEN3_EXTERN_VARIANT(qwen3::Qwen3_8B)
QWEN3_EXTERN_ENGINE(qwen3::Qwen3_8B)
QWEN3_EXTERN_VARIANT(qwen3::Qwen3_14B)
QWEN3_EXTERN_ENGINE(qwen3::Qwen3_14B)
QWEN3_EXTERN_VARIANT(qwen3::Qwen3_32B)
QWEN3_EXTERN_ENGINE(qwen3::Qwen3_32B)
QWEN3_EXTERN_VARIANT(qwen3::Qwen3_Tiny)
QWEN3_EXTERN_ENGINE(qwen3::Qwen3_Tiny)
QWEN3_EXTERN_VARIANT(qwen3::Qwen3_Micro)
QWEN3_EXTERN_ENGINE(qwen3::Qwen3_Micro)
