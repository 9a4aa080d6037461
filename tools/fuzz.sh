#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang and runs each for a bounded time.
#
#   tools/fuzz.sh [seconds per target, default 60]
#
# Environment: QWEN3_FUZZ_BUILD (build folder, default build-fuzz), QWEN3_FUZZ_TARGETS (space-separated
# subset, default all), CXX/CC (default clang++/clang).
# Each target starts from its generated seeds (fuzz/make_seeds.cpp), the hand-written ones in
# fuzz/corpus/<target>/ and the past findings in tests/data/regressions/<target>/; what it learns is
# kept in <build>/corpus/<target>/ for the next run. Exits non-zero when any target finds a crash, a
# sanitizer report, a timeout, excess memory or a broken invariant; the input is saved as
# <build>/findings/<target>-crash-* (copy it to tests/data/regressions/<target>/ once fixed).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=${QWEN3_FUZZ_BUILD:-build-fuzz}
targets=${QWEN3_FUZZ_TARGETS:-"gguf hf json chat_template jinja reply tokenizer tokenizer_json grammar json_schema"}

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="${CXX:-clang++}" \
    -DCMAKE_C_COMPILER="${CC:-clang}" -DQWEN3_BUILD_FUZZ=ON -DQWEN3_BUILD_TESTS=OFF -DQWEN3_BUILD_EXAMPLES=OFF \
    -DQWEN3_INSTALL=OFF >/dev/null
cmake --build "$build" -j2 --target fuzz_all
"$build/fuzz/fuzz_make_seeds" tests/data "$build/seeds"
mkdir -p "$build/findings"

failed=()
summary=()
for t in $targets; do
    mkdir -p "$build/corpus/$t" "$build/seeds/$t"  # targets without generated seeds start from fuzz/corpus/
    dirs=("$build/corpus/$t" "$build/seeds/$t")
    for d in "fuzz/corpus/$t" "tests/data/regressions/$t"; do [ -d "$d" ] && dirs+=("$d"); done
    dict=()
    [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
    log="$build/findings/$t.log"
    echo "== fuzz_$t for ${seconds}s"
    status=0
    "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 -print_final_stats=1 \
        -artifact_prefix="$build/findings/$t-" "${dict[@]}" "${dirs[@]}" >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "$status" != 0 ]; then
        failed+=("$t")
        grep -E "ERROR|fuzz finding|runtime error|Test unit written|SUMMARY" "$log" | head -20 || true
        summary+=("$t: FAILED (exit $status) after ${runs:-?} executions; log: $log")
    else
        summary+=("$t: ${runs:-?} executions in ${seconds}s, no finding")
    fi
done
echo "== fuzz summary"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: findings in: ${failed[*]}" >&2
    exit 1
fi
