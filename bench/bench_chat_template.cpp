// Rendering chat requests: the built-in Qwen3 renderer (chat/template.hpp) against the Jinja
// interpreter running a template file (chat/chat_template.hpp), over the requests of
// tests/data/chat/cases.jsonl and cases_extra.jsonl that render. One thread.
//
//     bench_chat_template [--template FILE.jinja] [--rounds N]
//
// Prints the parse time of the template and the mean time per request of each renderer (the
// built-in one only for Qwen3's own template, which it implements).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <qwen3/chat.hpp>
#include <qwen3/format/json.hpp>
#include <qwen3/format/mmap.hpp>

namespace {

using clock_type = std::chrono::steady_clock;
double us_since(clock_type::time_point t) { return std::chrono::duration<double, std::micro>(clock_type::now() - t).count(); }

std::vector<qwen3::json::Value> read_jsonl(const std::string& path) {
    const std::string text = qwen3::read_text_file(path);
    std::vector<qwen3::json::Value> out;
    for (std::size_t start = 0; start < text.size();) {
        std::size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        if (end > start) out.push_back(qwen3::json::parse(std::string_view(text).substr(start, end - start), path));
        start = end + 1;
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string data = std::string(QWEN3_SOURCE_DIR) + "/tests/data/chat/";
    std::string template_path = data + "qwen3_chat_template.jinja";
    int rounds = 20;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--template") && i + 1 < argc) template_path = argv[++i];
        else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = std::atoi(argv[++i]);
        else {
            std::fprintf(stderr, "usage: bench_chat_template [--template FILE.jinja] [--rounds N]\n");
            return 2;
        }
    }
    const bool qwen3_template = template_path == data + "qwen3_chat_template.jinja";
    std::vector<qwen3::json::Value> requests;
    for (const char* name : {"cases.jsonl", "cases_extra.jsonl"})
        for (qwen3::json::Value& c : read_jsonl(data + name))
            if (c.find("rendered")) requests.push_back(std::move(c));

    const std::string source = qwen3::read_text_file(template_path);
    auto t = clock_type::now();
    const qwen3::chat::ChatTemplate tmpl(source);
    std::printf("%s: %zu bytes parsed in %.1f us\n", template_path.c_str(), source.size(), us_since(t));

    std::size_t rendered = 0, bytes = 0;
    std::vector<const qwen3::json::Value*> usable;
    for (const qwen3::json::Value& r : requests) {
        try {
            bytes += tmpl.render(r).text.size();
            usable.push_back(&r);
        } catch (const qwen3::Error&) {
        }
    }
    t = clock_type::now();
    for (int k = 0; k < rounds; ++k)
        for (const qwen3::json::Value* r : usable) rendered += tmpl.render(*r).text.size() > 0;
    const double interpreted = us_since(t) / double(rounds * usable.size());
    std::printf("%zu requests (%.0f bytes of prompt on average), %d rounds\n", usable.size(), double(bytes) / double(usable.size()), rounds);
    std::printf("  Jinja interpreter: %.2f us per request\n", interpreted);
    if (qwen3_template) {
        t = clock_type::now();
        for (int k = 0; k < rounds; ++k)
            for (const qwen3::json::Value* r : usable) rendered += qwen3::chat::render_prompt(*r).text.size() > 0;
        std::printf("  built-in renderer: %.2f us per request\n", us_since(t) / double(rounds * usable.size()));
    }
    return rendered ? 0 : 1;
}
