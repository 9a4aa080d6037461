#!/usr/bin/env bash
# Builds the kernel and model tests for AVX2 (-march=x86-64-v3) and runs them, so that a machine
# whose native build takes the AVX-512 kernels still tests the AVX2 ones (kernels/arch/avx2_*.hpp:
# the quantized dot products, the packed decode layout, the int8 prefill kernel).
#
#   tools/check_avx2.sh
#
# Skipped, with a message, on a CPU without AVX2, FMA and F16C (the binaries could not run); on a CPU
# without AVX-512 it repeats what the normal build tests. About 3 minutes on 2 cores. Environment:
# QWEN3_AVX2_BUILD (build folder, default build-avx2).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${QWEN3_AVX2_BUILD:-build-avx2}
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
for f in avx2 fma f16c; do
    if [[ " $flags " != *" $f "* ]]; then
        echo "check_avx2: this CPU has no $f; the AVX2 kernels cannot run here (skipped)"
        exit 0
    fi
done
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DQWEN3_NATIVE=OFF -DCMAKE_CXX_FLAGS=-march=x86-64-v3 \
    -DQWEN3_BUILD_TESTS=ON -DQWEN3_BUILD_EXAMPLES=OFF -DQWEN3_INSTALL=OFF >/dev/null
cmake --build "$build" -j2 --target test_quant_kernels test_model_micro
ctest --test-dir "$build" -j2 --output-on-failure -R '^(test_quant_kernels|test_model_micro)$'
