#!/usr/bin/env python3
"""Checks that every header under include/qwen3/ includes only headers of its own layer or below
(docs/architecture.md draws the same map). Exit 0 when the floors hold, 1 naming each include that
runs upward or a header that no layer names.

    python3 tools/check_layers.py

Python 3 standard library only.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCLUDE = os.path.join(ROOT, "include")

# Bottom to top; a header may include headers of its layer and of the layers below it. A pattern
# ending in "/" names a folder and everything in it.
LAYERS = [
    ("foundation", ["qwen3/error.hpp", "qwen3/config.hpp", "qwen3/detail/"]),
    ("data", ["qwen3/tensor.hpp", "qwen3/model_params.hpp", "qwen3/kv_types.hpp", "qwen3/thread_pool.hpp",
              "qwen3/quant/"]),
    ("files and kernels", ["qwen3/format/", "qwen3/kernels/"]),
    ("model parts and text", ["qwen3/weights.hpp", "qwen3/kv_arena.hpp", "qwen3/kv_pool.hpp",
                              "qwen3/prefix_cache.hpp", "qwen3/sampler.hpp", "qwen3/tokenizer/",
                              "qwen3/tokenizer.hpp", "qwen3/chat/", "qwen3/chat.hpp", "qwen3/grammar/",
                              "qwen3/grammar.hpp"]),
    ("model", ["qwen3/model.hpp", "qwen3/variant.hpp"]),
    ("generation", ["qwen3/generation.hpp", "qwen3/engine.hpp"]),
    ("umbrellas and tools", ["qwen3/qwen3.hpp", "qwen3/quantize.hpp", "qwen3/quantize/", "qwen3/c_api.hpp",
                             "qwen3.h"]),
]
# Folders of one layer that must not include each other (formats know no kernels and the reverse).
APART = [("qwen3/format/", "qwen3/kernels/"), ("qwen3/tokenizer/", "qwen3/chat/")]

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def layer_of(header):
    for rank, (_, patterns) in enumerate(LAYERS):
        for p in patterns:
            if header == p or (p.endswith("/") and header.startswith(p)):
                return rank
    return None


def includes(header):
    path = os.path.join(INCLUDE, header)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for kind, name in INCLUDE_RE.findall(text):
        candidates = []
        if kind == '"':
            candidates.append(os.path.normpath(os.path.join(os.path.dirname(header), name)))
        if name.startswith("qwen3/") or name == "qwen3.h" or kind == '"':
            candidates.append(os.path.normpath(name))
        for c in candidates:
            if os.path.isfile(os.path.join(INCLUDE, c)):
                yield c.replace(os.sep, "/")
                break


def main():
    headers = []
    for dirpath, _, filenames in os.walk(INCLUDE):
        for n in filenames:
            if n.endswith((".hpp", ".h")):
                headers.append(os.path.relpath(os.path.join(dirpath, n), INCLUDE).replace(os.sep, "/"))
    problems = []
    for h in sorted(headers):
        rank = layer_of(h)
        if rank is None:
            problems.append(f"include/{h}: in no layer of tools/check_layers.py (add it there and to docs/architecture.md)")
            continue
        for target in includes(h):
            t_rank = layer_of(target)
            if t_rank is not None and t_rank > rank:
                problems.append(f"include/{h} ({LAYERS[rank][0]}) includes include/{target}, "
                                f"a higher layer ({LAYERS[t_rank][0]})")
            for a, b in APART:
                if (h.startswith(a) and target.startswith(b)) or (h.startswith(b) and target.startswith(a)):
                    problems.append(f"include/{h} includes include/{target}: {a} and {b} stay apart")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print(f"check_layers: {len(headers)} headers, every include points to the same layer or below")
    return 0


if __name__ == "__main__":
    sys.exit(main())
