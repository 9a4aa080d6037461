// The matrix kernels for every weight type, against the reference dequantization (which is checked
// bit for bit against gguf-py in test_quant_formats): decode and prefill results must equal the dot
// product of the dequantized weights with the quantized input up to float rounding, and the float
// input within the error that quantizing the input to int8 allows.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <qwen3/kernels/linear.hpp>
#include <qwen3/quant/dequantize.hpp>

using qwen3::DType;

namespace {

// Random blocks whose scales are finite, small halves (random bytes elsewhere: every bit pattern of
// the quantized values occurs).
std::vector<std::byte> random_rows(DType type, int rows, int cols, std::uint64_t seed) {
    const std::size_t stride = qwen3::row_bytes(type, std::uint64_t(cols));
    std::vector<std::byte> data(stride * std::size_t(rows));
    std::mt19937_64 rng(seed);
    if (type == DType::f32 || type == DType::f16 || type == DType::bf16) {  // finite values of the type
        std::normal_distribution<float> value(0.f, 0.02f);
        for (std::size_t i = 0; i < std::size_t(rows) * std::size_t(cols); ++i) {
            const float v = value(rng);
            const std::uint16_t h = type == DType::f16 ? qwen3::detail::simd::f32_to_f16(v) : qwen3::detail::simd::f32_to_bf16(v);
            if (type == DType::f32) std::memcpy(data.data() + 4 * i, &v, 4);
            else std::memcpy(data.data() + 2 * i, &h, 2);
        }
        return data;
    }
    for (auto& b : data) b = std::byte(rng() & 0xFF);
    const auto& info = qwen3::dtype_info(type);
    std::uniform_real_distribution<float> scale(-0.02f, 0.02f);
    auto set_half = [&](std::size_t at, float v) {
        const std::uint16_t h = qwen3::detail::simd::f32_to_f16(v);
        std::memcpy(data.data() + at, &h, 2);
    };
    for (std::size_t at = 0; at < data.size(); at += info.block_bytes) {
        switch (type) {
            case DType::q6_k: set_half(at + 208, scale(rng)); break;
            case DType::q4_k: case DType::q5_k: set_half(at, std::fabs(scale(rng))); set_half(at + 2, std::fabs(scale(rng))); break;
            case DType::q4_1: case DType::q5_1: set_half(at, scale(rng)); set_half(at + 2, scale(rng)); break;
            default: set_half(at, scale(rng)); break;
        }
    }
    return data;
}

std::vector<float> random_input(int n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> d(0.f, 1.f);
    std::vector<float> x(static_cast<std::size_t>(n));
    for (auto& v : x) v = d(rng);
    return x;
}

// The input as the kernel sees it: int8 values times their block scale (block of `block` elements).
std::vector<double> quantized_input(const float* x, int n, int block) {
    std::vector<double> out(static_cast<std::size_t>(n));
    for (int b = 0; b < n; b += block) {
        float amax = 0;
        for (int i = 0; i < block; ++i) amax = std::max(amax, std::fabs(x[b + i]));
        const float scale = amax / 127.f, inv = scale ? 1.f / scale : 0.f;
        for (int i = 0; i < block; ++i) out[std::size_t(b + i)] = double(std::nearbyint(x[b + i] * inv)) * double(scale);
    }
    return out;
}

template <int K>
void check_type(DType type, int rows, int tokens) {
    const std::string type_name = qwen3::dtype_name(type);
    CAPTURE(type_name);
    CAPTURE(K);
    const auto weights = random_rows(type, rows, K, 17);
    const qwen3::Matrix<1 << 20, K> w{type, weights.data()};
    std::vector<std::vector<float>> dequantized(static_cast<std::size_t>(rows), std::vector<float>(K));
    for (int r = 0; r < rows; ++r) qwen3::detail::quant::dequantize_row(type, w.row(r), dequantized[std::size_t(r)].data(), K);

    const bool k_quant = qwen3::dtype_info(type).block_elems == 256;
#if defined(QWEN3_HAVE_AVX512_VNNI)
    const bool int8_kernel = qwen3::detail::avx512::has_quant_kernel<K>(type);
    const int prefill_block = 32;  // the column kernels read the input quantized per 32
#elif defined(QWEN3_HAVE_AVX2_QUANT)
    const bool int8_kernel = qwen3::detail::avx2::has_quant_kernel<K>(type);
    // the column kernels read the input quantized per 32; the decode forms, 4 tokens at a time, per
    // 256 for K-quants
    const int prefill_block = qwen3::detail::uses_column_gemm(type, tokens) || !k_quant ? 32 : 256;
#else
    const int prefill_block = 32;
    const bool int8_kernel = false;  // the portable path: dequantize, then f32
#endif
    // what the kernels multiply the weights with: the int8 input, or the float input itself
    auto effective_input = [&](const float* xt, int block) {
        if (int8_kernel) return quantized_input(xt, K, block);
        return std::vector<double>(xt, xt + K);
    };
    // prefill with enough tokens widens the weights to f32 panels and reads the float input
#if defined(QWEN3_HAVE_AVX2_QUANT)
    const bool prefill_int8 = (qwen3::detail::uses_column_gemm(type, tokens) && qwen3::detail::avx2::has_column_gemm<K>(type)) ||
                              (int8_kernel && !qwen3::detail::uses_panel_gemm(type, tokens));
#else
    const bool prefill_int8 = int8_kernel && !qwen3::detail::uses_panel_gemm(type, tokens);
#endif
    CAPTURE(tokens);
    CAPTURE(prefill_int8);
    auto in = std::make_unique<qwen3::detail::Input<K, 128>>();
    const std::vector<float> x = random_input(K * tokens, 5);

    // the decode layout of 16-row groups, where this CPU has one: the same products, in place of w's
    const bool packed = rows % qwen3::detail::kPackRows == 0 && qwen3::detail::has_packed_layout<K>(type);
    std::vector<std::byte> packed_bytes(packed ? weights.size() : 0);
    if (packed) qwen3::detail::pack_row_groups(w, 0, rows / qwen3::detail::kPackRows, packed_bytes.data());
    qwen3::Matrix<1 << 20, K> wp = w;
    wp.packed = packed ? packed_bytes.data() : nullptr;
    CAPTURE(packed);

    // decode: one token at a time; K-quants read the input quantized per 256, others per 32
    std::vector<float> y(static_cast<std::size_t>(rows));
    double worst_quantized = 0, worst_bound_ratio = 0;
    for (int t = 0; t < tokens; ++t) {
        const float* xt = x.data() + std::size_t(t) * K;
        in->set(xt, 1);
        in->prepare(type);
        qwen3::detail::matvec(wp, *in, y.data(), 0, rows);
        if (packed && rows > 8) {  // a range that starts and ends inside groups leaves the rest alone
            std::vector<float> part(static_cast<std::size_t>(rows), -1.f);
            qwen3::detail::matvec(wp, *in, part.data(), 3, rows - 5);
            for (int r = 0; r < rows; ++r) CHECK(part[std::size_t(r)] == (r >= 3 && r < rows - 5 ? y[std::size_t(r)] : -1.f));
        }
        const std::vector<double> xq = effective_input(xt, k_quant ? 256 : 32);
        for (int r = 0; r < rows; ++r) {
            double ref_q = 0, magnitude = 0, ref_f = 0, bound = 0;
            for (int k = 0; k < K; ++k) {
                const double wk = dequantized[std::size_t(r)][std::size_t(k)];
                ref_q += wk * xq[std::size_t(k)];
                ref_f += wk * double(xt[k]);
                magnitude += std::fabs(wk * xq[std::size_t(k)]);
                bound += std::fabs(wk) * std::fabs(xq[std::size_t(k)] - double(xt[k]));
            }
            worst_quantized = std::max(worst_quantized, std::fabs(double(y[std::size_t(r)]) - ref_q) / (magnitude + 1e-30));
            worst_bound_ratio = std::max(worst_bound_ratio, std::fabs(double(y[std::size_t(r)]) - ref_f) / (bound + 1e-6 * magnitude + 1e-30));
        }
    }
    CHECK(worst_quantized < 1e-5);  // float rounding of the sums only
    CHECK(worst_bound_ratio <= 1.0);

    // prefill: all tokens at once
    std::vector<float> yy(static_cast<std::size_t>(rows) * tokens);
    in->set(x.data(), tokens);
    in->prepare(type);
    qwen3::detail::matmul(w, *in, yy.data(), std::size_t(rows), 0, rows);
    double worst_prefill = 0;
    for (int t = 0; t < tokens; ++t) {
        const float* xt = x.data() + std::size_t(t) * K;
        const std::vector<double> xq = prefill_int8 ? quantized_input(xt, K, prefill_block) : std::vector<double>(xt, xt + K);
        for (int r = 0; r < rows; ++r) {
            double ref_q = 0, magnitude = 0;
            for (int k = 0; k < K; ++k) {
                ref_q += double(dequantized[std::size_t(r)][std::size_t(k)]) * xq[std::size_t(k)];
                magnitude += std::fabs(double(dequantized[std::size_t(r)][std::size_t(k)]) * xq[std::size_t(k)]);
            }
            worst_prefill = std::max(worst_prefill, std::fabs(double(yy[std::size_t(t) * rows + r]) - ref_q) / (magnitude + 1e-30));
        }
    }
    CHECK(worst_prefill < 1e-5);
    if (rows > 8) {  // a row range that starts and ends inside tiles writes those rows only
        // (the portable kernels group rows differently at a range's edge, so sums may round apart)
        std::vector<float> part(yy.size(), -1.f);
        qwen3::detail::matmul(w, *in, part.data(), std::size_t(rows), 3, rows - 5);
        float largest = 0;
        for (float v : yy) largest = std::max(largest, std::fabs(v));
        int wrong = 0;
        for (int t = 0; t < tokens; ++t)
            for (int r = 0; r < rows; ++r) {
                const std::size_t i = std::size_t(t) * rows + r;
                wrong += r >= 3 && r < rows - 5 ? !(std::fabs(part[i] - yy[i]) <= 1e-5f * largest) : part[i] != -1.f;
            }
        CHECK(wrong == 0);
    }

    // the portable path (dequantize, then f32) against the dequantized weights and the float input
    std::vector<float> yp(static_cast<std::size_t>(rows) * tokens);
    qwen3::detail::matmul_dequantized<K>(type, weights.data(), w.row_stride(), x.data(), tokens, yp.data(), std::size_t(rows), 0, rows);
    double worst_portable = 0;
    for (int t = 0; t < tokens; ++t)
        for (int r = 0; r < rows; ++r) {
            double ref = 0, magnitude = 0;
            for (int k = 0; k < K; ++k) {
                const double p = double(dequantized[std::size_t(r)][std::size_t(k)]) * double(x[std::size_t(t) * K + k]);
                ref += p;
                magnitude += std::fabs(p);
            }
            worst_portable = std::max(worst_portable, std::fabs(double(yp[std::size_t(t) * rows + r]) - ref) / (magnitude + 1e-30));
        }
    CHECK(worst_portable < 1e-5);
}

}  // namespace

TEST_CASE("quantized matrix kernels equal the reference dequantization times the quantized input") {
    for (DType type : {DType::q8_0, DType::q4_0, DType::q5_0, DType::q4_1, DType::q5_1, DType::q4_k, DType::q5_k, DType::q6_k}) {
        check_type<256>(type, 13, 37);   // 13 rows: a partial tile; 37 tokens: a partial column group
        check_type<256>(type, 21, 70);   // 21 rows: a panel and a partial one; 70 tokens: panels for every type
        check_type<2560>(type, 8, 20);   // the Qwen3-4B hidden size
        check_type<2560>(type, 3, 65);   // the same with panels (10 of depth 256)
        check_type<1024>(type, 48, 2);   // three groups of 16 rows (the packed decode layout)
    }
    for (DType type : {DType::q8_0, DType::q4_0, DType::q5_0}) {
        check_type<96>(type, 5, 3);  // rows of 3 blocks
        check_type<96>(type, 5, 66);  // panels as deep as the row
    }
}

// matvec_batch: decode tokens of several sequences at once, each bit for bit what matvec gives it alone
template <int K>
void check_batch(DType type, int rows, int tokens) {
    CAPTURE(qwen3::dtype_name(type));
    CAPTURE(tokens);
    const auto weights = random_rows(type, rows, K, 23);
    qwen3::Matrix<1 << 20, K> w{type, weights.data()};
    const bool packed = rows % qwen3::detail::kPackRows == 0 && qwen3::detail::has_packed_layout<K>(type);
    std::vector<std::byte> packed_bytes(packed ? weights.size() : 0);
    if (packed) qwen3::detail::pack_row_groups(w, 0, rows / qwen3::detail::kPackRows, packed_bytes.data());
    w.packed = packed ? packed_bytes.data() : nullptr;
    const std::vector<float> x = random_input(K * tokens, 41);
    qwen3::detail::Input<K, 64> batch(true), alone(true);
    batch.set(x.data(), tokens);
    batch.prepare(type);
    std::vector<float> y(std::size_t(rows) * std::size_t(tokens), -1.f), y1(static_cast<std::size_t>(rows));
    qwen3::detail::matvec_batch(w, batch, y.data(), std::size_t(rows), 0, rows);
    for (int t = 0; t < tokens; ++t) {
        alone.set(x.data() + std::size_t(t) * K, 1);
        alone.prepare(type);
        qwen3::detail::matvec(w, alone, y1.data(), 0, rows);
        for (int r = 0; r < rows; ++r) CHECK(y[std::size_t(t) * std::size_t(rows) + std::size_t(r)] == y1[std::size_t(r)]);
    }
}

TEST_CASE("batched decode kernels give every token exactly what it gets alone") {
    for (DType type : {DType::q8_0, DType::q4_0, DType::q5_0, DType::q4_k, DType::q5_k, DType::q6_k, DType::q4_1})
        for (int tokens : {2, 3, 4, 7, 13, 16}) {
            check_batch<512>(type, 48, tokens);
            check_batch<512>(type, 13, tokens);
        }
}

TEST_CASE("float matrix kernels equal the double-precision product") {
    for (DType type : {DType::f32, DType::f16, DType::bf16}) {
        check_type<256>(type, 13, 5);
        check_type<256>(type, 21, 70);
        check_type<2560>(type, 3, 40);
        check_type<96>(type, 19, 33);
    }
}

namespace {

// Prefill of float weights over a row range [begin, end): every output against the double product of
// the weights with the input (rounded to bf16 first when `bf16_products`), rows outside left alone.
template <int K>
void check_float_prefill(DType type, int rows, int tokens, int begin, int end, bool bf16_products) {
    const std::string type_name = qwen3::dtype_name(type);
    CAPTURE(type_name);
    CAPTURE(K);
    CAPTURE(rows);
    CAPTURE(tokens);
    CAPTURE(begin);
    CAPTURE(end);
    CAPTURE(bf16_products);
    const auto weights = random_rows(type, rows, K, 23);
    const qwen3::Matrix<1 << 20, K> w{type, weights.data()};
    std::vector<float> row(K);
    const std::vector<float> x = random_input(K * tokens, 29);
    auto in = std::make_unique<qwen3::detail::Input<K, 128>>();
    in->allow_bf16_products(bf16_products);
    in->set(x.data(), tokens);
    in->prepare(type);
    std::vector<float> y(std::size_t(rows) * tokens, -7.f);
    qwen3::detail::matmul(w, *in, y.data(), std::size_t(rows), begin, end);
#if defined(QWEN3_HAVE_AVX512_BF16)
    const bool rounded = bf16_products && type == DType::bf16;  // elsewhere the f32 path serves it
#else
    const bool rounded = false;
#endif
    double worst = 0;
    for (int r = 0; r < rows; ++r) {
        qwen3::detail::quant::dequantize_row(type, w.row(r), row.data(), K);
        for (int t = 0; t < tokens; ++t) {
            const float got = y[std::size_t(t) * rows + r];
            if (r < begin || r >= end) {
                CHECK(got == -7.f);
                continue;
            }
            double ref = 0, magnitude = 0;
            for (int k = 0; k < K; ++k) {
                const float xk = x[std::size_t(t) * K + k];
                const double p = double(row[k]) * (rounded ? qwen3::detail::simd::bf16_to_f32(qwen3::detail::simd::f32_to_bf16(xk)) : xk);
                ref += p;
                magnitude += std::fabs(p);
            }
            worst = std::max(worst, std::fabs(double(got) - ref) / (magnitude + 1e-30));
        }
    }
    CHECK(worst < 1e-5);
}

}  // namespace

TEST_CASE("float prefill tiles: partial blocks, row ranges, long rows, bf16 products") {
    for (DType type : {DType::f32, DType::f16, DType::bf16}) {
        check_float_prefill<256>(type, 70, 37, 0, 70, false);      // a block of 64 rows and a short one; a partial group
        check_float_prefill<256>(type, 70, 50, 5, 67, false);      // a range starting and ending inside tiles
        check_float_prefill<9728>(type, 136, 19, 3, 136, false);   // the FFN down projection's K: blocks of 128, 38 slices
    }
    check_float_prefill<256>(DType::bf16, 70, 37, 0, 70, true);
    check_float_prefill<256>(DType::bf16, 70, 50, 5, 67, true);
    check_float_prefill<9728>(DType::bf16, 136, 19, 3, 136, true);
    check_float_prefill<96>(DType::bf16, 19, 33, 0, 19, true);    // a row shorter than a slice
}

// Which column forms this build's kernels read (the other cases are reported as skipped).
#if defined(__AVX512F__)
constexpr bool kFloatColumns = true;
#else
constexpr bool kFloatColumns = false;
#endif
#if defined(QWEN3_HAVE_AVX512_BF16)
constexpr bool kBf16Columns = true;
#else
constexpr bool kBf16Columns = false;
#endif
#if defined(QWEN3_HAVE_AVX512_VNNI) || defined(QWEN3_HAVE_AVX2_QUANT)
constexpr bool kInt8Columns = true;
#else
constexpr bool kInt8Columns = false;
#endif

namespace {
constexpr int kColumnsK = 128, kColumnsT = 21;  // a full group of 16 tokens and a partial one
using ColumnInput = qwen3::detail::Input<kColumnsK, 32>;
constexpr int kColumnGroup = ColumnInput::kColumnGroup;

// Input rows with values where rounding to bf16 is delicate: ties, NaN, infinities, subnormals, the
// largest finite.
std::vector<float> column_test_input() {
    std::vector<float> x = random_input(kColumnsK * kColumnsT, 31);
    const std::uint32_t special[] = {0x3F808000u, 0x3F818000u, 0x7FC00001u, 0xFFA00000u, 0x7F800000u, 0xFF800000u,
                                     0x00000001u, 0x8000FFFFu, 0x7F7FFFFFu, 0xFF7FFFFFu, 0x3F80FFFFu, 0x00000000u};
    for (std::size_t i = 0; i < std::size(special); ++i) std::memcpy(&x[i * 37], &special[i], 4);
    return x;
}
float token_value(const std::vector<float>& x, int t, int k) { return t < kColumnsT ? x[std::size_t(t) * kColumnsK + k] : 0.f; }
}  // namespace

TEST_CASE("prefill f32 column form holds every token's values side by side, bit for bit" * doctest::skip(!kFloatColumns)) {
    const std::vector<float> x = column_test_input();
    auto in = std::make_unique<ColumnInput>();
    in->set(x.data(), kColumnsT);
    in->prepare(DType::f32);
    for (int g = 0; g < 2; ++g)
        for (int k = 0; k < kColumnsK; ++k)
            for (int lane = 0; lane < kColumnGroup; ++lane) {
                const float want = token_value(x, g * kColumnGroup + lane, k), got = in->float_columns(g)[k * kColumnGroup + lane];
                CHECK(std::memcmp(&want, &got, 4) == 0);
            }
}

TEST_CASE("prefill bf16 column form holds pairs of each token's values rounded to bf16" * doctest::skip(!kBf16Columns)) {
    const std::vector<float> x = column_test_input();
    auto in = std::make_unique<ColumnInput>();
    in->set(x.data(), kColumnsT);
    in->allow_bf16_products(true);
    in->prepare(DType::bf16);
    for (int g = 0; g < 2; ++g)
        for (int p = 0; p < kColumnsK / 2; ++p)
            for (int lane = 0; lane < kColumnGroup; ++lane) {
                const int t = g * kColumnGroup + lane;
                const std::uint32_t want = t < kColumnsT ? qwen3::detail::simd::f32_to_bf16(token_value(x, t, 2 * p)) |
                                                               std::uint32_t(qwen3::detail::simd::f32_to_bf16(token_value(x, t, 2 * p + 1))) << 16
                                                         : 0u;
                CHECK(in->bf16_columns(g)[p * kColumnGroup + lane] == want);
            }
}

TEST_CASE("prefill int8 column form holds each token's quantized values, four per lane" * doctest::skip(!kInt8Columns)) {
    std::vector<float> x = column_test_input();
    std::fill(x.begin(), x.begin() + 12 * 37 + 1, 0.5f);  // int8 quantization wants finite values
    auto in = std::make_unique<ColumnInput>();
    in->set(x.data(), kColumnsT);
    in->prepare(DType::q8_0);
    // AVX-512 VNNI reads the values offset by +128 (its unsigned operand), AVX2 as they are
    const std::uint8_t flip = std::uint8_t(ColumnInput::kColumnFlip & 0xFF);
    CHECK(ColumnInput::kColumnFlip == flip * 0x01010101u);
    for (int g = 0; g < 2; ++g)
        for (int k = 0; k < kColumnsK; ++k)
            for (int lane = 0; lane < kColumnGroup; ++lane) {
                const int t = g * kColumnGroup + lane;
                const std::uint8_t want = t < kColumnsT ? std::uint8_t(std::uint8_t(in->q8(t)[k]) ^ flip) : flip;
                CHECK(in->columns(g)[(k / 4 * kColumnGroup + lane) * 4 + k % 4] == want);
            }
    const std::vector<double> xq = quantized_input(x.data(), kColumnsK, 32);  // and the int8 rows are x's quantization
    for (int k = 0; k < kColumnsK; ++k)
        CHECK(double(in->q8(0)[k]) * double(in->scales32(0)[k / 32]) == doctest::Approx(xq[std::size_t(k)]));
}
