#!/usr/bin/env python3
"""Tests of tools/amalgamate.py on small synthetic header trees. The reference is the C++ compiler:
a program built from the generated single header must print exactly what the same program built from
the separate headers prints, under each set of -D flags (so conditional includes, headers without
`#pragma once` and include cycles are joined the way the preprocessor would see them).

    CXX=g++ python3 tests/amalgamate/test_amalgamate.py
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
import amalgamate  # noqa: E402

CXX = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")


class Tree:
    """A repository root with CMakeLists.txt and include/ holding the given headers."""

    def __init__(self, headers):
        self.root = tempfile.mkdtemp(prefix="amalgamate-test-")
        self.write("CMakeLists.txt", "project(qwen3 VERSION 1.2.3 LANGUAGES CXX)\n")
        for path, text in headers.items():
            self.write("include/" + path, text)

    def write(self, path, text):
        full = os.path.join(self.root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)

    def amalgamate(self, *args):
        out = subprocess.run([sys.executable, os.path.join(HERE, "..", "..", "tools", "amalgamate.py"),
                              "--root", self.root, *args], capture_output=True, text=True)
        return out.returncode, out.stdout + out.stderr

    def program_output(self, main, include_dir, flags):
        src = os.path.join(self.root, "main.cpp")
        exe = os.path.join(self.root, "main")
        with open(src, "w", encoding="utf-8") as f:
            f.write(main)
        built = subprocess.run([CXX, "-std=c++20", *flags, "-I", include_dir, src, "-o", exe], capture_output=True, text=True)
        if built.returncode != 0:
            raise AssertionError(f"{CXX} {' '.join(flags)} -I {include_dir} failed:\n{built.stderr}")
        return subprocess.run([exe], check=True, capture_output=True, text=True).stdout

    def close(self):
        shutil.rmtree(self.root, ignore_errors=True)


class SameAsSeparateHeaders(unittest.TestCase):
    def check(self, headers, body, flag_sets=((),)):
        self.assertIsNotNone(CXX, "no C++ compiler: set CXX")
        tree = Tree(headers)
        try:
            rc, log = tree.amalgamate()
            self.assertEqual(rc, 0, log)
            for flags in flag_sets:
                multi = tree.program_output("#include <qwen3/qwen3.hpp>\n" + body, os.path.join(tree.root, "include"), flags)
                single = tree.program_output("#include <qwen3.hpp>\n" + body, os.path.join(tree.root, "single_include"), flags)
                self.assertEqual(single, multi, f"flags {flags}")
                self.assertTrue(multi)
            with open(os.path.join(tree.root, "single_include", "qwen3.hpp"), encoding="utf-8") as f:
                return f.read()
        finally:
            tree.close()

    def test_header_first_included_under_if_is_still_there_when_the_if_is_false(self):
        text = self.check({
            "qwen3/qwen3.hpp": '#pragma once\n#include "fast.hpp"\n#include "blocks.hpp"\n',
            "qwen3/fast.hpp": '#pragma once\n#if defined(FAST)\n#include "blocks.hpp"\ninline int fast() { return block() + 1; }\n#endif\n',
            "qwen3/blocks.hpp": "#pragma once\n#include <cstdio>\ninline int block() { return 41; }\n",
        }, '#include <cstdio>\nint main() {\n#ifdef FAST\n std::printf("%d\\n", fast());\n#endif\n std::printf("%d\\n", block());\n}\n',
            flag_sets=((), ("-DFAST",)))
        self.assertEqual(text.count("#pragma once"), 1)

    def test_header_without_pragma_once_is_inlined_at_every_include(self):
        self.check({
            "qwen3/qwen3.hpp": '#pragma once\n#define ITEM(x) inline int first_##x() { return x; }\n#include "items.inc"\n'
                               '#undef ITEM\n#define ITEM(x) inline int second_##x() { return 2 * x; }\n#include "items.inc"\n#undef ITEM\n',
            "qwen3/items.inc": "ITEM(3)\nITEM(5)\n",
        }, '#include <cstdio>\nint main() { std::printf("%d %d %d\\n", first_3(), second_5(), first_5()); }\n')

    def test_directives_inside_raw_strings_and_comments_are_text(self):
        self.check({
            "qwen3/qwen3.hpp": '#pragma once\n#include "text.hpp"\n',
            "qwen3/text.hpp": '#pragma once\n/* a comment\n#include "missing.hpp"\n*/\n'
                              'inline const char* text() { return R"x(line\n#include "missing.hpp"\n#if 1\n)x"; }\n'
                              "inline int quote() { return '\"' + 1'000; }\n",
        }, '#include <cstdio>\nint main() { std::printf("%s|%d\\n", text(), quote()); }\n')

    def test_angle_includes_of_project_headers_parent_paths_and_cycles(self):
        self.check({
            "qwen3/qwen3.hpp": '#pragma once\n#include <qwen3/a/a.hpp>\n#include "b.hpp"\n',
            "qwen3/a/a.hpp": '#pragma once\n#include "../b.hpp"\ninline int a() { return b() + 1; }\n',
            "qwen3/b.hpp": '#pragma once\n#include "a/a.hpp"\ninline int b() { return 7; }\n',
        }, '#include <cstdio>\nint main() { std::printf("%d %d\\n", a(), b()); }\n')

    def test_quantizer_edition_includes_qwen3_hpp_and_holds_only_what_it_lacks(self):
        tree = Tree({
            "qwen3/qwen3.hpp": '#pragma once\n#include "core.hpp"\n',
            "qwen3/core.hpp": "#pragma once\n#include <cstdio>\ninline int core() { return 40; }\n",
            "qwen3/quantize.hpp": '#pragma once\n#include "core.hpp"\n#include "extra.hpp"\n',
            "qwen3/extra.hpp": "#pragma once\n#include <cstdio>\ninline int extra() { return core() + 2; }\n",
        })
        body = '#include <cstdio>\nint main() { std::printf("%d %d\\n", core(), extra()); }\n'
        try:
            rc, log = tree.amalgamate()
            self.assertEqual(rc, 0, log)
            multi = tree.program_output("#include <qwen3/quantize.hpp>\n#include <qwen3/qwen3.hpp>\n" + body,
                                        os.path.join(tree.root, "include"), ())
            single = tree.program_output("#include <qwen3_quantize.hpp>\n#include <qwen3.hpp>\n" + body,
                                         os.path.join(tree.root, "single_include"), ())
            self.assertEqual(single, multi)
            self.assertEqual(multi, "40 42\n")
            with open(os.path.join(tree.root, "single_include", "qwen3_quantize.hpp"), encoding="utf-8") as f:
                text = f.read()
            self.assertIn('#include "qwen3.hpp"', text)
            self.assertNotIn("inline int core", text)
            self.assertNotIn("#include <cstdio>", text)
            self.assertIn("inline int extra", text)
        finally:
            tree.close()


class Messages(unittest.TestCase):
    def test_check_reports_a_stale_or_missing_file_and_accepts_a_fresh_one(self):
        tree = Tree({"qwen3/qwen3.hpp": "#pragma once\ninline int one() { return 1; }\n"})
        try:
            rc, log = tree.amalgamate("--check")
            self.assertEqual(rc, 1)
            self.assertIn("does not exist", log)
            self.assertEqual(tree.amalgamate()[0], 0)
            rc, log = tree.amalgamate("--check")
            self.assertEqual(rc, 0, log)
            tree.write("include/qwen3/qwen3.hpp", "#pragma once\ninline int one() { return 2; }\n")
            rc, log = tree.amalgamate("--check")
            self.assertEqual(rc, 1)
            self.assertIn("out of date", log)
            self.assertIn("python3 tools/amalgamate.py", log)
        finally:
            tree.close()

    def test_output_names_the_version_and_does_not_change_between_runs(self):
        tree = Tree({"qwen3/qwen3.hpp": "#pragma once\n#include <vector>\n#include <vector>\n"})
        try:
            first, _, _ = amalgamate.generate(tree.root)
            second, _, _ = amalgamate.generate(tree.root)
            self.assertEqual(first, second)
            self.assertIn("1.2.3", first.split("\n")[0])
            self.assertIn("DO NOT EDIT", first)
            self.assertEqual(first.count("#include <vector>"), 1)
        finally:
            tree.close()

    def test_errors_name_the_file(self):
        cases = [
            ({"qwen3/qwen3.hpp": '#pragma once\n#include "missing.hpp"\n'}, "qwen3/qwen3.hpp", "names no file"),
            ({"qwen3/qwen3.hpp": "#pragma once\n#if X\n"}, "qwen3/qwen3.hpp", "not closed"),
            ({"qwen3/qwen3.hpp": '#pragma once\n#include "loop.inc"\n', "qwen3/loop.inc": '#include "loop.inc"\n'},
             "loop.inc", "include cycle"),
            ({"qwen3/qwen3.hpp": "#pragma once\nconst char* s = R\"x(never closed\n"}, "qwen3/qwen3.hpp", "not closed"),
        ]
        for headers, where, what in cases:
            tree = Tree(headers)
            try:
                rc, log = tree.amalgamate()
                self.assertEqual(rc, 2, log)
                self.assertIn(where, log)
                self.assertIn(what, log)
            finally:
                tree.close()

    def test_headers_the_umbrella_does_not_reach_are_named(self):
        tree = Tree({"qwen3/qwen3.hpp": "#pragma once\n", "qwen3/extra.hpp": "#pragma once\n"})
        try:
            rc, log = tree.amalgamate()
            self.assertEqual(rc, 0)
            self.assertIn("include/qwen3/extra.hpp is not reached", log)
        finally:
            tree.close()


if __name__ == "__main__":
    unittest.main()
