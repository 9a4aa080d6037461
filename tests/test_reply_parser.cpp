// Reply parsing: think/answer splitting gives the same result however the reply is cut into pieces;
// assistant turns as the real template renders them (the shared fixtures) parse back into the
// reasoning, content and tool calls they were rendered from; /think and /no_think.
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include <qwen3/chat.hpp>

#include "support.hpp"

namespace chat = qwen3::chat;
namespace json = qwen3::json;

namespace {

struct Split {
    std::string reasoning, answer;
    bool thought, closed;
    bool operator==(const Split&) const = default;
};

Split stream(const std::vector<std::string_view>& pieces, bool starts_in_reasoning) {
    chat::ThinkSplitter splitter(starts_in_reasoning);
    Split out;
    for (std::string_view piece : pieces) {
        chat::ReplyDelta d = splitter.feed(piece);
        out.reasoning += d.reasoning;
        out.answer += d.answer;
    }
    chat::ReplyDelta d = splitter.finish();
    out.reasoning += d.reasoning;
    out.answer += d.answer;
    out.thought = splitter.thought();
    out.closed = splitter.reasoning_closed();
    return out;
}

const std::vector<std::string> kReplies = {
    "<think>\nThe user greets me.\n</think>\n\nHello!",
    "<think>\n\n</think>\n\nNo thinking here.",
    "Plain answer without tags.\n",
    "\n\n  <think>\nleading whitespace\n\n</think>answer\n\n",
    "<think>unfinished thought\n\n",
    "<thinking is not a tag</think>",
    "<think>a</thin</think>b</think>c",
    "<think>\n\xE6\x80\x9D\xE8\x80\x83 \xF0\x9F\x99\x82\n</think>\n\n\xE7\xAD\x94\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
    "<thi",
    "",
    "\n",
    "<",
};

}  // namespace

TEST_CASE("reply parser: think and answer split as the template reads an assistant turn") {
    chat::ParsedReply r = chat::parse_reply("<think>\nThe user greets me.\n</think>\n\nHello!");
    CHECK(r.thought);
    CHECK(r.reasoning == "The user greets me.");
    CHECK(r.content == "Hello!");
    r = chat::parse_reply("<think>\n\n</think>\n\nShort.");
    CHECK(r.thought);
    CHECK(r.reasoning.empty());
    CHECK(r.content == "Short.");
    r = chat::parse_reply("Just an answer <think> in text.");
    CHECK_FALSE(r.thought);
    CHECK(r.content == "Just an answer <think> in text.");
    r = chat::parse_reply("<think>\nspaces  kept\t\n\n</think>\n\n  indented\n");
    CHECK(r.reasoning == "spaces  kept\t");
    CHECK(r.content == "  indented\n");
    // the prompt ended with "<think>\n": the reply starts inside the block
    r = chat::parse_reply("reasoning first\n</think>\n\nthen the answer", true);
    CHECK(r.thought);
    CHECK(r.reasoning == "reasoning first");
    CHECK(r.content == "then the answer");
    // cut off while thinking
    r = chat::parse_reply("<think>\nstill thinking\n</thi");
    CHECK(r.reasoning == "still thinking\n</thi");
    CHECK(r.content.empty());
}

TEST_CASE("reply parser: every 2-way and 3-way cut of a reply streams to the one-piece result") {
    for (bool starts_in_reasoning : {false, true}) {
        for (const std::string& reply : kReplies) {
            CAPTURE(reply);
            CAPTURE(starts_in_reasoning);
            const Split whole = stream({reply}, starts_in_reasoning);
            const chat::ParsedReply parsed = chat::parse_reply(reply, starts_in_reasoning);
            CHECK(whole.reasoning == parsed.reasoning);
            CHECK(whole.thought == parsed.thought);
            const std::string_view r = reply;
            for (std::size_t i = 0; i <= r.size(); ++i) {
                CHECK(stream({r.substr(0, i), r.substr(i)}, starts_in_reasoning) == whole);
                for (std::size_t j = i; j <= r.size(); ++j)
                    REQUIRE(stream({r.substr(0, i), r.substr(i, j - i), r.substr(j)}, starts_in_reasoning) == whole);
            }
            // one byte at a time
            std::vector<std::string_view> bytes;
            for (std::size_t i = 0; i < r.size(); ++i) bytes.push_back(r.substr(i, 1));
            CHECK(stream(bytes, starts_in_reasoning) == whole);
        }
    }
}

TEST_CASE("reply parser: the splitter reports its state while streaming") {
    chat::ThinkSplitter s;
    CHECK(s.state() == chat::ThinkSplitter::State::start);
    chat::ReplyDelta d = s.feed("<th");
    CHECK(d.reasoning.empty());
    CHECK(d.answer.empty());
    d = s.feed("ink>\nabc\n");
    CHECK(s.state() == chat::ThinkSplitter::State::reasoning);
    CHECK(s.thought());
    CHECK(d.reasoning == "abc");  // the trailing newline waits: it may end the block
    d = s.feed("def</thi");
    CHECK(d.reasoning == "\ndef");
    CHECK_FALSE(s.reasoning_closed());
    d = s.feed("nk>\n\nAnswer");
    CHECK(s.reasoning_closed());
    CHECK(s.state() == chat::ThinkSplitter::State::answer);
    CHECK(d.reasoning.empty());
    CHECK(d.answer == "Answer");
}

TEST_CASE("reply parser: assistant turns rendered by the real template parse back to their message, streamed or whole") {
    // In every fixture, each assistant turn's text (between "<|im_start|>assistant\n" and
    // "<|im_end|>") must give back the tool calls it was rendered from, and its content when the
    // message held no think block; streamed through the splitter in pieces of 3 bytes, it must give
    // parse_reply's reasoning, and its content where the turn holds no tool call.
    std::size_t checked_calls = 0, streamed = 0;
    for (const json::Value& c : test::read_jsonl("chat/cases.jsonl")) {
        const std::string& rendered = c.at("rendered").as_string();
        std::vector<std::string_view> turns;
        const std::string_view open = "<|im_start|>assistant\n";
        for (std::size_t at = rendered.find(open); at != std::string::npos; at = rendered.find(open, at + 1)) {
            std::size_t end = rendered.find("<|im_end|>", at);
            if (end == std::string::npos) break;  // the generation prompt
            turns.push_back(std::string_view(rendered).substr(at + open.size(), end - at - open.size()));
        }
        std::size_t turn = 0;
        for (const json::Value& m : c.at("messages").as_array()) {
            if (m.at("role").as_string() != "assistant") continue;
            REQUIRE(turn < turns.size());
            const std::string_view text = turns[turn++];
            const chat::ParsedReply parsed = chat::parse_reply(text);
            CAPTURE(std::string(text));
            CHECK(parsed.invalid_tool_calls.empty());
            chat::ThinkSplitter splitter;
            std::string reasoning, answer;
            for (std::size_t at = 0; at < text.size(); at += 3) {
                const chat::ReplyDelta d = splitter.feed(text.substr(at, 3));
                reasoning += d.reasoning;
                answer += d.answer;
            }
            const chat::ReplyDelta last = splitter.finish();
            reasoning += last.reasoning;
            answer += last.answer;
            CHECK(reasoning == parsed.reasoning);
            CHECK(splitter.thought() == parsed.thought);
            if (parsed.tool_calls.empty()) CHECK(answer == parsed.content);
            else CHECK(answer.rfind(parsed.content, 0) == 0);  // the tool-call blocks follow the content
            ++streamed;
            const std::string& content = m.at("content").as_string();
            if (content.find("</think>") == std::string::npos) CHECK(parsed.content == content);
            const json::Value* calls = m.find("tool_calls");
            REQUIRE(parsed.tool_calls.size() == (calls ? calls->as_array().size() : 0));
            for (std::size_t k = 0; k < parsed.tool_calls.size(); ++k) {
                const json::Value& call = calls->as_array()[k];
                const json::Value& f = call.find("function") ? call.at("function") : call;
                CHECK(parsed.tool_calls[k].name == f.at("name").as_string());
                const json::Value& args = f.at("arguments");
                const json::Value want = args.is_string() ? json::parse(args.as_string()) : args;
                CHECK(json::dump_python(parsed.tool_calls[k].arguments) == json::dump_python(want));
                ++checked_calls;
            }
        }
    }
    CHECK(checked_calls == 7);
    CHECK(streamed == 21);
}

TEST_CASE("reply parser: a parsed reply re-renders as the model wrote it") {
    // fixture 12: the last assistant turn of [user "Hi", assistant "<think>...</think>\n\nHello!"]
    const auto cases = test::read_jsonl("chat/cases.jsonl");
    const chat::ParsedReply reply = chat::parse_reply("<think>\nThe user greets me.\n</think>\n\nHello!");
    std::vector<chat::Message> history = {chat::Message::user("Hi"), chat::to_message(reply)};
    CHECK(chat::render_prompt(history, {.add_generation_prompt = false}).text == cases[12].at("rendered").as_string());
}

TEST_CASE("reply parser: malformed tool calls stay in the content and are reported, never thrown") {
    chat::ParsedReply r = chat::parse_reply(
        "Calling.\n<tool_call>\n{\"name\": \"ok\", \"arguments\": {\"x\": [1, 2]}}\n</tool_call>\n<tool_call>\n{not json}\n</tool_call>");
    REQUIRE(r.tool_calls.size() == 1);
    CHECK(r.tool_calls[0].name == "ok");
    CHECK(json::dump_python(r.tool_calls[0].arguments) == "{\"x\": [1, 2]}");
    REQUIRE(r.invalid_tool_calls.size() == 1);
    CHECK(r.invalid_tool_calls[0].text == "<tool_call>\n{not json}\n</tool_call>");
    CHECK(r.invalid_tool_calls[0].error.find("invalid JSON") != std::string::npos);
    CHECK(r.content == "Calling.\n<tool_call>\n{not json}\n</tool_call>");

    r = chat::parse_reply("<tool_call>\n{\"arguments\": {}}\n</tool_call>");
    CHECK(r.tool_calls.empty());
    REQUIRE(r.invalid_tool_calls.size() == 1);
    CHECK(r.invalid_tool_calls[0].error.find("\"name\"") != std::string::npos);

    r = chat::parse_reply("text\n<tool_call>\n{\"name\": \"cut\", \"argu");
    CHECK(r.tool_calls.empty());
    REQUIRE(r.invalid_tool_calls.size() == 1);
    CHECK(r.invalid_tool_calls[0].error.find("no </tool_call>") != std::string::npos);
    CHECK(r.content == "text\n<tool_call>\n{\"name\": \"cut\", \"argu");

    r = chat::parse_reply("<tool_call>\n{\"name\": \"no_args\"}\n</tool_call>");
    REQUIRE(r.tool_calls.size() == 1);
    CHECK(json::dump_python(r.tool_calls[0].arguments) == "{}");
    CHECK(r.content.empty());

    // a tool call inside the reasoning is thinking, not a call
    r = chat::parse_reply("<think>\n<tool_call>\n{\"name\": \"x\"}\n</tool_call>\n</think>\n\nNo call.");
    CHECK(r.tool_calls.empty());
    CHECK(r.content == "No call.");

    // deeply nested JSON is refused by the JSON reader's depth limit, not a crash
    std::string deep = "<tool_call>\n{\"name\": \"d\", \"arguments\": " + std::string(10000, '[') + "\n</tool_call>";
    r = chat::parse_reply(deep);
    CHECK(r.invalid_tool_calls.size() == 1);
}

TEST_CASE("reply parser: /think and /no_think soft switches, most recent wins, only with thinking on") {
    auto request = [](const char* text) { return json::parse(text); };
    CHECK(chat::expects_thinking(request(R"({"messages": [{"role": "user", "content": "hi"}]})")));
    CHECK_FALSE(chat::expects_thinking(request(R"({"messages": [{"role": "user", "content": "hi"}], "enable_thinking": false})")));
    CHECK_FALSE(chat::expects_thinking(request(R"({"messages": [{"role": "user", "content": "hi /no_think"}]})")));
    CHECK_FALSE(chat::expects_thinking(
        request(R"({"messages": [{"role": "user", "content": "/think"}], "enable_thinking": false})")));
    CHECK(chat::expects_thinking(request(
        R"({"messages": [{"role": "user", "content": "a /no_think"}, {"role": "assistant", "content": "x"}, {"role": "user", "content": "b /think"}]})")));
    // the latest message with a switch decides, even when later messages have none
    CHECK_FALSE(chat::expects_thinking(request(
        R"({"messages": [{"role": "user", "content": "a /no_think"}, {"role": "assistant", "content": "x /think"}, {"role": "user", "content": "b"}]})")));
    // within one message, the last switch
    CHECK(chat::expects_thinking(request(R"({"messages": [{"role": "user", "content": "/no_think then /think."}]})")));
    CHECK_FALSE(chat::expects_thinking(request(R"({"messages": [{"role": "system", "content": "Be brief. /no_think"}, {"role": "user", "content": "q"}]})")));
    // not switches: part of another word or path
    CHECK(chat::expects_thinking(request(R"({"messages": [{"role": "user", "content": "see /no_thinking and a/no_think and //no_think"}]})")));
    CHECK(chat::expects_thinking(request(R"({"messages": "not a list"})")));

    using chat::Message;
    std::vector<Message> typed = {Message::user("q /no_think")};
    CHECK_FALSE(chat::expects_thinking(typed, {}));
    typed.push_back(Message::assistant("a"));
    typed.push_back(Message::user("again /think"));
    CHECK(chat::expects_thinking(typed, {}));
    CHECK_FALSE(chat::expects_thinking(typed, {.add_generation_prompt = true, .enable_thinking = false}));
}
