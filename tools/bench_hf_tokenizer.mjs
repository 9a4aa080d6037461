// Hugging Face `tokenizers` on the corpora of tools/gen_tokenizer_corpus.py, for comparison with
// bench/bench_tokenizer's "chunked" rows run in the same session: one thread, the text encoded in the
// same ~2 KB pieces (from i, 2048 UTF-16 units, then on to the next space, at most to i + 2300), best
// of 3 passes. Prints one JSON line per file.
//
//   npm install tokenizers@0.23.2
//   RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false node tools/bench_hf_tokenizer.mjs TOKENIZER_JSON FILE...
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Tokenizer } = require("tokenizers");

const [tokenizerPath, ...files] = process.argv.slice(2);
if (!tokenizerPath || files.length === 0) {
  console.error("usage: node tools/bench_hf_tokenizer.mjs TOKENIZER_JSON FILE...");
  process.exit(2);
}
const seconds = (start) => Number(process.hrtime.bigint() - start) / 1e9;

const loadStart = process.hrtime.bigint();
const tokenizer = Tokenizer.fromFile(tokenizerPath);
const loadMs = seconds(loadStart) * 1000;

for (const file of files) {
  const text = readFileSync(file, "utf8");
  const pieces = [];
  for (let i = 0; i < text.length; ) {
    let j = Math.min(text.length, i + 2048);
    while (j < text.length && text[j] !== " " && j < i + 2300) j++;
    pieces.push(text.slice(i, j));
    i = j;
  }
  let best = Infinity;
  let tokens = 0;
  for (let pass = 0; pass < 3; pass++) {
    tokens = 0;
    const start = process.hrtime.bigint();
    for (const piece of pieces) tokens += (await tokenizer.encode(piece)).getIds().length;
    best = Math.min(best, seconds(start));
  }
  const bytes = Buffer.byteLength(text, "utf8");
  console.log(JSON.stringify({ file, bytes, tokens, load_ms: +loadMs.toFixed(1), seconds: +best.toFixed(3),
                               mb_per_s: +(bytes / best / 1e6).toFixed(2), tokens_per_s: Math.round(tokens / best) }));
}
