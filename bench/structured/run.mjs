#!/usr/bin/env node
/**
 * bench/structured — does structured pruning make the model faster? Tokens/s of generation (KV cache, greedy,
 * one sequence) and of a forward pass (batch 4 × 128 tokens) for dense vs pruned models:
 *   - the shipped stories260K (real weights): dense, llm-pruner 20 % (blocks 1:4, the paper's range),
 *     llm-pruner 50 % (all blocks 0:5: blocks 1:4 alone hold only 52 %), depth 25 % (round(0.25·5) = 1 block);
 *     perplexity before, after, and after recovery (finetune with distillation from the dense model) on a held-out
 *     tail of the TinyStories text, plus parameters and safetensors bytes;
 *   - a bigger SEEDED-RANDOM model (dim 288, 6 layers, 6 heads, FFN 768, vocab 512 — stories15M's shape with the
 *     small vocabulary; its weights are random, so only its speed means anything): the same cuts, speed only
 *     (depth 25 % = round(1.5) = 2 blocks).
 *
 * Run from the repository root after building: `pnpm build && node bench/structured/run.mjs [--quick]`.
 * Writes bench/out/structured.json and prints markdown tables. The machine is shared: numbers are noisy.
 */
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = (p) => import(pathToFileURL(join(root, p, 'dist', 'index.js')).href);
const req = createRequire(join(root, 'plugins/pruner-llm-pruner/package.json'));
const tf = await import(pathToFileURL(req.resolve('@tensorflow/tfjs')).href);
const kernel = await dist('packages/kernel');
const llama = await dist('packages/model-llama');
const corpus = await dist('packages/corpus');
const evalPkg = await dist('packages/eval');
const ft = await dist('packages/finetune');
const wasm = (await dist('plugins/backend-wasm')).default;
const taylor = (await dist('plugins/saliency-taylor')).default;
const { llmPruner } = await dist('plugins/pruner-llm-pruner');
const { depthPruner } = await dist('plugins/pruner-depth');

const quick = process.argv.includes('--quick');
const container = kernel.createContainer();
wasm.register(container, {});
taylor.register(container, {});
const backend = kernel.resolveNamed(container, kernel.Tokens.TensorBackend, 'wasm', 'backend');
await backend.init();
const events = new kernel.EventBus();
const ctxFor = (windows) => ({ backend, events, calibration: windows, saliency: (n) => kernel.resolveNamed(container, kernel.Tokens.Saliency, n, 'saliency') });

// ---------------------------------------------------------------- data: calibration/fine-tune head, held-out tail
const shippedDir = join(root, 'assets/models/stories260K-hf');
const tokenizer = await corpus.loadTokenizer(join(shippedDir, 'tokenizer.json'));
const text = readFileSync(join(root, 'assets/data/tinystories_val_head.txt'), 'utf8');
const cut = text.indexOf('\n\n', Math.floor(text.length * 0.8));
const outDir = join(root, 'bench/out');
mkdirSync(outDir, { recursive: true });
const trainFile = join(outDir, 'structured-train.txt');
writeFileSync(trainFile, text.slice(0, cut));
const heldOut = tokenizer.encode(text.slice(cut + 2), { bos: true });
const trainTokens = await corpus.tokenizeCorpus(corpus.textFileCorpus(trainFile), tokenizer);
const calibration = corpus.sampleCalibration(trainTokens, { samples: 10, seqLen: 64, seed: 0 });
const ftWindows = corpus.packBlocks(trainTokens, 64);

async function perplexity(model) {
  const r = await evalPkg.evaluatePerplexity(model, tokenizer, { file: 'held-out tail', ids: heldOut, seqLen: 256 }, { events, limit: quick ? 10 : 60 });
  return r.ppl;
}

// ---------------------------------------------------------------- speed
function forwardTokensPerSecond(model, vocab) {
  const b = 4;
  const t = 128;
  const ids = tf.tensor2d(Int32Array.from({ length: b * t }, (_, i) => (i * 7919) % vocab), [b, t], 'int32');
  tf.tidy(() => model.forward(ids).dataSync()); // warm-up
  const reps = quick ? 2 : 5;
  const start = performance.now();
  for (let r = 0; r < reps; r++) tf.tidy(() => model.forward(ids).dataSync());
  const s = (performance.now() - start) / 1000;
  ids.dispose();
  return (reps * b * t) / s;
}

function generationTokensPerSecond(model) {
  const n = quick ? 32 : 128;
  llama.generate(model, [1], { maxTokens: 8, stopAtEos: false }); // warm-up
  const start = performance.now();
  const out = llama.generate(model, [1], { maxTokens: n, stopAtEos: false });
  const s = (performance.now() - start) / 1000;
  return (out.length - 1) / s;
}

function bytesOf(model, name) {
  const dir = join(outDir, `structured-${name}`);
  rmSync(dir, { recursive: true, force: true });
  return llama.saveModel(model, dir).then(() => statSync(join(dir, 'model.safetensors')).size);
}

async function recover(student, teacher) {
  const steps = quick ? 20 : 200;
  await ft.finetune(student, {
    schedule: { lr: 2e-3, minLr: 1e-4, steps, warmup: Math.floor(steps / 10), decay: 'cosine' },
    windows: ftWindows,
    batchSize: 8,
    seed: 0,
    teacher,
    distill: { temperature: 2, alpha: 0.5 },
    optimizer: new llama.AdamW({ lr: 2e-3, weightDecay: 0 }),
  });
}

const cuts = (n) => [
  { name: 'dense', prune: null },
  { name: `width 20% (llm-pruner, blocks 1:${n - 1})`, prune: (m) => llmPruner.prune(m, kernel.parseOptions(llmPruner.options, { ratio: 0.2, saliency: 'taylor-element' }, ''), ctxFor(calibration)) },
  { name: 'width 50% (llm-pruner, blocks 0:N)', prune: (m) => llmPruner.prune(m, kernel.parseOptions(llmPruner.options, { ratio: 0.5, saliency: 'taylor-element', layers: '0:' }, ''), ctxFor(calibration)) },
  { name: `depth 25% (${Math.round(0.25 * n)} block(s), block influence)`, prune: (m) => depthPruner.prune(m, kernel.parseOptions(depthPruner.options, { remove: Math.round(0.25 * n) }, ''), ctxFor(calibration)) },
];

async function benchModel(label, load, withQuality) {
  const rows = [];
  const dense = await load();
  for (const c of cuts(dense.numBlocks)) {
    const base = await load();
    const ppl0 = withQuality ? await perplexity(base) : null;
    const model = c.prune ? (await c.prune(base)).model : base;
    const row = {
      model: label,
      cut: c.name,
      parameters: model.parameterCount(),
      bytes: await bytesOf(model, `${label}-${rows.length}`),
      pplBefore: ppl0,
      pplAfter: withQuality ? await perplexity(model) : null,
      pplRecovered: null,
      forwardTokS: forwardTokensPerSecond(model, model.config.vocabSize),
      generateTokS: generationTokensPerSecond(model),
    };
    if (withQuality && c.prune) {
      await recover(model, dense);
      row.pplRecovered = await perplexity(model);
    }
    rows.push(row);
    process.stderr.write(`${label} ${c.name}: ${JSON.stringify(row)}\n`);
    if (model !== base) base.dispose();
    model.dispose();
  }
  dense.dispose();
  return rows;
}

const random = { vocabSize: 512, dim: 288, nLayers: 6, nHeads: 6, nKvHeads: 6, hiddenDim: 768, maxSeqLen: 256 };
const rows = [
  ...(await benchModel('stories260K', () => llama.loadModel(shippedDir), true)),
  ...(await benchModel('random-288x6', async () => llama.createLlama(random, { seed: 0 }), false)),
];
writeFileSync(join(outDir, 'structured.json'), `${JSON.stringify({ date: new Date().toISOString(), quick, rows }, null, 1)}\n`);
const f = (x, d = 1) => (x === null ? '—' : x.toFixed(d));
console.log('| model | cut | parameters | bytes | ppl before | ppl after | ppl after recovery | forward tok/s | generate tok/s |');
console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  console.log(`| ${r.model} | ${r.cut} | ${r.parameters} | ${r.bytes} | ${f(r.pplBefore, 2)} | ${f(r.pplAfter, 2)} | ${f(r.pplRecovered, 2)} | ${f(r.forwardTokS, 0)} | ${f(r.generateTokS, 0)} |`);
}
