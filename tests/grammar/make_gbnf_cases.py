#!/usr/bin/env python3
"""Writes the GBNF reference cases in tests/data/grammar/ (see its README.md):

  gbnf_cases.jsonl          inputs for llama.cpp's example grammars (gbnf/*.gbnf)
  gbnf_feature_cases.jsonl  small grammars, given inline, that exercise each syntax feature
  gbnf_syntax_errors.jsonl  malformed grammars that a GBNF parser must reject

Inputs are hand-written below, plus seeded mutations of the accepted ones; every verdict
comes from gbnf_lark.py (Lark's Earley parser), and the hand-written verdicts must agree
with it. Deterministic: rerunning writes the same bytes.

    python3 tests/grammar/make_gbnf_cases.py [OUT_DIR]
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gbnf_lark import GbnfError, Recogniser, parse_gbnf  # noqa: E402

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "grammar")
SEED = 20250101
MUTANTS_REJECTED = 20  # mutations kept per grammar that the grammar rejects
MUTANTS_ACCEPTED = 5   # ... and that it still accepts
MUTATE_MAX_LEN = 400   # only shorter inputs are mutated (plus truncations of long ones)

# ---------------------------------------------------------------------------------------
# Long accepted inputs (a few KB), built deterministically
# ---------------------------------------------------------------------------------------

ENGLISH = (
    "It was a bright cold day in April, and the clocks were striking thirteen. "
    "Winston Smith, his chin nuzzled into his breast in an effort to escape the vile wind, "
    "slipped quickly through the glass doors of Victory Mansions; not quickly enough to "
    "prevent a swirl of gritty dust from entering along with him.\n"
    "The hallway smelt of boiled cabbage and old rag mats. At one end of it a coloured "
    "poster, too large for indoor display, had been tacked to the wall. It depicted simply "
    "an enormous face, more than a metre wide: the face of a man of about forty-five, with "
    "a heavy black moustache and ruggedly handsome features.\n"
    "Prices (2024): apples $1.50/kg, pears $2.10/kg -- 15% off! Email: shop@example.com; "
    "see #42 & item [7] {new} <b>bold</b> `code` ~approx ^up_arrow | pipe \"quoted\" 'single'.")
JAPANESE = ("吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"
            "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。\n"
            "「東京タワー」は、東京都港区芝公園にある総合電波塔の愛称です。"
            "正式名称は日本電波塔。 ゝゞヽヾ々〆〜ー・")


def long_json(indent):
    users = [{"id": i, "name": f"user {i} – Zoë 日本", "active": i % 3 != 0,
              "score": round(i * 1.25 - 7, 2), "tags": ["alpha", "beta\n\"quoted\"", "γ"][:i % 4],
              "manager": None if i % 2 else {"id": i // 2, "path": "C:\\temp"}}
             for i in range(1, 25 if indent else 30)]
    return json.dumps({"users": users, "count": len(users), "ok": True}, indent=indent,
                      ensure_ascii=False)


def long_json_arr():
    items = [{"step": i, "text": f"do thing #{i}", "done": i % 2 == 0, "ratio": i / 8}
             for i in range(40)]
    return "[\n" + ",\n".join(json.dumps(x) for x in items) + "]"


def long_c():
    functions = [
        "int add(int a){return a+1;}",
        "float avg(float n){float s = 0;for(int i = 0; i<n; i = i+1){s = s+i;}return s/n;}",
        "int fib(int n){if(n<=1){return n;}else{return fib(n-1)+fib(n-2);}}",
        "char up(char c){if(c>=97){return c-32;}return c;}",
        "int loop(){int k = 10;while(k!=0){k = k-1;// count down\n}return k;}",
        "int main(){/* entry point */int x = add(41);print (x, fib(10));return 0;}",
    ]
    return "".join(functions * 6)


def long_chess():
    pairs = ["e4 e5", "Nf3 Nc6", "Bb5 a6", "Ba4 Nf6", "O-O Be7", "Re1 b5", "Bb3 d6", "c3 O-O",
             "h3 Nb8", "d4 Nbd7", "c4 c6", "cxb5 axb5", "Nc3 Bb7", "Bg5 b4", "Nb1 h6",
             "Bh4 c5", "dxe5 Nxe4", "Bxe7 Qxe7", "exd6 Qf6", "Nbd2 Nxd6", "Nc4 Nxc4",
             "Bxc4 Nb6", "Ne5 Rae8", "Bxf7+ Rxf7", "Nxf7 Rxe1+", "Qxe1 Kxf7", "Qe3 Qg5",
             "Qxg5 hxg5", "b3 Ke6", "a3 Kd6", "axb4 cxb4", "Ra5 Nd5", "f3 Bc8", "Kf2 Bf5",
             "Ra7 g6", "Ra6+ Kc5", "Ke1 Nf4", "g3 Nxh3", "Kd2 Kb5", "Rd6 Kc5", "Ra6 Nf2",
             "g4 Bd3", "Re6 e1=Q+"]
    return "".join(f"{n}. {p}\n" for n, p in enumerate((pairs * 3)[:99], 1))  # up to 99.


def long_list():
    return "".join(f"- item {i}: {w}\n" for i, w in enumerate(
        ["buy milk", "call Zoë", "日本語のメモ", "fix bug #12 (urgent!)", "tab\tseparated",
         "emoji 😀 ok", "   indented text", "- looks nested"] * 12))


def long_arithmetic():
    return "".join(f"(a{i} +b_{i})*{i} -{i * 7}/q =x{i}\n" for i in range(60))


# ---------------------------------------------------------------------------------------
# Hand-written inputs: accepted ones, and rejected ones with the reason
# ---------------------------------------------------------------------------------------

HAND = {
    "arithmetic.gbnf": {
        "accept": [
            "1=1\n", "x=42\n", "a*b=c\n", "1 +2 = 3\n", "(1+2)*3 = 9\n",
            "( x_1 -y2 )/z=w\n", "1=1\n2=2\n", "a\t=\tb\n", "((a))=b\n",
            "foo_bar9 *baz = 0\n", "a=\nb\n", "12345678901234567890=0\n", "a=b\n\n",
            "(((1)))=( 2 )\n", "x/y/z-1+2*3=q\n", "( \n a\n)=\n(b)\n", "z9_=0\n",
            long_arithmetic(),
        ],
        "reject": [
            ("", "at least one equation"),
            ("1=1", "no final newline"),
            ("=1\n", "no left side"),
            ("1=\n", "no right side"),
            ("A=1\n", "upper case identifier"),
            ("1+=2\n", "operator without operand"),
            ("(1=2\n", "unclosed parenthesis"),
            ("1 + 2=3\n", "no blank allowed after an operator"),
            ("1==2\n", "double ="),
            ("_a=1\n", "identifier starts with _"),
            ("1a=2\n", "digit then letter"),
            ("1=2=3\n", "two = in one equation"),
            (" 1=1\n", "leading blank"),
            ("a=b c\n", "two terms without operator"),
            ("a^2=b\n", "^ is not an operator"),
            ("1=1\r\n", "carriage return"),
        ],
    },
    "c.gbnf": {
        "accept": [
            "", "int main(){}", "int main(){return 0;}",
            "float area(float r){return r*r*3;}",
            "char f(){char c = 65;return c;}",
            "int f(int n){if(n<=1){return 1;}return n*f(n-1);}",
            "int g(){int i = 0;while(i<10){i = i+1;}return i;}",
            "int s(){int t = 0;for(int i = 0; i<5; i = i+1){t = t+i;}return t;}",
            "int h(int x){if(x==0){return 1;}else{return 0;}}",
            "int m(){// comment\nreturn 1;}",
            "int m(){/* block\n comment */return -1;}",
            "int p(){print (x, y+1);return 0;}",
            "int q(){x = ( a+b )*c;return x;}",
            "int main(){}int helper(int a){return a/2;}",
            "int f(){if(a!=b){}return a;}",
            "int w(){while(x>=0){x = x-1;}return x;}",
            "int v(){call ();return --x;}",
            "int _x9(){float y_2 = 1/2-3*4+max(a, b, c);return y_2;}",
            "int k(){/**/return 0;}",
            "int r(){return (x);}",  # a call of a function named "return"
            "int e(){if(x>y){}else{}return\t\nx;}",
            long_c(),
        ],
        "reject": [
            ("int main() {}", "blank before {"),
            ("int main(){return 0}", "missing ;"),
            ("int x = 5;", "statement outside a function"),
            ("intmain(){}", "data type needs a blank after it"),
            ("void main(){}", "void is not a data type"),
            ("int main(){int x=5;}", "= needs blanks around it"),
            ("int main(){foo(1);}", "a call statement needs a blank before ("),
            ("int main(){x = (y);}", "parentheses need blanks inside"),
            ("int f(int a, int b){}", "only one parameter"),
            ("int main(){/* a **/}", "comment ending in **/"),
            ("int main(){\n  return 0;\n}", "no blanks between statements"),
            ("int main(){// no newline}", "line comment swallows }"),
            ("int main(){}\nint g(){}", "newline between functions"),
            ("int main(){return 0;", "unclosed body"),
            ("int main(){return x>y;}", "comparison outside a condition"),
            ("int main(){if(x){}}", "condition without comparison"),
            ("int 9lives(){}", "identifier starts with a digit"),
            (" int main(){}", "leading blank"),
        ],
    },
    "chess.gbnf": {
        "accept": [
            "1. e4 e5\n2. Nf3 Nc6\n",
            "1. e4 e5\n2. Nf3 Nc6\n3. Bb5 a6\n4. Ba4 Nf6\n5. O-O Be7\n",
            "1. d4 d5\n2. c4 dxc4\n3. e3 b5\n",
            "1. e4 c5\n2. Nf3 d6\n3. d4 cxd4\n4. Nxd4 Nf6\n5. Nc3 a6\n",
            "1. f3 e5\n2. g4 Qh4#\n",
            "1. O-O-O O-O\n2. Rd1 Rfe8\n",
            "1. R1a3 Nbd7\n2. Qh4xe1 Kxh8\n",
            "1. e4 e5\n10. Nf3 Nc6\n",
            "1. e4 e5\n99. Ke2 Ke7\n",
            "1. Bb5+ Kf8\n2. exd8=N# a1=Q\n",
            "1. a4 h5\n2. axb5 hxg4+\n3. b8=R Rh1\n",
            "1. e4 e5\n2. e8=K e5\n",
            "1. Kxa1 Qa8+\n2. Rxh8# O-O#\n",
            long_chess(),
        ],
        "reject": [
            ("1. e4 e5\n", "at least two move lines"),
            ("1. e4\n2. e5 Nf3\n", "a line needs two moves"),
            ("1. e9 e5\n2. d4 d5\n", "rank 9"),
            ("1. e4 e5\n0. d4 d5\n", "move number 0"),
            ("1. e4 e5\n100. d4 d5\n", "three-digit move number"),
            ("1.e4 e5\n2. d4 d5\n", "no blank after the number"),
            ("1. Pe4 e5\n2. d4 d5\n", "P is not a piece letter"),
            ("1. e4 e5\n2. d4 d5", "no final newline"),
            ("1. 0-0 e5\n2. d4 d5\n", "castling with zeros"),
            ("1. e4 e5 \n2. d4 d5\n", "trailing blank"),
            ("1. e4 e5\n2. e8=P e5\n", "promotion to a pawn"),
            ("2. e4 e5\n3. d4 d5\n", "must start with 1."),
            ("1. i4 e5\n2. d4 d5\n", "file i"),
            ("1. e4 e5\n2. Nf3 Nc6\n\n", "blank line"),
            ("1. e4  e5\n2. d4 d5\n", "two blanks between moves"),
            ("1. O-O-O-O e5\n2. d4 d5\n", "castling too long"),
            ("1. e4+# e5\n2. d4 d5\n", "check and mate signs together"),
        ],
    },
    "english.gbnf": {
        "accept": [
            "Hello", "x", "Hello, world!", "The quick brown fox jumps over the lazy dog.",
            "It's 5 o'clock; time for tea?", "a\tb\nc", '{"json": [1,2]}',
            "C:\\path\\to\\file", "100% (approx.) -- see #3 @home ~ `code` ^_^ | <tag> = [x]",
            "e-mail: a.b@c.com", "Line one.\nLine two.", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
            "2024-01-01T12:00:00Z", ENGLISH, "\n".join([ENGLISH] * 4),
        ],
        "reject": [
            ("", "empty"),
            (" leading", "leading blank"),
            ("trailing ", "trailing blank"),
            ("double  space", "two blanks in a row"),
            ("café", "é is not ASCII"),
            ("tab\t\tdouble", "two tabs in a row"),
            ("line\r\nbreak", "carriage return"),
            ("naïve", "ï is not ASCII"),
            ("emoji 😀", "emoji"),
            ("x\n", "trailing newline"),
            ("a\u00a0b", "no-break space"),
            ("“quoted”", "curly quotes"),
            ("a\x7fb", "DEL"),
            ("x\n\ny", "blank line"),
        ],
    },
    "japanese.gbnf": {
        "accept": [
            "こんにちは", "日本語", "カタカナ", "今日は良い天気ですね。", "東京タワー",
            "ありがとう、ございます。", "ー", "「こんにちは」", "〜", "日本 語", "こんにちは\n世界",
            "・", "々", "ゝゞ", "ヴ", "〆", "ゐ", "ゟ", "ヿ", "鿿", "一", "ぁ", "〾",
            "春\t夏\n秋 冬", JAPANESE, "\n".join([JAPANESE] * 6),
        ],
        "reject": [
            ("", "empty"),
            ("Hello", "Latin letters"),
            ("日本語!", "ASCII !"),
            ("日本語。 ", "trailing blank"),
            ("全角！", "full-width ! (U+FF01)"),
            ("ｶﾀｶﾅ", "half-width katakana"),
            ("한국어", "Hangul"),
            ("日本  語", "two blanks in a row"),
            ("\u3000", "ideographic space U+3000 (below the punctuation range)"),
            ("日本語123", "ASCII digits"),
            ("𠮷", "CJK extension B, outside the BMP"),
            ("〿", "U+303F, just past the punctuation range"),
            ("ꀀ", "U+A000, just past the CJK range"),
            ("゠", "U+30A0, between hiragana and katakana"),
            ("\u3040", "U+3040, just below hiragana"),
            ("\u4dff", "U+4DFF, just below the CJK range"),
            (" 日本", "leading blank"),
            ("日本\r\n語", "carriage return"),
        ],
    },
    "json.gbnf": {
        "accept": [
            "{}", "{ }", '{"a":1}', '{"name": "Alice", "age": 30}',
            '{"list": [1, 2, 3], "nested": {"x": null, "t": true, "f": false}}',
            '{"esc": "quote \\" backslash \\\\ nl \\n tab \\t \\b\\f\\r \\u00e9 \\uD83D\\uDE00"}',
            '{"unicode": "日本語 émoji 😀"}', '{"num": -0.5e+3}', '{"n": 1E9}',
            '{"empty": "", "arr": [], "obj": {}}', '{"a":[{"b":[{"c":[]}]}]}',
            '{"x": 1}\n', '{"k": 1234567890123456}', '{"deep":\n\t\t{"x": 0}}',
            '{"a" : 1}', '{"e": 1e01, "f": 2.5E-3, "g": 0.0}',
            '{\n  "a": [\n    1,\n    2\n  ]\n}',
            '{"a": "\u0080 \u00ff \u2028 \uffff"}', '{"neg": -0, "big": -9999999999999999}',
            long_json(None), long_json(2),
        ],
        "reject": [
            ("", "empty"),
            ("[]", "root must be an object"),
            ('{"a":1,}', "trailing comma"),
            ("{a:1}", "unquoted key"),
            ("{'a':1}", "single quotes"),
            ('{"a":01}', "leading zero"),
            ('{"a":1e10}', "exponent digits after the first must be 1-9 in this grammar"),
            ('{"a":"\\/"}', "\\/ escape is not in this grammar"),
            ('{"a":"tab\there"}', "raw tab in a string"),
            ('{"a":.5}', "no integer part"),
            ('{"a":1.}', "no fraction digits"),
            ('{"a":+1}', "leading +"),
            ('{"a":tru}', "misspelt true"),
            ('{"a":1}}', "extra }"),
            ('{  "a":1}', "two blanks"),
            ('{"a":"\\x41"}', "\\x escape"),
            ('{"a":"\\u00g0"}', "bad hex digit"),
            ('{"a":1} extra', "text after the object"),
            ('{"a":NaN}', "NaN"),
            ('{"a":12345678901234567}', "17-digit integer"),
            ('{"a":"\x7f"}', "raw DEL in a string"),
            ('{"a":1}\n\n', "two newlines"),
            ('{"a":1}  ', "two trailing blanks"),
            ('{"a":\n' + " " * 21 + "1}", "indentation of 21"),
            ('{"a" 1}', "missing colon"),
            ('{"a":1 "b":2}', "missing comma"),
            ('{"a":"unterminated}', "unterminated string"),
            ('{"a":"\n"}', "raw newline in a string"),
        ],
    },
    "json_arr.gbnf": {
        "accept": [
            "[\n]", "[\n1]", "[\n1,\n2,\n3]", '[\n{"a": 1},\n{"b": [true, false, null]}]',
            '[\n "x",\n "y"\n]', "[\n\n  1]",
            "[\n1e10]", '[\n"日本"]', '[\n"a"\n,\n"b"]', "[\n-0.25E+12]",
            '[\n{"esc": "\\"\\\\\\n\\u0041"}]', "[\n[],\n{},\n\"\"]", long_json_arr(),
        ],
        "reject": [
            ("[]", "must open with [ and a newline"),
            ("[\n1,2]", "separator must be a comma and a newline"),
            ("[\n1]\n", "nothing after the closing ]"),
            ("[\n1] ", "nothing after the closing ]"),
            ("{}", "root must be an array"),
            ("[\n1e0]", "exponent must start with 1-9 in this grammar"),
            ("[\n1e05]", "exponent must start with 1-9 in this grammar"),
            ("[\n1,\n]", "trailing comma"),
            ('[\n  "x"]', "two blanks after the opening line"),
            (json.dumps([1, {"a": [2, 3]}, "z"], indent=2), "indented by json.dumps: two blanks"),
            ("[\n1, 2]", "comma and blank between top-level items"),
            ("[\r\n1]", "carriage return"),
            ("[\n'a']", "single quotes"),
            ("[\n[1,]]", "trailing comma inside"),
            ("[\n1", "unclosed"),
            ("[\n\"a\\q\"]", "bad escape"),
        ],
    },
    "list.gbnf": {
        "accept": [
            "- a\n", "- buy milk\n- walk the dog\n", "- café ☕ 日本\n", "- - nested looking\n",
            "- tab\there\n", "-  double space\n", "- 😀\n", "- x\n- y\n- z\n",
            "- trailing blank \n", "- \"quoted\" & <tagged>\n", "- \x7f\x00 control\n",
            "- next line\u2027ok\n", long_list(),
        ],
        "reject": [
            ("", "at least one item"),
            ("- a", "no final newline"),
            ("-a\n", "no blank after -"),
            ("* a\n", "* bullet"),
            ("- \n", "empty item"),
            ("- a\r\n", "carriage return"),
            ("- a\n\n", "blank line"),
            ("- line\u2028sep\n", "line separator U+2028"),
            ("- para\u2029sep\n", "paragraph separator U+2029"),
            ("- x\x0bx\n", "vertical tab"),
            ("- x\x0cx\n", "form feed"),
            ("- x\x85\n", "next line U+0085"),
            (" - a\n", "leading blank"),
            ("- a\n-b\n", "second item without blank"),
            ("- a\nb\n", "line without bullet"),
        ],
    },
}

# ---------------------------------------------------------------------------------------
# Feature grammars, given inline: (grammar, accepted inputs, rejected inputs)
# ---------------------------------------------------------------------------------------

FEATURES = [
    # escapes in strings
    ('root ::= "\\x41\\u00e9\\U0001F600\\t\\n\\r\\\\\\"\\[\\]"\n',
     ["Aé😀\t\n\r\\\"[]"], ["Aé😀\t\n\r\\\"[", "ae😀\t\n\r\\\"[]", "Aé😀\t\n\n\\\"[]"]),
    # character classes: ranges, negation, - at either end, escaped brackets, ^ not first
    ('root ::= [a-c] [^a-c] [-x] [x-] [\\]\\[] [^^] [\\u3041-\\u3043] [a^]\n',
     ["adxx]aあa", "c\n--[bぃ^", "a😀x-[\x00ぃa"],
     ["ddxx]aあa", "aaxx]aあa", "adyx]aあa", "adxx]^あa", "adxx]aぅa", "adxx]aあb",
      "adxx)aあa"]),
    # a range written with escapes, and a negated class over the whole BMP and beyond
    ('root ::= [\\x00-\\x1F]+ [^\\x00-\\uFFFF] [\\U0001F600-\\U0001F64F]*\n',
     ["\x00\x1f😀", "\t\n𠮷", "\x01😀😀🙏"], ["\x00a", " 😀", "\x00\x1f😀🚀", "\x00"]),
    # any character
    ('root ::= "<" . . ">"\n',
     ["<ab>", "<\n😀>", "<>>>", "<\x00\u2028>"], ["<a>", "<abc>", "<ab", "ab>"]),
    # every repetition form
    ('root ::= "a"{3} "b"{2,} "c"{0,2} "d"{1,3} ("x" "y"){2} "e"? "f"* "g"+\n',
     ["aaabbdxyxyg", "aaabbbbccdddxyxyefffgg", "aaabbcdxyxyeg"],
     ["aabbdxyxyg", "aaabdxyxyg", "aaabbcccdxyxyg", "aaabbddddxyxyg", "aaabbxyxyg",
      "aaabbdxyg", "aaabbdxyxy", "aaabbdxyxyeeg"]),
    # blanks and comments inside repetition braces and before postfix operators
    ('root ::= "a" * "b" { 1 , 2 } # trailing comment\n',
     ["b", "aab", "abb"], ["", "abbb", "ba"]),
    # nested groups across lines, comments inside, newline after | outside parentheses
    ('root ::= (\n  # a comment line\n  "a" |\n  "b" ( "c"\n      | "d" )\n) "!" |\n'
     '  "z"\n',
     ["a!", "bc!", "bd!", "z"], ["b!", "ab!", "a", "z!", "bcd!"]),
    # CRLF line endings, rules used before they are defined
    ('root ::= item+ end\r\nitem ::= "x" | "y"\r\nend ::= "."\r\n',
     ["x.", "xyyx."], [".", "xz.", "x"]),
    # empty alternatives and empty literals
    ('root ::= "[" ( | "x" | ) "]" "" opt "end"\nopt ::= | "?"\n',
     ["[]end", "[x]?end", "[x]end"], ["[xx]end", "[]??end", "[ ]end"]),
    # rule names with upper case, digits and dashes; # inside a literal is not a comment
    ('root ::= Item-1 "#" item2 # comment\nItem-1 ::= "a#b"\nitem2 ::= [0-9]\n',
     ["a#b#7"], ["a#b#", "a#b7"]),
    # recursion that is not left recursion: balanced parentheses, right recursion
    ('root ::= "(" root ")" root | ""\n',
     ["", "()", "(())", "()()", "((()())())"], ["(", ")", "(()", "())", ")("]),
    ('root ::= "a" root | "b"\n', ["b", "ab", "a" * 50 + "b"], ["", "a", "ba", "abb"]),
    # a long bounded repetition
    ('root ::= [0-9]{100}\n', ["7" * 100, "0123456789" * 10], ["7" * 99, "7" * 101]),
    # a repeated repetition, and a repetition of an optional group
    ('root ::= ("ab"? "c")+ "d"+?\n', ["c", "abcc", "cabcdd", "abcabcd"],
     ["", "ab", "abd", "acc"]),
    # repetition applies to the last item only
    ('root ::= "ab"+ "c" "d"?\n', ["abc", "ababcd"], ["abbc", "abcdd", "c"]),
]

# ---------------------------------------------------------------------------------------
# Malformed grammars
# ---------------------------------------------------------------------------------------

SYNTAX_ERRORS = [
    ("", "empty grammar: no root rule"),
    ("# only a comment\n", "no rules: no root rule"),
    ('item ::= "a"\n', "no root rule"),
    ("root ::= item\n", "undefined rule 'item'"),
    ('root ::= "a" (b | "c")\n', "undefined rule 'b' inside a group"),
    ('root ::= "a"\nitem ::= missing*\n', "undefined rule in a rule that root does not use"),
    ('root "a"\n', "missing ::="),
    ('root := "a"\n', ":= instead of ::="),
    ('root = "a"\n', "= instead of ::="),
    ('ro ot ::= "a"\n', "blank inside a rule name"),
    ('::= "a"\n', "missing rule name"),
    ('root ::= "a" ::= "b"\n', "second ::= on one line"),
    ('root ::= "abc\n', "unterminated string literal"),
    ('root ::= "a\\', "input ends inside an escape"),
    ("root ::= [a-z\n", "unterminated character class"),
    ("root ::= [a-", "input ends inside a character range"),
    ('root ::= "\\q"\n', "unknown escape \\q"),
    ("root ::= [\\d]\n", "unknown escape \\d in a character class"),
    ('root ::= "\\x4"\n', "\\x needs 2 hex digits"),
    ('root ::= "\\u12G4"\n', "bad hex digit in \\u"),
    ('root ::= "\\U0001F60"\n', "\\U needs 8 hex digits"),
    ('root ::= ("a" | "b"\n', "unbalanced ("),
    ('root ::= (("a")\n', "unbalanced ( (nested)"),
    ('root ::= "a")\n', "unbalanced )"),
    ('root ::= "a" ]\n', "stray ]"),
    ('root ::= * "a"\n', "* with nothing to repeat"),
    ('root ::= "a" | +\n', "+ at the start of an alternative"),
    ('root ::= ( ? "a" )\n', "? at the start of a group"),
    ('root ::= "a"{\n', "{ without a count"),
    ('root ::= "a"{,3}\n', "{,n} without a minimum"),
    ('root ::= "a"{2\n', "unterminated {"),
    ('root ::= "a"{1,2\n', "unterminated {m,n"),
    ('root ::= "a"{x}\n', "non-numeric repetition count"),
    ('root ::= "a"{3,2}\n', "repetition maximum below its minimum (llama.cpp does not check "
                             "this and loops)"),
    ('root ::= "a" ; "b"\n', "unexpected character ;"),
    ('root ::= "a"\n  "b"\n', "a line break outside parentheses ends the rule, and the next "
                              "line is not a rule"),
    ('root ::= "a"\nroot\n', "name without ::="),
    ('root ::= root "a" | "a"\n', "left recursion"),
    ('root ::= expr\nexpr ::= expr "+" num | num\nnum ::= [0-9]+\n', "left recursion in expr"),
    ('root ::= a "x"\na ::= root "y" | "z"\n', "indirect left recursion"),
    ('root ::= ("b" | root) "a"\n', "left recursion through a group"),
    ('root ::= ws root "a" | "b"\nws ::= | " "\n', "left recursion behind a rule that can be "
                                                   "empty"),
    ('root ::= "a"? root "b" | "c"\n', "left recursion behind an optional item"),
]

# ---------------------------------------------------------------------------------------


def mutate(rng, text, alphabet):
    """One random edit of text and its description."""
    op = rng.choice(["truncate", "delete", "insert", "replace", "duplicate", "swap"])
    i = rng.randrange(len(text))
    c = rng.choice(alphabet)
    if op == "truncate":
        return text[:i], f"truncated to {i}"
    if op == "delete":
        return text[:i] + text[i + 1:], f"deleted {i}"
    if op == "insert":
        return text[:i] + c + text[i:], f"inserted {c!r} at {i}"
    if op == "replace":
        return text[:i] + c + text[i + 1:], f"replaced {i} by {c!r}"
    if op == "duplicate":
        return text[:i] + text[i] + text[i:], f"duplicated {i}"
    i = min(i, len(text) - 2)
    return text[:i] + text[i + 1] + text[i] + text[i + 2:], f"swapped {i} and {i + 1}"


def mutants(rng, recogniser, sources, seen):
    """Seeded mutations of the accepted sources: some rejected, a few still accepted."""
    cases = []
    for source in sources:
        if len(source) > MUTATE_MAX_LEN:
            half = source[:len(source) // 2]
            cases.append((half, recogniser.accepts(half), "long input truncated to half"))
    alphabet = sorted(set("".join(sources)) | set(" \n\t0x\"é日"))
    short = [s for s in sources if 2 <= len(s) <= MUTATE_MAX_LEN]
    wanted = {True: MUTANTS_ACCEPTED, False: MUTANTS_REJECTED}
    kept = {True: 0, False: 0}
    for _ in range(5000):
        if kept == wanted:
            break
        source = rng.choice(short)
        text, how = mutate(rng, source, alphabet)
        if text in seen:
            continue
        verdict = recogniser.accepts(text)
        if kept[verdict] < wanted[verdict]:
            seen.add(text)
            kept[verdict] += 1
            shown = json.dumps(source[:40], ensure_ascii=False) + ("..." if len(source) > 40 else "")
            cases.append((text, verdict, f"mutation of {shown}: {how}"))
    return cases


def checked(recogniser, text, expected, label):
    verdict = recogniser.accepts(text)
    if verdict != expected:
        sys.exit(f"{label}: Lark says {'accept' if verdict else 'reject'} for {text!r}")
    return verdict


def jsonl(record):
    line = json.dumps(record, ensure_ascii=False)
    for c in "\u0085\u2028\u2029":  # line breaks to some readers: keep them escaped
        line = line.replace(c, f"\\u{ord(c):04x}")
    return line + "\n"


def grammar_cases(grammar_dir):
    lines, counts = [], {}
    for name in sorted(HAND):
        with open(os.path.join(grammar_dir, name), encoding="utf-8") as f:
            recogniser = Recogniser(f.read())
        hand = HAND[name]
        cases = [(s, checked(recogniser, s, True, name), "hand-written") for s in hand["accept"]]
        cases += [(s, checked(recogniser, s, False, name), "hand-written: " + why)
                  for s, why in hand["reject"]]
        seen = {s for s, _, _ in cases}
        rng = random.Random(f"{SEED}:{name}")
        cases += mutants(rng, recogniser, hand["accept"], seen)
        for text, verdict, how in cases:
            lines.append(jsonl({"grammar": name, "input": text, "accepted": verdict, "how": how}))
        counts[name] = (sum(v for _, v, _ in cases), sum(not v for _, v, _ in cases))
    return lines, counts


def feature_cases():
    lines = []
    for gbnf, good, bad in FEATURES:
        recogniser = Recogniser(gbnf)
        for text in good + bad:
            verdict = checked(recogniser, text, text in good, repr(gbnf))
            lines.append(jsonl({"gbnf": gbnf, "input": text, "accepted": verdict}))
    return lines


def syntax_error_cases():
    lines = []
    for gbnf, reason in SYNTAX_ERRORS:
        try:
            parse_gbnf(gbnf)
        except GbnfError:
            lines.append(jsonl({"gbnf": gbnf, "reason": reason}))
        else:
            sys.exit(f"gbnf_lark.py accepts the malformed grammar {gbnf!r} ({reason})")
    return lines


def write(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)
    print(f"wrote {len(lines)} lines to {path}")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else DATA_DIR
    lines, counts = grammar_cases(os.path.join(DATA_DIR, "gbnf"))
    for name, (accepted, rejected) in counts.items():
        print(f"{name}: {accepted} accepted, {rejected} rejected")
    write(os.path.join(out, "gbnf_cases.jsonl"), lines)
    write(os.path.join(out, "gbnf_feature_cases.jsonl"), feature_cases())
    write(os.path.join(out, "gbnf_syntax_errors.jsonl"), syntax_error_cases())


if __name__ == "__main__":
    main()
