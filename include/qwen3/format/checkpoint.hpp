// qwen3/format/checkpoint.hpp - one view of a Qwen3 checkpoint, whichever format it came in.
//
// A GGUF file and a Hugging Face folder (config.json + model.safetensors or shards) both become a
// Checkpoint: the hyperparameters the file declares (ModelParams) and its tensors under canonical
// GGUF-style names ("blk.3.attn_q.weight") with shapes outermost-first ([out, in]). The files stay
// mapped for the Checkpoint's lifetime and the tensors point into them.
//
// What is checked here: that the files are well formed (the format readers), that the architecture
// is "qwen3", that every hyperparameter is present where required, an integer from 0 to 2^31 - 1 or a
// finite number (gguf_params.hpp, hf_config.hpp), and that a sharded folder's index agrees with its
// shards. Whether the values and tensors fit a compiled configuration is checked when a model binds
// the checkpoint (weights.hpp).
#pragma once

#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../error.hpp"
#include "../model_params.hpp"
#include "../tensor.hpp"
#include "gguf.hpp"
#include "gguf_params.hpp"
#include "hf_config.hpp"
#include "mmap.hpp"
#include "safetensors.hpp"

namespace qwen3 {

enum class CheckpointFormat { gguf, safetensors };

class Checkpoint {
public:
    // Opens a .gguf file, or a Hugging Face folder (or its config.json / a .safetensors file in it).
    // Throws Error(io) when nothing readable is at `path` (or a folder has no config.json),
    // Error(format) when a file is malformed or a required hyperparameter is missing or out of range,
    // Error(unsupported) for another architecture, RoPE scaling type or a model tensor's dtype.
    static Checkpoint open(const std::string& path) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) detail::fail(ErrorCode::io, "cannot open ", path, ": ", std::strerror(errno));
        if (S_ISDIR(st.st_mode)) return open_hf_folder(path);
        // a file: GGUF by its magic; config.json or *.safetensors name their folder
        {
            MappedFile probe(path);
            if (probe.size() >= 4 && std::memcmp(probe.data(), "GGUF", 4) == 0) return open_gguf(path);
        }
        std::string_view p(path);
        auto ends_with = [&](std::string_view s) { return p.size() >= s.size() && p.substr(p.size() - s.size()) == s; };
        if (ends_with(".safetensors") || ends_with("config.json") || ends_with(".index.json")) {
            std::size_t slash = path.find_last_of('/');
            return open_hf_folder(slash == std::string::npos ? std::string(".") : path.substr(0, slash));
        }
        if (ends_with(".gguf"))
            detail::fail(ErrorCode::format, path, ": not a GGUF file (the first 4 bytes are not \"GGUF\")");
        detail::fail(ErrorCode::format, path, ": neither a GGUF file nor a Hugging Face model folder");
    }

    const ModelParams& params() const { return params_; }
    CheckpointFormat format() const { return format_; }
    const std::string& path() const { return path_; }
    const std::vector<TensorView>& tensors() const { return tensors_; }
    const TensorView* find(std::string_view canonical_name) const {
        auto it = index_.find(std::string(canonical_name));
        return it == index_.end() ? nullptr : &tensors_[it->second];
    }
    // The parsed GGUF file (tokenizer metadata lives there); nullptr for a Hugging Face folder.
    const gguf::File* gguf_file() const { return gguf_.get(); }
    // The Hugging Face folder ("" for GGUF): tokenizer.json and tokenizer_config.json live there.
    const std::string& folder() const { return folder_; }
    // Bytes of tensor data in the checkpoint.
    std::uint64_t tensor_bytes() const {
        std::uint64_t n = 0;
        for (const TensorView& t : tensors_) n += t.bytes;
        return n;
    }

    // A checkpoint over tensors already in memory (synthetic models, converters). `keep_alive` owns
    // the memory the views point into and lives as long as the checkpoint.
    // Throws Error(invalid_argument) when two tensors have the same name.
    static Checkpoint in_memory(ModelParams params, std::vector<TensorView> tensors, std::shared_ptr<const void> keep_alive,
                                std::string name = "(in memory)") {
        Checkpoint c(CheckpointFormat::gguf, std::move(name));
        c.params_ = std::move(params);
        for (TensorView& t : tensors) {
            if (c.find(t.name)) detail::fail(ErrorCode::invalid_argument, c.path_, ": tensor ", t.name, " given twice");
            c.add(std::move(t));
        }
        c.keep_alive_ = std::move(keep_alive);
        return c;
    }

    // Maps a Hugging Face tensor name to the canonical name; "" for names the model does not use.
    static std::string canonical_name(std::string_view hf) { return detail::canonical_tensor_name(hf); }

private:
    Checkpoint() = default;
    Checkpoint(CheckpointFormat format, std::string path) : format_(format), path_(std::move(path)) {}

    static Checkpoint open_gguf(const std::string& path) {
        Checkpoint c(CheckpointFormat::gguf, path);
        c.gguf_ = std::make_shared<gguf::File>(path);
        c.params_ = detail::read_gguf_params(*c.gguf_);
        for (const gguf::TensorInfo& t : c.gguf_->tensors()) c.add(TensorView{t.name, t.type, t.shape, t.data, t.bytes});
        return c;
    }

    static Checkpoint open_hf_folder(const std::string& folder) {
        Checkpoint c(CheckpointFormat::safetensors, folder);
        c.folder_ = folder;
        const std::string config_path = folder + "/config.json";
        struct stat st {};
        if (::stat(config_path.c_str(), &st) != 0)
            detail::fail(ErrorCode::io, folder, ": no config.json (neither a GGUF file nor a Hugging Face model folder)");
        const std::size_t slash = folder.find_last_of('/', folder.size() > 1 ? folder.size() - 2 : 0);
        detail::HfConfig config = detail::read_hf_config(config_path, slash == std::string::npos ? folder : folder.substr(slash + 1));
        c.params_ = std::move(config.params);
        c.add_safetensors_tensors(folder);
        c.params_.tied_embeddings = config.tie_word_embeddings.value_or(c.find("output.weight") == nullptr);
        // Some exports store lm_head even when tied; the tie decides and the copy is dropped.
        if (c.params_.tied_embeddings) c.remove("output.weight");
        return c;
    }

    // Maps the shards (those model.safetensors.index.json names, or the single model.safetensors)
    // and adds the tensors the model uses, checking that the index and the shards agree.
    void add_safetensors_tensors(const std::string& folder) {
        std::optional<safetensors::Index> index;
        const std::string index_path = folder + "/model.safetensors.index.json";
        struct stat st {};
        if (::stat(index_path.c_str(), &st) == 0) index = safetensors::read_index(index_path);
        const std::vector<std::string> names = index ? index->shards : std::vector<std::string>{"model.safetensors"};
        std::unordered_map<std::string, std::size_t> shard_of;  // canonical name -> shard it came from
        for (std::size_t s = 0; s < names.size(); ++s) {
            const std::string file = folder + "/" + names[s];
            auto shard = std::make_shared<safetensors::File>(file);
            for (const safetensors::TensorInfo& t : shard->tensors()) {
                std::string name = detail::canonical_tensor_name(t.name);
                if (name.empty()) continue;  // not a weight the model uses (e.g. rotary_emb.inv_freq)
                if (auto [it, added] = shard_of.emplace(name, s); !added)
                    detail::fail(ErrorCode::format, file, ": tensor ", t.name, " appears in more than one shard (also in ",
                                 names[it->second], ")");
                if (index) {
                    auto listed = index->shard_of.find(t.name);
                    if (listed == index->shard_of.end())
                        detail::fail(ErrorCode::format, file, ": tensor ", t.name, " is not listed in ", index_path);
                    if (listed->second != s)
                        detail::fail(ErrorCode::format, file, ": tensor ", t.name, " is in this shard, but ", index_path,
                                     " lists it in ", names[listed->second]);
                }
                if (!t.supported)
                    detail::fail(ErrorCode::unsupported, file, ": tensor ", t.name, " has dtype ", t.dtype,
                                 "; supported are F32, F16 and BF16");
                add(TensorView{name, t.type, t.shape, t.data, t.bytes});
            }
            shards_.push_back(std::move(shard));
        }
        if (index)
            for (const auto& [hf_name, s] : index->shard_of)
                if (std::string name = detail::canonical_tensor_name(hf_name); !name.empty() && !find(name))
                    detail::fail(ErrorCode::format, index_path, ": lists tensor ", hf_name, " in ", names[s],
                                 ", which does not hold it");
    }

    void remove(std::string_view canonical_name) {
        auto it = index_.find(std::string(canonical_name));
        if (it == index_.end()) return;
        tensors_.erase(tensors_.begin() + std::ptrdiff_t(it->second));
        index_.clear();
        for (std::size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
    }

    void add(TensorView view) {
        index_.emplace(view.name, tensors_.size());
        tensors_.push_back(std::move(view));
    }

    CheckpointFormat format_ = CheckpointFormat::gguf;
    std::string path_, folder_;
    ModelParams params_;
    std::vector<TensorView> tensors_;
    std::unordered_map<std::string, std::size_t> index_;
    std::shared_ptr<gguf::File> gguf_;
    std::vector<std::shared_ptr<safetensors::File>> shards_;
    std::shared_ptr<const void> keep_alive_;
};

}  // namespace qwen3
