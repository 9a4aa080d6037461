// Fuzz target: encoding and decoding arbitrary bytes with the real Qwen3 tokenizer.
//
// Input: a flags byte, then the text. For every text:
//   - every id names a token; encode never throws (invalid UTF-8 is read as U+FFFD);
//   - plain encoding (no added tokens) decodes to the NFC of the repaired text and holds no added
//     token; it equals the plain encoding of that NFC text (normalization comes first);
//   - encoding with added tokens decodes to the text with each stretch between added tokens in NFC
//     (added tokens found here by a plain leftmost-longest search, not the tokenizer's matcher);
//   - with plain ranges (flag bit 1; ranges cut from the flags and the text's length), no added
//     token overlaps a range, checked the same way;
//   - reject_invalid_utf8 throws exactly when the text is not valid UTF-8 (an independent check);
//   - the library's UTF-8 repair equals the reference one (Unicode's maximal subparts);
//   - StreamDecoder emits valid UTF-8 only, and its pieces concatenate to decode(ids), both for the
//     encoded ids and for the input read as arbitrary ids (out of range ones included).
#include <cstdint>
#include <string>
#include <vector>

#include <qwen3/tokenizer.hpp>

#include "fuzz_support.hpp"

namespace qwen3_fuzz::tokenizer_target {

using qwen3::TokenId;

inline const qwen3::Tokenizer& tokenizer() {
    static const qwen3::Tokenizer tok = qwen3::Tokenizer::from_tokenizer_json(data_path("tokenizer/tokenizer.json"));
    return tok;
}

inline const std::vector<std::string>& added_texts() {
    static const std::vector<std::string> texts = [] {
        std::vector<std::string> out;
        const qwen3::Tokenizer& tok = tokenizer();
        for (std::size_t id = 0; id < tok.vocab_size(); ++id)
            if (tok.is_added(TokenId(id))) out.emplace_back(tok.id_to_piece(TokenId(id)));
        return out;
    }();
    return texts;
}

// What decode(encode(text)) must give: added tokens (leftmost, longest, wholly outside `plain`) kept,
// the stretches between them in NFC.
inline std::string expected_round_trip(std::string_view text, const std::vector<qwen3::ByteRange>& plain) {
    std::string out, stretch;
    std::size_t r = 0;
    for (std::size_t i = 0; i < text.size();) {
        while (r < plain.size() && plain[r].end <= i) ++r;
        const bool in_plain = r < plain.size() && plain[r].begin <= i;
        const std::size_t limit = r < plain.size() ? plain[r].begin : text.size();
        std::size_t best = 0;
        if (!in_plain)
            for (const std::string& a : added_texts())
                if (a.size() > best && i + a.size() <= limit && text.substr(i, a.size()) == a) best = a.size();
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

inline void check_stream(const qwen3::Tokenizer& tok, const std::vector<TokenId>& ids, bool skip_special) {
    qwen3::StreamDecoder decoder(tok, skip_special);
    std::string joined;
    for (TokenId id : ids) {
        const std::string piece = decoder.push(id);
        check(reference_valid_utf8(piece), "StreamDecoder emitted invalid UTF-8 ", show(piece));
        joined += piece;
    }
    const std::string tail = decoder.finish();
    check(reference_valid_utf8(tail), "StreamDecoder::finish emitted invalid UTF-8");
    joined += tail;
    check(joined == tok.decode(ids, skip_special), "streamed text ", show(joined), " differs from decode ",
          show(tok.decode(ids, skip_special)));
}

void run(const std::uint8_t* data, std::size_t size) {
    const qwen3::Tokenizer& tok = tokenizer();
    Input in(data, size);
    const std::uint8_t flags = in.byte();
    const std::string_view text = in.rest();

    bool valid = false;
    const std::string repaired = reference_sanitize_utf8(text, &valid);
    check(qwen3::detail::unicode::sanitize_utf8(text) == repaired, "sanitize_utf8 differs from the reference for ", show(text));
    check(qwen3::detail::unicode::is_valid_utf8(text) == valid, "is_valid_utf8 differs from the reference for ", show(text));
    qwen3::EncodeOptions strict;
    strict.reject_invalid_utf8 = true;
    try {
        (void)tok.encode(text, strict);
        check(valid, "reject_invalid_utf8 accepted invalid UTF-8");
    } catch (const qwen3::Error& e) {
        check(!valid && e.code() == qwen3::ErrorCode::invalid_argument, "reject_invalid_utf8 threw for valid UTF-8");
    }

    const std::vector<TokenId> plain = tok.encode_plain(text);
    for (TokenId id : plain) check(tok.kind(id) == qwen3::TokenKind::normal, "plain encoding produced id ", id);
    const std::string normalized = qwen3::detail::unicode::nfc(repaired);
    check(tok.decode(plain) == normalized, "plain round trip of ", show(text), " gives ", show(tok.decode(plain)));
    check(tok.encode_plain(normalized) == plain, "encoding the NFC text gives other ids");

    const std::vector<TokenId> ids = tok.encode(text);
    for (TokenId id : ids) check(tok.kind(id) != qwen3::TokenKind::none, "encode produced id ", id, " that names no token");
    check(tok.decode(ids) == expected_round_trip(repaired, {}), "round trip of ", show(text), " gives ", show(tok.decode(ids)));

    if (flags & 2) {
        // plain ranges cut from the repaired text (ranges index the text as given; valid UTF-8 keeps them)
        std::vector<qwen3::ByteRange> ranges;
        Cuts cuts(flags * 977u + std::uint32_t(repaired.size()));
        for (std::size_t at = 0; at < repaired.size();) {
            const std::size_t gap = cuts.next(8), len = cuts.next(12);
            if (at + gap >= repaired.size()) break;
            ranges.push_back({at + gap, std::min(repaired.size(), at + gap + len)});
            at = ranges.back().end + 1;
        }
        qwen3::EncodeOptions options;
        options.plain_ranges = ranges;
        const std::vector<TokenId> ranged = tok.encode(repaired, options);
        check(tok.decode(ranged) == expected_round_trip(repaired, ranges), "round trip with plain ranges of ", show(repaired),
              " gives ", show(tok.decode(ranged)));
    }

    check_stream(tok, ids, flags & 4);
    // the input read as ids, two bytes each, some beyond the vocabulary
    std::vector<TokenId> arbitrary;
    for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
        const unsigned v = unsigned(std::uint8_t(text[i])) << 8 | std::uint8_t(text[i + 1]);
        arbitrary.push_back(v >= 0xFF00 ? TokenId(tok.vocab_size()) - 0x80 + TokenId(v & 0xFF) : TokenId(v * 3));
    }
    check_stream(tok, arbitrary, flags & 8);
}

}  // namespace qwen3_fuzz::tokenizer_target

#ifndef QWEN3_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    qwen3_fuzz::tokenizer_target::run(data, size);
    return 0;
}
#endif
