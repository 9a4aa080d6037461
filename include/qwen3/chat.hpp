// qwen3/chat.hpp - conversations with Qwen3: the chat template and reading the model's replies.
//
//   chat/messages.hpp      Message, ToolCall, Options; the JSON request the template reads
//   chat/template.hpp      render_prompt(): the Qwen3 chat template, byte-exact, with the byte
//                          ranges that came from user data (tokenize those without special tokens)
//   chat/chat_template.hpp ChatTemplate: a model's own Jinja2 template (GGUF, HF folder or file),
//                          run by the library's Jinja interpreter, with the same untrusted ranges
//   chat/reply_parser.hpp  ThinkSplitter (streaming reasoning/answer split), parse_reply() (tool
//                          calls), expects_thinking() (enable_thinking and /think, /no_think)
#pragma once

#include "chat/chat_template.hpp"
#include "chat/messages.hpp"
#include "chat/reply_parser.hpp"
#include "chat/template.hpp"
