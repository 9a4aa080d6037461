// The forward pass of qwen3::Qwen3_Micro, compiled once for the whole tool.
#include <qwen3/qwen3.hpp>

QWEN3_INSTANTIATE_VARIANT(qwen3::Qwen3_Micro)
QWEN3_INSTANTIATE_ENGINE(qwen3::Qwen3_Micro)
