// Fuzz target: the GBNF reader, the recognizer and the token mask.
//
// The input is GBNF text, a NUL, then bytes that serve both as text to recognize and as a small
// vocabulary (split at every '\n'; the 256 single bytes are always in it). For every grammar the
// reader accepts:
//   - the recognizer reads the text without crashing, and every prefix of an accepted text is
//     accepted too;
//   - the token mask (vocabulary trie, per-position caches, exits) allows exactly the tokens whose
//     bytes the recognizer accepts, at every step of a walk driven by the input.
// A grammar the reader refuses must be refused with Error(invalid_argument) and nothing else; an
// over-ambiguous grammar may stop the recognizer with Error(invalid_argument) too.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <qwen3/grammar.hpp>

#include "fuzz_support.hpp"

namespace qwen3_fuzz::grammar_target {

void run(const std::uint8_t* data, std::size_t size) {
    Input in(data, size);
    const std::string_view text = in.until('\0');
    const std::string_view rest = in.rest();
    std::optional<qwen3::Grammar> grammar;
    try {
        grammar.emplace(qwen3::Grammar::from_gbnf(text));
    } catch (const qwen3::Error& e) {
        check(e.code() == qwen3::ErrorCode::invalid_argument, "from_gbnf failed with code ", qwen3::to_string(e.code()));
        return;
    }
    try {
        // prefixes of an accepted text are accepted
        {
            qwen3::GrammarRecognizer r(*grammar);
            std::size_t accepted = 0;
            while (accepted < rest.size() && accepted < 64 && r.accept(rest.substr(accepted, 1))) ++accepted;
            qwen3::GrammarRecognizer again(*grammar);
            check(again.accept(rest.substr(0, accepted)), "a prefix read byte by byte is refused whole");
        }
        // a small vocabulary: every byte, and the input's lines
        std::vector<std::string> tokens;
        for (int b = 0; b < 256; ++b) tokens.emplace_back(1, char(b));
        std::string_view lines = rest;
        while (!lines.empty() && tokens.size() < 400) {
            const std::size_t nl = lines.find('\n');
            const std::string_view line = lines.substr(0, nl);
            if (line.size() > 1 && line.size() < 24) tokens.emplace_back(line);
            lines = nl == std::string_view::npos ? std::string_view() : lines.substr(nl + 1);
        }
        const auto vocabulary = std::make_shared<const qwen3::TokenTrie>(tokens, tokens.size() + 1);
        const qwen3::TokenId end = qwen3::TokenId(tokens.size());
        std::vector<qwen3::TokenId> ids(grammar->tokens().size(), end);  // token references: the end token's id
        const auto tg = std::make_shared<const qwen3::TokenGrammar>(*grammar, vocabulary, std::vector<qwen3::TokenId>{end}, ids);
        qwen3::GrammarMatcher matcher(tg);
        qwen3::GrammarRecognizer reference(*grammar);
        qwen3::TokenBitmask mask;
        for (std::size_t step = 0; step < 8 && step < rest.size(); ++step) {
            try {
                matcher.fill_mask(mask);
            } catch (const qwen3::Error& e) {  // no token continues: then the recognizer agrees
                check(e.code() == qwen3::ErrorCode::invalid_argument, "fill_mask failed with code ", qwen3::to_string(e.code()));
                return;
            }
            std::vector<qwen3::TokenId> allowed;
            for (qwen3::TokenId id = 0; id < qwen3::TokenId(tokens.size()); ++id) {
                const bool truth = reference.would_accept(tokens[std::size_t(id)]);
                check(truth == mask.test(id), "mask ", mask.test(id), " but bytes ", truth, " for token ", show(tokens[std::size_t(id)]),
                      " at step ", step);
                if (truth) allowed.push_back(id);
            }
            if (allowed.empty()) return;
            const qwen3::TokenId next = allowed[std::uint8_t(rest[step]) % allowed.size()];
            check(matcher.accept_token(next), "the matcher refuses a token of its mask");
            check(reference.accept(tokens[std::size_t(next)]), "the recognizer refuses a token it allowed");
        }
    } catch (const qwen3::Error& e) {
        check(e.code() == qwen3::ErrorCode::invalid_argument, "running the grammar failed with code ", qwen3::to_string(e.code()));
    }
}

}  // namespace qwen3_fuzz::grammar_target

#ifndef QWEN3_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    qwen3_fuzz::grammar_target::run(data, size);
    return 0;
}
#endif
