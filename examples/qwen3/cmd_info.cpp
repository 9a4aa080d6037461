// qwen3 info MODEL [--tensors]: what a checkpoint holds and which compiled variant runs it.
#include <cstdio>
#include <map>
#include <string>

#include <qwen3/qwen3.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "variants.hpp"

namespace {

std::string human_bytes(std::uint64_t n) {
    char buf[32];
    if (n >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", double(n) / double(1ull << 30));
    else if (n >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.2f MiB", double(n) / double(1ull << 20));
    else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
    return buf;
}

const char* scaling_name(qwen3::RopeScaling::Kind k) {
    switch (k) {
        case qwen3::RopeScaling::Kind::none: return "none";
        case qwen3::RopeScaling::Kind::linear: return "linear";
        case qwen3::RopeScaling::Kind::yarn: return "yarn";
    }
    return "?";
}

}  // namespace

int run_info(int argc, char** argv) {
    cli::Args args(argc, argv, {{"--tensors", "", false}});
    if (args.positional().size() != 1) throw cli::UsageError("expected one MODEL path");
    const qwen3::Checkpoint ckpt = qwen3::Checkpoint::open(args.positional()[0]);
    const qwen3::ModelParams& p = ckpt.params();
    const std::string variant = qwen3::matching_variant<tool::Variants>(p);

    std::printf("file:            %s\n", ckpt.path().c_str());
    std::printf("format:          %s\n", ckpt.format() == qwen3::CheckpointFormat::gguf ? "GGUF" : "Hugging Face safetensors");
    std::printf("architecture:    %s\n", p.architecture.c_str());
    if (!p.name.empty()) std::printf("name:            %s\n", p.name.c_str());
    std::printf("variant:         %s\n", variant.empty() ? ("none compiled; " + qwen3::detail::variant_hint(p)).c_str() : variant.c_str());
    std::printf("hidden:          %llu\n", (unsigned long long)p.hidden);
    std::printf("layers:          %llu\n", (unsigned long long)p.layers);
    std::printf("heads:           %llu query, %llu key/value, head_dim %llu\n", (unsigned long long)p.heads,
                (unsigned long long)p.kv_heads, (unsigned long long)p.head_dim);
    std::printf("ffn:             %llu\n", (unsigned long long)p.ffn);
    std::printf("vocab:           %llu (%s embeddings)\n", (unsigned long long)p.vocab, p.tied_embeddings ? "tied" : "untied");
    std::printf("context length:  %llu\n", (unsigned long long)p.context_length);
    std::printf("rope theta:      %g (scaling: %s", p.rope_theta, scaling_name(p.rope_scaling.kind));
    if (p.rope_scaling.kind != qwen3::RopeScaling::Kind::none)
        std::printf(", factor %g, original context %llu", p.rope_scaling.factor, (unsigned long long)p.rope_scaling.original_context);
    std::printf(")\n");
    std::printf("rms_norm_eps:    %g\n", p.rms_norm_eps);

    std::map<std::string, std::pair<int, std::uint64_t>> by_type;
    std::uint64_t total_bytes = 0, total_params = 0;
    for (const qwen3::TensorView& t : ckpt.tensors()) {
        auto& [count, bytes] = by_type[qwen3::dtype_name(t.type)];
        ++count;
        bytes += t.bytes;
        total_bytes += t.bytes;
        total_params += t.shape.elements();
    }
    std::printf("tensors:         %zu, %llu parameters, %s\n", ckpt.tensors().size(), (unsigned long long)total_params,
                human_bytes(total_bytes).c_str());
    for (const auto& [type, cb] : by_type)
        std::printf("  %-6s         %d tensors, %s\n", type.c_str(), cb.first, human_bytes(cb.second).c_str());
    if (args.has("--tensors")) {
        std::printf("\n%-32s %-6s %-20s %s\n", "name", "type", "shape", "bytes");
        for (const qwen3::TensorView& t : ckpt.tensors())
            std::printf("%-32s %-6s %-20s %llu\n", t.name.c_str(), qwen3::dtype_name(t.type), t.shape.to_string().c_str(),
                        (unsigned long long)t.bytes);
    }
    return 0;
}
