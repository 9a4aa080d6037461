// qwen3/chat/template.hpp - the Qwen3 chat template, rendered in C++.
//
// render_prompt() produces, byte for byte, what Hugging Face's apply_chat_template produces with the
// chat_template of Qwen3's tokenizer_config.json (Python Jinja2, sandboxed, trim_blocks and
// lstrip_blocks, tojson = json.dumps(ensure_ascii=False)). It is not a Jinja engine: the function
// below follows that one template statement by statement, with Python's meanings for every operation
// (chat/python_values.hpp). tests/test_chat.cpp checks it against renderings by the real template.
//
// Trusted and untrusted text. The result marks which bytes came from the caller's data (message
// content, reasoning, tool-call names and arguments, tool schemas): those are *untrusted*, the rest
// is the template's own text with its control tokens (<|im_start|>, <|im_end|>, <think>, ...).
// A tokenizer must not turn "<|im_end|>" typed by a user into the control token, so untrusted bytes
// are tokenized with special-token matching switched off.
//
// Why byte ranges of one string rather than separately tokenized pieces: Hugging Face tokenizes the
// whole prompt. It first splits at special tokens, then pre-tokenizes each stretch between them with
// the Qwen2 regex, and that regex merges across the template/content boundary in common cases:
//   "user\n" + "\nHello"      ->  "\n\n" is one pre-token (\s*[\r\n]+), not "\n" and "\n"
//   "\"arguments\": " + "{\"city\"..."  ->  " {\"" is one pre-token ( ?[^\s\p{L}\p{N}]+)
//   "text " + "\n</tool_response>"      ->  " \n" is one pre-token
// so tokenizing segment by segment would give different ids than the model was trained on. With
// ranges, the tokenizer splits at special tokens only outside the untrusted ranges and pre-tokenizes
// the text between special tokens as one string: the ids equal Hugging Face's whenever the content
// holds no special-token text, and content can never forge a control token. segments() is there for
// display and inspection, not for tokenizing piece by piece.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../error.hpp"
#include "../format/json.hpp"
#include "messages.hpp"
#include "python_values.hpp"

namespace qwen3::chat {

// Byte offsets [begin, end) into RenderedPrompt::text.
struct TextRange {
    std::size_t begin = 0;
    std::size_t end = 0;
    bool operator==(const TextRange&) const = default;
};

struct Segment {
    std::string_view text;  // points into RenderedPrompt::text
    bool trusted;           // the template's own text (may hold control tokens)
};

struct RenderedPrompt {
    std::string text;
    // Bytes that came from the caller's data: sorted, non-empty, disjoint and never adjacent (two
    // pieces of data with no template text between them form one range).
    std::vector<TextRange> untrusted;

    // text cut at every range boundary, in order; concatenated they give `text`. Views into `text`:
    // valid while this object lives unchanged.
    std::vector<Segment> segments() const;
};

// Renders a request object: {"messages": [...], "tools": [...], "add_generation_prompt": bool,
// "enable_thinking": bool}. A missing key is Jinja's undefined, which differs from null where the
// template tests `is defined`. Other keys are ignored. Like json.loads, a duplicated key takes its
// last value.
// Throws Error(invalid_argument) where the template raises an error under Jinja: `request` not an
// object; no messages, or messages neither a non-empty array nor a non-empty string; a user or
// system message whose content is not a string; an assistant message whose content is not a string
// (or whose reasoning_content is not a string where the template prints it); a tool call without
// arguments; tools or tool_calls of a type that cannot be iterated. The message says which value.
RenderedPrompt render_prompt(const json::Value& request);

// The same for typed messages (see make_chat_request). Throws as above (only empty `messages` can
// fail here).
RenderedPrompt render_prompt(std::span<const Message> messages, const Options& options = {},
                             std::span<const json::Value> tools = {});

// Whether the prompt ends inside a think block the template opened (its own "<think>", no
// "</think>" or turn after it), as Qwen3-Thinking-2507's generation prompt does: the reply then
// starts with reasoning and no "<think>" of its own.
inline bool ends_inside_think(const RenderedPrompt& prompt) {
    const std::string_view text = prompt.text;
    for (std::size_t at = text.rfind("<think>"); at != std::string_view::npos; at = at ? text.rfind("<think>", at - 1) : std::string_view::npos) {
        bool untrusted = false;
        for (const TextRange& r : prompt.untrusted) untrusted = untrusted || (r.begin < at + 7 && at < r.end);
        if (untrusted) continue;  // the caller's text, not the template's
        return text.find("</think>", at) == std::string_view::npos && text.find("<|im_start|>", at) == std::string_view::npos;
    }
    return false;
}

// render_prompt(request).text: what `qwen3 template` prints. Throws as render_prompt.
std::string render_text(const json::Value& request);

// ---------------------------------------------------------------------------------------------
// implementation

inline std::vector<Segment> RenderedPrompt::segments() const {
    std::vector<Segment> out;
    std::string_view all = text;
    std::size_t at = 0;
    for (const TextRange& r : untrusted) {
        if (r.begin > at) out.push_back({all.substr(at, r.begin - at), true});
        out.push_back({all.substr(r.begin, r.end - r.begin), false});
        at = r.end;
    }
    if (at < all.size()) out.push_back({all.substr(at), true});
    return out;
}

}  // namespace qwen3::chat

namespace qwen3::detail {

class PromptWriter {
public:
    void trusted(std::string_view s) { out_.text += s; }
    void untrusted(std::string_view s) {
        if (s.empty()) return;
        std::size_t begin = out_.text.size();
        out_.text += s;
        if (!out_.untrusted.empty() && out_.untrusted.back().end == begin) out_.untrusted.back().end = out_.text.size();
        else out_.untrusted.push_back({begin, out_.text.size()});
    }
    chat::RenderedPrompt take() { return std::move(out_); }

private:
    chat::RenderedPrompt out_;
};

inline Where message_where(std::size_t index, std::string_view key) { return {"messages", index, key}; }

// The template text, statement by statement; comments quote the Jinja they implement.
inline chat::RenderedPrompt render_checked(const json::Value& request) {
    if (!request.is_object())
        qwen3::detail::fail(ErrorCode::invalid_argument, "chat template: the request must be a JSON object, found ",
                            json::Value::kind_name(request.kind()));
    const Ref messages_value = request.find("messages");
    const Ref tools = request.find("tools");
    const Ref add_generation_prompt = request.find("add_generation_prompt");
    const Ref enable_thinking = request.find("enable_thinking");

    // `messages[0].role` is the template's first use: a list or str with no element 0 fails there
    std::vector<json::Value> message_storage;
    std::vector<Ref> messages;
    if (messages_value && (messages_value->is_array() || messages_value->is_string()))
        messages = iterate(messages_value, message_storage, {"messages"});
    if (messages.empty())
        qwen3::detail::fail(ErrorCode::invalid_argument,
                            "chat template: \"messages\" must be a non-empty array of messages, found ",
                            !messages_value ? "no \"messages\" key"
                            : (messages_value->is_array() || messages_value->is_string())
                                ? "an empty one"
                                : python_type(messages_value));
    const std::size_t count = messages.size();
    auto role_is = [&](std::size_t i, std::string_view role) { return equals(attribute(messages[i], "role"), role); };
    auto content_of = [&](std::size_t i) { return attribute(messages[i], "content"); };

    PromptWriter out;
    // {%- if tools %} ... {%- else %} ... {%- endif %}
    if (truthy(tools)) {
        out.trusted("<|im_start|>system\n");
        if (role_is(0, "system")) {  // messages[0].content + '\n\n'
            out.untrusted(need_string(content_of(0), message_where(0, "content"), "joins it to the tools section"));
            out.trusted("\n\n");
        }
        out.trusted(
            "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>");
        std::vector<json::Value> tool_storage;
        for (Ref tool : iterate(tools, tool_storage, {"\"tools\""})) {  // "\n" + tool | tojson
            out.trusted("\n");
            out.untrusted(json::dump_python(*tool));
        }
        out.trusted(
            "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
            "<args-json-object>}\n</tool_call><|im_end|>\n");
    } else if (role_is(0, "system")) {
        out.trusted("<|im_start|>system\n");
        out.untrusted(need_string(content_of(0), message_where(0, "content"), "concatenates it"));
        out.trusted("<|im_end|>\n");
    }

    // The last user turn that is a real query, not a tool result passed back as a user message:
    // {%- for message in messages[::-1] %} ... {%- if ns.multi_step_tool and message.role == "user" and
    //     not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
    std::size_t last_query_index = count - 1;
    for (std::size_t i = count; i-- > 0;) {
        if (!role_is(i, "user")) continue;
        const std::string& content = need_string(content_of(i), message_where(i, "content"), "calls startswith on it");
        std::string_view c = content;
        if (!(c.starts_with("<tool_response>") && c.ends_with("</tool_response>"))) {
            last_query_index = i;
            break;
        }
    }

    std::vector<json::Value> call_storage;
    for (std::size_t i = 0; i < count; ++i) {
        const Ref message = messages[i];
        const bool last = i + 1 == count;
        if (role_is(i, "user") || (role_is(i, "system") && i != 0)) {
            // '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n'
            out.trusted(role_is(i, "user") ? "<|im_start|>user\n" : "<|im_start|>system\n");
            out.untrusted(need_string(content_of(i), message_where(i, "content"), "concatenates it"));
            out.trusted("<|im_end|>\n");
        } else if (role_is(i, "assistant")) {
            // {%- set content = message.content %} {%- set reasoning_content = '' %}
            const Ref message_content = content_of(i);
            const Ref message_reasoning = attribute(message, "reasoning_content");
            Ref content = message_content;
            json::Value reasoning_holder("");
            json::Value content_holder;
            Ref reasoning = &reasoning_holder;
            if (message_reasoning && !message_reasoning->is_null()) {
                reasoning = message_reasoning;
            } else if (contains(message_content, "</think>", message_where(i, "content"))) {
                // content = message.content.split('</think>')[-1].lstrip('\n')
                // reasoning = message.content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
                const std::string& text = need_string(message_content, message_where(i, "content"), "splits it at </think>");
                reasoning_holder = json::Value(lstrip_newlines(split_last(rstrip_newlines(split_first(text, "</think>")), "<think>")));
                content_holder = json::Value(lstrip_newlines(split_last(text, "</think>")));
                content = &content_holder;
            }
            const Where content_where = message_where(i, "content");
            // {%- if loop.index0 > ns.last_query_index and (loop.last or reasoning_content) %}
            if (i > last_query_index && (last || truthy(reasoning))) {
                out.trusted("<|im_start|>assistant\n<think>\n");
                out.untrusted(strip_newlines(need_string(reasoning, message_where(i, "reasoning_content"), "calls strip on it")));
                const std::string& c = need_string(content, content_where, "calls lstrip on it");
                out.trusted("\n</think>\n\n");
                out.untrusted(lstrip_newlines(c));
            } else {
                out.trusted("<|im_start|>assistant\n");
                out.untrusted(need_string(content, content_where, "concatenates it"));
            }
            // {%- if message.tool_calls %}{%- for tool_call in message.tool_calls %}
            const Ref tool_calls = attribute(message, "tool_calls");
            if (truthy(tool_calls)) {
                const std::vector<Ref> calls = iterate(tool_calls, call_storage, message_where(i, "tool_calls"));
                for (std::size_t k = 0; k < calls.size(); ++k) {
                    if ((k == 0 && truthy(content)) || k > 0) out.trusted("\n");
                    Ref call = calls[k];
                    if (const Ref function = attribute(call, "function"); truthy(function)) call = function;
                    out.trusted("<tool_call>\n{\"name\": \"");
                    out.untrusted(python_str(attribute(call, "name")));
                    out.trusted("\", \"arguments\": ");
                    const Ref arguments = attribute(call, "arguments");
                    if (is_string(arguments)) {
                        out.untrusted(arguments->as_string());
                    } else if (arguments) {
                        out.untrusted(json::dump_python(*arguments));  // tool_call.arguments | tojson
                    } else {
                        qwen3::detail::fail(ErrorCode::invalid_argument, "chat template: ",
                                            message_where(i, "tool_calls").text(), "[", k,
                                            "] has no \"arguments\" (json.dumps cannot print undefined)");
                    }
                    out.trusted("}\n</tool_call>");
                }
            }
            out.trusted("<|im_end|>\n");
        } else if (role_is(i, "tool")) {
            // consecutive tool results share one user turn
            if (i == 0 || !role_is(i - 1, "tool")) out.trusted("<|im_start|>user");
            out.trusted("\n<tool_response>\n");
            out.untrusted(python_str(content_of(i)));  // {{- message.content }}
            out.trusted("\n</tool_response>");
            if (last || !role_is(i + 1, "tool")) out.trusted("<|im_end|>\n");
        }
    }

    if (truthy(add_generation_prompt)) {
        out.trusted("<|im_start|>assistant\n");
        // {%- if enable_thinking is defined and enable_thinking is false %}: only the value false
        if (enable_thinking && enable_thinking->is_bool() && !enable_thinking->as_bool())
            out.trusted("<think>\n\n</think>\n\n");
    }
    return out.take();
}

}  // namespace qwen3::detail

namespace qwen3::chat {

inline RenderedPrompt render_prompt(const json::Value& request) {
    if (detail::differs_from_python(request)) return detail::render_checked(detail::rebuild_as_python(request));
    return detail::render_checked(request);
}

inline RenderedPrompt render_prompt(std::span<const Message> messages, const Options& options,
                                    std::span<const json::Value> tools) {
    return render_prompt(make_chat_request(messages, options, tools));
}

inline std::string render_text(const json::Value& request) { return render_prompt(request).text; }

}  // namespace qwen3::chat
