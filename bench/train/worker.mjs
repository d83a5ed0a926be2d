#!/usr/bin/env node
// One measurement in a fresh process (so peak RSS is this run's alone): Topiary training or evaluation of a random
// LLaMA on one backend. Prints one JSON line. Used by bench/train/run.mjs and bench/eval/run.mjs.
// node bench/train/worker.mjs --mode train|eval --backend wasm|native --dim 64 --layers 5 --heads 8 --kv 4
//   --hidden 172 --vocab 512 --seq 256 --batch 8 --steps 3 --warmup 1 [--threads 2]
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : dflt);
const num = (name, dflt) => Number(opt(name, String(dflt)));
const mode = opt('mode', 'train');
const backendName = opt('backend', 'wasm');
const cfg = {
  dim: num('dim', 64),
  nLayers: num('layers', 5),
  nHeads: num('heads', 8),
  nKvHeads: num('kv', num('heads', 8)),
  hiddenDim: num('hidden', 172),
  vocabSize: num('vocab', 512),
  maxSeqLen: num('seq', 256) + 1,
  tiedEmbeddings: true,
};
const seq = num('seq', 256);
const batch = num('batch', 8);
const steps = num('steps', 3);
const warmup = num('warmup', 1);
const threads = num('threads', 2);

const tf = await import(join(root, 'plugins', 'backend-wasm', 'node_modules', '@tensorflow', 'tfjs', 'dist', 'tf.node.js'));
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
const { createLlama, AdamW, trainStep } = await import(join(root, 'packages', 'model-llama', 'dist', 'index.js'));
const model = createLlama(cfg, { seed: 1 });
const params = model.parameterCount();

// Token ids from a fixed LCG (the same on both sides is not needed: the cost does not depend on the values).
let state = 12345;
const nextId = () => ((state = (state * 1103515245 + 12345) % 2147483648), state % cfg.vocabSize);
const batches = [0, 1].map(() => tf.tensor2d(Int32Array.from({ length: batch * (seq + 1) }, nextId), [batch, seq + 1], 'int32'));

const opt2 = new AdamW({ lr: 1e-3 });
const losses = [];
const one = (i) => {
  const ids = batches[i % 2];
  if (mode === 'train') losses.push(trainStep(model, opt2, ids).loss);
  else {
    const l = model.loss(ids);
    losses.push(l.dataSync()[0]);
    l.dispose();
  }
};
for (let i = 0; i < warmup; i++) one(i);
const tensorsBefore = tf.memory().numTensors;
const t0 = performance.now();
for (let i = 0; i < steps; i++) one(i);
const seconds = (performance.now() - t0) / 1000;
const tensorsAfter = tf.memory().numTensors;
console.log(
  JSON.stringify({
    ok: true,
    engine: 'topiary',
    backend: backendName,
    mode,
    params,
    config: { ...cfg, seq, batch },
    steps,
    seconds,
    tokensPerSecond: (steps * batch * seq) / seconds,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    tensorsBefore,
    tensorsAfter,
    loss: losses.at(-1),
    capabilities: backend.capabilities(),
  }),
);
