#!/usr/bin/env bash
# Regenerates the llama.cpp references of tests/data/llamacpp: the models are made by this project's
# tools, llama.cpp evaluates them through tools/llamacpp_reference.cpp (tests/data/README.md).
#
#   tools/make_llamacpp_references.sh BUILD_DIR LLAMACPP_REFERENCE [OUT_DIR]
#
# BUILD_DIR: a build of this project (make_random_model, qwen3). LLAMACPP_REFERENCE: the program of
# tools/llamacpp_reference.cpp built against llama.cpp. OUT_DIR defaults to tests/data/llamacpp.
# Takes a few minutes on 2 cores; the same inputs give the same files.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then sed -n '2,12p' "$0" >&2; exit 2; fi
build=$1
reference=$2
out=${3:-tests/data/llamacpp}
make_model=$build/tests/make_random_model
qwen3=$build/examples/qwen3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out/micro" "$out/tiny" "$out/rope" "$out/formats" "$out/0.6b"

# COUNT pseudo-random ids below VOCAB from SEED (a 64-bit LCG, high bits), comma-separated.
ids() {
    python3 -c 'import sys
n, vocab, x = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
out = []
for _ in range(n):
    x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
    out.append(str((x >> 33) % vocab))
print(",".join(out))' "$@"
}
run() {  # NAME MODEL DESCRIPTION ARGS...
    local name=$1 model=$2 describe=$3
    shift 3
    "$reference" "$model" "$out/$name" --describe "$describe" "$@" >/dev/null 2>"$work/log" || { cat "$work/log" >&2; exit 1; }
    echo "wrote $out/$name"
}

# --- micro: tests/data/qwen3-micro-f32.gguf (tiny shape, vocabulary 4096, f32, seed 3) ---
micro=tests/data/qwen3-micro-f32.gguf
m2_prompt=2481,866,3347,1732,117,2598,983,3464,1849,234,2715,1100,3581,1966,351,2832,1217,3698,2083,468,2949,1334,3815,2200,585,3066,1451,3932,2317,702,3183,1568,4049,2434,819,3300,1685,70,2551,936,3417,1802,187,2668,1053,3534,1919,304,2785,1170,3651,2036,421,2902,1287,3768,2153,538,3019,1404,3885,2270,655,3136
m2_first32=$(echo "$m2_prompt" | cut -d, -f1-32)
run micro/m1 $micro "tests/data/qwen3-micro-f32.gguf" --prompt 785,3,315,1000,374,11,4095,0 \
    --positions all --decode "$(ids 24 4096 1)" --greedy 16
run micro/m2 $micro "tests/data/qwen3-micro-f32.gguf" --prompt $m2_prompt --positions all --decode "$(ids 16 4096 2)" --greedy 32
ids 4090 4096 3 >"$work/long.ids"
run micro/long $micro "tests/data/qwen3-micro-f32.gguf; 4090-token prompt filling the 4096-position arena with the decode steps" \
    --prompt @"$work/long.ids" --positions every:128 --decode "$(ids 6 4096 4)"

# --- tiny: full vocabulary, f32 weights, BF16-valued embedding stored as F32 (llama.cpp's BF16
# products would round the activations; F32 storage keeps its arithmetic f32) ---
tiny_args="--preset tiny --dtype f32 --embd-dtype bf16 --embd-storage f32 --seed 0"
$make_model $tiny_args --out "$work/tiny.gguf" >/dev/null
run tiny/short5 "$work/tiny.gguf" "make_random_model $tiny_args" --prompt 785,6722,315,9625,374 --positions all \
    --decode 12095,13,1084 --greedy 32
run tiny/chat_special "$work/tiny.gguf" "make_random_model $tiny_args" \
    --prompt 151644,8948,198,2610,525,264,10950,17847,13,151645,198,151644,872,198,3838,374,279,6722,315,9625,30,151645,198,151644,77091,198 \
    --positions last --decode 151667,271,151668 --greedy 32
run tiny/long64 "$work/tiny.gguf" "make_random_model $tiny_args" \
    --prompt 641,279,7167,315,279,6366,4231,11,24198,6139,7468,304,5662,2038,11,825,7600,518,264,882,13,24885,11,438,27013,388,323,87075,1865,432,3204,311,3158,6708,518,264,5080,2188,11,323,3351,264,3175,1555,315,13027,646,1618,1119,20186,5326,304,356,22432,11002,6576,323,54809,13,576,3364,315,3162,374 \
    --positions last --decode 374,264,3364 --greedy 32

# --- RoPE scaling: the micro weights with a 2048-token context declared and YaRN or linear scaling
# by 4 over an original 512 positions, read by llama.cpp from the GGUF metadata ---
for kind in yarn linear; do
    rope_args="--preset micro --dtype f32 --seed 3 --context 2048 --rope-scaling $kind --rope-factor 4 --rope-original-context 512"
    $make_model $rope_args --out "$work/$kind.gguf" >/dev/null
    ids 1800 4096 5 >"$work/rope.ids"
    run rope/$kind "$work/$kind.gguf" "make_random_model $rope_args" --prompt @"$work/rope.ids" --positions every:64 \
        --decode "$(ids 4 4096 6)"
done

# --- formats: the micro model quantized by `qwen3 quantize`, each file evaluated by llama.cpp ---
for type in Q8_0 Q4_0 Q4_K_M Q5_K_M Q6_K F16 BF16; do
    $qwen3 quantize $micro "$work/micro-$type.gguf" $type >/dev/null 2>&1
    run formats/$type "$work/micro-$type.gguf" "qwen3 quantize tests/data/qwen3-micro-f32.gguf OUT $type" \
        --prompt "$m2_first32" --positions every:4 --decode "$(ids 8 4096 7)"
done
# BF16 weights (the usual Hugging Face release type): the values llama.cpp computes with in f32
bf16_args="--preset micro --dtype bf16 --storage f32 --seed 3"
$make_model $bf16_args --out "$work/bf16.gguf" >/dev/null
run formats/bf16_values "$work/bf16.gguf" "make_random_model $bf16_args" --prompt "$m2_first32" --positions all \
    --decode "$(ids 8 4096 7)"

# --- the Qwen3-0.6B shape, f32, seed 0 (2.4 GB; made, used and removed here) ---
$make_model --preset 0.6b --dtype f32 --seed 0 --out "$work/0.6b.gguf" >/dev/null
run 0.6b/prompt32 "$work/0.6b.gguf" "make_random_model --preset 0.6b --dtype f32 --seed 0" \
    --prompt 34253,4128,4119,7023,279,1790,3950,315,264,1467,13,28025,1105,29720,389,264,20638,13940,7460,16585,6529,311,4938,33394,11,6500,68087,323,4621,11221,13,13850 \
    --positions last --decode 374,279,87838 --greedy 16
rm -f "$work/0.6b.gguf"
