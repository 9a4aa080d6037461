// qwen3/chat/reply_grammar.hpp - the grammar of a Qwen3 assistant reply: reasoning left free, the
// answer in a requested form (JSON, a JSON Schema), tool calls that always parse.
//
// Use: chat::ReplyForm form; form.tools = tools; form.tool_choice = chat::ToolChoice::required();
//      Grammar g = chat::reply_grammar(form);   // then TokenGrammar::create(g, tokenizer)
// Not its job: running the grammar (grammar/) or reading the reply (reply_parser.hpp).
//
// A reply is [<think> reasoning </think>] answer, where the answer is free text with tool-call
// blocks, JSON of the requested form, or tool calls only. A tool-call block is Qwen3's
//     <tool_call>\n{"name": "NAME", "arguments": ARGUMENTS}\n</tool_call>
// with NAME one of the tools and ARGUMENTS valid against that tool's "parameters" schema
// (grammar/json_schema.hpp). The tags and <think> are control tokens, matched as whole tokens, so
// free text can never open a call by writing the characters "<tool_call>", and the text before a
// call is not constrained at all until the model emits the token.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../error.hpp"
#include "../format/json.hpp"
#include "../grammar/gbnf.hpp"
#include "../grammar/grammar.hpp"
#include "../grammar/json_schema.hpp"

namespace qwen3::chat {

// What the answer must be (OpenAI's response_format).
struct ResponseFormat {
    enum class Kind { text, json_object, json_schema };
    Kind kind = Kind::text;
    json::Value schema;  // json_schema: the schema

    static ResponseFormat text() { return {}; }
    static ResponseFormat json_object() { return {Kind::json_object, {}}; }
    static ResponseFormat json_schema(json::Value schema) { return {Kind::json_schema, std::move(schema)}; }
};

// Whether the model may, must or must not call tools (OpenAI's tool_choice).
struct ToolChoice {
    enum class Kind { automatic, none, required, function };
    Kind kind = Kind::automatic;
    std::string function;  // Kind::function: the tool it must call

    static ToolChoice automatic() { return {}; }
    static ToolChoice none() { return {Kind::none, {}}; }
    static ToolChoice required() { return {Kind::required, {}}; }
    static ToolChoice named(std::string name) { return {Kind::function, std::move(name)}; }
};

struct ReplyForm {
    bool thinking = false;                 // the reply may open with <think> reasoning </think>
    bool starts_in_reasoning = false;      // the prompt ended inside an open <think> (Qwen3-Thinking-2507):
                                           // the reply is reasoning up to </think>, then the answer
    ResponseFormat response_format;
    std::vector<json::Value> tools;        // as given to the template: {"type": "function", "function": {...}} or the function itself
    ToolChoice tool_choice;
    bool constrain_tool_calls = true;      // calls' JSON checked against the tools (else free text, as without a grammar)
    JsonSchemaOptions schema_options;
};

// Whether replies of this form need a grammar at all (free text with no tools does not).
inline bool constrains(const ReplyForm& form) {
    const bool calls = !form.tools.empty() && form.tool_choice.kind != ToolChoice::Kind::none &&
                       (form.constrain_tool_calls || form.tool_choice.kind != ToolChoice::Kind::automatic);
    return calls || form.response_format.kind != ResponseFormat::Kind::text;
}

// A key naming everything reply_grammar(form) depends on: equal keys, equal grammars (for caches).
inline std::string cache_key(const ReplyForm& form) {
    std::string key;
    for (int flag : {int(form.thinking), int(form.starts_in_reasoning), int(form.tool_choice.kind), int(form.constrain_tool_calls),
                     int(form.response_format.kind), form.schema_options.max_whitespace, int(form.schema_options.allow_extra_properties),
                     int(form.schema_options.ignore_unknown_formats)})
        key.append(std::to_string(flag)).push_back(',');
    key.append(json::quote(form.tool_choice.function)).append(json::dump(form.response_format.schema));
    for (const json::Value& tool : form.tools) key.append("|").append(json::dump(tool));
    return key;
}

namespace detail {

// A GBNF string literal matching exactly `bytes`.
inline std::string gbnf_literal(std::string_view bytes) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out = "\"";
    for (unsigned char c : bytes) {
        if (c == '"' || c == '\\') out += '\\', out += char(c);
        else if (c < 0x20 || c == 0x7F) out += "\\x", out += kHex[c >> 4], out += kHex[c & 15];
        else out += char(c);
    }
    return out + "\"";
}

inline const json::Value& function_of(const json::Value& tool) {
    if (!tool.is_object()) qwen3::detail::fail(ErrorCode::invalid_argument, "tools: a tool is not a JSON object");
    const json::Value* f = tool.find("function");
    return f ? *f : tool;
}
inline std::string tool_name(const json::Value& tool) {
    const json::Value* name = function_of(tool).find("name");
    if (!name || !name->is_string() || name->as_string().empty())
        qwen3::detail::fail(ErrorCode::invalid_argument, "tools: a tool has no \"name\" string");
    return name->as_string();
}

}  // namespace detail

// The grammar of replies of `form`. Throws Error(invalid_argument) for a tool without a name, a
// forced function that is not a tool, tool_choice required without tools, and what
// json_schema_to_gbnf throws for a schema (naming the tool or the response format).
inline Grammar reply_grammar(const ReplyForm& form) {
    GrammarBuilder builder;
    std::string main = "root ::= ";
    main += form.starts_in_reasoning ? "reasoning-rest answer\n" : form.thinking ? "reasoning? answer\n" : "answer\n";
    main += "reasoning ::= <think> reasoning-rest\n";
    main += "reasoning-rest ::= .* </think> [ \\t\\n]*\n";
    main += "text ::= .*\n";
    main += "ws ::= [ ]?\n";

    auto add_schema = [&](const json::Value& schema, const std::string& prefix, std::string_view what) {
        std::string gbnf;
        try {
            gbnf = json_schema_to_gbnf(schema, form.schema_options);
        } catch (const Error& e) {
            qwen3::detail::fail(e.code(), what, ": ", e.what());
        }
        qwen3::detail::GbnfParser(gbnf, builder, prefix).parse_rules();
        return prefix + "root";
    };

    std::vector<const json::Value*> callable;
    const bool use_tools = !form.tools.empty() && form.tool_choice.kind != ToolChoice::Kind::none;
    if (form.tool_choice.kind == ToolChoice::Kind::required && form.tools.empty())
        qwen3::detail::fail(ErrorCode::invalid_argument, "tool_choice \"required\" without tools");
    if (use_tools)
        for (const json::Value& tool : form.tools)
            if (form.tool_choice.kind != ToolChoice::Kind::function || detail::tool_name(tool) == form.tool_choice.function)
                callable.push_back(&tool);
    if (form.tool_choice.kind == ToolChoice::Kind::function && callable.empty())
        qwen3::detail::fail(ErrorCode::invalid_argument, "tool_choice names the function \"", form.tool_choice.function,
                            "\", which is not one of the tools");

    bool calls = false;
    if (!callable.empty() && (form.constrain_tool_calls || form.tool_choice.kind != ToolChoice::Kind::automatic)) {
        calls = true;
        main += "call-block ::= <tool_call> \"\\n\" call \"\\n\" </tool_call>\n";
        main += "calls ::= call-block (\"\\n\" call-block)*\n";
        main += "call ::= \"{\" ws \"\\\"name\\\"\" ws \":\" ws (";
        for (std::size_t i = 0; i < callable.size(); ++i) {
            const json::Value& f = detail::function_of(*callable[i]);
            const std::string name = detail::tool_name(*callable[i]);
            const json::Value* parameters = f.find("parameters");
            const json::Value object_schema = json::parse(R"({"type": "object"})");
            const std::string args = add_schema(parameters ? *parameters : object_schema, "tool" + std::to_string(i) + "-",
                                                "tool \"" + name + "\" parameters");
            main += (i ? " | " : "") + detail::gbnf_literal(json::dump(json::Value(name))) + " ws \",\" ws \"\\\"arguments\\\"\" ws \":\" ws " + args;
        }
        main += ") ws \"}\"\n";
    }

    std::string json_answer;
    if (form.response_format.kind == ResponseFormat::Kind::json_object)
        json_answer = add_schema(json::parse(R"({"type": "object"})"), "format-", "response_format");
    else if (form.response_format.kind == ResponseFormat::Kind::json_schema)
        json_answer = add_schema(form.response_format.schema, "format-", "response_format schema");

    const bool forced = form.tool_choice.kind == ToolChoice::Kind::required || form.tool_choice.kind == ToolChoice::Kind::function;
    if (forced) main += "answer ::= calls\n";
    else if (!json_answer.empty()) main += "answer ::= " + json_answer + (calls ? " | calls\n" : "\n");
    else if (calls) main += "answer ::= text (call-block text)*\n";
    else main += "answer ::= text\n";
    qwen3::detail::GbnfParser(main, builder).parse_rules();
    return builder.build("root");
}

}  // namespace qwen3::chat
