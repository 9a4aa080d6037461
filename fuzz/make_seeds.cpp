// Writes the generated seed corpora of the fuzz targets: `make_seeds <tests/data> <out>` fills
// <out>/<target>/ with small valid inputs built from tests/data (tools/fuzz.sh runs it before
// fuzzing, so no binary seed is committed; fuzz/corpus/<target>/ holds the hand-written ones).
//
//   gguf            FuzzConfig checkpoints written by gguf::Writer, with and without tokenizer metadata
//   hf              the files of a Hugging Face folder, each behind its selector byte
//   tokenizer_json  tokenizer.json files with Qwen3's first tokens and merges
//   json            config.json, tokenizer_config.json, chat requests
//   chat_template   chat requests (both input modes)
//   jinja           the chat templates of tests/data/chat (Qwen3's and the other Qwen-family ones)
//   reply           assistant replies from the chat cases, in thinking and plain form
//   tokenizer       texts of the tokenizer cases
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <qwen3/format/json.hpp>
#include <qwen3/format/mmap.hpp>

#include "seeds.hpp"

namespace fs = std::filesystem;
namespace json = qwen3::json;

namespace {

fs::path out_dir;

// The first byte of an input that picks a target's mode.
std::string selector(int byte) { return std::string(1, char(byte)); }

int written = 0;

void put(const std::string& target, const std::string& name, std::string_view bytes) {
    fs::create_directories(out_dir / target);
    std::ofstream f(out_dir / target / name, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), std::streamsize(bytes.size()));
    if (!f) throw std::runtime_error("cannot write " + (out_dir / target / name).string());
    ++written;
}

std::vector<json::Value> read_jsonl(const std::string& path, std::size_t limit) {
    const std::string text = qwen3::read_text_file(path);
    std::vector<json::Value> out;
    for (std::size_t start = 0; start < text.size() && out.size() < limit;) {
        std::size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        if (end > start) out.push_back(json::parse(std::string_view(text).substr(start, end - start), path));
        start = end + 1;
    }
    return out;
}

// The request of a chat case: the case without its expected rendering.
json::Value request_of(const json::Value& c) {
    json::Value r(json::Object{});
    for (const json::Member& m : c.as_object())
        if (m.key != "rendered") r.set(m.key, m.value);
    return r;
}

// The conversation encoding of fuzz_chat_template's odd mode: fields separated by 0x00, each led by
// a kind byte (messages: 8 * role index + 0; reasoning 5; tool call 6 "name\x01arguments"; tool 7).
std::string conversation_input(const json::Value& request) {
    static const char* const roles[] = {"user", "assistant", "system", "tool"};
    std::string out(1, '\x01');
    auto field = [&](int kind, std::string_view text) {
        if (out.size() > 1) out += '\0';
        out += char(kind);
        out += text;
    };
    if (const json::Value* tools = request.find("tools"); tools && tools->is_array())
        for (const json::Value& t : tools->as_array()) field(7, json::dump(t));
    for (const json::Value& m : request.at("messages").as_array()) {
        const json::Value* role = m.find("role");
        const json::Value* content = m.find("content");
        int r = 0;
        while (r < 4 && !(role && role->is_string() && role->as_string() == roles[r])) ++r;
        field(8 * (r % 4), content && content->is_string() ? content->as_string() : "");
        if (const json::Value* rc = m.find("reasoning_content"); rc && rc->is_string()) field(5, rc->as_string());
        if (const json::Value* calls = m.find("tool_calls"); calls && calls->is_array())
            for (const json::Value& call : calls->as_array()) {
                const json::Value* fn = call.find("function") ? call.find("function") : &call;
                const json::Value* name = fn->find("name");
                const json::Value* args = fn->find("arguments");
                field(6, (name && name->is_string() ? name->as_string() : std::string()) + selector(0x01) + (args ? json::dump(*args) : "{}"));
            }
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: make_seeds <tests/data folder> <output folder>\n");
        return 2;
    }
    const std::string data = argv[1];
    out_dir = argv[2];
    try {
        const json::Value real = json::parse(qwen3::read_text_file(data + "/tokenizer/tokenizer.json"), "tokenizer.json");
        const qwen3_fuzz::MiniVocab vocab = qwen3_fuzz::mini_vocab(real, 320, 26);
        const qwen3_fuzz::MiniVocab bytes_only = qwen3_fuzz::mini_vocab(real, 256, 4);

        put("gguf", "model_tokenizer.gguf", qwen3_fuzz::seed_gguf(&vocab));
        put("gguf", "model.gguf", qwen3_fuzz::seed_gguf(nullptr));
        put("gguf", "tokenizer_only.gguf", qwen3_fuzz::seed_gguf(&bytes_only, false));
        put("gguf", "metadata_only.gguf", qwen3_fuzz::seed_gguf(nullptr, false));

        put("hf", "0_model.safetensors", selector(0x00) + qwen3_fuzz::seed_safetensors());
        put("hf", "0_shard.safetensors", selector(0x00) + qwen3_fuzz::seed_safetensors(qwen3_fuzz::kSeedShardSplit));
        put("hf", "0_micro_header", selector(0x00) + [&] {  // the micro model's header with no data: refused, but a real header
            const std::string st = qwen3::read_text_file(data + "/qwen3-micro-f32-hf/model.safetensors");
            std::uint64_t n = 0;
            std::memcpy(&n, st.data(), 8);
            return st.substr(0, 8 + n);
        }());
        put("hf", "1_config.json", selector(0x01) + qwen3_fuzz::seed_config_json());
        put("hf", "1_micro_config.json", selector(0x01) + qwen3::read_text_file(data + "/qwen3-micro-f32-hf/config.json"));
        put("hf", "2_index.json", selector(0x02) + qwen3_fuzz::seed_index_json());
        put("hf", "3_model.safetensors", selector(0x03) + qwen3_fuzz::seed_safetensors());

        put("tokenizer_json", "mini.json", qwen3_fuzz::mini_tokenizer_json(real, vocab));
        put("tokenizer_json", "bytes_only.json", qwen3_fuzz::mini_tokenizer_json(real, bytes_only));

        put("json", "config.json", selector(0x00) + qwen3::read_text_file(data + "/qwen3-micro-f32-hf/config.json"));
        put("json", "tokenizer_config.json", selector(0x01) + qwen3::read_text_file(data + "/tokenizer/tokenizer_config.json"));
        put("json", "index.json", selector(0x41) + qwen3_fuzz::seed_index_json());

        std::size_t n = 0;
        for (const char* file : {"chat/cases.jsonl", "chat/cases_extra.jsonl"})
            for (const json::Value& c : read_jsonl(data + "/" + file, 40)) {
                const json::Value request = request_of(c);
                const std::string id = std::to_string(n++);
                put("chat_template", "json_" + id, selector(0x00) + json::dump(request));
                put("chat_template", "conversation_" + id, conversation_input(request));
                if (n % 4 == 0) put("json", "request_" + id, selector(0x00) + json::dump_python(request));
                // the assistant turns, as a model would have written them
                for (const json::Value& m : request.at("messages").as_array()) {
                    const json::Value* role = m.find("role");
                    const json::Value* content = m.find("content");
                    if (!role || !role->is_string() || role->as_string() != "assistant" || !content || !content->is_string()) continue;
                    std::string reply = content->as_string();
                    if (const json::Value* rc = m.find("reasoning_content"); rc && rc->is_string())
                        reply = "<think>\n" + rc->as_string() + "\n</think>\n\n" + reply;
                    if (const json::Value* calls = m.find("tool_calls"); calls && calls->is_array())
                        for (const json::Value& call : calls->as_array()) {
                            const json::Value* fn = call.find("function") ? call.find("function") : &call;
                            json::Value body(json::Object{});
                            body.set("name", fn->find("name") ? *fn->find("name") : json::Value("f"));
                            body.set("arguments", fn->find("arguments") ? *fn->find("arguments") : json::Value(json::Object{}));
                            reply += "\n<tool_call>\n" + json::dump_python(body) + "\n</tool_call>";
                        }
                    put("reply", "reply_" + id + "_" + std::to_string(written), std::string("\x00\x00\x00\x00\x07", 5) + reply);
                }
            }
        put("jinja", "qwen3.jinja", qwen3::read_text_file(data + "/chat/qwen3_chat_template.jinja"));
        for (const fs::directory_entry& e : fs::directory_iterator(data + "/chat/templates"))
            if (e.path().extension() == ".jinja") put("jinja", e.path().filename().string(), qwen3::read_text_file(e.path().string()));
        std::size_t t = 0;
        for (const json::Value& c : read_jsonl(data + "/tokenizer/cases.jsonl", 120)) {
            const int flags = t % 2 ? 0x00 : 0x06;  // half with plain ranges and skip_special_tokens streaming
            put("tokenizer", "case_" + std::to_string(t++), selector(flags) + c.at("text").as_string());
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "make_seeds: %s\n", e.what());
        return 1;
    }
    std::printf("make_seeds: %d seed files in %s\n", written, out_dir.c_str());
    return 0;
}
