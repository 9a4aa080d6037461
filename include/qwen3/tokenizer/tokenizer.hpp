// qwen3/tokenizer/tokenizer.hpp - the Qwen3 tokenizer: text to token ids and back.
//
// Gives the ids Hugging Face `tokenizers` gives for Qwen3's tokenizer.json (encode with its defaults),
// by the same pipeline:
//   1. added tokens (<|endoftext|>, <|im_start|>, <think>, ...) are split out of the raw text first;
//   2. each stretch between them is normalized to NFC (Unicode 9.0, as Hugging Face's normalizer);
//   3. and cut into pieces by the Qwen2 pre-tokenizer regex (pretokenize.hpp);
//   4. each piece's bytes are byte-pair encoded by merge rank (bpe.hpp).
// Loaded from a tokenizer.json, a GGUF file's tokenizer metadata, or a model folder; both sources give
// the same results (see loaders.hpp for how GGUF token types map to tokenizer.json's flags).
//
// Defined behaviour for every input:
//   * Invalid UTF-8 given to encode: each maximal ill-formed subpart is read as U+FFFD (what decoding
//     the bytes with Python's errors="replace" would give) unless EncodeOptions::reject_invalid_utf8
//     asks for Error(invalid_argument) instead.
//   * decode() and StreamDecoder: ids that name no token (negative, past the vocabulary, a hole, or the
//     padding rows of a model's embedding) produce no text, as in Hugging Face's decode. Bytes that do
//     not form valid UTF-8 become U+FFFD per maximal subpart (Rust's from_utf8_lossy, which Hugging
//     Face uses).
//
// Thread safety: a Tokenizer is immutable after loading; encode/decode may run on many threads at
// once. Each thread keeps its own scratch memory and piece cache (thread_local), so nothing is shared.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../error.hpp"
#include "added_tokens.hpp"
#include "bpe.hpp"
#include "piece_cache.hpp"
#include "pretokenize.hpp"
#include "unicode.hpp"

namespace qwen3 {

namespace gguf {
class File;
}

struct EncodeOptions {
    // Hugging Face's default (true): added-token text in the input ("<|im_start|>", "<think>") becomes
    // the token. false: the whole text is plain text, as for untrusted input (a user cannot forge a
    // control token; "<|im_end|>" is encoded as its characters).
    bool match_added_tokens = true;
    // With match_added_tokens, byte ranges of the text that are still plain text (user data inside a
    // rendered chat prompt, see chat/template.hpp). Sorted, non-overlapping, within the text; an added
    // token must lie wholly outside them to match. The text is normalized and pre-tokenized across
    // range boundaries as one string, exactly as Hugging Face tokenizes a whole prompt.
    std::span<const ByteRange> plain_ranges = {};
    // Invalid UTF-8: false reads each maximal ill-formed subpart as U+FFFD; true throws
    // Error(invalid_argument) naming the byte offset.
    bool reject_invalid_utf8 = false;
};

// Ids of tokens the chat and generation layers use; -1 when the vocabulary lacks one (a small test
// vocabulary, or another model family).
struct WellKnownTokens {
    TokenId endoftext = -1;            // <|endoftext|>
    TokenId im_start = -1;             // <|im_start|>
    TokenId im_end = -1;               // <|im_end|>
    TokenId think_open = -1;           // <think>
    TokenId think_close = -1;          // </think>
    TokenId tool_call_open = -1;       // <tool_call>
    TokenId tool_call_close = -1;      // </tool_call>
    TokenId tool_response_open = -1;   // <tool_response>
    TokenId tool_response_close = -1;  // </tool_response>
};

// What a token is.
enum class TokenKind : std::uint8_t {
    none,     // no token has this id (a hole in the numbering)
    normal,   // a BPE vocabulary token
    added,    // an added token matched in text, kept by skip_special_tokens (<think>, <tool_call>)
    special,  // an added control token, dropped by skip_special_tokens (<|im_end|>, <|fim_prefix|>)
};

class Tokenizer {
public:
    // Limits of this library, far above any real tokenizer; they bound memory for hostile files.
    static constexpr std::size_t kMaxTokenId = std::size_t(1) << 22;  // ids are below this
    static constexpr std::size_t kMaxTokenLength = 1024;              // bytes of one vocabulary string
    static constexpr std::size_t kMaxAddedTokenLength = detail::AddedTokenMatcher::kMaxLength;

    // --- loading (loaders.hpp) ---

    // Reads a Hugging Face tokenizer.json. Throws Error(io) when the file cannot be read,
    // Error(format) when it is not valid JSON or a field has the wrong type, Error(unsupported) for a
    // tokenizer this library does not implement (a model other than byte-level BPE, another
    // normalizer or pre-tokenizer, added tokens with lstrip/rstrip/single_word/normalized), and
    // Error(tokenizer) for inconsistent data (a merge naming an unknown token, duplicate tokens or ids,
    // ids out of range, a byte without a token). Each message names the file and the entry.
    static Tokenizer from_tokenizer_json(const std::string& path);
    // The same from the file's text; `what` names it in messages.
    static Tokenizer from_tokenizer_json_text(std::string_view json_text, std::string_view what = "tokenizer.json");
    // Reads the tokenizer metadata of a GGUF file (tokenizer.ggml.model "gpt2", pre "qwen2", tokens,
    // token_type, merges). Throws as above (Error(format) for missing or mistyped keys).
    static Tokenizer from_gguf(const gguf::File& file);
    // `path` is a tokenizer.json, a .gguf file (recognized by its magic) or a folder holding a
    // tokenizer.json. Throws as the loaders above; Error(io) when nothing loadable is there.
    static Tokenizer load(const std::string& path);

    // --- encoding ---

    // The ids of `text`. Never throws for any text (see the top of this file for invalid UTF-8),
    // except Error(invalid_argument) for options.plain_ranges that are unsorted, overlapping or past
    // the text, or invalid UTF-8 with options.reject_invalid_utf8.
    std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options = {}) const {
        std::vector<TokenId> ids;
        encode_append(text, ids, options);
        return ids;
    }
    // encode() for untrusted text: no added token is matched.
    std::vector<TokenId> encode_plain(std::string_view text) const {
        EncodeOptions options;
        options.match_added_tokens = false;
        return encode(text, options);
    }
    // Appends the ids of `text` to `out` (same rules as encode()).
    void encode_append(std::string_view text, std::vector<TokenId>& out, const EncodeOptions& options = {}) const;

    // --- decoding ---

    // The text of `ids`: the tokens' bytes, as UTF-8 with ill-formed parts replaced by U+FFFD. With
    // skip_special_tokens, tokens of kind `special` are left out. Unknown ids give nothing. Never throws.
    std::string decode(std::span<const TokenId> ids, bool skip_special_tokens = false) const;
    // The raw bytes of `ids` (no UTF-8 repair), for callers that stream or compare bytes.
    std::string decode_bytes(std::span<const TokenId> ids, bool skip_special_tokens = false) const;

    // --- vocabulary ---

    // One more than the highest token id (151,669 for Qwen3: 151,643 BPE tokens and 26 added ones).
    std::size_t vocab_size() const { return tokens_.size(); }
    TokenKind kind(TokenId id) const {
        return id >= 0 && std::size_t(id) < tokens_.size() ? tokens_[std::size_t(id)].kind : TokenKind::none;
    }
    // True for added control tokens, the ones skip_special_tokens drops.
    bool is_special(TokenId id) const { return kind(id) == TokenKind::special; }
    // True for every added token (special or not).
    bool is_added(TokenId id) const { return kind(id) == TokenKind::added || kind(id) == TokenKind::special; }
    // The token's string as the vocabulary writes it: byte-level form for BPE tokens ("Ġthe"), the
    // content for added tokens ("<|im_end|>"); "" for an id that names no token.
    std::string_view id_to_piece(TokenId id) const;
    // The raw bytes the token stands for (" the"); "" for an id that names no token.
    std::string_view token_bytes(TokenId id) const;
    // The id of a vocabulary string (as id_to_piece writes it), or nullopt.
    std::optional<TokenId> token_id(std::string_view piece) const;
    const WellKnownTokens& well_known() const { return well_known_; }

private:
    friend class TokenizerBuilder;
    Tokenizer() = default;  // made by the loaders only: an empty tokenizer could not encode

    struct Token {
        std::uint32_t piece_offset = 0, piece_length = 0;
        std::uint32_t bytes_offset = 0, bytes_length = 0;
        TokenKind kind = TokenKind::none;
    };

    void encode_stretch(std::string_view text, std::vector<TokenId>& out) const;
    std::optional<TokenId> find_piece(std::string_view piece) const;

    std::vector<Token> tokens_;
    std::string pieces_;  // all vocabulary strings, back to back
    std::string bytes_;   // all token bytes, back to back
    // Open addressing from a piece's hash to its id: a slot holds the hash's top 32 bits (checked
    // before the string, to avoid touching the strings of other pieces) and the id; kEmptySlot if empty.
    static constexpr std::uint64_t kEmptySlot = ~std::uint64_t(0);
    std::vector<std::uint64_t> piece_index_;
    detail::bpe::Encoder bpe_;
    detail::AddedTokenMatcher added_;
    WellKnownTokens well_known_;
    bool normalize_nfc_ = true;
    std::uint64_t instance_ = 0;  // identifies the data for the per-thread piece caches
};

// Turns ids into text one at a time, for streaming generation: push() returns only complete UTF-8
// characters, so a character whose bytes are split across tokens comes out whole, once, with the
// token that completes it. The outputs of push() and finish() concatenate to decode(all ids).
class StreamDecoder {
public:
    // `tokenizer` must outlive this object.
    explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false)
        : tokenizer_(&tokenizer), skip_special_(skip_special_tokens) {}

    // The text completed by `id` (often one word; empty while a character is incomplete). Never throws.
    std::string push(TokenId id);
    // Ends the stream: the held-back bytes of an incomplete character come out as U+FFFD. The decoder
    // can then be used for a new stream.
    std::string finish();
    // True when bytes of an incomplete character are held back.
    bool pending() const { return !pending_.empty(); }

private:
    const Tokenizer* tokenizer_;
    bool skip_special_;
    std::string pending_;  // at most 3 bytes: a proper prefix of a UTF-8 sequence
};

// ---------------------------------------------------------------------------------------------
// implementation

namespace detail {

// Per-thread scratch: BPE workspace, normalization buffer and the piece cache of one tokenizer.
struct ThreadScratch {
    detail::bpe::Workspace workspace;
    std::string normalized;
    std::unique_ptr<PieceCache> cache;
    std::uint64_t owner = 0;  // Tokenizer::instance_ whose pieces the cache holds
};

inline ThreadScratch& thread_scratch() {
    thread_local ThreadScratch scratch;
    return scratch;
}

// sanitize_utf8(text), with `ranges` moved to the same characters in the result (a U+FFFD is 3 bytes,
// the subpart it replaces 1 to 3).
inline std::string sanitize_keeping_ranges(std::string_view text, std::vector<ByteRange>& ranges) {
    std::vector<std::size_t> new_offset(text.size() + 1);
    std::string out;
    out.reserve(text.size() + 8);
    const auto* begin = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = begin + text.size();
    for (const auto* p = begin; p < end;) {
        const std::size_t at = std::size_t(p - begin);
        int subpart = 0;
        int n = detail::unicode::utf8_sequence_length(p, end, &subpart);
        if (n > 0) {
            for (int k = 0; k < n; ++k) new_offset[at + std::size_t(k)] = out.size() + std::size_t(k);
            out.append(reinterpret_cast<const char*>(p), std::size_t(n));
            p += n;
        } else {
            new_offset[at] = out.size();
            detail::unicode::append_utf8(out, detail::unicode::kReplacementCharacter);
            for (int k = 1; k < subpart; ++k) new_offset[at + std::size_t(k)] = out.size();
            p += subpart;
        }
    }
    new_offset[text.size()] = out.size();
    for (ByteRange& r : ranges) r = {new_offset[r.begin], new_offset[r.end]};
    return out;
}

inline std::uint64_t next_instance_id() {
    static std::atomic<std::uint64_t> counter{0};
    return ++counter;
}

}  // namespace detail

inline void Tokenizer::encode_append(std::string_view text, std::vector<TokenId>& out, const EncodeOptions& options) const {
    for (std::size_t i = 0; i < options.plain_ranges.size(); ++i) {
        const ByteRange& r = options.plain_ranges[i];
        if (r.begin > r.end || r.end > text.size() || (i > 0 && r.begin < options.plain_ranges[i - 1].end))
            detail::fail(ErrorCode::invalid_argument, "tokenizer: plain range ", i, " [", r.begin, ", ", r.end,
                         ") is not sorted, disjoint and within the text of ", text.size(), " bytes");
    }
    if (std::size_t bad = detail::unicode::find_invalid_utf8(text); bad != text.size()) {
        if (options.reject_invalid_utf8)
            detail::fail(ErrorCode::invalid_argument, "tokenizer: invalid UTF-8 at byte ", bad, " of the text");
        std::vector<ByteRange> ranges(options.plain_ranges.begin(), options.plain_ranges.end());
        const std::string sanitized = detail::sanitize_keeping_ranges(text, ranges);
        EncodeOptions valid = options;
        valid.plain_ranges = ranges;
        encode_append(sanitized, out, valid);
        return;
    }
    std::size_t at = 0;
    if (options.match_added_tokens) {
        std::size_t plain_index = 0;
        detail::AddedTokenMatcher::Match match;
        while (added_.next(text, at, options.plain_ranges, plain_index, match)) {
            encode_stretch(text.substr(at, match.begin - at), out);
            out.push_back(match.id);
            at = match.end;
        }
    }
    encode_stretch(text.substr(at), out);
}

inline void Tokenizer::encode_stretch(std::string_view text, std::vector<TokenId>& out) const {
    if (text.empty()) return;
    detail::ThreadScratch& scratch = detail::thread_scratch();
    if (!scratch.cache) scratch.cache = std::make_unique<detail::PieceCache>();
    if (scratch.owner != instance_) {
        scratch.cache->clear();
        scratch.owner = instance_;
    }
    if (normalize_nfc_ && !detail::unicode::is_nfc_quick(text)) {
        scratch.normalized.clear();
        detail::unicode::append_nfc(text, scratch.normalized);
        text = scratch.normalized;
    }
    detail::PieceCache& cache = *scratch.cache;
    detail::bpe::Workspace& workspace = scratch.workspace;
    // Pieces wait in a short queue so that their cache slots are fetched from memory while earlier
    // pieces are encoded (a cache lookup is otherwise a stall on a cold line).
    constexpr std::size_t kAhead = 8;
    std::string_view queued[kAhead];
    std::uint64_t hashes[kAhead];
    std::size_t head = 0, count = 0;
    auto process = [&](std::string_view piece, std::uint64_t hash) {
        if (!detail::PieceCache::cacheable(piece)) {
            bpe_.encode(piece, out, workspace);
            return;
        }
        if (cache.find(piece, hash, out)) return;
        const std::size_t before = out.size();
        bpe_.encode(piece, out, workspace);
        cache.store(piece, hash, out.data() + before, out.size() - before);
    };
    detail::pretokenize::split(text, [&](std::string_view piece) {
        std::uint64_t hash = 0;
        if (detail::PieceCache::cacheable(piece)) {
            hash = detail::hash_bytes(piece);
            cache.prefetch(hash);
        }
        if (count == kAhead) {
            process(queued[head], hashes[head]);
            queued[head] = piece;
            hashes[head] = hash;
            head = (head + 1) % kAhead;
        } else {
            queued[(head + count) % kAhead] = piece;
            hashes[(head + count) % kAhead] = hash;
            ++count;
        }
    });
    for (std::size_t k = 0; k < count; ++k) process(queued[(head + k) % kAhead], hashes[(head + k) % kAhead]);
}

inline std::string Tokenizer::decode_bytes(std::span<const TokenId> ids, bool skip_special_tokens) const {
    std::string out;
    for (TokenId id : ids) {
        if (id < 0 || std::size_t(id) >= tokens_.size()) continue;
        const Token& t = tokens_[std::size_t(id)];
        if (t.kind == TokenKind::none || (skip_special_tokens && t.kind == TokenKind::special)) continue;
        out.append(bytes_, t.bytes_offset, t.bytes_length);
    }
    return out;
}

inline std::string Tokenizer::decode(std::span<const TokenId> ids, bool skip_special_tokens) const {
    std::string bytes = decode_bytes(ids, skip_special_tokens);
    if (detail::unicode::is_valid_utf8(bytes)) return bytes;
    return detail::unicode::sanitize_utf8(bytes);
}

inline std::string_view Tokenizer::id_to_piece(TokenId id) const {
    if (kind(id) == TokenKind::none) return {};
    const Token& t = tokens_[std::size_t(id)];
    return std::string_view(pieces_).substr(t.piece_offset, t.piece_length);
}

inline std::string_view Tokenizer::token_bytes(TokenId id) const {
    if (kind(id) == TokenKind::none) return {};
    const Token& t = tokens_[std::size_t(id)];
    return std::string_view(bytes_).substr(t.bytes_offset, t.bytes_length);
}

inline std::optional<TokenId> Tokenizer::token_id(std::string_view piece) const { return find_piece(piece); }

inline std::optional<TokenId> Tokenizer::find_piece(std::string_view piece) const {
    if (piece_index_.empty()) return std::nullopt;
    const std::size_t mask = piece_index_.size() - 1;
    const std::uint64_t hash = detail::hash_bytes(piece);
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
        const std::uint64_t slot = piece_index_[i];
        if (slot == kEmptySlot) return std::nullopt;
        if ((slot >> 32) == (hash >> 32) && id_to_piece(TokenId(std::uint32_t(slot))) == piece) return TokenId(std::uint32_t(slot));
    }
}

inline std::string StreamDecoder::push(TokenId id) {
    if (tokenizer_->kind(id) == TokenKind::none || (skip_special_ && tokenizer_->is_special(id))) return {};
    std::string bytes = pending_;
    bytes += tokenizer_->token_bytes(id);
    pending_.clear();
    std::string out;
    const auto* begin = reinterpret_cast<const unsigned char*>(bytes.data());
    const auto* end = begin + bytes.size();
    const auto* p = begin;
    while (p < end) {
        int subpart = 0;
        int n = detail::unicode::utf8_sequence_length(p, end, &subpart);
        if (n > 0) {
            out.append(reinterpret_cast<const char*>(p), std::size_t(n));
            p += n;
            continue;
        }
        // an ill-formed subpart that reaches the end, led by a valid lead byte, may still be completed
        bool valid_lead = *p >= 0xC2 && *p <= 0xF4;
        if (valid_lead && p + subpart == end) {
            pending_.assign(reinterpret_cast<const char*>(p), std::size_t(subpart));
            break;
        }
        detail::unicode::append_utf8(out, detail::unicode::kReplacementCharacter);
        p += subpart;
    }
    return out;
}

inline std::string StreamDecoder::finish() {
    std::string out;
    if (!pending_.empty()) detail::unicode::append_utf8(out, detail::unicode::kReplacementCharacter);
    pending_.clear();
    return out;
}

}  // namespace qwen3

#include "loaders.hpp"
