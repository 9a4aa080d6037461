// Tokenizer loaders: a GGUF vocabulary written the way make_model.py (llama.cpp's converter) writes it
// gives the same tokenizer as tokenizer.json; load() picks the source by path; inconsistent or hostile
// files are refused with a specific error, and random damage never crashes.
#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <qwen3/format/gguf_writer.hpp>

#include "tokenizer_support.hpp"

using qwen3::ErrorCode;
using qwen3::TokenId;
using qwen3::Tokenizer;
namespace json = qwen3::json;

namespace {

// --- a GGUF holding the real vocabulary, as llama.cpp's converter writes it ---

bool looks_special(const std::string& s) { return s.size() >= 4 && s.starts_with("<|") && s.ends_with("|>"); }

std::string write_real_vocab_gguf(const test::TempDir& dir, std::size_t n_vocab) {
    const json::Value root = test::read_json(test::data_path("tokenizer/tokenizer.json"));
    std::vector<std::string> tokens(n_vocab);
    std::vector<std::int32_t> types(n_vocab, 5);  // unused
    for (const json::Member& m : root.at("model").at("vocab").as_object()) {
        tokens[std::size_t(m.value.as_int())] = m.key;
        types[std::size_t(m.value.as_int())] = 1;
    }
    for (const json::Value& a : root.at("added_tokens").as_array()) {
        const std::string& content = a.at("content").as_string();
        tokens[std::size_t(a.at("id").as_int())] = content;
        types[std::size_t(a.at("id").as_int())] = (a.at("special").as_bool() || looks_special(content)) ? 3 : 4;
    }
    for (std::size_t i = 0; i < n_vocab; ++i)
        if (types[i] == 5) tokens[i] = "[PAD" + std::to_string(i) + "]";
    std::vector<std::string> merges;
    for (const json::Value& m : root.at("model").at("merges").as_array())
        merges.push_back(m.as_array()[0].as_string() + " " + m.as_array()[1].as_string());
    qwen3::gguf::Writer w;
    w.set_string("general.architecture", "qwen3");
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", "qwen2");
    w.set_strings("tokenizer.ggml.tokens", std::vector<std::string_view>(tokens.begin(), tokens.end()));
    w.set_i32s("tokenizer.ggml.token_type", types);
    w.set_strings("tokenizer.ggml.merges", std::vector<std::string_view>(merges.begin(), merges.end()));
    w.set_u32("tokenizer.ggml.eos_token_id", 151645);
    w.set_u32("tokenizer.ggml.padding_token_id", 151643);
    w.set_u32("tokenizer.ggml.bos_token_id", 151643);
    w.set_bool("tokenizer.ggml.add_bos_token", false);
    const std::string path = dir.file("vocab.gguf");
    w.write(path);
    return path;
}

// --- a small hand-made tokenizer.json: the 256 byte tokens, three merges, two added tokens ---

json::Value small_tokenizer() {
    json::Object vocab;
    for (int b = 0; b < 256; ++b) {
        std::string piece;
        qwen3::detail::unicode::append_utf8(piece, qwen3::detail::bpe::kByteAlphabet.char_of_byte[std::size_t(b)]);
        vocab.push_back({piece, json::Value::integer(b)});
    }
    vocab.push_back({"Ġt", json::Value::integer(256)});
    vocab.push_back({"he", json::Value::integer(257)});
    vocab.push_back({"Ġthe", json::Value::integer(258)});
    json::Array merges;
    for (auto [a, b] : {std::pair{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}}) merges.push_back(json::Array{a, b});
    json::Value model;
    model.set("type", "BPE");
    model.set("dropout", nullptr);
    model.set("unk_token", nullptr);
    model.set("continuing_subword_prefix", "");
    model.set("end_of_word_suffix", "");
    model.set("fuse_unk", false);
    model.set("byte_fallback", false);
    model.set("ignore_merges", false);
    model.set("vocab", std::move(vocab));
    model.set("merges", std::move(merges));
    auto added = [](int id, const char* content, bool special) {
        json::Value a;
        a.set("id", json::Value::integer(id));
        a.set("content", content);
        for (const char* k : {"single_word", "lstrip", "rstrip", "normalized"}) a.set(k, false);
        a.set("special", special);
        return a;
    };
    json::Value split;
    split.set("type", "Split");
    json::Value pattern;
    pattern.set("Regex", std::string(qwen3::kQwen2SplitPattern));
    split.set("pattern", pattern);
    split.set("behavior", "Isolated");
    split.set("invert", false);
    json::Value byte_level;
    byte_level.set("type", "ByteLevel");
    byte_level.set("add_prefix_space", false);
    byte_level.set("trim_offsets", false);
    byte_level.set("use_regex", false);
    json::Value pre;
    pre.set("type", "Sequence");
    pre.set("pretokenizers", json::Array{split, byte_level});
    json::Value normalizer;
    normalizer.set("type", "NFC");
    json::Value root;
    root.set("version", "1.0");
    root.set("truncation", nullptr);
    root.set("padding", nullptr);
    root.set("added_tokens", json::Array{added(259, "<|im_end|>", true), added(260, "<think>", false)});
    root.set("normalizer", normalizer);
    root.set("pre_tokenizer", pre);
    root.set("post_processor", byte_level);
    root.set("decoder", byte_level);
    root.set("model", model);
    return root;
}

json::Value& model_of(json::Value& root) { return const_cast<json::Value&>(root.at("model")); }
json::Object& vocab_of(json::Value& root) { return const_cast<json::Value&>(model_of(root).at("vocab")).as_object(); }
json::Array& merges_of(json::Value& root) { return const_cast<json::Value&>(model_of(root).at("merges")).as_array(); }
json::Array& added_of(json::Value& root) { return const_cast<json::Value&>(root.at("added_tokens")).as_array(); }

bool refuses(const std::string& text, ErrorCode code, const std::string& needle) {
    std::string message;
    bool ok = test::throws_error([&] { Tokenizer::from_tokenizer_json_text(text, "small.json"); }, code, needle, &message);
    if (!ok) MESSAGE("got: ", message.empty() ? std::string("no error") : message);
    return ok;
}

bool refuses(const std::function<void(json::Value&)>& damage, ErrorCode code, const std::string& needle) {
    json::Value root = small_tokenizer();
    damage(root);
    return refuses(json::dump(root), code, needle);
}

using GgufEdit = std::function<void(qwen3::gguf::Writer&, std::vector<std::string>&, std::vector<std::int32_t>&, std::vector<std::string>&)>;

// A GGUF of the small vocabulary, changed by `edit` before the arrays are written and by `after` at the end.
std::string small_gguf(const test::TempDir& dir, const GgufEdit& edit,
                       const std::function<void(qwen3::gguf::Writer&)>& after = [](qwen3::gguf::Writer&) {}) {
    std::vector<std::string> tokens;
    std::vector<std::int32_t> types;
    for (int b = 0; b < 256; ++b) {
        std::string piece;
        qwen3::detail::unicode::append_utf8(piece, qwen3::detail::bpe::kByteAlphabet.char_of_byte[std::size_t(b)]);
        tokens.push_back(piece);
        types.push_back(1);
    }
    for (const char* t : {"Ġt", "he", "Ġthe"}) tokens.push_back(t), types.push_back(1);
    tokens.push_back("<|im_end|>"), types.push_back(3);
    tokens.push_back("<think>"), types.push_back(4);
    std::vector<std::string> merges = {"Ġ t", "h e", "Ġt he"};
    qwen3::gguf::Writer w;
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", "qwen2");
    edit(w, tokens, types, merges);
    w.set_strings("tokenizer.ggml.tokens", std::vector<std::string_view>(tokens.begin(), tokens.end()));
    w.set_i32s("tokenizer.ggml.token_type", types);
    w.set_strings("tokenizer.ggml.merges", std::vector<std::string_view>(merges.begin(), merges.end()));
    after(w);
    const std::string path = dir.file("small.gguf");
    w.write(path);
    return path;
}

}  // namespace

TEST_CASE("tokenizer: a GGUF vocabulary as llama.cpp's converter writes it gives the tokenizer.json results") {
    test::TempDir dir;
    const std::string path = write_real_vocab_gguf(dir, 151936);  // padded to the embedding rows, as real files
    qwen3::gguf::File file(path);
    const Tokenizer from_gguf = Tokenizer::from_gguf(file);
    const Tokenizer& from_json = test::qwen3_tokenizer();
    CHECK(from_gguf.vocab_size() == from_json.vocab_size());
    for (TokenId id = 0; id < TokenId(from_json.vocab_size()) + 300; ++id) {
        INFO("id ", id);
        REQUIRE(from_gguf.kind(id) == from_json.kind(id));
        REQUIRE(from_gguf.id_to_piece(id) == from_json.id_to_piece(id));
        REQUIRE(from_gguf.token_bytes(id) == from_json.token_bytes(id));
    }
    int passed = 0, total = 0;
    for (const std::string file_name : {"tokenizer/cases.jsonl", "tokenizer/cases_extra.jsonl"}) {
        for (const json::Value& c : test::read_jsonl(file_name)) {
            if (const json::Value* kind = c.find("kind"); kind && kind->as_string() != "encode") continue;
            const std::string& text = c.at("text").as_string();
            const std::vector<TokenId> expected = test::ids_of(c.at("ids"));
            const std::vector<TokenId> got = from_gguf.encode(text);
            INFO(json::quote(text.substr(0, 200)));
            CHECK(test::ids_difference(got, expected) == "");
            CHECK(from_gguf.decode(expected, true) == from_json.decode(expected, true));
            passed += got == expected;
            ++total;
        }
    }
    MESSAGE(passed, " of ", total, " reference cases equal from GGUF");
    CHECK(from_gguf.well_known().im_end == 151645);
    CHECK(from_gguf.well_known().think_close == 151668);
}

TEST_CASE("tokenizer: the micro model's 4096-token GGUF vocabulary loads and round-trips") {
    qwen3::gguf::File file(test::data_path("qwen3-micro-f32.gguf"));
    const Tokenizer tok = Tokenizer::from_gguf(file);
    CHECK(tok.vocab_size() == 4096);
    CHECK(tok.well_known().im_end == -1);
    for (const json::Value& c : test::read_jsonl("tokenizer/cases.jsonl")) {
        const std::string& text = c.at("text").as_string();
        const std::vector<TokenId> ids = tok.encode(text);
        for (TokenId id : ids) REQUIRE((id >= 0 && id < 4096));
        // no added tokens in this vocabulary: the whole text is one stretch
        CHECK(tok.decode(ids) == qwen3::detail::unicode::nfc(text));
    }
    // the first 4096 ids are the same tokens as in the full vocabulary
    for (TokenId id = 0; id < 4096; ++id) REQUIRE(tok.id_to_piece(id) == test::qwen3_tokenizer().id_to_piece(id));
}

TEST_CASE("tokenizer: load() takes a tokenizer.json, a GGUF (by its magic) or a folder") {
    test::TempDir dir;
    const std::string gguf_path = write_real_vocab_gguf(dir, 151669);
    const Tokenizer a = Tokenizer::load(test::data_path("tokenizer/tokenizer.json"));
    const Tokenizer b = Tokenizer::load(test::data_path("tokenizer"));
    const Tokenizer c = Tokenizer::load(gguf_path);
    const std::string text = "<|im_start|>user\nHello, wörld! 你好<|im_end|>";
    CHECK(a.encode(text) == test::qwen3_tokenizer().encode(text));
    CHECK(b.encode(text) == a.encode(text));
    CHECK(c.encode(text) == a.encode(text));
    CHECK(test::throws_error([&] { Tokenizer::load(dir.path()); }, ErrorCode::io, "without a tokenizer.json"));
    CHECK(test::throws_error([&] { Tokenizer::load(dir.file("missing.json")); }, ErrorCode::io, "missing.json"));
    test::write_file(dir.file("garbage.json"), "GGU");
    CHECK(test::throws_error([&] { Tokenizer::load(dir.file("garbage.json")); }, ErrorCode::format, "invalid JSON"));
    test::write_file(dir.file("bad.gguf"), "GGUF\x03");
    CHECK(test::throws_error([&] { Tokenizer::load(dir.file("bad.gguf")); }, ErrorCode::format, "truncated"));
}

TEST_CASE("tokenizer: the small hand-made tokenizer.json and its GGUF twin encode by merge rank") {
    const Tokenizer tok = Tokenizer::from_tokenizer_json_text(json::dump(small_tokenizer()));
    // " the" merges Ġ+t (rank 0), h+e (rank 1), then Ġt+he (rank 2)
    CHECK(tok.encode(" the") == std::vector<TokenId>{258});
    CHECK(tok.encode("the<|im_end|> the<think>") == std::vector<TokenId>{'t', 257, 259, 258, 260});
    CHECK(tok.decode(tok.encode("the<|im_end|> the<think>"), true) == "the the<think>");
    test::TempDir dir;
    qwen3::gguf::File file(small_gguf(dir, [](auto&, auto&, auto&, auto&) {}));
    const Tokenizer twin = Tokenizer::from_gguf(file);
    for (const char* s : {" the", "the<|im_end|> the<think>", "héllo wörld 123 <think>"}) CHECK(twin.encode(s) == tok.encode(s));
}

TEST_CASE("tokenizer: inconsistent or unsupported tokenizer.json files are refused with what and where") {
    // the baseline loads
    CHECK_NOTHROW(Tokenizer::from_tokenizer_json_text(json::dump(small_tokenizer())));
    CHECK(refuses([](json::Value& r) { merges_of(r).push_back(json::Array{"Ġ", "zz"}); }, ErrorCode::tokenizer,
                  "merge 3 \"\\xc4\\xa0 zz\" names \"zz\", which is not in the vocabulary"));
    CHECK(refuses([](json::Value& r) { merges_of(r).push_back(json::Array{"t", "h"}); }, ErrorCode::tokenizer,
                  "makes \"th\", which is not in the vocabulary"));
    CHECK(refuses([](json::Value& r) { merges_of(r).push_back(json::Array{"h", "e"}); }, ErrorCode::tokenizer,
                  "repeats an earlier merge"));
    CHECK(refuses([](json::Value& r) { merges_of(r).push_back("Ġ t x"); }, ErrorCode::tokenizer, "not two tokens"));
    CHECK(refuses([](json::Value& r) { merges_of(r).push_back(json::Value::integer(3)); }, ErrorCode::format,
                  "merge 3 must be a string or an array of two strings"));
    CHECK(refuses([](json::Value& r) { vocab_of(r).push_back({"xy", json::Value::integer(5)}); }, ErrorCode::tokenizer,
                  "vocab entry \"xy\" reuses id 5"));
    CHECK(refuses([](json::Value& r) { vocab_of(r).push_back({"xy", json::Value::integer(1 << 22)}); }, ErrorCode::tokenizer,
                  "id 4194304 is outside"));
    CHECK(refuses([](json::Value& r) { vocab_of(r).push_back({"xy", json::Value::integer(-1)}); }, ErrorCode::tokenizer,
                  "id -1 is outside"));
    // holes in the numbering are allowed, but not so many that a short file claims megabytes
    CHECK_NOTHROW(Tokenizer::from_tokenizer_json_text([] {
        json::Value r = small_tokenizer();
        vocab_of(r).push_back({"xy", json::Value::integer(60000)});
        return json::dump(r);
    }()));
    CHECK(refuses([](json::Value& r) { vocab_of(r).push_back({"xy", json::Value::integer(70000)}); }, ErrorCode::tokenizer,
                  "id 70000 is outside 0..66059"));
    CHECK(refuses([](json::Value& r) { vocab_of(r).push_back({"xy", "7"}); }, ErrorCode::format, "must have an integer id"));
    CHECK(refuses([](json::Value& r) { vocab_of(r).push_back({"", json::Value::integer(300)}); }, ErrorCode::tokenizer,
                  "is an empty string"));
    CHECK(refuses([](json::Value& r) { vocab_of(r).push_back({std::string(2000, 'a'), json::Value::integer(300)}); },
                  ErrorCode::tokenizer, "over this library's limit of 1024"));
    CHECK(refuses([](json::Value& r) { vocab_of(r).erase(vocab_of(r).begin()); }, ErrorCode::tokenizer,
                  "no token for byte 0x00"));
    CHECK(refuses([](json::Value& r) { model_of(r).set("type", "WordPiece"); }, ErrorCode::unsupported, "model type \"WordPiece\""));
    CHECK(refuses([](json::Value& r) { model_of(r).set("dropout", json::Value(json::Number{"0.1", 0.1, false})); },
                  ErrorCode::unsupported, "dropout"));
    CHECK(refuses([](json::Value& r) { model_of(r).set("ignore_merges", true); }, ErrorCode::unsupported, "ignore_merges"));
    CHECK(refuses([](json::Value& r) { json::Value n; n.set("type", "NFKC"); r.set("normalizer", n); }, ErrorCode::unsupported,
                  "the normalizer is NFKC"));
    CHECK(refuses(
        [](json::Value& r) {
            json::Value& pre = const_cast<json::Value&>(r.at("pre_tokenizer"));
            json::Value& split = const_cast<json::Value&>(pre.at("pretokenizers")).as_array()[0];
            json::Value pattern;
            pattern.set("Regex", "\\s+");
            split.set("pattern", pattern);
        },
        ErrorCode::unsupported, "the Split pattern"));
    CHECK(refuses([](json::Value& r) { r.set("decoder", nullptr); }, ErrorCode::unsupported, "the decoder is null"));
    CHECK(refuses([](json::Value& r) { json::Value p; p.set("type", "TemplateProcessing"); r.set("post_processor", p); },
                  ErrorCode::unsupported, "the post_processor is TemplateProcessing"));
    CHECK(refuses([](json::Value& r) { added_of(r)[0].set("lstrip", true); }, ErrorCode::unsupported, "sets lstrip"));
    CHECK(refuses([](json::Value& r) { added_of(r)[0].set("normalized", true); }, ErrorCode::unsupported, "sets normalized"));
    CHECK(refuses([](json::Value& r) { added_of(r)[1].set("id", json::Value::integer(257)); }, ErrorCode::tokenizer,
                  "added_tokens[1] \"<think>\" reuses id 257"));
    CHECK(refuses([](json::Value& r) { added_of(r)[1].set("content", "he"); }, ErrorCode::tokenizer, "repeats the string of token 257"));
    CHECK(refuses([](json::Value& r) { added_of(r)[1].set("content", std::string(300, '<')); }, ErrorCode::tokenizer,
                  "over this library's limit of 256"));
    CHECK(refuses([](json::Value& r) { r.set("added_tokens", "none"); }, ErrorCode::format, "added_tokens must be an array"));
    // text-level damage
    std::string text = json::dump(small_tokenizer());
    CHECK(refuses(text.substr(0, text.size() / 2), ErrorCode::format, "invalid JSON"));
    std::string twice = text;
    twice.replace(twice.find("\"he\":257"), 8, "\"he\":257,\"he\":300");
    CHECK(refuses(twice, ErrorCode::tokenizer, "vocab entry \"he\" repeats the string of token 257"));
    CHECK(refuses(std::string(100000, '[') + std::string(100000, ']'), ErrorCode::format, "nesting deeper"));
    CHECK(refuses("[1,2,3]", ErrorCode::format, "must be an object"));
}

TEST_CASE("tokenizer: inconsistent or unsupported GGUF tokenizer metadata is refused") {
    test::TempDir dir;
    auto refuses_gguf = [&](GgufEdit edit, ErrorCode code, const std::string& needle,
                            std::function<void(qwen3::gguf::Writer&)> after = [](qwen3::gguf::Writer&) {}) {
        std::string path = small_gguf(dir, edit, after);
        std::string message;
        bool ok = test::throws_error([&] { Tokenizer::from_gguf(qwen3::gguf::File(path)); }, code, needle, &message);
        if (!ok) MESSAGE("got: ", message.empty() ? std::string("no error") : message);
        return ok;
    };
    CHECK(refuses_gguf([](auto& w, auto&, auto&, auto&) { w.set_string("tokenizer.ggml.model", "llama"); }, ErrorCode::unsupported,
                       "tokenizer.ggml.model is \"llama\""));
    CHECK(refuses_gguf([](auto& w, auto&, auto&, auto&) { w.set_string("tokenizer.ggml.pre", "llama-bpe"); }, ErrorCode::unsupported,
                       "tokenizer.ggml.pre is \"llama-bpe\""));
    CHECK(refuses_gguf([](auto&, auto&, auto& types, auto&) { types.pop_back(); }, ErrorCode::format, "has 260 entries for 261 tokens"));
    CHECK(refuses_gguf([](auto&, auto&, auto& types, auto&) { types[5] = 6; }, ErrorCode::unsupported, "has token type 6"));
    CHECK(refuses_gguf([](auto&, auto&, auto&, auto& merges) { merges.push_back("Ġzz"); }, ErrorCode::tokenizer,
                       "is not two tokens separated by a space"));
    CHECK(refuses_gguf([](auto&, auto&, auto&, auto& merges) { merges.push_back("Ġ q"); }, ErrorCode::tokenizer,
                       "makes \"\\xc4\\xa0q\", which is not in the vocabulary"));
    CHECK(refuses_gguf([](auto&, auto& tokens, auto&, auto&) { tokens[300 - 40] = std::string("\xff\xfe"); }, ErrorCode::tokenizer,
                       "is not valid UTF-8"));
    CHECK(refuses_gguf([](auto&, auto& tokens, auto&, auto&) { tokens[257] = "Ġt"; }, ErrorCode::tokenizer, "repeats the string"));
    CHECK(refuses_gguf([](auto&, auto&, auto&, auto&) {}, ErrorCode::format, "token_type must be an array of integers",
                       [](qwen3::gguf::Writer& w) { w.set_string("tokenizer.ggml.token_type", "x"); }));
    CHECK(refuses_gguf([](auto&, auto&, auto&, auto&) {}, ErrorCode::format, "tokens must be an array of strings",
                       [](qwen3::gguf::Writer& w) { w.set_i32s("tokenizer.ggml.tokens", std::vector<std::int32_t>{1, 2}); }));
    CHECK(refuses_gguf([](auto& w, auto&, auto&, auto&) { w.set_u32("tokenizer.ggml.merges", 3); }, ErrorCode::format,
                       "merges must be an array of strings", [](qwen3::gguf::Writer& w) { w.set_u32("tokenizer.ggml.merges", 3); }));
}

TEST_CASE("tokenizer: randomly damaged tokenizer.json and GGUF files load or throw qwen3::Error, never crash") {
    const std::string json_text = json::dump(small_tokenizer());
    test::TempDir dir;
    const std::string gguf_bytes = test::read_file(small_gguf(dir, [](auto&, auto&, auto&, auto&) {}));
    std::mt19937_64 rng(7);
    int loaded = 0, refused = 0;
    for (int round = 0; round < 600; ++round) {
        const bool gguf = round % 2 == 1;
        std::string bytes = gguf ? gguf_bytes : json_text;
        const int edits = 1 + int(rng() % 4);
        for (int e = 0; e < edits; ++e) {
            std::size_t at = rng() % bytes.size();
            switch (rng() % 4) {
                case 0: bytes[at] = char(rng()); break;
                case 1: bytes.erase(at, std::min<std::size_t>(bytes.size() - at, 1 + rng() % 16)); break;
                case 2: bytes.insert(at, bytes.substr(rng() % bytes.size(), 1 + rng() % 16)); break;
                default: bytes[at] = "0123456789\"[]{},:-"[rng() % 18]; break;
            }
            if (bytes.empty()) bytes.assign(1, '{');
        }
        try {
            std::optional<Tokenizer> tok;
            if (gguf) {
                test::write_file(dir.file("damaged.gguf"), bytes);
                tok.emplace(Tokenizer::from_gguf(qwen3::gguf::File(dir.file("damaged.gguf"))));
            } else {
                tok.emplace(Tokenizer::from_tokenizer_json_text(bytes));
            }
            const std::vector<TokenId> ids = tok->encode("the <|im_end|> théâtre 123 <think>");
            for (TokenId id : ids) CHECK(tok->kind(id) != qwen3::TokenKind::none);
            ++loaded;
        } catch (const qwen3::Error&) {
            ++refused;
        }
    }
    MESSAGE(loaded, " damaged files still loaded, ", refused, " refused");
    CHECK(refused > 100);
}
