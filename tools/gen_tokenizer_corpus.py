#!/usr/bin/env python3
"""Writes the two text corpora bench/bench_tokenizer reads, the same bytes on every machine.

    python3 tools/gen_tokenizer_corpus.py OUT_DIR [MEGABYTES]   # OUT_DIR/english.txt, OUT_DIR/mixed.txt

english.txt: sentences of English words (from tests/data/tokenizer/tokenizer.json's vocabulary, so the
file needs nothing else), with punctuation, numbers and paragraphs. mixed.txt: the same prose
interleaved with Chinese, Russian, Arabic, emoji, source code and long digit runs, which exercise the
pre-tokenizer's other branches. Python 3 standard library only; seeded, so the output is fixed.
"""
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.path.join(HERE, "..", "tests", "data", "tokenizer", "tokenizer.json")


def english_words():
    """Lower-case ASCII words of 3-12 letters that the vocabulary holds with a leading space."""
    with open(TOKENIZER, encoding="utf-8") as f:
        vocab = json.load(f)["model"]["vocab"]
    words = sorted({t[1:] for t in vocab if t.startswith("\u0120") and t[1:].isascii() and t[1:].isalpha()
                    and t[1:].islower() and 3 <= len(t) - 1 <= 12})
    return words


def sentences(rng, words, size):
    out, n = [], 0
    while n < size:
        s = " ".join(rng.choice(words) for _ in range(rng.randint(4, 22)))
        s = s[0].upper() + s[1:]
        if rng.random() < 0.15:
            s += f" {rng.randint(0, 10 ** rng.randint(1, 8))}"
        s += rng.choice([".", ".", ".", ",", "?", "!", ";", ":"])
        s += "\n\n" if rng.random() < 0.08 else " "
        out.append(s)
        n += len(s.encode("utf-8"))
    return "".join(out)


def foreign(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return "".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(rng.randint(8, 60))) + "。"
    if kind == 1:
        return " ".join("".join(chr(rng.randrange(0x430, 0x450)) for _ in range(rng.randint(2, 10))) for _ in range(rng.randint(3, 12))) + "."
    if kind == 2:
        return " ".join("".join(chr(rng.randrange(0x627, 0x64B)) for _ in range(rng.randint(2, 8))) for _ in range(rng.randint(3, 10)))
    if kind == 3:
        return "".join(chr(rng.randrange(0x1F600, 0x1F650)) for _ in range(rng.randint(1, 6)))
    if kind == 4:
        name = rng.choice(["total", "count", "items", "value", "buffer", "index"])
        return rng.choice([f"for (int i = 0; i < {name}.size(); ++i) {{\n    {name}[i] *= 2;\n}}",
                           f"def {name}(x):\n    return x ** 2 + {rng.randint(1, 99)}",
                           f"SELECT {name} FROM t WHERE id = {rng.randint(1, 9999)};",
                           f"const {name} = await fetch(url);\tif (!{name}.ok) throw new Error();"])
    return str(rng.randint(10 ** 9, 10 ** 15)) + " " + "".join(rng.choice("0123456789") for _ in range(rng.randint(20, 80)))


def mixed(rng, words, size):
    out, n = [], 0
    while n < size:
        s = sentences(rng, words, rng.randint(100, 600)) if rng.random() < 0.5 else foreign(rng) + rng.choice([" ", "\n"])
        out.append(s)
        n += len(s.encode("utf-8"))
    return "".join(out)


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    folder, megabytes = sys.argv[1], float(sys.argv[2]) if len(sys.argv) == 3 else 10.0
    os.makedirs(folder, exist_ok=True)
    words = english_words()
    size = int(megabytes * 1_000_000)
    for name, make in (("english.txt", sentences), ("mixed.txt", mixed)):
        text = make(random.Random(20261206), words, size)
        with open(os.path.join(folder, name), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        print(f"wrote {os.path.join(folder, name)} ({len(text.encode('utf-8'))} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
