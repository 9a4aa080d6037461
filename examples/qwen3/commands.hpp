// The qwen3 tool's commands. Each family lives in its own cmd_<family>.cpp so they compile in parallel;
// every function receives the arguments after the program name (argv[0] is the command's name) and
// returns the process exit status. Errors are reported on stderr; results go to stdout.
#pragma once

int run_info(int argc, char** argv);        // qwen3 info MODEL
int run_logits(int argc, char** argv);      // qwen3 logits MODEL --tokens 1,2,3 [--out FILE]
int run_tokenize(int argc, char** argv);    // qwen3 tokenize --tokenizer PATH [--jsonl]
int run_detokenize(int argc, char** argv);  // qwen3 detokenize --tokenizer PATH [--jsonl]
int run_template(int argc, char** argv);    // qwen3 template [--jsonl]
int run_generate(int argc, char** argv);    // qwen3 generate MODEL -p PROMPT
int run_chat(int argc, char** argv);        // qwen3 chat MODEL
int run_bench(int argc, char** argv);       // qwen3 bench MODEL
int run_quantize(int argc, char** argv);    // qwen3 quantize IN OUT TYPE
int run_serve(int argc, char** argv);       // qwen3 serve MODEL (only with QWEN3_TOOL_SERVE)
