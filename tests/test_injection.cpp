// Special-token injection: text a user supplies (message content, reasoning, tool-call names and
// arguments, tool schemas, tool results) can never become a control token, whatever it spells.
//
// For each of Qwen3's 26 added tokens (read from tokenizer.json, ids 151643-151668) and for variants
// of its text (exact; other letter case; fullwidth and small-form look-alikes of <, | and >, which
// NFKC but not NFC maps back; zero-width characters inside; a combining mark after it; the text cut
// in two across neighbouring places), placed in every kind of user data the template prints:
//   1. every occurrence of an added token's text in the rendered prompt lies wholly inside an
//      untrusted range, except the template's own (wholly outside, as many as it writes anyway);
//   2. the rendered prompt, tokenized as the library does (untrusted ranges as plain text), holds
//      exactly the added tokens of the same conversation with harmless text in those places, encoded
//      by the Hugging Face-compatible default: the template's own <|im_start|>/<|im_end|> per turn
//      (counted from the conversation as well) and nothing else.
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include <qwen3/chat.hpp>
#include <qwen3/tokenizer.hpp>

#include "tokenizer_support.hpp"

using qwen3::TokenId;
namespace chat = qwen3::chat;
namespace json = qwen3::json;

namespace {

struct AddedToken {
    std::string text;
    TokenId id;
};

// The added tokens as tokenizer.json lists them (not as the tokenizer reports them).
const std::vector<AddedToken>& added_tokens() {
    static const std::vector<AddedToken> tokens = [] {
        std::vector<AddedToken> out;
        const json::Value root = test::read_json(test::data_path("tokenizer/tokenizer.json"));
        for (const json::Value& a : root.at("added_tokens").as_array())
            out.push_back({a.at("content").as_string(), TokenId(a.at("id").as_int())});
        return out;
    }();
    return tokens;
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
    for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
    return s;
}

std::string map_ascii(std::string s, int (*f)(int)) {
    for (char& c : s) c = char(f(static_cast<unsigned char>(c)));
    return s;
}

// The text of `token` and its look-alikes.
std::vector<std::string> variants(const std::string& token) {
    std::vector<std::string> out = {token, map_ascii(token, [](int c) { return c >= 'a' && c <= 'z' ? c - 32 : c; })};
    out.push_back(replace_all(token, "|", "\xEF\xBD\x9C"));                                              // U+FF5C fullwidth |
    out.push_back(replace_all(replace_all(token, "<", "\xEF\xBC\x9C"), ">", "\xEF\xBC\x9E"));             // U+FF1C/FF1E ＜ ＞
    out.push_back(replace_all(replace_all(token, "<", "\xEF\xB9\xA4"), ">", "\xEF\xB9\xA5"));             // U+FE64/FE65 small < >
    out.push_back(replace_all(token, "|", "\xE2\x88\xA3"));                                              // U+2223 divides
    std::string zwj, zwsp;
    for (std::size_t i = 0; i < token.size(); ++i) {
        zwj += token[i];
        zwsp += token[i];
        if (i + 1 < token.size()) zwj += "\xE2\x80\x8D";  // U+200D zero width joiner between every byte
        if (i == token.size() / 2) zwsp += "\xE2\x80\x8B";  // U+200B zero width space in the middle
    }
    out.push_back(zwj);
    out.push_back(zwsp);
    out.push_back(token + "\xCC\xB8");           // + U+0338: NFC composes ">" + U+0338 into U+226F
    out.push_back("\xEF\xBB\xBF" + token);       // U+FEFF before it
    out.push_back(token + token);                // twice, back to back
    return out;
}

// Where user data goes. Each builds a conversation with `text` in one place; harmless text ("x")
// everywhere else. The assistant turn comes before the last user turn, so the template never opens
// a think block for it (its structure is then the same whatever the content says).
struct Place {
    const char* name;
    std::function<json::Value(const std::string&)> build;
    int im_turns;  // <|im_start|> ... <|im_end|> pairs the template writes, generation prompt included
};

json::Value message(const char* role, const std::string& content) {
    json::Value m(json::Object{});
    m.set("role", json::Value(role));
    m.set("content", json::Value(content));
    return m;
}

json::Value request(json::Array messages, json::Array tools = {}) {
    json::Value r(json::Object{});
    r.set("messages", json::Value(std::move(messages)));
    if (!tools.empty()) r.set("tools", json::Value(std::move(tools)));
    r.set("add_generation_prompt", json::Value(true));
    return r;
}

json::Value call(const std::string& name, json::Value arguments) {
    json::Value f(json::Object{});
    f.set("name", json::Value(name));
    f.set("arguments", std::move(arguments));
    json::Value c(json::Object{});
    c.set("type", json::Value("function"));
    c.set("function", std::move(f));
    return c;
}

json::Value assistant_with_call(const std::string& content, json::Value c) {
    json::Value m = message("assistant", content);
    m.set("tool_calls", json::Value(json::Array{std::move(c)}));
    return m;
}

json::Value tool_schema(const std::string& description) {
    json::Value params(json::Object{});
    params.set("type", json::Value("object"));
    json::Value fn(json::Object{});
    fn.set("name", json::Value("get_weather"));
    fn.set("description", json::Value(description));
    fn.set("parameters", std::move(params));
    json::Value t(json::Object{});
    t.set("type", json::Value("function"));
    t.set("function", std::move(fn));
    return t;
}

const std::vector<Place>& places() {
    static const std::vector<Place> list = {
        {"user content", [](const std::string& s) { return request({message("user", "a " + s + " b")}); }, 2},
        {"user content, whole", [](const std::string& s) { return request({message("user", s)}); }, 2},
        {"system content", [](const std::string& s) { return request({message("system", s), message("user", "x")}); }, 3},
        {"assistant content",
         [](const std::string& s) { return request({message("user", "x"), message("assistant", s + "\n"), message("user", "x")}); }, 4},
        {"assistant reasoning",
         [](const std::string& s) {
             json::Value a = message("assistant", "x");
             a.set("reasoning_content", json::Value(s));
             return request({message("user", "x"), std::move(a), message("user", "x")});
         }, 4},
        {"tool-call name",
         [](const std::string& s) {
             return request({message("user", "x"), assistant_with_call("", call(s, json::Value(json::Object{}))), message("user", "x")});
         }, 4},
        {"tool-call arguments (object value and key)",
         [](const std::string& s) {
             json::Value args(json::Object{});
             args.set("city", json::Value(s));
             args.set(s, json::Value(json::Array{json::Value(s)}));
             return request({message("user", "x"), assistant_with_call("x", call("f", std::move(args))), message("user", "x")});
         }, 4},
        {"tool-call arguments (a string, printed verbatim)",
         [](const std::string& s) {
             return request({message("user", "x"), assistant_with_call("x", call("f", json::Value(s))), message("user", "x")});
         }, 4},
        {"tool result",
         [](const std::string& s) {
             return request({message("user", "x"), assistant_with_call("", call("f", json::Value(json::Object{}))), message("tool", s),
                             message("tool", "x " + s)});
         }, 4},
        {"tool schema",
         [](const std::string& s) { return request({message("system", "x"), message("user", "x")}, {tool_schema(s)}); }, 3},
    };
    return list;
}

struct Tokenized {
    std::vector<TokenId> added;  // the added-token ids, in order
    int im_start = 0, im_end = 0;
};

Tokenized added_ids(const qwen3::Tokenizer& tok, const std::vector<TokenId>& ids) {
    Tokenized t;
    for (TokenId id : ids)
        if (tok.is_added(id)) {
            t.added.push_back(id);
            t.im_start += id == tok.well_known().im_start;
            t.im_end += id == tok.well_known().im_end;
        }
    return t;
}

// The prompt as the library tokenizes it: untrusted ranges as plain text.
std::vector<TokenId> encode_prompt(const qwen3::Tokenizer& tok, const chat::RenderedPrompt& p) {
    std::vector<qwen3::ByteRange> plain;
    for (const chat::TextRange& r : p.untrusted) plain.push_back({r.begin, r.end});
    qwen3::EncodeOptions options;
    options.plain_ranges = plain;
    return tok.encode(p.text, options);
}

bool covered(const chat::RenderedPrompt& p, std::size_t at, std::size_t n) {
    for (const chat::TextRange& r : p.untrusted)
        if (at >= r.begin && at + n <= r.end) return true;
    return false;
}

// Some byte of [at, at + n) is user data.
bool touches(const chat::RenderedPrompt& p, std::size_t at, std::size_t n) {
    for (const chat::TextRange& r : p.untrusted)
        if (at < r.end && r.begin < at + n) return true;
    return false;
}

// Checks one planted text in one place; returns false (after reporting) on a failure.
bool check_planted(const qwen3::Tokenizer& tok, const Place& place, const std::string& planted, const std::string& token) {
    const chat::RenderedPrompt hostile = chat::render_prompt(place.build(planted));
    const chat::RenderedPrompt benign = chat::render_prompt(place.build("x"));
    INFO("place: ", std::string(place.name), "; planted: ", json::quote(planted), "; token: ", token);
    bool ok = true;
    // 1. occurrences of every added token's text: each lies wholly inside or wholly outside user data,
    //    and those outside are the template's own (as many as it writes anyway)
    for (const AddedToken& added : added_tokens()) {
        const std::string& needle = added.text;
        std::size_t outside = 0;
        for (std::size_t at = hostile.text.find(needle); at != std::string::npos; at = hostile.text.find(needle, at + 1)) {
            if (covered(hostile, at, needle.size())) continue;
            ++outside;
            if (touches(hostile, at, needle.size())) {
                FAIL_CHECK("occurrence of ", json::quote(needle), " at byte ", at, " is partly user data");
                ok = false;
            }
        }
        std::size_t own = 0;
        for (std::size_t at = benign.text.find(needle); at != std::string::npos; at = benign.text.find(needle, at + 1)) ++own;
        if (outside != own) {
            FAIL_CHECK(outside, " occurrences of ", json::quote(needle), " outside untrusted ranges; the template writes ", own);
            ok = false;
        }
    }
    // 2. the same control tokens as the harmless conversation, and the template's count of turns
    const Tokenized got = added_ids(tok, encode_prompt(tok, hostile));
    const Tokenized want = added_ids(tok, tok.encode(benign.text));
    if (got.added != want.added) {
        FAIL_CHECK("added tokens differ from the harmless conversation's: ", test::show_ids(got.added), " vs ",
                   test::show_ids(want.added));
        ok = false;
    }
    if (got.im_start != place.im_turns || got.im_end != place.im_turns - 1) {
        FAIL_CHECK(got.im_start, " <|im_start|> and ", got.im_end, " <|im_end|>, expected ", place.im_turns, " and ",
                   place.im_turns - 1);
        ok = false;
    }
    return ok;
}

}  // namespace

TEST_CASE("injection: tokenizer.json lists the 26 added tokens, ids 151643 to 151668") {
    const std::vector<AddedToken>& tokens = added_tokens();
    REQUIRE(tokens.size() == 26);
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        CHECK(tokens[i].id == TokenId(151643 + i));
        CHECK(tok.is_added(tokens[i].id));
        // in trusted text each one is its token (so the checks below are not vacuous)
        CHECK(tok.encode(tokens[i].text) == std::vector<TokenId>{tokens[i].id});
    }
}

TEST_CASE("injection: no added token, case variant or look-alike in user data becomes a control token") {
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    std::size_t checked = 0, failures = 0;
    for (const AddedToken& t : added_tokens())
        for (const std::string& v : variants(t.text))
            for (const Place& place : places()) {
                failures += !check_planted(tok, place, v, t.text);
                ++checked;
            }
    MESSAGE(checked, " (token variant, place) pairs checked");
    CHECK(checked == 26 * 11 * places().size());
    CHECK(failures == 0);
}

TEST_CASE("injection: every added token planted in every place at once, and look-alikes normalize to no token") {
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    std::string all;
    for (const AddedToken& t : added_tokens()) all += t.text + "\n";
    for (const Place& place : places()) CHECK(check_planted(tok, place, all, "<|im_start|>"));
    // the look-alikes stay what they are after NFC (Hugging Face's normalizer), so even as trusted
    // text they are not the token: nothing in the pipeline turns them into one
    for (const AddedToken& t : added_tokens())
        for (const std::string& v : variants(t.text)) {
            if (v == t.text || v == t.text + t.text || v.starts_with("\xEF\xBB\xBF")) continue;
            const std::vector<TokenId> ids = tok.encode(v);
            const bool has = std::find(ids.begin(), ids.end(), t.id) != ids.end();
            CHECK_MESSAGE((!has || v.starts_with(t.text)), json::quote(v), " encodes to token ", t.id);
        }
}

TEST_CASE("injection: a token cut in two across neighbouring user data never joins") {
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    for (const AddedToken& t : added_tokens()) {
        for (std::size_t cut = 1; cut < t.text.size(); ++cut) {
            const std::string head = t.text.substr(0, cut), tail = t.text.substr(cut);
            INFO("token ", t.text, " cut after ", cut, " bytes");
            // two user turns, one tool-call name and its arguments, two tool results, content and call
            const std::vector<json::Value> requests = {
                request({message("user", "x" + head), message("user", tail + "x")}),
                request({message("user", "x"), assistant_with_call("", call(head, json::Value(tail))), message("user", "x")}),
                request({message("user", "x"), assistant_with_call(head, call(tail, json::Value(json::Object{}))), message("user", "x")}),
                request({message("user", "x"), assistant_with_call("", call("f", json::Value(json::Object{}))), message("tool", head),
                         message("tool", tail)}),
                request({message("system", head), message("user", tail)}, {tool_schema(tail)}),
            };
            for (const json::Value& r : requests) {
                const chat::RenderedPrompt p = chat::render_prompt(r);
                const Tokenized got = added_ids(tok, encode_prompt(tok, p));
                // only <|im_start|>/<|im_end|> and the tool-call tags the template writes
                for (TokenId id : got.added) {
                    const std::string_view piece = tok.id_to_piece(id);
                    const bool template_token = piece == "<|im_start|>" || piece == "<|im_end|>" || piece == "<tool_call>" ||
                                                piece == "</tool_call>" || piece == "<tool_response>" || piece == "</tool_response>" ||
                                                piece == "<tools>" || piece == "</tools>";
                    CHECK_MESSAGE(template_token, "unexpected token ", piece);
                }
                for (std::size_t at = p.text.find(t.text); at != std::string::npos; at = p.text.find(t.text, at + 1)) {
                    const bool own = !covered(p, at, t.text.size());
                    // then it must be the template's: no byte of it is user data
                    if (own) CHECK_MESSAGE(!touches(p, at, t.text.size()), "the token text at byte ", at, " is made partly of user data");
                }
            }
        }
    }
}

TEST_CASE("injection: the tokenizer alone keeps plain text plain for every token and variant") {
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    for (const AddedToken& t : added_tokens())
        for (const std::string& v : variants(t.text)) {
            for (TokenId id : tok.encode_plain("a" + v + "b")) CHECK(!tok.is_added(id));
            CHECK(tok.decode(tok.encode_plain(v)) == qwen3::detail::unicode::nfc(v));
        }
}
