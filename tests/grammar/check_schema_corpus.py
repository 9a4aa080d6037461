#!/usr/bin/env python3
"""Confirms the verdicts of the JSON Schema corpus (tests/data/grammar/schemas/*.json) with
python3-jsonschema, so that tests/test_json_schema.cpp compares the converter's grammars with
another implementation's judgement, not with its own.

Each file is {"description": ..., "schema": ..., "valid": [instances], "invalid": [instances]}.
Every instance listed as valid must validate and every invalid one must not; exit 1 naming each
disagreement, 0 when all agree.

    python3 tests/grammar/check_schema_corpus.py [files...]      (default: the whole corpus)

Needs python3-jsonschema (Debian: apt-get install python3-jsonschema; 4.10 checked). The dialect is
the schema's $schema (draft 2020-12 without one), and formats are asserted:
- "pattern" is matched as an ECMAScript regular expression ("u" flag), as JSON Schema says, by Node
  when it is installed (Python's re differs: its \\d and \\w match non-ASCII digits and letters, and
  its $ matches before a final newline); without Node, Python's re with a warning;
- date, time and date-time are checked here as RFC 3339 says (jsonschema needs rfc3339-validator,
  which Debian does not package, and Python's date.fromisoformat accepts more than RFC 3339): the
  day against the month and leap years; a leap second only where it is 23:59:60 in UTC;
- uuid and ipv4 use jsonschema's own checkers.
"""
import datetime
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import jsonschema

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "data", "grammar", "schemas")

# ---- formats (RFC 3339, section 5.6)

DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$", re.ASCII)
TIME = re.compile(r"^(\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$", re.ASCII)


def is_date(s):
    m = DATE.match(s)
    if not m:
        return False
    try:
        datetime.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return False
    return True


def is_time(s):
    m = TIME.match(s)
    if not m:
        return False
    hour, minute, second = int(m[1]), int(m[2]), int(m[3])
    if hour > 23 or minute > 59 or second > 60:
        return False
    offset = 0
    if m[6]:
        oh, om = int(m[7]), int(m[8])
        if oh > 23 or om > 59:
            return False
        offset = (oh * 60 + om) * (1 if m[6] == "+" else -1)
    if second == 60:  # a leap second is 23:59:60 UTC
        utc = (hour * 60 + minute - offset) % (24 * 60)
        return utc == 23 * 60 + 59
    return True


def is_date_time(s):
    parts = re.split(r"[Tt]", s)
    return len(parts) == 2 and is_date(parts[0]) and is_time(parts[1])


def format_checker():
    checker = jsonschema.FormatChecker()
    for name, fn in (("date", is_date), ("time", is_time), ("date-time", is_date_time)):
        checker.checkers[name] = (lambda fn: (lambda v: not isinstance(v, str) or fn(v)))(fn), ()
    return checker


# ---- ECMAScript patterns through Node

class EcmaScriptRegex:
    """One Node process answering "does pattern p match string s" (new RegExp(p, "u").test(s))."""

    SCRIPT = r"""
const rl = require('readline').createInterface({input: process.stdin});
rl.on('line', (line) => {
  const q = JSON.parse(line);
  let r;
  try { r = new RegExp(q.p, 'u').test(q.s); } catch (e) { r = 'error: ' + e.message; }
  process.stdout.write(JSON.stringify(r) + '\n');
});
"""

    def __init__(self, node):
        self.proc = subprocess.Popen([node, "-e", self.SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     encoding="utf-8")
        self.cache = {}

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()
        self.proc.stdout.close()

    def search(self, pattern, s):
        key = (pattern, s)
        if key not in self.cache:
            self.proc.stdin.write(json.dumps({"p": pattern, "s": s}) + "\n")
            self.proc.stdin.flush()
            answer = json.loads(self.proc.stdout.readline())
            if isinstance(answer, str):
                raise ValueError("pattern %r: %s" % (pattern, answer))
            self.cache[key] = answer
        return self.cache[key]


def validator_class(schema, regex):
    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    if regex is None:
        return base

    def pattern(validator, patrn, instance, schema):
        if validator.is_type(instance, "string") and not regex.search(patrn, instance):
            yield jsonschema.ValidationError("%r does not match %r" % (instance, patrn))

    # jsonschema.validators.extend would drop the drafts' rule that siblings of $ref are ignored
    # (draft 7 and earlier), so the class is made again with it.
    legacy = base in (jsonschema.Draft3Validator, jsonschema.Draft4Validator, jsonschema.Draft6Validator, jsonschema.Draft7Validator)

    def applicable(schema):
        if legacy and isinstance(schema, dict) and "$ref" in schema:
            return [("$ref", schema["$ref"])]
        return schema.items() if isinstance(schema, dict) else []

    return jsonschema.validators.create(
        meta_schema=base.META_SCHEMA, validators=dict(base.VALIDATORS, pattern=pattern), type_checker=base.TYPE_CHECKER,
        format_checker=base.FORMAT_CHECKER, id_of=base.ID_OF, applicable_validators=applicable)


def main(paths):
    node = shutil.which("node")
    regex = EcmaScriptRegex(node) if node else None
    if regex is None:
        print("check_schema_corpus: warning: no node; patterns are matched with Python's re", file=sys.stderr)
    checker = format_checker()
    failures = checked = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            case = json.load(f)
        schema = case["schema"]
        cls = validator_class(schema, regex)
        cls.check_schema(schema)
        validator = cls(schema, format_checker=checker)
        for expected, key in ((True, "valid"), (False, "invalid")):
            for instance in case[key]:
                checked += 1
                errors = list(validator.iter_errors(instance))
                if (not errors) != expected:
                    failures += 1
                    why = "; ".join(e.message for e in errors[:2]) or "no error"
                    print("%s: %s listed as %s, but jsonschema says %s (%s)" % (
                        os.path.relpath(path, ROOT), json.dumps(instance, ensure_ascii=False), key,
                        "valid" if not errors else "invalid", why))
    if regex is not None:
        regex.close()
    print("check_schema_corpus: %d files, %d instances, %d disagreements" % (len(paths), checked, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or sorted(glob.glob(os.path.join(CORPUS, "*.json")))))
