// qwen3/quant/mixture.hpp - which type each tensor of a quantized file gets.
//
// A file type such as Q4_K_M names a mixture, not one type: llama-quantize keeps norms in F32, gives
// the output projection (or the tied embedding that doubles as it) Q6_K, and spends more bits on
// some attn_v and ffn_down layers. Files made here follow the same rules, so they have the tensor
// types of llama-quantize's files for the same input (the rules of llama.cpp 82bb485,
// src/llama-quant.cpp, restated for the dense Qwen3 models):
//
//  * tensors of rank 1 are F32;
//  * F16 / BF16 files: every matrix in that type;
//  * output.weight, and token_embd.weight when the embeddings are tied: Q8_0 in a Q8_0 file or when
//    its rows are not whole blocks of the file's base type, Q6_K otherwise;
//  * Q4_K_M and Q5_K_M: attn_v and ffn_down get Q6_K in "more bits" layers: the first and last
//    eighth of the layers and every third layer between (i < n/8, i >= 7n/8, (i - n/8) % 3 == 2,
//    counting the tensors in llama.cpp's order);
//  * everything else: the base type;
//  * a K-quant type for rows that are not whole 256-element super-blocks falls back to a 32-element
//    type: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0 (and to F16 when rows are not whole blocks of
//    32 either; llama.cpp refuses those files, which no Qwen3 model produces).
//
// Tensors are listed in llama.cpp's order too (tensors outside the blocks first, then block by block,
// each group by name), which lets a file made here equal llama-quantize's byte for byte where the
// encodings agree (F16, BF16, Q8_0, Q4_0, Q5_0).
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../error.hpp"
#include "../format/checkpoint.hpp"
#include "../tensor.hpp"

namespace qwen3::quant {

// llama.cpp's file type numbers (general.file_type, enum llama_ftype).
enum class FileType : std::uint32_t {
    f16 = 1,
    q4_0 = 2,
    q8_0 = 7,
    q5_0 = 8,
    q4_k_m = 15,
    q5_k_m = 17,
    q6_k = 18,
    bf16 = 32,
};

struct FileTypeInfo {
    FileType type;
    const char* name;  // as llama-quantize spells it
    DType base;        // the type of most matrices
};

inline constexpr FileTypeInfo kFileTypes[] = {
    {FileType::f16, "F16", DType::f16},       {FileType::bf16, "BF16", DType::bf16},
    {FileType::q8_0, "Q8_0", DType::q8_0},    {FileType::q4_0, "Q4_0", DType::q4_0},
    {FileType::q5_0, "Q5_0", DType::q5_0},    {FileType::q4_k_m, "Q4_K_M", DType::q4_k},
    {FileType::q5_k_m, "Q5_K_M", DType::q5_k}, {FileType::q6_k, "Q6_K", DType::q6_k},
};

// The file type named `name` (case does not matter); nullptr when there is none.
inline const FileTypeInfo* find_file_type(std::string_view name) noexcept {
    for (const FileTypeInfo& info : kFileTypes) {
        std::string_view known = info.name;
        if (known.size() == name.size() &&
            std::equal(known.begin(), known.end(), name.begin(), [](char a, char b) {
                return std::toupper(static_cast<unsigned char>(a)) == std::toupper(static_cast<unsigned char>(b));
            }))
            return &info;
    }
    return nullptr;
}

inline const FileTypeInfo& file_type_info(FileType type) {
    for (const FileTypeInfo& info : kFileTypes)
        if (info.type == type) return info;
    qwen3::detail::fail(ErrorCode::invalid_argument, "unknown file type ", static_cast<std::uint32_t>(type));
}

// "F16, BF16, Q8_0, ..." for messages.
inline std::string file_type_names() {
    std::string out;
    for (const FileTypeInfo& info : kFileTypes) out += (out.empty() ? "" : ", ") + std::string(info.name);
    return out;
}

// One tensor of the output file: where its values come from and the type it is written in.
struct PlannedTensor {
    const TensorView* source;  // in the input checkpoint
    DType type;
};

}  // namespace qwen3::quant

namespace qwen3::detail {

// The block number of "blk.N.*", -1 for other names (llama.cpp's order puts those first).
inline long block_number(std::string_view name) {
    constexpr std::string_view prefix = "blk.";
    if (name.substr(0, prefix.size()) != prefix) return -1;
    long n = 0;
    std::size_t i = prefix.size();
    if (i >= name.size() || name[i] < '0' || name[i] > '9') return -1;
    for (; i < name.size() && name[i] >= '0' && name[i] <= '9' && n < 100000000; ++i) n = n * 10 + (name[i] - '0');
    return i < name.size() && name[i] == '.' ? n : -1;
}

inline bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// llama.cpp's use_more_bits(i_layer, n_layers).
inline bool more_bits_layer(long i, long n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// A type whose blocks fit rows of `cols` elements: K-quants fall back as llama.cpp's do.
inline DType fit_rows(DType type, std::uint64_t cols) {
    if (cols % dtype_info(type).block_elems == 0) return type;
    switch (type) {
        case DType::q4_k: type = DType::q5_0; break;
        case DType::q5_k: type = DType::q5_1; break;
        case DType::q6_k: type = DType::q8_0; break;
        default: break;
    }
    return cols % dtype_info(type).block_elems == 0 ? type : DType::f16;
}

}  // namespace qwen3::detail

namespace qwen3::quant {

// The output tensors of quantizing `checkpoint` to `file_type`, in output order.
// The checkpoint's tensors must outlive the result (it points at them).
inline std::vector<PlannedTensor> plan_tensors(const Checkpoint& checkpoint, FileType file_type) {
    const FileTypeInfo& info = file_type_info(file_type);
    std::vector<const TensorView*> order;
    for (const TensorView& t : checkpoint.tensors()) order.push_back(&t);
    std::stable_sort(order.begin(), order.end(), [](const TensorView* a, const TensorView* b) {
        const long la = detail::block_number(a->name), lb = detail::block_number(b->name);
        return la != lb ? la < lb : a->name < b->name;
    });

    const bool tied = checkpoint.find("output.weight") == nullptr;
    const bool k_mixture = file_type == FileType::q4_k_m || file_type == FileType::q5_k_m;
    const bool quantized_base = info.base != DType::f16 && info.base != DType::bf16;
    const long layers = long(checkpoint.params().layers);
    long attn_v_total = 0, attn_v_seen = 0, ffn_down_seen = 0;
    for (const TensorView* t : order)
        if (detail::contains(t->name, "attn_v.weight")) ++attn_v_total;

    std::vector<PlannedTensor> plan;
    for (const TensorView* t : order) {
        const std::string& name = t->name;
        const std::uint64_t cols = t->shape.cols();
        const bool matrix = t->shape.rank >= 2 && name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0 &&
                            !detail::contains(name, "_norm.weight");
        if (!matrix) {
            plan.push_back({t, t->shape.rank < 2 ? DType::f32 : t->type});
            continue;
        }
        DType type = info.base;
        if (quantized_base) {
            if (name == "output.weight" || (tied && name == "token_embd.weight")) {
                if (cols % dtype_info(info.base).block_elems != 0) type = DType::q8_0;
                else if (info.base != DType::q8_0) type = DType::q6_k;
            } else if (detail::contains(name, "attn_v.weight")) {
                if (k_mixture && detail::more_bits_layer(attn_v_seen, attn_v_total)) type = DType::q6_k;
                ++attn_v_seen;
            } else if (detail::contains(name, "ffn_down")) {
                if (k_mixture && detail::more_bits_layer(ffn_down_seen, layers)) type = DType::q6_k;
                ++ffn_down_seen;
            }
        }
        plan.push_back({t, detail::fit_rows(type, cols)});
    }
    return plan;
}

}  // namespace qwen3::quant
