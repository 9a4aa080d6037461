// Fuzz target: JSON Schema -> GBNF.
//
// The input is a JSON Schema text, a NUL, then a text to recognize. For every schema that parses as
// JSON, json_schema_to_gbnf either refuses it with Error(unsupported) or Error(invalid_argument), or
// returns GBNF that the grammar reader accepts (the converter never writes a grammar it cannot
// read), and the recognizer then reads the text without crashing.
#include <cstdint>
#include <string>

#include <qwen3/grammar.hpp>

#include "fuzz_support.hpp"

namespace qwen3_fuzz::json_schema_target {

void run(const std::uint8_t* data, std::size_t size) {
    Input in(data, size);
    const std::string_view schema_text = in.until('\0');
    const std::string_view text = in.rest();
    qwen3::json::Value schema;
    try {
        schema = qwen3::json::parse(schema_text, "schema");
    } catch (const qwen3::Error&) {
        return;
    }
    std::string gbnf;
    try {
        gbnf = qwen3::json_schema_to_gbnf(schema);
    } catch (const qwen3::Error& e) {
        check(e.code() == qwen3::ErrorCode::unsupported || e.code() == qwen3::ErrorCode::invalid_argument, "the converter failed with code ",
              qwen3::to_string(e.code()));
        return;
    }
    try {
        const qwen3::Grammar grammar = qwen3::Grammar::from_gbnf(gbnf);
        qwen3::GrammarRecognizer r(grammar);
        (void)r.accept(text.substr(0, 256));
    } catch (const qwen3::Error& e) {
        // the only refusal allowed: a grammar too large or too ambiguous to run
        const std::string message = e.what();
        check(message.find("more than") != std::string::npos, "the converter wrote GBNF that does not run: ", e.what(), "\n", show(gbnf));
    }
}

}  // namespace qwen3_fuzz::json_schema_target

#ifndef QWEN3_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    qwen3_fuzz::json_schema_target::run(data, size);
    return 0;
}
#endif
