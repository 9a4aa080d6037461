// Malformed and hostile safetensors files: each is refused with Error(format) and a message naming
// the file, the tensor where there is one, and the problem. The rules are those of the reference
// implementation (the safetensors Rust crate), written out in include/qwen3/format/safetensors.hpp.
#include <doctest/doctest.h>

#include <cstring>

#include <qwen3/format/safetensors.hpp>

#include "support.hpp"

using qwen3::ErrorCode;
namespace st = qwen3::safetensors;

namespace {

// An 8-byte little-endian header length, the header, then the data.
std::string st_file(std::string_view header, std::string_view data = {}) {
    std::string out(8, '\0');
    std::uint64_t n = header.size();
    std::memcpy(out.data(), &n, 8);
    out += header;
    out += data;
    return out;
}

std::string bytes(std::size_t n) {
    std::string out(n, '\0');
    for (std::size_t i = 0; i < n; ++i) out[i] = char(i * 7 + 1);
    return out;
}

const std::string kValidHeader =
    R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[16,24]},)"
    R"("__metadata__":{"format":"pt"}})";

// One tensor "t" with the given fields, and `data_size` bytes of data.
std::string one_tensor(std::string_view dtype, std::string_view shape, std::string_view offsets, std::size_t data_size) {
    std::string header = R"({"t":{"dtype":)" + std::string(dtype) + R"(,"shape":)" + std::string(shape) +
                         R"(,"data_offsets":)" + std::string(offsets) + "}}";
    return st_file(header, bytes(data_size));
}

void check_rejects(const std::string& file_bytes, ErrorCode code, const std::string& needle) {
    test::TempDir dir;
    const std::string path = dir.file("bad.safetensors");
    test::write_file(path, file_bytes);
    std::string msg;
    bool ok = test::throws_error([&] { st::File f(path); }, code, needle, &msg);
    CHECK_MESSAGE(ok, "expected ", qwen3::to_string(code), " containing '", needle, "', got: ",
                  msg.empty() ? std::string("no qwen3::Error") : msg);
    CHECK_MESSAGE(msg.find(path) != std::string::npos, "message does not name the file: ", msg);
}

}  // namespace

TEST_CASE("safetensors: a valid file reads back") {
    test::TempDir dir;
    const std::string path = dir.file("ok.safetensors");
    const std::string data = bytes(24);
    test::write_file(path, st_file(kValidHeader, data));
    st::File f(path);
    REQUIRE(f.tensors().size() == 2);
    const st::TensorInfo* a = f.find("a");
    REQUIRE(a);
    CHECK(a->dtype == "F32");
    CHECK(a->supported);
    CHECK(a->type == qwen3::DType::f32);
    CHECK(a->shape == qwen3::make_shape(2, 2));
    CHECK(a->bytes == 16);
    CHECK(std::memcmp(a->data, data.data(), 16) == 0);
    const st::TensorInfo* b = f.find("b");
    REQUIRE(b);
    CHECK(b->type == qwen3::DType::bf16);
    CHECK(std::memcmp(b->data, data.data() + 16, 8) == 0);
    CHECK_FALSE(f.find("__metadata__"));

    // the Rust writer pads the header with spaces; empty tensors and an empty file are valid
    test::write_file(path, st_file(kValidHeader + "       ", data));
    CHECK(st::File(path).tensors().size() == 2);
    test::write_file(path, one_tensor(R"("I64")", "[0, 3]", "[0, 0]", 0));
    CHECK(st::File(path).find("t")->bytes == 0);
    test::write_file(path, st_file("{}"));
    CHECK(st::File(path).tensors().empty());
    // a packed 4-bit type: 4 elements in 2 bytes
    test::write_file(path, one_tensor(R"("F4")", "[4]", "[0, 2]", 2));
    CHECK_FALSE(st::File(path).find("t")->supported);
}

TEST_CASE("safetensors: too short for the header, or a header length that cannot be") {
    check_rejects("", ErrorCode::format, "truncated safetensors file (0 bytes, no header)");
    check_rejects(std::string("\x10\0\0\0\0\0\0", 7), ErrorCode::format, "truncated safetensors file (7 bytes, no header)");
    check_rejects(st_file("{}").substr(0, 8) + "{", ErrorCode::format, "header of 2 bytes but only 1 bytes follow");
    std::string huge(8, '\xff');
    check_rejects(huge + "{}", ErrorCode::format, "header length 18446744073709551615 is over the format's limit of 100 MB");
    std::string over(8, '\0');
    std::uint64_t n = 100'000'001;
    std::memcpy(over.data(), &n, 8);
    check_rejects(over + "{}", ErrorCode::format, "header length 100000001 is over the format's limit");
}

TEST_CASE("every prefix of a valid safetensors file is refused") {
    const std::string full = st_file(kValidHeader, bytes(24));
    test::TempDir dir;
    const std::string path = dir.file("prefix.safetensors");
    int failures = 0;
    for (std::size_t n = 0; n < full.size(); ++n) {
        test::write_file(path, std::string_view(full).substr(0, n));
        std::string msg;
        if (!test::throws_error([&] { st::File f(path); }, ErrorCode::format, "", &msg) ||
            (msg.find("truncated") == std::string::npos && msg.find("past the end") == std::string::npos)) {
            ++failures;
            MESSAGE("prefix of ", n, " bytes: ", msg.empty() ? std::string("accepted") : msg);
        }
    }
    CHECK(failures == 0);
}

TEST_CASE("safetensors: the header must be a JSON object within the depth and size limits") {
    check_rejects(st_file("not json"), ErrorCode::format, "(safetensors header): invalid JSON at byte 0");
    check_rejects(st_file(R"({"a":)"), ErrorCode::format, "invalid JSON at byte 5: unexpected end of input");
    check_rejects(st_file("{\"a\xff\":1}"), ErrorCode::format, "invalid UTF-8");
    check_rejects(st_file("[1, 2]"), ErrorCode::format, "safetensors header is not a JSON object");
    check_rejects(st_file(R"("text")"), ErrorCode::format, "safetensors header is not a JSON object");
    check_rejects(st_file(R"({"__metadata__": [1]})"), ErrorCode::format, "\"__metadata__\" is not a JSON object");
    std::string deep = R"({"__metadata__":)";
    for (int i = 0; i < 20; ++i) deep += R"({"x":)";
    deep += "1" + std::string(21, '}');
    check_rejects(st_file(deep), ErrorCode::format, "nesting deeper than the limit of 8");
    check_rejects(one_tensor(R"("F32")", "[[[[[[[[[1]]]]]]]]]", "[0, 4]", 4), ErrorCode::format, "nesting deeper than the limit of 8");
    // two million values in 4 MB would be ~120 MB as a tree: the value limit stops it first
    std::string many = "{\"__metadata__\":[";
    for (int i = 0; i < 2'000'000; ++i) many += i ? ",0" : "0";
    many += "]}";
    check_rejects(st_file(many), ErrorCode::format, "more than 1048576 values");
}

TEST_CASE("safetensors: a tensor named twice is refused by the JSON reader") {
    const std::string entry = R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
    check_rejects(st_file("{\"t\":" + entry + ",\"t\":" + entry + "}", bytes(4)), ErrorCode::format, "duplicate key \"t\"");
    // duplicate keys inside an entry too
    check_rejects(st_file(R"({"t":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", bytes(4)), ErrorCode::format,
                  "duplicate key \"dtype\"");
}

TEST_CASE("safetensors: entries need dtype, shape and data_offsets of the right kinds") {
    check_rejects(st_file(R"({"t": [1, 2]})"), ErrorCode::format, "tensor \"t\": entry is not an object");
    check_rejects(st_file(R"({"t":{"shape":[1],"data_offsets":[0,4]}})", bytes(4)), ErrorCode::format,
                  "tensor \"t\": missing or non-string \"dtype\"");
    check_rejects(st_file(R"({"t":{"dtype":"F32","data_offsets":[0,4]}})", bytes(4)), ErrorCode::format,
                  "tensor \"t\": missing or non-array \"shape\"");
    check_rejects(st_file(R"({"t":{"dtype":"F32","shape":[1]}})", bytes(4)), ErrorCode::format,
                  "tensor \"t\": \"data_offsets\" must be [begin, end]");
    check_rejects(one_tensor("32", "[1]", "[0, 4]", 4), ErrorCode::format, "missing or non-string \"dtype\"");
    check_rejects(one_tensor(R"("F32")", "4", "[0, 4]", 4), ErrorCode::format, "missing or non-array \"shape\"");
    check_rejects(one_tensor(R"("F32")", "[1]", "[0, 4, 8]", 8), ErrorCode::format, "\"data_offsets\" must be [begin, end]");
    check_rejects(one_tensor(R"("F128")", "[1]", "[0, 16]", 16), ErrorCode::format, "tensor \"t\": unknown dtype \"F128\"");
    check_rejects(one_tensor(R"("f32")", "[1]", "[0, 4]", 4), ErrorCode::format, "unknown dtype \"f32\"");
}

TEST_CASE("safetensors: shape entries are integers from 0 to 2^40, at most 4 of them") {
    const char* needle = "shape entries must be integers from 0 to 1099511627776, found ";
    check_rejects(one_tensor(R"("F32")", "[-1]", "[0, 4]", 4), ErrorCode::format, std::string(needle) + "-1");
    check_rejects(one_tensor(R"("F32")", "[2.5]", "[0, 4]", 4), ErrorCode::format, std::string(needle) + "2.5");
    check_rejects(one_tensor(R"("F32")", "[1e3]", "[0, 4]", 4), ErrorCode::format, std::string(needle) + "1e3");
    check_rejects(one_tensor(R"("F32")", R"(["1"])", "[0, 4]", 4), ErrorCode::format, std::string(needle) + "\"1\"");
    check_rejects(one_tensor(R"("F32")", "[2199023255552]", "[0, 4]", 4), ErrorCode::format,
                  std::string(needle) + "2199023255552");
    check_rejects(one_tensor(R"("F32")", "[123456789012345678901234567890]", "[0, 4]", 4), ErrorCode::format,
                  std::string(needle) + "123456789012345678901234567890");
    check_rejects(one_tensor(R"("F32")", "[1,1,1,1,1]", "[0, 4]", 4), ErrorCode::format, "tensor \"t\": rank 5 is over 4");
    // each entry in range, the product past 2^64
    check_rejects(one_tensor(R"("F32")", "[1099511627776, 1099511627776]", "[0, 4]", 4), ErrorCode::format,
                  "too many elements");
    // the element count fits, the byte count does not
    check_rejects(one_tensor(R"("F64")", "[1099511627776, 4194304]", "[0, 4]", 4), ErrorCode::format,
                  "needs more than 2^61 bytes");
}

TEST_CASE("safetensors: data_offsets must be ordered, inside the file and match shape x dtype") {
    check_rejects(one_tensor(R"("F32")", "[1]", "[-4, 0]", 4), ErrorCode::format, "data_offsets must be non-negative integers");
    check_rejects(one_tensor(R"("F32")", "[1]", "[0.0, 4]", 4), ErrorCode::format, "data_offsets must be non-negative integers");
    check_rejects(one_tensor(R"("F32")", "[1]", "[8, 4]", 8), ErrorCode::format,
                  "tensor \"t\": data_offsets end before they begin: [8,4]");
    check_rejects(one_tensor(R"("F32")", "[2]", "[0, 8]", 4), ErrorCode::format,
                  "tensor \"t\": data [0,8] runs past the end of the file (4 data bytes)");
    check_rejects(one_tensor(R"("F32")", "[1]", "[0, 18446744073709551616]", 4), ErrorCode::format, "runs past the end of the file");
    check_rejects(one_tensor(R"("F32")", "[1]", "[18446744073709551612, 18446744073709551616]", 4), ErrorCode::format,
                  "runs past the end of the file");
    check_rejects(one_tensor(R"("F32")", "[2, 2]", "[0, 12]", 12), ErrorCode::format,
                  "tensor \"t\": holds 12 bytes but shape [2, 2] of F32 needs 16 bytes");
    check_rejects(one_tensor(R"("BF16")", "[3]", "[0, 8]", 8), ErrorCode::format, "holds 8 bytes but shape [3] of BF16 needs 6 bytes");
    check_rejects(one_tensor(R"("F4")", "[3]", "[0, 2]", 2), ErrorCode::format, "needs 12 bits (not whole bytes)");
}

TEST_CASE("safetensors: tensors tile the data section exactly") {
    auto two = [](std::string_view a_offsets, std::string_view b_offsets, std::size_t data_size) {
        return st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":)" + std::string(a_offsets) +
                           R"(},"b":{"dtype":"F32","shape":[2],"data_offsets":)" + std::string(b_offsets) + "}}",
                       bytes(data_size));
    };
    test::TempDir dir;
    const std::string path = dir.file("order.safetensors");
    test::write_file(path, two("[8, 16]", "[0, 8]", 16));  // any order in the header
    st::File reordered(path);
    CHECK(reordered.find("a")->data - reordered.find("b")->data == 8);
    check_rejects(two("[0, 8]", "[4, 12]", 12), ErrorCode::format,
                  "tensor \"b\" (data bytes 4 to 12) overlaps tensor \"a\" (ending at 8)");
    check_rejects(two("[0, 8]", "[0, 8]", 8), ErrorCode::format, "overlaps tensor");
    check_rejects(two("[0, 8]", "[12, 20]", 20), ErrorCode::format,
                  "tensor \"b\" starts at data byte 12 but the data before it ends at 8");
    check_rejects(two("[4, 12]", "[12, 20]", 20), ErrorCode::format, "tensor \"a\" starts at data byte 4 but the data before it ends at 0");
    check_rejects(two("[0, 8]", "[8, 16]", 20), ErrorCode::format, "the tensors cover 16 bytes of the 20-byte data section");
    check_rejects(st_file("{}", "x"), ErrorCode::format, "the tensors cover 0 bytes of the 1-byte data section");
}

TEST_CASE("safetensors: a header corrupted at any byte is refused or still consistent") {
    const std::string valid = st_file(kValidHeader, bytes(24));
    test::TempDir dir;
    const std::string path = dir.file("mutant.safetensors");
    int accepted = 0, refused = 0, bad = 0;
    for (std::size_t i = 0; i < 8 + kValidHeader.size(); ++i) {
        for (char value : {'\0', '\xff', '"', '}', ']', '[', '{', ',', ':', '9', '-', ' ', '\\', 'e'}) {
            if (value == valid[i]) continue;
            std::string mutant = valid;
            mutant[i] = value;
            test::write_file(path, mutant);
            try {
                st::File f(path);
                ++accepted;
                std::uint64_t total = 0;
                for (const auto& t : f.tensors()) total += t.bytes;
                if (total != 24) {
                    ++bad;
                    MESSAGE("byte ", i, " = ", int(value), ": accepted tensors cover ", total, " bytes");
                }
            } catch (const qwen3::Error& e) {
                ++refused;
                if (e.code() != ErrorCode::format) {
                    ++bad;
                    MESSAGE("byte ", i, ": code ", qwen3::to_string(e.code()));
                }
            } catch (const std::exception& e) {
                ++bad;
                MESSAGE("byte ", i, " = ", int(value), ": not a qwen3::Error: ", e.what());
            }
        }
    }
    MESSAGE(accepted, " mutants accepted, ", refused, " refused");
    CHECK(bad == 0);
    CHECK(refused > 0);
}
