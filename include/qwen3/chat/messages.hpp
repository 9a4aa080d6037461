// qwen3/chat/messages.hpp - a typed conversation, and the JSON the chat template reads.
//
// The template (chat/template.hpp) works on JSON shaped like Hugging Face's apply_chat_template
// arguments: {"messages": [...], "tools": [...], "add_generation_prompt": b, "enable_thinking": b}.
// These types are the convenient C++ way to build that JSON: every field here becomes the key the
// template reads, so anything a Message can say renders exactly as the template renders it.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../format/json.hpp"

namespace qwen3::chat {

// A function call the assistant made. `arguments` is normally a JSON object; a JSON string is
// printed verbatim by the template (so it must hold JSON text for the model to see valid JSON).
struct ToolCall {
    std::string name;
    json::Value arguments = json::Value(json::Object{});
};

// One turn. Roles the template knows: "system", "user", "assistant", "tool" (a tool's result);
// messages with any other role are skipped by the template.
struct Message {
    std::string role;
    std::string content;
    // The assistant's thinking, without the <think> tags. When absent, the template looks for a
    // <think>...</think> block inside `content` instead.
    std::optional<std::string> reasoning_content;
    std::vector<ToolCall> tool_calls;  // assistant turns only

    static Message system(std::string text) { return {"system", std::move(text), std::nullopt, {}}; }
    static Message user(std::string text) { return {"user", std::move(text), std::nullopt, {}}; }
    static Message assistant(std::string text, std::optional<std::string> reasoning = std::nullopt,
                             std::vector<ToolCall> calls = {}) {
        return {"assistant", std::move(text), std::move(reasoning), std::move(calls)};
    }
    static Message tool(std::string result) { return {"tool", std::move(result), std::nullopt, {}}; }
};

struct Options {
    // End the prompt with "<|im_start|>assistant\n" so the model writes the next assistant turn.
    bool add_generation_prompt = true;
    // false: the prompt ends with an empty "<think>\n\n</think>\n\n" block, so the model answers
    // without thinking. true renders exactly as leaving enable_thinking unset does.
    bool enable_thinking = true;
};

// {"role": ..., "content": ..., ["reasoning_content": ...,] ["tool_calls": [{"type": "function",
// "function": {"name": ..., "arguments": ...}}, ...]]}. Never throws except std::bad_alloc.
json::Value to_json(const Message& message);
json::Value to_json(const ToolCall& call);

// The template's input object. `tools` are JSON schemas as OpenAI-style tool definitions
// ({"type": "function", "function": {"name", "description", "parameters"}}); when empty, no "tools"
// key is written (the template then renders no tools section).
json::Value make_chat_request(std::span<const Message> messages, const Options& options = {},
                              std::span<const json::Value> tools = {});

// ---------------------------------------------------------------------------------------------
// implementation

inline json::Value to_json(const ToolCall& call) {
    json::Value function(json::Object{});
    function.set("name", json::Value(call.name));
    function.set("arguments", call.arguments);
    json::Value out(json::Object{});
    out.set("type", json::Value("function"));
    out.set("function", std::move(function));
    return out;
}

inline json::Value to_json(const Message& message) {
    json::Value out(json::Object{});
    out.set("role", json::Value(message.role));
    out.set("content", json::Value(message.content));
    if (message.reasoning_content) out.set("reasoning_content", json::Value(*message.reasoning_content));
    if (!message.tool_calls.empty()) {
        json::Array calls;
        calls.reserve(message.tool_calls.size());
        for (const ToolCall& call : message.tool_calls) calls.push_back(to_json(call));
        out.set("tool_calls", json::Value(std::move(calls)));
    }
    return out;
}

inline json::Value make_chat_request(std::span<const Message> messages, const Options& options,
                                     std::span<const json::Value> tools) {
    json::Array list;
    list.reserve(messages.size());
    for (const Message& m : messages) list.push_back(to_json(m));
    json::Value request(json::Object{});
    request.set("messages", json::Value(std::move(list)));
    if (!tools.empty()) request.set("tools", json::Value(json::Array(tools.begin(), tools.end())));
    request.set("add_generation_prompt", json::Value(options.add_generation_prompt));
    request.set("enable_thinking", json::Value(options.enable_thinking));
    return request;
}

}  // namespace qwen3::chat
