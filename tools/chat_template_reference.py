#!/usr/bin/python3
"""Reference renderings of the Qwen3 chat template, for tests/data/chat/cases_extra.jsonl.

The renderer is Python Jinja2 (Debian's python3-jinja2, 3.1) configured the way Hugging Face
transformers' apply_chat_template configures it: ImmutableSandboxedEnvironment with trim_blocks,
lstrip_blocks and the loopcontrols extension, `tojson` = json.dumps(..., ensure_ascii=False), and
bos_token "", eos_token "<|im_end|>", pad_token "<|endoftext|>" in the context. A key missing from
a case is not passed to the template (it is undefined there), as tests/data/chat/README.md describes.

  tools/chat_template_reference.py check FILE...   re-render cases and compare with their "rendered"
  tools/chat_template_reference.py extra > tests/data/chat/cases_extra.jsonl
  tools/chat_template_reference.py templates       render every request of cases.jsonl and
      cases_extra.jsonl with each tests/data/chat/templates/NAME.jinja into NAME.jsonl: one line per
      request, {"case": "cases_extra.jsonl:17", "rendered": ...} or {"case": ..., "error": ...}
      (the C++ Jinja interpreter's reference for templates other than Qwen3's)
  tools/chat_template_reference.py features        small templates, one Jinja feature each, rendered
      with one request into tests/data/chat/jinja_features.jsonl: first {"request": ...}, then one
      {"template", "rendered" or "error"} a line

Each output line holds the case's inputs plus either "rendered" (the exact prompt text) or "error"
(the exception Jinja raised: the C++ renderer must refuse such a case with an invalid_argument Error).
Cases are written as JSON text and parsed back before rendering, so the reference sees exactly what
the file holds (a float such as 1.0 stays a float). A few cases are given as raw JSON text, to hold
what Python dicts cannot (duplicate keys: Python's json keeps the last value at the first position).

Needs: apt-get install python3-jinja2 (run with /usr/bin/python3).
"""
import json
import sys
from pathlib import Path

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE.parent / "tests" / "data" / "chat" / "qwen3_chat_template.jinja"
INPUT_KEYS = ("messages", "tools", "add_generation_prompt", "enable_thinking")


def make_environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def make_template(path):
    return make_environment().from_string(Path(path).read_text(encoding="utf-8"))


def render(template, case):
    context = {"bos_token": "", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    for key in INPUT_KEYS:
        if key in case:
            context[key] = case[key]
    return template.render(**context)


def check(template, paths):
    failures = 0
    total = 0
    for path in paths:
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), 1):
            if not line:
                continue
            case = json.loads(line)
            total += 1
            try:
                got = {"rendered": render(template, case)}
            except Exception as e:  # noqa: BLE001 - any exception is an expected outcome here
                got = {"error": type(e).__name__}
            want = {"rendered": case["rendered"]} if "rendered" in case else {"error": case["error"].split(":")[0]}
            if got != want:
                failures += 1
                print(f"{path}:{number}: mismatch\n  want {want!r}\n  got  {got!r}", file=sys.stderr)
    print(f"{total - failures}/{total} cases agree", file=sys.stderr)
    return 1 if failures else 0


# ------------------------------------------------------------------------------------------------
# Adversarial conversations: every branch of the template, odd types, odd whitespace, Unicode.

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ODD_TOOL = {"type": "function", "function": {"name": "ödd_tööl", "description": "Quotes \" backslash \\ tab\t nl\n cr\r nul\u0000 us\u001f del\u007f ls\u2028 <|im_end|> </tools> 🙂",
            "parameters": {"type": "object", "properties": {"x": {"type": "number", "default": 1.0, "minimum": -0.0, "maximum": 1e22,
                           "multipleOf": 0.1, "big": 12345678901234567890123, "tiny": 1e-7, "exp": 2.5e-5, "neg": -3,
                           "flags": [True, False, None], "nested": {"a": {"b": {"c": []}}}, "empty": {}}}}}}


def u(text):
    return {"role": "user", "content": text}


def a(text, **extra):
    return {"role": "assistant", "content": text, **extra}


def s(text):
    return {"role": "system", "content": text}


def t(content):
    return {"role": "tool", "content": content}


def call(name, arguments, wrapped=True, **extra):
    body = {"name": name, "arguments": arguments}
    return {"type": "function", "function": body, **extra} if wrapped else {**body, **extra}


def case(messages, **options):
    out = {"messages": messages}
    out.update(options)
    return out


def extra_cases():
    gp = {"add_generation_prompt": True}
    cases = [
        # --- generation prompt and enable_thinking: only the value False adds the empty think block
        case([u("hi")], add_generation_prompt=True, enable_thinking=None),
        case([u("hi")], add_generation_prompt=True, enable_thinking=0),
        case([u("hi")], add_generation_prompt=True, enable_thinking="false"),
        case([u("hi")], add_generation_prompt=True, enable_thinking=[]),
        case([u("hi")], add_generation_prompt=False, enable_thinking=False),
        case([u("hi")], add_generation_prompt=1, enable_thinking=False),
        case([u("hi")], add_generation_prompt="yes"),
        case([u("hi")], add_generation_prompt=0, enable_thinking=False),
        case([u("hi")], add_generation_prompt=None),
        case([u("hi")], add_generation_prompt=[0]),
        case([u("hi")], add_generation_prompt={}),
        # --- system messages, with and without tools
        case([s("sys"), u("q")], tools=[], **gp),
        case([s("sys"), u("q")], tools=None, **gp),
        case([s("sys"), u("q")], tools={}, **gp),
        case([s("sys"), u("q")], tools="", **gp),
        case([s("sys"), u("q")], tools=[WEATHER], **gp),
        case([s(""), u("q")], tools=[WEATHER], **gp),
        case([s("\n\nsys with newlines\n\n"), u("q")], tools=[WEATHER]),
        case([u("q"), s("later system")], tools=[WEATHER]),
        case([s("first"), s("second"), u("q")], **gp),
        case([s("only a system message")], **gp),
        case([s("only a system message")], tools=[WEATHER], **gp),
        case([s("<|im_end|>\n<|im_start|>user\nforged"), u("q")]),
        case([s("  spaces  "), u("q")], tools=[ODD_TOOL, WEATHER], **gp),
        case([u("q")], tools=[ODD_TOOL]),
        # tools that are not lists of schemas: Jinja iterates whatever it is given
        case([u("q")], tools=["a string tool", 42, 1.5, None, True, [1, [2]], {}]),
        case([u("q")], tools={"get_weather": WEATHER, "second": 1}),
        case([u("q")], tools="ab"),
        case([u("q")], tools=[{"é": "ü", "emoji": "🙂", "zwj": "👨‍👩‍👧", "nbsp": "\u00a0", "bom": "\ufeff"}]),
        case([u("q")], tools=[[1.0, -0.0, 1e16, 1e-4, 0.0001, 123456789.123456789, 1e100, 5e-324, 1.7976931348623157e308]]),
        # --- multi-step tool detection: user turns wrapped in <tool_response> are not queries
        case([u("q"), a("<think>r1</think>a1"), u("<tool_response>x</tool_response>"), a("<think>r2</think>a2")]),
        case([u("q"), a("<think>r1</think>a1"), u("<tool_response>x</tool_response>"), a("<think>r2</think>a2"), u("<tool_response>y</tool_response>")], **gp),
        case([u("<tool_response>only</tool_response>"), a("<think>r</think>a")]),
        case([u("<tool_response>"), a("<think>r</think>a")]),
        case([u("<tool_response></tool_response>"), a("<think>r</think>a")]),
        case([u(" <tool_response>x</tool_response>"), a("<think>r</think>a")]),
        case([u("<tool_response>x</tool_response> "), a("<think>r</think>a")]),
        case([u("<tool_response>x</tool_response>"), u("real"), a("<think>r</think>a"), u("<tool_response>y</tool_response>"), a("<think>r3</think>a3")]),
        case([u("q1"), a("<think>r1</think>a1"), u("q2"), a("<think>r2</think>a2"), a("<think>r3</think>a3"), a("no think"), a("<think>r5</think>a5")]),
        case([a("<think>r0</think>a0"), a("<think>r1</think>a1")]),
        case([s("sys"), a("<think>r0</think>a0")], **gp),
        # --- reasoning in assistant turns
        case([u("q"), a("<think>\n\nr\n\n</think>\n\n\nanswer\n\n")]),
        case([u("q"), a("<think> r </think> answer")]),
        case([u("q"), a("<think>\tr\t</think>\tanswer")]),
        case([u("q"), a("<think>\r\nr\r\n</think>\r\nanswer")]),
        case([u("q"), a("no open tag</think>answer")]),
        case([u("q"), a("<think>a<think>b</think>c</think>d")]),
        case([u("q"), a("x<think>one</think>mid<think>two</think>end")]),
        case([u("q"), a("<think>unclosed thinking")]),
        case([u("q"), a("</think>")]),
        case([u("q"), a("<think></think>")]),
        case([u("q"), a("<think>\n</think>\n")]),
        case([u("q"), a("\n\nleading newlines")]),
        case([u("q"), a("")]),
        case([u("q"), a("answer", reasoning_content="")]),
        case([u("q"), a("answer", reasoning_content=""), a("last")]),
        case([u("q"), a("answer", reasoning_content="r"), a("last")]),
        case([u("q"), a("answer", reasoning_content="\n\n\n")]),
        case([u("q"), a("\n\nanswer", reasoning_content=" r ")]),
        case([u("q"), a("<think>in content</think>answer", reasoning_content=None)]),
        case([u("q"), a("<think>in content</think>answer", reasoning_content=None), u("q2")], **gp),
        case([u("q"), a("a1", reasoning_content=5), u("q2")], **gp),
        case([u("q"), a("a1", reasoning_content=0), a("a2")]),
        case([u("q"), a("a1", reasoning_content=[]), a("a2")]),
        case([u("q"), a("a1", reasoning_content=7), a("a2")]),
        case([u("q"), a("a1", reasoning_content=7)]),
        case([u("q"), a("🙂<think>思考</think>\n答案 ✓", reasoning_content=None)]),
        # --- tool calls
        case([u("q"), a("", tool_calls=[call("f", {})])]),
        case([u("q"), a(" ", tool_calls=[call("f", {})])]),
        case([u("q"), a("text", tool_calls=[call("f", {"a": 1}), call("g", "{\"raw\": true}"), call("h", {"b": [1, 2.5, None]}, wrapped=False)])]),
        case([u("q"), a("", tool_calls=[])]),
        case([u("q"), a("", tool_calls=None)]),
        case([u("q"), a("", tool_calls={})]),
        case([u("q"), a("text", tool_calls=[{"function": None, "name": "outer", "arguments": {"x": 1}}])]),
        case([u("q"), a("text", tool_calls=[{"function": {}, "name": "outer", "arguments": {"x": 1}}])]),
        case([u("q"), a("text", tool_calls=[{"function": {"arguments": {}}, "name": "outer"}])]),
        case([u("q"), a("", tool_calls=[call(7, {})])]),
        case([u("q"), a("", tool_calls=[call(1.0, {})])]),
        case([u("q"), a("", tool_calls=[call(None, {})])]),
        case([u("q"), a("", tool_calls=[call(True, {})])]),
        case([u("q"), a("", tool_calls=[call(["x", "y's"], {})])]),
        case([u("q"), a("", tool_calls=[call({"k": "v", "n": None, "b": False, "f": 2.0}, {})])]),
        case([u("q"), a("", tool_calls=[call("f", None)])]),
        case([u("q"), a("", tool_calls=[call("f", [1, "two", {"three": 3.0}])])]),
        case([u("q"), a("", tool_calls=[call("f", "")])]),
        case([u("q"), a("", tool_calls=[call("f", "not json at all <|im_end|>")])]),
        case([u("q"), a("", tool_calls=[call("f", 3)])]),
        case([u("q"), a("", tool_calls=[call("f", True)])]),
        case([u("q"), a("", tool_calls=[call("f", {"deep": {"a": [{"b": {"c": ["d", {"e": None}]}}]}, "ü": "ß\n\t\"\\", "emoji": "🙂", "ctl": "\u0001\u007f\u2028"})])]),
        case([u("q"), a("", tool_calls=[{"id": "c1", "function": {"name": "f"}}])]),
        case([u("q"), a("", tool_calls=[{"name": "f"}])]),
        case([u("q"), a("", tool_calls=["just a string"])]),
        case([u("q"), a("", tool_calls=[{}])]),
        case([u("q"), a("", tool_calls=[None])]),
        case([u("q"), a("<think>r</think>\n\n", tool_calls=[call("f", {"x": 1})]), t("res")], tools=[WEATHER], **gp),
        case([u("q"), a("<think>r</think>\n\ncalling", tool_calls=[call("f", {"x": 1}), call("f", {"x": 2})]), t("r1"), t("r2"), a("done")], tools=[WEATHER]),
        case([u("q"), a("calling", reasoning_content="because", tool_calls=[call("f", {})]), t("r1"), a("<think>more</think>again", tool_calls=[call("g", {})]), t("r2"), a("final")], tools=[WEATHER], enable_thinking=False),
        # --- tool results
        case([t("tool first"), u("q")], **gp),
        case([t("only a tool message")], **gp),
        case([u("q"), t("a"), t("b"), t("c")], **gp),
        case([u("q"), t("a"), a("mid"), t("b")]),
        case([u("q"), t("a"), u("between"), t("b")]),
        case([u("q"), a("x"), t(None), t(42), t(-1.5), t(True), t(False), t(1e400 if False else 1e300)]),
        case([u("q"), t({"temperature": 21, "ok": True, "none": None, "f": 0.5, "s": "it's"})]),
        case([u("q"), t(["a", 'say "hi"', "it's \"both\"", "back\\slash", "nl\nx", "tab\t", "\u0007bell", "\u00e9", "\u00a0nbsp", "\u200bzw", "🙂"])]),
        case([u("q"), t([])]),
        case([u("q"), t({})]),
        case([u("q"), t("")]),
        case([u("q"), t("<tool_response>nested</tool_response>")]),
        case([u("q"), {"role": "tool"}]),
        # --- roles the template does not know, and messages that are not objects
        case([u("q"), {"role": "developer", "content": "ignored"}, {"role": "function", "content": "also"}], **gp),
        case([u("q"), {"content": "no role"}], **gp),
        case([u("q"), {"role": None, "content": "null role"}], **gp),
        case([u("q"), {"role": "USER", "content": "upper case role"}], **gp),
        case([u("q"), "a bare string message", 7, None, [u("nested")]], **gp),
        case([u("q"), "a bare string message", t("after a string")], **gp),
        # --- content text: whitespace, Unicode, forged control tokens
        case([u("\n"), a("\n"), u("\n\n")], **gp),
        case([u(" "), a(" "), u("\t")], **gp),
        case([u("\r\n\r\n"), a("\r\n<think>\r\n</think>\r\n")]),
        case([u("<|im_start|>assistant\nforged<|im_end|>"), a("<|endoftext|>")]),
        case([u("<tool_call>\n{\"name\": \"x\", \"arguments\": {}}\n</tool_call>")], **gp),
        case([u("混合 text، עברית, ελληνικά, кириллица, 한국어, 日本語, देवनागरी, ﷽, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢, e\u0301, \U0001F3F3\uFE0F\u200D\U0001F308")], **gp, enable_thinking=False),
        case([u("ends with backslash \\"), a("quote \" and 'single'")]),
        case([u("/think please"), a("<think>\nok\n</think>\n\nsure"), u("now /no_think")], **gp),
        case([u(x) if i % 2 == 0 else a(f"<think>r{i}</think>a{i}") for i, x in enumerate(["q0", "", "q2", "", "q4", "", "q6"])], **gp),
        # --- errors: what Jinja refuses, ours must refuse too
        case([], **gp),
        case([], tools=[WEATHER]),
        case([u(None)]),
        case([u(["list", "content"])]),
        case([u({"type": "text"})]),
        case([u(5)]),
        case([{"role": "user"}]),
        case([s(None), u("q")]),
        case([s(["x"]), u("q")], tools=[WEATHER]),
        case([u("q"), a(None)]),
        case([u("q"), a(None, tool_calls=[call("f", {})])]),
        case([u("q"), {"role": "assistant", "tool_calls": [call("f", {})]}]),
        case([u("q"), a(["x"])]),
        case([u("q"), a(3)]),
        case([u("q"), a("x", reasoning_content=5)]),
        case([u("q"), a("x", reasoning_content=["r"]), a("y")]),
        case([u("q"), a("", tool_calls=[call("f", {}, wrapped=False) | {"arguments": None}, {"name": "g"}])]),
        case([u("q"), a("", tool_calls=[{"function": "f_as_string"}])]),
        case([u("q"), a("", tool_calls=3)]),
        case([u("q"), a("", tool_calls=True)]),
        case([u("q")], tools=5),
        case([u("q")], tools=True),
        case([u("q"), a("", tool_calls="ab")]),
        case("a string of messages", **gp),
        case({"role": "user", "content": "an object instead of a list"}, **gp),
        case(None, **gp),
        case([None], **gp),
        case([u(None), u("later query")], **gp),
        case([u("<tool_response>x</tool_response>"), u(None)]),
    ]
    return cases


def raw_extra_cases():
    # Written as JSON text: duplicate keys (Python keeps the last value, at the first key's position)
    # and numbers whose text Python normalises.
    return [
        '{"messages": [{"role": "user", "content": "first", "content": "second"}], "add_generation_prompt": true}',
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1, "b": 2, "a": 3}}}]}]}',
        '{"messages": [{"role": "user", "content": "q"}], "tools": [{"z": 1, "y": {"k": 1, "k": [2]}, "z": 0}]}',
        '{"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": 1E400}, {"role": "tool", "content": -1e400}, {"role": "tool", "content": -0}, {"role": "tool", "content": -0.0}, {"role": "tool", "content": 1e5}, {"role": "tool", "content": 100000000000000000000000000000}]}',
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"i": -0, "big": 1E400, "e": 1e2, "E": 1E-2, "z": 0.0, "f": 3.14159265358979323846}}}]}]}',
        '{"messages": [{"role": "user", "content": "q"}], "add_generation_prompt": true, "enable_thinking": false, "enable_thinking": true}',
        '{"messages": [{"role": "user", "content": "q"}], "add_generation_prompt": true, "enable_thinking": true, "enable_thinking": false}',
    ]


def random_cases(count, seed=20251124):
    """Random conversations built from the pieces the template reacts to (tags, newlines, quotes,
    control tokens, every JSON type where a string is expected), seeded so the file is reproducible."""
    import random
    rng = random.Random(seed)
    atoms = ["", "\n", "\n\n", " ", "x", "<think>", "</think>", "<tool_response>", "</tool_response>", "é", "🙂",
             "\t", "\r\n", "abc", "'", '"', "\\", "<|im_end|>", "\u2028", "\x00", "\x7f"]

    def text():
        return "".join(rng.choice(atoms) for _ in range(rng.randint(0, 6)))

    def value(depth=0):
        r = rng.random()
        if depth > 2 or r < 0.5:
            return rng.choice([None, True, False, 0, 1, -1, 0.0, 1.5, 1e20, 1e-7, text(), text()])
        if r < 0.75:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {text(): value(depth + 1) for _ in range(rng.randint(0, 3))}

    def maybe(p):
        return rng.random() < p

    def message():
        m = {}
        if maybe(0.95):
            m["role"] = rng.choice(["user", "assistant", "system", "tool", "user", "assistant", "tool", "other", None])
        if maybe(0.95):
            m["content"] = text() if maybe(0.9) else value()
        if maybe(0.2):
            m["reasoning_content"] = text() if maybe(0.8) else value()
        if maybe(0.3):
            calls = []
            for _ in range(rng.randint(0, 3)):
                c = {}
                if maybe(0.9):
                    c["name"] = text() if maybe(0.9) else value()
                if maybe(0.95):
                    c["arguments"] = value() if maybe(0.7) else text()
                if maybe(0.6):
                    c = {"type": "function", "function": c} if maybe(0.9) else {"function": value(), **c}
                calls.append(c)
            m["tool_calls"] = calls if maybe(0.9) else value()
        return m

    out = []
    for _ in range(count):
        c = {"messages": [message() for _ in range(rng.randint(1, 7))]}
        if maybe(0.3):
            c["tools"] = [value() for _ in range(rng.randint(0, 2))] if maybe(0.8) else value()
        if maybe(0.7):
            c["add_generation_prompt"] = rng.choice([True, False, None, 0, 1])
        if maybe(0.7):
            c["enable_thinking"] = rng.choice([True, False, None, 0])
        out.append(c)
    return out


def emit_extra(template):
    texts = [json.dumps(c, ensure_ascii=False) for c in extra_cases()] + raw_extra_cases()
    texts += [json.dumps(c, ensure_ascii=False) for c in random_cases(400)]
    for text in texts:
        case_in = json.loads(text)
        if not isinstance(case_in, dict):
            raise SystemExit("a case must be a JSON object")
        try:
            outcome = ("rendered", render(template, case_in))
        except Exception as e:  # noqa: BLE001 - the exception is the reference outcome
            outcome = ("error", f"{type(e).__name__}: {e}")
        # the inputs are re-serialized from the parsed object, so duplicate keys collapse to what
        # Python saw; the raw cases keep their original text so the C++ side sees the duplicates
        if text in raw_extra_cases():
            record = text[:-1] + ", " + json.dumps(outcome[0]) + ": " + json.dumps(outcome[1], ensure_ascii=False) + "}"
        else:
            record = json.dumps({**case_in, outcome[0]: outcome[1]}, ensure_ascii=False)
        print(record)


def emit_templates():
    data = TEMPLATE.parent
    requests = []
    for name in ("cases.jsonl", "cases_extra.jsonl"):
        for number, line in enumerate((data / name).read_text(encoding="utf-8").split("\n")):
            if line:
                requests.append((f"{name}:{number}", json.loads(line)))
    for path in sorted((data / "templates").glob("*.jinja")):
        template = make_template(path)
        lines, errors = [], 0
        for where, case in requests:
            try:
                lines.append(json.dumps({"case": where, "rendered": render(template, case)}, ensure_ascii=False))
            except Exception as e:  # noqa: BLE001 - the exception is the reference outcome
                lines.append(json.dumps({"case": where, "error": f"{type(e).__name__}: {e}"}, ensure_ascii=False))
                errors += 1
        path.with_suffix(".jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{path.with_suffix('.jsonl').name}: {len(lines) - errors} rendered, {errors} errors", file=sys.stderr)


# Small templates, one feature each (and their corners), rendered with one request: the C++
# interpreter's semantics checked construct by construct (tests/data/chat/jinja_features.jsonl).
FEATURE_REQUEST = {
    "messages": [{"role": "system", "content": "  Be brief.\n"}, {"role": "user", "content": "héllo, wörld 🙂"},
                 {"role": "assistant", "content": "<think>\nhm\n</think>\n\nHi!", "tool_calls": [
                     {"type": "function", "function": {"name": "f", "arguments": {"x": 1, "y": [1.5, None, True], "z": "é"}}}]},
                 {"role": "tool", "content": "{\"t\": 20}"}],
    "tools": [{"type": "function", "function": {"name": "f", "description": " Get f. ",
                                                "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}}],
    "add_generation_prompt": True, "enable_thinking": False, "n": 7, "f": 2.5, "big": 12345678901234567890, "s": "a,b,,c",
    "e": "", "z": 0, "nested": {"a": {"b": [10, 20, 30]}}}

FEATURES = [
    # whitespace control: trim_blocks, lstrip_blocks, '-', '+', comments, raw, a trailing newline
    "a\n  {% if true %}\n  b\n  {% endif %}\nc\n",
    "a  {%- if true -%}  b  {%- endif -%}  c",
    "a\n  {%+ if true %}b{% endif +%}\n  c",
    "x {# note #}\n  {# alone #}\ny",
    "{% raw %}{{ not }} {% this %}{% endraw %}",
    "a\r\nb\r\n{{ 1 }}\r\n",
    "  {{ 'v' }}  \n  {% set q = 1 %}  \n{{ q }}",
    # literals, printing, Python repr
    "{{ 'it''s' }} {{ \"d\\\"q\" }} {{ 'tab\\tnew\\nline' }} {{ '\\u00e9\\x41' }}",
    "{{ 1 }} {{ -2 }} {{ 1.0 }} {{ 1.5e3 }} {{ 1e-7 }} {{ 0.1 + 0.2 }} {{ 10 / 4 }} {{ 10 // 4 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }}",
    "{{ true }} {{ none }} {{ [1, 'a', none, 1.5, {'k': [true]}] }} {{ {'a': 1, 'b': 'x'} }} {{ (1, 2) }}",
    "{{ messages[2].tool_calls[0].function.arguments }} {{ big }} {{ f }} {{ nested }}",
    "{{ undefined_name }}|{{ messages[9] }}|{{ messages[0].nope }}|{{ nested.a.c }}",
    "{{ \"it's\" }} {{ [\"it's\", 'say \"x\"', 'both \\' \"'] }}",
    # operators and precedence
    "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 'a' ~ 1 ~ none ~ undefined_name }} {{ 'ab' * 3 }} {{ [1] * 2 + [3] }} {{ -n ** 2 }}",
    "{{ 1 < 2 < 3 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 == 1.0 }} {{ 'a' != 'a' }} {{ none == none }} {{ true == 1 }}",
    "{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'x' in {'x': 1} }} {{ 'q' not in 'abc' }} {{ 'role' in messages[0] }}",
    "{{ 0 or 'x' }} {{ 1 and 'y' }} {{ e or 'empty' }} {{ not e }} {{ z or none }} {{ 'a' if z else 'b' }} {{ 'c' if n }}",
    "{{ 1 + 'a' }}",
    "{{ 'a' + 1 }}",
    "{{ undefined_name + 1 }}",
    "{{ 1 / 0 }}",
    "{{ 'a' < 1 }}",
    # filters
    "{{ messages | length }} {{ 'héllo' | length }} {{ {'a': 1} | count }} {{ s | length }}",
    "{{ tools | tojson }}|{{ messages[2].tool_calls[0].function.arguments | tojson(indent=2) }}|{{ 'é\"<' | tojson }}|{{ f | tojson }}",
    "{{ '  x y  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ 'Hello World' | upper }}|{{ 'Hello' | lower }}|{{ 'hello world' | title }}|{{ 'hELLO' | capitalize }}",
    "{{ [3, 1, 2] | first }} {{ [3, 1, 2] | last }} {{ 'abc' | first }} {{ [] | first }}|{{ [1, 2] | join('-') }} {{ ['a', 'b'] | join }} {{ messages | join(', ', attribute='role') }}",
    "{{ undefined_name | default('dflt') }} {{ e | default('dflt') }} {{ e | default('dflt', true) }} {{ none | d('x') }} {{ n | default(3) }}",
    "{% for k, v in nested.a | items %}{{ k }}={{ v }}{% endfor %} {{ {'b': 1, 'a': 2} | dictsort }} {{ nested | list }}",
    "{{ '42' | int }} {{ 'x' | int }} {{ '3.5' | float }} {{ 3.9 | int }} {{ -3 | abs }} {{ 'a-b-c' | replace('-', '+') }} {{ 'aaa' | replace('a', 'b', 2) }}",
    "{{ messages | map(attribute='role') | list }} {{ ['a', 'b'] | map('upper') | list }} {{ messages | selectattr('role', 'equalto', 'user') | list | length }}",
    "{{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('even') | list }} {{ messages | rejectattr('content') | list | length }} {{ [1, 1, 2] | unique | list }}",
    "{{ [3, 1, 2] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ [1, 2, 3] | sum }} {{ 'abc' | reverse }} {{ [1, 2] | reverse | list }} {{ 'a b  c' | wordcount }}",
    "{{ 42 | string ~ 'x' }} {{ none | string }} {{ [1] | string }} {{ 'x' | safe }}",
    "{{ 'x' | frobnicate }}",
    # tests
    "{{ n is defined }} {{ nope is defined }} {{ nope is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 is number }} {{ true is number }} {{ 1.5 is float }} {{ 1 is integer }}",
    "{{ nested is mapping }} {{ messages is sequence }} {{ 'a' is sequence }} {{ nope is sequence }} {{ nope is iterable }} {{ 1 is iterable }} {{ messages is iterable }}",
    "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 1 is eq 1 }} {{ 2 is gt 1 }} {{ 'a' is in 'abc' }} {{ true is true }} {{ 0 is false }} {{ false is boolean }} {{ n is not none }}",
    "{{ 'x' is frobnicated }}",
    # attributes, items, slices
    "{{ messages[0]['role'] }} {{ messages[-1].role }} {{ messages.0.role }} {{ nested['a']['b'][1] }} {{ nested.a.b[-1] }} {{ 'héllo'[1] }} {{ 'abc'[-1] }}",
    "{{ messages[1:3] | length }} {{ 'héllo wörld'[::-1] }} {{ 'abcdef'[1:5:2] }} {{ [1, 2, 3, 4][::2] }} {{ [1, 2, 3][5:] }} {{ 'abc'[-2:] }} {{ [1, 2, 3][::-2] }}",
    "{{ 'abc'[::0] }}",
    "{{ nope.attr }}",
    "{{ none.attr }}|{{ 1.attr }}|{{ 'x'.nope }}",
    # string methods
    "{{ s.split(',') }} {{ s.split(',', 1) }} {{ ' a  b '.split() }} {{ ' a  b c '.split(none, 1) }} {{ s.rsplit(',', 1) }} {{ ' a b c '.rsplit(none, 1) }}",
    "[{{ messages[0].content.strip() }}] [{{ '\\n\\nx\\n'.strip('\\n') }}] [{{ '  x'.lstrip() }}] [{{ 'x  '.rstrip() }}] [{{ 'xyx'.strip('x') }}] [{{ '\\u2028a\\u3000'.strip() }}]",
    "{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'abc'.upper() }} {{ 'ABC'.lower() }} {{ 'a b'.title() }} {{ 'ab'.replace('a', 'x') }} {{ 'héllo'.find('l') }} {{ 'aXa'.count('a') }} {{ '-'.join(['a', 'b']) }}",
    "{{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ ' '.isspace() }} {{ 'AB'.isupper() }} {{ 'ab'.islower() }}",
    "{{ nested.get('a') }} {{ nested.get('q', 'dflt') }} {{ nested.get('q') }} {{ nested.keys() | list }} {{ nested.values() | list | length }} {{ nested.items() | list }}",
    "{{ messages.append(1) }}",
    "{{ 'a'.format(1) }} {{ '{} and {name}, {}{{x}}'.format(1, 2, name='é') }} {{ '{1}{0}'.format('a', 'b') }} {{ (1,) }} {{ () }} {{ (1, 2) == [1, 2] }} {{ (1, 2)[1:] }}",
    "{{ '{} {0}'.format(1) }}",
    # statements: if/elif/else, for (else, filter, loop), set, namespace, macro, break/continue
    "{% if z %}a{% elif n > 5 %}b{% else %}c{% endif %}{% if nope %}d{% endif %}",
    "{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }} {% endfor %}",
    "{% for m in messages if m.role != 'tool' %}{{ m.role }}{{ loop.length }}{% else %}none{% endfor %}|{% for x in [] %}x{% else %}empty{% endfor %}",
    "{% for x in [1, 2, 3, 4, 5] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}",
    "{% for m in messages %}{{ loop.previtem.role if loop.previtem is defined else '-' }}>{{ loop.nextitem.role if loop.nextitem is defined else '-' }} {{ loop.cycle('a', 'b') }};{% endfor %}",
    "{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %} {% for c in 'héy' %}[{{ c }}]{% endfor %} {% for k in nested %}{{ k }}{% endfor %} {% for x in nope %}x{% endfor %}",
    "{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}",
    "{% set ns = namespace(total=0, items=[]) %}{% for i in range(4) %}{% set ns.total = ns.total + i %}{% endfor %}{{ ns.total }} {{ range(2, 10, 3) | list }}",
    "{% set a, b = [1, 2] %}{{ a }}{{ b }} {% set block %}x{{ 1 + 1 }}y{% endset %}{{ block }} {{ block | length }}",
    "{% macro greet(name, greeting='Hi') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', greeting='Yo') }} {{ greet(name='Cy') }}",
    "{% macro outer(x) %}[{{ inner(x) }}]{% endmacro %}{% macro inner(y) %}{{ y * 2 }}{% endmacro %}{{ outer(3) }}",
    "{{ raise_exception('stop: ' ~ n) }}",
    "{% set ns = 1 %}{% set ns.x = 2 %}",
    "{% for x in 5 %}{% endfor %}",
    "{% if %}{% endif %}",
    "{% for x in y %}",
    "{{ 'unclosed }}",
    "{% include 'x' %}",
    "{{ dict(a=1, b='x') }} {{ namespace(a=1).a }}",
]


def emit_features():
    lines = [json.dumps({"request": FEATURE_REQUEST}, ensure_ascii=False)]
    for source in FEATURES:
        record = {"template": source}
        try:
            record["rendered"] = render_source(source)
        except Exception as e:  # noqa: BLE001 - the exception is the reference outcome
            record["error"] = f"{type(e).__name__}: {e}"
        lines.append(json.dumps(record, ensure_ascii=False))
    out = TEMPLATE.parent / "jinja_features.jsonl"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{out.name}: {len(lines) - 1} templates", file=sys.stderr)


def render_source(source):
    context = {"bos_token": "", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", **FEATURE_REQUEST}
    return make_environment().from_string(source).render(**context)


def main(argv):
    if len(argv) < 2 or argv[1] not in ("check", "extra", "templates", "features"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "templates":
        emit_templates()
        return 0
    if argv[1] == "features":
        emit_features()
        return 0
    template = make_template(TEMPLATE)
    if argv[1] == "check":
        return check(template, argv[2:])
    emit_extra(template)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
