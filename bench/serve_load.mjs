// A bounded load test of an OpenAI-compatible server (qwen3 serve, llama-server, ...), loopback
// only: C clients each send streaming chat completions back to back until R requests have been
// sent, then it stops and prints requests/s, time to first token (p50, p99), aggregate generated
// tokens/s, and each stream's decode rate after its first token (the server's counterpart of
// llama-bench's tg). Node 18+ (fetch), no packages.
//
//   node bench/serve_load.mjs --url http://127.0.0.1:8080 --clients 1,8,16 --requests 32 --max-tokens 128 [--json]
//
// Every request asks for exactly --max-tokens tokens (ignore_eos for llama-server, the same limit
// for qwen3 serve with a stop that never matches) so both servers generate the same amount; tokens
// are counted from the usage the server reports.
const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1] && !all[i + 1].startsWith('--') ? all[i + 1] : true]);
  return acc;
}, []));
const url = (args.url ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
if (!/^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(url)) throw new Error('loopback addresses only: ' + url);
const clientCounts = String(args.clients ?? '1,8,16').split(',').map(Number);
const maxTokens = Number(args['max-tokens'] ?? 128);
const promptWords = Number(args['prompt-words'] ?? 32);
const json = Boolean(args.json);

async function one(i) {
  const body = {
    model: 'm', stream: true, stream_options: { include_usage: true }, max_tokens: maxTokens, temperature: 0,
    ignore_eos: true,  // llama-server: generate max_tokens whatever the model says
    messages: [{ role: 'user', content: `Request ${i}: ` + 'tell me about the weather today '.repeat(promptWords / 6) }],
    chat_template_kwargs: { enable_thinking: false },
  };
  const start = performance.now();
  const res = await fetch(url + '/v1/chat/completions', { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body) });
  if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
  let ttft = null;
  let last = null;  // arrival of the latest text
  let tokens = 0;
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const bytes of res.body) {
    buffer += decoder.decode(bytes, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
      const chunk = JSON.parse(event.slice(6));
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
      const delta = chunk.choices?.[0]?.delta;
      if (delta && ((delta.content ?? '') !== '' || (delta.reasoning_content ?? '') !== '')) {
        last = performance.now() - start;
        if (ttft === null) ttft = last;
      }
    }
  }
  // the stream's decode rate as the client sees it: tokens after the first over the time they took
  const decode = ttft !== null && last > ttft ? (tokens - 1) / ((last - ttft) / 1000) : 0;
  return { ttft: ttft ?? performance.now() - start, tokens, decode, seconds: (performance.now() - start) / 1000 };
}

const quantile = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };

for (const clients of clientCounts) {
  const total = Number(args.requests ?? Math.max(8, 2 * clients));
  let next = 0;
  const results = [];
  const start = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    while (next < total) results.push(await one(next++));
  }));
  const seconds = (performance.now() - start) / 1000;
  const tokens = results.reduce((a, r) => a + r.tokens, 0);
  const row = { url, clients, requests: total, seconds: +seconds.toFixed(2), requests_per_s: +(total / seconds).toFixed(3),
    ttft_p50_ms: +quantile(results.map((r) => r.ttft), 0.5).toFixed(1), ttft_p99_ms: +quantile(results.map((r) => r.ttft), 0.99).toFixed(1),
    tokens, tokens_per_s: +(tokens / seconds).toFixed(1),
    stream_decode_tokens_per_s: +(results.reduce((a, r) => a + r.decode, 0) / results.length).toFixed(1) };
  if (json) console.log(JSON.stringify(row));
  else console.log(`${clients} clients: ${total} requests in ${row.seconds} s, ${row.requests_per_s} req/s, TTFT p50 ${row.ttft_p50_ms} ms p99 ${row.ttft_p99_ms} ms, ${tokens} tokens, ${row.tokens_per_s} t/s, each stream ${row.stream_decode_tokens_per_s} t/s after its first token`);
}
