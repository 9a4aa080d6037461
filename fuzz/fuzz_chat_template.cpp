// Fuzz target: the chat template on arbitrary requests.
//
// First byte even: the rest is a JSON request, parsed and rendered as is (any shape: the renderer
// must refuse what Jinja would refuse with Error(invalid_argument), never crash).
// First byte odd: the rest describes a conversation directly, so the fuzzer reaches arbitrary message
// content without first having to write valid JSON: fields separated by 0x00, each starting with a
// byte that picks what it is (a message of some role, reasoning, a tool call, a tool schema).
//
// For every rendered prompt:
//   - the untrusted ranges are sorted, non-empty, disjoint, not adjacent and inside the text, and the
//     segments concatenate to the text;
//   - with the real Qwen3 tokenizer, tokenizing the prompt with the untrusted ranges as plain text
//     gives exactly the added tokens the template's own text holds: no byte of user data ever becomes
//     a control token, whatever it spells;
//   - expects_thinking() answers without throwing;
//   - the library's Jinja interpreter running the template file itself (chat/chat_template.hpp)
//     agrees with the built-in renderer: the same text, or an error where it errs, and its prompt
//     passes the same checks.
#include <cstdint>
#include <string>
#include <vector>

#include <qwen3/chat.hpp>
#include <qwen3/chat/chat_template.hpp>
#include <qwen3/format/mmap.hpp>
#include <qwen3/tokenizer.hpp>

#include "chat_prompt_checks.hpp"
#include "fuzz_support.hpp"

namespace qwen3_fuzz::chat_target {

namespace json = qwen3::json;

inline const qwen3::Tokenizer& tokenizer() {
    static const qwen3::Tokenizer tok = qwen3::Tokenizer::from_tokenizer_json(data_path("tokenizer/tokenizer.json"));
    return tok;
}

// The request a conversation description stands for (see the top of this file).
inline json::Value build_request(Input& in) {
    static const char* const roles[] = {"user", "assistant", "system", "tool", "User", ""};
    json::Array messages;
    json::Array tools;
    while (!in.empty()) {
        const std::uint8_t kind = in.byte();
        const std::string_view field = in.until('\0');
        auto parsed_or_string = [&](std::string_view text) {
            try {
                return json::parse(text, "field");
            } catch (const qwen3::Error&) {
                return json::Value(std::string(reference_sanitize_utf8(text)));
            }
        };
        const std::string text = reference_sanitize_utf8(field);  // JSON strings hold valid UTF-8 only
        switch (kind % 8) {
            case 0: case 1: case 2: case 3: case 4: {  // a message: role by kind
                json::Value m(json::Object{});
                m.set("role", json::Value(roles[(kind >> 3) % 6]));
                m.set("content", json::Value(text));
                messages.push_back(std::move(m));
                break;
            }
            case 5:  // reasoning of the last message
                if (!messages.empty()) messages.back().set("reasoning_content", json::Value(text));
                break;
            case 6: {  // a tool call on the last message: name, then arguments (JSON if it parses)
                if (messages.empty()) break;
                const std::size_t cut = text.find('\x01');
                json::Value function(json::Object{});
                function.set("name", json::Value(text.substr(0, cut)));
                function.set("arguments", cut == std::string::npos ? json::Value(json::Object{})
                                                                   : parsed_or_string(std::string_view(text).substr(cut + 1)));
                json::Value call(json::Object{});
                call.set("type", json::Value("function"));
                call.set("function", std::move(function));
                json::Object& last = messages.back().as_object();
                if (last.back().key != "tool_calls") last.push_back({"tool_calls", json::Value(json::Array{})});
                last.back().value.as_array().push_back(std::move(call));
                break;
            }
            default:  // a tool schema
                tools.push_back(parsed_or_string(field));
        }
    }
    json::Value request(json::Object{});
    request.set("messages", json::Value(std::move(messages)));
    if (!tools.empty()) request.set("tools", json::Value(std::move(tools)));
    request.set("add_generation_prompt", json::Value(true));
    return request;
}

inline const qwen3::chat::ChatTemplate& file_template() {
    static const qwen3::chat::ChatTemplate t(qwen3::read_text_file(data_path("chat/qwen3_chat_template.jinja")));
    return t;
}

inline std::size_t count_added(const qwen3::Tokenizer& tok, const std::vector<qwen3::TokenId>& ids) {
    std::size_t n = 0;
    for (qwen3::TokenId id : ids) n += tok.is_added(id);
    return n;
}

inline void check_prompt(const qwen3::chat::RenderedPrompt& p) {
    check_untrusted_ranges(p);

    // control tokens: those of the trusted text, tokenized alone, and no others
    const qwen3::Tokenizer& tok = tokenizer();
    std::vector<qwen3::ByteRange> plain;
    for (const qwen3::chat::TextRange& r : p.untrusted) plain.push_back({r.begin, r.end});
    qwen3::EncodeOptions options;
    options.plain_ranges = plain;
    const std::vector<qwen3::TokenId> ids = tok.encode(p.text, options);
    std::size_t trusted_added = 0;
    for (const qwen3::chat::Segment& s : p.segments())
        if (s.trusted) trusted_added += count_added(tok, tok.encode(s.text));
    check(count_added(tok, ids) == trusted_added, "the prompt has ", count_added(tok, ids), " added tokens, its template text ",
          trusted_added, ": user data produced a control token in ", show(p.text));
}

void run(const std::uint8_t* data, std::size_t size) {
    Input in(data, size);
    const std::uint8_t mode = in.byte();
    json::Value request;
    if (mode % 2 == 0) {
        try {
            request = json::parse(in.rest(), "request");
        } catch (const qwen3::Error&) {
            return;
        }
    } else {
        request = build_request(in);
    }
    (void)qwen3::chat::expects_thinking(request);
    qwen3::chat::RenderedPrompt prompt, interpreted;
    bool built_in_failed = false, interpreter_failed = false;
    try {
        prompt = qwen3::chat::render_prompt(request);
    } catch (const qwen3::Error& e) {
        check(e.code() == qwen3::ErrorCode::invalid_argument, "render_prompt failed with code ", qwen3::to_string(e.code()));
        built_in_failed = true;
    }
    try {
        interpreted = file_template().render(request);
    } catch (const qwen3::Error& e) {
        check(e.code() == qwen3::ErrorCode::invalid_argument, "the Jinja interpreter failed with code ", qwen3::to_string(e.code()));
        interpreter_failed = true;
    }
    check(built_in_failed == interpreter_failed, "the built-in renderer ", built_in_failed ? "refused" : "rendered",
          " a request the Jinja interpreter ", interpreter_failed ? "refused" : "rendered");
    if (built_in_failed) return;
    check(prompt.text == interpreted.text, "the Jinja interpreter rendered ", show(interpreted.text), " where the built-in renderer gave ",
          show(prompt.text));
    check_prompt(prompt);
    check_prompt(interpreted);
}

}  // namespace qwen3_fuzz::chat_target

#ifndef QWEN3_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    qwen3_fuzz::chat_target::run(data, size);
    return 0;
}
#endif
