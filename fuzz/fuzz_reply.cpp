// Fuzz target: reading the model's reply (ThinkSplitter, parse_reply, to_message).
//
// Input: a flags byte (bit 0: the prompt ended inside a think block), a 4-byte seed for the cuts,
// then the reply text (any bytes: a model can emit invalid UTF-8 mid-stream).
//   - streaming in random pieces (empty ones included) and byte by byte gives exactly what one feed
//     of the whole text gives: same reasoning, same answer, same state;
//   - parse_reply's reasoning is the splitter's; its content and tool-call blocks account for the
//     answer (each tool call came from a <tool_call> block; invalid ones stay in the content);
//   - a reply that is valid UTF-8 turns into a message the chat template renders.
#include <cstdint>
#include <string>
#include <vector>

#include <qwen3/chat.hpp>

#include "fuzz_support.hpp"

namespace qwen3_fuzz::reply_target {

namespace chat = qwen3::chat;

struct Split {
    std::string reasoning, answer;
    bool thought = false, closed = false;
    chat::ThinkSplitter::State state{};
};

template <typename NextPiece>
Split stream(std::string_view text, bool in_reasoning, NextPiece&& next_piece) {
    chat::ThinkSplitter splitter(in_reasoning);
    Split out;
    std::size_t at = 0;
    while (at < text.size()) {
        const std::size_t n = std::min(next_piece(), text.size() - at);
        chat::ReplyDelta d = splitter.feed(text.substr(at, n));
        out.reasoning += d.reasoning;
        out.answer += d.answer;
        at += n;
    }
    chat::ReplyDelta d = splitter.finish();
    out.reasoning += d.reasoning;
    out.answer += d.answer;
    out.thought = splitter.thought();
    out.closed = splitter.reasoning_closed();
    out.state = splitter.state();
    return out;
}

inline void same(const Split& a, const Split& b, const char* how) {
    check(a.reasoning == b.reasoning, how, ": reasoning ", show(a.reasoning), " != ", show(b.reasoning));
    check(a.answer == b.answer, how, ": answer ", show(a.answer), " != ", show(b.answer));
    check(a.thought == b.thought && a.closed == b.closed && a.state == b.state, how, ": splitter state differs");
}

void run(const std::uint8_t* data, std::size_t size) {
    Input in(data, size);
    const bool in_reasoning = in.byte() & 1;
    Cuts cuts(in.u32());
    const std::string_view text = in.rest();

    const Split whole = stream(text, in_reasoning, [&] { return text.size(); });
    same(stream(text, in_reasoning, [&] { return cuts.next(12); }), whole, "random pieces");
    same(stream(text, in_reasoning, [] { return std::size_t(1); }), whole, "byte by byte");

    const chat::ParsedReply reply = chat::parse_reply(text, in_reasoning);
    check(reply.reasoning == whole.reasoning, "parse_reply reasoning differs from the splitter's");
    check(reply.thought == whole.thought, "parse_reply thought flag differs");
    // the content is never longer than the answer, and each accepted call came from a block
    check(reply.content.size() <= whole.answer.size(), "content longer than the answer");
    std::size_t blocks = 0;
    for (std::size_t at = whole.answer.find("<tool_call>"); at != std::string::npos; at = whole.answer.find("<tool_call>", at + 1))
        ++blocks;
    check(reply.tool_calls.size() + reply.invalid_tool_calls.size() <= blocks, "more tool calls than <tool_call> blocks");
    for (const chat::InvalidToolCall& bad : reply.invalid_tool_calls)
        check(reply.content.find(bad.text) != std::string::npos, "an invalid tool call's text is missing from the content");

    if (!reference_valid_utf8(text)) return;  // the template's input is JSON: strings are valid UTF-8
    const chat::Message history[] = {chat::Message::user("hi"), chat::to_message(reply)};
    try {
        (void)chat::render_prompt(std::span<const chat::Message>(history));
    } catch (const qwen3::Error& e) {
        finding("a parsed reply does not render: ", e.what());
    }
}

}  // namespace qwen3_fuzz::reply_target

#ifndef QWEN3_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    qwen3_fuzz::reply_target::run(data, size);
    return 0;
}
#endif
