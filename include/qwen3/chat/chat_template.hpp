// qwen3/chat/chat_template.hpp - a model's own chat template (Jinja2 text), rendered as Hugging Face
// renders it.
//
// Use: chat::ChatTemplate t(jinja_text);            // throws naming the line of what it cannot run
//      chat::RenderedPrompt p = t.render(request);  // request as for render_prompt (template.hpp)
// Not its job: the built-in Qwen3 renderer (template.hpp), which needs no template text and is the
// fallback and the cross-check; the interpreter itself (jinja/).
//
// The request's keys are the template's variables (messages, tools, add_generation_prompt,
// enable_thinking, and any other a template reads), with bos_token, eos_token and pad_token added as
// transformers adds them. Everything taken from the request is untrusted: the ranges of the result
// mark each byte that came from it, whatever the template did to it (sliced, stripped, printed as
// JSON), so message content can never become a control token.
#pragma once

#include <algorithm>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "../error.hpp"
#include "../format/gguf.hpp"
#include "../format/json.hpp"
#include "jinja/interpreter.hpp"
#include "jinja/parser.hpp"
#include "template.hpp"

namespace qwen3::chat {

// The special tokens transformers passes to every chat template.
struct TemplateTokens {
    std::string bos_token;                      // Qwen3 has none
    std::string eos_token = "<|im_end|>";
    std::string pad_token = "<|endoftext|>";
};

class ChatTemplate {
public:
    // Throws Error(invalid_argument) naming the line of a syntax error or of a statement this
    // interpreter does not run.
    explicit ChatTemplate(std::string source) : source_(std::move(source)), program_(jinja::parse(source_)) {}

    // Renders a request object. Throws Error(invalid_argument) for a request that is not an object
    // and for whatever the template raises (naming the line).
    RenderedPrompt render(const json::Value& request, const TemplateTokens& tokens = {}, const jinja::RenderLimits& limits = {}) const {
        if (!request.is_object()) qwen3::detail::fail(ErrorCode::invalid_argument, "chat template: the request must be a JSON object");
        jinja::Dict variables;
        for (const json::Member& m : request.as_object()) {
            auto it = std::find_if(variables.begin(), variables.end(), [&](const auto& p) { return p.first == m.key; });
            jinja::Value v = jinja::Value::from_json(m.value, /*untrusted=*/true);
            if (it != variables.end()) it->second = std::move(v);  // json.loads keeps the last
            else variables.emplace_back(m.key, std::move(v));
        }
        for (const auto& token : {std::pair<const char*, const std::string*>{"bos_token", &tokens.bos_token},
                                  {"eos_token", &tokens.eos_token}, {"pad_token", &tokens.pad_token}})
            if (std::none_of(variables.begin(), variables.end(), [&](const auto& p) { return p.first == token.first; }))
                variables.emplace_back(token.first, jinja::Value::string(*token.second));
        jinja::Text text = jinja::render(program_, std::move(variables), limits);
        RenderedPrompt out;
        out.text = std::move(text.bytes);
        for (auto [b, e] : text.untrusted) out.untrusted.push_back(TextRange{b, e});
        return out;
    }

    const std::string& source() const noexcept { return source_; }

    // The template a GGUF file carries (tokenizer.chat_template), if any. Throws what parsing throws.
    static std::optional<ChatTemplate> from_gguf(const gguf::File& file) {
        const std::string_view text = file.get_string("tokenizer.chat_template", {});
        if (text.empty()) return std::nullopt;
        return ChatTemplate(std::string(text));
    }
    // The template of a Hugging Face folder, as transformers finds it: chat_template.jinja, else
    // tokenizer_config.json's "chat_template" (a string, or a list of {"name", "template"} whose
    // "default" is taken). Throws Error for a malformed tokenizer_config.json and what parsing throws.
    static std::optional<ChatTemplate> from_folder(const std::string& folder) {
        if (std::ifstream jinja_file(folder + "/chat_template.jinja", std::ios::binary); jinja_file)
            return ChatTemplate(std::string(std::istreambuf_iterator<char>(jinja_file), std::istreambuf_iterator<char>()));
        std::ifstream config_file(folder + "/tokenizer_config.json", std::ios::binary);
        if (!config_file) return std::nullopt;
        const std::string config_text((std::istreambuf_iterator<char>(config_file)), std::istreambuf_iterator<char>());
        const json::Value config = json::parse(config_text, folder + "/tokenizer_config.json");
        const json::Value* t = config.is_object() ? config.find("chat_template") : nullptr;
        if (!t) return std::nullopt;
        if (t->is_string()) return ChatTemplate(t->as_string());
        if (t->is_array())
            for (const json::Value& named : t->as_array())
                if (named.is_object() && named.find("name") && named.find("template") && named.at("name").is_string() &&
                    named.at("name").as_string() == "default" && named.at("template").is_string())
                    return ChatTemplate(named.at("template").as_string());
        qwen3::detail::fail(ErrorCode::format, folder, "/tokenizer_config.json: \"chat_template\" is neither a string nor a list with a \"default\" template");
    }

private:
    std::string source_;
    jinja::Program program_;
};

}  // namespace qwen3::chat
