// Fuzz target: a GGUF file's bytes, through everything that reads one.
//
//   gguf::File          every view it hands out lies inside the file; tensors inside the data
//                       section, disjoint; array elements readable
//   gguf::Writer        what the reader accepted, copied by the writer, reads back the same
//   Checkpoint::open    hyperparameters; then Model<FuzzConfig> (weight binding) and a short
//                       forward pass on whatever weights the file holds
//   Tokenizer::from_gguf  and, when it loads, an encode/decode round trip
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <qwen3/format/checkpoint.hpp>
#include <qwen3/format/gguf.hpp>
#include <qwen3/format/gguf_writer.hpp>
#include <qwen3/model.hpp>
#include <qwen3/tokenizer.hpp>

#include "fuzz_support.hpp"
#include "seeds.hpp"

namespace qwen3_fuzz::gguf_target {

namespace gguf = qwen3::gguf;

inline bool inside(const std::byte* p, std::uint64_t n, const std::byte* begin, const std::byte* end) {
    return p >= begin && p <= end && n <= std::uint64_t(end - p);
}

// Every view points into the mapping; tensors lie in the data section without overlapping.
inline void check_views(const gguf::File& f) {
    const std::byte* begin = f.mapped().data();
    const std::byte* end = begin + f.mapped().size();
    for (const auto& [key, v] : f.metadata()) {
        check(key.size() <= gguf::kMaxKeyLength, "metadata key over the length limit");
        check(inside(reinterpret_cast<const std::byte*>(key.data()), key.size(), begin, end), "metadata key outside the file");
        if (v.type == gguf::Type::string)
            check(inside(reinterpret_cast<const std::byte*>(v.string_value.data()), v.string_value.size(), begin, end),
                  "metadata string outside the file");
        if (v.type != gguf::Type::array) continue;
        check(v.count <= gguf::kMaxArrayLength, "array over the length limit");
        if (v.elements) {
            check(inside(v.elements, v.count * gguf::scalar_size(v.element_type), begin, end), "array elements outside the file");
            const bool integer = v.element_type != gguf::Type::f32 && v.element_type != gguf::Type::f64;
            if (integer && v.count > 0) {
                (void)v.integer_element(0);
                (void)v.integer_element(v.count - 1);
            }
        }
        if (v.element_type == gguf::Type::string) {
            check(v.strings.size() == v.count, "string array count differs from its views");
            for (std::string_view s : v.strings)
                check(inside(reinterpret_cast<const std::byte*>(s.data()), s.size(), begin, end), "array string outside the file");
        }
    }
    const std::byte* data = begin + f.data_offset();
    std::vector<const gguf::TensorInfo*> order;
    for (const gguf::TensorInfo& t : f.tensors()) {
        check(t.data >= data && inside(t.data, t.bytes, begin, end), "tensor ", t.name, " outside the data section");
        check(t.bytes == qwen3::row_bytes(t.type, t.shape.cols()) * t.shape.rows(),
              "tensor ", t.name, " byte count differs from its shape");
        check(f.find_tensor(t.name) == &t, "find_tensor does not find ", t.name);
        order.push_back(&t);
    }
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->data < b->data; });
    for (std::size_t i = 1; i < order.size(); ++i)
        check(order[i - 1]->data + order[i - 1]->bytes <= order[i]->data || order[i - 1]->bytes == 0,
              "tensors ", order[i - 1]->name, " and ", order[i]->name, " overlap");
}

inline bool same_value(const gguf::Value& a, const gguf::Value& b) {
    if (a.type != b.type) return false;
    switch (a.type) {
        case gguf::Type::string: return a.string_value == b.string_value;
        case gguf::Type::array:
            if (a.element_type != b.element_type || a.count != b.count) return false;
            if (a.elements)
                return b.elements && std::equal(a.elements, a.elements + a.count * gguf::scalar_size(a.element_type), b.elements);
            return a.strings == b.strings;
        case gguf::Type::f32: case gguf::Type::f64:
            return std::memcmp(&a.float_value, &b.float_value, sizeof(double)) == 0;
        default: return a.uint_value == b.uint_value && a.int_value == b.int_value;
    }
}

// The writer reproduces what the reader accepted: same metadata in the same order, same tensors.
inline void check_rewrite(const gguf::File& f) {
    gguf::Writer w;
    std::vector<std::string_view> copied;
    for (const auto& [key, v] : f.metadata()) {
        if (v.type == gguf::Type::array && v.element_type == gguf::Type::array) continue;  // the writer does not copy these
        w.copy_value(key, v);
        copied.push_back(key);
    }
    for (const gguf::TensorInfo& t : f.tensors()) w.add_tensor(t.name, t.type, t.shape, std::span(t.data, t.bytes));
    static ScratchFile copy;
    copy.write(w.to_bytes());
    const gguf::File g(copy.path());
    check(g.metadata().size() == copied.size(), "rewritten file has ", g.metadata().size(), " keys, expected ", copied.size());
    for (std::size_t i = 0; i < copied.size(); ++i) {
        check(g.metadata()[i].first == copied[i], "rewritten key ", i, " differs");
        check(same_value(*f.find(copied[i]), g.metadata()[i].second), "rewritten value of ", show(copied[i]), " differs");
    }
    check(g.tensors().size() == f.tensors().size(), "rewritten file has another tensor count");
    for (std::size_t i = 0; i < f.tensors().size(); ++i) {
        const gguf::TensorInfo &a = f.tensors()[i], &b = g.tensors()[i];
        check(a.name == b.name && a.type == b.type && a.shape == b.shape && a.bytes == b.bytes &&
                  std::equal(a.data, a.data + a.bytes, b.data),
              "rewritten tensor ", show(a.name), " differs");
    }
}

inline void check_model(const std::string& path) {
    qwen3::Model<FuzzConfig> model(qwen3::Checkpoint::open(path));
    static const auto pool = std::make_shared<qwen3::ThreadPool>(1);
    qwen3::Session<FuzzConfig> session(model, pool);
    const std::int32_t prompt[] = {1, FuzzConfig::vocab - 1, 7};
    session.eval(prompt);
    session.eval(3);
}

inline void check_tokenizer(const gguf::File& f) {
    const qwen3::Tokenizer tok = qwen3::Tokenizer::from_gguf(f);
    const std::string text = "Hello <|im_start|>w\xC3\xB6rld \xE2\x80\x8B\n\n  x";
    const std::vector<qwen3::TokenId> ids = tok.encode(text);
    for (qwen3::TokenId id : ids) check(tok.kind(id) != qwen3::TokenKind::none, "encode produced id ", id, " that names no token");
    const std::string plain = tok.decode(tok.encode_plain(text));
    check(reference_valid_utf8(plain), "decode produced invalid UTF-8");
}

void run(const std::uint8_t* data, std::size_t size) {
    static ScratchFile file;
    file.write(std::string_view(reinterpret_cast<const char*>(data), size));
    std::unique_ptr<gguf::File> f;
    try {
        f = std::make_unique<gguf::File>(file.path());
    } catch (const qwen3::Error&) {
        return;  // refused: nothing more reads it
    }
    check_views(*f);
    try {
        check_rewrite(*f);
    } catch (const qwen3::Error& e) {
        finding("the writer or reader refused a copy of an accepted file: ", e.what());
    }
    try {
        check_model(file.path());
    } catch (const qwen3::Error&) {
    }
    try {
        check_tokenizer(*f);
    } catch (const qwen3::Error&) {
    }
}

}  // namespace qwen3_fuzz::gguf_target

#ifndef QWEN3_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    qwen3_fuzz::gguf_target::run(data, size);
    return 0;
}
#endif
