// Malformed and hostile GGUF files: each is refused with the specific ErrorCode and a message that
// names the file and the problem; none crashes, hangs or allocates by an unchecked count.
//
// Valid files come from qwen3::gguf::Writer; broken ones are those files cut short or corrupted byte
// by byte, or headers written field by field (GgufBytes) where a field must hold an impossible value.
#include <doctest/doctest.h>

#include <cstring>
#include <limits>

#include <qwen3/format/gguf.hpp>
#include <qwen3/format/gguf_writer.hpp>

#include "support.hpp"

using qwen3::DType;
using qwen3::ErrorCode;
namespace gguf = qwen3::gguf;

namespace {

// A GGUF byte stream written field by field (little-endian, as the format is).
struct GgufBytes {
    std::string out;

    GgufBytes& raw(std::string_view s) { return out.append(s), *this; }
    GgufBytes& u8(std::uint8_t v) { return out.append(reinterpret_cast<const char*>(&v), 1), *this; }
    GgufBytes& u32(std::uint32_t v) { return out.append(reinterpret_cast<const char*>(&v), 4), *this; }
    GgufBytes& u64(std::uint64_t v) { return out.append(reinterpret_cast<const char*>(&v), 8), *this; }
    GgufBytes& str(std::string_view s) { return u64(s.size()).raw(s); }
    GgufBytes& header(std::uint64_t tensors, std::uint64_t kvs, std::uint32_t version = 3) {
        return raw("GGUF").u32(version).u64(tensors).u64(kvs);
    }
    GgufBytes& kv_u32(std::string_view key, std::uint32_t v) { return str(key).u32(std::uint32_t(gguf::Type::u32)).u32(v); }
    GgufBytes& kv_string(std::string_view key, std::string_view v) {
        return str(key).u32(std::uint32_t(gguf::Type::string)).str(v);
    }
    // dims fastest first, as GGUF stores them
    GgufBytes& tensor(std::string_view name, std::initializer_list<std::uint64_t> dims, std::uint32_t type,
                      std::uint64_t offset) {
        str(name).u32(std::uint32_t(dims.size()));
        for (std::uint64_t d : dims) u64(d);
        return u32(type).u64(offset);
    }
    GgufBytes& pad(std::size_t alignment = 32) { return out.append((alignment - out.size() % alignment) % alignment, '\0'), *this; }
    GgufBytes& zeros(std::size_t n) { return out.append(n, '\0'), *this; }
};

constexpr std::uint64_t kHuge = std::uint64_t(1) << 63;

// Writes `bytes` to a file and opens it as GGUF, expecting Error(code) whose message contains
// `needle` and the file's path.
void check_rejects(const std::string& bytes, ErrorCode code, const std::string& needle) {
    test::TempDir dir;
    const std::string path = dir.file("bad.gguf");
    test::write_file(path, bytes);
    std::string msg;
    bool ok = test::throws_error([&] { gguf::File f(path); }, code, needle, &msg);
    CHECK_MESSAGE(ok, "expected ", qwen3::to_string(code), " containing '", needle, "', got: ",
                  msg.empty() ? std::string("no qwen3::Error") : msg);
    CHECK_MESSAGE(msg.find(path) != std::string::npos, "message does not name the file: ", msg);
}

gguf::File open_bytes(const test::TempDir& dir, const std::string& bytes) {
    const std::string path = dir.file("file.gguf");
    test::write_file(path, bytes);
    return gguf::File(path);
}

// A small valid file with every kind of metadata and two tensors. The last tensor is 32 bytes, a
// whole alignment unit, so the file ends exactly where its data ends: every shorter prefix is cut.
std::string small_valid_file() {
    gguf::Writer w;
    w.set_string("general.architecture", "qwen3");
    w.set_u32("qwen3.block_count", 1);
    w.set_i32("test.i32", -5);
    w.set_u64("test.u64", 1ull << 40);
    w.set_f32("test.f32", 0.5f);
    w.set_f64("test.f64", -2.25);
    w.set_bool("test.bool", true);
    w.set_strings("test.strings", {"a", "bc", ""});
    const std::int32_t ints[] = {1, -2, 3};
    w.set_i32s("test.i32s", ints);
    const float floats[] = {0.25f, 0.5f};
    w.set_f32s("test.f32s", floats);
    std::vector<std::byte> q(2 * 34, std::byte{1});  // Q8_0: 2 rows of one 32-element block
    w.add_tensor("q", DType::q8_0, qwen3::make_shape(2, 32), q);
    std::vector<float> f(8, 1.5f);
    w.add_tensor("w", DType::f32, qwen3::make_shape(2, 4), std::as_bytes(std::span<const float>(f)));
    return w.to_bytes();
}

// Offset of the first occurrence of `needle` (which the caller knows is unique) in `bytes`.
std::size_t find_unique(const std::string& bytes, std::string_view needle) {
    std::size_t at = bytes.find(needle);
    REQUIRE(at != std::string::npos);
    REQUIRE(bytes.find(needle, at + 1) == std::string::npos);
    return at;
}

void put_u64_at(std::string& bytes, std::size_t at, std::uint64_t v) { std::memcpy(bytes.data() + at, &v, 8); }

// Byte offsets of tensor "q"'s and "w"'s table entries in small_valid_file(): name length, name,
// rank, dims..., type, offset.
struct TensorEntry {
    std::size_t rank, dims, type, offset;
};
TensorEntry entry_of(const std::string& bytes, std::string_view name, std::uint32_t rank) {
    std::string key(8, '\0');
    std::uint64_t n = name.size();
    std::memcpy(key.data(), &n, 8);
    key += name;
    key.append("\x02\0\0\0", 4);
    std::size_t at = find_unique(bytes, key) + 8 + name.size();
    return {at, at + 4, at + 4 + 8 * rank, at + 4 + 8 * rank + 4};
}

}  // namespace

TEST_CASE("gguf: the writer's small file reads back exactly") {
    test::TempDir dir;
    gguf::File f = open_bytes(dir, small_valid_file());
    CHECK(f.version() == 3);
    CHECK(f.require_string("general.architecture") == "qwen3");
    CHECK(f.require_uint("qwen3.block_count") == 1);
    CHECK(f.require("test.i32").int_value == -5);
    CHECK(f.require_uint("test.u64") == (1ull << 40));
    CHECK(f.require_float("test.f32") == 0.5);
    CHECK(f.require_float("test.f64") == -2.25);
    CHECK(f.get_bool("test.bool", false));
    const auto& strings = f.require("test.strings").strings;
    REQUIRE(strings.size() == 3);
    CHECK(strings[1] == "bc");
    CHECK(strings[2].empty());
    const gguf::Value& ints = f.require("test.i32s");
    CHECK(ints.count == 3);
    CHECK(ints.integer_element(1) == -2);
    CHECK(test::throws_error([&] { (void)ints.integer_element(3); }, ErrorCode::invalid_argument, "element 3"));
    CHECK(test::throws_error([&] { (void)f.require("test.f32s").integer_element(0); }, ErrorCode::invalid_argument,
                             "not an integer array"));
    REQUIRE(f.tensors().size() == 2);
    const gguf::TensorInfo* q = f.find_tensor("q");
    REQUIRE(q);
    CHECK(q->type == DType::q8_0);
    CHECK(q->shape == qwen3::make_shape(2, 32));
    CHECK(q->bytes == 68);
    const gguf::TensorInfo* w = f.find_tensor("w");
    REQUIRE(w);
    CHECK(w->offset == 96);  // 68 bytes of q padded to 96
    CHECK(w->data + w->bytes == f.mapped().data() + f.mapped().size());
    float first;
    std::memcpy(&first, w->data, 4);
    CHECK(first == 1.5f);
    CHECK(test::throws_error([&] { (void)f.require_uint("test.f32"); }, ErrorCode::format, "test.f32 must be a non-negative integer"));
    CHECK(test::throws_error([&] { (void)f.require("absent.key"); }, ErrorCode::format, "absent.key is missing"));
}

TEST_CASE("gguf: files too short for the magic, or with another magic, are not GGUF") {
    check_rejects("", ErrorCode::format, "not a GGUF file (0 bytes");
    check_rejects("GGU", ErrorCode::format, "not a GGUF file (3 bytes");
    check_rejects(std::string("GGML\3\0\0\0", 8) + std::string(16, '\0'), ErrorCode::format,
                  "not a GGUF file (it starts with \"GGML\"");
    check_rejects(std::string("\x89PNG\r\n\x1a\n", 8), ErrorCode::format, "it starts with \"\\x89PNG\"");
    check_rejects("GGUF", ErrorCode::format, "truncated GGUF: version at byte 4");
}

TEST_CASE("gguf: versions other than 2 and 3 are refused by name") {
    check_rejects(GgufBytes{}.header(0, 0, 1).out, ErrorCode::unsupported, "GGUF version 1 is not supported");
    check_rejects(GgufBytes{}.header(0, 0, 0x03000000).out, ErrorCode::unsupported, "big-endian GGUF files are not supported");
    check_rejects(GgufBytes{}.header(0, 0, 4).out, ErrorCode::unsupported, "unknown GGUF version 4");
    check_rejects(GgufBytes{}.header(0, 0, 0).out, ErrorCode::unsupported, "unknown GGUF version 0");
    test::TempDir dir;
    CHECK(open_bytes(dir, GgufBytes{}.header(0, 0, 2).out).version() == 2);
}

TEST_CASE("gguf: every prefix of a valid file is refused as truncated") {
    const std::string full = small_valid_file();
    test::TempDir dir;
    const std::string path = dir.file("prefix.gguf");
    CHECK_NOTHROW(open_bytes(dir, full));
    int failures = 0;
    for (std::size_t n = 0; n < full.size(); ++n) {
        test::write_file(path, std::string_view(full).substr(0, n));
        std::string msg;
        bool ok = test::throws_error([&] { gguf::File f(path); }, ErrorCode::format, "", &msg);
        bool names_problem = msg.find("truncated") != std::string::npos || msg.find("not a GGUF file") != std::string::npos;
        if (!ok || !names_problem) {
            ++failures;
            MESSAGE("prefix of ", n, " bytes: ", msg.empty() ? std::string("accepted") : msg);
        }
    }
    CHECK(failures == 0);
}

TEST_CASE("gguf: header counts that cannot fit are refused before anything is allocated") {
    check_rejects(GgufBytes{}.header(kHuge, 0).out, ErrorCode::format, "tensor count 9223372036854775808 is over the limit of 65536");
    check_rejects(GgufBytes{}.header(0, kHuge).out, ErrorCode::format, "metadata count 9223372036854775808 is over the limit of 65536");
    check_rejects(GgufBytes{}.header(~0ull, ~0ull).out, ErrorCode::format, "over the limit of 65536");
    // under the hard limit but more than the bytes that follow can hold
    check_rejects(GgufBytes{}.header(0, 1000).kv_u32("a", 1).out, ErrorCode::format, "metadata count 1000 cannot fit");
    check_rejects(GgufBytes{}.header(1000, 0).tensor("t", {4}, 0, 0).out, ErrorCode::format, "tensor count 1000 cannot fit");
}

TEST_CASE("gguf: a large sparse file cannot make the reader reserve memory by its counts") {
    // 2^26 entries of 13 zero bytes would each parse (an empty key, a u8 value), so only the hard
    // limit stops the reader from reserving a table of 2^26 entries (~7 GB) before reading one.
    test::TempDir dir;
    const std::string path = dir.file("sparse.gguf");
    const std::uint64_t entries = std::uint64_t(1) << 26;
    test::write_file(path, GgufBytes{}.header(0, entries).out);
    std::filesystem::resize_file(path, 24 + entries * 13);  // a hole: no disk space, no page reads
    std::string msg;
    CHECK(test::throws_error([&] { gguf::File f(path); }, ErrorCode::format, "metadata count 67108864 is over the limit of 65536", &msg));
    GgufBytes tensors;
    tensors.header(entries, 0);
    test::write_file(path, tensors.out);
    std::filesystem::resize_file(path, 24 + entries * 32);
    CHECK(test::throws_error([&] { gguf::File f(path); }, ErrorCode::format, "tensor count 67108864 is over the limit of 65536"));
}

TEST_CASE("gguf: string and array lengths are bounded") {
    // keys: a hard limit of 64 KiB
    check_rejects(GgufBytes{}.header(0, 1).u64(kHuge).zeros(16).out, ErrorCode::format,
                  "metadata key at byte 24 has length 9223372036854775808, over the limit of 65536");
    check_rejects(GgufBytes{}.header(0, 1).u64(100).raw("abc").u32(4).u32(1).out, ErrorCode::format,
                  "truncated GGUF: metadata key at byte 24 runs past the end");
    // string values: 1 GiB, and never past the end of the file
    GgufBytes huge_value;
    huge_value.header(0, 1).str("k").u32(std::uint32_t(gguf::Type::string)).u64(kHuge).zeros(8);
    check_rejects(huge_value.out, ErrorCode::format, "metadata \"k\" at byte 37 has length 9223372036854775808, over the limit");
    GgufBytes long_value;
    long_value.header(0, 1).str("k").u32(std::uint32_t(gguf::Type::string)).u64(50).raw("short");
    check_rejects(long_value.out, ErrorCode::format, "truncated GGUF: metadata \"k\" at byte 37 runs past the end");
    // arrays: 2^24 elements, and no more than the remaining bytes can hold
    GgufBytes huge_array;
    huge_array.header(0, 1).str("k").u32(std::uint32_t(gguf::Type::array)).u32(std::uint32_t(gguf::Type::u8)).u64(kHuge).zeros(16);
    check_rejects(huge_array.out, ErrorCode::format, "declares 9223372036854775808 elements, over the limit of 16777216");
    GgufBytes strings_array;
    strings_array.header(0, 1).str("k").u32(std::uint32_t(gguf::Type::array)).u32(std::uint32_t(gguf::Type::string)).u64(1000).str("x");
    check_rejects(strings_array.out, ErrorCode::format, "declares 1000 elements, more than the remaining 9 bytes can hold");
    GgufBytes u64_array;
    u64_array.header(0, 1).str("k").u32(std::uint32_t(gguf::Type::array)).u32(std::uint32_t(gguf::Type::u64)).u64(3).u64(1).u64(2);
    check_rejects(u64_array.out, ErrorCode::format, "declares 3 elements, more than the remaining 16 bytes can hold");
}

TEST_CASE("gguf: metadata value types and values are checked") {
    GgufBytes unknown;
    unknown.header(0, 1).str("k").u32(13).u32(0);
    check_rejects(unknown.out, ErrorCode::format, "metadata \"k\" at byte 33 has unknown value type 13");
    GgufBytes unknown_element;
    unknown_element.header(0, 1).str("k").u32(std::uint32_t(gguf::Type::array)).u32(99).u64(0);
    check_rejects(unknown_element.out, ErrorCode::format, "unknown array element type 99");
    GgufBytes bool2;
    bool2.header(0, 1).str("flag").u32(std::uint32_t(gguf::Type::boolean)).u8(2);
    check_rejects(bool2.out, ErrorCode::format, "metadata \"flag\" at byte 40 is a bool with value 2");
    GgufBytes bool_array;
    bool_array.header(0, 1).str("flags").u32(std::uint32_t(gguf::Type::array)).u32(std::uint32_t(gguf::Type::boolean)).u64(3).u8(1).u8(0).u8(7);
    check_rejects(bool_array.out, ErrorCode::format, "element 2 at byte 55 is a bool with value 7");
    // a key that is not printable is shown escaped
    GgufBytes escape;
    escape.header(0, 1).str("\x1b[2Jk").u32(13);
    check_rejects(escape.out, ErrorCode::format, "metadata \"\\x1b[2Jk\"");
}

TEST_CASE("gguf: arrays of arrays are skipped one level deep and refused deeper") {
    const auto array = std::uint32_t(gguf::Type::array);
    GgufBytes nested;  // [[1, 2], []] as arrays of u8
    nested.header(0, 1).str("k").u32(array).u32(array).u64(2);
    nested.u32(std::uint32_t(gguf::Type::u8)).u64(2).u8(1).u8(2);
    nested.u32(std::uint32_t(gguf::Type::u8)).u64(0);
    test::TempDir dir;
    gguf::File f = open_bytes(dir, nested.out);
    CHECK(f.require("k").count == 2);
    CHECK(f.require("k").element_type == gguf::Type::array);

    GgufBytes deeper;  // [[[]]]
    deeper.header(0, 1).str("k").u32(array).u32(array).u64(1).u32(array).u64(1).u32(std::uint32_t(gguf::Type::u8)).u64(0);
    check_rejects(deeper.out, ErrorCode::format, "metadata \"k\" at byte 61 nests arrays deeper than 2");
    // a million nested arrays claimed in a few bytes: refused by the byte count, not walked
    GgufBytes wide;
    wide.header(0, 1).str("k").u32(array).u32(array).u64(1000000).zeros(24);
    check_rejects(wide.out, ErrorCode::format, "declares 1000000 elements, more than the remaining 24 bytes can hold");
}

TEST_CASE("gguf: duplicate metadata keys and tensor names are refused") {
    check_rejects(GgufBytes{}.header(0, 2).kv_u32("a.b", 1).kv_u32("a.b", 2).out, ErrorCode::format,
                  "duplicate metadata key \"a.b\" at byte 43");
    GgufBytes twice;
    twice.header(2, 0).tensor("t", {8}, 0, 0).tensor("t", {8}, 0, 32).pad().zeros(64);
    check_rejects(twice.out, ErrorCode::format, "duplicate tensor name \"t\"");
}

TEST_CASE("gguf: tensor rank, dimensions and element counts are bounded") {
    auto one_tensor = [](std::string_view name, std::initializer_list<std::uint64_t> dims, std::uint32_t type = 0) {
        GgufBytes b;
        b.header(1, 0).tensor(name, dims, type, 0).pad().zeros(64);
        return b.out;
    };
    check_rejects(one_tensor("scalar", {}), ErrorCode::format, "tensor \"scalar\" at byte 24 has rank 0 (must be 1 to 4)");
    check_rejects(one_tensor("r5", {1, 1, 1, 1, 1}), ErrorCode::format, "has rank 5 (must be 1 to 4)");
    GgufBytes rank_huge;
    rank_huge.header(1, 0).str("t").u32(0xFFFFFFFF).zeros(64);
    check_rejects(rank_huge.out, ErrorCode::format, "has rank 4294967295");
    check_rejects(one_tensor("z", {4, 0}), ErrorCode::format, "tensor \"z\" dimension 1 has size 0 (must be 1 to 1099511627776)");
    check_rejects(one_tensor("big", {1ull << 41}), ErrorCode::format, "dimension 0 has size 2199023255552");
    check_rejects(one_tensor("big", {~0ull}), ErrorCode::format, "dimension 0 has size 18446744073709551615");
    // each dimension in range, the product past 2^64
    check_rejects(one_tensor("wide", {1ull << 40, 1ull << 40}), ErrorCode::format, "tensor \"wide\" has too many elements");
    // 2^62 elements of 4 bytes: the element count fits, the byte count does not
    check_rejects(one_tensor("f", {1ull << 40, 1ull << 22}), ErrorCode::format, "tensor \"f\" is too large");
    // a count that fits in 64 bits but not in the file
    check_rejects(one_tensor("f", {1ull << 30, 1ull << 20}), ErrorCode::format, "runs past the end of the file");
}

TEST_CASE("gguf: tensor types must be known and rows whole blocks") {
    auto typed = [](std::uint32_t type, std::uint64_t cols) {
        GgufBytes b;
        b.header(1, 0).tensor("t", {cols, 2}, type, 0).pad().zeros(512);
        return b.out;
    };
    check_rejects(typed(1000, 32), ErrorCode::format, "tensor \"t\" at byte 24 has unknown ggml type 1000");
    check_rejects(typed(4, 32), ErrorCode::format, "unknown ggml type 4");  // Q4_2, removed from ggml
    check_rejects(typed(16, 256), ErrorCode::unsupported, "tensor \"t\" has ggml type 16 (IQ2_XXS), which this library does not support");
    check_rejects(typed(28, 4), ErrorCode::unsupported, "(F64)");
    check_rejects(typed(std::uint32_t(DType::q8_0), 48), ErrorCode::format,
                  "tensor \"t\" of type Q8_0 has rows of 48 elements, not a multiple of its block size 32");
    check_rejects(typed(std::uint32_t(DType::q4_k), 128), ErrorCode::format, "not a multiple of its block size 256");
    test::TempDir dir;
    gguf::File ok = open_bytes(dir, typed(std::uint32_t(DType::q4_k), 256));
    CHECK(ok.tensors()[0].bytes == 2 * 144);
}

TEST_CASE("gguf: tensor offsets must be aligned, inside the file and not overlapping") {
    const std::string valid = small_valid_file();
    const TensorEntry w = entry_of(valid, "w", 2);

    std::string misaligned = valid;
    put_u64_at(misaligned, w.offset, 97);
    check_rejects(misaligned, ErrorCode::format, "tensor \"w\" has offset 97, not a multiple of the alignment 32");

    std::string past_end = valid;
    put_u64_at(past_end, w.offset, 128);
    check_rejects(past_end, ErrorCode::format, "tensor \"w\" (32 bytes at data offset 128) runs past the end of the file");

    std::string wrapping = valid;  // offset + bytes wraps around 2^64
    put_u64_at(wrapping, w.offset, ~0ull - 31);
    check_rejects(wrapping, ErrorCode::format, "runs past the end of the file");

    std::string bigger = valid;  // the shape grows past the data: 2 x 5 floats do not fit in 32 bytes
    put_u64_at(bigger, w.dims, 5);
    check_rejects(bigger, ErrorCode::format, "tensor \"w\" (40 bytes at data offset 96) runs past the end");

    std::string aliased = valid;  // w's data placed on top of q's
    put_u64_at(aliased, w.offset, 0);
    check_rejects(aliased, ErrorCode::format, "tensor \"w\" (data bytes 0 to 32) overlaps tensor \"q\" (0 to 68)");
    std::string partial = valid;  // overlapping q's tail only
    put_u64_at(partial, w.offset, 64);
    check_rejects(partial, ErrorCode::format, "overlaps tensor \"q\"");

    // in another order, or with a gap, the tensors are still valid
    GgufBytes reordered;
    reordered.header(2, 0).tensor("late", {8}, 0, 64).tensor("early", {8}, 0, 0).pad().zeros(96);
    test::TempDir dir;
    gguf::File f = open_bytes(dir, reordered.out);
    CHECK(f.find_tensor("late")->data - f.find_tensor("early")->data == 64);
}

TEST_CASE("gguf: general.alignment must be a power of two up to 1 MiB") {
    auto with_alignment = [](std::uint32_t alignment) {
        GgufBytes b;
        b.header(1, 1).kv_u32("general.alignment", alignment).tensor("t", {8}, 0, 0).pad().zeros(32);
        return b.out;
    };
    check_rejects(with_alignment(0), ErrorCode::format, "general.alignment 0 is not a power of two up to 1 MiB");
    check_rejects(with_alignment(3), ErrorCode::format, "general.alignment 3 is not a power of two");
    check_rejects(with_alignment(1u << 31), ErrorCode::format, "general.alignment 2147483648 is not a power of two up to 1 MiB");
    check_rejects(GgufBytes{}.header(0, 1).kv_string("general.alignment", "32").out, ErrorCode::format,
                  "general.alignment must be an unsigned integer, found string");

    // a valid alignment of 64 moves the data section and is honoured by writer and reader
    gguf::Writer writer;
    writer.set_alignment(64);
    std::vector<float> v(16, 2.0f);
    writer.add_tensor("a", DType::f32, qwen3::make_shape(16), std::as_bytes(std::span<const float>(v)));
    writer.add_tensor("b", DType::f32, qwen3::make_shape(4), std::as_bytes(std::span<const float>(v).first(4)));
    test::TempDir dir;
    gguf::File f = open_bytes(dir, writer.to_bytes());
    CHECK(f.alignment() == 64);
    CHECK(f.data_offset() % 64 == 0);
    CHECK(f.find_tensor("b")->offset == 64);
    CHECK(test::throws_error([&] { writer.set_alignment(48); }, ErrorCode::invalid_argument, "alignment 48 is not a power of two"));
}

TEST_CASE("gguf: a header corrupted at any byte is refused or still consistent, never read out of bounds") {
    const std::string valid = small_valid_file();
    test::TempDir dir;
    const std::string path = dir.file("mutant.gguf");
    std::size_t header_end;
    {
        gguf::File f = open_bytes(dir, valid);
        header_end = f.data_offset();
    }
    int accepted = 0, refused = 0, bad = 0;
    for (std::size_t i = 0; i < header_end; ++i) {
        const unsigned char original = static_cast<unsigned char>(valid[i]);
        for (unsigned char value : {0x00, 0xFF, 0x80, 0x7F, 0x01, 0x20}) {
            if (value == original) continue;
            std::string mutant = valid;
            mutant[i] = char(value);
            test::write_file(path, mutant);
            try {
                gguf::File f(path);
                ++accepted;
                // whatever was accepted lies inside the mapping and is self-consistent
                const std::byte* begin = f.mapped().data();
                const std::byte* end = begin + f.mapped().size();
                for (const auto& t : f.tensors()) {
                    bool ok = t.data >= begin + f.data_offset() && t.bytes <= std::uint64_t(end - t.data) &&
                              t.bytes == qwen3::row_bytes(t.type, t.shape.cols()) * t.shape.rows();
                    if (!ok) {
                        ++bad;
                        MESSAGE("byte ", i, " = ", int(value), ": tensor ", t.name, " out of bounds");
                    }
                }
                for (const auto& [key, v] : f.metadata()) {
                    auto inside = [&](std::string_view s) {
                        return s.empty() || (reinterpret_cast<const std::byte*>(s.data()) >= begin &&
                                             reinterpret_cast<const std::byte*>(s.data() + s.size()) <= end);
                    };
                    bool ok = inside(key) && inside(v.string_value);
                    for (std::string_view s : v.strings) ok = ok && inside(s);
                    if (!ok) {
                        ++bad;
                        MESSAGE("byte ", i, " = ", int(value), ": metadata view out of bounds");
                    }
                }
            } catch (const qwen3::Error& e) {
                ++refused;
                if (e.code() != ErrorCode::format && e.code() != ErrorCode::unsupported) {
                    ++bad;
                    MESSAGE("byte ", i, ": unexpected code ", qwen3::to_string(e.code()), ": ", e.what());
                }
            } catch (const std::exception& e) {
                ++bad;
                MESSAGE("byte ", i, " = ", int(value), ": not a qwen3::Error: ", e.what());
            }
        }
    }
    MESSAGE(accepted, " mutants accepted, ", refused, " refused");
    CHECK(bad == 0);
    CHECK(refused > accepted);  // most header bytes matter
}

TEST_CASE("gguf writer: refuses tensors the reader would refuse") {
    gguf::Writer w;
    std::vector<std::byte> bytes(64);
    CHECK(test::throws_error([&] { w.add_tensor("q", DType::q8_0, qwen3::make_shape(2, 16), bytes); }, ErrorCode::invalid_argument,
                             "rows of 16 elements"));
    CHECK(test::throws_error([&] { w.add_tensor("s", DType::f32, qwen3::Shape{}, bytes); }, ErrorCode::invalid_argument, "rank 0"));
    CHECK(test::throws_error([&] { w.add_tensor("z", DType::f32, qwen3::make_shape(0, 4), bytes); }, ErrorCode::invalid_argument,
                             "has shape [0, 4]"));
    CHECK_NOTHROW(w.add_tensor("short", DType::f32, qwen3::make_shape(4, 4), bytes));
    CHECK(test::throws_error([&] { w.add_tensor("short", DType::f32, qwen3::make_shape(5, 4), bytes); }, ErrorCode::invalid_argument,
                             "needs 80 bytes, given 64"));
    CHECK(test::throws_error([&] { w.add_tensor("short", DType::f32, qwen3::make_shape(4, 4), bytes); }, ErrorCode::invalid_argument,
                             "added twice"));
    // a fill that throws leaves no partial file behind
    gguf::Writer failing;
    failing.add_tensor("t", DType::f32, qwen3::make_shape(4), [](std::byte*, std::uint64_t) { throw std::runtime_error("boom"); });
    test::TempDir dir;
    const std::string path = dir.file("partial.gguf");
    CHECK_THROWS_AS(failing.write(path), std::runtime_error);
    CHECK_FALSE(std::filesystem::exists(path));
}
