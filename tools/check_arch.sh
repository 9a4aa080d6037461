#!/usr/bin/env bash
# Builds the kernel and model tests for an instruction set other than the build machine's and runs
# them, so that every family of kernels is tested whatever machine CI runs on:
#
#   tools/check_arch.sh avx2       # -march=x86-64-v3: the AVX2 kernels (an AVX-512 machine's native
#                                  # build never reaches them)
#   tools/check_arch.sh portable   # the compiler's default target, no -march: the portable xsimd and
#                                  # scalar paths every other CPU gets; and the C interface's library
#                                  # target (src/qwen3_c.cpp), run by the C test
#
# Exit status 77 (and nothing run) when this CPU cannot execute the binaries (avx2 without AVX2, FMA
# and F16C); .ci/run treats that as a failure unless told otherwise. About 4 minutes on 2 cores.
# Environment: QWEN3_ARCH_BUILD (build folder, default build-ARCH).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-}
case "$arch" in
    avx2) flags=-march=x86-64-v3; c_api=OFF ;;
    portable) flags=; c_api=ON ;;  # also the C interface's library target, every variant
    *) echo "usage: tools/check_arch.sh avx2|portable" >&2; exit 2 ;;
esac
build=${QWEN3_ARCH_BUILD:-build-$arch}
if [ "$arch" = avx2 ]; then
    cpu=$(grep -m1 '^flags' /proc/cpuinfo || true)
    for f in avx2 fma f16c; do
        if [[ " $cpu " != *" $f "* ]]; then
            echo "check_arch: NOT RUN: this CPU has no $f, so the AVX2 kernels cannot run here" >&2
            exit 77
        fi
    done
fi
tests="test_quant_kernels test_attention test_model_micro test_model_formats"
[ "$c_api" = ON ] && tests="$tests test_c_api_library"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DQWEN3_NATIVE=OFF -DCMAKE_CXX_FLAGS="$flags" \
    -DQWEN3_BUILD_TESTS=ON -DQWEN3_BUILD_EXAMPLES=OFF -DQWEN3_INSTALL=OFF -DQWEN3_BUILD_C_API=$c_api >/dev/null
cmake --build "$build" -j2 --target $tests
ctest --test-dir "$build" -j2 --output-on-failure -R "^($(echo $tests | tr ' ' '|'))\$"
