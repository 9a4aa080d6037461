// The `qwen3` program, run as a user runs it, against other implementations' outputs: greedy tokens
// and logits from llama.cpp, ids and text from Hugging Face `tokenizers`, prompts from the Jinja
// template, quantized files byte for byte from llama-quantize; the shape of `bench --json`; a chat
// driven through stdin; and the exit status and message of each kind of error. In a build without
// the program (tools/sanitize.sh builds none) every case is reported as skipped.
#include <doctest/doctest.h>

#include <fstream>

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <qwen3/tokenizer.hpp>

#include "golden.hpp"
#include "random_model.hpp"
#include "support.hpp"

#if defined(QWEN3_TOOL_PROGRAM)
constexpr bool kHaveTool = true;
constexpr const char* kTool = QWEN3_TOOL_PROGRAM;
#else
constexpr bool kHaveTool = false;
constexpr const char* kTool = "";
#endif

namespace {

struct Run {
    int status = -1;
    std::string out, err;
};

// Runs `qwen3 ARGS` with `input` on stdin; returns the exit status and both outputs.
Run qwen3_tool(const std::string& args, const std::string& input = "") {
    test::TempDir dir;
    const std::string in = dir.file("stdin"), out = dir.file("stdout"), err = dir.file("stderr");
    test::write_file(in, input);
    const std::string command = std::string("\"") + kTool + "\" " + args + " <\"" + in + "\" >\"" + out + "\" 2>\"" + err + "\"";
    INFO(command);
    const int raw = std::system(command.c_str());
    Run r;
    r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    r.out = test::read_file(out);
    r.err = test::read_file(err);
    return r;
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

std::vector<std::int32_t> parse_ids(const std::string& text) {
    std::vector<std::int32_t> out;
    std::string digits;
    for (char c : text + " ") {
        if (c >= '0' && c <= '9') {
            digits += c;
        } else if (!digits.empty()) {
            out.push_back(std::stoi(digits));
            digits.clear();
        }
    }
    return out;
}

std::string join(const std::vector<std::int32_t>& ids) {
    std::string s;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (i) s += ',';
        s += std::to_string(ids[i]);
    }
    return s;
}

std::string micro() { return quoted(test::data_path("qwen3-micro-f32.gguf")); }
std::string tokenizer_json() { return quoted(test::data_path("tokenizer/tokenizer.json")); }

// The FNV-1a 64 digest of a file, as tests/data/quant/micro_llamacpp.json records llama-quantize's.
std::string fnv1a64_hex(const std::string& bytes) {
    std::uint64_t h = 0xCBF29CE484222325ull;
    for (unsigned char c : bytes) h = (h ^ c) * 0x100000001B3ull;
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

}  // namespace

TEST_SUITE_BEGIN("cli" * doctest::skip(!kHaveTool));

TEST_CASE("qwen3 generate --ids on the tiny model file prints llama.cpp's greedy tokens") {
    test::TempDir dir;
    qwen3::ThreadPool pool(2);
    const std::string path = dir.file("tiny.gguf");
    test::write_gguf(test::make_random_model(test::tiny_spec(), pool), path, "tiny");
    const test::Golden g = test::load_golden("tiny", "short5", 151936);
    const Run r = qwen3_tool("generate " + quoted(path) + " --tokenizer " + tokenizer_json() + " -p \"The capital of France is\" -n " +
                             std::to_string(g.greedy.size()) + " --temp 0 --ids --ignore-eos -t 2");
    REQUIRE(r.status == 0);
    const std::vector<std::int32_t> ids = parse_ids(r.out);
    REQUIRE(ids.size() == g.greedy.size());
    std::size_t n = 0;  // llama.cpp's path is comparable up to its first near-tie
    while (n < g.greedy.size() && g.margins[n] > 1e-2) ++n;
    CHECK(n > 4);
    CHECK(std::vector<std::int32_t>(ids.begin(), ids.begin() + long(n)) == std::vector<std::int32_t>(g.greedy.begin(), g.greedy.begin() + long(n)));
}

TEST_CASE("qwen3 generate --grammar prints exactly the text, a sentence of the grammar") {
    test::TempDir dir;
    const std::string gbnf = dir.file("date.gbnf");
    std::ofstream(gbnf) << "root ::= \"20\" [0-9] [0-9] \"-\" (\"0\" [1-9] | \"1\" [0-2]) \"-\" [0-2] [0-9]\n";
    for (const char* seed : {"1", "2"}) {
        const Run r = qwen3_tool("generate " + micro() + " -p \"Date:\" --grammar " + quoted(gbnf) + " --temp 1 --seed " + seed + " -n 40 -t 2");
        REQUIRE(r.status == 0);
        CAPTURE(r.out);
        REQUIRE(r.out.size() == 10);  // nothing else on stdout, not even a newline
        CHECK((r.out.substr(0, 2) == "20" && r.out[4] == '-' && r.out[7] == '-'));
        CHECK(r.err.find("stop: end of turn") != std::string::npos);
    }
}

TEST_CASE("qwen3 logits writes every position's logits, row by row, as llama.cpp computes them") {
    test::TempDir dir;
    const test::Golden g = test::load_golden("micro", "m2", 4096);
    const Run r = qwen3_tool("logits " + micro() + " --tokens " + join(g.tokens) + " --out " + quoted(dir.file("l.f32")) + " -t 2");
    REQUIRE(r.status == 0);
    const std::vector<float> rows = test::read_floats(dir.file("l.f32"));
    REQUIRE(rows.size() == g.tokens.size() * 4096);
    // the tool's arena is the default BF16 one, which moves the micro model's logits by about 3e-3
    for (std::size_t i = 0; i < g.positions.size(); ++i)
        test::check_row(std::span<const float>(rows).subspan(std::size_t(g.positions[i]) * 4096, 4096), g.prompt_row(i), 1e-2f,
                        "position " + std::to_string(g.positions[i]));
    // without --out: the top 5 of the last position, llama.cpp's argmax first
    const Run top = qwen3_tool("logits " + micro() + " --tokens " + join(g.tokens) + " -t 2");
    REQUIRE(top.status == 0);
    CHECK(top.out.find("top 5 of position 63 (variant Qwen3-micro)") != std::string::npos);
    const std::span<const float> last = g.prompt_row(g.positions.size() - 1);
    REQUIRE(test::top_margin(last) > 2e-2f);
    char first[32];
    std::snprintf(first, sizeof first, "1  id %6d", test::argmax(last));
    CHECK(top.out.find(first) != std::string::npos);
}

TEST_CASE("qwen3 info reports the micro model's hyperparameters and tensors") {
    const Run r = qwen3_tool("info " + micro() + " --tensors");
    REQUIRE(r.status == 0);
    // the micro model's definition (tests/data/README.md): hidden 128, 2 layers, 4/2 heads of 64, FFN
    // 384, vocabulary 4096, tied, every tensor F32
    for (const char* line : {"variant:         Qwen3-micro", "hidden:          128", "layers:          2",
                             "heads:           4 query, 2 key/value, head_dim 64", "ffn:             384",
                             "vocab:           4096 (tied embeddings)", "tensors:         24,"})
        CHECK_MESSAGE(r.out.find(line) != std::string::npos, line);
    // the down projection of layer 1: [hidden, ffn] f32, 128 x 384 x 4 bytes
    std::istringstream lines(r.out);
    std::string line;
    bool found = false;
    while (std::getline(lines, line))
        if (line.rfind("blk.1.ffn_down.weight ", 0) == 0) {
            std::istringstream words(line);
            std::string name, type, rows, cols, bytes;
            words >> name >> type >> rows >> cols >> bytes;
            CHECK(type == "F32");
            CHECK(rows + " " + cols == "[128, 384]");
            CHECK(bytes == "196608");
            found = true;
        }
    CHECK(found);
}

TEST_CASE("qwen3 tokenize and detokenize give Hugging Face's ids and text") {
    std::string requests, texts;
    std::vector<qwen3::json::Value> cases = test::read_jsonl("tokenizer/cases.jsonl");
    for (const qwen3::json::Value& c : cases) requests += "{\"text\": " + qwen3::json::quote(c.at("text").as_string()) + "}\n";
    const Run r = qwen3_tool("tokenize --tokenizer " + tokenizer_json() + " --jsonl", requests);
    REQUIRE(r.status == 0);
    std::istringstream lines(r.out);
    std::string line, id_requests;
    std::size_t i = 0;
    for (; std::getline(lines, line) && i < cases.size(); ++i) {
        const qwen3::json::Value got = qwen3::json::parse(line, "stdout");
        CHECK_MESSAGE(qwen3::json::dump(got.at("ids")) == qwen3::json::dump(cases[i].at("ids")), "case " << i);
        id_requests += "{\"ids\": " + qwen3::json::dump(cases[i].at("ids")) + "}\n";
    }
    CHECK(i == cases.size());
    // ids to text (Hugging Face's decode, with and without skip_special_tokens)
    std::vector<qwen3::json::Value> decodes;
    for (const qwen3::json::Value& c : test::read_jsonl("tokenizer/cases_extra.jsonl"))
        if (c.at("kind").as_string() == "decode") {
            decodes.push_back(c);
            id_requests += "{\"ids\": " + qwen3::json::dump(c.at("ids")) + "}\n";
        }
    REQUIRE(decodes.size() == 300);
    for (const bool skip : {false, true}) {
        const Run back = qwen3_tool("detokenize --tokenizer " + tokenizer_json() + " --jsonl" + (skip ? " --skip-special" : ""), id_requests);
        REQUIRE(back.status == 0);
        std::istringstream text_lines(back.out);
        std::size_t k = 0;
        for (; std::getline(text_lines, line); ++k) {
            if (k < cases.size()) continue;  // the tokenize cases' ids, whose text is the normalized input
            const qwen3::json::Value& want = decodes[k - cases.size()];
            CHECK_MESSAGE(qwen3::json::parse(line, "stdout").at("text").as_string() ==
                              want.at(skip ? "skip_special_text" : "text").as_string(),
                          "decode case " << k - cases.size());
        }
        CHECK(k == cases.size() + decodes.size());
    }
    // one text, no --jsonl: a JSON array and a newline
    const Run one = qwen3_tool("tokenize --tokenizer " + tokenizer_json(), "Hello, world!");
    CHECK(one.out == "[9707,11,1879,0]\n");
}

TEST_CASE("qwen3 template renders each request as the Jinja template does") {
    const std::vector<qwen3::json::Value> cases = test::read_jsonl("chat/cases.jsonl");
    std::string requests;
    for (const qwen3::json::Value& c : cases) requests += qwen3::json::dump(c) + "\n";
    const Run r = qwen3_tool("template --jsonl", requests);
    REQUIRE(r.status == 0);
    std::istringstream lines(r.out);
    std::string line;
    std::size_t i = 0;
    for (; std::getline(lines, line) && i < cases.size(); ++i)
        CHECK_MESSAGE(qwen3::json::parse(line, "stdout").at("rendered").as_string() == cases[i].at("rendered").as_string(), "case " << i);
    CHECK(i == cases.size());
}

TEST_CASE("qwen3 template --chat-template and --model run a template file and a model's own template") {
    const std::vector<qwen3::json::Value> cases = test::read_jsonl("chat/cases.jsonl");
    const std::vector<qwen3::json::Value> coder = test::read_jsonl("chat/templates/Qwen3-Coder.jsonl");
    std::string requests;
    for (const qwen3::json::Value& c : cases) requests += qwen3::json::dump(c) + "\n";
    // a template file: each line as Python Jinja2 rendered it, or an error where it raised
    const Run r = qwen3_tool("template --jsonl --chat-template " + quoted(test::data_path("chat/templates/Qwen3-Coder.jinja")), requests);
    std::istringstream lines(r.out);
    std::string line;
    std::size_t i = 0, errors = 0;
    for (; std::getline(lines, line) && i < cases.size(); ++i) {
        CAPTURE(i);
        const qwen3::json::Value got = qwen3::json::parse(line, "stdout");
        REQUIRE(coder[i].at("case").as_string() == "cases.jsonl:" + std::to_string(i));
        if (const qwen3::json::Value* want = coder[i].find("rendered")) {
            CHECK(got.at("rendered").as_string() == want->as_string());
        } else {
            CHECK(got.at("error").as_string().find("chat template: line ") != std::string::npos);
            ++errors;
        }
    }
    CHECK(i == cases.size());
    CHECK(r.status == (errors ? 1 : 0));
    // the micro GGUF carries the Qwen3 template (tokenizer.chat_template), as llama.cpp's converter writes it
    const Run m = qwen3_tool("template --jsonl --model " + micro(), requests);
    REQUIRE(m.status == 0);
    std::istringstream model_lines(m.out);
    for (i = 0; std::getline(model_lines, line) && i < cases.size(); ++i)
        CHECK_MESSAGE(qwen3::json::parse(line, "stdout").at("rendered").as_string() == cases[i].at("rendered").as_string(), "case " << i);
    CHECK(i == cases.size());
    // a folder without tokenizer_config.json or chat_template.jinja has none
    const Run none = qwen3_tool("template --model " + quoted(test::data_path("qwen3-micro-f32-hf")), requests);
    CHECK(none.status != 0);
    CHECK(none.err.find("has no chat template") != std::string::npos);
}

TEST_CASE("qwen3 quantize writes the bytes llama-quantize writes") {
    const qwen3::json::Value reference = test::read_json(test::data_path("quant/micro_llamacpp.json"));
    test::TempDir dir;
    int checked = 0;
    for (const char* type : {"Q8_0", "Q4_0", "F16", "BF16"}) {  // the types whose encoding is fixed by formula
        CAPTURE(type);
        const std::string out = dir.file(std::string(type) + ".gguf");
        const Run r = qwen3_tool("quantize " + micro() + " " + quoted(out) + " " + type + " -q -t 2");
        REQUIRE(r.status == 0);
        CHECK(r.out.find(std::string("(") + type + ", 24 tensors)") != std::string::npos);
        const std::string bytes = test::read_file(out);
        CHECK(std::int64_t(bytes.size()) == reference.at(type).at("bytes").as_int());
        CHECK(fnv1a64_hex(bytes) == reference.at(type).at("fnv1a64").as_string());
        ++checked;
    }
    CHECK(checked == 4);
}

// Every non-empty line of `out`, parsed as JSON.
static std::vector<qwen3::json::Value> json_lines(const std::string& out) {
    std::istringstream lines(out);
    std::vector<qwen3::json::Value> rows;
    for (std::string line; std::getline(lines, line);)
        if (!line.empty()) rows.push_back(qwen3::json::parse(line, "stdout"));
    return rows;
}

TEST_CASE("qwen3 bench --json prints one line per test with the units compare.py reads") {
    const Run r = qwen3_tool("bench " + micro() + " -p 16 -n 4 -r 1 -t 1 --json");
    REQUIRE(r.status == 0);
    const std::vector<qwen3::json::Value> rows = json_lines(r.out);
    REQUIRE(rows.size() == 2);
    // every matrix once per token, the tied embedding as the output matrix, F32: 4 bytes a weight
    const double weights = 2 * (128.0 * 256 + 2 * 128 * 128 + 256 * 128 + 3 * 128 * 384) + 4096.0 * 128;
    for (const auto& [row, test] : {std::pair{0, "pp16"}, std::pair{1, "tg4"}}) {
        const qwen3::json::Value& j = rows[std::size_t(row)];
        CHECK(j.at("test").as_string() == test);
        CHECK(j.at("variant").as_string() == "Qwen3-micro");
        CHECK(j.at("format").as_string() == "F32");
        CHECK(j.at("threads").as_int() == 1);
        CHECK(j.at("tokens_per_s").as_double() > 0);
        CHECK(j.at("weights_gb_per_token").as_double() == doctest::Approx(weights * 4 / 1e9).epsilon(1e-3));
    }
    CHECK(rows[1].at("weights_gb_per_s").as_double() > 0);
}

TEST_CASE("qwen3 bench -d runs the tests after a context of each depth and counts its KV bytes") {
    const Run r = qwen3_tool("bench " + micro() + " -p 4 -n 2 -r 1 -t 1 -d 0,8 --json");
    REQUIRE(r.status == 0);
    const std::vector<qwen3::json::Value> rows = json_lines(r.out);
    REQUIRE(rows.size() == 5);  // pp4, tg2; the context of 8 filled once; pp4, tg2 after it
    const std::pair<const char*, int> expected[] = {{"pp4", 0}, {"tg2", 0}, {"fill8", 0}, {"pp4", 8}, {"tg2", 8}};
    for (std::size_t i = 0; i < 5; ++i) {
        CAPTURE(i);
        CHECK(rows[i].at("test").as_string() == expected[i].first);
        CHECK(rows[i].at("depth").as_int() == expected[i].second);
        CHECK(rows[i].at("tokens_per_s").as_double() > 0);
    }
    // BF16 KV of the micro model: 2 layers x 2 KV heads x (64 + 64) elements x 2 bytes a position;
    // a decode test of 2 tokens after 8 reads on average the positions before its middle token (8.5)
    CHECK(rows[1].at("kv_gb_per_token").as_double() == doctest::Approx(1024 * 0.5 / 1e9));
    CHECK(rows[4].at("kv_gb_per_token").as_double() == doctest::Approx(1024 * 8.5 / 1e9));
    const Run too_deep = qwen3_tool("bench " + micro() + " -p 4 -n 2 -r 1 -d 100000000");
    CHECK(too_deep.status == 2);
    CHECK(too_deep.err.find("-d takes context depths") != std::string::npos);
}

TEST_CASE("qwen3 chat answers each line of stdin and ends at end of input") {
    test::TempDir dir;
    qwen3::ThreadPool pool(2);
    const std::string path = dir.file("tiny.gguf");
    test::write_gguf(test::make_random_model(test::tiny_spec(), pool), path, "tiny");
    const Run r = qwen3_tool("chat " + quoted(path) + " --tokenizer " + tokenizer_json() + " --no-think -n 3 -t 2 --temp 0",
                             "Hello!\n/help\nWhat is 2 + 2?\n");
    REQUIRE(r.status == 0);
    CHECK(r.err.find("Qwen3-tiny loaded; thinking off") != std::string::npos);
    CHECK(r.out.find("/clear") != std::string::npos);  // the help text
    // two replies, each 3 tokens (the limit), the second reusing the first turn's tokens
    std::size_t replies = 0;
    for (std::size_t at = r.err.find("[prompt "); at != std::string::npos; at = r.err.find("[prompt ", at + 1)) ++replies;
    CHECK(replies == 2);
    CHECK(r.err.find("reply 3 tokens") != std::string::npos);
    CHECK(r.err.find("token limit]") != std::string::npos);
    CHECK(r.err.find("(0 reused)") != std::string::npos);
}

TEST_CASE("qwen3 chat constrains tool calls to the tools' schemas and answers to a JSON Schema") {
    test::TempDir dir;
    qwen3::ThreadPool pool(2);
    const std::string path = dir.file("tiny.gguf"), tools = dir.file("tools.json"), schema = dir.file("schema.json");
    test::write_gguf(test::make_random_model(test::tiny_spec(), pool), path, "tiny");
    std::ofstream(tools) << R"js([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string", "maxLength": 12}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city", "days"], "additionalProperties": false}}}])js";
    std::ofstream(schema) << R"js({"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer",
        "minimum": 0, "maximum": 99}}, "required": ["ok", "n"], "additionalProperties": false})js";
    const std::string model = quoted(path) + " --tokenizer " + tokenizer_json() + " --no-think -n 200 -t 2 --temp 1";

    // required tool calls, their results, and the replies to them (required again: more calls); a
    // result before any call is refused
    const Run called = qwen3_tool("chat " + model + " --seed 5 --tools " + quoted(tools) + " --tool-choice required",
                                  "/tool early\nWeather in Paris?\n/tool 21\n/tool 22\n/tool 23\n");
    REQUIRE(called.status == 0);
    std::size_t calls = 0;
    for (std::size_t at = called.out.find("[tool call] "); at != std::string::npos; at = called.out.find("[tool call] ", at + 1)) {
        ++calls;
        const std::size_t end = called.out.find('\n', at);
        const std::string call = called.out.substr(at + 12, end - at - 12);
        CAPTURE(call);
        REQUIRE(call.rfind("get_weather ", 0) == 0);
        const qwen3::json::Value args = qwen3::json::parse(call.substr(12));
        REQUIRE(args.is_object());
        CHECK(args.as_object().size() == 2);
        REQUIRE(args.find("city"));
        REQUIRE(args.at("city").is_string());
        const std::string& city = args.at("city").as_string();
        CHECK(std::count_if(city.begin(), city.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }) <= 12);
        REQUIRE(args.at("days").is_integer());
        CHECK(args.at("days").as_int() >= 1);
        CHECK(args.at("days").as_int() <= 7);
    }
    CHECK(called.out.rfind("(no tool call awaits a result)", 0) == 0);
    std::size_t replies = 0;
    for (std::size_t at = called.err.find("[prompt "); at != std::string::npos; at = called.err.find("[prompt ", at + 1)) ++replies;
    CHECK(replies >= 2);  // the first reply's calls, answered, get a reply
    CHECK(calls >= replies);
    CHECK(called.err.find("token limit") == std::string::npos);

    // every answer is JSON of the schema
    const Run json = qwen3_tool("chat " + model + " --seed 9 --json-schema " + quoted(schema), "Hi\n");
    REQUIRE(json.status == 0);
    CHECK(json.err.find("end of turn]") != std::string::npos);
    const qwen3::json::Value answer = qwen3::json::parse(json.out);
    REQUIRE(answer.is_object());
    CHECK(answer.as_object().size() == 2);
    CHECK(answer.at("ok").is_bool());
    REQUIRE(answer.at("n").is_integer());
    CHECK(answer.at("n").as_int() >= 0);
    CHECK(answer.at("n").as_int() <= 99);

    // bad flags are usage errors; a bad tool fails before the model is read
    CHECK(qwen3_tool("chat " + model + " --tool-choice required").status == 2);
    CHECK(qwen3_tool("chat " + model + " --json --json-schema " + quoted(schema)).status == 2);
    const Run unknown = qwen3_tool("chat /no/such/model.gguf --tools " + quoted(tools) + " --tool-choice get_time");
    CHECK(unknown.status == 1);
    CHECK(unknown.err.find("\"get_time\", which is not one of the tools") != std::string::npos);
}

TEST_CASE("qwen3 exits with 2 on usage errors and 1 on failures, naming what went wrong") {
    const Run none = qwen3_tool("");
    CHECK(none.status == 2);
    CHECK(none.err.find("usage: qwen3 COMMAND") != std::string::npos);
    const Run unknown = qwen3_tool("frobnicate");
    CHECK(unknown.status == 2);
    CHECK(unknown.err.find("unknown command \"frobnicate\"") != std::string::npos);
    const Run missing = qwen3_tool("info /no/such/model.gguf");
    CHECK(missing.status == 1);
    CHECK(missing.err.find("error (io)") != std::string::npos);
    CHECK(missing.err.find("/no/such/model.gguf") != std::string::npos);
    const Run not_a_model = qwen3_tool("info " + tokenizer_json());
    CHECK(not_a_model.status == 1);
    CHECK(not_a_model.err.find("neither a GGUF file nor a Hugging Face model folder") != std::string::npos);
    const Run bad_number = qwen3_tool("generate " + micro() + " -p hi -n many");
    CHECK(bad_number.status == 2);
    CHECK(bad_number.err.find("many") != std::string::npos);
    const Run bad_type = qwen3_tool("quantize " + micro() + " /tmp/never.gguf Q3_XS");
    CHECK(bad_type.status == 2);
    CHECK(bad_type.err.find("unknown TYPE \"Q3_XS\"") != std::string::npos);
    const Run bad_token = qwen3_tool("logits " + micro() + " --tokens 1,4096");
    CHECK(bad_token.status == 1);
    CHECK(bad_token.err.find("token id 4096 at index 1 is outside the vocabulary") != std::string::npos);
    test::TempDir dir;
    const std::string schema = dir.file("schema.json"), gbnf = dir.file("g.gbnf");
    std::ofstream(schema) << R"js({"type": "object", "properties": {"a": {"type": "string", "pattern": "(?=x)"}}})js";
    std::ofstream(gbnf) << "root ::= \"a\" (\n";
    const Run bad_schema = qwen3_tool("generate " + micro() + " -p hi --json-schema " + quoted(schema));
    CHECK(bad_schema.status == 1);
    CHECK(bad_schema.err.find("/properties/a") != std::string::npos);
    const Run bad_gbnf = qwen3_tool("generate " + micro() + " -p hi --grammar " + quoted(gbnf));
    CHECK(bad_gbnf.status == 1);
    CHECK(bad_gbnf.err.find("GBNF: line") != std::string::npos);
    const Run both = qwen3_tool("generate " + micro() + " -p hi --grammar " + quoted(gbnf) + " --json-schema " + quoted(schema));
    CHECK(both.status == 2);
    const Run bad_ids = qwen3_tool("detokenize --tokenizer " + tokenizer_json(), "[1, -2]");
    CHECK(bad_ids.status == 1);
    CHECK(bad_ids.err.find("token ids must be integers") != std::string::npos);
}

TEST_SUITE_END();
