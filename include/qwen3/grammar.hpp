// qwen3/grammar.hpp - constrained generation: GBNF grammars and JSON Schema, as token masks.
//
// Use: auto g = qwen3::TokenGrammar::create(qwen3::grammar_from_json_schema(schema_text), tokenizer);
//      options.grammar = g;  // GenerationOptions: only text of the grammar's language is sampled
#pragma once

#include <string_view>

#include "format/json.hpp"
#include "grammar/gbnf.hpp"
#include "grammar/grammar.hpp"
#include "grammar/json_schema.hpp"
#include "grammar/recognizer.hpp"
#include "grammar/token_mask.hpp"

namespace qwen3 {

// The grammar of JSON texts valid against a JSON Schema given as JSON text (json_schema_to_gbnf).
// Throws Error(format) for text that is not JSON, and what json_schema_to_gbnf throws.
inline Grammar grammar_from_json_schema(std::string_view schema_json, const JsonSchemaOptions& options = {}) {
    return Grammar::from_gbnf(json_schema_to_gbnf(json::parse(schema_json, "JSON Schema"), options));
}

}  // namespace qwen3
