// qwen3/kernels/arch/features.hpp - which families of hand-written kernels this compilation gets.
//
// Decided once, from the compiler's target macros (the -march flags), so that no header's place in
// the include order changes the answer. The AVX2 integer kernels serve CPUs without AVX-512 VNNI.
#pragma once

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
#define QWEN3_HAVE_AVX512_VNNI 1
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define QWEN3_HAVE_AVX2_QUANT 1
#endif

#if defined(__AVX512BF16__) && defined(__AVX512F__)
#define QWEN3_HAVE_AVX512_BF16 1
#endif
