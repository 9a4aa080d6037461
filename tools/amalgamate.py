#!/usr/bin/env python3
"""Writes the single-header editions of the library, for projects that want to copy files instead of
include/: single_include/qwen3.hpp (everything include/qwen3/qwen3.hpp includes: loading, running,
tokenizing, chat) and single_include/qwen3_quantize.hpp (the quantizer of include/qwen3/quantize.hpp,
which includes "qwen3.hpp" and holds only the headers that one does not).

    python3 tools/amalgamate.py            # regenerate both
    python3 tools/amalgamate.py --check    # exit 1 when a committed file is out of date (CI)

How headers are joined, so the result compiles exactly like `#include <qwen3/qwen3.hpp>`:
  - A project header (`#include "..."` resolved from the including file's folder or from include/,
    or `#include <qwen3/...>`) is inlined in place of its include line. A header with `#pragma once`
    is inlined once; later includes of it are dropped. A header without it is inlined every time.
  - An include that sits inside `#if` (e.g. a kernel included only with AVX-512) may be skipped by
    the preprocessor, so it cannot count as "already inlined" for later includes: such a header is
    wrapped in a macro guard, and inlined again (guarded) where it is next needed. This keeps
    `#pragma once` semantics under every set of compiler flags.
  - System and third-party includes (`#include <...>`) stay where they are; a repeat of one already
    included outside any `#if` is dropped.
  - `#pragma once` lines of inlined headers are removed; the output has one, at its top.

Python 3 standard library only. The output depends only on the input files (no dates), so it can
be checked for freshness byte for byte.
"""

import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UMBRELLA = "qwen3/qwen3.hpp"
OUTPUT = "single_include/qwen3.hpp"
# The quantizer's edition: generated when include/ has its umbrella; it starts by including OUTPUT.
QUANTIZE_UMBRELLA = "qwen3/quantize.hpp"
QUANTIZE_OUTPUT = "single_include/qwen3_quantize.hpp"
# Headers deliberately outside the umbrella: the C interface's implementation defines extern "C"
# functions, so a program includes it in exactly one translation unit (see include/qwen3.h).
NOT_IN_SINGLE_HEADER = {"qwen3.h", "qwen3/c_api.hpp"}
SIZE_LIMIT = 12 * 1000 * 1000  # bytes; the generated file is committed

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
PRAGMA_ONCE_RE = re.compile(r"^\s*#\s*pragma\s+once\b")
OPEN_IF_RE = re.compile(r"^\s*#\s*(if|ifdef|ifndef)\b")
ENDIF_RE = re.compile(r"^\s*#\s*endif\b")
# What can change the lexer state within a line: comments, string/char literals (and raw strings).
LEX_TOKEN_RE = re.compile(r'//|/\*|(?:u8|u|U|L)?R"|(?:u8|u|U|L)?["\']|[0-9][0-9A-Za-z_.\']*|[A-Za-z_][A-Za-z_0-9]*')


class AmalgamateError(Exception):
    pass


class Lexer:
    """Tracks block comments and raw string literals across lines, so that only real preprocessor
    lines are treated as directives (a `#include` inside a raw string or comment is text)."""

    def __init__(self, where):
        self.where = where
        self.block_comment = False
        self.raw_end = None  # the closing `)delim"` while inside a raw string

    def at_code_start(self):
        return not self.block_comment and self.raw_end is None

    def feed(self, line, lineno):
        i, n = 0, len(line)
        while i < n:
            if self.block_comment:
                end = line.find("*/", i)
                if end < 0:
                    return
                self.block_comment, i = False, end + 2
                continue
            if self.raw_end is not None:
                end = line.find(self.raw_end, i)
                if end < 0:
                    return
                i, self.raw_end = end + len(self.raw_end), None
                continue
            if not any(c in line for c in "\"'/"):  # fast path: nothing here changes the state
                return
            m = LEX_TOKEN_RE.search(line, i)
            if not m:
                return
            tok, i = m.group(0), m.end()
            if tok == "//":
                return
            if tok == "/*":
                self.block_comment = True
            elif tok.endswith('R"'):
                paren = line.find("(", i)
                if paren < 0:
                    raise AmalgamateError(f"{self.where}:{lineno}: raw string delimiter does not fit on its line")
                self.raw_end = ")" + line[i:paren] + '"'
                i = paren + 1
            elif tok[-1] in "\"'":
                i = self._skip_quoted(line, i, tok[-1], lineno)
            # identifiers and numbers (with digit separators) are consumed whole and ignored

    def _skip_quoted(self, line, i, quote, lineno):
        n = len(line)
        while i < n:
            c = line[i]
            if c == "\\":
                i += 2
            elif c == quote:
                return i + 1
            else:
                i += 1
        if line.rstrip().endswith("\\"):
            raise AmalgamateError(f"{self.where}:{lineno}: line-continued string literal is not supported")
        raise AmalgamateError(f"{self.where}:{lineno}: unterminated {quote} literal")


class Amalgamator:
    def __init__(self, include_dir):
        self.include_dir = include_dir
        self.inlined_unconditionally = set()  # #pragma once headers certainly present from here on
        self.guarded = set()                  # #pragma once headers that have had a guarded copy
        self.system_seen = set()              # system includes present from here on
        self.stack = []
        self.out = []
        self.files = []                       # every project header inlined, in first-seen order

    def key(self, path):
        return os.path.relpath(os.path.realpath(path), os.path.realpath(self.include_dir)).replace(os.sep, "/")

    def resolve(self, kind, name, current):
        """The project header an include names, as a path relative to include/, or None."""
        candidates = []
        if kind == '"':
            candidates.append(os.path.join(os.path.dirname(current), name))
        if kind == '"' or name.startswith("qwen3/"):
            candidates.append(os.path.join(self.include_dir, name))
        for c in candidates:
            if os.path.isfile(c):
                k = self.key(c)
                if k.startswith("../"):
                    raise AmalgamateError(f"{self.key(current)}: #include {kind}{name} leaves include/")
                return k
        if kind == '"':
            raise AmalgamateError(f"{self.key(current)}: #include \"{name}\" names no file (looked in "
                                  + " and ".join(os.path.relpath(os.path.dirname(c), os.path.dirname(self.include_dir)) for c in candidates) + ")")
        return None

    def read(self, key):
        path = os.path.join(self.include_dir, key)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise AmalgamateError(f"cannot read {path}: {e.strerror}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise AmalgamateError(f"{key}: not UTF-8 (byte {e.start})")
        return text.replace("\r\n", "\n").split("\n")

    def emit_header(self, key, depth):
        """Inlines header `key` at an include site nested in `depth` levels of #if."""
        lines = self.read(key)
        once = any(PRAGMA_ONCE_RE.match(l) for l in lines)
        if key in self.stack:
            if once:
                return  # a cycle through #pragma once headers: the compiler skips it too
            raise AmalgamateError("include cycle: " + " -> ".join(self.stack + [key]))
        if once and key in self.inlined_unconditionally:
            return
        guard = once and (depth > 0 or key in self.guarded)
        if key not in self.files:
            self.files.append(key)
        macro = "QWEN3_AMALGAMATED_" + re.sub(r"[^A-Za-z0-9]", "_", key).upper()
        self.out.append(f"// ===== {key} =====")
        if guard:
            self.guarded.add(key)
            self.out += [f"#ifndef {macro}", f"#define {macro}"]
        self.stack.append(key)
        self.emit_lines(key, lines, depth)
        self.stack.pop()
        if guard:
            self.out.append(f"#endif  // {macro}")
        self.out.append(f"// ===== end of {key} =====")
        if once and depth == 0:
            self.inlined_unconditionally.add(key)

    def emit_lines(self, key, lines, depth):
        if lines and lines[-1] == "":
            lines = lines[:-1]
        lexer = Lexer(key)
        local = 0  # #if nesting inside this file
        for lineno, line in enumerate(lines, 1):
            if lexer.at_code_start() and line.lstrip().startswith("#"):
                if PRAGMA_ONCE_RE.match(line):
                    continue
                m = INCLUDE_RE.match(line)
                if m:
                    target = self.resolve(m.group(1), m.group(2), os.path.join(self.include_dir, key))
                    if target is not None:
                        self.emit_header(target, depth + local)
                        continue
                    system = m.group(1) + m.group(2)
                    if system in self.system_seen:
                        continue
                    if depth + local == 0:
                        self.system_seen.add(system)
                elif OPEN_IF_RE.match(line):
                    local += 1
                elif ENDIF_RE.match(line):
                    local -= 1
                    if local < 0:
                        raise AmalgamateError(f"{key}:{lineno}: #endif without #if")
            self.out.append(line)
            lexer.feed(line, lineno)
        if local != 0:
            raise AmalgamateError(f"{key}: {local} #if block(s) not closed at the end of the file")
        if not lexer.at_code_start():
            raise AmalgamateError(f"{key}: a comment or raw string is not closed at the end of the file")


def project_version(root):
    try:
        with open(os.path.join(root, "CMakeLists.txt"), encoding="utf-8") as f:
            m = re.search(r"project\s*\(\s*qwen3\b[^)]*\bVERSION\s+([0-9][0-9.]*)", f.read())
    except OSError:
        m = None
    if not m:
        raise AmalgamateError("cannot find `project(qwen3 VERSION x.y.z ...)` in CMakeLists.txt")
    return m.group(1)


def all_headers(include_dir):
    found = []
    for dirpath, dirnames, filenames in os.walk(include_dir):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith((".hpp", ".h", ".inc", ".ipp")):
                found.append(os.path.relpath(os.path.join(dirpath, name), include_dir).replace(os.sep, "/"))
    return found


def banner(root, umbrella, files, extra):
    return [
        f"// {os.path.basename(OUTPUT if umbrella == UMBRELLA else QUANTIZE_OUTPUT)} {project_version(root)} - "
        "single-header edition of the qwen3.hpp library.",
        "//",
        f"// GENERATED FILE - DO NOT EDIT. Made by tools/amalgamate.py from include/{umbrella} and the",
        f"// headers it includes ({len(files)} files); regenerate after changing include/ with",
        "//",
        "//     python3 tools/amalgamate.py",
        "//",
    ] + extra + ["#pragma once", ""]


def generate(root):
    """Returns (text, inlined header keys, headers under include/ that the umbrella does not reach)."""
    editions = generate_all(root)
    _, text, files = editions[0]
    return text, files, unreached_headers(root, editions)


def generate_all(root):
    """The editions: a list of (output path relative to root, text, inlined header keys)."""
    include_dir = os.path.join(root, "include")
    if not os.path.isfile(os.path.join(include_dir, UMBRELLA)):
        raise AmalgamateError(f"include/{UMBRELLA} not found under {root}")
    a = Amalgamator(include_dir)
    a.emit_header(UMBRELLA, 0)
    body = "\n".join(a.out) + "\n"
    header = banner(root, UMBRELLA, a.files, [
        "// It is the same code as `#include <qwen3/qwen3.hpp>`: use one or the other in a program, not",
        "// both. Needs C++20, xsimd (header-only) and threads (-pthread); see docs/options.md for the",
        "// compile-time options (QWEN3_SIMD_ARCH, QWEN3_KV_TYPE, QWEN3_DEFAULT_MAX_CONTEXT, ...).",
    ])
    editions = [(OUTPUT, "\n".join(header) + body, list(a.files))]
    if os.path.isfile(os.path.join(include_dir, QUANTIZE_UMBRELLA)):
        # the state after the first edition is what `#include "qwen3.hpp"` leaves behind
        first = list(a.files)
        a.out, a.files = [], []
        a.emit_header(QUANTIZE_UMBRELLA, 0)
        header = banner(root, QUANTIZE_UMBRELLA, a.files, [
            "// The quantizer (`#include <qwen3/quantize.hpp>`): keep qwen3.hpp beside it, which it includes",
            "// first; this file holds only the headers qwen3.hpp does not.",
        ])
        text = "\n".join(header) + '#include "qwen3.hpp"\n\n' + "\n".join(a.out) + "\n"
        editions.append((QUANTIZE_OUTPUT, text, first + [f for f in a.files if f not in first]))
    return editions


def unreached_headers(root, editions):
    reached = {f for _, _, files in editions for f in files}
    return [h for h in all_headers(os.path.join(root, "include")) if h not in reached and h not in NOT_IN_SINGLE_HEADER]


def check_or_write(root, output, data, files, check):
    """Returns 0 when `output` holds `data` (or was written), 1 when --check finds it stale."""
    shown = os.path.relpath(output, root) if os.path.abspath(output).startswith(os.path.abspath(root) + os.sep) else output
    if check:
        try:
            with open(output, "rb") as f:
                current = f.read()
        except OSError:
            current = None
        if current == data:
            print(f"{shown} is up to date ({len(files)} headers, {len(data)} bytes)")
            return 0
        if current is None:
            problem = "does not exist"
        else:
            old, new = current.split(b"\n"), data.split(b"\n")
            first = next((i for i in range(min(len(old), len(new))) if old[i] != new[i]), min(len(old), len(new)))
            problem = f"is out of date with include/ (first difference at line {first + 1})"
        print(f"amalgamate.py: {shown} {problem}.\nRegenerate it with `python3 tools/amalgamate.py` and commit "
              "the result.", file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    try:
        with open(output, "rb") as f:
            unchanged = f.read() == data
    except OSError:
        unchanged = False
    if not unchanged:  # leave the file (and its timestamp) alone when nothing changed
        with open(output, "wb") as f:
            f.write(data)
    print(f"{'unchanged' if unchanged else 'wrote'} {shown} ({len(files)} headers, {len(data)} bytes)")
    return 0


def main(argv):
    parser = argparse.ArgumentParser(description="Generate (or check) the single headers in single_include/ from include/.")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 when an output file differs from what would be generated")
    parser.add_argument("--root", default=ROOT, help="repository root (default: this script's parent folder)")
    parser.add_argument("--output-dir", help="folder to write or check the files in (default: ROOT/single_include)")
    args = parser.parse_args(argv)
    try:
        editions = generate_all(args.root)
    except AmalgamateError as e:
        print(f"amalgamate.py: error: {e}", file=sys.stderr)
        return 2
    for h in unreached_headers(args.root, editions):
        print(f"amalgamate.py: warning: include/{h} is not reached from include/{UMBRELLA} or include/{QUANTIZE_UMBRELLA}, "
              "so no single header contains it", file=sys.stderr)
    status = 0
    for output, text, files in editions:
        data = text.encode("utf-8")
        if len(data) > SIZE_LIMIT:
            print(f"amalgamate.py: warning: {output} is {len(data)} bytes, over the {SIZE_LIMIT} byte "
                  "budget for a committed file", file=sys.stderr)
        path = os.path.join(args.output_dir, os.path.basename(output)) if args.output_dir else os.path.join(args.root, output)
        status = max(status, check_or_write(args.root, path, data, files, args.check))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
