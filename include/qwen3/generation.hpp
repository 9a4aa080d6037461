// qwen3/generation.hpp - text generation and conversations on top of a model, a tokenizer and a sampler.
//
//     qwen3::Generator gen(model, tokenizer);                       // raw completion
//     auto out = gen.complete("Once upon a time", {.max_tokens = 64}, [](std::string_view piece) {
//         std::cout << piece << std::flush;  return true;         // false cancels
//     });
//
//     qwen3::Conversation chat(model, tokenizer, {.enable_thinking = false});
//     auto reply = chat.send("What is 2 + 2?");                    // reply.content, reply.reasoning
//
// Both keep their KV arena between calls and evaluate only what differs from what it already holds:
// a new prompt that starts with the tokens of the last one (the common case in a chat) costs only
// its new tokens. Streamed text always comes in whole UTF-8 characters.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "chat.hpp"
#include "chat/reply_grammar.hpp"
#include "error.hpp"
#include "grammar.hpp"
#include "model.hpp"
#include "sampler.hpp"
#include "tokenizer.hpp"

namespace qwen3 {

enum class StopReason {
    end_of_turn,   // the model emitted <|im_end|> or <|endoftext|>
    stop_string,   // one of GenerationOptions::stop appeared
    max_tokens,    // GenerationOptions::max_tokens were generated
    context_full,  // the KV arena has no position left
    cancelled,     // the streaming callback returned false (or the request was cancelled)
    failed,        // the engine could not go on with this request (its error says why)
};

inline const char* to_string(StopReason r) {
    switch (r) {
        case StopReason::end_of_turn: return "end of turn";
        case StopReason::stop_string: return "stop string";
        case StopReason::max_tokens: return "token limit";
        case StopReason::context_full: return "context full";
        case StopReason::cancelled: return "cancelled";
        case StopReason::failed: return "failed";
    }
    return "?";
}

struct GenerationOptions {
    int max_tokens = 512;
    SamplerParams sampling = SamplerParams::greedy();
    std::vector<std::string> stop;  // stop strings; the text before the first one is returned
    bool stop_at_end_of_turn = true;
    // Only tokens that keep the text a prefix of this grammar's language are sampled, and the turn
    // ends only where the text is a whole sentence (grammar.hpp: GBNF or JSON Schema). Null: free.
    std::shared_ptr<const TokenGrammar> grammar;
};

struct GenerationStats {
    int prompt_tokens = 0;     // tokens of the prompt
    int reused_tokens = 0;     // of which were already in the KV arena (not evaluated again)
    int generated_tokens = 0;  // tokens sampled
    double prompt_seconds = 0, generation_seconds = 0;
    double prompt_tokens_per_second() const { return prompt_seconds > 0 ? (prompt_tokens - reused_tokens) / prompt_seconds : 0; }
    double generation_tokens_per_second() const { return generation_seconds > 0 ? generated_tokens / generation_seconds : 0; }
};

struct Generation {
    std::string text;                  // the generated text (stop string and end-of-turn token excluded)
    std::vector<std::int32_t> tokens;  // every sampled token
    StopReason reason = StopReason::max_tokens;
    GenerationStats stats;
};

// Receives each new piece of text (whole UTF-8 characters); returns false to stop generating.
using OnText = std::function<bool(std::string_view)>;

namespace detail {

// Finds stop strings in streamed text and holds back the tail that could still become one.
class StopMatcher {
public:
    explicit StopMatcher(const std::vector<std::string>& stops) : stops_(stops) {
        for (const std::string& s : stops_)
            if (s.empty()) fail(ErrorCode::invalid_argument, "GenerationOptions::stop holds an empty string");
    }

    // Appends `piece`; returns the text that is now safe to emit. Sets `stopped` when a stop
    // string appeared (the text before it has then been returned, the rest is dropped).
    std::string push(std::string_view piece, bool& stopped) {
        pending_ += piece;
        std::size_t cut = std::string::npos;
        for (const std::string& s : stops_) cut = std::min(cut, pending_.find(s));
        if (cut != std::string::npos) {
            stopped = true;
            std::string out = pending_.substr(0, cut);
            pending_.clear();
            return out;
        }
        // keep the longest tail that is a prefix of a stop string
        std::size_t keep = 0;
        for (const std::string& s : stops_)
            for (std::size_t n = std::min(s.size() - 1, pending_.size()); n > keep; --n)
                if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
                    keep = n;
                    break;
                }
        // never split a UTF-8 character: move the cut back to a character boundary
        std::size_t emit = pending_.size() - keep;
        while (emit > 0 && emit < pending_.size() && (static_cast<unsigned char>(pending_[emit]) & 0xC0) == 0x80) --emit;
        std::string out = pending_.substr(0, emit);
        pending_.erase(0, emit);
        return out;
    }
    // The held-back tail, at the end of generation.
    std::string flush() { return std::exchange(pending_, std::string()); }

private:
    const std::vector<std::string>& stops_;
    std::string pending_;
};

}  // namespace detail

template <class Cfg, class KV = DefaultKV>
class Generator {
public:
    // `model` and `tokenizer` must outlive the generator.
    Generator(const Model<Cfg>& model, const Tokenizer& tokenizer, SessionOptions options = {})
        : tokenizer_(&tokenizer), session_(model, options) {
        for (std::string_view name : {"<|im_end|>", "<|endoftext|>"})
            if (auto id = tokenizer.token_id(name)) end_of_turn_.push_back(*id);
    }

    Session<Cfg, KV>& session() { return session_; }
    const Tokenizer& tokenizer() const { return *tokenizer_; }
    // The tokens the KV arena holds, in order.
    std::span<const std::int32_t> context() const { return context_; }
    // Forgets the context (the next prompt is evaluated from its first token).
    void reset() {
        session_.reset();
        context_.clear();
    }

    // Completes `text` (tokenized as Hugging Face does: special-token strings become control tokens).
    Generation complete(std::string_view text, const GenerationOptions& options = {}, const OnText& on_text = {}) {
        return generate(tokenizer_->encode(text), options, on_text);
    }

    // Evaluates `prompt` and samples a continuation. The prompt replaces the context: the longest
    // common prefix with what the arena holds is kept, the rest evaluated. Throws Error(context_overflow)
    // when the prompt does not fit in the arena, Error(invalid_argument) for ids outside the vocabulary
    // or invalid options.
    Generation generate(std::span<const std::int32_t> prompt, const GenerationOptions& options, const OnText& on_text = {}) {
        using clock = std::chrono::steady_clock;
        if (prompt.empty()) detail::fail(ErrorCode::invalid_argument, "generate: the prompt is empty");
        if (options.max_tokens < 0) detail::fail(ErrorCode::invalid_argument, "generate: max_tokens must be >= 0");
        if (prompt.size() > std::size_t(Session<Cfg, KV>::capacity))
            detail::fail(ErrorCode::context_overflow, "the prompt has ", prompt.size(), " tokens but the KV arena holds ",
                         Session<Cfg, KV>::capacity, " (variant ", Cfg::name, "); shorten it or compile a larger max_context");
        options.sampling.validate();
        Generation out;
        out.stats.prompt_tokens = int(prompt.size());

        // keep the common prefix; at least the last prompt token is evaluated, for its logits
        std::size_t keep = 0;
        while (keep < context_.size() && keep < prompt.size() && context_[keep] == prompt[keep]) ++keep;
        keep = std::min(keep, prompt.size() - 1);
        session_.truncate(int(keep));
        context_.resize(keep);
        out.stats.reused_tokens = int(keep);
        const auto t0 = clock::now();
        std::span<const float> logits = session_.eval(prompt.subspan(keep));
        context_.assign(prompt.begin(), prompt.end());
        const auto t1 = clock::now();
        out.stats.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();

        Sampler sampler(options.sampling);
        const std::size_t history = options.sampling.penalty_last_n < 0 ? prompt.size() : std::size_t(options.sampling.penalty_last_n);
        for (std::size_t i = prompt.size() - std::min(history, prompt.size()); i < prompt.size(); ++i) sampler.accept(prompt[i]);

        StreamDecoder decoder(*tokenizer_);
        detail::StopMatcher stops(options.stop);
        auto emit = [&](const std::string& text) {
            if (text.empty()) return true;
            out.text += text;
            return !on_text || on_text(text);
        };
        out.reason = StopReason::max_tokens;
        std::optional<GrammarMatcher> matcher;
        TokenBitmask allowed;
        if (options.grammar) matcher.emplace(options.grammar);
        for (int n = 0; n < options.max_tokens; ++n) {
            std::int32_t id;
            if (matcher && matcher->complete() && !matcher->can_continue()) {  // nothing but the end can follow
                out.reason = StopReason::end_of_turn;
                break;
            }
            if (matcher) {
                matcher->fill_mask(allowed);
                id = sampler.sample(logits, allowed.words());
                if (!matcher->accept_token(id))
                    detail::fail(ErrorCode::invalid_argument, "generate: sampled token ", id, " outside the grammar's mask");
            } else {
                id = sampler.sample(logits);
            }
            const bool ends_turn = std::find(end_of_turn_.begin(), end_of_turn_.end(), id) != end_of_turn_.end();
            if ((options.stop_at_end_of_turn && ends_turn) || (matcher && matcher->finished())) {
                out.tokens.push_back(id);
                out.reason = StopReason::end_of_turn;
                break;
            }
            out.tokens.push_back(id);
            sampler.accept(id);
            bool stopped = false;
            if (!emit(stops.push(decoder.push(id), stopped))) {
                out.reason = StopReason::cancelled;
                break;
            }
            if (stopped) {
                out.reason = StopReason::stop_string;
                break;
            }
            if (n + 1 == options.max_tokens) break;  // no need to evaluate the last token
            if (session_.position() >= Session<Cfg, KV>::capacity) {
                out.reason = StopReason::context_full;
                break;
            }
            logits = session_.eval(id);
            context_.push_back(id);
        }
        if (out.reason == StopReason::max_tokens && matcher && matcher->complete() && !matcher->can_continue())
            out.reason = StopReason::end_of_turn;  // the last token completed the grammar
        if (out.reason != StopReason::stop_string && out.reason != StopReason::cancelled) {
            bool stopped = false;
            std::string tail = stops.push(decoder.finish(), stopped);
            if (!stopped) tail += stops.flush();
            else out.reason = StopReason::stop_string;
            emit(tail);
        }
        out.stats.generated_tokens = int(out.tokens.size());
        out.stats.generation_seconds = std::chrono::duration<double>(clock::now() - t1).count();
        return out;
    }

private:
    const Tokenizer* tokenizer_;
    Session<Cfg, KV> session_;
    std::vector<std::int32_t> context_;
    std::vector<std::int32_t> end_of_turn_;
};

template <class Cfg>
Generator(const Model<Cfg>&, const Tokenizer&) -> Generator<Cfg>;
template <class Cfg>
Generator(const Model<Cfg>&, const Tokenizer&, SessionOptions) -> Generator<Cfg>;

struct ConversationOptions {
    std::string system;                    // a system message, if not empty
    bool enable_thinking = true;           // Qwen3's reasoning mode (the template's enable_thinking)
    std::vector<json::Value> tools;        // JSON-schema tools, rendered as the template renders them
    chat::ToolChoice tool_choice;          // automatic, none, required, or one named function
    bool constrain_tool_calls = true;      // a tool call's JSON always names a tool, with valid arguments
    chat::ResponseFormat response_format;  // the answer: free text, a JSON object, or JSON of a schema
    std::optional<SamplerParams> sampling; // default: Qwen3's recommended preset for the mode
    // The model's own chat template (chat::ChatTemplate::from_gguf or from_folder, or a file), run by
    // the Jinja interpreter; null: the built-in Qwen3 renderer.
    std::shared_ptr<const chat::ChatTemplate> chat_template;
    int max_tokens = 4096;
    SessionOptions session;
};

// The form of the replies `options` ask for, in thinking mode or not, after a prompt that ended
// inside an open think block or not.
inline chat::ReplyForm reply_form(const ConversationOptions& options, bool thinking, bool starts_in_reasoning = false) {
    chat::ReplyForm form;
    form.thinking = thinking;
    form.starts_in_reasoning = starts_in_reasoning;
    form.tools = options.tools;
    form.tool_choice = options.tool_choice;
    form.constrain_tool_calls = options.constrain_tool_calls;
    form.response_format = options.response_format;
    return form;
}

struct Reply {
    std::string reasoning;                // inside <think>...</think>
    std::string content;                  // the answer
    std::vector<chat::ToolCall> tool_calls;
    StopReason reason = StopReason::end_of_turn;
    GenerationStats stats;
};

// Receives the reply as it is generated, split into reasoning and answer; returns false to stop.
using OnReply = std::function<bool(const chat::ReplyDelta&)>;

template <class Cfg, class KV = DefaultKV>
class Conversation {
public:
    Conversation(const Model<Cfg>& model, const Tokenizer& tokenizer, ConversationOptions options = {})
        : options_(std::move(options)), generator_(model, tokenizer, options_.session) {
        if (!options_.system.empty()) messages_.push_back(chat::Message::system(options_.system));
    }

    const std::vector<chat::Message>& messages() const { return messages_; }
    Generator<Cfg, KV>& generator() { return generator_; }
    ConversationOptions& options() { return options_; }

    // Adds a message without generating (a tool result, or history to continue from).
    void add(chat::Message message) { messages_.push_back(std::move(message)); }
    // Forgets the conversation (keeps the system message).
    void clear() {
        messages_.clear();
        if (!options_.system.empty()) messages_.push_back(chat::Message::system(options_.system));
    }

    // Sends a user message and generates the assistant's reply, which joins the history.
    Reply send(std::string user_message, const OnReply& on_reply = {}) {
        messages_.push_back(chat::Message::user(std::move(user_message)));
        return respond(on_reply);
    }

    // Generates the assistant's reply to the history as it stands (e.g. after tool results).
    Reply respond(const OnReply& on_reply = {}) {
        chat::Options template_options;
        template_options.add_generation_prompt = true;
        template_options.enable_thinking = options_.enable_thinking;
        const chat::RenderedPrompt prompt =
            options_.chat_template ? options_.chat_template->render(chat::make_chat_request(messages_, template_options, options_.tools))
                                   : chat::render_prompt(messages_, template_options, options_.tools);
        // message content is plain text: control-token strings inside it cannot become control tokens
        std::vector<ByteRange> plain;
        for (const chat::TextRange& r : prompt.untrusted) plain.push_back({r.begin, r.end});
        EncodeOptions encode_options;
        encode_options.plain_ranges = plain;
        const std::vector<std::int32_t> ids = generator_.tokenizer().encode(prompt.text, encode_options);
        // a template may open the think block itself (Qwen3-Thinking-2507): the reply starts inside it
        const bool opened = chat::ends_inside_think(prompt);
        const bool thinking = opened || chat::expects_thinking(messages_, template_options);

        GenerationOptions gen;
        gen.max_tokens = options_.max_tokens;
        gen.sampling = options_.sampling.value_or(thinking ? SamplerParams::thinking() : SamplerParams::non_thinking());
        gen.grammar = reply_grammar(thinking, opened);
        chat::ThinkSplitter splitter(opened);
        bool keep_going = true;
        Generation g = generator_.generate(ids, gen, [&](std::string_view piece) {
            const chat::ReplyDelta delta = splitter.feed(piece);
            if (on_reply && (!delta.reasoning.empty() || !delta.answer.empty())) keep_going = on_reply(delta);
            return keep_going;
        });
        const chat::ReplyDelta last = splitter.finish();
        if (on_reply && (!last.reasoning.empty() || !last.answer.empty())) on_reply(last);

        const chat::ParsedReply parsed = chat::parse_reply(opened ? "<think>" + g.text : g.text);
        messages_.push_back(chat::to_message(parsed));
        Reply reply;
        reply.reasoning = parsed.reasoning;
        reply.content = parsed.content;
        reply.tool_calls = parsed.tool_calls;
        reply.reason = g.reason;
        reply.stats = g.stats;
        return reply;
    }

private:
    // The grammar replies must follow under the current options (null: none), rebuilt when they change.
    std::shared_ptr<const TokenGrammar> reply_grammar(bool thinking, bool starts_in_reasoning) {
        const chat::ReplyForm form = reply_form(options_, thinking, starts_in_reasoning);
        if (!chat::constrains(form)) return nullptr;
        std::string key = chat::cache_key(form);
        if (grammar_ && key == grammar_key_) return grammar_;
        const Tokenizer& tokenizer = generator_.tokenizer();
        if (!vocabulary_) vocabulary_ = std::make_shared<const TokenTrie>(tokenizer, std::size_t(Cfg::vocab));
        grammar_ = TokenGrammar::bind(chat::reply_grammar(form), vocabulary_, tokenizer);
        grammar_key_ = std::move(key);
        return grammar_;
    }

    ConversationOptions options_;
    Generator<Cfg, KV> generator_;
    std::vector<chat::Message> messages_;
    std::shared_ptr<const TokenTrie> vocabulary_;
    std::shared_ptr<const TokenGrammar> grammar_;
    std::string grammar_key_;
};

template <class Cfg>
Conversation(const Model<Cfg>&, const Tokenizer&) -> Conversation<Cfg>;
template <class Cfg>
Conversation(const Model<Cfg>&, const Tokenizer&, ConversationOptions) -> Conversation<Cfg>;

}  // namespace qwen3
