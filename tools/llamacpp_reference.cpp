// llamacpp_reference - llama.cpp's logits for a prompt and a fixed continuation, the references of
// tests/data/llamacpp. Written here against llama.cpp's public C API (llama.h); build it against a
// llama.cpp build of your own (tests/data/README.md gives the command and the llama.cpp commit).
//
//   llamacpp_reference MODEL.gguf OUT --prompt IDS [--decode IDS] [--positions all|last|every:N]
//                      [--greedy N] [--threads N] [--describe TEXT]
//
// IDS: comma-separated token ids, or @FILE holding them. Settings: one context of n_ctx = the whole
// sequence, F32 K and V caches, flash attention off, the model's own RoPE settings.
//   1. the prompt in one batch (positions 0 .. n-1), logits kept for --positions;
//   2. each --decode token alone, at the positions after the prompt, every step's logits kept
//      (the row after decode[i] is the distribution over the token after it);
//   3. with --greedy N: the memory cleared, the prompt again, then N greedy steps (argmax, lowest id
//      on ties), recording the tokens and each step's top-1 minus top-2 logit.
// Writes OUT.logits.f32 (little-endian float32 rows: the prompt positions, then the decode steps)
// and OUT.json (the tokens, positions, greedy tokens and margins, settings).
#include <llama.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& why) {
    std::fprintf(stderr, "llamacpp_reference: %s\n", why.c_str());
    std::exit(1);
}

std::vector<llama_token> parse_ids(std::string text) {
    if (!text.empty() && text[0] == '@') {
        std::ifstream f(text.substr(1));
        if (!f) die("cannot read " + text.substr(1));
        std::stringstream ss;
        ss << f.rdbuf();
        text = ss.str();
    }
    std::vector<llama_token> ids;
    std::string item;
    for (char c : text + ",") {
        if (c == ',' || c == '\n' || c == ' ') {
            if (!item.empty()) ids.push_back(llama_token(std::stol(item)));
            item.clear();
        } else {
            item += c;
        }
    }
    return ids;
}

std::string join(const std::vector<llama_token>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s;
}

void decode_or_die(llama_context* ctx, llama_batch& batch) {
    if (llama_decode(ctx, batch) != 0) die("llama_decode failed");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) die("usage: llamacpp_reference MODEL.gguf OUT --prompt IDS [--decode IDS] [--positions all|last|every:N] [--greedy N] [--threads N] [--describe TEXT]");
    const std::string model_path = argv[1], out = argv[2];
    std::vector<llama_token> prompt, forced;
    std::string positions_arg = "all", describe;
    int greedy = 0, threads = 1;
    for (int i = 3; i + 1 < argc; i += 2) {
        const std::string key = argv[i], value = argv[i + 1];
        if (key == "--prompt") prompt = parse_ids(value);
        else if (key == "--decode") forced = parse_ids(value);
        else if (key == "--positions") positions_arg = value;
        else if (key == "--greedy") greedy = std::atoi(value.c_str());
        else if (key == "--threads") threads = std::atoi(value.c_str());
        else if (key == "--describe") describe = value;
        else die("unknown option " + key);
    }
    if (prompt.empty()) die("--prompt is required");
    const int n = int(prompt.size());
    std::vector<int> positions;
    if (positions_arg == "all") {
        for (int i = 0; i < n; ++i) positions.push_back(i);
    } else if (positions_arg == "last") {
        positions.push_back(n - 1);
    } else if (positions_arg.rfind("every:", 0) == 0) {
        const int step = std::atoi(positions_arg.c_str() + 6);
        for (int i = 0; i < n; i += step) positions.push_back(i);
        if (positions.back() != n - 1) positions.push_back(n - 1);
    } else {
        die("--positions takes all, last or every:N");
    }

    llama_backend_init();
    llama_model* model = llama_model_load_from_file(model_path.c_str(), llama_model_default_params());
    if (!model) die("cannot load " + model_path);
    const int vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    const int total = n + int(std::max<std::size_t>(forced.size(), std::size_t(greedy)));

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = cp.n_batch = cp.n_ubatch = std::uint32_t((total + 255) / 256 * 256);
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    llama_context* ctx = llama_init_from_model(model, cp);
    if (!ctx) die("cannot create a context");

    std::vector<float> rows;
    auto keep_row = [&](int i) {
        const float* l = llama_get_logits_ith(ctx, i);
        if (!l) die("no logits for output " + std::to_string(i));
        rows.insert(rows.end(), l, l + vocab);
    };
    auto run_prompt = [&](bool keep) {
        llama_batch batch = llama_batch_init(n, 0, 1);
        batch.n_tokens = n;
        for (int i = 0; i < n; ++i) {
            batch.token[i] = prompt[std::size_t(i)];
            batch.pos[i] = i;
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i] = keep ? std::find(positions.begin(), positions.end(), i) != positions.end() : i == n - 1;
        }
        decode_or_die(ctx, batch);
        if (keep)
            for (int p : positions) keep_row(p);
        llama_batch_free(batch);
    };
    auto step = [&](llama_token token, int pos) {
        llama_batch batch = llama_batch_init(1, 0, 1);
        batch.n_tokens = 1;
        batch.token[0] = token;
        batch.pos[0] = pos;
        batch.n_seq_id[0] = 1;
        batch.seq_id[0][0] = 0;
        batch.logits[0] = 1;
        decode_or_die(ctx, batch);
        llama_batch_free(batch);
    };

    run_prompt(true);
    for (std::size_t i = 0; i < forced.size(); ++i) {
        step(forced[i], n + int(i));
        keep_row(0);
    }

    std::vector<llama_token> greedy_tokens;
    std::vector<double> margins;
    if (greedy > 0) {
        llama_memory_clear(llama_get_memory(ctx), true);
        run_prompt(false);
        for (int i = 0; i < greedy; ++i) {
            const float* l = llama_get_logits_ith(ctx, i == 0 ? n - 1 : 0);
            int best = 0;
            for (int v = 1; v < vocab; ++v)
                if (l[v] > l[best]) best = v;
            float second = -1e30f;
            for (int v = 0; v < vocab; ++v)
                if (v != best) second = std::max(second, l[v]);
            greedy_tokens.push_back(best);
            margins.push_back(double(l[best]) - double(second));
            if (i + 1 < greedy) step(best, n + i);
        }
    }

    std::FILE* f = std::fopen((out + ".logits.f32").c_str(), "wb");
    if (!f || std::fwrite(rows.data(), sizeof(float), rows.size(), f) != rows.size()) die("cannot write " + out + ".logits.f32");
    std::fclose(f);
    std::string name = out.substr(out.find_last_of('/') + 1);
    std::FILE* j = std::fopen((out + ".json").c_str(), "w");
    if (!j) die("cannot write " + out + ".json");
    std::string pos_list;
    for (std::size_t i = 0; i < positions.size(); ++i) pos_list += (i ? "," : "") + std::to_string(positions[i]);
    std::string margin_list;
    for (std::size_t i = 0; i < margins.size(); ++i) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.6g", margins[i]);
        margin_list += (i ? "," : "") + std::string(buf);
    }
    std::fprintf(j,
                 "{\n \"model\": \"%s\",\n \"llamacpp\": \"llama.h, one context: n_ctx %u, %d thread(s), F32 K and V caches, "
                 "flash attention off; the prompt in one batch, then one token per decode\",\n"
                 " \"n_vocab\": %d,\n \"tokens\": [%s],\n \"prompt_positions\": [%s],\n \"decode\": [%s],\n"
                 " \"greedy\": [%s],\n \"greedy_top1_minus_top2\": [%s],\n \"logits_file\": \"%s.logits.f32\"\n}\n",
                 describe.c_str(), cp.n_ctx, threads, vocab, join(prompt).c_str(), pos_list.c_str(), join(forced).c_str(),
                 join(greedy_tokens).c_str(), margin_list.c_str(), name.c_str());
    std::fclose(j);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
