// A program built from single_include/qwen3_quantize.hpp (which includes qwen3.hpp beside it) alone:
// quantizes a model, so that test_single_header can compare the file, byte for byte, with what the
// multi-header quantizer writes.
//
//   single_header_quantize IN OUT TYPE
#include "qwen3_quantize.hpp"

#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: single_header_quantize IN OUT TYPE\n");
        return 2;
    }
    try {
        const qwen3::quant::FileTypeInfo* type = qwen3::quant::find_file_type(argv[3]);
        if (!type) {
            std::fprintf(stderr, "unknown type %s\n", argv[3]);
            return 2;
        }
        qwen3::quant::QuantizeOptions options;
        options.threads = 2;
        qwen3::quant::quantize_model(argv[1], argv[2], type->type, options);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
