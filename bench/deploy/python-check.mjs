// Prune stories260K with LLM-Pruner (20 %, non-uniform), export it padded, dump Topiary's logits, and check both
// folders with the Python loader (bench/deploy/topiary_loader.py). Run from the repo root after `pnpm build`:
//   node bench/deploy/python-check.mjs
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { loadModel } from '../../packages/model-llama/dist/index.js';

// the tfjs that model-llama itself uses
const tf = await import(pathToFileURL(createRequire(new URL('../../packages/model-llama/package.json', import.meta.url)).resolve('@tensorflow/tfjs')).href);

const cli = ['apps/cli/dist/bin.js'];
const work = mkdtempSync(join(tmpdir(), 'topiary-python-check-'));
const slim = join(work, 'slim');
const padded = join(work, 'padded');
const run = (args) => execFileSync('node', [...cli, ...args], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
run(['--json', '-q', 'prune', '--model', 'assets/models/stories260K-hf', '--method', 'llm-pruner', '--ratio', '0.2', '--calibration', 'assets/data/tinystories_val_head.txt', '--out', slim]);
run(['--json', '-q', 'export', '--model', slim, '--format', 'padded', '--out', padded]);
await tf.setBackend('cpu');
const ids = [1, 403, 407, 261, 378, 1044 % 512, 300, 42, 17, 99, 256, 7];
const model = await loadModel(slim);
const logits = tf.tidy(() => model.forward(tf.tensor2d([ids], [1, ids.length], 'int32')));
writeFileSync(join(work, 'topiary-logits.json'), JSON.stringify({ ids, logits: Array.from(logits.dataSync()) }));
console.log(execFileSync('/usr/bin/python3', ['bench/deploy/topiary_loader.py', slim, padded, join(work, 'topiary-logits.json')], { encoding: 'utf8' }));
