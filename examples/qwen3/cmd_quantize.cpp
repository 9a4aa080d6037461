// qwen3 quantize IN OUT TYPE [-t N] [-q]: a quantized GGUF file that qwen3 and llama.cpp both load.
#include <chrono>
#include <cstdio>
#include <string>

#include <qwen3/quantize.hpp>

#include "cli.hpp"
#include "commands.hpp"

int run_quantize(int argc, char** argv) {
    cli::Args args(argc, argv, {{"--threads", "-t", true}, {"--quiet", "-q", false}});
    if (args.positional().size() != 3) throw cli::UsageError("expected IN OUT TYPE");
    const std::string& input = args.positional()[0];
    const std::string& output = args.positional()[1];
    const qwen3::quant::FileTypeInfo* type = qwen3::quant::find_file_type(args.positional()[2]);
    if (!type)
        throw cli::UsageError("unknown TYPE \"" + args.positional()[2] + "\"; one of " + qwen3::quant::file_type_names());

    qwen3::quant::QuantizeOptions options;
    options.threads = int(args.get_int("--threads", qwen3::default_thread_count(), 1, 1024));
    const bool quiet = args.has("--quiet");
    options.on_tensor = [quiet](const qwen3::quant::TensorReport& t) {
        if (quiet) return;
        std::printf("[%4zu/%4zu] %-28s %-20s %5s -> %-5s %9.2f MiB -> %9.2f MiB  %6.2f s\n", t.index, t.count,
                    std::string(t.name).c_str(), t.shape.to_string().c_str(), qwen3::dtype_name(t.from), qwen3::dtype_name(t.to),
                    double(t.bytes_in) / (1 << 20), double(t.bytes_out) / (1 << 20), t.seconds);
        std::fflush(stdout);
    };
    const auto start = std::chrono::steady_clock::now();
    const qwen3::quant::QuantizeResult result = qwen3::quant::quantize_model(input, output, type->type, options);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("wrote %s (%s, %zu tensors): %.2f MiB -> %.2f MiB of weights in %.1f s with %d threads\n", output.c_str(),
                type->name, result.tensor_types.size(), double(result.bytes_in) / (1 << 20), double(result.bytes_out) / (1 << 20),
                seconds, options.threads);
    return 0;
}
