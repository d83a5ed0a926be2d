#!/usr/bin/env node
// One Topiary generation measurement in a fresh process (so peak RSS is this run's alone): greedy generation with
// the KV cache through the public `generate` API, `--batch` sequences decoded together. Prints one JSON line.
// Used by bench/generate/run.mjs.
// node bench/generate/worker.mjs --backend wasm|native [--bin PATH | --dim 64 --layers 5 --heads 8 --kv 4 --hidden 172
//   --vocab 512] --batch 1 --prompt 8 --new 200 [--warmup 8] [--threads 2] [--ids 1,403,...]
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : dflt);
const num = (name, dflt) => Number(opt(name, String(dflt)));
const backendName = opt('backend', 'wasm');
const batch = num('batch', 1);
const promptLen = num('prompt', 8);
const newTokens = num('new', 200);
const warmupTokens = num('warmup', 8);
const threads = num('threads', 2);
const bin = opt('bin', '');

let backend;
if (backendName === 'wasm') {
  const { createWasmBackend } = await import(join(root, 'plugins', 'backend-wasm', 'dist', 'index.js'));
  backend = createWasmBackend({ threads });
} else if (backendName === 'native') {
  const { createNativeBackend } = await import(join(root, 'plugins', 'backend-native', 'dist', 'index.js'));
  backend = createNativeBackend({ threads });
} else throw new Error(`unknown backend ${backendName}`);
const avail = await backend.available();
if (!avail.ok) {
  console.log(JSON.stringify({ ok: false, backend: backendName, reason: avail.reason, fix: avail.fix }));
  process.exit(0);
}
await backend.init();
const tf = await import(join(root, 'plugins', 'backend-wasm', 'node_modules', '@tensorflow', 'tfjs', 'dist', 'tf.node.js'));
const { createLlama, loadModel, generate } = await import(join(root, 'packages', 'model-llama', 'dist', 'index.js'));
const model = bin
  ? await loadModel(resolve(root, bin))
  : createLlama(
      {
        dim: num('dim', 64),
        nLayers: num('layers', 5),
        nHeads: num('heads', 8),
        nKvHeads: num('kv', num('heads', 8)),
        hiddenDim: num('hidden', 172),
        vocabSize: num('vocab', 512),
        maxSeqLen: promptLen + Math.max(newTokens, warmupTokens),
        tiedEmbeddings: true,
      },
      { seed: 1 },
    );
const vocab = model.config.vocabSize;

// Prompts: --ids for every row (the agreement check), else ids from a fixed LCG (the cost does not depend on them).
let state = 12345;
const nextId = () => ((state = (state * 1103515245 + 12345) % 2147483648), 3 + (state % (vocab - 3)));
const ids = opt('ids', '');
const prompts = Array.from({ length: batch }, () => (ids ? ids.split(',').map(Number) : Array.from({ length: promptLen }, nextId)));

// Exactly --new tokens per row, as the PyTorch side (which leaves out generation.py's stop at EOS).
const run = (n) => (batch === 1 ? [generate(model, prompts[0], { maxTokens: n, stopAtEos: false })] : generate(model, prompts, { maxTokens: n, stopAtEos: false }));
run(warmupTokens);
const t0 = performance.now();
const out = run(newTokens);
const seconds = (performance.now() - t0) / 1000;
console.log(
  JSON.stringify({
    ok: true,
    engine: 'topiary',
    backend: backendName,
    params: model.parameterCount(),
    batch,
    promptTokens: prompts[0].length,
    newTokens,
    seconds,
    tokensPerSecond: (batch * newTokens) / seconds,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    ids: out[0],
    rowsAgree: out.every((r) => r.join() === out[0].join()) || !ids,
    tensors: tf.memory().numTensors,
    capabilities: backend.capabilities(),
  }),
);
