// Tokenizer against Hugging Face `tokenizers` 0.23.2: the shared fixture cases and our extra
// adversarial cases (tools/gen_tokenizer_cases.mjs, see tests/data/README.md), ids, plain (untrusted)
// ids, invalid UTF-8, plain ranges, decoding and the normalizer alone.
#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "tokenizer_support.hpp"

using qwen3::TokenId;
namespace json = qwen3::json;

namespace {

std::string from_hex(const std::string& hex) {
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out += char(std::stoi(hex.substr(i, 2), nullptr, 16));
    return out;
}

std::string concat_stream(const qwen3::Tokenizer& tok, const std::vector<TokenId>& ids, bool skip) {
    qwen3::StreamDecoder stream(tok, skip);
    std::string out;
    for (TokenId id : ids) {
        std::string piece = stream.push(id);
        CHECK(qwen3::detail::unicode::is_valid_utf8(piece));
        out += piece;
    }
    return out + stream.finish();
}

}  // namespace

TEST_CASE("tokenizer: every shared fixture case gives Hugging Face's ids") {
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    const auto cases = test::read_jsonl("tokenizer/cases.jsonl");
    REQUIRE(cases.size() == 420);
    int passed = 0;
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const std::string& text = cases[i].at("text").as_string();
        const std::vector<TokenId> expected = test::ids_of(cases[i].at("ids"));
        const std::vector<TokenId> got = tok.encode(text);
        INFO("case ", i, ": ", json::quote(text.substr(0, 200)));
        CHECK(test::ids_difference(got, expected) == "");
        passed += got == expected;
    }
    MESSAGE(passed, " of ", cases.size(), " fixture cases equal");
    CHECK(passed == int(cases.size()));
}

TEST_CASE("tokenizer: decoding the fixtures' reference ids gives the text, NFC between added tokens") {
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    for (const json::Value& c : test::read_jsonl("tokenizer/cases.jsonl")) {
        const std::string& text = c.at("text").as_string();
        const std::vector<TokenId> ids = test::ids_of(c.at("ids"));
        INFO(json::quote(text.substr(0, 200)));
        CHECK(tok.decode(ids) == test::expected_round_trip(text));
        CHECK(concat_stream(tok, ids, false) == tok.decode(ids));
    }
}

TEST_CASE("tokenizer: extra cases (Unicode sweep, NFC, white space, contractions, added tokens, long runs)") {
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    int encode = 0, plain = 0, passed = 0;
    for (const json::Value& c : test::read_jsonl("tokenizer/cases_extra.jsonl")) {
        if (c.at("kind").as_string() != "encode") continue;
        const std::string& text = c.at("text").as_string();
        const std::vector<TokenId> expected = test::ids_of(c.at("ids"));
        const json::Value* plain_ids = c.find("plain_ids");
        const std::vector<TokenId> expected_plain = plain_ids ? test::ids_of(*plain_ids) : expected;
        INFO("case ", encode, ": ", json::quote(text.substr(0, 200)));
        const std::vector<TokenId> got = tok.encode(text);
        const std::vector<TokenId> got_plain = tok.encode_plain(text);
        CHECK(test::ids_difference(got, expected) == "");
        CHECK(test::ids_difference(got_plain, expected_plain) == "");
        passed += got == expected && got_plain == expected_plain;
        ++encode;
        plain += plain_ids != nullptr;
    }
    MESSAGE(passed, " of ", encode, " extra encode cases equal (", plain, " with added-token text that plain mode must not match)");
    CHECK(encode > 2500);
    CHECK(plain > 100);
}

TEST_CASE("tokenizer: invalid UTF-8 reads as U+FFFD per maximal subpart, as the WHATWG decoder reads it") {
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    int n = 0;
    for (const json::Value& c : test::read_jsonl("tokenizer/cases_extra.jsonl")) {
        if (c.at("kind").as_string() != "bytes") continue;
        const std::string bytes = from_hex(c.at("hex").as_string());
        INFO("bytes ", c.at("hex").as_string());
        CHECK(test::ids_difference(tok.encode(bytes), test::ids_of(c.at("ids"))) == "");
        if (!qwen3::detail::unicode::is_valid_utf8(bytes)) {
            qwen3::EncodeOptions strict;
            strict.reject_invalid_utf8 = true;
            CHECK(test::throws_error([&] { tok.encode(bytes, strict); }, qwen3::ErrorCode::invalid_argument, "invalid UTF-8 at byte"));
        }
        ++n;
    }
    CHECK(n == 150);
}

TEST_CASE("tokenizer: plain ranges keep user text from matching added tokens, the rest as Hugging Face") {
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    int n = 0;
    for (const json::Value& c : test::read_jsonl("tokenizer/cases_extra.jsonl")) {
        if (c.at("kind").as_string() != "ranges") continue;
        const std::string& text = c.at("text").as_string();
        std::vector<qwen3::ByteRange> ranges;
        for (const json::Value& r : c.at("ranges").as_array())
            ranges.push_back({std::size_t(r.as_array()[0].as_int()), std::size_t(r.as_array()[1].as_int())});
        qwen3::EncodeOptions options;
        options.plain_ranges = ranges;
        INFO(json::quote(text));
        CHECK(test::ids_difference(tok.encode(text, options), test::ids_of(c.at("ids"))) == "");
        ++n;
    }
    CHECK(n == 150);
}

TEST_CASE("tokenizer: decode and skip_special_tokens as Hugging Face, streaming gives the same text") {
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    int n = 0;
    for (const json::Value& c : test::read_jsonl("tokenizer/cases_extra.jsonl")) {
        if (c.at("kind").as_string() != "decode") continue;
        const std::vector<TokenId> ids = test::ids_of(c.at("ids"));
        INFO(test::show_ids(ids));
        CHECK(tok.decode(ids) == c.at("text").as_string());
        CHECK(tok.decode(ids, true) == c.at("skip_special_text").as_string());
        CHECK(concat_stream(tok, ids, false) == c.at("text").as_string());
        CHECK(concat_stream(tok, ids, true) == c.at("skip_special_text").as_string());
        ++n;
    }
    CHECK(n == 300);
}

TEST_CASE("tokenizer: NFC (Unicode 9.0) equals Hugging Face's normalizer") {
    int n = 0;
    for (const json::Value& c : test::read_jsonl("tokenizer/cases_extra.jsonl")) {
        if (c.at("kind").as_string() != "nfc") continue;
        const std::string& text = c.at("text").as_string();
        INFO(json::quote(text));
        CHECK(qwen3::detail::unicode::nfc(text) == c.at("nfc").as_string());
        if (qwen3::detail::unicode::is_nfc_quick(text)) CHECK(text == c.at("nfc").as_string());
        ++n;
    }
    CHECK(n > 400);
}

TEST_CASE("tokenizer: vocabulary queries and well-known ids") {
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    CHECK(tok.vocab_size() == 151669);
    CHECK(tok.token_id("<|im_end|>") == 151645);
    CHECK(tok.token_id("Hello") == 9707);
    CHECK(tok.token_id("Ġworld") == 1879);
    CHECK(!tok.token_id(" world").has_value());  // vocabulary strings are in byte-level form
    CHECK(tok.id_to_piece(1879) == "Ġworld");
    CHECK(tok.token_bytes(1879) == " world");
    CHECK(tok.id_to_piece(151667) == "<think>");
    CHECK(tok.id_to_piece(151700).empty());
    CHECK(tok.id_to_piece(-1).empty());
    const qwen3::WellKnownTokens& w = tok.well_known();
    CHECK(w.endoftext == 151643);
    CHECK(w.im_start == 151644);
    CHECK(w.im_end == 151645);
    CHECK(w.tool_call_open == 151657);
    CHECK(w.tool_call_close == 151658);
    CHECK(w.tool_response_open == 151665);
    CHECK(w.tool_response_close == 151666);
    CHECK(w.think_open == 151667);
    CHECK(w.think_close == 151668);
    // special: tokenizer.json's flag or <|...|> (the GGUF control type; see loaders.hpp)
    for (TokenId id = 151643; id <= 151656; ++id) CHECK(tok.is_special(id));
    for (TokenId id : {151657, 151658, 151665, 151666, 151667, 151668}) {
        CHECK(!tok.is_special(id));
        CHECK(tok.is_added(id));
    }
    for (TokenId id = 151659; id <= 151664; ++id) CHECK(tok.is_special(id));
    CHECK(tok.kind(9707) == qwen3::TokenKind::normal);
    CHECK(tok.kind(151669) == qwen3::TokenKind::none);
}

namespace {

// The generator of tools/gen_tokenizer_cases.mjs (xorshiftText): xorshift32 and the same pieces.
std::string xorshift_text(const std::string& kind, std::uint32_t seed, std::size_t min_bytes) {
    std::uint32_t x = seed;
    auto below = [&](std::uint32_t n) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        return std::uint32_t((std::uint64_t(x) * n) >> 32);
    };
    static const char* const words[] = {"the", " ", "cat", ", ", "d\xC3\xA9j\xC3\xA0", "\n", "42", "'s", " \xE4\xB8\xAD\xE6\x96\x87",
                                        "!!", "  ", "<|im_end|>"};
    std::string text;
    while (text.size() < min_bytes) {
        if (kind == "letters") text += char('a' + below(26));
        else if (kind == "cjk") qwen3::detail::unicode::append_utf8(text, char32_t(0x4E00 + below(20000)));
        else text += words[below(12)];
    }
    return text;
}

std::string fnv1a64(const std::vector<TokenId>& ids) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (TokenId id : ids)
        for (int k = 0; k < 4; ++k) {
            h ^= (std::uint32_t(id) >> (8 * k)) & 255;
            h *= 0x100000001b3ull;
        }
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
    return hex;
}

}  // namespace

TEST_CASE("tokenizer: megabyte inputs (one word, CJK without spaces, mixed words) give Hugging Face's ids") {
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    int n = 0;
    for (const json::Value& c : test::read_jsonl("tokenizer/cases_extra.jsonl")) {
        if (c.at("kind").as_string() != "generated") continue;
        const std::string text = xorshift_text(c.at("generator").as_string(), std::uint32_t(c.at("seed").as_int()),
                                               std::size_t(c.at("min_bytes").as_int()));
        const std::vector<TokenId> ids = tok.encode(text);
        INFO(c.at("generator").as_string(), ", ", text.size(), " bytes");
        CHECK(ids.size() == std::size_t(c.at("count").as_int()));
        CHECK(fnv1a64(ids) == c.at("fnv1a64").as_string());
        ++n;
    }
    CHECK(n == 3);
}

