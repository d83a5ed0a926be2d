#!/usr/bin/env node
/**
 * llama.cpp speed of GGUF exports through node-llama-cpp (prebuilt CPU binaries, `build: 'never'`): prompt processing
 * (one batch of --prompt tokens) and generation (--gen tokens, greedy, one at a time), median of --reps runs each.
 *
 *   node bench/deploy/speed.mjs [--prompt 128] [--gen 64] [--reps 5] [--threads 1] NAME=FILE.gguf ...
 *
 * The first NAME is the baseline the ratios are taken against. Prompt ids are fixed pseudo-random ids in [3, vocab).
 * Prints a Markdown table (tokens/s and ratio vs the first row), and one JSON line per model on stderr.
 * NODE_LLAMA_CPP: the node_modules/node-llama-cpp folder (see README.md).
 */
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    prompt: { type: 'string', default: '128' },
    gen: { type: 'string', default: '64' },
    reps: { type: 'string', default: '5' },
    threads: { type: 'string', default: '1' },
  },
});
const nPrompt = Number(values.prompt);
const nGen = Number(values.gen);
const reps = Number(values.reps);
const threads = Number(values.threads);
const where = process.env.NODE_LLAMA_CPP ? pathToFileURL(join(resolve(process.env.NODE_LLAMA_CPP), 'dist', 'index.js')).href : 'node-llama-cpp';
const { getLlama, LlamaLogLevel } = await import(where);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const rows = [];
for (const arg of positionals) {
  const eq = arg.indexOf('=');
  const name = eq > 0 ? arg.slice(0, eq) : arg;
  const file = eq > 0 ? arg.slice(eq + 1) : arg;
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const vocab = model.fileInsights.tensorInfo?.find((t) => t.name === 'token_embd.weight')?.dimensions[1] ?? 256;
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const promptIds = [1, ...Array.from({ length: nPrompt - 1 }, () => 3 + Math.floor(rand() * (Number(vocab) - 3)))];
  const context = await model.createContext({ contextSize: Math.max(256, nPrompt + nGen + 8), batchSize: nPrompt, threads });
  const pp = [];
  const tg = [];
  for (let r = 0; r < reps + 1; r++) {
    // prompt processing: one batch, no sampling
    let seq = context.getSequence();
    let t0 = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(promptIds);
    const ppMs = performance.now() - t0;
    seq.dispose();
    // generation: a one-token prompt, then nGen greedy tokens decoded one at a time
    seq = context.getSequence();
    let n = 0;
    let tFirst = 0;
    t0 = performance.now();
    for await (const _ of seq.evaluate([1], { temperature: 0 })) {
      if (n === 0) tFirst = performance.now();
      if (++n > nGen) break;
    }
    const tgMs = performance.now() - tFirst;
    seq.dispose();
    if (r > 0) {
      pp.push((nPrompt / ppMs) * 1000);
      tg.push((nGen / tgMs) * 1000);
    }
  }
  const row = { name, file, bytes: statSync(file).size, arch: model.fileInfo.metadata.general.architecture, ppTps: median(pp), tgTps: median(tg) };
  rows.push(row);
  process.stderr.write(`${JSON.stringify(row)}\n`);
  await context.dispose();
  await model.dispose();
}
const base = rows[0];
const f = (x) => x.toFixed(0);
const lines = [
  `| model | arch | GGUF bytes | size vs ${base.name} | prompt ${nPrompt} tok/s | vs ${base.name} | generation ${nGen} tok/s | vs ${base.name} |`,
  '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...rows.map((r) => `| ${r.name} | ${r.arch} | ${r.bytes} | ${(r.bytes / base.bytes).toFixed(2)} | ${f(r.ppTps)} | ${(r.ppTps / base.ppTps).toFixed(2)} | ${f(r.tgTps)} | ${(r.tgTps / base.tgTps).toFixed(2)} |`),
];
process.stdout.write(`${lines.join('\n')}\n`);
process.exit(0);
