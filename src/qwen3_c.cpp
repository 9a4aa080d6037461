// The C interface (include/qwen3.h) as a library: CMake target qwen3::c (option QWEN3_BUILD_C_API).
// It compiles every named variant; to compile fewer, build your own file like this one with
// QWEN3_C_API_VARIANTS defined (see include/qwen3/c_api.hpp).
#include <qwen3/c_api.hpp>
