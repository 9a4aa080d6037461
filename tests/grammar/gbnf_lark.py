#!/usr/bin/env python3
r"""An independent recogniser for llama.cpp GBNF grammars, built on Lark's Earley parser.

GBNF text is parsed here (not by the C++ engine) into a small tree, checked (undefined
rules, missing root, left recursion), and translated into a Lark grammar whose terminals
all have a fixed length (one literal string or one code point), so Lark's dynamic lexer
cannot change the language by tokenising differently. Matching is over code points.

    accepts(gbnf_text, input_text, root="root") -> bool

CLI:
    gbnf_lark.py GRAMMAR.gbnf < inputs.jsonl   one verdict (true/false) per input line;
                                               a line is a JSON string or {"input": ...}
    gbnf_lark.py --check CASES.jsonl           lines {"grammar": "x.gbnf", "input": ...,
                                               "accepted": bool}; exit 1 on any mismatch.
                                               {"gbnf": TEXT, ...} gives the grammar inline.
Exit status 2: a grammar this tool cannot translate (GbnfError) or bad usage.
Needs Lark (Debian: apt-get install python3-lark).

Syntax follows llama.cpp's parser: one rule per line, line breaks allowed inside
parentheses and after |, # comments, escapes \n \r \t \\ \" \[ \] \xHH \uHHHH
\UHHHHHHHH in strings and classes, [^...] classes, ., grouping, * + ? {m} {m,} {m,n}.
Where llama.cpp is lax this tool stops with an error instead: token references
(<think>, <[id]>, !<...>, which need a vocabulary), a rule defined twice, an empty class
[] or reversed range [z-a], counts above 2000. Left recursion is found through every
nullable item (llama.cpp looks only at directly empty alternatives); '_' is allowed in
rule names (llama.cpp does not).
"""
import argparse
import json
import os
import sys

try:
    import lark
except ImportError:  # Debian's python3-lark, when python3 is another interpreter (pyenv)
    sys.path.append("/usr/lib/python3/dist-packages")
    import lark

MAX_REPEAT = 2000  # llama.cpp refuses larger minimums (and reads larger maximums as "no max")
# llama.cpp itself allows only [a-zA-Z0-9-] in rule names; '_' is accepted here too.
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "[": "[", "]": "]"}
HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
DEFAULT_GRAMMAR_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   "..", "data", "grammar", "gbnf")


class GbnfError(Exception):
    """The GBNF text is malformed, or uses something this recogniser cannot translate."""


# ---------------------------------------------------------------------------------------
# GBNF parser. Tree nodes are tuples:
#   ("alt", [seq, ...])  where a seq is a list of nodes
#   ("lit", "text")      ("cls", negated, [(lo, hi), ...])  ("any",)
#   ("ref", "name")      ("rep", node, min, max_or_None)
# ---------------------------------------------------------------------------------------

class _Parser:
    def __init__(self, text):
        self.text = text
        self.pos = 0
        self.rules = {}  # name -> ("alt", ...), in definition order

    def peek(self, k=0):
        i = self.pos + k
        return self.text[i] if i < len(self.text) else ""

    def at(self, chars):
        """Whether the next character is one of chars (never at the end)."""
        return self.peek() != "" and self.peek() in chars

    def fail(self, message):
        line = self.text.count("\n", 0, self.pos) + 1
        column = self.pos - (self.text.rfind("\n", 0, self.pos) + 1) + 1
        raise GbnfError(f"{message} at line {line}, column {column}")

    def skip_space(self, newlines):
        """Skips blanks and # comments; line breaks too when `newlines`."""
        while self.peek():
            c = self.peek()
            if c in " \t" or (newlines and c in "\r\n"):
                self.pos += 1
            elif c == "#":
                while self.peek() and not self.at("\r\n"):
                    self.pos += 1
            else:
                break

    def parse_grammar(self):
        self.skip_space(True)
        while self.peek():
            self.parse_rule()
        return self.rules

    def parse_rule(self):
        name = self.parse_name()
        self.skip_space(False)
        if not self.text.startswith("::=", self.pos):
            self.fail("expected '::='")
        self.pos += 3
        self.skip_space(True)
        body = self.parse_alternates(nested=False)
        if self.text.startswith("\r\n", self.pos):
            self.pos += 2
        elif self.at("\r\n"):
            self.pos += 1
        elif self.peek():
            self.fail(f"expected end of line, found {self.peek()!r}")
        self.skip_space(True)
        if name in self.rules:
            raise GbnfError(f"rule '{name}' defined twice")
        self.rules[name] = body

    def parse_name(self):
        start = self.pos
        while self.at(NAME_CHARS):
            self.pos += 1
        if self.pos == start:
            self.fail("expected a rule name")
        return self.text[start:self.pos]

    def parse_alternates(self, nested):
        seqs = [self.parse_sequence(nested)]
        while self.peek() == "|":
            self.pos += 1
            self.skip_space(True)  # a line break after | continues the rule
            seqs.append(self.parse_sequence(nested))
        return ("alt", seqs)

    def parse_sequence(self, nested):
        """Items up to |, ), a line break outside parentheses, or anything unexpected."""
        seq = []
        while self.peek():
            c = self.peek()
            if c == '"':
                seq.append(self.parse_string())
            elif c == "[":
                seq.append(self.parse_class())
            elif c in NAME_CHARS:
                seq.append(("ref", self.parse_name()))
            elif c == "(":
                self.pos += 1
                self.skip_space(True)
                body = self.parse_alternates(nested=True)
                if self.peek() != ")":
                    self.fail("expected ')'")
                self.pos += 1
                seq.append(body)
            elif c == ".":
                self.pos += 1
                seq.append(("any",))
            elif c in "*+?{":
                if not seq:
                    self.fail(f"'{c}' has nothing to repeat")
                lo, hi = self.parse_repetition(nested)
                seq[-1] = ("rep", seq[-1], lo, hi)
            elif c in "<!":
                self.fail("token references (<...>, !<...>) need a vocabulary; not supported")
            else:
                break
            self.skip_space(nested)
        return seq

    def parse_repetition(self, nested):
        c = self.peek()
        self.pos += 1
        if c != "{":
            return {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
        self.skip_space(nested)
        lo = self.parse_int()
        hi = lo
        self.skip_space(nested)
        if self.peek() == ",":
            self.pos += 1
            self.skip_space(nested)
            hi = self.parse_int() if self.at("0123456789") else None
            self.skip_space(nested)
        if self.peek() != "}":
            self.fail("expected '}' or ','")
        self.pos += 1
        if hi is not None and hi < lo:
            self.fail(f"repetition {{{lo},{hi}}} has max below min")
        if max(lo, hi or 0) > MAX_REPEAT:
            self.fail(f"repetition count above {MAX_REPEAT}")
        return lo, hi

    def parse_int(self):
        start = self.pos
        while self.at("0123456789"):
            self.pos += 1
        if self.pos == start:
            self.fail("expected an integer")
        return int(self.text[start:self.pos])

    def parse_char(self):
        """One code point of a string or class, with its escape decoded."""
        c = self.peek()
        if c != "\\":
            self.pos += 1
            return c
        e = self.peek(1)
        if e in SIMPLE_ESCAPES:
            self.pos += 2
            return SIMPLE_ESCAPES[e]
        if e and e in HEX_ESCAPES:
            width = HEX_ESCAPES[e]
            digits = self.text[self.pos + 2:self.pos + 2 + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                self.fail(f"expected {width} hex digits after \\{e}")
            value = int(digits, 16)
            if value > 0x10FFFF:
                self.fail(f"code point {value:#x} is beyond Unicode")
            self.pos += 2 + width
            return chr(value)
        self.fail(f"unknown escape \\{e}" if e else "input ends inside an escape")

    def parse_string(self):
        self.pos += 1
        chars = []
        while self.peek() != '"':
            if not self.peek():
                self.fail("unterminated string literal")
            chars.append(self.parse_char())
        self.pos += 1
        return ("lit", "".join(chars))

    def parse_class(self):
        self.pos += 1
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        ranges = []
        while self.peek() != "]":
            if not self.peek():
                self.fail("unterminated character class")
            lo = self.parse_char()
            hi = lo
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.pos += 1
                hi = self.parse_char()
            if hi < lo:
                self.fail(f"empty range {lo!r}-{hi!r} in character class")
            ranges.append((lo, hi))
        self.pos += 1
        if not ranges:
            self.fail("empty character class")
        return ("cls", negated, ranges)


def _refs(node):
    """Rule names referenced anywhere under node."""
    kind = node[0]
    if kind == "ref":
        yield node[1]
    elif kind == "alt":
        for seq in node[1]:
            for item in seq:
                yield from _refs(item)
    elif kind == "rep":
        yield from _refs(node[1])


def _nullable(node, nullable_rules):
    kind = node[0]
    if kind == "lit":
        return node[1] == ""
    if kind == "ref":
        return node[1] in nullable_rules
    if kind == "alt":
        return any(all(_nullable(i, nullable_rules) for i in seq) for seq in node[1])
    if kind == "rep":
        return node[2] == 0 or _nullable(node[1], nullable_rules)
    return False  # cls, any


def _leftmost_refs(node, nullable_rules):
    """Rule names that can be reached without consuming input first."""
    kind = node[0]
    if kind == "ref":
        yield node[1]
    elif kind == "rep":
        yield from _leftmost_refs(node[1], nullable_rules)
    elif kind == "alt":
        for seq in node[1]:
            for item in seq:
                yield from _leftmost_refs(item, nullable_rules)
                if not _nullable(item, nullable_rules):
                    break


def check_rules(rules, root):
    for name, body in rules.items():
        for ref in _refs(body):
            if ref not in rules:
                raise GbnfError(f"rule '{name}' refers to undefined rule '{ref}'")
    if root not in rules:
        raise GbnfError(f"no '{root}' rule")
    nullable_rules = set()
    changed = True
    while changed:
        changed = False
        for name, body in rules.items():
            if name not in nullable_rules and _nullable(body, nullable_rules):
                nullable_rules.add(name)
                changed = True
    left = {name: set(_leftmost_refs(body, nullable_rules)) for name, body in rules.items()}

    def visit(name, path):
        if name in path:
            cycle = path[path.index(name):] + [name]
            raise GbnfError("left recursion: " + " -> ".join(cycle))
        if name in done:
            return
        for nxt in sorted(left[name]):
            visit(nxt, path + [name])
        done.add(name)

    done = set()
    for name in rules:
        visit(name, [])


def parse_gbnf(text, root="root"):
    """GBNF text -> {rule name: tree}; raises GbnfError."""
    rules = _Parser(text).parse_grammar()
    check_rules(rules, root)
    return rules


# ---------------------------------------------------------------------------------------
# Translation to Lark
# ---------------------------------------------------------------------------------------

def _regex_char(c):
    """c written for a /regex/ in a Lark grammar. Lark evaluates \\uXXXX escapes before
    handing the pattern to `re`, so those are used only for characters that are not
    special to `re`; ASCII punctuation is backslash-escaped instead."""
    if c.isascii() and c.isalnum():
        return c
    if c == "\\":
        return "\\\\"
    if " " <= c <= "~":
        return "\\" + c
    if ord(c) <= 0xFFFF:
        return f"\\u{ord(c):04x}"
    return f"\\U{ord(c):08x}"


def _regex_class(negated, ranges):
    body = "".join(_regex_char(lo) + ("" if lo == hi else "-" + _regex_char(hi))
                   for lo, hi in ranges)
    return "/[" + ("^" if negated else "") + body + "]/"


class _Translator:
    def __init__(self, rules):
        self.names = {name: f"r{i}" for i, name in enumerate(rules)}
        self.helpers = []  # rules made for bounded repetitions, filled by expr()
        main = [f"{self.names[name]}: {self.expr(body)}  // {name}"
                for name, body in rules.items()]
        self.lines = main + self.helpers

    def helper(self, body):
        name = f"h{len(self.helpers)}"
        self.helpers.append(f"{name}: {body}")
        return name

    def expr(self, node):
        kind = node[0]
        if kind == "lit":
            return "/" + "".join(map(_regex_char, node[1])) + "/" if node[1] else ""
        if kind == "cls":
            return _regex_class(node[1], node[2])
        if kind == "any":
            return "/./s"
        if kind == "ref":
            return self.names[node[1]]
        if kind == "alt":
            seqs = [" ".join(filter(None, map(self.expr, seq))) for seq in node[1]]
            return seqs[0] if len(seqs) == 1 else "(" + " | ".join(seqs) + ")"
        if kind == "rep":
            return self.repeat(node[1], node[2], node[3])
        raise AssertionError(node)

    def repeat(self, item, lo, hi):
        x = self.expr(item)
        if not x:
            return ""
        x = f"({x})"
        parts = [x] * lo
        if hi is None:
            parts.append(x + "*")
        else:  # up to hi-lo more: t1 ::= x?  t2 ::= (x t1)?  ...
            tail = None
            for _ in range(hi - lo):
                tail = self.helper(f"({x} {tail})?" if tail else f"{x}?")
            if tail:
                parts.append(tail)
        return " ".join(parts)


def to_lark(rules):
    """Lark grammar text for the checked GBNF rules; rule r<i> is the i-th GBNF rule."""
    return "\n".join(_Translator(rules).lines) + "\n"


class Recogniser:
    """A compiled GBNF grammar."""

    def __init__(self, gbnf_text, root="root"):
        rules = parse_gbnf(gbnf_text, root)
        start = f"r{list(rules).index(root)}"
        self.lark_text = to_lark(rules)
        try:
            self.parser = lark.Lark(self.lark_text, start=start, parser="earley",
                                    lexer="dynamic", ambiguity="forest")
        except lark.exceptions.LarkError as e:
            raise GbnfError(f"Lark rejected the translated grammar: {e}") from e

    def accepts(self, text):
        try:
            self.parser.parse(text)
            return True
        except lark.exceptions.UnexpectedInput:
            return False


def accepts(gbnf_text, input_text, root="root"):
    return Recogniser(gbnf_text, root).accepts(input_text)


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------

def _read(path):
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def check_file(cases_path, grammar_dir, root):
    """Checks every case; prints mismatches and a summary; returns the mismatch count."""
    recognisers = {}
    passed = failed = 0
    with open(cases_path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            case = json.loads(line)
            inline = "gbnf" in case  # the grammar text itself, not a file name
            name = "inline grammar" if inline else case["grammar"]
            key = case["gbnf"] if inline else name
            if key not in recognisers:
                text = key if inline else _read(os.path.join(grammar_dir, name))
                recognisers[key] = Recogniser(text, root)
            verdict = recognisers[key].accepts(case["input"])
            if verdict == case["accepted"]:
                passed += 1
            else:
                failed += 1
                print(f"{cases_path}:{number}: {name}: expected "
                      f"{'accept' if case['accepted'] else 'reject'}, got "
                      f"{'accept' if verdict else 'reject'}: {json.dumps(case['input'])[:200]}")
    print(f"gbnf_lark: {passed} passed, {failed} failed")
    return failed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("grammar", nargs="?", help="GBNF file; inputs come on stdin as JSON lines")
    ap.add_argument("--check", metavar="CASES.jsonl", help="check recorded verdicts")
    ap.add_argument("--grammar-dir", default=DEFAULT_GRAMMAR_DIR,
                    help="where --check finds grammar files (default: %(default)s)")
    ap.add_argument("--root", default="root", help="start rule (default: root)")
    ap.add_argument("--print-lark", action="store_true", help="print the translated grammar")
    args = ap.parse_args(argv)
    if bool(args.grammar) == bool(args.check):
        ap.error("give either GRAMMAR or --check FILE")
    try:
        if args.check:
            return 1 if check_file(args.check, args.grammar_dir, args.root) else 0
        recogniser = Recogniser(_read(args.grammar), args.root)
        if args.print_lark:
            print(recogniser.lark_text, end="")
            return 0
        sys.stdin.reconfigure(encoding="utf-8")
        for line in sys.stdin:
            if line.strip():
                item = json.loads(line)
                text = item["input"] if isinstance(item, dict) else item
                print("true" if recogniser.accepts(text) else "false", flush=True)
        return 0
    except GbnfError as e:
        print(f"gbnf_lark: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
