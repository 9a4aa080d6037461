#!/usr/bin/env python3
"""Constrained generation checked by implementations other than ours: `qwen3 generate` samples (at
temperature 1, several seeds) from the random-weight tiny model (full vocabulary) under each JSON
Schema of tests/data/grammar/schemas and each llama.cpp grammar of tests/data/grammar/gbnf; every
output that ends its turn must parse as JSON and validate with python3-jsonschema, or be accepted by
the Lark recogniser (gbnf_lark.py). An output may stop only at its end of turn or at the token
limit. Exit status 1 on any failure, naming it.

    QWEN3_TOOL=build/examples/qwen3 QWEN3_MAKE_MODEL=build/tests/make_random_model \\
    QWEN3_TEST_DATA=tests/data python3 tests/grammar/check_generated.py [--seeds 2] [--tokens 256] [--jobs 2]

Needs Debian's python3-jsonschema and python3-lark (run it with /usr/bin/python3), and Node for
ECMAScript patterns (check_schema_corpus.py).
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.append("/usr/lib/python3/dist-packages")  # Debian's packages under another interpreter

import jsonschema  # noqa: E402
import check_schema_corpus as corpus  # noqa: E402  (RFC 3339 formats, ECMAScript patterns through Node)
import gbnf_lark  # noqa: E402

STOP = re.compile(r"stop: ([a-z ]+)\]")


def generate(tool, model, flag, path, seed, tokens):
    """The text and stop reason of one constrained generation."""
    run = subprocess.run([tool, "generate", model, "-p", "Output:", flag, path, "--temp", "1", "--top-k", "0", "--top-p", "1",
                          "--seed", str(seed), "-n", str(tokens), "-t", "1"], capture_output=True, timeout=300)
    if run.returncode != 0:
        raise RuntimeError(f"{flag} {path} seed {seed}: exit {run.returncode}: {run.stderr.decode(errors='replace')}")
    stop = STOP.search(run.stderr.decode(errors="replace"))
    return run.stdout.decode("utf-8"), stop.group(1) if stop else "?"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--jobs", type=int, default=2, help="generations run at a time")
    args = parser.parse_args()
    tool, make_model, data = (os.environ.get(k) for k in ("QWEN3_TOOL", "QWEN3_MAKE_MODEL", "QWEN3_TEST_DATA"))
    if not (tool and make_model and data):
        sys.exit("QWEN3_TOOL, QWEN3_MAKE_MODEL and QWEN3_TEST_DATA must be set")

    failures, outcomes = [], []
    node = shutil.which("node")
    regex = corpus.EcmaScriptRegex(node) if node else None

    jobs = []  # (label, seed, future of (text, stop), check)

    def sample(label, flag, path, model, check):
        """Queues one constrained generation per seed; main() checks each output that ended its turn."""
        for seed in range(1, args.seeds + 1):
            jobs.append((label, seed, pool.submit(generate, tool, model, flag, path, seed, args.tokens), check))

    def validates(validator):
        def check(text):
            try:
                validator.validate(json.loads(text))
            except (ValueError, jsonschema.ValidationError) as e:
                return str(e).splitlines()[0]
            return None
        return check

    # one thread each: two generations at a time keep both cores busy
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        model = os.path.join(tmp, "tiny.gguf")
        subprocess.run([make_model, "--preset", "tiny", "--dtype", "bf16", "--seed", "11", "--out", model,
                        "--tokenizer", os.path.join(data, "tokenizer", "tokenizer.json"), "--name", "tiny"],
                       check=True, capture_output=True)
        schema_dir = os.path.join(data, "grammar", "schemas")
        for name in sorted(n for n in os.listdir(schema_dir) if n.endswith(".json")):
            schema = json.load(open(os.path.join(schema_dir, name), encoding="utf-8"))["schema"]
            path = os.path.join(tmp, name)
            with open(path, "w", encoding="utf-8") as f:
                json.dump(schema, f)
            validator = corpus.validator_class(schema, regex)(schema, format_checker=corpus.format_checker())
            sample(name, "--json-schema", path, model, validates(validator))
        gbnf_dir = os.path.join(data, "grammar", "gbnf")
        for name in sorted(n for n in os.listdir(gbnf_dir) if n.endswith(".gbnf")):
            path = os.path.join(gbnf_dir, name)
            grammar = open(path, encoding="utf-8").read()
            sample(name, "--grammar", path, model, lambda text, g=grammar: None if gbnf_lark.accepts(g, text) else "Lark rejects it")
        for label, seed, future, check in jobs:
            text, stop = future.result()
            outcomes.append(stop)
            if stop == "token limit":
                continue
            problem = f"stopped by {stop!r}" if stop != "end of turn" else check(text)
            if problem:
                failures.append(f"{label} seed {seed}: {text!r}: {problem}")

    if regex:
        regex.close()
    total, complete = len(outcomes), outcomes.count("end of turn")
    print(f"check_generated: {total} generations, {complete} ended their turn and were checked, {len(failures)} failed")
    for f in failures:
        print("  FAIL " + f)
    # most outputs must end on their own, or the check would check little
    if complete * 3 < total:
        print(f"  FAIL only {complete} of {total} outputs ended their turn")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
