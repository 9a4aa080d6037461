// `qwen3 serve` driven by the official OpenAI client (npm `openai`), on the tiny random-weight
// model with the real Qwen3 tokenizer. The references are not the server's: greedy text comes from
// `qwen3 generate` (a single Session, itself checked against llama.cpp's greedy tokens in
// test_cli), chat prompts are the Jinja2 renderings of tests/data/chat/cases.jsonl, and the error
// shapes are OpenAI's ({"error": {"message", "type", "param", "code"}}).
//
// Environment (set by tests/CMakeLists.txt): QWEN3_TOOL (the qwen3 program), QWEN3_MAKE_MODEL
// (build/tests/make_random_model), QWEN3_TEST_DATA (tests/data).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';

const TOOL = process.env.QWEN3_TOOL;
const MAKE_MODEL = process.env.QWEN3_MAKE_MODEL;
const DATA = process.env.QWEN3_TEST_DATA;
assert.ok(TOOL && MAKE_MODEL && DATA, 'QWEN3_TOOL, QWEN3_MAKE_MODEL and QWEN3_TEST_DATA must be set');

const KEY = 'test-key-123';
const dir = mkdtempSync(join(tmpdir(), 'qwen3-serve-'));
const MODEL = join(dir, 'tiny.gguf');
let server;         // { proc, port, log: () => string }
let client;

// Starts `qwen3 serve MODEL ARGS` on a free port; resolves when it listens.
function startServer(args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(TOOL, ['serve', MODEL, '--port', '0', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    const timer = setTimeout(() => reject(new Error('server did not start:\n' + log)), 60000);
    proc.stderr.on('data', (chunk) => {
      log += chunk.toString();
      const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m && !proc.port) {
        proc.port = Number(m[1]);
        clearTimeout(timer);
        resolve({ proc, port: proc.port, log: () => log });
      }
    });
    proc.on('exit', (code) => { if (!proc.port) reject(new Error(`server exited with ${code}:\n${log}`)); });
  });
}

function stopServer(s, signal = 'SIGTERM') {
  return new Promise((resolve) => {
    if (s.proc.exitCode !== null) return resolve(s.proc.exitCode);
    s.proc.on('exit', (code) => resolve(code));
    s.proc.kill(signal);
  });
}

// What a single Session generates greedily after `prompt` (text with the template's control
// tokens): `qwen3 generate` prints the text on stdout, then a newline. promptTokens: the prompt's
// length by `qwen3 tokenize` (Hugging Face's ids, test_tokenizer).
// (Asynchronous, so that the client's idle keep-alive connections expire on time meanwhile.)
const run = promisify(execFile);
async function reference(prompt, maxTokens) {
  const { stdout } = await run(TOOL, ['generate', MODEL, '-p', prompt, '-n', String(maxTokens), '--temp', '0', '-t', '1']);
  return stdout.replace(/\n$/, '');
}
async function tokenIds(text) {
  const child = run(TOOL, ['tokenize', '--tokenizer', join(DATA, 'tokenizer', 'tokenizer.json')]);
  child.child.stdin.end(text);
  return JSON.parse((await child).stdout);
}
const promptTokens = async (prompt) => (await tokenIds(prompt)).length;

// The reply's text as a chat client sees it: the template's reader drops the newlines that open
// an answer (chat/reply_parser.hpp, as Qwen's template reads an assistant turn).
const asAnswer = (text) => text.replace(/^\n+/, '');

// A chat fixture (HF apply_chat_template arguments) as an OpenAI request: tool-call arguments
// become the JSON text OpenAI clients send.
function toOpenAI(c) {
  const messages = c.messages.map((m) => {
    const o = { role: m.role, content: m.content };
    if (m.tool_calls) {
      o.tool_calls = m.tool_calls.map((t, i) => {
        const f = t.function ?? t;
        return { id: t.id ?? `call_${i}`, type: 'function', function: { name: f.name, arguments: JSON.stringify(f.arguments) } };
      });
    }
    if (m.reasoning_content !== undefined) o.reasoning_content = m.reasoning_content;
    if (m.role === 'tool') o.tool_call_id = m.tool_call_id ?? 'call_0';
    return o;
  });
  const req = { model: 'tiny', messages, temperature: 0 };
  if (c.tools) req.tools = c.tools;
  if (c.enable_thinking === false) req.chat_template_kwargs = { enable_thinking: false };
  return req;
}

const cases = readFileSync(join(DATA, 'chat', 'cases.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
// Conversations a server is asked to continue: those rendered with a generation prompt whose
// messages OpenAI's format can carry (string content, function tool calls).
const chatCases = cases.filter((c) => c.add_generation_prompt === true && c.messages.every((m) =>
  typeof m.content === 'string' && ['system', 'user', 'assistant', 'tool'].includes(m.role)));

before(async () => {
  execFileSync(MAKE_MODEL, ['--preset', 'tiny', '--dtype', 'f32', '--seed', '7', '--out', MODEL,
    '--tokenizer', join(DATA, 'tokenizer', 'tokenizer.json'), '--name', 'tiny'], { stdio: 'ignore' });
  server = await startServer(['--parallel', '16', '--queue', '4', '--api-key', KEY, '-t', '2', '--model-name', 'tiny',
    '--max-body', '1048576']);
  client = new OpenAI({ baseURL: `http://127.0.0.1:${server.port}/v1`, apiKey: KEY, maxRetries: 0 });
});

after(async () => {
  if (server) {
    const code = await stopServer(server);
    assert.equal(code, 0, 'the server exits cleanly on SIGTERM:\n' + server.log().slice(-2000));
    assert.match(server.log(), /qwen3 serve: stopped/);
  }
  rmSync(dir, { recursive: true, force: true });
});

test('GET /v1/models lists the served model', async () => {
  const page = await client.models.list();
  assert.deepEqual(page.data.map((m) => m.id), ['tiny']);
  assert.equal(page.data[0].object, 'model');
  const one = await client.models.retrieve('tiny');
  assert.equal(one.id, 'tiny');
});

test('chat completions continue the Jinja-rendered conversations as a single session does', async () => {
  assert.ok(chatCases.length >= 10, `only ${chatCases.length} usable fixtures`);
  let toolRoundTrips = 0;
  for (const c of chatCases) {
    const r = await client.chat.completions.create({ ...toOpenAI(c), max_tokens: 12 });
    const expected = await reference(c.rendered, 12);
    const choice = r.choices[0];
    assert.equal(r.object, 'chat.completion');
    assert.equal(choice.message.role, 'assistant');
    assert.equal(choice.message.content, asAnswer(expected), `fixture: ${JSON.stringify(c.messages).slice(0, 200)}`);
    assert.equal(r.usage.prompt_tokens, await promptTokens(c.rendered), 'the server rendered the prompt as Jinja2 did');
    assert.ok(['stop', 'length'].includes(choice.finish_reason));
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    if (c.messages.some((m) => m.role === 'tool')) toolRoundTrips++;
  }
  assert.ok(toolRoundTrips >= 3, 'tool results sent back as OpenAI messages');
});

test('a streamed chat completion carries the same text, then finish_reason, usage and [DONE]', async () => {
  const c = chatCases.find((x) => x.enable_thinking === false);
  const stream = await client.chat.completions.create({ ...toOpenAI(c), max_tokens: 16, stream: true,
    stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  let first = true;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (first) assert.equal(chunk.choices[0].delta.role, 'assistant');
    first = false;
    if (chunk.usage) usage = chunk.usage;
    for (const ch of chunk.choices) {
      text += ch.delta.content ?? '';
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assert.equal(text, asAnswer(await reference(c.rendered, 16)));
  assert.ok(finish === 'stop' || finish === 'length');
  assert.ok(usage && usage.completion_tokens > 0 && usage.prompt_tokens === await promptTokens(c.rendered));
});

test('text completions, plain and streamed, equal qwen3 generate', async () => {
  const prompt = 'Once upon a time, in a land far away,';
  const expected = await reference(prompt, 20);
  const r = await client.completions.create({ model: 'tiny', prompt, max_tokens: 20, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text, expected);
  let text = '';
  for await (const chunk of await client.completions.create({ model: 'tiny', prompt, max_tokens: 20, temperature: 0, stream: true }))
    text += chunk.choices[0]?.text ?? '';
  assert.equal(text, expected);
});

test('16 concurrent streaming requests each get the tokens they would get alone', async () => {
  // a single user turn with thinking off renders as in cases.jsonl's thinking-off fixtures
  const rendered = (q) => `<|im_start|>user\n${q}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n`;
  const questions = Array.from({ length: 16 }, (_, i) => `Request ${i}: ${'tell me more '.repeat(i % 5)}about number ${i * 7}.`);
  const expected = await Promise.all(questions.map(async (q) => asAnswer(await reference(rendered(q), 24))));
  const results = await Promise.all(questions.map(async (q) => {
    const stream = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: q }], temperature: 0,
      max_tokens: 24, stream: true, chat_template_kwargs: { enable_thinking: false } });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    return text;
  }));
  assert.deepEqual(results, expected);
});

test('logprobs are the log-softmax of the logits qwen3 logits computes', async () => {
  const prompt = await tokenIds('The quick brown fox jumps over');
  const n = 6;
  const r = await client.completions.create({ model: 'tiny', prompt, max_tokens: n, temperature: 0, logprobs: 3, ignore_eos: true });
  const lp = r.choices[0].logprobs;
  assert.equal(lp.tokens.length, n);
  assert.equal(lp.tokens.join(''), r.choices[0].text);
  // the reference: greedy ids from `qwen3 generate`, then every position's logits in one prefill
  const ids = JSON.parse((await run(TOOL, ['generate', MODEL, '--tokens', prompt.join(','), '-n', String(n), '--temp', '0', '--ids',
    '--ignore-eos', '-t', '1'])).stdout);
  const out = join(dir, 'logits.f32');
  await run(TOOL, ['logits', MODEL, '--tokens', [...prompt, ...ids.slice(0, -1)].join(','), '--out', out, '-t', '1']);
  const all = new Float32Array(readFileSync(out).buffer.slice(0));
  const vocab = all.length / (prompt.length + n - 1);
  for (let k = 0; k < n; ++k) {
    const row = all.subarray((prompt.length - 1 + k) * vocab, (prompt.length + k) * vocab);
    let max = -Infinity;
    for (const x of row) max = Math.max(max, x);
    let sum = 0;
    for (const x of row) sum += Math.exp(x - max);
    const lse = max + Math.log(sum);
    // the server decodes step by step, the reference prefills at once: float rounding apart
    assert.ok(Math.abs(lp.token_logprobs[k] - (row[ids[k]] - lse)) < 2e-3, `token ${k}: ${lp.token_logprobs[k]} vs ${row[ids[k]] - lse}`);
    const best = [...row].map((x, i) => [x - lse, i]).sort((a, b) => b[0] - a[0]).slice(0, 3);
    const got = Object.values(lp.top_logprobs[k]).sort((a, b) => b - a);
    assert.equal(got.length, 3);
    for (let j = 0; j < 3; ++j) assert.ok(Math.abs(got[j] - best[j][0]) < 2e-3, `top ${j} of token ${k}`);
    assert.equal(lp.token_logprobs[k], got[0], 'greedy picks the most likely token');
  }
  assert.deepEqual(lp.text_offset, lp.tokens.map((_, k) => lp.tokens.slice(0, k).join('').length));

  // chat, streamed: every token's entry arrives with the chunks, in order
  const stream = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8,
    temperature: 0, logprobs: true, top_logprobs: 2, stream: true, chat_template_kwargs: { enable_thinking: false }, ignore_eos: true });
  const entries = [];
  for await (const chunk of stream) entries.push(...(chunk.choices[0]?.logprobs?.content ?? []));
  assert.equal(entries.length, 8);
  for (const e of entries) {
    assert.ok(e.logprob <= 0 && e.top_logprobs.length === 2 && e.top_logprobs[0].logprob === e.logprob);
    assert.deepEqual(Buffer.from(e.bytes).toString('utf8').length > 0, true);
  }
});

test('a conversation\'s next turn reuses the KV pages of its prefix', async () => {
  const system = { role: 'system', content: 'You are a careful assistant. '.repeat(40) };
  const turn1 = [system, { role: 'user', content: 'First question?' }];
  const a = await client.chat.completions.create({ model: 'tiny', messages: turn1, max_tokens: 6, temperature: 0 });
  const turn2 = [...turn1, { role: 'assistant', content: a.choices[0].message.content }, { role: 'user', content: 'And then?' }];
  const b = await client.chat.completions.create({ model: 'tiny', messages: turn2, max_tokens: 6, temperature: 0 });
  const systemTokens = await promptTokens(`<|im_start|>system\n${system.content}<|im_end|>\n`);
  assert.ok(b.usage.prompt_tokens_details.cached_tokens >= systemTokens,
    `cached ${b.usage.prompt_tokens_details.cached_tokens} of ${b.usage.prompt_tokens}; the system prompt alone is ${systemTokens}`);
  assert.ok(b.usage.prompt_tokens_details.cached_tokens < b.usage.prompt_tokens);
});

test('a cancelled stream frees its sequence', async () => {
  const controller = new AbortController();
  const stream = await client.completions.create({ model: 'tiny', prompt: 'Count forever:', max_tokens: 4000, temperature: 0,
    stream: true }, { signal: controller.signal });
  let id = null;
  try {
    for await (const chunk of stream) {
      id = chunk.id;
      controller.abort();
    }
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError', String(e));
  }
  assert.ok(id);
  // the server logs each finished request with its reason
  const deadline = Date.now() + 10000;
  while (!new RegExp(`${id}: .*cancelled`).test(server.log()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.match(server.log(), new RegExp(`${id}: .*cancelled`));
  const metrics = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
  assert.match(metrics, /^qwen3_requests_running 0$/m);
});

test('a non-streaming request whose client goes away is cancelled too', async () => {
  const logged = (server.log().match(/cmpl-\w+: .*cancelled/g) ?? []).length;
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 2500);  // past the first second: the reply is under way
  await assert.rejects(client.completions.create({ model: 'tiny', prompt: 'Count forever:', max_tokens: 4000, temperature: 0,
    ignore_eos: true }, { signal: controller.signal }));
  const deadline = Date.now() + 15000;
  while ((server.log().match(/cmpl-\w+: .*cancelled/g) ?? []).length === logged && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
  assert.equal((server.log().match(/cmpl-\w+: .*cancelled/g) ?? []).length, logged + 1, server.log().slice(-600));
  const metrics = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
  assert.match(metrics, /^qwen3_requests_running 0$/m);
  // and a long non-streaming reply still arrives whole (white space before the JSON body)
  const r = await client.completions.create({ model: 'tiny', prompt: 'Count:', max_tokens: 800, temperature: 0, ignore_eos: true });
  assert.equal(r.usage.completion_tokens, 800);
  const { stdout } = await run(TOOL, ['generate', MODEL, '-p', 'Count:', '-n', '800', '--temp', '0', '--ignore-eos', '-t', '1']);
  assert.equal(r.choices[0].text, stdout.replace(/\n$/, ''));
});

async function post(path, body, headers = {}) {
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}`, ...headers }, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

test('response_format json_schema: the answer parses and holds to the schema', async () => {
  const schema = { type: 'object', properties: { answer: { enum: ['yes', 'no'] }, n: { type: 'integer', minimum: 1, maximum: 9 } },
    required: ['answer', 'n'], additionalProperties: false };
  let checked = 0;
  for (const seed of [1, 2, 3, 4]) {
    const r = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Yes or no?' }], seed,
      temperature: 1, max_tokens: 120, chat_template_kwargs: { enable_thinking: false },
      response_format: { type: 'json_schema', json_schema: { name: 'verdict', schema } } });
    const choice = r.choices[0];
    if (choice.finish_reason === 'length') continue;
    assert.equal(choice.finish_reason, 'stop');
    const v = JSON.parse(choice.message.content);
    assert.deepEqual(Object.keys(v), ['answer', 'n']);
    assert.ok(['yes', 'no'].includes(v.answer));
    assert.ok(Number.isInteger(v.n) && v.n >= 1 && v.n <= 9, JSON.stringify(v));
    ++checked;
  }
  assert.ok(checked >= 2, `only ${checked} answers ended`);
});

test('tool_choice required: every reply is tool calls naming a tool, with arguments of its schema', async () => {
  const tools = [{ type: 'function', function: { name: 'set_alarm', parameters: { type: 'object',
    properties: { hour: { type: 'integer', minimum: 0, maximum: 23 }, label: { type: 'string', maxLength: 8 } },
    required: ['hour', 'label'], additionalProperties: false } } }];
  let calls = 0;
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Wake me.' }], seed, tools,
      tool_choice: 'required', temperature: 1, max_tokens: 120, chat_template_kwargs: { enable_thinking: false } });
    const choice = r.choices[0];
    if (choice.finish_reason === 'length') continue;
    assert.equal(choice.finish_reason, 'tool_calls');
    for (const call of choice.message.tool_calls) {
      assert.equal(call.function.name, 'set_alarm');
      const args = JSON.parse(call.function.arguments);
      assert.ok(Number.isInteger(args.hour) && args.hour >= 0 && args.hour <= 23, call.function.arguments);
      assert.equal(typeof args.label, 'string');
      ++calls;
    }
  }
  assert.ok(calls >= 1, 'no reply ended with its calls');
  // a keyword the grammar cannot honour is a 400 naming the field
  const bad = await post('/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'hi' }],
    response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', patternProperties: {} } } } }));
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.param, 'response_format');
  assert.match(bad.body.error.message, /patternProperties/);
});

test('a grammar that keeps thousands of alternatives open fails alone with a 400; the others are served', async () => {
  // 3,000 alternatives of [a-z]{k}: every token mask would need thousands of vocabulary walks
  const words = Array.from({ length: 3000 }, (_, i) => `[a-z]{${i % 50 + 1}}`).join(' | ');
  const grammar = `root ::= word (" " word)*\nword ::= ${words}\n`;
  const started = Date.now();
  const [costly, fine] = await Promise.all([
    post('/v1/completions', JSON.stringify({ prompt: 'Words:', grammar, max_tokens: 64, temperature: 1 })),
    client.completions.create({ model: 'tiny', prompt: 'Count:', max_tokens: 8, temperature: 0 }),
  ]);
  assert.equal(costly.status, 400, JSON.stringify(costly.body));
  assert.equal(costly.body.error.type, 'invalid_request_error');
  assert.match(costly.body.error.message, /GrammarLimits::max_mask_steps/);
  assert.ok(Date.now() - started < 60000);
  assert.equal(fine.choices[0].text, await reference('Count:', 8));
});

test('bad requests get OpenAI-style errors and the server keeps serving', async () => {
  const ok = JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  const cases = [
    [await post('/v1/chat/completions', '{"messages": [', {}), 400, null],
    [await post('/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], temperature: 'hot' })), 400, 'temperature'],
    [await post('/v1/chat/completions', JSON.stringify({ messages: 'hi' })), 400, 'messages'],
    [await post('/v1/chat/completions', JSON.stringify({ messages: [{ role: 'wizard', content: 'hi' }] })), 400, 'messages[0].role'],
    [await post('/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], n: 3 })), 400, 'n'],
    [await post('/v1/completions', JSON.stringify({ prompt: [1, 2, 999999] })), 400, 'prompt'],
    [await post('/v1/chat/completions', ok, { Authorization: 'Bearer wrong' }), 401, null],
    [await post('/v1/chat/completions', ok, { Authorization: '' }), 401, null],
    [await post('/v1/nothing', ok), 404, null],
    [await post('/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(2 << 20) }] })), 413, null],
  ];
  for (const [r, status, param] of cases) {
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.equal(typeof r.body.error.message, 'string');
    assert.equal(typeof r.body.error.type, 'string');
    if (param) assert.equal(r.body.error.param, param);
  }
  const long = await post('/v1/completions', JSON.stringify({ prompt: Array(5000).fill(100), max_tokens: 1 }));
  assert.equal(long.status, 400);
  assert.equal(long.body.error.code, 'context_length_exceeded');
  // the official client maps the same statuses to its error classes
  const bad = new OpenAI({ baseURL: `http://127.0.0.1:${server.port}/v1`, apiKey: 'nope', maxRetries: 0 });
  await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: [] }), (e) => e instanceof OpenAI.BadRequestError);
  // still serving
  const r = await post('/v1/chat/completions', ok);
  assert.equal(r.status, 200);
  assert.equal((await fetch(`http://127.0.0.1:${server.port}/health`)).status, 200);
});

test('requests beyond the sequences and the queue get 503 with Retry-After', async () => {
  const small = await startServer(['--parallel', '1', '--queue', '0', '-t', '1', '--model-name', 'tiny', '--no-log']);
  try {
    const url = `http://127.0.0.1:${small.port}/v1/completions`;
    const body = (n) => JSON.stringify({ prompt: 'Count:', max_tokens: n, temperature: 0, stream: true });
    const first = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: body(3000) });
    assert.equal(first.status, 200);
    const reader = first.body.getReader();
    await reader.read();  // the first request is running
    const second = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: body(1) });
    assert.equal(second.status, 503);
    assert.equal(second.headers.get('retry-after'), '1');
    assert.equal((await second.json()).error.type, 'server_error');
    await reader.cancel();
  } finally {
    assert.equal(await stopServer(small), 0);
  }
});

test('bench/serve_load.mjs runs a bounded load and reports its figures', async () => {
  const script = new URL('../../bench/serve_load.mjs', import.meta.url).pathname;
  // the load script sends no key: a second server without one
  const open = await startServer(['--parallel', '4', '-t', '1', '--model-name', 'tiny', '--no-log']);
  try {
    const { stdout } = await run(process.execPath, [script, '--url', `http://127.0.0.1:${open.port}`, '--clients', '1,3',
      '--requests', '6', '--max-tokens', '8', '--json']);
    const rows = stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(rows.map((r) => r.clients), [1, 3]);
    for (const r of rows) {
      assert.equal(r.requests, 6);
      assert.equal(r.tokens, 6 * 8, 'ignore_eos: every request generates max_tokens');
      assert.ok(r.tokens_per_s > 0 && r.ttft_p50_ms > 0 && r.ttft_p99_ms >= r.ttft_p50_ms && r.stream_decode_tokens_per_s > 0);
    }
  } finally {
    assert.equal(await stopServer(open), 0);
  }
});

test('/metrics is Prometheus text with request, token and queue figures', async () => {
  const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
  for (const name of ['qwen3_requests_total', 'qwen3_prompt_tokens_total', 'qwen3_completion_tokens_total', 'qwen3_requests_waiting',
    'qwen3_time_to_first_token_seconds_count', 'qwen3_decode_tokens_per_second', 'qwen3_kv_pages_used'])
    assert.match(text, new RegExp(`^${name} [0-9.e+-]+$`, 'm'), name);
  assert.match(text, /^# TYPE qwen3_requests_total counter$/m);
  const total = Number(text.match(/^qwen3_requests_total (\S+)$/m)[1]);
  assert.ok(total >= 20);
});
