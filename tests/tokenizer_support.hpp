// Helpers for the tokenizer tests: the real Qwen3 tokenizer (loaded once per program), JSONL reading,
// and the expected decoding of a text, computed without the tokenizer's own splitting code.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <qwen3/tokenizer.hpp>

#include "support.hpp"

namespace test {

inline const qwen3::Tokenizer& qwen3_tokenizer() {
    static const qwen3::Tokenizer tokenizer = qwen3::Tokenizer::from_tokenizer_json(data_path("tokenizer/tokenizer.json"));
    return tokenizer;
}

inline std::vector<qwen3::TokenId> ids_of(const qwen3::json::Value& array) {
    std::vector<qwen3::TokenId> ids;
    for (const qwen3::json::Value& v : array.as_array()) ids.push_back(qwen3::TokenId(v.as_int()));
    return ids;
}

// The added tokens' texts, read from tokenizer.json directly.
inline const std::vector<std::string>& added_token_texts() {
    static const std::vector<std::string> texts = [] {
        std::vector<std::string> out;
        qwen3::json::Value root = read_json(data_path("tokenizer/tokenizer.json"));
        for (const qwen3::json::Value& a : root.at("added_tokens").as_array()) out.push_back(a.at("content").as_string());
        return out;
    }();
    return texts;
}

// What decoding the ids of `text` must give back: the text with each stretch between added tokens
// in NFC (Hugging Face splits out added tokens before normalizing). The added tokens are found by a
// plain search (longest text at the leftmost position), not by the tokenizer's matcher.
inline std::string expected_round_trip(std::string_view text) {
    std::string out, stretch;
    for (std::size_t i = 0; i < text.size();) {
        std::size_t best = 0;
        for (const std::string& a : added_token_texts())
            if (a.size() > best && text.substr(i).starts_with(a)) best = a.size();
        if (best == 0) {
            stretch += text[i++];
            continue;
        }
        out += qwen3::detail::unicode::nfc(stretch);
        stretch.clear();
        out += text.substr(i, best);
        i += best;
    }
    return out + qwen3::detail::unicode::nfc(stretch);
}

// "" when the id lists are equal, else where they first differ (for failure messages).
inline std::string ids_difference(const std::vector<qwen3::TokenId>& got, const std::vector<qwen3::TokenId>& expected) {
    if (got == expected) return "";
    std::size_t i = 0;
    while (i < got.size() && i < expected.size() && got[i] == expected[i]) ++i;
    auto at = [](const std::vector<qwen3::TokenId>& v, std::size_t k) { return k < v.size() ? std::to_string(v[k]) : std::string("end"); };
    return "first difference at index " + std::to_string(i) + ": got " + at(got, i) + ", expected " + at(expected, i) +
           " (lengths " + std::to_string(got.size()) + " and " + std::to_string(expected.size()) + ")";
}

inline std::string show_ids(const std::vector<qwen3::TokenId>& ids) {
    std::string s = "[";
    for (std::size_t i = 0; i < ids.size() && i < 64; ++i) {
        if (i) s += ',';
        s += std::to_string(ids[i]);
    }
    s += ids.size() > 64 ? ",...]" : "]";
    return s;
}

}  // namespace test
