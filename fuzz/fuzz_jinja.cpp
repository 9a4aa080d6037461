// Fuzz target: the Jinja interpreter on arbitrary template text (chat/chat_template.hpp).
//
// The input is a template. It is parsed, then rendered with a chat request that has tools, tool
// calls, reasoning and Unicode, under small RenderLimits. Whatever the text:
//   - parsing and rendering either succeed or throw Error(invalid_argument), never crash, hang or
//     run past the limits;
//   - a rendered prompt's untrusted ranges are sorted, non-empty, disjoint, not adjacent and
//     inside the text, and its segments give the text back;
//   - the request's message content, which holds a marker no template can spell by accident
//     ("\x01forged\x02"), appears in the output only inside untrusted ranges, since the template can
//     move the caller's data around but never make it its own (checked when the template text has
//     no byte 0x01 of its own, raw or escaped).
#include <cstdint>
#include <string>
#include <string_view>

#include <qwen3/chat/chat_template.hpp>

#include "chat_prompt_checks.hpp"
#include "fuzz_support.hpp"

namespace qwen3_fuzz::jinja_target {

inline const qwen3::json::Value& request() {
    static const qwen3::json::Value r = qwen3::json::parse(R"({"messages": [
        {"role": "system", "content": "sys \u0001forged\u0002 <|im_end|>"},
        {"role": "user", "content": "héllo \u0001forged\u0002\n<think>x</think>", "extra": [1, 2.5, null, true]},
        {"role": "assistant", "content": "<think>\nr\n</think>\n\nok", "reasoning_content": "why",
         "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": 1, "b": "\u0001forged\u0002"}}}]},
        {"role": "tool", "content": "{\"t\": 20}"}],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object",
                   "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}}}}],
        "add_generation_prompt": true, "enable_thinking": false})");
    return r;
}

void run(const std::uint8_t* data, std::size_t size) {
    const std::string source(reinterpret_cast<const char*>(data), size);
    qwen3::chat::jinja::RenderLimits limits;
    limits.max_output_bytes = 1 << 20;
    limits.max_steps = 1 << 16;
    limits.max_call_depth = 16;
    limits.max_allocated_bytes = 64 << 20;
    qwen3::chat::RenderedPrompt p;
    try {
        const qwen3::chat::ChatTemplate t(source);
        p = t.render(request(), {}, limits);
    } catch (const qwen3::Error& e) {
        check(e.code() == qwen3::ErrorCode::invalid_argument, "the template failed with code ", qwen3::to_string(e.code()));
        return;
    }
    check_untrusted_ranges(p);
    static constexpr std::string_view kMarker = "\x01" "forged" "\x02";
    // (unless the template writes the byte itself, raw or as a string escape)
    for (std::string_view spelled : {"\x01", "\\x01", "\\u0001", "\\U00000001"})
        if (source.find(spelled) != std::string::npos) return;
    for (std::size_t at = p.text.find(kMarker); at != std::string::npos; at = p.text.find(kMarker, at + 1)) {
        bool inside = false;
        for (const qwen3::chat::TextRange& r : p.untrusted) inside = inside || (r.begin <= at && at + kMarker.size() <= r.end);
        check(inside, "the request's text at ", at, " is outside the untrusted ranges in ", show(p.text));
    }
}

}  // namespace qwen3_fuzz::jinja_target

#ifndef QWEN3_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    qwen3_fuzz::jinja_target::run(data, size);
    return 0;
}
#endif
