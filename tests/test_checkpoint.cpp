// Checkpoint::open over malformed folders, configs, indexes and GGUF metadata: each case is refused
// with its specific ErrorCode and a message naming the file and the key or tensor; valid variants
// (YaRN, transformers 5's rope_parameters, sharded folders) read back the values the file states.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <functional>

#include <qwen3/format/checkpoint.hpp>
#include <qwen3/format/gguf_writer.hpp>

#include "support.hpp"

using qwen3::Checkpoint;
using qwen3::DType;
using qwen3::ErrorCode;
using qwen3::RopeScaling;

namespace {

struct StTensor {
    std::string name, dtype, shape;  // shape as JSON, e.g. "[4, 8]"
    std::size_t bytes;
};

// A safetensors file holding `tensors` back to back (data: a recognisable byte pattern).
std::string safetensors_bytes(const std::vector<StTensor>& tensors) {
    std::string header = "{";
    std::size_t offset = 0;
    for (const StTensor& t : tensors) {
        if (header.size() > 1) header += ",";
        header += "\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":" + t.shape + ",\"data_offsets\":[" +
                  std::to_string(offset) + "," + std::to_string(offset + t.bytes) + "]}";
        offset += t.bytes;
    }
    header += "}";
    std::string out(8, '\0');
    std::uint64_t n = header.size();
    std::memcpy(out.data(), &n, 8);
    out += header;
    for (std::size_t i = 0; i < offset; ++i) out += char(i % 251);
    return out;
}

const std::vector<StTensor> kSmallModel = {
    {"model.embed_tokens.weight", "F32", "[4, 8]", 128},
    {"model.norm.weight", "BF16", "[8]", 16},
    {"model.layers.0.self_attn.q_proj.weight", "F16", "[8, 8]", 128},
    {"model.rotary_emb.inv_freq", "I64", "[2]", 16},  // not a model weight: ignored whatever its dtype
};

// A config.json like Qwen3's (shapes of a toy model), with `extra` members appended (later keys of
// the same name are not allowed: use `replace` to change a value).
std::string config_json(const std::string& replace_key = "", const std::string& replace_value = "",
                        const std::string& extra = "") {
    std::vector<std::pair<std::string, std::string>> members = {
        {"architectures", "[\"Qwen3ForCausalLM\"]"}, {"model_type", "\"qwen3\""},  {"hidden_size", "8"},
        {"num_hidden_layers", "1"},                  {"num_attention_heads", "2"}, {"num_key_value_heads", "1"},
        {"head_dim", "4"},                           {"intermediate_size", "16"},  {"vocab_size", "4"},
        {"max_position_embeddings", "40960"},        {"rms_norm_eps", "1e-06"},    {"rope_theta", "1000000.0"},
        {"rope_scaling", "null"},                    {"tie_word_embeddings", "true"}};
    std::string out = "{";
    bool replaced = replace_key.empty();
    for (auto& [key, value] : members) {
        if (key == replace_key) {
            replaced = true;
            if (replace_value.empty()) continue;  // remove the member
            value = replace_value;
        }
        out += (out.size() > 1 ? ", \"" : "\"") + key + "\": " + value;
    }
    if (!replaced) out += ", \"" + replace_key + "\": " + replace_value;
    if (!extra.empty()) out += ", " + extra;
    return out + "}";
}

// A Hugging Face folder with config.json and model.safetensors.
void write_folder(const test::TempDir& dir, const std::string& config, const std::vector<StTensor>& tensors = kSmallModel) {
    test::write_file(dir.file("config.json"), config);
    test::write_file(dir.file("model.safetensors"), safetensors_bytes(tensors));
}

void check_open_rejects(const std::string& path, ErrorCode code, const std::string& needle) {
    std::string msg;
    bool ok = test::throws_error([&] { Checkpoint::open(path); }, code, needle, &msg);
    CHECK_MESSAGE(ok, "expected ", qwen3::to_string(code), " containing '", needle, "', got: ",
                  msg.empty() ? std::string("no qwen3::Error") : msg);
}

void check_config_rejects(const std::string& config, ErrorCode code, const std::string& needle) {
    test::TempDir dir;
    write_folder(dir, config);
    check_open_rejects(dir.path(), code, needle);
}

// A minimal Qwen3 GGUF, with `edit` applied to the writer before it is written.
std::string write_gguf(const test::TempDir& dir, const std::function<void(qwen3::gguf::Writer&)>& edit = {}) {
    qwen3::gguf::Writer w;
    w.set_string("general.architecture", "qwen3");
    w.set_string("general.name", "toy");
    w.set_u32("qwen3.embedding_length", 8);
    w.set_u32("qwen3.block_count", 1);
    w.set_u32("qwen3.attention.head_count", 2);
    w.set_u32("qwen3.attention.head_count_kv", 1);
    w.set_u32("qwen3.attention.key_length", 4);
    w.set_u32("qwen3.feed_forward_length", 16);
    w.set_u32("qwen3.context_length", 40960);
    w.set_f32("qwen3.rope.freq_base", 1000000.0f);
    w.set_f32("qwen3.attention.layer_norm_rms_epsilon", 1e-6f);
    static const std::vector<float> embedding(32, 0.5f);
    w.add_tensor("token_embd.weight", DType::f32, qwen3::make_shape(4, 8), std::as_bytes(std::span<const float>(embedding)));
    if (edit) edit(w);
    const std::string path = dir.file("model.gguf");
    w.write(path);
    return path;
}

}  // namespace

TEST_CASE("checkpoint: a Hugging Face folder reads its hyperparameters and model tensors") {
    test::TempDir dir;
    write_folder(dir, config_json());
    Checkpoint c = Checkpoint::open(dir.path());
    const qwen3::ModelParams& p = c.params();
    CHECK(c.format() == qwen3::CheckpointFormat::safetensors);
    CHECK(p.architecture == "qwen3");
    CHECK(p.hidden == 8);
    CHECK(p.layers == 1);
    CHECK(p.heads == 2);
    CHECK(p.kv_heads == 1);
    CHECK(p.head_dim == 4);
    CHECK(p.ffn == 16);
    CHECK(p.vocab == 4);
    CHECK(p.context_length == 40960);
    CHECK(p.rms_norm_eps == 1e-6);
    CHECK(p.rope_theta == 1e6);
    CHECK(p.rope_scaling.kind == RopeScaling::Kind::none);
    CHECK(p.tied_embeddings);
    CHECK(c.tensors().size() == 3);  // inv_freq is not a model weight
    REQUIRE(c.find("blk.0.attn_q.weight"));
    CHECK(c.find("blk.0.attn_q.weight")->type == DType::f16);
    CHECK(c.find("output_norm.weight")->type == DType::bf16);
    CHECK(c.find("token_embd.weight")->shape == qwen3::make_shape(4, 8));
    // config.json or model.safetensors name their folder too
    CHECK(Checkpoint::open(dir.file("config.json")).tensors().size() == 3);
    CHECK(Checkpoint::open(dir.file("model.safetensors")).params().hidden == 8);
}

TEST_CASE("checkpoint: paths that hold no checkpoint") {
    test::TempDir dir;
    check_open_rejects(dir.file("absent.gguf"), ErrorCode::io, "absent.gguf: No such file or directory");
    check_open_rejects(dir.file("absent/model"), ErrorCode::io, "cannot open " + dir.file("absent/model"));
    check_open_rejects(dir.path(), ErrorCode::io, "no config.json");
    test::write_file(dir.file("fake.gguf"), "PK\3\4 this is a zip file");
    check_open_rejects(dir.file("fake.gguf"), ErrorCode::format, "fake.gguf: not a GGUF file");
    test::write_file(dir.file("empty.gguf"), "");
    check_open_rejects(dir.file("empty.gguf"), ErrorCode::format, "empty.gguf: not a GGUF file");
    test::write_file(dir.file("weights.bin"), "GGU");
    check_open_rejects(dir.file("weights.bin"), ErrorCode::format, "neither a GGUF file nor a Hugging Face model folder");
    // config.json present, weights absent
    test::write_file(dir.file("config.json"), config_json());
    check_open_rejects(dir.path(), ErrorCode::io, "model.safetensors");
}

TEST_CASE("checkpoint: config.json must be a JSON object naming qwen3") {
    check_config_rejects("{\"model_type\": \"qwen3\",", ErrorCode::format, "config.json: invalid JSON at byte");
    check_config_rejects("[1, 2]", ErrorCode::format, "config.json: not a JSON object");
    check_config_rejects(config_json("model_type", "\"qwen3_moe\""), ErrorCode::unsupported, "model_type is \"qwen3_moe\"");
    check_config_rejects(config_json("model_type", "\"llama\""), ErrorCode::unsupported,
                         "model_type is \"llama\"; this library runs Qwen3 dense models");
    check_config_rejects(config_json("model_type", ""), ErrorCode::format, "missing or non-string \"model_type\"");
    check_config_rejects(config_json("model_type", "3"), ErrorCode::format, "missing or non-string \"model_type\"");
    check_config_rejects(config_json("", "", "\"hidden_size\": 16"), ErrorCode::format, "duplicate key \"hidden_size\"");
    std::string deep = config_json("", "", "\"x\": " + std::string(40, '[') + std::string(40, ']'));
    check_config_rejects(deep, ErrorCode::format, "nesting deeper than the limit of 32");
    // a config.json of 17 MiB (a sparse file) is refused before it is parsed
    test::TempDir dir;
    write_folder(dir, config_json());
    std::filesystem::resize_file(dir.file("config.json"), 17u << 20);
    check_open_rejects(dir.path(), ErrorCode::format, "config.json: 17825792 bytes, over the limit of 16777216");
}

TEST_CASE("checkpoint: config.json hyperparameters are present integers in range") {
    check_config_rejects(config_json("hidden_size", ""), ErrorCode::format, "config.json: missing \"hidden_size\"");
    check_config_rejects(config_json("hidden_size", "null"), ErrorCode::format, "missing \"hidden_size\"");
    const std::string range = "\"hidden_size\" must be an integer from 0 to 2147483647, found ";
    check_config_rejects(config_json("hidden_size", "-8"), ErrorCode::format, range + "-8");
    check_config_rejects(config_json("hidden_size", "8.5"), ErrorCode::format, range + "8.5");
    check_config_rejects(config_json("hidden_size", "\"8\""), ErrorCode::format, range + "\"8\"");
    check_config_rejects(config_json("hidden_size", "1e30"), ErrorCode::format, range + "1e30");
    check_config_rejects(config_json("hidden_size", "2147483648"), ErrorCode::format, range + "2147483648");
    check_config_rejects(config_json("hidden_size", "123456789012345678901234567890"), ErrorCode::format,
                         range + "123456789012345678901234567890");
    check_config_rejects(config_json("num_key_value_heads", "-1"), ErrorCode::format, "\"num_key_value_heads\" must be an integer");
    check_config_rejects(config_json("vocab_size", "true"), ErrorCode::format, "\"vocab_size\" must be an integer");
    check_config_rejects(config_json("rms_norm_eps", "\"tiny\""), ErrorCode::format, "\"rms_norm_eps\" must be a finite number, found \"tiny\"");
    check_config_rejects(config_json("rope_theta", "1e999"), ErrorCode::format, "\"rope_theta\" must be a finite number, found 1e999");
    check_config_rejects(config_json("tie_word_embeddings", "\"yes\""), ErrorCode::format,
                         "\"tie_word_embeddings\" must be true or false, found \"yes\"");
    // an integer written as a float is read as Python reads it
    test::TempDir dir;
    write_folder(dir, config_json("hidden_size", "8.0"));
    CHECK(Checkpoint::open(dir.path()).params().hidden == 8);
}

TEST_CASE("checkpoint: rope_scaling is none, linear or YaRN, with its parameters read") {
    test::TempDir dir;
    write_folder(dir, config_json("rope_scaling", R"({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768})"));
    qwen3::ModelParams p = Checkpoint::open(dir.path()).params();
    CHECK(p.rope_scaling.kind == RopeScaling::Kind::yarn);
    CHECK(p.rope_scaling.factor == 4.0);
    CHECK(p.rope_scaling.original_context == 32768);
    CHECK(p.rope_scaling.beta_fast == 32.0);
    CHECK(p.rope_scaling.beta_slow == 1.0);
    CHECK(p.rope_scaling.attention_factor == 0.0);

    write_folder(dir, config_json("rope_scaling", R"({"type": "yarn", "factor": 2, "beta_fast": 16, "beta_slow": 2, "attention_factor": 1.25})"));
    p = Checkpoint::open(dir.path()).params();
    CHECK(p.rope_scaling.kind == RopeScaling::Kind::yarn);
    CHECK(p.rope_scaling.factor == 2.0);
    CHECK(p.rope_scaling.original_context == 40960);  // max_position_embeddings when not stated
    CHECK(p.rope_scaling.beta_fast == 16.0);
    CHECK(p.rope_scaling.beta_slow == 2.0);
    CHECK(p.rope_scaling.attention_factor == 1.25);

    write_folder(dir, config_json("rope_scaling", R"({"rope_type": "linear", "factor": 8})"));
    CHECK(Checkpoint::open(dir.path()).params().rope_scaling.kind == RopeScaling::Kind::linear);
    write_folder(dir, config_json("rope_scaling", R"({"rope_type": "default"})"));
    CHECK(Checkpoint::open(dir.path()).params().rope_scaling.kind == RopeScaling::Kind::none);

    // transformers 5 writes rope_parameters, with rope_theta inside
    write_folder(dir, config_json("rope_theta", "", R"("rope_parameters": {"rope_theta": 5000000.0, "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768})"));
    p = Checkpoint::open(dir.path()).params();
    CHECK(p.rope_theta == 5e6);
    CHECK(p.rope_scaling.kind == RopeScaling::Kind::yarn);
    CHECK(p.rope_scaling.original_context == 32768);

    check_config_rejects(config_json("rope_scaling", R"({"rope_type": "dynamic", "factor": 2})"), ErrorCode::unsupported,
                         "rope_scaling type \"dynamic\" is not supported");
    check_config_rejects(config_json("rope_scaling", R"({"rope_type": "llama3", "factor": 8})"), ErrorCode::unsupported,
                         "type \"llama3\" is not supported");
    check_config_rejects(config_json("rope_scaling", R"({"factor": 2})"), ErrorCode::format, "rope_scaling needs a string \"rope_type\"");
    check_config_rejects(config_json("rope_scaling", R"({"rope_type": 1})"), ErrorCode::format, "needs a string \"rope_type\"");
    check_config_rejects(config_json("rope_scaling", "\"yarn\""), ErrorCode::format, "\"rope_scaling\" must be an object or null");
    check_config_rejects(config_json("rope_scaling", R"({"rope_type": "yarn", "factor": "4"})"), ErrorCode::format,
                         "\"rope_scaling.factor\" must be a finite number");
    check_config_rejects(config_json("rope_scaling", R"({"rope_type": "yarn", "factor": 4, "original_max_position_embeddings": -1})"),
                         ErrorCode::format, "\"rope_scaling.original_max_position_embeddings\" must be an integer from 0 to 2147483647, found -1");
    check_config_rejects(config_json("rope_scaling", R"({"rope_type": "yarn", "factor": 4, "original_max_position_embeddings": 1e300})"),
                         ErrorCode::format, "found 1e300");
}

TEST_CASE("checkpoint: tensor dtypes the model cannot compute with are refused by name") {
    test::TempDir dir;
    std::vector<StTensor> tensors = kSmallModel;
    tensors[2].dtype = "I64";
    tensors[2].bytes = 8 * 64;
    write_folder(dir, config_json(), tensors);
    check_open_rejects(dir.path(), ErrorCode::unsupported,
                       "model.safetensors: tensor model.layers.0.self_attn.q_proj.weight has dtype I64; supported are F32, F16 and BF16");
    tensors[2].dtype = "F8_E4M3";
    tensors[2].bytes = 64;
    write_folder(dir, config_json(), tensors);
    check_open_rejects(dir.path(), ErrorCode::unsupported, "has dtype F8_E4M3");
}

TEST_CASE("checkpoint: a tied checkpoint that also stores lm_head drops the copy") {
    test::TempDir dir;
    std::vector<StTensor> tensors = kSmallModel;
    tensors.push_back({"lm_head.weight", "F32", "[4, 8]", 128});
    write_folder(dir, config_json(), tensors);
    Checkpoint tied = Checkpoint::open(dir.path());
    CHECK(tied.params().tied_embeddings);
    CHECK_FALSE(tied.find("output.weight"));
    CHECK(tied.tensors().size() == 3);
    for (const auto& t : tied.tensors()) CHECK(t.name != "output.weight");
    write_folder(dir, config_json("tie_word_embeddings", "false"), tensors);
    Checkpoint untied = Checkpoint::open(dir.path());
    CHECK_FALSE(untied.params().tied_embeddings);
    CHECK(untied.find("output.weight"));
}

TEST_CASE("checkpoint: a sharded folder's index must be consistent with its shards") {
    const StTensor embed = kSmallModel[0], norm = kSmallModel[1], q = kSmallModel[2];
    auto folder = [&](const test::TempDir& dir, const std::string& index) {
        test::write_file(dir.file("config.json"), config_json());
        test::write_file(dir.file("model-00001-of-00002.safetensors"), safetensors_bytes({embed, norm}));
        test::write_file(dir.file("model-00002-of-00002.safetensors"), safetensors_bytes({q}));
        test::write_file(dir.file("model.safetensors.index.json"), index);
    };
    auto map = [](const std::string& entries) { return R"({"metadata": {"total_size": 272}, "weight_map": {)" + entries + "}}"; };
    const std::string good = R"("model.embed_tokens.weight": "model-00001-of-00002.safetensors", )"
                             R"("model.norm.weight": "model-00001-of-00002.safetensors", )"
                             R"("model.layers.0.self_attn.q_proj.weight": "model-00002-of-00002.safetensors")";
    {
        test::TempDir dir;
        folder(dir, map(good));
        Checkpoint c = Checkpoint::open(dir.path());
        CHECK(c.tensors().size() == 3);
        CHECK(c.find("blk.0.attn_q.weight")->shape == qwen3::make_shape(8, 8));
        CHECK(Checkpoint::open(dir.file("model.safetensors.index.json")).tensors().size() == 3);
    }
    auto rejects = [&](const std::string& index, ErrorCode code, const std::string& needle) {
        test::TempDir dir;
        folder(dir, index);
        check_open_rejects(dir.path(), code, needle);
    };
    rejects("{\"weight_map\": ", ErrorCode::format, "model.safetensors.index.json: invalid JSON");
    rejects(R"({"metadata": {}})", ErrorCode::format, "model.safetensors.index.json: no \"weight_map\" object");
    rejects(R"({"weight_map": ["a.safetensors"]})", ErrorCode::format, "no \"weight_map\" object");
    rejects(map(""), ErrorCode::format, "weight_map is empty");
    rejects(map(R"("model.norm.weight": 1)"), ErrorCode::format, "weight_map entry \"model.norm.weight\" is not a string");
    for (const char* name : {"../x.safetensors", "/etc/passwd", "a/b", "..", ".", "", "a\\\\b", "model\\u0000.safetensors"})
        rejects(map(std::string(R"("model.norm.weight": ")") + name + "\""), ErrorCode::format, "is not a plain file name");
    rejects(map(good + R"(, "model.norm.weight": "model-00002-of-00002.safetensors")"), ErrorCode::format,
            "duplicate key \"model.norm.weight\"");
    rejects(map(good + R"(, "model.layers.0.mlp.up_proj.weight": "model-00003-of-00003.safetensors")"), ErrorCode::io,
            "model-00003-of-00003.safetensors");
    // the index and the shards disagree
    rejects(map(R"("model.embed_tokens.weight": "model-00002-of-00002.safetensors", )"
                R"("model.norm.weight": "model-00001-of-00002.safetensors", )"
                R"("model.layers.0.self_attn.q_proj.weight": "model-00002-of-00002.safetensors")"),
            ErrorCode::format, "tensor model.embed_tokens.weight is in this shard, but");
    rejects(map(R"("model.embed_tokens.weight": "model-00001-of-00002.safetensors", )"
                R"("model.layers.0.self_attn.q_proj.weight": "model-00002-of-00002.safetensors")"),
            ErrorCode::format, "tensor model.norm.weight is not listed in");
    rejects(map(good + R"(, "model.layers.0.mlp.up_proj.weight": "model-00002-of-00002.safetensors")"), ErrorCode::format,
            "lists tensor model.layers.0.mlp.up_proj.weight in model-00002-of-00002.safetensors, which does not hold it");
    {
        // one tensor stored in both shards
        test::TempDir dir;
        folder(dir, map(good));
        test::write_file(dir.file("model-00002-of-00002.safetensors"), safetensors_bytes({q, norm}));
        check_open_rejects(dir.path(), ErrorCode::format,
                           "tensor model.norm.weight appears in more than one shard (also in model-00001-of-00002.safetensors)");
    }
}

TEST_CASE("checkpoint: GGUF metadata is read and checked") {
    test::TempDir dir;
    {
        Checkpoint c = Checkpoint::open(write_gguf(dir));
        const qwen3::ModelParams& p = c.params();
        CHECK(c.format() == qwen3::CheckpointFormat::gguf);
        CHECK(p.name == "toy");
        CHECK(p.hidden == 8);
        CHECK(p.heads == 2);
        CHECK(p.kv_heads == 1);
        CHECK(p.head_dim == 4);
        CHECK(p.vocab == 4);  // rows of token_embd.weight
        CHECK(p.tied_embeddings);
        CHECK(p.rope_scaling.kind == RopeScaling::Kind::none);
    }
    {
        Checkpoint c = Checkpoint::open(write_gguf(dir, [](auto& w) {
            w.set_string("qwen3.rope.scaling.type", "yarn");
            w.set_f32("qwen3.rope.scaling.factor", 4.0f);
            w.set_u32("qwen3.rope.scaling.original_context_length", 32768);
        }));
        CHECK(c.params().rope_scaling.kind == RopeScaling::Kind::yarn);
        CHECK(c.params().rope_scaling.factor == 4.0);
        CHECK(c.params().rope_scaling.original_context == 32768);
    }
    auto rejects = [&](const std::function<void(qwen3::gguf::Writer&)>& edit, ErrorCode code, const std::string& needle) {
        check_open_rejects(write_gguf(dir, edit), code, needle);
    };
    rejects([](auto& w) { w.set_string("general.architecture", "llama"); }, ErrorCode::unsupported,
            "architecture is \"llama\"; this library runs Qwen3 dense models");
    rejects([](auto& w) { w.set_string("general.architecture", "qwen3moe"); }, ErrorCode::unsupported, "architecture is \"qwen3moe\"");
    rejects([](auto& w) { w.set_u32("general.architecture", 3); }, ErrorCode::format, "general.architecture must be a string");
    rejects([](auto& w) { w.set_string("qwen3.embedding_length", "8"); }, ErrorCode::format,
            "metadata qwen3.embedding_length must be a non-negative integer, found string");
    rejects([](auto& w) { w.set_i32("qwen3.block_count", -1); }, ErrorCode::format, "qwen3.block_count must be a non-negative integer");
    rejects([](auto& w) { w.set_u64("qwen3.feed_forward_length", 1ull << 40); }, ErrorCode::format,
            "metadata qwen3.feed_forward_length is 1099511627776, over the limit of 2147483647");
    rejects([](auto& w) { w.set_f32("qwen3.attention.layer_norm_rms_epsilon", std::numeric_limits<float>::quiet_NaN()); },
            ErrorCode::format, "qwen3.attention.layer_norm_rms_epsilon is nan, not a finite number");
    rejects([](auto& w) { w.set_u32("qwen3.attention.value_length", 8); }, ErrorCode::unsupported, "differs from value_length 8");
    rejects([](auto& w) { w.set_string("qwen3.rope.scaling.type", "longrope"); }, ErrorCode::unsupported,
            "RoPE scaling \"longrope\" is not supported");
    rejects([](auto& w) { w.set_string("qwen3.rope.scaling.type", "yarn"); }, ErrorCode::format, "qwen3.rope.scaling.factor is missing");
}

TEST_CASE("checkpoint: GGUF files missing required metadata name the key") {
    // The writer cannot remove a key, so these files are written without it from the start.
    test::TempDir dir;
    auto without = [&](std::string_view missing) {
        qwen3::gguf::Writer w;
        const std::pair<const char*, std::uint32_t> keys[] = {{"qwen3.embedding_length", 8}, {"qwen3.block_count", 1},
                                                              {"qwen3.attention.head_count", 2}, {"qwen3.feed_forward_length", 16}};
        if (missing != "general.architecture") w.set_string("general.architecture", "qwen3");
        for (auto [key, value] : keys)
            if (missing != key) w.set_u32(key, value);
        if (missing != "qwen3.attention.layer_norm_rms_epsilon") w.set_f32("qwen3.attention.layer_norm_rms_epsilon", 1e-6f);
        const std::string path = dir.file("missing.gguf");
        w.write(path);
        return path;
    };
    CHECK_NOTHROW(Checkpoint::open(without("")));
    for (const char* key : {"general.architecture", "qwen3.embedding_length", "qwen3.block_count", "qwen3.attention.head_count",
                            "qwen3.feed_forward_length", "qwen3.attention.layer_norm_rms_epsilon"})
        check_open_rejects(without(key), ErrorCode::format, std::string("metadata key ") + key + " is missing");
}

TEST_CASE("checkpoint: an in-memory checkpoint refuses a tensor given twice") {
    std::vector<qwen3::TensorView> views(2);
    views[0].name = views[1].name = "token_embd.weight";
    CHECK(test::throws_error([&] { Checkpoint::in_memory({}, views, nullptr); }, ErrorCode::invalid_argument,
                             "tensor token_embd.weight given twice"));
}
