// Fuzz target: loading a tokenizer.json from arbitrary bytes (Tokenizer::from_tokenizer_json_text).
//
// Seeds are small real-format files (fuzz/make_seeds.cpp: Qwen3's first tokens and merges), so
// mutations reach the vocabulary, merge and added-token checks. For a tokenizer that loads:
//   - encoding a fixed text with added-token look-alikes, and the input itself, with and without
//     added-token matching, gives only ids that name tokens (a hostile file may make an added token of
//     a vocabulary string, so plain encoding can yield its id: that file's meaning, as in Hugging Face);
//   - decode and StreamDecoder give valid UTF-8, and the stream concatenates to decode.
// (A hostile vocabulary may decode to other text than it encoded: that is its meaning, not a bug.)
#include <cstdint>
#include <string>
#include <vector>

#include <qwen3/tokenizer.hpp>

#include "fuzz_support.hpp"

namespace qwen3_fuzz::tokenizer_json_target {

using qwen3::TokenId;

inline void check_ids(const qwen3::Tokenizer& tok, std::string_view text) {
    const std::vector<TokenId> ids = tok.encode(text);
    for (TokenId id : ids) check(tok.kind(id) != qwen3::TokenKind::none, "encode produced id ", id, " that names no token");
    for (TokenId id : tok.encode_plain(text)) check(tok.kind(id) != qwen3::TokenKind::none, "plain encoding produced id ", id);
    const std::string decoded = tok.decode(ids);
    check(reference_valid_utf8(decoded), "decode produced invalid UTF-8");
    qwen3::StreamDecoder stream(tok);
    std::string joined;
    for (TokenId id : ids) {
        std::string piece = stream.push(id);
        check(reference_valid_utf8(piece), "StreamDecoder emitted invalid UTF-8");
        joined += piece;
    }
    joined += stream.finish();
    check(joined == decoded, "streamed text differs from decode");
}

void run(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const qwen3::Tokenizer tok = qwen3::Tokenizer::from_tokenizer_json_text(text, "fuzz tokenizer.json");
        check_ids(tok, "Hi <|im_start|>user\n<|IM_START|> \xEF\xBD\x9C <think></think>\r\n\t 123 caf\xC3\xA9 e\xCC\x81 \xF0\x9F\x98\x80");
        check_ids(tok, text.substr(0, 512));
        for (TokenId id = -1; id < TokenId(tok.vocab_size()) + 1 && id < 4096; ++id) {
            (void)tok.id_to_piece(id);
            (void)tok.token_bytes(id);
        }
    } catch (const qwen3::Error&) {
    }
}

}  // namespace qwen3_fuzz::tokenizer_json_target

#ifndef QWEN3_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    qwen3_fuzz::tokenizer_json_target::run(data, size);
    return 0;
}
#endif
