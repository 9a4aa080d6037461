// The OpenAI wire format of `qwen3 serve` (see openai_api.hpp).
#include "openai_api.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include <qwen3/error.hpp>

namespace serve {

namespace json = qwen3::json;

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& message) {
    throw ApiError(400, "invalid_request_error", message, param);
}

// The member `key` of an object, or null when absent or JSON null (clients send null for "unset").
const json::Value* field(const json::Value& object, std::string_view key) {
    const json::Value* v = object.find(key);
    return v && !v->is_null() ? v : nullptr;
}

bool get_bool(const json::Value& body, std::string_view key, bool fallback) {
    const json::Value* v = field(body, key);
    if (!v) return fallback;
    if (!v->is_bool()) bad(std::string(key), "'" + std::string(key) + "' must be a boolean");
    return v->as_bool();
}

std::string short_number(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", x);
    return buf;
}

double get_number(const json::Value& body, std::string_view key, double fallback, double min, double max) {
    const json::Value* v = field(body, key);
    if (!v) return fallback;
    if (!v->is_number()) bad(std::string(key), "'" + std::string(key) + "' must be a number");
    const double x = v->as_double();
    if (!(x >= min && x <= max))
        bad(std::string(key), "'" + std::string(key) + "' must be in [" + short_number(min) + ", " + short_number(max) + "], got " +
                                  v->as_number().text);
    return x;
}

long long get_integer(const json::Value& body, std::string_view key, long long fallback, long long min, long long max) {
    const json::Value* v = field(body, key);
    if (!v) return fallback;
    if (!v->is_integer()) bad(std::string(key), "'" + std::string(key) + "' must be an integer");
    long long x = 0;
    try {
        x = v->as_int();
    } catch (const qwen3::Error&) {
        bad(std::string(key), "'" + std::string(key) + "' is out of range");
    }
    if (x < min || x > max)
        bad(std::string(key), "'" + std::string(key) + "' must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " +
                                  std::to_string(x));
    return x;
}

std::vector<std::string> get_stop(const json::Value& body) {
    std::vector<std::string> out;
    const json::Value* v = field(body, "stop");
    if (!v) return out;
    if (v->is_string()) {
        out.push_back(v->as_string());
    } else if (v->is_array()) {
        for (const json::Value& s : v->as_array()) {
            if (!s.is_string()) bad("stop", "'stop' must be a string or an array of strings");
            out.push_back(s.as_string());
        }
    } else {
        bad("stop", "'stop' must be a string or an array of strings");
    }
    if (out.size() > 16) bad("stop", "'stop' holds at most 16 strings");
    for (const std::string& s : out)
        if (s.empty()) bad("stop", "'stop' strings must not be empty");
    return out;
}

// Fields common to both endpoints: sampling, limits, stop strings, streaming.
void read_common(const json::Value& body, const RequestDefaults& defaults, bool thinking, ParsedRequest& r) {
    if (const json::Value* m = field(body, "model")) {
        if (!m->is_string()) bad("model", "'model' must be a string");
        r.model = m->as_string();
    }
    if (get_integer(body, "n", 1, 1, 1) != 1) bad("n", "'n' must be 1");
    if (field(body, "best_of") && get_integer(body, "best_of", 1, 1, 1) != 1) bad("best_of", "'best_of' must be 1");
    r.stream = get_bool(body, "stream", false);
    if (const json::Value* so = field(body, "stream_options")) {
        if (!so->is_object()) bad("stream_options", "'stream_options' must be an object");
        r.include_usage = get_bool(*so, "include_usage", false);
    }

    qwen3::SamplerParams p = defaults.sampling ? *defaults.sampling : thinking ? qwen3::SamplerParams::thinking()
                                                                                : qwen3::SamplerParams::non_thinking();
    p.temperature = float(get_number(body, "temperature", p.temperature, 0, 2));
    p.top_p = float(get_number(body, "top_p", p.top_p, 0, 1));
    if (p.top_p == 0) p.top_p = 1e-9f;  // OpenAI allows 0: keep only the most likely token
    // -1 is how vLLM and llama-server spell "off"
    const long long top_k = get_integer(body, "top_k", p.top_k, -1, 1 << 30);
    p.top_k = top_k < 0 ? 0 : int(top_k);
    p.min_p = float(get_number(body, "min_p", p.min_p, 0, 1));
    p.presence_penalty = float(get_number(body, "presence_penalty", p.presence_penalty, -2, 2));
    p.frequency_penalty = float(get_number(body, "frequency_penalty", p.frequency_penalty, -2, 2));
    p.repetition_penalty = float(get_number(body, "repetition_penalty", p.repetition_penalty, 1e-3, 100));
    if (const json::Value* s = field(body, "seed")) {
        if (!s->is_integer()) bad("seed", "'seed' must be an integer");
        const std::string& text = s->as_number().text;
        p.seed = text[0] == '-' ? std::uint64_t(std::strtoll(text.c_str(), nullptr, 10)) : std::strtoull(text.c_str(), nullptr, 10);
    } else {
        p.seed = (std::uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
    }
    r.options.sampling = p;

    long long max_tokens = get_integer(body, "max_tokens", defaults.max_tokens, 0, defaults.max_tokens_limit);
    max_tokens = get_integer(body, "max_completion_tokens", max_tokens, 0, defaults.max_tokens_limit);
    r.options.max_tokens = int(max_tokens);
    r.options.stop = get_stop(body);
    // vLLM's and llama-server's extension: generate max_tokens whatever the model says (benchmarks)
    r.options.stop_at_end_of_turn = !get_bool(body, "ignore_eos", false);

    if (const json::Value* lb = field(body, "logit_bias")) {
        if (!lb->is_object()) bad("logit_bias", "'logit_bias' must be an object");
        if (!lb->as_object().empty())
            throw ApiError(400, "invalid_request_error", "logit_bias is not supported by this server", "logit_bias");
    }
}

void check_prompt_fits(const ParsedRequest& r, const RequestDefaults& defaults, const char* what) {
    if (r.prompt.empty()) bad("prompt", "the prompt is empty");
    if (int(r.prompt.size()) >= defaults.context)
        throw ApiError(400, "invalid_request_error",
                       "This model's maximum context length is " + std::to_string(defaults.context) + " tokens. However, your " + what +
                           " resulted in " + std::to_string(r.prompt.size()) + " tokens.",
                       what == std::string("messages") ? "messages" : "prompt", "context_length_exceeded");
}

// A message's content as the template's string: text, or text parts joined by newlines.
std::string content_text(const json::Value& content, std::size_t index) {
    const std::string param = "messages[" + std::to_string(index) + "].content";
    if (content.is_string()) return content.as_string();
    if (!content.is_array()) bad(param, "'" + param + "' must be a string or an array of content parts");
    std::string out;
    bool first = true;
    for (const json::Value& part : content.as_array()) {
        if (!part.is_object()) bad(param, "each part of '" + param + "' must be an object");
        const json::Value* type = part.find("type");
        if (!type || !type->is_string()) bad(param, "each part of '" + param + "' needs a string 'type'");
        if (type->as_string() != "text")
            bad(param, "content parts of type '" + type->as_string() + "' are not supported (text only: Qwen3 reads text)");
        const json::Value* text = part.find("text");
        if (!text || !text->is_string()) bad(param, "a text part of '" + param + "' needs a string 'text'");
        if (!first) out += '\n';
        out += text->as_string();
        first = false;
    }
    return out;
}

// An OpenAI message as the template's message.
json::Value template_message(const json::Value& m, std::size_t index) {
    const std::string at = "messages[" + std::to_string(index) + "]";
    if (!m.is_object()) bad(at, "'" + at + "' must be an object");
    const json::Value* role_v = m.find("role");
    if (!role_v || !role_v->is_string()) bad(at + ".role", "'" + at + ".role' must be a string");
    std::string role = role_v->as_string();
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
        bad(at + ".role", "'" + at + ".role' must be system, developer, user, assistant or tool, got '" + role + "'");
    json::Value out(json::Object{});
    out.set("role", json::Value(role));
    const json::Value* content = field(m, "content");
    if (!content && role != "assistant") bad(at + ".content", "'" + at + ".content' is required for a " + role + " message");
    out.set("content", json::Value(content ? content_text(*content, index) : std::string()));
    if (role != "assistant") return out;

    if (const json::Value* reasoning = field(m, "reasoning_content")) {
        if (!reasoning->is_string()) bad(at + ".reasoning_content", "'" + at + ".reasoning_content' must be a string");
        out.set("reasoning_content", *reasoning);
    }
    if (const json::Value* calls = field(m, "tool_calls")) {
        if (!calls->is_array()) bad(at + ".tool_calls", "'" + at + ".tool_calls' must be an array");
        json::Array list;
        for (std::size_t i = 0; i < calls->as_array().size(); ++i) {
            const json::Value& call = calls->as_array()[i];
            const std::string cat = at + ".tool_calls[" + std::to_string(i) + "]";
            const json::Value* function = call.is_object() ? call.find("function") : nullptr;
            if (!function || !function->is_object()) bad(cat + ".function", "'" + cat + ".function' must be an object");
            const json::Value* name = function->find("name");
            if (!name || !name->is_string()) bad(cat + ".function.name", "'" + cat + ".function.name' must be a string");
            const json::Value* arguments = field(*function, "arguments");
            json::Value args(json::Object{});
            if (arguments && arguments->is_string()) {
                // the model wrote an object: show it the object, as it wrote it (vLLM does the same)
                try {
                    args = json::parse(arguments->as_string(), "arguments");
                } catch (const qwen3::Error&) {
                    args = *arguments;  // not JSON: the template prints the string as it is
                }
            } else if (arguments) {
                args = *arguments;
            }
            json::Value f(json::Object{});
            f.set("name", *name);
            f.set("arguments", std::move(args));
            json::Value c(json::Object{});
            c.set("type", json::Value("function"));
            c.set("function", std::move(f));
            list.push_back(std::move(c));
        }
        if (!list.empty()) out.set("tool_calls", json::Value(std::move(list)));
    }
    return out;
}

std::string random_suffix() {
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::random_device rd;
    std::string s;
    for (int i = 0; i < 9; ++i) s += alphabet[rd() % (sizeof alphabet - 1)];
    return s;
}

json::Value tool_call_json(const qwen3::chat::ToolCall& call, const std::string& id) {
    json::Value f(json::Object{});
    f.set("name", json::Value(call.name));
    f.set("arguments", json::Value(call.arguments.is_string() ? call.arguments.as_string() : json::dump_python(call.arguments)));
    json::Value c(json::Object{});
    c.set("id", json::Value(id));
    c.set("type", json::Value("function"));
    c.set("function", std::move(f));
    return c;
}

json::Value delta_of(const char* key, std::string text) {
    json::Value d(json::Object{});
    d.set(key, json::Value(std::move(text)));
    return d;
}

}  // namespace

json::Value parse_body(std::string_view text) {
    json::ParseOptions options;
    options.max_depth = 64;
    options.unique_keys = true;
    json::Value body;
    try {
        body = json::parse(text, "request body", options);
    } catch (const qwen3::Error& e) {
        throw ApiError(400, "invalid_request_error", std::string("the body is not valid JSON: ") + e.what());
    }
    if (!body.is_object()) throw ApiError(400, "invalid_request_error", "the body must be a JSON object");
    return body;
}

GrammarCache::GrammarCache(const qwen3::Tokenizer& tokenizer, std::size_t capacity, std::size_t memory_budget, qwen3::GrammarLimits limits)
    : tokenizer_(&tokenizer), vocabulary_(std::make_shared<const qwen3::TokenTrie>(tokenizer, tokenizer.vocab_size())), capacity_(capacity),
      memory_budget_(memory_budget), limits_(limits) {}

std::size_t GrammarCache::size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return recent_.size();
}

void GrammarCache::trim() {
    while (recent_.size() > capacity_) recent_.pop_back();
    std::size_t bytes = 0;
    for (auto it = recent_.begin(); it != recent_.end(); ++it) {
        bytes += it->second->memory_bytes();
        if (it != recent_.begin() && bytes > memory_budget_) {  // requests holding the rest keep them alive until they end
            recent_.erase(it, recent_.end());
            break;
        }
    }
}

std::shared_ptr<const qwen3::TokenGrammar> GrammarCache::get(const std::string& key, const std::function<qwen3::Grammar()>& make) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto it = recent_.begin(); it != recent_.end(); ++it)
            if (it->first == key) {
                recent_.splice(recent_.begin(), recent_, it);
                auto found = it->second;
                trim();  // caches grow as they are used
                return found;
            }
    }
    auto made = qwen3::TokenGrammar::bind(make(), vocabulary_, *tokenizer_, limits_);  // outside the lock: compiling may take a while
    std::lock_guard<std::mutex> lock(mutex_);
    recent_.emplace_front(key, made);
    trim();
    return made;
}

namespace {

// The request's grammar through the server's cache; a grammar the library refuses is a 400 naming `param`.
std::shared_ptr<const qwen3::TokenGrammar> grammar_for(const RequestDefaults& defaults, const qwen3::Tokenizer& tokenizer,
                                                       const std::string& key, const std::function<qwen3::Grammar()>& make,
                                                       const std::string& param) {
    try {
        if (defaults.grammars) return defaults.grammars->get(key, make);
        return GrammarCache(tokenizer, 1).get(key, make);
    } catch (const qwen3::Error& e) {
        throw ApiError(400, "invalid_request_error", std::string("'") + param + "': " + e.what(), param);
    }
}

}  // namespace

ParsedRequest parse_chat_request(const json::Value& body, const qwen3::Tokenizer& tokenizer, const RequestDefaults& defaults) {
    ParsedRequest r;
    r.chat = true;
    const json::Value* messages = field(body, "messages");
    if (!messages) bad("messages", "'messages' is required");
    if (!messages->is_array() || messages->as_array().empty()) bad("messages", "'messages' must be a non-empty array");

    json::Array list;
    for (std::size_t i = 0; i < messages->as_array().size(); ++i) list.push_back(template_message(messages->as_array()[i], i));
    json::Value request(json::Object{});
    request.set("messages", json::Value(std::move(list)));

    qwen3::chat::ReplyForm form;
    if (const json::Value* tc = field(body, "tool_choice")) {
        if (tc->is_string()) {
            const std::string& choice = tc->as_string();
            if (choice == "none") form.tool_choice = qwen3::chat::ToolChoice::none();
            else if (choice == "required") form.tool_choice = qwen3::chat::ToolChoice::required();
            else if (choice != "auto") bad("tool_choice", "'tool_choice' must be \"auto\", \"none\", \"required\" or a named function");
        } else if (tc->is_object()) {
            const json::Value* f = tc->find("function");
            const json::Value* name = f && f->is_object() ? f->find("name") : nullptr;
            if (!name || !name->is_string()) bad("tool_choice", "'tool_choice' must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
            form.tool_choice = qwen3::chat::ToolChoice::named(name->as_string());
        } else {
            bad("tool_choice", "'tool_choice' must be a string or an object");
        }
    }
    if (const json::Value* tools = field(body, "tools")) {
        if (!tools->is_array()) bad("tools", "'tools' must be an array");
        for (std::size_t i = 0; i < tools->as_array().size(); ++i) {
            const json::Value& t = tools->as_array()[i];
            const std::string at = "tools[" + std::to_string(i) + "]";
            const json::Value* f = t.is_object() ? t.find("function") : nullptr;
            const json::Value* name = f && f->is_object() ? f->find("name") : nullptr;
            if (!name || !name->is_string()) bad(at, "'" + at + "' must be {\"type\": \"function\", \"function\": {\"name\": ..., ...}}");
        }
        if (!tools->as_array().empty() && form.tool_choice.kind != qwen3::chat::ToolChoice::Kind::none) {
            request.set("tools", *tools);
            r.parse_tool_calls = true;
            form.tools = tools->as_array();
        }
    }
    if (form.tools.empty() && (form.tool_choice.kind == qwen3::chat::ToolChoice::Kind::required ||
                               form.tool_choice.kind == qwen3::chat::ToolChoice::Kind::function))
        bad("tool_choice", "'tool_choice' asks for a tool call but 'tools' is empty");
    bool enable_thinking = true;
    if (const json::Value* kwargs = field(body, "chat_template_kwargs")) {
        if (!kwargs->is_object()) bad("chat_template_kwargs", "'chat_template_kwargs' must be an object");
        enable_thinking = get_bool(*kwargs, "enable_thinking", true);
    }
    if (const json::Value* format = field(body, "response_format")) {
        const json::Value* type = format->is_object() ? format->find("type") : nullptr;
        if (!type || !type->is_string()) bad("response_format", "'response_format' must be an object with a string 'type'");
        if (type->as_string() == "json_object") {
            form.response_format = qwen3::chat::ResponseFormat::json_object();
        } else if (type->as_string() == "json_schema") {
            const json::Value* spec = format->find("json_schema");
            const json::Value* schema = spec && spec->is_object() ? spec->find("schema") : nullptr;
            if (!schema) bad("response_format.json_schema.schema", "'response_format.json_schema.schema' is required");
            form.response_format = qwen3::chat::ResponseFormat::json_schema(*schema);
        } else if (type->as_string() != "text") {
            bad("response_format.type", "'response_format.type' must be \"text\", \"json_object\" or \"json_schema\"");
        }
    }
    request.set("add_generation_prompt", json::Value(true));
    request.set("enable_thinking", json::Value(enable_thinking));
    r.thinking = qwen3::chat::expects_thinking(request);
    read_common(body, defaults, r.thinking, r);
    form.thinking = r.thinking;
    if (qwen3::chat::constrains(form)) {
        const std::string key = "chat|" + qwen3::chat::cache_key(form);
        r.options.grammar = grammar_for(defaults, tokenizer, key, [&] { return qwen3::chat::reply_grammar(form); },
                                        form.response_format.kind == qwen3::chat::ResponseFormat::Kind::json_schema ? "response_format" : "tools");
    }
    const bool logprobs = get_bool(body, "logprobs", false);
    const long long top = get_integer(body, "top_logprobs", 0, 0, 20);
    if (field(body, "top_logprobs") && !logprobs) bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    r.top_logprobs = logprobs ? int(top) : -1;

    qwen3::chat::RenderedPrompt prompt;
    try {
        prompt = qwen3::chat::render_prompt(request);
    } catch (const qwen3::Error& e) {
        bad("messages", std::string("the chat template cannot render these messages: ") + e.what());
    }
    std::vector<qwen3::ByteRange> plain;
    for (const qwen3::chat::TextRange& range : prompt.untrusted) plain.push_back({range.begin, range.end});
    qwen3::EncodeOptions encode;
    encode.plain_ranges = plain;
    r.prompt = tokenizer.encode(prompt.text, encode);
    check_prompt_fits(r, defaults, "messages");
    return r;
}

ParsedRequest parse_completion_request(const json::Value& body, const qwen3::Tokenizer& tokenizer, const RequestDefaults& defaults) {
    ParsedRequest r;
    r.chat = false;
    read_common(body, defaults, false, r);
    r.top_logprobs = int(get_integer(body, "logprobs", -1, 0, 20));
    if (get_bool(body, "echo", false)) throw ApiError(400, "invalid_request_error", "echo is not supported by this server", "echo");
    if (field(body, "suffix")) throw ApiError(400, "invalid_request_error", "suffix is not supported by this server", "suffix");
    const json::Value* prompt = field(body, "prompt");
    if (!prompt) bad("prompt", "'prompt' is required");
    auto ids_of = [&](const json::Array& a) {
        std::vector<std::int32_t> ids;
        for (const json::Value& v : a) {
            if (!v.is_integer() || v.as_double() < 0 || v.as_double() >= double(tokenizer.vocab_size()))
                bad("prompt", "token ids in 'prompt' must be integers in [0, " + std::to_string(tokenizer.vocab_size()) + ")");
            ids.push_back(std::int32_t(v.as_int()));
        }
        return ids;
    };
    if (prompt->is_string()) {
        r.prompt = tokenizer.encode(prompt->as_string());
    } else if (prompt->is_array()) {
        const json::Array& a = prompt->as_array();
        if (a.empty()) bad("prompt", "'prompt' is empty");
        if (a[0].is_number()) {
            r.prompt = ids_of(a);
        } else {
            if (a.size() != 1) bad("prompt", "'prompt' may hold one prompt (n = 1, no batches)");
            if (a[0].is_string()) r.prompt = tokenizer.encode(a[0].as_string());
            else if (a[0].is_array()) r.prompt = ids_of(a[0].as_array());
            else bad("prompt", "'prompt' must be a string, an array of token ids, or an array of one of them");
        }
    } else {
        bad("prompt", "'prompt' must be a string, an array of token ids, or an array of one of them");
    }
    check_prompt_fits(r, defaults, "prompt");
    // llama-server's extensions: the text follows a GBNF grammar or a JSON Schema
    const json::Value* gbnf = field(body, "grammar");
    const json::Value* schema = field(body, "json_schema");
    if (gbnf && schema) bad("grammar", "give 'grammar' or 'json_schema', not both");
    if (gbnf) {
        if (!gbnf->is_string()) bad("grammar", "'grammar' must be GBNF text");
        r.options.grammar = grammar_for(defaults, tokenizer, "gbnf|" + gbnf->as_string(), [&] { return qwen3::Grammar::from_gbnf(gbnf->as_string()); },
                                        "grammar");
    } else if (schema) {
        r.options.grammar = grammar_for(defaults, tokenizer, "schema|" + json::dump(*schema),
                                        [&] { return qwen3::Grammar::from_gbnf(qwen3::json_schema_to_gbnf(*schema)); }, "json_schema");
    }
    return r;
}

std::string finish_reason(qwen3::StopReason reason, bool has_tool_calls) {
    if (has_tool_calls) return "tool_calls";
    return reason == qwen3::StopReason::max_tokens || reason == qwen3::StopReason::context_full ? "length" : "stop";
}

json::Value error_json(const ApiError& e) {
    json::Value err(json::Object{});
    err.set("message", json::Value(std::string(e.what())));
    err.set("type", json::Value(e.type));
    err.set("param", e.param.empty() ? json::Value(nullptr) : json::Value(e.param));
    err.set("code", e.code.empty() ? json::Value(nullptr) : json::Value(e.code));
    json::Value out(json::Object{});
    out.set("error", std::move(err));
    return out;
}

std::string error_body(const ApiError& e) { return json::dump(error_json(e)); }

ReplyParts split_reply(const ParsedRequest& request, const std::string& text, const std::string& id_prefix) {
    ReplyParts out;
    if (!request.chat) {
        out.content = text;
        return out;
    }
    if (request.parse_tool_calls) {
        const qwen3::chat::ParsedReply parsed = qwen3::chat::parse_reply(text);
        out.reasoning = parsed.reasoning;
        out.content = parsed.content;
        for (std::size_t i = 0; i < parsed.tool_calls.size(); ++i)
            out.tool_calls.push_back(tool_call_json(parsed.tool_calls[i], id_prefix + std::to_string(i)));
        return out;
    }
    qwen3::chat::ThinkSplitter splitter;
    for (const qwen3::chat::ReplyDelta& d : {splitter.feed(text), splitter.finish()}) {
        out.reasoning += d.reasoning;
        out.content += d.answer;
    }
    return out;
}

ChatStream::ChatStream(const ParsedRequest& request, std::string call_id_prefix)
    : request_(&request), call_prefix_(std::move(call_id_prefix)) {}

std::vector<json::Value> ChatStream::answer_deltas(const qwen3::chat::ReplyDelta& d, bool last) {
    std::vector<json::Value> out;
    if (!d.reasoning.empty()) out.push_back(delta_of("reasoning_content", d.reasoning));
    if (!request_->parse_tool_calls) {
        if (!d.answer.empty()) out.push_back(delta_of("content", d.answer));
        return out;
    }
    if (in_calls_) return out;  // read whole at finish()
    held_ += d.answer;
    const std::size_t open = held_.find(qwen3::detail::kToolCallOpen);
    std::size_t keep_from = held_.size();
    if (open != std::string::npos) {
        in_calls_ = true;
        keep_from = open;
    } else if (!last) {
        keep_from -= qwen3::detail::partial_tag_suffix(held_, qwen3::detail::kToolCallOpen);
    }
    // white space before a tool call is not content (parse_reply drops it): hold it until it is known
    while (!last && keep_from > 0 && qwen3::detail::is_reply_space(held_[keep_from - 1])) --keep_from;
    if (keep_from > 0) {
        out.push_back(delta_of("content", held_.substr(0, keep_from)));
        sent_content_ += held_.substr(0, keep_from);
        held_.erase(0, keep_from);
    }
    return out;
}

std::vector<json::Value> ChatStream::feed(std::string_view text) {
    all_ += text;
    return answer_deltas(splitter_.feed(text), false);
}

std::vector<json::Value> ChatStream::finish(bool& tool_calls) {
    tool_calls = false;
    if (!request_->parse_tool_calls) return answer_deltas(splitter_.finish(), true);
    qwen3::chat::ReplyDelta d = splitter_.finish();
    std::vector<json::Value> out;
    if (!d.reasoning.empty()) out.push_back(delta_of("reasoning_content", d.reasoning));
    // the rest of the content and the calls, as the whole reply reads
    const qwen3::chat::ParsedReply parsed = qwen3::chat::parse_reply(all_);
    if (parsed.content.size() > sent_content_.size() && parsed.content.compare(0, sent_content_.size(), sent_content_) == 0)
        out.push_back(delta_of("content", parsed.content.substr(sent_content_.size())));
    if (!parsed.tool_calls.empty()) {
        json::Array calls;
        for (std::size_t i = 0; i < parsed.tool_calls.size(); ++i) {
            json::Value c = tool_call_json(parsed.tool_calls[i], call_prefix_ + std::to_string(i));
            json::Value indexed(json::Object{});
            indexed.set("index", json::Value::integer(std::int64_t(i)));
            for (const json::Member& m : c.as_object()) indexed.set(m.key, m.value);
            calls.push_back(std::move(indexed));
        }
        json::Value delta(json::Object{});
        delta.set("tool_calls", json::Value(std::move(calls)));
        out.push_back(std::move(delta));
        tool_calls = true;
    }
    return out;
}

json::Value usage_json(int prompt_tokens, int completion_tokens, int cached_tokens) {
    json::Value u(json::Object{});
    u.set("prompt_tokens", json::Value::integer(prompt_tokens));
    u.set("completion_tokens", json::Value::integer(completion_tokens));
    u.set("total_tokens", json::Value::integer(prompt_tokens + completion_tokens));
    json::Value details(json::Object{});
    details.set("cached_tokens", json::Value::integer(cached_tokens));
    u.set("prompt_tokens_details", std::move(details));
    return u;
}

namespace {
json::Value envelope(const std::string& id, const char* object, long long created, const std::string& model) {
    json::Value out(json::Object{});
    out.set("id", json::Value(id));
    out.set("object", json::Value(object));
    out.set("created", json::Value::integer(created));
    out.set("model", json::Value(model));
    out.set("system_fingerprint", json::Value("qwen3.hpp"));
    return out;
}
json::Value one_choice(json::Value choice) {
    json::Array a;
    a.push_back(std::move(choice));
    return json::Value(std::move(a));
}
}  // namespace

namespace {
// {"index": 0, KEY: VALUE, "logprobs": null, "finish_reason": ...} as the only choice of a response,
// or {"text": ..., "index": 0, ...} for text completions (OpenAI's order).
json::Value response(const std::string& id, const char* object, long long created, const std::string& model, const char* key,
                     json::Value value, const std::string* finish, const json::Value* usage, json::Value logprobs) {
    json::Value choice(json::Object{});
    if (std::string_view(key) == "text") choice.set(key, std::move(value));
    choice.set("index", json::Value::integer(0));
    if (std::string_view(key) != "text") choice.set(key, std::move(value));
    choice.set("logprobs", std::move(logprobs));
    choice.set("finish_reason", finish ? json::Value(*finish) : json::Value(nullptr));
    json::Value out = envelope(id, object, created, model);
    out.set("choices", one_choice(std::move(choice)));
    if (usage) out.set("usage", *usage);
    return out;
}
}  // namespace

json::Value chat_completion(const std::string& id, long long created, const std::string& model, const ReplyParts& reply,
                            const std::string& finish, const json::Value& usage, json::Value logprobs) {
    json::Value message(json::Object{});
    message.set("role", json::Value("assistant"));
    message.set("content", reply.content.empty() && !reply.tool_calls.empty() ? json::Value(nullptr) : json::Value(reply.content));
    if (!reply.reasoning.empty()) message.set("reasoning_content", json::Value(reply.reasoning));
    if (!reply.tool_calls.empty()) message.set("tool_calls", json::Value(reply.tool_calls));
    return response(id, "chat.completion", created, model, "message", std::move(message), &finish, &usage, std::move(logprobs));
}

json::Value chat_chunk(const std::string& id, long long created, const std::string& model, json::Value delta, const std::string* finish,
                       json::Value logprobs) {
    return response(id, "chat.completion.chunk", created, model, "delta", std::move(delta), finish, nullptr, std::move(logprobs));
}

json::Value completion(const std::string& id, long long created, const std::string& model, const std::string& text,
                       const std::string& finish, const json::Value& usage, json::Value logprobs) {
    return response(id, "text_completion", created, model, "text", json::Value(text), &finish, &usage, std::move(logprobs));
}

json::Value completion_chunk(const std::string& id, long long created, const std::string& model, const std::string& text,
                             const std::string* finish, json::Value logprobs) {
    return response(id, "text_completion", created, model, "text", json::Value(text), finish, nullptr, std::move(logprobs));
}

namespace {
// A token's text (invalid UTF-8 of a partial character repaired) and its raw bytes.
std::pair<std::string, json::Value> token_text(const qwen3::Tokenizer& tokenizer, std::int32_t id) {
    const std::int32_t ids[1] = {id};
    const std::string raw = tokenizer.decode_bytes(ids);
    json::Array bytes;
    for (unsigned char c : raw) bytes.push_back(json::Value::integer(c));
    return {tokenizer.decode(ids), json::Value(std::move(bytes))};
}
json::Value number(float x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", double(x));  // a float's every digit
    return json::Value(json::Number{buf, double(x), false});
}
}  // namespace

json::Value chat_logprobs(const std::vector<TokenLogprob>& tokens, const qwen3::Tokenizer& tokenizer) {
    json::Array content;
    for (const TokenLogprob& t : tokens) {
        auto entry = [&](std::int32_t id, float logprob) {
            auto [text, bytes] = token_text(tokenizer, id);
            json::Value e(json::Object{});
            e.set("token", json::Value(std::move(text)));
            e.set("logprob", number(logprob));
            e.set("bytes", std::move(bytes));
            return e;
        };
        json::Value e = entry(t.token, t.logprob);
        json::Array top;
        for (const auto& [id, lp] : t.top) top.push_back(entry(id, lp));
        e.set("top_logprobs", json::Value(std::move(top)));
        content.push_back(std::move(e));
    }
    json::Value out(json::Object{});
    out.set("content", json::Value(std::move(content)));
    out.set("refusal", json::Value(nullptr));
    return out;
}

json::Value completion_logprobs(const std::vector<TokenLogprob>& tokens, const qwen3::Tokenizer& tokenizer, std::size_t offset) {
    json::Array texts, logprobs, tops, offsets;
    for (const TokenLogprob& t : tokens) {
        std::string text = token_text(tokenizer, t.token).first;
        offsets.push_back(json::Value::integer(std::int64_t(offset)));
        offset += text.size();
        texts.push_back(json::Value(std::move(text)));
        logprobs.push_back(number(t.logprob));
        json::Value top(json::Object{});
        for (const auto& [id, lp] : t.top) top.set(token_text(tokenizer, id).first, number(lp));
        tops.push_back(std::move(top));
    }
    json::Value out(json::Object{});
    out.set("tokens", json::Value(std::move(texts)));
    out.set("token_logprobs", json::Value(std::move(logprobs)));
    out.set("top_logprobs", json::Value(std::move(tops)));
    out.set("text_offset", json::Value(std::move(offsets)));
    return out;
}

json::Value usage_chunk(const std::string& id, long long created, const std::string& model, bool chat, const json::Value& usage) {
    json::Value out = envelope(id, chat ? "chat.completion.chunk" : "text_completion", created, model);
    out.set("choices", json::Value(json::Array{}));
    out.set("usage", usage);
    return out;
}

std::string new_id(const char* prefix) { return std::string(prefix) + random_suffix(); }

}  // namespace serve
