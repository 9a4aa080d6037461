// qwen3/chat/reply_parser.hpp - reading what the model wrote: thinking, answer, tool calls.
//
// A Qwen3 reply in thinking mode is "<think>\n...reasoning...\n</think>\n\nanswer"; in non-thinking
// mode the prompt already holds an empty think block and the reply is just the answer. Tool calls are
// "<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>" blocks in the answer.
//
// The split follows the chat template's own reading of an assistant turn (reasoning.strip('\n'),
// answer.lstrip('\n')), so feeding a ParsedReply back as an assistant Message (to_message) renders
// the turn the way the model wrote it. ThinkSplitter does the split while tokens stream in; its
// deltas concatenate to exactly what parse_reply returns for the whole text, however the text is cut.
//
// Nothing here throws on model output: malformed tool calls are reported, not raised.
#pragma once

#include <algorithm>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "../format/json.hpp"
#include "messages.hpp"

namespace qwen3::chat {

// New text for each part since the last call (either may be empty).
struct ReplyDelta {
    std::string reasoning;
    std::string answer;
};

// Streaming think/answer splitter. Feed decoded text pieces in order (any cut, even inside a tag or
// a UTF-8 sequence: bytes are never reordered, only held back), then call finish() once.
//  - A reply whose first non-whitespace text is "<think>" starts a think block, ended by the first
//    "</think>"; everything after it is answer. Any other reply is all answer.
//  - Text that could still become a tag ("</thi" at the end of a piece) is held back until the next
//    piece decides it; so are newlines that the template would strip at the end of the reasoning.
class ThinkSplitter {
public:
    enum class State { start, reasoning, answer };

    // starts_in_reasoning: the prompt itself ended inside an open think block ("...<think>\n"), so
    // the reply begins with reasoning and no "<think>" will come.
    explicit ThinkSplitter(bool starts_in_reasoning = false)
        : state_(starts_in_reasoning ? State::reasoning : State::start), thought_(starts_in_reasoning) {}

    // Never throws (except std::bad_alloc).
    ReplyDelta feed(std::string_view piece);
    // Releases what was held back: an unfinished tag at the end is plain text. Call once, at the end.
    ReplyDelta finish();

    State state() const noexcept { return state_; }
    bool thought() const noexcept { return thought_; }  // a think block was opened
    bool reasoning_closed() const noexcept { return closed_; }  // ... and "</think>" has been seen

private:
    void emit_reasoning(ReplyDelta& out, std::string_view text);
    void emit_answer(ReplyDelta& out, std::string_view text);
    void process(ReplyDelta& out);

    State state_;
    bool thought_;
    bool closed_ = false;
    bool reasoning_begun_ = false;  // a non-newline reasoning byte was emitted (leading '\n's are dropped)
    bool answer_begun_ = false;     // likewise for the answer
    std::string pending_;           // bytes held back
};

// A block the model wrote as a tool call but that is not one: JSON that does not parse, no "name",
// or no "</tool_call>" before the end. Its text stays in ParsedReply::content.
struct InvalidToolCall {
    std::string text;   // the block, tags included
    std::string error;  // why it was not accepted
};

struct ParsedReply {
    std::string reasoning;  // inside <think>...</think>, newlines at both ends removed
    std::string content;    // the answer without the tool-call blocks
    std::vector<ToolCall> tool_calls;
    std::vector<InvalidToolCall> invalid_tool_calls;
    bool thought = false;  // the reply had a think block (possibly empty)
};

// Splits a complete reply (see ThinkSplitter) and takes the <tool_call> blocks out of the answer.
// A block's body must be a JSON object with a string "name"; "arguments" (any JSON value) defaults
// to {}. The newline the template writes before each block is removed from the content, as are
// whitespace-only gaps between and after blocks. Never throws (except std::bad_alloc).
ParsedReply parse_reply(std::string_view text, bool starts_in_reasoning = false);

// The reply as an assistant message for the conversation history: content, tool calls, and the
// reasoning (as reasoning_content) when the model thought.
Message to_message(const ParsedReply& reply);

// Whether the model is expected to think in its next reply, for display only (the model decides;
// ThinkSplitter handles either). false when enable_thinking is false. Otherwise the Qwen3 soft
// switches decide: the most recent "/think" or "/no_think" in a user or system message wins (a
// switch is the word itself: not preceded by a letter, digit, '_' or '/', not followed by a letter,
// digit or '_'); with none, true. Message text is never changed: the template passes switches on
// to the model as written. Never throws for any JSON value.
bool expects_thinking(const json::Value& request);
bool expects_thinking(std::span<const Message> messages, const Options& options);

// ---------------------------------------------------------------------------------------------
// implementation

}  // namespace qwen3::chat

namespace qwen3::detail {

inline constexpr std::string_view kThinkOpen = "<think>";
inline constexpr std::string_view kThinkClose = "</think>";
inline constexpr std::string_view kToolCallOpen = "<tool_call>";
inline constexpr std::string_view kToolCallClose = "</tool_call>";

// Length of the longest suffix of `text` that is a proper prefix of `tag`.
inline std::size_t partial_tag_suffix(std::string_view text, std::string_view tag) {
    for (std::size_t n = std::min(text.size(), tag.size() - 1); n > 0; --n)
        if (text.substr(text.size() - n) == tag.substr(0, n)) return n;
    return 0;
}

inline bool is_reply_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

inline bool is_word_byte(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace qwen3::detail

namespace qwen3::chat {

inline void ThinkSplitter::emit_reasoning(ReplyDelta& out, std::string_view text) {
    if (!reasoning_begun_) {
        std::size_t i = text.find_first_not_of('\n');
        if (i == std::string_view::npos) return;
        text.remove_prefix(i);
        reasoning_begun_ = true;
    }
    out.reasoning += text;
}

inline void ThinkSplitter::emit_answer(ReplyDelta& out, std::string_view text) {
    if (!answer_begun_) {
        std::size_t i = text.find_first_not_of('\n');
        if (i == std::string_view::npos) return;
        text.remove_prefix(i);
        answer_begun_ = true;
    }
    out.answer += text;
}

inline void ThinkSplitter::process(ReplyDelta& out) {
    if (state_ == State::start) {
        std::string_view text = pending_;
        std::size_t first = 0;
        while (first < text.size() && detail::is_reply_space(text[first])) ++first;
        std::string_view rest = text.substr(first);
        if (rest.starts_with(detail::kThinkOpen)) {
            state_ = State::reasoning;
            thought_ = true;
            pending_.erase(0, first + detail::kThinkOpen.size());
        } else if (detail::kThinkOpen.starts_with(rest)) {
            return;  // only whitespace and the start of "<think>" so far
        } else {
            state_ = State::answer;
        }
    }
    if (state_ == State::reasoning) {
        std::string_view text = pending_;
        std::size_t close = text.find(detail::kThinkClose);
        if (close == std::string_view::npos) {
            // keep a possible tag start and the newlines before it: they may be followed by </think>
            std::size_t keep_from = text.size() - detail::partial_tag_suffix(text, detail::kThinkClose);
            while (keep_from > 0 && text[keep_from - 1] == '\n') --keep_from;
            emit_reasoning(out, text.substr(0, keep_from));
            pending_.erase(0, keep_from);
            return;
        }
        std::string_view body = text.substr(0, close);
        while (!body.empty() && body.back() == '\n') body.remove_suffix(1);
        emit_reasoning(out, body);
        pending_.erase(0, close + detail::kThinkClose.size());
        state_ = State::answer;
        closed_ = true;
    }
    // answer: nothing is held back
    emit_answer(out, pending_);
    pending_.clear();
}

inline ReplyDelta ThinkSplitter::feed(std::string_view piece) {
    ReplyDelta out;
    pending_ += piece;
    process(out);
    return out;
}

inline ReplyDelta ThinkSplitter::finish() {
    ReplyDelta out;
    if (state_ == State::start) {
        state_ = State::answer;
        emit_answer(out, pending_);
    } else if (state_ == State::reasoning) {
        std::string_view text = pending_;  // an unfinished "</thi" is text; final newlines are stripped
        while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
        emit_reasoning(out, text);
    } else {
        emit_answer(out, pending_);
    }
    pending_.clear();
    return out;
}

}  // namespace qwen3::chat

namespace qwen3::detail {

// One <tool_call> body: {"name": "...", "arguments": ...}. Returns an empty string on success, else why not.
inline std::string read_tool_call(std::string_view body, chat::ToolCall& call) {
    json::Value value;
    try {
        value = json::parse(body, "tool call");
    } catch (const Error& e) {
        return e.what();
    }
    if (!value.is_object()) return "tool call: expected a JSON object";
    const json::Value* name = value.find("name");
    if (!name || !name->is_string()) return "tool call: expected a string \"name\"";
    call.name = name->as_string();
    const json::Value* arguments = value.find("arguments");
    call.arguments = arguments ? *arguments : json::Value(json::Object{});
    return {};
}

inline bool only_whitespace(std::string_view s) {
    for (char c : s)
        if (!is_reply_space(c)) return false;
    return true;
}

}  // namespace qwen3::detail

namespace qwen3::chat {

inline ParsedReply parse_reply(std::string_view text, bool starts_in_reasoning) {
    ThinkSplitter splitter(starts_in_reasoning);
    ReplyDelta a = splitter.feed(text);
    ReplyDelta b = splitter.finish();
    ParsedReply reply;
    reply.thought = splitter.thought();
    reply.reasoning = std::move(a.reasoning) + b.reasoning;
    const std::string answer = std::move(a.answer) + b.answer;

    std::string_view rest = answer;
    bool after_block = false;
    for (;;) {
        std::size_t open = rest.find(detail::kToolCallOpen);
        std::string_view before = rest.substr(0, open == std::string_view::npos ? rest.size() : open);
        // the template writes one '\n' before each block: it belongs to the block, not the content
        const bool newline_before = open != std::string_view::npos && before.ends_with('\n');
        if (newline_before) before.remove_suffix(1);
        // text between or after blocks is kept only when it says something
        if (!(after_block && detail::only_whitespace(before))) reply.content += before;
        if (open == std::string_view::npos) break;
        std::size_t body_begin = open + detail::kToolCallOpen.size();
        std::size_t close = rest.find(detail::kToolCallClose, body_begin);
        std::size_t block_end = close == std::string_view::npos ? rest.size() : close + detail::kToolCallClose.size();
        ToolCall call;
        std::string error = close == std::string_view::npos
                                ? std::string("tool call: no </tool_call> before the end of the reply")
                                : detail::read_tool_call(rest.substr(body_begin, close - body_begin), call);
        if (error.empty()) {
            reply.tool_calls.push_back(std::move(call));
        } else {
            // the block stays in the content as written, so nothing the model wrote is lost
            std::string_view block = rest.substr(open, block_end - open);
            if (newline_before) reply.content += '\n';
            reply.content += block;
            reply.invalid_tool_calls.push_back({std::string(block), std::move(error)});
        }
        rest.remove_prefix(block_end);
        after_block = true;
    }
    return reply;
}

inline Message to_message(const ParsedReply& reply) {
    Message m = Message::assistant(reply.content);
    if (reply.thought) m.reasoning_content = reply.reasoning;
    m.tool_calls = reply.tool_calls;
    return m;
}

}  // namespace qwen3::chat

namespace qwen3::detail {

// +1 for /think, -1 for /no_think, 0 when the text holds neither: the last one in the text.
inline int last_soft_switch(std::string_view text) {
    int found = 0;
    for (std::size_t at = text.find('/'); at != std::string_view::npos; at = text.find('/', at + 1)) {
        if (at > 0 && (is_word_byte(text[at - 1]) || text[at - 1] == '/')) continue;
        std::string_view rest = text.substr(at);
        for (auto [word, value] : {std::pair<std::string_view, int>{"/think", 1}, {"/no_think", -1}}) {
            if (rest.starts_with(word) && (rest.size() == word.size() || !is_word_byte(rest[word.size()]))) found = value;
        }
    }
    return found;
}

}  // namespace qwen3::detail

namespace qwen3::chat {

inline bool expects_thinking(const json::Value& request) {
    const json::Value* enable = request.find("enable_thinking");
    if (enable && enable->is_bool() && !enable->as_bool()) return false;
    const json::Value* messages = request.find("messages");
    if (!messages || !messages->is_array()) return true;
    const json::Array& list = messages->as_array();
    for (std::size_t i = list.size(); i-- > 0;) {
        const json::Value* role = list[i].find("role");
        const json::Value* content = list[i].find("content");
        if (!role || !role->is_string() || !content || !content->is_string()) continue;
        if (role->as_string() != "user" && role->as_string() != "system") continue;
        if (int s = detail::last_soft_switch(content->as_string()); s != 0) return s > 0;
    }
    return true;
}

inline bool expects_thinking(std::span<const Message> messages, const Options& options) {
    if (!options.enable_thinking) return false;
    for (std::size_t i = messages.size(); i-- > 0;) {
        if (messages[i].role != "user" && messages[i].role != "system") continue;
        if (int s = detail::last_soft_switch(messages[i].content); s != 0) return s > 0;
    }
    return true;
}

}  // namespace qwen3::chat
