#!/usr/bin/env node
// One streamed Topiary prune of a bench/scale model, for bench/scale/run.mjs (a fresh process per measurement):
//
//   node bench/scale/topiary_run.mjs --model DIR --method wanda|sparsegpt --ids FILE --backend wasm|native
//        --samples S --seqlen L [--blocks K] [--batch 0] [--out DIR] [--json OUT.json]
//
// The model is opened streamed (one block on the tensor heap), the calibration windows are the int32 ids of FILE
// (samples × seqlen, written by generate.mjs — the same the PyTorch reference reads), and the pruner runs through the
// pipeline's prune stage exactly as `topiary prune` runs it: each finished block is written into the output folder
// (--out, else a temporary folder removed at the end) and read back from there when needed, as the command does —
// without an output the pruned blocks would have to be kept (host memory, then spilled), which no real run does.
// Prints and writes {blocks: [{index, seconds}], totalSeconds, peakRssBytes, backend, heapBytes}.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { PerformanceObserver } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { resolve, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { openRun, openStreamedPrune, runPruneStage } from '../../packages/pipeline/dist/index.js';
import { loadModel } from '../../packages/model-llama/dist/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
// the tfjs the model package uses (the same module instance: its engine counts the model's tensors)
const tf = await import(pathToFileURL(createRequire(resolve(here, '..', '..', 'packages', 'model-llama', 'package.json')).resolve('@tensorflow/tfjs-core')).href);
const root = resolve(here, '..', '..');
const argv = process.argv.slice(2);
const arg = (flag, dflt) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : dflt);
const modelDir = arg('--model');
const method = arg('--method', 'wanda');
const backendName = arg('--backend', 'wasm');
const samples = Number(arg('--samples', '128'));
const seqlen = Number(arg('--seqlen', '128'));
const blocksArg = arg('--blocks');
const batch = Number(arg('--batch', '0')); // 0: the pruner's default
const out = arg('--out') ?? mkdtempSync(join(tmpdir(), 'topiary-scale-out-'));
const keepOut = argv.includes('--out');
const jsonOut = arg('--json');
if (!modelDir || !arg('--ids')) throw new Error('usage: topiary_run.mjs --model DIR --ids FILE [--method M] [--backend B]');

const idsBytes = readFileSync(arg('--ids'));
const ids = new Int32Array(idsBytes.buffer.slice(idsBytes.byteOffset, idsBytes.byteOffset + idsBytes.byteLength));
if (ids.length < samples * seqlen) throw new Error(`${arg('--ids')} holds ${ids.length} ids, fewer than ${samples} × ${seqlen}`);
const windows = Array.from({ length: samples }, (_, i) => ids.slice(i * seqlen, (i + 1) * seqlen));

// --trace: where the resident set grows. The work is synchronous (no timer fires), so the model's steps are wrapped:
// after each, the kernel's high-water mark (VmHWM) is read, and each rise is charged to the step that caused it.
const phases = new Map();
let lastHwm = 0;
let lastHeap = 0;
function vm(key) {
  const m = readFileSync('/proc/self/status', 'utf8').match(new RegExp(`${key}:\\s+(\\d+) kB`));
  return m ? Number(m[1]) * 1024 : 0;
}
function note(phase) {
  if (process.env.TRACE_GC && globalThis.gc) globalThis.gc(); // experiment: how much of the peak is uncollected garbage
  const hwm = vm('VmHWM');
  const mem = process.memoryUsage();
  const heap = tf.backend()?.wasm?.HEAPU8?.byteLength ?? 0;
  const p = phases.get(phase) ?? { calls: 0, hwmRise: 0, heapRise: 0, maxRss: 0, maxArrayBuffers: 0, maxWasmHeap: 0 };
  p.calls++;
  p.heapRise += Math.max(0, heap - lastHeap);
  if (heap > lastHeap && process.env.TRACE_HEAP) process.stderr.write(`heap ${(heap / 2 ** 20).toFixed(0)} MB after ${phase} (live tensors ${(tf.memory().numBytes / 2 ** 20).toFixed(0)} MB)\n`);
  lastHeap = Math.max(lastHeap, heap);
  p.hwmRise += Math.max(0, hwm - lastHwm);
  p.maxRss = Math.max(p.maxRss, mem.rss);
  p.maxArrayBuffers = Math.max(p.maxArrayBuffers, mem.arrayBuffers);
  p.maxWasmHeap = Math.max(p.maxWasmHeap, heap);
  phases.set(phase, p);
  lastHwm = Math.max(lastHwm, hwm);
}
// A worker samples VmRSS every 20 ms while the main thread works (it is blocked in synchronous code most of the
// time): the step running at each sample is read from shared memory, so a peak inside a step is charged to it.
const phaseNames = [];
const current = new Int32Array(new SharedArrayBuffer(4));
const peaks = new Float64Array(new SharedArrayBuffer(8 * 64));
let sampler;
function phaseId(name) {
  if (!phaseNames.includes(name)) phaseNames.push(name);
  return phaseNames.indexOf(name);
}
function startSampler() {
  sampler = new Worker(
    `const { workerData } = require('node:worker_threads'); const fs = require('node:fs');
     const [cur, peaks] = [new Int32Array(workerData.cur), new Float64Array(workerData.peaks)];
     setInterval(() => { const m = fs.readFileSync('/proc/self/status', 'utf8').match(/VmRSS:\\s+(\\d+) kB/);
       const rss = Number(m[1]) * 1024; const id = Atomics.load(cur, 0); if (rss > peaks[id]) peaks[id] = rss; }, 20);`,
    { eval: true, workerData: { cur: current.buffer, peaks: peaks.buffer } },
  );
  sampler.unref();
}
// seconds per step, inclusive of the steps it calls (a weight read inside an upload counts in both)
const phaseSeconds = new Map();
function traced(phase, fn) {
  const id = phaseId(phase);
  return function (...args) {
    const outer = Atomics.load(current, 0);
    Atomics.store(current, 0, id);
    const t0 = performance.now();
    try {
      return fn.apply(this, args);
    } finally {
      phaseSeconds.set(phase, (phaseSeconds.get(phase) ?? 0) + (performance.now() - t0) / 1000);
      Atomics.store(current, 0, outer);
      note(phase);
    }
  };
}
let gcSeconds = 0;
let gcCount = 0;
function traceMemory(m) {
  // V8's collections (releaseHostMemory asks for full ones between steps): their count and time
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcSeconds += e.duration / 1000;
      gcCount++;
    }
  }).observe({ entryTypes: ['gc'] });
  phaseId('other (between the steps below)');
  startSampler();
  note('start (runtime + backend)');
  const st = m.stream;
  st.source.read = traced('weight read (file → float32)', st.source.read.bind(st.source));
  m.materialise = traced('upload to the tensor heap', m.materialise.bind(m));
  m.block = traced('forward (one batch)', m.block.bind(m));
  m.embed = traced('embed', m.embed.bind(m));
  m.readWeight = traced('readWeight (statistics, mask, write)', m.readWeight.bind(m));
  m.writeWeight = traced('writeWeight (masked)', m.writeWeight.bind(m));
  if (m.editWeight) m.editWeight = traced('editWeight (in place: score, mask)', m.editWeight.bind(m));
  m.evict = traced('evict', m.evict.bind(m));
  m.readRows = traced('readRows (shard writer)', m.readRows.bind(m));
}
function printTrace() {
  const mb = (n) => (n / 2 ** 20).toFixed(0);
  process.stderr.write('phase | calls | seconds (inclusive) | VmHWM rise MB | wasm heap rise MB | max RSS MB | max arrayBuffers MB | max wasm heap MB\n');
  for (const [k, p] of phases) process.stderr.write(`${k} | ${p.calls} | ${(phaseSeconds.get(k) ?? 0).toFixed(2)} | ${mb(p.hwmRise)} | ${mb(p.heapRise)} | ${mb(p.maxRss)} | ${mb(p.maxArrayBuffers)} | ${mb(p.maxWasmHeap)}\n`);
  process.stderr.write(`garbage collections: ${gcCount}, ${gcSeconds.toFixed(2)} s\n`);
  process.stderr.write('peak RSS sampled every 20 ms while each step ran (innermost step):\n');
  phaseNames.forEach((k, id) => process.stderr.write(`  ${k}: ${mb(peaks[id])} MB\n`));
}

const run = await openRun({ backend: backendName, seed: 0, plugin: [], allowPluginPath: false }, [root, join(root, 'apps', 'cli')]);
const { backend } = await run.activateBackend();
const started = performance.now();
const model = await loadModel(modelDir, { residency: 'block' });
if (argv.includes('--trace')) traceMemory(model);
const blockCount = blocksArg ? Math.min(Number(blocksArg), model.numBlocks) : model.numBlocks;
const layers = Array.from({ length: blockCount }, (_, i) => i);
const stream = openStreamedPrune(model, modelDir, out, { job: { method, samples, seqlen } });
if (argv.includes('--trace')) stream.hooks.blockDone = traced('write shard', stream.hooks.blockDone);
const blocks = [];

let last = performance.now();
let heapBytes = 0;
const hooks = {
  resumedBlocks: new Set(),
  blockDone(i) {
    heapBytes = Math.max(heapBytes, tf.memory().numBytes);
    stream.hooks.blockDone(i);
    const now = performance.now();
    blocks.push({ index: i, seconds: (now - last) / 1000 });
    last = now;
    const mem = process.memoryUsage();
    const wasmHeap = tf.backend()?.wasm?.HEAPU8?.byteLength;
    const gib = (n) => (n / 2 ** 30).toFixed(2);
    // where the resident set goes: live tensors, the wasm heap (never shrinks), JS array buffers, the JS heap
    process.stderr.write(
      `block ${i}: ${blocks.at(-1).seconds.toFixed(2)} s, RSS ${gib(mem.rss)} GiB (tensors ${gib(tf.memory().numBytes)}, ` +
        `${wasmHeap === undefined ? '' : `wasm heap ${gib(wasmHeap)}, `}array buffers ${gib(mem.arrayBuffers)}, JS heap ${gib(mem.heapUsed)})\n`,
    );
  },
};
const env = { container: run.container, events: run.events, backend, seed: 0 };
await runPruneStage(env, model, {
  method,
  options: { sparsity: 0.5, layers, batchSize: batch },
  where: '',
  methodWhere: '--method',
  windows,
  calibrationWhere: '--ids',
  streaming: hooks,
});
if (blockCount === model.numBlocks) stream.finish();
if (argv.includes('--trace')) {
  // the gc observer's entries wait for the event loop, which the synchronous pruning never gave back: one turn first
  await new Promise((done) => setTimeout(done, 50));
  printTrace();
}
model.dispose();
const result = {
  method,
  backend: backend.name,
  shape: modelDir,
  samples,
  seqlen,
  blocks,
  blocksRun: blockCount,
  totalSeconds: (performance.now() - started) / 1000,
  peakRssBytes: process.resourceUsage().maxRSS * 1024,
  heapBytes,
  wrote: keepOut ? out : null,
  // the stage forwards a pruned block again only when a later block needs its output (not the last one run)
  lastBlockReforwards: false,
  // what the backend says it runs on (native: the OpenBLAS version, kernel and threads)
  backendNotes: backend.capabilities().notes,
};
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(result)}\n`);
process.stdout.write(`${JSON.stringify(result)}\n`);
run.close();
if (!keepOut) rmSync(out, { recursive: true, force: true });
