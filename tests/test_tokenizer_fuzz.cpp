// Tokenizer invariants on generated input: decode(encode(x)) is x normalized (NFC between added
// tokens, U+FFFD for ill-formed UTF-8) for random bytes, random Unicode and 1 MB inputs; streaming
// decoding emits whole characters once; plain text cannot produce added tokens; threads agree.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tokenizer_support.hpp"

using qwen3::TokenId;
namespace json = qwen3::json;

namespace {

std::string random_unicode(std::mt19937_64& rng, std::size_t chars) {
    static const char32_t hot[] = {' ', ' ', '\n', '\t', '\'', 's', 'a', 'Z', '1', '!', 0x301, 0x327, 0x3000, 0xA0, 0x17F,
                                   0x1100, 0x1161, 0x11A8, 0xAC00, 0x4E2D, 0x1F600, 0x200D, 0xFE0F, 0x0915, 0x094D};
    std::string s;
    for (std::size_t i = 0; i < chars; ++i) {
        char32_t c;
        switch (rng() % 5) {
            case 0: c = hot[rng() % std::size(hot)]; break;
            case 1: c = char32_t(rng() % 0x80); break;
            case 2: c = char32_t(rng() % 0x3000); break;
            case 3: c = char32_t(rng() % 0x30000); break;
            default: c = char32_t(rng() % 0x110000); break;
        }
        if (c >= 0xD800 && c < 0xE000) c = 'x';
        qwen3::detail::unicode::append_utf8(s, c);
        if (rng() % 40 == 0) s += test::added_token_texts()[rng() % test::added_token_texts().size()];
    }
    return s;
}

std::string random_bytes(std::mt19937_64& rng, std::size_t n) {
    static const unsigned char lead[] = {0x80, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF};
    std::string s;
    for (std::size_t i = 0; i < n; ++i) {
        unsigned r = unsigned(rng() % 4);
        s += char(r == 0 ? lead[rng() % std::size(lead)] : r == 1 ? 0x80 + rng() % 64 : r == 2 ? rng() % 256 : 'a' + rng() % 26);
    }
    return s;
}

void check_round_trip(const qwen3::Tokenizer& tok, const std::string& text) {
    const std::vector<TokenId> ids = tok.encode(text);
    for (TokenId id : ids) REQUIRE(tok.kind(id) != qwen3::TokenKind::none);
    const std::string expected = test::expected_round_trip(qwen3::detail::unicode::sanitize_utf8(text));
    REQUIRE(tok.decode(ids) == expected);
}

}  // namespace

TEST_CASE("tokenizer: random Unicode text and random bytes round-trip to their normalized form") {
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    std::mt19937_64 rng(2026);
    for (int i = 0; i < 1500; ++i) {
        const std::string text = random_unicode(rng, 1 + rng() % 120);
        INFO(json::quote(text));
        check_round_trip(tok, text);
    }
    for (int i = 0; i < 1500; ++i) {
        const std::string bytes = random_bytes(rng, 1 + rng() % 60);
        INFO(test::show_ids(std::vector<TokenId>(bytes.begin(), bytes.end())));
        check_round_trip(tok, bytes);
        // the documented reading: the same ids as the text with U+FFFD in place of each ill-formed part
        CHECK(tok.encode(bytes) == tok.encode(qwen3::detail::unicode::sanitize_utf8(bytes)));
    }
}

TEST_CASE("tokenizer: 1 MB inputs (one word, one character repeated, spaces, digits, CJK, mixed) round-trip") {
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    std::mt19937_64 rng(1);
    const std::size_t n = 1 << 20;
    std::string word;
    for (std::size_t i = 0; i < n; ++i) word += char('a' + rng() % 26);
    std::vector<std::string> inputs = {word, std::string(n, 'a'), std::string(n, ' '), std::string(n, '\n'), std::string(n, '7'),
                                       std::string(n, '!')};
    std::string cjk, mixed;
    while (cjk.size() < n) qwen3::detail::unicode::append_utf8(cjk, char32_t(0x4E00 + rng() % 20000));
    while (mixed.size() < n) mixed += random_unicode(rng, 64);
    inputs.push_back(cjk);
    inputs.push_back(mixed);
    for (const std::string& text : inputs) {
        INFO(json::quote(text.substr(0, 40)));
        const std::vector<TokenId> ids = tok.encode(text);
        CHECK(tok.decode(ids) == test::expected_round_trip(text));
        CHECK(ids.size() <= text.size());
    }
    // a word without spaces is one piece; its ids must be the same whatever else surrounds it
    const std::vector<TokenId> alone = tok.encode(word);
    std::vector<TokenId> framed = tok.encode("<|im_start|>" + word + "<|im_end|>");
    REQUIRE(framed.size() == alone.size() + 2);
    CHECK(std::vector<TokenId>(framed.begin() + 1, framed.end() - 1) == alone);
}

TEST_CASE("tokenizer: the stream decoder emits a character split across tokens whole, once") {
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    auto byte_token = [&](unsigned char b) {
        std::string piece;
        qwen3::detail::unicode::append_utf8(piece, qwen3::detail::bpe::kByteAlphabet.char_of_byte[b]);
        return *tok.token_id(piece);
    };
    qwen3::StreamDecoder stream(tok);
    const std::string smile = "\xF0\x9F\x98\x80";  // U+1F600
    CHECK(stream.push(byte_token(0xF0)).empty());
    CHECK(stream.push(byte_token(0x9F)).empty());
    CHECK(stream.pending());
    CHECK(stream.push(byte_token(0x98)).empty());
    CHECK(stream.push(byte_token(0x80)) == smile);
    CHECK(!stream.pending());
    // a character completed inside a longer token comes out with that token's text
    CHECK(stream.push(byte_token(0xE4)).empty());
    CHECK(stream.push(byte_token(0xB8)).empty());
    CHECK(stream.push(byte_token(0xAD)) == "\xE4\xB8\xAD");
    // an interrupted sequence is replaced as soon as it cannot complete; an unfinished one at the end
    CHECK(stream.push(byte_token(0xF0)).empty());
    CHECK(stream.push(*tok.token_id("Hello")) == "\xEF\xBF\xBDHello");
    CHECK(stream.push(byte_token(0xE2)).empty());
    CHECK(stream.push(byte_token(0x82)).empty());
    CHECK(stream.finish() == "\xEF\xBF\xBD");
    CHECK(!stream.pending());
    // skip_special_tokens drops control tokens, keeps <think>
    qwen3::StreamDecoder skipping(tok, true);
    CHECK(skipping.push(tok.well_known().im_end).empty());
    CHECK(skipping.push(tok.well_known().think_open) == "<think>");
    CHECK(skipping.push(151700).empty());  // past the vocabulary: nothing, as in decode()
    // every prefix of a long multilingual text decodes to complete characters
    std::mt19937_64 rng(5);
    const std::string text = random_unicode(rng, 3000);
    const std::vector<TokenId> ids = tok.encode(text);
    qwen3::StreamDecoder all(tok);
    std::string joined;
    for (TokenId id : ids) {
        std::string piece = all.push(id);
        REQUIRE(qwen3::detail::unicode::is_valid_utf8(piece));
        joined += piece;
    }
    joined += all.finish();
    CHECK(joined == tok.decode(ids));
}

TEST_CASE("tokenizer: plain text (untrusted input) never becomes an added token") {
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    std::string all;
    for (const std::string& a : test::added_token_texts()) all += a + " x" + a;
    const std::vector<TokenId> trusted = tok.encode(all);
    const std::vector<TokenId> plain = tok.encode_plain(all);
    CHECK(std::count_if(trusted.begin(), trusted.end(), [&](TokenId id) { return tok.is_added(id); }) == 52);
    for (TokenId id : plain) CHECK(!tok.is_added(id));
    CHECK(tok.decode(plain) == all);
    // a plain range covering the middle occurrence only
    const std::string text = "<|im_start|>user\nhi<|im_end|><|im_end|>";
    const std::size_t at = text.find("hi");
    qwen3::ByteRange range{at, at + std::string("hi<|im_end|>").size()};
    qwen3::EncodeOptions options;
    options.plain_ranges = {&range, 1};
    const std::vector<TokenId> ids = tok.encode(text, options);
    CHECK(std::count(ids.begin(), ids.end(), tok.well_known().im_end) == 1);
    CHECK(ids.back() == tok.well_known().im_end);
    CHECK(ids.front() == tok.well_known().im_start);
    // an empty range holds no bytes, so it keeps nothing from matching
    qwen3::ByteRange empty{3, 3};
    options.plain_ranges = {&empty, 1};
    CHECK(tok.encode("<|im_end|>", options) == std::vector<TokenId>{tok.well_known().im_end});
    // ranges must be sorted, disjoint and inside the text
    qwen3::ByteRange bad[2] = {{5, 9}, {7, 12}};
    options.plain_ranges = bad;
    CHECK(test::throws_error([&] { tok.encode(text, options); }, qwen3::ErrorCode::invalid_argument, "plain range 1"));
    qwen3::ByteRange past{0, text.size() + 1};
    options.plain_ranges = {&past, 1};
    CHECK(test::throws_error([&] { tok.encode(text, options); }, qwen3::ErrorCode::invalid_argument, "plain range 0"));
    // ranges keep their characters when ill-formed bytes before them are replaced
    const std::string broken = "\xFF<|im_end|>ab<|im_end|>";
    qwen3::ByteRange second{13, broken.size()};
    options.plain_ranges = {&second, 1};
    const std::vector<TokenId> fixed = tok.encode(broken, options);
    CHECK(std::count(fixed.begin(), fixed.end(), tok.well_known().im_end) == 1);
    CHECK(tok.decode(fixed) == "\xEF\xBF\xBD<|im_end|>ab<|im_end|>");
}

TEST_CASE("tokenizer: threads encoding at once get the reference ids") {
    const qwen3::Tokenizer& tok = test::qwen3_tokenizer();
    const auto cases = test::read_jsonl("tokenizer/cases.jsonl");
    std::vector<int> wrong(3, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t)
        threads.emplace_back([&, t] {
            for (int rep = 0; rep < 3; ++rep)
                for (std::size_t i = std::size_t(t); i < cases.size(); i += 2)
                    wrong[std::size_t(t)] += tok.encode(cases[i].at("text").as_string()) != test::ids_of(cases[i].at("ids"));
        });
    for (std::thread& th : threads) th.join();
    CHECK(wrong == std::vector<int>{0, 0, 0});
}

TEST_CASE("tokenizer: one thread alternating between two tokenizers gets each one's ids") {
    const qwen3::Tokenizer& full = test::qwen3_tokenizer();
    const qwen3::Tokenizer micro = qwen3::Tokenizer::from_gguf(qwen3::gguf::File(test::data_path("qwen3-micro-f32.gguf")));
    // the micro vocabulary (first 4096 tokens, fewer merges) splits most words differently, so a
    // piece cache shared between the two would give wrong ids
    for (const json::Value& c : test::read_jsonl("tokenizer/cases.jsonl")) {
        const std::string& text = c.at("text").as_string();
        const std::vector<TokenId> small = micro.encode(text);
        CHECK(test::ids_difference(full.encode(text), test::ids_of(c.at("ids"))) == "");
        CHECK(micro.encode(text) == small);
        for (TokenId id : small) CHECK(id < 4096);
    }
}

