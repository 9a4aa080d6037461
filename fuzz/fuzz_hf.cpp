// Fuzz target: the files of a Hugging Face model folder. The first byte chooses which file the rest
// of the input is; the other files of the folder are the valid ones of fuzz/seeds.hpp.
//
//   0  a .safetensors file, read alone: every tensor lies in the data section, and they tile it
//   1  config.json of a folder with a valid model.safetensors      -> Checkpoint, Model, forward pass
//   2  model.safetensors.index.json of a folder with two shards     -> the same
//   3  model.safetensors of a folder with a valid config.json       -> the same
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <qwen3/format/checkpoint.hpp>
#include <qwen3/format/safetensors.hpp>
#include <qwen3/model.hpp>

#include "fuzz_support.hpp"
#include "seeds.hpp"

namespace qwen3_fuzz::hf_target {

// The safetensors reader's promises, checked from the raw bytes.
inline void check_safetensors(std::string_view bytes, const qwen3::safetensors::File& f) {
    std::uint64_t header = 0;
    std::memcpy(&header, bytes.data(), 8);
    const std::uint64_t data_begin = 8 + header;
    check(data_begin <= bytes.size(), "accepted a header longer than the file");
    if (f.tensors().empty()) {
        check(data_begin == bytes.size(), "no tensors but a non-empty data section");
        return;
    }
    std::vector<const qwen3::safetensors::TensorInfo*> order;
    for (const qwen3::safetensors::TensorInfo& t : f.tensors()) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->data != b->data ? a->data < b->data : a->bytes < b->bytes; });
    // sorted by position, each starts where the previous ended and together they fill the data section
    const std::byte* data = order.front()->data;
    std::uint64_t at = 0;
    for (const auto* t : order) {
        check(std::uint64_t(t->data - data) == at, "tensor ", show(t->name), " does not start where the previous ends");
        at += t->bytes;
        std::uint64_t elements = 1;
        for (std::uint32_t d = 0; d < t->shape.rank; ++d) elements *= t->shape[d];
        check(elements * qwen3::safetensors::dtype_bits(t->dtype) == t->bytes * 8, "tensor ", show(t->name),
              " byte count differs from its shape");
        check(f.find(t->name) == t, "find does not find ", show(t->name));
    }
    check(data_begin + at == bytes.size(), "tensors cover ", at, " bytes of a ", bytes.size() - data_begin, "-byte data section");
}

inline void check_model(const std::string& folder) {
    qwen3::Model<FuzzConfig> model(qwen3::Checkpoint::open(folder));
    static const auto pool = std::make_shared<qwen3::ThreadPool>(1);
    qwen3::Session<FuzzConfig> session(model, pool);
    const std::int32_t prompt[] = {2, FuzzConfig::vocab - 1};
    session.eval(prompt);
    session.eval(5);
}

struct Folders {
    ScratchDir config, index, shard;
    Folders() {
        config.write("model.safetensors", seed_safetensors());
        index.write("config.json", seed_config_json());
        index.write(kSeedShard1, seed_safetensors(0, kSeedShardSplit));
        index.write(kSeedShard2, seed_safetensors(kSeedShardSplit));
        shard.write("config.json", seed_config_json());
    }
};

void run(const std::uint8_t* data, std::size_t size) {
    static Folders folders;
    static ScratchFile file;
    Input in(data, size);
    const int mode = in.byte() % 4;
    const std::string_view payload = in.rest();
    try {
        switch (mode) {
            case 0: {
                file.write(payload);
                const qwen3::safetensors::File f(file.path());
                check_safetensors(payload, f);
                break;
            }
            case 1:
                folders.config.write("config.json", payload);
                check_model(folders.config.path());
                break;
            case 2:
                folders.index.write("model.safetensors.index.json", payload);
                check_model(folders.index.path());
                break;
            default:
                folders.shard.write("model.safetensors", payload);
                check_model(folders.shard.path());
                break;
        }
    } catch (const qwen3::Error&) {
    }
}

}  // namespace qwen3_fuzz::hf_target

#ifndef QWEN3_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    qwen3_fuzz::hf_target::run(data, size);
    return 0;
}
#endif
