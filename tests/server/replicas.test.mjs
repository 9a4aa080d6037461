// Scale-out: two `qwen3 serve` replicas behind nginx as a round-robin upstream, the official OpenAI
// client talking to nginx. Requests spread over both replicas; when one stops mid-run, requests go
// to the other (proxy_next_upstream) and every request still succeeds. Replicas hold no state a
// later request needs (each request carries its whole conversation), so any replica can serve it.
//
// Environment as openai.test.mjs, plus nginx on PATH or at /usr/sbin/nginx.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';

const TOOL = process.env.QWEN3_TOOL;
const MAKE_MODEL = process.env.QWEN3_MAKE_MODEL;
const DATA = process.env.QWEN3_TEST_DATA;
const NGINX = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
const dir = mkdtempSync(join(tmpdir(), 'qwen3-replicas-'));
const MODEL = join(dir, 'tiny.gguf');
const replicas = [];
let nginxPort;

const freePort = () => new Promise((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
});

function startReplica(name) {
  return new Promise((resolve, reject) => {
    const proc = spawn(TOOL, ['serve', MODEL, '--port', '0', '--parallel', '4', '-t', '1', '--model-name', 'tiny',
      '--shutdown-grace', '5'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const r = { name, proc, log: '' };
    proc.stderr.on('data', (d) => {
      r.log += d.toString();
      const m = r.log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m && !r.port) { r.port = Number(m[1]); resolve(r); }
    });
    proc.on('exit', (code) => { r.exitCode = code; if (!r.port) reject(new Error(r.log)); });
  });
}

// Completions each replica logged (one summary line per finished request).
const served = (r) => (r.log.match(/cmpl-\w+: prompt/g) ?? []).length;
// The replicas' stderr reaches us on its own schedule: wait (a little) for the lines to arrive.
async function total(expected) {
  for (let i = 0; i < 100 && served(replicas[0]) + served(replicas[1]) < expected; ++i) await new Promise((r) => setTimeout(r, 50));
  return served(replicas[0]) + served(replicas[1]);
}

before(async () => {
  execFileSync(MAKE_MODEL, ['--preset', 'tiny', '--dtype', 'f32', '--out', MODEL,
    '--tokenizer', join(DATA, 'tokenizer', 'tokenizer.json')], { stdio: 'ignore' });
  replicas.push(await startReplica('a'), await startReplica('b'));
  nginxPort = await freePort();
  for (const d of ['logs', 'tmp']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'nginx.conf'), `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log;
events { worker_connections 256; }
http {
  access_log ${dir}/logs/access.log;
  client_body_temp_path ${dir}/tmp/body; proxy_temp_path ${dir}/tmp/proxy; fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi; scgi_temp_path ${dir}/tmp/scgi;
  upstream qwen3 {
    server 127.0.0.1:${replicas[0].port} max_fails=1 fail_timeout=30s;
    server 127.0.0.1:${replicas[1].port} max_fails=1 fail_timeout=30s;
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${nginxPort};
    client_max_body_size 8m;
    location / {
      proxy_pass http://qwen3;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;                  # server-sent events pass through as they come
      proxy_read_timeout 600s;
      # a stopped or stopping replica; POSTs may be retried: a 503 from qwen3 serve means not started
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_next_upstream_tries 2;
    }
  }
}
`);
  execFileSync(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf')]);  // daemonizes
});

after(async () => {
  try { execFileSync(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-s', 'stop']); } catch { /* not started */ }
  for (const r of replicas) if (r.exitCode === undefined) r.proc.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('two replicas behind nginx: round robin, then failover when one stops', async () => {
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${nginxPort}/v1`, apiKey: 'none', maxRetries: 0 });
  const ask = async (i, stream) => {
    const params = { model: 'tiny', prompt: `Request ${i}:`, max_tokens: 8, temperature: 0 };
    if (!stream) return (await client.completions.create(params)).choices[0].text;
    let text = '';
    for await (const c of await client.completions.create({ ...params, stream: true })) text += c.choices[0]?.text ?? '';
    return text;
  };
  const first = await Promise.all(Array.from({ length: 8 }, (_, i) => ask(i, i % 2 === 0)));
  assert.equal(first.length, 8);
  assert.equal(await total(8), 8);
  assert.ok(served(replicas[0]) > 0 && served(replicas[1]) > 0, `round robin: a ${served(replicas[0])}, b ${served(replicas[1])}`);

  // replica a stops (graceful: it refuses new requests, then exits)
  const stopped = new Promise((resolve) => replicas[0].proc.on('exit', resolve));
  replicas[0].proc.kill('SIGTERM');
  const second = await Promise.all(Array.from({ length: 8 }, (_, i) => ask(i, i % 2 === 1)));
  // the same prompts give the same text on either replica
  assert.deepEqual(second, first);
  assert.equal(await stopped, 0);
  assert.equal(await total(16), 16, 'every request was served once');
  const aServed = served(replicas[0]);
  await Promise.all(Array.from({ length: 6 }, (_, i) => ask(100 + i, true)));
  assert.equal(served(replicas[0]), aServed, 'nothing goes to the stopped replica');
  assert.equal(await total(22), 22);
  assert.match(readFileSync(join(dir, 'logs', 'access.log'), 'utf8'), /POST \/v1\/completions/);
});
