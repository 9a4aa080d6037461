// qwen3/tokenizer/loaders.hpp - building a Tokenizer from tokenizer.json or GGUF metadata.
//
// Both sources describe the same tokenizer in different words:
//   tokenizer.json: model.vocab (string -> id), model.merges ("a b" or ["a", "b"], by rank),
//     added_tokens [{id, content, special, ...}], and the normalizer / pre-tokenizer / decoder, which
//     must be Qwen2's (NFC, the Qwen2 split regex with byte-level mapping, byte-level decoding).
//   GGUF: tokenizer.ggml.tokens (index = id), token_type, merges ("a b"), model "gpt2", pre "qwen2".
//     Token types (llama.cpp's): 1 normal, 3 control, 4 user-defined, 5 unused (no token, e.g. the
//     [PAD151669] rows up to the embedding size). Control and user-defined tokens are the added tokens.
//
// Which added tokens are "special" (dropped by decode's skip_special_tokens). A GGUF file cannot say
// what tokenizer.json's `special` flag said: llama.cpp's converter writes an added token as control
// when it is special *or* looks like <|...|>, so for Qwen3 the six tokens <|fim_prefix|>,
// <|fim_middle|>, <|fim_suffix|>, <|fim_pad|>, <|repo_name|>, <|file_sep|> (special: false in
// tokenizer.json) become control tokens. So that both loaders agree, a tokenizer.json added token is
// special here by the same rule: special: true, or content of the form <|...|>. Consequence: with
// skip_special_tokens those six tokens are dropped, where Hugging Face would keep them; <think>,
// </think>, <tool_call> and the other tags are kept by both.
//
// Encoding from GGUF applies the same NFC as tokenizer.json (llama.cpp does not normalize; Hugging
// Face does), so both give Hugging Face's ids.
//
// Hostile files: every id is checked against kMaxTokenId and the vocabulary, every string against
// the length limits, tokenizer.json against a byte and value budget, before memory is sized by them.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "../error.hpp"
#include "../format/gguf.hpp"
#include "../format/json.hpp"
#include "../format/mmap.hpp"
#include "tokenizer.hpp"

namespace qwen3 {

// The regex of Qwen2/Qwen3's pre-tokenizer, as tokenizer.json writes it (pretokenize.hpp implements it).
inline constexpr std::string_view kQwen2SplitPattern =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

class TokenizerBuilder {
public:
    static constexpr std::size_t kMaxJsonBytes = std::size_t(1) << 28;   // 256 MiB
    static constexpr std::size_t kMaxJsonValues = std::size_t(1) << 22;  // 4M values (Qwen3: 0.6M)

    explicit TokenizerBuilder(std::string what) : what_(std::move(what)) {}

    // Sizes the tables for `count` tokens, the number the file lists. Ids may leave holes, but the
    // highest id must stay below 2 * count + 65536, so that memory follows the file's contents and
    // not a number written in it.
    void reserve(std::size_t count) {
        count = std::min(count, Tokenizer::kMaxTokenId);
        id_limit_ = std::min(Tokenizer::kMaxTokenId, 2 * count + 65536);
        std::size_t capacity = 64;
        while (capacity < count + count / 2) capacity *= 2;  // load at most 2/3: short probes, small table
        t_.piece_index_.assign(capacity, Tokenizer::kEmptySlot);
        t_.tokens_.reserve(count);
    }

    // Names an entry in messages, built only when one is needed: "<label> <index> <quoted piece>".
    struct Where {
        const char* label;      // "vocab entry", "added_tokens", "token"
        std::size_t index;      // position in the file's list (unused for vocab entries)
        std::string_view name;  // the entry's string
        std::string str() const {
            std::string s = label;
            if (s != "vocab entry") s += (s == "added_tokens" ? "[" + std::to_string(index) + "]" : " " + std::to_string(index));
            return s + " " + detail::quote_file_string(name);
        }
    };

    // A vocabulary token (byte-level form) or an added token (its text).
    void add_token(std::int64_t id, std::string_view piece, TokenKind kind, const Where& where) {
        if (id < 0 || std::uint64_t(id) >= id_limit_)
            fail_at(where, "id ", id, " is outside 0..", id_limit_ - 1, " (ids may leave holes, but fewer than 2 per token)");
        if (piece.empty()) fail_at(where, "is an empty string");
        const std::size_t limit = kind == TokenKind::normal ? Tokenizer::kMaxTokenLength : Tokenizer::kMaxAddedTokenLength;
        if (piece.size() > limit) fail_at(where, "is ", piece.size(), " bytes long, over this library's limit of ", limit);
        if (!detail::unicode::is_valid_utf8(piece)) fail_at(where, "is not valid UTF-8");
        const std::size_t index = std::size_t(id);
        if (index >= t_.tokens_.size()) t_.tokens_.resize(index + 1);
        if (auto existing = t_.find_piece(piece)) {
            // Hugging Face gives an added token that is also in the vocabulary the vocabulary's id
            if (kind != TokenKind::normal && *existing == id && t_.tokens_[index].kind == TokenKind::normal) {
                t_.tokens_[index].kind = kind;
                t_.added_.add(piece, TokenId(id));
                return;
            }
            fail_at(where, "repeats the string of token ", *existing);
        }
        if (t_.tokens_[index].kind != TokenKind::none) fail_at(where, "reuses id ", id);
        Tokenizer::Token& t = t_.tokens_[index];
        t.kind = kind;
        t.piece_offset = pool_offset(t_.pieces_, piece.size());
        t.piece_length = std::uint32_t(piece.size());
        t_.pieces_ += piece;
        const std::string bytes = token_bytes_of(piece);
        t.bytes_offset = pool_offset(t_.bytes_, bytes.size());
        t.bytes_length = std::uint32_t(bytes.size());
        t_.bytes_ += bytes;
        index_piece(TokenId(id));
        if (kind != TokenKind::normal) t_.added_.add(piece, TokenId(id));
    }

    // Call after the vocabulary tokens and before the merges: finds the token of every byte.
    void resolve_byte_tokens() {
        for (int b = 0; b < 256; ++b) {
            std::string piece;
            detail::unicode::append_utf8(piece, detail::bpe::kByteAlphabet.char_of_byte[std::size_t(b)]);
            auto id = t_.find_piece(piece);
            if (!id || t_.tokens_[std::size_t(*id)].kind != TokenKind::normal)
                detail::fail(ErrorCode::tokenizer, what_, ": the vocabulary has no token for byte 0x", hex2(b), " (",
                             json::quote(piece), "); a byte-level BPE vocabulary needs all 256");
            t_.bpe_.set_byte_token(static_cast<unsigned char>(b), *id);
        }
    }

    void reserve_merges(std::size_t count) { t_.bpe_.merges().reserve(std::min(count, detail::bpe::MergeTable::kMaxMerges)); }

    // The merge of rank `rank`: tokens `left` and `right` (vocabulary strings) into left + right.
    void add_merge(std::string_view left, std::string_view right, std::size_t rank) {
        auto describe = [&] { return "merge " + std::to_string(rank) + " " + detail::quote_file_string(std::string(left) + " " + std::string(right)); };
        auto a = normal_token(left), b = normal_token(right);
        if (!a || !b)
            detail::fail(ErrorCode::tokenizer, what_, ": ", describe(), " names ", detail::quote_file_string(!a ? left : right),
                         ", which is not in the vocabulary");
        std::string& joined = scratch_;
        joined.assign(left).append(right);
        auto merged = normal_token(joined);
        if (!merged)
            detail::fail(ErrorCode::tokenizer, what_, ": ", describe(), " makes ", detail::quote_file_string(joined),
                         ", which is not in the vocabulary");
        if (rank >= detail::bpe::MergeTable::kMaxMerges)
            detail::fail(ErrorCode::tokenizer, what_, ": more than ", detail::bpe::MergeTable::kMaxMerges, " merges (this library's limit)");
        if (!t_.bpe_.merges().insert(*a, *b, std::uint32_t(rank), *merged))
            detail::fail(ErrorCode::tokenizer, what_, ": ", describe(), " repeats an earlier merge of the same pair");
    }

    Tokenizer finish() {
        WellKnownTokens& w = t_.well_known_;
        auto find = [&](std::string_view s) { return t_.find_piece(s).value_or(-1); };
        w.endoftext = find("<|endoftext|>");
        w.im_start = find("<|im_start|>");
        w.im_end = find("<|im_end|>");
        w.think_open = find("<think>");
        w.think_close = find("</think>");
        w.tool_call_open = find("<tool_call>");
        w.tool_call_close = find("</tool_call>");
        w.tool_response_open = find("<tool_response>");
        w.tool_response_close = find("</tool_response>");
        t_.bpe_.finish();
        t_.instance_ = detail::next_instance_id();
        return std::move(t_);
    }

    void set_normalize_nfc(bool on) { t_.normalize_nfc_ = on; }
    const std::string& what() const { return what_; }

    // Hugging Face's ByteLevel decoding of one token string: when every character is in the byte
    // alphabet, the bytes they stand for; otherwise the string's own UTF-8 bytes.
    static std::string token_bytes_of(std::string_view piece) {
        std::string bytes;
        const auto* p = reinterpret_cast<const unsigned char*>(piece.data());
        const auto* end = p + piece.size();
        while (p < end) {
            int n = detail::unicode::utf8_lead_length(*p);
            int b = detail::bpe::kByteAlphabet.byte_of_char(detail::unicode::decode_utf8(p, n));
            if (b < 0) return std::string(piece);
            bytes += char(b);
            p += n;
        }
        return bytes;
    }

    // An added token is special (dropped by skip_special_tokens) when flagged so or written <|...|>
    // (see the top of this file).
    static bool looks_special(std::string_view content) {
        return content.size() >= 4 && content.substr(0, 2) == "<|" && content.substr(content.size() - 2) == "|>";
    }

    template <typename... Parts>
    [[noreturn]] void fail_at(const Where& where, Parts&&... parts) const {
        detail::fail(ErrorCode::tokenizer, what_, ": ", where.str(), " ", std::forward<Parts>(parts)...);
    }

private:
    static std::string hex2(int b) {
        static const char digits[] = "0123456789ABCDEF";
        return {digits[b >> 4], digits[b & 15]};
    }

    std::uint32_t pool_offset(const std::string& pool, std::size_t adding) const {
        if (pool.size() + adding > 0xFFFFFFFFu) detail::fail(ErrorCode::tokenizer, what_, ": vocabulary strings exceed 4 GiB");
        return std::uint32_t(pool.size());
    }

    std::optional<TokenId> normal_token(std::string_view piece) const {
        auto id = t_.find_piece(piece);
        if (id && t_.tokens_[std::size_t(*id)].kind == TokenKind::normal) return id;
        return std::nullopt;
    }

    void index_piece(TokenId id) {
        if (t_.piece_index_.empty() || (++indexed_) * 3 > t_.piece_index_.size() * 2) {
            // grow (only when reserve() was too small)
            std::vector<std::uint64_t> old = std::move(t_.piece_index_);
            t_.piece_index_.assign(std::max<std::size_t>(64, old.size() * 2), Tokenizer::kEmptySlot);
            indexed_ = 1;
            for (std::uint64_t slot : old)
                if (slot != Tokenizer::kEmptySlot) insert_index(TokenId(std::uint32_t(slot))), ++indexed_;
        }
        insert_index(id);
    }
    void insert_index(TokenId id) {
        const std::size_t mask = t_.piece_index_.size() - 1;
        const std::uint64_t hash = detail::hash_bytes(t_.id_to_piece(id));
        std::size_t i = hash & mask;
        while (t_.piece_index_[i] != Tokenizer::kEmptySlot) i = (i + 1) & mask;
        t_.piece_index_[i] = (hash >> 32) << 32 | std::uint32_t(id);
    }

    std::string what_;
    Tokenizer t_;
    std::size_t id_limit_ = 65536;
    std::size_t indexed_ = 0;
    std::string scratch_;
};

namespace detail {

inline const json::Value& member(const json::Value& object, std::string_view key, std::string_view where, const std::string& what) {
    if (!object.is_object())
        detail::fail(ErrorCode::format, what, ": ", where, " must be an object, found ", json::Value::kind_name(object.kind()));
    const json::Value* v = object.find(key);
    if (!v) detail::fail(ErrorCode::format, what, ": ", where, " has no \"", key, "\"");
    return *v;
}

inline std::string type_of(const json::Value& v) {
    if (const json::Value* t = v.is_object() ? v.find("type") : nullptr; t && t->is_string()) return t->as_string();
    return v.is_null() ? "null" : "(no type)";
}

inline bool flag(const json::Value& object, std::string_view key) {
    const json::Value* v = object.find(key);
    return v && !v->is_null() && v->as_bool();
}

// Checks that the pipeline around the model is Qwen2's; throws Error(unsupported) naming what differs.
inline bool check_pipeline(const json::Value& root, const std::string& what) {
    auto unsupported = [&](std::string_view part, const std::string& found) {
        detail::fail(ErrorCode::unsupported, what, ": ", part, " is ", found, "; this tokenizer implements Qwen2/Qwen3's (",
                     "NFC normalizer, Split with the Qwen2 regex then ByteLevel, ByteLevel decoder)");
    };
    bool nfc = false;
    if (const json::Value* n = root.find("normalizer"); n && !n->is_null()) {
        if (type_of(*n) != "NFC") unsupported("the normalizer", type_of(*n));
        nfc = true;
    }
    const json::Value* pre = root.find("pre_tokenizer");
    if (!pre || type_of(*pre) != "Sequence") unsupported("the pre_tokenizer", pre ? type_of(*pre) : "missing");
    const json::Array& steps = member(*pre, "pretokenizers", "pre_tokenizer", what).as_array();
    if (steps.size() != 2 || type_of(steps[0]) != "Split" || type_of(steps[1]) != "ByteLevel")
        unsupported("the pre_tokenizer sequence", std::to_string(steps.size()) + " steps");
    const json::Value& split = steps[0];
    const json::Value* pattern = member(split, "pattern", "the Split pre-tokenizer", what).find("Regex");
    if (!pattern || !pattern->is_string() || pattern->as_string() != kQwen2SplitPattern)
        unsupported("the Split pattern", pattern && pattern->is_string() ? json::quote(pattern->as_string()) : "not a Regex");
    if (const json::Value* b = split.find("behavior"); !b || !b->is_string() || b->as_string() != "Isolated")
        unsupported("the Split behavior", b && b->is_string() ? b->as_string() : "missing");
    if (flag(split, "invert")) unsupported("Split invert", "true");
    if (flag(steps[1], "add_prefix_space")) unsupported("ByteLevel add_prefix_space", "true");
    if (flag(steps[1], "use_regex")) unsupported("ByteLevel use_regex", "true");
    if (const json::Value* d = root.find("decoder"); !d || type_of(*d) != "ByteLevel")
        unsupported("the decoder", d ? type_of(*d) : "missing");
    // The post-processor runs after the model; ByteLevel's only changes offsets. Others (e.g.
    // TemplateProcessing) would add tokens such as a BOS.
    if (const json::Value* p = root.find("post_processor"); p && !p->is_null() && type_of(*p) != "ByteLevel")
        unsupported("the post_processor", type_of(*p));
    return nfc;
}

}  // namespace detail

inline Tokenizer Tokenizer::from_tokenizer_json_text(std::string_view json_text, std::string_view what_view) {
    const std::string what(what_view);
    using detail::member;
    if (json_text.size() > TokenizerBuilder::kMaxJsonBytes)
        detail::fail(ErrorCode::format, what, ": ", json_text.size(), " bytes, over the limit of ", TokenizerBuilder::kMaxJsonBytes);
    json::ParseOptions parse_options;
    parse_options.max_depth = 32;
    parse_options.max_values = TokenizerBuilder::kMaxJsonValues;
    // A vocabulary string given twice is refused by the builder ("repeats the string"); checking every
    // object's keys in the parser as well would cost a fifth of the load time.
    const json::Value root = json::parse(json_text, what, parse_options);
    if (!root.is_object()) detail::fail(ErrorCode::format, what, ": the top level must be an object");

    const json::Value& model = member(root, "model", "the file", what);
    const std::string model_type = detail::type_of(model);
    if (model_type != "BPE")
        detail::fail(ErrorCode::unsupported, what, ": model type ", json::quote(model_type), " (only byte-level BPE is implemented)");
    if (const json::Value* d = model.find("dropout"); d && !d->is_null())
        detail::fail(ErrorCode::unsupported, what, ": BPE dropout is not supported");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
        if (const json::Value* v = model.find(key); v && !v->is_null() && !v->as_string().empty())
            detail::fail(ErrorCode::unsupported, what, ": BPE ", key, " is not supported");
    if (detail::flag(model, "ignore_merges"))
        detail::fail(ErrorCode::unsupported, what, ": BPE ignore_merges is not supported");
    const bool nfc = detail::check_pipeline(root, what);

    const json::Object& vocab = member(model, "vocab", "model", what).as_object();
    const json::Array& merges = member(model, "merges", "model", what).as_array();
    const json::Value* added = root.find("added_tokens");
    if (added && !added->is_null() && !added->is_array()) detail::fail(ErrorCode::format, what, ": added_tokens must be an array");

    TokenizerBuilder builder(what);
    builder.set_normalize_nfc(nfc);
    builder.reserve(vocab.size() + (added && added->is_array() ? added->as_array().size() : 0));
    for (const json::Member& m : vocab) {
        if (!m.value.is_integer())
            detail::fail(ErrorCode::format, what, ": vocab entry ", detail::quote_file_string(m.key), " must have an integer id");
        builder.add_token(m.value.as_int(), m.key, TokenKind::normal, {"vocab entry", 0, m.key});
    }
    builder.resolve_byte_tokens();
    builder.reserve_merges(merges.size());
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
        const json::Value& m = merges[rank];
        if (m.is_string()) {  // older files: "left right"
            const std::string& s = m.as_string();
            std::size_t space = s.find(' ');
            if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
                detail::fail(ErrorCode::tokenizer, what, ": merge ", rank, " ", detail::quote_file_string(s),
                             " is not two tokens separated by one space");
            builder.add_merge(std::string_view(s).substr(0, space), std::string_view(s).substr(space + 1), rank);
        } else if (m.is_array() && m.as_array().size() == 2 && m.as_array()[0].is_string() && m.as_array()[1].is_string()) {
            builder.add_merge(m.as_array()[0].as_string(), m.as_array()[1].as_string(), rank);
        } else {
            detail::fail(ErrorCode::format, what, ": merge ", rank, " must be a string or an array of two strings");
        }
    }
    if (added && added->is_array()) {
        const json::Array& tokens = added->as_array();
        for (std::size_t i = 0; i < tokens.size(); ++i) {
            const json::Value& a = tokens[i];
            const std::string where = "added_tokens[" + std::to_string(i) + "]";
            const json::Value& id = member(a, "id", where, what);
            const std::string& content = member(a, "content", where, what).as_string();
            if (!id.is_integer()) detail::fail(ErrorCode::format, what, ": ", where, ".id must be an integer");
            for (const char* key : {"single_word", "lstrip", "rstrip", "normalized"})
                if (detail::flag(a, key))
                    detail::fail(ErrorCode::unsupported, what, ": ", where, " ", detail::quote_file_string(content), " sets ",
                                 key, " (only tokens matched verbatim are supported)");
            const bool special = detail::flag(a, "special") || TokenizerBuilder::looks_special(content);
            builder.add_token(id.as_int(), content, special ? TokenKind::special : TokenKind::added, {"added_tokens", i, content});
        }
    }
    return builder.finish();
}

inline Tokenizer Tokenizer::from_tokenizer_json(const std::string& path) {
    MappedFile file(path);
    return from_tokenizer_json_text(file.view(), path);
}

inline Tokenizer Tokenizer::from_gguf(const gguf::File& file) {
    const std::string what = file.path();
    const std::string_view model = file.require_string("tokenizer.ggml.model");
    if (model != "gpt2")
        detail::fail(ErrorCode::unsupported, what, ": tokenizer.ggml.model is ", detail::quote_file_string(model),
                     " (only \"gpt2\", byte-level BPE, is implemented)");
    const std::string_view pre = file.get_string("tokenizer.ggml.pre", "");
    if (pre != "qwen2")
        detail::fail(ErrorCode::unsupported, what, ": tokenizer.ggml.pre is ", detail::quote_file_string(pre),
                     " (only the \"qwen2\" pre-tokenizer is implemented)");
    const gguf::Value& tokens = file.require("tokenizer.ggml.tokens");
    const gguf::Value& types = file.require("tokenizer.ggml.token_type");
    const gguf::Value& merges = file.require("tokenizer.ggml.merges");
    if (tokens.type != gguf::Type::array || tokens.element_type != gguf::Type::string)
        detail::fail(ErrorCode::format, what, ": tokenizer.ggml.tokens must be an array of strings");
    if (merges.type != gguf::Type::array || merges.element_type != gguf::Type::string)
        detail::fail(ErrorCode::format, what, ": tokenizer.ggml.merges must be an array of strings");
    if (types.type != gguf::Type::array || !types.elements || types.element_type == gguf::Type::f32 ||
        types.element_type == gguf::Type::f64 || types.element_type == gguf::Type::boolean)
        detail::fail(ErrorCode::format, what, ": tokenizer.ggml.token_type must be an array of integers");
    if (types.count != tokens.count)
        detail::fail(ErrorCode::format, what, ": tokenizer.ggml.token_type has ", types.count, " entries for ", tokens.count, " tokens");
    if (tokens.count > kMaxTokenId)
        detail::fail(ErrorCode::tokenizer, what, ": ", tokens.count, " tokens, over this library's limit of ", kMaxTokenId);

    enum : std::int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };
    TokenizerBuilder builder(what);
    builder.reserve(std::size_t(tokens.count));
    auto where = [&](std::size_t i) { return TokenizerBuilder::Where{"token", i, tokens.strings[i]}; };
    // vocabulary first, then merges, then added tokens, as tokenizer.json orders them
    for (std::size_t i = 0; i < tokens.strings.size(); ++i) {
        const std::int64_t type = types.integer_element(i);
        if (type == kNormal) builder.add_token(std::int64_t(i), tokens.strings[i], TokenKind::normal, where(i));
        else if (type != kControl && type != kUserDefined && type != kUnused)
            detail::fail(ErrorCode::unsupported, what, ": ", where(i).str(), " has token type ", type,
                         type == kUnknown || type == kByte ? " (unknown/byte tokens belong to SentencePiece vocabularies)" : "",
                         "; expected 1 (normal), 3 (control), 4 (user-defined) or 5 (unused)");
    }
    builder.resolve_byte_tokens();
    builder.reserve_merges(merges.strings.size());
    for (std::size_t rank = 0; rank < merges.strings.size(); ++rank) {
        std::string_view m = merges.strings[rank];
        // a single space separates the two tokens (llama.cpp searches from the second byte)
        std::size_t space = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
        if (space == std::string_view::npos)
            detail::fail(ErrorCode::tokenizer, what, ": merge ", rank, " ", detail::quote_file_string(m),
                         " is not two tokens separated by a space");
        builder.add_merge(m.substr(0, space), m.substr(space + 1), rank);
    }
    for (std::size_t i = 0; i < tokens.strings.size(); ++i) {
        const std::int64_t type = types.integer_element(i);
        if (type == kControl || type == kUserDefined)
            builder.add_token(std::int64_t(i), tokens.strings[i], type == kControl ? TokenKind::special : TokenKind::added, where(i));
    }
    builder.set_normalize_nfc(true);
    return builder.finish();
}

inline Tokenizer Tokenizer::load(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        const std::string json_path = (fs::path(path) / "tokenizer.json").string();
        if (!fs::exists(json_path, ec))
            detail::fail(ErrorCode::io, path, " is a folder without a tokenizer.json (pass the tokenizer.json or a .gguf file)");
        return from_tokenizer_json(json_path);
    }
    MappedFile file(path);
    if (file.size() >= 4 && file.view().substr(0, 4) == "GGUF") {
        gguf::File gguf_file(path);
        return from_gguf(gguf_file);
    }
    return from_tokenizer_json_text(file.view(), path);
}

}  // namespace qwen3
