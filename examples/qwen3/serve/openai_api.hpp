// The OpenAI wire format of `qwen3 serve`: request bodies of /v1/chat/completions and
// /v1/completions read into a prompt and generation options, and the responses and stream chunks
// written back. No HTTP here: the functions take and give JSON, so they are tested without a socket.
//
// Chat requests become the Qwen3 chat template's input (chat/template.hpp) the way vLLM and
// llama-server map them: message content given as text parts is joined, a tool call's `arguments`
// string is parsed into the object the model wrote, tool messages keep only their content,
// `chat_template_kwargs.enable_thinking` switches thinking. Replies are split into
// `reasoning_content`, `content` and `tool_calls` (chat/reply_parser.hpp).
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <qwen3/chat.hpp>
#include <qwen3/format/json.hpp>
#include <qwen3/generation.hpp>
#include <qwen3/grammar.hpp>
#include <qwen3/tokenizer.hpp>

#include "token_logprob.hpp"

namespace serve {

// An error for the client, sent as {"error": {"message", "type", "param", "code"}} with `status`.
struct ApiError : std::runtime_error {
    ApiError(int status_, std::string type_, std::string message, std::string param_ = {}, std::string code_ = {})
        : std::runtime_error(std::move(message)), status(status_), type(std::move(type_)), param(std::move(param_)),
          code(std::move(code_)) {}
    int status;
    std::string type;   // "invalid_request_error", "authentication_error", "server_error", ...
    std::string param;  // the request field at fault, or empty
    std::string code;   // e.g. "context_length_exceeded", or empty
};

// Compiled grammars of recent requests over one vocabulary trie built once: a JSON Schema or a set
// of tools is often sent again, and a grammar's token caches fill on use. Keeps at most `capacity`
// grammars and, past the most recent one, no more than `memory_budget` bytes of them; each grammar
// is bound by `limits` (a request whose grammar passes them fails alone). Thread-safe.
class GrammarCache {
public:
    static qwen3::GrammarLimits default_limits() {
        qwen3::GrammarLimits limits;
        limits.max_cache_bytes = std::size_t(256) << 20;
        return limits;
    }
    explicit GrammarCache(const qwen3::Tokenizer& tokenizer, std::size_t capacity = 64, std::size_t memory_budget = std::size_t(1) << 30,
                          qwen3::GrammarLimits limits = default_limits());
    // The grammar under `key`, made by `make` if it is not cached (make may throw; nothing is kept).
    std::shared_ptr<const qwen3::TokenGrammar> get(const std::string& key, const std::function<qwen3::Grammar()>& make);
    std::size_t size() const;

private:
    void trim();  // under mutex_

    const qwen3::Tokenizer* tokenizer_;
    std::shared_ptr<const qwen3::TokenTrie> vocabulary_;
    std::size_t capacity_;
    std::size_t memory_budget_;
    qwen3::GrammarLimits limits_;
    mutable std::mutex mutex_;
    std::list<std::pair<std::string, std::shared_ptr<const qwen3::TokenGrammar>>> recent_;  // most recent first
};

// What the server applies when a request does not say.
struct RequestDefaults {
    std::optional<qwen3::SamplerParams> sampling;  // none: Qwen3's preset for the mode (thinking or not)
    int max_tokens = 2048;                         // a request's max_tokens when it gives none
    int max_tokens_limit = 32768;                  // the most a request may ask for
    int context = 0;                               // positions a sequence may hold (prompt + reply)
    std::shared_ptr<GrammarCache> grammars;        // for response_format, tools and grammars (null: a cache per request)
};

// A request read and checked, ready for the engine.
struct ParsedRequest {
    bool chat = true;
    std::string model;
    bool stream = false;
    bool include_usage = false;              // stream_options.include_usage
    std::vector<std::int32_t> prompt;
    qwen3::GenerationOptions options;
    bool parse_tool_calls = false;           // chat: tools were offered, so <tool_call> blocks are calls
    bool thinking = false;                   // chat: the model is expected to think first
    int top_logprobs = -1;                   // -1: no logprobs; else alternatives per token
};

// Reads a request body (already parsed JSON). Throws ApiError(400) naming the field for wrong
// types, values out of range, unsupported features (n > 1, image parts, a JSON Schema keyword the
// grammar cannot honour, ...) and a prompt that does not fit the context (code
// "context_length_exceeded"). Chat: response_format (text, json_object, json_schema) and
// tool_choice (auto, none, required, a named function) constrain the reply through a grammar, and
// tool calls are constrained to the tools' schemas. Completions: `grammar` (GBNF) and `json_schema`
// (llama-server's extensions) constrain the text.
ParsedRequest parse_chat_request(const qwen3::json::Value& body, const qwen3::Tokenizer& tokenizer, const RequestDefaults& defaults);
ParsedRequest parse_completion_request(const qwen3::json::Value& body, const qwen3::Tokenizer& tokenizer,
                                       const RequestDefaults& defaults);

// Parses a request body's text (at most `max_depth` levels). Throws ApiError(400) for invalid JSON
// or a body that is not an object.
qwen3::json::Value parse_body(std::string_view text);

// A fresh response id: prefix + 9 random letters and digits.
std::string new_id(const char* prefix);

// "stop" | "length" | "tool_calls" for a finished generation.
std::string finish_reason(qwen3::StopReason reason, bool has_tool_calls);

// The error object, and the body it makes.
qwen3::json::Value error_json(const ApiError& e);
std::string error_body(const ApiError& e);

// A reply as the client sees it: split into reasoning, content and tool calls.
struct ReplyParts {
    std::string reasoning;
    std::string content;
    qwen3::json::Array tool_calls;  // OpenAI-style {"id", "type": "function", "function": {"name", "arguments": "<json text>"}}
};
// `text` is what the model generated; `request` says how to read it.
ReplyParts split_reply(const ParsedRequest& request, const std::string& text, const std::string& id_prefix);

// Streaming a chat reply: feed the generated text as it comes, get the deltas to send. Text that
// may begin a tool call is held back until the call is complete (then it goes out as tool_calls at
// finish()).
class ChatStream {
public:
    ChatStream(const ParsedRequest& request, std::string call_id_prefix);
    // Deltas ({"reasoning_content": ...} / {"content": ...}), possibly none.
    std::vector<qwen3::json::Value> feed(std::string_view text);
    // The last deltas (held-back text, tool calls); `tool_calls` tells whether any were made.
    std::vector<qwen3::json::Value> finish(bool& tool_calls);

private:
    std::vector<qwen3::json::Value> answer_deltas(const qwen3::chat::ReplyDelta& d, bool last);
    const ParsedRequest* request_;
    std::string call_prefix_;
    qwen3::chat::ThinkSplitter splitter_;
    std::string all_;       // everything generated (with the prefix), for the final tool-call parse
    std::string held_;      // answer text held back (a possible tool call)
    std::string sent_content_;
    bool in_calls_ = false; // a <tool_call> has begun: the rest of the answer is read at finish()
};

// logprobs of a chat choice: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}],
// "refusal": null}.
qwen3::json::Value chat_logprobs(const std::vector<TokenLogprob>& tokens, const qwen3::Tokenizer& tokenizer);
// logprobs of a text completion choice: {"tokens", "token_logprobs", "top_logprobs", "text_offset"},
// offsets counted from `offset` (the length of the text before these tokens).
qwen3::json::Value completion_logprobs(const std::vector<TokenLogprob>& tokens, const qwen3::Tokenizer& tokenizer, std::size_t offset);

// Response objects. `created` is Unix seconds; `logprobs` null or one of the above.
qwen3::json::Value usage_json(int prompt_tokens, int completion_tokens, int cached_tokens);
qwen3::json::Value chat_completion(const std::string& id, long long created, const std::string& model, const ReplyParts& reply,
                                   const std::string& finish, const qwen3::json::Value& usage, qwen3::json::Value logprobs = nullptr);
qwen3::json::Value chat_chunk(const std::string& id, long long created, const std::string& model, qwen3::json::Value delta,
                              const std::string* finish, qwen3::json::Value logprobs = nullptr);
qwen3::json::Value completion(const std::string& id, long long created, const std::string& model, const std::string& text,
                              const std::string& finish, const qwen3::json::Value& usage, qwen3::json::Value logprobs = nullptr);
qwen3::json::Value completion_chunk(const std::string& id, long long created, const std::string& model, const std::string& text,
                                    const std::string* finish, qwen3::json::Value logprobs = nullptr);
qwen3::json::Value usage_chunk(const std::string& id, long long created, const std::string& model, bool chat,
                               const qwen3::json::Value& usage);

}  // namespace serve
