#!/usr/bin/env python3
"""Side-by-side speed of `qwen3 bench` and llama.cpp's `llama-bench` on the same files.

usage: bench/compare.py --qwen3 build/examples/qwen3 --llama-bench /path/to/llama-bench \\
           [--threads 1,2] [-p 512] [-n 128] [-r 3] MODEL.gguf [MODEL.gguf ...]

For each model and thread count it runs both programs alternately (qwen3, llama.cpp, qwen3, ...,
`--rounds` times) so that both see the same machine state, keeps each program's best round, and
prints a Markdown table: tokens/s of both, the ratio, and for generation the GB/s of weights read
and the share of the memory bandwidth measured in the same session (`qwen3 bench --bandwidth`).
llama.cpp is not built or fetched by this script: pass the path of a llama-bench you built.
"""
import argparse
import json
import subprocess
import sys


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out.stdout


def qwen3_bench(exe, model, threads, p, n, r, extra):
    rows = {}
    for line in run([exe, "bench", model, "-p", str(p), "-n", str(n), "-t", str(threads), "-r", str(r), "--json"] + extra).splitlines():
        line = line.strip()
        if line.startswith("{"):
            j = json.loads(line)
            rows[j["test"]] = j
    return rows


def llama_bench(exe, model, threads, p, n, r):
    rows = {}
    data = json.loads(run([exe, "-m", model, "-p", str(p), "-n", str(n), "-t", str(threads), "-r", str(r), "-o", "json"]))
    for j in data:
        test = f"pp{j['n_prompt']}" if j["n_prompt"] > 0 else f"tg{j['n_gen']}"
        rows[test] = j
    return rows


def bandwidth(exe, threads):
    for line in run([exe, "bench", "--bandwidth", "-t", str(threads), "--json"]).splitlines():
        if line.startswith("{"):
            return json.loads(line)["gb_per_s"]
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qwen3", required=True)
    ap.add_argument("--llama-bench", required=True)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=3, help="repeats inside each program run")
    ap.add_argument("--rounds", type=int, default=2, help="alternating runs of both programs")
    ap.add_argument("--bf16-products", action="store_true", help="also run qwen3 with --bf16-products for BF16 files")
    ap.add_argument("models", nargs="+")
    a = ap.parse_args()

    print("| model | format | threads | test | qwen3 t/s | llama.cpp t/s | ratio | qwen3 GB/s | bandwidth GB/s | share |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for threads in [int(t) for t in a.threads.split(",")]:
        bw = bandwidth(a.qwen3, threads)
        for model in a.models:
            best_q, best_l = {}, {}
            extra = []
            for _ in range(a.rounds):
                for k, v in qwen3_bench(a.qwen3, model, threads, a.p, a.n, a.r, extra).items():
                    if k not in best_q or v["tokens_per_s"] > best_q[k]["tokens_per_s"]:
                        best_q[k] = v
                for k, v in llama_bench(a.llama_bench, model, threads, a.p, a.n, a.r).items():
                    if k not in best_l or v["avg_ts"] > best_l[k]["avg_ts"]:
                        best_l[k] = v
            for test in sorted(best_q, key=lambda t: t[:2] != "pp"):
                q = best_q[test]
                l = best_l.get(test)
                lt = l["avg_ts"] if l else float("nan")
                gbs = q.get("weights_gb_per_s")
                share = f"{gbs / bw * 100:.0f}%" if gbs and bw else ""
                print(f"| {q['variant']} | {q['format']} | {threads} | {test} | {q['tokens_per_s']:.2f} | {lt:.2f} | "
                      f"{q['tokens_per_s'] / lt:.2f}x | {gbs or '':.4} | {bw or '':.4} | {share} |".replace("| nan |", "| |"))
            if a.bf16_products and best_q.get(f"pp{a.p}", {}).get("format") == "BF16":
                fast = max((qwen3_bench(a.qwen3, model, threads, a.p, 0, a.r, ["--bf16-products"]) for _ in range(a.rounds)),
                           key=lambda rows: rows[f"pp{a.p}"]["tokens_per_s"])[f"pp{a.p}"]
                lt = best_l[f"pp{a.p}"]["avg_ts"]
                print(f"| {fast['variant']} | BF16 (bf16 products) | {threads} | pp{a.p} | {fast['tokens_per_s']:.2f} | {lt:.2f} | "
                      f"{fast['tokens_per_s'] / lt:.2f}x | | | |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
