// The OpenAI wire format of `qwen3 serve` (examples/qwen3/serve/openai_api.hpp), without a socket:
// OpenAI-style requests become the prompts the Jinja2 template renders (tests/data/chat/cases.jsonl,
// tokenized by the Hugging Face-exact tokenizer); replies become OpenAI messages (reasoning_content,
// content, tool_calls with JSON-text arguments) the same whether read whole or streamed in any
// pieces; bad fields are 400s naming the field. tests/server drives the real server.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <qwen3/tokenizer.hpp>

#include "serve/openai_api.hpp"
#include "support.hpp"

namespace json = qwen3::json;

namespace {

const qwen3::Tokenizer& tokenizer() {
    static const qwen3::Tokenizer t = qwen3::Tokenizer::load(test::data_path("tokenizer/tokenizer.json"));
    return t;
}

serve::RequestDefaults defaults() {
    serve::RequestDefaults d;
    d.context = 40960;
    return d;
}

// A chat fixture (Hugging Face apply_chat_template arguments) as an OpenAI request body: tool-call
// arguments as the JSON text OpenAI clients send, content of user turns as text parts.
json::Value openai_request(const json::Value& fixture) {
    json::Array messages;
    for (const json::Value& m : fixture.at("messages").as_array()) {
        json::Value o(json::Object{});
        o.set("role", m.at("role"));
        const bool parts = m.at("role").as_string() == "user";
        if (parts) {  // [{"type": "text", "text": ...}], as multimodal clients send text
            json::Value part(json::Object{});
            part.set("type", json::Value("text"));
            part.set("text", m.at("content"));
            o.set("content", json::Value(json::Array{part}));
        } else {
            o.set("content", m.at("content"));
        }
        if (const json::Value* r = m.find("reasoning_content")) o.set("reasoning_content", *r);
        if (const json::Value* calls = m.find("tool_calls")) {
            json::Array list;
            for (const json::Value& c : calls->as_array()) {
                const json::Value& f = c.find("function") ? c.at("function") : c;
                json::Value function(json::Object{});
                function.set("name", f.at("name"));
                function.set("arguments", json::Value(json::dump(f.at("arguments"))));
                json::Value call(json::Object{});
                call.set("id", json::Value("call_x"));
                call.set("type", json::Value("function"));
                call.set("function", std::move(function));
                list.push_back(std::move(call));
            }
            o.set("tool_calls", json::Value(std::move(list)));
        }
        messages.push_back(std::move(o));
    }
    json::Value body(json::Object{});
    body.set("model", json::Value("qwen3"));
    body.set("messages", json::Value(std::move(messages)));
    if (const json::Value* tools = fixture.find("tools")) body.set("tools", *tools);
    if (const json::Value* think = fixture.find("enable_thinking"); think && !think->as_bool()) {
        json::Value kwargs(json::Object{});
        kwargs.set("enable_thinking", json::Value(false));
        body.set("chat_template_kwargs", std::move(kwargs));
    }
    return body;
}

bool usable(const json::Value& fixture) {
    const json::Value* gen = fixture.find("add_generation_prompt");
    if (!gen || !gen->as_bool()) return false;
    for (const json::Value& m : fixture.at("messages").as_array())
        if (!m.at("content").is_string()) return false;
    return true;
}

serve::ApiError error_of(const std::string& body_text) {
    try {
        serve::parse_chat_request(serve::parse_body(body_text), tokenizer(), defaults());
    } catch (const serve::ApiError& e) {
        return e;
    }
    FAIL("no error for " << body_text);
    return serve::ApiError(0, "", "");
}

}  // namespace

TEST_CASE("OpenAI chat requests render as the Jinja2 template renders the same conversation") {
    int checked = 0, with_tools = 0;
    for (const json::Value& fixture : test::read_jsonl("chat/cases.jsonl")) {
        if (!usable(fixture)) continue;
        const json::Value body = openai_request(fixture);
        INFO(json::dump(body));
        const serve::ParsedRequest r = serve::parse_chat_request(body, tokenizer(), defaults());
        CHECK(r.prompt == tokenizer().encode(fixture.at("rendered").as_string()));
        CHECK(r.parse_tool_calls == (fixture.find("tools") != nullptr));
        ++checked;
        with_tools += fixture.find("tools") != nullptr;
    }
    CHECK(checked >= 15);
    CHECK(with_tools >= 5);
}

TEST_CASE("request fields: defaults, overrides and the OpenAI names") {
    const serve::ParsedRequest a = serve::parse_chat_request(
        serve::parse_body(R"({"messages": [{"role": "user", "content": "hi"}], "chat_template_kwargs": {"enable_thinking": false}})"), tokenizer(),
        defaults());
    CHECK_FALSE(a.thinking);
    CHECK(a.options.sampling.temperature == doctest::Approx(0.7));  // Qwen3's non-thinking preset
    CHECK(a.options.sampling.top_k == 20);
    CHECK(a.options.max_tokens == 2048);
    CHECK(a.options.stop_at_end_of_turn);
    const serve::ParsedRequest b = serve::parse_chat_request(
        serve::parse_body(R"({"messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"}],
            "temperature": 0, "top_k": -1, "max_completion_tokens": 7, "max_tokens": 99, "stop": "END", "seed": 42,
            "stream": true, "stream_options": {"include_usage": true}, "ignore_eos": true, "user": "someone", "top_p": null})"),
        tokenizer(), defaults());
    CHECK(b.thinking);
    CHECK(b.options.sampling.temperature == 0);
    CHECK(b.options.sampling.top_k == 0);
    CHECK(b.options.sampling.top_p == doctest::Approx(0.95));  // null is unset: the thinking preset
    CHECK(b.options.sampling.seed == 42);
    CHECK(b.options.max_tokens == 7);
    CHECK(b.options.stop == std::vector<std::string>{"END"});
    CHECK(b.stream);
    CHECK(b.include_usage);
    CHECK_FALSE(b.options.stop_at_end_of_turn);
    // developer is the system role
    CHECK(b.prompt == tokenizer().encode("<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"));
}

TEST_CASE("response_format, tool_choice and grammar become the request's grammar, one per distinct constraint") {
    serve::RequestDefaults d = defaults();
    d.grammars = std::make_shared<serve::GrammarCache>(tokenizer());
    auto chat = [&](const char* body) { return serve::parse_chat_request(serve::parse_body(body), tokenizer(), d); };
    const char* schema_body =
        R"({"messages": [{"role": "user", "content": "a"}], "chat_template_kwargs": {"enable_thinking": false},
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"enum": ["yes", "no"]}}}})";
    const serve::ParsedRequest a = chat(schema_body), b = chat(schema_body);
    REQUIRE(a.options.grammar);
    CHECK(a.options.grammar == b.options.grammar);  // cached: its token caches stay warm
    qwen3::GrammarRecognizer r(a.options.grammar->grammar());
    CHECK(r.accept("\"no\""));
    CHECK(r.complete());
    CHECK_FALSE(chat(R"({"messages": [{"role": "user", "content": "a"}]})").options.grammar);
    const serve::ParsedRequest tools = chat(R"({"messages": [{"role": "user", "content": "a"}], "tool_choice": "required",
        "chat_template_kwargs": {"enable_thinking": false}, "tools": [{"type": "function", "function": {"name": "f", "parameters":
        {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"], "additionalProperties": false}}}]})");
    REQUIRE(tools.options.grammar);
    CHECK(tools.parse_tool_calls);
    qwen3::GrammarMatcher m(tools.options.grammar);
    CHECK(m.accept_token(*tokenizer().token_id("<tool_call>")));
    CHECK(m.accept_bytes("\n{\"name\": \"f\", \"arguments\": {\"n\": 42}}\n"));
    CHECK(m.accept_token(*tokenizer().token_id("</tool_call>")));
    CHECK(m.complete());
    const serve::ParsedRequest text = serve::parse_completion_request(
        serve::parse_body(R"({"prompt": "x", "grammar": "root ::= [0-9]+"})"), tokenizer(), d);
    REQUIRE(text.options.grammar);
    CHECK(serve::parse_completion_request(serve::parse_body(R"({"prompt": "x", "json_schema": {"type": "integer"}})"), tokenizer(), d)
              .options.grammar);
}

TEST_CASE("the grammar cache keeps the most recent grammars within its count and memory, each under the server's limits") {
    serve::RequestDefaults d = defaults();
    auto completion = [&](const std::string& gbnf) {
        qwen3::json::Value body(qwen3::json::Object{});
        body.set("prompt", qwen3::json::Value("x"));
        body.set("grammar", qwen3::json::Value(gbnf));
        return serve::parse_completion_request(body, tokenizer(), d).options.grammar;
    };
    d.grammars = std::make_shared<serve::GrammarCache>(tokenizer(), 2);
    const auto a = completion("root ::= \"a\"+"), b = completion("root ::= \"b\"+");
    CHECK(completion("root ::= \"a\"+") == a);  // a is now the most recent, b the older
    completion("root ::= \"c\"+");
    CHECK(d.grammars->size() == 2);
    CHECK(completion("root ::= \"a\"+") == a);
    CHECK(completion("root ::= \"b\"+") != b);  // evicted, made again
    CHECK(a->limits().max_cache_bytes == serve::GrammarCache::default_limits().max_cache_bytes);

    // a budget of one byte keeps only the most recent grammar
    d.grammars = std::make_shared<serve::GrammarCache>(tokenizer(), 64, 1);
    completion("root ::= \"a\"+");
    const auto c = completion("root ::= \"c\"+");
    CHECK(d.grammars->size() == 1);
    CHECK(completion("root ::= \"c\"+") == c);
}

TEST_CASE("bad requests are 400s naming the field") {
    struct Case {
        const char* body;
        int status;
        const char* param;
    };
    const Case cases[] = {
        {R"({"messages": [)", 400, ""},
        {R"([1, 2])", 400, ""},
        {R"({"messages": [{"role": "user", "content": "a"}], "messages": []})", 400, ""},
        {R"({})", 400, "messages"},
        {R"({"messages": []})", 400, "messages"},
        {R"({"messages": [{"role": "user"}]})", 400, "messages[0].content"},
        {R"({"messages": [{"role": "user", "content": 5}]})", 400, "messages[0].content"},
        {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]})", 400, "messages[0].content"},
        {R"({"messages": [{"role": "robot", "content": "a"}]})", 400, "messages[0].role"},
        {R"({"messages": [{"role": "assistant", "content": "", "tool_calls": [{"function": {"arguments": "{}"}}]}]})", 400,
         "messages[0].tool_calls[0].function.name"},
        {R"({"messages": [{"role": "user", "content": "a"}], "temperature": "hot"})", 400, "temperature"},
        {R"({"messages": [{"role": "user", "content": "a"}], "temperature": 3})", 400, "temperature"},
        {R"({"messages": [{"role": "user", "content": "a"}], "max_tokens": -1})", 400, "max_tokens"},
        {R"({"messages": [{"role": "user", "content": "a"}], "max_tokens": 1.5})", 400, "max_tokens"},
        {R"({"messages": [{"role": "user", "content": "a"}], "n": 2})", 400, "n"},
        {R"({"messages": [{"role": "user", "content": "a"}], "stop": ["", "x"]})", 400, "stop"},
        {R"({"messages": [{"role": "user", "content": "a"}], "stream": "yes"})", 400, "stream"},
        {R"({"messages": [{"role": "user", "content": "a"}], "top_logprobs": 2})", 400, "top_logprobs"},
        {R"({"messages": [{"role": "user", "content": "a"}], "logprobs": true, "top_logprobs": 21})", 400, "top_logprobs"},
        {R"({"messages": [{"role": "user", "content": "a"}], "tool_choice": "required", "tools": []})", 400, "tool_choice"},
        {R"({"messages": [{"role": "user", "content": "a"}], "response_format": {"type": "xml"}})", 400, "response_format.type"},
        {R"({"messages": [{"role": "user", "content": "a"}], "response_format": {"type": "json_schema"}})", 400, "response_format.json_schema.schema"},
        {R"({"messages": [{"role": "user", "content": "a"}], "response_format": {"type": "json_schema", "json_schema": {"schema": {"not": {}}}}})", 400,
         "response_format"},
        {R"({"messages": [{"role": "user", "content": "a"}], "tool_choice": {"type": "function", "function": {"name": "nope"}},
             "tools": [{"type": "function", "function": {"name": "f"}}]})", 400, "tools"},
        {R"({"messages": [{"role": "user", "content": "a"}], "tool_choice": "sometimes", "tools": [{"type": "function", "function": {"name": "f"}}]})", 400,
         "tool_choice"},
        {R"({"messages": [{"role": "user", "content": "a"}], "tools": [{"type": "function"}]})", 400, "tools[0]"},
        {R"({"messages": [{"role": "user", "content": "a"}], "seed": "1"})", 400, "seed"},
    };
    for (const Case& c : cases) {
        INFO(c.body);
        const serve::ApiError e = error_of(c.body);
        CHECK(e.status == c.status);
        CHECK(e.type == "invalid_request_error");
        CHECK(e.param == c.param);
        const json::Value out = json::parse(serve::error_body(e));
        CHECK(out.at("error").at("message").as_string() == e.what());
    }
    serve::RequestDefaults small = defaults();
    small.context = 8;
    try {
        serve::parse_chat_request(serve::parse_body(R"({"messages": [{"role": "user", "content": "a long question"}]})"), tokenizer(), small);
        FAIL("no error");
    } catch (const serve::ApiError& e) {
        CHECK(e.status == 400);
        CHECK(e.code == "context_length_exceeded");
    }
}

TEST_CASE("completion prompts: text, token ids, a list of one") {
    const serve::RequestDefaults d = defaults();
    CHECK(serve::parse_completion_request(serve::parse_body(R"({"prompt": "Hello world"})"), tokenizer(), d).prompt ==
          tokenizer().encode("Hello world"));
    CHECK(serve::parse_completion_request(serve::parse_body(R"({"prompt": [9707, 1879]})"), tokenizer(), d).prompt ==
          std::vector<std::int32_t>{9707, 1879});
    CHECK(serve::parse_completion_request(serve::parse_body(R"({"prompt": [[9707]]})"), tokenizer(), d).prompt == std::vector<std::int32_t>{9707});
    CHECK(serve::parse_completion_request(serve::parse_body(R"({"prompt": ["Hello"]})"), tokenizer(), d).prompt == tokenizer().encode("Hello"));
    for (const char* bad : {R"({"prompt": ["a", "b"]})", R"({"prompt": [1, -2]})", R"({"prompt": [1, 151936]})", R"({"prompt": 5})",
                            R"({"prompt": ""})", R"({})", R"({"prompt": "a", "echo": true})", R"({"prompt": "a", "grammar": "root ::= ("})",
                            R"({"prompt": "a", "grammar": 5})", R"({"prompt": "a", "json_schema": {"type": "object", "if": {}}})",
                            R"({"prompt": "a", "grammar": "root ::= \"a\"", "json_schema": {}})"}) {
        INFO(bad);
        CHECK_THROWS_AS(serve::parse_completion_request(serve::parse_body(bad), tokenizer(), d), serve::ApiError);
    }
}

namespace {

struct Streamed {
    std::string reasoning, content;
    json::Array tool_calls;
    bool calls = false;
};

// Feeds `text` in the given pieces and gathers the deltas.
Streamed stream_in_pieces(const serve::ParsedRequest& r, const std::vector<std::string>& pieces) {
    serve::ChatStream s(r, "call_t_");
    Streamed out;
    auto take = [&](std::vector<json::Value> deltas) {
        for (const json::Value& d : deltas) {
            if (const json::Value* v = d.find("reasoning_content")) out.reasoning += v->as_string();
            if (const json::Value* v = d.find("content")) out.content += v->as_string();
            if (const json::Value* v = d.find("tool_calls")) {
                for (const json::Value& c : v->as_array()) out.tool_calls.push_back(c);
                // a delta carrying calls comes after all the content
            }
        }
    };
    for (const std::string& p : pieces) take(s.feed(p));
    take(s.finish(out.calls));
    return out;
}

}  // namespace

TEST_CASE("replies: reasoning, content and tool calls, whole or streamed in any pieces") {
    serve::ParsedRequest with_tools;
    with_tools.parse_tool_calls = true;
    serve::ParsedRequest plain;

    struct Reply {
        std::string text;
        std::string reasoning, content;
        std::vector<std::pair<std::string, std::string>> calls;  // name, arguments as OpenAI's JSON text
    };
    // the model's side of Qwen3's template: <think> blocks and <tool_call> JSON blocks
    const std::vector<Reply> replies = {
        {"<think>\nThe user greets me.\n</think>\n\nHello!", "The user greets me.", "Hello!", {}},
        {"Just an answer.", "", "Just an answer.", {}},
        {"<think>\nNeed weather.\n</think>\n\nLet me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
         "Need weather.", "Let me check.", {{"get_weather", "{\"city\": \"Paris\"}"}}},
        {"<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": {\"x\": [1, 2]}}\n</tool_call>",
         "", "", {{"a", "{}"}, {"b", "{\"x\": [1, 2]}"}}},
        {"Text with < and <tool and <tool_cal but no call.", "", "Text with < and <tool and <tool_cal but no call.", {}},
        {"Broken: <tool_call>\n{not json}\n</tool_call>", "", "Broken: <tool_call>\n{not json}\n</tool_call>", {}},
    };
    for (const Reply& reply : replies) {
        INFO(reply.text);
        const serve::ReplyParts whole = serve::split_reply(with_tools, reply.text, "call_t_");
        CHECK(whole.reasoning == reply.reasoning);
        CHECK(whole.content == reply.content);
        REQUIRE(whole.tool_calls.size() == reply.calls.size());
        for (std::size_t i = 0; i < reply.calls.size(); ++i) {
            const json::Value& c = whole.tool_calls[i];
            CHECK(c.at("type").as_string() == "function");
            CHECK(c.at("id").as_string() == "call_t_" + std::to_string(i));
            CHECK(c.at("function").at("name").as_string() == reply.calls[i].first);
            CHECK(c.at("function").at("arguments").as_string() == reply.calls[i].second);
        }
        CHECK(serve::finish_reason(qwen3::StopReason::end_of_turn, !whole.tool_calls.empty()) ==
              (reply.calls.empty() ? "stop" : "tool_calls"));

        // every cut into two pieces, and one byte at a time
        std::vector<std::vector<std::string>> cuts;
        for (std::size_t i = 0; i <= reply.text.size(); ++i) cuts.push_back({reply.text.substr(0, i), reply.text.substr(i)});
        std::vector<std::string> bytes;
        for (char ch : reply.text) bytes.push_back(std::string(1, ch));
        cuts.push_back(bytes);
        for (const auto& pieces : cuts) {
            const Streamed s = stream_in_pieces(with_tools, pieces);
            CHECK(s.reasoning == whole.reasoning);
            CHECK(s.content == whole.content);
            CHECK(s.calls == !reply.calls.empty());
            REQUIRE(s.tool_calls.size() == whole.tool_calls.size());
            for (std::size_t i = 0; i < s.tool_calls.size(); ++i) {
                CHECK(s.tool_calls[i].at("index").as_int() == std::int64_t(i));
                CHECK(json::dump(s.tool_calls[i].at("function")) == json::dump(whole.tool_calls[i].at("function")));
            }
        }
    }
    // without tools offered, a tool-call block is only text
    const serve::ReplyParts no_tools = serve::split_reply(plain, replies[3].text, "c");
    CHECK(no_tools.tool_calls.empty());
    CHECK(no_tools.content == replies[3].text);
    CHECK(stream_in_pieces(plain, {replies[3].text}).content == replies[3].text);
}

TEST_CASE("response objects have OpenAI's shape") {
    serve::ReplyParts parts;
    parts.reasoning = "r";
    parts.content = "c";
    const json::Value usage = serve::usage_json(10, 5, 3);
    const json::Value r = serve::chat_completion("chatcmpl-1", 1700000000, "m", parts, "stop", usage);
    CHECK(json::dump(r) ==
          R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"m","system_fingerprint":"qwen3.hpp",)"
          R"("choices":[{"index":0,"message":{"role":"assistant","content":"c","reasoning_content":"r"},"logprobs":null,"finish_reason":"stop"}],)"
          R"("usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":3}}})");
    const std::string finish = "length";
    CHECK(json::dump(serve::completion_chunk("cmpl-1", 1, "m", "", &finish)) ==
          R"({"id":"cmpl-1","object":"text_completion","created":1,"model":"m","system_fingerprint":"qwen3.hpp",)"
          R"("choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}]})");
    CHECK(serve::finish_reason(qwen3::StopReason::max_tokens, false) == "length");
    CHECK(serve::finish_reason(qwen3::StopReason::context_full, false) == "length");
    CHECK(serve::finish_reason(qwen3::StopReason::stop_string, false) == "stop");
}
